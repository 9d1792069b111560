/* smerge.h — the router's side of a search: backends that each hold some
 * shards of one index answer the same request; their top-k lists are
 * merged into one, and replies from different versions are never mixed.
 *
 * Order is search.proto's: score descending, equal scores the lower id
 * first. Shards are disjoint, so no id appears in two lists.
 *
 * Ownership: smerge_hits writes into the caller's arrays; keys point into
 * the input lists' strings (valid while those are). Cost: O(total log k).
 */
#ifndef FOIL_WORKER_SERVE_SMERGE_H
#define FOIL_WORKER_SERVE_SMERGE_H

#include <stddef.h>
#include <stdint.h>

#include "foil/v1/search.pb-c.h"

#define SMERGE_MAX_LISTS 64  /* backends of one router */

/* 1 if (sa, ia) ranks before (sb, ib). */
int smerge_before(float sa, int64_t ia, float sb, int64_t ib);

/* Merges the n lists (at most SMERGE_MAX_LISTS) (each sorted, may be NULL or empty) into at most k
 * hits: ids, scores and keys (keys may be NULL: not wanted) of capacity k.
 * *any_keys is set to 1 when some list carries keys (a hit from a list
 * without keys gets ""). Returns the number of hits. */
size_t smerge_hits(const Foil__V1__SearchHits *const *lists, size_t n, size_t k, int64_t *ids,
                   float *scores, char **keys, int *any_keys);

/* The version rule: 1 when every reply names the same index and version,
 * 0 when they differ (a swap is under way on some backend: ask again). */
int smerge_same_version(const Foil__V1__SearchReply *const *replies, size_t n);

/* The shard rule: backend b answered from shards[b] (nshards[b] of them)
 * of a version it says has total[b] shards. 1 when every backend names the
 * same total (1..SMERGE_MAX_SHARDS) and every shard 0..total-1 is held by
 * exactly one backend: the merged reply then holds every row of the
 * version once. Else 0, and `why` (cap bytes) names the shards held by no
 * backend, those held by several (with their names[b]), a shard number
 * beyond the total, or the backends that disagree on the total. Cost:
 * O(total + sum of nshards). */
#define SMERGE_MAX_SHARDS 65536
int smerge_covers(const uint32_t *const *shards, const size_t *nshards, const uint32_t *total, size_t n,
                  const char *const *names, char *why, size_t cap);

#endif
