/* store.h — the coordinator's durable state: jobs, attempts, workers and an
 * event trail in one SQLite database (WAL) under the data root.
 *
 * Writes go in transactions (store_begin ... store_commit); a commit
 * returns only once SQLite has synced the WAL (synchronous=FULL), so the
 * coordinator acknowledges a submission after store_commit and never
 * before. The store knows nothing of scheduling: it keeps rows.
 *
 * Ownership: store_job.spec is the packed foil.v1.JobSpec; rows passed to
 * store_put_* are read, not kept. store_load hands each row to a callback
 * (its pointers valid during the call only).
 * Cost: one indexed row write per put; a commit costs an fsync.
 */
#ifndef FOIL_COORDINATOR_STORE_H
#define FOIL_COORDINATOR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct store store;

typedef struct {
  uint64_t id;
  const char *submission_id;  /* NULL or "": none */
  const uint8_t *spec;        /* packed foil.v1.JobSpec */
  size_t spec_len;
  int state;                  /* foil.v1.JobState */
  const char *reason;
  double submit_time, start_time, end_time;
  int exit_code;
  uint32_t restart_count, failures;
  const char *submitter;      /* the key name that submitted it; NULL or "": none
                               * (no authentication, or a database from before);
                               * its submission_id is unique among its own */
} store_job;

typedef struct {
  uint64_t job_id;
  uint32_t n;
  uint64_t token;
  const char *placement;      /* "worker:ranks,worker:ranks", head first */
  double start_time, end_time;
  int state, exit_code, signal;
  const char *resume_from, *reason;
} store_attempt;

typedef struct {
  const char *name, *host;
  uint32_t slots, gpus;
  int drain, down;
  double registered_time, last_heartbeat;
} store_worker;

typedef struct {
  int (*job)(void *ctx, const store_job *j);
  int (*attempt)(void *ctx, const store_attempt *a);
  int (*worker)(void *ctx, const store_worker *w);
  void *ctx;
} store_loader;

/* Opens (creating) the database at path. FOIL_EINTERNAL with SQLite's
 * message when it cannot be opened or is not foil's. */
int store_open(store **out, const char *path, foil_err *err);
void store_close(store **s);

int store_begin(store *s, foil_err *err);
int store_commit(store *s, foil_err *err);
void store_rollback(store *s);

/* Inserts j (j->id is assigned: the rowid). */
int store_insert_job(store *s, store_job *j, foil_err *err);
/* The job `submitter` submitted with submission id sid: *id, or 0 if none.
 * Ids are per submitter (UNIQUE(submitter, submission_id)): another
 * submitter's same id is not found. submitter NULL or "": none (no CURVE).
 * Cost: one indexed lookup. */
int store_find_submission(store *s, const char *submitter, const char *sid, uint64_t *id, foil_err *err);
/* Updates the mutable columns of job j->id (state, reason, times, exit,
 * counts). */
int store_update_job(store *s, const store_job *j, foil_err *err);
int store_put_attempt(store *s, const store_attempt *a, foil_err *err);
int store_put_worker(store *s, const store_worker *w, foil_err *err);
int store_event(store *s, double time, uint64_t job_id, const char *worker, const char *text,
                foil_err *err);

/* Every row: workers, then jobs in id order, then attempts by (job, n). */
int store_load(store *s, const store_loader *l, foil_err *err);
/* As store_load, but only the jobs that are live: those whose state is
 * not one of done[0..ndone) (the final states), and the others that ended
 * at `since` or later (end_time >= since); then only their attempts.
 * Cost: one pass over the index of (state, end_time), then the live rows
 * by key: a store of millions of old jobs costs the reading of that
 * index, not of its rows. */
int store_load_live(store *s, const store_loader *l, const int *done, size_t ndone, double since, foil_err *err);
/* The largest job id and attempt token stored (0: none). Cost: two
 * lookups at the end of an index. */
int store_max_ids(store *s, uint64_t *job_id, uint64_t *token, foil_err *err);
/* Job `id` to l->job, then its attempts to l->attempt by n (last_only:
 * only its last one); *found 0 (FOIL_OK, no callback) when there is no such
 * row. l->worker is not used; l->attempt NULL: the attempts are not read.
 * Cost: indexed lookups. */
int store_get_job(store *s, uint64_t id, const store_loader *l, int last_only, int *found, foil_err *err);
/* The attempts of job job_id to l->attempt by n (last_only: its last one
 * only). Cost: one indexed read. */
int store_get_attempts(store *s, uint64_t job_id, const store_loader *l, int last_only, foil_err *err);
/* The jobs of id <= max_id whose state is one of states[0..n) (n 0: any),
 * newest first, each to row(ctx, j) until it returns non-zero: 1 stops, a
 * negative foil code stops and is returned. row may call store_get_job.
 * Cost: reads rows by id downwards until row stops (non-matching rows are
 * read too). */
int store_list_jobs(store *s, const int *states, size_t n, uint64_t max_id, int (*row)(void *ctx, const store_job *j),
                    void *ctx, foil_err *err);

#endif
