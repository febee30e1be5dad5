/*
 * methods.c - the Python methods templates call on values: str methods
 * (split, strip, startswith, replace, format, ...), the read-only dict and
 * list methods, loop.cycle/loop.changed, cycler.next/reset, plus the string
 * helpers the filters share (strip, case mapping, replace, split, slicing by
 * code point, HTML escaping) and the two string formatting operators: "%"
 * (printf style) and str.format.
 *
 * The sandbox is immutable (ImmutableSandboxedEnvironment): list.append,
 * dict.update and the other mutating methods are "unsafe" attributes, which
 * look up as an undefined that fails when called, as in jinja2. Methods
 * Python has but this engine does not implement fail when called.
 */
#define _GNU_SOURCE /* memmem */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "template/tmpl-impl.h"

int v_undef_error(rx *x, tv u);

/* ---- code point helpers ------------------------------------------------ */

/* Byte offsets of every code point of s, plus the end (n+1 entries). */
static int cp_offsets(rx *x, const tstr *s, size_t **out, size_t *ncp) {
    size_t n = s->ascii ? s->len : u8_count(s->s, s->len);
    size_t *o = rx_alloc(x, (n + 1) * sizeof *o);
    if (!o) return -1;
    size_t i = 0, k = 0;
    while (i < s->len) {
        o[k++] = i;
        u8_next(s->s, s->len, &i);
    }
    o[k] = s->len;
    *out = o;
    *ncp = n;
    return 0;
}

int s_slice(rx *x, tv sv, int64_t start, int64_t stop, int64_t step, bool hs, bool he, tv *out) {
    const tstr *s = sv.u.s;
    size_t *off = NULL, n;
    if (!s->ascii && cp_offsets(x, s, &off, &n) < 0) return -1;
    if (s->ascii) n = s->len;
    slice_indices((int64_t)n, &start, &stop, step, hs, he);
    sbuf b = {0};
    int rc = sb_put(x, &b, "", 0);
    if (step == 1 && start < stop) {
        size_t bs = off ? off[start] : (size_t)start, be = off ? off[stop] : (size_t)stop;
        rc = sb_put(x, &b, s->s + bs, be - bs);
    } else {
        for (int64_t i = start; rc == 0 && (step > 0 ? i < stop : i > stop); i += step) {
            size_t bs = off ? off[i] : (size_t)i, be = off ? off[i + 1] : (size_t)i + 1;
            rc = sb_put(x, &b, s->s + bs, be - bs);
        }
    }
    rf_free(off);
    if (rc < 0 || v_str_sb(x, &b, out) < 0) { sb_free(&b); return -1; }
    out->fl = sv.fl;
    return 0;
}

static bool in_chars(uint32_t cp, const tstr *chars) {
    size_t i = 0;
    while (i < chars->len)
        if (u8_next(chars->s, chars->len, &i) == cp) return true;
    return false;
}

int s_strip(rx *x, tv sv, tv chars, int which, tv *out) {
    if (chars.k != V_NONE && chars.k != V_STR)
        return rx_fail(x, "strip arg must be None or str");
    const tstr *s = sv.u.s, *cs = chars.k == V_STR ? chars.u.s : NULL;
    size_t b = 0, e = s->len;
    if (which & 1) {
        while (b < e) {
            size_t j = b;
            uint32_t cp = u8_next(s->s, e, &j);
            if (cs ? !in_chars(cp, cs) : !u_isspace(cp)) break;
            b = j;
        }
    }
    if (which & 2) {
        while (e > b) {
            size_t st = e - 1;
            while (st > b && ((unsigned char)s->s[st] & 0xc0) == 0x80) st--;
            size_t j = st;
            uint32_t cp = u8_next(s->s, e, &j);
            if (cs ? !in_chars(cp, cs) : !u_isspace(cp)) break;
            e = st;
        }
    }
    if (b == 0 && e == s->len) { *out = v_ref(sv); return 0; }
    if (v_str(x, s->s + b, e - b, out) < 0) return -1;
    out->fl = sv.fl;
    return 0;
}

static int put_cp(rx *x, sbuf *b, uint32_t cp) {
    char enc[4];
    return sb_put(x, b, enc, (size_t)u8_put(enc, cp));
}

/* mode: 0 upper, 1 lower, 2 title (str.title), 3 capitalize, 4 swapcase */
int s_case(rx *x, tv sv, int mode, tv *out) {
    const tstr *s = sv.u.s;
    sbuf b = {0};
    int rc = sb_put(x, &b, "", 0);
    size_t i = 0;
    bool prev_cased = false, first = true;
    uint32_t prev = 0;
    while (i < s->len && rc == 0) {
        uint32_t cp = u8_next(s->s, s->len, &i);
        bool up;
        switch (mode) {
        case 0: up = true; break;
        case 1: up = false; break;
        case 2: up = !prev_cased; break;
        case 3: up = first; break;
        default: up = u_islower(cp); break;
        }
        if (mode == 4 && (!u_iscased(cp) || u_istitle(cp))) { rc = put_cp(x, &b, cp); prev = cp; continue; }
        /* title() and capitalize() use the title case of a first letter */
        bool title = mode == 2 || mode == 3;
        if (up) {
            const char *full = u_full_upper(cp, title);
            if (full) rc = sb_put(x, &b, full, strlen(full));
            else rc = put_cp(x, &b, title ? u_title(cp) : u_upper(cp));
        } else if (u_full_lower(cp)) {
            rc = sb_put(x, &b, u_full_lower(cp), strlen(u_full_lower(cp)));
        } else if (cp == 0x3a3) {
            /* final sigma: after a cased letter and not before one */
            size_t j = i;
            uint32_t next = j < s->len ? u8_next(s->s, s->len, &j) : 0;
            bool final = u_iscased(prev) && !(j > i && u_iscased(next));
            rc = put_cp(x, &b, final ? 0x3c2 : 0x3c3);
        } else {
            rc = put_cp(x, &b, u_lower(cp));
        }
        prev_cased = u_iscased(cp);
        prev = cp;
        first = false;
    }
    if (rc < 0 || v_str_sb(x, &b, out) < 0) { sb_free(&b); return -1; }
    out->fl = sv.fl;
    return 0;
}

int s_replace(rx *x, tv sv, tv old, tv new_, int64_t count, tv *out) {
    const tstr *s = sv.u.s, *o = old.u.s, *n = new_.u.s;
    sbuf b = {0};
    int rc = sb_put(x, &b, "", 0);
    if (o->len == 0) { /* Python inserts new_ between code points */
        size_t i = 0;
        int64_t done = 0;
        while (rc == 0) {
            if (count < 0 || done < count) { rc = sb_put(x, &b, n->s, n->len); done++; }
            if (i >= s->len) break;
            size_t st = i;
            u8_next(s->s, s->len, &i);
            if (rc == 0) rc = sb_put(x, &b, s->s + st, i - st);
        }
    } else {
        size_t i = 0;
        int64_t done = 0;
        while (rc == 0 && i <= s->len) {
            const char *hit = (count < 0 || done < count) ? memmem(s->s + i, s->len - i, o->s, o->len) : NULL;
            if (!hit) { rc = sb_put(x, &b, s->s + i, s->len - i); break; }
            size_t at = (size_t)(hit - s->s);
            rc = sb_put(x, &b, s->s + i, at - i);
            if (rc == 0) rc = sb_put(x, &b, n->s, n->len);
            i = at + o->len;
            done++;
        }
    }
    if (rc < 0 || v_str_sb(x, &b, out) < 0) { sb_free(&b); return -1; }
    out->fl = sv.fl;
    return 0;
}

static int push_piece(rx *x, tlist *l, const char *s, size_t n, uint8_t fl) {
    tv p;
    if (v_str(x, s, n, &p) < 0) return -1;
    p.fl = fl;
    return list_push(x, l, p);
}

/* str.split / str.rsplit (right: from the end). */
static int split_impl(rx *x, tv sv, tv sep, int64_t maxsplit, bool right, tv *out) {
    const tstr *s = sv.u.s;
    if (sep.k != V_NONE && sep.k != V_STR)
        return rx_fail(x, "must be str or None, not %s", v_type_name(sep));
    if (sep.k == V_STR && sep.u.s->len == 0) return rx_fail(x, "empty separator");
    tlist *l = list_new(x, 0, FL_LIST);
    if (!l) return -1;
    int rc = 0;
    int64_t splits = 0;
    if (sep.k == V_NONE) {
        /* runs of whitespace; pieces collected in order */
        size_t *st = NULL, *en = NULL;
        size_t np = 0, cap = 0;
        if (!right) {
            size_t i = 0;
            while (rc == 0) {
                size_t j;
                while (i < s->len) { j = i; if (!u_isspace(u8_next(s->s, s->len, &j))) break; i = j; }
                if (i >= s->len) break;
                if (maxsplit >= 0 && splits >= maxsplit) {
                    size_t e = s->len;
                    while (e > i) {
                        size_t b2 = e - 1;
                        while (b2 > i && ((unsigned char)s->s[b2] & 0xc0) == 0x80) b2--;
                        size_t k = b2;
                        if (!u_isspace(u8_next(s->s, s->len, &k))) break;
                        e = b2;
                    }
                    rc = push_piece(x, l, s->s + i, e - i, sv.fl);
                    break;
                }
                size_t b0 = i;
                while (i < s->len) { j = i; if (u_isspace(u8_next(s->s, s->len, &j))) break; i = j; }
                rc = push_piece(x, l, s->s + b0, i - b0, sv.fl);
                splits++;
            }
        } else {
            size_t e = s->len;
            while (rc == 0) {
                while (e > 0) {
                    size_t b2 = e - 1;
                    while (b2 > 0 && ((unsigned char)s->s[b2] & 0xc0) == 0x80) b2--;
                    size_t k = b2;
                    if (!u_isspace(u8_next(s->s, s->len, &k))) break;
                    e = b2;
                }
                if (e == 0) break;
                size_t b0 = e;
                if (maxsplit >= 0 && splits >= maxsplit) {
                    size_t i = 0, j;
                    while (i < e) { j = i; if (!u_isspace(u8_next(s->s, s->len, &j))) break; i = j; }
                    b0 = i;
                } else {
                    while (b0 > 0) {
                        size_t b2 = b0 - 1;
                        while (b2 > 0 && ((unsigned char)s->s[b2] & 0xc0) == 0x80) b2--;
                        size_t k = b2;
                        if (u_isspace(u8_next(s->s, s->len, &k))) break;
                        b0 = b2;
                    }
                }
                if (np == cap) {
                    cap = cap ? cap * 2 : 8;
                    size_t *ns = rf_realloc(st, cap * sizeof *ns), *ne = ns ? rf_realloc(en, cap * sizeof *ne) : NULL;
                    if (ns) st = ns;
                    if (ne) en = ne;
                    if (!ns || !ne) { rc = rx_oom(x); break; }
                }
                st[np] = b0;
                en[np++] = e;
                splits++;
                if (maxsplit >= 0 && splits > maxsplit) break;
                e = b0;
            }
            for (size_t k = np; rc == 0 && k > 0; k--) rc = push_piece(x, l, s->s + st[k - 1], en[k - 1] - st[k - 1], sv.fl);
        }
        rf_free(st);
        rf_free(en);
    } else {
        const tstr *p = sep.u.s;
        if (!right) {
            size_t i = 0;
            while (rc == 0) {
                const char *hit = (maxsplit < 0 || splits < maxsplit) ? memmem(s->s + i, s->len - i, p->s, p->len) : NULL;
                if (!hit) { rc = push_piece(x, l, s->s + i, s->len - i, sv.fl); break; }
                rc = push_piece(x, l, s->s + i, (size_t)(hit - s->s) - i, sv.fl);
                i = (size_t)(hit - s->s) + p->len;
                splits++;
            }
        } else {
            size_t e = s->len;
            tlist *rev = list_new(x, 0, FL_LIST);
            if (!rev) rc = -1;
            while (rc == 0) {
                size_t at = SIZE_MAX;
                if ((maxsplit < 0 || splits < maxsplit) && e >= p->len)
                    for (size_t k = e - p->len + 1; k > 0; k--)
                        if (!memcmp(s->s + k - 1, p->s, p->len)) { at = k - 1; break; }
                if (at == SIZE_MAX) { rc = push_piece(x, rev, s->s, e, sv.fl); break; }
                rc = push_piece(x, rev, s->s + at + p->len, e - at - p->len, sv.fl);
                e = at;
                splits++;
            }
            for (uint32_t k = rev ? rev->n : 0; rc == 0 && k > 0; k--) rc = list_push(x, l, v_ref(rev->v[k - 1]));
            if (rev) v_decref(v_obj(V_LIST, rev));
        }
    }
    if (rc < 0) { v_decref(v_obj(V_LIST, l)); return -1; }
    *out = v_obj(V_LIST, l);
    return 0;
}

int s_split(rx *x, tv s, tv sep, int64_t maxsplit, tv *out) { return split_impl(x, s, sep, maxsplit, false, out); }

int s_escape(rx *x, tv sv, tv *out) {
    const tstr *s = sv.u.s;
    sbuf b = {0};
    int rc = sb_put(x, &b, "", 0);
    size_t run = 0;
    for (size_t i = 0; i < s->len && rc == 0; i++) {
        const char *rep = NULL;
        switch (s->s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&#34;"; break;
        case '\'': rep = "&#39;"; break;
        default: run++; continue;
        }
        rc = sb_put(x, &b, s->s + i - run, run);
        run = 0;
        if (rc == 0) rc = sb_put(x, &b, rep, strlen(rep));
    }
    if (rc == 0) rc = sb_put(x, &b, s->s + s->len - run, run);
    if (rc < 0 || v_str_sb(x, &b, out) < 0) { sb_free(&b); return -1; }
    out->fl = VF_SAFE;
    return 0;
}

/* ---- printf-style "%" ---------------------------------------------------- */

static int pad_to(rx *x, sbuf *b, const char *s, size_t n, int64_t width, bool left, char fill) {
    int64_t len = (int64_t)u8_count(s, n);
    int rc = 0;
    if (!left) for (int64_t i = len; i < width && rc == 0; i++) rc = sb_putc(x, b, fill);
    if (rc == 0) rc = sb_put(x, b, s, n);
    if (left) for (int64_t i = len; i < width && rc == 0; i++) rc = sb_putc(x, b, ' ');
    return rc;
}

int str_percent(rx *x, tv fmt, tv args, tv *out) {
    const tstr *f = fmt.u.s;
    bool is_tuple = args.k == V_LIST && args.u.l->h.flavor == FL_TUPLE;
    bool mapping = args.k == V_DICT || (args.k == V_LIST && !is_tuple);
    const tv *items = is_tuple ? args.u.l->v : &args;
    uint32_t nitems = is_tuple ? args.u.l->n : 1, next = 0;
    bool used_map = false;
    sbuf b = {0};
    int rc = sb_put(x, &b, "", 0);
    size_t i = 0;
    while (i < f->len && rc == 0) {
        const char *pc = memchr(f->s + i, '%', f->len - i);
        size_t stop = pc ? (size_t)(pc - f->s) : f->len;
        rc = sb_put(x, &b, f->s + i, stop - i);
        if (!pc || rc < 0) break;
        i = stop + 1;
        if (i >= f->len) { rc = rx_fail(x, "incomplete format"); break; }
        tv arg = {0};
        bool have_arg = false;
        if (f->s[i] == '(') {
            size_t st = ++i;
            int depth = 1;
            while (i < f->len && depth) { if (f->s[i] == '(') depth++; else if (f->s[i] == ')') depth--; i++; }
            if (depth) { rc = rx_fail(x, "incomplete format key"); break; }
            if (args.k != V_DICT) { rc = rx_fail(x, "format requires a mapping"); break; }
            tv v;
            if (!dict_get_str(args.u.d, f->s + st, i - 1 - st, &v)) {
                rc = rx_fail(x, "KeyError: '%.*s'", (int)(i - 1 - st), f->s + st);
                break;
            }
            arg = v;
            have_arg = true;
            used_map = true;
        }
        bool left = false, plus = false, space = false, alt = false, zero = false;
        for (; i < f->len && strchr("-+ #0", f->s[i]); i++) {
            char c = f->s[i];
            left |= c == '-'; plus |= c == '+'; space |= c == ' '; alt |= c == '#'; zero |= c == '0';
        }
        int64_t width = -1, prec = -1;
        if (i < f->len && f->s[i] == '*') {
            i++;
            if (next >= nitems || items[next].k != V_INT) { rc = rx_fail(x, "* wants int"); break; }
            width = items[next++].u.i;
            if (width < -(1 << 20)) width = INT64_MAX; /* refused below, and never negated */
            if (width < 0) { left = true; width = -width; }
        } else { /* digits saturate past the limit below, so a long run cannot overflow */
            for (; i < f->len && f->s[i] >= '0' && f->s[i] <= '9'; i++)
                width = width > (1 << 20) ? width : (width < 0 ? 0 : width) * 10 + (f->s[i] - '0');
        }
        if (i < f->len && f->s[i] == '.') {
            i++;
            prec = 0;
            if (i < f->len && f->s[i] == '*') {
                i++;
                if (next >= nitems || items[next].k != V_INT) { rc = rx_fail(x, "* wants int"); break; }
                prec = items[next++].u.i;
            } else {
                for (; i < f->len && f->s[i] >= '0' && f->s[i] <= '9'; i++)
                    prec = prec > (1 << 20) ? prec : prec * 10 + (f->s[i] - '0');
            }
        }
        if (width > 1 << 20 || prec > 1 << 20) { rc = rx_fail(x, "width or precision too large"); break; }
        while (i < f->len && strchr("hlL", f->s[i])) i++;
        if (i >= f->len) { rc = rx_fail(x, "incomplete format"); break; }
        char conv = f->s[i++];
        if (conv == '%') { rc = sb_putc(x, &b, '%'); continue; }
        if (!have_arg) {
            if (next >= nitems) { rc = rx_fail(x, "not enough arguments for format string"); break; }
            arg = items[next++];
        }
        char spec[32], num[512];
        int sl = 0;
        spec[sl++] = '%';
        if (left) spec[sl++] = '-';
        if (plus) spec[sl++] = '+';
        if (space) spec[sl++] = ' ';
        if (alt && conv != 'o') spec[sl++] = '#';
        if (zero) spec[sl++] = '0';
        switch (conv) {
        case 's': case 'r': case 'a': {
            sbuf t = {0};
            rc = conv == 's' ? v_write_str(x, &t, arg, 0) : v_write_repr(x, &t, arg, 0);
            if (rc == 0) {
                size_t n = t.n;
                if (prec >= 0) { /* truncate to prec code points */
                    size_t k = 0;
                    for (int64_t c = 0; c < prec && k < t.n; c++) u8_next(t.p, t.n, &k);
                    n = k;
                }
                rc = pad_to(x, &b, t.p ? t.p : "", n, width, left, ' ');
            }
            sb_free(&t);
            break;
        }
        case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': case 'c': {
            int64_t iv = 0;
            if (arg.k == V_INT || arg.k == V_BOOL) iv = arg.k == V_INT ? arg.u.i : arg.u.b;
            else if (arg.k == V_FLOAT && (conv == 'd' || conv == 'i' || conv == 'u') && isfinite(arg.u.f) && fabs(arg.u.f) < 9e18) iv = (int64_t)arg.u.f;
            else if (conv == 'c' && arg.k == V_STR && u8_count(arg.u.s->s, arg.u.s->len) == 1) {
                rc = pad_to(x, &b, arg.u.s->s, arg.u.s->len, width, left, ' ');
                break;
            } else if (arg.k == V_UNDEF) { rc = v_undef_error(x, arg); break; }
            else {
                rc = rx_fail(x, "%%%c format: %s is required, not %s", conv,
                             conv == 'd' || conv == 'i' || conv == 'u' ? "a real number" : "an integer", v_type_name(arg));
                break;
            }
            if (conv == 'c') {
                char enc[4];
                if (iv < 0 || iv > 0x10ffff) { rc = rx_fail(x, "%%c arg not in range(0x110000)"); break; }
                rc = pad_to(x, &b, enc, (size_t)u8_put(enc, (uint32_t)iv), width, left, ' ');
                break;
            }
            /* digits of the magnitude (zero-filled to the precision), then
             * sign and prefix, then padding: Python's order */
            unsigned long long mag = iv < 0 ? 0ull - (unsigned long long)iv : (unsigned long long)iv;
            char digits[128], pre[8];
            const char *df = conv == 'x' ? "%.*llx" : conv == 'X' ? "%.*llX" : conv == 'o' ? "%.*llo" : "%.*llu";
            snprintf(digits, sizeof digits, df, (int)(prec > 100 ? 100 : prec < 0 ? 1 : prec), mag);
            int pl = 0;
            if (iv < 0) pre[pl++] = '-';
            else if (plus) pre[pl++] = '+';
            else if (space) pre[pl++] = ' ';
            if (alt && (conv == 'x' || conv == 'X' || conv == 'o')) {
                pre[pl++] = '0';
                pre[pl++] = conv == 'o' ? 'o' : conv;
            }
            pre[pl] = 0;
            int64_t total = pl + (int64_t)strlen(digits), padn = width > total ? width - total : 0;
            if (!left && !zero) for (int64_t k = 0; k < padn && rc == 0; k++) rc = sb_putc(x, &b, ' ');
            if (rc == 0) rc = sb_put(x, &b, pre, (size_t)pl);
            if (!left && zero) for (int64_t k = 0; k < padn && rc == 0; k++) rc = sb_putc(x, &b, '0');
            if (rc == 0) rc = sb_put(x, &b, digits, strlen(digits));
            if (left) for (int64_t k = 0; k < padn && rc == 0; k++) rc = sb_putc(x, &b, ' ');
            break;
        }
        case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': {
            double d = 0;
            if (v_is_num(arg)) d = v_num(arg);
            else if (arg.k == V_UNDEF) { rc = v_undef_error(x, arg); break; }
            else { rc = rx_fail(x, "must be real number, not %s", v_type_name(arg)); break; }
            if (width >= 0) sl += snprintf(spec + sl, sizeof spec - (size_t)sl, "%" PRId64, width);
            sl += snprintf(spec + sl, sizeof spec - (size_t)sl, ".%" PRId64, prec >= 0 ? prec : 6);
            spec[sl++] = conv;
            spec[sl] = 0;
            snprintf(num, sizeof num, spec, d);
            rc = sb_put(x, &b, num, strlen(num));
            break;
        }
        default:
            rc = rx_fail(x, "unsupported format character '%c' (0x%x)", conv, (unsigned char)conv);
        }
    }
    if (rc == 0 && !mapping && !used_map && next < nitems)
        rc = rx_fail(x, "not all arguments converted during string formatting");
    if (rc < 0 || v_str_sb(x, &b, out) < 0) { sb_free(&b); return -1; }
    out->fl = fmt.fl;
    return 0;
}

/* ---- str.format -------------------------------------------------------- */

/* format(value, spec) for the spec mini-language subset:
 * [[fill]align][sign][#][0][width][,|_][.precision][type] */
static int format_value(rx *x, sbuf *b, tv v, const char *sp, size_t sn) {
    if (sn == 0) return v_write_str(x, b, v, 0);
    size_t i = 0;
    uint32_t fill = ' ';
    char align = 0, sign = '-', type = 0, group = 0;
    bool alt = false;
    int64_t width = -1, prec = -1;
    size_t j = 0;
    uint32_t c0 = u8_next(sp, sn, &j);
    if (j < sn && strchr("<>=^", sp[j])) { fill = c0; align = sp[j]; i = j + 1; }
    else if (strchr("<>=^", sp[0])) { align = sp[0]; i = 1; }
    if (i < sn && strchr("+- ", sp[i])) sign = sp[i++];
    if (i < sn && sp[i] == '#') { alt = true; i++; }
    if (i < sn && sp[i] == '0') { if (!align) { fill = '0'; align = '='; } i++; }
    /* digits past the limit stop the accumulation (still refused below) */
    for (; i < sn && sp[i] >= '0' && sp[i] <= '9'; i++)
        if (width <= 1 << 20) width = (width < 0 ? 0 : width) * 10 + (sp[i] - '0');
    if (i < sn && (sp[i] == ',' || sp[i] == '_')) group = sp[i++];
    if (i < sn && sp[i] == '.') {
        prec = 0;
        for (i++; i < sn && sp[i] >= '0' && sp[i] <= '9'; i++)
            if (prec <= 1 << 20) prec = prec * 10 + (sp[i] - '0');
    }
    if (i < sn) type = sp[i++];
    if (i != sn || width > 1 << 20 || prec > 1 << 20) return rx_fail(x, "Invalid format specifier");
    char body[600];
    const char *text;
    size_t tn;
    sbuf tmp = {0};
    bool numeric = false;
    if (v.k == V_STR && (!type || type == 's')) {
        text = v.u.s->s;
        tn = v.u.s->len;
        if (prec >= 0) {
            size_t k = 0;
            for (int64_t c = 0; c < prec && k < tn; c++) u8_next(text, tn, &k);
            tn = k;
        }
        if (!align) align = '<';
    } else if ((v.k == V_INT || v.k == V_BOOL) && (!type || strchr("dbxXoc", type))) {
        int64_t iv = v.k == V_INT ? v.u.i : v.u.b;
        uint64_t mag = iv < 0 ? (uint64_t)0 - (uint64_t)iv : (uint64_t)iv;
        char digits[80];
        int base = type == 'b' ? 2 : type == 'o' ? 8 : (type == 'x' || type == 'X') ? 16 : 10;
        int nd = 0;
        do {
            int d = (int)(mag % (uint64_t)base);
            digits[nd++] = (char)(d < 10 ? '0' + d : (type == 'X' ? 'A' : 'a') + d - 10);
            mag /= (uint64_t)base;
        } while (mag);
        int k = 0;
        if (iv < 0) body[k++] = '-';
        else if (sign == '+') body[k++] = '+';
        else if (sign == ' ') body[k++] = ' ';
        if (alt && base != 10) { body[k++] = '0'; body[k++] = type == 'X' ? 'X' : type; }
        for (int d = nd - 1; d >= 0; d--) {
            body[k++] = digits[d];
            if (group && d > 0 && d % (base == 10 ? 3 : 4) == 0) body[k++] = group;
        }
        body[k] = 0;
        text = body;
        tn = (size_t)k;
        numeric = true;
    } else if (v_is_num(v) && (!type || strchr("eEfFgG%", type))) {
        double d = v_num(v);
        char t = type ? type : 'g';
        if (t == '%') d *= 100;
        if (!type && prec < 0) fmt_float(d, body);
        else {
            char spec[32];
            snprintf(spec, sizeof spec, "%%%s%s.%" PRId64 "%c", sign == '+' ? "+" : sign == ' ' ? " " : "",
                     alt ? "#" : "", prec >= 0 ? prec : 6, t == '%' ? 'f' : t);
            snprintf(body, sizeof body, spec, d);
            if (t == '%') strcat(body, "%");
            if (!type && !strpbrk(body, ".einf")) strcat(body, ".0");
        }
        if (!type && prec < 0 && sign != '-' && d >= 0) {
            memmove(body + 1, body, strlen(body) + 1);
            body[0] = sign;
        }
        text = body;
        tn = strlen(body);
        numeric = true;
    } else {
        return rx_fail(x, "unsupported format string passed to %s.__format__", v_type_name(v));
    }
    if (!align) align = numeric ? '>' : '<';
    int64_t len = (int64_t)u8_count(text, tn), padn = width > len ? width - len : 0;
    int64_t lpad = align == '<' ? 0 : align == '^' ? padn / 2 : padn;
    int rc = 0;
    size_t sign_len = 0;
    if (align == '=' && tn && strchr("+- ", text[0])) sign_len = 1;
    if (align == '=') rc = sb_put(x, b, text, sign_len);
    for (int64_t k = 0; k < lpad && rc == 0; k++) rc = put_cp(x, b, fill);
    if (rc == 0) rc = sb_put(x, b, text + sign_len, tn - sign_len);
    for (int64_t k = lpad; k < padn && rc == 0; k++) rc = put_cp(x, b, fill);
    sb_free(&tmp);
    return rc;
}

int str_format(rx *x, tv fmt, const targs *a, tv *out) {
    const tstr *f = fmt.u.s;
    sbuf b = {0};
    int rc = sb_put(x, &b, "", 0);
    uint32_t auto_idx = 0;
    int numbering = 0; /* 1 automatic ({}), 2 manual ({0}): Python forbids mixing */
    size_t i = 0;
    while (i < f->len && rc == 0) {
        char c = f->s[i];
        if (c == '}') {
            if (i + 1 < f->len && f->s[i + 1] == '}') { rc = sb_putc(x, &b, '}'); i += 2; continue; }
            rc = rx_fail(x, "Single '}' encountered in format string");
            break;
        }
        if (c != '{') { rc = sb_putc(x, &b, c); i++; continue; }
        if (i + 1 < f->len && f->s[i + 1] == '{') { rc = sb_putc(x, &b, '{'); i += 2; continue; }
        size_t st = ++i;
        int depth = 1;
        while (i < f->len && depth) {
            if (f->s[i] == '{') depth++;
            else if (f->s[i] == '}') depth--;
            if (depth) i++;
        }
        if (depth) { rc = rx_fail(x, "expected '}' before end of string"); break; }
        const char *field = f->s + st;
        size_t fl = i - st;
        i++;
        const char *colon = memchr(field, ':', fl), *bang = memchr(field, '!', fl);
        if (bang && colon && bang > colon) bang = NULL;
        size_t name_len = bang ? (size_t)(bang - field) : colon ? (size_t)(colon - field) : fl;
        char conv = 0;
        if (bang) { /* "!" + one of r, s, a, then ":" or the end */
            const char *after = bang + 2;
            if (bang + 1 >= field + fl) { rc = rx_fail(x, "end of string while looking for conversion specifier"); break; }
            if (after < field + fl && *after != ':') { rc = rx_fail(x, "expected ':' after conversion specifier"); break; }
            conv = bang[1];
            if (conv != 'r' && conv != 's' && conv != 'a') { rc = rx_fail(x, "Unknown conversion specifier %c", conv); break; }
            colon = after < field + fl ? after : NULL;
        }
        const char *spec = colon ? colon + 1 : "";
        size_t spec_len = colon ? fl - (size_t)(colon + 1 - field) : 0;
        /* first part: index, name or empty */
        size_t k = 0;
        while (k < name_len && field[k] != '.' && field[k] != '[') k++;
        tv cur;
        bool owned = false;
        bool all_digits = k > 0;
        for (size_t q = 0; q < k; q++) all_digits &= field[q] >= '0' && field[q] <= '9';
        bool is_index = k == 0 || all_digits;
        if (is_index) {
            int want = k == 0 ? 1 : 2;
            if (numbering && numbering != want) {
                rc = rx_fail(x, want == 1 ? "cannot switch from manual field specification to automatic field numbering"
                                          : "cannot switch from automatic field numbering to manual field specification");
                break;
            }
            numbering = want;
        }
        if (k == 0) {
            if (auto_idx >= a->npos) { rc = rx_fail(x, "Replacement index %u out of range for positional args tuple", auto_idx); break; }
            cur = a->pos[auto_idx++];
        } else if (all_digits) {
            uint32_t idx = k > 9 ? UINT32_MAX : (uint32_t)strtoul(field, NULL, 10);
            if (idx >= a->npos) { rc = rx_fail(x, "Replacement index %u out of range for positional args tuple", idx); break; }
            cur = a->pos[idx];
        } else {
            bool found = false;
            for (uint32_t q = 0; q < a->nkw; q++)
                if (strlen(a->kwn[q]) == k && !memcmp(a->kwn[q], field, k)) { cur = a->kwv[q]; found = true; }
            if (!found) { rc = rx_fail(x, "KeyError: '%.*s'", (int)k, field); break; }
        }
        /* .attr and [key] parts, with the sandbox's lookups */
        while (k < name_len && rc == 0) {
            tv next;
            if (field[k] == '.') {
                size_t e = ++k;
                while (e < name_len && field[e] != '.' && field[e] != '[') e++;
                rc = rx_getattr(x, cur, field + k, e - k, &next);
                k = e;
            } else {
                size_t e = ++k;
                while (e < name_len && field[e] != ']') e++;
                tv key;
                bool digits = e > k;
                for (size_t q = k; q < e; q++) if (field[q] < '0' || field[q] > '9') digits = false;
                if (digits) key = v_int(strtoll(field + k, NULL, 10));
                else if ((rc = v_str(x, field + k, e - k, &key)) < 0) break;
                rc = rx_getitem(x, cur, key, &next);
                v_decref(key);
                k = e + 1;
            }
            if (rc < 0) break;
            if (owned) v_decref(cur);
            cur = next;
            owned = true;
        }
        if (rc == 0) {
            if (conv == 'r' || conv == 'a') {
                sbuf t = {0};
                rc = v_write_repr(x, &t, cur, 0);
                tv s;
                if (rc == 0) rc = v_str_sb(x, &t, &s);
                else sb_free(&t);
                if (rc == 0) { rc = format_value(x, &b, s, spec, spec_len); v_decref(s); }
            } else {
                rc = format_value(x, &b, cur, spec, spec_len);
            }
        }
        if (owned) v_decref(cur);
    }
    if (rc < 0 || v_str_sb(x, &b, out) < 0) { sb_free(&b); return -1; }
    out->fl = fmt.fl;
    return 0;
}

/* ---- method table ------------------------------------------------------ */

typedef int (*meth_fn)(rx *x, tv self, const tv *p, const targs *a, tv *out);
enum { M_OK = 0, M_UNSAFE = 1, M_UNSUPPORTED = 2 };
typedef struct method_def {
    uint8_t kind;     /* vkind of self */
    uint8_t status;   /* M_* */
    const char *name;
    meth_fn fn;
    const char *spec; /* NULL: fn binds its own arguments */
} method_def;

static int want_str(rx *x, tv v, const char *what) {
    if (v.k == V_STR) return 0;
    if (v.k == V_UNDEF) return v_undef_error(x, v);
    return rx_fail(x, "%s must be str, not %s", what, v_type_name(v));
}

static int want_opt_int(rx *x, tv v, int64_t *out, bool *has) {
    *has = false;
    if (v.k == V_NONE) return 0;
    if (v.k != V_INT && v.k != V_BOOL)
        return rx_fail(x, "slice indices must be integers or None");
    *out = v.k == V_INT ? v.u.i : v.u.b;
    *has = true;
    return 0;
}

static int m_upper(rx *x, tv s, const tv *p, const targs *a, tv *o) { return s_case(x, s, 0, o); }
static int m_lower(rx *x, tv s, const tv *p, const targs *a, tv *o) { return s_case(x, s, 1, o); }
static int m_title(rx *x, tv s, const tv *p, const targs *a, tv *o) { return s_case(x, s, 2, o); }
static int m_capitalize(rx *x, tv s, const tv *p, const targs *a, tv *o) { return s_case(x, s, 3, o); }
static int m_swapcase(rx *x, tv s, const tv *p, const targs *a, tv *o) { return s_case(x, s, 4, o); }
static int m_strip(rx *x, tv s, const tv *p, const targs *a, tv *o) { return s_strip(x, s, p[0], 3, o); }
static int m_lstrip(rx *x, tv s, const tv *p, const targs *a, tv *o) { return s_strip(x, s, p[0], 1, o); }
static int m_rstrip(rx *x, tv s, const tv *p, const targs *a, tv *o) { return s_strip(x, s, p[0], 2, o); }

static int m_split_common(rx *x, tv s, const tv *p, bool right, tv *o) {
    int64_t ms = -1;
    if (p[1].k != V_INT && p[1].k != V_BOOL) return rx_fail(x, "maxsplit must be an integer");
    ms = p[1].k == V_INT ? p[1].u.i : p[1].u.b;
    return split_impl(x, s, p[0], ms, right, o);
}
static int m_split(rx *x, tv s, const tv *p, const targs *a, tv *o) { return m_split_common(x, s, p, false, o); }
static int m_rsplit(rx *x, tv s, const tv *p, const targs *a, tv *o) { return m_split_common(x, s, p, true, o); }

static int m_splitlines(rx *x, tv s, const tv *p, const targs *a, tv *o) {
    const tstr *t = s.u.s;
    bool keep = v_truthy(p[0]);
    tlist *l = list_new(x, 0, FL_LIST);
    if (!l) return -1;
    size_t i = 0, st = 0;
    int rc = 0;
    while (i < t->len && rc == 0) {
        size_t b0 = i;
        uint32_t cp = u8_next(t->s, t->len, &i);
        bool br = cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d ||
                  cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        if (!br) continue;
        if (cp == '\r' && i < t->len && t->s[i] == '\n') i++;
        rc = push_piece(x, l, t->s + st, (keep ? i : b0) - st, s.fl);
        st = i;
    }
    if (rc == 0 && st < t->len) rc = push_piece(x, l, t->s + st, t->len - st, s.fl);
    if (rc < 0) { v_decref(v_obj(V_LIST, l)); return -1; }
    *o = v_obj(V_LIST, l);
    return 0;
}

/* Narrows s to the code points [start:end] (Python slice rules); returns
 * the byte offset of the window and its code point offset. */
static int window(rx *x, const tstr *s, tv ps, tv pe, size_t *b, size_t *e, int64_t *cp0) {
    int64_t st = 0, en = 0;
    bool hs, he;
    if (want_opt_int(x, ps, &st, &hs) < 0 || want_opt_int(x, pe, &en, &he) < 0) return -1;
    int64_t n = s->ascii ? (int64_t)s->len : (int64_t)u8_count(s->s, s->len);
    slice_indices(n, &st, &en, 1, hs, he);
    if (en < st) en = st;
    size_t k = 0;
    for (int64_t c = 0; c < st; c++) u8_next(s->s, s->len, &k);
    *b = k;
    for (int64_t c = st; c < en; c++) u8_next(s->s, s->len, &k);
    *e = k;
    *cp0 = st;
    return 0;
}

static int find_impl(rx *x, tv s, const tv *p, bool reverse, bool raise, tv *o) {
    if (want_str(x, p[0], "substring") < 0) return -1;
    size_t b, e;
    int64_t cp0 = 0;
    if (window(x, s.u.s, p[1], p[2], &b, &e, &cp0) < 0) return -1;
    const tstr *t = s.u.s, *sub = p[0].u.s;
    int64_t at = -1;
    if (sub->len <= e - b) {
        if (!reverse) {
            const char *h = sub->len ? memmem(t->s + b, e - b, sub->s, sub->len) : t->s + b;
            if (h) at = (int64_t)(h - t->s);
        } else {
            for (size_t k = e - sub->len + 1; k > b; k--)
                if (!memcmp(t->s + k - 1, sub->s, sub->len)) { at = (int64_t)(k - 1); break; }
        }
    }
    if (at < 0) {
        if (raise) return rx_fail(x, "substring not found");
        *o = v_int(-1);
        return 0;
    }
    *o = v_int(cp0 + (int64_t)u8_count(t->s + b, (size_t)at - b));
    return 0;
}
static int m_find(rx *x, tv s, const tv *p, const targs *a, tv *o) { return find_impl(x, s, p, false, false, o); }
static int m_rfind(rx *x, tv s, const tv *p, const targs *a, tv *o) { return find_impl(x, s, p, true, false, o); }
static int m_index(rx *x, tv s, const tv *p, const targs *a, tv *o) { return find_impl(x, s, p, false, true, o); }
static int m_rindex(rx *x, tv s, const tv *p, const targs *a, tv *o) { return find_impl(x, s, p, true, true, o); }

static int m_count(rx *x, tv s, const tv *p, const targs *a, tv *o) {
    if (want_str(x, p[0], "substring") < 0) return -1;
    size_t b, e;
    int64_t cp0 = 0;
    if (window(x, s.u.s, p[1], p[2], &b, &e, &cp0) < 0) return -1;
    const tstr *t = s.u.s, *sub = p[0].u.s;
    int64_t n = 0;
    if (sub->len == 0) n = (int64_t)u8_count(t->s + b, e - b) + 1;
    else
        for (size_t k = b; k + sub->len <= e;) {
            const char *h = memmem(t->s + k, e - k, sub->s, sub->len);
            if (!h) break;
            n++;
            k = (size_t)(h - t->s) + sub->len;
        }
    *o = v_int(n);
    return 0;
}

static int affix_impl(rx *x, tv s, const tv *p, bool end, tv *o) {
    size_t b, e;
    int64_t cp0 = 0;
    if (window(x, s.u.s, p[1], p[2], &b, &e, &cp0) < 0) return -1;
    const tstr *t = s.u.s;
    tv pre = p[0];
    const tv *cands = &pre;
    uint32_t nc = 1;
    if (pre.k == V_LIST && pre.u.l->h.flavor == FL_TUPLE) { cands = pre.u.l->v; nc = pre.u.l->n; }
    else if (pre.k != V_STR)
        return rx_fail(x, "%s first arg must be str or a tuple of str, not %s", end ? "endswith" : "startswith", v_type_name(pre));
    for (uint32_t i = 0; i < nc; i++) {
        if (cands[i].k != V_STR) return rx_fail(x, "tuple for %s must only contain str", end ? "endswith" : "startswith");
        const tstr *c = cands[i].u.s;
        if (c->len <= e - b && !memcmp(t->s + (end ? e - c->len : b), c->s, c->len)) { *o = v_bool(true); return 0; }
    }
    *o = v_bool(false);
    return 0;
}
static int m_startswith(rx *x, tv s, const tv *p, const targs *a, tv *o) { return affix_impl(x, s, p, false, o); }
static int m_endswith(rx *x, tv s, const tv *p, const targs *a, tv *o) { return affix_impl(x, s, p, true, o); }

static int m_replace(rx *x, tv s, const tv *p, const targs *a, tv *o) {
    if (want_str(x, p[0], "replace() argument 1") < 0 || want_str(x, p[1], "replace() argument 2") < 0) return -1;
    if (p[2].k != V_INT && p[2].k != V_BOOL) return rx_fail(x, "count must be an integer");
    return s_replace(x, s, p[0], p[1], p[2].k == V_INT ? p[2].u.i : p[2].u.b, o);
}

static int m_join(rx *x, tv s, const tv *p, const targs *a, tv *o) {
    tlist *l;
    if (v_iter_list(x, p[0], &l) < 0) return -1;
    sbuf b = {0};
    int rc = sb_put(x, &b, "", 0);
    for (uint32_t i = 0; i < l->n && rc == 0; i++) {
        if (l->v[i].k != V_STR) { rc = rx_fail(x, "sequence item %u: expected str instance, %s found", i, v_type_name(l->v[i])); break; }
        if (i) rc = sb_put(x, &b, s.u.s->s, s.u.s->len);
        if (rc == 0) rc = sb_put(x, &b, l->v[i].u.s->s, l->v[i].u.s->len);
    }
    v_decref(v_obj(V_LIST, l));
    if (rc < 0 || v_str_sb(x, &b, o) < 0) { sb_free(&b); return -1; }
    o->fl = s.fl;
    return 0;
}

static int m_format(rx *x, tv s, const tv *p, const targs *a, tv *o) { return str_format(x, s, a, o); }

static int m_pad(rx *x, tv s, const tv *p, int how, tv *o) {
    if (p[0].k != V_INT && p[0].k != V_BOOL) return rx_fail(x, "width must be an integer");
    int64_t w = p[0].k == V_INT ? p[0].u.i : p[0].u.b, len;
    uint32_t fill = ' ';
    if (how != 3) {
        if (p[1].k != V_STR || u8_count(p[1].u.s->s, p[1].u.s->len) != 1)
            return rx_fail(x, "The fill character must be exactly one character long");
        size_t k = 0;
        fill = u8_next(p[1].u.s->s, p[1].u.s->len, &k);
    }
    v_len(x, s, &len);
    if (w <= len) { *o = v_ref(s); return 0; }
    if (w > (int64_t)x->max_output) return rx_fail(x, "width too large");
    int64_t marg = w - len, left = how == 0 ? 0 : how == 1 ? marg : how == 2 ? marg / 2 + (marg & w & 1) : marg;
    sbuf b = {0};
    int rc = 0;
    const tstr *t = s.u.s;
    size_t body = 0;
    if (how == 3 && t->len && (t->s[0] == '+' || t->s[0] == '-')) { rc = sb_putc(x, &b, t->s[0]); body = 1; fill = '0'; }
    else if (how == 3) fill = '0';
    for (int64_t i = 0; i < left && rc == 0; i++) rc = put_cp(x, &b, fill);
    if (rc == 0) rc = sb_put(x, &b, t->s + body, t->len - body);
    for (int64_t i = left; i < marg && rc == 0; i++) rc = put_cp(x, &b, fill);
    if (rc < 0 || v_str_sb(x, &b, o) < 0) { sb_free(&b); return -1; }
    o->fl = s.fl;
    return 0;
}
static int m_ljust(rx *x, tv s, const tv *p, const targs *a, tv *o) { return m_pad(x, s, p, 0, o); }
static int m_rjust(rx *x, tv s, const tv *p, const targs *a, tv *o) { return m_pad(x, s, p, 1, o); }
static int m_center(rx *x, tv s, const tv *p, const targs *a, tv *o) { return m_pad(x, s, p, 2, o); }
static int m_zfill(rx *x, tv s, const tv *p, const targs *a, tv *o) { return m_pad(x, s, p, 3, o); }

static int affix_remove(rx *x, tv s, const tv *p, bool end, tv *o) {
    if (want_str(x, p[0], "argument") < 0) return -1;
    const tstr *t = s.u.s, *a2 = p[0].u.s;
    if (a2->len && a2->len <= t->len && !memcmp(t->s + (end ? t->len - a2->len : 0), a2->s, a2->len)) {
        if (v_str(x, t->s + (end ? 0 : a2->len), t->len - a2->len, o) < 0) return -1;
        o->fl = s.fl;
        return 0;
    }
    *o = v_ref(s);
    return 0;
}
static int m_removeprefix(rx *x, tv s, const tv *p, const targs *a, tv *o) { return affix_remove(x, s, p, false, o); }
static int m_removesuffix(rx *x, tv s, const tv *p, const targs *a, tv *o) { return affix_remove(x, s, p, true, o); }

static int partition_impl(rx *x, tv s, const tv *p, bool right, tv *o) {
    if (want_str(x, p[0], "separator") < 0) return -1;
    const tstr *t = s.u.s, *sep = p[0].u.s;
    if (!sep->len) return rx_fail(x, "empty separator");
    int64_t at = -1;
    if (!right) {
        const char *h = memmem(t->s, t->len, sep->s, sep->len);
        if (h) at = h - t->s;
    } else if (sep->len <= t->len) {
        for (size_t k = t->len - sep->len + 1; k > 0; k--)
            if (!memcmp(t->s + k - 1, sep->s, sep->len)) { at = (int64_t)k - 1; break; }
    }
    tlist *l = list_new(x, 3, FL_TUPLE);
    if (!l) return -1;
    int rc;
    if (at < 0) {
        rc = right ? push_piece(x, l, "", 0, s.fl) : push_piece(x, l, t->s, t->len, s.fl);
        if (rc == 0) rc = push_piece(x, l, "", 0, s.fl);
        if (rc == 0) rc = right ? push_piece(x, l, t->s, t->len, s.fl) : push_piece(x, l, "", 0, s.fl);
    } else {
        rc = push_piece(x, l, t->s, (size_t)at, s.fl);
        if (rc == 0) rc = push_piece(x, l, sep->s, sep->len, s.fl);
        if (rc == 0) rc = push_piece(x, l, t->s + at + sep->len, t->len - (size_t)at - sep->len, s.fl);
    }
    if (rc < 0) { v_decref(v_obj(V_LIST, l)); return -1; }
    *o = v_obj(V_LIST, l);
    return 0;
}
static int m_partition(rx *x, tv s, const tv *p, const targs *a, tv *o) { return partition_impl(x, s, p, false, o); }
static int m_rpartition(rx *x, tv s, const tv *p, const targs *a, tv *o) { return partition_impl(x, s, p, true, o); }

/* is*() predicates: every code point satisfies the class, at least one */
static int is_class(tv s, bool (*pred)(uint32_t), tv *o) {
    const tstr *t = s.u.s;
    size_t i = 0;
    bool ok = t->len > 0;
    while (i < t->len && ok) ok = pred(u8_next(t->s, t->len, &i));
    *o = v_bool(ok);
    return 0;
}
static bool is_alnum(uint32_t c) { return u_isalpha(c) || u_isnumeric(c); }
static int m_isalpha(rx *x, tv s, const tv *p, const targs *a, tv *o) { return is_class(s, u_isalpha, o); }
static int m_isalnum(rx *x, tv s, const tv *p, const targs *a, tv *o) { return is_class(s, is_alnum, o); }
static int m_isdigit(rx *x, tv s, const tv *p, const targs *a, tv *o) { return is_class(s, u_isdigit, o); }
static int m_isdecimal(rx *x, tv s, const tv *p, const targs *a, tv *o) { return is_class(s, u_isdecimal, o); }
static int m_isnumeric(rx *x, tv s, const tv *p, const targs *a, tv *o) { return is_class(s, u_isnumeric, o); }
static int m_isspace(rx *x, tv s, const tv *p, const targs *a, tv *o) { return is_class(s, u_isspace, o); }

static int case_pred(tv s, bool upper, tv *o) {
    const tstr *t = s.u.s;
    size_t i = 0;
    bool cased = false, ok = true;
    while (i < t->len) {
        uint32_t cp = u8_next(t->s, t->len, &i);
        if (u_istitle(cp) || (upper ? u_islower(cp) : u_isupper(cp))) ok = false;
        if (upper ? u_isupper(cp) : u_islower(cp)) cased = true;
    }
    *o = v_bool(ok && cased);
    return 0;
}
static int m_islower(rx *x, tv s, const tv *p, const targs *a, tv *o) { return case_pred(s, false, o); }
static int m_isupper(rx *x, tv s, const tv *p, const targs *a, tv *o) { return case_pred(s, true, o); }

static int m_istitle(rx *x, tv s, const tv *p, const targs *a, tv *o) {
    const tstr *t = s.u.s;
    size_t i = 0;
    bool prev_cased = false, ok = true, any = false;
    while (i < t->len && ok) {
        uint32_t cp = u8_next(t->s, t->len, &i);
        if (u_isupper(cp) || u_istitle(cp)) { if (prev_cased) ok = false; prev_cased = true; any = true; }
        else if (u_islower(cp)) { if (!prev_cased) ok = false; prev_cased = true; any = true; }
        else prev_cased = false;
    }
    *o = v_bool(ok && any);
    return 0;
}

/* dict */
static int m_get(rx *x, tv d, const tv *p, const targs *a, tv *o) {
    tv v;
    int f = dict_get(x, d.u.d, p[0], &v);
    if (f < 0) return -1;
    *o = f ? v_ref(v) : v_ref(p[1]);
    return 0;
}

static int dict_view(rx *x, tv d, int flavor, tv *o) {
    const tdict *dd = d.u.d;
    tlist *l = list_new(x, dd->n, flavor);
    if (!l) return -1;
    for (uint32_t i = 0; i < dd->n; i++) {
        if (flavor == FL_KEYS) l->v[l->n++] = v_ref(dd->e[i].k);
        else if (flavor == FL_VALUES) l->v[l->n++] = v_ref(dd->e[i].v);
        else {
            tlist *pr = list_new(x, 2, FL_TUPLE);
            if (!pr) { v_decref(v_obj(V_LIST, l)); return -1; }
            pr->v[0] = v_ref(dd->e[i].k);
            pr->v[1] = v_ref(dd->e[i].v);
            pr->n = 2;
            l->v[l->n++] = v_obj(V_LIST, pr);
        }
    }
    *o = v_obj(V_LIST, l);
    return 0;
}
static int m_items(rx *x, tv d, const tv *p, const targs *a, tv *o) { return dict_view(x, d, FL_ITEMS, o); }
static int m_keys(rx *x, tv d, const tv *p, const targs *a, tv *o) { return dict_view(x, d, FL_KEYS, o); }
static int m_values(rx *x, tv d, const tv *p, const targs *a, tv *o) { return dict_view(x, d, FL_VALUES, o); }

static int m_dcopy(rx *x, tv d, const tv *p, const targs *a, tv *o) {
    tdict *n = dict_new(x);
    if (!n) return -1;
    for (uint32_t i = 0; i < d.u.d->n; i++)
        if (dict_set(x, n, v_ref(d.u.d->e[i].k), v_ref(d.u.d->e[i].v)) < 0) {
            v_decref(v_obj(V_DICT, n));
            return -1;
        }
    *o = v_obj(V_DICT, n);
    return 0;
}

/* list */
static int m_lcount(rx *x, tv l, const tv *p, const targs *a, tv *o) {
    int64_t n = 0;
    for (uint32_t i = 0; i < l.u.l->n; i++) {
        bool e;
        if (v_eq(x, l.u.l->v[i], p[0], &e, 0) < 0) return -1;
        n += e;
    }
    *o = v_int(n);
    return 0;
}

static int m_lindex(rx *x, tv l, const tv *p, const targs *a, tv *o) {
    for (uint32_t i = 0; i < l.u.l->n; i++) {
        bool e;
        if (v_eq(x, l.u.l->v[i], p[0], &e, 0) < 0) return -1;
        if (e) { *o = v_int(i); return 0; }
    }
    return rx_fail(x, "value is not in list");
}

static int m_lcopy(rx *x, tv l, const tv *p, const targs *a, tv *o) {
    tlist *n = list_new(x, l.u.l->n, FL_LIST);
    if (!n) return -1;
    for (uint32_t i = 0; i < l.u.l->n; i++) n->v[n->n++] = v_ref(l.u.l->v[i]);
    *o = v_obj(V_LIST, n);
    return 0;
}

/* loop, cycler */
static int m_cycle(rx *x, tv self, const tv *p, const targs *a, tv *o) {
    tloop *lp = (tloop *)self.u.o;
    if (a->nkw) return rx_fail(x, "cycle() takes no keyword arguments");
    if (a->npos == 0) return rx_fail(x, "no items for cycling given");
    *o = v_ref(a->pos[lp->i0 % a->npos]);
    return 0;
}

static int m_changed(rx *x, tv self, const tv *p, const targs *a, tv *o) {
    tloop *lp = (tloop *)self.u.o;
    tlist *args = list_new(x, a->npos, FL_TUPLE);
    if (!args) return -1;
    for (uint32_t i = 0; i < a->npos; i++) args->v[args->n++] = v_ref(a->pos[i]);
    tv t = v_obj(V_LIST, args);
    bool same = false;
    if (lp->has_changed && v_eq(x, lp->changed, t, &same, 0) < 0) { v_decref(t); return -1; }
    if (lp->has_changed && same) { v_decref(t); *o = v_bool(false); return 0; }
    v_decref(lp->changed);
    lp->changed = t;
    lp->has_changed = true;
    *o = v_bool(true);
    return 0;
}

static int m_cnext(rx *x, tv self, const tv *p, const targs *a, tv *o) {
    tcycler *c = (tcycler *)self.u.o;
    if (!c->items->n) return rx_fail(x, "at least one item has to be provided");
    *o = v_ref(c->items->v[c->pos]);
    c->pos = (c->pos + 1) % c->items->n;
    return 0;
}

static int m_creset(rx *x, tv self, const tv *p, const targs *a, tv *o) {
    ((tcycler *)self.u.o)->pos = 0;
    *o = v_none();
    return 0;
}

static const method_def methods[] = {
    {V_STR, M_OK, "capitalize", m_capitalize, ""},
    {V_STR, M_OK, "casefold", m_lower, ""},
    {V_STR, M_OK, "center", m_center, "width,fillchar=' '"},
    {V_STR, M_OK, "count", m_count, "sub,start=None,end=None"},
    {V_STR, M_UNSUPPORTED, "encode", NULL, NULL},
    {V_STR, M_OK, "endswith", m_endswith, "suffix,start=None,end=None"},
    {V_STR, M_UNSUPPORTED, "expandtabs", NULL, NULL},
    {V_STR, M_OK, "find", m_find, "sub,start=None,end=None"},
    {V_STR, M_OK, "format", m_format, NULL},
    {V_STR, M_UNSUPPORTED, "format_map", NULL, NULL},
    {V_STR, M_OK, "index", m_index, "sub,start=None,end=None"},
    {V_STR, M_OK, "isalnum", m_isalnum, ""},
    {V_STR, M_OK, "isalpha", m_isalpha, ""},
    {V_STR, M_UNSUPPORTED, "isascii", NULL, NULL},
    {V_STR, M_OK, "isdecimal", m_isdecimal, ""},
    {V_STR, M_OK, "isdigit", m_isdigit, ""},
    {V_STR, M_UNSUPPORTED, "isidentifier", NULL, NULL},
    {V_STR, M_OK, "islower", m_islower, ""},
    {V_STR, M_OK, "isnumeric", m_isnumeric, ""},
    {V_STR, M_UNSUPPORTED, "isprintable", NULL, NULL},
    {V_STR, M_OK, "isspace", m_isspace, ""},
    {V_STR, M_OK, "istitle", m_istitle, ""},
    {V_STR, M_OK, "isupper", m_isupper, ""},
    {V_STR, M_OK, "join", m_join, "iterable"},
    {V_STR, M_OK, "ljust", m_ljust, "width,fillchar=' '"},
    {V_STR, M_OK, "lower", m_lower, ""},
    {V_STR, M_OK, "lstrip", m_lstrip, "chars=None"},
    {V_STR, M_UNSUPPORTED, "maketrans", NULL, NULL},
    {V_STR, M_OK, "partition", m_partition, "sep"},
    {V_STR, M_OK, "removeprefix", m_removeprefix, "prefix"},
    {V_STR, M_OK, "removesuffix", m_removesuffix, "suffix"},
    {V_STR, M_OK, "replace", m_replace, "old,new,count=-1"},
    {V_STR, M_OK, "rfind", m_rfind, "sub,start=None,end=None"},
    {V_STR, M_OK, "rindex", m_rindex, "sub,start=None,end=None"},
    {V_STR, M_OK, "rjust", m_rjust, "width,fillchar=' '"},
    {V_STR, M_OK, "rpartition", m_rpartition, "sep"},
    {V_STR, M_OK, "rsplit", m_rsplit, "sep=None,maxsplit=-1"},
    {V_STR, M_OK, "rstrip", m_rstrip, "chars=None"},
    {V_STR, M_OK, "split", m_split, "sep=None,maxsplit=-1"},
    {V_STR, M_OK, "splitlines", m_splitlines, "keepends=False"},
    {V_STR, M_OK, "startswith", m_startswith, "prefix,start=None,end=None"},
    {V_STR, M_OK, "strip", m_strip, "chars=None"},
    {V_STR, M_OK, "swapcase", m_swapcase, ""},
    {V_STR, M_OK, "title", m_title, ""},
    {V_STR, M_UNSUPPORTED, "translate", NULL, NULL},
    {V_STR, M_OK, "upper", m_upper, ""},
    {V_STR, M_OK, "zfill", m_zfill, "width"},
    {V_DICT, M_UNSAFE, "clear", NULL, NULL},
    {V_DICT, M_OK, "copy", m_dcopy, ""},
    {V_DICT, M_UNSUPPORTED, "fromkeys", NULL, NULL},
    {V_DICT, M_OK, "get", m_get, "key,default=None"},
    {V_DICT, M_OK, "items", m_items, ""},
    {V_DICT, M_OK, "keys", m_keys, ""},
    {V_DICT, M_UNSAFE, "pop", NULL, NULL},
    {V_DICT, M_UNSAFE, "popitem", NULL, NULL},
    {V_DICT, M_UNSAFE, "setdefault", NULL, NULL},
    {V_DICT, M_UNSAFE, "update", NULL, NULL},
    {V_DICT, M_OK, "values", m_values, ""},
    {V_LIST, M_UNSAFE, "append", NULL, NULL},
    {V_LIST, M_UNSAFE, "clear", NULL, NULL},
    {V_LIST, M_OK, "copy", m_lcopy, ""},
    {V_LIST, M_OK, "count", m_lcount, "value"},
    {V_LIST, M_UNSAFE, "extend", NULL, NULL},
    {V_LIST, M_OK, "index", m_lindex, "value"},
    {V_LIST, M_UNSAFE, "insert", NULL, NULL},
    {V_LIST, M_UNSAFE, "pop", NULL, NULL},
    {V_LIST, M_UNSAFE, "remove", NULL, NULL},
    {V_LIST, M_UNSAFE, "reverse", NULL, NULL},
    {V_LIST, M_UNSAFE, "sort", NULL, NULL},
    {V_LOOP, M_OK, "changed", m_changed, NULL},
    {V_LOOP, M_OK, "cycle", m_cycle, NULL},
    {V_CYCLER, M_OK, "next", m_cnext, ""},
    {V_CYCLER, M_OK, "reset", m_creset, ""},
};

int method_lookup(tv self, const char *name, size_t n) {
    int kind = self.k;
    /* tuples have count/index only; dict views and generators have none */
    if (kind == V_LIST && self.u.l->h.flavor != FL_LIST) {
        if (self.u.l->h.flavor != FL_TUPLE) return -1;
        if (!((n == 5 && !memcmp(name, "count", 5)) || (n == 5 && !memcmp(name, "index", 5)))) return -1;
    }
    for (size_t i = 0; i < RF_ARRAY_LEN(methods); i++) {
        const method_def *m = &methods[i];
        if (m->kind == kind && strlen(m->name) == n && !memcmp(m->name, name, n))
            return m->status == M_UNSAFE ? -2 : (int)i;
    }
    return -1;
}

const char *method_name(int mid) { return methods[mid].name; }

int method_call(rx *x, int mid, tv self, const targs *a, tv *out) {
    const method_def *m = &methods[mid];
    if (m->status == M_UNSUPPORTED)
        return rx_fail(x, "%s.%s() is not supported by this template engine", v_type_name(self), m->name);
    if (!m->spec) return m->fn(x, self, NULL, a, out);
    tv slots[MAX_PARAMS], own[MAX_PARAMS] = {{0}};
    int rc = bind_args(x, m->name, m->spec, a, slots, own);
    if (rc == 0) rc = m->fn(x, self, slots, a, out);
    for (int i = 0; i < MAX_PARAMS; i++) v_decref(own[i]);
    return rc;
}
