/*
 * writer.c - the GGUF writer. Metadata values are serialized into GGUF wire
 * bytes the moment they are set (so any value, nested arrays included, is
 * copied once and needs no deep-free), tensor infos are collected, and
 * rf_gguf_writer_begin() lays the file out: header, key-value pairs, tensor
 * infos, zero padding to the alignment, then each tensor's data followed by
 * zero padding so the next one starts aligned. Output goes through one
 * 1 MiB buffer straight to a file descriptor, so a write error carries the
 * errno of the failing write(2).
 *
 * Sections: byte buffers, metadata, tensors, output, begin/stream/finish.
 */
#include "gguf-impl.h"

#include "../quant/quant.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WBUF_SIZE ((size_t)1 << 20)

typedef struct wkv {
    char *key;     /* owned; not NUL-terminated in general (set_value keys may hold any byte) */
    size_t key_len;
    uint8_t *val;  /* owned: u32 type + value, exactly as it goes into the file */
    size_t val_len;
} wkv;

typedef struct wtensor {
    char *name;    /* owned, NUL-terminated */
    size_t name_len;
    uint32_t type, n_dims;
    int64_t ne[RF_GGUF_MAX_DIMS];
    uint64_t nbytes;
    uint64_t offset;  /* relative to the data section; set by begin */
    const void *data; /* borrowed until finish; NULL: streamed */
} wtensor;

struct rf_gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *tensors;
    size_t n_tensors, cap_tensors;

    /* Output state, between begin and finish. */
    bool open;
    int fd;
    char *path;      /* owned */
    uint8_t *buf;    /* owned, WBUF_SIZE bytes */
    size_t buf_n;
    uint64_t pos;    /* bytes written to the file so far, buffered or not */
    uint64_t alignment;
    uint64_t data_start;
    size_t next;       /* first tensor whose data is not complete */
    uint64_t streamed; /* bytes of tensors[next] streamed so far */
};

/* ---- byte buffers ---------------------------------------------------------- */

/* A growable byte string. A failed allocation latches `oom`; later puts are
 * no-ops, so a serializer checks once at the end. */
typedef struct bbuf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} bbuf;

static void bb_put(bbuf *b, const void *src, size_t n) {
    if (b->oom || n == 0) return;
    if (n > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = rf_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void bb_u32(bbuf *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bbuf *b, uint64_t v) { bb_put(b, &v, 8); }

static void bb_str(bbuf *b, const char *s, uint64_t n) {
    bb_u64(b, n);
    bb_put(b, s, (size_t)n);
}

/* ---- metadata ---------------------------------------------------------------- */

rf_gguf_writer *rf_gguf_writer_new(void) {
    rf_gguf_writer *w = rf_calloc(1, sizeof *w);
    if (w) w->fd = -1;
    return w;
}

static void close_output(rf_gguf_writer *w) {
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    rf_free(w->buf);
    rf_free(w->path);
    w->buf = NULL;
    w->path = NULL;
    w->open = false;
}

void rf_gguf_writer_free(rf_gguf_writer *w) {
    if (!w) return;
    close_output(w);
    for (size_t i = 0; i < w->n_kv; i++) {
        rf_free(w->kvs[i].key);
        rf_free(w->kvs[i].val);
    }
    rf_free(w->kvs);
    for (size_t i = 0; i < w->n_tensors; i++) rf_free(w->tensors[i].name);
    rf_free(w->tensors);
    rf_free(w);
}

static wkv *find_kv(const rf_gguf_writer *w, const char *key, size_t len) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (w->kvs[i].key_len == len && memcmp(w->kvs[i].key, key, len) == 0) return &w->kvs[i];
    return NULL;
}

/* Grows an array of `size`-byte items to hold one more; false on OOM. */
static bool grow(void **arr, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return true;
    size_t nc = *cap ? *cap * 2 : 16;
    if (nc > SIZE_MAX / size) return false;
    void *p = rf_realloc(*arr, nc * size);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

/* Stores key -> the serialized value in b (ownership of b->p moves in on
 * success; freed on any failure). */
static rf_status put_kv(rf_gguf_writer *w, const char *key, size_t key_len, bbuf *b) {
    rf_status st = RF_OK;
    if (w->open || !key || key_len == 0 || key_len > RF_GGUF_MAX_KEY_LEN) st = RF_E_INVAL;
    else if (b->oom) st = RF_E_NOMEM;
    if (st != RF_OK) {
        rf_free(b->p);
        return st;
    }
    wkv *kv = find_kv(w, key, key_len);
    if (kv) { /* replace, keeping the key's position */
        rf_free(kv->val);
        kv->val = b->p;
        kv->val_len = b->n;
        return RF_OK;
    }
    char *k = rf_malloc(key_len + 1);
    if (!k || !grow((void **)&w->kvs, &w->cap_kv, w->n_kv, sizeof *w->kvs)) {
        rf_free(k);
        rf_free(b->p);
        return RF_E_NOMEM;
    }
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    w->kvs[w->n_kv++] = (wkv){.key = k, .key_len = key_len, .val = b->p, .val_len = b->n};
    return RF_OK;
}

static rf_status set_scalar(rf_gguf_writer *w, const char *key, uint32_t type, const void *v) {
    bbuf b = {0};
    bb_u32(&b, type);
    bb_put(&b, v, rf_gguf_vtypes[type].size);
    return put_kv(w, key, key ? strlen(key) : 0, &b);
}

rf_status rf_gguf_writer_set_u8(rf_gguf_writer *w, const char *key, uint8_t v) {
    return set_scalar(w, key, RF_GGUF_U8, &v);
}
rf_status rf_gguf_writer_set_i32(rf_gguf_writer *w, const char *key, int32_t v) {
    return set_scalar(w, key, RF_GGUF_I32, &v);
}
rf_status rf_gguf_writer_set_u32(rf_gguf_writer *w, const char *key, uint32_t v) {
    return set_scalar(w, key, RF_GGUF_U32, &v);
}
rf_status rf_gguf_writer_set_u64(rf_gguf_writer *w, const char *key, uint64_t v) {
    return set_scalar(w, key, RF_GGUF_U64, &v);
}
rf_status rf_gguf_writer_set_f32(rf_gguf_writer *w, const char *key, float v) {
    return set_scalar(w, key, RF_GGUF_F32, &v);
}
rf_status rf_gguf_writer_set_bool(rf_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, RF_GGUF_BOOL, &b);
}

rf_status rf_gguf_writer_set_str(rf_gguf_writer *w, const char *key, const char *v) {
    if (!v) return RF_E_INVAL;
    bbuf b = {0};
    bb_u32(&b, RF_GGUF_STRING);
    bb_str(&b, v, strlen(v));
    return put_kv(w, key, key ? strlen(key) : 0, &b);
}

/* Numeric elements; bools are normalized to 0/1 so the reader accepts them. */
static rf_status put_numeric(bbuf *b, uint32_t et, const void *data, uint64_t n) {
    size_t es = rf_gguf_vtypes[et].size;
    uint64_t bytes;
    if (!rf_mul_u64(n, es, &bytes) || bytes > SIZE_MAX || (n && !data)) return RF_E_INVAL;
    if (et != RF_GGUF_BOOL) {
        bb_put(b, data, (size_t)bytes);
        return RF_OK;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint8_t v = ((const uint8_t *)data)[i] != 0;
        bb_put(b, &v, 1);
    }
    return RF_OK;
}

rf_status rf_gguf_writer_set_arr(rf_gguf_writer *w, const char *key, uint32_t elem_type,
                                 const void *data, uint64_t n) {
    if (elem_type >= RF_GGUF_VTYPE_COUNT || rf_gguf_vtypes[elem_type].size == 0) return RF_E_INVAL;
    bbuf b = {0};
    bb_u32(&b, RF_GGUF_ARRAY);
    bb_u32(&b, elem_type);
    bb_u64(&b, n);
    rf_status st = put_numeric(&b, elem_type, data, n);
    if (st != RF_OK) {
        rf_free(b.p);
        return st;
    }
    return put_kv(w, key, key ? strlen(key) : 0, &b);
}

rf_status rf_gguf_writer_set_arr_str(rf_gguf_writer *w, const char *key, const char *const *strs,
                                     uint64_t n) {
    if (n && !strs) return RF_E_INVAL;
    for (uint64_t i = 0; i < n; i++)
        if (!strs[i]) return RF_E_INVAL;
    bbuf b = {0};
    bb_u32(&b, RF_GGUF_ARRAY);
    bb_u32(&b, RF_GGUF_STRING);
    bb_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) bb_str(&b, strs[i], strlen(strs[i]));
    return put_kv(w, key, key ? strlen(key) : 0, &b);
}

static rf_status put_arr(bbuf *b, const rf_gguf_arr *a, int depth);

/* The value body (no type id) of v. F32 scalars pass through the reader's
 * double, which holds every float exactly (NaN bits included, see below). */
static rf_status put_body(bbuf *b, const rf_gguf_value *v) {
    if (v->type >= RF_GGUF_VTYPE_COUNT) return RF_E_INVAL;
    const rf_gguf_vtype_info *vi = &rf_gguf_vtypes[v->type];
    if (v->type == RF_GGUF_F32) {
        float f = (float)v->f64;
        uint64_t d;
        memcpy(&d, &v->f64, 8);
        if ((d & 0x7ff0000000000000ull) == 0x7ff0000000000000ull && (d & 0xfffffffffffffull)) {
            /* NaN: narrow by hand (the reader's exact inverse); a payload only
             * in the low bits would vanish, so it becomes the quiet NaN. */
            uint32_t m = (uint32_t)((d & 0xfffffffffffffull) >> 29), u;
            u = (uint32_t)(d >> 63) << 31 | 0x7f800000u | (m ? m : 0x400000u);
            memcpy(&f, &u, 4);
        }
        bb_put(b, &f, 4);
    } else if (v->type == RF_GGUF_F64) {
        bb_put(b, &v->f64, 8);
    } else if (v->type == RF_GGUF_BOOL) {
        uint8_t x = v->u64 != 0;
        bb_put(b, &x, 1);
    } else if (vi->size) {
        bb_put(b, &v->u64, vi->size); /* low bytes: the value, for both signs */
    } else if (v->type == RF_GGUF_STRING) {
        if (v->str.len && !v->str.ptr) return RF_E_INVAL;
        if (v->str.len > SIZE_MAX) return RF_E_INVAL;
        bb_str(b, v->str.ptr, v->str.len);
    } else {
        return put_arr(b, &v->arr, 1);
    }
    return RF_OK;
}

static rf_status put_arr(bbuf *b, const rf_gguf_arr *a, int depth) {
    if (depth > RF_GGUF_MAX_DEPTH || a->elem_type >= RF_GGUF_VTYPE_COUNT) return RF_E_INVAL;
    if (a->n && !a->data) return RF_E_INVAL;
    bb_u32(b, a->elem_type);
    bb_u64(b, a->n);
    if (rf_gguf_vtypes[a->elem_type].size) return put_numeric(b, a->elem_type, a->data, a->n);
    if (a->elem_type == RF_GGUF_STRING) {
        const rf_str *s = a->data;
        for (uint64_t i = 0; i < a->n; i++) {
            if ((s[i].len && !s[i].ptr) || s[i].len > SIZE_MAX) return RF_E_INVAL;
            bb_str(b, s[i].ptr, s[i].len);
        }
        return RF_OK;
    }
    const rf_gguf_value *vals = a->data;
    for (uint64_t i = 0; i < a->n; i++) {
        if (vals[i].type != RF_GGUF_ARRAY) return RF_E_INVAL;
        rf_status st = put_arr(b, &vals[i].arr, depth + 1);
        if (st != RF_OK) return st;
    }
    return RF_OK;
}

rf_status rf_gguf_writer_set_value(rf_gguf_writer *w, rf_str key, const rf_gguf_value *v) {
    if (!v || (key.len && !key.ptr) || key.len > RF_GGUF_MAX_KEY_LEN) return RF_E_INVAL;
    bbuf b = {0};
    bb_u32(&b, v->type);
    rf_status st = put_body(&b, v);
    if (st != RF_OK) {
        rf_free(b.p);
        return st;
    }
    return put_kv(w, key.ptr, (size_t)key.len, &b);
}

rf_status rf_gguf_writer_remove(rf_gguf_writer *w, const char *key) {
    if (w->open || !key) return RF_E_INVAL;
    wkv *kv = find_kv(w, key, strlen(key));
    if (!kv) return RF_OK;
    rf_free(kv->key);
    rf_free(kv->val);
    size_t i = (size_t)(kv - w->kvs);
    memmove(kv, kv + 1, (w->n_kv - i - 1) * sizeof *kv);
    w->n_kv--;
    return RF_OK;
}

/* ---- tensors ------------------------------------------------------------------ */

rf_status rf_gguf_writer_add_tensor(rf_gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const int64_t *ne, const void *data,
                                    rf_error *err) {
    if (w->open) return rf_error_set(err, RF_E_INVAL, "gguf writer: cannot add tensors while writing");
    if (!name || !*name || strlen(name) > RF_GGUF_MAX_NAME_LEN)
        return rf_error_set(err, RF_E_INVAL, "gguf writer: tensor name is empty or longer than %u bytes",
                            RF_GGUF_MAX_NAME_LEN);
    if (n_dims < 1 || n_dims > RF_GGUF_MAX_DIMS || !ne)
        return rf_error_set(err, RF_E_INVAL, "gguf writer: tensor '%s': n_dims = %u is not in 1..%d", name,
                            n_dims, RF_GGUF_MAX_DIMS);
    size_t len = strlen(name);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].name_len == len && memcmp(w->tensors[i].name, name, len) == 0)
            return rf_error_set(err, RF_E_INVAL, "gguf writer: duplicate tensor name '%s'", name);
    wtensor t = {.type = type, .n_dims = n_dims, .data = data, .name_len = len};
    for (int d = 0; d < RF_GGUF_MAX_DIMS; d++) t.ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
    const char *why = rf_gguf_tensor_size(type, n_dims, t.ne, &t.nbytes);
    if (why)
        return rf_error_set(err, RF_E_INVAL, "gguf writer: tensor '%s': %s (type %u %s, ne[0] = %" PRId64 ")",
                            name, why, type, rf_type_name(type), t.ne[0]);
    t.name = rf_strndup(name, len);
    if (!t.name || !grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors, sizeof *w->tensors)) {
        rf_free(t.name);
        return rf_error_set(err, RF_E_NOMEM, "gguf writer: out of memory adding tensor '%s'", name);
    }
    w->tensors[w->n_tensors++] = t;
    return RF_OK;
}

/* ---- output ------------------------------------------------------------------- */

/* Reports a failed write(2)/close(2) and abandons the file. */
static rf_status io_fail(rf_gguf_writer *w, const char *what, int e, rf_error *err) {
    rf_status st = rf_error_set(err, RF_E_IO, "%s: %s failed: %s", w->path ? w->path : "gguf writer",
                                what, strerror(e));
    close_output(w);
    return st;
}

static bool write_all(int fd, const uint8_t *p, size_t n, int *e) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            *e = k < 0 ? errno : EIO;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static rf_status out_flush(rf_gguf_writer *w, rf_error *err) {
    int e;
    if (w->buf_n && !write_all(w->fd, w->buf, w->buf_n, &e)) return io_fail(w, "write", e, err);
    w->buf_n = 0;
    return RF_OK;
}

static rf_status out_put(rf_gguf_writer *w, const void *src, size_t n, rf_error *err) {
    rf_status st;
    if (n > WBUF_SIZE - w->buf_n && (st = out_flush(w, err)) != RF_OK) return st;
    if (n >= WBUF_SIZE) { /* big tensor data: skip the copy */
        int e;
        if (!write_all(w->fd, src, n, &e)) return io_fail(w, "write", e, err);
    } else {
        memcpy(w->buf + w->buf_n, src, n);
        w->buf_n += n;
    }
    w->pos += n;
    return RF_OK;
}

/* Zeros up to the next multiple of the alignment. */
static rf_status out_pad(rf_gguf_writer *w, rf_error *err) {
    static const uint8_t zeros[4096];
    uint64_t pad = (w->alignment - w->pos % w->alignment) % w->alignment;
    while (pad > 0) {
        size_t k = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        rf_status st = out_put(w, zeros, k, err);
        if (st != RF_OK) return st;
        pad -= k;
    }
    return RF_OK;
}

static rf_status out_u32(rf_gguf_writer *w, uint32_t v, rf_error *err) { return out_put(w, &v, 4, err); }
static rf_status out_u64(rf_gguf_writer *w, uint64_t v, rf_error *err) { return out_put(w, &v, 8, err); }

/* ---- begin / stream / finish ------------------------------------------------- */

/* The alignment general.alignment asks for (any unsigned integer type). */
static rf_status pick_alignment(rf_gguf_writer *w, rf_error *err) {
    w->alignment = RF_GGUF_DEFAULT_ALIGNMENT;
    const wkv *kv = find_kv(w, "general.alignment", strlen("general.alignment"));
    if (!kv) return RF_OK;
    uint32_t type;
    memcpy(&type, kv->val, 4);
    if (rf_gguf_vtypes[type].kind != RF_VK_UINT)
        return rf_error_set(err, RF_E_INVAL, "gguf writer: general.alignment has type %s, not an unsigned integer",
                            rf_gguf_vtypes[type].name);
    rf_gguf_value v;
    rf_gguf_decode_scalar(type, kv->val + 4, &v);
    if (v.u64 == 0 || (v.u64 & (v.u64 - 1)) != 0)
        return rf_error_set(err, RF_E_INVAL, "gguf writer: general.alignment = %" PRIu64 " is not a nonzero power of two",
                            v.u64);
    w->alignment = v.u64;
    return RF_OK;
}

static rf_status write_header(rf_gguf_writer *w, rf_error *err) {
    rf_status st = out_put(w, RF_GGUF_MAGIC, 4, err);
    if (st == RF_OK) st = out_u32(w, RF_GGUF_VERSION, err);
    if (st == RF_OK) st = out_u64(w, w->n_tensors, err);
    if (st == RF_OK) st = out_u64(w, w->n_kv, err);
    for (size_t i = 0; i < w->n_kv && st == RF_OK; i++) {
        const wkv *kv = &w->kvs[i];
        st = out_u64(w, kv->key_len, err);
        if (st == RF_OK) st = out_put(w, kv->key, kv->key_len, err);
        if (st == RF_OK) st = out_put(w, kv->val, kv->val_len, err);
    }
    for (size_t i = 0; i < w->n_tensors && st == RF_OK; i++) {
        const wtensor *t = &w->tensors[i];
        st = out_u64(w, t->name_len, err);
        if (st == RF_OK) st = out_put(w, t->name, t->name_len, err);
        if (st == RF_OK) st = out_u32(w, t->n_dims, err);
        for (uint32_t d = 0; d < t->n_dims && st == RF_OK; d++) st = out_u64(w, (uint64_t)t->ne[d], err);
        if (st == RF_OK) st = out_u32(w, t->type, err);
        if (st == RF_OK) st = out_u64(w, t->offset, err);
    }
    if (st == RF_OK) st = out_pad(w, err);
    w->data_start = w->pos;
    return st;
}

rf_status rf_gguf_writer_begin(rf_gguf_writer *w, const char *path, rf_error *err) {
    if (w->open) return rf_error_set(err, RF_E_INVAL, "gguf writer: already writing %s", w->path);
    if (!path) return rf_error_set(err, RF_E_INVAL, "gguf writer: no path");
    rf_status st = pick_alignment(w, err);
    if (st != RF_OK) return st;
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        wtensor *t = &w->tensors[i];
        uint64_t end;
        t->offset = off;
        if (!rf_add_u64(off, t->nbytes, &end) || !rf_add_u64(end, w->alignment - 1, &off))
            return rf_error_set(err, RF_E_RANGE, "%s: tensor data exceeds 2^64 bytes", path);
        off &= ~(w->alignment - 1);
    }
    w->path = rf_strndup(path, strlen(path));
    w->buf = rf_malloc(WBUF_SIZE);
    if (!w->path || !w->buf) {
        close_output(w);
        return rf_error_set(err, RF_E_NOMEM, "%s: out of memory", path);
    }
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        st = rf_error_set(err, RF_E_IO, "%s: cannot create: %s", path, strerror(errno));
        close_output(w);
        return st;
    }
    w->open = true;
    w->buf_n = 0;
    w->pos = 0;
    w->next = 0;
    w->streamed = 0;
    return write_header(w, err); /* on failure the output is already closed */
}

/* Writes tensor `next` from its pointer (or nothing, when it is empty) and
 * pads after it. */
static rf_status emit_from_pointer(rf_gguf_writer *w, rf_error *err) {
    const wtensor *t = &w->tensors[w->next];
    RF_ASSERT(w->pos == w->data_start + t->offset);
    rf_status st = t->nbytes ? out_put(w, t->data, (size_t)t->nbytes, err) : RF_OK;
    if (st == RF_OK) st = out_pad(w, err);
    w->next++;
    return st;
}

/* Writes the tensors at the stream position that need no streamed data:
 * those added with a pointer and empty ones. */
static rf_status emit_ready(rf_gguf_writer *w, rf_error *err) {
    while (w->streamed == 0 && w->next < w->n_tensors &&
           (w->tensors[w->next].data || w->tensors[w->next].nbytes == 0)) {
        rf_status st = emit_from_pointer(w, err);
        if (st != RF_OK) return st;
    }
    return RF_OK;
}

rf_status rf_gguf_writer_write_data(rf_gguf_writer *w, const void *data, size_t nbytes,
                                    rf_error *err) {
    if (!w->open) return rf_error_set(err, RF_E_INVAL, "gguf writer: no file open (call begin first)");
    rf_status st = emit_ready(w, err);
    if (st != RF_OK) return st;
    if (w->next >= w->n_tensors) {
        if (nbytes == 0) return RF_OK;
        return rf_error_set(err, RF_E_INVAL, "%s: %zu bytes streamed but no tensor is waiting for data",
                            w->path, nbytes);
    }
    wtensor *t = &w->tensors[w->next];
    if (nbytes > t->nbytes - w->streamed || (nbytes && !data))
        return rf_error_set(err, RF_E_INVAL,
                            "%s: tensor '%s': a chunk of %zu bytes does not fit the %" PRIu64 " of %" PRIu64 " bytes still due",
                            w->path, t->name, nbytes, t->nbytes - w->streamed, t->nbytes);
    RF_ASSERT(w->pos == w->data_start + t->offset + w->streamed);
    if (nbytes && (st = out_put(w, data, nbytes, err)) != RF_OK) return st;
    w->streamed += nbytes;
    if (w->streamed == t->nbytes) {
        w->streamed = 0;
        w->next++;
        if ((st = out_pad(w, err)) != RF_OK) return st;
    }
    return RF_OK;
}

rf_status rf_gguf_writer_finish(rf_gguf_writer *w, rf_error *err) {
    if (!w->open) return rf_error_set(err, RF_E_INVAL, "gguf writer: no file open (call begin first)");
    rf_status st = RF_OK;
    if (w->streamed) {
        const wtensor *t = &w->tensors[w->next];
        st = rf_error_set(err, RF_E_INVAL, "%s: tensor '%s': only %" PRIu64 " of %" PRIu64 " bytes were streamed",
                          w->path, t->name, w->streamed, t->nbytes);
    }
    if (st == RF_OK) st = emit_ready(w, err);
    if (st == RF_OK && w->next < w->n_tensors)
        st = rf_error_set(err, RF_E_INVAL, "%s: tensor '%s' was added without data and never streamed", w->path,
                          w->tensors[w->next].name);
    if (st == RF_OK) st = out_flush(w, err);
    if (st != RF_OK) {
        close_output(w); /* no-op when an I/O failure already closed it */
        return st;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0) return io_fail(w, "close", errno, err);
    close_output(w);
    return RF_OK;
}

rf_status rf_gguf_writer_write_file(rf_gguf_writer *w, const char *path, rf_error *err) {
    rf_status st = rf_gguf_writer_begin(w, path, err);
    return st == RF_OK ? rf_gguf_writer_finish(w, err) : st;
}
