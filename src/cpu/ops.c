/*
 * ops.c - the CPU backend's op table on top of a kernel set: how each op is
 * cut into work for the thread pool, and the scratch it needs.
 *
 * Matmul: the activation rows are quantized once per call into the weight
 * type's 8-bit format (or kept as float). Batches of fewer than 16 tokens
 * go to the row kernels (8 weight rows at a time, up to 4 tokens per pass
 * over them); larger ones to the GEMM path, which unpacks a tile's weight
 * rows once into panels and multiplies them with 8 or 16 tokens per vector.
 * The two give bit-identical results (cpu-impl.h), so a token's logits do
 * not depend on the batch it came in. Each thread walks its own contiguous
 * share of the tiles of rows x tokens and then takes tiles from the back of
 * the others' shares, so a thread slowed by another process does not hold
 * the others back. Tiles hold a multiple of 16 rows (64 bytes of output per
 * token), so two threads never write the same cache line of y. Weight
 * types without an integer kernel are dequantized a tile at a time into a
 * per-thread float buffer and go through the F32 kernel. Weights in the X16
 * layout (cpu-impl.h) go to the set's X16 kernels, and are unpacked a group
 * at a time for the GEMM's panels.
 *
 * Attention: flash-attention style. Query rows of one KV head (the GQA
 * group of query heads, for a run of tokens of the same sequence) walk the
 * paged cache block by block with an online softmax; each key and value row
 * is read once for the whole group.
 *
 * Scratch grows on the first call that needs more and is then reused; a
 * steady token loop allocates nothing.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu-impl.h"
#include "kv/kv.h"

typedef struct thread_scratch {
    float *wtile;    /* dequantized weight tile (fallback types) */
    size_t wtile_cap;
    float *attn;     /* attention tile buffers */
    size_t attn_cap;
    uint8_t *panel;  /* GEMM weight panels */
    size_t panel_cap;
    uint8_t *rows;   /* X16 weights: a group's 16 rows in the file layout */
    size_t rows_cap;
    char pad[64];
    _Atomic uint64_t tiles; /* this thread's matmul tiles still to do: first | end << 32 */
    char pad2[64];
} thread_scratch;

typedef struct fast_ctx {
    rf_threadpool *tp;
    const rf_cpu_kernels *k;
    int nth;
    uint8_t *act;    /* quantized activations [n_tok][row bytes] */
    size_t act_cap;
    thread_scratch *ts;
    int32_t *units;  /* attention work units */
    size_t units_cap;
    rf_cpu_trace *trace; /* NULL unless tracing */
} fast_ctx;

static bool grow(void **p, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    void *n = rf_realloc(*p, need);
    if (!n) return false;
    *p = n;
    *cap = need;
    return true;
}

/* Work below this many multiply-adds runs on the calling thread alone:
 * waking the pool costs more than it saves. */
enum { PAR_MIN_WORK = 1 << 15 };

/* ---- matmul ---------------------------------------------------------------- */

typedef struct mm_job {
    fast_ctx *c;
    const rf_wview *w;
    rf_mm_fn fn;
    rf_mm_fn fn_x16;     /* X16 layout: the kernel for rows below x16_rows */
    int64_t x16_rows;    /* rows in whole 16-row groups (0: file layout) */
    bool dequant;        /* fallback: dequantize tiles to F32 first */
    const uint8_t *a;
    size_t a_stride;
    float *y;
    int64_t n_tok;
    int64_t rb, tb;      /* tile: rows, tokens */
    int64_t n_rb, n_tiles;
} mm_job;

static void mm_tile(mm_job *j, thread_scratch *ts, int64_t tile) {
    const rf_wview *w = j->w;
    const int64_t rbi = tile / (j->n_tiles / j->n_rb), tbi = tile % (j->n_tiles / j->n_rb);
    const int64_t r0 = rbi * j->rb, r1 = r0 + j->rb < w->rows ? r0 + j->rb : w->rows;
    const int64_t t0 = tbi * j->tb, t1 = t0 + j->tb < j->n_tok ? t0 + j->tb : j->n_tok;
    rf_mm_args m = {
        .K = w->cols, .w = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes, .w_stride = w->row_bytes,
        .nr = r1 - r0, .a = j->a + (size_t)t0 * j->a_stride, .a_stride = j->a_stride, .nt = t1 - t0,
        .y = j->y + t0 * w->rows + r0, .ldy = w->rows,
    };
    if (j->dequant) {
        for (int64_t r = 0; r < m.nr; r++) {
            rf_status st = rf_dequantize_row(w->type, m.w + (size_t)r * w->row_bytes, ts->wtile + r * m.K, m.K);
            RF_ASSERT(st == RF_OK);
        }
        m.w = (const uint8_t *)ts->wtile;
        m.w_stride = (size_t)m.K * sizeof(float);
    }
    /* X16: a tile starts on a group (a multiple of 16 rows); only the
     * tensor's last rows % 16 rows are in the file layout */
    const int64_t nx = r1 <= j->x16_rows ? m.nr : r0 < j->x16_rows ? j->x16_rows - r0 : 0;
    if (nx) {
        rf_mm_args mx = m;
        mx.nr = nx;
        j->fn_x16(&mx);
        m.w += (size_t)nx * m.w_stride;
        m.y += nx;
        m.nr -= nx;
    }
    if (m.nr) j->fn(&m);
}

/* Each thread walks its own contiguous share of the tiles from the front,
 * so its weight bytes are one stream (two threads taking alternate tiles
 * read ~10% slower: measured on Q6_K decode); a thread done early takes
 * tiles from the back of another's share, so one slowed by another process
 * does not hold the rest back. */
static void tiles_share(fast_ctx *c, int64_t n) {
    for (int i = 0; i < c->nth; i++) {
        int64_t lo, hi;
        rf_cpu_split(n, i, c->nth, &lo, &hi);
        atomic_store_explicit(&c->ts[i].tiles, (uint64_t)lo | (uint64_t)hi << 32, memory_order_relaxed);
    }
}

static int64_t tiles_next(fast_ctx *c, int ith) {
    for (int k = 0; k < c->nth; k++) {
        _Atomic uint64_t *r = &c->ts[(ith + k) % c->nth].tiles;
        uint64_t v = atomic_load_explicit(r, memory_order_relaxed);
        for (;;) {
            const uint32_t first = (uint32_t)v, end = (uint32_t)(v >> 32);
            if (first >= end) break;
            const uint64_t nv = k == 0 ? v + 1 : (uint64_t)first | (uint64_t)(end - 1) << 32;
            if (atomic_compare_exchange_weak_explicit(r, &v, nv, memory_order_relaxed, memory_order_relaxed))
                return k == 0 ? first : end - 1;
        }
    }
    return -1;
}

static void mm_task(void *p, int ith, int nth) {
    mm_job *j = p;
    thread_scratch *ts = &j->c->ts[ith];
    (void)nth;
    for (int64_t t; (t = tiles_next(j->c, ith)) >= 0;) mm_tile(j, ts, t);
}

typedef struct quant_job {
    rf_act_quant_fn fn;
    const float *x;
    uint8_t *a;
    size_t a_stride;
    int64_t K, n_tok;
} quant_job;

static void quant_task(void *p, int ith, int nth) {
    quant_job *q = p;
    int64_t lo, hi;
    rf_cpu_split(q->n_tok, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) q->fn(q->x + t * q->K, q->a + (size_t)t * q->a_stride, q->K);
}

/* ---- matmul: the prompt GEMM path ---------------------------------------------- */

/* Batches at least this large take the GEMM path where the set has one. */
enum { GEMM_MIN_TOK = 16 };

typedef struct gemm_job {
    fast_ctx *c;
    const rf_wview *w;
    rf_gemm_pack_fn pack;
    const uint8_t *act;  /* token groups */
    size_t act_group;    /* bytes per token group */
    float *y;
    int64_t n_tok, n_grp;
    int64_t rb, gb;      /* tile: rows (multiple of R), token groups */
    int64_t n_rb, n_tiles;
    atomic_int_fast64_t next;
} gemm_job;

static void gemm_tile(gemm_job *j, thread_scratch *ts, int64_t tile) {
    const rf_cpu_kernels *k = j->c->k;
    const rf_wview *w = j->w;
    const int R = k->gemm_rows, G = k->gemm_tok;
    const int64_t K = w->cols, rbi = tile % j->n_rb, gbi = tile / j->n_rb;
    const int64_t r0 = rbi * j->rb, r1 = r0 + j->rb < w->rows ? r0 + j->rb : w->rows;
    const int64_t g0 = gbi * j->gb, g1 = g0 + j->gb < j->n_grp ? g0 + j->gb : j->n_grp;
    const size_t pbytes = rf_gemm_panel_bytes(R, K);
    const int64_t np = (r1 - r0 + R - 1) / R;
    const int64_t x16_rows = w->layout == RF_WLAYOUT_X16 ? w->rows / 16 * 16 : 0;
    int fmt = 0;
    for (int64_t p = 0; p < np; p++) {
        const int64_t pr = r0 + p * R;
        const int nr = (int)(r1 - pr < R ? r1 - pr : R);
        const uint8_t *src = (const uint8_t *)w->data + (size_t)pr * w->row_bytes;
        if (pr < x16_rows) {
            RF_ASSERT(16 % R == 0); /* R divides 16: the panel lies in one group; unpack it once */
            const uint8_t *grp = (const uint8_t *)w->data + (size_t)(pr / 16 * 16) * w->row_bytes;
            if (pr % 16 == 0) rf_cpu_x16_unpack(w->type, K, grp, w->row_bytes, ts->rows);
            src = ts->rows + (size_t)(pr % 16) * w->row_bytes;
        }
        fmt = j->pack(src, w->row_bytes, nr, K, ts->panel + p * pbytes);
    }
    for (int64_t g = g0; g < g1; g++) {
        const int64_t t0 = g * G, nt = j->n_tok - t0 < G ? j->n_tok - t0 : G;
        for (int64_t p = 0; p < np; p++) {
            const int64_t pr = r0 + p * R, nr = r1 - pr < R ? r1 - pr : R;
            k->gemm(ts->panel + p * pbytes, fmt, K, j->act + (size_t)g * j->act_group, j->y + t0 * w->rows + pr, w->rows,
                    (int)nt, (int)nr);
        }
    }
}

static void gemm_task(void *p, int ith, int nth) {
    gemm_job *j = p;
    thread_scratch *ts = &j->c->ts[ith];
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (t >= j->n_tiles) break;
        gemm_tile(j, ts, t);
    }
}

typedef struct gquant_job {
    const rf_cpu_kernels *k;
    const float *x;
    uint8_t *act;
    size_t act_group;
    int64_t K, n_tok, n_grp;
} gquant_job;

static void gquant_task(void *p, int ith, int nth) {
    gquant_job *q = p;
    const int G = q->k->gemm_tok;
    int64_t lo, hi;
    rf_cpu_split(q->n_grp, ith, nth, &lo, &hi);
    for (int64_t g = lo; g < hi; g++) {
        const int64_t nt = q->n_tok - g * G < G ? q->n_tok - g * G : G;
        q->k->gemm_quant(q->x + g * G * q->K, q->K, (int)nt, q->K, q->act + (size_t)g * q->act_group);
    }
}

static void gemm_matmul(fast_ctx *c, const rf_wview *w, const float *x, float *y, int64_t n_tok) {
    const rf_cpu_kernels *k = c->k;
    const int R = k->gemm_rows, G = k->gemm_tok;
    const int64_t K = w->cols;
    gemm_job j = {.c = c, .w = w, .pack = k->gemm_pack[w->type], .y = y, .n_tok = n_tok};
    j.n_grp = (n_tok + G - 1) / G;
    j.act_group = rf_gemm_act_bytes(G, K);
    RF_ASSERT(grow((void **)&c->act, &c->act_cap, j.act_group * (size_t)j.n_grp));
    gquant_job q = {k, x, c->act, j.act_group, K, n_tok, j.n_grp};
    if (c->nth > 1 && j.n_grp > 1) rf_threadpool_run(c->tp, gquant_task, &q);
    else gquant_task(&q, 0, 1);
    j.act = c->act;
    /* tiles: the panels of a tile's rows stay in L2 (~384 KiB) while the
     * tile's token groups (<= ~1 MiB of activations) stream past them */
    int64_t rb = (int64_t)((384u << 10) / rf_gemm_panel_bytes(1, K));
    rb = rb < 16 ? 16 : rb > 64 ? 64 : rb;
    rb -= rb % 16; /* whole cache lines of y per thread, and a multiple of R */
    const int64_t per_thread = (w->rows + c->nth - 1) / c->nth; /* no thread left without rows */
    while (rb > 16 && rb > (per_thread + 1) / 2) rb -= 16;
    RF_ASSERT(rb % R == 0);
    j.rb = rb;
    j.n_rb = (w->rows + rb - 1) / rb;
    int64_t gb = (int64_t)((1u << 20) / j.act_group);
    j.gb = gb < 1 ? 1 : gb > j.n_grp ? j.n_grp : gb;
    j.n_tiles = j.n_rb * ((j.n_grp + j.gb - 1) / j.gb);
    atomic_init(&j.next, 0);
    const size_t pb = rf_gemm_panel_bytes(R, K) * (size_t)((rb + R - 1) / R);
    for (int i = 0; i < c->nth; i++) {
        RF_ASSERT(grow((void **)&c->ts[i].panel, &c->ts[i].panel_cap, pb));
        if (w->layout == RF_WLAYOUT_X16) RF_ASSERT(grow((void **)&c->ts[i].rows, &c->ts[i].rows_cap, 16 * w->row_bytes));
    }
    if (c->nth > 1 && j.n_tiles > 1) rf_threadpool_run(c->tp, gemm_task, &j);
    else gemm_task(&j, 0, 1);
}

/* Returns which path ran (for the trace). */
static const char *matmul(fast_ctx *c, const rf_wview *w, const float *x, float *y, int64_t n_tok) {
    if (n_tok >= GEMM_MIN_TOK && c->k->gemm && c->k->gemm_pack[w->type]) {
        gemm_matmul(c, w, x, y, n_tok);
        return "gemm";
    }
    const int64_t K = w->cols;
    rf_mm_fn fn = c->k->mm[w->type];
    const bool dequant = fn == NULL;
    const rf_act_fmt fmt = dequant ? RF_ACT_F32 : (rf_act_fmt)rf_cpu_act_fmt[w->type];
    if (dequant) fn = c->k->mm[RF_TYPE_F32];
    RF_ASSERT(fn && (dequant ? rf_type_get(w->type) && rf_type_get(w->type)->to_float : true));

    const uint8_t *a = (const uint8_t *)x;
    size_t a_stride = (size_t)K * sizeof(float);
    if (fmt != RF_ACT_F32) {
        a_stride = rf_act_row_bytes(fmt, K);
        RF_ASSERT(grow((void **)&c->act, &c->act_cap, a_stride * (size_t)n_tok));
        quant_job q = {c->k->quant[fmt], x, c->act, a_stride, K, n_tok};
        if (n_tok >= 4 && c->nth > 1) rf_threadpool_run(c->tp, quant_task, &q);
        else quant_task(&q, 0, 1);
        a = c->act;
    }

    /* Tiles: rows in multiples of 16; tokens in blocks whose activations
     * stay in L2 while a thread walks its rows. */
    mm_job j = {.c = c, .w = w, .fn = fn, .dequant = dequant, .a = a, .a_stride = a_stride, .y = y, .n_tok = n_tok};
    if (w->layout == RF_WLAYOUT_X16) {
        j.fn_x16 = c->k->mm_x16[w->type];
        j.x16_rows = w->rows / 16 * 16;
        RF_ASSERT(j.fn_x16 && !dequant);
    }
    int64_t tb = (int64_t)((1u << 20) / a_stride);
    tb = tb < 4 ? 4 : tb & ~(int64_t)3;
    j.tb = n_tok < tb ? n_tok : tb;
    const int64_t n_tb = (n_tok + j.tb - 1) / j.tb;
    /* aim for >= 8 tiles per thread so uneven progress evens out */
    int64_t rb = (w->rows * n_tb + 8 * c->nth - 1) / (8 * c->nth * n_tb);
    const int64_t rb_max = dequant ? 16 : (int64_t)((256u << 10) / (w->row_bytes ? w->row_bytes : 1));
    if (rb > rb_max) rb = rb_max;
    rb = (rb + 15) & ~(int64_t)15;
    if (rb < 16) rb = 16;
    j.rb = rb;
    j.n_rb = (w->rows + rb - 1) / rb;
    j.n_tiles = j.n_rb * n_tb;
    RF_ASSERT(j.n_tiles < ((int64_t)1 << 32));
    tiles_share(c, j.n_tiles);
    if (dequant) {
        for (int i = 0; i < c->nth; i++) {
            thread_scratch *ts = &c->ts[i];
            RF_ASSERT(grow((void **)&ts->wtile, &ts->wtile_cap, (size_t)(rb * K) * sizeof(float)));
        }
    }
    if (c->nth > 1 && j.n_tiles > 1 && w->rows * K * n_tok >= PAR_MIN_WORK) rf_threadpool_run(c->tp, mm_task, &j);
    else mm_task(&j, 0, 1);
    return dequant ? "dequant" : "rows";
}

static void cpu_matmul(void *ctx, const rf_wview *w, const float *x, float *y, int64_t n_tok) {
    fast_ctx *c = ctx;
    if (!c->trace) {
        matmul(c, w, x, y, n_tok);
        return;
    }
    const double t0 = rf_time_now();
    const char *path = matmul(c, w, x, y, n_tok);
    rf_cpu_trace_event(c->trace, "matmul", rf_type_name(w->type), path, t0, rf_time_now(), w->rows, w->cols, n_tok,
                       (uint64_t)w->rows * w->row_bytes, -1);
}

/* ---- per-row float ops ------------------------------------------------------ */

typedef struct rows_job {
    fast_ctx *c;
    const float *x, *w;
    float *y;
    int64_t n_rows, dim;
    float eps;
} rows_job;

static void rmsnorm_task(void *p, int ith, int nth) {
    rows_job *j = p;
    int64_t lo, hi;
    rf_cpu_split(j->n_rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) j->c->k->rmsnorm(j->x + r * j->dim, j->w, j->y + r * j->dim, j->dim, j->eps);
}

static void cpu_rmsnorm(void *ctx, const float *x, const float *w, float *y, int64_t n_rows, int64_t dim, float eps) {
    fast_ctx *c = ctx;
    rows_job j = {c, x, w, y, n_rows, dim, eps};
    const double t0 = c->trace ? rf_time_now() : 0.0;
    if (c->nth > 1 && n_rows >= 2 && n_rows * dim >= PAR_MIN_WORK) rf_threadpool_run(c->tp, rmsnorm_task, &j);
    else rmsnorm_task(&j, 0, 1);
    if (c->trace)
        rf_cpu_trace_event(c->trace, "rmsnorm", "F32", "", t0, rf_time_now(), n_rows, dim, n_rows,
                           (uint64_t)(n_rows * dim) * 4, -1);
}

typedef struct glu_job {
    fast_ctx *c;
    rf_act act;
    const float *g, *u;
    float *out;
    int64_t n;
} glu_job;

static void glu_task(void *p, int ith, int nth) {
    glu_job *j = p;
    int64_t lo, hi;
    rf_cpu_split(j->n / 16, ith, nth, &lo, &hi); /* 16-float chunks: no shared cache lines */
    lo *= 16;
    hi = ith == nth - 1 ? j->n : hi * 16;
    if (hi <= lo) return;
    if (j->act == RF_ACT_SILU) j->c->k->swiglu(j->g + lo, j->u + lo, j->out + lo, hi - lo);
    else j->c->k->geglu(j->g + lo, j->u + lo, j->out + lo, hi - lo);
}

static void cpu_glu(void *ctx, rf_act act, const float *gate, const float *up, float *out, int64_t n) {
    fast_ctx *c = ctx;
    glu_job j = {c, act, gate, up, out, n};
    const double t0 = c->trace ? rf_time_now() : 0.0;
    if (c->nth > 1 && n >= PAR_MIN_WORK) rf_threadpool_run(c->tp, glu_task, &j);
    else glu_task(&j, 0, 1);
    if (c->trace)
        rf_cpu_trace_event(c->trace, act == RF_ACT_SILU ? "swiglu" : "geglu", "F32", "", t0, rf_time_now(), 1, n, 0,
                           (uint64_t)n * 8, -1);
}

/* Rotary embedding. The angle of pair i at position p is p * scale *
 * base^(-2i / n_rot) (/ freq_div[i]); sin/cos are computed once per token
 * and pair, in double like the reference, and applied to every head. */
typedef struct rope_job {
    float *x;
    const int32_t *pos;
    int64_t n_tok, n_heads, head_dim;
    const rf_rope_params *p;
    const double *freq;
} rope_job;

static void rope_task(void *arg, int ith, int nth) {
    const rope_job *j = arg;
    const rf_rope_params *p = j->p;
    const int64_t half = p->n_rot / 2;
    float cs[512], sn[512];
    int64_t lo, hi;
    rf_cpu_split(j->n_tok, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        const double ppos = (double)j->pos[t] * (double)p->pos_scale;
        for (int64_t i = 0; i < half; i++) {
            const double theta = ppos * j->freq[i];
            cs[i] = (float)cos(theta);
            sn[i] = (float)sin(theta);
        }
        for (int64_t h = 0; h < j->n_heads; h++) {
            float *v = j->x + (t * j->n_heads + h) * j->head_dim;
            if (p->style == RF_ROPE_NEOX) {
                for (int64_t i = 0; i < half; i++) {
                    const float x0 = v[i], x1 = v[i + half];
                    v[i] = x0 * cs[i] - x1 * sn[i];
                    v[i + half] = x0 * sn[i] + x1 * cs[i];
                }
            } else {
                for (int64_t i = 0; i < half; i++) {
                    const float x0 = v[2 * i], x1 = v[2 * i + 1];
                    v[2 * i] = x0 * cs[i] - x1 * sn[i];
                    v[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
                }
            }
        }
    }
}

static void cpu_rope(void *ctx, float *x, const int32_t *pos, int64_t n_tok, int64_t n_heads, int64_t head_dim,
                     const rf_rope_params *p) {
    fast_ctx *c = ctx;
    const int64_t half = p->n_rot / 2;
    double freq[512];
    RF_ASSERT(half <= 512);
    for (int64_t i = 0; i < half; i++) {
        freq[i] = pow((double)p->base, -2.0 * (double)i / (double)p->n_rot);
        if (p->freq_div) freq[i] /= (double)p->freq_div[i];
    }
    rope_job j = {x, pos, n_tok, n_heads, head_dim, p, freq};
    const double t0 = c->trace ? rf_time_now() : 0.0;
    if (c->nth > 1 && n_tok >= 8) rf_threadpool_run(c->tp, rope_task, &j);
    else rope_task(&j, 0, 1);
    if (c->trace)
        rf_cpu_trace_event(c->trace, "rope", "F32", p->style == RF_ROPE_NEOX ? "neox" : "normal", t0, rf_time_now(),
                           n_heads, head_dim, n_tok, (uint64_t)(n_tok * n_heads * head_dim) * 4, -1);
}

/* The embedding lookup opens every forward pass: the trace counts passes here. */
static void cpu_get_rows(void *ctx, const rf_wview *w, const int32_t *ids, int64_t n, float *out) {
    fast_ctx *c = ctx;
    const double t0 = c->trace ? rf_time_now() : 0.0;
    rf_cpu_trace_pass(c->trace);
    const int64_t x16_rows = w->layout == RF_WLAYOUT_X16 ? w->rows / 16 * 16 : 0;
    if (x16_rows) RF_ASSERT(grow((void **)&c->ts[0].rows, &c->ts[0].rows_cap, w->row_bytes));
    for (int64_t t = 0; t < n; t++) {
        RF_ASSERT(ids[t] >= 0 && ids[t] < w->rows);
        const uint8_t *row = (const uint8_t *)w->data + (size_t)ids[t] * w->row_bytes;
        if (ids[t] < x16_rows) { /* the row back out of its group */
            rf_cpu_x16_row(w->type, w->cols, (const uint8_t *)w->data + (size_t)(ids[t] / 16 * 16) * w->row_bytes,
                           ids[t] % 16, c->ts[0].rows);
            row = c->ts[0].rows;
        }
        rf_status st = rf_dequantize_row(w->type, row, out + t * w->cols, w->cols);
        RF_ASSERT(st == RF_OK);
    }
    if (c->trace)
        rf_cpu_trace_event(c->trace, "get_rows", rf_type_name(w->type), "", t0, rf_time_now(), n, w->cols, n,
                           (uint64_t)n * w->row_bytes, -1);
}

/* ---- attention -------------------------------------------------------------- */

/* A unit is (first token, token count, kv head); tokens of a unit are
 * consecutive batch entries of one sequence. */
typedef struct attn_job {
    fast_ctx *c;
    const rf_attn_args *a;
    int64_t n_units, block;
    atomic_int_fast64_t next;
} attn_job;

static size_t attn_scratch_floats(int64_t hd) {
    return (size_t)(RF_ATTN_MAX_Q * (2 * hd + RF_ATTN_MAX_P + 4) + 2 * RF_ATTN_MAX_P * hd) + 16;
}

static void attn_unit(attn_job *j, thread_scratch *ts, int64_t u) {
    const rf_attn_args *a = j->a;
    const int32_t *unit = j->c->units + 3 * u;
    const int64_t t0 = unit[0], nt = unit[1], kvh = unit[2], Q = RF_ATTN_MAX_Q;
    const int64_t hd = a->head_dim, group = a->n_head / a->n_head_kv, kvd = a->n_head_kv * hd;
    const int32_t seq = a->seq[t0];
    /* carve the scratch: 64-byte aligned pieces */
    float *f = (float *)(((uintptr_t)ts->attn + 63) & ~(uintptr_t)63);
    rf_attn_tile tile = {.hd = hd, .nq = (int)(nt * group)};
    float *q = f; f += Q * hd;
    tile.o = f; f += Q * hd;
    tile.m = f; f += Q;
    tile.l = f; f += Q;
    int32_t *last = (int32_t *)(void *)f; f += Q;
    int32_t *first = (int32_t *)(void *)f; f += Q;
    tile.s = f; f += Q * RF_ATTN_MAX_P;
    tile.kf = f; f += RF_ATTN_MAX_P * hd;
    tile.vf = f;
    tile.q = q;
    tile.last = last;
    tile.first = first;
    int32_t lo = INT32_MAX, hi = -1;
    for (int64_t i = 0; i < Q; i++) {
        last[i] = -1;
        first[i] = 0;
        tile.m[i] = -INFINITY;
        tile.l[i] = 0.0f;
    }
    for (int64_t tt = 0; tt < nt; tt++) {
        const int64_t t = t0 + tt;
        const int32_t p = a->pos[t];
        const int32_t f0 = a->window > 0 && p - a->window + 1 > 0 ? (int32_t)(p - a->window + 1) : 0;
        for (int64_t g = 0; g < group; g++) {
            const int64_t i = tt * group + g, h = kvh * group + g;
            const float *src = a->q + (t * a->n_head + h) * hd;
            for (int64_t d = 0; d < hd; d++) q[d * Q + i] = src[d] * a->scale;
            last[i] = p;
            first[i] = f0;
        }
        lo = f0 < lo ? f0 : lo;
        hi = p > hi ? p : hi;
    }
    for (int64_t d = 0; d < hd; d++)
        for (int64_t i = tile.nq; i < Q; i++) q[d * Q + i] = 0.0f;
    memset(tile.o, 0, (size_t)(Q * hd) * sizeof(float));
    for (int32_t p = lo; p <= hi;) {
        int64_t end = (p / j->block + 1) * j->block;
        if (end > (int64_t)hi + 1) end = (int64_t)hi + 1;
        if (end - p > RF_ATTN_MAX_P) end = p + RF_ATTN_MAX_P;
        const uint16_t *kp = rf_kv_k(a->kv, a->layer, seq, p) + kvh * hd;
        const uint16_t *vp = rf_kv_v(a->kv, a->layer, seq, p) + kvh * hd;
        j->c->k->attn(&tile, p, (int)(end - p), kp, vp, kvd);
        p = (int32_t)end;
    }
    for (int64_t tt = 0; tt < nt; tt++)
        for (int64_t g = 0; g < group; g++) {
            const int64_t i = tt * group + g, h = kvh * group + g;
            float *dst = a->out + ((t0 + tt) * a->n_head + h) * hd;
            const float inv = tile.l[i] > 0.0f ? 1.0f / tile.l[i] : 0.0f;
            for (int64_t d = 0; d < hd; d++) dst[d] = tile.o[d * Q + i] * inv;
        }
}

static void attn_task(void *p, int ith, int nth) {
    attn_job *j = p;
    thread_scratch *ts = &j->c->ts[ith];
    for (;;) {
        int64_t u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (u >= j->n_units) break;
        attn_unit(j, ts, u);
    }
}

static void cpu_attention(void *ctx, const rf_attn_args *a) {
    fast_ctx *c = ctx;
    const int64_t group = a->n_head / a->n_head_kv;
    RF_ASSERT(a->n_head % a->n_head_kv == 0 && group <= RF_ATTN_MAX_Q);
    const int64_t tq = RF_ATTN_MAX_Q / group; /* tokens per unit */
    for (int i = 0; i < c->nth; i++) {
        thread_scratch *ts = &c->ts[i];
        RF_ASSERT(grow((void **)&ts->attn, &ts->attn_cap, attn_scratch_floats(a->head_dim) * sizeof(float)));
    }
    RF_ASSERT(grow((void **)&c->units, &c->units_cap, (size_t)(3 * a->n_tok * a->n_head_kv) * sizeof(int32_t)));
    int64_t n = 0;
    for (int64_t t = 0; t < a->n_tok;) {
        int64_t e = t + 1;
        while (e < a->n_tok && e - t < tq && a->seq[e] == a->seq[t]) e++;
        for (int64_t h = 0; h < a->n_head_kv; h++) {
            c->units[3 * n] = (int32_t)t;
            c->units[3 * n + 1] = (int32_t)(e - t);
            c->units[3 * n + 2] = (int32_t)h;
            n++;
        }
        t = e;
    }
    attn_job j = {.c = c, .a = a, .n_units = n, .block = rf_kv_get_config(a->kv)->block_size};
    atomic_init(&j.next, 0);
    const double t0 = c->trace ? rf_time_now() : 0.0;
    if (c->nth > 1 && n > 1) rf_threadpool_run(c->tp, attn_task, &j);
    else attn_task(&j, 0, 1);
    if (c->trace) {
        /* bytes: the fp16 keys and values each token attends to */
        uint64_t pos = 0;
        for (int64_t t = 0; t < a->n_tok; t++)
            pos += (uint64_t)(a->window > 0 && a->pos[t] + 1 > a->window ? a->window : a->pos[t] + 1);
        rf_cpu_trace_event(c->trace, "attention", "F16", "", t0, rf_time_now(), a->n_head, a->head_dim, a->n_tok,
                           pos * (uint64_t)(a->n_head_kv * a->head_dim) * 4, a->layer);
    }
}

/* ---- the op table and the backend ------------------------------------------- */

static bool cpu_supports(void *ctx, rf_op op, uint32_t type) {
    const rf_type_info *ti = rf_type_get(type);
    return op != RF_OP_MATMUL && op != RF_OP_GET_ROWS ? true : ti && ti->to_float;
}

static const rf_backend_ops fast_ops = {
    .name = "cpu",
    .supports = cpu_supports,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .glu = cpu_glu,
    .get_rows = cpu_get_rows,
};

static void fast_ctx_free(fast_ctx *c) {
    if (!c) return;
    if (c->ts)
        for (int i = 0; i < c->nth; i++) {
            rf_free(c->ts[i].wtile);
            rf_free(c->ts[i].attn);
            rf_free(c->ts[i].panel);
            rf_free(c->ts[i].rows);
        }
    rf_free(c->ts);
    rf_free(c->act);
    rf_free(c->units);
    rf_cpu_trace_close(c->trace);
    rf_free(c);
}

static rf_status create_with(rf_threadpool *tp, const rf_cpu_kernels *k, bool ref, rf_backend *out, rf_error *err) {
    if (ref) {
        void *rc = rf_cpu_ref_ctx_create(tp);
        if (!rc) return rf_error_set(err, RF_E_NOMEM, "cpu backend: out of memory");
        out->ops = &rf_cpu_ref_ops;
        out->ctx = rc;
        return RF_OK;
    }
    fast_ctx *c = rf_calloc(1, sizeof *c);
    if (c) {
        c->tp = tp;
        c->k = k;
        c->nth = rf_threadpool_size(tp);
        c->ts = rf_calloc((size_t)c->nth, sizeof *c->ts);
    }
    if (!c || !c->ts) {
        fast_ctx_free(c);
        return rf_error_set(err, RF_E_NOMEM, "cpu backend: out of memory");
    }
    out->ops = &fast_ops;
    out->ctx = c;
    return RF_OK;
}

rf_status rf_cpu_backend_create(rf_threadpool *tp, rf_backend *out, rf_error *err) {
    rf_status st = create_with(tp, rf_cpu_kernels_best(), rf_cpu_use_ref(), out, err);
    const char *trace = getenv("ROCMFORGE_TRACE");
    if (st == RF_OK && trace && *trace && out->ops != &rf_cpu_ref_ops) {
        st = rf_cpu_backend_trace(out, trace, err);
        if (st != RF_OK) rf_cpu_backend_free(out);
    }
    return st;
}

rf_status rf_cpu_backend_trace(rf_backend *b, const char *path, rf_error *err) {
    if (!b || !b->ctx || b->ops != &fast_ops)
        return rf_error_set(err, RF_E_UNSUPPORTED, "trace: only the fast CPU backend records op timings");
    fast_ctx *c = b->ctx;
    rf_cpu_trace_close(c->trace); /* a previous trace is written out */
    c->trace = rf_cpu_trace_open(path, c->k->name);
    if (!c->trace) return rf_error_set(err, RF_E_NOMEM, "trace: out of memory for the event buffer");
    return RF_OK;
}

rf_status rf_cpu_backend_create_named(rf_threadpool *tp, const char *set, rf_backend *out, rf_error *err) {
    if (strcmp(set, "ref") == 0) return create_with(tp, NULL, true, out, err);
    const rf_cpu_kernels *k = rf_cpu_kernels_by_name(set);
    if (!k) return rf_error_set(err, RF_E_UNSUPPORTED, "cpu backend: kernel set '%s' is not available on this CPU", set);
    return create_with(tp, k, false, out, err);
}

void rf_cpu_backend_free(rf_backend *b) {
    if (!b || !b->ctx) return;
    if (b->ops == &rf_cpu_ref_ops) rf_cpu_ref_ctx_free(b->ctx);
    else fast_ctx_free(b->ctx);
    b->ctx = NULL;
}

bool rf_cpu_backend_repack(rf_backend *b, rf_wview *w) {
    if (!b || !b->ctx || b->ops != &fast_ops || !w || !w->data || w->layout != RF_WLAYOUT_ROWS || w->rows < 16) return false;
    const fast_ctx *c = b->ctx;
    if (!c->k->mm_x16[w->type] || !rf_cpu_x16_ok(w->type, w->cols)) return false;
    uint8_t *tmp = rf_malloc(16 * w->row_bytes);
    if (!tmp) return false;
    uint8_t *data = (uint8_t *)(uintptr_t)w->data; /* the caller vouches that it is writable */
    for (int64_t r = 0; r + 16 <= w->rows; r += 16) {
        uint8_t *grp = data + (size_t)r * w->row_bytes;
        rf_cpu_x16_pack(w->type, w->cols, grp, w->row_bytes, tmp);
        memcpy(grp, tmp, 16 * w->row_bytes);
    }
    rf_free(tmp);
    w->layout = RF_WLAYOUT_X16;
    return true;
}

const char *rf_cpu_backend_isa(const rf_backend *b) {
    if (!b || !b->ctx) return "?";
    if (b->ops == &rf_cpu_ref_ops) return "ref";
    return ((const fast_ctx *)b->ctx)->k->name;
}
