/*
 * cmd_context.c - `rocmforge context`: the context engine's database from
 * the command line (init, add, search, show, link, rm, stats, export,
 * import). add and vector/hybrid search need -m MODEL for embeddings; the
 * other commands only touch the database. Bad input (a missing database,
 * an unknown id, metadata that is not a JSON object) exits 2 with a
 * message; usage errors exit 1.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "context/context.h"
#include "core/jsonw.h"

enum { O_MODEL, O_TEXT, O_FILE, O_JSONL, O_KIND, O_META, O_LINK, O_K, O_HOPS, O_JSON, O_MODE, O_THREADS, O_CHUNK,
       O_WEIGHT, O_COUNT };
static const rf_opt opts[O_COUNT] = {
    [O_MODEL] = {"--model", "-m", true}, [O_TEXT] = {"--text", NULL, true},   [O_FILE] = {"--file", NULL, true},
    [O_JSONL] = {"--jsonl", NULL, true}, [O_KIND] = {"--kind", NULL, true},   [O_META] = {"--meta", NULL, true},
    [O_LINK] = {"--link", NULL, true},   [O_K] = {"-k", NULL, true},          [O_HOPS] = {"--hops", NULL, true},
    [O_JSON] = {"--json", NULL, false},  [O_MODE] = {"--mode", NULL, true},   [O_THREADS] = {"--threads", "-t", true},
    [O_CHUNK] = {"--chunk-tokens", NULL, true}, [O_WEIGHT] = {"--weight", NULL, true},
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: rocmforge context <command> DB [options]\n\n"
            "Long-lived context in one SQLite file: documents, notes and messages, found by meaning\n"
            "(embeddings of -m MODEL), by keywords (FTS5 BM25) and by links (graph expansion).\n\n"
            "commands:\n"
            "  init DB                                  create (or migrate) the database\n"
            "  add DB (--text T | --file F [F...] | --jsonl F) -m MODEL [--kind K] [--meta JSON]\n"
            "         [--link ID:REL[,ID:REL...]] [--chunk-tokens N]\n"
            "                                           add items; prints each new id. --jsonl: one\n"
            "                                           {\"text\", \"kind\", \"meta\"} object a line\n"
            "  search DB QUERY -m MODEL [-k N] [--hops H] [--mode hybrid|vector|keyword] [--json]\n"
            "                                           best k passages (keyword mode needs no model)\n"
            "  show DB ID [--json]                      a node, its metadata and edges\n"
            "  link DB A B REL [--weight W]             an edge A -> B\n"
            "  rm DB ID                                 remove a node (a document with its chunks)\n"
            "  stats DB [--json]                        counts, models, schema version\n"
            "  export DB                                JSON lines on stdout (nodes with vectors, edges)\n"
            "  import DB FILE                           add an export's nodes and edges (new ids)\n\n"
            "Kinds: document (default; long texts are split in chunks of --chunk-tokens tokens,\n"
            "default 256, overlapping by 32), note, message. -t N: threads for the model.\n");
}

static int fail(const rf_error *err) {
    rf_cli_error("%s", err->msg);
    return err->code == RF_E_INVAL && strstr(err->msg, "needs") ? RF_EXIT_USAGE : RF_EXIT_BADINPUT;
}

static bool parse_id(const char *what, const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v <= 0) {
        rf_cli_error("%s: '%s' is not a node id (a positive integer)", what, s);
        return false;
    }
    *out = v;
    return true;
}

/* Reads a whole file (or stdin for "-"); caller frees. */
static char *read_file(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        rf_cli_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = rf_malloc(cap);
    while (b) {
        if (n + 1 >= cap) {
            char *nb = rf_realloc(b, cap * 2);
            if (!nb) { rf_free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    if (f != stdin) fclose(f);
    if (!b || bad) {
        rf_cli_error("%s: %s", path, b ? "read error" : "out of memory");
        rf_free(b);
        return NULL;
    }
    b[n] = '\0';
    *len = n;
    return b;
}

static rf_status open_db(const char *path, bool create, rf_cdb **db, rf_error *err) {
    return rf_cdb_open(path, create, db, err);
}

static bool open_model(const rf_args *a, rf_cembed **e, rf_error *err) {
    long threads = 0, chunk = 0;
    if (a->val[O_THREADS] && !rf_arg_long("--threads", a->val[O_THREADS], 1, 1024, &threads)) return false;
    if (a->val[O_CHUNK] && !rf_arg_long("--chunk-tokens", a->val[O_CHUNK], 16, 8192, &chunk)) return false;
    if (rf_cembed_open_model(a->val[O_MODEL], (int)threads, chunk, e, err) != RF_OK) {
        rf_cli_error("%s", err->msg);
        return false;
    }
    return true;
}

/* --link "ID:REL[,ID:REL...]" into links (relation strings point into buf). */
static int parse_links(const char *s, char *buf, size_t bn, rf_cdb_link *links, int max) {
    snprintf(buf, bn, "%s", s);
    int n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *colon = strchr(tok, ':');
        if (!colon || colon[1] == '\0' || n == max) {
            rf_cli_error("--link: '%s' is not ID:RELATION", tok);
            return -1;
        }
        *colon = '\0';
        if (!parse_id("--link", tok, &links[n].dst)) return -1;
        links[n++].relation = colon + 1;
    }
    return n;
}

/* ---- commands ---------------------------------------------------------------------------- */

static int c_init(rf_args *a) {
    if (a->n_pos != 2) { rf_cli_error("usage: context init DB"); return RF_EXIT_USAGE; }
    rf_error err = {0};
    rf_cdb *db;
    if (open_db(a->pos[1], true, &db, &err) != RF_OK) return fail(&err);
    printf("%s: context database, schema version %d\n", a->pos[1], rf_cdb_schema_version(db));
    rf_cdb_close(db);
    return RF_EXIT_OK;
}

static int add_one(rf_cdb *db, rf_cembed *e, bool json, const char *kind, const char *text, size_t len, const char *meta,
                   const rf_cdb_link *links, int n_links, const char *src) {
    rf_error err = {0};
    int64_t id;
    int n_chunks;
    if (rf_context_add(db, e, kind, text, len, meta, links, n_links, &id, &n_chunks, &err) != RF_OK) {
        rf_cli_error("%s: %s", src, err.msg);
        return err.code == RF_E_NOMEM || err.code == RF_E_IO ? RF_EXIT_BADINPUT : RF_EXIT_BADINPUT;
    }
    if (json) printf("{\"id\":%lld,\"kind\":\"%s\",\"chunks\":%d}\n", (long long)id, kind, n_chunks);
    else printf("%lld\n", (long long)id);
    fflush(stdout);
    return RF_EXIT_OK;
}

static int c_add(rf_args *a) {
    int n_src = (a->val[O_TEXT] != NULL) + (a->val[O_FILE] != NULL) + (a->val[O_JSONL] != NULL);
    if (a->n_pos < 2 || n_src != 1 || (a->n_pos > 2 && !a->val[O_FILE])) {
        rf_cli_error("usage: context add DB (--text T | --file F [F...] | --jsonl F) -m MODEL");
        return RF_EXIT_USAGE;
    }
    if (!a->val[O_MODEL]) {
        rf_cli_error("context add needs -m MODEL to compute embeddings");
        return RF_EXIT_USAGE;
    }
    const char *kind = a->val[O_KIND] ? a->val[O_KIND] : "document";
    if (!rf_cdb_kind_valid(kind) && rf_cdb_available()) {
        rf_cli_error("--kind: '%s' is not document, note or message", kind);
        return RF_EXIT_USAGE;
    }
    rf_cdb_link links[32];
    char lbuf[2048];
    int n_links = 0;
    if (a->val[O_LINK] && (n_links = parse_links(a->val[O_LINK], lbuf, sizeof lbuf, links, 32)) < 0) return RF_EXIT_USAGE;
    rf_error err = {0};
    rf_cdb *db = NULL;
    rf_cembed *e = NULL;
    int rc = RF_EXIT_BADINPUT;
    char *buf = NULL;
    if (open_db(a->pos[1], false, &db, &err) != RF_OK) return fail(&err);
    if (!open_model(a, &e, &err)) goto out;
    bool json = a->val[O_JSON] != NULL;
    if (a->val[O_TEXT]) {
        rc = add_one(db, e, json, kind, a->val[O_TEXT], strlen(a->val[O_TEXT]), a->val[O_META], links, n_links, "--text");
    } else if (a->val[O_FILE]) {
        rc = RF_EXIT_OK;
        for (int i = 1; i < a->n_pos + 0 && rc == RF_EXIT_OK; i++) {
            const char *path = i == 1 ? a->val[O_FILE] : a->pos[i];
            size_t len;
            if (!(buf = read_file(path, &len))) { rc = RF_EXIT_BADINPUT; break; }
            rc = add_one(db, e, json, kind, buf, len, a->val[O_META], links, n_links, path);
            rf_free(buf);
            buf = NULL;
        }
    } else {
        FILE *f = strcmp(a->val[O_JSONL], "-") == 0 ? stdin : fopen(a->val[O_JSONL], "r");
        if (!f) { rf_cli_error("%s: %s", a->val[O_JSONL], strerror(errno)); goto out; }
        char *line = NULL;
        size_t cap = 0;
        ssize_t got;
        long ln = 0;
        rc = RF_EXIT_OK;
        while (rc == RF_EXIT_OK && (got = getline(&line, &cap, f)) > 0) {
            ln++;
            if (got == 1) continue;
            json_error_t je;
            json_t *o = json_loadb(line, (size_t)got, 0, &je);
            json_t *t = json_object_get(o, "text"), *k = json_object_get(o, "kind"), *m = json_object_get(o, "meta");
            if (!json_is_object(o) || !json_is_string(t) || (k && !json_is_string(k)) || (m && !json_is_object(m))) {
                rf_cli_error("%s line %ld: expected {\"text\": string, \"kind\"?: string, \"meta\"?: object}", a->val[O_JSONL], ln);
                json_decref(o);
                rc = RF_EXIT_BADINPUT;
                break;
            }
            char *ms = m ? json_dumps(m, JSON_COMPACT) : NULL;
            char where[64];
            snprintf(where, sizeof where, "line %ld", ln);
            rc = add_one(db, e, json, k ? json_string_value(k) : kind, json_string_value(t), json_string_length(t),
                         ms ? ms : a->val[O_META], links, n_links, where);
            free(ms);
            json_decref(o);
        }
        free(line);
        if (f != stdin) fclose(f);
    }
out:
    rf_free(buf);
    rf_cembed_free(e);
    rf_cdb_close(db);
    return rc;
}

static void print_preview(const char *t, size_t max) {
    size_t n = 0;
    for (const char *p = t; *p && n < max; p++, n++) putchar(*p == '\n' || *p == '\t' ? ' ' : *p);
    if (strlen(t) > max) fputs("...", stdout);
}

static int c_search(rf_args *a) {
    if (a->n_pos != 3) { rf_cli_error("usage: context search DB QUERY [-m MODEL] [-k N] [--hops H]"); return RF_EXIT_USAGE; }
    long k = 5, hops = 0;
    if (a->val[O_K] && !rf_arg_long("-k", a->val[O_K], 1, 1000, &k)) return RF_EXIT_USAGE;
    if (a->val[O_HOPS] && !rf_arg_long("--hops", a->val[O_HOPS], 0, 8, &hops)) return RF_EXIT_USAGE;
    rf_csearch_mode mode = a->val[O_MODEL] ? RF_CS_HYBRID : RF_CS_KEYWORD;
    if (a->val[O_MODE] && !rf_csearch_mode_parse(a->val[O_MODE], &mode)) {
        if (!rf_cdb_available()) { rf_cli_error("%s", RF_CDB_UNSUPPORTED_MSG); return RF_EXIT_BADINPUT; }
        rf_cli_error("--mode: '%s' is not hybrid, vector or keyword", a->val[O_MODE]);
        return RF_EXIT_USAGE;
    }
    if (mode != RF_CS_KEYWORD && !a->val[O_MODEL]) {
        rf_cli_error("%s search needs -m MODEL for the query embedding (or --mode keyword)", a->val[O_MODE]);
        return RF_EXIT_USAGE;
    }
    rf_error err = {0};
    rf_cdb *db = NULL;
    rf_cembed *e = NULL;
    rf_chit *hits = NULL;
    int n = 0, rc = RF_EXIT_BADINPUT;
    if (open_db(a->pos[1], false, &db, &err) != RF_OK) return fail(&err);
    if (mode != RF_CS_KEYWORD && !open_model(a, &e, &err)) goto out;
    double t0 = rf_time_now();
    if (rf_context_search(db, e, a->pos[2], (int)k, (int)hops, mode, &hits, &n, &err) != RF_OK) {
        rc = fail(&err);
        goto out;
    }
    double dt = rf_time_now() - t0;
    json_t *res = json_array();
    for (int i = 0; i < n; i++) {
        rf_cdb_node nd;
        if (rf_cdb_get(db, hits[i].id, &nd, &err) != RF_OK) continue;
        if (a->val[O_JSON]) {
            json_t *o = json_object();
            json_object_set_new(o, "id", json_integer(hits[i].id));
            json_object_set_new(o, "doc", json_integer(hits[i].doc));
            json_object_set_new(o, "kind", json_string(nd.kind));
            json_object_set_new(o, "score", json_real(hits[i].score));
            json_object_set_new(o, "vector", isnan(hits[i].vscore) ? json_null() : json_real(hits[i].vscore));
            json_object_set_new(o, "keyword", isnan(hits[i].kscore) ? json_null() : json_real(hits[i].kscore));
            json_object_set_new(o, "hop", json_integer(hits[i].hop));
            json_object_set_new(o, "via", hits[i].hop ? json_integer(hits[i].via) : json_null());
            json_object_set_new(o, "text", json_string(nd.text));
            json_t *m = json_loads(nd.meta_json, 0, NULL);
            json_object_set_new(o, "meta", m ? m : json_object());
            json_array_append_new(res, o);
        } else {
            printf("%2d. [%lld] %.4f %s%s", i + 1, (long long)hits[i].id, hits[i].score, nd.kind, hits[i].hop ? " (linked)" : "");
            if (hits[i].doc != hits[i].id) printf(" of %lld", (long long)hits[i].doc);
            fputs("  ", stdout);
            print_preview(nd.text, 100);
            putchar('\n');
        }
        rf_cdb_node_clear(&nd);
    }
    if (a->val[O_JSON]) {
        json_t *o = json_object();
        json_object_set_new(o, "query", json_string(a->pos[2]));
        json_object_set_new(o, "mode", json_string(rf_csearch_mode_name(mode)));
        json_object_set_new(o, "model", e ? json_string(rf_cembed_model_id(e)) : json_null());
        json_object_set_new(o, "seconds", json_real(dt));
        json_object_set_new(o, "results", res);
        char *s = json_dumps(o, JSON_COMPACT);
        if (s) puts(s);
        free(s);
        json_decref(o);
    } else {
        json_decref(res);
    }
    rc = RF_EXIT_OK;
out:
    rf_free(hits);
    rf_cembed_free(e);
    rf_cdb_close(db);
    return rc;
}

static int c_show(rf_args *a) {
    int64_t id;
    if (a->n_pos != 3) { rf_cli_error("usage: context show DB ID"); return RF_EXIT_USAGE; }
    if (!parse_id("show", a->pos[2], &id)) return RF_EXIT_USAGE;
    rf_error err = {0};
    rf_cdb *db;
    if (open_db(a->pos[1], false, &db, &err) != RF_OK) return fail(&err);
    rf_cdb_node nd;
    rf_cdb_edge *ed = NULL;
    int64_t ne = 0;
    int rc = RF_EXIT_OK;
    if (rf_cdb_get(db, id, &nd, &err) != RF_OK || rf_cdb_edges(db, id, &ed, &ne, &err) != RF_OK) {
        rc = fail(&err);
        if (err.code != RF_E_NOTFOUND) rf_cdb_node_clear(&nd);
        rf_cdb_close(db);
        return rc;
    }
    if (a->val[O_JSON]) {
        json_t *o = json_object(), *edges = json_array();
        json_object_set_new(o, "id", json_integer(nd.id));
        json_object_set_new(o, "kind", json_string(nd.kind));
        json_object_set_new(o, "text", json_string(nd.text));
        json_t *m = json_loads(nd.meta_json, 0, NULL);
        json_object_set_new(o, "meta", m ? m : json_object());
        json_object_set_new(o, "created_at", json_integer(nd.created_at));
        json_object_set_new(o, "parts", json_integer(nd.parts));
        json_object_set_new(o, "parent", nd.parent ? json_integer(nd.parent) : json_null());
        for (int64_t i = 0; i < ne; i++) {
            json_t *x = json_object();
            json_object_set_new(x, "src", json_integer(ed[i].src));
            json_object_set_new(x, "dst", json_integer(ed[i].dst));
            json_object_set_new(x, "relation", json_string(ed[i].relation));
            json_object_set_new(x, "weight", json_real(ed[i].weight));
            json_array_append_new(edges, x);
        }
        json_object_set_new(o, "edges", edges);
        char *s = json_dumps(o, JSON_COMPACT);
        if (s) puts(s);
        free(s);
        json_decref(o);
    } else {
        char tb[64];
        time_t t = (time_t)nd.created_at;
        strftime(tb, sizeof tb, "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
        printf("id       %lld\nkind     %s\ncreated  %s\nmeta     %s\n", (long long)nd.id, nd.kind, tb, nd.meta_json);
        if (nd.parts > 1) printf("chunks   %lld\n", (long long)nd.parts);
        if (nd.parent) printf("document %lld\n", (long long)nd.parent);
        for (int64_t i = 0; i < ne; i++)
            printf("edge     %lld -> %lld %s (%g)\n", (long long)ed[i].src, (long long)ed[i].dst, ed[i].relation, ed[i].weight);
        printf("\n%s\n", nd.text);
    }
    rf_free(ed);
    rf_cdb_node_clear(&nd);
    rf_cdb_close(db);
    return rc;
}

static int c_link(rf_args *a) {
    int64_t src, dst;
    double w = 1.0;
    if (a->n_pos != 5) { rf_cli_error("usage: context link DB A B RELATION [--weight W]"); return RF_EXIT_USAGE; }
    if (!parse_id("link", a->pos[2], &src) || !parse_id("link", a->pos[3], &dst)) return RF_EXIT_USAGE;
    if (a->val[O_WEIGHT] && (!rf_arg_double("--weight", a->val[O_WEIGHT], &w) || w <= 0)) return RF_EXIT_USAGE;
    rf_error err = {0};
    rf_cdb *db;
    if (open_db(a->pos[1], false, &db, &err) != RF_OK) return fail(&err);
    int rc = RF_EXIT_OK;
    if (rf_cdb_link_add(db, src, dst, a->pos[4], w, &err) != RF_OK) rc = fail(&err);
    else printf("%lld -> %lld %s\n", (long long)src, (long long)dst, a->pos[4]);
    rf_cdb_close(db);
    return rc;
}

static int c_rm(rf_args *a) {
    int64_t id;
    if (a->n_pos != 3) { rf_cli_error("usage: context rm DB ID"); return RF_EXIT_USAGE; }
    if (!parse_id("rm", a->pos[2], &id)) return RF_EXIT_USAGE;
    rf_error err = {0};
    rf_cdb *db;
    if (open_db(a->pos[1], false, &db, &err) != RF_OK) return fail(&err);
    int rc = RF_EXIT_OK;
    if (rf_cdb_remove(db, id, &err) != RF_OK) rc = fail(&err);
    else printf("removed %lld\n", (long long)id);
    rf_cdb_close(db);
    return rc;
}

static int c_stats(rf_args *a) {
    if (a->n_pos != 2) { rf_cli_error("usage: context stats DB"); return RF_EXIT_USAGE; }
    rf_error err = {0};
    rf_cdb *db;
    if (open_db(a->pos[1], false, &db, &err) != RF_OK) return fail(&err);
    rf_cdb_stats st;
    int rc = RF_EXIT_OK;
    if (rf_cdb_get_stats(db, &st, &err) != RF_OK) {
        rc = fail(&err);
    } else if (a->val[O_JSON]) {
        printf("{\"nodes\":%lld,\"edges\":%lld,\"embeddings\":%lld,\"documents\":%lld,\"chunks\":%lld,\"messages\":%lld,"
               "\"notes\":%lld,\"file_bytes\":%lld,\"schema_version\":%d,\"models\":{",
               (long long)st.nodes, (long long)st.edges, (long long)st.embeddings, (long long)st.documents, (long long)st.chunks,
               (long long)st.messages, (long long)st.notes, (long long)st.file_bytes, st.schema_version);
        for (int i = 0; i < st.n_models; i++) {
            rf_jsonw w;
            rf_jsonw_init(&w, stdout);
            if (i) putchar(',');
            rf_jsonw_str(&w, st.models[i]);
            printf(":%lld", (long long)st.model_vectors[i]);
        }
        printf("}}\n");
    } else {
        printf("nodes       %lld (documents %lld, chunks %lld, messages %lld, notes %lld)\n", (long long)st.nodes,
               (long long)st.documents, (long long)st.chunks, (long long)st.messages, (long long)st.notes);
        printf("edges       %lld\nembeddings  %lld\n", (long long)st.edges, (long long)st.embeddings);
        for (int i = 0; i < st.n_models; i++) printf("  model     %s: %lld vectors\n", st.models[i], (long long)st.model_vectors[i]);
        printf("schema      version %d\nfile        %lld bytes\n", st.schema_version, (long long)st.file_bytes);
    }
    rf_cdb_close(db);
    return rc;
}

static int c_export(rf_args *a) {
    if (a->n_pos != 2) { rf_cli_error("usage: context export DB > FILE.jsonl"); return RF_EXIT_USAGE; }
    rf_error err = {0};
    rf_cdb *db;
    if (open_db(a->pos[1], false, &db, &err) != RF_OK) return fail(&err);
    int64_t n;
    int rc = RF_EXIT_OK;
    if (rf_cdb_export(db, stdout, &n, &err) != RF_OK) rc = fail(&err);
    else if (fflush(stdout) != 0) { rf_cli_error("export: write failed: %s", strerror(errno)); rc = RF_EXIT_BADINPUT; }
    rf_cdb_close(db);
    return rc;
}

static int c_import(rf_args *a) {
    if (a->n_pos != 3) { rf_cli_error("usage: context import DB FILE.jsonl"); return RF_EXIT_USAGE; }
    rf_error err = {0};
    rf_cdb *db;
    if (open_db(a->pos[1], false, &db, &err) != RF_OK) return fail(&err);
    FILE *f = strcmp(a->pos[2], "-") == 0 ? stdin : fopen(a->pos[2], "r");
    if (!f) {
        rf_cli_error("%s: %s", a->pos[2], strerror(errno));
        rf_cdb_close(db);
        return RF_EXIT_BADINPUT;
    }
    int64_t nn, ne;
    int rc = RF_EXIT_OK;
    if (rf_cdb_import(db, f, &nn, &ne, &err) != RF_OK) rc = fail(&err);
    else printf("imported %lld nodes, %lld edges\n", (long long)nn, (long long)ne);
    if (f != stdin) fclose(f);
    rf_cdb_close(db);
    return rc;
}

static const struct {
    const char *name;
    int (*run)(rf_args *a);
} subs[] = {
    {"init", c_init}, {"add", c_add}, {"search", c_search}, {"show", c_show}, {"link", c_link},
    {"rm", c_rm}, {"stats", c_stats}, {"export", c_export}, {"import", c_import},
};

static int run(int argc, char **argv) {
    rf_args a;
    bool want_help;
    int rc = rf_args_parse(argc, argv, opts, O_COUNT, &a, &want_help);
    if (rc) return rc;
    if (want_help || a.n_pos == 0) {
        usage(want_help ? stdout : stderr);
        return want_help ? RF_EXIT_OK : RF_EXIT_USAGE;
    }
    if (!rf_cdb_available()) {
        rf_cli_error("context: %s", RF_CDB_UNSUPPORTED_MSG);
        return RF_EXIT_BADINPUT;
    }
    for (size_t i = 0; i < RF_ARRAY_LEN(subs); i++)
        if (strcmp(a.pos[0], subs[i].name) == 0) return subs[i].run(&a);
    rf_cli_error("context: unknown command '%s'", a.pos[0]);
    usage(stderr);
    return RF_EXIT_USAGE;
}

const rf_cmd rf_cmd_context = {"context", "context database: add, search (vectors + keywords + links), show, export", run, usage};
