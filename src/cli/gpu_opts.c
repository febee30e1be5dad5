/*
 * gpu_opts.c - parsing --device and --gpu-layers (gpu_opts.h).
 */
#include "gpu_opts.h"

#include "cli.h"

bool rf_cli_gpu_opts(const char *device, const char *gpu_layers, rf_offload_opts *out) {
    *out = (rf_offload_opts){.device = RF_DEVICE_AUTO, .gpu_layers = RF_GPU_LAYERS_AUTO, .gpu_device = -1};
    if (device && !rf_device_pref_parse(device, &out->device)) {
        rf_cli_error("--device: '%s' is not cpu, gpu or auto", device);
        return false;
    }
    if (gpu_layers && !rf_gpu_layers_parse(gpu_layers, &out->gpu_layers)) {
        rf_cli_error("--gpu-layers: '%s' is not a layer count or auto", gpu_layers);
        return false;
    }
    return true;
}
