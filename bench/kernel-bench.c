/*
 * kernel-bench.c - one-thread speed of a kernel set's one-token matmul
 * kernel (a decode step's work) on random weights larger than the caches,
 * as bytes of weights per second of thread CPU time, so another process on
 * the machine disturbs the figure less than wall time would.
 *
 *   kernel-bench [SET] [TYPE] [K] [MiB]    e.g. avx512 Q4_K 2048 256
 *
 * KB_X16=1 times the set's X16-layout kernel on the same weights repacked.
 *
 * Build: cc -O2 -Isrc -Iinclude bench/kernel-bench.c build/librfcore.a -lm -lpthread
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "cpu/cpu-impl.h"
#include "quant/quant.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *set = argc > 1 ? argv[1] : NULL, *tname = argc > 2 ? argv[2] : "Q4_0";
    const int64_t K = argc > 3 ? atoll(argv[3]) : 2048;
    const size_t mib = argc > 4 ? (size_t)atoll(argv[4]) : 256;
    const rf_cpu_kernels *k = set ? rf_cpu_kernels_by_name(set) : rf_cpu_kernels_best();
    uint32_t type = RF_TYPE_COUNT;
    for (uint32_t t = 0; t < RF_TYPE_COUNT; t++)
        if (rf_type_get(t) && rf_type_get(t)->name && strcmp(rf_type_get(t)->name, tname) == 0) type = t;
    if (!k || type == RF_TYPE_COUNT || !k->mm[type]) {
        fprintf(stderr, "usage: %s [scalar|avx2|avx512|neon] [TYPE with an integer kernel] [K] [MiB]\n", argv[0]);
        return 2;
    }
    const size_t rb = rf_row_size(type, K);
    const int64_t nr = (int64_t)((mib << 20) / rb) & ~(int64_t)63;
    /* 2 MiB-aligned, in huge pages unless KB_SMALLPAGES is set (the file
     * mapping's case) */
    uint8_t *w = aligned_alloc((size_t)2 << 20, (rb * (size_t)nr + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1));
    if (!w) return 1;
    (void)madvise(w, rb * (size_t)nr, getenv("KB_SMALLPAGES") ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
    srand((unsigned)time(NULL));
    float *row = malloc((size_t)K * sizeof(float));
    for (int64_t r = 0; r < nr; r++) { /* a few distinct rows, repeated: quantizing 256 MiB takes long */
        if (r < 64) {
            for (int64_t i = 0; i < K; i++) row[i] = (float)rand() / RAND_MAX - 0.5f;
            if (rf_quantize_row(type, row, w + (size_t)r * rb, K) != RF_OK) return 1;
        } else memcpy(w + (size_t)r * rb, w + (size_t)(r % 64) * rb, rb);
    }
    const bool x16 = getenv("KB_X16") && k->mm_x16[type];
    if (getenv("KB_X16") && !x16) {
        fprintf(stderr, "%s has no X16 kernel for %s\n", k->name, tname);
        return 2;
    }
    if (x16) {
        uint8_t *tmp = malloc(16 * rb);
        for (int64_t r = 0; r < nr; r += 16) {
            rf_cpu_x16_pack(type, K, w + (size_t)r * rb, rb, tmp);
            memcpy(w + (size_t)r * rb, tmp, 16 * rb);
        }
        free(tmp);
    }
    const rf_mm_fn fn = x16 ? k->mm_x16[type] : k->mm[type];
    const rf_act_fmt fmt = (rf_act_fmt)rf_cpu_act_fmt[type];
    uint8_t *a = aligned_alloc(64, rf_act_row_bytes(fmt, K));
    for (int64_t i = 0; i < K; i++) row[i] = (float)rand() / RAND_MAX - 0.5f;
    if (fmt == RF_ACT_F32) memcpy(a, row, (size_t)K * 4);
    else k->quant[fmt](row, a, K);
    float *y = malloc((size_t)nr * sizeof(float));
    double best = 0;
    for (int rep = 0; rep < 7; rep++) {
        const double t0 = cpu_now();
        for (int64_t r = 0; r < nr; r += 256) {
            rf_mm_args m = {.K = K, .w = w + (size_t)r * rb, .w_stride = rb, .nr = nr - r < 256 ? nr - r : 256,
                            .a = a, .a_stride = 0, .nt = 1, .y = y + r, .ldy = 0};
            fn(&m);
        }
        const double gbs = (double)(rb * (size_t)nr) / (cpu_now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    printf("%s%s %s K=%lld: %.2f GB/s of weights per thread (%lld rows, best of 7)\n", k->name, x16 ? " x16" : "", tname, (long long)K, best,
           (long long)nr);
    return 0;
}
