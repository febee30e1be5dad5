/*
 * matmul.cu - y[t][r] = sum_c W[r][c] * x[t][c] for quantized and float
 * weights, and get_rows (dequantize embedding rows by id).
 *
 * Three kernels, chosen by n_tok:
 *  - mat-vec (n_tok 1..8 per launch; n_tok up to 64 in up to 8 launches): one
 *    warp per weight row, four lanes per 32-element chunk, each decoding
 *    eight weights into registers (fused dequantize, nothing staged through
 *    memory) and dotting them with up to NT float32 activation rows; a
 *    warp-shuffle sum per row. Weights are read once per launch, which is
 *    what decode is bound by.
 *  - tiled (n_tok > 64): 64 rows x 64 tokens per 256-thread block; each
 *    step decodes a 64 x 32 weight tile into shared memory as float32, stages
 *    the matching activations, and every thread accumulates a 4 x 4 tile.
 *    A simple first version (float FMA, no tensor cores, no integer dots).
 *  - get_rows: one block per id, threads over chunks.
 * Given scratch, the mat-vec of the quantized types first quantizes the
 * activations to q8 blocks (k_quantize_q8) and uses 4-way int8 dots
 * (k_matvec_q8, ~3e-5 NMSE from the float result); otherwise, and for the
 * float types and the tiled kernel, activations stay float32 and results
 * match the float reference to rounding. Per-type entry points come from
 * one table.
 */
#include <stdlib.h>

#include "kcommon.cuh"
#include "quant.cuh"

#define MV_BLOCK 256   /* threads per mat-vec block: 256 / W rows */
#define MV_MAX_NT 8    /* tokens per mat-vec launch */
#ifndef MV_UNROLL
#define MV_UNROLL 4 /* chunks per lane whose loads are issued together */
#endif
#define MV_MAX_BATCH 64 /* above this the tiled kernel is used */
#define TL_M 64        /* tiled: weight rows per block */
#define TL_N 64        /* tiled: tokens per block */

/* ---- kernels ------------------------------------------------------------- */

/* Rows [blockIdx.x * (MV_BLOCK / W), ...) of y[t][r] for t < nt (<= NT).
 * One warp per row; lane = 4 * group + k: group g takes chunks g, g + W/4,
 * ..., and lane k of it elements 4k .. 4k + 3 and 16 + 4k .. 16 + 4k + 3
 * of each (the two quads k and k + 4: for the 4-bit types the low and high
 * nibbles of one weight word, and for all types one block address, scale
 * and min decode shared by 8 weights). A warp-wide load of x covers W * 32
 * bytes in two instructions. MV_UNROLL chunks per lane are issued with no
 * exit test between them so that their loads are in flight together. */
template <int T, int W, int NT>
__global__ void __launch_bounds__(MV_BLOCK)
    k_matvec(const uint8_t *__restrict__ w, size_t row_bytes, int64_t n_chunks, int64_t rows,
             const float *__restrict__ x, int64_t cols, rfk_mm_out y, int nt) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap(); /* never launched: the wrapper picked W from the device */
    } else {
        const int lane = threadIdx.x % W, k = lane % 4;
        const int64_t r = (int64_t)blockIdx.x * (MV_BLOCK / W) + threadIdx.x / W;
        if (r >= rows) return; /* whole warps leave together */
        const uint8_t *row = w + (size_t)r * row_bytes;
        float acc[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] = 0.0f;
        constexpr int G = W / 4;
        int64_t c = lane / 4;
        for (; c + (MV_UNROLL - 1) * G < n_chunks; c += MV_UNROLL * G) {
            float v[MV_UNROLL][8];
#pragma unroll
            for (int u = 0; u < MV_UNROLL; u++) {
                rfk_q<T>::quad(row, c + u * G, k, v[u]);
                rfk_q<T>::quad(row, c + u * G, k + 4, v[u] + 4);
            }
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t < nt) {
#pragma unroll
                    for (int u = 0; u < MV_UNROLL; u++) {
                        const float *xp = x + t * cols + 32 * (c + u * G) + 4 * k;
                        const float4 xa = *(const float4 *)xp, xb = *(const float4 *)(xp + 16);
                        acc[t] += v[u][0] * xa.x + v[u][1] * xa.y + v[u][2] * xa.z + v[u][3] * xa.w +
                                  v[u][4] * xb.x + v[u][5] * xb.y + v[u][6] * xb.z + v[u][7] * xb.w;
                    }
                }
            }
        }
        for (; c < n_chunks; c += G) {
            float v[8];
            rfk_q<T>::quad(row, c, k, v);
            rfk_q<T>::quad(row, c, k + 4, v + 4);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t < nt) {
                    const float *xp = x + t * cols + 32 * c + 4 * k;
                    const float4 xa = *(const float4 *)xp, xb = *(const float4 *)(xp + 16);
                    acc[t] += v[0] * xa.x + v[1] * xa.y + v[2] * xa.z + v[3] * xa.w + v[4] * xb.x + v[5] * xb.y +
                              v[6] * xb.z + v[7] * xb.w;
                }
            }
        }
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float s = rfk_warp_sum<W>(acc[t]);
            if (lane == 0 && t < nt) rfk_mm_store(y, r, t, s);
        }
    }
}

/* Activations to q8 blocks of 32: xq[t][i] = round(x / d) as int8 with
 * d = amax / 127 per block, xd[t][block] = (d, d * sum of the block's int8).
 * Eight lanes per block, four elements each (the mat-vec's lane layout, so
 * both kernels read contiguous words). n_blocks = n_tok * cols / 32. */
template <int W>
__global__ void k_quantize_q8(const float *__restrict__ x, int64_t n_blocks, int *__restrict__ xq,
                              float2 *__restrict__ xd, uint32_t *__restrict__ xh) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        rfk_grid_release(); /* the next kernel may start early (RFK_LAUNCH_EARLY) */
        const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; /* quad index */
        const bool live = i / 8 < n_blocks; /* lanes past the end still shuffle */
        const float4 v = live ? *(const float4 *)(x + 4 * i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        rfk_q8_store<W>(v, i, live, xq, xd, xh);
    }
}

/* The mat-vec of k_matvec with q8 activations: per lane QPL 4-byte weight
 * words (quads k, k + LPC, ...) against as many 4-byte activation words
 * through 4-way int8 dots. The super-block types take four quads of a chunk
 * per lane (two lanes per chunk) so that their 6-bit scale / min decode,
 * which costs as much as the dots, is shared by 16 weights; the 32-element
 * types take two (the two nibbles of one weight word). */
template <int T, int W, int NT>
__global__ void __launch_bounds__(MV_BLOCK)
    k_matvec_q8(const uint8_t *__restrict__ w, size_t row_bytes, int64_t n_chunks, int64_t rows,
                const int *__restrict__ xq, const float2 *__restrict__ xd, rfk_mm_out y, int nt) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        typedef rfk_q<T> Q;
        constexpr int QPL = Q::blck == 256 ? 4 : 2, LPC = 8 / QPL, G = W / LPC, U = MV_UNROLL * 2 / QPL;
        const int lane = threadIdx.x % W, k = lane % LPC;
        const int64_t r = (int64_t)blockIdx.x * (MV_BLOCK / W) + threadIdx.x / W;
        if (r >= rows) return;
        const uint8_t *row = w + (size_t)r * row_bytes;
        float acc[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] = 0.0f;
        /* Unrolled as k_matvec, for the same reason; the weights are decoded
         * once and dotted with every token's activations. */
        int64_t c = lane / LPC;
        for (; c + (U - 1) * G < n_chunks; c += U * G) {
            rfk_wq wv[U][QPL];
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int j = 0; j < QPL; j++) Q::wq(row, c + u * G, k + LPC * j, wv[u][j]);
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (t < nt) {
#pragma unroll
                    for (int u = 0; u < U; u++) {
                        const int64_t cu = t * n_chunks + c + u * G;
                        const float2 d = xd[cu];
#pragma unroll
                        for (int j = 0; j < QPL; j++) acc[t] += rfk_vdot<Q>(wv[u][j], xq[cu * 8 + k + LPC * j], d);
                    }
                }
        }
        for (; c < n_chunks; c += G) {
            rfk_wq wv[QPL];
#pragma unroll
            for (int j = 0; j < QPL; j++) Q::wq(row, c, k + LPC * j, wv[j]);
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (t < nt) {
                    const int64_t ct = t * n_chunks + c;
                    const float2 d = xd[ct];
#pragma unroll
                    for (int j = 0; j < QPL; j++) acc[t] += rfk_vdot<Q>(wv[j], xq[ct * 8 + k + LPC * j], d);
                }
        }
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float s = rfk_warp_sum<W>(acc[t]);
            if (lane == 0 && t < nt) rfk_mm_store(y, r, t, s);
        }
    }
}

/* ---- wide-load mat-vecs: Q4_0, Q8_0 and Q6_K staged, Q4_K direct ----------
 * The kernels above issue a 2- or 4-byte load per few weights (Q4_0 and
 * Q8_0 blocks are only 2-byte aligned) and measure 1.2-1.8 TB/s. These read
 * weights with 16-byte loads: every load instruction of a warp moves 512
 * contiguous bytes.
 *  - Staged (Q4_0, Q8_0): a warp copies MVS_TILE blocks of its row into
 *    shared memory with 16-byte loads (a row of 16-byte multiple size starts
 *    16-byte aligned, and so does every tile), then lane l decodes blocks
 *    l, l + W, ... from there: the block's words by 4-byte reads and one
 *    funnel shift each for the 2-byte offset of odd blocks. Q6_K the same
 *    in tiles of MVS6_TILE super-blocks, eight lanes per super-block.
 *  - Q4_K (144-byte blocks, 16-byte aligned): eight lanes per block, lane k
 *    takes qs bytes 16k .. 16k + 15 (32 weights: half of sub-block 2(k/2) in
 *    the low nibbles, the same half of the next sub-block in the high ones)
 *    with one 16-byte load, the block's 16-byte header (d, dmin, scales) with
 *    another that the eight lanes share.
 * Past what the device holds resident, each warp walks several rows with
 * the next tile (step) in flight (mv_blocks). */
#define MVS_TILE 128 /* legacy blocks per staged tile */
#define MVS6_TILE 16 /* Q6_K super-blocks per staged tile */

template <int T> struct mvs;
template <> struct mvs<2> { static constexpr int bytes = 18, qwords = 4, tile_vecs = MVS_TILE * 18 / 16; }; /* Q4_0 */
template <> struct mvs<8> { static constexpr int bytes = 34, qwords = 8, tile_vecs = MVS_TILE * 34 / 16; }; /* Q8_0 */
template <> struct mvs<14> { static constexpr int tile_vecs = MVS6_TILE * 210 / 16; };                     /* Q6_K */

/* A row's sums over the warp to y (tokens t < nt), and the accumulators
 * cleared for the next row. */
template <int W, int NT>
static __device__ __forceinline__ void mv_flush(float (&acc)[NT], int lane, int nt, const rfk_mm_out &y, int64_t r) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const float sum = rfk_warp_sum<W>(acc[t]);
        if (lane == 0 && t < nt) rfk_mm_store(y, r, t, sum);
        acc[t] = 0.0f;
    }
}

/* Eight consecutive words of shared memory from a 2-byte aligned byte
 * offset o: nine word reads and a funnel shift each when o is not 4-byte
 * aligned. */
static __device__ __forceinline__ void mvs_words8(const uint32_t *sw, int o, uint32_t out[8]) {
    const int a = o >> 2;
    const unsigned sh = (o & 2) ? 16u : 0u;
    uint32_t wd[9];
#pragma unroll
    for (int k = 0; k < 9; k++) wd[k] = sw[a + k];
#pragma unroll
    for (int k = 0; k < 8; k++) out[k] = rfk_fshr_clamp(wd[k], wd[k + 1], sh);
}

/* The staged mat-vecs' walk: the warp's rows r0, r0 + stride, ... (one row
 * when the grid has a warp per row), each in tiles of TV 16-byte vectors
 * copied to the warp's shared memory s; the next tile's loads are issued
 * before tile(sw, t) decodes the current one (t its index in the row), and
 * done(r) follows a row's last tile. pro() runs in every thread once the
 * first tile's loads are issued (it may hold a block-wide barrier). Early
 * launch (RFK_LAUNCH_EARLY): the kernel lets the next one start at once
 * and waits for the one ahead of it after those first loads, before pro()
 * reads the activations: the first weight tiles load while the kernel
 * ahead finishes, and L2 is asked for the rest of the first row and the
 * next row's first tile (rfk_prefetch_l2). */
template <int W, int TV, typename Tile, typename Done, typename Pro>
static __device__ __forceinline__ void mvs_walk(const uint8_t *__restrict__ w, size_t row_bytes, int64_t rows,
                                                int64_t n_tiles, uint4 *s, Tile tile, Done done, Pro pro) {
    constexpr int VPL = (TV + W - 1) / W; /* vectors per lane */
    const int lane = threadIdx.x % W;
    const int64_t r0 = (int64_t)blockIdx.x * (MV_BLOCK / W) + threadIdx.x / W, stride = (int64_t)gridDim.x * (MV_BLOCK / W);
    const int64_t row_vecs = (int64_t)(row_bytes / 16);
    uint4 tmp[VPL];
    auto fetch = [&](int64_t r, int64_t t) {
        const uint4 *row = (const uint4 *)(w + (size_t)r * row_bytes);
        const int64_t v0 = t * TV, nv = row_vecs - v0 < TV ? row_vecs - v0 : TV;
#pragma unroll
        for (int i = 0; i < VPL; i++)
            if (lane + i * W < nv) tmp[i] = row[v0 + lane + i * W];
    };
    rfk_grid_release();
    if (r0 < rows) {
        fetch(r0, 0);
        /* the rest of the warp's first row, and its next row's first tile,
           asked of L2 while the kernel ahead finishes */
        if (lane == 0) {
            const uint8_t *row = w + (size_t)r0 * row_bytes;
            if (row_vecs > TV) rfk_prefetch_l2(row + (size_t)TV * 16, (unsigned)((row_vecs - TV) * 16));
            if (r0 + stride < rows)
                rfk_prefetch_l2(row + (size_t)stride * row_bytes, (unsigned)((row_vecs < TV ? row_vecs : TV) * 16));
        }
    }
    rfk_grid_wait();
    pro();
    if (r0 >= rows) return; /* whole warps; no block-wide barrier follows */
    for (int64_t r = r0, t = 0;;) {
#pragma unroll
        for (int i = 0; i < VPL; i++)
            if (lane + i * W < TV) s[lane + i * W] = tmp[i]; /* past a partial tile: unread */
        rfk_syncwarp();
        const int64_t r2 = t + 1 < n_tiles ? r : r + stride, t2 = t + 1 < n_tiles ? t + 1 : 0;
        if (r2 < rows) fetch(r2, t2);
        tile((const uint32_t *)s, t);
        rfk_syncwarp(); /* the next tile overwrites s */
        if (t2 == 0) done(r);
        if (r2 >= rows) break;
        r = r2, t = t2;
    }
}

/* The fused norm (rfk_matmul_norm): the block's own q8 copy of the normed
 * row, in shared memory, read by the mat-vec in place of xq / xd. Rows up
 * to 4096 floats: the row in registers (4 quads a thread) then costs the
 * mat-vec no occupancy (8 quads took it from 58 to 128 registers). */
#define MV_NORM_RQ 4
#define MV_NORM_MAX (4 * RFK_NORM_BLOCK * MV_NORM_RQ)
#define MV_NORM_MIN_BLOCKS 4     /* Q4_0, Q8_0, Q4_K: the unfused kernels' residency */
#define MV_NORM_MIN_BLOCKS_Q6K 2 /* Q6_K: its unfused kernel holds ~100 registers */
template <bool NRM> struct mv_nrm_smem {
    __align__(16) int xq[MV_NORM_MAX / 4];
    float2 xd[MV_NORM_MAX / 32];
};
template <> struct mv_nrm_smem<false> {
    int xq[4];
    float2 xd[1];
};

/* With NRM, every block computes the row's add + RMSNorm + q8 into sn
 * (the block that reads x last also stores x += delta and y: nrm.ticket)
 * and points xq / xd there; with
 * SPLIT (not 0) the q8 ints in rfk_q8_split<SPLIT>'s layout, as the body
 * reads them. */
template <int W, bool NRM, int SPLIT = 0, typename XQ, typename XD>
static __device__ __forceinline__ void mv_norm_pro(const rfk_mv_norm &nrm, int64_t cols, mv_nrm_smem<NRM> &sn,
                                                   XQ &xq, XD &xd) {
    if constexpr (NRM) {
        rfk_norm_row<W, MV_NORM_RQ, SPLIT>(nrm.x, nrm.delta, nrm.w, nrm.y, cols, nrm.eps, sn.xq, sn.xd, 0, false,
                                           nrm.ticket);
        __syncthreads();
        xq = sn.xq, xd = sn.xd;
    }
}

/* One token's q8 row in shared memory for the plain Q4_0, Q4_K and Q6_K
 * mat-vecs (k_mv_*_xs), rows up to MV_XS_MAX columns (Q8_0's tiles leave
 * no room for it under the 48 KiB of static shared memory). From global
 * memory each lane read its block's 32 bytes as two 16-byte loads 32 bytes
 * apart: every load touched 32 sectors and used half of each, and the L1
 * was the limit (Nsight Compute, H200: 79% busy, the DRAM 59%). Here a
 * block copies the row once in rfk_q8_split<U>'s layout (U = 2 for a block
 * a lane, 4 for Q4_K's two: q[64 g + p] and q[64 g + 32 + p] for block
 * 32 g + p when U = 2), so that a warp's reads are each one contiguous
 * run. */
#define MV_XS_MAX 16384
template <bool XS> struct mv_xs_smem {
    int4 q[MV_XS_MAX / 16];
    __align__(16) float2 d[MV_XS_MAX / 32]; /* Q4_K reads two as a float4 */
};
template <> struct mv_xs_smem<false> {
    int4 q[1];
    float2 d[1];
};

template <int U>
static __device__ __forceinline__ void mv_xs_pro(const int *__restrict__ xq, const float2 *__restrict__ xd, int64_t nb,
                                                 mv_xs_smem<true> &sx) {
    const int4 *g = (const int4 *)xq;
    for (int64_t n = threadIdx.x; n < 2 * nb; n += blockDim.x) { /* unit n of the row */
        const int64_t item = n / U;
        sx.q[(item >> 5) * (32 * U) + (n % U) * 32 + (item & 31)] = g[n];
    }
    for (int64_t b = threadIdx.x; b < nb; b += blockDim.x) sx.d[b] = xd[b];
    __syncthreads();
}

/* Q4_0 and Q8_0: lane l decodes blocks l, l + W, ... of each tile from
 * shared memory (4-byte reads, a funnel shift for odd blocks' 2-byte
 * offset) against q8 activation blocks (with XS, one token's, from
 * mv_xs_smem). */
template <int T, int W, int NT, bool NRM, bool XS = false>
static __device__ __forceinline__ void mv_staged(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nb,
                                                 int64_t rows, const int *__restrict__ xq,
                                                 const float2 *__restrict__ xd, rfk_mm_out y, int nt,
                                                 const rfk_mv_norm &nrm) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        constexpr int B = mvs<T>::bytes, QW = mvs<T>::qwords, TV = mvs<T>::tile_vecs;
        static_assert(!XS || (NT == 1 && !NRM), "x staging: one token, no fused norm");
        __shared__ uint4 sm[MV_BLOCK / W][TV + 1]; /* +1: the last block's word reads may pass the tile */
        __shared__ mv_nrm_smem<NRM> sn;
        __shared__ mv_xs_smem<XS> sx;
        const int lane = threadIdx.x % W;
        float acc[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] = 0.0f;
        auto tile = [&](const uint32_t *sw, int64_t ti) {
            const int64_t b0 = ti * MVS_TILE;
#pragma unroll
            for (int i = 0; i < MVS_TILE / W; i++) {
                const int bl = lane + i * W;
                const int64_t b = b0 + bl;
                if (b >= nb) continue;
                const int o = bl * B, a = o >> 2;
                const unsigned sh = (o & 3) ? 32u : 16u; /* qs at byte 4 (odd blocks) or 2 of word a */
                uint32_t wd[QW + 1];
#pragma unroll
                for (int k = 0; k <= QW; k++) wd[k] = sw[a + k];
                const float d = rfk_h2f((unsigned short)(wd[0] >> (sh - 16u)));
                int q[QW];
#pragma unroll
                for (int k = 0; k < QW; k++) q[k] = (int)rfk_fshr_clamp(wd[k], wd[k + 1], sh);
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    if (t < nt) {
                        int4 x0, x1;
                        float2 dx;
                        if constexpr (XS || NRM) { /* one token's row in shared memory, split */
                            const int4 *xs = XS ? sx.q : (const int4 *)xq;
                            const int64_t sq = (b >> 5) * 64 + (b & 31);
                            x0 = xs[sq], x1 = xs[sq + 32], dx = XS ? sx.d[b] : xd[b];
                        } else {
                            const int4 *xp = (const int4 *)(xq + (t * nb + b) * 8);
                            x0 = xp[0], x1 = xp[1], dx = xd[t * nb + b];
                        }
                        const int xv[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                        int dot = 0;
                        if constexpr (T == 2) {
#pragma unroll
                            for (int k = 0; k < 4; k++) {
                                dot = rfk_dp4a((int)((unsigned)q[k] & 0x0F0F0F0Fu), xv[k], dot);
                                dot = rfk_dp4a((int)(((unsigned)q[k] >> 4) & 0x0F0F0F0Fu), xv[k + 4], dot);
                            }
                            acc[t] += d * (dx.x * (float)dot - 8.0f * dx.y);
                        } else {
#pragma unroll
                            for (int k = 0; k < 8; k++) dot = rfk_dp4a(q[k], xv[k], dot);
                            acc[t] += d * dx.x * (float)dot;
                        }
                    }
                }
            }
        };
        auto done = [&](int64_t r) { mv_flush<W, NT>(acc, lane, nt, y, r); };
        auto pro = [&] {
            if constexpr (XS) mv_xs_pro<2>(xq, xd, nb, sx);
            else mv_norm_pro<W, NRM, 2>(nrm, nb * 32, sn, xq, xd);
        };
        mvs_walk<W, TV>(w, row_bytes, rows, (nb + MVS_TILE - 1) / MVS_TILE, sm[threadIdx.x / W], tile, done, pro);
    }
}

/* Each wide body's two kernels: the plain one, and the one with the fused
 * norm under its own residency bound (a bound on the plain one would
 * change its register allocation). T is the type (Q4_K and Q6_K bodies
 * have one type each). */
#define MV_WIDE_KERNELS(name, body, norm_min_blocks)                                                            \
    template <int T, int W, int NT>                                                                         \
    __global__ void __launch_bounds__(MV_BLOCK)                                                             \
        name(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nb, int64_t rows,                     \
             const int *__restrict__ xq, const float2 *__restrict__ xd, rfk_mm_out y, int nt) {              \
        body<T, W, NT, false>(w, row_bytes, nb, rows, xq, xd, y, nt, rfk_mv_norm{});                        \
    }                                                                                                       \
    template <int T, int W>                                                                                 \
    __global__ void __launch_bounds__(MV_BLOCK, norm_min_blocks)                                            \
        name##_norm(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nb, int64_t rows,              \
                    const int *__restrict__ xq, const float2 *__restrict__ xd, rfk_mm_out y, int nt,        \
                    rfk_mv_norm nrm) {                                                                      \
        body<T, W, 1, true>(w, row_bytes, nb, rows, xq, xd, y, nt, nrm);                                    \
    }
MV_WIDE_KERNELS(k_mv_staged, mv_staged, MV_NORM_MIN_BLOCKS)
template <int T, int W>
__global__ void __launch_bounds__(MV_BLOCK)
    k_mv_staged_xs(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nb, int64_t rows,
                   const int *__restrict__ xq, const float2 *__restrict__ xd, rfk_mm_out y, int nt) {
    mv_staged<T, W, 1, false, true>(w, row_bytes, nb, rows, xq, xd, y, nt, rfk_mv_norm{});
}

/* Q6_K (210-byte super-blocks, 2-byte aligned): tiles of MVS6_TILE blocks;
 * lane l always takes 32-element chunk j = l % 8 (half h = j / 4, quarter
 * t = j % 4: low nibbles of ql[64h + 32(t % 2) ..] shifted by 4(t / 2),
 * bits 2t of qh[32h ..]) of blocks l / 8, l / 8 + W / 8, ..., as q - 32 in
 * signed bytes; the chunk's two 16-element halves are scaled by their own
 * int8 scales after the byte dots. One token's row in shared memory (XS:
 * copied, NRM: computed) is in rfk_q8_split<2>'s layout, as Q4_0's. */
template <int T, int W, int NT, bool NRM, bool XS = false>
static __device__ __forceinline__ void mv_q6k(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nsb,
                                              int64_t rows, const int *__restrict__ xq, const float2 *__restrict__ xd,
                                              rfk_mm_out y, int nt, const rfk_mv_norm &nrm) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        constexpr int TV = mvs<14>::tile_vecs;
        static_assert(!XS || (NT == 1 && !NRM), "x staging: one token, no fused norm");
        __shared__ uint4 sm[MV_BLOCK / W][TV + 1];
        __shared__ mv_nrm_smem<NRM> sn;
        __shared__ mv_xs_smem<XS> sx;
        const int lane = threadIdx.x % W, j = lane % 8, h = j / 4, tq = j % 4;
        const int64_t n_chunks = nsb * 8;
        float acc[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] = 0.0f;
        auto tile = [&](const uint32_t *sw, int64_t ti) {
#pragma unroll
            for (int i = 0; i < MVS6_TILE * 8 / W; i++) {
                const int bl = lane / 8 + i * (W / 8);
                const int64_t sb = ti * MVS6_TILE + bl;
                if (sb >= nsb) continue;
                const int o = bl * 210;
                uint32_t ql[8], qh[8];
                mvs_words8(sw, o + 64 * h + 32 * (tq % 2), ql);
                mvs_words8(sw, o + 128 + 32 * h, qh);
                const int so = o + 192 + 2 * j, dof = o + 208;
                const uint32_t scw = sw[so >> 2] >> (8 * (so & 3)), dw = sw[dof >> 2] >> (8 * (dof & 3));
                const int s0 = (int)(int8_t)(scw & 0xFF), s1 = (int)(int8_t)((scw >> 8) & 0xFF);
                const float d = rfk_h2f((unsigned short)(dw & 0xFFFF));
                int v[8];
#pragma unroll
                for (int k = 0; k < 8; k++)
                    v[k] = (int)(((((ql[k] >> (4 * (tq / 2))) & 0x0F0F0F0Fu) | (((qh[k] >> (2 * tq)) & 0x03030303u) << 4)) +
                                  0x60606060u) ^
                                 0x80808080u); /* q - 32 per byte, no carries (q < 64) */
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    if (t < nt) {
                        const int64_t c = t * n_chunks + sb * 8 + j;
                        int4 x0, x1;
                        float dx;
                        if constexpr (XS || NRM) { /* one token's row in shared memory, split */
                            const int4 *xs = XS ? sx.q : (const int4 *)xq;
                            const int64_t sq = (c >> 5) * 64 + (c & 31);
                            x0 = xs[sq], x1 = xs[sq + 32], dx = XS ? sx.d[c].x : xd[c].x;
                        } else {
                            const int4 *xp = (const int4 *)(xq + c * 8);
                            x0 = xp[0], x1 = xp[1], dx = xd[c].x;
                        }
                        int lo = 0, hi = 0;
                        lo = rfk_dp4a(v[0], x0.x, lo), lo = rfk_dp4a(v[1], x0.y, lo);
                        lo = rfk_dp4a(v[2], x0.z, lo), lo = rfk_dp4a(v[3], x0.w, lo);
                        hi = rfk_dp4a(v[4], x1.x, hi), hi = rfk_dp4a(v[5], x1.y, hi);
                        hi = rfk_dp4a(v[6], x1.z, hi), hi = rfk_dp4a(v[7], x1.w, hi);
                        acc[t] += d * dx * (float)(s0 * lo + s1 * hi);
                    }
                }
            }
        };
        auto done = [&](int64_t r) { mv_flush<W, NT>(acc, lane, nt, y, r); };
        auto pro = [&] {
            if constexpr (XS) mv_xs_pro<2>(xq, xd, nsb * 8, sx);
            else mv_norm_pro<W, NRM, 2>(nrm, nsb * 256, sn, xq, xd);
        };
        mvs_walk<W, TV>(w, row_bytes, rows, (nsb + MVS6_TILE - 1) / MVS6_TILE, sm[threadIdx.x / W], tile, done, pro);
    }
}

MV_WIDE_KERNELS(k_mv_q6k, mv_q6k, MV_NORM_MIN_BLOCKS_Q6K)
template <int T, int W>
__global__ void __launch_bounds__(MV_BLOCK)
    k_mv_q6k_xs(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nb, int64_t rows,
                const int *__restrict__ xq, const float2 *__restrict__ xd, rfk_mm_out y, int nt) {
    mv_q6k<T, W, 1, false, true>(w, row_bytes, nb, rows, xq, xd, y, nt, rfk_mv_norm{});
}

/* Q4_K, several tokens, or one past MV_XS_MAX columns: the activations
 * from global memory. Lane l takes half h = k % 2 (16 bytes) of sub-block
 * pair j = k / 2's 32 bytes qs[32j ..] (k = l % 8) of blocks l / 8,
 * l / 8 + W / 8, ..., loaded straight into registers with the block's
 * header. */
template <int T, int W, int NT>
static __device__ __forceinline__ void mv_q4k(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nsb,
                                              int64_t rows, const int *__restrict__ xq, const float2 *__restrict__ xd,
                                              rfk_mm_out y, int nt) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        const int lane = threadIdx.x % W, k = lane % 8, j = k / 2, h = k % 2;
        /* rows r0, r0 + stride, ... of this warp (as k_mv_staged) in steps
         * of SPI blocks; the next step's two loads are issued before the
         * current step is decoded */
        const int64_t r0 = (int64_t)blockIdx.x * (MV_BLOCK / W) + threadIdx.x / W,
                      stride = (int64_t)gridDim.x * (MV_BLOCK / W);
        const int64_t n_chunks = nsb * 8;
        constexpr int SPI = W / 8; /* blocks per warp step */
        const int64_t steps = (nsb + SPI - 1) / SPI;
        float acc[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] = 0.0f;
        uint4 hd = make_uint4(0, 0, 0, 0), qv = hd;
        auto fetch = [&](int64_t r, int64_t st) {
            const int64_t sb = st * SPI + lane / 8;
            if (sb < nsb) {
                const uint8_t *b = w + (size_t)r * row_bytes + sb * 144;
                hd = *(const uint4 *)b;
                qv = *(const uint4 *)(b + 16 + 16 * k);
            }
        };
        rfk_grid_release(); /* early launch, as mvs_walk */
        if (r0 < rows) fetch(r0, 0);
        rfk_grid_wait();
        if (r0 >= rows) return;
        for (int64_t r = r0, st = 0;;) {
            const uint4 chd = hd, cqv = qv;
            const int64_t r2 = st + 1 < steps ? r : r + stride, st2 = st + 1 < steps ? st + 1 : 0;
            if (r2 < rows) fetch(r2, st2);
            const int64_t sb = st * SPI + lane / 8;
            if (sb < nsb) {
                const float d = rfk_h2f((unsigned short)(chd.x & 0xFFFF)), dmin = rfk_h2f((unsigned short)(chd.x >> 16));
                /* scale / min of sub-blocks 2j (low nibbles) and 2j + 1 (high) */
                int sc[2], mn[2];
#pragma unroll
                for (int u = 0; u < 2; u++) {
                    const int sbi = 2 * j + u;
                    if (sbi < 4) {
                        sc[u] = rfk_k4_sbyte(chd.y, chd.z, chd.w, sbi) & 63;
                        mn[u] = rfk_k4_sbyte(chd.y, chd.z, chd.w, sbi + 4) & 63;
                    } else {
                        const int hi = rfk_k4_sbyte(chd.y, chd.z, chd.w, sbi + 4);
                        sc[u] = (hi & 0x0F) | ((rfk_k4_sbyte(chd.y, chd.z, chd.w, sbi - 4) >> 6) << 4);
                        mn[u] = (hi >> 4) | ((rfk_k4_sbyte(chd.y, chd.z, chd.w, sbi) >> 6) << 4);
                    }
                }
                const uint32_t qw[4] = {cqv.x, cqv.y, cqv.z, cqv.w};
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    if (t < nt) {
                        const int64_t c = t * n_chunks + sb * 8 + 2 * j; /* chunk of sub-block 2j */
                        const int4 xl = *(const int4 *)(xq + c * 8 + 4 * h), xh = *(const int4 *)(xq + (c + 1) * 8 + 4 * h);
                        const float4 dd = *(const float4 *)(xd + c); /* (d, d * sum) of chunks c and c + 1 */
                        const int xlv[4] = {xl.x, xl.y, xl.z, xl.w}, xhv[4] = {xh.x, xh.y, xh.z, xh.w};
                        int lo = 0, hi = 0;
#pragma unroll
                        for (int u = 0; u < 4; u++) {
                            lo = rfk_dp4a((int)(qw[u] & 0x0F0F0F0Fu), xlv[u], lo);
                            hi = rfk_dp4a((int)((qw[u] >> 4) & 0x0F0F0F0Fu), xhv[u], hi);
                        }
                        float f = d * ((float)sc[0] * dd.x * (float)lo + (float)sc[1] * dd.z * (float)hi);
                        /* the mins: whole-chunk sums, so one lane of the pair adds them */
                        if (h == 0) f -= dmin * ((float)mn[0] * dd.y + (float)mn[1] * dd.w);
                        acc[t] += f;
                    }
                }
            }
            if (st2 == 0) mv_flush<W, NT>(acc, lane, nt, y, r); /* row r done */
            if (r2 >= rows) break;
            r = r2, st = st2;
        }
    }
}

template <int T, int W, int NT>
__global__ void __launch_bounds__(MV_BLOCK)
    k_mv_q4k(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nb, int64_t rows, const int *__restrict__ xq,
             const float2 *__restrict__ xd, rfk_mm_out y, int nt) {
    mv_q4k<T, W, NT>(w, row_bytes, nb, rows, xq, xd, y, nt);
}

/* Q4_K, one token, its q8 row in shared memory in rfk_q8_split<4>'s
 * layout (XS = !NRM: copied there from xq; NRM: computed there by the
 * fused norm). Tiles of MVK_TILE blocks (2304 bytes, as Q4_0's) staged in
 * the warp's shared memory; lane l takes sub-block pair k = l % 4 of blocks
 * l / 4, l / 4 + W / 4, ...: its 32 bytes qs[32k ..] (the low nibbles
 * sub-block 2k, the high ones 2k + 1) and the block's header as 16-byte
 * reads, which the 144-byte blocks keep aligned and spread over the banks
 * (eight lanes, one phase, eight distinct bank quads); the pair's 64
 * activation bytes as four 16-byte reads, each one contiguous run over the
 * warp. A lane's scale decode then serves 64 weights, twice mv_q4k's. */
#define MVK_TILE 16
template <> struct mvs<12> { static constexpr int tile_vecs = MVK_TILE * 144 / 16; };

template <int T, int W, bool NRM>
static __device__ __forceinline__ void mv_q4k_s(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nsb,
                                                int64_t rows, const int *__restrict__ xq, const float2 *__restrict__ xd,
                                                rfk_mm_out y, int nt, const rfk_mv_norm &nrm) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        constexpr int TV = mvs<12>::tile_vecs;
        __shared__ uint4 sm[MV_BLOCK / W][TV]; /* 16-byte reads only: none passes the tile */
        __shared__ mv_nrm_smem<NRM> sn;
        __shared__ mv_xs_smem<!NRM> sx;
        const int lane = threadIdx.x % W, k = lane % 4;
        const int4 *xs = NRM ? (const int4 *)sn.xq : sx.q;
        const float4 *xds = (const float4 *)(NRM ? sn.xd : sx.d); /* (d, d * sum) of blocks 2p, 2p + 1 */
        /* Sub-blocks 2k, 2k + 1's 6-bit scales and mins from the header's
           scales[12] (words hd.y, hd.z, hd.w) as two bytes of a word: for k <
           2 bytes 2k, 2k + 1 (+ 4 for the mins); for k >= 2 the low (scales)
           or high (mins) nibbles of bytes 2k + 4, 2k + 5 with the top two bits
           of bytes 2k - 4, 2k - 3 (scales) or 2k, 2k + 1 (mins) above them. */
        const unsigned sh = 16u * (k & 1);
        float acc[1] = {0.0f};
        auto tile = [&](const uint32_t *sw, int64_t ti) {
            const uint4 *sv = (const uint4 *)sw;
#pragma unroll
            for (int i = 0; i < MVK_TILE * 4 / W; i++) {
                const int bl = lane / 4 + i * (W / 4);
                const int64_t sb = ti * MVK_TILE + bl;
                if (sb >= nsb) continue;
                const uint4 hd = sv[bl * 9], q0 = sv[bl * 9 + 1 + 2 * k], q1 = sv[bl * 9 + 2 + 2 * k];
                const uint32_t ys = hd.y >> sh, zs = hd.z >> sh, ws = hd.w >> sh;
                const uint32_t sc = k < 2 ? ys & 0x3F3Fu : (ws & 0x0F0Fu) | ((ys >> 2) & 0x3030u);
                const uint32_t mn = k < 2 ? zs & 0x3F3Fu : ((ws >> 4) & 0x0F0Fu) | ((zs >> 2) & 0x3030u);
                const int64_t p = sb * 4 + k, u0 = (p >> 5) * 128 + (p & 31); /* pair p of the row */
                const int4 x0 = xs[u0], x1 = xs[u0 + 32], x2 = xs[u0 + 64], x3 = xs[u0 + 96];
                const float4 dd = xds[p];
                const uint32_t qw[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
                const int xl[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                const int xh[8] = {x2.x, x2.y, x2.z, x2.w, x3.x, x3.y, x3.z, x3.w};
                int lo = 0, hi = 0;
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    lo = rfk_dp4a((int)(qw[u] & 0x0F0F0F0Fu), xl[u], lo);
                    hi = rfk_dp4a((int)((qw[u] >> 4) & 0x0F0F0F0Fu), xh[u], hi);
                }
                const float d = rfk_h2f((unsigned short)(hd.x & 0xFFFF)), dmin = rfk_h2f((unsigned short)(hd.x >> 16));
                acc[0] += d * ((float)(int)(sc & 0xFF) * dd.x * (float)lo + (float)(int)(sc >> 8) * dd.z * (float)hi) -
                          dmin * ((float)(int)(mn & 0xFF) * dd.y + (float)(int)(mn >> 8) * dd.w);
            }
        };
        auto done = [&](int64_t r) { mv_flush<W, 1>(acc, lane, nt, y, r); };
        auto pro = [&] {
            if constexpr (NRM) mv_norm_pro<W, NRM, 4>(nrm, nsb * 256, sn, xq, xd);
            else mv_xs_pro<4>(xq, xd, nsb * 8, sx);
        };
        mvs_walk<W, TV>(w, row_bytes, rows, (nsb + MVK_TILE - 1) / MVK_TILE, sm[threadIdx.x / W], tile, done, pro);
    }
}

template <int T, int W>
__global__ void __launch_bounds__(MV_BLOCK)
    k_mv_q4k_xs(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nb, int64_t rows,
                const int *__restrict__ xq, const float2 *__restrict__ xd, rfk_mm_out y, int nt) {
    mv_q4k_s<T, W, false>(w, row_bytes, nb, rows, xq, xd, y, nt, rfk_mv_norm{});
}
template <int T, int W>
__global__ void __launch_bounds__(MV_BLOCK, MV_NORM_MIN_BLOCKS)
    k_mv_q4k_norm(const uint8_t *__restrict__ w, size_t row_bytes, int64_t nb, int64_t rows,
                  const int *__restrict__ xq, const float2 *__restrict__ xd, rfk_mm_out y, int nt, rfk_mv_norm nrm) {
    mv_q4k_s<T, W, true>(w, row_bytes, nb, rows, xq, xd, y, nt, nrm);
}

template <int T>
__global__ void __launch_bounds__(256)
    k_mm_tiled(const uint8_t *__restrict__ w, size_t row_bytes, int64_t n_chunks, int64_t rows,
               const float *__restrict__ x, int64_t cols, float *__restrict__ y, int64_t n_tok) {
    /* [k][row] and [k][token]: the inner loop reads 4 consecutive rows and
     * 4 consecutive tokens per k; +4 keeps float4 alignment, shifts banks. */
    __shared__ __align__(16) float ws[32][TL_M + 4];
    __shared__ __align__(16) float xs[32][TL_N + 4];
    const int tid = threadIdx.x;
    const int tr = tid % 16, tt = tid / 16; /* rows 4tr.., tokens 4tt.. */
    const int64_t r0 = (int64_t)blockIdx.x * TL_M, t0 = (int64_t)blockIdx.y * TL_N;
    float acc[4][4] = {};
    for (int64_t c = 0; c < n_chunks; c++) {
        if (tid < TL_M) {
            float v[32];
            const int64_t r = r0 + tid;
            if (r < rows) {
                rfk_q<T>::chunk(w + (size_t)r * row_bytes, c, v);
            } else {
#pragma unroll
                for (int k = 0; k < 32; k++) v[k] = 0.0f;
            }
#pragma unroll
            for (int k = 0; k < 32; k++) ws[k][tid] = v[k];
        }
        {
            const int tok = tid / 4, k0 = (tid % 4) * 8;
            const int64_t t = t0 + tok;
            float4 a = {0, 0, 0, 0}, b = {0, 0, 0, 0};
            if (t < n_tok) {
                const float4 *xp = (const float4 *)(x + t * cols + 32 * c + k0);
                a = xp[0];
                b = xp[1];
            }
            xs[k0 + 0][tok] = a.x, xs[k0 + 1][tok] = a.y, xs[k0 + 2][tok] = a.z, xs[k0 + 3][tok] = a.w;
            xs[k0 + 4][tok] = b.x, xs[k0 + 5][tok] = b.y, xs[k0 + 6][tok] = b.z, xs[k0 + 7][tok] = b.w;
        }
        __syncthreads();
#pragma unroll 8
        for (int k = 0; k < 32; k++) {
            float4 a = *(const float4 *)&ws[k][4 * tr];
            float4 b = *(const float4 *)&xs[k][4 * tt];
            float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const int64_t t = t0 + 4 * tt + j;
        if (t >= n_tok) break;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int64_t r = r0 + 4 * tr + i;
            if (r < rows) y[t * rows + r] = acc[i][j];
        }
    }
}

/* One block per id; thread i decodes elements 4i .. 4i + 3 of each 32-element
 * chunk group in turn, so stores are contiguous across the block. */
template <int T>
__global__ void k_get_rows(const uint8_t *__restrict__ w, size_t row_bytes, int64_t n_chunks, int64_t rows,
                           const int32_t *__restrict__ ids, float *__restrict__ out) {
    const int64_t t = blockIdx.x;
    const int32_t id = ids[t];
    float4 *o = (float4 *)(out + t * n_chunks * 32);
    for (int64_t q = threadIdx.x; q < n_chunks * 8; q += blockDim.x) {
        float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (id >= 0 && id < rows) rfk_q<T>::quad(w + (size_t)id * row_bytes, q / 8, (int)(q % 8), v);
        o[q] = make_float4(v[0], v[1], v[2], v[3]);
    }
}

/* ---- launchers ----------------------------------------------------------- */

typedef struct mm_args {
    const rfk_ctx *ctx;
    void *stream;
    const uint8_t *w;
    size_t row_bytes;
    int64_t cols, rows;
    const float *x;
    rfk_mm_out y;
    int64_t n_tok;
    bool x_quantized; /* xq / xd already hold x */
    int *xq;    /* q8 activations in scratch, or NULL: float path */
    float2 *xd; /* their per-block (scale, scale * sum) */
    uint16_t *xh; /* scratch for float16 activations (rfk_mmq_f16), or NULL */
} mm_args;

/* The outputs of tokens t0.. (each part advanced by t0 of its rows). */
static rfk_mm_out mv_out_at(const mm_args *a, int64_t t0) {
    rfk_mm_out o = a->y;
    for (int i = 0; i < 3; i++)
        if (o.y[i]) o.y[i] += t0 * o.rows[i];
    return o;
}

template <int T, int W, int NT> static int launch_matvec_nt(const mm_args *a, int64_t t0, int nt) {
    const int64_t rows_per_block = MV_BLOCK / W;
    RFK_LAUNCH(a->ctx, "matvec", (k_matvec<T, W, NT>), rfk_d3((a->rows + rows_per_block - 1) / rows_per_block),
               rfk_d3(MV_BLOCK), 0, a->stream, a->w, a->row_bytes, a->cols / 32, a->rows, a->x + t0 * a->cols,
               a->cols, mv_out_at(a, t0), nt);
    return RFK_OK;
}

/* A switch for comparisons, read once into *cache (-1: unread): on unless
 * the variable starts with '0'. */
static bool env_on(const char *name, int *cache) {
    if (*cache < 0) {
        const char *e = getenv(name);
        *cache = !(e && e[0] == '0');
    }
    return *cache;
}

/* The wide-load kernels take rows of whole 16-byte vectors (every tile and
 * block then starts aligned); ROCMFORGE_GPU_MV=0 keeps the 4-lane ones
 * (for comparison). */
static bool mv_wide_ok(const mm_args *a) {
    static int on = -1;
    return env_on("ROCMFORGE_GPU_MV", &on) && a->row_bytes % 16 == 0;
}

/* Blocks of the wide mat-vecs: a warp per row while the rows fit in what
 * the device holds resident at once; past that, as many blocks as are
 * resident (kernel occupancy x multiprocessors), each warp streaming rows
 * r, r + stride, ... with the next tile in flight, instead of waves of
 * short-lived warps and a partial last wave (ROCMFORGE_GPU_MV_PERSIST=0:
 * always a warp per row). */
static bool mv_persist_off(void) {
    static int on = -1;
    return !env_on("ROCMFORGE_GPU_MV_PERSIST", &on);
}

template <typename K> static int64_t mv_blocks(const rfk_ctx *ctx, K kernel, int64_t rows, int W, int *occ) {
    const int64_t rpb = MV_BLOCK / W, one_per_row = (rows + rpb - 1) / rpb;
    if (*occ < 0 && RFK_RT(OccupancyMaxActiveBlocksPerMultiprocessor)(occ, kernel, MV_BLOCK, 0) != RFK_RT(Success))
        *occ = 0;
    if (mv_persist_off() || ctx->n_units <= 0 || *occ <= 0) return one_per_row;
    const int64_t resident = (int64_t)*occ * ctx->n_units;
    return one_per_row < resident ? one_per_row : resident;
}

/* The wide-load kernels of type T: Q4_0 and Q8_0 staged, Q4_K, Q6_K. */
template <int T, int W, int NT> static constexpr auto mv_wide_kernel() {
    if constexpr (T == 12) return &k_mv_q4k<T, W, NT>;
    else if constexpr (T == 14) return &k_mv_q6k<T, W, NT>;
    else return &k_mv_staged<T, W, NT>;
}
template <int T, int W> static constexpr auto mv_wide_norm_kernel() {
    if constexpr (T == 12) return &k_mv_q4k_norm<T, W>;
    else if constexpr (T == 14) return &k_mv_q6k_norm<T, W>;
    else return &k_mv_staged_norm<T, W>;
}

/* The one-token kernels that read the q8 row from shared memory (rows up
 * to MV_XS_MAX columns; Q6_K's up to MV_XS_MAX_Q6K, H200: 28672 x 4096
 * 40.2 -> 37.5 us, the 128256-row head 147.5 -> 133.4, but 4096 x 14336
 * 24.5 -> 26.1); ROCMFORGE_GPU_MV_XS=0 keeps the reads from global memory
 * (for comparison). */
#define MV_XS_MAX_Q6K 4096
template <int T, int W> static constexpr auto mv_xs_kernel() {
    if constexpr (T == 12) return &k_mv_q4k_xs<T, W>;
    else if constexpr (T == 14) return &k_mv_q6k_xs<T, W>;
    else return &k_mv_staged_xs<T, W>;
}
static bool mv_xs_on(void) {
    static int on = -1;
    return env_on("ROCMFORGE_GPU_MV_XS", &on);
}

/* The wide-load mat-vec of type T (Q4_0, Q8_0, Q4_K, Q6_K), with the fused
 * norm prologue where NRM (rfk_matmul_norm). */
template <int T, int W, int NT, bool NRM>
static int launch_mv_wide(const mm_args *a, int64_t t0, int nt, const rfk_mv_norm &nrm) {
    static_assert(T == 2 || T == 8 || T == 12 || T == 14, "a type with a wide kernel");
    const int64_t n_chunks = a->cols / 32, nb = T == 12 || T == 14 ? n_chunks / 8 : n_chunks; /* K-quants: 256s */
    const int *xq = a->xq ? a->xq + t0 * n_chunks * 8 : NULL;
    const float2 *xd = a->xd ? a->xd + t0 * n_chunks : NULL;
    static int occ = -1;
    if constexpr (!NRM && NT == 1 && (T == 2 || T == 12 || T == 14)) {
        if (a->cols <= (T == 14 ? MV_XS_MAX_Q6K : MV_XS_MAX) && mv_xs_on()) {
            static int occ_xs = -1;
            constexpr auto k = mv_xs_kernel<T, W>();
            const int64_t blocks = mv_blocks(a->ctx, k, a->rows, W, &occ_xs);
            RFK_LAUNCH_EARLY(a->ctx, "matvec_q8", k, rfk_d3(blocks), rfk_d3(MV_BLOCK), 0, a->stream, a->w,
                             a->row_bytes, nb, a->rows, xq, xd, mv_out_at(a, t0), nt);
            return RFK_OK;
        }
    }
    if constexpr (NRM) {
        constexpr auto k = mv_wide_norm_kernel<T, W>();
        const int64_t blocks = mv_blocks(a->ctx, k, a->rows, W, &occ);
        RFK_LAUNCH_EARLY(a->ctx, "matvec_norm", k, rfk_d3(blocks), rfk_d3(MV_BLOCK), 0, a->stream, a->w,
                         a->row_bytes, nb, a->rows, xq, xd, mv_out_at(a, t0), nt, nrm);
    } else {
        constexpr auto k = mv_wide_kernel<T, W, NT>();
        const int64_t blocks = mv_blocks(a->ctx, k, a->rows, W, &occ);
        RFK_LAUNCH_EARLY(a->ctx, "matvec_q8", k, rfk_d3(blocks), rfk_d3(MV_BLOCK), 0, a->stream, a->w,
                         a->row_bytes, nb, a->rows, xq, xd, mv_out_at(a, t0), nt);
    }
    return RFK_OK;
}

template <int T, int W, int NT> static int launch_matvec_q8_nt(const mm_args *a, int64_t t0, int nt) {
    const int64_t rows_per_block = MV_BLOCK / W, n_chunks = a->cols / 32;
    if constexpr (T == 2 || T == 8 || T == 12 || T == 14) {
        if (mv_wide_ok(a)) return launch_mv_wide<T, W, NT, false>(a, t0, nt, rfk_mv_norm{});
    }
    RFK_LAUNCH(a->ctx, "matvec_q8", (k_matvec_q8<T, W, NT>), rfk_d3((a->rows + rows_per_block - 1) / rows_per_block),
               rfk_d3(MV_BLOCK), 0, a->stream, a->w, a->row_bytes, n_chunks, a->rows, a->xq + t0 * n_chunks * 8,
               a->xd + t0 * n_chunks, mv_out_at(a, t0), nt);
    return RFK_OK;
}

/* Instantiations only where the type has an integer dot. */
template <int T, int W, int NT> static int launch_mv_any(const mm_args *a, int64_t t0, int nt) {
    if constexpr (rfk_has_vdot<rfk_q<T>>::value) {
        if (a->xq) return launch_matvec_q8_nt<T, W, NT>(a, t0, nt);
    }
    return launch_matvec_nt<T, W, NT>(a, t0, nt);
}

/* Batches of at least this many tokens take the int8 matrix-product kernel
 * (mmq.cu) where the type has one: ROCMFORGE_GPU_MMQ_MIN, 0 = never. */
#define MMQ_MIN_DEFAULT 3 /* H100, 14336 x 4096 Q4_0 and Q4_K: mat-vec 26 us at 2 tokens, 37 at 4;
                             mmq (the row-tiled kernel) 26 us at 8 */
static int64_t mmq_min(void) {
    static int64_t v = -1;
    if (v < 0) {
        const char *e = getenv("ROCMFORGE_GPU_MMQ_MIN");
        v = e ? atoll(e) : MMQ_MIN_DEFAULT;
        if (v <= 0) v = RFK_MMQ_MAX_N + 1;
    }
    return v;
}

static bool use_mmq(uint32_t type, bool q8, int64_t n_tok) {
    return q8 && rfk_mmq_supports(type) && n_tok >= mmq_min() && n_tok <= RFK_MMQ_MAX_N;
}

template <int T, int W> static int launch_matvec(const mm_args *a) {
    if constexpr (rfk_has_vdot<rfk_q<T>>::value) {
        /* float16 products where they apply: on the float16 copy a producer
           left in scratch (x_quantized), else converted from the float x */
        if (a->xh && (a->x_quantized || (a->x && ((uintptr_t)a->x & 15) == 0)) && use_mmq(T, true, a->n_tok) &&
            rfk_mmq_f16_fits(a->ctx, T, a->w, a->row_bytes, a->cols, a->rows, a->n_tok))
            return rfk_mmq_f16(a->ctx, a->stream, T, a->w, a->row_bytes, a->cols, a->rows,
                               a->x_quantized ? NULL : a->x, a->xh, a->y, a->n_tok);
        if (a->xq && !a->x_quantized) { /* for the int8 products: no float16 copy */
            const int64_t n_quads = a->n_tok * a->cols / 4;
            RFK_LAUNCH(a->ctx, "quantize_q8", k_quantize_q8<W>, rfk_d3((n_quads + 255) / 256), rfk_d3(256), 0,
                       a->stream, a->x, a->n_tok * a->cols / 32, a->xq, a->xd, (uint32_t *)NULL);
        }
        if (use_mmq(T, a->xq != NULL, a->n_tok))
            return rfk_mmq(a->ctx, a->stream, T, a->w, a->row_bytes, a->cols, a->rows, a->xq, a->xd, a->y, a->n_tok);
    }
    for (int64_t t0 = 0; t0 < a->n_tok; t0 += MV_MAX_NT) {
        const int nt = (int)(a->n_tok - t0 < MV_MAX_NT ? a->n_tok - t0 : MV_MAX_NT);
        /* Smallest instantiation that holds nt: unused accumulators cost
         * registers, and decode (nt = 1) is the case that matters most. */
        int st = nt == 1 ? launch_mv_any<T, W, 1>(a, t0, nt)
                 : nt == 2 ? launch_mv_any<T, W, 2>(a, t0, nt)
                 : nt <= 4 ? launch_mv_any<T, W, 4>(a, t0, nt)
                           : launch_mv_any<T, W, 8>(a, t0, nt);
        if (st) return st;
    }
    return RFK_OK;
}

template <int T> static int launch_matmul(const mm_args *a) {
    if (a->n_tok <= MV_MAX_BATCH) {
        RFK_IF_WARP64(if (a->ctx->warp_size == 64) return launch_matvec<T, 64>(a);)
        return launch_matvec<T, 32>(a);
    }
    RFK_LAUNCH(a->ctx, "mm_tiled", k_mm_tiled<T>, rfk_d3((a->rows + TL_M - 1) / TL_M, (a->n_tok + TL_N - 1) / TL_N),
               rfk_d3(256), 0, a->stream, a->w, a->row_bytes, a->cols / 32, a->rows, a->x, a->cols, a->y.y[0], a->n_tok);
    return RFK_OK;
}

template <int T>
static int launch_get_rows(const rfk_ctx *ctx, void *stream, const uint8_t *w, size_t row_bytes, int64_t cols,
                           int64_t rows, const int32_t *ids, int64_t n, float *out) {
    RFK_LAUNCH(ctx, "get_rows", k_get_rows<T>, rfk_d3(n), rfk_d3(128), 0, stream, w, row_bytes, cols / 32, rows,
               ids, out);
    return RFK_OK;
}

/* ---- the per-type table -------------------------------------------------- */

typedef struct mm_type {
    uint32_t type;
    bool int_dot; /* has the q8-activation mat-vec */
    int64_t blck;
    size_t bytes;
    int (*matmul)(const mm_args *a);
    int (*get_rows)(const rfk_ctx *, void *, const uint8_t *, size_t, int64_t, int64_t, const int32_t *, int64_t,
                    float *);
} mm_type;

#define RFK_MM_ROW(id, name) {id, rfk_has_vdot<rfk_q<id>>::value, rfk_q<id>::blck, rfk_q<id>::bytes, launch_matmul<id>, launch_get_rows<id>},
static const mm_type mm_types[] = {RFK_FOR_EACH_TYPE(RFK_MM_ROW)};
static_assert(sizeof mm_types / sizeof mm_types[0] == RFK_N_TYPES, "one row per decoded type");

static const mm_type *mm_find(uint32_t type) {
    for (size_t i = 0; i < RFK_N_TYPES; i++)
        if (mm_types[i].type == type) return &mm_types[i];
    return NULL;
}

/* The shape checks both entry points share: whole 32-element chunks, whole
 * blocks, and a row size that matches the format. */
static int mm_check(const mm_type *t, size_t row_bytes, int64_t cols, int64_t rows) {
    if (!t) return RFK_E_UNSUPPORTED;
    if (cols <= 0 || rows <= 0 || cols % 32 || cols % t->blck) return RFK_E_INVAL;
    const size_t need = (size_t)(cols / t->blck) * t->bytes;
    /* Exact rows keep every block at its natural alignment; padded rows
     * must keep 16 bytes so the decoders' wide loads stay aligned. */
    if (row_bytes < need || (row_bytes != need && row_bytes % 16)) return RFK_E_INVAL;
    return RFK_OK;
}

/* ---- public entry points ------------------------------------------------- */

extern "C" int rfk_matmul_supports(uint32_t type) { return mm_find(type) != NULL; }

extern "C" int rfk_matmul_mmq(uint32_t type) { return use_mmq(type, true, RFK_MMQ_MAX_N); }

/* q8 activations: n_tok * cols int8, then (d, d * sum) per 32 as float2,
 * 16-byte aligned. Only the mat-vec path (n_tok <= MV_MAX_BATCH) uses them.
 * From 3 tokens (where rfk_mmq_f16 may run) they are followed, 16-byte
 * aligned, by n_tok * cols float16 activations (kcommon.cuh's
 * rfk_xh_offset and rfk_xh_store). */
static size_t q8_xd_offset(int64_t cols, int64_t n_tok) { return rfk_q8_xd_offset(cols, n_tok); }
static size_t q8_bytes(int64_t cols, int64_t n_tok) { return rfk_xh_offset(cols, n_tok); }

extern "C" size_t rfk_matmul_scratch_bytes(uint32_t type, int64_t cols, int64_t n_tok) {
    const mm_type *t = mm_find(type);
    if (!t || !t->int_dot || cols <= 0 || cols % 32 || n_tok <= 0) return 0;
    if (n_tok > MV_MAX_BATCH) n_tok = MV_MAX_BATCH;
    return q8_bytes(cols, n_tok) + (n_tok >= 3 ? (size_t)(n_tok * cols) * sizeof(uint16_t) : 0);
}

extern "C" int rfk_matmul_plan(const rfk_ctx *ctx, uint32_t type, int64_t cols, int64_t rows, int64_t n_tok,
                               rfk_launch_plan *out) {
    const mm_type *t = mm_find(type);
    if (!t || cols <= 0 || rfk_warp_status(ctx) || n_tok <= 0 || !out) return 0;
    if (mm_check(t, (size_t)(cols / t->blck) * t->bytes, cols, rows)) return 0; /* shape as with exact rows */
    if (n_tok <= MV_MAX_BATCH) {
        const int64_t rpb = MV_BLOCK / ctx->warp_size;
        out->kernel = "matvec";
        out->grid = rfk_d3((rows + rpb - 1) / rpb);
        out->block = rfk_d3(MV_BLOCK);
        out->launches = (int)((n_tok + MV_MAX_NT - 1) / MV_MAX_NT);
    } else {
        out->kernel = "mm_tiled";
        out->grid = rfk_d3((rows + TL_M - 1) / TL_M, (n_tok + TL_N - 1) / TL_N);
        out->block = rfk_d3(256);
        out->launches = 1;
    }
    out->smem_bytes = 0;
    return out->launches;
}

/* The output parts (1..3 non-empty row ranges covering rows exactly) into
 * *o, the unused parts' ranges past any row; false if they are not that. */
static bool mm_parts_ok(const rfk_mm_out *out, int64_t rows, rfk_mm_out *o) {
    *o = rfk_mm_out{};
    if (out->n < 1 || out->n > 3) return false;
    int64_t sum = 0;
    for (int i = 0; i < out->n; i++) {
        if (!out->y[i] || out->rows[i] <= 0) return false;
        o->y[i] = out->y[i];
        o->rows[i] = out->rows[i];
        sum += out->rows[i];
    }
    for (int i = out->n; i < 3; i++) o->rows[i] = INT64_MAX; /* never reached */
    o->n = out->n;
    return sum == rows;
}

extern "C" int rfk_matmul_ex(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w, size_t row_bytes,
                             int64_t cols, int64_t rows, const float *x, const rfk_mm_out *out, int64_t n_tok,
                             void *scratch, size_t scratch_bytes, int x_quantized) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    const mm_type *t = mm_find(type);
    if ((st = mm_check(t, row_bytes, cols, rows))) return st;
    if (!w || !out || n_tok <= 0 || ((uintptr_t)w & 15)) return RFK_E_INVAL;
    if (x_quantized ? !scratch || !t->int_dot || n_tok > MV_MAX_BATCH : !x || ((uintptr_t)x & 15)) return RFK_E_INVAL;
    /* the parts: 1..3 non-empty row ranges covering rows exactly */
    if (out->n < 1 || out->n > 3 || (out->n > 1 && n_tok > MV_MAX_BATCH)) return RFK_E_INVAL;
    rfk_mm_out o;
    if (!mm_parts_ok(out, rows, &o)) return RFK_E_INVAL;
    mm_args a = {ctx, stream, (const uint8_t *)w, row_bytes, cols, rows, x, o, n_tok, x_quantized != 0, NULL, NULL, NULL};
    if (scratch && t->int_dot && n_tok <= MV_MAX_BATCH) {
        if (scratch_bytes < rfk_matmul_scratch_bytes(type, cols, n_tok) || ((uintptr_t)scratch & 15))
            return RFK_E_SCRATCH;
        a.xq = (int *)scratch;
        a.xd = (float2 *)((uint8_t *)scratch + q8_xd_offset(cols, n_tok));
        if (n_tok >= 3) a.xh = (uint16_t *)((uint8_t *)scratch + q8_bytes(cols, n_tok));
    }
    return t->matmul(&a);
}

extern "C" int rfk_matmul(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w, size_t row_bytes,
                          int64_t cols, int64_t rows, const float *x, float *y, int64_t n_tok, void *scratch,
                          size_t scratch_bytes) {
    if (!y) return RFK_E_INVAL;
    rfk_mm_out o = {{y, NULL, NULL}, {rows, 0, 0}, 1};
    return rfk_matmul_ex(ctx, stream, type, w, row_bytes, cols, rows, x, &o, n_tok, scratch, scratch_bytes, 0);
}

template <int T> static int launch_mv_norm(const mm_args *a, const rfk_mv_norm &nrm) {
    RFK_IF_WARP64(if (a->ctx->warp_size == 64) return launch_mv_wide<T, 64, 1, true>(a, 0, 1, nrm);)
    return launch_mv_wide<T, 32, 1, true>(a, 0, 1, nrm);
}

extern "C" int rfk_matmul_norm(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w, size_t row_bytes,
                               int64_t cols, int64_t rows, const rfk_mv_norm *norm, const rfk_mm_out *out) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    const mm_type *t = mm_find(type);
    if ((st = mm_check(t, row_bytes, cols, rows))) return st;
    if (!w || !out || !norm || !norm->x || !norm->y || norm->y == norm->x || !norm->ticket || ((uintptr_t)w & 15))
        return RFK_E_INVAL;
    if ((((uintptr_t)norm->x | (uintptr_t)norm->delta | (uintptr_t)norm->w | (uintptr_t)norm->y) & 15))
        return RFK_E_UNSUPPORTED; /* the norm's 16-byte loads */
    rfk_mm_out o;
    if (!mm_parts_ok(out, rows, &o)) return RFK_E_INVAL;
    mm_args a = {ctx, stream, (const uint8_t *)w, row_bytes, cols, rows, NULL, o, 1, true, NULL, NULL, NULL};
    /* what the fused kernels take: rows of whole 16-byte vectors, a row the
       norm's registers hold */
    if (cols % 32 || cols > MV_NORM_MAX || !mv_wide_ok(&a)) return RFK_E_UNSUPPORTED;
    switch (type) {
    case 2: return launch_mv_norm<2>(&a, *norm);
    case 8: return launch_mv_norm<8>(&a, *norm);
    case 12: return launch_mv_norm<12>(&a, *norm);
    case 14: return launch_mv_norm<14>(&a, *norm);
    default: return RFK_E_UNSUPPORTED;
    }
}

template <int W>
static int launch_quantize(const rfk_ctx *ctx, void *stream, const float *x, int64_t n_blocks, int *xq, float2 *xd,
                           uint32_t *xh) {
    RFK_LAUNCH(ctx, "quantize_q8", k_quantize_q8<W>, rfk_d3((n_blocks * 8 + 255) / 256), rfk_d3(256), 0, stream, x,
               n_blocks, xq, xd, xh);
    return RFK_OK;
}

extern "C" int rfk_quantize_q8(const rfk_ctx *ctx, void *stream, const float *x, int64_t cols, int64_t n_tok,
                               void *scratch, size_t scratch_bytes) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    if (!x || !scratch || cols <= 0 || cols % 32 || n_tok <= 0 || n_tok > MV_MAX_BATCH || ((uintptr_t)x & 15))
        return RFK_E_INVAL;
    if (scratch_bytes < rfk_matmul_scratch_bytes(2 /* any integer-dot type */, cols, n_tok) || ((uintptr_t)scratch & 15))
        return RFK_E_SCRATCH;
    int *xq = (int *)scratch;
    float2 *xd = (float2 *)((uint8_t *)scratch + q8_xd_offset(cols, n_tok));
    uint32_t *xh = n_tok >= 3 ? (uint32_t *)((uint8_t *)scratch + q8_bytes(cols, n_tok)) : NULL;
    RFK_IF_WARP64(if (ctx->warp_size == 64) return launch_quantize<64>(ctx, stream, x, n_tok * cols / 32, xq, xd, xh);)
    return launch_quantize<32>(ctx, stream, x, n_tok * cols / 32, xq, xd, xh);
}

extern "C" int rfk_get_rows(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w, size_t row_bytes,
                            int64_t cols, int64_t rows, const int32_t *ids, int64_t n, float *out) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    const mm_type *t = mm_find(type);
    if ((st = mm_check(t, row_bytes, cols, rows))) return st;
    if (!w || !ids || !out || n < 0 || ((uintptr_t)out & 15) || ((uintptr_t)w & 15)) return RFK_E_INVAL;
    if (n == 0) return RFK_OK;
    return t->get_rows(ctx, stream, (const uint8_t *)w, row_bytes, cols, rows, ids, n, out);
}
