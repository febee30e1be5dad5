/*
 * blas.c - the vendor BLAS (cuBLAS / rocBLAS), loaded at run time for the
 * prompt's matmuls. Nothing links it: when the library is present the
 * device's prefill runs each quantized matmul as dequantize-to-float16 +
 * one float16 GEMM with float32 accumulation on the tensor / matrix cores
 * (layers.c); when it is missing, fails to initialize, or
 * ROCMFORGE_GPU_BLAS=0, the plugin's own tiled kernel runs instead and
 * `info --gpu` says why. The library's names, symbols and enum values are
 * in the vendor headers; this file is vendor-neutral.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-impl.h"

struct rfg_blas {
    void *lib, *handle;
    rfg_blas_destroy_fn destroy;
    rfg_blas_gemm_fn gemm;
};

void rfg_blas_open(rf_gpu *g) {
    g->blas = NULL;
    const char *env = getenv("ROCMFORGE_GPU_BLAS");
    if (env && strcmp(env, "0") == 0) {
        snprintf(g->blas_desc, sizeof g->blas_desc, "off (ROCMFORGE_GPU_BLAS=0): plugin tiled kernel");
        return;
    }
    static const char *const libs[] = {RFG_BLAS_LIBS};
    void *lib = NULL;
    const char *name = NULL, *why = NULL;
    for (size_t i = 0; i < sizeof libs / sizeof libs[0] && !lib; i++) {
        lib = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL);
        if (lib) name = libs[i];
        else if (!why) why = dlerror(); /* the first (newest) name's reason */
    }
    if (!lib) {
        snprintf(g->blas_desc, sizeof g->blas_desc, "no %s (%s): plugin tiled kernel", RFG_BLAS_NAME,
                 why ? why : "not found");
        return;
    }
    rfg_blas_create_fn create = (rfg_blas_create_fn)dlsym(lib, RFG_BLAS_SYM_CREATE);
    rfg_blas_stream_fn stream = (rfg_blas_stream_fn)dlsym(lib, RFG_BLAS_SYM_STREAM);
    rfg_blas_destroy_fn destroy = (rfg_blas_destroy_fn)dlsym(lib, RFG_BLAS_SYM_DESTROY);
    rfg_blas_gemm_fn gemm = (rfg_blas_gemm_fn)dlsym(lib, RFG_BLAS_SYM_GEMM);
    void *h = NULL;
    int st = -1;
    if (!create || !stream || !destroy || !gemm) {
        snprintf(g->blas_desc, sizeof g->blas_desc, "%s (%s) lacks %s: plugin tiled kernel", RFG_BLAS_NAME, name,
                 !create ? RFG_BLAS_SYM_CREATE : !stream ? RFG_BLAS_SYM_STREAM : !destroy ? RFG_BLAS_SYM_DESTROY
                                                                                        : RFG_BLAS_SYM_GEMM);
    } else if ((st = create(&h)) != 0 || (st = stream(h, g->stream)) != 0) {
        snprintf(g->blas_desc, sizeof g->blas_desc, "%s (%s): initialization failed, status %d: plugin tiled kernel",
                 RFG_BLAS_NAME, name, st);
    } else {
        struct rfg_blas *b = calloc(1, sizeof *b);
        if (b) {
            *b = (struct rfg_blas){lib, h, destroy, gemm};
            g->blas = b;
            snprintf(g->blas_desc, sizeof g->blas_desc, "%s (%s)", RFG_BLAS_NAME, name);
            return;
        }
        snprintf(g->blas_desc, sizeof g->blas_desc, "out of memory: plugin tiled kernel");
    }
    if (h) destroy(h);
    dlclose(lib);
}

void rfg_blas_close(rf_gpu *g) {
    if (!g->blas) return;
    g->blas->destroy(g->blas->handle);
    /* the library stays loaded: its runtime state may outlive the handle */
    free(g->blas);
    g->blas = NULL;
}

int rfg_blas_gemm(rf_gpu *g, int64_t m, int64_t n, int64_t k, const uint16_t *a, const uint16_t *b, float *c) {
    if (!g->blas) return -1;
    if (m > 0x7FFFFFFF || n > 0x7FFFFFFF || k > 0x7FFFFFFF) return -1;
    return rfg_blas_gemm_f16(g->blas->gemm, g->blas->handle, (int)m, (int)n, (int)k, a, b, c);
}

void rfg_blas_disable(rf_gpu *g, int status) {
    if (!g->blas) return;
    rfg_blas_close(g);
    char was[sizeof g->blas_desc];
    snprintf(was, sizeof was, "%s", g->blas_desc);
    snprintf(g->blas_desc, sizeof g->blas_desc, "%.100s: a GEMM failed (status %d), turned off: plugin tiled kernel",
             was, status);
    fprintf(stderr, "rocmforge: gpu: %s\n", g->blas_desc);
}
