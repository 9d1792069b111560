/* router.c — see router.h. */
#define _POSIX_C_SOURCE 200809L
#include "worker/serve/router.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/auth.h"
#include "common/client.h"
#include "common/log.h"
#include "common/wire.h"
#include "foil/v1/search.pb-c.h"
#include "worker/serve/server.h"
#include "worker/serve/smerge.h"
#include "worker/serve/sreq.h"

typedef struct rpend {
  struct rpend *next;
  wire_msg m;                            /* the client's message (routing frames) */
  Foil__V1__ServeRequest *q;             /* as the client sent it */
  uint64_t id;                           /* the fan-out's request id */
  int tries;
  double t0, deadline, retry_at;         /* monotonic seconds; retry_at 0: not waiting to retry */
  int got;
  Foil__V1__ServeReply *rep[SMERGE_MAX_LISTS];
} rpend;

struct router {
  router_opts o;
  char **eps;
  void *zctx, *front, **back;
  auth *auth;           /* CURVE on the front; NULL: none */
  char endpoint[256];
  uint64_t next_id, queries;
  rpend *pend;
  char problem[1024];   /* the shard gap last logged ("" none): logged once, and when it ends */
};

__attribute__((format(printf, 3, 4))) static void rlog(router *r, const char *level, const char *fmt, ...) {
  char msg[1600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_line(r->o.log, level, "router", "%s", msg);
}

static void send_front(router *r, rpend *p, Foil__V1__ServeReply *rep) {
  foil_err err = {0};
  if (wire_reply(r->front, &p->m, &rep->base, &err))
    rlog(r, "WARN", "reply to request %llu not sent: %s", (unsigned long long)rep->request_id, err.msg);
}

__attribute__((format(printf, 4, 5))) static void fail(router *r, rpend *p, int code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  Foil__V1__Error e = FOIL__V1__ERROR__INIT;
  e.code = client_err_to_code(code), e.message = msg;
  Foil__V1__ServeReply rep = FOIL__V1__SERVE_REPLY__INIT;
  rep.request_id = p->q ? p->q->request_id : 0, rep.body_case = FOIL__V1__SERVE_REPLY__BODY_ERROR, rep.error = &e;
  send_front(r, p, &rep);
}

static void drop_replies(router *r, rpend *p) {
  for (int b = 0; b < r->o.nbackends; b++)
    if (p->rep[b]) foil__v1__serve_reply__free_unpacked(p->rep[b], NULL), p->rep[b] = NULL;
  p->got = 0;
}

static void rpend_free(router *r, rpend *p) {
  drop_replies(r, p);
  wire_msg_close(&p->m);
  if (p->q) foil__v1__serve_request__free_unpacked(p->q, NULL);
  free(p);
}

/* Sends p's request to every backend under a fresh id. */
static int fan_out(router *r, rpend *p, foil_err *err) {
  p->id = ++r->next_id;
  p->tries++;
  p->retry_at = 0;
  p->deadline = log_mono() + r->o.timeout_ms / 1e3 *
                                 (p->q->body_case == FOIL__V1__SERVE_REQUEST__BODY_RELOAD ? 30 : 1);
  Foil__V1__ServeRequest q = *p->q;
  q.request_id = p->id;
  for (int b = 0; b < r->o.nbackends; b++) {
    foil_err e = {0};
    if (wire_send(r->back[b], NULL, &q.base, ZMQ_DONTWAIT, &e))
      return foil_err_set(err, FOIL_EUNAVAIL, "backend %s: %s", r->eps[b], e.msg);
  }
  return FOIL_OK;
}

/* The shard rule (smerge_covers) over p's replies (searches or statuses):
 * 1 when the backends hold every shard of their version exactly once;
 * else 0 with the gap in why. A gap is logged when it first shows and
 * when it ends (not per request). */
static int covered(router *r, rpend *p, char *why, size_t cap) {
  int nb = r->o.nbackends;
  const uint32_t *sh[SMERGE_MAX_LISTS];
  size_t nsh[SMERGE_MAX_LISTS];
  uint32_t total[SMERGE_MAX_LISTS];
  for (int b = 0; b < nb; b++) {
    const Foil__V1__ServeReply *x = p->rep[b];
    if (x->body_case == FOIL__V1__SERVE_REPLY__BODY_SEARCH)
      sh[b] = x->search->shards, nsh[b] = x->search->n_shards, total[b] = x->search->total_shards;
    else
      sh[b] = x->status->shards, nsh[b] = x->status->n_shards, total[b] = x->status->total_shards;
  }
  int ok = smerge_covers(sh, nsh, total, (size_t)nb, (const char *const *)r->eps, why, cap);
  if (!ok && strcmp(why, r->problem)) {
    rlog(r, "ERROR", "searches refused: the backends do not hold every shard of their version once: %s (start the "
         "missing backends, or restart them all with one shard map)", why);
    snprintf(r->problem, sizeof r->problem, "%s", why);
  } else if (ok && r->problem[0]) {
    rlog(r, "INFO", "the backends hold every shard of their version again");
    r->problem[0] = 0;
  }
  return ok;
}

static void answer_search(router *r, rpend *p) {
  const Foil__V1__SearchRequest *sq = p->q->search;
  int nb = r->o.nbackends;
  size_t n = sq->n_queries, k = (size_t)sreq_k(sq);
  const Foil__V1__SearchReply *sr[SMERGE_MAX_LISTS];
  for (int b = 0; b < nb; b++) {
    sr[b] = p->rep[b]->search;
    if (sr[b]->n_results != n)
      return fail(r, p, FOIL_EINTERNAL, "backend %s answered %zu results for %zu queries", r->eps[b],
                  sr[b]->n_results, n);
  }
  Foil__V1__SearchHits *hits = calloc(n, sizeof *hits), **hp = calloc(n, sizeof *hp);
  int64_t *ids = malloc(n * k * sizeof *ids);
  float *scores = malloc(n * k * sizeof *scores);
  char **keys = malloc(n * k * sizeof *keys);
  if (!hits || !hp || !ids || !scores || !keys) {
    fail(r, p, FOIL_ENOMEM, "no memory to merge the replies");
  } else {
    for (size_t i = 0; i < n; i++) {
      const Foil__V1__SearchHits *lists[SMERGE_MAX_LISTS];
      for (int b = 0; b < nb; b++) lists[b] = sr[b]->results[i];
      int any_keys = 0;
      size_t m = smerge_hits(lists, (size_t)nb, k, ids + i * k, scores + i * k, keys + i * k, &any_keys);
      foil__v1__search_hits__init(&hits[i]);
      hits[i].ids = ids + i * k, hits[i].n_ids = m;
      hits[i].scores = scores + i * k, hits[i].n_scores = m;
      if (any_keys) hits[i].keys = keys + i * k, hits[i].n_keys = m;
      hp[i] = &hits[i];
    }
    Foil__V1__SearchReply out = FOIL__V1__SEARCH_REPLY__INIT;
    out.results = hp, out.n_results = n, out.index = sr[0]->index, out.version = sr[0]->version;
    out.server_ms = (log_mono() - p->t0) * 1e3;
    Foil__V1__ServeReply rep = FOIL__V1__SERVE_REPLY__INIT;
    rep.request_id = p->q->request_id, rep.body_case = FOIL__V1__SERVE_REPLY__BODY_SEARCH, rep.search = &out;
    send_front(r, p, &rep);
    r->queries += n;
  }
  free(hits), free(hp), free(ids), free(scores), free(keys);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void answer_status(router *r, rpend *p) {
  int nb = r->o.nbackends;
  size_t nsh = 0;
  for (int b = 0; b < nb; b++) nsh += p->rep[b]->status->n_shards;
  uint32_t *sh = malloc((nsh ? nsh : 1) * sizeof *sh);
  if (!sh) return fail(r, p, FOIL_ENOMEM, "no memory for the status");
  Foil__V1__ServeStatus st = *p->rep[0]->status;
  st.count = 0, st.swaps = 0, st.loading = 0, st.n_shards = 0, st.text = 1;
  for (int b = 0; b < nb; b++) {
    const Foil__V1__ServeStatus *x = p->rep[b]->status;
    if (x->version != st.version) st.version = 0;  /* mid-swap: no single version */
    st.count += x->count, st.swaps += x->swaps, st.text = st.text && x->text;
    if (x->loading > st.loading) st.loading = x->loading;
    for (size_t i = 0; i < x->n_shards; i++) sh[st.n_shards++] = x->shards[i];
  }
  qsort(sh, st.n_shards, sizeof *sh, cmp_u32);
  st.shards = sh, st.queries = r->queries;
  /* what keeps searches from being answered now, if anything */
  char problem[1024] = "";
  if (!st.version) {
    size_t at = 0;
    at += (size_t)snprintf(problem, sizeof problem, "the backends serve different versions (");
    for (int b = 0; b < nb && at < sizeof problem; b++)
      at += (size_t)snprintf(problem + at, sizeof problem - at, "%s%s v%u", b ? ", " : "", r->eps[b],
                             p->rep[b]->status->version);
    if (at < sizeof problem) snprintf(problem + at, sizeof problem - at, ")");
  } else if (!covered(r, p, problem, sizeof problem)) {
    st.total_shards = 0;
  }
  st.problem = problem;
  Foil__V1__ServeReply rep = FOIL__V1__SERVE_REPLY__INIT;
  rep.request_id = p->q->request_id, rep.body_case = FOIL__V1__SERVE_REPLY__BODY_STATUS, rep.status = &st;
  send_front(r, p, &rep);
  free(sh);
}

/* All backends answered p: reply, or schedule a retry. 1: p is done. */
static int complete(router *r, rpend *p) {
  int nb = r->o.nbackends;
  for (int b = 0; b < nb; b++)
    if (p->rep[b]->body_case == FOIL__V1__SERVE_REPLY__BODY_ERROR) {
      const Foil__V1__Error *e = p->rep[b]->error;
      int code = e ? client_code_to_err(e->code) : FOIL_EINTERNAL;
      fail(r, p, code ? code : FOIL_EINTERNAL, "%s", e && e->message ? e->message : "error");
      return 1;
    }
  int want = p->q->body_case == FOIL__V1__SERVE_REQUEST__BODY_SEARCH ? FOIL__V1__SERVE_REPLY__BODY_SEARCH
                                                                     : FOIL__V1__SERVE_REPLY__BODY_STATUS;
  for (int b = 0; b < nb; b++)
    if ((int)p->rep[b]->body_case != want) {
      fail(r, p, FOIL_EINTERNAL, "backend %s answered with the wrong kind of reply", r->eps[b]);
      return 1;
    }
  if (want == FOIL__V1__SERVE_REPLY__BODY_STATUS) {
    answer_status(r, p);
    return 1;
  }
  const Foil__V1__SearchReply *sr[SMERGE_MAX_LISTS];
  for (int b = 0; b < nb; b++) sr[b] = p->rep[b]->search;
  if (smerge_same_version(sr, (size_t)nb)) {
    char why[1024];
    if (covered(r, p, why, sizeof why))
      answer_search(r, p);
    else  /* rows would be missing (or counted twice): never a partial answer */
      fail(r, p, FOIL_EPRECOND, "%s v%u: the router's backends do not hold every shard of it once: %s (start the "
           "missing backends, or restart them all with one shard map)", sr[0]->index, sr[0]->version, why);
    return 1;
  }
  char seen[512];
  size_t at = 0;
  for (int b = 0; b < nb && at < sizeof seen; b++)
    at += (size_t)snprintf(seen + at, sizeof seen - at, "%s%s v%u", b ? ", " : "", r->eps[b], sr[b]->version);
  if (p->tries > r->o.retries) {
    fail(r, p, FOIL_EUNAVAIL, "the backends answer from different versions (%s) after %d tries: a swap is under "
         "way or stuck; try again", seen, p->tries);
    return 1;
  }
  double backoff = r->o.backoff_ms / 1e3 * (double)(1 << (p->tries - 1));
  rlog(r, "INFO", "request %llu: versions differ (%s); asking again in %.0f ms", (unsigned long long)p->q->request_id,
       seen, backoff * 1e3);
  drop_replies(r, p);
  p->retry_at = log_mono() + backoff;
  p->id = 0;  /* late replies of this round are dropped */
  return 0;
}

static void unlink_pend(router *r, rpend *p) {
  for (rpend **pp = &r->pend; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      return;
    }
}

static void from_backend(router *r, int b) {
  for (int i = 0; i < 256; i++) {
    wire_msg m;
    int rc = wire_recv(r->back[b], &m, 0, 1u << 30, ZMQ_DONTWAIT, NULL);
    if (rc == FOIL_EUNAVAIL) {
      wire_msg_close(&m);
      return;
    }
    Foil__V1__ServeReply *rep =
        rc ? NULL : foil__v1__serve_reply__unpack(NULL, zmq_msg_size(&m.body), zmq_msg_data(&m.body));
    wire_msg_close(&m);
    if (!rep) {
      rlog(r, "WARN", "backend %s sent a frame that is not a ServeReply", r->eps[b]);
      continue;
    }
    rpend *p = r->pend;
    while (p && (p->id != rep->request_id || !p->id)) p = p->next;
    if (!p || p->rep[b]) {  /* late, or repeated */
      foil__v1__serve_reply__free_unpacked(rep, NULL);
      continue;
    }
    p->rep[b] = rep;
    if (++p->got == r->o.nbackends && complete(r, p)) {
      unlink_pend(r, p);
      rpend_free(r, p);
    }
  }
}

static void from_front(router *r) {
  for (int i = 0; i < 256; i++) {
    rpend *p = calloc(1, sizeof *p);
    if (!p) return;
    foil_err e = {0};
    int rc = wire_recv(r->front, &p->m, 1, SREQ_MAX_FRAME, ZMQ_DONTWAIT, &e);
    if (rc == FOIL_EUNAVAIL) {
      rpend_free(r, p);
      return;
    }
    p->t0 = log_mono();
    if (!rc) {
      p->q = foil__v1__serve_request__unpack(NULL, zmq_msg_size(&p->m.body), zmq_msg_data(&p->m.body));
      if (!p->q) rc = foil_err_set(&e, FOIL_EINVAL, "the frame is not a foil.v1.ServeRequest");
    }
    if (!rc) rc = wire_check_msg(&p->q->base, &e);
    if (!rc) rc = sreq_authorize(r->auth, &p->m.body, p->q->body_case, &e);
    if (!rc) switch (p->q->body_case) {
        case FOIL__V1__SERVE_REQUEST__BODY_SEARCH: rc = sreq_check_search(p->q->search, 0, NULL, NULL, &e); break;
        case FOIL__V1__SERVE_REQUEST__BODY_STATUS:
        case FOIL__V1__SERVE_REQUEST__BODY_RELOAD: break;
        default:
          rc = foil_err_set(&e, FOIL_EINVAL, "the request names no operation foil-serve knows (search, status, reload)");
      }
    if (!rc) rc = fan_out(r, p, &e);
    if (rc) {
      fail(r, p, rc, "%s", e.msg);
      rpend_free(r, p);
      continue;
    }
    p->next = r->pend;
    r->pend = p;
  }
}

static void timers(router *r) {
  double now = log_mono();
  rpend **pp = &r->pend;
  while (*pp) {
    rpend *p = *pp;
    int done = 0;
    foil_err e = {0};
    if (p->retry_at && now >= p->retry_at) {
      if (fan_out(r, p, &e)) fail(r, p, e.code, "%s", e.msg), done = 1;
    } else if (!p->retry_at && now > p->deadline) {
      char who[512] = "";
      size_t at = 0;
      for (int b = 0; b < r->o.nbackends && at < sizeof who; b++)
        if (!p->rep[b]) at += (size_t)snprintf(who + at, sizeof who - at, "%s%s", at ? ", " : "", r->eps[b]);
      fail(r, p, FOIL_EUNAVAIL, "no answer from backend(s) %s within %.1f s", who, r->o.timeout_ms / 1e3);
      done = 1;
    }
    if (done) {
      *pp = p->next;
      rpend_free(r, p);
    } else {
      pp = &p->next;
    }
  }
}

int router_run(router *r, volatile sig_atomic_t *stop, foil_err *err) {
  int nb = r->o.nbackends;
  zmq_pollitem_t *it = calloc((size_t)nb + 1, sizeof *it);
  if (!it) return foil_err_set(err, FOIL_ENOMEM, "no memory");
  while (!*stop) {
    it[0] = (zmq_pollitem_t){.socket = r->front, .events = ZMQ_POLLIN};
    for (int b = 0; b < nb; b++) it[b + 1] = (zmq_pollitem_t){.socket = r->back[b], .events = ZMQ_POLLIN};
    int n = zmq_poll(it, nb + 1, r->pend ? 5 : 200);
    if (n < 0 && errno != EINTR) {
      free(it);
      return foil_err_set(err, FOIL_EINTERNAL, "poll: %s", zmq_strerror(errno));
    }
    if (n > 0) {
      for (int b = 0; b < nb; b++)
        if (it[b + 1].revents & ZMQ_POLLIN) from_backend(r, b);
      if (it[0].revents & ZMQ_POLLIN) from_front(r);
    }
    timers(r);
  }
  free(it);
  rlog(r, "INFO", "stopping");
  return FOIL_OK;
}

const char *router_endpoint(const router *r) { return r->endpoint; }

int router_new(router **out, const router_opts *o, foil_err *err) {
  *out = NULL;
  if (o->nbackends < 1 || o->nbackends > SMERGE_MAX_LISTS)
    return foil_err_set(err, FOIL_EINVAL, "--route needs 1 to %d backend endpoints (got %d)", SMERGE_MAX_LISTS,
                        o->nbackends);
  router *r = calloc(1, sizeof *r);
  if (!r) return foil_err_set(err, FOIL_ENOMEM, "no memory");
  r->o = *o;
  if (!r->o.bind) r->o.bind = SERVER_DEFAULT_BIND;
  if (!r->o.timeout_ms) r->o.timeout_ms = 10000;
  if (!r->o.retries) r->o.retries = 4;
  if (!r->o.backoff_ms) r->o.backoff_ms = 20;
  if (!r->o.log) r->o.log = stderr;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  r->next_id = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec;
  r->eps = calloc((size_t)o->nbackends, sizeof *r->eps);
  r->back = calloc((size_t)o->nbackends, sizeof *r->back);
  r->zctx = zmq_ctx_new();
  int rc = r->eps && r->back && r->zctx ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "no memory");
  auth_opts ao = {.key = o->curve_key, .allow = o->allow, .insecure = o->insecure, .log = r->o.log,
                  .component = "serve"};
  auth_client keys = {0};
  if (!rc) rc = auth_new(&r->auth, r->zctx, &ao, err);
  if (!rc) rc = auth_client_load(&keys, o->key, o->server_key, err);
  int zero = 0;
  int64_t hard = 2 * (int64_t)SREQ_MAX_FRAME;
  if (!rc) {
    r->front = zmq_socket(r->zctx, ZMQ_ROUTER);
    zmq_setsockopt(r->front, ZMQ_MAXMSGSIZE, &hard, sizeof hard);
    zmq_setsockopt(r->front, ZMQ_LINGER, &zero, sizeof zero);
    rc = auth_server_socket(r->auth, r->front, r->o.bind, err);
    if (!rc && zmq_bind(r->front, r->o.bind))
      rc = foil_err_set(err, FOIL_EUNAVAIL, "cannot listen on %s: %s", r->o.bind, zmq_strerror(errno));
    size_t len = sizeof r->endpoint;
    if (!rc) zmq_getsockopt(r->front, ZMQ_LAST_ENDPOINT, r->endpoint, &len);
  }
  for (int b = 0; !rc && b < o->nbackends; b++) {
    r->eps[b] = strdup(o->backends[b]);
    r->back[b] = zmq_socket(r->zctx, ZMQ_DEALER);
    if (!r->eps[b] || !r->back[b]) {
      rc = foil_err_set(err, FOIL_ENOMEM, "no memory");
      break;
    }
    zmq_setsockopt(r->back[b], ZMQ_LINGER, &zero, sizeof zero);
    rc = auth_client_socket(&keys, r->back[b], err);
    if (!rc && zmq_connect(r->back[b], r->eps[b]))
      rc = foil_err_set(err, FOIL_EINVAL, "bad backend address %s: %s", r->eps[b], zmq_strerror(errno));
  }
  if (rc) {
    router_destroy(&r);
    return rc;
  }
  rlog(r, "INFO", "routing on %s to %d backend(s)%s", r->endpoint, o->nbackends,
       keys.on ? " with CURVE" : "");
  if (!auth_enabled(r->auth))
    rlog(r, "WARN", "running WITHOUT authentication (no --curve-key/--allow-keys)%s", o->insecure ? " (--insecure)" : "; loopback only");
  memset(&keys, 0, sizeof keys);
  *out = r;
  return FOIL_OK;
}

void router_destroy(router **rp) {
  router *r = *rp;
  if (!r) return;
  while (r->pend) {
    rpend *p = r->pend;
    r->pend = p->next;
    fail(r, p, FOIL_EUNAVAIL, "the router is stopping");
    rpend_free(r, p);
  }
  if (r->front) zmq_close(r->front);
  for (int b = 0; r->back && b < r->o.nbackends; b++)
    if (r->back[b]) zmq_close(r->back[b]);
  for (int b = 0; r->eps && b < r->o.nbackends; b++) free(r->eps[b]);
  free(r->eps), free(r->back);
  auth_destroy(&r->auth);
  if (r->zctx) zmq_ctx_term(r->zctx);
  free(r);
  *rp = NULL;
}
