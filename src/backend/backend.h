/*
 * backend.h - the op table every compute backend fills (CPU now, GPU later).
 *
 * The forward pass (src/model/forward.c) is written once against these ops;
 * a backend is a method table plus its private context, in the style of
 * SQLite's mutex methods or ggml's backend interface. Slots marked
 * (optional) may be NULL; `supports` answers per op and weight type, and an
 * op a backend lacks runs on the CPU backend.
 *
 * Shapes: activations are row-major float32 [n_tok][dim]. A weight W of
 * GGUF shape [ne0 = cols, ne1 = rows] maps cols inputs to rows outputs;
 * 3-D expert weights add ne2 = experts.
 */
#ifndef RF_BACKEND_H
#define RF_BACKEND_H

#include "core/core.h"
#include "quant/quant.h"

typedef enum rf_op {
    RF_OP_MATMUL,
    RF_OP_RMSNORM,
    RF_OP_ROPE,
    RF_OP_ATTENTION,
    RF_OP_GLU,
    RF_OP_GET_ROWS,
    RF_OP_COUNT,
} rf_op;

/* A weight matrix view: borrowed from the model's mapping. */
typedef struct rf_wview {
    const void *data;
    uint32_t type;
    int64_t cols, rows; /* ne0, ne1 */
    size_t row_bytes;
    uint32_t layout;    /* RF_WLAYOUT_*: how the rows' bytes are arranged */
} rf_wview;

/* Weight layouts. ROWS: the file's, row after row. X16: a backend rearranged
 * the rows in place at load (the CPU backend's 16-row interleave, see
 * src/cpu/cpu-impl.h); the same bytes, so only the backend that made it
 * reads it. */
enum { RF_WLAYOUT_ROWS = 0, RF_WLAYOUT_X16 = 1 };

typedef enum rf_rope_style {
    RF_ROPE_NORMAL = 0, /* rotate adjacent pairs (x[2i], x[2i+1]) - llama */
    RF_ROPE_NEOX = 1,   /* rotate (x[i], x[i + n_rot/2]) - qwen, gemma, phi3 */
} rf_rope_style;

typedef struct rf_rope_params {
    rf_rope_style style;
    int64_t n_rot;          /* rotated dims per head (<= head_dim) */
    float base;             /* theta base */
    float pos_scale;        /* linear scaling: position multiplied by this (1/factor) */
    const float *freq_div;  /* optional [n_rot/2] per-frequency divisors (Llama 3 rope_freqs) */
} rf_rope_params;

typedef enum rf_act { RF_ACT_SILU = 0, RF_ACT_GELU_TANH = 1 } rf_act;

/* One batched attention call over the paged KV cache. For token t and
 * head h: q[t][h*hd..], keys/values of kv head h / (n_head / n_head_kv) at
 * positions [lo_t, pos_t] of sequence seq_t, softmax(q.k * scale), sum v. */
typedef struct rf_attn_args {
    const float *q;        /* [n_tok][n_head * head_dim] */
    float *out;            /* [n_tok][n_head * head_dim] */
    int64_t n_tok, n_head, n_head_kv, head_dim;
    float scale;
    int64_t window;        /* > 0: sliding window (attend to the last `window` positions) */
    const int32_t *pos;    /* [n_tok] */
    const int32_t *seq;    /* [n_tok] sequence slot of each token */
    /* KV access, layer-resolved by the caller: */
    const struct rf_kv_cache *kv;
    int layer;
} rf_attn_args;

typedef struct rf_backend_ops {
    const char *name;
    bool (*supports)(void *ctx, rf_op op, uint32_t type);
    /* y[t][r] = sum_c W[r][c] * x[t][c]; x [n_tok][cols], y [n_tok][rows]. */
    void (*matmul)(void *ctx, const rf_wview *w, const float *x, float *y, int64_t n_tok);
    /* y = x / rms(x) * w per row of dim; y may equal x. w may be NULL (no scale). */
    void (*rmsnorm)(void *ctx, const float *x, const float *w, float *y, int64_t n_rows, int64_t dim, float eps);
    /* In place on x [n_tok][n_heads * head_dim]. */
    void (*rope)(void *ctx, float *x, const int32_t *pos, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                 const rf_rope_params *p);
    void (*attention)(void *ctx, const rf_attn_args *a);
    /* out[i] = act(gate[i]) * up[i]; out may alias gate. */
    void (*glu)(void *ctx, rf_act act, const float *gate, const float *up, float *out, int64_t n);
    /* out[t] = dequantized row ids[t] of w. */
    void (*get_rows)(void *ctx, const rf_wview *w, const int32_t *ids, int64_t n, float *out);
} rf_backend_ops;

typedef struct rf_backend {
    const rf_backend_ops *ops;
    void *ctx;
} rf_backend;

/* ---- whole layers on a device -------------------------------------------
 * A device backend (the GPU plugin, src/gpu/gpu.h) runs a contiguous range
 * of layers with the activations resident on the device: the forward pass
 * hands it the residual stream once before the range and takes it back once
 * after (one crossing each way per CPU/GPU boundary). The device keeps its
 * own copy of the KV cache of its layers, in the host cache's paged layout
 * and block ids, so the host's block tables address both. */
typedef struct rf_layer_step {
    int64_t n;                /* entries in the batch */
    const int32_t *pos, *seq; /* [n] host */
    const int32_t *tables;    /* host [n_seq][max_blocks_per_seq] block ids of the KV cache */
    int64_t max_pos;          /* max over pos */
    const float *rope_cs[2];  /* [n][n_rot] (cos, sin) for full / sliding-window layers */
    /* The head (final norm + output matrix), for a backend whose range ends
     * at the last layer and that holds the head (rf_layers_backend.head):
     * the normed hidden states of rows out_rows[0..n_out) go to hidden (if
     * not NULL) and their logits to logits (if not NULL), host
     * [n_out][n_embd] and [n_out][n_vocab]; x is then left unspecified. */
    const int32_t *out_rows;
    int64_t n_out;
    float *hidden, *logits;
} rf_layer_step;

typedef struct rf_layers_ops {
    const char *name;
    /* x: host [n][n_embd], the residual stream entering layer l0; on return
     * it holds the stream leaving layer l1 - 1. */
    rf_status (*forward)(void *ctx, const rf_layer_step *s, float *x, rf_error *err);
    /* Frees ctx (the context that took the backend calls it when freed). */
    void (*release)(void *ctx);
    /* Optional: page-locked host memory of `bytes` for results the device
     * copies back (rf_ctx_logits), or NULL where it has none to give; such a
     * copy runs at the link's speed, one into pageable memory goes through
     * the driver's bounce buffer. Freed by host_free, before release. */
    void *(*host_alloc)(void *ctx, size_t bytes);
    void (*host_free)(void *ctx, void *p);
} rf_layers_ops;

typedef struct rf_layers_backend {
    const rf_layers_ops *ops;
    void *ctx;
    int l0, l1; /* layers [l0, l1) */
    bool head;  /* forward also computes the head (l1 == n_layer) */
} rf_layers_backend;

#endif
