/* server.c — see server.h. */
#define _POSIX_C_SOURCE 200809L
#include "worker/serve/server.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/auth.h"
#include "common/client.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/wire.h"
#include "foil/v1/search.pb-c.h"
#include "kernels/kernels.h"
#include "worker/serve/sbatch.h"
#include "worker/serve/sgen.h"
#include "worker/serve/sreq.h"

/* one received message, until it is answered */
typedef struct {
  wire_msg m;
  Foil__V1__ServeRequest *q;
  double t0;        /* monotonic, at receive */
  int nq;
  uint64_t ticket;  /* a reload: the load that answers it */
} pending;

struct server {
  server_opts o;
  char root[1024], index[129];
  int *shards;
  FILE *log;
  void *zctx, *sock, *wake_rx, *wake_tx;
  auth *auth;
  char endpoint[256], json_path[1400];
  sgen *live;
  uint64_t queries;
  uint32_t swaps;
  pending **batch, *carry;
  pending **waits;     /* reloads waiting for their load */
  size_t nwaits, waits_cap;
  /* the loader thread and its mailbox (mu) */
  pthread_t th;
  int th_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop_loader;
  uint64_t req_seq, req_ticket;  /* tickets issued; the one asked now */
  int req_pending, req_version;
  sgen *ready;                   /* loaded and checked, not yet live */
  uint64_t done_seq;             /* the explicit load finished last: its ticket, */
  int done_rc;                   /* its result */
  char done_msg[512];
  int done_unread;               /* the loop has not read it yet: the loader waits
                                  * before the next load, so it is never overwritten */
  int loading, have_version;
  int seen_current;              /* the loader: CURRENT at its last look (watch or reload of
                                  * CURRENT), loaded or refused; the watch acts only when
                                  * CURRENT names another version */
  int live_version;              /* s->live's version, for the loader (which never reads s->live) */
  int total_shards;              /* --shards: the version's shard count at start; a version of
                                  * another count is refused (0: all shards held, any count) */
};

__attribute__((format(printf, 3, 4))) static void slog(server *s, const char *level, const char *fmt, ...) {
  char msg[1600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_line(s->log, level, "serve", "%s", msg);
}

static const char *dtype_name(vs_dtype d) { return d == VS_F16 ? "float16" : d == VS_I8 ? "int8" : "float32"; }

/* ---- the loader thread -------------------------------------------------------- */

static void wake(server *s) { zmq_send(s->wake_tx, "", 0, ZMQ_DONTWAIT); }

static int watching(const server *s) { return s->o.watch && !s->o.version; }

/* A server of some shards (--shards) answers for its part of a version
 * split as the one it started with: a version of another shard count
 * would leave rows that no backend of the router holds (more shards) or
 * one backend without its shard (fewer). FOIL_EPRECOND, saying what to do. */
static int shard_count_ok(const server *s, const sgen *g, foil_err *err) {
  if (!s->total_shards || g->iv->meta.n_shards == s->total_shards) return FOIL_OK;
  char held[256];
  size_t at = 0;
  for (int i = 0; i < s->o.nshards && at < sizeof held - 16; i++)
    at += (size_t)snprintf(held + at, sizeof held - at, "%s%d", i ? "," : "", s->o.shards[i]);
  return foil_err_set(err, FOIL_EPRECOND, "%s v%d has %d shard(s), but this server (--shards %s) serves versions "
                      "of %d: restart every backend of the router with a shard map for %d shard(s)", s->index,
                      g->version, g->iv->meta.n_shards, held, s->total_shards, g->iv->meta.n_shards);
}

/* Loads and checks version v; on success it waits in s->ready. */
static int load_version(server *s, int v, foil_err *err) {
  pthread_mutex_lock(&s->mu);
  s->loading = v;
  int live = s->live_version;
  pthread_mutex_unlock(&s->mu);
  slog(s, "INFO", "loading %s v%d beside v%d", s->index, v, live);
  double t0 = log_mono();
  sgen *g = NULL;
  int rc = sgen_load(s->root, s->index, v, s->shards, s->o.nshards, s->o.text, s->o.device, &g, err);
  if (!rc) rc = shard_count_ok(s, g, err);
  if (!rc) rc = sgen_check(g, s->o.check_samples, err);
  pthread_mutex_lock(&s->mu);
  s->loading = 0;
  if (!rc) {
    sgen_destroy(&s->ready);  /* an older one the loop has not taken yet */
    s->ready = g;
    g = NULL;
    s->have_version = v;
  }
  live = s->live_version;
  pthread_mutex_unlock(&s->mu);
  if (rc) {
    sgen_destroy(&g);
    slog(s, "ERROR", "%s v%d refused, v%d keeps serving: %s", s->index, v, live, err->msg);
  } else {
    slog(s, "INFO", "%s v%d loaded and checked in %.2f s", s->index, v, log_mono() - t0);
  }
  wake(s);
  return rc;
}

static void *loader_main(void *arg) {
  server *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->stop_loader) {
    if (s->done_unread) {  /* the last answer is not read: it must not be replaced */
      pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    if (!s->req_pending) {
      if (watching(s)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)s->o.watch_ms * 1000000L;
        ts.tv_sec += ns / 1000000000L, ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
      } else {
        pthread_cond_wait(&s->cv, &s->mu);
      }
    }
    if (s->stop_loader) break;
    /* the version asked is read only with its request, and taken with it:
     * a watch turn always reads CURRENT */
    int explicit = s->req_pending, want = explicit ? s->req_version : 0, have = s->have_version,
        seen = s->seen_current;
    uint64_t ticket = s->req_ticket;
    s->req_pending = 0, s->req_version = 0;
    pthread_mutex_unlock(&s->mu);
    if (explicit || watching(s)) {
      foil_err e = {0};
      int rc = FOIL_OK, target = want;
      if (!target) rc = index_current(s->root, s->index, &target, &e);
      int act = explicit || (!rc && target != seen);  /* the watch: only when CURRENT moved */
      if (!rc && !want) {
        pthread_mutex_lock(&s->mu);
        s->seen_current = target;
        pthread_mutex_unlock(&s->mu);
      }
      if (rc) {
        if (explicit) slog(s, "ERROR", "reload: %s", e.msg);
      } else if (target == have) {
        snprintf(e.msg, sizeof e.msg, "already serving v%d", target);
      } else if (act) {
        rc = load_version(s, target, &e);
      }
      if (explicit) {
        pthread_mutex_lock(&s->mu);
        s->done_seq = ticket, s->done_rc = rc, s->done_unread = 1;
        snprintf(s->done_msg, sizeof s->done_msg, "%s", e.msg);
        pthread_mutex_unlock(&s->mu);
        wake(s);
      }
    }
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* Asks the loader for version v (0: CURRENT); returns its ticket. The
 * mailbox holds one request: one the loader has not taken yet is replaced,
 * and *superseded (may be NULL) gets its ticket and *superseded_v its
 * version, for the loop to answer (ABORTED); 0 when none was replaced. A
 * request for the version already waiting shares its ticket (one load
 * answers both). */
static uint64_t ask_reload(server *s, int v, uint64_t *superseded, int *superseded_v) {
  uint64_t old = 0;
  int old_v = 0;
  pthread_mutex_lock(&s->mu);
  uint64_t t;
  if (s->req_pending && s->req_version == v) {
    t = s->req_ticket;
  } else {
    if (s->req_pending) old = s->req_ticket, old_v = s->req_version;
    t = ++s->req_seq;
    s->req_ticket = t, s->req_version = v, s->req_pending = 1;
  }
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (superseded) *superseded = old;
  if (superseded_v) *superseded_v = old_v;
  return t;
}

/* ---- replies ---------------------------------------------------------------------- */

static void pending_free(pending *p) {
  if (!p) return;
  wire_msg_close(&p->m);
  if (p->q) foil__v1__serve_request__free_unpacked(p->q, NULL);
  free(p);
}

static void send_reply(server *s, pending *p, Foil__V1__ServeReply *r) {
  foil_err err = {0};
  if (wire_reply(s->sock, &p->m, &r->base, &err))
    slog(s, "WARN", "reply to request %llu not sent: %s", (unsigned long long)r->request_id, err.msg);
}

__attribute__((format(printf, 4, 5))) static void reply_error(server *s, pending *p, int code, const char *fmt,
                                                               ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  Foil__V1__Error e = FOIL__V1__ERROR__INIT;
  e.code = client_err_to_code(code), e.message = msg;
  Foil__V1__ServeReply r = FOIL__V1__SERVE_REPLY__INIT;
  r.request_id = p->q ? p->q->request_id : 0, r.body_case = FOIL__V1__SERVE_REPLY__BODY_ERROR, r.error = &e;
  send_reply(s, p, &r);
}

/* The shard numbers g holds, into out[4096] (--shards takes at most that); returns how many. */
static size_t shard_list_of(const sgen *g, uint32_t *out) {
  size_t n = (size_t)(g->nshards < 4096 ? g->nshards : 4096);
  for (size_t i = 0; i < n; i++) out[i] = (uint32_t)g->shards[i];
  return n;
}

static void reply_status(server *s, pending *p) {
  const sgen *g = s->live;
  uint32_t shards[4096];
  Foil__V1__ServeStatus st = FOIL__V1__SERVE_STATUS__INIT;
  st.index = s->index, st.version = (uint32_t)g->version, st.count = (uint64_t)g->count;
  st.dim = (uint32_t)g->dim, st.dtype = (char *)dtype_name(g->dtype);
  st.shards = shards, st.n_shards = shard_list_of(g, shards);
  st.total_shards = (uint32_t)g->iv->meta.n_shards;
  st.checkpoint = (char *)g->checkpoint, st.text = g->text_ok != 0;
  st.queries = s->queries, st.swaps = s->swaps;
  pthread_mutex_lock(&s->mu);
  st.loading = (uint32_t)s->loading;
  pthread_mutex_unlock(&s->mu);
  Foil__V1__ServeReply r = FOIL__V1__SERVE_REPLY__INIT;
  r.request_id = p->q->request_id, r.body_case = FOIL__V1__SERVE_REPLY__BODY_STATUS, r.status = &st;
  send_reply(s, p, &r);
}

/* ---- the swap --------------------------------------------------------------------- */

static void take_ready(server *s) {
  char buf[8];
  while (zmq_recv(s->wake_rx, buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {
  }
  pthread_mutex_lock(&s->mu);
  sgen *g = s->ready;
  s->ready = NULL;
  if (g) s->live_version = g->version;  /* s->live becomes g below: the loader reads only this */
  uint64_t done = 0;  /* no explicit load ended since the last look: nobody to answer */
  int rc = 0;
  char msg[512] = "";
  if (s->done_unread) {
    done = s->done_seq, rc = s->done_rc;
    snprintf(msg, sizeof msg, "%s", s->done_msg);
    s->done_unread = 0;
    pthread_cond_signal(&s->cv);  /* the loader may take the next request */
  }
  pthread_mutex_unlock(&s->mu);
  if (g) {
    sgen *old = s->live;
    s->live = g;
    s->swaps++;
    slog(s, "INFO", "now serving %s v%d (%lld rows, dim %d, %s, text %s%s%s); v%d retired", s->index, g->version,
         (long long)g->count, g->dim, dtype_name(g->dtype), g->text_ok ? "yes" : "no", g->text_ok ? "" : ": ",
         g->text_ok ? "" : g->no_text, old ? old->version : 0);
    sgen_destroy(&old);
  }
  size_t k = 0;
  for (size_t i = 0; i < s->nwaits; i++) {
    pending *p = s->waits[i];
    if (p->ticket > done) {
      s->waits[k++] = p;
      continue;
    }
    if (rc) reply_error(s, p, rc, "reload of %s: %s; v%d keeps serving", s->index, msg, s->live->version);
    else reply_status(s, p);
    pending_free(p);
  }
  s->nwaits = k;
}

/* Answers the reload requests of ticket `old` (version old_v, 0: CURRENT),
 * replaced in the mailbox by a request for new_v before their load began:
 * ABORTED, so they are never answered with another load's result; asking
 * again is safe. O(waits). */
static void supersede(server *s, uint64_t old, int old_v, int new_v) {
  if (!old) return;
  char was[32], now[32];
  snprintf(was, sizeof was, old_v ? "v%d" : "CURRENT", old_v);
  snprintf(now, sizeof now, new_v ? "v%d" : "CURRENT", new_v);
  size_t k = 0;
  for (size_t i = 0; i < s->nwaits; i++) {
    pending *p = s->waits[i];
    if (p->ticket != old) {
      s->waits[k++] = p;
      continue;
    }
    reply_error(s, p, FOIL_EABORTED, "reload of %s %s superseded by a later reload of %s %s before it began; "
                "v%d serves (ask again to load %s)", s->index, was, s->index, now, s->live->version, was);
    pending_free(p);
  }
  s->nwaits = k;
}

/* ---- searches ----------------------------------------------------------------------- */

/* Answers the requests of one group from one search. */
static void answer_group(server *s, const sbatch_group *gr, const float *sc, const int64_t *id) {
  const sgen *g = s->live;
  uint32_t shards[4096];  /* every reply names the shards it was answered from (a router checks them) */
  size_t nshards = shard_list_of(g, shards), off = 0;
  for (int r = 0; r < gr->nreq; r++) {
    pending *p = s->batch[gr->req[r]];
    const Foil__V1__SearchRequest *sq = p->q->search;
    size_t n = sq->n_queries, k = (size_t)gr->k;
    Foil__V1__SearchHits *hits = calloc(n, sizeof *hits), **hp = calloc(n, sizeof *hp);
    char **keys = g->key_cap ? calloc(n * k, sizeof *keys) : NULL;
    if (!hits || !hp || (g->key_cap && !keys)) {
      reply_error(s, p, FOIL_ENOMEM, "no memory for the reply");
    } else {
      for (size_t i = 0; i < n; i++) {
        const int64_t *ids = id + (off + i) * k;
        size_t m = 0;
        while (m < k && ids[m] >= 0) m++;
        foil__v1__search_hits__init(&hits[i]);
        hits[i].n_ids = hits[i].n_scores = m;
        hits[i].ids = (int64_t *)ids, hits[i].scores = (float *)sc + (off + i) * k;
        if (keys) {
          hits[i].keys = keys + i * k, hits[i].n_keys = m;
          for (size_t j = 0; j < m; j++) {
            const char *key = sgen_key(g, ids[j]);
            hits[i].keys[j] = (char *)(key ? key : "");
          }
        }
        hp[i] = &hits[i];
      }
      Foil__V1__SearchReply sr = FOIL__V1__SEARCH_REPLY__INIT;
      sr.results = hp, sr.n_results = n, sr.index = s->index, sr.version = (uint32_t)g->version;
      sr.shards = shards, sr.n_shards = nshards, sr.total_shards = (uint32_t)g->iv->meta.n_shards;
      Foil__V1__ServeReply rep = FOIL__V1__SERVE_REPLY__INIT;
      rep.request_id = p->q->request_id, rep.body_case = FOIL__V1__SERVE_REPLY__BODY_SEARCH, rep.search = &sr;
      sr.server_ms = (log_mono() - p->t0) * 1e3;
      send_reply(s, p, &rep);
      s->queries += n;
    }
    free(hits), free(hp), free(keys);
    off += n;
  }
}

static void run_batch(server *s, int nb) {
  sgen *g = s->live;
  size_t d = (size_t)g->dim;
  int *done = calloc((size_t)nb, sizeof *done);
  const Foil__V1__SearchRequest **reqs = calloc((size_t)nb, sizeof *reqs);
  size_t *text_at = calloc((size_t)nb, sizeof *text_at);  /* first text vector of a request */
  float *tvec = NULL, *q = NULL, *sc = NULL;
  int64_t *id = NULL;
  char **texts = NULL;
  sbatch_plan_t *plan = NULL;
  foil_err e = {0};
  if (!done || !reqs || !text_at) goto oom;
  size_t ntext = 0;
  for (int i = 0; i < nb; i++) {
    reqs[i] = s->batch[i]->q->search;
    text_at[i] = ntext;
    for (size_t j = 0; j < reqs[i]->n_queries; j++) ntext += reqs[i]->queries[j]->n_vector == 0;
  }
  if (ntext) {  /* every text of the batch in one encoding pass */
    texts = malloc(ntext * sizeof *texts);
    tvec = malloc(ntext * d * sizeof *tvec);
    if (!texts || !tvec) goto oom;
    size_t t = 0;
    for (int i = 0; i < nb; i++)
      for (size_t j = 0; j < reqs[i]->n_queries; j++)
        if (!reqs[i]->queries[j]->n_vector) texts[t++] = reqs[i]->queries[j]->text;
    int rc = sgen_encode(g, texts, ntext, tvec, &e);
    if (rc) {
      for (int i = 0; i < nb; i++) {
        int has = 0;
        for (size_t j = 0; j < reqs[i]->n_queries; j++) has |= !reqs[i]->queries[j]->n_vector;
        if (has) reply_error(s, s->batch[i], rc, "encoding the text queries: %s", e.msg), done[i] = 1;
      }
    }
  }
  if (sbatch_plan(reqs, nb, &plan, &e)) goto oom;
  for (int gi = 0; gi < plan->ngroups; gi++) {
    sbatch_group *gr = &plan->groups[gi];
    /* requests whose texts failed drop out of the group */
    int keep = 0, nq = 0;
    for (int r = 0; r < gr->nreq; r++)
      if (!done[gr->req[r]]) gr->req[keep++] = gr->req[r], nq += (int)reqs[gr->req[r]]->n_queries;
    gr->nreq = keep, gr->nq = nq;
    if (!nq) continue;
    free(q), free(sc), free(id);
    q = malloc((size_t)nq * d * sizeof *q);
    sc = malloc((size_t)nq * (size_t)gr->k * sizeof *sc);
    id = malloc((size_t)nq * (size_t)gr->k * sizeof *id);
    if (!q || !sc || !id) goto oom;
    size_t row = 0;
    for (int r = 0; r < gr->nreq; r++) {
      const Foil__V1__SearchRequest *sq = reqs[gr->req[r]];
      size_t t = text_at[gr->req[r]];
      for (size_t j = 0; j < sq->n_queries; j++, row++) {
        const Foil__V1__SearchQuery *x = sq->queries[j];
        memcpy(q + row * d, x->n_vector ? x->vector : tvec + (t++) * d, d * sizeof *q);
      }
    }
    int rc = sgen_search(g, q, nq, gr->k, gr->lo, gr->hi, sc, id, &e);
    if (rc) {
      for (int r = 0; r < gr->nreq; r++) reply_error(s, s->batch[gr->req[r]], rc, "search: %s", e.msg);
    } else {
      answer_group(s, gr, sc, id);
    }
    for (int r = 0; r < gr->nreq; r++) done[gr->req[r]] = 1;
  }
  goto out;
oom:
  for (int i = 0; i < nb; i++)
    if (!done || !done[i]) reply_error(s, s->batch[i], FOIL_ENOMEM, "no memory for a batch of %d requests", nb);
out:
  sbatch_free(&plan);
  free(done), free(reqs), free(text_at), free(tvec), free(q), free(sc), free(id), free(texts);
}

/* ---- one turn --------------------------------------------------------------------- */

/* Takes what is waiting: answers status and bad requests at once, parks
 * reloads, collects searches into s->batch; returns how many. */
static int collect(server *s) {
  int nb = 0, nq = 0;
  if (s->carry) {  /* checked again: a swap may have come since */
    pending *p = s->carry;
    const sgen *g = s->live;
    foil_err e = {0};
    s->carry = NULL;
    if (sreq_check_search(p->q->search, g->dim, g->text_ok ? NULL : g->no_text, NULL, &e)) {
      reply_error(s, p, e.code, "%s", e.msg);
      pending_free(p);
    } else {
      s->batch[nb++] = p;
      nq = p->nq;
    }
  }
  for (;;) {
    pending *p = calloc(1, sizeof *p);
    if (!p) break;
    foil_err e = {0};
    int rc = wire_recv(s->sock, &p->m, 1, SREQ_MAX_FRAME, ZMQ_DONTWAIT, &e);
    if (rc == FOIL_EUNAVAIL) {
      pending_free(p);
      break;
    }
    p->t0 = log_mono();
    if (rc) {
      reply_error(s, p, rc, "%s", e.msg);
      pending_free(p);
      continue;
    }
    p->q = foil__v1__serve_request__unpack(NULL, zmq_msg_size(&p->m.body), zmq_msg_data(&p->m.body));
    if (!p->q) {
      reply_error(s, p, FOIL_EINVAL, "the frame is not a foil.v1.ServeRequest");
      pending_free(p);
      continue;
    }
    if (wire_check_msg(&p->q->base, &e) || sreq_authorize(s->auth, &p->m.body, p->q->body_case, &e)) {
      reply_error(s, p, e.code, "%s", e.msg);
      pending_free(p);
      continue;
    }
    switch (p->q->body_case) {
      case FOIL__V1__SERVE_REQUEST__BODY_SEARCH: {
        const sgen *g = s->live;
        rc = sreq_check_search(p->q->search, g->dim, g->text_ok ? NULL : g->no_text, NULL, &e);
        if (rc) break;
        p->nq = (int)p->q->search->n_queries;
        if (!sbatch_joins(nq, p->nq, s->o.batch_max)) {
          s->carry = p;
          return nb;
        }
        s->batch[nb++] = p;
        nq += p->nq;
        p = NULL;
        break;
      }
      case FOIL__V1__SERVE_REQUEST__BODY_STATUS: reply_status(s, p); break;
      case FOIL__V1__SERVE_REQUEST__BODY_RELOAD: {
        if (s->nwaits == s->waits_cap) {
          size_t cap = s->waits_cap ? 2 * s->waits_cap : 16;
          pending **w = realloc(s->waits, cap * sizeof *w);
          if (!w) {
            rc = foil_err_set(&e, FOIL_ENOMEM, "no memory to queue the reload");
            break;
          }
          s->waits = w, s->waits_cap = cap;
        }
        int v = (int)p->q->reload->version;
        if (v < 0) {
          rc = foil_err_set(&e, FOIL_EINVAL, "reload: version %u is out of range", p->q->reload->version);
          break;
        }
        slog(s, "INFO", "reload asked: %s%d", v ? "v" : "CURRENT, or v", v ? v : s->live->version);
        uint64_t old = 0;
        int old_v = 0;
        p->ticket = ask_reload(s, v, &old, &old_v);
        s->waits[s->nwaits++] = p;
        supersede(s, old, old_v, v);
        p = NULL;
        break;
      }
      default:
        rc = foil_err_set(&e, FOIL_EINVAL, "the request names no operation foil-serve knows (search, status, reload)");
    }
    if (p && rc) reply_error(s, p, rc, "%s", e.msg);
    pending_free(p);
    if (nb > s->o.batch_max) break;
  }
  return nb;
}

int server_run(server *s, volatile sig_atomic_t *stop, volatile sig_atomic_t *hup, foil_err *err) {
  while (!*stop) {
    if (hup && *hup) {  /* the allow-list is reread by the handler (auth_request_reload) */
      *hup = 0;
      if (s->o.version) {
        slog(s, "INFO", "SIGHUP: pinned to %s v%d (--version): not reloading CURRENT%s", s->index, s->o.version,
             auth_enabled(s->auth) ? "; the allow-list is reread" : "");
      } else {
        slog(s, "INFO", "SIGHUP: reloading CURRENT%s", auth_enabled(s->auth) ? " and the allow-list" : "");
        uint64_t old = 0;
        int old_v = 0;
        ask_reload(s, 0, &old, &old_v);
        supersede(s, old, old_v, 0);
      }
    }
    zmq_pollitem_t it[2] = {{.socket = s->sock, .events = ZMQ_POLLIN}, {.socket = s->wake_rx, .events = ZMQ_POLLIN}};
    int n = s->carry ? 1 : zmq_poll(it, 2, 200);
    if (n < 0 && errno != EINTR) return foil_err_set(err, FOIL_EINTERNAL, "poll: %s", zmq_strerror(errno));
    if (n < 0) continue;
    /* a new version goes live between batches, never inside one */
    if (s->carry || (it[1].revents & ZMQ_POLLIN)) take_ready(s);
    int nb = collect(s);
    if (nb) run_batch(s, nb);
    for (int i = 0; i < nb; i++) pending_free(s->batch[i]);
  }
  slog(s, "INFO", "stopping");
  return FOIL_OK;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

const char *server_endpoint(const server *s) { return s->endpoint; }

int server_new(server **out, const server_opts *o, foil_err *err) {
  *out = NULL;
  server *s = calloc(1, sizeof *s);
  if (!s) return foil_err_set(err, FOIL_ENOMEM, "no memory");
  s->o = *o;
  if (!s->o.batch_max) s->o.batch_max = 256;
  if (!s->o.watch_ms) s->o.watch_ms = 500;
  if (!s->o.check_samples) s->o.check_samples = 16;
  if (!s->o.bind) s->o.bind = SERVER_DEFAULT_BIND;
  s->log = o->log ? o->log : stderr;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  snprintf(s->root, sizeof s->root, "%s", o->root);
  snprintf(s->index, sizeof s->index, "%s", o->index);
  if (o->nshards) {
    s->shards = malloc((size_t)o->nshards * sizeof *s->shards);
    if (!s->shards) {
      server_destroy(&s);
      return foil_err_set(err, FOIL_ENOMEM, "no memory");
    }
    memcpy(s->shards, o->shards, (size_t)o->nshards * sizeof *s->shards);
    s->o.shards = s->shards;
  }
  s->batch = calloc((size_t)s->o.batch_max + 2, sizeof *s->batch);
  char dir[1300];
  int rc = s->batch ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "no memory");
  if (!rc) rc = index_dir(s->root, s->index, dir, sizeof dir, err);
  int v = o->version;
  if (!rc && !v) rc = index_current(s->root, s->index, &v, err);
  if (!rc) {
    double t0 = log_mono();
    rc = sgen_load(s->root, s->index, v, s->shards, o->nshards, o->text, o->device, &s->live, err);
    if (!rc) rc = sgen_check(s->live, s->o.check_samples, err);
    if (!rc) {
      const sgen *g = s->live;
      s->have_version = s->live_version = g->version;
      s->seen_current = o->version ? 0 : g->version;
      if (o->nshards) s->total_shards = g->iv->meta.n_shards;
      slog(s, "INFO", "%s v%d loaded and checked in %.2f s: %lld rows in %d shard(s), dim %d, %s, text %s%s%s",
           s->index, g->version, log_mono() - t0, (long long)g->count, g->nshards, g->dim, dtype_name(g->dtype),
           g->text_ok ? "yes" : "no", g->text_ok ? "" : ": ", g->text_ok ? "" : g->no_text);
      if (g->dev)
        slog(s, "INFO", "searching on the GPU: %.1f MiB of device memory (rows as float32)%s",
             (double)vs_dev_bytes(g->dev) / (1 << 20), g->text_ok ? "; text encoded there too" : "");
    }
  }
  if (!rc) {
    s->zctx = zmq_ctx_new();
    auth_opts ao = {.key = o->curve_key, .allow = o->allow, .insecure = o->insecure, .log = s->log,
                    .component = "serve"};
    rc = s->zctx ? auth_new(&s->auth, s->zctx, &ao, err) : foil_err_set(err, FOIL_EINTERNAL, "zmq_ctx_new failed");
  }
  if (!rc) {
    s->sock = zmq_socket(s->zctx, ZMQ_ROUTER);
    s->wake_rx = zmq_socket(s->zctx, ZMQ_PAIR);
    s->wake_tx = zmq_socket(s->zctx, ZMQ_PAIR);
    int zero = 0;
    int64_t hard = 2 * (int64_t)SREQ_MAX_FRAME;  /* beyond: ZeroMQ drops the peer; below: we answer */
    zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &hard, sizeof hard);
    zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s->wake_rx, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s->wake_tx, ZMQ_LINGER, &zero, sizeof zero);
    char inproc[64];
    snprintf(inproc, sizeof inproc, "inproc://serve-wake-%p", (void *)s);
    if (zmq_bind(s->wake_rx, inproc) || zmq_connect(s->wake_tx, inproc))
      rc = foil_err_set(err, FOIL_EINTERNAL, "inproc wake socket: %s", zmq_strerror(errno));
    else if ((rc = auth_server_socket(s->auth, s->sock, s->o.bind, err)))
      ;
    else if (zmq_bind(s->sock, s->o.bind))
      rc = foil_err_set(err, FOIL_EUNAVAIL, "cannot listen on %s: %s (another foil-serve there? --bind another port, "
                        "or port * for any)", s->o.bind, zmq_strerror(errno));
    size_t len = sizeof s->endpoint;
    if (!rc) zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &len);
  }
  if (!rc && !o->nshards) {  /* a server of some shards is found through its router */
    char json[512];
    int len = snprintf(json, sizeof json, "{\"endpoint\": \"%s\", \"pid\": %ld, \"index\": \"%s\"}\n", s->endpoint,
                       (long)getpid(), s->index);
    snprintf(s->json_path, sizeof s->json_path, "%s/serve.json", dir);
    rc = foil_write_file_atomic(s->json_path, json, (size_t)len, err);
    if (rc) s->json_path[0] = 0;
  }
  if (!rc) {
    if (pthread_create(&s->th, NULL, loader_main, s))
      rc = foil_err_set(err, FOIL_EINTERNAL, "cannot start the loader thread");
    else
      s->th_started = 1;
  }
  if (rc) {
    server_destroy(&s);
    return rc;
  }
  slog(s, "INFO", "serving %s on %s (batches of up to %d queries; %s)", s->index, s->endpoint, s->o.batch_max,
       watching(s) ? "following CURRENT" : o->version ? "pinned" : "not watching CURRENT");
  const char *blas_warn = kernels_backend_warning();
  if (blas_warn) slog(s, "WARN", "%s", blas_warn);
  if (auth_enabled(s->auth)) slog(s, "INFO", "CURVE on: only keys in %s connect (SIGHUP rereads it)", o->allow);
  else slog(s, "WARN", "running WITHOUT authentication (no --curve-key/--allow-keys): anyone who reaches %s may search%s",
            s->endpoint, o->insecure ? " (--insecure)" : "; loopback only");
  *out = s;
  return FOIL_OK;
}

void server_destroy(server **sp) {
  server *s = *sp;
  if (!s) return;
  if (s->th_started) {
    pthread_mutex_lock(&s->mu);
    s->stop_loader = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
  }
  if (s->json_path[0]) {  /* remove serve.json if it still names this process */
    char *data = NULL, mine[64];
    size_t len = 0;
    snprintf(mine, sizeof mine, "\"pid\": %ld,", (long)getpid());
    if (!foil_read_file(s->json_path, &data, &len, NULL) && strstr(data, mine)) unlink(s->json_path);
    free(data);
  }
  for (size_t i = 0; i < s->nwaits; i++) {
    reply_error(s, s->waits[i], FOIL_EUNAVAIL, "foil-serve is stopping");
    pending_free(s->waits[i]);
  }
  free(s->waits);
  pending_free(s->carry);
  if (s->sock) zmq_close(s->sock);
  if (s->wake_rx) zmq_close(s->wake_rx);
  if (s->wake_tx) zmq_close(s->wake_tx);
  auth_destroy(&s->auth);
  if (s->zctx) zmq_ctx_term(s->zctx);
  sgen_destroy(&s->live);
  sgen_destroy(&s->ready);
  free(s->batch), free(s->shards);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
  *sp = NULL;
}
