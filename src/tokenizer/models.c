/*
 * models.c - the three model algorithms, each turning one pre-tokenized
 * piece of valid UTF-8 into ids appended to ws->ids:
 *
 *   SPM  llama.cpp's SentencePiece BPE: start from characters, repeatedly
 *        join the adjacent pair whose concatenation is the vocabulary token
 *        with the highest score (ties: leftmost); characters that end up as
 *        no token become <0xXX> byte tokens.
 *   BPE  merge by rank: start from bytes (byte-level, via the GPT-2 map) or
 *        characters (with <0xXX> byte fallback / unk), repeatedly apply the
 *        lowest-ranked merge among adjacent pairs (ties: leftmost).
 *   WPM  WordPiece as llama.cpp does it: lower-case, strip accents, split on
 *        whitespace and punctuation, greedy longest match per word with a
 *        leading U+2581, unknown word -> [UNK].
 *
 * SPM and BPE keep the candidate pairs in a binary min-heap (key = order
 * << 32 | left index), so a word of n symbols costs O(n log n); stale heap
 * entries are recognised and skipped. All memory is the workspace's.
 */
#include <string.h>

#include "tok-impl.h"

static rf_status oom(rf_error *err) {
    return rf_error_set(err, RF_E_NOMEM, "tokenizer: out of memory");
}

/* ---- heap ------------------------------------------------------------------------ */

static bool heap_push(rf_tok_ws *ws, tok_heap_ent e) {
    if (ws->n_heap == ws->cap_heap) {
        size_t cap = ws->cap_heap ? ws->cap_heap * 2 : 256;
        tok_heap_ent *p = rf_realloc(ws->heap, cap * sizeof *p);
        if (!p) return false;
        ws->heap = p;
        ws->cap_heap = cap;
    }
    tok_heap_ent *h = ws->heap;
    size_t i = ws->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent].key <= e.key) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = e;
    return true;
}

static tok_heap_ent heap_pop(rf_tok_ws *ws) {
    tok_heap_ent *h = ws->heap;
    tok_heap_ent top = h[0];
    tok_heap_ent last = h[--ws->n_heap];
    size_t n = ws->n_heap, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c + 1].key < h[c].key) c++;
        if (last.key <= h[c].key) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

static bool syms_reserve(rf_tok_ws *ws, size_t n) {
    if (n <= ws->cap_syms) return true;
    size_t cap = ws->cap_syms ? ws->cap_syms : 256;
    while (cap < n) cap *= 2;
    tok_sym *p = rf_realloc(ws->syms, cap * sizeof *p);
    if (!p) return false;
    ws->syms = p;
    ws->cap_syms = cap;
    return true;
}

static size_t u8len(uint8_t c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* Orders floats ascending as unsigned integers. */
static uint32_t float_order(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/* ---- SPM ---------------------------------------------------------------------------- */

static bool spm_try_add(const rf_tokenizer *t, rf_tok_ws *ws, const char *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    const tok_sym *sy = ws->syms;
    uint32_t size = sy[l].len + sy[r].len;
    int32_t id = tok_lookup(t, s + sy[l].off, size);
    if (id < 0) return true;
    /* highest score first: invert the ascending order */
    uint64_t key = ((uint64_t)~float_order(t->tokens[id].score) << 32) | (uint32_t)l;
    return heap_push(ws, (tok_heap_ent){key, l, r, (int32_t)size, 0, id});
}

static bool push_bytes_fallback(const rf_tokenizer *t, rf_tok_ws *ws, const char *p, size_t n) {
    for (size_t j = 0; j < n; j++) {
        uint8_t b = (uint8_t)p[j];
        int32_t id = t->byte_tok[b] >= 0 ? t->byte_tok[b] : t->byte_raw[b] >= 0 ? t->byte_raw[b] : t->unk;
        if (id >= 0 && !tok_ids_push(ws, id)) return false;
    }
    return true;
}

rf_status tok_model_spm(const rf_tokenizer *t, rf_tok_ws *ws, const char *s, size_t n,
                        rf_error *err) {
    if (n == 0) return RF_OK;
    if (!syms_reserve(ws, n)) return oom(err);
    tok_sym *sy = ws->syms;
    int32_t ns = 0;
    for (size_t off = 0; off < n;) {
        size_t k = u8len((uint8_t)s[off]);
        if (k > n - off) k = n - off;
        sy[ns] = (tok_sym){-2, ns - 1, off + k == n ? -1 : ns + 1, (uint32_t)off, (uint32_t)k};
        ns++;
        off += k;
    }
    ws->n_heap = 0;
    for (int32_t i = 1; i < ns; i++)
        if (!spm_try_add(t, ws, s, i - 1, i)) return oom(err);
    while (ws->n_heap) {
        tok_heap_ent e = heap_pop(ws);
        tok_sym *L = &sy[e.left], *R = &sy[e.right];
        if (L->len == 0 || R->len == 0 || L->len + R->len != (uint32_t)e.lid) continue;
        L->len += R->len;
        L->id = e.merged;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) sy[R->next].prev = e.left;
        if (!spm_try_add(t, ws, s, L->prev, e.left) || !spm_try_add(t, ws, s, e.left, L->next))
            return oom(err);
    }
    for (int32_t i = 0; i != -1; i = sy[i].next) {
        int32_t id = sy[i].id;
        if (id == -2) id = tok_lookup(t, s + sy[i].off, sy[i].len);
        if (id >= 0) {
            if (!tok_ids_push(ws, id)) return oom(err);
        } else if (!push_bytes_fallback(t, ws, s + sy[i].off, sy[i].len)) {
            return oom(err);
        }
    }
    return RF_OK;
}

/* ---- BPE ---------------------------------------------------------------------------- */

static bool bpe_try_add(const rf_tokenizer *t, rf_tok_ws *ws, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return true;
    const tok_sym *sy = ws->syms;
    if (sy[l].id < 0 || sy[r].id < 0) return true;
    const tok_merge_val *m = tok_merges_find(t, sy[l].id, sy[r].id);
    if (!m) return true;
    uint64_t key = ((uint64_t)(uint32_t)m->rank << 32) | (uint32_t)l;
    return heap_push(ws, (tok_heap_ent){key, l, r, sy[l].id, sy[r].id, m->id});
}

/* Initial symbols of a character-level (non byte-level) BPE word. */
static bool bpe_init_chars(const rf_tokenizer *t, rf_tok_ws *ws, const char *s, size_t n,
                           int32_t *ns_out) {
    tok_sym *sy = ws->syms;
    int32_t ns = 0;
    bool prev_unk = false;
    for (size_t off = 0; off < n;) {
        size_t k = u8len((uint8_t)s[off]);
        if (k > n - off) k = n - off;
        int32_t id = tok_lookup(t, s + off, k);
        if (id >= 0) {
            sy[ns++] = (tok_sym){id, 0, 0, (uint32_t)off, (uint32_t)k};
            prev_unk = false;
        } else {
            bool done = false;
            if (t->byte_fallback) {
                done = true;
                for (size_t j = 0; j < k; j++)
                    if (t->byte_tok[(uint8_t)s[off + j]] < 0) done = false;
                if (done)
                    for (size_t j = 0; j < k; j++)
                        sy[ns++] = (tok_sym){t->byte_tok[(uint8_t)s[off + j]], 0, 0,
                                             (uint32_t)(off + j), 1};
                if (done) prev_unk = false;
            }
            if (!done && t->unk >= 0) {
                if (t->fuse_unk && prev_unk) sy[ns - 1].len += (uint32_t)k;
                else sy[ns++] = (tok_sym){t->unk, 0, 0, (uint32_t)off, (uint32_t)k};
                prev_unk = true;
            }
            /* no unk token: the character is dropped, as Hugging Face does */
        }
        off += k;
    }
    *ns_out = ns;
    return true;
}

rf_status tok_model_bpe(const rf_tokenizer *t, rf_tok_ws *ws, const char *s, size_t n,
                        rf_error *err) {
    if (n == 0) return RF_OK;
    if (t->ignore_merges) {
        int32_t id;
        if (t->byte_level) {
            ws->word.n = 0;
            if (!tok_buf_reserve(&ws->word, n * 2)) return oom(err);
            for (size_t i = 0; i < n; i++)
                ws->word.n += tok_utf8_encode(tok_byte_to_cp((uint8_t)s[i]), ws->word.p + ws->word.n);
            id = tok_lookup(t, ws->word.p, ws->word.n);
        } else {
            id = tok_lookup(t, s, n);
        }
        if (id >= 0) return tok_ids_push(ws, id) ? RF_OK : oom(err);
    }
    if (!syms_reserve(ws, n)) return oom(err);
    tok_sym *sy = ws->syms;
    int32_t ns = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++)
            sy[ns++] = (tok_sym){t->byte_tok[(uint8_t)s[i]], 0, 0, (uint32_t)i, 1};
    } else {
        bpe_init_chars(t, ws, s, n, &ns);
    }
    for (int32_t i = 0; i < ns; i++) {
        sy[i].prev = i - 1;
        sy[i].next = i + 1 < ns ? i + 1 : -1;
    }
    ws->n_heap = 0;
    for (int32_t i = 1; i < ns; i++)
        if (!bpe_try_add(t, ws, i - 1, i)) return oom(err);
    while (ws->n_heap) {
        tok_heap_ent e = heap_pop(ws);
        tok_sym *L = &sy[e.left], *R = &sy[e.right];
        if (L->len == 0 || R->len == 0 || L->next != e.right || L->id != e.lid || R->id != e.rid)
            continue;
        L->len += R->len;
        L->id = e.merged;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) sy[R->next].prev = e.left;
        if (!bpe_try_add(t, ws, L->prev, e.left) || !bpe_try_add(t, ws, e.left, L->next))
            return oom(err);
    }
    for (int32_t i = 0; i != -1 && ns > 0; i = sy[i].next) {
        if (sy[i].id >= 0) {
            if (!tok_ids_push(ws, sy[i].id)) return oom(err);
            continue;
        }
        /* byte-level byte without a token: llama.cpp looks up each UTF-8
         * byte of the mapped character as a one-byte token */
        char m[4];
        size_t k = tok_utf8_encode(tok_byte_to_cp((uint8_t)s[sy[i].off]), m);
        for (size_t j = 0; j < k; j++) {
            int32_t id = t->byte_raw[(uint8_t)m[j]];
            if (id >= 0 && !tok_ids_push(ws, id)) return oom(err);
        }
    }
    return RF_OK;
}

/* ---- WPM ---------------------------------------------------------------------------- */

static bool is_chinese_char(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Greedy longest match of ws->word ("\u2581" + word). */
static rf_status wpm_word(const rf_tokenizer *t, rf_tok_ws *ws, rf_error *err) {
    const char *w = ws->word.p;
    size_t n = ws->word.n;
    if (n <= 3) return RF_OK; /* just the phantom space: empty word */
    size_t mark = ws->n_ids;
    for (size_t i = 0; i < n;) {
        size_t hi = i + t->max_token_len < n ? i + t->max_token_len : n;
        int32_t id = -1;
        size_t j = hi;
        for (; j > i; j--)
            if ((id = tok_lookup(t, w + i, j - i)) >= 0) break;
        if (id < 0) {
            ws->n_ids = mark;
            break;
        }
        if (!tok_ids_push(ws, id)) return oom(err);
        i = j;
    }
    if (ws->n_ids == mark && t->unk >= 0 && !tok_ids_push(ws, t->unk)) return oom(err);
    return RF_OK;
}

static const char phantom[] = "\xe2\x96\x81";

rf_status tok_model_wpm(const rf_tokenizer *t, rf_tok_ws *ws, const char *s, size_t n,
                        rf_error *err) {
    if (t->wpm_strip_accents) {
        ws->tmp.n = 0;
        rf_status st = tok_normalize_form(TN_NFD, s, n, &ws->tmp, &ws->cps, &ws->cap_cps, err);
        if (st) return st;
        s = ws->tmp.p;
        n = ws->tmp.n;
    }
    ws->word.n = 0;
    if (!tok_buf_put(&ws->word, phantom, 3)) return oom(err);
    rf_status st;
    for (size_t off = 0; off < n;) {
        uint32_t cp;
        size_t bad;
        size_t k = tok_utf8_decode((const uint8_t *)s + off, n - off, &cp, &bad);
        RF_ASSERT(k); /* input was sanitized */
        off += k;
        if (tok_cp_is_whitespace(cp)) {
            if ((st = wpm_word(t, ws, err))) return st;
            ws->word.n = 3;
            continue;
        }
        if (cp == 0 || cp == 0xFFFD || tok_cp_is_control(cp)) continue;
        if (t->wpm_strip_accents && tok_cp_is_mark(cp)) continue;
        char u[4];
        size_t ul = tok_utf8_encode(t->wpm_lower ? tok_cp_lower(cp) : cp, u);
        if (tok_cp_is_punct(cp) || (cp < 0x7F && tok_cp_is_symbol(cp)) || is_chinese_char(cp)) {
            if ((st = wpm_word(t, ws, err))) return st;
            ws->word.n = 3;
            if (!tok_buf_put(&ws->word, u, ul)) return oom(err);
            if ((st = wpm_word(t, ws, err))) return st;
            ws->word.n = 3;
        } else if (!tok_buf_put(&ws->word, u, ul)) {
            return oom(err);
        }
    }
    return wpm_word(t, ws, err);
}
