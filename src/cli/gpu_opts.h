/*
 * gpu_opts.h - the GPU options generate, bench and serve share:
 * --device cpu|gpu|auto and --gpu-layers N|auto (-ngl).
 */
#ifndef RF_CLI_GPU_OPTS_H
#define RF_CLI_GPU_OPTS_H

#include "engine/offload.h"

#define RF_CLI_GPU_HELP                                                                                   \
    "  --device cpu|gpu|auto   where layers run (default auto: the GPU when a plugin opens a device,\n" \
    "                          else the CPU, with one log line saying why)\n"                         \
    "  --gpu-layers N|auto     -ngl: layers on the GPU, counted from the last (default auto: as many\n" \
    "                          as fit the device's free memory)\n"

/* Fills *out from the option values (either may be NULL: defaults). Prints
 * the error and returns false on a bad value. */
bool rf_cli_gpu_opts(const char *device, const char *gpu_layers, rf_offload_opts *out);

#endif
