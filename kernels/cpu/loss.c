/* loss.c — L2 normalization, softmax cross-entropy and InfoNCE. */
#include <cblas.h>
#include <math.h>

#include "kernels/cpu/threads.h"
#include "kernels/kernels.h"

/* ---- L2 normalization (torch.nn.functional.normalize, eps 1e-12) --------- */

void l2norm_forward(float *out, float *norm, const float *inp, int N, int C) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *x = inp + (size_t)n * C;
    double s = 0.0;
    for (int c = 0; c < C; c++) s += (double)x[c] * x[c];
    float nr = (float)sqrt(s);
    if (nr < 1e-12f) nr = 1e-12f;
    norm[n] = nr;
    for (int c = 0; c < C; c++) out[(size_t)n * C + c] = x[c] / nr;
  }
}

void l2norm_backward(float *dinp, const float *dout, const float *out,
                     const float *norm, int N, int C) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *y = out + (size_t)n * C, *dy = dout + (size_t)n * C;
    float *dx = dinp + (size_t)n * C;
    /* When the norm was clamped, out = x/eps is linear in x. */
    int clamped = norm[n] <= 1e-12f;
    double dot = 0.0;
    if (!clamped)
      for (int c = 0; c < C; c++) dot += (double)y[c] * dy[c];
    float d = (float)dot, inv = 1.0f / norm[n];
    for (int c = 0; c < C; c++) dx[c] += (dy[c] - y[c] * d) * inv;
  }
}

/* ---- softmax cross-entropy --------------------------------------------------- */

/* Softmax of one row x[V] into p[V] (p may equal x); returns -log p[label].
 * The max is subtracted; the sum runs in double. decoupled: the label's
 * column leaves the denominator (and gets p = 0); the loss is then
 * -x[label] + log sum_{v != label} exp(x[v]). */
static double softmax_xent_row(float *p, const float *x, int V, int label, int decoupled) {
  float mx = -INFINITY;
  for (int v = 0; v < V; v++)
    if (!(decoupled && v == label)) mx = x[v] > mx ? x[v] : mx;
  float lab = x[label];
  double s = 0.0;
  for (int v = 0; v < V; v++) {
    p[v] = decoupled && v == label ? 0.0f : expf(x[v] - mx);
    s += p[v];
  }
  float inv = (float)(1.0 / s);
  for (int v = 0; v < V; v++) p[v] *= inv;
  return log(s) - (double)(lab - mx);
}

void crossentropy_forward(float *losses, float *probs, const float *logits,
                          const int32_t *labels, int N, int V) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    losses[n] = (float)softmax_xent_row(probs + (size_t)n * V,
                                        logits + (size_t)n * V, V, labels[n], 0);
}

void crossentropy_backward(float *dlogits, const float *probs,
                           const int32_t *labels, int N, int V, float scale) {
  kernels_sync_threads();
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *p = probs + (size_t)n * V;
    float *d = dlogits + (size_t)n * V;
    for (int v = 0; v < V; v++) d[v] += scale * p[v];
    d[labels[n]] -= scale;
  }
}

/* sum a·b over n floats in double, in a fixed order (n is small here). */
static double dot_rows(const float *a, const float *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* ---- InfoNCE ---------------------------------------------------------------------- */

float infonce_forward(float *probs, int *correct, const float *q, int nq,
                      const float *k, int nk, const float *kx, int nx, int D,
                      const int32_t *labels, float scale, int decoupled) {
  kernels_sync_threads();
  /* logits = scale·Q [K; Kx]^T into probs (two products side by side),
   * then softmax in place, row by row. */
  const int nt = nk + nx;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale, q, D,
              k, D, 0.0f, probs, nt);
  if (nx > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nx, D, scale, q, D,
                kx, D, 0.0f, probs + nk, nt);
  double total = 0.0;
  int right = 0;
#pragma omp parallel for schedule(static) reduction(+ : right) ordered
  for (int i = 0; i < nq; i++) {
    float *p = probs + (size_t)i * nt;
    int arg = 0;
    for (int j = 1; j < nt; j++) arg = p[j] > p[arg] ? j : arg;
    right += arg == labels[i];
    double li = softmax_xent_row(p, p, nt, labels[i], decoupled);
#pragma omp ordered
    total += li; /* rows added in order: same bits on any thread count */
  }
  if (correct) *correct = right;
  return (float)(total / nq);
}

void infonce_backward(float *dq, float *dk, float *dscale, float *probs,
                      const float *q, int nq, const float *k, int nk,
                      const float *kx, int nx, int D, const int32_t *labels,
                      float scale, float weight) {
  kernels_sync_threads();
  /* G = d(weight·loss)/d(logits) = weight·(P - onehot)/nq, in place (with
   * DCL the label's P is 0, which gives its -weight/nq all the same). */
  const int nt = nk + nx;
  float w = weight / (float)nq;
#pragma omp parallel for schedule(static)
  for (int i = 0; i < nq; i++) {
    float *p = probs + (size_t)i * nt;
    for (int j = 0; j < nt; j++) p[j] *= w;
    p[labels[i]] -= w;
  }
  /* d/dscale = sum_ij G_ij·<q_i,key_j> = sum_i <q_i, (G [K; Kx])_i>: with
   * dq it falls out of dq's own product as (<q,dq after> - <q,dq before>)
   * / scale, two cheap passes instead of nq·(nk+nx)·D multiply-adds. */
  double qdq0 = 0.0;
  if (dscale && dq) qdq0 = (double)dot_rows(q, dq, (size_t)nq * D);
  if (dscale && !dq) {
    double acc = 0.0;
#pragma omp parallel for schedule(static) ordered
    for (int i = 0; i < nq; i++) {
      const float *qi = q + (size_t)i * D;
      double ri = 0.0;
      for (int j = 0; j < nt; j++) {
        const float *kj = j < nk ? k + (size_t)j * D : kx + (size_t)(j - nk) * D;
        float dot = 0.0f;
        for (int d = 0; d < D; d++) dot += qi[d] * kj[d];
        ri += (double)probs[(size_t)i * nt + j] * dot;
      }
#pragma omp ordered
      acc += ri;
    }
    *dscale += (float)acc;
  }
  /* logits = scale·Q [K; Kx]^T: dQ += scale·G [K; Kx], dK += scale·G_K^T Q. */
  if (dq) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, scale,
                probs, nt, k, D, 1.0f, dq, D);
    if (nx > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nx, scale,
                  probs + nk, nt, kx, D, 1.0f, dq, D);
    if (dscale) *dscale += (float)(((double)dot_rows(q, dq, (size_t)nq * D) - qdq0) / scale);
  }
  if (dk)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, D, nq, scale,
                probs, nt, q, D, 1.0f, dk, D);
}
