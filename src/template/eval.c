/*
 * eval.c - the evaluator: walks the AST of a parsed template and writes the
 * output. Expressions follow Python/jinja2 semantics (sandboxed attribute
 * and item lookup, Undefined, arithmetic, chained comparisons, calls of
 * macros, methods and globals); statements follow jinja2's scoping: each
 * for-loop iteration, macro call, call block and filter/set block runs in a
 * fresh scope whose parent is the enclosing one, so a {% set %} inside a
 * loop is not seen after it (namespace() is the way out, as in jinja2).
 * Argument binding, the global functions and the render entry points are
 * in render.c.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "template/tmpl-impl.h"

enum { EX_OK = 0, EX_ERR = -1, EX_BREAK = 1, EX_CONTINUE = 2 };

int v_undef_error(rx *x, tv u);

/* ---- stack guard ------------------------------------------------------- */

static int stack_check(rx *x) {
    char probe;
    uintptr_t here = (uintptr_t)&probe;
    size_t used = x->stack_base > here ? x->stack_base - here : here - x->stack_base;
    if (used > x->stack_limit) return rx_fail_fatal(x, "template nested too deeply (stack limit)");
    return 0;
}

/* ---- scopes ------------------------------------------------------------ */

scope *scope_new(rx *x, scope *parent) {
    scope *s = rx_alloc(x, sizeof *s);
    if (!s) return NULL;
    s->h.rc = 1;
    s->h.kind = V_SCOPE;
    s->parent = parent;
    if (parent) parent->h.rc++;
    return s;
}

void scope_release(scope *s) {
    if (s) v_decref(v_obj(V_SCOPE, s));
}

/* Sets name (interned) in s; takes v. */
static int scope_set(rx *x, scope *s, const char *name, tv v) {
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->names[i] == name) {
            v_decref(s->vals[i]);
            s->vals[i] = v;
            return 0;
        }
    }
    if (s->n == s->cap) {
        uint32_t nc = s->cap ? s->cap * 2 : 4;
        if (rx_charge(x, (size_t)nc * (sizeof(tv) + sizeof(char *))) < 0) { v_decref(v); return -1; }
        tv *nv = rf_realloc(s->vals, (size_t)nc * sizeof(tv));
        if (!nv) { v_decref(v); return rx_oom(x); }
        s->vals = nv;
        const char **nn = rf_realloc(s->names, (size_t)nc * sizeof(char *));
        if (!nn) { v_decref(v); return rx_oom(x); }
        s->names = nn;
        s->cap = nc;
    }
    s->names[s->n] = name;
    s->vals[s->n++] = v;
    return 0;
}

static bool scope_find(const scope *s, const char *name, tv *out) {
    for (; s; s = s->parent)
        for (uint32_t i = 0; i < s->n; i++)
            if (s->names[i] == name) {
                *out = s->vals[i];
                return true;
            }
    return false;
}

/* Objects owned by the render (freed when it ends). */
void *reg_alloc(rx *x, size_t size, int kind) {
    obj *o = rx_alloc(x, size);
    if (!o) return NULL;
    o->rc = -1;
    o->kind = (uint8_t)kind;
    o->next = x->registry;
    x->registry = o;
    return o;
}

/* ---- attribute and item access ----------------------------------------- */

static int bound_method(rx *x, tv self, int mid, tv *out) {
    tmethod *m = rx_alloc(x, sizeof *m);
    if (!m) return -1;
    m->h.rc = 1;
    m->h.kind = V_METHOD;
    m->self = v_ref(self);
    m->mid = mid;
    *out = v_obj(V_METHOD, m);
    return 0;
}

static int loop_attr(rx *x, tloop *lp, const char *name, tv *out) {
    int64_t n = lp->items ? lp->items->n : 0, i = lp->i0;
    if (!strcmp(name, "index")) *out = v_int(i + 1);
    else if (!strcmp(name, "index0")) *out = v_int(i);
    else if (!strcmp(name, "revindex")) *out = v_int(n - i);
    else if (!strcmp(name, "revindex0")) *out = v_int(n - i - 1);
    else if (!strcmp(name, "first")) *out = v_bool(i == 0);
    else if (!strcmp(name, "last")) *out = v_bool(i == n - 1);
    else if (!strcmp(name, "length")) *out = v_int(n);
    else if (!strcmp(name, "depth")) *out = v_int(lp->depth0 + 1);
    else if (!strcmp(name, "depth0")) *out = v_int(lp->depth0);
    else if (!strcmp(name, "previtem"))
        *out = i > 0 && lp->items ? v_ref(lp->items->v[i - 1]) : v_undef_named(U_HINT, "there is no previous item", 0);
    else if (!strcmp(name, "nextitem"))
        *out = i + 1 < n ? v_ref(lp->items->v[i + 1]) : v_undef_named(U_HINT, "there is no next item", 0);
    else {
        int mid = method_lookup(v_obj(V_LOOP, lp), name, strlen(name));
        if (mid >= 0) return bound_method(x, v_obj(V_LOOP, lp), mid, out);
        *out = v_undef_named(U_ATTR, NULL, V_LOOP);
    }
    return 0;
}

/* name_stable: name lives as long as the template (it may be kept in an
 * undefined's message). */
static int getattr_impl(rx *x, tv base, const char *name, size_t n, bool name_stable, tv *out) {
    const char *uname = name_stable ? name : NULL;
    if (base.k == V_UNDEF) return v_undef_error(x, base);
    if (n >= 4 && name[0] == '_' && name[1] == '_' && name[n - 1] == '_' && name[n - 2] == '_') {
        *out = v_undef_named(U_UNSAFE, uname, base.k);
        return 0;
    }
    switch ((vkind)base.k) {
    case V_STR: case V_LIST: case V_DICT: {
        int mid = method_lookup(base, name, n);
        if (mid >= 0) return bound_method(x, base, mid, out);
        if (mid == -2) { *out = v_undef_named(U_UNSAFE, uname, base.k); return 0; }
        tv v;
        if (base.k == V_DICT && dict_get_str(base.u.d, name, n, &v)) { *out = v_ref(v); return 0; }
        break;
    }
    case V_NS: {
        tv v;
        if (dict_get_str(((tns *)base.u.o)->attrs, name, n, &v)) { *out = v_ref(v); return 0; }
        break;
    }
    case V_LOOP: {
        char buf[32];
        if (n >= sizeof buf) break;
        memcpy(buf, name, n);
        buf[n] = 0;
        return loop_attr(x, (tloop *)base.u.o, buf, out);
    }
    case V_CYCLER: {
        tcycler *c = (tcycler *)base.u.o;
        if (n == 7 && !memcmp(name, "current", 7)) {
            *out = c->items->n ? v_ref(c->items->v[c->pos]) : v_none();
            return 0;
        }
        int mid = method_lookup(base, name, n);
        if (mid >= 0) return bound_method(x, base, mid, out);
        break;
    }
    case V_MACRO:
        if (n == 4 && !memcmp(name, "name", 4)) {
            const char *mn = ((tmacro *)base.u.o)->name;
            return v_str(x, mn, strlen(mn), out);
        }
        break;
    default: break;
    }
    *out = v_undef_named(U_ATTR, uname, base.k);
    return 0;
}

int rx_getattr(rx *x, tv base, const char *name, size_t n, tv *out) {
    return getattr_impl(x, base, name, n, false, out);
}

static bool index_of(tv key, int64_t len, int64_t *at) {
    if (key.k != V_INT && key.k != V_BOOL) return false;
    int64_t i = key.k == V_INT ? key.u.i : key.u.b;
    if (i < 0) i += len;
    if (i < 0 || i >= len) return false;
    *at = i;
    return true;
}

/* Byte range of code point index i in s (ASCII fast path). */
static void cp_range(const tstr *s, int64_t i, size_t *b, size_t *e) {
    if (s->ascii) { *b = (size_t)i; *e = (size_t)i + 1; return; }
    size_t k = 0;
    for (int64_t c = 0; c < i; c++) u8_next(s->s, s->len, &k);
    *b = k;
    u8_next(s->s, s->len, &k);
    *e = k;
}

static int getitem_impl(rx *x, tv base, tv key, const char *stable_name, tv *out) {
    if (base.k == V_UNDEF) return v_undef_error(x, base);
    switch ((vkind)base.k) {
    case V_DICT:
        if (!(key.k == V_LIST && key.u.l->h.flavor != FL_TUPLE) && key.k != V_DICT) {
            tv v;
            int f = dict_get(x, base.u.d, key, &v);
            if (f < 0) return -1;
            if (f) { *out = v_ref(v); return 0; }
        }
        break;
    case V_LIST:
        if (base.u.l->h.flavor <= FL_TUPLE) {
            int64_t at = 0;
            if (index_of(key, base.u.l->n, &at)) { *out = v_ref(base.u.l->v[at]); return 0; }
        }
        break;
    case V_STR: {
        int64_t len, at;
        if (v_len(x, base, &len) < 0) return -1;
        if (index_of(key, len, &at)) {
            size_t b, e;
            cp_range(base.u.s, at, &b, &e);
            if (v_str(x, base.u.s->s + b, e - b, out) < 0) return -1;
            out->fl = base.fl;
            return 0;
        }
        break;
    }
    default: break;
    }
    if (key.k == V_STR) /* the sandbox falls back to the attribute */
        return getattr_impl(x, base, key.u.s->s, key.u.s->len, stable_name != NULL, out);
    *out = v_undef_named(U_ITEM, stable_name, base.k);
    return 0;
}

int rx_getitem(rx *x, tv base, tv key, tv *out) { return getitem_impl(x, base, key, NULL, out); }

void slice_indices(int64_t len, int64_t *start, int64_t *stop, int64_t step, bool has_start,
                   bool has_stop) {
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
    if (!has_start) *start = step < 0 ? hi : lo;
    else {
        if (*start < 0) { *start += len; if (*start < lo) *start = lo; }
        else if (*start > hi) *start = hi;
    }
    if (!has_stop) *stop = step < 0 ? lo : hi;
    else {
        if (*stop < 0) { *stop += len; if (*stop < lo) *stop = lo; }
        else if (*stop > hi) *stop = hi;
    }
}

static int slice_part(rx *x, const node *n, int64_t *v, bool *has) {
    *has = false;
    if (!n) return 0;
    tv t;
    if (ev_expr(x, n, &t) < 0) return -1;
    if (t.k == V_NONE) return 0;
    if (t.k != V_INT && t.k != V_BOOL) {
        v_decref(t);
        return 1; /* not an index */
    }
    *v = t.k == V_INT ? t.u.i : t.u.b;
    *has = true;
    return 0;
}

/* In const mode (render.c's folding) a failing slice is undefined: jinja2
 * folds through the sandbox's getitem, while at run time it slices with
 * Python's own [a:b:c] and errors propagate. */
static int ev_slice(rx *x, tv base, const node *sl, tv *out) {
    int64_t start = 0, stop = 0, step = 1;
    bool hs, he, hst;
    int r1 = slice_part(x, sl->a, &start, &hs);
    int r2 = r1 < 0 ? -1 : slice_part(x, sl->b, &stop, &he);
    int r3 = r2 < 0 ? -1 : slice_part(x, sl->c, &step, &hst);
    if (r1 < 0 || r2 < 0 || r3 < 0) return -1;
    /* jinja2 slices with Python's own [a:b:c], bypassing the sandbox's
     * getitem: errors are not turned into undefined */
    if (base.k == V_UNDEF) return v_undef_error(x, base);
    bool seq = base.k == V_STR || (base.k == V_LIST && base.u.l->h.flavor <= FL_TUPLE);
    if ((!seq || r1 || r2 || r3) && x->const_mode) {
        *out = v_undef_named(U_ITEM, NULL, base.k);
        return 0;
    }
    if (base.k == V_DICT) return rx_fail(x, "unhashable type: 'slice'");
    if (!seq) return rx_fail(x, "'%s' object is not subscriptable", v_type_name(base));
    if (r1 || r2 || r3)
        return rx_fail(x, "slice indices must be integers or None or have an __index__ method");
    if (!hst) step = 1;
    if (step == 0) return rx_fail(x, "slice step cannot be zero");
    if (base.k == V_STR) return s_slice(x, base, start, stop, step, hs, he, out);
    const tlist *l = base.u.l;
    slice_indices(l->n, &start, &stop, step, hs, he);
    tlist *r = list_new(x, 0, l->h.flavor);
    if (!r) return -1;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
        if (list_push(x, r, v_ref(l->v[i])) < 0) { v_decref(v_obj(V_LIST, r)); return -1; }
    *out = v_obj(V_LIST, r);
    return 0;
}

/* ---- arithmetic -------------------------------------------------------- */

static int arith_error(rx *x, const char *op, tv a, tv b) {
    if (a.k == V_UNDEF) return v_undef_error(x, a);
    if (b.k == V_UNDEF) return v_undef_error(x, b);
    if (a.k == V_STR && !strcmp(op, "+"))
        return rx_fail(x, "can only concatenate str (not \"%s\") to str", v_type_name(b));
    if (a.k == V_LIST && b.k == V_LIST && !strcmp(op, "+"))
        return rx_fail(x, "can only concatenate %s (not \"%s\") to %s", v_type_name(a), v_type_name(b), v_type_name(a));
    return rx_fail(x, "unsupported operand type(s) for %s: '%s' and '%s'", op, v_type_name(a),
                   v_type_name(b));
}

static int64_t ival(tv v) { return v.k == V_INT ? v.u.i : v.u.b; }
static bool is_intlike(tv v) { return v.k == V_INT || v.k == V_BOOL; }

/* CPython's float floor division and modulo. */
static void float_divmod(double vx, double wx, double *floordiv, double *mod) {
    double m = fmod(vx, wx);
    double div = (vx - m) / wx;
    if (m != 0) {
        if ((wx < 0) != (m < 0)) { m += wx; div -= 1.0; }
    } else {
        m = copysign(0.0, wx);
    }
    double fd = 0;
    if (div != 0) {
        fd = floor(div);
        if (div - fd > 0.5) fd += 1.0;
    } else {
        fd = copysign(0.0, vx / wx);
    }
    *floordiv = fd;
    *mod = m;
}

static int concat_safe(rx *x, tv a, tv b, tv *out) {
    /* Markup + str escapes the plain side; the result is Markup */
    tv ea = v_ref(a), eb = v_ref(b);
    int rc = 0;
    if (!(a.fl & VF_SAFE)) { v_decref(ea); ea = v_none(); rc = s_escape(x, a, &ea); }
    if (rc == 0 && !(b.fl & VF_SAFE)) { v_decref(eb); eb = v_none(); rc = s_escape(x, b, &eb); }
    if (rc < 0) { v_decref(ea); v_decref(eb); return -1; }
    sbuf s = {0};
    rc = sb_put(x, &s, ea.u.s->s, ea.u.s->len);
    if (rc == 0) rc = sb_put(x, &s, eb.u.s->s, eb.u.s->len);
    v_decref(ea);
    v_decref(eb);
    if (rc < 0 || v_str_sb(x, &s, out) < 0) { sb_free(&s); return -1; }
    out->fl = VF_SAFE;
    return 0;
}

static int repeat(rx *x, tv seq, int64_t k, tv *out) {
    if (k < 0) k = 0;
    if (seq.k == V_STR) {
        size_t n = seq.u.s->len;
        if (n && (uint64_t)k > (x->max_output / n)) return rx_fail(x, "repeated string too long");
        sbuf b = {0};
        for (int64_t i = 0; i < k; i++)
            if (sb_put(x, &b, seq.u.s->s, n) < 0) { sb_free(&b); return -1; }
        if (v_str_sb(x, &b, out) < 0) return -1;
        out->fl = seq.fl;
        return 0;
    }
    const tlist *l = seq.u.l;
    if (l->n && (uint64_t)k > (1u << 24) / l->n) return rx_fail(x, "repeated list too long");
    tlist *r = list_new(x, (uint32_t)(l->n * k), l->h.flavor);
    if (!r) return -1;
    for (int64_t i = 0; i < k; i++)
        for (uint32_t j = 0; j < l->n; j++) r->v[r->n++] = v_ref(l->v[j]);
    *out = v_obj(V_LIST, r);
    return 0;
}

int rx_binop(rx *x, int op, tv a, tv b, tv *out) {
    static const char *names[] = {"+", "-", "*", "/", "//", "%", "**"};
    if (a.k == V_UNDEF) return v_undef_error(x, a);
    if (b.k == V_UNDEF) return v_undef_error(x, b);
    bool nums = v_is_num(a) && v_is_num(b), ints = is_intlike(a) && is_intlike(b);
    switch (op) {
    case OP_ADD:
        if (ints) {
            int64_t r = 0;
            if (__builtin_add_overflow(ival(a), ival(b), &r)) return rx_fail(x, "integer overflow");
            *out = v_int(r);
            return 0;
        }
        if (nums) { *out = v_float(v_num(a) + v_num(b)); return 0; }
        if (a.k == V_STR && b.k == V_STR) {
            if ((a.fl | b.fl) & VF_SAFE) return concat_safe(x, a, b, out);
            sbuf s = {0};
            if (sb_put(x, &s, a.u.s->s, a.u.s->len) < 0 || sb_put(x, &s, b.u.s->s, b.u.s->len) < 0) {
                sb_free(&s);
                return -1;
            }
            return v_str_sb(x, &s, out);
        }
        if (a.k == V_LIST && b.k == V_LIST && a.u.l->h.flavor == b.u.l->h.flavor &&
            a.u.l->h.flavor <= FL_TUPLE) {
            tlist *r = list_new(x, a.u.l->n + b.u.l->n, a.u.l->h.flavor);
            if (!r) return -1;
            for (uint32_t i = 0; i < a.u.l->n; i++) r->v[r->n++] = v_ref(a.u.l->v[i]);
            for (uint32_t i = 0; i < b.u.l->n; i++) r->v[r->n++] = v_ref(b.u.l->v[i]);
            *out = v_obj(V_LIST, r);
            return 0;
        }
        break;
    case OP_SUB:
        if (ints) {
            int64_t r = 0;
            if (__builtin_sub_overflow(ival(a), ival(b), &r)) return rx_fail(x, "integer overflow");
            *out = v_int(r);
            return 0;
        }
        if (nums) { *out = v_float(v_num(a) - v_num(b)); return 0; }
        break;
    case OP_MUL:
        if (ints) {
            int64_t r = 0;
            if (__builtin_mul_overflow(ival(a), ival(b), &r)) return rx_fail(x, "integer overflow");
            *out = v_int(r);
            return 0;
        }
        if (nums) { *out = v_float(v_num(a) * v_num(b)); return 0; }
        if ((a.k == V_STR || (a.k == V_LIST && a.u.l->h.flavor <= FL_TUPLE)) && is_intlike(b))
            return repeat(x, a, ival(b), out);
        if ((b.k == V_STR || (b.k == V_LIST && b.u.l->h.flavor <= FL_TUPLE)) && is_intlike(a))
            return repeat(x, b, ival(a), out);
        break;
    case OP_DIV:
        if (nums) {
            if (v_num(b) == 0) return rx_fail(x, "division by zero");
            *out = v_float(v_num(a) / v_num(b));
            return 0;
        }
        break;
    case OP_FLOORDIV: case OP_MOD:
        if (ints) {
            int64_t p = ival(a), q = ival(b);
            if (q == 0) return rx_fail(x, "integer division or modulo by zero");
            if (p == INT64_MIN && q == -1) return rx_fail(x, "integer overflow");
            int64_t d = p / q, m = p % q;
            if (m != 0 && ((m < 0) != (q < 0))) { m += q; d -= 1; }
            *out = v_int(op == OP_MOD ? m : d);
            return 0;
        }
        if (nums) {
            if (v_num(b) == 0) return rx_fail(x, "float %s by zero", op == OP_MOD ? "modulo" : "floor division");
            double fd, m;
            float_divmod(v_num(a), v_num(b), &fd, &m);
            *out = v_float(op == OP_MOD ? m : fd);
            return 0;
        }
        if (op == OP_MOD && a.k == V_STR) return str_percent(x, a, b, out);
        break;
    case OP_POW:
        if (ints && ival(b) >= 0) {
            int64_t base = ival(a), e = ival(b), r = 1;
            while (e > 0) {
                if (e & 1) {
                    if (__builtin_mul_overflow(r, base, &r)) return rx_fail(x, "integer overflow");
                }
                e >>= 1;
                if (e && __builtin_mul_overflow(base, base, &base)) return rx_fail(x, "integer overflow");
            }
            *out = v_int(r);
            return 0;
        }
        if (nums) {
            double p = v_num(a), q = v_num(b);
            if (p == 0 && q < 0) return rx_fail(x, "0.0 cannot be raised to a negative power");
            if (p < 0 && q != floor(q)) return rx_fail(x, "complex results are not supported");
            double r = pow(p, q);
            if (isinf(r) && !isinf(p)) return rx_fail(x, "(34, 'Numerical result out of range')");
            *out = v_float(r);
            return 0;
        }
        break;
    default: break;
    }
    return arith_error(x, names[op], a, b);
}

/* ---- calls ------------------------------------------------------------- */

/* Evaluated call arguments; owns its values (and the **mapping whose
 * keys the keyword names borrow). */
typedef struct argbuf {
    tv pos[32];
    uint32_t npos;
    const char *kwn[32];
    tv kwv[32];
    uint32_t nkw;
    tv held; /* the ** mapping, or none */
} argbuf;

static void args_release(argbuf *b) {
    for (uint32_t i = 0; i < b->npos; i++) v_decref(b->pos[i]);
    for (uint32_t i = 0; i < b->nkw; i++) v_decref(b->kwv[i]);
    v_decref(b->held);
    b->npos = b->nkw = 0;
    b->held = v_none();
}

static int args_push(rx *x, argbuf *b, tv v) {
    if (b->npos == RF_ARRAY_LEN(b->pos)) { v_decref(v); return rx_fail(x, "too many arguments"); }
    b->pos[b->npos++] = v;
    return 0;
}

static int args_kw(rx *x, argbuf *b, const char *name, tv v) {
    if (b->nkw == RF_ARRAY_LEN(b->kwv)) { v_decref(v); return rx_fail(x, "too many keyword arguments"); }
    for (uint32_t i = 0; i < b->nkw; i++)
        if (!strcmp(b->kwn[i], name)) {
            v_decref(v);
            return rx_fail(x, "got multiple values for keyword argument '%s'", name);
        }
    b->kwn[b->nkw] = name;
    b->kwv[b->nkw++] = v;
    return 0;
}

/* Evaluates the arguments of a CALL/FILTER/TEST node into b (released by
 * args_release, also on failure). */
static int eval_args(rx *x, const node *n, argbuf *b) {
    b->npos = b->nkw = 0;
    b->held = v_none();
    for (uint32_t i = 0; i < n->nx; i++) {
        tv v;
        if (ev_expr(x, n->xs[i], &v) < 0 || args_push(x, b, v) < 0) goto fail;
    }
    for (uint32_t i = 0; i < n->ny; i++) {
        tv v;
        if (ev_expr(x, n->ys[i]->a, &v) < 0 || args_kw(x, b, n->ys[i]->name, v) < 0) goto fail;
    }
    if (n->c) {
        tv v;
        tlist *l;
        if (ev_expr(x, n->c, &v) < 0) goto fail;
        int rc = v_iter_list(x, v, &l);
        v_decref(v);
        if (rc < 0) goto fail;
        for (uint32_t i = 0; i < l->n; i++)
            if (args_push(x, b, v_ref(l->v[i])) < 0) { v_decref(v_obj(V_LIST, l)); goto fail; }
        v_decref(v_obj(V_LIST, l));
    }
    if (n->d) {
        tv v;
        if (ev_expr(x, n->d, &v) < 0) goto fail;
        b->held = v;
        if (v.k != V_DICT) {
            rx_fail(x, "argument after ** must be a mapping, not %s", v_type_name(v));
            goto fail;
        }
        for (uint32_t i = 0; i < v.u.d->n; i++) {
            tv k = v.u.d->e[i].k;
            if (k.k != V_STR) { rx_fail(x, "keywords must be strings"); goto fail; }
            if (args_kw(x, b, k.u.s->s, v_ref(v.u.d->e[i].v)) < 0) goto fail;
        }
    }
    return 0;
fail:
    args_release(b);
    return -1;
}

static targs as_targs(const argbuf *b) {
    targs t = {b->pos, b->npos, b->kwn, b->kwv, b->nkw};
    return t;
}

static int call_macro(rx *x, tmacro *m, const targs *a, tv *out);
static int run_for(rx *x, const node *fn, tlist *items, int depth0, sbuf *out);

int rx_call(rx *x, tv fn, const targs *a, tv *out) {
    switch ((vkind)fn.k) {
    case V_UNDEF: return v_undef_error(x, fn);
    case V_FUNC: return call_global(x, (int)fn.u.i, a, out);
    case V_METHOD: {
        const tmethod *m = (const tmethod *)fn.u.o;
        return method_call(x, m->mid, m->self, a, out);
    }
    case V_MACRO: return call_macro(x, (tmacro *)fn.u.o, a, out);
    case V_LOOP: {
        tloop *lp = (tloop *)fn.u.o;
        if (!lp->forn || !(lp->forn->flags & NF_RECURSIVE))
            return rx_fail(x, "Tried to call non recursive loop.  Maybe you forgot the 'recursive' modifier.");
        if (a->npos != 1 || a->nkw) return rx_fail(x, "loop() takes exactly one argument");
        tlist *items;
        if (v_iter_list(x, a->pos[0], &items) < 0) return -1;
        sbuf b = {0};
        scope *saved = x->sc;
        x->sc = lp->outer;
        int rc = run_for(x, lp->forn, items, lp->depth0 + 1, &b);
        x->sc = saved;
        v_decref(v_obj(V_LIST, items));
        if (rc < 0) { sb_free(&b); return -1; }
        return v_str_sb(x, &b, out);
    }
    case V_JOINER: {
        tjoiner *j = (tjoiner *)fn.u.o;
        if (a->npos || a->nkw) return rx_fail(x, "joiner() takes no arguments");
        if (!j->used) {
            j->used = true;
            return v_str(x, "", 0, out);
        }
        *out = v_ref(v_obj(V_STR, j->sep));
        return 0;
    }
    default: return rx_fail(x, "'%s' object is not callable", v_type_name(fn));
    }
}

/* Runs body in a fresh scope (parent: parent) capturing the output. */
static int render_body_to(rx *x, scope *parent, node *const *xs, uint32_t n, sbuf *b, scope **keep) {
    scope *s = scope_new(x, parent);
    if (!s) return -1;
    scope *saved_sc = x->sc;
    sbuf *saved_out = x->out;
    x->sc = s;
    x->out = b;
    int rc = exec_body(x, xs, n);
    x->sc = saved_sc;
    x->out = saved_out;
    if (keep) *keep = s;
    else scope_release(s);
    return rc < 0 ? -1 : 0;
}

static int call_macro(rx *x, tmacro *m, const targs *a, tv *out) {
    const node *def = m->def;
    if (x->depth >= x->max_depth) return rx_fail_fatal(x, "macro calls nested too deeply (limit %u)", x->max_depth);
    if (stack_check(x) < 0) return -1;
    uint32_t np = def->ny;
    scope *s = scope_new(x, m->closure);
    if (!s) return -1;
    int rc = 0;
    bool kw_used[32] = {false};
    /* positional, then keywords for the remaining parameters */
    for (uint32_t i = 0; i < np && rc == 0; i++) {
        const node *prm = def->ys[i];
        tv v = {0};
        bool have = false;
        if (i < a->npos) { v = v_ref(a->pos[i]); have = true; }
        else {
            for (uint32_t k = 0; k < a->nkw; k++)
                if (!strcmp(a->kwn[k], prm->name)) { v = v_ref(a->kwv[k]); kw_used[k] = true; have = true; }
        }
        if (!have) {
            if (prm->a) {
                scope *saved = x->sc;
                x->sc = s; /* defaults see the parameters bound before them */
                rc = ev_expr(x, prm->a, &v);
                x->sc = saved;
                if (rc < 0) break;
            } else {
                v = v_undef_named(U_NAME, prm->name, 0);
            }
        }
        rc = scope_set(x, s, prm->name, v);
    }
    bool is_caller = def->kind == N_CALLBLOCK;
    uint32_t flags = def->flags;
    if (rc == 0 && (flags & NF_USES_CALLER) && !is_caller) {
        bool is_param = false;
        for (uint32_t i = 0; i < np; i++) if (def->ys[i]->name == x->t->sym_caller) is_param = true;
        if (!is_param) {
            tv c = v_undef_named(U_HINT, "No caller defined", 0);
            for (uint32_t k = 0; k < a->nkw; k++)
                if (!strcmp(a->kwn[k], "caller")) { v_decref(c); c = v_ref(a->kwv[k]); kw_used[k] = true; }
            rc = scope_set(x, s, x->t->sym_caller, c);
        }
    }
    if (rc == 0) {
        for (uint32_t k = 0; k < a->nkw && rc == 0; k++) {
            if (kw_used[k]) continue;
            if (!(flags & NF_USES_KWARGS))
                rc = rx_fail(x, "macro '%s' takes no keyword argument '%s'", m->name, a->kwn[k]);
        }
        if (rc == 0 && (flags & NF_USES_KWARGS)) {
            tdict *kw = dict_new(x);
            if (!kw) rc = -1;
            for (uint32_t k = 0; rc == 0 && k < a->nkw; k++) {
                if (kw_used[k]) continue;
                tv key;
                rc = v_str(x, a->kwn[k], strlen(a->kwn[k]), &key);
                if (rc == 0) rc = dict_set(x, kw, key, v_ref(a->kwv[k]));
            }
            if (rc == 0) rc = scope_set(x, s, x->t->sym_kwargs, v_obj(V_DICT, kw));
            else if (kw) v_decref(v_obj(V_DICT, kw));
        }
    }
    if (rc == 0) {
        if (flags & NF_USES_VARARGS) {
            tlist *va = list_new(x, 0, FL_TUPLE);
            if (!va) rc = -1;
            for (uint32_t i = np; rc == 0 && i < a->npos; i++) rc = list_push(x, va, v_ref(a->pos[i]));
            if (rc == 0) rc = scope_set(x, s, x->t->sym_varargs, v_obj(V_LIST, va));
            else if (va) v_decref(v_obj(V_LIST, va));
        } else if (a->npos > np) {
            rc = rx_fail(x, "macro '%s' takes not more than %u argument(s)", m->name, np);
        }
    }
    if (rc == 0) {
        sbuf b = {0};
        x->depth++;
        rc = render_body_to(x, s, def->xs, def->nx, &b, NULL);
        x->depth--;
        if (rc == 0) rc = v_str_sb(x, &b, out);
        else sb_free(&b);
    }
    scope_release(s);
    return rc;
}

/* A CALL node, with an optional extra keyword (caller= of call blocks). */
static int ev_call(rx *x, const node *n, const char *extra_kw, tv extra, tv *out) {
    argbuf b;
    const node *fnode = n->a;
    tv fn;
    /* recv.method(...) on str/list/dict without a bound-method object */
    if (fnode->kind == N_GETATTR) {
        tv recv;
        if (ev_expr(x, fnode->a, &recv) < 0) return -1;
        int mid = (recv.k == V_STR || recv.k == V_LIST || recv.k == V_DICT)
                      ? method_lookup(recv, fnode->name, strlen(fnode->name)) : -1;
        if (mid >= 0) {
            if (eval_args(x, n, &b) < 0) { v_decref(recv); return -1; }
            x->pos = n->pos;
            targs t = as_targs(&b);
            int rc = method_call(x, mid, recv, &t, out);
            args_release(&b);
            v_decref(recv);
            return rc;
        }
        x->pos = fnode->pos;
        int rc = getattr_impl(x, recv, fnode->name, strlen(fnode->name), true, &fn);
        v_decref(recv);
        if (rc < 0) return -1;
    } else if (ev_expr(x, fnode, &fn) < 0) {
        return -1;
    }
    if (eval_args(x, n, &b) < 0) { v_decref(fn); return -1; }
    int rc = 0;
    if (extra_kw) rc = args_kw(x, &b, extra_kw, v_ref(extra));
    if (rc == 0) {
        x->pos = n->pos;
        targs t = as_targs(&b);
        rc = rx_call(x, fn, &t, out);
    }
    args_release(&b);
    v_decref(fn);
    return rc;
}

/* ---- expressions ------------------------------------------------------- */

/* Filters jinja2 never folds: they take the render context. */
static bool context_filter(const char *name) {
    static const char *const names[] = {"map", "select", "reject", "selectattr", "rejectattr",
                                        "random"};
    for (size_t i = 0; i < RF_ARRAY_LEN(names); i++)
        if (!strcmp(name, names[i])) return true;
    return false;
}

static int ev_filter(rx *x, const node *n, tv *out) {
    tv in;
    if (x->const_mode && (n->idx < 0 || !n->a || n->c || n->d || context_filter(n->name)))
        return rx_fail(x, "not a constant");
    if (n->a) {
        if (ev_expr(x, n->a, &in) < 0) return -1;
    } else {
        in = v_ref(x->filter_input);
    }
    argbuf b;
    if (eval_args(x, n, &b) < 0) { v_decref(in); return -1; }
    x->pos = n->pos;
    int rc;
    if (n->idx < 0) rc = rx_fail(x, "No filter named '%s' found.", n->name);
    else {
        targs t = as_targs(&b);
        rc = filter_apply(x, n->idx, in, &t, out);
    }
    args_release(&b);
    v_decref(in);
    return rc;
}

static int ev_test(rx *x, const node *n, tv *out) {
    tv in;
    if (x->const_mode && (n->idx < 0 || n->c || n->d)) return rx_fail(x, "not a constant");
    if (ev_expr(x, n->a, &in) < 0) return -1;
    argbuf b;
    if (eval_args(x, n, &b) < 0) { v_decref(in); return -1; }
    x->pos = n->pos;
    int rc;
    bool r = false;
    if (n->idx < 0) rc = rx_fail(x, "No test named '%s' found.", n->name);
    else {
        targs t = as_targs(&b);
        rc = test_apply(x, n->idx, in, &t, &r);
    }
    args_release(&b);
    v_decref(in);
    if (rc == 0) *out = v_bool(r);
    return rc;
}

static int ev_compare(rx *x, const node *n, tv *out) {
    tv left;
    if (ev_expr(x, n->a, &left) < 0) return -1;
    bool result = true;
    for (uint32_t i = 0; i < n->nx && result; i++) {
        const node *o = n->xs[i];
        tv right;
        if (ev_expr(x, o->a, &right) < 0) { v_decref(left); return -1; }
        x->pos = o->pos;
        int rc = 0, c = 0;
        bool r = false;
        switch (o->op) {
        case OP_EQ: case OP_NE:
            rc = v_eq(x, left, right, &r, 0);
            if (o->op == OP_NE) r = !r;
            break;
        case OP_IN: case OP_NOTIN:
            rc = v_contains(x, right, left, &r);
            if (o->op == OP_NOTIN) r = !r;
            break;
        default:
            rc = v_cmp(x, left, right, &c, 0);
            r = c != 2 && ((o->op == OP_LT && c < 0) || (o->op == OP_LE && c <= 0) ||
                           (o->op == OP_GT && c == 1) || (o->op == OP_GE && c >= 0));
            break;
        }
        v_decref(left);
        left = right;
        if (rc < 0) { v_decref(left); return -1; }
        result = r;
    }
    v_decref(left);
    *out = v_bool(result);
    return 0;
}

static int ev_seq(rx *x, const node *n, int flavor, tv *out) {
    tlist *l = list_new(x, n->nx, flavor);
    if (!l) return -1;
    for (uint32_t i = 0; i < n->nx; i++) {
        tv v;
        if (ev_expr(x, n->xs[i], &v) < 0) { v_decref(v_obj(V_LIST, l)); return -1; }
        l->v[l->n++] = v;
    }
    *out = v_obj(V_LIST, l);
    return 0;
}

static int ev_name(rx *x, const node *n, tv *out) {
    tv v;
    if (x->const_mode) return rx_fail(x, "not a constant");
    if (scope_find(x->sc, n->name, &v)) { *out = v_ref(v); return 0; }
    if (dict_get_str(x->vars, n->name, strlen(n->name), &v)) { *out = v_ref(v); return 0; }
    int g = global_index(n->name);
    if (g >= 0) {
        tv f = {0};
        f.k = V_FUNC;
        f.u.i = g;
        *out = f;
        return 0;
    }
    *out = v_undef_named(U_NAME, n->name, 0);
    return 0;
}

int ev_expr(rx *x, const node *n, tv *out) {
    x->pos = n->pos;
    if (stack_check(x) < 0) return -1;
    tv a, b;
    int rc;
    switch ((nkind)n->kind) {
    case N_CONST: *out = n->val; return 0;
    case N_NAME: return ev_name(x, n, out);
    case N_GETATTR:
        if (ev_expr(x, n->a, &a) < 0) return -1;
        x->pos = n->pos;
        rc = getattr_impl(x, a, n->name, strlen(n->name), true, out);
        v_decref(a);
        return rc;
    case N_GETITEM:
        if (ev_expr(x, n->a, &a) < 0) return -1;
        if (n->b->kind == N_SLICE) {
            rc = ev_slice(x, a, n->b, out);
            v_decref(a);
            return rc;
        }
        if (n->b->kind == N_TUPLE) { /* x[a:b, c]: a tuple holding a slice is no key */
            bool has_slice = false;
            for (uint32_t i = 0; i < n->b->nx; i++) has_slice |= n->b->xs[i]->kind == N_SLICE;
            if (has_slice) {
                for (uint32_t i = 0; i < n->b->nx; i++) {
                    const node *e = n->b->xs[i];
                    const node *parts[3] = {e->kind == N_SLICE ? e->a : e, e->kind == N_SLICE ? e->b : NULL,
                                            e->kind == N_SLICE ? e->c : NULL};
                    for (int k = 0; k < 3; k++) {
                        if (!parts[k]) continue;
                        if (ev_expr(x, parts[k], &b) < 0) { v_decref(a); return -1; }
                        v_decref(b);
                    }
                }
                x->pos = n->pos;
                rc = a.k == V_UNDEF ? v_undef_error(x, a) : 0;
                v_decref(a);
                if (rc == 0) *out = v_undef_named(U_ITEM, NULL, V_LIST);
                return rc;
            }
        }
        if (ev_expr(x, n->b, &b) < 0) { v_decref(a); return -1; }
        x->pos = n->pos;
        rc = getitem_impl(x, a, b, n->b->kind == N_CONST && b.k == V_STR ? b.u.s->s : NULL, out);
        v_decref(a);
        v_decref(b);
        return rc;
    case N_CALL:
        if (x->const_mode) return rx_fail(x, "not a constant");
        return ev_call(x, n, NULL, v_none(), out);
    case N_FILTER: return ev_filter(x, n, out);
    case N_TEST: return ev_test(x, n, out);
    case N_NOT:
        if (ev_expr(x, n->a, &a) < 0) return -1;
        *out = v_bool(!v_truthy(a));
        v_decref(a);
        return 0;
    case N_NEG: case N_POS:
        if (ev_expr(x, n->a, &a) < 0) return -1;
        x->pos = n->pos;
        if (a.k == V_UNDEF) return v_undef_error(x, a);
        if (is_intlike(a)) {
            int64_t i = ival(a);
            if (n->kind == N_NEG && i == INT64_MIN) return rx_fail(x, "integer overflow");
            *out = v_int(n->kind == N_NEG ? -i : i);
            return 0;
        }
        if (a.k == V_FLOAT) { *out = v_float(n->kind == N_NEG ? -a.u.f : a.u.f); return 0; }
        rc = rx_fail(x, "bad operand type for unary %s: '%s'", n->kind == N_NEG ? "-" : "+", v_type_name(a));
        v_decref(a);
        return rc;
    case N_BINOP:
        if (ev_expr(x, n->a, &a) < 0) return -1;
        if (ev_expr(x, n->b, &b) < 0) { v_decref(a); return -1; }
        x->pos = n->pos;
        rc = rx_binop(x, n->op, a, b, out);
        v_decref(a);
        v_decref(b);
        return rc;
    case N_AND: case N_OR:
        if (ev_expr(x, n->a, &a) < 0) return -1;
        if (v_truthy(a) == (n->kind == N_OR)) { *out = a; return 0; }
        v_decref(a);
        return ev_expr(x, n->b, out);
    case N_COMPARE: return ev_compare(x, n, out);
    case N_CONCAT: {
        sbuf s = {0};
        for (uint32_t i = 0; i < n->nx; i++) {
            if (ev_expr(x, n->xs[i], &a) < 0) { sb_free(&s); return -1; }
            rc = v_write_str(x, &s, a, 0);
            v_decref(a);
            if (rc < 0) { sb_free(&s); return -1; }
        }
        return v_str_sb(x, &s, out);
    }
    case N_COND:
        if (ev_expr(x, n->b, &a) < 0) return -1;
        rc = v_truthy(a);
        v_decref(a);
        if (rc) return ev_expr(x, n->a, out);
        if (n->c) return ev_expr(x, n->c, out);
        if (x->const_mode) return rx_fail(x, "not a constant");
        *out = v_undef_named(U_HINT, "the inline if-expression evaluated to false and no else section was defined.", 0);
        return 0;
    case N_LIST: return ev_seq(x, n, FL_LIST, out);
    case N_TUPLE: return ev_seq(x, n, FL_TUPLE, out);
    case N_DICT: {
        tdict *d = dict_new(x);
        if (!d) return -1;
        for (uint32_t i = 0; i < n->nx; i++) {
            if (ev_expr(x, n->xs[i]->a, &a) < 0) goto dfail;
            if (ev_expr(x, n->xs[i]->b, &b) < 0) { v_decref(a); goto dfail; }
            x->pos = n->xs[i]->pos;
            if (dict_set(x, d, a, b) < 0) goto dfail;
        }
        *out = v_obj(V_DICT, d);
        return 0;
    dfail:
        v_decref(v_obj(V_DICT, d));
        return -1;
    }
    default: return rx_fail(x, "internal error: node %d is not an expression", n->kind);
    }
}

/* ---- statements -------------------------------------------------------- */

/* Binds a target (name, tuple of targets, ns.attr) to v in scope s; takes v. */
static int assign(rx *x, scope *s, const node *target, tv v) {
    if (target->kind == N_NAME) return scope_set(x, s, target->name, v);
    if (target->kind == N_NSREF) {
        tv ns;
        bool found = scope_find(x->sc, target->name, &ns) ||
                     dict_get_str(x->vars, target->name, strlen(target->name), &ns);
        if (!found || ns.k != V_NS) {
            v_decref(v);
            return rx_fail(x, "cannot assign attribute on non-namespace object");
        }
        tv key;
        if (v_str(x, target->attr, strlen(target->attr), &key) < 0) { v_decref(v); return -1; }
        return dict_set(x, ((tns *)ns.u.o)->attrs, key, v);
    }
    /* tuple unpacking */
    tlist *l;
    int rc = v_iter_list(x, v, &l);
    v_decref(v);
    if (rc < 0) return -1;
    if (l->n != target->nx) {
        rc = l->n < target->nx
                 ? rx_fail(x, "not enough values to unpack (expected %u, got %u)", target->nx, l->n)
                 : rx_fail(x, "too many values to unpack (expected %u)", target->nx);
    }
    for (uint32_t i = 0; rc == 0 && i < target->nx; i++) rc = assign(x, s, target->xs[i], v_ref(l->v[i]));
    v_decref(v_obj(V_LIST, l));
    return rc;
}

static int write_value(rx *x, tv v) { return v_write_str(x, x->out, v, 0); }

static int exec_output(rx *x, const node *n) {
    for (uint32_t i = 0; i < n->nx; i++) {
        const node *it = n->xs[i];
        if (it->kind == N_DATA) {
            if (sb_put(x, x->out, it->val.u.s->s, it->val.u.s->len) < 0) return -1;
            continue;
        }
        tv v;
        if (ev_expr(x, it, &v) < 0) return -1;
        int rc = write_value(x, v);
        v_decref(v);
        if (rc < 0) return -1;
    }
    return 0;
}

/* Runs a for statement over items (already iterated) with x->sc as the
 * enclosing scope, writing to out. */
static int run_for(rx *x, const node *fn, tlist *items, int depth0, sbuf *out) {
    int rc = 0;
    sbuf *saved_out = x->out;
    scope *outer = x->sc;
    x->out = out;
    tlist *kept = items;
    v_incref(v_obj(V_LIST, items));
    if (fn->c) { /* the loop filter runs before loop.* is known */
        tlist *f = list_new(x, 0, FL_LIST);
        if (!f) rc = -1;
        for (uint32_t i = 0; rc == 0 && i < items->n; i++) {
            if ((rc = rx_tick(x, 1)) < 0) break;
            scope *s = scope_new(x, outer);
            if (!s) { rc = -1; break; }
            x->sc = s;
            tv t;
            rc = assign(x, s, fn->a, v_ref(items->v[i]));
            if (rc == 0) rc = ev_expr(x, fn->c, &t);
            x->sc = outer;
            scope_release(s);
            if (rc < 0) break;
            bool keep = v_truthy(t);
            v_decref(t);
            if (keep) rc = list_push(x, f, v_ref(items->v[i]));
        }
        v_decref(v_obj(V_LIST, kept));
        kept = f;
        if (rc < 0) {
            if (f) v_decref(v_obj(V_LIST, f));
            x->out = saved_out;
            return -1;
        }
    }
    if (kept->n == 0) {
        v_decref(v_obj(V_LIST, kept));
        if (fn->ny) {
            sbuf *o = x->out;
            scope *s = scope_new(x, outer);
            if (!s) { x->out = saved_out; return -1; }
            x->sc = s;
            x->out = o;
            rc = exec_body(x, fn->ys, fn->ny);
            x->sc = outer;
            scope_release(s);
        }
        x->out = saved_out;
        return rc < 0 ? -1 : 0;
    }
    tloop *lp = rx_alloc(x, sizeof *lp);
    if (!lp) { v_decref(v_obj(V_LIST, kept)); x->out = saved_out; return -1; }
    lp->h.rc = 1;
    lp->h.kind = V_LOOP;
    lp->items = kept;
    lp->depth0 = depth0;
    lp->forn = fn;
    lp->outer = outer;
    outer->h.rc++;
    for (uint32_t i = 0; i < kept->n; i++) {
        if ((rc = rx_tick(x, 1)) < 0) break;
        lp->i0 = i;
        scope *s = scope_new(x, outer);
        if (!s) { rc = -1; break; }
        x->sc = s;
        rc = assign(x, s, fn->a, v_ref(kept->v[i]));
        if (rc == 0) rc = scope_set(x, s, x->t->sym_loop, v_ref(v_obj(V_LOOP, lp)));
        if (rc == 0) rc = exec_body(x, fn->xs, fn->nx);
        x->sc = outer;
        scope_release(s);
        if (rc < 0) break;
        if (rc == EX_BREAK) { rc = 0; break; }
        rc = 0;
    }
    /* a loop object that escaped (stored in a namespace) keeps its shell
     * only: drop what could form a cycle */
    v_decref(lp->changed);
    lp->changed = v_none();
    tlist *it = lp->items;
    lp->items = NULL;
    scope *o = lp->outer;
    lp->outer = NULL;
    v_decref(v_obj(V_LOOP, lp));
    v_decref(v_obj(V_LIST, it));
    scope_release(o);
    x->out = saved_out;
    return rc < 0 ? -1 : 0;
}

static int exec_for(rx *x, const node *n) {
    tv it;
    if (ev_expr(x, n->b, &it) < 0) return -1;
    tlist *items;
    x->pos = n->b->pos;
    int rc = v_iter_list(x, it, &items);
    v_decref(it);
    if (rc < 0) return -1;
    rc = run_for(x, n, items, 0, x->out);
    v_decref(v_obj(V_LIST, items));
    return rc;
}

/* Applies a filter chain (FILTER nodes whose innermost input is NULL) to v. */
static int apply_chain(rx *x, const node *chain, tv v, tv *out) {
    tv saved = x->filter_input;
    x->filter_input = v;
    int rc = ev_expr(x, chain, out);
    x->filter_input = saved;
    return rc;
}

static int exec_stmt(rx *x, const node *n) {
    x->pos = n->pos;
    if (stack_check(x) < 0) return -1;
    switch ((nkind)n->kind) {
    case N_OUTPUT: return exec_output(x, n);
    case N_IF: {
        tv t;
        if (ev_expr(x, n->a, &t) < 0) return -1;
        bool c = v_truthy(t);
        v_decref(t);
        return c ? exec_body(x, n->xs, n->nx) : exec_body(x, n->ys, n->ny);
    }
    case N_FOR: return exec_for(x, n);
    case N_SET: {
        tv v;
        if (ev_expr(x, n->b, &v) < 0) return -1;
        x->pos = n->pos;
        return assign(x, x->sc, n->a, v);
    }
    case N_SETBLOCK: case N_FILTERBLOCK: {
        sbuf b = {0};
        if (render_body_to(x, x->sc, n->xs, n->nx, &b, NULL) < 0) { sb_free(&b); return -1; }
        tv v;
        if (v_str_sb(x, &b, &v) < 0) return -1;
        const node *chain = n->b;
        if (chain) {
            tv r;
            int rc = apply_chain(x, chain, v, &r);
            v_decref(v);
            if (rc < 0) return -1;
            v = r;
        }
        if (n->kind == N_SETBLOCK) return assign(x, x->sc, n->a, v);
        int rc = write_value(x, v);
        v_decref(v);
        return rc;
    }
    case N_MACRO: {
        tmacro *m = reg_alloc(x, sizeof *m, V_MACRO);
        if (!m) return -1;
        m->def = n;
        m->closure = x->sc;
        x->sc->h.rc++;
        m->name = n->name;
        return scope_set(x, x->sc, n->name, v_obj(V_MACRO, m));
    }
    case N_CALLBLOCK: {
        tmacro *c = reg_alloc(x, sizeof *c, V_MACRO);
        if (!c) return -1;
        c->def = n;
        c->closure = x->sc;
        x->sc->h.rc++;
        c->name = "caller";
        tv r;
        if (ev_call(x, n->a, "caller", v_obj(V_MACRO, c), &r) < 0) return -1;
        int rc = write_value(x, r);
        v_decref(r);
        return rc;
    }
    case N_WITH: {
        scope *s = scope_new(x, x->sc);
        if (!s) return -1;
        int rc = 0;
        for (uint32_t i = 0; i < n->ny && rc == 0; i++) {
            tv v;
            rc = ev_expr(x, n->ys[i]->b, &v);
            if (rc == 0) rc = assign(x, s, n->ys[i]->a, v);
        }
        scope *saved = x->sc;
        x->sc = s;
        if (rc == 0) rc = exec_body(x, n->xs, n->nx);
        x->sc = saved;
        scope_release(s);
        return rc;
    }
    case N_SCOPEBODY: {
        scope *s = scope_new(x, x->sc);
        if (!s) return -1;
        scope *saved = x->sc;
        x->sc = s;
        int rc = exec_body(x, n->xs, n->nx);
        x->sc = saved;
        scope_release(s);
        return rc;
    }
    case N_BLOCK: {
        scope *s = scope_new(x, (n->flags & NF_SCOPED) ? x->sc : x->root_sc);
        if (!s) return -1;
        scope *saved = x->sc;
        x->sc = s;
        int rc = exec_body(x, n->xs, n->nx);
        x->sc = saved;
        scope_release(s);
        return rc < 0 ? -1 : 0;
    }
    case N_LOADER:
        return rx_fail(x, "'%s' needs a template loader: no loader for this environment specified",
                       n->name);
    case N_BREAK: return EX_BREAK;
    case N_CONTINUE: return EX_CONTINUE;
    default: return rx_fail(x, "internal error: node %d is not a statement", n->kind);
    }
}

int exec_body(rx *x, node *const *xs, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        int rc = exec_stmt(x, xs[i]);
        if (rc != EX_OK) return rc;
    }
    return EX_OK;
}

