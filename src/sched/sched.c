/*
 * sched.c - jobs and the scheduler thread: queueing, admission against free
 * slots and KV blocks, batch building (decode tokens first, then a chunk of
 * prefill), one rf_forward per step, sampling with grammar masks and stop
 * strings, pre-emption when the block pool runs out, cancellation, request
 * timeouts and draining at shutdown.
 *
 * Threads: any thread creates, submits, cancels and reads jobs; only the
 * scheduler thread touches the context, the KV cache, a job's sampler,
 * detokenizer, stop matcher and grammar state, and the waiting queue.
 * Locks: s->mu guards the incoming list, flags and stats; j->mu guards a
 * job's output. The scheduler never holds both, and calls the notify
 * callback with neither held.
 */
#include "sched.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- jobs ------------------------------------------------------------------ */

struct rf_sched;
static void slog(struct rf_sched *s, rf_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct rf_sjob {
    atomic_int refs;
    atomic_bool cancel;
    pthread_mutex_t mu;
    rf_sched *s;

    /* request, fixed at creation */
    int64_t n_prompt;
    int32_t max_tokens;
    bool logprobs, embedding;
    double deadline;
    rf_sjob_notify_fn notify;
    void *notify_ud;
    void (*ud_release)(void *ud);

    /* scheduler-thread state */
    int32_t *toks;          /* prompt + generated, [cap] */
    int64_t n_toks, cap;
    int64_t n_past;         /* positions whose KV is in the cache */
    int slot;               /* -1 when not running */
    uint64_t seqno;         /* admission order: higher is younger */
    bool committed;         /* prompt blocks registered in the prefix cache */
    double t_last;          /* time of the previous token */
    rf_sampler *smp;
    rf_detok dt;
    rf_stop stop;
    rf_jgram *g;
    rf_jstate js;
    char *piece;            /* detokenizer output, rf_detok_max_out bytes */
    size_t piece_cap;
    double *embd_acc;       /* [n_embd] sum of hidden states */
    rf_sjob *next;          /* queue link */

    /* output, under mu */
    char *text;
    size_t text_len, text_cap;
    rf_stoken *otoks;
    int64_t n_otoks, otoks_cap;
    float *embd;
    char errmsg[256];
    rf_sjob_out out;
};

struct rf_sched {
    rf_ctx *ctx;
    rf_kv_cache *kv;
    const rf_tokenizer *tok;
    int n_seq;
    int64_t n_ctx, n_batch, n_vocab, n_tok_vocab, n_embd, chunk, block_size;
    int max_queue;
    void (*observe)(void *ud, rf_sched_obs what, double seconds);
    void *observe_ud;
    void (*log)(void *ud, rf_log_level lvl, const char *msg);
    void *log_ud;

    pthread_t th;
    bool th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* wakes the scheduler thread */
    pthread_cond_t cv_idle; /* wakes rf_sched_drain */
    rf_sjob *in_head, *in_tail; /* submitted, not yet seen by the thread (mu) */
    atomic_int_fast64_t queued; /* incoming + waiting, for max_queue */
    atomic_int_fast64_t active; /* submitted and not finished */
    bool stopping, quit;
    double drain_deadline;
    rf_sched_stats st;

    /* scheduler thread only */
    rf_sjob *wait_head, *wait_tail;
    rf_sjob **slots;        /* [n_seq] */
    uint64_t seqno;
    rf_batch_entry *batch;  /* [n_batch] */
    float *logits;          /* [n_seq][n_vocab], the context's (rf_ctx_logits) */
    float *hidden;          /* [n_batch][n_embd] */
    rf_sjob **row_job;      /* [n_seq]: logits row -> job */
    rf_sjob **fed_job;      /* [n_seq]: jobs in the batch */
    int64_t *fed_n;         /* [n_seq]: tokens each fed */
    /* token pieces for grammar masks: [n_vocab] */
    const char **tpiece;
    uint32_t *tlen;
    uint8_t *tflag;         /* TF_* */
    rf_jstate scratch;
};

enum { TF_EOG = 1, TF_SKIP = 2 };

static void job_free(rf_sjob *j) {
    rf_sampler_free(j->smp);
    rf_stop_free(&j->stop);
    rf_jgram_unref(j->g);
    rf_free(j->toks);
    rf_free(j->piece);
    rf_free(j->embd_acc);
    rf_free(j->text);
    rf_free(j->otoks);
    rf_free(j->embd);
    pthread_mutex_destroy(&j->mu);
    if (j->ud_release) j->ud_release(j->notify_ud);
    rf_free(j);
}

rf_status rf_sjob_create(rf_sched *s, const rf_sjob_params *p, rf_sjob **out, rf_error *err) {
    *out = NULL;
    if (p->n_prompt <= 0) return rf_error_set(err, RF_E_INVAL, "the prompt is empty");
    if (p->n_prompt >= s->n_ctx)
        return rf_error_set(err, RF_E_RANGE, "the prompt has %lld tokens; the context holds %lld (prompt + at least one generated token)",
                            (long long)p->n_prompt, (long long)s->n_ctx);
    for (int64_t i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= s->n_tok_vocab)
            return rf_error_set(err, RF_E_RANGE, "prompt token %lld (id %d) is outside the vocabulary of %lld", (long long)i,
                                p->prompt[i], (long long)s->n_tok_vocab);
    rf_sjob *j = rf_calloc(1, sizeof *j);
    if (!j) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancel, false);
    pthread_mutex_init(&j->mu, NULL);
    j->s = s;
    j->slot = -1;
    j->n_prompt = p->n_prompt;
    j->max_tokens = p->max_tokens;
    j->logprobs = p->logprobs;
    j->embedding = p->embedding;
    j->deadline = p->timeout_s > 0 ? rf_time_now() + p->timeout_s : 0;
    j->notify = p->notify;
    j->notify_ud = p->notify_ud;
    j->ud_release = p->ud_release;
    /* room for the prompt and every token that may follow it */
    j->cap = s->n_ctx;
    if (p->max_tokens >= 0 && p->n_prompt + p->max_tokens + 1 < j->cap) j->cap = p->n_prompt + p->max_tokens + 1;
    j->toks = rf_malloc((size_t)j->cap * sizeof(int32_t));
    j->text_cap = 256;
    j->text = rf_malloc(j->text_cap);
    j->piece_cap = rf_detok_max_out(s->tok);
    j->piece = rf_malloc(j->piece_cap + 1);
    rf_status st = RF_OK;
    if (!j->toks || !j->text || !j->piece) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); goto fail; }
    memcpy(j->toks, p->prompt, (size_t)p->n_prompt * sizeof(int32_t));
    j->n_toks = p->n_prompt;
    j->text[0] = '\0';
    if (p->embedding) {
        j->embd_acc = rf_calloc((size_t)s->n_embd, sizeof(double));
        j->embd = rf_malloc((size_t)s->n_embd * sizeof(float));
        if (!j->embd_acc || !j->embd) { st = rf_error_set(err, RF_E_NOMEM, "out of memory"); goto fail; }
    } else {
        if ((st = rf_sampler_create(&p->sample, s->n_vocab, &j->smp, err)) != RF_OK) goto fail;
        for (int64_t i = 0; i < p->n_prompt; i++) rf_sampler_accept(j->smp, p->prompt[i]);
        if ((st = rf_stop_init(&j->stop, p->stops, p->n_stops)) != RF_OK) {
            st = rf_error_set(err, st, "out of memory");
            goto fail;
        }
        rf_detok_init(&j->dt, s->tok, RF_DETOK_SKIP_SPECIAL | RF_DETOK_KEEP_LEADING_SPACE);
        if (p->grammar) {
            j->g = rf_jgram_ref(p->grammar);
            rf_jstate_init(j->g, &j->js);
        }
    }
    j->out.n_prompt = p->n_prompt;
    j->out.text = j->text;
    j->out.t_submit = rf_time_now();
    *out = j;
    return RF_OK;
fail:
    j->ud_release = NULL; /* the caller still owns ud on failure */
    job_free(j);
    return st;
}

void rf_sjob_release(rf_sjob *j) {
    if (j && atomic_fetch_sub(&j->refs, 1) == 1) job_free(j);
}

void rf_sjob_cancel(rf_sjob *j) {
    atomic_store(&j->cancel, true);
    rf_sched *s = j->s;
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void rf_sjob_lock(rf_sjob *j) { pthread_mutex_lock(&j->mu); }
void rf_sjob_unlock(rf_sjob *j) { pthread_mutex_unlock(&j->mu); }
const rf_sjob_out *rf_sjob_output(const rf_sjob *j) { return &j->out; }

/* ---- job output (scheduler thread) ---------------------------------------- */

/* Appends safe text; on allocation failure the text is dropped and the job
 * ends with an error at the next check. Buffers grow by doubling, so a
 * request costs O(log n) allocations over its life, none per token. */
static bool out_text(rf_sjob *j, const char *t, size_t n) {
    if (!n) return true;
    bool ok = true;
    pthread_mutex_lock(&j->mu);
    if (j->text_len + n + 1 > j->text_cap) {
        size_t cap = (j->text_len + n + 1) * 2;
        char *nb = rf_realloc(j->text, cap);
        if (nb) {
            j->text = nb;
            j->text_cap = cap;
            j->out.text = nb;
        } else {
            ok = false;
        }
    }
    if (ok) {
        memcpy(j->text + j->text_len, t, n);
        j->text_len += n;
        j->text[j->text_len] = '\0';
        j->out.text_len = j->text_len;
    }
    pthread_mutex_unlock(&j->mu);
    return ok;
}

static bool out_token(rf_sjob *j, const rf_sample_result *r) {
    bool ok = true;
    pthread_mutex_lock(&j->mu);
    if (j->n_otoks == j->otoks_cap) {
        int64_t cap = j->otoks_cap ? j->otoks_cap * 2 : 16;
        rf_stoken *nb = rf_realloc(j->otoks, (size_t)cap * sizeof *nb);
        if (nb) {
            j->otoks = nb;
            j->otoks_cap = cap;
            j->out.toks = nb;
        } else {
            ok = false;
        }
    }
    if (ok) {
        rf_stoken *t = &j->otoks[j->n_otoks++];
        t->id = r->token;
        t->logprob = r->logprob;
        t->n_top = r->n_top;
        memcpy(t->top_ids, r->top_ids, sizeof t->top_ids);
        memcpy(t->top_logprobs, r->top_logprobs, sizeof t->top_logprobs);
        j->out.n_toks = j->n_otoks;
    }
    pthread_mutex_unlock(&j->mu);
    return ok;
}

static void job_notify(rf_sjob *j) {
    if (j->notify) j->notify(j->notify_ud);
}

/* Ends a job: frees its sequence, publishes the end, wakes the consumer and
 * drops the scheduler's reference. */
static void job_finish(rf_sched *s, rf_sjob *j, rf_sfinish f, const char *msg) {
    if (j->slot >= 0) {
        rf_kv_seq_free(s->kv, j->slot);
        s->slots[j->slot] = NULL;
        j->slot = -1;
    }
    pthread_mutex_lock(&j->mu);
    j->out.done = true;
    j->out.finish = f;
    j->out.t_end = rf_time_now();
    if (msg) {
        snprintf(j->errmsg, sizeof j->errmsg, "%s", msg);
        j->out.error = j->errmsg;
    }
    pthread_mutex_unlock(&j->mu);
    job_notify(j);
    atomic_fetch_sub(&s->active, 1);
    rf_sjob_release(j);
}

/* The held tail at a natural end: an incomplete UTF-8 character and text
 * that looked like the start of a stop string but never completed one. */
static void job_flush_text(rf_sjob *j) {
    size_t np = rf_detok_flush(&j->dt, j->piece, j->piece_cap);
    bool hit = false;
    if (np) {
        size_t safe = rf_stop_push(&j->stop, j->piece, np, &hit);
        out_text(j, rf_stop_text(&j->stop), safe);
        rf_stop_consume(&j->stop, safe);
    }
    if (!hit && j->stop.len) {
        out_text(j, rf_stop_text(&j->stop), j->stop.len);
        rf_stop_consume(&j->stop, j->stop.len);
    }
}

/* ---- queue (scheduler thread) --------------------------------------------- */

static void slog(rf_sched *s, rf_log_level lvl, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s->log) s->log(s->log_ud, lvl, msg);
    else rf_log(lvl, "sched: %s", msg);
}

static void wait_push_back(rf_sched *s, rf_sjob *j) {
    j->next = NULL;
    if (s->wait_tail) s->wait_tail->next = j;
    else s->wait_head = j;
    s->wait_tail = j;
}

static void wait_push_front(rf_sched *s, rf_sjob *j) {
    j->next = s->wait_head;
    s->wait_head = j;
    if (!s->wait_tail) s->wait_tail = j;
}

static rf_sjob *wait_pop(rf_sched *s) {
    rf_sjob *j = s->wait_head;
    if (j) {
        s->wait_head = j->next;
        if (!s->wait_head) s->wait_tail = NULL;
        j->next = NULL;
    }
    return j;
}

rf_submit rf_sched_submit(rf_sched *s, rf_sjob *j) {
    pthread_mutex_lock(&s->mu);
    rf_submit r = RF_SUBMIT_OK;
    if (s->stopping) r = RF_SUBMIT_STOPPING;
    else if (atomic_load(&s->queued) >= s->max_queue) r = RF_SUBMIT_QUEUE_FULL;
    if (r == RF_SUBMIT_OK) {
        atomic_fetch_add(&j->refs, 1);
        atomic_fetch_add(&s->queued, 1);
        atomic_fetch_add(&s->active, 1);
        j->next = NULL;
        if (s->in_tail) s->in_tail->next = j;
        else s->in_head = j;
        s->in_tail = j;
        s->st.queued = atomic_load(&s->queued);
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* ---- one step ---------------------------------------------------------------- */

static int64_t n_running(const rf_sched *s) {
    int64_t n = 0;
    for (int i = 0; i < s->n_seq; i++) n += s->slots[i] != NULL;
    return n;
}

/* Cancelled and expired jobs, running or waiting, end here. */
static void reap(rf_sched *s, bool drain_over) {
    double now = rf_time_now();
    for (int i = 0; i < s->n_seq; i++) {
        rf_sjob *j = s->slots[i];
        if (!j) continue;
        if (atomic_load(&j->cancel)) job_finish(s, j, RF_SF_CANCEL, NULL);
        else if ((j->deadline > 0 && now >= j->deadline) || drain_over) {
            if (!j->embedding) job_flush_text(j);
            job_finish(s, j, j->embedding ? RF_SF_SHUTDOWN : RF_SF_LENGTH, NULL);
        }
    }
    rf_sjob **pp = &s->wait_head, *prev = NULL;
    while (*pp) {
        rf_sjob *j = *pp;
        rf_sfinish f = atomic_load(&j->cancel) ? RF_SF_CANCEL
                       : drain_over ? RF_SF_SHUTDOWN
                       : (j->deadline > 0 && now >= j->deadline) ? RF_SF_TIMEOUT
                       : RF_SF_NONE;
        if (f == RF_SF_NONE) { prev = j; pp = &j->next; continue; }
        *pp = j->next;
        if (s->wait_tail == j) s->wait_tail = prev;
        atomic_fetch_sub(&s->queued, 1);
        /* a pre-empted job already produced text: it ends like a running one */
        if (f == RF_SF_SHUTDOWN && j->n_toks > j->n_prompt) {
            job_flush_text(j);
            f = RF_SF_LENGTH;
        }
        job_finish(s, j, f, NULL);
    }
}

static int64_t blocks_for(const rf_sched *s, int64_t n_pos) { return (n_pos + s->block_size - 1) / s->block_size; }

/* Admits waiting jobs in order while a slot is free and the block pool can
 * hold their prompt plus one block of growth for every running sequence. */
static void admit(rf_sched *s) {
    while (s->wait_head) {
        int slot = -1;
        for (int i = 0; i < s->n_seq && slot < 0; i++)
            if (!s->slots[i]) slot = i;
        if (slot < 0) return;
        rf_sjob *j = s->wait_head;
        int64_t running = n_running(s);
        int64_t have = j->embedding ? 0 : rf_kv_seq_attach_prefix(s->kv, slot, j->toks, j->n_toks);
        rf_kv_stats ks = rf_kv_get_stats(s->kv);
        int64_t need = blocks_for(s, j->n_toks + 1) - have / s->block_size;
        int64_t avail = ks.blocks_total - ks.blocks_used;
        if (need + running > avail) {
            rf_kv_seq_free(s->kv, slot);
            if (running > 0) return; /* wait for blocks to come back */
            wait_pop(s);
            atomic_fetch_sub(&s->queued, 1);
            char msg[160];
            snprintf(msg, sizeof msg, "the request needs %lld KV blocks; the pool has %lld",
                     (long long)blocks_for(s, j->n_toks + 1), (long long)ks.blocks_total);
            job_finish(s, j, RF_SF_ERROR, msg);
            continue;
        }
        wait_pop(s);
        atomic_fetch_sub(&s->queued, 1);
        j->slot = slot;
        j->n_past = have;
        j->seqno = ++s->seqno;
        s->slots[slot] = j;
        pthread_mutex_lock(&j->mu);
        if (j->out.t_start == 0) {
            j->out.t_start = rf_time_now();
            j->out.n_cached = have;
        }
        pthread_mutex_unlock(&j->mu);
        pthread_mutex_lock(&s->mu);
        s->st.prompt_tokens += (uint64_t)(j->n_toks - have);
        pthread_mutex_unlock(&s->mu);
    }
}

/* Frees the youngest running sequence and puts it back at the head of the
 * queue (everything it generated stays in its token list and is recomputed
 * on re-admission). Returns false when `keep` is the only running one. */
static bool preempt(rf_sched *s) {
    rf_sjob *y = NULL;
    for (int i = 0; i < s->n_seq; i++)
        if (s->slots[i] && (!y || s->slots[i]->seqno > y->seqno)) y = s->slots[i];
    if (!y || n_running(s) < 2) return false;
    rf_kv_seq_free(s->kv, y->slot);
    s->slots[y->slot] = NULL;
    y->slot = -1;
    y->n_past = 0;
    y->committed = false;
    if (y->embedding) memset(y->embd_acc, 0, (size_t)s->n_embd * sizeof(double));
    wait_push_front(s, y);
    atomic_fetch_add(&s->queued, 1);
    pthread_mutex_lock(&s->mu);
    s->st.preemptions++;
    pthread_mutex_unlock(&s->mu);
    slog(s, RF_LOG_INFO, "KV pool exhausted: pre-empted the youngest sequence (%lld tokens), re-queued", (long long)y->n_toks);
    return true;
}

/* Removes the logits of tokens the job's grammar cannot take. Returns the
 * number of tokens left. */
static int64_t grammar_mask(rf_sched *s, rf_sjob *j, float *logits) {
    bool acc = rf_jstate_accepting(j->g, &j->js);
    int64_t left = 0;
    size_t head = offsetof(rf_jstate, f) + (size_t)j->js.depth * sizeof(rf_jframe);
    for (int64_t t = 0; t < s->n_vocab; t++) {
        if (logits[t] == -INFINITY) continue;
        uint8_t fl = s->tflag[t];
        bool ok;
        if (fl & TF_EOG) ok = acc;
        else if (fl & TF_SKIP) ok = false;
        else {
            memcpy(&s->scratch, &j->js, head);
            ok = rf_jstate_feed(j->g, &s->scratch, s->tpiece[t], s->tlen[t]);
        }
        if (ok) left++;
        else logits[t] = -INFINITY;
    }
    return left;
}

/* Samples the next token of `j` from its logits row and publishes it. */
static void job_sample(rf_sched *s, rf_sjob *j, float *logits) {
    for (int64_t t = s->n_tok_vocab; t < s->n_vocab; t++) logits[t] = -INFINITY; /* rows with no token */
    if (j->g && grammar_mask(s, j, logits) == 0) {
        job_flush_text(j);
        job_finish(s, j, RF_SF_STOP, NULL);
        return;
    }
    rf_sample_result res;
    int32_t tok = rf_sample(j->smp, logits, j->logprobs ? &res : NULL);
    rf_sampler_accept(j->smp, tok);
    double now = rf_time_now();
    pthread_mutex_lock(&j->mu);
    bool first = j->out.n_gen == 0;
    j->out.n_gen++;
    if (first) j->out.t_first = now;
    double t_submit = j->out.t_submit;
    pthread_mutex_unlock(&j->mu);
    if (s->observe) s->observe(s->observe_ud, first ? RF_OBS_TTFT : RF_OBS_ITL, first ? now - t_submit : now - j->t_last);
    j->t_last = now;
    pthread_mutex_lock(&s->mu);
    s->st.gen_tokens++;
    pthread_mutex_unlock(&s->mu);

    if (s->tflag[tok] & TF_EOG) {
        job_flush_text(j);
        job_finish(s, j, RF_SF_STOP, NULL);
        return;
    }
    if (j->g) rf_jstate_feed(j->g, &j->js, s->tpiece[tok], s->tlen[tok]);
    j->toks[j->n_toks++] = tok;
    bool ok = true, hit = false;
    if (j->logprobs) ok = out_token(j, &res);
    size_t np = 0;
    rf_error err = {0};
    if (rf_detok_push(&j->dt, tok, j->piece, j->piece_cap, &np, &err) != RF_OK) {
        job_finish(s, j, RF_SF_ERROR, err.msg);
        return;
    }
    if (np) {
        size_t safe = rf_stop_push(&j->stop, j->piece, np, &hit);
        ok &= out_text(j, rf_stop_text(&j->stop), safe);
        rf_stop_consume(&j->stop, safe);
    }
    if (!ok) {
        job_finish(s, j, RF_SF_ERROR, "out of memory for the output");
        return;
    }
    if (hit) {
        job_finish(s, j, RF_SF_STOP, NULL);
        return;
    }
    if (j->g && rf_jstate_accepting(j->g, &j->js) && rf_jstate_closed(j->g, &j->js)) {
        job_flush_text(j);
        job_finish(s, j, RF_SF_STOP, NULL);
        return;
    }
    int64_t n_gen = j->n_toks - j->n_prompt;
    if ((j->max_tokens >= 0 && n_gen >= j->max_tokens) || j->n_toks >= s->n_ctx || j->n_toks >= j->cap) {
        job_flush_text(j);
        job_finish(s, j, RF_SF_LENGTH, NULL);
        return;
    }
    job_notify(j);
}

/* Mean of the pooled hidden states, L2-normalised, into the output. */
static void embd_finish(rf_sched *s, rf_sjob *j) {
    double ss = 0;
    for (int64_t i = 0; i < s->n_embd; i++) {
        j->embd_acc[i] /= (double)j->n_toks;
        ss += j->embd_acc[i] * j->embd_acc[i];
    }
    double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
    pthread_mutex_lock(&j->mu);
    for (int64_t i = 0; i < s->n_embd; i++) j->embd[i] = (float)(j->embd_acc[i] * inv);
    j->out.embedding = j->embd;
    j->out.n_embd = s->n_embd;
    pthread_mutex_unlock(&j->mu);
    job_finish(s, j, RF_SF_STOP, NULL);
}

/* Runs one chunk of each embedding job, in its own forward call (hidden
 * states of every token, no logits). */
static void step_embeddings(rf_sched *s) {
    for (int i = 0; i < s->n_seq; i++) {
        rf_sjob *j = s->slots[i];
        if (!j || !j->embedding) continue;
        int64_t k = j->n_toks - j->n_past;
        if (k > s->chunk) k = s->chunk;
        if (k > s->n_batch) k = s->n_batch;
        for (int64_t t = 0; t < k; t++)
            s->batch[t] = (rf_batch_entry){j->slot, (int32_t)(j->n_past + t), j->toks[j->n_past + t], true};
        rf_error err = {0};
        rf_status st = rf_forward(s->ctx, s->batch, k, NULL, s->hidden, &err);
        if (st == RF_E_NOMEM) {
            if (!preempt(s)) job_finish(s, j, RF_SF_ERROR, "the input does not fit the KV block pool");
            return;
        }
        if (st != RF_OK) {
            job_finish(s, j, RF_SF_ERROR, err.msg);
            continue;
        }
        for (int64_t t = 0; t < k; t++)
            for (int64_t e = 0; e < s->n_embd; e++) j->embd_acc[e] += s->hidden[t * s->n_embd + e];
        j->n_past += k;
        if (j->n_past == j->n_toks) embd_finish(s, j);
    }
}

/* Builds and runs one generation batch: each decoding sequence's token,
 * then prefill chunks in admission order up to the chunk budget. */
static void step_generate(rf_sched *s) {
    for (int attempt = 0; attempt <= s->n_seq; attempt++) {
        int64_t n = 0, n_rows = 0, n_fed = 0;
        /* decode first: a long prompt never stalls the others' tokens */
        for (int i = 0; i < s->n_seq; i++) {
            rf_sjob *j = s->slots[i];
            if (!j || j->embedding || j->n_toks - j->n_past != 1) continue;
            s->batch[n++] = (rf_batch_entry){j->slot, (int32_t)j->n_past, j->toks[j->n_past], true};
            s->row_job[n_rows++] = j;
            s->fed_job[n_fed] = j;
            s->fed_n[n_fed++] = 1;
        }
        int64_t budget = s->chunk;
        if (budget > s->n_batch - n) budget = s->n_batch - n;
        for (;;) { /* oldest prefilling sequence first */
            rf_sjob *best = NULL;
            for (int i = 0; i < s->n_seq; i++) {
                rf_sjob *j = s->slots[i];
                if (!j || j->embedding || j->n_toks - j->n_past <= 1) continue;
                bool fed = false;
                for (int64_t f = 0; f < n_fed; f++) fed |= s->fed_job[f] == j;
                if (!fed && (!best || j->seqno < best->seqno)) best = j;
            }
            if (!best || budget <= 0) break;
            int64_t k = best->n_toks - best->n_past;
            if (k > budget) k = budget;
            for (int64_t t = 0; t < k; t++) {
                int64_t pos = best->n_past + t;
                bool last = pos == best->n_toks - 1;
                s->batch[n++] = (rf_batch_entry){best->slot, (int32_t)pos, best->toks[pos], last};
                if (last) s->row_job[n_rows++] = best;
            }
            s->fed_job[n_fed] = best;
            s->fed_n[n_fed++] = k;
            budget -= k;
        }
        if (n == 0) return;
        rf_error err = {0};
        double t0 = rf_time_now();
        /* no logits buffer when no entry asks for logits (a prefill chunk
         * that does not reach the prompt's end); the context's is
         * page-locked where a GPU computes the head */
        if (n_rows && !(s->logits = rf_ctx_logits(s->ctx, s->n_seq))) {
            slog(s, RF_LOG_ERROR, "out of memory for the logits of %d sequences", s->n_seq);
            for (int64_t f = 0; f < n_fed; f++) job_finish(s, s->fed_job[f], RF_SF_ERROR, "out of memory");
            return;
        }
        rf_status st = rf_forward(s->ctx, s->batch, n, n_rows ? s->logits : NULL, NULL, &err);
        if (st == RF_E_NOMEM) {
            if (preempt(s)) continue;
            /* alone and out of blocks: it ends with what it has */
            rf_sjob *j = s->fed_job[0];
            job_flush_text(j);
            job_finish(s, j, RF_SF_LENGTH, NULL);
            return;
        }
        if (st != RF_OK) {
            slog(s, RF_LOG_ERROR, "forward pass failed: %s", err.msg);
            for (int64_t f = 0; f < n_fed; f++) job_finish(s, s->fed_job[f], RF_SF_ERROR, err.msg);
            return;
        }
        if (s->observe) s->observe(s->observe_ud, RF_OBS_STEP, rf_time_now() - t0);
        for (int64_t f = 0; f < n_fed; f++) {
            rf_sjob *j = s->fed_job[f];
            j->n_past += s->fed_n[f];
            if (!j->committed && j->n_past >= j->n_prompt) {
                rf_kv_seq_commit_prefix(s->kv, j->slot, j->toks, j->n_prompt);
                j->committed = true;
            }
        }
        for (int64_t r = 0; r < n_rows; r++) job_sample(s, s->row_job[r], s->logits + r * s->n_vocab);
        return;
    }
}

static void publish_stats(rf_sched *s) {
    rf_kv_stats ks = rf_kv_get_stats(s->kv);
    int64_t run = n_running(s);
    pthread_mutex_lock(&s->mu);
    s->st.queued = atomic_load(&s->queued);
    s->st.running = run;
    s->st.kv_blocks_total = ks.blocks_total;
    s->st.kv_blocks_used = ks.blocks_used;
    s->st.kv_blocks_cached = ks.blocks_cached;
    s->st.prefix_hit_tokens = ks.prefix_hits_tokens;
    s->st.prefix_lookups = ks.prefix_lookups;
    pthread_mutex_unlock(&s->mu);
}

static void *sched_main(void *arg) {
    rf_sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        for (;;) {
            while (s->in_head) { /* incoming -> waiting, in order */
                rf_sjob *j = s->in_head;
                s->in_head = j->next;
                if (!s->in_head) s->in_tail = NULL;
                wait_push_back(s, j);
            }
            bool busy = s->wait_head || n_running(s) > 0;
            if (busy || s->quit) break;
            pthread_cond_broadcast(&s->cv_idle);
            pthread_cond_wait(&s->cv, &s->mu);
        }
        bool quit = s->quit;
        bool drain_over = s->stopping && rf_time_now() >= s->drain_deadline;
        pthread_mutex_unlock(&s->mu);

        reap(s, drain_over || quit);
        if (quit && !s->wait_head && n_running(s) == 0) break;
        admit(s);
        step_generate(s);
        step_embeddings(s);
        pthread_mutex_lock(&s->mu);
        s->st.steps++;
        pthread_mutex_unlock(&s->mu);
        publish_stats(s);
    }
    publish_stats(s);
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv_idle);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- lifetime ----------------------------------------------------------------- */

rf_status rf_sched_create(rf_ctx *ctx, const rf_tokenizer *tok, const rf_sched_opts *o, rf_sched **out,
                          rf_error *err) {
    *out = NULL;
    RF_ASSERT(o && o->n_batch > 0 && o->n_ctx > 0);
    rf_sched *s = rf_calloc(1, sizeof *s);
    if (!s) return rf_error_set(err, RF_E_NOMEM, "out of memory");
    const rf_model *m = rf_ctx_model(ctx);
    const rf_kv_config *kc = rf_kv_get_config(rf_ctx_kv(ctx));
    s->ctx = ctx;
    s->kv = rf_ctx_kv(ctx);
    s->tok = tok;
    s->n_seq = kc->n_seq;
    s->block_size = kc->block_size;
    s->n_ctx = kc->max_blocks_per_seq * kc->block_size;
    s->n_vocab = m->hp.n_vocab;
    s->n_tok_vocab = rf_tokenizer_n_vocab(tok);
    s->n_embd = m->hp.n_embd;
    s->chunk = o->prefill_chunk > 0 ? o->prefill_chunk : 256;
    s->max_queue = o->max_queue > 0 ? o->max_queue : 64;
    s->observe = o->observe;
    s->observe_ud = o->observe_ud;
    s->log = o->log;
    s->log_ud = o->log_ud;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->cv_idle, NULL);
    atomic_init(&s->queued, 0);
    atomic_init(&s->active, 0);
    s->st.slots = s->n_seq;
    s->n_batch = o->n_batch;
    if (o->n_ctx < s->n_ctx) s->n_ctx = o->n_ctx;
    s->slots = rf_calloc((size_t)s->n_seq, sizeof *s->slots);
    s->row_job = rf_calloc((size_t)s->n_seq, sizeof *s->row_job);
    s->fed_job = rf_calloc((size_t)s->n_seq, sizeof *s->fed_job);
    s->fed_n = rf_calloc((size_t)s->n_seq, sizeof *s->fed_n);
    s->batch = rf_malloc((size_t)s->n_batch * sizeof *s->batch);
    s->hidden = rf_malloc((size_t)s->n_batch * (size_t)s->n_embd * sizeof(float));
    s->tpiece = rf_calloc((size_t)s->n_vocab, sizeof *s->tpiece);
    s->tlen = rf_calloc((size_t)s->n_vocab, sizeof *s->tlen);
    s->tflag = rf_calloc((size_t)s->n_vocab, sizeof *s->tflag);
    if (!s->slots || !s->row_job || !s->fed_job || !s->fed_n || !s->batch || !s->hidden ||
        !s->tpiece || !s->tlen || !s->tflag) {
        rf_sched_free(s);
        return rf_error_set(err, RF_E_NOMEM, "scheduler: out of memory");
    }
    /* what each token writes, for grammar masks: control and unknown
     * tokens write nothing (the detokenizer skips them), so a grammar
     * never takes them; end-of-generation ids end the document */
    for (int64_t t = 0; t < s->n_vocab; t++) {
        if (t >= s->n_tok_vocab) { s->tflag[t] = TF_SKIP; continue; }
        size_t len = 0;
        const char *p = rf_token_piece(tok, (int32_t)t, &len);
        rf_tok_attr a = rf_token_attr(tok, (int32_t)t);
        s->tpiece[t] = p ? p : "";
        s->tlen[t] = (uint32_t)len;
        if (rf_token_is_eog(tok, (int32_t)t)) s->tflag[t] = TF_EOG;
        else if (!p || len == 0 || a == RF_TOKEN_CONTROL || a == RF_TOKEN_UNKNOWN || a == RF_TOKEN_UNUSED) s->tflag[t] = TF_SKIP;
    }
    if (pthread_create(&s->th, NULL, sched_main, s) != 0) {
        rf_sched_free(s);
        return rf_error_set(err, RF_E_NOMEM, "scheduler: cannot start its thread");
    }
    s->th_started = true;
    publish_stats(s);
    *out = s;
    return RF_OK;
}

void rf_sched_free(rf_sched *s) {
    if (!s) return;
    if (s->th_started) {
        pthread_mutex_lock(&s->mu);
        s->quit = true;
        s->stopping = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th, NULL);
    }
    rf_free(s->slots);
    rf_free(s->row_job);
    rf_free(s->fed_job);
    rf_free(s->fed_n);
    rf_free(s->batch);
    rf_free(s->hidden);
    rf_free((void *)s->tpiece);
    rf_free(s->tlen);
    rf_free(s->tflag);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->cv_idle);
    rf_free(s);
}

void rf_sched_drain(rf_sched *s, double grace_s) {
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    s->drain_deadline = rf_time_now() + (grace_s > 0 ? grace_s : 0);
    pthread_cond_signal(&s->cv);
    for (;;) {
        if (atomic_load(&s->active) == 0) break;
        /* the thread re-checks the deadline only between steps; poke it */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_signal(&s->cv);
        pthread_cond_timedwait(&s->cv_idle, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
}

rf_sched_stats rf_sched_get_stats(rf_sched *s) {
    pthread_mutex_lock(&s->mu);
    rf_sched_stats st = s->st;
    pthread_mutex_unlock(&s->mu);
    return st;
}

int64_t rf_sched_n_ctx(const rf_sched *s) { return s->n_ctx; }
int64_t rf_sched_n_vocab(const rf_sched *s) { return s->n_tok_vocab; }
