/*
 * convert.cu - the float16 operands of the vendor-BLAS prefill path: a
 * quantized weight dequantized to a float16 matrix, and float32
 * activations rounded to float16. A prompt's matmuls then run as one
 * float16 x float16 -> float32 GEMM on the tensor / matrix cores
 * (src/gpu/blas.c); decode keeps the fused mat-vec of matmul.cu, which reads
 * the quantized weight once.
 *
 * Each thread decodes one quad (4 consecutive elements of a row, the
 * decoders' rfk_q<T>::quad) and stores it as 8 bytes, so a warp's stores
 * are contiguous. Values are the float32 decode rounded once to float16.
 */
#include "kcommon.cuh"
#include "quant.cuh"

#define CV_BLOCK 256

template <int T>
__global__ void __launch_bounds__(CV_BLOCK)
    k_dequant_f16(const uint8_t *__restrict__ w, size_t row_bytes, int64_t quads_per_row, int64_t n_quads,
                  uint2 *__restrict__ out) {
    for (int64_t i = (int64_t)blockIdx.x * CV_BLOCK + threadIdx.x; i < n_quads; i += (int64_t)gridDim.x * CV_BLOCK) {
        const int64_t r = i / quads_per_row, q = i % quads_per_row;
        float v[4];
        rfk_q<T>::quad(w + (size_t)r * row_bytes, q / 8, (int)(q % 8), v);
        out[i] = make_uint2((uint32_t)rfk_f2h(v[0]) | ((uint32_t)rfk_f2h(v[1]) << 16),
                            (uint32_t)rfk_f2h(v[2]) | ((uint32_t)rfk_f2h(v[3]) << 16));
    }
}

__global__ void __launch_bounds__(CV_BLOCK) k_f32_to_f16(const float4 *__restrict__ x, int64_t n4, uint2 *__restrict__ out) {
    for (int64_t i = (int64_t)blockIdx.x * CV_BLOCK + threadIdx.x; i < n4; i += (int64_t)gridDim.x * CV_BLOCK) {
        const float4 v = x[i];
        out[i] = make_uint2((uint32_t)rfk_f2h(v.x) | ((uint32_t)rfk_f2h(v.y) << 16),
                            (uint32_t)rfk_f2h(v.z) | ((uint32_t)rfk_f2h(v.w) << 16));
    }
}

/* Enough blocks to fill any current GPU several times over; the loops
 * stride past the grid. */
static uint64_t cv_blocks(int64_t n) {
    const int64_t b = (n + CV_BLOCK - 1) / CV_BLOCK;
    return b < 65536 ? (uint64_t)b : 65536u;
}

template <int T>
static int launch_dequant_f16(const rfk_ctx *ctx, void *stream, const uint8_t *w, size_t row_bytes, int64_t cols,
                              int64_t rows, uint16_t *out) {
    const int64_t qpr = cols / 4, n = qpr * rows;
    RFK_LAUNCH(ctx, "dequant_f16", k_dequant_f16<T>, rfk_d3(cv_blocks(n)), rfk_d3(CV_BLOCK), 0, stream, w, row_bytes,
               qpr, n, (uint2 *)out);
    return RFK_OK;
}

typedef int (*dequant_fn)(const rfk_ctx *, void *, const uint8_t *, size_t, int64_t, int64_t, uint16_t *);
typedef struct cv_type {
    uint32_t type;
    int64_t blck;
    size_t bytes;
    dequant_fn dequant;
} cv_type;

#define RFK_CV_ROW(id, name) {id, rfk_q<id>::blck, rfk_q<id>::bytes, launch_dequant_f16<id>},
static const cv_type cv_types[] = {RFK_FOR_EACH_TYPE(RFK_CV_ROW)};

extern "C" int rfk_dequant_f16(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w, size_t row_bytes,
                               int64_t cols, int64_t rows, uint16_t *out) {
    const cv_type *t = NULL;
    for (size_t i = 0; i < RFK_N_TYPES; i++)
        if (cv_types[i].type == type) t = &cv_types[i];
    if (!ctx) return RFK_E_INVAL;
    if (!t) return RFK_E_UNSUPPORTED;
    if (!w || !out || cols <= 0 || rows <= 0 || cols % 32 || cols % t->blck) return RFK_E_INVAL;
    const size_t need = (size_t)(cols / t->blck) * t->bytes;
    if (row_bytes < need || (row_bytes != need && row_bytes % 16) || ((uintptr_t)w & 15) || ((uintptr_t)out & 7))
        return RFK_E_INVAL;
    return t->dequant(ctx, stream, (const uint8_t *)w, row_bytes, cols, rows, out);
}

extern "C" int rfk_f32_to_f16(const rfk_ctx *ctx, void *stream, const float *x, uint16_t *out, int64_t n) {
    if (!ctx || !x || !out || n < 0 || n % 4 || ((uintptr_t)x & 15) || ((uintptr_t)out & 7)) return RFK_E_INVAL;
    if (n == 0) return RFK_OK;
    RFK_LAUNCH(ctx, "f32_to_f16", k_f32_to_f16, rfk_d3(cv_blocks(n / 4)), rfk_d3(CV_BLOCK), 0, stream,
               (const float4 *)x, n / 4, (uint2 *)out);
    return RFK_OK;
}
