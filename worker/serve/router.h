/* router.h — foil-serve's router mode: one endpoint in front of several
 * foil-serve backends that each hold some shards of one index.
 *
 * Every request is checked (sreq.h), then sent to every backend; when all
 * have answered, a search's per-query top-k lists are merged (smerge.h: the
 * same order a single server gives), a status is summed up, a reload is
 * answered with the combined status. A reply never mixes versions: when the
 * backends answer a search from different versions (one of them is
 * mid-swap), the router asks them all again, up to `retries` more times with
 * a short doubling backoff, and otherwise answers UNAVAILABLE. Nor a reply
 * with rows missing: the backends' replies must hold every shard of their
 * version exactly once (smerge_covers on the shards and shard count each
 * reply names), else FAILED_PRECONDITION naming the shards no backend
 * holds or two hold (logged once as an ERROR, and in the status's
 * `problem`). An error
 * from a backend is passed on (the first one); a backend that does not
 * answer within timeout_ms makes the reply UNAVAILABLE naming it. Replies
 * that come late are dropped (each fan-out has its own request id).
 *
 * Ownership: router_new returns the caller's router (router_destroy).
 */
#ifndef FOIL_WORKER_SERVE_ROUTER_H
#define FOIL_WORKER_SERVE_ROUTER_H

#include <signal.h>
#include <stdio.h>

#include "common/err.h"

typedef struct {
  const char *const *backends;  /* endpoints, at most SMERGE_MAX_LISTS */
  int nbackends;
  const char *bind;             /* NULL: tcp://127.0.0.1:7430 */
  int timeout_ms;               /* 0: 10,000 (a reload: 30× that) */
  int retries;                  /* 0: 4 */
  int backoff_ms;               /* first backoff; 0: 20 */
  FILE *log;
  const char *curve_key, *allow;  /* CURVE on the front (server.h's meaning) */
  int insecure;
  const char *key, *server_key;   /* CURVE to the backends: the router's key pair
                                   * and theirs (common/auth.h client side) */
} router_opts;

typedef struct router router;

int router_new(router **out, const router_opts *o, foil_err *err);
int router_run(router *r, volatile sig_atomic_t *stop, foil_err *err);
const char *router_endpoint(const router *r);
void router_destroy(router **r);

#endif
