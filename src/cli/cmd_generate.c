/*
 * cmd_generate.c - `rocmforge generate`: complete a prompt, streaming the
 * text to stdout as it is produced; timings go to stderr at the end.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "engine/engine.h"
#include "gpu_opts.h"

enum { O_MODEL, O_PROMPT, O_N, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_SEED, O_THREADS, O_CTX, O_REPEAT, O_STOP,
       O_NOSPECIAL, O_TRACE,
       O_DEVICE, O_NGL, O_COUNT };
static const rf_opt opts[O_COUNT] = {
    [O_MODEL] = {"--model", "-m", true},      [O_PROMPT] = {"--prompt", "-p", true},
    [O_N] = {"--n-predict", "-n", true},      [O_TEMP] = {"--temp", NULL, true},
    [O_TOPK] = {"--top-k", NULL, true},       [O_TOPP] = {"--top-p", NULL, true},
    [O_MINP] = {"--min-p", NULL, true},       [O_SEED] = {"--seed", NULL, true},
    [O_THREADS] = {"--threads", "-t", true},  [O_CTX] = {"--ctx-size", "-c", true},
    [O_REPEAT] = {"--repeat-penalty", NULL, true}, [O_STOP] = {"--stop", NULL, true},
    [O_NOSPECIAL] = {"--no-parse-special", NULL, false}, [O_TRACE] = {"--trace", NULL, true},
    [O_DEVICE] = {"--device", NULL, true},    [O_NGL] = {"--gpu-layers", "-ngl", true},
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: rocmforge generate -m MODEL.gguf -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P]\n"
            "                          [--min-p M] [--seed S] [--repeat-penalty R] [--stop TEXT]\n"
            "                          [--threads N] [--ctx-size N] [--no-parse-special] [--trace FILE]\n\n"
            "Streams the continuation of PROMPT (\"-\" reads it from stdin) to stdout; load time,\n"
            "prompt and generation speed go to stderr. Defaults: -n 128, --temp 0.8, --top-k 40,\n"
            "--top-p 0.95, --min-p 0.05, seed from the clock; --temp 0 is greedy. Special-token text\n"
            "in the prompt (<|im_start|>, ...) is parsed as special unless --no-parse-special.\n"
            "--trace FILE writes every op's timing as Chrome trace JSON (chrome://tracing, Perfetto).\n");
    fputs("\n" RF_CLI_GPU_HELP, out);
}

static volatile int g_cancel;
static void on_sigint(int sig) { (void)sig; g_cancel = 1; }

static bool print_text(void *ctx, const char *text, size_t len) {
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

/* Parses the sampling options shared by generate and chat. */
bool rf_cli_sample_params(const rf_args *a, int o_temp, int o_topk, int o_topp, int o_minp, int o_seed,
                          int o_repeat, rf_sample_params *sp);
bool rf_cli_sample_params(const rf_args *a, int o_temp, int o_topk, int o_topp, int o_minp, int o_seed,
                          int o_repeat, rf_sample_params *sp) {
    *sp = rf_sample_params_default();
    sp->seed = (uint64_t)(rf_time_now() * 1e9);
    double d;
    long v;
    if (a->val[o_temp]) { if (!rf_arg_double("--temp", a->val[o_temp], &d) || d < 0) return false; sp->temperature = (float)d; }
    if (a->val[o_topk]) { if (!rf_arg_long("--top-k", a->val[o_topk], 0, 1 << 30, &v)) return false; sp->top_k = (int32_t)v; }
    if (a->val[o_topp]) { if (!rf_arg_double("--top-p", a->val[o_topp], &d) || d <= 0 || d > 1) return false; sp->top_p = (float)d; }
    if (a->val[o_minp]) { if (!rf_arg_double("--min-p", a->val[o_minp], &d) || d < 0 || d > 1) return false; sp->min_p = (float)d; }
    if (a->val[o_repeat]) { if (!rf_arg_double("--repeat-penalty", a->val[o_repeat], &d) || d <= 0) return false; sp->repeat_penalty = (float)d; }
    if (a->val[o_seed]) {
        char *end;
        sp->seed = strtoull(a->val[o_seed], &end, 0);
        if (*end || !*a->val[o_seed]) { rf_cli_error("--seed: '%s' is not a number", a->val[o_seed]); return false; }
    }
    return true;
}

static char *read_stdin(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = rf_malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, stdin);
        n += r;
        if (r == 0) break;
        if (n + 1 == cap) {
            char *nb = rf_realloc(buf, cap * 2);
            if (!nb) { rf_free(buf); return NULL; }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf) buf[n] = '\0';
    *len = n;
    return buf;
}

static int run(int argc, char **argv) {
    rf_args a;
    bool help;
    int rc = rf_args_parse(argc, argv, opts, O_COUNT, &a, &help);
    if (rc) return rc;
    if (help) { usage(stdout); return RF_EXIT_OK; }
    if (!a.val[O_MODEL] || !a.val[O_PROMPT] || a.n_pos) {
        rf_cli_error("generate needs -m MODEL and -p PROMPT");
        usage(stderr);
        return RF_EXIT_USAGE;
    }
    rf_gen_params gp = {.n_predict = 128, .cancel = &g_cancel};
    long v;
    if (!rf_cli_sample_params(&a, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_SEED, O_REPEAT, &gp.sample)) return RF_EXIT_USAGE;
    if (a.val[O_N]) { if (!rf_arg_long("--n-predict", a.val[O_N], -1, 1 << 24, &v)) return RF_EXIT_USAGE; gp.n_predict = (int32_t)v; }
    rf_engine_opts eo = {.model_path = a.val[O_MODEL], .progress = isatty(2), .trace_path = a.val[O_TRACE]};
    if (a.val[O_THREADS]) { if (!rf_arg_long("--threads", a.val[O_THREADS], 1, 1024, &v)) return RF_EXIT_USAGE; eo.n_threads = (int)v; }
    if (a.val[O_CTX]) { if (!rf_arg_long("--ctx-size", a.val[O_CTX], 16, 1 << 24, &v)) return RF_EXIT_USAGE; eo.n_ctx = v; }
    if (!rf_cli_gpu_opts(a.val[O_DEVICE], a.val[O_NGL], &eo.gpu)) return RF_EXIT_USAGE;
    eo.gpu_set = true;
    const char *stop = a.val[O_STOP];
    if (stop) { gp.stops = &stop; gp.n_stops = 1; }

    size_t plen;
    char *from_stdin = NULL;
    const char *prompt = a.val[O_PROMPT];
    if (strcmp(prompt, "-") == 0) {
        if (!(from_stdin = read_stdin(&plen))) { rf_cli_error("cannot read the prompt from stdin"); return RF_EXIT_BADINPUT; }
        prompt = from_stdin;
    } else {
        plen = strlen(prompt);
    }
    rf_error err = {0};
    rf_engine *e = NULL;
    if (rf_engine_open(&eo, &e, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        rf_free(from_stdin);
        return RF_EXIT_BADINPUT;
    }
    fprintf(stderr, "rocmforge: %s (%s, %lld layers), backend %s, %d threads, context %lld\n", a.val[O_MODEL],
            e->model->hp.arch_name, (long long)e->model->hp.n_layer, rf_offload_describe(e->offload), e->n_threads,
            (long long)e->n_ctx);
    int32_t *ids = NULL;
    size_t n = 0;
    rc = RF_EXIT_BADINPUT;
    if (rf_tokenize(e->tok, prompt, plen, rf_tokenizer_add_bos(e->tok), !a.val[O_NOSPECIAL], &ids, &n, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        goto out;
    }
    signal(SIGINT, on_sigint);
    rf_gen_stats gs;
    fwrite(prompt, 1, plen, stdout);
    fflush(stdout);
    if (rf_engine_complete(e, ids, n, &gp, print_text, NULL, &gs, &err) != RF_OK) {
        fputc('\n', stdout);
        rf_cli_error("%s", err.msg);
        goto out;
    }
    fputc('\n', stdout);
    fprintf(stderr, "\nrocmforge: load %.2f s | prompt %lld tokens, %.2f tokens/s | generation %lld tokens, %.2f tokens/s | %s\n",
            e->load_s, (long long)gs.n_prompt, gs.prompt_s > 0 ? (double)(gs.n_prompt - gs.n_reused) / gs.prompt_s : 0.0,
            (long long)gs.n_gen, gs.gen_s > 0 ? (double)gs.n_gen / gs.gen_s : 0.0,
            gs.finish == RF_FINISH_STOP ? "stopped" : gs.finish == RF_FINISH_LENGTH ? "length limit" : "interrupted");
    rc = RF_EXIT_OK;
out:
    rf_free(ids);
    rf_free(from_stdin);
    rf_engine_close(e);
    return rc;
}

const rf_cmd rf_cmd_generate = {"generate", "complete a prompt, streaming the text", run, usage};
