/* sched.h — one scheduling pass: which pending jobs start now, on which
 * workers, and when and why the others wait.
 *
 * Pure computation over plain arrays (no sockets, no store), so it is
 * tested and benchmarked on its own (tests/unit/test_sched.c,
 * bench/bench_sched.c).
 *
 * Policy: conservative backfill. Pending jobs are taken in priority order
 * (the caller sorts). Free capacity is a profile over time built from the
 * running jobs' expected ends (start + time limit; no limit: never). Each
 * job, in order, gets the earliest time at which its whole gang fits for
 * its whole time limit without touching what earlier jobs reserved; if that
 * time is now it starts, otherwise it holds a reservation there. So a small
 * job runs ahead of a larger one (backfill) only when it delays no job
 * before it. Reservations are made for the first `depth` jobs that wait;
 * later jobs may still start now under the same rule but reserve nothing
 * (like Slurm's bf_max_job_test).
 *
 * Gang placement: a job needs `ranks` ranks, each one slot and
 * gpus_per_rank GPUs; `nodes` 0 puts them on as few workers as fit (one
 * worker: the one with the least room that fits, to keep large holes
 * large), N splits them as evenly as possible over exactly N workers. All
 * ranks or none, and never on more than `max_nodes` workers (a gang that
 * would need more does not fit).
 *
 * Cost: the free capacity over time is kept sparse — what each worker has
 * free now, plus a sorted list per worker of the times it changes (a
 * running job's end, a reservation's start and end, a started job's end)
 * — so memory is O(N + P + G·H), never segments × workers: P = the
 * changes (≤ the running jobs' placements + 2 per worker of each gang
 * started or reserved), G = the distinct GPUs-per-rank values asked for,
 * H = the most ranks one worker can take. Per pending job: O(H) to judge
 * whether it fits at all and fits now (per-GPUs-per-rank histograms of
 * capacity); a job that starts costs O(N + its workers' changes); a
 * reservation sweeps the candidate start times once, O(N + P + S·H) (S =
 * distinct change times; O(S) when the gang has no max_nodes or nodes); a
 * job that fits nowhere costs the same sweep, or O(1) when a gang of its
 * kind (GPUs per rank, nodes, max_nodes) with no more ranks and no longer
 * a time limit already found nothing in the same profile.
 * Decisions are bit for bit those of the dense reference
 * (tests/reference/sched_ref.c; tests/unit/test_sched.c compares them).
 */
#ifndef FOIL_COORDINATOR_SCHED_H
#define FOIL_COORDINATOR_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct {
  uint32_t slots, gpus;            /* total */
  uint32_t slots_free, gpus_free;  /* now */
  int usable;                      /* up and not drained */
} sched_node;

typedef struct {
  uint32_t node, ranks;            /* `ranks` ranks on node `node` */
} sched_place;

typedef struct {
  double end;                      /* expected end (INFINITY: no time limit) */
  const sched_place *place;        /* where its ranks run: n_place entries, one per node (else EINVAL) */
  size_t n_place;
  uint32_t gpus_per_rank;
} sched_running;

typedef struct {
  uint32_t ranks, gpus_per_rank, nodes;
  double duration;                 /* time limit in seconds; INFINITY: none */
  int eligible;                    /* dependencies satisfied */
  uint32_t max_nodes;              /* the most workers one gang may span; 0: no limit */
} sched_pending;

enum {
  SCHED_START = 0,      /* starts now */
  SCHED_PRIORITY,       /* would fit now, but that would delay a job before it */
  SCHED_RESOURCES,      /* waits for running jobs to end */
  SCHED_DEPENDENCY,     /* its dependencies have not ended yet */
  SCHED_NEVER,          /* asks for more than the usable workers have */
  SCHED_TOO_WIDE,       /* the usable workers have enough only over more than max_nodes of them */
};

typedef struct {
  int verdict;              /* SCHED_* */
  double est_start;         /* START: now; reserved: its time; else 0 */
  const sched_place *place; /* START: its ranks per node, by node index (points into the pass) */
  size_t n_place;
} sched_result;

typedef struct sched sched;

int sched_new(sched **out, foil_err *err);
void sched_destroy(sched **s);

/* One pass at time `now`. out has n_pending entries; their place lists
 * stay valid until the next pass. depth: reservations made
 * (0: 200). FOIL_EINVAL if a running job names a node ≥ n_nodes or one
 * node twice. */
int sched_pass(sched *s, double now, const sched_node *nodes, size_t n_nodes,
               const sched_running *running, size_t n_running, const sched_pending *pending,
               size_t n_pending, size_t depth, sched_result *out, foil_err *err);

/* Bytes s keeps between passes (its buffers' capacities), for tests and
 * benchmarks. O(1). */
size_t sched_bytes(const sched *s);

/* Places a gang on free capacity (slots[], gpus[] per node): ranks per node
 * into ranks_on; 1 if it fits, else 0. scratch: 2·n. O(n + m log m), m =
 * the nodes with room. Exposed for tests. */
int sched_fit(const uint32_t *slots, const uint32_t *gpus, const int *usable, size_t n,
              const sched_pending *job, uint32_t *ranks_on, uint32_t *scratch);

#endif
