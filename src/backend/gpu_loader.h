/*
 * gpu_loader.h - finding and loading a GPU backend plugin at start-up.
 *
 * Plugins are looked for in the directory named by ROCMFORGE_GPU_PLUGIN_DIR
 * if set, else beside the running executable (where the build puts them),
 * in the order librocmforge-cuda.so, librocmforge-hip.so. The first that
 * loads, has the right ABI and opens a device wins; every failure on the
 * way is collected into one sentence (library, error string, device name
 * and arch) for the single log line the caller writes when it falls back to
 * the CPU.
 */
#ifndef RF_GPU_LOADER_H
#define RF_GPU_LOADER_H

#include "gpu/gpu.h"

typedef enum rf_device_pref {
    RF_DEVICE_AUTO = 0, /* GPU if one is usable, else CPU (logging why) */
    RF_DEVICE_CPU = 1,  /* never load a plugin */
    RF_DEVICE_GPU = 2,  /* GPU or an error */
} rf_device_pref;

/* Parses "auto", "cpu", "gpu"; false on anything else. */
bool rf_device_pref_parse(const char *s, rf_device_pref *out);

typedef struct rf_gpu_plugin {
    void *handle;              /* dlopen handle */
    const rf_gpu_api *api;
    rf_gpu *gpu;               /* the opened device */
    char path[512];
} rf_gpu_plugin;

/* Loads the first plugin that opens `device` (-1: its first). RF_OK with
 * *out filled, or RF_E_UNSUPPORTED with err->msg listing each plugin tried
 * and why it failed ("no GPU plugin in DIR" when none exists). */
rf_status rf_gpu_plugin_load(int device, rf_gpu_plugin *out, rf_error *err);
void rf_gpu_plugin_unload(rf_gpu_plugin *p); /* accepts a zeroed one */

/* The directory plugins are looked for in (see above). */
const char *rf_gpu_plugin_dir(char *buf, size_t n);

/* For `info --gpu`: calls fn for every plugin file in the directory with
 * the result of loading and opening it (api/gpu NULL on failure; why says
 * why). The plugin is unloaded after fn returns. */
typedef void (*rf_gpu_plugin_visit_fn)(void *user, const char *path, const rf_gpu_api *api, rf_gpu *gpu,
                                       const char *why);
void rf_gpu_plugin_each(rf_gpu_plugin_visit_fn fn, void *user);

#endif
