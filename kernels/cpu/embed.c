/* embed.c — token + learned position embedding. */
#include "kernels/cpu/threads.h"
#include "kernels/kernels.h"

void embed_forward(float *out, const int32_t *ids, const float *wte,
                   const float *wpe, int B, int T, int C) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static)
  for (int bt = 0; bt < B * T; bt++) {
    const float *te = wte + (size_t)ids[bt] * C;
    const float *pe = wpe + (size_t)(bt % T) * C;
    float *o = out + (size_t)bt * C;
    for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
  }
}

/* Column blocks are owned by threads and every thread walks the tokens in
 * order, so repeated ids add up in the same order on any thread count. */
#define EMB_COLS 16
void embed_backward(float *dwte, float *dwpe, const float *dout,
                    const int32_t *ids, int B, int T, int C) {
  kernels_sync_threads();
  int nblk = (C + EMB_COLS - 1) / EMB_COLS;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < nblk; blk++) {
    int c0 = blk * EMB_COLS, c1 = c0 + EMB_COLS < C ? c0 + EMB_COLS : C;
    for (int bt = 0; bt < B * T; bt++) {
      const float *d = dout + (size_t)bt * C;
      if (dwte) {
        float *g = dwte + (size_t)ids[bt] * C;
        for (int c = c0; c < c1; c++) g[c] += d[c];
      }
      if (dwpe) {
        float *g = dwpe + (size_t)(bt % T) * C;
        for (int c = c0; c < c1; c++) g[c] += d[c];
      }
    }
  }
}
