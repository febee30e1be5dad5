/*
 * cpu.h - the CPU backend: fills the op table of backend.h with SIMD
 * kernels chosen at start-up from the CPU's features (scalar, AVX2,
 * AVX-512, NEON; see dispatch.c), spread over a persistent thread pool. The
 * reference op table (ops_ref.c: dequantize to float, double-precision dot
 * products) stays available by name for tests and comparisons.
 */
#ifndef RF_CPU_H
#define RF_CPU_H

#include <stdio.h>

#include "backend/backend.h"
#include "core/threadpool.h"

/* Creates a CPU backend running on `tp` (borrowed; must outlive it) with the
 * best kernel set for this CPU, or the one the environment variable
 * ROCMFORGE_CPU names (scalar|avx2|avx512|neon|ref). */
rf_status rf_cpu_backend_create(rf_threadpool *tp, rf_backend *out, rf_error *err);
/* Same with the kernel set `set` ("scalar", "avx2", "avx512", "neon") or
 * "ref" (the reference op table). RF_E_UNSUPPORTED if this CPU cannot run it
 * or it was not compiled in. */
rf_status rf_cpu_backend_create_named(rf_threadpool *tp, const char *set, rf_backend *out, rf_error *err);
void rf_cpu_backend_free(rf_backend *b); /* accepts a zeroed backend */
/* Starts recording every op call of `b` (a fast CPU backend) with its wall
 * time, shape and bytes; the Chrome trace JSON goes to `path` when the
 * backend is freed. The environment variable ROCMFORGE_TRACE=FILE does the
 * same for backends made by rf_cpu_backend_create. RF_E_UNSUPPORTED for the
 * reference op table. */
rf_status rf_cpu_backend_trace(rf_backend *b, const char *path, rf_error *err);
/* Rearranges w's rows in place into the X16 layout (src/cpu/cpu-impl.h)
 * when b's kernel set has kernels for it (AVX-512 and AVX2: Q4_0, Q4_1,
 * Q8_0, Q4_K, Q6_K) and w has at least 16 rows; sets w->layout and returns true. The
 * data must be writable and read by no other backend from then on (b's own
 * get_rows reads the layout). False: w is untouched. */
bool rf_cpu_backend_repack(rf_backend *b, rf_wview *w);
/* Name of the kernel set a CPU backend runs ("avx512", ..., "ref"). */
const char *rf_cpu_backend_isa(const rf_backend *b);

/* Prints the CPU model, detected features, kernel sets and the one chosen
 * (`rocmforge info --cpu`). */
void rf_cpu_print_info(FILE *f);

#endif
