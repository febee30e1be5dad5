/*
 * threadpool.c - persistent worker threads woken per job through a
 * generation counter under one mutex/condvar pair. Simple and correct; the
 * spin-then-sleep barrier the CPU backend needs lands with the speed work.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct rf_threadpool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    uint64_t generation; /* bumped per job */
    int pending;         /* workers still running the current job */
    bool quit;
    rf_task_fn fn;
    void *ctx;
};

typedef struct worker_arg {
    rf_threadpool *tp;
    int ith;
} worker_arg;

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    rf_free(p);
    rf_threadpool *tp = wa.tp;
    uint64_t seen = 0;
    pthread_mutex_lock(&tp->mu);
    for (;;) {
        while (!tp->quit && tp->generation == seen) pthread_cond_wait(&tp->wake, &tp->mu);
        if (tp->quit) break;
        seen = tp->generation;
        rf_task_fn fn = tp->fn;
        void *ctx = tp->ctx;
        pthread_mutex_unlock(&tp->mu);
        fn(ctx, wa.ith, tp->n);
        pthread_mutex_lock(&tp->mu);
        if (--tp->pending == 0) pthread_cond_signal(&tp->done);
    }
    pthread_mutex_unlock(&tp->mu);
    return NULL;
}

rf_threadpool *rf_threadpool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    rf_threadpool *tp = rf_calloc(1, sizeof *tp);
    if (!tp) return NULL;
    tp->n = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->wake, NULL);
    pthread_cond_init(&tp->done, NULL);
    tp->threads = rf_calloc((size_t)n_threads, sizeof(pthread_t));
    if (!tp->threads) goto fail;
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = rf_malloc(sizeof *wa);
        if (!wa) goto fail_started;
        wa->tp = tp;
        wa->ith = i;
        if (pthread_create(&tp->threads[i], NULL, worker_main, wa) != 0) {
            rf_free(wa);
            goto fail_started;
        }
        continue;
    fail_started:
        tp->n = i; /* threads 1..i-1 exist */
        rf_threadpool_free(tp);
        return NULL;
    }
    return tp;
fail:
    rf_free(tp->threads);
    rf_free(tp);
    return NULL;
}

void rf_threadpool_free(rf_threadpool *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    tp->quit = true;
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++) pthread_join(tp->threads[i], NULL);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->wake);
    pthread_cond_destroy(&tp->done);
    rf_free(tp->threads);
    rf_free(tp);
}

int rf_threadpool_size(const rf_threadpool *tp) { return tp ? tp->n : 1; }

void rf_threadpool_run(rf_threadpool *tp, rf_task_fn fn, void *ctx) {
    if (!tp || tp->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&tp->mu);
    tp->fn = fn;
    tp->ctx = ctx;
    tp->pending = tp->n - 1;
    tp->generation++;
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);
    fn(ctx, 0, tp->n);
    pthread_mutex_lock(&tp->mu);
    while (tp->pending > 0) pthread_cond_wait(&tp->done, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
}

int rf_cpu_physical_cores(void) {
    /* Count distinct (physical id, core id) pairs in /proc/cpuinfo. */
    FILE *f = fopen("/proc/cpuinfo", "r");
    long logical = sysconf(_SC_NPROCESSORS_ONLN);
    if (logical < 1) logical = 1;
    if (!f) return (int)logical;
    char line[256];
    int phys = -1, n = 0;
    int seen[1024][2];
    while (fgets(line, sizeof line, f)) {
        int v;
        if (sscanf(line, "physical id : %d", &v) == 1) phys = v;
        else if (sscanf(line, "core id : %d", &v) == 1) {
            bool dup = false;
            for (int i = 0; i < n; i++)
                if (seen[i][0] == phys && seen[i][1] == v) dup = true;
            if (!dup && n < 1024) { seen[n][0] = phys; seen[n][1] = v; n++; }
        }
    }
    fclose(f);
    return n > 0 && n <= logical ? n : (int)logical;
}
