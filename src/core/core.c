/*
 * core.c - status strings, error reports, assertions, logging, the counting
 * allocator with fault injection, and float16/bfloat16 conversion.
 */
#include "core.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- status and errors ------------------------------------------------- */

const char *rf_status_str(rf_status st) {
    switch (st) {
    case RF_OK: return "ok";
    case RF_E_INVAL: return "invalid argument";
    case RF_E_NOMEM: return "out of memory";
    case RF_E_IO: return "i/o error";
    case RF_E_FORMAT: return "malformed input";
    case RF_E_UNSUPPORTED: return "unsupported";
    case RF_E_RANGE: return "out of range";
    case RF_E_NOTFOUND: return "not found";
    }
    return "unknown status";
}

const char *rf_version(void) { return RF_VERSION_STRING; }

rf_status rf_error_set(rf_error *err, rf_status code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void rf_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "rocmforge: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}

/* ---- logging ----------------------------------------------------------- */

static _Atomic int g_log_level = RF_LOG_INFO;
static pthread_mutex_t g_log_mutex = PTHREAD_MUTEX_INITIALIZER;

void rf_log_set_level(rf_log_level lvl) { atomic_store(&g_log_level, (int)lvl); }
rf_log_level rf_log_get_level(void) { return (rf_log_level)atomic_load(&g_log_level); }

void rf_log(rf_log_level lvl, const char *fmt, ...) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    if ((int)lvl < atomic_load(&g_log_level) || lvl >= RF_LOG_NONE) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_log_mutex);
    fprintf(stderr, "rocmforge: %s: %s\n", names[lvl], line);
    pthread_mutex_unlock(&g_log_mutex);
}

/* ---- counting allocator ------------------------------------------------ */

/* Each block carries a header with its size so rf_free can account for it.
 * 16 bytes keeps the user pointer aligned for any scalar or SSE type;
 * larger alignments are the caller's job (rf_aligned_* when it lands). */
typedef struct alloc_hdr {
    size_t size;
    size_t magic;
} alloc_hdr;
#define RF_ALLOC_MAGIC ((size_t)0x52464d454d4f5259ull)

static _Atomic size_t g_live, g_peak;
static _Atomic uint64_t g_nalloc, g_nfree;
static _Atomic long g_fail_after = -1;

static bool alloc_should_fail(void) {
    long n = atomic_load(&g_fail_after);
    if (n < 0) return false;
    while (n > 0) {
        if (atomic_compare_exchange_weak(&g_fail_after, &n, n - 1)) return false;
    }
    return n == 0;
}

static void account_add(size_t n) {
    size_t live = atomic_fetch_add(&g_live, n) + n;
    size_t peak = atomic_load(&g_peak);
    while (live > peak && !atomic_compare_exchange_weak(&g_peak, &peak, live)) {}
    atomic_fetch_add(&g_nalloc, 1);
}

void *rf_malloc(size_t n) {
    if (n > SIZE_MAX - sizeof(alloc_hdr) || alloc_should_fail()) return NULL;
    alloc_hdr *h = malloc(sizeof *h + n);
    if (!h) return NULL;
    h->size = n;
    h->magic = RF_ALLOC_MAGIC;
    account_add(n);
    return h + 1;
}

void *rf_calloc(size_t count, size_t size) {
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) return NULL;
    void *p = rf_malloc(n);
    if (p) memset(p, 0, n);
    return p;
}

void *rf_realloc(void *p, size_t n) {
    if (!p) return rf_malloc(n);
    alloc_hdr *h = (alloc_hdr *)p - 1;
    RF_ASSERT(h->magic == RF_ALLOC_MAGIC);
    if (n > SIZE_MAX - sizeof(alloc_hdr) || alloc_should_fail()) return NULL;
    size_t old = h->size;
    alloc_hdr *nh = realloc(h, sizeof *nh + n);
    if (!nh) return NULL;
    nh->size = n;
    atomic_fetch_sub(&g_live, old);
    account_add(n);
    atomic_fetch_add(&g_nfree, 1);
    return nh + 1;
}

void rf_free(void *p) {
    if (!p) return;
    alloc_hdr *h = (alloc_hdr *)p - 1;
    RF_ASSERT(h->magic == RF_ALLOC_MAGIC);
    h->magic = 0;
    atomic_fetch_sub(&g_live, h->size);
    atomic_fetch_add(&g_nfree, 1);
    free(h);
}

char *rf_strndup(const char *s, size_t n) {
    char *d = rf_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

rf_alloc_stats rf_alloc_get_stats(void) {
    rf_alloc_stats s = {
        .live_bytes = atomic_load(&g_live),
        .peak_bytes = atomic_load(&g_peak),
        .n_alloc = atomic_load(&g_nalloc),
        .n_free = atomic_load(&g_nfree),
    };
    return s;
}

void rf_alloc_fail_after(long n) { atomic_store(&g_fail_after, n < 0 ? -1 : n); }

/* ---- float16 / bfloat16 ------------------------------------------------ */

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float rf_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) return u2f(sign | 0x7f800000u | (mant << 13)); /* inf/nan */
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t rf_fp32_to_fp16(float f) {
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((a >> 13) & 0x3ff); /* NaN, quiet */
    if (a >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {
        /* result is subnormal or zero: value / 2^-24, rounded to nearest even */
        float v = u2f(a) * 0x1p24f;           /* exact scale by power of two */
        float r = rintf(v);                    /* default mode: nearest even */
        return sign | (uint16_t)r;
    }
    uint32_t mant = a & 0x7fffff;
    uint32_t exp = (a >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++; /* carries into exp correctly */
    return sign | (uint16_t)h;
}

float rf_bf16_to_fp32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t rf_fp32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)(((uint64_t)u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

/* ---- time -------------------------------------------------------------- */

double rf_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
