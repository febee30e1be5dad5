/*
 * kernels.h - the C ABI between the GPU backend's host side (the .c files of src/gpu,
 * plain C17) and the device kernels (the .cu files of src/gpu/kernels, one source for
 * HIP and CUDA). Every entry point is a launch wrapper: it takes the kernel
 * context (warp width and launch-check hook, below), an opaque stream handle
 * (a cudaStream_t / hipStream_t passed as void *; NULL = the default stream),
 * device pointers and sizes; it enqueues work asynchronously and returns an
 * int status: 0 when the launch was issued, a positive vendor error code
 * (cudaError_t / hipError_t value) when the runtime refused it, or one of
 * the negative RFK_E_* codes below when the wrapper itself refused (bad
 * argument, type not supported, launch check failed). Nothing here allocates,
 * synchronizes or touches host memory beyond the argument structs.
 *
 * Launch checks (the design's "every launch is checked against the device
 * limits before it is issued"): the host fills rfk_ctx.check with a function
 * that compares grid, block and dynamic shared memory against the limits it
 * read by attribute query. Every wrapper calls it once per kernel launch,
 * before the launch, with the kernel's name; a non-zero return is passed
 * back unchanged as the wrapper's status and nothing is launched. NULL means
 * no check. rfk_matmul_plan() tells the host, without launching, which
 * kernels and dims a matmul will use, for sizing and logging.
 *
 * Warp width: a device property (64 on CDNA such as gfx90a, 32 on RDNA such
 * as gfx1030 and on NVIDIA), read by the host (warpSize attribute) and
 * passed in rfk_ctx.warp_size. Kernels are C++ templates on the width W;
 * the wrapper instantiates W = 32 or 64 from ctx->warp_size and derives
 * block shapes and grids from it. In device code, an instantiation whose W
 * differs from the compiled target's wavefront width (a W = 64 body built
 * for gfx1030) compiles to a trap and is never launched; a warp_size the
 * build cannot run (64 in a CUDA build, anything but 32/64) is refused with
 * RFK_E_WARP. No kernel assumes 32.
 *
 * Layouts follow src/backend/backend.h: activations row-major float32
 * [n_tok][dim]; a weight of GGUF shape [cols, rows] is `rows` rows of
 * `row_bytes` bytes in its GGUF block format (type = GGUF type id, as in
 * src/quant/quant.h). The KV cache is the CPU's layout (src/kv/kv.h):
 * float16 [layer][k|v][block][slot][kv_dim], per-sequence int32 block tables.
 * All pointers are device pointers unless stated; all are borrowed for the
 * duration of the enqueued work.
 */
#ifndef RF_GPU_KERNELS_H
#define RF_GPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Wrapper-side refusals (vendor error codes are positive). */
enum {
    RFK_OK = 0,
    RFK_E_INVAL = -1,       /* bad size / NULL pointer / inconsistent arguments */
    RFK_E_UNSUPPORTED = -2, /* weight type (or op variant) has no GPU kernel */
    RFK_E_WARP = -3,        /* ctx->warp_size not runnable by this build */
    RFK_E_SCRATCH = -4,     /* scratch smaller than its *_scratch_bytes, or misaligned */
};

typedef struct rfk_dim3 {
    unsigned x, y, z;
} rfk_dim3;

/* Called before each launch; returns 0 to allow it, anything else to refuse
 * (that value becomes the wrapper's status). `kernel` is a static string. */
typedef int (*rfk_launch_check_fn)(void *user, const char *kernel, rfk_dim3 grid, rfk_dim3 block,
                                   size_t smem_bytes);

typedef struct rfk_ctx {
    int warp_size;             /* 32 or 64: the device's warp/wavefront width */
    rfk_launch_check_fn check; /* optional (NULL: no check) */
    void *check_user;          /* passed to check */
    int n_units;               /* multiprocessors (SMs / CUs); 0 = unknown. Sizes persistent grids */
    int early_launch;          /* 1: the mat-vecs may start before the kernel ahead of them has
                                  ended (vendor/cuda.h's rfk_launch_early; sm_90 and later) */
    int mmq_f16;               /* batches of 3..64 tokens: 1 on float16 matrix products, 2 on
                                  int8 ones, 0 the default (float16 in CUDA builds, int8 in HIP
                                  ones; ROCMFORGE_GPU_MMQ_F16=0|1 overrides) */
    void *mmq_split;           /* NULL, or rfk_mmq_split_bytes(n_units) bytes of device memory whose
                                  first RFK_MMQ_TICKETS ints are 0 before the first call (each
                                  call leaves them 0): the matrix products of 3..64 tokens then
                                  split K over several blocks of an output tile, which sum
                                  their partial results here in a fixed order. Calls that share
                                  it must be ordered (one stream) */
    size_t mmq_split_bytes;
} rfk_ctx;

/* The size of rfk_ctx.mmq_split for a device of n_units multiprocessors:
 * the tickets (one int per output tile split), then partial sums for up to
 * eight resident blocks a multiprocessor. */
#define RFK_MMQ_TICKETS 4096
size_t rfk_mmq_split_bytes(int n_units);

/* Human-readable text of a status: the RFK_E_* codes; "vendor runtime
 * error" for positive codes (the vendor runtime names those); other
 * negative values are taken as the launch check's refusals. */
const char *rfk_status_str(int status);

/* ---- matmul: y[t][r] = sum_c W[r][c] * x[t][c] -------------------------- */

/* 1 when `type` has GPU matmul/get_rows kernels, else 0. */
int rfk_matmul_supports(uint32_t type);

/* 1 when batches of 3..64 tokens of `type` (ROCMFORGE_GPU_MMQ_MIN..64),
 * given scratch, run on the int8 matrix-product kernel (one launch,
 * rfk_matmul below), else 0. */
int rfk_matmul_mmq(uint32_t type);

/* Device scratch bytes rfk_matmul can use for these sizes: the q8
 * activation blocks of the integer-dot mat-vec (every quantized type here:
 * Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL IQ4_XS;
 * n_tok <= 64; n_tok above 64 is sized as 64). 0 for F32 / F16 / BF16,
 * which only have the float-activation kernels. Size once for the largest
 * cols and n_tok of a model and reuse. */
size_t rfk_matmul_scratch_bytes(uint32_t type, int64_t cols, int64_t n_tok);

/* One kernel launch as the launch check will see it. */
typedef struct rfk_launch_plan {
    const char *kernel; /* static name, as passed to rfk_ctx.check */
    rfk_dim3 grid, block;
    size_t smem_bytes;
    int launches;       /* how many such launches (token groups) */
} rfk_launch_plan;

/* The product kernel rfk_matmul will launch for these sizes when given no
 * scratch, without launching. (With scratch, which is how the forward pass
 * calls it, the plan does not apply: the integer-dot types run
 * "quantize_q8" once, then "matvec_q8" (the wide-load types on a grid of
 * what the device holds resident) or, for batches of 3..64 of the types
 * with int8 matrix-product kernels, "mmq_rows" / "mmq", whose tiles
 * mmq.cu picks from the device's multiprocessor count.)
 * Returns out->launches (>= 1), or 0 for unsupported input. */
int rfk_matmul_plan(const rfk_ctx *ctx, uint32_t type, int64_t cols, int64_t rows, int64_t n_tok,
                    rfk_launch_plan *out);

/* w: rows * row_bytes bytes of `type` blocks (cols per row, cols a multiple
 * of the block size); x [n_tok][cols]; y [n_tok][rows] (must not alias x).
 * scratch: NULL, or a 16-byte aligned device buffer of at least
 * rfk_matmul_scratch_bytes bytes (else RFK_E_SCRATCH). With scratch, the
 * integer-dot types quantize x to q8 blocks (as llama.cpp's q8_1) and use
 * 4-way int8 dot products: ~3e-5 NMSE from the float result on N(0,1)
 * data, 1.2-1.7x faster for 4-bit types (tests/gpu/NOTES.md); without,
 * every type reads float32 x (float rounding only).
 * n_tok 1..64 uses the fused dequantize + mat-vec kernel (one launch per 8
 * tokens) or, with scratch, for n_tok >= 3 (ROCMFORGE_GPU_MMQ_MIN; 0 turns
 * it off) and Q4_0, Q4_1, Q8_0, Q4_K, Q6_K weights, the matrix-product
 * kernel (mmq.cu): on float16 products of x converted to float16 (CUDA
 * builds, rows of whole copy vectors; rfk_ctx.mmq_f16) or on int8 ones,
 * whose arithmetic is the q8 mat-vec's;
 * larger n_tok the tiled kernel (float path, scratch unused).
 * Requirements (else RFK_E_INVAL): cols a multiple of 32 and of the block
 * size; row_bytes the exact row size or a multiple of 16; w, x 16-byte
 * aligned. */
int rfk_matmul(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w, size_t row_bytes, int64_t cols,
               int64_t rows, const float *x, float *y, int64_t n_tok, void *scratch, size_t scratch_bytes);

/* Where a matmul's rows go: out->n (1..3) consecutive row ranges of the
 * weight, range i (rows[i] rows) to its own array y[i] [n_tok][rows[i]].
 * Lets one launch serve a weight uploaded as the concatenation of q|k|v or
 * gate|up. */
typedef struct rfk_mm_out {
    float *y[3];
    int64_t rows[3];
    int n;
} rfk_mm_out;

/* rfk_matmul with the output split as `out` says (its rows add up to
 * `rows`; more than one part needs n_tok <= 64) and, with x_quantized, the
 * activations already in scratch for these cols and n_tok, as q8 blocks
 * and, from 3 tokens, as the float16 copy the float16 products read
 * (written by rfk_quantize_q8, rfk_add_rmsnorm_q8, rfk_glu_q8 or the
 * attention's q8 output; needs an integer-dot type, scratch and n_tok <=
 * 64); x is then not read and may be NULL. */
int rfk_matmul_ex(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w, size_t row_bytes, int64_t cols,
                  int64_t rows, const float *x, const rfk_mm_out *out, int64_t n_tok, void *scratch,
                  size_t scratch_bytes, int x_quantized);

/* One row's add + RMSNorm + q8 (rfk_add_rmsnorm_q8, n_rows 1) fused into
 * the mat-vec that reads it: every block of the mat-vec computes the row's
 * norm into its own shared memory (x, delta and the weight come from the
 * L2) while its first weight tile is in flight, and the block that reads x
 * last (by the ticket) stores x += delta and y as rfk_add_rmsnorm_q8 does:
 * a block storing x while others still read it would hand them x + delta.
 * Saves that launch and the q8 round trip through scratch. One token; types Q4_0, Q8_0, Q4_K, Q6_K
 * with rows of whole 16-byte vectors, cols a multiple of 32 up to 4096 and
 * x, delta, w, y 16-byte aligned; anything else returns RFK_E_UNSUPPORTED
 * and launches nothing (the
 * caller then runs the two launches). */
typedef struct rfk_mv_norm {
    float *x;           /* [cols]; += delta where delta is given */
    const float *delta; /* [cols] or NULL */
    const float *w;     /* [cols] norm weight, or NULL (1) */
    float *y;           /* [cols] the normed row as floats (not x) */
    float eps;
    int *ticket;        /* device int, 0 before the first call; each call leaves it 0 */
} rfk_mv_norm;

int rfk_matmul_norm(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w, size_t row_bytes, int64_t cols,
                    int64_t rows, const rfk_mv_norm *norm, const rfk_mm_out *out);

/* x [n_tok][cols] (n_tok <= 64, cols a multiple of 32) to q8 blocks (and,
 * from 3 tokens, the float16 copy) in scratch (sized by
 * rfk_matmul_scratch_bytes of an integer-dot type), for rfk_matmul_ex(...,
 * x_quantized = 1) calls that share one input. */
int rfk_quantize_q8(const rfk_ctx *ctx, void *stream, const float *x, int64_t cols, int64_t n_tok, void *scratch,
                    size_t scratch_bytes);

/* The int8 matrix-product primitive (kcommon.cuh's rfk_mma_i8_*) on one
 * 32-lane group: a [32 lanes][4] and b [32][2] int8 words in the k32
 * fragment layout; out [4][32 lanes][4]: the k32 product through the
 * instruction (where the target has one) and through the emulation, then
 * the k16 product (a[.][0..1], b[.][0]) both ways, each added to fixed
 * starting sums (1, 2, 3, 4 for k32; -5, 6, -7, 8 for k16). For the op
 * suite. */
int rfk_mma_selftest(const rfk_ctx *ctx, void *stream, const int *a, const int *b, int *out);

/* The float16 primitive (rfk_mma_f16_k16) likewise: a [32][4], b [32][2]
 * words of float16 pairs; out [2][32][4]: the k16 product onto the sums 1,
 * -2, 3, -4 through the instruction and through the emulation. And the
 * fragment load (rfk_ldsm_x4) of the 8 x 32 halves at the start of m
 * [8][40] (rows of 40 halves) both ways into ld [2][32][4]. */
int rfk_mma_f16_selftest(const rfk_ctx *ctx, void *stream, const int *a, const int *b, const uint16_t *m, float *out,
                         int *ld);

/* out[t] = dequantized row ids[t] of w (ids: device int32 [n], each in
 * [0, rows): an id out of range writes zeros). out [n][cols]. */
int rfk_get_rows(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w, size_t row_bytes, int64_t cols,
                 int64_t rows, const int32_t *ids, int64_t n, float *out);

/* ---- float16 operands of the vendor-BLAS prefill (convert.cu) ----------- */

/* out [rows][cols] float16 = the dequantized weight (every type of
 * rfk_matmul_supports), each element the float32 decode rounded once.
 * Shape rules as rfk_matmul; out 8-byte aligned. */
int rfk_dequant_f16(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w, size_t row_bytes, int64_t cols,
                    int64_t rows, uint16_t *out);

/* out[i] = float16(x[i]) (round to nearest even; beyond the float16 range
 * gives +-inf); n a multiple of 4, x 16-byte and out 8-byte aligned. */
int rfk_f32_to_f16(const rfk_ctx *ctx, void *stream, const float *x, uint16_t *out, int64_t n);

/* ---- per-row and elementwise ops ---------------------------------------- */

/* y = x / sqrt(mean(x^2) + eps) * w, per row of dim; w may be NULL (no
 * scale); y may equal x. */
int rfk_rmsnorm(const rfk_ctx *ctx, void *stream, const float *x, const float *w, float *y, int64_t n_rows,
                int64_t dim, float eps);

/* In place on x [n_tok][n_heads * head_dim]: rotates the first n_rot dims
 * of each head. cs: [n_tok][n_rot] interleaved (cos, sin) pairs per
 * frequency, as src/model/forward.c rope_table builds (scaling folded in).
 * style: 0 = normal (pairs x[2i], x[2i+1]), 1 = neox (x[i], x[i + n_rot/2]),
 * the values of rf_rope_style. */
int rfk_rope(const rfk_ctx *ctx, void *stream, float *x, const float *cs, int64_t n_tok, int64_t n_heads,
             int64_t head_dim, int64_t n_rot, int style);

/* out[i] = act(gate[i]) * up[i]; act 0 = SiLU, 1 = GELU (tanh approx.), the
 * values of rf_act. out may alias gate or up. */
int rfk_glu(const rfk_ctx *ctx, void *stream, int act, const float *gate, const float *up, float *out, int64_t n);

/* out[i] = a[i] + b[i]; out may alias a or b. */
int rfk_add(const rfk_ctx *ctx, void *stream, const float *a, const float *b, float *out, int64_t n);

/* Per row of n_cols: y = softmax(x * scale); y may equal x. */
int rfk_softmax(const rfk_ctx *ctx, void *stream, const float *x, float *y, int64_t n_rows, int64_t n_cols,
                float scale);

/* ---- decode-step fusions (fused.cu) ------------------------------------- */

/* Per row of dim: x += delta (delta may be NULL: no add; the residual add
 * of the previous block), then y = x / sqrt(mean(x^2) + eps) * w (w may be
 * NULL), and, given q8 scratch (n_rows <= 64, dim a multiple of 32, sized
 * by rfk_matmul_scratch_bytes: from 3 rows it holds the float16 copy too),
 * y also as rfk_matmul_ex(..., x_quantized = 1) reads it. y must not alias
 * x. */
int rfk_add_rmsnorm_q8(const rfk_ctx *ctx, void *stream, float *x, const float *delta, const float *w, float *y,
                       int64_t n_rows, int64_t dim, float eps, void *q8, size_t q8_bytes);

/* out = act(gate) * up as rfk_glu (n = n_rows * cols), and, given q8
 * scratch (as rfk_add_rmsnorm_q8's), also as rfk_matmul_ex(...,
 * x_quantized = 1) reads it. */
int rfk_glu_q8(const rfk_ctx *ctx, void *stream, int act, const float *gate, const float *up, float *out,
               int64_t n_rows, int64_t cols, void *q8, size_t q8_bytes);

/* ---- mixture of experts (moe.cu) ------------------------------------------ */

#define RFK_MOE_MAX_EXPERTS 1024
#define RFK_MOE_MAX_K 16

/* Routing of n_tok tokens as the CPU's forward pass does it: router
 * [n_tok][n_expert] logits become probabilities in place (gating 1:
 * softmax, 2: sigmoid); sel [n_tok][k] gets each token's top k experts
 * (the lower id on ties) and selw their probabilities, renormalised to sum
 * 1 when norm is set. */
int rfk_moe_route(const rfk_ctx *ctx, void *stream, float *router, int64_t n_tok, int64_t n_expert, int64_t k,
                  int gating, int norm, int32_t *sel, float *selw);

/* y[p][r] = sum_c W_e[r][c] x[p / x_div][c] for pairs p < n_pairs, where
 * W_e (rows x cols of `type`, row_bytes apart) starts at w0 + e *
 * expert_stride and e = sel[p] (device memory). x_div k: the pairs of a
 * token share its row of x (gate, up); 1: a row per pair (down). Any type
 * rfk_matmul_supports; float32 activations. */
int rfk_matmul_id(const rfk_ctx *ctx, void *stream, uint32_t type, const void *w0, size_t expert_stride,
                  int64_t n_expert, size_t row_bytes, int64_t cols, int64_t rows, const float *x, int x_div,
                  const int32_t *sel, int64_t n_pairs, float *y);

/* out[t][c] = sum over j < k of selw[t][j] * de[t * k + j][c], added in
 * increasing sel[t][j] (the CPU's order). */
int rfk_moe_combine(const rfk_ctx *ctx, void *stream, const float *de, const int32_t *sel, const float *selw,
                    int64_t n_tok, int64_t k, int64_t dim, float *out);

/* ---- paged KV cache and attention --------------------------------------- */

/* One layer's view of the paged cache (device pointers). */
typedef struct rfk_kv_view {
    uint16_t *k;              /* this layer's keys: [n_blocks][block_size][kv_dim] float16 */
    uint16_t *v;              /* this layer's values, same shape */
    const int32_t *tables;    /* [n_seq][max_blocks_per_seq] block ids */
    int64_t max_blocks_per_seq;
    int64_t kv_dim;           /* n_head_kv * head_dim */
    int block_size;
} rfk_kv_view;

/* Writes k, v [n_tok][kv_dim] (float32) as float16 into the cache at
 * (seq[t], pos[t]); the positions must be reserved in the tables. */
int rfk_kv_store(const rfk_ctx *ctx, void *stream, const rfk_kv_view *kv, const float *k, const float *v,
                 const int32_t *pos, const int32_t *seq, int64_t n_tok);

/* RoPE of q [n_tok][n_head * head_dim] in place and of k, with k (rotated)
 * and v [n_tok][kv_dim] stored into the cache as rfk_kv_store does: one
 * launch for rfk_rope(q), rfk_rope(k) and rfk_kv_store. k is not written
 * back. Arguments as those three calls take them. */
int rfk_rope_kv_store(const rfk_ctx *ctx, void *stream, float *q, const float *k, const float *v, const float *cs,
                      int64_t n_tok, int64_t n_head, int64_t n_head_kv, int64_t head_dim, int64_t n_rot, int style,
                      const rfk_kv_view *kv, const int32_t *pos, const int32_t *seq);

/* Attention, the semantics of rf_attn_args (src/backend/backend.h): for
 * token t and head h, query q[t][h*hd..] against keys/values of kv head
 * h / (n_head / n_head_kv) at positions [lo_t, pos[t]] of sequence seq[t],
 * lo_t = max(0, pos[t] - window + 1) when window > 0 else 0; softmax of
 * q.k * scale, weighted sum of v, online softmax in float32. Works for
 * decode (n_tok = sequences) and prefill alike; head_dim <= 256 and a
 * multiple of 2. max_pos: an upper bound of every pos[t] (host-known), used
 * to size the split over the key range. */
typedef struct rfk_attn_args {
    const float *q;           /* [n_tok][n_head * head_dim] */
    float *out;               /* [n_tok][n_head * head_dim] */
    const int32_t *pos;       /* [n_tok] */
    const int32_t *seq;       /* [n_tok] */
    int64_t n_tok, n_head, n_head_kv, head_dim;
    float scale;
    int64_t window;
    int64_t max_pos;
    /* Optional (NULL: none): device scratch of rfk_attention_scratch_bytes
     * bytes, 16-byte aligned (else RFK_E_SCRATCH). With it, decode of few
     * sequences over long contexts splits each key range across blocks and
     * merges the pieces (a second launch, "attn_combine"). */
    void *scratch;
    size_t scratch_bytes;
    /* Distinct sequences among the queries (0: unknown). Batches with at
     * least 32 queries per sequence on average (prompts) and head_dim 64,
     * 80, 96 or 128 take the tiled prefill kernel ("attn_prefill"), whose
     * blocks of 32 queries share every key / value tile they load. */
    int64_t n_seq;
    /* Optional (NULL: none): the output also as q8 blocks (and, from 3
     * tokens, the float16 copy) in this scratch (rfk_quantize_q8's layout,
     * sized by rfk_matmul_scratch_bytes) for a following rfk_matmul_ex(...,
     * x_quantized = 1): written by the attention kernel itself, which saves
     * the quantize launch. Needs head_dim a multiple of 32 and n_tok <= 64. */
    void *q8;
    size_t q8_bytes;
    /* Optional (k_new NULL: none): RoPE and the KV store of this step in
     * the same launch, for batches of one token per sequence (n_seq ==
     * n_tok, else RFK_E_INVAL) over a cache of kv_dim == n_head_kv *
     * head_dim. q is then read unrotated; k_new, v_new [n_tok][kv_dim]
     * are the tokens' own keys and values, not yet in the cache. The
     * kernel rotates q and the key as rfk_rope_kv_store does (cs, n_rot,
     * rope_style as it takes them), takes position pos[t] from these
     * (rounded to float16, as the cache holds it) and stores them into
     * the cache; q itself is not written. */
    const float *k_new, *v_new, *cs;
    int64_t n_rot;
    int rope_style;
} rfk_attn_args;

/* Scratch rfk_attention can use for any n_tok / n_head with this head_dim
 * (0 for an unsupported head_dim). About 4 MB at head_dim 256. */
size_t rfk_attention_scratch_bytes(int64_t head_dim);

int rfk_attention(const rfk_ctx *ctx, void *stream, const rfk_kv_view *kv, const rfk_attn_args *a);

#ifdef __cplusplus
}
#endif

#endif /* RF_GPU_KERNELS_H */
