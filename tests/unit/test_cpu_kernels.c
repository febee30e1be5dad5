/*
 * test_cpu_kernels.c - every CPU kernel set this machine can run (scalar,
 * avx2, avx512, ...) against references, on fresh random inputs and odd
 * shapes.
 *
 * Matmul kernels, per weight type:
 *  - activation quantization: every set writes the same bytes as the scalar
 *    set (the rounding is specified, not approximate);
 *  - tight bound: against a double-precision dot product of the dequantized
 *    weights (src/quant reference) with the dequantized 8-bit activations.
 *    Only float rounding separates the two: the bound is
 *    16 * (K/32 + 16) * 2^-24 * sum|w a| (a float-summation bound over the
 *    blocks, with 16x headroom for the block-offset terms);
 *  - loose bound: against the float activations. Rounding x to the nearest
 *    multiple of the block scale d moves it by at most d/2, so the error is
 *    at most sum over blocks of d/2 * sum|w| (plus the tight bound and a
 *    1e-6 relative slack for the rounding of x * (127 / amax)).
 * Weights are quantized from random floats, and also drawn as raw random
 * bytes with sane float16 scale fields (reaching digit patterns quantizers
 * never write, e.g. Q8_0 -128 or Q6_K scale -128).
 *
 * Backend ops, per set against the reference op table (ops_ref.c), through
 * a 3-thread pool: matmul of every type including the dequantize fallback,
 * rmsnorm, SwiGLU/GeGLU, rope (both styles), and attention over a paged KV
 * cache with several sequences, GQA and a sliding window. Every quantized
 * type also gives bit-identical results in every set's row kernels and GEMM
 * (test_bit_identity). And the op trace writes valid Chrome trace JSON.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/cpu-impl.h"
#include "harness.h"
#include "kv/kv.h"

static const rf_cpu_kernels *g_sets[8];
static int g_n_sets;

/* ---- helpers ---------------------------------------------------------------- */

static int64_t rand_in(int64_t lo, int64_t hi) { return lo + (int64_t)(rf_test_rand() % (uint64_t)(hi - lo + 1)); }

/* Activations: mostly N(0,1), a few outliers, sometimes an all-zero block. */
static void rand_act(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        x[i] = rf_test_randn();
        if (rf_test_rand() % 64 == 0) x[i] *= 12.0f;
    }
    if (n >= 64 && rf_test_rand() % 2) memset(x + 32 * rand_in(0, n / 32 - 1), 0, 32 * sizeof(float));
}

/* Byte offsets of the float16 fields of a block (scales, mins), -1 ends. */
static const int8_t f16_fields[RF_TYPE_COUNT][3] = {
    [RF_TYPE_Q4_0] = {0, -1}, [RF_TYPE_Q4_1] = {0, 2, -1}, [RF_TYPE_Q5_0] = {0, -1}, [RF_TYPE_Q5_1] = {0, 2, -1},
    [RF_TYPE_Q8_0] = {0, -1}, [RF_TYPE_IQ4_NL] = {0, -1}, [RF_TYPE_Q2_K] = {80, -1}, [RF_TYPE_Q3_K] = {108, -1},
    [RF_TYPE_Q4_K] = {0, 2, -1}, [RF_TYPE_Q5_K] = {0, 2, -1}, [RF_TYPE_Q6_K] = {-1}, [RF_TYPE_IQ4_XS] = {0, -1},
};

/* nr rows of K weights of `type`; raw: random bytes with float16 fields
 * set to small finite values. Returns row bytes; caller frees *out. */
static size_t make_weights(uint32_t type, int64_t K, int64_t nr, bool raw, uint8_t **out) {
    const rf_type_info *ti = rf_type_get(type);
    const size_t rb = rf_row_size(type, K);
    uint8_t *w = malloc(rb * (size_t)nr + 64);
    float *f = malloc((size_t)K * sizeof(float));
    for (int64_t r = 0; r < nr; r++) {
        uint8_t *row = w + (size_t)r * rb;
        if (raw && ti->is_quantized) {
            for (size_t i = 0; i < rb; i++) row[i] = (uint8_t)rf_test_rand();
            const int64_t nb = K / ti->blck_size;
            for (int64_t b = 0; b < nb; b++) {
                uint8_t *blk = row + (size_t)b * ti->type_size;
                for (int i = 0; i < 3 && f16_fields[type][i] >= 0; i++) {
                    uint16_t h = rf_fp32_to_fp16(rf_test_randu(-0.02f, 0.02f));
                    memcpy(blk + f16_fields[type][i], &h, 2);
                }
                if (type == RF_TYPE_Q6_K || type == RF_TYPE_Q2_K || type == RF_TYPE_Q3_K) {
                    uint16_t h = rf_fp32_to_fp16(rf_test_randu(-0.002f, 0.002f));
                    memcpy(blk + (type == RF_TYPE_Q6_K ? 208 : type == RF_TYPE_Q2_K ? 82 : 108), &h, 2);
                }
            }
        } else {
            const float scale = rf_test_randu(0.01f, 0.2f), shift = rf_test_rand() % 4 == 0 ? rf_test_randn() * 0.1f : 0.0f;
            for (int64_t i = 0; i < K; i++) f[i] = rf_test_randn() * scale + shift;
            CHECK(rf_quantize_row(type, f, row, K) == RF_OK);
        }
    }
    free(f);
    *out = w;
    return rb;
}

/* The dequantized activation row the integer kernels really multiply. */
static void act_dequant(rf_act_fmt fmt, const uint8_t *a, const float *x, int64_t K, double *out) {
    if (fmt == RF_ACT_F32) {
        for (int64_t i = 0; i < K; i++) out[i] = x[i];
        return;
    }
    const int blk = 32;
    for (int64_t i = 0; i < K; i++) out[i] = (double)rf_act_d(a, K)[i / blk] * rf_act_q(a)[i];
}

/* ---- matmul kernels ------------------------------------------------------------ */

static const uint32_t kernel_types[] = {
    RF_TYPE_F32, RF_TYPE_F16, RF_TYPE_BF16, RF_TYPE_Q4_0, RF_TYPE_Q4_1, RF_TYPE_Q5_0, RF_TYPE_Q5_1, RF_TYPE_Q8_0,
    RF_TYPE_IQ4_NL, RF_TYPE_Q2_K, RF_TYPE_Q3_K, RF_TYPE_Q4_K, RF_TYPE_Q5_K, RF_TYPE_Q6_K, RF_TYPE_IQ4_XS,
};

typedef struct err_stats { double worst_tight, worst_loose; } err_stats;

static void check_kernel(const rf_cpu_kernels *k, uint32_t type, int64_t K, int64_t nr, int64_t nt, bool raw,
                         err_stats *es) {
    const char *tn = rf_type_name(type);
    CHECK_MSG(k->mm[type] != NULL, "%s: no %s kernel", k->name, tn);
    if (!k->mm[type]) return;
    uint8_t *w;
    const size_t rb = make_weights(type, K, nr, raw, &w);
    const rf_act_fmt fmt = (rf_act_fmt)rf_cpu_act_fmt[type];
    float *x = malloc((size_t)(nt * K) * sizeof(float));
    rand_act(x, nt * K);
    const size_t ab = fmt == RF_ACT_F32 ? (size_t)K * 4 : rf_act_row_bytes(fmt, K);
    const size_t asz = (ab * (size_t)nt + 63) & ~(size_t)63;
    uint8_t *a = aligned_alloc(64, asz), *a_ref = aligned_alloc(64, asz);
    if (fmt == RF_ACT_F32) memcpy(a, x, ab * (size_t)nt);
    else {
        memset(a, 0, ab * (size_t)nt);
        memset(a_ref, 0, ab * (size_t)nt);
        for (int64_t t = 0; t < nt; t++) {
            k->quant[fmt](x + t * K, a + (size_t)t * ab, K);
            rf_cpu_kernels_scalar.quant[fmt](x + t * K, a_ref + (size_t)t * ab, K);
        }
        CHECK_MSG(memcmp(a, a_ref, ab * (size_t)nt) == 0, "%s %s: activation bytes differ from the scalar set (K %lld)",
                  k->name, tn, (long long)K);
    }
    const int64_t ldy = nr + 3;
    float *y = malloc((size_t)(nt * ldy) * sizeof(float));
    for (int64_t i = 0; i < nt * ldy; i++) y[i] = NAN;
    rf_mm_args m = {.K = K, .w = w, .w_stride = rb, .nr = nr, .a = a, .a_stride = ab, .nt = nt, .y = y, .ldy = ldy};
    k->mm[type](&m);
    float *wf = malloc((size_t)K * sizeof(float));
    double *ad = malloc((size_t)K * sizeof(double));
    const double gamma = 16.0 * ((double)K / 32 + 16) * 0x1p-24;
    int bad = 0;
    for (int64_t t = 0; t < nt; t++) {
        act_dequant(fmt, a + (size_t)t * ab, x + t * K, K, ad);
        for (int64_t r = 0; r < nr; r++) {
            CHECK(rf_dequantize_row(type, w + (size_t)r * rb, wf, K) == RF_OK);
            double ref_q = 0, ref_x = 0, mag = 0, magx = 0, qerr = 0;
            for (int64_t i = 0; i < K; i++) {
                ref_q += (double)wf[i] * ad[i];
                ref_x += (double)wf[i] * x[t * K + i];
                mag += fabs((double)wf[i] * ad[i]);
                magx += fabs((double)wf[i] * x[t * K + i]);
            }
            if (fmt != RF_ACT_F32) {
                const int blk = 32;
                for (int64_t b = 0; b < K / blk; b++) {
                    double sw = 0;
                    for (int i = 0; i < blk; i++) sw += fabs((double)wf[b * blk + i]);
                    qerr += 0.5 * rf_act_d(a + (size_t)t * ab, K)[b] * sw;
                }
            }
            const double got = y[t * ldy + r];
            const double tight = gamma * mag + 1e-30, loose = qerr + tight + 1e-6 * magx + 1e-30;
            const double et = fabs(got - ref_q), el = fabs(got - ref_x);
            if (et / tight > es->worst_tight) es->worst_tight = et / tight;
            if (el / loose > es->worst_loose) es->worst_loose = el / loose;
            if (!(et <= tight && el <= loose) && bad++ < 3)
                CHECK_MSG(false, "%s %s%s K %lld nr %lld nt %lld: row %lld tok %lld: got %.9g, ref(q) %.9g (tol %.3g), "
                          "ref(x) %.9g (tol %.3g)", k->name, tn, raw ? " raw" : "", (long long)K, (long long)nr,
                          (long long)nt, (long long)r, (long long)t, got, ref_q, tight, ref_x, loose);
        }
        for (int64_t r = nr; r < ldy; r++) CHECK(isnan(y[t * ldy + r])); /* no write outside the tile */
    }
    free(w);
    free(x);
    free(a);
    free(a_ref);
    free(y);
    free(wf);
    free(ad);
}

static void test_matmul_kernels(void) {
    for (int s = 0; s < g_n_sets; s++) {
        for (size_t ti = 0; ti < RF_ARRAY_LEN(kernel_types); ti++) {
            const uint32_t type = kernel_types[ti];
            const int64_t blk = rf_type_get(type)->blck_size == 256 ? 256 : 32;
            err_stats es = {0};
            /* K: one block, odd block counts, and the sizes of real layers */
            const int64_t ks[] = {blk, 3 * blk, blk == 32 ? 32 * 67 : 256 * 9, blk == 32 ? 4096 + 96 : 2048 + 256};
            for (size_t ki = 0; ki < RF_ARRAY_LEN(ks); ki++) {
                const int64_t K = type == RF_TYPE_F32 || type == RF_TYPE_F16 || type == RF_TYPE_BF16 ? ks[ki] + (int64_t)(ki % 2) * 7
                                                                                                      : ks[ki];
                const int64_t nr = rand_in(1, 19), nt = rand_in(1, 17);
                check_kernel(g_sets[s], type, K, nr, nt, false, &es);
                if (rf_type_get(type)->is_quantized) check_kernel(g_sets[s], type, K, nr, nt, true, &es);
            }
            fprintf(stderr, "  %-7s %-7s worst error / bound: tight %.3f, loose %.3f\n", g_sets[s]->name,
                    rf_type_name(type), es.worst_tight, es.worst_loose);
        }
    }
}

/* Every n_tok from 1 to 17 on one shape: the token grouping (4, 3, 2, 1). */
static void test_matmul_token_counts(void) {
    for (int s = 0; s < g_n_sets; s++) {
        err_stats es = {0};
        for (int64_t nt = 1; nt <= 17; nt++) {
            check_kernel(g_sets[s], RF_TYPE_Q4_0, 32 * 9, 5, nt, false, &es);
            check_kernel(g_sets[s], RF_TYPE_Q6_K, 256 * 2, 3, nt, true, &es);
        }
    }
}

/* ---- prompt GEMM: pack + interleaved activations + micro-kernel --------------------- */

static void check_gemm(const rf_cpu_kernels *k, uint32_t type, int64_t K, int nr, int nt, bool raw, err_stats *es) {
    const int R = k->gemm_rows, G = k->gemm_tok;
    uint8_t *w;
    const size_t rb = make_weights(type, K, nr, raw, &w);
    float *x = malloc((size_t)(nt * K) * sizeof(float));
    rand_act(x, (int64_t)nt * K);
    uint8_t *panel = malloc(rf_gemm_panel_bytes(R, K)), *act = malloc(rf_gemm_act_bytes(G, K));
    const size_t a32 = rf_act_row_bytes(RF_ACT_A32, K);
    uint8_t *ref = calloc(1, a32);
    memset(panel, 0xAB, rf_gemm_panel_bytes(R, K)); /* rows past nr must be cleared by pack */
    const int fmt = k->gemm_pack[type](w, rb, nr, K, panel);
    CHECK((fmt & 0xff) == 16 || (fmt & 0xff) == 32);
    k->gemm_quant(x, K, nt, K, act);
    const int ldy = R + 3;
    float *out = malloc((size_t)(G * ldy) * sizeof(float));
    for (int i = 0; i < G * ldy; i++) out[i] = NAN;
    k->gemm(panel, fmt, K, act, out, ldy, nt, nr);
    float *wf = malloc((size_t)K * sizeof(float));
    double *ad = malloc((size_t)K * sizeof(double));
    const double gamma = 16.0 * ((double)K / 32 + 16) * 0x1p-24;
    int bad = 0;
    for (int t = 0; t < G; t++) {
        /* the group layout holds token t's A32 bytes, interleaved: the
         * same activations the row kernels see */
        if (t < nt) rf_cpu_kernels_scalar.quant[RF_ACT_A32](x + (int64_t)t * K, ref, K);
        else memset(ref, 0, a32);
        bool same = true;
        for (int64_t b = 0; b < K / 32; b++) {
            const uint8_t *A = act + RF_GEMM_ACT_BLOCK(G) * (size_t)b;
            for (int c = 0; c < 8; c++) same &= memcmp(A + c * 4 * G + 4 * t, ref + 32 * b + 4 * c, 4) == 0;
            float dv;
            memcpy(&dv, A + 32 * G + 4 * t, 4);
            same &= dv == rf_act_d(ref, K)[b];
            for (int i = 0; i < 32; i++) ad[32 * b + i] = (double)dv * (int8_t)A[(i / 4) * 4 * G + 4 * t + i % 4];
        }
        CHECK_MSG(same, "%s gemm activations of token %d differ from the row kernels' (A32)", k->name, t);
        for (int r = 0; r < ldy; r++) {
            const double got = out[t * ldy + r];
            if (r >= nr || t >= nt) { /* outside the tile: untouched */
                CHECK_MSG(isnan(got), "%s gemm %s: wrote row %d tok %d (nr %d nt %d)", k->name, rf_type_name(type), r, t,
                          nr, nt);
                continue;
            }
            CHECK(rf_dequantize_row(type, w + (size_t)r * rb, wf, K) == RF_OK);
            double ref_q = 0, ref_x = 0, mag = 0, magx = 0, qerr = 0;
            for (int64_t i = 0; i < K; i++) {
                ref_q += (double)wf[i] * ad[i];
                ref_x += (double)wf[i] * x[(int64_t)t * K + i];
                mag += fabs((double)wf[i] * ad[i]);
                magx += fabs((double)wf[i] * x[(int64_t)t * K + i]);
            }
            for (int64_t b = 0; b < K / 32; b++) {
                double sw = 0, amax = 0;
                for (int i = 0; i < 32; i++) {
                    sw += fabs((double)wf[32 * b + i]);
                    amax = fmax(amax, fabs(x[(int64_t)t * K + 32 * b + i]));
                }
                qerr += 0.5 * amax / 127 * sw;
            }
            const double tight = gamma * mag + 1e-30, loose = qerr * 1.0001 + tight + 1e-6 * magx + 1e-30;
            const double et = fabs(got - ref_q), el = fabs(got - ref_x);
            if (et / tight > es->worst_tight) es->worst_tight = et / tight;
            if (el / loose > es->worst_loose) es->worst_loose = el / loose;
            if (!(et <= tight && el <= loose) && bad++ < 3)
                CHECK_MSG(false, "%s gemm %s%s K %lld nr %d nt %d: row %d tok %d: got %.9g, ref(q) %.9g (tol %.3g), "
                          "ref(x) %.9g (tol %.3g)", k->name, rf_type_name(type), raw ? " raw" : "", (long long)K, nr, nt,
                          r, t, got, ref_q, tight, ref_x, loose);
        }
    }
    free(w);
    free(x);
    free(panel);
    free(act);
    free(ref);
    free(out);
    free(wf);
    free(ad);
}

static void test_gemm_kernels(void) {
    for (int s = 0; s < g_n_sets; s++) {
        const rf_cpu_kernels *k = g_sets[s];
        if (!k->gemm) continue;
        for (size_t ti = 0; ti < RF_ARRAY_LEN(kernel_types); ti++) {
            const uint32_t type = kernel_types[ti];
            if (!k->gemm_pack[type]) continue;
            const int64_t blk = rf_type_get(type)->blck_size == 256 ? 256 : 32;
            err_stats es = {0};
            const int64_t ks[] = {blk, 3 * blk, blk == 32 ? 32 * 67 : 256 * 9};
            for (size_t ki = 0; ki < RF_ARRAY_LEN(ks); ki++) {
                const int nr = (int)rand_in(1, k->gemm_rows), nt = (int)rand_in(1, k->gemm_tok);
                check_gemm(k, type, ks[ki], nr, nt, false, &es);
                check_gemm(k, type, ks[ki], (int)rand_in(1, k->gemm_rows), (int)rand_in(1, k->gemm_tok), true, &es);
            }
            fprintf(stderr, "  %-7s %-7s gemm worst error / bound: tight %.3f, loose %.3f\n", k->name,
                    rf_type_name(type), es.worst_tight, es.worst_loose);
        }
    }
}

/* ---- one arithmetic: every set's row kernels and GEMM agree bit for bit ------------- */

/* cpu-impl.h fixes the order and rounding of every float operation of the
 * quantized matmul (exact integer sums per unit, then two fmas), so the
 * scalar set, each SIMD set and each GEMM must produce identical bits: what
 * makes a token's logits independent of the batch it is computed in. */
static void test_bit_identity(void) {
    for (size_t ti = 0; ti < RF_ARRAY_LEN(kernel_types); ti++) {
        const uint32_t type = kernel_types[ti];
        const rf_type_info *info = rf_type_get(type);
        if (!info->is_quantized) continue;
        const int64_t K = info->blck_size * rand_in(1, info->blck_size == 256 ? 6 : 40);
        const int64_t nr = rand_in(1, 21), nt = rand_in(1, 40);
        uint8_t *w;
        const size_t rb = make_weights(type, K, nr, rf_test_rand() % 2, &w);
        const rf_act_fmt fmt = (rf_act_fmt)rf_cpu_act_fmt[type];
        const size_t ab = rf_act_row_bytes(fmt, K);
        float *x = malloc((size_t)(nt * K) * sizeof(float));
        rand_act(x, nt * K);
        uint8_t *a = aligned_alloc(64, ab * (size_t)nt);
        for (int64_t t = 0; t < nt; t++) rf_cpu_kernels_scalar.quant[fmt](x + t * K, a + (size_t)t * ab, K);
        float *y0 = malloc((size_t)(nt * nr) * sizeof(float)), *y1 = malloc((size_t)(nt * nr) * sizeof(float));
        rf_mm_args m = {.K = K, .w = w, .w_stride = rb, .nr = nr, .a = a, .a_stride = ab, .nt = nt, .y = y0, .ldy = nr};
        rf_cpu_kernels_scalar.mm[type](&m);
        for (int s = 0; s < g_n_sets; s++) {
            const rf_cpu_kernels *k = g_sets[s];
            m.y = y1;
            k->mm[type](&m);
            CHECK_MSG(memcmp(y0, y1, (size_t)(nt * nr) * sizeof(float)) == 0, "%s %s row kernels differ from scalar (K %lld)",
                      k->name, info->name, (long long)K);
            /* a decode step alone (sets may have a one-token kernel) */
            m.nt = 1;
            k->mm[type](&m);
            m.nt = nt;
            CHECK_MSG(memcmp(y0, y1, (size_t)nr * sizeof(float)) == 0, "%s %s one-token kernel differs from scalar (K %lld)",
                      k->name, info->name, (long long)K);
            if (!k->gemm || !k->gemm_pack[type]) continue;
            /* the GEMM, tile by tile */
            const int R = k->gemm_rows, G = k->gemm_tok;
            uint8_t *panel = malloc(rf_gemm_panel_bytes(R, K)), *act = malloc(rf_gemm_act_bytes(G, K));
            memset(y1, 0xff, (size_t)(nt * nr) * sizeof(float));
            for (int64_t t0 = 0; t0 < nt; t0 += G) {
                const int gt = (int)(nt - t0 < G ? nt - t0 : G);
                k->gemm_quant(x + t0 * K, K, gt, K, act);
                for (int64_t r0 = 0; r0 < nr; r0 += R) {
                    const int gr = (int)(nr - r0 < R ? nr - r0 : R);
                    const int pf = k->gemm_pack[type](w + (size_t)r0 * rb, rb, gr, K, panel);
                    k->gemm(panel, pf, K, act, y1 + t0 * nr + r0, nr, gt, gr);
                }
            }
            CHECK_MSG(memcmp(y0, y1, (size_t)(nt * nr) * sizeof(float)) == 0, "%s %s GEMM differs from the row kernels (K %lld)",
                      k->name, info->name, (long long)K);
            free(panel);
            free(act);
        }
        free(w);
        free(x);
        free(a);
        free(y0);
        free(y1);
    }
}

/* ---- backend ops against the reference op table ----------------------------------- */

typedef struct backends {
    rf_threadpool *tp;
    rf_backend ref, fast[8];
} backends;

static void backends_open(backends *b) {
    memset(b, 0, sizeof *b);
    b->tp = rf_threadpool_create(3);
    CHECK(b->tp != NULL);
    CHECK(rf_cpu_backend_create_named(b->tp, "ref", &b->ref, NULL) == RF_OK);
    for (int s = 0; s < g_n_sets; s++) CHECK(rf_cpu_backend_create_named(b->tp, g_sets[s]->name, &b->fast[s], NULL) == RF_OK);
}

static void backends_close(backends *b) {
    for (int s = 0; s < g_n_sets; s++) rf_cpu_backend_free(&b->fast[s]);
    rf_cpu_backend_free(&b->ref);
    rf_threadpool_free(b->tp);
}

static void test_backend_matmul(void) {
    backends B;
    backends_open(&B);
    /* every kernel type plus types that take the dequantize-to-F32 path */
    static const uint32_t types[] = {RF_TYPE_F32, RF_TYPE_F16, RF_TYPE_BF16, RF_TYPE_Q4_0, RF_TYPE_Q4_1, RF_TYPE_Q5_0,
                                     RF_TYPE_Q5_1, RF_TYPE_Q8_0, RF_TYPE_IQ4_NL, RF_TYPE_Q2_K, RF_TYPE_Q3_K, RF_TYPE_Q4_K,
                                     RF_TYPE_Q5_K, RF_TYPE_Q6_K, RF_TYPE_IQ4_XS, RF_TYPE_Q8_1, RF_TYPE_TQ2_0,
                                     RF_TYPE_MXFP4};
    for (size_t ti = 0; ti < RF_ARRAY_LEN(types); ti++) {
        const uint32_t type = types[ti];
        const int64_t blk = rf_type_get(type)->blck_size == 256 ? 256 : 32;
        /* token counts on both sides of the GEMM threshold, rows not a
         * multiple of any tile */
        const int64_t K = blk * rand_in(1, 12), rows = rand_in(1, 150);
        const int64_t nt = ti % 2 ? rand_in(1, 17) : rand_in(14, 70);
        uint8_t *w;
        const size_t rb = make_weights(type, K, rows, false, &w);
        rf_wview wv = {w, type, K, rows, rb, RF_WLAYOUT_ROWS};
        float *x = malloc((size_t)(nt * K) * sizeof(float));
        float *yr = malloc((size_t)(nt * rows) * sizeof(float)), *yf = malloc((size_t)(nt * rows) * sizeof(float));
        rand_act(x, nt * K);
        B.ref.ops->matmul(B.ref.ctx, &wv, x, yr, nt);
        float *wf = malloc((size_t)K * sizeof(float));
        for (int s = 0; s < g_n_sets; s++) {
            B.fast[s].ops->matmul(B.fast[s].ctx, &wv, x, yf, nt);
            const rf_act_fmt fmt = g_sets[s]->mm[type] ? (rf_act_fmt)rf_cpu_act_fmt[type] : RF_ACT_F32;
            const int ab = 32;
            int bad = 0;
            for (int64_t r = 0; r < rows; r++) {
                CHECK(rf_dequantize_row(type, w + (size_t)r * rb, wf, K) == RF_OK);
                for (int64_t t = 0; t < nt; t++) {
                    double mag = 0, qerr = 0;
                    for (int64_t i = 0; i < K; i++) mag += fabs((double)wf[i] * x[t * K + i]);
                    if (fmt != RF_ACT_F32)
                        for (int64_t b = 0; b < K / ab; b++) {
                            double amax = 0, sw = 0;
                            for (int i = 0; i < ab; i++) {
                                amax = fmax(amax, fabs(x[t * K + b * ab + i]));
                                sw += fabs((double)wf[b * ab + i]);
                            }
                            qerr += 0.5 * amax / 127 * sw;
                        }
                    const double tol = qerr * 1.0001 + 2e-5 * mag + 1e-30;
                    const double e = fabs((double)yf[t * rows + r] - yr[t * rows + r]);
                    if (!(e <= tol) && bad++ < 3)
                        CHECK_MSG(false, "%s matmul %s K %lld rows %lld nt %lld: [%lld][%lld] %.9g vs ref %.9g (tol %.3g)",
                                  g_sets[s]->name, rf_type_name(type), (long long)K, (long long)rows, (long long)nt,
                                  (long long)t, (long long)r, yf[t * rows + r], yr[t * rows + r], tol);
                }
            }
        }
        free(w);
        free(x);
        free(yr);
        free(yf);
        free(wf);
    }
    backends_close(&B);
}

/* ---- the X16 layout: rows rearranged at load, the same bits out --------------------- */

/* Every set that repacks a type must give, through the backend op (row
 * kernels, batched decode, GEMM, the tail rows past the last group), the
 * bits the scalar set gives on the file layout; get_rows must read the
 * rows back; pack and unpack must be inverses. */
static void test_x16_layout(void) {
    backends B;
    backends_open(&B);
    rf_backend sc = {0};
    CHECK(rf_cpu_backend_create_named(B.tp, "scalar", &sc, NULL) == RF_OK);
    int repacked = 0;
    for (size_t ti = 0; ti < RF_ARRAY_LEN(kernel_types); ti++) {
        const uint32_t type = kernel_types[ti];
        const rf_type_info *info = rf_type_get(type);
        if (!info->is_quantized) continue;
        for (int rep = 0; rep < 3; rep++) {
            const int64_t K = info->blck_size * rand_in(1, info->blck_size == 256 ? 8 : 48);
            const int64_t rows = rand_in(16, 75);
            static const int64_t nts[] = {1, 2, 3, 4, 5, 9, 15, 16, 37};
            const int64_t nt = nts[rand_in(0, (int64_t)RF_ARRAY_LEN(nts) - 1)];
            uint8_t *w;
            const size_t rb = make_weights(type, K, rows, rf_test_rand() % 2, &w);
            rf_wview wv = {w, type, K, rows, rb, RF_WLAYOUT_ROWS};
            float *x = malloc((size_t)(nt * K) * sizeof(float));
            float *y0 = malloc((size_t)(nt * rows) * sizeof(float)), *y1 = malloc((size_t)(nt * rows) * sizeof(float));
            float *e0 = malloc((size_t)(3 * K) * sizeof(float)), *e1 = malloc((size_t)(3 * K) * sizeof(float));
            rand_act(x, nt * K);
            sc.ops->matmul(sc.ctx, &wv, x, y0, nt);
            const int32_t ids[3] = {0, (int32_t)rand_in(0, rows - 1), (int32_t)(rows - 1)};
            sc.ops->get_rows(sc.ctx, &wv, ids, 3, e0);
            uint8_t *wx = malloc(rb * (size_t)rows);
            for (int s = 0; s < g_n_sets; s++) {
                memcpy(wx, w, rb * (size_t)rows);
                rf_wview xv = {wx, type, K, rows, rb, RF_WLAYOUT_ROWS};
                const bool did = rf_cpu_backend_repack(&B.fast[s], &xv);
                CHECK_MSG(did == (g_sets[s]->mm_x16[type] != NULL), "%s %s: repack %d", g_sets[s]->name, info->name, did);
                if (!did) {
                    CHECK(xv.layout == RF_WLAYOUT_ROWS && memcmp(wx, w, rb * (size_t)rows) == 0);
                    continue;
                }
                repacked++;
                CHECK(xv.layout == RF_WLAYOUT_X16 && memcmp(wx, w, 16 * rb) != 0);
                CHECK(!rf_cpu_backend_repack(&B.fast[s], &xv)); /* once only */
                memset(y1, 0xff, (size_t)(nt * rows) * sizeof(float));
                B.fast[s].ops->matmul(B.fast[s].ctx, &xv, x, y1, nt);
                CHECK_MSG(memcmp(y0, y1, (size_t)(nt * rows) * sizeof(float)) == 0,
                          "%s %s X16 matmul differs from scalar (K %lld rows %lld nt %lld)", g_sets[s]->name, info->name,
                          (long long)K, (long long)rows, (long long)nt);
                B.fast[s].ops->get_rows(B.fast[s].ctx, &xv, ids, 3, e1);
                CHECK_MSG(memcmp(e0, e1, (size_t)(3 * K) * sizeof(float)) == 0, "%s %s X16 get_rows", g_sets[s]->name, info->name);
                uint8_t *row = malloc(rb);
                int bad = 0;
                for (int64_t r = 0; r < rows / 16 * 16; r++) {
                    rf_cpu_x16_row(type, K, wx + (size_t)(r / 16 * 16) * rb, (int)(r % 16), row);
                    bad += memcmp(row, w + (size_t)r * rb, rb) != 0;
                }
                CHECK_MSG(bad == 0, "%s: %d rows do not unpack to the file's", info->name, bad);
                CHECK(memcmp(wx + (size_t)(rows / 16 * 16) * rb, w + (size_t)(rows / 16 * 16) * rb, (size_t)(rows % 16) * rb) == 0);
                free(row);
            }
            free(wx);
            free(w);
            free(x);
            free(y0);
            free(y1);
            free(e0);
            free(e1);
        }
    }
    /* the file layout stays for the reference table, short tensors and types without kernels */
    uint8_t *w;
    const size_t rb = make_weights(RF_TYPE_Q4_0, 64, 15, false, &w);
    rf_wview wv = {w, RF_TYPE_Q4_0, 64, 15, rb, RF_WLAYOUT_ROWS};
    CHECK(!rf_cpu_backend_repack(&B.ref, &wv) && !rf_cpu_backend_repack(&B.fast[0], &wv) && wv.layout == RF_WLAYOUT_ROWS);
    free(w);
    fprintf(stderr, "  X16 layout: %d tensors repacked and checked\n", repacked);
    rf_cpu_backend_free(&sc);
    backends_close(&B);
}

static double max_rel(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)a[i] - b[i]) / (fabs((double)b[i]) + 1e-3);
        if (!(e <= m)) m = isnan(e) ? INFINITY : e;
    }
    return m;
}

static void test_backend_elementwise(void) {
    backends B;
    backends_open(&B);
    const int64_t n_rows = rand_in(1, 9), dim = rand_in(1, 700);
    float *x = malloc((size_t)(n_rows * dim) * sizeof(float)), *w = malloc((size_t)dim * sizeof(float));
    float *yr = malloc((size_t)(n_rows * dim) * sizeof(float)), *yf = malloc((size_t)(n_rows * dim) * sizeof(float));
    float *u = malloc((size_t)(n_rows * dim) * sizeof(float));
    for (int64_t i = 0; i < n_rows * dim; i++) x[i] = rf_test_randn() * 3, u[i] = rf_test_randn();
    for (int64_t i = 0; i < dim; i++) w[i] = rf_test_randn();
    x[0] = -95.0f; /* exp range edges */
    if (n_rows * dim > 1) x[1] = 60.0f;
    for (int s = 0; s < g_n_sets; s++) {
        const rf_backend *f = &B.fast[s];
        B.ref.ops->rmsnorm(B.ref.ctx, x, w, yr, n_rows, dim, 1e-5f);
        f->ops->rmsnorm(f->ctx, x, w, yf, n_rows, dim, 1e-5f);
        CHECK_MSG(max_rel(yf, yr, n_rows * dim) < 1e-5, "%s rmsnorm %g", g_sets[s]->name, max_rel(yf, yr, n_rows * dim));
        B.ref.ops->rmsnorm(B.ref.ctx, x, NULL, yr, n_rows, dim, 1e-6f);
        f->ops->rmsnorm(f->ctx, x, NULL, yf, n_rows, dim, 1e-6f);
        CHECK_MSG(max_rel(yf, yr, n_rows * dim) < 1e-5, "%s rmsnorm (no weight)", g_sets[s]->name);
        for (int act = 0; act < 2; act++) {
            B.ref.ops->glu(B.ref.ctx, (rf_act)act, x, u, yr, n_rows * dim);
            f->ops->glu(f->ctx, (rf_act)act, x, u, yf, n_rows * dim);
            /* exp to ~2e-7 relative, then a division and a product; where
             * act(g) is tiny the reference's 1 + tanh(z) cancels and only
             * an absolute bound on the scale of g * u holds */
            int bad = 0;
            for (int64_t i = 0; i < n_rows * dim; i++) {
                const double e = fabs((double)yf[i] - yr[i]);
                if (!(e <= 2e-5 * fabs((double)yr[i]) + 1e-6 * fabs((double)x[i] * u[i])) && bad++ < 3)
                    CHECK_MSG(false, "%s glu %d: g %g u %g: %.9g vs ref %.9g", g_sets[s]->name, act, x[i], u[i], yf[i],
                              yr[i]);
            }
        }
        /* rope, both styles, partial rotation, llama3-style divisors */
        const int64_t hd = 2 * rand_in(1, 40), nh = rand_in(1, 5), nt = rand_in(1, 7);
        float *q = malloc((size_t)(nt * nh * hd) * sizeof(float)), *q2 = malloc((size_t)(nt * nh * hd) * sizeof(float));
        float *qr = malloc((size_t)(nt * nh * hd) * sizeof(float));
        int32_t *pos = malloc((size_t)nt * sizeof(int32_t));
        float *div = malloc((size_t)hd * sizeof(float));
        for (int64_t i = 0; i < nt * nh * hd; i++) q[i] = rf_test_randn();
        for (int64_t i = 0; i < nt; i++) pos[i] = (int32_t)rand_in(0, 5000);
        for (int64_t i = 0; i < hd; i++) div[i] = rf_test_randu(1.0f, 8.0f);
        for (int style = 0; style < 2; style++) {
            rf_rope_params rp = {(rf_rope_style)style, 2 * rand_in(1, hd / 2), 10000.0f * rf_test_randu(0.5f, 50.0f),
                                 rf_test_randu(0.25f, 1.0f), style ? div : NULL};
            memcpy(q2, q, (size_t)(nt * nh * hd) * sizeof(float));
            memcpy(qr, q, (size_t)(nt * nh * hd) * sizeof(float));
            B.ref.ops->rope(B.ref.ctx, qr, pos, nt, nh, hd, &rp);
            f->ops->rope(f->ctx, q2, pos, nt, nh, hd, &rp);
            CHECK_MSG(max_rel(q2, qr, nt * nh * hd) < 1e-5, "%s rope style %d", g_sets[s]->name, style);
        }
        free(q);
        free(q2);
        free(qr);
        free(pos);
        free(div);
    }
    free(x);
    free(w);
    free(yr);
    free(yf);
    free(u);
    backends_close(&B);
}

static void test_backend_attention(void) {
    backends B;
    backends_open(&B);
    for (int round = 0; round < 4; round++) {
        const int64_t n_kv = rand_in(1, 3), group = rand_in(1, 5), hd = round == 0 ? 64 : 4 * rand_in(1, 40);
        const int64_t n_head = n_kv * group, kvd = n_kv * hd;
        const int n_seq = 3, n_layer = 2;
        rf_kv_config kc = rf_kv_config_for(n_layer, kvd, 200, n_seq, (int)rand_in(1, 20));
        rf_kv_cache *kv = NULL;
        CHECK(rf_kv_create(&kc, &kv, NULL) == RF_OK);
        /* sequences with random lengths; fill every position of both layers */
        int32_t len[3];
        for (int s = 0; s < n_seq; s++) {
            len[s] = (int32_t)rand_in(1, 180);
            CHECK(rf_kv_seq_reserve(kv, s, len[s]) == RF_OK);
            for (int l = 0; l < n_layer; l++)
                for (int32_t p = 0; p < len[s]; p++)
                    for (int64_t i = 0; i < kvd; i++) {
                        rf_kv_k(kv, l, s, p)[i] = rf_fp32_to_fp16(rf_test_randn());
                        rf_kv_v(kv, l, s, p)[i] = rf_fp32_to_fp16(rf_test_randn());
                    }
        }
        /* a batch: a run of prefill tokens of one sequence, then decode
         * tokens of the others, then more of the first */
        const int64_t n_tok = rand_in(1, 40);
        int32_t *pos = malloc((size_t)n_tok * sizeof(int32_t)), *seq = malloc((size_t)n_tok * sizeof(int32_t));
        for (int64_t t = 0; t < n_tok; t++) {
            seq[t] = t < n_tok / 2 ? 0 : (int32_t)rand_in(0, 2);
            pos[t] = (int32_t)rand_in(0, len[seq[t]] - 1);
        }
        float *q = malloc((size_t)(n_tok * n_head * hd) * sizeof(float));
        float *or_ = malloc((size_t)(n_tok * n_head * hd) * sizeof(float)), *of = malloc((size_t)(n_tok * n_head * hd) * sizeof(float));
        for (int64_t i = 0; i < n_tok * n_head * hd; i++) q[i] = rf_test_randn();
        const int64_t window = round == 3 ? rand_in(1, 50) : 0;
        rf_attn_args a = {q, or_, n_tok, n_head, n_kv, hd, 1.0f / sqrtf((float)hd) * rf_test_randu(0.5f, 3.0f), window,
                          pos, seq, kv, (int)rand_in(0, 1)};
        B.ref.ops->attention(B.ref.ctx, &a);
        for (int s = 0; s < g_n_sets; s++) {
            a.out = of;
            B.fast[s].ops->attention(B.fast[s].ctx, &a);
            double worst = 0;
            for (int64_t i = 0; i < n_tok * n_head * hd; i++) worst = fmax(worst, fabs((double)of[i] - or_[i]));
            /* outputs are convex combinations of N(0,1) values: an absolute bound */
            CHECK_MSG(worst < 2e-5, "%s attention: max abs error %g (hd %lld, group %lld, window %lld)", g_sets[s]->name,
                      worst, (long long)hd, (long long)group, (long long)window);
        }
        free(pos);
        free(seq);
        free(q);
        free(or_);
        free(of);
        rf_kv_free(kv);
    }
    backends_close(&B);
}

/* ---- trace ----------------------------------------------------------------------- */

/* rf_cpu_backend_trace: the file is valid JSON with one complete event per
 * op call, carrying the op's shape and bytes. */
static void test_trace(void) {
    char path[] = "/tmp/rf_test_trace_XXXXXX";
    const int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    close(fd);
    rf_threadpool *tp = rf_threadpool_create(2);
    rf_backend b = {0}, r = {0};
    CHECK(rf_cpu_backend_create_named(tp, g_sets[0]->name, &b, NULL) == RF_OK);
    CHECK(rf_cpu_backend_create_named(tp, "ref", &r, NULL) == RF_OK);
    CHECK(rf_cpu_backend_trace(&r, path, NULL) == RF_E_UNSUPPORTED);
    CHECK(rf_cpu_backend_trace(&b, path, NULL) == RF_OK);
    uint8_t *w;
    const size_t rb = make_weights(RF_TYPE_Q4_0, 64, 16, false, &w);
    rf_wview wv = {w, RF_TYPE_Q4_0, 64, 16, rb, RF_WLAYOUT_ROWS};
    float x[20 * 64], y[20 * 16];
    rand_act(x, 20 * 64);
    b.ops->matmul(b.ctx, &wv, x, y, 1);
    b.ops->matmul(b.ctx, &wv, x, y, 20);
    b.ops->rmsnorm(b.ctx, x, NULL, x, 20, 64, 1e-5f);
    rf_cpu_backend_free(&b);
    rf_cpu_backend_free(&r);
    rf_threadpool_free(tp);
    free(w);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    CHECK_MSG(root != NULL, "trace is not JSON: %s (line %d)", je.text, je.line);
    json_t *ev = json_object_get(root, "traceEvents");
    CHECK(json_is_array(ev) && json_array_size(ev) == 3);
    if (json_is_array(ev) && json_array_size(ev) == 3) {
        json_t *e1 = json_array_get(ev, 1), *args = json_object_get(e1, "args");
        CHECK(strcmp(json_string_value(json_object_get(e1, "name")), "matmul") == 0);
        CHECK(strcmp(json_string_value(json_object_get(e1, "ph")), "X") == 0);
        CHECK(json_real_value(json_object_get(e1, "dur")) >= 0.0);
        CHECK(strcmp(json_string_value(json_object_get(args, "path")), "gemm") == 0);
        CHECK(strcmp(json_string_value(json_object_get(json_object_get(json_array_get(ev, 0), "args"), "path")), "rows") == 0);
        CHECK(json_integer_value(json_object_get(args, "n_tok")) == 20);
        CHECK(json_integer_value(json_object_get(args, "bytes")) == (json_int_t)(16 * rb));
        CHECK(strcmp(json_string_value(json_object_get(json_array_get(ev, 2), "name")), "rmsnorm") == 0);
    }
    json_decref(root);
    unlink(path);
}

/* ---- dispatch -------------------------------------------------------------------- */

static void test_dispatch(void) {
    CHECK(g_n_sets >= 1);
    CHECK(strcmp(g_sets[g_n_sets - 1]->name, "scalar") == 0); /* always present, last */
    CHECK(rf_cpu_kernels_by_name("scalar") == &rf_cpu_kernels_scalar);
    CHECK(rf_cpu_kernels_by_name("no-such-isa") == NULL);
    CHECK(rf_cpu_kernels_best() != NULL);
    rf_threadpool *tp = rf_threadpool_create(1);
    rf_backend b = {0};
    rf_error err = {0};
    CHECK(rf_cpu_backend_create_named(tp, "no-such-isa", &b, &err) == RF_E_UNSUPPORTED);
    CHECK(rf_cpu_backend_create_named(tp, "ref", &b, NULL) == RF_OK);
    CHECK(strcmp(rf_cpu_backend_isa(&b), "ref") == 0);
    rf_cpu_backend_free(&b);
    rf_cpu_backend_free(&b); /* second free is a no-op */
    rf_threadpool_free(tp);
    fprintf(stderr, "  kernel sets on this machine:");
    for (int s = 0; s < g_n_sets; s++) fprintf(stderr, " %s", g_sets[s]->name);
    fprintf(stderr, "\n");
}

int main(void) {
    g_n_sets = rf_cpu_kernels_available(g_sets, (int)RF_ARRAY_LEN(g_sets));
    RF_RUN(test_dispatch);
    RF_RUN(test_matmul_kernels);
    RF_RUN(test_matmul_token_counts);
    RF_RUN(test_gemm_kernels);
    for (int i = 0; i < 4; i++) RF_RUN(test_bit_identity);
    RF_RUN(test_backend_matmul);
    RF_RUN(test_x16_layout);
    RF_RUN(test_backend_elementwise);
    RF_RUN(test_backend_attention);
    RF_RUN(test_trace);
    return rf_test_summary();
}
