/*
 * ops_ref.c - the scalar reference implementation of every backend op, run
 * on the thread pool (rf_cpu_ref_ops; ROCMFORGE_CPU=ref or the set name "ref"
 * selects it). This is the specification the SIMD and GPU paths are tested
 * against: clear before fast. Matmul dequantizes each weight row once
 * into a per-thread buffer and reuses it for every token of the batch.
 */
#include <math.h>
#include <string.h>

#include "cpu-impl.h"
#include "kv/kv.h"

typedef struct cpu_ctx {
    rf_threadpool *tp;
    float **row_buf;    /* per thread: one dequantized weight row */
    int64_t row_cap;
    float **score_buf;  /* per thread: attention scores */
    int64_t score_cap;
} cpu_ctx;

static bool ensure(float **bufs, int n, int64_t *cap, int64_t need) {
    if (need <= *cap) return true;
    for (int i = 0; i < n; i++) {
        float *p = rf_realloc(bufs[i], (size_t)need * sizeof(float));
        if (!p) return false;
        bufs[i] = p;
    }
    *cap = need;
    return true;
}

static inline void split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nth - 1) / nth;
    *lo = per * ith < n ? per * ith : n;
    *hi = *lo + per < n ? *lo + per : n;
}

/* ---- matmul ------------------------------------------------------------ */

typedef struct mm_job {
    cpu_ctx *c;
    const rf_wview *w;
    const float *x;
    float *y;
    int64_t n_tok;
} mm_job;

static void mm_task(void *p, int ith, int nth) {
    mm_job *j = p;
    const rf_wview *w = j->w;
    int64_t r0, r1;
    split(w->rows, ith, nth, &r0, &r1);
    float *row = j->c->row_buf[ith];
    for (int64_t r = r0; r < r1; r++) {
        rf_status st = rf_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, row, w->cols);
        RF_ASSERT(st == RF_OK);
        for (int64_t t = 0; t < j->n_tok; t++) {
            const float *x = j->x + t * w->cols;
            double acc = 0.0;
            for (int64_t c = 0; c < w->cols; c++) acc += (double)row[c] * x[c];
            j->y[t * w->rows + r] = (float)acc;
        }
    }
}

static void cpu_matmul(void *ctx, const rf_wview *w, const float *x, float *y, int64_t n_tok) {
    cpu_ctx *c = ctx;
    RF_ASSERT(w->layout == RF_WLAYOUT_ROWS); /* X16 is the fast backend's own */
    RF_ASSERT(ensure(c->row_buf, rf_threadpool_size(c->tp), &c->row_cap, w->cols));
    mm_job j = {c, w, x, y, n_tok};
    rf_threadpool_run(c->tp, mm_task, &j);
}

/* ---- elementwise / per-row ops ----------------------------------------- */

static void cpu_rmsnorm(void *ctx, const float *x, const float *w, float *y, int64_t n_rows, int64_t dim, float eps) {
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * dim;
        float *yr = y + r * dim;
        double ss = 0.0;
        for (int64_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float scale = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
        for (int64_t i = 0; i < dim; i++) yr[i] = xr[i] * scale * (w ? w[i] : 1.0f);
    }
}

static void cpu_rope(void *ctx, float *x, const int32_t *pos, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                     const rf_rope_params *p) {
    int64_t half = p->n_rot / 2;
    for (int64_t t = 0; t < n_tok; t++) {
        double ppos = (double)pos[t] * (double)p->pos_scale;
        for (int64_t i = 0; i < half; i++) {
            double freq = pow((double)p->base, -2.0 * (double)i / (double)p->n_rot);
            if (p->freq_div) freq /= (double)p->freq_div[i];
            double theta = ppos * freq;
            float cs = (float)cos(theta), sn = (float)sin(theta);
            for (int64_t h = 0; h < n_heads; h++) {
                float *v = x + (t * n_heads + h) * head_dim;
                int64_t a = p->style == RF_ROPE_NEOX ? i : 2 * i;
                int64_t b = p->style == RF_ROPE_NEOX ? i + half : 2 * i + 1;
                float x0 = v[a], x1 = v[b];
                v[a] = x0 * cs - x1 * sn;
                v[b] = x0 * sn + x1 * cs;
            }
        }
    }
}

static void cpu_glu(void *ctx, rf_act act, const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], a;
        if (act == RF_ACT_SILU) a = g / (1.0f + expf(-g));
        else a = 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
        out[i] = a * up[i];
    }
}

static void cpu_get_rows(void *ctx, const rf_wview *w, const int32_t *ids, int64_t n, float *out) {
    RF_ASSERT(w->layout == RF_WLAYOUT_ROWS);
    for (int64_t t = 0; t < n; t++) {
        RF_ASSERT(ids[t] >= 0 && ids[t] < w->rows);
        rf_status st = rf_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)ids[t] * w->row_bytes,
                                         out + t * w->cols, w->cols);
        RF_ASSERT(st == RF_OK);
    }
}

/* ---- attention over the paged cache ------------------------------------ */

typedef struct attn_job {
    cpu_ctx *c;
    const rf_attn_args *a;
} attn_job;

static void attn_task(void *p, int ith, int nth) {
    attn_job *j = p;
    const rf_attn_args *a = j->a;
    int64_t lo, hi, hd = a->head_dim, group = a->n_head / a->n_head_kv;
    split(a->n_tok * a->n_head, ith, nth, &lo, &hi);
    float *score = j->c->score_buf[ith];
    for (int64_t th = lo; th < hi; th++) {
        int64_t t = th / a->n_head, h = th % a->n_head, kvh = h / group;
        int32_t pos = a->pos[t], seq = a->seq[t];
        int64_t first = a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
        const float *q = a->q + (t * a->n_head + h) * hd;
        float mx = -INFINITY;
        for (int64_t p2 = first; p2 <= pos; p2++) {
            const uint16_t *k = rf_kv_k(a->kv, a->layer, seq, p2) + kvh * hd;
            double s = 0.0;
            for (int64_t d = 0; d < hd; d++) s += (double)q[d] * rf_fp16_to_fp32(k[d]);
            score[p2 - first] = (float)s * a->scale;
            if (score[p2 - first] > mx) mx = score[p2 - first];
        }
        double sum = 0.0;
        for (int64_t p2 = first; p2 <= pos; p2++) {
            score[p2 - first] = expf(score[p2 - first] - mx);
            sum += score[p2 - first];
        }
        float *o = a->out + (t * a->n_head + h) * hd;
        for (int64_t d = 0; d < hd; d++) o[d] = 0.0f;
        for (int64_t p2 = first; p2 <= pos; p2++) {
            const uint16_t *v = rf_kv_v(a->kv, a->layer, seq, p2) + kvh * hd;
            float wgt = (float)(score[p2 - first] / sum);
            for (int64_t d = 0; d < hd; d++) o[d] += wgt * rf_fp16_to_fp32(v[d]);
        }
    }
}

static void cpu_attention(void *ctx, const rf_attn_args *a) {
    cpu_ctx *c = ctx;
    int32_t maxpos = 0;
    for (int64_t t = 0; t < a->n_tok; t++) maxpos = a->pos[t] > maxpos ? a->pos[t] : maxpos;
    RF_ASSERT(ensure(c->score_buf, rf_threadpool_size(c->tp), &c->score_cap, (int64_t)maxpos + 1));
    attn_job j = {c, a};
    rf_threadpool_run(c->tp, attn_task, &j);
}

static bool cpu_supports(void *ctx, rf_op op, uint32_t type) {
    const rf_type_info *ti = rf_type_get(type);
    return op != RF_OP_MATMUL && op != RF_OP_GET_ROWS ? true : ti && ti->to_float;
}

const rf_backend_ops rf_cpu_ref_ops = {
    .name = "cpu-ref",
    .supports = cpu_supports,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .glu = cpu_glu,
    .get_rows = cpu_get_rows,
};

void *rf_cpu_ref_ctx_create(rf_threadpool *tp) {
    cpu_ctx *c = rf_calloc(1, sizeof *c);
    int n = rf_threadpool_size(tp);
    if (c) {
        c->tp = tp;
        c->row_buf = rf_calloc((size_t)n, sizeof(float *));
        c->score_buf = rf_calloc((size_t)n, sizeof(float *));
    }
    if (!c || !c->row_buf || !c->score_buf) {
        if (c) { rf_free(c->row_buf); rf_free(c->score_buf); }
        rf_free(c);
        return NULL;
    }
    return c;
}

void rf_cpu_ref_ctx_free(void *ctx) {
    cpu_ctx *c = ctx;
    if (!c) return;
    int n = rf_threadpool_size(c->tp);
    for (int i = 0; i < n; i++) {
        rf_free(c->row_buf[i]);
        rf_free(c->score_buf[i]);
    }
    rf_free(c->row_buf);
    rf_free(c->score_buf);
    rf_free(c);
}
