/* sched_ref.h — the dense reference scheduling pass (sched_ref.c): the
 * oracle for coordinator/sched.c's tests and the anchor of its benchmark.
 * Types and verdicts are sched.h's; a running job's ranks, and a started
 * job's, are one count per worker. */
#ifndef FOIL_TESTS_SCHED_REF_H
#define FOIL_TESTS_SCHED_REF_H

#include "coordinator/sched.h"

typedef struct {
  double end;                      /* expected end (INFINITY: no time limit) */
  const uint32_t *ranks_on;        /* ranks on each node (length n_nodes) */
  uint32_t gpus_per_rank;
} sched_ref_running;

typedef struct {
  int verdict;          /* SCHED_* */
  double est_start;     /* START: now; reserved: its time; else 0 */
  uint32_t *ranks_on;   /* START: ranks per node (points into the pass) */
} sched_ref_result;

typedef struct sched_ref sched_ref;

int sched_ref_new(sched_ref **out, foil_err *err);
void sched_ref_destroy(sched_ref **s);
int sched_ref_pass(sched_ref *s, double now, const sched_node *nodes, size_t n_nodes,
                   const sched_ref_running *running, size_t n_running, const sched_pending *pending,
                   size_t n_pending, size_t depth, sched_ref_result *out, foil_err *err);
int sched_ref_fit(const uint32_t *slots, const uint32_t *gpus, const int *usable, size_t n,
                  const sched_pending *job, uint32_t *ranks_on, uint32_t *scratch);

#endif
