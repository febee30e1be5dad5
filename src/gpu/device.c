/*
 * device.c - the plugin's entry table (rf_gpu_plugin_v1) and the device
 * side of it: loading the runtime, device discovery, the limits read once
 * through per-attribute queries, the stream every op runs on, the launch
 * check every kernel wrapper calls before it launches, and the device
 * memory arena. Layers, KV cache and the forward pass are in layers.c.
 *
 * Opening reports exactly why a GPU cannot be used, in the order a user
 * needs it: the driver library missing (CUDA: libcuda.so.1; HIP: the plugin
 * itself does not load without libamdhip64, and the binary's loader says
 * so), the runtime's error (no device, driver too old), then the device's
 * name and arch when the plugin has no kernel image for it.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu-impl.h"

/* ---- errors ------------------------------------------------------------- */

rf_status rfg_err(rf_error *err, rf_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *rfg_kstatus_str(rf_gpu *g, int st) {
    if (st == RFG_E_LIMIT) return g->check_msg;
    if (st < 0) return rfk_status_str(st);
    return rfg_get_error_string((rfg_error)st);
}

/* ---- launch check ------------------------------------------------------- */

/* The hook every kernel wrapper calls before a launch (rfk_ctx.check).
 * Registers are not part of the check: the hook receives no per-kernel
 * register count (kernels.h would have to pass cudaFuncGetAttributes'
 * numRegs); regs_per_block is read and shown by `info --gpu` only. */
static int check_launch(void *user, const char *kernel, rfk_dim3 grid, rfk_dim3 block, size_t smem) {
    rf_gpu *g = user;
    rf_gpu_dim3 gd = {grid.x, grid.y, grid.z}, bd = {block.x, block.y, block.z};
    if (rf_gpu_check_launch(&g->info.lim, kernel, gd, bd, smem, g->check_msg, sizeof g->check_msg) != RF_OK)
        return RFG_E_LIMIT;
    return 0;
}

/* ---- arena -------------------------------------------------------------- */

void *rfg_arena_take(rfg_arena *a, size_t n) {
    size_t at = (a->used + 255) & ~(size_t)255;
    a->used = at + ((n + 255) & ~(size_t)255);
    if (!a->base) return NULL; /* sizing pass */
    RF_ASSERT(a->used <= a->size);
    return a->base + at;
}

/* The plugin links no rfcore; its RF_ASSERT needs this one function. */
_Noreturn void rf_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "rocmforge: gpu plugin: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

/* ---- devices ------------------------------------------------------------ */

static rf_status read_info(int dev, rf_gpu_device_info *d, rf_error *err) {
    memset(d, 0, sizeof *d);
    rfg_error e = rfg_device_name_arch(dev, d->name, sizeof d->name, d->arch, sizeof d->arch);
    if (e != rfg_success)
        return rfg_err(err, RF_E_IO, "%s device %d: %s", RFG_VENDOR, dev, rfg_get_error_string(e));
    static const struct { rfg_attr attr; size_t off; } q[] = {
        {RFG_ATTR_BLOCK_X, offsetof(rf_gpu_limits, block[0])},
        {RFG_ATTR_BLOCK_Y, offsetof(rf_gpu_limits, block[1])},
        {RFG_ATTR_BLOCK_Z, offsetof(rf_gpu_limits, block[2])},
        {RFG_ATTR_THREADS_PER_BLOCK, offsetof(rf_gpu_limits, threads_per_block)},
        {RFG_ATTR_GRID_X, offsetof(rf_gpu_limits, grid[0])},
        {RFG_ATTR_GRID_Y, offsetof(rf_gpu_limits, grid[1])},
        {RFG_ATTR_GRID_Z, offsetof(rf_gpu_limits, grid[2])},
        {RFG_ATTR_SMEM_PER_BLOCK, offsetof(rf_gpu_limits, smem_per_block)},
        {RFG_ATTR_REGS_PER_BLOCK, offsetof(rf_gpu_limits, regs_per_block)},
        {RFG_ATTR_WARP_SIZE, offsetof(rf_gpu_limits, warp_size)},
    };
    for (size_t i = 0; i < RF_ARRAY_LEN(q); i++) {
        int v = 0;
        if ((e = rfg_device_get_attribute(&v, q[i].attr, dev)) != rfg_success)
            return rfg_err(err, RF_E_IO, "%s device %d (%s, %s): attribute %d: %s", RFG_VENDOR, dev, d->name, d->arch,
                           (int)q[i].attr, rfg_get_error_string(e));
        *(int64_t *)((char *)&d->lim + q[i].off) = v;
    }
    int v = 0;
    if (rfg_device_get_attribute(&v, RFG_ATTR_UNITS, dev) == rfg_success) d->n_units = v;
    if (rfg_device_get_attribute(&v, RFG_ATTR_CLOCK_KHZ, dev) == rfg_success) d->clock_khz = v;
    size_t fr = 0, tot = 0;
    if (rfg_set_device(dev) == rfg_success && rfg_mem_get_info(&fr, &tot) == rfg_success) {
        d->mem_free = fr;
        d->mem_total = tot;
    }
    return RF_OK;
}

static void gpu_close(rf_gpu *g) {
    if (!g) return;
    rfg_blas_close(g);
    if (g->kctx.mmq_split) rfg_free(g->kctx.mmq_split);
    if (g->stream) rfg_stream_destroy(g->stream);
    /* g->driver stays open: the runtime keeps using the driver it found */
    free(g);
}

static rf_status gpu_open(int device, rf_gpu **out, rf_error *err) {
    *out = NULL;
    rf_gpu *g = calloc(1, sizeof *g);
    if (!g) return rfg_err(err, RF_E_NOMEM, "out of memory");
    const char *drv = RFG_DRIVER_LIB;
    if (drv && !(g->driver = dlopen(drv, RTLD_NOW | RTLD_LOCAL))) {
        const char *why = dlerror();
        gpu_close(g);
        return rfg_err(err, RF_E_UNSUPPORTED, "%s", why ? why : drv);
    }
    rfg_error e = rfg_get_device_count(&g->n_devices);
    if (e != rfg_success) {
        free(g); /* not gpu_close: the driver handle stays open with the runtime that uses it */
        const char *txt = rfg_get_error_string(e), *name = rfg_get_error_name(e);
        if (strcmp(txt, name) == 0)
            return rfg_err(err, RF_E_UNSUPPORTED, "%s runtime: %s", RFG_VENDOR, txt);
        return rfg_err(err, RF_E_UNSUPPORTED, "%s runtime: %s (%s)", RFG_VENDOR, txt, name);
    }
    if (g->n_devices <= 0) {
        gpu_close(g);
        return rfg_err(err, RF_E_UNSUPPORTED, "%s runtime: no device", RFG_VENDOR);
    }
    g->device = device < 0 ? 0 : device;
    if (g->device >= g->n_devices) {
        int n = g->n_devices;
        gpu_close(g);
        return rfg_err(err, RF_E_RANGE, "%s: device %d requested, %d present", RFG_VENDOR, device, n);
    }
    rf_status st = read_info(g->device, &g->info, err);
    if (st != RF_OK) { gpu_close(g); return st; }
    const char *name = g->info.name, *arch = g->info.arch;
    if ((e = rfg_set_device(g->device)) != rfg_success || (e = rfg_stream_create(&g->stream)) != rfg_success) {
        rfg_err(err, RF_E_IO, "%s device %d \"%s\" (%s): %s", RFG_VENDOR, g->device, name, arch, rfg_get_error_string(e));
        gpu_close(g);
        return RF_E_IO;
    }
    int pe = rfg_probe_kernel_image(g->stream);
    if (pe != 0) {
        rfg_err(err, RF_E_UNSUPPORTED, "%s device %d \"%s\" (%s): no usable kernel image (plugin built for %s): %s",
                RFG_VENDOR, g->device, name, arch, rf_gpu_plugin_v1.built_for, rfg_get_error_string((rfg_error)pe));
        gpu_close(g);
        return RF_E_UNSUPPORTED;
    }
    g->kctx.warp_size = (int)g->info.lim.warp_size;
    g->kctx.check = check_launch;
    g->kctx.check_user = g;
    g->kctx.n_units = g->info.n_units;
    const char *early = getenv("ROCMFORGE_GPU_EARLY"); /* 0: plain launches (for comparison) */
    g->kctx.early_launch = rfg_early_launch_ok(g->device) && !(early && early[0] == '0');
    if (g->kctx.warp_size != 32 && g->kctx.warp_size != 64) {
        rfg_err(err, RF_E_UNSUPPORTED, "%s device %d \"%s\" (%s): warp size %d (kernels run 32 or 64)", RFG_VENDOR,
                g->device, name, arch, g->kctx.warp_size);
        gpu_close(g);
        return RF_E_UNSUPPORTED;
    }
    /* the small-batch products' K split (rfk_ctx.mmq_split): without the
       buffer they run unsplit, slower but the same */
    size_t sb = rfk_mmq_split_bytes(g->kctx.n_units);
    if (rfg_malloc(&g->kctx.mmq_split, sb) == rfg_success) {
        if (rfg_memset_async(g->kctx.mmq_split, 0, RFK_MMQ_TICKETS * sizeof(int), g->stream) == rfg_success &&
            rfg_stream_synchronize(g->stream) == rfg_success) {
            g->kctx.mmq_split_bytes = sb;
        } else {
            rfg_free(g->kctx.mmq_split);
            g->kctx.mmq_split = NULL;
        }
    } else {
        g->kctx.mmq_split = NULL;
        (void)rfg_get_last_error(); /* not sticky; leave no error for the next call to find */
    }
    rfg_blas_open(g);
    *out = g;
    return RF_OK;
}

static int gpu_device_count(rf_gpu *g) { return g->n_devices; }
static int gpu_device_index(rf_gpu *g) { return g->device; }

static rf_status gpu_device_info(rf_gpu *g, int device, rf_gpu_device_info *out, rf_error *err) {
    if (device < 0 || device >= g->n_devices) return rfg_err(err, RF_E_RANGE, "no device %d", device);
    rf_status st = read_info(device, out, err);
    snprintf(out->blas, sizeof out->blas, "%s", g->blas_desc);
    rfg_set_device(g->device);
    return st;
}

#ifndef RFG_BUILT_FOR
#define RFG_BUILT_FOR "?"
#endif

__attribute__((visibility("default"))) const rf_gpu_api rf_gpu_plugin_v1 = {
    .abi_version = RF_GPU_ABI_VERSION,
    .struct_size = sizeof(rf_gpu_api),
    .vendor = RFG_VENDOR,
    .built_for = RFG_BUILT_FOR,
    .open = gpu_open,
    .close = gpu_close,
    .device_count = gpu_device_count,
    .device_index = gpu_device_index,
    .device_info = gpu_device_info,
    .layer_supported = rfg_layer_supported,
    .layer_weight_bytes = rfg_layer_weight_bytes,
    .ctx_scratch_bytes = rfg_ctx_scratch_bytes,
    .weights_create = rfg_weights_create,
    .weights_free = rfg_weights_free,
    .layers_create = rfg_layers_create,
    .layers_free = rfg_layers_free,
};
