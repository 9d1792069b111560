/* coord.c — the coordinator's loop, state transitions and scheduling (see
 * coord.h; the handlers are in coord_api.c and coord_wp.c). */
#define _GNU_SOURCE /* syncfs (and POSIX 2008) */
#include "coordinator/coord.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/fileio.h"
#include "common/log.h"
#include "coordinator/coord_int.h"

/* ---- small helpers ---------------------------------------------------- */

void coord_log(coord *c, const char *level, const char *fmt, ...) {
  char msg[1536];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_line(c->log, level, "coordinator", "%s", msg);
}

int coord_running(const cjob *j) {
  return j->state == FOIL__V1__JOB_STATE__JOB_RUNNING || j->state == FOIL__V1__JOB_STATE__JOB_COMPLETING;
}

const int coord_final_states[5] = {FOIL__V1__JOB_STATE__JOB_COMPLETED, FOIL__V1__JOB_STATE__JOB_FAILED,
                                   FOIL__V1__JOB_STATE__JOB_CANCELLED, FOIL__V1__JOB_STATE__JOB_TIMEOUT,
                                   FOIL__V1__JOB_STATE__JOB_NODE_FAIL};

int coord_final(int s) {
  return s == FOIL__V1__JOB_STATE__JOB_COMPLETED || s == FOIL__V1__JOB_STATE__JOB_FAILED ||
         s == FOIL__V1__JOB_STATE__JOB_CANCELLED || s == FOIL__V1__JOB_STATE__JOB_TIMEOUT ||
         s == FOIL__V1__JOB_STATE__JOB_NODE_FAIL;
}

const char *coord_state_name(int s) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&foil__v1__job_state__descriptor, s);
  return v ? v->name + 4 : "UNKNOWN";  /* "JOB_PENDING" → "PENDING" */
}

cjob *coord_job(coord *c, uint64_t id) { return id && id <= c->max_id ? c->jobs[id] : NULL; }

cattempt *coord_current(cjob *j) { return j->natt ? &j->att[j->natt - 1] : NULL; }

static size_t name_hash(const char *s) {  /* FNV-1a */
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return (size_t)(h ^ (h >> 29));
}

int coord_worker_find(coord *c, const char *name) {
  if (!c->whash_cap) return -1;
  size_t mask = c->whash_cap - 1;
  for (size_t i = name_hash(name) & mask;; i = (i + 1) & mask) {
    uint32_t v = c->whash[i];
    if (!v) return -1;
    if (!strcmp(c->workers[v - 1].name, name)) return (int)(v - 1);
  }
}

static void whash_put(coord *c, size_t wi) {
  size_t mask = c->whash_cap - 1, i = name_hash(c->workers[wi].name) & mask;
  while (c->whash[i]) i = (i + 1) & mask;
  c->whash[i] = (uint32_t)wi + 1;
}

int coord_worker_add(coord *c, const char *name) {
  if (c->nworkers == c->workers_cap) {
    size_t cap = c->workers_cap ? 2 * c->workers_cap : 16;
    cworker *nw = realloc(c->workers, cap * sizeof *nw);
    if (!nw) return -1;
    c->workers = nw, c->workers_cap = cap;
  }
  if (2 * (c->nworkers + 1) > c->whash_cap) {  /* rehash at half full: probes stay short */
    size_t cap = c->whash_cap ? 2 * c->whash_cap : 64;
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h) return -1;
    free(c->whash);
    c->whash = h, c->whash_cap = cap;
    for (size_t i = 0; i < c->nworkers; i++) whash_put(c, i);
  }
  size_t wi = c->nworkers++;
  memset(&c->workers[wi], 0, sizeof c->workers[wi]);
  snprintf(c->workers[wi].name, sizeof c->workers[wi].name, "%s", name);
  whash_put(c, wi);
  return (int)wi;
}

const char *coord_route(const cworker *w) { return w->route[0] ? w->route : w->name; }

/* "w:r,w:r" into out (n bytes, COORD_PLACE_TEXT holds any); -1 when it
 * does not fit (out then holds a cut string that must not be stored). */
static int place_string(coord *c, const cattempt *a, char *out, size_t n) {
  size_t len = 0;
  out[0] = 0;
  for (int i = 0; i < a->nplace; i++) {
    int w = snprintf(out + len, n - len, "%s%s:%u", i ? "," : "", c->workers[a->place[i].worker].name,
                     a->place[i].ranks);
    if (w < 0 || (size_t)w >= n - len) return -1;
    len += (size_t)w;
  }
  return 0;
}

/* Parses "w:r,w:r" (add: workers unknown so far are added as DOWN; else
 * such a worker is -1); -1 for text that is not a placement (too long,
 * more than COORD_MAX_PLACE workers, an entry without ':'). */
static int place_parse(coord *c, const char *s, cattempt *a, int add) {
  a->nplace = 0;
  char buf[COORD_PLACE_TEXT];
  if (strlen(s) >= sizeof buf) return -1;
  snprintf(buf, sizeof buf, "%s", s);
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    char *colon = strrchr(tok, ':');
    if (!colon || a->nplace == COORD_MAX_PLACE) return -1;
    *colon = 0;
    int w = coord_worker_find(c, tok);
    if (w < 0) {
      if (!add || (w = coord_worker_add(c, tok)) < 0) return -1;
      c->workers[w].down = 1;
    }
    a->place[a->nplace].worker = w;
    a->place[a->nplace].ranks = (uint32_t)strtoul(colon + 1, NULL, 10);
    a->nplace++;
  }
  return 0;
}

static store_job job_row(const cjob *j) {
  return (store_job){.id = j->id, .submission_id = j->submission_id, .spec = j->packed,
                     .spec_len = j->packed_len, .state = j->state, .reason = j->reason,
                     .submit_time = j->submit_time, .start_time = j->start_time,
                     .end_time = j->end_time, .exit_code = j->exit_code,
                     .restart_count = j->restart_count, .failures = j->failures,
                     .submitter = j->submitter};
}

static int write_attempt(coord *c, cjob *j, cattempt *a, foil_err *err) {
  char place[COORD_PLACE_TEXT];
  if (place_string(c, a, place, sizeof place))
    return foil_err_set(err, FOIL_EINTERNAL, "job %llu: its placement does not fit %zu bytes",
                        (unsigned long long)j->id, sizeof place);
  store_attempt r = {.job_id = j->id, .n = a->n, .token = a->token, .placement = place,
                     .start_time = a->start_time, .end_time = a->end_time, .state = a->state,
                     .exit_code = a->exit_code, .signal = a->signal,
                     .resume_from = a->resume_from, .reason = a->reason};
  return store_put_attempt(c->st, &r, err);
}

int coord_persist_job(coord *c, cjob *j, const char *worker, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  foil_err err = {0};
  store_job row = job_row(j);
  cattempt *a = coord_current(j);
  int rc = store_begin(c->st, &err);
  if (!rc) rc = store_update_job(c->st, &row, &err);
  if (!rc && a) rc = write_attempt(c, j, a, &err);
  if (!rc) rc = store_event(c->st, log_now(), j->id, worker, text, &err);
  if (!rc) rc = store_commit(c->st, &err);
  j->unsaved = rc != 0;
  if (rc) {
    store_rollback(c->st);
    coord_log(c, "ERROR", "job %llu: not recorded (%s): %s", (unsigned long long)j->id, err.msg, text);
  } else {
    coord_log(c, "INFO", "job %llu: %s", (unsigned long long)j->id, text);
  }
  return rc;
}

int coord_persist_worker(coord *c, cworker *w, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  foil_err err = {0};
  store_worker row = {w->name, w->host, w->slots, w->gpus, w->drain, w->down,
                      w->registered_time, w->last_heartbeat};
  int rc = store_begin(c->st, &err);
  if (!rc) rc = store_put_worker(c->st, &row, &err);
  if (!rc) rc = store_event(c->st, log_now(), 0, w->name, text, &err);
  if (!rc) rc = store_commit(c->st, &err);
  if (rc) store_rollback(c->st);
  coord_log(c, rc ? "ERROR" : "INFO", "worker %s: %s%s%s", w->name, text, rc ? " — not recorded: " : "",
            rc ? err.msg : "");
  return rc;
}

/* Room in active for one more id. */
static int active_reserve(coord *c) {
  if (c->nactive < c->active_cap) return FOIL_OK;
  size_t cap = c->active_cap ? 2 * c->active_cap : 256;
  uint64_t *a = cap > SIZE_MAX / sizeof *a ? NULL : realloc(c->active, cap * sizeof *a);
  if (!a) return FOIL_ENOMEM;
  c->active = a, c->active_cap = cap;
  return FOIL_OK;
}

void coord_job_save(const cjob *j, coord_job_snap *s) {
  s->state = j->state, s->stop_state = j->stop_state, s->exit_code = j->exit_code;
  memcpy(s->reason, j->reason, sizeof s->reason);
  s->end_time = j->end_time;
  s->restart_count = j->restart_count, s->failures = j->failures;
  s->has_att = j->natt > 0;
  if (s->has_att) s->att = j->att[j->natt - 1];
}

void coord_job_restore(cjob *j, const coord_job_snap *s) {
  j->state = s->state, j->stop_state = s->stop_state, j->exit_code = s->exit_code;
  memcpy(j->reason, s->reason, sizeof j->reason);
  j->end_time = s->end_time;
  j->restart_count = s->restart_count, j->failures = s->failures;
  if (s->has_att && j->natt) j->att[j->natt - 1] = s->att;
}

void coord_job_free(cjob *j) {
  if (!j) return;
  if (j->spec) foil__v1__job_spec__free_unpacked(j->spec, NULL);
  free(j->packed), free(j->att), free(j->p_msg), free(j->p_metrics);
  free(j);
}

/* The index a serve or refresh job is about, from its spec_json (parsed
 * once, when the job comes into memory). */
static void job_index(cjob *j) {
  const char *key = !strcmp(j->spec->kind, "serve") ? "index" : !strcmp(j->spec->kind, "refresh") ? "name" : NULL;
  if (!key) return;
  cJSON *js = cJSON_Parse(j->spec->spec_json);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(js, key);
  if (cJSON_IsString(v)) snprintf(j->index, sizeof j->index, "%s", v->valuestring);
  cJSON_Delete(js);
}

int coord_job_build(const store_job *row, cjob **out, foil_err *err) {
  *out = NULL;
  cjob *j = calloc(1, sizeof *j);
  if (!j) return foil_err_set(err, FOIL_ENOMEM, "no memory");
  j->spec = foil__v1__job_spec__unpack(NULL, row->spec_len, row->spec);
  j->packed = malloc(row->spec_len ? row->spec_len : 1);
  if (!j->spec || !j->packed) {
    coord_job_free(j);
    return foil_err_set(err, FOIL_EINTERNAL, "job %llu: its stored spec does not parse",
                        (unsigned long long)row->id);
  }
  memcpy(j->packed, row->spec, row->spec_len);
  j->packed_len = row->spec_len;
  j->id = row->id;
  snprintf(j->submission_id, sizeof j->submission_id, "%s", row->submission_id ? row->submission_id : "");
  snprintf(j->submitter, sizeof j->submitter, "%s", row->submitter ? row->submitter : "");
  j->state = row->state;
  snprintf(j->reason, sizeof j->reason, "%s", row->reason ? row->reason : "");
  j->submit_time = row->submit_time, j->start_time = row->start_time, j->end_time = row->end_time;
  j->exit_code = row->exit_code, j->restart_count = row->restart_count, j->failures = row->failures;
  j->max_failures = j->spec->max_failures_set ? j->spec->max_failures : COORD_DEFAULT_MAX_FAILURES;
  job_index(j);
  if (j->state == FOIL__V1__JOB_STATE__JOB_COMPLETING)
    j->stop_state = strncmp(j->reason, "time limit", 10) ? FOIL__V1__JOB_STATE__JOB_CANCELLED
                                                          : FOIL__V1__JOB_STATE__JOB_TIMEOUT;
  *out = j;
  return FOIL_OK;
}

/* Room in jobs for index id (new entries NULL). */
static int jobs_reserve(coord *c, uint64_t id) {
  if (id < c->jobs_cap) return FOIL_OK;
  size_t cap = c->jobs_cap ? c->jobs_cap : 1024;
  while (cap <= id) cap *= 2;
  cjob **nj = cap > SIZE_MAX / sizeof *nj ? NULL : realloc(c->jobs, cap * sizeof *nj);
  if (!nj) return FOIL_ENOMEM;
  memset(nj + c->jobs_cap, 0, (cap - c->jobs_cap) * sizeof *nj);
  c->jobs = nj, c->jobs_cap = cap;
  return FOIL_OK;
}

int coord_job_make(coord *c, const store_job *row, cjob **out, foil_err *err) {
  cjob *j = NULL;
  int rc = coord_job_build(row, &j, err);
  if (rc) return rc;
  if (jobs_reserve(c, row->id)) {
    coord_job_free(j);
    return foil_err_set(err, FOIL_ENOMEM, "no memory");
  }
  if (!coord_final(j->state) && active_reserve(c)) {
    coord_job_free(j);
    return foil_err_set(err, FOIL_ENOMEM, "no memory for job %llu", (unsigned long long)row->id);
  }
  *out = j;
  return FOIL_OK;
}

void coord_job_take(coord *c, cjob *j) {
  if (c->jobs[j->id]) coord_job_free(c->jobs[j->id]);
  else c->nresident++;
  c->jobs[j->id] = j;
  if (j->id > c->max_id) c->max_id = j->id;
  if (!coord_final(j->state)) c->active[c->nactive++] = j->id;  /* coord_job_make made the room */
}

/* Takes a job row (from the store) into memory. */
int coord_add_job(coord *c, const store_job *row, foil_err *err) {
  cjob *j = NULL;
  int rc = coord_job_make(c, row, &j, err);
  if (!rc) coord_job_take(c, j);
  return rc;
}

/* ---- loading ------------------------------------------------------------ */

static int load_worker(void *ctx, const store_worker *r) {
  coord *c = ctx;
  cattempt tmp;
  char spec[512];
  if (!r->name || !confine_name_ok(r->name)) {  /* registered before names were checked */
    coord_log(c, "WARN", "job store: worker \"%.200s\" skipped: a worker name is 1 to %d letters, digits, "
              "'.', '_', '-'", r->name ? r->name : "", COORD_MAX_NAME);
    return FOIL_OK;
  }
  snprintf(spec, sizeof spec, "%s:0", r->name);
  if (place_parse(c, spec, &tmp, 1)) return FOIL_ENOMEM;
  cworker *w = &c->workers[tmp.place[0].worker];
  snprintf(w->host, sizeof w->host, "%s", r->host);
  w->slots = r->slots, w->gpus = r->gpus, w->drain = r->drain, w->down = r->down;
  w->registered_time = r->registered_time, w->last_heartbeat = r->last_heartbeat;
  w->session = 0;  /* its restart grace is given at the end of coord_new, once everything is loaded */
  return FOIL_OK;
}

static int load_job(void *ctx, const store_job *r) {
  coord *c = ctx;
  foil_err err = {0};
  int rc = coord_add_job(c, r, &err);
  if (rc) coord_log(c, "ERROR", "%s", err.msg);
  return rc;
}

static int load_attempt(void *ctx, const store_attempt *r) {
  coord *c = ctx;
  cjob *j = coord_job(c, r->job_id);
  if (!j) return FOIL_OK;
  int rc = coord_job_add_attempt(c, j, r, 1);
  if (!rc && r->token >= c->next_token) c->next_token = r->token + 1;
  return rc;
}

int coord_job_add_attempt(coord *c, cjob *j, const store_attempt *r, int add) {
  cattempt *na = realloc(j->att, (j->natt + 1) * sizeof *na);
  if (!na) return FOIL_ENOMEM;
  j->att = na;
  cattempt *a = &j->att[j->natt++];
  memset(a, 0, sizeof *a);
  a->n = r->n, a->token = r->token;
  const char *pl = r->placement ? r->placement : "";
  int bad = place_parse(c, pl, a, add) != 0;
  for (int i = 0; !bad && i < a->nplace; i++) bad = !confine_name_ok(c->workers[a->place[i].worker].name);
  if (bad) {
    /* stored before worker names were checked (e.g. "a,b"): such a worker can
     * never register again. The row is kept without workers, not fatal; a
     * running attempt is requeued once the store is loaded (coord_new). */
    if (add)
      coord_log(c, "WARN", "job store: job %llu attempt %u: its placement \"%.200s\" does not load (a worker name is "
                "1 to %d letters, digits, '.', '_', '-'): kept without workers", (unsigned long long)r->job_id, r->n,
                pl, COORD_MAX_NAME);
    a->nplace = 0;
  }
  a->start_time = r->start_time, a->end_time = r->end_time, a->state = r->state;
  a->exit_code = r->exit_code, a->signal = r->signal;
  snprintf(a->resume_from, sizeof a->resume_from, "%s", r->resume_from);
  snprintf(a->reason, sizeof a->reason, "%s", r->reason);
  a->assign_mono = log_mono();
  return FOIL_OK;
}

/* ---- jobs by id, resident or from the store ----------------------------------- */

typedef struct {
  coord *c;
  cjob *j;
  foil_err *err;
} get_ctx;

static int get_job_row(void *ctx, const store_job *r) {
  get_ctx *g = ctx;
  return coord_job_build(r, &g->j, g->err);
}

static int get_attempt_row(void *ctx, const store_attempt *r) {
  get_ctx *g = ctx;
  /* not adding workers: a job read for a request changes nothing in c
   * (and the names the reply borrows from c->workers stay where they are) */
  return g->j ? coord_job_add_attempt(g->c, g->j, r, 0) : FOIL_OK;
}

int coord_job_get(coord *c, uint64_t id, int last_only, cjob **out, cjob **tmp, foil_err *err) {
  *out = *tmp = NULL;
  if (!id || id > c->max_id) return FOIL_OK;
  if (c->jobs[id]) {
    *out = c->jobs[id];
    return FOIL_OK;
  }
  get_ctx g = {c, NULL, err};
  store_loader l = {get_job_row, get_attempt_row, NULL, &g};
  int found = 0, rc = store_get_job(c->st, id, &l, last_only, &found, err);
  if (rc) {
    coord_job_free(g.j);
    return rc;
  }
  *out = *tmp = g.j;
  return FOIL_OK;
}

size_t coord_evict(coord *c, size_t scan) {
  if (c->o.keep_final_s <= 0 || !c->max_id) return 0;
  if (scan > c->max_id) scan = (size_t)c->max_id;
  double cutoff = log_now() - c->o.keep_final_s;
  size_t freed = 0;
  for (size_t k = 0; k < scan && freed < COORD_EVICT_FREE; k++) {
    if (c->evict_next < 1 || c->evict_next > c->max_id) c->evict_next = 1;
    uint64_t id = c->evict_next++;
    cjob *j = c->jobs[id];
    if (!j || !coord_final(j->state) || j->end_time >= cutoff) continue;
    /* its end was never recorded (a write that failed and that nobody
     * retried): memory is the only true copy, so record it first */
    if (j->unsaved && coord_persist_job(c, j, "", "%s (recorded late: an earlier write failed)",
                                        coord_state_name(j->state)))
      continue;
    coord_job_free(j);
    c->jobs[id] = NULL;
    c->nresident--;
    freed++;
  }
  return freed;
}

/* ---- transitions ---------------------------------------------------------- */

void coord_release_members(coord *c, cjob *j, cattempt *a) {
  for (int i = 1; i < a->nplace; i++) {
    cworker *w = &c->workers[a->place[i].worker];
    if (!w->session) continue;
    Foil__V1__Release rel = FOIL__V1__RELEASE__INIT;
    rel.job_id = j->id, rel.token = a->token;
    Foil__V1__CoordinatorMessage m = FOIL__V1__COORDINATOR_MESSAGE__INIT;
    m.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_RELEASE, m.release = &rel;
    wire_send(c->wrk, coord_route(w), &m.base, ZMQ_DONTWAIT, NULL);
  }
}

static void send_signal(coord *c, cjob *j, cattempt *a, int signo, int stop, int state) {
  if (!a->nplace) return;
  cworker *w = &c->workers[a->place[0].worker];
  Foil__V1__Signal s = FOIL__V1__SIGNAL__INIT;
  s.job_id = j->id, s.token = a->token, s.signal = signo, s.stop = stop;
  s.grace_s = (uint32_t)c->o.grace_s, s.state = state;
  Foil__V1__CoordinatorMessage m = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  m.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_SIGNAL, m.signal = &s;
  foil_err err = {0};
  if (!w->session || wire_send(c->wrk, coord_route(w), &m.base, ZMQ_DONTWAIT, &err))
    coord_log(c, "WARN", "job %llu: signal to %s not delivered now (%s); sent again when it is back",
              (unsigned long long)j->id, w->name, w->session ? err.msg : "not connected");
  if (stop) a->signal_mono = log_mono();
}

void coord_send_stop(coord *c, cjob *j) {
  cattempt *a = coord_current(j);
  if (a) send_signal(c, j, a, 15, 1, j->stop_state);
}

void coord_signal(coord *c, cjob *j, int signo) {
  cattempt *a = coord_current(j);
  if (a) send_signal(c, j, a, signo, 0, 0);
}

int coord_node_fail(coord *c, cjob *j, const char *worker, const char *why, int ran) {
  cattempt *a = coord_current(j);
  if (!a || coord_final(j->state)) return FOIL_OK;
  double now = log_now();
  a->state = FOIL__V1__JOB_STATE__JOB_NODE_FAIL;
  a->end_time = now;
  foil_utf8_copy(a->reason, sizeof a->reason, why);
  /* the survivors of the gang: stop the head's processes, free the rest */
  if (a->nplace && strcmp(c->workers[a->place[0].worker].name, worker)) send_signal(c, j, a, 15, 1, 0);
  coord_release_members(c, j, a);
  j->failures += ran != 0;
  if (j->state == FOIL__V1__JOB_STATE__JOB_COMPLETING) {
    j->state = j->stop_state ? j->stop_state : FOIL__V1__JOB_STATE__JOB_CANCELLED;
    j->end_time = now;
  } else if (j->max_failures < 0 || (int64_t)j->failures <= j->max_failures) {
    j->state = FOIL__V1__JOB_STATE__JOB_REQUEUED;
    j->restart_count++;
    snprintf(j->reason, sizeof j->reason, "requeued: %s", why);
  } else {
    j->state = FOIL__V1__JOB_STATE__JOB_NODE_FAIL;
    j->end_time = now;
    snprintf(j->reason, sizeof j->reason, "%s (failure %u, max_failures %d)", why, j->failures,
             j->max_failures);
  }
  foil_utf8_cut(j->reason);
  int rc = coord_persist_job(c, j, worker, "attempt %u (token %llu) NODE_FAIL: %s; job %s", a->n,
                             (unsigned long long)a->token, why, coord_state_name(j->state));
  c->dirty = 1;
  return rc;
}

void coord_worker_lost(coord *c, cworker *w, const char *why) {
  w->down = 1;
  w->session = 0;
  coord_persist_worker(c, w, "DOWN: %s", why);
  int wi = (int)(w - c->workers);
  for (size_t k = 0; k < c->nactive; k++) {
    cjob *j = coord_job(c, c->active[k]);
    cattempt *a = j ? coord_current(j) : NULL;
    if (!a || !coord_running(j)) continue;
    for (int i = 0; i < a->nplace; i++)
      if (a->place[i].worker == wi) {
        char msg[300];
        snprintf(msg, sizeof msg, "worker %s lost (%s)", w->name, why);
        coord_node_fail(c, j, w->name, msg, 1);
        break;
      }
  }
  c->dirty = 1;
}

/* ---- scheduling ------------------------------------------------------------ */

static int cmp_pending(const void *x, const void *y) {
  const cjob *a = *(cjob *const *)x, *b = *(cjob *const *)y;
  if (a->spec->priority != b->spec->priority) return a->spec->priority > b->spec->priority ? -1 : 1;
  return a->id < b->id ? -1 : a->id > b->id;
}

/* 1: dependencies met; 0: waiting; -1: can never be met (reason in why) */
/* A dependency that ended as asked stays so (final is final): bit i of
 * j->deps_ok, not looked at again. One on an evicted job is read from the
 * store once (coord_job_get); a store that cannot be read leaves it
 * waiting this pass. */
static int deps_state(coord *c, cjob *j, char *why, size_t n) {
  int ok = 1;
  for (size_t i = 0; i < j->spec->n_dependencies; i++) {
    uint64_t bit = i < 64 ? 1ull << i : 0;
    if (j->deps_ok & bit) continue;
    const Foil__V1__Dependency *d = j->spec->dependencies[i];
    cjob *dj = NULL, *tmp = NULL;
    foil_err err = {0};
    if (coord_job_get(c, d->job_id, 1, &dj, &tmp, &err)) {
      coord_log(c, "WARN", "job %llu: its dependency on job %llu not checked this pass: %s", (unsigned long long)j->id,
                (unsigned long long)d->job_id, err.msg);
      ok = 0;
      continue;
    }
    if (!dj) continue;  /* checked at submit; ids are never removed */
    int st = dj->state;
    coord_job_free(tmp);
    if (!coord_final(st)) {
      ok = 0;
      continue;
    }
    if (d->type == FOIL__V1__DEPENDENCY_TYPE__AFTER_OK && st != FOIL__V1__JOB_STATE__JOB_COMPLETED) {
      snprintf(why, n, "DependencyNeverSatisfied: job %llu ended %s", (unsigned long long)d->job_id,
               coord_state_name(st));
      return -1;
    }
    j->deps_ok |= bit;
  }
  return ok;
}

int coord_job_dir_open(coord *c, uint64_t id, int create, int *dfd, foil_err *err) {
  *dfd = -1;
  char name[32];
  snprintf(name, sizeof name, "%llu", (unsigned long long)id);
  const char *parts[] = {"jobs", name};
  int at = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (at < 0) return foil_err_set(err, FOIL_EINTERNAL, "the data root %s: %s", c->root, strerror(errno));
  for (int i = 0; i < 2; i++) {
    int next = openat(at, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && create) {
      int made = mkdirat(at, parts[i], 0755) == 0;
      if (made) fsync(at);  /* its entry durable before files go in */
      if (made || errno == EEXIST) next = openat(at, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    int e = errno;
    close(at);
    if (next < 0 && e == ENOENT) return FOIL_OK;  /* not made yet (create: raced away) */
    if (next < 0 && (e == ELOOP || e == ENOTDIR))
      return foil_err_set(err, FOIL_EPRECOND, "job %llu: jobs/%llu or jobs is a symbolic link or not a directory: "
                          "not followed", (unsigned long long)id, (unsigned long long)id);
    if (next < 0)
      return foil_err_set(err, FOIL_EINTERNAL, "job %llu: its directory jobs/%llu: %s", (unsigned long long)id,
                          (unsigned long long)id, strerror(e));
    at = next;
  }
  *dfd = at;
  return FOIL_OK;
}

/* Writes jobs/<id>/attempt = token (the fence foil-run checks), through
 * coord_job_dir_open: a job that replaced its directory (or jobs) by a
 * symbolic link cannot steer where the coordinator writes. Atomic: a
 * temporary in the directory (O_EXCL, O_NOFOLLOW), fsync, renameat, fsync
 * of the directory; sync 0 leaves both fsyncs to the caller's syncfs. */
static int write_fence(coord *c, cjob *j, uint64_t token, int sync, foil_err *err) {
  char text[32], tmp[256];
  int dfd = -1, rc = coord_job_dir_open(c, j->id, 1, &dfd, err);
  if (!rc && dfd < 0) rc = foil_err_set(err, FOIL_EINTERNAL, "job %llu: jobs/%llu vanished while it was made",
                                        (unsigned long long)j->id, (unsigned long long)j->id);
  if (!rc) rc = foil_tmp_name("attempt", tmp, sizeof tmp, err);
  if (rc) {
    if (dfd >= 0) close(dfd);
    return rc;
  }
  int len = snprintf(text, sizeof text, "%llu\n", (unsigned long long)token);
  int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  int ok = fd >= 0 && write(fd, text, (size_t)len) == len && (!sync || fsync(fd) == 0);
  int e = errno;
  if (fd >= 0 && close(fd) && ok) ok = 0, e = errno;
  if (ok && renameat(dfd, tmp, dfd, "attempt")) ok = 0, e = errno;
  if (!ok && fd >= 0) unlinkat(dfd, tmp, 0);
  if (ok && sync) fsync(dfd);
  close(dfd);
  if (!ok)
    return foil_err_set(err, FOIL_EINTERNAL, "job %llu: cannot write jobs/%llu/attempt: %s", (unsigned long long)j->id,
                        (unsigned long long)j->id, strerror(e));
  return FOIL_OK;
}

static void send_assign(coord *c, cjob *j, cattempt *a) {
  Foil__V1__Placement pl[COORD_MAX_PLACE], *plp[COORD_MAX_PLACE];
  for (int i = 0; i < a->nplace; i++) {
    foil__v1__placement__init(&pl[i]);
    cworker *w = &c->workers[a->place[i].worker];
    pl[i].worker = w->name, pl[i].host = w->host, pl[i].ranks = a->place[i].ranks;
    plp[i] = &pl[i];
  }
  char dir[1200];
  snprintf(dir, sizeof dir, "%s/jobs/%llu", c->root, (unsigned long long)j->id);
  Foil__V1__Assign as = FOIL__V1__ASSIGN__INIT;
  as.job_id = j->id, as.token = a->token, as.spec = j->spec;
  as.n_placement = (size_t)a->nplace, as.placement = plp;
  as.attempt = a->n, as.restart_count = j->restart_count, as.job_dir = dir;
  as.deadline = j->spec->time_limit_s ? a->start_time + j->spec->time_limit_s : 0;
  as.grace_s = (uint32_t)c->o.grace_s;
  Foil__V1__CoordinatorMessage m = FOIL__V1__COORDINATOR_MESSAGE__INIT;
  m.body_case = FOIL__V1__COORDINATOR_MESSAGE__BODY_ASSIGN, m.assign = &as;
  for (int i = 0; i < a->nplace; i++) {
    cworker *w = &c->workers[a->place[i].worker];
    as.head = i == 0;
    foil_err err = {0};
    if (wire_send(c->wrk, coord_route(w), &m.base, ZMQ_DONTWAIT, &err)) {
      coord_worker_lost(c, w, "assign could not be delivered");
      return;
    }
  }
}

#define STR_(x) #x
#define STR(x) STR_(x)
#define WIDE_REASON "Resources: the gang needs more than " STR(COORD_MAX_PLACE) " workers, the most one job " \
                    "may span (fewer ranks, or fewer GPUs per rank, fit on fewer workers)"

/* Makes attempt n+1 of j on place (its fence written) and the job
 * RUNNING in memory; 1 if it did, 0 if it could not (the reason says why).
 * start_commit then records it, or undoes it. */
/* From this many starts in one pass, their fences are made durable by one
 * syncfs rather than two fsyncs each. */
#define COORD_SYNCFS_STARTS 16

static int start_prepare(coord *c, cjob *j, const sched_place *place, size_t n_place, int sync) {
  /* all ranks or none: a placement the attempt cannot hold is not started
   * (sched_fit keeps gangs within COORD_MAX_PLACE workers; this is the backstop) */
  if (!n_place || n_place > COORD_MAX_PLACE) {
    snprintf(j->reason, sizeof j->reason, "%s", WIDE_REASON);
    coord_log(c, "ERROR", "job %llu: not started: placed on %zu workers", (unsigned long long)j->id, n_place);
    return 0;
  }
  cattempt *na = realloc(j->att, (j->natt + 1) * sizeof *na);
  if (!na) return 0;
  j->att = na;
  cattempt *a = &j->att[j->natt];
  memset(a, 0, sizeof *a);
  a->n = (uint32_t)j->natt + 1;
  a->token = c->next_token++;
  a->start_time = log_now();
  a->assign_mono = log_mono();
  a->state = FOIL__V1__JOB_STATE__JOB_RUNNING;
  /* head: the worker with the most ranks (rank 0 beside it), ties by order
   * (the places come by worker index) */
  size_t head = 0;
  for (size_t k = 1; k < n_place; k++)
    if (place[k].ranks > place[head].ranks) head = k;
  a->place[a->nplace++] = (cplace){(int)place[head].node, place[head].ranks};
  for (size_t k = 0; k < n_place; k++)
    if (k != head) a->place[a->nplace++] = (cplace){(int)place[k].node, place[k].ranks};
  foil_err err = {0};
  if (write_fence(c, j, a->token, sync, &err)) {
    snprintf(j->reason, sizeof j->reason, "cannot write the job directory: %.180s", err.msg);
    foil_utf8_cut(j->reason);
    coord_log(c, "ERROR", "job %llu: %s", (unsigned long long)j->id, j->reason);
    return 0;
  }
  j->natt++;
  j->state = FOIL__V1__JOB_STATE__JOB_RUNNING;
  j->start_time = a->start_time;
  j->reason[0] = 0;
  j->est_start = 0;
  return 1;
}

/* The event text of a start. */
static void start_text(coord *c, cjob *j, char *text, size_t size) {
  cattempt *a = coord_current(j);
  char where[COORD_PLACE_TEXT];
  place_string(c, a, where, sizeof where);  /* too long: write_attempt refuses the commit */
  /* at most 1,024 bytes, as coord_persist_job cuts its text */
  snprintf(text, size, "RUNNING: attempt %u (token %llu) on %.950s", a->n, (unsigned long long)a->token, where);
}

/* Records the starts a pass prepared, then sends their Assigns: nothing
 * is assigned before it is durable. The fences, unless each was synced
 * (synced 1), by one syncfs of the data root's file system; the rows in
 * one transaction; if that fails, each on its own, so a job whose attempt
 * cannot be recorded costs only itself — it is undone and stays PENDING.
 * (One fsync per fence and directory and one per commit made a pass that
 * starts 3,000 jobs take 3 s on this machine's disk.) O(n) rows. */
static void start_commit(coord *c, cjob **js, size_t n, int synced) {
  char text[1024];
  foil_err err = {0};
  if (!synced && n) { /* the fences first: one syncfs for all of them */
    int fd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syncfs(fd)) {
      int e = errno;
      for (size_t k = 0; k < n; k++) {
        js[k]->natt--, js[k]->state = FOIL__V1__JOB_STATE__JOB_PENDING;
        snprintf(js[k]->reason, sizeof js[k]->reason, "cannot write the job directory: syncing the data root: %s",
                 strerror(e));
      }
      coord_log(c, "ERROR", "%zu jobs not started: syncing the data root: %s", n, strerror(e));
      if (fd >= 0) close(fd);
      return;
    }
    close(fd);
  }
  int rc = n > 1 ? store_begin(c->st, &err) : -1;
  for (size_t k = 0; !rc && k < n; k++) {
    cjob *j = js[k];
    cattempt *a = coord_current(j);
    store_job row = job_row(j);
    start_text(c, j, text, sizeof text);
    rc = store_update_job(c->st, &row, &err);
    if (!rc) rc = write_attempt(c, j, a, &err);
    if (!rc) rc = store_event(c->st, log_now(), j->id, c->workers[a->place[0].worker].name, text, &err);
  }
  if (!rc) rc = store_commit(c->st, &err);
  if (rc && n > 1) {
    store_rollback(c->st);
    coord_log(c, "WARN", "recording the %zu starts of this pass together failed (%s): each on its own", n, err.msg);
  }
  for (size_t k = 0; k < n; k++) {
    cjob *j = js[k];
    cattempt *a = coord_current(j);
    start_text(c, j, text, sizeof text);
    if (!rc) {
      coord_log(c, "INFO", "job %llu: %s", (unsigned long long)j->id, text);
    } else if (coord_persist_job(c, j, c->workers[a->place[0].worker].name, "%s", text)) {
      j->natt--;  /* not durable: do not start it */
      j->state = FOIL__V1__JOB_STATE__JOB_PENDING;
      continue;
    }
    send_assign(c, j, a);
  }
}

void coord_schedule(coord *c) {
  double t0 = log_mono(), now = log_now();
  /* compact the active list; cancel jobs whose dependencies failed */
  size_t k = 0;
  for (size_t i = 0; i < c->nactive; i++) {
    cjob *j = coord_job(c, c->active[i]);
    if (j && !coord_final(j->state)) c->active[k++] = c->active[i];
  }
  c->nactive = k;
  /* buffers: O(active) for the jobs, O(placements) for where the running
   * jobs' ranks are (a long queue of pending jobs costs no more) */
  size_t nw = c->nworkers, nrun = 0, nplace = 0;
  for (size_t i = 0; i < c->nactive; i++) {
    cjob *j = coord_job(c, c->active[i]);
    cattempt *a = coord_running(j) ? coord_current(j) : NULL;
    if (a) nrun++, nplace += (size_t)a->nplace;
  }
  sched_node *nodes = calloc(nw ? nw : 1, sizeof *nodes);
  cjob **pend = malloc((c->nactive ? c->nactive : 1) * sizeof *pend);
  sched_running *run = malloc((nrun ? nrun : 1) * sizeof *run);
  sched_place *run_place = malloc((nplace ? nplace : 1) * sizeof *run_place);
  if (!nodes || !pend || !run || !run_place) {
    coord_log(c, "ERROR", "scheduling pass skipped: no memory for %zu active jobs (%zu running) on %zu workers",
              c->nactive, nrun, nw);
    goto done;
  }
  for (size_t i = 0; i < nw; i++) {
    cworker *w = &c->workers[i];
    w->slots_used = w->gpus_used = 0;
  }
  size_t np = 0, nr = 0, npl = 0;
  for (size_t i = 0; i < c->nactive; i++) {
    cjob *j = coord_job(c, c->active[i]);
    if (coord_running(j)) {
      cattempt *a = coord_current(j);
      if (!a) continue;
      sched_place *ro = run_place + npl;
      uint32_t gpr = j->spec->resources ? j->spec->resources->gpus_per_rank : 0;
      for (int p = 0; p < a->nplace; p++) {
        cworker *w = &c->workers[a->place[p].worker];
        ro[p] = (sched_place){(uint32_t)a->place[p].worker, a->place[p].ranks};
        w->slots_used += a->place[p].ranks;
        w->gpus_used += a->place[p].ranks * gpr;
      }
      npl += (size_t)a->nplace;
      double lim = j->spec->time_limit_s;
      run[nr++] = (sched_running){lim > 0 ? a->start_time + lim : INFINITY, ro, (size_t)a->nplace, gpr};
    } else {
      char why[256];
      int d = deps_state(c, j, why, sizeof why);
      if (d < 0) {
        j->state = FOIL__V1__JOB_STATE__JOB_CANCELLED;
        j->end_time = now;
        snprintf(j->reason, sizeof j->reason, "%s", why);
        coord_persist_job(c, j, NULL, "CANCELLED: %s", why);
        continue;
      }
      j->deps_met = d == 1;
      pend[np++] = j;
    }
  }
  for (size_t i = 0; i < nw; i++) {
    cworker *w = &c->workers[i];
    nodes[i].slots = w->slots, nodes[i].gpus = w->gpus;
    nodes[i].slots_free = w->slots > w->slots_used ? w->slots - w->slots_used : 0;
    nodes[i].gpus_free = w->gpus > w->gpus_used ? w->gpus - w->gpus_used : 0;
    nodes[i].usable = w->session && !w->down && !w->drain;
  }
  qsort(pend, np, sizeof *pend, cmp_pending);
  sched_pending *req = malloc((np ? np : 1) * sizeof *req);
  sched_result *res = malloc((np ? np : 1) * sizeof *res);
  cjob **starts = malloc((np ? np : 1) * sizeof *starts);
  size_t nstart = 0, nwill = 0;
  if (!req || !res || !starts) {
    coord_log(c, "ERROR", "scheduling pass skipped: no memory for %zu pending jobs", np);
    free(req), free(res), free(starts);
    goto done;
  }
  for (size_t i = 0; i < np; i++) {
    cjob *j = pend[i];
    const Foil__V1__Resources *r = j->spec->resources;
    req[i] = (sched_pending){r && r->ranks ? r->ranks : 1, r ? r->gpus_per_rank : 0, r ? r->nodes : 0,
                             j->spec->time_limit_s ? (double)j->spec->time_limit_s : INFINITY, j->deps_met,
                             COORD_MAX_PLACE};
  }
  foil_err err = {0};
  if (sched_pass(c->sc, now, nodes, nw, run, nr, req, np, c->o.sched_depth, res, &err)) {
    coord_log(c, "ERROR", "scheduling pass: %s", err.msg);
  } else {
    static const char *const why[] = {
        [SCHED_PRIORITY] = "Priority", [SCHED_RESOURCES] = "Resources",
        [SCHED_DEPENDENCY] = "Dependency",
        [SCHED_NEVER] = "Resources: asks for more than the usable workers have",
        [SCHED_TOO_WIDE] = WIDE_REASON};
    /* a few starts sync their fences one by one; many, all at once */
    for (size_t i = 0; i < np; i++) nwill += res[i].verdict == SCHED_START;
    for (size_t i = 0; i < np; i++) {
      cjob *j = pend[i];
      if (res[i].verdict == SCHED_START) {
        if (start_prepare(c, j, res[i].place, res[i].n_place, nwill < COORD_SYNCFS_STARTS)) starts[nstart++] = j;
        continue;
      }
      j->est_start = res[i].est_start;
      if (j->state == FOIL__V1__JOB_STATE__JOB_REQUEUED && !strncmp(j->reason, "requeued", 8)) continue;
      snprintf(j->reason, sizeof j->reason, "%s", why[res[i].verdict]);
    }
  }
  start_commit(c, starts, nstart, nwill < COORD_SYNCFS_STARTS);
  free(req), free(res), free(starts);
done:
  free(nodes), free(pend), free(run), free(run_place);
  c->pass_seconds = log_mono() - t0;
  c->last_pass = log_mono();
  c->dirty = 0;
}

/* ---- timers ------------------------------------------------------------------ */

static void check_liveness(coord *c) {
  double now = log_mono(), limit = c->hb_s * c->o.liveness;
  for (size_t i = 0; i < c->nworkers; i++) {
    cworker *w = &c->workers[i];
    if (w->down || now - w->last_seen_mono <= limit) continue;
    char why[128];
    snprintf(why, sizeof why, "no heartbeat for %.1f s", now - w->last_seen_mono);
    coord_worker_lost(c, w, why);
  }
}

/* Backstop for time limits (the worker enforces them itself): stop jobs
 * well past their limit. */
static void check_limits(coord *c) {
  double now = log_now(), slack = c->o.grace_s + 2 * c->hb_s * c->o.liveness;
  for (size_t k = 0; k < c->nactive; k++) {
    cjob *j = coord_job(c, c->active[k]);
    cattempt *a = j ? coord_current(j) : NULL;
    if (!a || j->state != FOIL__V1__JOB_STATE__JOB_RUNNING || !j->spec->time_limit_s) continue;
    if (now < a->start_time + j->spec->time_limit_s + slack) continue;
    j->state = FOIL__V1__JOB_STATE__JOB_COMPLETING;
    j->stop_state = FOIL__V1__JOB_STATE__JOB_TIMEOUT;
    snprintf(j->reason, sizeof j->reason, "time limit of %u s passed", j->spec->time_limit_s);
    coord_persist_job(c, j, NULL, "COMPLETING: %s", j->reason);
    coord_send_stop(c, j);
  }
}

/* ---- lifecycle ------------------------------------------------------------- */

static int bind_ep(coord *c, void *sock, const char *ep, char *out, size_t n, foil_err *err) {
  if (zmq_bind(sock, ep))
    return foil_err_set(err, FOIL_EUNAVAIL, "cannot listen on %s: %s", ep, zmq_strerror(errno));
  size_t len = n;
  zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, out, &len);
  (void)c;
  return FOIL_OK;
}

/* Running jobs whose current attempt's placement did not load
 * (load_attempt): no worker can report on it, so it is lost — NODE_FAIL,
 * requeued or failed by max_failures as for a lost worker. O(active). */
static void lost_placements(coord *c) {
  for (size_t k = 0; k < c->nactive; k++) {
    cjob *j = coord_job(c, c->active[k]);
    cattempt *a = j ? coord_current(j) : NULL;
    if (!a || !coord_running(j) || a->nplace) continue;
    coord_node_fail(c, j, "", "its placement in the job store does not load (a worker name that is not a plain name)",
                    1);
  }
}

int coord_new(coord **out, const coord_opts *o, foil_err *err) {
  *out = NULL;
  coord *c = calloc(1, sizeof *c);
  if (!c) return foil_err_set(err, FOIL_ENOMEM, "no memory");
  c->o = *o;
  if (!c->o.heartbeat_ms) c->o.heartbeat_ms = 1000;
  if (!c->o.liveness) c->o.liveness = 4;
  if (!c->o.grace_s) c->o.grace_s = 10;
  c->hb_s = c->o.heartbeat_ms / 1e3;
  c->log = o->log ? o->log : stderr;
  c->next_token = 1;
  c->started_mono = log_mono();
  snprintf(c->root, sizeof c->root, "%s", o->root);
  char path[1200];
  int rc = foil_mkdirs(c->root, err);
  if (!rc) rc = confine_init(&c->cf, c->root, err);
  for (int i = 0; !rc && i < o->n_allow_dirs; i++)
    if ((rc = confine_allow(&c->cf, o->allow_dirs[i], err))) rc = foil_err_set(err, rc, "--allow-dir: %.900s", err->msg);
  if (!rc) {
    snprintf(path, sizeof path, "%s/coordinator.db", c->root);
    rc = store_open(&c->st, path, err);
  }
  if (!rc) rc = sched_new(&c->sc, err);
  if (!rc) {
    /* the jobs not final and those that ended within keep_final_s; the
     * older ones stay in the store (coord_job_get reads them) */
    store_loader l = {load_job, load_attempt, load_worker, c};
    if (c->o.keep_final_s > 0)
      rc = store_load_live(c->st, &l, coord_final_states, sizeof coord_final_states / sizeof *coord_final_states,
                           log_now() - c->o.keep_final_s, err);
    else
      rc = store_load(c->st, &l, err);
  }
  if (!rc) {
    /* ids and tokens go on from the store's largest, loaded or not */
    uint64_t max_job = 0, max_token = 0;
    rc = store_max_ids(c->st, &max_job, &max_token, err);
    if (!rc && max_token >= c->next_token) c->next_token = max_token + 1;
    if (!rc && max_job > c->max_id) {
      if (jobs_reserve(c, max_job)) rc = foil_err_set(err, FOIL_ENOMEM, "no memory for %llu job ids",
                                                      (unsigned long long)max_job);
      else c->max_id = max_job;
    }
  }
  if (!rc) lost_placements(c);
  if (!rc) {
    c->zctx = zmq_ctx_new();
    auth_opts ao = {.key = o->curve_key, .allow = o->allow, .insecure = o->insecure, .log = c->log,
                    .component = "coordinator"};
    rc = c->zctx ? auth_new(&c->auth, c->zctx, &ao, err) : foil_err_set(err, FOIL_EINTERNAL, "zmq_ctx_new failed");
  }
  if (!rc) {
    c->ctl = zmq_socket(c->zctx, ZMQ_ROUTER);
    c->wrk = zmq_socket(c->zctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    int64_t hard = 16 << 20;  /* beyond this ZeroMQ drops the peer; below, we answer */
    zmq_setsockopt(c->ctl, ZMQ_MAXMSGSIZE, &hard, sizeof hard);
    zmq_setsockopt(c->wrk, ZMQ_MAXMSGSIZE, &hard, sizeof hard);
    zmq_setsockopt(c->ctl, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c->wrk, ZMQ_LINGER, &zero, sizeof zero);
    /* Control replies queued per client: 16 (not ZeroMQ's 1,000). Clients
     * ask one request at a time (watch polls), so past 16 the peer is not
     * reading: ROUTER drops its replies instead of keeping them in memory. */
    zmq_setsockopt(c->ctl, ZMQ_SNDHWM, &(int){16}, sizeof(int));
    zmq_setsockopt(c->wrk, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    /* No send limit towards workers: one scheduling pass may send a worker
     * an Assign per slot (up to 4,096) before it reads any, and ZeroMQ's
     * default limit (1,000) made the one past it fail like an unreachable
     * worker. The queue stays bounded by the worker's own traffic: Assigns
     * by its free slots, replies by its requests. */
    zmq_setsockopt(c->wrk, ZMQ_SNDHWM, &zero, sizeof zero);
    /* A worker process whose connection broke reconnects with the same
     * routing id while the old connection may still be open here (half-open:
     * no ZeroMQ heartbeats on this socket): handover gives the route to the
     * new connection instead of ignoring it until the old one times out.
     * Every foil-worker process has its own routing id (NAME/INSTANCE), so
     * a second process of the same name never takes a route over this way:
     * its Register is refused (coord_wp.c). With CURVE only worker keys
     * complete a handshake on this port (auth_worker_socket): a reader or
     * submitter key cannot connect under a worker's routing id and take
     * its Assigns. */
    zmq_setsockopt(c->wrk, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    rc = auth_server_socket(c->auth, c->ctl, o->control, err);
    if (!rc) rc = auth_worker_socket(c->auth, c->wrk, o->workers, err);
    if (!rc) rc = bind_ep(c, c->ctl, o->control, c->ctl_ep, sizeof c->ctl_ep, err);
    if (!rc) rc = bind_ep(c, c->wrk, o->workers, c->wrk_ep, sizeof c->wrk_ep, err);
  }
  if (!rc) {
    /* endpoints for clients; allow_dirs (resolved) for foil-run's own check */
    cJSON *j = cJSON_CreateObject(), *dirs = cJSON_CreateArray();
    cJSON_AddStringToObject(j, "control", c->ctl_ep);
    cJSON_AddStringToObject(j, "workers", c->wrk_ep);
    cJSON_AddNumberToObject(j, "pid", (double)getpid());
    for (int i = 1; i < c->cf.n; i++) cJSON_AddItemToArray(dirs, cJSON_CreateString(c->cf.dirs[i]));
    cJSON_AddItemToObject(j, "allow_dirs", dirs);
    char *json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/coordinator.json", c->root);
    rc = json ? foil_write_file_atomic(path, json, strlen(json), err) : foil_err_set(err, FOIL_ENOMEM, "no memory");
    free(json);
  }
  if (rc) {
    coord_destroy(&c);
    return rc;
  }
  size_t nrun = 0, npend = 0;
  for (size_t k = 0; k < c->nactive; k++) {
    cjob *j = coord_job(c, c->active[k]);
    if (coord_running(j)) nrun++;
    else npend++;
  }
  coord_log(c, "INFO", "control API on %s, workers on %s, data root %s; %llu jobs (%zu pending, %zu running; %zu in "
            "memory), %zu workers known", c->ctl_ep, c->wrk_ep, c->root, (unsigned long long)c->max_id, npend, nrun,
            c->nresident, c->nworkers);
  if (auth_enabled(c->auth))
    coord_log(c, "INFO", "CURVE on: only keys in %s connect (SIGHUP rereads it)", o->allow);
  else
    coord_log(c, "WARN", "running WITHOUT authentication (no --curve-key/--allow-keys): every client is admin%s",
              o->insecure ? "; --insecure: non-loopback endpoints allowed" : "; listening on loopback only");
  /* a restarted coordinator gives every worker a liveness window plus
   * COORD_RESTART_GRACE_S to reconnect before it is DOWN, counted from now:
   * loading the jobs and attempts, binding and writing coordinator.json
   * (a large store, a slow shared filesystem) must not eat it. O(workers). */
  double loaded = log_mono();
  for (size_t i = 0; i < c->nworkers; i++) c->workers[i].last_seen_mono = loaded + COORD_RESTART_GRACE_S;
  c->dirty = 1;
  *out = c;
  return FOIL_OK;
}

void coord_destroy(coord **cp) {
  coord *c = *cp;
  if (!c) return;
  if (c->ctl) zmq_close(c->ctl);
  if (c->wrk) zmq_close(c->wrk);
  auth_destroy(&c->auth);
  if (c->zctx) zmq_ctx_term(c->zctx);
  for (uint64_t id = 1; id <= c->max_id; id++) coord_job_free(c->jobs[id]);
  free(c->jobs), free(c->active), free(c->workers), free(c->whash);
  sched_destroy(&c->sc);
  store_close(&c->st);
  free(c);
  *cp = NULL;
}

/* Handles what is waiting on a socket, at most 512 messages (the other
 * socket and the timers get their turn). */
static void drain(coord *c, void *sock, void (*handle)(coord *, wire_msg *, int, const foil_err *)) {
  for (int i = 0; i < 512; i++) {
    wire_msg m;
    foil_err e = {0};
    int rc = wire_recv(sock, &m, 1, COORD_MAX_FRAME, ZMQ_DONTWAIT, &e);
    if (rc != FOIL_EUNAVAIL) handle(c, &m, rc, &e);
    wire_msg_close(&m);
    if (rc == FOIL_EUNAVAIL) break;
  }
}

int coord_run(coord *c, volatile sig_atomic_t *stop, foil_err *err) {
  double last_tick = 0;
  while (!*stop) {
    zmq_pollitem_t items[2] = {{.socket = c->ctl, .events = ZMQ_POLLIN},
                               {.socket = c->wrk, .events = ZMQ_POLLIN}};
    /* passes at most every 2 × the last pass's time: under a stream of
     * events the loop spends at most a third of its time scheduling, and
     * messages are read between passes */
    double next_pass = c->last_pass + 2 * c->pass_seconds;
    long timeout = (long)(c->hb_s * 250);
    if (c->dirty) timeout = (long)ceil((next_pass - log_mono()) * 1e3);
    if (timeout < 0) timeout = 0;
    if (timeout > 100) timeout = 100;
    int n = zmq_poll(items, 2, timeout);
    if (n < 0 && errno != EINTR)
      return foil_err_set(err, FOIL_EINTERNAL, "poll: %s", zmq_strerror(errno));
    /* workers first: their reports free capacity the API may ask about */
    if (n > 0 && (items[1].revents & ZMQ_POLLIN)) drain(c, c->wrk, coord_wp_handle);
    if (n > 0 && (items[0].revents & ZMQ_POLLIN)) drain(c, c->ctl, coord_api_handle);
    double now = log_mono();
    /* a stall of this process (paused, starved, blocked on I/O) is not the
     * workers' silence: their heartbeats wait in the socket. Give every
     * worker a fresh liveness window rather than declare them all lost. */
    if (last_tick > 0 && now - last_tick > c->hb_s * c->o.liveness) {
      coord_log(c, "WARN", "the coordinator's loop stalled for %.1f s: workers get a fresh liveness window",
                now - last_tick);
      for (size_t i = 0; i < c->nworkers; i++)
        if (c->workers[i].last_seen_mono < now) c->workers[i].last_seen_mono = now;
    }
    if (now - last_tick >= c->hb_s / 4) {
      last_tick = now;
      check_liveness(c);
      check_limits(c);
    }
    if ((c->dirty && now >= next_pass) || now - c->last_pass >= 1.0) coord_schedule(c);
    if (now - c->last_evict >= c->hb_s / 4) {
      c->last_evict = now;
      coord_evict(c, COORD_EVICT_SCAN);
    }
  }
  coord_log(c, "INFO", "stopping (running jobs keep running; workers reconnect to the next coordinator)");
  return FOIL_OK;
}
