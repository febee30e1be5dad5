/*
 * moe.cu - the mixture-of-experts FFN on the GPU, as forward.c's ffn_block
 * runs it on the CPU:
 *  - routing: the router's logits of each token to probabilities (softmax,
 *    or sigmoid), the top k experts (the first on ties) and their weights,
 *    renormalised where the model says so;
 *  - the expert matmuls: every (token, chosen expert) pair is one mat-vec
 *    against that expert's matrix, picked on the device from the routing
 *    (no host round trip, so a decode step stays one graph). A pair reads its
 *    expert's weights from memory or the L2: right for decode, slow for long
 *    prompts (no grouping of a prompt's tokens by expert yet);
 *  - the weighted sum of each token's k expert outputs, in increasing expert
 *    id as the CPU adds them.
 */
#include "kcommon.cuh"
#include "quant.cuh"

#define ID_BLOCK 256 /* threads per expert mat-vec block: ID_BLOCK / W rows */

/* One thread per token. router: [n][ne], overwritten with probabilities. */
__global__ void k_moe_route(float *router, int64_t n, int ne, int k, int gating, int norm, int32_t *sel, float *selw) {
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    float *r = router + t * ne;
    if (gating == 2) {
        for (int e = 0; e < ne; e++) r[e] = 1.0f / (1.0f + expf(-r[e]));
    } else {
        float mx = -INFINITY;
        double sum = 0;
        for (int e = 0; e < ne; e++) mx = r[e] > mx ? r[e] : mx;
        for (int e = 0; e < ne; e++) sum += (r[e] = expf(r[e] - mx));
        for (int e = 0; e < ne; e++) r[e] = (float)(r[e] / sum);
    }
    int32_t *s = sel + t * k;
    float *w = selw + t * k;
    double wsum = 0;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < ne; e++) {
            bool taken = false;
            for (int i = 0; i < j; i++) taken |= s[i] == e;
            if (!taken && (best < 0 || r[e] > r[best])) best = e;
        }
        s[j] = best;
        w[j] = r[best];
        wsum += w[j];
    }
    if (norm && wsum > 0)
        for (int j = 0; j < k; j++) w[j] = (float)(w[j] / wsum);
}

/* y[p][r] = W_sel[p][r] . x[p / x_div] for pair p = blockIdx.y: the 4-lane
 * mat-vec of matmul.cu (k_matvec, one token) on the chosen expert's rows. */
template <int T, int W>
__global__ void __launch_bounds__(ID_BLOCK)
    k_matvec_id(const uint8_t *__restrict__ w0, size_t stride, size_t row_bytes, int64_t n_chunks, int64_t rows,
                const float *__restrict__ x, int64_t cols, int x_div, const int32_t *__restrict__ sel, int n_expert,
                float *__restrict__ y) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        const int lane = threadIdx.x % W, k = lane % 4;
        const int64_t p = blockIdx.y, r = (int64_t)blockIdx.x * (ID_BLOCK / W) + threadIdx.x / W;
        if (r >= rows) return;
        const int e = sel[p];
        float acc = 0.0f;
        if (e >= 0 && e < n_expert) { /* the routing never leaves one out of range; a stray one sums 0 */
            const uint8_t *row = w0 + (size_t)e * stride + (size_t)r * row_bytes;
            const float *xr = x + (p / x_div) * cols;
            constexpr int G = W / 4;
            for (int64_t c = lane / 4; c < n_chunks; c += G) {
                float v[8];
                rfk_q<T>::quad(row, c, k, v);
                rfk_q<T>::quad(row, c, k + 4, v + 4);
                const float *xp = xr + 32 * c + 4 * k;
                const float4 xa = *(const float4 *)xp, xb = *(const float4 *)(xp + 16);
                acc += v[0] * xa.x + v[1] * xa.y + v[2] * xa.z + v[3] * xa.w + v[4] * xb.x + v[5] * xb.y + v[6] * xb.z +
                       v[7] * xb.w;
            }
        }
        const float s = rfk_warp_sum<W>(acc);
        if (lane == 0) y[p * rows + r] = s;
    }
}

/* out[t][c] = sum of selw * de over token t's k pairs, in increasing expert
 * id. One block per token. */
__global__ void k_moe_combine(const float *__restrict__ de, const int32_t *__restrict__ sel,
                              const float *__restrict__ selw, int k, int64_t dim, float *__restrict__ out) {
    const int64_t t = blockIdx.x;
    const int32_t *s = sel + t * k;
    for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
        float acc = 0.0f;
        int last = -1;
        for (int i = 0; i < k; i++) {
            int pick = -1; /* the pair with the smallest expert id above the last one */
            for (int j = 0; j < k; j++)
                if (s[j] > last && (pick < 0 || s[j] < s[pick])) pick = j;
            if (pick < 0) break;
            last = s[pick];
            acc += selw[t * k + pick] * de[(t * k + pick) * dim + c];
        }
        out[t * dim + c] = acc;
    }
}

/* ---- launch -------------------------------------------------------------- */

extern "C" int rfk_moe_route(const rfk_ctx *ctx, void *stream, float *router, int64_t n_tok, int64_t n_expert,
                             int64_t k, int gating, int norm, int32_t *sel, float *selw) {
    if (!ctx || !router || !sel || !selw || n_tok < 0 || n_expert < 1 || n_expert > RFK_MOE_MAX_EXPERTS || k < 1 ||
        k > n_expert || k > RFK_MOE_MAX_K || (gating != 1 && gating != 2))
        return RFK_E_INVAL;
    if (n_tok == 0) return RFK_OK;
    RFK_LAUNCH(ctx, "moe_route", k_moe_route, rfk_d3((n_tok + 63) / 64), rfk_d3(64), 0, stream, router, n_tok,
               (int)n_expert, (int)k, gating, norm, sel, selw);
    return RFK_OK;
}

template <int T, int W>
static int launch_id(const rfk_ctx *ctx, void *stream, const uint8_t *w0, size_t stride, int64_t n_expert,
                     size_t row_bytes, int64_t cols, int64_t rows, const float *x, int x_div, const int32_t *sel,
                     int64_t n_pairs, float *y) {
    const int64_t rpb = ID_BLOCK / W;
    RFK_LAUNCH(ctx, "matvec_id", (k_matvec_id<T, W>), rfk_d3((rows + rpb - 1) / rpb, n_pairs), rfk_d3(ID_BLOCK), 0,
               stream, w0, stride, row_bytes, cols / 32, rows, x, cols, x_div, sel, (int)n_expert, y);
    return RFK_OK;
}

template <int T>
static int launch_id_type(const rfk_ctx *ctx, void *stream, const uint8_t *w0, size_t stride, int64_t n_expert,
                          size_t row_bytes, int64_t cols, int64_t rows, const float *x, int x_div, const int32_t *sel,
                          int64_t n_pairs, float *y) {
    const size_t need = (size_t)(cols / rfk_q<T>::blck) * rfk_q<T>::bytes;
    if (cols % rfk_q<T>::blck || row_bytes < need || (row_bytes != need && row_bytes % 16)) return RFK_E_INVAL;
    RFK_IF_WARP64(if (ctx->warp_size == 64) return launch_id<T, 64>(ctx, stream, w0, stride, n_expert, row_bytes, cols,
                                                                     rows, x, x_div, sel, n_pairs, y);)
    return launch_id<T, 32>(ctx, stream, w0, stride, n_expert, row_bytes, cols, rows, x, x_div, sel, n_pairs, y);
}

extern "C" int rfk_matmul_id(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w0, size_t expert_stride,
                             int64_t n_expert, size_t row_bytes, int64_t cols, int64_t rows, const float *x, int x_div,
                             const int32_t *sel, int64_t n_pairs, float *y) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    if (!w0 || !x || !sel || !y || n_expert < 1 || cols <= 0 || cols % 32 || rows <= 0 || x_div < 1 || n_pairs < 0 ||
        expert_stride < (size_t)rows * row_bytes || expert_stride % 16 || ((uintptr_t)w0 & 15) || ((uintptr_t)x & 15))
        return RFK_E_INVAL;
    if (n_pairs == 0) return RFK_OK;
    const uint8_t *w = (const uint8_t *)w0;
#define RFK_ID_CASE(id, name)                                                                                       \
    case id:                                                                                                        \
        return launch_id_type<id>(ctx, stream, w, expert_stride, n_expert, row_bytes, cols, rows, x, x_div, sel, \
                                  n_pairs, y);
    switch (type) {
        RFK_FOR_EACH_TYPE(RFK_ID_CASE)
    default: return RFK_E_UNSUPPORTED;
    }
#undef RFK_ID_CASE
}

extern "C" int rfk_moe_combine(const rfk_ctx *ctx, void *stream, const float *de, const int32_t *sel,
                               const float *selw, int64_t n_tok, int64_t k, int64_t dim, float *out) {
    if (!ctx || !de || !sel || !selw || !out || n_tok < 0 || k < 1 || k > RFK_MOE_MAX_K || dim <= 0)
        return RFK_E_INVAL;
    if (n_tok == 0) return RFK_OK;
    RFK_LAUNCH(ctx, "moe_combine", k_moe_combine, rfk_d3(n_tok), rfk_d3(256), 0, stream, de, sel, selw, (int)k, dim,
               out);
    return RFK_OK;
}
