/* pretrain.h — the `pretrain` job of foil-run: contrastive training of a
 * text encoder on every rank of a comm, with checkpoints, exact resume and
 * retrieval evaluation.
 *
 * Every rank runs pretrain_run with the same arguments. Rank 0 writes the
 * job directory: log (one line per event), metrics (JSON lines: training
 * health every log step, retrieval metrics every eval), ckpt/step_<n>.h5.
 * A job directory that already holds a usable checkpoint is resumed from
 * it (the newest one that opens cleanly; damaged ones are reported and
 * skipped): parameters, optimizer moments, MoCo encoder and queue, the
 * learnable temperature, the loader cursor and the step all come back, so
 * the run continues bit for bit where the uninterrupted one would be (same
 * world size; another world size of the same global batch resumes with the
 * same data order but not the same bits).
 *
 * A step's evaluation comes before its checkpoint, and the metrics through
 * it are fsynced before the checkpoint is written: a checkpoint never
 * stands for an unevaluated step (evaluation changes none of its state,
 * so the order changes no trained bit). A run drops the metrics lines
 * after the step it starts from (all of them on a fresh start), an
 * earlier attempt's that it logs again, and lines torn by a kill
 * (jobdir_metrics_from), so each step has one line of each kind; a resumed
 * run takes the BM25 baseline from the lines kept instead of logging it
 * again. The log keeps every attempt's lines. pairs_per_s is over the
 * steps' own time, time_compute_s + time_comm_s + time_data_s (time_comm_s
 * inside the steps' collectives), not over the bank checks, evaluations,
 * checkpoints and logging between log lines.
 *
 * Inside a cluster (launched by foil-worker) rank 0 also sends progress to
 * its worker at every log step and evaluation (worker/run/progress.h), and
 * checks the attempt fence before each checkpoint: an attempt the
 * coordinator has replaced stops with FOIL_EABORTED instead of writing.
 *
 * A spec with model.kind "decoder" is a decoder's job: pretrain_run hands
 * it to lmtrain_run (worker/run/lmtrain.h) and what follows is the
 * encoder's.
 *
 * Per step: the loader's batch (this rank's B pairs), one training forward
 * (dropout masks from (seed, step)), the loss across ranks (model/loss.h),
 * backward, gradients averaged over ranks, clipping, AdamW at the
 * scheduled learning rate; MoCo: momentum update and enqueue of the
 * all-gathered keys.
 */
#ifndef FOIL_WORKER_RUN_PRETRAIN_H
#define FOIL_WORKER_RUN_PRETRAIN_H

#include <stdint.h>

#include "common/err.h"
#include "worker/run/comm.h"

typedef struct {
  const char *spec_path; /* the job spec (JSON), read by every rank */
  const char *root;      /* data root: datasets/<name>/... */
  const char *job_dir;   /* where log, metrics and ckpt/ go; NULL: <root>/jobs/<name> */
  int64_t stop_after;    /* > 0: stop after this many steps of this run (tests) */
  int quiet;             /* 1: no log lines on stderr */
} pretrain_args;

int pretrain_run(const pretrain_args *a, comm *c, foil_err *err);

#endif
