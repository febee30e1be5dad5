/*
 * metrics.c - the counters and histograms behind GET /metrics, rendered in
 * the Prometheus text exposition format (version 0.0.4): requests by
 * endpoint and status, request duration, time to first token, inter-token
 * latency and forward-step time histograms, and the scheduler's gauges and
 * counters (queue depth, running sequences, KV blocks, prefix cache,
 * tokens, pre-emptions).
 */
#include "server-impl.h"

#include <string.h>

static const double ttft_bounds[] = {0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
static const double itl_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
static const double step_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double dur_bounds[] = {0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

static void hist_init(srv_hist *h, const double *b, int n) {
    RF_ASSERT(n <= M_BUCKETS);
    memset(h, 0, sizeof *h);
    h->bounds = b;
    h->n = n;
}

static void hist_add(srv_hist *h, double v) {
    for (int i = 0; i < h->n; i++)
        if (v <= h->bounds[i]) {
            h->counts[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

void metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    hist_init(&m->d.ttft, ttft_bounds, (int)RF_ARRAY_LEN(ttft_bounds));
    hist_init(&m->d.itl, itl_bounds, (int)RF_ARRAY_LEN(itl_bounds));
    hist_init(&m->d.step, step_bounds, (int)RF_ARRAY_LEN(step_bounds));
    hist_init(&m->d.duration, dur_bounds, (int)RF_ARRAY_LEN(dur_bounds));
}

void metrics_free(srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

void metrics_request(srv_metrics *m, int ep, int status, double seconds) {
    if (ep < 0 || ep >= srv_route_count()) ep = srv_route_count(); /* "other" */
    pthread_mutex_lock(&m->mu);
    srv_metrics_data *d = &m->d;
    hist_add(&d->duration, seconds);
    int i = 0;
    while (i < d->n_req && !(d->req[i].ep == ep && d->req[i].status == status)) i++;
    if (i == d->n_req && d->n_req < (int)RF_ARRAY_LEN(d->req)) {
        d->req[i].ep = ep;
        d->req[i].status = status;
        d->req[i].n = 0;
        d->n_req++;
    }
    if (i < d->n_req) d->req[i].n++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_observe(void *ud, rf_sched_obs what, double seconds) {
    srv_metrics *m = ud;
    pthread_mutex_lock(&m->mu);
    srv_hist *h = what == RF_OBS_TTFT ? &m->d.ttft : what == RF_OBS_ITL ? &m->d.itl : &m->d.step;
    hist_add(h, seconds);
    pthread_mutex_unlock(&m->mu);
}

static void sched_log(void *ud, rf_log_level lvl, const char *msg) { srv_log(ud, lvl, NULL, "sched: %s", msg); }

void rf_server_sched_opts(rf_server *srv, rf_sched_opts *o) {
    o->observe = metrics_observe;
    o->observe_ud = &srv->metrics;
    o->log = sched_log;
    o->log_ud = srv;
}

static void head(srv_buf *b, const char *name, const char *type, const char *help) {
    sbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void hist_render(srv_buf *b, const char *name, const char *help, const srv_hist *h) {
    head(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->counts[i];
        sbuf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    sbuf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    sbuf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

static void gauge(srv_buf *b, const char *name, const char *help, double v) {
    head(b, name, "gauge", help);
    sbuf_printf(b, "%s %.17g\n", name, v);
}

static void counter(srv_buf *b, const char *name, const char *help, uint64_t v) {
    head(b, name, "counter", help);
    sbuf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void metrics_render(rf_server *srv, srv_buf *b) {
    srv_metrics *m = &srv->metrics;
    pthread_mutex_lock(&m->mu);
    srv_metrics_data c = m->d; /* a consistent snapshot, rendered unlocked */
    pthread_mutex_unlock(&m->mu);

    head(b, "rocmforge_build_info", "gauge", "Version of the running server.");
    sbuf_printf(b, "rocmforge_build_info{version=\"%s\"} 1\n", rf_version());
    gauge(b, "rocmforge_model_loaded", "1 once the model is loaded and requests are served.", atomic_load(&srv->ready) ? 1 : 0);
    head(b, "rocmforge_http_requests_total", "counter", "HTTP requests answered, by endpoint and status.");
    for (int i = 0; i < c.n_req; i++)
        sbuf_printf(b, "rocmforge_http_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", srv_route_label(c.req[i].ep),
                    c.req[i].status, (unsigned long long)c.req[i].n);
    hist_render(b, "rocmforge_http_request_duration_seconds", "Time from the request's arrival to its completion.", &c.duration);
    hist_render(b, "rocmforge_time_to_first_token_seconds", "Time from submission to the first generated token.", &c.ttft);
    hist_render(b, "rocmforge_inter_token_latency_seconds", "Time between two generated tokens of one sequence.", &c.itl);
    hist_render(b, "rocmforge_forward_step_seconds", "Time of one batched forward pass.", &c.step);

    if (srv->sched) {
        rf_sched_stats st = rf_sched_get_stats(srv->sched);
        gauge(b, "rocmforge_queue_depth", "Requests waiting for a sequence slot.", (double)st.queued);
        gauge(b, "rocmforge_running_sequences", "Sequences holding a slot (prefill or decode).", (double)st.running);
        gauge(b, "rocmforge_sequence_slots", "Sequence slots (--parallel).", (double)st.slots);
        gauge(b, "rocmforge_kv_blocks_capacity", "KV cache blocks in the pool.", (double)st.kv_blocks_total);
        gauge(b, "rocmforge_kv_blocks_used", "KV cache blocks referenced by a sequence.", (double)st.kv_blocks_used);
        gauge(b, "rocmforge_kv_blocks_free", "KV cache blocks not referenced by any sequence.",
              (double)(st.kv_blocks_total - st.kv_blocks_used));
        gauge(b, "rocmforge_kv_blocks_cached", "Free KV blocks that still hold a reusable prompt prefix.", (double)st.kv_blocks_cached);
        counter(b, "rocmforge_prefix_cache_hit_tokens_total", "Prompt tokens served from the prefix cache.", st.prefix_hit_tokens);
        counter(b, "rocmforge_prefix_cache_lookups_total", "Prefix cache lookups (one per admitted sequence).", st.prefix_lookups);
        counter(b, "rocmforge_prompt_tokens_total", "Prompt tokens computed (prefix-cache hits excluded).", st.prompt_tokens);
        counter(b, "rocmforge_generation_tokens_total", "Tokens generated.", st.gen_tokens);
        counter(b, "rocmforge_preemptions_total", "Sequences pre-empted because the KV pool ran out.", st.preemptions);
        counter(b, "rocmforge_scheduler_steps_total", "Scheduler steps (forward passes).", st.steps);
    }
}
