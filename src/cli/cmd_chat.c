/*
 * cmd_chat.c - `rocmforge chat`: an interactive multi-turn chat through the
 * model's chat template, with line editing and history (libedit). Each turn
 * re-renders the whole conversation; the KV cache keeps the prefix the turns
 * share, so only the new part is computed. Ctrl-C stops the current answer
 * and returns to the prompt; Ctrl-D or /exit quits; /reset starts over.
 */
#include <editline/readline.h>
#include <jansson.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "engine/engine.h"
#include "gpu_opts.h"
#include "template/template.h"

enum { O_MODEL, O_SYSTEM, O_N, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_SEED, O_THREADS, O_CTX, O_REPEAT, O_DEVICE, O_NGL,
       O_COUNT };
static const rf_opt opts[O_COUNT] = {
    [O_MODEL] = {"--model", "-m", true},     [O_SYSTEM] = {"--system", NULL, true},
    [O_N] = {"--n-predict", "-n", true},     [O_TEMP] = {"--temp", NULL, true},
    [O_TOPK] = {"--top-k", NULL, true},      [O_TOPP] = {"--top-p", NULL, true},
    [O_MINP] = {"--min-p", NULL, true},      [O_SEED] = {"--seed", NULL, true},
    [O_THREADS] = {"--threads", "-t", true}, [O_CTX] = {"--ctx-size", "-c", true},
    [O_REPEAT] = {"--repeat-penalty", NULL, true}, [O_DEVICE] = {"--device", NULL, true},
    [O_NGL] = {"--gpu-layers", "-ngl", true},
};

bool rf_cli_sample_params(const rf_args *a, int o_temp, int o_topk, int o_topp, int o_minp, int o_seed,
                          int o_repeat, rf_sample_params *sp);

static void usage(FILE *out) {
    fprintf(out, "usage: rocmforge chat -m MODEL.gguf [--system TEXT] [-n N] [--temp T] [--top-k K] [--top-p P]\n"
                 "                      [--min-p M] [--seed S] [--repeat-penalty R] [--threads N] [--ctx-size N]\n"
                 "                      [--device cpu|gpu|auto] [--gpu-layers N|auto]\n\n"
                 "Interactive chat through the model's chat template (a built-in one for the model's\n"
                 "family if it has none or ours cannot run it). Ctrl-C stops the current answer,\n"
                 "Ctrl-D or /exit quits, /reset clears the conversation. -n limits each answer\n"
                 "(default 512 tokens).\n");
    fputs("\n" RF_CLI_GPU_HELP, out);
}

static volatile int g_cancel;
static void on_sigint(int sig) { (void)sig; g_cancel = 1; }

typedef struct answer {
    char *text;
    size_t len, cap;
} answer;

static bool on_text(void *ctx, const char *text, size_t len) {
    answer *a = ctx;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    if (a->len + len + 1 > a->cap) {
        size_t cap = (a->len + len + 1) * 2;
        char *n = rf_realloc(a->text, cap);
        if (!n) return false;
        a->text = n;
        a->cap = cap;
    }
    memcpy(a->text + a->len, text, len);
    a->len += len;
    a->text[a->len] = '\0';
    return true;
}

static const char *token_text(const rf_tokenizer *t, int32_t id) {
    size_t n;
    const char *s = id >= 0 ? rf_token_text(t, id, &n) : NULL;
    return s ? s : "";
}

/* Renders the conversation and tokenizes it: BOS is added by the tokenizer
 * only when the template did not already write it. */
static rf_status prompt_ids(rf_engine *e, const rf_tmpl *tm, json_t *messages, int32_t **ids, size_t *n, rf_error *err) {
    json_t *ctx = json_pack("{s:O,s:b,s:s,s:s}", "messages", messages, "add_generation_prompt", 1, "bos_token",
                            token_text(e->tok, rf_token_bos(e->tok)), "eos_token", token_text(e->tok, rf_token_eos(e->tok)));
    if (!ctx) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    char *text = NULL;
    size_t len = 0;
    rf_status st = rf_tmpl_render(tm, ctx, NULL, &text, &len, err);
    json_decref(ctx);
    if (st != RF_OK) return st;
    const char *bos = token_text(e->tok, rf_token_bos(e->tok));
    bool has_bos = bos[0] && strncmp(text, bos, strlen(bos)) == 0;
    st = rf_tokenize(e->tok, text, len, rf_tokenizer_add_bos(e->tok) && !has_bos, true, ids, n, err);
    rf_free(text);
    return st;
}

static json_t *new_conversation(const char *system) {
    json_t *m = json_array();
    if (m && system) json_array_append_new(m, json_pack("{s:s,s:s}", "role", "system", "content", system));
    return m;
}

static int run(int argc, char **argv) {
    rf_args a;
    bool help;
    int rc = rf_args_parse(argc, argv, opts, O_COUNT, &a, &help);
    if (rc) return rc;
    if (help) { usage(stdout); return RF_EXIT_OK; }
    if (!a.val[O_MODEL] || a.n_pos) { rf_cli_error("chat needs -m MODEL"); usage(stderr); return RF_EXIT_USAGE; }
    rf_gen_params gp = {.n_predict = 512, .cancel = &g_cancel};
    long v;
    if (!rf_cli_sample_params(&a, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_SEED, O_REPEAT, &gp.sample)) return RF_EXIT_USAGE;
    if (a.val[O_N]) { if (!rf_arg_long("--n-predict", a.val[O_N], -1, 1 << 24, &v)) return RF_EXIT_USAGE; gp.n_predict = (int32_t)v; }
    rf_engine_opts eo = {.model_path = a.val[O_MODEL], .progress = isatty(2)};
    if (a.val[O_THREADS]) { if (!rf_arg_long("--threads", a.val[O_THREADS], 1, 1024, &v)) return RF_EXIT_USAGE; eo.n_threads = (int)v; }
    if (a.val[O_CTX]) { if (!rf_arg_long("--ctx-size", a.val[O_CTX], 64, 1 << 24, &v)) return RF_EXIT_USAGE; eo.n_ctx = v; }
    if (!rf_cli_gpu_opts(a.val[O_DEVICE], a.val[O_NGL], &eo.gpu)) return RF_EXIT_USAGE;
    eo.gpu_set = true;

    rf_error err = {0};
    rf_engine *e = NULL;
    if (rf_engine_open(&eo, &e, &err) != RF_OK) { rf_cli_error("%s", err.msg); return RF_EXIT_BADINPUT; }
    const char *src = rf_tokenizer_chat_template(e->tok);
    rf_tmpl *tm = NULL;
    const char *family = NULL;
    /* the family of a model without a usable template, by architecture;
     * chatml (the default) serves qwen and most others */
    const char *arch = e->model->hp.arch_name, *hint = NULL;
    if (strncmp(arch, "gemma", 5) == 0) hint = "gemma";
    else if (strcmp(arch, "phi3") == 0) hint = "phi3";
    if (rf_tmpl_load_with_fallback(src, src ? strlen(src) : 0, hint, &tm, &family, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        rf_engine_close(e);
        return RF_EXIT_BADINPUT;
    }
    fprintf(stderr, "rocmforge: chat with %s (%s), template: %s. Ctrl-C stops an answer, Ctrl-D quits.\n",
            a.val[O_MODEL], e->model->hp.arch_name, family);
    json_t *messages = new_conversation(a.val[O_SYSTEM]);
    bool tty = isatty(0);
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_sigint;
    rc = RF_EXIT_OK;
    for (;;) {
        char *line = tty ? readline("> ") : NULL;
        if (!tty) {
            /* piped input: one message per line */
            static char buf[65536];
            if (!fgets(buf, sizeof buf, stdin)) break;
            buf[strcspn(buf, "\n")] = '\0';
            line = strdup(buf);
        }
        if (!line) break; /* Ctrl-D */
        if (!line[0]) { free(line); continue; }
        if (tty) add_history(line);
        if (strcmp(line, "/exit") == 0 || strcmp(line, "/quit") == 0) { free(line); break; }
        if (strcmp(line, "/reset") == 0) {
            json_decref(messages);
            messages = new_conversation(a.val[O_SYSTEM]);
            free(line);
            fprintf(stderr, "(conversation cleared)\n");
            continue;
        }
        json_array_append_new(messages, json_pack("{s:s,s:s}", "role", "user", "content", line));
        free(line);
        int32_t *ids = NULL;
        size_t n = 0;
        if (prompt_ids(e, tm, messages, &ids, &n, &err) != RF_OK) {
            rf_cli_error("%s", err.msg);
            json_array_remove(messages, json_array_size(messages) - 1);
            continue;
        }
        answer ans = {0};
        rf_gen_stats gs;
        g_cancel = 0;
        sigaction(SIGINT, &sa, &old);
        rf_status st = rf_engine_complete(e, ids, n, &gp, on_text, &ans, &gs, &err);
        sigaction(SIGINT, &old, NULL);
        rf_free(ids);
        fputc('\n', stdout);
        if (st != RF_OK) {
            rf_cli_error("%s", err.msg);
            json_array_remove(messages, json_array_size(messages) - 1);
            rf_free(ans.text);
            if (st == RF_E_RANGE) fprintf(stderr, "(the conversation no longer fits the context: /reset)\n");
            continue;
        }
        if (gs.finish == RF_FINISH_CANCEL) fprintf(stderr, "(stopped)\n");
        json_array_append_new(messages, json_pack("{s:s,s:s}", "role", "assistant", "content", ans.text ? ans.text : ""));
        rf_free(ans.text);
        if (tty)
            fprintf(stderr, "[%lld prompt tokens (%lld reused), %lld generated, %.1f tokens/s]\n", (long long)gs.n_prompt,
                    (long long)gs.n_reused, (long long)gs.n_gen, gs.gen_s > 0 ? (double)gs.n_gen / gs.gen_s : 0.0);
    }
    json_decref(messages);
    rf_tmpl_free(tm);
    rf_engine_close(e);
    return rc;
}

const rf_cmd rf_cmd_chat = {"chat", "interactive chat through the model's chat template", run, usage};
