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

/* RFK_LAUNCH for a kernel that calls rfk_grid_wait() in every thread
 * before it reads anything earlier kernels wrote and before it writes
 * anything: launched early (rfk_launch_early) where ctx->early_launch. It
 * may then read what does not change between kernels (the weights) while
 * the kernel ahead of it finishes. */
#define RFK_LAUNCH_EARLY(ctx, name, kern, grid, block, smem, stream, ...)                              \
    do {                                                                                               \
        if (!(ctx)->early_launch) {                                                                    \
            RFK_LAUNCH(ctx, name, kern, grid, block, smem, stream, __VA_ARGS__);                       \
            break;                                                                                     \
        }                                                                                              \
        rfk_dim3 ge_ = (grid), be_ = (block);                                                          \
        if ((ctx)->check) {                                                                            \
            int st_ = (ctx)->check((ctx)->check_user, (name), ge_, be_, (size_t)(smem));               \
            if (st_) return st_;                                                                       \
        }                                                                                              \
        int le_ = rfk_launch_early(kern, dim3(ge_.x, ge_.y, ge_.z), dim3(be_.x, be_.y, be_.z),         \
                                   (size_t)(smem), (rfk_stream_t)(stream), __VA_ARGS__);               \
        if (le_) return le_;                                                                           \
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

/* Row r of token t to its output part (rfk_mm_out: consecutive row ranges
 * of the weight, each its own [n_tok][rows_i] array). */
static __device__ __forceinline__ float *rfk_mm_at(const rfk_mm_out &o, int64_t r, int t) {
    int i = 0;
    if (r >= o.rows[0]) {
        r -= o.rows[0];
        i = 1;
        if (r >= o.rows[1]) r -= o.rows[1], i = 2;
    }
    return &o.y[i][t * o.rows[i] + r];
}
static __device__ __forceinline__ void rfk_mm_store(const rfk_mm_out &o, int64_t r, int t, float s) { *rfk_mm_at(o, r, t) = s; }

/* ---- int8 matrix products on a group of 32 lanes --------------------------
 * D[16][8] += A[16][K] B[K][8] (int8 in, int32 out) for K = 32 or 16, in the
 * fragment layout of PTX mma.m16n8k32 / m16n8k16: lane l of the group, with
 * g = l / 4 and q = l % 4, holds the int8 words
 *   k32: a[0] = A[g][4q..4q+3], a[1] = A[g+8][4q..], a[2] = A[g][16+4q..],
 *        a[3] = A[g+8][16+4q..]; b[0] = B[4q..4q+3][g], b[1] = B[16+4q..][g]
 *   k16: a[0] = A[g][4q..], a[1] = A[g+8][4q..]; b = B[4q..][g]
 * and the sums c[0], c[1] = D[g][2q], D[g][2q+1]; c[2], c[3] = D[g+8][2q..].
 * With HW and a target that has the instruction (RFK_HAS_MMA_I8, from the
 * vendor header) it is one instruction; otherwise each lane gathers its
 * rows and columns by shuffles within the 32 lanes and takes byte dots.
 * Both give the exact integer result, so they agree bit for bit (the op
 * suite checks that on hardware that has the instruction). Every lane of
 * the group must call, with the group converged. */
template <bool HW>
static __device__ __forceinline__ void rfk_mma_i8_k32(int c[4], const int a[4], const int b[2]) {
#if RFK_HAS_MMA_I8
    if constexpr (HW) {
        rfk_mma_hw_i8_k32(c, a, b);
        return;
    }
#endif
    const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int ra0 = RFK_SHFL(a[0], 4 * g + i, 32), ra1 = RFK_SHFL(a[1], 4 * g + i, 32);
        const int ra2 = RFK_SHFL(a[2], 4 * g + i, 32), ra3 = RFK_SHFL(a[3], 4 * g + i, 32);
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const int rb0 = RFK_SHFL(b[0], 4 * (2 * q + j) + i, 32), rb1 = RFK_SHFL(b[1], 4 * (2 * q + j) + i, 32);
            c[j] = rfk_dp4a(ra2, rb1, rfk_dp4a(ra0, rb0, c[j]));
            c[2 + j] = rfk_dp4a(ra3, rb1, rfk_dp4a(ra1, rb0, c[2 + j]));
        }
    }
}

template <bool HW> static __device__ __forceinline__ void rfk_mma_i8_k16(int c[4], const int a[2], int b) {
#if RFK_HAS_MMA_I8
    if constexpr (HW) {
        rfk_mma_hw_i8_k16(c, a, b);
        return;
    }
#endif
    const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int ra0 = RFK_SHFL(a[0], 4 * g + i, 32), ra1 = RFK_SHFL(a[1], 4 * g + i, 32);
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const int rb = RFK_SHFL(b, 4 * (2 * q + j) + i, 32);
            c[j] = rfk_dp4a(ra0, rb, c[j]);
            c[2 + j] = rfk_dp4a(ra1, rb, c[2 + j]);
        }
    }
}

/* ---- float16 matrix products on a group of 32 lanes ----------------------
 * D[16][8] += A[16][16] B[16][8] (float16 in, float32 sums), in the
 * fragment layout of PTX mma.m16n8k16 .f16: lane l of the group, with
 * g = l / 4 and q = l % 4, holds pairs of float16 (the lower k in the low
 * half) a[0] = A[g][2q, 2q+1], a[1] = A[g+8][2q, 2q+1], a[2] = A[g][2q+8,
 * 2q+9], a[3] = A[g+8][2q+8, 2q+9]; b[0] = B[2q, 2q+1][g], b[1] = B[2q+8,
 * 2q+9][g]; and the sums c[] as rfk_mma_i8_k32's. One instruction where
 * the target has it (RFK_HAS_MMA_F16); otherwise shuffles and float
 * multiply-adds: the products of float16 are exact in float32, only the
 * order of the additions differs, so the two agree to float rounding. */
static __device__ __forceinline__ float rfk_hdot2(int u, int v) {
    return fmaf(rfk_h2f((unsigned short)((unsigned)u >> 16)), rfk_h2f((unsigned short)((unsigned)v >> 16)),
                rfk_h2f((unsigned short)(u & 0xFFFF)) * rfk_h2f((unsigned short)(v & 0xFFFF)));
}

template <bool HW>
static __device__ __forceinline__ void rfk_mma_f16_k16(float c[4], const int a[4], const int b[2]) {
#if RFK_HAS_MMA_F16
    if constexpr (HW) {
        rfk_mma_hw_f16_k16(c, a, b);
    } else
#endif
    {
        const int lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int ra0 = RFK_SHFL(a[0], 4 * g + i, 32), ra1 = RFK_SHFL(a[1], 4 * g + i, 32);
            const int ra2 = RFK_SHFL(a[2], 4 * g + i, 32), ra3 = RFK_SHFL(a[3], 4 * g + i, 32);
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const int rb0 = RFK_SHFL(b[0], 4 * (2 * q + j) + i, 32), rb1 = RFK_SHFL(b[1], 4 * (2 * q + j) + i, 32);
                c[j] += rfk_hdot2(ra0, rb0) + rfk_hdot2(ra2, rb1);
                c[2 + j] += rfk_hdot2(ra1, rb0) + rfk_hdot2(ra3, rb1);
            }
        }
    }
}

/* Four 8 x 8 float16 matrices from shared memory in the B fragment layout:
 * matrix i is rows 0..7 (pitch `pitch` halves) x columns 8i..8i+7 of
 * `base`, and lane l gets r[i] = its row l / 4, columns 8i + 2 (l % 4) and
 * the next. With rows of k (one token's activations a row) that is b[0],
 * b[1] of rfk_mma_f16_k16 for columns 0..15 (r[0], r[1]) and 16..31 (r[2],
 * r[3]). ldmatrix where the target has it, else each lane's own loads. The
 * group must be converged; base and every row 16-byte aligned. */
/* rfk_ldsm_x4_at: the same from rows anywhere, row(k, i) giving the 8
 * halves of row k of matrix i (a swizzled layout, say). */
template <bool HW, typename RowFn>
static __device__ __forceinline__ void rfk_ldsm_x4_at(int r[4], RowFn row) {
    const int lane = threadIdx.x % 32;
#if RFK_HAS_MMA_F16
    if constexpr (HW) {
        rfk_ldsm_x4_hw(r, row(lane % 8, lane / 8));
    } else
#endif
    {
#pragma unroll
        for (int i = 0; i < 4; i++) r[i] = ((const int *)row(lane / 4, i))[lane % 4];
    }
}
template <bool HW>
static __device__ __forceinline__ void rfk_ldsm_x4(int r[4], const uint16_t *base, int pitch) {
    rfk_ldsm_x4_at<HW>(r, [=](int k, int i) { return base + k * pitch + 8 * i; });
}

/* ---- asynchronous copies to shared memory --------------------------------
 * rfk_cp_async<B>(dst, src): B = 4, 8 or 16 bytes, both aligned to B, from
 * global to shared memory; rfk_cp_async_commit() closes a group of them and
 * rfk_cp_async_wait<N>() waits until at most the N most recent groups are
 * still in flight (then a barrier makes the data visible to the block).
 * Where the target has no such copy it is a load and a store on the spot,
 * and commit and wait do nothing: the same results, without the overlap. */
template <int B> struct rfk_bytes;
template <> struct rfk_bytes<4> { typedef uint32_t type; };
template <> struct rfk_bytes<8> { typedef uint2 type; };
template <> struct rfk_bytes<16> { typedef uint4 type; };
template <int B> static __device__ __forceinline__ void rfk_cp_async(void *dst, const void *src) {
#if RFK_HAS_CP_ASYNC
    rfk_cp_async_hw<B>(dst, src);
#else
    typedef typename rfk_bytes<B>::type T;
    *(T *)dst = *(const T *)src;
#endif
}
static __device__ __forceinline__ void rfk_cp_async_commit(void) {
#if RFK_HAS_CP_ASYNC
    rfk_cp_async_commit_hw();
#endif
}
template <int N> static __device__ __forceinline__ void rfk_cp_async_wait(void) {
#if RFK_HAS_CP_ASYNC
    rfk_cp_async_wait_hw<N>();
#endif
}

/* ---- between kernel files ------------------------------------------------- */

/* mmq.cu: the small-batch matmul on int8 matrix products, for n_tok
 * 1..RFK_MMQ_MAX_N of the types rfk_mmq_supports; xq / xd are the q8
 * activations (see below). Launch status as the wrappers'. */
#define RFK_MMQ_MAX_N 64
bool rfk_mmq_supports(uint32_t type);
int rfk_mmq(const rfk_ctx *ctx, void *stream, uint32_t type, const uint8_t *w, size_t row_bytes, int64_t cols,
            int64_t rows, const int *xq, const float2 *xd, const rfk_mm_out &y, int64_t n_tok);
/* The same product on float16 matrix instructions from float x (converted
 * into xh, n_tok * cols halves of scratch, by the call; x NULL: xh holds
 * them already, rfk_xh_store's layout): where
 * rfk_mmq_f16_fits (ctx->mmq_f16 or its default allows it, the type has
 * the kernel, the rows are whole vectors of its stage copies; by default
 * only where the tile keeps 32 tokens). */
bool rfk_mmq_f16_fits(const rfk_ctx *ctx, uint32_t type, const uint8_t *w, size_t row_bytes, int64_t cols,
                      int64_t rows, int64_t n_tok);
int rfk_mmq_f16(const rfk_ctx *ctx, void *stream, uint32_t type, const uint8_t *w, size_t row_bytes, int64_t cols,
                int64_t rows, const float *x, uint16_t *xh, const rfk_mm_out &y, int64_t n_tok);

/* ---- q8 activation blocks (the integer-dot mat-vec's input) ---------------
 * x [n_tok][cols] as int8 blocks of 32: xq (one int per 4 values, flat
 * quad index i), then at rfk_q8_xd_offset bytes, xd[i / 8] = (d, d * sum of
 * the block's int8) with d = amax / 127. Written by matmul.cu's quantize
 * and by the fused kernels (fused.cu), read by k_matvec_q8. */
static inline size_t rfk_q8_xd_offset(int64_t cols, int64_t n_tok) {
    return ((size_t)(n_tok * cols) + 15) & ~(size_t)15;
}

/* From 3 tokens the producers of q8 blocks also write the same activations
 * as float16 for the float16 products (mmq.cu), after the scales, 16-byte
 * aligned, at this offset: per 32-column block 16 words, element 16h + 4q
 * + i of the block at column 16h + 2q + {0, 8, 1, 9}[i] (the products'
 * fragment order), clamped to the float16 range (a value past it would
 * become infinite; NaN stays NaN). */
static inline size_t rfk_xh_offset(int64_t cols, int64_t n_tok) {
    return (rfk_q8_xd_offset(cols, n_tok) + (size_t)(n_tok * cols / 32) * 8 + 15) / 16 * 16;
}

static __device__ __forceinline__ uint32_t rfk_h2_pack(float lo, float hi) {
    lo = fabsf(lo) > 65504.0f ? copysignf(65504.0f, lo) : lo;
    hi = fabsf(hi) > 65504.0f ? copysignf(65504.0f, hi) : hi;
    return (uint32_t)rfk_f2h(lo) | (uint32_t)rfk_f2h(hi) << 16;
}

/* The word of that layout holding elements 4i and 4i + 2 of the flat
 * array (columns 16h + 2q, 2q + 8 of their block); 4i + 1 and 4i + 3 are
 * 4 words on. */
static __device__ __forceinline__ int64_t rfk_xh_word(int64_t i) {
    const int k = (int)(i % 8);
    return (i / 8) * 16 + 8 * (k / 4) + k % 4;
}

/* Quad i (elements 4i .. 4i + 3 of the flat array) into that layout. */
static __device__ __forceinline__ void rfk_xh_store(float4 v, int64_t i, uint32_t *xh) {
    uint32_t *o = xh + rfk_xh_word(i);
    o[0] = rfk_h2_pack(v.x, v.z);
    o[4] = rfk_h2_pack(v.y, v.w);
}

/* Where quad i of a row goes in the split q8 layout of a one-token row in
 * shared memory (matmul.cu's mat-vecs). The row is cut into items of U
 * 16-byte units (U = 2: a block of 32 values, which a Q4_0, Q8_0 or Q6_K
 * lane takes; U = 4: the two blocks a Q4_K lane takes), and unit u of the
 * 32 items of group g is stored at int4 index 32 U g + 32 u + p for item
 * 32 g + p: a warp reading one item a lane reads each unit as one
 * contiguous run. Returns the int index. */
template <int U> static __device__ __forceinline__ int64_t rfk_q8_split(int64_t i) {
    static_assert(U == 2 || U == 4, "items of two or four units");
    const int64_t n = i >> 2, item = n / U, u = n % U;
    return (((item >> 5) * (32 * U) + u * 32 + (item & 31)) << 2) + (i & 3);
}

/* Eight consecutive lanes hold the four values each of one block (quad i,
 * i / 8 the block): quantize and store it (where SPLIT, the units an item,
 * is not 0, the ints at rfk_q8_split<SPLIT>'s places), and with xh the
 * float16 copy (rfk_xh_store; SPLIT 0 only). Every lane of the warp must
 * call (the shuffles), live or not; only live lanes store. */
template <int W, int SPLIT = 0>
static __device__ __forceinline__ void rfk_q8_store(float4 v, int64_t i, bool live, int *xq, float2 *xd,
                                                    uint32_t *xh = nullptr) {
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
        int64_t at = i;
        if constexpr (SPLIT != 0) at = rfk_q8_split<SPLIT>(i);
        xq[at] = (q0 & 0xFF) | ((q1 & 0xFF) << 8) | ((q2 & 0xFF) << 16) | ((int)((unsigned)q3 << 24));
        if (i % 8 == 0) xd[i / 8] = make_float2(d, d * (float)sum);
        if constexpr (SPLIT == 0) {
            if (xh) rfk_xh_store(v, i, xh);
        }
    }
}

/* One value per lane, 32 consecutive lanes (aligned) holding a block:
 * element e of the flat array quantized as rfk_q8_store does (the same
 * scale and rounding), and with xh its float16 copy. Every lane of the
 * warp must call; only live lanes store. Shuffles of width 32 keep each
 * 32-lane half of a 64-wide wave to itself. */
static __device__ __forceinline__ void rfk_q8_store1(float v, int64_t e, bool live, int *xq, float2 *xd,
                                                     uint32_t *xh = nullptr) {
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o /= 2) amax = fmaxf(amax, RFK_SHFL_XOR(amax, o, 32));
    const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int q = __float2int_rn(v * id);
    int sum = q;
#pragma unroll
    for (int o = 16; o > 0; o /= 2) sum += RFK_SHFL_XOR(sum, o, 32);
    if (live) {
        ((signed char *)xq)[e] = (signed char)q;
        if (e % 32 == 0) xd[e / 32] = make_float2(d, d * (float)sum);
    }
    if (xh) { /* lanes 4k and 4k + 1 store elements (4k, 4k + 2) and (4k + 1, 4k + 3) */
        const float p = RFK_SHFL_XOR(v, 2, 32);
        const int m = (int)(e % 4);
        if (live && m < 2) xh[rfk_xh_word(e / 4) + 4 * m] = rfk_h2_pack(v, p);
    }
}

/* ---- a row's RMSNorm from registers ----------------------------------------
 * One block of RFK_NORM_BLOCK threads per row of dim floats (dim a multiple
 * of 4, at most RFK_NORM_MAX; x, delta, w, y 16-byte aligned): thread i
 * holds quads i, i + RFK_NORM_BLOCK, ... in registers, loaded together, so
 * a row costs one memory latency, not one per loop round (a loop that
 * consumed each load in its own round took 12 us for 4096 floats). With
 * delta, x += delta is stored back. y = x * scale * w (w NULL: 1) where
 * scale = 1 / sqrt(mean(x^2) + eps); y may be x (each thread writes only
 * what it read). With xq, the q8 blocks of y go there too (dim a multiple
 * of 32; rfk_q8_store), and with xh its float16 copy. The row is `row` of x, delta, y and the q8 arrays;
 * with store false nothing but the q8 blocks is written (a block that
 * computes the row for itself beside others that do the same). With ticket
 * (a device int that is 0 before the launch; blocks of one grid computing
 * the same row) store is decided by it instead: the block that reads x
 * last stores x and y and puts the ticket back to 0, so that no block can
 * read an x already updated by another. RQ quads a
 * thread (rows up to 4 * RFK_NORM_BLOCK * RQ floats): fewer hold fewer
 * registers. SPLIT (not 0): the q8 ints in rfk_q8_split<SPLIT>'s layout (row
 * 0 only). */
#define RFK_NORM_BLOCK 256
#define RFK_NORM_RQ 8 /* quads per thread */
#define RFK_NORM_MAX (4 * RFK_NORM_BLOCK * RFK_NORM_RQ)

template <int W, int RQ = RFK_NORM_RQ, int SPLIT = 0>
static __device__ __forceinline__ void rfk_norm_row(float *x, const float *delta, const float *__restrict__ w,
                                                    float *y, int64_t dim, float eps, int *xq, float2 *xd,
                                                    int64_t row, bool store, int *ticket = nullptr,
                                                    uint32_t *xh = nullptr) {
    __shared__ float red[32];
    const int64_t nq = dim / 4;
    float4 *xr = (float4 *)(x + row * dim);
    const float4 *dr = delta ? (const float4 *)(delta + row * dim) : NULL;
    float4 *yr = (float4 *)(y + row * dim);
    float4 v[RQ], wv[RQ];
#pragma unroll
    for (int k = 0; k < RQ; k++) {
        const int64_t i = threadIdx.x + k * RFK_NORM_BLOCK;
        v[k] = i < nq ? xr[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        wv[k] = w && i < nq ? ((const float4 *)w)[i] : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
    }
    if (dr) {
#pragma unroll
        for (int k = 0; k < RQ; k++) {
            const int64_t i = threadIdx.x + k * RFK_NORM_BLOCK;
            if (i < nq) {
                const float4 d = dr[i];
                v[k].x += d.x, v[k].y += d.y, v[k].z += d.z, v[k].w += d.w;
            }
        }
    }
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < RQ; k++) ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
    if (ticket) {
        __shared__ int last;
        __syncthreads(); /* the block's loads of x are done */
        if (threadIdx.x == 0) {
            __threadfence();
            last = atomicAdd(ticket, 1) == (int)(gridDim.x * gridDim.y * gridDim.z) - 1;
            __threadfence(); /* every other block's loads come before this block's stores */
            if (last) *ticket = 0;
        }
        __syncthreads();
        store = last;
    }
    if (dr && store) {
#pragma unroll
        for (int k = 0; k < RQ; k++) {
            const int64_t i = threadIdx.x + k * RFK_NORM_BLOCK;
            if (i < nq) xr[i] = v[k];
        }
    }
    ss = rfk_block_reduce<W, false>(ss, red);
    const float scale = rsqrtf(ss / (float)dim + eps);
#pragma unroll
    for (int k = 0; k < RQ; k++) {
        const int64_t i = threadIdx.x + k * RFK_NORM_BLOCK;
        const int64_t i0 = i - threadIdx.x % W; /* the warp's first quad: whole warps skip */
        if (i0 >= nq) break;
        const bool live = i < nq;
        float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (live) {
            o = make_float4(v[k].x * scale * wv[k].x, v[k].y * scale * wv[k].y, v[k].z * scale * wv[k].z,
                            v[k].w * scale * wv[k].w);
            if (store) yr[i] = o;
        }
        if (xq) rfk_q8_store<W, SPLIT>(o, row * nq + i, live, xq, xd, xh);
    }
}

/* ---- RoPE ------------------------------------------------------------------
 * Pair i of a head x (i < n_rot / 2) rotated by the token's (cos, sin) pair
 * c[2i], c[2i + 1] (rfk_rope's table): dims a, b = 2i, 2i + 1 (normal) or
 * i, i + n_rot / 2 (neox); *ya, *yb their rotated values. */
static __device__ __forceinline__ void rfk_rope_pair(const float *x, const float *c, int64_t i, int64_t n_rot, int neox,
                                                     int64_t *a, int64_t *b, float *ya, float *yb) {
    *a = neox ? i : 2 * i, *b = neox ? i + n_rot / 2 : 2 * i + 1;
    const float x0 = x[*a], x1 = x[*b], co = c[2 * i], si = c[2 * i + 1];
    *ya = x0 * co - x1 * si;
    *yb = x0 * si + x1 * co;
}

/* Dim d of head x after RoPE (dims past n_rot unrotated): the same
 * arithmetic as the pair above, for a thread that holds single dims. */
static __device__ __forceinline__ float rfk_rope_at(const float *x, const float *c, int64_t d, int64_t n_rot,
                                                    int neox) {
    if (d >= n_rot) return x[d];
    const int64_t half = n_rot / 2, i = neox ? (d < half ? d : d - half) : d / 2;
    int64_t a, b;
    float ya, yb;
    rfk_rope_pair(x, c, i, n_rot, neox, &a, &b, &ya, &yb);
    return d == a ? ya : yb;
}

#endif
