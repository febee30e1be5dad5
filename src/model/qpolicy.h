/*
 * qpolicy.h - which type each tensor of a model gets when it is quantized:
 * used by `rocmforge quantize` and `rocmforge synth`.
 *
 * A target is either a plain type (every eligible weight gets exactly that
 * type) or a llama.cpp-style mix (Q4_K_M, ...) that keeps some tensors at
 * higher precision. Eligible weights are tensors of 2 or more dimensions
 * except the MoE router (ffn_gate_inp), which stays F32 as every engine
 * expects. 1-D tensors (norms, biases) stay F32. A weight whose row length
 * is not a multiple of the chosen type's block size falls back to a type
 * that fits (see rf_qpolicy_fallback); the caller reports it.
 */
#ifndef RF_QPOLICY_H
#define RF_QPOLICY_H

#include "quant/quant.h"

typedef struct rf_qtarget {
    const char *name;   /* "Q4_K_M" or a type name */
    rf_type base;       /* type of ordinary weights */
    bool is_mix;
    uint32_t file_type; /* general.file_type (llama_ftype) */
} rf_qtarget;

/* Parses "Q4_K_M", "q4_0", "F16", ... RF_E_NOTFOUND for unknown names,
 * RF_E_UNSUPPORTED for types without a reference quantizer (names them). */
rf_status rf_qtarget_parse(const char *name, rf_qtarget *out, rf_error *err);

/* Lists the accepted target names, one line each, to `f` (for --help). */
void rf_qtarget_list(void *file);

/* The type for tensor `name` of shape ne[0..n_dims) in a model with
 * n_layer blocks. Never returns a type whose block size does not divide
 * ne[0]: *fell_back is set when the preferred type had to be replaced. */
rf_type rf_qpolicy_choose(const rf_qtarget *tgt, const char *name, uint32_t n_dims, const int64_t *ne,
                          int n_layer, bool *fell_back);

/* A type with a quantizer whose block divides ne0, close to `want` in size. */
rf_type rf_qpolicy_fallback(rf_type want, int64_t ne0);

#endif
