/* attention.c — scaled dot-product multi-head self-attention over a packed
 * qkv buffer, with key padding mask, optional causal mask and dropout on the
 * probabilities.
 *
 * Work is split over (batch, head) pairs: each pair reads and writes only
 * its own columns, so threads never share an output and results do not
 * depend on the thread count. Per pair the loops are written so the inner
 * loop is either an 8-lane dot product or an axpy over the head dimension;
 * both vectorize without reassociating sums, so the bits are fixed.
 * Cost per pair: forward 2·T·T·hs multiply-adds, backward 4·T·T·hs. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/philox.h"
#include "kernels/kernels.h"

/* Dot product with 8 independent partial sums, added in a fixed order. */
static inline float dot8(const float *a, const float *b, int n) {
  float acc[8] = {0};
  int d = 0;
  for (; d + 8 <= n; d += 8)
    for (int l = 0; l < 8; l++) acc[l] += a[d + l] * b[d + l];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
            ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; d < n; d++) s += a[d] * b[d];
  return s;
}

static inline void axpy(float *y, float a, const float *x, int n) {
  for (int d = 0; d < n; d++) y[d] += a * x[d];
}

/* Keep-mask element of attention dropout (1 when p == 0). */
static inline float drop_scale(float p, float inv_keep, uint64_t seed,
                               uint64_t stream, uint64_t off) {
  if (p <= 0.0f) return 1.0f;
  uint32_t u = block_at(seed, stream, off >> 2).v[off & 3];
  return dropout_keep(u, p) ? inv_keep : 0.0f;
}

void attention_forward(float *out, float *att, const float *qkv,
                       const uint8_t *mask, int B, int T, int C, int NH,
                       int causal, float p_drop, uint64_t seed,
                       uint64_t stream) {
  const int hs = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)hs);
  const float inv_keep = p_drop > 0.0f ? 1.0f / (1.0f - p_drop) : 1.0f;
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < B * NH; bh++) {
    const int b = bh / NH, h = bh % NH;
    const float *base = qkv + (size_t)b * T * C3;
    const uint8_t *m = mask + (size_t)b * T;
    for (int i = 0; i < T; i++) {
      const float *qi = base + (size_t)i * C3 + h * hs;
      float *row = att + ((size_t)bh * T + i) * T;
      int jmax = causal ? i + 1 : T;
      float mx = -INFINITY;
      for (int j = 0; j < T; j++) {
        if (j < jmax && m[j]) {
          row[j] = dot8(qi, base + (size_t)j * C3 + C + h * hs, hs) * scale;
          mx = row[j] > mx ? row[j] : mx;
        } else {
          row[j] = -INFINITY;
        }
      }
      float *oi = out + ((size_t)b * T + i) * C + h * hs;
      memset(oi, 0, sizeof(float) * hs);
      if (mx == -INFINITY) { /* no visible key: zero probabilities */
        memset(row, 0, sizeof(float) * T);
        continue;
      }
      double s = 0.0;
      for (int j = 0; j < T; j++) {
        row[j] = row[j] == -INFINITY ? 0.0f : expf(row[j] - mx);
        s += row[j];
      }
      float inv = (float)(1.0 / s);
      for (int j = 0; j < T; j++) {
        row[j] *= inv;
        if (row[j] == 0.0f) continue;
        float pj = row[j] * drop_scale(p_drop, inv_keep, seed, stream,
                                       ((uint64_t)bh * T + i) * T + j);
        if (pj != 0.0f) axpy(oi, pj, base + (size_t)j * C3 + 2 * C + h * hs, hs);
      }
    }
  }
}

void attention_backward(float *dqkv, float *scratch, const float *dout,
                        const float *qkv, const float *att, int B, int T,
                        int C, int NH, float p_drop, uint64_t seed,
                        uint64_t stream) {
  const int hs = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)hs);
  const float inv_keep = p_drop > 0.0f ? 1.0f / (1.0f - p_drop) : 1.0f;
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < B * NH; bh++) {
    const int b = bh / NH, h = bh % NH;
    const float *base = qkv + (size_t)b * T * C3;
    float *dbase = dqkv + (size_t)b * T * C3;
    for (int i = 0; i < T; i++) {
      const float *p = att + ((size_t)bh * T + i) * T;
      float *dp = scratch + ((size_t)bh * T + i) * T;
      const float *doi = dout + ((size_t)b * T + i) * C + h * hs;
      const float *qi = base + (size_t)i * C3 + h * hs;
      float *dqi = dbase + (size_t)i * C3 + h * hs;
      /* dP'_j = <dO_i, v_j>; dV_j += P'_ij·dO_i; dP_j = dP'_j·keep_j. */
      float sum_pdp = 0.0f;
      for (int j = 0; j < T; j++) {
        if (p[j] == 0.0f) { dp[j] = 0.0f; continue; }
        float ks = drop_scale(p_drop, inv_keep, seed, stream,
                              ((uint64_t)bh * T + i) * T + j);
        if (ks == 0.0f) { dp[j] = 0.0f; continue; }
        const float *vj = base + (size_t)j * C3 + 2 * C + h * hs;
        axpy(dbase + (size_t)j * C3 + 2 * C + h * hs, p[j] * ks, doi, hs);
        dp[j] = dot8(doi, vj, hs) * ks;
        sum_pdp += p[j] * dp[j];
      }
      /* Softmax backward: dS_j = P_j·(dP_j - sum_l P_l dP_l); logits were
       * scaled, so dQ_i += scale·sum_j dS_j k_j and dK_j += scale·dS_j q_i. */
      for (int j = 0; j < T; j++) {
        if (p[j] == 0.0f) continue;
        float ds = p[j] * (dp[j] - sum_pdp) * scale;
        const float *kj = base + (size_t)j * C3 + C + h * hs;
        axpy(dqi, ds, kj, hs);
        axpy(dbase + (size_t)j * C3 + C + h * hs, ds, qi, hs);
      }
    }
  }
}
