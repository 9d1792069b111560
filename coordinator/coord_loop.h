/* coord_loop.h — the trainer <-> index loop, the coordinator's part: a
 * pretrain job whose spec carries a "refresh" object (worker/run/spec.h)
 * gets a refresh job (worker/run/refresh.h) after every checkpoint whose
 * step is a multiple of refresh.every_steps; that job publishes a new
 * index version and, with "mine", the negatives bank the trainer picks up.
 *
 * How the coordinator learns of a checkpoint: rank 0's progress carries,
 * in every message after it, "checkpoint": PATH and "checkpoint_step": S
 * in metrics_json. Progress is lossy and latest-wins, so the fields are
 * sticky: a dropped message loses nothing; a step S is acted on once (the
 * job remembers the last step it settled; a submit that failed is tried
 * again at the next message), and the refresh job's submission id
 * "refresh-<jobid>-<S>" makes a repeat (a restarted coordinator) a no-op;
 * that id taken by any other job is logged WARN. A missed step in between (two checkpoints within one progress
 * gap) is skipped: the next one refreshes with a newer checkpoint anyway.
 *
 * The refresh job: kind "refresh", name "<job name>-refresh", spec_json
 * = the refresh object's keys (corpus, dtype, keep_versions, mine, batch,
 * threads) plus "kind": "refresh", "name": refresh.index, "checkpoint":
 * PATH and "job": {"ranks": refresh.ranks}; resources.ranks =
 * refresh.ranks (default 1); the pretrain job's workdir and priority. The
 * submission is logged as an event of the pretrain job.
 *
 * This header is the pure part (no coordinator state), for tests.
 * Ownership: coord_loop_spec.spec_json is malloc'ed; coord_loop_spec_free.
 */
#ifndef FOIL_COORDINATOR_COORD_LOOP_H
#define FOIL_COORDINATOR_COORD_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct {
  int due;               /* step is a multiple of every_steps */
  int64_t every_steps;
  uint32_t ranks;
  char *spec_json;       /* the refresh spec (when due) */
  char name[129];        /* "<job name>-refresh" */
  char submission_id[129]; /* "refresh-<job id>-<step>" */
} coord_loop_spec;

/* The refresh job for checkpoint `checkpoint` of step `step` of pretrain
 * job job_id named job_name with spec pretrain_json. FOIL_ENOTFOUND: the
 * spec has no "refresh" object (not a loop job). FOIL_EINVAL: the object
 * is malformed (every_steps, index, ranks), named. Else FOIL_OK with
 * out->due telling whether this step refreshes (spec_json only then). */
int coord_loop_build(const char *pretrain_json, const char *job_name, uint64_t job_id, const char *checkpoint,
                     int64_t step, coord_loop_spec *out, foil_err *err);
void coord_loop_spec_free(coord_loop_spec *s);

/* Reads "checkpoint" and "checkpoint_step" from a progress metrics_json:
 * 1 when both are there (path copied into out, n bytes), else 0. */
int coord_loop_checkpoint(const char *metrics_json, char *out, size_t n, int64_t *step);

/* What coord_loop_on_progress needs of the coordinator (coord_loop.c's
 * coord_loop_progress gives the real ones; tests give their own). */
typedef struct {
  const char *kind, *name, *submitter, *spec_json;  /* kind NULL: no such job */
} coord_loop_job;

typedef struct {
  void *ctx;
  /* Submits ls's refresh job (coord_submit): *id; *existing 1 when
   * ls->submission_id names a job already (that job's id). */
  int (*submit)(void *ctx, const coord_loop_spec *ls, uint64_t *id, int *existing, foil_err *err);
  /* Job id, its strings valid until the next call. */
  coord_loop_job (*job)(void *ctx, uint64_t id);
  void (*log)(void *ctx, const char *level, const char *msg);  /* the coordinator's log */
  void (*event)(void *ctx, const char *msg);                   /* an event of the pretrain job */
} coord_loop_ops;

/* 1 when job x is the refresh the loop submitted for ls (kind "refresh",
 * ls's name, the pretrain job's submitter, its spec naming ls's index and
 * checkpoint): a repeat of the loop's own submission. */
int coord_loop_is_ours(const coord_loop_job *x, const coord_loop_spec *ls, const char *submitter,
                       const char *checkpoint);

/* One progress message of pretrain job job_id (job_name, submitter, spec
 * pretrain_json) with metrics_json. When it names a checkpoint step above
 * *loop_step that is due, the refresh job is submitted through ops.
 * *loop_step (the last step acted on) advances only once the step is
 * settled: submitted, found submitted by this loop already (a restarted
 * coordinator; nothing logged), not due, not a loop job, or impossible (a
 * malformed refresh object; a submission id taken by a job that is not
 * this loop's refresh: logged WARN naming that job). A failed submit
 * (logged ERROR) leaves it, so the next progress message, which repeats
 * the checkpoint fields, submits that step again. */
void coord_loop_on_progress(const coord_loop_ops *ops, uint64_t job_id, const char *job_name, const char *submitter,
                            const char *pretrain_json, const char *metrics_json, int64_t *loop_step);

#endif
