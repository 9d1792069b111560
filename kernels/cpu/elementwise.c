/* elementwise.c — GELU, residual adds, dropout: one pass over memory each. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/philox.h"
#include "kernels/cpu/vmath.h"
#include "kernels/kernels.h"

#define PAR_MIN 16384 /* below this many elements threads cost more than they save */

/* ---- exact GELU ------------------------------------------------------------ */

double exp_sum(const float *x, size_t n, float m) {
  double acc[8] = {0}, s = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int u = 0; u < 8; u++) acc[u] += (double)vexp(x[i + u] - m);
  for (int u = 0; u < 8; u++) s += acc[u];
  for (; i < n; i++) s += (double)vexp(x[i] - m);
  return s;
}

double softmax_mix_kl(const float *a, double la, const float *b, double lb, size_t n) {
  double acc[8] = {0}, s = 0; /* log-probabilities rounded once, from double */
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int u = 0; u < 8; u++) {
      float lp = (float)(a[i + u] - la), lq = (float)(b[i + u] - lb);
      lp = lp < -87.0f ? -87.0f : lp, lq = lq < -87.0f ? -87.0f : lq; /* as vexp */
      float m = 0.5f * (vexp(lp) + vexp(lq));
      acc[u] += (double)(m * (2.0f * vlog(m) - lp - lq));
    }
  for (int u = 0; u < 8; u++) s += acc[u];
  for (; i < n; i++) {
    float lp = (float)(a[i] - la), lq = (float)(b[i] - lb);
    lp = lp < -87.0f ? -87.0f : lp, lq = lq < -87.0f ? -87.0f : lq;
    float m = 0.5f * (vexp(lp) + vexp(lq));
    s += (double)(m * (2.0f * vlog(m) - lp - lq));
  }
  return 0.5 * s;
}

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    out[i] = x * vphi(x);
  }
}

/* GELU'(x) = Φ(x) + x·φ(x), φ(x) = exp(-x²/2)/√(2π). */
void gelu_backward(float *dinp, const float *inp, const float *out, const float *dout,
                   size_t n) {
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
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void add_inplace(float *out, const float *a, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) out[i] += a[i];
}

void scale_inplace(float *x, size_t n, float s) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* ---- dropout ------------------------------------------------------------------
 * Work is split in chunks at fixed offsets, so each element's mask is the
 * same whatever thread computes it. */

void dropout_forward(float *out, const float *inp, size_t n, float p,
                     uint64_t seed, uint64_t stream, uint64_t offset) {
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
