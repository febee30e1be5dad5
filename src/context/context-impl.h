/*
 * context-impl.h - what store.c and search.c share: the database handle
 * (SQLite connection, a mutex serialising its users, the per-connection
 * vector cache) and the statement/transaction helpers.
 * Nothing outside src/context includes this.
 */
#ifndef RF_CONTEXT_IMPL_H
#define RF_CONTEXT_IMPL_H

#include <pthread.h>
#include <sqlite3.h>

#include "context.h"

/* The vectors of one model, loaded for brute-force cosine: rows of mat are
 * L2-normalised copies of the stored vectors. Valid while the database's
 * data_version and our own write counter are what they were at load. */
typedef struct cdb_cache {
    char model[256];
    int64_t dim, n;
    int64_t *ids;
    float *mat; /* [n][dim] */
    int64_t data_version, local_writes;
    bool valid;
} cdb_cache;

struct rf_cdb {
    sqlite3 *h;
    char *path;
    pthread_mutex_t mu;   /* every public call holds it: one connection, many threads */
    int64_t local_writes; /* commits through this connection */
    cdb_cache cache;
};

rf_status cdb_fail(rf_cdb *db, rf_error *err, const char *what);
sqlite3_stmt *cdb_prep(rf_cdb *db, const char *sql, rf_error *err);
rf_status cdb_begin(rf_cdb *db, rf_error *err);
rf_status cdb_commit(rf_cdb *db, rf_error *err);
void cdb_rollback(rf_cdb *db);
rf_status cdb_get_locked(rf_cdb *db, int64_t id, rf_cdb_node *out, rf_error *err);
void cdb_cache_clear(rf_cdb *db);

#endif
