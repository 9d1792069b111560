/* smerge.c — see smerge.h. */
#include "worker/serve/smerge.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

/* appends to why[cap] at *at */
__attribute__((format(printf, 4, 5))) static void add(char *why, size_t cap, size_t *at, const char *fmt, ...) {
  if (*at >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(why + *at, cap - *at, fmt, ap);
  va_end(ap);
  *at = w < 0 ? cap : *at + (size_t)w;
}

int smerge_covers(const uint32_t *const *shards, const size_t *nshards, const uint32_t *total, size_t n,
                  const char *const *names, char *why, size_t cap) {
  size_t at = 0;
  if (cap) why[0] = 0;
  if (!n) return add(why, cap, &at, "no backends"), 0;
  for (size_t b = 0; b < n; b++)
    if (total[b] != total[0] || !total[b] || total[b] > SMERGE_MAX_SHARDS) {
      add(why, cap, &at, "the backends disagree on the version's shard count (");
      for (size_t i = 0; i < n; i++) add(why, cap, &at, "%s%s: %u", i ? ", " : "", names[i], total[i]);
      add(why, cap, &at, "%s)", total[b] ? "" : "; 0: a backend that does not say: an older foil-serve?");
      return 0;
    }
  uint32_t t = total[0];
  int *owner = malloc(t * sizeof *owner);  /* backend + 1 holding shard s; -1: several */
  if (!owner) return add(why, cap, &at, "no memory to check %u shards", t), 0;
  memset(owner, 0, t * sizeof *owner);
  int ok = 1;
  for (size_t b = 0; b < n; b++)
    for (size_t i = 0; i < nshards[b]; i++) {
      uint32_t s = shards[b][i];
      if (s >= t) {
        if (ok) add(why, cap, &at, "%s holds shard %u of a version of %u shard(s)", names[b], s, t);
        ok = 0;
      } else if (owner[s] == 0) {
        owner[s] = (int)b + 1;
      } else if (owner[s] > 0) {
        add(why, cap, &at, "%sshard %u is held by both %s and %s", ok ? "" : "; ", s, names[owner[s] - 1], names[b]);
        owner[s] = -1, ok = 0;
      }
    }
  size_t missing = 0;
  for (uint32_t s = 0; s < t; s++) missing += owner[s] == 0;
  if (missing) {
    add(why, cap, &at, "%s%zu of the version's %u shard(s) held by no backend:", ok ? "" : "; ", missing, t);
    size_t shown = 0;
    for (uint32_t s = 0; s < t && shown < 16; s++)
      if (!owner[s]) add(why, cap, &at, "%s %u", shown++ ? "," : "", s);
    if (missing > shown) add(why, cap, &at, ", ...");
    ok = 0;
  }
  free(owner);
  return ok;
}
