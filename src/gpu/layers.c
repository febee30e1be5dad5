/*
 * layers.c - whole layers on the device: the weights of a layer range
 * uploaded once (rf_gpu_weights), a context's device state (rf_gpu_layers:
 * the KV cache of those layers in the host cache's paged layout, scratch
 * activations sized for n_batch), and the layer-range forward pass that
 * src/model/forward.c calls through rf_layers_ops. The sequence of ops is
 * the CPU's (forward.c attention_block / ffn_block), each op a kernel of
 * src/gpu/kernels/kernels.h on the device's one stream; the residual
 * stream crosses the bus once in and once out per call.
 *
 * Graphs: a small batch (decode) is captured once as a graph of every
 * kernel of the pass and replayed, which removes the per-launch cost that
 * dominates decode (hundreds of small launches per token). The key of a
 * graph is what its launch parameters bake in: the batch size, the rows
 * whose logits are wanted, and max_pos rounded up to a power of two (an
 * upper bound is all attention needs); the copies in and out stay outside
 * the graph. Up to GRAPH_CACHE graphs are kept, the least recently used
 * replaced: a sequence that grows from position 0 meets a new bound at
 * every power of two, and each new request starts short again, so one
 * graph alone was captured anew at each of them. ROCMFORGE_GPU_GRAPHS=0
 * turns graphs off; ROCMFORGE_GPU_GRAPH_CACHE=N keeps N (1..GRAPH_CACHE).
 *
 * Placement policy lives in the binary (src/engine/offload.c); this file
 * answers what a layer needs (layer_supported, layer_weight_bytes,
 * ctx_scratch_bytes) and does what it is told.
 */
#include <stdlib.h>
#include <string.h>

#include "gpu-impl.h"

/* A weight on the device. */
typedef struct dw {
    const void *d;
    uint32_t type;
    int64_t cols, rows;
    size_t row_bytes;
} dw;

typedef struct dlayer {
    const rf_layer *src;
    dw wq, wk, wv, wo, wqkv, gate, up, down;
    dw router, xg, xu, xd;  /* MoE: the router and the expert stacks (expert 0's view) */
    size_t xstride[3];      /* bytes between experts of xg, xu, xd */
    dw qkv_cat, gu_cat; /* q|k|v and gate|up back to back (d NULL when not) */
    dw qk_cat;          /* q|k back to back where v's type differs (Q4_K_M's Q6_K v), else d NULL */
    const float *attn_norm, *ffn_norm, *post_attn_norm, *post_ffn_norm, *q_norm, *k_norm, *bq, *bk, *bv;
} dlayer;

struct rf_gpu_weights {
    rf_gpu *g;
    const rf_model *m;
    int l0, l1;
    bool head;           /* output norm + output matrix uploaded */
    rfg_arena ar;
    dlayer *ly;          /* [l1 - l0] */
    dw output;
    const float *output_norm;
};

#define HEAD_ROWS 64 /* logits rows computed per head chunk */
/* The logits go back to the host in HEAD_PARTS parts of the vocabulary,
 * each copied on a second stream while the next part is computed
 * (head_download), where a chunk's logits take at least HEAD_SPLIT_BYTES:
 * 32 rows of a 128k vocabulary are 16.4 MB, some 0.3 ms over PCIe 5 that
 * followed the whole head before (H100, 32 sequences: +3%, PERF). */
#define HEAD_PARTS 4
#define HEAD_SPLIT_BYTES (2u << 20)

/* What a decode graph bakes in (see the top of the file). */
typedef struct gkey {
    int64_t n, n_out, max_pos, n_seq;
    bool swa_cs, logits;
} gkey;

#define GRAPH_CACHE 16 /* decode graphs kept (bounds 1 .. 2^15, or two batch sizes' worth) */

struct rf_gpu_layers {
    rf_gpu_weights *w;
    rf_gpu *g;
    rf_kv_config kc;
    int64_t B, ffw;
    rfg_arena ar;
    uint16_t *kv;        /* [n_layers][k|v][n_blocks][block_size][kv_dim] */
    size_t kv_layer;     /* uint16 per layer and k|v */
    float *x, *xb, *q, *k, *v, *att, *tmp, *gate, *up, *qkv, *cs[2], *hid, *logits;
    float *bias;         /* [n_batch][max(q, kv width)]: a bias replicated per row (add_bias) */
    int32_t *pos, *seq, *tables;
    int *ticket;           /* the fused norm's (rfk_mv_norm.ticket): zeroed once, left 0 by each call */
    void *mm_scratch;
    size_t mm_scratch_bytes;
    int64_t mv_max_n;      /* largest mat-vec batch (MV_MAX_N_DEFAULT) */
    bool fuse_norm;        /* one-token steps: each norm inside its mat-vec (rfk_matmul_norm) */
    bool fuse_rope;        /* one token a sequence: RoPE + KV store inside the attention (rfk_attn_args.k_new) */
    uint16_t *f16w, *f16x; /* BLAS prefill: a dequantized weight, the batch's activations */
    int64_t f16w_elems, f16x_cols;
    void *attn_scratch;  /* split-key decode attention (rfk_attention_scratch_bytes) */
    size_t attn_scratch_bytes;
    /* the decode graphs and their keys (see the top of the file) */
    bool graphs;
    int n_graphs;        /* slots in use of gcache: 1..GRAPH_CACHE */
    struct {
        rfg_graph_exec exec; /* NULL: empty */
        gkey key;
        uint64_t used;       /* gclock at the last launch */
    } gcache[GRAPH_CACHE];
    uint64_t gclock;
    int64_t n_seq;       /* this step's distinct sequences: picks the prefill attention */
    uint8_t *seen;       /* [kc.n_seq] scratch of that count */
    /* MoE: router logits [B][n_expert], each token's k experts and weights,
     * the experts' down outputs [B * k][n_embd] (gate and up use L->gate) */
    float *router, *selw, *de;
    int32_t *sel;
    /* the logits' copy stream (NULL: the copy follows the whole head on
     * the main stream), a part's logits computed, the copies done */
    rfg_stream side;
    rfg_event part_done[HEAD_PARTS], copied;
};

#define GRAPH_MAX_N 64 /* batches up to this size are captured */
/* Batches up to this size (ROCMFORGE_GPU_MV_MAX_N, 1..64) run on q8
 * activations: the mat-vec kernels (one launch per 8 tokens, each reading
 * the weights once) or, from 8 tokens on, the int8 matrix-product kernel
 * (one launch) where every weight's type has it; larger ones the vendor
 * BLAS GEMM (or the plugin's tiled kernel without it). */
#define MV_MAX_N_DEFAULT 16 /* H200, 8B Q4_0, 32 sequences: BLAS 1774 t/s, 4 mat-vec launches 1134 */
#define MV_MAX_N_MMQ 64     /* every weight has the int8 matrix-product kernel */
#define MV_MAX_N_LIMIT 64 /* kernels.h: the mat-vec's n_tok <= 64 */

/* ---- what a layer needs -------------------------------------------------- */

static bool wsup(const rf_wview *w) { return !w->data || rfk_matmul_supports(w->type); }
/* in the file's row layout: the kernels read no backend's rearrangement */
static bool wrows(const rf_wview *w) { return !w->data || w->layout == RF_WLAYOUT_ROWS; }

bool rfg_layer_supported(rf_gpu *g, const rf_model *m, int il, const char **why) {
    const rf_hparams *hp = &m->hp;
    const rf_layer *ly = &m->layers[il];
    *why = NULL;
    if (hp->head_dim > 256 || hp->head_dim % 2) { *why = "head_dim > 256 or odd (attention kernel)"; return false; }
    const rf_wview *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->wqkv, &ly->ffn_gate, &ly->ffn_up, &ly->ffn_down,
                            &ly->ffn_gate_inp, &ly->gate_exps.w, &ly->up_exps.w, &ly->down_exps.w};
    for (size_t i = 0; i < RF_ARRAY_LEN(ws); i++)
        if (!wsup(ws[i])) { *why = "a weight type has no GPU matmul kernel"; return false; }
    for (size_t i = 0; i < RF_ARRAY_LEN(ws); i++)
        if (!wrows(ws[i])) { *why = "its weights were rearranged for the CPU (X16 layout) before placement"; return false; }
    if (hp->n_expert) {
        const rf_wstack *xs[] = {&ly->gate_exps, &ly->up_exps, &ly->down_exps};
        if (!ly->ffn_gate_inp.data || !ly->gate_exps.w.data || !ly->up_exps.w.data || !ly->down_exps.w.data) {
            *why = "missing expert weights";
            return false;
        }
        if (hp->n_expert > RFK_MOE_MAX_EXPERTS || hp->n_expert_used < 1 || hp->n_expert_used > RFK_MOE_MAX_K) {
            *why = "more experts than the GPU routing takes (1024, 16 a token)";
            return false;
        }
        for (size_t i = 0; i < RF_ARRAY_LEN(xs); i++)
            if (xs[i]->stride % 16 || xs[i]->w.cols % 32) { *why = "expert matrices not 16-byte aligned"; return false; }
        if (!ly->wo.data) { *why = "missing weights"; return false; }
    } else if (!ly->wo.data || !ly->ffn_up.data || !ly->ffn_down.data) {
        *why = "missing weights";
        return false;
    }
    (void)g;
    return true;
}

static uint64_t wbytes(const rf_wview *w) { return w->data ? (uint64_t)w->rows * w->row_bytes : 0; }
static uint64_t al(uint64_t n) { return (n + 255) & ~(uint64_t)255; }

uint64_t rfg_layer_weight_bytes(rf_gpu *g, const rf_model *m, int il) {
    const rf_hparams *hp = &m->hp;
    const rf_layer *ly = &m->layers[il];
    uint64_t E = (uint64_t)hp->n_embd, hd = (uint64_t)hp->head_dim, qd = (uint64_t)(hp->n_head * hp->head_dim),
             kvd = (uint64_t)(hp->n_head_kv * hp->head_dim);
    const rf_wview *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->wqkv, &ly->ffn_gate, &ly->ffn_up, &ly->ffn_down};
    uint64_t n = 0;
    for (size_t i = 0; i < RF_ARRAY_LEN(ws); i++) n += al(wbytes(ws[i]));
    if (hp->n_expert) {
        const rf_wstack *xs[] = {&ly->gate_exps, &ly->up_exps, &ly->down_exps};
        for (size_t i = 0; i < RF_ARRAY_LEN(xs); i++) n += al((uint64_t)hp->n_expert * xs[i]->stride);
        n += al(wbytes(&ly->ffn_gate_inp));
    }
    const float *vs[] = {ly->attn_norm, ly->ffn_norm, ly->post_attn_norm, ly->post_ffn_norm};
    for (size_t i = 0; i < RF_ARRAY_LEN(vs); i++) n += vs[i] ? al(E * 4) : 0;
    n += (ly->q_norm ? al(hd * 4) : 0) + (ly->k_norm ? al(hd * 4) : 0);
    n += (ly->bq ? al(qd * 4) : 0) + (ly->bk ? al(kvd * 4) : 0) + (ly->bv ? al(kvd * 4) : 0);
    (void)g;
    return n;
}

static int64_t max_ff(const rf_model *m, int l0, int l1) {
    int64_t ff = m->hp.n_ff;
    for (int il = l0; il < l1; il++) {
        const rf_layer *ly = &m->layers[il];
        if (ly->ffn_down.cols > ff) ff = ly->ffn_down.cols;
    }
    return ff;
}

/* Floats per batch entry of L->gate: gate and up side by side, or for MoE
 * the k chosen experts' gate and up outputs. */
static int64_t ff_width(const rf_model *m, int l0, int l1) {
    int64_t w = 2 * max_ff(m, l0, l1);
    for (int il = l0; il < l1 && m->hp.n_expert; il++) {
        const int64_t x = 2 * m->hp.n_expert_used * m->layers[il].gate_exps.w.rows;
        if (x > w) w = x;
    }
    return w;
}

/* Matmul scratch for every weight of the range (and the head) at n_tok. */
static size_t mm_scratch(const rf_model *m, int l0, int l1, bool head, int64_t n_tok) {
    size_t mx = 0;
    for (int il = l0; il < l1; il++) {
        const rf_layer *ly = &m->layers[il];
        const rf_wview *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->wqkv, &ly->ffn_gate, &ly->ffn_up, &ly->ffn_down,
                                &ly->ffn_gate_inp};
        for (size_t i = 0; i < RF_ARRAY_LEN(ws); i++) {
            if (!ws[i]->data) continue;
            size_t s = rfk_matmul_scratch_bytes(ws[i]->type, ws[i]->cols, n_tok);
            if (s > mx) mx = s;
        }
    }
    if (head) {
        size_t s = rfk_matmul_scratch_bytes(m->output.type, m->output.cols, n_tok < HEAD_ROWS ? n_tok : HEAD_ROWS);
        if (s > mx) mx = s;
    }
    return mx;
}

static int64_t mv_max_n(const rf_model *m, int l0, int l1, bool head) {
    const char *e = getenv("ROCMFORGE_GPU_MV_MAX_N");
    if (e) {
        long v = strtol(e, NULL, 10);
        return v < 1 ? 1 : v > MV_MAX_N_LIMIT ? MV_MAX_N_LIMIT : v;
    }
    bool all = !head || rfk_matmul_mmq(m->output.type);
    for (int il = l0; il < l1 && all; il++) {
        const rf_layer *ly = &m->layers[il];
        const rf_wview *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->wqkv, &ly->ffn_gate, &ly->ffn_up, &ly->ffn_down};
        for (size_t i = 0; i < RF_ARRAY_LEN(ws); i++) all = all && (!ws[i]->data || rfk_matmul_mmq(ws[i]->type));
    }
    return all ? MV_MAX_N_MMQ : MV_MAX_N_DEFAULT;
}

/* The BLAS prefill's float16 buffers: the largest layer weight of the
 * range dequantized, and n_batch rows of the widest input. None without
 * the library or for batches that never pass mv_max_n. The head's
 * matrix is not among them: its batches are at most HEAD_ROWS rows and run
 * on the plugin's kernels. */
static void f16_sizes(rf_gpu_layers *L, const rf_model *m, int l0, int l1) {
    L->f16w_elems = L->f16x_cols = 0;
    if (!L->g->blas || L->B <= L->mv_max_n) return;
    for (int il = l0; il < l1; il++) {
        const rf_layer *ly = &m->layers[il];
        const rf_wview *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->wqkv, &ly->ffn_gate, &ly->ffn_up, &ly->ffn_down};
        for (size_t i = 0; i < RF_ARRAY_LEN(ws); i++) {
            if (!ws[i]->data) continue;
            if (ws[i]->rows * ws[i]->cols > L->f16w_elems) L->f16w_elems = ws[i]->rows * ws[i]->cols;
            if (ws[i]->cols > L->f16x_cols) L->f16x_cols = ws[i]->cols;
        }
    }
}

/* Carves (or, with a NULL arena base, sizes) a context's device state. */
static void carve_layers(rf_gpu_layers *L, const rf_model *m) {
    const rf_hparams *hp = &m->hp;
    rfg_arena *a = &L->ar;
    int64_t B = L->B, E = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    int nl = L->w->l1 - L->w->l0;
    L->kv_layer = (size_t)L->kc.n_blocks * (size_t)L->kc.block_size * (size_t)L->kc.kv_dim;
    L->kv = rfg_arena_take(a, (size_t)nl * 2 * L->kv_layer * sizeof(uint16_t));
#define F(p, n) (p) = rfg_arena_take(a, (size_t)(n) * sizeof *(p))
    F(L->x, B * E); F(L->xb, B * E); F(L->tmp, B * E);
    F(L->q, B * qd); F(L->att, B * qd); F(L->k, B * kvd); F(L->v, B * kvd);
    F(L->qkv, B * (qd + 2 * kvd));
    F(L->bias, B * (qd > kvd ? qd : kvd));
    F(L->gate, B * L->ffw); F(L->up, B * L->ffw);
    F(L->cs[0], B * hp->n_rot); F(L->cs[1], B * hp->n_rot);
    F(L->pos, B); F(L->seq, B); F(L->ticket, 4);
    F(L->tables, (int64_t)L->kc.n_seq * L->kc.max_blocks_per_seq);
    if (hp->n_expert) {
        const int64_t k = hp->n_expert_used;
        F(L->router, B * hp->n_expert); F(L->sel, B * k); F(L->selw, B * k); F(L->de, B * k * E);
    }
    if (L->w->head) {
        int64_t h = B < HEAD_ROWS ? B : HEAD_ROWS;
        F(L->hid, B * E);
        F(L->logits, h * hp->n_vocab);
    }
#undef F
    L->mm_scratch = L->mm_scratch_bytes ? rfg_arena_take(a, L->mm_scratch_bytes) : NULL;
    L->f16w = L->f16w_elems ? rfg_arena_take(a, (size_t)L->f16w_elems * sizeof(uint16_t)) : NULL;
    L->f16x = L->f16x_cols ? rfg_arena_take(a, (size_t)(B * L->f16x_cols) * sizeof(uint16_t)) : NULL;
    L->attn_scratch_bytes = rfk_attention_scratch_bytes(hp->head_dim);
    L->attn_scratch = L->attn_scratch_bytes ? rfg_arena_take(a, L->attn_scratch_bytes) : NULL;
}

uint64_t rfg_ctx_scratch_bytes(rf_gpu *g, const rf_model *m, int64_t n_batch) {
    rf_gpu_weights w = {.g = g, .m = m, .l0 = 0, .l1 = 0, .head = true};
    rf_gpu_layers L = {.w = &w, .g = g, .B = n_batch, .ffw = ff_width(m, 0, (int)m->hp.n_layer), .mv_max_n = mv_max_n(m, 0, (int)m->hp.n_layer, true)};
    L.kc.n_seq = 1;
    L.mm_scratch_bytes = mm_scratch(m, 0, (int)m->hp.n_layer, true, n_batch);
    f16_sizes(&L, m, 0, (int)m->hp.n_layer);
    carve_layers(&L, m);
    return L.ar.used;
}

/* ---- weights ------------------------------------------------------------- */

static rf_status up_bytes(rf_gpu_weights *W, const void *src, size_t n, const void **dst, rf_error *err) {
    *dst = NULL;
    if (!src || !n) return RF_OK;
    void *d = rfg_arena_take(&W->ar, n);
    if (!W->ar.base) return RF_OK;
    rfg_error e = rfg_memcpy_h2d(d, src, n);
    if (e != rfg_success) return rfg_err(err, RF_E_IO, "%s: uploading weights: %s", RFG_VENDOR, rfg_get_error_string(e));
    *dst = d;
    return RF_OK;
}

static rf_status up_w(rf_gpu_weights *W, const rf_wview *w, dw *out, rf_error *err) {
    *out = (dw){NULL, w->type, w->cols, w->rows, w->row_bytes};
    return up_bytes(W, w->data, (size_t)wbytes(w), &out->d, err);
}

static rf_status up_v(rf_gpu_weights *W, const float *v, int64_t n, const float **out, rf_error *err) {
    const void *d = NULL;
    rf_status st = up_bytes(W, v, v ? (size_t)n * sizeof(float) : 0, &d, err);
    *out = d;
    return st;
}

/* Whether matrices src[0..n) can be one product: present, one type and
 * row shape, each a whole number of 16-byte vectors. */
static bool cat_ok(const rf_wview *const *src, int n) {
    for (int i = 0; i < n; i++) {
        const rf_wview *w = src[i];
        if (!w->data || w->type != src[0]->type || w->cols != src[0]->cols || w->row_bytes != src[0]->row_bytes ||
            wbytes(w) % 16)
            return false;
    }
    return true;
}

/* q|k|v (or q|k, gate|up) uploaded back to back, so that one mat-vec
 * launch reads them as one weight (*cat) with its output split per part,
 * where cat_ok. Otherwise each is uploaded alone and cat->d stays NULL. */
static rf_status up_cat(rf_gpu_weights *W, const rf_wview *const *src, dw *const *dst, int n, dw *cat, rf_error *err) {
    *cat = (dw){0};
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += wbytes(src[i]);
    if (!cat_ok(src, n)) {
        for (int i = 0; i < n; i++) {
            rf_status st = up_w(W, src[i], dst[i], err);
            if (st != RF_OK) return st;
        }
        return RF_OK;
    }
    uint8_t *base = rfg_arena_take(&W->ar, total);
    size_t off = 0;
    int64_t rows = 0;
    for (int i = 0; i < n; i++) {
        const rf_wview *w = src[i];
        *dst[i] = (dw){base ? base + off : NULL, w->type, w->cols, w->rows, w->row_bytes};
        if (base) {
            rfg_error e = rfg_memcpy_h2d(base + off, w->data, (size_t)wbytes(w));
            if (e != rfg_success)
                return rfg_err(err, RF_E_IO, "%s: uploading weights: %s", RFG_VENDOR, rfg_get_error_string(e));
        }
        off += (size_t)wbytes(w);
        rows += w->rows;
    }
    *cat = (dw){base, src[0]->type, src[0]->cols, rows, src[0]->row_bytes};
    return RF_OK;
}

/* Sizing pass (arena base NULL) or upload pass: the same walk twice. */
static rf_status upload_all(rf_gpu_weights *W, rf_error *err) {
    const rf_model *m = W->m;
    const rf_hparams *hp = &m->hp;
    int64_t E = hp->n_embd, hd = hp->head_dim, qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
    rf_status st = RF_OK;
#define T(x) if ((st = (x)) != RF_OK) return st
    for (int il = W->l0; il < W->l1; il++) {
        const rf_layer *ly = &m->layers[il];
        dlayer *d = &W->ly[il - W->l0];
        d->src = ly;
        const rf_wview *qkv[] = {&ly->wq, &ly->wk, &ly->wv}, *gu[] = {&ly->ffn_gate, &ly->ffn_up};
        dw *dqkv[] = {&d->wq, &d->wk, &d->wv}, *dgu[] = {&d->gate, &d->up};
        if (cat_ok(qkv, 3)) {
            T(up_cat(W, qkv, dqkv, 3, &d->qkv_cat, err));
        } else { /* v of another type: q|k one product where they agree */
            T(up_cat(W, qkv, dqkv, 2, &d->qk_cat, err));
            T(up_w(W, &ly->wv, &d->wv, err));
        }
        T(up_w(W, &ly->wo, &d->wo, err)); T(up_w(W, &ly->wqkv, &d->wqkv, err));
        T(up_cat(W, gu, dgu, 2, &d->gu_cat, err));
        T(up_w(W, &ly->ffn_down, &d->down, err));
        if (hp->n_expert) {
            const rf_wstack *xs[] = {&ly->gate_exps, &ly->up_exps, &ly->down_exps};
            dw *dx[] = {&d->xg, &d->xu, &d->xd};
            for (int i = 0; i < 3; i++) {
                *dx[i] = (dw){NULL, xs[i]->w.type, xs[i]->w.cols, xs[i]->w.rows, xs[i]->w.row_bytes};
                d->xstride[i] = xs[i]->stride;
                T(up_bytes(W, xs[i]->w.data, (size_t)hp->n_expert * xs[i]->stride, &dx[i]->d, err));
            }
            T(up_w(W, &ly->ffn_gate_inp, &d->router, err));
        }
        T(up_v(W, ly->attn_norm, E, &d->attn_norm, err)); T(up_v(W, ly->ffn_norm, E, &d->ffn_norm, err));
        T(up_v(W, ly->post_attn_norm, E, &d->post_attn_norm, err));
        T(up_v(W, ly->post_ffn_norm, E, &d->post_ffn_norm, err));
        T(up_v(W, ly->q_norm, hd, &d->q_norm, err)); T(up_v(W, ly->k_norm, hd, &d->k_norm, err));
        T(up_v(W, ly->bq, qd, &d->bq, err)); T(up_v(W, ly->bk, kvd, &d->bk, err)); T(up_v(W, ly->bv, kvd, &d->bv, err));
    }
    if (W->head) {
        T(up_w(W, &m->output, &W->output, err));
        T(up_v(W, m->output_norm, E, &W->output_norm, err));
    }
#undef T
    return RF_OK;
}

rf_status rfg_weights_create(rf_gpu *g, const rf_model *m, int l0, int l1, rf_gpu_weights **out, rf_error *err) {
    *out = NULL;
    if (l0 < 0 || l1 > m->hp.n_layer || l0 >= l1) return rfg_err(err, RF_E_INVAL, "gpu: bad layer range [%d, %d)", l0, l1);
    for (int il = l0; il < l1; il++) {
        const char *why;
        if (!rfg_layer_supported(g, m, il, &why)) return rfg_err(err, RF_E_UNSUPPORTED, "gpu: layer %d: %s", il, why);
    }
    rf_gpu_weights *W = calloc(1, sizeof *W);
    if (!W) return rfg_err(err, RF_E_NOMEM, "out of memory");
    W->g = g;
    W->m = m;
    W->l0 = l0;
    W->l1 = l1;
    W->head = l1 == m->hp.n_layer && rfk_matmul_supports(m->output.type) && wrows(&m->output) && m->output_norm;
    W->ly = calloc((size_t)(l1 - l0), sizeof *W->ly);
    if (!W->ly) { free(W); return rfg_err(err, RF_E_NOMEM, "out of memory"); }
    rf_status st = upload_all(W, err); /* sizing */
    if (st != RF_OK) { rfg_weights_free(W); return st; }
    W->ar.size = W->ar.used;
    W->ar.used = 0;
    rfg_error e = rfg_malloc((void **)&W->ar.base, W->ar.size);
    if (e != rfg_success) {
        size_t n = W->ar.size;
        W->ar.base = NULL;
        rfg_weights_free(W);
        return rfg_err(err, RF_E_NOMEM, "%s device %d \"%s\": cannot allocate %.1f MiB for layers %d..%d: %s", RFG_VENDOR,
                       g->device, g->info.name, (double)n / 1048576.0, l0, l1 - 1, rfg_get_error_string(e));
    }
    if ((st = upload_all(W, err)) != RF_OK) { rfg_weights_free(W); return st; }
    *out = W;
    return RF_OK;
}

void rfg_weights_free(rf_gpu_weights *W) {
    if (!W) return;
    if (W->ar.base) rfg_free(W->ar.base);
    free(W->ly);
    free(W);
}

/* ---- a context's device state --------------------------------------------- */

static const rf_layers_ops layers_ops;

/* A switch for comparisons: on unless the variable starts with '0'. */
static bool env_on(const char *name) {
    const char *e = getenv(name);
    return !(e && e[0] == '0');
}

/* A switch for comparisons: off unless the variable starts with '1'. */
static bool env_set(const char *name) {
    const char *e = getenv(name);
    return e && e[0] == '1';
}

static void side_free(rf_gpu_layers *L) {
    for (int i = 0; i < HEAD_PARTS; i++)
        if (L->part_done[i]) rfg_event_destroy(L->part_done[i]), L->part_done[i] = NULL;
    if (L->copied) rfg_event_destroy(L->copied), L->copied = NULL;
    if (L->side) rfg_stream_destroy(L->side), L->side = NULL;
}

rf_status rfg_layers_create(rf_gpu_weights *W, const rf_kv_config *kc, int64_t n_batch, rf_layers_backend *out,
                            rf_error *err) {
    memset(out, 0, sizeof *out);
    const rf_hparams *hp = &W->m->hp;
    if (kc->kv_dim != hp->n_head_kv * hp->head_dim)
        return rfg_err(err, RF_E_INVAL, "gpu: KV row of %lld values, the model needs %lld", (long long)kc->kv_dim,
                       (long long)(hp->n_head_kv * hp->head_dim));
    rf_gpu_layers *L = calloc(1, sizeof *L);
    if (!L) return rfg_err(err, RF_E_NOMEM, "out of memory");
    L->w = W;
    L->g = W->g;
    L->kc = *kc;
    L->B = n_batch;
    L->ffw = ff_width(W->m, W->l0, W->l1);
    L->mv_max_n = mv_max_n(W->m, W->l0, W->l1, W->head);
    /* the norm inside the mat-vec: opt-in (1). Since the mat-vecs launch early,
     * the separate add + norm launch lets their weight fetch overlap the norm,
     * while each fused block re-reads x, delta and the norm weight (PERF) */
    L->fuse_norm = env_set("ROCMFORGE_GPU_FUSE_NORM");
    L->fuse_rope = env_on("ROCMFORGE_GPU_FUSE_ROPE"); /* 0: the RoPE + KV store launch apart, for comparison */
    L->seen = calloc((size_t)(kc->n_seq > 0 ? kc->n_seq : 1), 1);
    if (!L->seen) {
        free(L);
        return rfg_err(err, RF_E_NOMEM, "out of memory");
    }
    L->mm_scratch_bytes = mm_scratch(W->m, W->l0, W->l1, W->head, n_batch);
    f16_sizes(L, W->m, W->l0, W->l1);
    carve_layers(L, W->m); /* sizing */
    L->ar.size = L->ar.used;
    L->ar.used = 0;
    rfg_error e = rfg_malloc((void **)&L->ar.base, L->ar.size);
    if (e != rfg_success) {
        size_t n = L->ar.size;
        free(L->seen);
        free(L);
        return rfg_err(err, RF_E_NOMEM, "%s device %d \"%s\": cannot allocate %.1f MiB for the KV cache and scratch: %s",
                       RFG_VENDOR, W->g->device, W->g->info.name, (double)n / 1048576.0, rfg_get_error_string(e));
    }
    carve_layers(L, W->m);
    const char *gv = getenv("ROCMFORGE_GPU_GRAPHS");
    L->graphs = !(gv && strcmp(gv, "0") == 0);
    const char *gc = getenv("ROCMFORGE_GPU_GRAPH_CACHE");
    L->n_graphs = gc && atoi(gc) >= 1 && atoi(gc) <= GRAPH_CACHE ? atoi(gc) : GRAPH_CACHE;
    /* a fresh cache reads as zeros, like the host's calloc'd pool; the ticket starts at 0 */
    e = rfg_memset_async(L->kv, 0, (size_t)(W->l1 - W->l0) * 2 * L->kv_layer * sizeof(uint16_t), W->g->stream);
    if (e == rfg_success) e = rfg_memset_async(L->ticket, 0, 4 * sizeof *L->ticket, W->g->stream);
    if (e == rfg_success) e = rfg_stream_synchronize(W->g->stream);
    if (e != rfg_success) {
        rfg_layers_free(L);
        return rfg_err(err, RF_E_IO, "%s: clearing the KV cache: %s", RFG_VENDOR, rfg_get_error_string(e));
    }
    /* without the copy stream and its events the logits come back in one piece */
    if (W->head && rfg_stream_create(&L->side) == rfg_success) {
        bool ok = rfg_event_create_sync_only(&L->copied) == rfg_success;
        for (int i = 0; i < HEAD_PARTS; i++) ok = ok && rfg_event_create_sync_only(&L->part_done[i]) == rfg_success;
        if (!ok) side_free(L);
    }
    (void)rfg_get_last_error();
    *out = (rf_layers_backend){&layers_ops, L, W->l0, W->l1, W->head};
    return RF_OK;
}

void rfg_layers_free(rf_gpu_layers *L) {
    if (!L) return;
    side_free(L);
    for (int i = 0; i < GRAPH_CACHE; i++)
        if (L->gcache[i].exec) rfg_graph_exec_destroy(L->gcache[i].exec);
    if (L->ar.base) rfg_free(L->ar.base);
    free(L->seen);
    free(L);
}

/* ---- the forward pass ------------------------------------------------------ */

/* Calls a kernel wrapper; a non-zero status ends the pass with a message
 * naming the wrapper, the layer and the reason. */
#define K(call)                                                                                        \
    do {                                                                                               \
        int st_ = (call);                                                                              \
        if (st_) return rfg_err(err, RF_E_IO, "%s: layer %d: %s: %s", RFG_VENDOR, il, #call,           \
                                rfg_kstatus_str(g, st_));                                              \
    } while (0)
#define V(call, what)                                                                                  \
    do {                                                                                               \
        rfg_error e_ = (call);                                                                         \
        if (e_ != rfg_success)                                                                         \
            return rfg_err(err, RF_E_IO, "%s: %s: %s", RFG_VENDOR, what, rfg_get_error_string(e_));    \
    } while (0)

/* y[n][rows] = x[n][cols] W^T. Batches larger than mv_max_n (prompts)
 * run as dequantize-to-float16 + the vendor BLAS GEMM when it is loaded;
 * a failing GEMM turns BLAS off for good and the plugin's kernel runs.
 * *x_f16: L->f16x already holds x as float16 (set once converted), so
 * matmuls sharing one input convert it once. */
static int mm_f16(rf_gpu_layers *L, const dw *w, const float *x, float *y, int64_t n, bool *x_f16) {
    rf_gpu *g = L->g;
    if (g->blas && n > L->mv_max_n && L->f16w && w->rows * w->cols <= L->f16w_elems && w->cols <= L->f16x_cols &&
        w->cols % 4 == 0) {
        int st = rfk_dequant_f16(&g->kctx, g->stream, w->type, w->d, w->row_bytes, w->cols, w->rows, L->f16w);
        if (!st && !*x_f16) st = rfk_f32_to_f16(&g->kctx, g->stream, x, L->f16x, n * w->cols);
        if (st) return st;
        *x_f16 = true;
        if (!(st = rfg_blas_gemm(g, w->rows, n, w->cols, L->f16w, L->f16x, y))) return 0;
        rfg_blas_disable(g, st);
    }
    return rfk_matmul(&L->g->kctx, L->g->stream, w->type, w->d, w->row_bytes, w->cols, w->rows, x, y, n, L->mm_scratch,
                      L->mm_scratch_bytes);
}

static int mm(rf_gpu_layers *L, const dw *w, const float *x, float *y, int64_t n) {
    bool x_f16 = false;
    return mm_f16(L, w, x, y, n, &x_f16);
}

/* y[t][0..dim) += b for t < n. The kernels have no broadcast add: b is
 * replicated into n rows of scratch by doubling copies (log2 n of them),
 * then one elementwise add. */
static int add_bias(rf_gpu_layers *L, float *y, const float *b, int64_t n, int64_t dim) {
    if (!b) return 0;
    void *s = L->g->stream;
    size_t row = (size_t)dim * sizeof(float);
    int st = (int)rfg_memcpy_d2d_async(L->bias, b, row, s);
    for (int64_t have = 1; !st && have < n; have *= 2) {
        int64_t k = n - have < have ? n - have : have;
        st = (int)rfg_memcpy_d2d_async(L->bias + have * dim, L->bias, (size_t)k * row, s);
    }
    return st ? st : rfk_add(&L->g->kctx, s, y, L->bias, y, n * dim);
}

/* Columns [c0, c0 + w) of src rows (pitch sp floats) into dst rows (pitch
 * dp floats), n rows. */
static rfg_error cols_copy(rf_gpu_layers *L, float *dst, int64_t dp, const float *src, int64_t sp, int64_t c0,
                           int64_t w, int64_t n) {
    return rfg_memcpy2d_d2d_async(dst, (size_t)dp * sizeof(float), src + c0, (size_t)sp * sizeof(float),
                                  (size_t)w * sizeof(float), (size_t)n, L->g->stream);
}

#define RF_GGUF_Q8_0_ID 8 /* any integer-dot type sizes the q8 scratch alike */

static bool int_dot(const dw *w) { return rfk_matmul_scratch_bytes(w->type, w->cols, 1) > 0; }

/* A matmul whose output goes to parts (rfk_mm_out) and, with xq, whose
 * input is already q8 in the matmul scratch. Mat-vec batches split in the
 * kernel; larger ones run part by part on row views of w (tmp: when a view
 * would lose the 16-byte alignment, the whole product goes to tmp
 * [n][w->rows] and is copied out). */
static int mm_parts(rf_gpu_layers *L, const dw *w, const float *x, const rfk_mm_out *o, int64_t n, bool xq, float *tmp) {
    rf_gpu *g = L->g;
    if (n <= L->mv_max_n)
        return rfk_matmul_ex(&g->kctx, g->stream, w->type, w->d, w->row_bytes, w->cols, w->rows, x, o, n,
                             L->mm_scratch, L->mm_scratch_bytes, xq && L->mm_scratch && int_dot(w));
    bool aligned = true;
    int64_t r = 0;
    for (int i = 0; i < o->n; i++, r += o->rows[i - 1]) aligned = aligned && (r * (int64_t)w->row_bytes) % 16 == 0;
    if (!aligned) {
        int st = mm(L, w, x, tmp, n);
        r = 0;
        for (int i = 0; i < o->n && !st; r += o->rows[i], i++)
            st = (int)cols_copy(L, o->y[i], o->rows[i], tmp, w->rows, r, o->rows[i], n);
        return st;
    }
    r = 0;
    bool x_f16 = false; /* the parts share x: converted for the GEMM once */
    for (int i = 0; i < o->n; r += o->rows[i], i++) {
        dw sub = *w;
        sub.d = (const uint8_t *)w->d + r * (int64_t)w->row_bytes;
        sub.rows = o->rows[i];
        int st = mm_f16(L, &sub, x, o->y[i], n, &x_f16);
        if (st) return st;
    }
    return 0;
}

static bool mm_xq(rf_gpu_layers *L, const dw *w, int64_t n) { return n <= L->mv_max_n && L->mm_scratch && int_dot(w); }

/* One-token steps: the residual's add + norm inside the mat-vec of w that
 * reads it (rfk_matmul_norm; x += delta, xb = the normed row, output to o).
 * *fused false where that kernel does not apply (the caller then launches
 * rfk_add_rmsnorm_q8 and the matmul apart). */
static int norm_mm(rf_gpu_layers *L, const dw *w, const float *delta, const float *nw, const rfk_mm_out *o, int64_t n,
                   bool dec, bool *fused) {
    *fused = false;
    if (!L->fuse_norm || !w || n != 1 || !dec) return 0;
    rfk_mv_norm nrm = {L->x, delta, nw, L->xb, L->w->m->hp.norm_eps, L->ticket};
    int st = rfk_matmul_norm(&L->g->kctx, L->g->stream, w->type, w->d, w->row_bytes, w->cols, w->rows, &nrm, o);
    if (st == RFK_E_UNSUPPORTED) return 0;
    *fused = st == 0;
    return st;
}

/* The mixture-of-experts FFN of layer j (forward.c's ffn_block): the norm
 * (float activations: the experts' mat-vecs read float32), the router, the
 * routing, every (token, expert) pair's gate and up, GLU, down, and the
 * weighted sum of each token's experts into L->tmp (left pending). */
static rf_status moe_ffn(rf_gpu_layers *L, int j, int64_t n, const float **pending, rf_error *err) {
    rf_gpu *g = L->g;
    const rfk_ctx *kc = &g->kctx;
    void *s = g->stream;
    const rf_hparams *hp = &L->w->m->hp;
    const dlayer *d = &L->w->ly[j];
    int il = L->w->l0 + j;
    const int64_t E = hp->n_embd, k = hp->n_expert_used, ne = hp->n_expert, eff = d->xg.rows, np = n * k;
    K(rfk_add_rmsnorm_q8(kc, s, L->x, L->tmp, d->ffn_norm, L->xb, n, E, hp->norm_eps, NULL, 0));
    K(mm(L, &d->router, L->xb, L->router, n));
    K(rfk_moe_route(kc, s, L->router, n, ne, k, hp->expert_gating, hp->expert_norm, L->sel, L->selw));
    float *ge = L->gate, *ue = L->gate + np * eff;
    K(rfk_matmul_id(kc, s, d->xg.type, d->xg.d, d->xstride[0], ne, d->xg.row_bytes, d->xg.cols, eff, L->xb, (int)k,
                    L->sel, np, ge));
    K(rfk_matmul_id(kc, s, d->xu.type, d->xu.d, d->xstride[1], ne, d->xu.row_bytes, d->xu.cols, d->xu.rows, L->xb,
                    (int)k, L->sel, np, ue));
    K(rfk_glu(kc, s, (int)hp->act, ge, ue, ge, np * eff));
    K(rfk_matmul_id(kc, s, d->xd.type, d->xd.d, d->xstride[2], ne, d->xd.row_bytes, d->xd.cols, d->xd.rows, ge, 1,
                    L->sel, np, L->de));
    K(rfk_moe_combine(kc, s, L->de, L->sel, L->selw, n, k, E, L->tmp));
    if (d->post_ffn_norm) K(rfk_rmsnorm(kc, s, L->tmp, d->post_ffn_norm, L->tmp, n, E, hp->norm_eps));
    *pending = L->tmp;
    return RF_OK;
}

/* One layer. `pending` (in/out): a block output not yet added to the
 * residual stream L->x; the next norm adds it in the same launch
 * (rfk_add_rmsnorm_q8), which also writes the q8 blocks the following
 * mat-vecs read when the batch is a mat-vec batch. */
static rf_status layer(rf_gpu_layers *L, int j, int64_t n, int64_t max_pos, bool swa_cs, const float **pending,
                       rf_error *err) {
    rf_gpu *g = L->g;
    const rfk_ctx *kc = &g->kctx;
    void *s = g->stream;
    const rf_hparams *hp = &L->w->m->hp;
    const dlayer *d = &L->w->ly[j];
    int il = L->w->l0 + j;
    int64_t E = hp->n_embd, hd = hp->head_dim, qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
    float eps = hp->norm_eps;
    /* a mat-vec batch whose norm outputs go to the matmul scratch as q8 too */
    bool dec = n <= L->mv_max_n && L->mm_scratch && L->mm_scratch_bytes >= rfk_matmul_scratch_bytes(RF_GGUF_Q8_0_ID, E, n);
    void *q8 = dec ? L->mm_scratch : NULL;
    size_t q8b = dec ? L->mm_scratch_bytes : 0;

    /* attention */
    /* one product for q|k|v, else for q|k (v apart, from xb), else three */
    const dw *qw = d->wqkv.d ? &d->wqkv : d->qkv_cat.d ? &d->qkv_cat : NULL;
    const dw *pw = qw ? qw : d->qk_cat.d ? &d->qk_cat : NULL;
    const rfk_mm_out qkv = qw ? (rfk_mm_out){{L->q, L->k, L->v}, {qd, kvd, kvd}, 3}
                              : (rfk_mm_out){{L->q, L->k}, {qd, kvd}, 2};
    bool fused;
    K(norm_mm(L, pw, *pending, d->attn_norm, &qkv, n, dec, &fused));
    if (!fused) {
        K(rfk_add_rmsnorm_q8(kc, s, L->x, *pending, d->attn_norm, L->xb, n, E, eps, q8, q8b));
        if (pw) {
            K(mm_parts(L, pw, L->xb, &qkv, n, dec && mm_xq(L, pw, n), L->qkv));
        } else {
            K(mm(L, &d->wq, L->xb, L->q, n));
            K(mm(L, &d->wk, L->xb, L->k, n));
        }
    }
    if (!qw) { /* v apart: from the q8 (and float16) activations the norm left, where it left them */
        const rfk_mm_out vo = {{L->v, NULL, NULL}, {kvd, 0, 0}, 1};
        K(mm_parts(L, &d->wv, L->xb, &vo, n, !fused && dec && mm_xq(L, &d->wv, n), L->qkv));
    }
    *pending = NULL;
    K(add_bias(L, L->q, d->bq, n, qd));
    K(add_bias(L, L->k, d->bk, n, kvd));
    K(add_bias(L, L->v, d->bv, n, kvd));
    if (d->q_norm) {
        K(rfk_rmsnorm(kc, s, L->q, d->q_norm, L->q, n * hp->n_head, hd, eps));
        K(rfk_rmsnorm(kc, s, L->k, d->k_norm, L->k, n * hp->n_head_kv, hd, eps));
    }
    const float *cs = L->cs[d->src->is_swa && swa_cs ? 1 : 0];
    rfk_kv_view kv = {.k = L->kv + (size_t)(2 * j) * L->kv_layer, .v = L->kv + (size_t)(2 * j + 1) * L->kv_layer,
                      .tables = L->tables, .max_blocks_per_seq = L->kc.max_blocks_per_seq, .kv_dim = L->kc.kv_dim,
                      .block_size = L->kc.block_size};
    rfk_attn_args a = {.q = L->q, .out = L->att, .pos = L->pos, .seq = L->seq, .n_tok = n, .n_head = hp->n_head,
                       .n_head_kv = hp->n_head_kv, .head_dim = hd, .scale = hp->attn_scale,
                       .window = d->src->is_swa ? hp->sliding_window : 0, .max_pos = max_pos,
                       .scratch = L->attn_scratch, .scratch_bytes = L->attn_scratch_bytes, .n_seq = L->n_seq};
    /* one token a sequence (decode): the attention rotates and stores the
     * step's keys itself; otherwise (prompts) they are in the cache first */
    if (L->fuse_rope && L->n_seq == n && kv.kv_dim == kvd) {
        a.k_new = L->k, a.v_new = L->v, a.cs = cs, a.n_rot = hp->n_rot, a.rope_style = (int)hp->rope_style;
    } else {
        K(rfk_rope_kv_store(kc, s, L->q, L->k, L->v, cs, n, hp->n_head, hp->n_head_kv, hd, hp->n_rot,
                            (int)hp->rope_style, &kv, L->pos, L->seq));
    }
    /* in a mat-vec batch the attention writes o's q8 input itself */
    bool o_xq = dec && mm_xq(L, &d->wo, n) && hd % 32 == 0;
    if (o_xq) a.q8 = q8, a.q8_bytes = q8b;
    K(rfk_attention(kc, s, &kv, &a));
    if (o_xq) {
        rfk_mm_out o = {{L->tmp, NULL, NULL}, {d->wo.rows, 0, 0}, 1};
        K(mm_parts(L, &d->wo, L->att, &o, n, true, NULL));
    } else {
        K(mm(L, &d->wo, L->att, L->tmp, n));
    }
    if (d->post_attn_norm) K(rfk_rmsnorm(kc, s, L->tmp, d->post_attn_norm, L->tmp, n, E, eps));

    if (hp->n_expert) return moe_ffn(L, j, n, pending, err);
    /* FFN: the attention output joins the residual in the norm's launch */
    int64_t ff = d->down.cols;
    /* gate and up land side by side in L->gate (2 * n_batch * ff floats) */
    float *gate = L->gate, *up = L->gate + n * ff;
    const dw *gu = !d->gate.d ? &d->up : d->gu_cat.d ? &d->gu_cat : NULL; /* fused [gate | up] (phi3), or ours */
    rfk_mm_out guo = {{gate, up, NULL}, {ff, ff, 0}, 2};
    K(norm_mm(L, gu, L->tmp, d->ffn_norm, &guo, n, dec, &fused));
    if (!fused) {
        K(rfk_add_rmsnorm_q8(kc, s, L->x, L->tmp, d->ffn_norm, L->xb, n, E, eps, q8, q8b));
        if (gu) {
            K(mm_parts(L, gu, L->xb, &guo, n, dec && mm_xq(L, gu, n), L->up));
        } else {
            K(mm(L, &d->gate, L->xb, gate, n));
            K(mm(L, &d->up, L->xb, up, n));
        }
    }
    bool down_xq = dec && mm_xq(L, &d->down, n);
    K(rfk_glu_q8(kc, s, (int)hp->act, gate, up, gate, n, ff, down_xq ? q8 : NULL, down_xq ? q8b : 0));
    if (down_xq) {
        rfk_mm_out o = {{L->tmp, NULL, NULL}, {d->down.rows, 0, 0}, 1};
        /* GLU left q8 (and, from 3 tokens, float16) activations in scratch */
        K(rfk_matmul_ex(kc, s, d->down.type, d->down.d, d->down.row_bytes, d->down.cols, d->down.rows, NULL, &o, n,
                        L->mm_scratch, L->mm_scratch_bytes, 1));
    } else {
        K(mm(L, &d->down, gate, L->tmp, n));
    }
    if (d->post_ffn_norm) K(rfk_rmsnorm(kc, s, L->tmp, d->post_ffn_norm, L->tmp, n, E, eps));
    *pending = L->tmp;
    return RF_OK;
}

static int64_t head_rows(const rf_gpu_layers *L) { return L->B < HEAD_ROWS ? L->B : HEAD_ROWS; }

/* The vocabulary parts of m rows' logits (see HEAD_PARTS): their count,
 * and the rows of each but the last (whole 128-row tiles, so each part's
 * weights start on a 128-byte boundary of the matrix). */
static int head_parts(const rf_gpu_layers *L, int64_t m, int64_t *part_rows) {
    const int64_t V_ = L->w->m->hp.n_vocab;
    int64_t pr = ((V_ + HEAD_PARTS - 1) / HEAD_PARTS + 127) / 128 * 128;
    *part_rows = V_;
    if (!L->side || (uint64_t)(m * V_) * sizeof(float) < HEAD_SPLIT_BYTES || pr * (HEAD_PARTS - 1) >= V_) return 1;
    *part_rows = pr;
    return HEAD_PARTS;
}

/* Rows of vocabulary part p, parts of pr rows: the last one takes the rest. */
static int64_t head_part_rows(const rf_gpu_layers *L, int p, int64_t pr) {
    const int64_t left = L->w->output.rows - p * pr;
    return left < pr ? left : pr;
}

/* Logits of vocabulary part p (of rows pr each) for m rows of x, into
 * L->logits's part p, [m][its rows]. */
static int head_part(rf_gpu_layers *L, const float *x, int64_t m, int p, int64_t pr) {
    dw sub = L->w->output;
    sub.d = (const uint8_t *)sub.d + p * pr * (int64_t)sub.row_bytes;
    sub.rows = head_part_rows(L, p, pr);
    return mm(L, &sub, x, L->logits + m * p * pr, m);
}

/* Final norm of the requested rows (into hid) and, with `logits`, the
 * first part of the logits of the first min(n_out, head_rows) of them
 * (into L->logits). Device work only, so it can be captured. */
static rf_status head_compute(rf_gpu_layers *L, const rf_layer_step *st, bool logits, rf_error *err) {
    rf_gpu *g = L->g;
    const rf_hparams *hp = &L->w->m->hp;
    int64_t E = hp->n_embd;
    int il = L->w->l1; /* for messages: "layer n_layer" is the head */
    for (int64_t i = 0; i < st->n_out; i++)
        V(rfg_memcpy_d2d_async(L->hid + i * E, L->x + (int64_t)st->out_rows[i] * E, (size_t)E * sizeof(float), g->stream),
          "gathering output rows");
    K(rfk_rmsnorm(&g->kctx, g->stream, L->hid, L->w->output_norm, L->hid, st->n_out, E, hp->norm_eps));
    if (logits) {
        int64_t m = st->n_out < head_rows(L) ? st->n_out : head_rows(L), pr;
        head_parts(L, m, &pr);
        K(head_part(L, L->hid, m, 0, pr));
    }
    return RF_OK;
}

/* The head's results to the host; the logits' other parts and rows past
 * the first chunk are computed here. In parts, each is copied on the side
 * stream while the main one computes the next. */
static rf_status head_download(rf_gpu_layers *L, const rf_layer_step *st, rf_error *err) {
    rf_gpu *g = L->g;
    const rf_hparams *hp = &L->w->m->hp;
    int64_t E = hp->n_embd, V_ = hp->n_vocab, h = head_rows(L);
    int il = L->w->l1;
    if (st->hidden)
        V(rfg_memcpy_d2h_async(st->hidden, L->hid, (size_t)(st->n_out * E) * sizeof(float), g->stream), "hidden states");
    if (!st->logits) return RF_OK;
    for (int64_t r = 0; r < st->n_out; r += h) {
        int64_t m = st->n_out - r < h ? st->n_out - r : h, pr;
        const int np = head_parts(L, m, &pr);
        if (r > 0 && L->side) { /* the previous chunk's copies have read L->logits */
            V(rfg_event_record(L->copied, L->side), "logits");
            V(rfg_stream_wait_event(g->stream, L->copied), "logits");
        }
        for (int p = 0; p < np; p++) {
            if (r > 0 || p > 0) K(head_part(L, L->hid + r * E, m, p, pr));
            if (np == 1) {
                V(rfg_memcpy_d2h_async(st->logits + r * V_, L->logits, (size_t)(m * V_) * sizeof(float), g->stream),
                  "logits");
                continue;
            }
            const int64_t r0 = p * pr, rows = head_part_rows(L, p, pr);
            V(rfg_event_record(L->part_done[p], g->stream), "logits");
            V(rfg_stream_wait_event(L->side, L->part_done[p]), "logits");
            V(rfg_memcpy2d_d2h_async(st->logits + r * V_ + r0, (size_t)V_ * sizeof(float), L->logits + m * r0,
                                     (size_t)rows * sizeof(float), (size_t)rows * sizeof(float), (size_t)m, L->side),
              "logits");
        }
    }
    return RF_OK;
}

/* Every kernel of one pass: the layers, then the head's device part. */
static rf_status pass(rf_gpu_layers *L, const rf_layer_step *st, int64_t max_pos, bool swa_cs, bool head,
                      rf_error *err) {
    const float *pending = NULL;
    for (int j = 0; j < L->w->l1 - L->w->l0; j++) {
        rf_status r = layer(L, j, st->n, max_pos, swa_cs, &pending, err);
        if (r != RF_OK) return r;
    }
    if (pending) {
        rf_gpu *g = L->g;
        int il = L->w->l1 - 1;
        K(rfk_add(&g->kctx, g->stream, L->x, pending, L->x, st->n * L->w->m->hp.n_embd));
    }
    return head ? head_compute(L, st, st->logits != NULL, err) : RF_OK;
}

/* Runs the pass from the graph cache, capturing it when the key changed.
 * false (nothing run) when this step cannot use a graph. */
static bool graph_ok(const rf_gpu_layers *L, const rf_layer_step *st, bool head) {
    if (!L->graphs || st->n > GRAPH_MAX_N) return false;
    if (head && st->n_out > head_rows(L)) return false;
    for (int64_t i = 0; head && i < st->n_out; i++)
        if (st->out_rows[i] != i + st->n - st->n_out) return false; /* the last n_out rows, in order */
    return true;
}

static bool gkey_eq(const gkey *a, const gkey *b) {
    return a->n == b->n && a->n_out == b->n_out && a->max_pos == b->max_pos && a->n_seq == b->n_seq &&
           a->swa_cs == b->swa_cs && a->logits == b->logits;
}

static rf_status graph_pass(rf_gpu_layers *L, const rf_layer_step *st, bool swa_cs, bool head, rf_error *err) {
    rf_gpu *g = L->g;
    int64_t bound = 1;
    while (bound <= st->max_pos) bound *= 2;
    const gkey key = {st->n, head ? st->n_out : -1, bound - 1, L->n_seq, swa_cs, st->logits != NULL};
    /* a kept graph of this key, else the slot to capture into: an empty
     * one, or the least recently used */
    int slot = 0;
    for (int i = 0; i < L->n_graphs; i++) {
        if (L->gcache[i].exec && gkey_eq(&L->gcache[i].key, &key)) {
            L->gcache[i].used = ++L->gclock;
            V(rfg_graph_launch(L->gcache[i].exec, g->stream), "graph launch");
            return RF_OK;
        }
        if (L->gcache[slot].exec && (!L->gcache[i].exec || L->gcache[i].used < L->gcache[slot].used)) slot = i;
    }
    if (L->gcache[slot].exec) rfg_graph_exec_destroy(L->gcache[slot].exec);
    L->gcache[slot].exec = NULL;
    V(rfg_stream_begin_capture(g->stream), "graph capture");
    rf_status r = pass(L, st, bound - 1, swa_cs, head, err);
    rfg_graph graph = NULL;
    rfg_error e = rfg_stream_end_capture(g->stream, &graph);
    if (r != RF_OK) {
        if (graph) rfg_graph_destroy(graph);
        return r;
    }
    if (e != rfg_success) return rfg_err(err, RF_E_IO, "%s: graph capture: %s", RFG_VENDOR, rfg_get_error_string(e));
    rfg_graph_exec exec = NULL;
    e = rfg_graph_instantiate(&exec, graph);
    rfg_graph_destroy(graph);
    if (e != rfg_success) return rfg_err(err, RF_E_IO, "%s: graph instantiate: %s", RFG_VENDOR, rfg_get_error_string(e));
    L->gcache[slot].exec = exec;
    L->gcache[slot].key = key;
    L->gcache[slot].used = ++L->gclock;
    V(rfg_graph_launch(exec, g->stream), "graph launch");
    return RF_OK;
}

static rf_status lforward(void *ctx, const rf_layer_step *st, float *x, rf_error *err) {
    rf_gpu_layers *L = ctx;
    rf_gpu *g = L->g;
    const rf_hparams *hp = &L->w->m->hp;
    int64_t n = st->n, E = hp->n_embd;
    if (n <= 0) return RF_OK;
    if (n > L->B) return rfg_err(err, RF_E_INVAL, "gpu: batch of %lld exceeds n_batch %lld", (long long)n, (long long)L->B);
    rfg_set_device(g->device);
    void *s = g->stream;
    V(rfg_memcpy_h2d_async(L->x, x, (size_t)(n * E) * sizeof(float), s), "uploading activations");
    V(rfg_memcpy_h2d_async(L->pos, st->pos, (size_t)n * sizeof(int32_t), s), "uploading positions");
    V(rfg_memcpy_h2d_async(L->seq, st->seq, (size_t)n * sizeof(int32_t), s), "uploading sequences");
    V(rfg_memcpy_h2d_async(L->tables, st->tables,
                           (size_t)L->kc.n_seq * (size_t)L->kc.max_blocks_per_seq * sizeof(int32_t), s),
      "uploading block tables");
    size_t csb = (size_t)(n * hp->n_rot) * sizeof(float);
    V(rfg_memcpy_h2d_async(L->cs[0], st->rope_cs[0], csb, s), "uploading rope table");
    bool swa_cs = st->rope_cs[1] && st->rope_cs[1] != st->rope_cs[0];
    L->n_seq = 0; /* distinct sequences of the step */
    memset(L->seen, 0, (size_t)L->kc.n_seq);
    bool foreign = false;
    for (int64_t i = 0; i < n; i++) {
        int32_t sq = st->seq[i];
        if (sq >= 0 && sq < L->kc.n_seq && !L->seen[sq]) L->seen[sq] = 1, L->n_seq++;
        else if (sq < 0 || sq >= L->kc.n_seq) foreign = true;
    }
    if (foreign) L->n_seq = 0; /* not ours to judge (0: unknown): the per-query kernel, keys stored apart */
    if (swa_cs) V(rfg_memcpy_h2d_async(L->cs[1], st->rope_cs[1], csb, s), "uploading rope table");
    /* with the head here, x is not needed on the host: only the head reads it */
    bool head = L->w->head && st->n_out > 0 && (st->logits || st->hidden);
    rf_status r = graph_ok(L, st, head) ? graph_pass(L, st, swa_cs, head, err) : pass(L, st, st->max_pos, swa_cs, head, err);
    if (r != RF_OK) return r;
    if (head) {
        if ((r = head_download(L, st, err)) != RF_OK) return r;
    } else if (!L->w->head) {
        V(rfg_memcpy_d2h_async(x, L->x, (size_t)(n * E) * sizeof(float), s), "downloading activations");
    }
    V(rfg_stream_synchronize(s), "forward pass");
    if (head && L->side) V(rfg_stream_synchronize(L->side), "logits");
    return RF_OK;
}

static void lrelease(void *ctx) { rfg_layers_free(ctx); }

/* Page-locked memory for the logits (rf_ctx_logits): the copy back then
 * runs at the link's speed instead of through the driver's bounce buffer. */
static void *lhost_alloc(void *ctx, size_t bytes) {
    rf_gpu_layers *L = ctx;
    void *p = NULL;
    rfg_set_device(L->g->device);
    if (rfg_malloc_host(&p, bytes) == rfg_success) return p;
    (void)rfg_get_last_error(); /* not sticky; leave no error for the next call to find */
    return NULL;
}

static void lhost_free(void *ctx, void *p) {
    rf_gpu_layers *L = ctx;
    rfg_set_device(L->g->device);
    if (p) rfg_free_host(p);
}

static const rf_layers_ops layers_ops = {.name = RFG_VENDOR, .forward = lforward, .release = lrelease,
                                         .host_alloc = lhost_alloc, .host_free = lhost_free};
