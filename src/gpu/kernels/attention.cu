/*
 * attention.cu - the paged KV cache on the GPU: storing a step's keys and
 * values (float32 -> float16 into the slots the block tables name) and
 * attention over it with an online softmax, for prefill and decode alike.
 *
 * Attention: one block of 4 warps (8 or 16 for decode of few sequences)
 * per (query head, token), or, where the blocks are many and kv heads are
 * shared, one block of 8 warps per (2 or 4 query heads of a kv head,
 * token). Warps take tiles of TK consecutive key positions in turn (W, or
 * 8 over short ranges and for several heads). Each lane owns head-dim
 * pairs of the (pre-scaled) queries, so every key row is read with
 * coalesced loads; the TK per-lane partial dots of a tile are
 * reduce-scattered in a butterfly so that lane j ends with key j % TK's
 * score; the warp updates its running max / sum and accumulates the TK
 * value rows (coalesced too). The warps' partial (max, sum, accumulator)
 * are merged at the end; with q8 scratch the output's q8 blocks are
 * written there too (the o projection's input). Causal by position,
 * optional sliding window, GQA by kv head = head / group: a block of
 * several query heads reads each key and value row once for all of them
 * (per-head blocks re-read the kv head; the L2 serves the repeats).
 * Decode of few sequences over long contexts splits each key range over
 * several blocks (given scratch) and merges the pieces in k_attn_combine.
 * Decode of one token per sequence can hand the kernel the step's own keys
 * and values (rfk_attn_args.k_new): it then rotates q and the key itself,
 * takes the newest key from registers after its walk of the cache and
 * stores key and value there, which folds the RoPE + KV store launch in.
 * The kernel ahead then writes nothing of the cache it reads, so it is
 * launched early and its warps load their first tile of 8 keys and values
 * before they wait for that kernel (q): over short ranges that is all of
 * them, and the loads overlap the mat-vec that computes q.
 */
#include <limits.h>
#include <stdlib.h>

#include "kcommon.cuh"

#define ATT_WARPS 4
#define ATT_MAX_HD 256
#define ATT_MAX_SPLIT 16   /* key-range pieces per (head, token) at most */
#define ATT_SPLIT_ROWS 256 /* split only when n_tok * n_head <= this */

__global__ void k_kv_store(uint16_t *kc, uint16_t *vc, const int32_t *__restrict__ tables, int64_t max_blocks,
                           int64_t kv_dim, int bs, const float *__restrict__ k, const float *__restrict__ v,
                           const int32_t *__restrict__ pos, const int32_t *__restrict__ seq) {
    const int64_t t = blockIdx.x;
    const int32_t p = pos[t];
    const int32_t blk = tables[(int64_t)seq[t] * max_blocks + p / bs];
    if (blk < 0) return; /* unreserved position: the host's contract was broken; write nothing */
    const size_t off = ((size_t)blk * bs + (size_t)(p % bs)) * (size_t)kv_dim;
    for (int64_t i = threadIdx.x; i < kv_dim; i += blockDim.x) {
        kc[off + i] = rfk_f2h(k[t * kv_dim + i]);
        vc[off + i] = rfk_f2h(v[t * kv_dim + i]);
    }
}

extern "C" int rfk_kv_store(const rfk_ctx *ctx, void *stream, const rfk_kv_view *kv, const float *k, const float *v,
                            const int32_t *pos, const int32_t *seq, int64_t n_tok) {
    if (!ctx || !kv || !kv->k || !kv->v || !kv->tables || !k || !v || !pos || !seq || n_tok < 0 || kv->kv_dim <= 0 ||
        kv->block_size <= 0)
        return RFK_E_INVAL;
    if (n_tok == 0) return RFK_OK;
    RFK_LAUNCH(ctx, "kv_store", k_kv_store, rfk_d3(n_tok), rfk_d3(128), 0, stream, kv->k, kv->v, kv->tables,
               kv->max_blocks_per_seq, kv->kv_dim, kv->block_size, k, v, pos, seq);
    return RFK_OK;
}

/* Reduce-scatter of W per-lane partial sums p[0..W) (p[j]: this lane's
 * part of key j's dot product) in log2(W) butterfly stages of halving
 * width: afterwards p[0] of lane l holds the full sum for key l, at W - 1
 * shuffles per lane instead of log2(W) per key. */
template <int W, int N> static __device__ __forceinline__ void rfk_bfly(float *p, int lane) {
    if constexpr (N > 1) {
        constexpr int H = N / 2;
        const bool up = (lane & H) != 0;
#pragma unroll
        for (int i = 0; i < H; i++) {
            const float keep = up ? p[i + H] : p[i], send = up ? p[i] : p[i + H];
            p[i] = keep + RFK_SHFL_XOR(send, H, W);
        }
        rfk_bfly<W, H>(p, lane);
    }
}

/* The step's own keys and values (rfk_attn_args.k_new; k NULL: none):
 * RoPE of q and the key, and the KV store, done by the attention. */
struct att_new {
    const float *k, *v, *cs;
    uint16_t *kc, *vc; /* the cache, written at pos[t] */
    int n_rot, neox;
};

template <int W, int NWARP, int TK, int NP, int G>
__global__ void __launch_bounds__(NWARP * W, G > 1 && TK * NP <= 16 ? 2 : 0)
    k_attention(const float *__restrict__ q, float *__restrict__ out, const int32_t *__restrict__ pos,
                const int32_t *__restrict__ seq, const uint16_t *__restrict__ kc, const uint16_t *__restrict__ vc,
                const int32_t *__restrict__ tables, int64_t max_blocks, int64_t kv_dim, int bs, int64_t n_head,
                int64_t group, int hd, float scale, int64_t window, float *__restrict__ part, int *__restrict__ xq,
                float2 *__restrict__ xd, uint32_t *__restrict__ xh, att_new nw) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        rfk_grid_release(); /* the next kernel may start early (RFK_LAUNCH_EARLY) */
        /* NP head-dim pairs per lane: dims 2(lane + W j) .. +1, j < NP (2 NP W >= hd) */
        static_assert(TK <= W && W % TK == 0, "a tile's keys map onto the lanes");
        constexpr int HDW = 2 * NP * W < ATT_MAX_HD ? 2 * NP * W : ATT_MAX_HD; /* head dims a warp holds */
        __shared__ float m_w[NWARP][G], l_w[NWARP][G];
        __shared__ float acc_w[NWARP][G][HDW];
        const int lane = threadIdx.x % W, warp = threadIdx.x / W;
        /* heads h0 .. h0 + G - 1, one kv head (G divides group) */
        const int64_t h0 = (int64_t)blockIdx.x * G, t = blockIdx.y, kvh = h0 / group;
        /* Keys [lo, p_end]; with a split (gridDim.z > 1, part != NULL) this
         * block takes piece blockIdx.z of gridDim.z of that range. */
        const int64_t p_new = pos[t];
        int64_t p_end = p_new;
        int64_t lo = window > 0 && p_end - window + 1 > 0 ? p_end - window + 1 : 0;
        if (gridDim.z > 1) {
            const int64_t piece = (p_end - lo + gridDim.z) / gridDim.z;
            lo += (int64_t)blockIdx.z * piece;
            p_end = lo + piece - 1 < p_end ? lo + piece - 1 : p_end; /* may leave lo > p_end: empty */
        }
        /* With nw, the piece that holds p_new walks the cache up to the key
         * before it and takes that key from nw. */
        const bool own = nw.k && lo <= p_new && p_end == p_new;
        const int64_t p_walk = own ? p_new - 1 : p_end;
        const int32_t *table = tables + (int64_t)seq[t] * max_blocks;
        const uint16_t *kh = kc + (size_t)kvh * hd, *vh = vc + (size_t)kvh * hd;
        /* A tile: the cache row of key ts + lane % TK (lanes past the range
         * take key ts's row, a valid one, so that all TK rows' loads can be
         * in flight at once; their scores are masked), and the words of this
         * lane's head-dim pairs of every key and value (each row read once
         * for the G heads). PRE: tiles that fit in registers (8-key tiles:
         * TK x NP words of keys and as many of values) load those words
         * ahead, keys and values together; W-key tiles load each row as
         * they use it. */
        constexpr bool PRE = TK * NP <= 16;
        int32_t my_row = 0;
        uint32_t kw[PRE ? TK : 1][NP], vw[PRE ? TK : 1][NP];
        auto row_of = [&](int64_t ts) {
            const int kl = lane % TK;
            const int64_t my_p = ts + (ts + kl <= p_walk ? kl : 0);
            my_row = table[my_p / bs] * bs + (int32_t)(my_p % bs);
        };
        auto load = [&](int64_t ts) {
            row_of(ts);
#pragma unroll
            for (int j = 0; j < (PRE ? TK : 0); j++) { /* PRE only */
                const int32_t rj = RFK_SHFL(my_row, j, W);
                const uint32_t *kr = (const uint32_t *)(kh + (size_t)rj * kv_dim),
                               *vr = (const uint32_t *)(vh + (size_t)rj * kv_dim);
#pragma unroll
                for (int jj = 0; jj < NP; jj++) {
                    const int d2 = lane + W * jj;
                    kw[j][jj] = 2 * d2 < hd ? kr[d2] : 0u;
                    vw[j][jj] = 2 * d2 < hd ? vr[d2] : 0u;
                }
            }
        };
        /* With nw (the step's keys from registers, so that no kernel of this
         * pass writes the cache rows it reads) the first tile loads before
         * the wait for the kernel ahead (early launch): the tables and rows
         * below p_new are from earlier passes. */
        int64_t ts = lo + (int64_t)warp * TK;
        if (PRE && nw.k && ts <= p_walk) load(ts);
        rfk_grid_wait();
        if (PRE && !nw.k && ts <= p_walk) load(ts);
        const float *cn = nw.k ? nw.cs + t * nw.n_rot : nullptr; /* the token's (cos, sin) pairs */
        float2 q2[G][NP], acc[G][NP];
#pragma unroll
        for (int i = 0; i < G; i++) {
            const float *qr = q + (t * n_head + h0 + i) * hd;
#pragma unroll
            for (int j = 0; j < NP; j++) {
                const int d2 = lane + W * j;
                float2 qv = make_float2(0.0f, 0.0f);
                if (2 * d2 < hd)
                    qv = nw.k ? make_float2(rfk_rope_at(qr, cn, 2 * d2, nw.n_rot, nw.neox),
                                            rfk_rope_at(qr, cn, 2 * d2 + 1, nw.n_rot, nw.neox))
                              : make_float2(qr[2 * d2], qr[2 * d2 + 1]);
                q2[i][j] = make_float2(qv.x * scale, qv.y * scale);
                acc[i][j] = make_float2(0.0f, 0.0f);
            }
        }
        float m[G], l[G];
#pragma unroll
        for (int i = 0; i < G; i++) m[i] = -INFINITY, l[i] = 0.0f;

        if (own && warp == NWARP - 1) {
            /* the token's own key (rotated) and value, rounded to float16 as
             * the cache holds them, as this warp's first key: before its walk,
             * so that it overlaps the other warps' loads (the last warp has
             * the fewest tiles); one block of each kv head stores them */
            const int64_t kvd = n_head / group * hd;
            const float *kr = nw.k + t * kvd + kvh * hd, *vr = nw.v + t * kvd + kvh * hd;
            const int32_t blk = table[p_new / bs];
            const bool store = h0 % group == 0 && blk >= 0; /* blk < 0: unreserved, as rfk_kv_store */
            const size_t off = ((size_t)blk * bs + (size_t)(p_new % bs)) * (size_t)kv_dim + (size_t)kvh * hd;
            float dot[G];
#pragma unroll
            for (int i = 0; i < G; i++) dot[i] = 0.0f;
#pragma unroll
            for (int j = 0; j < NP; j++) {
                const int d2 = lane + W * j;
                if (2 * d2 < hd) {
                    const unsigned short k0 = rfk_f2h(rfk_rope_at(kr, cn, 2 * d2, nw.n_rot, nw.neox)),
                                         k1 = rfk_f2h(rfk_rope_at(kr, cn, 2 * d2 + 1, nw.n_rot, nw.neox)),
                                         v0 = rfk_f2h(vr[2 * d2]), v1 = rfk_f2h(vr[2 * d2 + 1]);
                    if (store) {
                        ((uint32_t *)(nw.kc + off))[d2] = (uint32_t)k0 | (uint32_t)k1 << 16;
                        ((uint32_t *)(nw.vc + off))[d2] = (uint32_t)v0 | (uint32_t)v1 << 16;
                    }
#pragma unroll
                    for (int i = 0; i < G; i++) {
                        dot[i] += q2[i][j].x * rfk_h2f(k0) + q2[i][j].y * rfk_h2f(k1);
                        acc[i][j] = make_float2(rfk_h2f(v0), rfk_h2f(v1)); /* weight exp(s - m) = 1 */
                    }
                }
            }
#pragma unroll
            for (int i = 0; i < G; i++) m[i] = rfk_warp_sum<W>(dot[i]), l[i] = 1.0f;
        }
        for (; ts <= p_walk; ts += (int64_t)NWARP * TK) {
            const int n_valid = (int)(p_walk - ts + 1 < TK ? p_walk - ts + 1 : TK);
            const bool valid = lane % TK < n_valid;
            if constexpr (!PRE) row_of(ts);
            float sp[G][TK];
#pragma unroll
            for (int j = 0; j < TK; j++) {
#pragma unroll
                for (int i = 0; i < G; i++) sp[i][j] = 0.0f;
                const uint32_t *kr = nullptr;
                if constexpr (!PRE) kr = (const uint32_t *)(kh + (size_t)RFK_SHFL(my_row, j, W) * kv_dim);
#pragma unroll
                for (int jj = 0; jj < NP; jj++) {
                    const int d2 = lane + W * jj;
                    uint32_t u; /* 0 past hd: adds nothing */
                    if constexpr (PRE) u = kw[j][jj];
                    else u = 2 * d2 < hd ? kr[d2] : 0u;
                    const float k0 = rfk_h2f((unsigned short)(u & 0xFFFF)), k1 = rfk_h2f((unsigned short)(u >> 16));
#pragma unroll
                    for (int i = 0; i < G; i++) sp[i][j] += q2[i][jj].x * k0 + q2[i][jj].y * k1;
                }
            }
            float pl[G], corr[G];
#pragma unroll
            for (int i = 0; i < G; i++) {
                /* lane l: key l % TK summed over its group of TK lanes, then
                 * over the W / TK groups */
                rfk_bfly<W, TK>(sp[i], lane);
                float sc = sp[i][0];
#pragma unroll
                for (int o = TK; o < W; o *= 2) sc += RFK_SHFL_XOR(sc, o, W);
                const float s = valid ? sc : -INFINITY;
                /* Lane 0's key (ts) is always in range, so m_new is finite. */
                const float m_new = fmaxf(m[i], rfk_warp_max<W>(s));
                corr[i] = expf(m[i] - m_new); /* m = -inf on the first tile: 0 */
                pl[i] = valid ? expf(s - m_new) : 0.0f;
                l[i] = l[i] * corr[i] + rfk_warp_sum<W>(lane < TK ? pl[i] : 0.0f); /* each key once */
                m[i] = m_new;
#pragma unroll
                for (int j = 0; j < NP; j++) acc[i][j].x *= corr[i], acc[i][j].y *= corr[i];
            }
            /* Unguarded: pl is 0 past n_valid. */
#pragma unroll
            for (int k = 0; k < TK; k++) {
                float pk[G];
#pragma unroll
                for (int i = 0; i < G; i++) pk[i] = RFK_SHFL(pl[i], k, W);
                const uint32_t *vr = nullptr;
                if constexpr (!PRE) vr = (const uint32_t *)(vh + (size_t)RFK_SHFL(my_row, k, W) * kv_dim);
#pragma unroll
                for (int j = 0; j < NP; j++) {
                    const int d2 = lane + W * j;
                    uint32_t u;
                    if constexpr (PRE) u = vw[k][j];
                    else u = 2 * d2 < hd ? vr[d2] : 0u;
                    const float v0 = rfk_h2f((unsigned short)(u & 0xFFFF)), v1 = rfk_h2f((unsigned short)(u >> 16));
#pragma unroll
                    for (int i = 0; i < G; i++) acc[i][j].x += pk[i] * v0, acc[i][j].y += pk[i] * v1;
                }
            }
            if (PRE && ts + (int64_t)NWARP * TK <= p_walk) load(ts + (int64_t)NWARP * TK);
        }
#pragma unroll
        for (int i = 0; i < G; i++) {
            if (lane == 0) m_w[warp][i] = m[i], l_w[warp][i] = l[i];
#pragma unroll
            for (int j = 0; j < NP; j++) {
                const int d2 = lane + W * j;
                if (2 * d2 < hd) acc_w[warp][i][2 * d2] = acc[i][j].x, acc_w[warp][i][2 * d2 + 1] = acc[i][j].y;
            }
        }
        __syncthreads();
        /* Split: the unnormalized (max, sum, accumulator) go to part for
         * k_attn_combine; an empty piece leaves (-inf, 0, 0). The G heads'
         * outputs are consecutive: one pass over G * hd values. */
        const int64_t rows = gridDim.y * n_head, bi = (int64_t)blockIdx.z * rows + t * n_head + h0;
        float *o = part ? part + 2 * gridDim.z * rows + bi * hd : out + (t * n_head + h0) * hd;
        if (part && threadIdx.x < G) {
            const int i = threadIdx.x;
            float mx = -INFINITY, den = 0.0f;
            for (int w = 0; w < NWARP; w++) mx = fmaxf(mx, m_w[w][i]);
            for (int w = 0; w < NWARP; w++) den += m_w[w][i] == -INFINITY ? 0.0f : expf(m_w[w][i] - mx) * l_w[w][i];
            part[2 * (bi + i)] = mx, part[2 * (bi + i) + 1] = den;
        }
        /* whole rounds of the block, so that every lane takes part in the
         * q8 shuffles (hd a multiple of 32 when xq is given) */
        for (int e0 = 0; e0 < G * hd; e0 += blockDim.x) {
            const int e = e0 + threadIdx.x, i = e / hd, d = e % hd;
            float num = 0.0f, den = 1.0f;
            if (e < G * hd) {
                float mx = -INFINITY;
#pragma unroll
                for (int w = 0; w < NWARP; w++) mx = fmaxf(mx, m_w[w][i]);
                den = 0.0f;
#pragma unroll
                for (int w = 0; w < NWARP; w++) { /* a warp that saw no key adds nothing */
                    const float f = m_w[w][i] == -INFINITY ? 0.0f : expf(m_w[w][i] - mx);
                    den += f * l_w[w][i];
                    num += f * acc_w[w][i][d];
                }
                o[e] = part ? num : num / den;
            }
            if (xq && !part)
                rfk_q8_store1(e < G * hd ? num / den : 0.0f, (t * n_head + h0) * hd + e, e < G * hd, xq, xd, xh);
        }
    }
}

/* Merges the n_split pieces of each (head, token): out = sum_s e_s acc_s /
 * sum_s e_s l_s with e_s = exp(m_s - max m). */
__global__ void k_attn_combine(const float *__restrict__ part, float *__restrict__ out, int64_t n_head, int hd,
                               int n_split, int *__restrict__ xq, float2 *__restrict__ xd, uint32_t *__restrict__ xh) {
    rfk_grid_release(); /* the next kernel may start early (RFK_LAUNCH_EARLY) */
    const int64_t rows = gridDim.y * n_head, r = blockIdx.y * n_head + blockIdx.x;
    float mx = -INFINITY, den = 0.0f;
    for (int sp = 0; sp < n_split; sp++) mx = fmaxf(mx, part[2 * (sp * rows + r)]);
    for (int sp = 0; sp < n_split; sp++) {
        const float m = part[2 * (sp * rows + r)];
        den += m == -INFINITY ? 0.0f : expf(m - mx) * part[2 * (sp * rows + r) + 1];
    }
    const float *acc = part + 2 * (int64_t)n_split * rows;
    for (int d0 = 0; d0 < hd; d0 += blockDim.x) { /* whole rounds: see k_attention */
        const int d = d0 + threadIdx.x;
        float num = 0.0f;
        if (d < hd) {
            for (int sp = 0; sp < n_split; sp++) {
                const float m = part[2 * (sp * rows + r)];
                num += m == -INFINITY ? 0.0f : expf(m - mx) * acc[(sp * rows + r) * hd + d];
            }
            out[r * hd + d] = num / den;
        }
        if (xq) rfk_q8_store1(d < hd ? num / den : 0.0f, r * hd + d, d < hd, xq, xd, xh);
    }
}

/* ---- prefill: query tiles against shared key / value tiles ------------------
 * k_attention gives every (head, query) its own block, so a prompt of n
 * tokens reads each key row n times. Here a block takes FA_BQ consecutive
 * queries of one head, and every key / value tile it loads (FA_BK
 * positions, converted to float32 into shared memory once) serves all of
 * them: four threads per query, each owning a quarter of the head
 * dimensions of the query and of its output (scores are summed over the
 * four by two shuffles). Online softmax as k_attention. The block's queries
 * may belong to several sequences (a batch mixing prompts): it walks each
 * distinct sequence's key range in turn, a query taking part only in its
 * own. Keys of a tile past the query's position (or before its window)
 * are masked. */
#define FA_BQ 32
#define FA_BK 32
#define FA_THREADS (FA_BQ * 4)

template <int W, int HD>
__global__ void __launch_bounds__(FA_THREADS)
    k_attn_prefill(const float *__restrict__ q, float *__restrict__ out, const int32_t *__restrict__ pos,
                   const int32_t *__restrict__ seq, int64_t n_tok, int64_t n_head, int group, float scale,
                   int64_t window, const uint16_t *__restrict__ kc, const uint16_t *__restrict__ vc,
                   const int32_t *__restrict__ tables, int64_t max_blocks, int64_t kv_dim, int bs) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        constexpr int DS = HD / 4, RS = 4 * (DS + 4); /* dims per thread; padded row: slices 4 banks apart */
        __shared__ __align__(16) float ks[FA_BK][RS];
        __shared__ __align__(16) float vs[FA_BK][RS];
        __shared__ int qs_seq[FA_BQ], qs_pos[FA_BQ], qs_lo[FA_BQ];
        const int tid = threadIdx.x, ql = tid / 4, sl = tid % 4;
        const int64_t h = blockIdx.y, kvh = h / group, t = (int64_t)blockIdx.x * FA_BQ + ql;
        const bool live = t < n_tok;
        if (sl == 0) {
            const int p = live ? pos[t] : -1;
            qs_seq[ql] = live ? seq[t] : INT_MAX;
            qs_pos[ql] = p;
            qs_lo[ql] = window > 0 ? (p - (int)window + 1 > 0 ? p - (int)window + 1 : 0) : 0;
        }
        float qv[DS], o[DS];
#pragma unroll
        for (int d = 0; d < DS; d += 4) {
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (live) v = *(const float4 *)(q + (t * n_head + h) * HD + sl * DS + d);
            qv[d] = v.x * scale, qv[d + 1] = v.y * scale, qv[d + 2] = v.z * scale, qv[d + 3] = v.w * scale;
            o[d] = o[d + 1] = o[d + 2] = o[d + 3] = 0.0f;
        }
        float m = -INFINITY, l = 0.0f;
        __syncthreads();
        const int my_seq = qs_seq[ql], my_pos = qs_pos[ql], my_lo = qs_lo[ql];
        int prev = INT_MIN;
        for (;;) {
            /* the next sequence of the block and its key range */
            int cur = INT_MAX, klo = INT_MAX, khi = -1;
            for (int i = 0; i < FA_BQ; i++)
                if (qs_seq[i] > prev && qs_seq[i] < cur) cur = qs_seq[i];
            if (cur == INT_MAX) break;
            for (int i = 0; i < FA_BQ; i++)
                if (qs_seq[i] == cur) {
                    klo = qs_lo[i] < klo ? qs_lo[i] : klo;
                    khi = qs_pos[i] > khi ? qs_pos[i] : khi;
                }
            for (int k0 = klo - klo % FA_BK; k0 <= khi; k0 += FA_BK) {
                __syncthreads(); /* the previous tile is consumed */
                for (int e = tid; e < FA_BK * HD / 2; e += FA_THREADS) {
                    const int i = e / (HD / 2), d = 2 * (e % (HD / 2)), p = k0 + i;
                    float2 kf = make_float2(0.0f, 0.0f), vf = kf;
                    if (p <= khi) {
                        const int32_t blk = tables[(int64_t)cur * max_blocks + p / bs];
                        if (blk >= 0) {
                            const size_t off = ((size_t)blk * bs + (size_t)(p % bs)) * (size_t)kv_dim + kvh * HD + d;
                            const uint32_t kw = *(const uint32_t *)(kc + off), vw = *(const uint32_t *)(vc + off);
                            kf = make_float2(rfk_h2f((unsigned short)(kw & 0xFFFF)), rfk_h2f((unsigned short)(kw >> 16)));
                            vf = make_float2(rfk_h2f((unsigned short)(vw & 0xFFFF)), rfk_h2f((unsigned short)(vw >> 16)));
                        }
                    }
                    const int c = (d / DS) * (DS + 4) + d % DS;
                    ks[i][c] = kf.x, ks[i][c + 1] = kf.y;
                    vs[i][c] = vf.x, vs[i][c + 1] = vf.y;
                }
                __syncthreads();
                /* every lane computes (the shuffles below need the whole
                 * warp); a query of another sequence masks all its scores */
                const bool mine = my_seq == cur;
                float sc[FA_BK];
#pragma unroll
                for (int i = 0; i < FA_BK; i++) {
                    const float *kr = &ks[i][sl * (DS + 4)];
                    float a = 0.0f;
#pragma unroll
                    for (int d = 0; d < DS; d += 4) {
                        const float4 kv4 = *(const float4 *)(kr + d);
                        a += qv[d] * kv4.x + qv[d + 1] * kv4.y + qv[d + 2] * kv4.z + qv[d + 3] * kv4.w;
                    }
                    sc[i] = a;
                }
                float mt = -INFINITY;
#pragma unroll
                for (int i = 0; i < FA_BK; i++) {
                    sc[i] += RFK_SHFL_XOR(sc[i], 1, W);
                    sc[i] += RFK_SHFL_XOR(sc[i], 2, W);
                    const int p = k0 + i;
                    if (!mine || p < my_lo || p > my_pos) sc[i] = -INFINITY;
                    mt = fmaxf(mt, sc[i]);
                }
                if (mt == -INFINITY) continue; /* nothing of this tile is visible to the query */
                const float mn = fmaxf(m, mt), corr = expf(m - mn);
                l *= corr;
#pragma unroll
                for (int d = 0; d < DS; d++) o[d] *= corr;
#pragma unroll
                for (int i = 0; i < FA_BK; i++) {
                    const float pe = expf(sc[i] - mn); /* 0 for masked keys */
                    l += pe;
                    const float *vr = &vs[i][sl * (DS + 4)];
#pragma unroll
                    for (int d = 0; d < DS; d += 4) {
                        const float4 v4 = *(const float4 *)(vr + d);
                        o[d] += pe * v4.x, o[d + 1] += pe * v4.y, o[d + 2] += pe * v4.z, o[d + 3] += pe * v4.w;
                    }
                }
                m = mn;
            }
            prev = cur;
        }
        if (live) {
            const float inv = 1.0f / l;
#pragma unroll
            for (int d = 0; d < DS; d += 4)
                *(float4 *)(out + (t * n_head + h) * HD + sl * DS + d) =
                    make_float4(o[d] * inv, o[d + 1] * inv, o[d + 2] * inv, o[d + 3] * inv);
        }
    }
}

template <int W, int HD> static int launch_attn_prefill(const rfk_ctx *ctx, void *stream, const rfk_kv_view *kv,
                                                       const rfk_attn_args *a) {
    RFK_LAUNCH(ctx, "attn_prefill", (k_attn_prefill<W, HD>), rfk_d3((a->n_tok + FA_BQ - 1) / FA_BQ, a->n_head),
               rfk_d3(FA_THREADS), 0, stream, a->q, a->out, a->pos, a->seq, a->n_tok, a->n_head,
               (int)(a->n_head / a->n_head_kv), a->scale, a->window, kv->k, kv->v, kv->tables, kv->max_blocks_per_seq,
               kv->kv_dim, kv->block_size);
    return RFK_OK;
}

/* The tiled prefill kernel: for batches of at least FA_BQ tokens per
 * sequence on average (a->n_seq, from the host; 0 = unknown: never) and
 * the head dims it is built for. */
static bool attn_prefill_applies(const rfk_attn_args *a) {
    if (a->n_seq <= 0 || a->n_tok < a->n_seq * FA_BQ) return false;
    return a->head_dim == 64 || a->head_dim == 80 || a->head_dim == 96 || a->head_dim == 128;
}

template <int W> static int launch_attn_prefill_any(const rfk_ctx *ctx, void *stream, const rfk_kv_view *kv,
                                                    const rfk_attn_args *a) {
    switch (a->head_dim) {
    case 64: return launch_attn_prefill<W, 64>(ctx, stream, kv, a);
    case 80: return launch_attn_prefill<W, 80>(ctx, stream, kv, a);
    case 96: return launch_attn_prefill<W, 96>(ctx, stream, kv, a);
    default: return launch_attn_prefill<W, 128>(ctx, stream, kv, a);
    }
}

/* How many pieces to split each (head, token)'s key range into: only when
 * the (head, token) blocks are too few to fill the GPU and the range is
 * long, aiming at ~512 blocks with at least 256 keys a piece. */
static int attn_split(const rfk_attn_args *a) {
    const int64_t rows = a->n_tok * a->n_head;
    if (!a->scratch || rows > ATT_SPLIT_ROWS || a->max_pos + 1 < 1024) return 1;
    int64_t n = 512 / rows;
    if (n > (a->max_pos + 1) / 256) n = (a->max_pos + 1) / 256;
    if (n > ATT_MAX_SPLIT) n = ATT_MAX_SPLIT;
    return n < 2 ? 1 : (int)n;
}

/* One launch of k_attention<W, NWARP, TK, NP, G> with NP the fewest
 * head-dim pairs per lane that hold head_dim (instantiations 1, 2, 4). */
template <int W, int NWARP, int TK, int G = 1>
static int attn_launch(const rfk_ctx *ctx, void *stream, const rfk_kv_view *kv, const rfk_attn_args *a, int n_split,
                       float *part, int *xq, float2 *xd, uint32_t *xh) {
    const att_new nw = {a->k_new, a->v_new, a->cs, kv->k, kv->v, (int)a->n_rot, a->rope_style};
    const int np = (int)((a->head_dim / 2 + W - 1) / W);
/* early (its first tile loads while the kernel ahead runs) where the step's
 * keys come in registers: the kernel ahead then writes nothing it reads
 * before rfk_grid_wait */
#define ATT_LAUNCH_WITH(LAUNCH, NP)                                                                                 \
    LAUNCH(ctx, "attention", (k_attention<W, NWARP, TK, NP, G>), rfk_d3(a->n_head / G, a->n_tok, n_split),         \
           rfk_d3(NWARP * W), 0, stream, a->q, a->out, a->pos, a->seq, kv->k, kv->v, kv->tables,                  \
           kv->max_blocks_per_seq, kv->kv_dim, kv->block_size, a->n_head, a->n_head / a->n_head_kv,               \
           (int)a->head_dim, a->scale, a->window, part, xq, xd, xh, nw)
#define ATT_LAUNCH(NP)                                     \
    do {                                                   \
        if (nw.k)                                          \
            ATT_LAUNCH_WITH(RFK_LAUNCH_EARLY, NP);         \
        else                                               \
            ATT_LAUNCH_WITH(RFK_LAUNCH, NP);               \
    } while (0)
    if (np <= 1) ATT_LAUNCH(1);
    else if (np == 2) ATT_LAUNCH(2);
    else ATT_LAUNCH(4);
#undef ATT_LAUNCH
#undef ATT_LAUNCH_WITH
    return RFK_OK;
}

/* Few (head, token) blocks over key ranges shorter than this take tiles
 * of ATT_SHORT_TK keys a warp: a warp's walk is a chain of dependent steps
 * (table, key rows, the score reduction, value rows) that nothing hides
 * when a multiprocessor holds one busy warp, so short ranges are spread
 * over more, shorter tiles (Nsight Compute, H100, one token, 20 keys in
 * 32-key tiles: one warp of four busy, 10 us). */
#define ATT_SHORT 512
#define ATT_SHORT_TK 8

/* Query heads a block takes when many (head, token) blocks share kv heads
 * (GQA): ATT_GQA_HEADS of one kv head, in ATT_GQA_WARPS warps of
 * ATT_SHORT_TK-key tiles (the heads' partial sums, G x TK a lane, must stay
 * in registers), so that each key and value row is read once for them
 * instead of once a head. */
#define ATT_GQA_HEADS 4
#define ATT_GQA_WARPS 8

/* The common case keeps 4 warps in tiles of W keys (many (head, token)
 * blocks hide each other's latency; W-key tiles take the fewest
 * instructions a key), or, with kv heads shared by an even number of query
 * heads, blocks of 2 or 4 of those heads (ROCMFORGE_GPU_ATT_GQA=0: never).
 * Few blocks: over short ranges 256 threads a block in tiles of
 * ATT_SHORT_TK keys; over long ranges without scratch 512 threads in W-key
 * tiles, so that more of the GPU walks the keys; with scratch the range is
 * split over blocks. */
template <int W> static int launch_attention(const rfk_ctx *ctx, void *stream, const rfk_kv_view *kv,
                                             const rfk_attn_args *a, int *xq, float2 *xd, uint32_t *xh) {
    const int n_split = attn_split(a);
    float *part = n_split > 1 ? (float *)a->scratch : NULL;
    const int64_t rows = a->n_tok * a->n_head;
    if (n_split == 1 && a->max_pos < ATT_SHORT && rows <= ATT_SPLIT_ROWS)
        return attn_launch<W, 256 / W, ATT_SHORT_TK>(ctx, stream, kv, a, 1, NULL, xq, xd, xh);
    if (n_split == 1 && rows < 512 && a->max_pos >= 1024)
        return attn_launch<W, 512 / W, W>(ctx, stream, kv, a, 1, NULL, xq, xd, xh);
    static const bool gqa_off = [] {
        const char *e = getenv("ROCMFORGE_GPU_ATT_GQA");
        return e && e[0] == '0';
    }();
    const int64_t group = a->n_head / a->n_head_kv;
    if (n_split == 1 && !gqa_off && group % 2 == 0) {
        if (group % ATT_GQA_HEADS == 0)
            return attn_launch<W, ATT_GQA_WARPS, ATT_SHORT_TK, ATT_GQA_HEADS>(ctx, stream, kv, a, 1, NULL, xq, xd, xh);
        return attn_launch<W, ATT_GQA_WARPS, ATT_SHORT_TK, 2>(ctx, stream, kv, a, 1, NULL, xq, xd, xh);
    }
    int st = attn_launch<W, ATT_WARPS, W>(ctx, stream, kv, a, n_split, part, xq, xd, xh);
    if (st || !part) return st;
    RFK_LAUNCH(ctx, "attn_combine", k_attn_combine, rfk_d3(a->n_head, a->n_tok), rfk_d3(128), 0, stream, part, a->out,
               a->n_head, (int)a->head_dim, n_split, xq, xd, xh);
    return RFK_OK;
}

extern "C" size_t rfk_attention_scratch_bytes(int64_t head_dim) {
    return head_dim <= 0 || head_dim > ATT_MAX_HD ? 0
                                                  : (size_t)ATT_MAX_SPLIT * ATT_SPLIT_ROWS * (size_t)(head_dim + 2) * 4;
}

extern "C" int rfk_attention(const rfk_ctx *ctx, void *stream, const rfk_kv_view *kv, const rfk_attn_args *a) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    if (!kv || !a || !a->q || !a->out || !a->pos || !a->seq || !kv->k || !kv->v || !kv->tables || a->n_tok < 0 ||
        a->n_head <= 0 || a->n_head_kv <= 0 || a->n_head % a->n_head_kv || a->head_dim <= 0 ||
        a->head_dim > ATT_MAX_HD || a->head_dim % 2 || kv->kv_dim < a->n_head_kv * a->head_dim || kv->block_size <= 0)
        return RFK_E_INVAL;
    if (a->k_new && (!a->v_new || !a->cs || a->n_seq != a->n_tok || a->n_rot < 0 || a->n_rot > a->head_dim ||
                     a->n_rot % 2 || (a->rope_style != 0 && a->rope_style != 1) ||
                     kv->kv_dim != a->n_head_kv * a->head_dim))
        return RFK_E_INVAL;
    if (a->scratch && (a->scratch_bytes < rfk_attention_scratch_bytes(a->head_dim) || ((uintptr_t)a->scratch & 15)))
        return RFK_E_SCRATCH;
    /* the q8 copy of the output (rfk_quantize_q8's layout) */
    int *xq = NULL;
    float2 *xd = NULL;
    uint32_t *xh = NULL; /* from 3 tokens, the float16 copy (rfk_xh_offset) */
    if (a->q8) {
        const int64_t cols = a->n_head * a->head_dim;
        const size_t off = rfk_q8_xd_offset(cols, a->n_tok);
        const size_t need = a->n_tok >= 3 ? rfk_xh_offset(cols, a->n_tok) + (size_t)(a->n_tok * cols) * 2
                                          : off + (size_t)(a->n_tok * cols / 32) * sizeof(float2);
        if (a->head_dim % 32 || a->n_tok > 64 || ((uintptr_t)a->q8 & 15) || a->q8_bytes < need) return RFK_E_SCRATCH;
        xq = (int *)a->q8;
        xd = (float2 *)((uint8_t *)a->q8 + off);
        if (a->n_tok >= 3) xh = (uint32_t *)((uint8_t *)a->q8 + rfk_xh_offset(cols, a->n_tok));
    }
    if (a->n_tok == 0) return RFK_OK;
    if (!a->k_new && attn_prefill_applies(a)) {
        RFK_IF_WARP64(if (ctx->warp_size == 64) st = launch_attn_prefill_any<64>(ctx, stream, kv, a); else)
        st = launch_attn_prefill_any<32>(ctx, stream, kv, a);
        if (!st && a->q8) /* the tiled kernel writes floats only */
            st = rfk_quantize_q8(ctx, stream, a->out, a->n_head * a->head_dim, a->n_tok, a->q8, a->q8_bytes);
        return st;
    }
    RFK_IF_WARP64(if (ctx->warp_size == 64) return launch_attention<64>(ctx, stream, kv, a, xq, xd, xh);)
    return launch_attention<32>(ctx, stream, kv, a, xq, xd, xh);
}
