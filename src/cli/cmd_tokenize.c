/*
 * cmd_tokenize.c - `rocmforge tokenize` and `rocmforge detokenize`: the
 * tokenizer of a GGUF model (-m) or of a Hugging Face tokenizer.json
 * (--tokenizer) on the command line. tokenize prints ids (or id + piece per
 * line); --batch FILE tokenizes many strings in one process (the .inp format
 * of llama.cpp's tokenizer test vectors: strings separated by lines holding
 * __ggml_vocab_test__), one line of ids per string. detokenize prints the
 * text of ids exactly, through the streaming detokenizer.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

/* ---- shared: loading -------------------------------------------------------------- */

static int load_tokenizer(const char *model, const char *json, bool pre_fallback,
                          rf_tokenizer **out) {
    rf_error err = {0};
    rf_tok_opts o = {.pre_fallback_gpt2 = pre_fallback};
    if ((model != NULL) == (json != NULL)) {
        rf_cli_error("give exactly one of -m MODEL.gguf and --tokenizer tokenizer.json");
        return RF_EXIT_USAGE;
    }
    if (model) {
        rf_gguf *g;
        if (rf_gguf_open(model, &g, &err) != RF_OK) {
            rf_cli_error("%s", err.msg);
            return RF_EXIT_BADINPUT;
        }
        rf_status st = rf_tokenizer_from_gguf(g, &o, out, &err);
        rf_gguf_close(g);
        if (st != RF_OK) {
            rf_cli_error("%s: %s", model, err.msg);
            return RF_EXIT_BADINPUT;
        }
        return RF_EXIT_OK;
    }
    if (rf_tokenizer_from_json(json, &o, out, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        return RF_EXIT_BADINPUT;
    }
    return RF_EXIT_OK;
}

/* Reads a whole file ("-" = stdin); caller frees. */
static char *read_all(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = rf_malloc(cap);
    while (buf) {
        if (n == cap) {
            char *nb = rf_realloc(buf, cap * 2);
            if (!nb) { rf_free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    if (f != stdin) fclose(f);
    if (bad) { rf_free(buf); return NULL; }
    *len = n;
    return buf;
}

/* ---- tokenize ---------------------------------------------------------------------- */

enum { T_MODEL, T_JSON, T_ADD, T_PARSE, T_IDS, T_PIECES, T_BATCH, T_PREFB, T_COUNT };
static const rf_opt tok_opts[T_COUNT] = {
    [T_MODEL] = {"--model", "-m", true},
    [T_JSON] = {"--tokenizer", NULL, true},
    [T_ADD] = {"--add-special", NULL, false},
    [T_PARSE] = {"--parse-special", NULL, false},
    [T_IDS] = {"--ids", NULL, false},
    [T_PIECES] = {"--pieces", NULL, false},
    [T_BATCH] = {"--batch", NULL, true},
    [T_PREFB] = {"--pre-fallback", NULL, false},
};

static void tok_usage(FILE *out) {
    fprintf(out,
            "usage: rocmforge tokenize (-m MODEL.gguf | --tokenizer tokenizer.json) [options] TEXT|-\n"
            "       rocmforge tokenize (-m ... | --tokenizer ...) [options] --batch FILE\n\n"
            "  --add-special    add BOS/EOS (or the template's tokens) as the model asks\n"
            "  --parse-special  recognise control-token text such as <|im_start|> (default: plain text)\n"
            "  --ids            print the ids separated by spaces and a newline (the default)\n"
            "  --pieces         print 'id<TAB>piece' per line (piece escaped: \\n, \\t, \\\\, \\xNN)\n"
            "  --batch FILE     strings separated by lines '__ggml_vocab_test__'; one line of ids each\n"
            "  --pre-fallback   unknown tokenizer.ggml.pre: use the gpt-2 regex instead of failing\n"
            "  TEXT             the text; '-' reads it from stdin\n");
}

static void print_piece(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else if (c >= 0x80) {
            /* keep complete UTF-8 characters, escape stray bytes */
            size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
            bool ok = k && i + k <= n;
            for (size_t j = 1; ok && j < k; j++) ok = ((unsigned char)p[i + j] & 0xC0) == 0x80;
            if (ok) { fwrite(p + i, 1, k, stdout); i += k - 1; }
            else printf("\\x%02x", c);
        } else
            putchar(c);
    }
}

static void print_ids(const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
}

static const char batch_sep[] = "\n__ggml_vocab_test__\n";

static int run_batch(const rf_tokenizer *t, const char *path, bool add, bool parse) {
    size_t len;
    char *buf = read_all(path, &len);
    if (!buf) {
        rf_cli_error("cannot read %s", path);
        return RF_EXIT_BADINPUT;
    }
    rf_tok_ws *ws = rf_tok_ws_new();
    if (!ws) { rf_free(buf); rf_cli_error("out of memory"); return RF_EXIT_BADINPUT; }
    int rc = RF_EXIT_OK;
    size_t pos = 0, seplen = sizeof batch_sep - 1;
    while (pos < len) {
        const char *next = NULL;
        for (size_t i = pos; i + seplen <= len; i++)
            if (buf[i] == '\n' && memcmp(buf + i, batch_sep, seplen) == 0) { next = buf + i; break; }
        size_t n = next ? (size_t)(next - (buf + pos)) : len - pos;
        const int32_t *ids;
        size_t nid;
        rf_error err = {0};
        if (rf_tokenize_ws(t, ws, buf + pos, n, add, parse, &ids, &nid, &err) != RF_OK) {
            rf_cli_error("%s", err.msg);
            rc = RF_EXIT_BADINPUT;
            break;
        }
        print_ids(ids, nid);
        if (!next) break;
        pos += n + seplen;
    }
    rf_tok_ws_free(ws);
    rf_free(buf);
    return rc;
}

static int cmd_tokenize(int argc, char **argv) {
    rf_args a;
    bool help;
    int rc = rf_args_parse(argc, argv, tok_opts, T_COUNT, &a, &help);
    if (rc) return rc;
    if (help) { tok_usage(stdout); return RF_EXIT_OK; }
    bool batch = a.val[T_BATCH] != NULL;
    if ((batch && a.n_pos != 0) || (!batch && a.n_pos != 1)) {
        tok_usage(stderr);
        return RF_EXIT_USAGE;
    }
    if (a.val[T_IDS] && a.val[T_PIECES]) {
        rf_cli_error("--ids and --pieces exclude each other");
        return RF_EXIT_USAGE;
    }
    rf_tokenizer *t;
    if ((rc = load_tokenizer(a.val[T_MODEL], a.val[T_JSON], a.val[T_PREFB] != NULL, &t))) return rc;
    bool add = a.val[T_ADD] != NULL, parse = a.val[T_PARSE] != NULL;
    if (batch) {
        rc = run_batch(t, a.val[T_BATCH], add, parse);
        rf_tokenizer_free(t);
        return rc;
    }
    char *owned = NULL;
    const char *text = a.pos[0];
    size_t len = strlen(text);
    if (strcmp(text, "-") == 0) {
        owned = read_all("-", &len);
        if (!owned) { rf_tokenizer_free(t); rf_cli_error("cannot read stdin"); return RF_EXIT_BADINPUT; }
        text = owned;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    rf_error err = {0};
    if (rf_tokenize(t, text, len, add, parse, &ids, &n, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        rc = RF_EXIT_BADINPUT;
    } else if (a.val[T_PIECES]) {
        for (size_t i = 0; i < n; i++) {
            size_t pl;
            const char *p = rf_token_piece(t, ids[i], &pl);
            printf("%d\t", ids[i]);
            print_piece(p, pl);
            putchar('\n');
        }
    } else {
        print_ids(ids, n);
    }
    rf_free(ids);
    rf_free(owned);
    rf_tokenizer_free(t);
    return rc;
}

const rf_cmd rf_cmd_tokenize = {"tokenize", "text -> token ids with a model's tokenizer", cmd_tokenize,
                                tok_usage};

/* ---- detokenize ---------------------------------------------------------------------- */

enum { D_MODEL, D_JSON, D_SKIP, D_PREFB, D_COUNT };
static const rf_opt detok_opts[D_COUNT] = {
    [D_MODEL] = {"--model", "-m", true},
    [D_JSON] = {"--tokenizer", NULL, true},
    [D_SKIP] = {"--skip-special", NULL, false},
    [D_PREFB] = {"--pre-fallback", NULL, false},
};

static void detok_usage(FILE *out) {
    fprintf(out,
            "usage: rocmforge detokenize (-m MODEL.gguf | --tokenizer tokenizer.json) [--skip-special] IDS...\n\n"
            "  IDS             token ids as arguments, or one argument of space-separated ids\n"
            "  --skip-special  control tokens produce no text (default: their text is printed)\n"
            "Prints the decoded text exactly (no newline added); incomplete or invalid UTF-8 is\n"
            "printed as U+FFFD.\n");
}

static int cmd_detokenize(int argc, char **argv) {
    rf_args a;
    bool help;
    int rc = rf_args_parse(argc, argv, detok_opts, D_COUNT, &a, &help);
    if (rc) return rc;
    if (help) { detok_usage(stdout); return RF_EXIT_OK; }
    if (a.n_pos < 1) { detok_usage(stderr); return RF_EXIT_USAGE; }
    /* collect ids from all arguments (each may hold several) */
    size_t cap = 64, n = 0;
    int32_t *ids = rf_malloc(cap * sizeof *ids);
    if (!ids) { rf_cli_error("out of memory"); return RF_EXIT_BADINPUT; }
    for (int i = 0; i < a.n_pos; i++) {
        const char *s = a.pos[i];
        while (*s) {
            while (*s == ' ' || *s == '\t' || *s == '\n' || *s == ',') s++;
            if (!*s) break;
            char *end;
            long v = strtol(s, &end, 10);
            if (end == s || v < 0 || v > INT32_MAX || (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != ',')) {
                rf_cli_error("'%s' is not a list of token ids", a.pos[i]);
                rf_free(ids);
                return RF_EXIT_USAGE;
            }
            if (n == cap) {
                int32_t *nb = rf_realloc(ids, cap * 2 * sizeof *ids);
                if (!nb) { rf_free(ids); rf_cli_error("out of memory"); return RF_EXIT_BADINPUT; }
                ids = nb;
                cap *= 2;
            }
            ids[n++] = (int32_t)v;
            s = end;
        }
    }
    rf_tokenizer *t;
    if ((rc = load_tokenizer(a.val[D_MODEL], a.val[D_JSON], a.val[D_PREFB] != NULL, &t))) {
        rf_free(ids);
        return rc;
    }
    rf_detok d;
    rf_detok_init(&d, t, a.val[D_SKIP] ? RF_DETOK_SKIP_SPECIAL : 0);
    size_t ocap = rf_detok_max_out(t);
    char *out = rf_malloc(ocap);
    rf_error err = {0};
    if (!out) { rc = RF_EXIT_BADINPUT; rf_cli_error("out of memory"); }
    for (size_t i = 0; out && i < n; i++) {
        size_t k;
        if (rf_detok_push(&d, ids[i], out, ocap, &k, &err) != RF_OK) {
            rf_cli_error("%s", err.msg);
            rc = RF_EXIT_BADINPUT;
            break;
        }
        fwrite(out, 1, k, stdout);
    }
    if (out && rc == RF_EXIT_OK) fwrite(out, 1, rf_detok_flush(&d, out, ocap), stdout);
    fflush(stdout);
    rf_free(out);
    rf_free(ids);
    rf_tokenizer_free(t);
    return rc;
}

const rf_cmd rf_cmd_detokenize = {"detokenize", "token ids -> text with a model's tokenizer",
                                  cmd_detokenize, detok_usage};
