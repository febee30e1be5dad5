/*
 * stub.c - the context engine's store and search in a build without SQLite
 * (-DRF_CONTEXT=OFF, or no libsqlite3): every entry point fails with
 * RF_E_UNSUPPORTED and says how to get the feature.
 */
#include "context.h"

bool rf_cdb_available(void) { return false; }

static rf_status unsupported(rf_error *err) { return rf_error_set(err, RF_E_UNSUPPORTED, "%s", RF_CDB_UNSUPPORTED_MSG); }

rf_status rf_cdb_open(const char *path, bool create, rf_cdb **out, rf_error *err) {
    *out = NULL;
    return unsupported(err);
}
rf_status rf_cdb_open_version(const char *path, bool create, int version, rf_cdb **out, rf_error *err) {
    *out = NULL;
    return unsupported(err);
}
void rf_cdb_close(rf_cdb *db) { (void)db; }
int rf_cdb_schema_version(rf_cdb *db) { return 0; }
bool rf_cdb_kind_valid(const char *kind) { return false; }
rf_status rf_cdb_add(rf_cdb *db, const rf_cdb_item *it, int64_t *id, rf_error *err) { return unsupported(err); }
rf_status rf_cdb_link_add(rf_cdb *db, int64_t src, int64_t dst, const char *relation, double weight, rf_error *err) {
    return unsupported(err);
}
rf_status rf_cdb_remove(rf_cdb *db, int64_t id, rf_error *err) { return unsupported(err); }
void rf_cdb_node_clear(rf_cdb_node *n) { (void)n; }
rf_status rf_cdb_get(rf_cdb *db, int64_t id, rf_cdb_node *out, rf_error *err) { return unsupported(err); }
rf_status rf_cdb_edges(rf_cdb *db, int64_t id, rf_cdb_edge **edges, int64_t *n, rf_error *err) { return unsupported(err); }
rf_status rf_cdb_get_stats(rf_cdb *db, rf_cdb_stats *st, rf_error *err) { return unsupported(err); }
rf_status rf_cdb_session_last(rf_cdb *db, const char *session, int64_t *id, rf_error *err) { return unsupported(err); }
rf_status rf_cdb_export(rf_cdb *db, FILE *out, int64_t *n_lines, rf_error *err) { return unsupported(err); }
rf_status rf_cdb_import(rf_cdb *db, FILE *in, int64_t *n_nodes, int64_t *n_edges, rf_error *err) { return unsupported(err); }
const char *rf_csearch_mode_name(rf_csearch_mode m) { return "?"; }
bool rf_csearch_mode_parse(const char *s, rf_csearch_mode *out) { return false; }
rf_status rf_cdb_search(rf_cdb *db, const rf_csearch_params *p, rf_chit **hits, int *n_hits, rf_error *err) {
    return unsupported(err);
}
