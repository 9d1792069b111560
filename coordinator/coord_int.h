/* coord_int.h — the coordinator's in-memory state, shared by coord.c (loop,
 * transitions, scheduling), coord_api.c (control API) and coord_wp.c
 * (worker protocol). Not a public header.
 *
 * Jobs live in jobs[id] (ids are the store's rowids, dense from 1); a job
 * owns its unpacked JobSpec, its packed bytes and its attempts. A final
 * job that ended more than o.keep_final_s ago is evicted (coord_evict):
 * jobs[id] NULL, the store has it; coord_job_get finds a job either way.
 * Every job not final is resident. active may still name an evicted id
 * until the next pass compacts it: every walk of active skips NULL. Workers
 * live in an array in registration order. Resource use is recomputed from
 * the active jobs' current attempts at each pass (no counters to drift).
 */
#ifndef FOIL_COORDINATOR_COORD_INT_H
#define FOIL_COORDINATOR_COORD_INT_H

#include <stdarg.h>
#include <stdint.h>

#include "common/auth.h"
#include "common/confine.h"
#include "common/wire.h"
#include "coordinator/coord.h"
#include "coordinator/sched.h"
#include "coordinator/store.h"
#include "foil/v1/control.pb-c.h"
#include "foil/v1/worker.pb-c.h"

#define COORD_MAX_FRAME (1u << 20)        /* control and worker frames */
#define COORD_MAX_NAME 128
/* a worker's routing id, "NAME/INSTANCE" (worker.proto): the instance is 1
 * to COORD_MAX_INSTANCE letters, digits, '.', '_', '-'; ZeroMQ's limit on
 * a routing id is 255 bytes */
#define COORD_MAX_INSTANCE 64
#define COORD_MAX_ROUTE 255
#define COORD_MAX_KIND 32
#define COORD_MAX_SPEC (256u << 10)
#define COORD_MAX_ARGV 256
#define COORD_MAX_ARG 4096
#define COORD_MAX_DEPS 64
#define COORD_MAX_PLACE 64                /* workers in one gang (a wider one is never started) */
/* a placement as text, "w:r,w:r": every name, ':', a uint32 and ',' */
#define COORD_PLACE_TEXT (COORD_MAX_PLACE * (COORD_MAX_NAME + 12) + 1)
#define COORD_DEFAULT_MAX_FAILURES 3
#define COORD_RESTART_GRACE_S 5.0         /* extra time for workers after a restart */

typedef struct {
  int worker;       /* index into c->workers */
  uint32_t ranks;
} cplace;

typedef struct {
  uint32_t n;
  uint64_t token;
  cplace place[COORD_MAX_PLACE];
  int nplace;
  double start_time, end_time;
  int state, exit_code, signal;
  char resume_from[1024];
  char reason[256];
  double assign_mono;   /* when the assign went out (this process) */
  double signal_mono;   /* when a stop was last sent */
} cattempt;

typedef struct {
  uint64_t id;
  Foil__V1__JobSpec *spec;
  uint8_t *packed;
  size_t packed_len;
  char submission_id[COORD_MAX_NAME + 4];
  char submitter[AUTH_MAX_NAME + 1];  /* the key's name; "" without CURVE */
  int state;
  char reason[256];
  double submit_time, start_time, end_time;
  int exit_code;
  uint32_t restart_count, failures;
  int max_failures;
  cattempt *att;
  size_t natt;
  int stop_state;       /* COMPLETING: CANCELLED or TIMEOUT once the group is gone */
  char index[COORD_MAX_NAME + 1]; /* the index a serve job serves (spec "index") or a
                                   * refresh job publishes (spec "name"); "" otherwise */
  double est_start;
  int unsaved;          /* its last coord_persist_job failed: memory is ahead of the store (kept
                         * resident until a write succeeds: coord_evict) */
  int deps_met;         /* this pass: its dependencies have all ended as asked */
  uint64_t deps_ok;     /* bit i: dependency i ended as asked (final: for good, never asked again) */
  /* progress, latest */
  double p_value, p_total, p_time;
  char *p_msg, *p_metrics;
  int64_t loop_step;    /* coord_loop.c: the last checkpoint step acted on */
} cjob;

typedef struct {
  char name[COORD_MAX_NAME + 1];
  char host[256];
  uint32_t slots, gpus, slots_used, gpus_used;
  int drain, down;
  int session;          /* registered with this coordinator process */
  double registered_time, last_heartbeat;
  double last_seen_mono;
  /* the routing id it registered from in this process ("" none yet): the
   * one process that may speak as this worker, and where everything for it
   * is sent (coord_route). Not stored: after a restart the first Register
   * of the name sets it. */
  char route[COORD_MAX_ROUTE + 1];
  double refused_logged;  /* when a Register of this name from another route was last logged */
} cworker;

struct coord {
  coord_opts o;
  char root[1024];
  confine cf;           /* the data root and --allow-dir: what jobs may name */
  FILE *log;
  void *zctx, *ctl, *wrk;
  auth *auth;           /* CURVE and the ZAP handler; off: every peer is admin */
  char ctl_ep[256], wrk_ep[256];
  store *st;
  sched *sc;
  cjob **jobs;          /* jobs[id], NULL for an unknown or evicted id (8 bytes an id) */
  size_t jobs_cap;
  uint64_t max_id;      /* the largest id in the store (resident or not) */
  size_t nresident;     /* non-NULL entries of jobs */
  uint64_t evict_next;  /* coord_evict's cursor */
  double last_evict;    /* when coord_run last called coord_evict (monotonic) */
  uint64_t *active;     /* ids not final, in id order */
  size_t nactive, active_cap;
  cworker *workers;     /* appended, never removed: an index names a worker for good */
  size_t nworkers, workers_cap;
  uint32_t *whash;      /* name -> index + 1, open addressing, 0 empty; whash_cap a power of 2 >= 2 nworkers */
  size_t whash_cap;
  uint64_t next_token;
  int dirty;            /* schedule at the next tick */
  double last_pass, started_mono;
  double hb_s;          /* heartbeat interval, seconds */
  /* scheduling pass buffers */
  double pass_seconds;  /* duration of the last pass */
};

/* --- coord_api.c ------------------------------------------------------ */
/* A JobList reply stops before it passes this many bytes (32 MiB); a
 * variable so tests can lower it. */
extern size_t coord_list_budget;

/* --- coord.c: shared helpers ---------------------------------------- */
int coord_final(int state);
/* 1 when j has an attempt on its workers (RUNNING or COMPLETING) */
int coord_running(const cjob *j);
const char *coord_state_name(int state);
/* The resident job id, or NULL (unknown, or evicted: see coord_job_get). O(1). */
cjob *coord_job(coord *c, uint64_t id);
/* The job id, resident or from the store: *out the resident job (*tmp
 * NULL), or the stored one read into *tmp (*out == *tmp: the caller's, free
 * it with coord_job_free; read-only: an evicted job is final), or NULL
 * (FOIL_OK) when there is no job id. last_only: only its last attempt is
 * read (enough for a list row or a state). Errors: FOIL_EINTERNAL (the
 * store), FOIL_ENOMEM. Cost: O(1) resident; else an indexed read of the
 * row and its attempts and an unpack of its spec. */
int coord_job_get(coord *c, uint64_t id, int last_only, cjob **out, cjob **tmp, foil_err *err);
/* A job held by a row (its spec unpacked; no attempts), not taken into c:
 * the caller's (coord_job_free). FOIL_EINTERNAL when the spec does not
 * parse, FOIL_ENOMEM. */
int coord_job_build(const store_job *row, cjob **out, foil_err *err);
/* Appends attempt row r to j; add: a worker of its placement not known so
 * far is added (DOWN), as the start's load does; else (a job read for a
 * request) such a placement is kept without workers. FOIL_ENOMEM. */
int coord_job_add_attempt(coord *c, cjob *j, const store_attempt *r, int add);
/* One turn of eviction: looks at up to `scan` ids from where the last
 * turn stopped (wrapping) and frees the final jobs that ended more than
 * o.keep_final_s ago (at most COORD_EVICT_FREE a turn); the store keeps
 * them. A job whose last write failed (unsaved) is written first and
 * kept while that fails. Nothing with keep_final_s 0. Returns how many it freed. Cost:
 * O(scan) pointer checks plus the frees; coord_run calls it every quarter
 * heartbeat with COORD_EVICT_SCAN. */
#define COORD_EVICT_SCAN 65536
#define COORD_EVICT_FREE 4096
size_t coord_evict(coord *c, size_t scan);
/* The final states (coord_final), for the store's queries. */
extern const int coord_final_states[5];
cattempt *coord_current(cjob *j);
/* Index of the worker named `name`, or -1. O(1) expected (a hash of the names). */
int coord_worker_find(coord *c, const char *name);
/* Appends a zeroed worker named `name` (not known yet) and returns its
 * index, or -1 out of memory. May move c->workers. */
int coord_worker_add(coord *c, const char *name);
/* Where messages for w go: the route it registered from (its name when it
 * has none, as for a worker loaded from the store). */
const char *coord_route(const cworker *w);
/* Commits a change: begin, the writes `fn` makes, one event line, commit.
 * Logs and returns the store's error on failure. */
int coord_persist_job(coord *c, cjob *j, const char *worker, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int coord_persist_worker(coord *c, cworker *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends an attempt whose worker was lost: NODE_FAIL, then requeue or fail.
 * ran 0: its worker says no process of it ran (assigned while shutting
 * down), so the requeue is not counted as one of the job's failures.
 * Returns coord_persist_job's result (memory is changed either way: a
 * caller that tells the worker undoes it with coord_job_restore). */
int coord_node_fail(coord *c, cjob *j, const char *worker, const char *why, int ran);
/* What a transition of j changes (its state and reason, times, counts and
 * its current attempt): taken before, put back when the change was not
 * committed, so memory never runs ahead of the store. */
typedef struct {
  int state, stop_state, exit_code;
  char reason[256];
  double end_time;
  uint32_t restart_count, failures;
  int has_att;
  cattempt att;
} coord_job_snap;
void coord_job_save(const cjob *j, coord_job_snap *s);
void coord_job_restore(cjob *j, const coord_job_snap *s);
void coord_worker_lost(coord *c, cworker *w, const char *why);
/* Sends a stop (SIGTERM, grace, SIGKILL) for j's current attempt. */
void coord_send_stop(coord *c, cjob *j);
/* Delivers signo to j's current attempt (the job keeps running). */
void coord_signal(coord *c, cjob *j, int signo);
/* Tells the gang members (not the head) of attempt a to free its slots. */
void coord_release_members(coord *c, cjob *j, cattempt *a);
/* One scheduling pass (coord_run calls it when dirty, at most every 2 × the
 * last pass's time, and every second;
 * tests/fuzz calls it after each input). */
void coord_schedule(coord *c);
/* A job taken into memory in two steps, so that a submission is committed
 * only once memory can hold it: coord_job_make builds the job of a row
 * (its spec unpacked) and makes room for it (jobs[row->id], a place in
 * active) — FOIL_ENOMEM or FOIL_EINTERNAL, nothing in c changed but
 * capacity; coord_job_take then cannot fail (c owns j). coord_add_job does
 * both (the store's load). */
int coord_job_make(coord *c, const store_job *row, cjob **out, foil_err *err);
void coord_job_take(coord *c, cjob *j);
void coord_job_free(cjob *j);
/* Opens the directory <root>/jobs/<id> (O_DIRECTORY) without following a
 * symbolic link below the data root: the job writes in jobs/<id> and may
 * replace it (or jobs) by a link, which must not steer what the coordinator
 * reads (foil logs) or writes (the attempt fence). create: makes jobs and
 * jobs/<id> when missing (fsyncing their parents). *dfd is the caller's to
 * close; -1 with FOIL_OK when it does not exist (and !create). Errors:
 * FOIL_EPRECOND (a link or not a directory), FOIL_EINTERNAL. Cost: 3 opens. */
int coord_job_dir_open(coord *c, uint64_t id, int create, int *dfd, foil_err *err);
int coord_add_job(coord *c, const store_job *row, foil_err *err);
__attribute__((format(printf, 3, 4))) void coord_log(coord *c, const char *level, const char *fmt, ...);

/* --- coord_api.c ----------------------------------------------------- */
/* Checks, records durably and takes into memory a job, as a submit
 * request does; a submission_id already used gives that job (*existing 1). */
int coord_submit(coord *c, const Foil__V1__JobSpec *spec, const char *submission_id, const char *submitter,
                 uint64_t *job_id, int *existing, foil_err *err);
/* rc, e: what wire_recv said of m (a bad frame is answered with an error). */
void coord_api_handle(coord *c, wire_msg *m, int rc, const foil_err *e);

/* --- coord_loop.c (the trainer <-> index loop, coordinator/coord_loop.h) */
/* After j's progress changed: a pretrain job with a "refresh" object whose
 * progress names a new checkpoint step that is a multiple of every_steps
 * gets its refresh job submitted. */
void coord_loop_progress(coord *c, cjob *j);

/* --- coord_wp.c ------------------------------------------------------ */
void coord_wp_handle(coord *c, wire_msg *m, int rc, const foil_err *e);
/* Applies a Finished report (from `finished` or a register) of worker w;
 * returns a foil error code: FOIL_EABORTED for a stale attempt, FOIL_EPERM
 * when w is not the attempt's head, FOIL_EUNAVAIL when the end was not
 * committed (nothing changed: the worker sends it again). */
int coord_wp_finished(coord *c, cworker *w, const Foil__V1__Finished *f);

#endif
