/* agent.h — foil-worker, the node daemon: registers this node's slots and
 * GPUs with the coordinator, heartbeats, runs the attempts it is assigned
 * and reports how they end (proto/foil/v1/worker.proto is the contract).
 *
 *   agent *a; agent_new(&a, &cfg, &err);
 *   agent_run(a, &stop_flag, &err);     returns once stop_flag is set and
 *   agent_destroy(&a);                  the jobs are stopped and reported
 *
 * What it does, in the protocol's words:
 * - Register at start, again when the coordinator answers an Error
 *   FAILED_PRECONDITION, and again after it was lost (no reply for
 *   `liveness` heartbeat intervals) and answers again. Register lists the
 *   attempts still running and the `finished` not yet acknowledged, as
 *   many as fit in the coordinator's 1 MiB frame; the others it lists as
 *   running by reference, as every Heartbeat does until their Finished,
 *   sent on their own, are acknowledged (outbox.h outbox_register). While
 *   the coordinator is lost, jobs keep running and their time limits still
 *   hold (the worker enforces Assign.deadline itself).
 *   The dealer's routing id is NAME/INSTANCE, INSTANCE 16 hex digits drawn
 *   at random by agent_new: every process has its own route, so a second
 *   foil-worker of the same name cannot take this one's over.
 *   A Register refused ALREADY_EXISTS (another live process has the name)
 *   is not final: this process stops the jobs it has (as on shutdown:
 *   SIGTERM, grace, SIGKILL, reported NODE_FAIL once it registers), starts
 *   none, and registers again after the coordinator's retry_after_ms (else
 *   a liveness window), logging why (once a minute at most); it gets in
 *   once the other has been silent for the coordinator's liveness window.
 *   A Register refused for good (INVALID_ARGUMENT, PERMISSION_DENIED,
 *   UNAUTHENTICATED, NOT_FOUND: the name, key or resources it was started
 *   with) stops the agent as on shutdown, and agent_run returns that
 *   error; any other refusal (UNAVAILABLE, ...) is retried,
 *   1 s, 2 s, 4 s ... up to 30 s apart (while jobs run here, at most half
 *   the coordinator's liveness window, so it is not declared DOWN).
 *   A CURVE handshake the coordinator refuses stops the agent the same way,
 *   with FOIL_EUNAUTH: its ZAP handler refusing this worker's key (the
 *   message names the key and the coordinator's --allow-keys), or this
 *   worker without keys against a coordinator with CURVE; see
 *   check_handshake in agent.c for why these are not retried. A hang-up
 *   during the handshake (a wrong --server-key, but also a proxy whose
 *   coordinator is down) is logged and retried.
 * - Heartbeat every heartbeat_ms (1000 ms until Registered says otherwise).
 * - Started after a launch (with the checkpoint a pretrain resumes from);
 *   Finished when the process group is gone. Both stay in an outbox
 *   (outbox.h) and are resent at every heartbeat until acknowledged.
 * - Progress from rank 0 (worker/run/progress.h) arrives on a PULL socket
 *   (tcp://127.0.0.1, an ephemeral port, passed as $FOIL_PROGRESS) and is
 *   forwarded at most twice a second per attempt, latest wins.
 * - An attempt named in a kill list, or answered with Error ABORTED, is
 *   stopped (SIGTERM, grace, SIGKILL) and dropped without a report.
 * - Assign with head=false (a gang member) only holds the slots (and GPUs)
 *   until Release, a stop Signal or a kill.
 *
 * Launching (head=true): creates job_dir, appends a line to <job_dir>/log,
 * runs the command of launch.h in its own process group with stdout and
 * stderr appended to that log, cwd job_dir, and FOIL_ROOT, FOIL_JOB_ID,
 * FOIL_ATTEMPT, FOIL_ATTEMPT_TOKEN, FOIL_RESTART_COUNT, FOIL_JOB_DIR,
 * FOIL_PROGRESS (and CUDA_VISIBLE_DEVICES for GPU jobs) in its
 * environment. A launch that fails is reported as Finished FAILED.
 *
 * Shutdown (the stop flag, set by main on SIGTERM/SIGINT): takes no more
 * work (an Assign that comes meanwhile is reported NODE_FAIL, not
 * started), stops every job (SIGTERM, grace, SIGKILL) and reports each as
 * NODE_FAIL "worker NAME shut down" (the coordinator requeues it). While
 * registered with a coordinator that takes it (Registered.goodbye) it then
 * says Goodbye, which carries those reports (held back meanwhile,
 * heartbeats going on) and any other not yet acknowledged: the coordinator
 * applies them and takes the worker as gone in one step (DOWN; what it
 * still counts on it NODE_FAIL, as for a lost worker), so none of those
 * jobs is given back to it, and the name is free: a new foil-worker of it
 * registers at once instead of being refused ALREADY_EXISTS for a
 * liveness window. The Goodbye is best-effort: never resent, its Ack
 * awaited 3 s at most. With an older coordinator, or none (not
 * registered), the reports go on their own, as before, awaited a few
 * seconds. Returns FOIL_OK.
 *
 * Ownership: the strings of agent_config are borrowed for the agent's
 * life. The agent owns its ZeroMQ context, sockets and the process groups
 * it started; agent_destroy kills groups still running. The caller's
 * process should reap nothing itself: the agent waits for every child
 * (waitpid(-1)), and on Linux makes itself the subreaper of its jobs'
 * orphans so none is left as a zombie.
 */
#ifndef FOIL_WORKER_AGENT_AGENT_H
#define FOIL_WORKER_AGENT_AGENT_H

#include <signal.h>
#include <stdio.h>

#include "common/err.h"

#define AGENT_VERSION "foil-worker 0.1.0"
#define AGENT_DEFAULT_WORKERS_ENDPOINT "tcp://127.0.0.1:7421"
#define AGENT_MAX_GPUS 64
#define AGENT_MAX_ROUTE 255   /* the routing id NAME/INSTANCE (ZeroMQ's limit; a name is at most 128 bytes) */

typedef struct {
  const char *coordinator; /* the coordinator's worker endpoint */
  const char *root;        /* data root (made absolute by agent_new) */
  const char *name;        /* worker name: a plain name (common/confine.h); the routing id is NAME/INSTANCE */
  const char *host;        /* what mpirun --host names for this node */
  unsigned slots, gpus;
  const char *foil_run;    /* foil-run path */
  const char *mpirun;      /* mpirun path or name */
  const char *mpirun_args; /* extra mpirun flags (may be NULL) */
  unsigned grace_s;        /* default grace when a message gives none */
  FILE *log;               /* the worker's own log (NULL: stderr) */
  const char *key;         /* CURVE: this worker's NAME.key_secret (role worker); NULL: */
  const char *server_key;  /* $FOIL_KEY etc., see common/auth.h; the coordinator's NAME.key */
} agent_config;

typedef struct agent agent;

/* Checks cfg, creates the root, opens the sockets. FOIL_EINVAL for a bad
 * endpoint or config. Nothing is sent until agent_run. */
int agent_new(agent **out, const agent_config *cfg, foil_err *err);
void agent_destroy(agent **a);

/* The loop; see above. *stop: set (by a signal handler) to shut down.
 * FOIL_OK after a shutdown; the coordinator's code (e.g. FOIL_EINVAL,
 * FOIL_EPERM) and its message when it refused to register this worker for
 * good, FOIL_EUNAUTH when the CURVE handshake is refused (the caller,
 * main, exits with it). */
int agent_run(agent *a, volatile sig_atomic_t *stop, foil_err *err);

/* The endpoint jobs send progress to ($FOIL_PROGRESS). */
const char *agent_progress_endpoint(const agent *a);

/* This process's routing id, NAME/INSTANCE. */
const char *agent_route(const agent *a);

#endif
