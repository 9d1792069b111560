/* coord_api.c — the control API: one handler per foil.v1.Request body.
 * Every request gets exactly one Reply; bad input gets an Error and changes
 * nothing. Replies are built in an arena freed after sending. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/client.h"
#include "common/log.h"
#include "coordinator/coord_int.h"

/* A JobList reply stops before it passes this many bytes (packed): 32 MiB,
 * half the client's CLIENT_MAX_REPLY. Not const: tests lower it. */
size_t coord_list_budget = 32u << 20;

/* ---- a bump allocator for one reply ---------------------------------------- */

typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  _Alignas(16) char data[];
} chunk;
typedef struct {
  chunk *head;
  int failed;
} arena;

static void *arena_alloc(arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!a->head || a->head->used + n > a->head->cap) {
    size_t cap = n > 65536 ? n : 65536;
    chunk *ch = malloc(sizeof *ch + cap);
    if (!ch) {
      a->failed = 1;
      return NULL;
    }
    ch->next = a->head, ch->used = 0, ch->cap = cap;
    a->head = ch;
  }
  void *p = a->head->data + a->head->used;
  a->head->used += n;
  memset(p, 0, n);
  return p;
}

static char *arena_printf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *arena_printf(arena *a, const char *fmt, ...) {
  char buf[1400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  char *s = arena_alloc(a, strlen(buf) + 1);
  if (s) strcpy(s, buf);
  return s ? s : (char *)"";
}

static void arena_free(arena *a) {
  while (a->head) {
    chunk *n = a->head->next;
    free(a->head);
    a->head = n;
  }
}

/* ---- replies ---------------------------------------------------------------------- */

static void send_reply(coord *c, wire_msg *m, Foil__V1__Reply *r) {
  foil_err err = {0};
  if (wire_reply(c->ctl, m, &r->base, &err))
    coord_log(c, "WARN", "reply to request %llu not sent: %s", (unsigned long long)r->request_id, err.msg);
}

__attribute__((format(printf, 5, 6))) static void reply_error(coord *c, wire_msg *m, uint64_t rid,
                                                               int code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  foil_utf8_scrub(msg);  /* cut (here or in a "%.200s") inside a character: proto3 strings are UTF-8 */
  Foil__V1__Error e = FOIL__V1__ERROR__INIT;
  e.code = client_err_to_code(code), e.message = msg;
  Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
  r.request_id = rid, r.body_case = FOIL__V1__REPLY__BODY_ERROR, r.error = &e;
  send_reply(c, m, &r);
}

/* Job j as a message built in ar (its strings borrowed from j). full: as
 * Get has it, every attempt and the whole spec; else a list row: the
 * current attempt, and the spec without argv, spec_json and workdir (up to
 * 64 KiB + 256 KiB + 4 KiB a job: a list of them was the size of the
 * store), so a row costs some hundreds of bytes. */
static Foil__V1__Job *job_msg(coord *c, arena *ar, cjob *j, int full) {
  Foil__V1__Job *m = arena_alloc(ar, sizeof *m);
  if (!m) return NULL;
  foil__v1__job__init(m);
  m->id = j->id, m->spec = j->spec, m->state = j->state, m->reason = j->reason;
  if (!full && j->spec) {
    Foil__V1__JobSpec *sum = arena_alloc(ar, sizeof *sum);
    if (!sum) return NULL;
    *sum = *j->spec; /* shallow: resources and dependencies borrowed */
    sum->argv = NULL, sum->n_argv = 0, sum->spec_json = "", sum->workdir = "";
    m->spec = sum;
  }
  m->submit_time = j->submit_time, m->start_time = j->start_time, m->end_time = j->end_time;
  m->exit_code = j->exit_code, m->restart_count = j->restart_count, m->failures = j->failures;
  m->est_start_time = j->est_start, m->submission_id = j->submission_id, m->submitter = j->submitter;
  m->job_dir = arena_printf(ar, "%s/jobs/%llu", c->root, (unsigned long long)j->id);
  if (j->p_time) {
    Foil__V1__Progress *p = arena_alloc(ar, sizeof *p);
    if (p) {
      foil__v1__progress__init(p);
      p->value = j->p_value, p->total = j->p_total, p->time = j->p_time;
      p->message = j->p_msg ? j->p_msg : "";
      p->metrics_json = j->p_metrics ? j->p_metrics : "";
      m->progress = p;
    }
  }
  size_t first = full ? 0 : (j->natt ? j->natt - 1 : 0);  /* list: the current attempt only */
  size_t n = j->natt - first;
  if (!n) return m;
  m->attempts = arena_alloc(ar, n * sizeof *m->attempts);
  if (!m->attempts) return m;
  for (size_t i = 0; i < n; i++) {
    cattempt *a = &j->att[first + i];
    Foil__V1__Attempt *x = arena_alloc(ar, sizeof *x);
    if (!x) break;
    foil__v1__attempt__init(x);
    x->n = a->n, x->token = a->token, x->start_time = a->start_time, x->end_time = a->end_time;
    x->state = a->state, x->exit_code = a->exit_code, x->signal = a->signal;
    x->resume_from = a->resume_from, x->reason = a->reason;
    x->workers = arena_alloc(ar, (a->nplace ? a->nplace : 1) * sizeof *x->workers);
    if (x->workers) {
      for (int p = 0; p < a->nplace; p++) x->workers[p] = c->workers[a->place[p].worker].name;
      x->n_workers = (size_t)a->nplace;
    }
    m->attempts[m->n_attempts++] = x;
  }
  return m;
}

static int worker_state(const cworker *w) {
  if (w->down || !w->session) return FOIL__V1__WORKER_STATE__WORKER_DOWN;
  if (w->drain) return w->slots_used ? FOIL__V1__WORKER_STATE__WORKER_DRAINING : FOIL__V1__WORKER_STATE__WORKER_DRAINED;
  if (!w->slots_used) return FOIL__V1__WORKER_STATE__WORKER_IDLE;
  return w->slots_used < w->slots ? FOIL__V1__WORKER_STATE__WORKER_MIXED : FOIL__V1__WORKER_STATE__WORKER_ALLOCATED;
}

static Foil__V1__WorkerInfo *worker_msg(coord *c, arena *ar, cworker *w) {
  Foil__V1__WorkerInfo *m = arena_alloc(ar, sizeof *m);
  if (!m) return NULL;
  foil__v1__worker_info__init(m);
  m->name = w->name, m->host = w->host, m->state = worker_state(w);
  m->slots = w->slots, m->slots_used = w->slots_used, m->gpus = w->gpus, m->gpus_used = w->gpus_used;
  m->last_heartbeat = w->last_heartbeat, m->registered_time = w->registered_time;
  int wi = (int)(w - c->workers);
  m->jobs = arena_alloc(ar, (c->nactive ? c->nactive : 1) * sizeof *m->jobs);
  for (size_t k = 0; m->jobs && k < c->nactive; k++) {
    cjob *j = coord_job(c, c->active[k]);
    cattempt *a = j ? coord_current(j) : NULL;
    if (!a || !coord_running(j)) continue;
    for (int p = 0; p < a->nplace; p++)
      if (a->place[p].worker == wi) {
        m->jobs[m->n_jobs++] = j->id;
        break;
      }
  }
  return m;
}

/* ---- submit ----------------------------------------------------------------------- */

/* One job's argv in all (control.proto): every job's spec stays in memory
 * and in the store for good, so one submitter's must stay small. */
#define MAX_ARGV_BYTES (64u << 10)

/* Submission ids starting so are the refresh loop's (coord_loop.c submits
 * them through coord_submit); a client's are refused in do_submit. */
#define LOOP_SID_PREFIX "refresh-"

/* Checks a submitted spec against the limits of control.proto. */
static int check_spec(coord *c, const Foil__V1__JobSpec *s, foil_err *err) {
  int rc;
  if ((rc = wire_check_len("spec.name", s->name, COORD_MAX_NAME, err))) return rc;
  if (s->name[0] && !confine_name_ok(s->name))
    return foil_err_set(err, FOIL_EINVAL, "spec.name \"%s\" may hold only letters, digits, '.', '_' and '-' (not \".\" or \"..\")", s->name);
  if ((rc = wire_check_len("spec.kind", s->kind, COORD_MAX_KIND, err))) return rc;
  /* foil-run's kinds carry their spec in spec_json; "command" carries argv;
   * "serve" a JSON object naming its "index" */
  int foil_run = !strcmp(s->kind, "pretrain") || !strcmp(s->kind, "refresh") || !strcmp(s->kind, "decode-eval"),
      command = !strcmp(s->kind, "command");
  int serve = !strcmp(s->kind, "serve");
  if (!foil_run && !command && !serve)
    return foil_err_set(err, FOIL_EINVAL, "spec.kind \"%s\" is not a job kind this coordinator runs (pretrain, refresh, decode-eval, command, serve)",
                        s->kind);
  if ((rc = wire_check_len("spec.spec_json", s->spec_json, COORD_MAX_SPEC, err))) return rc;
  if (serve) {
    cJSON *j = cJSON_Parse(s->spec_json);
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "index");
    int obj = cJSON_IsObject(j), ok = cJSON_IsString(ix) && confine_name_ok(ix->valuestring);
    cJSON_Delete(j);
    if (!obj) return foil_err_set(err, FOIL_EINVAL, "spec.spec_json must be the serve spec, a JSON object with \"index\"");
    if (!ok)
      return foil_err_set(err, FOIL_EINVAL, "the serve spec needs \"index\": the index's name (letters, digits, '.', '_', '-'; not \".\" or \"..\")");
    if (s->n_argv) return foil_err_set(err, FOIL_EINVAL, "spec.argv is for kind \"command\" only");
  }
  if (foil_run) {
    cJSON *j = cJSON_Parse(s->spec_json);
    int obj = cJSON_IsObject(j);
    cJSON_Delete(j);
    if (!obj) return foil_err_set(err, FOIL_EINVAL, "spec.spec_json must be the %s spec, a JSON object", s->kind);
    if (s->n_argv) return foil_err_set(err, FOIL_EINVAL, "spec.argv is for kind \"command\" only");
  }
  if (command && !s->n_argv) return foil_err_set(err, FOIL_EINVAL, "spec.argv is required for kind \"command\"");
  if (s->n_argv > COORD_MAX_ARGV)
    return foil_err_set(err, FOIL_EINVAL, "spec.argv has %zu entries, over the limit of %d", s->n_argv, COORD_MAX_ARGV);
  size_t argv_bytes = 0;
  for (size_t i = 0; i < s->n_argv; i++) {
    if ((rc = wire_check_len("spec.argv entry", s->argv[i], COORD_MAX_ARG, err))) return rc;
    argv_bytes += strlen(s->argv[i]);
  }
  if (argv_bytes > MAX_ARGV_BYTES)
    return foil_err_set(err, FOIL_EINVAL, "spec.argv is %zu bytes in all, over the limit of %u KiB; pass "
                        "long inputs in a file", argv_bytes, MAX_ARGV_BYTES >> 10);
  if (command && !s->argv[0][0]) return foil_err_set(err, FOIL_EINVAL, "spec.argv[0] (the program) is empty");
  if ((rc = wire_check_len("spec.workdir", s->workdir, COORD_MAX_ARG, err))) return rc;
  if (s->workdir[0] && s->workdir[0] != '/')
    return foil_err_set(err, FOIL_EINVAL, "spec.workdir \"%s\" must be an absolute path", s->workdir);
  /* path confinement (common/confine.h): the working directory, then every
   * name and file the spec holds; relative paths are from the working
   * directory, else the job's directory jobs/<id> (jobs/0 stands for it) */
  if (s->workdir[0] && (rc = confine_path(&c->cf, "spec.workdir", s->workdir, NULL, NULL, err))) return rc;
  char jobdir[CONFINE_PATH_MAX + 16];
  snprintf(jobdir, sizeof jobdir, "%s/jobs/0", c->cf.dirs[0]);
  if ((rc = confine_spec(&c->cf, s->kind, s->spec_json, s->workdir[0] ? s->workdir : jobdir, err))) return rc;
  const Foil__V1__Resources *r = s->resources;
  if (r) {
    if (r->ranks > 4096) return foil_err_set(err, FOIL_EINVAL, "resources.ranks %u is over the limit of 4096", r->ranks);
    if (r->gpus_per_rank > 16)
      return foil_err_set(err, FOIL_EINVAL, "resources.gpus_per_rank %u is over the limit of 16", r->gpus_per_rank);
    if (r->nodes > COORD_MAX_PLACE)
      return foil_err_set(err, FOIL_EINVAL, "resources.nodes %u is over the limit of %d", r->nodes, COORD_MAX_PLACE);
    if (r->nodes > (r->ranks ? r->ranks : 1))
      return foil_err_set(err, FOIL_EINVAL, "resources.nodes %u is more than its %u ranks", r->nodes, r->ranks ? r->ranks : 1);
  }
  if (s->max_failures_set && s->max_failures < -1)
    return foil_err_set(err, FOIL_EINVAL, "spec.max_failures must be -1 (unlimited) or more");
  if (s->warn_signal < 0 || s->warn_signal > 64)
    return foil_err_set(err, FOIL_EINVAL, "spec.warn_signal %d is not a signal number", s->warn_signal);
  if (s->warn_signal && s->time_limit_s && s->warn_before_s >= s->time_limit_s)
    return foil_err_set(err, FOIL_EINVAL, "spec.warn_before_s (%u) must be less than time_limit_s (%u)",
                        s->warn_before_s, s->time_limit_s);
  if (s->n_dependencies > COORD_MAX_DEPS)
    return foil_err_set(err, FOIL_EINVAL, "%zu dependencies, over the limit of %d", s->n_dependencies, COORD_MAX_DEPS);
  for (size_t i = 0; i < s->n_dependencies; i++) {
    const Foil__V1__Dependency *d = s->dependencies[i];
    if (d->type != FOIL__V1__DEPENDENCY_TYPE__AFTER_OK && d->type != FOIL__V1__DEPENDENCY_TYPE__AFTER_ANY)
      return foil_err_set(err, FOIL_EINVAL, "dependency type %d is not known", d->type);
    int found = coord_job(c, d->job_id) != NULL;
    if (!found && d->job_id && d->job_id <= c->max_id) {  /* evicted: the store has it */
      store_loader l = {0};
      if (store_get_job(c->st, d->job_id, &l, 0, &found, err)) return FOIL_EINTERNAL;
    }
    if (!found)
      return foil_err_set(err, FOIL_ENOTFOUND, "dependency: there is no job %llu", (unsigned long long)d->job_id);
  }
  return FOIL_OK;
}

int coord_submit(coord *c, const Foil__V1__JobSpec *in, const char *submission_id, const char *submitter,
                 uint64_t *job_id, int *existing, foil_err *err) {
  *job_id = 0, *existing = 0;
  int rc;
  if ((rc = wire_check_len("submission_id", submission_id, COORD_MAX_NAME, err)) || (rc = check_spec(c, in, err)))
    return rc;
  uint64_t found = 0;
  if (store_find_submission(c->st, submitter, submission_id, &found, err)) return FOIL_EINTERNAL;
  if (found) {  /* a retried submit by the same submitter: the same job */
    *job_id = found, *existing = 1;
    return FOIL_OK;
  }
  /* normalize: a name, one rank at least */
  Foil__V1__JobSpec spec = *in;
  Foil__V1__Resources res = FOIL__V1__RESOURCES__INIT;
  if (spec.resources) res = *spec.resources;
  if (!res.ranks) res.ranks = 1;
  spec.resources = &res;
  if (!spec.name[0]) spec.name = spec.kind;
  size_t len = protobuf_c_message_get_packed_size(&spec.base);
  uint8_t *packed = malloc(len ? len : 1);
  if (!packed) return foil_err_set(err, FOIL_ENOMEM, "no memory for the spec");
  protobuf_c_message_pack(&spec.base, packed);
  /* what is stored must load again at the next start */
  Foil__V1__JobSpec *back = foil__v1__job_spec__unpack(NULL, len, packed);
  if (!back) {
    free(packed);
    return foil_err_set(err, FOIL_EINVAL, "the spec does not read back once packed (a malformed field)");
  }
  foil__v1__job_spec__free_unpacked(back, NULL);
  store_job row = {.submission_id = submission_id, .spec = packed, .spec_len = len,
                   .state = FOIL__V1__JOB_STATE__JOB_PENDING, .reason = "", .submit_time = log_now(),
                   .submitter = submitter};
  rc = store_begin(c->st, err);
  if (!rc) rc = store_insert_job(c->st, &row, err);
  char text[512];
  snprintf(text, sizeof text, "submitted: %s \"%s\", %u rank(s)%s%s", spec.kind, spec.name, res.ranks,
           submitter && *submitter ? ", by " : "", submitter ? submitter : "");
  if (!rc) rc = store_event(c->st, row.submit_time, row.id, NULL, text, err);
  /* room in memory before the commit: a job once durable is never left out of it */
  cjob *nj = NULL;
  int mem = 0;
  if (!rc && (rc = coord_job_make(c, &row, &nj, err))) mem = 1;
  if (!rc) rc = store_commit(c->st, err);  /* durable before the reply */
  if (rc) {
    store_rollback(c->st);
    coord_job_free(nj);
    free(packed);
    char was[sizeof err->msg];
    snprintf(was, sizeof was, "%s", err->msg);
    return foil_err_set(err, mem ? rc : FOIL_EINTERNAL, "the job was not recorded: %.900s", was);
  }
  coord_job_take(c, nj);
  free(packed);
  coord_log(c, "INFO", "job %llu: %s", (unsigned long long)row.id, text);
  c->dirty = 1;
  *job_id = row.id;
  return FOIL_OK;
}

/* Jobs of this submitter that have not started yet: PENDING, and REQUEUED
 * (put back after a lost worker, waiting the same way). Cost: one pass
 * over the active jobs. */
static int pending_of(coord *c, const char *who) {
  int n = 0;
  for (size_t k = 0; k < c->nactive; k++) {
    cjob *j = coord_job(c, c->active[k]);
    if (j && (j->state == FOIL__V1__JOB_STATE__JOB_PENDING || j->state == FOIL__V1__JOB_STATE__JOB_REQUEUED) &&
        !strcmp(j->submitter, who))
      n++;
  }
  return n;
}

static void do_submit(coord *c, wire_msg *m, const Foil__V1__Request *q, int role, const char *who) {
  const Foil__V1__SubmitRequest *s = q->submit;
  foil_err err = {0};
  if (!s->spec) return reply_error(c, m, q->request_id, FOIL_EINVAL, "submit without a spec");
  /* as Slurm's nice: anyone may lower their own jobs, only an admin may put
   * jobs ahead of everyone else's (without CURVE every peer is admin) */
  if (s->spec->priority > 0 && role != AUTH_ADMIN)
    return reply_error(c, m, q->request_id, FOIL_EPERM, "priority %d: only an admin key may submit above 0 "
                       "(key \"%s\" is a %s: use 0 or a negative priority to run after others)",
                       s->spec->priority, who, auth_role_name(role));
  if (!strncmp(s->submission_id, LOOP_SID_PREFIX, strlen(LOOP_SID_PREFIX)))
    return reply_error(c, m, q->request_id, FOIL_EINVAL,
                       "submission_id \"%.140s\": ids starting \"" LOOP_SID_PREFIX "\" are reserved for the "
                       "refresh jobs the coordinator submits itself; choose another id",
                       s->submission_id);
  uint64_t id = 0, found = 0;
  int existing = 0;
  /* a retried submit is not a new pending job: the limit is for new ones */
  if (c->o.max_pending > 0 && !store_find_submission(c->st, who, s->submission_id, &found, NULL) && !found &&
      pending_of(c, who) >= c->o.max_pending)
    return reply_error(c, m, q->request_id, FOIL_ENOMEM,
                       "%s%s%s has %d pending jobs, the most this coordinator takes (--max-pending); wait for "
                       "some to start or cancel some", *who ? "submitter \"" : "the local user", who, *who ? "\"" : "",
                       c->o.max_pending);
  int rc = coord_submit(c, s->spec, s->submission_id, who, &id, &existing, &err);
  if (rc) return reply_error(c, m, q->request_id, rc, "%s", err.msg);
  Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
  Foil__V1__SubmitReply sr = FOIL__V1__SUBMIT_REPLY__INIT;
  r.request_id = q->request_id, r.body_case = FOIL__V1__REPLY__BODY_SUBMIT, r.submit = &sr;
  sr.job_id = id, sr.existing = existing;
  send_reply(c, m, &r);
}

/* ---- the rest --------------------------------------------------------------------- */

/* The job a request names, resident or read from the store (*tmp: then
 * the caller's to free); NULL having answered the request (no such job, or
 * the store could not be read). */
static cjob *job_for(coord *c, wire_msg *m, uint64_t rid, uint64_t id, int last_only, cjob **tmp) {
  cjob *j = NULL;
  foil_err err = {0};
  int rc = coord_job_get(c, id, last_only, &j, tmp, &err);
  if (rc) reply_error(c, m, rid, rc, "job %llu: %s", (unsigned long long)id, err.msg);
  else if (!j) reply_error(c, m, rid, FOIL_ENOTFOUND, "there is no job %llu", (unsigned long long)id);
  return j;
}

static void do_get(coord *c, wire_msg *m, uint64_t rid, uint64_t id) {
  cjob *tmp = NULL, *j = job_for(c, m, rid, id, 0, &tmp);
  if (!j) return;
  arena ar = {0};
  Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
  r.request_id = rid, r.body_case = FOIL__V1__REPLY__BODY_JOB, r.job = job_msg(c, &ar, j, 1);
  if (ar.failed || !r.job) reply_error(c, m, rid, FOIL_ENOMEM, "no memory for the reply");
  else send_reply(c, m, &r);
  arena_free(&ar);
  coord_job_free(tmp);
}

/* A copy of job message x in ar, sharing nothing with where x borrows
 * from (a job read from the store is freed before the reply is sent).
 * packed: x's packed size. Cost: one pack and one unpack. */
static void *arena_pb_alloc(void *ad, size_t n) { return arena_alloc(ad, n); }
static void arena_pb_free(void *ad, void *p) { (void)ad, (void)p; }
static Foil__V1__Job *job_own(arena *ar, const Foil__V1__Job *x, size_t packed) {
  uint8_t *buf = arena_alloc(ar, packed ? packed : 1);
  if (!buf) return NULL;
  protobuf_c_message_pack(&x->base, buf);
  ProtobufCAllocator al = {arena_pb_alloc, arena_pb_free, ar};
  return foil__v1__job__unpack(&al, packed, buf);
}

/* One List request's walk: resident jobs from memory, evicted ones from
 * the store, merged newest first. */
typedef struct {
  coord *c;
  const Foil__V1__ListJobsRequest *l;
  arena *ar;
  Foil__V1__JobList *list;
  size_t limit, matched, bytes;
  uint64_t mem;  /* the next id the walk of memory looks at (0: done) */
  foil_err err;
} lister;

static int list_wants(const Foil__V1__ListJobsRequest *l, int state) {
  int want = l->n_states == 0;
  for (size_t i = 0; i < l->n_states && !want; i++) want = (int)l->states[i] == state;
  return want;
}

/* Job j (matching) into the list, or only counted once the reply is at its
 * budget; own: j is freed before the send (its row copied). FOIL_ENOMEM. */
static int list_add(lister *x, cjob *j, int own) {
  x->matched++;
  if (x->list->truncated) {
    x->list->truncated++;
    return FOIL_OK;
  }
  Foil__V1__Job *m = job_msg(x->c, x->ar, j, 0);
  if (!m) return FOIL_ENOMEM;
  size_t packed = protobuf_c_message_get_packed_size(&m->base), row = packed + 6; /* + tag and length */
  if (x->bytes + row > coord_list_budget) {
    x->list->truncated = 1;
    return FOIL_OK;
  }
  if (own && !(m = job_own(x->ar, m, packed))) return FOIL_ENOMEM;
  x->bytes += row;
  x->list->jobs[x->list->n_jobs++] = m;
  return FOIL_OK;
}

/* The resident jobs of ids above `above`, newest first, until the limit. */
static int list_memory(lister *x, uint64_t above) {
  for (; x->mem > above && x->matched < x->limit; x->mem--) {
    cjob *j = x->c->jobs[x->mem];
    if (j && list_wants(x->l, j->state) && list_add(x, j, 0)) return FOIL_ENOMEM;
  }
  return FOIL_OK;
}

typedef struct {
  coord *c;
  cjob *j;
} list_att;

static int list_attempt(void *ctx, const store_attempt *a) {
  list_att *la = ctx;
  return coord_job_add_attempt(la->c, la->j, a, 0);
}

/* store_list_jobs' row: the resident jobs newer than it first; then it,
 * unless it is resident (memory has it, as it is now). */
static int list_row(void *ctx, const store_job *r) {
  lister *x = ctx;
  if (list_memory(x, r->id)) return FOIL_ENOMEM;
  if (x->matched >= x->limit) return 1;
  if (x->c->jobs[r->id]) return 0;  /* resident: the walk of memory takes it next */
  if (x->list->truncated) {  /* past the budget: counted, not read */
    x->matched++, x->list->truncated++;
    return 0;
  }
  cjob *j = NULL;
  int rc = coord_job_build(r, &j, &x->err);
  if (!rc) {  /* a row shows the current attempt only */
    list_att la = {x->c, j};
    store_loader l = {NULL, list_attempt, NULL, &la};
    rc = store_get_attempts(x->c->st, r->id, &l, 1, &x->err);
  }
  if (!rc) rc = list_add(x, j, 1);
  coord_job_free(j);
  return rc ? (rc < 0 ? rc : FOIL_EINTERNAL) : 0;
}

/* List: newest first, at most limit matches, as summaries (job_msg), the
 * reply cut at coord_list_budget bytes with the matches left out counted
 * (JobList.truncated). Resident jobs come from memory; when some ids are
 * not resident (evicted) and the request wants a final state, the evicted
 * jobs come from the store (store_list_jobs), merged in by id. Cost: one
 * pass over the job ids; with evicted jobs, the store's rows read newest
 * first until the limit; each row sized once more than it is packed (an
 * evicted one also read, unpacked and copied); memory about the reply's
 * size, freed after the send. */
static void do_list(coord *c, wire_msg *m, const Foil__V1__Request *q) {
  const Foil__V1__ListJobsRequest *l = q->list;
  size_t limit = l->limit ? l->limit : 1000;
  if (limit > 10000) limit = 10000;
  arena ar = {0};
  Foil__V1__JobList list = FOIL__V1__JOB_LIST__INIT;
  list.now = log_now(); /* the clock the jobs' times come from: clients measure against it */
  list.jobs = arena_alloc(&ar, limit * sizeof *list.jobs);
  /* rows until the reply would pass its budget; past it only count the
   * matches left out (newest first: the oldest are the ones left out) */
  lister x = {.c = c, .l = l, .ar = &ar, .list = &list, .limit = limit, .bytes = 32, /* now, truncated, envelope */
              .mem = c->max_id};
  /* the final states asked for: only those can be evicted */
  int finals[5];
  size_t nf = 0;
  for (size_t i = 0; i < 5; i++)
    if (list_wants(l, coord_final_states[i])) finals[nf++] = coord_final_states[i];
  int rc = FOIL_OK;
  if (list.jobs && nf && c->nresident < c->max_id)
    rc = store_list_jobs(c->st, finals, nf, c->max_id, list_row, &x, &x.err);
  if (list.jobs && !rc) rc = list_memory(&x, 0);
  Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
  r.request_id = q->request_id, r.body_case = FOIL__V1__REPLY__BODY_JOBS, r.jobs = &list;
  if (ar.failed || rc == FOIL_ENOMEM) reply_error(c, m, q->request_id, FOIL_ENOMEM, "no memory for the reply");
  else if (rc) reply_error(c, m, q->request_id, rc, "the list could not be read from the job store: %s", x.err.msg);
  else send_reply(c, m, &r);
  arena_free(&ar);
}

/* j: resident, or an evicted (final) job read from the store, which only
 * the answers for a final job reach. */
static void cancel_job(coord *c, wire_msg *m, const Foil__V1__Request *q, int role, const char *who, cjob *j) {
  const Foil__V1__CancelRequest *x = q->cancel;
  uint64_t rid = q->request_id;
  if (role != AUTH_ADMIN && strcmp(j->submitter, who))
    return reply_error(c, m, rid, FOIL_EPERM, "job %llu was submitted by %s%s%s, not by %s: submitters cancel only their own jobs",
                       (unsigned long long)j->id, j->submitter[0] ? "\"" : "", j->submitter[0] ? j->submitter : "an admin",
                       j->submitter[0] ? "\"" : "", who);
  int running = coord_running(j);
  if (x->signal < 0 || x->signal > 64)
    return reply_error(c, m, rid, FOIL_EINVAL, "signal %d is not a signal number", x->signal);
  /* cancelling twice is the same as once (a retry whose first reply was
   * lost must not read as a failure); a job that ended otherwise stays an
   * error, as does a signal to any ended job */
  int again = !x->signal && j->state == FOIL__V1__JOB_STATE__JOB_CANCELLED;
  if (coord_final(j->state) && !again)
    return reply_error(c, m, rid, FOIL_EPRECOND, "job %llu already ended %s", (unsigned long long)j->id,
                       coord_state_name(j->state));
  if (again) {
    /* nothing to do: answered below with its state */
  } else if (x->signal) {
    if (!running)
      return reply_error(c, m, rid, FOIL_EPRECOND, "job %llu is %s: no process to signal",
                         (unsigned long long)j->id, coord_state_name(j->state));
    coord_signal(c, j, x->signal);
    coord_log(c, "INFO", "job %llu: signal %d sent", (unsigned long long)j->id, x->signal);
  } else if (!running) {
    coord_job_snap before;
    coord_job_save(j, &before);
    j->state = FOIL__V1__JOB_STATE__JOB_CANCELLED;
    j->end_time = log_now();
    snprintf(j->reason, sizeof j->reason, "cancelled before it ran");
    if (coord_persist_job(c, j, NULL, "CANCELLED before it ran")) {
      coord_job_restore(j, &before);  /* memory as the store has it: a retry does it again */
      return reply_error(c, m, rid, FOIL_EINTERNAL, "the cancel was not recorded; try again");
    }
  } else {
    if (j->state == FOIL__V1__JOB_STATE__JOB_RUNNING) {
      coord_job_snap before;
      coord_job_save(j, &before);
      j->state = FOIL__V1__JOB_STATE__JOB_COMPLETING;
      j->stop_state = FOIL__V1__JOB_STATE__JOB_CANCELLED;
      snprintf(j->reason, sizeof j->reason, "cancel requested");
      if (coord_persist_job(c, j, NULL, "COMPLETING: cancel requested")) {
        coord_job_restore(j, &before);
        return reply_error(c, m, rid, FOIL_EINTERNAL, "the cancel was not recorded; try again");
      }
    }
    coord_send_stop(c, j);
  }
  c->dirty = 1;
  Foil__V1__CancelReply cr = FOIL__V1__CANCEL_REPLY__INIT;
  cr.state = j->state;
  Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
  r.request_id = rid, r.body_case = FOIL__V1__REPLY__BODY_CANCEL, r.cancel = &cr;
  send_reply(c, m, &r);
}

static void do_cancel(coord *c, wire_msg *m, const Foil__V1__Request *q, int role, const char *who) {
  cjob *tmp = NULL, *j = job_for(c, m, q->request_id, q->cancel->job_id, 1, &tmp);
  if (!j) return;
  cancel_job(c, m, q, role, who, j);
  coord_job_free(tmp);
}

/* Opens <root>/jobs/<id>/log for reading. The job writes in jobs/<id> (and
 * may replace it): no symbolic link is followed below the data root, and
 * only a regular file is read, so a job cannot make the coordinator read
 * another file of its host. *fd -1 (FOIL_OK) when there is no log yet. */
static int open_log(coord *c, uint64_t id, int *fd, foil_err *err) {
  *fd = -1;
  int dfd = -1, rc = coord_job_dir_open(c, id, 0, &dfd, err);
  if (rc == FOIL_EPRECOND)
    return foil_err_set(err, rc, "job %llu: its log is not read: jobs/%llu/log or a directory above it is a "
                        "symbolic link", (unsigned long long)id, (unsigned long long)id);
  if (rc || dfd < 0) return rc;  /* no directory: no log yet */
  int at = openat(dfd, "log", O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  int e = errno;
  close(dfd);
  if (at < 0 && e == ENOENT) return FOIL_OK;  /* not written yet */
  if (at < 0 && (e == ELOOP || e == ENOTDIR))
    return foil_err_set(err, FOIL_EPRECOND, "job %llu: its log is not read: jobs/%llu/log or a directory above "
                        "it is a symbolic link", (unsigned long long)id, (unsigned long long)id);
  if (at < 0)
    return foil_err_set(err, FOIL_EINTERNAL, "job %llu: its log cannot be read: %s", (unsigned long long)id,
                        strerror(e));
  struct stat st;
  if (fstat(at, &st) || !S_ISREG(st.st_mode)) {
    close(at);
    return foil_err_set(err, FOIL_EPRECOND, "job %llu: its log is not read: jobs/%llu/log is not a regular file",
                        (unsigned long long)id, (unsigned long long)id);
  }
  *fd = at;
  return FOIL_OK;
}

static void do_logs(coord *c, wire_msg *m, const Foil__V1__Request *q) {
  const Foil__V1__LogsRequest *l = q->logs;
  int state = 0;
  {
    cjob *tmp = NULL, *j = coord_job(c, l->job_id);
    if (!j && !(j = job_for(c, m, q->request_id, l->job_id, 1, &tmp))) return;
    state = j->state;
    coord_job_free(tmp);
  }
  size_t max = l->max_bytes ? l->max_bytes : 64 << 10;
  if (max > 256 << 10) max = 256 << 10;
  foil_err err = {0};
  int fd = -1, rc = open_log(c, l->job_id, &fd, &err);
  if (rc) return reply_error(c, m, q->request_id, rc, "%s", err.msg);
  uint8_t *buf = malloc(max);
  if (!buf) {
    if (fd >= 0) close(fd);
    return reply_error(c, m, q->request_id, FOIL_ENOMEM, "no memory");
  }
  size_t got = 0;
  off_t size = 0;
  if (fd >= 0) {
    struct stat st;
    if (!fstat(fd, &st)) size = st.st_size;
    if ((off_t)l->offset < size) {
      ssize_t n = pread(fd, buf, max, (off_t)l->offset);
      if (n > 0) got = (size_t)n;
    }
    close(fd);
  }
  Foil__V1__LogsReply lr = FOIL__V1__LOGS_REPLY__INIT;
  lr.data.data = buf, lr.data.len = got;
  lr.next_offset = l->offset + got;
  lr.state = state;
  lr.eof = coord_final(state) && (off_t)lr.next_offset >= size;
  Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
  r.request_id = q->request_id, r.body_case = FOIL__V1__REPLY__BODY_LOGS, r.logs = &lr;
  send_reply(c, m, &r);
  free(buf);
}

static void do_workers(coord *c, wire_msg *m, uint64_t rid) {
  arena ar = {0};
  Foil__V1__WorkerList wl = FOIL__V1__WORKER_LIST__INIT;
  wl.now = log_now(); /* the clock the heartbeat times come from: clients measure against it */
  wl.workers = arena_alloc(&ar, (c->nworkers ? c->nworkers : 1) * sizeof *wl.workers);
  for (size_t i = 0; wl.workers && i < c->nworkers; i++) {
    Foil__V1__WorkerInfo *w = worker_msg(c, &ar, &c->workers[i]);
    if (w) wl.workers[wl.n_workers++] = w;
  }
  Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
  r.request_id = rid, r.body_case = FOIL__V1__REPLY__BODY_WORKERS, r.workers = &wl;
  if (ar.failed) reply_error(c, m, rid, FOIL_ENOMEM, "no memory for the reply");
  else send_reply(c, m, &r);
  arena_free(&ar);
}

static void do_drain(coord *c, wire_msg *m, const Foil__V1__Request *q) {
  int wi = coord_worker_find(c, q->drain->worker);
  if (wi < 0) return reply_error(c, m, q->request_id, FOIL_ENOTFOUND, "there is no worker \"%s\"", q->drain->worker);
  cworker *w = &c->workers[wi];
  int was = w->drain;
  w->drain = !q->drain->undo;
  if (coord_persist_worker(c, w, "%s", w->drain ? "drain: takes no new jobs" : "drain undone: takes jobs")) {
    w->drain = was;  /* memory as the store has it */
    return reply_error(c, m, q->request_id, FOIL_EINTERNAL, "the drain was not recorded; try again");
  }
  c->dirty = 1;
  arena ar = {0};
  Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
  r.request_id = q->request_id, r.body_case = FOIL__V1__REPLY__BODY_DRAIN, r.drain = worker_msg(c, &ar, w);
  send_reply(c, m, &r);
  arena_free(&ar);
}

/* May this role make this request? (the job-level check of cancel is
 * in do_cancel) */
static int allowed(int role, int body) {
  switch (role) {
    case AUTH_ADMIN: return 1;
    case AUTH_SUBMITTER: return body != FOIL__V1__REQUEST__BODY_DRAIN;
    case AUTH_READER:
      return body == FOIL__V1__REQUEST__BODY_GET || body == FOIL__V1__REQUEST__BODY_WATCH ||
             body == FOIL__V1__REQUEST__BODY_LIST || body == FOIL__V1__REQUEST__BODY_LOGS ||
             body == FOIL__V1__REQUEST__BODY_WORKERS;
    default: return 0;
  }
}

static const char *op_name(int body) {
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(&foil__v1__request__descriptor, (unsigned)body);
  return f ? f->name : "this request";
}

void coord_api_handle(coord *c, wire_msg *m, int rc, const foil_err *e) {
  if (rc) return reply_error(c, m, 0, rc, "%s", e->msg);
  Foil__V1__Request *q = foil__v1__request__unpack(NULL, zmq_msg_size(&m->body), zmq_msg_data(&m->body));
  if (!q) return reply_error(c, m, 0, FOIL_EINVAL, "the frame is not a foil.v1.Request");
  foil_err ue = {0};
  if (wire_check_msg(&q->base, &ue)) {
    reply_error(c, m, q->request_id, ue.code, "%s", ue.msg);
    foil__v1__request__free_unpacked(q, NULL);
    return;
  }
  char who[AUTH_MAX_NAME + 1];
  int role = auth_peer(c->auth, &m->body, who, sizeof who);
  if (role == AUTH_NONE || role == AUTH_WORKER || (q->body_case != FOIL__V1__REQUEST__BODY__NOT_SET && !allowed(role, q->body_case))) {
    if (role == AUTH_NONE)
      reply_error(c, m, q->request_id, FOIL_EUNAUTH, "this connection carries no known identity");
    else if (role == AUTH_WORKER)
      reply_error(c, m, q->request_id, FOIL_EPERM, "key \"%s\" is a worker key: worker keys speak the worker "
                                                   "protocol, never the control API", who);
    else
      reply_error(c, m, q->request_id, FOIL_EPERM, "key \"%s\" has the role %s, which may not %s%s", who,
                  auth_role_name(role), op_name(q->body_case),
                  role == AUTH_READER ? " (readers get, watch, list, read logs and list workers)" : "");
    foil__v1__request__free_unpacked(q, NULL);
    return;
  }
  switch (q->body_case) {
    case FOIL__V1__REQUEST__BODY_SUBMIT: do_submit(c, m, q, role, who); break;
    case FOIL__V1__REQUEST__BODY_GET: do_get(c, m, q->request_id, q->get->job_id); break;
    case FOIL__V1__REQUEST__BODY_WATCH: do_get(c, m, q->request_id, q->watch->job_id); break;
    case FOIL__V1__REQUEST__BODY_LIST: do_list(c, m, q); break;
    case FOIL__V1__REQUEST__BODY_CANCEL: do_cancel(c, m, q, role, who); break;
    case FOIL__V1__REQUEST__BODY_LOGS: do_logs(c, m, q); break;
    case FOIL__V1__REQUEST__BODY_WORKERS: do_workers(c, m, q->request_id); break;
    case FOIL__V1__REQUEST__BODY_DRAIN: do_drain(c, m, q); break;
    default:
      reply_error(c, m, q->request_id, FOIL_EINVAL, "the request names no operation this coordinator knows");
  }
  foil__v1__request__free_unpacked(q, NULL);
}
