/*
 * gpu.h - the ABI between the `rocmforge` binary and a GPU backend plugin
 * (librocmforge-cuda.so, librocmforge-hip.so), plus the launch checker both
 * sides share.
 *
 * A plugin exports one symbol, `rf_gpu_plugin_v1` (a const rf_gpu_api), and
 * nothing else the binary uses. The binary dlopens the plugin at start-up
 * (src/backend/gpu_loader.c), checks abi_version and struct_size, and calls
 * open(); any failure there means the CPU backend runs, with one log line
 * saying why. Plugin and binary come from the same source tree: the ABI
 * carries structs of this tree (rf_model, rf_kv_config, rf_error) by
 * pointer, and the version number changes whenever a slot changes meaning.
 * The plugin calls no function of the binary (it is self-contained), so it
 * needs no -rdynamic and no symbol it could resolve to the wrong copy.
 *
 * The design (docs/ARCHITECTURE.md, "GPU backend"): the plugin does not fill
 * the host-pointer op table of backend.h. It holds whole layers - weights
 * uploaded once, its own copy of their paged KV cache (same block ids as the
 * host cache, so prefix sharing works unchanged), scratch activations - and
 * runs a contiguous range of layers per forward pass with the activations
 * resident on the device. The forward pass crosses to the device once
 * before the range and back once after it (rf_layers_ops in backend.h).
 *
 * Objects: rf_gpu (an open device), rf_gpu_weights (layers [l0, l1) of a
 * model, uploaded; shared by every context of an engine), rf_gpu_layers (a
 * context's device state: KV cache for those layers and scratch sized for
 * n_batch).
 */
#ifndef RF_GPU_H
#define RF_GPU_H

#include "backend/backend.h"
#include "core/core.h"
#include "kv/kv.h"

#define RF_GPU_ABI_VERSION 3u
#define RF_GPU_PLUGIN_SYMBOL "rf_gpu_plugin_v1"

/* ---- device limits and the launch checker ------------------------------ */

/* Read once per device through per-attribute queries (never a properties
 * struct). A 0 is kept as 0: the checker then refuses every launch that
 * needs that resource, naming it. */
typedef struct rf_gpu_limits {
    int64_t block[3];          /* max threads per block in x, y, z */
    int64_t threads_per_block; /* max x*y*z */
    int64_t grid[3];           /* max blocks in x, y, z */
    int64_t smem_per_block;    /* bytes of shared (LDS) memory a block may use */
    int64_t regs_per_block;    /* 32-bit registers per block */
    int64_t warp_size;         /* 32 or 64 */
} rf_gpu_limits;

typedef struct rf_gpu_dim3 {
    unsigned x, y, z;
} rf_gpu_dim3;

/* Checks one launch of `kernel` against `lim` before it is issued. RF_OK,
 * or RF_E_RANGE with msg (if not NULL, NUL-terminated within n bytes)
 * naming the kernel, the dimension ("block.y", "grid.x", "threads per
 * block", "shared memory"), the requested value and the limit. A zero-sized
 * dimension (an empty launch) is refused as RF_E_INVAL. Plain C: no runtime
 * needed, so the CPU-only CI tests it (tests/unit/test_gpu_limits.c). */
rf_status rf_gpu_check_launch(const rf_gpu_limits *lim, const char *kernel, rf_gpu_dim3 grid, rf_gpu_dim3 block,
                              size_t smem_bytes, char *msg, size_t n);

/* ---- the plugin ABI ----------------------------------------------------- */

typedef struct rf_gpu_device_info {
    char name[256];
    char arch[64];             /* "sm_90", "gfx90a" */
    uint64_t mem_total, mem_free;
    int n_units;               /* SMs / CUs */
    int clock_khz;
    rf_gpu_limits lim;
    char blas[160];            /* prompt GEMMs: the vendor BLAS loaded, or why none */
} rf_gpu_device_info;

typedef struct rf_gpu rf_gpu;
typedef struct rf_gpu_weights rf_gpu_weights;
typedef struct rf_gpu_layers rf_gpu_layers;

typedef struct rf_model rf_model;

typedef struct rf_gpu_api {
    uint32_t abi_version;      /* RF_GPU_ABI_VERSION */
    uint32_t struct_size;      /* sizeof(rf_gpu_api) */
    const char *vendor;        /* "cuda" or "hip" */
    const char *built_for;     /* targets in the kernel image: "sm_80 sm_90", "gfx90a gfx1030" */

    /* Loads the vendor runtime and opens device `device` (-1: the first).
     * On failure err says exactly why: the library that is missing, the
     * runtime's error string, or the device's name and arch when its kernel
     * image is missing. *out is NULL then. */
    rf_status (*open)(int device, rf_gpu **out, rf_error *err);
    void (*close)(rf_gpu *g); /* accepts NULL */
    int (*device_count)(rf_gpu *g);
    int (*device_index)(rf_gpu *g); /* the opened one */
    /* Fresh numbers (mem_free is measured now). */
    rf_status (*device_info)(rf_gpu *g, int device, rf_gpu_device_info *out, rf_error *err);

    /* Whether layer `il` of `m` can run on this device (every op and
     * weight type of it has a kernel); if not, why (static text). */
    bool (*layer_supported)(rf_gpu *g, const rf_model *m, int il, const char **why);
    /* Device bytes of layer il's weights (as uploaded). */
    uint64_t (*layer_weight_bytes)(rf_gpu *g, const rf_model *m, int il);
    /* Device bytes a context needs besides the KV cache: scratch for n_batch. */
    uint64_t (*ctx_scratch_bytes)(rf_gpu *g, const rf_model *m, int64_t n_batch);

    /* Uploads layers [l0, l1) of m (borrowed: m must outlive the weights;
     * every layer in range must be layer_supported). */
    rf_status (*weights_create)(rf_gpu *g, const rf_model *m, int l0, int l1, rf_gpu_weights **out, rf_error *err);
    void (*weights_free)(rf_gpu_weights *w); /* accepts NULL */

    /* A context's device state for `w`: the KV cache of layers [l0, l1) in
     * kc's paged layout and scratch for n_batch entries. Fills *out with the
     * layer-range forward rf_ctx_offload takes (out->ctx is the
     * rf_gpu_layers; out->head tells whether it also computes the head). */
    rf_status (*layers_create)(rf_gpu_weights *w, const rf_kv_config *kc, int64_t n_batch, rf_layers_backend *out,
                               rf_error *err);
    void (*layers_free)(rf_gpu_layers *l); /* accepts NULL */
} rf_gpu_api;

#endif
