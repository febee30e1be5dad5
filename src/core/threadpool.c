/*
 * threadpool.c - persistent worker threads woken per job through a
 * generation counter, spin-then-sleep.
 *
 * A forward pass hands the pool a few hundred short jobs per token; waking a
 * sleeping thread through the kernel costs tens of microseconds each time,
 * which adds up to a real share of a decode step. So a worker that finished
 * a job spins on the generation counter for a while (RF_TP_SPIN_NS) before
 * it sleeps on the condition variable, and the caller spins the same way
 * for the last worker to finish. The mutex/condvar pair is only the slow
 * path: a sleeper registers under the mutex and re-checks the counter
 * there, and the waker always takes the mutex before broadcasting, so a
 * wake-up cannot be lost between the check and the wait.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax(void) { _mm_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax(void) { __asm__ volatile("yield"); }
#else
static inline void cpu_relax(void) {}
#endif

/* How long a thread spins before it sleeps: a little longer than the gap
 * between two ops of a decode step, much shorter than a human notices. */
#define RF_TP_SPIN_NS 200000

struct rf_threadpool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    /* the two counters every thread polls sit on their own cache lines
     * (padding, not _Alignas: the pool comes from rf_calloc) */
    char pad0[64];
    atomic_uint_fast64_t generation; /* bumped per job */
    char pad1[64];
    atomic_int pending;              /* workers still running the current job */
    char pad2[64];
    atomic_int sleepers;                          /* workers waiting on `wake` */
    atomic_bool caller_sleeping;
    bool quit;
    rf_task_fn fn;
    void *ctx;
};

typedef struct worker_arg {
    rf_threadpool *tp;
    int ith;
} worker_arg;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spins until *gen != seen or the spin budget is spent; returns the value. */
static uint64_t spin_for_change(atomic_uint_fast64_t *gen, uint64_t seen) {
    uint64_t g = atomic_load_explicit(gen, memory_order_acquire);
    if (g != seen) return g;
    const uint64_t t0 = now_ns();
    for (unsigned i = 1;; i++) {
        cpu_relax();
        g = atomic_load_explicit(gen, memory_order_acquire);
        if (g != seen) return g;
        if ((i & 255) == 0 && now_ns() - t0 > RF_TP_SPIN_NS) return g;
    }
}

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    rf_free(p);
    rf_threadpool *tp = wa.tp;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = spin_for_change(&tp->generation, seen);
        if (g == seen) {
            pthread_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->sleepers, 1);
            while ((g = atomic_load(&tp->generation)) == seen) pthread_cond_wait(&tp->wake, &tp->mu);
            atomic_fetch_sub(&tp->sleepers, 1);
            pthread_mutex_unlock(&tp->mu);
        }
        seen = g;
        /* fn and ctx were written before the generation bump (release) */
        rf_task_fn fn = tp->fn;
        void *ctx = tp->ctx;
        if (tp->quit) break;
        fn(ctx, wa.ith, tp->n);
        if (atomic_fetch_sub(&tp->pending, 1) == 1 && /* seq_cst: pairs with caller_sleeping */
            atomic_load(&tp->caller_sleeping)) {
            pthread_mutex_lock(&tp->mu);
            pthread_cond_signal(&tp->done);
            pthread_mutex_unlock(&tp->mu);
        }
    }
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
    atomic_init(&tp->generation, 0);
    atomic_init(&tp->pending, 0);
    atomic_init(&tp->sleepers, 0);
    atomic_init(&tp->caller_sleeping, false);
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

/* Publishes a job: fn/ctx first, then the generation, then wakes sleepers
 * under the mutex. Both the bump here and a worker's registration as a
 * sleeper are sequentially consistent, and the worker re-checks the
 * generation after registering: either it sees the new job, or we see it
 * registered and broadcast (after it waits: it holds the mutex until then). */
static void publish(rf_threadpool *tp) {
    atomic_fetch_add(&tp->generation, 1);
    if (atomic_load(&tp->sleepers) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->wake);
        pthread_mutex_unlock(&tp->mu);
    }
}

void rf_threadpool_free(rf_threadpool *tp) {
    if (!tp) return;
    tp->quit = true;
    publish(tp);
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
    tp->fn = fn;
    tp->ctx = ctx;
    atomic_store_explicit(&tp->pending, tp->n - 1, memory_order_relaxed);
    publish(tp);
    fn(ctx, 0, tp->n);
    /* spin for the workers, then sleep */
    if (atomic_load_explicit(&tp->pending, memory_order_acquire) == 0) return;
    const uint64_t t0 = now_ns();
    for (unsigned i = 1;; i++) {
        cpu_relax();
        if (atomic_load_explicit(&tp->pending, memory_order_acquire) == 0) return;
        if ((i & 255) == 0 && now_ns() - t0 > RF_TP_SPIN_NS) break;
    }
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->caller_sleeping, true);
    while (atomic_load(&tp->pending) > 0) pthread_cond_wait(&tp->done, &tp->mu);
    atomic_store(&tp->caller_sleeping, false);
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
