/*
 * jsonw.c - the streaming JSON writer. Commas are tracked per nesting level
 * so callers just emit values in order.
 */
#include "jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

void rf_jsonw_init(rf_jsonw *w, FILE *f) {
    memset(w, 0, sizeof *w);
    w->f = f;
}

static void pre_value(rf_jsonw *w) {
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->need_comma[w->depth]) fputc(',', w->f);
    w->need_comma[w->depth] = true;
}

static void open_(rf_jsonw *w, char c) {
    pre_value(w);
    fputc(c, w->f);
    RF_ASSERT(w->depth + 1 < (int)RF_ARRAY_LEN(w->need_comma));
    w->need_comma[++w->depth] = false;
}

static void close_(rf_jsonw *w, char c) {
    RF_ASSERT(w->depth > 0);
    w->depth--;
    fputc(c, w->f);
    if (w->depth == 0) fputc('\n', w->f);
}

void rf_jsonw_obj_begin(rf_jsonw *w) { open_(w, '{'); }
void rf_jsonw_obj_end(rf_jsonw *w) { close_(w, '}'); }
void rf_jsonw_arr_begin(rf_jsonw *w) { open_(w, '['); }
void rf_jsonw_arr_end(rf_jsonw *w) { close_(w, ']'); }

int rf_utf8_seq_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    int n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
    else return 0;
    if ((size_t)n > avail) return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
    if (cp >= 0xd800 && cp <= 0xdfff) return 0;
    return n;
}

static void write_escaped(FILE *f, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') { fputc('\\', f); fputc((int)c, f); i++; }
        else if (c == '\n') { fputs("\\n", f); i++; }
        else if (c == '\r') { fputs("\\r", f); i++; }
        else if (c == '\t') { fputs("\\t", f); i++; }
        else if (c < 0x20 || c == 0x7f) { fprintf(f, "\\u%04x", c); i++; }
        else {
            int len = rf_utf8_seq_len(p + i, n - i);
            if (len == 0) { fputs("\\ufffd", f); i++; }
            else { fwrite(p + i, 1, (size_t)len, f); i += (size_t)len; }
        }
    }
    fputc('"', f);
}

void rf_jsonw_key_n(rf_jsonw *w, const char *k, size_t n) {
    pre_value(w);
    write_escaped(w->f, k, n);
    fputc(':', w->f);
    w->after_key = true;
}
void rf_jsonw_key(rf_jsonw *w, const char *k) { rf_jsonw_key_n(w, k, strlen(k)); }
void rf_jsonw_str_n(rf_jsonw *w, const char *s, size_t n) { pre_value(w); write_escaped(w->f, s, n); }
void rf_jsonw_str(rf_jsonw *w, const char *s) { rf_jsonw_str_n(w, s, strlen(s)); }
void rf_jsonw_i64(rf_jsonw *w, int64_t v) { pre_value(w); fprintf(w->f, "%" PRId64, v); }
void rf_jsonw_u64(rf_jsonw *w, uint64_t v) { pre_value(w); fprintf(w->f, "%" PRIu64, v); }
void rf_jsonw_f64(rf_jsonw *w, double v) {
    pre_value(w);
    if (isfinite(v)) fprintf(w->f, "%.17g", v);
    else fputs("null", w->f);
}
void rf_jsonw_bool(rf_jsonw *w, bool v) { pre_value(w); fputs(v ? "true" : "false", w->f); }
void rf_jsonw_null(rf_jsonw *w) { pre_value(w); fputs("null", w->f); }
