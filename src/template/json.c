/*
 * json.c - JSON in and out of template values. In: a jansson value becomes
 * a template value (objects keep their key order, as Python's json.loads
 * does). Out: Python's json.dumps, which is what Hugging Face's tojson
 * filter calls: floats as repr(), non-string keys converted (True ->
 * "true", 1 -> "1"), ensure_ascii, indent (a count or a string), the two
 * separators and sort_keys.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "template/tmpl-impl.h"

int v_from_json(rx *x, const json_t *j, tv *out, int depth) {
    if (depth > (int)x->max_depth) return rx_fail(x, "context JSON nested too deeply");
    switch (json_typeof(j)) {
    case JSON_NULL: *out = v_none(); return 0;
    case JSON_TRUE: *out = v_bool(true); return 0;
    case JSON_FALSE: *out = v_bool(false); return 0;
    case JSON_INTEGER: *out = v_int((int64_t)json_integer_value(j)); return 0;
    case JSON_REAL: *out = v_float(json_real_value(j)); return 0;
    case JSON_STRING: return v_str(x, json_string_value(j), json_string_length(j), out);
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        if (n > (1u << 30)) return rx_fail(x, "context array too long");
        tlist *l = list_new(x, (uint32_t)n, FL_LIST);
        if (!l) return -1;
        for (size_t i = 0; i < n; i++) {
            tv e;
            if (v_from_json(x, json_array_get(j, i), &e, depth + 1) < 0) {
                v_decref(v_obj(V_LIST, l));
                return -1;
            }
            l->v[l->n++] = e;
        }
        *out = v_obj(V_LIST, l);
        return 0;
    }
    case JSON_OBJECT: {
        tdict *d = dict_new(x);
        if (!d) return -1;
        const char *key;
        json_t *val;
        /* jansson iterates objects in insertion order */
        json_object_foreach((json_t *)j, key, val) {
            tv k, v;
            if (v_str(x, key, strlen(key), &k) < 0) goto fail;
            if (v_from_json(x, val, &v, depth + 1) < 0) { v_decref(k); goto fail; }
            if (dict_set(x, d, k, v) < 0) goto fail;
        }
        *out = v_obj(V_DICT, d);
        return 0;
    fail:
        v_decref(v_obj(V_DICT, d));
        return -1;
    }
    }
    return rx_fail(x, "unknown JSON value type");
}

/* ---- json.dumps -------------------------------------------------------- */

static int put_json_str(rx *x, sbuf *b, const char *s, size_t n, bool ascii) {
    if (sb_putc(x, b, '"') < 0) return -1;
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && (c < 0x80 || !ascii)) { i++; run++; continue; }
        if (run && sb_put(x, b, s + i - run, run) < 0) return -1;
        run = 0;
        char esc[16];
        if (c < 0x80) {
            i++;
            switch (c) {
            case '"': strcpy(esc, "\\\""); break;
            case '\\': strcpy(esc, "\\\\"); break;
            case '\n': strcpy(esc, "\\n"); break;
            case '\r': strcpy(esc, "\\r"); break;
            case '\t': strcpy(esc, "\\t"); break;
            case '\b': strcpy(esc, "\\b"); break;
            case '\f': strcpy(esc, "\\f"); break;
            default: snprintf(esc, sizeof esc, "\\u%04x", c); break;
            }
        } else {
            uint32_t cp = u8_next(s, n, &i);
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", cp);
            }
        }
        if (sb_put(x, b, esc, strlen(esc)) < 0) return -1;
    }
    if (run && sb_put(x, b, s + i - run, run) < 0) return -1;
    return sb_putc(x, b, '"');
}

static int put_float(rx *x, sbuf *b, double f) {
    if (isnan(f)) return sb_put(x, b, "NaN", 3);
    if (isinf(f)) return f < 0 ? sb_put(x, b, "-Infinity", 9) : sb_put(x, b, "Infinity", 8);
    char num[40];
    fmt_float(f, num);
    return sb_put(x, b, num, strlen(num));
}

static int newline_indent(rx *x, sbuf *b, const json_opts *o, int level) {
    if (!o->has_indent) return 0;
    if (sb_putc(x, b, '\n') < 0) return -1;
    for (int i = 0; i < level; i++)
        if (sb_put(x, b, o->indent, o->indent_len) < 0) return -1;
    return 0;
}

/* A dict key as json.dumps writes it: str as is; True/False/None/int/float
 * converted; anything else is a TypeError. */
static int put_key(rx *x, sbuf *b, tv k, const json_opts *o) {
    char num[40];
    switch ((vkind)k.k) {
    case V_STR: return put_json_str(x, b, k.u.s->s, k.u.s->len, o->ensure_ascii);
    case V_BOOL: return sb_put(x, b, k.u.b ? "\"true\"" : "\"false\"", k.u.b ? 6 : 7);
    case V_NONE: return sb_put(x, b, "\"null\"", 6);
    case V_INT: return sb_printf(x, b, "\"%" PRId64 "\"", k.u.i);
    case V_FLOAT:
        if (isnan(k.u.f)) strcpy(num, "NaN");
        else if (isinf(k.u.f)) strcpy(num, k.u.f < 0 ? "-Infinity" : "Infinity");
        else fmt_float(k.u.f, num);
        return sb_printf(x, b, "\"%s\"", num);
    default:
        return rx_fail(x, "keys must be str, int, float, bool or None, not %s", v_type_name(k));
    }
}

static int key_cmp(rx *x, tv a, tv b, int *res, void *arg) {
    (void)arg;
    return v_cmp(x, ((const dent *)a.u.o)->k, ((const dent *)b.u.o)->k, res, 0);
}

int v_write_json(rx *x, sbuf *b, tv v, const json_opts *o, int level) {
    if (level > (int)x->max_depth) return rx_fail(x, "value nested too deeply for tojson");
    switch ((vkind)v.k) {
    case V_NONE: return sb_put(x, b, "null", 4);
    case V_BOOL: return v.u.b ? sb_put(x, b, "true", 4) : sb_put(x, b, "false", 5);
    case V_INT: return sb_printf(x, b, "%" PRId64, v.u.i);
    case V_FLOAT: return put_float(x, b, v.u.f);
    case V_STR: return put_json_str(x, b, v.u.s->s, v.u.s->len, o->ensure_ascii);
    case V_LIST: {
        const tlist *l = v.u.l;
        if (l->h.flavor > FL_TUPLE)
            return rx_fail(x, "Object of type %s is not JSON serializable", v_type_name(v));
        if (l->n == 0) return sb_put(x, b, "[]", 2);
        if (sb_putc(x, b, '[') < 0) return -1;
        for (uint32_t i = 0; i < l->n; i++) {
            if (i && sb_put(x, b, o->item_sep, o->item_sep_len) < 0) return -1;
            if (newline_indent(x, b, o, level + 1) < 0) return -1;
            if (v_write_json(x, b, l->v[i], o, level + 1) < 0) return -1;
        }
        if (newline_indent(x, b, o, level) < 0) return -1;
        return sb_putc(x, b, ']');
    }
    case V_DICT: {
        const tdict *d = v.u.d;
        if (d->n == 0) return sb_put(x, b, "{}", 2);
        /* order: insertion, or sorted by key (through pointers to entries) */
        tv *order = rx_alloc(x, (size_t)d->n * sizeof(tv));
        if (!order) return -1;
        for (uint32_t i = 0; i < d->n; i++) order[i].u.o = (obj *)(void *)&d->e[i];
        int rc = 0;
        if (o->sort_keys) rc = v_sort(x, order, d->n, key_cmp, NULL);
        if (rc == 0) rc = sb_putc(x, b, '{');
        for (uint32_t i = 0; rc == 0 && i < d->n; i++) {
            const dent *e = (const dent *)(void *)order[i].u.o;
            if (i) rc = sb_put(x, b, o->item_sep, o->item_sep_len);
            if (rc == 0) rc = newline_indent(x, b, o, level + 1);
            if (rc == 0) rc = put_key(x, b, e->k, o);
            if (rc == 0) rc = sb_put(x, b, o->key_sep, o->key_sep_len);
            if (rc == 0) rc = v_write_json(x, b, e->v, o, level + 1);
        }
        if (rc == 0) rc = newline_indent(x, b, o, level);
        if (rc == 0) rc = sb_putc(x, b, '}');
        rf_free(order);
        return rc;
    }
    default:
        return rx_fail(x, "Object of type %s is not JSON serializable", v_type_name(v));
    }
}
