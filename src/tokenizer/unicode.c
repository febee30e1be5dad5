/*
 * unicode.c - the Unicode the tokenizer needs: strict UTF-8 decoding (with
 * the maximal-subpart rule for invalid bytes), encoding, the GPT-2
 * byte-to-unicode map, character classes for WordPiece (through utf8proc's
 * general categories) and NFC/NFD/NFKC/NFKD normalization through utf8proc
 * into our own buffers (so the counting allocator sees every byte).
 */
#include <string.h>
#include <utf8proc.h>

#include "tok-impl.h"

/* ---- UTF-8 ----------------------------------------------------------------- */

size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp, size_t *bad) {
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t need;
    uint32_t v;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) { need = 2; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;      /* no overlongs */
        if (c == 0xED) hi = 0x9F;      /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;      /* <= U+10FFFF */
    } else { *bad = 1; return 0; }
    /* Maximal subpart: count the bytes that are a valid prefix. */
    size_t i = 1;
    for (; i < need; i++) {
        if (i >= n) { *bad = i; return 0; }
        uint8_t b = s[i];
        uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) { *bad = i; return 0; }
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return need;
}

size_t tok_utf8_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { o[0] = (uint8_t)(0xC0 | (cp >> 6)); o[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12)); o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18)); o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

bool tok_utf8_valid(const char *s, size_t n) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) { i++; continue; }
        uint32_t cp;
        size_t bad;
        size_t k = tok_utf8_decode(p + i, n - i, &cp, &bad);
        if (!k) return false;
        i += k;
    }
    return true;
}

/* ---- GPT-2 byte map ----------------------------------------------------------
 * Printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves;
 * the other 68 bytes map to U+0100 + n in byte order, so every byte has a
 * visible, non-space character. */

static bool byte_is_direct(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_is_direct(b)) return b;
    uint32_t n = 0;
    for (unsigned i = 0; i < b; i++)
        if (!byte_is_direct(i)) n++;
    return 0x100 + n;
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return byte_is_direct(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t n = cp - 0x100;
    for (unsigned i = 0; i < 256; i++)
        if (!byte_is_direct(i) && n-- == 0) return (int)i;
    return -1;
}

/* ---- character classes --------------------------------------------------------- */

bool tok_cp_is_whitespace(uint32_t cp) {
    /* The Unicode White_Space property. */
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static utf8proc_category_t cat(uint32_t cp) {
    return utf8proc_category((utf8proc_int32_t)cp);
}

bool tok_cp_is_control(uint32_t cp) {
    utf8proc_category_t c = cat(cp);
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CS ||
           c == UTF8PROC_CATEGORY_CO;
}

bool tok_cp_is_punct(uint32_t cp) {
    utf8proc_category_t c = cat(cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

bool tok_cp_is_symbol(uint32_t cp) {
    utf8proc_category_t c = cat(cp);
    return c >= UTF8PROC_CATEGORY_SM && c <= UTF8PROC_CATEGORY_SO;
}

bool tok_cp_is_mark(uint32_t cp) {
    utf8proc_category_t c = cat(cp);
    return c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME;
}

uint32_t tok_cp_lower(uint32_t cp) {
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
}

/* ---- buffers ----------------------------------------------------------------- */

bool tok_buf_reserve(tok_buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) {
        if (cap > SIZE_MAX / 2) return false;
        cap *= 2;
    }
    char *p = rf_realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

bool tok_buf_put(tok_buf *b, const void *s, size_t n) {
    if (!tok_buf_reserve(b, n)) return false;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

void tok_buf_free(tok_buf *b) {
    rf_free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- normalization ------------------------------------------------------------ */

rf_status tok_normalize_form(int form, const char *s, size_t n, tok_buf *out, void **cp_scratch,
                             size_t *cp_cap, rf_error *err) {
    size_t i = 0;
    while (i < n && (uint8_t)s[i] < 0x80) i++;
    if (i == n) /* ASCII is invariant under all four forms */
        return tok_buf_put(out, s, n) ? RF_OK : rf_error_set(err, RF_E_NOMEM, "tokenizer: out of memory");
    int opt = UTF8PROC_STABLE;
    switch (form) {
    case TN_NFC: opt |= UTF8PROC_COMPOSE; break;
    case TN_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case TN_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case TN_NFKD: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    default: RF_ASSERT(0);
    }
    utf8proc_ssize_t need = utf8proc_decompose_custom((const utf8proc_uint8_t *)s,
                                                      (utf8proc_ssize_t)n, NULL, 0,
                                                      (utf8proc_option_t)opt, NULL, NULL);
    if (need < 0)
        return rf_error_set(err, RF_E_FORMAT, "tokenizer: normalization failed: %s",
                            utf8proc_errmsg(need));
    size_t bytes = (size_t)need * sizeof(utf8proc_int32_t) + 1;
    if (bytes > *cp_cap) {
        void *p = rf_realloc(*cp_scratch, bytes);
        if (!p) return rf_error_set(err, RF_E_NOMEM, "tokenizer: out of memory");
        *cp_scratch = p;
        *cp_cap = bytes;
    }
    utf8proc_int32_t *buf = *cp_scratch;
    utf8proc_ssize_t got = utf8proc_decompose_custom((const utf8proc_uint8_t *)s,
                                                     (utf8proc_ssize_t)n, buf, need,
                                                     (utf8proc_option_t)opt, NULL, NULL);
    if (got < 0 || got > need)
        return rf_error_set(err, RF_E_FORMAT, "tokenizer: normalization failed");
    /* Reorders/composes and re-encodes as UTF-8 in place. */
    utf8proc_ssize_t len = utf8proc_reencode(buf, got, (utf8proc_option_t)opt);
    if (len < 0) return rf_error_set(err, RF_E_FORMAT, "tokenizer: normalization failed");
    return tok_buf_put(out, buf, (size_t)len) ? RF_OK
                                              : rf_error_set(err, RF_E_NOMEM, "tokenizer: out of memory");
}
