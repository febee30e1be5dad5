/*
 * rf_tok_tool.c - drives the tokenizer for the Python reference tests and
 * the benchmark, many inputs per process.
 *
 *   rf_tok_tool (--gguf F | --json F) serve
 *       stdin lines "AP HEX": A/P = 0|1 add_special / parse_special, HEX =
 *       the input bytes (any bytes, so invalid UTF-8 can be sent). Output
 *       per line: "ids<TAB>HEX(decoded text)" where the decoded text comes
 *       from the streaming detokenizer pushed one id at a time, or
 *       "ERR<TAB>message".
 *   rf_tok_tool (--gguf F | --json F) bench FILE [REPS]
 *       encodes every line of FILE (a line = one call), REPS times, and
 *       prints bytes, tokens, seconds and MB/s of the encode loop only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static int load(const char *kind, const char *path, rf_tokenizer **t) {
    rf_error err = {0};
    if (strcmp(kind, "--gguf") == 0) {
        rf_gguf *g;
        if (rf_gguf_open(path, &g, &err) != RF_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
        rf_status st = rf_tokenizer_from_gguf(g, NULL, t, &err);
        rf_gguf_close(g);
        if (st != RF_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
        return 0;
    }
    if (rf_tokenizer_from_json(path, NULL, t, &err) != RF_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
    return 0;
}

static int hexv(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void put_hex(const char *p, size_t n) {
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        putchar(d[(unsigned char)p[i] >> 4]);
        putchar(d[(unsigned char)p[i] & 15]);
    }
}

static int serve(const rf_tokenizer *t) {
    rf_tok_ws *ws = rf_tok_ws_new();
    size_t ocap = rf_detok_max_out(t);
    char *out = malloc(ocap);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    while ((ll = getline(&line, &lcap, stdin)) > 0) {
        while (ll > 0 && (line[ll - 1] == '\n' || line[ll - 1] == '\r')) line[--ll] = '\0';
        if (ll < 2) { printf("ERR\tbad line\n"); continue; }
        bool add = line[0] == '1', parse = line[1] == '1';
        const char *h = line + 2;
        while (*h == ' ') h++;
        size_t hn = strlen(h) / 2;
        char *text = malloc(hn + 1);
        for (size_t i = 0; i < hn; i++) text[i] = (char)(hexv(h[2 * i]) * 16 + hexv(h[2 * i + 1]));
        const int32_t *ids;
        size_t n;
        rf_error err = {0};
        if (rf_tokenize_ws(t, ws, text, hn, add, parse, &ids, &n, &err) != RF_OK) {
            printf("ERR\t%s\n", err.msg);
            free(text);
            continue;
        }
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\t');
        rf_detok d;
        rf_detok_init(&d, t, 0);
        for (size_t i = 0; i < n; i++) {
            size_t k;
            if (rf_detok_push(&d, ids[i], out, ocap, &k, &err) != RF_OK) break;
            put_hex(out, k);
        }
        put_hex(out, rf_detok_flush(&d, out, ocap));
        putchar('\n');
        fflush(stdout);
        free(text);
    }
    free(line);
    free(out);
    rf_tok_ws_free(ws);
    return 0;
}

static int bench(const rf_tokenizer *t, const char *path, int reps) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 1; }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) { fclose(f); return 1; }
    fclose(f);
    rf_tok_ws *ws = rf_tok_ws_new();
    size_t tokens = 0;
    double t0 = rf_time_now();
    for (int r = 0; r < reps; r++) {
        size_t pos = 0;
        while (pos < (size_t)sz) {
            char *nl = memchr(buf + pos, '\n', (size_t)sz - pos);
            size_t n = nl ? (size_t)(nl - (buf + pos)) + 1 : (size_t)sz - pos;
            const int32_t *ids;
            size_t k;
            rf_error err = {0};
            if (rf_tokenize_ws(t, ws, buf + pos, n, false, false, &ids, &k, &err) != RF_OK) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            tokens += k;
            pos += n;
        }
    }
    double dt = rf_time_now() - t0;
    printf("bytes %ld tokens %zu seconds %.4f MB/s %.2f\n", sz, tokens / (size_t)reps, dt / reps,
           (double)sz * reps / dt / 1e6);
    rf_tok_ws_free(ws);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: rf_tok_tool (--gguf F | --json F) serve | bench FILE [REPS]\n");
        return 1;
    }
    rf_tokenizer *t;
    if (load(argv[1], argv[2], &t)) return 2;
    int rc;
    if (strcmp(argv[3], "serve") == 0) rc = serve(t);
    else if (strcmp(argv[3], "bench") == 0 && argc >= 5) rc = bench(t, argv[4], argc >= 6 ? atoi(argv[5]) : 1);
    else { fprintf(stderr, "unknown mode %s\n", argv[3]); rc = 1; }
    rf_tokenizer_free(t);
    return rc;
}
