/*
 * kcommon.cuh - helpers shared by the kernel files: the launch macro that
 * runs the host's launch check before every launch and turns the launch
 * status into the wrapper's return value, the warp-width gate, and warp /
 * block reductions templated on the warp width W (never a constant 32).
 */
#ifndef RF_GPU_KERNELS_KCOMMON_CUH
#define RF_GPU_KERNELS_KCOMMON_CUH

#include <stdint.h>

#include "compat.h"
#include "kernels.h"

static inline rfk_dim3 rfk_d3(uint64_t x, uint64_t y = 1, uint64_t z = 1) {
    /* Sizes past 32 bits are clamped to UINT32_MAX so that the launch
     * check sees (and refuses) them instead of a wrapped small value. */
    rfk_dim3 d = {(unsigned)(x > 0xFFFFFFFFu ? 0xFFFFFFFFu : x), (unsigned)(y > 0xFFFFFFFFu ? 0xFFFFFFFFu : y),
                  (unsigned)(z > 0xFFFFFFFFu ? 0xFFFFFFFFu : z)};
    return d;
}

/* 0 when this build can run kernels of the context's warp width. */
static inline int rfk_warp_status(const rfk_ctx *c) {
    if (!c) return RFK_E_INVAL;
    if (c->warp_size == 32) return RFK_OK;
    if (c->warp_size == 64 && RFK_BUILD_HAS_WARP64) return RFK_OK;
    return RFK_E_WARP;
}

/* Check, launch, and return the first non-zero status from the enclosing
 * wrapper. `kern` may be a template-id in parentheses. */
#define RFK_LAUNCH(ctx, name, kern, grid, block, smem, stream, ...)                                     \
    do {                                                                                              \
        rfk_dim3 g_ = (grid), b_ = (block);                                                           \
        if ((ctx)->check) {                                                                           \
            int st_ = (ctx)->check((ctx)->check_user, (name), g_, b_, (size_t)(smem));                \
            if (st_) return st_;                                                                      \
        }                                                                                             \
        kern<<<dim3(g_.x, g_.y, g_.z), dim3(b_.x, b_.y, b_.z), (size_t)(smem), (rfk_stream_t)(stream)>>>( \
            __VA_ARGS__);                                                                             \
        int le_ = rfk_last_error();                                                                   \
        if (le_) return le_;                                                                          \
    } while (0)

/* Statements for the W = 64 instantiation, present only in builds whose
 * targets have wave64 (so CUDA builds never instantiate it). */
#if RFK_BUILD_HAS_WARP64
#define RFK_IF_WARP64(...) __VA_ARGS__
#else
#define RFK_IF_WARP64(...)
#endif

template <int W> static __device__ __forceinline__ float rfk_warp_sum(float v) {
#pragma unroll
    for (int o = W / 2; o > 0; o /= 2) v += RFK_SHFL_XOR(v, o, W);
    return v;
}

template <int W> static __device__ __forceinline__ float rfk_warp_max(float v) {
#pragma unroll
    for (int o = W / 2; o > 0; o /= 2) v = fmaxf(v, RFK_SHFL_XOR(v, o, W));
    return v;
}

/* Sum (is_max false) or max over the whole block; every thread gets the
 * result. scratch: __shared__ float[blockDim.x / W] (at most 32 entries). */
template <int W, bool is_max> static __device__ __forceinline__ float rfk_block_reduce(float v, float *scratch) {
    const int lane = threadIdx.x % W, warp = threadIdx.x / W, n_warps = blockDim.x / W;
    v = is_max ? rfk_warp_max<W>(v) : rfk_warp_sum<W>(v);
    __syncthreads(); /* scratch may still be read from a previous call */
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : (is_max ? -INFINITY : 0.0f);
    return is_max ? rfk_warp_max<W>(v) : rfk_warp_sum<W>(v);
}

/* ---- q8 activation blocks (the integer-dot mat-vec's input) ---------------
 * x [n_tok][cols] as int8 blocks of 32: xq (one int per 4 values, flat
 * quad index i), then at rfk_q8_xd_offset bytes, xd[i / 8] = (d, d * sum of
 * the block's int8) with d = amax / 127. Written by matmul.cu's quantize
 * and by the fused kernels (fused.cu), read by k_matvec_q8. */
static inline size_t rfk_q8_xd_offset(int64_t cols, int64_t n_tok) {
    return ((size_t)(n_tok * cols) + 15) & ~(size_t)15;
}

/* Eight consecutive lanes hold the four values each of one block (quad i,
 * i / 8 the block): quantize and store it. Every lane of the warp must call
 * (the shuffles), live or not; only live lanes store. */
template <int W>
static __device__ __forceinline__ void rfk_q8_store(float4 v, int64_t i, bool live, int *xq, float2 *xd) {
    float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
#pragma unroll
    for (int o = 4; o > 0; o /= 2) amax = fmaxf(amax, RFK_SHFL_XOR(amax, o, W));
    const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int q0 = __float2int_rn(v.x * id), q1 = __float2int_rn(v.y * id), q2 = __float2int_rn(v.z * id),
              q3 = __float2int_rn(v.w * id);
    int sum = q0 + q1 + q2 + q3;
#pragma unroll
    for (int o = 4; o > 0; o /= 2) sum += RFK_SHFL_XOR(sum, o, W);
    if (live) {
        xq[i] = (q0 & 0xFF) | ((q1 & 0xFF) << 8) | ((q2 & 0xFF) << 16) | ((int)((unsigned)q3 << 24));
        if (i % 8 == 0) xd[i / 8] = make_float2(d, d * (float)sum);
    }
}

#endif
