/*
 * render.c - around the evaluator (eval.c): the render entry points with
 * their limits and the render's lifetime (context variables, root scope,
 * render-owned objects), argument binding for filters, methods and globals,
 * the global functions templates call (range, dict, namespace,
 * raise_exception, strftime_now, cycler, joiner), and the constant folding
 * jinja2 does when it compiles a template.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "template/tmpl-impl.h"

int v_undef_error(rx *x, tv u);
void registry_free(obj *list);

/* ---- argument binding -------------------------------------------------- */

/* Parses one default literal of a spec: None True False ints floats 'str'. */
static int spec_default(rx *x, const char *s, size_t n, tv *out, tv *owned) {
    if (n == 4 && !memcmp(s, "None", 4)) { *out = v_none(); return 0; }
    if (n == 4 && !memcmp(s, "True", 4)) { *out = v_bool(true); return 0; }
    if (n == 5 && !memcmp(s, "False", 5)) { *out = v_bool(false); return 0; }
    if (n >= 2 && s[0] == '\'') {
        if (v_str(x, s + 1, n - 2, out) < 0) return -1;
        *owned = *out;
        return 0;
    }
    char buf[32];
    size_t k = n < sizeof buf - 1 ? n : sizeof buf - 1;
    memcpy(buf, s, k);
    buf[k] = 0;
    if (strchr(buf, '.')) *out = v_float(strtod(buf, NULL));
    else *out = v_int(strtoll(buf, NULL, 10));
    return 0;
}

int bind_args(rx *x, const char *fname, const char *spec, const targs *a, tv *slots, tv *owned) {
    const char *names[MAX_PARAMS];
    size_t nlen[MAX_PARAMS];
    const char *defs[MAX_PARAMS];
    size_t dlen[MAX_PARAMS];
    int np = 0;
    const char *p = spec;
    while (*p && np < MAX_PARAMS) {
        const char *e = strchr(p, ',');
        if (!e) e = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(e - p));
        names[np] = p;
        nlen[np] = eq ? (size_t)(eq - p) : (size_t)(e - p);
        defs[np] = eq ? eq + 1 : NULL;
        dlen[np] = eq ? (size_t)(e - eq - 1) : 0;
        np++;
        p = *e ? e + 1 : e;
    }
    bool set[MAX_PARAMS] = {false};
    if (a->npos > (uint32_t)np)
        return rx_fail(x, "%s() takes %d positional arguments but %u were given", fname, np, a->npos);
    for (uint32_t i = 0; i < a->npos; i++) {
        slots[i] = a->pos[i];
        set[i] = true;
    }
    for (uint32_t k = 0; k < a->nkw; k++) {
        int j = -1;
        for (int i = 0; i < np; i++)
            if (strlen(a->kwn[k]) == nlen[i] && !memcmp(a->kwn[k], names[i], nlen[i])) j = i;
        if (j < 0) return rx_fail(x, "%s() got an unexpected keyword argument '%s'", fname, a->kwn[k]);
        if (set[j]) return rx_fail(x, "%s() got multiple values for argument '%s'", fname, a->kwn[k]);
        slots[j] = a->kwv[k];
        set[j] = true;
    }
    for (int i = 0; i < np; i++) {
        if (set[i]) continue;
        if (!defs[i])
            return rx_fail(x, "%s() missing required argument '%.*s'", fname, (int)nlen[i], names[i]);
        if (spec_default(x, defs[i], dlen[i], &slots[i], &owned[i]) < 0) return -1;
    }
    return 0;
}

/* ---- global functions -------------------------------------------------- */

enum { G_RANGE, G_DICT, G_NAMESPACE, G_RAISE, G_STRFTIME, G_CYCLER, G_JOINER, G_LIPSUM, G_COUNT };
static const char *const global_names[G_COUNT] = {
    "range", "dict", "namespace", "raise_exception", "strftime_now", "cycler", "joiner", "lipsum",
};

int global_index(const char *name) {
    for (int i = 0; i < G_COUNT; i++)
        if (strcmp(name, global_names[i]) == 0) return i;
    return -1;
}

static int want_int(rx *x, tv v, int64_t *out) {
    if (v.k == V_INT) { *out = v.u.i; return 0; }
    if (v.k == V_BOOL) { *out = v.u.b; return 0; }
    if (v.k == V_UNDEF) return v_undef_error(x, v);
    return rx_fail(x, "'%s' object cannot be interpreted as an integer", v_type_name(v));
}

static int g_range(rx *x, const targs *a, tv *out) {
    if (a->nkw) return rx_fail(x, "range() takes no keyword arguments");
    if (a->npos < 1 || a->npos > 3)
        return rx_fail(x, "range expected 1 to 3 arguments, got %u", a->npos);
    int64_t start = 0, stop = 0, step = 1;
    if (a->npos == 1) {
        if (want_int(x, a->pos[0], &stop) < 0) return -1;
    } else {
        if (want_int(x, a->pos[0], &start) < 0 || want_int(x, a->pos[1], &stop) < 0) return -1;
        if (a->npos == 3 && want_int(x, a->pos[2], &step) < 0) return -1;
    }
    if (step == 0) return rx_fail(x, "range() arg 3 must not be zero");
    /* length without overflow, like Python's range */
    double len = 0;
    if (step > 0 && start < stop) len = floor(((double)stop - (double)start - 1) / (double)step) + 1;
    else if (step < 0 && start > stop) len = floor(((double)start - (double)stop - 1) / (double)-step) + 1;
    if (len > 100000)
        return rx_fail(x, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    tlist *l = list_new(x, (uint32_t)len, FL_LIST);
    if (!l) return -1;
    for (int64_t i = 0; i < (int64_t)len; i++) l->v[l->n++] = v_int(start + i * step);
    *out = v_obj(V_LIST, l);
    return 0;
}

/* dict(...) / namespace(...): dict(*args, **kwargs) */
static int build_dict(rx *x, const char *fname, const targs *a, tdict **out) {
    if (a->npos > 1) return rx_fail(x, "%s expected at most 1 argument, got %u", fname, a->npos);
    tdict *d = dict_new(x);
    if (!d) return -1;
    if (a->npos == 1) {
        tv src = a->pos[0];
        if (src.k == V_DICT) {
            for (uint32_t i = 0; i < src.u.d->n; i++)
                if (dict_set(x, d, v_ref(src.u.d->e[i].k), v_ref(src.u.d->e[i].v)) < 0) goto fail;
        } else {
            tlist *l;
            if (v_iter_list(x, src, &l) < 0) goto fail;
            for (uint32_t i = 0; i < l->n; i++) {
                tlist *pair;
                if (v_iter_list(x, l->v[i], &pair) < 0) { v_decref(v_obj(V_LIST, l)); goto fail; }
                int rc = 0;
                if (pair->n != 2)
                    rc = rx_fail(x, "dictionary update sequence element #%u has length %u; 2 is required", i, pair->n);
                else
                    rc = dict_set(x, d, v_ref(pair->v[0]), v_ref(pair->v[1]));
                v_decref(v_obj(V_LIST, pair));
                if (rc < 0) { v_decref(v_obj(V_LIST, l)); goto fail; }
            }
            v_decref(v_obj(V_LIST, l));
        }
    }
    for (uint32_t k = 0; k < a->nkw; k++) {
        tv key;
        if (v_str(x, a->kwn[k], strlen(a->kwn[k]), &key) < 0) goto fail;
        if (dict_set(x, d, key, v_ref(a->kwv[k])) < 0) goto fail;
    }
    *out = d;
    return 0;
fail:
    v_decref(v_obj(V_DICT, d));
    return -1;
}

static int g_strftime(rx *x, const targs *a, tv *out) {
    tv slots[1], own[MAX_PARAMS] = {{0}};
    if (bind_args(x, "strftime_now", "format", a, slots, own) < 0) return -1;
    if (slots[0].k != V_STR) return rx_fail(x, "strftime() argument 1 must be str, not %s", v_type_name(slots[0]));
    const tstr *f = slots[0].u.s;
    if (f->len > 4096) return rx_fail(x, "strftime format too long");
    /* naive datetime: %z and %Z are empty, %f is the microseconds (0) */
    sbuf fmt = {0}, res = {0};
    int rc = 0;
    for (size_t i = 0; i < f->len && rc == 0; i++) {
        if (f->s[i] == '%' && i + 1 < f->len) {
            char c = f->s[i + 1];
            if (c == 'z' || c == 'Z') { i++; continue; }
            if (c == 'f') { rc = sb_put(x, &fmt, "000000", 6); i++; continue; }
            rc = sb_put(x, &fmt, f->s + i, 2);
            i++;
            continue;
        }
        rc = sb_putc(x, &fmt, f->s[i]);
    }
    if (rc == 0) {
        size_t cap = f->len * 64 + 256;
        char *buf = rx_alloc(x, cap);
        if (!buf) rc = -1;
        else {
            size_t n = fmt.n ? strftime(buf, cap, fmt.p, &x->now) : 0;
            rc = v_str(x, buf, n, out);
            rf_free(buf);
        }
    }
    sb_free(&fmt);
    sb_free(&res);
    return rc;
}

int call_global(rx *x, int g, const targs *a, tv *out) {
    switch (g) {
    case G_RANGE: return g_range(x, a, out);
    case G_DICT: {
        tdict *d;
        if (build_dict(x, "dict", a, &d) < 0) return -1;
        *out = v_obj(V_DICT, d);
        return 0;
    }
    case G_NAMESPACE: {
        tdict *d;
        if (build_dict(x, "namespace", a, &d) < 0) return -1;
        tns *ns = reg_alloc(x, sizeof *ns, V_NS);
        if (!ns) { v_decref(v_obj(V_DICT, d)); return -1; }
        ns->attrs = d;
        *out = v_obj(V_NS, ns);
        return 0;
    }
    case G_RAISE: {
        tv slots[1], own[MAX_PARAMS] = {{0}};
        if (bind_args(x, "raise_exception", "message", a, slots, own) < 0) return -1;
        sbuf b = {0};
        if (v_write_str(x, &b, slots[0], 0) < 0) { sb_free(&b); return -1; }
        rx_fail(x, "%s", b.p ? b.p : "");
        sb_free(&b);
        return -1;
    }
    case G_STRFTIME: return g_strftime(x, a, out);
    case G_CYCLER: {
        if (a->nkw) return rx_fail(x, "cycler() takes no keyword arguments");
        tlist *l = list_new(x, a->npos, FL_LIST);
        if (!l) return -1;
        for (uint32_t i = 0; i < a->npos; i++) l->v[l->n++] = v_ref(a->pos[i]);
        tcycler *c = reg_alloc(x, sizeof *c, V_CYCLER);
        if (!c) { v_decref(v_obj(V_LIST, l)); return -1; }
        c->items = l;
        *out = v_obj(V_CYCLER, c);
        return 0;
    }
    case G_JOINER: {
        tv slots[1], own[MAX_PARAMS] = {{0}};
        if (bind_args(x, "joiner", "sep=None", a, slots, own) < 0) return -1;
        tv s;
        int rc = slots[0].k == V_NONE ? v_str(x, ", ", 2, &s) : v_to_str(x, slots[0], &s);
        v_decref(own[0]);
        if (rc < 0) return -1;
        tjoiner *j = reg_alloc(x, sizeof *j, V_JOINER);
        if (!j) { v_decref(s); return -1; }
        j->sep = s.u.s;
        *out = v_obj(V_JOINER, j);
        return 0;
    }
    default: return rx_fail(x, "lipsum() is not supported by this template engine");
    }
}

/* ---- render entry points ----------------------------------------------- */

static rf_status render(const rf_tmpl *t, const json_t *ctx, const rf_tmpl_opts *opts, char **out,
                        size_t *out_len, rf_error *err) {
    char base;
    rx x = {0};
    x.t = t;
    x.err = err;
    x.code = RF_OK;
    rf_tmpl_limits lim = opts ? opts->limits : (rf_tmpl_limits){0};
    x.max_iters = lim.max_iters ? lim.max_iters : 1000000;
    x.max_depth = lim.max_depth ? lim.max_depth : 256;
    x.max_output = lim.max_output ? lim.max_output : ((size_t)64 << 20);
    x.max_alloc = lim.max_alloc ? lim.max_alloc : ((uint64_t)1 << 30);
    x.max_work = x.max_iters * 256;
    x.stack_base = (uintptr_t)&base;
    x.stack_limit = (size_t)1 << 20;
    x.filter_input = v_none();
    time_t now = opts && opts->has_now ? opts->now : time(NULL);
    if (opts && opts->has_now) gmtime_r(&now, &x.now);
    else localtime_r(&now, &x.now);

    tv vars = {0};
    scope *root = NULL;
    sbuf ob = {0};
    int rc = v_from_json(&x, ctx, &vars, 0);
    if (rc == 0) {
        x.vars = vars.u.d;
        root = scope_new(&x, NULL);
        if (!root) rc = -1;
    }
    if (rc == 0) {
        x.sc = x.root_sc = root;
        x.out = &ob;
        rc = exec_body(&x, t->root->xs, t->root->nx);
        if (rc > 0) rc = 0;
    }
    scope_release(root);
    v_decref(vars);
    registry_free(x.registry);
    x.registry = NULL;
    if (rc < 0 || x.failed) {
        sb_free(&ob);
        if (!x.failed) return rf_error_set(err, RF_E_FORMAT, "template render failed");
        return err ? err->code : RF_E_FORMAT;
    }
    if (!ob.p) {
        ob.p = rf_malloc(1);
        if (!ob.p) return rf_error_set(err, RF_E_NOMEM, "out of memory");
        ob.p[0] = '\0';
    }
    *out = ob.p;
    if (out_len) *out_len = ob.n;
    return RF_OK;
}

rf_status rf_tmpl_render(const rf_tmpl *t, const json_t *ctx, const rf_tmpl_opts *opts, char **out,
                         size_t *out_len, rf_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t || !ctx || !json_is_object(ctx))
        return rf_error_set(err, RF_E_INVAL, "template context must be a JSON object");
    rf_error local;
    rf_error *e = err ? err : &local;
    e->code = RF_OK;
    return render(t, ctx, opts, out, out_len, e);
}

rf_status rf_tmpl_render_json(const rf_tmpl *t, const char *ctx_json, size_t len,
                              const rf_tmpl_opts *opts, char **out, size_t *out_len,
                              rf_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    json_error_t je;
    json_t *ctx = json_loadb(ctx_json, len, JSON_ALLOW_NUL, &je);
    if (!ctx)
        return rf_error_set(err, RF_E_INVAL, "context JSON: %s (line %d, column %d)", je.text,
                            je.line, je.column);
    rf_status st = rf_tmpl_render(t, ctx, opts, out, out_len, err);
    json_decref(ctx);
    return st;
}

/* ---- constant folding --------------------------------------------------
 * jinja2 optimizes every template it compiles: an expression made only of
 * literals (and operators, subscripts, tests, and filters that do not take
 * the context) is evaluated then, and replaced by its value when that value
 * has a "safe repr" (None, bool, numbers, strings, and tuples, lists and
 * dicts of those). A literal-only {{ }} is evaluated then too and becomes
 * text. The difference shows where folding is lenient: a failing slice is
 * undefined instead of an error, `1 or x|nosuch` loses its unknown filter
 * before the compiler checks it. Failures are not folded (they happen,
 * if at all, at run time). */

static bool fold_candidate(const node *n, int depth) {
    if (!n) return true;
    if (depth > 64) return false;
    switch (n->kind) {
    case N_CONST: return true;
    case N_AND: case N_OR: return fold_candidate(n->a, depth + 1);
    case N_COND: return fold_candidate(n->b, depth + 1);
    case N_LIST: case N_TUPLE: case N_DICT: case N_CONCAT: case N_COMPARE: case N_PAIR:
    case N_OPERAND: case N_BINOP: case N_NOT: case N_NEG: case N_POS: case N_GETATTR:
    case N_GETITEM: case N_SLICE: case N_FILTER: case N_TEST:
        if (!fold_candidate(n->a, depth + 1) || !fold_candidate(n->b, depth + 1) ||
            !fold_candidate(n->c, depth + 1) || !fold_candidate(n->d, depth + 1))
            return false;
        for (uint32_t i = 0; i < n->nx; i++)
            if (!fold_candidate(n->xs[i], depth + 1)) return false;
        for (uint32_t i = 0; i < n->ny; i++)
            if (!fold_candidate(n->ys[i]->a, depth + 1)) return false;
        if (n->kind == N_FILTER || n->kind == N_TEST) return n->a && !n->c && !n->d;
        return true;
    default: return false;
    }
}

static bool safe_repr(tv v, int depth) {
    if (depth > 64) return false;
    switch ((vkind)v.k) {
    case V_NONE: case V_BOOL: case V_INT: case V_FLOAT: case V_STR: return true;
    case V_LIST:
        if (v.u.l->h.flavor > FL_TUPLE) return false;
        for (uint32_t i = 0; i < v.u.l->n; i++)
            if (!safe_repr(v.u.l->v[i], depth + 1)) return false;
        return true;
    case V_DICT:
        for (uint32_t i = 0; i < v.u.d->n; i++)
            if (!safe_repr(v.u.d->e[i].k, depth + 1) || !safe_repr(v.u.d->e[i].v, depth + 1))
                return false;
        return true;
    default: return false;
    }
}

/* A copy of a safe-repr value in the template's arena, immortal. */
static bool immortal(tarena *a, tv v, tv *out) {
    *out = v;
    switch ((vkind)v.k) {
    case V_STR: {
        tstr *s = str_new_immortal(a, v.u.s->s, v.u.s->len);
        if (!s) return false;
        out->u.s = s;
        return true;
    }
    case V_LIST: {
        tlist *l = ta_alloc(a, sizeof *l);
        tv *items = v.u.l->n ? ta_alloc(a, (size_t)v.u.l->n * sizeof(tv)) : NULL;
        if (!l || (v.u.l->n && !items)) return false;
        l->h.rc = -1;
        l->h.kind = V_LIST;
        l->h.flavor = v.u.l->h.flavor;
        for (uint32_t i = 0; i < v.u.l->n; i++)
            if (!immortal(a, v.u.l->v[i], &items[i])) return false;
        l->v = items;
        l->n = l->cap = v.u.l->n;
        out->u.l = l;
        return true;
    }
    case V_DICT: {
        const tdict *d = v.u.d;
        tdict *c = ta_alloc(a, sizeof *c);
        dent *e = d->n ? ta_alloc(a, (size_t)d->n * sizeof(dent)) : NULL;
        if (!c || (d->n && !e)) return false;
        c->h.rc = -1;
        c->h.kind = V_DICT;
        for (uint32_t i = 0; i < d->n; i++) {
            e[i].hash = d->e[i].hash;
            if (!immortal(a, d->e[i].k, &e[i].k) || !immortal(a, d->e[i].v, &e[i].v)) return false;
        }
        if (d->idx) {
            c->idx = ta_alloc(a, (size_t)d->idx_cap * sizeof(uint32_t));
            if (!c->idx) return false;
            memcpy(c->idx, d->idx, (size_t)d->idx_cap * sizeof(uint32_t));
            c->idx_cap = d->idx_cap;
        }
        c->e = e;
        c->n = c->cap = d->n;
        out->u.d = c;
        return true;
    }
    default: return true;
    }
}

/* Evaluates n in const mode; true with *out (owned) on success. */
static bool fold_eval(rx *x, const node *n, tv *out) {
    rf_error e = {0};
    x->err = &e;
    x->failed = x->fatal = false;
    int rc = ev_expr(x, n, out);
    bool ok = rc == 0 && !x->failed;
    if (rc == 0 && x->failed) v_decref(*out);
    x->failed = x->fatal = false;
    return ok;
}

static void fold_node(rx *x, rf_tmpl *t, node *n, int depth) {
    if (!n || depth > 400) return;
    node *kids[4] = {n->a, n->b, n->c, n->d};
    for (int i = 0; i < 4; i++) fold_node(x, t, kids[i], depth + 1);
    for (uint32_t i = 0; i < n->nx; i++) fold_node(x, t, n->xs[i], depth + 1);
    for (uint32_t i = 0; i < n->ny; i++) fold_node(x, t, n->ys[i], depth + 1);
    if (n->kind == N_OUTPUT) {
        for (uint32_t i = 0; i < n->nx; i++) {
            node *it = n->xs[i];
            tv v, s;
            if (it->kind == N_DATA || !fold_candidate(it, 0) || !fold_eval(x, it, &v)) continue;
            bool ok = v_to_str(x, v, &s) == 0 && !x->failed;
            v_decref(v);
            x->failed = x->fatal = false;
            if (!ok) continue;
            tstr *d = str_new_immortal(&t->arena, s.u.s->s, s.u.s->len);
            v_decref(s);
            if (!d) continue;
            it->kind = N_DATA;
            it->val = v_obj(V_STR, d);
        }
        return;
    }
    if (n->kind == N_CONST || n->kind >= N_DATA || n->kind == N_PAIR || n->kind == N_KWARG ||
        n->kind == N_OPERAND || n->kind == N_SLICE || n->kind == N_NSREF || !fold_candidate(n, 0))
        return;
    tv v, c;
    if (!fold_eval(x, n, &v)) return;
    if (safe_repr(v, 0) && immortal(&t->arena, v, &c)) {
        n->kind = N_CONST;
        n->val = c;
    }
    v_decref(v);
}

void tmpl_fold(rf_tmpl *t) {
    char base;
    rx x = {0};
    x.t = t;
    x.const_mode = true;
    x.max_iters = 10000;
    x.max_depth = 64;
    x.max_output = (size_t)1 << 20;
    x.max_alloc = (uint64_t)8 << 20;
    x.max_work = 1000000;
    x.stack_base = (uintptr_t)&base;
    x.stack_limit = (size_t)256 << 10;
    x.filter_input = v_none();
    time_t now = 0;
    gmtime_r(&now, &x.now);
    tdict *vars = dict_new(NULL);
    scope *root = scope_new(NULL, NULL);
    sbuf ob = {0};
    if (vars && root) {
        x.vars = vars;
        x.sc = root;
        x.out = &ob;
        fold_node(&x, t, t->root, 0);
    }
    sb_free(&ob);
    scope_release(root);
    if (vars) v_decref(v_obj(V_DICT, vars));
    registry_free(x.registry);
}
