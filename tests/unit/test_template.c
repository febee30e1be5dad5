/*
 * test_template.c - the Jinja interpreter against hand-computed
 * expectations: Python number semantics and printing, string escapes,
 * slicing with negative steps, loop variables, scoping, whitespace control,
 * Undefined, error positions (line:column), the limits that stop hostile
 * templates (nesting, loops, recursion, output, memory), reference-cycle
 * and leak freedom, allocation-failure injection, concurrent renders of one
 * template, and the built-in templates with family detection and fallback.
 * (tests/ref/test_templates.py compares against Python jinja2 itself.)
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "template/template.h"

static const char *CTX = "{\"xs\": [1, 2, 3], \"d\": {\"a\": 1, \"b\": [1, 2]}, \"s\": \"h\\u00e9llo\","
                         " \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"n\": null}";

/* Renders tmpl with ctx; returns the output (caller frees) or NULL with
 * the error in *err. */
static char *render_opts(const char *tmpl, const char *ctx, const rf_tmpl_opts *o, rf_error *err) {
    rf_tmpl *t;
    if (rf_tmpl_parse(tmpl, strlen(tmpl), &t, err) != RF_OK) return NULL;
    char *out = NULL;
    size_t n;
    rf_status st = rf_tmpl_render_json(t, ctx, strlen(ctx), o, &out, &n, err);
    rf_tmpl_free(t);
    if (st != RF_OK) return NULL;
    if (strlen(out) != n) { /* outputs here have no NUL bytes */
        rf_free(out);
        return NULL;
    }
    return out;
}

static char *render(const char *tmpl, rf_error *err) {
    rf_tmpl_opts o = {.has_now = true, .now = 1767312000}; /* 2026-01-02 00:00 UTC */
    return render_opts(tmpl, CTX, &o, err);
}

#define EXPECT(tmpl, want)                                                                    \
    do {                                                                                      \
        rf_error e_ = {0};                                                                    \
        char *got_ = render(tmpl, &e_);                                                       \
        CHECK_MSG(got_ && strcmp(got_, want) == 0, "%s\n    want [%s]\n    got  [%s] %s",    \
                  tmpl, want, got_ ? got_ : "(error)", got_ ? "" : e_.msg);                   \
        rf_free(got_);                                                                        \
    } while (0)

#define EXPECT_ERR(tmpl, substr)                                                              \
    do {                                                                                      \
        rf_error e_ = {0};                                                                    \
        char *got_ = render(tmpl, &e_);                                                       \
        CHECK_MSG(!got_ && strstr(e_.msg, substr), "%s\n    want error with [%s]\n    got [%s] [%s]", \
                  tmpl, substr, got_ ? got_ : "(error)", e_.msg);                             \
        rf_free(got_);                                                                        \
    } while (0)

/* ---- expressions -------------------------------------------------------- */

static void test_numbers(void) {
    EXPECT("{{ 1/2 }} {{ 4/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2**-1 }} {{ 2**10 }}",
           "0.5 2.0 3 -4 2 -2 0.5 1024");
    EXPECT("{{ 1e20 }} {{ 1e16 }} {{ 1e15 }} {{ 0.1+0.2 }} {{ 1e-5 }} {{ 0.0001 }} {{ -0.0 }} {{ 10/3 }}",
           "1e+20 1e+16 1000000000000000.0 0.30000000000000004 1e-05 0.0001 -0.0 3.3333333333333335");
    EXPECT("{{ 7.5 % 2 }} {{ -7.5 // 2 }} {{ 2**3**2 }} {{ 1_000 + 0x10 + 0o7 + 0b1 }} {{ true + 1 }} {{ 3 * 1.0 }}",
           "1.5 -4.0 64 1024 2 3.0");
    EXPECT("{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 3|round }} {{ '3.7'|int }} {{ 'x'|int }}",
           "2.0 4.0 2.67 3 3 0");
    EXPECT("{{ 1 == 1.0 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ [1, 2] < [1, 3] }} {{ 'b' in 'abc' }}",
           "True True False True True");
    EXPECT_ERR("{{ 1 + 'a' }}", "unsupported operand");
    EXPECT_ERR("{{ 'a' + 1 }}", "can only concatenate str");
    EXPECT_ERR("{{ 9223372036854775807 + 1 }}", "integer overflow");
    /* str.format widths / precisions of more digits than an int64 holds (a fuzzer find) */
    EXPECT_ERR("{{ '{:>67000011111111111111111111}'.format('x') }}", "Invalid format specifier");
    EXPECT_ERR("{{ '{:.67000011111111111111111111}'.format(1.5) }}", "Invalid format specifier");
    EXPECT_ERR("{{ 1 < 'a' }}", "not supported between");
}

static void test_strings(void) {
    EXPECT("{{ 'a\\nb\\tc\\\\d\\x41\\u00e9\\101\\q' }}", "a\nb\tc\\dA\xc3\xa9" "A\\q");
    EXPECT("{{ \"it's\" }}|{{ 'a' 'b' }}|{{ ['it\\'s', 'a\"b', \"x\"] }}", "it's|ab|[\"it's\", 'a\"b', 'x']");
    EXPECT("{{ [1, 'a', none, true, 1.5, {'k': 'v'}] }} {{ (1,) }} {{ () }}",
           "[1, 'a', None, True, 1.5, {'k': 'v'}] (1,) ()");
    EXPECT("{{ 'x' ~ 1 ~ none ~ [1] }} {{ 'ab' * 3 }} {{ '%s=%d' % ('a', 3) }} {{ '{}-{}'.format(1, 'b') }}",
           "x1None[1] ababab a=3 1-b");
    EXPECT("{{ ' a  b '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.split(' ', 1) }} {{ '  x '.strip() }}",
           "['a', 'b'] ['a', 'b', '', 'c'] ['a', 'b c'] x");
    EXPECT("{{ s|upper }} {{ s|length }} {{ s|title }} {{ 'stra\xc3\x9f'|upper }}", "H\xc3\x89LLO 5 H\xc3\xa9llo STRASS");
    EXPECT("{{ '\\u00e9\\u0001'|tojson }} {{ {'b': 1, 'a': [1.0, none]}|tojson(sort_keys=true) }} {{ [1]|tojson(indent=2) }}",
           "\"\xc3\xa9\\u0001\" {\"a\": [1.0, null], \"b\": 1} [\n  1\n]");
}

static void test_slicing(void) {
    EXPECT("{{ 'abcdef'[::-2] }} {{ 'abcdef'[-2:] }} {{ 'abcdef'[5:1:-2] }} {{ 'abc'[5:] }}|", "fdb ef fd |");
    EXPECT("{{ [1, 2, 3, 4, 5][::-1] }} {{ [1, 2, 3, 4, 5][4:1:-2] }} {{ xs[-1] }} {{ xs[1:-1] }}",
           "[5, 4, 3, 2, 1] [5, 3] 3 [2]");
    EXPECT("{{ s[::-1] }} {{ s[1] }} {{ s[-4:-1] }}", "oll\xc3\xa9h \xc3\xa9 \xc3\xa9ll");
    EXPECT_ERR("{{ xs[::0] }}", "slice step cannot be zero");
}

static void test_loops(void) {
    EXPECT("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}"
           "{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('a', 'b') }};{% endfor %}",
           "103TrueFalse32a;212FalseFalse313b;321FalseTrue32a;");
    EXPECT("{% for x in [] %}a{% else %}empty{% endfor %}|{% for x in xs if x > 1 %}{{ loop.index }}{{ x }}{% endfor %}",
           "empty|1223");
    EXPECT("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
           "a=1;b=[1, 2];ab");
    EXPECT("{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}",
           "02");
    /* scoping: a set in a loop body is not seen after it; namespace is */
    EXPECT("{% set x = 1 %}{% for i in xs %}{% set x = x + i %}{% endfor %}{{ x }}", "1");
    EXPECT("{% set ns = namespace(x=1) %}{% for i in xs %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}", "7");
    EXPECT("{% macro m(a, b=2) %}[{{ a }}{{ b }}{{ varargs }}{{ kwargs }}]{% endmacro %}{{ m(1) }}{{ m(1, 3, 4, k=5) }}",
           "[12(){}][13(4,){'k': 5}]");
    EXPECT("{% macro m() %}<{{ caller(7) }}>{% endmacro %}{% call(v) m() %}v={{ v }}{% endcall %}", "<v=7>");
    EXPECT("{% set b %}x{{ 1 }}{% endset %}{{ b }}{% filter upper %}ab{% endfilter %}", "x1AB");
}

static void test_whitespace(void) {
    EXPECT("{%- if true -%}  a  {%- endif -%}  b  {{- ' c ' -}}  d", "ab c d");
    /* trim_blocks + lstrip_blocks */
    EXPECT("   {% if true %}\n   x\n   {% endif %}\ny", "   x\ny");
    EXPECT("a  {%+ if true %}w{% endif %}|{# c #}\n|{#- c -#} |", "a  w|||");
    EXPECT("{% raw %}{{ x }}{% endraw %}|{%- raw -%}  {{ y }}  {%- endraw -%}  |", "{{ x }}|{{ y }}|");
    EXPECT("line\r\n{% if true %}\r\nx{% endif %}\n", "line\nx");
}

static void test_undefined(void) {
    EXPECT("[{{ x }}][{{ x|default('d') }}][{{ x|length }}][{% for i in x %}{{ i }}{% endfor %}][{{ x is defined }}]",
           "[][d][0][][False]");
    EXPECT("[{{ d.z }}][{{ d['z'] }}][{{ xs[9] }}][{{ n.x }}][{{ d.z is defined }}][{{ x if false }}]",
           "[][][][][False][]");
    EXPECT_ERR("{{ x.y }}", "'x' is undefined");
    EXPECT_ERR("{{ x() }}", "'x' is undefined");
    EXPECT_ERR("{{ x + 1 }}", "'x' is undefined");
    EXPECT_ERR("{{ x|int }}", "'x' is undefined");
    EXPECT_ERR("{{ [1].append(2) }}", "unsafe");
    EXPECT_ERR("{{ raise_exception('custom message') }}", "custom message");
}

static void test_errors_name_position(void) {
    EXPECT_ERR("a\n  {{ 1 + }}", "line 2:10:");
    EXPECT_ERR("{{ 1 }}\n{{ 2 // 0 }}", "line 2:4:");
    EXPECT_ERR("x\ny\n{% if true %}", "line 3:");
    EXPECT_ERR("{% endif %}", "unknown tag 'endif'");
    EXPECT_ERR("{{ 'a'|nosuchfilter }}", "No filter named 'nosuchfilter'");
    EXPECT("{% if false %}{{ 'a'|nosuchfilter }}{% endif %}ok", "ok"); /* jinja2 defers that one */
    EXPECT_ERR("{% break %}", "outside loop");
    EXPECT_ERR("{{ 'abc\n", "line 1:4:");
    EXPECT_ERR("{# open", "Missing end of comment");
    rf_tmpl *t;
    rf_error e = {0};
    CHECK(rf_tmpl_parse("\xff", 1, &t, &e) == RF_E_FORMAT && strstr(e.msg, "UTF-8"));
    CHECK(rf_tmpl_parse("x", 1, &t, &e) == RF_OK);
    char *out = NULL;
    CHECK(rf_tmpl_render_json(t, "[1]", 3, NULL, &out, NULL, &e) == RF_E_INVAL && !out);
    CHECK(rf_tmpl_render_json(t, "{bad", 4, NULL, &out, NULL, &e) == RF_E_INVAL && !out);
    rf_tmpl_free(t);
    rf_tmpl_free(NULL);
}

static void test_strftime(void) {
    EXPECT("{{ strftime_now('%Y-%m-%d %d %b %B %A') }}", "2026-01-02 02 Jan January Friday");
}

/* ---- limits ------------------------------------------------------------- */

static char *repeat_str(const char *a, int n, const char *mid, const char *b) {
    size_t la = strlen(a), lm = strlen(mid), lb = strlen(b);
    char *s = malloc(la * (size_t)n + lm + lb * (size_t)n + 1);
    char *p = s;
    for (int i = 0; i < n; i++, p += la) memcpy(p, a, la);
    memcpy(p, mid, lm);
    p += lm;
    for (int i = 0; i < n; i++, p += lb) memcpy(p, b, lb);
    *p = '\0';
    return s;
}

static void test_limits(void) {
    /* nesting: parentheses, blocks, attribute and filter chains */
    char *deep = repeat_str("(", 5000, "1", ")");
    size_t n = strlen(deep) + 16;
    char *tmpl = malloc(n);
    snprintf(tmpl, n, "{{ %s }}", deep);
    EXPECT_ERR(tmpl, "nested too deeply");
    free(tmpl);
    free(deep);
    char *ifs = repeat_str("{% if true %}", 1000, "x", "{% endif %}");
    EXPECT_ERR(ifs, "nested too deeply");
    free(ifs);
    char *c = malloc(3000 * 2 + 64);
    strcpy(c, "{{ d");
    for (int i = 0; i < 3000; i++) strcat(c, ".a");
    strcat(c, " }}");
    EXPECT_ERR(c, "nested too deeply");
    strcpy(c, "{{ 1");
    for (int i = 0; i < 1000; i++) strcat(c, "|d");
    strcat(c, " }}");
    EXPECT_ERR(c, "nested too deeply");
    free(c);
    EXPECT_ERR("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
               "loop iterations (limit)");
    EXPECT_ERR("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "nested too deeply");
    EXPECT_ERR("{{ range(1000000)|list }}", "Range too big");
    EXPECT_ERR("{{ 'x' * 100000000000 }}", "too long");
    /* '%' widths and precisions past int64 (the fuzzer's UBSan find: the digits overflowed) */
    EXPECT_ERR("{{ '%11111111111111111111111111111111105.1f' % 3.5 }}", "width or precision too large");
    EXPECT_ERR("{{ '%5.99999999999999999999999f' % 3.5 }}", "width or precision too large");
    EXPECT_ERR("{{ '%*d' % (-9223372036854775807 - 1, 3) }}", "width or precision too large");
    EXPECT("{{ '%*d|' % (-4, 7) }}", "7   |");
    rf_tmpl_opts small = {.has_now = true, .limits = {.max_output = 1 << 20, .max_alloc = 64 << 20}};
    rf_error e = {0};
    char *out = render_opts("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", CTX, &small, &e);
    CHECK(!out && strstr(e.msg, "output exceeds"));
    out = render_opts("{% set ns = namespace(s='') %}{% for i in range(100000) %}"
                      "{% set ns.s = ns.s ~ 'xxxxxxxxxxxxxxxxxxxx' %}{% endfor %}{{ ns.s|length }}",
                      CTX, &small, &e);
    CHECK(!out && (strstr(e.msg, "bytes (limit)") || strstr(e.msg, "exceeds")));
    /* a deeply nested value cannot be printed, and frees without recursion */
    EXPECT_ERR("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}",
               "nested too deeply");
    /* cycles through a namespace are freed with the render */
    EXPECT("{% set ns = namespace() %}{% set ns.me = ns %}{% set ns.l = [ns, ns] %}{{ ns.me.me.l|length }}", "2");
    EXPECT("{% for i in xs %}{% set ns = namespace(loop=loop) %}{% macro m() %}{{ m }}{% endmacro %}{% endfor %}ok", "ok");
}

/* ---- memory: leaks and injected failures --------------------------------- */

static const char *BIG_TMPL =
    "{%- set ns = namespace(n=0, parts=[]) -%}"
    "{%- macro fmt(m, sep=': ') -%}{{ m.role|upper }}{{ sep }}{{ m.content|trim }}{%- endmacro -%}"
    "{%- for m in messages + [{'role': 'assistant', 'content': ' yo '}] -%}"
    "{%- set ns.n = ns.n + 1 -%}{{ fmt(m) }}|{{ loop.index }}/{{ loop.length }}\n"
    "{%- endfor -%}"
    "{{ d|tojson }}{{ d|dictsort }}{{ xs|map('string')|join(',') }}{{ s.split('l') }}{{ ns.n }}";

static void test_no_leaks_and_fault_injection(void) {
    rf_alloc_stats before = rf_alloc_get_stats();
    EXPECT(BIG_TMPL, "USER: hi|1/2ASSISTANT: yo|2/2{\"a\": 1, \"b\": [1, 2]}[('a', 1), ('b', [1, 2])]1,2,3"
                     "['h\xc3\xa9', '', 'o']2");
    rf_alloc_stats after = rf_alloc_get_stats();
    CHECK_MSG(after.live_bytes == before.live_bytes, "leaked %zu bytes",
              after.live_bytes - before.live_bytes);
    /* every allocation failing in turn: an error, never a crash or leak */
    int failures = 0, oks = 0;
    for (long k = 0; k < 2000; k++) {
        rf_error e = {0};
        rf_alloc_fail_after(k);
        char *out = render(BIG_TMPL, &e);
        rf_alloc_fail_after(-1);
        if (out) { oks++; rf_free(out); break; }
        failures++;
        CHECK(e.msg[0] != '\0');
    }
    CHECK(oks == 1 && failures > 50);
    rf_alloc_stats end = rf_alloc_get_stats();
    CHECK_MSG(end.live_bytes == before.live_bytes, "leaked %zu bytes under fault injection",
              end.live_bytes - before.live_bytes);
}

/* ---- concurrency: one parsed template, several threads ------------------ */

static rf_tmpl *g_shared;
static char *g_want;

static void *render_thread(void *arg) {
    (void)arg;
    int bad = 0;
    for (int i = 0; i < 50; i++) {
        char *out = NULL;
        rf_tmpl_opts o = {.has_now = true};
        if (rf_tmpl_render_json(g_shared, CTX, strlen(CTX), &o, &out, NULL, NULL) != RF_OK ||
            strcmp(out, g_want) != 0)
            bad++;
        rf_free(out);
    }
    return (void *)(intptr_t)bad;
}

static void test_threads(void) {
    CHECK(rf_tmpl_parse(BIG_TMPL, strlen(BIG_TMPL), &g_shared, NULL) == RF_OK);
    rf_tmpl_opts o = {.has_now = true};
    CHECK(rf_tmpl_render_json(g_shared, CTX, strlen(CTX), &o, &g_want, NULL, NULL) == RF_OK);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, render_thread, NULL);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK((intptr_t)r == 0);
    }
    rf_free(g_want);
    rf_tmpl_free(g_shared);
}

/* ---- built-in templates -------------------------------------------------- */

static void test_builtins(void) {
    static const char *ctx =
        "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"U\"},"
        " {\"role\": \"assistant\", \"content\": [{\"type\": \"text\", \"text\": \"A\"}]},"
        " {\"role\": \"user\", \"content\": \"V\"}], \"add_generation_prompt\": true,"
        " \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";
    static const struct { const char *fam, *want; } cases[] = {
        {"chatml", "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
                   "<|im_start|>user\nV<|im_end|>\n<|im_start|>assistant\n"},
        {"llama2", "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] V [/INST]"},
        {"llama3", "<s><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                   "U<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|><|start_header_id|>user"
                   "<|end_header_id|>\n\nV<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
        {"mistral", "<s>[INST] S\n\nU[/INST]A</s>[INST] V[/INST]"},
        {"gemma", "<s><start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n"
                  "<start_of_turn>user\nV<end_of_turn>\n<start_of_turn>model\n"},
        {"phi3", "<|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\nA<|end|>\n<|user|>\nV<|end|>\n<|assistant|>\n"},
        {"deepseek", "<s>S<\xef\xbd\x9cUser\xef\xbd\x9c>U<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>A<\xef\xbd\x9c"
                     "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c><\xef\xbd\x9cUser\xef\xbd\x9c>V"
                     "<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *src = rf_tmpl_builtin(cases[i].fam);
        CHECK(src != NULL);
        if (!src) continue;
        rf_error e = {0};
        char *out = render_opts(src, ctx, NULL, &e);
        CHECK_MSG(out && strcmp(out, cases[i].want) == 0, "%s: got [%s] %s", cases[i].fam,
                  out ? out : "(error)", e.msg);
        rf_free(out);
        CHECK(strcmp(rf_tmpl_detect_family(src, strlen(src)), cases[i].fam) == 0);
    }
    CHECK(rf_tmpl_builtin("nope") == NULL && rf_tmpl_family_name(7) == NULL);
    CHECK(rf_tmpl_detect_family("no markers", 10) == NULL);
    CHECK(!strcmp(rf_tmpl_detect_family("[INST] x", 8), "mistral"));

    rf_log_level lvl = rf_log_get_level();
    rf_log_set_level(RF_LOG_NONE);
    rf_tmpl *t;
    const char *fam;
    const char *broken = "<|im_start|>{{ messages[0].content + 1 }}";
    CHECK(rf_tmpl_load_with_fallback(broken, strlen(broken), NULL, &t, &fam, NULL) == RF_OK &&
          !strcmp(fam, "chatml"));
    rf_tmpl_free(t);
    const char *unparsable = "<start_of_turn>{% if %}";
    CHECK(rf_tmpl_load_with_fallback(unparsable, strlen(unparsable), NULL, &t, &fam, NULL) == RF_OK &&
          !strcmp(fam, "gemma"));
    rf_tmpl_free(t);
    CHECK(rf_tmpl_load_with_fallback(NULL, 0, "gemma3", &t, &fam, NULL) == RF_OK && !strcmp(fam, "gemma"));
    rf_tmpl_free(t);
    const char *good = rf_tmpl_builtin("phi3");
    CHECK(rf_tmpl_load_with_fallback(good, strlen(good), NULL, &t, &fam, NULL) == RF_OK &&
          !strcmp(fam, "model"));
    rf_tmpl_free(t);
    rf_log_set_level(lvl);
}

int main(void) {
    RF_RUN(test_numbers);
    RF_RUN(test_strings);
    RF_RUN(test_slicing);
    RF_RUN(test_loops);
    RF_RUN(test_whitespace);
    RF_RUN(test_undefined);
    RF_RUN(test_errors_name_position);
    RF_RUN(test_strftime);
    RF_RUN(test_limits);
    RF_RUN(test_no_leaks_and_fault_injection);
    RF_RUN(test_threads);
    RF_RUN(test_builtins);
    return rf_test_summary();
}
