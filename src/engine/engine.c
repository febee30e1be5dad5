/*
 * engine.c - opening a model for generation and the single-stream
 * completion loop.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads every page of the weights once (so the first token does not pay for
 * page faults), with a progress bar on a terminal. */
static void prefault(const rf_model *m, bool progress) {
    const rf_gguf *g = m->gguf;
    uint64_t total = 0, done = 0;
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) total += rf_gguf_tensor_at(g, i)->nbytes;
    volatile uint8_t sink = 0;
    double last = 0;
    for (int64_t i = 0; i < rf_gguf_n_tensors(g); i++) {
        const rf_gguf_tensor *t = rf_gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        for (uint64_t o = 0; o < t->nbytes; o += 4096) sink ^= p[o];
        done += t->nbytes;
        double now = rf_time_now();
        if (progress && (now - last > 0.1 || done == total)) {
            last = now;
            int w = 40, f = total ? (int)(w * (double)done / (double)total) : w;
            fprintf(stderr, "\rloading [%.*s%.*s] %5.1f%%", f, "########################################",
                    w - f, "........................................", total ? 100.0 * (double)done / (double)total : 100.0);
        }
    }
    if (progress) fputc('\n', stderr);
    (void)sink;
}

int rf_engine_repack(rf_model *m, rf_backend *cpu, const rf_offload *off) {
    const char *env = getenv("ROCMFORGE_REPACK");
    if ((env && strcmp(env, "0") == 0) || rf_offload_active(off) || !rf_gguf_data_copied(m->gguf)) return 0;
    const double t0 = rf_time_now();
    int n = 0;
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        rf_layer *L = &m->layers[il];
        rf_wview *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wqkv, &L->ffn_gate, &L->ffn_up, &L->ffn_down};
        for (size_t i = 0; i < RF_ARRAY_LEN(ws); i++) n += rf_cpu_backend_repack(cpu, ws[i]);
    }
    /* tied embeddings: the lookup reads the same bytes, through the backend that knows the layout */
    if (rf_cpu_backend_repack(cpu, &m->output)) {
        n++;
        if (m->tok_embd.data == m->output.data) m->tok_embd.layout = m->output.layout;
    }
    if (n) rf_log(RF_LOG_DEBUG, "cpu: %d weight tensors in the X16 layout (%.2f s)", n, rf_time_now() - t0);
    return n;
}

rf_status rf_engine_attach(rf_engine *e, rf_ctx *ctx, rf_error *err) {
    rf_status st = rf_offload_attach(e->offload, ctx, err);
    if (st == RF_OK) rf_engine_repack(e->model, &e->be, e->offload);
    return st;
}

rf_status rf_engine_open(const rf_engine_opts *o, rf_engine **out, rf_error *err) {
    *out = NULL;
    double t0 = rf_time_now();
    rf_engine *e = rf_calloc(1, sizeof *e);
    if (!e) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    rf_status st = rf_model_load(o->model_path, &e->model, err);
    if (st != RF_OK) goto fail;
    if ((st = rf_tokenizer_from_gguf(e->model->gguf, NULL, &e->tok, err)) != RF_OK) goto fail;
    if (rf_tokenizer_n_vocab(e->tok) > e->model->hp.n_vocab) {
        st = rf_error_set(err, RF_E_FORMAT, "%s: tokenizer has %d tokens, the embedding %lld rows", o->model_path,
                          rf_tokenizer_n_vocab(e->tok), (long long)e->model->hp.n_vocab);
        goto fail;
    }
    e->n_threads = o->n_threads > 0 ? o->n_threads : rf_cpu_physical_cores();
    e->n_ctx = o->n_ctx > 0 ? o->n_ctx : (e->model->hp.n_ctx_train < 4096 ? e->model->hp.n_ctx_train : 4096);
    e->n_batch = o->n_batch > 0 ? o->n_batch : 512;
    int n_seq = o->n_seq > 0 ? o->n_seq : 1;
    e->tp = rf_threadpool_create(e->n_threads);
    if (!e->tp) { st = rf_error_set(err, RF_E_NOMEM, "cannot start %d threads", e->n_threads); goto fail; }
    if ((st = rf_cpu_backend_create(e->tp, &e->be, err)) != RF_OK) goto fail;
    if (o->trace_path && (st = rf_cpu_backend_trace(&e->be, o->trace_path, err)) != RF_OK) goto fail;
    rf_ctx_params cp = {.n_ctx = e->n_ctx, .n_seq = n_seq, .n_batch = e->n_batch};
    if ((st = rf_ctx_create(e->model, &cp, &e->be, &e->ctx, err)) != RF_OK) goto fail;
    rf_offload_opts go = o->gpu_set ? o->gpu : (rf_offload_opts){.device = RF_DEVICE_CPU, .gpu_device = -1};
    if ((st = rf_offload_open(e->model, &go, &e->offload, err)) != RF_OK) goto fail;
    /* deferred (serve): rf_engine_attach repacks once the GPU has taken its layers */
    if (!o->gpu_defer && (st = rf_engine_attach(e, e->ctx, err)) != RF_OK) goto fail;
    e->hist = rf_calloc((size_t)n_seq, sizeof *e->hist);
    e->n_hist = rf_calloc((size_t)n_seq, sizeof *e->n_hist);
    e->batch = rf_malloc((size_t)e->n_batch * sizeof *e->batch);
    if (!e->hist || !e->n_hist || !e->batch) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); goto fail; }
    for (int s = 0; s < n_seq; s++) {
        e->hist[s] = rf_malloc((size_t)e->n_ctx * sizeof(int32_t));
        if (!e->hist[s]) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); goto fail; }
    }
    prefault(e->model, o->progress);
    e->load_s = rf_time_now() - t0;
    *out = e;
    return RF_OK;
fail:
    rf_engine_close(e);
    return st;
}

void rf_engine_close(rf_engine *e) {
    if (!e) return;
    int n_seq = e->ctx ? rf_kv_get_config(rf_ctx_kv(e->ctx))->n_seq : 0;
    if (e->hist)
        for (int s = 0; s < n_seq; s++) rf_free(e->hist[s]);
    rf_free(e->hist);
    rf_free(e->n_hist);
    rf_free(e->batch);
    rf_ctx_free(e->ctx);
    rf_offload_close(e->offload);
    rf_cpu_backend_free(&e->be);
    rf_threadpool_free(e->tp);
    rf_tokenizer_free(e->tok);
    rf_model_free(e->model);
    rf_free(e);
}

/* Runs tokens [from, n) of `toks` at positions from.. in chunks; logits of
 * the last one land in `logits`. */
static rf_status prefill(rf_engine *e, int seq, const int32_t *toks, int64_t from, int64_t n, float *logits,
                         rf_error *err) {
    for (int64_t i = from; i < n; i += e->n_batch) {
        int64_t m = n - i < e->n_batch ? n - i : e->n_batch;
        for (int64_t j = 0; j < m; j++)
            e->batch[j] = (rf_batch_entry){seq, (int32_t)(i + j), toks[i + j], i + j == n - 1};
        rf_status st = rf_forward(e->ctx, e->batch, m, i + m == n ? logits : NULL, NULL, err);
        if (st != RF_OK) return st;
    }
    return RF_OK;
}

static bool emit(rf_stop *stop, const char *text, size_t len, rf_text_cb cb, void *cb_ctx, bool *hit) {
    size_t safe = rf_stop_push(stop, text, len, hit);
    bool go = true;
    if (safe) go = cb(cb_ctx, rf_stop_text(stop), safe);
    rf_stop_consume(stop, safe);
    return go && !*hit;
}

rf_status rf_engine_complete(rf_engine *e, const int32_t *prompt, size_t n, const rf_gen_params *p,
                             rf_text_cb cb, void *cb_ctx, rf_gen_stats *stats, rf_error *err) {
    memset(stats, 0, sizeof *stats);
    int seq = p->seq;
    if (n == 0) return rf_error_set(err, RF_E_INVAL, "empty prompt");
    if ((int64_t)n >= e->n_ctx)
        return rf_error_set(err, RF_E_RANGE, "prompt of %zu tokens does not fit the context of %lld", n, (long long)e->n_ctx);
    /* reuse the cached prefix; always recompute at least the last token */
    int64_t keep = 0;
    while (keep < e->n_hist[seq] && keep < (int64_t)n - 1 && e->hist[seq][keep] == prompt[keep]) keep++;
    memcpy(e->hist[seq], prompt, n * sizeof(int32_t));
    e->n_hist[seq] = keep;
    stats->n_prompt = (int64_t)n;
    stats->n_reused = keep;

    rf_sampler *smp = NULL;
    rf_stop stop;
    rf_status st = rf_stop_init(&stop, p->stops, p->n_stops);
    if (st != RF_OK) return rf_error_set(err, st, "out of memory");
    if ((st = rf_sampler_create(&p->sample, e->model->hp.n_vocab, &smp, err)) != RF_OK) goto out;
    float *logits = rf_ctx_logits(e->ctx, 1); /* page-locked where a GPU computes the head */
    if (!logits) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) rf_sampler_accept(smp, prompt[i]);

    double t0 = rf_time_now();
    if ((st = prefill(e, seq, prompt, keep, (int64_t)n, logits, err)) != RF_OK) goto out;
    e->n_hist[seq] = (int64_t)n;
    stats->prompt_s = rf_time_now() - t0;

    rf_detok dt;
    rf_detok_init(&dt, e->tok, RF_DETOK_SKIP_SPECIAL | RF_DETOK_KEEP_LEADING_SPACE);
    size_t cap = rf_detok_max_out(e->tok);
    char *piece = rf_malloc(cap + 1);
    if (!piece) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); goto out; }
    double t1 = rf_time_now();
    stats->finish = RF_FINISH_LENGTH;
    int64_t pos = (int64_t)n;
    for (;;) {
        if (p->cancel && *p->cancel) { stats->finish = RF_FINISH_CANCEL; break; }
        if ((p->n_predict >= 0 && stats->n_gen >= p->n_predict) || pos >= e->n_ctx) break;
        int32_t tok = rf_sample(smp, logits, NULL);
        rf_sampler_accept(smp, tok);
        stats->n_gen++;
        if (rf_token_is_eog(e->tok, tok)) { stats->finish = RF_FINISH_STOP; break; }
        size_t np = 0;
        if ((st = rf_detok_push(&dt, tok, piece, cap, &np, err)) != RF_OK) break;
        bool hit = false;
        if (np && !emit(&stop, piece, np, cb, cb_ctx, &hit)) { stats->finish = hit ? RF_FINISH_STOP : RF_FINISH_CANCEL; break; }
        if (pos >= e->n_ctx || (p->n_predict >= 0 && stats->n_gen >= p->n_predict)) break;
        e->batch[0] = (rf_batch_entry){seq, (int32_t)pos, tok, true};
        if ((st = rf_forward(e->ctx, e->batch, 1, logits, NULL, err)) != RF_OK) break;
        e->hist[seq][pos++] = tok;
        e->n_hist[seq] = pos;
    }
    if (st == RF_OK && stats->finish != RF_FINISH_CANCEL) {
        /* the held tail: incomplete UTF-8 and a partial stop-string match */
        size_t np = rf_detok_flush(&dt, piece, cap);
        bool hit = false;
        if (np) emit(&stop, piece, np, cb, cb_ctx, &hit);
        if (!hit && stop.len) cb(cb_ctx, rf_stop_text(&stop), stop.len);
    }
    rf_free(piece);
    stats->gen_s = rf_time_now() - t1;
out:
    rf_stop_free(&stop);
    rf_sampler_free(smp);
    return st;
}
