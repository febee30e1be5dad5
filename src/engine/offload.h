/*
 * offload.h - which layers of a model run on the GPU: the device choice
 * (--device cpu|gpu|auto), the plugin load with its one log line when the
 * CPU takes over, the placement (--gpu-layers N|auto: auto measures the
 * device's free memory against each layer's weights and KV cache and the
 * context's scratch), and attaching a context's device state. Used by the
 * engine (generate, chat, serve) and by bench.
 *
 * Placement: the last N layers go to the GPU (with the head when its type
 * has a kernel), so the residual stream crosses the bus once each way and
 * only the logits of the requested rows come back. A layer the plugin
 * cannot run (an op or weight type it lacks) ends the range: it and every
 * layer before it stay on the CPU.
 */
#ifndef RF_OFFLOAD_H
#define RF_OFFLOAD_H

#include "backend/gpu_loader.h"
#include "model/model.h"

#define RF_GPU_LAYERS_AUTO (-1)

typedef struct rf_offload_opts {
    rf_device_pref device;
    int gpu_layers;     /* RF_GPU_LAYERS_AUTO, or at most this many (0: none) */
    int gpu_device;     /* -1: the first */
} rf_offload_opts;

/* Parses --gpu-layers ("auto" or a count). */
bool rf_gpu_layers_parse(const char *s, int *out);

typedef struct rf_offload rf_offload;

/* Loads the plugin unless device is cpu. With device auto, any failure
 * (no plugin, no runtime, no device, unsupported arch) logs ONE warning
 * line with the reason and returns RF_OK with the CPU only; with device gpu
 * it is an error. Nothing is uploaded yet: the first rf_offload_attach
 * places the layers for that context's KV cache and batch. m is borrowed. */
rf_status rf_offload_open(const rf_model *m, const rf_offload_opts *o, rf_offload **out, rf_error *err);
void rf_offload_close(rf_offload *o); /* after every context it attached is freed; accepts NULL */

/* Places the layers (first call) and gives ctx its device state. A no-op
 * when running on the CPU. With device auto, a placement of 0 layers is
 * logged and the CPU runs; with device gpu it is an error. */
rf_status rf_offload_attach(rf_offload *o, rf_ctx *ctx, rf_error *err);

/* "cpu" or "cuda: NVIDIA H100 80GB HBM3 (sm_90), 24/24 layers + head on the GPU". */
const char *rf_offload_describe(const rf_offload *o);
/* Short backend name for tables: "CPU", "CUDA", "HIP", "CUDA+CPU". */
const char *rf_offload_backend_name(const rf_offload *o);
bool rf_offload_active(const rf_offload *o);

#endif
