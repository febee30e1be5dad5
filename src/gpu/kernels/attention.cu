/*
 * attention.cu - the paged KV cache on the GPU: storing a step's keys and
 * values (float32 -> float16 into the slots the block tables name) and
 * attention over it with an online softmax, for prefill and decode alike.
 *
 * Attention: one block of 4 warps per (query head, token). Warps take
 * tiles of W consecutive key positions in turn; in a tile each lane scores
 * one key against the query (kept in shared memory, pre-scaled), the warp
 * updates its running max / sum, then accumulates the W value rows with
 * each lane owning head-dim pairs (coalesced float16 reads). The four
 * warps' partial (max, sum, accumulator) are merged at the end. Causal by
 * position, optional sliding window, GQA by kv head = head / group (each
 * query head re-reads its kv head; the L2 serves the repeats). Not yet: a
 * split over the key range for long-context decode with few heads.
 */
#include "kcommon.cuh"

#define ATT_WARPS 4
#define ATT_MAX_HD 256

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

template <int W>
__global__ void __launch_bounds__(ATT_WARPS * W)
    k_attention(const float *__restrict__ q, float *__restrict__ out, const int32_t *__restrict__ pos,
                const int32_t *__restrict__ seq, const uint16_t *__restrict__ kc, const uint16_t *__restrict__ vc,
                const int32_t *__restrict__ tables, int64_t max_blocks, int64_t kv_dim, int bs, int64_t n_head,
                int64_t group, int hd, float scale, int64_t window) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        constexpr int NP = ATT_MAX_HD / 2 / W; /* head-dim pairs per lane */
        __shared__ float qs[ATT_MAX_HD];
        __shared__ float m_w[ATT_WARPS], l_w[ATT_WARPS];
        __shared__ float acc_w[ATT_WARPS][ATT_MAX_HD];
        const int lane = threadIdx.x % W, warp = threadIdx.x / W;
        const int64_t h = blockIdx.x, t = blockIdx.y, kvh = h / group;
        const float *qr = q + (t * n_head + h) * hd;
        for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qr[d] * scale;
        __syncthreads();

        const int64_t p_end = pos[t];
        const int64_t lo = window > 0 && p_end - window + 1 > 0 ? p_end - window + 1 : 0;
        const int32_t *table = tables + (int64_t)seq[t] * max_blocks;
        const size_t head_off = (size_t)kvh * hd;
        float m = -INFINITY, l = 0.0f;
        float2 acc[NP];
#pragma unroll
        for (int j = 0; j < NP; j++) acc[j] = make_float2(0.0f, 0.0f);

        for (int64_t ts = lo + (int64_t)warp * W; ts <= p_end; ts += (int64_t)ATT_WARPS * W) {
            const int64_t p = ts + lane;
            float s = -INFINITY;
            if (p <= p_end) {
                const uint32_t *kr = (const uint32_t *)(kc + ((size_t)table[p / bs] * bs + (size_t)(p % bs)) * kv_dim +
                                                        head_off);
                float dot = 0.0f;
                for (int d2 = 0; d2 < hd / 2; d2++) {
                    const uint32_t u = kr[d2];
                    dot += qs[2 * d2] * rfk_h2f((unsigned short)(u & 0xFFFF)) +
                           qs[2 * d2 + 1] * rfk_h2f((unsigned short)(u >> 16));
                }
                s = dot;
            }
            /* Lane 0's key (ts) is always in range, so m_new is finite. */
            const float m_new = fmaxf(m, rfk_warp_max<W>(s));
            const float corr = expf(m - m_new); /* m = -inf on the first tile: 0 */
            const float pl = p <= p_end ? expf(s - m_new) : 0.0f;
            l = l * corr + rfk_warp_sum<W>(pl);
#pragma unroll
            for (int j = 0; j < NP; j++) acc[j].x *= corr, acc[j].y *= corr;
            const int n_valid = (int)(p_end - ts + 1 < W ? p_end - ts + 1 : W);
            for (int i = 0; i < n_valid; i++) {
                const float pi = RFK_SHFL(pl, i, W);
                const int64_t pp = ts + i;
                const uint32_t *vr = (const uint32_t *)(vc + ((size_t)table[pp / bs] * bs + (size_t)(pp % bs)) * kv_dim +
                                                        head_off);
#pragma unroll
                for (int j = 0; j < NP; j++) {
                    const int d2 = lane + W * j;
                    if (2 * d2 < hd) {
                        const uint32_t u = vr[d2];
                        acc[j].x += pi * rfk_h2f((unsigned short)(u & 0xFFFF));
                        acc[j].y += pi * rfk_h2f((unsigned short)(u >> 16));
                    }
                }
            }
            m = m_new;
        }

        if (lane == 0) m_w[warp] = m, l_w[warp] = l;
#pragma unroll
        for (int j = 0; j < NP; j++) {
            const int d2 = lane + W * j;
            if (2 * d2 < hd) acc_w[warp][2 * d2] = acc[j].x, acc_w[warp][2 * d2 + 1] = acc[j].y;
        }
        __syncthreads();
        float mx = -INFINITY;
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++) mx = fmaxf(mx, m_w[w]);
        float den = 0.0f, f[ATT_WARPS];
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++) {
            f[w] = m_w[w] == -INFINITY ? 0.0f : expf(m_w[w] - mx); /* a warp that saw no key adds nothing */
            den += f[w] * l_w[w];
        }
        float *o = out + (t * n_head + h) * hd;
        for (int d = threadIdx.x; d < hd; d += blockDim.x) {
            float num = 0.0f;
#pragma unroll
            for (int w = 0; w < ATT_WARPS; w++) num += f[w] == 0.0f ? 0.0f : f[w] * acc_w[w][d];
            o[d] = num / den;
        }
    }
}

template <int W> static int launch_attention(const rfk_ctx *ctx, void *stream, const rfk_kv_view *kv,
                                             const rfk_attn_args *a) {
    RFK_LAUNCH(ctx, "attention", k_attention<W>, rfk_d3(a->n_head, a->n_tok), rfk_d3(ATT_WARPS * W), 0, stream, a->q,
               a->out, a->pos, a->seq, kv->k, kv->v, kv->tables, kv->max_blocks_per_seq, kv->kv_dim, kv->block_size,
               a->n_head, a->n_head / a->n_head_kv, (int)a->head_dim, a->scale, a->window);
    return RFK_OK;
}

extern "C" int rfk_attention(const rfk_ctx *ctx, void *stream, const rfk_kv_view *kv, const rfk_attn_args *a) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    if (!kv || !a || !a->q || !a->out || !a->pos || !a->seq || !kv->k || !kv->v || !kv->tables || a->n_tok < 0 ||
        a->n_head <= 0 || a->n_head_kv <= 0 || a->n_head % a->n_head_kv || a->head_dim <= 0 ||
        a->head_dim > ATT_MAX_HD || a->head_dim % 2 || kv->kv_dim < a->n_head_kv * a->head_dim || kv->block_size <= 0)
        return RFK_E_INVAL;
    if (a->n_tok == 0) return RFK_OK;
    RFK_IF_WARP64(if (ctx->warp_size == 64) return launch_attention<64>(ctx, stream, kv, a);)
    return launch_attention<32>(ctx, stream, kv, a);
}
