/*
 * avx512.c - the AVX-512 kernel set (F, BW, VL, DQ and VNNI: Ice Lake,
 * Sapphire Rapids, Zen 4 and later). VNNI's vpdpbusd multiplies u8 x s8 and
 * accumulates four products per int32 lane in one instruction, with no int16
 * intermediate to saturate. The row kernels are in x86-kernels.inc, shared
 * with avx2.c; the prompt-GEMM micro-kernel below uses zmm registers: 16
 * tokens per vector, 8 weight rows per tile.
 */
#include <immintrin.h>
#include <math.h>

#include "cpu/cpu-impl.h"
#include "quant/iq-tables.h"

static inline __attribute__((always_inline)) __m256i dot_u(__m256i acc, __m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(acc, u, s);
}

/* prompt GEMM micro-tile: 8 weight rows x 16 tokens (one zmm of int32 per row) */
enum { GEMM_R = 8, GEMM_T = 16 };

#include "x86-kernels.inc"
#include "avx512-decode.inc"
#include "avx512-x16.inc"

/* ---- prompt GEMM micro-kernel ---------------------------------------------------- */

/* y[t][r] for 8 panel rows x 16 tokens. Per unit and row: vpdpbusd of the
 * row's digits (4 at a time, broadcast) against the same 4 columns of all 16
 * tokens, then the canonical unit step of cpu-impl.h, so every token gets
 * the bits the row kernels would give it. gs: 16 or 32 columns per unit. */
static inline __attribute__((always_inline)) void gemm_k(const uint8_t *panel, int fmt, int64_t K, const int gs,
                                                         const bool has_off, const bool has_min, const uint8_t *act,
                                                         float *y, int64_t ldy, int nt, int nr) {
    const int64_t nb = K / 32, ng = K / gs;
    const __m128i osh = _mm_cvtsi32_si128(((fmt >> 16) & 0xff) - 1);
    const float *pd = (const float *)(const void *)(panel + (size_t)GEMM_R * (size_t)K), *pm = pd + GEMM_R * ng;
    __m512 acc[GEMM_R];
    for (int r = 0; r < GEMM_R; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *A = act + RF_GEMM_ACT_BLOCK(GEMM_T) * (size_t)b;
        const float *af = (const float *)(const void *)(A + 32 * GEMM_T);
        const __m512 da = _mm512_loadu_ps(af);
        for (int half = 0; half < (gs == 16 ? 2 : 1); half++) {
            __m512i is[GEMM_R];
            for (int r = 0; r < GEMM_R; r++) is[r] = _mm512_setzero_si512();
            const int c0 = gs == 16 ? 4 * half : 0, c1 = gs == 16 ? c0 + 4 : 8;
            for (int c = c0; c < c1; c++) {
                const __m512i a = _mm512_loadu_si512(A + 64 * c);
                for (int r = 0; r < GEMM_R; r++) {
                    int32_t wd;
                    memcpy(&wd, panel + (size_t)r * (size_t)K + 32 * b + 4 * c, 4);
                    is[r] = _mm512_dpbusd_epi32(is[r], _mm512_set1_epi32(wd), a);
                }
            }
            /* the unit's activation sums: int sum(q) for the offset, d_a sum(q) for the min */
            const __m512i s0 = _mm512_loadu_si512(af + 4 * GEMM_T), s1 = _mm512_loadu_si512(af + 5 * GEMM_T);
            const __m512i su = gs == 16 ? (half ? s1 : s0) : _mm512_add_epi32(s0, s1);
            const __m512 ds = _mm512_loadu_ps(af + (gs == 16 ? 2 + half : 1) * GEMM_T);
            const __m512i offv = has_off ? _mm512_sll_epi32(su, osh) : _mm512_setzero_si512();
            const int64_t g = gs == 16 ? 2 * b + half : b;
            for (int r = 0; r < GEMM_R; r++) {
                const __m512i I = has_off ? _mm512_sub_epi32(is[r], offv) : is[r];
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I), _mm512_mul_ps(_mm512_set1_ps(pd[r * ng + g]), da), acc[r]);
                if (has_min) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(pm[r * ng + g]), ds, acc[r]);
            }
        }
    }
    /* rows in lanes -> y[token][row]: two 8x8 transposes */
    for (int h = 0; h < 2; h++) {
        __m256 v[8];
        for (int r = 0; r < 8; r++) v[r] = h ? _mm512_extractf32x8_ps(acc[r], 1) : _mm512_castps512_ps256(acc[r]);
        transpose8(v);
        for (int t = 0; t < 8 && 8 * h + t < nt; t++) {
            float *dst = y + (8 * h + t) * ldy;
            if (nr == 8) _mm256_storeu_ps(dst, v[t]);
            else _mm256_mask_storeu_ps(dst, (__mmask8)((1u << nr) - 1), v[t]);
        }
    }
}

static void gemm_512(const uint8_t *panel, int fmt, int64_t K, const uint8_t *act, float *y, int64_t ldy, int nt,
                     int nr) {
    const bool off = ((fmt >> 16) & 0xff) != 0, mn = (fmt >> 24) & 1;
    if ((fmt & 0xff) == 16) {
        if (off) gemm_k(panel, fmt, K, 16, true, false, act, y, ldy, nt, nr);
        else gemm_k(panel, fmt, K, 16, false, mn, act, y, ldy, nt, nr);
    } else {
        if (off) gemm_k(panel, fmt, K, 32, true, false, act, y, ldy, nt, nr);
        else gemm_k(panel, fmt, K, 32, false, mn, act, y, ldy, nt, nr);
    }
}

static void gemm_quant_512(const float *x, int64_t ldx, int nt, int64_t K, uint8_t *dst) {
    gemm_quant_g(x, ldx, nt, K, dst, GEMM_T);
}

const rf_cpu_kernels rf_cpu_kernels_avx512 = {
    .name = "avx512",
    .quant = {[RF_ACT_A32] = quant_a32_v},
    .mm = {
        [RF_TYPE_F32] = mm_f32, [RF_TYPE_F16] = mm_f16, [RF_TYPE_BF16] = mm_bf16,
        [RF_TYPE_Q4_0] = mm512_q4_0, [RF_TYPE_Q4_1] = mm512_q4_1, [RF_TYPE_Q5_0] = mm512_q5_0,
        [RF_TYPE_Q5_1] = mm512_q5_1, [RF_TYPE_Q8_0] = mm512_q8_0, [RF_TYPE_IQ4_NL] = mm512_iq4_nl,
        [RF_TYPE_Q2_K] = mm_q2_k, [RF_TYPE_Q3_K] = mm_q3_k, [RF_TYPE_Q4_K] = mm512_q4_k,
        [RF_TYPE_Q5_K] = mm512_q5_k, [RF_TYPE_Q6_K] = mm512_q6_k, [RF_TYPE_IQ4_XS] = mm512_iq4_xs,
    },
    .rmsnorm = rmsnorm_v,
    .swiglu = swiglu_v,
    .geglu = geglu_v,
    .attn = attn_v,
    .gemm_tok = GEMM_T,
    .gemm_rows = GEMM_R,
    .gemm_quant = gemm_quant_512,
    .gemm_pack = {
        [RF_TYPE_Q4_0] = pack_q4_0, [RF_TYPE_Q4_1] = pack_q4_1, [RF_TYPE_Q5_0] = pack_q5_0,
        [RF_TYPE_Q5_1] = pack_q5_1, [RF_TYPE_Q8_0] = pack_q8_0, [RF_TYPE_IQ4_NL] = pack_iq4_nl,
        [RF_TYPE_Q2_K] = pack_q2_k, [RF_TYPE_Q3_K] = pack_q3_k, [RF_TYPE_Q4_K] = pack_q4_k,
        [RF_TYPE_Q5_K] = pack_q5_k, [RF_TYPE_Q6_K] = pack_q6_k, [RF_TYPE_IQ4_XS] = pack_iq4_xs,
    },
    .gemm = gemm_512,
    .mm_x16 = {
        [RF_TYPE_Q4_0] = mmx16_q4_0, [RF_TYPE_Q4_1] = mmx16_q4_1, [RF_TYPE_Q8_0] = mmx16_q8_0,
        [RF_TYPE_Q4_K] = mmx16_q4_k, [RF_TYPE_Q6_K] = mmx16_q6_k,
    },
};
