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
