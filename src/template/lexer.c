/*
 * lexer.c - template text to tokens, following jinja2's lexer rule by rule
 * for the default delimiters with trim_blocks and lstrip_blocks on:
 *
 *  - text runs until the first "{{", "{%" or "{#"; a "-" right after the
 *    opener strips all whitespace (Python str.isspace) before the tag; "+"
 *    keeps it; otherwise, for blocks and comments (never variables), the
 *    spaces and tabs between the last newline (or the start of the template
 *    or the end of the previous tag when that ended a line) and the tag are
 *    dropped (lstrip_blocks);
 *  - "-%}" / "-#}" / "-}}" strip all following whitespace; "%}" and "#}"
 *    eat one following "\n" (trim_blocks); "+%}" and "+#}" keep it;
 *  - "{% raw %}...{% endraw %}" is text (no newline trimmed after the
 *    opening tag, as in jinja2);
 *  - inside tags: whitespace, floats, integers (with _ separators, 0b/0o/0x),
 *    names, strings with Python escapes, operators; an end delimiter only
 *    counts when brackets are balanced.
 * Positions are byte offsets in the normalized source.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "template/lexer.h"

typedef struct lexer {
    rf_tmpl *t;
    const char *s;
    size_t n, pos;
    tok *v;
    uint32_t nv, cap;
    bool line_starting;
    char bal[256];
    int nbal;
    rf_error *err;
} lexer;

static rf_status lex_fail(lexer *L, size_t pos, const char *fmt, const char *arg) {
    int line, col;
    tmpl_linecol(L->s, L->n, (uint32_t)pos, &line, &col);
    char msg[300];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    return rf_error_set(L->err, RF_E_FORMAT, "line %d:%d: %s", line, col, msg);
}

static tok *emit(lexer *L, int type, size_t pos) {
    if (L->nv == L->cap) {
        uint32_t nc = L->cap ? L->cap * 2 : 256;
        tok *nv = rf_realloc(L->v, (size_t)nc * sizeof(tok));
        if (!nv) return NULL;
        L->v = nv;
        L->cap = nc;
    }
    tok *k = &L->v[L->nv++];
    memset(k, 0, sizeof *k);
    k->type = (uint8_t)type;
    k->pos = (uint32_t)pos;
    return k;
}

/* Whitespace code point at i? Sets *end past it. */
static bool space_at(const lexer *L, size_t i, size_t *end) {
    if (i >= L->n) return false;
    size_t j = i;
    uint32_t cp = u8_next(L->s, L->n, &j);
    if (!u_isspace(cp)) return false;
    *end = j;
    return true;
}

static size_t skip_space(const lexer *L, size_t i) {
    size_t e;
    while (space_at(L, i, &e)) i = e;
    return i;
}

/* Length of text[0..n) without trailing whitespace (Python rstrip()). */
static size_t rstrip_len(const char *s, size_t n) {
    while (n > 0) {
        size_t st = n - 1;
        while (st > 0 && ((unsigned char)s[st] & 0xc0) == 0x80 && n - st < 4) st--;
        size_t j = st;
        uint32_t cp = u8_next(s, n, &j);
        if (j != n || !u_isspace(cp)) {
            /* a lone continuation byte: not whitespace */
            if (j != n && u_isspace((unsigned char)s[n - 1])) { n--; continue; }
            break;
        }
        n = st;
    }
    return n;
}

/* Emits text[start..end) as data after applying the strip rules for the
 * tag that follows: sign '-', '+' or 0; is_var: the tag is {{ }}. */
static rf_status emit_text(lexer *L, size_t start, size_t end, char sign, bool is_var) {
    const char *text = L->s + start;
    size_t len = end - start;
    if (sign == '-') {
        len = rstrip_len(text, len);
    } else if (sign != '+' && !is_var) {
        size_t lpos = 0;
        for (size_t i = len; i > 0; i--)
            if (text[i - 1] == '\n') { lpos = i; break; }
        if ((lpos > 0 || L->line_starting) && lpos < len) {
            size_t i = start + lpos, e;
            while (i < end && space_at(L, i, &e)) i = e;
            if (i == end) len = lpos;
        }
    }
    if (len == 0) return RF_OK;
    tok *k = emit(L, TK_DATA, start);
    if (!k) return rf_error_set(L->err, RF_E_NOMEM, "out of memory lexing the template");
    k->s = text;
    k->n = len;
    return RF_OK;
}

/* "{%" sign? \s* word \s* ("-%}" \s* | "%}" [+ "\n" if trim]) at i, for
 * raw/endraw. Returns the end of the match or 0. allow_plus: "+%}" ends it. */
static size_t match_word_tag(const lexer *L, size_t i, const char *word, bool trim, char *sign) {
    if (i + 2 > L->n || L->s[i] != '{' || L->s[i + 1] != '%') return 0;
    size_t j = i + 2;
    *sign = 0;
    if (j < L->n && (L->s[j] == '-' || L->s[j] == '+')) *sign = L->s[j++];
    j = skip_space(L, j);
    size_t wl = strlen(word);
    if (j + wl > L->n || memcmp(L->s + j, word, wl) != 0) return 0;
    j = skip_space(L, j + wl);
    if (trim && j + 3 <= L->n && L->s[j] == '+' && L->s[j + 1] == '%' && L->s[j + 2] == '}')
        return j + 3;
    if (j + 3 <= L->n && L->s[j] == '-' && L->s[j + 1] == '%' && L->s[j + 2] == '}')
        return skip_space(L, j + 3);
    if (j + 2 <= L->n && L->s[j] == '%' && L->s[j + 1] == '}') {
        j += 2;
        if (trim && j < L->n && L->s[j] == '\n') j++;
        return j;
    }
    return 0;
}

/* ---- tokens inside tags ------------------------------------------------ */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* (\d+_)*\d+ at i: returns the end or 0 */
static size_t scan_digits(const lexer *L, size_t i) {
    if (i >= L->n || !is_digit(L->s[i])) return 0;
    while (i < L->n && is_digit(L->s[i])) i++;
    while (i + 1 < L->n && L->s[i] == '_' && is_digit(L->s[i + 1])) {
        i++;
        while (i < L->n && is_digit(L->s[i])) i++;
    }
    return i;
}

static size_t scan_float(const lexer *L, size_t i) {
    if (i > 0 && L->s[i - 1] == '.') return 0;
    size_t ip = scan_digits(L, i);
    if (!ip) return 0;
    size_t frac = (ip < L->n && L->s[ip] == '.') ? scan_digits(L, ip + 1) : 0;
    size_t e = frac ? frac : ip;
    if (e < L->n && (L->s[e] == 'e' || L->s[e] == 'E')) {
        size_t k = e + 1;
        if (k < L->n && (L->s[k] == '+' || L->s[k] == '-')) k++;
        size_t ex = scan_digits(L, k);
        if (ex) return ex;
    }
    return frac;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The integer rule; returns the end or 0 and the value in *v (-1 on
 * overflow: flagged by *ovf). */
static size_t scan_int(const lexer *L, size_t i, int64_t *v, bool *ovf) {
    const char *s = L->s;
    *ovf = false;
    uint64_t acc = 0;
    if (i + 1 < L->n && s[i] == '0' && strchr("bBoOxX", s[i + 1]) && s[i + 1]) {
        int base = (s[i + 1] | 32) == 'b' ? 2 : (s[i + 1] | 32) == 'o' ? 8 : 16;
        size_t j = i + 2, last = 0;
        for (;;) {
            size_t k = j;
            if (k < L->n && s[k] == '_') k++;
            int d = k < L->n ? hexval(s[k]) : -1;
            if (d < 0 || d >= base) break;
            if (acc > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) *ovf = true;
            acc = acc * (uint64_t)base + (uint64_t)d;
            j = k + 1;
            last = j;
        }
        if (last) {
            if (acc > INT64_MAX) *ovf = true;
            *v = (int64_t)acc;
            return last;
        }
    }
    if (i < L->n && s[i] >= '1' && s[i] <= '9') {
        size_t j = i;
        for (;;) {
            size_t k = j;
            if (k > i && k < L->n && s[k] == '_') k++;
            if (k >= L->n || !is_digit(s[k])) break;
            uint64_t d = (uint64_t)(s[k] - '0');
            if (acc > (UINT64_MAX - d) / 10) *ovf = true;
            acc = acc * 10 + d;
            j = k + 1;
        }
        if (acc > INT64_MAX) *ovf = true;
        *v = (int64_t)acc;
        return j;
    }
    if (i < L->n && s[i] == '0') { /* 0(_?0)* */
        size_t j = i + 1;
        for (;;) {
            size_t k = j;
            if (k < L->n && s[k] == '_') k++;
            if (k < L->n && s[k] == '0') j = k + 1;
            else break;
        }
        *v = 0;
        return j;
    }
    return 0;
}

static bool name_start(const lexer *L, size_t i) {
    unsigned char c = (unsigned char)L->s[i];
    if (c == '_' || ((c | 32) >= 'a' && (c | 32) <= 'z')) return true;
    if (c < 0x80) return false;
    size_t e;
    return !space_at(L, i, &e);
}

static size_t scan_name(const lexer *L, size_t i) {
    while (i < L->n) {
        unsigned char c = (unsigned char)L->s[i];
        if (c == '_' || is_digit((char)c) || ((c | 32) >= 'a' && (c | 32) <= 'z')) { i++; continue; }
        if (c < 0x80) break;
        size_t e;
        if (space_at(L, i, &e)) break;
        u8_next(L->s, L->n, &i);
    }
    return i;
}

/* Decodes a string literal body as Python's unicode-escape does after
 * backslashreplace (jinja2's unescaping). Returns NULL with err set. */
static rf_status decode_string(lexer *L, size_t start, size_t end, size_t pos, tok *k) {
    size_t n = end - start;
    char *out = ta_alloc(&L->t->arena, n * 4 + 1); /* an escape never grows past 4x */
    if (!out) return rf_error_set(L->err, RF_E_NOMEM, "out of memory lexing the template");
    const char *s = L->s;
    size_t o = 0, i = start;
    while (i < end) {
        char c = s[i];
        if (c != '\\') { out[o++] = c; i++; continue; }
        if (i + 1 >= end) { out[o++] = '\\'; i++; continue; }
        unsigned char e = (unsigned char)s[i + 1];
        i += 2;
        switch (e) {
        case '\n': break;
        case '\\': out[o++] = '\\'; break;
        case '\'': out[o++] = '\''; break;
        case '"': out[o++] = '"'; break;
        case 'a': out[o++] = '\a'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'v': out[o++] = '\v'; break;
        case 'x': case 'u': case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int d = 0; d < nd; d++) {
                int h = i + (size_t)d < end ? hexval(s[i + (size_t)d]) : -1;
                if (h < 0) {
                    const char *what = e == 'x' ? "truncated \\xXX escape" : e == 'u' ? "truncated \\uXXXX escape" : "truncated \\UXXXXXXXX escape";
                    return lex_fail(L, pos, "%s", what);
                }
                cp = cp * 16 + (uint32_t)h;
            }
            if (cp > 0x10ffff) return lex_fail(L, pos, "%s", "illegal Unicode character");
            i += (size_t)nd;
            o += (size_t)u8_put(out + o, cp);
            break;
        }
        case 'N': return lex_fail(L, pos, "%s", "\\N{...} escapes are not supported");
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int d = 0; d < 2 && i < end && s[i] >= '0' && s[i] <= '7'; d++)
                    cp = cp * 8 + (uint32_t)(s[i++] - '0');
                o += (size_t)u8_put(out + o, cp);
            } else if (e >= 0x80) {
                /* backslashreplace turned the character into its own escape
                 * first; "\\" + "xe9" then decodes to a backslash and text */
                size_t j = i - 1;
                uint32_t cp = u8_next(s, end, &j);
                i = j;
                o += (size_t)snprintf(out + o, 12, cp <= 0xff ? "\\x%02x" : cp <= 0xffff ? "\\u%04x" : "\\U%08x", cp);
            } else {
                out[o++] = '\\';
                out[o++] = (char)e;
            }
        }
    }
    out[o] = '\0';
    k->s = out;
    k->n = o;
    return RF_OK;
}

typedef struct opdef {
    const char *text;
    int op;
} opdef;

static const opdef ops[] = {
    {"//", TO_FLOORDIV}, {"**", TO_POW}, {"==", TO_EQ}, {"!=", TO_NE}, {">=", TO_GTEQ},
    {"<=", TO_LTEQ}, {"+", TO_ADD}, {"-", TO_SUB}, {"/", TO_DIV}, {"*", TO_MUL},
    {"%", TO_MOD}, {"~", TO_TILDE}, {"[", TO_LBRACKET}, {"]", TO_RBRACKET},
    {"(", TO_LPAREN}, {")", TO_RPAREN}, {"{", TO_LBRACE}, {"}", TO_RBRACE},
    {">", TO_GT}, {"<", TO_LT}, {"=", TO_ASSIGN}, {".", TO_DOT}, {":", TO_COLON},
    {"|", TO_PIPE}, {",", TO_COMMA}, {";", TO_SEMICOLON},
};

/* Tokens of one {{ }} or {% %} tag, from L->pos to its end delimiter. */
static rf_status lex_tag(lexer *L, bool is_block) {
    const char *s = L->s;
    L->nbal = 0;
    for (;;) {
        size_t i = L->pos;
        if (i >= L->n) return RF_OK; /* the parser reports the missing end */
        if (L->nbal == 0) {
            size_t end = 0;
            bool strip = false;
            if (is_block) {
                if (i + 3 <= L->n && s[i] == '+' && s[i + 1] == '%' && s[i + 2] == '}') end = i + 3;
                else if (i + 3 <= L->n && s[i] == '-' && s[i + 1] == '%' && s[i + 2] == '}') { end = i + 3; strip = true; }
                else if (i + 2 <= L->n && s[i] == '%' && s[i + 1] == '}') {
                    end = i + 2;
                    if (end < L->n && s[end] == '\n') end++;
                }
            } else {
                if (i + 3 <= L->n && s[i] == '-' && s[i + 1] == '}' && s[i + 2] == '}') { end = i + 3; strip = true; }
                else if (i + 2 <= L->n && s[i] == '}' && s[i + 1] == '}') end = i + 2;
            }
            if (end) {
                if (strip) end = skip_space(L, end);
                if (!emit(L, is_block ? TK_BEND : TK_VEND, i)) goto oom;
                L->pos = end;
                L->line_starting = s[end - 1] == '\n';
                return RF_OK;
            }
        }
        size_t e;
        if (space_at(L, i, &e)) { L->pos = skip_space(L, e); continue; }
        size_t fe = scan_float(L, i);
        if (fe) {
            char buf[128];
            size_t k = 0;
            for (size_t j = i; j < fe && k < sizeof buf - 1; j++)
                if (s[j] != '_') buf[k++] = s[j];
            buf[k] = '\0';
            tok *t = emit(L, TK_FLOAT, i);
            if (!t) goto oom;
            t->f = strtod(buf, NULL);
            L->pos = fe;
            continue;
        }
        int64_t iv = 0;
        bool ovf;
        size_t ie = scan_int(L, i, &iv, &ovf);
        if (ie) {
            if (ovf) return lex_fail(L, i, "%s", "integer literal too large (beyond 64 bits)");
            tok *t = emit(L, TK_INT, i);
            if (!t) goto oom;
            t->i = iv;
            L->pos = ie;
            continue;
        }
        if (name_start(L, i)) {
            size_t ne = scan_name(L, i);
            tok *t = emit(L, TK_NAME, i);
            if (!t) goto oom;
            t->s = tmpl_intern(L->t, s + i, ne - i);
            if (!t->s) goto oom;
            t->n = ne - i;
            L->pos = ne;
            continue;
        }
        if (s[i] == '\'' || s[i] == '"') {
            char q = s[i];
            size_t j = i + 1;
            while (j < L->n && s[j] != q) j += s[j] == '\\' ? 2 : 1;
            if (j < L->n) {
                tok *t = emit(L, TK_STRING, i);
                if (!t) goto oom;
                rf_status st = decode_string(L, i + 1, j, i, t);
                if (st != RF_OK) return st;
                L->pos = j + 1;
                continue;
            }
            char cs[2] = {q, 0};
            return lex_fail(L, i, "unexpected char '%s'", cs);
        }
        const opdef *od = NULL;
        for (size_t k = 0; k < RF_ARRAY_LEN(ops); k++) {
            size_t ol = strlen(ops[k].text);
            if (i + ol <= L->n && memcmp(s + i, ops[k].text, ol) == 0) { od = &ops[k]; break; }
        }
        if (!od) {
            char cs[8] = {0};
            size_t j = i;
            u8_next(s, L->n, &j);
            memcpy(cs, s + i, j - i < 7 ? j - i : 7);
            return lex_fail(L, i, "unexpected char '%s'", cs);
        }
        if (od->op == TO_LBRACE || od->op == TO_LPAREN || od->op == TO_LBRACKET) {
            if (L->nbal == (int)sizeof L->bal)
                return lex_fail(L, i, "%s", "brackets nested too deeply");
            L->bal[L->nbal++] = od->op == TO_LBRACE ? '}' : od->op == TO_LPAREN ? ')' : ']';
        } else if (od->op == TO_RBRACE || od->op == TO_RPAREN || od->op == TO_RBRACKET) {
            if (L->nbal == 0) return lex_fail(L, i, "unexpected '%s'", od->text);
            char want = L->bal[--L->nbal];
            if (want != od->text[0]) {
                char msg[64];
                snprintf(msg, sizeof msg, "unexpected '%s', expected '%c'", od->text, want);
                return lex_fail(L, i, "%s", msg);
            }
        }
        tok *t = emit(L, TK_OP, i);
        if (!t) goto oom;
        t->op = (int8_t)od->op;
        L->pos = i + strlen(od->text);
    }
oom:
    return rf_error_set(L->err, RF_E_NOMEM, "out of memory lexing the template");
}

rf_status tmpl_lex(rf_tmpl *t, tok **out, uint32_t *n_out, rf_error *err) {
    lexer L = {.t = t, .s = t->src, .n = t->len, .line_starting = true, .err = err};
    rf_status st = RF_OK;
    const char *s = L.s;
    while (L.pos < L.n) {
        /* the next tag opener */
        size_t q = L.pos;
        while (q + 1 < L.n && !(s[q] == '{' && (s[q + 1] == '%' || s[q + 1] == '{' || s[q + 1] == '#'))) q++;
        if (q + 1 >= L.n) { /* plain text to the end */
            if ((st = emit_text(&L, L.pos, L.n, '+', false)) != RF_OK) goto done;
            break;
        }
        char kind = s[q + 1];
        char sign = 0;
        if (q + 2 < L.n && (s[q + 2] == '-' || s[q + 2] == '+')) sign = s[q + 2];
        if (kind == '%') {
            char rs;
            size_t rend = match_word_tag(&L, q, "raw", false, &rs);
            if (rend) {
                if ((st = emit_text(&L, L.pos, q, rs, false)) != RF_OK) goto done;
                L.line_starting = s[rend - 1] == '\n';
                if (rend >= L.n) { L.pos = rend; break; } /* as above */
                /* find {% endraw %} */
                size_t r = rend, eend = 0;
                char es = 0;
                for (; r + 1 < L.n; r++) {
                    if (s[r] == '{' && s[r + 1] == '%' && (eend = match_word_tag(&L, r, "endraw", true, &es)))
                        break;
                }
                if (!eend) { st = lex_fail(&L, q, "%s", "Missing end of raw directive"); goto done; }
                if ((st = emit_text(&L, rend, r, es, false)) != RF_OK) goto done;
                L.pos = eend;
                L.line_starting = s[eend - 1] == '\n';
                continue;
            }
        }
        if ((st = emit_text(&L, L.pos, q, sign, kind == '{')) != RF_OK) goto done;
        size_t body = q + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            if (body >= L.n) break; /* "{#" at the very end: jinja2's lexer just stops */
            size_t r = body, end = 0;
            for (; r + 1 < L.n; r++) {
                if (s[r] == '+' && r + 2 < L.n && s[r + 1] == '#' && s[r + 2] == '}') { end = r + 3; break; }
                if (s[r] == '-' && r + 2 < L.n && s[r + 1] == '#' && s[r + 2] == '}') { end = skip_space(&L, r + 3); break; }
                if (s[r] == '#' && s[r + 1] == '}') {
                    end = r + 2;
                    if (end < L.n && s[end] == '\n') end++;
                    break;
                }
            }
            if (!end) { st = lex_fail(&L, q, "%s", "Missing end of comment tag"); goto done; }
            L.pos = end;
            L.line_starting = s[end - 1] == '\n';
            continue;
        }
        if (!emit(&L, kind == '%' ? TK_BBEGIN : TK_VBEGIN, q)) goto oom;
        L.pos = body;
        if ((st = lex_tag(&L, kind == '%')) != RF_OK) goto done;
    }
    if (!emit(&L, TK_EOF, L.n)) goto oom;
    *out = L.v;
    *n_out = L.nv;
    return RF_OK;
oom:
    st = rf_error_set(err, RF_E_NOMEM, "out of memory lexing the template");
done:
    rf_free(L.v);
    return st;
}
