/*
 * test_logits_buffer.c - rf_ctx_logits, the context's logits buffer: a
 * usable rf_forward target on the CPU, and page-locked memory from the
 * device (rf_layers_ops.host_alloc) when a device computes the head, with
 * every such buffer handed back (host_free) before the device is released.
 * The device is a stand-in that records the calls; no forward pass runs on
 * it. The model is a small random-weight synth written for the test.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "harness.h"
#include "model/model.h"
#include "model/synth.h"

static char g_path[256];
static rf_model *g_m;
static rf_threadpool *g_tp;
static rf_backend g_be;

/* ---- the stand-in device ---------------------------------------------- */

typedef struct fake_dev {
    int allocs, frees, releases;
    size_t last_bytes;
    void *live[8]; /* buffers given and not yet freed */
    int n_live;
    int live_at_release; /* buffers still out when release ran */
    bool refuse;         /* host_alloc returns NULL */
    bool freed_foreign;  /* host_free got a pointer it never gave */
} fake_dev;

static rf_status fake_forward(void *ctx, const rf_layer_step *s, float *x, rf_error *err) {
    (void)ctx, (void)s, (void)x;
    return rf_error_set(err, RF_E_UNSUPPORTED, "the stand-in device runs nothing");
}

static void fake_release(void *ctx) {
    fake_dev *d = ctx;
    d->releases++;
    d->live_at_release = d->n_live;
}

static void *fake_alloc(void *ctx, size_t bytes) {
    fake_dev *d = ctx;
    d->allocs++;
    d->last_bytes = bytes;
    if (d->refuse || d->n_live == 8) return NULL;
    void *p = malloc(bytes);
    if (p) d->live[d->n_live++] = p;
    return p;
}

static void fake_free(void *ctx, void *p) {
    fake_dev *d = ctx;
    d->frees++;
    for (int i = 0; i < d->n_live; i++)
        if (d->live[i] == p) {
            d->live[i] = d->live[--d->n_live];
            free(p);
            return;
        }
    d->freed_foreign = true;
}

static const rf_layers_ops fake_ops = {.name = "fake", .forward = fake_forward, .release = fake_release,
                                       .host_alloc = fake_alloc, .host_free = fake_free};

static bool is_live(const fake_dev *d, const void *p) {
    for (int i = 0; i < d->n_live; i++)
        if (d->live[i] == p) return true;
    return false;
}

static rf_ctx *new_ctx(void) {
    rf_ctx_params p = {.n_ctx = 16, .n_seq = 2, .n_batch = 4};
    rf_ctx *c = NULL;
    rf_error err = {0};
    CHECK_MSG(rf_ctx_create(g_m, &p, &g_be, &c, &err) == RF_OK, "%s", err.msg);
    return c;
}

static rf_status attach(rf_ctx *c, fake_dev *d, bool head) {
    rf_error err = {0};
    int n = (int)g_m->hp.n_layer;
    rf_layers_backend b = {&fake_ops, d, 0, head ? n : n - 1, head}; /* without the head: not the last layer */
    return rf_ctx_offload(c, &b, &err);
}

/* ---- tests --------------------------------------------------------------- */

/* CPU only: ordinary memory, reused while it has room, and the logits a
 * forward pass writes there are those it writes into the caller's buffer. */
static void test_cpu_buffer(void) {
    rf_ctx *c = new_ctx();
    if (!c) return;
    const int64_t V = g_m->hp.n_vocab;
    float *a = rf_ctx_logits(c, 2);
    CHECK(a != NULL);
    CHECK(rf_ctx_logits(c, 1) == a);
    CHECK(rf_ctx_logits(c, 2) == a);
    float *own = malloc((size_t)(2 * V) * sizeof(float));
    rf_batch_entry b[3];
    for (int i = 0; i < 3; i++)
        b[i] = (rf_batch_entry){i == 2, i == 2 ? 0 : i, (int32_t)(rf_test_rand() % (uint64_t)V), i != 0};
    rf_error err = {0};
    for (int64_t i = 0; i < 2 * V; i++) a[i] = own[i] = -1.0f;
    CHECK_MSG(rf_forward(c, b, 3, a, NULL, &err) == RF_OK, "%s", err.msg);
    rf_kv_seq_free(rf_ctx_kv(c), 0);
    rf_kv_seq_free(rf_ctx_kv(c), 1);
    CHECK_MSG(rf_forward(c, b, 3, own, NULL, &err) == RF_OK, "%s", err.msg);
    CHECK(memcmp(a, own, (size_t)(2 * V) * sizeof(float)) == 0);
    bool finite = true;
    for (int64_t i = 0; i < 2 * V; i++) finite &= a[i] == a[i] && a[i] != -1.0f;
    CHECK(finite);
    free(own);
    rf_ctx_free(c);
}

/* A device with the head: its page-locked memory, grown when more rows are
 * asked, given back before release. */
static void test_device_buffer(void) {
    fake_dev d = {0};
    rf_ctx *c = new_ctx();
    if (!c) return;
    const size_t row = (size_t)g_m->hp.n_vocab * sizeof(float);
    float *pre = rf_ctx_logits(c, 1); /* taken before the device came: ordinary memory */
    CHECK(pre != NULL && d.allocs == 0);
    CHECK(attach(c, &d, true) == RF_OK);
    float *a = rf_ctx_logits(c, 3);
    CHECK(d.allocs == 1 && d.last_bytes == 3 * row && is_live(&d, a));
    CHECK(rf_ctx_logits(c, 2) == a && d.allocs == 1);
    float *b = rf_ctx_logits(c, 4);
    CHECK(d.allocs == 2 && d.frees == 1 && d.last_bytes == 4 * row && is_live(&d, b) && d.n_live == 1);
    b[4 * row / sizeof(float) - 1] = 1.0f; /* the whole size is there (ASan watches the stand-in's malloc) */
    /* the device refuses: ordinary memory, and it is not asked again for that size */
    d.refuse = true;
    float *e = rf_ctx_logits(c, 5);
    CHECK(e != NULL && d.allocs == 3 && d.frees == 2 && d.n_live == 0 && !is_live(&d, e));
    CHECK(rf_ctx_logits(c, 5) == e && d.allocs == 3);
    /* more rows: asked again, and this time it gives */
    d.refuse = false;
    float *f = rf_ctx_logits(c, 6);
    CHECK(d.allocs == 4 && d.frees == 2 && is_live(&d, f));
    rf_ctx_free(c);
    CHECK(d.releases == 1 && d.frees == 3 && d.live_at_release == 0 && d.n_live == 0 && !d.freed_foreign);
}

/* Without the head the logits are the CPU's: the device is not asked. */
static void test_device_without_head(void) {
    fake_dev d = {0};
    rf_ctx *c = new_ctx();
    if (!c) return;
    CHECK(attach(c, &d, false) == RF_OK);
    CHECK(rf_ctx_logits(c, 2) != NULL && d.allocs == 0);
    rf_ctx_free(c);
    CHECK(d.releases == 1 && d.frees == 0);
}

int main(void) {
    rf_test_seed();
    snprintf(g_path, sizeof g_path, "/tmp/rf-test-logits-%d.gguf", (int)getpid());
    rf_error err = {0};
    rf_synth_opts o = {.shape = {.name = "logits-test", .arch = "llama", .n_vocab = 320, .n_embd = 64, .n_layer = 2,
                                 .n_head = 4, .n_head_kv = 2, .n_ff = 96, .n_ctx = 64, .rope_base = 10000.0f,
                                 .norm_eps = 1e-5f},
                       .out_path = g_path, .seed = rf_test_rand(), .n_threads = 1};
    if (rf_qtarget_parse("Q8_0", &o.target, &err) != RF_OK || rf_synth_write(&o, &err) != RF_OK ||
        rf_model_load(g_path, &g_m, &err) != RF_OK || !(g_tp = rf_threadpool_create(1)) ||
        rf_cpu_backend_create(g_tp, &g_be, &err) != RF_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        unlink(g_path);
        return 1;
    }
    RF_RUN(test_cpu_buffer);
    RF_RUN(test_device_buffer);
    RF_RUN(test_device_without_head);
    rf_cpu_backend_free(&g_be);
    rf_threadpool_free(g_tp);
    rf_model_free(g_m);
    unlink(g_path);
    return rf_test_summary();
}
