/* test_mauve.c — MAUVE's pieces on hand cases (model/mauve.h). The
 * comparison with mauve-text itself is tests/reference/mauve_ref.py +
 * test_mauve_ref.c. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/mauve.h"
#include "tests/test.h"

static void test_auto_buckets(void) {
  /* max(2, round(min/10)), Python's round half to even */
  CHECK(mauve_auto_buckets(25, 100) == 2); /* 2.5 -> 2 */
  CHECK(mauve_auto_buckets(35, 40) == 4);  /* 3.5 -> 4 */
  CHECK(mauve_auto_buckets(45, 45) == 4);  /* 4.5 -> 4 */
  CHECK(mauve_auto_buckets(46, 90) == 5);  /* 4.6 -> 5 */
  CHECK(mauve_auto_buckets(10, 10) == 2);  /* 1 -> max 2 */
  CHECK(mauve_auto_buckets(1000, 500) == 50);
}

static void test_labels_hand(void) {
  mauve_config cfg;
  mauve_config_default(&cfg);
  mauve_result r;
  foil_err err = {0};

  /* Disjoint: P all in bucket 0, Q all in bucket 1: p = (1, 0), q = (0, 1).
   * One mixture weight (linspace(1e-6, 1-1e-6, 1) = [1e-6]): r = (w, 1-w),
   * KL(q||r) = -ln(1-w), KL(p||r) = -ln w, so the point is
   * (x1, y1) = ((1-w)^5, w^5) = (0.999995..., 1e-30), with the extremes
   * (1, 0) and (0, 1). Area under y(x) over (0,1), (x1,y1), (1,0):
   *   x1·(1 + y1)/2 + (1 - x1)·y1/2 = x1/2 + y1/2;
   * under x(y) over (1,0), (x1,y1), (0,1): y1·(1 + x1)/2 + (1 - y1)·x1/2
   *   = y1/2 + x1/2. MAUVE = (x1 + y1)/2 = (1-1e-6)^5/2 + 5e-31.
   * Frontier integral: each bucket has one side 0: 1/4 + 1/4, times 2 = 1. */
  int pl[4] = {0, 0, 0, 0}, ql[3] = {1, 1, 1};
  cfg.curve_points = 1;
  CHECKF(mauve_from_labels(pl, 4, ql, 3, 2, &cfg, &r, &err) == 0, "%s", err.msg);
  double x1 = pow(1 - 1e-6, 5);
  CHECKF(fabs(r.mauve - x1 / 2) < 1e-15, "%.17g vs %.17g", r.mauve, x1 / 2);
  CHECK(fabs(r.frontier_integral - 1) < 1e-15);
  CHECK(r.p_hist[0] == 1 && r.p_hist[1] == 0 && r.q_hist[0] == 0 && r.q_hist[1] == 1);
  /* smoothed: p* = (4.5, 0.5)/5 = (0.9, 0.1), q* = (0.5, 3.5)/4 = (0.125, 0.875);
   * FI* = 2·Σ [ (a+b)/4 − ab(ln a − ln b)/(2(a − b)) ] */
  double a[2] = {0.9, 0.1}, b[2] = {0.125, 0.875}, fi = 0;
  for (int i = 0; i < 2; i++)
    fi += 0.25 * (a[i] + b[i]) - 0.5 * a[i] * b[i] * (log(a[i]) - log(b[i])) / (a[i] - b[i]);
  CHECKF(fabs(r.frontier_integral_star - 2 * fi) < 1e-12, "%.17g vs %.17g",
         r.frontier_integral_star, 2 * fi);
  mauve_result_clear(&r);

  /* identical histograms: every curve point is (1, 1) (KL 0): MAUVE 1,
   * FI 0 — whatever order the tied points take (mauve.c sorts ties along
   * the curve). */
  mauve_config_default(&cfg);
  int l1[6] = {0, 1, 2, 0, 1, 2}, l2[3] = {2, 1, 0};
  CHECK(mauve_from_labels(l1, 6, l2, 3, 3, &cfg, &r, &err) == 0);
  CHECKF(fabs(r.mauve - 1) < 1e-12 && fabs(r.frontier_integral) < 1e-12, "%.17g", r.mauve);
  mauve_result_clear(&r);

  /* bad labels are refused by name */
  int bad[2] = {0, 5};
  CHECK(mauve_from_labels(bad, 2, l2, 3, 3, &cfg, &r, &err) == FOIL_EINVAL);
  CHECK(strstr(err.msg, "P label 5 of row 1") != NULL);
  CHECK(r.p_hist == NULL);
  CHECK(mauve_from_labels(l1, 0, l2, 3, 3, &cfg, &r, &err) == FOIL_EINVAL);
  cfg.explained_var = 1;
  CHECK(mauve_from_labels(l1, 6, l2, 3, 3, &cfg, &r, &err) == FOIL_EINVAL);
}

/* n rows of d around center c (unit-norm-ish blobs), noise s */
static void blob(float *x, int n, int d, const float *c, float s, uint64_t seed) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < d; j++)
      x[(size_t)i * d + j] = c[j] + s * (rng_uniform(seed, (uint64_t)i, (uint64_t)j) - 0.5f);
}

static void test_compute(void) {
  enum { N = 60, D = 8 };
  float cp[D] = {1, 0, 0, 0, 0, 0, 0, 0}, cq[D] = {0, 1, 0, 0, 0, 0, 0, 0};
  float *p = malloc(sizeof(float) * N * D), *q = malloc(sizeof(float) * N * D);
  blob(p, N, D, cp, 0.2f, 1);
  blob(q, N, D, cq, 0.2f, 2);
  mauve_config cfg;
  mauve_config_default(&cfg);
  mauve_result r;
  foil_err err = {0};
  /* P and Q far apart (directions 90 degrees apart after normalization):
   * no bucket holds both, so the histograms are disjoint and MAUVE is the
   * disjoint value, as the "disjoint" label case of the reference (~0.0041
   * with 25 curve points; 6 buckets = round(60/10)). */
  CHECKF(mauve_compute(p, N, q, N, D, &cfg, &r, &err) == 0, "%s", err.msg);
  CHECK(r.num_buckets == 6);
  int shared = 0;
  for (int j = 0; j < r.num_buckets; j++) shared += r.p_hist[j] > 0 && r.q_hist[j] > 0;
  CHECKF(shared == 0 && r.mauve < 0.005 && fabs(r.frontier_integral - 1) < 1e-12,
         "shared %d mauve %g", shared, r.mauve);
  CHECK(r.pca_dim >= 1 && r.pca_dim <= D);
  mauve_result_clear(&r);
  /* P against itself: 1 */
  CHECK(mauve_compute(p, N, p, N, D, &cfg, &r, &err) == 0);
  CHECKF(fabs(r.mauve - 1) < 1e-12, "%.17g", r.mauve);
  mauve_result_clear(&r);

  /* three tight, far-apart groups and k = 3: the buckets are the groups */
  float c3[3][D] = {{5, 0}, {0, 5}, {-5, -5}};
  float *x = malloc(sizeof(float) * 30 * D);
  for (int g = 0; g < 3; g++) blob(x + (size_t)g * 10 * D, 10, D, c3[g], 0.1f, 10 + g);
  int lab[30];
  CHECK(mauve_cluster(x, 15, x + 15 * D, 15, D, 3, &cfg, lab, NULL, &err) == 0);
  /* rows in mauve-text order: Q's (x rows 15..29) then P's (rows 0..14);
   * row i of x is in group i / 10 */
  int ok = 1;
  for (int i = 0; i < 30; i++)
    for (int j = 0; j < 30; j++) {
      int xi = i < 15 ? 15 + i : i - 15, xj = j < 15 ? 15 + j : j - 15;
      if ((xi / 10 == xj / 10) != (lab[i] == lab[j])) ok = 0;
    }
  CHECK(ok);

  /* refusals */
  p[7] = NAN;
  CHECK(mauve_compute(p, N, q, N, D, &cfg, &r, &err) == FOIL_EINVAL);
  CHECK(strstr(err.msg, "P feature row 0") != NULL);
  cfg.num_buckets = 2 * N + 1;
  CHECK(mauve_compute(q, N, q, N, D, &cfg, &r, &err) == FOIL_EINVAL);
  free(p);
  free(q);
  free(x);
}

int main(void) {
  RUN(test_auto_buckets);
  RUN(test_labels_hand);
  RUN(test_compute);
  TEST_EXIT();
}
