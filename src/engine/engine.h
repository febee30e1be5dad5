/*
 * engine.h - a model ready to generate: weights, tokenizer, thread pool,
 * backend and a context with its KV cache, opened together; and
 * single-stream completion (prefill + decode + sampling + streaming text)
 * for the CLI. The server's scheduler drives rf_forward directly to batch
 * many streams; this is the one-sequence path.
 */
#ifndef RF_ENGINE_H
#define RF_ENGINE_H

#include "cpu/cpu.h"
#include "engine/offload.h"
#include "model/model.h"
#include "sample/sample.h"
#include "tokenizer/tokenizer.h"

typedef struct rf_engine_opts {
    const char *model_path;
    int n_threads;      /* 0: physical cores */
    int64_t n_ctx;      /* 0: min(model's training context, 4096) */
    int n_seq;          /* 0: 1 */
    int64_t n_batch;    /* 0: 512 */
    bool progress;      /* progress bar on stderr while the weights are read */
    const char *trace_path; /* per-op Chrome trace written here at close (NULL: none) */
    rf_offload_opts gpu; /* zeroed: --device auto, but see gpu_set */
    bool gpu_set;       /* false: CPU only (callers that parse no --device keep the old behaviour) */
    bool gpu_defer;     /* the engine's own context stays on the CPU; the caller attaches its
                           contexts with rf_engine_attach (serve) */
} rf_engine_opts;

typedef struct rf_engine {
    rf_model *model;
    rf_tokenizer *tok;
    rf_threadpool *tp;
    rf_backend be;
    rf_offload *offload; /* GPU layers (or CPU only); see offload.h */
    rf_ctx *ctx;
    int64_t n_ctx, n_batch;
    int n_threads;
    double load_s;
    /* tokens whose KV each sequence holds (for prefix reuse across turns) */
    int32_t **hist;
    int64_t *n_hist;
    rf_batch_entry *batch;
} rf_engine;

rf_status rf_engine_open(const rf_engine_opts *o, rf_engine **out, rf_error *err);
/* Gives ctx the GPU layers (rf_offload_attach; the first attach places and
 * uploads them), then repacks what the CPU keeps (rf_engine_repack). The
 * order matters: the GPU uploads the file's row layout, so no weight may be
 * repacked before the placement is known. rf_engine_open calls it for its
 * own context unless gpu_defer. */
rf_status rf_engine_attach(rf_engine *e, rf_ctx *ctx, rf_error *err);
/* Rearranges the model's matmul weights into the CPU backend's X16 layout
 * (rf_cpu_backend_repack) when the CPU runs every layer (no GPU offload),
 * the weights are a private copy (not ROCMFORGE_MMAP=1) and ROCMFORGE_REPACK
 * is not 0. Returns the number of tensors repacked. rf_engine_attach calls
 * it; bench, which builds its own context, too. */
int rf_engine_repack(rf_model *m, rf_backend *cpu, const rf_offload *off);
void rf_engine_close(rf_engine *e); /* accepts NULL */

/* Called with each piece of text that is safe to show (complete UTF-8, not
 * part of a stop string). Return false to stop generating. */
typedef bool (*rf_text_cb)(void *ctx, const char *text, size_t len);

typedef struct rf_gen_params {
    rf_sample_params sample;
    int32_t n_predict;          /* max new tokens; < 0: until the context is full */
    const char *const *stops;
    int n_stops;
    int seq;
    volatile int *cancel;       /* optional: set non-zero to stop (e.g. from SIGINT) */
} rf_gen_params;

typedef enum rf_finish { RF_FINISH_STOP, RF_FINISH_LENGTH, RF_FINISH_CANCEL } rf_finish;

typedef struct rf_gen_stats {
    int64_t n_prompt, n_reused, n_gen;
    double prompt_s, gen_s;
    rf_finish finish;
} rf_gen_stats;

/* Generates a continuation of `prompt` in sequence p->seq. The longest
 * prefix of the prompt already in that sequence's cache is reused. */
rf_status rf_engine_complete(rf_engine *e, const int32_t *prompt, size_t n, const rf_gen_params *p,
                             rf_text_cb cb, void *cb_ctx, rf_gen_stats *stats, rf_error *err);

#endif
