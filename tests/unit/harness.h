/*
 * harness.h - the few macros the C unit tests use. A test file defines
 * test functions and lists them in main() through RF_RUN; any failed check
 * prints file:line and the expression, and main returns non-zero.
 * Closing line: "N passed, N failed".
 */
#ifndef RF_TEST_HARNESS_H
#define RF_TEST_HARNESS_H

#include <stdio.h>
#include <stdint.h>

extern int rf_test_failures; /* checks failed in the current test */

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
            rf_test_failures++;                                                   \
        }                                                                         \
    } while (0)

#define CHECK_MSG(cond, ...)                                                      \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            rf_test_failures++;                                                   \
        }                                                                         \
    } while (0)

typedef void (*rf_test_fn)(void);
void rf_test_run(const char *name, rf_test_fn fn);
int rf_test_summary(void); /* prints "N passed, N failed"; returns exit code */

/* Seeded from the clock unless RF_TEST_SEED is set; printed so failures repeat. */
uint64_t rf_test_seed(void);
uint64_t rf_test_rand(void);          /* xorshift64* */
float rf_test_randn(void);            /* standard normal */
float rf_test_randu(float lo, float hi);

#define RF_RUN(fn) rf_test_run(#fn, fn)

#endif
