/* sbatch.h — how foil-serve batches concurrent searches.
 *
 * Each turn of the query loop takes every request waiting on its socket,
 * as long as the batch stays within batch_max queries (a request that
 * would overflow a non-empty batch waits for the next turn; one request
 * larger than batch_max is a batch alone). The batch is then split into
 * groups of requests that ask for the same k and the same id filter, and
 * each group is one vs_search over all its queries, so a request gets
 * exactly the hits it would get alone, whatever it was batched with.
 *
 * Ownership: sbatch_plan returns one malloc'ed block (free it with
 * sbatch_free). Cost: O(requests²) in the worst case (few groups in
 * practice).
 */
#ifndef FOIL_WORKER_SERVE_SBATCH_H
#define FOIL_WORKER_SERVE_SBATCH_H

#include <stdint.h>

#include "common/err.h"
#include "foil/v1/search.pb-c.h"

/* 1 when a request of `add` queries joins a batch that holds `have`. */
int sbatch_joins(int have, int add, int batch_max);

typedef struct {
  int k;
  int64_t lo, hi;     /* lo > hi: no filter */
  int nreq;           /* requests in this group */
  int *req;           /* their indices into the batch, in arrival order */
  int nq;             /* queries in all */
} sbatch_group;

typedef struct {
  int ngroups;
  sbatch_group *groups;
} sbatch_plan_t;

/* Groups n (already checked) requests. */
int sbatch_plan(const Foil__V1__SearchRequest *const *reqs, int n, sbatch_plan_t **out, foil_err *err);
void sbatch_free(sbatch_plan_t **p);

#endif
