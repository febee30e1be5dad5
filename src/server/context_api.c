/*
 * context_api.c - the context engine over HTTP (`serve --context-db DB`):
 *   POST   /v1/context/documents       {"text", "kind"?, "meta"?, "links"?: [{"id", "relation"}]}
 *   GET    /v1/context/search?q=..&k=..&hops=..&mode=hybrid|vector|keyword
 *   GET    /v1/context/documents/{id}  the node and its edges
 *   DELETE /v1/context/documents/{id}
 * and the chat completion field "context": {"k", "hops", "mode", "store",
 * "session"}: the last user message is the query; the best passages go
 * into the system message, their ids into the response's "context"
 * object; with "store" the user message (and, for non-streamed answers,
 * the reply) are kept as message nodes linked "next" in their session.
 *
 * Embeddings come from the served model through the scheduler (the
 * /v1/embeddings path). These handlers wait for them on the HTTP thread:
 * a query or a document is one short embedding job, and holding the
 * thread keeps the handlers plain; generation never blocks a thread.
 */
#include "server-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context/context.h"

/* ---- setup ---------------------------------------------------------------------------- */

rf_status ctxapi_setup(rf_server *srv, rf_error *err) {
    if (!srv->o.context_db) return RF_OK;
    rf_status st = rf_cdb_open(srv->o.context_db, true, &srv->cdb, err);
    if (st != RF_OK) return st;
    char id[320];
    const char *path = srv->o.model_path ? srv->o.model_path : "model";
    const char *base = strrchr(path, '/');
    snprintf(id, sizeof id, "%s#%lld", base ? base + 1 : path, (long long)srv->eng->model->hp.n_embd);
    if ((st = rf_cembed_create(srv->sched, srv->eng->tok, id, srv->eng->model->hp.n_embd, 0, 0, &srv->cembed, err)) != RF_OK) {
        rf_cdb_close(srv->cdb);
        srv->cdb = NULL;
        return st;
    }
    srv_log(srv, RF_LOG_INFO, NULL, "context database %s (vectors of %s)", srv->o.context_db, id);
    return RF_OK;
}

void ctxapi_teardown(rf_server *srv) {
    rf_cembed_free(srv->cembed);
    rf_cdb_close(srv->cdb);
    srv->cembed = NULL;
    srv->cdb = NULL;
}

/* 404/501 when the server has no context database; NULL when it has one. */
static bool unavailable(srv_req *rq, enum MHD_Result *ret) {
    if (rq->srv->cdb) return false;
    if (!rf_cdb_available())
        *ret = respond_error(rq, 501, "invalid_request_error", NULL, "context_unsupported", "%s", RF_CDB_UNSUPPORTED_MSG);
    else
        *ret = respond_error(rq, 404, "invalid_request_error", NULL, "context_disabled",
                             "the context engine is not enabled on this server (start it with --context-db DB)");
    return true;
}

static int status_of(rf_status st) {
    switch (st) {
    case RF_E_NOTFOUND: return 404;
    case RF_E_INVAL: case RF_E_FORMAT: case RF_E_RANGE: return 400;
    case RF_E_UNSUPPORTED: return 501;
    default: return 500;
    }
}

static enum MHD_Result respond_status(srv_req *rq, const rf_error *err, const char *param) {
    int s = status_of(err->code);
    return respond_error(rq, s, s >= 500 ? "server_error" : "invalid_request_error", param,
                         err->code == RF_E_NOTFOUND ? "not_found" : NULL, "%s", err->msg);
}

/* The node as JSON (text, kind, meta, parent); NULL when it is gone. */
static json_t *node_json(rf_cdb *db, int64_t id) {
    rf_cdb_node nd;
    if (rf_cdb_get(db, id, &nd, NULL) != RF_OK) return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(nd.id));
    json_object_set_new(o, "object", json_string("context.node"));
    json_object_set_new(o, "kind", json_string(nd.kind));
    json_object_set_new(o, "text", json_lossy_string(nd.text, strlen(nd.text)));
    json_t *m = json_loads(nd.meta_json, 0, NULL);
    json_object_set_new(o, "meta", m ? m : json_object());
    json_object_set_new(o, "created_at", json_integer(nd.created_at));
    json_object_set_new(o, "parts", json_integer(nd.parts));
    json_object_set_new(o, "document", json_integer(nd.parent ? nd.parent : nd.id));
    rf_cdb_node_clear(&nd);
    return o;
}

/* ---- POST /v1/context/documents ------------------------------------------------------------ */

enum MHD_Result api_context_add(srv_req *rq) {
    enum MHD_Result ret;
    if (unavailable(rq, &ret)) return ret;
    rf_server *srv = rq->srv;
    if (rq->body.len == 0)
        return respond_error(rq, 400, "invalid_request_error", NULL, NULL, "the request body is empty; expected a JSON object");
    json_error_t je;
    json_t *b = json_loadb(rq->body.p, rq->body.len, 0, &je);
    if (!json_is_object(b)) {
        json_decref(b);
        return respond_error(rq, 400, "invalid_request_error", NULL, NULL, "the body must be a JSON object%s%s", b ? "" : ": ",
                             b ? "" : je.text);
    }
    json_t *t = json_object_get(b, "text"), *k = json_object_get(b, "kind"), *m = json_object_get(b, "meta");
    json_t *l = json_object_get(b, "links");
    rf_cdb_link links[32];
    char *meta = NULL;
    int n_links = 0;
    const char *param = NULL, *why = NULL;
    if (!json_is_string(t) || json_string_length(t) == 0) param = "text", why = "'text' must be a non-empty string";
    else if (k && !json_is_null(k) && (!json_is_string(k) || !rf_cdb_kind_valid(json_string_value(k))))
        param = "kind", why = "'kind' must be document, note or message";
    else if (m && !json_is_null(m) && !json_is_object(m)) param = "meta", why = "'meta' must be a JSON object";
    else if (l && !json_is_null(l) && (!json_is_array(l) || json_array_size(l) > 32))
        param = "links", why = "'links' must be an array of up to 32 {\"id\", \"relation\"} objects";
    for (size_t i = 0; !param && l && json_is_array(l) && i < json_array_size(l); i++) {
        json_t *x = json_array_get(l, i), *xi = json_object_get(x, "id"), *xr = json_object_get(x, "relation");
        if (!json_is_integer(xi) || json_integer_value(xi) <= 0 || !json_is_string(xr))
            param = "links", why = "each link must be {\"id\": positive integer, \"relation\": string}";
        else
            links[n_links++] = (rf_cdb_link){json_integer_value(xi), json_string_value(xr)};
    }
    if (param) {
        ret = respond_error(rq, 400, "invalid_request_error", param, NULL, "%s", why);
        json_decref(b);
        return ret;
    }
    if (m && json_is_object(m)) meta = json_dumps(m, JSON_COMPACT);
    const char *kind = json_is_string(k) ? json_string_value(k) : "document";
    rf_error err = {0};
    int64_t id;
    int n_chunks;
    rf_status st = rf_context_add(srv->cdb, srv->cembed, kind, json_string_value(t), json_string_length(t), meta, links, n_links,
                                  &id, &n_chunks, &err);
    free(meta);
    if (st != RF_OK) {
        ret = respond_status(rq, &err, st == RF_E_NOTFOUND ? "links" : NULL);
        json_decref(b);
        return ret;
    }
    json_t *r = json_object();
    json_object_set_new(r, "id", json_integer(id));
    json_object_set_new(r, "object", json_string("context.document"));
    json_object_set_new(r, "kind", json_string(kind)); /* kind may point into b */
    json_object_set_new(r, "chunks", json_integer(n_chunks));
    json_object_set_new(r, "model", json_string(rf_cembed_model_id(srv->cembed)));
    json_decref(b);
    return respond_json(rq, 200, r);
}

/* ---- GET /v1/context/search ------------------------------------------------------------------ */

static bool int_arg(srv_req *rq, const char *name, long lo, long hi, long *out) {
    const char *v = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v) return true;
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) return false;
    *out = x;
    return true;
}

/* The hits as a JSON array of nodes with scores. */
static json_t *hits_json(rf_cdb *db, const rf_chit *h, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = node_json(db, h[i].id);
        if (!o) continue;
        json_object_set_new(o, "score", json_real(h[i].score));
        json_object_set_new(o, "vector_score", isnan(h[i].vscore) ? json_null() : json_real(h[i].vscore));
        json_object_set_new(o, "keyword_score", isnan(h[i].kscore) ? json_null() : json_real(h[i].kscore));
        json_object_set_new(o, "hop", json_integer(h[i].hop));
        json_object_set_new(o, "via", h[i].hop ? json_integer(h[i].via) : json_null());
        json_array_append_new(a, o);
    }
    return a;
}

enum MHD_Result api_context_search(srv_req *rq) {
    enum MHD_Result ret;
    if (unavailable(rq, &ret)) return ret;
    rf_server *srv = rq->srv;
    const char *q = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "q");
    const char *mode_s = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "mode");
    long k = 5, hops = 0;
    rf_csearch_mode mode = RF_CS_HYBRID;
    if (!q || !*q) return respond_error(rq, 400, "invalid_request_error", "q", NULL, "the query parameter 'q' is required");
    if (!int_arg(rq, "k", 1, 100, &k)) return respond_error(rq, 400, "invalid_request_error", "k", NULL, "'k' must be an integer in [1, 100]");
    if (!int_arg(rq, "hops", 0, 4, &hops)) return respond_error(rq, 400, "invalid_request_error", "hops", NULL, "'hops' must be an integer in [0, 4]");
    if (mode_s && !rf_csearch_mode_parse(mode_s, &mode))
        return respond_error(rq, 400, "invalid_request_error", "mode", NULL, "'mode' must be hybrid, vector or keyword");
    rf_chit *h = NULL;
    int n = 0;
    rf_error err = {0};
    /* embedding and search timed apart (the response says both) */
    int64_t dim = rf_cembed_dim(srv->cembed);
    float *qv = NULL;
    double t0 = rf_time_now(), t1 = t0;
    if (mode != RF_CS_KEYWORD) {
        if (!(qv = rf_malloc((size_t)dim * sizeof(float)))) return respond_error(rq, 500, "server_error", NULL, NULL, "out of memory");
        size_t ql = strlen(q);
        if (rf_cembed_texts(srv->cembed, &q, &ql, 1, qv, &err) != RF_OK) {
            rf_free(qv);
            return respond_status(rq, &err, "q");
        }
        t1 = rf_time_now();
    }
    rf_csearch_params sp = {.query = q, .qvec = qv, .model_id = rf_cembed_model_id(srv->cembed), .dim = dim, .k = (int)k,
                            .hops = (int)hops, .mode = mode};
    rf_status st = rf_cdb_search(srv->cdb, &sp, &h, &n, &err);
    double t2 = rf_time_now();
    rf_free(qv);
    if (st != RF_OK) return respond_status(rq, &err, "q");
    json_t *r = json_object();
    json_t *tm = json_object();
    json_object_set_new(tm, "embed_ms", json_real((t1 - t0) * 1e3));
    json_object_set_new(tm, "search_ms", json_real((t2 - t1) * 1e3));
    json_object_set_new(r, "timings", tm);
    json_object_set_new(r, "object", json_string("list"));
    json_object_set_new(r, "query", json_string(q));
    json_object_set_new(r, "mode", json_string(rf_csearch_mode_name(mode)));
    json_object_set_new(r, "data", hits_json(srv->cdb, h, n));
    rf_free(h);
    return respond_json(rq, 200, r);
}

/* ---- GET / DELETE /v1/context/documents/{id} ---------------------------------------------------- */

enum MHD_Result api_context_doc(srv_req *rq) {
    enum MHD_Result ret;
    if (unavailable(rq, &ret)) return ret;
    rf_server *srv = rq->srv;
    const char *s = rq->path + strlen("/v1/context/documents/");
    char *end;
    long long id = strtoll(s, &end, 10);
    if (end == s || *end || id <= 0)
        return respond_error(rq, 400, "invalid_request_error", "id", NULL, "'%s' is not a node id", s);
    rf_error err = {0};
    if (strcmp(rq->method, "DELETE") == 0) {
        if (rf_cdb_remove(srv->cdb, id, &err) != RF_OK) return respond_status(rq, &err, "id");
        json_t *r = json_object();
        json_object_set_new(r, "id", json_integer(id));
        json_object_set_new(r, "object", json_string("context.document"));
        json_object_set_new(r, "deleted", json_true());
        return respond_json(rq, 200, r);
    }
    json_t *o = node_json(srv->cdb, id);
    if (!o) return respond_error(rq, 404, "invalid_request_error", "id", "not_found", "node %lld does not exist", id);
    rf_cdb_edge *ed = NULL;
    int64_t ne = 0;
    json_t *a = json_array();
    if (rf_cdb_edges(srv->cdb, id, &ed, &ne, &err) == RF_OK)
        for (int64_t i = 0; i < ne; i++) {
            json_t *x = json_object();
            json_object_set_new(x, "src", json_integer(ed[i].src));
            json_object_set_new(x, "dst", json_integer(ed[i].dst));
            json_object_set_new(x, "relation", json_string(ed[i].relation));
            json_object_set_new(x, "weight", json_real(ed[i].weight));
            json_array_append_new(a, x);
        }
    rf_free(ed);
    json_object_set_new(o, "edges", a);
    return respond_json(rq, 200, o);
}

/* ---- the chat "context" field --------------------------------------------------------------------- */

struct ctxapi_chat {
    json_t *ids;     /* retrieved node ids */
    char *session;   /* store: the session, else NULL */
    int64_t user_id; /* the stored user message */
    int64_t reply_id;
};

void ctxapi_chat_free(ctxapi_chat *cc) {
    if (!cc) return;
    json_decref(cc->ids);
    rf_free(cc->session);
    rf_free(cc);
}

/* The text of a message's content: a string, or the text parts of an array. */
static char *content_text(const json_t *content) {
    if (json_is_string(content)) return rf_strndup(json_string_value(content), json_string_length(content));
    if (!json_is_array(content)) return NULL;
    srv_buf b = {0};
    for (size_t i = 0; i < json_array_size(content); i++) {
        const json_t *t = json_object_get(json_array_get(content, i), "text");
        if (!json_is_string(t)) continue;
        if (b.len) sbuf_put(&b, "\n", 1);
        sbuf_put(&b, json_string_value(t), json_string_length(t));
    }
    char *r = b.p && !b.oom ? rf_strndup(b.p, b.len) : NULL;
    sbuf_free(&b);
    return r;
}

/* Stores a message node in the session, linked "next" from the previous one. */
static int64_t store_message(rf_server *srv, const char *session, const char *role, const char *text, size_t len) {
    rf_error err = {0};
    int64_t prev = 0, id = 0;
    rf_cdb_session_last(srv->cdb, session, &prev, NULL);
    json_t *m = json_object();
    json_object_set_new(m, "session", json_string(session));
    json_object_set_new(m, "role", json_string(role));
    char *meta = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (rf_context_add(srv->cdb, srv->cembed, "message", text, len, meta, NULL, 0, &id, NULL, &err) != RF_OK)
        srv_log(srv, RF_LOG_WARN, NULL, "context: storing a %s message failed: %s", role, err.msg);
    else if (prev && rf_cdb_link_add(srv->cdb, prev, id, "next", 1.0, &err) != RF_OK)
        srv_log(srv, RF_LOG_WARN, NULL, "context: linking message %lld failed: %s", (long long)id, err.msg);
    free(meta);
    return id;
}

bool ctxapi_chat_prepare(rf_server *srv, const json_t *body, json_t **messages, ctxapi_chat **out, api_err *e) {
    *messages = NULL;
    *out = NULL;
    const json_t *cx = json_object_get(body, "context");
    if (!cx || json_is_null(cx)) return true;
    if (!json_is_object(cx)) return api_fail(e, 400, "context", "'context' must be an object {\"k\", \"hops\", \"mode\", \"store\", \"session\"}");
    if (!srv->cdb)
        return api_fail(e, 400, "context", "%s", rf_cdb_available() ? "the context engine is not enabled on this server (start it with --context-db DB)"
                                                                    : RF_CDB_UNSUPPORTED_MSG);
    const json_t *jk = json_object_get(cx, "k"), *jh = json_object_get(cx, "hops"), *jm = json_object_get(cx, "mode");
    const json_t *js = json_object_get(cx, "store"), *jss = json_object_get(cx, "session");
    long long k = 4, hops = 0;
    rf_csearch_mode mode = RF_CS_HYBRID;
    if (jk && (!json_is_integer(jk) || json_integer_value(jk) < 0 || json_integer_value(jk) > 32))
        return api_fail(e, 400, "context.k", "'context.k' must be an integer in [0, 32]");
    if (jh && (!json_is_integer(jh) || json_integer_value(jh) < 0 || json_integer_value(jh) > 4))
        return api_fail(e, 400, "context.hops", "'context.hops' must be an integer in [0, 4]");
    if (jm && (!json_is_string(jm) || !rf_csearch_mode_parse(json_string_value(jm), &mode)))
        return api_fail(e, 400, "context.mode", "'context.mode' must be hybrid, vector or keyword");
    if (js && !json_is_boolean(js)) return api_fail(e, 400, "context.store", "'context.store' must be a boolean");
    if (jss && (!json_is_string(jss) || json_string_length(jss) == 0 || json_string_length(jss) > 200))
        return api_fail(e, 400, "context.session", "'context.session' must be a string of 1 to 200 bytes");
    if (jk) k = json_integer_value(jk);
    if (jh) hops = json_integer_value(jh);
    const json_t *msgs = json_object_get(body, "messages");
    if (!json_is_array(msgs)) return true; /* prompt_chat reports it */
    /* the query: the last user message */
    char *query = NULL;
    for (size_t i = json_array_size(msgs); i-- > 0 && !query;) {
        const json_t *m = json_array_get(msgs, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role && strcmp(role, "user") == 0) query = content_text(json_object_get(m, "content"));
    }
    if (!query || !*query) {
        rf_free(query);
        return api_fail(e, 400, "context", "'context' needs a user message with text to search for");
    }
    ctxapi_chat *cc = rf_calloc(1, sizeof *cc);
    if (!cc || !(cc->ids = json_array())) {
        rf_free(query);
        rf_free(cc);
        return api_fail(e, 500, NULL, "out of memory");
    }
    json_t *aug = NULL;
    if (k > 0) {
        rf_chit *h = NULL;
        int n = 0;
        rf_error err = {0};
        if (rf_context_search(srv->cdb, srv->cembed, query, (int)k, (int)hops, mode, &h, &n, &err) != RF_OK) {
            rf_free(query);
            ctxapi_chat_free(cc);
            return api_fail(e, status_of(err.code), "context", "context search failed: %s", err.msg);
        }
        srv_buf t = {0};
        sbuf_puts(&t, "Use the following context passages when they are relevant:\n");
        for (int i = 0; i < n; i++) {
            rf_cdb_node nd;
            if (rf_cdb_get(srv->cdb, h[i].id, &nd, NULL) != RF_OK) continue;
            sbuf_printf(&t, "[%d] %s\n", i + 1, nd.text);
            rf_cdb_node_clear(&nd);
            json_array_append_new(cc->ids, json_integer(h[i].id));
        }
        rf_free(h);
        if (json_array_size(cc->ids) > 0 && !t.oom) {
            aug = json_deep_copy(msgs);
            json_t *first = json_array_get(aug, 0);
            const char *role = json_string_value(json_object_get(first, "role"));
            json_t *fc = json_object_get(first, "content");
            if (role && strcmp(role, "system") == 0 && json_is_string(fc)) {
                srv_buf s = {0};
                sbuf_put(&s, json_string_value(fc), json_string_length(fc));
                sbuf_puts(&s, "\n\n");
                sbuf_put(&s, t.p, t.len);
                json_object_set_new(first, "content", json_stringn(s.p ? s.p : "", s.len));
                sbuf_free(&s);
            } else {
                json_t *sys = json_object();
                json_object_set_new(sys, "role", json_string("system"));
                json_object_set_new(sys, "content", json_stringn(t.p, t.len));
                json_array_insert_new(aug, 0, sys);
            }
        }
        sbuf_free(&t);
    }
    if (js && json_is_true(js)) {
        const char *session = jss ? json_string_value(jss) : "default";
        cc->session = rf_strndup(session, strlen(session));
        cc->user_id = store_message(srv, session, "user", query, strlen(query));
    }
    rf_free(query);
    *messages = aug;
    *out = cc;
    return true;
}

void ctxapi_chat_final(rf_server *srv, ctxapi_chat *cc, json_t *response) {
    if (!cc) return;
    json_t *o = json_object();
    json_object_set(o, "ids", cc->ids);
    if (cc->session) {
        const json_t *msg = json_object_get(json_array_get(json_object_get(response, "choices"), 0), "message");
        const json_t *c = json_object_get(msg, "content");
        if (!cc->reply_id && json_is_string(c) && json_string_length(c) > 0)
            cc->reply_id = store_message(srv, cc->session, "assistant", json_string_value(c), json_string_length(c));
        json_t *st = json_array();
        if (cc->user_id) json_array_append_new(st, json_integer(cc->user_id));
        if (cc->reply_id) json_array_append_new(st, json_integer(cc->reply_id));
        json_object_set_new(o, "stored", st);
        json_object_set_new(o, "session", json_string(cc->session));
    }
    json_object_set_new(response, "context", o);
}

/* Streams: the ids (and the stored user message) go into the first chunk. */
json_t *ctxapi_chat_stream_info(ctxapi_chat *cc) {
    if (!cc) return NULL;
    json_t *o = json_object();
    json_object_set(o, "ids", cc->ids);
    if (cc->session) {
        json_t *st = json_array();
        if (cc->user_id) json_array_append_new(st, json_integer(cc->user_id));
        json_object_set_new(o, "stored", st);
        json_object_set_new(o, "session", json_string(cc->session));
    }
    return o;
}
