/*
 * search.c - hybrid retrieval over the context store: brute-force cosine
 * over the cached vectors of one model (kernels in vec.c), FTS5 BM25
 * keyword hits, their fusion, and graph expansion along edges with a
 * per-hop decay.
 *
 * Why brute force: a dot product over 100k x 576 floats is ~60 M FMAs, a few
 * milliseconds with AVX2 on one core, below the cost of embedding the query;
 * an approximate index would add recall loss and complexity for no gain at
 * the sizes a local context store reaches.
 *
 * Fusion is weighted reciprocal-rank fusion, score = sum w / (K + rank)
 * over the two lists: it needs no calibration between cosine values and
 * BM25 scores, whose scales differ per corpus and per query. Keyword ranks
 * weigh twice the vector ranks and K is 20 (not the customary 60): with a
 * small generative model's mean-pooled vectors (SmolLM2: ~40 % top-3 alone
 * on the quality test's paraphrases) BM25 is the sharper signal and the
 * vectors mostly re-order its near ties; measured on that test's corpus.
 */
#include "context-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { RRF_K = 20 };
#define RRF_WK 2.0
#define RRF_WV 1.0

/* ---- the vector cache --------------------------------------------------------------------- */

void cdb_cache_clear(rf_cdb *db) {
    rf_free(db->cache.ids);
    rf_free(db->cache.mat);
    memset(&db->cache, 0, sizeof db->cache);
}

static int64_t data_version(rf_cdb *db) {
    sqlite3_stmt *s = cdb_prep(db, "PRAGMA data_version", NULL);
    int64_t v = s && sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    return v;
}

/* Makes the cache hold model's vectors of dimension dim (reloading when
 * the database changed). Rows with another dimension are ignored. */
static rf_status cache_load(rf_cdb *db, const char *model, int64_t dim, rf_error *err) {
    cdb_cache *c = &db->cache;
    int64_t dv = data_version(db);
    if (c->valid && c->dim == dim && strcmp(c->model, model) == 0 && c->data_version == dv && c->local_writes == db->local_writes)
        return RF_OK;
    cdb_cache_clear(db);
    rf_status st = RF_OK;
    sqlite3_exec(db->h, "BEGIN", NULL, NULL, NULL);
    sqlite3_stmt *s = cdb_prep(db, "SELECT count(*) FROM embeddings WHERE model = ?1 AND dim = ?2", err);
    sqlite3_stmt *r = cdb_prep(db, "SELECT node, vec FROM embeddings WHERE model = ?1 AND dim = ?2 ORDER BY node", err);
    if (!s || !r) { st = err ? err->code : RF_E_IO; goto out; }
    sqlite3_bind_text(s, 1, model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, dim);
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    c->ids = rf_malloc((size_t)(n ? n : 1) * sizeof *c->ids);
    c->mat = rf_malloc((size_t)(n ? n : 1) * (size_t)dim * sizeof(float));
    if (!c->ids || !c->mat) { st = rf_error_set(err, RF_E_NOMEM, "out of memory for %lld vectors", (long long)n); goto out; }
    sqlite3_bind_text(r, 1, model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(r, 2, dim);
    int64_t k = 0;
    int rc;
    while ((rc = sqlite3_step(r)) == SQLITE_ROW && k < n) {
        if (sqlite3_column_bytes(r, 1) != (int)(dim * 4)) continue;
        float *row = c->mat + k * dim;
        memcpy(row, sqlite3_column_blob(r, 1), (size_t)dim * sizeof(float));
        double ss = 0;
        for (int64_t i = 0; i < dim; i++) ss += (double)row[i] * row[i];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int64_t i = 0; i < dim; i++) row[i] *= inv;
        c->ids[k++] = sqlite3_column_int64(r, 0);
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) { st = cdb_fail(db, err, "read embeddings"); goto out; }
    c->n = k;
    c->dim = dim;
    snprintf(c->model, sizeof c->model, "%s", model);
    c->data_version = dv;
    c->local_writes = db->local_writes;
    c->valid = true;
out:
    sqlite3_finalize(s);
    sqlite3_finalize(r);
    sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
    if (st != RF_OK) cdb_cache_clear(db);
    return st;
}

/* ---- candidates ----------------------------------------------------------------------------- */

typedef struct cand {
    int64_t id;
    double score, v, kw;
    int vrank, krank; /* 1-based; 0: not in that list */
    int hop;
    int64_t via;
} cand;

typedef struct cands {
    cand *a;
    int n, cap;
} cands;

static cand *cands_find(cands *c, int64_t id) {
    for (int i = 0; i < c->n; i++)
        if (c->a[i].id == id) return &c->a[i];
    return NULL;
}

static cand *cands_add(cands *c, int64_t id) {
    cand *x = cands_find(c, id);
    if (x) return x;
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 64;
        cand *p = rf_realloc(c->a, (size_t)nc * sizeof *p);
        if (!p) return NULL;
        c->a = p;
        c->cap = nc;
    }
    x = &c->a[c->n++];
    *x = (cand){.id = id, .v = NAN, .kw = NAN};
    return x;
}

static int by_score(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The top `want` rows by dot product: a bounded min-heap over the scores. */
static rf_status vector_top(rf_cdb *db, const float *q, int want, cands *out, rf_error *err) {
    cdb_cache *c = &db->cache;
    if (c->n == 0) return RF_OK;
    float *sc = rf_malloc((size_t)c->n * sizeof(float));
    int64_t *heap = rf_malloc((size_t)want * sizeof(int64_t));
    if (!sc || !heap) {
        rf_free(sc);
        rf_free(heap);
        return rf_error_set(err, RF_E_NOMEM, "out of memory");
    }
    rf_cdot_rows(c->mat, c->n, c->dim, q, sc);
    int h = 0;
    for (int64_t i = 0; i < c->n; i++) {
        if (h < want) {
            int64_t j = h++;
            heap[j] = i;
            while (j > 0 && sc[heap[(j - 1) / 2]] > sc[heap[j]]) {
                int64_t p = (j - 1) / 2, t = heap[p];
                heap[p] = heap[j];
                heap[j] = t;
                j = p;
            }
        } else if (sc[i] > sc[heap[0]]) {
            heap[0] = i;
            int64_t j = 0;
            for (;;) {
                int64_t l = 2 * j + 1, r = l + 1, m = j;
                if (l < h && sc[heap[l]] < sc[heap[m]]) m = l;
                if (r < h && sc[heap[r]] < sc[heap[m]]) m = r;
                if (m == j) break;
                int64_t t = heap[m];
                heap[m] = heap[j];
                heap[j] = t;
                j = m;
            }
        }
    }
    /* heap -> descending order */
    for (int a = 0; a < h; a++)
        for (int b = a + 1; b < h; b++)
            if (sc[heap[b]] > sc[heap[a]] || (sc[heap[b]] == sc[heap[a]] && c->ids[heap[b]] < c->ids[heap[a]])) {
                int64_t t = heap[a];
                heap[a] = heap[b];
                heap[b] = t;
            }
    rf_status st = RF_OK;
    for (int a = 0; a < h; a++) {
        cand *x = cands_add(out, c->ids[heap[a]]);
        if (!x) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); break; }
        x->v = sc[heap[a]];
        x->vrank = a + 1;
    }
    rf_free(sc);
    rf_free(heap);
    return st;
}

/* English function words: dropped from keyword queries (BM25 practice),
 * unless the query has nothing else. Sorted for bsearch. */
static const char *const stopwords[] = {
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "before", "being",
    "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from", "had", "has", "have", "having", "he",
    "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "my", "no",
    "nor", "not", "of", "on", "or", "our", "ours", "she", "so", "some", "such", "than", "that", "the", "their",
    "theirs", "them", "then", "there", "these", "they", "this", "those", "to", "too", "us", "very", "was", "we",
    "were", "what", "when", "where", "which", "while", "who", "whom", "whose", "why", "will", "with", "would", "you",
    "your", "yours",
};

static int cmp_word(const void *k, const void *e) { return strcmp(k, *(const char *const *)e); }

static bool is_stopword(const char *w, size_t n) {
    char low[16];
    if (n >= sizeof low) return false;
    for (size_t i = 0; i < n; i++) low[i] = (char)(w[i] >= 'A' && w[i] <= 'Z' ? w[i] + 32 : w[i]);
    low[n] = '\0';
    return bsearch(low, stopwords, RF_ARRAY_LEN(stopwords), sizeof stopwords[0], cmp_word) != NULL;
}

static bool word_byte(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch >= 0x80;
}

/* The query as an FTS5 expression: each word (letters/digits, UTF-8 bytes
 * >= 0x80 kept) as a quoted term, joined by OR, stopwords left out unless
 * nothing else is left; NULL when it has no word. Caller frees. */
static char *fts_query(const char *q) {
    size_t n = strlen(q);
    char *o = rf_malloc(n * 6 + 16);
    if (!o) return NULL;
    for (int pass = 0; pass < 2; pass++) {
        char *p = o;
        bool any = false;
        for (size_t i = 0; i < n;) {
            if (!word_byte((unsigned char)q[i])) { i++; continue; }
            size_t a = i;
            while (i < n && word_byte((unsigned char)q[i])) i++;
            if (pass == 0 && is_stopword(q + a, i - a)) continue;
            if (any) p += sprintf(p, " OR ");
            *p++ = '"';
            memcpy(p, q + a, i - a);
            p += i - a;
            *p++ = '"';
            any = true;
        }
        *p = '\0';
        if (any) return o;
    }
    rf_free(o);
    return NULL;
}

static rf_status keyword_top(rf_cdb *db, const char *query, int want, cands *out, rf_error *err) {
    char *fq = fts_query(query);
    if (!fq) return RF_OK;
    sqlite3_stmt *s = cdb_prep(db, "SELECT rowid, bm25(fts) FROM fts WHERE fts MATCH ?1 ORDER BY bm25(fts), rowid LIMIT ?2", err);
    if (!s) {
        rf_free(fq);
        return err ? err->code : RF_E_IO;
    }
    sqlite3_bind_text(s, 1, fq, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, want);
    rf_status st = RF_OK;
    int rc, rank = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        cand *x = cands_add(out, sqlite3_column_int64(s, 0));
        if (!x) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); break; }
        x->kw = -sqlite3_column_double(s, 1);
        x->krank = ++rank;
    }
    if (st == RF_OK && rc != SQLITE_DONE) st = cdb_fail(db, err, "keyword search");
    sqlite3_finalize(s);
    rf_free(fq);
    return st;
}

/* ---- graph expansion ------------------------------------------------------------------------- */

/* Adds the neighbours of the candidates, `hops` rounds, at most max_new per
 * round (a hub node must not pull in the whole graph). A multi-chunk
 * document container is walked through but not returned. */
static rf_status expand(rf_cdb *db, cands *c, int hops, double decay, int max_new, rf_error *err) {
    sqlite3_stmt *s = cdb_prep(db, "SELECT dst, weight FROM edges WHERE src = ?1 UNION ALL SELECT src, weight FROM edges WHERE dst = ?1", err);
    if (!s) return err ? err->code : RF_E_IO;
    rf_status st = RF_OK;
    int lo = 0, hi = c->n;
    for (int h = 1; h <= hops && st == RF_OK; h++) {
        int added = 0;
        for (int i = lo; i < hi && st == RF_OK && added < max_new; i++) {
            int64_t from = c->a[i].id;
            double base = c->a[i].score;
            sqlite3_reset(s);
            sqlite3_bind_int64(s, 1, from);
            int rc;
            while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                int64_t nb = sqlite3_column_int64(s, 0);
                double w = sqlite3_column_double(s, 1);
                double sc = base * decay * (w > 0 ? w : 1.0);
                cand *x = cands_find(c, nb);
                if (x) continue;
                if (added >= max_new) break;
                if (!(x = cands_add(c, nb))) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); break; }
                added++;
                x->score = sc;
                x->hop = h;
                x->via = from;
            }
            if (st == RF_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) st = cdb_fail(db, err, "graph expansion");
        }
        lo = hi;
        hi = c->n;
    }
    sqlite3_finalize(s);
    return st;
}

/* ---- search ------------------------------------------------------------------------------------ */

static const char *const mode_names[RF_CS_MODE_COUNT] = {"hybrid", "vector", "keyword"};

const char *rf_csearch_mode_name(rf_csearch_mode m) { return m < RF_CS_MODE_COUNT ? mode_names[m] : "?"; }

bool rf_csearch_mode_parse(const char *s, rf_csearch_mode *out) {
    for (int i = 0; i < RF_CS_MODE_COUNT; i++)
        if (s && strcmp(s, mode_names[i]) == 0) {
            *out = (rf_csearch_mode)i;
            return true;
        }
    return false;
}

/* Kind and parts of a node; false when it is gone. */
static bool node_kind(rf_cdb *db, int64_t id, char *kind, size_t kn, int64_t *parts, int64_t *parent) {
    rf_cdb_node nd;
    if (cdb_get_locked(db, id, &nd, NULL) != RF_OK) return false;
    snprintf(kind, kn, "%s", nd.kind);
    *parts = nd.parts;
    *parent = nd.parent;
    rf_cdb_node_clear(&nd);
    return true;
}

rf_status rf_cdb_search(rf_cdb *db, const rf_csearch_params *p, rf_chit **hits, int *n_hits, rf_error *err) {
    *hits = NULL;
    *n_hits = 0;
    int k = p->k > 0 ? p->k : 5;
    if (k > 1000) return rf_error_set(err, RF_E_RANGE, "k must be at most 1000");
    if (p->hops < 0 || p->hops > 8) return rf_error_set(err, RF_E_RANGE, "hops must be between 0 and 8");
    double decay = p->decay > 0 ? p->decay : 0.5;
    bool want_v = p->mode != RF_CS_KEYWORD, want_k = p->mode != RF_CS_VECTOR;
    if (want_v && !p->qvec) return rf_error_set(err, RF_E_INVAL, "%s search needs a query embedding (a model)", rf_csearch_mode_name(p->mode));
    if (want_k && (!p->query || !*p->query) && !want_v) return rf_error_set(err, RF_E_INVAL, "empty query");
    int want = k * 10 < 50 ? 50 : k * 10;
    cands c = {0};
    pthread_mutex_lock(&db->mu);
    rf_status st = RF_OK;
    if (want_v) {
        if ((st = cache_load(db, p->model_id, p->dim, err)) != RF_OK) goto out;
        if ((st = vector_top(db, p->qvec, want, &c, err)) != RF_OK) goto out;
    }
    if (want_k && p->query && (st = keyword_top(db, p->query, want, &c, err)) != RF_OK) goto out;
    for (int i = 0; i < c.n; i++) {
        cand *x = &c.a[i];
        if (p->mode == RF_CS_VECTOR) x->score = x->v;
        else if (p->mode == RF_CS_KEYWORD) x->score = x->kw;
        else x->score = (x->vrank ? RRF_WV / (RRF_K + x->vrank) : 0) + (x->krank ? RRF_WK / (RRF_K + x->krank) : 0);
    }
    if (c.n) qsort(c.a, (size_t)c.n, sizeof *c.a, by_score);
    if (c.n > k) c.n = k;
    if (p->hops > 0 && (st = expand(db, &c, p->hops, decay, 4 * k + 8, err)) != RF_OK) goto out;
    if (c.n) qsort(c.a, (size_t)c.n, sizeof *c.a, by_score);
    rf_chit *o = rf_calloc((size_t)(c.n ? c.n : 1), sizeof *o);
    if (!o) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); goto out; }
    int m = 0;
    for (int i = 0; i < c.n; i++) {
        char kind[16];
        int64_t parts, parent;
        if (!node_kind(db, c.a[i].id, kind, sizeof kind, &parts, &parent)) continue;
        if (strcmp(kind, "document") == 0 && parts > 1) continue; /* a container: its chunks are the results */
        o[m++] = (rf_chit){.id = c.a[i].id, .score = c.a[i].score, .vscore = c.a[i].v, .kscore = c.a[i].kw,
                           .hop = c.a[i].hop, .via = c.a[i].via, .doc = parent ? parent : c.a[i].id};
    }
    *hits = o;
    *n_hits = m;
out:
    pthread_mutex_unlock(&db->mu);
    rf_free(c.a);
    return st;
}
