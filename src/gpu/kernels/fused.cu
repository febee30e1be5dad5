/*
 * fused.cu - kernels that do in one launch what a decode step otherwise
 * does in two or three. A decode step's kernels are small (one token's
 * activations are a few KB) and each launch costs a few microseconds even
 * replayed from a graph, so launches, not bytes, are what these save:
 *  - add + RMSNorm + q8: the residual add of the previous block, the norm of
 *    the next, and the q8 activation blocks its mat-vecs read (one block per
 *    row; replaces add, rmsnorm and a quantize per matmul input);
 *  - GLU + q8: the gated activation and the down projection's q8 input;
 *  - RoPE of q and k + KV store: rotated keys and the values go straight to
 *    the paged cache as float16.
 * The arithmetic is that of the unfused kernels (norm.cu, attention.cu,
 * matmul.cu's quantize), so results match them exactly.
 */
#include "kcommon.cuh"

#define FROW_BLOCK 256

/* ---- add + RMSNorm + q8 ------------------------------------------------------ */

template <int W>
__global__ void __launch_bounds__(FROW_BLOCK)
    k_add_rmsnorm_q8(float *x, const float *__restrict__ delta, const float *__restrict__ w, float *__restrict__ y,
                     int64_t dim, float eps, int *__restrict__ xq, float2 *__restrict__ xd, uint32_t *__restrict__ xh) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        rfk_grid_release(); /* the next kernel may start early (RFK_LAUNCH_EARLY) */
        __shared__ float red[32];
        float *xr = x + blockIdx.x * dim;
        const float *dr = delta ? delta + blockIdx.x * dim : NULL;
        float *yr = y + blockIdx.x * dim;
        float ss = 0.0f;
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
            float v = xr[i];
            if (dr) xr[i] = v = v + dr[i];
            ss += v * v;
        }
        ss = rfk_block_reduce<W, false>(ss, red);
        const float scale = rsqrtf(ss / (float)dim + eps);
        if (!xq) {
            for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * scale * (w ? w[i] : 1.0f);
            return;
        }
        /* quads: 8 consecutive threads per 32-block; every thread runs the
         * same number of rounds (dim / 4 rounded up to the block), so the
         * shuffles in rfk_q8_store see whole warps */
        const int64_t n_quads = dim / 4;
        for (int64_t q0 = 0; q0 < n_quads; q0 += blockDim.x) {
            const int64_t q = q0 + threadIdx.x;
            const bool live = q < n_quads;
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (live) {
                const int64_t i = 4 * q;
                v = make_float4(xr[i] * scale * (w ? w[i] : 1.0f), xr[i + 1] * scale * (w ? w[i + 1] : 1.0f),
                                xr[i + 2] * scale * (w ? w[i + 2] : 1.0f), xr[i + 3] * scale * (w ? w[i + 3] : 1.0f));
                *(float4 *)(yr + i) = v;
            }
            rfk_q8_store<W>(v, blockIdx.x * n_quads + q, live, xq, xd, xh);
        }
    }
}

/* The same from registers (kcommon.cuh's rfk_norm_row): rows of whole,
 * aligned quads up to RFK_NORM_MAX floats, which is every model's. */
template <int W>
__global__ void __launch_bounds__(RFK_NORM_BLOCK)
    k_add_rmsnorm_rq(float *x, const float *delta, const float *__restrict__ w, float *y, int64_t dim, float eps,
                     int *xq, float2 *xd, uint32_t *xh) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        rfk_grid_release(); /* the next kernel may start early (RFK_LAUNCH_EARLY) */
        rfk_norm_row<W>(x, delta, w, y, dim, eps, xq, xd, blockIdx.x, true, nullptr, xh);
    }
}

static bool a16(const void *p) { return ((uintptr_t)p & 15) == 0; }

template <int W>
static int launch_add_rmsnorm_q8(const rfk_ctx *ctx, void *stream, float *x, const float *delta, const float *w,
                                 float *y, int64_t n_rows, int64_t dim, float eps, int *xq, float2 *xd,
                                 uint32_t *xh) {
    if (dim % 4 == 0 && dim <= RFK_NORM_MAX && a16(x) && a16(delta) && a16(w) && a16(y)) {
        RFK_LAUNCH(ctx, "add_rmsnorm_q8", k_add_rmsnorm_rq<W>, rfk_d3(n_rows), rfk_d3(RFK_NORM_BLOCK), 0, stream, x,
                   delta, w, y, dim, eps, xq, xd, xh);
        return RFK_OK;
    }
    RFK_LAUNCH(ctx, "add_rmsnorm_q8", k_add_rmsnorm_q8<W>, rfk_d3(n_rows), rfk_d3(FROW_BLOCK), 0, stream, x, delta, w,
               y, dim, eps, xq, xd, xh);
    return RFK_OK;
}

/* The q8 arrays of scratch for n_rows x cols and, from 3 rows, the float16
 * copy after them (rfk_xh_offset), or RFK_E_SCRATCH. */
static int q8_parts(void *q8, size_t q8_bytes, int64_t cols, int64_t n_rows, int **xq, float2 **xd, uint32_t **xh) {
    *xq = NULL;
    *xd = NULL;
    *xh = NULL;
    if (!q8) return RFK_OK;
    const size_t need = n_rows >= 3 ? rfk_xh_offset(cols, n_rows) + (size_t)(n_rows * cols) * 2
                                    : rfk_q8_xd_offset(cols, n_rows) + (size_t)(n_rows * cols / 32) * sizeof(float2);
    if (cols % 32 || n_rows > 64 || q8_bytes < need || ((uintptr_t)q8 & 15)) return RFK_E_SCRATCH;
    *xq = (int *)q8;
    *xd = (float2 *)((uint8_t *)q8 + rfk_q8_xd_offset(cols, n_rows));
    if (n_rows >= 3) *xh = (uint32_t *)((uint8_t *)q8 + rfk_xh_offset(cols, n_rows));
    return RFK_OK;
}

extern "C" int rfk_add_rmsnorm_q8(const rfk_ctx *ctx, void *stream, float *x, const float *delta, const float *w,
                                  float *y, int64_t n_rows, int64_t dim, float eps, void *q8, size_t q8_bytes) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    if (!x || !y || y == x || n_rows < 0 || dim <= 0) return RFK_E_INVAL;
    if (q8 && (((uintptr_t)y & 15) || dim % 4)) return RFK_E_INVAL;
    int *xq;
    float2 *xd;
    uint32_t *xh;
    if ((st = q8_parts(q8, q8_bytes, dim, n_rows, &xq, &xd, &xh))) return st;
    if (n_rows == 0) return RFK_OK;
    RFK_IF_WARP64(if (ctx->warp_size == 64)
                      return launch_add_rmsnorm_q8<64>(ctx, stream, x, delta, w, y, n_rows, dim, eps, xq, xd, xh);)
    return launch_add_rmsnorm_q8<32>(ctx, stream, x, delta, w, y, n_rows, dim, eps, xq, xd, xh);
}

/* ---- GLU + q8 ------------------------------------------------------------------ */

static __device__ __forceinline__ float glu_act(int act, float g) {
    if (act == 0) return g / (1.0f + expf(-g));
    return 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
}

/* One thread per quad of the flat [n_rows * cols] arrays. */
template <int W>
__global__ void __launch_bounds__(256) k_glu_q8(int act, const float *gate, const float *up, float *out,
                                                int64_t n_quads, int *__restrict__ xq, float2 *__restrict__ xd,
                                                uint32_t *__restrict__ xh) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        rfk_grid_release(); /* the next kernel may start early (RFK_LAUNCH_EARLY) */
        const int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
        const bool live = q < n_quads;
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (live) {
            const float4 g = *(const float4 *)(gate + 4 * q), u = *(const float4 *)(up + 4 * q);
            v = make_float4(glu_act(act, g.x) * u.x, glu_act(act, g.y) * u.y, glu_act(act, g.z) * u.z,
                            glu_act(act, g.w) * u.w);
            *(float4 *)(out + 4 * q) = v;
        }
        rfk_q8_store<W>(v, q, live, xq, xd, xh);
    }
}

template <int W>
static int launch_glu_q8(const rfk_ctx *ctx, void *stream, int act, const float *gate, const float *up, float *out,
                         int64_t n_quads, int *xq, float2 *xd, uint32_t *xh) {
    RFK_LAUNCH(ctx, "glu_q8", k_glu_q8<W>, rfk_d3((n_quads + 255) / 256), rfk_d3(256), 0, stream, act, gate, up, out,
               n_quads, xq, xd, xh);
    return RFK_OK;
}

extern "C" int rfk_glu_q8(const rfk_ctx *ctx, void *stream, int act, const float *gate, const float *up, float *out,
                          int64_t n_rows, int64_t cols, void *q8, size_t q8_bytes) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    if (!q8) return rfk_glu(ctx, stream, act, gate, up, out, n_rows * cols);
    if (!gate || !up || !out || n_rows < 0 || cols <= 0 || (act != 0 && act != 1) ||
        (((uintptr_t)gate | (uintptr_t)up | (uintptr_t)out) & 15))
        return RFK_E_INVAL;
    int *xq;
    float2 *xd;
    uint32_t *xh;
    if ((st = q8_parts(q8, q8_bytes, cols, n_rows, &xq, &xd, &xh))) return st;
    if (n_rows == 0) return RFK_OK;
    RFK_IF_WARP64(if (ctx->warp_size == 64)
                      return launch_glu_q8<64>(ctx, stream, act, gate, up, out, n_rows * cols / 4, xq, xd, xh);)
    return launch_glu_q8<32>(ctx, stream, act, gate, up, out, n_rows * cols / 4, xq, xd, xh);
}

/* ---- RoPE + KV store -------------------------------------------------------------- */

/* One block per (token, head) over n_head query heads then n_head_kv key
 * heads: a query head is rotated in place; a key head is rotated into the
 * cache, its value head copied there. Pairs as rfk_rope: normal (2i, 2i+1)
 * or neox (i, i + n_rot / 2); dims past n_rot are not rotated. */
__global__ void k_rope_kv_store(float *q, const float *__restrict__ k, const float *__restrict__ v,
                                const float *__restrict__ cs, int64_t n_head, int64_t n_head_kv, int64_t hd,
                                int64_t n_rot, int neox, uint16_t *kc, uint16_t *vc, const int32_t *__restrict__ tables,
                                int64_t max_blocks, int bs, const int32_t *__restrict__ pos,
                                const int32_t *__restrict__ seq) {
    const int64_t nh = n_head + n_head_kv, t = blockIdx.x / nh, h = blockIdx.x % nh;
    const float *c = cs + t * n_rot;
    if (h < n_head) {
        float *x = q + (t * n_head + h) * hd;
        for (int64_t i = threadIdx.x; i < n_rot / 2; i += blockDim.x) {
            int64_t a, b;
            float ya, yb;
            rfk_rope_pair(x, c, i, n_rot, neox, &a, &b, &ya, &yb);
            x[a] = ya, x[b] = yb;
        }
        return;
    }
    const int64_t kh = h - n_head, kv_dim = n_head_kv * hd;
    const int32_t p = pos[t];
    const int32_t blk = tables[(int64_t)seq[t] * max_blocks + p / bs];
    if (blk < 0) return; /* an unreserved position: write nothing, as rfk_kv_store */
    const size_t off = ((size_t)blk * bs + (size_t)(p % bs)) * (size_t)kv_dim + (size_t)(kh * hd);
    const float *kr = k + t * kv_dim + kh * hd, *vr = v + t * kv_dim + kh * hd;
    for (int64_t i = threadIdx.x; i < n_rot / 2; i += blockDim.x) {
        int64_t a, b;
        float ya, yb;
        rfk_rope_pair(kr, c, i, n_rot, neox, &a, &b, &ya, &yb);
        kc[off + a] = rfk_f2h(ya), kc[off + b] = rfk_f2h(yb);
    }
    for (int64_t i = n_rot + threadIdx.x; i < hd; i += blockDim.x) kc[off + i] = rfk_f2h(kr[i]);
    for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) vc[off + i] = rfk_f2h(vr[i]);
}

extern "C" int rfk_rope_kv_store(const rfk_ctx *ctx, void *stream, float *q, const float *k, const float *v,
                                 const float *cs, int64_t n_tok, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                                 int64_t n_rot, int style, const rfk_kv_view *kv, const int32_t *pos,
                                 const int32_t *seq) {
    if (!ctx || !q || !k || !v || !cs || !kv || !kv->k || !kv->v || !kv->tables || !pos || !seq || n_tok < 0 ||
        n_head <= 0 || n_head_kv <= 0 || head_dim <= 0 || n_rot < 0 || n_rot > head_dim || n_rot % 2 ||
        (style != 0 && style != 1) || kv->kv_dim != n_head_kv * head_dim || kv->block_size <= 0)
        return RFK_E_INVAL;
    if (n_tok == 0) return RFK_OK;
    const int64_t threads = head_dim < 128 ? (head_dim + 31) / 32 * 32 : 128;
    RFK_LAUNCH(ctx, "rope_kv_store", k_rope_kv_store, rfk_d3(n_tok * (n_head + n_head_kv)), rfk_d3(threads), 0,
               stream, q, k, v, cs, n_head, n_head_kv, head_dim, n_rot, style, kv->k, kv->v, kv->tables,
               kv->max_blocks_per_seq, kv->block_size, pos, seq);
    return RFK_OK;
}
