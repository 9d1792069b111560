/* server.h — foil-serve's server: one version of one index (its shards, or
 * some of them) answering ServeRequests (proto/foil/v1/search.proto) on a
 * ROUTER socket, swapping to newer versions without failing a request.
 *
 * Threads: the query loop (server_run, the caller's thread) owns the socket
 * and the live generation (sgen.h); a loader thread loads a new version
 * beside it, checks it (sgen_check) and hands it over through a one-slot
 * mailbox and an inproc socket that wakes the loop. The loop swaps between
 * batches: every batch, so every reply, is answered by one version, which
 * the reply names; the old version is freed after the swap. No lock is
 * held while loading; the loop takes the mailbox lock only to look. The
 * loader never touches the live generation (the mailbox tells it the live
 * version).
 *
 * Reloads: every watch_ms the loader reads CURRENT (unless watching is off
 * or a version is pinned) and, when it names another version than at its
 * last look, loads that one; server_run's *hup flag (SIGHUP) asks it to
 * load CURRENT now, unless the server is pinned (opts.version: SIGHUP then
 * only rereads the allow-list), and a ReloadRequest to load CURRENT (or the
 * version named) now. A version named by a ReloadRequest is loaded once:
 * it never pins, and the watch still takes CURRENT's next version (one
 * already named at its last look is not taken again, so a reload of an
 * older version stays until CURRENT moves). A ReloadRequest is answered when its load ends: the status
 * after the swap, or the error that kept the old version serving. The
 * loader takes one request at a time: one still waiting when another (or a
 * SIGHUP) asks for a different version is answered ABORTED "superseded by
 * a later reload" (one asking for the same version shares its load), so no
 * request is answered with another's result. A version
 * that fails to load or check is logged and not retried by the watch until
 * CURRENT names another.
 *
 * Shards: a server of some shards (opts.shards) serves versions split into
 * as many shards as the one it started with; one of another shard count is
 * refused like a failed load (the old version keeps serving, the log says
 * to restart the backends with a new shard map), so the backends of a
 * router never answer from a version whose rows none of them hold. Every
 * SearchReply and ServeStatus names the shards held and the version's
 * shard count (the router checks them, router.h).
 *
 * Batching: sbatch.h. Limits: sreq.h. The endpoint bound is written with
 * the pid to <root>/indexes/<name>/serve.json (atomically; removed at the
 * end if it is still ours) by a server of all shards; one holding some
 * shards (--shards) is reached through a router, which writes it instead.
 *
 * Authentication: with curve_key and allow the socket is a CURVE server and
 * only allow-listed keys connect (their allow-list is reread on the same
 * SIGHUP that reloads the index); requests are authorized by role
 * (sreq_authorize). Without: loopback only unless insecure.
 *
 * Ownership: server_new returns the caller's server (server_destroy).
 */
#ifndef FOIL_WORKER_SERVE_SERVER_H
#define FOIL_WORKER_SERVE_SERVER_H

#include <signal.h>
#include <stdio.h>

#include "common/err.h"

#define SERVER_DEFAULT_BIND "tcp://127.0.0.1:7430"

typedef struct {
  const char *root;
  const char *index;
  int version;          /* 0: CURRENT (and follow it) */
  const int *shards;    /* NULL: all */
  int nshards;
  const char *bind;     /* NULL: SERVER_DEFAULT_BIND */
  int batch_max;        /* 0: 256 */
  int watch;            /* poll CURRENT */
  int watch_ms;         /* 0: 500 */
  int check_samples;    /* rows each new version must find; 0: 16 */
  int text;             /* load the checkpoint for text queries */
  FILE *log;            /* NULL: stderr */
  const char *curve_key;  /* CURVE (common/auth.h): this server's NAME.key_secret */
  const char *allow;      /* and the allow-list directory; both NULL: no CURVE */
  int insecure;           /* without CURVE, bind non-loopback endpoints anyway */
  int device;             /* DEVMEM_CPU, or DEVMEM_CUDA: search on the GPU (up already; sgen.h) */
} server_opts;

typedef struct server server;

/* Loads the first version (an error when it cannot: nothing to serve),
 * binds, writes serve.json, starts the loader thread. */
int server_new(server **out, const server_opts *o, foil_err *err);
/* Answers requests until *stop; *hup (may be NULL) asks for a reload and is
 * cleared. */
int server_run(server *s, volatile sig_atomic_t *stop, volatile sig_atomic_t *hup, foil_err *err);
const char *server_endpoint(const server *s);
void server_destroy(server **s);

#endif
