/*
 * jsongram.c - a JSON-schema acceptor for grammar-constrained sampling.
 *
 * A schema is compiled into a graph of nodes (one per sub-schema; $ref and
 * recursion become edges by index). A document in progress is a stack of
 * frames, one per open value: the root, objects, arrays, strings, numbers,
 * and literals (true/false/null, enum and const values, and object keys,
 * which are matched against the sorted list of their JSON texts). Bytes are
 * fed one at a time; each frame kind has its feeder in a table. A feeder
 * consumes the byte, rejects it, or finishes its frame without consuming it
 * (a number or literal ends at the first byte that cannot extend it), in
 * which case the byte goes on to the parent.
 *
 * Generation rules beyond the schema, to keep a sampler from wandering:
 * whitespace runs are at most JG_WS_MAX bytes with one line break, numbers at most 24
 * characters, nothing may follow the top-level value, and objects with
 * listed properties only take those (each at most once).
 */
#include "sched.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum { T_NULL = 1, T_BOOL = 2, T_INT = 4, T_NUM = 8, T_STR = 16, T_ARR = 32, T_OBJ = 64, T_ALL = 127 };

#define JG_WS_MAX 24
#define JG_NUM_MAX 24
#define JG_MAX_PROPS 64
#define JG_LIT_FALSE 0 /* built-in literals: false, true, null */
#define JG_LIT_NULL 2
#define JG_ANY 0       /* node 0: any JSON value */

typedef struct jg_lit {
    char *s;        /* JSON text, e.g. "\"name\"" for a key, "3" for an enum value */
    int32_t len;
    int32_t node;   /* keys: the node of the property's value */
} jg_lit;

typedef struct jg_node {
    uint32_t types;           /* T_* allowed; ignored when n_lits > 0 */
    int32_t lit0, n_lits;     /* enum/const: only these texts */
    int32_t prop0, n_props;   /* object: keys, sorted */
    uint64_t required;        /* bit i: key prop0 + i */
    int32_t addl;             /* object without properties: node of the values; -1: no keys */
    int32_t items;            /* array: node of the items */
    int32_t min_items, max_items; /* max < 0: none */
    int32_t min_len, max_len;     /* string length in characters; max < 0: none */
    bool done;                /* compiled (a $ref may point at a node still being built) */
} jg_node;

struct rf_jgram {
    atomic_int refs;
    jg_node *nodes;
    int32_t n_nodes, cap_nodes;
    jg_lit *lits;
    int32_t n_lits, cap_lits;
    int32_t root;
};

/* ---- compiling ------------------------------------------------------------- */

typedef struct jg_memo {
    const json_t *sch;
    int32_t node;
} jg_memo;

typedef struct jg_comp {
    rf_jgram *g;
    const json_t *root;
    jg_memo *memo;
    int32_t n_memo, cap_memo;
    int depth;
    rf_error *err;
    rf_status st;
} jg_comp;

static int32_t fail(jg_comp *c, rf_status st, const char *path, const char *what) {
    if (c->st == RF_OK) c->st = rf_error_set(c->err, st, "response schema at %s: %s", path[0] ? path : "#", what);
    return -1;
}

static int32_t new_node(jg_comp *c) {
    rf_jgram *g = c->g;
    if (g->n_nodes == g->cap_nodes) {
        int32_t cap = g->cap_nodes ? g->cap_nodes * 2 : 16;
        jg_node *nb = rf_realloc(g->nodes, (size_t)cap * sizeof *nb);
        if (!nb) return -1;
        g->nodes = nb;
        g->cap_nodes = cap;
    }
    g->nodes[g->n_nodes] = (jg_node){.types = T_ALL, .addl = JG_ANY, .items = JG_ANY, .max_items = -1, .max_len = -1};
    return g->n_nodes++;
}

/* Adds a literal (takes ownership of s). */
static bool add_lit(rf_jgram *g, char *s, int32_t node) {
    if (!s) return false;
    if (g->n_lits == g->cap_lits) {
        int32_t cap = g->cap_lits ? g->cap_lits * 2 : 16;
        jg_lit *nb = rf_realloc(g->lits, (size_t)cap * sizeof *nb);
        if (!nb) {
            rf_free(s);
            return false;
        }
        g->lits = nb;
        g->cap_lits = cap;
    }
    g->lits[g->n_lits++] = (jg_lit){s, (int32_t)strlen(s), node};
    return true;
}

static int lit_cmp(const void *a, const void *b) {
    const jg_lit *x = a, *y = b;
    int32_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->s, y->s, (size_t)n);
    if (r) return r;
    return (x->len > y->len) - (x->len < y->len); /* a prefix sorts first */
}

/* jansson's compact text of a value, copied into our allocator. */
static char *dump(const json_t *v) {
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!t) return NULL;
    char *r = rf_strndup(t, strlen(t));
    free(t);
    return r;
}

/* Keywords a generator could not honour; failing beats producing output
 * that does not validate. */
static const char *const unsupported_kw[] = {
    "pattern", "patternProperties", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "uniqueItems", "not", "if", "then", "else", "contains", "minContains", "maxContains", "prefixItems",
    "propertyNames", "dependentRequired", "dependentSchemas", "dependencies", "minProperties", "maxProperties",
    "unevaluatedProperties", "unevaluatedItems", "additionalItems",
};

static const struct { const char *name; uint32_t bits; } type_names[] = {
    {"null", T_NULL}, {"boolean", T_BOOL}, {"integer", T_INT}, {"number", T_NUM | T_INT},
    {"string", T_STR}, {"array", T_ARR}, {"object", T_OBJ},
};

static int32_t compile(jg_comp *c, const json_t *sch, const char *path);

static bool get_count(jg_comp *c, const json_t *sch, const char *key, const char *path, int32_t *out) {
    const json_t *v = json_object_get(sch, key);
    if (!v) return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 30)) {
        char m[96];
        snprintf(m, sizeof m, "'%s' must be a non-negative integer", key);
        fail(c, RF_E_FORMAT, path, m);
        return false;
    }
    *out = (int32_t)json_integer_value(v);
    return true;
}

/* Resolves "#/a/b" (JSON pointer, with ~0 and ~1) inside the root schema. */
static const json_t *resolve_ref(const json_t *root, const char *ref) {
    if (ref[0] != '#') return NULL;
    const json_t *cur = root;
    const char *p = ref + 1;
    while (*p == '/') {
        p++;
        char tok[256];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof tok) {
            if (p[0] == '~' && p[1] == '0') { tok[n++] = '~'; p += 2; }
            else if (p[0] == '~' && p[1] == '1') { tok[n++] = '/'; p += 2; }
            else tok[n++] = *p++;
        }
        tok[n] = '\0';
        if (json_is_object(cur)) cur = json_object_get(cur, tok);
        else if (json_is_array(cur)) cur = json_array_get(cur, (size_t)strtoul(tok, NULL, 10));
        else return NULL;
        if (!cur) return NULL;
    }
    return *p ? NULL : cur;
}

static bool memo_add(jg_comp *c, const json_t *sch, int32_t node) {
    if (c->n_memo == c->cap_memo) {
        int32_t cap = c->cap_memo ? c->cap_memo * 2 : 16;
        jg_memo *nb = rf_realloc(c->memo, (size_t)cap * sizeof *nb);
        if (!nb) return false;
        c->memo = nb;
        c->cap_memo = cap;
    }
    c->memo[c->n_memo++] = (jg_memo){sch, node};
    return true;
}

/* `sch` stands for node `to`: later uses of it get `to`, and the node
 * allocated for it (`id`) stays unused (marked done so nothing trips). */
static int32_t memo_redirect(jg_comp *c, const json_t *sch, int32_t id, int32_t to) {
    for (int32_t i = 0; i < c->n_memo; i++)
        if (c->memo[i].sch == sch) c->memo[i].node = to;
    c->g->nodes[id].done = true;
    return to;
}

/* Fills node `id` as the union of branches whose first bytes differ. */
static int32_t compile_union(jg_comp *c, int32_t id, const json_t *arr, const char *kw, const char *path) {
    if (!json_is_array(arr) || json_array_size(arr) == 0) return fail(c, RF_E_FORMAT, path, "anyOf/oneOf must be a non-empty array");
    uint32_t seen = 0;
    jg_node acc = c->g->nodes[id];
    acc.types = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s/%s/%zu", path, kw, i);
        int32_t b = compile(c, json_array_get(arr, i), sub);
        if (b < 0) return -1;
        const jg_node *bn = &c->g->nodes[b];
        if (!bn->done) return fail(c, RF_E_UNSUPPORTED, sub, "a recursive anyOf branch");
        if (json_array_size(arr) == 1) { c->g->nodes[id] = *bn; return id; }
        if (bn->n_lits) return fail(c, RF_E_UNSUPPORTED, sub, "enum/const inside anyOf/oneOf");
        uint32_t cls = bn->types;
        if (cls & (T_INT | T_NUM)) cls |= T_INT | T_NUM; /* both start with a digit */
        if (cls & seen)
            return fail(c, RF_E_UNSUPPORTED, sub, "anyOf/oneOf branches of the same JSON type (the acceptor picks a branch by the value's first byte)");
        seen |= cls;
        acc.types |= bn->types;
        if (bn->types & T_OBJ) { acc.prop0 = bn->prop0; acc.n_props = bn->n_props; acc.required = bn->required; acc.addl = bn->addl; }
        if (bn->types & T_ARR) { acc.items = bn->items; acc.min_items = bn->min_items; acc.max_items = bn->max_items; }
        if (bn->types & T_STR) { acc.min_len = bn->min_len; acc.max_len = bn->max_len; }
    }
    acc.done = true;
    c->g->nodes[id] = acc;
    return id;
}

static int32_t compile_object(jg_comp *c, int32_t id, const json_t *sch, const char *path) {
    const json_t *props = json_object_get(sch, "properties");
    const json_t *req = json_object_get(sch, "required");
    const json_t *addl = json_object_get(sch, "additionalProperties");
    if (props && !json_is_object(props)) return fail(c, RF_E_FORMAT, path, "'properties' must be an object");
    if (req && !json_is_array(req)) return fail(c, RF_E_FORMAT, path, "'required' must be an array");
    size_t np = props ? json_object_size(props) : 0;
    if (np > JG_MAX_PROPS) return fail(c, RF_E_UNSUPPORTED, path, "more than 64 properties in one object");
    if (np) {
        /* children first (they add literals of their own), then this
         * object's keys as one contiguous, sorted run */
        int32_t pnodes[JG_MAX_PROPS];
        const char *names[JG_MAX_PROPS];
        size_t i = 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)props, k, v) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s/properties/%s", path, k);
            if ((pnodes[i] = compile(c, v, sub)) < 0) return -1;
            names[i++] = k;
        }
        int32_t first = c->g->n_lits;
        for (i = 0; i < np; i++) {
            json_t *ks = json_string(names[i]);
            char *text = ks ? dump(ks) : NULL;
            json_decref(ks);
            if (!add_lit(c->g, text, pnodes[i])) return fail(c, RF_E_NOMEM, path, "out of memory");
        }
        qsort(c->g->lits + first, np, sizeof(jg_lit), lit_cmp);
        jg_node *n = &c->g->nodes[id];
        n->prop0 = first;
        n->n_props = (int32_t)np;
        n->addl = -1;
        for (size_t q = 0; req && q < json_array_size(req); q++) {
            const json_t *r = json_array_get(req, q);
            if (!json_is_string(r)) return fail(c, RF_E_FORMAT, path, "'required' must list strings");
            int32_t found = -1;
            for (int32_t p = 0; p < n->n_props && found < 0; p++) {
                const jg_lit *l = &c->g->lits[n->prop0 + p];
                json_t *ks = json_string(json_string_value(r));
                char *text = ks ? dump(ks) : NULL;
                json_decref(ks);
                if (text && strcmp(text, l->s) == 0) found = p;
                rf_free(text);
            }
            if (found < 0) return fail(c, RF_E_UNSUPPORTED, path, "a required property that is not in 'properties'");
            n->required |= 1ull << found;
        }
    } else {
        if (req && json_array_size(req) > 0) return fail(c, RF_E_UNSUPPORTED, path, "'required' without 'properties'");
        int32_t a = JG_ANY;
        if (json_is_false(addl)) a = -1;
        else if (addl && !json_is_true(addl)) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s/additionalProperties", path);
            if ((a = compile(c, addl, sub)) < 0) return -1;
        }
        c->g->nodes[id].addl = a;
    }
    return id;
}

static int32_t compile(jg_comp *c, const json_t *sch, const char *path) {
    if (c->st != RF_OK) return -1;
    if (json_is_true(sch)) return JG_ANY;
    if (json_is_false(sch)) return fail(c, RF_E_UNSUPPORTED, path, "the schema 'false' admits nothing");
    if (!json_is_object(sch)) return fail(c, RF_E_FORMAT, path, "a schema must be an object or a boolean");
    for (int32_t i = 0; i < c->n_memo; i++)
        if (c->memo[i].sch == sch) return c->memo[i].node;
    if (++c->depth > 64) return fail(c, RF_E_UNSUPPORTED, path, "schema nesting deeper than 64");
    int32_t id = new_node(c);
    if (id < 0 || !memo_add(c, sch, id)) return fail(c, RF_E_NOMEM, path, "out of memory");
    int32_t r = id;

    for (size_t i = 0; i < RF_ARRAY_LEN(unsupported_kw); i++)
        if (json_object_get(sch, unsupported_kw[i])) {
            char m[128];
            snprintf(m, sizeof m, "keyword '%s' is not supported for constrained output", unsupported_kw[i]);
            return fail(c, RF_E_UNSUPPORTED, path, m);
        }
    const json_t *ref = json_object_get(sch, "$ref");
    const json_t *all = json_object_get(sch, "allOf");
    const json_t *any = json_object_get(sch, "anyOf");
    if (!any) any = json_object_get(sch, "oneOf");
    if (ref) {
        if (!json_is_string(ref)) return fail(c, RF_E_FORMAT, path, "'$ref' must be a string");
        const json_t *t = resolve_ref(c->root, json_string_value(ref));
        if (!t) return fail(c, RF_E_UNSUPPORTED, path, "'$ref' must point inside this schema (#/...)");
        int32_t tn = compile(c, t, json_string_value(ref));
        if (tn < 0) return -1;
        if (tn == id) return fail(c, RF_E_UNSUPPORTED, path, "a '$ref' that points at itself");
        r = memo_redirect(c, sch, id, tn); /* by index: recursion through $ref works */
    } else if (all) {
        if (!json_is_array(all) || json_array_size(all) != 1)
            return fail(c, RF_E_UNSUPPORTED, path, "'allOf' with other than exactly one schema");
        char sub[512];
        snprintf(sub, sizeof sub, "%s/allOf/0", path);
        int32_t tn = compile(c, json_array_get(all, 0), sub);
        if (tn < 0) return -1;
        r = memo_redirect(c, sch, id, tn);
    } else if (any) {
        r = compile_union(c, id, any, json_object_get(sch, "anyOf") ? "anyOf" : "oneOf", path);
    } else {
        const json_t *en = json_object_get(sch, "enum"), *cn = json_object_get(sch, "const");
        if (en || cn) {
            if (en && (!json_is_array(en) || json_array_size(en) == 0)) return fail(c, RF_E_FORMAT, path, "'enum' must be a non-empty array");
            int32_t first = c->g->n_lits;
            size_t n = en ? json_array_size(en) : 1;
            for (size_t i = 0; i < n; i++) {
                char *t = dump(en ? json_array_get(en, i) : cn);
                bool dup = false;
                for (int32_t k = first; t && k < c->g->n_lits; k++) dup |= strcmp(c->g->lits[k].s, t) == 0;
                if (dup) { rf_free(t); continue; }
                if (!add_lit(c->g, t, -1)) return fail(c, RF_E_NOMEM, path, "out of memory");
            }
            qsort(c->g->lits + first, (size_t)(c->g->n_lits - first), sizeof(jg_lit), lit_cmp);
            c->g->nodes[id].lit0 = first;
            c->g->nodes[id].n_lits = c->g->n_lits - first;
        } else {
            const json_t *ty = json_object_get(sch, "type");
            uint32_t types = 0;
            if (ty) {
                size_t nt = json_is_array(ty) ? json_array_size(ty) : 1;
                for (size_t i = 0; i < nt; i++) {
                    const json_t *t = json_is_array(ty) ? json_array_get(ty, i) : ty;
                    uint32_t bits = 0;
                    for (size_t k = 0; json_is_string(t) && k < RF_ARRAY_LEN(type_names); k++)
                        if (strcmp(json_string_value(t), type_names[k].name) == 0) bits = type_names[k].bits;
                    if (!bits) return fail(c, RF_E_FORMAT, path, "'type' names an unknown type");
                    types |= bits;
                }
            } else {
                if (json_object_get(sch, "properties") || json_object_get(sch, "additionalProperties") || json_object_get(sch, "required")) types |= T_OBJ;
                if (json_object_get(sch, "items") || json_object_get(sch, "minItems") || json_object_get(sch, "maxItems")) types |= T_ARR;
                if (json_object_get(sch, "minLength") || json_object_get(sch, "maxLength")) types |= T_STR;
                if (!types) types = T_ALL;
            }
            c->g->nodes[id].types = types;
            if (types & T_OBJ && compile_object(c, id, sch, path) < 0) return -1;
            if (types & T_ARR) {
                const json_t *it = json_object_get(sch, "items");
                if (json_is_array(it)) return fail(c, RF_E_UNSUPPORTED, path, "tuple 'items' (an array of schemas)");
                int32_t in = JG_ANY;
                if (it) {
                    char sub[512];
                    snprintf(sub, sizeof sub, "%s/items", path);
                    if ((in = compile(c, it, sub)) < 0) return -1;
                }
                int32_t mn = 0, mx = -1;
                if (!get_count(c, sch, "minItems", path, &mn) || !get_count(c, sch, "maxItems", path, &mx)) return -1;
                if (mx >= 0 && mx < mn) return fail(c, RF_E_FORMAT, path, "maxItems < minItems");
                jg_node *n = &c->g->nodes[id];
                n->items = in;
                n->min_items = mn;
                n->max_items = mx;
            }
            if (types & T_STR) {
                int32_t mn = 0, mx = -1;
                if (!get_count(c, sch, "minLength", path, &mn) || !get_count(c, sch, "maxLength", path, &mx)) return -1;
                if (mx >= 0 && mx < mn) return fail(c, RF_E_FORMAT, path, "maxLength < minLength");
                c->g->nodes[id].min_len = mn;
                c->g->nodes[id].max_len = mx;
            }
        }
    }
    if (r >= 0) c->g->nodes[id].done = true;
    if (r >= 0 && c->st != RF_OK) r = -1;
    c->depth--;
    return r;
}

rf_status rf_jgram_compile(const json_t *schema, rf_jgram **out, rf_error *err) {
    *out = NULL;
    rf_jgram *g = rf_calloc(1, sizeof *g);
    if (!g) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    atomic_init(&g->refs, 1);
    jg_comp c = {.g = g, .root = schema, .err = err, .st = RF_OK};
    /* node 0 = any value; literals 0..2 = false, true, null (sorted) */
    if (new_node(&c) != JG_ANY || !add_lit(g, rf_strndup("false", 5), -1) || !add_lit(g, rf_strndup("true", 4), -1) ||
        !add_lit(g, rf_strndup("null", 4), -1)) {
        rf_jgram_unref(g);
        return rf_error_set(err, RF_E_NOMEM, "out of memory");
    }
    g->nodes[JG_ANY].done = true;
    if (schema) {
        g->root = compile(&c, schema, "#");
    } else { /* json_object: any object */
        g->root = new_node(&c);
        if (g->root >= 0) {
            g->nodes[g->root].types = T_OBJ;
            g->nodes[g->root].done = true;
        } else {
            c.st = rf_error_set(err, RF_E_NOMEM, "out of memory");
        }
    }
    rf_free(c.memo);
    if (c.st != RF_OK || g->root < 0) {
        rf_jgram_unref(g);
        return c.st != RF_OK ? c.st : rf_error_set(err, RF_E_NOMEM, "out of memory");
    }
    *out = g;
    return RF_OK;
}

rf_jgram *rf_jgram_ref(rf_jgram *g) {
    atomic_fetch_add(&g->refs, 1);
    return g;
}

void rf_jgram_unref(rf_jgram *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    for (int32_t i = 0; i < g->n_lits; i++) rf_free(g->lits[i].s);
    rf_free(g->lits);
    rf_free(g->nodes);
    rf_free(g);
}

/* ---- accepting ----------------------------------------------------------------- */

enum { K_ROOT, K_OBJ, K_ARR, K_STR, K_NUM, K_LIT, K_COUNT };
enum { R_OK, R_REJECT, R_REFEED };
enum { END = -1 };
enum { RT_VAL, RT_IN, RT_DONE };                                     /* root */
enum { O_START, O_KEY, O_COLON, O_VAL, O_VALIN, O_AFTER, O_NEXT };   /* object */
enum { A_START, A_VALIN, A_AFTER, A_NEXT };                          /* array */
enum { S_CHAR, S_ESC, S_HEX, S_UTF };                                /* string */
enum { N_START, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP }; /* number */
enum { L_VALUE, L_KEY };                                             /* literal */

static bool is_ws(int c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* Whitespace between tokens: a run holds at most JG_WS_MAX bytes and one
 * line break (f->u marks it; u is free in every frame but strings). */
static int take_ws(rf_jframe *f, int c) {
    if (c == '\n' || c == '\r') {
        if (f->u) return R_REJECT;
        f->u = 1;
    }
    return ++f->ws <= JG_WS_MAX ? R_OK : R_REJECT;
}

static void ws_reset(rf_jframe *f) {
    f->ws = 0;
    f->u = 0;
}

static rf_jframe *push(rf_jstate *s, uint8_t kind, int32_t node) {
    if (s->depth >= RF_JG_MAX_DEPTH) return NULL;
    rf_jframe *f = &s->f[s->depth++];
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->node = node;
    return f;
}

/* Pops the finished top frame and moves its parent past the value. */
static void pop_complete(const rf_jgram *g, rf_jstate *s) {
    rf_jframe child = s->f[--s->depth];
    rf_jframe *p = &s->f[s->depth - 1];
    ws_reset(p);
    if (p->kind == K_ROOT) {
        p->st = RT_DONE;
    } else if (p->kind == K_OBJ) {
        if (p->st == O_KEY) {
            if (child.kind == K_LIT) {
                p->key = child.lo - g->nodes[p->node].prop0;
                p->used |= 1ull << p->key;
            } else {
                p->key = -1;
            }
            p->st = O_COLON;
        } else {
            p->st = O_AFTER;
        }
    } else if (p->kind == K_ARR) {
        p->n++;
        p->st = A_AFTER;
    }
}

static int feed_lit(const rf_jgram *g, rf_jstate *s, rf_jframe *f, int c);
static int feed_num(const rf_jgram *g, rf_jstate *s, rf_jframe *f, int c);

/* Opens a value of `node` whose first byte is c; the caller has already
 * moved itself to its "value in progress" state. */
static int start_value(const rf_jgram *g, rf_jstate *s, int32_t node, int c) {
    const jg_node *n = &g->nodes[node];
    rf_jframe *f;
    if (n->n_lits) {
        if (!(f = push(s, K_LIT, node))) return R_REJECT;
        f->lo = n->lit0;
        f->hi = n->lit0 + n->n_lits;
        return feed_lit(g, s, f, c);
    }
    uint32_t t = n->types;
    if (c == '{' && (t & T_OBJ)) return push(s, K_OBJ, node) ? R_OK : R_REJECT;
    if (c == '[' && (t & T_ARR)) return push(s, K_ARR, node) ? R_OK : R_REJECT;
    if (c == '"' && (t & T_STR)) return push(s, K_STR, node) ? R_OK : R_REJECT;
    if ((c == '-' || is_digit(c)) && (t & (T_INT | T_NUM))) {
        if (!(f = push(s, K_NUM, node))) return R_REJECT;
        return feed_num(g, s, f, c);
    }
    if ((c == 't' || c == 'f') && (t & T_BOOL)) {
        if (!(f = push(s, K_LIT, node))) return R_REJECT;
        f->lo = JG_LIT_FALSE;
        f->hi = JG_LIT_FALSE + 2;
        return feed_lit(g, s, f, c);
    }
    if (c == 'n' && (t & T_NULL)) {
        if (!(f = push(s, K_LIT, node))) return R_REJECT;
        f->lo = JG_LIT_NULL;
        f->hi = JG_LIT_NULL + 1;
        return feed_lit(g, s, f, c);
    }
    return R_REJECT;
}

static int feed_root(const rf_jgram *g, rf_jstate *s, rf_jframe *f, int c) {
    if (f->st == RT_DONE) return R_REJECT; /* END is handled by the caller */
    if (c == END) return R_REJECT;
    if (is_ws(c)) return take_ws(f, c);
    f->st = RT_IN;
    return start_value(g, s, g->root, c);
}

static bool key_unused(const rf_jgram *g, const rf_jframe *obj, int32_t lit) {
    return !(obj->used >> (lit - g->nodes[obj->node].prop0) & 1);
}

static int open_key(const rf_jgram *g, rf_jstate *s, rf_jframe *f) {
    const jg_node *n = &g->nodes[f->node];
    f->st = O_KEY;
    ws_reset(f);
    if (n->n_props) {
        rf_jframe *k = push(s, K_LIT, f->node);
        if (!k) return R_REJECT;
        k->st = L_KEY;
        k->lo = n->prop0;
        k->hi = n->prop0 + n->n_props;
        return feed_lit(g, s, k, '"');
    }
    if (n->addl < 0) return R_REJECT;
    rf_jframe *k = push(s, K_STR, -1);
    return k ? R_OK : R_REJECT;
}

static int feed_obj(const rf_jgram *g, rf_jstate *s, rf_jframe *f, int c) {
    const jg_node *n = &g->nodes[f->node];
    if (c == END) return R_REJECT;
    bool closable = (f->used & n->required) == n->required;
    switch (f->st) {
    case O_START:
    case O_NEXT:
        if (is_ws(c)) return take_ws(f, c);
        if (c == '}' && f->st == O_START && closable) { pop_complete(g, s); return R_OK; }
        if (c == '"') return open_key(g, s, f);
        return R_REJECT;
    case O_COLON:
        if (is_ws(c)) return take_ws(f, c);
        if (c != ':') return R_REJECT;
        f->st = O_VAL;
        ws_reset(f);
        return R_OK;
    case O_VAL:
        if (is_ws(c)) return take_ws(f, c);
        f->st = O_VALIN;
        return start_value(g, s, f->key >= 0 ? g->lits[n->prop0 + f->key].node : n->addl, c);
    case O_AFTER:
        if (is_ws(c)) return take_ws(f, c);
        if (c == '}' && closable) { pop_complete(g, s); return R_OK; }
        if (c == ',') {
            bool more = n->n_props == 0 || f->used != (n->n_props == 64 ? ~0ull : (1ull << n->n_props) - 1);
            if (!more) return R_REJECT;
            f->st = O_NEXT;
            ws_reset(f);
            return R_OK;
        }
        return R_REJECT;
    default:
        return R_REJECT; /* a child is on top; never reached */
    }
}

static int feed_arr(const rf_jgram *g, rf_jstate *s, rf_jframe *f, int c) {
    const jg_node *n = &g->nodes[f->node];
    if (c == END) return R_REJECT;
    switch (f->st) {
    case A_START:
    case A_NEXT:
        if (is_ws(c)) return take_ws(f, c);
        if (c == ']' && f->st == A_START && n->min_items == 0) { pop_complete(g, s); return R_OK; }
        if (n->max_items >= 0 && f->n >= n->max_items) return R_REJECT;
        f->st = A_VALIN;
        return start_value(g, s, n->items, c);
    case A_AFTER:
        if (is_ws(c)) return take_ws(f, c);
        if (c == ']' && f->n >= n->min_items) { pop_complete(g, s); return R_OK; }
        if (c == ',' && (n->max_items < 0 || f->n < n->max_items)) {
            f->st = A_NEXT;
            ws_reset(f);
            return R_OK;
        }
        return R_REJECT;
    default:
        return R_REJECT;
    }
}

static int feed_str(const rf_jgram *g, rf_jstate *s, rf_jframe *f, int c) {
    int32_t mn = f->node >= 0 ? g->nodes[f->node].min_len : 0;
    int32_t mx = f->node >= 0 ? g->nodes[f->node].max_len : -1;
    if (c == END) return R_REJECT;
    bool room = mx < 0 || f->n < mx;
    switch (f->st) {
    case S_CHAR:
        if (c == '"') {
            if (f->n < mn) return R_REJECT;
            pop_complete(g, s);
            return R_OK;
        }
        if (!room || c < 0x20) return R_REJECT;
        f->n++;
        if (c == '\\') { f->st = S_ESC; return R_OK; }
        if (c < 0x80) return R_OK;
        if (c >= 0xC2 && c <= 0xDF) f->u = 1;
        else if (c >= 0xE0 && c <= 0xEF) f->u = 2;
        else if (c >= 0xF0 && c <= 0xF4) f->u = 3;
        else return R_REJECT;
        f->st = S_UTF;
        return R_OK;
    case S_UTF:
        if (c < 0x80 || c > 0xBF) return R_REJECT;
        if (--f->u == 0) f->st = S_CHAR;
        return R_OK;
    case S_ESC:
        if (c == 'u') { f->st = S_HEX; f->u = 4; return R_OK; }
        if (!strchr("\"\\/bfnrt", c)) return R_REJECT;
        f->st = S_CHAR;
        return R_OK;
    case S_HEX:
        if (!is_hex(c)) return R_REJECT;
        if (--f->u == 0) f->st = S_CHAR;
        return R_OK;
    default:
        return R_REJECT;
    }
}

static int feed_num(const rf_jgram *g, rf_jstate *s, rf_jframe *f, int c) {
    bool int_only = !(g->nodes[f->node].types & T_NUM);
    bool digit = c >= 0 && is_digit(c), ee = c == 'e' || c == 'E';
    int next = -1;
    switch (f->st) {
    case N_START: next = c == '-' ? N_MINUS : c == '0' ? N_ZERO : digit ? N_INT : -1; break;
    case N_MINUS: next = c == '0' ? N_ZERO : digit ? N_INT : -1; break;
    case N_ZERO: next = int_only ? -1 : c == '.' ? N_DOT : ee ? N_E : -1; break;
    case N_INT: next = digit ? N_INT : int_only ? -1 : c == '.' ? N_DOT : ee ? N_E : -1; break;
    case N_DOT: next = digit ? N_FRAC : -1; break;
    case N_FRAC: next = digit ? N_FRAC : ee ? N_E : -1; break;
    case N_E: next = (c == '+' || c == '-') ? N_ESIGN : digit ? N_EXP : -1; break;
    case N_ESIGN: case N_EXP: next = digit ? N_EXP : -1; break;
    default: break;
    }
    if (next >= 0 && f->n < JG_NUM_MAX) {
        f->st = (uint8_t)next;
        f->n++;
        return R_OK;
    }
    bool accepting = f->st == N_ZERO || f->st == N_INT || f->st == N_FRAC || f->st == N_EXP;
    if (!accepting) return R_REJECT;
    pop_complete(g, s);
    return R_REFEED;
}

/* Literal candidates [lo, hi) share the first n bytes; the list is sorted,
 * so the ones that continue with c are contiguous, and an exact match (a
 * candidate of length n) is the first of the range. */
static int feed_lit(const rf_jgram *g, rf_jstate *s, rf_jframe *f, int c) {
    const rf_jframe *obj = f->st == L_KEY ? &s->f[s->depth - 2] : NULL;
    const jg_lit *L = g->lits;
    int32_t a = -1, b = -1;
    if (c != END)
        for (int32_t i = f->lo; i < f->hi; i++) {
            if (L[i].len > f->n && (unsigned char)L[i].s[f->n] == c) {
                if (a < 0) a = i;
                b = i;
            } else if (a >= 0) {
                break;
            }
        }
    if (a >= 0 && obj) { /* keys: some candidate must still be unused */
        bool any = false;
        for (int32_t i = a; i <= b && !any; i++) any = key_unused(g, obj, i);
        if (!any) a = -1;
    }
    if (a >= 0) {
        f->lo = a;
        f->hi = b + 1;
        f->n++;
        if (f->hi - f->lo == 1 && L[f->lo].len == f->n) pop_complete(g, s);
        return R_OK;
    }
    if (L[f->lo].len == f->n && (!obj || key_unused(g, obj, f->lo))) {
        pop_complete(g, s);
        return R_REFEED;
    }
    return R_REJECT;
}

typedef int (*jg_feeder)(const rf_jgram *g, rf_jstate *s, rf_jframe *f, int c);
static const jg_feeder feeders[K_COUNT] = {
    [K_ROOT] = feed_root, [K_OBJ] = feed_obj, [K_ARR] = feed_arr,
    [K_STR] = feed_str,   [K_NUM] = feed_num, [K_LIT] = feed_lit,
};
_Static_assert(K_COUNT == 6, "one feeder per frame kind");

static bool feed1(const rf_jgram *g, rf_jstate *s, int c) {
    for (;;) {
        rf_jframe *f = &s->f[s->depth - 1];
        if (c == END && f->kind == K_ROOT) return f->st == RT_DONE;
        int r = feeders[f->kind](g, s, f, c);
        if (r != R_REFEED) return r == R_OK;
    }
}

void rf_jstate_init(const rf_jgram *g, rf_jstate *s) {
    (void)g;
    s->depth = 0;
    push(s, K_ROOT, -1);
}

bool rf_jstate_feed(const rf_jgram *g, rf_jstate *s, const char *bytes, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!feed1(g, s, (unsigned char)bytes[i])) return false;
    return true;
}

bool rf_jstate_accepting(const rf_jgram *g, const rf_jstate *s) {
    rf_jstate t;
    memcpy(&t, s, offsetof(rf_jstate, f) + (size_t)s->depth * sizeof(rf_jframe));
    return feed1(g, &t, END);
}

bool rf_jstate_closed(const rf_jgram *g, const rf_jstate *s) {
    (void)g;
    return s->depth == 1 && s->f[0].st == RT_DONE;
}
