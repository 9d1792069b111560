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
 * job remembers the last step it saw), and the refresh job's submission
 * id "refresh-<jobid>-<S>" makes a repeat (a restarted coordinator) a
 * no-op. A missed step in between (two checkpoints within one progress
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

#endif
