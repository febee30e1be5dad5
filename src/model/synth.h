/*
 * synth.h - random-weight models of real shapes ("synth"), written as GGUF.
 *
 * Benchmarks need 1B-8B models on machines where none can be downloaded;
 * speed does not depend on weight values, so we write files with the real
 * tensor names, shapes and metadata of a model family, random weights, and a
 * working tokenizer: a generated SentencePiece-style vocabulary of the real
 * size (specials, 256 byte tokens, unique filler pieces) or one copied from
 * a real GGUF. llama.cpp and our own loader read the result like the real one.
 */
#ifndef RF_SYNTH_H
#define RF_SYNTH_H

#include "core/threadpool.h"
#include "gguf/gguf.h"
#include "model/qpolicy.h"

typedef struct rf_synth_shape {
    const char *name;      /* "llama-3.2-1b" */
    const char *arch;      /* general.architecture: llama, qwen2, qwen3, gemma3 */
    int64_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    int64_t head_dim;      /* 0: n_embd / n_head */
    float rope_base, rope_base_swa, norm_eps;
    bool tied_embd;        /* no output.weight: the embedding is reused */
    bool qkv_bias;         /* qwen2 */
    bool qk_norm;          /* qwen3, gemma3 */
    bool gemma_norms;      /* post-attention / post-ffn norms (gemma2/3) */
    int64_t n_expert, n_expert_used;
    int64_t sliding_window; /* gemma3 local layers */
    float rope_scale_llama3; /* llama 3.x rope scaling factor (0: none) */
} rf_synth_shape;

/* NULL-terminated table of built-in shapes. */
const rf_synth_shape *rf_synth_shapes(size_t *count);
const rf_synth_shape *rf_synth_find_shape(const char *name);

/* Reads a shape from a JSON file with the rf_synth_shape field names
 * ("arch", "n_vocab", ...). `name_buf`/`arch_buf` keep the strings. */
rf_status rf_synth_load_config(const char *path, rf_synth_shape *out, char *name_buf, size_t name_n,
                               char *arch_buf, size_t arch_n, rf_error *err);

typedef struct rf_synth_opts {
    rf_synth_shape shape;
    rf_qtarget target;
    const char *vocab_path;  /* copy tokenizer.* from this GGUF, or NULL */
    const char *out_path;
    uint64_t seed;
    int n_threads;
    int64_t n_layer_override; /* > 0: fewer layers (quick tests of big shapes) */
    int64_t row_pool;         /* > 0: each matrix repeats this many distinct rows (benchmark models:
                                 rf_convert_tensor_pooled); 0: every row drawn */
    bool progress;
} rf_synth_opts;

rf_status rf_synth_write(const rf_synth_opts *o, rf_error *err);

#endif
