/*
 * compat.h - the few vendor spellings the kernel sources need, selected by
 * RF_GPU_HIP or RF_GPU_CUDA (exactly one defined by the build). Everything
 * else in src/gpu/kernels is the common HIP/CUDA dialect: __global__,
 * __device__, __shared__, threadIdx, <<<>>> launches, __half conversions.
 * Names here are rfk_* / RFK_* so they cannot collide with the host side's
 * vendor/{cuda,hip}.h. Only what a kernel file actually uses is here.
 */
#ifndef RF_GPU_KERNELS_COMPAT_H
#define RF_GPU_KERNELS_COMPAT_H

#if defined(RF_GPU_HIP) == defined(RF_GPU_CUDA)
#error "define exactly one of RF_GPU_HIP, RF_GPU_CUDA"
#endif

#if defined(RF_GPU_HIP)
#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>
typedef hipStream_t rfk_stream_t;
/* AMD builds run wave64 (CDNA) and wave32 (RDNA) devices from one binary. */
#define RFK_BUILD_HAS_WARP64 1
static inline int rfk_last_error(void) { return (int)hipGetLastError(); }
#define RFK_SHFL_XOR(v, lane_mask, width) __shfl_xor((v), (lane_mask), (width))
#define RFK_SHFL(v, src_lane, width) __shfl((v), (src_lane), (width))
#if defined(__HIP_DEVICE_COMPILE__)
/* Wavefront width of the target being compiled (32 on gfx10+, 64 on gfx9). */
#define RFK_TARGET_WARP __AMDGCN_WAVEFRONT_SIZE
#endif
#define rfk_trap() __builtin_trap()
#else /* RF_GPU_CUDA */
#include <cuda_runtime.h>
#include <cuda_fp16.h>
typedef cudaStream_t rfk_stream_t;
#define RFK_BUILD_HAS_WARP64 0
static inline int rfk_last_error(void) { return (int)cudaGetLastError(); }
#define RFK_SHFL_XOR(v, lane_mask, width) __shfl_xor_sync(0xffffffffu, (v), (lane_mask), (width))
#define RFK_SHFL(v, src_lane, width) __shfl_sync(0xffffffffu, (v), (src_lane), (width))
#if defined(__CUDA_ARCH__)
#define RFK_TARGET_WARP 32
#endif
#define rfk_trap() __trap()
#endif

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

/* c + the dot product of the four signed bytes of a and b. */
static __device__ __forceinline__ int rfk_dp4a(int a, int b, int c) {
#if defined(RF_GPU_CUDA)
    return __dp4a(a, b, c);
#elif defined(__gfx906__) || defined(__gfx908__) || defined(__gfx90a__) || defined(__gfx940__) || \
    defined(__gfx941__) || defined(__gfx942__) || defined(__gfx1011__) || defined(__gfx1012__) ||     \
    defined(__gfx1030__) || defined(__gfx1031__) || defined(__gfx1032__) || defined(__gfx1034__) ||   \
    defined(__gfx1035__) || defined(__gfx1036__)
    return __builtin_amdgcn_sdot4(a, b, c, false);
#else /* targets without the dot4 instruction (and the host pass) */
    for (int i = 0; i < 32; i += 8) c += (int)(signed char)(a >> i) * (int)(signed char)(b >> i);
    return c;
#endif
}

/* The 32 bits at bit offset s (0..32, clamped) of the 64-bit hi:lo. */
static __device__ __forceinline__ unsigned rfk_fshr_clamp(unsigned lo, unsigned hi, unsigned s) {
#if defined(RF_GPU_CUDA)
    return __funnelshift_rc(lo, hi, s);
#else
    return s >= 32 ? hi : (unsigned)((((unsigned long long)hi << 32) | lo) >> s);
#endif
}

/* Orders one warp's shared-memory stores before its loads (a wavefront
 * runs in lockstep on AMD: only the compiler must not reorder). */
static __device__ __forceinline__ void rfk_syncwarp(void) {
#if defined(RF_GPU_CUDA)
    __syncwarp();
#else
    __builtin_amdgcn_fence(__ATOMIC_RELEASE, "wavefront");
    __builtin_amdgcn_wave_barrier();
    __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "wavefront");
#endif
}

static __device__ __forceinline__ float rfk_h2f(unsigned short h) { return __half2float(__ushort_as_half(h)); }
static __device__ __forceinline__ unsigned short rfk_f2h(float f) { return __half_as_ushort(__float2half_rn(f)); }

#endif /* RF_GPU_KERNELS_COMPAT_H */
