/*
 * offload.c - device choice, plugin load and layer placement (offload.h).
 */
#include "offload.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rf_offload {
    const rf_model *m;
    rf_offload_opts o;
    rf_gpu_plugin plugin;     /* api NULL: CPU only */
    rf_gpu_weights *weights;  /* after the first attach */
    int l0, l1;               /* placed range (l0 == l1: none) */
    bool placed, announced;
    char desc[512];
    char name[16];
};

/* One log line, to the caller's log if it gave one. */
__attribute__((format(printf, 3, 4))) static void olog(const rf_offload *o, rf_log_level lvl, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (o->o.log) o->o.log(o->o.log_user, lvl, line);
    else rf_log(lvl, "%s", line);
}

bool rf_gpu_layers_parse(const char *s, int *out) {
    if (strcmp(s, "auto") == 0) {
        *out = RF_GPU_LAYERS_AUTO;
        return true;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 100000) return false;
    *out = (int)v;
    return true;
}

static void set_cpu_desc(rf_offload *o, const char *why) {
    if (why) snprintf(o->desc, sizeof o->desc, "cpu (%s)", why);
    else snprintf(o->desc, sizeof o->desc, "cpu");
    snprintf(o->name, sizeof o->name, "CPU");
}

rf_status rf_offload_open(const rf_model *m, const rf_offload_opts *opts, rf_offload **out, rf_error *err) {
    *out = NULL;
    rf_offload *o = rf_calloc(1, sizeof *o);
    if (!o) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    o->m = m;
    o->o = *opts;
    set_cpu_desc(o, NULL);
    if (opts->device == RF_DEVICE_CPU || opts->gpu_layers == 0) {
        if (opts->device == RF_DEVICE_GPU)
            olog(o, RF_LOG_WARN, "gpu: --gpu-layers 0: every layer runs on the CPU");
        *out = o;
        return RF_OK;
    }
    rf_error le = {0};
    if (rf_gpu_plugin_load(opts->gpu_device, &o->plugin, &le) != RF_OK) {
        if (opts->device == RF_DEVICE_GPU) {
            rf_free(o);
            return rf_error_set(err, RF_E_UNSUPPORTED, "--device gpu: no usable GPU: %s", le.msg);
        }
        olog(o, RF_LOG_WARN, "gpu: using the CPU backend: %s", le.msg);
        set_cpu_desc(o, "no usable GPU");
        *out = o;
        return RF_OK;
    }
    *out = o;
    return RF_OK;
}

void rf_offload_close(rf_offload *o) {
    if (!o) return;
    if (o->plugin.api) o->plugin.api->weights_free(o->weights);
    rf_gpu_plugin_unload(&o->plugin);
    rf_free(o);
}

bool rf_offload_active(const rf_offload *o) { return o && o->plugin.api && o->l1 > o->l0; }
const char *rf_offload_describe(const rf_offload *o) { return o ? o->desc : "cpu"; }
const char *rf_offload_backend_name(const rf_offload *o) { return o ? o->name : "CPU"; }

/* Chooses [l0, n_layer): the supported suffix, cut to the requested count
 * or to what fits the free device memory. */
static rf_status place(rf_offload *o, const rf_kv_config *kc, int64_t n_batch, rf_error *err) {
    const rf_gpu_api *api = o->plugin.api;
    rf_gpu *g = o->plugin.gpu;
    const rf_model *m = o->m;
    int nl = (int)m->hp.n_layer;
    int l0 = nl;
    const char *why = NULL;
    int stop_at = -1;
    while (l0 > 0 && api->layer_supported(g, m, l0 - 1, &why)) l0--;
    if (l0 > 0) stop_at = l0 - 1;
    int want = o->o.gpu_layers;
    if (want != RF_GPU_LAYERS_AUTO && nl - l0 > want) l0 = nl - want;
    rf_gpu_device_info di;
    if (api->device_info(g, api->device_index(g), &di, err) != RF_OK) return RF_E_IO;
    /* KV bytes of one layer for this context: k and v, float16 */
    uint64_t kv_layer = 2ull * (uint64_t)kc->n_blocks * (uint64_t)kc->block_size * (uint64_t)kc->kv_dim * 2ull;
    uint64_t fixed = api->ctx_scratch_bytes(g, m, n_batch) + (uint64_t)m->output.rows * m->output.row_bytes +
                     (uint64_t)m->hp.n_embd * 4;
    uint64_t reserve = di.mem_free / 20 + (256ull << 20); /* runtime, graphs, fragmentation */
    uint64_t budget = di.mem_free > reserve + fixed ? di.mem_free - reserve - fixed : 0, need = 0;
    int fit = nl;
    for (int il = nl - 1; il >= l0; il--) {
        uint64_t b = api->layer_weight_bytes(g, m, il) + kv_layer;
        if (need + b > budget) break;
        need += b;
        fit = il;
    }
    if (fit > l0) {
        if (want != RF_GPU_LAYERS_AUTO)
            olog(o, RF_LOG_WARN, "gpu: %d layers requested, %d fit in %.1f GiB free on the device", want, nl - fit,
                    (double)di.mem_free / 1073741824.0);
        l0 = fit;
    }
    o->l0 = l0;
    o->l1 = nl;
    if (stop_at >= 0 && o->l0 == stop_at + 1 && (want == RF_GPU_LAYERS_AUTO || want > nl - o->l0))
        olog(o, RF_LOG_INFO, "gpu: layer %d and earlier run on the CPU: %s", stop_at, why ? why : "unsupported");
    return RF_OK;
}

rf_status rf_offload_attach(rf_offload *o, rf_ctx *ctx, rf_error *err) {
    if (!o || !o->plugin.api) return RF_OK;
    const rf_gpu_api *api = o->plugin.api;
    const rf_kv_config *kc = rf_kv_get_config(rf_ctx_kv(ctx));
    int64_t n_batch = rf_ctx_n_batch(ctx);
    rf_gpu_device_info di;
    api->device_info(o->plugin.gpu, api->device_index(o->plugin.gpu), &di, NULL);
    if (!o->placed) {
        o->placed = true;
        rf_status st = place(o, kc, n_batch, err);
        if (st != RF_OK) return st;
        if (o->l1 <= o->l0) {
            if (o->o.device == RF_DEVICE_GPU)
                return rf_error_set(err, RF_E_UNSUPPORTED, "--device gpu: no layer of this model can run on %s \"%s\"",
                                    api->vendor, di.name);
            olog(o, RF_LOG_WARN, "gpu: using the CPU backend: no layer fits or is supported on %s device %d \"%s\" (%s)",
                    api->vendor, api->device_index(o->plugin.gpu), di.name, di.arch);
            set_cpu_desc(o, "no layer placed on the GPU");
            return RF_OK;
        }
        st = api->weights_create(o->plugin.gpu, o->m, o->l0, o->l1, &o->weights, err);
        if (st != RF_OK) {
            if (o->o.device == RF_DEVICE_GPU) return st;
            olog(o, RF_LOG_WARN, "gpu: using the CPU backend: %s", err ? err->msg : "weights upload failed");
            o->l1 = o->l0;
            set_cpu_desc(o, "GPU upload failed");
            return RF_OK;
        }
    }
    if (o->l1 <= o->l0) return RF_OK;
    rf_layers_backend lb;
    rf_status st = api->layers_create(o->weights, kc, n_batch, &lb, err);
    if (st != RF_OK) {
        if (o->o.device == RF_DEVICE_GPU) return st;
        /* this context runs on the CPU (another may still fit) */
        olog(o, RF_LOG_WARN, "gpu: this context runs on the CPU: %s", err ? err->msg : "device state not allocated");
        return RF_OK;
    }
    if ((st = rf_ctx_offload(ctx, &lb, err)) != RF_OK) {
        lb.ops->release(lb.ctx);
        return st;
    }
    int nl = (int)o->m->hp.n_layer;
    snprintf(o->desc, sizeof o->desc, "%s: %s (%s), %d/%d layers%s on the GPU, %.1f GiB free", api->vendor, di.name,
             di.arch, o->l1 - o->l0, nl, lb.head ? " + head" : "", (double)di.mem_free / 1073741824.0);
    snprintf(o->name, sizeof o->name, "%s%s", strcmp(api->vendor, "cuda") == 0 ? "CUDA" : "HIP",
             o->l0 > 0 ? "+CPU" : "");
    if (!o->announced) {
        o->announced = true;
        olog(o, RF_LOG_INFO, "gpu: %s", o->desc);
    }
    return RF_OK;
}
