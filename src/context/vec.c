/*
 * vec.c - the dot-product kernel of the vector search: rows of a matrix
 * against one query. A plain-C reference (eight partial sums, which gcc
 * vectorises without -ffast-math) and an AVX2+FMA version compiled through
 * a target attribute and chosen at run time from cpuid; the unit test
 * compares the two on fresh random inputs.
 */
#include "context.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CDB_X86 1
#endif

/* ---- dot products ----------------------------------------------------------------------- */

void rf_cdot_rows_ref(const float *m, int64_t n, int64_t dim, const float *q, float *out) {
    for (int64_t r = 0; r < n; r++) {
        const float *row = m + r * dim;
        /* eight partial sums: lets the compiler vectorise without -ffast-math */
        float acc[8] = {0};
        int64_t i = 0;
        for (; i + 8 <= dim; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += row[i + k] * q[i + k];
        float s = 0;
        for (; i < dim; i++) s += row[i] * q[i];
        out[r] = s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    }
}

#ifdef CDB_X86
__attribute__((target("avx2,fma"))) static void dot_rows_avx2(const float *m, int64_t n, int64_t dim, const float *q,
                                                                float *out) {
    for (int64_t r = 0; r < n; r++) {
        const float *row = m + r * dim;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int64_t i = 0;
        for (; i + 16 <= dim; i += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(q + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(row + i + 8), _mm256_loadu_ps(q + i + 8), a1);
        }
        for (; i + 8 <= dim; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(q + i), a0);
        __m256 a = _mm256_add_ps(a0, a1);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        float s = _mm_cvtss_f32(h);
        for (; i < dim; i++) s += row[i] * q[i];
        out[r] = s;
    }
}
#endif

void rf_cdot_rows(const float *m, int64_t n, int64_t dim, const float *q, float *out) {
#ifdef CDB_X86
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    if (have) {
        dot_rows_avx2(m, n, dim, q, out);
        return;
    }
#endif
    rf_cdot_rows_ref(m, n, dim, q, out);
}

