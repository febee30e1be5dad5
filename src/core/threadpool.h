/*
 * threadpool.h - a persistent pool of worker threads.
 *
 * Threads are created once; rf_threadpool_run() hands every thread (the caller
 * included, as thread 0) the same function with its index, and returns when
 * all are done. No thread is created per call.
 */
#ifndef RF_THREADPOOL_H
#define RF_THREADPOOL_H

#include "core.h"

typedef struct rf_threadpool rf_threadpool;

/* fn(ctx, ith, nth): ith in [0, nth). */
typedef void (*rf_task_fn)(void *ctx, int ith, int nth);

/* n_threads >= 1 (the caller counts as one). Returns NULL on failure. */
rf_threadpool *rf_threadpool_create(int n_threads);
void rf_threadpool_free(rf_threadpool *tp); /* accepts NULL */
int rf_threadpool_size(const rf_threadpool *tp);
/* Runs fn on all threads and waits. Not reentrant. */
void rf_threadpool_run(rf_threadpool *tp, rf_task_fn fn, void *ctx);

/* Number of physical cores (best effort; at least 1). */
int rf_cpu_physical_cores(void);

#endif
