/* matmul.c — the linear layer on OpenBLAS sgemm, and for up to MM_SMALL_N
 * rows on a kernel of its own (below). Outside a parallel region sgemm
 * uses every kernel thread (see runtime.c). */
#include <cblas.h>
#include <string.h>

#include "kernels/kernels.h"

/* Few rows (decoding steps: one token per sequence): sgemm would copy all
 * of W into packed panels on every call, as much memory traffic as the
 * product itself at N = 8. This path streams W once instead: blocks of 4
 * rows of W stay in L1 while every input row is dotted with them. Dots
 * accumulate in MM_LANES independent lanes (vectorized by GCC; no
 * -ffast-math needed), summed at the end in a fixed order: the bits do not
 * depend on the thread count, nor on which other rows share the call. */
enum { MM_SMALL_N = 12, MM_LANES = 16 }; /* sgemm is as fast from N = 16 on */

static float lanes_sum(const float *acc) {
  float s = 0.0f;
  for (int u = 0; u < MM_LANES; u++) s += acc[u];
  return s;
}

/* o0[0..4) += x0 · w0..w3 and o1[0..4) += x1 · w0..w3: 8 independent
 * accumulators, enough to hide the FMA latency. */
static void dot4x2(float *o0, float *o1, const float *x0, const float *x1, const float *w0,
                   const float *w1, const float *w2, const float *w3, int C) {
  float a[8][MM_LANES] = {{0}};
  int c = 0;
  for (; c + MM_LANES <= C; c += MM_LANES)
    for (int u = 0; u < MM_LANES; u++) {
      float p = x0[c + u], q = x1[c + u];
      float v0 = w0[c + u], v1 = w1[c + u], v2 = w2[c + u], v3 = w3[c + u];
      a[0][u] += v0 * p, a[1][u] += v1 * p, a[2][u] += v2 * p, a[3][u] += v3 * p;
      a[4][u] += v0 * q, a[5][u] += v1 * q, a[6][u] += v2 * q, a[7][u] += v3 * q;
    }
  float s[8];
  for (int r = 0; r < 8; r++) s[r] = lanes_sum(a[r]);
  for (; c < C; c++) {
    s[0] += w0[c] * x0[c], s[1] += w1[c] * x0[c], s[2] += w2[c] * x0[c], s[3] += w3[c] * x0[c];
    s[4] += w0[c] * x1[c], s[5] += w1[c] * x1[c], s[6] += w2[c] * x1[c], s[7] += w3[c] * x1[c];
  }
  for (int r = 0; r < 4; r++) o0[r] += s[r], o1[r] += s[4 + r];
}

/* o0[0..4) += x0 · w0..w3: the odd last row, with the same arithmetic per
 * row as dot4x2 (so a row's bits do not depend on its partner). */
static void dot4x1(float *o0, const float *x0, const float *w0, const float *w1, const float *w2,
                   const float *w3, int C) {
  float a[4][MM_LANES] = {{0}};
  int c = 0;
  for (; c + MM_LANES <= C; c += MM_LANES)
    for (int u = 0; u < MM_LANES; u++) {
      float p = x0[c + u];
      a[0][u] += w0[c + u] * p, a[1][u] += w1[c + u] * p, a[2][u] += w2[c + u] * p, a[3][u] += w3[c + u] * p;
    }
  float s[4];
  for (int r = 0; r < 4; r++) s[r] = lanes_sum(a[r]);
  for (; c < C; c++) s[0] += w0[c] * x0[c], s[1] += w1[c] * x0[c], s[2] += w2[c] * x0[c], s[3] += w3[c] * x0[c];
  for (int r = 0; r < 4; r++) o0[r] += s[r];
}

static float dot1(const float *x, const float *w, int C) {
  float a[MM_LANES] = {0};
  int c = 0;
  for (; c + MM_LANES <= C; c += MM_LANES)
    for (int u = 0; u < MM_LANES; u++) a[u] += w[c + u] * x[c + u];
  float s = lanes_sum(a);
  for (; c < C; c++) s += w[c] * x[c];
  return s;
}

static void matmul_small(float *out, const float *inp, const float *W, const float *b, int N,
                         int C, int OC) {
  const int nblk = (OC + 3) / 4;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < nblk; blk++) {
    const int o0 = 4 * blk;
    for (int n = 0; n < N; n++) {
      float *o = out + (size_t)n * OC + o0;
      const float *x = inp + (size_t)n * C;
      const float *w0 = W + (size_t)o0 * C;
      if (o0 + 4 <= OC && n + 1 < N) { /* rows n and n+1 together */
        float *o1 = o + OC;
        for (int r = 0; r < 4; r++) o[r] = o1[r] = b ? b[o0 + r] : 0.0f;
        dot4x2(o, o1, x, x + C, w0, w0 + C, w0 + 2 * C, w0 + 3 * C, C);
        n++;
      } else if (o0 + 4 <= OC) { /* the last row of an odd count */
        for (int r = 0; r < 4; r++) o[r] = b ? b[o0 + r] : 0.0f;
        dot4x1(o, x, w0, w0 + C, w0 + 2 * C, w0 + 3 * C, C);
      } else {
        for (int r = 0; o0 + r < OC; r++)
          o[r] = (b ? b[o0 + r] : 0.0f) + dot1(x, W + (size_t)(o0 + r) * C, C);
      }
    }
  }
}

void matmul_forward(float *out, const float *inp, const float *W,
                    const float *b, int N, int C, int OC) {
  if (N <= MM_SMALL_N) {
    matmul_small(out, inp, W, b, N, C, OC);
    return;
  }
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
