/*
 * gguf-impl.h - what the GGUF reader and writer share but nobody else needs:
 * the value-type table, the limits both sides enforce, and the tensor size
 * rule (so the writer never produces a file the reader would reject).
 */
#ifndef RF_GGUF_IMPL_H
#define RF_GGUF_IMPL_H

#include "gguf.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "GGUF is little-endian and the reader hands out raw pointers into it");

#define RF_GGUF_MAGIC "GGUF"
#define RF_GGUF_VERSION 3
/* Keys are capped by the spec (2^16 - 1 bytes); tensor names get the same cap
 * so a hostile name cannot make messages or lookups expensive. */
#define RF_GGUF_MAX_KEY_LEN 65535u
#define RF_GGUF_MAX_NAME_LEN 65535u
/* Arrays of arrays may nest this deep (the top-level array is depth 1). The
 * parser recurses once per level, so this bounds its stack use. */
#define RF_GGUF_MAX_DEPTH 8

/* How a value type is stored and widened. */
typedef enum rf_gguf_vkind {
    RF_VK_UINT,   /* little-endian unsigned, widened to u64 */
    RF_VK_SINT,   /* little-endian two's complement, sign-extended to i64 */
    RF_VK_FLOAT,  /* IEEE binary32/64, widened to double */
    RF_VK_BOOL,   /* one byte, 0 or 1 */
    RF_VK_STRING, /* u64 length + bytes */
    RF_VK_ARRAY,  /* u32 elem type + u64 count + elements */
} rf_gguf_vkind;

typedef struct rf_gguf_vtype_info {
    const char *name;
    uint8_t size; /* bytes of one scalar; 0 for STRING/ARRAY */
    uint8_t kind; /* rf_gguf_vkind */
    uint8_t min_elem_bytes; /* least bytes one array element of this type takes in a file */
} rf_gguf_vtype_info;

/* Indexed by rf_gguf_vtype; every id below RF_GGUF_VTYPE_COUNT has a row. */
extern const rf_gguf_vtype_info rf_gguf_vtypes[RF_GGUF_VTYPE_COUNT];

/* Widens the scalar of numeric/bool type `vtype` stored at `src` (unaligned,
 * little-endian) into out->u64/i64/f64 and sets out->type. */
void rf_gguf_decode_scalar(uint32_t vtype, const void *src, rf_gguf_value *out);

/* The byte size of a tensor: rf_row_size(type, ne[0]) times the rows.
 * Returns NULL and sets *nbytes on success, else a short reason ("unknown or
 * retired tensor type", ...) for the caller's message. ne[i] for i >= n_dims
 * is ignored; n_dims must already be in 1..RF_GGUF_MAX_DIMS. */
const char *rf_gguf_tensor_size(uint32_t type, uint32_t n_dims, const int64_t *ne,
                                uint64_t *nbytes);

#endif /* RF_GGUF_IMPL_H */
