/*
 * embed.c - embeddings for the context engine through the scheduler's
 * embedding jobs: the very path of the server's /v1/embeddings (mean of
 * the final normed hidden states over the input's tokens, L2-normalised;
 * see embd_finish in src/sched/sched.c), so vectors stored by the CLI and
 * the ones the server computes for a query are comparable.
 *
 * rf_cembed_texts submits one job per text and blocks its caller on a
 * condition variable the jobs' notify callback signals; the scheduler
 * thread never waits on the caller.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "context.h"
#include "engine/engine.h"

struct rf_cembed {
    rf_sched *s;
    const rf_tokenizer *tok;
    char model_id[300];
    int64_t dim, chunk, overlap;
    /* owned when opened from a model file */
    rf_engine *eng;
    rf_ctx *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen; /* notifications so far (under mu) */
};

static void on_notify(void *ud) {
    rf_cembed *e = ud;
    pthread_mutex_lock(&e->mu);
    e->gen++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static rf_status init_common(rf_cembed *e, rf_sched *s, const rf_tokenizer *tok, const char *model_id, int64_t dim,
                             int64_t chunk, int64_t overlap, rf_error *err) {
    e->s = s;
    e->tok = tok;
    e->dim = dim;
    int64_t room = rf_sched_n_ctx(s) - 2;
    e->chunk = chunk > 0 ? chunk : 256;
    if (e->chunk > room) e->chunk = room;
    e->overlap = overlap > 0 ? overlap : 32;
    if (e->overlap >= e->chunk) e->overlap = e->chunk / 4;
    if (e->chunk < 8) return rf_error_set(err, RF_E_RANGE, "the context of %lld tokens is too small for embeddings", (long long)rf_sched_n_ctx(s));
    snprintf(e->model_id, sizeof e->model_id, "%s", model_id);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    return RF_OK;
}

rf_status rf_cembed_create(rf_sched *s, const rf_tokenizer *tok, const char *model_id, int64_t dim,
                           int64_t chunk_tokens, int64_t overlap_tokens, rf_cembed **out, rf_error *err) {
    *out = NULL;
    rf_cembed *e = rf_calloc(1, sizeof *e);
    if (!e) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    rf_status st = init_common(e, s, tok, model_id, dim, chunk_tokens, overlap_tokens, err);
    if (st != RF_OK) {
        rf_free(e);
        return st;
    }
    *out = e;
    return RF_OK;
}

rf_status rf_cembed_open_model(const char *path, int threads, int64_t chunk_tokens, rf_cembed **out, rf_error *err) {
    *out = NULL;
    rf_cembed *e = rf_calloc(1, sizeof *e);
    if (!e) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    /* the engine's own context stays minimal (as in serve): the scheduler's is made here */
    rf_engine_opts eo = {.model_path = path, .n_threads = threads, .n_seq = 1, .n_ctx = 16, .n_batch = 1};
    rf_status st = rf_engine_open(&eo, &e->eng, err);
    if (st != RF_OK) goto fail;
    int64_t chunk = chunk_tokens > 0 ? chunk_tokens : 256;
    int64_t n_ctx = chunk + 64 > 512 ? chunk + 64 : 512;
    if (e->eng->model->hp.n_ctx_train > 0 && n_ctx > e->eng->model->hp.n_ctx_train) n_ctx = e->eng->model->hp.n_ctx_train;
    rf_ctx_params cp = {.n_ctx = n_ctx, .n_seq = 4, .n_batch = 512};
    if ((st = rf_ctx_create(e->eng->model, &cp, &e->eng->be, &e->ctx, err)) != RF_OK) goto fail;
    rf_sched_opts so = {.n_batch = 512, .n_ctx = n_ctx, .prefill_chunk = 512, .max_queue = 1024};
    rf_sched *s = NULL;
    if ((st = rf_sched_create(e->ctx, e->eng->tok, &so, &s, err)) != RF_OK) goto fail;
    char id[300];
    const char *base = strrchr(path, '/');
    snprintf(id, sizeof id, "%s#%lld", base ? base + 1 : path, (long long)e->eng->model->hp.n_embd);
    if ((st = init_common(e, s, e->eng->tok, id, e->eng->model->hp.n_embd, chunk, 0, err)) != RF_OK) {
        rf_sched_free(s);
        goto fail;
    }
    *out = e;
    return RF_OK;
fail:
    rf_ctx_free(e->ctx);
    rf_engine_close(e->eng);
    rf_free(e);
    return st;
}

void rf_cembed_free(rf_cembed *e) {
    if (!e) return;
    if (e->eng) { /* owned: the scheduler first (it uses the context) */
        rf_sched_free(e->s);
        rf_ctx_free(e->ctx);
        rf_engine_close(e->eng);
    }
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    rf_free(e);
}

const char *rf_cembed_model_id(const rf_cembed *e) { return e->model_id; }
int64_t rf_cembed_dim(const rf_cembed *e) { return e->dim; }

rf_status rf_cembed_chunk(const rf_cembed *e, const char *text, size_t len, char ***chunks, int *n_chunks, rf_error *err) {
    return rf_chunk_text(e->tok, text, len, e->chunk, e->overlap, chunks, n_chunks, err);
}

/* Submits jobs [0, n) and waits for all; out rows as they finish. */
static rf_status run_group(rf_cembed *e, const char *const *texts, const size_t *lens, int n, float *out, rf_error *err) {
    rf_sjob *jobs[32] = {0};
    RF_ASSERT(n <= 32);
    rf_status st = RF_OK;
    int64_t room = rf_sched_n_ctx(e->s) - 1;
    for (int i = 0; i < n && st == RF_OK; i++) {
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if ((st = rf_tokenize(e->tok, texts[i], lens[i], rf_tokenizer_add_bos(e->tok), false, &ids, &n_ids, err)) != RF_OK) break;
        if (n_ids == 0) {
            rf_free(ids);
            st = rf_error_set(err, RF_E_INVAL, "cannot embed an empty text");
            break;
        }
        rf_sjob_params p = {.prompt = ids, .n_prompt = (int64_t)n_ids < room ? (int64_t)n_ids : room, .embedding = true,
                            .sample = rf_sample_params_default(), .notify = on_notify, .notify_ud = e};
        st = rf_sjob_create(e->s, &p, &jobs[i], err);
        rf_free(ids);
        if (st != RF_OK) break;
        for (int tries = 0;; tries++) {
            rf_submit r = rf_sched_submit(e->s, jobs[i]);
            if (r == RF_SUBMIT_OK) break;
            if (r == RF_SUBMIT_STOPPING || tries > 6000) {
                st = rf_error_set(err, RF_E_IO, "the scheduler does not take embedding jobs (%s)", r == RF_SUBMIT_STOPPING ? "stopping" : "queue full");
                rf_sjob_release(jobs[i]); /* never submitted: not the scheduler's */
                jobs[i] = NULL;
                break;
            }
            usleep(10000);
        }
    }
    /* wait for every submitted job, also after an error (they reference e) */
    for (;;) {
        pthread_mutex_lock(&e->mu);
        uint64_t g0 = e->gen;
        pthread_mutex_unlock(&e->mu);
        bool all = true;
        for (int i = 0; i < n; i++) {
            if (!jobs[i]) continue;
            rf_sjob_lock(jobs[i]);
            const rf_sjob_out *o = rf_sjob_output(jobs[i]);
            bool done = o->done;
            rf_sjob_unlock(jobs[i]);
            if (!done) {
                all = false;
                break;
            }
        }
        if (all) break;
        if (st != RF_OK) /* every job left is submitted: cancelled, it finishes within a step */
            for (int i = 0; i < n; i++)
                if (jobs[i]) rf_sjob_cancel(jobs[i]);
        pthread_mutex_lock(&e->mu);
        if (e->gen == g0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&e->cv, &e->mu, &ts);
        }
        pthread_mutex_unlock(&e->mu);
    }
    for (int i = 0; i < n; i++) {
        if (!jobs[i]) continue;
        if (st == RF_OK) {
            rf_sjob_lock(jobs[i]);
            const rf_sjob_out *o = rf_sjob_output(jobs[i]);
            if (o->embedding && o->n_embd == e->dim) memcpy(out + (size_t)i * (size_t)e->dim, o->embedding, (size_t)e->dim * sizeof(float));
            else st = rf_error_set(err, RF_E_IO, "embedding job failed: %s", o->error ? o->error : "no vector");
            rf_sjob_unlock(jobs[i]);
        }
        rf_sjob_release(jobs[i]);
    }
    return st;
}

rf_status rf_cembed_texts(rf_cembed *e, const char *const *texts, const size_t *lens, int n, float *out, rf_error *err) {
    for (int i = 0; i < n; i += 32) {
        int m = n - i < 32 ? n - i : 32;
        rf_status st = run_group(e, texts + i, lens + i, m, out + (size_t)i * (size_t)e->dim, err);
        if (st != RF_OK) return st;
    }
    return RF_OK;
}

/* ---- add and search ------------------------------------------------------------------------ */

rf_status rf_context_add(rf_cdb *db, rf_cembed *e, const char *kind, const char *text, size_t len, const char *meta_json,
                         const rf_cdb_link *links, int n_links, int64_t *id, int *n_chunks, rf_error *err) {
    *id = 0;
    if (n_chunks) *n_chunks = 0;
    if (!rf_cdb_kind_valid(kind))
        return rf_error_set(err, rf_cdb_available() ? RF_E_INVAL : RF_E_UNSUPPORTED, "%s",
                            rf_cdb_available() ? "unknown kind (document, message or note)" : RF_CDB_UNSUPPORTED_MSG);
    size_t nb = 0;
    while (nb < len && (text[nb] == ' ' || text[nb] == '\n' || text[nb] == '\t' || text[nb] == '\r')) nb++;
    if (nb == len) return rf_error_set(err, RF_E_INVAL, "the text is empty");
    char **parts = NULL;
    int n = 0;
    float *vecs = NULL;
    size_t *lens = NULL;
    rf_status st;
    if (e) {
        if ((st = rf_cembed_chunk(e, text, len, &parts, &n, err)) != RF_OK) return st;
        vecs = rf_malloc((size_t)n * (size_t)e->dim * sizeof(float));
        lens = rf_malloc((size_t)n * sizeof *lens);
        if (!vecs || !lens) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); goto out; }
        for (int i = 0; i < n; i++) lens[i] = strlen(parts[i]);
        if (n == 1) lens[0] = len; /* the text itself (may hold NULs) */
        const char *const *tp = (const char *const *)parts;
        const char *one[1] = {text};
        if ((st = rf_cembed_texts(e, n == 1 ? one : tp, lens, n, vecs, err)) != RF_OK) goto out;
    } else {
        if (!(parts = rf_calloc(1, sizeof *parts)) || !(parts[0] = rf_strndup(text, len))) {
            st = rf_error_set(err, RF_E_NOMEM, "out of memory");
            n = 1;
            goto out;
        }
        n = 1;
    }
    rf_cdb_item it = {.kind = kind, .text = text, .len = len, .meta_json = meta_json, .parts = (const char *const *)parts,
                      .n_parts = n, .vecs = vecs, .model_id = e ? e->model_id : NULL, .dim = e ? e->dim : 0,
                      .links = links, .n_links = n_links};
    st = rf_cdb_add(db, &it, id, err);
    if (st == RF_OK && n_chunks) *n_chunks = n;
out:
    rf_chunks_free(parts, n);
    rf_free(vecs);
    rf_free(lens);
    return st;
}

rf_status rf_context_search(rf_cdb *db, rf_cembed *e, const char *query, int k, int hops, rf_csearch_mode mode,
                            rf_chit **hits, int *n_hits, rf_error *err) {
    *hits = NULL;
    *n_hits = 0;
    if (!query || !*query) return rf_error_set(err, RF_E_INVAL, "the query is empty");
    float *q = NULL;
    if (mode != RF_CS_KEYWORD) {
        if (!e) return rf_error_set(err, RF_E_INVAL, "%s search needs a model for the query embedding (-m MODEL)", rf_csearch_mode_name(mode));
        if (!(q = rf_malloc((size_t)e->dim * sizeof(float)))) return rf_error_set(err, RF_E_NOMEM, "out of memory");
        const char *t[1] = {query};
        size_t l[1] = {strlen(query)};
        rf_status st = rf_cembed_texts(e, t, l, 1, q, err);
        if (st != RF_OK) {
            rf_free(q);
            return st;
        }
    }
    rf_csearch_params p = {.query = query, .qvec = q, .model_id = e ? e->model_id : NULL, .dim = e ? e->dim : 0,
                           .k = k, .hops = hops, .mode = mode};
    rf_status st = rf_cdb_search(db, &p, hits, n_hits, err);
    rf_free(q);
    return st;
}
