/*
 * http.c - the HTTP side of the server: the libmicrohttpd daemon, the route
 * table, request life cycle (body collection with a size limit, auth,
 * dispatch), responses (complete, SSE streams fed from scheduler jobs, and
 * suspended waits for non-stream answers), a watchdog that notices clients
 * that went away while their connection is suspended, request ids,
 * logging, and shutdown.
 *
 * Request life: MHD calls on_access once with the headers (we allocate the
 * srv_req and check the declared length), once per body piece, then once
 * with the body complete, when the route's handler runs. A handler either
 * queues a response at once, starts an SSE response, or suspends the
 * connection until its jobs are done (then MHD calls on_access again).
 * on_completed ends every request: it cancels what is still running,
 * counts the request in the metrics and writes the access-log line.
 *
 * Wake-ups: the scheduler calls req_notify after new output. A connection
 * suspends only under rq->mu with `pending` clear, and req_notify either
 * resumes it or sets `pending`, so no wake-up is lost.
 */
#include "server-impl.h"

#include "core/jsonw.h" /* rf_utf8_seq_len */

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- byte buffer ------------------------------------------------------------ */

void sbuf_put(srv_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *nb = rf_realloc(b->p, cap);
        if (!nb) {
            b->oom = true;
            return;
        }
        b->p = nb;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sbuf_puts(srv_buf *b, const char *s) { sbuf_put(b, s, strlen(s)); }

void sbuf_printf(srv_buf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        sbuf_put(b, tmp, (size_t)n);
        return;
    }
    char *big = rf_malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sbuf_put(b, big, (size_t)n);
    rf_free(big);
}

void sbuf_free(srv_buf *b) {
    rf_free(b->p);
    memset(b, 0, sizeof *b);
}

json_t *json_lossy_string(const char *s, size_t n) {
    srv_buf b = {0};
    for (size_t i = 0; i < n;) {
        int k = rf_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (k > 0) {
            sbuf_put(&b, s + i, (size_t)k);
            i += (size_t)k;
        } else {
            sbuf_put(&b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    json_t *v = b.oom ? NULL : json_stringn(b.p ? b.p : "", b.len);
    sbuf_free(&b);
    return v;
}

/* ---- logging ---------------------------------------------------------------- */

static const char *const level_names[] = {"debug", "info", "warn", "error", "none"};

static void log_line(rf_server *srv, rf_log_level lvl, const char *rid, const char *msg, json_t *fields) {
    if (lvl < srv->o.log_level) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof when - w, ".%03ldZ", ts.tv_nsec / 1000000L);
    if (srv->o.log_format == RF_LOGFMT_JSON) {
        json_t *o = json_object();
        json_object_set_new(o, "ts", json_string(when));
        json_object_set_new(o, "level", json_string(level_names[lvl]));
        if (rid) json_object_set_new(o, "request_id", json_string(rid));
        json_object_set_new(o, "msg", json_lossy_string(msg, strlen(msg)));
        if (fields) json_object_update(o, fields);
        char *t = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        json_decref(o);
        if (!t) return;
        pthread_mutex_lock(&srv->log_mu);
        fprintf(stderr, "%s\n", t);
        pthread_mutex_unlock(&srv->log_mu);
        free(t);
        return;
    }
    srv_buf b = {0};
    sbuf_printf(&b, "%s %s", when, level_names[lvl]);
    if (rid) sbuf_printf(&b, " [%s]", rid);
    sbuf_printf(&b, " %s", msg);
    const char *k;
    json_t *v;
    if (fields)
        json_object_foreach(fields, k, v) {
            char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
            if (t) sbuf_printf(&b, " %s=%s", k, t);
            free(t);
        }
    pthread_mutex_lock(&srv->log_mu);
    fprintf(stderr, "%s\n", b.p ? b.p : "");
    pthread_mutex_unlock(&srv->log_mu);
    sbuf_free(&b);
}

void srv_log(rf_server *srv, rf_log_level lvl, const char *rid, const char *fmt, ...) {
    if (lvl < srv->o.log_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_line(srv, lvl, rid, msg, NULL);
}

void rf_server_log(rf_server *srv, rf_log_level lvl, const char *fmt, ...) {
    if (lvl < srv->o.log_level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_line(srv, lvl, NULL, msg, NULL);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    rf_server *srv = cls;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    log_line(srv, RF_LOG_DEBUG, NULL, msg, NULL);
}

/* ---- requests ------------------------------------------------------------------ */

static atomic_uint_fast64_t g_req_counter;
static uint64_t g_req_salt;

/* The client's X-Request-Id when it is short and plain, else a new one. */
static void make_request_id(struct MHD_Connection *c, char *out, size_t n) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    if (h) {
        size_t len = strlen(h);
        bool ok = len > 0 && len < n && len <= 64;
        for (size_t i = 0; ok && i < len; i++)
            ok = (h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') || (h[i] >= '0' && h[i] <= '9') ||
                 h[i] == '-' || h[i] == '_' || h[i] == '.';
        if (ok) {
            memcpy(out, h, len + 1);
            return;
        }
    }
    uint64_t x = atomic_fetch_add(&g_req_counter, 1) + g_req_salt;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    snprintf(out, n, "req_%016llx", (unsigned long long)x);
}

void req_ref(srv_req *rq) { atomic_fetch_add(&rq->refs, 1); }

void req_unref(srv_req *rq) {
    if (atomic_fetch_sub(&rq->refs, 1) != 1) return;
    api_free(rq->call);
    sbuf_free(&rq->body);
    sbuf_free(&rq->out);
    pthread_mutex_destroy(&rq->mu);
    rf_free(rq);
}

void req_register(srv_req *rq) {
    rf_server *srv = rq->srv;
    pthread_mutex_lock(&srv->reg_mu);
    rq->reg_prev = NULL;
    rq->reg_next = srv->reg_head;
    if (srv->reg_head) srv->reg_head->reg_prev = rq;
    srv->reg_head = rq;
    srv->n_reg++;
    req_ref(rq);
    pthread_mutex_unlock(&srv->reg_mu);
}

static void req_unregister(srv_req *rq) {
    rf_server *srv = rq->srv;
    pthread_mutex_lock(&srv->reg_mu);
    bool was = rq->reg_prev || rq->reg_next || srv->reg_head == rq;
    if (was) {
        if (rq->reg_prev) rq->reg_prev->reg_next = rq->reg_next;
        else srv->reg_head = rq->reg_next;
        if (rq->reg_next) rq->reg_next->reg_prev = rq->reg_prev;
        rq->reg_prev = rq->reg_next = NULL;
        srv->n_reg--;
    }
    pthread_mutex_unlock(&srv->reg_mu);
    if (was) req_unref(rq);
}

void req_notify(void *ud) {
    srv_req *rq = ud;
    bool resume = false;
    pthread_mutex_lock(&rq->mu);
    /* a non-stream request only cares about the end (rq->call stays valid
     * while rq->mu is held and the request is not closed) */
    if (!rq->closed && (rq->stream || !rq->call || api_done(rq->call))) {
        if (rq->suspended) {
            rq->suspended = false;
            resume = true;
        } else {
            rq->pending = true;
        }
    }
    pthread_mutex_unlock(&rq->mu);
    /* safe outside the lock: a suspended connection cannot complete */
    if (resume) MHD_resume_connection(rq->conn);
}

/* Suspends the connection unless a wake-up came in meanwhile; returns
 * false (and clears it) when one did, so the caller looks again. */
static bool try_suspend(srv_req *rq) {
    pthread_mutex_lock(&rq->mu);
    if (rq->pending) {
        rq->pending = false;
        pthread_mutex_unlock(&rq->mu);
        return false;
    }
    rq->suspended = true;
    MHD_suspend_connection(rq->conn);
    pthread_mutex_unlock(&rq->mu);
    return true;
}

/* ---- responses --------------------------------------------------------------- */

static void common_headers(srv_req *rq, struct MHD_Response *r, int status) {
    MHD_add_response_header(r, "X-Request-Id", rq->id);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(r, "Access-Control-Expose-Headers", "X-Request-Id");
    if (status == 429 || status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
}

enum MHD_Result respond(srv_req *rq, int status, const char *ctype, const char *body, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    if (ctype) MHD_add_response_header(r, "Content-Type", ctype);
    common_headers(rq, r, status);
    enum MHD_Result ret = MHD_queue_response(rq->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    rq->status = status;
    rq->phase = PH_DONE;
    return ret;
}

enum MHD_Result respond_json(srv_req *rq, int status, json_t *v) {
    char *t = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!t) return respond(rq, 500, "application/json", "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}", 86);
    enum MHD_Result r = respond(rq, status, "application/json", t, strlen(t));
    free(t);
    return r;
}

enum MHD_Result respond_error(srv_req *rq, int status, const char *type, const char *param, const char *code,
                              const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_object();
    json_object_set_new(e, "message", json_lossy_string(msg, strlen(msg)));
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "param", param ? json_string(param) : json_null());
    json_object_set_new(e, "code", code ? json_string(code) : json_null());
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    srv_log(rq->srv, status >= 500 ? RF_LOG_WARN : RF_LOG_INFO, rq->id, "%d %s", status, msg);
    return respond_json(rq, status, o);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    srv_req *rq = cls;
    (void)pos;
    for (;;) {
        if (rq->out_off < rq->out.len) {
            size_t n = rq->out.len - rq->out_off;
            if (n > max) n = max;
            memcpy(buf, rq->out.p + rq->out_off, n);
            rq->out_off += n;
            if (rq->out_off == rq->out.len) rq->out_off = rq->out.len = 0;
            return (ssize_t)n;
        }
        if (rq->stream_over) return MHD_CONTENT_READER_END_OF_STREAM;
        if (rq->out.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (api_stream_pull(rq, &rq->out)) rq->stream_over = true;
        if (rq->out.len || rq->stream_over) continue;
        if (atomic_load(&rq->srv->stopping)) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (try_suspend(rq)) return 0;
    }
}

static void sse_free(void *cls) { req_unref(cls); }

enum MHD_Result respond_stream(srv_req *rq) {
    req_ref(rq);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, rq, sse_free);
    if (!r) {
        req_unref(rq);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    common_headers(rq, r, 200);
    rq->phase = PH_STREAM;
    rq->status = 200;
    enum MHD_Result ret = MHD_queue_response(rq->conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result respond_when_done(srv_req *rq) {
    rq->phase = PH_WAIT;
    for (;;) {
        if (api_done(rq->call)) return api_final(rq);
        if (atomic_load(&rq->srv->stopping))
            return respond_error(rq, 503, "server_error", NULL, "shutting_down", "the server is shutting down");
        if (try_suspend(rq)) return MHD_YES;
    }
}

/* ---- plain routes --------------------------------------------------------------- */

static enum MHD_Result h_health(srv_req *rq) {
    if (!atomic_load(&rq->srv->ready))
        return respond(rq, 503, "application/json", "{\"status\":\"loading\"}", 20);
    return respond(rq, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

static enum MHD_Result h_ready(srv_req *rq) {
    rf_server *srv = rq->srv;
    if (!atomic_load(&srv->ready)) return respond(rq, 503, "application/json", "{\"status\":\"loading\"}", 20);
    if (atomic_load(&srv->draining)) return respond(rq, 503, "application/json", "{\"status\":\"draining\"}", 21);
    return respond(rq, 200, "application/json", "{\"status\":\"ready\"}", 18);
}

static enum MHD_Result h_metrics(srv_req *rq) {
    srv_buf b = {0};
    metrics_render(rq->srv, &b);
    if (b.oom) {
        sbuf_free(&b);
        return respond(rq, 500, "text/plain", "out of memory\n", 14);
    }
    enum MHD_Result r = respond(rq, 200, "text/plain; version=0.0.4; charset=utf-8", b.p ? b.p : "", b.len);
    sbuf_free(&b);
    return r;
}

static enum MHD_Result h_webui(srv_req *rq) {
    return respond(rq, 200, "text/html; charset=utf-8", srv_webui_html, srv_webui_html_len);
}

static const srv_route routes[] = {
    {"POST", "/v1/chat/completions", false, true, true, "chat_completions", api_chat},
    {"POST", "/v1/completions", false, true, true, "completions", api_completions},
    {"POST", "/v1/embeddings", false, true, true, "embeddings", api_embeddings},
    {"GET", "/v1/models", false, true, true, "models", api_models},
    {"GET", "/v1/models/", true, true, true, "models", api_model_get},
    {"GET", "/health", false, false, false, "health", h_health},
    {"GET", "/ready", false, false, false, "ready", h_ready},
    {"GET", "/metrics", false, true, false, "metrics", h_metrics},
    {"GET", "/", false, false, false, "webui", h_webui},
    {"POST", "/v1/context/documents", false, true, true, "context_documents", api_context_add},
    {"GET", "/v1/context/documents/", true, true, true, "context_documents", api_context_doc},
    {"DELETE", "/v1/context/documents/", true, true, true, "context_documents", api_context_doc},
    {"GET", "/v1/context/search", false, true, true, "context_search", api_context_search},
};
_Static_assert(RF_ARRAY_LEN(routes) < M_EP_MAX, "metrics keep one label per route plus 'other'");

const char *srv_route_label(int i) { return i >= 0 && i < (int)RF_ARRAY_LEN(routes) ? routes[i].label : "other"; }
int srv_route_count(void) { return (int)RF_ARRAY_LEN(routes); }

/* Route lookup: the index, -1 when no path matches, -2 when the path
 * exists with another method. */
static int find_route(const char *method, const char *path) {
    bool path_hit = false;
    for (size_t i = 0; i < RF_ARRAY_LEN(routes); i++) {
        const srv_route *r = &routes[i];
        bool m = r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0 && path[strlen(r->path)] : strcmp(path, r->path) == 0;
        if (!m) continue;
        if (strcmp(method, r->method) == 0 || (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) return (int)i;
        path_hit = true;
    }
    return path_hit ? -2 : -1;
}

/* Constant time in the length of the configured key: every byte is
 * compared whatever the first difference. */
static bool key_matches(const char *given, size_t glen, const char *key) {
    size_t klen = strlen(key);
    volatile unsigned diff = glen != klen;
    for (size_t i = 0; i < klen; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < glen ? given[i] : 0);
    return diff == 0;
}

static bool authorized(srv_req *rq) {
    const char *key = rq->srv->o.api_key;
    if (!key || !*key) return true;
    const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    return key_matches(h, strlen(h), key);
}

static enum MHD_Result dispatch(srv_req *rq) {
    rf_server *srv = rq->srv;
    if (strcmp(rq->method, "OPTIONS") == 0) { /* CORS preflight */
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        common_headers(rq, r, 204);
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id");
        MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
        enum MHD_Result ret = MHD_queue_response(rq->conn, 204, r);
        MHD_destroy_response(r);
        rq->status = 204;
        rq->phase = PH_DONE;
        return ret;
    }
    int ri = find_route(rq->method, rq->path);
    if (ri == -1) return respond_error(rq, 404, "invalid_request_error", NULL, "not_found", "no route %s %s", rq->method, rq->path);
    if (ri == -2)
        return respond_error(rq, 405, "invalid_request_error", NULL, "method_not_allowed", "%s is not allowed on %s", rq->method, rq->path);
    rq->route = &routes[ri];
    rq->route_idx = ri;
    if (rq->too_big)
        return respond_error(rq, 413, "invalid_request_error", NULL, "request_too_large",
                             "the request body is larger than the limit of %zu bytes", srv->o.max_body);
    if (rq->route->auth && !authorized(rq))
        return respond_error(rq, 401, "invalid_request_error", NULL, "invalid_api_key", "missing or invalid API key");
    if (rq->route->needs_model && !atomic_load(&srv->ready))
        return respond_error(rq, 503, "server_error", NULL, "loading", "the model is still loading");
    if (rq->route->needs_model && strcmp(rq->route->method, "POST") == 0 && atomic_load(&srv->draining))
        return respond_error(rq, 503, "server_error", NULL, "shutting_down", "the server is shutting down");
    return rq->route->handler(rq);
}

/* Bytes of body we read and drop past the limit before we give up on the
 * client and close (so a well-behaved client still reads its 413). */
#define DISCARD_MAX ((uint64_t)256 << 20)

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **req_cls) {
    rf_server *srv = cls;
    srv_req *rq = *req_cls;
    (void)version;
    if (!rq) {
        rq = rf_calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        atomic_init(&rq->refs, 1);
        pthread_mutex_init(&rq->mu, NULL);
        rq->srv = srv;
        rq->conn = c;
        rq->t0 = rf_time_now();
        rq->route_idx = -1;
        rq->phase = PH_BODY;
        snprintf(rq->method, sizeof rq->method, "%s", method);
        snprintf(rq->path, sizeof rq->path, "%s", url);
        make_request_id(c, rq->id, sizeof rq->id);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->o.max_body) rq->too_big = true;
        *req_cls = rq;
        /* a client that waits for "100 Continue" gets its 413 before it
         * sends the body (MHD then closes the connection) */
        const char *ex = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect");
        if (rq->too_big && ex && strcasecmp(ex, "100-continue") == 0)
            return respond_error(rq, 413, "invalid_request_error", NULL, "request_too_large",
                                 "the request body is larger than the limit of %zu bytes", srv->o.max_body);
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (!rq->too_big && rq->body.len + n > srv->o.max_body) {
            rq->too_big = true;
            sbuf_free(&rq->body);
        }
        if (rq->too_big) {
            rq->discarded += n;
            if (rq->discarded > DISCARD_MAX)
                return respond_error(rq, 413, "invalid_request_error", NULL, "request_too_large",
                                     "the request body is larger than the limit of %zu bytes", srv->o.max_body);
            return MHD_YES;
        }
        sbuf_put(&rq->body, upload, n);
        return rq->body.oom ? MHD_NO : MHD_YES;
    }
    if (rq->phase == PH_WAIT) return respond_when_done(rq);
    if (rq->phase != PH_BODY) return MHD_NO;
    return dispatch(rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe) {
    rf_server *srv = cls;
    srv_req *rq = *req_cls;
    (void)c;
    if (!rq) return;
    *req_cls = NULL;
    /* out of the watchdog's sight first, then the call goes: its jobs hold
     * references on rq, and rq's call holds theirs (the cycle ends here) */
    req_unregister(rq);
    pthread_mutex_lock(&rq->mu);
    rq->closed = true;
    api_call *call = rq->call;
    rq->call = NULL;
    pthread_mutex_unlock(&rq->mu);
    double dt = rf_time_now() - rq->t0;
    int64_t n_prompt = 0, n_gen = 0;
    double ttft = 0;
    const char *finish = NULL;
    if (call) {
        api_cancel(call);
        api_usage(call, &n_prompt, &n_gen, &ttft, &finish);
    }
    int status = rq->status ? rq->status : 499; /* 499: the client left before any answer */
    metrics_request(&srv->metrics, rq->route_idx, status, dt);
    if (srv->o.log_level <= RF_LOG_INFO) {
        json_t *f = json_object();
        json_object_set_new(f, "method", json_string(rq->method));
        json_object_set_new(f, "path", json_lossy_string(rq->path, strlen(rq->path)));
        json_object_set_new(f, "status", json_integer(status));
        json_object_set_new(f, "duration_ms", json_real((double)(int64_t)(dt * 1e6) / 1e3));
        if (call) {
            json_object_set_new(f, "prompt_tokens", json_integer(n_prompt));
            json_object_set_new(f, "completion_tokens", json_integer(n_gen));
            if (ttft > 0) json_object_set_new(f, "ttft_ms", json_real((double)(int64_t)(ttft * 1e6) / 1e3));
            if (finish) json_object_set_new(f, "finish", json_string(finish));
        }
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) json_object_set_new(f, "aborted", json_true());
        log_line(srv, RF_LOG_INFO, rq->id, "access", f);
        json_decref(f);
    }
    api_free(call);
    req_unref(rq);
}

/* ---- watchdog ------------------------------------------------------------------ */

/* True when the peer closed its side: recv peeks 0 bytes at EOF. */
static bool peer_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    char b;
    ssize_t r = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* A suspended connection is out of MHD's event loop, so MHD cannot see its
 * client leave; this thread looks every 100 ms and cancels the jobs of the
 * ones that left (the scheduler frees their sequences within a step). The
 * registry lock keeps each connection (and its socket) alive meanwhile. */
static void *watchdog_main(void *arg) {
    rf_server *srv = arg;
    while (!atomic_load(&srv->watchdog_quit)) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&srv->reg_mu);
        for (srv_req *rq = srv->reg_head; rq; rq = rq->reg_next) {
            if (!rq->call || api_done(rq->call)) continue;
            pthread_mutex_lock(&rq->mu);
            bool check = !rq->closed;
            pthread_mutex_unlock(&rq->mu);
            if (check && peer_gone(rq->conn)) {
                srv_log(srv, RF_LOG_INFO, rq->id, "client disconnected; cancelling");
                api_cancel(rq->call);
            }
        }
        pthread_mutex_unlock(&srv->reg_mu);
    }
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------ */

static char *dup_or_null(const char *s) { return s ? rf_strndup(s, strlen(s)) : NULL; }

rf_status rf_server_start(const rf_server_opts *o, rf_server **out, rf_error *err) {
    *out = NULL;
    rf_server *srv = rf_calloc(1, sizeof *srv);
    if (!srv) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    srv->o = *o;
    srv->o.host = dup_or_null(o->host ? o->host : "127.0.0.1");
    srv->o.api_key = o->api_key && *o->api_key ? dup_or_null(o->api_key) : NULL;
    srv->o.model_alias = dup_or_null(o->model_alias);
    srv->o.model_path = dup_or_null(o->model_path);
    srv->o.context_db = dup_or_null(o->context_db);
    if (!srv->o.http_threads) srv->o.http_threads = 4;
    if (!srv->o.conn_timeout_s) srv->o.conn_timeout_s = 30;
    if (!srv->o.max_connections) srv->o.max_connections = 1024;
    if (!srv->o.max_body) srv->o.max_body = (size_t)8 << 20;
    if (!srv->o.max_header) srv->o.max_header = (size_t)64 << 10;
    if (!srv->o.max_n) srv->o.max_n = 8;
    pthread_mutex_init(&srv->reg_mu, NULL);
    pthread_mutex_init(&srv->log_mu, NULL);
    metrics_init(&srv->metrics);
    srv->created = (int64_t)time(NULL);
    if (getrandom(&g_req_salt, sizeof g_req_salt, 0) != (ssize_t)sizeof g_req_salt) g_req_salt = (uint64_t)time(NULL);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    int gai = getaddrinfo(srv->o.host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        rf_status st = rf_error_set(err, RF_E_INVAL, "--host %s: %s", srv->o.host, gai_strerror(gai));
        rf_server_free(srv);
        return st;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    srv->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_access, srv,
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_THREAD_POOL_SIZE, (unsigned)srv->o.http_threads,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->o.conn_timeout_s,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->o.max_connections,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, srv->o.max_header,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, srv,
                              MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!srv->d) {
        rf_status st = rf_error_set(err, RF_E_IO, "cannot listen on %s:%d (%s)", srv->o.host, o->port,
                                    errno ? strerror(errno) : "libmicrohttpd refused the options");
        rf_server_free(srv);
        return st;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : o->port;
    if (pthread_create(&srv->watchdog, NULL, watchdog_main, srv) == 0) srv->watchdog_started = true;
    srv_log(srv, RF_LOG_INFO, NULL, "listening on http://%s:%d (%d HTTP threads)", srv->o.host, srv->port,
            srv->o.http_threads);
    *out = srv;
    return RF_OK;
}

int rf_server_port(const rf_server *srv) { return srv->port; }

rf_status rf_server_attach(rf_server *srv, rf_engine *e, rf_sched *s, rf_tmpl *tmpl, const char *tmpl_src,
                           rf_error *err) {
    srv->eng = e;
    srv->sched = s;
    srv->tmpl = tmpl;
    const char *path = srv->o.model_path ? srv->o.model_path : "model";
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(srv->model_file, sizeof srv->model_file, "%s", base);
    if (srv->o.model_alias) {
        snprintf(srv->model_id, sizeof srv->model_id, "%s", srv->o.model_alias);
    } else {
        snprintf(srv->model_id, sizeof srv->model_id, "%s", base);
        size_t n = strlen(srv->model_id);
        if (n > 5 && strcmp(srv->model_id + n - 5, ".gguf") == 0) srv->model_id[n - 5] = '\0';
    }
    rf_status st = prompt_setup(srv, tmpl_src, err);
    if (st != RF_OK) return st;
    if ((st = ctxapi_setup(srv, err)) != RF_OK) return st;
    atomic_store(&srv->ready, true);
    srv_log(srv, RF_LOG_INFO, NULL, "model '%s' ready", srv->model_id);
    return RF_OK;
}

void rf_server_shutdown(rf_server *srv, double grace_s) {
    if (!srv || !srv->d) return;
    atomic_store(&srv->draining, true);
    MHD_socket lfd = MHD_quiesce_daemon(srv->d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    srv_log(srv, RF_LOG_INFO, NULL, "shutting down: no new connections; %.1f s for requests in flight", grace_s);
    if (srv->sched) rf_sched_drain(srv->sched, grace_s);
    /* every job has ended and woken its connection; give the streams time
     * to write their last events */
    for (int i = 0; i < 300; i++) {
        pthread_mutex_lock(&srv->reg_mu);
        int64_t n = srv->n_reg;
        pthread_mutex_unlock(&srv->reg_mu);
        if (n == 0) break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    atomic_store(&srv->stopping, true);
    /* MHD_stop_daemon must not meet a suspended connection */
    pthread_mutex_lock(&srv->reg_mu);
    for (srv_req *rq = srv->reg_head; rq; rq = rq->reg_next) {
        pthread_mutex_lock(&rq->mu);
        bool resume = rq->suspended;
        rq->suspended = false;
        pthread_mutex_unlock(&rq->mu);
        if (resume) MHD_resume_connection(rq->conn);
    }
    pthread_mutex_unlock(&srv->reg_mu);
    if (srv->watchdog_started) {
        atomic_store(&srv->watchdog_quit, true);
        pthread_join(srv->watchdog, NULL);
        srv->watchdog_started = false;
    }
    MHD_stop_daemon(srv->d);
    srv->d = NULL;
    srv_log(srv, RF_LOG_INFO, NULL, "stopped");
}

void rf_server_free(rf_server *srv) {
    if (!srv) return;
    rf_server_shutdown(srv, 0);
    if (srv->watchdog_started) {
        atomic_store(&srv->watchdog_quit, true);
        pthread_join(srv->watchdog, NULL);
    }
    prompt_teardown(srv);
    ctxapi_teardown(srv);
    metrics_free(&srv->metrics);
    rf_free((void *)srv->o.host);
    rf_free((void *)srv->o.api_key);
    rf_free((void *)srv->o.model_alias);
    rf_free((void *)srv->o.model_path);
    rf_free((void *)srv->o.context_db);
    pthread_mutex_destroy(&srv->reg_mu);
    pthread_mutex_destroy(&srv->log_mu);
    rf_free(srv);
}
