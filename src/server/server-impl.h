/*
 * server-impl.h - what the files of src/server share: the server and
 * request structs, the byte buffer, logging with request ids, metrics, the
 * OpenAI call (openai.c), prompt building (prompt.c) and the web page.
 * Nothing outside src/server includes this.
 */
#ifndef RF_SERVER_IMPL_H
#define RF_SERVER_IMPL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "server.h"

/* ---- byte buffer ------------------------------------------------------------ */

typedef struct srv_buf {
    char *p;
    size_t len, cap;
    bool oom; /* an append failed; the content is incomplete */
} srv_buf;

void sbuf_put(srv_buf *b, const char *s, size_t n);
void sbuf_puts(srv_buf *b, const char *s);
void sbuf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_free(srv_buf *b);

/* A JSON string from bytes that may not be valid UTF-8 (a token piece):
 * invalid sequences become U+FFFD. New reference; NULL on OOM. */
json_t *json_lossy_string(const char *s, size_t n);

/* ---- logging ------------------------------------------------------------------ */

/* One line to stderr in the server's format (text or JSON), with the
 * request id when rid is not NULL. */
void srv_log(rf_server *srv, rf_log_level lvl, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- metrics (metrics.c) -------------------------------------------------------- */

enum { M_EP_MAX = 16, M_STATUS_MAX = 48, M_BUCKETS = 16 };

typedef struct srv_hist {
    const double *bounds;
    int n;
    uint64_t counts[M_BUCKETS]; /* cumulative at render time, per bucket here */
    uint64_t count;
    double sum;
} srv_hist;

typedef struct srv_metrics_data {
    struct { int ep, status; uint64_t n; } req[M_EP_MAX * 8];
    int n_req;
    srv_hist ttft, itl, step, duration;
} srv_metrics_data;

typedef struct srv_metrics {
    pthread_mutex_t mu;
    srv_metrics_data d; /* under mu */
} srv_metrics;

void metrics_init(srv_metrics *m);
void metrics_free(srv_metrics *m);
void metrics_request(srv_metrics *m, int ep, int status, double seconds);
/* rf_sched observer: ud is the srv_metrics. */
void metrics_observe(void *ud, rf_sched_obs what, double seconds);
/* Prometheus text exposition format 0.0.4 into b. */
void metrics_render(rf_server *srv, srv_buf *b);

/* ---- requests --------------------------------------------------------------------- */

typedef struct api_call api_call;
typedef struct srv_req srv_req;

typedef struct srv_route {
    const char *method;
    const char *path;
    bool prefix;      /* path is a prefix (GET /v1/models/{id}) */
    bool auth;        /* needs the API key when one is set */
    bool needs_model; /* 503 until the model is loaded */
    const char *label; /* endpoint label in metrics and logs */
    /* runs once the body is complete; queues a response or starts jobs */
    enum MHD_Result (*handler)(srv_req *rq);
} srv_route;

enum { PH_NEW, PH_BODY, PH_WAIT, PH_STREAM, PH_DONE };

struct srv_req {
    atomic_int refs;    /* MHD's, the stream response's, one per job */
    rf_server *srv;
    struct MHD_Connection *conn;
    pthread_mutex_t mu; /* suspended, pending, closed */
    bool suspended, pending, closed;
    char id[40];        /* request id */
    char method[16];
    char path[256];
    const srv_route *route;
    int route_idx;
    double t0;
    int phase;
    int status;         /* HTTP status sent */
    srv_buf body;
    uint64_t discarded; /* body bytes dropped past the limit */
    bool too_big;
    bool stream;        /* set before any job is submitted */
    api_call *call;     /* owned; NULL for plain routes */
    srv_buf out;        /* SSE bytes not yet written */
    size_t out_off;
    bool stream_over;   /* [DONE] produced */
    srv_req *reg_prev, *reg_next; /* registry of requests with jobs */
};

struct rf_server {
    rf_server_opts o;
    struct MHD_Daemon *d;
    int port;
    atomic_bool ready;     /* model loaded */
    atomic_bool draining;  /* SIGTERM: refuse new work */
    atomic_bool stopping;  /* about to stop the daemon: never suspend again */
    /* attached at rf_server_attach; read-only after */
    rf_engine *eng;
    rf_sched *sched;
    rf_tmpl *tmpl;
    bool tmpl_tools, tmpl_tool_calls; /* the template renders tools / tool_calls itself */
    char **specials;       /* control-token texts, for prompt-injection checks */
    size_t *special_len;
    int n_specials;
    char model_id[256];
    char model_file[256];
    int64_t created;
    /* live requests with jobs (watchdog, shutdown) */
    pthread_mutex_t reg_mu;
    srv_req *reg_head;
    int64_t n_reg;
    pthread_t watchdog;
    bool watchdog_started;
    atomic_bool watchdog_quit;
    srv_metrics metrics;
    pthread_mutex_t log_mu;
    /* the context engine (--context-db), opened at attach; NULL without it */
    struct rf_cdb *cdb;
    struct rf_cembed *cembed;
};

void req_ref(srv_req *rq);
void req_unref(srv_req *rq);
/* Registers a request that now has jobs (watchdog, shutdown). */
void req_register(srv_req *rq);
/* Job notify callback (ud = srv_req): wakes the connection. */
void req_notify(void *ud);
/* Queues a complete response. body is copied. */
enum MHD_Result respond(srv_req *rq, int status, const char *ctype, const char *body, size_t len);
/* OpenAI's error body. param/code may be NULL. */
enum MHD_Result respond_error(srv_req *rq, int status, const char *type, const char *param, const char *code,
                              const char *fmt, ...) __attribute__((format(printf, 6, 7)));
enum MHD_Result respond_json(srv_req *rq, int status, json_t *v); /* takes ownership of v */
/* Starts an SSE response fed by api_stream_pull. */
enum MHD_Result respond_stream(srv_req *rq);
/* Non-stream: waits (suspended) until every job is done, then sends
 * api_final's response. */
enum MHD_Result respond_when_done(srv_req *rq);
/* The route table's metric labels: index -> label ("other" outside). */
const char *srv_route_label(int i);
int srv_route_count(void);

/* ---- the OpenAI calls (openai.c) ------------------------------------------------------ */

enum MHD_Result api_chat(srv_req *rq);
enum MHD_Result api_completions(srv_req *rq);
enum MHD_Result api_embeddings(srv_req *rq);
enum MHD_Result api_models(srv_req *rq);
enum MHD_Result api_model_get(srv_req *rq);

bool api_done(api_call *c);
/* The final response of a non-stream call. */
enum MHD_Result api_final(srv_req *rq);
/* Appends the SSE events that are ready; true once [DONE] was appended. */
bool api_stream_pull(srv_req *rq, srv_buf *out);
void api_cancel(api_call *c);
/* Usage for the access log. */
void api_usage(api_call *c, int64_t *n_prompt, int64_t *n_gen, double *ttft, const char **finish);
void api_free(api_call *c); /* cancels and releases the jobs; accepts NULL */

/* ---- prompts (prompt.c) ------------------------------------------------------------- */

typedef struct api_err {
    int status;
    const char *type, *param, *code;
    char msg[400];
} api_err;

bool api_fail(api_err *e, int status, const char *param, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Finds control-token texts and whether the template renders tools. */
rf_status prompt_setup(rf_server *srv, const char *tmpl_src, rf_error *err);
void prompt_teardown(rf_server *srv);
/* Renders messages (and tools, when tools_mode says so) through the chat
 * template and tokenizes the result; special-token text inside message
 * content stays plain text. *ids: caller frees. */
bool prompt_chat(rf_server *srv, const json_t *messages, const json_t *tools, bool tools_in_prompt, int32_t **ids,
                 size_t *n, api_err *e);
/* Parses tool calls out of generated text: <tool_call>{...}</tool_call>
 * blocks or a bare {"name", "arguments"} object naming a known tool.
 * Returns a new array of OpenAI tool_call objects, or NULL when the text
 * holds none. *content_out gets the text outside the calls (caller frees,
 * may be NULL). */
json_t *prompt_parse_tool_calls(const char *text, size_t len, const json_t *tools, const char *id_seed,
                                char **content_out);

/* ---- the context engine (context_api.c) ----------------------------------------------------- */

/* Opens --context-db and the embedder over the attached model (no-op without it). */
rf_status ctxapi_setup(rf_server *srv, rf_error *err);
void ctxapi_teardown(rf_server *srv);
enum MHD_Result api_context_add(srv_req *rq);
enum MHD_Result api_context_search(srv_req *rq);
enum MHD_Result api_context_doc(srv_req *rq); /* GET and DELETE /v1/context/documents/{id} */
/* The chat request's "context" field: retrieval into *messages (a new
 * array, or NULL when unchanged) and what the answer reports (*out, caller
 * frees with ctxapi_chat_free; NULL without the field). */
typedef struct ctxapi_chat ctxapi_chat;
bool ctxapi_chat_prepare(rf_server *srv, const json_t *body, json_t **messages, ctxapi_chat **out, api_err *e);
/* Adds "context" to a final chat response (and stores the reply). */
void ctxapi_chat_final(rf_server *srv, ctxapi_chat *cc, json_t *response);
json_t *ctxapi_chat_stream_info(ctxapi_chat *cc); /* new reference or NULL */
void ctxapi_chat_free(ctxapi_chat *cc);

/* ---- the web page (webui.c) -------------------------------------------------------------- */

extern const char srv_webui_html[];
extern const size_t srv_webui_html_len;

#endif /* RF_SERVER_IMPL_H */
