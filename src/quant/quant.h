/*
 * quant.h - the GGML tensor type table and the scalar reference
 * (de)quantizers for every type that can appear in a GGUF file.
 *
 * Type ids are the GGUF on-disk ids. Per-type behaviour lives in one table
 * (rf_type_table in types.c) indexed by id; ids that GGML retired (4, 5,
 * 31-33, 36-38) are present but marked invalid so a file naming them is
 * rejected. The scalar code here is the specification that every fast kernel
 * (SIMD, GPU) is tested against, and is itself tested bit for bit against the
 * `gguf` Python package.
 */
#ifndef RF_QUANT_H
#define RF_QUANT_H

#include "../core/core.h"

typedef enum rf_type {
    RF_TYPE_F32     = 0,
    RF_TYPE_F16     = 1,
    RF_TYPE_Q4_0    = 2,
    RF_TYPE_Q4_1    = 3,
    RF_TYPE_Q5_0    = 6,
    RF_TYPE_Q5_1    = 7,
    RF_TYPE_Q8_0    = 8,
    RF_TYPE_Q8_1    = 9,
    RF_TYPE_Q2_K    = 10,
    RF_TYPE_Q3_K    = 11,
    RF_TYPE_Q4_K    = 12,
    RF_TYPE_Q5_K    = 13,
    RF_TYPE_Q6_K    = 14,
    RF_TYPE_Q8_K    = 15,
    RF_TYPE_IQ2_XXS = 16,
    RF_TYPE_IQ2_XS  = 17,
    RF_TYPE_IQ3_XXS = 18,
    RF_TYPE_IQ1_S   = 19,
    RF_TYPE_IQ4_NL  = 20,
    RF_TYPE_IQ3_S   = 21,
    RF_TYPE_IQ2_S   = 22,
    RF_TYPE_IQ4_XS  = 23,
    RF_TYPE_I8      = 24,
    RF_TYPE_I16     = 25,
    RF_TYPE_I32     = 26,
    RF_TYPE_I64     = 27,
    RF_TYPE_F64     = 28,
    RF_TYPE_IQ1_M   = 29,
    RF_TYPE_BF16    = 30,
    RF_TYPE_TQ1_0   = 34,
    RF_TYPE_TQ2_0   = 35,
    RF_TYPE_MXFP4   = 39,
    RF_TYPE_NVFP4   = 40,
    RF_TYPE_Q1_0    = 41,
    RF_TYPE_COUNT   = 42,
} rf_type;

#define RF_QK_K 256

/* Row converters. n is a whole number of blocks (n % blck_size == 0);
 * x and y do not overlap. Quantizers take fresh finite floats. */
typedef void (*rf_to_float_fn)(const void *restrict x, float *restrict y, int64_t n);
typedef void (*rf_from_float_fn)(const float *restrict x, void *restrict y, int64_t n);

typedef struct rf_type_info {
    const char *name;        /* "Q4_K"; NULL for retired ids */
    int64_t blck_size;       /* elements per block */
    size_t type_size;        /* bytes per block */
    bool is_quantized;       /* block-quantized (not a plain int/float type) */
    bool is_float;           /* F32/F16/BF16/F64: can be a quantize source */
    rf_to_float_fn to_float;     /* NULL: integer types (I8..I64) only */
    rf_from_float_fn from_float; /* NULL: no reference quantizer (dequantize-only) */
    float rmse_budget;       /* quantizer error budget: RMSE / RMS(signal) on N(0,1) data */
} rf_type_info;

/* NULL when `t` is not a valid GGUF type id (out of range or retired). */
const rf_type_info *rf_type_get(uint32_t t);
/* Name or "?" for invalid ids. */
const char *rf_type_name(uint32_t t);
/* Case-insensitive lookup of "q4_k", "F16", ... Returns false if unknown. */
bool rf_type_from_name(const char *name, rf_type *out);

/* Bytes of a row of n elements; 0 if n is not a multiple of the block size
 * or the type is invalid. Checked against overflow (returns 0). */
size_t rf_row_size(uint32_t t, int64_t n);

/* Dequantize/quantize a row. RF_E_INVAL for bad n, RF_E_UNSUPPORTED when the
 * type has no converter in that direction. */
rf_status rf_dequantize_row(uint32_t t, const void *src, float *dst, int64_t n);
rf_status rf_quantize_row(uint32_t t, const float *src, void *dst, int64_t n);

#endif /* RF_QUANT_H */
