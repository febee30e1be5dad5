/*
 * prompt.c - from OpenAI chat messages to prompt tokens, and tool calls
 * back out of generated text.
 *
 * Messages are checked and normalised (content-part arrays joined, the
 * "developer" role read as "system", assistant tool calls and tool results
 * kept for templates that render them, written into the text otherwise),
 * rendered with the model's chat template (add_generation_prompt = true),
 * and tokenized.
 *
 * Special tokens: the template's own markers (<|im_start|>, ...) must
 * become control tokens, but the same text typed by a user must not. A
 * message whose content contains control-token text is rendered with a
 * placeholder in its place; the rendered prompt is then tokenized in
 * pieces, template text with special-token parsing and that content
 * without it. Other messages take the plain path (one tokenize call over
 * the whole prompt, exactly what Hugging Face's apply_chat_template +
 * tokenize gives). Cost of the split path: merges cannot cross a
 * placeholder boundary, which only ever touches such messages.
 *
 * Tools: when the template itself uses `tools`, the tool list goes in as
 * that variable; otherwise a system message describes the tools and asks
 * for <tool_call>{"name": ..., "arguments": ...}</tool_call> replies.
 */
#define _GNU_SOURCE /* memmem */
#include "server-impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool api_fail(api_err *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    e->param = param;
    e->type = status >= 500 ? "server_error" : "invalid_request_error";
    e->code = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return false;
}

rf_status prompt_setup(rf_server *srv, const char *tmpl_src, rf_error *err) {
    const rf_tokenizer *tok = srv->eng->tok;
    int32_t nv = rf_tokenizer_n_vocab(tok);
    int n = 0;
    for (int32_t i = 0; i < nv; i++) n += rf_token_attr(tok, i) == RF_TOKEN_CONTROL;
    srv->specials = rf_calloc((size_t)n + 1, sizeof(char *));
    srv->special_len = rf_calloc((size_t)n + 1, sizeof(size_t));
    if (!srv->specials || !srv->special_len) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    for (int32_t i = 0; i < nv; i++) {
        if (rf_token_attr(tok, i) != RF_TOKEN_CONTROL) continue;
        size_t len = 0;
        const char *t = rf_token_text(tok, i, &len);
        if (!t || len == 0) continue;
        if (!(srv->specials[srv->n_specials] = rf_strndup(t, len))) return rf_error_set(err, RF_E_NOMEM, "out of memory");
        srv->special_len[srv->n_specials++] = len;
    }
    srv->tmpl_tools = tmpl_src && strstr(tmpl_src, "tools");
    srv->tmpl_tool_calls = tmpl_src && strstr(tmpl_src, "tool_calls");
    return RF_OK;
}

void prompt_teardown(rf_server *srv) {
    for (int i = 0; i < srv->n_specials; i++) rf_free(srv->specials[i]);
    rf_free(srv->specials);
    rf_free(srv->special_len);
    srv->specials = NULL;
    srv->special_len = NULL;
    srv->n_specials = 0;
}

static bool has_special(const rf_server *srv, const char *s, size_t n) {
    for (int i = 0; i < srv->n_specials; i++) {
        size_t k = srv->special_len[i];
        for (size_t p = 0; p + k <= n; p++)
            if (s[p] == srv->specials[i][0] && memcmp(s + p, srv->specials[i], k) == 0) return true;
    }
    return false;
}

/* ---- messages ------------------------------------------------------------- */

static const char *const roles[] = {"system", "developer", "user", "assistant", "tool", "function"};

/* The text of a message's content: a string, or the text parts of an
 * array joined. New reference; NULL with *e set. */
static json_t *content_text(const json_t *c, int i, bool may_be_null, api_err *e) {
    if (!c || json_is_null(c)) {
        if (may_be_null) return json_string("");
        api_fail(e, 400, "messages", "messages[%d].content is required", i);
        return NULL;
    }
    if (json_is_string(c)) return json_incref((json_t *)c);
    if (!json_is_array(c)) {
        api_fail(e, 400, "messages", "messages[%d].content must be a string or an array of content parts", i);
        return NULL;
    }
    srv_buf b = {0};
    for (size_t k = 0; k < json_array_size(c); k++) {
        const json_t *part = json_array_get(c, k);
        const json_t *ty = json_object_get(part, "type");
        const json_t *tx = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(ty)) {
            sbuf_free(&b);
            api_fail(e, 400, "messages", "messages[%d].content[%zu] must be an object with a 'type'", i, k);
            return NULL;
        }
        if (strcmp(json_string_value(ty), "text") != 0) {
            sbuf_free(&b);
            api_fail(e, 400, "messages", "messages[%d].content[%zu]: content parts of type '%s' are not supported by this model (text only)",
                     i, k, json_string_value(ty));
            return NULL;
        }
        if (!json_is_string(tx)) {
            sbuf_free(&b);
            api_fail(e, 400, "messages", "messages[%d].content[%zu].text must be a string", i, k);
            return NULL;
        }
        sbuf_put(&b, json_string_value(tx), json_string_length(tx));
    }
    json_t *r = b.oom ? NULL : json_stringn(b.p ? b.p : "", b.len);
    sbuf_free(&b);
    if (!r) api_fail(e, 500, NULL, "out of memory");
    return r;
}

/* Writes assistant tool calls as <tool_call> blocks (templates that do not
 * know tool_calls). */
static void tool_calls_as_text(const json_t *calls, srv_buf *b) {
    for (size_t k = 0; k < json_array_size(calls); k++) {
        const json_t *fn = json_object_get(json_array_get(calls, k), "function");
        const json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");
        json_t *call = json_object();
        json_object_set(call, "name", name ? (json_t *)name : json_null());
        json_t *parsed = json_is_string(args) ? json_loads(json_string_value(args), JSON_DECODE_ANY, NULL) : NULL;
        json_object_set_new(call, "arguments", parsed ? parsed : args ? json_incref((json_t *)args) : json_object());
        char *t = json_dumps(call, JSON_COMPACT);
        json_decref(call);
        if (b->len) sbuf_puts(b, "\n");
        sbuf_printf(b, "<tool_call>\n%s\n</tool_call>", t ? t : "{}");
        free(t);
    }
}

static bool check_tool_calls(const json_t *calls, int i, api_err *e) {
    if (!json_is_array(calls)) return api_fail(e, 400, "messages", "messages[%d].tool_calls must be an array", i);
    for (size_t k = 0; k < json_array_size(calls); k++) {
        const json_t *fn = json_object_get(json_array_get(calls, k), "function");
        if (!json_is_object(fn) || !json_is_string(json_object_get(fn, "name")))
            return api_fail(e, 400, "messages", "messages[%d].tool_calls[%zu].function.name must be a string", i, k);
        const json_t *a = json_object_get(fn, "arguments");
        if (a && !json_is_string(a) && !json_is_object(a))
            return api_fail(e, 400, "messages", "messages[%d].tool_calls[%zu].function.arguments must be a string", i, k);
    }
    return true;
}

static json_t *tools_system_text(const json_t *tools) {
    srv_buf b = {0};
    sbuf_puts(&b, "You can call these functions:\n<tools>\n");
    for (size_t k = 0; k < json_array_size(tools); k++) {
        char *t = json_dumps(json_object_get(json_array_get(tools, k), "function"), JSON_COMPACT);
        if (t) sbuf_printf(&b, "%s\n", t);
        free(t);
    }
    sbuf_puts(&b, "</tools>\nTo call a function, reply with only:\n<tool_call>\n"
                  "{\"name\": <function name>, \"arguments\": <arguments as a JSON object>}\n</tool_call>");
    json_t *r = b.oom ? NULL : json_stringn(b.p, b.len);
    sbuf_free(&b);
    return r;
}

#define PH_OPEN "\xEE\x80\x80rfmsg"
#define PH_CLOSE "\xEE\x80\x80"

/* Appends the ids of text[0, n) to *all. */
static bool tokenize_append(const rf_tokenizer *tok, const char *text, size_t n, bool parse_special, int32_t **all,
                            size_t *n_all, size_t *cap, api_err *e) {
    if (n == 0) return true;
    int32_t *ids = NULL;
    size_t k = 0;
    rf_error err = {0};
    if (rf_tokenize(tok, text, n, false, parse_special, &ids, &k, &err) != RF_OK)
        return api_fail(e, 400, "messages", "cannot tokenize the prompt: %s", err.msg);
    if (*n_all + k > *cap) {
        size_t nc = (*n_all + k) * 2 + 16;
        int32_t *nb = rf_realloc(*all, nc * sizeof(int32_t));
        if (!nb) {
            rf_free(ids);
            return api_fail(e, 500, NULL, "out of memory");
        }
        *all = nb;
        *cap = nc;
    }
    memcpy(*all + *n_all, ids, k * sizeof(int32_t));
    *n_all += k;
    rf_free(ids);
    return true;
}

bool prompt_chat(rf_server *srv, const json_t *messages, const json_t *tools, bool tools_in_prompt, int32_t **out_ids,
                 size_t *out_n, api_err *e) {
    *out_ids = NULL;
    *out_n = 0;
    const rf_tokenizer *tok = srv->eng->tok;
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return api_fail(e, 400, "messages", "'messages' must be a non-empty array");
    json_t *msgs = json_array();
    json_t *raw = json_array(); /* the real content of messages rendered with a placeholder */
    bool ok = false;
    char *text = NULL;
    size_t text_len = 0;
    int32_t *ids = NULL;
    size_t n_ids = 0, cap = 0;
    json_t *ctx = NULL;
    for (size_t i = 0; i < json_array_size(messages); i++) {
        const json_t *m = json_array_get(messages, i);
        if (!json_is_object(m)) { api_fail(e, 400, "messages", "messages[%zu] must be an object", i); goto out; }
        const json_t *role = json_object_get(m, "role");
        const char *r = json_string_value(role);
        bool known = false;
        for (size_t k = 0; r && k < RF_ARRAY_LEN(roles); k++) known |= strcmp(r, roles[k]) == 0;
        if (!known) { api_fail(e, 400, "messages", "messages[%zu].role must be one of system, developer, user, assistant, tool", i); goto out; }
        if (strcmp(r, "developer") == 0) r = "system";
        bool assistant = strcmp(r, "assistant") == 0;
        const json_t *calls = json_object_get(m, "tool_calls");
        if (calls && json_is_null(calls)) calls = NULL;
        if (calls && (!assistant || !check_tool_calls(calls, (int)i, e))) {
            if (!assistant) api_fail(e, 400, "messages", "messages[%zu]: only assistant messages carry tool_calls", i);
            goto out;
        }
        json_t *content = content_text(json_object_get(m, "content"), (int)i, assistant, e);
        if (!content) goto out;
        json_t *nm = json_object();
        json_object_set_new(nm, "role", json_string(r));
        if (calls && srv->tmpl_tool_calls) {
            /* templates read arguments as a mapping (tool_call.arguments | tojson) */
            json_t *cc = json_deep_copy(calls);
            for (size_t k = 0; k < json_array_size(cc); k++) {
                json_t *fn = json_object_get(json_array_get(cc, k), "function");
                const json_t *a = json_object_get(fn, "arguments");
                json_t *p = json_is_string(a) ? json_loads(json_string_value(a), 0, NULL) : NULL;
                if (p) json_object_set_new(fn, "arguments", p);
            }
            json_object_set_new(nm, "tool_calls", cc);
        } else if (calls) {
            srv_buf b = {0};
            sbuf_put(&b, json_string_value(content), json_string_length(content));
            tool_calls_as_text(calls, &b);
            json_decref(content);
            content = json_stringn(b.p ? b.p : "", b.len);
            sbuf_free(&b);
            if (!content) { api_fail(e, 500, NULL, "out of memory"); json_decref(nm); goto out; }
        }
        const json_t *tcid = json_object_get(m, "tool_call_id"), *name = json_object_get(m, "name");
        if (json_is_string(tcid)) json_object_set(nm, "tool_call_id", (json_t *)tcid);
        if (json_is_string(name)) json_object_set(nm, "name", (json_t *)name);
        if (has_special(srv, json_string_value(content), json_string_length(content))) {
            char ph[64];
            snprintf(ph, sizeof ph, PH_OPEN "%zu" PH_CLOSE, json_array_size(raw));
            json_array_append(raw, content);
            json_object_set_new(nm, "content", json_string(ph));
            json_decref(content);
        } else {
            json_object_set_new(nm, "content", content);
        }
        json_array_append_new(msgs, nm);
    }
    ctx = json_object();
    if (tools && json_array_size(tools) && tools_in_prompt) {
        if (srv->tmpl_tools) {
            json_object_set(ctx, "tools", (json_t *)tools);
        } else {
            json_t *sys = tools_system_text(tools);
            json_t *first = json_array_get(msgs, 0);
            if (first && strcmp(json_string_value(json_object_get(first, "role")), "system") == 0) {
                const char *old = json_string_value(json_object_get(first, "content"));
                srv_buf b = {0};
                sbuf_printf(&b, "%s\n\n%s", old, json_string_value(sys));
                json_object_set_new(first, "content", json_stringn(b.p, b.len));
                sbuf_free(&b);
            } else {
                json_t *nm = json_object();
                json_object_set_new(nm, "role", json_string("system"));
                json_object_set(nm, "content", sys);
                json_array_insert_new(msgs, 0, nm);
            }
            json_decref(sys);
        }
    }
    json_object_set(ctx, "messages", msgs);
    json_object_set_new(ctx, "add_generation_prompt", json_true());
    size_t bl = 0, el = 0;
    const char *bos = rf_token_bos(tok) >= 0 ? rf_token_text(tok, rf_token_bos(tok), &bl) : NULL;
    const char *eos = rf_token_eos(tok) >= 0 ? rf_token_text(tok, rf_token_eos(tok), &el) : NULL;
    json_object_set_new(ctx, "bos_token", bos ? json_stringn(bos, bl) : json_string(""));
    json_object_set_new(ctx, "eos_token", eos ? json_stringn(eos, el) : json_string(""));
    rf_error err = {0};
    if (rf_tmpl_render(srv->tmpl, ctx, NULL, &text, &text_len, &err) != RF_OK) {
        api_fail(e, 400, "messages", "the chat template failed: %s", err.msg);
        goto out;
    }
    /* the template's leading BOS text, or the one the tokenizer asks for */
    if (rf_tokenizer_add_bos(tok) && rf_token_bos(tok) >= 0 && !(bos && bl && text_len >= bl && memcmp(text, bos, bl) == 0)) {
        cap = 16;
        if (!(ids = rf_malloc(cap * sizeof(int32_t)))) { api_fail(e, 500, NULL, "out of memory"); goto out; }
        ids[n_ids++] = rf_token_bos(tok);
    }
    size_t pos = 0;
    for (size_t k = 0; k < json_array_size(raw); k++) {
        char ph[64];
        snprintf(ph, sizeof ph, PH_OPEN "%zu" PH_CLOSE, k);
        char *at = strstr(text + pos, ph);
        if (!at || strstr(at + 1, ph)) {
            api_fail(e, 400, "messages", "a message contains special-token text and the chat template does not keep its content intact");
            goto out;
        }
        const json_t *c = json_array_get(raw, k);
        if (!tokenize_append(tok, text + pos, (size_t)(at - (text + pos)), true, &ids, &n_ids, &cap, e) ||
            !tokenize_append(tok, json_string_value(c), json_string_length(c), false, &ids, &n_ids, &cap, e))
            goto out;
        pos = (size_t)(at - text) + strlen(ph);
    }
    if (!tokenize_append(tok, text + pos, text_len - pos, true, &ids, &n_ids, &cap, e)) goto out;
    *out_ids = ids;
    *out_n = n_ids;
    ids = NULL;
    ok = true;
out:
    rf_free(ids);
    rf_free(text);
    json_decref(ctx);
    json_decref(msgs);
    json_decref(raw);
    return ok;
}

/* ---- tool calls out of text ------------------------------------------------- */

static bool known_tool(const json_t *tools, const char *name) {
    for (size_t k = 0; k < json_array_size(tools); k++) {
        const char *n = json_string_value(json_object_get(json_object_get(json_array_get(tools, k), "function"), "name"));
        if (n && strcmp(n, name) == 0) return true;
    }
    return false;
}

/* One call object from {"name", "arguments"|"parameters"}; NULL if the
 * JSON is not a call of a known tool. */
static json_t *make_call(const json_t *obj, const json_t *tools, const char *id_seed, size_t idx) {
    const char *name = json_string_value(json_object_get(obj, "name"));
    if (!name || !known_tool(tools, name)) return NULL;
    const json_t *args = json_object_get(obj, "arguments");
    if (!args) args = json_object_get(obj, "parameters");
    char *astr = NULL;
    if (json_is_string(args)) astr = strdup(json_string_value(args));
    else if (args) astr = json_dumps(args, JSON_COMPACT);
    else astr = strdup("{}");
    if (!astr) return NULL;
    json_t *fn = json_object();
    json_object_set_new(fn, "name", json_string(name));
    json_object_set_new(fn, "arguments", json_string(astr));
    free(astr);
    char id[80];
    snprintf(id, sizeof id, "call_%s_%zu", id_seed, idx);
    json_t *call = json_object();
    json_object_set_new(call, "id", json_string(id));
    json_object_set_new(call, "type", json_string("function"));
    json_object_set_new(call, "function", fn);
    return call;
}

static void trim(const char **s, size_t *n) {
    while (*n && strchr(" \t\r\n", (*s)[0])) { (*s)++; (*n)--; }
    while (*n && strchr(" \t\r\n", (*s)[*n - 1])) (*n)--;
}

json_t *prompt_parse_tool_calls(const char *text, size_t len, const json_t *tools, const char *id_seed,
                                char **content_out) {
    if (content_out) *content_out = NULL;
    json_t *calls = json_array();
    srv_buf rest = {0};
    static const char open[] = "<tool_call>", close[] = "</tool_call>";
    size_t pos = 0;
    for (;;) {
        const char *at = memmem(text + pos, len - pos, open, sizeof open - 1);
        if (!at) break;
        sbuf_put(&rest, text + pos, (size_t)(at - (text + pos)));
        const char *body = at + sizeof open - 1;
        const char *end = memmem(body, len - (size_t)(body - text), close, sizeof close - 1);
        size_t bn = end ? (size_t)(end - body) : len - (size_t)(body - text);
        const char *b = body;
        trim(&b, &bn);
        json_t *obj = json_loadb(b, bn, 0, NULL);
        json_t *call = obj ? make_call(obj, tools, id_seed, json_array_size(calls)) : NULL;
        if (call) json_array_append_new(calls, call);
        else sbuf_put(&rest, at, (size_t)((end ? end + sizeof close - 1 : text + len) - at));
        json_decref(obj);
        pos = end ? (size_t)(end - text) + sizeof close - 1 : len;
    }
    if (pos < len) sbuf_put(&rest, text + pos, len - pos);
    if (json_array_size(calls) == 0) { /* a bare {"name": ..., "arguments": ...} reply */
        const char *b = text;
        size_t bn = len;
        trim(&b, &bn);
        json_t *obj = bn && b[0] == '{' ? json_loadb(b, bn, 0, NULL) : NULL;
        json_t *call = obj ? make_call(obj, tools, id_seed, 0) : NULL;
        json_decref(obj);
        if (call) {
            json_array_append_new(calls, call);
            rest.len = 0;
        }
    }
    if (json_array_size(calls) == 0) {
        json_decref(calls);
        sbuf_free(&rest);
        return NULL;
    }
    if (content_out && rest.len) {
        const char *r = rest.p;
        size_t rn = rest.len;
        trim(&r, &rn);
        if (rn) *content_out = rf_strndup(r, rn);
    }
    sbuf_free(&rest);
    return calls;
}
