/*
 * cpu.h - the CPU backend: fills the op table of backend.h with scalar
 * reference code spread over a persistent thread pool.
 */
#ifndef RF_CPU_H
#define RF_CPU_H

#include "backend/backend.h"
#include "core/threadpool.h"

/* Creates a CPU backend running on `tp` (borrowed; must outlive it). */
rf_status rf_cpu_backend_create(rf_threadpool *tp, rf_backend *out, rf_error *err);
void rf_cpu_backend_free(rf_backend *b);

#endif
