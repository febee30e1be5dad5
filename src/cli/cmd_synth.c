/*
 * cmd_synth.c - `rocmforge synth`: write a random-weight model of a real
 * shape (see src/model/synth.h) for benchmarks and tests.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "model/synth.h"

enum { O_SHAPE, O_CONFIG, O_TYPE, O_OUT, O_VOCAB, O_SEED, O_THREADS, O_LAYERS, O_POOL, O_COUNT };
static const rf_opt opts[O_COUNT] = {
    [O_SHAPE] = {"--shape", NULL, true},     [O_CONFIG] = {"--config", NULL, true},
    [O_TYPE] = {"--type", "-t", true},       [O_OUT] = {"--out", "-o", true},
    [O_VOCAB] = {"--vocab", NULL, true},     [O_SEED] = {"--seed", NULL, true},
    [O_THREADS] = {"--threads", NULL, true}, [O_LAYERS] = {"--layers", NULL, true},
    [O_POOL] = {"--row-pool", NULL, true},
};

static void usage(FILE *out) {
    fprintf(out, "usage: rocmforge synth (--shape NAME | --config FILE.json) --type TYPE -o OUT.gguf\n"
                 "                       [--vocab VOCAB.gguf] [--seed N] [--threads N] [--layers N] [--row-pool N]\n\n"
                 "Writes a model with random weights and the real tensor shapes and metadata.\n"
                 "  --shape NAME     one of:");
    size_t n;
    const rf_synth_shape *s = rf_synth_shapes(&n);
    for (size_t i = 0; i < n; i++) fprintf(out, " %s", s[i].name);
    fprintf(out, "\n"
                 "  --config FILE    a JSON shape: {\"arch\": \"llama\", \"n_vocab\": .., \"n_embd\": .., \"n_layer\": ..,\n"
                 "                   \"n_head\": .., \"n_head_kv\": .., \"n_ff\": .., \"head_dim\", \"n_ctx\", \"rope_base\",\n"
                 "                   \"norm_eps\", \"tied_embd\", \"qkv_bias\", \"qk_norm\", \"gemma_norms\", \"n_expert\",\n"
                 "                   \"n_expert_used\", \"sliding_window\", \"rope_scale_llama3\"}\n"
                 "  --type TYPE      weight type or mix (default Q4_0):\n");
    rf_qtarget_list(out);
    fprintf(out, "  --vocab FILE     copy the tokenizer of a real GGUF (default: a generated vocabulary\n"
                 "                   of the shape's size: specials, 256 byte tokens, filler pieces)\n"
                 "  --seed N         random seed (default: from the clock)\n"
                 "  --threads N      worker threads (default: physical cores)\n"
                 "  --layers N       write only N layers (quick tests of big shapes)\n"
                 "  --row-pool N     each matrix repeats N distinct random rows in a seeded order\n"
                 "                   (benchmark models: quantized in seconds at any type, the same speed to run)\n");
}

static int run(int argc, char **argv) {
    rf_args a;
    bool help;
    int rc = rf_args_parse(argc, argv, opts, O_COUNT, &a, &help);
    if (rc) return rc;
    if (help) { usage(stdout); return RF_EXIT_OK; }
    if (a.n_pos) { rf_cli_error("synth takes no positional arguments"); return RF_EXIT_USAGE; }
    if (!a.val[O_OUT]) { rf_cli_error("synth needs -o OUT.gguf"); usage(stderr); return RF_EXIT_USAGE; }
    if (!!a.val[O_SHAPE] == !!a.val[O_CONFIG]) {
        rf_cli_error("synth needs exactly one of --shape or --config");
        return RF_EXIT_USAGE;
    }
    rf_synth_opts o = {0};
    rf_error err = {0};
    static char name_buf[64], arch_buf[32];
    if (a.val[O_SHAPE]) {
        const rf_synth_shape *s = rf_synth_find_shape(a.val[O_SHAPE]);
        if (!s) { rf_cli_error("unknown shape '%s' (see --help)", a.val[O_SHAPE]); return RF_EXIT_USAGE; }
        o.shape = *s;
    } else if (rf_synth_load_config(a.val[O_CONFIG], &o.shape, name_buf, sizeof name_buf, arch_buf,
                                    sizeof arch_buf, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        return RF_EXIT_BADINPUT;
    }
    rf_status st = rf_qtarget_parse(a.val[O_TYPE] ? a.val[O_TYPE] : "Q4_0", &o.target, &err);
    if (st != RF_OK) { rf_cli_error("%s", err.msg); return RF_EXIT_USAGE; }
    long v;
    o.n_threads = rf_cpu_physical_cores();
    if (a.val[O_THREADS]) {
        if (!rf_arg_long("--threads", a.val[O_THREADS], 1, 1024, &v)) return RF_EXIT_USAGE;
        o.n_threads = (int)v;
    }
    if (a.val[O_LAYERS]) {
        if (!rf_arg_long("--layers", a.val[O_LAYERS], 1, 100000, &v)) return RF_EXIT_USAGE;
        o.n_layer_override = v;
    }
    if (a.val[O_POOL]) {
        if (!rf_arg_long("--row-pool", a.val[O_POOL], 1, 1 << 20, &v)) return RF_EXIT_USAGE;
        o.row_pool = v;
    }
    if (a.val[O_SEED]) {
        char *end;
        o.seed = strtoull(a.val[O_SEED], &end, 0);
        if (*end || !a.val[O_SEED][0]) { rf_cli_error("--seed: '%s' is not a number", a.val[O_SEED]); return RF_EXIT_USAGE; }
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        o.seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 24);
    }
    o.vocab_path = a.val[O_VOCAB];
    o.out_path = a.val[O_OUT];
    o.progress = isatty(2);
    double t0 = rf_time_now();
    st = rf_synth_write(&o, &err);
    if (st != RF_OK) {
        rf_cli_error("%s", err.msg);
        remove(o.out_path);
        return st == RF_E_INVAL || st == RF_E_UNSUPPORTED ? RF_EXIT_USAGE : RF_EXIT_BADINPUT;
    }
    fprintf(stderr, "rocmforge: wrote %s (%s, %s, seed %llu) in %.1f s\n", o.out_path, o.shape.name,
            o.target.name, (unsigned long long)o.seed, rf_time_now() - t0);
    return RF_EXIT_OK;
}

const rf_cmd rf_cmd_synth = {"synth", "write a random-weight model of a real shape (for benchmarks)", run, usage};
