/*
 * gpu_info.c - `rocmforge info --gpu`: every GPU plugin beside the binary
 * (or in ROCMFORGE_GPU_PLUGIN_DIR), whether it loads and why not, each
 * device it sees with arch, memory and the launch limits read by attribute
 * query, and the backend --device auto would choose.
 */
#include "cli.h"
#include "gpu_opts.h"

static void print_limits(FILE *f, const rf_gpu_limits *l) {
    fprintf(f, "      limits: block %lld x %lld x %lld (%lld threads), grid %lld x %lld x %lld\n", (long long)l->block[0],
            (long long)l->block[1], (long long)l->block[2], (long long)l->threads_per_block, (long long)l->grid[0],
            (long long)l->grid[1], (long long)l->grid[2]);
    fprintf(f, "              shared memory %lld bytes/block, %lld registers/block, warp %lld\n",
            (long long)l->smem_per_block, (long long)l->regs_per_block, (long long)l->warp_size);
}

static void visit(void *user, const char *path, const rf_gpu_api *api, rf_gpu *gpu, const char *why) {
    FILE *f = user;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (!api) {
        fprintf(f, "  %s: %s\n", name, why);
        return;
    }
    fprintf(f, "  %s: %s, kernels for %s, %d device%s\n", name, api->vendor, api->built_for, api->device_count(gpu),
            api->device_count(gpu) == 1 ? "" : "s");
    for (int d = 0; d < api->device_count(gpu); d++) {
        rf_gpu_device_info di;
        rf_error err = {0};
        if (api->device_info(gpu, d, &di, &err) != RF_OK) {
            fprintf(f, "    device %d: %s\n", d, err.msg);
            continue;
        }
        char tot[32], fr[32];
        fprintf(f, "    device %d: %s (%s), %s, %s free, %d units, %d MHz\n", d, di.name, di.arch,
                rf_fmt_bytes((double)di.mem_total, tot, sizeof tot), rf_fmt_bytes((double)di.mem_free, fr, sizeof fr),
                di.n_units, di.clock_khz / 1000);
        print_limits(f, &di.lim);
        fprintf(f, "      prompt GEMM: %s\n", di.blas);
    }
}

void rf_cli_print_gpu_info(FILE *f) {
    char dir[512];
    fprintf(f, "GPU plugins in %s:\n", rf_gpu_plugin_dir(dir, sizeof dir));
    rf_gpu_plugin_each(visit, f);
    rf_gpu_plugin p;
    rf_error err = {0};
    if (rf_gpu_plugin_load(-1, &p, &err) == RF_OK) {
        rf_gpu_device_info di;
        p.api->device_info(p.gpu, p.api->device_index(p.gpu), &di, NULL);
        fprintf(f, "backend (--device auto): %s device %d \"%s\" (%s)\n", p.api->vendor, p.api->device_index(p.gpu),
                di.name, di.arch);
        rf_gpu_plugin_unload(&p);
    } else {
        fprintf(f, "backend (--device auto): cpu: %s\n", err.msg);
    }
}
