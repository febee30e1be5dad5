/*
 * rf_gguf_dump.c - prints a GGUF file as JSON, for the reference tests to
 * compare against the `gguf` Python package; can also rewrite a file with
 * our writer.
 *
 *   rf_gguf_dump [--no-data] FILE        JSON on stdout
 *   rf_gguf_dump --roundtrip [--stream] IN OUT
 *                                         reads IN, writes every kv and tensor
 *                                         to OUT with rf_gguf_writer (split.*
 *                                         keys dropped: OUT is one file);
 *                                         --stream sends tensor data through
 *                                         rf_gguf_writer_write_data in chunks
 *
 * Any error: the message on stderr, exit status 2.
 *
 * The JSON:
 *   {"version": 3, "alignment": 32, "file_size": N, "n_splits": 1,
 *    "kv": {key: value, ...},            in file order
 *    "kv_types": {key: "U32" | "ARRAY[STRING]" | ...},
 *    "tensors": [{"name", "type" (name, e.g. "Q4_K"), "type_id", "shape"
 *                 ([ne0, ne1, ...]), "offset" (in its file's data section),
 *                 "nbytes", "split", "crc32" (zlib CRC-32 of the data,
 *                 omitted with --no-data)}]}
 * Integers print exactly, F32 with %.9g and F64 with %.17g (both round-trip),
 * with ".0" added when that looks like an integer;
 * NaN and infinities print as NaN, Infinity, -Infinity (Python's json reads
 * them). Strings: valid UTF-8 passes through, '"', '\\' and control bytes are
 * escaped, and each byte that is not part of a valid UTF-8 sequence prints as
 * \udcXX - Python's "surrogateescape" (PEP 383), so
 * s.encode('utf-8', 'surrogateescape') gives back the exact bytes.
 */
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON strings -------------------------------------------------------- */

/* Valid UTF-8 by lead byte: sequence length and the allowed range of the
 * second byte (the others are always 80..BF). Unicode Table 3-7; lead bytes
 * 80..C1 and F5..FF have len 0 (never valid). */
typedef struct utf8_lead {
    uint8_t len, lo, hi;
} utf8_lead;

static utf8_lead utf8_rule(uint8_t c) {
    if (c >= 0xc2 && c <= 0xdf) return (utf8_lead){2, 0x80, 0xbf};
    if (c == 0xe0) return (utf8_lead){3, 0xa0, 0xbf};
    if (c == 0xed) return (utf8_lead){3, 0x80, 0x9f}; /* no surrogates */
    if (c >= 0xe1 && c <= 0xef) return (utf8_lead){3, 0x80, 0xbf};
    if (c == 0xf0) return (utf8_lead){4, 0x90, 0xbf};
    if (c >= 0xf1 && c <= 0xf3) return (utf8_lead){4, 0x80, 0xbf};
    if (c == 0xf4) return (utf8_lead){4, 0x80, 0x8f}; /* <= U+10FFFF */
    return (utf8_lead){0, 0, 0};
}

/* Length of the valid UTF-8 sequence starting at p (n bytes left), or 0. */
static size_t utf8_valid(const uint8_t *p, uint64_t n) {
    utf8_lead r = utf8_rule(p[0]);
    if (r.len == 0 || n < r.len || p[1] < r.lo || p[1] > r.hi) return 0;
    for (size_t k = 2; k < r.len; k++)
        if (p[k] < 0x80 || p[k] > 0xbf) return 0;
    return r.len;
}

static void json_str(FILE *f, const char *s, uint64_t n) {
    static const char *named[0x20] = {['\b'] = "\\b", ['\f'] = "\\f", ['\n'] = "\\n", ['\r'] = "\\r",
                                      ['\t'] = "\\t"};
    const uint8_t *p = (const uint8_t *)s;
    putc('"', f);
    for (uint64_t i = 0; i < n;) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\') {
            putc('\\', f);
            putc(c, f);
            i++;
        } else if (c < 0x20) {
            if (named[c]) fputs(named[c], f);
            else fprintf(f, "\\u%04x", c);
            i++;
        } else if (c == 0x7f) {
            fputs("\\u007f", f);
            i++;
        } else if (c < 0x80) {
            putc(c, f);
            i++;
        } else {
            size_t k = utf8_valid(p + i, n - i);
            if (k) {
                fwrite(p + i, 1, k, f);
                i += k;
            } else {
                fprintf(f, "\\udc%02x", c);
                i++;
            }
        }
    }
    putc('"', f);
}

/* ---- values ---------------------------------------------------------------- */

/* Floats always carry a '.' or an exponent, so JSON readers keep them
 * floats ("-0" would read back as the integer 0, losing the sign). */
static void json_double(FILE *f, double v, const char *fmt) {
    char buf[40];
    if (isnan(v)) fputs("NaN", f);
    else if (isinf(v)) fputs(v > 0 ? "Infinity" : "-Infinity", f);
    else {
        snprintf(buf, sizeof buf, fmt, v);
        fputs(buf, f);
        if (!strpbrk(buf, ".e")) fputs(".0", f);
    }
}

typedef void (*print_fn)(FILE *f, const rf_gguf_value *v);

static void print_u(FILE *f, const rf_gguf_value *v) { fprintf(f, "%" PRIu64, v->u64); }
static void print_i(FILE *f, const rf_gguf_value *v) { fprintf(f, "%" PRId64, v->i64); }
static void print_f32(FILE *f, const rf_gguf_value *v) { json_double(f, (float)v->f64, "%.9g"); }
static void print_f64(FILE *f, const rf_gguf_value *v) { json_double(f, v->f64, "%.17g"); }
static void print_bool(FILE *f, const rf_gguf_value *v) { fputs(v->u64 ? "true" : "false", f); }
static void print_str(FILE *f, const rf_gguf_value *v) { json_str(f, v->str.ptr, v->str.len); }
static void print_arr(FILE *f, const rf_gguf_value *v);

static const print_fn printers[RF_GGUF_VTYPE_COUNT] = {
    [RF_GGUF_U8] = print_u,    [RF_GGUF_I8] = print_i,      [RF_GGUF_U16] = print_u,
    [RF_GGUF_I16] = print_i,   [RF_GGUF_U32] = print_u,     [RF_GGUF_I32] = print_i,
    [RF_GGUF_F32] = print_f32, [RF_GGUF_BOOL] = print_bool, [RF_GGUF_STRING] = print_str,
    [RF_GGUF_ARRAY] = print_arr, [RF_GGUF_U64] = print_u,   [RF_GGUF_I64] = print_i,
    [RF_GGUF_F64] = print_f64,
};

static void print_arr(FILE *f, const rf_gguf_value *v) {
    const rf_gguf_arr *a = &v->arr;
    putc('[', f);
    for (uint64_t i = 0; i < a->n; i++) {
        if (i) putc(',', f);
        rf_gguf_value e = {.type = a->elem_type};
        if (a->elem_type == RF_GGUF_ARRAY) e = ((const rf_gguf_value *)a->data)[i];
        else if (a->elem_type == RF_GGUF_STRING) e.str = rf_gguf_arr_str(a, i);
        else if (a->elem_type == RF_GGUF_F32 || a->elem_type == RF_GGUF_F64) e.f64 = rf_gguf_arr_f64(a, i);
        else e.i64 = rf_gguf_arr_i64(a, i); /* same bits as .u64 for the unsigned types */
        printers[a->elem_type](f, &e);
    }
    putc(']', f);
}

/* ---- CRC-32 (the zlib one, reflected polynomial 0xEDB88320) -------------- */

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_of(const uint8_t *p, uint64_t n) {
    uint32_t c = 0xffffffffu;
    for (uint64_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* ---- dump -------------------------------------------------------------------- */

static void dump(FILE *f, const rf_gguf *g, bool with_data) {
    fprintf(f, "{\"version\": %u, \"alignment\": %" PRIu64 ", \"file_size\": %" PRIu64 ", \"n_splits\": %u,\n",
            rf_gguf_version(g), rf_gguf_alignment(g), rf_gguf_file_size(g), rf_gguf_n_splits(g));
    fputs("\"kv\": {", f);
    for (int64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv *kv = rf_gguf_kv_at(g, i);
        fputs(i ? ",\n " : "\n ", f);
        json_str(f, kv->key.ptr, kv->key.len);
        fputs(": ", f);
        printers[kv->val.type](f, &kv->val);
    }
    fputs("},\n\"kv_types\": {", f);
    for (int64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv *kv = rf_gguf_kv_at(g, i);
        fputs(i ? ", " : "", f);
        json_str(f, kv->key.ptr, kv->key.len);
        if (kv->val.type == RF_GGUF_ARRAY) fprintf(f, ": \"ARRAY[%s]\"", rf_gguf_vtype_name(kv->val.arr.elem_type));
        else fprintf(f, ": \"%s\"", rf_gguf_vtype_name(kv->val.type));
    }
    fputs("},\n\"tensors\": [", f);
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        fputs(i ? ",\n " : "\n ", f);
        fputs("{\"name\": ", f);
        json_str(f, t->name.ptr, t->name.len);
        fprintf(f, ", \"type\": \"%s\", \"type_id\": %u, \"shape\": [", rf_type_name(t->type), t->type);
        for (uint32_t d = 0; d < t->n_dims; d++) fprintf(f, "%s%" PRId64, d ? ", " : "", t->ne[d]);
        fprintf(f, "], \"offset\": %" PRIu64 ", \"nbytes\": %" PRIu64 ", \"split\": %u", t->offset, t->nbytes,
                t->split);
        if (with_data) fprintf(f, ", \"crc32\": %" PRIu32, crc32_of(t->data, t->nbytes));
        putc('}', f);
    }
    fputs("]}\n", f);
}

/* ---- round trip ---------------------------------------------------------------- */

static bool is_split_key(rf_str k) {
    return k.len > 6 && memcmp(k.ptr, "split.", 6) == 0;
}

static rf_status roundtrip(const rf_gguf *g, const char *out, bool stream, rf_error *err) {
    rf_gguf_writer *w = rf_gguf_writer_new();
    if (!w) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    rf_status st = RF_OK;
    for (int64_t i = 0; i < rf_gguf_n_kv(g) && st == RF_OK; i++) {
        const rf_gguf_kv *kv = rf_gguf_kv_at(g, i);
        if (is_split_key(kv->key)) continue;
        st = rf_gguf_writer_set_value(w, kv->key, &kv->val);
        if (st != RF_OK) rf_error_set(err, st, "%s: cannot copy key %" PRId64, out, i);
    }
    char name[1024];
    for (int64_t i = 0; i < rf_gguf_n_tensors(g) && st == RF_OK; i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        if (t->name.len >= sizeof name || memchr(t->name.ptr, '\0', t->name.len)) {
            st = rf_error_set(err, RF_E_UNSUPPORTED, "tensor %" PRId64 ": name too long or holds a NUL byte", i);
            break;
        }
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = '\0';
        st = rf_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, stream ? NULL : t->data, err);
    }
    if (st == RF_OK) st = rf_gguf_writer_begin(w, out, err);
    /* Odd chunk sizes, so chunk boundaries fall anywhere in a tensor. */
    const size_t chunk = 65537;
    for (int64_t i = 0; stream && i < rf_gguf_n_tensors(g) && st == RF_OK; i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        for (uint64_t off = 0; off < t->nbytes && st == RF_OK; off += chunk) {
            size_t n = t->nbytes - off < chunk ? (size_t)(t->nbytes - off) : chunk;
            st = rf_gguf_writer_write_data(w, (const uint8_t *)t->data + off, n, err);
        }
    }
    if (st == RF_OK) st = rf_gguf_writer_finish(w, err);
    rf_gguf_writer_free(w);
    return st;
}

/* ---- main ------------------------------------------------------------------------ */

static int usage(void) {
    fputs("usage: rf_gguf_dump [--no-data] FILE\n"
          "       rf_gguf_dump --roundtrip [--stream] IN OUT\n",
          stderr);
    return 2;
}

int main(int argc, char **argv) {
    bool rt = false, stream = false, with_data = true;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (strcmp(argv[i], "--roundtrip") == 0) rt = true;
        else if (strcmp(argv[i], "--stream") == 0) stream = true;
        else if (strcmp(argv[i], "--no-data") == 0) with_data = false;
        else return usage();
    }
    if (argc - i != (rt ? 2 : 1) || (stream && !rt)) return usage();

    rf_gguf *g = NULL;
    rf_error err = {0};
    rf_status st = rf_gguf_open(argv[i], &g, &err);
    if (st == RF_OK && rt) st = roundtrip(g, argv[i + 1], stream, &err);
    if (st == RF_OK && !rt) {
        static char obuf[1 << 20];
        setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
        crc_init();
        dump(stdout, g, with_data);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            st = RF_E_IO;
            snprintf(err.msg, sizeof err.msg, "writing stdout failed");
        }
    }
    rf_gguf_close(g);
    if (st != RF_OK) {
        fprintf(stderr, "rf_gguf_dump: %s\n", err.msg[0] ? err.msg : rf_status_str(st));
        return 2;
    }
    return 0;
}
