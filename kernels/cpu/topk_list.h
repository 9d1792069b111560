/* topk_list.h — one top-k list's order and insertion, shared by topk.c and
 * scan.c. Internal to the CPU kernels. A list is K (score, id) pairs, best
 * first; an empty slot has id -1 and score -INFINITY. */
#ifndef FOIL_KERNELS_CPU_TOPK_LIST_H
#define FOIL_KERNELS_CPU_TOPK_LIST_H

#include <stdint.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* (s, i) ranks before (ts, ti): empty slots (ti < 0) rank last; then higher
 * score; then lower id. */
static inline int topk_before(float s, int64_t i, float ts, int64_t ti) {
  return ti < 0 || s > ts || (s == ts && i < ti);
}

/* Inserts (v, id), which ranks before the last entry, shifting worse
 * entries down one slot. O(K). */
static inline void topk_insert(float *ts, int64_t *ti, int K, float v, int64_t id) {
  int p = K - 1;
  while (p > 0 && topk_before(v, id, ts[p - 1], ti[p - 1])) {
    ts[p] = ts[p - 1];
    ti[p] = ti[p - 1];
    p--;
  }
  ts[p] = v;
  ti[p] = id;
}

/* Nonzero when some s[0..m) >= w (m <= 16). NaN compares false. */
static inline int topk_any_ge(const float *s, int m, float w) {
#if defined(__AVX512F__)
  __mmask16 lanes = (__mmask16)((1u << m) - 1u);
  return _mm512_mask_cmp_ps_mask(lanes, _mm512_maskz_loadu_ps(lanes, s), _mm512_set1_ps(w),
                                 _CMP_GE_OQ) != 0;
#else
  int any = 0;
  for (int j = 0; j < m; j++) any |= s[j] >= w;
  return any;
#endif
}

#endif
