/*
 * value.c - template values: allocation and reference counting (objects
 * are freed iteratively, so a deeply nested list cannot overflow the C
 * stack), the render's error/budget helpers, strings, lists, insertion-
 * ordered dicts, truthiness, Python's str() and repr() (floats printed the
 * way Python prints them), equality, ordering, hashing, membership,
 * iteration and a stable sort. Every recursive walk takes a depth and stops
 * with an error past the render's max_depth.
 */
#define _GNU_SOURCE /* memmem */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/tmpl-impl.h"

/* ---- errors and budgets ------------------------------------------------ */

int rx_fail(rx *x, const char *fmt, ...) {
    if (x->failed) return -1;
    x->failed = true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = 0, col = 0;
    tmpl_linecol(x->t->src, x->t->len, x->pos, &line, &col);
    rf_error_set(x->err, RF_E_FORMAT, "line %d:%d: %s", line, col, msg);
    return -1;
}

int rx_fail_fatal(rx *x, const char *fmt, ...) {
    if (x->failed) return -1;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rx_fail(x, "%s", msg);
    x->fatal = true;
    return -1;
}

int rx_oom(rx *x) {
    if (x->failed) return -1;
    x->failed = true;
    x->fatal = true;
    rf_error_set(x->err, RF_E_NOMEM, "out of memory while rendering the template");
    return -1;
}

int rx_charge(rx *x, size_t n) {
    if (!x) return 0;
    x->alloc += n;
    if (x->alloc > x->max_alloc)
        return rx_fail_fatal(x, "template allocated more than %" PRIu64 " bytes (limit)", x->max_alloc);
    return 0;
}

int rx_tick(rx *x, uint64_t k) {
    x->iters += k;
    if (x->iters > x->max_iters)
        return rx_fail_fatal(x, "template ran more than %" PRIu64 " loop iterations (limit)",
                       x->max_iters);
    return 0;
}

int rx_work(rx *x, uint64_t k) {
    x->work += k;
    if (x->work > x->max_work)
        return rx_fail_fatal(x, "template did more than %" PRIu64 " units of work (limit)", x->max_work);
    return 0;
}

void *rx_alloc(rx *x, size_t n) {
    if (x && rx_charge(x, n) < 0) return NULL;
    void *p = rf_calloc(1, n);
    if (!p && x) rx_oom(x);
    return p;
}

/* ---- reference counting ------------------------------------------------ */

bool v_is_heap(tv v) { return v.k >= V_STR && v.k != V_FUNC; }

tv v_undef_named(int uk, const char *name, int objkind) {
    tv v = v_undef();
    v.uk = (uint8_t)uk;
    v.u.name = name;
    v.ut = (uint8_t)objkind;
    return v;
}

void v_incref(tv v) {
    if (v_is_heap(v) && v.u.o->rc >= 0) v.u.o->rc++;
}

/* Drops one reference of a child; pushes it on the free stack at zero. */
static void child_drop(tv v, obj **stack) {
    if (!v_is_heap(v)) return;
    obj *o = v.u.o;
    if (o->rc < 0) return;
    if (--o->rc == 0) {
        o->next = *stack;
        *stack = o;
    }
}

static void obj_drop(obj *o, obj **stack) {
    if (!o || o->rc < 0) return;
    if (--o->rc == 0) {
        o->next = *stack;
        *stack = o;
    }
}

/* Releases what o holds, pushing children that die. */
static void obj_release(obj *o, obj **stack) {
    switch ((vkind)o->kind) {
    case V_LIST: {
        tlist *l = (tlist *)o;
        for (uint32_t i = 0; i < l->n; i++) child_drop(l->v[i], stack);
        rf_free(l->v);
        break;
    }
    case V_DICT: {
        tdict *d = (tdict *)o;
        for (uint32_t i = 0; i < d->n; i++) {
            child_drop(d->e[i].k, stack);
            child_drop(d->e[i].v, stack);
        }
        rf_free(d->e);
        rf_free(d->idx);
        break;
    }
    case V_METHOD: child_drop(((tmethod *)o)->self, stack); break;
    case V_NS: obj_drop((obj *)((tns *)o)->attrs, stack); break;
    case V_MACRO: obj_drop((obj *)((tmacro *)o)->closure, stack); break;
    case V_LOOP: {
        tloop *lp = (tloop *)o;
        obj_drop((obj *)lp->items, stack);
        child_drop(lp->changed, stack);
        obj_drop((obj *)lp->outer, stack);
        break;
    }
    case V_CYCLER: obj_drop((obj *)((tcycler *)o)->items, stack); break;
    case V_JOINER: obj_drop((obj *)((tjoiner *)o)->sep, stack); break;
    case V_SCOPE: {
        scope *s = (scope *)o;
        for (uint32_t i = 0; i < s->n; i++) child_drop(s->vals[i], stack);
        rf_free(s->vals);
        rf_free(s->names);
        obj_drop((obj *)s->parent, stack);
        break;
    }
    default: break;
    }
}

static void drain(obj *stack) {
    while (stack) {
        obj *o = stack;
        stack = o->next;
        obj_release(o, &stack);
        rf_free(o);
    }
}

void v_decref(tv v) {
    obj *stack = NULL;
    child_drop(v, &stack);
    drain(stack);
}

/* The end of a render: first every render-owned object releases what it
 * holds (its children may be other render-owned objects, still valid), then
 * they are all freed. */
void registry_free(obj *list);
void registry_free(obj *list) {
    for (obj *o = list; o; o = o->next) {
        obj *stack = NULL;
        obj_release(o, &stack);
        drain(stack);
    }
    while (list) {
        obj *o = list;
        list = o->next;
        rf_free(o);
    }
}

/* ---- strings, lists, dicts --------------------------------------------- */

static bool bytes_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return false;
    return true;
}

tstr *str_new(rx *x, const char *s, size_t n) {
    if (n > SIZE_MAX / 2) { if (x) rx_fail(x, "string too long"); return NULL; }
    tstr *t = rx_alloc(x, sizeof *t + n + 1);
    if (!t) return NULL;
    t->h.rc = 1;
    t->h.kind = V_STR;
    t->len = n;
    if (n) memcpy(t->s, s, n);
    t->s[n] = '\0';
    t->ascii = bytes_ascii(s, n);
    return t;
}

tstr *str_new_immortal(tarena *a, const char *s, size_t n) {
    tstr *t = ta_alloc(a, sizeof *t + n + 1);
    if (!t) return NULL;
    t->h.rc = -1;
    t->h.kind = V_STR;
    t->len = n;
    if (n) memcpy(t->s, s, n);
    t->s[n] = '\0';
    t->ascii = bytes_ascii(s, n);
    return t;
}

int v_str(rx *x, const char *s, size_t n, tv *out) {
    tstr *t = str_new(x, s, n);
    if (!t) return -1;
    *out = v_obj(V_STR, t);
    return 0;
}

int v_str_sb(rx *x, sbuf *b, tv *out) {
    int rc = v_str(x, b->p ? b->p : "", b->n, out);
    sb_free(b);
    return rc;
}

tlist *list_new(rx *x, uint32_t cap, int flavor) {
    tlist *l = rx_alloc(x, sizeof *l);
    if (!l) return NULL;
    l->h.rc = 1;
    l->h.kind = V_LIST;
    l->h.flavor = (uint8_t)flavor;
    if (cap) {
        l->v = rx_alloc(x, (size_t)cap * sizeof(tv));
        if (!l->v) { rf_free(l); return NULL; }
        l->cap = cap;
    }
    return l;
}

int list_push(rx *x, tlist *l, tv v) {
    if (l->n == l->cap) {
        if (l->cap >= (1u << 30)) { v_decref(v); return rx_fail(x, "list too long"); }
        uint32_t nc = l->cap ? l->cap * 2 : 4;
        if (rx_charge(x, (size_t)(nc - l->cap) * sizeof(tv)) < 0) { v_decref(v); return -1; }
        tv *nv = rf_realloc(l->v, (size_t)nc * sizeof(tv));
        if (!nv) { v_decref(v); return rx_oom(x); }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = v;
    return 0;
}

tdict *dict_new(rx *x) {
    tdict *d = rx_alloc(x, sizeof *d);
    if (!d) return NULL;
    d->h.rc = 1;
    d->h.kind = V_DICT;
    return d;
}

static uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return mix64(h);
}

int v_hash(rx *x, tv v, uint64_t *h, int depth) {
    if (depth > (int)x->max_depth) return rx_fail(x, "value nested too deeply");
    switch ((vkind)v.k) {
    case V_UNDEF: *h = 0x5eed; return 0;
    case V_NONE: *h = 0x9e37; return 0;
    case V_BOOL: *h = mix64((uint64_t)v.u.b); return 0;
    case V_INT: *h = mix64((uint64_t)v.u.i); return 0;
    case V_FLOAT: {
        double f = v.u.f;
        if (f == floor(f) && fabs(f) < 9.2e18) { *h = mix64((uint64_t)(int64_t)f); return 0; }
        uint64_t bits = 0;
        memcpy(&bits, &f, sizeof bits);
        *h = mix64(bits ^ 0xf10a7);
        return 0;
    }
    case V_STR: *h = hash_bytes(v.u.s->s, v.u.s->len); return 0;
    case V_LIST:
        if (v.u.l->h.flavor == FL_TUPLE) {
            uint64_t acc = 0x345678;
            for (uint32_t i = 0; i < v.u.l->n; i++) {
                uint64_t e = 0;
                if (v_hash(x, v.u.l->v[i], &e, depth + 1) < 0) return -1;
                acc = mix64(acc ^ e) + i;
            }
            *h = acc;
            return 0;
        }
        break;
    case V_DICT: break;
    case V_FUNC: *h = mix64((uint64_t)v.u.i + 77); return 0;
    default: *h = mix64((uint64_t)(uintptr_t)v.u.o); return 0;
    }
    return rx_fail(x, "unhashable type: '%s'", v_type_name(v));
}

static int dict_reindex(rx *x, tdict *d) {
    uint32_t cap = 16;
    while (cap < d->n * 2u + 2u) cap *= 2;
    if (rx_charge(x, (size_t)cap * sizeof(uint32_t)) < 0) return -1;
    uint32_t *idx = rf_calloc(cap, sizeof(uint32_t));
    if (!idx) return rx_oom(x);
    for (uint32_t i = 0; i < d->n; i++) {
        uint32_t j = (uint32_t)d->e[i].hash & (cap - 1);
        while (idx[j]) j = (j + 1) & (cap - 1);
        idx[j] = i + 1;
    }
    rf_free(d->idx);
    d->idx = idx;
    d->idx_cap = cap;
    return 0;
}

/* Index of key k (hash h) in d, or -1; -2 on error. */
static int64_t dict_find(rx *x, const tdict *d, tv k, uint64_t h) {
    if (d->idx) {
        uint32_t j = (uint32_t)h & (d->idx_cap - 1);
        while (d->idx[j]) {
            const dent *e = &d->e[d->idx[j] - 1];
            if (e->hash == h) {
                bool eq;
                if (v_eq(x, e->k, k, &eq, 0) < 0) return -2;
                if (eq) return d->idx[j] - 1;
            }
            j = (j + 1) & (d->idx_cap - 1);
        }
        return -1;
    }
    for (uint32_t i = 0; i < d->n; i++) {
        if (d->e[i].hash != h) continue;
        bool eq;
        if (v_eq(x, d->e[i].k, k, &eq, 0) < 0) return -2;
        if (eq) return i;
    }
    return -1;
}

int dict_set(rx *x, tdict *d, tv k, tv v) {
    uint64_t h = 0;
    if (v_hash(x, k, &h, 0) < 0) goto fail;
    int64_t at = dict_find(x, d, k, h);
    if (at == -2) goto fail;
    if (at >= 0) { /* Python keeps the first key and the last value */
        v_decref(k);
        v_decref(d->e[at].v);
        d->e[at].v = v;
        return 0;
    }
    if (d->n == d->cap) {
        if (d->cap >= (1u << 28)) { rx_fail(x, "dict too large"); goto fail; }
        uint32_t nc = d->cap ? d->cap * 2 : 4;
        if (rx_charge(x, (size_t)(nc - d->cap) * sizeof(dent)) < 0) goto fail;
        dent *ne = rf_realloc(d->e, (size_t)nc * sizeof(dent));
        if (!ne) { rx_oom(x); goto fail; }
        d->e = ne;
        d->cap = nc;
    }
    d->e[d->n].k = k;
    d->e[d->n].v = v;
    d->e[d->n].hash = h;
    d->n++;
    if (d->idx && d->n * 2u + 2u <= d->idx_cap) {
        uint32_t j = (uint32_t)h & (d->idx_cap - 1);
        while (d->idx[j]) j = (j + 1) & (d->idx_cap - 1);
        d->idx[j] = d->n;
    } else if (d->n > 8) {
        if (dict_reindex(x, d) < 0) return -1;
    }
    return 0;
fail:
    v_decref(k);
    v_decref(v);
    return -1;
}

int dict_get(rx *x, const tdict *d, tv k, tv *out) {
    uint64_t h = 0;
    if (v_hash(x, k, &h, 0) < 0) return -1;
    int64_t at = dict_find(x, d, k, h);
    if (at == -2) return -1;
    if (at < 0) return 0;
    *out = d->e[at].v;
    return 1;
}

int dict_get_str(const tdict *d, const char *k, size_t n, tv *out) {
    uint64_t h = hash_bytes(k, n);
    if (d->idx) {
        uint32_t j = (uint32_t)h & (d->idx_cap - 1);
        while (d->idx[j]) {
            const dent *e = &d->e[d->idx[j] - 1];
            if (e->hash == h && e->k.k == V_STR && e->k.u.s->len == n &&
                memcmp(e->k.u.s->s, k, n) == 0) {
                *out = e->v;
                return 1;
            }
            j = (j + 1) & (d->idx_cap - 1);
        }
        return 0;
    }
    for (uint32_t i = 0; i < d->n; i++) {
        const dent *e = &d->e[i];
        if (e->hash == h && e->k.k == V_STR && e->k.u.s->len == n &&
            memcmp(e->k.u.s->s, k, n) == 0) {
            *out = e->v;
            return 1;
        }
    }
    return 0;
}

/* ---- truthiness and types ---------------------------------------------- */

bool v_truthy(tv v) {
    switch ((vkind)v.k) {
    case V_UNDEF: case V_NONE: return false;
    case V_BOOL: return v.u.b;
    case V_INT: return v.u.i != 0;
    case V_FLOAT: return v.u.f != 0.0;
    case V_STR: return v.u.s->len != 0;
    case V_LIST: return v.u.l->h.flavor >= FL_GEN || v.u.l->n != 0;
    case V_DICT: return v.u.d->n != 0;
    case V_LOOP: return ((tloop *)v.u.o)->items && ((tloop *)v.u.o)->items->n != 0;
    default: return true;
    }
}

const char *v_type_name(tv v) {
    static const char *list_names[] = {"list", "tuple", "dict_items", "dict_keys", "dict_values",
                                       "generator", "list_reverseiterator"};
    switch ((vkind)v.k) {
    case V_UNDEF: return "Undefined";
    case V_NONE: return "NoneType";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return (v.fl & VF_SAFE) ? "Markup" : "str";
    case V_LIST: return list_names[v.u.l->h.flavor <= FL_REVITER ? v.u.l->h.flavor : 0];
    case V_DICT: return "dict";
    case V_FUNC: return "function";
    case V_METHOD: return "builtin_function_or_method";
    case V_MACRO: return "Macro";
    case V_NS: return "Namespace";
    case V_LOOP: return "LoopContext";
    case V_CYCLER: return "Cycler";
    case V_JOINER: return "Joiner";
    default: return "object";
    }
}

bool v_is_num(tv v) { return v.k == V_INT || v.k == V_FLOAT || v.k == V_BOOL; }

double v_num(tv v) {
    return v.k == V_FLOAT ? v.u.f : v.k == V_INT ? (double)v.u.i : (double)v.u.b;
}

/* ---- string buffers ---------------------------------------------------- */

int sb_put(rx *x, sbuf *b, const char *s, size_t n) {
    if (n == 0) return 0;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n + 1) {
            if (nc > SIZE_MAX / 4) return x ? rx_fail(x, "string too long") : -1;
            nc *= 2;
        }
        if (x && b->n + n > x->max_output)
            return rx_fail(x, "output exceeds %zu bytes (limit)", x->max_output);
        if (x && rx_charge(x, nc - b->cap) < 0) return -1;
        char *np = rf_realloc(b->p, nc);
        if (!np) return x ? rx_oom(x) : -1;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

int sb_putc(rx *x, sbuf *b, char c) { return sb_put(x, b, &c, 1); }

int sb_printf(rx *x, sbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n >= sizeof tmp) n = (int)sizeof tmp - 1;
    return sb_put(x, b, tmp, (size_t)n);
}

void sb_free(sbuf *b) {
    rf_free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- str() and repr() -------------------------------------------------- */

/* Python's repr(float): the shortest digits that read back to the same
 * double, in fixed notation for exponents -4 <= e < 16, else scientific. */
void fmt_float(double f, char buf[40]) {
    if (isnan(f)) { strcpy(buf, "nan"); return; }
    if (isinf(f)) { strcpy(buf, f < 0 ? "-inf" : "inf"); return; }
    if (f == 0) { strcpy(buf, signbit(f) ? "-0.0" : "0.0"); return; }
    char tmp[40];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = [-]d[.ddd]e[+-]xx */
    char digits[24];
    int nd = 0, exp10 = 0;
    const char *s = tmp;
    bool neg = false;
    if (*s == '-') { neg = true; s++; }
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits[nd++] = *s;
    if (*s == 'e') exp10 = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
    int decpt = exp10 + 1;
    char *o = buf;
    if (neg) *o++ = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -decpt; i++) *o++ = '0';
            memcpy(o, digits, (size_t)nd);
            o += nd;
        } else if (decpt >= nd) {
            memcpy(o, digits, (size_t)nd);
            o += nd;
            for (int i = nd; i < decpt; i++) *o++ = '0';
            *o++ = '.';
            *o++ = '0';
        } else {
            memcpy(o, digits, (size_t)decpt);
            o += decpt;
            *o++ = '.';
            memcpy(o, digits + decpt, (size_t)(nd - decpt));
            o += nd - decpt;
        }
        *o = '\0';
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)(nd - 1));
            o += nd - 1;
        }
        snprintf(o, (size_t)(buf + 40 - o), "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
}

static int repr_str(rx *x, sbuf *b, const tstr *s) {
    bool has_sq = memchr(s->s, '\'', s->len) != NULL, has_dq = memchr(s->s, '"', s->len) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    if (sb_putc(x, b, q) < 0) return -1;
    size_t i = 0, run = 0;
    while (i < s->len) {
        unsigned char c = (unsigned char)s->s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != (unsigned char)q) { i++; run++; continue; }
        if (run && sb_put(x, b, s->s + i - run, run) < 0) return -1;
        run = 0;
        size_t st = i;
        uint32_t cp = u8_next(s->s, s->len, &i);
        char esc[16];
        if (cp == (uint32_t)q || cp == '\\') { esc[0] = '\\'; esc[1] = (char)cp; esc[2] = 0; }
        else if (cp == '\n') strcpy(esc, "\\n");
        else if (cp == '\r') strcpy(esc, "\\r");
        else if (cp == '\t') strcpy(esc, "\\t");
        else if (u_isprintable(cp)) {
            if (sb_put(x, b, s->s + st, i - st) < 0) return -1;
            continue;
        } else if (cp <= 0xff) snprintf(esc, sizeof esc, "\\x%02x", cp);
        else if (cp <= 0xffff) snprintf(esc, sizeof esc, "\\u%04x", cp);
        else snprintf(esc, sizeof esc, "\\U%08x", cp);
        if (sb_put(x, b, esc, strlen(esc)) < 0) return -1;
    }
    if (run && sb_put(x, b, s->s + i - run, run) < 0) return -1;
    return sb_putc(x, b, q);
}

static const char *func_repr[] = {
    "<class 'range'>", "<class 'dict'>", "<class 'jinja2.utils.Namespace'>",
    "<function raise_exception>", "<function strftime_now>", "<class 'jinja2.utils.Cycler'>",
    "<class 'jinja2.utils.Joiner'>", "<function generate_lorem_ipsum>",
};

static int write_items(rx *x, sbuf *b, const tlist *l, int depth) {
    for (uint32_t i = 0; i < l->n; i++) {
        if (i && sb_put(x, b, ", ", 2) < 0) return -1;
        if (v_write_repr(x, b, l->v[i], depth + 1) < 0) return -1;
    }
    return 0;
}

static int write_dict(rx *x, sbuf *b, const tdict *d, int depth) {
    if (sb_putc(x, b, '{') < 0) return -1;
    for (uint32_t i = 0; i < d->n; i++) {
        if (i && sb_put(x, b, ", ", 2) < 0) return -1;
        if (v_write_repr(x, b, d->e[i].k, depth + 1) < 0 || sb_put(x, b, ": ", 2) < 0 ||
            v_write_repr(x, b, d->e[i].v, depth + 1) < 0)
            return -1;
    }
    return sb_putc(x, b, '}');
}

int v_write_repr(rx *x, sbuf *b, tv v, int depth) {
    if (depth > (int)x->max_depth) return rx_fail(x, "value nested too deeply to print");
    char num[40];
    switch ((vkind)v.k) {
    case V_UNDEF: return sb_put(x, b, "Undefined", 9);
    case V_NONE: return sb_put(x, b, "None", 4);
    case V_BOOL: return v.u.b ? sb_put(x, b, "True", 4) : sb_put(x, b, "False", 5);
    case V_INT: return sb_printf(x, b, "%" PRId64, v.u.i);
    case V_FLOAT: fmt_float(v.u.f, num); return sb_put(x, b, num, strlen(num));
    case V_STR:
        if (v.fl & VF_SAFE) {
            if (sb_put(x, b, "Markup(", 7) < 0 || repr_str(x, b, v.u.s) < 0) return -1;
            return sb_putc(x, b, ')');
        }
        return repr_str(x, b, v.u.s);
    case V_LIST: {
        const tlist *l = v.u.l;
        static const char *pre[] = {"[", "(", "dict_items([", "dict_keys([", "dict_values(["};
        static const char *post[] = {"]", ")", "])", "])", "])"};
        if (l->h.flavor == FL_GEN) return sb_put(x, b, "<generator object>", 18);
        if (l->h.flavor == FL_REVITER) return sb_put(x, b, "<list_reverseiterator object>", 29);
        int f = l->h.flavor <= FL_VALUES ? l->h.flavor : 0;
        if (sb_put(x, b, pre[f], strlen(pre[f])) < 0 || write_items(x, b, l, depth) < 0) return -1;
        if (f == FL_TUPLE && l->n == 1 && sb_putc(x, b, ',') < 0) return -1;
        return sb_put(x, b, post[f], strlen(post[f]));
    }
    case V_DICT: return write_dict(x, b, v.u.d, depth);
    case V_FUNC: {
        int i = (int)v.u.i;
        const char *s = i >= 0 && (size_t)i < RF_ARRAY_LEN(func_repr) ? func_repr[i] : "<function>";
        return sb_put(x, b, s, strlen(s));
    }
    case V_METHOD: {
        const tmethod *m = (const tmethod *)v.u.o;
        return sb_printf(x, b, "<built-in method %s of %s object>", method_name(m->mid),
                         v_type_name(m->self));
    }
    case V_MACRO: {
        const tmacro *m = (const tmacro *)v.u.o;
        if (m->def->kind == N_CALLBLOCK) return sb_put(x, b, "<Macro anonymous>", 17);
        return sb_printf(x, b, "<Macro '%s'>", m->name);
    }
    case V_NS:
        if (sb_put(x, b, "<Namespace ", 11) < 0 ||
            write_dict(x, b, ((tns *)v.u.o)->attrs, depth) < 0)
            return -1;
        return sb_putc(x, b, '>');
    case V_LOOP: {
        const tloop *lp = (const tloop *)v.u.o;
        return sb_printf(x, b, "<LoopContext %" PRId64 "/%u>", lp->i0 + 1,
                         lp->items ? lp->items->n : 0);
    }
    case V_CYCLER: return sb_put(x, b, "<jinja2.utils.Cycler object>", 28);
    case V_JOINER: return sb_put(x, b, "<jinja2.utils.Joiner object>", 28);
    default: return sb_put(x, b, "<object>", 8);
    }
}

int v_write_str(rx *x, sbuf *b, tv v, int depth) {
    switch ((vkind)v.k) {
    case V_UNDEF: return 0;
    case V_STR: return sb_put(x, b, v.u.s->s, v.u.s->len);
    case V_JOINER: return 0;
    default: return v_write_repr(x, b, v, depth);
    }
}

int v_to_str(rx *x, tv v, tv *out) {
    if (v.k == V_STR) { *out = v_ref(v); return 0; }
    sbuf b = {0};
    if (v_write_str(x, &b, v, 0) < 0) { sb_free(&b); return -1; }
    return v_str_sb(x, &b, out);
}

/* ---- equality, ordering ------------------------------------------------ */

/* Exact int/float comparison (Python compares mathematically). */
static int num_cmp(tv a, tv b) {
    if (a.k != V_FLOAT && b.k != V_FLOAT) {
        int64_t p = a.k == V_INT ? a.u.i : a.u.b, q = b.k == V_INT ? b.u.i : b.u.b;
        return p < q ? -1 : p > q ? 1 : 0;
    }
    double p = v_num(a), q = v_num(b);
    if (isnan(p) || isnan(q)) return 2;
    if (a.k != V_FLOAT || b.k != V_FLOAT) { /* int vs float: avoid rounding the int */
        tv iv = a.k == V_FLOAT ? b : a;
        double fv = a.k == V_FLOAT ? p : q;
        int64_t i = iv.k == V_INT ? iv.u.i : iv.u.b;
        int sgn;
        if (fv >= 9.3e18) sgn = -1;
        else if (fv <= -9.3e18) sgn = 1;
        else {
            double fl = floor(fv);
            int64_t fi = (int64_t)fl;
            if (i < fi) sgn = -1;
            else if (i > fi) sgn = 1;
            else sgn = fl == fv ? 0 : -1;
        }
        return a.k == V_FLOAT ? -sgn : sgn;
    }
    return p < q ? -1 : p > q ? 1 : 0;
}

int v_eq(rx *x, tv a, tv b, bool *res, int depth) {
    if (depth > (int)x->max_depth) return rx_fail(x, "value nested too deeply to compare");
    *res = false;
    if (v_is_num(a) && v_is_num(b)) { *res = num_cmp(a, b) == 0; return 0; }
    if (a.k != b.k) return 0;
    switch ((vkind)a.k) {
    case V_UNDEF: case V_NONE: *res = true; return 0;
    case V_STR:
        *res = a.u.s->len == b.u.s->len && memcmp(a.u.s->s, b.u.s->s, a.u.s->len) == 0;
        return 0;
    case V_LIST: {
        const tlist *p = a.u.l, *q = b.u.l;
        if (p == q) { *res = true; return 0; }
        if (p->h.flavor != q->h.flavor || p->n != q->n || p->h.flavor >= FL_GEN) return 0;
        if (rx_work(x, p->n) < 0) return -1;
        for (uint32_t i = 0; i < p->n; i++) {
            bool e;
            if (v_eq(x, p->v[i], q->v[i], &e, depth + 1) < 0) return -1;
            if (!e) return 0;
        }
        *res = true;
        return 0;
    }
    case V_DICT: {
        const tdict *p = a.u.d, *q = b.u.d;
        if (p == q) { *res = true; return 0; }
        if (p->n != q->n) return 0;
        for (uint32_t i = 0; i < p->n; i++) {
            tv other;
            int f = dict_get(x, q, p->e[i].k, &other);
            if (f < 0) return -1;
            if (!f) return 0;
            bool e;
            if (v_eq(x, p->e[i].v, other, &e, depth + 1) < 0) return -1;
            if (!e) return 0;
        }
        *res = true;
        return 0;
    }
    case V_FUNC: *res = a.u.i == b.u.i; return 0;
    default: *res = a.u.o == b.u.o; return 0;
    }
}

static int undef_error(rx *x, tv u);

int v_cmp(rx *x, tv a, tv b, int *res, int depth) {
    if (depth > (int)x->max_depth) return rx_fail(x, "value nested too deeply to compare");
    if (a.k == V_UNDEF) return undef_error(x, a);
    if (b.k == V_UNDEF) return undef_error(x, b);
    if (v_is_num(a) && v_is_num(b)) { *res = num_cmp(a, b); return 0; }
    if (a.k == V_STR && b.k == V_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int c = memcmp(a.u.s->s, b.u.s->s, n);
        *res = c < 0 ? -1 : c > 0 ? 1 : a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len;
        return 0;
    }
    if (a.k == V_LIST && b.k == V_LIST && a.u.l->h.flavor == b.u.l->h.flavor &&
        a.u.l->h.flavor <= FL_TUPLE) {
        const tlist *p = a.u.l, *q = b.u.l;
        uint32_t n = p->n < q->n ? p->n : q->n;
        for (uint32_t i = 0; i < n; i++) {
            bool e;
            if (v_eq(x, p->v[i], q->v[i], &e, depth + 1) < 0) return -1;
            if (!e) return v_cmp(x, p->v[i], q->v[i], res, depth + 1);
        }
        *res = p->n < q->n ? -1 : p->n > q->n;
        return 0;
    }
    return rx_fail(x, "'<' not supported between instances of '%s' and '%s'", v_type_name(a),
                   v_type_name(b));
}

/* The error jinja2's Undefined raises when used: its message depends on how
 * it arose (a missing name, a missing attribute or item, a hint). */
static int undef_error(rx *x, tv u) {
    /* jinja2 names the object by its type: "'dict object' has no attribute 'x'" */
    static const char *const kinds[V_KIND_COUNT] = {
        [V_UNDEF] = "Undefined", [V_NONE] = "None", [V_BOOL] = "bool object",
        [V_INT] = "int object", [V_FLOAT] = "float object", [V_STR] = "str object",
        [V_LIST] = "list object", [V_DICT] = "dict object", [V_FUNC] = "function object",
        [V_METHOD] = "builtin_function_or_method object", [V_MACRO] = "Macro object",
        [V_NS] = "Namespace object", [V_LOOP] = "LoopContext object", [V_CYCLER] = "Cycler object",
        [V_JOINER] = "Joiner object", [V_SCOPE] = "object",
    };
    const char *nm = u.u.name ? u.u.name : "";
    const char *kind = u.ut < V_KIND_COUNT && kinds[u.ut] ? kinds[u.ut] : "object";
    switch (u.uk) {
    case U_ATTR: return rx_fail(x, "'%s' has no attribute '%s'", kind, nm);
    case U_ITEM: return rx_fail(x, "'%s' has no element '%s'", kind, nm);
    case U_HINT: return rx_fail(x, "%s", u.u.name ? u.u.name : "undefined value");
    case U_UNSAFE: return rx_fail(x, "access to attribute '%s' of '%s' is unsafe (SecurityError)", nm, kind);
    default: return rx_fail(x, "'%s' is undefined", nm);
    }
}

int v_undef_error(rx *x, tv u);
int v_undef_error(rx *x, tv u) { return undef_error(x, u); }

/* ---- membership, iteration, length ------------------------------------- */

int v_contains(rx *x, tv b, tv a, bool *res) {
    *res = false;
    switch ((vkind)b.k) {
    case V_STR:
        if (a.k == V_UNDEF) return undef_error(x, a);
        if (a.k != V_STR)
            return rx_fail(x, "'in <string>' requires string as left operand, not %s",
                           v_type_name(a));
        if (a.u.s->len == 0) { *res = true; return 0; }
        *res = a.u.s->len <= b.u.s->len &&
               memmem(b.u.s->s, b.u.s->len, a.u.s->s, a.u.s->len) != NULL;
        return 0;
    case V_LIST:
        if (b.u.l->h.flavor >= FL_GEN) {
            if (b.u.l->h.spare & LIST_RAISES) {
                tlist *dummy;
                return v_iter_list(x, b, &dummy); /* raises its error */
            }
            if (b.u.l->h.spare & LIST_CONSUMED) return 0;
            b.u.l->h.spare |= LIST_CONSUMED;
        }
        if (rx_work(x, b.u.l->n) < 0) return -1;
        for (uint32_t i = 0; i < b.u.l->n; i++) {
            bool e;
            if (v_eq(x, b.u.l->v[i], a, &e, 0) < 0) return -1;
            if (e) { *res = true; return 0; }
        }
        return 0;
    case V_DICT: {
        tv dummy;
        int f = dict_get(x, b.u.d, a, &dummy);
        if (f < 0) return -1;
        *res = f == 1;
        return 0;
    }
    case V_UNDEF: return 0;
    default:
        return rx_fail(x, "argument of type '%s' is not iterable", v_type_name(b));
    }
}

int v_iter_list(rx *x, tv v, tlist **out) {
    switch ((vkind)v.k) {
    case V_LIST:
        if (v.u.l->h.spare & LIST_RAISES) { /* its error, now */
            if (x->failed) return -1;
            x->failed = true;
            rf_error_set(x->err, RF_E_FORMAT, "%s", v.u.l->v[0].u.s->s);
            return -1;
        }
        if (v.u.l->h.flavor >= FL_GEN) { /* one-shot iterators */
            if (v.u.l->h.spare & LIST_CONSUMED) {
                tlist *l = list_new(x, 0, FL_LIST);
                if (!l) return -1;
                *out = l;
                return 0;
            }
            v.u.l->h.spare |= LIST_CONSUMED;
        }
        v_incref(v);
        *out = v.u.l;
        return 0;
    case V_DICT: {
        tlist *l = list_new(x, v.u.d->n, FL_LIST);
        if (!l) return -1;
        for (uint32_t i = 0; i < v.u.d->n; i++) l->v[l->n++] = v_ref(v.u.d->e[i].k);
        *out = l;
        return 0;
    }
    case V_STR: {
        const tstr *s = v.u.s;
        tlist *l = list_new(x, 0, FL_LIST);
        if (!l) return -1;
        size_t i = 0;
        while (i < s->len) {
            size_t st = i;
            u8_next(s->s, s->len, &i);
            tv c;
            if (v_str(x, s->s + st, i - st, &c) < 0 || list_push(x, l, c) < 0) {
                v_decref(v_obj(V_LIST, l));
                return -1;
            }
        }
        *out = l;
        return 0;
    }
    case V_UNDEF: {
        tlist *l = list_new(x, 0, FL_LIST);
        if (!l) return -1;
        *out = l;
        return 0;
    }
    case V_LOOP: {
        tloop *lp = (tloop *)v.u.o;
        if (!lp->items) break;
        v_incref(v_obj(V_LIST, lp->items));
        *out = lp->items;
        return 0;
    }
    default: break;
    }
    return rx_fail(x, "'%s' object is not iterable", v_type_name(v));
}

int v_len(rx *x, tv v, int64_t *out) {
    switch ((vkind)v.k) {
    case V_STR: *out = v.u.s->ascii ? (int64_t)v.u.s->len : (int64_t)u8_count(v.u.s->s, v.u.s->len); return 0;
    case V_LIST:
        if (v.u.l->h.flavor >= FL_GEN) break;
        *out = v.u.l->n;
        return 0;
    case V_DICT: *out = v.u.d->n; return 0;
    case V_UNDEF: *out = 0; return 0;
    case V_NS: *out = 0; break;
    case V_LOOP: *out = ((tloop *)v.u.o)->items ? ((tloop *)v.u.o)->items->n : 0; return 0;
    default: break;
    }
    return rx_fail(x, "object of type '%s' has no len()", v_type_name(v));
}

/* ---- sorting ----------------------------------------------------------- */

static int msort(rx *x, tv *v, tv *tmp, uint32_t n, v_cmp_fn cmp, void *arg) {
    if (n < 2) return 0;
    uint32_t h = n / 2;
    if (msort(x, v, tmp, h, cmp, arg) < 0 || msort(x, v + h, tmp, n - h, cmp, arg) < 0) return -1;
    uint32_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int r;
        if (cmp(x, v[j], v[i], &r, arg) < 0) return -1;
        /* take from the right only when strictly smaller: stable */
        if (r == -1) tmp[k++] = v[j++];
        else tmp[k++] = v[i++];
    }
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, (size_t)n * sizeof(tv));
    return 0;
}

int v_sort(rx *x, tv *v, uint32_t n, v_cmp_fn cmp, void *arg) {
    if (n < 2) return 0;
    if (rx_work(x, (uint64_t)n * 32) < 0) return -1;
    tv *tmp = rx_alloc(x, (size_t)n * sizeof(tv));
    if (!tmp) return -1;
    int rc = msort(x, v, tmp, n, cmp, arg);
    rf_free(tmp);
    return rc;
}
