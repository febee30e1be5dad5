/*
 * kv.c - block pool, block tables, reference counts and the prefix-cache
 * hash index of the paged KV cache.
 *
 * Free blocks, never-used and cached alike, sit on one intrusive doubly
 * linked list in the order they became free; allocation takes the head (the
 * least recently freed, evicting its cached content), and a cached block
 * that a new sequence shares is unlinked from wherever it is. The hash index
 * is open addressing with tombstones, sized at twice the pool.
 */
#include "kv.h"

#include <string.h>

#define NO_BLOCK (-1)

typedef struct block {
    int32_t refs;
    int32_t prev, next; /* LRU links while refs == 0 */
    uint64_t hash;      /* 0: not in the index */
} block;

struct rf_kv_cache {
    rf_kv_config c;
    uint16_t *data;
    size_t layer_stride, kv_stride, block_stride; /* in uint16 */
    block *blocks;
    int32_t lru_head, lru_tail;
    int32_t *tables;  /* [n_seq][max_blocks_per_seq] */
    int64_t *n_blocks_of; /* [n_seq] */
    /* hash index */
    uint64_t *hkeys;  /* 0 empty, 1 tombstone */
    int32_t *hvals;
    size_t hcap;
    int64_t used;
    uint64_t hits, lookups;
};

rf_kv_config rf_kv_config_for(int n_layer, int64_t kv_dim, int64_t ctx_size, int n_seq, int block_size) {
    rf_kv_config c = {n_layer, kv_dim, block_size, 0, n_seq, 0};
    c.max_blocks_per_seq = (ctx_size + block_size - 1) / block_size;
    c.n_blocks = c.max_blocks_per_seq * n_seq;
    return c;
}

uint64_t rf_kv_bytes(const rf_kv_config *c) {
    return (uint64_t)c->n_layer * 2u * (uint64_t)c->n_blocks * (uint64_t)c->block_size * (uint64_t)c->kv_dim * 2u;
}

/* ---- LRU list of free blocks ------------------------------------------- */

static void lru_push_tail(rf_kv_cache *kv, int32_t b) {
    block *bl = &kv->blocks[b];
    bl->prev = kv->lru_tail;
    bl->next = NO_BLOCK;
    if (kv->lru_tail != NO_BLOCK) kv->blocks[kv->lru_tail].next = b;
    else kv->lru_head = b;
    kv->lru_tail = b;
}

static void lru_unlink(rf_kv_cache *kv, int32_t b) {
    block *bl = &kv->blocks[b];
    if (bl->prev != NO_BLOCK) kv->blocks[bl->prev].next = bl->next;
    else kv->lru_head = bl->next;
    if (bl->next != NO_BLOCK) kv->blocks[bl->next].prev = bl->prev;
    else kv->lru_tail = bl->prev;
    bl->prev = bl->next = NO_BLOCK;
}

/* ---- hash index -------------------------------------------------------- */

static size_t hslot(const rf_kv_cache *kv, uint64_t h) { return (size_t)(h * 0x9e3779b97f4a7c15ull) & (kv->hcap - 1); }

static int32_t hfind(const rf_kv_cache *kv, uint64_t h) {
    for (size_t i = hslot(kv, h), n = 0; n < kv->hcap; i = (i + 1) & (kv->hcap - 1), n++) {
        if (kv->hkeys[i] == 0) return NO_BLOCK;
        if (kv->hkeys[i] == h) return kv->hvals[i];
    }
    return NO_BLOCK;
}

static void hremove(rf_kv_cache *kv, uint64_t h) {
    for (size_t i = hslot(kv, h), n = 0; n < kv->hcap; i = (i + 1) & (kv->hcap - 1), n++) {
        if (kv->hkeys[i] == 0) return;
        if (kv->hkeys[i] == h) { kv->hkeys[i] = 1; return; }
    }
}

static void hinsert(rf_kv_cache *kv, uint64_t h, int32_t b) {
    size_t tomb = SIZE_MAX;
    for (size_t i = hslot(kv, h), n = 0; n < kv->hcap; i = (i + 1) & (kv->hcap - 1), n++) {
        if (kv->hkeys[i] == h) { kv->hvals[i] = b; return; }
        if (kv->hkeys[i] == 1 && tomb == SIZE_MAX) tomb = i;
        if (kv->hkeys[i] == 0) {
            size_t at = tomb != SIZE_MAX ? tomb : i;
            kv->hkeys[at] = h;
            kv->hvals[at] = b;
            return;
        }
    }
    if (tomb != SIZE_MAX) { kv->hkeys[tomb] = h; kv->hvals[tomb] = b; }
}

/* Chained hash of a block's tokens; never 0 or 1 (the index's markers). */
static uint64_t block_hash(uint64_t prev, const int32_t *toks, int n) {
    uint64_t h = prev ^ 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint32_t)toks[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h < 2 ? h + 2 : h;
}

/* ---- lifetime ---------------------------------------------------------- */

rf_status rf_kv_create(const rf_kv_config *c, rf_kv_cache **out, rf_error *err) {
    *out = NULL;
    if (c->n_layer <= 0 || c->kv_dim <= 0 || c->block_size <= 0 || c->n_blocks <= 0 || c->n_seq <= 0 ||
        c->max_blocks_per_seq <= 0 || c->n_blocks > INT32_MAX / 2)
        return rf_error_set(err, RF_E_INVAL, "kv cache: invalid configuration");
    uint64_t bytes = rf_kv_bytes(c);
    if (bytes > (uint64_t)SIZE_MAX / 2) return rf_error_set(err, RF_E_NOMEM, "kv cache: %llu bytes is too large", (unsigned long long)bytes);
    rf_kv_cache *kv = rf_calloc(1, sizeof *kv);
    if (!kv) return rf_error_set(err, RF_E_NOMEM, "kv cache: out of memory");
    kv->c = *c;
    kv->hcap = 16;
    while (kv->hcap < (size_t)c->n_blocks * 2) kv->hcap <<= 1;
    kv->data = rf_malloc((size_t)bytes);
    kv->blocks = rf_calloc((size_t)c->n_blocks, sizeof *kv->blocks);
    kv->tables = rf_malloc((size_t)c->n_seq * (size_t)c->max_blocks_per_seq * sizeof(int32_t));
    kv->n_blocks_of = rf_calloc((size_t)c->n_seq, sizeof(int64_t));
    kv->hkeys = rf_calloc(kv->hcap, sizeof(uint64_t));
    kv->hvals = rf_calloc(kv->hcap, sizeof(int32_t));
    if (!kv->data || !kv->blocks || !kv->tables || !kv->n_blocks_of || !kv->hkeys || !kv->hvals) {
        rf_kv_free(kv);
        return rf_error_set(err, RF_E_NOMEM, "kv cache: cannot allocate %llu bytes", (unsigned long long)bytes);
    }
    kv->block_stride = (size_t)c->block_size * (size_t)c->kv_dim;
    kv->kv_stride = kv->block_stride * (size_t)c->n_blocks;
    kv->layer_stride = kv->kv_stride * 2;
    kv->lru_head = kv->lru_tail = NO_BLOCK;
    for (int32_t b = 0; b < (int32_t)c->n_blocks; b++) lru_push_tail(kv, b);
    *out = kv;
    return RF_OK;
}

void rf_kv_free(rf_kv_cache *kv) {
    if (!kv) return;
    rf_free(kv->data);
    rf_free(kv->blocks);
    rf_free(kv->tables);
    rf_free(kv->n_blocks_of);
    rf_free(kv->hkeys);
    rf_free(kv->hvals);
    rf_free(kv);
}

const rf_kv_config *rf_kv_get_config(const rf_kv_cache *kv) { return &kv->c; }

/* ---- blocks ------------------------------------------------------------ */

static void block_ref(rf_kv_cache *kv, int32_t b) {
    if (kv->blocks[b].refs++ == 0) {
        lru_unlink(kv, b);
        kv->used++;
    }
}

static void block_unref(rf_kv_cache *kv, int32_t b) {
    RF_ASSERT(kv->blocks[b].refs > 0);
    if (--kv->blocks[b].refs == 0) {
        lru_push_tail(kv, b);
        kv->used--;
    }
}

/* A free block for writing: evicts its cached content if it had any. */
static int32_t block_take(rf_kv_cache *kv) {
    int32_t b = kv->lru_head;
    if (b == NO_BLOCK) return NO_BLOCK;
    if (kv->blocks[b].hash) {
        hremove(kv, kv->blocks[b].hash);
        kv->blocks[b].hash = 0;
    }
    block_ref(kv, b);
    return b;
}

static int32_t *table_of(const rf_kv_cache *kv, int seq) {
    RF_ASSERT(seq >= 0 && seq < kv->c.n_seq);
    return kv->tables + (size_t)seq * (size_t)kv->c.max_blocks_per_seq;
}

rf_status rf_kv_seq_reserve(rf_kv_cache *kv, int seq, int64_t n_pos) {
    int64_t need = (n_pos + kv->c.block_size - 1) / kv->c.block_size;
    if (need > kv->c.max_blocks_per_seq) return RF_E_RANGE;
    int32_t *t = table_of(kv, seq);
    int64_t have = kv->n_blocks_of[seq];
    if (need <= have) return RF_OK;
    if (need - have > kv->c.n_blocks - kv->used) return RF_E_NOMEM;
    for (int64_t i = have; i < need; i++) {
        t[i] = block_take(kv);
        RF_ASSERT(t[i] != NO_BLOCK);
    }
    kv->n_blocks_of[seq] = need;
    return RF_OK;
}

void rf_kv_seq_free(rf_kv_cache *kv, int seq) {
    int32_t *t = table_of(kv, seq);
    /* release from the end so a sequence's later blocks are evicted first */
    for (int64_t i = kv->n_blocks_of[seq]; i-- > 0;) block_unref(kv, t[i]);
    kv->n_blocks_of[seq] = 0;
}

int64_t rf_kv_seq_capacity(const rf_kv_cache *kv, int seq) {
    RF_ASSERT(seq >= 0 && seq < kv->c.n_seq);
    return kv->n_blocks_of[seq] * kv->c.block_size;
}

int64_t rf_kv_seq_attach_prefix(rf_kv_cache *kv, int seq, const int32_t *tokens, int64_t n) {
    RF_ASSERT(kv->n_blocks_of[seq] == 0);
    int bs = kv->c.block_size;
    int32_t *t = table_of(kv, seq);
    uint64_t h = 0;
    int64_t nb = 0;
    kv->lookups++;
    /* whole blocks, leaving at least one token to compute */
    while ((nb + 1) * bs < n && nb < kv->c.max_blocks_per_seq) {
        h = block_hash(h, tokens + nb * bs, bs);
        int32_t b = hfind(kv, h);
        if (b == NO_BLOCK) break;
        block_ref(kv, b);
        t[nb++] = b;
    }
    kv->n_blocks_of[seq] = nb;
    kv->hits += (uint64_t)(nb * bs);
    return nb * bs;
}

void rf_kv_seq_commit_prefix(rf_kv_cache *kv, int seq, const int32_t *tokens, int64_t n) {
    int bs = kv->c.block_size;
    int32_t *t = table_of(kv, seq);
    uint64_t h = 0;
    for (int64_t i = 0; (i + 1) * bs <= n && i < kv->n_blocks_of[seq]; i++) {
        h = block_hash(h, tokens + i * bs, bs);
        block *bl = &kv->blocks[t[i]];
        if (bl->hash == h) continue;
        int32_t other = hfind(kv, h);
        if (other != NO_BLOCK && other != t[i]) continue; /* an identical block is cached already */
        if (bl->hash) hremove(kv, bl->hash);
        bl->hash = h;
        hinsert(kv, h, t[i]);
    }
}

static uint16_t *slot(const rf_kv_cache *kv, int layer, int which, int seq, int64_t pos) {
    RF_ASSERT(layer >= 0 && layer < kv->c.n_layer && pos >= 0);
    int64_t bi = pos / kv->c.block_size;
    RF_ASSERT(bi < kv->n_blocks_of[seq]);
    int32_t b = table_of(kv, seq)[bi];
    return kv->data + (size_t)layer * kv->layer_stride + (size_t)which * kv->kv_stride +
           (size_t)b * kv->block_stride + (size_t)(pos % kv->c.block_size) * (size_t)kv->c.kv_dim;
}

uint16_t *rf_kv_k(const rf_kv_cache *kv, int layer, int seq, int64_t pos) { return slot(kv, layer, 0, seq, pos); }
uint16_t *rf_kv_v(const rf_kv_cache *kv, int layer, int seq, int64_t pos) { return slot(kv, layer, 1, seq, pos); }

const int32_t *rf_kv_tables(const rf_kv_cache *kv) { return kv->tables; }

rf_kv_stats rf_kv_get_stats(const rf_kv_cache *kv) {
    rf_kv_stats s = {kv->c.n_blocks, kv->used, 0, kv->hits, kv->lookups};
    for (int32_t b = kv->lru_head; b != NO_BLOCK; b = kv->blocks[b].next) s.blocks_cached += kv->blocks[b].hash != 0;
    return s;
}
