/*
 * cmd_serve.c - `rocmforge serve`: the OpenAI-compatible HTTP server.
 *
 * Every option can also come from the environment: --max-queue from
 * ROCMFORGE_MAX_QUEUE, and so on (ROCMFORGE_ + the option name in upper
 * case with '-' as '_'); the command line wins. The server listens before
 * the model loads (/health answers 503 meanwhile), then serves until
 * SIGINT or SIGTERM, when it stops accepting, gives requests in flight
 * --shutdown-grace seconds, ends the rest with a final event and exits 0.
 * A second signal exits at once with status 130.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "engine/engine.h"
#include "gpu_opts.h"
#include "server/server.h"

enum { O_MODEL, O_HOST, O_PORT, O_KEY, O_KEYFILE, O_PARALLEL, O_CTX, O_THREADS, O_NGL, O_ALIAS, O_QUEUE, O_TIMEOUT,
       O_BATCH, O_CHUNK, O_KVBLOCKS, O_MAXBODY, O_HTTPTHREADS, O_CONNTIMEOUT, O_MAXCONN, O_LOGFMT, O_LOGLEVEL, O_GRACE,
       O_CONTEXTDB,
       O_DEVICE, O_TRACE, O_COUNT };

static const rf_opt opts[O_COUNT] = {
    [O_MODEL] = {"--model", "-m", true},         [O_HOST] = {"--host", NULL, true},
    [O_PORT] = {"--port", NULL, true},           [O_KEY] = {"--api-key", NULL, true},
    [O_KEYFILE] = {"--api-key-file", NULL, true}, [O_PARALLEL] = {"--parallel", "-np", true},
    [O_CTX] = {"--ctx-size", "-c", true},        [O_THREADS] = {"--threads", "-t", true},
    [O_NGL] = {"--gpu-layers", "-ngl", true},    [O_ALIAS] = {"--model-alias", NULL, true},
    [O_QUEUE] = {"--max-queue", NULL, true},     [O_TIMEOUT] = {"--timeout", NULL, true},
    [O_BATCH] = {"--batch-size", "-b", true},    [O_CHUNK] = {"--prefill-chunk", NULL, true},
    [O_KVBLOCKS] = {"--kv-blocks", NULL, true},  [O_MAXBODY] = {"--max-body", NULL, true},
    [O_HTTPTHREADS] = {"--http-threads", NULL, true}, [O_CONNTIMEOUT] = {"--conn-timeout", NULL, true},
    [O_MAXCONN] = {"--max-connections", NULL, true}, [O_LOGFMT] = {"--log-format", NULL, true},
    [O_LOGLEVEL] = {"--log-level", NULL, true},  [O_GRACE] = {"--shutdown-grace", NULL, true},
    [O_DEVICE] = {"--device", NULL, true},
    [O_CONTEXTDB] = {"--context-db", NULL, true}, [O_TRACE] = {"--trace", NULL, true},
};

/* One line of help per option, in table order. */
static const char *const help[O_COUNT] = {
    [O_MODEL] = "GGUF model file (required)",
    [O_HOST] = "address to listen on (default 127.0.0.1; 0.0.0.0 for all)",
    [O_PORT] = "TCP port (default 8080; 0 picks a free one)",
    [O_KEY] = "require 'Authorization: Bearer KEY' on /v1/* and /metrics",
    [O_KEYFILE] = "read the API key from the first line of a file",
    [O_PARALLEL] = "sequence slots decoded together (default 4)",
    [O_CTX] = "context size per sequence (default: the model's, at most 4096)",
    [O_THREADS] = "CPU threads (default: physical cores)",
    [O_NGL] = "layers on the GPU, counted from the last: N or auto (default: as many as fit)",
    [O_ALIAS] = "model id in the API (default: the file name without .gguf)",
    [O_QUEUE] = "requests waiting for a slot before 429 (default 64)",
    [O_TIMEOUT] = "seconds per request, queue + generation (default 600; 0: none)",
    [O_BATCH] = "entries per forward pass (default 512)",
    [O_CHUNK] = "prompt tokens per scheduler step (default 128)",
    [O_KVBLOCKS] = "KV cache blocks of 16 positions (default: every slot's full context)",
    [O_MAXBODY] = "request body limit in bytes (default 8388608)",
    [O_HTTPTHREADS] = "HTTP threads (default 4)",
    [O_CONNTIMEOUT] = "seconds before an idle connection is closed (default 30)",
    [O_MAXCONN] = "open connections at most (default 1024)",
    [O_LOGFMT] = "text or json (default text)",
    [O_LOGLEVEL] = "debug, info, warn or error (default info)",
    [O_GRACE] = "seconds requests in flight get at SIGTERM (default 10)",
    [O_DEVICE] = "cpu, gpu or auto (default auto: the GPU when a plugin opens a device, else the CPU)",
    [O_CONTEXTDB] = "context database (created if missing): /v1/context/* and chat \"context\"",
    [O_TRACE] = "write per-op timings as Chrome trace JSON to FILE at shutdown",
};

static void env_name(const char *opt, char *out, size_t n) {
    size_t k = (size_t)snprintf(out, n, "ROCMFORGE_");
    for (const char *p = opt + 2; *p && k + 1 < n; p++) out[k++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    out[k] = '\0';
}

static void usage(FILE *out) {
    fprintf(out, "usage: rocmforge serve -m MODEL.gguf [options]\n\n"
                 "An OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions, /v1/embeddings,\n"
                 "/v1/models, /health, /ready, /metrics and a chat page at /.\n\noptions (environment variable in brackets):\n");
    for (int i = 0; i < O_COUNT; i++) {
        char env[64], name[48];
        env_name(opts[i].name, env, sizeof env);
        snprintf(name, sizeof name, "%s%s%s", opts[i].alias ? opts[i].alias : "", opts[i].alias ? ", " : "", opts[i].name);
        fprintf(out, "  %-22s %s\n  %-22s [%s]\n", name, help[i], "", env);
    }
    fprintf(out, "\nSIGINT/SIGTERM: stop accepting, let requests finish for --shutdown-grace seconds, exit 0.\n");
}

/* The API key from a file: its first line, surrounding blanks removed.
 * Caller frees. */
static char *read_key_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        rf_cli_error("--api-key-file %s: %s", path, strerror(errno));
        return NULL;
    }
    char line[1024];
    char *r = NULL;
    if (fgets(line, sizeof line, f)) {
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        size_t n = strlen(s);
        while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        if (n) r = rf_strndup(s, n);
    }
    fclose(f);
    if (!r) rf_cli_error("--api-key-file %s: no key on its first line", path);
    return r;
}

/* The GPU placement's lines go to the server's log (text or JSON). */
static void gpu_log(void *user, rf_log_level lvl, const char *line) { rf_server_log(user, lvl, "%s", line); }

static sigset_t g_sigs;

/* After the first signal: a second one ends the process at once. */
static void *second_signal(void *arg) {
    (void)arg;
    int sig;
    if (sigwait(&g_sigs, &sig) == 0) {
        static const char msg[] = "rocmforge: second signal, exiting now\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(130);
    }
    return NULL;
}

static int run(int argc, char **argv) {
    rf_args a;
    bool want_help;
    int rc = rf_args_parse(argc, argv, opts, O_COUNT, &a, &want_help);
    if (rc) return rc;
    if (want_help) {
        usage(stdout);
        return RF_EXIT_OK;
    }
    if (a.n_pos) {
        rf_cli_error("serve takes no positional arguments ('%s')", a.pos[0]);
        return RF_EXIT_USAGE;
    }
    for (int i = 0; i < O_COUNT; i++) {
        if (a.val[i]) continue;
        char env[64];
        env_name(opts[i].name, env, sizeof env);
        const char *v = getenv(env);
        if (v && *v) a.val[i] = v;
    }
    if (!a.val[O_MODEL]) {
        rf_cli_error("serve needs -m MODEL (or ROCMFORGE_MODEL)");
        usage(stderr);
        return RF_EXIT_USAGE;
    }
    long v;
    double d;
    rf_server_opts so = {.host = a.val[O_HOST], .port = 8080, .model_alias = a.val[O_ALIAS], .model_path = a.val[O_MODEL],
                         .request_timeout_s = 600, .log_level = RF_LOG_INFO,
                         .context_db = a.val[O_CONTEXTDB]};
    rf_engine_opts eo = {.model_path = a.val[O_MODEL], .progress = false, .trace_path = a.val[O_TRACE]};
    int parallel = 4;
    int64_t n_ctx = 0, n_batch = 512, kv_blocks = 0;
    rf_sched_opts sch = {.prefill_chunk = 128, .max_queue = 64};
    double grace = 10;
    if (a.val[O_PORT]) { if (!rf_arg_long("--port", a.val[O_PORT], 0, 65535, &v)) return RF_EXIT_USAGE; so.port = (int)v; }
    if (a.val[O_PARALLEL]) { if (!rf_arg_long("--parallel", a.val[O_PARALLEL], 1, 256, &v)) return RF_EXIT_USAGE; parallel = (int)v; }
    if (a.val[O_CTX]) { if (!rf_arg_long("--ctx-size", a.val[O_CTX], 16, 1 << 24, &v)) return RF_EXIT_USAGE; n_ctx = v; }
    if (a.val[O_THREADS]) { if (!rf_arg_long("--threads", a.val[O_THREADS], 1, 1024, &v)) return RF_EXIT_USAGE; eo.n_threads = (int)v; }
    if (!rf_cli_gpu_opts(a.val[O_DEVICE], a.val[O_NGL], &eo.gpu)) return RF_EXIT_USAGE;
    eo.gpu_set = true;
    eo.gpu_defer = true; /* the server's context below gets the GPU layers */
    if (a.val[O_QUEUE]) { if (!rf_arg_long("--max-queue", a.val[O_QUEUE], 1, 1 << 20, &v)) return RF_EXIT_USAGE; sch.max_queue = (int)v; }
    if (a.val[O_TIMEOUT]) { if (!rf_arg_double("--timeout", a.val[O_TIMEOUT], &d) || d < 0) return RF_EXIT_USAGE; so.request_timeout_s = d; }
    if (a.val[O_BATCH]) { if (!rf_arg_long("--batch-size", a.val[O_BATCH], 1, 1 << 16, &v)) return RF_EXIT_USAGE; n_batch = v; }
    if (a.val[O_CHUNK]) { if (!rf_arg_long("--prefill-chunk", a.val[O_CHUNK], 1, 1 << 16, &v)) return RF_EXIT_USAGE; sch.prefill_chunk = v; }
    if (a.val[O_KVBLOCKS]) { if (!rf_arg_long("--kv-blocks", a.val[O_KVBLOCKS], 1, 1L << 30, &v)) return RF_EXIT_USAGE; kv_blocks = v; }
    if (a.val[O_MAXBODY]) { if (!rf_arg_long("--max-body", a.val[O_MAXBODY], 1024, 1L << 30, &v)) return RF_EXIT_USAGE; so.max_body = (size_t)v; }
    if (a.val[O_HTTPTHREADS]) { if (!rf_arg_long("--http-threads", a.val[O_HTTPTHREADS], 1, 256, &v)) return RF_EXIT_USAGE; so.http_threads = (int)v; }
    if (a.val[O_CONNTIMEOUT]) { if (!rf_arg_long("--conn-timeout", a.val[O_CONNTIMEOUT], 1, 86400, &v)) return RF_EXIT_USAGE; so.conn_timeout_s = (int)v; }
    if (a.val[O_MAXCONN]) { if (!rf_arg_long("--max-connections", a.val[O_MAXCONN], 1, 1 << 20, &v)) return RF_EXIT_USAGE; so.max_connections = (int)v; }
    if (a.val[O_GRACE]) { if (!rf_arg_double("--shutdown-grace", a.val[O_GRACE], &grace) || grace < 0) return RF_EXIT_USAGE; }
    if (a.val[O_LOGFMT]) {
        if (strcmp(a.val[O_LOGFMT], "text") == 0) so.log_format = RF_LOGFMT_TEXT;
        else if (strcmp(a.val[O_LOGFMT], "json") == 0) so.log_format = RF_LOGFMT_JSON;
        else { rf_cli_error("--log-format: '%s' is not text or json", a.val[O_LOGFMT]); return RF_EXIT_USAGE; }
    }
    if (a.val[O_LOGLEVEL]) {
        static const char *const names[] = {"debug", "info", "warn", "error"};
        int lv = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(a.val[O_LOGLEVEL], names[i]) == 0) lv = i;
        if (lv < 0) { rf_cli_error("--log-level: '%s' is not debug, info, warn or error", a.val[O_LOGLEVEL]); return RF_EXIT_USAGE; }
        so.log_level = (rf_log_level)lv;
        rf_log_set_level((rf_log_level)lv);
    }
    char *key = NULL;
    if (a.val[O_KEYFILE]) {
        if (!(key = read_key_file(a.val[O_KEYFILE]))) return RF_EXIT_USAGE;
        so.api_key = key;
    } else {
        so.api_key = a.val[O_KEY];
    }
    if (so.host && strcmp(so.host, "127.0.0.1") != 0 && strcmp(so.host, "localhost") != 0 && strcmp(so.host, "::1") != 0 &&
        !(so.api_key && *so.api_key))
        fprintf(stderr, "rocmforge: warning: listening on %s without --api-key\n", so.host);

    /* every thread started from here on inherits the blocked signals; this
     * one takes them with sigwait */
    sigemptyset(&g_sigs);
    sigaddset(&g_sigs, SIGINT);
    sigaddset(&g_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &g_sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    rf_error err = {0};
    rf_server *srv = NULL;
    rf_engine *e = NULL;
    rf_ctx *ctx = NULL;
    rf_tmpl *tmpl = NULL;
    rf_sched *sched = NULL;
    rc = RF_EXIT_BADINPUT;
    if (rf_server_start(&so, &srv, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        goto out;
    }
    /* the engine's own context stays minimal; the server's context (all
     * slots, the configured KV pool) is created below */
    eo.n_seq = 1;
    eo.n_ctx = 16;
    eo.n_batch = 1;
    eo.gpu.log = gpu_log;
    eo.gpu.log_user = srv;
    if (rf_engine_open(&eo, &e, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        goto out;
    }
    if (n_ctx == 0) n_ctx = e->model->hp.n_ctx_train > 0 && e->model->hp.n_ctx_train < 4096 ? e->model->hp.n_ctx_train : 4096;
    rf_ctx_params cp = {.n_ctx = n_ctx, .n_seq = parallel, .n_batch = n_batch, .n_kv_blocks = kv_blocks};
    if (rf_ctx_create(e->model, &cp, &e->be, &ctx, &err) != RF_OK ||
        rf_engine_attach(e, ctx, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        goto out;
    }
    const char *src = rf_tokenizer_chat_template(e->tok);
    const char *family = NULL;
    if (rf_tmpl_load_with_fallback(src, src ? strlen(src) : 0, NULL, &tmpl, &family, &err) != RF_OK) {
        rf_cli_error("chat template: %s", err.msg);
        goto out;
    }
    const char *tsrc = family && strcmp(family, "model") == 0 ? src : rf_tmpl_builtin(family);
    sch.n_batch = n_batch;
    sch.n_ctx = n_ctx;
    rf_server_sched_opts(srv, &sch);
    if (rf_sched_create(ctx, e->tok, &sch, &sched, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        goto out;
    }
    if (rf_server_attach(srv, e, sched, tmpl, tsrc, &err) != RF_OK) {
        rf_cli_error("%s", err.msg);
        goto out;
    }
    const rf_kv_config *kc = rf_kv_get_config(rf_ctx_kv(ctx));
    rf_server_log(srv, RF_LOG_INFO,
            "serving %s (%s, %lld layers) on http://%s:%d | backend %s, %d threads | %d slots x %lld context, "
            "%lld KV blocks | template %s",
            a.val[O_MODEL], e->model->hp.arch_name, (long long)e->model->hp.n_layer, so.host ? so.host : "127.0.0.1",
            rf_server_port(srv), rf_offload_describe(e->offload), e->n_threads, parallel, (long long)n_ctx,
            (long long)kc->n_blocks, family ? family : "?");
    int sig = 0;
    sigwait(&g_sigs, &sig);
    rf_server_log(srv, RF_LOG_INFO, "%s received", sig == SIGINT ? "SIGINT" : "SIGTERM");
    pthread_t t2;
    if (pthread_create(&t2, NULL, second_signal, NULL) == 0) pthread_detach(t2);
    rf_server_shutdown(srv, grace);
    rc = RF_EXIT_OK;
out:
    rf_server_shutdown(srv, 0);
    rf_sched_free(sched);
    rf_server_free(srv);
    rf_tmpl_free(tmpl);
    rf_ctx_free(ctx);
    rf_engine_close(e);
    rf_free(key);
    return rc;
}

const rf_cmd rf_cmd_serve = {"serve", "OpenAI-compatible HTTP server (chat, completions, embeddings)", run, usage};
