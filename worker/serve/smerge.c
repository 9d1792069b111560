/* smerge.c — see smerge.h. */
#include "worker/serve/smerge.h"

#include <string.h>

int smerge_before(float sa, int64_t ia, float sb, int64_t ib) {
  if (sa != sb) return sa > sb;
  return ia < ib;
}

size_t smerge_hits(const Foil__V1__SearchHits *const *lists, size_t n, size_t k, int64_t *ids,
                   float *scores, char **keys, int *any_keys) {
  /* a k-way merge: each list is sorted, so the next hit is the best head */
  size_t pos[SMERGE_MAX_LISTS] = {0}, got = 0;
  if (n > SMERGE_MAX_LISTS) n = SMERGE_MAX_LISTS;
  *any_keys = 0;
  for (size_t l = 0; l < n; l++)
    if (lists[l] && lists[l]->n_keys) *any_keys = 1;
  while (got < k) {
    size_t best = n;
    for (size_t l = 0; l < n; l++) {
      const Foil__V1__SearchHits *h = lists[l];
      if (!h || pos[l] >= h->n_ids || pos[l] >= h->n_scores) continue;
      if (best == n || smerge_before(h->scores[pos[l]], h->ids[pos[l]], lists[best]->scores[pos[best]],
                                     lists[best]->ids[pos[best]]))
        best = l;
    }
    if (best == n) break;
    const Foil__V1__SearchHits *h = lists[best];
    size_t i = pos[best]++;
    ids[got] = h->ids[i];
    scores[got] = h->scores[i];
    if (keys) keys[got] = i < h->n_keys ? h->keys[i] : (char *)"";
    got++;
  }
  return got;
}

int smerge_same_version(const Foil__V1__SearchReply *const *replies, size_t n) {
  for (size_t i = 1; i < n; i++) {
    if (replies[i]->version != replies[0]->version) return 0;
    if (strcmp(replies[i]->index ? replies[i]->index : "", replies[0]->index ? replies[0]->index : "")) return 0;
  }
  return 1;
}
