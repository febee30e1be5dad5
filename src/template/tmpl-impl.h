/*
 * tmpl-impl.h - what the template module's files share: the value type
 * (tv) and its heap objects, the AST the parser builds and the evaluator
 * walks, the render context (rx) with its limits, and the helpers each
 * file exports to the others. Nothing outside src/template includes this.
 *
 * Memory. Strings, lists, dicts, bound methods, loop objects and scopes are
 * reference counted (a tv held in a variable, a list slot or a function's
 * result owns one reference). Lists and dicts never change after they are
 * built (the sandbox forbids append/update), so they cannot form cycles.
 * The objects that can (namespaces, whose attributes are set later;
 * macros, which hold their defining scope while that scope holds them) are
 * owned by the render instead: their reference count is negative
 * ("immortal"), they sit on the render's registry and are freed when the
 * render ends. AST constants are immortal too and live in the template's
 * arena, so renders never write to a shared template.
 */
#ifndef RF_TMPL_IMPL_H
#define RF_TMPL_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/core.h"
#include "template/template.h"

/* ---- values ------------------------------------------------------------ */

typedef enum vkind {
    V_UNDEF,  /* jinja2's Undefined; uk/u.name say how it arose */
    V_NONE,
    V_BOOL,
    V_INT,    /* int64; results that overflow are errors (Python has bignums) */
    V_FLOAT,
    V_STR,
    V_LIST,   /* also tuples and dict views (tlist.h.flavor) */
    V_DICT,   /* insertion ordered */
    V_FUNC,   /* a global function (range, dict, ...): u.i indexes the table */
    V_METHOD, /* a bound method: tmethod */
    V_MACRO,  /* a macro or a call block's caller: tmacro (render-owned) */
    V_NS,     /* namespace(): tns (render-owned) */
    V_LOOP,   /* a for loop's `loop`: tloop */
    V_CYCLER, /* cycler(...) (render-owned) */
    V_JOINER, /* joiner(sep) (render-owned) */
    V_SCOPE,  /* internal: a variable scope (never a template value) */
    V_KIND_COUNT
} vkind;

enum { VF_SAFE = 1 }; /* tv.fl: a string marked safe (markupsafe.Markup) */

/* How an undefined arose: decides its message (and SecurityError). */
enum { U_NAME, U_ATTR, U_ITEM, U_HINT, U_UNSAFE };

/* List flavors: how a tlist prints and behaves. Generators (results of
 * map/select/... and |items) and reverse iterators are truthy, have no
 * len() and can be iterated once, as in Python. */
enum { FL_LIST, FL_TUPLE, FL_ITEMS, FL_KEYS, FL_VALUES, FL_GEN, FL_REVITER };
#define LIST_CONSUMED 1 /* tlist.h.spare: a generator already iterated */
#define LIST_RAISES 2   /* a generator whose creation failed: v[0] is the error
                         * message, raised when it is iterated (Python
                         * generators fail lazily) */

typedef struct obj {
    int32_t rc;       /* < 0: immortal (AST constant or render-owned) */
    uint8_t kind;     /* vkind */
    uint8_t flavor;   /* FL_* for lists */
    uint16_t spare;
    struct obj *next; /* free-stack link, or registry link when render-owned */
} obj;

typedef struct tstr {
    obj h;
    bool ascii; /* all bytes < 0x80: code point ops are byte ops */
    size_t len;
    char s[];   /* len bytes + NUL */
} tstr;

typedef struct tv {
    uint8_t k;  /* vkind */
    uint8_t fl; /* VF_* */
    uint8_t uk; /* V_UNDEF: U_* */
    uint8_t ut; /* V_UNDEF of U_ATTR/U_ITEM/U_UNSAFE: vkind of the object */
    uint32_t spare;
    union {
        bool b;
        int64_t i;
        double f;
        tstr *s;
        struct tlist *l;
        struct tdict *d;
        obj *o;
        const char *name; /* V_UNDEF: static or template-owned text, or NULL */
    } u;
} tv;

typedef struct tlist {
    obj h;
    uint32_t n, cap;
    tv *v;
} tlist;

typedef struct dent {
    tv k, v;
    uint64_t hash;
} dent;

typedef struct tdict {
    obj h;
    uint32_t n, cap;
    dent *e;
    uint32_t *idx; /* open addressing over e (index+1, 0 empty); NULL while small */
    uint32_t idx_cap;
} tdict;

typedef struct tmethod {
    obj h;
    tv self;
    int mid; /* index into the method table (methods.c) */
} tmethod;

typedef struct tns {
    obj h;
    tdict *attrs;
} tns;

struct node;
struct scope;

typedef struct tmacro {
    obj h;
    const struct node *def; /* N_MACRO or N_CALLBLOCK */
    struct scope *closure;  /* counted reference */
    const char *name;
} tmacro;

typedef struct tloop {
    obj h;
    tlist *items;           /* counted; released when the loop ends */
    int64_t i0;             /* current index0 */
    int32_t depth0;
    bool has_changed;
    tv changed;             /* last loop.changed() arguments */
    const struct node *forn; /* the recursive for, for loop(...) */
    struct scope *outer;    /* counted; the scope the for statement runs in */
} tloop;

typedef struct tcycler {
    obj h;
    tlist *items;
    int64_t pos;
} tcycler;

typedef struct tjoiner {
    obj h;
    tstr *sep;
    bool used;
} tjoiner;

typedef struct scope {
    obj h;
    struct scope *parent; /* counted */
    uint32_t n, cap;
    const char **names;   /* interned template names: compared by pointer */
    tv *vals;
} scope;

/* ---- AST --------------------------------------------------------------- */

typedef enum nkind {
    /* expressions */
    N_CONST, N_NAME, N_GETATTR, N_GETITEM, N_SLICE, N_CALL, N_FILTER, N_TEST,
    N_NOT, N_NEG, N_POS, N_BINOP, N_AND, N_OR, N_COMPARE, N_CONCAT, N_COND,
    N_LIST, N_TUPLE, N_DICT, N_PAIR, N_KWARG, N_NSREF, N_OPERAND,
    /* statements */
    N_DATA, N_OUTPUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK,
    N_FILTERBLOCK, N_BREAK, N_CONTINUE, N_WITH, N_PARAM, N_SCOPEBODY, N_BLOCK, N_LOADER,
    N_KIND_COUNT
} nkind;

/* N_BINOP ops and N_OPERAND comparison ops */
enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
       OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN };

enum { NF_RECURSIVE = 1, NF_USES_CALLER = 2, NF_USES_VARARGS = 4, NF_USES_KWARGS = 8,
       NF_SCOPED = 16 };

/* Children by kind (a, b, c, d; xs[nx]; ys[ny]):
 *   GETATTR a.name   GETITEM a[b]   SLICE a:b:c (NULL parts)
 *   CALL a(xs args; ys kwargs; c *dyn; d **dyn)
 *   FILTER a|name(xs; ys; c; d), a NULL in filter blocks; idx filter index or -1
 *   TEST a is name(xs; ys; c; d); idx test index or -1
 *   NOT/NEG/POS a    BINOP a op b    AND/OR a b    COMPARE a, xs OPERAND(op, a)
 *   CONCAT xs    COND a=value b=test c=else (NULL)    LIST/TUPLE xs    DICT xs PAIR(a: b)
 *   KWARG name=a    NSREF name.attr (ns.attr as an assignment target)
 *   DATA val (str)    OUTPUT xs (DATA and expressions)    IF a, xs body, ys else (an
 *   elif is an IF alone in ys)
 *   FOR a target, b iter, c filter, xs body, ys else    SET a = b
 *   SETBLOCK a target, b filter (FILTER chain with NULL input) or NULL, xs body
 *   MACRO name, ys PARAM(name, a default), xs body    CALLBLOCK a call, ys params, xs body
 *   FILTERBLOCK b filter chain, xs body    WITH ys SET nodes, xs body
 *   SCOPEBODY xs (the template root; {% generation %} bodies, rendered in place)
 *   BLOCK name, xs body (flags NF_SCOPED)    LOADER name = the tag (include, ...) */
typedef struct node {
    uint16_t kind;
    int16_t op;
    uint32_t pos;  /* byte offset in the normalized source */
    uint32_t flags;
    int32_t idx;
    struct node *a, *b, *c, *d;
    struct node **xs, **ys;
    uint32_t nx, ny;
    const char *name; /* interned identifier or filter/test/attr name */
    const char *attr; /* N_NSREF attribute */
    tv val;           /* N_CONST, N_DATA (immortal) */
} node;

/* ---- template ---------------------------------------------------------- */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
} arena_chunk;

typedef struct tarena {
    arena_chunk *head;
} tarena;

struct rf_tmpl {
    char *src;    /* normalized source (\r\n -> \n, one trailing \n dropped), owned */
    size_t len;
    node *root;   /* N_SCOPEBODY */
    tarena arena; /* nodes, arrays, names, constant strings */
    const char **names; /* intern table (open addressing) */
    uint32_t n_names, cap_names;
    const char *sym_loop, *sym_caller, *sym_varargs, *sym_kwargs;
};

void *ta_alloc(tarena *a, size_t n); /* zeroed; NULL on OOM */
void ta_free(tarena *a);
/* Interned copy of name[0..n): the same pointer for the same text. */
const char *tmpl_intern(rf_tmpl *t, const char *name, size_t n);
/* "line L:C" of byte offset pos into buf. */
void tmpl_linecol(const char *src, size_t len, uint32_t pos, int *line, int *col);

/* lexer.c / parser.c */
rf_status tmpl_build(rf_tmpl *t, rf_error *err);
/* render.c: jinja2's constant folding over the parsed tree (literal-only
 * expressions become constants, literal-only {{ }} become text). */
void tmpl_fold(rf_tmpl *t);

/* ---- render context ---------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

typedef struct rx {
    const rf_tmpl *t;
    rf_error *err;
    bool failed;
    bool fatal;         /* the error is a limit or out of memory: never caught */
    bool const_mode;    /* folding constants at parse time (render.c) */
    uint32_t pos;       /* position of the node being evaluated, for messages */
    scope *sc;          /* current scope (borrowed from the call stack) */
    scope *root_sc;     /* the template's top-level scope (blocks see it) */
    tdict *vars;        /* the render's variables (context) */
    sbuf *out;          /* current output buffer */
    uint64_t iters, max_iters;
    uint32_t depth, max_depth;
    size_t max_output;
    uint64_t alloc, max_alloc;
    obj *registry;      /* render-owned objects, freed at the end */
    rf_status code;     /* status of the first error */
    tv filter_input;    /* input of a filter chain of {% filter %} / {% set x | f %} */
    uintptr_t stack_base; /* address of a local in the render entry */
    size_t stack_limit;   /* bytes of C stack the render may use */
    uint64_t work, max_work; /* items compared/walked by filters and `in` */
    struct tm now;
    tloop *loop_stack_top; /* innermost running loop (for loop.depth) */
} rx;

/* Errors: set the message once (the first error wins) and return -1. */
int rx_fail(rx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rx_oom(rx *x);
/* An error no template construct may catch (limits, memory). */
int rx_fail_fatal(rx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Charges n bytes to the render's allocation budget; -1 when over. */
int rx_charge(rx *x, size_t n);
/* Counts k items walked; -1 past max_iters. */
int rx_tick(rx *x, uint64_t k);
/* Counts k items compared or walked (filters, `in`, sorting); -1 past max_work. */
int rx_work(rx *x, uint64_t k);
void *rx_alloc(rx *x, size_t n); /* zeroed rf_malloc charged to x (x may be NULL) */

/* ---- value helpers (value.c) ------------------------------------------ */

static inline tv v_undef(void) { tv v = {0}; v.k = V_UNDEF; v.uk = U_NAME; return v; }
static inline tv v_none(void) { tv v = {0}; v.k = V_NONE; return v; }
static inline tv v_bool(bool b) { tv v = {0}; v.k = V_BOOL; v.u.b = b; return v; }
static inline tv v_int(int64_t i) { tv v = {0}; v.k = V_INT; v.u.i = i; return v; }
static inline tv v_float(double f) { tv v = {0}; v.k = V_FLOAT; v.u.f = f; return v; }
static inline tv v_obj(int kind, void *o) { tv v = {0}; v.k = (uint8_t)kind; v.u.o = o; return v; }
tv v_undef_named(int uk, const char *name, int objkind);

void v_incref(tv v);
void v_decref(tv v);
static inline tv v_ref(tv v) { v_incref(v); return v; }
bool v_is_heap(tv v);

tstr *str_new(rx *x, const char *s, size_t n); /* NULL: error set on x */
tstr *str_new_immortal(tarena *a, const char *s, size_t n);
int v_str(rx *x, const char *s, size_t n, tv *out);
int v_str_sb(rx *x, sbuf *b, tv *out); /* takes b's bytes (b is reset) */
tlist *list_new(rx *x, uint32_t cap, int flavor);
int list_push(rx *x, tlist *l, tv v); /* takes v (decref'd on failure) */
tdict *dict_new(rx *x);
/* Sets d[k] = v; takes both (decref'd on failure). Unhashable k: error. */
int dict_set(rx *x, tdict *d, tv k, tv v);
/* Borrowed value of d[k] in *out; returns 1 found, 0 missing, -1 error. */
int dict_get(rx *x, const tdict *d, tv k, tv *out);
int dict_get_str(const tdict *d, const char *k, size_t n, tv *out); /* 1/0 */

bool v_truthy(tv v);
const char *v_type_name(tv v); /* Python's type name: 'str', 'dict', 'NoneType' */
bool v_is_num(tv v);           /* int, float or bool */
double v_num(tv v);

int sb_put(rx *x, sbuf *b, const char *s, size_t n);
int sb_putc(rx *x, sbuf *b, char c);
int sb_printf(rx *x, sbuf *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void sb_free(sbuf *b);
int v_write_str(rx *x, sbuf *b, tv v, int depth);  /* Python str(v) */
int v_write_repr(rx *x, sbuf *b, tv v, int depth); /* Python repr(v) */
int v_to_str(rx *x, tv v, tv *out);                /* str(v) as a V_STR (keeps safe strs) */
void fmt_float(double f, char buf[40]);            /* Python repr(float) */

/* Python ==, and ordering (-1/0/1 in *res; error for unorderable types). */
int v_eq(rx *x, tv a, tv b, bool *res, int depth);
int v_cmp(rx *x, tv a, tv b, int *res, int depth);
int v_hash(rx *x, tv v, uint64_t *h, int depth);
/* `a in b` */
int v_contains(rx *x, tv b, tv a, bool *res);
/* Items of an iterable as a new list (dict: keys; str: characters;
 * undefined: empty); error for non-iterables. Counts items toward max_iters. */
int v_iter_list(rx *x, tv v, tlist **out);
int v_len(rx *x, tv v, int64_t *out);

/* Stable merge sort of l->v by cmp; error aborts. key may be NULL. */
typedef int (*v_cmp_fn)(rx *x, tv a, tv b, int *res, void *arg);
int v_sort(rx *x, tv *v, uint32_t n, v_cmp_fn cmp, void *arg);

/* JSON (json.c) */
int v_from_json(rx *x, const struct json_t *j, tv *out, int depth);
typedef struct json_opts {
    bool ensure_ascii, sort_keys, has_indent;
    const char *indent;
    size_t indent_len;
    const char *item_sep, *key_sep;
    size_t item_sep_len, key_sep_len;
} json_opts;
int v_write_json(rx *x, sbuf *b, tv v, const json_opts *o, int level);

/* ---- unicode (unicode.c) ---------------------------------------------- */

/* Decodes one code point at s[*i] (lenient: a byte that starts no valid
 * sequence decodes as itself, 0x80..0xff); advances *i. */
uint32_t u8_next(const char *s, size_t n, size_t *i);
int u8_put(char *dst, uint32_t cp); /* 1..4 bytes (surrogates as 3) */
bool u8_valid(const char *s, size_t n, size_t *bad_at);
bool u_isspace(uint32_t cp);
bool u_isprintable(uint32_t cp);
uint32_t u_upper(uint32_t cp); /* simple case mappings */
uint32_t u_lower(uint32_t cp);
uint32_t u_title(uint32_t cp);
const char *u_full_upper(uint32_t cp, bool title); /* multi-character mapping or NULL */
const char *u_full_lower(uint32_t cp);
bool u_iscased(uint32_t cp);
bool u_istitle(uint32_t cp); /* title-case letters (ǅ) */
bool u_isupper(uint32_t cp);
bool u_islower(uint32_t cp);
bool u_isalpha(uint32_t cp);
bool u_isdigit(uint32_t cp);
bool u_isdecimal(uint32_t cp);
bool u_isnumeric(uint32_t cp);
size_t u8_count(const char *s, size_t n);

/* ---- evaluator, filters, methods --------------------------------------- */

/* eval.c */
int ev_expr(rx *x, const node *n, tv *out);
int rx_getattr(rx *x, tv obj, const char *name, size_t n, tv *out);
int rx_getitem(rx *x, tv obj, tv key, tv *out);
/* Calls a callable value with evaluated arguments (args borrowed). */
typedef struct targs {
    const tv *pos;
    uint32_t npos;
    const char *const *kwn; /* keyword names (not necessarily interned) */
    const tv *kwv;
    uint32_t nkw;
} targs;
int rx_call(rx *x, tv fn, const targs *a, tv *out);
int rx_binop(rx *x, int op, tv a, tv b, tv *out);

/* Binds arguments to a parameter spec "name,name=default,..." (Python
 * positional-or-keyword parameters; defaults are literals: None, True,
 * False, numbers, 'strings' without commas). slots[i] gets the argument
 * (borrowed) or its default; a default string is created in
 * defaults_owned[i], which the caller releases (zero-initialize it).
 * Returns -1 (TypeError) on extra, unknown, repeated or missing arguments. */
#define MAX_PARAMS 8
int bind_args(rx *x, const char *fname, const char *spec, const targs *a, tv *slots,
              tv *defaults_owned);

/* filters.c */
int filter_index(const char *name);
int test_index(const char *name);
int filter_apply(rx *x, int idx, tv self, const targs *a, tv *out);
int test_apply(rx *x, int idx, tv self, const targs *a, bool *out);
const char *filter_name(int idx);

/* methods.c */
int method_lookup(tv self, const char *name, size_t n); /* index, -1 none, -2 unsafe */
int method_call(rx *x, int mid, tv self, const targs *a, tv *out);
const char *method_name(int mid);
int str_percent(rx *x, tv fmt, tv args, tv *out); /* "fmt" % args */
int str_format(rx *x, tv fmt, const targs *a, tv *out);
/* String helpers shared with filters */
int s_strip(rx *x, tv s, tv chars, int which, tv *out); /* which: 1 left, 2 right, 3 both */
int s_case(rx *x, tv s, int mode, tv *out); /* 0 upper 1 lower 2 title 3 capitalize */
int s_replace(rx *x, tv s, tv old, tv new_, int64_t count, tv *out);
int s_split(rx *x, tv s, tv sep, int64_t maxsplit, tv *out);
/* Escapes like markupsafe.escape (& < > ' "). */
int s_escape(rx *x, tv s, tv *out);
int s_slice(rx *x, tv s, int64_t start, int64_t stop, int64_t step, bool hs, bool he, tv *out);

/* Python slice index normalization, shared by str and list slicing. */
void slice_indices(int64_t len, int64_t *start, int64_t *stop, int64_t step, bool has_start,
                   bool has_stop);

/* eval.c internals shared with render.c */
scope *scope_new(rx *x, scope *parent); /* counted reference to parent; rc 1 */
void scope_release(scope *s);
void *reg_alloc(rx *x, size_t size, int kind); /* render-owned object */
int exec_body(rx *x, node *const *xs, uint32_t n); /* 0, -1, or 1/2 for break/continue */

/* render.c */
int global_index(const char *name);
int call_global(rx *x, int g, const targs *a, tv *out);

#endif /* RF_TMPL_IMPL_H */
