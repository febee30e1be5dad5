/*
 * gpu_loader.c - dlopen of the GPU backend plugins (see gpu_loader.h):
 * where they are looked for, the ABI check, and the one-sentence reason
 * when none can be used.
 */
#include "gpu_loader.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const plugin_names[] = {"librocmforge-cuda.so", "librocmforge-hip.so"};

bool rf_device_pref_parse(const char *s, rf_device_pref *out) {
    static const char *const names[] = {"auto", "cpu", "gpu"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (rf_device_pref)i;
            return true;
        }
    return false;
}

const char *rf_gpu_plugin_dir(char *buf, size_t n) {
    const char *env = getenv("ROCMFORGE_GPU_PLUGIN_DIR");
    if (env && *env) {
        snprintf(buf, n, "%s", env);
        return buf;
    }
    ssize_t k = readlink("/proc/self/exe", buf, n - 1);
    if (k <= 0) {
        snprintf(buf, n, ".");
        return buf;
    }
    buf[k] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';
    return buf;
}

/* Loads and opens one plugin file. On failure fills why. */
static rf_status load_one(const char *path, int device, rf_gpu_plugin *p, char *why, size_t n) {
    memset(p, 0, sizeof *p);
    snprintf(p->path, sizeof p->path, "%s", path);
    dlerror();
    p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->handle) {
        const char *e = dlerror();
        snprintf(why, n, "%s", e ? e : "dlopen failed");
        return RF_E_UNSUPPORTED;
    }
    const rf_gpu_api *api = dlsym(p->handle, RF_GPU_PLUGIN_SYMBOL);
    if (!api) {
        snprintf(why, n, "%s: no symbol %s (not a ROCmForge GPU plugin)", path, RF_GPU_PLUGIN_SYMBOL);
        goto fail;
    }
    if (api->abi_version != RF_GPU_ABI_VERSION || api->struct_size != sizeof(rf_gpu_api)) {
        snprintf(why, n, "%s: plugin ABI %u (%u bytes), this binary needs %u (%zu bytes): plugin and binary are from different builds",
                 path, api->abi_version, api->struct_size, RF_GPU_ABI_VERSION, sizeof(rf_gpu_api));
        goto fail;
    }
    rf_error err = {0};
    if (api->open(device, &p->gpu, &err) != RF_OK || !p->gpu) {
        snprintf(why, n, "%s: %s", path, err.msg[0] ? err.msg : "open failed");
        /* a vendor runtime that has started (a static CUDA runtime
         * registers exit handlers) must stay mapped: never dlclose it */
        p->handle = NULL;
        return RF_E_UNSUPPORTED;
    }
    p->api = api;
    return RF_OK;
fail:
    dlclose(p->handle);
    p->handle = NULL;
    return RF_E_UNSUPPORTED;
}

rf_status rf_gpu_plugin_load(int device, rf_gpu_plugin *out, rf_error *err) {
    memset(out, 0, sizeof *out);
    char dir[512], reasons[1024] = "";
    rf_gpu_plugin_dir(dir, sizeof dir);
    size_t used = 0;
    int found = 0;
    for (size_t i = 0; i < RF_ARRAY_LEN(plugin_names); i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, plugin_names[i]);
        if (access(path, F_OK) != 0) continue;
        found++;
        char why[600];
        if (load_one(path, device, out, why, sizeof why) == RF_OK) return RF_OK;
        int k = snprintf(reasons + used, sizeof reasons - used, "%s%s", used ? "; " : "", why);
        if (k > 0) used += (size_t)k < sizeof reasons - used ? (size_t)k : sizeof reasons - used - 1;
    }
    if (!found)
        return rf_error_set(err, RF_E_UNSUPPORTED, "no GPU plugin (%s, %s) in %s", plugin_names[0], plugin_names[1], dir);
    return rf_error_set(err, RF_E_UNSUPPORTED, "%s", reasons);
}

void rf_gpu_plugin_unload(rf_gpu_plugin *p) {
    if (!p) return;
    if (p->api && p->gpu) p->api->close(p->gpu);
    /* the handle stays open: see load_one */
    memset(p, 0, sizeof *p);
}

void rf_gpu_plugin_each(rf_gpu_plugin_visit_fn fn, void *user) {
    char dir[512];
    rf_gpu_plugin_dir(dir, sizeof dir);
    for (size_t i = 0; i < RF_ARRAY_LEN(plugin_names); i++) {
        char path[1024], why[600] = "";
        snprintf(path, sizeof path, "%s/%s", dir, plugin_names[i]);
        if (access(path, F_OK) != 0) {
            fn(user, path, NULL, NULL, "not present");
            continue;
        }
        rf_gpu_plugin p;
        if (load_one(path, -1, &p, why, sizeof why) == RF_OK) {
            fn(user, path, p.api, p.gpu, NULL);
            rf_gpu_plugin_unload(&p);
        } else {
            fn(user, path, NULL, NULL, why);
        }
    }
}
