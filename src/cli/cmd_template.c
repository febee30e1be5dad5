/*
 * cmd_template.c - `rocmforge template`: renders a chat template with a
 * conversation and prints the prompt exactly (no newline added), the way
 * Hugging Face's apply_chat_template would. The template comes from a
 * model (-m: tokenizer.chat_template, with bos/eos texts from the
 * vocabulary, and the built-in fallback chat uses when the model's own
 * template fails), from a file (--template: strict, errors are reported),
 * or from the built-in families (--builtin NAME).
 *
 * The variables are messages (--messages, a JSON array), tools (--tools, a
 * JSON array, else None), documents (None), add_generation_prompt,
 * bos_token, eos_token, plus any --var key=value (value read as JSON when it
 * parses, else as a string). --date fixes what strftime_now() sees.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "gguf/gguf.h"
#include "template/template.h"

enum { O_MODEL, O_TEMPLATE, O_BUILTIN, O_MESSAGES, O_TOOLS, O_AGP, O_DATE, O_BOS, O_EOS, O_PRINT,
       O_COUNT };
static const rf_opt opts[O_COUNT] = {
    [O_MODEL] = {"--model", "-m", true},
    [O_TEMPLATE] = {"--template", NULL, true},
    [O_BUILTIN] = {"--builtin", NULL, true},
    [O_MESSAGES] = {"--messages", NULL, true},
    [O_TOOLS] = {"--tools", NULL, true},
    [O_AGP] = {"--add-generation-prompt", NULL, false},
    [O_DATE] = {"--date", NULL, true},
    [O_BOS] = {"--bos", NULL, true},
    [O_EOS] = {"--eos", NULL, true},
    [O_PRINT] = {"--print-template", NULL, false},
};

#define MAX_VARS 64

static void usage(FILE *out) {
    fprintf(out,
            "usage: rocmforge template (-m MODEL.gguf | --template FILE.jinja | --builtin NAME)\n"
            "                          --messages MESSAGES.json [--tools TOOLS.json]\n"
            "                          [--add-generation-prompt] [--var key=value]...\n"
            "                          [--date YYYY-MM-DD] [--bos TEXT] [--eos TEXT]\n\n"
            "  -m, --model FILE         use the model's tokenizer.chat_template (falls back to\n"
            "                           the built-in template of its family if it fails)\n"
            "  --template FILE          use this Jinja template\n"
            "  --builtin NAME           use a built-in template:");
    for (int i = 0; rf_tmpl_family_name(i); i++) fprintf(out, " %s", rf_tmpl_family_name(i));
    fprintf(out,
            "\n  --messages FILE          JSON array of {\"role\", \"content\", ...} messages\n"
            "  --tools FILE             JSON array of tool definitions\n"
            "  --add-generation-prompt  end with the assistant turn's opening\n"
            "  --var key=value          an extra template variable (JSON, or a string)\n"
            "  --date YYYY-MM-DD        the date strftime_now() sees (default: now)\n"
            "  --bos TEXT, --eos TEXT   bos_token / eos_token (default: the model's, else empty)\n"
            "  --print-template         print the template's text (the one used) and exit\n");
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        rf_cli_error("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 65536 * 2;
            char *nb = rf_realloc(buf, cap);
            if (!nb) {
                rf_free(buf);
                fclose(f);
                rf_cli_error("out of memory reading %s", path);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        rf_free(buf);
        rf_cli_error("cannot read %s", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static json_t *load_json_file(const char *path, const char *what) {
    json_error_t je;
    json_t *j = json_load_file(path, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!j) rf_cli_error("%s %s: %s (line %d, column %d)", what, path, je.text, je.line, je.column);
    return j;
}

/* The model's template and bos/eos token texts (copies the caller frees). */
static int read_model(const char *path, char **tmpl, size_t *tlen, char **bos, char **eos,
                      char **arch) {
    rf_gguf *g;
    rf_error err = {0};
    if (rf_gguf_open(path, &g, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        return RF_EXIT_BADINPUT;
    }
    rf_str s;
    *tmpl = NULL;
    if (rf_gguf_get_str(g, "general.architecture", &s, NULL) == RF_OK) *arch = rf_strndup(s.ptr, s.len);
    if (rf_gguf_get_str(g, "tokenizer.chat_template", &s, NULL) == RF_OK) {
        *tmpl = rf_strndup(s.ptr, s.len);
        *tlen = s.len;
    }
    rf_gguf_arr toks;
    bool have_toks = rf_gguf_get_arr(g, "tokenizer.ggml.tokens", &toks, NULL) == RF_OK &&
                     toks.elem_type == RF_GGUF_STRING;
    static const char *keys[2] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    char **dst[2] = {bos, eos};
    for (int i = 0; i < 2; i++) {
        uint32_t id;
        if (have_toks && rf_gguf_get_u32(g, keys[i], &id, NULL) == RF_OK && id < toks.n) {
            rf_str t = rf_gguf_arr_str(&toks, id);
            *dst[i] = rf_strndup(t.ptr, t.len);
        }
    }
    rf_gguf_close(g);
    return 0;
}

static bool parse_date(const char *s, time_t *out) {
    int y, m, d;
    char extra;
    if (sscanf(s, "%d-%d-%d%c", &y, &m, &d, &extra) != 3 || y < 1 || y > 9999 || m < 1 ||
        m > 12 || d < 1 || d > 31) {
        rf_cli_error("--date: '%s' is not YYYY-MM-DD", s);
        return false;
    }
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    *out = timegm(&tm);
    return true;
}

/* Sets ctx[key] from "key=value": JSON when it parses, else the string. */
static bool add_var(json_t *ctx, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        rf_cli_error("--var: expected key=value, got '%s'", kv);
        return false;
    }
    char *key = rf_strndup(kv, (size_t)(eq - kv));
    if (!key) return false;
    json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
    if (!v) v = json_string(eq + 1);
    bool ok = v && json_object_set_new(ctx, key, v) == 0;
    rf_free(key);
    if (!ok) rf_cli_error("--var: cannot set '%s'", kv);
    return ok;
}

static int run(int argc, char **argv) {
    /* --var repeats, which rf_args does not do: take them out first */
    const char *vars[MAX_VARS];
    int nvars = 0;
    char **rest = rf_calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) return RF_EXIT_BADINPUT;
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "--var") == 0) {
            if (i + 1 >= argc) {
                rf_cli_error("option --var needs a value");
                rf_free(rest);
                return RF_EXIT_USAGE;
            }
            val = argv[++i];
        } else if (strncmp(a, "--var=", 6) == 0) {
            val = a + 6;
        } else {
            rest[nrest++] = argv[i];
            continue;
        }
        if (nvars == MAX_VARS) {
            rf_cli_error("too many --var options (at most %d)", MAX_VARS);
            rf_free(rest);
            return RF_EXIT_USAGE;
        }
        vars[nvars++] = val;
    }
    rf_args a;
    bool help;
    int rc = rf_args_parse(nrest, rest, opts, O_COUNT, &a, &help);
    rf_free(rest);
    if (rc) return rc;
    if (help) {
        usage(stdout);
        return RF_EXIT_OK;
    }
    int sources = !!a.val[O_MODEL] + !!a.val[O_TEMPLATE] + !!a.val[O_BUILTIN];
    bool print_only = a.val[O_PRINT] != NULL;
    if (sources != 1 || (!a.val[O_MESSAGES] && !print_only) || a.n_pos) {
        rf_cli_error(sources != 1 ? "give exactly one of -m, --template, --builtin"
                                  : !a.val[O_MESSAGES] ? "--messages is required"
                                                       : "unexpected argument");
        usage(stderr);
        return RF_EXIT_USAGE;
    }
    rf_tmpl_opts topts = {0};
    if (a.val[O_DATE]) {
        if (!parse_date(a.val[O_DATE], &topts.now)) return RF_EXIT_USAGE;
        topts.has_now = true;
    }

    int exit_code = RF_EXIT_BADINPUT;
    char *src = NULL, *bos = NULL, *eos = NULL, *out = NULL, *arch = NULL;
    size_t slen = 0, olen = 0;
    rf_tmpl *t = NULL;
    json_t *ctx = NULL;
    rf_error err = {0};

    if (a.val[O_MODEL]) {
        if (read_model(a.val[O_MODEL], &src, &slen, &bos, &eos, &arch)) goto done;
        const char *fam = NULL;
        if (rf_tmpl_load_with_fallback(src, slen, arch, &t, &fam, &err) != RF_OK) {
            rf_cli_error("%s", err.msg);
            goto done;
        }
        if (strcmp(fam, "model") != 0) { /* print the fallback actually used */
            rf_free(src);
            slen = strlen(rf_tmpl_builtin(fam));
            src = rf_strndup(rf_tmpl_builtin(fam), slen);
            if (!src) goto done;
        }
    } else {
        if (a.val[O_TEMPLATE]) {
            if (!(src = read_file(a.val[O_TEMPLATE], &slen))) goto done;
        } else {
            const char *b = rf_tmpl_builtin(a.val[O_BUILTIN]);
            if (!b) {
                rf_cli_error("--builtin: unknown family '%s'", a.val[O_BUILTIN]);
                exit_code = RF_EXIT_USAGE;
                goto done;
            }
            slen = strlen(b);
            src = rf_strndup(b, slen);
        }
        if (!src || rf_tmpl_parse(src, slen, &t, &err) != RF_OK) {
            rf_cli_error("%s: %s", a.val[O_TEMPLATE] ? a.val[O_TEMPLATE] : "template", err.msg);
            goto done;
        }
    }

    if (print_only) {
        exit_code = fwrite(src, 1, slen, stdout) == slen && fflush(stdout) == 0 ? RF_EXIT_OK
                                                                              : RF_EXIT_BADINPUT;
        goto done;
    }
    ctx = json_object();
    json_t *msgs = load_json_file(a.val[O_MESSAGES], "--messages");
    if (!ctx || !msgs) { json_decref(msgs); goto done; }
    json_object_set_new(ctx, "messages", msgs);
    json_t *tools = json_null();
    if (a.val[O_TOOLS] && !(tools = load_json_file(a.val[O_TOOLS], "--tools"))) goto done;
    json_object_set_new(ctx, "tools", tools);
    json_object_set_new(ctx, "documents", json_null());
    json_object_set_new(ctx, "add_generation_prompt", json_boolean(a.val[O_AGP] != NULL));
    const char *b = a.val[O_BOS] ? a.val[O_BOS] : bos ? bos : "";
    const char *e = a.val[O_EOS] ? a.val[O_EOS] : eos ? eos : "";
    json_object_set_new(ctx, "bos_token", json_string(b));
    json_object_set_new(ctx, "eos_token", json_string(e));
    for (int i = 0; i < nvars; i++)
        if (!add_var(ctx, vars[i])) {
            exit_code = RF_EXIT_USAGE;
            goto done;
        }

    if (rf_tmpl_render(t, ctx, &topts, &out, &olen, &err) != RF_OK) {
        rf_cli_error("template: %s", err.msg);
        goto done;
    }
    if (fwrite(out, 1, olen, stdout) != olen || fflush(stdout) != 0) {
        rf_cli_error("cannot write the output");
        goto done;
    }
    exit_code = RF_EXIT_OK;
done:
    rf_free(out);
    json_decref(ctx);
    rf_tmpl_free(t);
    rf_free(src);
    rf_free(bos);
    rf_free(eos);
    rf_free(arch);
    return exit_code;
}

const rf_cmd rf_cmd_template = {
    .name = "template",
    .summary = "render a chat template with a conversation (as transformers would)",
    .run = run,
    .usage = usage,
};
