/*
 * trace.c - per-op timings of the CPU backend as Chrome trace JSON (load the
 * file in chrome://tracing or https://ui.perfetto.dev): one complete event
 * ("ph": "X") per op call with its wall time on the calling thread (pool
 * wake-up and waiting included) and as args the op's weight type, shape,
 * tokens, bytes of weights or cache read, layer (attention) and forward
 * pass. Events go into a buffer sized once when tracing starts; the file is
 * written when the trace is closed (the backend is freed). Events past the
 * buffer are counted and reported, not stored.
 */
#include <stdio.h>
#include <string.h>

#include "cpu-impl.h"

enum { TRACE_CAP = 1 << 18 };

typedef struct trace_ev {
    const char *op, *type, *path; /* static strings */
    double t0, t1;
    int64_t rows, cols, n_tok;
    uint64_t bytes;
    int32_t layer, pass;
} trace_ev;

struct rf_cpu_trace {
    char *path;
    char backend[32];
    trace_ev *ev;
    size_t n, dropped;
    double origin;
    int32_t pass;
};

rf_cpu_trace *rf_cpu_trace_open(const char *path, const char *backend) {
    rf_cpu_trace *t = rf_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->path = rf_strndup(path, strlen(path));
    t->ev = rf_malloc(TRACE_CAP * sizeof *t->ev);
    if (!t->path || !t->ev) {
        rf_free(t->path);
        rf_free(t->ev);
        rf_free(t);
        return NULL;
    }
    snprintf(t->backend, sizeof t->backend, "cpu/%s", backend);
    t->origin = rf_time_now();
    return t;
}

void rf_cpu_trace_pass(rf_cpu_trace *t) {
    if (t) t->pass++;
}

void rf_cpu_trace_event(rf_cpu_trace *t, const char *op, const char *type, const char *path, double t0, double t1,
                        int64_t rows, int64_t cols, int64_t n_tok, uint64_t bytes, int32_t layer) {
    if (!t) return;
    if (t->n == TRACE_CAP) {
        t->dropped++;
        return;
    }
    t->ev[t->n++] = (trace_ev){op, type, path, t0, t1, rows, cols, n_tok, bytes, layer, t->pass};
}

/* Writes the JSON and frees the trace; accepts NULL. */
void rf_cpu_trace_close(rf_cpu_trace *t) {
    if (!t) return;
    FILE *f = fopen(t->path, "w");
    if (!f) {
        RF_LOGE("trace: cannot write %s", t->path);
    } else {
        fprintf(f, "{\"displayTimeUnit\": \"ms\", \"otherData\": {\"backend\": \"%s\", \"dropped_events\": %zu},\n"
                   " \"traceEvents\": [\n", t->backend, t->dropped);
        for (size_t i = 0; i < t->n; i++) {
            const trace_ev *e = &t->ev[i];
            fprintf(f,
                    "  {\"name\": \"%s\", \"cat\": \"%s\", \"ph\": \"X\", \"pid\": 1, \"tid\": 1, \"ts\": %.3f, "
                    "\"dur\": %.3f, \"args\": {\"backend\": \"%s\", \"type\": \"%s\", \"path\": \"%s\", "
                    "\"rows\": %lld, \"cols\": %lld, \"n_tok\": %lld, \"bytes\": %llu, \"layer\": %d, \"pass\": %d}}%s\n",
                    e->op, e->op, (e->t0 - t->origin) * 1e6, (e->t1 - e->t0) * 1e6, t->backend, e->type, e->path,
                    (long long)e->rows, (long long)e->cols, (long long)e->n_tok, (unsigned long long)e->bytes,
                    e->layer, e->pass, i + 1 < t->n ? "," : "");
        }
        fprintf(f, " ]}\n");
        if (fclose(f) != 0) RF_LOGE("trace: error writing %s", t->path);
        else RF_LOGI("trace: %zu events written to %s%s", t->n, t->path, t->dropped ? " (buffer full, later events dropped)" : "");
    }
    rf_free(t->path);
    rf_free(t->ev);
    rf_free(t);
}
