/*
 * neon_i8mm.c - the NEON kernel set for CPUs with the Armv8.6 int8 matrix
 * multiply ("neon-i8mm": Neoverse V1/N2/V2, Cortex-A510/A710 and later,
 * Apple M2): the row kernels of neon_dot.c (SDOT), and a prompt-GEMM
 * integer step on SMMLA, which multiplies a 2x8 block of weights by an 8x2
 * block of activations into 2x2 int32 sums: twice the products of an SDOT
 * per instruction. The kernels are in neon-kernels.inc. Compiled with
 * -march=armv8.2-a+dotprod+i8mm (CMakeLists.txt), so nothing here runs
 * unless dispatch.c saw HWCAP_ASIMDDP and HWCAP2_I8MM.
 *
 * Not the default yet: the activation groups of cpu-impl.h hold 4 columns
 * per token, so each SMMLA operand is zipped from two chunks, and on the
 * 4-row tile the zips cost more than the halved multiply count saves in
 * instructions (6-18% more than neon-dot, counted under qemu). It stays
 * tested so that a timing on real hardware can promote it.
 */
#include <arm_neon.h>
#include <math.h>

#include "cpu/cpu-impl.h"
#include "quant/iq-tables.h"

static inline __attribute__((always_inline)) int32x4_t dot4(int32x4_t acc, int8x16_t a, int8x16_t b) {
    return vdotq_s32(acc, a, b);
}

enum { NEON_SDOT = 1 };

#include "neon-kernels.inc"

/* 16 columns = two slices of 8 (chunks c, c+1 and c+2, c+3). SMMLA takes
 * rows {r, r+1} x 8 columns as one operand (the two rows' digit halves,
 * zipped as 64-bit lanes) and tokens {t, t+1} x the same 8 columns as the
 * other (two chunks' 4-byte pieces zipped as 32-bit lanes), giving
 * [r t, r t+1, r+1 t, r+1 t+1]. The exact int32 sums are then moved into
 * the layout of the other sets, is[r][h] = tokens 4h..4h+3 of row r. */
RF_AI void gemm16(int32x4_t is[GEMM_R][2], const int8x16_t *w, const int8x16_t (*A)[2]) {
    int32x4_t mm[2][4]; /* [row pair][token pair] */
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 4; q++) mm[p][q] = vdupq_n_s32(0);
    for (int s = 0; s < 2; s++) {
        int8x16_t wp[2], ap[4];
        for (int p = 0; p < 2; p++) {
            const int64x2_t r0 = vreinterpretq_s64_s8(w[2 * p]), r1 = vreinterpretq_s64_s8(w[2 * p + 1]);
            wp[p] = vreinterpretq_s8_s64(s ? vzip2q_s64(r0, r1) : vzip1q_s64(r0, r1));
        }
        for (int h = 0; h < 2; h++) {
            const int32x4_t c0 = vreinterpretq_s32_s8(A[2 * s][h]), c1 = vreinterpretq_s32_s8(A[2 * s + 1][h]);
            ap[2 * h] = vreinterpretq_s8_s32(vzip1q_s32(c0, c1));
            ap[2 * h + 1] = vreinterpretq_s8_s32(vzip2q_s32(c0, c1));
        }
        for (int p = 0; p < 2; p++)
            for (int q = 0; q < 4; q++) mm[p][q] = vmmlaq_s32(mm[p][q], wp[p], ap[q]);
    }
    for (int p = 0; p < 2; p++)
        for (int h = 0; h < 2; h++) {
            const int64x2_t lo = vreinterpretq_s64_s32(mm[p][2 * h]), hi = vreinterpretq_s64_s32(mm[p][2 * h + 1]);
            is[2 * p][h] = vaddq_s32(is[2 * p][h], vreinterpretq_s32_s64(vzip1q_s64(lo, hi)));
            is[2 * p + 1][h] = vaddq_s32(is[2 * p + 1][h], vreinterpretq_s32_s64(vzip2q_s64(lo, hi)));
        }
}

const rf_cpu_kernels rf_cpu_kernels_neon_i8mm = {
    .name = "neon-i8mm",
    RF_NEON_KERNELS,
};
