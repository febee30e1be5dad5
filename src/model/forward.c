/*
 * forward.c - the batched forward pass and the context that owns the KV
 * cache and scratch memory.
 *
 * One pass: embeddings -> for each layer (norm, q/k/v, q/k norms, rope,
 * write k/v to the paged cache, attention, output projection, optional
 * post-norm, residual; norm, FFN (dense, fused or MoE), optional post-norm,
 * residual) -> final norm -> logits of the requested entries. All scratch
 * is sized at context creation for n_batch entries; nothing is allocated
 * per token.
 *
 * A context may hand a contiguous range of layers to a device backend
 * (rf_ctx_offload, backend.h rf_layers_ops): the residual stream goes to
 * the device before the range and comes back after it; a device whose
 * range ends at the last layer may also compute the head (final norm and
 * logits), so only the requested rows' logits cross back.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "moe_route.h"

struct rf_ctx {
    const rf_model *m;
    rf_backend *be;
    rf_kv_cache *kv;
    rf_ctx_params p;
    int64_t ffw;      /* widest FFN activation row */
    /* scratch, [n_batch][...] */
    float *x, *xb, *q, *k, *v, *att, *tmp, *gate, *up, *qkv;
    float *router;    /* [n_batch][n_expert] */
    int32_t *sel;     /* [n_batch][n_expert_used] */
    float *selw;      /* [n_batch][n_expert_used] */
    int32_t *tok_idx; /* [n_batch] tokens routed to one expert */
    float *xe, *ge, *ue, *de; /* gathered expert activations */
    int32_t *pos, *seq, *ids, *out_rows;
    float *out_x;     /* [n_batch][n_embd] */
    float *rope_cs;   /* [n_batch][n_rot / 2][2]: cos, sin of the current layer kind */
    rf_layers_backend dev; /* layers [dev.l0, dev.l1) on a device; ops NULL: none */
    float *rope_cs_swa;    /* [n_batch][n_rot]: second table for the device (sliding-window layers) */
    float *route_gap;      /* rf_ctx_watch_routing's array, or NULL */
    float *route_sorted;   /* [n_expert] scratch for it */
    /* rf_ctx_logits' buffer: lg_rows rows; lg_dev: from dev.ops->host_alloc;
     * lg_asked: whether the device was asked (so a refusal is not retried) */
    float *lg;
    int64_t lg_rows;
    bool lg_dev, lg_asked;
};

#define OP(c, name, ...) (c)->be->ops->name((c)->be->ctx, __VA_ARGS__)

rf_kv_cache *rf_ctx_kv(rf_ctx *c) { return c->kv; }
const rf_model *rf_ctx_model(const rf_ctx *c) { return c->m; }

static void logits_release(rf_ctx *c) {
    if (c->lg_dev) c->dev.ops->host_free(c->dev.ctx, c->lg);
    else rf_free(c->lg);
    c->lg = NULL, c->lg_rows = 0, c->lg_dev = false;
}

/* The device computes the head: its logits cross the link into this buffer,
 * so it asks the device for page-locked memory (llama.cpp does the same for
 * its output buffer). Into pageable memory the copy goes through the
 * driver's bounce buffer: 32 rows of a 128k vocabulary are 16 MiB a step. */
float *rf_ctx_logits(rf_ctx *c, int64_t n_rows) {
    const bool ask = c->dev.ops && c->dev.head && c->dev.ops->host_alloc && c->dev.ops->host_free;
    if (n_rows < 1) n_rows = 1;
    if (c->lg && n_rows <= c->lg_rows && ask == c->lg_asked) return c->lg;
    logits_release(c);
    const size_t bytes = (size_t)n_rows * (size_t)c->m->hp.n_vocab * sizeof(float);
    if (ask) c->lg = c->dev.ops->host_alloc(c->dev.ctx, bytes), c->lg_dev = c->lg != NULL;
    if (!c->lg) c->lg = rf_malloc(bytes);
    c->lg_asked = ask;
    c->lg_rows = c->lg ? n_rows : 0;
    return c->lg;
}

void rf_ctx_free(rf_ctx *c) {
    if (!c) return;
    logits_release(c); /* device memory goes back before the device */
    if (c->dev.ops && c->dev.ops->release) c->dev.ops->release(c->dev.ctx);
    rf_free(c->rope_cs_swa);
    free(c->route_sorted);
    rf_kv_free(c->kv);
    float *fs[] = {c->x, c->xb, c->q, c->k, c->v, c->att, c->tmp, c->gate, c->up, c->qkv, c->router, c->selw,
                   c->xe, c->ge, c->ue, c->de, c->out_x};
    for (size_t i = 0; i < RF_ARRAY_LEN(fs); i++) rf_free(fs[i]);
    rf_free(c->sel);
    rf_free(c->tok_idx);
    rf_free(c->pos);
    rf_free(c->seq);
    rf_free(c->ids);
    rf_free(c->out_rows);
    rf_free(c->rope_cs);
    rf_free(c);
}

rf_status rf_ctx_create(const rf_model *m, const rf_ctx_params *p, rf_backend *be, rf_ctx **out, rf_error *err) {
    *out = NULL;
    if (p->n_ctx <= 0 || p->n_seq <= 0 || p->n_batch <= 0)
        return rf_error_set(err, RF_E_INVAL, "context: n_ctx, n_seq and n_batch must be positive");
    rf_ctx *c = rf_calloc(1, sizeof *c);
    if (!c) return rf_error_set(err, RF_E_NOMEM, "context: out of memory");
    c->m = m;
    c->be = be;
    c->p = *p;
    if (!c->p.block_size) c->p.block_size = 16;
    const rf_hparams *hp = &m->hp;
    rf_kv_config kc = rf_kv_config_for((int)hp->n_layer, hp->n_head_kv * hp->head_dim, p->n_ctx, p->n_seq, c->p.block_size);
    if (p->n_kv_blocks > 0) kc.n_blocks = p->n_kv_blocks;
    rf_status st = rf_kv_create(&kc, &c->kv, err);
    if (st != RF_OK) { rf_ctx_free(c); return st; }

    int64_t B = p->n_batch, E = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    int64_t eff = hp->n_ff;
    if (hp->n_expert) {
        char k[96];
        snprintf(k, sizeof k, "%s.expert_feed_forward_length", hp->arch_name);
        int64_t v;
        if (rf_gguf_get_i64(m->gguf, k, &v, NULL) == RF_OK && v > 0) eff = v;
    }
    c->ffw = 2 * (eff > hp->n_ff ? eff : hp->n_ff);
    int64_t nx = hp->n_expert ? hp->n_expert : 1, nk = hp->n_expert_used ? hp->n_expert_used : 1;
#define ALLOC(f, n) if (!((f) = rf_malloc((size_t)(n) * sizeof *(f)))) goto nomem
    ALLOC(c->x, B * E); ALLOC(c->xb, B * E); ALLOC(c->tmp, B * E); ALLOC(c->out_x, B * E);
    ALLOC(c->q, B * qd); ALLOC(c->att, B * qd); ALLOC(c->k, B * kvd); ALLOC(c->v, B * kvd);
    ALLOC(c->qkv, B * (qd + 2 * kvd));
    ALLOC(c->gate, B * c->ffw); ALLOC(c->up, B * c->ffw);
    ALLOC(c->router, B * nx); ALLOC(c->sel, B * nk); ALLOC(c->selw, B * nk); ALLOC(c->tok_idx, B);
    ALLOC(c->xe, B * E); ALLOC(c->de, B * E); ALLOC(c->ge, B * c->ffw); ALLOC(c->ue, B * c->ffw);
    ALLOC(c->pos, B); ALLOC(c->seq, B); ALLOC(c->ids, B); ALLOC(c->out_rows, B);
    ALLOC(c->rope_cs, B * hp->n_rot);
#undef ALLOC
    *out = c;
    return RF_OK;
nomem:
    rf_ctx_free(c);
    return rf_error_set(err, RF_E_NOMEM, "context: out of memory for scratch (n_batch %lld)", (long long)B);
}

/* ---- pieces of a layer ------------------------------------------------- */

static void add_bias(float *y, const float *b, int64_t n_tok, int64_t dim) {
    if (!b) return;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t i = 0; i < dim; i++) y[t * dim + i] += b[i];
}

static void add_into(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

/* ---- rope ---------------------------------------------------------------
 * The angles of every scaling scheme are computed here, once per layer for
 * the batch, so every backend applies the same table: theta = pos *
 * base^(-2i/n_rot) / freq_factor[i], times the linear scale; YaRN blends the
 * scaled and unscaled angle per frequency band; cos/sin carry mscale
 * (attn_factor and YaRN's magnitude correction). */

static float yarn_corr_dim(float n_rot, float n_ctx_orig, float beta, float base) {
    return n_rot * logf(n_ctx_orig / (beta * 2.0f * 3.14159265358979f)) / (2.0f * logf(base));
}

static void rope_table(rf_ctx *c, const rf_layer *ly, int64_t n, float *out) {
    const rf_hparams *hp = &c->m->hp;
    const rf_model *m = c->m;
    int64_t half = hp->n_rot / 2;
    /* phi3: long factors once a sequence may exceed the original context */
    const float *ff = m->rope_freqs;
    if (m->rope_short) ff = c->p.n_ctx > hp->n_ctx_orig && m->rope_long ? m->rope_long : m->rope_short;
    float scale = ly->rope_scale, base = ly->rope_base;
    bool yarn = hp->rope_yarn && scale != 1.0f;
    float lo = 0, hi = 0;
    if (yarn) {
        lo = floorf(yarn_corr_dim((float)hp->n_rot, (float)hp->n_ctx_orig, 32.0f, base));
        hi = ceilf(yarn_corr_dim((float)hp->n_rot, (float)hp->n_ctx_orig, 1.0f, base));
        if (lo < 0) lo = 0;
        if (hi > (float)hp->n_rot - 1) hi = (float)hp->n_rot - 1;
    }
    float mscale = hp->rope_mscale; /* llama.cpp uses one attention factor for every layer */
    for (int64_t t = 0; t < n; t++) {
        float *cs = out + t * hp->n_rot;
        for (int64_t i = 0; i < half; i++) {
            double extrap = (double)c->pos[t] * pow((double)base, -2.0 * (double)i / (double)hp->n_rot);
            if (ff) extrap /= (double)ff[i];
            double theta = extrap * scale;
            if (yarn) {
                float y = ((float)i - lo) / fmaxf(0.001f, hi - lo);
                float ramp = 1.0f - fminf(1.0f, fmaxf(0.0f, y));
                theta = theta * (1.0 - ramp) + extrap * ramp;
            }
            cs[2 * i] = (float)cos(theta) * mscale;
            cs[2 * i + 1] = (float)sin(theta) * mscale;
        }
    }
}

/* Rotates the first n_rot dims of every head: adjacent pairs (normal) or
 * (i, i + n_rot/2) (NeoX). x [n_tok][n_heads * head_dim], in place. */
static void apply_rope(float *x, int64_t n_tok, int64_t n_heads, int64_t hd, int64_t n_rot, rf_rope_style style,
                       const float *table) {
    int64_t half = n_rot / 2;
    for (int64_t t = 0; t < n_tok; t++) {
        const float *cs = table + t * n_rot;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + (t * n_heads + h) * hd;
            for (int64_t i = 0; i < half; i++) {
                int64_t a = style == RF_ROPE_NEOX ? i : 2 * i, b = style == RF_ROPE_NEOX ? i + half : 2 * i + 1;
                float x0 = v[a], x1 = v[b];
                v[a] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
                v[b] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
            }
        }
    }
}

static void attention_block(rf_ctx *c, const rf_layer *ly, int il, int64_t n) {
    const rf_hparams *hp = &c->m->hp;
    int64_t hd = hp->head_dim, qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
    OP(c, rmsnorm, c->x, ly->attn_norm, c->xb, n, hp->n_embd, hp->norm_eps);
    if (ly->wqkv.data) {
        OP(c, matmul, &ly->wqkv, c->xb, c->qkv, n);
        for (int64_t t = 0; t < n; t++) {
            const float *r = c->qkv + t * (qd + 2 * kvd);
            memcpy(c->q + t * qd, r, (size_t)qd * sizeof(float));
            memcpy(c->k + t * kvd, r + qd, (size_t)kvd * sizeof(float));
            memcpy(c->v + t * kvd, r + qd + kvd, (size_t)kvd * sizeof(float));
        }
    } else {
        OP(c, matmul, &ly->wq, c->xb, c->q, n);
        OP(c, matmul, &ly->wk, c->xb, c->k, n);
        OP(c, matmul, &ly->wv, c->xb, c->v, n);
    }
    add_bias(c->q, ly->bq, n, qd);
    add_bias(c->k, ly->bk, n, kvd);
    add_bias(c->v, ly->bv, n, kvd);
    if (ly->q_norm) {
        OP(c, rmsnorm, c->q, ly->q_norm, c->q, n * hp->n_head, hd, hp->norm_eps);
        OP(c, rmsnorm, c->k, ly->k_norm, c->k, n * hp->n_head_kv, hd, hp->norm_eps);
    }
    rope_table(c, ly, n, c->rope_cs);
    apply_rope(c->q, n, hp->n_head, hd, hp->n_rot, hp->rope_style, c->rope_cs);
    apply_rope(c->k, n, hp->n_head_kv, hd, hp->n_rot, hp->rope_style, c->rope_cs);
    for (int64_t t = 0; t < n; t++) {
        uint16_t *kd = rf_kv_k(c->kv, il, c->seq[t], c->pos[t]);
        uint16_t *vd = rf_kv_v(c->kv, il, c->seq[t], c->pos[t]);
        for (int64_t i = 0; i < kvd; i++) {
            kd[i] = rf_fp32_to_fp16(c->k[t * kvd + i]);
            vd[i] = rf_fp32_to_fp16(c->v[t * kvd + i]);
        }
    }
    rf_attn_args a = {c->q, c->att, n, hp->n_head, hp->n_head_kv, hd, hp->attn_scale,
                      ly->is_swa ? hp->sliding_window : 0, c->pos, c->seq, c->kv, il};
    OP(c, attention, &a);
    OP(c, matmul, &ly->wo, c->att, c->tmp, n);
    if (ly->post_attn_norm) OP(c, rmsnorm, c->tmp, ly->post_attn_norm, c->tmp, n, hp->n_embd, hp->norm_eps);
    add_into(c->x, c->tmp, n * hp->n_embd);
}

static int desc_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

rf_status rf_ctx_watch_routing(rf_ctx *c, float *gap) {
    c->route_gap = gap;
    if (!gap || c->route_sorted || !c->m->hp.n_expert) return RF_OK;
    c->route_sorted = malloc((size_t)c->m->hp.n_expert * sizeof(float));
    return c->route_sorted ? RF_OK : RF_E_NOMEM;
}

/* Chooses the top-k experts of each token and their weights. */
static void route(rf_ctx *c, int64_t n) {
    const rf_hparams *hp = &c->m->hp;
    int64_t ne = hp->n_expert, k = hp->n_expert_used;
    for (int64_t t = 0; t < n; t++) {
        float *r = c->router + t * ne;
        if (c->route_gap && c->route_sorted && k < ne) {
            float *s = c->route_sorted;
            memcpy(s, r, (size_t)ne * sizeof(float));
            qsort(s, (size_t)ne, sizeof(float), desc_float);
            const float spread = s[0] - s[ne - 1], gap = spread > 0 ? (s[k - 1] - s[k]) / spread : 0.0f;
            if (gap < c->route_gap[t]) c->route_gap[t] = gap;
        }
        rf_moe_route_row(r, ne, k, hp->expert_gating, hp->expert_norm, c->sel + t * k, c->selw + t * k);
    }
}

static rf_wview expert(const rf_wstack *s, int64_t e) {
    rf_wview w = s->w;
    w.data = (const uint8_t *)s->w.data + (size_t)e * s->stride;
    return w;
}

static void ffn_block(rf_ctx *c, const rf_layer *ly, int64_t n) {
    const rf_hparams *hp = &c->m->hp;
    int64_t E = hp->n_embd;
    OP(c, rmsnorm, c->x, ly->ffn_norm, c->xb, n, E, hp->norm_eps);
    if (hp->n_expert) {
        int64_t k = hp->n_expert_used, eff = ly->gate_exps.w.rows;
        OP(c, matmul, &ly->ffn_gate_inp, c->xb, c->router, n);
        route(c, n);
        memset(c->tmp, 0, (size_t)(n * E) * sizeof(float));
        for (int64_t e = 0; e < hp->n_expert; e++) {
            /* gather the tokens routed to expert e, run it once for all of them */
            int64_t m = 0;
            for (int64_t t = 0; t < n; t++)
                for (int64_t j = 0; j < k; j++)
                    if (c->sel[t * k + j] == e) {
                        c->tok_idx[m] = (int32_t)(t * k + j);
                        memcpy(c->xe + m * E, c->xb + t * E, (size_t)E * sizeof(float));
                        m++;
                    }
            if (!m) continue;
            rf_wview g = expert(&ly->gate_exps, e), u = expert(&ly->up_exps, e), d = expert(&ly->down_exps, e);
            OP(c, matmul, &g, c->xe, c->ge, m);
            OP(c, matmul, &u, c->xe, c->ue, m);
            OP(c, glu, hp->act, c->ge, c->ue, c->ge, m * eff);
            OP(c, matmul, &d, c->ge, c->de, m);
            for (int64_t i = 0; i < m; i++) {
                int64_t t = c->tok_idx[i] / k;
                float w = c->selw[c->tok_idx[i]];
                for (int64_t j = 0; j < E; j++) c->tmp[t * E + j] += w * c->de[i * E + j];
            }
        }
    } else if (!ly->ffn_gate.data) {
        /* fused [gate | up] (phi3) */
        int64_t ff = ly->ffn_down.cols;
        OP(c, matmul, &ly->ffn_up, c->xb, c->up, n);
        for (int64_t t = 0; t < n; t++)
            OP(c, glu, hp->act, c->up + t * 2 * ff, c->up + t * 2 * ff + ff, c->gate + t * ff, ff);
        OP(c, matmul, &ly->ffn_down, c->gate, c->tmp, n);
    } else {
        int64_t ff = ly->ffn_gate.rows;
        OP(c, matmul, &ly->ffn_gate, c->xb, c->gate, n);
        OP(c, matmul, &ly->ffn_up, c->xb, c->up, n);
        OP(c, glu, hp->act, c->gate, c->up, c->gate, n * ff);
        OP(c, matmul, &ly->ffn_down, c->gate, c->tmp, n);
    }
    if (ly->post_ffn_norm) OP(c, rmsnorm, c->tmp, ly->post_ffn_norm, c->tmp, n, E, hp->norm_eps);
    add_into(c->x, c->tmp, n * E);
}

/* ---- layers on a device -------------------------------------------------- */

rf_status rf_ctx_offload(rf_ctx *c, const rf_layers_backend *b, rf_error *err) {
    if (c->dev.ops) return rf_error_set(err, RF_E_INVAL, "context: layers already offloaded");
    if (b->l0 < 0 || b->l1 > c->m->hp.n_layer || b->l0 >= b->l1 || (b->head && b->l1 != c->m->hp.n_layer))
        return rf_error_set(err, RF_E_INVAL, "context: bad device layer range [%d, %d)", b->l0, b->l1);
    if (!c->rope_cs_swa && !(c->rope_cs_swa = rf_malloc((size_t)(c->p.n_batch * c->m->hp.n_rot) * sizeof(float))))
        return rf_error_set(err, RF_E_NOMEM, "context: out of memory");
    c->dev = *b;
    return RF_OK;
}

const rf_layers_backend *rf_ctx_device(const rf_ctx *c) { return c->dev.ops ? &c->dev : NULL; }
int64_t rf_ctx_n_batch(const rf_ctx *c) { return c->p.n_batch; }

/* Runs the device's layer range on c->x (n entries). The rope tables of the
 * range's full-attention and sliding-window layers go along (at most two
 * kinds exist: rf_layer.rope_base/rope_scale follow is_swa). With the head
 * on the device, the requested rows' hidden states and logits come back
 * instead of the stream. */
static rf_status device_layers(rf_ctx *c, int64_t n, int64_t n_out, float *logits_out, float *hidden_out,
                               rf_error *err) {
    const rf_layer *full = NULL, *swa = NULL;
    for (int il = c->dev.l0; il < c->dev.l1; il++) {
        const rf_layer *ly = &c->m->layers[il];
        if (ly->is_swa && !swa) swa = ly;
        if (!ly->is_swa && !full) full = ly;
    }
    if (full) rope_table(c, full, n, c->rope_cs);
    if (swa) rope_table(c, swa, n, full ? c->rope_cs_swa : c->rope_cs);
    int32_t max_pos = 0;
    for (int64_t i = 0; i < n; i++) max_pos = c->pos[i] > max_pos ? c->pos[i] : max_pos;
    rf_layer_step s = {n, c->pos, c->seq, rf_kv_tables(c->kv), max_pos,
                       {c->rope_cs, full && swa ? c->rope_cs_swa : c->rope_cs},
                       c->out_rows, n_out, hidden_out, logits_out};
    return c->dev.ops->forward(c->dev.ctx, &s, c->x, err);
}

/* ---- the pass ---------------------------------------------------------- */

rf_status rf_forward(rf_ctx *c, const rf_batch_entry *e, int64_t n, float *logits_out, float *hidden_out,
                     rf_error *err) {
    const rf_model *m = c->m;
    const rf_hparams *hp = &m->hp;
    if (n <= 0) return RF_OK;
    if (n > c->p.n_batch)
        return rf_error_set(err, RF_E_INVAL, "forward: batch of %lld entries exceeds n_batch %lld", (long long)n,
                            (long long)c->p.n_batch);
    int64_t n_out = 0;
    for (int64_t i = 0; i < n; i++) {
        if (e[i].seq < 0 || e[i].seq >= c->p.n_seq || e[i].pos < 0 || e[i].pos >= c->p.n_ctx)
            return rf_error_set(err, RF_E_RANGE, "forward: entry %lld: sequence %d / position %d out of range",
                                (long long)i, e[i].seq, e[i].pos);
        if (e[i].token < 0 || e[i].token >= hp->n_vocab)
            return rf_error_set(err, RF_E_RANGE, "forward: entry %lld: token %d outside the vocabulary (%lld)",
                                (long long)i, e[i].token, (long long)hp->n_vocab);
        c->pos[i] = e[i].pos;
        c->seq[i] = e[i].seq;
        c->ids[i] = e[i].token;
        if (e[i].logits) c->out_rows[n_out++] = (int32_t)i;
    }
    for (int64_t i = 0; i < n; i++) {
        rf_status st = rf_kv_seq_reserve(c->kv, e[i].seq, (int64_t)e[i].pos + 1);
        if (st == RF_E_NOMEM) return rf_error_set(err, st, "forward: KV cache pool exhausted");
        if (st != RF_OK) return rf_error_set(err, st, "forward: position %d exceeds the context", e[i].pos);
    }
    int64_t E = hp->n_embd;
    OP(c, get_rows, &m->tok_embd, c->ids, n, c->x);
    if (hp->embd_scale != 1.0f)
        for (int64_t i = 0; i < n * E; i++) c->x[i] *= hp->embd_scale;
    for (int il = 0; il < hp->n_layer; il++) {
        if (c->dev.ops && il == c->dev.l0) {
            rf_status st = device_layers(c, n, n_out, logits_out, hidden_out, err);
            if (st != RF_OK) return st;
            if (c->dev.head) return RF_OK;
            il = c->dev.l1 - 1;
            continue;
        }
        attention_block(c, &m->layers[il], il, n);
        ffn_block(c, &m->layers[il], n);
    }
    for (int64_t i = 0; i < n_out; i++)
        memcpy(c->out_x + i * E, c->x + (int64_t)c->out_rows[i] * E, (size_t)E * sizeof(float));
    OP(c, rmsnorm, c->out_x, m->output_norm, c->out_x, n_out, E, hp->norm_eps);
    if (hidden_out) memcpy(hidden_out, c->out_x, (size_t)(n_out * E) * sizeof(float));
    if (logits_out && n_out) OP(c, matmul, &m->output, c->out_x, logits_out, n_out);
    return RF_OK;
}
