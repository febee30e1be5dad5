/*
 * tok-impl.h - what the tokenizer's files share and nothing outside sees:
 * the vocabulary tables (token strings in one pool, open-addressing hash
 * maps for text->id and (left,right)->merge), the pipeline description
 * (normalizer ops, pre-tokenizer ops, model, post-processing) that both
 * loaders fill, the special-token matcher, the per-call workspace and the
 * UTF-8 / Unicode helpers.
 */
#ifndef RF_TOK_IMPL_H
#define RF_TOK_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer.h"

/* ---- vocabulary ------------------------------------------------------------ */

enum {
    TF_LSTRIP = 1u << 0,      /* eats whitespace on its left when matched in text */
    TF_RSTRIP = 1u << 1,      /* eats whitespace on its right */
    TF_SINGLE_WORD = 1u << 2, /* matches only as a whole word */
    TF_NORMALIZED = 1u << 3,  /* HF added token matched against normalized text */
    TF_EOG = 1u << 4,         /* ends generation */
    TF_MATCH = 1u << 5,       /* matched in input text (added/control/user tokens) */
};

typedef struct tok_entry {
    uint32_t text_off, text_len;   /* vocabulary string in t->pool */
    uint32_t piece_off, piece_len; /* decoded bytes in t->pool */
    float score;
    uint8_t attr;  /* rf_tok_attr */
    uint8_t flags; /* TF_* */
} tok_entry;

/* text -> id: open addressing over ids, keys compared against the pool. */
typedef struct tok_strmap {
    int32_t *slots; /* -1 empty */
    uint32_t mask;
} tok_strmap;

/* (left id, right id) -> (rank, merged id). */
typedef struct tok_merge_val {
    int32_t rank, id;
} tok_merge_val;
typedef struct tok_mergemap {
    uint64_t *keys; /* UINT64_MAX empty */
    tok_merge_val *vals;
    uint32_t mask;
    uint32_t n;
} tok_mergemap;

/* Special / added token matcher: leftmost-longest over a fixed set. */
typedef struct tok_match_ent {
    int32_t id;
    uint32_t off, len; /* key bytes in t->pool (token text or normalized text) */
} tok_match_ent;
typedef struct tok_matcher {
    tok_match_ent *ents;     /* sorted by first byte, then length descending */
    uint32_t n;
    uint32_t first[257];     /* ents[first[b] .. first[b+1]) start with byte b */
} tok_matcher;

/* ---- pipeline ---------------------------------------------------------------- */

typedef enum tok_norm_kind {
    TN_NFC, TN_NFD, TN_NFKC, TN_NFKD, TN_LOWER, TN_PREPEND, TN_REPLACE, TN_REPLACE_RE,
    TN_STRIP, TN_KIND_COUNT
} tok_norm_kind;

typedef struct tok_norm_op {
    uint8_t kind;        /* tok_norm_kind */
    bool left, right;    /* TN_STRIP */
    char *a, *b;         /* PREPEND: a; REPLACE: a -> b (owned, NUL-terminated) */
    size_t alen, blen;
    pcre2_code *re;      /* TN_REPLACE_RE (owned) */
} tok_norm_op;

typedef enum tok_split_beh {
    SB_ISOLATED, SB_REMOVED, SB_MERGED_PREV, SB_MERGED_NEXT, SB_CONTIGUOUS, SB_COUNT
} tok_split_beh;

typedef enum tok_pre_kind {
    TP_SPLIT_RE,   /* regex split (HF Split with Regex, GGUF regex sets) */
    TP_SPLIT_STR,  /* literal split (HF Split with String) */
    TP_BYTELEVEL,  /* HF ByteLevel: optional prefix space, optional GPT-2 regex */
    TP_METASPACE,  /* HF Metaspace: spaces -> replacement, prepend, split */
    TP_DIGITS,     /* HF Digits */
    TP_WHITESPACE_SPLIT, /* HF WhitespaceSplit: split on whitespace, drop it */
    TP_KIND_COUNT
} tok_pre_kind;

typedef struct tok_pre_op {
    uint8_t kind;      /* tok_pre_kind */
    uint8_t behavior;  /* tok_split_beh */
    bool invert;
    bool flag;         /* BYTELEVEL add_prefix_space; DIGITS individual; METASPACE split */
    uint8_t prepend;   /* METASPACE: 0 never, 1 first, 2 always */
    char *str;         /* SPLIT_STR pattern / METASPACE replacement (owned) */
    size_t slen;
    pcre2_code *re;    /* SPLIT_RE, BYTELEVEL with regex (owned) */
} tok_pre_op;

#define TOK_MAX_OPS 16
#define TOK_MAX_TEMPLATE 8

struct rf_tokenizer {
    rf_tok_kind kind;
    int32_t n_vocab;
    tok_entry *tokens;
    char *pool;        /* all token strings, pieces and matcher keys */
    size_t pool_len, pool_cap;
    tok_strmap map;
    tok_mergemap merges;
    tok_matcher match_raw;  /* added/special tokens matched in raw text */
    tok_matcher match_norm; /* HF added tokens with normalized=true */
    uint32_t max_token_len, max_piece_len;

    int32_t bos, eos, eot, eom, unk, pad, sep;
    bool add_bos, add_eos;
    /* add_special: these ids go before / after the text (BOS, template). */
    int32_t prefix[TOK_MAX_TEMPLATE], suffix[TOK_MAX_TEMPLATE];
    int n_prefix, n_suffix;

    /* pipeline */
    tok_norm_op norm[TOK_MAX_OPS];
    int n_norm;
    tok_pre_op pre[TOK_MAX_OPS];
    int n_pre;

    /* model flags */
    bool byte_level;     /* BPE over raw bytes via the GPT-2 byte map */
    bool byte_fallback;  /* unknown characters -> <0xXX> tokens (HF BPE / SPM) */
    bool gguf_bytes;     /* llama.cpp BPE: unmergeable symbols -> single-byte tokens */
    bool fuse_unk;
    bool ignore_merges;
    bool wpm_lower, wpm_strip_accents;
    int32_t byte_tok[256];   /* byte_level: id of the mapped char; else <0xXX> id; -1 none */
    int32_t byte_raw[256];   /* id of the one-byte token "\xNN" (gguf fallback), -1 none */

    /* decoding */
    bool strip_leading_space; /* drop one leading space of the first piece */
    /* HF Metaspace decoder: the first token decodes with its replacement
     * characters dropped instead of turned into spaces. Per-token alternate
     * pieces (in the pool), NULL when not used. */
    uint32_t *first_off, *first_len;

    char *chat_template; /* owned, may be NULL */
    char name[64];       /* what it was built from, for messages */
};

/* ---- vocab.c: building --------------------------------------------------------- */

/* Appends bytes to the pool; returns the offset or UINT32_MAX on OOM/overflow. */
uint32_t tok_pool_add(rf_tokenizer *t, const char *s, size_t n);
static inline const char *tok_text(const rf_tokenizer *t, int32_t id, uint32_t *len) {
    *len = t->tokens[id].text_len;
    return t->pool + t->tokens[id].text_off;
}
uint64_t tok_hash(const char *s, size_t n);
/* Allocates t->tokens for n tokens (zeroed, attr NORMAL). */
rf_status tok_alloc_vocab(rf_tokenizer *t, int32_t n, rf_error *err);
/* Builds the text->id map; duplicate strings are RF_E_FORMAT naming both ids. */
rf_status tok_build_map(rf_tokenizer *t, rf_error *err);
int32_t tok_lookup(const rf_tokenizer *t, const char *s, size_t n);
/* Merge map: reserve, then add (left, right) -> (rank, merged). Adding the
 * same pair twice keeps the first (lowest) rank. */
rf_status tok_merges_reserve(rf_tokenizer *t, uint32_t n, rf_error *err);
void tok_merges_add(rf_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t merged);
const tok_merge_val *tok_merges_find(const rf_tokenizer *t, int32_t left, int32_t right);
/* Builds a matcher from the tokens with TF_MATCH (and, for match_norm, the
 * given keys). `keys` may be NULL: then each token's own text is the key. */
rf_status tok_matcher_build(rf_tokenizer *t, tok_matcher *m, const int32_t *ids,
                            const uint32_t *key_off, const uint32_t *key_len, uint32_t n,
                            rf_error *err);
/* Common finishing work after a loader filled tokens/attrs/ids: byte tables,
 * EOG set, pieces, raw matcher. */
rf_status tok_finish(rf_tokenizer *t, rf_error *err);
rf_tokenizer *tok_new(void);

/* ---- unicode.c ----------------------------------------------------------------- */

/* Decodes one UTF-8 character at s[0..n); returns its length (1..4) and the
 * code point in *cp, or 0 if the bytes there are not a valid character (then
 * *bad gets the length of the maximal invalid subpart, >= 1). */
size_t tok_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp, size_t *bad);
size_t tok_utf8_encode(uint32_t cp, char *out); /* returns 1..4 */
/* Length of a valid-UTF-8 prefix check: true if all of s is valid. */
bool tok_utf8_valid(const char *s, size_t n);
/* GPT-2 byte-to-unicode map: code point for byte b, and back (-1 if none). */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);
/* Unicode classes for WordPiece pre-processing. */
bool tok_cp_is_whitespace(uint32_t cp);
bool tok_cp_is_control(uint32_t cp);
bool tok_cp_is_punct(uint32_t cp);
bool tok_cp_is_symbol(uint32_t cp);
bool tok_cp_is_mark(uint32_t cp);
uint32_t tok_cp_lower(uint32_t cp);

/* A growable byte buffer (rf_malloc). */
typedef struct tok_buf {
    char *p;
    size_t n, cap;
} tok_buf;
bool tok_buf_reserve(tok_buf *b, size_t extra);
bool tok_buf_put(tok_buf *b, const void *s, size_t n);
void tok_buf_free(tok_buf *b);

/* Unicode normalization of s (valid UTF-8) into out (appended); form is
 * TN_NFC/NFD/NFKC/NFKD. */
rf_status tok_normalize_form(int form, const char *s, size_t n, tok_buf *out, void **cp_scratch,
                             size_t *cp_cap, rf_error *err);

/* ---- pretok.c ------------------------------------------------------------------ */

/* PCRE2 with our allocator; UTF + UCP, JIT compiled when available. */
rf_status tok_regex_compile(const char *pattern, size_t len, pcre2_code **out, rf_error *err);
/* Fills t->pre for a GGUF tokenizer.ggml.pre value (byte-level BPE), plus
 * model flags that go with it (ignore_merges). */
rf_status tok_pre_from_name(rf_tokenizer *t, const char *pre, const rf_tok_opts *o, rf_error *err);
void tok_pre_op_free(tok_pre_op *op);
void tok_norm_op_free(tok_norm_op *op);
/* The GPT-2 regex as HF ByteLevel(use_regex) uses it. */
extern const char tok_gpt2_regex[];

/* ---- workspace ------------------------------------------------------------------- */

typedef struct tok_piece {
    const char *p;
    uint32_t len;
} tok_piece;

typedef struct tok_frag {
    int32_t id;        /* >= 0: a matched token; -1: text */
    uint32_t off, len; /* text: in the buffer the fragment list refers to */
} tok_frag;

typedef struct tok_sym {
    int32_t id;          /* token id, -1 unknown */
    int32_t prev, next;
    uint32_t off, len;   /* bytes of the word */
} tok_sym;

typedef struct tok_heap_ent {
    uint64_t key;        /* rank/score order << 32 | left index */
    int32_t left, right, lid, rid, merged;
} tok_heap_ent;

typedef struct tok_arena_chunk tok_arena_chunk;

struct rf_tok_ws {
    tok_buf in;        /* sanitized input */
    tok_buf norm;      /* normalized fragment */
    tok_buf norm2;     /* normalizer ping-pong buffer */
    tok_buf tmp;       /* scratch for ops */
    tok_buf word;      /* WPM word / lookups */
    tok_frag *frags; size_t n_frags, cap_frags;
    tok_frag *frags2; size_t n_frags2, cap_frags2;
    tok_piece *pa, *pb; size_t n_pa, n_pb, cap_pa, cap_pb;
    tok_sym *syms; size_t cap_syms;
    tok_heap_ent *heap; size_t n_heap, cap_heap;
    int32_t *ids; size_t n_ids, cap_ids;
    void *cps; size_t cap_cps; /* utf8proc code points */
    tok_arena_chunk *arena;    /* for pieces that pre-tokenizers rewrite */
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
};

/* Arena for rewritten pieces: stable until tok_arena_reset. */
char *tok_arena_alloc(rf_tok_ws *ws, size_t n);
void tok_arena_reset(rf_tok_ws *ws);
bool tok_ids_push(rf_tok_ws *ws, int32_t id);
pcre2_general_context *tok_pcre2_gctx(void);

/* Runs the pre-tokenizer ops over one normalized fragment; pieces end in
 * ws->pa[0..n_pa). */
rf_status tok_pretokenize(const rf_tokenizer *t, rf_tok_ws *ws, const char *s, size_t n,
                          bool first, rf_error *err);

/* ---- detok.c ------------------------------------------------------------------- */

/* "<0xNN>" -> NN, or -1. */
int tok_parse_byte_token(const char *s, size_t n);
/* Decoded pieces of a GGUF vocabulary (llama.cpp's token_to_piece rules). */
rf_status tok_pieces_gguf(rf_tokenizer *t, rf_error *err);

/* ---- encode.c ------------------------------------------------------------------- */

/* Runs the normalizer ops over s[0..n); on return *s and *n hold the result
 * (borrowed from ws, or s itself when there are no ops). */
rf_status tok_normalize_str(const rf_tokenizer *t, rf_tok_ws *ws, const char **s, size_t *n,
                            rf_error *err);

/* ---- models.c -------------------------------------------------------------------- */

rf_status tok_model_spm(const rf_tokenizer *t, rf_tok_ws *ws, const char *s, size_t n,
                        rf_error *err);
rf_status tok_model_bpe(const rf_tokenizer *t, rf_tok_ws *ws, const char *s, size_t n,
                        rf_error *err);
rf_status tok_model_wpm(const rf_tokenizer *t, rf_tok_ws *ws, const char *s, size_t n,
                        rf_error *err);

#endif /* RF_TOK_IMPL_H */
