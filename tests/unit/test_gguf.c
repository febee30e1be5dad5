/*
 * test_gguf.c - the GGUF reader and writer: write -> read round trips of
 * every value type and several tensor types (compared byte for byte), the
 * writer's exact bytes for a tiny file, custom alignment, the streaming
 * path, split sets, one test per kind of corruption (each must be an
 * RF_E_FORMAT whose message names the file and the problem), truncation at
 * every length, byte mutations, and out-of-memory injection at every
 * allocation (no leaks, only RF_OK or RF_E_NOMEM).
 *
 * Hand-made images are built with the small `img` byte builder below, so the
 * corruptions do not depend on the writer under test.
 */
#include "harness.h"

#include "gguf/gguf.h"
#include "quant/quant.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- scratch files ------------------------------------------------------- */

static char g_dir[64];

static const char *tmp_path(const char *name) {
    static char buf[8][256];
    static int k;
    if (!g_dir[0]) {
        strcpy(g_dir, "/tmp/rf_test_gguf_XXXXXX");
        RF_ASSERT(mkdtemp(g_dir) != NULL);
    }
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", g_dir, name);
    return p;
}

static void cleanup_dir(void) {
    if (!g_dir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

/* The file's bytes (malloc'ed, caller frees); a missing file reads as empty
 * so the checks that follow fail instead of crashing. */
static uint8_t *slurp(const char *path, size_t *size) {
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return malloc(1);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (fread(p, 1, (size_t)n, f) != (size_t)n) n = 0;
    fclose(f);
    *size = (size_t)n;
    return p;
}

static void spit(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    RF_ASSERT(f && fwrite(p, 1, n, f) == n);
    fclose(f);
}

static uint64_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static void fill_random(void *p, size_t n) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)rf_test_rand();
}

/* ---- image builder ------------------------------------------------------- */

typedef struct img {
    uint8_t *p;
    size_t n, cap;
} img;

static void im_put(img *m, const void *s, size_t n) {
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2 + 64;
        m->p = realloc(m->p, m->cap);
        RF_ASSERT(m->p);
    }
    if (n) memcpy(m->p + m->n, s, n);
    m->n += n;
}
static void im_u8(img *m, uint8_t v) { im_put(m, &v, 1); }
static void im_u32(img *m, uint32_t v) { im_put(m, &v, 4); }
static void im_u64(img *m, uint64_t v) { im_put(m, &v, 8); }
static void im_str(img *m, const char *s) {
    im_u64(m, strlen(s));
    im_put(m, s, strlen(s));
}
static void im_zeros(img *m, size_t n) {
    for (size_t i = 0; i < n; i++) im_u8(m, 0);
}
static void im_pad(img *m, size_t align) {
    while (m->n % align) im_u8(m, 0);
}
static void im_header(img *m, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    im_put(m, "GGUF", 4);
    im_u32(m, version);
    im_u64(m, n_tensors);
    im_u64(m, n_kv);
}
static void im_kv_u32(img *m, const char *key, uint32_t v) {
    im_str(m, key);
    im_u32(m, RF_GGUF_U32);
    im_u32(m, v);
}
static void im_tinfo(img *m, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                     uint64_t offset) {
    im_str(m, name);
    im_u32(m, n_dims);
    for (uint32_t i = 0; i < n_dims; i++) im_u64(m, ne[i]);
    im_u32(m, type);
    im_u64(m, offset);
}

/* Opens a copy of the image in a buffer of exactly its size (so ASan sees
 * any read past the end). Returns the status; *msg gets the message. */
static rf_status open_image(const uint8_t *p, size_t n, const char *name, rf_error *e) {
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, p, n);
    rf_gguf *g = NULL;
    memset(e, 0, sizeof *e);
    rf_status st = rf_gguf_open_memory(copy, n, name, &g, e);
    if (st == RF_OK) CHECK(g != NULL);
    else CHECK(g == NULL);
    rf_gguf_close(g);
    free(copy);
    return st;
}

/* The image must be rejected as malformed with a message naming the image
 * and containing `want`. Frees the image. */
#define EXPECT_BAD(m, want) expect_bad(m, want, __LINE__)
static void expect_bad(img *m, const char *want, int line) {
    rf_error e;
    size_t live = rf_alloc_get_stats().live_bytes;
    rf_status st = open_image(m->p, m->n, "bad.gguf", &e);
    CHECK_MSG(st == RF_E_FORMAT, "line %d: status %d (%s)", line, st, e.msg);
    CHECK_MSG(strstr(e.msg, "bad.gguf") && strstr(e.msg, want), "line %d: message '%s' lacks '%s'", line,
              e.msg, want);
    CHECK_MSG(rf_alloc_get_stats().live_bytes == live, "line %d: leak", line);
    free(m->p);
    *m = (img){0};
}

#define EXPECT_OK(m) expect_ok(m, __LINE__)
static void expect_ok(img *m, int line) {
    rf_error e;
    rf_status st = open_image(m->p, m->n, "good.gguf", &e);
    CHECK_MSG(st == RF_OK, "line %d: status %d (%s)", line, st, e.msg);
    free(m->p);
    *m = (img){0};
}

/* One kv (general.architecture) and one tensor info, padded to 32, then
 * `data_bytes` zero bytes of data. */
static img one_tensor(uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset,
                      size_t data_bytes) {
    img m = {0};
    im_header(&m, 3, 1, 1);
    im_str(&m, "general.architecture");
    im_u32(&m, RF_GGUF_STRING);
    im_str(&m, "test");
    im_tinfo(&m, "t", n_dims, ne, type, offset);
    im_pad(&m, 32);
    im_zeros(&m, data_bytes);
    return m;
}

/* ---- walking a file (as the fuzzer does) -------------------------------- */

static uint64_t walk_arr(const rf_gguf_arr *a) {
    uint64_t h = a->n;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->elem_type == RF_GGUF_STRING) {
            rf_str s = rf_gguf_arr_str(a, i);
            h += s.len ? (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1] : 0;
        } else if (a->elem_type == RF_GGUF_ARRAY) {
            h += walk_arr(&((const rf_gguf_value *)a->data)[i].arr);
        } else if (a->elem_type == RF_GGUF_F32 || a->elem_type == RF_GGUF_F64) {
            h += rf_gguf_arr_f64(a, i) > 0;
        } else {
            h += (uint64_t)rf_gguf_arr_i64(a, i) + (rf_gguf_arr_f64(a, i) > 0);
        }
    }
    return h;
}

static uint64_t walk(const rf_gguf *g) {
    uint64_t h = 0;
    for (int64_t i = 0; i < rf_gguf_n_kv(g); i++) {
        const rf_gguf_kv *kv = rf_gguf_kv_at(g, i);
        if (kv->val.type == RF_GGUF_ARRAY) h += walk_arr(&kv->val.arr);
        else if (kv->val.type == RF_GGUF_STRING && kv->val.str.len) h += (uint8_t)kv->val.str.ptr[0];
    }
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        if (t->nbytes) h += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->nbytes - 1];
        h += (uint64_t)rf_gguf_tensor_nelements(t);
    }
    return h;
}

/* ---- value comparison --------------------------------------------------- */

static bool arr_eq(const rf_gguf_arr *a, const rf_gguf_arr *b);

static bool value_eq(const rf_gguf_value *a, const rf_gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) { /* test code: a switch reads clearest here */
    case RF_GGUF_U8: case RF_GGUF_U16: case RF_GGUF_U32: case RF_GGUF_U64: case RF_GGUF_BOOL:
        return a->u64 == b->u64;
    case RF_GGUF_I8: case RF_GGUF_I16: case RF_GGUF_I32: case RF_GGUF_I64:
        return a->i64 == b->i64;
    case RF_GGUF_F32: case RF_GGUF_F64:
        return memcmp(&a->f64, &b->f64, 8) == 0;
    case RF_GGUF_STRING:
        return a->str.len == b->str.len && (a->str.len == 0 || memcmp(a->str.ptr, b->str.ptr, a->str.len) == 0);
    case RF_GGUF_ARRAY:
        return arr_eq(&a->arr, &b->arr);
    }
    return false;
}

static bool arr_eq(const rf_gguf_arr *a, const rf_gguf_arr *b) {
    if (a->elem_type != b->elem_type || a->n != b->n) return false;
    size_t es = rf_gguf_vtype_size(a->elem_type);
    if (es) return a->n == 0 || memcmp(a->data, b->data, a->n * es) == 0;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->elem_type == RF_GGUF_STRING) {
            rf_gguf_value x = {.type = RF_GGUF_STRING, .str = rf_gguf_arr_str(a, i)};
            rf_gguf_value y = {.type = RF_GGUF_STRING, .str = rf_gguf_arr_str(b, i)};
            if (!value_eq(&x, &y)) return false;
        } else if (!value_eq(&((const rf_gguf_value *)a->data)[i], &((const rf_gguf_value *)b->data)[i])) {
            return false;
        }
    }
    return true;
}

/* ---- the reference content ---------------------------------------------- */

#define STR(s) ((rf_str){s, sizeof(s) - 1})

static const uint8_t a_u8[] = {0, 1, 255};
static const int8_t a_i8[] = {-128, -1, 0, 127};
static const uint16_t a_u16[] = {0, 65535};
static const int16_t a_i16[] = {-32768, 32767, 5};
static const uint32_t a_u32[] = {0, 4000000000u};
static const int32_t a_i32[] = {INT32_MIN, -7, INT32_MAX};
static const float a_f32[] = {1.5f, -0.0f, 1e-30f, 3.4e38f};
static const uint8_t a_bool[] = {1, 0, 1};
static const uint64_t a_u64[] = {0, UINT64_MAX, 1ull << 63};
static const int64_t a_i64[] = {INT64_MIN, -1, INT64_MAX};
static const double a_f64[] = {-1e300, 0.1, 2.5};
static const rf_str a_str[] = {{"", 0}, {"hello", 5}, STR("ünïcødé ✓ 名前"), STR("tab\tnl\nnul\0end")};
static const int32_t n_1[] = {1, 2, 3};
static const rf_str n_s[] = {{"x", 1}, {"", 0}};
static const uint8_t n_b[] = {1};
static const rf_gguf_value n_inner[] = {
    {.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_BOOL, 1, n_b}},
    {.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_U8, 0, NULL}},
};
static const rf_gguf_value n_outer[] = {
    {.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_I32, 3, n_1}},
    {.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_U8, 0, NULL}},
    {.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_STRING, 2, n_s}},
    {.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_ARRAY, 2, n_inner}},
};

typedef struct ref_kv {
    rf_str key;
    rf_gguf_value val;
} ref_kv;

#define ARR(t, a) {.type = RF_GGUF_ARRAY, .arr = {t, RF_ARRAY_LEN(a), a}}

static const ref_kv g_ref[] = {
    {STR("general.architecture"), {.type = RF_GGUF_STRING, .str = STR("llama")}},
    {STR("s.u8"), {.type = RF_GGUF_U8, .u64 = 200}},
    {STR("s.i8"), {.type = RF_GGUF_I8, .i64 = -100}},
    {STR("s.u16"), {.type = RF_GGUF_U16, .u64 = 65535}},
    {STR("s.i16"), {.type = RF_GGUF_I16, .i64 = -32768}},
    {STR("s.u32"), {.type = RF_GGUF_U32, .u64 = 4000000000u}},
    {STR("s.i32"), {.type = RF_GGUF_I32, .i64 = INT32_MIN}},
    {STR("s.f32"), {.type = RF_GGUF_F32, .f64 = 3.25}},
    {STR("s.bool.t"), {.type = RF_GGUF_BOOL, .u64 = 1}},
    {STR("s.bool.f"), {.type = RF_GGUF_BOOL, .u64 = 0}},
    {STR("s.str.empty"), {.type = RF_GGUF_STRING, .str = {"", 0}}},
    {STR("s.str.nul"), {.type = RF_GGUF_STRING, .str = STR("a\0b")}},
    {STR("s.u64"), {.type = RF_GGUF_U64, .u64 = UINT64_MAX}},
    {STR("s.i64"), {.type = RF_GGUF_I64, .i64 = INT64_MIN}},
    {STR("s.f64"), {.type = RF_GGUF_F64, .f64 = -1e300}},
    {STR("s.f64.half"), {.type = RF_GGUF_F64, .f64 = 0.5}},
    {STR("ключ.名前.κλειδί"), {.type = RF_GGUF_STRING, .str = STR("значение")}},
    {STR("a.u8"), ARR(RF_GGUF_U8, a_u8)},
    {STR("a.i8"), ARR(RF_GGUF_I8, a_i8)},
    {STR("a.u16"), ARR(RF_GGUF_U16, a_u16)},
    {STR("a.i16"), ARR(RF_GGUF_I16, a_i16)},
    {STR("a.u32"), ARR(RF_GGUF_U32, a_u32)},
    {STR("a.i32"), ARR(RF_GGUF_I32, a_i32)},
    {STR("a.f32"), ARR(RF_GGUF_F32, a_f32)},
    {STR("a.bool"), ARR(RF_GGUF_BOOL, a_bool)},
    {STR("a.u64"), ARR(RF_GGUF_U64, a_u64)},
    {STR("a.i64"), ARR(RF_GGUF_I64, a_i64)},
    {STR("a.f64"), ARR(RF_GGUF_F64, a_f64)},
    {STR("a.str"), ARR(RF_GGUF_STRING, a_str)},
    {STR("a.nested"), ARR(RF_GGUF_ARRAY, n_outer)},
    {STR("a.empty.u32"), {.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_U32, 0, NULL}}},
    {STR("a.empty.str"), {.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_STRING, 0, NULL}}},
    {STR("a.empty.arr"), {.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_ARRAY, 0, NULL}}},
};

typedef struct ref_tensor {
    const char *name;
    uint32_t type, n_dims;
    int64_t ne[4];
} ref_tensor;

static const ref_tensor g_tensors[] = {
    {"tok_embd.weight", RF_TYPE_F32, 2, {8, 3}},
    {"blk.0.attn_norm.weight", RF_TYPE_F16, 3, {16, 2, 2}},
    {"blk.0.attn_q.weight", RF_TYPE_Q4_0, 2, {64, 3}},
    {"blk.0.ffn_down.weight", RF_TYPE_Q4_K, 2, {256, 2}},
    {"four.d", RF_TYPE_F32, 4, {2, 2, 2, 3}},
    {"empty", RF_TYPE_F32, 2, {0, 4}},
    {"blk.0.ffn_up.weight", RF_TYPE_Q8_0, 1, {96}},
};

static uint64_t ref_nbytes(const ref_tensor *r) {
    uint64_t rows = 1;
    for (uint32_t d = 1; d < r->n_dims; d++) rows *= (uint64_t)r->ne[d];
    return rf_row_size(r->type, r->ne[0]) * rows;
}

/* Adds every reference kv (some through the typed setters) and tensor. */
static rf_status fill_writer(rf_gguf_writer *w, uint8_t **data, rf_error *e) {
    rf_status st = RF_OK;
    for (size_t i = 0; i < RF_ARRAY_LEN(g_ref) && st == RF_OK; i++) {
        const ref_kv *r = &g_ref[i];
        char key[128];
        memcpy(key, r->key.ptr, r->key.len);
        key[r->key.len] = '\0';
        const rf_gguf_value *v = &r->val;
        bool plain_key = strlen(key) == r->key.len;
        if (plain_key && v->type == RF_GGUF_U8) st = rf_gguf_writer_set_u8(w, key, (uint8_t)v->u64);
        else if (plain_key && v->type == RF_GGUF_I32) st = rf_gguf_writer_set_i32(w, key, (int32_t)v->i64);
        else if (plain_key && v->type == RF_GGUF_U32) st = rf_gguf_writer_set_u32(w, key, (uint32_t)v->u64);
        else if (plain_key && v->type == RF_GGUF_U64) st = rf_gguf_writer_set_u64(w, key, v->u64);
        else if (plain_key && v->type == RF_GGUF_F32) st = rf_gguf_writer_set_f32(w, key, (float)v->f64);
        else if (plain_key && v->type == RF_GGUF_BOOL) st = rf_gguf_writer_set_bool(w, key, v->u64 != 0);
        else if (plain_key && v->type == RF_GGUF_STRING && strlen(v->str.ptr) == v->str.len)
            st = rf_gguf_writer_set_str(w, key, v->str.ptr);
        else if (plain_key && v->type == RF_GGUF_ARRAY && rf_gguf_vtype_size(v->arr.elem_type) && v->arr.n)
            st = rf_gguf_writer_set_arr(w, key, v->arr.elem_type, v->arr.data, v->arr.n);
        else st = rf_gguf_writer_set_value(w, r->key, v);
    }
    for (size_t i = 0; i < RF_ARRAY_LEN(g_tensors) && st == RF_OK; i++) {
        const ref_tensor *r = &g_tensors[i];
        st = rf_gguf_writer_add_tensor(w, r->name, r->type, r->n_dims, r->ne, data[i], e);
    }
    return st;
}

static uint8_t **make_tensor_data(void) {
    uint8_t **data = calloc(RF_ARRAY_LEN(g_tensors), sizeof *data);
    for (size_t i = 0; i < RF_ARRAY_LEN(g_tensors); i++) {
        size_t n = (size_t)ref_nbytes(&g_tensors[i]);
        data[i] = malloc(n ? n : 1);
        fill_random(data[i], n);
    }
    return data;
}

static void free_tensor_data(uint8_t **data) {
    for (size_t i = 0; i < RF_ARRAY_LEN(g_tensors); i++) free(data[i]);
    free(data);
}

/* Checks g against the reference content and the tensor bytes. */
static void check_ref(const rf_gguf *g, uint8_t **data, uint64_t alignment) {
    CHECK(rf_gguf_version(g) == 3);
    CHECK(rf_gguf_alignment(g) == alignment);
    CHECK(rf_gguf_n_splits(g) == 1);
    CHECK(rf_gguf_n_kv(g) >= (int64_t)RF_ARRAY_LEN(g_ref));
    for (size_t i = 0; i < RF_ARRAY_LEN(g_ref); i++) {
        const rf_gguf_kv *kv = rf_gguf_kv_at(g, (int64_t)i);
        CHECK_MSG(kv && kv->key.len == g_ref[i].key.len && memcmp(kv->key.ptr, g_ref[i].key.ptr, kv->key.len) == 0,
                  "kv %zu out of order", i);
        CHECK_MSG(kv && value_eq(&kv->val, &g_ref[i].val), "kv '%s' differs", g_ref[i].key.ptr);
        char key[128];
        memcpy(key, g_ref[i].key.ptr, g_ref[i].key.len);
        key[g_ref[i].key.len] = '\0';
        if (strlen(key) == g_ref[i].key.len) {
            CHECK(rf_gguf_find_key(g, key) == (int64_t)i);
            CHECK(rf_gguf_get(g, key) == &kv->val);
        }
    }
    CHECK(rf_gguf_find_key(g, "no.such.key") == -1);
    CHECK(rf_gguf_get(g, "no.such.key") == NULL);
    CHECK(rf_gguf_kv_at(g, -1) == NULL && rf_gguf_kv_at(g, rf_gguf_n_kv(g)) == NULL);
    CHECK(rf_gguf_n_tensors(g) == (int64_t)RF_ARRAY_LEN(g_tensors));
    for (size_t i = 0; i < RF_ARRAY_LEN(g_tensors); i++) {
        const ref_tensor *r = &g_tensors[i];
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, (int64_t)i);
        if (!t) {
            CHECK(t != NULL);
            continue;
        }
        CHECK(rf_str_eq(t->name, r->name));
        CHECK(t->type == r->type && t->n_dims == r->n_dims && t->split == 0);
        int64_t nel = 1;
        for (uint32_t d = 0; d < 4; d++) {
            CHECK(t->ne[d] == (d < r->n_dims ? r->ne[d] : 1));
            nel *= t->ne[d];
        }
        CHECK(rf_gguf_tensor_nelements(t) == nel);
        CHECK(t->nbytes == ref_nbytes(r));
        CHECK(t->offset % alignment == 0);
        CHECK_MSG(t->nbytes == 0 || memcmp(t->data, data[i], t->nbytes) == 0, "tensor %s bytes differ", r->name);
        CHECK(rf_gguf_find_tensor(g, r->name) == t);
    }
    CHECK(rf_gguf_find_tensor(g, "nope") == NULL);
    CHECK(rf_gguf_tensor_at(g, -1) == NULL && rf_gguf_tensor_at(g, rf_gguf_n_tensors(g)) == NULL);
}

/* Writes the reference file to `path` with general.alignment = `align`
 * (0: not set). */
static void write_ref(const char *path, uint8_t **data, uint32_t align) {
    rf_gguf_writer *w = rf_gguf_writer_new();
    rf_error e = {0};
    CHECK(fill_writer(w, data, &e) == RF_OK);
    if (align) CHECK(rf_gguf_writer_set_u32(w, "general.alignment", align) == RF_OK);
    rf_status st = rf_gguf_writer_write_file(w, path, &e);
    CHECK_MSG(st == RF_OK, "%s", e.msg);
    rf_gguf_writer_free(w);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_vtype_table(void) {
    for (uint32_t t = 0; t < RF_GGUF_VTYPE_COUNT; t++) CHECK(strcmp(rf_gguf_vtype_name(t), "?") != 0);
    CHECK(rf_gguf_vtype_size(RF_GGUF_U8) == 1 && rf_gguf_vtype_size(RF_GGUF_I16) == 2);
    CHECK(rf_gguf_vtype_size(RF_GGUF_F32) == 4 && rf_gguf_vtype_size(RF_GGUF_F64) == 8);
    CHECK(rf_gguf_vtype_size(RF_GGUF_BOOL) == 1 && rf_gguf_vtype_size(RF_GGUF_STRING) == 0);
    CHECK(rf_gguf_vtype_size(RF_GGUF_ARRAY) == 0 && rf_gguf_vtype_size(RF_GGUF_VTYPE_COUNT) == 0);
    CHECK(strcmp(rf_gguf_vtype_name(99), "?") == 0);
    CHECK(rf_str_eq((rf_str){"abc", 3}, "abc") && !rf_str_eq((rf_str){"abc", 2}, "abc"));
    CHECK(rf_str_eq((rf_str){"", 0}, ""));
}

static void test_roundtrip(void) {
    size_t live = rf_alloc_get_stats().live_bytes;
    uint8_t **data = make_tensor_data();
    const char *path = tmp_path("ref.gguf");
    write_ref(path, data, 0);

    rf_gguf *g = NULL;
    rf_error e = {0};
    rf_status st = rf_gguf_open(path, &g, &e);
    CHECK_MSG(st == RF_OK, "%s", e.msg);
    if (g) {
        check_ref(g, data, 32);
        CHECK(rf_gguf_file_size(g) == file_size(path));
        CHECK(rf_gguf_n_kv(g) == (int64_t)RF_ARRAY_LEN(g_ref));
    }
    rf_gguf_close(g);

    /* The same bytes through the in-memory path; data must sit at multiples
     * of the alignment from the start of the image. */
    size_t n;
    uint8_t *buf = slurp(path, &n);
    g = NULL;
    st = rf_gguf_open_memory(buf, n, "ref-mem", &g, &e);
    CHECK_MSG(st == RF_OK, "%s", e.msg);
    if (g) {
        check_ref(g, data, 32);
        for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++)
            CHECK(((const uint8_t *)rf_gguf_tensor_at(g, i)->data - buf) % 32 == 0);
        /* The writer pads after the last tensor too. */
        CHECK(n % 32 == 0);
    }
    rf_gguf_close(g);
    free(buf);
    free_tensor_data(data);
    CHECK(rf_alloc_get_stats().live_bytes == live);
}

/* The writer's exact bytes for a tiny file, built independently. */
static void test_writer_bytes(void) {
    rf_gguf_writer *w = rf_gguf_writer_new();
    const float d[2] = {1.0f, 2.0f};
    const int64_t ne[1] = {2};
    rf_error e;
    CHECK(rf_gguf_writer_set_u32(w, "a", 9) == RF_OK);
    CHECK(rf_gguf_writer_set_str(w, "b", "gone") == RF_OK);
    CHECK(rf_gguf_writer_set_u32(w, "a", 7) == RF_OK); /* replaces, keeps position */
    CHECK(rf_gguf_writer_remove(w, "b") == RF_OK);
    CHECK(rf_gguf_writer_remove(w, "never") == RF_OK);
    CHECK(rf_gguf_writer_add_tensor(w, "t", RF_TYPE_F32, 1, ne, d, &e) == RF_OK);
    const char *path = tmp_path("tiny.gguf");
    CHECK(rf_gguf_writer_write_file(w, path, &e) == RF_OK);
    const char *again = tmp_path("tiny-again.gguf"); /* a finished writer can write another copy */
    CHECK(rf_gguf_writer_write_file(w, again, &e) == RF_OK);
    rf_gguf_writer_free(w);

    img m = {0};
    im_header(&m, 3, 1, 1);
    im_kv_u32(&m, "a", 7);
    uint64_t ne64 = 2;
    im_tinfo(&m, "t", 1, &ne64, RF_TYPE_F32, 0);
    im_pad(&m, 32);
    im_put(&m, d, sizeof d);
    im_pad(&m, 32);
    size_t n;
    uint8_t *got = slurp(path, &n);
    CHECK(n == m.n && n == 128 && memcmp(got, m.p, n) == 0);
    free(got);
    got = slurp(again, &n);
    CHECK(n == m.n && memcmp(got, m.p, n) == 0);
    free(got);
    free(m.p);
}

static void test_getters(void) {
    uint8_t **data = make_tensor_data();
    const char *path = tmp_path("get.gguf");
    write_ref(path, data, 0);
    rf_gguf *g = NULL;
    rf_error e = {0};
    CHECK(rf_gguf_open(path, &g, &e) == RF_OK);
    if (!g) {
        free_tensor_data(data);
        return;
    }
    uint64_t u;
    int64_t i;
    uint32_t u32;
    float f;
    bool b;
    rf_str s;
    rf_gguf_arr a;
    CHECK(rf_gguf_get_u64(g, "s.u8", &u, &e) == RF_OK && u == 200);
    CHECK(rf_gguf_get_u64(g, "s.u64", &u, &e) == RF_OK && u == UINT64_MAX);
    CHECK(rf_gguf_get_u64(g, "s.i8", &u, &e) == RF_E_FORMAT);
    CHECK(strstr(e.msg, "get.gguf") && strstr(e.msg, "s.i8") && strstr(e.msg, "I8 -100"));
    CHECK(rf_gguf_get_i64(g, "s.i8", &i, &e) == RF_OK && i == -100);
    CHECK(rf_gguf_get_i64(g, "s.u32", &i, &e) == RF_OK && i == 4000000000);
    CHECK(rf_gguf_get_i64(g, "s.u64", &i, &e) == RF_E_FORMAT);
    CHECK(rf_gguf_get_i64(g, "s.i64", &i, &e) == RF_OK && i == INT64_MIN);
    CHECK(rf_gguf_get_u32(g, "s.u16", &u32, &e) == RF_OK && u32 == 65535);
    CHECK(rf_gguf_get_u32(g, "s.u64", &u32, &e) == RF_E_FORMAT);
    CHECK(rf_gguf_get_u32(g, "s.i32", &u32, &e) == RF_E_FORMAT);
    CHECK(rf_gguf_get_f32(g, "s.f32", &f, &e) == RF_OK && f == 3.25f);
    CHECK(rf_gguf_get_f32(g, "s.f64.half", &f, &e) == RF_OK && f == 0.5f);
    CHECK(rf_gguf_get_f32(g, "s.f64", &f, &e) == RF_E_FORMAT); /* -1e300 does not fit */
    CHECK(rf_gguf_get_f32(g, "s.i32", &f, &e) == RF_OK && f == -2147483648.0f);
    CHECK(rf_gguf_get_f32(g, "s.u64", &f, &e) == RF_E_FORMAT);
    CHECK(rf_gguf_get_f32(g, "s.u32", &f, &e) == RF_OK && f == 4e9f); /* 15625000 * 2^8: exact */
    CHECK(rf_gguf_get_f32(g, "s.i64", &f, &e) == RF_OK && f == -0x1p63f);
    CHECK(rf_gguf_get_f32(g, "general.architecture", &f, &e) == RF_E_FORMAT);
    CHECK(strstr(e.msg, "a string") != NULL);
    CHECK(rf_gguf_get_bool(g, "s.bool.t", &b, &e) == RF_OK && b);
    CHECK(rf_gguf_get_bool(g, "s.bool.f", &b, &e) == RF_OK && !b);
    CHECK(rf_gguf_get_bool(g, "s.u8", &b, &e) == RF_E_FORMAT);
    CHECK(rf_gguf_get_str(g, "general.architecture", &s, &e) == RF_OK && rf_str_eq(s, "llama"));
    CHECK(rf_gguf_get_str(g, "s.str.empty", &s, &e) == RF_OK && s.len == 0);
    CHECK(rf_gguf_get_str(g, "a.u8", &s, &e) == RF_E_FORMAT && strstr(e.msg, "array of 3 U8"));
    CHECK(rf_gguf_get_arr(g, "s.u8", &a, &e) == RF_E_FORMAT);
    CHECK(rf_gguf_get_u64(g, "missing.key", &u, &e) == RF_E_NOTFOUND && strstr(e.msg, "missing.key"));
    CHECK(rf_gguf_get_str(g, "missing.key", &s, NULL) == RF_E_NOTFOUND);

    CHECK(rf_gguf_get_arr(g, "a.i8", &a, &e) == RF_OK && a.n == 4);
    CHECK(rf_gguf_arr_i64(&a, 0) == -128 && rf_gguf_arr_i64(&a, 3) == 127);
    CHECK(rf_gguf_arr_f64(&a, 1) == -1.0);
    CHECK(rf_gguf_get_arr(g, "a.u64", &a, &e) == RF_OK);
    CHECK((uint64_t)rf_gguf_arr_i64(&a, 1) == UINT64_MAX && rf_gguf_arr_f64(&a, 2) == 9223372036854775808.0);
    CHECK(rf_gguf_get_arr(g, "a.f32", &a, &e) == RF_OK);
    CHECK(rf_gguf_arr_f64(&a, 0) == 1.5 && signbit(rf_gguf_arr_f64(&a, 1)));
    CHECK(rf_gguf_get_arr(g, "a.bool", &a, &e) == RF_OK);
    CHECK(rf_gguf_arr_i64(&a, 0) == 1 && rf_gguf_arr_i64(&a, 1) == 0);
    CHECK(rf_gguf_get_arr(g, "a.i16", &a, &e) == RF_OK && rf_gguf_arr_i64(&a, 0) == -32768);
    CHECK(rf_gguf_get_arr(g, "a.str", &a, &e) == RF_OK && a.elem_type == RF_GGUF_STRING);
    CHECK(rf_gguf_arr_str(&a, 0).len == 0 && rf_str_eq(rf_gguf_arr_str(&a, 1), "hello"));
    CHECK(rf_gguf_arr_str(&a, 3).len == sizeof("tab\tnl\nnul\0end") - 1);
    CHECK(rf_gguf_get_arr(g, "a.nested", &a, &e) == RF_OK && a.elem_type == RF_GGUF_ARRAY && a.n == 4);
    const rf_gguf_value *inner = a.data;
    CHECK(inner[0].type == RF_GGUF_ARRAY && inner[0].arr.elem_type == RF_GGUF_I32);
    CHECK(rf_gguf_arr_i64(&inner[0].arr, 2) == 3);
    CHECK(inner[3].arr.elem_type == RF_GGUF_ARRAY && inner[3].arr.n == 2);
    const rf_gguf_value *deep = inner[3].arr.data;
    CHECK(deep[0].arr.elem_type == RF_GGUF_BOOL && rf_gguf_arr_i64(&deep[0].arr, 0) == 1);
    rf_gguf_close(g);
    free_tensor_data(data);
}

static void test_alignment(void) {
    uint8_t **data = make_tensor_data();
    const uint32_t aligns[] = {64, 1, 256};
    for (size_t k = 0; k < RF_ARRAY_LEN(aligns); k++) {
        const char *path = tmp_path("align.gguf");
        write_ref(path, data, aligns[k]);
        size_t n;
        uint8_t *buf = slurp(path, &n);
        rf_gguf *g = NULL;
        rf_error e;
        CHECK_MSG(rf_gguf_open_memory(buf, n, "align", &g, &e) == RF_OK, "%s", e.msg);
        if (g) {
            check_ref(g, data, aligns[k]);
            for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++)
                CHECK(((const uint8_t *)rf_gguf_tensor_at(g, i)->data - buf) % aligns[k] == 0);
        }
        CHECK(n % aligns[k] == 0);
        rf_gguf_close(g);
        free(buf);
    }
    /* general.alignment as U8 and U64 is accepted by both sides. */
    const uint32_t types[] = {RF_GGUF_U8, RF_GGUF_U64, RF_GGUF_U16};
    for (size_t k = 0; k < RF_ARRAY_LEN(types); k++) {
        rf_gguf_writer *w = rf_gguf_writer_new();
        rf_error e;
        rf_gguf_value v = {.type = types[k], .u64 = 128};
        CHECK(fill_writer(w, data, &e) == RF_OK);
        CHECK(rf_gguf_writer_set_value(w, STR("general.alignment"), &v) == RF_OK);
        const char *path = tmp_path("align2.gguf");
        CHECK(rf_gguf_writer_write_file(w, path, &e) == RF_OK);
        rf_gguf_writer_free(w);
        rf_gguf *g = NULL;
        CHECK_MSG(rf_gguf_open(path, &g, &e) == RF_OK, "%s", e.msg);
        if (g) check_ref(g, data, 128);
        rf_gguf_close(g);
    }
    /* The writer refuses alignments the reader would refuse. */
    const rf_gguf_value bad[] = {
        {.type = RF_GGUF_U32, .u64 = 0}, {.type = RF_GGUF_U32, .u64 = 3},
        {.type = RF_GGUF_I32, .i64 = 32}, {.type = RF_GGUF_STRING, .str = {"32", 2}},
    };
    for (size_t k = 0; k < RF_ARRAY_LEN(bad); k++) {
        rf_gguf_writer *w = rf_gguf_writer_new();
        rf_error e = {0};
        CHECK(rf_gguf_writer_set_value(w, STR("general.alignment"), &bad[k]) == RF_OK);
        CHECK(rf_gguf_writer_write_file(w, tmp_path("never.gguf"), &e) == RF_E_INVAL);
        CHECK(strstr(e.msg, "general.alignment") != NULL);
        rf_gguf_writer_free(w);
    }
    free_tensor_data(data);
}

static void test_streaming(void) {
    size_t live = rf_alloc_get_stats().live_bytes;
    uint8_t **data = make_tensor_data();
    rf_gguf_writer *w = rf_gguf_writer_new();
    rf_error e = {0};
    /* Tensors 2 and 4 come by pointer; the others are streamed, in chunks. */
    uint8_t *saved[RF_ARRAY_LEN(g_tensors)];
    memcpy(saved, data, sizeof saved);
    for (size_t i = 0; i < RF_ARRAY_LEN(g_tensors); i++)
        if (i != 2 && i != 4) data[i] = NULL;
    CHECK(fill_writer(w, data, &e) == RF_OK);
    memcpy(data, saved, sizeof saved);
    CHECK(rf_gguf_writer_write_data(w, data[0], 4, &e) == RF_E_INVAL); /* not begun */
    const int64_t ne[1] = {4};
    const char *path = tmp_path("stream.gguf");
    CHECK_MSG(rf_gguf_writer_begin(w, path, &e) == RF_OK, "%s", e.msg);
    CHECK(rf_gguf_writer_begin(w, path, &e) == RF_E_INVAL);
    CHECK(rf_gguf_writer_add_tensor(w, "late", RF_TYPE_F32, 1, ne, NULL, &e) == RF_E_INVAL);
    CHECK(rf_gguf_writer_set_u32(w, "late", 1) == RF_E_INVAL);
    for (size_t i = 0; i < RF_ARRAY_LEN(g_tensors); i++) {
        if (i == 2 || i == 4) continue;
        size_t n = (size_t)ref_nbytes(&g_tensors[i]);
        if (n == 0) continue; /* empty tensors take no data */
        /* A chunk running past the tensor's end is refused and changes nothing. */
        CHECK(rf_gguf_writer_write_data(w, data[i], n + 1, &e) == RF_E_INVAL);
        size_t first = n / 3;
        CHECK(rf_gguf_writer_write_data(w, data[i], first, &e) == RF_OK);
        CHECK(rf_gguf_writer_write_data(w, data[i] + first, 1 <= n - first ? 1 : 0, &e) == RF_OK);
        if (n > first + 1) CHECK(rf_gguf_writer_write_data(w, data[i] + first + 1, n - first - 1, &e) == RF_OK);
    }
    CHECK(rf_gguf_writer_write_data(w, data[0], 1, &e) == RF_E_INVAL); /* nothing left */
    CHECK_MSG(rf_gguf_writer_finish(w, &e) == RF_OK, "%s", e.msg);
    CHECK(rf_gguf_writer_finish(w, &e) == RF_E_INVAL);
    rf_gguf_writer_free(w);
    rf_gguf *g = NULL;
    CHECK_MSG(rf_gguf_open(path, &g, &e) == RF_OK, "%s", e.msg);
    if (g) check_ref(g, data, 32);
    rf_gguf_close(g);

    /* The streamed file equals the one written from pointers. */
    const char *path2 = tmp_path("stream-ref.gguf");
    write_ref(path2, data, 0);
    size_t n1, n2;
    uint8_t *b1 = slurp(path, &n1), *b2 = slurp(path2, &n2);
    CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);

    /* finish with a tensor never streamed, or only half streamed. */
    for (int half = 0; half < 2; half++) {
        w = rf_gguf_writer_new();
        CHECK(rf_gguf_writer_add_tensor(w, "x", RF_TYPE_F32, 1, ne, NULL, &e) == RF_OK);
        CHECK(rf_gguf_writer_begin(w, tmp_path("unfinished.gguf"), &e) == RF_OK);
        if (half) CHECK(rf_gguf_writer_write_data(w, data[0], 8, &e) == RF_OK);
        CHECK(rf_gguf_writer_finish(w, &e) == RF_E_INVAL);
        CHECK(strstr(e.msg, half ? "only 8 of 16" : "never streamed") != NULL);
        rf_gguf_writer_free(w);
    }
    /* Freeing a writer in the middle of a file is fine. */
    w = rf_gguf_writer_new();
    CHECK(rf_gguf_writer_add_tensor(w, "x", RF_TYPE_F32, 1, ne, NULL, &e) == RF_OK);
    CHECK(rf_gguf_writer_begin(w, tmp_path("abandoned.gguf"), &e) == RF_OK);
    rf_gguf_writer_free(w);
    free_tensor_data(data);
    CHECK(rf_alloc_get_stats().live_bytes == live);
}

static void test_writer_errors(void) {
    rf_gguf_writer *w = rf_gguf_writer_new();
    rf_error e = {0};
    const int64_t ne2[2] = {32, 2}, bad_q[1] = {16}, neg[2] = {4, -1};
    float d[64] = {0};
    CHECK(rf_gguf_writer_add_tensor(w, "a", RF_TYPE_F32, 0, ne2, d, &e) == RF_E_INVAL);
    CHECK(rf_gguf_writer_add_tensor(w, "a", RF_TYPE_F32, 5, ne2, d, &e) == RF_E_INVAL);
    CHECK(rf_gguf_writer_add_tensor(w, "a", RF_TYPE_Q4_0, 1, bad_q, d, &e) == RF_E_INVAL);
    CHECK(strstr(e.msg, "block size") != NULL);
    CHECK(rf_gguf_writer_add_tensor(w, "a", 4, 1, ne2, d, &e) == RF_E_INVAL);
    CHECK(rf_gguf_writer_add_tensor(w, "a", RF_TYPE_F32, 2, neg, d, &e) == RF_E_INVAL);
    CHECK(strstr(e.msg, "negative dimension") != NULL);
    CHECK(rf_gguf_writer_add_tensor(w, "", RF_TYPE_F32, 2, ne2, d, &e) == RF_E_INVAL);
    CHECK(rf_gguf_writer_add_tensor(w, "a", RF_TYPE_F32, 2, ne2, d, &e) == RF_OK);
    CHECK(rf_gguf_writer_add_tensor(w, "a", RF_TYPE_F32, 2, ne2, d, &e) == RF_E_INVAL);
    CHECK(strstr(e.msg, "duplicate") != NULL);
    CHECK(rf_gguf_writer_set_u32(w, "", 1) == RF_E_INVAL);
    CHECK(rf_gguf_writer_set_u32(w, NULL, 1) == RF_E_INVAL);
    CHECK(rf_gguf_writer_set_str(w, "k", NULL) == RF_E_INVAL);
    CHECK(rf_gguf_writer_set_arr(w, "k", RF_GGUF_STRING, d, 1) == RF_E_INVAL);
    CHECK(rf_gguf_writer_set_arr(w, "k", RF_GGUF_U32, NULL, 1) == RF_E_INVAL);
    CHECK(rf_gguf_writer_set_arr(w, "k", RF_GGUF_U32, NULL, UINT64_MAX) == RF_E_INVAL);
    rf_gguf_value v = {.type = 13};
    CHECK(rf_gguf_writer_set_value(w, STR("k"), &v) == RF_E_INVAL);
    v = (rf_gguf_value){.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_ARRAY, 1, &v}}; /* element not an array */
    rf_gguf_value elem = {.type = RF_GGUF_U8};
    v.arr.data = &elem;
    CHECK(rf_gguf_writer_set_value(w, STR("k"), &v) == RF_E_INVAL);
    CHECK(rf_gguf_writer_finish(w, &e) == RF_E_INVAL); /* never begun */

    /* I/O errors carry the path and errno text. */
    CHECK(rf_gguf_writer_write_file(w, "/nonexistent-dir/x.gguf", &e) == RF_E_IO);
    CHECK(strstr(e.msg, "/nonexistent-dir/x.gguf") && strstr(e.msg, "No such file"));
    if (access("/dev/full", W_OK) == 0) {
        CHECK(rf_gguf_writer_write_file(w, "/dev/full", &e) == RF_E_IO);
        CHECK_MSG(strstr(e.msg, "/dev/full") && strstr(e.msg, "No space left"), "%s", e.msg);
        /* Big enough to hit the error in a direct (unbuffered) write. */
        rf_gguf_writer *w2 = rf_gguf_writer_new();
        const int64_t big[1] = {1 << 19};
        float *bd = calloc(1 << 19, sizeof *bd);
        CHECK(rf_gguf_writer_add_tensor(w2, "big", RF_TYPE_F32, 1, big, bd, &e) == RF_OK);
        CHECK(rf_gguf_writer_write_file(w2, "/dev/full", &e) == RF_E_IO && strstr(e.msg, "No space left"));
        rf_gguf_writer_free(w2);
        free(bd);
    } else {
        fprintf(stderr, "  note: /dev/full not writable, write-error check skipped\n");
    }
    rf_gguf_writer_free(w);

    /* A failing direct (unbuffered) write of big tensor data: the file size
     * limit lets the header through and stops the 2 MiB tensor. */
    struct rlimit old;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
        struct rlimit lim = old;
        lim.rlim_cur = 1 << 20;
        w = rf_gguf_writer_new();
        const int64_t big[1] = {1 << 19};
        float *bd = calloc(1 << 19, sizeof *bd);
        CHECK(rf_gguf_writer_add_tensor(w, "big", RF_TYPE_F32, 1, big, bd, &e) == RF_OK);
        if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
            rf_status st = rf_gguf_writer_write_file(w, tmp_path("toobig.gguf"), &e);
            setrlimit(RLIMIT_FSIZE, &old);
            CHECK_MSG(st == RF_E_IO && strstr(e.msg, "toobig.gguf: write failed: File too large"), "%d %s", st,
                      e.msg);
        }
        rf_gguf_writer_free(w);
        free(bd);
    }
    signal(SIGXFSZ, old_handler);

    /* Bool arrays are stored as 0/1 whatever bytes the caller passes. */
    w = rf_gguf_writer_new();
    const uint8_t bools[4] = {0, 1, 2, 255};
    CHECK(rf_gguf_writer_set_arr(w, "b", RF_GGUF_BOOL, bools, 4) == RF_OK);
    rf_gguf_value bv = {.type = RF_GGUF_BOOL, .u64 = 7};
    CHECK(rf_gguf_writer_set_value(w, STR("b1"), &bv) == RF_OK);
    const char *bp = tmp_path("bools.gguf");
    CHECK(rf_gguf_writer_write_file(w, bp, &e) == RF_OK);
    rf_gguf_writer_free(w);
    rf_gguf *g = NULL;
    rf_gguf_arr a;
    bool b1 = false;
    CHECK(rf_gguf_open(bp, &g, &e) == RF_OK);
    if (g) {
        CHECK(rf_gguf_get_arr(g, "b", &a, &e) == RF_OK && a.n == 4);
        CHECK(a.n == 4 && !rf_gguf_arr_i64(&a, 0) && rf_gguf_arr_i64(&a, 1) == 1 && rf_gguf_arr_i64(&a, 2) == 1 &&
              rf_gguf_arr_i64(&a, 3) == 1);
        CHECK(rf_gguf_get_bool(g, "b1", &b1, &e) == RF_OK && b1);
    }
    rf_gguf_close(g);
}

/* Writes part k (1-based) of an n-part set under `stem`. */
static void write_part(const char *stem, unsigned k, unsigned n, int no, int count, int tensors_count,
                       const char *dup_name, uint8_t data[][64]) {
    char path[256], name[32];
    snprintf(path, sizeof path, "%s-%05u-of-%05u.gguf", stem, k, n);
    rf_gguf_writer *w = rf_gguf_writer_new();
    rf_gguf_value v = {.type = RF_GGUF_U16, .u64 = (uint64_t)no};
    CHECK(rf_gguf_writer_set_value(w, STR("split.no"), &v) == RF_OK);
    v.u64 = (uint64_t)count;
    CHECK(rf_gguf_writer_set_value(w, STR("split.count"), &v) == RF_OK);
    rf_gguf_value tc = {.type = RF_GGUF_I32, .i64 = tensors_count};
    CHECK(rf_gguf_writer_set_value(w, STR("split.tensors.count"), &tc) == RF_OK);
    if (k == 1) CHECK(rf_gguf_writer_set_str(w, "general.architecture", "llama") == RF_OK);
    rf_error e;
    const int64_t ne[1] = {16};
    for (unsigned j = 0; j < 2; j++) {
        snprintf(name, sizeof name, "p%u.t%u", k, j);
        const char *nm = (dup_name && j == 1) ? dup_name : name;
        CHECK(rf_gguf_writer_add_tensor(w, nm, RF_TYPE_F32, 1, ne, data[(k - 1) * 2 + j], &e) == RF_OK);
    }
    CHECK(rf_gguf_writer_write_file(w, path, &e) == RF_OK);
    rf_gguf_writer_free(w);
}

static void write_split_set(const char *stem, uint8_t data[][64]) {
    for (unsigned k = 1; k <= 3; k++) write_part(stem, k, 3, (int)k - 1, 3, 6, NULL, data);
}

static void expect_split_fail(const char *path, rf_status want, const char *msg, int line) {
    rf_gguf *g = NULL;
    rf_error e = {0};
    size_t live = rf_alloc_get_stats().live_bytes;
    rf_status st = rf_gguf_open(path, &g, &e);
    CHECK_MSG(st == want && g == NULL, "line %d: status %d (%s)", line, st, e.msg);
    CHECK_MSG(strstr(e.msg, msg) != NULL, "line %d: '%s' lacks '%s'", line, e.msg, msg);
    if (want == RF_E_FORMAT) CHECK_MSG(strstr(e.msg, ".gguf: offset "), "line %d: '%s' lacks the offset", line, e.msg);
    CHECK_MSG(rf_alloc_get_stats().live_bytes == live, "line %d: leak", line);
    rf_gguf_close(g);
}

static void test_split(void) {
    uint8_t data[6][64];
    fill_random(data, sizeof data);
    char stem[200], p1[256], p2[256], p3[256];
    snprintf(stem, sizeof stem, "%s", tmp_path("model"));
    snprintf(p1, sizeof p1, "%s-00001-of-00003.gguf", stem);
    snprintf(p2, sizeof p2, "%s-00002-of-00003.gguf", stem);
    snprintf(p3, sizeof p3, "%s-00003-of-00003.gguf", stem);
    write_split_set(stem, data);

    rf_gguf *g = NULL;
    rf_error e = {0};
    rf_status st = rf_gguf_open(p1, &g, &e);
    CHECK_MSG(st == RF_OK, "%s", e.msg);
    if (g) {
        CHECK(rf_gguf_n_splits(g) == 3);
        CHECK(rf_gguf_n_tensors(g) == 6);
        CHECK(rf_gguf_file_size(g) == file_size(p1) + file_size(p2) + file_size(p3));
        CHECK(rf_gguf_n_kv(g) == 4); /* metadata comes from part 1 */
        rf_str s;
        CHECK(rf_gguf_get_str(g, "general.architecture", &s, &e) == RF_OK && rf_str_eq(s, "llama"));
        for (int64_t i = 0; i < 6; i++) {
            const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
            char name[32];
            snprintf(name, sizeof name, "p%d.t%d", (int)(i / 2) + 1, (int)(i % 2));
            CHECK(rf_str_eq(t->name, name));
            CHECK(t->split == (uint32_t)(i / 2));
            CHECK(t->nbytes == 64 && memcmp(t->data, data[i], 64) == 0);
            CHECK(rf_gguf_find_tensor(g, name) == t);
        }
    }
    rf_gguf_close(g);

    /* Out of memory at every allocation of a split open. */
    size_t live = rf_alloc_get_stats().live_bytes;
    bool ok = false;
    for (long k = 0; k < 200 && !ok; k++) {
        rf_alloc_fail_after(k);
        g = NULL;
        st = rf_gguf_open(p1, &g, &e);
        rf_alloc_fail_after(-1);
        CHECK(st == RF_OK || st == RF_E_NOMEM);
        if (st == RF_OK) ok = rf_gguf_n_tensors(g) == 6;
        rf_gguf_close(g);
        CHECK(rf_alloc_get_stats().live_bytes == live);
    }
    CHECK(ok);

    expect_split_fail(p2, RF_E_FORMAT, "open the first part", __LINE__);
    char other[256];
    snprintf(other, sizeof other, "%s", tmp_path("renamed.gguf"));
    size_t n;
    uint8_t *b = slurp(p1, &n);
    spit(other, b, n);
    free(b);
    expect_split_fail(other, RF_E_FORMAT, "does not end in '-00001-of-00003.gguf'", __LINE__);

    write_part(stem, 2, 3, 2, 3, 6, NULL, data); /* wrong split.no */
    expect_split_fail(p1, RF_E_FORMAT, "split.no = 2", __LINE__);
    write_part(stem, 2, 3, 1, 4, 6, NULL, data); /* wrong split.count */
    expect_split_fail(p1, RF_E_FORMAT, "split.count = 4", __LINE__);
    write_part(stem, 2, 3, 1, 3, 6, "p1.t0", data); /* name also in part 1 */
    expect_split_fail(p1, RF_E_FORMAT, "duplicate tensor name 'p1.t0'", __LINE__);
    write_part(stem, 2, 3, 1, 3, 6, NULL, data);
    write_part(stem, 1, 3, 0, 3, 7, NULL, data); /* wrong split.tensors.count */
    expect_split_fail(p1, RF_E_FORMAT, "split.tensors.count = 7", __LINE__);
    write_part(stem, 1, 3, 0, 3, 6, NULL, data);
    unlink(p3);
    expect_split_fail(p1, RF_E_IO, "-00003-of-00003.gguf: cannot open", __LINE__);
}

/* A small valid file whose last tensor ends exactly at the end, so every
 * shorter prefix is malformed. */
static uint8_t *small_file(size_t *n) {
    rf_gguf_writer *w = rf_gguf_writer_new();
    const uint32_t u[3] = {1, 2, 3};
    const char *strs[2] = {"ab", ""};
    rf_gguf_value inner[2] = {{.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_U32, 3, u}},
                              {.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_STRING, 0, NULL}}};
    rf_gguf_value nested = {.type = RF_GGUF_ARRAY, .arr = {RF_GGUF_ARRAY, 2, inner}};
    rf_gguf_value f64 = {.type = RF_GGUF_F64, .f64 = 2.5};
    rf_error e;
    CHECK(rf_gguf_writer_set_str(w, "general.architecture", "llama") == RF_OK);
    CHECK(rf_gguf_writer_set_u32(w, "n", 5) == RF_OK);
    CHECK(rf_gguf_writer_set_bool(w, "b", true) == RF_OK);
    CHECK(rf_gguf_writer_set_arr_str(w, "s", strs, 2) == RF_OK);
    CHECK(rf_gguf_writer_set_arr(w, "u", RF_GGUF_U32, u, 3) == RF_OK);
    CHECK(rf_gguf_writer_set_value(w, STR("nest"), &nested) == RF_OK);
    CHECK(rf_gguf_writer_set_value(w, STR("d"), &f64) == RF_OK);
    float d[16];
    for (int i = 0; i < 16; i++) d[i] = (float)i;
    const int64_t ne1[1] = {8}, ne2[1] = {16};
    CHECK(rf_gguf_writer_add_tensor(w, "a", RF_TYPE_F32, 1, ne1, d, &e) == RF_OK);
    CHECK(rf_gguf_writer_add_tensor(w, "b", RF_TYPE_F16, 1, ne2, d, &e) == RF_OK);
    const char *path = tmp_path("small.gguf");
    CHECK(rf_gguf_writer_write_file(w, path, &e) == RF_OK);
    rf_gguf_writer_free(w);
    return slurp(path, n);
}

static void test_truncation(void) {
    size_t n;
    uint8_t *buf = small_file(&n);
    size_t live = rf_alloc_get_stats().live_bytes;
    rf_error e;
    CHECK(open_image(buf, n, "trunc.gguf", &e) == RF_OK);
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        rf_status st = open_image(buf, len, "trunc.gguf", &e);
        if (st != RF_E_FORMAT || !strstr(e.msg, "trunc.gguf: offset ")) {
            if (bad++ < 5) fprintf(stderr, "  prefix %zu of %zu: status %d (%s)\n", len, n, st, e.msg);
        }
    }
    CHECK(bad == 0);
    CHECK(rf_alloc_get_stats().live_bytes == live);
    free(buf);
}

/* Every byte set to a few values: open must succeed or fail cleanly, and a
 * file that opens must be walkable. */
static void test_mutations(void) {
    size_t n;
    uint8_t *buf = small_file(&n);
    size_t live = rf_alloc_get_stats().live_bytes;
    int n_ok = 0, n_bad = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t vals[4] = {0x00, 0xff, (uint8_t)(buf[i] ^ 0x80), (uint8_t)(buf[i] + 1)};
        for (int k = 0; k < 4; k++) {
            uint8_t *copy = malloc(n);
            memcpy(copy, buf, n);
            copy[i] = vals[k];
            rf_gguf *g = NULL;
            rf_error e = {0};
            rf_status st = rf_gguf_open_memory(copy, n, "mut.gguf", &g, &e);
            CHECK(st == RF_OK || st == RF_E_FORMAT);
            if (st == RF_OK) {
                (void)walk(g);
                n_ok++;
            } else {
                CHECK(strstr(e.msg, "mut.gguf") != NULL);
                n_bad++;
            }
            rf_gguf_close(g);
            free(copy);
        }
    }
    CHECK(n_ok > 0 && n_bad > 0);
    CHECK(rf_alloc_get_stats().live_bytes == live);
    free(buf);
}

static void test_corruptions(void) {
    const uint64_t ne8[1] = {8};
    img m;

    m = one_tensor(1, ne8, RF_TYPE_F32, 0, 32); /* the control: valid */
    EXPECT_OK(&m);
    m = one_tensor(1, ne8, RF_TYPE_F32, 0, 32);
    memcpy(m.p, "GGUX", 4);
    EXPECT_BAD(&m, "bad magic");
    m = (img){0};
    im_put(&m, "GG", 2);
    EXPECT_BAD(&m, "too short");
    const uint32_t versions[] = {0, 1, 4, 0x03000000};
    const char *vmsg[] = {"version 0", "version 1 is not supported", "version 4", "byte-swapped"};
    for (int i = 0; i < 4; i++) {
        m = one_tensor(1, ne8, RF_TYPE_F32, 0, 32);
        memcpy(m.p + 4, &versions[i], 4);
        EXPECT_BAD(&m, vmsg[i]);
    }
    m = one_tensor(1, ne8, RF_TYPE_F32, 0, 32);
    m.p[4] = 2; /* v2 has the same layout: accepted */
    EXPECT_OK(&m);

    /* Huge counts and lengths fail on the bytes left, before allocating. */
    const uint64_t huge[] = {1ull << 62, UINT64_MAX, 1000000};
    for (int i = 0; i < 3; i++) {
        m = one_tensor(1, ne8, RF_TYPE_F32, 0, 32);
        memcpy(m.p + 16, &huge[i], 8);
        EXPECT_BAD(&m, "key-value count");
        m = one_tensor(1, ne8, RF_TYPE_F32, 0, 32);
        memcpy(m.p + 8, &huge[i], 8);
        EXPECT_BAD(&m, "tensor count");
        m = one_tensor(1, ne8, RF_TYPE_F32, 0, 32);
        memcpy(m.p + 24, &huge[i], 8); /* key length */
        EXPECT_BAD(&m, "key length");
        m = one_tensor(1, ne8, RF_TYPE_F32, 0, 32);
        memcpy(m.p + 24 + 8 + 20 + 4, &huge[i], 8); /* string value length */
        EXPECT_BAD(&m, "string value length");
    }
    const uint32_t arr_types[] = {RF_GGUF_U32, RF_GGUF_STRING, RF_GGUF_ARRAY, RF_GGUF_U8};
    for (int i = 0; i < 4; i++) {
        m = (img){0};
        im_header(&m, 3, 0, 1);
        im_str(&m, "arr");
        im_u32(&m, RF_GGUF_ARRAY);
        im_u32(&m, arr_types[i]);
        im_u64(&m, 1ull << 61);
        im_zeros(&m, 64);
        EXPECT_BAD(&m, "array of 2305843009213693952");
    }
    m = (img){0};
    im_header(&m, 3, 0, 1);
    im_str(&m, "arr");
    im_u32(&m, RF_GGUF_ARRAY);
    im_u32(&m, 77);
    im_u64(&m, 1);
    EXPECT_BAD(&m, "element type 77");
    m = (img){0};
    im_header(&m, 3, 0, 1);
    im_str(&m, "v");
    im_u32(&m, 13);
    im_u32(&m, 0);
    EXPECT_BAD(&m, "value type 13");
    m = (img){0};
    im_header(&m, 3, 0, 1);
    im_str(&m, "v");
    im_u32(&m, RF_GGUF_BOOL);
    im_u8(&m, 2);
    EXPECT_BAD(&m, "bool value is 2");
    m = (img){0};
    im_header(&m, 3, 0, 1);
    im_str(&m, "v");
    im_u32(&m, RF_GGUF_ARRAY);
    im_u32(&m, RF_GGUF_BOOL);
    im_u64(&m, 3);
    im_u8(&m, 1), im_u8(&m, 0), im_u8(&m, 7);
    EXPECT_BAD(&m, "bool array element 2 is 7");
    m = (img){0};
    im_header(&m, 3, 0, 1);
    im_str(&m, "");
    im_u32(&m, RF_GGUF_U8);
    im_u8(&m, 1);
    im_zeros(&m, 8); /* so the count check passes and the key itself is read */
    EXPECT_BAD(&m, "empty key");
    m = (img){0};
    im_header(&m, 3, 0, 1);
    im_u64(&m, 70000);
    im_zeros(&m, 70000);
    im_u32(&m, RF_GGUF_U8);
    im_u8(&m, 1);
    EXPECT_BAD(&m, "exceeds the limit");
    m = (img){0}; /* zero tensors, no padding at the end: fine */
    im_header(&m, 3, 0, 1);
    im_kv_u32(&m, "k", 1);
    EXPECT_OK(&m);

    /* Tensor infos. */
    m = one_tensor(0, ne8, RF_TYPE_F32, 0, 32);
    EXPECT_BAD(&m, "n_dims = 0");
    const uint64_t ne5[5] = {8, 1, 1, 1, 1};
    m = one_tensor(5, ne5, RF_TYPE_F32, 0, 32);
    EXPECT_BAD(&m, "n_dims = 5");
    const uint64_t neg[2] = {8, UINT64_MAX};
    m = one_tensor(2, neg, RF_TYPE_F32, 0, 32);
    EXPECT_BAD(&m, "ne[1] = -1 is negative");
    const uint64_t big[2] = {1ull << 32, 1ull << 32};
    m = one_tensor(2, big, RF_TYPE_F32, 0, 32);
    EXPECT_BAD(&m, "overflows");
    const uint64_t big2[3] = {0, 1ull << 40, 1ull << 40};
    m = one_tensor(3, big2, RF_TYPE_F32, 0, 32);
    EXPECT_BAD(&m, "overflows");
    const uint64_t bytes_big[2] = {1ull << 61, 2};
    m = one_tensor(2, bytes_big, RF_TYPE_I64, 0, 32);
    EXPECT_BAD(&m, "byte size overflows");
    const uint32_t bad_types[] = {4, 5, 31, 36, 42, 1000, UINT32_MAX};
    for (size_t i = 0; i < RF_ARRAY_LEN(bad_types); i++) {
        m = one_tensor(1, ne8, bad_types[i], 0, 32);
        EXPECT_BAD(&m, "unknown or retired tensor type");
    }
    const uint64_t ne16[1] = {16};
    m = one_tensor(1, ne16, RF_TYPE_Q4_0, 0, 32);
    EXPECT_BAD(&m, "block size");
    m = one_tensor(1, ne8, RF_TYPE_F32, 4, 64);
    EXPECT_BAD(&m, "data offset 4 is not a multiple of the alignment 32");
    m = one_tensor(1, ne8, RF_TYPE_F32, 0, 31);
    EXPECT_BAD(&m, "exceeds file size");
    m = one_tensor(1, ne8, RF_TYPE_F32, 32, 32);
    EXPECT_BAD(&m, "exceeds file size");
    m = one_tensor(1, ne8, RF_TYPE_F32, 1ull << 62, 32);
    EXPECT_BAD(&m, "exceeds file size");
    m = one_tensor(1, ne8, RF_TYPE_F32, UINT64_MAX - 31, 32);
    EXPECT_BAD(&m, "exceeds file size");
    m = (img){0}; /* the padding before the data runs past the end */
    im_header(&m, 3, 1, 0);
    im_tinfo(&m, "t", 1, ne8, RF_TYPE_F32, 0);
    EXPECT_BAD(&m, "tensor data should start at offset 64");
    m = (img){0};
    im_header(&m, 3, 1, 0);
    im_str(&m, "");
    im_u32(&m, 1), im_u64(&m, 8), im_u32(&m, 0), im_u64(&m, 0);
    im_pad(&m, 32), im_zeros(&m, 32);
    EXPECT_BAD(&m, "empty tensor name");

    /* Overlaps and duplicates. */
    const uint64_t ne16f[1] = {16};
    struct {
        uint64_t off_a, off_b;
        const char *name_b;
        const char *want;
    } pairs[] = {
        {0, 0, "b", "overlaps tensor"},
        {0, 32, "b", "overlaps tensor"},  /* a is 64 bytes */
        {64, 32, "b", "overlaps tensor"}, /* b before a in the file, after in the data */
        {0, 64, "a", "duplicate tensor name 'a'"},
        {0, 64, "b", NULL}, /* control: adjacent, fine */
    };
    for (size_t i = 0; i < RF_ARRAY_LEN(pairs); i++) {
        m = (img){0};
        im_header(&m, 3, 2, 0);
        im_tinfo(&m, "a", 1, ne16f, RF_TYPE_F32, pairs[i].off_a);
        im_tinfo(&m, pairs[i].name_b, 1, ne16f, RF_TYPE_F32, pairs[i].off_b);
        im_pad(&m, 32);
        im_zeros(&m, 128);
        if (pairs[i].want) EXPECT_BAD(&m, pairs[i].want);
        else EXPECT_OK(&m);
    }
    m = (img){0}; /* empty tensors overlap nothing */
    const uint64_t ne0[2] = {0, 4};
    im_header(&m, 3, 2, 0);
    im_tinfo(&m, "a", 1, ne16f, RF_TYPE_F32, 0);
    im_tinfo(&m, "e", 2, ne0, RF_TYPE_F32, 32);
    im_pad(&m, 32), im_zeros(&m, 64);
    EXPECT_OK(&m);
    m = (img){0};
    im_header(&m, 3, 0, 3);
    im_kv_u32(&m, "x", 1);
    im_kv_u32(&m, "y", 1);
    im_kv_u32(&m, "x", 2);
    EXPECT_BAD(&m, "duplicate key 'x' (first at offset 24)");

    /* general.alignment. */
    const uint32_t bad_align[] = {0, 3, 48};
    for (int i = 0; i < 3; i++) {
        m = (img){0};
        im_header(&m, 3, 0, 1);
        im_kv_u32(&m, "general.alignment", bad_align[i]);
        EXPECT_BAD(&m, "not a nonzero power of two");
    }
    m = (img){0};
    im_header(&m, 3, 0, 1);
    im_str(&m, "general.alignment");
    im_u32(&m, RF_GGUF_I32);
    im_u32(&m, 32);
    EXPECT_BAD(&m, "must be an unsigned integer");
    m = (img){0};
    im_header(&m, 3, 0, 1);
    im_str(&m, "general.alignment");
    im_u32(&m, RF_GGUF_STRING);
    im_str(&m, "32");
    EXPECT_BAD(&m, "must be an unsigned integer");
    m = (img){0}; /* alignment 2^63: the data section start overflows */
    im_header(&m, 3, 1, 1);
    im_str(&m, "general.alignment");
    im_u32(&m, RF_GGUF_U64);
    im_u64(&m, 1ull << 63);
    im_tinfo(&m, "t", 1, ne8, RF_TYPE_F32, 0);
    im_zeros(&m, 64);
    EXPECT_BAD(&m, "should start at offset 9223372036854775808");
    m = (img){0}; /* custom alignment 16: offsets must follow it */
    im_header(&m, 3, 2, 1);
    im_str(&m, "general.alignment");
    im_u32(&m, RF_GGUF_U8);
    im_u8(&m, 16);
    const uint64_t ne4[1] = {4};
    im_tinfo(&m, "a", 1, ne4, RF_TYPE_F32, 0);
    im_tinfo(&m, "b", 1, ne4, RF_TYPE_F32, 16);
    im_pad(&m, 16), im_zeros(&m, 32);
    EXPECT_OK(&m);

    /* Nesting: 8 levels are fine, 9 are not. */
    for (int depth = 8; depth <= 9; depth++) {
        m = (img){0};
        im_header(&m, 3, 0, 1);
        im_str(&m, "deep");
        im_u32(&m, RF_GGUF_ARRAY);
        for (int i = 1; i < depth; i++) im_u32(&m, RF_GGUF_ARRAY), im_u64(&m, 1);
        im_u32(&m, RF_GGUF_U8), im_u64(&m, 1), im_u8(&m, 42);
        if (depth == 8) EXPECT_OK(&m);
        else EXPECT_BAD(&m, "nested more than 8 deep");
    }
}

static void test_open_errors(void) {
    rf_gguf *g = (rf_gguf *)1;
    rf_error e;
    CHECK(rf_gguf_open("/nonexistent/file.gguf", &g, &e) == RF_E_IO && g == NULL);
    CHECK(strstr(e.msg, "/nonexistent/file.gguf: cannot open: No such file") != NULL);
    CHECK(rf_gguf_open(g_dir[0] ? g_dir : "/tmp", &g, &e) == RF_E_IO);
    CHECK(strstr(e.msg, "not a regular file") != NULL);
    const char *empty = tmp_path("empty.gguf");
    spit(empty, "", 0);
    CHECK(rf_gguf_open(empty, &g, &e) == RF_E_FORMAT && strstr(e.msg, "empty.gguf: offset 0: file is 0 bytes"));
    CHECK(rf_gguf_open_memory(NULL, 0, NULL, &g, &e) == RF_E_FORMAT && strstr(e.msg, "<memory>"));
    CHECK(rf_gguf_open_memory(NULL, 5, "x", &g, &e) == RF_E_INVAL);
    rf_gguf_close(NULL);
    rf_gguf_writer_free(NULL);
}

/* Every allocation of an open fails in turn: only RF_OK or RF_E_NOMEM, no
 * leak, and eventually success. */
static void test_oom(void) {
    uint8_t **data = make_tensor_data();
    const char *path = tmp_path("oom.gguf");
    write_ref(path, data, 0);
    size_t n;
    uint8_t *buf = slurp(path, &n);
    for (int mode = 0; mode < 2; mode++) {
        size_t live = rf_alloc_get_stats().live_bytes;
        bool ok = false;
        long k;
        for (k = 0; k < 500 && !ok; k++) {
            rf_gguf *g = NULL;
            rf_error e = {0};
            rf_alloc_fail_after(k);
            rf_status st = mode ? rf_gguf_open_memory(buf, n, "oom", &g, &e) : rf_gguf_open(path, &g, &e);
            rf_alloc_fail_after(-1);
            CHECK_MSG(st == RF_OK || st == RF_E_NOMEM, "k=%ld: %d %s", k, st, e.msg);
            if (st == RF_E_NOMEM) CHECK(g == NULL && strstr(e.msg, "out of memory"));
            if (st == RF_OK) {
                check_ref(g, data, 32);
                ok = true;
            }
            rf_gguf_close(g);
            CHECK(rf_alloc_get_stats().live_bytes == live);
        }
        CHECK(ok && k > 3);
    }

    /* The writer: build and write with allocation k failing. */
    size_t live = rf_alloc_get_stats().live_bytes;
    bool ok = false;
    for (long k = 0; k < 2000 && !ok; k++) {
        rf_error e = {0};
        rf_alloc_fail_after(k);
        rf_gguf_writer *w = rf_gguf_writer_new();
        rf_status st = w ? fill_writer(w, data, &e) : RF_E_NOMEM;
        if (st == RF_OK) st = rf_gguf_writer_set_u32(w, "general.alignment", 64);
        if (st == RF_OK) st = rf_gguf_writer_write_file(w, tmp_path("oom-w.gguf"), &e);
        rf_alloc_fail_after(-1);
        CHECK_MSG(st == RF_OK || st == RF_E_NOMEM, "k=%ld: %d %s", k, st, e.msg);
        rf_gguf_writer_free(w);
        CHECK(rf_alloc_get_stats().live_bytes == live);
        if (st == RF_OK) {
            ok = true;
            rf_gguf *g = NULL;
            CHECK(rf_gguf_open(tmp_path("oom-w.gguf"), &g, &e) == RF_OK);
            if (g) check_ref(g, data, 64);
            rf_gguf_close(g);
        }
    }
    CHECK(ok);
    free(buf);
    free_tensor_data(data);
}

/* A vocab-sized string array round trip (the reader's common heavy case). */
static void test_big_string_array(void) {
    enum { N = 20000 };
    char **strs = malloc(N * sizeof *strs);
    for (int i = 0; i < N; i++) {
        strs[i] = malloc(16);
        snprintf(strs[i], 16, "tok%d", i * 7);
    }
    rf_gguf_writer *w = rf_gguf_writer_new();
    rf_error e;
    CHECK(rf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)strs, N) == RF_OK);
    const char *path = tmp_path("vocab.gguf");
    CHECK(rf_gguf_writer_write_file(w, path, &e) == RF_OK);
    rf_gguf_writer_free(w);
    rf_gguf *g = NULL;
    CHECK(rf_gguf_open(path, &g, &e) == RF_OK);
    rf_gguf_arr a;
    if (g && rf_gguf_get_arr(g, "tokenizer.ggml.tokens", &a, &e) == RF_OK) {
        CHECK(a.n == N);
        int bad = 0;
        for (int i = 0; i < N; i++) bad += !rf_str_eq(rf_gguf_arr_str(&a, (uint64_t)i), strs[i]);
        CHECK(bad == 0);
    } else {
        CHECK(!"vocab missing");
    }
    rf_gguf_close(g);
    for (int i = 0; i < N; i++) free(strs[i]);
    free(strs);
}

static size_t g_live_at_start;

/* Everything the tests allocated through rf_malloc has been given back. */
static void test_no_leaks(void) {
    size_t live = rf_alloc_get_stats().live_bytes;
    CHECK_MSG(live == g_live_at_start, "%zu bytes of rf_malloc memory leaked", live - g_live_at_start);
}

int main(void) {
    g_live_at_start = rf_alloc_get_stats().live_bytes;
    RF_RUN(test_vtype_table);
    RF_RUN(test_roundtrip);
    RF_RUN(test_writer_bytes);
    RF_RUN(test_getters);
    RF_RUN(test_alignment);
    RF_RUN(test_streaming);
    RF_RUN(test_writer_errors);
    RF_RUN(test_split);
    RF_RUN(test_truncation);
    RF_RUN(test_mutations);
    RF_RUN(test_corruptions);
    RF_RUN(test_open_errors);
    RF_RUN(test_oom);
    RF_RUN(test_big_string_array);
    RF_RUN(test_no_leaks);
    cleanup_dir();
    return rf_test_summary();
}
