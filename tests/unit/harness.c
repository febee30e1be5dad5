/*
 * harness.c - test runner and random numbers for the C unit tests.
 */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

int rf_test_failures;
static int n_passed, n_failed;
static uint64_t g_state;

uint64_t rf_test_seed(void) {
    static uint64_t seed;
    if (!seed) {
        const char *s = getenv("RF_TEST_SEED");
        if (s) seed = strtoull(s, NULL, 0);
        else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
        }
        if (!seed) seed = 0x9e3779b97f4a7c15ull;
        g_state = seed;
        fprintf(stderr, "seed: RF_TEST_SEED=%llu\n", (unsigned long long)seed);
    }
    return seed;
}

uint64_t rf_test_rand(void) {
    if (!g_state) rf_test_seed();
    g_state ^= g_state >> 12;
    g_state ^= g_state << 25;
    g_state ^= g_state >> 27;
    return g_state * 0x2545f4914f6cdd1dull;
}

float rf_test_randu(float lo, float hi) {
    return lo + (hi - lo) * (float)((rf_test_rand() >> 40) * 0x1p-24);
}

float rf_test_randn(void) {
    double u1 = ((rf_test_rand() >> 11) + 1.0) * 0x1p-53, u2 = (rf_test_rand() >> 11) * 0x1p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void rf_test_run(const char *name, rf_test_fn fn) {
    rf_test_seed();
    rf_test_failures = 0;
    fn();
    if (rf_test_failures) {
        n_failed++;
        fprintf(stderr, "FAILED %s (%d checks)\n", name, rf_test_failures);
    } else {
        n_passed++;
        fprintf(stderr, "ok     %s\n", name);
    }
}

int rf_test_summary(void) {
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
