/*
 * openai.c - the OpenAI API: request parsing and validation for
 * /v1/chat/completions, /v1/completions and /v1/embeddings, job creation
 * and submission, and the answers: one JSON body, or Server-Sent Events in
 * OpenAI's chunk format (role chunk, content deltas, a chunk with the
 * finish reason, an optional usage chunk, "data: [DONE]").
 *
 * Validation: unknown fields are ignored; a known field of the wrong type
 * or out of range is a 400 naming it (OpenAI's error body). A prompt that
 * does not fit the context is a 400 with code context_length_exceeded; an
 * unknown model is a 404; a full queue is a 429 with Retry-After.
 *
 * Defaults where the request says nothing (llama.cpp's server's, which suit
 * small models better than OpenAI's pure sampling): temperature 0.8,
 * top_p 0.95, top_k 40, min_p 0.05, no penalties, a fresh seed each
 * request, max_tokens up to the end of the context.
 *
 * With tools (and tool_choice other than "none") the answer is held until
 * generation ends, so that tool calls can be parsed out of it; streams then
 * carry it in one delta. tool_choice "required" or a named function
 * constrains the output with a grammar to a {"name", "arguments"} object.
 */
#include "server-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define API_MAX_JOBS 256
#define API_MAX_STOPS 16

typedef enum call_kind { CALL_CHAT, CALL_COMPLETION, CALL_EMBEDDING } call_kind;
enum { TM_NONE, TM_AUTO, TM_FORCED };

typedef struct api_job {
    rf_sjob *j;
    int prompt;          /* index of its prompt (completions with several) */
    size_t text_pos;     /* stream cursors */
    int64_t tok_pos;
    size_t text_off;     /* legacy logprobs: text offset of the next token */
    bool role_sent, echo_sent, final_sent;
} api_job;

struct api_call {
    call_kind kind;
    rf_server *srv;
    char id[80];
    int64_t created;
    bool stream, include_usage, echo, embd_base64;
    bool logprobs;       /* chat: logprobs; completions: logprobs >= 0 */
    int top_logprobs;
    int tool_mode;
    json_t *tools;       /* owned reference, or NULL */
    api_job *jobs;
    int n_jobs;
    char **echo_text;    /* completions: per prompt */
    int64_t *prompt_len; /* per prompt */
    int n_prompts;
    bool done_sent;
    ctxapi_chat *ctx;    /* the request's "context" field (context_api.c), or NULL */
};

/* ---- parameter helpers --------------------------------------------------------- */

static bool absent(const json_t *v) { return !v || json_is_null(v); }

static bool opt_number(const json_t *b, const char *k, double lo, double hi, double *out, api_err *e) {
    const json_t *v = json_object_get(b, k);
    if (absent(v)) return true;
    if (!json_is_number(v)) return api_fail(e, 400, k, "'%s' must be a number", k);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) return api_fail(e, 400, k, "'%s' must be between %g and %g", k, lo, hi);
    *out = d;
    return true;
}

static bool opt_int(const json_t *b, const char *k, int64_t lo, int64_t hi, int64_t *out, api_err *e) {
    const json_t *v = json_object_get(b, k);
    if (absent(v)) return true;
    if (!json_is_integer(v)) return api_fail(e, 400, k, "'%s' must be an integer", k);
    json_int_t d = json_integer_value(v);
    if (d < lo || d > hi) return api_fail(e, 400, k, "'%s' must be between %lld and %lld", k, (long long)lo, (long long)hi);
    *out = d;
    return true;
}

static bool opt_bool(const json_t *b, const char *k, bool *out, api_err *e) {
    const json_t *v = json_object_get(b, k);
    if (absent(v)) return true;
    if (!json_is_boolean(v)) return api_fail(e, 400, k, "'%s' must be a boolean", k);
    *out = json_is_true(v);
    return true;
}

static bool opt_string(const json_t *b, const char *k, const char **out, api_err *e) {
    const json_t *v = json_object_get(b, k);
    if (absent(v)) return true;
    if (!json_is_string(v)) return api_fail(e, 400, k, "'%s' must be a string", k);
    *out = json_string_value(v);
    return true;
}

/* The body as a JSON object, or a 400. */
static json_t *parse_body(srv_req *rq, api_err *e) {
    if (rq->body.len == 0) {
        api_fail(e, 400, NULL, "the request body is empty; expected a JSON object");
        return NULL;
    }
    json_error_t je;
    json_t *b = json_loadb(rq->body.p, rq->body.len, 0, &je);
    if (!b) {
        api_fail(e, 400, NULL, "invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(b)) {
        json_decref(b);
        api_fail(e, 400, NULL, "the request body must be a JSON object");
        return NULL;
    }
    return b;
}

static bool check_model(rf_server *srv, const json_t *b, api_err *e) {
    const char *m = NULL;
    if (!opt_string(b, "model", &m, e)) return false;
    if (!m || strcmp(m, srv->model_id) == 0 || strcmp(m, srv->model_file) == 0) return true;
    api_fail(e, 404, "model", "the model '%s' does not exist; this server serves '%s'", m, srv->model_id);
    e->code = "model_not_found";
    return false;
}

static enum MHD_Result send_err(srv_req *rq, const api_err *e) {
    return respond_error(rq, e->status, e->type ? e->type : "invalid_request_error", e->param, e->code, "%s", e->msg);
}

/* Sampling parameters common to chat and completions. *bias: caller frees. */
static bool parse_sampling(rf_server *srv, const json_t *b, rf_sample_params *sp, rf_logit_bias **bias, api_err *e) {
    *sp = rf_sample_params_default();
    *bias = NULL;
    int64_t nv = rf_tokenizer_n_vocab(srv->eng->tok);
    double t = sp->temperature, tp = sp->top_p, mp = sp->min_p, typ = sp->typical_p, pp = 0, fp = 0, rp = 1;
    int64_t tk = sp->top_k, seed = -1;
    if (!opt_number(b, "temperature", 0, 2, &t, e) || !opt_number(b, "top_p", 0, 1, &tp, e) ||
        !opt_number(b, "min_p", 0, 1, &mp, e) || !opt_number(b, "typical_p", 1e-6, 1, &typ, e) ||
        !opt_int(b, "top_k", 0, nv, &tk, e) || !opt_number(b, "presence_penalty", -2, 2, &pp, e) ||
        !opt_number(b, "frequency_penalty", -2, 2, &fp, e) || !opt_number(b, "repetition_penalty", 1e-3, 10, &rp, e) ||
        !opt_number(b, "repeat_penalty", 1e-3, 10, &rp, e) || !opt_int(b, "seed", INT64_MIN, INT64_MAX, &seed, e))
        return false;
    if (tp == 0) { /* nothing but the top token: greedy */
        t = 0;
        tp = 1;
    }
    sp->temperature = (float)t;
    sp->top_p = (float)tp;
    sp->min_p = (float)mp;
    sp->typical_p = (float)typ;
    sp->top_k = (int32_t)tk;
    sp->presence_penalty = (float)pp;
    sp->frequency_penalty = (float)fp;
    sp->repeat_penalty = (float)rp;
    if (absent(json_object_get(b, "seed"))) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        sp->seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)b << 16);
    } else {
        sp->seed = (uint64_t)seed;
    }
    const json_t *lb = json_object_get(b, "logit_bias");
    if (!absent(lb)) {
        if (!json_is_object(lb)) return api_fail(e, 400, "logit_bias", "'logit_bias' must be an object of token id -> bias");
        size_t n = json_object_size(lb);
        if (n > 1024) return api_fail(e, 400, "logit_bias", "'logit_bias' has more than 1024 entries");
        *bias = rf_calloc(n ? n : 1, sizeof **bias);
        if (!*bias) return api_fail(e, 500, NULL, "out of memory");
        const char *k;
        json_t *v;
        int32_t i = 0;
        json_object_foreach((json_t *)lb, k, v) {
            char *end;
            long id = strtol(k, &end, 10);
            if (!*k || *end || id < 0 || id >= nv)
                return api_fail(e, 400, "logit_bias", "logit_bias key '%s' is not a token id of this model (0..%lld)", k, (long long)nv - 1);
            if (!json_is_number(v) || json_number_value(v) < -100 || json_number_value(v) > 100)
                return api_fail(e, 400, "logit_bias", "logit_bias values must be numbers between -100 and 100");
            double d = json_number_value(v);
            (*bias)[i++] = (rf_logit_bias){(int32_t)id, d <= -100 ? -INFINITY : (float)d};
        }
        sp->bias = *bias;
        sp->n_bias = i;
    }
    return true;
}

/* stop: a string or an array of up to 16 strings; pointers borrowed from b. */
static bool parse_stop(const json_t *b, const char **stops, int *n, api_err *e) {
    *n = 0;
    const json_t *v = json_object_get(b, "stop");
    if (absent(v)) return true;
    if (json_is_string(v)) {
        stops[(*n)++] = json_string_value(v);
        return true;
    }
    if (!json_is_array(v) || json_array_size(v) > API_MAX_STOPS)
        return api_fail(e, 400, "stop", "'stop' must be a string or an array of at most %d strings", API_MAX_STOPS);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) return api_fail(e, 400, "stop", "'stop' must be a string or an array of strings");
        if (json_string_length(s) > 1024) return api_fail(e, 400, "stop", "stop strings are limited to 1024 bytes");
        stops[(*n)++] = json_string_value(s);
    }
    return true;
}

/* ---- calls and jobs ----------------------------------------------------------------- */

static api_call *call_new(srv_req *rq, call_kind kind, const char *prefix) {
    api_call *c = rf_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->kind = kind;
    c->srv = rq->srv;
    snprintf(c->id, sizeof c->id, "%s%s", prefix, rq->id);
    c->created = (int64_t)time(NULL);
    return c;
}

void api_free(api_call *c) {
    if (!c) return;
    for (int i = 0; i < c->n_jobs; i++) {
        if (c->jobs[i].j) rf_sjob_cancel(c->jobs[i].j);
        rf_sjob_release(c->jobs[i].j);
    }
    rf_free(c->jobs);
    for (int i = 0; i < c->n_prompts; i++) rf_free(c->echo_text ? c->echo_text[i] : NULL);
    rf_free(c->echo_text);
    rf_free(c->prompt_len);
    json_decref(c->tools);
    ctxapi_chat_free(c->ctx);
    rf_free(c);
}

void api_cancel(api_call *c) {
    for (int i = 0; i < c->n_jobs; i++)
        if (c->jobs[i].j) rf_sjob_cancel(c->jobs[i].j);
}

bool api_done(api_call *c) {
    for (int i = 0; i < c->n_jobs; i++) {
        rf_sjob_lock(c->jobs[i].j);
        bool d = rf_sjob_output(c->jobs[i].j)->done;
        rf_sjob_unlock(c->jobs[i].j);
        if (!d) return false;
    }
    return true;
}

static const char *const finish_names[RF_SF_COUNT] = {
    [RF_SF_NONE] = NULL,       [RF_SF_STOP] = "stop",        [RF_SF_LENGTH] = "length", [RF_SF_CANCEL] = "stop",
    [RF_SF_TIMEOUT] = "error", [RF_SF_SHUTDOWN] = "error",   [RF_SF_ERROR] = "error",
};

void api_usage(api_call *c, int64_t *n_prompt, int64_t *n_gen, double *ttft, const char **finish) {
    *n_prompt = *n_gen = 0;
    *ttft = 0;
    *finish = NULL;
    for (int i = 0; i < c->n_prompts; i++) *n_prompt += c->prompt_len[i];
    for (int i = 0; i < c->n_jobs; i++) {
        rf_sjob_lock(c->jobs[i].j);
        const rf_sjob_out *o = rf_sjob_output(c->jobs[i].j);
        *n_gen += o->n_gen;
        if (i == 0 && o->t_first > 0) *ttft = o->t_first - o->t_submit;
        if (i == 0) *finish = finish_names[o->finish];
        rf_sjob_unlock(c->jobs[i].j);
    }
}

static void job_ud_release(void *ud) { req_unref(ud); }

/* Creates one job for rq (it holds a reference on rq until it is freed). */
static bool add_job(srv_req *rq, api_call *c, const rf_sjob_params *base, const int32_t *ids, int64_t n, int prompt,
                    api_err *e) {
    rf_sjob_params p = *base;
    p.prompt = ids;
    p.n_prompt = n;
    p.timeout_s = rq->srv->o.request_timeout_s;
    p.notify = req_notify;
    p.notify_ud = rq;
    p.ud_release = job_ud_release;
    req_ref(rq);
    rf_error err = {0};
    rf_sjob *j = NULL;
    rf_status st = rf_sjob_create(rq->srv->sched, &p, &j, &err);
    if (st != RF_OK) {
        req_unref(rq);
        api_fail(e, st == RF_E_NOMEM ? 500 : 400, c->kind == CALL_CHAT ? "messages" : c->kind == CALL_EMBEDDING ? "input" : "prompt",
                 "%s", err.msg);
        if (st == RF_E_RANGE) e->code = "context_length_exceeded";
        return false;
    }
    c->jobs[c->n_jobs++] = (api_job){.j = j, .prompt = prompt};
    return true;
}

/* Submits every job and starts the answer. On a full queue nothing runs
 * and the client gets a 429. Takes ownership of c. */
static enum MHD_Result start_call(srv_req *rq, api_call *c) {
    rq->call = c;
    rq->stream = c->stream;
    req_register(rq);
    for (int i = 0; i < c->n_jobs; i++) {
        rf_submit r = rf_sched_submit(rq->srv->sched, c->jobs[i].j);
        if (r == RF_SUBMIT_OK) continue;
        api_cancel(c);
        if (r == RF_SUBMIT_STOPPING)
            return respond_error(rq, 503, "server_error", NULL, "shutting_down", "the server is shutting down");
        return respond_error(rq, 429, "rate_limit_error", NULL, "queue_full",
                             "the server is busy: the request queue is full; retry later");
    }
    return c->stream ? respond_stream(rq) : respond_when_done(rq);
}

/* ---- logprobs ----------------------------------------------------------------------- */

static json_t *bytes_array(const char *s, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

static json_t *token_text(const rf_tokenizer *tok, int32_t id, size_t *len) {
    size_t n = 0;
    const char *p = rf_token_piece(tok, id, &n);
    if (len) *len = p ? n : 0;
    return json_lossy_string(p ? p : "", p ? n : 0);
}

/* Chat format: [{token, logprob, bytes, top_logprobs: [...]}] */
static json_t *chat_logprobs(const rf_tokenizer *tok, const rf_stoken *t, int64_t n, int top) {
    json_t *a = json_array();
    for (int64_t i = 0; i < n; i++) {
        size_t pl = 0;
        const char *p = rf_token_piece(tok, t[i].id, &pl);
        json_t *o = json_object();
        json_object_set_new(o, "token", token_text(tok, t[i].id, NULL));
        json_object_set_new(o, "logprob", json_real(t[i].logprob));
        json_object_set_new(o, "bytes", bytes_array(p ? p : "", p ? pl : 0));
        json_t *tops = json_array();
        for (int k = 0; k < top && k < t[i].n_top; k++) {
            const char *q = rf_token_piece(tok, t[i].top_ids[k], &pl);
            json_t *x = json_object();
            json_object_set_new(x, "token", token_text(tok, t[i].top_ids[k], NULL));
            json_object_set_new(x, "logprob", json_real(t[i].top_logprobs[k]));
            json_object_set_new(x, "bytes", bytes_array(q ? q : "", q ? pl : 0));
            json_array_append_new(tops, x);
        }
        json_object_set_new(o, "top_logprobs", tops);
        json_array_append_new(a, o);
    }
    json_t *r = json_object();
    json_object_set_new(r, "content", a);
    return r;
}

/* Completions (legacy) format: {tokens, token_logprobs, top_logprobs, text_offset}. */
static json_t *legacy_logprobs(const rf_tokenizer *tok, const rf_stoken *t, int64_t n, int top, size_t *off) {
    json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    for (int64_t i = 0; i < n; i++) {
        size_t pl = 0;
        json_array_append_new(toks, token_text(tok, t[i].id, &pl));
        json_array_append_new(lps, json_real(t[i].logprob));
        json_array_append_new(offs, json_integer((json_int_t)*off));
        *off += pl;
        json_t *m = json_object();
        for (int k = 0; k < top && k < t[i].n_top; k++) {
            json_t *s = token_text(tok, t[i].top_ids[k], NULL);
            json_object_set_new(m, json_string_value(s), json_real(t[i].top_logprobs[k]));
            json_decref(s);
        }
        json_array_append_new(tops, m);
    }
    json_t *r = json_object();
    json_object_set_new(r, "tokens", toks);
    json_object_set_new(r, "token_logprobs", lps);
    json_object_set_new(r, "top_logprobs", tops);
    json_object_set_new(r, "text_offset", offs);
    return r;
}

/* ---- answers --------------------------------------------------------------------------- */

/* Jobs that end without an answer: the HTTP status and error code to send
 * (status 0: the job answered). */
static const struct {
    int status;
    const char *code, *msg;
} finish_errors[RF_SF_COUNT] = {
    [RF_SF_TIMEOUT] = {503, "timeout", "the request timed out waiting for a free slot"},
    [RF_SF_SHUTDOWN] = {503, "shutting_down", "the server is shutting down"},
    [RF_SF_ERROR] = {500, "engine_error", "engine error"},
};

static bool job_failed(const rf_sjob_out *o, int *status, const char **code, const char **msg) {
    if (!finish_errors[o->finish].status) return false;
    *status = finish_errors[o->finish].status;
    *code = finish_errors[o->finish].code;
    *msg = o->finish == RF_SF_ERROR && o->error ? o->error : finish_errors[o->finish].msg;
    return true;
}

static json_t *usage_json(api_call *c, int64_t n_gen, int64_t n_cached) {
    int64_t np = 0;
    for (int i = 0; i < c->n_prompts; i++) np += c->prompt_len[i];
    json_t *u = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(np));
    json_object_set_new(u, "completion_tokens", json_integer(n_gen));
    json_object_set_new(u, "total_tokens", json_integer(np + n_gen));
    json_t *d = json_object();
    json_object_set_new(d, "cached_tokens", json_integer(n_cached));
    json_object_set_new(u, "prompt_tokens_details", d);
    return u;
}

static json_t *envelope(api_call *c, const char *object) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(c->id));
    json_object_set_new(o, "object", json_string(object));
    json_object_set_new(o, "created", json_integer(c->created));
    json_object_set_new(o, "model", json_string(c->srv->model_id));
    json_object_set_new(o, "system_fingerprint", json_string("rocmforge-" RF_VERSION_STRING));
    return o;
}

/* The chat message of a finished choice: content and/or tool calls. */
static json_t *chat_message(api_call *c, int k, const char *text, size_t len, const char **finish) {
    json_t *m = json_object();
    json_object_set_new(m, "role", json_string("assistant"));
    json_t *calls = NULL;
    char *rest = NULL;
    if (c->tool_mode != TM_NONE) {
        char seed[96];
        snprintf(seed, sizeof seed, "%s_%d", c->id + 9, k);
        calls = prompt_parse_tool_calls(text, len, c->tools, seed, &rest);
    }
    if (calls) {
        json_object_set_new(m, "content", rest ? json_string(rest) : json_null());
        json_object_set_new(m, "tool_calls", calls);
        *finish = "tool_calls";
    } else {
        json_object_set_new(m, "content", json_stringn(text, len));
    }
    rf_free(rest);
    return m;
}

enum MHD_Result api_final(srv_req *rq) {
    api_call *c = rq->call;
    const rf_tokenizer *tok = c->srv->eng->tok;
    json_t *choices = json_array(), *data = NULL;
    int64_t n_gen = 0, n_cached = 0;
    for (int k = 0; k < c->n_jobs; k++) {
        rf_sjob *j = c->jobs[k].j;
        rf_sjob_lock(j);
        const rf_sjob_out *o = rf_sjob_output(j);
        int status;
        const char *code, *msg;
        if (job_failed(o, &status, &code, &msg)) {
            char m[300];
            snprintf(m, sizeof m, "%s", msg);
            rf_sjob_unlock(j);
            json_decref(choices);
            json_decref(data);
            return respond_error(rq, status, "server_error", NULL, code, "%s", m);
        }
        n_gen += o->n_gen;
        if (k == 0) n_cached = o->n_cached;
        const char *finish = finish_names[o->finish];
        json_t *ch = json_object();
        json_object_set_new(ch, "index", json_integer(k));
        if (c->kind == CALL_EMBEDDING) {
            if (!data) data = json_array();
            json_t *e = json_object();
            json_object_set_new(e, "object", json_string("embedding"));
            json_object_set_new(e, "index", json_integer(k));
            if (c->embd_base64) {
                /* little-endian float32, base64: what the openai client decodes */
                static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                size_t nb = (size_t)o->n_embd * 4;
                const unsigned char *p = (const unsigned char *)o->embedding;
                srv_buf s = {0};
                for (size_t i = 0; i < nb; i += 3) {
                    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < nb ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < nb ? p[i + 2] : 0);
                    char q[4] = {b64[v >> 18 & 63], b64[v >> 12 & 63], i + 1 < nb ? b64[v >> 6 & 63] : '=', i + 2 < nb ? b64[v & 63] : '='};
                    sbuf_put(&s, q, 4);
                }
                json_object_set_new(e, "embedding", json_stringn(s.p ? s.p : "", s.len));
                sbuf_free(&s);
            } else {
                json_t *v = json_array();
                for (int64_t i = 0; i < o->n_embd; i++) json_array_append_new(v, json_real(o->embedding[i]));
                json_object_set_new(e, "embedding", v);
            }
            json_array_append_new(data, e);
            rf_sjob_unlock(j);
            json_decref(ch);
            continue;
        }
        if (c->kind == CALL_CHAT) {
            json_object_set_new(ch, "message", chat_message(c, k, o->text, o->text_len, &finish));
            json_object_set_new(ch, "logprobs", c->logprobs ? chat_logprobs(tok, o->toks, o->n_toks, c->top_logprobs) : json_null());
        } else {
            const char *echo = c->echo ? c->echo_text[c->jobs[k].prompt] : NULL;
            srv_buf t = {0};
            if (echo) sbuf_puts(&t, echo);
            sbuf_put(&t, o->text, o->text_len);
            json_object_set_new(ch, "text", json_stringn(t.p ? t.p : "", t.len));
            size_t off = echo ? strlen(echo) : 0;
            sbuf_free(&t);
            json_object_set_new(ch, "logprobs", c->logprobs ? legacy_logprobs(tok, o->toks, o->n_toks, c->top_logprobs, &off) : json_null());
        }
        json_object_set_new(ch, "finish_reason", json_string(finish ? finish : "stop"));
        rf_sjob_unlock(j);
        json_array_append_new(choices, ch);
    }
    json_t *r;
    if (c->kind == CALL_EMBEDDING) {
        json_decref(choices);
        r = json_object();
        json_object_set_new(r, "object", json_string("list"));
        json_object_set_new(r, "data", data);
        json_object_set_new(r, "model", json_string(c->srv->model_id));
        int64_t np = 0;
        for (int i = 0; i < c->n_prompts; i++) np += c->prompt_len[i];
        json_t *u = json_object();
        json_object_set_new(u, "prompt_tokens", json_integer(np));
        json_object_set_new(u, "total_tokens", json_integer(np));
        json_object_set_new(r, "usage", u);
    } else {
        r = envelope(c, c->kind == CALL_CHAT ? "chat.completion" : "text_completion");
        json_object_set_new(r, "choices", choices);
        json_object_set_new(r, "usage", usage_json(c, n_gen, n_cached));
        if (c->ctx) ctxapi_chat_final(c->srv, c->ctx, r);
    }
    return respond_json(rq, 200, r);
}

/* ---- streams ------------------------------------------------------------------------------ */

static void sse_event(srv_buf *out, json_t *v) {
    char *t = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!t) {
        out->oom = true;
        return;
    }
    sbuf_puts(out, "data: ");
    sbuf_puts(out, t);
    sbuf_puts(out, "\n\n");
    free(t);
}

static json_t *chunk(api_call *c, int k, json_t *delta_or_text, json_t *logprobs, const char *finish) {
    json_t *o = envelope(c, c->kind == CALL_CHAT ? "chat.completion.chunk" : "text_completion");
    json_t *ch = json_object();
    json_object_set_new(ch, "index", json_integer(k));
    json_object_set_new(ch, c->kind == CALL_CHAT ? "delta" : "text", delta_or_text);
    json_object_set_new(ch, "logprobs", logprobs ? logprobs : json_null());
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *a = json_array();
    json_array_append_new(a, ch);
    json_object_set_new(o, "choices", a);
    if (c->include_usage) json_object_set_new(o, "usage", json_null());
    return o;
}

static json_t *delta(const char *role, const char *content, size_t len) {
    json_t *d = json_object();
    if (role) json_object_set_new(d, "role", json_string(role));
    if (content) json_object_set_new(d, "content", json_stringn(content, len));
    return d;
}

bool api_stream_pull(srv_req *rq, srv_buf *out) {
    api_call *c = rq->call;
    const rf_tokenizer *tok = c->srv->eng->tok;
    if (c->done_sent) return true;
    bool all_final = true;
    int64_t n_gen = 0, n_cached = 0;
    bool held = c->tool_mode != TM_NONE; /* answer held until the end (tool-call parsing) */
    for (int k = 0; k < c->n_jobs; k++) {
        api_job *aj = &c->jobs[k];
        if (c->kind == CALL_CHAT && !aj->role_sent) {
            json_t *first = chunk(c, k, delta("assistant", "", 0), NULL, NULL);
            json_t *cx = ctxapi_chat_stream_info(c->ctx);
            if (cx) json_object_set_new(first, "context", cx);
            sse_event(out, first);
            aj->role_sent = true;
        }
        if (aj->final_sent) {
            rf_sjob_lock(aj->j);
            n_gen += rf_sjob_output(aj->j)->n_gen;
            if (k == 0) n_cached = rf_sjob_output(aj->j)->n_cached;
            rf_sjob_unlock(aj->j);
            continue;
        }
        rf_sjob_lock(aj->j);
        const rf_sjob_out *o = rf_sjob_output(aj->j);
        bool done = o->done;
        n_gen += o->n_gen;
        if (k == 0) n_cached = o->n_cached;
        bool fresh = o->text_len > aj->text_pos || o->n_toks > aj->tok_pos;
        const char *echo = c->kind == CALL_COMPLETION && c->echo && !aj->echo_sent ? c->echo_text[aj->prompt] : NULL;
        if (echo) {
            aj->echo_sent = true;
            aj->text_off = strlen(echo);
        }
        if ((fresh || echo) && (!held || done)) {
            json_t *lp = NULL;
            if (c->logprobs && o->n_toks > aj->tok_pos)
                lp = c->kind == CALL_CHAT ? chat_logprobs(tok, o->toks + aj->tok_pos, o->n_toks - aj->tok_pos, c->top_logprobs)
                                          : legacy_logprobs(tok, o->toks + aj->tok_pos, o->n_toks - aj->tok_pos, c->top_logprobs, &aj->text_off);
            const char *txt = o->text + aj->text_pos;
            size_t tl = o->text_len - aj->text_pos;
            if (c->kind == CALL_CHAT) {
                if (held) {
                    const char *fin = NULL;
                    json_t *m = chat_message(c, k, txt, tl, &fin);
                    json_object_del(m, "role");
                    if (json_is_null(json_object_get(m, "content"))) json_object_del(m, "content");
                    /* streamed tool calls carry their index */
                    json_t *calls = json_object_get(m, "tool_calls");
                    for (size_t i = 0; i < json_array_size(calls); i++)
                        json_object_set_new(json_array_get(calls, i), "index", json_integer((json_int_t)i));
                    sse_event(out, chunk(c, k, m, lp, NULL));
                } else {
                    sse_event(out, chunk(c, k, delta(NULL, txt, tl), lp, NULL));
                }
            } else {
                srv_buf t = {0};
                if (echo) sbuf_puts(&t, echo);
                sbuf_put(&t, txt, tl);
                sse_event(out, chunk(c, k, json_stringn(t.p ? t.p : "", t.len), lp, NULL));
                sbuf_free(&t);
            }
            aj->text_pos = o->text_len;
            aj->tok_pos = o->n_toks;
        }
        if (done) {
            int status;
            const char *code, *msg;
            if (job_failed(o, &status, &code, &msg)) {
                json_t *e = json_object(), *w = json_object();
                json_object_set_new(e, "message", json_string(msg));
                json_object_set_new(e, "type", json_string("server_error"));
                json_object_set_new(e, "param", json_null());
                json_object_set_new(e, "code", json_string(code));
                json_object_set_new(w, "error", e);
                sse_event(out, w);
            } else {
                const char *finish = finish_names[o->finish];
                if (c->kind == CALL_CHAT && c->tool_mode != TM_NONE) {
                    char *rest = NULL;
                    char seed[96];
                    snprintf(seed, sizeof seed, "%s_%d", c->id + 9, k);
                    json_t *calls = prompt_parse_tool_calls(o->text, o->text_len, c->tools, seed, &rest);
                    if (calls) finish = "tool_calls";
                    json_decref(calls);
                    rf_free(rest);
                }
                sse_event(out, chunk(c, k, c->kind == CALL_CHAT ? json_object() : json_string(""), NULL, finish));
            }
            aj->final_sent = true;
        } else {
            all_final = false;
        }
        rf_sjob_unlock(aj->j);
    }
    if (!all_final) return false;
    if (c->include_usage) {
        json_t *o = envelope(c, c->kind == CALL_CHAT ? "chat.completion.chunk" : "text_completion");
        json_object_set_new(o, "choices", json_array());
        json_object_set_new(o, "usage", usage_json(c, n_gen, n_cached));
        sse_event(out, o);
    }
    sbuf_puts(out, "data: [DONE]\n\n");
    c->done_sent = true;
    return true;
}

/* ---- /v1/chat/completions ---------------------------------------------------------------- */

/* tools and tool_choice; builds the grammar of a forced call. */
static bool parse_tools(api_call *c, const json_t *b, rf_jgram **g, api_err *e) {
    const json_t *tools = json_object_get(b, "tools");
    const json_t *choice = json_object_get(b, "tool_choice");
    if (absent(tools)) {
        if (!absent(choice) && !(json_is_string(choice) && (strcmp(json_string_value(choice), "none") == 0 ||
                                                           strcmp(json_string_value(choice), "auto") == 0)))
            return api_fail(e, 400, "tool_choice", "'tool_choice' needs 'tools'");
        return true;
    }
    if (!json_is_array(tools)) return api_fail(e, 400, "tools", "'tools' must be an array");
    if (json_array_size(tools) == 0) return true;
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *t = json_array_get(tools, i), *fn = json_object_get(t, "function");
        if (!json_is_object(t) || !json_is_string(json_object_get(t, "type")) || strcmp(json_string_value(json_object_get(t, "type")), "function") != 0)
            return api_fail(e, 400, "tools", "tools[%zu] must be {\"type\": \"function\", \"function\": {...}}", i);
        if (!json_is_object(fn) || !json_is_string(json_object_get(fn, "name")))
            return api_fail(e, 400, "tools", "tools[%zu].function.name must be a string", i);
        const json_t *pa = json_object_get(fn, "parameters");
        if (pa && !json_is_object(pa)) return api_fail(e, 400, "tools", "tools[%zu].function.parameters must be an object", i);
    }
    const char *named = NULL;
    c->tool_mode = TM_AUTO;
    if (!absent(choice)) {
        if (json_is_string(choice)) {
            const char *s = json_string_value(choice);
            if (strcmp(s, "none") == 0) return (c->tool_mode = TM_NONE), true;
            else if (strcmp(s, "required") == 0) c->tool_mode = TM_FORCED;
            else if (strcmp(s, "auto") != 0) return api_fail(e, 400, "tool_choice", "'tool_choice' must be none, auto, required or a function");
        } else {
            named = json_string_value(json_object_get(json_object_get(choice, "function"), "name"));
            if (!json_is_object(choice) || !named) return api_fail(e, 400, "tool_choice", "'tool_choice' must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}");
            c->tool_mode = TM_FORCED;
        }
    }
    c->tools = json_incref((json_t *)tools);
    if (c->tool_mode != TM_FORCED) return true;
    /* the forced call: {"name": one of the tools, "arguments": its parameters} */
    json_t *names = json_array();
    const json_t *params = NULL;
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *fn = json_object_get(json_array_get(tools, i), "function");
        const char *n = json_string_value(json_object_get(fn, "name"));
        if (named && strcmp(n, named) != 0) continue;
        json_array_append_new(names, json_string(n));
        params = json_object_get(fn, "parameters");
    }
    if (json_array_size(names) == 0) {
        json_decref(names);
        return api_fail(e, 400, "tool_choice", "tool_choice names '%s', which is not in 'tools'", named);
    }
    json_t *nm = json_object(), *props = json_object(), *sch = json_object();
    json_object_set_new(nm, "enum", names);
    json_object_set_new(props, "name", nm);
    json_t *args;
    if (json_array_size(names) == 1 && params) {
        args = json_deep_copy(params);
        /* bare properties without "type" still mean an object */
        if (!json_object_get(args, "type")) json_object_set_new(args, "type", json_string("object"));
    } else {
        args = json_object();
        json_object_set_new(args, "type", json_string("object"));
    }
    json_object_set_new(props, "arguments", args);
    json_object_set_new(sch, "type", json_string("object"));
    json_object_set_new(sch, "properties", props);
    json_t *req = json_array();
    json_array_append_new(req, json_string("name"));
    json_array_append_new(req, json_string("arguments"));
    json_object_set_new(sch, "required", req);
    rf_error err = {0};
    rf_status st = rf_jgram_compile(sch, g, &err);
    json_decref(sch);
    if (st != RF_OK) return api_fail(e, st == RF_E_NOMEM ? 500 : 400, "tools", "%s", err.msg);
    return true;
}

static bool parse_response_format(const json_t *b, rf_jgram **g, api_err *e) {
    const json_t *rf = json_object_get(b, "response_format");
    if (absent(rf)) return true;
    const char *ty = json_string_value(json_object_get(rf, "type"));
    if (!json_is_object(rf) || !ty) return api_fail(e, 400, "response_format", "'response_format' must be an object with a 'type'");
    if (strcmp(ty, "text") == 0) return true;
    const json_t *schema = NULL;
    if (strcmp(ty, "json_schema") == 0) {
        const json_t *js = json_object_get(rf, "json_schema");
        schema = json_object_get(js, "schema");
        if (!json_is_object(js) || !(json_is_object(schema) || json_is_boolean(schema)))
            return api_fail(e, 400, "response_format", "response_format json_schema needs {\"json_schema\": {\"name\": ..., \"schema\": {...}}}");
    } else if (strcmp(ty, "json_object") != 0) {
        return api_fail(e, 400, "response_format", "response_format type must be text, json_object or json_schema");
    }
    rf_error err = {0};
    rf_status st = rf_jgram_compile(schema, g, &err);
    if (st != RF_OK) return api_fail(e, st == RF_E_NOMEM ? 500 : 400, "response_format", "%s", err.msg);
    return true;
}

/* max_tokens / max_completion_tokens, n, stream, stream_options. */
static bool parse_common(rf_server *srv, const json_t *b, api_call *c, int64_t *max_tokens, int64_t *n, api_err *e) {
    *max_tokens = -1;
    *n = 1;
    const char *user = NULL;
    if (!opt_int(b, "max_tokens", 1, INT32_MAX, max_tokens, e) || !opt_int(b, "max_completion_tokens", 1, INT32_MAX, max_tokens, e) ||
        !opt_int(b, "n", 1, srv->o.max_n, n, e) || !opt_bool(b, "stream", &c->stream, e) || !opt_string(b, "user", &user, e))
        return false;
    const json_t *so = json_object_get(b, "stream_options");
    if (!absent(so)) {
        if (!json_is_object(so)) return api_fail(e, 400, "stream_options", "'stream_options' must be an object");
        if (!opt_bool(so, "include_usage", &c->include_usage, e)) return false;
    }
    return true;
}

enum MHD_Result api_chat(srv_req *rq) {
    rf_server *srv = rq->srv;
    api_err e = {0};
    json_t *b = parse_body(rq, &e);
    if (!b) return send_err(rq, &e);
    api_call *c = call_new(rq, CALL_CHAT, "chatcmpl-");
    rf_logit_bias *bias = NULL;
    rf_jgram *g = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    const char *stops[API_MAX_STOPS];
    int n_stops = 0;
    int64_t max_tokens, n, top = 0;
    rf_sjob_params p = {0};
    enum MHD_Result ret;
    if (!c) { api_fail(&e, 500, NULL, "out of memory"); goto fail; }
    if (!check_model(srv, b, &e) || !parse_common(srv, b, c, &max_tokens, &n, &e) ||
        !parse_sampling(srv, b, &p.sample, &bias, &e) || !parse_stop(b, stops, &n_stops, &e) ||
        !opt_bool(b, "logprobs", &c->logprobs, &e) || !opt_int(b, "top_logprobs", 0, RF_MAX_TOP_LOGPROBS, &top, &e) ||
        !parse_tools(c, b, &g, &e))
        goto fail;
    if (top > 0 && !c->logprobs) { api_fail(&e, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true"); goto fail; }
    if (!absent(json_object_get(b, "response_format"))) {
        if (g) { api_fail(&e, 400, "response_format", "response_format cannot be combined with a forced tool call"); goto fail; }
        if (!parse_response_format(b, &g, &e)) goto fail;
    }
    c->top_logprobs = (int)top;
    json_t *ctx_msgs = NULL; /* messages with retrieved context, when asked for */
    if (!ctxapi_chat_prepare(srv, b, &ctx_msgs, &c->ctx, &e)) goto fail;
    bool ok = prompt_chat(srv, ctx_msgs ? ctx_msgs : json_object_get(b, "messages"), c->tools, c->tool_mode != TM_NONE, &ids, &n_ids, &e);
    json_decref(ctx_msgs);
    if (!ok) goto fail;
    c->n_prompts = 1;
    c->prompt_len = rf_calloc(1, sizeof(int64_t));
    c->jobs = rf_calloc((size_t)n, sizeof(api_job));
    if (!c->prompt_len || !c->jobs) { api_fail(&e, 500, NULL, "out of memory"); goto fail; }
    c->prompt_len[0] = (int64_t)n_ids;
    p.max_tokens = (int32_t)max_tokens;
    p.stops = stops;
    p.n_stops = n_stops;
    p.logprobs = c->logprobs;
    p.sample.n_top_logprobs = (int32_t)top;
    p.grammar = g;
    uint64_t seed0 = p.sample.seed;
    for (int64_t i = 0; i < n; i++) {
        p.sample.seed = seed0 + (uint64_t)i;
        if (!add_job(rq, c, &p, ids, (int64_t)n_ids, 0, &e)) goto fail;
    }
    rf_free(ids);
    rf_free(bias);
    rf_jgram_unref(g);
    json_decref(b);
    return start_call(rq, c);
fail:
    ret = send_err(rq, &e);
    api_free(c);
    rf_free(ids);
    rf_free(bias);
    rf_jgram_unref(g);
    json_decref(b);
    return ret;
}

/* ---- /v1/completions ---------------------------------------------------------------------- */

/* One prompt: a string or an array of token ids. *ids: caller frees. */
static bool completion_prompt(rf_server *srv, const json_t *v, int32_t **ids, size_t *n, char **echo, api_err *e) {
    const rf_tokenizer *tok = srv->eng->tok;
    rf_error err = {0};
    if (json_is_string(v)) {
        if (rf_tokenize(tok, json_string_value(v), json_string_length(v), rf_tokenizer_add_bos(tok), true, ids, n, &err) != RF_OK)
            return api_fail(e, 400, "prompt", "cannot tokenize the prompt: %s", err.msg);
        *echo = rf_strndup(json_string_value(v), json_string_length(v));
        return *echo ? true : api_fail(e, 500, NULL, "out of memory");
    }
    size_t k = json_array_size(v);
    if (!json_is_array(v) || k == 0) return api_fail(e, 400, "prompt", "a prompt must be a string or a non-empty array of token ids");
    *ids = rf_malloc(k * sizeof(int32_t));
    if (!*ids) return api_fail(e, 500, NULL, "out of memory");
    int32_t nv = rf_tokenizer_n_vocab(tok);
    for (size_t i = 0; i < k; i++) {
        const json_t *t = json_array_get(v, i);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= nv)
            return api_fail(e, 400, "prompt", "prompt token %zu is not a token id of this model (0..%d)", i, nv - 1);
        (*ids)[i] = (int32_t)json_integer_value(t);
    }
    *n = k;
    size_t tl = 0;
    if (rf_detokenize(tok, *ids, k, 0, echo, &tl, &err) != RF_OK) return api_fail(e, 400, "prompt", "%s", err.msg);
    return true;
}

/* The prompt field: a string, token ids, or a list of either. */
static bool prompt_list(const json_t *pr, const json_t **items, size_t *n, bool *single, api_err *e) {
    *single = false;
    if (absent(pr)) return api_fail(e, 400, "prompt", "'prompt' is required");
    if (json_is_string(pr)) { *single = true; *n = 1; return true; }
    if (!json_is_array(pr) || json_array_size(pr) == 0) return api_fail(e, 400, "prompt", "'prompt' must be a string, token ids, or a list of those");
    if (json_is_integer(json_array_get(pr, 0))) { *single = true; *n = 1; return true; }
    *n = json_array_size(pr);
    if (*n > 64) return api_fail(e, 400, "prompt", "at most 64 prompts per request");
    *items = pr;
    return true;
}

enum MHD_Result api_completions(srv_req *rq) {
    rf_server *srv = rq->srv;
    api_err e = {0};
    json_t *b = parse_body(rq, &e);
    if (!b) return send_err(rq, &e);
    api_call *c = call_new(rq, CALL_COMPLETION, "cmpl-");
    rf_logit_bias *bias = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0, n_prompts = 0;
    const char *stops[API_MAX_STOPS], *suffix = NULL;
    int n_stops = 0;
    int64_t max_tokens, n, lp = -1;
    bool single;
    const json_t *list = NULL;
    rf_sjob_params p = {0};
    enum MHD_Result ret;
    if (!c) { api_fail(&e, 500, NULL, "out of memory"); goto fail; }
    if (!check_model(srv, b, &e) || !parse_common(srv, b, c, &max_tokens, &n, &e) ||
        !parse_sampling(srv, b, &p.sample, &bias, &e) || !parse_stop(b, stops, &n_stops, &e) ||
        !opt_bool(b, "echo", &c->echo, &e) || !opt_int(b, "logprobs", 0, RF_MAX_TOP_LOGPROBS, &lp, &e) ||
        !opt_string(b, "suffix", &suffix, &e) || !prompt_list(json_object_get(b, "prompt"), &list, &n_prompts, &single, &e))
        goto fail;
    if (suffix && *suffix) { api_fail(&e, 400, "suffix", "'suffix' (fill-in-the-middle) is not supported by this model"); goto fail; }
    if ((int64_t)n_prompts * n > API_MAX_JOBS) { api_fail(&e, 400, "n", "too many choices (prompts x n > %d)", API_MAX_JOBS); goto fail; }
    c->logprobs = lp >= 0;
    c->top_logprobs = lp > 0 ? (int)lp : 0;
    c->n_prompts = (int)n_prompts;
    c->prompt_len = rf_calloc(n_prompts, sizeof(int64_t));
    c->echo_text = rf_calloc(n_prompts, sizeof(char *));
    c->jobs = rf_calloc(n_prompts * (size_t)n, sizeof(api_job));
    if (!c->prompt_len || !c->echo_text || !c->jobs) { api_fail(&e, 500, NULL, "out of memory"); goto fail; }
    p.max_tokens = max_tokens < 0 ? 16 : (int32_t)max_tokens; /* OpenAI's default for completions */
    p.stops = stops;
    p.n_stops = n_stops;
    p.logprobs = c->logprobs;
    p.sample.n_top_logprobs = c->top_logprobs;
    uint64_t seed0 = p.sample.seed;
    for (size_t q = 0; q < n_prompts; q++) {
        const json_t *v = single ? json_object_get(b, "prompt") : json_array_get(list, q);
        if (!completion_prompt(srv, v, &ids, &n_ids, &c->echo_text[q], &e)) goto fail;
        c->prompt_len[q] = (int64_t)n_ids;
        for (int64_t i = 0; i < n; i++) {
            p.sample.seed = seed0 + (uint64_t)i;
            if (!add_job(rq, c, &p, ids, (int64_t)n_ids, (int)q, &e)) goto fail;
        }
        rf_free(ids);
        ids = NULL;
    }
    rf_free(bias);
    json_decref(b);
    return start_call(rq, c);
fail:
    ret = send_err(rq, &e);
    api_free(c);
    rf_free(ids);
    rf_free(bias);
    json_decref(b);
    return ret;
}

/* ---- /v1/embeddings ------------------------------------------------------------------------ */

enum MHD_Result api_embeddings(srv_req *rq) {
    rf_server *srv = rq->srv;
    const rf_tokenizer *tok = srv->eng->tok;
    api_err e = {0};
    json_t *b = parse_body(rq, &e);
    if (!b) return send_err(rq, &e);
    api_call *c = call_new(rq, CALL_EMBEDDING, "embd-");
    int32_t *ids = NULL;
    size_t n_ids = 0, n_in = 0;
    const char *fmt = NULL;
    int64_t dims = -1;
    bool single;
    const json_t *list = NULL, *input = json_object_get(b, "input");
    rf_sjob_params p = {.embedding = true, .sample = rf_sample_params_default()};
    enum MHD_Result ret;
    if (!c) { api_fail(&e, 500, NULL, "out of memory"); goto fail; }
    if (!check_model(srv, b, &e) || !opt_string(b, "encoding_format", &fmt, &e) || !opt_int(b, "dimensions", 1, INT32_MAX, &dims, &e))
        goto fail;
    if (fmt && strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0) {
        api_fail(&e, 400, "encoding_format", "'encoding_format' must be float or base64");
        goto fail;
    }
    c->embd_base64 = fmt && strcmp(fmt, "base64") == 0;
    if (dims >= 0 && dims != srv->eng->model->hp.n_embd) {
        api_fail(&e, 400, "dimensions", "this model's embeddings have %lld dimensions", (long long)srv->eng->model->hp.n_embd);
        goto fail;
    }
    if (absent(input)) { api_fail(&e, 400, "input", "'input' is required"); goto fail; }
    if (json_is_string(input) || (json_is_array(input) && json_is_integer(json_array_get(input, 0)))) {
        single = true;
        n_in = 1;
    } else if (json_is_array(input) && json_array_size(input) > 0 && json_array_size(input) <= API_MAX_JOBS) {
        single = false;
        n_in = json_array_size(input);
        list = input;
    } else {
        api_fail(&e, 400, "input", "'input' must be a string, token ids, or a non-empty list of up to %d of those", API_MAX_JOBS);
        goto fail;
    }
    c->n_prompts = (int)n_in;
    c->prompt_len = rf_calloc(n_in, sizeof(int64_t));
    c->jobs = rf_calloc(n_in, sizeof(api_job));
    if (!c->prompt_len || !c->jobs) { api_fail(&e, 500, NULL, "out of memory"); goto fail; }
    for (size_t q = 0; q < n_in; q++) {
        const json_t *v = single ? input : json_array_get(list, q);
        rf_error err = {0};
        if (json_is_string(v)) {
            if (rf_tokenize(tok, json_string_value(v), json_string_length(v), rf_tokenizer_add_bos(tok), false, &ids, &n_ids, &err) != RF_OK) {
                api_fail(&e, 400, "input", "cannot tokenize input %zu: %s", q, err.msg);
                goto fail;
            }
        } else if (json_is_array(v) && json_array_size(v) > 0) {
            n_ids = json_array_size(v);
            if (!(ids = rf_malloc(n_ids * sizeof(int32_t)))) { api_fail(&e, 500, NULL, "out of memory"); goto fail; }
            for (size_t i = 0; i < n_ids; i++) {
                const json_t *t = json_array_get(v, i);
                if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= rf_tokenizer_n_vocab(tok)) {
                    api_fail(&e, 400, "input", "input %zu: token %zu is not a token id of this model", q, i);
                    goto fail;
                }
                ids[i] = (int32_t)json_integer_value(t);
            }
        } else {
            api_fail(&e, 400, "input", "input %zu must be a non-empty string or token-id array", q);
            goto fail;
        }
        if (n_ids == 0) { api_fail(&e, 400, "input", "input %zu is empty", q); goto fail; }
        c->prompt_len[q] = (int64_t)n_ids;
        if (!add_job(rq, c, &p, ids, (int64_t)n_ids, (int)q, &e)) goto fail;
        rf_free(ids);
        ids = NULL;
    }
    json_decref(b);
    return start_call(rq, c);
fail:
    ret = send_err(rq, &e);
    api_free(c);
    rf_free(ids);
    json_decref(b);
    return ret;
}

/* ---- /v1/models ------------------------------------------------------------------------------ */

static json_t *model_obj(rf_server *srv) {
    json_t *m = json_object();
    json_object_set_new(m, "id", json_string(srv->model_id));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(srv->created));
    json_object_set_new(m, "owned_by", json_string("rocmforge"));
    json_t *meta = json_object();
    json_object_set_new(meta, "file", json_string(srv->model_file));
    json_object_set_new(meta, "architecture", json_string(srv->eng->model->hp.arch_name));
    json_object_set_new(meta, "n_ctx", json_integer(rf_sched_n_ctx(srv->sched)));
    json_object_set_new(meta, "n_embd", json_integer(srv->eng->model->hp.n_embd));
    json_object_set_new(meta, "n_vocab", json_integer(rf_tokenizer_n_vocab(srv->eng->tok)));
    json_object_set_new(m, "meta", meta);
    return m;
}

enum MHD_Result api_models(srv_req *rq) {
    json_t *r = json_object(), *a = json_array();
    json_array_append_new(a, model_obj(rq->srv));
    json_object_set_new(r, "object", json_string("list"));
    json_object_set_new(r, "data", a);
    return respond_json(rq, 200, r);
}

enum MHD_Result api_model_get(srv_req *rq) {
    const char *id = rq->path + strlen("/v1/models/");
    if (strcmp(id, rq->srv->model_id) == 0 || strcmp(id, rq->srv->model_file) == 0) return respond_json(rq, 200, model_obj(rq->srv));
    return respond_error(rq, 404, "invalid_request_error", "model", "model_not_found", "the model '%s' does not exist", id);
}
