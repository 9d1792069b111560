/* jobdir.h — what rank 0 of every foil-run job opens in its job directory:
 * the directory itself (and a subdirectory, e.g. ckpt/), the append-only
 * `log` and `metrics` files, and the progress channel to its worker.
 *
 *   FILE *log, *metrics; progress *prog;
 *   jobdir_open(dir, "ckpt", &log, &metrics, &prog, &err);
 *
 * Ownership: the caller closes the files (fclose) and destroys prog; on an
 * error, whatever was opened is left in the out-pointers for the caller's
 * usual clean-up. Cost: a few syscalls.
 */
#ifndef FOIL_WORKER_RUN_JOBDIR_H
#define FOIL_WORKER_RUN_JOBDIR_H

#include <limits.h>
#include <stdio.h>

#include "common/err.h"
#include "worker/run/comm.h"
#include "worker/run/progress.h"

/* Makes dir (and dir/sub when sub is not NULL), opens dir/log and
 * dir/metrics for appending and the progress channel (progress_open).
 * FOIL_EPERM naming the directory when it cannot be made or written. */
int jobdir_open(const char *dir, const char *sub, FILE **log, FILE **metrics, progress **prog, foil_err *err);

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
