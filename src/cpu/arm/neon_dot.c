/*
 * neon_dot.c - the NEON kernel set for CPUs with the Armv8.2 dot-product
 * instructions ("neon-dot": Cortex-A55/A76 and later, Neoverse, Apple):
 * SDOT adds four int8 x int8 products into each int32 lane, 4 times the
 * work of the widening multiplies of neon.c per instruction. The kernels
 * are in neon-kernels.inc, shared with neon.c. Compiled with
 * -march=armv8.2-a+dotprod (CMakeLists.txt), so nothing here runs unless
 * dispatch.c saw HWCAP_ASIMDDP.
 */
#include <arm_neon.h>
#include <math.h>

#include "cpu/cpu-impl.h"
#include "quant/iq-tables.h"

static inline __attribute__((always_inline)) int32x4_t dot4(int32x4_t acc, int8x16_t a, int8x16_t b) {
    return vdotq_s32(acc, a, b);
}
#define DOT4_LANE(acc, a, b, l) vdotq_laneq_s32(acc, a, b, l)

enum { NEON_SDOT = 1 };

#include "neon-kernels.inc"

RF_AI void gemm16(int32x4_t is[GEMM_R][2], const int8x16_t *w, const int8x16_t (*A)[2]) {
    for (int r = 0; r < GEMM_R; r++)
        for (int h = 0; h < 2; h++) {
            is[r][h] = DOT4_LANE(is[r][h], A[0][h], w[r], 0);
            is[r][h] = DOT4_LANE(is[r][h], A[1][h], w[r], 1);
            is[r][h] = DOT4_LANE(is[r][h], A[2][h], w[r], 2);
            is[r][h] = DOT4_LANE(is[r][h], A[3][h], w[r], 3);
        }
}

const rf_cpu_kernels rf_cpu_kernels_neon_dot = {
    .name = "neon-dot",
    RF_NEON_KERNELS,
};
