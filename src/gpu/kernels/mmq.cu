/*
 * mmq.cu - the small-batch matmul: y[t][r] = sum_c W[r][c] x[t][c] for a
 * few to 64 tokens (batched decode), on int8 matrix products.
 *
 * The mat-vec kernels decode each weight once and take a byte dot per token,
 * so their work grows with the batch: at 8 tokens they are bound by the dot
 * and load instructions, not by memory. Here a 32-lane group decodes a
 * 16-row x 32-column weight tile into the A fragment of an int8 matrix
 * product (kcommon.cuh's rfk_mma_i8_*: one tensor-core instruction on
 * NVIDIA sm_80+, a shuffle emulation elsewhere) and multiplies it with 8
 * tokens' q8 activations per instruction; the int32 result of each 32-wide
 * block is scaled into float32 accumulators (weight scale x activation
 * scale, minus the weight minimum x the activation block's sum where the
 * type has one), the same arithmetic as k_matvec_q8, so results agree with
 * it to float rounding.
 *
 * Two kernels share that arithmetic (mq_mul):
 *  - k_mmq_rows (the "row-tiled kernel" section below), for rows of whole
 *    16-byte (Q8_0 8-, Q6_K 4-byte) vectors: the groups of a block take
 *    different rows and share each stage of activations in shared memory.
 *  - k_mmq, for any rows: a block is MQ_GROUPS groups of 32 lanes on the
 *    same 16 * MT rows and 8 * NT8 tokens; group i takes the 32-column
 *    blocks i, i + MQ_GROUPS, ... (a split of K, so a 4096-row matrix still
 *    makes 256 blocks of 8 groups), and the groups' sums are added in shared
 *    memory at the end. The block copies its rows' weights into shared
 *    memory a stage of 512 or 1024 columns at a time with coalesced loads,
 *    the next stage in flight while the current one is multiplied (rows of
 *    whole 4-byte words; other rows are read by each lane from global
 *    memory); every group reads the activations from global memory.
 * On a wave64 device a wavefront holds two groups. A row past the end
 * re-reads the last row and a token past n_tok the last token; neither is
 * stored.
 *
 * Types: Q4_0, Q4_1, Q8_0, Q4_K, Q6_K (Q6_K's two 16-element scales per 32
 * columns take two k16 products). Q4_0 and Q6_K are made signed (q - 8,
 * q - 32) so that they need no activation sum.
 *
 * The row-tiled kernel also has a float16 variant (mh_mul, rfk_mmq_f16):
 * the same weight words decoded to float16 with their scales applied,
 * times float16 activations (converted from float by k_mmq_x_f16), on
 * float16 matrix products that accumulate in float32, with no per-block
 * epilogue; by default it takes the 32-token tiles of CUDA builds.
 */
#include <stdlib.h>
#include <string.h>

#include "kcommon.cuh"
#include "quant.cuh"

#define MQ_GROUPS 8 /* 32-lane groups per block, splitting K */
#define MQ_BLOCK (32 * MQ_GROUPS)

/* One row's share of a 32-column block for the A fragment: w[0] = the int8
 * of elements 4q .. 4q + 3, w[1] = 16 + 4q .. 16 + 4q + 3; the block adds
 * s * dx * dot - m * dy to the row's sum (dx, dy: the activation block's
 * scale and scale x sum). Split types (Q6_K) scale the dots of the two
 * 16-element halves by the integers s0 and s1 first. */
struct mq_row {
    int w[2];
    float s, m;
    int s0, s1;
};

/* bytes 0..15 -> -8..7 and 0..63 -> -32..31 as int8, four at a time (no
 * byte carries into the next: 0x78 + 15 and 0x60 + 63 stay below 0x100) */
static __device__ __forceinline__ int mq_s4(uint32_t v) { return (int)((v + 0x78787878u) ^ 0x80808080u); }
static __device__ __forceinline__ int mq_s6(uint32_t v) { return (int)((v + 0x60606060u) ^ 0x80808080u); }

template <int T> struct mq;

template <> struct mq<2> { /* Q4_0: d, qs[16]; low nibbles 0..15, high 16..31 */
    static constexpr bool has_min = false;
    static constexpr bool stage_mt2 = false; /* staged at 32 tokens too (see mmq_launch) */
    static constexpr int stage_cols = 1024, stage_bytes = 18 * 32; /* a row's stage (ST kernels) */
    static constexpr bool split = false;
    static __device__ __forceinline__ void row(const uint8_t *r, int64_t b, int q, mq_row &o) {
        const uint8_t *p = r + b * 18;
        const uint32_t v = rfk_ld32_a2(p + 2 + 4 * q);
        o.w[0] = mq_s4(v & 0x0F0F0F0Fu);
        o.w[1] = mq_s4((v >> 4) & 0x0F0F0F0Fu);
        o.s = rfk_ldh(p);
        o.m = 0.0f;
    }
};

template <> struct mq<3> { /* Q4_1: d, m, qs[16]; value d * q + m */
    static constexpr bool has_min = true;
    static constexpr bool stage_mt2 = false; /* staged at 32 tokens too (see mmq_launch) */
    static constexpr int stage_cols = 1024, stage_bytes = 20 * 32; /* a row's stage (ST kernels) */
    static constexpr bool split = false;
    static __device__ __forceinline__ void row(const uint8_t *r, int64_t b, int q, mq_row &o) {
        const uint8_t *p = r + b * 20;
        const uint32_t v = rfk_ld32_a4(p + 4 + 4 * q);
        o.w[0] = (int)(v & 0x0F0F0F0Fu);
        o.w[1] = (int)((v >> 4) & 0x0F0F0F0Fu);
        o.s = rfk_ldh(p);
        o.m = -rfk_ldh(p + 2);
    }
};

template <> struct mq<8> { /* Q8_0: d, qs[32] */
    static constexpr bool has_min = false;
    static constexpr bool stage_mt2 = false; /* staged at 32 tokens too (see mmq_launch) */
    static constexpr int stage_cols = 512, stage_bytes = 34 * 16; /* a row's stage (ST kernels) */
    static constexpr bool split = false;
    static __device__ __forceinline__ void row(const uint8_t *r, int64_t b, int q, mq_row &o) {
        const uint8_t *p = r + b * 34;
        o.w[0] = (int)rfk_ld32_a2(p + 2 + 4 * q);
        o.w[1] = (int)rfk_ld32_a2(p + 18 + 4 * q);
        o.s = rfk_ldh(p);
        o.m = 0.0f;
    }
};

template <> struct mq<12> { /* Q4_K: d, dmin, scales[12], qs[128]; sub-block j of 32 */
    static constexpr bool has_min = true;
    static constexpr bool stage_mt2 = true; /* staged at 32 tokens too (see mmq_launch) */
    static constexpr int stage_cols = 1024, stage_bytes = 144 * 4; /* a row's stage (ST kernels) */
    static constexpr bool split = false;
    static __device__ __forceinline__ void row(const uint8_t *r, int64_t b, int q, mq_row &o) {
        const uint8_t *p = r + (b >> 3) * 144;
        const int j = (int)(b & 7);
        const uint32_t h0 = rfk_ld32_a4(p), s0 = rfk_ld32_a4(p + 4), s1 = rfk_ld32_a4(p + 8), s2 = rfk_ld32_a4(p + 12);
        const uint8_t *qs = p + 16 + 32 * (j >> 1);
        const int sh = 4 * (j & 1);
        o.w[0] = (int)((rfk_ld32_a4(qs + 4 * q) >> sh) & 0x0F0F0F0Fu);
        o.w[1] = (int)((rfk_ld32_a4(qs + 16 + 4 * q) >> sh) & 0x0F0F0F0Fu);
        int sc, mn;
        if (j < 4) {
            sc = rfk_k4_sbyte(s0, s1, s2, j) & 63;
            mn = rfk_k4_sbyte(s0, s1, s2, j + 4) & 63;
        } else {
            const int hi = rfk_k4_sbyte(s0, s1, s2, j + 4);
            sc = (hi & 0x0F) | ((rfk_k4_sbyte(s0, s1, s2, j - 4) >> 6) << 4);
            mn = (hi >> 4) | ((rfk_k4_sbyte(s0, s1, s2, j) >> 6) << 4);
        }
        o.s = rfk_h2f((unsigned short)(h0 & 0xFFFF)) * (float)sc;
        o.m = rfk_h2f((unsigned short)(h0 >> 16)) * (float)mn;
    }
};

template <> struct mq<14> { /* Q6_K: ql[128], qh[64], int8 scales[16], d; see quant.cuh */
    static constexpr bool has_min = false;
    static constexpr bool stage_mt2 = true; /* staged at 32 tokens too (see mmq_launch) */
    static constexpr int stage_cols = 512, stage_bytes = 210 * 2; /* a row's stage (ST kernels) */
    static constexpr bool split = true;
    static __device__ __forceinline__ void row(const uint8_t *r, int64_t b, int q, mq_row &o) {
        const uint8_t *p = r + (b >> 3) * 210;
        const int j = (int)(b & 7), h = j / 4, t = j % 4;
        const uint8_t *ql = p + 64 * h + 32 * (t % 2), *qh = p + 128 + 32 * h;
        const int sl = 4 * (t / 2), sh = 2 * t;
#pragma unroll
        for (int k = 0; k < 2; k++) {
            const uint32_t lo = rfk_ld32_a2(ql + 16 * k + 4 * q), hi = rfk_ld32_a2(qh + 16 * k + 4 * q);
            o.w[k] = mq_s6(((lo >> sl) & 0x0F0F0F0Fu) | (((hi >> sh) & 0x03030303u) << 4));
        }
        const uint32_t sc = *(const uint16_t *)(p + 192 + 2 * j);
        o.s0 = (int)(int8_t)(sc & 0xFF);
        o.s1 = (int)(int8_t)(sc >> 8);
        o.s = rfk_ldh(p + 208);
        o.m = 0.0f;
    }
};

/* One 32-column block's B fragments (bf[n]: the k32 fragment of tokens
 * 8n..8n+7) and the activation scales (d0[n], d1[n]: (d, d * sum) of tokens
 * 8n + 2q and 8n + 2q + 1) of a lane. */
template <int NT8> struct mq_bops {
    int bf[NT8][2];
    float2 d0[NT8], d1[NT8];
};

/* int32 to float for |v| < 2^22 without the conversion instruction (a
 * quarter-rate one on NVIDIA, four per matrix product here): the bits of
 * 1.5 * 2^23 plus v are the float 1.5 * 2^23 + v, exactly. A 32-element
 * int8 dot is below 2^20; Q6_K's scaled halves can pass 2^22 and convert. */
static __device__ __forceinline__ float mq_i2f(int v) { return __int_as_float(v + 0x4B400000) - 12582912.0f; }

/* acc[m][n] += the block's weights times its activations: rp[m][h] = rows
 * 16m + 8h + g of the lane's tile, b the block's index from rp. */
template <int T, int MT, int NT8>
static __device__ __forceinline__ void mq_mul(float (&acc)[MT][NT8][4], const uint8_t *const (&rp)[MT][2], int64_t b,
                                              int q, const mq_bops<NT8> &o) {
    typedef mq<T> Q;
#pragma unroll
    for (int m = 0; m < MT; m++) {
        mq_row A0, A1; /* rows g and g + 8 of this m-tile */
        Q::row(rp[m][0], b, q, A0);
        Q::row(rp[m][1], b, q, A1);
#pragma unroll
        for (int n = 0; n < NT8; n++) {
            int c[4] = {0, 0, 0, 0};
            if constexpr (Q::split) {
                int cl[4] = {0, 0, 0, 0};
                const int alo[2] = {A0.w[0], A1.w[0]}, ahi[2] = {A0.w[1], A1.w[1]};
                rfk_mma_i8_k16<true>(cl, alo, o.bf[n][0]);
                rfk_mma_i8_k16<true>(c, ahi, o.bf[n][1]);
                c[0] = cl[0] * A0.s0 + c[0] * A0.s1;
                c[1] = cl[1] * A0.s0 + c[1] * A0.s1;
                c[2] = cl[2] * A1.s0 + c[2] * A1.s1;
                c[3] = cl[3] * A1.s0 + c[3] * A1.s1;
            } else {
                const int a[4] = {A0.w[0], A1.w[0], A0.w[1], A1.w[1]};
                rfk_mma_i8_k32<true>(c, a, o.bf[n]);
            }
            float f[4];
#pragma unroll
            for (int i = 0; i < 4; i++) f[i] = Q::split ? (float)c[i] : mq_i2f(c[i]);
            acc[m][n][0] += A0.s * o.d0[n].x * f[0] - A0.m * o.d0[n].y;
            acc[m][n][1] += A0.s * o.d1[n].x * f[1] - A0.m * o.d1[n].y;
            acc[m][n][2] += A1.s * o.d0[n].x * f[2] - A1.m * o.d0[n].y;
            acc[m][n][3] += A1.s * o.d1[n].x * f[3] - A1.m * o.d1[n].y;
        }
    }
}

/* ---- float16 products ----------------------------------------------------
 * At 32 tokens the int8 products above are bound by their float epilogue:
 * every 32-column block's int32 sums are converted and scaled, four float
 * instructions per sum (Nsight Compute, H100: 38 M instructions for Q4_0
 * 28672 x 4096). The float16 variant (the row-tiled kernel with H) decodes
 * each weight pair once into float16 with its scale applied, s * q - m,
 * and multiplies it with float16 activations on mma.m16n8k16, which
 * accumulates in float32 across blocks: no epilogue. Each lane's weight word w[h] (elements 16h + 4q .. + 3 of
 * the block, mq_row) gives its A pairs as bytes (0, 2) and (1, 3); the
 * activations are stored in that order (k_mmq_x_f16), so logical column
 * 16h + 2q + {0, 1, 8, 9} of the fragment is element 16h + 4q + {0, 2, 1,
 * 3}. Rounding: the weight to float16 (2^-11 relative, as the activations),
 * products and sums in float32. */

/* Bytes 0 and 2 of w (signed int8 b) as the float16 pair s * b - m: 0x6480
 * ^ (b & 0xFF) is the float16 1152 + b exactly, minus 1152 exactly is b. */
template <bool MIN>
static __device__ __forceinline__ int mh_pair(uint32_t w, __half2 s, __half2 nm) {
    const uint32_t u = (w & 0x00FF00FFu) ^ 0x64806480u, k = 0x64806480u;
    __half2 h, c;
    memcpy(&h, &u, 4);
    memcpy(&c, &k, 4);
    h = __hsub2(h, c);
    h = MIN ? __hfma2(h, s, nm) : __hmul2(h, s);
    int r;
    memcpy(&r, &h, 4);
    return r;
}

/* acc[m][n] += the block's weights times the activations' B fragments
 * bfr[n] (columns 0..15: bfr[n][0..1], 16..31: bfr[n][2..3]). */
template <int T, int MT, int NT8>
static __device__ __forceinline__ void mh_mul(float (&acc)[MT][NT8][4], const uint8_t *const (&rp)[MT][2], int64_t b,
                                              int q, const int (&bfr)[NT8][4]) {
    typedef mq<T> Q;
#pragma unroll
    for (int m = 0; m < MT; m++) {
        mq_row R[2]; /* rows g and g + 8 of this m-tile */
        Q::row(rp[m][0], b, q, R[0]);
        Q::row(rp[m][1], b, q, R[1]);
        int a[2][4]; /* the A fragments of columns 0..15 and 16..31 */
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const float sc = Q::split ? R[r].s * (float)(h ? R[r].s1 : R[r].s0) : R[r].s;
                const __half2 s2 = __float2half2_rn(sc), nm2 = __float2half2_rn(Q::has_min ? -R[r].m : 0.0f);
                a[h][r] = mh_pair<Q::has_min>((uint32_t)R[r].w[h], s2, nm2);
                a[h][2 + r] = mh_pair<Q::has_min>((uint32_t)R[r].w[h] >> 8, s2, nm2);
            }
#pragma unroll
        for (int n = 0; n < NT8; n++) {
            rfk_mma_f16_k16<true>(acc[m][n], a[0], &bfr[n][0]);
            rfk_mma_f16_k16<true>(acc[m][n], a[1], &bfr[n][2]);
        }
    }
}

/* x [n_tok][cols] to the float16 kernel's activations, xh the same shape,
 * in kcommon.cuh's rfk_xh_store layout (mh_mul's fragment order), where no
 * producer left them in scratch. One thread per 4 elements. */
__global__ void k_mmq_x_f16(const float *__restrict__ x, int64_t n_quads, uint32_t *__restrict__ xh) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_quads) return;
    rfk_xh_store(((const float4 *)x)[i], i, xh);
}

/* Rows [16 MT blockIdx.x, +16 MT) of y[t][r] for tokens [8 NT8 blockIdx.y,
 * +8 NT8) below nt. xq: nt rows of nb * 8 ints (the q8 bytes), xd: nt rows
 * of nb (d, d * sum).
 * ST (staged): the block copies the tile's rows, Q::stage_cols columns (512
 * or 1024, about 600 bytes) at a time, into shared memory with coalesced
 * 4-byte loads (the next stage's words are loaded into registers while the
 * current one is multiplied), and the groups decode their fragments from
 * there; rows must be whole 4-byte words. Otherwise each lane loads its
 * fragment words from global memory (2-byte loads spread over 8 rows). */
#define MQ_SMEM_BYTES 36864

template <int T, int MT, int NT8, bool ST>
__global__ void __launch_bounds__(MQ_BLOCK)
    k_mmq(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nb, int64_t rows, const int *__restrict__ xq,
          const float2 *__restrict__ xd, rfk_mm_out y, int nt) {
    typedef mq<T> Q;
    constexpr int R = 16 * MT;                       /* rows of the tile */
    constexpr int SW = Q::stage_bytes / 4;           /* words of a row's full stage */
    constexpr int SB = Q::stage_cols / 32;           /* its 32-column blocks */
    constexpr int PITCH = SW + 1;                    /* padded: rows g and g + 1 in other banks */
    constexpr int WPT = (R * SW + MQ_BLOCK - 1) / MQ_BLOCK; /* stage words per thread */
    constexpr int RED = MQ_GROUPS * MT * NT8 * 4 * 32;      /* floats of the groups' partial sums */
    static_assert((ST ? R * PITCH * 4 : 0) <= MQ_SMEM_BYTES && RED * 4 <= MQ_SMEM_BYTES, "shared memory");
    __shared__ __align__(16) uint32_t smem[MQ_SMEM_BYTES / 4]; /* the stage, then the partial sums */
    const int lane = threadIdx.x % 32, grp = threadIdx.x / 32, g = lane / 4, q = lane % 4;
    const int64_t r0 = (int64_t)blockIdx.x * R;
    const int tb = blockIdx.y * 8 * NT8; /* first token of the block */
    xq += (int64_t)tb * nb * 8;
    xd += (int64_t)tb * nb;
    nt -= tb;
    /* the tokens this lane reads: B column g + 8n, C columns 2q, 2q + 1 (+ 8n),
     * as offsets into xq (ints) and xd */
    const int cpt = (int)nb * 8;
    int ob[NT8], o0[NT8], o1[NT8];
#pragma unroll
    for (int n = 0; n < NT8; n++) {
        const int tk = 8 * n + g, t0 = 8 * n + 2 * q;
        ob[n] = (tk < nt ? tk : nt - 1) * cpt + q;
        o0[n] = (t0 < nt ? t0 : nt - 1) * (int)nb;
        o1[n] = (t0 + 1 < nt ? t0 + 1 : nt - 1) * (int)nb;
    }
    float acc[MT][NT8][4];
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int n = 0; n < NT8; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[m][n][i] = 0.0f;

    /* one 32-column block's B fragments and activation scales (bg: the
     * block's index in the row) */
    typedef mq_bops<NT8> bops;
    auto load_b = [&](int bg, bops &o) {
#pragma unroll
        for (int n = 0; n < NT8; n++) {
            o.bf[n][0] = xq[ob[n] + bg * 8];
            o.bf[n][1] = xq[ob[n] + bg * 8 + 4];
            o.d0[n] = xd[o0[n] + bg];
            o.d1[n] = xd[o1[n] + bg];
        }
    };
    auto mul = [&](const uint8_t *const (&rp)[MT][2], int b, const bops &o) { mq_mul<T, MT, NT8>(acc, rp, b, q, o); };

    if constexpr (ST) {
        const int64_t n_stages = (nb + SB - 1) / SB;
        uint32_t pre[WPT];
        /* thread i takes words i, i + MQ_BLOCK, ... of the stage, row-major */
        auto fetch = [&](int64_t s) {
            const int64_t off = s * Q::stage_bytes;
            const int len = (int)((int64_t)row_bytes - off < Q::stage_bytes ? ((int64_t)row_bytes - off) / 4 : SW);
#pragma unroll
            for (int i = 0; i < WPT; i++) {
                const int e = threadIdx.x + i * MQ_BLOCK, rr = e / SW, ww = e % SW;
                if (rr < R && ww < len) {
                    const int64_t r = r0 + rr < rows ? r0 + rr : rows - 1;
                    pre[i] = ((const uint32_t *)(w + (size_t)r * row_bytes + off))[ww];
                }
            }
        };
        const uint8_t *rp[MT][2];
#pragma unroll
        for (int m = 0; m < MT; m++)
#pragma unroll
            for (int h = 0; h < 2; h++) rp[m][h] = (const uint8_t *)(smem + (16 * m + 8 * h + g) * PITCH);
        fetch(0);
        for (int64_t s = 0; s < n_stages; s++) {
            __syncthreads(); /* the previous stage is consumed */
#pragma unroll
            for (int i = 0; i < WPT; i++) {
                const int e = threadIdx.x + i * MQ_BLOCK, rr = e / SW, ww = e % SW;
                if (rr < R) smem[rr * PITCH + ww] = pre[i]; /* past a partial stage: unread */
            }
            __syncthreads();
            if (s + 1 < n_stages) fetch(s + 1);
            /* the group's blocks of the stage, PU at a time: their activation
             * loads are issued together, then multiplied */
            constexpr int U = SB / MQ_GROUPS, PU = NT8 >= 4 ? 1 : U < 4 / NT8 ? U : 4 / NT8;
#pragma unroll
            for (int u0 = 0; u0 < U; u0 += PU) {
                bops o[PU];
#pragma unroll
                for (int u = 0; u < PU; u++) {
                    const int b = grp + MQ_GROUPS * (u0 + u);
                    if (s * SB + b < nb) load_b((int)(s * SB + b), o[u]);
                }
#pragma unroll
                for (int u = 0; u < PU; u++) {
                    const int b = grp + MQ_GROUPS * (u0 + u);
                    if (s * SB + b < nb) mul(rp, b, o[u]);
                }
            }
        }
        __syncthreads(); /* smem becomes the partial sums */
    } else {
        const uint8_t *rp[MT][2];
#pragma unroll
        for (int m = 0; m < MT; m++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int64_t r = r0 + 16 * m + 8 * h + g;
                rp[m][h] = w + (size_t)(r < rows ? r : rows - 1) * row_bytes;
            }
        for (int b = grp; b < (int)nb; b += MQ_GROUPS) {
            bops o;
            load_b(b, o);
            mul(rp, b, o);
        }
    }

    /* the groups' partial sums, added in a fixed order */
    float *red = (float *)smem;
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int n = 0; n < NT8; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) red[((grp * MT + m) * NT8 + n) * 128 + i * 32 + lane] = acc[m][n][i];
    __syncthreads();
    for (int e = threadIdx.x; e < MT * NT8 * 128; e += MQ_BLOCK) {
        float sum = 0.0f;
#pragma unroll
        for (int k = 0; k < MQ_GROUPS; k++) sum += red[k * MT * NT8 * 128 + e];
        const int l = e % 32, i = (e / 32) % 4, n = (e / 128) % NT8, m = e / (128 * NT8);
        const int64_t r = r0 + 16 * m + 8 * (i / 2) + l / 4;
        const int t = 8 * n + 2 * (l % 4) + (i % 2);
        if (r < rows && t < nt) rfk_mm_store(y, r, tb + t, sum);
    }
}

/* ---- the row-tiled kernel ------------------------------------------------
 * k_mmq splits K over the groups of a block, so every 16 or 32 weight rows
 * read all the activations again, by 2-byte loads spread over eight rows
 * (Nsight Compute, H100, Q4_0 14336 x 4096 at 32 tokens: 90.9 us, 12% of
 * DRAM bandwidth, L1 77% busy, waiting on loads). Here the groups of a
 * block take different rows at the same columns instead:
 *  - the block copies a stage of P::kc columns of the activations (its 8 NT8
 *    tokens' q8 words and scales) into shared memory once for its
 *    MQR_GROUPS x 16 MT rows, with 16-byte loads, the two 16-byte halves of
 *    every token's 32-byte block swapped for tokens 4..7 of each 8 so that
 *    a group's B fragment loads hit 32 different banks;
 *  - each group copies the stage of its own 16 MT weight rows into shared
 *    memory with P::v-byte loads (rows padded to a pitch of 4 mod 8 words:
 *    the A fragment loads, 8 rows x 4 lanes, hit 32 banks too);
 *  - the next stage's loads are issued into registers before the current
 *    stage is multiplied (mq_mul, the arithmetic of k_mmq).
 * Rows must be whole P::v-byte vectors (Q6_K: 4-byte words, 16-byte ones
 * in the float16 kernel; its 210-byte stages start off that grid, so a
 * stage is copied from the vector below and decoded from byte `lead` on). */
#define MQR_GROUPS 4
#define MQR_BLOCK (32 * MQR_GROUPS)

/* kc columns a stage, sby bytes of a row's stage, v-byte copies; async:
 * staged by cp.async into two buffers, else through registers into one
 * (Q6_K: its 4-byte copies and 53-word rows ran slower asynchronously, and
 * two padded buffers pass 48 KiB); mt2: 32 rows a group fit */
template <int T, bool H = false> struct mqr;
template <> struct mqr<2> { static constexpr int kc = 256, sby = 144, v = 16; static constexpr bool async = true, mt2 = true; };   /* Q4_0 */
template <> struct mqr<3> { static constexpr int kc = 256, sby = 160, v = 16; static constexpr bool async = true, mt2 = false; };  /* Q4_1 */
template <> struct mqr<8> { static constexpr int kc = 128, sby = 136, v = 8; static constexpr bool async = true, mt2 = true; };    /* Q8_0 */
template <> struct mqr<12> { static constexpr int kc = 256, sby = 144, v = 16; static constexpr bool async = true, mt2 = true; };  /* Q4_K */
template <> struct mqr<14> { static constexpr int kc = 256, sby = 210, v = 4; static constexpr bool async = false, mt2 = false; }; /* Q6_K */
/* The float16 kernel (H): its activations take 2 bytes a column, so the
 * 32-column types stage 128 columns (two buffers: 64 rows' stages, or 128
 * of Q4_0 and Q4_1, and 32 tokens' 8 KiB of activations each) and the
 * super-block types their 256 columns' weights through registers into one
 * buffer (two would pass 48 KiB beside the activations' two of 16 KiB).
 * Q6_K's rows must then be whole 16-byte vectors (K a multiple of 2048);
 * others take the int8 kernel. Their 128-row tiles (32 rows a group) stage
 * the activations in halves of 128 columns instead (mqr_xhalf), to fit. */
template <> struct mqr<2, true> { static constexpr int kc = 128, sby = 72, v = 8; static constexpr bool async = true, mt2 = true; };
template <> struct mqr<3, true> { static constexpr int kc = 128, sby = 80, v = 16; static constexpr bool async = true, mt2 = true; };
template <> struct mqr<8, true> { static constexpr int kc = 128, sby = 136, v = 8; static constexpr bool async = true, mt2 = false; };
template <> struct mqr<12, true> { static constexpr int kc = 256, sby = 144, v = 16; static constexpr bool async = false, mt2 = true; };
template <> struct mqr<14, true> { static constexpr int kc = 256, sby = 210, v = 16; static constexpr bool async = false, mt2 = true; };

/* Whether a row's stages start off the P::v-byte grid (Q6_K: 210 bytes, a
 * stage at byte s * 210): each is then copied from the vector below it and
 * decoded from byte `lead` = s * 210 mod P::v on (an even number). */
template <int T, bool H = false> __host__ __device__ constexpr bool mqr_unaligned() {
    return mqr<T, H>::sby % mqr<T, H>::v != 0;
}
/* words of a row's stage (with the largest lead, v - 2 bytes), and its
 * pitch, padded to 4 mod 8 words */
template <int T, bool H = false> __host__ __device__ constexpr int mqr_words() {
    return mqr_unaligned<T, H>() ? (mqr<T, H>::sby + mqr<T, H>::v - 2 + mqr<T, H>::v - 1) / mqr<T, H>::v * (mqr<T, H>::v / 4)
                                 : mqr<T, H>::sby / 4;
}
__host__ __device__ constexpr int mqr_pad(int w) { return w % 8 == 4 ? w : mqr_pad(w + 1); }
template <int T, bool H = false> __host__ __device__ constexpr int mqr_pitch() { return mqr_pad(mqr_words<T, H>()); }

/* Whether rows of row_bytes at w take the row-tiled kernel. */
template <int T, bool H = false> static bool mqr_fits(const uint8_t *w, size_t row_bytes) {
    return row_bytes % mqr<T, H>::v == 0 && ((uintptr_t)w % mqr<T, H>::v) == 0;
}

/* The K split's sum (grid z > 1): the gridDim.z blocks of an output tile
 * (blockIdx.x, .y) each hold a partial sum of its NF float4s a thread.
 * Each stores its own at part[tile][z][thread], then counts itself in on
 * the tile's ticket; the last to arrive adds the gridDim.z partials in z
 * order (so the result does not depend on which block came last), puts
 * the ticket back to 0 and returns true, holding the sum in acc, to store
 * y; the others return false. */
template <int NF> static __device__ __forceinline__ bool mqr_sum(float *acc, float *part, int *tickets) {
    __shared__ int last;
    const int64_t tile = (int64_t)blockIdx.y * gridDim.x + blockIdx.x;
    float4 *mine = (float4 *)part + ((tile * gridDim.z + blockIdx.z) * MQR_BLOCK + threadIdx.x) * NF;
#pragma unroll
    for (int i = 0; i < NF; i++) mine[i] = make_float4(acc[4 * i], acc[4 * i + 1], acc[4 * i + 2], acc[4 * i + 3]);
    __threadfence(); /* the partial is visible before the ticket counts it */
    __syncthreads();
    if (threadIdx.x == 0) last = atomicAdd(&tickets[tile], 1) == (int)gridDim.z - 1;
    __syncthreads();
    if (!last) return false;
    __threadfence(); /* and read after it */
    const float4 *p = (const float4 *)part + (tile * gridDim.z * MQR_BLOCK + threadIdx.x) * NF;
#pragma unroll
    for (int i = 0; i < 4 * NF; i++) acc[i] = 0.0f;
    for (unsigned z = 0; z < gridDim.z; z++) {
#pragma unroll
        for (int i = 0; i < NF; i++) {
            const float4 v = rfk_ld_l2(p + (size_t)z * MQR_BLOCK * NF + i);
            acc[4 * i] += v.x, acc[4 * i + 1] += v.y, acc[4 * i + 2] += v.z, acc[4 * i + 3] += v.w;
        }
    }
    if (threadIdx.x == 0) tickets[tile] = 0;
    return true;
}

/* Resident blocks a multiprocessor that the compiler must leave room for:
 * 3 for the float16 kernel's 64-row x 32-token tiles of the super-block
 * types (their weights pass through registers: 210 - 225 registers
 * unbounded, two blocks; at 168 three fit without spilling, at 128 they
 * spill; their 128-row tiles take 230 - 253 and spill 136 - 288 bytes at
 * 168), else 1. */
template <int T, int MT, int NT8, bool H> __host__ __device__ constexpr int mqr_min_blocks() {
    return H && MT == 1 && NT8 == 4 && !mqr<T, H>::async ? 3 : 1;
}

/* Whether a tile's activations are staged in two halves of P::kc / 2
 * columns a stage (the float16 kernel's 128-row tiles of the types whose
 * weights pass through registers: a whole stage's two buffers would pass
 * 48 KiB beside 128 rows of weights). */
template <int T, int MT, bool H> __host__ __device__ constexpr bool mqr_xhalf() {
    return H && MT == 2 && !mqr<T, H>::async;
}

/* The float16 kernel's activations in shared memory: each token's stage
 * a row of XC 16-byte chunks, chunk c of token t at column c ^ (t % 8), so
 * that the ldmatrix rows of 8 tokens (one chunk each) hit 32 banks without
 * padding. mh_ldx gives a lane the B fragments (rfk_ldsm_x4's r) of block
 * j for the 8 tokens whose rows start at x8. */
template <int XC> static __device__ __forceinline__ int mh_xcol(int t, int c) { return t * XC + (c ^ (t % 8)); }

template <int XC> static __device__ __forceinline__ void mh_ldx(int r[4], const uint4 *x8, int j) {
    rfk_ldsm_x4_at<true>(r, [=](int k, int i) { return x8 + mh_xcol<XC>(k, 4 * j + i); });
}

/* H: the float16 variant (mh_mul): xq is then the float16 activations of
 * k_mmq_x_f16, xd unused, and they are always staged by cp.async into two
 * buffers (mh_xcol's order); types whose weights go through registers
 * (not P::async) keep one weight buffer. */
template <int T, int MT, int NT8, bool H = false>
__global__ void __launch_bounds__(MQR_BLOCK, (mqr_min_blocks<T, MT, NT8, H>()))
    k_mmq_rows(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nb, int64_t rows, const int *__restrict__ xq,
               const float2 *__restrict__ xd, rfk_mm_out y, int nt, float *__restrict__ part, int *__restrict__ tickets) {
    typedef mqr<T, H> P;
    constexpr int V = P::v, VW = V / 4, KB = P::kc / 32, NTOK = 8 * NT8, RW = 16 * MT;
    constexpr int NW = mqr_words<T, H>(), PITCH = mqr_pitch<T, H>(), NV = NW / VW;
    static_assert(NW % VW == 0, "a row's stage is whole vectors");
    constexpr bool XH = mqr_xhalf<T, MT, H>();                      /* activations in half stages */
    constexpr int XC = KB * 4 / (XH ? 2 : 1);                        /* H: a token's 16-byte chunks a buffer */
    constexpr int WV = (RW * NV + 31) / 32;                          /* weight vectors per lane */
    constexpr int AV = H ? (NTOK * XC + MQR_BLOCK - 1) / MQR_BLOCK   /* activation 16-byte chunks per thread */
                         : (NTOK * KB * 2 + MQR_BLOCK - 1) / MQR_BLOCK;
    constexpr int DV = H ? 1 : (NTOK * KB + MQR_BLOCK - 1) / MQR_BLOCK; /* activation scales per thread */
    constexpr int NBUF = P::async ? 2 : 1, XBUF = P::async || H ? 2 : 1;
    static_assert(!H || XC % 8 == 0, "mh_xcol's swizzle stays within a token's row");
    __shared__ __align__(16) uint32_t ws[NBUF][MQR_GROUPS][RW * PITCH];
    __shared__ __align__(16) uint4 xs[XBUF][H ? NTOK * XC : KB * NTOK * 2];
    __shared__ __align__(16) float2 ds[NBUF][H ? 1 : KB * NTOK];
    const int lane = threadIdx.x % 32, grp = threadIdx.x / 32, g = lane / 4, q = lane % 4;
    const int64_t r0 = (int64_t)blockIdx.x * (MQR_GROUPS * RW) + grp * RW; /* the group's first row */
    const int tb = blockIdx.y * NTOK;
    const int64_t all_stages = (nb + KB - 1) / KB, row_vecs = (int64_t)(row_bytes / V);
    /* K split over grid z (mqr_sum): this block's stages */
    const int64_t s_begin = blockIdx.z * all_stages / gridDim.z, n_stages = (blockIdx.z + 1) * all_stages / gridDim.z;
    nt -= tb;

    /* stage s into buffer bf, asynchronously: the group's rows (clamped to
     * the last row), the block's tokens (clamped to the last token); words
     * past a row's end or blocks past nb are left as they were (unread).
     * issue_x: the activations alone (H), into xs[bf] (XH: s counts half
     * stages). */
    auto issue_x = [&](int64_t s, int bf) {
#pragma unroll
        for (int i = 0; i < AV; i++) {
            const int e = threadIdx.x + MQR_BLOCK * i, c = e % XC, t = e / XC;
            if (t < NTOK && s * (XC / 4) + c / 4 < nb)
                rfk_cp_async<16>(&xs[bf][mh_xcol<XC>(t, c)],
                                 (const uint4 *)xq + (int64_t)(tb + (t < nt ? t : nt - 1)) * nb * 4 + s * XC + c);
        }
    };
    auto issue = [&](int64_t s, int bf) {
        const int64_t v0 = (s * P::sby) / V;
#pragma unroll
        for (int i = 0; i < WV; i++) {
            const int e = lane + 32 * i, rr = e / NV, vv = e % NV;
            const int64_t r = r0 + rr < rows ? r0 + rr : rows - 1;
            if (rr < RW && v0 + vv < row_vecs)
                rfk_cp_async<V>(&ws[bf][grp][rr * PITCH + vv * VW], w + (size_t)r * row_bytes + (v0 + vv) * V);
        }
        if constexpr (H) {
            issue_x(s, bf);
        } else {
#pragma unroll
            for (int i = 0; i < AV; i++) {
                const int e = threadIdx.x + MQR_BLOCK * i, h = e % 2, j = (e / 2) % KB, t = e / (2 * KB);
                const int64_t b = s * KB + j;
                if (t < NTOK && b < nb)
                    rfk_cp_async<16>(&xs[bf][(j * NTOK + t) * 2 + (h ^ ((t >> 2) & 1))],
                                     (const uint4 *)xq + ((int64_t)(tb + (t < nt ? t : nt - 1)) * nb + b) * 2 + h);
            }
#pragma unroll
            for (int i = 0; i < DV; i++) {
                const int e = threadIdx.x + MQR_BLOCK * i, j = e % KB, t = e / KB;
                const int64_t b = s * KB + j;
                if (t < NTOK && b < nb)
                    rfk_cp_async<8>(&ds[bf][j * NTOK + t], xd + (int64_t)(tb + (t < nt ? t : nt - 1)) * nb + b);
            }
        }
        rfk_cp_async_commit();
    };
    float acc[MT][NT8][4];
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int n = 0; n < NT8; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[m][n][i] = 0.0f;
    const int sw = (g >> 2) & 1; /* the half swap of this lane's tokens 8n + g */

    /* stage s's products from weight buffer bf, activation buffer xb, of
     * its blocks [j0, j0 + JN) (XH: one half, whose activations xb holds) */
    constexpr int JN = XH ? KB / 2 : KB;
    auto multiply = [&](int bf, int xb, int64_t s, int j0) {
        const int lead = mqr_unaligned<T, H>() ? (int)((s * P::sby) % V) : 0;
        const uint8_t *rp[MT][2];
#pragma unroll
        for (int m = 0; m < MT; m++)
#pragma unroll
            for (int h = 0; h < 2; h++) rp[m][h] = (const uint8_t *)&ws[bf][grp][(16 * m + 8 * h + g) * PITCH] + lead;
        constexpr int JU = T != 14 ? KB : H ? 2 : 1; /* Q6_K unrolled spills registers */
#pragma unroll JU
        for (int jj = 0; jj < JN; jj++) {
            const int j = j0 + jj;
            if (s * KB + j >= nb) break;
            if constexpr (H) {
                int bfr[NT8][4];
#pragma unroll
                for (int n = 0; n < NT8; n++) mh_ldx<XC>(bfr[n], &xs[xb][8 * n * XC], jj);
                mh_mul<T, MT, NT8>(acc, rp, j, q, bfr);
            } else {
                mq_bops<NT8> o;
#pragma unroll
                for (int n = 0; n < NT8; n++) {
                    const uint32_t *xw = (const uint32_t *)&xs[xb][(j * NTOK + 8 * n + g) * 2];
                    o.bf[n][0] = (int)xw[4 * sw + q];
                    o.bf[n][1] = (int)xw[4 * (sw ^ 1) + q];
                    const float4 dd = *(const float4 *)&ds[xb][j * NTOK + 8 * n + 2 * q];
                    o.d0[n] = make_float2(dd.x, dd.y);
                    o.d1[n] = make_float2(dd.z, dd.w);
                }
                mq_mul<T, MT, NT8>(acc, rp, j, q, o);
            }
        }
    };

    if constexpr (P::async) {
        /* two buffers: stage s + 1 lands while stage s is multiplied */
        issue(s_begin, 0);
        for (int64_t s = s_begin; s < n_stages; s++) {
            const int bf = (int)((s - s_begin) & 1);
            if (s + 1 < n_stages) {
                issue(s + 1, bf ^ 1); /* its buffer was last read before the barrier ending the previous stage */
                rfk_cp_async_wait<1>();
            } else {
                rfk_cp_async_wait<0>();
            }
            __syncthreads(); /* stage s has landed for every thread */
            multiply(bf, bf, s, 0);
            __syncthreads(); /* buffer bf is free for stage s + 2 */
        }
    } else {
        /* one buffer: stage s + 1 is loaded into registers while stage s is
         * multiplied, then stored (H: the weights; the activations land by
         * cp.async in two buffers meanwhile) */
        typedef typename rfk_bytes<V>::type wvec;
        wvec wpre[WV];
        uint4 apre[H ? 1 : AV];
        float2 dpre[DV];
        auto fetch = [&](int64_t s) {
            const int64_t v0 = (s * P::sby) / V;
#pragma unroll
            for (int i = 0; i < WV; i++) {
                const int e = lane + 32 * i, rr = e / NV, vv = e % NV;
                const int64_t r = r0 + rr < rows ? r0 + rr : rows - 1;
                if (rr < RW && v0 + vv < row_vecs) wpre[i] = ((const wvec *)(w + (size_t)r * row_bytes))[v0 + vv];
            }
            if constexpr (!H) {
#pragma unroll
                for (int i = 0; i < AV; i++) {
                    const int e = threadIdx.x + MQR_BLOCK * i, h = e % 2, j = (e / 2) % KB, t = e / (2 * KB);
                    const int64_t b = s * KB + j;
                    if (t < NTOK && b < nb)
                        apre[i] = ((const uint4 *)xq)[((int64_t)(tb + (t < nt ? t : nt - 1)) * nb + b) * 2 + h];
                }
#pragma unroll
                for (int i = 0; i < DV; i++) {
                    const int e = threadIdx.x + MQR_BLOCK * i, j = e % KB, t = e / KB;
                    const int64_t b = s * KB + j;
                    if (t < NTOK && b < nb) dpre[i] = xd[(int64_t)(tb + (t < nt ? t : nt - 1)) * nb + b];
                }
            }
        };
        if constexpr (H) {
            issue_x(XH ? 2 * s_begin : s_begin, 0);
            rfk_cp_async_commit();
        }
        fetch(s_begin);
        for (int64_t s = s_begin; s < n_stages; s++) {
            const int xb = H && !XH ? (int)((s - s_begin) & 1) : 0;
            __syncthreads(); /* the previous stage is consumed */
#pragma unroll
            for (int i = 0; i < WV; i++) {
                const int e = lane + 32 * i, rr = e / NV, vv = e % NV;
                if (rr < RW) *(wvec *)&ws[0][grp][rr * PITCH + vv * VW] = wpre[i]; /* past a row's end: unread */
            }
            if constexpr (XH) {
                /* half 2s is in (or on its way to) buffer 0; 2s + 1 goes to
                 * buffer 1, last read by stage s - 1's second half */
                issue_x(2 * s + 1, 1);
                rfk_cp_async_commit();
                rfk_cp_async_wait<1>();
                __syncthreads(); /* the weights and half 2s are in for every thread */
                if (s + 1 < n_stages) fetch(s + 1);
                multiply(0, 0, s, 0);
                rfk_cp_async_wait<0>();
                __syncthreads(); /* half 2s + 1 is in; buffer 0 is read */
                if (s + 1 < n_stages) {
                    issue_x(2 * s + 2, 0);
                    rfk_cp_async_commit();
                }
                multiply(0, 1, s, KB / 2);
                continue;
            } else if constexpr (H) {
                if (s + 1 < n_stages) {
                    issue_x(s + 1, xb ^ 1); /* its buffer was last read by stage s - 1, before the barrier above */
                    rfk_cp_async_commit();
                    rfk_cp_async_wait<1>();
                } else {
                    rfk_cp_async_wait<0>();
                }
            } else {
#pragma unroll
                for (int i = 0; i < AV; i++) {
                    const int e = threadIdx.x + MQR_BLOCK * i, h = e % 2, j = (e / 2) % KB, t = e / (2 * KB);
                    if (t < NTOK) xs[0][(j * NTOK + t) * 2 + (h ^ ((t >> 2) & 1))] = apre[i];
                }
#pragma unroll
                for (int i = 0; i < DV; i++) {
                    const int e = threadIdx.x + MQR_BLOCK * i, j = e % KB, t = e / KB;
                    if (t < NTOK) ds[0][j * NTOK + t] = dpre[i];
                }
            }
            __syncthreads();
            if (s + 1 < n_stages) fetch(s + 1);
            multiply(0, xb, s, 0);
        }
    }
    if (gridDim.z > 1 && !mqr_sum<MT * NT8>(&acc[0][0][0], part, tickets)) return;
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int n = 0; n < NT8; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int64_t r = r0 + 16 * m + 8 * (i / 2) + g;
                const int t = 8 * n + 2 * q + (i % 2);
                if (r < rows && t < nt) rfk_mm_store(y, r, tb + t, acc[m][n][i]);
            }
}

/* ---- launch -------------------------------------------------------------- */

/* Switches for comparing configurations (op_suite --bench-batch): set and
 * not "0"; each use keeps its first reading. */
static bool mmq_env(const char *name) {
    const char *e = getenv(name);
    return e && e[0] && e[0] != '0';
}

template <int T, int MT, int NT8>
static int mmq_launch(const rfk_ctx *ctx, void *stream, const uint8_t *w, size_t row_bytes, int64_t nb, int64_t rows,
                      const int *xq, const float2 *xd, const rfk_mm_out &y, int nt) {
    const rfk_dim3 grid = rfk_d3((rows + 16 * MT - 1) / (16 * MT), (nt + 8 * NT8 - 1) / (8 * NT8));
    /* Staging pays at 8-16 tokens for every type and at 32 for the K-quants;
     * the 32-block types ran 14336x4096 at 32 tokens faster unstaged (H200:
     * Q4_0 76 vs 94 us, Q8_0 96 vs 127; Q4_K 102 staged vs 105, Q6_K 121 vs
     * 148). ROCMFORGE_GPU_MMQ_DIRECT: never staged. */
    static const bool direct = mmq_env("ROCMFORGE_GPU_MMQ_DIRECT");
    if (row_bytes % 4 == 0 && ((uintptr_t)w & 3) == 0 && !direct && (MT == 1 || mq<T>::stage_mt2)) {
        RFK_LAUNCH(ctx, "mmq", (k_mmq<T, MT, NT8, true>), grid, rfk_d3(MQ_BLOCK), 0, stream, w, row_bytes, nb, rows,
                   xq, xd, y, nt);
    } else {
        RFK_LAUNCH(ctx, "mmq", (k_mmq<T, MT, NT8, false>), grid, rfk_d3(MQ_BLOCK), 0, stream, w, row_bytes, nb, rows,
                   xq, xd, y, nt);
    }
    return RFK_OK;
}

/* Tokens per block: 8, 16 or 32 (two row tiles per group then, so the
 * activation words are read once for 32 rows); more than 32 tokens take
 * blocks of 32 side by side (grid y), each reading the weights. */
template <int T>
static int mmq_type(const rfk_ctx *ctx, void *stream, const uint8_t *w, size_t row_bytes, int64_t nb, int64_t rows,
                    const int *xq, const float2 *xd, const rfk_mm_out &y, int nt) {
    if (nt <= 8) return mmq_launch<T, 1, 1>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt);
    if (nt <= 16) return mmq_launch<T, 1, 2>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt);
    static const bool mt1 = mmq_env("ROCMFORGE_GPU_MMQ_MT1"); /* one row tile per group at 32 tokens */
    if (mt1) return mmq_launch<T, 1, 4>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt);
    return mmq_launch<T, 2, 4>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt);
}

template <int T, int MT, int NT8, bool H>
static int mqr_launch(const rfk_ctx *ctx, void *stream, const uint8_t *w, size_t row_bytes, int64_t nb, int64_t rows,
                      const int *xq, const float2 *xd, const rfk_mm_out &y, int nt, int ks) {
    const rfk_dim3 grid = rfk_d3((rows + 64 * MT - 1) / (64 * MT), (nt + 8 * NT8 - 1) / (8 * NT8), ks);
    int *tickets = (int *)ctx->mmq_split;
    float *part = ks > 1 ? (float *)((uint8_t *)ctx->mmq_split + RFK_MMQ_TICKETS * sizeof(int)) : NULL;
    RFK_LAUNCH(ctx, H ? "mmq_rows_f16" : "mmq_rows", (k_mmq_rows<T, MT, NT8, H>), grid, rfk_d3(MQR_BLOCK), 0, stream, w,
               row_bytes, nb, rows, xq, xd, y, nt, part, tickets);
    return RFK_OK;
}

/* The row-tiled kernel's tile: the fewest 8s of tokens that hold the batch
 * (at most 32; more take blocks side by side) by 128 rows (types with mt2,
 * up to 16 tokens; and 32 for the float16 kernel, H200 Q4_0 28672 x 4096:
 * 59.6 against 65.6 us with 64 rows; ROCMFORGE_GPU_MMQ_H_MT2=0: never)
 * where that leaves a block for every multiprocessor, else 64. A grid
 * still short of that waits on latency, so with ctx->mmq_split the tile's
 * K is split over ks blocks (mqr_sum), as many as keep the grid within the
 * resident blocks (mqr_occ), at most 8 and two stages each
 * (ROCMFORGE_GPU_MMQ_KS=n: n, on any grid; =1, never). H100, us, 32 tokens, 128 rows
 * unsplit / 64 split: Q4_0 4096 x 14336 74.9 / 38.4, 6144 x 4096 31.4 /
 * 24.3; Q6_K (64 rows) 4096 x 14336 144.8 / 79.3; 8 tokens, Q4_0 4096 x
 * 14336 54.1 / 24.6. Grids of a block a multiprocessor or more lost by
 * splitting (Q4_0 28672 x 4096: 59.2 against 70.7 in two). Without the
 * buffer, while the grid has fewer blocks than multiprocessors: half the
 * tokens (each block then reads its rows' weights for fewer tokens, the
 * other blocks of those rows from L2). */
struct mqr_tile {
    int mt, nt8, ks;
};

static int mmq_env_int(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && atoi(e) > 0 ? atoi(e) : dflt;
}

size_t rfk_mmq_split_bytes(int n_units) {
    /* blocks of up to 128 threads x 32 floats, 8 resident a multiprocessor */
    return RFK_MMQ_TICKETS * sizeof(int) + (size_t)(n_units > 0 ? n_units : 1) * 8 * MQR_BLOCK * 32 * sizeof(float);
}

/* Calls X(M, N) for each tile (MT, NT8) of k_mmq_rows<T, ., ., H> there is. */
#define MQR_TILES(X)                      \
    if constexpr (H && mqr<T, H>::mt2) {  \
        X(2, 4)                           \
    }                                     \
    if constexpr (mqr<T, H>::mt2) {       \
        X(2, 2) X(2, 1)                   \
    }                                     \
    X(1, 4) X(1, 2) X(1, 1)

/* Resident blocks a multiprocessor of the tile's kernel: the runtime's
 * figure (asked once a kernel), else 4; ROCMFORGE_GPU_MMQ_OCC overrides. */
template <int T, bool H> static int mqr_occ(int mt, int nt8) {
    static const int env = mmq_env_int("ROCMFORGE_GPU_MMQ_OCC", 0);
    if (env) return env;
    int occ = 0;
#define MQR_OCC(M, N)                                                                     \
    if (mt == M && nt8 == N) {                                                            \
        static const int n = rfk_occupancy(k_mmq_rows<T, M, N, H>, MQR_BLOCK);           \
        occ = n;                                                                          \
    }
    MQR_TILES(MQR_OCC)
#undef MQR_OCC
    return occ > 0 ? occ : 4;
}

template <int T, bool H = false> static mqr_tile mqr_choose(const rfk_ctx *ctx, int64_t nb, int64_t rows, int nt) {
    typedef mqr<T, H> P;
    static const int ks_env = mmq_env_int("ROCMFORGE_GPU_MMQ_KS", 0);
    static const bool h_mt2 = !getenv("ROCMFORGE_GPU_MMQ_H_MT2") || mmq_env("ROCMFORGE_GPU_MMQ_H_MT2");
    const int64_t units = ctx->n_units > 0 ? ctx->n_units : 1;
    auto blocks = [&](int mt, int nt8) { return ((rows + 64 * mt - 1) / (64 * mt)) * ((nt + 8 * nt8 - 1) / (8 * nt8)); };
    int nt8 = nt <= 8 ? 1 : nt <= 16 ? 2 : 4;
    /* 128 rows x 32 tokens: 64 KiB of int8 buffers; Q4_1's and Q6_K's rows are wider */
    int mt = P::mt2 && (nt8 < 4 || (H && h_mt2)) && blocks(2, nt8) >= units ? 2 : 1;
    const int64_t tiles = blocks(mt, nt8), stages = (nb + P::kc / 32 - 1) / (P::kc / 32);
    if (ks_env == 1 || (tiles >= units && !ks_env)) return mqr_tile{mt, nt8, 1};
    /* the K split: partial sums of MT x NT8 float4s a thread */
    const size_t part = (size_t)MQR_BLOCK * mt * nt8 * sizeof(float4);
    const int64_t room = ctx->mmq_split && ctx->mmq_split_bytes > RFK_MMQ_TICKETS * sizeof(int)
                             ? (int64_t)((ctx->mmq_split_bytes - RFK_MMQ_TICKETS * sizeof(int)) / part)
                             : 0;
    if (room >= 2 * tiles && tiles <= RFK_MMQ_TICKETS) {
        int64_t ks = ks_env ? ks_env : units * mqr_occ<T, H>(mt, nt8) / tiles;
        if (ks > 8) ks = 8;
        if (ks > stages / 2) ks = stages / 2;
        if (ks * tiles > room) ks = room / tiles;
        return mqr_tile{mt, nt8, ks > 1 ? (int)ks : 1};
    }
    if (tiles >= units) return mqr_tile{mt, nt8, 1};
    while (nt8 > 1 && blocks(1, nt8) < units) nt8 /= 2;
    return mqr_tile{mt, nt8, 1};
}

template <int T, bool H = false>
static int mqr_type(const rfk_ctx *ctx, void *stream, const uint8_t *w, size_t row_bytes, int64_t nb, int64_t rows,
                    const int *xq, const float2 *xd, const rfk_mm_out &y, int nt) {
    const mqr_tile tl = mqr_choose<T, H>(ctx, nb, rows, nt);
    const int mt = tl.mt, nt8 = tl.nt8, ks = tl.ks;
#define MQR_CASE(M, N) \
    if (mt == M && nt8 == N) return mqr_launch<T, M, N, H>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt, ks);
    MQR_TILES(MQR_CASE)
#undef MQR_CASE
    return RFK_E_INVAL; /* not reached */
}

/* The row-tiled kernel where the rows fit it (ROCMFORGE_GPU_MMQ_V1: never),
 * else k_mmq. */
template <int T>
static int mmq_pick(const rfk_ctx *ctx, void *stream, const uint8_t *w, size_t row_bytes, int64_t nb, int64_t rows,
                    const int *xq, const float2 *xd, const rfk_mm_out &y, int nt) {
    static const bool v1 = mmq_env("ROCMFORGE_GPU_MMQ_V1");
    if (!v1 && mqr_fits<T>(w, row_bytes)) return mqr_type<T>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt);
    return mmq_type<T>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt);
}

bool rfk_mmq_supports(uint32_t type) { return type == 2 || type == 3 || type == 8 || type == 12 || type == 14; }

/* ---- the float16 products' entry ------------------------------------------ */

/* 1: float16 always (ctx->mmq_f16 1, or ROCMFORGE_GPU_MMQ_F16=1), 0:
 * never (2, or =0), else -1: where the build's targets have the
 * instruction (CUDA: sm_80 and later; HIP would run the emulation) and
 * the tile keeps 32 tokens (below). */
static int mmq_f16_mode(const rfk_ctx *ctx) {
    if (ctx->mmq_f16) return ctx->mmq_f16 == 1 ? 1 : 0;
    static const int env = [] {
        const char *e = getenv("ROCMFORGE_GPU_MMQ_F16");
        return e && e[0] ? (e[0] != '0' ? 1 : 0) : -1;
    }();
    if (env >= 0) return env;
#if defined(RF_GPU_CUDA)
    return -1;
#else
    return 0;
#endif
}

/* By default the float16 kernel takes only the tiles of 32 tokens: with
 * fewer its activations (twice the int8 bytes) cost more than the
 * epilogue it saves (H200, us, int8 / float16: Q4_0 14336 x 4096 at 16
 * tokens 31.4 / 38.6, 4096 x 4096 at 32 (16-token tiles) 21.4 / 25.0;
 * 32-token tiles: 14336 x 4096 48.2 / 41.5, 28672 x 4096 75.8 / 66.0,
 * 6144 x 4096 29.9 / 26.7). */
template <int T>
static bool mmq_f16_fits_t(const rfk_ctx *ctx, int mode, const uint8_t *w, size_t row_bytes, int64_t nb, int64_t rows,
                           int nt) {
    if (!mqr_fits<T, true>(w, row_bytes)) return false;
    return mode == 1 || mqr_choose<T, true>(ctx, nb, rows, nt).nt8 == 4;
}

bool rfk_mmq_f16_fits(const rfk_ctx *ctx, uint32_t type, const uint8_t *w, size_t row_bytes, int64_t cols,
                      int64_t rows, int64_t n_tok) {
    const int mode = mmq_f16_mode(ctx);
    if (!mode || cols % 32 || n_tok < 1 || n_tok > RFK_MMQ_MAX_N) return false;
    const int64_t nb = cols / 32;
    const int nt = (int)n_tok;
    switch (type) {
    case 2: return mmq_f16_fits_t<2>(ctx, mode, w, row_bytes, nb, rows, nt);
    case 3: return mmq_f16_fits_t<3>(ctx, mode, w, row_bytes, nb, rows, nt);
    case 8: return mmq_f16_fits_t<8>(ctx, mode, w, row_bytes, nb, rows, nt);
    case 12: return mmq_f16_fits_t<12>(ctx, mode, w, row_bytes, nb, rows, nt);
    case 14: return mmq_f16_fits_t<14>(ctx, mode, w, row_bytes, nb, rows, nt);
    default: return false;
    }
}

int rfk_mmq_f16(const rfk_ctx *ctx, void *stream, uint32_t type, const uint8_t *w, size_t row_bytes, int64_t cols,
                int64_t rows, const float *x, uint16_t *xh, const rfk_mm_out &y, int64_t n_tok) {
    if (n_tok < 1 || n_tok > RFK_MMQ_MAX_N || cols % 32 || rows < 1 || cols > ((int64_t)1 << 26) || !xh ||
        ((uintptr_t)x & 15) || ((uintptr_t)xh & 15) || !rfk_mmq_f16_fits(ctx, type, w, row_bytes, cols, rows, n_tok))
        return RFK_E_INVAL;
    const int64_t nb = cols / 32, n_quads = n_tok * cols / 4;
    if (x) /* else a producer wrote xh */
        RFK_LAUNCH(ctx, "mmq_x_f16", k_mmq_x_f16, rfk_d3((n_quads + 255) / 256), rfk_d3(256), 0, stream, x, n_quads,
                   (uint32_t *)xh);
    const int *xa = (const int *)xh;
    const int nt = (int)n_tok;
    switch (type) {
    case 2: return mqr_type<2, true>(ctx, stream, w, row_bytes, nb, rows, xa, NULL, y, nt);
    case 3: return mqr_type<3, true>(ctx, stream, w, row_bytes, nb, rows, xa, NULL, y, nt);
    case 8: return mqr_type<8, true>(ctx, stream, w, row_bytes, nb, rows, xa, NULL, y, nt);
    case 12: return mqr_type<12, true>(ctx, stream, w, row_bytes, nb, rows, xa, NULL, y, nt);
    case 14: return mqr_type<14, true>(ctx, stream, w, row_bytes, nb, rows, xa, NULL, y, nt);
    default: return RFK_E_UNSUPPORTED;
    }
}

int rfk_mmq(const rfk_ctx *ctx, void *stream, uint32_t type, const uint8_t *w, size_t row_bytes, int64_t cols,
            int64_t rows, const int *xq, const float2 *xd, const rfk_mm_out &y, int64_t n_tok) {
    /* offsets into xq are ints: 64 tokens of up to 2^26 columns */
    if (n_tok < 1 || n_tok > RFK_MMQ_MAX_N || cols % 32 || rows < 1 || cols > ((int64_t)1 << 26)) return RFK_E_INVAL;
    const int64_t nb = cols / 32;
    const int nt = (int)n_tok;
    switch (type) {
    case 2: return mmq_pick<2>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt);
    case 3: return mmq_pick<3>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt);
    case 8: return mmq_pick<8>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt);
    case 12: return mmq_pick<12>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt);
    case 14: return mmq_pick<14>(ctx, stream, w, row_bytes, nb, rows, xq, xd, y, nt);
    default: return RFK_E_UNSUPPORTED;
    }
}

/* ---- the primitive's self-test -------------------------------------------
 * One group: the k32 and k16 products of random int8 fragments through the
 * instruction (where the target has it) and through the emulation. */
__global__ void k_mma_selftest(const int *__restrict__ a, const int *__restrict__ b, int *__restrict__ out) {
    const int l = threadIdx.x % 32;
    if (threadIdx.x >= 32) return;
    const int av[4] = {a[4 * l], a[4 * l + 1], a[4 * l + 2], a[4 * l + 3]}, bv[2] = {b[2 * l], b[2 * l + 1]};
    int c[4][4] = {{1, 2, 3, 4}, {1, 2, 3, 4}, {-5, 6, -7, 8}, {-5, 6, -7, 8}};
    rfk_mma_i8_k32<true>(c[0], av, bv);
    rfk_mma_i8_k32<false>(c[1], av, bv);
    rfk_mma_i8_k16<true>(c[2], av, bv[0]);
    rfk_mma_i8_k16<false>(c[3], av, bv[0]);
#pragma unroll
    for (int k = 0; k < 4; k++)
#pragma unroll
        for (int i = 0; i < 4; i++) out[(k * 32 + l) * 4 + i] = c[k][i];
}

extern "C" int rfk_mma_selftest(const rfk_ctx *ctx, void *stream, const int *a, const int *b, int *out) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    if (!a || !b || !out) return RFK_E_INVAL;
    RFK_LAUNCH(ctx, "mma_selftest", k_mma_selftest, rfk_d3(1), rfk_d3(ctx->warp_size), 0, stream, a, b, out);
    return RFK_OK;
}

/* The float16 primitive the same way: one group's k16 product of float16
 * fragments a [32 lanes][4], b [32][2] through the instruction (where the
 * target has it) and the emulation, each onto starting sums 1, -2, 3, -4;
 * out [2][32 lanes][4] floats. Then the fragment load: lane l's four words
 * of rfk_ldsm_x4 from a 16 x 40-half matrix (the first 8 rows x 32
 * columns of m [8][40] in shared memory), instruction and emulation, into
 * ld [2][32][4]. */
__global__ void k_mma_f16_selftest(const int *__restrict__ a, const int *__restrict__ b, const uint16_t *__restrict__ m,
                                   float *__restrict__ out, int *__restrict__ ld) {
    __shared__ __align__(16) uint16_t sm[8 * 40];
    const int l = threadIdx.x % 32;
    if (threadIdx.x >= 32) return;
    for (int i = l; i < 8 * 40; i += 32) sm[i] = m[i];
    rfk_syncwarp();
    const int av[4] = {a[4 * l], a[4 * l + 1], a[4 * l + 2], a[4 * l + 3]}, bv[2] = {b[2 * l], b[2 * l + 1]};
    float c[2][4] = {{1.0f, -2.0f, 3.0f, -4.0f}, {1.0f, -2.0f, 3.0f, -4.0f}};
    rfk_mma_f16_k16<true>(c[0], av, bv);
    rfk_mma_f16_k16<false>(c[1], av, bv);
    int r[2][4];
    rfk_ldsm_x4<true>(r[0], sm, 40);
    rfk_ldsm_x4<false>(r[1], sm, 40);
#pragma unroll
    for (int k = 0; k < 2; k++)
#pragma unroll
        for (int i = 0; i < 4; i++) out[(k * 32 + l) * 4 + i] = c[k][i], ld[(k * 32 + l) * 4 + i] = r[k][i];
}

extern "C" int rfk_mma_f16_selftest(const rfk_ctx *ctx, void *stream, const int *a, const int *b, const uint16_t *m,
                                    float *out, int *ld) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    if (!a || !b || !m || !out || !ld) return RFK_E_INVAL;
    RFK_LAUNCH(ctx, "mma_selftest", k_mma_f16_selftest, rfk_d3(1), rfk_d3(ctx->warp_size), 0, stream, a, b, m, out, ld);
    return RFK_OK;
}
