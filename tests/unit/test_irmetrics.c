/* test_irmetrics.c — retrieval metrics and the streaming retrieval
 * (model/irmetrics.h).
 *
 * What it proves:
 *  - every metric at every cutoff on hand-computed rankings (hits at ranks
 *    2 and 4 of |R| = 3; a perfect single hit; a miss), queries without a
 *    relevant document skipped, grades <= 0 not relevant, duplicate qrels
 *    counted once, lists shorter than the cutoff;
 *  - the streaming object keeps the same lists as a full sort for any
 *    chunking, with exact integer dot products full of ties (lower corpus row
 *    first), cosine normalization, and a corpus smaller than IRM_K;
 *  - bad qrels are refused with a message; irmetrics_get names.
 * The comparison with the sentence-transformers formulas on random data is
 * tests/reference/irmetrics_ref.py + test_irmetrics_ref.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/irmetrics.h"
#include "tests/test.h"

static int near(double a, double b) { return fabs(a - b) <= 1e-12; }

/* cutoff index of k */
static int ci(int k) {
  for (int c = 0; c < IRM_NCUT; c++)
    if (irmetrics_cutoffs[c] == k) return c;
  return -1;
}

static void test_hand(void) {
  /* query 0: ranking 5 3 9 1 8 ..., relevant {3, 1, 7}: hits at ranks 2, 4
   * query 1: no relevant document (skipped)
   * query 2: ranking 4 ..., relevant {4}: hit at rank 1
   * query 3: ranking of 2 entries only, relevant {6} (never retrieved), plus
   *          a grade-0 pair (2) that is not relevant */
  enum { K = 12 };
  int64_t ranked[4 * K];
  for (int i = 0; i < 4 * K; i++) ranked[i] = 100 + i; /* never relevant */
  int64_t r0[5] = {5, 3, 9, 1, 8};
  memcpy(ranked, r0, sizeof r0);
  ranked[2 * K] = 4;
  ranked[3 * K] = 2;
  ranked[3 * K + 1] = 11;
  ranked[3 * K + 2] = -1; /* list ends */
  ranked[3 * K + 3] = 6;  /* after the end: ignored */
  int64_t qrels[] = {0, 3, 0, 1, 0, 7, 2, 4, 0, 3 /* duplicate */, 3, 6, 3, 2};
  int32_t grades[] = {1, 2, 1, 1, 1, 1, 0};
  irmetrics_result res;
  foil_err err = {0};
  CHECKF(irmetrics_from_rankings(ranked, 4, K, qrels, grades, 7, &res, &err) == 0, "%s", err.msg);
  CHECK(res.n_queries == 3 && res.n_skipped == 1);

  double l3 = 1 / log2(3.0), l5 = 1 / log2(5.0);
  double idcg3 = 1 + l3 + 0.5; /* |R| = 3 */
  /* per-query values [query][cutoff] for k = 1, 3, 5, 10, 100 */
  double acc[3][5] = {{0, 1, 1, 1, 1}, {1, 1, 1, 1, 1}, {0, 0, 0, 0, 0}};
  double prec[3][5] = {{0, 1. / 3, 2. / 5, 2. / 10, 2. / 100},
                       {1, 1. / 3, 1. / 5, 1. / 10, 1. / 100},
                       {0, 0, 0, 0, 0}};
  double rec[3][5] = {{0, 1. / 3, 2. / 3, 2. / 3, 2. / 3}, {1, 1, 1, 1, 1}, {0, 0, 0, 0, 0}};
  double mrr[3][5] = {{0, .5, .5, .5, .5}, {1, 1, 1, 1, 1}, {0, 0, 0, 0, 0}};
  double ndcg[3][5] = {{0, l3 / (1 + l3 + .5), (l3 + l5) / idcg3, (l3 + l5) / idcg3,
                        (l3 + l5) / idcg3},
                       {1, 1, 1, 1, 1},
                       {0, 0, 0, 0, 0}};
  double map[3][5] = {{0, .5 / 3, (.5 + .5) / 3, 1. / 3, 1. / 3},
                      {1, 1, 1, 1, 1},
                      {0, 0, 0, 0, 0}};
  for (int c = 0; c < IRM_NCUT; c++) {
#define MEAN(a) ((a[0][c] + a[1][c] + a[2][c]) / 3)
    CHECKF(near(res.accuracy[c], MEAN(acc)), "accuracy@%d %g", irmetrics_cutoffs[c], res.accuracy[c]);
    CHECKF(near(res.precision[c], MEAN(prec)), "precision@%d %g", irmetrics_cutoffs[c], res.precision[c]);
    CHECKF(near(res.recall[c], MEAN(rec)), "recall@%d %g", irmetrics_cutoffs[c], res.recall[c]);
    CHECKF(near(res.mrr[c], MEAN(mrr)), "mrr@%d %g", irmetrics_cutoffs[c], res.mrr[c]);
    CHECKF(near(res.ndcg[c], MEAN(ndcg)), "ndcg@%d %g", irmetrics_cutoffs[c], res.ndcg[c]);
    CHECKF(near(res.map[c], MEAN(map)), "map@%d %g", irmetrics_cutoffs[c], res.map[c]);
#undef MEAN
  }
  /* named access */
  CHECK(irmetrics_get(&res, "ndcg@10") == res.ndcg[ci(10)]);
  CHECK(irmetrics_get(&res, "map@100") == res.map[ci(100)]);
  CHECK(irmetrics_get(&res, "recall@1") == res.recall[ci(1)]);
  CHECK(irmetrics_get(&res, "accuracy@3") == res.accuracy[ci(3)]);
  CHECK(isnan(irmetrics_get(&res, "ndcg@7")));
  CHECK(isnan(irmetrics_get(&res, "nd@10")));
  CHECK(isnan(irmetrics_get(&res, "ndcg@10x")));
  CHECK(isnan(irmetrics_get(&res, "ndcg")));

  /* ndcg with |R| > k: ideal DCG over k ranks only; one hit at rank 1 of
   * |R| = 4 at k = 3 */
  int64_t rk[3] = {1, 9, 9};
  int64_t q4[] = {0, 1, 0, 2, 0, 3, 0, 4};
  CHECK(irmetrics_from_rankings(rk, 1, 3, q4, NULL, 4, &res, &err) == 0);
  CHECK(near(res.ndcg[ci(3)], 1 / (1 + l3 + 0.5)));
  CHECK(near(res.map[ci(3)], 1.0 / 3) && near(res.map[ci(5)], 1.0 / 4));
  CHECK(near(res.recall[ci(1)], 0.25) && near(res.precision[ci(1)], 1.0));

  /* no query with a relevant document: zeros, no division by zero */
  CHECK(irmetrics_from_rankings(rk, 1, 3, NULL, NULL, 0, &res, &err) == 0);
  CHECK(res.n_queries == 0 && res.n_skipped == 1 && res.ndcg[ci(10)] == 0);

  /* refused qrels */
  int64_t badq[] = {1, 0};
  CHECK(irmetrics_from_rankings(rk, 1, 3, badq, NULL, 1, &res, &err) == FOIL_EINVAL);
  CHECK(strstr(err.msg, "out of range") != NULL);
  int64_t badd[] = {0, -2};
  CHECK(irmetrics_from_rankings(rk, 1, 3, badd, NULL, 1, &res, &err) == FOIL_EINVAL);
}

/* ---- streaming -------------------------------------------------------------- */

static uint64_t prng_state;
static void prng_seed(uint64_t s) { prng_state = s * 0x9E3779B97F4A7C15ull; }
static uint64_t prng_next(void) {
  uint64_t z = (prng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static int prng_int(int n) { return (int)(prng_next() % (uint64_t)n); }

typedef struct {
  double s;
  int64_t id;
} cand;
static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->s != y->s) return x->s > y->s ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* Integer vectors: dot products are exact in float whatever sgemm's order,
 * so ties are real ties and must come out lower row first. */
static void run_stream(int nq, int nc, int D, int normalize, int max_chunk) {
  float *Q = malloc(sizeof(float) * nq * D), *C = malloc(sizeof(float) * nc * D);
  for (int i = 0; i < nq * D; i++) Q[i] = (float)(prng_int(5) - 2);
  for (int i = 0; i < nc * D; i++) C[i] = (float)(prng_int(5) - 2);
  irmetrics *ir = NULL;
  foil_err err = {0};
  CHECKF(irmetrics_new(&ir, Q, nq, D, normalize, &err) == 0, "%s", err.msg);
  if (!ir) return;
  int at = 0;
  while (at < nc) {
    int n = 1 + prng_int(max_chunk);
    if (n > nc - at) n = nc - at;
    CHECK(irmetrics_add(ir, C + (size_t)at * D, n, &err) == 0);
    at += n;
  }
  CHECK(irmetrics_add(ir, C, 0, &err) == 0); /* empty chunk: no-op */
  CHECK(irmetrics_corpus_rows(ir) == nc && irmetrics_num_queries(ir) == nq);
  const float *ts;
  const int64_t *ti;
  irmetrics_topk(ir, &ts, &ti);
  cand *c = malloc(sizeof(cand) * nc);
  int bad = 0, ties = 0;
  for (int q = 0; q < nq; q++) {
    double qn = 0;
    for (int d = 0; d < D; d++) qn += (double)Q[q * D + d] * Q[q * D + d];
    for (int j = 0; j < nc; j++) {
      double s = 0, cn = 0;
      for (int d = 0; d < D; d++) {
        s += (double)Q[q * D + d] * C[(size_t)j * D + d];
        cn += (double)C[(size_t)j * D + d] * C[(size_t)j * D + d];
      }
      if (normalize) s = s / (fmax(sqrt(qn), 1e-12) * fmax(sqrt(cn), 1e-12));
      c[j] = (cand){s, j};
    }
    qsort(c, nc, sizeof *c, cand_cmp);
    int m = nc < IRM_K ? nc : IRM_K;
    for (int r = 0; r < IRM_K; r++) {
      int64_t want = r < m ? c[r].id : -1;
      if (r + 1 < m && c[r].s == c[r + 1].s) ties++;
      if (normalize && r < m) {
        /* cosine in float may reorder near-equal scores: compare scores */
        if (fabs(ts[q * IRM_K + r] - c[r].s) > 1e-6) bad++;
      } else if (ti[q * IRM_K + r] != want) {
        bad++;
      }
    }
    if (m < IRM_K) CHECK(ti[q * IRM_K + m] == -1);
  }
  CHECKF(bad == 0, "%d list entries differ from the full sort (nq %d nc %d)", bad, nq, nc);
  if (!normalize) CHECK(ties > 0); /* the data really had ties */
  /* metrics over these lists equal those from the rankings */
  int64_t qrels[8] = {0, 3, 0, 5, 1, 0, 1, (int64_t)nc - 1};
  irmetrics_result a, b;
  CHECK(irmetrics_compute(ir, qrels, NULL, 4, &a, &err) == 0);
  CHECK(irmetrics_from_rankings(ti, nq, IRM_K, qrels, NULL, 4, &b, &err) == 0);
  CHECK(memcmp(&a, &b, sizeof a) == 0);
  int64_t bad_row[2] = {0, nc};
  CHECK(irmetrics_compute(ir, bad_row, NULL, 1, &a, &err) == FOIL_EINVAL);
  free(c);
  free(Q);
  free(C);
  irmetrics_destroy(&ir);
  CHECK(ir == NULL);
}

static void test_stream(void) {
  prng_seed(11);
  run_stream(7, 1000, 5, 0, 130); /* raw dot products, many exact ties */
  run_stream(5, 300, 8, 1, 1);    /* cosine, one row per chunk */
  run_stream(6, 40, 4, 0, 17);    /* corpus smaller than IRM_K */
  run_stream(3, 200, 6, 1, 500);  /* cosine, one chunk */
}

static void test_errors(void) {
  irmetrics *ir = NULL;
  foil_err err = {0};
  float q[4] = {1, 0, 0, 1};
  CHECK(irmetrics_new(&ir, q, 0, 2, 1, &err) == FOIL_EINVAL && ir == NULL);
  CHECK(irmetrics_new(&ir, q, 2, 0, 1, &err) == FOIL_EINVAL);
  CHECK(irmetrics_new(&ir, q, 2, 2, 1, &err) == 0);
  CHECK(irmetrics_add(ir, q, -1, &err) == FOIL_EINVAL);
  irmetrics_destroy(&ir);
  irmetrics_destroy(&ir); /* NULL is fine */
}

int main(void) {
  RUN(test_hand);
  RUN(test_stream);
  RUN(test_errors);
  TEST_EXIT();
}
