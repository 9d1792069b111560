/* matmul.c — the linear layer on OpenBLAS sgemm. Outside a parallel region
 * sgemm uses every kernel thread (see runtime.c). */
#include <cblas.h>
#include <string.h>

#include "kernels/kernels.h"

void matmul_forward(float *out, const float *inp, const float *W,
                    const float *b, int N, int C, int OC) {
  float beta = 0.0f;
  if (b) {
    /* Seed the output with the bias rows; sgemm adds the product (beta 1),
     * which saves a second pass over out. */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, sizeof(float) * OC);
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C,
              W, C, beta, out, OC);
}

#define MM_COLS 64
void matmul_backward(float *dinp, float *dW, float *db, const float *dout,
                     const float *inp, const float *W, int N, int C, int OC) {
  if (dinp)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f,
                dout, OC, W, C, 1.0f, dinp, C);
  if (dW)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout,
                OC, inp, C, 1.0f, dW, C);
  if (db) {
    /* Column sums: each block of columns is summed over rows, in order, by
     * one thread, so the bits do not depend on the thread count. */
    int nblk = (OC + MM_COLS - 1) / MM_COLS;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
      int c0 = blk * MM_COLS, c1 = c0 + MM_COLS < OC ? c0 + MM_COLS : OC;
      float acc[MM_COLS] = {0};
      for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * OC;
        for (int c = c0; c < c1; c++) acc[c - c0] += d[c];
      }
      for (int c = c0; c < c1; c++) db[c] += acc[c - c0];
    }
  }
}
