/*
 * neon.c - the plain Armv8.0 NEON kernel set ("neon"): every aarch64 CPU
 * runs it. Without the dot-product instructions an int8 dot product is a
 * widening multiply and multiply-accumulate (int8 x int8 -> int16, two
 * products to a lane, or four where the digits are small) and a pairwise
 * widening accumulate into int32; the kernels themselves are in
 * neon-kernels.inc, shared with neon_dot.c and neon_i8mm.c. Compiled with
 * -march=armv8-a (CMakeLists.txt).
 */
#include <arm_neon.h>
#include <math.h>

#include "cpu/cpu-impl.h"
#include "quant/iq-tables.h"

/* acc + the 16 products a[j] * b[j], four to a lane (which four differs
 * from SDOT's grouping; the kernels only use the sum over the lanes). Two
 * products share an int16 lane: one factor within +-127 (activations) and
 * the other within +-128 (int8 digits) keep the pair within 32512. */
static inline __attribute__((always_inline)) int32x4_t dot4(int32x4_t acc, int8x16_t a, int8x16_t b) {
    return vpadalq_s16(acc, vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b));
}

enum { NEON_SDOT = 0 };

#include "neon-kernels.inc"

/* Panel digits are at most 6 bits (0..63), so a lane may add the products
 * of all 4 chunks in int16 (4 * 63 * 127 < 32768): lane j of lo holds token
 * 4h + j / 4, column j % 4 of each chunk; two pairwise widening adds leave
 * one int32 per token. */
RF_AI void gemm16(int32x4_t is[GEMM_R][2], const int8x16_t *w, const int8x16_t (*A)[2]) {
    for (int r = 0; r < GEMM_R; r++) {
        const int32x4_t wr = vreinterpretq_s32_s8(w[r]);
        const int8x16_t b[4] = {vreinterpretq_s8_s32(vdupq_laneq_s32(wr, 0)), vreinterpretq_s8_s32(vdupq_laneq_s32(wr, 1)),
                                vreinterpretq_s8_s32(vdupq_laneq_s32(wr, 2)), vreinterpretq_s8_s32(vdupq_laneq_s32(wr, 3))};
        for (int h = 0; h < 2; h++) {
            int16x8_t lo = vmull_s8(vget_low_s8(A[0][h]), vget_low_s8(b[0])), hi = vmull_high_s8(A[0][h], b[0]);
            for (int k = 1; k < 4; k++) {
                lo = vmlal_s8(lo, vget_low_s8(A[k][h]), vget_low_s8(b[k]));
                hi = vmlal_high_s8(hi, A[k][h], b[k]);
            }
            is[r][h] = vaddq_s32(is[r][h], vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
        }
    }
}

const rf_cpu_kernels rf_cpu_kernels_neon = {
    .name = "neon",
    RF_NEON_KERNELS,
};
