/*
 * host_checks.c - checks of the kernel wrappers' host side that need no GPU
 * (`op_suite --host-only`, run by `run-op-suite --host-only` on any machine
 * that builds the kernels): argument validation returns the documented
 * RFK_E_* codes, the launch-check hook sees every launch before it is issued
 * (it refuses here, so nothing reaches the runtime), and the grid / block a
 * wrapper asks for follows from the sizes and the warp width (both 32 and,
 * in builds with wave64 targets, 64). Device pointers are fake, aligned
 * addresses: a wrapper never dereferences them on the host.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "gpu/kernels/kernels.h"

static int n_bad, n_ok;

typedef struct seen {
    int calls;
    const char *kernel; /* the first launch of the wrapper call */
    rfk_dim3 grid, block;
    size_t smem;
} seen;

#define REFUSED (-100)

static int record(void *user, const char *kernel, rfk_dim3 grid, rfk_dim3 block, size_t smem) {
    seen *s = user;
    if (s->calls++ == 0) s->kernel = kernel, s->grid = grid, s->block = block, s->smem = smem;
    return REFUSED;
}

static void expect(bool cond, const char *what) {
    cond ? n_ok++ : n_bad++;
    if (!cond) printf("FAIL host       %s\n", what);
}

/* Runs `call` with a fresh recorder in ctx; checks it was refused by the
 * hook (status REFUSED) after exactly one check, with the given kernel and
 * dims. */
#define EXPECT_LAUNCH(ctx, call, name, gx, gy, gz, bx)                                                      \
    do {                                                                                                  \
        seen s_ = {0};                                                                                    \
        (ctx).check_user = &s_;                                                                           \
        int st_ = (call);                                                                                 \
        char w_[200];                                                                                     \
        snprintf(w_, sizeof w_, "%s (W=%d): status %d, %d checks, %s grid %u,%u,%u block %u; want %s %u,%u,%u %u", \
                 #call, (ctx).warp_size, st_, s_.calls, s_.kernel ? s_.kernel : "-", s_.grid.x, s_.grid.y,   \
                 s_.grid.z, s_.block.x, name, (unsigned)(gx), (unsigned)(gy), (unsigned)(gz), (unsigned)(bx)); \
        expect(st_ == REFUSED && s_.calls == 1 && s_.kernel && strcmp(s_.kernel, name) == 0 &&              \
                   s_.grid.x == (unsigned)(gx) && s_.grid.y == (unsigned)(gy) && s_.grid.z == (unsigned)(gz) && \
                   s_.block.x == (unsigned)(bx) && s_.block.y == 1 && s_.block.z == 1,                       \
               w_);                                                                                       \
    } while (0)

static void check_width(int W) {
    rfk_ctx c = {.warp_size = W, .check = record};
    void *w = (void *)0x100000, *x = (void *)0x200000, *y = (void *)0x300000, *sc = (void *)0x400000;
    const int64_t rows = 1000, cols = 4096;
    const unsigned rpb = 256 / (unsigned)W; /* mat-vec rows per block */

    /* matmul: mat-vec, q8 path (quantizer first), tiled; plan agrees */
    EXPECT_LAUNCH(c, rfk_matmul(&c, NULL, 12, w, 144 * 16, cols, rows, x, y, 1, NULL, 0), "matvec",
                  (rows + rpb - 1) / rpb, 1, 1, 256);
    const size_t sb = rfk_matmul_scratch_bytes(12, cols, 3);
    expect(sb >= (size_t)(3 * cols), "q8 scratch holds the int8 activations");
    expect(sb >= (size_t)(3 * cols) * 5 / 4 + (size_t)(3 * cols) * 2, "and the float16 ones after them");
    c.mmq_f16 = 2; /* int8 products: the quantizer first */
    EXPECT_LAUNCH(c, rfk_matmul(&c, NULL, 12, w, 144 * 16, cols, rows, x, y, 3, sc, sb), "quantize_q8",
                  (3 * cols / 4 + 255) / 256, 1, 1, 256);
    c.mmq_f16 = 1; /* float16 products: the float16 conversion first */
    EXPECT_LAUNCH(c, rfk_matmul(&c, NULL, 12, w, 144 * 16, cols, rows, x, y, 3, sc, sb), "mmq_x_f16",
                  (3 * cols / 4 + 255) / 256, 1, 1, 256);
    /* the int8 products' tiles at 32 tokens (Q4_0 4096 x 4096, activations in
       scratch): 64-row tiles of 32 tokens, K split in 8 on 132 multiprocessors
       with the split buffer (16 stages of 256 columns, two each); without it,
       8-token tiles; one multiprocessor: neither */
    {
        const size_t sb32 = rfk_matmul_scratch_bytes(2, 4096, 32);
        rfk_mm_out o = {{y, NULL, NULL}, {4096, 0, 0}, 1};
        c.n_units = 132, c.mmq_f16 = 2;
        EXPECT_LAUNCH(c, rfk_matmul_ex(&c, NULL, 2, w, 18 * 128, 4096, 4096, NULL, &o, 32, sc, sb32, 1), "mmq_rows",
                      64, 4, 1, 128);
        c.mmq_split = (void *)0x500000;
        c.mmq_split_bytes = rfk_mmq_split_bytes(132);
        expect(c.mmq_split_bytes >= RFK_MMQ_TICKETS * sizeof(int) + (size_t)132 * 8 * 128 * 32 * sizeof(float),
               "the split buffer holds the tickets and 8 blocks' partial sums a multiprocessor");
        EXPECT_LAUNCH(c, rfk_matmul_ex(&c, NULL, 2, w, 18 * 128, 4096, 4096, NULL, &o, 32, sc, sb32, 1), "mmq_rows",
                      64, 1, 8, 128);
        c.mmq_split_bytes = RFK_MMQ_TICKETS * sizeof(int) + 3 * 64 * 128 * 16 * sizeof(float); /* room for 3 */
        EXPECT_LAUNCH(c, rfk_matmul_ex(&c, NULL, 2, w, 18 * 128, 4096, 4096, NULL, &o, 32, sc, sb32, 1), "mmq_rows",
                      64, 1, 3, 128);
        c.n_units = 1;
        c.mmq_split_bytes = rfk_mmq_split_bytes(132);
        EXPECT_LAUNCH(c, rfk_matmul_ex(&c, NULL, 2, w, 18 * 128, 4096, 4096, NULL, &o, 32, sc, sb32, 1), "mmq_rows",
                      64, 1, 1, 128);
        c.n_units = 0, c.mmq_split = NULL, c.mmq_split_bytes = 0;
    }
    /* activations a producer left in scratch (x_quantized): the float16
       products read its float16 copy, no conversion launch; the producers
       need the scratch that holds that copy from 3 rows */
    {
        rfk_mm_out o = {{y, NULL, NULL}, {rows, 0, 0}, 1};
        c.mmq_f16 = 1;
        EXPECT_LAUNCH(c, rfk_matmul_ex(&c, NULL, 12, w, 144 * 16, cols, rows, NULL, &o, 3, sc, sb, 1), "mmq_rows_f16",
                      (rows + 127) / 128, 1, 1, 128); /* Q4_K's 128-row tiles: n_units 0 counts as one */
        const size_t q8_only = (size_t)(3 * cols) + (size_t)(3 * cols / 32) * 8;
        seen s = {0};
        c.check_user = &s;
        expect(rfk_add_rmsnorm_q8(&c, NULL, x, NULL, NULL, y, 3, cols, 1e-5f, sc, q8_only) == RFK_E_SCRATCH &&
                   s.calls == 0,
               "add_rmsnorm_q8 of 3 rows refuses scratch without room for the float16 copy");
        expect(rfk_glu_q8(&c, NULL, 0, x, x, y, 3, cols, sc, q8_only) == RFK_E_SCRATCH && s.calls == 0,
               "glu_q8 of 3 rows refuses it too");
        EXPECT_LAUNCH(c, rfk_add_rmsnorm_q8(&c, NULL, x, NULL, NULL, y, 3, cols, 1e-5f, sc, sb), "add_rmsnorm_q8", 3, 1,
                      1, 256);
        EXPECT_LAUNCH(c, rfk_add_rmsnorm_q8(&c, NULL, x, NULL, NULL, y, 2, cols, 1e-5f, sc, q8_only),
                      "add_rmsnorm_q8", 2, 1, 1, 256); /* 2 rows: no copy, q8 only */
    }
    c.mmq_f16 = 0;
    EXPECT_LAUNCH(c, rfk_matmul(&c, NULL, 2, w, 18 * 128, cols, rows, x, y, 77, sc, sb), "mm_tiled",
                  (rows + 63) / 64, 2, 1, 256);
    rfk_launch_plan p;
    expect(rfk_matmul_plan(&c, 2, cols, rows, 16, &p) == 2 && strcmp(p.kernel, "matvec") == 0 &&
               p.grid.x == (rows + rpb - 1) / rpb && p.block.x == 256,
           "plan: 16 tokens = 2 mat-vec launches");
    expect(rfk_matmul_plan(&c, 2, cols, rows, 512, &p) == 1 && strcmp(p.kernel, "mm_tiled") == 0 && p.grid.y == 8,
           "plan: 512 tokens = one tiled launch, 8 token tiles");
    EXPECT_LAUNCH(c, rfk_get_rows(&c, NULL, 14, w, 210 * 16, cols, rows, (const int32_t *)x, 7, y), "get_rows", 7, 1, 1,
                  128);

    /* row and elementwise ops */
    EXPECT_LAUNCH(c, rfk_rmsnorm(&c, NULL, x, NULL, y, 77, 4096, 1e-5f), "rmsnorm", 77, 1, 1, 256);
    EXPECT_LAUNCH(c, rfk_softmax(&c, NULL, x, y, 5, 100003, 1.0f), "softmax", 5, 1, 1, 256);
    EXPECT_LAUNCH(c, rfk_rope(&c, NULL, y, x, 77, 8, 128, 128, 1), "rope", 77 * 8, 1, 1, 64);
    EXPECT_LAUNCH(c, rfk_glu(&c, NULL, 0, x, x, y, 100000000), "glu", 65535, 1, 1, 256);
    EXPECT_LAUNCH(c, rfk_add(&c, NULL, x, x, y, 1000), "add", 4, 1, 1, 256);

    /* attention: prefill (4 warps), long decode without scratch (512
     * threads), long decode with scratch (split over blocks) */
    rfk_kv_view kv = {(uint16_t *)w, (uint16_t *)x, (const int32_t *)y, 64, 1024, 16};
    rfk_attn_args a = {x, y, (const int32_t *)x, (const int32_t *)x, 512, 32, 8, 128, 0.1f, 0, 511, NULL, 0, 0, NULL, 0,
                       NULL, NULL, NULL, 0, 0};
    /* many (head, token) blocks: the 4 query heads of a kv head share a block of 8 warps */
    EXPECT_LAUNCH(c, rfk_attention(&c, NULL, &kv, &a), "attention", 8, 512, 1, 8 * W);
    a.n_seq = 1; /* a prompt: the tiled prefill kernel, 32 queries per block */
    EXPECT_LAUNCH(c, rfk_attention(&c, NULL, &kv, &a), "attn_prefill", 16, 32, 1, 128);
    a.n_seq = 17; /* 512 / 17 < 32 queries per sequence: the per-query kernel */
    EXPECT_LAUNCH(c, rfk_attention(&c, NULL, &kv, &a), "attention", 8, 512, 1, 8 * W);
    a.n_seq = 0;
    a.n_tok = 1, a.max_pos = 4095;
    EXPECT_LAUNCH(c, rfk_attention(&c, NULL, &kv, &a), "attention", 32, 1, 1, 512);
    a.scratch = sc, a.scratch_bytes = rfk_attention_scratch_bytes(128);
    EXPECT_LAUNCH(c, rfk_attention(&c, NULL, &kv, &a), "attention", 32, 1, 16, 4 * W);
    EXPECT_LAUNCH(c, rfk_kv_store(&c, NULL, &kv, x, x, (const int32_t *)x, (const int32_t *)x, 9), "kv_store", 9, 1, 1,
                  128);
    /* short decode: few blocks in 8-key tiles, 256 threads; many blocks share kv heads as above */
    a.scratch = NULL, a.scratch_bytes = 0, a.n_tok = 1, a.max_pos = 100;
    EXPECT_LAUNCH(c, rfk_attention(&c, NULL, &kv, &a), "attention", 32, 1, 1, 256);
    a.n_tok = 9;
    EXPECT_LAUNCH(c, rfk_attention(&c, NULL, &kv, &a), "attention", 8, 9, 1, 8 * W);
    /* the q8 copy of the output: in the kernel, or after the tiled prefill kernel */
    a.q8 = sc, a.q8_bytes = rfk_matmul_scratch_bytes(2, 32 * 128, 64);
    EXPECT_LAUNCH(c, rfk_attention(&c, NULL, &kv, &a), "attention", 8, 9, 1, 8 * W);
    /* RoPE + KV store inside the attention (one token a sequence): the same launch */
    a.k_new = x, a.v_new = x, a.cs = x, a.n_rot = 128, a.rope_style = 1, a.n_seq = 9;
    EXPECT_LAUNCH(c, rfk_attention(&c, NULL, &kv, &a), "attention", 8, 9, 1, 8 * W);
    a.k_new = NULL, a.v_new = NULL, a.cs = NULL;
    a.n_tok = 64, a.max_pos = 63, a.n_seq = 1;
    EXPECT_LAUNCH(c, rfk_attention(&c, NULL, &kv, &a), "attn_prefill", 2, 32, 1, 128);
    a.n_seq = 0, a.n_tok = 1, a.max_pos = 4095, a.q8 = NULL, a.q8_bytes = 0; /* the long decode of above */
    a.scratch = sc, a.scratch_bytes = rfk_attention_scratch_bytes(128);

    /* the norm fused into the mat-vec: one launch of the wide kernel's _norm twin */
    float *xr = (float *)0x500000, *yr = (float *)0x600000;
    rfk_mv_norm nrm = {xr, (const float *)0x700000, (const float *)0x800000, yr, 1e-5f, (int *)0x900000};
    rfk_mm_out o3 = {{y, y, y}, {rows / 2, rows / 4, rows - rows / 2 - rows / 4}, 3};
    EXPECT_LAUNCH(c, rfk_matmul_norm(&c, NULL, 2, w, 18 * 128, cols, rows, &nrm, &o3), "matvec_norm",
                  (rows + rpb - 1) / rpb, 1, 1, 256);
    EXPECT_LAUNCH(c, rfk_matmul_norm(&c, NULL, 14, w, 210 * 16, cols, rows, &nrm, &o3), "matvec_norm",
                  (rows + rpb - 1) / rpb, 1, 1, 256);
    /* launched early (sm_90's programmatic dependent launch): checked the same */
    c.early_launch = 1;
    EXPECT_LAUNCH(c, rfk_matmul_norm(&c, NULL, 12, w, 144 * 16, cols, rows, &nrm, &o3), "matvec_norm",
                  (rows + rpb - 1) / rpb, 1, 1, 256);
    c.early_launch = 0;

    /* refusals before any launch (the hook must not even be asked) */
    seen s = {0};
    c.check_user = &s;
    expect(rfk_matmul(&c, NULL, 2, w, 18 * 1, 48, rows, x, y, 1, NULL, 0) == RFK_E_INVAL, "cols not a multiple of 32");
    expect(rfk_matmul(&c, NULL, 12, w, 144, 128, rows, x, y, 1, NULL, 0) == RFK_E_INVAL, "cols not whole super-blocks");
    expect(rfk_matmul(&c, NULL, 2, w, 17, 32, rows, x, y, 1, NULL, 0) == RFK_E_INVAL, "row_bytes too small");
    expect(rfk_matmul(&c, NULL, 2, w, 18 * 128, cols, rows, (const float *)0x200004, y, 1, NULL, 0) == RFK_E_INVAL,
           "x not 16-byte aligned");
    expect(rfk_matmul(&c, NULL, 15, w, 292 * 16, cols, rows, x, y, 1, NULL, 0) == RFK_E_UNSUPPORTED, "Q8_K weights");
    expect(rfk_matmul(&c, NULL, 4, w, 64, cols, rows, x, y, 1, NULL, 0) == RFK_E_UNSUPPORTED, "retired type id 4");
    rfk_mv_norm no_ticket = nrm;
    no_ticket.ticket = NULL;
    expect(rfk_matmul_norm(&c, NULL, 2, w, 18 * 128, cols, rows, &no_ticket, &o3) == RFK_E_INVAL,
           "fused norm without its ticket");
    expect(rfk_matmul(&c, NULL, 12, w, 144 * 16, cols, rows, x, y, 3, sc, sb - 1) == RFK_E_SCRATCH, "scratch short");
    expect(rfk_matmul(&c, NULL, 12, w, 144 * 16, cols, rows, x, y, 3, (void *)0x400008, sb) == RFK_E_SCRATCH,
           "scratch misaligned");
    a.scratch_bytes = 16;
    expect(rfk_attention(&c, NULL, &kv, &a) == RFK_E_SCRATCH, "attention scratch short");
    a.scratch = NULL, a.head_dim = 258;
    expect(rfk_attention(&c, NULL, &kv, &a) == RFK_E_INVAL, "head_dim 258");
    a.head_dim = 128, a.n_head_kv = 5;
    expect(rfk_attention(&c, NULL, &kv, &a) == RFK_E_INVAL, "n_head not a multiple of n_head_kv");
    expect(rfk_rope(&c, NULL, y, x, 1, 1, 64, 65, 0) == RFK_E_INVAL, "odd n_rot");
    a.n_head_kv = 8, a.head_dim = 80, a.q8 = sc, a.q8_bytes = (size_t)1 << 20, a.n_tok = 9, a.max_pos = 100;
    expect(rfk_attention(&c, NULL, &kv, &a) == RFK_E_SCRATCH, "attention q8 with head_dim 80");
    a.head_dim = 128, a.q8_bytes = 64;
    expect(rfk_attention(&c, NULL, &kv, &a) == RFK_E_SCRATCH, "attention q8 scratch short");
    a.q8 = NULL, a.q8_bytes = 0;
    a.k_new = x, a.v_new = x, a.cs = x, a.n_rot = 128, a.rope_style = 0, a.n_seq = 8; /* n_tok 9 */
    expect(rfk_attention(&c, NULL, &kv, &a) == RFK_E_INVAL, "attention k_new with two tokens of one sequence");
    a.n_seq = 9, a.n_rot = 130;
    expect(rfk_attention(&c, NULL, &kv, &a) == RFK_E_INVAL, "attention k_new n_rot past head_dim");
    a.n_rot = 128, a.rope_style = 2;
    expect(rfk_attention(&c, NULL, &kv, &a) == RFK_E_INVAL, "attention k_new rope style 2");
    a.rope_style = 0, kv.kv_dim = 2048;
    expect(rfk_attention(&c, NULL, &kv, &a) == RFK_E_INVAL, "attention k_new cache rows wider than the kv heads");
    kv.kv_dim = 1024, a.v_new = NULL;
    expect(rfk_attention(&c, NULL, &kv, &a) == RFK_E_INVAL, "attention k_new without v_new");
    a.k_new = NULL, a.cs = NULL, a.n_seq = 0;
    /* rfk_matmul_norm: where no fused kernel applies it says so (the caller
       then launches the norm and the matmul apart); bad arguments are errors */
    expect(rfk_matmul_norm(&c, NULL, 3, w, 20 * 128, cols, rows, &nrm, &o3) == RFK_E_UNSUPPORTED, "norm: Q4_1");
    expect(rfk_matmul_norm(&c, NULL, 2, w, 18 * 136, cols + 256, rows, &nrm, &o3) == RFK_E_UNSUPPORTED,
           "norm: a row past the registers");
    expect(rfk_matmul_norm(&c, NULL, 14, w, 210 * 15, 3840, rows, &nrm, &o3) == RFK_E_UNSUPPORTED,
           "norm: Q6_K rows not whole 16-byte vectors");
    rfk_mv_norm bad = nrm;
    bad.delta = (const float *)0x700004;
    expect(rfk_matmul_norm(&c, NULL, 2, w, 18 * 128, cols, rows, &bad, &o3) == RFK_E_UNSUPPORTED,
           "norm: delta not 16-byte aligned");
    bad = nrm, bad.y = xr;
    expect(rfk_matmul_norm(&c, NULL, 2, w, 18 * 128, cols, rows, &bad, &o3) == RFK_E_INVAL, "norm: y is x");
    bad = nrm, bad.x = NULL;
    expect(rfk_matmul_norm(&c, NULL, 2, w, 18 * 128, cols, rows, &bad, &o3) == RFK_E_INVAL, "norm: no x");
    o3.rows[2] += 1;
    expect(rfk_matmul_norm(&c, NULL, 2, w, 18 * 128, cols, rows, &nrm, &o3) == RFK_E_INVAL, "norm: parts != rows");
    expect(s.calls == 0, "no launch check for refused arguments");
}

/* Returns the number of failed checks. */
int rfk_host_checks(void);
int rfk_host_checks(void) {
    check_width(32);
    rfk_ctx c64 = {.warp_size = 64, .check = record};
    seen s = {0};
    c64.check_user = &s;
    const int st = rfk_add(&c64, NULL, (const float *)0x1000, (const float *)0x1000, (float *)0x1000, 8);
    /* The warp width gates only the kernels templated on it: add takes any. */
    const int st_norm = rfk_rmsnorm(&c64, NULL, (const float *)0x1000, NULL, (float *)0x1000, 1, 8, 1e-5f);
    if (st_norm == RFK_E_WARP) {
        expect(st == REFUSED, "warp 64 in a 32-only build: elementwise ops still launch");
        printf("host: this build has no wave64 target; warp 64 refused with RFK_E_WARP\n");
    } else {
        check_width(64);
    }
    rfk_ctx bad = {.warp_size = 48, .check = record, .check_user = &s};
    expect(rfk_matmul(&bad, NULL, 2, (void *)0x1000, 18, 32, 1, (const float *)0x1000, (float *)0x1000, 1, NULL, 0) ==
               RFK_E_WARP,
           "warp 48 refused");
    for (int code = -4; code <= 1; code++) expect(rfk_status_str(code) != NULL, "status text");
    printf("op_suite host checks: %d passed, %d failed\n", n_ok, n_bad);
    return n_bad;
}
