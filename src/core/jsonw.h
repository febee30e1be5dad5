/*
 * jsonw.h - a minimal streaming JSON writer to a FILE*: enough for CLI
 * --json outputs. Strings are escaped per RFC 8259; bytes that are not
 * valid UTF-8 are written as U+FFFD so the output always parses.
 */
#ifndef RF_JSONW_H
#define RF_JSONW_H

#include <stdio.h>

#include "core.h"

typedef struct rf_jsonw {
    FILE *f;
    int depth;
    bool need_comma[64];
    bool after_key;
} rf_jsonw;

void rf_jsonw_init(rf_jsonw *w, FILE *f);
void rf_jsonw_obj_begin(rf_jsonw *w);
void rf_jsonw_obj_end(rf_jsonw *w);
void rf_jsonw_arr_begin(rf_jsonw *w);
void rf_jsonw_arr_end(rf_jsonw *w);
void rf_jsonw_key(rf_jsonw *w, const char *k);
void rf_jsonw_key_n(rf_jsonw *w, const char *k, size_t n);
void rf_jsonw_str(rf_jsonw *w, const char *s);
void rf_jsonw_str_n(rf_jsonw *w, const char *s, size_t n);
void rf_jsonw_i64(rf_jsonw *w, int64_t v);
void rf_jsonw_u64(rf_jsonw *w, uint64_t v);
void rf_jsonw_f64(rf_jsonw *w, double v); /* non-finite -> null */
void rf_jsonw_bool(rf_jsonw *w, bool v);
void rf_jsonw_null(rf_jsonw *w);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
int rf_utf8_seq_len(const unsigned char *s, size_t avail);

#endif
