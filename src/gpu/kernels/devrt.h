/*
 * devrt.h - a minimal device-runtime shim for the GPU op suite and kernel
 * benchmarks (tests/gpu), so that those C programs need no vendor header.
 * The backend itself does not use this: memory, streams and device
 * discovery belong to the host side in src/gpu. Device 0, default stream.
 * Every int-returning call gives 0 or the vendor error code.
 */
#ifndef RF_GPU_KERNELS_DEVRT_H
#define RF_GPU_KERNELS_DEVRT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Selects device 0; fills its warp width and name (name_len bytes). */
int rfk_rt_init(int *warp_size, int *n_units, char *name, size_t name_len);
/* 1 when device 0 takes early launches (rfk_ctx.early_launch), else 0. */
int rfk_rt_early_launch(void);
/* Device memory; NULL on failure. rfk_rt_free accepts NULL. */
void *rfk_rt_alloc(size_t bytes);
void rfk_rt_free(void *p);
int rfk_rt_upload(void *dst_dev, const void *src_host, size_t bytes);
int rfk_rt_download(void *dst_host, const void *src_dev, size_t bytes);
int rfk_rt_memset(void *dst_dev, int byte, size_t bytes);
/* Device-to-device copy on the default stream (asynchronous). */
int rfk_rt_copy(void *dst_dev, const void *src_dev, size_t bytes);
/* Waits for all work; returns the first error (launch or execution). */
int rfk_rt_sync(void);
/* Times the work enqueued between start and stop on the default stream. */
int rfk_rt_timer_start(void);
int rfk_rt_timer_stop_ms(float *ms);
/* Human-readable text of a vendor error code. */
const char *rfk_rt_error_str(int code);

#ifdef __cplusplus
}
#endif

#endif
