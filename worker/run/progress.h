/* progress.h — rank 0 of a foil-run job reporting to the worker that
 * launched it (proto worker.proto ProgressUpdate), and the fence that keeps
 * a replaced attempt from writing checkpoints.
 *
 *   progress *p; progress_open(&p, &err);      reads $FOIL_PROGRESS, ...
 *   progress_send(p, 40, 100, "step 40/100", "{\"loss\":0.8}");
 *   progress_destroy(&p);
 *
 * The worker passes $FOIL_PROGRESS (its PULL endpoint), $FOIL_JOB_ID and
 * $FOIL_ATTEMPT_TOKEN. Without $FOIL_PROGRESS (foil-run started by hand)
 * the object is a no-op. Sending never blocks training: a PUSH socket with
 * a small high-water mark, ZMQ_DONTWAIT, and an update the worker is not
 * ready for is dropped (the next one says more anyway).
 *
 * Ownership: the progress object owns its ZeroMQ context and socket.
 * Cost: one small protobuf packed per send; no allocation beyond that.
 */
#ifndef FOIL_WORKER_RUN_PROGRESS_H
#define FOIL_WORKER_RUN_PROGRESS_H

#include "common/err.h"

typedef struct progress progress;

/* Opens from the environment. FOIL_OK with a no-op object when
 * $FOIL_PROGRESS is unset; FOIL_EINVAL when it is set but not an endpoint
 * ZeroMQ can connect to. */
int progress_open(progress **out, foil_err *err);
void progress_destroy(progress **p);

/* 1 when updates go somewhere. */
int progress_active(const progress *p);

/* Sends one update (value of total, a line, a JSON object of metrics;
 * message and metrics_json may be NULL). Returns 1 if it was queued, 0 if
 * dropped or the object is a no-op. p may be NULL. */
int progress_send(progress *p, double value, double total, const char *message, const char *metrics_json);

/* The fence. token: this attempt's token ($FOIL_ATTEMPT_TOKEN; NULL or ""
 * means no fence: a run outside a cluster). Reads <job_dir>/attempt, where
 * the coordinator writes the job's current token (decimal, newline). When
 * it names another token: FOIL_EABORTED "attempt T was replaced by U: not
 * writing a checkpoint". A missing, empty or unreadable file does not
 * fence (the job was not started by a coordinator, or it is being
 * rewritten): FOIL_OK. Cost: one small file read. */
int progress_fenced(const char *job_dir, const char *token, foil_err *err);

#endif
