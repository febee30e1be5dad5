/*
 * convert.h - writing one tensor of a GGUF file in any type from rows of
 * float32, multi-threaded and in bounded memory. Shared by `quantize`
 * (rows come from dequantizing the input) and `synth` (rows are random).
 */
#ifndef RF_CONVERT_H
#define RF_CONVERT_H

#include "core/threadpool.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

/* Fills dst[0..ne0) with row `row` of the source tensor. Called from several
 * threads at once for different rows: must be thread-safe for that. */
typedef void (*rf_row_source_fn)(void *ctx, int64_t row, float *dst);

/* Called after each chunk with the bytes written so far for this tensor. */
typedef void (*rf_convert_progress_fn)(void *ctx, uint64_t done_bytes);

/* Quantizes nrows rows of ne0 elements to `type` and streams them to the
 * writer (rf_gguf_writer_write_data: the tensor must be the writer's next).
 * Memory use is bounded (about 32 MiB of output plus a row per thread),
 * whatever the tensor size. */
rf_status rf_convert_tensor(rf_gguf_writer *w, rf_threadpool *tp, rf_type type, int64_t ne0, int64_t nrows,
                            rf_row_source_fn src, void *src_ctx, rf_convert_progress_fn progress,
                            void *progress_ctx, rf_error *err);

/* The same tensor built from `pool` distinct rows: rows 0..pool-1 of the
 * source are quantized once, and row r of the output is a copy of pool row
 * splitmix64(pick_seed, r) % pool. For benchmark models, whose speed does
 * not depend on the values: the K-quants' fitting is what makes a large
 * random model slow to write. pool >= nrows: rf_convert_tensor. */
rf_status rf_convert_tensor_pooled(rf_gguf_writer *w, rf_threadpool *tp, rf_type type, int64_t ne0, int64_t nrows,
                                   int64_t pool, uint64_t pick_seed, rf_row_source_fn src, void *src_ctx,
                                   rf_convert_progress_fn progress, void *progress_ctx, rf_error *err);

#endif
