/*
 * filters.c - jinja2's built-in filters and tests (plus Hugging Face's
 * tojson), each a row of a table: name, function, and the Python parameter
 * list it binds its arguments against. Semantics follow jinja2 3.1 with
 * autoescape off: |string keeps a safe (Markup) string safe, |join and
 * |replace return plain strings, map/select/reject/selectattr/rejectattr/
 * unique/items/batch/slice return one-shot generators and |reverse a reverse
 * iterator, as in Python. Filters jinja2 has but this engine does not
 * implement (groupby, pprint, random, urlize, urlencode, wordwrap, xmlattr)
 * are known names that fail when run.
 */
#define _GNU_SOURCE /* memmem */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "template/tmpl-impl.h"

int v_undef_error(rx *x, tv u);

typedef int (*filt_fn)(rx *x, tv v, const tv *p, const targs *a, tv *out);
typedef struct filter_def {
    const char *name;
    filt_fn fn;        /* NULL: known to jinja2, not implemented here */
    const char *spec;  /* parameters after the value; NULL: the function binds */
} filter_def;

/* ---- helpers ----------------------------------------------------------- */

static int new_gen(rx *x, tlist *l, int flavor, tv *out) {
    l->h.flavor = (uint8_t)flavor;
    *out = v_obj(V_LIST, l);
    return 0;
}

static int to_list(rx *x, tv v, tlist **out) {
    if (v_iter_list(x, v, out) < 0) return -1;
    if (rx_work(x, (*out)->n) < 0) { v_decref(v_obj(V_LIST, *out)); return -1; }
    return 0;
}

static void drop_list(tlist *l) { if (l) v_decref(v_obj(V_LIST, l)); }

static int lower_if_str(rx *x, tv v, tv *out) {
    if (v.k == V_STR) return s_case(x, v, 1, out);
    *out = v_ref(v);
    return 0;
}

/* make_attrgetter: attribute "a.b.0" looked up with getitem rules; with a
 * default (not None) replacing undefined after each step; lowercased when
 * icase. Returns a new reference. */
static int attr_get(rx *x, tv item, tv attr, tv dflt, bool icase, tv *out) {
    tv cur = v_ref(item);
    if (attr.k == V_STR) {
        const char *s = attr.u.s->s;
        size_t n = attr.u.s->len, st = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i < n && s[i] != '.') continue;
            tv key;
            bool digits = i > st;
            for (size_t k = st; k < i; k++)
                if (s[k] < '0' || s[k] > '9') digits = false;
            if (digits && i - st < 18) key = v_int(strtoll(s + st, NULL, 10));
            else if (v_str(x, s + st, i - st, &key) < 0) { v_decref(cur); return -1; }
            tv next;
            int rc = rx_getitem(x, cur, key, &next);
            v_decref(key);
            v_decref(cur);
            if (rc < 0) return -1;
            cur = next;
            if (dflt.k != V_NONE && dflt.k != V_UNDEF && cur.k == V_UNDEF) cur = v_ref(dflt);
            st = i + 1;
        }
    } else if (attr.k != V_NONE) {
        tv next;
        int rc = rx_getitem(x, cur, attr, &next);
        v_decref(cur);
        if (rc < 0) return -1;
        cur = next;
        if (dflt.k != V_NONE && dflt.k != V_UNDEF && cur.k == V_UNDEF) cur = v_ref(dflt);
    }
    if (icase) {
        tv l;
        int rc = lower_if_str(x, cur, &l);
        v_decref(cur);
        if (rc < 0) return -1;
        cur = l;
    }
    *out = cur;
    return 0;
}

/* make_multi_attrgetter: a list key, one element per comma-separated attribute. */
static int multi_key(rx *x, tv item, tv attr, bool icase, tv *out) {
    tlist *k = list_new(x, 0, FL_LIST);
    if (!k) return -1;
    int rc = 0;
    if (attr.k == V_STR) {
        const char *s = attr.u.s->s;
        size_t n = attr.u.s->len, st = 0;
        for (size_t i = 0; i <= n && rc == 0; i++) {
            if (i < n && s[i] != ',') continue;
            tv part, v;
            rc = v_str(x, s + st, i - st, &part);
            if (rc == 0) {
                rc = attr_get(x, item, part, v_none(), icase, &v);
                v_decref(part);
                if (rc == 0) rc = list_push(x, k, v);
            }
            st = i + 1;
        }
    } else {
        tv v;
        rc = attr_get(x, item, attr, v_none(), icase, &v);
        if (rc == 0) rc = list_push(x, k, v);
    }
    if (rc < 0) { drop_list(k); return -1; }
    *out = v_obj(V_LIST, k);
    return 0;
}

/* (key, item) pairs sorted by key; reverse keeps equal keys in order. */
static int key_cmp(rx *x, tv a, tv b, int *res, void *arg) {
    bool rev = *(bool *)arg;
    tv ka = a.u.l->v[0], kb = b.u.l->v[0];
    return rev ? v_cmp(x, kb, ka, res, 0) : v_cmp(x, ka, kb, res, 0);
}

static int sort_pairs(rx *x, tlist *pairs, bool reverse, tlist **out) {
    if (v_sort(x, pairs->v, pairs->n, key_cmp, &reverse) < 0) return -1;
    tlist *r = list_new(x, pairs->n, FL_LIST);
    if (!r) return -1;
    for (uint32_t i = 0; i < pairs->n; i++) r->v[r->n++] = v_ref(pairs->v[i].u.l->v[1]);
    *out = r;
    return 0;
}

static int pair(rx *x, tv k, tv v, tv *out) {
    tlist *p = list_new(x, 2, FL_TUPLE);
    if (!p) { v_decref(k); v_decref(v); return -1; }
    p->v[0] = k;
    p->v[1] = v;
    p->n = 2;
    *out = v_obj(V_LIST, p);
    return 0;
}

static int want_int(rx *x, tv v, const char *what, int64_t *out) {
    if (v.k == V_INT) { *out = v.u.i; return 0; }
    if (v.k == V_BOOL) { *out = v.u.b; return 0; }
    if (v.k == V_FLOAT && v.u.f == floor(v.u.f) && fabs(v.u.f) < 9e18) { *out = (int64_t)v.u.f; return 0; }
    return rx_fail(x, "%s must be an integer, not %s", what, v_type_name(v));
}

/* ---- string filters ---------------------------------------------------- */

static int f_case(rx *x, tv v, int mode, tv *out) {
    tv s;
    if (v_to_str(x, v, &s) < 0) return -1;
    int rc = s_case(x, s, mode, out);
    v_decref(s);
    return rc;
}

static int f_upper(rx *x, tv v, const tv *p, const targs *a, tv *out) { return f_case(x, v, 0, out); }
static int f_lower(rx *x, tv v, const tv *p, const targs *a, tv *out) { return f_case(x, v, 1, out); }
static int f_capitalize(rx *x, tv v, const tv *p, const targs *a, tv *out) { return f_case(x, v, 3, out); }

/* jinja2's title: the text split on runs of [-\s({\[<] (kept), each piece
 * as piece[0].upper() + piece[1:].lower() (Python's full mappings). */
static bool title_sep(uint32_t cp) {
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || u_isspace(cp);
}

static int f_title(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tv s;
    if (v_to_str(x, v, &s) < 0) return -1;
    const tstr *t = s.u.s;
    sbuf b = {0};
    int rc = sb_put(x, &b, "", 0);
    size_t i = 0;
    while (i < t->len && rc == 0) {
        size_t st = i, j = i;
        bool sep = title_sep(u8_next(t->s, t->len, &j));
        while (i < t->len) { /* the piece: a run of one kind */
            size_t k = i;
            if (title_sep(u8_next(t->s, t->len, &k)) != sep) break;
            i = k;
        }
        tv first, rest, up, low;
        if (v_str(x, t->s + st, j - st, &first) < 0) { rc = -1; break; }
        if (v_str(x, t->s + j, i - j, &rest) < 0) { v_decref(first); rc = -1; break; }
        rc = s_case(x, first, 0, &up);
        if (rc == 0) {
            rc = s_case(x, rest, 1, &low);
            if (rc == 0) {
                rc = sb_put(x, &b, up.u.s->s, up.u.s->len);
                if (rc == 0) rc = sb_put(x, &b, low.u.s->s, low.u.s->len);
                v_decref(low);
            }
            v_decref(up);
        }
        v_decref(first);
        v_decref(rest);
    }
    uint8_t fl = s.fl;
    v_decref(s);
    if (rc < 0 || v_str_sb(x, &b, out) < 0) { sb_free(&b); return -1; }
    out->fl = fl;
    return 0;
}

static int f_trim(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tv s;
    if (v_to_str(x, v, &s) < 0) return -1;
    int rc = s_strip(x, s, p[0], 3, out);
    v_decref(s);
    return rc;
}

static int f_string(rx *x, tv v, const tv *p, const targs *a, tv *out) { return v_to_str(x, v, out); }

static int f_safe(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (v_to_str(x, v, out) < 0) return -1;
    out->fl |= VF_SAFE;
    return 0;
}

static int f_escape(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (v.k == V_STR && (v.fl & VF_SAFE)) { *out = v_ref(v); return 0; }
    tv s;
    if (v_to_str(x, v, &s) < 0) return -1;
    int rc = s_escape(x, s, out);
    v_decref(s);
    return rc;
}

static int f_forceescape(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tv s;
    if (v_to_str(x, v, &s) < 0) return -1;
    s.fl = 0;
    int rc = s_escape(x, s, out);
    v_decref(s);
    return rc;
}

static int f_replace(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tv s, o, n;
    int64_t count = -1;
    if (p[2].k != V_NONE && want_int(x, p[2], "count", &count) < 0) return -1;
    if (v_to_str(x, v, &s) < 0) return -1;
    if (v_to_str(x, p[0], &o) < 0) { v_decref(s); return -1; }
    if (v_to_str(x, p[1], &n) < 0) { v_decref(s); v_decref(o); return -1; }
    s.fl = o.fl = n.fl = 0;
    int rc = s_replace(x, s, o, n, count, out);
    v_decref(s);
    v_decref(o);
    v_decref(n);
    if (rc == 0) out->fl = 0;
    return rc;
}

/* Python str.splitlines() boundaries. */
static size_t line_break(const char *s, size_t n, size_t i, size_t *next) {
    size_t j = i;
    uint32_t cp = u8_next(s, n, &j);
    if (cp == '\r' && j < n && s[j] == '\n') { *next = j + 1; return 1; }
    if (cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d ||
        cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029) {
        *next = j;
        return 1;
    }
    *next = j;
    return 0;
}

static int f_indent(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (v.k == V_UNDEF) return v_undef_error(x, v);
    if (v.k != V_STR)
        return rx_fail(x, "unsupported operand type(s) for +=: '%s' and 'str'", v_type_name(v));
    sbuf ind = {0}, b = {0};
    int rc = 0;
    if (p[0].k == V_STR) rc = sb_put(x, &ind, p[0].u.s->s, p[0].u.s->len);
    else {
        int64_t w = 0;
        if (want_int(x, p[0], "width", &w) < 0) return -1;
        for (int64_t i = 0; i < w && rc == 0; i++) rc = sb_putc(x, &ind, ' ');
    }
    bool first = v_truthy(p[1]), blank = v_truthy(p[2]);
    /* lines of s + "\n" (the trailing piece dropped by splitlines) */
    const tstr *s = v.u.s;
    size_t i = 0, line_no = 0;
    if (first && rc == 0) rc = sb_put(x, &b, ind.p ? ind.p : "", ind.n);
    while (i < s->len && rc == 0) {
        size_t st = i, nx = i, br = 0;
        while (nx < s->len) {
            size_t k = nx;
            br = line_break(s->s, s->len, k, &nx);
            if (br) { i = nx; nx = k; break; }
        }
        if (!br) i = s->len; /* last line: the appended "\n" ends it */
        size_t end = br ? nx : s->len;
        if (line_no > 0) {
            rc = sb_putc(x, &b, '\n');
            if (rc == 0 && (blank || end > st)) rc = sb_put(x, &b, ind.p ? ind.p : "", ind.n);
        }
        if (rc == 0) rc = sb_put(x, &b, s->s + st, end - st);
        line_no++;
    }
    sb_free(&ind);
    if (rc < 0 || v_str_sb(x, &b, out) < 0) { sb_free(&b); return -1; }
    out->fl = v.fl;
    return 0;
}

static int f_center(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tv s;
    int64_t w = 0;
    if (want_int(x, p[0], "width", &w) < 0 || v_to_str(x, v, &s) < 0) return -1;
    int64_t len = 0;
    v_len(x, s, &len);
    if (w <= len) { *out = s; return 0; }
    if (w > (int64_t)x->max_output) { v_decref(s); return rx_fail(x, "width too large"); }
    int64_t marg = w - len, left = marg / 2 + (marg & w & 1);
    sbuf b = {0};
    int rc = 0;
    for (int64_t i = 0; i < left && rc == 0; i++) rc = sb_putc(x, &b, ' ');
    if (rc == 0) rc = sb_put(x, &b, s.u.s->s, s.u.s->len);
    for (int64_t i = 0; i < marg - left && rc == 0; i++) rc = sb_putc(x, &b, ' ');
    v_decref(s);
    if (rc < 0) { sb_free(&b); return -1; }
    return v_str_sb(x, &b, out);
}

static int f_wordcount(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tv s;
    if (v_to_str(x, v, &s) < 0) return -1;
    int64_t n = 0;
    bool in = false;
    size_t i = 0;
    while (i < s.u.s->len) {
        uint32_t cp = u8_next(s.u.s->s, s.u.s->len, &i);
        bool w = cp == '_' || u_isalpha(cp) || u_isdigit(cp);
        if (w && !in) n++;
        in = w;
    }
    v_decref(s);
    *out = v_int(n);
    return 0;
}

static int f_truncate(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    int64_t length = 0, leeway = 5, len, elen;
    if (want_int(x, p[0], "length", &length) < 0) return -1;
    if (p[3].k != V_NONE && want_int(x, p[3], "leeway", &leeway) < 0) return -1;
    tv s, end;
    /* jinja2 takes len() of the value itself: short non-strings come back
     * unchanged, undefined is empty */
    if (v.k != V_STR) {
        if (v_len(x, v, &len) < 0) return -1;
        if (len <= length + leeway) { *out = v_ref(v); return 0; }
        return rx_fail(x, "truncate needs a string, not %s", v_type_name(v));
    }
    s = v_ref(v);
    if (v_to_str(x, p[2], &end) < 0) { v_decref(s); return -1; }
    v_len(x, s, &len);
    v_len(x, end, &elen);
    int rc = 0;
    if (length < elen) rc = rx_fail(x, "expected length >= %" PRId64 ", got %" PRId64, elen, length);
    else if (leeway < 0) rc = rx_fail(x, "expected leeway >= 0, got %" PRId64, leeway);
    else if (len <= length + leeway) { *out = v_ref(s); }
    else {
        tv head;
        rc = s_slice(x, s, 0, length - elen, 1, true, true, &head);
        if (rc == 0 && !v_truthy(p[1])) { /* drop the last word */
            const char *h = head.u.s->s;
            size_t hn = head.u.s->len, cut = hn;
            for (size_t k = hn; k > 0; k--)
                if (h[k - 1] == ' ') { cut = k - 1; break; }
            tv t;
            rc = v_str(x, h, cut, &t);
            v_decref(head);
            head = t;
        }
        if (rc == 0) {
            sbuf b = {0};
            rc = sb_put(x, &b, head.u.s->s, head.u.s->len);
            if (rc == 0) rc = sb_put(x, &b, end.u.s->s, end.u.s->len);
            v_decref(head);
            if (rc == 0) rc = v_str_sb(x, &b, out);
            else sb_free(&b);
        }
    }
    v_decref(s);
    v_decref(end);
    return rc;
}

static int f_striptags(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tv s;
    if (v_to_str(x, v, &s) < 0) return -1;
    sbuf b = {0}, c = {0};
    const char *t = s.u.s->s;
    size_t n = s.u.s->len;
    int rc = sb_put(x, &b, "", 0);
    /* comments, then tags, as markupsafe does */
    size_t i = 0;
    while (i < n && rc == 0) {
        const char *st = memmem(t + i, n - i, "<!--", 4);
        const char *en = st ? memmem(st, (size_t)(t + n - st), "-->", 3) : NULL;
        if (!st || !en) { rc = sb_put(x, &b, t + i, n - i); break; }
        rc = sb_put(x, &b, t + i, (size_t)(st - t) - i);
        i = (size_t)(en - t) + 3;
    }
    for (size_t k = 0; k < b.n && rc == 0; k++) {
        if (b.p[k] == '<') {
            const char *en = memchr(b.p + k, '>', b.n - k);
            if (en) { k = (size_t)(en - b.p); continue; }
        }
        rc = sb_putc(x, &c, b.p[k]);
    }
    sb_free(&b);
    v_decref(s);
    /* collapse whitespace, then unescape the common entities */
    sbuf d = {0};
    size_t k = 0;
    bool any = false;
    while (k < c.n && rc == 0) {
        size_t e2;
        uint32_t cp;
        size_t j = k;
        cp = u8_next(c.p, c.n, &j);
        if (u_isspace(cp)) { k = j; continue; }
        e2 = k;
        while (e2 < c.n) {
            size_t jj = e2;
            uint32_t q = u8_next(c.p, c.n, &jj);
            if (u_isspace(q)) break;
            e2 = jj;
        }
        if (any) rc = sb_putc(x, &d, ' ');
        any = true;
        for (size_t m = k; m < e2 && rc == 0; m++) {
            static const char *ents[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"},
                                            {"&quot;", "\""}, {"&#39;", "'"}, {"&#34;", "\""},
                                            {"&nbsp;", "\xc2\xa0"}};
            bool done = false;
            for (size_t q = 0; q < RF_ARRAY_LEN(ents) && !done; q++) {
                size_t el = strlen(ents[q][0]);
                if (m + el <= e2 && !memcmp(c.p + m, ents[q][0], el)) {
                    rc = sb_put(x, &d, ents[q][1], strlen(ents[q][1]));
                    m += el - 1;
                    done = true;
                }
            }
            if (!done) rc = sb_putc(x, &d, c.p[m]);
        }
        k = e2;
    }
    sb_free(&c);
    if (rc < 0) { sb_free(&d); return -1; }
    return v_str_sb(x, &d, out);
}

static int f_format(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (a->npos && a->nkw) return rx_fail(x, "can't handle positional and keyword arguments at the same time");
    tv s, args;
    if (v_to_str(x, v, &s) < 0) return -1;
    int rc;
    if (a->nkw) {
        tdict *d = dict_new(x);
        rc = d ? 0 : -1;
        for (uint32_t i = 0; rc == 0 && i < a->nkw; i++) {
            tv k;
            rc = v_str(x, a->kwn[i], strlen(a->kwn[i]), &k);
            if (rc == 0) rc = dict_set(x, d, k, v_ref(a->kwv[i]));
        }
        args = d ? v_obj(V_DICT, d) : v_none();
    } else {
        tlist *l = list_new(x, a->npos, FL_TUPLE);
        rc = l ? 0 : -1;
        for (uint32_t i = 0; l && i < a->npos; i++) l->v[l->n++] = v_ref(a->pos[i]);
        args = l ? v_obj(V_LIST, l) : v_none();
    }
    if (rc == 0) rc = str_percent(x, s, args, out);
    v_decref(args);
    v_decref(s);
    return rc;
}

/* ---- numbers ----------------------------------------------------------- */

static int f_abs(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (v.k == V_INT || v.k == V_BOOL) {
        int64_t i = v.k == V_INT ? v.u.i : v.u.b;
        if (i == INT64_MIN) return rx_fail(x, "integer overflow");
        *out = v_int(i < 0 ? -i : i);
        return 0;
    }
    if (v.k == V_FLOAT) { *out = v_float(fabs(v.u.f)); return 0; }
    if (v.k == V_UNDEF) return v_undef_error(x, v);
    return rx_fail(x, "bad operand type for abs(): '%s'", v_type_name(v));
}

/* Python int(str, base): whitespace, sign, underscores between digits. */
static bool parse_pyint(const char *s, size_t n, int base, int64_t *out) {
    size_t i = 0;
    while (i < n && u_isspace((unsigned char)s[i])) i++;
    while (n > i && u_isspace((unsigned char)s[n - 1])) n--;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (base == 16 && i + 1 < n && s[i] == '0' && (s[i + 1] | 32) == 'x') i += 2;
    else if (base == 8 && i + 1 < n && s[i] == '0' && (s[i + 1] | 32) == 'o') i += 2;
    else if (base == 2 && i + 1 < n && s[i] == '0' && (s[i + 1] | 32) == 'b') i += 2;
    if (i >= n) return false;
    uint64_t acc = 0;
    bool prev_digit = false;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '_') {
            if (!prev_digit || i + 1 >= n || s[i + 1] == '_') return false;
            prev_digit = false;
            continue;
        }
        int d = c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'z' ? (c | 32) - 'a' + 10 : 99;
        if (d >= base) return false;
        if (acc > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return false;
        acc = acc * (uint64_t)base + (uint64_t)d;
        prev_digit = true;
    }
    if (acc > (uint64_t)INT64_MAX + (neg ? 1 : 0)) return false;
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return true;
}

/* Python float(str). */
static bool parse_pyfloat(const char *s, size_t n, double *out) {
    size_t i = 0;
    while (i < n && u_isspace((unsigned char)s[i])) i++;
    while (n > i && u_isspace((unsigned char)s[n - 1])) n--;
    if (i >= n || n - i > 400) return false;
    char buf[401];
    size_t k = 0;
    for (size_t j = i; j < n; j++) {
        if (s[j] == '_') {
            bool ok = j > i && j + 1 < n && s[j - 1] >= '0' && s[j - 1] <= '9' && s[j + 1] >= '0' && s[j + 1] <= '9';
            if (!ok) return false;
            continue;
        }
        buf[k++] = s[j];
    }
    buf[k] = 0;
    const char *b = buf;
    if (*b == '+' || *b == '-') b++;
    /* strtod accepts hex and "infinity"/"nan(...)" spellings Python rejects */
    if (strncasecmp(b, "inf", 3) == 0 || strncasecmp(b, "nan", 3) == 0) {
        if (strcasecmp(b, "inf") && strcasecmp(b, "infinity") && strcasecmp(b, "nan")) return false;
    } else {
        for (const char *c = b; *c; c++)
            if (!((*c >= '0' && *c <= '9') || *c == '.' || *c == 'e' || *c == 'E' || *c == '+' || *c == '-'))
                return false;
    }
    char *end;
    double d = strtod(buf, &end);
    if (*end || end == buf) return false;
    *out = d;
    return true;
}

static int f_int(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    int64_t base = 10;
    if (want_int(x, p[1], "base", &base) < 0) return -1;
    switch ((vkind)v.k) {
    case V_UNDEF: return v_undef_error(x, v); /* Undefined.__int__ raises */
    case V_INT: *out = v; return 0;
    case V_BOOL: *out = v_int(v.u.b); return 0;
    case V_FLOAT:
        if (isfinite(v.u.f) && fabs(v.u.f) < 9.2e18) { *out = v_int((int64_t)v.u.f); return 0; }
        break;
    case V_STR: {
        int64_t i = 0;
        double d = 0;
        if (base >= 2 && base <= 36 && parse_pyint(v.u.s->s, v.u.s->len, (int)base, &i)) { *out = v_int(i); return 0; }
        if (parse_pyfloat(v.u.s->s, v.u.s->len, &d) && isfinite(d) && fabs(d) < 9.2e18) {
            *out = v_int((int64_t)d);
            return 0;
        }
        break;
    }
    default: break;
    }
    *out = v_ref(p[0]);
    return 0;
}

static int f_float(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    double d = 0;
    switch ((vkind)v.k) {
    case V_UNDEF: return v_undef_error(x, v);
    case V_INT: *out = v_float((double)v.u.i); return 0;
    case V_BOOL: *out = v_float(v.u.b); return 0;
    case V_FLOAT: *out = v; return 0;
    case V_STR:
        if (parse_pyfloat(v.u.s->s, v.u.s->len, &d)) { *out = v_float(d); return 0; }
        break;
    default: break;
    }
    *out = v_ref(p[0]);
    return 0;
}

static int f_round(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    int64_t prec = 0;
    if (want_int(x, p[0], "precision", &prec) < 0) return -1;
    const char *m = p[1].k == V_STR ? p[1].u.s->s : "";
    int method = !strcmp(m, "common") ? 0 : !strcmp(m, "ceil") ? 1 : !strcmp(m, "floor") ? 2 : -1;
    if (method < 0) return rx_fail(x, "method must be common, ceil or floor");
    if (v.k == V_UNDEF) return v_undef_error(x, v);
    if (!v_is_num(v)) return rx_fail(x, "type %s doesn't define __round__ method", v_type_name(v));
    double d = v_num(v), scale = pow(10.0, (double)prec);
    if (method == 0) {
        if (v.k != V_FLOAT) { /* round(int, n) stays an int */
            int64_t i = v.k == V_INT ? v.u.i : v.u.b;
            if (prec >= 0) { *out = v_int(i); return 0; }
            double r = rint((double)i / pow(10.0, (double)-prec)) * pow(10.0, (double)-prec);
            *out = v_int((int64_t)r);
            return 0;
        }
        if (!isfinite(d)) { *out = v; return 0; }
        if (prec >= 0 && prec <= 300) {
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)prec, d);
            *out = v_float(strtod(buf, NULL));
        } else if (prec > 300) {
            *out = v;
        } else {
            double q = pow(10.0, (double)-prec);
            *out = v_float(rint(d / q) * q);
        }
        return 0;
    }
    double r = method == 1 ? ceil(d * scale) : floor(d * scale);
    *out = v_float(r / scale);
    return 0;
}

static int f_filesizeformat(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    double b = 0;
    if (v.k == V_STR) {
        if (!parse_pyfloat(v.u.s->s, v.u.s->len, &b)) return rx_fail(x, "could not convert string to float");
    } else if (v_is_num(v)) {
        b = v_num(v);
    } else {
        return rx_fail(x, "float() argument must be a string or a real number, not '%s'", v_type_name(v));
    }
    bool bin = v_truthy(p[0]);
    double base = bin ? 1024 : 1000;
    static const char *dec[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
    static const char *bi[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
    char buf[64];
    if (b == 1) snprintf(buf, sizeof buf, "1 Byte");
    else if (b < base) snprintf(buf, sizeof buf, "%" PRId64 " Bytes", (int64_t)b);
    else {
        int i = 0;
        double unit = base * base;
        while (i < 7 && b >= unit) { i++; unit *= base; }
        snprintf(buf, sizeof buf, "%.1f %s", base * b / unit, bin ? bi[i] : dec[i]);
    }
    return v_str(x, buf, strlen(buf), out);
}

/* ---- sequences --------------------------------------------------------- */

static int f_length(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    int64_t n = 0;
    if (v_len(x, v, &n) < 0) return -1;
    *out = v_int(n);
    return 0;
}

static int f_list(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    tlist *r = list_new(x, l->n, FL_LIST);
    if (!r) { drop_list(l); return -1; }
    for (uint32_t i = 0; i < l->n; i++) r->v[r->n++] = v_ref(l->v[i]);
    drop_list(l);
    *out = v_obj(V_LIST, r);
    return 0;
}

static int f_first(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    *out = l->n ? v_ref(l->v[0]) : v_undef_named(U_HINT, "No first item, sequence was empty.", 0);
    drop_list(l);
    return 0;
}

static int f_last(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (v.k == V_LIST && v.u.l->h.flavor >= FL_GEN)
        return rx_fail(x, "'%s' object is not reversible", v.u.l->h.flavor == FL_GEN ? "generator" : "list_reverseiterator");
    if (v.k != V_STR && v.k != V_LIST && v.k != V_DICT && v.k != V_UNDEF)
        return rx_fail(x, "'%s' object is not reversible", v_type_name(v));
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    *out = l->n ? v_ref(l->v[l->n - 1]) : v_undef_named(U_HINT, "No last item, sequence was empty.", 0);
    drop_list(l);
    return 0;
}

static int f_join(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    sbuf b = {0};
    int rc = sb_put(x, &b, "", 0);
    for (uint32_t i = 0; i < l->n && rc == 0; i++) {
        if (i) rc = v_write_str(x, &b, p[0], 0);
        if (rc < 0) break;
        if (p[1].k != V_NONE) {
            tv it;
            rc = attr_get(x, l->v[i], p[1], v_none(), false, &it);
            if (rc == 0) { rc = v_write_str(x, &b, it, 0); v_decref(it); }
        } else {
            rc = v_write_str(x, &b, l->v[i], 0);
        }
    }
    drop_list(l);
    if (rc < 0) { sb_free(&b); return -1; }
    return v_str_sb(x, &b, out);
}

static int f_reverse(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (v.k == V_STR) return s_slice(x, v, 0, 0, -1, false, false, out);
    bool gen = v.k == V_LIST && v.u.l->h.flavor >= FL_GEN;
    if (v.k != V_LIST && v.k != V_DICT && v.k != V_UNDEF && v.k != V_LOOP)
        return rx_fail(x, "argument must be iterable");
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    tlist *r = list_new(x, l->n, gen ? FL_LIST : FL_REVITER);
    if (!r) { drop_list(l); return -1; }
    for (uint32_t i = l->n; i > 0; i--) r->v[r->n++] = v_ref(l->v[i - 1]);
    drop_list(l);
    *out = v_obj(V_LIST, r);
    return 0;
}

static int f_items(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tlist *r = list_new(x, 0, FL_GEN);
    if (!r) return -1;
    if (v.k == V_DICT) {
        for (uint32_t i = 0; i < v.u.d->n; i++) {
            tv t;
            if (pair(x, v_ref(v.u.d->e[i].k), v_ref(v.u.d->e[i].v), &t) < 0 || list_push(x, r, t) < 0) {
                drop_list(r);
                return -1;
            }
        }
    } else if (v.k != V_UNDEF) {
        drop_list(r);
        return rx_fail(x, "Can only get item pairs from a mapping.");
    }
    return new_gen(x, r, FL_GEN, out);
}

static int f_dictsort(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (v.k != V_DICT) return rx_fail(x, "'%s' object has no attribute 'items'", v_type_name(v));
    const char *by = p[1].k == V_STR ? p[1].u.s->s : "";
    int pos = !strcmp(by, "key") ? 0 : !strcmp(by, "value") ? 1 : -1;
    if (pos < 0) return rx_fail(x, "You can only sort by either \"key\" or \"value\"");
    bool icase = !v_truthy(p[0]);
    tlist *pairs = list_new(x, v.u.d->n, FL_LIST);
    if (!pairs) return -1;
    int rc = 0;
    for (uint32_t i = 0; i < v.u.d->n && rc == 0; i++) {
        tv item, key, kv;
        rc = pair(x, v_ref(v.u.d->e[i].k), v_ref(v.u.d->e[i].v), &item);
        if (rc < 0) break;
        rc = icase ? lower_if_str(x, item.u.l->v[pos], &key) : (key = v_ref(item.u.l->v[pos]), 0);
        if (rc < 0) { v_decref(item); break; }
        rc = pair(x, key, item, &kv);
        if (rc == 0) pairs->v[pairs->n++] = kv;
    }
    tlist *r = NULL;
    if (rc == 0) rc = sort_pairs(x, pairs, v_truthy(p[2]), &r);
    drop_list(pairs);
    if (rc < 0) return -1;
    *out = v_obj(V_LIST, r);
    return 0;
}

static int f_sort(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    bool icase = !v_truthy(p[1]);
    tlist *pairs = list_new(x, l->n, FL_LIST);
    int rc = pairs ? 0 : -1;
    for (uint32_t i = 0; rc == 0 && i < l->n; i++) {
        tv key, kv;
        rc = multi_key(x, l->v[i], p[2], icase, &key);
        if (rc == 0) rc = pair(x, key, v_ref(l->v[i]), &kv);
        if (rc == 0) pairs->v[pairs->n++] = kv;
    }
    drop_list(l);
    tlist *r = NULL;
    if (rc == 0) rc = sort_pairs(x, pairs, v_truthy(p[0]), &r);
    drop_list(pairs);
    if (rc < 0) return -1;
    *out = v_obj(V_LIST, r);
    return 0;
}

static int f_unique(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    tdict *seen = dict_new(x);
    tlist *r = list_new(x, 0, FL_GEN);
    int rc = seen && r ? 0 : -1;
    for (uint32_t i = 0; rc == 0 && i < l->n; i++) {
        tv key, dummy;
        rc = attr_get(x, l->v[i], p[1], v_none(), !v_truthy(p[0]), &key);
        if (rc < 0) break;
        int f = dict_get(x, seen, key, &dummy);
        if (f < 0) { v_decref(key); rc = -1; break; }
        if (f) { v_decref(key); continue; }
        rc = dict_set(x, seen, key, v_none());
        if (rc == 0) rc = list_push(x, r, v_ref(l->v[i]));
    }
    drop_list(l);
    if (seen) v_decref(v_obj(V_DICT, seen));
    if (rc < 0) { drop_list(r); return -1; }
    return new_gen(x, r, FL_GEN, out);
}

static int min_max(rx *x, tv v, const tv *p, bool want_max, tv *out) {
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    if (l->n == 0) {
        drop_list(l);
        *out = v_undef_named(U_HINT, "No aggregated item, sequence was empty.", 0);
        return 0;
    }
    bool icase = !v_truthy(p[0]);
    uint32_t best = 0;
    tv bk = v_none();
    int rc = attr_get(x, l->v[0], p[1], v_none(), icase, &bk);
    for (uint32_t i = 1; rc == 0 && i < l->n; i++) {
        tv k;
        int c;
        if ((rc = attr_get(x, l->v[i], p[1], v_none(), icase, &k)) < 0) break;
        rc = v_cmp(x, k, bk, &c, 0);
        if (rc == 0 && c != 2 && (want_max ? c > 0 : c < 0)) {
            v_decref(bk);
            bk = k;
            best = i;
        } else {
            v_decref(k);
        }
    }
    v_decref(bk);
    if (rc == 0) *out = v_ref(l->v[best]);
    drop_list(l);
    return rc;
}

static int f_min(rx *x, tv v, const tv *p, const targs *a, tv *out) { return min_max(x, v, p, false, out); }
static int f_max(rx *x, tv v, const tv *p, const targs *a, tv *out) { return min_max(x, v, p, true, out); }

static int f_sum(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (p[1].k == V_STR) return rx_fail(x, "sum() can't sum strings [use ''.join(seq) instead]");
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    tv acc = v_ref(p[1]);
    int rc = 0;
    for (uint32_t i = 0; i < l->n && rc == 0; i++) {
        tv it, r;
        rc = attr_get(x, l->v[i], p[0], v_none(), false, &it);
        if (rc < 0) break;
        rc = rx_binop(x, OP_ADD, acc, it, &r);
        v_decref(it);
        if (rc == 0) { v_decref(acc); acc = r; }
    }
    drop_list(l);
    if (rc < 0) { v_decref(acc); return -1; }
    *out = acc;
    return 0;
}

static int f_default(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (v.k == V_UNDEF || (v_truthy(p[1]) && !v_truthy(v))) *out = v_ref(p[0]);
    else *out = v_ref(v);
    return 0;
}

static int f_attr(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (p[0].k != V_STR) return rx_fail(x, "attribute name must be a string");
    const tstr *n = p[0].u.s;
    if (v.k == V_DICT && method_lookup(v, n->s, n->len) == -1) {
        *out = v_undef_named(U_ATTR, NULL, V_DICT);
        return 0;
    }
    return rx_getattr(x, v, n->s, n->len, out);
}

static int f_batch(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    int64_t k = 0;
    if (want_int(x, p[0], "linecount", &k) < 0) return -1;
    if (k <= 0) return rx_fail(x, "batch size must be positive");
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    tlist *r = list_new(x, 0, FL_GEN), *row = NULL;
    int rc = r ? 0 : -1;
    for (uint32_t i = 0; rc == 0 && i < l->n; i++) {
        if (!row && !(row = list_new(x, (uint32_t)(k < 1024 ? k : 1024), FL_LIST))) { rc = -1; break; }
        rc = list_push(x, row, v_ref(l->v[i]));
        if (rc == 0 && row->n == k) { rc = list_push(x, r, v_obj(V_LIST, row)); row = NULL; }
    }
    if (rc == 0 && row) {
        if (p[1].k != V_NONE)
            while (rc == 0 && row->n < k) rc = list_push(x, row, v_ref(p[1]));
        if (rc == 0) { rc = list_push(x, r, v_obj(V_LIST, row)); row = NULL; }
    }
    drop_list(row);
    drop_list(l);
    if (rc < 0) { drop_list(r); return -1; }
    return new_gen(x, r, FL_GEN, out);
}

static int f_slice(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    int64_t slices = 0;
    if (want_int(x, p[0], "slices", &slices) < 0) return -1;
    if (slices == 0) return rx_fail(x, "integer division or modulo by zero");
    if (slices < 0 || slices > 100000) return rx_fail(x, "bad number of slices");
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    int64_t len = l->n, per = len / slices, extra = len % slices, offset = 0;
    tlist *r = list_new(x, 0, FL_GEN);
    int rc = r ? 0 : -1;
    for (int64_t s = 0; rc == 0 && s < slices; s++) {
        int64_t start = offset + s * per;
        if (s < extra) offset++;
        int64_t end = offset + (s + 1) * per;
        tlist *part = list_new(x, 0, FL_LIST);
        if (!part) { rc = -1; break; }
        for (int64_t i = start; rc == 0 && i < end && i < len; i++) rc = list_push(x, part, v_ref(l->v[i]));
        if (rc == 0 && p[1].k != V_NONE && s >= extra) rc = list_push(x, part, v_ref(p[1]));
        if (rc == 0) rc = list_push(x, r, v_obj(V_LIST, part));
        else drop_list(part);
    }
    drop_list(l);
    if (rc < 0) { drop_list(r); return -1; }
    return new_gen(x, r, FL_GEN, out);
}

/* map(filter, *args, **kw) or map(attribute=..., default=...) */
static int f_map(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    if (!v_truthy(v)) { /* jinja2 checks its arguments only for a non-empty input */
        tlist *r = list_new(x, 0, FL_GEN);
        if (!r) return -1;
        return new_gen(x, r, FL_GEN, out);
    }
    bool by_attr = false;
    tv attr = v_none(), dflt = v_none();
    if (a->npos == 0) {
        for (uint32_t i = 0; i < a->nkw; i++) {
            if (!strcmp(a->kwn[i], "attribute")) { attr = a->kwv[i]; by_attr = true; }
            else if (!strcmp(a->kwn[i], "default")) dflt = a->kwv[i];
        }
        if (by_attr)
            for (uint32_t i = 0; i < a->nkw; i++)
                if (strcmp(a->kwn[i], "attribute") && strcmp(a->kwn[i], "default"))
                    return rx_fail(x, "Unexpected keyword argument '%s'", a->kwn[i]);
        if (!by_attr) return rx_fail(x, "map requires a filter argument");
    }
    int fi = -1;
    if (!by_attr) {
        if (a->pos[0].k != V_STR) return rx_fail(x, "map requires a filter name");
        fi = filter_index(a->pos[0].u.s->s);
        if (fi < 0) return rx_fail(x, "No filter named '%s'.", a->pos[0].u.s->s);
    }
    tlist *l;
    if (to_list(x, v, &l) < 0) return -1;
    tlist *r = list_new(x, l->n, FL_GEN);
    int rc = r ? 0 : -1;
    targs rest = *a;
    if (!by_attr) { rest.pos++; rest.npos--; }
    for (uint32_t i = 0; rc == 0 && i < l->n; i++) {
        tv m;
        rc = by_attr ? attr_get(x, l->v[i], attr, dflt, false, &m) : filter_apply(x, fi, l->v[i], &rest, &m);
        if (rc == 0) r->v[r->n++] = m;
    }
    drop_list(l);
    if (rc < 0) { drop_list(r); return -1; }
    return new_gen(x, r, FL_GEN, out);
}

static int select_impl(rx *x, tv v, const targs *a, bool lookup_attr, bool want, tv *out) {
    tlist *r = list_new(x, 0, FL_GEN);
    if (!r) return -1;
    if (!v_truthy(v)) return new_gen(x, r, FL_GEN, out);
    uint32_t off = 0;
    tv attr = v_none();
    if (lookup_attr) {
        if (a->npos < 1) { drop_list(r); return rx_fail(x, "Missing parameter for attribute name"); }
        attr = a->pos[0];
        off = 1;
    }
    int ti = -1;
    if (a->npos > off) {
        if (a->pos[off].k != V_STR) { drop_list(r); return rx_fail(x, "test name must be a string"); }
        ti = test_index(a->pos[off].u.s->s);
        if (ti < 0) { drop_list(r); return rx_fail(x, "No test named '%s'.", a->pos[off].u.s->s); }
    }
    targs rest = *a;
    rest.pos += off + 1;
    rest.npos = a->npos > off ? a->npos - off - 1 : 0;
    tlist *l;
    if (to_list(x, v, &l) < 0) { drop_list(r); return -1; }
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < l->n; i++) {
        tv item;
        rc = lookup_attr ? attr_get(x, l->v[i], attr, v_none(), false, &item) : (item = v_ref(l->v[i]), 0);
        if (rc < 0) break;
        bool t;
        if (ti >= 0) rc = test_apply(x, ti, item, &rest, &t);
        else t = v_truthy(item);
        v_decref(item);
        if (rc == 0 && t == want) rc = list_push(x, r, v_ref(l->v[i]));
    }
    drop_list(l);
    if (rc < 0) { drop_list(r); return -1; }
    return new_gen(x, r, FL_GEN, out);
}

static int f_select(rx *x, tv v, const tv *p, const targs *a, tv *out) { return select_impl(x, v, a, false, true, out); }
static int f_reject(rx *x, tv v, const tv *p, const targs *a, tv *out) { return select_impl(x, v, a, false, false, out); }
static int f_selectattr(rx *x, tv v, const tv *p, const targs *a, tv *out) { return select_impl(x, v, a, true, true, out); }
static int f_rejectattr(rx *x, tv v, const tv *p, const targs *a, tv *out) { return select_impl(x, v, a, true, false, out); }

/* Hugging Face's tojson: json.dumps(x, ensure_ascii=False, indent=None,
 * separators=None, sort_keys=False) */
static int f_tojson(rx *x, tv v, const tv *p, const targs *a, tv *out) {
    json_opts o = {.ensure_ascii = v_truthy(p[0]), .sort_keys = v_truthy(p[3])};
    sbuf ind = {0};
    int rc = 0;
    if (p[1].k != V_NONE) {
        o.has_indent = true;
        if (p[1].k == V_STR) rc = sb_put(x, &ind, p[1].u.s->s, p[1].u.s->len);
        else if (p[1].k == V_INT || p[1].k == V_BOOL) {
            int64_t w = p[1].k == V_INT ? p[1].u.i : p[1].u.b;
            if (w > 4096) rc = rx_fail(x, "indent too large");
            for (int64_t i = 0; i < w && rc == 0; i++) rc = sb_putc(x, &ind, ' ');
        } else {
            rc = rx_fail(x, "can't multiply sequence by non-int of type '%s'", v_type_name(p[1]));
        }
        o.indent = ind.p ? ind.p : "";
        o.indent_len = ind.n;
    }
    o.item_sep = o.has_indent ? "," : ", ";
    o.item_sep_len = o.has_indent ? 1 : 2;
    o.key_sep = ": ";
    o.key_sep_len = 2;
    if (rc == 0 && p[2].k != V_NONE) {
        tv sp = p[2];
        if (sp.k != V_LIST || sp.u.l->n != 2 || sp.u.l->v[0].k != V_STR || sp.u.l->v[1].k != V_STR) {
            rc = rx_fail(x, "separators must be a (item_separator, key_separator) pair of strings");
        } else {
            o.item_sep = sp.u.l->v[0].u.s->s;
            o.item_sep_len = sp.u.l->v[0].u.s->len;
            o.key_sep = sp.u.l->v[1].u.s->s;
            o.key_sep_len = sp.u.l->v[1].u.s->len;
        }
    }
    sbuf b = {0};
    if (rc == 0) rc = sb_put(x, &b, "", 0);
    if (rc == 0) rc = v_write_json(x, &b, v, &o, 0);
    sb_free(&ind);
    if (rc < 0) { sb_free(&b); return -1; }
    return v_str_sb(x, &b, out);
}

static const filter_def filters[] = {
    {"abs", f_abs, ""},
    {"attr", f_attr, "name"},
    {"batch", f_batch, "linecount,fill_with=None"},
    {"capitalize", f_capitalize, ""},
    {"center", f_center, "width=80"},
    {"count", f_length, ""},
    {"d", f_default, "default_value='',boolean=False"},
    {"default", f_default, "default_value='',boolean=False"},
    {"dictsort", f_dictsort, "case_sensitive=False,by='key',reverse=False"},
    {"e", f_escape, ""},
    {"escape", f_escape, ""},
    {"filesizeformat", f_filesizeformat, "binary=False"},
    {"first", f_first, ""},
    {"float", f_float, "default=0.0"},
    {"forceescape", f_forceescape, ""},
    {"format", f_format, NULL},
    {"groupby", NULL, NULL},
    {"indent", f_indent, "width=4,first=False,blank=False"},
    {"int", f_int, "default=0,base=10"},
    {"items", f_items, ""},
    {"join", f_join, "d='',attribute=None"},
    {"last", f_last, ""},
    {"length", f_length, ""},
    {"list", f_list, ""},
    {"lower", f_lower, ""},
    {"map", f_map, NULL},
    {"max", f_max, "case_sensitive=False,attribute=None"},
    {"min", f_min, "case_sensitive=False,attribute=None"},
    {"pprint", NULL, NULL},
    {"random", NULL, NULL},
    {"reject", f_reject, NULL},
    {"rejectattr", f_rejectattr, NULL},
    {"replace", f_replace, "old,new,count=None"},
    {"reverse", f_reverse, ""},
    {"round", f_round, "precision=0,method='common'"},
    {"safe", f_safe, ""},
    {"select", f_select, NULL},
    {"selectattr", f_selectattr, NULL},
    {"slice", f_slice, "slices,fill_with=None"},
    {"sort", f_sort, "reverse=False,case_sensitive=False,attribute=None"},
    {"string", f_string, ""},
    {"striptags", f_striptags, ""},
    {"sum", f_sum, "attribute=None,start=0"},
    {"title", f_title, ""},
    {"tojson", f_tojson, "ensure_ascii=False,indent=None,separators=None,sort_keys=False"},
    {"trim", f_trim, "chars=None"},
    {"truncate", f_truncate, "length=255,killwords=False,end='...',leeway=None"},
    {"unique", f_unique, "case_sensitive=False,attribute=None"},
    {"upper", f_upper, ""},
    {"urlencode", NULL, NULL},
    {"urlize", NULL, NULL},
    {"wordcount", f_wordcount, ""},
    {"wordwrap", NULL, NULL},
    {"xmlattr", NULL, NULL},
};

int filter_index(const char *name) {
    for (size_t i = 0; i < RF_ARRAY_LEN(filters); i++)
        if (!strcmp(filters[i].name, name)) return (int)i;
    return -1;
}

const char *filter_name(int idx) { return filters[idx].name; }

/* Filters that are Python generators: their errors surface only when the
 * result is iterated. */
static bool is_generator(filt_fn fn) {
    return fn == f_map || fn == f_select || fn == f_reject || fn == f_selectattr ||
           fn == f_rejectattr || fn == f_unique || fn == f_items || fn == f_batch || fn == f_slice;
}

/* Turns the pending (non-fatal) error into a generator that raises it. */
static int deferred_error(rx *x, tv *out) {
    if (x->fatal || !x->err) return -1;
    const char *msg = x->err->msg;
    tlist *g = list_new(x, 1, FL_GEN);
    if (!g) return -1;
    tv m;
    if (v_str(x, msg, strlen(msg), &m) < 0) { drop_list(g); return -1; }
    g->v[g->n++] = m;
    g->h.spare |= LIST_RAISES;
    x->failed = false;
    x->err->code = RF_OK;
    *out = v_obj(V_LIST, g);
    return 0;
}

int filter_apply(rx *x, int idx, tv self, const targs *a, tv *out) {
    const filter_def *f = &filters[idx];
    if (!f->fn) return rx_fail(x, "filter '%s' is not supported by this template engine", f->name);
    int rc;
    if (!f->spec) {
        rc = f->fn(x, self, NULL, a, out);
    } else {
        tv slots[MAX_PARAMS], own[MAX_PARAMS] = {{0}};
        rc = bind_args(x, f->name, f->spec, a, slots, own);
        if (rc == 0) rc = f->fn(x, self, slots, a, out);
        for (int i = 0; i < MAX_PARAMS; i++) v_decref(own[i]);
    }
    if (rc < 0 && is_generator(f->fn)) rc = deferred_error(x, out);
    return rc;
}

/* ---- tests ------------------------------------------------------------- */

typedef int (*test_fn)(rx *x, tv v, const tv *p, bool *out);
typedef struct test_def {
    const char *name;
    test_fn fn;
    const char *spec;
} test_def;

static int t_defined(rx *x, tv v, const tv *p, bool *o) { *o = v.k != V_UNDEF; return 0; }
static int t_undefined(rx *x, tv v, const tv *p, bool *o) { *o = v.k == V_UNDEF; return 0; }
static int t_none(rx *x, tv v, const tv *p, bool *o) { *o = v.k == V_NONE; return 0; }
static int t_boolean(rx *x, tv v, const tv *p, bool *o) { *o = v.k == V_BOOL; return 0; }
static int t_false(rx *x, tv v, const tv *p, bool *o) { *o = v.k == V_BOOL && !v.u.b; return 0; }
static int t_true(rx *x, tv v, const tv *p, bool *o) { *o = v.k == V_BOOL && v.u.b; return 0; }
static int t_integer(rx *x, tv v, const tv *p, bool *o) { *o = v.k == V_INT; return 0; }
static int t_float(rx *x, tv v, const tv *p, bool *o) { *o = v.k == V_FLOAT; return 0; }
static int t_number(rx *x, tv v, const tv *p, bool *o) { *o = v_is_num(v); return 0; }
static int t_string(rx *x, tv v, const tv *p, bool *o) { *o = v.k == V_STR; return 0; }
static int t_mapping(rx *x, tv v, const tv *p, bool *o) { *o = v.k == V_DICT; return 0; }
static int t_escaped(rx *x, tv v, const tv *p, bool *o) { *o = v.k == V_STR && (v.fl & VF_SAFE); return 0; }

static int t_iterable(rx *x, tv v, const tv *p, bool *o) {
    *o = v.k == V_STR || v.k == V_LIST || v.k == V_DICT || v.k == V_UNDEF || v.k == V_LOOP;
    return 0;
}

static int t_sequence(rx *x, tv v, const tv *p, bool *o) {
    *o = v.k == V_STR || v.k == V_DICT || v.k == V_UNDEF ||
         (v.k == V_LIST && v.u.l->h.flavor <= FL_TUPLE);
    return 0;
}

static int t_callable(rx *x, tv v, const tv *p, bool *o) {
    *o = v.k == V_FUNC || v.k == V_METHOD || v.k == V_MACRO || v.k == V_UNDEF || v.k == V_LOOP ||
         v.k == V_JOINER;
    return 0;
}

static int str_case_test(rx *x, tv v, bool upper, bool *o) {
    tv s;
    if (v_to_str(x, v, &s) < 0) return -1;
    bool cased = false, ok = true;
    size_t i = 0;
    while (i < s.u.s->len) {
        uint32_t cp = u8_next(s.u.s->s, s.u.s->len, &i);
        if (u_istitle(cp) || (upper ? u_islower(cp) : u_isupper(cp))) ok = false;
        if (upper ? u_isupper(cp) : u_islower(cp)) cased = true;
    }
    v_decref(s);
    *o = ok && cased;
    return 0;
}

static int t_lower(rx *x, tv v, const tv *p, bool *o) { return str_case_test(x, v, false, o); }
static int t_upper(rx *x, tv v, const tv *p, bool *o) { return str_case_test(x, v, true, o); }

static int mod_eq(rx *x, tv v, tv m, int64_t want, bool *o) {
    tv r;
    if (rx_binop(x, OP_MOD, v, m, &r) < 0) return -1;
    int rc = v_eq(x, r, v_int(want), o, 0);
    v_decref(r);
    return rc;
}

static int t_odd(rx *x, tv v, const tv *p, bool *o) { return mod_eq(x, v, v_int(2), 1, o); }
static int t_even(rx *x, tv v, const tv *p, bool *o) { return mod_eq(x, v, v_int(2), 0, o); }
static int t_divisibleby(rx *x, tv v, const tv *p, bool *o) { return mod_eq(x, v, p[0], 0, o); }

static int t_eq(rx *x, tv v, const tv *p, bool *o) { return v_eq(x, v, p[0], o, 0); }
static int t_ne(rx *x, tv v, const tv *p, bool *o) {
    int rc = v_eq(x, v, p[0], o, 0);
    *o = !*o;
    return rc;
}

static int cmp_test(rx *x, tv v, tv w, int op, bool *o) {
    int c;
    if (v_cmp(x, v, w, &c, 0) < 0) return -1;
    *o = c != 2 && ((op == 0 && c < 0) || (op == 1 && c <= 0) || (op == 2 && c > 0 && c != 2) ||
                    (op == 3 && c >= 0));
    return 0;
}

static int t_lt(rx *x, tv v, const tv *p, bool *o) { return cmp_test(x, v, p[0], 0, o); }
static int t_le(rx *x, tv v, const tv *p, bool *o) { return cmp_test(x, v, p[0], 1, o); }
static int t_gt(rx *x, tv v, const tv *p, bool *o) { return cmp_test(x, v, p[0], 2, o); }
static int t_ge(rx *x, tv v, const tv *p, bool *o) { return cmp_test(x, v, p[0], 3, o); }
static int t_in(rx *x, tv v, const tv *p, bool *o) { return v_contains(x, p[0], v, o); }

static int t_sameas(rx *x, tv v, const tv *p, bool *o) {
    tv w = p[0];
    if (v.k != w.k) { *o = false; return 0; }
    switch ((vkind)v.k) {
    case V_NONE: case V_UNDEF: *o = v.k == V_NONE; return 0;
    case V_BOOL: *o = v.u.b == w.u.b; return 0;
    case V_INT: *o = v.u.i == w.u.i && v.u.i >= -5 && v.u.i <= 256; return 0;
    case V_FLOAT: *o = false; return 0;
    case V_FUNC: *o = v.u.i == w.u.i; return 0;
    default: *o = v.u.o == w.u.o; return 0;
    }
}

static int t_filter(rx *x, tv v, const tv *p, bool *o) {
    *o = v.k == V_STR && filter_index(v.u.s->s) >= 0;
    return 0;
}
static int t_test(rx *x, tv v, const tv *p, bool *o) {
    *o = v.k == V_STR && test_index(v.u.s->s) >= 0;
    return 0;
}

static const test_def tests[] = {
    {"!=", t_ne, "other"},          {"<", t_lt, "other"},        {"<=", t_le, "other"},
    {"==", t_eq, "other"},          {">", t_gt, "other"},        {">=", t_ge, "other"},
    {"boolean", t_boolean, ""},     {"callable", t_callable, ""}, {"defined", t_defined, ""},
    {"divisibleby", t_divisibleby, "num"}, {"eq", t_eq, "other"}, {"equalto", t_eq, "other"},
    {"escaped", t_escaped, ""},     {"even", t_even, ""},         {"false", t_false, ""},
    {"filter", t_filter, ""},       {"float", t_float, ""},       {"ge", t_ge, "other"},
    {"greaterthan", t_gt, "other"}, {"gt", t_gt, "other"},        {"in", t_in, "seq"},
    {"integer", t_integer, ""},     {"iterable", t_iterable, ""}, {"le", t_le, "other"},
    {"lessthan", t_lt, "other"},    {"lower", t_lower, ""},       {"lt", t_lt, "other"},
    {"mapping", t_mapping, ""},     {"ne", t_ne, "other"},        {"none", t_none, ""},
    {"number", t_number, ""},       {"odd", t_odd, ""},           {"sameas", t_sameas, "other"},
    {"sequence", t_sequence, ""},   {"string", t_string, ""},     {"test", t_test, ""},
    {"true", t_true, ""},           {"undefined", t_undefined, ""}, {"upper", t_upper, ""},
};

int test_index(const char *name) {
    for (size_t i = 0; i < RF_ARRAY_LEN(tests); i++)
        if (!strcmp(tests[i].name, name)) return (int)i;
    return -1;
}

int test_apply(rx *x, int idx, tv self, const targs *a, bool *out) {
    const test_def *t = &tests[idx];
    tv slots[MAX_PARAMS], own[MAX_PARAMS] = {{0}};
    int rc = bind_args(x, t->name, t->spec, a, slots, own);
    if (rc == 0) rc = t->fn(x, self, slots, out);
    for (int i = 0; i < MAX_PARAMS; i++) v_decref(own[i]);
    return rc;
}
