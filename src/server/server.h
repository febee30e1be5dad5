/*
 * server.h - the OpenAI-compatible HTTP server of `rocmforge serve`.
 *
 * HTTP/1.1 through libmicrohttpd (a thread pool of epoll loops; keep-alive,
 * chunked responses, connection memory and idle-time limits), JSON through
 * jansson. Routes: POST /v1/chat/completions, /v1/completions,
 * /v1/embeddings; GET /v1/models[/{id}], /health, /ready, /metrics, and /
 * (an embedded chat page); with a context database the /v1/context/ routes
 * (context_api.c). Generation runs in the scheduler (src/sched);
 * requests wait on it suspended, so a slow model never holds an HTTP thread.
 *
 * Life cycle: rf_server_start listens at once (/health answers 503 while
 * the model loads), rf_server_attach hands over the loaded engine, and
 * rf_server_shutdown stops accepting, lets in-flight requests finish for a
 * grace period, ends the rest with a final event, and stops the daemon.
 */
#ifndef RF_SERVER_H
#define RF_SERVER_H

#include "engine/engine.h"
#include "sched/sched.h"
#include "template/template.h"

typedef enum rf_log_format { RF_LOGFMT_TEXT = 0, RF_LOGFMT_JSON = 1 } rf_log_format;

typedef struct rf_server_opts {
    const char *host;          /* "127.0.0.1" when NULL */
    int port;                  /* 0: any free port (rf_server_port tells) */
    const char *api_key;       /* NULL or "": no authentication */
    const char *model_alias;   /* the model id clients use; NULL: the file name without .gguf */
    const char *model_path;
    int http_threads;          /* 0: 4 */
    int conn_timeout_s;        /* idle connection timeout (0: 30) */
    int max_connections;       /* 0: 1024 */
    size_t max_body;           /* request body limit in bytes (0: 8 MiB) */
    size_t max_header;         /* per-connection memory for headers and buffers (0: 64 KiB) */
    double request_timeout_s;  /* per request, queue + generation (<= 0: none) */
    int max_n;                 /* largest n (choices) per request (0: 8) */
    rf_log_format log_format;
    rf_log_level log_level;
    const char *context_db;    /* NULL: no context engine; else its SQLite file (created if missing) */
} rf_server_opts;

typedef struct rf_server rf_server;

/* Binds and starts serving. The opts strings are copied. */
rf_status rf_server_start(const rf_server_opts *o, rf_server **out, rf_error *err);
int rf_server_port(const rf_server *srv);
/* Makes the server ready: e, s and tmpl are borrowed and must outlive the
 * server's use of them (until rf_server_shutdown returns). */
rf_status rf_server_attach(rf_server *srv, rf_engine *e, rf_sched *s, rf_tmpl *tmpl, const char *tmpl_src,
                           rf_error *err);
/* Points the scheduler's latency observer at the server's metrics and its
 * log at the server's log. */
void rf_server_sched_opts(rf_server *srv, rf_sched_opts *o);
/* A line in the server's log format (text or JSON). */
void rf_server_log(rf_server *srv, rf_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Stops accepting connections and new requests (503), lets the scheduler
 * drain for grace_s seconds, ends what is left, waits for the streams to
 * be written, and stops the daemon. */
void rf_server_shutdown(rf_server *srv, double grace_s);
void rf_server_free(rf_server *srv); /* accepts NULL; shuts down first if needed */

#endif /* RF_SERVER_H */
