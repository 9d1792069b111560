/* topk.c — streaming top-k lists (kernels.h "streaming top-k").
 *
 * Each list is a sorted array, best first. A candidate is first compared
 * with the list's last (worst) entry — the common case on a large corpus is
 * a rejection after one compare — and otherwise inserted by shifting the
 * worse entries down one slot. */
#include <math.h>

#include "kernels/cpu/threads.h"
#include "kernels/cpu/topk_list.h"
#include "kernels/kernels.h"



void topk_init(float *top_score, int64_t *top_id, int nq, int K) {
  if (nq <= 0 || K <= 0) return;
  size_t n = (size_t)nq * (size_t)K;
  for (size_t i = 0; i < n; i++) {
    top_score[i] = -INFINITY;
    top_id[i] = -1;
  }
}

void topk_merge(float *top_score, int64_t *top_id, int nq, int K,
                const float *scores, int nc, size_t ld, int64_t id0) {
  kernels_sync_threads();
  if (nq <= 0 || K <= 0 || nc <= 0) return;
#pragma omp parallel for schedule(static) if ((size_t)nq * (size_t)nc > 32768)
  for (int q = 0; q < nq; q++) {
    float *ts = top_score + (size_t)q * K;
    int64_t *ti = top_id + (size_t)q * K;
    const float *s = scores + (size_t)q * ld;
    float worst = ts[K - 1];
    int64_t worst_id = ti[K - 1];
    for (int j = 0; j < nc; j++) {
      float v = s[j];
      /* Rejects NaN and everything below the worst entry in one compare. */
      if (!(v >= worst)) continue;
      int64_t id = id0 + j;
      if (!topk_before(v, id, worst, worst_id)) continue;
      int p = K - 1;
      while (p > 0 && topk_before(v, id, ts[p - 1], ti[p - 1])) {
        ts[p] = ts[p - 1];
        ti[p] = ti[p - 1];
        p--;
      }
      ts[p] = v;
      ti[p] = id;
      worst = ts[K - 1];
      worst_id = ti[K - 1];
    }
  }
}

void topk_offer(float *top_score, int64_t *top_id, int K, const float *scores, int n,
                const int64_t *ids, int64_t id_lo, int64_t id_hi, int64_t key0) {
  if (K <= 0 || n <= 0) return;
  int filter = id_lo <= id_hi;
  float worst = top_score[K - 1];
  int64_t worst_id = top_id[K - 1];
  for (int j0 = 0; j0 < n; j0 += 16) {
    int m = n - j0 < 16 ? n - j0 : 16;
    /* A full list on a large corpus rejects 16 candidates per compare. */
    if (!topk_any_ge(scores + j0, m, worst)) continue;
    for (int j = j0; j < j0 + m; j++) {
      float v = scores[j];
      if (!(v >= worst)) continue;
      int64_t rid = ids[j];
      if (rid < 0 || (filter && (rid < id_lo || rid > id_hi))) continue;
      int64_t key = key0 < 0 ? rid : key0 + j;
      if (!topk_before(v, key, worst, worst_id)) continue;
      topk_insert(top_score, top_id, K, v, key);
      worst = top_score[K - 1];
      worst_id = top_id[K - 1];
    }
  }
}
