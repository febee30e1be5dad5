/*
 * pretok.c - pre-tokenization: the table of regex sets chosen by GGUF
 * `tokenizer.ggml.pre`, PCRE2 compilation (UTF + UCP, JIT), the split
 * behaviours of Hugging Face's Split pre-tokenizer, ByteLevel and Metaspace,
 * and the per-call workspace (pieces, arena, match data).
 *
 * The regexes are facts of each tokenizer: where llama.cpp rewrote a pattern
 * for std::regex we use the original from the model's tokenizer.json, since
 * PCRE2 understands it (case-insensitive groups, \p{..} classes).
 */
#include <pthread.h>
#include <string.h>

#include "tok-impl.h"

/* ---- regex sets by tokenizer.ggml.pre ------------------------------------------ */

#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_LLAMA3                                                                             \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2                                                                              \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                     \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_CASE_LU "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define RX_CASE_LL "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define RX_CONTR "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"

const char tok_gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct pre_def {
    const char *const *names; /* NULL-terminated */
    const char *rx[7];        /* applied in order, each an isolating split */
    bool ignore_merges;
    bool add_bos;             /* llama.cpp's default for add_bos_token */
} pre_def;

#define NAMES(...) (const char *const[]){__VA_ARGS__, NULL}

static const pre_def pre_defs[] = {
    {NAMES("default"), {"[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, 0, 0},
    {NAMES("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"),
     {RX_LLAMA3}, true, true},
    {NAMES("dbrx", "smaug-bpe", "chatglm-bpe", "glm4"), {RX_LLAMA3}, false, false},
    {NAMES("deepseek-llm"),
     {"[\r\n]",
      "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+", "\\s+$", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}+"},
     false, false},
    {NAMES("deepseek-coder"),
     {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}"}, false, false},
    {NAMES("deepseek-v3", "hunyuan-dense"),
     {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
      "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
     false, false},
    {NAMES("falcon"), {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2, "[0-9][0-9][0-9]"}, false, false},
    {NAMES("gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
           "mellum", "modern-bert", "mpt", "olmo", "jais", "trillion", "granite-docling", "exaone4",
           "jina-v1-en", "jina-v2-code", "roberta-bpe"),
     {RX_GPT2}, false, false},
    {NAMES("starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
           "mellum2"),
     {"\\p{N}", RX_GPT2}, false, false},
    {NAMES("qwen2", "deepseek-r1-qwen", "stablelm2", "hunyuan", "megrez", "kormo", "solar-open"),
     {RX_QWEN2}, false, false},
    {NAMES("poro-chat", "bloom", "gpt3-finnish"), {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"}, false, false},
    {NAMES("viking"), {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+", "\\p{N}"}, false, false},
    {NAMES("tekken"),
     {"[^\\r\\n\\p{L}\\p{N}]?" RX_CASE_LU "*" RX_CASE_LL "+|[^\\r\\n\\p{L}\\p{N}]?" RX_CASE_LU
      "+" RX_CASE_LL "*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     true, true},
    {NAMES("chameleon"),
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", RX_GPT2},
     false, true},
    {NAMES("gpt-4o", "llama4", "kanana2"),
     {"[^\\r\\n\\p{L}\\p{N}]?" RX_CASE_LU "*" RX_CASE_LL "+" RX_CONTR "|[^\\r\\n\\p{L}\\p{N}]?" RX_CASE_LU
      "+" RX_CASE_LL "*" RX_CONTR "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     false, false},
    {NAMES("seed-coder"),
     {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\r\n]+|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
     false, false},
};

/* ---- PCRE2 with the counting allocator ------------------------------------------- */

static void *pc_malloc(PCRE2_SIZE n, void *d) {
    (void)d;
    return rf_malloc(n);
}
static void pc_free(void *p, void *d) {
    (void)d;
    rf_free(p);
}

/* One general context for the process (its few bytes are counted once).
 * Created lazily under a lock and retried after a failed (e.g. injected)
 * allocation, so a transient OOM does not disable regexes for good. */
static pcre2_general_context *g_gctx;
static pthread_mutex_t g_gctx_lock = PTHREAD_MUTEX_INITIALIZER;
pcre2_general_context *tok_pcre2_gctx(void) {
    pthread_mutex_lock(&g_gctx_lock);
    if (!g_gctx) g_gctx = pcre2_general_context_create(pc_malloc, pc_free, NULL);
    pcre2_general_context *g = g_gctx;
    pthread_mutex_unlock(&g_gctx_lock);
    return g;
}

rf_status tok_regex_compile(const char *pattern, size_t len, pcre2_code **out, rf_error *err) {
    pcre2_general_context *g = tok_pcre2_gctx();
    if (!g) return rf_error_set(err, RF_E_NOMEM, "tokenizer: out of memory (pcre2)");
    pcre2_compile_context *cc = pcre2_compile_context_create(g);
    if (!cc) return rf_error_set(err, RF_E_NOMEM, "tokenizer: out of memory (pcre2)");
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP, &ec, &eo, cc);
    pcre2_compile_context_free(cc);
    if (!re && ec == PCRE2_ERROR_HEAP_FAILED)
        return rf_error_set(err, RF_E_NOMEM, "tokenizer: out of memory (regex)");
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return rf_error_set(err, RF_E_FORMAT, "tokenizer: bad regex at offset %zu: %s: '%.*s'",
                            (size_t)eo, (const char *)msg, (int)(len > 200 ? 200 : len), pattern);
    }
    /* JIT is an optimisation: when it is unavailable pcre2_match interprets. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return RF_OK;
}

rf_status tok_pre_from_name(rf_tokenizer *t, const char *pre, const rf_tok_opts *o, rf_error *err) {
    const pre_def *d = NULL;
    for (size_t i = 0; i < RF_ARRAY_LEN(pre_defs) && !d; i++)
        for (const char *const *nm = pre_defs[i].names; *nm; nm++)
            if (strcmp(*nm, pre) == 0) { d = &pre_defs[i]; break; }
    if (!d) {
        if (!o || !o->pre_fallback_gpt2)
            return rf_error_set(err, RF_E_UNSUPPORTED,
                                "%s: unknown pre-tokenizer tokenizer.ggml.pre = '%s' (pass "
                                "--pre-fallback / rf_tok_opts.pre_fallback_gpt2 to use the gpt-2 "
                                "regex at your own risk)",
                                t->name, pre);
        RF_LOGW("%s: unknown tokenizer.ggml.pre '%s': using the gpt-2 regex as asked", t->name, pre);
        for (size_t i = 0; i < RF_ARRAY_LEN(pre_defs); i++)
            if (strcmp(pre_defs[i].names[0], "gpt-2") == 0) d = &pre_defs[i];
    }
    for (int i = 0; i < 7 && d->rx[i]; i++) {
        tok_pre_op *op = &t->pre[t->n_pre];
        memset(op, 0, sizeof *op);
        op->kind = TP_SPLIT_RE;
        op->behavior = SB_ISOLATED;
        rf_status st = tok_regex_compile(d->rx[i], strlen(d->rx[i]), &op->re, err);
        if (st) return st;
        t->n_pre++;
    }
    t->ignore_merges = d->ignore_merges;
    t->add_bos = d->add_bos;
    return RF_OK;
}

/* ---- workspace ------------------------------------------------------------------ */

struct tok_arena_chunk {
    tok_arena_chunk *next;
    size_t cap, used;
    char data[];
};

char *tok_arena_alloc(rf_tok_ws *ws, size_t n) {
    tok_arena_chunk *c = ws->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        tok_arena_chunk *nc = rf_malloc(sizeof *nc + cap);
        if (!nc) return NULL;
        nc->cap = cap;
        nc->used = 0;
        nc->next = c;
        ws->arena = nc;
        c = nc;
    }
    char *p = c->data + c->used;
    c->used += n;
    return p;
}

void tok_arena_reset(rf_tok_ws *ws) {
    tok_arena_chunk *c = ws->arena;
    if (!c) return;
    /* keep the newest chunk, free the rest */
    tok_arena_chunk *rest = c->next;
    c->next = NULL;
    c->used = 0;
    while (rest) {
        tok_arena_chunk *nx = rest->next;
        rf_free(rest);
        rest = nx;
    }
}

rf_tok_ws *rf_tok_ws_new(void) {
    rf_tok_ws *ws = rf_calloc(1, sizeof *ws);
    if (!ws) return NULL;
    pcre2_general_context *g = tok_pcre2_gctx();
    if (!g) goto fail;
    ws->md = pcre2_match_data_create(16, g);
    ws->mctx = pcre2_match_context_create(g);
    ws->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, g);
    if (!ws->md || !ws->mctx) goto fail;
    if (ws->jit) pcre2_jit_stack_assign(ws->mctx, NULL, ws->jit);
    return ws;
fail:
    rf_tok_ws_free(ws);
    return NULL;
}

void rf_tok_ws_free(rf_tok_ws *ws) {
    if (!ws) return;
    tok_buf_free(&ws->in);
    tok_buf_free(&ws->norm);
    tok_buf_free(&ws->norm2);
    tok_buf_free(&ws->tmp);
    tok_buf_free(&ws->word);
    rf_free(ws->frags);
    rf_free(ws->frags2);
    rf_free(ws->pa);
    rf_free(ws->pb);
    rf_free(ws->syms);
    rf_free(ws->heap);
    rf_free(ws->ids);
    rf_free(ws->cps);
    tok_arena_reset(ws);
    rf_free(ws->arena);
    pcre2_match_data_free(ws->md);
    pcre2_match_context_free(ws->mctx);
    pcre2_jit_stack_free(ws->jit);
    rf_free(ws);
}

bool tok_ids_push(rf_tok_ws *ws, int32_t id) {
    if (ws->n_ids == ws->cap_ids) {
        size_t cap = ws->cap_ids ? ws->cap_ids * 2 : 256;
        int32_t *p = rf_realloc(ws->ids, cap * sizeof *p);
        if (!p) return false;
        ws->ids = p;
        ws->cap_ids = cap;
    }
    ws->ids[ws->n_ids++] = id;
    return true;
}

static bool push_piece(tok_piece **arr, size_t *n, size_t *cap, const char *p, size_t len) {
    if (len == 0) return true;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        tok_piece *np = rf_realloc(*arr, c * sizeof *np);
        if (!np) return false;
        *arr = np;
        *cap = c;
    }
    (*arr)[(*n)++] = (tok_piece){p, (uint32_t)len};
    return true;
}
#define PUSH_B(ws, p, len) push_piece(&(ws)->pb, &(ws)->n_pb, &(ws)->cap_pb, (p), (len))

/* ---- splitting ------------------------------------------------------------------- */

typedef struct span {
    uint32_t s, e;
    bool m;
} span;

static rf_status oom(rf_error *err) {
    return rf_error_set(err, RF_E_NOMEM, "tokenizer: out of memory");
}

static size_t utf8_len_at(const char *p, size_t n) {
    uint8_t c = (uint8_t)p[0];
    size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    return k > n ? n : k;
}

/* Finds the regex (or literal) matches in p[0..n) as alternating spans in
 * ws->tmp (Hugging Face's find_matches: gaps are non-matches). */
static rf_status find_spans(const tok_pre_op *op, rf_tok_ws *ws, const char *p, size_t n,
                            span **out, size_t *n_out, rf_error *err) {
    ws->tmp.n = 0;
    size_t prev = 0, off = 0;
#define ADD_SPAN(a, b, mm)                                                       \
    do {                                                                         \
        span sp_ = {(uint32_t)(a), (uint32_t)(b), (mm) != op->invert};           \
        if (!tok_buf_put(&ws->tmp, &sp_, sizeof sp_)) return oom(err);          \
    } while (0)
    while (off <= n) {
        size_t ms, me;
        if (op->kind == TP_SPLIT_STR) {
            if (op->slen == 0 || n - off < op->slen) break;
            const char *f = NULL;
            for (size_t i = off; i + op->slen <= n; i++)
                if (memcmp(p + i, op->str, op->slen) == 0) { f = p + i; break; }
            if (!f) break;
            ms = (size_t)(f - p);
            me = ms + op->slen;
        } else {
            int rc = pcre2_match(op->re, (PCRE2_SPTR)p, n, off, PCRE2_NO_UTF_CHECK, ws->md, ws->mctx);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                if (rc == PCRE2_ERROR_NOMEMORY) return oom(err);
                PCRE2_UCHAR msg[120];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return rf_error_set(err, RF_E_RANGE, "tokenizer: pre-tokenizer regex failed: %s",
                                    (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ws->md);
            ms = ov[0];
            me = ov[1];
        }
        if (me == ms) { /* empty match: nothing to split, step one character */
            if (ms >= n) break;
            off = ms + utf8_len_at(p + ms, n - ms);
            continue;
        }
        if (prev != ms) ADD_SPAN(prev, ms, false);
        ADD_SPAN(ms, me, true);
        prev = off = me;
    }
    if (prev != n) ADD_SPAN(prev, n, false);
#undef ADD_SPAN
    *out = (span *)ws->tmp.p;
    *n_out = ws->tmp.n / sizeof(span);
    return RF_OK;
}

/* Applies a split behaviour (HF SplitDelimiterBehavior) to the spans and
 * pushes the resulting pieces. */
static rf_status split_piece(const tok_pre_op *op, rf_tok_ws *ws, const char *p, size_t n,
                             rf_error *err) {
    span *sp = NULL;
    size_t ns = 0;
    rf_status st = find_spans(op, ws, p, n, &sp, &ns, err);
    if (st) return st;
    size_t k = 0; /* output spans written back into sp[0..k) */
    bool prev_m = false;
    switch (op->behavior) {
    case SB_ISOLATED:
        k = ns;
        break;
    case SB_REMOVED:
        for (size_t i = 0; i < ns; i++)
            if (!sp[i].m) sp[k++] = sp[i];
        break;
    case SB_MERGED_PREV:
        for (size_t i = 0; i < ns; i++) {
            if (sp[i].m && !prev_m && k > 0) sp[k - 1].e = sp[i].e;
            else sp[k++] = sp[i];
            prev_m = sp[i].m;
        }
        break;
    case SB_MERGED_NEXT: {
        /* walk backwards, merging a match into the span after it */
        size_t w = ns; /* output grows downwards from ns */
        for (size_t ii = ns; ii-- > 0;) {
            span cur = sp[ii];
            if (cur.m && !prev_m && w < ns) sp[w].s = cur.s;
            else sp[--w] = cur;
            prev_m = cur.m;
        }
        memmove(sp, sp + w, (ns - w) * sizeof *sp);
        k = ns - w;
        break;
    }
    case SB_CONTIGUOUS:
        for (size_t i = 0; i < ns; i++) {
            if (sp[i].m == prev_m && k > 0) sp[k - 1].e = sp[i].e;
            else sp[k++] = sp[i];
            prev_m = sp[i].m;
        }
        break;
    default:
        RF_ASSERT(0);
    }
    for (size_t i = 0; i < k; i++)
        if (!PUSH_B(ws, p + sp[i].s, sp[i].e - sp[i].s)) return oom(err);
    return RF_OK;
}

/* Fast path of the common case: isolating regex split, no span list. */
static rf_status split_isolated(const tok_pre_op *op, rf_tok_ws *ws, const char *p, size_t n,
                                rf_error *err) {
    size_t prev = 0, off = 0;
    while (off < n) {
        int rc = pcre2_match(op->re, (PCRE2_SPTR)p, n, off, PCRE2_NO_UTF_CHECK, ws->md, ws->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            if (rc == PCRE2_ERROR_NOMEMORY) return oom(err);
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return rf_error_set(err, RF_E_RANGE, "tokenizer: pre-tokenizer regex failed: %s",
                                (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ws->md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {
            if (ms >= n) break;
            off = ms + utf8_len_at(p + ms, n - ms);
            continue;
        }
        if (!PUSH_B(ws, p + prev, ms - prev) || !PUSH_B(ws, p + ms, me - ms)) return oom(err);
        prev = off = me;
    }
    if (!PUSH_B(ws, p + prev, n - prev)) return oom(err);
    return RF_OK;
}

/* HF Metaspace: spaces -> replacement, optional prepend, optional split
 * (each replacement starts a new piece). */
static rf_status metaspace(const tok_pre_op *op, rf_tok_ws *ws, const char *p, size_t n,
                           bool first_piece, rf_error *err) {
    size_t spaces = 0;
    for (size_t i = 0; i < n; i++) spaces += p[i] == ' ';
    bool pre = op->prepend == 2 || (op->prepend == 1 && first_piece);
    if (pre && n >= op->slen && memcmp(p, op->str, op->slen) == 0) pre = false;
    if (pre && n > 0 && p[0] == ' ') pre = false; /* the space itself becomes the replacement */
    size_t cap = n + spaces * op->slen + op->slen + 1;
    char *o = tok_arena_alloc(ws, cap);
    if (!o) return oom(err);
    size_t k = 0;
    if (pre) { memcpy(o, op->str, op->slen); k = op->slen; }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == ' ') { memcpy(o + k, op->str, op->slen); k += op->slen; }
        else o[k++] = p[i];
    }
    if (!op->flag) return PUSH_B(ws, o, k) ? RF_OK : oom(err);
    size_t start = 0;
    for (size_t i = 0; i + op->slen <= k; i++) {
        if (i > start && memcmp(o + i, op->str, op->slen) == 0) {
            if (!PUSH_B(ws, o + start, i - start)) return oom(err);
            start = i;
        }
    }
    return PUSH_B(ws, o + start, k - start) ? RF_OK : oom(err);
}

rf_status tok_pretokenize(const rf_tokenizer *t, rf_tok_ws *ws, const char *s, size_t n,
                          bool first, rf_error *err) {
    ws->n_pa = 0;
    if (!push_piece(&ws->pa, &ws->n_pa, &ws->cap_pa, s, n)) return oom(err);
    for (int k = 0; k < t->n_pre; k++) {
        const tok_pre_op *op = &t->pre[k];
        ws->n_pb = 0;
        for (size_t i = 0; i < ws->n_pa; i++) {
            const char *p = ws->pa[i].p;
            size_t len = ws->pa[i].len;
            rf_status st = RF_OK;
            switch (op->kind) {
            case TP_SPLIT_RE:
            case TP_SPLIT_STR:
                if (op->kind == TP_SPLIT_RE && op->behavior == SB_ISOLATED && !op->invert)
                    st = split_isolated(op, ws, p, len, err);
                else
                    st = split_piece(op, ws, p, len, err);
                break;
            case TP_BYTELEVEL: {
                if (op->flag && len > 0 && p[0] != ' ') {
                    char *o = tok_arena_alloc(ws, len + 1);
                    if (!o) return oom(err);
                    o[0] = ' ';
                    memcpy(o + 1, p, len);
                    p = o;
                    len++;
                }
                if (op->re) st = split_isolated(op, ws, p, len, err);
                else if (!PUSH_B(ws, p, len)) st = oom(err);
                break;
            }
            case TP_METASPACE:
                st = metaspace(op, ws, p, len, first && i == 0 && p == s, err);
                break;
            default:
                RF_ASSERT(0);
            }
            if (st) return st;
        }
        tok_piece *tp = ws->pa; ws->pa = ws->pb; ws->pb = tp;
        size_t tn = ws->cap_pa; ws->cap_pa = ws->cap_pb; ws->cap_pb = tn;
        ws->n_pa = ws->n_pb;
    }
    return RF_OK;
}
