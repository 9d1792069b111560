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

#include <stdio.h>

#include "common/err.h"
#include "worker/run/progress.h"

/* Makes dir (and dir/sub when sub is not NULL), opens dir/log and
 * dir/metrics for appending and the progress channel (progress_open).
 * FOIL_EPERM naming the directory when it cannot be made or written. */
int jobdir_open(const char *dir, const char *sub, FILE **log, FILE **metrics, progress **prog, foil_err *err);

#endif
