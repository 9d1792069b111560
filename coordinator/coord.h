/* coord.h — the coordinator daemon: the control API and worker sockets,
 * the jobs and workers it keeps (durably, in store.h), and the scheduling
 * passes (sched.h) that turn pending jobs into attempts on workers.
 *
 *   coord *c; coord_new(&c, &opts, &err); coord_run(c, &stop, &err); coord_destroy(&c);
 *
 * One thread: coord_run polls both sockets and runs timers (liveness,
 * scheduling, time limits) until *stop becomes non-zero. Every change a
 * client or worker is told about is committed to the store first.
 * On start it loads the store: acknowledged jobs are all there; running
 * ones stay RUNNING while their workers re-register (a worker that does
 * not within the liveness window is DOWN and its jobs are requeued).
 * Memory holds the jobs that are not final and, with keep_final_s, the
 * final ones that ended within it (loaded so at start, the older evicted a
 * little at a time by the loop); the store holds every job for good.
 *
 * Authentication (common/auth.h): with curve_key and allow both sockets are
 * CURVE servers and only allow-listed keys connect. Authorization by role:
 * the control API serves admin everything, submitters submit, read and
 * cancel (or signal) their own jobs, readers read (get, watch, list, logs,
 * workers); worker keys are refused there (PERMISSION_DENIED) and are the
 * only keys the worker socket serves, each only for the worker whose name
 * (the NAME of its routing id NAME/INSTANCE) is the key's name. Without
 * CURVE every peer is admin and the endpoints must be loopback (unless
 * insecure).
 *
 * One process per worker name (worker.proto): a name is bound to the route
 * it registered from; another route's Register is refused ALREADY_EXISTS
 * while that worker is live (heard within the liveness window), accepted
 * once it has been silent that long.
 */
#ifndef FOIL_COORDINATOR_COORD_H
#define FOIL_COORDINATOR_COORD_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "common/err.h"

typedef struct {
  const char *root;        /* data root: coordinator.db, jobs/, coordinator.json */
  const char *control;     /* control API endpoint, e.g. tcp://127.0.0.1:7420 (port * = any) */
  const char *workers;     /* worker endpoint, e.g. tcp://127.0.0.1:7421 */
  int heartbeat_ms;        /* 0: 1000 */
  int liveness;            /* missed heartbeats before DOWN; 0: 4 */
  int grace_s;             /* SIGTERM → SIGKILL on cancel/timeout; 0: 10 */
  size_t sched_depth;      /* reservations per pass; 0: 200 */
  const char *curve_key;   /* this coordinator's NAME.key_secret (CURVE); NULL: none */
  const char *allow;       /* allow-list directory of client certificates (common/auth.h) */
  int insecure;            /* without CURVE, listen on non-loopback endpoints anyway */
  int max_pending;         /* jobs not yet running per submitter; 0: no limit */
  /* A final job (COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL) leaves
   * memory once it ended this many seconds ago; the store keeps it, and
   * every request naming it reads it there. 0: every job stays in memory
   * (foil-coordinator's --keep-final-s default is 3600). */
  double keep_final_s;
  FILE *log;               /* NULL: stderr */
  /* Directories besides the data root whose files jobs may name (README
   * "Path confinement", common/confine.h); recorded in coordinator.json
   * for foil-run. Each must exist. */
  const char *const *allow_dirs;
  int n_allow_dirs;        /* at most COORD_MAX_ALLOW */
} coord_opts;

#define COORD_MAX_ALLOW 15

typedef struct coord coord;

int coord_new(coord **out, const coord_opts *o, foil_err *err);
int coord_run(coord *c, volatile sig_atomic_t *stop, foil_err *err);
void coord_destroy(coord **c);

#endif
