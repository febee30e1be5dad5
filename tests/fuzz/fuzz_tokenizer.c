/*
 * fuzz_tokenizer.c - libFuzzer target for the tokenizer: arbitrary bytes are
 * tokenized (parse_special on and off, add_special on and off) and decoded
 * both whole and one id at a time by four tokenizers built once: the SPM,
 * byte-level BPE and WordPiece GGUF vocabularies and the Qwen 3
 * tokenizer.json (NFC + regex split). Checked beyond "no crash":
 *   - tokenizing never fails (every input is valid after U+FFFD repair);
 *   - streaming decode == whole decode, and both are valid UTF-8;
 *   - SPM and byte-level BPE round-trip valid UTF-8 exactly.
 * Test data is found in $RF_TESTDATA or ../shared/testdata (CI runs
 * fuzzers from the repository root with ../shared beside it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { TK_SPM, TK_BPE, TK_WPM, TK_JSON, TK_COUNT };
static rf_tokenizer *toks[TK_COUNT];
static rf_tok_ws *ws;

static rf_tokenizer *load_gguf(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab/%s", dir, name);
    rf_gguf *g;
    rf_error err = {0};
    rf_tokenizer *t = NULL;
    if (rf_gguf_open(path, &g, &err) != RF_OK || rf_tokenizer_from_gguf(g, NULL, &t, &err) != RF_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, err.msg);
        abort();
    }
    rf_gguf_close(g);
    return t;
}

static void init(void) {
    const char *dir = getenv("RF_TESTDATA");
    if (!dir) dir = "../shared/testdata";
    toks[TK_SPM] = load_gguf(dir, "ggml-vocab-llama-spm.gguf");
    toks[TK_BPE] = load_gguf(dir, "ggml-vocab-gpt-2.gguf");
    toks[TK_WPM] = load_gguf(dir, "ggml-vocab-bert-bge.gguf");
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/qwen3/tokenizer.json", dir);
    rf_error err = {0};
    if (rf_tokenizer_from_json(path, NULL, &toks[TK_JSON], &err) != RF_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
    ws = rf_tok_ws_new();
    if (!ws) abort();
}

static bool valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (!k || i + k > n) return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        if (c == 0xE0 && s[i + 1] < 0xA0) return false;
        if (c == 0xED && s[i + 1] > 0x9F) return false;
        if (c == 0xF0 && s[i + 1] < 0x90) return false;
        if (c == 0xF4 && s[i + 1] > 0x8F) return false;
        i += k;
    }
    return true;
}

static void check(bool ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ws) init();
    if (size == 0) return 0;
    uint8_t mode = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    bool input_valid = valid_utf8((const uint8_t *)text, len);
    bool has_mark = false;
    for (size_t i = 0; i + 3 <= len && !has_mark; i++) has_mark = memcmp(text + i, "\xe2\x96\x81", 3) == 0;
    for (int k = 0; k < TK_COUNT; k++) {
        const rf_tokenizer *t = toks[k];
        for (int parse = 0; parse < 2; parse++) {
            bool add = (mode >> parse) & 1;
            const int32_t *ids;
            size_t n;
            rf_error err = {0};
            if (rf_tokenize_ws(t, ws, text, len, add, parse, &ids, &n, &err) != RF_OK) {
                fprintf(stderr, "fuzz_tokenizer: tokenize failed: %s\n", err.msg);
                abort();
            }
            char *whole;
            size_t wl;
            check(rf_detokenize(t, ids, n, 0, &whole, &wl, &err) == RF_OK, "detokenize failed");
            check(valid_utf8((const uint8_t *)whole, wl), "decoded text is not valid UTF-8");
            /* streaming, one id at a time */
            size_t cap = rf_detok_max_out(t);
            char *buf = malloc(cap), *acc = malloc(wl + 8);
            size_t al = 0;
            rf_detok d;
            rf_detok_init(&d, t, 0);
            for (size_t i = 0; i < n; i++) {
                size_t m;
                check(rf_detok_push(&d, ids[i], buf, cap, &m, &err) == RF_OK, "detok push failed");
                check(al + m <= wl, "streaming wrote more than the whole decode");
                memcpy(acc + al, buf, m);
                al += m;
            }
            size_t m = rf_detok_flush(&d, buf, cap);
            check(al + m <= wl, "streaming flush wrote more than the whole decode");
            memcpy(acc + al, buf, m);
            al += m;
            check(al == wl && memcmp(acc, whole, wl) == 0, "streaming decode != whole decode");
            /* SPM cannot round-trip a literal U+2581: it is its space mark */
            if (input_valid && !parse && !add && (k == TK_BPE || (k == TK_SPM && !has_mark)))
                check(wl == len && memcmp(whole, text, len) == 0, "decode(encode(x)) != x");
            free(buf);
            free(acc);
            rf_free(whole);
        }
    }
    return 0;
}
