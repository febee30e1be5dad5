/*
 * cpu-impl.h - internals of the CPU backend shared by its files: the kernel
 * set every ISA file fills (scalar, AVX2, AVX-512, NEON), the layouts of the
 * quantized activation rows the integer matmul kernels read, and the
 * reference op table. Nothing outside src/cpu and its tests includes this.
 *
 * How a matmul runs (ops.c): each activation row x[t] (K floats) is
 * quantized once per matmul into the 8-bit format the weight type asks for
 * (rf_cpu_act_fmt), then the kernel of that weight type computes a tile of
 * rows x tokens with integer dot products per block and float scales per
 * block. Types without an integer kernel are dequantized to F32 a tile of
 * rows at a time and go through the F32 kernel.
 */
#ifndef RF_CPU_IMPL_H
#define RF_CPU_IMPL_H

#include <string.h>

#include "cpu.h"

/* ---- activation formats -------------------------------------------------- */

/* A32 (for every quantized weight type): per row of K (a multiple of 32):
 *   int8  q[K]        q = round_even(x * 127 / amax(block of 32)), |q| <= 127
 *   float d[K / 32]   amax / 127 (0 for an all-zero block)
 *   float ds32[K/32]  d * sum(q) over the block
 *   float ds16[K/16]  d * sum(q) over each 16 columns
 *   int16 s16[K/16]   sum(q) over each 16 columns
 * F32: the float row itself. The super-block types read A32 too (one scale
 * per 256 columns, as llama.cpp's Q8_K, measured twice the logit error on
 * Gemma 3 Q4_K_M: median relative L2 8.7% against 4.7% for A32).
 * Every kernel set writes the same bytes for the same input: the rounding
 * and every float product above are specified, not approximate. Rows are
 * padded to 64 bytes. */
typedef enum rf_act_fmt { RF_ACT_F32 = 0, RF_ACT_A32 = 1, RF_ACT_COUNT } rf_act_fmt;

static inline size_t rf_act_row_bytes(rf_act_fmt f, int64_t K) {
    size_t n = f == RF_ACT_F32 ? (size_t)K * 4 : (size_t)K + (size_t)(K / 32) * 8 + (size_t)(K / 16) * 6;
    return (n + 63) & ~(size_t)63;
}
static inline const int8_t *rf_act_q(const uint8_t *a) { return (const int8_t *)a; }
static inline const float *rf_act_d(const uint8_t *a, int64_t K) { return (const float *)(const void *)(a + K); }
static inline const float *rf_act_ds32(const uint8_t *a, int64_t K) { return rf_act_d(a, K) + K / 32; }
static inline const float *rf_act_ds16(const uint8_t *a, int64_t K) { return rf_act_ds32(a, K) + K / 32; }
static inline const int16_t *rf_act_s16(const uint8_t *a, int64_t K) {
    return (const int16_t *)(const void *)(rf_act_ds16(a, K) + K / 16);
}

/* ---- the kernel set ------------------------------------------------------ */

/* One matmul tile: y[t * ldy + r] = dot(W row r, activation row t) for
 * r < nr, t < nt. w: nr rows w_stride bytes apart (borrowed, unaligned);
 * a: nt activation rows a_stride bytes apart in the type's format. */
typedef struct rf_mm_args {
    int64_t K;
    const uint8_t *w;
    size_t w_stride;
    int64_t nr;
    const uint8_t *a;
    size_t a_stride;
    int64_t nt;
    float *y;
    int64_t ldy;
} rf_mm_args;
typedef void (*rf_mm_fn)(const rf_mm_args *m);

/* Quantizes one row of K floats into an activation format. */
typedef void (*rf_act_quant_fn)(const float *x, uint8_t *dst, int64_t K);

/* One attention job: up to RF_ATTN_MAX_Q query rows (already scaled by the
 * softmax scale) of one KV head, walking the cache a chunk of positions at a
 * time with an online softmax. Lane-major: query row i is column i of q and
 * o, so kernels can keep one row per vector lane. Rows i >= nq have
 * last[i] = -1 and stay empty. See ops.c. */
typedef struct rf_attn_tile {
    int64_t hd;              /* head dim */
    int nq;                  /* query rows (<= RF_ATTN_MAX_Q) */
    const float *q;          /* [hd][RF_ATTN_MAX_Q] */
    const int32_t *last;     /* [RF_ATTN_MAX_Q] last visible position of each row */
    const int32_t *first;    /* [RF_ATTN_MAX_Q] first visible position (sliding window) */
    float *m, *l;            /* [RF_ATTN_MAX_Q] running max and sum (caller: -inf, 0) */
    float *o;                /* [hd][RF_ATTN_MAX_Q] unnormalised output (caller: 0) */
    float *s;                /* scratch [RF_ATTN_MAX_P][RF_ATTN_MAX_Q] */
    float *kf, *vf;          /* scratch [RF_ATTN_MAX_P][hd] */
} rf_attn_tile;
#define RF_ATTN_MAX_Q 32
#define RF_ATTN_MAX_P 64
typedef void (*rf_attn_fn)(rf_attn_tile *t, int32_t p0, int np, const uint16_t *k, const uint16_t *v,
                           int64_t stride);

/* ---- the prompt GEMM ------------------------------------------------------- */

/* For batches of many tokens the row kernels above re-decode every weight
 * block for every four tokens. The GEMM path instead unpacks a few weight
 * rows once into a panel of 8-bit digits with one float scale d and one
 * float offset m per group of gs (16 or 32) values (value = d * digit + m),
 * then a register-tiled micro-kernel multiplies that panel with many tokens.
 *
 * Panel of R = gemm_rows rows, K columns:
 *   uint8 digit[R][K]; float d[R][K / gs]; float m[R][K / gs]
 * Activations, per group of G = gemm_tok tokens (missing tokens are zero),
 * per 32-column block b, RF_GEMM_ACT_BLOCK(G) bytes:
 *   int8 q[8][G][4]   q[c][t] = columns 4c..4c+3 of token t
 *   float d[G], ds32[G], ds16[2][G]; int32 s16[2][G]
 * holding exactly the values of the token's A32 row: a token gets the same
 * 8-bit activations in a prompt batch and in a decode step.
 *
 * Both paths compute, per weight row and token, over the row's units u
 * (blocks of 32, or the sub-blocks of 16 or 32 of a super-block, in order):
 *   I   = sum(digit * q) - off * sum(q)          (exact, int32)
 *   acc = fma((float)I, d_u * d_a, acc)           (d_u * d_a rounded once)
 *   acc = fma(m_u, ds_u, acc)                     (types with a min only)
 * where d_u and m_u are the unit's scale and min (exact float products of
 * the stored fields). So the row kernels and the GEMM give bit-identical
 * results, and a token's logits do not depend on the batch around it.
 * The micro-kernel writes y[t * ldy + r] for t < nt, r < nr (nothing else). */
#define RF_GEMM_ACT_BLOCK(G) ((size_t)(G) * 56)
static inline size_t rf_gemm_panel_bytes(int R, int64_t K) { return (size_t)R * (size_t)K * 3; }
#define RF_GEMM_FMT(gs, bits, off_shift, has_min) ((gs) | (bits) << 8 | ((off_shift) + 1) << 16 | (has_min) << 24)
static inline size_t rf_gemm_act_bytes(int G, int64_t K) { return RF_GEMM_ACT_BLOCK(G) * (size_t)(K / 32); }

/* Packs nr (<= R) rows w_stride bytes apart; rows nr..R-1 are zero. Returns
 * the panel format: unit size gs (16 or 32) in bits 0-7, the largest
 * digit's bit count in bits 8-15 (the AVX2 kernel sums that many products
 * in int16), log2(off) + 1 in bits 16-23 (0: no offset), and bit 24 set
 * when the type has a min (then m[] holds it). */
typedef int (*rf_gemm_pack_fn)(const uint8_t *w, size_t w_stride, int nr, int64_t K, uint8_t *panel);
typedef void (*rf_gemm_quant_fn)(const float *x, int64_t ldx, int nt, int64_t K, uint8_t *dst);
typedef void (*rf_gemm_fn)(const uint8_t *panel, int fmt, int64_t K, const uint8_t *act, float *y, int64_t ldy,
                           int nt, int nr);

typedef struct rf_cpu_kernels {
    const char *name;                      /* "scalar", "avx2", "avx512", "neon" */
    rf_act_quant_fn quant[RF_ACT_COUNT];   /* by rf_act_fmt; [RF_ACT_F32] unused */
    rf_mm_fn mm[RF_TYPE_COUNT];            /* NULL: dequantize to F32, use mm[RF_TYPE_F32] */
    /* y = x * (1 / sqrt(mean(x^2) + eps)) * w (w may be NULL); y may equal x. */
    void (*rmsnorm)(const float *x, const float *w, float *y, int64_t n, float eps);
    /* out[i] = act(g[i]) * u[i]; out may equal g. */
    void (*swiglu)(const float *g, const float *u, float *out, int64_t n);
    void (*geglu)(const float *g, const float *u, float *out, int64_t n);
    rf_attn_fn attn;
    /* prompt GEMM (optional): used when a type has a pack function */
    int gemm_tok, gemm_rows;               /* G tokens x R rows per micro-tile */
    rf_gemm_quant_fn gemm_quant;
    rf_gemm_pack_fn gemm_pack[RF_TYPE_COUNT];
    rf_gemm_fn gemm;
    /* kernels for weights in the X16 layout (optional; see below): nr a
     * multiple of 16, w at the first row of a group */
    rf_mm_fn mm_x16[RF_TYPE_COUNT];
} rf_cpu_kernels;

/* The activation format each weight type's integer kernel reads (F32 for the
 * float types and for the types without one). Same for every kernel set. */
extern const uint8_t rf_cpu_act_fmt[RF_TYPE_COUNT];

extern const rf_cpu_kernels rf_cpu_kernels_scalar;
#if defined(__x86_64__)
extern const rf_cpu_kernels rf_cpu_kernels_avx2;
extern const rf_cpu_kernels rf_cpu_kernels_avx512;
#endif

/* ---- the X16 weight layout (repack.c) ------------------------------------ */

/* A decode step multiplies every weight row with one activation row. In the
 * file's layout a vector of 16 rows' partial sums needs each row's bytes
 * gathered, or sums folded and transposed, both of which cost more
 * instructions than the memory takes to deliver the bytes. So the CPU
 * backend rearranges (at load, in place) each group of 16 consecutive rows
 * of a tensor so that one 64-byte load holds the same 4 bytes of the same
 * block of all 16 rows: dword lane r = row r. Per block b (the type's block
 * of 32 or 256 columns), a group holds 16 * type_size bytes:
 *   - types whose block size is 2 mod 4 (one float16 field at byte h: Q4_0,
 *     Q5_0, Q8_0, IQ4_NL at 0, Q3_K and Q6_K at the end): that field of the
 *     16 rows, 32 bytes;
 *   - then dword i (i = 0 .. the rest's size / 4 - 1) of the block without
 *     that field, of rows 0..15: 64 bytes each.
 * Rows past the last whole group (rows % 16) keep the file's layout. The
 * arithmetic is the one above (exact integer sums per unit, the same fmas
 * in the same order), so results are bit-identical to the file layout's. */
bool rf_cpu_x16_ok(uint32_t type, int64_t K);
/* src: 16 rows row_bytes apart -> dst (16 * row_bytes); and one row back. */
void rf_cpu_x16_pack(uint32_t type, int64_t K, const uint8_t *src, size_t row_bytes, uint8_t *dst);
void rf_cpu_x16_row(uint32_t type, int64_t K, const uint8_t *group, int r, uint8_t *dst);
/* The whole group back: 16 rows row_bytes apart at dst. */
void rf_cpu_x16_unpack(uint32_t type, int64_t K, const uint8_t *group, size_t row_bytes, uint8_t *dst);

/* ---- dispatch.c ---------------------------------------------------------- */

/* Software prefetch lead (bytes, at least) of the row kernels' weight
 * stream; ROCMFORGE_PF overrides it for tuning. */
extern int rf_cpu_pf_dist;
extern int rf_cpu_pf_env; /* 1 when ROCMFORGE_PF set it (kernels with their own distance then use it too) */

/* The kernel set chosen at start-up: the best the CPU and OS support, or the
 * one ROCMFORGE_CPU names (scalar|avx2|avx512|neon; "ref" selects the
 * reference op table, see rf_cpu_use_ref). Never NULL. */
const rf_cpu_kernels *rf_cpu_kernels_best(void);
/* The set with this name if this CPU can run it, else NULL. */
const rf_cpu_kernels *rf_cpu_kernels_by_name(const char *name);
/* Every set compiled in that this CPU can run, best first; returns count. */
int rf_cpu_kernels_available(const rf_cpu_kernels **out, int cap);
/* True when ROCMFORGE_CPU=ref asks for the reference op table. */
bool rf_cpu_use_ref(void);

/* ---- trace.c: per-op timings as Chrome trace JSON ------------------------- */

typedef struct rf_cpu_trace rf_cpu_trace;
/* NULL on out of memory. The file is written by rf_cpu_trace_close. */
rf_cpu_trace *rf_cpu_trace_open(const char *path, const char *backend);
void rf_cpu_trace_pass(rf_cpu_trace *t); /* a forward pass starts */
/* One op call: op, type and path are static strings; t0/t1 from rf_time_now. */
void rf_cpu_trace_event(rf_cpu_trace *t, const char *op, const char *type, const char *path, double t0, double t1,
                        int64_t rows, int64_t cols, int64_t n_tok, uint64_t bytes, int32_t layer);
void rf_cpu_trace_close(rf_cpu_trace *t); /* writes the file; accepts NULL */

/* ---- ops_ref.c: the reference op table ----------------------------------- */

extern const rf_backend_ops rf_cpu_ref_ops;
void *rf_cpu_ref_ctx_create(rf_threadpool *tp); /* NULL on out of memory */
void rf_cpu_ref_ctx_free(void *ctx);

/* ---- helpers shared by the kernel files ---------------------------------- */

/* Block fields are read with memcpy: GGUF gives no alignment guarantee. The
 * layouts are documented in src/quant/dequant.c. */
static inline uint16_t rf_cpu_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline uint32_t rf_cpu_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline float rf_cpu_f16(const uint8_t *p) { return rf_fp16_to_fp32(rf_cpu_u16(p)); }

/* The eight 6-bit scales and mins of a Q4_K/Q5_K block from its 12-byte
 * scales field (bytes 0-3: scales 0-3, 4-7: mins 0-3, 8-11: low nibbles of
 * scales/mins 4-7 whose top two bits sit in the top bits of bytes 0-7). */
static inline void rf_cpu_k4_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0x0F) | ((s[j] >> 6) << 4));
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

/* The sixteen Q3_K group scales (stored offset by 32), minus 32. */
static inline void rf_cpu_q3k_scales(const uint8_t *ss, int8_t sc[16]) {
    for (int k = 0; k < 16; k++) {
        int lo = (ss[k % 8] >> (4 * (k / 8))) & 0x0F;
        int hi = (ss[8 + k % 4] >> (2 * (k / 4))) & 0x03;
        sc[k] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

/* The eight IQ4_XS sub-block scales, minus 32. */
static inline void rf_cpu_iq4xs_scales(const uint8_t *b, int8_t sc[8]) {
    const uint16_t sh = rf_cpu_u16(b + 2);
    for (int s = 0; s < 8; s++)
        sc[s] = (int8_t)((((b[4 + s / 2] >> (4 * (s % 2))) & 0x0F) | (((sh >> (2 * s)) & 3) << 4)) - 32);
}

/* Splits n items into nth near-equal contiguous parts; part ith is [lo, hi). */
static inline void rf_cpu_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t base = n / nth, rem = n % nth;
    *lo = ith * base + (ith < rem ? ith : rem);
    *hi = *lo + base + (ith < rem ? 1 : 0);
}

#endif
