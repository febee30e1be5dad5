/*
 * norm.cu - the per-row and elementwise ops: RMSNorm, softmax, RoPE (normal
 * and neox pairing, from a per-token cos/sin table), gated activations
 * (SiLU / GELU-tanh GLU) and residual add; plus rfk_status_str. Row ops run
 * one block per row with block reductions templated on the warp width;
 * elementwise ops are grid-stride loops, independent of the warp width.
 */
#include "kcommon.cuh"

#define ROW_BLOCK 256 /* threads per row for the row ops */
#define EW_BLOCK 256  /* threads per block for elementwise ops */

extern "C" const char *rfk_status_str(int status) {
    switch (status) {
    case RFK_OK: return "ok";
    case RFK_E_INVAL: return "invalid argument to a GPU kernel";
    case RFK_E_UNSUPPORTED: return "no GPU kernel for this type or variant";
    case RFK_E_WARP: return "device warp width not supported by this build";
    case RFK_E_SCRATCH: return "GPU scratch buffer too small";
    default: return status > 0 ? "vendor runtime error" : "launch refused by the launch check";
    }
}

/* Blocks for n elements at EW_BLOCK threads, capped: the loops stride. */
static rfk_dim3 ew_grid(int64_t n) {
    int64_t b = (n + EW_BLOCK - 1) / EW_BLOCK;
    return rfk_d3(b > 65535 ? 65535 : b);
}

/* ---- RMSNorm ------------------------------------------------------------- */

template <int W>
__global__ void __launch_bounds__(ROW_BLOCK)
    k_rmsnorm(const float *x, const float *__restrict__ w, float *y, int64_t dim, float eps) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        rfk_grid_release(); /* the next kernel may start early (RFK_LAUNCH_EARLY) */
        __shared__ float red[32];
        const float *xr = x + blockIdx.x * dim;
        float *yr = y + blockIdx.x * dim;
        float ss = 0.0f;
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
        ss = rfk_block_reduce<W, false>(ss, red);
        const float scale = rsqrtf(ss / (float)dim + eps);
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * scale * (w ? w[i] : 1.0f);
    }
}

/* Rows of whole, aligned quads up to RFK_NORM_MAX floats: from registers
 * (kcommon.cuh's rfk_norm_row; x is not written without delta). */
template <int W>
__global__ void __launch_bounds__(RFK_NORM_BLOCK)
    k_rmsnorm_rq(const float *x, const float *__restrict__ w, float *y, int64_t dim, float eps) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        rfk_grid_release(); /* the next kernel may start early (RFK_LAUNCH_EARLY) */
        rfk_norm_row<W>((float *)x, NULL, w, y, dim, eps, NULL, NULL, blockIdx.x, true);
    }
}

template <int W>
static int launch_rmsnorm(const rfk_ctx *ctx, void *stream, const float *x, const float *w, float *y, int64_t n_rows,
                          int64_t dim, float eps) {
    if (dim % 4 == 0 && dim <= RFK_NORM_MAX && ((uintptr_t)x & 15) == 0 && ((uintptr_t)w & 15) == 0 &&
        ((uintptr_t)y & 15) == 0) {
        RFK_LAUNCH(ctx, "rmsnorm", k_rmsnorm_rq<W>, rfk_d3(n_rows), rfk_d3(RFK_NORM_BLOCK), 0, stream, x, w, y, dim,
                   eps);
        return RFK_OK;
    }
    RFK_LAUNCH(ctx, "rmsnorm", k_rmsnorm<W>, rfk_d3(n_rows), rfk_d3(ROW_BLOCK), 0, stream, x, w, y, dim, eps);
    return RFK_OK;
}

extern "C" int rfk_rmsnorm(const rfk_ctx *ctx, void *stream, const float *x, const float *w, float *y, int64_t n_rows,
                           int64_t dim, float eps) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    if (!x || !y || n_rows < 0 || dim <= 0) return RFK_E_INVAL;
    if (n_rows == 0) return RFK_OK;
    RFK_IF_WARP64(if (ctx->warp_size == 64) return launch_rmsnorm<64>(ctx, stream, x, w, y, n_rows, dim, eps);)
    return launch_rmsnorm<32>(ctx, stream, x, w, y, n_rows, dim, eps);
}

/* ---- softmax ------------------------------------------------------------- */

template <int W>
__global__ void __launch_bounds__(ROW_BLOCK) k_softmax(const float *x, float *y, int64_t n_cols, float scale) {
    if constexpr (!rfk_warp_matches<W>()) {
        rfk_trap();
    } else {
        __shared__ float red[32];
        const float *xr = x + blockIdx.x * n_cols;
        float *yr = y + blockIdx.x * n_cols;
        float mx = -INFINITY;
        for (int64_t i = threadIdx.x; i < n_cols; i += blockDim.x) mx = fmaxf(mx, xr[i] * scale);
        mx = rfk_block_reduce<W, true>(mx, red);
        float sum = 0.0f;
        for (int64_t i = threadIdx.x; i < n_cols; i += blockDim.x) sum += expf(xr[i] * scale - mx);
        sum = rfk_block_reduce<W, false>(sum, red);
        const float inv = 1.0f / sum;
        /* y may alias x: every read of x above happened before the last
         * barrier inside the reduction, and each thread rewrites only the
         * elements it alone reads here. */
        for (int64_t i = threadIdx.x; i < n_cols; i += blockDim.x) yr[i] = expf(xr[i] * scale - mx) * inv;
    }
}

template <int W>
static int launch_softmax(const rfk_ctx *ctx, void *stream, const float *x, float *y, int64_t n_rows, int64_t n_cols,
                          float scale) {
    RFK_LAUNCH(ctx, "softmax", k_softmax<W>, rfk_d3(n_rows), rfk_d3(ROW_BLOCK), 0, stream, x, y, n_cols, scale);
    return RFK_OK;
}

extern "C" int rfk_softmax(const rfk_ctx *ctx, void *stream, const float *x, float *y, int64_t n_rows, int64_t n_cols,
                           float scale) {
    int st = rfk_warp_status(ctx);
    if (st) return st;
    if (!x || !y || n_rows < 0 || n_cols <= 0) return RFK_E_INVAL;
    if (n_rows == 0) return RFK_OK;
    RFK_IF_WARP64(if (ctx->warp_size == 64) return launch_softmax<64>(ctx, stream, x, y, n_rows, n_cols, scale);)
    return launch_softmax<32>(ctx, stream, x, y, n_rows, n_cols, scale);
}

/* ---- RoPE ------------------------------------------------------------------ */

/* One block per (token, head); threads over the n_rot / 2 rotated pairs. */
__global__ void k_rope(float *x, const float *__restrict__ cs, int64_t n_heads, int64_t head_dim, int64_t n_rot,
                       int neox) {
    const int64_t th = blockIdx.x, t = th / n_heads;
    float *v = x + th * head_dim;
    const float *c = cs + t * n_rot;
    for (int64_t i = threadIdx.x; i < n_rot / 2; i += blockDim.x) {
        int64_t a, b;
        float ya, yb;
        rfk_rope_pair(v, c, i, n_rot, neox, &a, &b, &ya, &yb);
        v[a] = ya, v[b] = yb;
    }
}

extern "C" int rfk_rope(const rfk_ctx *ctx, void *stream, float *x, const float *cs, int64_t n_tok, int64_t n_heads,
                        int64_t head_dim, int64_t n_rot, int style) {
    if (!ctx || !x || !cs || n_tok < 0 || n_heads <= 0 || head_dim <= 0 || n_rot < 0 || n_rot > head_dim ||
        n_rot % 2 || (style != 0 && style != 1))
        return RFK_E_INVAL;
    if (n_tok == 0 || n_rot == 0) return RFK_OK;
    const int64_t half = n_rot / 2;
    const int64_t threads = half < 128 ? (half + 31) / 32 * 32 : 128;
    RFK_LAUNCH(ctx, "rope", k_rope, rfk_d3(n_tok * n_heads), rfk_d3(threads), 0, stream, x, cs, n_heads, head_dim,
               n_rot, style);
    return RFK_OK;
}

/* ---- GLU and add ----------------------------------------------------------- */

__global__ void k_glu(int act, const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float g = gate[i];
        float a;
        if (act == 0) a = g / (1.0f + expf(-g));
        else a = 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
        out[i] = a * up[i];
    }
}

extern "C" int rfk_glu(const rfk_ctx *ctx, void *stream, int act, const float *gate, const float *up, float *out,
                       int64_t n) {
    if (!ctx || !gate || !up || !out || n < 0 || (act != 0 && act != 1)) return RFK_E_INVAL;
    if (n == 0) return RFK_OK;
    RFK_LAUNCH(ctx, "glu", k_glu, ew_grid(n), rfk_d3(EW_BLOCK), 0, stream, act, gate, up, out, n);
    return RFK_OK;
}

__global__ void k_add(const float *a, const float *b, float *out, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

extern "C" int rfk_add(const rfk_ctx *ctx, void *stream, const float *a, const float *b, float *out, int64_t n) {
    if (!ctx || !a || !b || !out || n < 0) return RFK_E_INVAL;
    if (n == 0) return RFK_OK;
    RFK_LAUNCH(ctx, "add", k_add, ew_grid(n), rfk_d3(EW_BLOCK), 0, stream, a, b, out, n);
    return RFK_OK;
}
