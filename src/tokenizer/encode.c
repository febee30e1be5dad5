/*
 * encode.c - text -> ids: the pipeline every tokenizer runs.
 *
 *   1. invalid UTF-8 -> U+FFFD (maximal subparts), so all later steps see
 *      valid UTF-8 and PCRE2 can skip its own checks;
 *   2. split out special/added tokens (leftmost-longest; control tokens only
 *      with parse_special; lstrip/rstrip/single_word honoured);
 *   3. per text fragment: normalizer ops, then the added tokens that match
 *      normalized text, then pre-tokenizer ops, then the model per piece;
 *   4. with add_special, the BOS/template ids around the result.
 */
#include <assert.h>
#include <string.h>

#include "tok-impl.h"

static rf_status oom(rf_error *err) {
    return rf_error_set(err, RF_E_NOMEM, "tokenizer: out of memory");
}

typedef rf_status (*model_fn)(const rf_tokenizer *, rf_tok_ws *, const char *, size_t, rf_error *);
static const model_fn model_fns[RF_TOK_KIND_COUNT] = {
    [RF_TOK_SPM] = tok_model_spm,
    [RF_TOK_BPE] = tok_model_bpe,
    [RF_TOK_WPM] = tok_model_wpm,
};
static_assert(RF_TOK_KIND_COUNT == 3, "a new model kind needs its encoder here");

/* ---- 1. sanitize ------------------------------------------------------------------ */

static rf_status sanitize(rf_tok_ws *ws, const char *text, size_t len, const char **s, size_t *n,
                          rf_error *err) {
    if (tok_utf8_valid(text, len)) {
        *s = text;
        *n = len;
        return RF_OK;
    }
    ws->in.n = 0;
    if (!tok_buf_reserve(&ws->in, len + len / 2 + 4)) return oom(err);
    const uint8_t *p = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t bad = 1;
        size_t k = p[i] < 0x80 ? 1 : tok_utf8_decode(p + i, len - i, &cp, &bad);
        if (k) {
            if (!tok_buf_put(&ws->in, p + i, k)) return oom(err);
            i += k;
        } else {
            if (!tok_buf_put(&ws->in, "\xEF\xBF\xBD", 3)) return oom(err);
            i += bad;
        }
    }
    *s = ws->in.p;
    *n = ws->in.n;
    return RF_OK;
}

/* ---- 2. special tokens ---------------------------------------------------------------- */

static bool frag_push(tok_frag **a, size_t *n, size_t *cap, tok_frag f) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 32;
        tok_frag *p = rf_realloc(*a, c * sizeof *p);
        if (!p) return false;
        *a = p;
        *cap = c;
    }
    (*a)[(*n)++] = f;
    return true;
}

static bool is_space_at(const char *s, size_t n, size_t i, size_t *k) {
    uint32_t cp;
    size_t bad;
    *k = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp, &bad);
    return *k && tok_cp_is_whitespace(cp);
}

/* Length of the whitespace run ending at `end` (scanning back over chars). */
static size_t space_before(const char *s, size_t start, size_t end) {
    size_t e = end;
    while (e > start) {
        size_t b = e - 1;
        while (b > start && ((uint8_t)s[b] & 0xC0) == 0x80) b--;
        size_t k;
        if (!is_space_at(s, end, b, &k)) break;
        e = b;
    }
    return end - e;
}

static size_t space_after(const char *s, size_t i, size_t n) {
    size_t j = i, k;
    while (j < n && is_space_at(s, n, j, &k)) j += k;
    return j - i;
}

static bool word_char_at(const char *s, size_t n, size_t i) {
    uint32_t cp;
    size_t bad;
    if (!tok_utf8_decode((const uint8_t *)s + i, n - i, &cp, &bad)) return false;
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    return !tok_cp_is_whitespace(cp) && !tok_cp_is_punct(cp) && !tok_cp_is_symbol(cp) &&
           !tok_cp_is_control(cp);
}

static bool word_char_before(const char *s, size_t i) {
    if (i == 0) return false;
    size_t b = i - 1;
    while (b > 0 && ((uint8_t)s[b] & 0xC0) == 0x80) b--;
    return word_char_at(s, i, b);
}

/* Splits s[0..n) by the tokens of matcher m into out (text fragments have
 * id -1 and offsets relative to s). */
static rf_status partition(const rf_tokenizer *t, const tok_matcher *m, const char *s, size_t n,
                           bool parse_special, tok_frag **out, size_t *n_out, size_t *cap,
                           rf_error *err) {
    *n_out = 0;
    size_t text_start = 0, i = 0;
    while (i < n) {
        uint8_t b = (uint8_t)s[i];
        const tok_match_ent *hit = NULL;
        for (uint32_t j = m->first[b]; j < m->first[b + 1]; j++) {
            const tok_match_ent *e = &m->ents[j];
            if (e->len > n - i || memcmp(t->pool + e->off, s + i, e->len) != 0) continue;
            const tok_entry *te = &t->tokens[e->id];
            if (!parse_special && (te->attr == RF_TOKEN_CONTROL || te->attr == RF_TOKEN_UNKNOWN))
                continue;
            if ((te->flags & TF_SINGLE_WORD) &&
                (word_char_before(s, i) || (i + e->len < n && word_char_at(s, n, i + e->len))))
                continue;
            hit = e;
            break;
        }
        if (!hit) {
            i++;
            continue;
        }
        const tok_entry *te = &t->tokens[hit->id];
        size_t left_end = i;
        if (te->flags & TF_LSTRIP) left_end -= space_before(s, text_start, i);
        if (left_end > text_start &&
            !frag_push(out, n_out, cap, (tok_frag){-1, (uint32_t)text_start, (uint32_t)(left_end - text_start)}))
            return oom(err);
        if (!frag_push(out, n_out, cap, (tok_frag){hit->id, 0, 0})) return oom(err);
        i += hit->len;
        if (te->flags & TF_RSTRIP) i += space_after(s, i, n);
        text_start = i;
    }
    if (n > text_start &&
        !frag_push(out, n_out, cap, (tok_frag){-1, (uint32_t)text_start, (uint32_t)(n - text_start)}))
        return oom(err);
    return RF_OK;
}

/* ---- 3. normalizers ------------------------------------------------------------------ */

static rf_status norm_replace(const tok_norm_op *op, rf_tok_ws *ws, const char *s, size_t n,
                              tok_buf *o, rf_error *err) {
    if (op->kind == TN_REPLACE) {
        size_t i = 0;
        while (i < n) {
            if (op->alen && n - i >= op->alen && memcmp(s + i, op->a, op->alen) == 0) {
                if (!tok_buf_put(o, op->b, op->blen)) return oom(err);
                i += op->alen;
            } else {
                if (!tok_buf_put(o, s + i, 1)) return oom(err);
                i++;
            }
        }
        return RF_OK;
    }
    size_t prev = 0, off = 0;
    while (off <= n) {
        int rc = pcre2_match(op->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, ws->md, ws->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc == PCRE2_ERROR_NOMEMORY) return oom(err);
        if (rc < 0) return rf_error_set(err, RF_E_RANGE, "tokenizer: normalizer regex failed (%d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(ws->md);
        if (ov[1] == ov[0]) { /* empty match: step one character */
            if (ov[0] >= n) break;
            uint8_t c = (uint8_t)s[ov[0]];
            off = ov[0] + (c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4);
            continue;
        }
        if (!tok_buf_put(o, s + prev, ov[0] - prev) || !tok_buf_put(o, op->b, op->blen)) return oom(err);
        prev = off = ov[1];
    }
    return tok_buf_put(o, s + prev, n - prev) ? RF_OK : oom(err);
}

static rf_status norm_op(const tok_norm_op *op, rf_tok_ws *ws, const char *s, size_t n, tok_buf *o,
                         rf_error *err) {
    switch (op->kind) {
    case TN_NFC: case TN_NFD: case TN_NFKC: case TN_NFKD:
        return tok_normalize_form(op->kind, s, n, o, &ws->cps, &ws->cap_cps, err);
    case TN_LOWER:
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            size_t bad;
            size_t k = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp, &bad);
            RF_ASSERT(k);
            char u[4];
            if (!tok_buf_put(o, u, tok_utf8_encode(tok_cp_lower(cp), u))) return oom(err);
            i += k;
        }
        return RF_OK;
    case TN_PREPEND:
        if (n && !tok_buf_put(o, op->a, op->alen)) return oom(err);
        return tok_buf_put(o, s, n) ? RF_OK : oom(err);
    case TN_REPLACE: case TN_REPLACE_RE:
        return norm_replace(op, ws, s, n, o, err);
    case TN_STRIP: {
        size_t a = op->left ? space_after(s, 0, n) : 0;
        size_t b = op->right ? space_before(s, a, n) : 0;
        return tok_buf_put(o, s + a, n - a - b) ? RF_OK : oom(err);
    }
    default:
        RF_ASSERT(0);
    }
    return RF_OK;
}

/* Runs the normalizer ops; the result is in ws->norm (or s itself when there
 * are no ops). */
static rf_status normalize(const rf_tokenizer *t, rf_tok_ws *ws, const char **s, size_t *n,
                           rf_error *err) {
    if (t->n_norm == 0) return RF_OK;
    tok_buf *dst = &ws->norm2;
    const char *p = *s;
    size_t len = *n;
    /* ping-pong so that the last op writes ws->norm */
    if (t->n_norm % 2 == 1) dst = &ws->norm;
    for (int k = 0; k < t->n_norm; k++) {
        dst->n = 0;
        rf_status st = norm_op(&t->norm[k], ws, p, len, dst, err);
        if (st) return st;
        p = dst->p ? dst->p : "";
        len = dst->n;
        dst = dst == &ws->norm ? &ws->norm2 : &ws->norm;
    }
    *s = p;
    *n = len;
    return RF_OK;
}

rf_status tok_normalize_str(const rf_tokenizer *t, rf_tok_ws *ws, const char **s, size_t *n,
                            rf_error *err) {
    return normalize(t, ws, s, n, err);
}

/* ---- the pipeline --------------------------------------------------------------------- */

static rf_status encode_text(const rf_tokenizer *t, rf_tok_ws *ws, const char *s, size_t n,
                             bool first, bool parse_special, rf_error *err) {
    rf_status st = normalize(t, ws, &s, &n, err);
    if (st) return st;
    if (t->match_norm.n == 0) {
        if ((st = tok_pretokenize(t, ws, s, n, first, err))) return st;
        for (size_t i = 0; i < ws->n_pa; i++)
            if ((st = model_fns[t->kind](t, ws, ws->pa[i].p, ws->pa[i].len, err))) return st;
        return RF_OK;
    }
    st = partition(t, &t->match_norm, s, n, parse_special, &ws->frags2, &ws->n_frags2,
                   &ws->cap_frags2, err);
    if (st) return st;
    for (size_t f = 0; f < ws->n_frags2; f++) {
        tok_frag fr = ws->frags2[f];
        if (fr.id >= 0) {
            if (!tok_ids_push(ws, fr.id)) return oom(err);
            continue;
        }
        if ((st = tok_pretokenize(t, ws, s + fr.off, fr.len, first && fr.off == 0, err))) return st;
        for (size_t i = 0; i < ws->n_pa; i++)
            if ((st = model_fns[t->kind](t, ws, ws->pa[i].p, ws->pa[i].len, err))) return st;
    }
    return RF_OK;
}

rf_status rf_tokenize_ws(const rf_tokenizer *t, rf_tok_ws *ws, const char *text, size_t len,
                         bool add_special, bool parse_special, const int32_t **ids, size_t *n,
                         rf_error *err) {
    RF_ASSERT(t && ws && ids && n);
    if (!text && len) return rf_error_set(err, RF_E_INVAL, "tokenize: NULL text");
    ws->n_ids = 0;
    tok_arena_reset(ws);
    const char *s = text ? text : "";
    size_t sn = len;
    rf_status st = sanitize(ws, s, sn, &s, &sn, err);
    if (st) return st;
    if (add_special)
        for (int i = 0; i < t->n_prefix; i++)
            if (!tok_ids_push(ws, t->prefix[i])) return oom(err);
    st = partition(t, &t->match_raw, s, sn, parse_special, &ws->frags, &ws->n_frags,
                   &ws->cap_frags, err);
    if (st) return st;
    for (size_t f = 0; f < ws->n_frags; f++) {
        tok_frag fr = ws->frags[f];
        if (fr.id >= 0) {
            if (!tok_ids_push(ws, fr.id)) return oom(err);
            continue;
        }
        if ((st = encode_text(t, ws, s + fr.off, fr.len, fr.off == 0, parse_special, err))) return st;
    }
    if (add_special)
        for (int i = 0; i < t->n_suffix; i++)
            if (!tok_ids_push(ws, t->suffix[i])) return oom(err);
    *ids = ws->ids;
    *n = ws->n_ids;
    return RF_OK;
}

rf_status rf_tokenize(const rf_tokenizer *t, const char *text, size_t len, bool add_special,
                      bool parse_special, int32_t **ids, size_t *n, rf_error *err) {
    rf_tok_ws *ws = rf_tok_ws_new();
    if (!ws) return oom(err);
    const int32_t *r;
    size_t rn;
    rf_status st = rf_tokenize_ws(t, ws, text, len, add_special, parse_special, &r, &rn, err);
    if (st == RF_OK) {
        int32_t *o = rf_malloc((rn ? rn : 1) * sizeof *o);
        if (!o) st = oom(err);
        else {
            if (rn) memcpy(o, r, rn * sizeof *o);
            *ids = o;
            *n = rn;
        }
    }
    rf_tok_ws_free(ws);
    return st;
}
