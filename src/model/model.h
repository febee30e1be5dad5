/*
 * model.h - a loaded model: hyper-parameters read from GGUF metadata, the
 * weights bound by name (borrowed from the mmapped file), and the batched
 * forward pass over the paged KV cache.
 *
 * Architectures are data (src/model/arch.c): which tensors exist, which
 * norms, activation and rope style. The forward pass (forward.c) is written
 * once; the few lines that differ per family are switched on those flags.
 */
#ifndef RF_MODEL_H
#define RF_MODEL_H

#include "backend/backend.h"
#include "gguf/gguf.h"
#include "kv/kv.h"

typedef struct rf_arch rf_arch;

typedef struct rf_hparams {
    const rf_arch *arch;
    char arch_name[32];
    int64_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train, n_rot;
    float norm_eps;
    float rope_base, rope_base_swa;
    float rope_scale;          /* positions multiplied by this (1 / factor): linear and YaRN */
    bool rope_yarn;            /* YaRN: blend interpolated and extrapolated angles */
    float rope_mscale;         /* cos/sin multiplier: attn_factor (and YaRN's magnitude) */
    int64_t n_ctx_orig;        /* rope.scaling.original_context_length */
    rf_rope_style rope_style;
    rf_act act;
    int64_t n_expert, n_expert_used;
    int expert_gating;         /* 1 softmax, 2 sigmoid */
    bool expert_norm;          /* renormalise the top-k weights */
    int64_t sliding_window;    /* 0: none */
    int swa_pattern;           /* every Nth layer is global (gemma3: 6) */
    float attn_scale;
    float embd_scale;          /* 1, or sqrt(n_embd) for gemma */
} rf_hparams;

/* An expert stack [cols, rows, n_expert]: view of expert e = base + e * stride. */
typedef struct rf_wstack {
    rf_wview w;     /* expert 0 */
    size_t stride;  /* bytes between experts */
} rf_wstack;

typedef struct rf_layer {
    const float *attn_norm, *ffn_norm, *post_attn_norm, *post_ffn_norm, *q_norm, *k_norm;
    rf_wview wq, wk, wv, wo, wqkv;    /* wqkv: fused (phi3), else wq/wk/wv */
    const float *bq, *bk, *bv;
    rf_wview ffn_gate, ffn_up, ffn_down; /* dense FFN; phi3: ffn_up fused [gate|up] */
    rf_wview ffn_gate_inp;               /* MoE router [n_embd, n_expert] */
    rf_wstack gate_exps, up_exps, down_exps;
    bool is_swa;
    float rope_base, rope_scale;
} rf_layer;

typedef struct rf_model {
    rf_gguf *gguf;       /* owned */
    rf_hparams hp;
    rf_wview tok_embd, output;
    const float *output_norm;
    const float *rope_freqs; /* optional [n_rot / 2]: Llama 3 frequency divisors */
    const float *rope_short, *rope_long; /* optional [n_rot / 2]: phi3 long-context factors */
    rf_layer *layers;
    float *converted;    /* owned copies of 1-D tensors stored as F16/BF16 */
} rf_model;

/* Loads a model from a GGUF file: mapped, then the tensor data copied into
 * anonymous huge pages unless ROCMFORGE_MMAP=1 (see rf_gguf_copy_data). Unknown
 * architectures, missing or mis-shaped tensors are RF_E_UNSUPPORTED /
 * RF_E_FORMAT with a message listing what was expected. */
rf_status rf_model_load(const char *path, rf_model **out, rf_error *err);
/* Same from an already open GGUF (takes ownership of g, also on failure). */
rf_status rf_model_from_gguf(rf_gguf *g, rf_model **out, rf_error *err);
void rf_model_free(rf_model *m); /* accepts NULL */

/* ---- the forward pass -------------------------------------------------- */

typedef struct rf_batch_entry {
    int32_t seq;    /* KV sequence slot */
    int32_t pos;    /* position in that sequence */
    int32_t token;
    bool logits;    /* return logits (and hidden state) for this entry */
} rf_batch_entry;

typedef struct rf_ctx rf_ctx;

typedef struct rf_ctx_params {
    int64_t n_ctx;      /* positions per sequence */
    int n_seq;          /* sequence slots */
    int64_t n_batch;    /* max entries per forward call */
    int block_size;     /* KV block size (default 16) */
    int64_t n_kv_blocks; /* 0: enough for n_seq full contexts */
} rf_ctx_params;

/* A context: KV cache and scratch buffers sized once, plus the backend the
 * ops run on (borrowed). */
rf_status rf_ctx_create(const rf_model *m, const rf_ctx_params *p, rf_backend *be, rf_ctx **out, rf_error *err);
void rf_ctx_free(rf_ctx *c);
rf_kv_cache *rf_ctx_kv(rf_ctx *c);
const rf_model *rf_ctx_model(const rf_ctx *c);
/* A test hook for mixture-of-experts models: with gap non-NULL ([n_batch]
 * floats, set by the caller before a forward pass), every layer's routing
 * lowers gap[i] of batch entry i to the gap between its k-th and (k+1)-th
 * router score, over the spread of its scores (0: a tie). NULL: off. */
rf_status rf_ctx_watch_routing(rf_ctx *c, float *gap);

/* Runs one batch. Entries may mix sequences, prefill chunks and decode
 * tokens; within the batch an entry sees every earlier position of its
 * sequence (in the cache or in this batch). Positions are reserved in the KV
 * cache as needed: RF_E_NOMEM when the pool is exhausted (the batch did not
 * run). logits_out: [n_logits][n_vocab] for the entries with logits set, in
 * order; hidden_out (optional): their final normed hidden states [n_embd]. */
rf_status rf_forward(rf_ctx *c, const rf_batch_entry *e, int64_t n, float *logits_out, float *hidden_out,
                     rf_error *err);

/* A buffer for n_rows rows of logits (rf_forward's logits_out), owned by c:
 * valid until rf_ctx_free, or a later call that asks for more rows or
 * comes after a device was attached (rf_ctx_offload).
 * Page-locked when a device computes the head (its results cross the link
 * at full speed), else ordinary memory. NULL: out of memory. */
float *rf_ctx_logits(rf_ctx *c, int64_t n_rows);

/* Hands layers [b->l0, b->l1) of every later forward pass to a device
 * backend (the GPU plugin); the context takes ownership of b->ctx and
 * releases it when freed. At most once per context. */
rf_status rf_ctx_offload(rf_ctx *c, const rf_layers_backend *b, rf_error *err);
/* The device backend of c, NULL if it runs on the CPU only. */
const rf_layers_backend *rf_ctx_device(const rf_ctx *c);
int64_t rf_ctx_n_batch(const rf_ctx *c);

#endif
