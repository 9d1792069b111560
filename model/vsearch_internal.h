/* vsearch_internal.h — vs_search's memory knob, for model/vsearch.c and its
 * unit test only (not part of vsearch.h's API).
 *
 * vs_search keeps, per thread, top-k lists for the queries it scores:
 * k slots per query for the float32 / unrescored blocks and k·rescore for
 * the rescored ones, 12 bytes a slot (a float score, an int64 id). Those
 * lists would grow with threads × queries × k × rescore (a mining call of
 * 2^22 query·k pairs on a float16 index took ~240 MB per thread), so the
 * queries are scored in groups whose lists, all threads together, fit in
 * the budget. Each query's lists are independent of the other queries':
 * the grouping changes no result bit, only how often the blocks are read
 * (once per group instead of once per call).
 */
#ifndef FOIL_MODEL_VSEARCH_INTERNAL_H
#define FOIL_MODEL_VSEARCH_INTERNAL_H

#include <stddef.h>

#include "model/vsearch.h"

/* vs_search's budget for the per-thread lists, in bytes: 256 MB. A group
 * at this size still holds hundreds of queries at 128 threads, k 100 and
 * rescore 4 (768 KB of lists per query), so each read of a block still
 * serves whole sgemm tiles (kernels.h SCAN_QTILE). */
#define VS_LIST_BUDGET ((size_t)256 << 20)

typedef struct {
  int groups;          /* query groups scored (1 when the lists fit at once) */
  int group_queries;   /* queries per group (the last may have fewer) */
  size_t list_bytes;   /* bytes of per-thread lists allocated, all threads */
} vs_search_stats;

/* vs_search with the list budget `budget` (bytes) instead of
 * VS_LIST_BUDGET; st (may be NULL) gets what the call did. Queries per
 * group: budget / (T·slots·12) with T the thread count and slots k (if any
 * block is not rescored) + the largest k·rescore of the rescored blocks;
 * when that is below nq and above SCAN_QTILE, rounded down to whole
 * tiles; at least SCAN_DIRECT_MAX + 1 (5) queries or all nq: a group
 * scores on the same path as the whole call (kernels.h scan_topk), and
 * only lists so large that 5 queries' exceed the budget (k·T·(1+rescore)
 * above ~4 M) exceed it. Same results, bit for bit, for any budget. */
int vs_search_budget(const vs_block *blocks, int nblocks, const float *q, int nq, int k,
                     int64_t id_lo, int64_t id_hi, int rescore, float *out_scores,
                     int64_t *out_ids, size_t budget, vs_search_stats *st, foil_err *err);

#endif
