/*
 * avx2.c - the AVX2 + FMA + F16C kernel set (Haswell and later, Zen). The
 * integer dot products use maddubs (u8 x s8 pairs into int16) and madd
 * (int16 pairs into int32); the row kernels are in x86-kernels.inc, shared
 * with avx512.c; the prompt-GEMM micro-kernel (4 rows x 8 tokens) is below.
 * Compiled with -mavx2 -mfma -mf16c only (see CMakeLists.txt), so nothing
 * here runs unless dispatch.c saw those features.
 */
#include <immintrin.h>
#include <math.h>

#include "cpu/cpu-impl.h"
#include "quant/iq-tables.h"

/* acc + sum of 4 products per int32 lane; pairs are added in int16, so
 * callers keep u <= 128 (then |pair| <= 2 * 128 * 127 < 32768). */
static inline __attribute__((always_inline)) __m256i dot_u(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

/* prompt GEMM micro-tile: 4 weight rows x 8 tokens (one ymm per row) */
enum { GEMM_R = 4, GEMM_T = 8 };

#include "x86-kernels.inc"
#include "avx2-x16.inc"

/* ---- prompt GEMM micro-kernel ---------------------------------------------------- */

/* y[t][r] for 4 panel rows x 8 tokens, the canonical unit step of
 * cpu-impl.h per unit. maddubs gives int16 pair sums of u8 digits x s8
 * activations; `cpm` of them are added in int16 before one madd widens to
 * int32: 8 for 4-bit digits (8 * 2 * 15 * 127 < 32768), 4 for 5-bit, 2 for
 * 6-bit. Types with 8-bit digits stay on the row kernels. */
static inline __attribute__((always_inline)) void gemm_k(const uint8_t *panel, int fmt, int64_t K, const int gs,
                                                         const int cpm, const bool has_off, const bool has_min,
                                                         const uint8_t *act, float *y, int64_t ldy, int nt, int nr) {
    const int64_t nb = K / 32, ng = K / gs;
    const __m128i osh = _mm_cvtsi32_si128(((fmt >> 16) & 0xff) - 1);
    const float *pd = (const float *)(const void *)(panel + (size_t)GEMM_R * (size_t)K), *pm = pd + GEMM_R * ng;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[GEMM_R];
    for (int r = 0; r < GEMM_R; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *A = act + RF_GEMM_ACT_BLOCK(GEMM_T) * (size_t)b;
        const float *af = (const float *)(const void *)(A + 32 * GEMM_T);
        const __m256 da = _mm256_loadu_ps(af);
        for (int half = 0; half < (gs == 16 ? 2 : 1); half++) {
            __m256i is[GEMM_R];
            for (int r = 0; r < GEMM_R; r++) is[r] = _mm256_setzero_si256();
            const int c0 = gs == 16 ? 4 * half : 0, c1 = gs == 16 ? c0 + 4 : 8;
            for (int c = c0; c < c1; c += cpm) {
                __m256i s16[GEMM_R];
                for (int r = 0; r < GEMM_R; r++) s16[r] = _mm256_setzero_si256();
                for (int cc = c; cc < c + cpm; cc++) {
                    const __m256i a = loadu256(A + 32 * cc);
                    for (int r = 0; r < GEMM_R; r++) {
                        int32_t wd;
                        memcpy(&wd, panel + (size_t)r * (size_t)K + 32 * b + 4 * cc, 4);
                        s16[r] = _mm256_add_epi16(s16[r], _mm256_maddubs_epi16(_mm256_set1_epi32(wd), a));
                    }
                }
                for (int r = 0; r < GEMM_R; r++) is[r] = _mm256_add_epi32(is[r], _mm256_madd_epi16(s16[r], ones));
            }
            const __m256i s0 = loadu256(af + 4 * GEMM_T), s1 = loadu256(af + 5 * GEMM_T);
            const __m256i su = gs == 16 ? (half ? s1 : s0) : _mm256_add_epi32(s0, s1);
            const __m256 ds = _mm256_loadu_ps(af + (gs == 16 ? 2 + half : 1) * GEMM_T);
            const __m256i offv = has_off ? _mm256_sll_epi32(su, osh) : _mm256_setzero_si256();
            const int64_t g = gs == 16 ? 2 * b + half : b;
            for (int r = 0; r < GEMM_R; r++) {
                const __m256i I = has_off ? _mm256_sub_epi32(is[r], offv) : is[r];
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(I), _mm256_mul_ps(_mm256_set1_ps(pd[r * ng + g]), da), acc[r]);
                if (has_min) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(pm[r * ng + g]), ds, acc[r]);
            }
        }
    }
    /* rows in lanes -> y[token][row] (4 rows: the top half of an 8x8 transpose) */
    __m256 v[8] = {acc[0], acc[1], acc[2], acc[3], _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
    transpose8(v);
    for (int t = 0; t < nt; t++) {
        float *dst = y + t * ldy;
        const __m128 q = _mm256_castps256_ps128(v[t]);
        if (nr == 4) _mm_storeu_ps(dst, q);
        else {
            float tmp[4];
            _mm_storeu_ps(tmp, q);
            for (int r = 0; r < nr; r++) dst[r] = tmp[r];
        }
    }
}

static void gemm_256(const uint8_t *panel, int fmt, int64_t K, const uint8_t *act, float *y, int64_t ldy, int nt,
                     int nr) {
    const int gs = fmt & 0xff, bits = (fmt >> 8) & 0xff;
    const bool off = ((fmt >> 16) & 0xff) != 0, mn = (fmt >> 24) & 1;
    RF_ASSERT(bits <= 6);
    if (gs == 16) {
        if (bits == 6) gemm_k(panel, fmt, K, 16, 2, true, false, act, y, ldy, nt, nr); /* Q6_K */
        else if (off) gemm_k(panel, fmt, K, 16, 4, true, false, act, y, ldy, nt, nr);  /* Q3_K */
        else gemm_k(panel, fmt, K, 16, 4, false, mn, act, y, ldy, nt, nr);              /* Q2_K */
    } else if (bits <= 4) {
        if (off) gemm_k(panel, fmt, K, 32, 8, true, false, act, y, ldy, nt, nr);        /* Q4_0 */
        else gemm_k(panel, fmt, K, 32, 8, false, mn, act, y, ldy, nt, nr);              /* Q4_1, Q4_K */
    } else {
        if (off) gemm_k(panel, fmt, K, 32, 4, true, false, act, y, ldy, nt, nr);        /* Q5_0 */
        else gemm_k(panel, fmt, K, 32, 4, false, mn, act, y, ldy, nt, nr);              /* Q5_1, Q5_K */
    }
}

static void gemm_quant_256(const float *x, int64_t ldx, int nt, int64_t K, uint8_t *dst) {
    gemm_quant_g(x, ldx, nt, K, dst, GEMM_T);
}

const rf_cpu_kernels rf_cpu_kernels_avx2 = {
    .name = "avx2",
    .quant = {[RF_ACT_A32] = quant_a32_v},
    .mm = {RF_X86_MM_TABLE},
    .rmsnorm = rmsnorm_v,
    .swiglu = swiglu_v,
    .geglu = geglu_v,
    .attn = attn_v,
    .gemm_tok = GEMM_T,
    .gemm_rows = GEMM_R,
    .gemm_quant = gemm_quant_256,
    /* 8-bit digit types (Q8_0, IQ4_NL, IQ4_XS) would overflow int16 sums */
    .gemm_pack = {
        [RF_TYPE_Q4_0] = pack_q4_0, [RF_TYPE_Q4_1] = pack_q4_1, [RF_TYPE_Q5_0] = pack_q5_0,
        [RF_TYPE_Q5_1] = pack_q5_1, [RF_TYPE_Q2_K] = pack_q2_k, [RF_TYPE_Q3_K] = pack_q3_k,
        [RF_TYPE_Q4_K] = pack_q4_k, [RF_TYPE_Q5_K] = pack_q5_k, [RF_TYPE_Q6_K] = pack_q6_k,
    },
    .gemm = gemm_256,
    .mm_x16 = {
        [RF_TYPE_Q4_0] = mmx16_q4_0, [RF_TYPE_Q4_1] = mmx16_q4_1, [RF_TYPE_Q8_0] = mmx16_q8_0,
        [RF_TYPE_Q4_K] = mmx16_q4_k, [RF_TYPE_Q6_K] = mmx16_q6_k,
    },
};
