/*
 * compat.h - what the kernel sources need beyond the common HIP/CUDA dialect
 * (__global__, __device__, __shared__, threadIdx, <<<>>> launches, __half
 * conversions). The vendor spellings live in the kernel-side sections of
 * src/gpu/vendor/cuda.h and vendor/hip.h (with the host side's, the only
 * vendor-aware files), picked by vendor.h from RF_GPU_CUDA / RF_GPU_HIP;
 * each provides:
 *   rfk_stream_t, rfk_last_error()         the runtime's stream type, last launch error
 *   RFK_SHFL_XOR(v, mask, w), RFK_SHFL(v, lane, w)   whole-warp shuffles
 *   RFK_BUILD_HAS_WARP64                   whether the build has wave64 targets
 *   RFK_TARGET_WARP                        in device passes: the target's warp width
 *   rfk_trap()                             abort the kernel
 *   rfk_dp4a(a, b, c)                      c + dot of the four signed bytes of a and b
 *   rfk_fshr_clamp(lo, hi, s)              the 32 bits at bit s (0..32, clamped) of hi:lo
 *   rfk_syncwarp()                         one warp's shared-memory stores before its loads
 *   RFK_HAS_MMA_I8, rfk_mma_hw_i8_k32/_k16 int8 matrix instructions where the target has
 *                                          them (kcommon.cuh's rfk_mma_i8_* emulate them)
 *   RFK_HAS_MMA_F16, rfk_mma_hw_f16_k16, rfk_ldsm_x4_hw   float16 matrix instructions and
 *                                          their shared-memory fragment loads (emulated by
 *                                          kcommon.cuh's rfk_mma_f16_k16 / rfk_ldsm_x4)
 *   RFK_HAS_CP_ASYNC, rfk_cp_async_hw<B>, _commit_hw, _wait_hw<N>   asynchronous global ->
 *                                          shared copies where the target has them
 *                                          (kcommon.cuh's rfk_cp_async* copy otherwise)
 *   rfk_occupancy(kern, block)             resident blocks a multiprocessor (0: unknown)
 *   rfk_prefetch_l2(p, bytes)              an L2 prefetch of a range, where the target has one
 *   rfk_ld_l2(p)                           a float4 load that sees other blocks' stores after
 *                                          __threadfence() (bypassing a non-coherent L1)
 *   RFK_RT(x), rfk_rt_prop, rfk_rt_event   runtime names for the op suite's shim
 * Names are rfk_* / RFK_* so they cannot collide with the host side's rfg_*.
 */
#ifndef RF_GPU_KERNELS_COMPAT_H
#define RF_GPU_KERNELS_COMPAT_H

#include "../vendor.h"

/* True when a kernel instantiated for warp width W may run on the target
 * being compiled. In the host pass every W is allowed (the wrapper checks
 * the device's width at run time). */
template <int W> __host__ __device__ constexpr bool rfk_warp_matches() {
#if defined(RFK_TARGET_WARP)
    return W == RFK_TARGET_WARP;
#else
    return true;
#endif
}

static __device__ __forceinline__ float rfk_h2f(unsigned short h) { return __half2float(__ushort_as_half(h)); }
static __device__ __forceinline__ unsigned short rfk_f2h(float f) { return __half_as_ushort(__float2half_rn(f)); }

#endif /* RF_GPU_KERNELS_COMPAT_H */
