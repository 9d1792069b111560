/* test_bm25.c — BM25 against the formula computed naively in double on a
 * small random corpus, and on a hand-checked case. */
#include <math.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#include "model/bm25.h"
#include "tests/test.h"

static double naive(const int32_t *const *docs, const int *lens, int nd, const int32_t *q, int ql,
                    int d, double k1, double b) {
  double avg = 0;
  for (int i = 0; i < nd; i++) avg += lens[i];
  avg /= nd;
  double s = 0;
  for (int i = 0; i < ql; i++) {
    int df = 0, tf = 0;
    for (int j = 0; j < nd; j++) {
      int has = 0;
      for (int k = 0; k < lens[j]; k++) has |= docs[j][k] == q[i];
      df += has;
    }
    for (int k = 0; k < lens[d]; k++) tf += docs[d][k] == q[i];
    double idf = log(1.0 + (nd - df + 0.5) / (df + 0.5));
    s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lens[d] / avg));
  }
  return s;
}

static void test_random_corpus(void) {
  enum { ND = 40, NT = 25 };
  int32_t *docs[ND];
  int lens[ND];
  for (int d = 0; d < ND; d++) {
    lens[d] = 1 + (int)(rng_u32(1, 1, (uint64_t)d) % 12);
    docs[d] = malloc(sizeof(int32_t) * (size_t)lens[d]);
    for (int k = 0; k < lens[d]; k++) docs[d][k] = (int32_t)(rng_u32(1, 2, (uint64_t)(d * 100 + k)) % NT);
  }
  bm25 *x;
  foil_err err;
  CHECK(bm25_build(&x, (const int32_t *const *)docs, lens, ND, NT, 0.9f, 0.4f, &err) == 0);
  int32_t q[5] = {3, 7, 7, 19, 30}; /* a repeat and a term outside the vocabulary */
  float s[ND];
  bm25_score(x, q, 5, s);
  double worst = 0;
  for (int d = 0; d < ND; d++) {
    double r = naive((const int32_t *const *)docs, lens, ND, q, 4, d, 0.9, 0.4);
    worst = fmax(worst, fabs(s[d] - r) / fmax(1e-6, fabs(r)));
  }
  CHECKF(worst <= 1e-5, "BM25 rel error %.3g", worst);
  bm25_destroy(&x);
  CHECK(x == NULL);
  for (int d = 0; d < ND; d++) free(docs[d]);
}

static void test_hand_case(void) {
  /* two docs: "a b" and "a a c". query "c": only doc 1 scores.
   * df(c)=1, N=2: idf = ln(1 + 1.5/1.5) = ln 2; avgdl = 2.5, |d1| = 3:
   * score = ln2 · 1·1.9/(1 + 0.9·(0.6 + 0.4·1.2)) */
  int32_t d0[2] = {0, 1}, d1[3] = {0, 0, 2};
  const int32_t *docs[2] = {d0, d1};
  int lens[2] = {2, 3};
  bm25 *x;
  foil_err err;
  CHECK(bm25_build(&x, docs, lens, 2, 3, 0.9f, 0.4f, &err) == 0);
  int32_t q = 2;
  float s[2];
  bm25_score(x, &q, 1, s);
  double want = log(2.0) * 1.9 / (1 + 0.9 * (0.6 + 0.4 * 1.2));
  CHECKF(s[0] == 0.0f && fabs(s[1] - want) < 1e-6, "scores %g %g, want 0 %g", s[0], s[1], want);
  bm25_destroy(&x);
  CHECK(bm25_build(&x, docs, lens, 0, 3, 0.9f, 0.4f, &err) == FOIL_EINVAL);
}

int main(void) {
  RUN(test_random_corpus);
  RUN(test_hand_case);
  TEST_EXIT();
}
