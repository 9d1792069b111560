/* vmath.h — branch-free float exp and erfc that GCC vectorizes (-O3), for
 * the element-wise kernels. libm's expf/erff are scalar calls; these run 8
 * or 16 lanes at a time. Internal to the CPU kernels.
 *
 * Accuracy (checked against libm in double by tests/unit/test_kernels.c):
 *   vexp:  relative error < 3e-7 on [-87, 88]; 0 below, +inf-free above.
 *   vlog:  absolute error < 2e-7·max(1, |log x|) for normal x > 0.
 *   verfc: relative error < 6e-7·max(1, z²) for z >= 0, measured in
 *          float against double erfc on [0, 9.2] (below 1e-37 it
 *          underflows): 6e-7 up to z = 2, 1.3e-6 at 4.6, 4.2e-6 at 8.8.
 *          Numerical Recipes' erfcc Chebyshev fit is good to 1.2e-7 in exact
 *          arithmetic; in float, −z² + P(t) rounds to about ulp(z²) before
 *          the exp, hence the z² growth. Φ(x) = 0.5·erfc(−x/√2) keeps a
 *          relative error, not an absolute one, in both tails, which
 *          erf-based forms do not for x << 0: GELU x·Φ(x) measured, relative
 *          error 4e-7 for x >= 0, 7e-7 on [−2, 0], 1.8e-6 on [−4, −2],
 *          5.8e-6 on [−8, −4], 1.5e-5 on [−13, −8] (test_gelu bounds 2e-6
 *          on [−4, 12] and 2e-5 below).
 */
#ifndef FOIL_KERNELS_CPU_VMATH_H
#define FOIL_KERNELS_CPU_VMATH_H

#include <stdint.h>
#include <string.h>

/* e^x: x = n·ln2 + r, |r| <= ln2/2, degree-6 Taylor polynomial for e^r,
 * then 2^n by building the float's exponent bits. */
static inline float vexp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float shifter = 12582912.0f; /* 1.5·2^23: rounds to nearest int */
  float n = (x * 1.44269504088896341f + shifter) - shifter;
  float r = x - n * 0.693145751953125f;  /* ln2 high part */
  r = r - n * 1.428606765330187e-06f;    /* ln2 low part */
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.6666667e-1f +
            r * (4.1666668e-2f + r * (8.3333338e-3f + r * 1.3888889e-3f)))));
  int32_t bits = ((int32_t)n + 127) << 23;
  float s;
  memcpy(&s, &bits, sizeof s);
  return p * s;
}

/* log x for a normal x > 0: x = 2^e·f with f in [√½, √2), s = (f-1)/(f+1),
 * log f = 2·atanh(s) = 2s·(1 + s²/3 + s⁴/5 + s⁶/7 + s⁸/9) (|s| <= 0.172:
 * the next term is < 2e-9), then e·ln2 in two parts. */
static inline float vlog(float x) {
  int32_t bits;
  memcpy(&bits, &x, sizeof bits);
  int32_t e = ((bits >> 23) & 0xff) - 127;
  bits = (bits & 0x007fffff) | 0x3f800000; /* f in [1, 2) */
  float f;
  memcpy(&f, &bits, sizeof f);
  int big = f > 1.41421356f;
  f = big ? 0.5f * f : f;
  e += big;
  float s = (f - 1.0f) / (f + 1.0f), z = s * s;
  float p = 2.0f * s * (1.0f + z * (0.33333334f + z * (0.2f + z * (0.14285715f + z * 0.11111111f))));
  float fe = (float)e;
  return fe * 0.693145751953125f + (p + fe * 1.428606765330187e-06f);
}

/* erfc(z) for z >= 0: t = 1/(1+z/2), erfc ≈ t·exp(-z² + P(t)). */
static inline float verfc_pos(float z) {
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
            t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f +
            t * (-0.82215223f + t * 0.17087277f))))))));
  return t * vexp(-z * z + p);
}

/* Φ(x), the standard normal CDF, = 0.5·erfc(-x/√2). */
static inline float vphi(float x) {
  float z = (x < 0.0f ? -x : x) * 0.70710678118654752f;
  float e = 0.5f * verfc_pos(z);
  return x < 0.0f ? e : 1.0f - e;
}

#endif
