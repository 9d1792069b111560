/* layernorm.c — LayerNorm over the last dimension, as torch.nn.LayerNorm:
 * y = (x - mean)/sqrt(var + eps)·w + b with the biased variance. Row
 * statistics are summed in double (two passes), so rows of any width match
 * PyTorch to float rounding. */
#include <math.h>

#include "kernels/cpu/threads.h"
#include "kernels/kernels.h"

/* Sums with 8 independent lanes added in a fixed order: vectorizes without
 * reassociating, so the bits are the same on every run. */
static inline double sum8d(const float *x, int n) {
  double acc[8] = {0};
  int c = 0;
  for (; c + 8 <= n; c += 8)
    for (int l = 0; l < 8; l++) acc[l] += x[c + l];
  double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; c < n; c++) s += x[c];
  return s;
}

static inline double sumsq8d(const float *x, int n, double m) {
  double acc[8] = {0};
  int c = 0;
  for (; c + 8 <= n; c += 8)
    for (int l = 0; l < 8; l++) {
      double d = (double)x[c + l] - m;
      acc[l] += d * d;
    }
  double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; c < n; c++) {
    double d = (double)x[c] - m;
    s += d * d;
  }
  return s;
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N, int C,
                       float eps) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    double m = sum8d(x, C) / C;
    double v = sumsq8d(x, C, m);
    float mf = (float)m, rs = (float)(1.0 / sqrt(v / C + eps));
    float *o = out + (size_t)n * C;
    for (int c = 0; c < C; c++) o[c] = (x[c] - mf) * rs * w[c] + b[c];
    mean[n] = mf;
    rstd[n] = rs;
  }
}

/* Two passes: rows in parallel for dinp, then column blocks in parallel for
 * dw/db (each column summed over rows in order by one thread). */
#define LN_COLS 32
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean,
                        const float *rstd, int N, int C) {
  kernels_sync_threads();
  if (dinp) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
      const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
      float m = mean[n], rs = rstd[n];
      float ag[8] = {0}, agx[8] = {0};
      int c = 0;
      for (; c + 8 <= C; c += 8)
        for (int l = 0; l < 8; l++) {
          float g = w[c + l] * dy[c + l];
          ag[l] += g;
          agx[l] += g * (x[c + l] - m) * rs;
        }
      float sum_g = ((ag[0] + ag[1]) + (ag[2] + ag[3])) + ((ag[4] + ag[5]) + (ag[6] + ag[7]));
      float sum_gx = ((agx[0] + agx[1]) + (agx[2] + agx[3])) + ((agx[4] + agx[5]) + (agx[6] + agx[7]));
      for (; c < C; c++) {
        float g = w[c] * dy[c];
        sum_g += g;
        sum_gx += g * (x[c] - m) * rs;
      }
      float mg = sum_g / C, mgx = sum_gx / C;
      float *dx = dinp + (size_t)n * C;
      for (int c = 0; c < C; c++) {
        float xh = (x[c] - m) * rs;
        dx[c] += (w[c] * dy[c] - mg - xh * mgx) * rs;
      }
    }
  }
  if (dw || db) {
    int nblk = (C + LN_COLS - 1) / LN_COLS;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
      int c0 = blk * LN_COLS, c1 = c0 + LN_COLS < C ? c0 + LN_COLS : C;
      float aw[LN_COLS] = {0}, ab[LN_COLS] = {0};
      for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float m = mean[n], rs = rstd[n];
        for (int c = c0; c < c1; c++) {
          aw[c - c0] += dy[c] * (x[c] - m) * rs;
          ab[c - c0] += dy[c];
        }
      }
      for (int c = c0; c < c1; c++) {
        if (dw) dw[c] += aw[c - c0];
        if (db) db[c] += ab[c - c0];
      }
    }
  }
}
