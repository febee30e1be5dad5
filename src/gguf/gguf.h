/*
 * gguf.h - reading and writing GGUF files (versions 2 and 3).
 *
 * The format, little-endian throughout:
 *   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv      (v1 used u32 counts; rejected)
 *   n_kv x  { string key | u32 value_type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   padding to general.alignment (default 32)
 *   tensor data; each tensor at data_start + offset, offsets aligned
 * string = u64 length + bytes (no NUL); array = u32 elem_type + u64 count + elems.
 *
 * The reader mmaps the file read-only and never copies tensor data or strings:
 * every rf_str and data pointer it hands out is borrowed from the mapping and
 * lives until rf_gguf_close(). Everything read from the file is validated
 * before use; a malformed file yields RF_E_FORMAT with a message naming the
 * file offset and what is wrong.
 */
#ifndef RF_GGUF_H
#define RF_GGUF_H

#include "../core/core.h"

#define RF_GGUF_DEFAULT_ALIGNMENT 32
#define RF_GGUF_MAX_DIMS 4

typedef enum rf_gguf_vtype {
    RF_GGUF_U8 = 0,
    RF_GGUF_I8 = 1,
    RF_GGUF_U16 = 2,
    RF_GGUF_I16 = 3,
    RF_GGUF_U32 = 4,
    RF_GGUF_I32 = 5,
    RF_GGUF_F32 = 6,
    RF_GGUF_BOOL = 7,
    RF_GGUF_STRING = 8,
    RF_GGUF_ARRAY = 9,
    RF_GGUF_U64 = 10,
    RF_GGUF_I64 = 11,
    RF_GGUF_F64 = 12,
    RF_GGUF_VTYPE_COUNT = 13,
} rf_gguf_vtype;

/* A length-delimited string; not NUL-terminated. Borrowed. */
typedef struct rf_str {
    const char *ptr;
    uint64_t len;
} rf_str;

typedef struct rf_gguf_value rf_gguf_value;

/* An array value. `data` layout depends on elem_type:
 *   numeric/bool: the raw little-endian elements as in the file (may be
 *                 unaligned: read them through rf_gguf_arr_* accessors);
 *   STRING:       const rf_str[n];
 *   ARRAY:        const rf_gguf_value[n] (each of type ARRAY). */
typedef struct rf_gguf_arr {
    uint32_t elem_type;
    uint64_t n;
    const void *data;
} rf_gguf_arr;

struct rf_gguf_value {
    uint32_t type; /* rf_gguf_vtype */
    union {
        uint64_t u64; /* U8, U16, U32, U64, BOOL (0/1) widened */
        int64_t i64;  /* I8, I16, I32, I64 widened */
        double f64;   /* F32, F64 widened */
        rf_str str;
        rf_gguf_arr arr;
    };
};

typedef struct rf_gguf_kv {
    rf_str key;
    rf_gguf_value val;
    uint64_t file_offset; /* where the key starts, for messages */
} rf_gguf_kv;

typedef struct rf_gguf_tensor {
    rf_str name;
    uint32_t n_dims;
    int64_t ne[RF_GGUF_MAX_DIMS]; /* ne[0] is the contiguous dimension; unused dims are 1 */
    uint32_t type;                /* rf_type */
    uint64_t offset;              /* relative to its file's data section */
    uint64_t nbytes;
    const void *data;             /* borrowed from the mapping */
    uint32_t split;               /* which split file holds it (0 for single files) */
    uint64_t file_offset;         /* where its tensor info starts in that file, for messages */
} rf_gguf_tensor;

typedef struct rf_gguf rf_gguf;

/* Opens and validates a GGUF file. For a split model, pass the first part
 * (NAME-00001-of-0000N.gguf): the other parts are opened too and their
 * tensors appear in one table; metadata comes from the first part (opening
 * a later part is RF_E_FORMAT, naming the first). RF_E_IO if a file cannot
 * be opened or mapped, RF_E_NOMEM on allocation failure (nothing leaks).
 * On success *out is owned by the caller (rf_gguf_close). */
rf_status rf_gguf_open(const char *path, rf_gguf **out, rf_error *err);

/* Parses a GGUF image already in memory (borrowed until close; used by the
 * fuzzer and tests). `name` labels messages. The image is always one part:
 * split.* keys are checked for type but no other parts are looked for. */
rf_status rf_gguf_open_memory(const void *buf, size_t size, const char *name, rf_gguf **out,
                              rf_error *err);

void rf_gguf_close(rf_gguf *g); /* accepts NULL */

/* Copies every part's tensor data into anonymous memory (2 MiB-aligned,
 * transparent huge pages asked for) and points the tensors there. A decode
 * step reads all the weights once; read through the file mapping's 4 KiB
 * pages, a core streams about a quarter slower than from huge pages (TLB
 * misses). Call before binding tensor pointers. RF_E_NOMEM if the memory is
 * not there (the tensors then still point into the file). */
rf_status rf_gguf_copy_data(rf_gguf *g, rf_error *err);
/* True when every tensor's data is in such a copy: private, writable memory
 * (a backend may then rearrange weights in place). */
bool rf_gguf_data_copied(const rf_gguf *g);

uint32_t rf_gguf_version(const rf_gguf *g);
uint64_t rf_gguf_alignment(const rf_gguf *g);
uint64_t rf_gguf_file_size(const rf_gguf *g); /* all splits together */
uint32_t rf_gguf_n_splits(const rf_gguf *g);

/* ---- metadata ---------------------------------------------------------- */

int64_t rf_gguf_n_kv(const rf_gguf *g);
const rf_gguf_kv *rf_gguf_kv_at(const rf_gguf *g, int64_t i);
/* Index of `key` or -1. */
int64_t rf_gguf_find_key(const rf_gguf *g, const char *key);
const rf_gguf_value *rf_gguf_get(const rf_gguf *g, const char *key); /* NULL if absent */

/* Typed getters: RF_E_NOTFOUND if absent, RF_E_FORMAT (with a message) if the
 * stored type does not convert without loss (e.g. a negative I32 read as
 * u64, a string read as a number). Integers of any width convert. */
rf_status rf_gguf_get_u64(const rf_gguf *g, const char *key, uint64_t *out, rf_error *err);
rf_status rf_gguf_get_i64(const rf_gguf *g, const char *key, int64_t *out, rf_error *err);
rf_status rf_gguf_get_u32(const rf_gguf *g, const char *key, uint32_t *out, rf_error *err);
rf_status rf_gguf_get_f32(const rf_gguf *g, const char *key, float *out, rf_error *err);
rf_status rf_gguf_get_bool(const rf_gguf *g, const char *key, bool *out, rf_error *err);
rf_status rf_gguf_get_str(const rf_gguf *g, const char *key, rf_str *out, rf_error *err);
rf_status rf_gguf_get_arr(const rf_gguf *g, const char *key, rf_gguf_arr *out, rf_error *err);

/* Array element accessors (index must be < arr->n: programmer error). */
int64_t rf_gguf_arr_i64(const rf_gguf_arr *a, uint64_t i);  /* integer/bool elems */
double rf_gguf_arr_f64(const rf_gguf_arr *a, uint64_t i);   /* any numeric elem */
rf_str rf_gguf_arr_str(const rf_gguf_arr *a, uint64_t i);   /* STRING elems */

/* Size in bytes of one element of a numeric/bool vtype, 0 for STRING/ARRAY. */
size_t rf_gguf_vtype_size(uint32_t vtype);
const char *rf_gguf_vtype_name(uint32_t vtype);
bool rf_str_eq(rf_str s, const char *cstr);

/* ---- tensors ----------------------------------------------------------- */

int64_t rf_gguf_n_tensors(const rf_gguf *g);
const rf_gguf_tensor *rf_gguf_tensor_at(const rf_gguf *g, int64_t i);
const rf_gguf_tensor *rf_gguf_find_tensor(const rf_gguf *g, const char *name); /* NULL if absent */
int64_t rf_gguf_tensor_nelements(const rf_gguf_tensor *t);

/* ---- writer ------------------------------------------------------------ */

/* Builds a GGUF v3 file. Metadata and tensor infos are collected first; then
 * rf_gguf_writer_begin() writes the header and tensor data follows, in the
 * order the tensors were added, either from pointers given at add time or
 * streamed with rf_gguf_writer_write_data() (so files larger than memory can
 * be written). Keys are unique: setting a key again replaces its value. */
typedef struct rf_gguf_writer rf_gguf_writer;

rf_gguf_writer *rf_gguf_writer_new(void); /* NULL on OOM */
void rf_gguf_writer_free(rf_gguf_writer *w); /* accepts NULL */

/* Values are copied. `alignment` comes from general.alignment if set (must be
 * a power of two), else 32. */
rf_status rf_gguf_writer_set_u8(rf_gguf_writer *w, const char *key, uint8_t v);
rf_status rf_gguf_writer_set_i32(rf_gguf_writer *w, const char *key, int32_t v);
rf_status rf_gguf_writer_set_u32(rf_gguf_writer *w, const char *key, uint32_t v);
rf_status rf_gguf_writer_set_u64(rf_gguf_writer *w, const char *key, uint64_t v);
rf_status rf_gguf_writer_set_f32(rf_gguf_writer *w, const char *key, float v);
rf_status rf_gguf_writer_set_bool(rf_gguf_writer *w, const char *key, bool v);
rf_status rf_gguf_writer_set_str(rf_gguf_writer *w, const char *key, const char *v);
/* Numeric array: elem_type is a numeric/bool vtype, data holds n elements of
 * that type in host (little-endian) layout. */
rf_status rf_gguf_writer_set_arr(rf_gguf_writer *w, const char *key, uint32_t elem_type,
                                 const void *data, uint64_t n);
rf_status rf_gguf_writer_set_arr_str(rf_gguf_writer *w, const char *key, const char *const *strs,
                                     uint64_t n);
/* Copies any value read by the reader (nested arrays included). */
rf_status rf_gguf_writer_set_value(rf_gguf_writer *w, rf_str key, const rf_gguf_value *v);
rf_status rf_gguf_writer_remove(rf_gguf_writer *w, const char *key); /* ok if absent */

/* Adds a tensor info. `data` (may be NULL, then stream it later) is borrowed
 * until rf_gguf_writer_finish(). nbytes must equal the type's row size times
 * the rows. Returns RF_E_INVAL on duplicate names or bad shapes. */
rf_status rf_gguf_writer_add_tensor(rf_gguf_writer *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const int64_t *ne, const void *data,
                                    rf_error *err);

/* Opens `path` and writes header, metadata, tensor infos and padding. */
rf_status rf_gguf_writer_begin(rf_gguf_writer *w, const char *path, rf_error *err);
/* Streams tensor data in add order. A tensor's bytes may come in several
 * calls (chunks); once a tensor's nbytes have arrived, the next call goes to
 * the next tensor (after alignment padding). A chunk may not cross a tensor's
 * end: that, or more data than tensors, is RF_E_INVAL. Tensors added with a
 * data pointer (and empty ones) are written from it when the stream reaches
 * them: only tensors added with NULL data take streamed bytes. */
rf_status rf_gguf_writer_write_data(rf_gguf_writer *w, const void *data, size_t nbytes,
                                    rf_error *err);
/* Writes the data of every tensor added with a pointer that has not been
 * streamed yet, pads, flushes and closes. RF_E_INVAL if a tensor added
 * without data was not (completely) streamed; RF_E_IO with the errno text if
 * a write or the close failed. Afterwards the writer may begin another file. */
rf_status rf_gguf_writer_finish(rf_gguf_writer *w, rf_error *err);

/* begin + finish in one call, for tensors all given by pointer. */
rf_status rf_gguf_writer_write_file(rf_gguf_writer *w, const char *path, rf_error *err);

#endif /* RF_GGUF_H */
