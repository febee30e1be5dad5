/*
 * membw.c - read bandwidth of this machine, the ceiling of token generation
 * (each generated token reads every weight once).
 *
 *   cc -O2 -mavx2 -pthread bench/membw.c -o membw && ./membw [threads] [MiB] [FILE]
 *
 * With FILE, the buffer is FILE mapped read-only (as the weights are), so
 * page-cache placement and 4 KiB pages count too.
 * Each thread sums its own contiguous slice of a buffer much larger than the
 * caches with 256-bit loads (4 independent accumulators), five passes; the
 * best pass is reported in GB/s (10^9 bytes).
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct arg {
    const __m256i *p;
    size_t n; /* vectors */
    long long sink;
    int prefetch; /* bytes ahead for software prefetch, 0: none */
} arg;

static void *reader(void *v) {
    arg *a = v;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    const size_t ahead = (size_t)a->prefetch / 32;
    for (size_t i = 0; i + 4 <= a->n; i += 4) {
        if (ahead && (i & 7) == 0) _mm_prefetch((const char *)(a->p + i + ahead), _MM_HINT_T0);
        s0 = _mm256_add_epi64(s0, _mm256_load_si256(a->p + i));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256(a->p + i + 1));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256(a->p + i + 2));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256(a->p + i + 3));
    }
    s0 = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    long long r[4];
    memcpy(r, &s0, sizeof r);
    a->sink = r[0] + r[1] + r[2] + r[3];
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int nth = argc > 1 ? atoi(argv[1]) : 2;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    const char *pf = getenv("MEMBW_PREFETCH"), *nohuge = getenv("MEMBW_NOHUGE");
    if (nth < 1 || nth > 256 || (mib < 64 && argc <= 3)) return 1;
    size_t bytes = mib << 20;
    __m256i *buf;
    if (argc > 3) {
        int fd = open(argv[3], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) return 1;
        bytes = (size_t)st.st_size & ~(size_t)4095;
        mib = bytes >> 20;
        buf = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (buf == MAP_FAILED) return 1;
        volatile unsigned char s = 0;
        for (size_t o = 0; o < bytes; o += 4096) s ^= ((unsigned char *)buf)[o];
    } else {
        buf = aligned_alloc(2 << 20, bytes);
        if (!buf) return 1;
        madvise(buf, bytes, nohuge ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
        memset(buf, 1, bytes);
    }
    size_t nvec = bytes / 32, per = nvec / (size_t)nth;
    double best = 0;
    long long sink = 0;
    for (int pass = 0; pass < 5; pass++) {
        pthread_t th[256];
        arg a[256];
        double t0 = now();
        for (int i = 0; i < nth; i++) {
            a[i] = (arg){buf + (size_t)i * per, per, 0, pf ? atoi(pf) : 0};
            pthread_create(&th[i], NULL, reader, &a[i]);
        }
        for (int i = 0; i < nth; i++) {
            pthread_join(th[i], NULL);
            sink += a[i].sink;
        }
        double gbs = (double)(per * (size_t)nth * 32) / (now() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    printf("read bandwidth: %.1f GB/s (%d threads, %zu MiB%s%s%s, best of 5)%s\n", best, nth, mib,
           argc > 3 ? ", mmapped file" : nohuge ? ", 4 KiB pages" : "", pf ? ", prefetch " : "", pf ? pf : "",
           sink == 42 ? " " : "");
    if (argc <= 3) free(buf);
    return 0;
}
