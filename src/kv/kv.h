/*
 * kv.h - the paged KV cache.
 *
 * Keys and values live in fixed-size blocks (block_size positions each) from
 * one pool sized at start-up; each sequence slot has a block table mapping
 * position / block_size to a block. A block id is valid in every layer: the
 * storage is [layer][k|v][block][slot][kv_dim] in float16.
 *
 * Prefix cache: a full block is identified by a hash chained over the tokens
 * of it and of every block before it. Blocks are reference counted; when a
 * new sequence's prompt starts with cached blocks they are shared, not
 * copied or recomputed. A block whose count drops to zero keeps its content
 * and stays findable until the pool needs it (least recently freed first).
 */
#ifndef RF_KV_H
#define RF_KV_H

#include "core/core.h"

typedef struct rf_kv_config {
    int n_layer;
    int64_t kv_dim;     /* n_head_kv * head_dim */
    int block_size;     /* positions per block, e.g. 16 */
    int64_t n_blocks;   /* pool size */
    int n_seq;          /* sequence slots */
    int64_t max_blocks_per_seq; /* block table length (context size / block_size, rounded up) */
} rf_kv_config;

typedef struct rf_kv_cache rf_kv_cache;

/* Sizes a pool for ctx_size positions per sequence and n_seq sequences. */
rf_kv_config rf_kv_config_for(int n_layer, int64_t kv_dim, int64_t ctx_size, int n_seq, int block_size);
/* Bytes the pool of `c` occupies. */
uint64_t rf_kv_bytes(const rf_kv_config *c);

rf_status rf_kv_create(const rf_kv_config *c, rf_kv_cache **out, rf_error *err);
void rf_kv_free(rf_kv_cache *kv); /* accepts NULL */
const rf_kv_config *rf_kv_get_config(const rf_kv_cache *kv);

/* Makes positions [0, n_pos) of `seq` writable/readable, allocating blocks
 * as needed. RF_E_NOMEM when the pool is exhausted (nothing changed then);
 * RF_E_RANGE when n_pos exceeds the per-sequence table. */
rf_status rf_kv_seq_reserve(rf_kv_cache *kv, int seq, int64_t n_pos);
/* Releases every block of `seq` (shared ones stay with their other users). */
void rf_kv_seq_free(rf_kv_cache *kv, int seq);
int64_t rf_kv_seq_capacity(const rf_kv_cache *kv, int seq); /* positions reserved */

/* Attaches the longest cached prefix of `tokens` (whole blocks only, and
 * never all n tokens: the last one must be computed to get logits) to the
 * empty sequence `seq`. Returns the number of positions now filled. */
int64_t rf_kv_seq_attach_prefix(rf_kv_cache *kv, int seq, const int32_t *tokens, int64_t n);
/* Registers the full blocks of tokens[0, n) of `seq` (computed) in the
 * prefix cache. */
void rf_kv_seq_commit_prefix(rf_kv_cache *kv, int seq, const int32_t *tokens, int64_t n);

/* Storage of position `pos` of `seq` in `layer`: kv_dim float16 values.
 * pos must be reserved (programmer error otherwise). */
uint16_t *rf_kv_k(const rf_kv_cache *kv, int layer, int seq, int64_t pos);
uint16_t *rf_kv_v(const rf_kv_cache *kv, int layer, int seq, int64_t pos);

/* The block tables, [n_seq][max_blocks_per_seq] block ids (borrowed; valid
 * for the reserved positions of each sequence), for a device that keeps a
 * copy of the cache in the same layout (src/gpu). */
const int32_t *rf_kv_tables(const rf_kv_cache *kv);

typedef struct rf_kv_stats {
    int64_t blocks_total, blocks_used, blocks_cached; /* cached: free but findable */
    uint64_t prefix_hits_tokens, prefix_lookups;
} rf_kv_stats;
rf_kv_stats rf_kv_get_stats(const rf_kv_cache *kv);

#endif
