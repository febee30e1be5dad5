/*
 * vocab.c - the vocabulary tables every tokenizer shares: the string pool,
 * the text->id hash map, the merge map, the leftmost-longest matcher for
 * special/added tokens, the finishing pass both loaders end with (byte
 * tables, end-of-generation set, decoded pieces), and the public accessors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok-impl.h"

/* ---- pool and hashing ------------------------------------------------------ */

rf_tokenizer *tok_new(void) {
    rf_tokenizer *t = rf_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->bos = t->eos = t->eot = t->eom = t->unk = t->pad = t->sep = -1;
    for (int i = 0; i < 256; i++) t->byte_tok[i] = t->byte_raw[i] = -1;
    return t;
}

uint32_t tok_pool_add(rf_tokenizer *t, const char *s, size_t n) {
    if (t->pool_len + n + 1 > UINT32_MAX) return UINT32_MAX;
    if (t->pool_len + n + 1 > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 4096;
        while (cap < t->pool_len + n + 1) cap *= 2;
        char *p = rf_realloc(t->pool, cap);
        if (!p) return UINT32_MAX;
        t->pool = p;
        t->pool_cap = cap;
    }
    uint32_t off = (uint32_t)t->pool_len;
    if (n) memcpy(t->pool + off, s, n);
    t->pool[off + n] = '\0'; /* so token texts can be printed as C strings */
    t->pool_len += n + 1;
    return off;
}

uint64_t tok_hash(const char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, s, n);
    h = (h ^ v) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

rf_status tok_alloc_vocab(rf_tokenizer *t, int32_t n, rf_error *err) {
    if (n <= 0) return rf_error_set(err, RF_E_FORMAT, "%s: empty vocabulary", t->name);
    t->tokens = rf_calloc((size_t)n, sizeof *t->tokens);
    if (!t->tokens) return rf_error_set(err, RF_E_NOMEM, "%s: out of memory (vocab)", t->name);
    t->n_vocab = n;
    for (int32_t i = 0; i < n; i++) t->tokens[i].attr = RF_TOKEN_NORMAL;
    return RF_OK;
}

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t c = 16;
    while (c < n) c *= 2;
    return c;
}

rf_status tok_build_map(rf_tokenizer *t, rf_error *err) {
    uint32_t cap = pow2_at_least((uint64_t)t->n_vocab * 2);
    t->map.slots = rf_malloc((size_t)cap * sizeof(int32_t));
    if (!t->map.slots) return rf_error_set(err, RF_E_NOMEM, "%s: out of memory (vocab map)", t->name);
    memset(t->map.slots, 0xff, (size_t)cap * sizeof(int32_t));
    t->map.mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint32_t len;
        const char *s = tok_text(t, id, &len);
        if (len > t->max_token_len) t->max_token_len = len;
        uint32_t h = (uint32_t)tok_hash(s, len) & t->map.mask;
        for (;;) {
            int32_t o = t->map.slots[h];
            if (o < 0) { t->map.slots[h] = id; break; }
            uint32_t olen;
            const char *os = tok_text(t, o, &olen);
            if (olen == len && memcmp(os, s, len) == 0)
                return rf_error_set(err, RF_E_FORMAT,
                                    "%s: duplicate token in vocabulary: '%.*s' has ids %d and %d",
                                    t->name, (int)(len > 64 ? 64 : len), s, o, id);
            h = (h + 1) & t->map.mask;
        }
    }
    return RF_OK;
}

int32_t tok_lookup(const rf_tokenizer *t, const char *s, size_t n) {
    uint32_t h = (uint32_t)tok_hash(s, n) & t->map.mask;
    for (;;) {
        int32_t id = t->map.slots[h];
        if (id < 0) return -1;
        const tok_entry *e = &t->tokens[id];
        if (e->text_len == n && memcmp(t->pool + e->text_off, s, n) == 0) return id;
        h = (h + 1) & t->map.mask;
    }
}

/* ---- merges ------------------------------------------------------------------ */

rf_status tok_merges_reserve(rf_tokenizer *t, uint32_t n, rf_error *err) {
    uint32_t cap = pow2_at_least((uint64_t)n * 2 + 1);
    t->merges.keys = rf_malloc((size_t)cap * sizeof(uint64_t));
    t->merges.vals = rf_malloc((size_t)cap * sizeof(tok_merge_val));
    if (!t->merges.keys || !t->merges.vals)
        return rf_error_set(err, RF_E_NOMEM, "%s: out of memory (merges)", t->name);
    memset(t->merges.keys, 0xff, (size_t)cap * sizeof(uint64_t));
    t->merges.mask = cap - 1;
    t->merges.n = 0;
    return RF_OK;
}

static inline uint32_t merge_slot(uint64_t key, uint32_t mask) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & mask;
}

void tok_merges_add(rf_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t merged) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t h = merge_slot(key, t->merges.mask);
    while (t->merges.keys[h] != UINT64_MAX) {
        if (t->merges.keys[h] == key) return; /* first (lowest) rank wins */
        h = (h + 1) & t->merges.mask;
    }
    RF_ASSERT(t->merges.n < t->merges.mask); /* reserve() sized it */
    t->merges.keys[h] = key;
    t->merges.vals[h] = (tok_merge_val){rank, merged};
    t->merges.n++;
}

const tok_merge_val *tok_merges_find(const rf_tokenizer *t, int32_t left, int32_t right) {
    if (!t->merges.keys) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t h = merge_slot(key, t->merges.mask);
    for (;;) {
        uint64_t k = t->merges.keys[h];
        if (k == key) return &t->merges.vals[h];
        if (k == UINT64_MAX) return NULL;
        h = (h + 1) & t->merges.mask;
    }
}

/* ---- matcher ----------------------------------------------------------------- */

/* qsort has no context argument: the pool being sorted against, per thread
 * so tokenizers may be loaded concurrently. */
static _Thread_local const rf_tokenizer *g_sort_tok;

static int ent_cmp(const void *a, const void *b) {
    const tok_match_ent *x = a, *y = b;
    uint8_t bx = (uint8_t)g_sort_tok->pool[x->off], by = (uint8_t)g_sort_tok->pool[y->off];
    if (bx != by) return bx < by ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

rf_status tok_matcher_build(rf_tokenizer *t, tok_matcher *m, const int32_t *ids,
                            const uint32_t *key_off, const uint32_t *key_len, uint32_t n,
                            rf_error *err) {
    m->ents = NULL;
    m->n = 0;
    memset(m->first, 0, sizeof m->first);
    if (n == 0) return RF_OK;
    m->ents = rf_malloc((size_t)n * sizeof *m->ents);
    if (!m->ents) return rf_error_set(err, RF_E_NOMEM, "%s: out of memory (matcher)", t->name);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t off = key_off ? key_off[i] : t->tokens[ids[i]].text_off;
        uint32_t len = key_len ? key_len[i] : t->tokens[ids[i]].text_len;
        if (len == 0) continue; /* an empty key would match everywhere */
        m->ents[m->n++] = (tok_match_ent){ids[i], off, len};
    }
    g_sort_tok = t;
    qsort(m->ents, m->n, sizeof *m->ents, ent_cmp);
    uint32_t j = 0;
    for (int b = 0; b < 256; b++) {
        m->first[b] = j;
        while (j < m->n && (uint8_t)t->pool[m->ents[j].off] == b) j++;
    }
    m->first[256] = m->n;
    return RF_OK;
}

/* ---- finishing --------------------------------------------------------------- */

/* Texts that end a turn in known chat formats (llama.cpp's list). */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "<|eom_id|>", "<｜end▁of▁sentence｜>", "<end_of_utterance>", "<|return|>",
    "<|call|>",
};

static const char hexd[] = "0123456789ABCDEF";

rf_status tok_finish(rf_tokenizer *t, rf_error *err) {
    /* byte tables */
    for (int b = 0; b < 256; b++) {
        char buf[8];
        if (t->byte_level) {
            size_t k = tok_utf8_encode(tok_byte_to_cp((uint8_t)b), buf);
            t->byte_tok[b] = tok_lookup(t, buf, k);
        } else {
            char hx[6] = {'<', '0', 'x', hexd[b >> 4], hexd[b & 15], '>'};
            t->byte_tok[b] = tok_lookup(t, hx, 6);
        }
        buf[0] = (char)b;
        t->byte_raw[b] = tok_lookup(t, buf, 1);
    }
    /* end of generation */
    int32_t ids[3] = {t->eos, t->eot, t->eom};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= 0 && ids[i] < t->n_vocab) t->tokens[ids[i]].flags |= TF_EOG;
    for (size_t i = 0; i < RF_ARRAY_LEN(eog_texts); i++) {
        int32_t id = tok_lookup(t, eog_texts[i], strlen(eog_texts[i]));
        if (id >= 0 && t->tokens[id].attr != RF_TOKEN_NORMAL) t->tokens[id].flags |= TF_EOG;
        if (id >= 0 && t->eot < 0 && i < 10 && t->tokens[id].attr != RF_TOKEN_NORMAL) t->eot = id;
    }
    if (t->eot >= 0) t->tokens[t->eot].flags |= TF_EOG;
    /* raw matcher over tokens that are recognised in text */
    uint32_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->tokens[id].flags & (TF_MATCH | TF_NORMALIZED)) == TF_MATCH) n++;
    int32_t *list = rf_malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!list) return rf_error_set(err, RF_E_NOMEM, "%s: out of memory", t->name);
    n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->tokens[id].flags & (TF_MATCH | TF_NORMALIZED)) == TF_MATCH) list[n++] = id;
    rf_status st = tok_matcher_build(t, &t->match_raw, list, NULL, NULL, n, err);
    rf_free(list);
    if (st) return st;
    t->max_piece_len = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tokens[id].piece_len > t->max_piece_len) t->max_piece_len = t->tokens[id].piece_len;
    if (t->first_len)
        for (int32_t id = 0; id < t->n_vocab; id++)
            if (t->first_len[id] > t->max_piece_len) t->max_piece_len = t->first_len[id];
    return RF_OK;
}

/* ---- free and accessors ---------------------------------------------------------- */

void tok_pre_op_free(tok_pre_op *op) {
    rf_free(op->str);
    pcre2_code_free(op->re);
    memset(op, 0, sizeof *op);
}

void tok_norm_op_free(tok_norm_op *op) {
    rf_free(op->a);
    rf_free(op->b);
    pcre2_code_free(op->re);
    memset(op, 0, sizeof *op);
}

void rf_tokenizer_free(rf_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_norm; i++) tok_norm_op_free(&t->norm[i]);
    for (int i = 0; i < t->n_pre; i++) tok_pre_op_free(&t->pre[i]);
    rf_free(t->tokens);
    rf_free(t->pool);
    rf_free(t->map.slots);
    rf_free(t->merges.keys);
    rf_free(t->merges.vals);
    rf_free(t->match_raw.ents);
    rf_free(t->match_norm.ents);
    rf_free(t->chat_template);
    rf_free(t->first_off);
    rf_free(t->first_len);
    rf_free(t);
}

rf_tok_kind rf_tokenizer_kind(const rf_tokenizer *t) { return t->kind; }
int32_t rf_tokenizer_n_vocab(const rf_tokenizer *t) { return t->n_vocab; }
int32_t rf_token_bos(const rf_tokenizer *t) { return t->bos; }
int32_t rf_token_eos(const rf_tokenizer *t) { return t->eos; }
int32_t rf_token_eot(const rf_tokenizer *t) { return t->eot; }
int32_t rf_token_unk(const rf_tokenizer *t) { return t->unk; }
int32_t rf_token_pad(const rf_tokenizer *t) { return t->pad; }
int32_t rf_token_sep(const rf_tokenizer *t) { return t->sep; }
bool rf_tokenizer_add_bos(const rf_tokenizer *t) { return t->add_bos; }
bool rf_tokenizer_add_eos(const rf_tokenizer *t) { return t->add_eos; }
const char *rf_tokenizer_chat_template(const rf_tokenizer *t) { return t->chat_template; }

bool rf_token_is_eog(const rf_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->tokens[id].flags & TF_EOG);
}

rf_tok_attr rf_token_attr(const rf_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return RF_TOKEN_UNDEFINED;
    return (rf_tok_attr)t->tokens[id].attr;
}

const char *rf_token_text(const rf_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->tokens[id].text_len;
    return t->pool + t->tokens[id].text_off;
}

const char *rf_token_piece(const rf_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->tokens[id].piece_len;
    return t->pool + t->tokens[id].piece_off;
}

int32_t rf_token_lookup(const rf_tokenizer *t, const char *text, size_t len) {
    return tok_lookup(t, text, len);
}
