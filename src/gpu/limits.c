/*
 * limits.c - the launch checker: every kernel launch is compared with the
 * device limits (read once by attribute query) before it is issued, so a
 * launch the device cannot run is a clear error naming the kernel and the
 * dimension instead of a launch failure (or, worse, a kernel that silently
 * never ran). Plain C with no runtime: linked into the plugin and into
 * rfcore, where the CPU-only CI tests it with injected limits.
 */
#include <stdio.h>

#include "gpu/gpu.h"

static rf_status fail(char *msg, size_t n, rf_status code, const char *fmt, const char *kernel, const char *what,
                      unsigned long long v, long long lim) {
    if (msg && n) snprintf(msg, n, fmt, kernel, what, v, lim);
    return code;
}

rf_status rf_gpu_check_launch(const rf_gpu_limits *lim, const char *kernel, rf_gpu_dim3 grid, rf_gpu_dim3 block,
                              size_t smem_bytes, char *msg, size_t n) {
    static const char *const bnames[3] = {"block.x", "block.y", "block.z"};
    static const char *const gnames[3] = {"grid.x", "grid.y", "grid.z"};
    const unsigned b[3] = {block.x, block.y, block.z}, g[3] = {grid.x, grid.y, grid.z};
    if (!kernel) kernel = "(unnamed kernel)";
    for (int i = 0; i < 3; i++) {
        if (b[i] == 0)
            return fail(msg, n, RF_E_INVAL, "kernel %s: %s = %llu: empty launch (limit %lld)", kernel, bnames[i], 0,
                        (long long)lim->block[i]);
        if (g[i] == 0)
            return fail(msg, n, RF_E_INVAL, "kernel %s: %s = %llu: empty launch (limit %lld)", kernel, gnames[i], 0,
                        (long long)lim->grid[i]);
    }
    for (int i = 0; i < 3; i++)
        if ((int64_t)b[i] > lim->block[i])
            return fail(msg, n, RF_E_RANGE, "kernel %s: %s = %llu exceeds the device limit %lld", kernel, bnames[i], b[i],
                        (long long)lim->block[i]);
    unsigned long long threads = (unsigned long long)b[0] * b[1] * b[2];
    if (threads > (unsigned long long)(lim->threads_per_block < 0 ? 0 : lim->threads_per_block))
        return fail(msg, n, RF_E_RANGE, "kernel %s: %s = %llu exceeds the device limit %lld", kernel,
                    "threads per block (x*y*z)", threads, (long long)lim->threads_per_block);
    for (int i = 0; i < 3; i++)
        if ((int64_t)g[i] > lim->grid[i])
            return fail(msg, n, RF_E_RANGE, "kernel %s: %s = %llu exceeds the device limit %lld", kernel, gnames[i], g[i],
                        (long long)lim->grid[i]);
    if (smem_bytes > 0 && (lim->smem_per_block < 0 || (unsigned long long)smem_bytes > (unsigned long long)lim->smem_per_block))
        return fail(msg, n, RF_E_RANGE, "kernel %s: %s = %llu bytes exceeds the device limit %lld", kernel,
                    "shared memory per block", (unsigned long long)smem_bytes, (long long)lim->smem_per_block);
    if (lim->warp_size != 32 && lim->warp_size != 64)
        return fail(msg, n, RF_E_UNSUPPORTED, "kernel %s: %s = %llu: the kernels run with a warp of 32 or 64 (limit %lld)",
                    kernel, "warp size", (unsigned long long)(lim->warp_size < 0 ? 0 : lim->warp_size),
                    (long long)lim->warp_size);
    if (msg && n) msg[0] = '\0';
    return RF_OK;
}
