/* adamw.c — global gradient norm and the AdamW update. */
#include <math.h>

#include "kernels/cpu/threads.h"
#include "kernels/kernels.h"

/* Sum of squares in double over fixed 4096-element blocks, grouped into
 * SUMSQ_PARTS contiguous parts whose partial sums are added in order: the
 * grouping never depends on the thread count, so neither do the bits. */
#define SUMSQ_PARTS 64
double sumsq(const float *g, size_t n) {
  kernels_sync_threads();
  double part[SUMSQ_PARTS] = {0};
  size_t per = (n + SUMSQ_PARTS - 1) / SUMSQ_PARTS;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int p = 0; p < SUMSQ_PARTS; p++) {
    size_t lo = (size_t)p * per, hi = lo + per < n ? lo + per : n;
    double s = 0.0;
    for (size_t i = lo; i < hi; i += 4096) {
      size_t e = i + 4096 < hi ? i + 4096 : hi;
      float bs = 0.0f; /* a block in float (vectorizes), blocks in double */
      for (size_t j = i; j < e; j++) bs += g[j] * g[j];
      s += bs;
    }
    part[p] = s;
  }
  double s = 0.0;
  for (int p = 0; p < SUMSQ_PARTS; p++) s += part[p];
  return s;
}

/* Same operation order as torch.optim.AdamW's single-tensor path. */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n,
                  float lr, float b1, float b2, float eps, float wd, int t) {
  kernels_sync_threads();
  /* Scalars in double, as torch computes them in Python. */
  double bc1 = 1.0 - pow((double)b1, t);
  float bc2_sqrt = (float)sqrt(1.0 - pow((double)b2, t));
  float step = (float)((double)lr / bc1);
  float decay = (float)(1.0 - (double)lr * wd);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float gi = g[i];
    float mi = m[i] + (gi - m[i]) * (1.0f - b1); /* torch lerp_ */
    float vi = v[i] * b2 + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    p[i] = p[i] * decay - step * (mi / denom);
  }
}

void ema_update(float *dst, const float *src, size_t n, float m) {
  kernels_sync_threads();
  const float one_m = 1.0f - m;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) dst[i] = m * dst[i] + one_m * src[i];
}
