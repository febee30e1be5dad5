/*
 * chunk.c - splitting long texts into overlapping windows of tokens for
 * embedding. Windows are cut on token boundaries of the model's own
 * tokenizer (so a chunk never exceeds what the embedder reads) and turned
 * back into text with the detokenizer; consecutive windows share
 * `overlap` tokens so a sentence cut at one boundary is whole in a chunk.
 */
#include <string.h>

#include "context.h"

void rf_chunks_free(char **chunks, int n) {
    if (!chunks) return;
    for (int i = 0; i < n; i++) rf_free(chunks[i]);
    rf_free(chunks);
}

/* Drops leading and trailing ASCII blanks of s in place; returns its length. */
static size_t trim(char *s, size_t n) {
    size_t a = 0;
    while (a < n && (s[a] == ' ' || s[a] == '\n' || s[a] == '\t' || s[a] == '\r')) a++;
    while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    memmove(s, s + a, n - a);
    s[n - a] = '\0';
    return n - a;
}

rf_status rf_chunk_text(const rf_tokenizer *tok, const char *text, size_t len, int64_t chunk_tokens,
                        int64_t overlap_tokens, char ***chunks, int *n_chunks, rf_error *err) {
    *chunks = NULL;
    *n_chunks = 0;
    if (chunk_tokens < 8) return rf_error_set(err, RF_E_INVAL, "chunks must have at least 8 tokens");
    if (overlap_tokens < 0 || overlap_tokens >= chunk_tokens)
        return rf_error_set(err, RF_E_INVAL, "the chunk overlap must be below the chunk length");
    int32_t *ids = NULL;
    size_t n = 0;
    rf_status st = rf_tokenize(tok, text, len, false, false, &ids, &n, err);
    if (st != RF_OK) return st;
    if (n == 0) {
        rf_free(ids);
        return rf_error_set(err, RF_E_INVAL, "the text is empty");
    }
    int64_t step = chunk_tokens - overlap_tokens;
    int cnt = n <= (size_t)chunk_tokens ? 1 : (int)(((int64_t)n - overlap_tokens + step - 1) / step);
    char **out = rf_calloc((size_t)cnt, sizeof *out);
    if (!out) {
        rf_free(ids);
        return rf_error_set(err, RF_E_NOMEM, "out of memory");
    }
    int m = 0;
    if (cnt == 1) {
        if (!(out[m++] = rf_strndup(text, len))) st = rf_error_set(err, RF_E_NOMEM, "out of memory");
    } else {
        for (int64_t a = 0; a < (int64_t)n && st == RF_OK; a += step) {
            int64_t b = a + chunk_tokens < (int64_t)n ? a + chunk_tokens : (int64_t)n;
            char *t = NULL;
            size_t tl = 0;
            if ((st = rf_detokenize(tok, ids + a, (size_t)(b - a), RF_DETOK_KEEP_LEADING_SPACE, &t, &tl, err)) != RF_OK) break;
            tl = trim(t, tl);
            if (tl) out[m++] = t;
            else rf_free(t);
            if (b == (int64_t)n) break;
        }
    }
    rf_free(ids);
    if (st == RF_OK && m == 0) st = rf_error_set(err, RF_E_INVAL, "the text is empty");
    if (st != RF_OK) {
        rf_chunks_free(out, cnt);
        return st;
    }
    *chunks = out;
    *n_chunks = m;
    return RF_OK;
}
