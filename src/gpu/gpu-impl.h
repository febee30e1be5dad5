/*
 * gpu-impl.h - what the plugin's host files share: the vendor switch, the
 * open device (rf_gpu: limits, stream, events, the launch-check hook), a
 * bump arena over one device allocation, and error helpers. Internal to the
 * plugin (the .c files of src/gpu); the binary sees only gpu.h.
 */
#ifndef RF_GPU_IMPL_H
#define RF_GPU_IMPL_H

#include "gpu/vendor.h"

#include "gpu/gpu.h"
#include "gpu/kernels/kernels.h"
#include "model/model.h"

/* The entry table (device.c), exported by name. */
extern const rf_gpu_api rf_gpu_plugin_v1;

/* Status a launch-check refusal returns through the kernel wrappers (any
 * non-zero value the hook returns comes back unchanged). */
#define RFG_E_LIMIT (-1000)

struct rf_gpu {
    int device, n_devices;
    rf_gpu_device_info info;
    rfg_stream stream;
    rfk_ctx kctx;              /* warp size + check hook for every kernel call */
    char check_msg[256];       /* why the last launch was refused */
    void *driver;              /* dlopen handle of RFG_DRIVER_LIB (CUDA) */
    struct rfg_blas *blas;     /* the vendor BLAS (blas.c), NULL when absent or off */
    char blas_desc[160];       /* which, or why none: shown by info --gpu */
};

/* blas.c: the vendor BLAS loaded at run time. open never fails: without
 * the library g->blas stays NULL and blas_desc says why. gemm: column-major
 * c[m][n] (float32, ldc m) = a^T b, a float16 k x m, b float16 k x n (the
 * layout of y[n_tok][rows] = W[rows][cols] x[n_tok][cols]); returns the
 * library's status (0 = ok). disable: after a failed GEMM, logs and falls
 * back to the plugin's kernels for good. */
void rfg_blas_open(rf_gpu *g);
void rfg_blas_close(rf_gpu *g);
int rfg_blas_gemm(rf_gpu *g, int64_t m, int64_t n, int64_t k, const uint16_t *a, const uint16_t *b, float *c);
void rfg_blas_disable(rf_gpu *g, int status);

/* Formats err (may be NULL) and returns code; the plugin links nothing of
 * rfcore, so this stands in for rf_error_set. */
rf_status rfg_err(rf_error *err, rf_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A kernel wrapper's status as text: the refused launch's message, the
 * wrapper's own code, or the vendor runtime's error string. */
const char *rfg_kstatus_str(rf_gpu *g, int st);

/* One device allocation carved in 256-byte aligned pieces: size first
 * (rfg_arena_reserve with base NULL), allocate once, then carve. */
typedef struct rfg_arena {
    uint8_t *base;
    size_t size, used;
} rfg_arena;
void *rfg_arena_take(rfg_arena *a, size_t n);

/* Plugin entry points implemented in layers.c. */
bool rfg_layer_supported(rf_gpu *g, const rf_model *m, int il, const char **why);
uint64_t rfg_layer_weight_bytes(rf_gpu *g, const rf_model *m, int il);
uint64_t rfg_ctx_scratch_bytes(rf_gpu *g, const rf_model *m, int64_t n_batch);
rf_status rfg_weights_create(rf_gpu *g, const rf_model *m, int l0, int l1, rf_gpu_weights **out, rf_error *err);
void rfg_weights_free(rf_gpu_weights *w);
rf_status rfg_layers_create(rf_gpu_weights *w, const rf_kv_config *kc, int64_t n_batch, rf_layers_backend *out,
                            rf_error *err);
void rfg_layers_free(rf_gpu_layers *l);

/* probe.cu: launches a one-thread kernel and waits; the vendor error when
 * this device has no kernel image in the plugin (an unsupported arch). */
#ifdef __cplusplus
extern "C"
#endif
int rfg_probe_kernel_image(void *stream);

#endif
