/*
 * op_suite.c - the GPU op suite: every kernel of src/gpu/kernels against the
 * CPU scalar reference (src/cpu/ops_ref.c's op table, src/quant's reference
 * quantizers and dequantizers), in the manner of llama.cpp's
 * test-backend-ops. Each case draws fresh random inputs (seed printed;
 * RF_SEED=n repeats a run), poisons the GPU output with NaN bytes so an
 * unwritten element fails, runs both sides and compares by normalized MSE,
 * sum (gpu - ref)^2 / sum ref^2, against a per-op threshold. One line per
 * case; the exit status is non-zero if any case fails or errs.
 *
 * `op_suite --bench` instead times the decode mat-vec on 8B-like shapes, the
 * prefill matmul and attention, and reports achieved bandwidth / throughput;
 * `--bench-batch` the batched-decode matmul at 1..64 tokens;
 * `op_suite --host-only` runs only the wrapper checks of host_checks.c,
 * which need no GPU.
 *
 * Thresholds: the GPU kernels read float32 activations and accumulate in
 * float32; the references accumulate in double. The distance is therefore
 * float rounding only (NMSE ~1e-13 here), and the limits are set far above
 * that yet far below any real defect (a wrong nibble or scale gives >1e-4).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/core.h"
#include "core/threadpool.h"
#include "cpu/cpu-impl.h"
#include "gpu/kernels/devrt.h"
#include "gpu/kernels/kernels.h"
#include "kv/kv.h"
#include "model/moe_route.h"
#include "quant/quant.h"

/* ---- harness ------------------------------------------------------------- */

static uint64_t rng_state;
static int n_fail, n_pass;
static rfk_ctx kctx;
static const rf_backend_ops *ref = &rf_cpu_ref_ops;
static void *ref_ctx;

static uint64_t rng_next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static float rng_uniform(void) { return (float)((rng_next() >> 40) + 0.5) / (float)(1u << 24); } /* (0, 1) */
static float rng_normal(void) {
    return sqrtf(-2.0f * logf(rng_uniform())) * cosf(6.2831853f * rng_uniform());
}
static int64_t rng_int(int64_t n) { return (int64_t)(rng_next() % (uint64_t)n); }
static void fill_normal(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = rng_normal() * scale;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "op_suite: out of host memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}
static void *dev_alloc(size_t n) {
    void *p = rfk_rt_alloc(n);
    if (!p) {
        fprintf(stderr, "op_suite: out of device memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}
static void *dev_upload(const void *h, size_t n) {
    void *d = dev_alloc(n);
    int st = rfk_rt_upload(d, h, n);
    if (st) {
        fprintf(stderr, "op_suite: upload failed: %s\n", rfk_rt_error_str(st));
        exit(2);
    }
    return d;
}
/* NaN bytes in the output, so an element the kernel never writes fails. */
static float *dev_poisoned(size_t n_floats) {
    float *d = dev_alloc(n_floats * sizeof(float));
    (void)rfk_rt_memset(d, 0xFF, n_floats * sizeof(float));
    return d;
}

/* NMSE of a against reference b; +inf if a has a non-finite value. */
static double nmse(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

/* Reports a case: the launch status, the sync status, then the distance. */
static void report(const char *op, const char *what, int launch_st, const float *gpu_host, const float *ref_out,
                   int64_t n, double limit) {
    int sync_st = rfk_rt_sync();
    if (launch_st || sync_st) {
        n_fail++;
        printf("FAIL %-10s %-40s launch %d (%s) sync %d (%s)\n", op, what, launch_st,
               launch_st > 0 ? rfk_rt_error_str(launch_st) : rfk_status_str(launch_st), sync_st,
               rfk_rt_error_str(sync_st));
        return;
    }
    /* every call leaves the K split's tickets at 0 (rfk_ctx.mmq_split) */
    static int tk[RFK_MMQ_TICKETS];
    if (kctx.mmq_split && rfk_rt_download(tk, kctx.mmq_split, sizeof tk) == 0) {
        for (int i = 0; i < RFK_MMQ_TICKETS; i++)
            if (tk[i]) {
                n_fail++;
                printf("FAIL %-10s %-40s split ticket %d left at %d\n", op, what, i, tk[i]);
                (void)rfk_rt_memset(kctx.mmq_split, 0, sizeof tk);
                return;
            }
    }
    double e = nmse(gpu_host, ref_out, n);
    bool ok = e <= limit;
    ok ? n_pass++ : n_fail++;
    printf("%s %-10s %-40s nmse %.3e (limit %.0e)\n", ok ? "ok  " : "FAIL", op, what, e, limit);
}

static void download(float *h, const float *d, int64_t n) {
    int st = rfk_rt_download(h, d, (size_t)n * sizeof(float));
    if (st) printf("     download failed: %s\n", rfk_rt_error_str(st));
}

/* ---- matmul and get_rows ------------------------------------------------ */

static const rf_type mm_types[] = {RF_TYPE_F32,  RF_TYPE_F16,  RF_TYPE_BF16, RF_TYPE_Q4_0,   RF_TYPE_Q4_1,
                                   RF_TYPE_Q5_0, RF_TYPE_Q5_1, RF_TYPE_Q8_0, RF_TYPE_Q2_K,   RF_TYPE_Q3_K,
                                   RF_TYPE_Q4_K, RF_TYPE_Q5_K, RF_TYPE_Q6_K, RF_TYPE_IQ4_NL, RF_TYPE_IQ4_XS};

/* rows x cols random weights of type t (quantized from N(0,1) by the
 * reference quantizer). Caller frees. */
static uint8_t *random_weights(rf_type t, int64_t rows, int64_t cols, size_t *row_bytes) {
    size_t rb = rf_row_size(t, cols);
    uint8_t *w = xmalloc(rb * (size_t)rows);
    float *tmp = xmalloc((size_t)cols * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        fill_normal(tmp, cols, 1.0f);
        rf_status st = rf_quantize_row(t, tmp, w + (size_t)r * rb, cols);
        RF_ASSERT(st == RF_OK);
    }
    free(tmp);
    *row_bytes = rb;
    return w;
}

/* with_scratch: give rfk_matmul its scratch, so the integer-dot types take
 * the q8-activation path: NMSE limit 5e-4 as llama.cpp's test-backend-ops
 * uses for quantized activations (measured ~1e-4 on N(0,1) data). */
static void test_matmul(rf_type t, int64_t rows, int64_t cols, int64_t n_tok, bool with_scratch) {
    size_t rb;
    uint8_t *w = random_weights(t, rows, cols, &rb);
    float *x = xmalloc((size_t)(n_tok * cols) * sizeof(float));
    float *y_ref = xmalloc((size_t)(n_tok * rows) * sizeof(float));
    float *y_gpu = xmalloc((size_t)(n_tok * rows) * sizeof(float));
    fill_normal(x, n_tok * cols, 1.0f);
    rf_wview wv = {w, t, cols, rows, rb, RF_WLAYOUT_ROWS};
    ref->matmul(ref_ctx, &wv, x, y_ref, n_tok);

    void *dw = dev_upload(w, rb * (size_t)rows);
    float *dx = dev_upload(x, (size_t)(n_tok * cols) * sizeof(float));
    float *dy = dev_poisoned((size_t)(n_tok * rows));
    const size_t sb = with_scratch ? rfk_matmul_scratch_bytes(t, cols, n_tok) : 0;
    void *scratch = sb ? dev_alloc(sb) : NULL;
    int st = rfk_matmul(&kctx, NULL, t, dw, rb, cols, rows, dx, dy, n_tok, scratch, sb);
    (void)rfk_rt_sync();
    download(y_gpu, dy, n_tok * rows);
    char what[96];
    const bool q8 = scratch && n_tok <= 64;
    snprintf(what, sizeof what, "%s rows=%lld cols=%lld n_tok=%lld%s%s", rf_type_name(t), (long long)rows,
             (long long)cols, (long long)n_tok, q8 ? " q8-act" : "",
             kctx.mmq_f16 == 1 ? " (f16 mmq)" : kctx.mmq_f16 == 2 ? " (int8 mmq)" : "");
    report("matmul", what, st, y_gpu, y_ref, n_tok * rows, q8 ? 5e-4 : 1e-9);
    rfk_rt_free(scratch);
    rfk_rt_free(dw), rfk_rt_free(dx), rfk_rt_free(dy);
    free(w), free(x), free(y_ref), free(y_gpu);
}

static void test_get_rows(rf_type t, int64_t rows, int64_t cols, int64_t n) {
    size_t rb;
    uint8_t *w = random_weights(t, rows, cols, &rb);
    int32_t *ids = xmalloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)rng_int(rows);
    float *o_ref = xmalloc((size_t)(n * cols) * sizeof(float));
    float *o_gpu = xmalloc((size_t)(n * cols) * sizeof(float));
    rf_wview wv = {w, t, cols, rows, rb, RF_WLAYOUT_ROWS};
    ref->get_rows(ref_ctx, &wv, ids, n, o_ref);
    void *dw = dev_upload(w, rb * (size_t)rows);
    int32_t *did = dev_upload(ids, (size_t)n * sizeof(int32_t));
    float *dout = dev_poisoned((size_t)(n * cols));
    int st = rfk_get_rows(&kctx, NULL, t, dw, rb, cols, rows, did, n, dout);
    (void)rfk_rt_sync();
    download(o_gpu, dout, n * cols);
    char what[96];
    snprintf(what, sizeof what, "%s rows=%lld cols=%lld n=%lld", rf_type_name(t), (long long)rows, (long long)cols,
             (long long)n);
    /* Dequantization is the reference's arithmetic; only contraction of
     * d * q + m into one fused multiply-add can differ (1 ulp). */
    report("get_rows", what, st, o_gpu, o_ref, n * cols, 1e-12);
    rfk_rt_free(dw), rfk_rt_free(did), rfk_rt_free(dout);
    free(w), free(ids), free(o_ref), free(o_gpu);
}

/* The (cos, sin) table the GPU rope kernels take, as the forward pass builds
 * it (src/model/forward.c rope_table, here without scaling), from the same
 * formula in double: cs[t][2i], cs[t][2i + 1] for frequency i. */
static void rope_table(float *cs, const int32_t *pos, int64_t n_tok, int64_t n_rot) {
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t i = 0; i < n_rot / 2; i++) {
            double theta = (double)pos[t] * pow(10000.0, -2.0 * (double)i / (double)n_rot);
            cs[t * n_rot + 2 * i] = (float)cos(theta);
            cs[t * n_rot + 2 * i + 1] = (float)sin(theta);
        }
}

/* ---- BLAS prefill operands and the split / pre-quantized mat-vec ---------- */

/* rfk_dequant_f16 against the reference dequantization rounded to float16
 * on the host (round to nearest even on both sides): equal but for the
 * rare tie a 1-ulp float difference (fused multiply-add) moves. */
static void test_dequant_f16(rf_type t, int64_t rows, int64_t cols) {
    size_t rb;
    uint8_t *w = random_weights(t, rows, cols, &rb);
    const int64_t n = rows * cols;
    int32_t *ids = xmalloc((size_t)rows * sizeof(int32_t));
    for (int64_t i = 0; i < rows; i++) ids[i] = (int32_t)i;
    float *ref_f = xmalloc((size_t)n * 4), *gpu_f = xmalloc((size_t)n * 4);
    uint16_t *h = xmalloc((size_t)n * 2);
    rf_wview wv = {w, t, cols, rows, rb, RF_WLAYOUT_ROWS};
    ref->get_rows(ref_ctx, &wv, ids, rows, ref_f);
    for (int64_t i = 0; i < n; i++) ref_f[i] = rf_fp16_to_fp32(rf_fp32_to_fp16(ref_f[i]));
    void *dw = dev_upload(w, rb * (size_t)rows);
    uint16_t *dout = dev_alloc((size_t)n * 2);
    (void)rfk_rt_memset(dout, 0xFF, (size_t)n * 2); /* NaN halves */
    int st = rfk_dequant_f16(&kctx, NULL, t, dw, rb, cols, rows, dout);
    (void)rfk_rt_sync();
    (void)rfk_rt_download(h, dout, (size_t)n * 2);
    for (int64_t i = 0; i < n; i++) gpu_f[i] = rf_fp16_to_fp32(h[i]);
    char what[96];
    snprintf(what, sizeof what, "%s rows=%lld cols=%lld", rf_type_name(t), (long long)rows, (long long)cols);
    report("dequant16", what, st, gpu_f, ref_f, n, 1e-9);
    rfk_rt_free(dw), rfk_rt_free(dout);
    free(w), free(ids), free(ref_f), free(gpu_f), free(h);
}

static void test_f32_to_f16(int64_t n) {
    float *x = xmalloc((size_t)n * 4), *ref_f = xmalloc((size_t)n * 4), *gpu_f = xmalloc((size_t)n * 4);
    uint16_t *h = xmalloc((size_t)n * 2);
    fill_normal(x, n, 100.0f);
    int64_t bad = 0;
    float *dx = dev_upload(x, (size_t)n * 4);
    uint16_t *dout = dev_alloc((size_t)n * 2);
    int st = rfk_f32_to_f16(&kctx, NULL, dx, dout, n);
    (void)rfk_rt_sync();
    (void)rfk_rt_download(h, dout, (size_t)n * 2);
    for (int64_t i = 0; i < n; i++) {
        bad += h[i] != rf_fp32_to_fp16(x[i]);
        ref_f[i] = rf_fp16_to_fp32(rf_fp32_to_fp16(x[i]));
        gpu_f[i] = rf_fp16_to_fp32(h[i]);
    }
    char what[96];
    snprintf(what, sizeof what, "n=%lld (%lld halves differ)", (long long)n, (long long)bad);
    report("f32_to_f16", what, st ? st : bad ? RFK_E_INVAL : 0, gpu_f, ref_f, n, 0.0);
    rfk_rt_free(dx), rfk_rt_free(dout);
    free(x), free(ref_f), free(gpu_f), free(h);
}

/* One launch over a weight of three row ranges (the q|k|v upload), each
 * part to its own array, from activations quantized beforehand by
 * rfk_quantize_q8 (x not passed): each part against the reference. */
static void test_matmul_split(rf_type t, const int64_t parts[3], int64_t cols, int64_t n_tok) {
    const int64_t rows = parts[0] + parts[1] + parts[2];
    size_t rb;
    uint8_t *w = random_weights(t, rows, cols, &rb);
    float *x = xmalloc((size_t)(n_tok * cols) * 4), *y_ref = xmalloc((size_t)(n_tok * rows) * 4);
    float *y_gpu = xmalloc((size_t)(n_tok * rows) * 4), *y_part = xmalloc((size_t)(n_tok * rows) * 4);
    fill_normal(x, n_tok * cols, 1.0f);
    rf_wview wv = {w, t, cols, rows, rb, RF_WLAYOUT_ROWS};
    ref->matmul(ref_ctx, &wv, x, y_ref, n_tok);
    void *dw = dev_upload(w, rb * (size_t)rows);
    float *dx = dev_upload(x, (size_t)(n_tok * cols) * 4);
    rfk_mm_out o = {{NULL, NULL, NULL}, {parts[0], parts[1], parts[2]}, 3};
    for (int i = 0; i < 3; i++) o.y[i] = dev_poisoned((size_t)(n_tok * parts[i]));
    const size_t sb = rfk_matmul_scratch_bytes(t, cols, n_tok);
    void *scratch = dev_alloc(sb);
    int st = rfk_quantize_q8(&kctx, NULL, dx, cols, n_tok, scratch, sb);
    if (!st) st = rfk_matmul_ex(&kctx, NULL, t, dw, rb, cols, rows, NULL, &o, n_tok, scratch, sb, 1);
    (void)rfk_rt_sync();
    int64_t r0 = 0;
    for (int i = 0; i < 3; i++) { /* y_part[t][r] = part i's row r - r0 */
        float *tmp = xmalloc((size_t)(n_tok * parts[i]) * 4);
        download(tmp, o.y[i], n_tok * parts[i]);
        for (int64_t tk = 0; tk < n_tok; tk++)
            for (int64_t r = 0; r < parts[i]; r++) y_gpu[tk * rows + r0 + r] = tmp[tk * parts[i] + r];
        free(tmp);
        r0 += parts[i];
    }
    char what[96];
    snprintf(what, sizeof what, "%s rows=%lld+%lld+%lld cols=%lld n_tok=%lld", rf_type_name(t), (long long)parts[0],
             (long long)parts[1], (long long)parts[2], (long long)cols, (long long)n_tok);
    report("mm_split", what, st, y_gpu, y_ref, n_tok * rows, 5e-4);
    for (int i = 0; i < 3; i++) rfk_rt_free(o.y[i]);
    rfk_rt_free(dw), rfk_rt_free(dx), rfk_rt_free(scratch);
    free(w), free(x), free(y_ref), free(y_gpu), free(y_part);
}

/* The activations a fused kernel left in scratch, checked through the
 * product that reads them: a random Q8_0 weight times them against the
 * reference product with the fused kernel's float output. From 3 rows
 * twice: on the int8 products (the q8 blocks) and on the float16 ones
 * (the float16 copy; where the rows fit them, 4096 columns do). */
static void check_q8_through_matvec(const char *op, const char *what, const float *y_host, int64_t n_rows, int64_t cols,
                                    void *scratch, size_t sb) {
    const int64_t rows = 96;
    size_t rb;
    uint8_t *w = random_weights(RF_TYPE_Q8_0, rows, cols, &rb);
    float *p_ref = xmalloc((size_t)(n_rows * rows) * 4), *p_gpu = xmalloc((size_t)(n_rows * rows) * 4);
    rf_wview wv = {w, RF_TYPE_Q8_0, cols, rows, rb, RF_WLAYOUT_ROWS};
    ref->matmul(ref_ctx, &wv, y_host, p_ref, n_rows);
    void *dw = dev_upload(w, rb * (size_t)rows);
    const int mode0 = kctx.mmq_f16;
    for (int mode = n_rows >= 3 ? 1 : 0; mode <= (n_rows >= 3 ? 2 : 0); mode++) {
        kctx.mmq_f16 = mode;
        float *dp = dev_poisoned((size_t)(n_rows * rows));
        rfk_mm_out o = {{dp, NULL, NULL}, {rows, 0, 0}, 1};
        int st = rfk_matmul_ex(&kctx, NULL, RF_TYPE_Q8_0, dw, rb, cols, rows, NULL, &o, n_rows, scratch, sb, 1);
        (void)rfk_rt_sync();
        download(p_gpu, dp, n_rows * rows);
        char w2[128];
        snprintf(w2, sizeof w2, "%s, via the product%s", what, mode == 1 ? " (f16)" : mode == 2 ? " (int8)" : "");
        report(op, w2, st, p_gpu, p_ref, n_rows * rows, 5e-4);
        rfk_rt_free(dp);
    }
    kctx.mmq_f16 = mode0;
    rfk_rt_free(dw);
    free(w), free(p_ref), free(p_gpu);
}

/* rfk_matmul_norm: one row's add + RMSNorm fused into the mat-vec of a
 * weight in three parts (the q|k|v upload), against the reference norm
 * and the reference product of its output; x and y as rfk_add_rmsnorm_q8
 * leaves them. want_unsupported: the call must refuse (RFK_E_UNSUPPORTED)
 * and launch nothing. */
static void test_matmul_norm(rf_type t, int64_t rows, int64_t cols, bool with_delta, bool want_unsupported) {
    size_t rb;
    uint8_t *w = random_weights(t, rows, cols, &rb);
    float *x = xmalloc((size_t)cols * 4), *dl = xmalloc((size_t)cols * 4), *nw = xmalloc((size_t)cols * 4);
    float *x_ref = xmalloc((size_t)cols * 4), *y_ref = xmalloc((size_t)cols * 4), *p_ref = xmalloc((size_t)rows * 4);
    float *x_gpu = xmalloc((size_t)cols * 4), *y_gpu = xmalloc((size_t)cols * 4), *p_gpu = xmalloc((size_t)rows * 4);
    fill_normal(x, cols, 3.0f);
    fill_normal(dl, cols, 1.0f);
    fill_normal(nw, cols, 1.0f);
    for (int64_t i = 0; i < cols; i++) x_ref[i] = with_delta ? x[i] + dl[i] : x[i];
    ref->rmsnorm(ref_ctx, x_ref, nw, y_ref, 1, cols, 1e-5f);
    rf_wview wv = {w, t, cols, rows, rb, RF_WLAYOUT_ROWS};
    ref->matmul(ref_ctx, &wv, y_ref, p_ref, 1);
    void *dwt = dev_upload(w, rb * (size_t)rows);
    float *dx = dev_upload(x, (size_t)cols * 4), *ddl = dev_upload(dl, (size_t)cols * 4);
    float *dnw = dev_upload(nw, (size_t)cols * 4), *dy = dev_poisoned((size_t)cols);
    const int64_t parts[3] = {rows / 2, rows / 4, rows - rows / 2 - rows / 4};
    rfk_mm_out o = {{NULL, NULL, NULL}, {parts[0], parts[1], parts[2]}, 3};
    for (int i = 0; i < 3; i++) o.y[i] = dev_poisoned((size_t)parts[i]);
    int *dticket = dev_alloc(sizeof(int));
    (void)rfk_rt_memset(dticket, 0, sizeof(int));
    rfk_mv_norm nrm = {dx, with_delta ? ddl : NULL, dnw, dy, 1e-5f, dticket};
    int st = rfk_matmul_norm(&kctx, NULL, t, dwt, rb, cols, rows, &nrm, &o);
    (void)rfk_rt_sync();
    int ticket = -1;
    (void)rfk_rt_download(&ticket, dticket, sizeof ticket);
    rfk_rt_free(dticket);
    char what[96];
    snprintf(what, sizeof what, "%s rows=%lld cols=%lld%s%s", rf_type_name(t), (long long)rows, (long long)cols,
             with_delta ? " +delta" : "", kctx.n_units == 1 ? " 1 unit" : "");
    if (want_unsupported) {
        download(x_gpu, dx, cols);
        bool ok = st == RFK_E_UNSUPPORTED && memcmp(x_gpu, x, (size_t)cols * 4) == 0;
        ok ? n_pass++ : n_fail++;
        printf("%s %-10s %-40s refused: status %d (want %d), x untouched: %s\n", ok ? "ok  " : "FAIL", "mm_norm",
               what, st, RFK_E_UNSUPPORTED, memcmp(x_gpu, x, (size_t)cols * 4) == 0 ? "yes" : "no");
    } else {
        download(x_gpu, dx, cols);
        download(y_gpu, dy, cols);
        for (int i = 0, r0 = 0; i < 3; r0 += (int)parts[i], i++) download(p_gpu + r0, o.y[i], parts[i]);
        report("mm_norm", what, st, x_gpu, x_ref, cols, 0.0); /* the residual: one float add, exact */
        ticket == 0 ? n_pass++ : n_fail++; /* the last block put it back for the next call */
        printf("%s %-10s %-40s ticket after the call: %d (want 0)\n", ticket == 0 ? "ok  " : "FAIL", "mm_norm", what,
               ticket);
        report("mm_norm", what, st, y_gpu, y_ref, cols, 1e-11);
        report("mm_norm", what, st, p_gpu, p_ref, rows, 5e-4); /* q8 activations */
    }
    for (int i = 0; i < 3; i++) rfk_rt_free(o.y[i]);
    rfk_rt_free(dwt), rfk_rt_free(dx), rfk_rt_free(ddl), rfk_rt_free(dnw), rfk_rt_free(dy);
    free(w), free(x), free(dl), free(nw), free(x_ref), free(y_ref), free(p_ref), free(x_gpu), free(y_gpu), free(p_gpu);
}

static void test_add_rmsnorm_q8(int64_t n_rows, int64_t dim, bool with_delta, bool with_q8) {
    const int64_t n = n_rows * dim;
    float *x = xmalloc((size_t)n * 4), *dl = xmalloc((size_t)n * 4), *w = xmalloc((size_t)dim * 4);
    float *x_ref = xmalloc((size_t)n * 4), *y_ref = xmalloc((size_t)n * 4), *x_gpu = xmalloc((size_t)n * 4),
          *y_gpu = xmalloc((size_t)n * 4);
    fill_normal(x, n, 3.0f);
    fill_normal(dl, n, 1.0f);
    fill_normal(w, dim, 1.0f);
    for (int64_t i = 0; i < n; i++) x_ref[i] = with_delta ? x[i] + dl[i] : x[i];
    ref->rmsnorm(ref_ctx, x_ref, w, y_ref, n_rows, dim, 1e-5f);
    float *dx = dev_upload(x, (size_t)n * 4), *ddl = dev_upload(dl, (size_t)n * 4), *dw = dev_upload(w, (size_t)dim * 4);
    float *dy = dev_poisoned((size_t)n);
    const size_t sb = with_q8 ? rfk_matmul_scratch_bytes(RF_TYPE_Q8_0, dim, n_rows) : 0;
    void *scratch = sb ? dev_alloc(sb) : NULL;
    int st = rfk_add_rmsnorm_q8(&kctx, NULL, dx, with_delta ? ddl : NULL, dw, dy, n_rows, dim, 1e-5f, scratch, sb);
    (void)rfk_rt_sync();
    download(x_gpu, dx, n);
    download(y_gpu, dy, n);
    char what[96];
    snprintf(what, sizeof what, "rows=%lld dim=%lld%s%s", (long long)n_rows, (long long)dim, with_delta ? " +delta" : "",
             with_q8 ? " q8" : "");
    report("add_norm", what, st, x_gpu, x_ref, n, 0.0); /* the residual: one float add, exact */
    report("add_norm", what, st, y_gpu, y_ref, n, 1e-11);
    if (scratch && !st) check_q8_through_matvec("add_norm", what, y_gpu, n_rows, dim, scratch, sb);
    rfk_rt_free(dx), rfk_rt_free(ddl), rfk_rt_free(dw), rfk_rt_free(dy), rfk_rt_free(scratch);
    free(x), free(dl), free(w), free(x_ref), free(y_ref), free(x_gpu), free(y_gpu);
}

static void test_glu_q8(rf_act act, int64_t n_rows, int64_t cols) {
    const int64_t n = n_rows * cols;
    float *g = xmalloc((size_t)n * 4), *u = xmalloc((size_t)n * 4);
    float *y_ref = xmalloc((size_t)n * 4), *y_gpu = xmalloc((size_t)n * 4);
    fill_normal(g, n, 3.0f);
    fill_normal(u, n, 1.0f);
    ref->glu(ref_ctx, act, g, u, y_ref, n);
    float *dg = dev_upload(g, (size_t)n * 4), *du = dev_upload(u, (size_t)n * 4);
    const size_t sb = rfk_matmul_scratch_bytes(RF_TYPE_Q8_0, cols, n_rows);
    void *scratch = dev_alloc(sb);
    int st = rfk_glu_q8(&kctx, NULL, (int)act, dg, du, dg, n_rows, cols, scratch, sb); /* out = gate, as the pass */
    (void)rfk_rt_sync();
    download(y_gpu, dg, n);
    char what[96];
    snprintf(what, sizeof what, "%s rows=%lld cols=%lld", act == RF_ACT_SILU ? "silu" : "gelu-tanh", (long long)n_rows,
             (long long)cols);
    report("glu_q8", what, st, y_gpu, y_ref, n, 1e-11);
    if (!st) check_q8_through_matvec("glu_q8", what, y_gpu, n_rows, cols, scratch, sb);
    rfk_rt_free(dg), rfk_rt_free(du), rfk_rt_free(scratch);
    free(g), free(u), free(y_ref), free(y_gpu);
}

/* RoPE of q and k plus the KV store in one launch: q against the
 * reference rope; the cached keys / values against the reference rope of k
 * and v rounded to float16 on the host, half for half. Random block
 * tables, one slot per token. */
/* ---- mixture of experts -------------------------------------------------- */

/* Routing, the per-pair expert matmul (gate/up: pairs share their token's
 * row; down: a row per pair) and the weighted sum, each against the CPU. */
static void test_moe(rf_type t, int64_t ne, int64_t k, int64_t rows, int64_t cols, int64_t n_tok, int gating,
                     bool norm) {
    char what[128];
    snprintf(what, sizeof what, "%s ne=%lld k=%lld rows=%lld cols=%lld n_tok=%lld %s%s", rf_type_name(t),
             (long long)ne, (long long)k, (long long)rows, (long long)cols, (long long)n_tok,
             gating == 2 ? "sigmoid" : "softmax", norm ? " norm" : "");
    const int64_t np = n_tok * k;
    /* routing */
    float *logits = xmalloc((size_t)(n_tok * ne) * sizeof(float)), *r_ref = xmalloc((size_t)(n_tok * ne) * sizeof(float));
    fill_normal(logits, n_tok * ne, 2.0f);
    memcpy(r_ref, logits, (size_t)(n_tok * ne) * sizeof(float));
    int32_t *sel = xmalloc((size_t)np * sizeof(int32_t)), *sel_gpu = xmalloc((size_t)np * sizeof(int32_t));
    float *w_ref = xmalloc((size_t)np * sizeof(float)), *w_gpu = xmalloc((size_t)np * sizeof(float));
    for (int64_t i = 0; i < n_tok; i++) rf_moe_route_row(r_ref + i * ne, ne, k, gating, norm, sel + i * k, w_ref + i * k);
    float *dr = dev_upload(logits, (size_t)(n_tok * ne) * sizeof(float));
    int32_t *dsel = dev_alloc((size_t)np * sizeof(int32_t));
    float *dw = dev_poisoned((size_t)np);
    int st = rfk_moe_route(&kctx, NULL, dr, n_tok, ne, k, gating, norm, dsel, dw);
    (void)rfk_rt_sync();
    (void)rfk_rt_download(sel_gpu, dsel, (size_t)np * sizeof(int32_t));
    download(w_gpu, dw, np);
    float *sf = xmalloc((size_t)np * sizeof(float)), *sf_gpu = xmalloc((size_t)np * sizeof(float));
    for (int64_t i = 0; i < np; i++) sf[i] = (float)sel[i] + 1.0f, sf_gpu[i] = (float)sel_gpu[i] + 1.0f;
    report("moe_route", what, st, sf_gpu, sf, np, 0.0); /* the same experts, exactly */
    report("moe_route", "  ... their weights", st, w_gpu, w_ref, np, 1e-10);
    /* the expert matmul, on the reference routing */
    size_t rb;
    uint8_t *wx = random_weights(t, ne * rows, cols, &rb);
    const size_t stride = rb * (size_t)rows;
    (void)rfk_rt_upload(dsel, sel, (size_t)np * sizeof(int32_t));
    void *dwx = dev_upload(wx, stride * (size_t)ne);
    for (int shared = 1; shared >= 0; shared--) {
        const int64_t nx = shared ? n_tok : np;
        float *x = xmalloc((size_t)(nx * cols) * sizeof(float));
        float *y_ref = xmalloc((size_t)(np * rows) * sizeof(float)), *y_gpu = xmalloc((size_t)(np * rows) * sizeof(float));
        fill_normal(x, nx * cols, 1.0f);
        for (int64_t p = 0; p < np; p++) {
            rf_wview wv = {wx + (size_t)sel[p] * stride, t, cols, rows, rb, RF_WLAYOUT_ROWS};
            ref->matmul(ref_ctx, &wv, x + (shared ? p / k : p) * cols, y_ref + p * rows, 1);
        }
        float *dx = dev_upload(x, (size_t)(nx * cols) * sizeof(float)), *dy = dev_poisoned((size_t)(np * rows));
        st = rfk_matmul_id(&kctx, NULL, t, dwx, stride, ne, rb, cols, rows, dx, shared ? (int)k : 1, dsel, np, dy);
        (void)rfk_rt_sync();
        download(y_gpu, dy, np * rows);
        report("matmul_id", shared ? "  ... gate/up (a token's row per pair)" : "  ... down (a row per pair)", st, y_gpu,
               y_ref, np * rows, 1e-9);
        rfk_rt_free(dx);
        rfk_rt_free(dy);
        free(x);
        free(y_ref);
        free(y_gpu);
    }
    /* the weighted sum, in increasing expert id */
    float *de = xmalloc((size_t)(np * cols) * sizeof(float)), *o_ref = xmalloc((size_t)(n_tok * cols) * sizeof(float));
    float *o_gpu = xmalloc((size_t)(n_tok * cols) * sizeof(float));
    fill_normal(de, np * cols, 1.0f);
    memset(o_ref, 0, (size_t)(n_tok * cols) * sizeof(float));
    for (int64_t e = 0; e < ne; e++)
        for (int64_t p = 0; p < np; p++)
            if (sel[p] == e)
                for (int64_t c = 0; c < cols; c++) o_ref[(p / k) * cols + c] += w_ref[p] * de[p * cols + c];
    float *dde = dev_upload(de, (size_t)(np * cols) * sizeof(float)), *dsw = dev_upload(w_ref, (size_t)np * sizeof(float));
    float *dout = dev_poisoned((size_t)(n_tok * cols));
    st = rfk_moe_combine(&kctx, NULL, dde, dsel, dsw, n_tok, k, cols, dout);
    (void)rfk_rt_sync();
    download(o_gpu, dout, n_tok * cols);
    report("moe_comb", "  ... weighted sum", st, o_gpu, o_ref, n_tok * cols, 1e-10);
    rfk_rt_free(dr); rfk_rt_free(dsel); rfk_rt_free(dw); rfk_rt_free(dwx); rfk_rt_free(dde); rfk_rt_free(dsw);
    rfk_rt_free(dout);
    free(logits); free(r_ref); free(sel); free(sel_gpu); free(w_ref); free(w_gpu); free(sf); free(sf_gpu); free(wx);
    free(de); free(o_ref); free(o_gpu);
}

static void test_rope_kv_store(int64_t n_tok, int64_t n_head, int64_t n_head_kv, int64_t hd, int64_t n_rot,
                               rf_rope_style style) {
    const int bs = 16;
    const int64_t qd = n_head * hd, kvd = n_head_kv * hd;
    float *q = xmalloc((size_t)(n_tok * qd) * 4), *k = xmalloc((size_t)(n_tok * kvd) * 4),
          *v = xmalloc((size_t)(n_tok * kvd) * 4);
    float *q_ref = xmalloc((size_t)(n_tok * qd) * 4), *k_ref = xmalloc((size_t)(n_tok * kvd) * 4),
          *q_gpu = xmalloc((size_t)(n_tok * qd) * 4);
    float *cs = xmalloc((size_t)(n_tok * (n_rot ? n_rot : 1)) * 4);
    int32_t *pos = xmalloc((size_t)n_tok * 4), *seq = xmalloc((size_t)n_tok * 4);
    fill_normal(q, n_tok * qd, 1.0f);
    fill_normal(k, n_tok * kvd, 1.0f);
    fill_normal(v, n_tok * kvd, 1.0f);
    memcpy(q_ref, q, (size_t)(n_tok * qd) * 4);
    memcpy(k_ref, k, (size_t)(n_tok * kvd) * 4);
    /* token t: sequence t % 2, position 3 * t / 2 + random offset within a block budget */
    const int64_t n_blocks = n_tok + 4, max_blocks = n_blocks;
    for (int64_t t = 0; t < n_tok; t++) seq[t] = (int32_t)(t % 2), pos[t] = (int32_t)(t / 2 * bs + rng_int(bs));
    rf_rope_params p = {style, n_rot, 10000.0f, 1.0f, NULL};
    ref->rope(ref_ctx, q_ref, pos, n_tok, n_head, hd, &p);
    ref->rope(ref_ctx, k_ref, pos, n_tok, n_head_kv, hd, &p);
    rope_table(cs, pos, n_tok, n_rot);
    /* tables: sequence s, block b -> a random distinct block */
    int32_t *tables = xmalloc((size_t)(2 * max_blocks) * 4), *perm = xmalloc((size_t)(2 * n_blocks) * 4);
    for (int64_t i = 0; i < 2 * n_blocks; i++) perm[i] = (int32_t)i;
    for (int64_t i = 2 * n_blocks - 1; i > 0; i--) {
        int64_t j = rng_int(i + 1);
        int32_t tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    for (int64_t i = 0; i < 2 * max_blocks; i++) tables[i] = perm[i];
    const size_t cache_halves = (size_t)(2 * n_blocks * bs * kvd);
    rfk_kv_view view = {dev_alloc(cache_halves * 2), dev_alloc(cache_halves * 2), NULL, max_blocks, kvd, bs};
    int32_t *dtables = dev_upload(tables, (size_t)(2 * max_blocks) * 4);
    view.tables = dtables;
    float *dq = dev_upload(q, (size_t)(n_tok * qd) * 4), *dk = dev_upload(k, (size_t)(n_tok * kvd) * 4),
          *dv = dev_upload(v, (size_t)(n_tok * kvd) * 4), *dcs = dev_upload(cs, (size_t)(n_tok * (n_rot ? n_rot : 1)) * 4);
    int32_t *dpos = dev_upload(pos, (size_t)n_tok * 4), *dseq = dev_upload(seq, (size_t)n_tok * 4);
    int st = rfk_rope_kv_store(&kctx, NULL, dq, dk, dv, dcs, n_tok, n_head, n_head_kv, hd, n_rot, (int)style, &view,
                               dpos, dseq);
    (void)rfk_rt_sync();
    download(q_gpu, dq, n_tok * qd);
    char what[112];
    snprintf(what, sizeof what, "%s n_tok=%lld heads=%lld/%lld hd=%lld n_rot=%lld", style == RF_ROPE_NEOX ? "neox" : "normal",
             (long long)n_tok, (long long)n_head, (long long)n_head_kv, (long long)hd, (long long)n_rot);
    report("rope_kv", what, st, q_gpu, q_ref, n_tok * qd, 1e-11);
    uint16_t *kh = xmalloc(cache_halves * 2), *vh = xmalloc(cache_halves * 2);
    (void)rfk_rt_download(kh, view.k, cache_halves * 2);
    (void)rfk_rt_download(vh, view.v, cache_halves * 2);
    /* v: the host's rounding of the same floats, half for half. k: the GPU
     * rotates with the forward pass's cos/sin table, the reference computes
     * its angles, so a rotated float may differ by an ulp and round to the
     * neighbouring half (seen: 1 of 1152); compared as floats by NMSE
     * instead (one such half ~2e-10, a wrong rotation > 1e-3). */
    int64_t bad_v = 0;
    float *kc_f = xmalloc((size_t)(n_tok * kvd) * 4), *kr_f = xmalloc((size_t)(n_tok * kvd) * 4);
    for (int64_t t = 0; t < n_tok; t++) {
        const size_t off = ((size_t)tables[seq[t] * max_blocks + pos[t] / bs] * bs + (size_t)(pos[t] % bs)) * (size_t)kvd;
        for (int64_t i = 0; i < kvd; i++) {
            kc_f[t * kvd + i] = rf_fp16_to_fp32(kh[off + i]);
            kr_f[t * kvd + i] = rf_fp16_to_fp32(rf_fp32_to_fp16(k_ref[t * kvd + i]));
            bad_v += vh[off + i] != rf_fp32_to_fp16(v[t * kvd + i]);
        }
    }
    const double ek = nmse(kc_f, kr_f, n_tok * kvd);
    bool ok = !st && bad_v == 0 && ek <= 1e-8;
    ok ? n_pass++ : n_fail++;
    printf("%s %-10s %-40s cache: k nmse %.3e (limit 1e-08), %lld of %lld v halves differ\n", ok ? "ok  " : "FAIL",
           "rope_kv", what, ek, (long long)bad_v, (long long)(n_tok * kvd));
    free(kc_f), free(kr_f);
    rfk_rt_free(view.k), rfk_rt_free(view.v), rfk_rt_free(dtables), rfk_rt_free(dq), rfk_rt_free(dk), rfk_rt_free(dv);
    rfk_rt_free(dcs), rfk_rt_free(dpos), rfk_rt_free(dseq);
    free(q), free(k), free(v), free(q_ref), free(k_ref), free(q_gpu), free(cs), free(pos), free(seq), free(tables);
    free(perm), free(kh), free(vh);
}

/* ---- row and elementwise ops -------------------------------------------- */

static void test_rmsnorm(int64_t n_rows, int64_t dim, bool with_w) {
    float *x = xmalloc((size_t)(n_rows * dim) * 4), *w = xmalloc((size_t)dim * 4);
    float *y_ref = xmalloc((size_t)(n_rows * dim) * 4), *y_gpu = xmalloc((size_t)(n_rows * dim) * 4);
    fill_normal(x, n_rows * dim, 3.0f);
    fill_normal(w, dim, 1.0f);
    const float eps = 1e-5f;
    ref->rmsnorm(ref_ctx, x, with_w ? w : NULL, y_ref, n_rows, dim, eps);
    float *dx = dev_upload(x, (size_t)(n_rows * dim) * 4), *dw = dev_upload(w, (size_t)dim * 4);
    float *dy = dev_poisoned((size_t)(n_rows * dim));
    int st = rfk_rmsnorm(&kctx, NULL, dx, with_w ? dw : NULL, dy, n_rows, dim, eps);
    (void)rfk_rt_sync();
    download(y_gpu, dy, n_rows * dim);
    char what[96];
    snprintf(what, sizeof what, "rows=%lld dim=%lld w=%d", (long long)n_rows, (long long)dim, with_w);
    report("rmsnorm", what, st, y_gpu, y_ref, n_rows * dim, 1e-11);
    /* In place (y == x), as the forward pass calls it. */
    st = rfk_rmsnorm(&kctx, NULL, dx, with_w ? dw : NULL, dx, n_rows, dim, eps);
    (void)rfk_rt_sync();
    download(y_gpu, dx, n_rows * dim);
    snprintf(what, sizeof what, "rows=%lld dim=%lld w=%d in-place", (long long)n_rows, (long long)dim, with_w);
    report("rmsnorm", what, st, y_gpu, y_ref, n_rows * dim, 1e-11);
    rfk_rt_free(dx), rfk_rt_free(dw), rfk_rt_free(dy);
    free(x), free(w), free(y_ref), free(y_gpu);
}

/* The op table has no softmax; the reference is this double-precision loop. */
static void test_softmax(int64_t n_rows, int64_t n_cols) {
    float *x = xmalloc((size_t)(n_rows * n_cols) * 4);
    float *y_ref = xmalloc((size_t)(n_rows * n_cols) * 4), *y_gpu = xmalloc((size_t)(n_rows * n_cols) * 4);
    fill_normal(x, n_rows * n_cols, 4.0f);
    const float scale = 0.5f + rng_uniform();
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * n_cols;
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < n_cols; i++) mx = fmax(mx, (double)xr[i] * scale);
        for (int64_t i = 0; i < n_cols; i++) sum += exp((double)xr[i] * scale - mx);
        for (int64_t i = 0; i < n_cols; i++) y_ref[r * n_cols + i] = (float)(exp((double)xr[i] * scale - mx) / sum);
    }
    float *dx = dev_upload(x, (size_t)(n_rows * n_cols) * 4), *dy = dev_poisoned((size_t)(n_rows * n_cols));
    int st = rfk_softmax(&kctx, NULL, dx, dy, n_rows, n_cols, scale);
    (void)rfk_rt_sync();
    download(y_gpu, dy, n_rows * n_cols);
    char what[96];
    snprintf(what, sizeof what, "rows=%lld cols=%lld", (long long)n_rows, (long long)n_cols);
    report("softmax", what, st, y_gpu, y_ref, n_rows * n_cols, 1e-10);
    rfk_rt_free(dx), rfk_rt_free(dy);
    free(x), free(y_ref), free(y_gpu);
}

/* The reference rope computes its angles; the GPU op takes the table the
 * forward pass builds (src/model/forward.c rope_table, here without
 * scaling), so the table is made from the same formula in double. */
static void test_rope(int64_t n_tok, int64_t n_heads, int64_t head_dim, int64_t n_rot, rf_rope_style style) {
    const int64_t n = n_tok * n_heads * head_dim;
    float *x = xmalloc((size_t)n * 4), *y_ref = xmalloc((size_t)n * 4), *y_gpu = xmalloc((size_t)n * 4);
    float *cs = xmalloc((size_t)(n_tok * n_rot) * 4);
    int32_t *pos = xmalloc((size_t)n_tok * 4);
    fill_normal(x, n, 1.0f);
    memcpy(y_ref, x, (size_t)n * 4);
    for (int64_t t = 0; t < n_tok; t++) pos[t] = (int32_t)rng_int(8192);
    rf_rope_params p = {style, n_rot, 10000.0f, 1.0f, NULL};
    ref->rope(ref_ctx, y_ref, pos, n_tok, n_heads, head_dim, &p);
    rope_table(cs, pos, n_tok, n_rot);
    float *dx = dev_upload(x, (size_t)n * 4), *dcs = dev_upload(cs, (size_t)(n_tok * n_rot) * 4);
    int st = rfk_rope(&kctx, NULL, dx, dcs, n_tok, n_heads, head_dim, n_rot, (int)style);
    (void)rfk_rt_sync();
    download(y_gpu, dx, n);
    char what[96];
    snprintf(what, sizeof what, "%s n_tok=%lld heads=%lld hd=%lld n_rot=%lld", style == RF_ROPE_NEOX ? "neox" : "normal",
             (long long)n_tok, (long long)n_heads, (long long)head_dim, (long long)n_rot);
    report("rope", what, st, y_gpu, y_ref, n, 1e-11);
    rfk_rt_free(dx), rfk_rt_free(dcs);
    free(x), free(y_ref), free(y_gpu), free(cs), free(pos);
}

static void test_glu(rf_act act, int64_t n) {
    float *g = xmalloc((size_t)n * 4), *u = xmalloc((size_t)n * 4);
    float *y_ref = xmalloc((size_t)n * 4), *y_gpu = xmalloc((size_t)n * 4);
    fill_normal(g, n, 3.0f);
    fill_normal(u, n, 1.0f);
    ref->glu(ref_ctx, act, g, u, y_ref, n);
    float *dg = dev_upload(g, (size_t)n * 4), *du = dev_upload(u, (size_t)n * 4), *dy = dev_poisoned((size_t)n);
    int st = rfk_glu(&kctx, NULL, (int)act, dg, du, dy, n);
    (void)rfk_rt_sync();
    download(y_gpu, dy, n);
    char what[96];
    snprintf(what, sizeof what, "%s n=%lld", act == RF_ACT_SILU ? "silu" : "gelu-tanh", (long long)n);
    report("glu", what, st, y_gpu, y_ref, n, 1e-11);
    /* out aliasing gate, as the forward pass calls it */
    st = rfk_glu(&kctx, NULL, (int)act, dg, du, dg, n);
    (void)rfk_rt_sync();
    download(y_gpu, dg, n);
    snprintf(what, sizeof what, "%s n=%lld out=gate", act == RF_ACT_SILU ? "silu" : "gelu-tanh", (long long)n);
    report("glu", what, st, y_gpu, y_ref, n, 1e-11);
    rfk_rt_free(dg), rfk_rt_free(du), rfk_rt_free(dy);
    free(g), free(u), free(y_ref), free(y_gpu);
}

static void test_add(int64_t n) {
    float *a = xmalloc((size_t)n * 4), *b = xmalloc((size_t)n * 4);
    float *y_ref = xmalloc((size_t)n * 4), *y_gpu = xmalloc((size_t)n * 4);
    fill_normal(a, n, 1.0f);
    fill_normal(b, n, 1.0f);
    for (int64_t i = 0; i < n; i++) y_ref[i] = a[i] + b[i];
    float *da = dev_upload(a, (size_t)n * 4), *db = dev_upload(b, (size_t)n * 4);
    int st = rfk_add(&kctx, NULL, da, db, da, n); /* in place, the residual add */
    (void)rfk_rt_sync();
    download(y_gpu, da, n);
    char what[96];
    snprintf(what, sizeof what, "n=%lld in-place", (long long)n);
    report("add", what, st, y_gpu, y_ref, n, 0.0); /* one float add each side: exact */
    rfk_rt_free(da), rfk_rt_free(db);
    free(a), free(b), free(y_ref), free(y_gpu);
}

/* ---- KV store and attention ---------------------------------------------- */

/* Decode with the step's own keys handed to the attention (rfk_attn_args.
 * k_new): q and the newest keys unrotated, the newest keys and values not
 * in the GPU cache (NaN rows there, so a read of them shows). Reference:
 * the CPU's RoPE of q and the keys, the rotated key and the value stored
 * (float16) at the newest position of the CPU cache kv, then attention.
 * Without and with scratch (the split key range), the latter with the q8
 * output; then the newest positions of the GPU cache: values half for
 * half, keys by NMSE (see test_rope_kv_store). */
static void test_attention_new_keys(rf_kv_cache *kv, rfk_kv_view *view, const int32_t *tables, int64_t mb,
                                    float *dq, const float *q, const int32_t *qpos, const int32_t *qseq,
                                    const int32_t *dqpos, const int32_t *dqseq, int64_t n_tok, int64_t n_head,
                                    int64_t n_head_kv, int64_t hd, int64_t window, int32_t max_pos, int64_t max_len,
                                    rf_rope_style style, int64_t n_rot) {
    const int bs = view->block_size;
    const int64_t qd = n_head * hd, kvd = n_head_kv * hd;
    float *kn = xmalloc((size_t)(n_tok * kvd) * 4), *vn = xmalloc((size_t)(n_tok * kvd) * 4);
    float *kr = xmalloc((size_t)(n_tok * kvd) * 4), *qr = xmalloc((size_t)(n_tok * qd) * 4);
    float *cs = xmalloc((size_t)(n_tok * n_rot + 1) * 4), *nan_rows = xmalloc((size_t)(n_tok * kvd) * 4);
    float *o_ref = xmalloc((size_t)(n_tok * qd) * 4), *o_gpu = xmalloc((size_t)(n_tok * qd) * 4);
    fill_normal(kn, n_tok * kvd, 1.0f);
    fill_normal(vn, n_tok * kvd, 1.0f);
    for (int64_t i = 0; i < n_tok * kvd; i++) nan_rows[i] = NAN;
    memcpy(kr, kn, (size_t)(n_tok * kvd) * 4);
    memcpy(qr, q, (size_t)(n_tok * qd) * 4);
    rf_rope_params p = {style, n_rot, 10000.0f, 1.0f, NULL};
    ref->rope(ref_ctx, qr, qpos, n_tok, n_head, hd, &p);
    ref->rope(ref_ctx, kr, qpos, n_tok, n_head_kv, hd, &p);
    rope_table(cs, qpos, n_tok, n_rot);
    for (int64_t t = 0; t < n_tok; t++) {
        uint16_t *kd = rf_kv_k(kv, 0, qseq[t], qpos[t]), *vd = rf_kv_v(kv, 0, qseq[t], qpos[t]);
        for (int64_t i = 0; i < kvd; i++) {
            kd[i] = rf_fp32_to_fp16(kr[t * kvd + i]);
            vd[i] = rf_fp32_to_fp16(vn[t * kvd + i]);
        }
    }
    const float scale = 1.0f / sqrtf((float)hd);
    rf_attn_args ar = {qr, o_ref, n_tok, n_head, n_head_kv, hd, scale, window, qpos, qseq, kv, 0};
    ref->attention(ref_ctx, &ar);

    float *dkn = dev_upload(kn, (size_t)(n_tok * kvd) * 4), *dvn = dev_upload(vn, (size_t)(n_tok * kvd) * 4);
    float *dcs = dev_upload(cs, (size_t)(n_tok * n_rot + 1) * 4), *dnan = dev_upload(nan_rows, (size_t)(n_tok * kvd) * 4);
    float *dout = dev_poisoned((size_t)(n_tok * qd));
    const size_t asb = rfk_attention_scratch_bytes(hd);
    void *ascratch = dev_alloc(asb);
    const bool with_q8 = hd % 32 == 0 && n_tok <= 64;
    const size_t qsb = with_q8 ? rfk_matmul_scratch_bytes(RF_TYPE_Q8_0, qd, n_tok) : 0;
    void *q8 = with_q8 ? dev_alloc(qsb) : NULL;
    char what[160];
    int st = 0;
    for (int sc = 0; sc < 2; sc++) {
        st = rfk_kv_store(&kctx, NULL, view, dnan, dnan, dqpos, dqseq, n_tok);
        (void)rfk_rt_memset(dout, 0xFF, (size_t)(n_tok * qd) * 4);
        if (q8) (void)rfk_rt_memset(q8, 0xFF, qsb);
        rfk_attn_args ga = {dq, dout, dqpos, dqseq, n_tok, n_head, n_head_kv, hd, scale, window, max_pos,
                            sc ? ascratch : NULL, sc ? asb : 0, n_tok, sc ? q8 : NULL, sc ? qsb : 0,
                            dkn, dvn, dcs, n_rot, (int)style};
        if (!st) st = rfk_attention(&kctx, NULL, view, &ga);
        (void)rfk_rt_sync();
        download(o_gpu, dout, n_tok * qd);
        snprintf(what, sizeof what, "decode+rope %s n_rot=%lld h=%lld/%lld hd=%lld n_tok=%lld ctx<=%lld win=%lld%s",
                 style == RF_ROPE_NEOX ? "neox" : "normal", (long long)n_rot, (long long)n_head, (long long)n_head_kv,
                 (long long)hd, (long long)n_tok, (long long)max_len, (long long)window, sc ? " scratch" : "");
        report("attention", what, st, o_gpu, o_ref, n_tok * qd, 1e-9);
        if (sc && q8 && !st) check_q8_through_matvec("attention", what, o_gpu, n_tok, qd, q8, qsb);
    }
    /* the newest positions of the GPU cache, as the kernel stored them */
    int64_t bad_v = 0;
    float *kc_f = xmalloc((size_t)(n_tok * kvd) * 4), *kr_f = xmalloc((size_t)(n_tok * kvd) * 4);
    uint16_t *row = xmalloc((size_t)kvd * 2);
    for (int64_t t = 0; t < n_tok; t++) {
        const size_t off = ((size_t)tables[qseq[t] * mb + qpos[t] / bs] * bs + (size_t)(qpos[t] % bs)) * (size_t)kvd;
        (void)rfk_rt_download(row, view->k + off, (size_t)kvd * 2);
        for (int64_t i = 0; i < kvd; i++) {
            kc_f[t * kvd + i] = rf_fp16_to_fp32(row[i]);
            kr_f[t * kvd + i] = rf_fp16_to_fp32(rf_fp32_to_fp16(kr[t * kvd + i]));
        }
        (void)rfk_rt_download(row, view->v + off, (size_t)kvd * 2);
        for (int64_t i = 0; i < kvd; i++) bad_v += row[i] != rf_fp32_to_fp16(vn[t * kvd + i]);
    }
    const double ek = nmse(kc_f, kr_f, n_tok * kvd);
    bool ok = !st && bad_v == 0 && ek <= 1e-8;
    ok ? n_pass++ : n_fail++;
    printf("%s %-10s %-40s cache: k nmse %.3e (limit 1e-08), %lld of %lld v halves differ\n", ok ? "ok  " : "FAIL",
           "attention", what, ek, (long long)bad_v, (long long)(n_tok * kvd));
    rfk_rt_free(dkn), rfk_rt_free(dvn), rfk_rt_free(dcs), rfk_rt_free(dnan), rfk_rt_free(dout), rfk_rt_free(ascratch);
    if (q8) rfk_rt_free(q8);
    free(kn), free(vn), free(kr), free(qr), free(cs), free(nan_rows), free(o_ref), free(o_gpu), free(kc_f), free(kr_f);
    free(row);
}

/* Sequences n_seq with lengths len[s] already in the cache (random keys and
 * values, stored through rfk_kv_store on the GPU and rf_kv_k/v on the CPU),
 * then the queries: either one decode token per sequence at its last
 * position, or a prefill of the last `n_new` positions of sequence 0. The
 * GPU cache uses its own randomly permuted block assignment, so the block
 * tables are exercised, not the identity. */
static void test_attention(int64_t n_head, int64_t n_head_kv, int64_t hd, int n_seq, const int64_t *len,
                           int64_t n_new, int64_t window) {
    const int bs = 16;
    const int64_t kvd = n_head_kv * hd;
    int64_t max_len = 0, total = 0;
    for (int s = 0; s < n_seq; s++) max_len = len[s] > max_len ? len[s] : max_len, total += len[s];
    rf_kv_config cfg = rf_kv_config_for(1, kvd, max_len, n_seq, bs);
    rf_kv_cache *kv = NULL;
    rf_error err;
    RF_ASSERT(rf_kv_create(&cfg, &kv, &err) == RF_OK);
    for (int s = 0; s < n_seq; s++) RF_ASSERT(rf_kv_seq_reserve(kv, s, len[s]) == RF_OK);

    /* GPU tables: a random permutation of the pool's blocks. */
    const int64_t mb = cfg.max_blocks_per_seq, nb = cfg.n_blocks;
    int32_t *perm = xmalloc((size_t)nb * 4), *tables = xmalloc((size_t)(n_seq * mb) * 4);
    for (int64_t i = 0; i < nb; i++) perm[i] = (int32_t)i;
    for (int64_t i = nb - 1; i > 0; i--) {
        int64_t j = rng_int(i + 1);
        int32_t tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    int64_t next = 0;
    for (int s = 0; s < n_seq; s++)
        for (int64_t b = 0; b < mb; b++) tables[s * mb + b] = b * bs < len[s] ? perm[next++] : -1;
    RF_ASSERT(next <= nb);

    /* Every cached position: k, v random, stored on both sides. */
    float *k = xmalloc((size_t)(total * kvd) * 4), *v = xmalloc((size_t)(total * kvd) * 4);
    int32_t *pos = xmalloc((size_t)total * 4), *seq = xmalloc((size_t)total * 4);
    fill_normal(k, total * kvd, 1.0f);
    fill_normal(v, total * kvd, 1.0f);
    int64_t row = 0;
    for (int s = 0; s < n_seq; s++)
        for (int64_t p = 0; p < len[s]; p++, row++) {
            pos[row] = (int32_t)p, seq[row] = s;
            uint16_t *kd = rf_kv_k(kv, 0, s, p), *vd = rf_kv_v(kv, 0, s, p);
            for (int64_t i = 0; i < kvd; i++) {
                kd[i] = rf_fp32_to_fp16(k[row * kvd + i]);
                vd[i] = rf_fp32_to_fp16(v[row * kvd + i]);
            }
        }
    const size_t cache_bytes = (size_t)(nb * bs * kvd) * 2;
    rfk_kv_view view = {dev_alloc(cache_bytes), dev_alloc(cache_bytes), NULL, mb, kvd, bs};
    int32_t *dtables = dev_upload(tables, (size_t)(n_seq * mb) * 4);
    view.tables = dtables;
    float *dk = dev_upload(k, (size_t)(total * kvd) * 4), *dv = dev_upload(v, (size_t)(total * kvd) * 4);
    int32_t *dpos = dev_upload(pos, (size_t)total * 4), *dseq = dev_upload(seq, (size_t)total * 4);
    int st = rfk_kv_store(&kctx, NULL, &view, dk, dv, dpos, dseq, total);
    int sst = rfk_rt_sync();
    char what[128];
    snprintf(what, sizeof what, "kvd=%lld positions=%lld", (long long)kvd, (long long)total);
    {
        /* kv_store: every stored half must equal the CPU's conversion. */
        uint16_t *kh = xmalloc(cache_bytes), *vh = xmalloc(cache_bytes);
        (void)rfk_rt_download(kh, view.k, cache_bytes);
        (void)rfk_rt_download(vh, view.v, cache_bytes);
        int64_t bad = 0;
        for (int64_t r = 0; r < total; r++) {
            const int32_t b = tables[seq[r] * mb + pos[r] / bs];
            const size_t off = ((size_t)b * bs + (size_t)(pos[r] % bs)) * (size_t)kvd;
            const uint16_t *kc = rf_kv_k(kv, 0, seq[r], pos[r]), *vc = rf_kv_v(kv, 0, seq[r], pos[r]);
            for (int64_t i = 0; i < kvd; i++) bad += (kh[off + i] != kc[i]) + (vh[off + i] != vc[i]);
        }
        bool ok = !st && !sst && bad == 0;
        ok ? n_pass++ : n_fail++;
        printf("%s %-10s %-40s %lld of %lld halves differ (status %d/%d)\n", ok ? "ok  " : "FAIL", "kv_store", what,
               (long long)bad, (long long)(2 * total * kvd), st, sst);
        free(kh), free(vh);
    }

    /* Queries. */
    /* n_new < 0: the last -n_new positions of every sequence, one batch
     * (prompts of several sequences side by side) */
    const int64_t per = n_new < 0 ? -n_new : n_new;
    const int64_t n_tok = n_new > 0 ? n_new : n_new < 0 ? per * n_seq : n_seq;
    const int64_t distinct = n_new > 0 ? 1 : n_seq;
    int32_t *qpos = xmalloc((size_t)n_tok * 4), *qseq = xmalloc((size_t)n_tok * 4);
    for (int64_t t = 0; t < n_tok; t++) {
        if (n_new < 0) {
            qseq[t] = (int32_t)(t / per);
            qpos[t] = (int32_t)(len[t / per] - per + t % per);
        } else {
            qseq[t] = n_new > 0 ? 0 : (int32_t)t;
            qpos[t] = (int32_t)(n_new > 0 ? len[0] - n_new + t : len[t] - 1);
        }
    }
    const int64_t qd = n_head * hd;
    float *q = xmalloc((size_t)(n_tok * qd) * 4);
    float *o_ref = xmalloc((size_t)(n_tok * qd) * 4), *o_gpu = xmalloc((size_t)(n_tok * qd) * 4);
    fill_normal(q, n_tok * qd, 1.0f);
    const float scale = 1.0f / sqrtf((float)hd);
    rf_attn_args a = {q, o_ref, n_tok, n_head, n_head_kv, hd, scale, window, qpos, qseq, kv, 0};
    ref->attention(ref_ctx, &a);

    float *dq = dev_upload(q, (size_t)(n_tok * qd) * 4), *dout = dev_poisoned((size_t)(n_tok * qd));
    int32_t *dqpos = dev_upload(qpos, (size_t)n_tok * 4), *dqseq = dev_upload(qseq, (size_t)n_tok * 4);
    int32_t max_pos = 0;
    for (int64_t t = 0; t < n_tok; t++) max_pos = qpos[t] > max_pos ? qpos[t] : max_pos;
    /* Three times: without scratch, with it (long decode then splits the key
     * range over blocks and merges the pieces), and told the number of
     * sequences (prompts then take the tiled prefill kernel). */
    const size_t asb = rfk_attention_scratch_bytes(hd);
    void *ascratch = dev_alloc(asb);
    /* the scratch variants also write the output's q8 blocks (hd a multiple
     * of 32, n_tok <= 64), checked through the mat-vec that reads them */
    const bool with_q8 = hd % 32 == 0 && n_tok <= 64;
    const size_t qsb = with_q8 ? rfk_matmul_scratch_bytes(RF_TYPE_Q8_0, qd, n_tok) : 0;
    void *q8 = with_q8 ? dev_alloc(qsb) : NULL;
    for (int variant = 0; variant < 3; variant++) {
        const bool with_scratch = variant >= 1;
        (void)rfk_rt_memset(dout, 0xFF, (size_t)(n_tok * qd) * 4);
        if (q8) (void)rfk_rt_memset(q8, 0xFF, qsb);
        rfk_attn_args ga = {dq, dout, dqpos, dqseq, n_tok, n_head, n_head_kv, hd, scale, window, max_pos,
                            with_scratch ? ascratch : NULL, with_scratch ? asb : 0, variant == 2 ? distinct : 0,
                            with_scratch ? q8 : NULL, with_scratch ? qsb : 0, NULL, NULL, NULL, 0, 0};
        st = rfk_attention(&kctx, NULL, &view, &ga);
        (void)rfk_rt_sync();
        download(o_gpu, dout, n_tok * qd);
        snprintf(what, sizeof what, "%s h=%lld/%lld hd=%lld n_tok=%lld ctx<=%lld win=%lld%s",
                 n_new != 0 ? "prefill" : "decode", (long long)n_head, (long long)n_head_kv, (long long)hd,
                 (long long)n_tok, (long long)max_len, (long long)window,
                 variant == 2 ? " n_seq" : with_scratch ? " scratch" : "");
        report("attention", what, st, o_gpu, o_ref, n_tok * qd, 1e-9);
        if (with_scratch && q8 && !st) check_q8_through_matvec("attention", what, o_gpu, n_tok, qd, q8, qsb);
    }
    rfk_rt_free(ascratch);
    if (q8) rfk_rt_free(q8);
    /* decode: the same queries with RoPE and the KV store in the launch, both
     * styles (neox over half the head: partial rotation) */
    if (n_new == 0) {
        test_attention_new_keys(kv, &view, tables, mb, dq, q, qpos, qseq, dqpos, dqseq, n_tok, n_head, n_head_kv, hd,
                                window, max_pos, max_len, RF_ROPE_NORMAL, hd);
        test_attention_new_keys(kv, &view, tables, mb, dq, q, qpos, qseq, dqpos, dqseq, n_tok, n_head, n_head_kv, hd,
                                window, max_pos, max_len, RF_ROPE_NEOX, hd / 2 % 2 ? hd : hd / 2);
    }

    rfk_rt_free(view.k), rfk_rt_free(view.v), rfk_rt_free(dtables), rfk_rt_free(dk), rfk_rt_free(dv);
    rfk_rt_free(dpos), rfk_rt_free(dseq), rfk_rt_free(dq), rfk_rt_free(dout), rfk_rt_free(dqpos), rfk_rt_free(dqseq);
    free(perm), free(tables), free(k), free(v), free(pos), free(seq), free(qpos), free(qseq), free(q), free(o_ref),
        free(o_gpu);
    rf_kv_free(kv);
}

/* ---- the launch check is called, and refusals come back ---------------- */

static int check_calls;
static int refuse_all(void *user, const char *kernel, rfk_dim3 grid, rfk_dim3 block, size_t smem) {
    check_calls++;
    return -100;
}
static void test_launch_check(void) {
    rfk_ctx c = kctx;
    c.check = refuse_all;
    float *d = dev_alloc(64 * 4);
    check_calls = 0;
    int st = rfk_add(&c, NULL, d, d, d, 64);
    c.warp_size = 48;
    int st_warp = rfk_rmsnorm(&c, NULL, d, NULL, d, 1, 64, 1e-5f);
    bool ok = st == -100 && check_calls == 1 && st_warp == RFK_E_WARP;
    ok ? n_pass++ : n_fail++;
    printf("%s %-10s %-40s status %d, %d calls; warp 48 -> %d\n", ok ? "ok  " : "FAIL", "launch", "check hook refusal",
           st, check_calls, st_warp);
    rfk_rt_free(d);
}

/* The int8 matrix-product primitive against a CPU product of the fragment
 * layout kcommon.cuh documents: the instruction (sm_80+) and the emulation
 * (what HIP builds run) must both equal it exactly. */
static int8_t frag_byte(const int32_t *v, int i) { return (int8_t)((uint32_t)*v >> (8 * i)); }

static void test_mma_selftest(void) {
    int32_t a[32 * 4], b[32 * 2], out[4 * 32 * 4];
    for (int i = 0; i < 32 * 4; i++) a[i] = (int32_t)(uint32_t)rng_next();
    for (int i = 0; i < 32 * 2; i++) b[i] = (int32_t)(uint32_t)rng_next();
    int A[16][32], B[32][8], A16[16][16], B16[16][8];
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, q = l % 4;
        for (int i = 0; i < 4; i++) {
            A[g][4 * q + i] = frag_byte(&a[4 * l], i), A[g + 8][4 * q + i] = frag_byte(&a[4 * l + 1], i);
            A[g][16 + 4 * q + i] = frag_byte(&a[4 * l + 2], i), A[g + 8][16 + 4 * q + i] = frag_byte(&a[4 * l + 3], i);
            B[4 * q + i][g] = frag_byte(&b[2 * l], i), B[16 + 4 * q + i][g] = frag_byte(&b[2 * l + 1], i);
            A16[g][4 * q + i] = A[g][4 * q + i], A16[g + 8][4 * q + i] = A[g + 8][4 * q + i];
            B16[4 * q + i][g] = B[4 * q + i][g];
        }
    }
    int32_t *da = dev_upload(a, sizeof a), *db = dev_upload(b, sizeof b), *dout = dev_alloc(sizeof out);
    int st = rfk_mma_selftest(&kctx, NULL, da, db, dout);
    int sync = rfk_rt_sync();
    if (!st && !sync) sync = rfk_rt_download(out, dout, sizeof out);
    int bad = 0;
    for (int k = 0; k < 4 && !st && !sync; k++)
        for (int l = 0; l < 32; l++)
            for (int i = 0; i < 4; i++) {
                const int g = l / 4 + 8 * (i / 2), n = 2 * (l % 4) + i % 2, kk = k < 2 ? 32 : 16;
                const int init = k < 2 ? 1 + i : (i % 2 ? 1 : -1) * (5 + i);
                int want = init;
                for (int e = 0; e < kk; e++) want += k < 2 ? A[g][e] * B[e][n] : A16[g][e] * B16[e][n];
                if (out[(k * 32 + l) * 4 + i] != want) bad++;
            }
    const bool ok = !st && !sync && !bad;
    ok ? n_pass++ : n_fail++;
    printf("%s mma        %-40s %d of 512 sums differ (launch %d, sync %d)\n", ok ? "ok  " : "FAIL",
           "int8 k32/k16: instruction, emulation", bad, st, sync);
    rfk_rt_free(da), rfk_rt_free(db), rfk_rt_free(dout);
}

/* The float16 matrix primitive against a CPU product in double of the
 * fragment layout kcommon.cuh documents: the instruction (sm_80+) and the
 * emulation must both be within float rounding of it (products of float16
 * are exact in float32; only the order of the sums differs). And the
 * fragment load (rfk_ldsm_x4) both ways against the layout, exactly. */
static void test_mma_f16_selftest(void) {
    int32_t a[32 * 4], b[32 * 2], ld[2 * 32 * 4];
    uint16_t m[8 * 40];
    float out[2 * 32 * 4];
    double A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        const int g = l / 4, q = l % 4;
        uint16_t h[6][2];
        for (int r = 0; r < 6; r++)
            for (int e = 0; e < 2; e++) h[r][e] = rf_fp32_to_fp16(rng_normal() * 4.0f);
        for (int r = 0; r < 4; r++) a[4 * l + r] = (int32_t)(h[r][0] | (uint32_t)h[r][1] << 16);
        for (int r = 0; r < 2; r++) b[2 * l + r] = (int32_t)(h[4 + r][0] | (uint32_t)h[4 + r][1] << 16);
        for (int e = 0; e < 2; e++) {
            A[g][2 * q + e] = rf_fp16_to_fp32(h[0][e]), A[g + 8][2 * q + e] = rf_fp16_to_fp32(h[1][e]);
            A[g][2 * q + 8 + e] = rf_fp16_to_fp32(h[2][e]), A[g + 8][2 * q + 8 + e] = rf_fp16_to_fp32(h[3][e]);
            B[2 * q + e][g] = rf_fp16_to_fp32(h[4][e]), B[2 * q + 8 + e][g] = rf_fp16_to_fp32(h[5][e]);
        }
    }
    for (int i = 0; i < 8 * 40; i++) m[i] = (uint16_t)rng_next();
    int32_t *da = dev_upload(a, sizeof a), *db = dev_upload(b, sizeof b), *dld = dev_alloc(sizeof ld);
    uint16_t *dm = dev_upload(m, sizeof m);
    float *dout = dev_alloc(sizeof out);
    int st = rfk_mma_f16_selftest(&kctx, NULL, da, db, dm, dout, dld);
    int sync = rfk_rt_sync();
    if (!st && !sync) sync = rfk_rt_download(out, dout, sizeof out);
    if (!st && !sync) sync = rfk_rt_download(ld, dld, sizeof ld);
    int bad = 0, bad_ld = 0;
    double worst = 0.0;
    for (int k = 0; k < 2 && !st && !sync; k++)
        for (int l = 0; l < 32; l++) {
            for (int i = 0; i < 4; i++) {
                const int g = l / 4 + 8 * (i / 2), n = 2 * (l % 4) + i % 2;
                static const double init[4] = {1.0, -2.0, 3.0, -4.0};
                double want = init[i], mag = fabs(init[i]);
                for (int e = 0; e < 16; e++) want += A[g][e] * B[e][n], mag += fabs(A[g][e] * B[e][n]);
                const double err = fabs(out[(k * 32 + l) * 4 + i] - want) / mag;
                if (err > worst) worst = err;
                if (err > 1e-6) bad++;
                /* the load: row l / 4, columns 8i + 2 (l % 4) and the next */
                const int c = 8 * i + 2 * (l % 4);
                const uint32_t w = m[(l / 4) * 40 + c] | (uint32_t)m[(l / 4) * 40 + c + 1] << 16;
                if ((uint32_t)ld[(k * 32 + l) * 4 + i] != w) bad_ld++;
            }
        }
    const bool ok = !st && !sync && !bad && !bad_ld;
    ok ? n_pass++ : n_fail++;
    printf("%s mma        %-40s %d of 256 sums off (worst %.1e of the sum of |products|), %d of 256 loads differ "
           "(launch %d, sync %d)\n",
           ok ? "ok  " : "FAIL", "float16 k16, ldmatrix: instruction, emul.", bad, worst, bad_ld, st, sync);
    rfk_rt_free(da), rfk_rt_free(db), rfk_rt_free(dm), rfk_rt_free(dout), rfk_rt_free(dld);
}

/* ---- benchmark ----------------------------------------------------------- */

static double median_ms(float *ms, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ms[j] < ms[j - 1]; j--) {
            float tmp = ms[j];
            ms[j] = ms[j - 1], ms[j - 1] = tmp;
        }
    return ms[n / 2];
}

/* Median of 21 timed runs of one matmul (after warm-up). Weights are a few
 * real quantized rows tiled to the full size (speed does not depend on the
 * values, and quantizing 58M weights on the CPU would dominate), in as many
 * copies as make 512 MB, used in turn, so that no run finds its weights in
 * the 50-60 MB L2 the previous run left. */
static void bench_matmul(rf_type t, int64_t rows, int64_t cols, int64_t n_tok, bool with_scratch) {
    size_t rb;
    const int64_t uniq = 64;
    uint8_t *w1 = random_weights(t, uniq, cols, &rb);
    const size_t wbytes = rb * (size_t)rows;
    uint8_t *w = xmalloc(wbytes);
    for (int64_t r = 0; r < rows; r++) memcpy(w + (size_t)r * rb, w1 + (size_t)(r % uniq) * rb, rb);
    int n_copies = (int)((512u << 20) / wbytes) + 1;
    if (n_copies > 64) n_copies = 64;
    void *dw[64];
    for (int i = 0; i < n_copies; i++) dw[i] = dev_upload(w, wbytes);
    float *x = xmalloc((size_t)(n_tok * cols) * 4);
    fill_normal(x, n_tok * cols, 1.0f);
    float *dx = dev_upload(x, (size_t)(n_tok * cols) * 4), *dy = dev_alloc((size_t)(n_tok * rows) * 4);
    const size_t sb = with_scratch ? rfk_matmul_scratch_bytes(t, cols, n_tok) : 0;
    void *scratch = sb ? dev_alloc(sb) : NULL;
    int st = 0, next = 0;
    for (int i = 0; i < 5; i++)
        st |= rfk_matmul(&kctx, NULL, t, dw[i % n_copies], rb, cols, rows, dx, dy, n_tok, scratch, sb);
    st |= rfk_rt_sync();
    float ms[21];
    const int reps = 21, inner = 10;
    for (int i = 0; i < reps; i++) {
        rfk_rt_timer_start();
        for (int j = 0; j < inner; j++, next = (next + 1) % n_copies)
            st |= rfk_matmul(&kctx, NULL, t, dw[next], rb, cols, rows, dx, dy, n_tok, scratch, sb);
        rfk_rt_timer_stop_ms(&ms[i]);
        ms[i] /= (float)inner;
    }
    const double us = median_ms(ms, reps) * 1e3;
    const double bytes = (double)wbytes + 4.0 * (double)n_tok * (cols + rows);
    printf("bench matmul %-6s %-6s %6lld x %-6lld n_tok=%-4lld %9.1f us  %7.1f GB/s  %7.2f TFLOP/s%s\n",
           rf_type_name(t), scratch && n_tok <= 64 ? "q8-act" : "f32-act", (long long)rows, (long long)cols,
           (long long)n_tok, us, bytes / us * 1e-3,
           2.0 * rows * cols * n_tok / us * 1e-6, st ? "  (ERROR)" : "");
    if (st) n_fail++;
    rfk_rt_free(scratch);
    for (int i = 0; i < n_copies; i++) rfk_rt_free(dw[i]);
    rfk_rt_free(dx), rfk_rt_free(dy);
    free(w1), free(w), free(x);
}

/* Attention over n_seq sequences of ctx cached positions: decode (one
 * query per sequence at its last position) or prefill (the last n_new
 * positions of one sequence). Bytes counted: each sequence's K and V once. */
static void bench_attention(int64_t n_head, int64_t n_head_kv, int64_t hd, int n_seq, int64_t ctx, int64_t n_new,
                            bool with_scratch) {
    const int bs = 16;
    const int64_t kvd = n_head_kv * hd, mb = (ctx + bs - 1) / bs, nb = mb * n_seq;
    const size_t cache_halves = (size_t)(nb * bs * kvd);
    uint16_t *hbuf = xmalloc(cache_halves * 2);
    for (size_t i = 0; i < cache_halves; i++) hbuf[i] = rf_fp32_to_fp16(rng_normal());
    int32_t *tables = xmalloc((size_t)nb * 4);
    for (int64_t i = 0; i < nb; i++) tables[i] = (int32_t)i;
    const int64_t n_tok = n_new > 0 ? n_new : n_seq, qd = n_head * hd;
    int32_t *qpos = xmalloc((size_t)n_tok * 4), *qseq = xmalloc((size_t)n_tok * 4);
    for (int64_t t = 0; t < n_tok; t++) {
        qseq[t] = n_new > 0 ? 0 : (int32_t)t;
        qpos[t] = (int32_t)(n_new > 0 ? ctx - n_new + t : ctx - 1);
    }
    float *q = xmalloc((size_t)(n_tok * qd) * 4);
    fill_normal(q, n_tok * qd, 1.0f);
    rfk_kv_view view = {dev_upload(hbuf, cache_halves * 2), dev_upload(hbuf, cache_halves * 2), NULL, mb, kvd, bs};
    int32_t *dtables = dev_upload(tables, (size_t)nb * 4);
    view.tables = dtables;
    float *dq = dev_upload(q, (size_t)(n_tok * qd) * 4), *dout = dev_alloc((size_t)(n_tok * qd) * 4);
    int32_t *dpos = dev_upload(qpos, (size_t)n_tok * 4), *dseq = dev_upload(qseq, (size_t)n_tok * 4);
    const size_t asb = with_scratch ? rfk_attention_scratch_bytes(hd) : 0;
    void *ascratch = asb ? dev_alloc(asb) : NULL;
    rfk_attn_args a = {dq,  dout, dpos, dseq, n_tok, n_head, n_head_kv, hd, 1.0f / sqrtf((float)hd), 0, ctx - 1,
                       ascratch, asb, n_new > 0 ? 1 : n_seq, NULL, 0, NULL, NULL, NULL, 0, 0};
    int st = 0;
    for (int i = 0; i < 3; i++) st |= rfk_attention(&kctx, NULL, &view, &a);
    st |= rfk_rt_sync();
    float ms[11];
    for (int i = 0; i < 11; i++) {
        rfk_rt_timer_start();
        for (int j = 0; j < 5; j++) st |= rfk_attention(&kctx, NULL, &view, &a);
        rfk_rt_timer_stop_ms(&ms[i]);
        ms[i] /= 5.0f;
    }
    const double us = median_ms(ms, 11) * 1e3;
    printf("bench attention %s%s h=%lld/%lld hd=%lld seqs=%d ctx=%lld n_tok=%lld %9.1f us  %7.1f GB/s (K+V once)%s\n",
           n_new > 0 ? "prefill" : "decode", ascratch ? "+split" : "", (long long)n_head, (long long)n_head_kv, (long long)hd, n_seq,
           (long long)ctx, (long long)n_tok, us, (double)cache_halves * 2 * 2 / us * 1e-3, st ? "  (ERROR)" : "");
    if (st) n_fail++;
    rfk_rt_free(view.k), rfk_rt_free(view.v), rfk_rt_free(dtables), rfk_rt_free(dq), rfk_rt_free(dout);
    rfk_rt_free(dpos), rfk_rt_free(dseq), rfk_rt_free(ascratch);
    free(hbuf), free(tables), free(qpos), free(qseq), free(q);
}

/* Device-to-device copy of 1 GiB: the bandwidth figure the decode
 * fraction in docs/PERF.md divides by (bytes read + bytes written). */
static void bench_copy(void) {
    const size_t n = (size_t)1 << 30;
    void *a = dev_alloc(n), *b = dev_alloc(n);
    int st = rfk_rt_memset(a, 0x5A, n) | rfk_rt_copy(b, a, n) | rfk_rt_sync();
    float ms[11];
    for (int i = 0; i < 11; i++) {
        rfk_rt_timer_start();
        for (int j = 0; j < 3; j++) st |= rfk_rt_copy(b, a, n);
        rfk_rt_timer_stop_ms(&ms[i]);
        ms[i] /= 3.0f;
    }
    const double s = median_ms(ms, 11) * 1e-3;
    printf("bench copy 1 GiB device-to-device %8.1f us  %7.1f GB/s (read + write)%s\n", s * 1e6, 2.0 * (double)n / s * 1e-9,
           st ? "  (ERROR)" : "");
    if (st) n_fail++;
    rfk_rt_free(a), rfk_rt_free(b);
}

/* The batched-decode sizes: mat-vec (1) and the small-batch kernels. Run
 * with ROCMFORGE_GPU_MMQ_MIN=0 to time the mat-vec at the same sizes. */
/* RF_BENCH_LAYER=1: only the 8B layer's shapes (seconds, for comparing
 * settings of the small-batch products between runs) */
static void run_bench_batch(void) {
    const char *le = getenv("RF_BENCH_LAYER");
    const bool layer_only = le && le[0] && le[0] != '0';
    static const rf_type bt[] = {RF_TYPE_Q4_0, RF_TYPE_Q4_K, RF_TYPE_Q6_K, RF_TYPE_Q8_0};
    static const int64_t nt[] = {1, 2, 4, 8, 16, 32, 64};
    for (size_t i = 0; i < RF_ARRAY_LEN(bt) && !layer_only; i++)
        for (size_t j = 0; j < RF_ARRAY_LEN(nt); j++) bench_matmul(bt[i], 14336, 4096, nt[j], true);
    /* an 8B layer's batched-decode matmuls at 8 and 32 tokens: q|k|v, o, gate|up, down */
    static const int64_t shapes[4][2] = {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
    static const rf_type lt[] = {RF_TYPE_Q4_0, RF_TYPE_Q4_K, RF_TYPE_Q6_K};
    static const int64_t ln[] = {32, 8};
    for (size_t j = 0; j < RF_ARRAY_LEN(ln); j++)
        for (size_t i = 0; i < RF_ARRAY_LEN(lt); i++)
            for (int k = 0; k < 4; k++) bench_matmul(lt[i], shapes[k][0], shapes[k][1], ln[j], true);
}

static void run_bench(void) {
    bench_copy();
    static const rf_type bt[] = {RF_TYPE_Q4_0, RF_TYPE_Q4_K, RF_TYPE_Q8_0, RF_TYPE_Q6_K, RF_TYPE_F16};
    for (size_t i = 0; i < RF_ARRAY_LEN(bt); i++)
        for (int q8 = 0; q8 < 2; q8++) {
            if (q8 && !rfk_matmul_scratch_bytes(bt[i], 4096, 1)) continue;
            bench_matmul(bt[i], 4096, 4096, 1, q8);
            bench_matmul(bt[i], 14336, 4096, 1, q8);
            bench_matmul(bt[i], 4096, 14336, 1, q8);
        }
    static const rf_type more[] = {RF_TYPE_Q4_1, RF_TYPE_Q5_0, RF_TYPE_Q5_K, RF_TYPE_Q3_K, RF_TYPE_Q2_K, RF_TYPE_IQ4_XS,
                                   RF_TYPE_BF16};
    for (size_t i = 0; i < RF_ARRAY_LEN(more); i++) bench_matmul(more[i], 14336, 4096, 1, true);
    bench_matmul(RF_TYPE_Q4_0, 14336, 4096, 8, false);
    bench_matmul(RF_TYPE_Q4_0, 14336, 4096, 8, true);
    bench_matmul(RF_TYPE_Q4_K, 14336, 4096, 16, true);
    bench_matmul(RF_TYPE_Q4_0, 4096, 4096, 512, false);
    bench_matmul(RF_TYPE_Q4_K, 14336, 4096, 512, false);
    for (int sc = 0; sc < 2; sc++) {
        bench_attention(32, 8, 128, 1, 4096, 0, sc);
        bench_attention(32, 8, 128, 8, 4096, 0, sc);
        bench_attention(32, 8, 128, 1, 16384, 0, sc);
    }
    bench_attention(32, 8, 128, 1, 512, 512, false);
}

/* ---- main ---------------------------------------------------------------- */

int rfk_host_checks(void); /* host_checks.c */

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--host-only") == 0) return rfk_host_checks() ? 1 : 0; /* no GPU needed */
    bool bench = argc > 1 && strcmp(argv[1], "--bench") == 0;
    const char *seed_env = getenv("RF_SEED");
    rng_state = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL) * 2654435761u;
    if (!rng_state) rng_state = 1;
    char name[256];
    int st = rfk_rt_init(&kctx.warp_size, &kctx.n_units, name, sizeof name);
    if (st) {
        fprintf(stderr, "op_suite: no GPU: %s\n", rfk_rt_error_str(st));
        return 2;
    }
    /* as the backend: the small-batch products' K split (RF_OPS_NO_SPLIT=1: without) */
    const char *ns = getenv("RF_OPS_NO_SPLIT");
    if (!(ns && ns[0] && ns[0] != '0')) {
        kctx.mmq_split_bytes = rfk_mmq_split_bytes(kctx.n_units);
        kctx.mmq_split = dev_alloc(kctx.mmq_split_bytes);
        (void)rfk_rt_memset(kctx.mmq_split, 0, RFK_MMQ_TICKETS * sizeof(int));
    }
    const char *early = getenv("ROCMFORGE_GPU_EARLY"); /* as the backend: early launches where the device has them */
    kctx.early_launch = rfk_rt_early_launch() && !(early && early[0] == '0');
    printf("op_suite: device %s, warp %d, early launch %s, K split %s, seed %llu\n", name, kctx.warp_size,
           kctx.early_launch ? "on" : "off", kctx.mmq_split ? "on" : "off", (unsigned long long)rng_state);
    if (argc == 6 && strcmp(argv[1], "--bench-one") == 0) { /* TYPE ROWS COLS N_TOK, for profilers */
        rf_type t;
        if (!rf_type_from_name(argv[2], &t)) return 2;
        bench_matmul(t, atoll(argv[3]), atoll(argv[4]), atoll(argv[5]), getenv("RF_Q8") != NULL);
        return n_fail ? 1 : 0;
    }
    if (argc > 1 && strcmp(argv[1], "--bench-batch") == 0) {
        run_bench_batch();
        return n_fail ? 1 : 0;
    }
    if (argc > 1 && strcmp(argv[1], "--bench-copy") == 0) {
        bench_copy();
        return n_fail ? 1 : 0;
    }
    if (bench) {
        run_bench();
        return n_fail ? 1 : 0;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    rf_threadpool *tp = rf_threadpool_create(ncpu < 1 ? 1 : ncpu > 32 ? 32 : (int)ncpu);
    ref_ctx = rf_cpu_ref_ctx_create(tp);
    RF_ASSERT(tp && ref_ctx);

    test_launch_check();
    test_mma_selftest();
    test_mma_f16_selftest();
    /* RF_OPS_MATMUL_ONLY: the matmul cases alone, for a time-limited device call
       after a matmul change; RF_OPS_SKIP_MATMUL: all but them, after a change
       elsewhere. A full run is the default and what gpu-check's ops do. */
    const char *mm_env = getenv("RF_OPS_MATMUL_ONLY");
    const bool mm_only = mm_env && mm_env[0] && mm_env[0] != '0';
    const char *skip_env = getenv("RF_OPS_SKIP_MATMUL");
    const bool skip_mm = skip_env && skip_env[0] && skip_env[0] != '0';
    /* RF_OPS_MMQ_ONLY: the matrix-product kernel's cases alone (seconds) */
    const char *mmq_env = getenv("RF_OPS_MMQ_ONLY");
    const bool mmq_only = mmq_env && mmq_env[0] && mmq_env[0] != '0';
    if (skip_mm) goto rest;
    if (mmq_only) goto mmq;
    for (size_t i = 0; i < RF_ARRAY_LEN(mm_types); i++) {
        const rf_type t = mm_types[i];
        const int64_t blk = rf_type_get(t)->blck_size < 32 ? 32 : rf_type_get(t)->blck_size;
        static const int64_t ntoks[] = {1, 2, 3, 8, 9, 16, 17, 33, 64, 77, 512};
        const bool int_dot = rfk_matmul_scratch_bytes(t, 3 * blk, 1) > 0;
        for (size_t j = 0; j < RF_ARRAY_LEN(ntoks); j++) {
            /* rows not a multiple of any tile; cols a few blocks, odd count */
            test_matmul(t, 67, 3 * blk, ntoks[j], false);
            if (int_dot && ntoks[j] <= 64) test_matmul(t, 67, 3 * blk, ntoks[j], true);
        }
        test_matmul(t, 300, 2048, 1, false);
        if (int_dot) test_matmul(t, 300, 2048, 1, true), test_matmul(t, 300, 2048, 16, true);
        test_matmul(t, 129, 1024, 77, true); /* scratch given, tiled path ignores it */
        if (int_dot) { /* rows of whole 16-byte vectors: the wide-load mat-vecs where the type has one;
                          136 blocks of 32 = a full staged tile and a partial one, 17 of 256 */
            static const int64_t nts[] = {1, 3, 8, 16, 32, 40};
            for (size_t j = 0; j < RF_ARRAY_LEN(nts); j++) test_matmul(t, 129, 4352, nts[j], true);
            test_matmul(t, 67, 10240, 1, true); /* Q6_K's rows are whole 16-byte vectors at 8 blocks */
            test_matmul(t, 67, 10240, 5, true);
            static const int64_t parts[3] = {128, 64, 33};
            test_matmul_split(t, parts, 2048, 2);
            test_matmul_split(t, parts, 2048, 20); /* the int8 matrix-product kernel where the type has one */
        }
        test_get_rows(t, 50, 5 * blk, 7);
        test_dequant_f16(t, 37, 3 * blk);
        if (int_dot) {
            static const int64_t parts[3] = {64, 16, 19};
            test_matmul_split(t, parts, 3 * blk, 1);
            test_matmul_split(t, parts, 3 * blk, 5);
        }
    }
    { /* the wide mat-vecs with several rows per warp: on a pretend one-multiprocessor
         device the grid is what one holds, so each warp takes rows r, r + stride, ...
         (uneven counts: 129, 1000, 300 rows) */
        const int units = kctx.n_units;
        kctx.n_units = 1;
        static const rf_type st[] = {RF_TYPE_Q4_0, RF_TYPE_Q8_0, RF_TYPE_Q4_K, RF_TYPE_Q6_K};
        for (size_t i = 0; i < RF_ARRAY_LEN(st); i++) {
            test_matmul(st[i], 129, 10240, 1, true); /* 2.5 tiles of every wide kernel */
            test_matmul(st[i], 1000, 4352, 1, true);
            test_matmul(st[i], 300, 2048, 1, true);
            test_matmul(st[i], 129, 4096, 1, true); /* Q6_K's widest row with its q8 row in shared memory */
        }
        /* one token past the 16384 columns whose q8 row the Q4_0 and Q4_K
           one-token kernels take in shared memory: the reads from global
           memory (Q6_K's, past 4096 columns, are the 10240 and 4352 above) */
        test_matmul(RF_TYPE_Q4_0, 67, 16640, 1, true);
        test_matmul(RF_TYPE_Q4_K, 67, 18432, 1, true);
        kctx.n_units = units;
    }
mmq:
    { /* the row-tiled matrix-product kernel (mmq.cu's k_mmq_rows), on int8 and on
         float16 products (kctx.mmq_f16 2, 1; the other cases run the build's default):
         rows of whole vectors, 129 rows (a partial tile), 40 stages of 256 columns
         (80 of 128); the K split (kctx.mmq_split) takes this device's small grid
         into 8 parts, a pretend one-multiprocessor device's into 1 or 2, a pretend
         five-multiprocessor one's into 6 or 8 (uneven stage counts), and with
         RF_OPS_NO_SPLIT=1 the grids keep 64 rows and fewer tokens instead; 3 tokens
         (one 8-token tile, 5 clamped) */
        static const rf_type mt[] = {RF_TYPE_Q4_0, RF_TYPE_Q4_1, RF_TYPE_Q8_0, RF_TYPE_Q4_K, RF_TYPE_Q6_K};
        static const int64_t nts[] = {3, 9, 16, 32, 40};
        const int units = kctx.n_units;
        for (int f16 = 1; f16 <= 2; f16++) {
            kctx.mmq_f16 = f16;
            for (int pass = 0; pass < 3; pass++) {
                kctx.n_units = pass == 0 ? units : pass == 1 ? 1 : 5;
                for (size_t i = 0; i < RF_ARRAY_LEN(mt); i++)
                    for (size_t j = 0; j < RF_ARRAY_LEN(nts); j++) test_matmul(mt[i], 129, 10240, nts[j], true);
            }
            /* Q6_K rows off the 16-byte grid (39 super-blocks, 8190 bytes): not the
               float16 kernel's, so the int8 one takes them */
            test_matmul(RF_TYPE_Q6_K, 129, 9984, 32, true);
        }
        kctx.mmq_f16 = 0;
        kctx.n_units = units;
    }
    if (mmq_only) goto done;
    { /* the add + norm fused into the mat-vec (rfk_matmul_norm) */
        static const rf_type nt[] = {RF_TYPE_Q4_0, RF_TYPE_Q8_0, RF_TYPE_Q4_K, RF_TYPE_Q6_K};
        for (size_t i = 0; i < RF_ARRAY_LEN(nt); i++) {
            test_matmul_norm(nt[i], 300, 4096, true, false);
            test_matmul_norm(nt[i], 67, 2048, false, false);
            /* 3840 columns: Q6_K's rows are then not whole 16-byte vectors, refused */
            test_matmul_norm(nt[i], 129, 4096 - 256, true, nt[i] == RF_TYPE_Q6_K);
            const int units = kctx.n_units; /* several rows a warp */
            kctx.n_units = 1;
            test_matmul_norm(nt[i], 1000, 2048, true, false);
            kctx.n_units = units;
        }
        test_matmul_norm(RF_TYPE_Q4_1, 64, 2048, true, true);   /* no fused kernel for the type */
        test_matmul_norm(RF_TYPE_Q4_0, 64, 4096 + 256, true, true); /* past the fused norm's registers */
    }
    if (mm_only) goto done;
rest:
    test_f32_to_f16(4);
    test_f32_to_f16(77 * 4096 + 4);
    test_add_rmsnorm_q8(1, 4096, true, true);
    test_add_rmsnorm_q8(5, 2048 + 96, true, true);
    test_add_rmsnorm_q8(16, 4096, false, true);
    test_add_rmsnorm_q8(77, 4097, true, false);
    test_add_rmsnorm_q8(2, 8192, true, true);
    test_add_rmsnorm_q8(32, 4096, true, true); /* batched decode: the float16 copy the 32-token tiles read */
    test_add_rmsnorm_q8(3, 8192 + 32, true, true); /* past the register path: the loop kernel */
    test_glu_q8(RF_ACT_SILU, 1, 14336);
    test_glu_q8(RF_ACT_GELU_TANH, 9, 2048 + 32);
    test_glu_q8(RF_ACT_SILU, 32, 14336);
    test_moe(RF_TYPE_Q4_0, 8, 2, 96, 512, 1, 1, true);   /* Mixtral's routing, one token */
    test_moe(RF_TYPE_Q4_K, 8, 2, 48, 1024, 37, 1, true); /* a prompt */
    test_moe(RF_TYPE_Q8_0, 128, 8, 32, 256, 5, 1, true); /* qwen3moe's counts */
    test_moe(RF_TYPE_F32, 16, 4, 40, 96, 3, 2, false);   /* sigmoid gating, no renormalising */
    test_moe(RF_TYPE_Q6_K, 4, 1, 64, 256, 9, 1, false);
    test_rope_kv_store(1, 32, 8, 128, 128, RF_ROPE_NORMAL);
    test_rope_kv_store(9, 8, 2, 64, 64, RF_ROPE_NEOX);
    test_rope_kv_store(5, 4, 4, 256, 64, RF_ROPE_NEOX); /* partial rotation */
    test_rope_kv_store(3, 6, 2, 80, 80, RF_ROPE_NORMAL);
    test_rope_kv_store(37, 4, 2, 32, 32, RF_ROPE_NORMAL); /* head_dim 32 */
    static const int64_t dims[] = {1, 64, 4096, 4097, 5120, 8192, 8196}; /* 8192: the register path's largest row */
    for (size_t i = 0; i < RF_ARRAY_LEN(dims); i++) {
        test_rmsnorm(3, dims[i], true);
        test_rmsnorm(77, dims[i], false);
        test_softmax(5, dims[i]);
    }
    test_softmax(2, 100003);
    test_rope(1, 32, 128, 128, RF_ROPE_NORMAL);
    test_rope(77, 8, 128, 128, RF_ROPE_NEOX);
    test_rope(16, 4, 256, 64, RF_ROPE_NEOX); /* partial rotation */
    test_rope(3, 5, 80, 80, RF_ROPE_NORMAL);
    test_glu(RF_ACT_SILU, 1);
    test_glu(RF_ACT_SILU, 100003);
    test_glu(RF_ACT_GELU_TANH, 77 * 1024 + 5);
    test_add(1);
    test_add(77 * 4096 + 3);
    {
        const int64_t dec[] = {1, 17, 300, 1029};
        test_attention(8, 8, 64, 4, dec, 0, 0);
        test_attention(32, 8, 128, 4, dec, 0, 0);
        test_attention(8, 2, 128, 4, dec, 0, 100);
        test_attention(4, 1, 256, 4, dec, 0, 0);
        test_attention(6, 2, 80, 4, dec, 0, 0);
        test_attention(4, 2, 32, 4, dec, 0, 0); /* head_dim 32: gpu-check's serve model */
        /* short ranges (the 8-key tiles where the blocks are few, W-key tiles where many) */
        const int64_t dshort[] = {1, 17, 300};
        test_attention(32, 8, 128, 3, dshort, 0, 0);
        test_attention(8, 2, 64, 3, dshort, 0, 50);
        test_attention(4, 1, 256, 3, dshort, 0, 0);
        test_attention(6, 2, 80, 3, dshort, 0, 0);
        test_attention(4, 2, 32, 3, dshort, 0, 0);
        const int64_t dmany[] = {5, 40, 100, 130, 7, 64, 200, 33, 1};
        test_attention(32, 8, 128, 9, dmany, 0, 0);
        /* more than 256 (head, token) blocks: the query heads of a kv head in one block
           (4 of them: two blocks a kv head at group 8; 2 at group 2), every head_dim */
        const int64_t dgqa[] = {3, 90, 260, 17, 1, 129, 64, 33, 200, 5, 48, 77};
        test_attention(32, 4, 128, 12, dgqa, 0, 0);
        test_attention(24, 12, 64, 12, dgqa, 0, 40);
        test_attention(32, 8, 256, 12, dgqa, 0, 0);
        test_attention(24, 6, 80, 12, dgqa, 0, 0);
        test_attention(24, 12, 32, 12, dgqa, 0, 0);
        const int64_t pre[] = {77, 5};
        test_attention(8, 2, 128, 2, pre, 77, 0);
        test_attention(8, 8, 64, 2, pre, 3, 0);
        const int64_t pre2[] = {600, 33};
        test_attention(16, 4, 128, 2, pre2, 512, 0);
        test_attention(16, 4, 128, 2, pre2, 512, 64);
        const int64_t pre3[] = {100, 70, 45};
        test_attention(8, 2, 64, 3, pre3, -40, 0);  /* three prompts in one batch, blocks straddling them */
        test_attention(6, 2, 80, 3, pre3, -33, 16);
        test_attention(4, 4, 96, 2, pre2, 200, 0);
        const int64_t longdec[] = {5000};
        test_attention(32, 8, 128, 1, longdec, 0, 0);
        test_attention(32, 8, 128, 1, longdec, 0, 1000);
        const int64_t one[] = {1};
        test_attention(2, 1, 64, 1, one, 1, 0);
        const int64_t p48[] = {48};
        test_attention(8, 2, 64, 1, p48, 40, 0); /* the tiled prefill kernel, then the q8 copy */
    }
done:
    printf("op_suite: %d passed, %d failed%s\n", n_pass, n_fail,
           mmq_only  ? " (matrix-product cases only)"
           : mm_only ? " (matmul cases only)"
           : skip_mm ? " (matmul cases skipped)"
                     : "");
    rf_cpu_ref_ctx_free(ref_ctx);
    rf_threadpool_free(tp);
    return n_fail ? 1 : 0;
}
