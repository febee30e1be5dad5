/*
 * fake_plugin.c - stand-ins for a GPU plugin that fails, for the fallback
 * tests (tests/ref/test_gpu_fallback.py) on machines without any GPU
 * runtime. Built three times as librocmforge-cuda.so in separate folders
 * (cmake/gpu.cmake), by FAKE_MODE:
 *   1 (fail)   a valid plugin whose open() fails the way an unsupported
 *              device does, naming the device and its arch
 *   2 (abi)    a plugin of another ABI version (a stale build)
 *   3 (nosym)  a shared library without the plugin symbol
 *   4 (upload) a pretend device that takes every layer and whose upload
 *              checks what a real upload relies on: each weight still in
 *              the file's row layout (none repacked for the CPU before the
 *              placement was known; the server once did that and its GPU
 *              read scrambled rows). It then fails, saying what it found,
 *              so the CPU runs the model.
 */
#include <stdio.h>
#include <string.h>

#include "gpu/gpu.h"

#if FAKE_MODE == 1 || FAKE_MODE == 2
static rf_status fake_open(int device, rf_gpu **out, rf_error *err) {
    *out = NULL;
    if (err) {
        snprintf(err->msg, sizeof err->msg,
                 "cuda device 0 \"Fake GPU 9000\" (sm_10): no usable kernel image (plugin built for sm_80 sm_90): "
                 "no kernel image is available for execution on the device");
        err->code = RF_E_UNSUPPORTED;
    }
    return RF_E_UNSUPPORTED;
}

__attribute__((visibility("default"))) const rf_gpu_api rf_gpu_plugin_v1 = {
    .abi_version = FAKE_MODE == 2 ? RF_GPU_ABI_VERSION + 41 : RF_GPU_ABI_VERSION,
    .struct_size = sizeof(rf_gpu_api),
    .vendor = "cuda",
    .built_for = "sm_80 sm_90",
    .open = fake_open,
};
#elif FAKE_MODE == 4
#include "model/model.h"

struct rf_gpu {
    int unused;
};
static rf_gpu fake_device;

static rf_status up_open(int device, rf_gpu **out, rf_error *err) {
    (void)device, (void)err;
    *out = &fake_device;
    return RF_OK;
}
static void up_close(rf_gpu *g) { (void)g; }
static int up_count(rf_gpu *g) { return (void)g, 1; }
static int up_index(rf_gpu *g) { return (void)g, 0; }
static rf_status up_info(rf_gpu *g, int device, rf_gpu_device_info *o, rf_error *err) {
    (void)g, (void)device, (void)err;
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "Fake Upload Checker");
    snprintf(o->arch, sizeof o->arch, "sm_90");
    o->mem_total = o->mem_free = 64ull << 30;
    o->n_units = 1;
    return RF_OK;
}
static bool up_supported(rf_gpu *g, const rf_model *m, int il, const char **why) {
    (void)g, (void)m, (void)il;
    *why = NULL;
    return true;
}
static uint64_t up_bytes(rf_gpu *g, const rf_model *m, int il) { return (void)g, (void)m, (void)il, 1; }
static uint64_t up_scratch(rf_gpu *g, const rf_model *m, int64_t n_batch) { return (void)g, (void)m, (void)n_batch, 1; }

static rf_status up_weights(rf_gpu *g, const rf_model *m, int l0, int l1, rf_gpu_weights **out, rf_error *err) {
    (void)g;
    *out = NULL;
    int n = 0;
    for (int il = l0; il < l1; il++) {
        const rf_layer *ly = &m->layers[il];
        const rf_wview *ws[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->wqkv, &ly->ffn_gate, &ly->ffn_up, &ly->ffn_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            if (!ws[i]->data) continue;
            n++;
            if (ws[i]->layout != RF_WLAYOUT_ROWS) {
                snprintf(err->msg, sizeof err->msg, "fake upload: layer %d weight %zu is in layout %u, not the file's rows",
                         il, i, ws[i]->layout);
                return err->code = RF_E_FORMAT;
            }
        }
    }
    if (m->output.layout != RF_WLAYOUT_ROWS) {
        snprintf(err->msg, sizeof err->msg, "fake upload: the output matrix is in layout %u, not the file's rows",
                 m->output.layout);
        return err->code = RF_E_FORMAT;
    }
    snprintf(err->msg, sizeof err->msg, "fake upload: %d weights of layers %d-%d and the output, all in the file's rows",
             n, l0, l1 - 1);
    return err->code = RF_E_UNSUPPORTED;
}
static void up_weights_free(rf_gpu_weights *w) { (void)w; }

__attribute__((visibility("default"))) const rf_gpu_api rf_gpu_plugin_v1 = {
    .abi_version = RF_GPU_ABI_VERSION,
    .struct_size = sizeof(rf_gpu_api),
    .vendor = "cuda",
    .built_for = "sm_90",
    .open = up_open,
    .close = up_close,
    .device_count = up_count,
    .device_index = up_index,
    .device_info = up_info,
    .layer_supported = up_supported,
    .layer_weight_bytes = up_bytes,
    .ctx_scratch_bytes = up_scratch,
    .weights_create = up_weights,
    .weights_free = up_weights_free,
};
#else
__attribute__((visibility("default"))) int rf_not_a_plugin = 1;
#endif
