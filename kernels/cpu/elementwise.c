/* elementwise.c — GELU, residual adds, dropout: one pass over memory each. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/philox.h"
#include "kernels/cpu/threads.h"
#include "kernels/cpu/vmath.h"
#include "kernels/kernels.h"

#define PAR_MIN 16384 /* below this many elements threads cost more than they save */

/* ---- exact GELU ------------------------------------------------------------ */

float max_of(const float *x, size_t n) {
  float m[16], r = -INFINITY;
  for (int u = 0; u < 16; u++) m[u] = -INFINITY;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) /* 16 lanes: one vmaxps per step, no chain through one register */
    for (int u = 0; u < 16; u++) m[u] = x[i + u] > m[u] ? x[i + u] : m[u];
  for (; i < n; i++) r = x[i] > r ? x[i] : r;
  for (int u = 0; u < 16; u++) r = m[u] > r ? m[u] : r;
  return r;
}

/* exp_sum and softmax_mix_kl: float terms computed a block at a time (a
 * plain loop GCC vectorizes), then summed in double over 8 lanes, term i
 * into lane i mod 8 in order. Summing as each term was made kept GCC from
 * vectorizing either (2.3 ns per entry, 10x slower); the lanes and their
 * order, hence the bits, are what they were. */
#define SUM_BLOCK 256

static void lanes_add(double acc[8], const float *t, int n) {
  for (int j = 0; j < n; j += 8)
    for (int u = 0; u < 8; u++) acc[u] += (double)t[j + u];
}

double exp_sum(const float *x, size_t n, float m) {
  double acc[8] = {0}, s = 0;
  float t[SUM_BLOCK];
  size_t i = 0;
  for (; i + SUM_BLOCK <= n; i += SUM_BLOCK) {
    for (int j = 0; j < SUM_BLOCK; j++) t[j] = vexp(x[i + j] - m);
    lanes_add(acc, t, SUM_BLOCK);
  }
  const int rest = (int)((n - i) / 8 * 8);
  for (int j = 0; j < rest; j++) t[j] = vexp(x[i + j] - m);
  lanes_add(acc, t, rest);
  i += rest;
  for (int u = 0; u < 8; u++) s += acc[u];
  for (; i < n; i++) s += (double)vexp(x[i] - m);
  return s;
}

/* m·(2·log m - lp - lq), m = (e^lp + e^lq)/2, for the exact log-probabilities
 * lp = a - la, lq = b - lb (rounded once from double, never floored: an lp
 * of -1000 counts its full m·1000 in the linear part). Only the
 * exponentials underflow: e^lp below -87 (where vexp stops) is 0, and the
 * term where both are is 0 (0·log 0 = 0). One of them -inf against a finite
 * other gives +inf, as HF. vexp/vlog stay unconditional and the -87 tests
 * are selects, so GCC still vectorizes the loop (a conditional call does
 * not: 9x slower). */
static void mix_kl_terms(float *t, const float *a, double la, const float *b, double lb, int n) {
  for (int j = 0; j < n; j++) {
    float lp = (float)(a[j] - la), lq = (float)(b[j] - lb);
    float kp = lp < -87.0f ? 0.0f : 1.0f, kq = lq < -87.0f ? 0.0f : 1.0f;
    float m = 0.5f * (kp * vexp(lp) + kq * vexp(lq));
    float v = m * (2.0f * vlog(m) - lp - lq);
    t[j] = lp < -87.0f && lq < -87.0f ? 0.0f : v;
  }
}

double softmax_mix_kl(const float *a, double la, const float *b, double lb, size_t n) {
  double acc[8] = {0}, s = 0;
  float t[SUM_BLOCK];
  size_t i = 0;
  for (; i + SUM_BLOCK <= n; i += SUM_BLOCK) {
    mix_kl_terms(t, a + i, la, b + i, lb, SUM_BLOCK);
    lanes_add(acc, t, SUM_BLOCK);
  }
  const int rest = (int)((n - i) / 8 * 8);
  mix_kl_terms(t, a + i, la, b + i, lb, rest);
  lanes_add(acc, t, rest);
  i += rest;
  for (int u = 0; u < 8; u++) s += acc[u];
  for (; i < n; i++) {
    float one;
    mix_kl_terms(&one, a + i, la, b + i, lb, 1);
    s += (double)one;
  }
  return 0.5 * s;
}

void gelu_forward(float *out, const float *inp, size_t n) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    out[i] = x * vphi(x);
  }
}

/* GELU'(x) = Φ(x) + x·φ(x), φ(x) = exp(-x²/2)/√(2π). */
void gelu_backward(float *dinp, const float *inp, const float *out, const float *dout,
                   size_t n) {
  kernels_sync_threads();
  const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    float cdf = x != 0.0f ? out[i] / x : 0.5f;
    float pdf = vexp(-0.5f * x * x) * inv_sqrt_2pi;
    dinp[i] += dout[i] * (cdf + x * pdf);
  }
}

/* ---- residual --------------------------------------------------------------- */

void residual_forward(float *out, const float *a, const float *b, size_t n) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void add_inplace(float *out, const float *a, size_t n) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) out[i] += a[i];
}

void scale_inplace(float *x, size_t n, float s) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* ---- dropout ------------------------------------------------------------------
 * Work is split in chunks at fixed offsets, so each element's mask is the
 * same whatever thread computes it. */

void dropout_forward(float *out, const float *inp, size_t n, float p,
                     uint64_t seed, uint64_t stream, uint64_t offset) {
  kernels_sync_threads();
  if (p <= 0.0f) {
    if (out != inp) memcpy(out, inp, n * sizeof(float));
    return;
  }
  const size_t nchunk = (n + DROPOUT_SPAN - 1) / DROPOUT_SPAN;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t ch = 0; ch < nchunk; ch++) {
    size_t lo = ch * DROPOUT_SPAN, len = lo + DROPOUT_SPAN < n ? DROPOUT_SPAN : n - lo;
    dropout_scales(out + lo, inp + lo, len, p, seed, stream, offset + lo);
  }
}

void dropout_backward(float *dinp, const float *dout, size_t n, float p,
                      uint64_t seed, uint64_t stream, uint64_t offset) {
  kernels_sync_threads();
  if (p <= 0.0f) {
    add_inplace(dinp, dout, n);
    return;
  }
  const size_t nchunk = (n + DROPOUT_SPAN - 1) / DROPOUT_SPAN;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t ch = 0; ch < nchunk; ch++) {
    size_t lo = ch * DROPOUT_SPAN, len = lo + DROPOUT_SPAN < n ? DROPOUT_SPAN : n - lo;
    float tmp[DROPOUT_SPAN];
    dropout_scales(tmp, dout + lo, len, p, seed, stream, offset + lo);
    for (size_t i = 0; i < len; i++) dinp[lo + i] += tmp[i];
  }
}

int dropout_kept(uint64_t seed, uint64_t stream, uint64_t i, float p) {
  uint32_t w = rng_u32(seed, stream, i >> 1);
  uint32_t h = (i & 1) ? w >> 16 : w & 0xFFFFu;
  return h >= dropout_threshold(p);
}
