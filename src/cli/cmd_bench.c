/*
 * cmd_bench.c - `rocmforge bench`: prompt processing (ppN: one batch of N
 * tokens) and generation (tgN: N single-token steps from an empty context)
 * in tokens per second, mean ± standard deviation over repetitions, in the
 * table shape llama-bench prints so the two can be read side by side.
 * Tokens are random ids: speed does not depend on them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cpu/cpu.h"
#include "engine/engine.h"
#include "gpu_opts.h"
#include "model/model.h"

enum { O_MODEL, O_P, O_N, O_T, O_R,
       O_DEVICE, O_NGL, O_TRACE, O_NPL, O_NPP, O_NTG, O_COUNT };
static const rf_opt opts[O_COUNT] = {
    [O_MODEL] = {"--model", "-m", true}, [O_P] = {"--n-prompt", "-p", true}, [O_N] = {"--n-gen", "-n", true},
    [O_T] = {"--threads", "-t", true},   [O_R] = {"--repetitions", "-r", true},
    [O_DEVICE] = {"--device", NULL, true}, [O_NGL] = {"--gpu-layers", "-ngl", true},
    [O_TRACE] = {"--trace", NULL, true},
    [O_NPL] = {"--parallel", "-npl", true}, [O_NPP] = {"--batch-prompt", "-npp", true},
    [O_NTG] = {"--batch-gen", "-ntg", true},
};

static void usage(FILE *out) {
    fprintf(out, "usage: rocmforge bench -m MODEL.gguf [-p 512] [-n 128] [-t THREADS] [-r 5] [--trace FILE]\n\n"
                 "Prints pp<p> (prompt processing) and tg<n> (generation) tokens/s as mean ± stddev over\n"
                 "r repetitions after one warm-up, in llama-bench's table shape. -p 0 or -n 0 skips a test.\n"
                 "--trace FILE writes every op's timing as Chrome trace JSON (chrome://tracing, Perfetto).\n\n"
                 "Batched decode (llama-batched-bench's S_PP / S_TG): -npl 1,8,32,64 [-npp 128] [-ntg 128]\n"
                 "runs, for each N, N sequences of npp prompt tokens (prefilled in batches of up to 512\n"
                 "tokens) and then ntg steps decoding all N at once; prints aggregate prompt and\n"
                 "generation tokens/s (every sequence's tokens counted). Replaces the pp / tg tests.\n");
    fputs("\n" RF_CLI_GPU_HELP, out);
}

typedef struct stat_acc { double sum, sum2; int n; } stat_acc;
static void acc_add(stat_acc *a, double v) { a->sum += v; a->sum2 += v * v; a->n++; }
static double acc_mean(const stat_acc *a) { return a->n ? a->sum / a->n : 0; }
static double acc_sd(const stat_acc *a) {
    if (a->n < 2) return 0;
    double m = acc_mean(a), v = (a->sum2 - a->n * m * m) / (a->n - 1);
    return v > 0 ? sqrt(v) : 0;
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static int32_t rand_token(int64_t n_vocab) {
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (int32_t)(g_rng % (uint64_t)n_vocab);
}

/* One repetition of ppN: a fresh sequence, N tokens in batches of n_batch. */
static rf_status run_pp(rf_ctx *ctx, const rf_model *m, int64_t np, int64_t n_batch, rf_batch_entry *b, float *logits,
                        double *secs, rf_error *err) {
    rf_kv_seq_free(rf_ctx_kv(ctx), 0);
    double t0 = rf_time_now();
    for (int64_t i = 0; i < np; i += n_batch) {
        int64_t k = np - i < n_batch ? np - i : n_batch;
        for (int64_t j = 0; j < k; j++) b[j] = (rf_batch_entry){0, (int32_t)(i + j), rand_token(m->hp.n_vocab), i + j == np - 1};
        rf_status st = rf_forward(ctx, b, k, logits, NULL, err);
        if (st != RF_OK) return st;
    }
    *secs = rf_time_now() - t0;
    return RF_OK;
}

static rf_status run_tg(rf_ctx *ctx, const rf_model *m, int64_t ng, rf_batch_entry *b, float *logits, double *secs,
                        rf_error *err) {
    rf_kv_seq_free(rf_ctx_kv(ctx), 0);
    double t0 = rf_time_now();
    for (int64_t i = 0; i < ng; i++) {
        b[0] = (rf_batch_entry){0, (int32_t)i, rand_token(m->hp.n_vocab), true};
        rf_status st = rf_forward(ctx, b, 1, logits, NULL, err);
        if (st != RF_OK) return st;
    }
    *secs = rf_time_now() - t0;
    return RF_OK;
}

/* N sequences: npp prompt tokens each (the prompts packed into batches of
 * n_batch), then ntg steps of N tokens (one per sequence, all with logits).
 * Seconds of each phase. */
static rf_status run_batched(rf_ctx *ctx, const rf_model *m, int n_seq, int64_t npp, int64_t ntg, int64_t n_batch,
                             rf_batch_entry *b, float *logits, double *pp_secs, double *tg_secs, rf_error *err) {
    for (int s = 0; s < n_seq; s++) rf_kv_seq_free(rf_ctx_kv(ctx), s);
    double t0 = rf_time_now();
    int64_t k = 0, total = (int64_t)n_seq * npp;
    for (int64_t i = 0; i < total; i++) {
        int64_t s = i / npp, p = i % npp;
        b[k++] = (rf_batch_entry){(int32_t)s, (int32_t)p, rand_token(m->hp.n_vocab), p == npp - 1};
        if (k == n_batch || i == total - 1) {
            rf_status st = rf_forward(ctx, b, k, logits, NULL, err);
            if (st != RF_OK) return st;
            k = 0;
        }
    }
    double t1 = rf_time_now();
    for (int64_t g = 0; g < ntg; g++) {
        for (int s = 0; s < n_seq; s++)
            b[s] = (rf_batch_entry){s, (int32_t)(npp + g), rand_token(m->hp.n_vocab), true};
        rf_status st = rf_forward(ctx, b, n_seq, logits, NULL, err);
        if (st != RF_OK) return st;
    }
    *pp_secs = t1 - t0;
    *tg_secs = rf_time_now() - t1;
    return RF_OK;
}

/* "1,8,32" -> npl[0..n); false (with a message) on anything else. */
static bool parse_npl(const char *s, long *npl, int max, int *n) {
    *n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024 || *n == max || (*end && *end != ',')) {
            rf_cli_error("-npl: expected a comma-separated list of sequence counts 1..1024, got \"%s\"", s);
            return false;
        }
        npl[(*n)++] = v;
        s = *end ? end + 1 : end;
    }
    return *n > 0;
}

static int run(int argc, char **argv) {
    rf_args a;
    bool help;
    int rc = rf_args_parse(argc, argv, opts, O_COUNT, &a, &help);
    if (rc) return rc;
    if (help) { usage(stdout); return RF_EXIT_OK; }
    if (!a.val[O_MODEL] || a.n_pos) { rf_cli_error("bench needs -m MODEL"); usage(stderr); return RF_EXIT_USAGE; }
    long np = 512, ng = 128, nt = rf_cpu_physical_cores(), reps = 5;
    if (a.val[O_P] && !rf_arg_long("-p", a.val[O_P], 0, 1 << 20, &np)) return RF_EXIT_USAGE;
    if (a.val[O_N] && !rf_arg_long("-n", a.val[O_N], 0, 1 << 20, &ng)) return RF_EXIT_USAGE;
    if (a.val[O_T] && !rf_arg_long("-t", a.val[O_T], 1, 1024, &nt)) return RF_EXIT_USAGE;
    if (a.val[O_R] && !rf_arg_long("-r", a.val[O_R], 1, 1000, &reps)) return RF_EXIT_USAGE;
    rf_offload_opts go;
    if (!rf_cli_gpu_opts(a.val[O_DEVICE], a.val[O_NGL], &go)) return RF_EXIT_USAGE;
    long npl[16], npp = 128, ntg = 128, max_seq = 1;
    int n_npl = 0;
    if (a.val[O_NPL] && !parse_npl(a.val[O_NPL], npl, 16, &n_npl)) return RF_EXIT_USAGE;
    if (a.val[O_NPP] && !rf_arg_long("-npp", a.val[O_NPP], 1, 1 << 20, &npp)) return RF_EXIT_USAGE;
    if (a.val[O_NTG] && !rf_arg_long("-ntg", a.val[O_NTG], 1, 1 << 20, &ntg)) return RF_EXIT_USAGE;
    for (int i = 0; i < n_npl; i++) max_seq = npl[i] > max_seq ? npl[i] : max_seq;

    rf_error err = {0};
    rf_model *m = NULL;
    if (rf_model_load(a.val[O_MODEL], &m, &err) != RF_OK) { rf_cli_error("%s", err.msg); return RF_EXIT_BADINPUT; }
    rc = RF_EXIT_BADINPUT;
    rf_threadpool *tp = rf_threadpool_create((int)nt);
    rf_backend be = {0};
    rf_ctx *ctx = NULL;
    rf_offload *off = NULL;
    int64_t n_batch = np > 0 ? (np < 512 ? np : 512) : 1;
    rf_ctx_params cp = {.n_ctx = (np > ng ? np : ng) + 1, .n_seq = 1, .n_batch = n_batch};
    if (n_npl) {
        n_batch = 512 > max_seq ? 512 : max_seq;
        cp = (rf_ctx_params){.n_ctx = npp + ntg, .n_seq = (int)max_seq, .n_batch = n_batch};
    }
    rf_batch_entry *b = rf_malloc((size_t)n_batch * sizeof *b);
    float *logits = NULL; /* the context's buffer: page-locked with a GPU head, as the engine's */
    if (!tp || !b || rf_cpu_backend_create(tp, &be, &err) != RF_OK ||
        (a.val[O_TRACE] && rf_cpu_backend_trace(&be, a.val[O_TRACE], &err) != RF_OK) ||
        rf_ctx_create(m, &cp, &be, &ctx, &err) != RF_OK ||
        rf_offload_open(m, &go, &off, &err) != RF_OK || rf_offload_attach(off, ctx, &err) != RF_OK ||
        !(logits = rf_ctx_logits(ctx, n_npl ? max_seq : 1))) {
        rf_cli_error("%s", err.msg[0] ? err.msg : "out of memory");
        goto out;
    }
    rf_engine_repack(m, &be, off);
    /* model description like llama-bench: "llama 1B Q4_0", size, params */
    double params = 0, bytes = 0;
    uint64_t by_type[RF_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < rf_gguf_n_tensors(m->gguf); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(m->gguf, i);
        params += (double)rf_gguf_tensor_nelements(t);
        bytes += (double)t->nbytes;
        by_type[t->type] += t->nbytes;
    }
    int main_type = RF_TYPE_F32;
    for (int t = 0; t < RF_TYPE_COUNT; t++) if (by_type[t] > by_type[main_type]) main_type = t;
    char desc[96], sz[32], pc[32];
    snprintf(desc, sizeof desc, "%s %s %s", m->hp.arch_name, rf_fmt_count(params, pc, sizeof pc), rf_type_name((uint32_t)main_type));
    rf_fmt_bytes(bytes, sz, sizeof sz);
    rf_fmt_count(params, pc, sizeof pc);
    printf("| %-28s | %12s | %10s | %-7s | %7s | %12s | %20s |\n", "model", "size", "params", "backend", "threads", "test", "t/s");
    printf("| %.28s | %.12s | %.10s | %.7s | %.7s | %.12s | %.20s |\n", "----------------------------", "-----------:",
           "---------:", "-------", "------:", "-----------:", "-------------------:");
    for (int i = 0; i < n_npl; i++) {
        stat_acc pp = {0}, tg = {0};
        for (long r = -1; r < reps; r++) { /* r = -1: warm-up */
            double ps, ts;
            if (run_batched(ctx, m, (int)npl[i], npp, ntg, n_batch, b, logits, &ps, &ts, &err) != RF_OK) {
                rf_cli_error("%s", err.msg);
                goto out;
            }
            if (r >= 0) acc_add(&pp, (double)(npl[i] * npp) / ps), acc_add(&tg, (double)(npl[i] * ntg) / ts);
        }
        char test[48], ts[48];
        snprintf(test, sizeof test, "pp%ld x%ld", npp, npl[i]);
        snprintf(ts, sizeof ts, "%.2f ± %.2f", acc_mean(&pp), acc_sd(&pp));
        printf("| %-28s | %12s | %10s | %-7s | %7ld | %12s | %20s |\n", desc, sz, pc, rf_offload_backend_name(off), nt,
               test, ts);
        snprintf(test, sizeof test, "tg%ld x%ld", ntg, npl[i]);
        snprintf(ts, sizeof ts, "%.2f ± %.2f", acc_mean(&tg), acc_sd(&tg));
        printf("| %-28s | %12s | %10s | %-7s | %7ld | %12s | %20s |\n", desc, sz, pc, rf_offload_backend_name(off), nt,
               test, ts);
        fflush(stdout);
    }
    struct { const char *kind; long n; } tests[2] = {{"pp", n_npl ? 0 : np}, {"tg", n_npl ? 0 : ng}};
    for (int k = 0; k < 2; k++) {
        if (tests[k].n <= 0) continue;
        stat_acc acc = {0};
        for (long r = -1; r < reps; r++) { /* r = -1: warm-up */
            double secs;
            rf_status st = k == 0 ? run_pp(ctx, m, tests[k].n, n_batch, b, logits, &secs, &err)
                                  : run_tg(ctx, m, tests[k].n, b, logits, &secs, &err);
            if (st != RF_OK) { rf_cli_error("%s", err.msg); goto out; }
            if (r >= 0) acc_add(&acc, (double)tests[k].n / secs);
        }
        char test[32], ts[48];
        snprintf(test, sizeof test, "%s%ld", tests[k].kind, tests[k].n);
        snprintf(ts, sizeof ts, "%.2f ± %.2f", acc_mean(&acc), acc_sd(&acc));
        printf("| %-28s | %12s | %10s | %-7s | %7ld | %12s | %20s |\n", desc, sz, pc, rf_offload_backend_name(off), nt,
               test, ts);
        fflush(stdout);
    }
    rc = RF_EXIT_OK;
out:
    rf_ctx_free(ctx);
    rf_offload_close(off);
    rf_cpu_backend_free(&be);
    rf_threadpool_free(tp);
    rf_free(b);
    rf_model_free(m);
    return rc;
}

const rf_cmd rf_cmd_bench = {"bench", "measure prompt and generation speed (llama-bench style)", run, usage};
