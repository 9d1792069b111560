/* coord_wp.c — the worker protocol (proto/foil/v1/worker.proto): register,
 * heartbeat, started, progress, finished, goodbye, each answered; fencing
 * by token. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/client.h"
#include "common/log.h"
#include "coordinator/coord_int.h"

#define MAX_PROGRESS_MSG 1024
#define MAX_METRICS (64u << 10)

static void answer(coord *c, wire_msg *m, Foil__V1__CoordinatorMessage *r) {
  foil_err err = {0};
  if (wire_reply(c->wrk, m, &r->base, &err)) coord_log(c, "WARN", "answer to a worker not sent: %s", err.msg);
}

__attribute__((format(printf, 5, 6))) static void answer_error(coord *c, wire_msg *m, uint64_t rid, int code,
                                                                const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  foil_utf8_scrub(msg);  /* cut (here or in a "%.200s") inside a character: proto3 strings are UTF-8 */
  Foil__V1__Error e = FOIL__V1__ERROR__INIT;
  e.code = client_err_to_code(code), e.message = msg;
  Foil__V1__CoordinatorMessage r = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  r.request_id = rid, r.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR, r.error = &e;
  answer(c, m, &r);
}

static void not_head(coord *c, wire_msg *m, uint64_t rid, const cworker *w, uint64_t job_id, uint64_t token) {
  answer_error(c, m, rid, FOIL_EPERM, "job %llu attempt token %llu is not headed by worker \"%s\": only its head "
               "reports on it", (unsigned long long)job_id, (unsigned long long)token, w->name);
}

static void answer_ack(coord *c, wire_msg *m, uint64_t rid) {
  Foil__V1__Ack ack = FOIL__V1__ACK__INIT;
  Foil__V1__CoordinatorMessage r = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  r.request_id = rid, r.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_ACK, r.ack = &ack;
  answer(c, m, &r);
}

/* The job's current attempt if token names it and it still runs. */
static cattempt *current_for(coord *c, uint64_t job_id, uint64_t token, cjob **jp) {
  cjob *j = coord_job(c, job_id);
  *jp = j;
  cattempt *a = j ? coord_current(j) : NULL;
  if (!a || a->token != token || !coord_running(j)) return NULL;
  return a;
}

/* 1 when w heads attempt a: only the head launches it, so only the head
 * reports on it (started, progress, finished). */
static int heads(coord *c, const cattempt *a, const cworker *w) {
  return a->nplace && a->place[0].worker == (int)(w - c->workers);
}

/* A refresh published a new version of its index: every serve job of that
 * index loads it now (SIGHUP) instead of at its next look at CURRENT. */
static void tell_servers(coord *c, const cjob *refresh) {
  for (size_t k = 0; k < c->nactive; k++) {
    cjob *j = coord_job(c, c->active[k]);
    if (!j || j->state != FOIL__V1__JOB_STATE__JOB_RUNNING || strcmp(j->spec->kind, "serve") ||
        strcmp(j->index, refresh->index))
      continue;
    coord_signal(c, j, SIGHUP);
    coord_log(c, "INFO", "job %llu: SIGHUP (refresh job %llu published index %s)", (unsigned long long)j->id,
              (unsigned long long)refresh->id, refresh->index);
  }
}

/* A Finished report of a job no longer in memory (evicted: final, so a
 * resend): answered as for a resident final job, from the store's row.
 * FOIL_EUNAVAIL when the store cannot be read (the worker sends it again). */
static int finished_evicted(coord *c, cworker *w, const Foil__V1__Finished *f) {
  cjob *j = NULL, *tmp = NULL;
  foil_err err = {0};
  if (coord_job_get(c, f->job_id, 1, &j, &tmp, &err)) {
    coord_log(c, "WARN", "job %llu: a finished report from %s not answered now: %s", (unsigned long long)f->job_id,
              w->name, err.msg);
    return FOIL_EUNAVAIL;
  }
  cattempt *a = j ? coord_current(j) : NULL;
  int rc = !a || a->token != f->token                      ? FOIL_EABORTED
           : !heads(c, a, w)                               ? FOIL_EPERM
           : a->state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL ? FOIL_EABORTED
                                                            : FOIL_OK;
  coord_job_free(tmp);
  return rc;
}

int coord_wp_finished(coord *c, cworker *w, const Foil__V1__Finished *f) {
  cjob *j = coord_job(c, f->job_id);
  if (!j) return finished_evicted(c, w, f);
  cattempt *a = coord_current(j);
  if (!a || a->token != f->token) return FOIL_EABORTED;  /* replaced: stale report */
  if (!heads(c, a, w)) return FOIL_EPERM;
  /* already final: this end (a resend) or another was committed before */
  if (!coord_running(j)) return a->state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL ? FOIL_EABORTED : FOIL_OK;
  coord_job_snap before;
  coord_job_save(j, &before);
  int st = f->state;
  if (st == FOIL__V1__JOB_STATE__JOB_NODE_FAIL) {  /* its worker is shutting down */
    char why[300];
    foil_utf8_copy(why, sizeof why, f->message && f->message[0] ? f->message : "the worker stopped it");
    if (coord_node_fail(c, j, w->name, why, !f->not_started)) {
      coord_job_restore(j, &before);  /* not committed: the worker sends it again */
      return FOIL_EUNAVAIL;
    }
    return FOIL_OK;
  }
  if (st != FOIL__V1__JOB_STATE__JOB_COMPLETED && st != FOIL__V1__JOB_STATE__JOB_FAILED &&
      st != FOIL__V1__JOB_STATE__JOB_CANCELLED && st != FOIL__V1__JOB_STATE__JOB_TIMEOUT)
    st = FOIL__V1__JOB_STATE__JOB_FAILED;
  if (j->state == FOIL__V1__JOB_STATE__JOB_COMPLETING && st != FOIL__V1__JOB_STATE__JOB_COMPLETED && j->stop_state)
    st = j->stop_state;
  double now = log_now();
  a->state = st;
  a->end_time = f->end_time > 0 ? f->end_time : now;
  a->exit_code = f->exit_code, a->signal = f->signal;
  foil_utf8_copy(a->reason, sizeof a->reason, f->message);
  j->state = st;
  j->end_time = a->end_time;
  j->exit_code = f->exit_code;
  foil_utf8_copy(j->reason, sizeof j->reason, a->reason);
  if (coord_persist_job(c, j, w->name, "%s: attempt %u (token %llu) exit %d%s%s%s", coord_state_name(st), a->n,
                        (unsigned long long)a->token, f->exit_code, f->signal ? " (signal)" : "",
                        a->reason[0] ? ": " : "", a->reason)) {
    coord_job_restore(j, &before);  /* not committed: no ack, the worker sends it again */
    return FOIL_EUNAVAIL;
  }
  coord_release_members(c, j, a);
  if (st == FOIL__V1__JOB_STATE__JOB_COMPLETED && !strcmp(j->spec->kind, "refresh") && j->index[0])
    tell_servers(c, j);
  c->dirty = 1;
  return FOIL_OK;
}

/* Attempts in refs that are not current: the worker must stop them. */
static Foil__V1__AttemptRef **stale_refs(coord *c, Foil__V1__AttemptRef **refs, size_t n, size_t *nout) {
  *nout = 0;
  Foil__V1__AttemptRef **out = malloc((n ? n : 1) * sizeof *out);
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++) {
    cjob *j;
    if (!current_for(c, refs[i]->job_id, refs[i]->token, &j)) out[(*nout)++] = refs[i];
  }
  return out;
}

static int listed(Foil__V1__AttemptRef **refs, size_t n, uint64_t job_id, uint64_t token) {
  for (size_t i = 0; i < n; i++)
    if (refs[i]->job_id == job_id && refs[i]->token == token) return 1;
  return 0;
}

/* How old an attempt must be before a worker that does not list it is
 * taken to have lost it: an Assign may still be in flight (or queued behind
 * a Register or Heartbeat the worker sent before it arrived) for about a
 * liveness window; twice that, as the heartbeat path has always used. */
static double missing_min_age(const coord *c) { return 2 * c->hb_s * c->o.liveness; }

/* Attempts this worker heads that it does not report: gone without a word
 * (older than min_age seconds, so an assign in flight is not taken for one). */
static void check_missing(coord *c, cworker *w, Foil__V1__AttemptRef **refs, size_t n, double min_age,
                          const char *why) {
  int wi = (int)(w - c->workers);
  double now = log_mono();
  for (size_t k = 0; k < c->nactive; k++) {
    cjob *j = coord_job(c, c->active[k]);
    cattempt *a = j ? coord_current(j) : NULL;
    if (!a || !coord_running(j) || !a->nplace || a->place[0].worker != wi) continue;
    if (listed(refs, n, j->id, a->token)) {
      /* still running after a stop: say it again now and then */
      if (j->state == FOIL__V1__JOB_STATE__JOB_COMPLETING && now - a->signal_mono > 3) coord_send_stop(c, j);
      continue;
    }
    if (now - a->assign_mono < min_age) continue;
    coord_node_fail(c, j, w->name, why, 1);
  }
}

/* A worker's routing id: "NAME/INSTANCE", or NAME alone (older workers:
 * their own instance). */
typedef struct {
  char route[COORD_MAX_ROUTE + 1];  /* as received, bytes outside ASCII's printable range as '?' */
  char name[COORD_MAX_ROUTE + 1];   /* the part before the first '/' */
  int ok;                           /* the whole id is text and the instance (if any) a plain token */
} wroute;

static int instance_ok(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > COORD_MAX_INSTANCE) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
          *s == '_' || *s == '-'))
      return 0;
  return 1;
}

static void route_parse(const wire_msg *m, wroute *r) {
  size_t len = m->nroute ? zmq_msg_size((zmq_msg_t *)&m->route[0]) : 0;
  wire_msg_peer(m, r->route, sizeof r->route);
  /* a NUL inside (ZeroMQ's own ids for peers that set none begin with one)
   * would cut the text: such an id cannot be a worker's */
  r->ok = len > 0 && len <= COORD_MAX_ROUTE && strlen(r->route) == len;
  for (char *p = r->route; *p; p++)  /* routing ids are bytes; names are printable */
    if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) *p = '?';
  snprintf(r->name, sizeof r->name, "%s", r->route);
  char *slash = strchr(r->name, '/');
  if (slash) {
    *slash = 0;
    if (!instance_ok(slash + 1)) r->ok = 0;
  }
}

/* 1 when worker w is live on a route other than `route`: registered from
 * it in this process and heard within the liveness window; *heard: seconds
 * since. */
static int taken_by_other(const coord *c, const cworker *w, const char *route, double *heard) {
  *heard = log_mono() - w->last_seen_mono;
  return w->session && !w->down && w->route[0] && strcmp(w->route, route) &&
         *heard <= c->hb_s * c->o.liveness;
}

/* The name is in use by another live process: ALREADY_EXISTS, with when to
 * try again (once that one would be out of its window). Nothing changes. */
static void refuse_taken(coord *c, wire_msg *m, uint64_t rid, cworker *w, const char *route, double heard) {
  double window = c->hb_s * c->o.liveness, left = window - heard, now = log_mono();
  if (heard < 0) heard = 0;  /* the grace of a restart or a stall */
  if (left < 0) left = 0;
  if (left > 3600) left = 3600;  /* a window of an hour or more: ask again hourly */
  if (!w->refused_logged || now - w->refused_logged >= 60) {  /* once a minute at most */
    w->refused_logged = now;
    coord_log(c, "WARN", "worker %s: a second foil-worker of that name (%s) refused: %s on %s is live (heard %.1f s "
              "ago); repeats of this are logged once a minute", w->name, route, w->route, w->host, heard);
  }
  char msg[1024];
  snprintf(msg, sizeof msg, "register: worker name \"%s\" is in use by a live foil-worker on host %s (heard %.1f s "
           "ago, as %s): a second process may not take it over. This one (%s) is accepted once that one has been "
           "silent for %.1f s (the liveness window); to run both, start this one with another --name",
           w->name, w->host, heard, w->route, route, window);
  foil_utf8_scrub(msg);
  Foil__V1__Error e = FOIL__V1__ERROR__INIT;
  e.code = client_err_to_code(FOIL_EEXIST), e.message = msg;
  Foil__V1__CoordinatorMessage r = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  r.request_id = rid, r.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR, r.error = &e;
  r.retry_after_ms = (uint32_t)(left * 1e3) + 100;  /* just past its window */
  answer(c, m, &r);
}

static void do_register(coord *c, wire_msg *m, uint64_t rid, const Foil__V1__Register *r, const wroute *from) {
  foil_err err = {0};
  if (wire_check_len("register.name", r->name, COORD_MAX_NAME, &err) ||
      wire_check_len("register.host", r->host, 255, &err))
    return answer_error(c, m, rid, err.code, "%s", err.msg);
  if (!r->name[0] || strcmp(r->name, from->name))
    return answer_error(c, m, rid, FOIL_EINVAL, "register: name \"%s\" must be the NAME of the socket's routing id "
                        "NAME/INSTANCE (\"%s\")", r->name, from->route);
  if (!from->ok)
    return answer_error(c, m, rid, FOIL_EINVAL, "register: the socket's routing id \"%s\" is not NAME or "
                        "NAME/INSTANCE (an instance is 1 to %d letters, digits, '.', '_', '-')", from->route,
                        COORD_MAX_INSTANCE);
  /* names go into placements ("w:r,w:r") and the store: plain names only */
  if (!confine_name_ok(r->name))
    return answer_error(c, m, rid, FOIL_EINVAL, "register: worker name \"%s\" must be 1 to %d of letters, digits, "
                        "'.', '_' and '-' (not \".\" or \"..\"); start foil-worker with another --name",
                        r->name, COORD_MAX_NAME);
  if (!r->slots || r->slots > 4096 || r->gpus > 64)
    return answer_error(c, m, rid, FOIL_EINVAL, "register: %u slots and %u GPUs are out of range (1..4096, 0..64)",
                        r->slots, r->gpus);
  int wi = coord_worker_find(c, r->name);
  double heard = 0;
  if (wi >= 0 && taken_by_other(c, &c->workers[wi], from->route, &heard))
    return refuse_taken(c, m, rid, &c->workers[wi], from->route, heard);
  if (wi < 0 && (wi = coord_worker_add(c, r->name)) < 0) return answer_error(c, m, rid, FOIL_ENOMEM, "no memory");
  cworker *w = &c->workers[wi];
  char was[COORD_MAX_ROUTE + 8] = "";
  if (w->route[0] && strcmp(w->route, from->route)) snprintf(was, sizeof was, " (was %s)", w->route);
  snprintf(w->route, sizeof w->route, "%s", from->route);  /* from now on, its messages come from and go to here */
  snprintf(w->host, sizeof w->host, "%s", r->host[0] ? r->host : r->name);
  w->slots = r->slots, w->gpus = r->gpus;
  w->down = 0, w->session = 1;
  w->registered_time = w->last_heartbeat = log_now();
  w->last_seen_mono = log_mono();
  w->refused_logged = 0;
  coord_persist_worker(c, w, "registered: host %s, %u slots, %u GPUs, %zu attempt(s) running; as %s%s", w->host,
                       w->slots, w->gpus, r->n_running, w->route, was);
  size_t unrecorded = 0;
  for (size_t i = 0; i < r->n_finished; i++) unrecorded += coord_wp_finished(c, w, r->finished[i]) == FOIL_EUNAVAIL;
  if (unrecorded) {  /* not acknowledged: the worker registers again with them */
    c->dirty = 1;
    return answer_error(c, m, rid, FOIL_EUNAVAIL, "register: %zu job end(s) it reports could not be recorded; "
                        "register again", unrecorded);
  }
  /* not min_age 0: a second Register sent before this worker saw an Assign
   * made after the first one must not NODE_FAIL that attempt (the heartbeat
   * path catches an attempt really gone once it is older) */
  check_missing(c, w, r->running, r->n_running, missing_min_age(c), "the worker came back without it");
  size_t nkill = 0;
  Foil__V1__AttemptRef **kill = stale_refs(c, r->running, r->n_running, &nkill);
  Foil__V1__Registered reg = FOIL__V1__REGISTERED__INIT;
  reg.heartbeat_ms = (uint32_t)c->o.heartbeat_ms, reg.liveness = (uint32_t)c->o.liveness;
  reg.kill = kill, reg.n_kill = nkill, reg.time = log_now();
  reg.goodbye = 1;  /* do_goodbye */
  Foil__V1__CoordinatorMessage a = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  a.request_id = rid, a.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_REGISTERED, a.registered = &reg;
  answer(c, m, &a);
  free(kill);
  c->dirty = 1;
}

static void do_heartbeat(coord *c, wire_msg *m, uint64_t rid, cworker *w, const Foil__V1__Heartbeat *h) {
  w->last_heartbeat = log_now();
  check_missing(c, w, h->running, h->n_running, missing_min_age(c), "the worker no longer runs it");
  size_t nkill = 0;
  Foil__V1__AttemptRef **kill = stale_refs(c, h->running, h->n_running, &nkill);
  Foil__V1__HeartbeatAck ack = FOIL__V1__HEARTBEAT_ACK__INIT;
  ack.kill = kill, ack.n_kill = nkill;
  Foil__V1__CoordinatorMessage a = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  a.request_id = rid, a.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_HEARTBEAT, a.heartbeat = &ack;
  answer(c, m, &a);
  free(kill);
}

/* A Goodbye (worker.proto): the process is shutting down cleanly. From
 * the route w registered from: the job ends it carries are applied as a
 * Register's, then w is lost now, as after missed heartbeats
 * (coord_worker_lost: DOWN, the attempts still on it NODE_FAIL and
 * requeued), which frees the name for the next process at once. Both in
 * this one call, so no scheduling pass sees the slots those ends free as
 * w's. From any other route (w NULL, unregistered, or another process's)
 * nothing changes and its reports are not read. Ack either way: the sender
 * is leaving and sends nothing again, so an end not committed here is not
 * refused but left to coord_worker_lost (NODE_FAIL). */
static void do_goodbye(coord *c, wire_msg *m, uint64_t rid, cworker *w, const wroute *from,
                       const Foil__V1__Goodbye *g) {
  if (w && w->session && !w->down && !strcmp(w->route, from->route)) {
    w->last_seen_mono = log_mono();
    for (size_t i = 0; g && i < g->n_finished; i++) coord_wp_finished(c, w, g->finished[i]);
    char why[COORD_MAX_ROUTE + 64];
    snprintf(why, sizeof why, "said goodbye (shut down; as %s)", w->route);
    coord_worker_lost(c, w, why);
  }
  answer_ack(c, m, rid);
}

static void set_str(char **dst, const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) return;
  free(*dst);
  *dst = d;
}

void coord_wp_handle(coord *c, wire_msg *m, int rc, const foil_err *e) {
  wroute from;
  route_parse(m, &from);
  if (rc) return answer_error(c, m, 0, rc, "%s", e->msg);
  Foil__V1__WorkerMessage *q = foil__v1__worker_message__unpack(NULL, zmq_msg_size(&m->body), zmq_msg_data(&m->body));
  if (!q) return answer_error(c, m, 0, FOIL_EINVAL, "the frame is not a foil.v1.WorkerMessage");
  uint64_t rid = q->request_id;
  char who[AUTH_MAX_NAME + 1];
  int role = auth_peer(c->auth, &m->body, who, sizeof who);
  if (auth_enabled(c->auth) && role != AUTH_WORKER) {
    answer_error(c, m, rid, FOIL_EPERM, "key \"%s\" has the role %s: only worker keys speak the worker protocol",
                 who, auth_role_name(role));
    goto done;
  }
  if (auth_enabled(c->auth) && strcmp(from.name, who)) {  /* one node's key cannot speak for another */
    answer_error(c, m, rid, FOIL_EPERM, "worker key \"%s\" may speak only as worker \"%s\" (foil-worker --name), "
                                       "not as \"%s\"", who, who, from.name);
    goto done;
  }
  /* a worker's text cut inside a character (an older worker) is kept, its
   * bad bytes replaced: refusing the report would lose how the job ended */
  if (q->body_case == FOIL__V1__WORKER_MESSAGE__BODY_FINISHED && q->finished && q->finished->message)
    foil_utf8_scrub(q->finished->message);
  if (q->body_case == FOIL__V1__WORKER_MESSAGE__BODY_STARTED && q->started && q->started->resume_from)
    foil_utf8_scrub(q->started->resume_from);
  if (q->body_case == FOIL__V1__WORKER_MESSAGE__BODY_REGISTER && q->register_)
    for (size_t i = 0; i < q->register_->n_finished; i++)
      if (q->register_->finished[i]->message) foil_utf8_scrub(q->register_->finished[i]->message);
  if (q->body_case == FOIL__V1__WORKER_MESSAGE__BODY_GOODBYE && q->goodbye)
    for (size_t i = 0; i < q->goodbye->n_finished; i++)
      if (q->goodbye->finished[i]->message) foil_utf8_scrub(q->goodbye->finished[i]->message);
  foil_err ue = {0};
  if (wire_check_msg(&q->base, &ue)) {
    answer_error(c, m, rid, ue.code, "%s", ue.msg);
    goto done;
  }
  if (q->body_case == FOIL__V1__WORKER_MESSAGE__BODY_REGISTER) {
    do_register(c, m, rid, q->register_, &from);
    goto done;
  }
  int wi = from.ok ? coord_worker_find(c, from.name) : -1;
  cworker *w = wi >= 0 ? &c->workers[wi] : NULL;
  if (q->body_case == FOIL__V1__WORKER_MESSAGE__BODY_GOODBYE) {
    do_goodbye(c, m, rid, w, &from, q->goodbye);
    goto done;
  }
  if (!w || !w->session) {
    answer_error(c, m, rid, FOIL_EPRECOND, "register first: this coordinator does not know worker \"%s\"", from.name);
    goto done;
  }
  /* another process of that name holds it (or took it over once this one
   * went silent): this one registers again, and is told whether it may */
  if (strcmp(w->route, from.route)) {
    answer_error(c, m, rid, FOIL_EPRECOND, "register first: worker \"%s\" is registered from %s, not from this "
                 "connection (%s)", w->name, w->route, from.route);
    goto done;
  }
  w->last_seen_mono = log_mono();
  cjob *j = NULL;
  switch (q->body_case) {
    case FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT: do_heartbeat(c, m, rid, w, q->heartbeat); break;
    case FOIL__V1__WORKER_MESSAGE__BODY_STARTED: {
      const Foil__V1__Started *s = q->started;
      cattempt *a = current_for(c, s->job_id, s->token, &j);
      if (!a) {
        answer_error(c, m, rid, FOIL_EABORTED, "job %llu attempt token %llu is not current: stop it",
                     (unsigned long long)s->job_id, (unsigned long long)s->token);
        break;
      }
      if (!heads(c, a, w)) {
        not_head(c, m, rid, w, s->job_id, s->token);
        break;
      }
      char before[sizeof a->resume_from];
      memcpy(before, a->resume_from, sizeof before);
      foil_utf8_copy(a->resume_from, sizeof a->resume_from, s->resume_from);
      if (s->resume_from[0] &&
          coord_persist_job(c, j, w->name, "attempt %u resumes from %s", a->n, a->resume_from)) {
        memcpy(a->resume_from, before, sizeof before);  /* not committed: no ack, the worker sends it again */
        answer_error(c, m, rid, FOIL_EUNAVAIL, "job %llu attempt token %llu: its start could not be recorded; "
                     "send it again", (unsigned long long)s->job_id, (unsigned long long)s->token);
        break;
      }
      answer_ack(c, m, rid);
      break;
    }
    case FOIL__V1__WORKER_MESSAGE__BODY_PROGRESS: {
      const Foil__V1__ProgressReport *p = q->progress;
      cattempt *a = current_for(c, p->job_id, p->token, &j);
      if (!a) {
        answer_error(c, m, rid, FOIL_EABORTED, "job %llu attempt token %llu is not current: stop it",
                     (unsigned long long)p->job_id, (unsigned long long)p->token);
        break;
      }
      if (!heads(c, a, w)) {
        not_head(c, m, rid, w, p->job_id, p->token);
        break;
      }
      const Foil__V1__Progress *g = p->progress;
      foil_err err = {0};
      if (g && (wire_check_len("progress.message", g->message, MAX_PROGRESS_MSG, &err) ||
                wire_check_len("progress.metrics_json", g->metrics_json, MAX_METRICS, &err))) {
        answer_error(c, m, rid, err.code, "%s", err.msg);
        break;
      }
      if (g) {
        j->p_value = g->value, j->p_total = g->total, j->p_time = log_now();
        set_str(&j->p_msg, g->message);
        set_str(&j->p_metrics, g->metrics_json);
      }
      answer_ack(c, m, rid);
      if (g) coord_loop_progress(c, j);
      break;
    }
    case FOIL__V1__WORKER_MESSAGE__BODY_FINISHED: {
      const Foil__V1__Finished *f = q->finished;
      int r = coord_wp_finished(c, w, f);
      if (r == FOIL_EPERM) not_head(c, m, rid, w, f->job_id, f->token);
      else if (r == FOIL_EUNAVAIL)
        answer_error(c, m, rid, r, "job %llu attempt token %llu: its end could not be recorded; send it again",
                     (unsigned long long)f->job_id, (unsigned long long)f->token);
      else if (r) answer_error(c, m, rid, r, "job %llu attempt token %llu was replaced: report dropped",
                               (unsigned long long)f->job_id, (unsigned long long)f->token);
      else answer_ack(c, m, rid);
      break;
    }
    default:
      answer_error(c, m, rid, FOIL_EINVAL, "the message names nothing this coordinator knows");
  }
done:
  foil__v1__worker_message__free_unpacked(q, NULL);
}
