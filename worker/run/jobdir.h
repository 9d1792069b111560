/* jobdir.h — what rank 0 of every foil-run job opens in its job directory:
 * the directory itself (and a subdirectory, e.g. ckpt/), the `log` and
 * `metrics` files (appended to; the metrics trimmed back to the checkpoint
 * a run starts from, jobdir_metrics_from), and the progress channel to its
 * worker.
 *
 *   FILE *log, *metrics; progress *prog;
 *   jobdir_open(dir, "ckpt", &log, &metrics, &prog, &err);
 *   ... jobdir_resume_pick, load the checkpoint of step s (0: none) ...
 *   if (rank == 0) jobdir_metrics_from(dir, s, &metrics, &dropped, &err);
 *
 * Ownership: the caller closes the files (fclose) and destroys prog; on an
 * error, whatever was opened is left in the out-pointers for the caller's
 * usual clean-up. Cost: a few syscalls.
 */
#ifndef FOIL_WORKER_RUN_JOBDIR_H
#define FOIL_WORKER_RUN_JOBDIR_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "worker/run/comm.h"
#include "worker/run/progress.h"

/* Makes dir (and dir/sub when sub is not NULL), opens dir/log and
 * dir/metrics for appending and the progress channel (progress_open).
 * FOIL_EPERM naming the directory when it cannot be made or written. */
int jobdir_open(const char *dir, const char *sub, FILE **log, FILE **metrics, progress **prog, foil_err *err);

/* Rank 0, before the first step: dir/metrics as it stood when the state
 * the run starts from was saved, so a run does not log a step twice.
 * `from` is the step of the checkpoint resumed from (0 for a fresh start):
 * an earlier attempt may have logged steps after it (up to its next
 * checkpoint), which this run is about to log again. Kept: the lines of
 * steps < from, and of step `from` itself when from > 0 (the job writes a
 * step's lines, its evaluation included, and fsyncs them before that
 * step's checkpoint); dropped: every other line (on a fresh start all,
 * also a step-0 evaluation that eval.at_start repeats) and any line torn
 * by a kill (a whole line is a JSON object that starts with "step", as
 * every line the jobs write does, and ends with '}' and a newline).
 * When something is dropped the file is published anew (foil_write_file_
 * atomic: a temporary, fsync, rename, so a crash leaves the old file or
 * the new one) and *metrics, the job's append handle on it (jobdir_open),
 * is closed and reopened on the new file; otherwise the file is left
 * alone. *dropped (may be NULL) gets the number of lines dropped, for the
 * job's log; the log itself is never trimmed (it is the history of every
 * attempt, and says where each resumed). On an error *metrics may be NULL
 * (the old handle closed, no new one). Cost: one read of the file, one
 * write of it when something goes. */
int jobdir_metrics_from(const char *dir, int64_t from, FILE **metrics, size_t *dropped, foil_err *err);

/* Every rank: the checkpoint a job resumes from, the same file on every
 * rank. Rank 0 picks the newest usable one of ckpt_dir (ckpt_latest) and
 * broadcasts its path into out ("" when there is none: ckpt_dir missing or
 * without a usable checkpoint, a fresh start); a rank listing the directory
 * itself could see another step (a shared filesystem's lagging view, a file
 * renamed or pruned meanwhile) and the ranks would then train different
 * models or wait for each other forever. A ckpt_dir that cannot be listed
 * (not a directory, no permission, an I/O error) or running out of memory
 * is an error on every rank, never a fresh start (it would throw the run's
 * progress away).
 * *skipped (rank 0; NULL on the others and when nothing was skipped) gets
 * the reasons unusable checkpoints were passed over, for the caller to log
 * and free; a path longer than PATH_MAX - 1 is one of them. Cost: rank 0's
 * ckpt_latest, one all-reduce of a double, one broadcast of PATH_MAX bytes. */
int jobdir_resume_pick(comm *c, const char *ckpt_dir, char out[PATH_MAX], char **skipped, foil_err *err);

#endif
