/*
 * core.h - status/error helpers, always-on assertions, logging, the counting
 * allocator (with fault injection for tests) and small numeric helpers that
 * every module uses. Nothing here knows about models.
 */
#ifndef RF_CORE_H
#define RF_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rocmforge.h"

/* ---- errors ------------------------------------------------------------ */

/* An error report: the status plus a human message naming what and where.
 * Functions that take an `rf_error *err` accept NULL (no message wanted). */
typedef struct rf_error {
    rf_status code;
    char msg[512];
} rf_error;

/* Fills err (if not NULL) and returns `code`, so callers can write
 * `return rf_error_set(err, RF_E_FORMAT, "bad magic at offset %d", 0);` */
rf_status rf_error_set(rf_error *err, rf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Programmer errors: always on, also in release builds. */
#define RF_ASSERT(cond)                                                    \
    do {                                                                   \
        if (!(cond)) rf_assert_fail(#cond, __FILE__, __LINE__);            \
    } while (0)
_Noreturn void rf_assert_fail(const char *expr, const char *file, int line);

#define RF_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- logging ----------------------------------------------------------- */

typedef enum rf_log_level {
    RF_LOG_DEBUG = 0,
    RF_LOG_INFO  = 1,
    RF_LOG_WARN  = 2,
    RF_LOG_ERROR = 3,
    RF_LOG_NONE  = 4,
} rf_log_level;

void rf_log_set_level(rf_log_level lvl);
rf_log_level rf_log_get_level(void);
/* Writes one line to stderr ("rocmforge: warn: ..."); thread-safe. */
void rf_log(rf_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define RF_LOGD(...) rf_log(RF_LOG_DEBUG, __VA_ARGS__)
#define RF_LOGI(...) rf_log(RF_LOG_INFO, __VA_ARGS__)
#define RF_LOGW(...) rf_log(RF_LOG_WARN, __VA_ARGS__)
#define RF_LOGE(...) rf_log(RF_LOG_ERROR, __VA_ARGS__)

/* ---- memory ------------------------------------------------------------ */

/* The one allocator. Counts live bytes and calls; returns NULL on failure
 * (never aborts). rf_free(NULL) is a no-op. Sizes are checked for overflow. */
void *rf_malloc(size_t n);
void *rf_calloc(size_t count, size_t size);
void *rf_realloc(void *p, size_t n);
void rf_free(void *p);
char *rf_strndup(const char *s, size_t n); /* NUL-terminated copy; caller frees */

typedef struct rf_alloc_stats {
    size_t live_bytes;
    size_t peak_bytes;
    uint64_t n_alloc;
    uint64_t n_free;
} rf_alloc_stats;
rf_alloc_stats rf_alloc_get_stats(void);

/* Fault injection (tests): after `n` more successful allocations every
 * allocation fails. n < 0 disables injection. */
void rf_alloc_fail_after(long n);

/* ---- numeric helpers --------------------------------------------------- */

/* IEEE half <-> float. fp32->fp16 rounds to nearest even like numpy's
 * astype(np.float16); NaN stays NaN, overflow becomes inf. */
float rf_fp16_to_fp32(uint16_t h);
uint16_t rf_fp32_to_fp16(float f);
/* bfloat16: the top half of a float; fp32->bf16 rounds to nearest even and
 * keeps NaN quiet, as the gguf package does. */
float rf_bf16_to_fp32(uint16_t h);
uint16_t rf_fp32_to_bf16(float f);

/* Overflow-checked arithmetic: return false on overflow. */
static inline bool rf_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool rf_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* Monotonic time in seconds. */
double rf_time_now(void);

#endif /* RF_CORE_H */
