/*
 * parser.c - tokens to AST, a recursive descent that mirrors jinja2's
 * parser (operator precedence, tuples without parentheses, filters and
 * tests after unary expressions, slices, call arguments with * and **),
 * plus what jinja2 checks when it compiles: assignment targets, break and
 * continue outside a loop, and filters or tests that do not exist (an error
 * unless they sit in an if statement or an inline if, where jinja2 defers
 * the error to run time). Also here: rf_tmpl_parse/rf_tmpl_free, the
 * template arena, name interning and line:column lookup.
 *
 * Expressions and blocks nest at most MAX_NEST deep, so neither the parser
 * nor the evaluator that walks the tree can run out of stack.
 */
#include <stdio.h>
#include <string.h>

#include "template/lexer.h"

#define MAX_NEST 200

/* ---- arena, interning, positions -------------------------------------- */

void *ta_alloc(tarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = rf_malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

void ta_free(tarena *a) {
    arena_chunk *c = a->head;
    while (c) {
        arena_chunk *nx = c->next;
        rf_free(c);
        c = nx;
    }
    a->head = NULL;
}

static uint32_t name_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

const char *tmpl_intern(rf_tmpl *t, const char *name, size_t n) {
    if (t->n_names * 2 + 2 > t->cap_names) {
        uint32_t nc = t->cap_names ? t->cap_names * 2 : 256;
        const char **nv = rf_calloc(nc, sizeof *nv);
        if (!nv) return NULL;
        for (uint32_t i = 0; i < t->cap_names; i++) {
            const char *s = t->names[i];
            if (!s) continue;
            uint32_t j = name_hash(s, strlen(s)) & (nc - 1);
            while (nv[j]) j = (j + 1) & (nc - 1);
            nv[j] = s;
        }
        rf_free(t->names);
        t->names = nv;
        t->cap_names = nc;
    }
    uint32_t j = name_hash(name, n) & (t->cap_names - 1);
    while (t->names[j]) {
        if (strncmp(t->names[j], name, n) == 0 && t->names[j][n] == '\0') return t->names[j];
        j = (j + 1) & (t->cap_names - 1);
    }
    char *s = ta_alloc(&t->arena, n + 1);
    if (!s) return NULL;
    memcpy(s, name, n);
    t->names[j] = s;
    t->n_names++;
    return s;
}

void tmpl_linecol(const char *src, size_t len, uint32_t pos, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < pos && i < len; i++) {
        if (src[i] == '\n') { l++; c = 1; }
        else if (((unsigned char)src[i] & 0xc0) != 0x80) c++;
    }
    *line = l;
    *col = c;
}

/* ---- parser state ------------------------------------------------------ */

typedef struct parser {
    rf_tmpl *t;
    tok *tk;
    uint32_t nt, i;
    rf_error *err;
    bool failed;
    int nest;
    int loop_depth;          /* for break/continue: loops in the current function */
    uint32_t *macro_uses[MAX_NEST]; /* flags of the macros being parsed */
    int n_macros;
    const char *end_stack[MAX_NEST][3]; /* end tags subparse looks for, for messages */
    int n_end;
    const char *blocks[MAX_NEST]; /* block names seen (each may appear once) */
    int n_blocks;
} parser;

static const tok *cur(const parser *p) { return &p->tk[p->i]; }
static const tok *look(const parser *p) { return &p->tk[p->i + 1 < p->nt ? p->i + 1 : p->i]; }
static void adv(parser *p) { if (p->i + 1 < p->nt) p->i++; }

static const char *tok_desc(const tok *k, char *buf, size_t n) {
    static const char *ops[] = {"+", "-", "/", "//", "*", "%", "**", "~", "[", "]", "(", ")",
                                "{", "}", "==", "!=", ">", ">=", "<", "<=", "=", ".", ":", "|",
                                ",", ";"};
    switch (k->type) {
    case TK_DATA: return "template data";
    case TK_VBEGIN: return "begin of print statement";
    case TK_VEND: return "end of print statement";
    case TK_BBEGIN: return "begin of statement block";
    case TK_BEND: return "end of statement block";
    case TK_NAME: snprintf(buf, n, "%s", k->s); return buf;
    case TK_STRING: return "string";
    case TK_INT: return "integer";
    case TK_FLOAT: return "float";
    case TK_OP: return k->op >= 0 && (size_t)k->op < RF_ARRAY_LEN(ops) ? ops[k->op] : "operator";
    default: return "end of template";
    }
}

static node *pfail_at(parser *p, uint32_t pos, const char *fmt, const char *a) {
    if (p->failed) return NULL;
    p->failed = true;
    int line, col;
    tmpl_linecol(p->t->src, p->t->len, pos, &line, &col);
    char msg[300];
    snprintf(msg, sizeof msg, fmt, a ? a : "");
    rf_error_set(p->err, RF_E_FORMAT, "line %d:%d: %s", line, col, msg);
    return NULL;
}

static node *pfail(parser *p, const char *fmt, const char *a) {
    return pfail_at(p, cur(p)->pos, fmt, a);
}

static node *poom(parser *p) {
    if (!p->failed) {
        p->failed = true;
        rf_error_set(p->err, RF_E_NOMEM, "out of memory parsing the template");
    }
    return NULL;
}

static node *mk(parser *p, int kind, uint32_t pos) {
    node *n = ta_alloc(&p->t->arena, sizeof *n);
    if (!n) return poom(p);
    n->kind = (uint16_t)kind;
    n->pos = pos;
    n->idx = -1;
    return n;
}

static bool is_name(const parser *p, const char *name) {
    const tok *k = cur(p);
    return k->type == TK_NAME && strcmp(k->s, name) == 0;
}

static bool is_op(const parser *p, int op) { return cur(p)->type == TK_OP && cur(p)->op == op; }

static bool skip_op(parser *p, int op) {
    if (!is_op(p, op)) return false;
    adv(p);
    return true;
}

static bool skip_name(parser *p, const char *name) {
    if (!is_name(p, name)) return false;
    adv(p);
    return true;
}

static bool expect_op(parser *p, int op, const char *what) {
    if (skip_op(p, op)) return true;
    char b[64], msg[128];
    snprintf(msg, sizeof msg, "expected token '%s', got '%s'", what, tok_desc(cur(p), b, sizeof b));
    pfail(p, "%s", msg);
    return false;
}

static bool expect_type(parser *p, int type, const char *what) {
    if (cur(p)->type == type) { adv(p); return true; }
    char b[64], msg[128];
    snprintf(msg, sizeof msg, "expected token '%s', got '%s'", what, tok_desc(cur(p), b, sizeof b));
    pfail(p, "%s", msg);
    return false;
}

/* A growable list of nodes, copied into the arena when done. */
typedef struct nvec {
    node **v;
    uint32_t n, cap;
} nvec;

static bool nv_push(parser *p, nvec *v, node *n) {
    if (!n) return false;
    if (v->n == v->cap) {
        uint32_t nc = v->cap ? v->cap * 2 : 8;
        node **nn = rf_realloc(v->v, (size_t)nc * sizeof *nn);
        if (!nn) { poom(p); return false; }
        v->v = nn;
        v->cap = nc;
    }
    v->v[v->n++] = n;
    return true;
}

static node **nv_done(parser *p, nvec *v, uint32_t *n) {
    *n = v->n;
    node **out = NULL;
    if (v->n) {
        out = ta_alloc(&p->t->arena, (size_t)v->n * sizeof *out);
        if (out) memcpy(out, v->v, (size_t)v->n * sizeof *out);
        else poom(p);
    }
    rf_free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
    return out;
}

static bool enter(parser *p) {
    if (++p->nest > MAX_NEST) {
        pfail(p, "%s", "template nested too deeply");
        return false;
    }
    return true;
}
static void leave(parser *p) { p->nest--; }

/* ---- expressions ------------------------------------------------------- */

static node *parse_expression(parser *p, bool with_condexpr);
static node *parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                         bool explicit_parens, bool with_namespace);
static node *parse_unary(parser *p, bool with_filter);
static node *parse_primary(parser *p, bool with_namespace);
static node *parse_postfix(parser *p, node *n);
static node *parse_filter_expr(parser *p, node *n);
static node *parse_filter(parser *p, node *n, bool start_inline);
static bool parse_call_args(parser *p, node *call);

static node *parse_condexpr(parser *p) {
    uint32_t pos = cur(p)->pos;
    node *e1 = parse_expression(p, false);
    while (e1 && skip_name(p, "if")) {
        node *c = mk(p, N_COND, pos);
        if (!c) return NULL;
        c->a = e1;
        c->b = parse_expression(p, false);
        if (!c->b) return NULL;
        if (skip_name(p, "else")) {
            if (!enter(p)) return NULL;
            c->c = parse_condexpr(p);
            leave(p);
            if (!c->c) return NULL;
        }
        e1 = c;
    }
    return e1;
}

static node *parse_not(parser *p);

/* Left-associative chains nest one level per operator: count them. */
static bool chain_step(parser *p, int *k) {
    if (++*k + p->nest > MAX_NEST) {
        pfail(p, "%s", "template nested too deeply");
        return false;
    }
    return true;
}

static node *parse_binary_chain(parser *p, int kind, const char *word, node *(*sub)(parser *)) {
    uint32_t pos = cur(p)->pos;
    node *l = sub(p);
    int k = 0;
    while (l && skip_name(p, word) && chain_step(p, &k)) {
        node *n = mk(p, kind, pos);
        if (!n) return NULL;
        n->a = l;
        n->b = sub(p);
        if (!n->b) return NULL;
        l = n;
    }
    return p->failed ? NULL : l;
}

static node *parse_and(parser *p) { return parse_binary_chain(p, N_AND, "and", parse_not); }
static node *parse_or(parser *p) { return parse_binary_chain(p, N_OR, "or", parse_and); }

static node *parse_expression(parser *p, bool with_condexpr) {
    if (!enter(p)) return NULL;
    node *n = with_condexpr ? parse_condexpr(p) : parse_or(p);
    leave(p);
    return n;
}

static node *parse_math1(parser *p);

static node *parse_compare(parser *p) {
    uint32_t pos = cur(p)->pos;
    node *e = parse_math1(p);
    if (!e) return NULL;
    nvec ops = {0};
    for (;;) {
        int op = -1;
        if (cur(p)->type == TK_OP) {
            switch (cur(p)->op) {
            case TO_EQ: op = OP_EQ; break;
            case TO_NE: op = OP_NE; break;
            case TO_LT: op = OP_LT; break;
            case TO_LTEQ: op = OP_LE; break;
            case TO_GT: op = OP_GT; break;
            case TO_GTEQ: op = OP_GE; break;
            default: break;
            }
            if (op >= 0) adv(p);
        } else if (is_name(p, "in")) {
            adv(p);
            op = OP_IN;
        } else if (is_name(p, "not") && look(p)->type == TK_NAME && strcmp(look(p)->s, "in") == 0) {
            adv(p);
            adv(p);
            op = OP_NOTIN;
        }
        if (op < 0) break;
        node *o = mk(p, N_OPERAND, cur(p)->pos);
        if (!o) { rf_free(ops.v); return NULL; }
        o->op = (int16_t)op;
        o->a = parse_math1(p);
        if (!o->a || !nv_push(p, &ops, o)) { rf_free(ops.v); return NULL; }
    }
    if (!ops.n) return e;
    node *c = mk(p, N_COMPARE, pos);
    if (!c) { rf_free(ops.v); return NULL; }
    c->a = e;
    c->xs = nv_done(p, &ops, &c->nx);
    return p->failed ? NULL : c;
}

static node *parse_not(parser *p) {
    if (is_name(p, "not")) {
        uint32_t pos = cur(p)->pos;
        adv(p);
        if (!enter(p)) return NULL;
        node *n = mk(p, N_NOT, pos);
        if (n) n->a = parse_not(p);
        leave(p);
        return n && n->a ? n : NULL;
    }
    return parse_compare(p);
}

static node *parse_concat(parser *p);
static node *parse_math2(parser *p);
static node *parse_pow(parser *p);

static node *binop(parser *p, uint32_t pos, int op, node *l, node *r) {
    if (!l || !r) return NULL;
    node *n = mk(p, N_BINOP, pos);
    if (!n) return NULL;
    n->op = (int16_t)op;
    n->a = l;
    n->b = r;
    return n;
}

static node *parse_math1(parser *p) {
    uint32_t pos = cur(p)->pos;
    node *l = parse_concat(p);
    int k = 0;
    while (l && (is_op(p, TO_ADD) || is_op(p, TO_SUB)) && chain_step(p, &k)) {
        int op = cur(p)->op == TO_ADD ? OP_ADD : OP_SUB;
        adv(p);
        l = binop(p, pos, op, l, parse_concat(p));
    }
    return p->failed ? NULL : l;
}

static node *parse_concat(parser *p) {
    uint32_t pos = cur(p)->pos;
    node *first = parse_math2(p);
    if (!first || !is_op(p, TO_TILDE)) return first;
    nvec args = {0};
    nv_push(p, &args, first);
    while (!p->failed && skip_op(p, TO_TILDE))
        if (!nv_push(p, &args, parse_math2(p))) break;
    if (p->failed) { rf_free(args.v); return NULL; }
    node *n = mk(p, N_CONCAT, pos);
    if (!n) { rf_free(args.v); return NULL; }
    n->xs = nv_done(p, &args, &n->nx);
    return p->failed ? NULL : n;
}

static node *parse_math2(parser *p) {
    uint32_t pos = cur(p)->pos;
    node *l = parse_pow(p);
    int k = 0;
    while (l && cur(p)->type == TK_OP &&
           (cur(p)->op == TO_MUL || cur(p)->op == TO_DIV || cur(p)->op == TO_FLOORDIV ||
            cur(p)->op == TO_MOD) && chain_step(p, &k)) {
        int t = cur(p)->op;
        int op = t == TO_MUL ? OP_MUL : t == TO_DIV ? OP_DIV : t == TO_FLOORDIV ? OP_FLOORDIV : OP_MOD;
        adv(p);
        l = binop(p, pos, op, l, parse_pow(p));
    }
    return p->failed ? NULL : l;
}

static node *parse_pow(parser *p) {
    uint32_t pos = cur(p)->pos;
    node *l = parse_unary(p, true);
    int k = 0;
    while (l && skip_op(p, TO_POW) && chain_step(p, &k)) l = binop(p, pos, OP_POW, l, parse_unary(p, true));
    return p->failed ? NULL : l;
}

static node *parse_unary(parser *p, bool with_filter) {
    uint32_t pos = cur(p)->pos;
    node *n;
    if (!enter(p)) return NULL;
    if (is_op(p, TO_SUB) || is_op(p, TO_ADD)) {
        int kind = cur(p)->op == TO_SUB ? N_NEG : N_POS;
        adv(p);
        n = mk(p, kind, pos);
        if (n) n->a = parse_unary(p, false);
        if (n && !n->a) n = NULL;
    } else {
        n = parse_primary(p, false);
    }
    if (n) n = parse_postfix(p, n);
    if (n && with_filter) n = parse_filter_expr(p, n);
    leave(p);
    return n;
}

static void note_name_use(parser *p, const char *name) {
    uint32_t f = 0;
    if (name == p->t->sym_caller) f = NF_USES_CALLER;
    else if (name == p->t->sym_varargs) f = NF_USES_VARARGS;
    else if (name == p->t->sym_kwargs) f = NF_USES_KWARGS;
    if (!f) return;
    for (int i = 0; i < p->n_macros; i++) *p->macro_uses[i] |= f;
}

static node *parse_list_or_dict(parser *p, bool is_dict) {
    uint32_t pos = cur(p)->pos;
    adv(p);
    int close = is_dict ? TO_RBRACE : TO_RBRACKET;
    nvec items = {0};
    while (!is_op(p, close)) {
        if (items.n && !expect_op(p, TO_COMMA, ",")) goto fail;
        if (is_op(p, close)) break;
        node *it;
        if (is_dict) {
            it = mk(p, N_PAIR, cur(p)->pos);
            if (!it || !(it->a = parse_expression(p, true))) goto fail;
            if (!expect_op(p, TO_COLON, ":")) goto fail;
            if (!(it->b = parse_expression(p, true))) goto fail;
        } else {
            it = parse_expression(p, true);
        }
        if (!nv_push(p, &items, it)) goto fail;
    }
    if (!expect_op(p, close, is_dict ? "}" : "]")) goto fail;
    node *n = mk(p, is_dict ? N_DICT : N_LIST, pos);
    if (!n) goto fail;
    n->xs = nv_done(p, &items, &n->nx);
    return p->failed ? NULL : n;
fail:
    rf_free(items.v);
    return NULL;
}

static node *parse_primary(parser *p, bool with_namespace) {
    const tok *k = cur(p);
    uint32_t pos = k->pos;
    node *n;
    switch (k->type) {
    case TK_NAME: {
        const char *s = k->s;
        adv(p);
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "false") || !strcmp(s, "False")) {
            n = mk(p, N_CONST, pos);
            if (n) n->val = v_bool(s[0] == 't' || s[0] == 'T');
            return n;
        }
        if (!strcmp(s, "none") || !strcmp(s, "None")) {
            n = mk(p, N_CONST, pos);
            if (n) n->val = v_none();
            return n;
        }
        if (with_namespace && is_op(p, TO_DOT)) {
            adv(p);
            if (cur(p)->type != TK_NAME) return pfail(p, "%s", "expected name after '.'");
            n = mk(p, N_NSREF, pos);
            if (n) { n->name = s; n->attr = cur(p)->s; }
            adv(p);
            return n;
        }
        n = mk(p, N_NAME, pos);
        if (n) n->name = s;
        note_name_use(p, s);
        return n;
    }
    case TK_STRING: {
        /* adjacent string literals concatenate */
        size_t total = 0;
        uint32_t j = p->i;
        while (p->tk[j].type == TK_STRING) total += p->tk[j++].n;
        char *buf = ta_alloc(&p->t->arena, total + 1);
        if (!buf) return poom(p);
        size_t o = 0;
        while (cur(p)->type == TK_STRING) {
            memcpy(buf + o, cur(p)->s, cur(p)->n);
            o += cur(p)->n;
            adv(p);
        }
        n = mk(p, N_CONST, pos);
        if (!n) return NULL;
        tstr *s = str_new_immortal(&p->t->arena, buf, o);
        if (!s) return poom(p);
        n->val = v_obj(V_STR, s);
        return n;
    }
    case TK_INT: case TK_FLOAT:
        n = mk(p, N_CONST, pos);
        if (n) n->val = k->type == TK_INT ? v_int(k->i) : v_float(k->f);
        adv(p);
        return n;
    case TK_OP:
        if (k->op == TO_LPAREN) {
            adv(p);
            n = parse_tuple(p, false, true, NULL, true, false);
            if (n && !expect_op(p, TO_RPAREN, ")")) return NULL;
            return n;
        }
        if (k->op == TO_LBRACKET) return parse_list_or_dict(p, false);
        if (k->op == TO_LBRACE) return parse_list_or_dict(p, true);
        break;
    default: break;
    }
    char b[64];
    return pfail(p, "unexpected '%s'", tok_desc(k, b, sizeof b));
}

static bool is_tuple_end(const parser *p, const char *extra) {
    const tok *k = cur(p);
    if (k->type == TK_VEND || k->type == TK_BEND || (k->type == TK_OP && k->op == TO_RPAREN))
        return true;
    return extra && is_name(p, extra);
}

static node *parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                         bool explicit_parens, bool with_namespace) {
    uint32_t pos = cur(p)->pos;
    nvec args = {0};
    bool is_tuple = false;
    if (!enter(p)) return NULL;
    for (;;) {
        if (args.n && !expect_op(p, TO_COMMA, ",")) goto fail;
        if (is_tuple_end(p, extra_end)) break;
        node *e = simplified ? parse_primary(p, with_namespace) : parse_expression(p, with_condexpr);
        if (!nv_push(p, &args, e)) goto fail;
        if (is_op(p, TO_COMMA)) is_tuple = true;
        else break;
    }
    leave(p);
    if (!is_tuple) {
        if (args.n) {
            node *n = args.v[0];
            rf_free(args.v);
            return n;
        }
        if (!explicit_parens) {
            char b[64];
            rf_free(args.v);
            return pfail(p, "Expected an expression, got '%s'", tok_desc(cur(p), b, sizeof b));
        }
    }
    node *n = mk(p, N_TUPLE, pos);
    if (!n) { rf_free(args.v); return NULL; }
    n->xs = nv_done(p, &args, &n->nx);
    return p->failed ? NULL : n;
fail:
    leave(p);
    rf_free(args.v);
    return NULL;
}

static node *parse_subscribed(parser *p) {
    uint32_t pos = cur(p)->pos;
    node *parts[3] = {NULL, NULL, NULL};
    if (is_op(p, TO_COLON)) {
        adv(p);
    } else {
        node *e = parse_expression(p, true);
        if (!e) return NULL;
        if (!is_op(p, TO_COLON)) return e;
        adv(p);
        parts[0] = e;
    }
    if (!is_op(p, TO_COLON) && !is_op(p, TO_RBRACKET) && !is_op(p, TO_COMMA)) {
        if (!(parts[1] = parse_expression(p, true))) return NULL;
    }
    if (skip_op(p, TO_COLON)) {
        if (!is_op(p, TO_RBRACKET) && !is_op(p, TO_COMMA))
            if (!(parts[2] = parse_expression(p, true))) return NULL;
    }
    node *s = mk(p, N_SLICE, pos);
    if (!s) return NULL;
    s->a = parts[0];
    s->b = parts[1];
    s->c = parts[2];
    return s;
}

static node *parse_subscript(parser *p, node *base) {
    const tok *k = cur(p);
    uint32_t pos = k->pos;
    adv(p);
    if (k->op == TO_DOT) {
        const tok *a = cur(p);
        adv(p);
        if (a->type == TK_NAME) {
            node *n = mk(p, N_GETATTR, pos);
            if (n) { n->a = base; n->name = a->s; }
            return n;
        }
        if (a->type != TK_INT) return pfail_at(p, a->pos, "%s", "expected name or number");
        node *n = mk(p, N_GETITEM, pos), *c = mk(p, N_CONST, a->pos);
        if (!n || !c) return NULL;
        c->val = v_int(a->i);
        n->a = base;
        n->b = c;
        return n;
    }
    nvec args = {0};
    while (!is_op(p, TO_RBRACKET)) {
        if (args.n && !expect_op(p, TO_COMMA, ",")) goto fail;
        if (!nv_push(p, &args, parse_subscribed(p))) goto fail;
    }
    if (!expect_op(p, TO_RBRACKET, "]")) goto fail;
    node *n = mk(p, N_GETITEM, pos);
    if (!n) goto fail;
    n->a = base;
    if (args.n == 1) {
        n->b = args.v[0];
        rf_free(args.v);
    } else {
        node *t = mk(p, N_TUPLE, pos);
        if (!t) goto fail;
        t->xs = nv_done(p, &args, &t->nx);
        n->b = t;
    }
    return p->failed ? NULL : n;
fail:
    rf_free(args.v);
    return NULL;
}

/* Fills call->xs (positional), ys (KWARG nodes), c (*args), d (**kwargs). */
static bool parse_call_args(parser *p, node *call) {
    uint32_t pos = cur(p)->pos;
    if (!expect_op(p, TO_LPAREN, "(")) return false;
    nvec args = {0}, kwargs = {0};
    bool need_comma = false;
    while (!is_op(p, TO_RPAREN)) {
        if (need_comma) {
            if (!expect_op(p, TO_COMMA, ",")) goto fail;
            if (is_op(p, TO_RPAREN)) break;
        }
        if (is_op(p, TO_MUL)) {
            if (call->c || call->d) goto bad;
            adv(p);
            if (!(call->c = parse_expression(p, true))) goto fail;
        } else if (is_op(p, TO_POW)) {
            if (call->d) goto bad;
            adv(p);
            if (!(call->d = parse_expression(p, true))) goto fail;
        } else if (cur(p)->type == TK_NAME && look(p)->type == TK_OP && look(p)->op == TO_ASSIGN) {
            if (call->d) goto bad;
            node *kw = mk(p, N_KWARG, cur(p)->pos);
            if (!kw) goto fail;
            kw->name = cur(p)->s;
            adv(p);
            adv(p);
            if (!(kw->a = parse_expression(p, true)) || !nv_push(p, &kwargs, kw)) goto fail;
        } else {
            if (call->c || call->d || kwargs.n) goto bad;
            if (!nv_push(p, &args, parse_expression(p, true))) goto fail;
        }
        need_comma = true;
    }
    if (!expect_op(p, TO_RPAREN, ")")) goto fail;
    call->xs = nv_done(p, &args, &call->nx);
    call->ys = nv_done(p, &kwargs, &call->ny);
    return !p->failed;
bad:
    pfail_at(p, pos, "%s", "invalid syntax for function call expression");
fail:
    rf_free(args.v);
    rf_free(kwargs.v);
    return false;
}

static node *parse_call(parser *p, node *fn) {
    node *n = mk(p, N_CALL, cur(p)->pos);
    if (!n) return NULL;
    n->a = fn;
    return parse_call_args(p, n) ? n : NULL;
}

static node *parse_postfix(parser *p, node *n) {
    int k = 0;
    while (n && (is_op(p, TO_DOT) || is_op(p, TO_LBRACKET) || is_op(p, TO_LPAREN)) && chain_step(p, &k)) {
        if (is_op(p, TO_DOT) || is_op(p, TO_LBRACKET)) n = parse_subscript(p, n);
        else if (is_op(p, TO_LPAREN)) n = parse_call(p, n);
        else break;
    }
    return p->failed ? NULL : n;
}

/* A dotted name after | or is ("foo.bar" is kept whole: no such filter). */
static const char *dotted_name(parser *p) {
    if (cur(p)->type != TK_NAME) {
        char b[64];
        char msg[128];
        snprintf(msg, sizeof msg, "expected token 'name', got '%s'", tok_desc(cur(p), b, sizeof b));
        pfail(p, "%s", msg);
        return NULL;
    }
    const char *name = cur(p)->s;
    adv(p);
    while (is_op(p, TO_DOT)) {
        adv(p);
        if (cur(p)->type != TK_NAME) { pfail(p, "%s", "expected token 'name'"); return NULL; }
        size_t a = strlen(name), b = strlen(cur(p)->s);
        char *s = ta_alloc(&p->t->arena, a + b + 2);
        if (!s) { poom(p); return NULL; }
        memcpy(s, name, a);
        s[a] = '.';
        memcpy(s + a + 1, cur(p)->s, b);
        name = s;
        adv(p);
    }
    return name;
}

static node *parse_test(parser *p, node *n) {
    uint32_t pos = cur(p)->pos;
    adv(p); /* is */
    bool negated = skip_name(p, "not");
    const char *name = dotted_name(p);
    if (!name) return NULL;
    node *t = mk(p, N_TEST, pos);
    if (!t) return NULL;
    t->a = n;
    t->name = name;
    t->idx = test_index(name);
    const tok *k = cur(p);
    if (is_op(p, TO_LPAREN)) {
        if (!parse_call_args(p, t)) return NULL;
    } else if ((k->type == TK_NAME || k->type == TK_STRING || k->type == TK_INT ||
                k->type == TK_FLOAT || is_op(p, TO_LPAREN) || is_op(p, TO_LBRACKET) ||
                is_op(p, TO_LBRACE)) &&
               !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
        if (is_name(p, "is")) return pfail(p, "%s", "You cannot chain multiple tests with is");
        node *arg = parse_postfix(p, parse_primary(p, false));
        if (!arg) return NULL;
        t->xs = ta_alloc(&p->t->arena, sizeof(node *));
        if (!t->xs) return poom(p);
        t->xs[0] = arg;
        t->nx = 1;
    }
    if (!negated) return t;
    node *nn = mk(p, N_NOT, pos);
    if (nn) nn->a = t;
    return nn;
}

static node *parse_filter(parser *p, node *n, bool start_inline) {
    int k = 0;
    while ((is_op(p, TO_PIPE) || start_inline) && chain_step(p, &k)) {
        if (!start_inline) adv(p);
        uint32_t pos = cur(p)->pos;
        const char *name = dotted_name(p);
        if (!name) return NULL;
        node *f = mk(p, N_FILTER, pos);
        if (!f) return NULL;
        f->a = n;
        f->name = name;
        f->idx = filter_index(name);
        if (is_op(p, TO_LPAREN) && !parse_call_args(p, f)) return NULL;
        n = f;
        start_inline = false;
    }
    return p->failed ? NULL : n;
}

static node *parse_filter_expr(parser *p, node *n) {
    int k = 0;
    while (n) {
        if (is_op(p, TO_PIPE)) n = parse_filter(p, n, false);
        else if (is_name(p, "is")) n = parse_test(p, n);
        else if (is_op(p, TO_LPAREN)) n = parse_call(p, n);
        else break;
        if (n && !chain_step(p, &k)) n = NULL;
    }
    return n;
}

/* ---- assignment targets ------------------------------------------------ */

static bool can_assign(const node *n) {
    if (n->kind == N_NAME || n->kind == N_NSREF) return true;
    if (n->kind != N_TUPLE) return false;
    for (uint32_t i = 0; i < n->nx; i++)
        if (!can_assign(n->xs[i])) return false;
    return true;
}

static node *parse_assign_target(parser *p, bool name_only, const char *extra_end, bool with_ns) {
    node *t;
    if (name_only) {
        if (cur(p)->type != TK_NAME) {
            char b[64], msg[128];
            snprintf(msg, sizeof msg, "expected token 'name', got '%s'", tok_desc(cur(p), b, sizeof b));
            return pfail(p, "%s", msg);
        }
        t = mk(p, N_NAME, cur(p)->pos);
        if (t) t->name = cur(p)->s;
        adv(p);
        return t;
    }
    t = parse_tuple(p, true, true, extra_end, false, with_ns);
    if (!t) return NULL;
    if (!can_assign(t)) {
        const char *what = t->kind == N_CONST ? "const" : t->kind == N_TUPLE ? "tuple" : "expression";
        return pfail_at(p, t->pos, "can't assign to '%s'", what);
    }
    return t;
}

/* ---- statements -------------------------------------------------------- */

static bool subparse(parser *p, const char *const *end, int n_end, nvec *body);

/* Body up to one of the end tags (the current token is then that tag's
 * name); "%}" first, as parse_statements does. drop: consume the end name. */
static node **parse_statements(parser *p, const char *const *end, int n_end, bool drop,
                               uint32_t *n) {
    skip_op(p, TO_COLON);
    if (!expect_type(p, TK_BEND, "end of statement block")) return NULL;
    nvec body = {0};
    if (!subparse(p, end, n_end, &body)) { rf_free(body.v); return NULL; }
    if (cur(p)->type == TK_EOF) {
        char msg[200];
        snprintf(msg, sizeof msg, "Unexpected end of template. Jinja was looking for the following tags: '%s'.", end[0]);
        rf_free(body.v);
        pfail(p, "%s", msg);
        return NULL;
    }
    if (drop) adv(p);
    node **out = nv_done(p, &body, n);
    if (p->failed) return NULL;
    /* an empty body is fine: return a non-NULL marker */
    return out ? out : (node **)p->t;
}

#define BODY(v) ((v) == (node **)p->t ? NULL : (v))

static node *parse_for(parser *p, uint32_t pos) {
    node *n = mk(p, N_FOR, pos);
    if (!n) return NULL;
    if (!(n->a = parse_assign_target(p, false, "in", false))) return NULL;
    if (!skip_name(p, "in")) return pfail(p, "%s", "expected 'in'");
    if (!(n->b = parse_tuple(p, false, false, "recursive", false, false))) return NULL;
    if (skip_name(p, "if") && !(n->c = parse_expression(p, true))) return NULL;
    if (skip_name(p, "recursive")) n->flags |= NF_RECURSIVE;
    static const char *const ends[] = {"endfor", "else"};
    p->loop_depth++;
    node **body = parse_statements(p, ends, 2, false, &n->nx);
    p->loop_depth--;
    if (!body) return NULL;
    n->xs = BODY(body);
    if (is_name(p, "endfor")) {
        adv(p);
        return n;
    }
    adv(p); /* else */
    static const char *const ends2[] = {"endfor"};
    node **els = parse_statements(p, ends2, 1, true, &n->ny);
    if (!els) return NULL;
    n->ys = BODY(els);
    return n;
}

static node *parse_if(parser *p, uint32_t pos) {
    node *result = mk(p, N_IF, pos), *n = result;
    static const char *const ends[] = {"elif", "else", "endif"};
    static const char *const ends2[] = {"endif"};
    int depth = 0;
    for (;;) {
        if (!n || !(n->a = parse_tuple(p, false, false, NULL, false, false))) return NULL;
        node **body = parse_statements(p, ends, 3, false, &n->nx);
        if (!body) return NULL;
        n->xs = BODY(body);
        if (is_name(p, "elif")) {
            uint32_t epos = cur(p)->pos;
            adv(p);
            node *e = mk(p, N_IF, epos);
            if (!e || !enter(p)) return NULL;
            depth++;
            n->ys = ta_alloc(&p->t->arena, sizeof(node *));
            if (!n->ys) return poom(p);
            n->ys[0] = e;
            n->ny = 1;
            n = e;
            continue;
        }
        if (is_name(p, "else")) {
            adv(p);
            node **els = parse_statements(p, ends2, 1, true, &n->ny);
            if (!els) return NULL;
            n->ys = BODY(els);
        } else {
            adv(p); /* endif */
        }
        break;
    }
    p->nest -= depth;
    return result;
}

static node *parse_set(parser *p, uint32_t pos) {
    node *target = parse_assign_target(p, false, NULL, true);
    if (!target) return NULL;
    if (skip_op(p, TO_ASSIGN)) {
        node *n = mk(p, N_SET, pos);
        if (!n) return NULL;
        n->a = target;
        n->b = parse_tuple(p, false, true, NULL, false, false);
        return n->b ? n : NULL;
    }
    node *n = mk(p, N_SETBLOCK, pos);
    if (!n) return NULL;
    n->a = target;
    if (is_op(p, TO_PIPE) && !(n->b = parse_filter(p, NULL, false))) return NULL;
    static const char *const ends[] = {"endset"};
    node **body = parse_statements(p, ends, 1, true, &n->nx);
    if (!body) return NULL;
    n->xs = BODY(body);
    return n;
}

static bool parse_signature(parser *p, node *n) {
    if (!expect_op(p, TO_LPAREN, "(")) return false;
    nvec params = {0};
    bool defaults = false;
    while (!is_op(p, TO_RPAREN)) {
        if (params.n && !expect_op(p, TO_COMMA, ",")) goto fail;
        node *prm = parse_assign_target(p, true, NULL, false);
        if (!prm) goto fail;
        prm->kind = N_PARAM;
        if (skip_op(p, TO_ASSIGN)) {
            if (!(prm->a = parse_expression(p, true))) goto fail;
            defaults = true;
        } else if (defaults) {
            pfail(p, "%s", "non-default argument follows default argument");
            goto fail;
        }
        if (!nv_push(p, &params, prm)) goto fail;
    }
    if (!expect_op(p, TO_RPAREN, ")")) goto fail;
    n->ys = nv_done(p, &params, &n->ny);
    return !p->failed;
fail:
    rf_free(params.v);
    return false;
}

/* Parses a function-like body (macro, caller, generation): its own
 * break/continue context and name-use flags. */
static node **parse_function_body(parser *p, node *n, const char *end, uint32_t *count) {
    const char *ends[1] = {end};
    int saved_loops = p->loop_depth;
    p->loop_depth = 0;
    if (p->n_macros >= MAX_NEST) { pfail(p, "%s", "template nested too deeply"); return NULL; }
    p->macro_uses[p->n_macros++] = &n->flags;
    node **body = parse_statements(p, ends, 1, true, count);
    p->n_macros--;
    p->loop_depth = saved_loops;
    return body;
}

static node *parse_macro(parser *p, uint32_t pos) {
    node *n = mk(p, N_MACRO, pos);
    if (!n) return NULL;
    node *name = parse_assign_target(p, true, NULL, false);
    if (!name) return NULL;
    n->name = name->name;
    if (!parse_signature(p, n)) return NULL;
    node **body = parse_function_body(p, n, "endmacro", &n->nx);
    if (!body) return NULL;
    n->xs = BODY(body);
    return n;
}

static node *parse_call_block(parser *p, uint32_t pos) {
    node *n = mk(p, N_CALLBLOCK, pos);
    if (!n) return NULL;
    if (is_op(p, TO_LPAREN) && !parse_signature(p, n)) return NULL;
    n->a = parse_expression(p, true);
    if (!n->a) return NULL;
    if (n->a->kind != N_CALL) return pfail_at(p, pos, "%s", "expected call");
    node **body = parse_function_body(p, n, "endcall", &n->nx);
    if (!body) return NULL;
    n->xs = BODY(body);
    return n;
}

static node *parse_filter_block(parser *p, uint32_t pos) {
    node *n = mk(p, N_FILTERBLOCK, pos);
    if (!n || !(n->b = parse_filter(p, NULL, true))) return NULL;
    static const char *const ends[] = {"endfilter"};
    node **body = parse_statements(p, ends, 1, true, &n->nx);
    if (!body) return NULL;
    n->xs = BODY(body);
    return n;
}

static node *parse_with(parser *p, uint32_t pos) {
    node *n = mk(p, N_WITH, pos);
    if (!n) return NULL;
    nvec sets = {0};
    while (cur(p)->type != TK_BEND) {
        if (sets.n && !expect_op(p, TO_COMMA, ",")) goto fail;
        node *s = mk(p, N_SET, cur(p)->pos);
        if (!s || !(s->a = parse_assign_target(p, false, NULL, false))) goto fail;
        if (!expect_op(p, TO_ASSIGN, "=") || !(s->b = parse_expression(p, true))) goto fail;
        if (!nv_push(p, &sets, s)) goto fail;
    }
    n->ys = nv_done(p, &sets, &n->ny);
    if (p->failed) return NULL;
    static const char *const ends[] = {"endwith"};
    node **body = parse_statements(p, ends, 1, true, &n->nx);
    if (!body) return NULL;
    n->xs = BODY(body);
    return n;
fail:
    rf_free(sets.v);
    return NULL;
}

static node *parse_print(parser *p, uint32_t pos) {
    node *n = mk(p, N_OUTPUT, pos);
    if (!n) return NULL;
    nvec items = {0};
    while (cur(p)->type != TK_BEND) {
        if (items.n && !expect_op(p, TO_COMMA, ",")) goto fail;
        if (!nv_push(p, &items, parse_expression(p, true))) goto fail;
    }
    n->xs = nv_done(p, &items, &n->nx);
    return p->failed ? NULL : n;
fail:
    rf_free(items.v);
    return NULL;
}

static node *parse_loopctl(parser *p, uint32_t pos, bool brk) {
    if (p->loop_depth == 0)
        return pfail_at(p, pos, "'%s' outside loop", brk ? "break" : "continue");
    return mk(p, brk ? N_BREAK : N_CONTINUE, pos);
}

static node *parse_generation(parser *p, uint32_t pos) {
    /* transformers' {% generation %} marks assistant text; it renders its
     * body as a call block does */
    node *n = mk(p, N_SCOPEBODY, pos);
    if (!n) return NULL;
    node **body = parse_function_body(p, n, "endgeneration", &n->nx);
    if (!body) return NULL;
    n->xs = BODY(body);
    return n;
}

/* {% block name [scoped] [required] %}...{% endblock [name] %}: rendered in
 * place, seeing the template's top-level variables (and the enclosing
 * scope's when scoped). */
static node *parse_block(parser *p, uint32_t pos) {
    node *n = mk(p, N_BLOCK, pos);
    if (!n) return NULL;
    if (cur(p)->type != TK_NAME) return pfail(p, "%s", "expected token 'name'");
    n->name = cur(p)->s;
    adv(p);
    if (skip_name(p, "scoped")) n->flags |= NF_SCOPED;
    bool required = skip_name(p, "required");
    if (is_op(p, TO_SUB))
        return pfail(p, "%s", "Block names in Jinja have to be valid Python identifiers and may not contain hyphens, use an underscore instead.");
    for (int i = 0; i < p->n_blocks; i++)
        if (p->blocks[i] == n->name) return pfail_at(p, pos, "block '%s' defined twice", n->name);
    if (p->n_blocks < MAX_NEST) p->blocks[p->n_blocks++] = n->name;
    static const char *const ends[] = {"endblock"};
    int saved_loops = p->loop_depth;
    p->loop_depth = 0; /* a block is a function of its own */
    node **body = parse_statements(p, ends, 1, true, &n->nx);
    p->loop_depth = saved_loops;
    if (!body) return NULL;
    n->xs = BODY(body);
    if (required)
        for (uint32_t i = 0; i < n->nx; i++) {
            const node *o = n->xs[i];
            bool blank = o->kind == N_OUTPUT;
            for (uint32_t k = 0; blank && k < o->nx; k++) {
                const tstr *d = o->xs[k]->kind == N_DATA ? o->xs[k]->val.u.s : NULL;
                for (size_t c = 0; d && c < d->len; c++)
                    if (!u_isspace((unsigned char)d->s[c])) d = NULL;
                blank = d != NULL;
            }
            if (!blank) return pfail_at(p, pos, "%s", "Required blocks can only contain comments or whitespace");
        }
    skip_name(p, n->name);
    return n;
}

/* include, import, from, extends: jinja2 compiles them and fails when they
 * run, for want of a template loader; so does this engine. */
static node *parse_loader_tag(parser *p, uint32_t pos) {
    node *n = mk(p, N_LOADER, pos);
    if (!n) return NULL;
    n->name = p->tk[p->i - 1].s;
    if (!parse_expression(p, true)) return NULL;
    while (cur(p)->type != TK_BEND && cur(p)->type != TK_EOF) adv(p);
    return n;
}

typedef struct stmt_def {
    const char *name;
    node *(*fn)(parser *, uint32_t);
} stmt_def;

static node *parse_break(parser *p, uint32_t pos) { return parse_loopctl(p, pos, true); }
static node *parse_continue(parser *p, uint32_t pos) { return parse_loopctl(p, pos, false); }

static const stmt_def stmts[] = {
    {"for", parse_for},       {"if", parse_if},           {"set", parse_set},
    {"macro", parse_macro},   {"call", parse_call_block}, {"filter", parse_filter_block},
    {"with", parse_with},     {"print", parse_print},     {"break", parse_break},
    {"continue", parse_continue}, {"generation", parse_generation}, {"block", parse_block},
    {"include", parse_loader_tag}, {"import", parse_loader_tag}, {"from", parse_loader_tag},
    {"extends", parse_loader_tag},
};

/* Tags jinja2 knows that this engine does not implement. */
static const char *const unsupported_tags[] = {"autoescape"};

static node *parse_statement(parser *p) {
    const tok *k = cur(p);
    if (k->type != TK_NAME) return pfail(p, "%s", "tag name expected");
    uint32_t pos = k->pos;
    if (!enter(p)) return NULL;
    node *n = NULL;
    bool found = false;
    for (size_t i = 0; i < RF_ARRAY_LEN(stmts); i++) {
        if (strcmp(k->s, stmts[i].name) == 0) {
            adv(p);
            n = stmts[i].fn(p, pos);
            found = true;
            break;
        }
    }
    if (!found) {
        for (size_t i = 0; i < RF_ARRAY_LEN(unsupported_tags); i++)
            if (strcmp(k->s, unsupported_tags[i]) == 0) {
                leave(p);
                return pfail(p, "tag '%s' is not supported by this template engine", k->s);
            }
        char msg[300];
        int m = snprintf(msg, sizeof msg, "Encountered unknown tag '%s'.", k->s);
        if (p->n_end > 0 && m > 0 && (size_t)m < sizeof msg) {
            const char *const *e = p->end_stack[p->n_end - 1];
            snprintf(msg + m, sizeof msg - (size_t)m,
                     " Jinja was looking for the following tags: '%s'%s%s%s%s.", e[0],
                     e[1] ? " or '" : "", e[1] ? e[1] : "", e[1] ? "'" : "", "");
        }
        leave(p);
        return pfail(p, "%s", msg);
    }
    leave(p);
    if (!n) return NULL;
    if (!expect_type(p, TK_BEND, "end of statement block")) return NULL;
    return n;
}

static bool subparse(parser *p, const char *const *end, int n_end, nvec *body) {
    nvec out = {0};
    node *outn = NULL;
    if (end) {
        if (p->n_end >= MAX_NEST) { pfail(p, "%s", "template nested too deeply"); return false; }
        for (int i = 0; i < 3; i++) p->end_stack[p->n_end][i] = i < n_end ? end[i] : NULL;
        p->n_end++;
    }
    bool ok = true;
    while (ok && !p->failed) {
        const tok *k = cur(p);
        if (k->type == TK_EOF) break;
        if (k->type == TK_DATA || k->type == TK_VBEGIN) {
            if (!outn) {
                outn = mk(p, N_OUTPUT, k->pos);
                if (!outn) { ok = false; break; }
            }
            node *item;
            if (k->type == TK_DATA) {
                item = mk(p, N_DATA, k->pos);
                if (item) {
                    tstr *s = str_new_immortal(&p->t->arena, k->s, k->n);
                    if (!s) item = poom(p);
                    else item->val = v_obj(V_STR, s);
                }
                adv(p);
            } else {
                adv(p);
                item = parse_tuple(p, false, true, NULL, false, false);
                if (item && !expect_type(p, TK_VEND, "end of print statement")) item = NULL;
            }
            if (!nv_push(p, &out, item)) { ok = false; break; }
            continue;
        }
        /* block begin */
        if (outn) {
            outn->xs = nv_done(p, &out, &outn->nx);
            if (!nv_push(p, body, outn)) { ok = false; break; }
            outn = NULL;
        }
        adv(p);
        if (end && cur(p)->type == TK_NAME) {
            bool hit = false;
            for (int i = 0; i < n_end; i++)
                if (strcmp(cur(p)->s, end[i]) == 0) hit = true;
            if (hit) goto done;
        }
        if (!nv_push(p, body, parse_statement(p))) ok = false;
    }
    if (ok && outn) {
        outn->xs = nv_done(p, &out, &outn->nx);
        if (!nv_push(p, body, outn)) ok = false;
        outn = NULL;
    }
done:
    if (outn) {
        outn->xs = nv_done(p, &out, &outn->nx);
        nv_push(p, body, outn);
    }
    rf_free(out.v);
    if (end) p->n_end--;
    return ok && !p->failed;
}

/* ---- compile-time checks ----------------------------------------------- */

/* Unknown filters and tests fail at compile time in jinja2 unless they are
 * inside an if statement or an inline if of the same function-level frame
 * (a for body, macro, call block, filter or set block starts a new one). */
static bool check_unknown(parser *p, const node *n, bool soft, int depth) {
    if (!n) return true;
    if (depth > MAX_NEST * 4) return true;
    /* x[a:b, c] left after folding: jinja2 generates invalid Python for it */
    if (n->kind == N_GETITEM && n->b && n->b->kind == N_TUPLE)
        for (uint32_t i = 0; i < n->b->nx; i++)
            if (n->b->xs[i]->kind == N_SLICE) {
                pfail_at(p, n->pos, "%s", "invalid syntax (a slice inside a tuple subscript)");
                return false;
            }
    if ((n->kind == N_FILTER || n->kind == N_TEST) && n->idx < 0 && !soft) {
        pfail_at(p, n->pos, n->kind == N_FILTER ? "No filter named '%s'." : "No test named '%s'.", n->name);
        return false;
    }
    bool inner = soft;
    switch (n->kind) {
    case N_IF: case N_COND: inner = true; break;
    default: break;
    }
    const node *kids[4] = {n->a, n->b, n->c, n->d};
    if (n->kind == N_CONST || n->kind == N_DATA) return true; /* folded */
    for (int i = 0; i < 4; i++) {
        bool s = inner;
        if (n->kind == N_FOR && i != 1) s = false;         /* only the iterable is outer */
        if (n->kind == N_SETBLOCK && i == 1) s = false;    /* its filter runs in the block frame */
        if (n->kind == N_FILTERBLOCK && i == 1) s = false;
        if (!check_unknown(p, kids[i], s, depth + 1)) return false;
    }
    bool body_soft = inner;
    if (n->kind == N_FOR || n->kind == N_MACRO || n->kind == N_CALLBLOCK ||
        n->kind == N_FILTERBLOCK || n->kind == N_SETBLOCK || n->kind == N_WITH ||
        n->kind == N_SCOPEBODY || n->kind == N_BLOCK)
        body_soft = false;
    for (uint32_t i = 0; i < n->nx; i++)
        if (!check_unknown(p, n->xs[i], body_soft, depth + 1)) return false;
    bool ys_soft = inner;
    if (n->kind == N_FOR || n->kind == N_MACRO || n->kind == N_CALLBLOCK) ys_soft = false;
    for (uint32_t i = 0; i < n->ny; i++)
        if (!check_unknown(p, n->ys[i], ys_soft, depth + 1)) return false;
    return true;
}

/* ---- entry points ------------------------------------------------------ */

rf_status tmpl_build(rf_tmpl *t, rf_error *err) {
    tok *toks = NULL;
    uint32_t nt = 0;
    t->sym_loop = tmpl_intern(t, "loop", 4);
    t->sym_caller = tmpl_intern(t, "caller", 6);
    t->sym_varargs = tmpl_intern(t, "varargs", 7);
    t->sym_kwargs = tmpl_intern(t, "kwargs", 6);
    if (!t->sym_loop || !t->sym_caller || !t->sym_varargs || !t->sym_kwargs)
        return rf_error_set(err, RF_E_NOMEM, "out of memory parsing the template");
    rf_status st = tmpl_lex(t, &toks, &nt, err);
    if (st != RF_OK) return st;
    parser p = {.t = t, .tk = toks, .nt = nt, .err = err};
    nvec body = {0};
    node *root = mk(&p, N_SCOPEBODY, 0);
    if (root && subparse(&p, NULL, 0, &body)) {
        root->xs = nv_done(&p, &body, &root->nx);
        if (!p.failed) {
            t->root = root;
            tmpl_fold(t); /* before the check: folded subtrees are gone in jinja2 too */
            check_unknown(&p, root, false, 0);
        }
    }
    rf_free(body.v);
    rf_free(toks);
    if (p.failed) return err ? err->code : RF_E_FORMAT;
    t->root = root;
    return RF_OK;
}

rf_status rf_tmpl_parse(const char *src, size_t len, rf_tmpl **out, rf_error *err) {
    *out = NULL;
    if (!src && len) return rf_error_set(err, RF_E_INVAL, "template source is NULL");
    if (len > (size_t)UINT32_MAX / 2)
        return rf_error_set(err, RF_E_RANGE, "template too large (%zu bytes)", len);
    size_t bad;
    if (!u8_valid(src, len, &bad))
        return rf_error_set(err, RF_E_FORMAT, "template is not valid UTF-8 (byte %zu)", bad);
    rf_tmpl *t = rf_calloc(1, sizeof *t);
    if (!t) return rf_error_set(err, RF_E_NOMEM, "out of memory parsing the template");
    t->src = rf_malloc(len + 1);
    if (!t->src) { rf_free(t); return rf_error_set(err, RF_E_NOMEM, "out of memory parsing the template"); }
    /* newlines: \r\n and \r become \n; one trailing newline is dropped
     * (jinja2's keep_trailing_newline=False) */
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            t->src[o++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            t->src[o++] = src[i];
        }
    }
    if (o > 0 && t->src[o - 1] == '\n') o--;
    t->src[o] = '\0';
    t->len = o;
    rf_status st = tmpl_build(t, err);
    if (st != RF_OK) {
        rf_tmpl_free(t);
        return st;
    }
    *out = t;
    return RF_OK;
}

void rf_tmpl_free(rf_tmpl *t) {
    if (!t) return;
    ta_free(&t->arena);
    rf_free(t->names);
    rf_free(t->src);
    rf_free(t);
}
