/*
 * reader.c - the GGUF reader. It maps a file read-only (or borrows an image
 * in memory), validates every byte it will ever hand out, and builds the
 * metadata and tensor tables; for a split model it does this for every part
 * and joins the tensor tables. Sections: value types, the cursor, metadata
 * values, one file (a "part"), opening and split sets, public accessors.
 *
 * Metadata is parsed in two passes. The first validates every byte and
 * counts the string-array and nested-array elements; then one block is
 * allocated and carved (kvs, lookup index, string slots, nested values) and
 * the second pass fills it. So a hostile count fails against the bytes left
 * before anything is allocated, and every allocation is proportional to
 * sizes already checked against the file.
 *
 * Every message has the form "NAME: offset N: what is wrong", N being the
 * file offset of the item (key, tensor info, ...) that is malformed.
 */
#include "gguf-impl.h"

#include "../quant/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- value types --------------------------------------------------------- */

_Static_assert(RF_GGUF_VTYPE_COUNT == 13, "a new GGUF value type needs a row in rf_gguf_vtypes");

/* min_elem_bytes: a string is at least its u64 length, an array at least its
 * u32 type and u64 count. Used to reject counts before looping over them. */
const rf_gguf_vtype_info rf_gguf_vtypes[RF_GGUF_VTYPE_COUNT] = {
    [RF_GGUF_U8]     = {"U8", 1, RF_VK_UINT, 1},
    [RF_GGUF_I8]     = {"I8", 1, RF_VK_SINT, 1},
    [RF_GGUF_U16]    = {"U16", 2, RF_VK_UINT, 2},
    [RF_GGUF_I16]    = {"I16", 2, RF_VK_SINT, 2},
    [RF_GGUF_U32]    = {"U32", 4, RF_VK_UINT, 4},
    [RF_GGUF_I32]    = {"I32", 4, RF_VK_SINT, 4},
    [RF_GGUF_F32]    = {"F32", 4, RF_VK_FLOAT, 4},
    [RF_GGUF_BOOL]   = {"BOOL", 1, RF_VK_BOOL, 1},
    [RF_GGUF_STRING] = {"STRING", 0, RF_VK_STRING, 8},
    [RF_GGUF_ARRAY]  = {"ARRAY", 0, RF_VK_ARRAY, 12},
    [RF_GGUF_U64]    = {"U64", 8, RF_VK_UINT, 8},
    [RF_GGUF_I64]    = {"I64", 8, RF_VK_SINT, 8},
    [RF_GGUF_F64]    = {"F64", 8, RF_VK_FLOAT, 8},
};

size_t rf_gguf_vtype_size(uint32_t vtype) {
    return vtype < RF_GGUF_VTYPE_COUNT ? rf_gguf_vtypes[vtype].size : 0;
}

const char *rf_gguf_vtype_name(uint32_t vtype) {
    return vtype < RF_GGUF_VTYPE_COUNT ? rf_gguf_vtypes[vtype].name : "?";
}

void rf_gguf_decode_scalar(uint32_t vtype, const void *src, rf_gguf_value *out) {
    RF_ASSERT(vtype < RF_GGUF_VTYPE_COUNT && rf_gguf_vtypes[vtype].size > 0);
    const rf_gguf_vtype_info *vi = &rf_gguf_vtypes[vtype];
    uint64_t u = 0;
    memcpy(&u, src, vi->size); /* little-endian host: fills the low bytes */
    out->type = vtype;
    if (vi->kind == RF_VK_FLOAT) {
        if (vi->size == 4 && (u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) {
            /* NaN: widen by hand, so the payload and the quiet bit survive
             * (a hardware conversion quiets signalling NaNs) and the writer
             * can put back the exact bits. */
            uint64_t d = (u >> 31) << 63 | 0x7ffull << 52 | (u & 0x7fffffu) << 29;
            memcpy(&out->f64, &d, 8);
        } else if (vi->size == 4) {
            float f;
            memcpy(&f, &u, 4);
            out->f64 = f;
        } else {
            memcpy(&out->f64, &u, 8);
        }
    } else if (vi->kind == RF_VK_SINT) {
        unsigned bits = 8u * vi->size;
        if (bits < 64 && (u >> (bits - 1)) & 1) u |= ~0ull << bits; /* sign-extend */
        out->i64 = (int64_t)u;
    } else {
        out->u64 = u;
    }
}

const char *rf_gguf_tensor_size(uint32_t type, uint32_t n_dims, const int64_t *ne,
                                uint64_t *nbytes) {
    const rf_type_info *ti = rf_type_get(type);
    if (!ti) return "unknown or retired tensor type";
    /* The product of the dims (a zero counted as one, so a huge dim next to
     * an empty one is still rejected) must fit int64. */
    uint64_t prod = 1, rows = 1;
    for (uint32_t i = 0; i < n_dims; i++) {
        if (ne[i] < 0) return "negative dimension";
        uint64_t d = ne[i] ? (uint64_t)ne[i] : 1;
        if (!rf_mul_u64(prod, d, &prod) || prod > INT64_MAX) return "element count overflows int64";
        if (i > 0) rows *= (uint64_t)ne[i]; /* <= prod: cannot overflow */
    }
    if (ne[0] % ti->blck_size != 0) return "ne[0] is not a multiple of the type's block size";
    uint64_t row;
    if (!rf_mul_u64((uint64_t)(ne[0] / ti->blck_size), ti->type_size, &row) ||
        !rf_mul_u64(row, rows, nbytes))
        return "byte size overflows";
    return NULL;
}

/* ---- the cursor ---------------------------------------------------------- */

/* Reading position in one file. All reads go through need(), so nothing
 * past base[size) is ever touched. */
typedef struct cursor {
    const char *name; /* file or image name, for messages; borrowed */
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    rf_error *err;
} cursor;

static uint64_t left(const cursor *c) { return c->size - c->pos; }

static rf_status bad(cursor *c, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static rf_status bad(cursor *c, uint64_t off, const char *fmt, ...) {
    char what[448];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return rf_error_set(c->err, RF_E_FORMAT, "%s: offset %" PRIu64 ": %s", c->name, off, what);
}

static rf_status nomem(const char *name, rf_error *err) {
    return rf_error_set(err, RF_E_NOMEM, "%s: out of memory while reading", name);
}

/* A printable, bounded copy of a name from the file for messages: control
 * bytes become '?', long names are cut with "...". */
static const char *quote(rf_str s, char *buf, size_t n) {
    size_t max = n - 4, j = 0;
    for (uint64_t i = 0; i < s.len && j < max; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        buf[j++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (s.len > max) memcpy(buf + j, "...", 3), j += 3;
    buf[j] = '\0';
    return buf;
}

static rf_status need(cursor *c, uint64_t n, const char *what) {
    if (n <= left(c)) return RF_OK;
    return bad(c, c->pos, "%s needs %" PRIu64 " bytes but only %" PRIu64 " are left (truncated file?)",
               what, n, left(c));
}

static rf_status get_u32(cursor *c, const char *what, uint32_t *v) {
    rf_status st = need(c, 4, what);
    if (st != RF_OK) return st;
    memcpy(v, c->base + c->pos, 4);
    c->pos += 4;
    return RF_OK;
}

static rf_status get_u64(cursor *c, const char *what, uint64_t *v) {
    rf_status st = need(c, 8, what);
    if (st != RF_OK) return st;
    memcpy(v, c->base + c->pos, 8);
    c->pos += 8;
    return RF_OK;
}

static rf_status get_str(cursor *c, const char *what, uint64_t max_len, rf_str *out) {
    uint64_t off = c->pos, len;
    rf_status st = get_u64(c, what, &len);
    if (st != RF_OK) return st;
    if (len > max_len)
        return bad(c, off, "%s length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes", what, len,
                   max_len);
    if (len > left(c))
        return bad(c, off, "%s length %" PRIu64 " exceeds the %" PRIu64 " bytes left (truncated file?)",
                   what, len, left(c));
    out->ptr = (const char *)c->base + c->pos;
    out->len = len;
    c->pos += len;
    return RF_OK;
}

static int cmp_str(rf_str a, rf_str b) {
    uint64_t m = a.len < b.len ? a.len : b.len;
    int r = m ? memcmp(a.ptr, b.ptr, m) : 0;
    if (r) return r;
    return (a.len > b.len) - (a.len < b.len);
}

/* ---- metadata values ----------------------------------------------------- */

/* Slots for string-array elements and nested-array elements. Counting mode
 * (fill == false) only adds up how many the file needs. */
typedef struct arena {
    bool fill;
    rf_str *strs;
    uint64_t n_strs, cap_strs;
    rf_gguf_value *vals;
    uint64_t n_vals, cap_vals;
} arena;

/* The second pass found more elements than the first: only possible if the
 * bytes changed between the passes (someone writing the mapped file). */
static rf_status changed(cursor *c) {
    return rf_error_set(c->err, RF_E_IO, "%s: the file changed while it was being read", c->name);
}

static bool take_strs(arena *a, uint64_t n, rf_str **out) {
    *out = NULL;
    if (!a->fill) return a->n_strs += n, true;
    if (n > a->cap_strs - a->n_strs) return false;
    if (n) *out = a->strs + a->n_strs;
    a->n_strs += n;
    return true;
}

static bool take_vals(arena *a, uint64_t n, rf_gguf_value **out) {
    *out = NULL;
    if (!a->fill) return a->n_vals += n, true;
    if (n > a->cap_vals - a->n_vals) return false;
    if (n) *out = a->vals + a->n_vals;
    a->n_vals += n;
    return true;
}

/* Reads an array body (elem type, count, elements) at nesting `depth`. */
static rf_status read_array(cursor *c, arena *a, int depth, rf_gguf_arr *out) {
    uint64_t off = c->pos;
    if (depth > RF_GGUF_MAX_DEPTH)
        return bad(c, off, "arrays nested more than %d deep", RF_GGUF_MAX_DEPTH);
    uint32_t et;
    uint64_t n;
    rf_status st = get_u32(c, "array element type", &et);
    if (st == RF_OK) st = get_u64(c, "array length", &n);
    if (st != RF_OK) return st;
    if (et >= RF_GGUF_VTYPE_COUNT)
        return bad(c, off, "array element type %" PRIu32 " is not a GGUF value type", et);
    const rf_gguf_vtype_info *vi = &rf_gguf_vtypes[et];
    if (n > left(c) / vi->min_elem_bytes)
        return bad(c, off,
                   "array of %" PRIu64 " %s elements needs at least %u bytes each but only %" PRIu64
                   " bytes are left",
                   n, vi->name, vi->min_elem_bytes, left(c));
    out->elem_type = et;
    out->n = n;
    out->data = NULL;
    if (vi->size) {
        const uint8_t *p = c->base + c->pos;
        if (et == RF_GGUF_BOOL) {
            for (uint64_t i = 0; i < n; i++)
                if (p[i] > 1)
                    return bad(c, c->pos + i, "bool array element %" PRIu64 " is %u, not 0 or 1", i,
                               p[i]);
        }
        out->data = p;
        c->pos += n * vi->size;
    } else if (et == RF_GGUF_STRING) {
        rf_str *s;
        if (!take_strs(a, n, &s)) return changed(c);
        for (uint64_t i = 0; i < n; i++) {
            rf_str tmp;
            st = get_str(c, "string array element", UINT64_MAX, &tmp);
            if (st != RF_OK) return st;
            if (s) s[i] = tmp;
        }
        out->data = s;
    } else {
        rf_gguf_value *v;
        if (!take_vals(a, n, &v)) return changed(c);
        for (uint64_t i = 0; i < n; i++) {
            rf_gguf_arr tmp;
            st = read_array(c, a, depth + 1, &tmp);
            if (st != RF_OK) return st;
            if (v) {
                v[i].type = RF_GGUF_ARRAY;
                v[i].arr = tmp;
            }
        }
        out->data = v;
    }
    return RF_OK;
}

/* Reads one value of `type`; the type id itself was at offset type_off. */
static rf_status read_value(cursor *c, arena *a, uint32_t type, uint64_t type_off,
                            rf_gguf_value *out) {
    if (type >= RF_GGUF_VTYPE_COUNT)
        return bad(c, type_off, "value type %" PRIu32 " is not a GGUF value type", type);
    const rf_gguf_vtype_info *vi = &rf_gguf_vtypes[type];
    out->type = type;
    if (vi->size) {
        rf_status st = need(c, vi->size, "value");
        if (st != RF_OK) return st;
        const uint8_t *p = c->base + c->pos;
        if (type == RF_GGUF_BOOL && p[0] > 1) return bad(c, c->pos, "bool value is %u, not 0 or 1", p[0]);
        rf_gguf_decode_scalar(type, p, out);
        c->pos += vi->size;
        return RF_OK;
    }
    if (type == RF_GGUF_STRING) return get_str(c, "string value", UINT64_MAX, &out->str);
    return read_array(c, a, 1, &out->arr);
}

/* ---- one file ------------------------------------------------------------ */

/* One parsed GGUF file: the whole model, or one part of a split model. */
typedef struct part {
    char *name;               /* owned copy of the path or image name */
    const uint8_t *base;      /* the mapping (mapped) or the caller's image (borrowed) */
    uint64_t size;
    bool mapped;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_start;
    int64_t n_kv;
    rf_gguf_kv *kvs;          /* carved from block */
    const rf_gguf_kv **kv_sorted; /* carved from block: kvs ordered by key */
    void *block;              /* owned: kvs, kv_sorted, string slots, nested values */
    int64_t n_tensors;
    rf_gguf_tensor *tensors;  /* owned until moved into the rf_gguf */
    void *copy;               /* owned: the data section copied by rf_gguf_copy_data, or NULL */
    size_t copy_size;
} part;

static void part_free(part *p) {
    if (p->copy) munmap(p->copy, p->copy_size);
    if (p->mapped) munmap((void *)p->base, p->size);
    rf_free(p->block);
    rf_free(p->tensors);
    rf_free(p->name);
    memset(p, 0, sizeof *p);
}

static int cmp_kv_ptr(const void *a, const void *b) {
    return cmp_str((*(const rf_gguf_kv *const *)a)->key, (*(const rf_gguf_kv *const *)b)->key);
}

static const rf_gguf_kv *part_find(const part *p, const char *key) {
    rf_str k = {key, strlen(key)};
    int64_t lo = 0, hi = p->n_kv;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = cmp_str(p->kv_sorted[mid]->key, k);
        if (r == 0) return p->kv_sorted[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Smallest bytes one key-value pair and one tensor info can take. */
#define KV_MIN_BYTES (8 + 1 + 4 + 1)
#define TI_MIN_BYTES (8 + 1 + 4 + 8 + 4 + 8)

static rf_status parse_header(cursor *c, part *p, uint64_t *n_tensors, uint64_t *n_kv) {
    if (c->size < 4)
        return bad(c, 0, "file is %" PRIu64 " bytes, too short for a GGUF header", c->size);
    if (memcmp(c->base, RF_GGUF_MAGIC, 4) != 0)
        return bad(c, 0, "bad magic %02x %02x %02x %02x, not a GGUF file", c->base[0], c->base[1],
                   c->base[2], c->base[3]);
    c->pos = 4;
    rf_status st = get_u32(c, "version", &p->version);
    if (st != RF_OK) return st;
    if (p->version == 1)
        return bad(c, 4, "GGUF version 1 is not supported (re-convert the model with a current tool)");
    if (p->version != 0 && (p->version & 0xffff) == 0)
        return bad(c, 4, "version 0x%08" PRIx32 " looks byte-swapped: big-endian GGUF is not supported",
                   p->version);
    if (p->version != 2 && p->version != 3)
        return bad(c, 4, "unsupported GGUF version %" PRIu32 " (supported: 2, 3)", p->version);
    if ((st = get_u64(c, "tensor count", n_tensors)) != RF_OK) return st;
    if ((st = get_u64(c, "key-value count", n_kv)) != RF_OK) return st;
    if (*n_kv > left(c) / KV_MIN_BYTES)
        return bad(c, 16,
                   "key-value count %" PRIu64 " is impossible: each takes at least %d bytes and only %" PRIu64
                   " are left",
                   *n_kv, KV_MIN_BYTES, left(c));
    if (*n_tensors > left(c) / TI_MIN_BYTES)
        return bad(c, 8,
                   "tensor count %" PRIu64 " is impossible: each takes at least %d bytes and only %" PRIu64
                   " are left",
                   *n_tensors, TI_MIN_BYTES, left(c));
    return RF_OK;
}

/* One pass over the key-value pairs; stores them when kvs is not NULL. */
static rf_status parse_kvs(cursor *c, arena *a, uint64_t n_kv, rf_gguf_kv *kvs) {
    for (uint64_t i = 0; i < n_kv; i++) {
        uint64_t off = c->pos, type_off;
        rf_str key;
        uint32_t type;
        rf_gguf_value v;
        rf_status st = get_str(c, "key", RF_GGUF_MAX_KEY_LEN, &key);
        if (st != RF_OK) return st;
        if (key.len == 0) return bad(c, off, "empty key");
        type_off = c->pos;
        if ((st = get_u32(c, "value type", &type)) != RF_OK) return st;
        if ((st = read_value(c, a, type, type_off, &v)) != RF_OK) return st;
        if (kvs) {
            kvs[i].key = key;
            kvs[i].val = v;
            kvs[i].file_offset = off;
        }
    }
    return RF_OK;
}

/* Counts, allocates and fills the metadata; leaves c->pos after it. */
static rf_status read_metadata(cursor *c, part *p, uint64_t n_kv) {
    uint64_t start = c->pos;
    arena a = {0};
    rf_status st = parse_kvs(c, &a, n_kv, NULL);
    if (st != RF_OK) return st;

    /* Each count is bounded by the file size over 8, so these cannot wrap;
     * checked anyway because it costs nothing. */
    uint64_t b_kvs, b_sorted, b_strs, b_vals, total;
    if (!rf_mul_u64(n_kv, sizeof(rf_gguf_kv), &b_kvs) ||
        !rf_mul_u64(n_kv, sizeof(rf_gguf_kv *), &b_sorted) ||
        !rf_mul_u64(a.n_strs, sizeof(rf_str), &b_strs) ||
        !rf_mul_u64(a.n_vals, sizeof(rf_gguf_value), &b_vals) || !rf_add_u64(b_kvs, b_sorted, &total) ||
        !rf_add_u64(total, b_strs, &total) || !rf_add_u64(total, b_vals, &total) || total > SIZE_MAX)
        return nomem(c->name, c->err);
    if (total) {
        p->block = rf_malloc((size_t)total);
        if (!p->block) return nomem(c->name, c->err);
    }
    char *q = p->block;
    p->kvs = n_kv ? (rf_gguf_kv *)q : NULL;
    p->kv_sorted = n_kv ? (const rf_gguf_kv **)(q + b_kvs) : NULL;
    arena b = {
        .fill = true,
        .strs = a.n_strs ? (rf_str *)(q + b_kvs + b_sorted) : NULL,
        .cap_strs = a.n_strs,
        .vals = a.n_vals ? (rf_gguf_value *)(q + b_kvs + b_sorted + b_strs) : NULL,
        .cap_vals = a.n_vals,
    };
    c->pos = start;
    if ((st = parse_kvs(c, &b, n_kv, p->kvs)) != RF_OK) return st;
    if (b.n_strs != a.n_strs || b.n_vals != a.n_vals) return changed(c);
    p->n_kv = (int64_t)n_kv;

    for (uint64_t i = 0; i < n_kv; i++) p->kv_sorted[i] = &p->kvs[i];
    if (n_kv > 1) qsort(p->kv_sorted, n_kv, sizeof *p->kv_sorted, cmp_kv_ptr);
    for (uint64_t i = 1; i < n_kv; i++) {
        const rf_gguf_kv *x = p->kv_sorted[i - 1], *y = p->kv_sorted[i];
        if (cmp_str(x->key, y->key) == 0) {
            char qk[80];
            if (x->file_offset > y->file_offset) {
                const rf_gguf_kv *t = x;
                x = y;
                y = t;
            }
            return bad(c, y->file_offset, "duplicate key '%s' (first at offset %" PRIu64 ")",
                       quote(y->key, qk, sizeof qk), x->file_offset);
        }
    }
    return RF_OK;
}

static rf_status read_alignment(cursor *c, part *p) {
    p->alignment = RF_GGUF_DEFAULT_ALIGNMENT;
    const rf_gguf_kv *kv = part_find(p, "general.alignment");
    if (!kv) return RF_OK;
    if (rf_gguf_vtypes[kv->val.type].kind != RF_VK_UINT)
        return bad(c, kv->file_offset, "general.alignment has type %s; it must be an unsigned integer (U32)",
                   rf_gguf_vtypes[kv->val.type].name);
    uint64_t al = kv->val.u64;
    if (al == 0 || (al & (al - 1)) != 0)
        return bad(c, kv->file_offset, "general.alignment = %" PRIu64 " is not a nonzero power of two", al);
    p->alignment = al;
    return RF_OK;
}

static rf_status read_tensor_info(cursor *c, const part *p, rf_gguf_tensor *t) {
    uint64_t off = c->pos;
    char qn[80];
    t->file_offset = off;
    rf_status st = get_str(c, "tensor name", RF_GGUF_MAX_NAME_LEN, &t->name);
    if (st != RF_OK) return st;
    if (t->name.len == 0) return bad(c, off, "empty tensor name");
    quote(t->name, qn, sizeof qn);
    if ((st = get_u32(c, "tensor n_dims", &t->n_dims)) != RF_OK) return st;
    if (t->n_dims < 1 || t->n_dims > RF_GGUF_MAX_DIMS)
        return bad(c, off, "tensor '%s': n_dims = %" PRIu32 " is not in 1..%d", qn, t->n_dims,
                   RF_GGUF_MAX_DIMS);
    for (int d = 0; d < RF_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v;
        if ((st = get_u64(c, "tensor dimension", &v)) != RF_OK) return st;
        if (v > INT64_MAX)
            return bad(c, off, "tensor '%s': ne[%" PRIu32 "] = %" PRId64 " is negative", qn, d, (int64_t)v);
        t->ne[d] = (int64_t)v;
    }
    if ((st = get_u32(c, "tensor type", &t->type)) != RF_OK) return st;
    if ((st = get_u64(c, "tensor data offset", &t->offset)) != RF_OK) return st;
    const char *why = rf_gguf_tensor_size(t->type, t->n_dims, t->ne, &t->nbytes);
    if (why)
        return bad(c, off,
                   "tensor '%s': %s (type %" PRIu32 "%s%s, ne = [%" PRId64 ", %" PRId64 ", %" PRId64
                   ", %" PRId64 "])",
                   qn, why, t->type, rf_type_get(t->type) ? " " : "", rf_type_get(t->type) ? rf_type_name(t->type) : "",
                   t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    if (t->offset % p->alignment != 0)
        return bad(c, off, "tensor '%s': data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                   qn, t->offset, p->alignment);
    return RF_OK;
}

/* Orders by data offset, empty tensors first among equals. */
static int cmp_tensor_offset(const void *a, const void *b) {
    const rf_gguf_tensor *x = *(const rf_gguf_tensor *const *)a, *y = *(const rf_gguf_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* Places every tensor's data in the file and checks that none leaves the
 * data section or overlaps another. */
static rf_status place_tensors(cursor *c, part *p) {
    uint64_t ds;
    if (!rf_add_u64(c->pos, p->alignment - 1, &ds))
        return bad(c, c->pos, "padding to alignment %" PRIu64 " overflows", p->alignment);
    ds &= ~(p->alignment - 1);
    p->data_start = ds;
    /* A file without tensors may end right after its tensor infos. */
    if (p->n_tensors == 0) return RF_OK;
    if (ds > c->size)
        return bad(c, c->pos,
                   "tensor data should start at offset %" PRIu64 " (padded to %" PRIu64
                   ") but the file has only %" PRIu64 " bytes",
                   ds, p->alignment, c->size);
    uint64_t data_size = c->size - ds;
    char qn[80], qm[80];
    for (int64_t i = 0; i < p->n_tensors; i++) {
        rf_gguf_tensor *t = &p->tensors[i];
        uint64_t end;
        if (!rf_add_u64(t->offset, t->nbytes, &end) || end > data_size) {
            uint64_t a, b;
            if (rf_add_u64(ds, t->offset, &a) && rf_add_u64(a, t->nbytes, &b))
                return bad(c, t->file_offset,
                           "tensor '%s': data [%" PRIu64 ", %" PRIu64 ") exceeds file size %" PRIu64,
                           quote(t->name, qn, sizeof qn), a, b, c->size);
            return bad(c, t->file_offset,
                       "tensor '%s': data offset %" PRIu64 " + %" PRIu64 " bytes exceeds file size %" PRIu64,
                       quote(t->name, qn, sizeof qn), t->offset, t->nbytes, c->size);
        }
        t->data = c->base + ds + t->offset;
    }
    const rf_gguf_tensor **by_off = rf_malloc((size_t)p->n_tensors * sizeof *by_off);
    if (!by_off) return nomem(c->name, c->err);
    for (int64_t i = 0; i < p->n_tensors; i++) by_off[i] = &p->tensors[i];
    qsort(by_off, (size_t)p->n_tensors, sizeof *by_off, cmp_tensor_offset);
    const rf_gguf_tensor *prev = NULL; /* the non-empty tensor reaching furthest so far */
    rf_status st = RF_OK;
    for (int64_t i = 0; i < p->n_tensors && st == RF_OK; i++) {
        const rf_gguf_tensor *t = by_off[i];
        if (t->nbytes == 0) continue;
        if (prev && t->offset < prev->offset + prev->nbytes)
            st = bad(c, t->file_offset,
                     "tensor '%s': data [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%s' at [%" PRIu64
                     ", %" PRIu64 ")",
                     quote(t->name, qn, sizeof qn), ds + t->offset, ds + t->offset + t->nbytes,
                     quote(prev->name, qm, sizeof qm), ds + prev->offset, ds + prev->offset + prev->nbytes);
        if (!prev || t->offset + t->nbytes > prev->offset + prev->nbytes) prev = t;
    }
    rf_free(by_off);
    return st;
}

/* Parses p->base[0, p->size) into p; p->name must be set. On failure the
 * caller frees p with part_free. */
static rf_status parse_part(part *p, rf_error *err) {
    cursor c = {.name = p->name, .base = p->base, .size = p->size, .pos = 0, .err = err};
    uint64_t n_tensors = 0, n_kv = 0;
    rf_status st = parse_header(&c, p, &n_tensors, &n_kv);
    if (st == RF_OK) st = read_metadata(&c, p, n_kv);
    if (st == RF_OK) st = read_alignment(&c, p);
    if (st != RF_OK) return st;
    if (n_tensors > left(&c) / TI_MIN_BYTES)
        return bad(&c, 8,
                   "tensor count %" PRIu64 " is impossible: each takes at least %d bytes and only %" PRIu64
                   " are left after the metadata",
                   n_tensors, TI_MIN_BYTES, left(&c));
    if (n_tensors) {
        p->tensors = rf_calloc((size_t)n_tensors, sizeof *p->tensors);
        if (!p->tensors) return nomem(c.name, err);
    }
    p->n_tensors = (int64_t)n_tensors;
    for (uint64_t i = 0; i < n_tensors; i++)
        if ((st = read_tensor_info(&c, p, &p->tensors[i])) != RF_OK) return st;
    return place_tensors(&c, p);
}

/* Maps `path` read-only and parses it into p (zeroed by the caller). */
static rf_status map_part(const char *path, part *p, rf_error *err) {
    p->name = rf_strndup(path, strlen(path));
    if (!p->name) return nomem(path, err);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return rf_error_set(err, RF_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return rf_error_set(err, RF_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return rf_error_set(err, RF_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return rf_error_set(err, RF_E_IO, "%s: file too large to map", path);
    }
    p->size = (uint64_t)sb.st_size;
    if (p->size > 0) {
        void *m = mmap(NULL, (size_t)p->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            return rf_error_set(err, RF_E_IO, "%s: cannot map %" PRIu64 " bytes: %s", path, p->size,
                                strerror(e));
        }
        p->base = m;
        p->mapped = true;
    }
    close(fd); /* the mapping keeps the file referenced */
    return parse_part(p, err);
}

/* ---- opening and split sets ---------------------------------------------- */

struct rf_gguf {
    char *name;                   /* owned: the path or image name given to open */
    uint32_t n_parts;
    part *parts;                  /* owned: [0] holds the metadata */
    uint64_t file_size;
    int64_t n_tensors;
    rf_gguf_tensor *tensors;      /* owned: all parts' tensors, part by part in file order */
    const rf_gguf_tensor **by_name; /* owned: tensors ordered by name */
};

void rf_gguf_close(rf_gguf *g) {
    if (!g) return;
    for (uint32_t i = 0; i < g->n_parts; i++) part_free(&g->parts[i]);
    rf_free(g->parts);
    rf_free(g->tensors);
    rf_free(g->by_name);
    rf_free(g->name);
    rf_free(g);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return cmp_str((*(const rf_gguf_tensor *const *)a)->name, (*(const rf_gguf_tensor *const *)b)->name);
}

/* Joins the parts' tensor tables, indexes them by name and rejects a name
 * that appears twice (in one part or across parts). */
static rf_status join_parts(rf_gguf *g, rf_error *err) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < g->n_parts; i++) {
        total += (uint64_t)g->parts[i].n_tensors; /* each is below size / 33 */
        g->file_size += g->parts[i].size;
    }
    if (g->n_parts == 1) {
        g->tensors = g->parts[0].tensors; /* ownership moves */
        g->parts[0].tensors = NULL;
    } else if (total) {
        g->tensors = rf_calloc((size_t)total, sizeof *g->tensors);
        if (!g->tensors) return nomem(g->name, err);
        uint64_t k = 0;
        for (uint32_t i = 0; i < g->n_parts; i++) {
            for (int64_t j = 0; j < g->parts[i].n_tensors; j++) {
                g->tensors[k] = g->parts[i].tensors[j];
                g->tensors[k++].split = i;
            }
            rf_free(g->parts[i].tensors);
            g->parts[i].tensors = NULL;
        }
    }
    g->n_tensors = (int64_t)total;
    if (!total) return RF_OK;
    g->by_name = rf_malloc((size_t)total * sizeof *g->by_name);
    if (!g->by_name) return nomem(g->name, err);
    for (uint64_t i = 0; i < total; i++) g->by_name[i] = &g->tensors[i];
    qsort(g->by_name, (size_t)total, sizeof *g->by_name, cmp_tensor_name);
    for (uint64_t i = 1; i < total; i++) {
        const rf_gguf_tensor *x = g->by_name[i - 1], *y = g->by_name[i];
        if (cmp_str(x->name, y->name) != 0) continue;
        if (x->split > y->split || (x->split == y->split && x->file_offset > y->file_offset)) {
            const rf_gguf_tensor *t = x;
            x = y;
            y = t;
        }
        char qn[80];
        if (x->split == y->split)
            return rf_error_set(err, RF_E_FORMAT,
                                "%s: offset %" PRIu64 ": duplicate tensor name '%s' (first at offset %" PRIu64 ")",
                                g->parts[y->split].name, y->file_offset, quote(y->name, qn, sizeof qn),
                                x->file_offset);
        return rf_error_set(err, RF_E_FORMAT,
                            "%s: offset %" PRIu64 ": duplicate tensor name '%s' (also in %s at offset %" PRIu64 ")",
                            g->parts[y->split].name, y->file_offset, quote(y->name, qn, sizeof qn),
                            g->parts[x->split].name, x->file_offset);
    }
    return RF_OK;
}

/* Reads an integer split.* key of part p. Absent: *out = dflt. */
static rf_status split_key(const part *p, const char *key, uint64_t dflt, uint64_t *out, rf_error *err) {
    const rf_gguf_kv *kv = part_find(p, key);
    *out = dflt;
    if (!kv) return RF_OK;
    uint8_t kind = rf_gguf_vtypes[kv->val.type].kind;
    if (kind == RF_VK_UINT) *out = kv->val.u64;
    else if (kind == RF_VK_SINT && kv->val.i64 >= 0) *out = (uint64_t)kv->val.i64;
    else
        return rf_error_set(err, RF_E_FORMAT, "%s: offset %" PRIu64 ": %s must be a non-negative integer",
                            p->name, kv->file_offset, key);
    return RF_OK;
}

rf_status rf_gguf_open_memory(const void *buf, size_t size, const char *name, rf_gguf **out,
                              rf_error *err) {
    RF_ASSERT(out != NULL);
    *out = NULL;
    if (!name) name = "<memory>";
    if (!buf && size) return rf_error_set(err, RF_E_INVAL, "%s: NULL buffer of %zu bytes", name, size);
    rf_gguf *g = rf_calloc(1, sizeof *g);
    if (!g) return nomem(name, err);
    rf_status st = RF_E_NOMEM;
    g->name = rf_strndup(name, strlen(name));
    g->parts = rf_calloc(1, sizeof *g->parts);
    if (!g->name || !g->parts) {
        nomem(name, err);
        goto fail;
    }
    g->n_parts = 1;
    part *p = &g->parts[0];
    p->name = rf_strndup(name, strlen(name));
    if (!p->name) {
        nomem(name, err);
        goto fail;
    }
    p->base = buf;
    p->size = size;
    uint64_t ignored;
    if ((st = parse_part(p, err)) != RF_OK) goto fail;
    if ((st = split_key(p, "split.count", 0, &ignored, err)) != RF_OK) goto fail;
    if ((st = split_key(p, "split.no", 0, &ignored, err)) != RF_OK) goto fail;
    if ((st = join_parts(g, err)) != RF_OK) goto fail;
    *out = g;
    return RF_OK;
fail:
    rf_gguf_close(g);
    return st;
}

/* Where `key` starts in part p (0 if absent), for messages. */
static uint64_t key_offset(const part *p, const char *key) {
    const rf_gguf_kv *kv = part_find(p, key);
    return kv ? kv->file_offset : 0;
}

/* Opens parts 2..n of a split set whose first part is g->parts[0]. */
static rf_status open_other_parts(rf_gguf *g, uint64_t n, rf_error *err) {
    const part *p0 = &g->parts[0];
    const char *path = p0->name;
    size_t len = strlen(path);
    char want[40];
    snprintf(want, sizeof want, "-%05u-of-%05u.gguf", 1u, (unsigned)n);
    size_t wl = strlen(want);
    if (len < wl || strcmp(path + len - wl, want) != 0)
        return rf_error_set(err, RF_E_FORMAT,
                            "%s: offset %" PRIu64 ": split.count = %" PRIu64
                            " but the name does not end in '%s', so the other parts cannot be found",
                            path, key_offset(p0, "split.count"), n, want);
    char *pi = rf_malloc(len + 1);
    if (!pi) return nomem(path, err);
    rf_status st = RF_OK;
    uint64_t total = (uint64_t)p0->n_tensors;
    for (uint32_t i = 1; i < n && st == RF_OK; i++) {
        memcpy(pi, path, len - wl);
        snprintf(pi + len - wl, wl + 1, "-%05u-of-%05u.gguf", i + 1, (unsigned)n);
        part *p = &g->parts[i];
        if ((st = map_part(pi, p, err)) != RF_OK) break;
        uint64_t no, count;
        if ((st = split_key(p, "split.no", UINT64_MAX, &no, err)) != RF_OK) break;
        if ((st = split_key(p, "split.count", 0, &count, err)) != RF_OK) break;
        if (no != i || count != n)
            st = rf_error_set(err, RF_E_FORMAT,
                              "%s: offset %" PRIu64 ": split.no = %" PRId64 ", split.count = %" PRIu64
                              " but part %u of %" PRIu64 " was expected",
                              pi, key_offset(p, no != i ? "split.no" : "split.count"),
                              no == UINT64_MAX ? -1 : (int64_t)no, count, i + 1, n);
        total += (uint64_t)p->n_tensors;
    }
    rf_free(pi);
    if (st != RF_OK) return st;
    uint64_t want_tensors;
    if ((st = split_key(p0, "split.tensors.count", total, &want_tensors, err)) != RF_OK) return st;
    if (want_tensors != total)
        return rf_error_set(err, RF_E_FORMAT, "%s: offset %" PRIu64 ": split.tensors.count = %" PRIu64
                            " but the %" PRIu64 " parts hold %" PRIu64 " tensors",
                            path, key_offset(p0, "split.tensors.count"), want_tensors, n, total);
    return RF_OK;
}

rf_status rf_gguf_open(const char *path, rf_gguf **out, rf_error *err) {
    RF_ASSERT(path != NULL && out != NULL);
    *out = NULL;
    part p0 = {0};
    rf_status st = map_part(path, &p0, err);
    uint64_t n = 1, no = 0;
    if (st == RF_OK) st = split_key(&p0, "split.count", 1, &n, err);
    if (st == RF_OK) st = split_key(&p0, "split.no", 0, &no, err);
    if (st != RF_OK) {
        part_free(&p0);
        return st;
    }
    if (n == 0) n = 1; /* llama.cpp writes 0 for "not split" */
    if (n > 99999 || (n > 1 && no != 0)) {
        uint64_t off_count = key_offset(&p0, "split.count"), off_no = key_offset(&p0, "split.no");
        part_free(&p0);
        if (n > 99999)
            return rf_error_set(err, RF_E_FORMAT, "%s: offset %" PRIu64 ": split.count = %" PRIu64 " is too large",
                                path, off_count, n);
        if (no >= n)
            return rf_error_set(err, RF_E_FORMAT,
                                "%s: offset %" PRIu64 ": split.no = %" PRIu64 " is not below split.count = %" PRIu64,
                                path, off_no, no, n);
        return rf_error_set(err, RF_E_FORMAT,
                            "%s: offset %" PRIu64 ": this is part %" PRIu64 " of %" PRIu64
                            " of a split model; open the first part (...-00001-of-%05u.gguf)",
                            path, off_no, no + 1, n, (unsigned)n);
    }
    rf_gguf *g = rf_calloc(1, sizeof *g);
    if (g) g->name = rf_strndup(path, strlen(path));
    if (g && g->name) g->parts = rf_calloc((size_t)n, sizeof *g->parts);
    if (!g || !g->parts) {
        part_free(&p0);
        rf_gguf_close(g);
        return nomem(path, err);
    }
    g->n_parts = (uint32_t)n;
    g->parts[0] = p0; /* ownership moves */
    if (n > 1) st = open_other_parts(g, n, err);
    if (st == RF_OK) st = join_parts(g, err);
    if (st != RF_OK) {
        rf_gguf_close(g);
        return st;
    }
    *out = g;
    return RF_OK;
}

/* ---- public accessors ---------------------------------------------------- */

uint32_t rf_gguf_version(const rf_gguf *g) { return g->parts[0].version; }
uint64_t rf_gguf_alignment(const rf_gguf *g) { return g->parts[0].alignment; }
uint64_t rf_gguf_file_size(const rf_gguf *g) { return g->file_size; }
uint32_t rf_gguf_n_splits(const rf_gguf *g) { return g->n_parts; }

int64_t rf_gguf_n_kv(const rf_gguf *g) { return g->parts[0].n_kv; }

const rf_gguf_kv *rf_gguf_kv_at(const rf_gguf *g, int64_t i) {
    return i >= 0 && i < g->parts[0].n_kv ? &g->parts[0].kvs[i] : NULL;
}

int64_t rf_gguf_find_key(const rf_gguf *g, const char *key) {
    const rf_gguf_kv *kv = part_find(&g->parts[0], key);
    return kv ? kv - g->parts[0].kvs : -1;
}

const rf_gguf_value *rf_gguf_get(const rf_gguf *g, const char *key) {
    const rf_gguf_kv *kv = part_find(&g->parts[0], key);
    return kv ? &kv->val : NULL;
}

static rf_status lookup(const rf_gguf *g, const char *key, const rf_gguf_kv **kv, rf_error *err) {
    *kv = part_find(&g->parts[0], key);
    if (*kv) return RF_OK;
    return rf_error_set(err, RF_E_NOTFOUND, "%s: key '%s' not found", g->name, key);
}

static rf_status no_convert(const rf_gguf *g, const rf_gguf_kv *kv, const char *key, const char *want,
                            rf_error *err) {
    char what[96];
    const rf_gguf_value *v = &kv->val;
    uint8_t kind = rf_gguf_vtypes[v->type].kind;
    const char *tn = rf_gguf_vtypes[v->type].name;
    if (kind == RF_VK_UINT || kind == RF_VK_BOOL) snprintf(what, sizeof what, "%s %" PRIu64, tn, v->u64);
    else if (kind == RF_VK_SINT) snprintf(what, sizeof what, "%s %" PRId64, tn, v->i64);
    else if (kind == RF_VK_FLOAT) snprintf(what, sizeof what, "%s %.9g", tn, v->f64);
    else if (kind == RF_VK_ARRAY)
        snprintf(what, sizeof what, "an array of %" PRIu64 " %s", v->arr.n, rf_gguf_vtype_name(v->arr.elem_type));
    else snprintf(what, sizeof what, "a string");
    return rf_error_set(err, RF_E_FORMAT, "%s: offset %" PRIu64 ": key '%s' holds %s, which does not convert to %s",
                        g->name, kv->file_offset, key, what, want);
}

/* Lossless integer conversions shared by the typed getters. */
static bool as_u64(const rf_gguf_value *v, uint64_t *out) {
    uint8_t kind = rf_gguf_vtypes[v->type].kind;
    if (kind == RF_VK_UINT) return *out = v->u64, true;
    if (kind == RF_VK_SINT && v->i64 >= 0) return *out = (uint64_t)v->i64, true;
    return false;
}

static bool as_i64(const rf_gguf_value *v, int64_t *out) {
    uint8_t kind = rf_gguf_vtypes[v->type].kind;
    if (kind == RF_VK_SINT) return *out = v->i64, true;
    if (kind == RF_VK_UINT && v->u64 <= INT64_MAX) return *out = (int64_t)v->u64, true;
    return false;
}

rf_status rf_gguf_get_u64(const rf_gguf *g, const char *key, uint64_t *out, rf_error *err) {
    const rf_gguf_kv *kv;
    rf_status st = lookup(g, key, &kv, err);
    if (st != RF_OK) return st;
    return as_u64(&kv->val, out) ? RF_OK : no_convert(g, kv, key, "u64", err);
}

rf_status rf_gguf_get_i64(const rf_gguf *g, const char *key, int64_t *out, rf_error *err) {
    const rf_gguf_kv *kv;
    rf_status st = lookup(g, key, &kv, err);
    if (st != RF_OK) return st;
    return as_i64(&kv->val, out) ? RF_OK : no_convert(g, kv, key, "i64", err);
}

rf_status rf_gguf_get_u32(const rf_gguf *g, const char *key, uint32_t *out, rf_error *err) {
    const rf_gguf_kv *kv;
    uint64_t u;
    rf_status st = lookup(g, key, &kv, err);
    if (st != RF_OK) return st;
    if (!as_u64(&kv->val, &u) || u > UINT32_MAX) return no_convert(g, kv, key, "u32", err);
    *out = (uint32_t)u;
    return RF_OK;
}

/* Floats convert when exact: F64 values that are floats, integers up to
 * the float mantissa (or any integer a float holds exactly). */
rf_status rf_gguf_get_f32(const rf_gguf *g, const char *key, float *out, rf_error *err) {
    const rf_gguf_kv *kv;
    rf_status st = lookup(g, key, &kv, err);
    if (st != RF_OK) return st;
    const rf_gguf_value *v = &kv->val;
    uint8_t kind = rf_gguf_vtypes[v->type].kind;
    float f;
    bool ok = false;
    if (kind == RF_VK_FLOAT) {
        f = (float)v->f64;
        ok = v->type == RF_GGUF_F32 || (double)f == v->f64 || v->f64 != v->f64;
    } else if (kind == RF_VK_UINT) {
        f = (float)v->u64;
        ok = f < 18446744073709551616.0f && (uint64_t)f == v->u64;
    } else if (kind == RF_VK_SINT) {
        f = (float)v->i64;
        ok = f < 9223372036854775808.0f && (int64_t)f == v->i64;
    }
    if (!ok) return no_convert(g, kv, key, "f32", err);
    *out = f;
    return RF_OK;
}

rf_status rf_gguf_get_bool(const rf_gguf *g, const char *key, bool *out, rf_error *err) {
    const rf_gguf_kv *kv;
    rf_status st = lookup(g, key, &kv, err);
    if (st != RF_OK) return st;
    if (kv->val.type != RF_GGUF_BOOL) return no_convert(g, kv, key, "bool", err);
    *out = kv->val.u64 != 0;
    return RF_OK;
}

rf_status rf_gguf_get_str(const rf_gguf *g, const char *key, rf_str *out, rf_error *err) {
    const rf_gguf_kv *kv;
    rf_status st = lookup(g, key, &kv, err);
    if (st != RF_OK) return st;
    if (kv->val.type != RF_GGUF_STRING) return no_convert(g, kv, key, "a string", err);
    *out = kv->val.str;
    return RF_OK;
}

rf_status rf_gguf_get_arr(const rf_gguf *g, const char *key, rf_gguf_arr *out, rf_error *err) {
    const rf_gguf_kv *kv;
    rf_status st = lookup(g, key, &kv, err);
    if (st != RF_OK) return st;
    if (kv->val.type != RF_GGUF_ARRAY) return no_convert(g, kv, key, "an array", err);
    *out = kv->val.arr;
    return RF_OK;
}

/* U64 elements above INT64_MAX come back as their two's complement bits;
 * cast the result to uint64_t for U64 arrays. */
int64_t rf_gguf_arr_i64(const rf_gguf_arr *a, uint64_t i) {
    RF_ASSERT(a != NULL && i < a->n && a->elem_type < RF_GGUF_VTYPE_COUNT);
    const rf_gguf_vtype_info *vi = &rf_gguf_vtypes[a->elem_type];
    RF_ASSERT(vi->kind == RF_VK_UINT || vi->kind == RF_VK_SINT || vi->kind == RF_VK_BOOL);
    rf_gguf_value v;
    rf_gguf_decode_scalar(a->elem_type, (const uint8_t *)a->data + i * vi->size, &v);
    return v.i64;
}

double rf_gguf_arr_f64(const rf_gguf_arr *a, uint64_t i) {
    RF_ASSERT(a != NULL && i < a->n && a->elem_type < RF_GGUF_VTYPE_COUNT);
    const rf_gguf_vtype_info *vi = &rf_gguf_vtypes[a->elem_type];
    RF_ASSERT(vi->size > 0);
    rf_gguf_value v;
    rf_gguf_decode_scalar(a->elem_type, (const uint8_t *)a->data + i * vi->size, &v);
    if (vi->kind == RF_VK_FLOAT) return v.f64;
    if (vi->kind == RF_VK_SINT) return (double)v.i64;
    return (double)v.u64;
}

rf_str rf_gguf_arr_str(const rf_gguf_arr *a, uint64_t i) {
    RF_ASSERT(a != NULL && i < a->n && a->elem_type == RF_GGUF_STRING);
    return ((const rf_str *)a->data)[i];
}

bool rf_str_eq(rf_str s, const char *cstr) {
    size_t n = strlen(cstr);
    return s.len == n && (n == 0 || memcmp(s.ptr, cstr, n) == 0);
}

int64_t rf_gguf_n_tensors(const rf_gguf *g) { return g->n_tensors; }

const rf_gguf_tensor *rf_gguf_tensor_at(const rf_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const rf_gguf_tensor *rf_gguf_find_tensor(const rf_gguf *g, const char *name) {
    rf_str k = {name, strlen(name)};
    int64_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = cmp_str(g->by_name[mid]->name, k);
        if (r == 0) return g->by_name[mid];
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int64_t rf_gguf_tensor_nelements(const rf_gguf_tensor *t) {
    int64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) n *= t->ne[d]; /* validated not to overflow */
    return n;
}

/* ---- weights in anonymous memory ------------------------------------------ */

bool rf_gguf_data_copied(const rf_gguf *g) {
    for (uint32_t i = 0; i < g->n_parts; i++)
        if (!g->parts[i].copy && g->parts[i].data_start < g->parts[i].size) return false;
    return true;
}

rf_status rf_gguf_copy_data(rf_gguf *g, rf_error *err) {
    const size_t huge = (size_t)2 << 20;
    for (uint32_t i = 0; i < g->n_parts; i++) {
        part *p = &g->parts[i];
        if (p->copy || p->data_start >= p->size) continue;
        const size_t n = (size_t)(p->size - p->data_start);
        /* a 2 MiB-aligned start, so that the huge pages cover the tensors */
        const size_t len = n + huge;
        uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return rf_error_set(err, RF_E_NOMEM, "%s: cannot allocate %zu MiB for the weights: %s", p->name, n >> 20,
                                strerror(errno));
        uint8_t *a = (uint8_t *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
#ifdef MADV_HUGEPAGE
        (void)madvise(a, (n + huge - 1) & ~(huge - 1), MADV_HUGEPAGE); /* a hint: 4 KiB pages still work */
#endif
        memcpy(a, p->base + p->data_start, n);
        p->copy = m;
        p->copy_size = len;
        const uint8_t *from = p->base + p->data_start;
        for (int64_t t = 0; t < g->n_tensors; t++) {
            rf_gguf_tensor *ten = &g->tensors[t];
            if (ten->split == i) ten->data = a + ((const uint8_t *)ten->data - from);
        }
#ifdef MADV_DONTNEED
        /* the file's pages are no longer read through this mapping */
        if (p->mapped) (void)madvise((void *)p->base, (size_t)p->size, MADV_DONTNEED);
#endif
    }
    return RF_OK;
}
