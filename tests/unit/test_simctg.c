/* test_simctg.c — SimCTG's contrastive loss: value against a direct
 * double-precision evaluation of the formula (SimCTG's masking quirk
 * included), gradient against central finite differences, edge cases. The
 * PyTorch comparison is tests/reference/simctg_ref.py. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/simctg.h"
#include "tests/test.h"

/* The formula of simctg.h, spelled out in double. */
static double naive(const float *h, const uint8_t *mask, int B, int T, int C, double rho, double Z) {
  double total = 0, pairs = 0;
  for (int b = 0; b < B; b++) {
    int L = 0;
    for (int t = 0; t < T; t++) L += mask ? mask[b * T + t] : 1;
    pairs += (double)L * (L - 1);
    for (int i = 0; i < L; i++) {
      if (mask && !mask[b * T + i]) continue;
      const float *hi = h + ((size_t)b * T + i) * C;
      double ni = 0;
      for (int c = 0; c < C; c++) ni += (double)hi[c] * hi[c];
      for (int j = 0; j < L; j++) {
        if (j == i) continue;
        const float *hj = h + ((size_t)b * T + j) * C;
        double nj = 0, dot = 0;
        for (int c = 0; c < C; c++) nj += (double)hj[c] * hj[c], dot += (double)hi[c] * hj[c];
        double v = rho - 1.0 + dot / sqrt(ni * nj);
        if (v > 0) total += v;
      }
    }
  }
  if (Z <= 0) Z = pairs;
  return Z > 0 ? total / Z : 0.0;
}

/* States with a shared direction plus noise, so that many pairs are past
 * the hinge (as in a degenerate model) and many are not. */
static void fill(float *x, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) x[i] = 0.6f * (float)(i % 5 == 0) + 2.0f * rng_uniform(seed, 7, i) - 1.0f;
}

static void value_and_gradient(const uint8_t *mask, float rho, double Z, const char *what) {
  enum { B = 3, T = 7, C = 5 };
  float h[B * T * C], g[B * T * C];
  fill(h, B * T * C, 11);
  simctg *s = NULL;
  foil_err err = {0};
  CHECK(simctg_new(&s, &err) == FOIL_OK);
  float loss = -1;
  CHECK(simctg_loss(s, h, mask, B, T, C, rho, Z, &loss, g, &err) == FOIL_OK);
  double want = naive(h, mask, B, T, C, rho, Z);
  CHECKF(fabs(loss - want) <= 1e-5 * fabs(want) + 1e-7, "%s: loss %.8g, formula %.8g", what, loss, want);
  CHECKF(want > 0.004, "%s: the case must exercise the hinge (loss %.4g)", what, want);
  /* central differences of the float loss, each coordinate */
  const float eps = 1e-3f;
  double num = 0, den = 0, worst = 0;
  for (int k = 0; k < B * T * C; k++) {
    float keep = h[k], lp, lm;
    h[k] = keep + eps;
    simctg_loss(s, h, mask, B, T, C, rho, Z, &lp, NULL, &err);
    h[k] = keep - eps;
    simctg_loss(s, h, mask, B, T, C, rho, Z, &lm, NULL, &err);
    h[k] = keep;
    double fd = ((double)lp - lm) / (2.0 * eps), d = fd - g[k];
    num += d * d;
    den += fd * fd;
    if (fabs(d) > worst) worst = fabs(d);
  }
  CHECKF(den > 0 && sqrt(num / den) < 2e-2, "%s: gradient vs finite differences: rel %.3g (worst %.3g)", what,
         sqrt(num / (den > 0 ? den : 1)), worst);
  /* padded positions get no gradient */
  for (int b = 0; mask && b < B; b++) {
    int L = 0;
    for (int t = 0; t < T; t++) L += mask[b * T + t];
    for (int t = L; t < T; t++)
      for (int c = 0; c < C; c++) CHECKF(g[(b * T + t) * C + c] == 0.0f, "%s: padding b %d t %d has a gradient", what, b, t);
  }
  simctg_destroy(&s);
  CHECK(s == NULL);
}

static void test_full_rows(void) { value_and_gradient(NULL, 0.5f, 0, "full rows"); }

static void test_right_padded(void) {
  uint8_t mask[3 * 7] = {1, 1, 1, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 1, 0, 0, /**/ 1, 0, 0, 0, 0, 0, 0};
  value_and_gradient(mask, 0.5f, 0, "right padded");
  value_and_gradient(mask, 0.9f, 0, "right padded, rho 0.9");
  value_and_gradient(mask, 0.5f, 200.0, "right padded, given Z");
}

/* SimCTG keeps the first L_b positions and masks row sums by mask[i]: a
 * hole changes which pairs count, as in the Python original. */
static void test_hole_quirk(void) {
  uint8_t mask[3 * 7] = {1, 1, 0, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 1, 0, 0, /**/ 1, 1, 0, 0, 0, 0, 0};
  value_and_gradient(mask, 0.6f, 0, "mask with a hole");
}

static void test_edges(void) {
  enum { B = 2, T = 4, C = 3 };
  float h[B * T * C], g[B * T * C];
  fill(h, B * T * C, 5);
  simctg *s = NULL;
  foil_err err = {0};
  CHECK(simctg_new(&s, &err) == FOIL_OK);
  float loss = -1;
  /* rho 0: max(0, cos - 1) is always 0 */
  CHECK(simctg_loss(s, h, NULL, B, T, C, 0.0f, 0, &loss, g, &err) == FOIL_OK);
  CHECK(fabsf(loss) < 1e-6f);
  /* no row with two real tokens: Z = 0, loss 0, no gradient, no NaN */
  uint8_t one[B * T] = {1, 0, 0, 0, 0, 0, 0, 0};
  CHECK(simctg_pairs(one, B, T) == 0.0);
  CHECK(simctg_loss(s, h, one, B, T, C, 0.5f, 0, &loss, g, &err) == FOIL_OK);
  CHECK(loss == 0.0f);
  for (int i = 0; i < B * T * C; i++) CHECK(g[i] == 0.0f);
  CHECK(simctg_pairs(NULL, 3, 5) == 60.0);
  CHECK(simctg_loss(s, h, NULL, B, T, 0, 0.5f, 0, &loss, g, &err) == FOIL_EINVAL);
  /* identical states: every pair scores rho */
  for (int i = 0; i < B * T * C; i++) h[i] = (float)(i % C + 1);
  CHECK(simctg_loss(s, h, NULL, B, T, C, 0.5f, 0, &loss, NULL, &err) == FOIL_OK);
  CHECKF(fabsf(loss - 0.5f) < 1e-5f, "identical states: %g", loss);
  /* growing the batch reuses and grows the scratch */
  float big[4 * 9 * 3];
  fill(big, sizeof big / sizeof big[0], 9);
  CHECK(simctg_loss(s, big, NULL, 4, 9, 3, 0.5f, 0, &loss, NULL, &err) == FOIL_OK);
  CHECK(fabs(loss - naive(big, NULL, 4, 9, 3, 0.5, 0)) < 1e-5);
  simctg_destroy(&s);
  simctg_destroy(&s);
}

int main(void) {
  kernels_set_threads(1);
  RUN(test_full_rows);
  RUN(test_right_padded);
  RUN(test_hole_quirk);
  RUN(test_edges);
  TEST_EXIT();
}
