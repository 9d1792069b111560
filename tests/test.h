/* test.h — the few macros foil's C tests use. A test program runs its
 * cases, prints one line per failed check, and exits non-zero if any failed;
 * ctest reads the exit status. */
#ifndef FOIL_TESTS_TEST_H
#define FOIL_TESTS_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int test_failures = 0;
static int test_checks = 0;

/* ||a - b|| / ||b|| over n floats, in double (||a - b|| when b is 0) */
static inline double test_rel_err(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

#define CHECK(cond)                                                        \
  do {                                                                     \
    test_checks++;                                                         \
    if (!(cond)) {                                                         \
      test_failures++;                                                     \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,     \
              #cond);                                                      \
    }                                                                      \
  } while (0)

#define CHECKF(cond, ...)                                                  \
  do {                                                                     \
    test_checks++;                                                         \
    if (!(cond)) {                                                         \
      test_failures++;                                                     \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__,     \
              #cond);                                                      \
      fprintf(stderr, __VA_ARGS__);                                        \
      fputc('\n', stderr);                                                 \
    }                                                                      \
  } while (0)

#define RUN(fn)                                                            \
  do {                                                                     \
    int before_ = test_failures;                                           \
    fn();                                                                  \
    printf("%-40s %s\n", #fn, test_failures == before_ ? "ok" : "FAILED"); \
  } while (0)

#define TEST_EXIT()                                                        \
  do {                                                                     \
    printf("%d checks, %d failed\n", test_checks, test_failures);          \
    return test_failures ? 1 : 0;                                          \
  } while (0)

#endif
