/*
 * store.c - the context engine's SQLite storage: opening (WAL, foreign keys,
 * busy timeout), the schema and its migrations, transactions with retries
 * on a busy database, adding/removing/reading nodes and edges, statistics,
 * and JSONL export/import. Search lives in search.c and shares the handle
 * through context-impl.h.
 *
 * Schema (version in schema_version, one row per applied migration):
 *   v1  nodes(id, kind, text, meta, created_at), edges(src, dst, relation,
 *       weight), embeddings(node, model, dim, vec), fts (FTS5 over text,
 *       rowid = node id), a trigger dropping a node's FTS row with it.
 *   v2  nodes.parts (chunks of a document, for completeness checks),
 *       indexes on edges(dst), embeddings(model), nodes(kind).
 */
#include "context-impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

bool rf_cdb_available(void) { return true; }

/* ---- errors and statements ----------------------------------------------------------- */

rf_status cdb_fail(rf_cdb *db, rf_error *err, const char *what) {
    int rc = sqlite3_extended_errcode(db->h);
    rf_status st = RF_E_IO;
    if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT) st = RF_E_FORMAT;
    else if ((rc & 0xff) == SQLITE_NOMEM) st = RF_E_NOMEM;
    return rf_error_set(err, st, "%s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
}

sqlite3_stmt *cdb_prep(rf_cdb *db, const char *sql, rf_error *err) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db->h, sql, -1, &s, NULL) != SQLITE_OK) {
        cdb_fail(db, err, "prepare");
        sqlite3_finalize(s);
        return NULL;
    }
    return s;
}

static rf_status exec(rf_cdb *db, const char *sql, rf_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        rf_status st = rf_error_set(err, RF_E_IO, "%s: %s", db->path, msg ? msg : sqlite3_errmsg(db->h));
        int rc = sqlite3_errcode(db->h);
        if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT) st = err ? (err->code = RF_E_FORMAT) : RF_E_FORMAT;
        sqlite3_free(msg);
        return st;
    }
    return RF_OK;
}

/* BEGIN IMMEDIATE: takes the write lock now, so a transaction never fails
 * half-way on a lock. The busy timeout waits for other writers; past it we
 * retry a few more times before giving up. */
rf_status cdb_begin(rf_cdb *db, rf_error *err) {
    for (int attempt = 0;; attempt++) {
        int rc = sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK) return RF_OK;
        if ((rc & 0xff) != SQLITE_BUSY || attempt >= 20) return cdb_fail(db, err, "begin transaction");
        usleep(50000);
    }
}

rf_status cdb_commit(rf_cdb *db, rf_error *err) {
    for (int attempt = 0;; attempt++) {
        int rc = sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            db->local_writes++;
            return RF_OK;
        }
        if ((rc & 0xff) != SQLITE_BUSY || attempt >= 20) {
            rf_status st = cdb_fail(db, err, "commit");
            sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
            return st;
        }
        usleep(50000);
    }
}

void cdb_rollback(rf_cdb *db) {
    if (!sqlite3_get_autocommit(db->h)) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- schema ----------------------------------------------------------------------- */

static const char *const migrations[] = {
    /* v1 */
    "CREATE TABLE nodes(id INTEGER PRIMARY KEY,"
    " kind TEXT NOT NULL CHECK(kind IN ('document','chunk','message','note')),"
    " text TEXT NOT NULL, meta TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL);"
    "CREATE TABLE edges(src INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
    " dst INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
    " relation TEXT NOT NULL, weight REAL NOT NULL DEFAULT 1.0, PRIMARY KEY(src, dst, relation));"
    "CREATE TABLE embeddings(node INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
    " model TEXT NOT NULL, dim INTEGER NOT NULL CHECK(dim > 0), vec BLOB NOT NULL CHECK(length(vec) = 4 * dim),"
    " PRIMARY KEY(node, model));"
    "CREATE VIRTUAL TABLE fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');"
    "CREATE TRIGGER nodes_fts_del AFTER DELETE ON nodes BEGIN DELETE FROM fts WHERE rowid = old.id; END;",
    /* v2 */
    "ALTER TABLE nodes ADD COLUMN parts INTEGER NOT NULL DEFAULT 1;"
    "CREATE INDEX edges_dst ON edges(dst);"
    "CREATE INDEX embeddings_model ON embeddings(model, dim);"
    "CREATE INDEX nodes_kind ON nodes(kind);",
};
_Static_assert(RF_ARRAY_LEN(migrations) == RF_CDB_SCHEMA_VERSION, "one migration per schema version");

static rf_status read_version(rf_cdb *db, int *v, rf_error *err) {
    *v = 0;
    sqlite3_stmt *s = cdb_prep(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'", err);
    if (!s) return err ? err->code : RF_E_IO;
    int rc = sqlite3_step(s);
    bool have = rc == SQLITE_ROW && sqlite3_column_int(s, 0) > 0;
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) return cdb_fail(db, err, "read schema");
    if (!have) return RF_OK;
    if (!(s = cdb_prep(db, "SELECT coalesce(max(version), 0) FROM schema_version", err))) return err ? err->code : RF_E_IO;
    if (sqlite3_step(s) == SQLITE_ROW) *v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return RF_OK;
}

/* Applies the missing migrations up to `target`, each in its own
 * transaction; the version is re-read under the write lock so two processes
 * opening a new file together migrate it once. */
static rf_status migrate(rf_cdb *db, int target, rf_error *err) {
    for (;;) {
        rf_status st = cdb_begin(db, err);
        if (st != RF_OK) return st;
        int v;
        if ((st = read_version(db, &v, err)) != RF_OK) goto fail;
        if (v > RF_CDB_SCHEMA_VERSION) {
            st = rf_error_set(err, RF_E_FORMAT, "%s: schema version %d is newer than this build's %d", db->path, v,
                              RF_CDB_SCHEMA_VERSION);
            goto fail;
        }
        if (v == 0) {
            /* a new file must be empty: an unrelated SQLite database is refused */
            sqlite3_stmt *s = cdb_prep(db, "SELECT count(*) FROM sqlite_master", err);
            if (!s) { st = err ? err->code : RF_E_IO; goto fail; }
            int n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
            sqlite3_finalize(s);
            if (n != 0) {
                st = rf_error_set(err, RF_E_FORMAT, "%s: an SQLite database, but not a context database", db->path);
                goto fail;
            }
            if ((st = exec(db, "CREATE TABLE schema_version(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)", err)) != RF_OK)
                goto fail;
        }
        if (v >= target) return cdb_commit(db, err);
        if ((st = exec(db, migrations[v], err)) != RF_OK) goto fail;
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES(%d, %lld)", v + 1, (long long)time(NULL));
        if ((st = exec(db, sql, err)) != RF_OK) goto fail;
        if ((st = cdb_commit(db, err)) != RF_OK) return st;
        continue;
    fail:
        cdb_rollback(db);
        return st;
    }
}

int rf_cdb_schema_version(rf_cdb *db) {
    int v = 0;
    pthread_mutex_lock(&db->mu);
    read_version(db, &v, NULL);
    pthread_mutex_unlock(&db->mu);
    return v;
}

rf_status rf_cdb_open_version(const char *path, bool create, int version, rf_cdb **out, rf_error *err) {
    *out = NULL;
    RF_ASSERT(version >= 1 && version <= RF_CDB_SCHEMA_VERSION);
    struct stat sb;
    if (!create && stat(path, &sb) != 0)
        return rf_error_set(err, RF_E_NOTFOUND, "%s: no such context database (create it with 'rocmforge context init %s')",
                            path, path);
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) return rf_error_set(err, RF_E_IO, "%s: not a regular file", path);
    rf_cdb *db = rf_calloc(1, sizeof *db);
    if (!db) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    pthread_mutex_init(&db->mu, NULL);
    db->path = rf_strndup(path, strlen(path));
    if (!db->path) { rf_free(db); return rf_error_set(err, RF_E_NOMEM, "out of memory"); }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    rf_status st;
    if (sqlite3_open_v2(path, &db->h, flags, NULL) != SQLITE_OK) {
        st = rf_error_set(err, RF_E_IO, "%s: cannot open: %s", path, db->h ? sqlite3_errmsg(db->h) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, 10000);
    /* journal_mode reads the header: a non-database file fails here */
    if ((st = exec(db, "PRAGMA journal_mode = WAL", err)) != RF_OK) {
        if (err && strstr(err->msg, "not a database")) err->code = st = RF_E_FORMAT;
        goto fail;
    }
    if ((st = exec(db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL", err)) != RF_OK) goto fail;
    if ((st = migrate(db, version, err)) != RF_OK) goto fail;
    *out = db;
    return RF_OK;
fail:
    rf_cdb_close(db);
    return st;
}

rf_status rf_cdb_open(const char *path, bool create, rf_cdb **out, rf_error *err) {
    return rf_cdb_open_version(path, create, RF_CDB_SCHEMA_VERSION, out, err);
}

void rf_cdb_close(rf_cdb *db) {
    if (!db) return;
    cdb_cache_clear(db);
    if (db->h) sqlite3_close_v2(db->h);
    pthread_mutex_destroy(&db->mu);
    rf_free(db->path);
    rf_free(db);
}

/* ---- adding ---------------------------------------------------------------------------- */

static const char *const kinds[] = {"document", "message", "note"};

bool rf_cdb_kind_valid(const char *kind) {
    for (size_t i = 0; i < RF_ARRAY_LEN(kinds); i++)
        if (kind && strcmp(kind, kinds[i]) == 0) return true;
    return false;
}

/* meta as compact JSON text (caller frees with free()), or NULL + error. */
static char *norm_meta(const char *meta, rf_error *err) {
    if (!meta || !*meta) meta = "{}";
    json_error_t je;
    json_t *v = json_loads(meta, JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        rf_error_set(err, RF_E_FORMAT, "metadata is not valid JSON (line %d, column %d: %s)", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        rf_error_set(err, RF_E_FORMAT, "metadata must be a JSON object");
        return NULL;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(v);
    if (!s) rf_error_set(err, RF_E_NOMEM, "out of memory");
    return s;
}

static rf_status node_exists(rf_cdb *db, int64_t id, bool *yes, rf_error *err) {
    sqlite3_stmt *s = cdb_prep(db, "SELECT 1 FROM nodes WHERE id = ?", err);
    if (!s) return err ? err->code : RF_E_IO;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return cdb_fail(db, err, "lookup");
    *yes = rc == SQLITE_ROW;
    return RF_OK;
}

static rf_status insert_node(rf_cdb *db, const char *kind, const char *text, size_t len, const char *meta, int64_t created,
                             int64_t parts, int64_t *id, rf_error *err) {
    sqlite3_stmt *s = cdb_prep(db, "INSERT INTO nodes(kind, text, meta, created_at, parts) VALUES(?, ?, ?, ?, ?)", err);
    if (!s) return err ? err->code : RF_E_IO;
    sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text64(s, 2, text, len, SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_text(s, 3, meta, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, created);
    sqlite3_bind_int64(s, 5, parts);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return cdb_fail(db, err, "insert node");
    *id = sqlite3_last_insert_rowid(db->h);
    return RF_OK;
}

static rf_status insert_fts(rf_cdb *db, int64_t id, const char *text, size_t len, rf_error *err) {
    sqlite3_stmt *s = cdb_prep(db, "INSERT INTO fts(rowid, text) VALUES(?, ?)", err);
    if (!s) return err ? err->code : RF_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text64(s, 2, text, len, SQLITE_STATIC, SQLITE_UTF8);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? RF_OK : cdb_fail(db, err, "insert keyword index");
}

static rf_status insert_vec(rf_cdb *db, int64_t id, const char *model, int64_t dim, const float *v, rf_error *err) {
    sqlite3_stmt *s = cdb_prep(db, "INSERT OR REPLACE INTO embeddings(node, model, dim, vec) VALUES(?, ?, ?, ?)", err);
    if (!s) return err ? err->code : RF_E_IO;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, dim);
    sqlite3_bind_blob64(s, 4, v, (sqlite3_uint64)dim * sizeof(float), SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? RF_OK : cdb_fail(db, err, "insert embedding");
}

static rf_status insert_edge(rf_cdb *db, int64_t src, int64_t dst, const char *rel, double w, rf_error *err) {
    sqlite3_stmt *s = cdb_prep(db, "INSERT INTO edges(src, dst, relation, weight) VALUES(?, ?, ?, ?)"
                                   " ON CONFLICT(src, dst, relation) DO UPDATE SET weight = excluded.weight", err);
    if (!s) return err ? err->code : RF_E_IO;
    sqlite3_bind_int64(s, 1, src);
    sqlite3_bind_int64(s, 2, dst);
    sqlite3_bind_text(s, 3, rel, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 4, w);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? RF_OK : cdb_fail(db, err, "insert edge");
}

static bool relation_valid(const char *rel, rf_error *err) {
    size_t n = rel ? strlen(rel) : 0;
    if (n == 0 || n >= 64) {
        rf_error_set(err, RF_E_INVAL, "a relation name must have 1 to 63 bytes");
        return false;
    }
    return true;
}

rf_status rf_cdb_add(rf_cdb *db, const rf_cdb_item *it, int64_t *id, rf_error *err) {
    *id = 0;
    if (!rf_cdb_kind_valid(it->kind))
        return rf_error_set(err, RF_E_INVAL, "unknown kind '%s' (document, message or note)", it->kind ? it->kind : "");
    if (it->n_parts < 1 || !it->parts) return rf_error_set(err, RF_E_INVAL, "nothing to add: the text is empty");
    if (it->vecs && (!it->model_id || !*it->model_id || it->dim <= 0))
        return rf_error_set(err, RF_E_INVAL, "vectors need a model id and a dimension");
    for (int i = 0; i < it->n_links; i++)
        if (!relation_valid(it->links[i].relation, err)) return RF_E_INVAL;
    char *meta = norm_meta(it->meta_json, err);
    if (!meta) return err ? err->code : RF_E_FORMAT;
    int64_t now = it->created_at ? it->created_at : (int64_t)time(NULL);
    pthread_mutex_lock(&db->mu);
    rf_status st = cdb_begin(db, err);
    if (st != RF_OK) goto out;
    for (int i = 0; i < it->n_links; i++) {
        bool yes = false;
        if ((st = node_exists(db, it->links[i].dst, &yes, err)) != RF_OK) goto fail;
        if (!yes) {
            st = rf_error_set(err, RF_E_NOTFOUND, "link target %lld does not exist", (long long)it->links[i].dst);
            goto fail;
        }
    }
    int64_t nid;
    if ((st = insert_node(db, it->kind, it->text, it->len, meta, now, it->n_parts, &nid, err)) != RF_OK) goto fail;
    if (it->n_parts == 1) {
        if ((st = insert_fts(db, nid, it->text, it->len, err)) != RF_OK) goto fail;
        if (it->vecs && (st = insert_vec(db, nid, it->model_id, it->dim, it->vecs, err)) != RF_OK) goto fail;
    } else {
        int64_t prev = 0;
        for (int i = 0; i < it->n_parts; i++) {
            char cm[64];
            snprintf(cm, sizeof cm, "{\"index\":%d}", i);
            int64_t cid;
            size_t cl = strlen(it->parts[i]);
            if ((st = insert_node(db, "chunk", it->parts[i], cl, cm, now, 1, &cid, err)) != RF_OK) goto fail;
            if ((st = insert_fts(db, cid, it->parts[i], cl, err)) != RF_OK) goto fail;
            if (it->vecs && (st = insert_vec(db, cid, it->model_id, it->dim, it->vecs + (size_t)i * (size_t)it->dim, err)) != RF_OK)
                goto fail;
            if ((st = insert_edge(db, nid, cid, "chunk", 1.0, err)) != RF_OK) goto fail;
            if (prev && (st = insert_edge(db, prev, cid, "next", 1.0, err)) != RF_OK) goto fail;
            prev = cid;
        }
    }
    for (int i = 0; i < it->n_links; i++)
        if ((st = insert_edge(db, nid, it->links[i].dst, it->links[i].relation, 1.0, err)) != RF_OK) goto fail;
    if ((st = cdb_commit(db, err)) != RF_OK) goto out;
    *id = nid;
    goto out;
fail:
    cdb_rollback(db);
out:
    pthread_mutex_unlock(&db->mu);
    free(meta);
    return st;
}

rf_status rf_cdb_link_add(rf_cdb *db, int64_t src, int64_t dst, const char *relation, double weight, rf_error *err) {
    if (!relation_valid(relation, err)) return RF_E_INVAL;
    if (!(weight > 0 && weight <= 1e6)) return rf_error_set(err, RF_E_INVAL, "a link weight must be in (0, 1e6]");
    pthread_mutex_lock(&db->mu);
    rf_status st = cdb_begin(db, err);
    if (st != RF_OK) goto out;
    int64_t ends[2] = {src, dst};
    for (int i = 0; i < 2; i++) {
        bool yes = false;
        if ((st = node_exists(db, ends[i], &yes, err)) != RF_OK) goto fail;
        if (!yes) { st = rf_error_set(err, RF_E_NOTFOUND, "node %lld does not exist", (long long)ends[i]); goto fail; }
    }
    if ((st = insert_edge(db, src, dst, relation, weight, err)) != RF_OK) goto fail;
    st = cdb_commit(db, err);
    goto out;
fail:
    cdb_rollback(db);
out:
    pthread_mutex_unlock(&db->mu);
    return st;
}

rf_status rf_cdb_remove(rf_cdb *db, int64_t id, rf_error *err) {
    pthread_mutex_lock(&db->mu);
    rf_status st = cdb_begin(db, err);
    if (st != RF_OK) goto out;
    bool yes = false;
    if ((st = node_exists(db, id, &yes, err)) != RF_OK) goto fail;
    if (!yes) { st = rf_error_set(err, RF_E_NOTFOUND, "node %lld does not exist", (long long)id); goto fail; }
    /* chunks first (their vectors, FTS rows and edges go by cascade/trigger) */
    sqlite3_stmt *s = cdb_prep(db, "DELETE FROM nodes WHERE kind = 'chunk' AND id IN"
                                   " (SELECT dst FROM edges WHERE src = ?1 AND relation = 'chunk')", err);
    if (!s) { st = err ? err->code : RF_E_IO; goto fail; }
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) { st = cdb_fail(db, err, "delete chunks"); goto fail; }
    if (!(s = cdb_prep(db, "DELETE FROM nodes WHERE id = ?", err))) { st = err ? err->code : RF_E_IO; goto fail; }
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) { st = cdb_fail(db, err, "delete node"); goto fail; }
    st = cdb_commit(db, err);
    goto out;
fail:
    cdb_rollback(db);
out:
    pthread_mutex_unlock(&db->mu);
    return st;
}

/* ---- reading ------------------------------------------------------------------------------ */

void rf_cdb_node_clear(rf_cdb_node *n) {
    if (!n) return;
    rf_free(n->text);
    rf_free(n->meta_json);
    n->text = n->meta_json = NULL;
}

static char *col_dup(sqlite3_stmt *s, int i) {
    const unsigned char *t = sqlite3_column_text(s, i);
    int n = sqlite3_column_bytes(s, i);
    return rf_strndup(t ? (const char *)t : "", (size_t)n);
}

rf_status cdb_get_locked(rf_cdb *db, int64_t id, rf_cdb_node *out, rf_error *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = cdb_prep(db, "SELECT id, kind, text, meta, created_at, parts,"
                                   " (SELECT src FROM edges WHERE dst = nodes.id AND relation = 'chunk' LIMIT 1)"
                                   " FROM nodes WHERE id = ?", err);
    if (!s) return err ? err->code : RF_E_IO;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    rf_status st = RF_OK;
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(s, 0);
        snprintf(out->kind, sizeof out->kind, "%s", (const char *)sqlite3_column_text(s, 1));
        out->text = col_dup(s, 2);
        out->meta_json = col_dup(s, 3);
        out->created_at = sqlite3_column_int64(s, 4);
        out->parts = sqlite3_column_int64(s, 5);
        out->parent = sqlite3_column_type(s, 6) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, 6);
        if (!out->text || !out->meta_json) {
            rf_cdb_node_clear(out);
            st = rf_error_set(err, RF_E_NOMEM, "out of memory");
        }
    } else if (rc == SQLITE_DONE) {
        st = rf_error_set(err, RF_E_NOTFOUND, "node %lld does not exist", (long long)id);
    } else {
        st = cdb_fail(db, err, "read node");
    }
    sqlite3_finalize(s);
    return st;
}

rf_status rf_cdb_get(rf_cdb *db, int64_t id, rf_cdb_node *out, rf_error *err) {
    pthread_mutex_lock(&db->mu);
    rf_status st = cdb_get_locked(db, id, out, err);
    pthread_mutex_unlock(&db->mu);
    return st;
}

rf_status rf_cdb_edges(rf_cdb *db, int64_t id, rf_cdb_edge **edges, int64_t *n, rf_error *err) {
    *edges = NULL;
    *n = 0;
    pthread_mutex_lock(&db->mu);
    rf_status st = RF_OK;
    int64_t cap = 0;
    sqlite3_stmt *s = cdb_prep(db, "SELECT src, dst, relation, weight FROM edges WHERE src = ?1 OR dst = ?1 ORDER BY src, dst, relation", err);
    if (!s) { st = err ? err->code : RF_E_IO; goto out; }
    sqlite3_bind_int64(s, 1, id);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            rf_cdb_edge *p = rf_realloc(*edges, (size_t)cap * sizeof *p);
            if (!p) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); break; }
            *edges = p;
        }
        rf_cdb_edge *e = &(*edges)[(*n)++];
        e->src = sqlite3_column_int64(s, 0);
        e->dst = sqlite3_column_int64(s, 1);
        snprintf(e->relation, sizeof e->relation, "%s", (const char *)sqlite3_column_text(s, 2));
        e->weight = sqlite3_column_double(s, 3);
    }
    if (st == RF_OK && rc != SQLITE_DONE) st = cdb_fail(db, err, "read edges");
    sqlite3_finalize(s);
out:
    pthread_mutex_unlock(&db->mu);
    if (st != RF_OK) {
        rf_free(*edges);
        *edges = NULL;
        *n = 0;
    }
    return st;
}

static int64_t count(rf_cdb *db, const char *sql) {
    sqlite3_stmt *s = cdb_prep(db, sql, NULL);
    if (!s) return -1;
    int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    return v;
}

rf_status rf_cdb_get_stats(rf_cdb *db, rf_cdb_stats *st, rf_error *err) {
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&db->mu);
    rf_status r = RF_OK;
    /* one read transaction: the counts agree with each other */
    sqlite3_exec(db->h, "BEGIN", NULL, NULL, NULL);
    st->nodes = count(db, "SELECT count(*) FROM nodes");
    st->edges = count(db, "SELECT count(*) FROM edges");
    st->embeddings = count(db, "SELECT count(*) FROM embeddings");
    st->documents = count(db, "SELECT count(*) FROM nodes WHERE kind = 'document'");
    st->chunks = count(db, "SELECT count(*) FROM nodes WHERE kind = 'chunk'");
    st->messages = count(db, "SELECT count(*) FROM nodes WHERE kind = 'message'");
    st->notes = count(db, "SELECT count(*) FROM nodes WHERE kind = 'note'");
    read_version(db, &st->schema_version, NULL);
    sqlite3_stmt *s = cdb_prep(db, "SELECT model, count(*) FROM embeddings GROUP BY model ORDER BY model", err);
    if (s) {
        while (sqlite3_step(s) == SQLITE_ROW && st->n_models < (int)RF_ARRAY_LEN(st->models)) {
            snprintf(st->models[st->n_models], sizeof st->models[0], "%s", (const char *)sqlite3_column_text(s, 0));
            st->model_vectors[st->n_models++] = sqlite3_column_int64(s, 1);
        }
        sqlite3_finalize(s);
    } else {
        r = err ? err->code : RF_E_IO;
    }
    sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
    if (r == RF_OK && (st->nodes < 0 || st->edges < 0)) r = cdb_fail(db, err, "count");
    struct stat sb;
    if (stat(db->path, &sb) == 0) st->file_bytes = (int64_t)sb.st_size;
    pthread_mutex_unlock(&db->mu);
    return r;
}

rf_status rf_cdb_session_last(rf_cdb *db, const char *session, int64_t *id, rf_error *err) {
    *id = 0;
    pthread_mutex_lock(&db->mu);
    rf_status st = RF_OK;
    sqlite3_stmt *s = cdb_prep(db, "SELECT id FROM nodes WHERE kind = 'message' AND json_extract(meta, '$.session') = ?"
                                   " ORDER BY id DESC LIMIT 1", err);
    if (!s) { st = err ? err->code : RF_E_IO; goto out; }
    sqlite3_bind_text(s, 1, session, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(s, 0);
    else if (rc != SQLITE_DONE) st = cdb_fail(db, err, "session lookup");
    sqlite3_finalize(s);
out:
    pthread_mutex_unlock(&db->mu);
    return st;
}

/* ---- export / import ------------------------------------------------------------------------ */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64 of n bytes; caller frees. */
static char *b64_encode(const unsigned char *p, size_t n) {
    char *o = rf_malloc((n + 2) / 3 * 4 + 1), *q = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *q++ = b64chars[v >> 18 & 63];
        *q++ = b64chars[v >> 12 & 63];
        *q++ = i + 1 < n ? b64chars[v >> 6 & 63] : '=';
        *q++ = i + 2 < n ? b64chars[v & 63] : '=';
    }
    *q = '\0';
    return o;
}

/* Decodes base64 (no whitespace); caller frees; NULL on bad input. */
static unsigned char *b64_decode(const char *s, size_t n, size_t *out_n) {
    if (n % 4) return NULL;
    unsigned char *o = rf_malloc(n / 4 * 3 + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = s[i + j];
            const char *p = c ? strchr(b64chars, c) : NULL;
            uint32_t d;
            if (c == '=' && i + 4 == n && j >= 2) { d = 0; pad++; }
            else if (p && !pad) d = (uint32_t)(p - b64chars);
            else { rf_free(o); return NULL; }
            v = v << 6 | d;
        }
        o[k++] = (unsigned char)(v >> 16);
        if (pad < 2) o[k++] = (unsigned char)(v >> 8);
        if (pad < 1) o[k++] = (unsigned char)v;
    }
    *out_n = k;
    return o;
}

static bool put_line(FILE *out, json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(v);
    if (!s) return false;
    bool ok = fputs(s, out) >= 0 && fputc('\n', out) != EOF;
    free(s);
    return ok;
}

rf_status rf_cdb_export(rf_cdb *db, FILE *out, int64_t *n_lines, rf_error *err) {
    *n_lines = 0;
    pthread_mutex_lock(&db->mu);
    rf_status st = RF_OK;
    sqlite3_exec(db->h, "BEGIN", NULL, NULL, NULL); /* one consistent snapshot */
    sqlite3_stmt *s = cdb_prep(db, "SELECT id, kind, text, meta, created_at, parts FROM nodes ORDER BY id", err);
    sqlite3_stmt *ev = cdb_prep(db, "SELECT model, dim, vec FROM embeddings WHERE node = ? ORDER BY model", err);
    sqlite3_stmt *es = cdb_prep(db, "SELECT src, dst, relation, weight FROM edges ORDER BY src, dst, relation", err);
    if (!s || !ev || !es) { st = err ? err->code : RF_E_IO; goto out; }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *o = json_object();
        int64_t id = sqlite3_column_int64(s, 0);
        json_object_set_new(o, "type", json_string("node"));
        json_object_set_new(o, "id", json_integer(id));
        json_object_set_new(o, "kind", json_string((const char *)sqlite3_column_text(s, 1)));
        json_object_set_new(o, "text", json_stringn((const char *)sqlite3_column_text(s, 2), (size_t)sqlite3_column_bytes(s, 2)));
        json_t *meta = json_loads((const char *)sqlite3_column_text(s, 3), 0, NULL);
        json_object_set_new(o, "meta", meta ? meta : json_object());
        json_object_set_new(o, "created_at", json_integer(sqlite3_column_int64(s, 4)));
        json_object_set_new(o, "parts", json_integer(sqlite3_column_int64(s, 5)));
        json_t *embs = json_array();
        sqlite3_reset(ev);
        sqlite3_bind_int64(ev, 1, id);
        while (sqlite3_step(ev) == SQLITE_ROW) {
            json_t *e = json_object();
            json_object_set_new(e, "model", json_string((const char *)sqlite3_column_text(ev, 0)));
            json_object_set_new(e, "dim", json_integer(sqlite3_column_int64(ev, 1)));
            char *b = b64_encode(sqlite3_column_blob(ev, 2), (size_t)sqlite3_column_bytes(ev, 2));
            json_object_set_new(e, "vec", json_string(b ? b : ""));
            rf_free(b);
            json_array_append_new(embs, e);
        }
        json_object_set_new(o, "embeddings", embs);
        if (!put_line(out, o)) { st = rf_error_set(err, RF_E_IO, "export: write failed"); goto out; }
        (*n_lines)++;
    }
    if (rc != SQLITE_DONE) { st = cdb_fail(db, err, "export nodes"); goto out; }
    while ((rc = sqlite3_step(es)) == SQLITE_ROW) {
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string("edge"));
        json_object_set_new(o, "src", json_integer(sqlite3_column_int64(es, 0)));
        json_object_set_new(o, "dst", json_integer(sqlite3_column_int64(es, 1)));
        json_object_set_new(o, "relation", json_string((const char *)sqlite3_column_text(es, 2)));
        json_object_set_new(o, "weight", json_real(sqlite3_column_double(es, 3)));
        if (!put_line(out, o)) { st = rf_error_set(err, RF_E_IO, "export: write failed"); goto out; }
        (*n_lines)++;
    }
    if (rc != SQLITE_DONE) st = cdb_fail(db, err, "export edges");
out:
    sqlite3_finalize(s);
    sqlite3_finalize(ev);
    sqlite3_finalize(es);
    sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_unlock(&db->mu);
    return st;
}

typedef struct idmap {
    int64_t *old, *new_;
    int64_t n, cap;
} idmap;

static bool idmap_put(idmap *m, int64_t o, int64_t n) {
    if (m->n == m->cap) {
        int64_t c = m->cap ? m->cap * 2 : 256;
        int64_t *a = rf_realloc(m->old, (size_t)c * sizeof *a);
        if (!a) return false;
        m->old = a;
        int64_t *b = rf_realloc(m->new_, (size_t)c * sizeof *b);
        if (!b) return false;
        m->new_ = b;
        m->cap = c;
    }
    m->old[m->n] = o;
    m->new_[m->n++] = n;
    return true;
}

/* Exports list nodes in id order, so the map is sorted by old id. */
static int64_t idmap_get(const idmap *m, int64_t o) {
    int64_t lo = 0, hi = m->n - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        if (m->old[mid] == o) return m->new_[mid];
        if (m->old[mid] < o) lo = mid + 1;
        else hi = mid - 1;
    }
    return 0;
}

static rf_status import_node(rf_cdb *db, json_t *o, int64_t line, idmap *map, rf_error *err) {
    json_t *jid = json_object_get(o, "id"), *jk = json_object_get(o, "kind"), *jt = json_object_get(o, "text");
    json_t *jm = json_object_get(o, "meta"), *jc = json_object_get(o, "created_at"), *jp = json_object_get(o, "parts");
    json_t *je = json_object_get(o, "embeddings");
    if (!json_is_integer(jid) || !json_is_string(jk) || !json_is_string(jt))
        return rf_error_set(err, RF_E_FORMAT, "import line %lld: a node needs integer id, string kind and text", (long long)line);
    const char *kind = json_string_value(jk);
    if (!rf_cdb_kind_valid(kind) && strcmp(kind, "chunk") != 0)
        return rf_error_set(err, RF_E_FORMAT, "import line %lld: unknown kind '%s'", (long long)line, kind);
    if (map->n && json_integer_value(jid) <= map->old[map->n - 1])
        return rf_error_set(err, RF_E_FORMAT, "import line %lld: node ids must increase", (long long)line);
    if (jm && !json_is_object(jm)) return rf_error_set(err, RF_E_FORMAT, "import line %lld: meta must be an object", (long long)line);
    char *meta = jm ? json_dumps(jm, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    int64_t created = json_is_integer(jc) ? json_integer_value(jc) : (int64_t)time(NULL);
    int64_t parts = json_is_integer(jp) && json_integer_value(jp) >= 1 ? json_integer_value(jp) : 1;
    int64_t nid;
    rf_status st = insert_node(db, kind, json_string_value(jt), json_string_length(jt), meta ? meta : "{}", created, parts, &nid, err);
    free(meta);
    if (st != RF_OK) return st;
    if (!idmap_put(map, json_integer_value(jid), nid)) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    /* searchable nodes: everything except a multi-chunk document container */
    if (!(strcmp(kind, "document") == 0 && parts > 1) &&
        (st = insert_fts(db, nid, json_string_value(jt), json_string_length(jt), err)) != RF_OK)
        return st;
    if (je && !json_is_array(je)) return rf_error_set(err, RF_E_FORMAT, "import line %lld: embeddings must be an array", (long long)line);
    for (size_t i = 0; je && i < json_array_size(je); i++) {
        json_t *e = json_array_get(je, i);
        json_t *m = json_object_get(e, "model"), *d = json_object_get(e, "dim"), *v = json_object_get(e, "vec");
        if (!json_is_string(m) || !json_is_integer(d) || !json_is_string(v) || json_integer_value(d) <= 0)
            return rf_error_set(err, RF_E_FORMAT, "import line %lld: an embedding needs model, dim and vec", (long long)line);
        size_t nb = 0;
        unsigned char *b = b64_decode(json_string_value(v), json_string_length(v), &nb);
        if (!b || nb != (size_t)json_integer_value(d) * 4) {
            rf_free(b);
            return rf_error_set(err, RF_E_FORMAT, "import line %lld: vec is not base64 of dim float32 values", (long long)line);
        }
        st = insert_vec(db, nid, json_string_value(m), json_integer_value(d), (const float *)(void *)b, err);
        rf_free(b);
        if (st != RF_OK) return st;
    }
    return RF_OK;
}

rf_status rf_cdb_import(rf_cdb *db, FILE *in, int64_t *n_nodes, int64_t *n_edges, rf_error *err) {
    *n_nodes = *n_edges = 0;
    idmap map = {0};
    char *line = NULL;
    size_t cap = 0;
    int64_t ln = 0;
    pthread_mutex_lock(&db->mu);
    rf_status st = cdb_begin(db, err);
    if (st != RF_OK) goto out;
    ssize_t got;
    while ((got = getline(&line, &cap, in)) > 0) {
        ln++;
        if (got == 1 && line[0] == '\n') continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)got, 0, &je);
        if (!o || !json_is_object(o)) {
            json_decref(o);
            st = rf_error_set(err, RF_E_FORMAT, "import line %lld: not a JSON object (%s)", (long long)ln, o ? "" : je.text);
            goto fail;
        }
        const char *type = json_string_value(json_object_get(o, "type"));
        if (type && strcmp(type, "node") == 0) {
            st = import_node(db, o, ln, &map, err);
            if (st == RF_OK) (*n_nodes)++;
        } else if (type && strcmp(type, "edge") == 0) {
            json_t *js = json_object_get(o, "src"), *jd = json_object_get(o, "dst"), *jr = json_object_get(o, "relation");
            json_t *jw = json_object_get(o, "weight");
            int64_t src = json_is_integer(js) ? idmap_get(&map, json_integer_value(js)) : 0;
            int64_t dst = json_is_integer(jd) ? idmap_get(&map, json_integer_value(jd)) : 0;
            if (!src || !dst || !json_is_string(jr) || json_string_length(jr) == 0 || json_string_length(jr) >= 64)
                st = rf_error_set(err, RF_E_FORMAT, "import line %lld: an edge needs src and dst of imported nodes and a relation",
                                  (long long)ln);
            else
                st = insert_edge(db, src, dst, json_string_value(jr), json_is_number(jw) ? json_number_value(jw) : 1.0, err);
            if (st == RF_OK) (*n_edges)++;
        } else {
            st = rf_error_set(err, RF_E_FORMAT, "import line %lld: 'type' must be node or edge", (long long)ln);
        }
        json_decref(o);
        if (st != RF_OK) goto fail;
    }
    if (ferror(in)) { st = rf_error_set(err, RF_E_IO, "import: read error: %s", strerror(errno)); goto fail; }
    st = cdb_commit(db, err);
    goto out;
fail:
    cdb_rollback(db);
    *n_nodes = *n_edges = 0;
out:
    pthread_mutex_unlock(&db->mu);
    free(line);
    rf_free(map.old);
    rf_free(map.new_);
    return st;
}
