/*
 * fake_plugin.c - stand-ins for a GPU plugin that fails, for the fallback
 * tests (tests/ref/test_gpu_fallback.py) on machines without any GPU
 * runtime. Built three times as librocmforge-cuda.so in separate folders
 * (cmake/gpu.cmake), by FAKE_MODE:
 *   1 (fail)   a valid plugin whose open() fails the way an unsupported
 *              device does, naming the device and its arch
 *   2 (abi)    a plugin of another ABI version (a stale build)
 *   3 (nosym)  a shared library without the plugin symbol
 */
#include <stdio.h>

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
#else
__attribute__((visibility("default"))) int rf_not_a_plugin = 1;
#endif
