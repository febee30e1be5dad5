/*
 * context.h - the context engine: long-lived, graph-linked context (documents,
 * notes, messages) in one SQLite file, found again by meaning (cosine over
 * stored embeddings), by keywords (FTS5 BM25) and by links (graph expansion).
 *
 * Storage (store.c): nodes (id, kind, text, JSON metadata, created_at,
 * parts), edges (src, dst, relation, weight), embeddings (node, model id,
 * dimension, float32 blob) and an FTS5 index of the searchable text. WAL
 * mode, foreign keys on, a busy timeout with retries, every write one
 * transaction: a document is visible with all its chunks and vectors or
 * not at all. The schema carries a version and is migrated on open.
 *
 * A document whose text fits one chunk is a single searchable node; a
 * longer one is a container node (kind document, parts = number of chunks)
 * with "chunk" nodes linked to it (relation "chunk", in order) and to each
 * other ("next"). Only searchable nodes (single documents, chunks, notes,
 * messages) carry embeddings and FTS rows.
 *
 * Embeddings (embed.c) come from the loaded GGUF model through the
 * scheduler's embedding jobs (mean-pooled, L2-normalised final hidden
 * states; the same path as the server's /v1/embeddings). Every vector is
 * stored with its model id, and a search only compares vectors of one model.
 *
 * Without SQLite (-DRF_CONTEXT=OFF or no libsqlite3) stub.c provides the
 * same functions; each returns RF_E_UNSUPPORTED with the message
 * RF_CDB_UNSUPPORTED_MSG.
 */
#ifndef RF_CONTEXT_H
#define RF_CONTEXT_H

#include <stdio.h>

#include "core/core.h"
#include "sched/sched.h"
#include "tokenizer/tokenizer.h"

#define RF_CDB_UNSUPPORTED_MSG "built without the context engine (-DRF_CONTEXT=ON needs libsqlite3)"
#define RF_CDB_SCHEMA_VERSION 2

/* True when this build has the context engine. */
bool rf_cdb_available(void);

/* ---- the embedder ----------------------------------------------------------- */

typedef struct rf_cembed rf_cembed;

/* An embedder over a running scheduler: s and tok are borrowed and must
 * outlive it. model_id names the vectors it makes (copied). chunk_tokens:
 * the chunk length used for documents (0: 256), overlap_tokens (0: 32). */
rf_status rf_cembed_create(rf_sched *s, const rf_tokenizer *tok, const char *model_id, int64_t dim,
                           int64_t chunk_tokens, int64_t overlap_tokens, rf_cembed **out, rf_error *err);
/* Opens a model file for embeddings only (engine, context with n_seq slots,
 * scheduler) and returns an embedder that owns them. threads 0: default. */
rf_status rf_cembed_open_model(const char *path, int threads, int64_t chunk_tokens, rf_cembed **out, rf_error *err);
void rf_cembed_free(rf_cembed *e); /* accepts NULL */
const char *rf_cembed_model_id(const rf_cembed *e);
int64_t rf_cembed_dim(const rf_cembed *e);
/* Embeds n texts: out [n][dim], each L2-normalised. Texts longer than the
 * context are cut to the context. Blocks until done; any thread. */
rf_status rf_cembed_texts(rf_cembed *e, const char *const *texts, const size_t *lens, int n, float *out, rf_error *err);

/* Splits text into chunks of at most chunk_tokens tokens, consecutive
 * chunks sharing overlap_tokens tokens; each chunk is the detokenized text
 * of its window (chunk.c). *chunks: array of NUL-terminated strings, caller
 * frees with rf_chunks_free. A text that fits is one chunk (its own copy). */
rf_status rf_chunk_text(const rf_tokenizer *tok, const char *text, size_t len, int64_t chunk_tokens,
                        int64_t overlap_tokens, char ***chunks, int *n_chunks, rf_error *err);
void rf_chunks_free(char **chunks, int n);
/* Chunking for an embedder's settings. */
rf_status rf_cembed_chunk(const rf_cembed *e, const char *text, size_t len, char ***chunks, int *n_chunks, rf_error *err);

/* ---- the store ---------------------------------------------------------------- */

typedef struct rf_cdb rf_cdb;

/* Opens (create: creates if missing) a database and migrates its schema to
 * RF_CDB_SCHEMA_VERSION. A missing file without create is RF_E_NOTFOUND; a
 * file that is not a database, or one of a newer schema, RF_E_FORMAT. */
rf_status rf_cdb_open(const char *path, bool create, rf_cdb **out, rf_error *err);
/* Tests: opens and migrates only up to `version` (1..RF_CDB_SCHEMA_VERSION). */
rf_status rf_cdb_open_version(const char *path, bool create, int version, rf_cdb **out, rf_error *err);
void rf_cdb_close(rf_cdb *db); /* accepts NULL */
int rf_cdb_schema_version(rf_cdb *db);

/* Valid node kinds a caller may add ("chunk" is made by the store). */
bool rf_cdb_kind_valid(const char *kind);

typedef struct rf_cdb_link {
    int64_t dst;
    const char *relation;
} rf_cdb_link;

/* One item to add: a node whose text is split into parts (n_parts >= 1;
 * with one part the node itself is searchable). vecs: [n_parts][dim]
 * (borrowed), model_id names them; vecs NULL: no embeddings (keyword-only).
 * meta_json: a JSON object or NULL (validated here). links: edges from the
 * new node to existing ones (an unknown dst is RF_E_NOTFOUND and nothing is
 * written). */
typedef struct rf_cdb_item {
    const char *kind;
    const char *text;
    size_t len;
    const char *meta_json;
    const char *const *parts;
    int n_parts;
    const float *vecs;
    const char *model_id;
    int64_t dim;
    const rf_cdb_link *links;
    int n_links;
    int64_t created_at; /* 0: now */
} rf_cdb_item;

/* Adds the item in one transaction; *id: the new node's id. */
rf_status rf_cdb_add(rf_cdb *db, const rf_cdb_item *it, int64_t *id, rf_error *err);
/* Adds an edge src -> dst (both must exist; RF_E_NOTFOUND names which);
 * an existing (src, dst, relation) edge gets the new weight. */
rf_status rf_cdb_link_add(rf_cdb *db, int64_t src, int64_t dst, const char *relation, double weight, rf_error *err);
/* Removes a node, its chunks (for a document), their vectors, FTS rows and
 * edges. Unknown id: RF_E_NOTFOUND. */
rf_status rf_cdb_remove(rf_cdb *db, int64_t id, rf_error *err);

typedef struct rf_cdb_node {
    int64_t id;
    char kind[16];
    char *text;       /* caller frees (rf_cdb_node_clear) */
    char *meta_json;  /* "{}" when none */
    int64_t created_at;
    int64_t parts;
    int64_t parent;   /* the document of a chunk, else 0 */
} rf_cdb_node;
void rf_cdb_node_clear(rf_cdb_node *n);

/* Reads one node; RF_E_NOTFOUND when absent. */
rf_status rf_cdb_get(rf_cdb *db, int64_t id, rf_cdb_node *out, rf_error *err);

typedef struct rf_cdb_edge {
    int64_t src, dst;
    char relation[64];
    double weight;
} rf_cdb_edge;
/* Edges touching id (both directions). *edges: caller frees. */
rf_status rf_cdb_edges(rf_cdb *db, int64_t id, rf_cdb_edge **edges, int64_t *n, rf_error *err);

typedef struct rf_cdb_stats {
    int64_t nodes, edges, embeddings, documents, chunks, messages, notes;
    int64_t file_bytes;
    int schema_version;
    char models[8][128]; /* distinct model ids with vectors */
    int64_t model_vectors[8];
    int n_models;
} rf_cdb_stats;
rf_status rf_cdb_get_stats(rf_cdb *db, rf_cdb_stats *st, rf_error *err);

/* The last node of a conversation session (meta.session == session, kind
 * message), 0 when none. */
rf_status rf_cdb_session_last(rf_cdb *db, const char *session, int64_t *id, rf_error *err);

/* JSON lines: {"type":"node",...,"embeddings":[{"model","dim","vec"(base64 float32 LE)}]}
 * then {"type":"edge",...}. Import maps ids to new ones in one transaction. */
rf_status rf_cdb_export(rf_cdb *db, FILE *out, int64_t *n_lines, rf_error *err);
rf_status rf_cdb_import(rf_cdb *db, FILE *in, int64_t *n_nodes, int64_t *n_edges, rf_error *err);

/* ---- search (search.c) ------------------------------------------------------------ */

typedef enum rf_csearch_mode { RF_CS_HYBRID = 0, RF_CS_VECTOR, RF_CS_KEYWORD, RF_CS_MODE_COUNT } rf_csearch_mode;
const char *rf_csearch_mode_name(rf_csearch_mode m);
bool rf_csearch_mode_parse(const char *s, rf_csearch_mode *out);

typedef struct rf_csearch_params {
    const char *query;
    const float *qvec;    /* [dim], L2-normalised; NULL: no vector part */
    const char *model_id; /* the model of qvec */
    int64_t dim;
    int k;                /* results (0: 5) */
    int hops;             /* graph expansion depth (0: none) */
    double decay;         /* score factor per hop (0: 0.5) */
    rf_csearch_mode mode;
} rf_csearch_params;

typedef struct rf_chit {
    int64_t id;
    double score;
    double vscore, kscore; /* cosine (or NAN) and BM25 (or NAN: not a keyword hit) */
    int hop;               /* 0: direct hit; h: reached h edges from `via` */
    int64_t via;
    int64_t doc;           /* the document of a chunk, else id */
} rf_chit;

/* Searches; *hits: up to k, best first, caller frees. Vector part: every
 * stored vector of model_id (cached per connection, reloaded when the
 * database changes), cosine against qvec. Keyword part: FTS5 BM25 over the
 * query's words (OR). Hybrid: reciprocal-rank fusion of both lists. Then
 * `hops` rounds of expansion along edges (either direction), each
 * neighbour scored parent * decay * weight. */
rf_status rf_cdb_search(rf_cdb *db, const rf_csearch_params *p, rf_chit **hits, int *n_hits, rf_error *err);

/* Dot products of q [dim] with rows of m [n][dim] into out [n]: the SIMD
 * kernel (AVX2+FMA when the CPU has it) and its plain-C reference. */
void rf_cdot_rows(const float *m, int64_t n, int64_t dim, const float *q, float *out);
void rf_cdot_rows_ref(const float *m, int64_t n, int64_t dim, const float *q, float *out);

/* ---- the pipeline both the CLI and the server run (embed.c) ------------------------------ */

/* Chunks text with e's tokenizer, embeds every chunk, and adds the item in
 * one transaction. e NULL: no vectors (keyword search only). *id: the new
 * node; *n_chunks (optional): its searchable parts. */
rf_status rf_context_add(rf_cdb *db, rf_cembed *e, const char *kind, const char *text, size_t len, const char *meta_json,
                         const rf_cdb_link *links, int n_links, int64_t *id, int *n_chunks, rf_error *err);
/* Embeds the query (when the mode needs it) and searches. */
rf_status rf_context_search(rf_cdb *db, rf_cembed *e, const char *query, int k, int hops, rf_csearch_mode mode,
                            rf_chit **hits, int *n_hits, rf_error *err);

#endif /* RF_CONTEXT_H */
