/*
 * test_context.c - the context store and search without a model: schema
 * creation and migration, refusal of foreign files, adds/links/removes in
 * transactions, vector search against a double-precision brute-force
 * reference on fresh random vectors, the SIMD dot kernel against its
 * plain-C reference, keyword hits, graph expansion, export/import round
 * trip. In a build without SQLite it checks the stub's error instead.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "context/context.h"
#include "harness.h"

static char g_dir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static void rm_db(const char *p) {
    char b[600];
    unlink(p);
    snprintf(b, sizeof b, "%s-wal", p);
    unlink(b);
    snprintf(b, sizeof b, "%s-shm", p);
    unlink(b);
}

static void rand_unit(float *v, int64_t dim) {
    double ss = 0;
    for (int64_t i = 0; i < dim; i++) {
        v[i] = rf_test_randn();
        ss += (double)v[i] * v[i];
    }
    for (int64_t i = 0; i < dim; i++) v[i] = (float)(v[i] / sqrt(ss));
}

static void test_stub_or_open(void) {
    rf_cdb *db = NULL;
    rf_error err = {0};
    const char *p = tmp_path("a.db");
    rm_db(p);
    rf_status st = rf_cdb_open(p, false, &db, &err);
    if (!rf_cdb_available()) {
        CHECK(st == RF_E_UNSUPPORTED);
        CHECK(strstr(err.msg, "-DRF_CONTEXT=ON needs libsqlite3") != NULL);
        return;
    }
    CHECK(st == RF_E_NOTFOUND && db == NULL);
    CHECK(strstr(err.msg, "context init") != NULL);
    CHECK(rf_cdb_open(p, true, &db, &err) == RF_OK);
    CHECK(rf_cdb_schema_version(db) == RF_CDB_SCHEMA_VERSION);
    rf_cdb_close(db);
    CHECK(rf_cdb_open(p, false, &db, &err) == RF_OK);
    CHECK(rf_cdb_schema_version(db) == RF_CDB_SCHEMA_VERSION);
    rf_cdb_close(db);
    rm_db(p);
}

static void test_migration_and_foreign_files(void) {
    const char *p = tmp_path("m.db");
    rm_db(p);
    rf_cdb *db = NULL;
    rf_error err = {0};
    CHECK(rf_cdb_open_version(p, true, 1, &db, &err) == RF_OK);
    CHECK(rf_cdb_schema_version(db) == 1);
    rf_cdb_close(db);
    CHECK(rf_cdb_open(p, false, &db, &err) == RF_OK);
    CHECK(rf_cdb_schema_version(db) == 2);
    const char *parts[1] = {"after migration"};
    rf_cdb_item it = {.kind = "note", .text = parts[0], .len = strlen(parts[0]), .parts = parts, .n_parts = 1};
    int64_t id = 0;
    CHECK(rf_cdb_add(db, &it, &id, &err) == RF_OK && id > 0);
    rf_cdb_close(db);
    rm_db(p);

    /* a file that is not a database */
    const char *q = tmp_path("junk.db");
    FILE *f = fopen(q, "wb");
    for (int i = 0; i < 4096; i++) fputc((int)(rf_test_rand() & 255), f);
    fclose(f);
    err = (rf_error){0};
    CHECK(rf_cdb_open(q, false, &db, &err) == RF_E_FORMAT && db == NULL);
    CHECK(err.msg[0] != '\0');
    rm_db(q);
}

static rf_cdb *fresh(const char *name) {
    const char *p = tmp_path(name);
    rm_db(p);
    rf_cdb *db = NULL;
    CHECK(rf_cdb_open(p, true, &db, NULL) == RF_OK);
    return db;
}

static void test_add_link_remove(void) {
    rf_cdb *db = fresh("b.db");
    rf_error err = {0};
    const char *one[1] = {"alpha"};
    rf_cdb_item it = {.kind = "document", .text = "alpha", .len = 5, .parts = one, .n_parts = 1, .meta_json = "{\"b\":1, \"a\":[2]}"};
    int64_t a = 0, b = 0, c = 0;
    CHECK(rf_cdb_add(db, &it, &a, &err) == RF_OK);
    /* bad metadata, bad kind, unknown link target: errors, nothing written */
    it.meta_json = "{bad";
    CHECK(rf_cdb_add(db, &it, &b, &err) == RF_E_FORMAT && b == 0);
    it.meta_json = "[1,2]";
    CHECK(rf_cdb_add(db, &it, &b, &err) == RF_E_FORMAT);
    it.meta_json = NULL;
    it.kind = "chunk";
    CHECK(rf_cdb_add(db, &it, &b, &err) == RF_E_INVAL);
    it.kind = "note";
    rf_cdb_link bad = {.dst = a + 1000, .relation = "cites"};
    it.links = &bad;
    it.n_links = 1;
    CHECK(rf_cdb_add(db, &it, &b, &err) == RF_E_NOTFOUND && b == 0);
    rf_cdb_stats st;
    CHECK(rf_cdb_get_stats(db, &st, &err) == RF_OK && st.nodes == 1 && st.edges == 0);
    /* a three-part document: container + chunks linked in order */
    const char *three[3] = {"first part", "second part", "third part"};
    rf_cdb_item d = {.kind = "document", .text = "first part second part third part", .len = 33, .parts = three, .n_parts = 3};
    rf_cdb_link good = {.dst = a, .relation = "cites"};
    d.links = &good;
    d.n_links = 1;
    CHECK(rf_cdb_add(db, &d, &b, &err) == RF_OK);
    CHECK(rf_cdb_get_stats(db, &st, &err) == RF_OK);
    CHECK(st.nodes == 5 && st.chunks == 3 && st.documents == 2);
    CHECK(st.edges == 3 + 2 + 1); /* chunk x3, next x2, cites */
    rf_cdb_node nd;
    CHECK(rf_cdb_get(db, a, &nd, &err) == RF_OK);
    CHECK(strcmp(nd.meta_json, "{\"a\":[2],\"b\":1}") == 0);
    rf_cdb_node_clear(&nd);
    CHECK(rf_cdb_get(db, b + 2, &nd, &err) == RF_OK);
    CHECK(strcmp(nd.kind, "chunk") == 0 && strcmp(nd.text, "second part") == 0 && nd.parent == b);
    rf_cdb_node_clear(&nd);
    CHECK(rf_cdb_get(db, b + 100, &nd, &err) == RF_E_NOTFOUND);
    /* links */
    CHECK(rf_cdb_link_add(db, a, b + 100, "x", 1.0, &err) == RF_E_NOTFOUND);
    CHECK(rf_cdb_link_add(db, a, b, "", 1.0, &err) == RF_E_INVAL);
    CHECK(rf_cdb_link_add(db, a, b, "seealso", 0.5, &err) == RF_OK);
    CHECK(rf_cdb_link_add(db, a, b, "seealso", 0.25, &err) == RF_OK); /* updates the weight */
    rf_cdb_edge *ed;
    int64_t ne;
    CHECK(rf_cdb_edges(db, a, &ed, &ne, &err) == RF_OK && ne == 2);
    bool seen = false;
    for (int64_t i = 0; i < ne; i++) seen |= strcmp(ed[i].relation, "seealso") == 0 && ed[i].weight == 0.25;
    CHECK(seen);
    rf_free(ed);
    /* removing the document takes its chunks and every edge touching them */
    CHECK(rf_cdb_add(db, &(rf_cdb_item){.kind = "note", .text = "n", .len = 1, .parts = (const char *const[]){"n"}, .n_parts = 1}, &c, &err) == RF_OK);
    CHECK(rf_cdb_remove(db, b, &err) == RF_OK);
    CHECK(rf_cdb_remove(db, b, &err) == RF_E_NOTFOUND);
    CHECK(rf_cdb_get_stats(db, &st, &err) == RF_OK && st.nodes == 2 && st.edges == 0 && st.chunks == 0);
    rf_cdb_close(db);
}

static void test_dot_kernel(void) {
    for (int t = 0; t < 20; t++) {
        int64_t dim = 1 + (int64_t)(rf_test_rand() % 700), n = 1 + (int64_t)(rf_test_rand() % 50);
        float *m = malloc((size_t)(n * dim) * sizeof(float)), *q = malloc((size_t)dim * sizeof(float));
        float *o1 = malloc((size_t)n * sizeof(float)), *o2 = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n * dim; i++) m[i] = rf_test_randn();
        for (int64_t i = 0; i < dim; i++) q[i] = rf_test_randn();
        rf_cdot_rows(m, n, dim, q, o1);
        rf_cdot_rows_ref(m, n, dim, q, o2);
        for (int64_t r = 0; r < n; r++) {
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < dim; i++) {
                ref += (double)m[r * dim + i] * q[i];
                mag += fabs((double)m[r * dim + i] * q[i]);
            }
            CHECK_MSG(fabs(o1[r] - ref) <= 1e-5 * mag + 1e-6, "simd %g ref %g", o1[r], ref);
            CHECK_MSG(fabs(o2[r] - ref) <= 1e-5 * mag + 1e-6, "plain %g ref %g", o2[r], ref);
        }
        free(m), free(q), free(o1), free(o2);
    }
}

static int cmp_desc(const void *a, const void *b) {
    const double *x = a, *y = b;
    return x[0] < y[0] ? 1 : x[0] > y[0] ? -1 : 0;
}

static void test_vector_search(void) {
    rf_cdb *db = fresh("v.db");
    enum { N = 400, DIM = 72, K = 10 };
    float *v = malloc(sizeof(float) * N * DIM);
    int64_t ids[N];
    rf_error err = {0};
    for (int i = 0; i < N; i++) {
        rand_unit(v + i * DIM, DIM);
        char t[32];
        snprintf(t, sizeof t, "item %d", i);
        const char *one[1] = {t};
        rf_cdb_item it = {.kind = "note", .text = t, .len = strlen(t), .parts = one, .n_parts = 1, .vecs = v + i * DIM,
                          .model_id = "test#72", .dim = DIM};
        CHECK(rf_cdb_add(db, &it, &ids[i], &err) == RF_OK);
    }
    /* vectors of another model and dimension must never mix in */
    float other[8];
    rand_unit(other, 8);
    const char *one[1] = {"other model"};
    int64_t oid;
    CHECK(rf_cdb_add(db, &(rf_cdb_item){.kind = "note", .text = one[0], .len = 11, .parts = one, .n_parts = 1, .vecs = other,
                                        .model_id = "other#8", .dim = 8}, &oid, &err) == RF_OK);
    for (int t = 0; t < 5; t++) {
        float q[DIM];
        rand_unit(q, DIM);
        double ref[N][2];
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int j = 0; j < DIM; j++) s += (double)v[i * DIM + j] * q[j];
            ref[i][0] = s;
            ref[i][1] = (double)ids[i];
        }
        qsort(ref, N, sizeof ref[0], cmp_desc);
        rf_csearch_params p = {.query = "zzz", .qvec = q, .model_id = "test#72", .dim = DIM, .k = K, .mode = RF_CS_VECTOR};
        rf_chit *h;
        int n;
        CHECK(rf_cdb_search(db, &p, &h, &n, &err) == RF_OK);
        CHECK(n == K);
        for (int i = 0; i < n && i < K; i++) {
            /* ties within float rounding may swap neighbours */
            CHECK_MSG(h[i].id == (int64_t)ref[i][1] || fabs(ref[i][0] - h[i].vscore) < 1e-5, "rank %d: got %lld want %lld", i,
                      (long long)h[i].id, (long long)ref[i][1]);
            CHECK(fabs(h[i].vscore - ref[i][0]) < 1e-4 || h[i].id != (int64_t)ref[i][1]);
            CHECK(h[i].id != oid);
        }
        rf_free(h);
    }
    /* the cache notices a new vector added through this connection */
    float q[DIM];
    rand_unit(q, DIM);
    const char *nt[1] = {"exact match"};
    int64_t nid;
    CHECK(rf_cdb_add(db, &(rf_cdb_item){.kind = "note", .text = nt[0], .len = 11, .parts = nt, .n_parts = 1, .vecs = q,
                                        .model_id = "test#72", .dim = DIM}, &nid, &err) == RF_OK);
    rf_csearch_params p = {.query = "x", .qvec = q, .model_id = "test#72", .dim = DIM, .k = 1, .mode = RF_CS_VECTOR};
    rf_chit *h;
    int n;
    CHECK(rf_cdb_search(db, &p, &h, &n, &err) == RF_OK && n == 1 && h[0].id == nid && fabs(h[0].vscore - 1) < 1e-5);
    rf_free(h);
    /* bad parameters */
    p.k = 5000;
    CHECK(rf_cdb_search(db, &p, &h, &n, &err) == RF_E_RANGE);
    p.k = 1;
    p.qvec = NULL;
    CHECK(rf_cdb_search(db, &p, &h, &n, &err) == RF_E_INVAL);
    free(v);
    rf_cdb_close(db);
}

static void test_keyword_and_graph(void) {
    rf_cdb *db = fresh("k.db");
    rf_error err = {0};
    static const char *texts[] = {
        "the zebra crossing near the station", "a quiet library with old books", "books about zebra migration",
        "the station clock struck noon", "an orchard of apple trees",
    };
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        const char *one[1] = {texts[i]};
        CHECK(rf_cdb_add(db, &(rf_cdb_item){.kind = "note", .text = texts[i], .len = strlen(texts[i]), .parts = one, .n_parts = 1},
                         &ids[i], &err) == RF_OK);
    }
    rf_csearch_params p = {.query = "orchard?!", .k = 3, .mode = RF_CS_KEYWORD};
    rf_chit *h;
    int n;
    CHECK(rf_cdb_search(db, &p, &h, &n, &err) == RF_OK && n == 1 && h[0].id == ids[4] && h[0].hop == 0);
    rf_free(h);
    /* FTS syntax in the query is just words */
    p.query = "\"zebra\" AND (NEAR OR";
    CHECK(rf_cdb_search(db, &p, &h, &n, &err) == RF_OK && n >= 2);
    rf_free(h);
    /* graph: orchard -> library (1 hop) -> station clock (2 hops) */
    CHECK(rf_cdb_link_add(db, ids[4], ids[1], "related", 1.0, &err) == RF_OK);
    CHECK(rf_cdb_link_add(db, ids[3], ids[1], "related", 0.5, &err) == RF_OK);
    p.query = "orchard";
    p.hops = 1;
    CHECK(rf_cdb_search(db, &p, &h, &n, &err) == RF_OK && n == 2);
    if (n == 2) CHECK(h[1].id == ids[1] && h[1].hop == 1 && h[1].via == ids[4] && fabs(h[1].score - h[0].score * 0.5) < 1e-9);
    rf_free(h);
    p.hops = 2;
    CHECK(rf_cdb_search(db, &p, &h, &n, &err) == RF_OK && n == 3);
    if (n == 3) CHECK(h[2].id == ids[3] && h[2].hop == 2 && h[2].via == ids[1] && fabs(h[2].score - h[0].score * 0.5 * 0.5 * 0.5) < 1e-9);
    rf_free(h);
    /* a hub linked to 100 nodes: one round adds at most 4 k + 8 of them */
    int64_t hub;
    const char *ht[1] = {"hubword"};
    CHECK(rf_cdb_add(db, &(rf_cdb_item){.kind = "note", .text = ht[0], .len = 7, .parts = ht, .n_parts = 1}, &hub, &err) == RF_OK);
    for (int i = 0; i < 100; i++) {
        int64_t leaf;
        const char *lt[1] = {"leaf"};
        CHECK(rf_cdb_add(db, &(rf_cdb_item){.kind = "note", .text = lt[0], .len = 4, .parts = lt, .n_parts = 1,
                                            .links = &(rf_cdb_link){hub, "in"}, .n_links = 1}, &leaf, &err) == RF_OK);
    }
    p.query = "hubword";
    p.k = 1;
    p.hops = 2;
    CHECK(rf_cdb_search(db, &p, &h, &n, &err) == RF_OK && n == 1 + 12 && h[0].id == hub);
    rf_free(h);
    p.query = "?!";
    p.hops = 0;
    CHECK(rf_cdb_search(db, &p, &h, &n, &err) == RF_OK && n == 0);
    rf_free(h);
    rf_cdb_close(db);
}

static void test_export_import(void) {
    rf_cdb *db = fresh("e.db");
    rf_error err = {0};
    enum { DIM = 16 };
    float v[3][DIM];
    for (int i = 0; i < 3; i++) rand_unit(v[i], DIM);
    const char *parts[2] = {"ünïcode part \"one\"", "part two\nwith newline"};
    int64_t a, b;
    CHECK(rf_cdb_add(db, &(rf_cdb_item){.kind = "document", .text = "whole", .len = 5, .parts = parts, .n_parts = 2,
                                        .vecs = &v[0][0], .model_id = "m#16", .dim = DIM, .meta_json = "{\"t\":\"x\"}"}, &a, &err) == RF_OK);
    const char *one[1] = {"single"};
    CHECK(rf_cdb_add(db, &(rf_cdb_item){.kind = "message", .text = "single", .len = 6, .parts = one, .n_parts = 1,
                                        .vecs = v[2], .model_id = "m#16", .dim = DIM}, &b, &err) == RF_OK);
    CHECK(rf_cdb_link_add(db, b, a, "replies", 0.75, &err) == RF_OK);
    FILE *f = tmpfile();
    int64_t lines;
    CHECK(rf_cdb_export(db, f, &lines, &err) == RF_OK && lines == 4 + 4);
    rewind(f);
    rf_cdb *db2 = fresh("e2.db");
    /* a pre-existing node shifts the ids: import maps them */
    const char *pre[1] = {"pre"};
    int64_t pid;
    CHECK(rf_cdb_add(db2, &(rf_cdb_item){.kind = "note", .text = "pre", .len = 3, .parts = pre, .n_parts = 1}, &pid, &err) == RF_OK);
    int64_t nn, ne;
    CHECK(rf_cdb_import(db2, f, &nn, &ne, &err) == RF_OK && nn == 4 && ne == 4);
    fclose(f);
    rf_cdb_stats s1, s2;
    CHECK(rf_cdb_get_stats(db, &s1, &err) == RF_OK && rf_cdb_get_stats(db2, &s2, &err) == RF_OK);
    CHECK(s2.nodes == s1.nodes + 1 && s2.edges == s1.edges && s2.embeddings == s1.embeddings && s2.chunks == 2);
    /* the vectors survived: an exact query finds the message with cosine 1 */
    rf_csearch_params p = {.query = "single", .qvec = v[2], .model_id = "m#16", .dim = DIM, .k = 1, .mode = RF_CS_VECTOR};
    rf_chit *h;
    int n;
    CHECK(rf_cdb_search(db2, &p, &h, &n, &err) == RF_OK && n == 1 && fabs(h[0].vscore - 1) < 1e-6);
    if (n == 1) {
        rf_cdb_node nd;
        CHECK(rf_cdb_get(db2, h[0].id, &nd, &err) == RF_OK && strcmp(nd.text, "single") == 0 && strcmp(nd.kind, "message") == 0);
        rf_cdb_node_clear(&nd);
    }
    rf_free(h);
    /* a broken import changes nothing */
    f = tmpfile();
    fputs("{\"type\":\"node\",\"id\":1,\"kind\":\"note\",\"text\":\"ok\"}\n{\"type\":\"edge\",\"src\":1,\"dst\":77,\"relation\":\"r\"}\n", f);
    rewind(f);
    CHECK(rf_cdb_import(db2, f, &nn, &ne, &err) == RF_E_FORMAT && nn == 0);
    fclose(f);
    rf_cdb_stats s3;
    CHECK(rf_cdb_get_stats(db2, &s3, &err) == RF_OK && s3.nodes == s2.nodes);
    rf_cdb_close(db);
    rf_cdb_close(db2);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/rf-test-context-%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", g_dir);
    if (system(cmd) != 0) return 1;
    rf_test_seed();
    RF_RUN(test_stub_or_open);
    if (rf_cdb_available()) {
        RF_RUN(test_migration_and_foreign_files);
        RF_RUN(test_add_link_remove);
        RF_RUN(test_vector_search);
        RF_RUN(test_keyword_and_graph);
        RF_RUN(test_export_import);
    }
    RF_RUN(test_dot_kernel);
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) return 1;
    return rf_test_summary();
}
