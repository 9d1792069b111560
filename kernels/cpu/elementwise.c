/* elementwise.c — GELU, residual adds, dropout: one pass over memory each. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/philox.h"
#include "kernels/cpu/vmath.h"
#include "kernels/kernels.h"

#define PAR_MIN 16384 /* below this many elements threads cost more than they save */

/* ---- exact GELU ------------------------------------------------------------ */

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    out[i] = x * vphi(x);
  }
}

/* GELU'(x) = Φ(x) + x·φ(x), φ(x) = exp(-x²/2)/√(2π). */
void gelu_backward(float *dinp, const float *inp, const float *dout,
                   size_t n) {
  const float inv_sqrt_2pi = 0.3989422804014327f;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t i = 0; i < n; i++) {
    float x = inp[i];
    float cdf = vphi(x);
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
 * Work is split by Philox blocks of 4 elements, so each element's mask is
 * the same whatever thread computes it. */

void dropout_forward(float *out, const float *inp, size_t n, float p,
                     uint64_t seed, uint64_t stream) {
  if (p <= 0.0f) {
    if (out != inp) memcpy(out, inp, n * sizeof(float));
    return;
  }
  float scale = 1.0f / (1.0f - p);
  size_t nblk = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t blk = 0; blk < nblk; blk++) {
    philox_ctr r = block_at(seed, stream, blk);
    for (size_t w = 0; w < 4 && blk * 4 + w < n; w++) {
      size_t i = blk * 4 + w;
      out[i] = dropout_keep(r.v[w], p) ? inp[i] * scale : 0.0f;
    }
  }
}

void dropout_backward(float *dinp, const float *dout, size_t n, float p,
                      uint64_t seed, uint64_t stream) {
  if (p <= 0.0f) {
    add_inplace(dinp, dout, n);
    return;
  }
  float scale = 1.0f / (1.0f - p);
  size_t nblk = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (size_t blk = 0; blk < nblk; blk++) {
    philox_ctr r = block_at(seed, stream, blk);
    for (size_t w = 0; w < 4 && blk * 4 + w < n; w++) {
      size_t i = blk * 4 + w;
      if (dropout_keep(r.v[w], p)) dinp[i] += dout[i] * scale;
    }
  }
}
