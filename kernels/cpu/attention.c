/* attention.c — scaled dot-product multi-head self-attention over a packed
 * qkv buffer, with key padding mask, optional causal mask and dropout on the
 * probabilities.
 *
 * Work is split over (batch, head) pairs: each pair reads and writes only
 * its own columns (and its own T×T block of att and scratch), so threads
 * never share an output and results do not depend on the thread count. Per
 * pair the four products are single-threaded sgemm calls (OpenBLAS's OpenMP
 * flavour runs an sgemm issued inside a parallel region in the calling
 * thread), with the softmax and its backward done row by row in between.
 * Cost per pair: forward 4·T·T·hs flops, backward 8·T·T·hs. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "kernels/cpu/lanes.h"
#include "kernels/cpu/philox.h"
#include "kernels/cpu/threads.h"
#include "kernels/cpu/vmath.h"
#include "kernels/kernels.h"

/* out[j] = dropout of p[j], j < n, mask elements off..off+n-1. */
static void drop_row(float *out, const float *p, int n, float p_drop, uint64_t seed,
                     uint64_t stream, uint64_t off) {
  for (int j0 = 0; j0 < n; j0 += DROPOUT_SPAN) {
    int len = n - j0 < DROPOUT_SPAN ? n - j0 : DROPOUT_SPAN;
    dropout_scales(out + j0, p + j0, (size_t)len, p_drop, seed, stream, off + (uint64_t)j0);
  }
}

/* Masked softmax of one row in place: keys j < jmax with m[j] != 0 are
 * visible, the others get probability 0 (all zeros when none is). Max and
 * sum use 8 independent lanes in a fixed order, exp is vmath's vexp, so
 * the loops vectorize and the bits do not depend on the thread count. */
static void softmax_row(float *row, const uint8_t *m, int jmax, int T) {
  float mx8[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                  -INFINITY, -INFINITY, -INFINITY, -INFINITY};
  int j = 0;
  for (; j + 8 <= T; j += 8)
    for (int l = 0; l < 8; l++) {
      int vis = j + l < jmax && m[j + l];
      float v = vis ? row[j + l] : -INFINITY;
      row[j + l] = v;
      mx8[l] = v > mx8[l] ? v : mx8[l];
    }
  float mx = -INFINITY;
  for (int l = 0; l < 8; l++) mx = mx8[l] > mx ? mx8[l] : mx;
  for (; j < T; j++) {
    if (!(j < jmax && m[j])) row[j] = -INFINITY;
    mx = row[j] > mx ? row[j] : mx;
  }
  if (mx == -INFINITY) {
    memset(row, 0, sizeof(float) * T);
    return;
  }
  float s8[8] = {0};
  j = 0;
  for (; j + 8 <= T; j += 8)
    for (int l = 0; l < 8; l++) {
      float e = row[j + l] == -INFINITY ? 0.0f : vexp(row[j + l] - mx);
      row[j + l] = e;
      s8[l] += e;
    }
  float s = ((s8[0] + s8[1]) + (s8[2] + s8[3])) + ((s8[4] + s8[5]) + (s8[6] + s8[7]));
  for (; j < T; j++) {
    row[j] = row[j] == -INFINITY ? 0.0f : vexp(row[j] - mx);
    s += row[j];
  }
  float inv = 1.0f / s;
  for (j = 0; j < T; j++) row[j] *= inv;
}

void attention_forward(float *out, float *att, float *scratch, const float *qkv,
                       const uint8_t *mask, int B, int T, int C, int NH,
                       int causal, float p_drop, uint64_t seed,
                       uint64_t stream, uint64_t offset) {
  kernels_sync_threads();
  const int hs = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < B * NH; bh++) {
    const int b = bh / NH, h = bh % NH;
    const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
    const uint8_t *m = mask + (size_t)b * T;
    float *S = att + (size_t)bh * T * T;
    /* S = scale·Q K^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C3, k, C3, 0.0f,
                S, T);
    /* masked softmax, row by row; a row with no visible key becomes zeros */
    for (int i = 0; i < T; i++) softmax_row(S + (size_t)i * T, m, causal ? i + 1 : T, T);
    /* O = dropout(P) V */
    const float *Pd = S;
    if (p_drop > 0.0f) {
      float *D = scratch + (size_t)bh * T * T;
      for (int i = 0; i < T; i++)
        drop_row(D + (size_t)i * T, S + (size_t)i * T, T, p_drop, seed, stream,
                 offset + ((uint64_t)bh * T + i) * T);
      Pd = D;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, Pd, T, v, C3, 0.0f,
                out + (size_t)b * T * C + h * hs, C);
  }
}

void attention_backward(float *dqkv, float *scratch, const float *dout,
                        const float *qkv, const float *att, int B, int T,
                        int C, int NH, float p_drop, uint64_t seed,
                        uint64_t stream, uint64_t offset) {
  kernels_sync_threads();
  const int hs = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < B * NH; bh++) {
    const int b = bh / NH, h = bh % NH;
    const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
    float *dq = dqkv + (size_t)b * T * C3 + h * hs, *dk = dq + C, *dv = dq + 2 * C;
    const float *dO = dout + (size_t)b * T * C + h * hs;
    const float *P = att + (size_t)bh * T * T;
    float *D = scratch + (size_t)bh * T * T;
    /* dV += dropout(P)^T dO */
    const float *Pd = P;
    if (p_drop > 0.0f) {
      for (int i = 0; i < T; i++)
        drop_row(D + (size_t)i * T, P + (size_t)i * T, T, p_drop, seed, stream,
                 offset + ((uint64_t)bh * T + i) * T);
      Pd = D;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, Pd, T, dO, C, 1.0f,
                dv, C3);
    /* dP = dropout'(dO V^T) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dO, C, v, C3, 0.0f, D,
                T);
    for (int i = 0; i < T; i++) {
      float *dp = D + (size_t)i * T;
      const float *p = P + (size_t)i * T;
      if (p_drop > 0.0f) {
        /* multiply by the same mask: drop_row of dP itself */
        drop_row(dp, dp, T, p_drop, seed, stream, offset + ((uint64_t)bh * T + i) * T);
      }
      /* softmax backward, in place: dS = P·(dP - sum_l P_l dP_l)·scale */
      float sum = 0.0f;
      for (int j = 0; j < T; j++) sum += p[j] * dp[j];
      for (int j = 0; j < T; j++) dp[j] = p[j] * (dp[j] - sum) * scale;
    }
    /* dQ += dS K, dK += dS^T Q */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, D, T, k, C3, 1.0f, dq,
                C3);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, D, T, q, C3, 1.0f, dk,
                C3);
  }
}

/* Scores of one query against the row's cached keys (slots 0..len-1) and
 * its own key (slot len), softmax, then the weighted sum of the values.
 * Plain loops over hs in a fixed order: no BLAS call whose blocking could
 * depend on sizes, and the same bits on any thread count. A score is 8
 * lanes of products summed e by e, the lanes then added by a fixed tree;
 * four keys are scored at once (independent chains, the same sums). The
 * exponentials are made in one loop and summed in order after it; each
 * output element sums p_j·v_j over j in order in a register, 64 elements
 * at a time in 4 chains (one chain per 16 had each FMA wait on the last). */
/* s[j] = scale·q·k_j for the keys k_j (stride C; slot L is kn) */
static void att_scores(float *s, const float *q, const float *K, const float *kn, int L, int C,
                       int hs, float scale) {
  const int h8 = hs / 8 * 8;
  int j = 0;
  for (; j + 4 <= L; j += 4) {
    const float *k0 = K + (size_t)j * C, *k1 = k0 + C, *k2 = k1 + C, *k3 = k2 + C;
    lanes_v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (int e = 0; e < h8; e += 8) {
      lanes_v8 qv = lanes_load8(q + e);
      a0 += qv * lanes_load8(k0 + e), a1 += qv * lanes_load8(k1 + e);
      a2 += qv * lanes_load8(k2 + e), a3 += qv * lanes_load8(k3 + e);
    }
    lanes_v4 d = lanes_sum4x8(a0, a1, a2, a3);
    const float *ks[4] = {k0, k1, k2, k3};
    for (int t = 0; t < 4; t++) {
      for (int e = h8; e < hs; e++) d[t] += q[e] * ks[t][e];
      s[j + t] = d[t] * scale;
    }
  }
  for (; j <= L; j++) {
    const float *k = j < L ? K + (size_t)j * C : kn;
    lanes_v8 a = {0};
    for (int e = 0; e < h8; e += 8) a += lanes_load8(q + e) * lanes_load8(k + e);
    float d = lanes_sum8(a);
    for (int e = h8; e < hs; e++) d += q[e] * k[e];
    s[j] = d * scale;
  }
}

void attention_cache_forward(float *out, float *scratch, const float *qkv,
                             const float *kcache, const float *vcache,
                             const int *len, const int *rows_idx, int n, int R,
                             int max_len, int C, int NH) {
  kernels_sync_threads();
  const int hs = C / NH, C3 = 3 * C, h16 = hs / 16 * 16;
  const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(static)
  for (int gh = 0; gh < n * NH; gh++) {
    const int g = gh / NH, h = gh % NH;
    const int row = rows_idx ? rows_idx[g] : g, L = len[row];
    const float *K = kcache + (size_t)row * max_len * C + h * hs;
    const float *V = vcache + (size_t)row * max_len * C + h * hs;
    float *s = scratch + (size_t)gh * (max_len + 1);
    for (int i = 0; i < R; i++) {
      const float *q = qkv + ((size_t)g * R + i) * C3 + h * hs;
      const float *kn = q + C, *vn = q + 2 * C;
      att_scores(s, q, K, kn, L, C, hs, scale);
      const float mx = max_of(s, (size_t)L + 1);
      for (int j = 0; j <= L; j++) s[j] = vexp(s[j] - mx);
      float sum = 0.0f;
      for (int j = 0; j <= L; j++) sum += s[j];
      float inv = 1.0f / sum;
      float *o = out + ((size_t)g * R + i) * C + h * hs;
      for (int e0 = 0; e0 < h16; e0 += 64) { /* up to 4 independent sums per key */
        const int nb = h16 - e0 >= 64 ? 4 : (h16 - e0) / 16;
        lanes_v16 acc[4] = {{0}, {0}, {0}, {0}};
        for (int j = 0; j <= L; j++) {
          const float *v = (j < L ? V + (size_t)j * C : vn) + e0;
          const float p = s[j] * inv;
          for (int b = 0; b < nb; b++) {
            lanes_v16 vv;
            memcpy(&vv, v + 16 * b, sizeof vv);
            acc[b] += p * vv;
          }
        }
        memcpy(o + e0, acc, (size_t)nb * sizeof acc[0]);
      }
      for (int e = h16; e < hs; e++) {
        float a = 0.0f;
        for (int j = 0; j <= L; j++) a += s[j] * inv * (j < L ? V[(size_t)j * C + e] : vn[e]);
        o[e] = a;
      }
    }
  }
}
