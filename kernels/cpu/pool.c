/* pool.c — token states [B,T,C] to one vector per sequence [B,C]. */
#include <string.h>

#include "kernels/cpu/threads.h"
#include "kernels/kernels.h"

static int count_valid(const uint8_t *m, int T) {
  int n = 0;
  for (int t = 0; t < T; t++) n += m[t] != 0;
  return n;
}

void pool_forward(float *out, const float *inp, const uint8_t *mask, int B,
                  int T, int C, int mode) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    float *o = out + (size_t)b * C;
    const float *x = inp + (size_t)b * T * C;
    if (mode == POOL_FIRST) {
      memcpy(o, x, sizeof(float) * C);
      continue;
    }
    memset(o, 0, sizeof(float) * C);
    int n = count_valid(mask + (size_t)b * T, T);
    if (n == 0) continue;
    for (int t = 0; t < T; t++)
      if (mask[(size_t)b * T + t])
        for (int c = 0; c < C; c++) o[c] += x[(size_t)t * C + c];
    for (int c = 0; c < C; c++) o[c] /= (float)n; /* as sum/count in torch */
  }
}

void pool_backward(float *dinp, const float *dout, const uint8_t *mask, int B,
                   int T, int C, int mode) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; b++) {
    const float *d = dout + (size_t)b * C;
    float *dx = dinp + (size_t)b * T * C;
    if (mode == POOL_FIRST) {
      for (int c = 0; c < C; c++) dx[c] += d[c];
      continue;
    }
    int n = count_valid(mask + (size_t)b * T, T);
    if (n == 0) continue;
    float inv = 1.0f / (float)n;
    for (int t = 0; t < T; t++)
      if (mask[(size_t)b * T + t])
        for (int c = 0; c < C; c++) dx[(size_t)t * C + c] += d[c] * inv;
  }
}
