/*
 * detok.c - ids -> text. Each token's decoded bytes ("piece") are computed
 * once at load time (here for GGUF vocabularies, in load_json.c from the
 * decoder chain of a tokenizer.json); decoding is then a table lookup plus a
 * small UTF-8 state machine that holds incomplete characters and replaces
 * bytes that can never be valid with U+FFFD (one per maximal invalid
 * subpart, as Python's errors="replace" and Rust's from_utf8_lossy do).
 */
#include <string.h>

#include "tok-impl.h"

/* ---- pieces of GGUF vocabularies ----------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int tok_parse_byte_token(const char *s, size_t n) {
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static const char ws_mark[] = "\xe2\x96\x81"; /* U+2581 */

/* llama.cpp's rules: normal tokens decode per model (SPM/WPM: U+2581 -> ' ';
 * byte-level BPE: GPT-2 map back to bytes, whole text kept if a character is
 * outside the map), byte tokens <0xXX> give their byte, control, unknown and
 * user-defined tokens their text, unused/undefined tokens nothing. */
rf_status tok_pieces_gguf(rf_tokenizer *t, rf_error *err) {
    tok_buf b = {0};
    rf_status st = RF_OK;
    for (int32_t id = 0; id < t->n_vocab && st == RF_OK; id++) {
        tok_entry *e = &t->tokens[id];
        const char *s = t->pool + e->text_off;
        size_t n = e->text_len;
        b.n = 0;
        bool ok = true;
        switch (e->attr) {
        case RF_TOKEN_CONTROL: case RF_TOKEN_UNKNOWN: case RF_TOKEN_USER_DEFINED:
            ok = tok_buf_put(&b, s, n);
            break;
        case RF_TOKEN_BYTE: {
            int v = tok_parse_byte_token(s, n);
            if (v < 0) {
                st = rf_error_set(err, RF_E_FORMAT, "%s: token %d is typed BYTE but is '%.*s', not <0xNN>",
                                  t->name, id, (int)(n > 32 ? 32 : n), s);
                break;
            }
            char c = (char)v;
            ok = tok_buf_put(&b, &c, 1);
            break;
        }
        case RF_TOKEN_NORMAL:
            if (t->kind == RF_TOK_BPE && t->byte_level) {
                size_t i = 0;
                while (i < n && ok) {
                    uint32_t cp;
                    size_t bad;
                    size_t k = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp, &bad);
                    int v = k ? tok_cp_to_byte(cp) : -1;
                    if (v < 0) { /* outside the map: keep the text as it is */
                        b.n = 0;
                        ok = tok_buf_put(&b, s, n);
                        break;
                    }
                    char c = (char)v;
                    ok = tok_buf_put(&b, &c, 1);
                    i += k;
                }
            } else {
                for (size_t i = 0; i < n && ok;) {
                    if (n - i >= 3 && memcmp(s + i, ws_mark, 3) == 0) { ok = tok_buf_put(&b, " ", 1); i += 3; }
                    else { ok = tok_buf_put(&b, s + i, 1); i++; }
                }
            }
            break;
        default: /* unused, undefined: no text */
            break;
        }
        if (st) break;
        if (!ok) { st = rf_error_set(err, RF_E_NOMEM, "%s: out of memory (pieces)", t->name); break; }
        uint32_t off = tok_pool_add(t, b.p ? b.p : "", b.n);
        if (off == UINT32_MAX) { st = rf_error_set(err, RF_E_NOMEM, "%s: out of memory (pieces)", t->name); break; }
        /* tokens[] stays valid: the pool grows, not the token table */
        e->piece_off = off;
        e->piece_len = (uint32_t)b.n;
    }
    tok_buf_free(&b);
    return st;
}

/* ---- streaming ---------------------------------------------------------------------- */

void rf_detok_init(rf_detok *d, const rf_tokenizer *t, unsigned flags) {
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->flags = flags;
}

size_t rf_detok_max_out(const rf_tokenizer *t) {
    return 3 * (size_t)t->max_piece_len + 8;
}

static size_t need_of(uint8_t lead) {
    return lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

/* Is b acceptable as byte number `pos` (1-based) of a character led by `lead`? */
static bool cont_ok(uint8_t lead, size_t pos, uint8_t b) {
    uint8_t lo = 0x80, hi = 0xBF;
    if (pos == 1) {
        if (lead == 0xE0) lo = 0xA0;
        else if (lead == 0xED) hi = 0x9F;
        else if (lead == 0xF0) lo = 0x90;
        else if (lead == 0xF4) hi = 0x8F;
    }
    return b >= lo && b <= hi;
}

static const char repl[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Feeds bytes through the UTF-8 machine; returns bytes written to out. */
static size_t feed(rf_detok *d, const uint8_t *p, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (d->n_pend) {
            if (cont_ok(d->pend[0], d->n_pend, b)) {
                d->pend[d->n_pend++] = b;
                if (d->n_pend == need_of(d->pend[0])) {
                    memcpy(out + o, d->pend, d->n_pend);
                    o += d->n_pend;
                    d->n_pend = 0;
                }
                continue;
            }
            /* the held prefix can never complete: one U+FFFD, then b afresh */
            memcpy(out + o, repl, 3);
            o += 3;
            d->n_pend = 0;
        }
        if (b < 0x80) out[o++] = (char)b;
        else if (b >= 0xC2 && b <= 0xF4) { d->pend[0] = b; d->n_pend = 1; }
        else { memcpy(out + o, repl, 3); o += 3; }
    }
    return o;
}

/* The bytes token `id` contributes at this point of the sequence: the first
 * token (HF Metaspace decoder) or the first non-empty piece (leading-space
 * strip) is special. */
static void piece_for(const rf_tokenizer *t, int32_t id, bool *started, unsigned flags,
                      const uint8_t **p, size_t *n) {
    const tok_entry *e = &t->tokens[id];
    *p = (const uint8_t *)t->pool + e->piece_off;
    *n = e->piece_len;
    if (*started || (flags & RF_DETOK_KEEP_LEADING_SPACE)) {
        if (*n) *started = true;
        return;
    }
    if (t->first_off) {
        *started = true;
        *p = (const uint8_t *)t->pool + t->first_off[id];
        *n = t->first_len[id];
        return;
    }
    if (*n == 0) return;
    *started = true;
    if (t->strip_leading_space && (*p)[0] == ' ') {
        (*p)++;
        (*n)--;
    }
}

rf_status rf_detok_push(rf_detok *d, int32_t id, char *out, size_t cap, size_t *n_out,
                        rf_error *err) {
    const rf_tokenizer *t = d->tok;
    *n_out = 0;
    if (id < 0 || id >= t->n_vocab)
        return rf_error_set(err, RF_E_RANGE, "detokenize: id %d is outside the vocabulary (0..%d)",
                            id, t->n_vocab - 1);
    if (cap < rf_detok_max_out(t))
        return rf_error_set(err, RF_E_INVAL, "detokenize: output buffer of %zu bytes < %zu", cap,
                            rf_detok_max_out(t));
    const tok_entry *e = &t->tokens[id];
    if ((d->flags & RF_DETOK_SKIP_SPECIAL) &&
        (e->attr == RF_TOKEN_CONTROL || e->attr == RF_TOKEN_UNKNOWN))
        return RF_OK;
    const uint8_t *p;
    size_t n;
    piece_for(t, id, &d->started, d->flags, &p, &n);
    *n_out = feed(d, p, n, out);
    return RF_OK;
}

size_t rf_detok_flush(rf_detok *d, char *out, size_t cap) {
    size_t o = 0;
    if (d->n_pend && cap >= 3) {
        memcpy(out, repl, 3);
        o = 3;
    }
    d->n_pend = 0;
    d->started = false;
    return o;
}

rf_status rf_detokenize(const rf_tokenizer *t, const int32_t *ids, size_t n, unsigned flags,
                        char **text, size_t *len, rf_error *err) {
    size_t cap = 4;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return rf_error_set(err, RF_E_RANGE, "detokenize: id %d (position %zu) is outside the vocabulary (0..%d)",
                                ids[i], i, t->n_vocab - 1);
        cap += 3 * (size_t)t->tokens[ids[i]].piece_len + 3;
    }
    char *o = rf_malloc(cap);
    if (!o) return rf_error_set(err, RF_E_NOMEM, "detokenize: out of memory");
    rf_detok d;
    rf_detok_init(&d, t, flags);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const tok_entry *e = &t->tokens[ids[i]];
        if ((flags & RF_DETOK_SKIP_SPECIAL) && (e->attr == RF_TOKEN_CONTROL || e->attr == RF_TOKEN_UNKNOWN))
            continue;
        const uint8_t *p;
        size_t pn;
        piece_for(t, ids[i], &d.started, flags, &p, &pn);
        k += feed(&d, p, pn, o + k);
    }
    k += rf_detok_flush(&d, o + k, 3);
    o[k] = '\0';
    *text = o;
    *len = k;
    return RF_OK;
}
