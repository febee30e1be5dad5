/*
 * neon.c - the plain Armv8.0 NEON kernel set ("neon"): every aarch64 CPU
 * runs it. Without the dot-product instructions the 4-way int8 dot product
 * is a widening multiply (int8 x int8 -> int16), a pairwise add in int16
 * and a pairwise accumulate into int32; the kernels themselves are in
 * neon-kernels.inc, shared with neon_dot.c. Compiled with -march=armv8-a
 * (CMakeLists.txt).
 */
#include <arm_neon.h>
#include <math.h>

#include "cpu/cpu-impl.h"
#include "quant/iq-tables.h"

/* acc[i] + a[4i..4i+3] . b[4i..4i+3]. A pair of products stays within int16
 * when |a| <= 127 and |b| <= 128 (2 * 127 * 128 = 32512): activations are
 * clamped to +-127 and digits are int8. */
static inline __attribute__((always_inline)) int32x4_t dot4(int32x4_t acc, int8x16_t a, int8x16_t b) {
    const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b)), hi = vmull_high_s8(a, b);
    return vpadalq_s16(acc, vpaddq_s16(lo, hi));
}
/* b's bytes 4l..4l+3 in every lane (l a literal: the lane is an immediate). */
#define DOT4_LANE(acc, a, b, l) dot4(acc, a, vreinterpretq_s8_s32(vdupq_laneq_s32(vreinterpretq_s32_s8(b), l)))

#include "neon-kernels.inc"

const rf_cpu_kernels rf_cpu_kernels_neon = {
    .name = "neon",
    RF_NEON_KERNELS,
};
