/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader (and, through a round
 * trip, the writer).
 *
 * Each input is parsed with rf_gguf_open_memory. A rejected input must come
 * back as RF_E_FORMAT with a message naming the image. An accepted one is
 * walked completely: every kv through every accessor (typed getters, nested
 * arrays, element accessors) with the getters' answers checked against the
 * stored type, every tensor's first and last data byte, the lookup tables.
 * Then it is written back with rf_gguf_writer (copying every kv with
 * rf_gguf_writer_set_value), read again and compared, and parsed once more
 * with an allocation failure injected (only RF_E_NOMEM may come back, with
 * nothing leaked). Any violated expectation traps.
 *
 * With RF_FUZZ the rfcore library is built with -fsanitize=fuzzer-no-link, so
 * the reader and writer carry coverage instrumentation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf-impl.h"
#include "quant/quant.h"

#define FZ_CHECK(c)                                                                    \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "fuzz_gguf: check failed: %s (line %d)\n", #c, __LINE__); \
            __builtin_trap();                                                          \
        }                                                                              \
    } while (0)

static volatile uint64_t fz_sink;

/* ---- walking ------------------------------------------------------------- */

static uint64_t fz_walk_arr(const rf_gguf_arr *a, int depth) {
    FZ_CHECK(depth <= RF_GGUF_MAX_DEPTH && a->elem_type < RF_GGUF_VTYPE_COUNT);
    uint64_t h = a->n;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->elem_type == RF_GGUF_STRING) {
            rf_str s = rf_gguf_arr_str(a, i);
            if (s.len) h += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
        } else if (a->elem_type == RF_GGUF_ARRAY) {
            const rf_gguf_value *v = &((const rf_gguf_value *)a->data)[i];
            FZ_CHECK(v->type == RF_GGUF_ARRAY);
            h += fz_walk_arr(&v->arr, depth + 1);
        } else if (a->elem_type == RF_GGUF_F32 || a->elem_type == RF_GGUF_F64) {
            h += rf_gguf_arr_f64(a, i) > 0;
        } else {
            int64_t x = rf_gguf_arr_i64(a, i);
            if (a->elem_type == RF_GGUF_BOOL) FZ_CHECK(x == 0 || x == 1);
            h += (uint64_t)x + (rf_gguf_arr_f64(a, i) > 0);
        }
    }
    return h;
}

/* The typed getters must agree with the stored type. */
static void fz_getters(const rf_gguf *g, const char *key, const rf_gguf_value *v) {
    rf_error e;
    uint64_t u;
    int64_t i;
    uint32_t u32;
    float f;
    bool b;
    rf_str s;
    rf_gguf_arr a;
    uint8_t kind = rf_gguf_vtypes[v->type].kind;
    bool is_int = kind == RF_VK_UINT || kind == RF_VK_SINT;
    rf_status st = rf_gguf_get_u64(g, key, &u, &e);
    FZ_CHECK(st == RF_OK || st == RF_E_FORMAT);
    if (st == RF_OK) FZ_CHECK(is_int);
    if (kind == RF_VK_UINT) FZ_CHECK(st == RF_OK && u == v->u64);
    st = rf_gguf_get_i64(g, key, &i, &e);
    FZ_CHECK(st == RF_OK || st == RF_E_FORMAT);
    if (kind == RF_VK_SINT) FZ_CHECK(st == RF_OK && i == v->i64);
    st = rf_gguf_get_u32(g, key, &u32, &e);
    if (st == RF_OK) FZ_CHECK(is_int);
    st = rf_gguf_get_f32(g, key, &f, &e);
    if (v->type == RF_GGUF_F32) FZ_CHECK(st == RF_OK);
    if (kind == RF_VK_STRING || kind == RF_VK_ARRAY || kind == RF_VK_BOOL) FZ_CHECK(st == RF_E_FORMAT);
    st = rf_gguf_get_bool(g, key, &b, &e);
    FZ_CHECK((st == RF_OK) == (v->type == RF_GGUF_BOOL));
    st = rf_gguf_get_str(g, key, &s, &e);
    FZ_CHECK((st == RF_OK) == (v->type == RF_GGUF_STRING));
    if (st != RF_OK) FZ_CHECK(strstr(e.msg, "fuzz") != NULL);
    st = rf_gguf_get_arr(g, key, &a, &e);
    FZ_CHECK((st == RF_OK) == (v->type == RF_GGUF_ARRAY));
}

static void fz_walk(const rf_gguf *g, const uint8_t *data, size_t size) {
    uint64_t h = rf_gguf_version(g) + rf_gguf_alignment(g) + rf_gguf_n_splits(g);
    FZ_CHECK(rf_gguf_file_size(g) == size);
    char *key = NULL;
    for (int64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv *kv = rf_gguf_kv_at(g, i);
        FZ_CHECK(kv && kv->key.len > 0 && kv->val.type < RF_GGUF_VTYPE_COUNT);
        FZ_CHECK((const uint8_t *)kv->key.ptr >= data && (const uint8_t *)kv->key.ptr + kv->key.len <= data + size);
        h += (uint8_t)kv->key.ptr[kv->key.len - 1];
        if (kv->val.type == RF_GGUF_ARRAY) h += fz_walk_arr(&kv->val.arr, 1);
        if (kv->val.type == RF_GGUF_STRING && kv->val.str.len)
            h += (uint8_t)kv->val.str.ptr[kv->val.str.len - 1];
        if (memchr(kv->key.ptr, '\0', kv->key.len)) continue; /* not reachable by a C string */
        key = realloc(key, kv->key.len + 1);
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = '\0';
        FZ_CHECK(rf_gguf_find_key(g, key) == i);
        FZ_CHECK(rf_gguf_get(g, key) == &kv->val);
        fz_getters(g, key, &kv->val);
    }
    FZ_CHECK(rf_gguf_kv_at(g, rf_gguf_n_kv(g)) == NULL);
    char *name = NULL;
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        FZ_CHECK(t && t->n_dims >= 1 && t->n_dims <= RF_GGUF_MAX_DIMS && rf_type_get(t->type));
        FZ_CHECK(t->offset % rf_gguf_alignment(g) == 0);
        int64_t nel = rf_gguf_tensor_nelements(t);
        FZ_CHECK(nel >= 0);
        uint64_t rows = (uint64_t)(t->ne[0] ? nel / t->ne[0] : 0);
        if (t->ne[0]) FZ_CHECK(t->nbytes == rf_row_size(t->type, t->ne[0]) * rows);
        if (t->nbytes) {
            const uint8_t *p = t->data;
            FZ_CHECK(p >= data && t->nbytes <= size && p + t->nbytes <= data + size);
            h += p[0] + p[t->nbytes - 1];
        }
        if (memchr(t->name.ptr, '\0', t->name.len)) continue;
        name = realloc(name, t->name.len + 1);
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = '\0';
        FZ_CHECK(rf_gguf_find_tensor(g, name) == t);
    }
    free(key);
    free(name);
    fz_sink += h;
}

/* ---- round trip through the writer ----------------------------------------- */

static bool fz_arr_eq(const rf_gguf_arr *a, const rf_gguf_arr *b);

static bool fz_value_eq(const rf_gguf_value *a, const rf_gguf_value *b) {
    if (a->type != b->type) return false;
    if (a->type == RF_GGUF_STRING)
        return a->str.len == b->str.len && (!a->str.len || memcmp(a->str.ptr, b->str.ptr, a->str.len) == 0);
    if (a->type == RF_GGUF_ARRAY) return fz_arr_eq(&a->arr, &b->arr);
    return memcmp(&a->u64, &b->u64, 8) == 0; /* every scalar fills all 8 bytes */
}

static bool fz_arr_eq(const rf_gguf_arr *a, const rf_gguf_arr *b) {
    if (a->elem_type != b->elem_type || a->n != b->n) return false;
    size_t es = rf_gguf_vtype_size(a->elem_type);
    if (es) return !a->n || memcmp(a->data, b->data, a->n * es) == 0;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->elem_type == RF_GGUF_STRING) {
            rf_gguf_value x = {.type = RF_GGUF_STRING, .str = rf_gguf_arr_str(a, i)};
            rf_gguf_value y = {.type = RF_GGUF_STRING, .str = rf_gguf_arr_str(b, i)};
            if (!fz_value_eq(&x, &y)) return false;
        } else if (!fz_value_eq(&((const rf_gguf_value *)a->data)[i], &((const rf_gguf_value *)b->data)[i])) {
            return false;
        }
    }
    return true;
}

static char fz_path[64];

static void fz_cleanup(void) { unlink(fz_path); }

static void fz_roundtrip(const rf_gguf *g) {
    /* Huge alignments are legal with no tensors but would write that many
     * padding bytes. */
    if (rf_gguf_alignment(g) > 4096) return;
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        if (memchr(t->name.ptr, '\0', t->name.len)) return; /* add_tensor takes C strings */
    }
    if (!fz_path[0]) {
        snprintf(fz_path, sizeof fz_path, "/tmp/fuzz_gguf.%d.gguf", (int)getpid());
        atexit(fz_cleanup);
    }
    rf_gguf_writer *w = rf_gguf_writer_new();
    rf_error e;
    FZ_CHECK(w != NULL);
    for (int64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv *kv = rf_gguf_kv_at(g, i);
        FZ_CHECK(rf_gguf_writer_set_value(w, kv->key, &kv->val) == RF_OK);
    }
    char *name = NULL;
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        name = realloc(name, t->name.len + 1);
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = '\0';
        FZ_CHECK(rf_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, &e) == RF_OK);
    }
    free(name);
    rf_status st = rf_gguf_writer_write_file(w, fz_path, &e);
    rf_gguf_writer_free(w);
    FZ_CHECK(st == RF_OK);

    FILE *f = fopen(fz_path, "rb");
    FZ_CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    FZ_CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    rf_gguf *g2 = NULL;
    st = rf_gguf_open_memory(buf, (size_t)n, "fuzz-rt", &g2, &e);
    if (st != RF_OK) fprintf(stderr, "fuzz_gguf: re-read failed: %s\n", e.msg);
    FZ_CHECK(st == RF_OK);
    FZ_CHECK(rf_gguf_version(g2) == 3 && rf_gguf_alignment(g2) == rf_gguf_alignment(g));
    FZ_CHECK(rf_gguf_n_kv(g2) == rf_gguf_n_kv(g) && rf_gguf_n_tensors(g2) == rf_gguf_n_tensors(g));
    for (int64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv *a = rf_gguf_kv_at(g, i), *b = rf_gguf_kv_at(g2, i);
        FZ_CHECK(a->key.len == b->key.len && memcmp(a->key.ptr, b->key.ptr, a->key.len) == 0);
        FZ_CHECK(fz_value_eq(&a->val, &b->val));
    }
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *a = rf_gguf_tensor_at(g, i), *b = rf_gguf_tensor_at(g2, i);
        FZ_CHECK(a->name.len == b->name.len && memcmp(a->name.ptr, b->name.ptr, a->name.len) == 0);
        FZ_CHECK(a->type == b->type && a->n_dims == b->n_dims && a->nbytes == b->nbytes);
        FZ_CHECK(memcmp(a->ne, b->ne, sizeof a->ne) == 0);
        FZ_CHECK(!a->nbytes || memcmp(a->data, b->data, a->nbytes) == 0);
    }
    rf_gguf_close(g2);
    free(buf);
}

/* ---- entry point ----------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rf_gguf *g = NULL;
    rf_error e = {0};
    size_t live = rf_alloc_get_stats().live_bytes;
    rf_status st = rf_gguf_open_memory(data, size, "fuzz", &g, &e);
    if (st != RF_OK) {
        FZ_CHECK(st == RF_E_FORMAT && g == NULL);
        FZ_CHECK(strncmp(e.msg, "fuzz: offset ", 13) == 0);
        FZ_CHECK(rf_alloc_get_stats().live_bytes == live);
        return 0;
    }
    fz_walk(g, data, size);
    fz_roundtrip(g);
    rf_gguf_close(g);

    /* The same valid input with an allocation failing. */
    long k = size ? data[size - 1] % 12 : 0;
    rf_alloc_fail_after(k);
    g = NULL;
    st = rf_gguf_open_memory(data, size, "fuzz", &g, &e);
    rf_alloc_fail_after(-1);
    FZ_CHECK(st == RF_OK || (st == RF_E_NOMEM && g == NULL));
    rf_gguf_close(g);
    FZ_CHECK(rf_alloc_get_stats().live_bytes == live);
    return 0;
}
