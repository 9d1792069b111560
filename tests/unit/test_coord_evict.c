/* test_coord_evict.c — the coordinator keeps in memory the jobs that
 * matter (coord_opts.keep_final_s, foil-coordinator --keep-final-s): a real
 * coord (coord_new) on a fresh data root, driven as its loop drives it
 * (coord_rig.h), a worker's DEALER for the jobs that run.
 *
 * What it proves:
 *  - with a small window, once many jobs have ended and the window passed,
 *    coord_evict leaves in memory only the jobs not final; the store keeps
 *    every one;
 *  - Get and Watch, Logs, Cancel (of a CANCELLED job: its state; of another
 *    final one: FAILED_PRECONDITION) and List (--all, --state, the default
 *    view, with a small limit and at a small byte budget) answer for an
 *    evicted job as they did while it was resident;
 *  - a dependency on an evicted job is checked against its final state in
 *    the store: afterok on a COMPLETED one runs, on a FAILED one is
 *    cancelled (DependencyNeverSatisfied), afterany runs; a dependency on
 *    no job is refused; a submission id retried after its job was evicted
 *    gives the same job;
 *  - a worker's resend of the end of an evicted job is acknowledged;
 *  - a restart loads only the jobs not final and those inside the window,
 *    the answers stay the same, and new job ids and attempt tokens go on
 *    after the store's largest;
 *  - window 0 keeps every job in memory, at run time and at start;
 *  - a job whose end could not be written stays in memory until a write
 *    succeeds, then leaves with its end in the store.
 */
#define _DEFAULT_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/client.h"
#include "common/fileio.h"
#include "common/log.h"
#include "coordinator/coord_int.h"
#include "tests/test.h"
#include "tests/unit/coord_rig.h"

/* ---- a worker (peer(): coord_rig.h) ------------------------------------------------------ */

/* The answer to request rid on s: 0 for an Ack or Registered, else its
 * error code (foil's), -1 for none; pushed messages are skipped. */
static int wp(void *s, const char *name, Foil__V1__WorkerMessage *q) {
  q->request_id = ++next_rid;
  feed(0, name, &q->base);
  for (;;) {
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, s, 0) < 0) {
      zmq_msg_close(&f);
      return -1;
    }
    Foil__V1__CoordinatorMessage *r = foil__v1__coordinator_message__unpack(NULL, zmq_msg_size(&f), zmq_msg_data(&f));
    zmq_msg_close(&f);
    if (r && r->request_id == q->request_id) {
      int code = r->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR ? client_code_to_err(r->error->code) : 0;
      foil__v1__coordinator_message__free_unpacked(r, NULL);
      return code;
    }
    if (r) foil__v1__coordinator_message__free_unpacked(r, NULL);
  }
}

static int reg(void *s, const char *name, uint32_t slots) {
  Foil__V1__Register r = FOIL__V1__REGISTER__INIT;
  r.name = (char *)name, r.host = "localhost", r.slots = slots, r.version = "test";
  Foil__V1__WorkerMessage q = FOIL__V1__WORKER_MESSAGE__INIT;
  q.body_case = FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, q.register_ = &r;
  return wp(s, name, &q);
}

static int finished(void *s, const char *name, uint64_t job, uint64_t token, int state) {
  Foil__V1__Finished f = FOIL__V1__FINISHED__INIT;
  f.job_id = job, f.token = token, f.state = state, f.message = "exit";
  Foil__V1__WorkerMessage q = FOIL__V1__WORKER_MESSAGE__INIT;
  q.body_case = FOIL__V1__WORKER_MESSAGE__BODY_FINISHED, q.finished = &f;
  return wp(s, name, &q);
}

/* A 1-rank job started on the registered worker and ended `state` by it;
 * its id (*token: its attempt's). */
static uint64_t ended_job(void *w, int state, uint64_t *token) {
  uint64_t id = submit_job("", NULL, 1, NULL, NULL);
  coord_schedule(C);
  cjob *j = coord_job(C, id);
  CHECK(j && j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->natt == 1);
  *token = j && j->natt ? j->att[0].token : 0;
  CHECK(finished(w, "w1", id, *token, state) == 0);
  return id;
}

/* ---- requests -------------------------------------------------------------------------- */

/* Get (watch: Watch) of job id as packed bytes (*len), its
 * memory-only fields (est_start_time, progress) cleared; NULL with the
 * error code in *code. The caller frees. */
static uint8_t *get_bytes(uint64_t id, int watch, size_t *len, int *code) {
  Foil__V1__GetJobRequest g = FOIL__V1__GET_JOB_REQUEST__INIT;
  Foil__V1__WatchRequest wq = FOIL__V1__WATCH_REQUEST__INIT;
  g.job_id = id, wq.job_id = id;
  Foil__V1__Request q = FOIL__V1__REQUEST__INIT;
  if (watch) q.body_case = FOIL__V1__REQUEST__BODY_WATCH, q.watch = &wq;
  else q.body_case = FOIL__V1__REQUEST__BODY_GET, q.get = &g;
  Foil__V1__Reply *r = api(&q);
  uint8_t *out = NULL;
  *len = 0;
  if (r && r->body_case == FOIL__V1__REPLY__BODY_JOB) {
    r->job->est_start_time = 0, r->job->progress = NULL;
    *len = protobuf_c_message_get_packed_size(&r->job->base);
    out = malloc(*len ? *len : 1);
    protobuf_c_message_pack(&r->job->base, out);
    *code = 0;
    foil__v1__reply__free_unpacked(r, NULL);
  } else {
    *code = api_code(r);
  }
  return out;
}

/* 1 when Get and Watch of id answer now what `was` (len bytes) held. */
static int same_get(uint64_t id, const uint8_t *was, size_t len) {
  int ok = 1;
  for (int watch = 0; watch < 2; watch++) {
    size_t n = 0;
    int code = 0;
    uint8_t *now = get_bytes(id, watch, &n, &code);
    ok &= now && n == len && !memcmp(now, was, len);
    free(now);
  }
  return ok;
}

/* Logs of id from offset 0: the data into out, *state, *eof; the code. */
static int logs(uint64_t id, char *out, size_t n, int *state, int *eof) {
  Foil__V1__LogsRequest l = FOIL__V1__LOGS_REQUEST__INIT;
  l.job_id = id;
  Foil__V1__Request q = FOIL__V1__REQUEST__INIT;
  q.body_case = FOIL__V1__REQUEST__BODY_LOGS, q.logs = &l;
  Foil__V1__Reply *r = api(&q);
  out[0] = 0, *state = -1, *eof = -1;
  if (r && r->body_case == FOIL__V1__REPLY__BODY_LOGS) {
    snprintf(out, n, "%.*s", (int)r->logs->data.len, (const char *)r->logs->data.data);
    *state = r->logs->state, *eof = r->logs->eof;
  }
  return api_code(r);
}

/* Cancel of id: the code, the state it answers (or -1), the message. */
static int cancel_state(uint64_t id, int *state, char *msg, size_t n) {
  Foil__V1__CancelRequest x = FOIL__V1__CANCEL_REQUEST__INIT;
  x.job_id = id;
  Foil__V1__Request q = FOIL__V1__REQUEST__INIT;
  q.body_case = FOIL__V1__REQUEST__BODY_CANCEL, q.cancel = &x;
  Foil__V1__Reply *r = api(&q);
  *state = r && r->body_case == FOIL__V1__REPLY__BODY_CANCEL ? (int)r->cancel->state : -1;
  return api_error(r, msg, n);
}

/* A list: "id:state,id:state,…" into out (n bytes), *truncated; the code. */
static int list(const int *states, size_t nstates, uint32_t limit, char *out, size_t n, uint32_t *truncated) {
  Foil__V1__ListJobsRequest l = FOIL__V1__LIST_JOBS_REQUEST__INIT;
  Foil__V1__JobState st[8];
  for (size_t i = 0; i < nstates; i++) st[i] = (Foil__V1__JobState)states[i];
  l.states = st, l.n_states = nstates, l.limit = limit;
  Foil__V1__Request q = FOIL__V1__REQUEST__INIT;
  q.body_case = FOIL__V1__REQUEST__BODY_LIST, q.list = &l;
  Foil__V1__Reply *r = api(&q);
  size_t len = 0;
  out[0] = 0;
  *truncated = 0;
  if (r && r->body_case == FOIL__V1__REPLY__BODY_JOBS) {
    *truncated = r->jobs->truncated;
    for (size_t i = 0; i < r->jobs->n_jobs && len + 64 < n; i++) {
      const Foil__V1__Job *j = r->jobs->jobs[i];
      /* a row is a summary: no argv; the current attempt only */
      len += (size_t)snprintf(out + len, n - len, "%llu:%d:%s:%zu:%zu,", (unsigned long long)j->id, j->state,
                              j->spec ? j->spec->name : "?", j->spec ? j->spec->n_argv : 99, j->n_attempts);
    }
  }
  return api_code(r);
}

/* A command job depending on job dep (type); its id, 0 refused (*rc). */
static uint64_t submit_dep(uint64_t dep, int type, int *rc, char *msg, size_t n) {
  char *argv[] = {"true"};
  Foil__V1__Dependency d = FOIL__V1__DEPENDENCY__INIT, *dp = &d;
  d.job_id = dep, d.type = type;
  Foil__V1__JobSpec s = FOIL__V1__JOB_SPEC__INIT;
  s.kind = "command", s.spec_json = "{}", s.argv = argv, s.n_argv = 1, s.dependencies = &dp, s.n_dependencies = 1;
  uint64_t id = 0;
  int ex = 0;
  foil_err err = {0};
  *rc = coord_submit(C, &s, "", "", &id, &ex, &err);
  snprintf(msg, n, "%s", err.msg);
  return id;
}

/* Jobs in memory (non-NULL entries of jobs), counted. */
static size_t resident(void) {
  size_t n = 0;
  for (uint64_t id = 1; id <= C->max_id; id++) n += C->jobs[id] != NULL;
  CHECKF(n == C->nresident, "%zu resident, nresident %zu", n, C->nresident);
  return n;
}

/* Evicts until a turn frees nothing; how many in all. */
static size_t evict_all(void) {
  size_t n = 0, k;
  while ((k = coord_evict(C, COORD_EVICT_SCAN)) > 0) n += k;
  return n;
}

static void sleep_s(double s) {
  struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&t, NULL);
}

/* ---- 1. eviction, and every request on an evicted job ------------------------------------ */

enum { NCANCEL = 300, WINDOW_MS = 300 };

static void test_evict(void) {
  rig_keep_final_s = WINDOW_MS / 1e3;
  if (fresh("evict")) return;
  void *w = peer("w1");
  CHECK(reg(w, "w1", 1) == 0);
  uint64_t tok_ok = 0, tok_fail = 0;
  uint64_t done = ended_job(w, FOIL__V1__JOB_STATE__JOB_COMPLETED, &tok_ok);
  uint64_t failed = ended_job(w, FOIL__V1__JOB_STATE__JOB_FAILED, &tok_fail);
  char p[900];
  snprintf(p, sizeof p, "%s/jobs/%llu/log", root, (unsigned long long)done);
  foil_err err = {0};
  CHECK(foil_write_file_atomic(p, "hello from the job\n", 19, &err) == 0);
  uint64_t sid_job = submit_job("", "my-sid", 1, NULL, NULL);
  uint64_t first_cancelled = 0, last_cancelled = 0;
  for (int i = 0; i < NCANCEL; i++) {
    uint64_t id = submit_job("", NULL, 1, NULL, NULL);
    if (!first_cancelled) first_cancelled = id;
    last_cancelled = id;
    CHECK(cancel(id) == 0);
  }
  CHECK(cancel(sid_job) == 0);
  /* what stays: one running, two that wait (more ranks than the worker has) */
  uint64_t tok_run = 0, run = submit_job("", NULL, 1, NULL, NULL);
  coord_schedule(C);
  CHECK(coord_job(C, run) && coord_job(C, run)->state == FOIL__V1__JOB_STATE__JOB_RUNNING);
  tok_run = coord_job(C, run) && coord_job(C, run)->natt ? coord_job(C, run)->att[0].token : 0;
  uint64_t wait1 = submit_job("", NULL, 8, NULL, NULL), wait2 = submit_job("", NULL, 8, NULL, NULL);
  coord_schedule(C);
  uint64_t max_before = C->max_id;
  CHECK(resident() == C->max_id);

  /* the answers while every job is resident */
  size_t len_done = 0, len_failed = 0, len_c = 0;
  int code = 0;
  uint8_t *get_done = get_bytes(done, 0, &len_done, &code), *get_failed = get_bytes(failed, 0, &len_failed, &code),
          *get_c = get_bytes(first_cancelled, 0, &len_c, &code);
  CHECK(get_done && get_failed && get_c);
  static char all_before[65536], cd_before[65536], ca_before[4096], dflt_before[4096], small_before[65536];
  static char buf[65536];
  uint32_t tr = 0, tr_small_before = 0;
  const int cancelled[] = {FOIL__V1__JOB_STATE__JOB_CANCELLED},
            finals[] = {FOIL__V1__JOB_STATE__JOB_COMPLETED, FOIL__V1__JOB_STATE__JOB_FAILED},
            waiting[] = {FOIL__V1__JOB_STATE__JOB_PENDING, FOIL__V1__JOB_STATE__JOB_RUNNING,
                         FOIL__V1__JOB_STATE__JOB_COMPLETING, FOIL__V1__JOB_STATE__JOB_REQUEUED};
  CHECK(list(NULL, 0, 10000, all_before, sizeof all_before, &tr) == 0 && tr == 0);
  CHECK(list(finals, 2, 10000, cd_before, sizeof cd_before, &tr) == 0 && tr == 0);
  CHECK(list(cancelled, 1, 25, ca_before, sizeof ca_before, &tr) == 0 && tr == 0);
  CHECK(list(waiting, 4, 10000, dflt_before, sizeof dflt_before, &tr) == 0 && tr == 0);
  size_t was_budget = coord_list_budget;
  coord_list_budget = 4096;
  CHECK(list(NULL, 0, 10000, small_before, sizeof small_before, &tr_small_before) == 0 && tr_small_before > 0);
  coord_list_budget = was_budget;
  char log_before[256], msg[1024];
  int st = 0, eof = 0;
  CHECK(logs(done, log_before, sizeof log_before, &st, &eof) == 0 && !strcmp(log_before, "hello from the job\n") &&
        st == FOIL__V1__JOB_STATE__JOB_COMPLETED && eof == 1);
  CHECK(cancel_state(done, &st, msg, sizeof msg) == FOIL_EPRECOND && strstr(msg, "already ended COMPLETED"));
  CHECK(cancel_state(first_cancelled, &st, msg, sizeof msg) == 0 && st == FOIL__V1__JOB_STATE__JOB_CANCELLED);

  /* inside the window nothing leaves */
  CHECK(evict_all() == 0 && resident() == C->max_id);
  sleep_s(WINDOW_MS / 1e3 + 0.1);
  size_t freed = evict_all();
  size_t active = 3;  /* run, wait1, wait2 */
  CHECKF(freed == C->max_id - active, "freed %zu of %llu", freed, (unsigned long long)C->max_id);
  CHECKF(resident() == active, "%zu resident", resident());
  CHECK(coord_job(C, done) == NULL && coord_job(C, first_cancelled) == NULL && coord_job(C, run) &&
        coord_job(C, wait1) && coord_job(C, wait2));
  CHECK(C->max_id == max_before);

  /* every request on an evicted job answers as before */
  CHECK(same_get(done, get_done, len_done));
  CHECK(same_get(failed, get_failed, len_failed));
  CHECK(same_get(first_cancelled, get_c, len_c));
  size_t len_none = 0;
  CHECK(get_bytes(max_before + 1, 0, &len_none, &code) == NULL && code == FOIL_ENOTFOUND);
  CHECK(logs(done, buf, sizeof buf, &st, &eof) == 0 && !strcmp(buf, log_before) &&
        st == FOIL__V1__JOB_STATE__JOB_COMPLETED && eof == 1);
  CHECK(logs(max_before + 5, buf, sizeof buf, &st, &eof) == FOIL_ENOTFOUND);
  CHECK(cancel_state(done, &st, msg, sizeof msg) == FOIL_EPRECOND && strstr(msg, "already ended COMPLETED"));
  CHECK(cancel_state(failed, &st, msg, sizeof msg) == FOIL_EPRECOND && strstr(msg, "already ended FAILED"));
  CHECK(cancel_state(first_cancelled, &st, msg, sizeof msg) == 0 && st == FOIL__V1__JOB_STATE__JOB_CANCELLED);
  CHECK(coord_job(C, first_cancelled) == NULL);  /* read, not taken back into memory */
  CHECK(list(NULL, 0, 10000, buf, sizeof buf, &tr) == 0 && tr == 0);
  CHECKF(!strcmp(buf, all_before), "--all\n%.300s\nwas\n%.300s", buf, all_before);
  CHECK(list(finals, 2, 10000, buf, sizeof buf, &tr) == 0 && !strcmp(buf, cd_before));
  CHECK(list(cancelled, 1, 25, buf, sizeof buf, &tr) == 0 && !strcmp(buf, ca_before));
  CHECK(list(waiting, 4, 10000, buf, sizeof buf, &tr) == 0 && !strcmp(buf, dflt_before));
  coord_list_budget = 4096;
  CHECK(list(NULL, 0, 10000, buf, sizeof buf, &tr) == 0);
  coord_list_budget = was_budget;
  CHECKF(!strcmp(buf, small_before) && tr == tr_small_before, "at the budget: %u left out, %u before", tr,
         tr_small_before);
  /* a resend of an evicted job's end is acknowledged, as for a resident one */
  CHECK(finished(w, "w1", done, tok_ok, FOIL__V1__JOB_STATE__JOB_COMPLETED) == 0);
  CHECK(finished(w, "w1", done, tok_ok + 1000, FOIL__V1__JOB_STATE__JOB_COMPLETED) == FOIL_EABORTED);
  /* a submission id retried: the same job */
  int ex = 0;
  CHECK(submit_job("", "my-sid", 1, &ex, NULL) == sid_job && ex == 1);

  /* dependencies on evicted jobs: their final state from the store */
  int rc = 0;
  uint64_t on_ok = submit_dep(done, FOIL__V1__DEPENDENCY_TYPE__AFTER_OK, &rc, msg, sizeof msg);
  CHECKF(on_ok && rc == 0, "%s", msg);
  uint64_t on_failed = submit_dep(failed, FOIL__V1__DEPENDENCY_TYPE__AFTER_OK, &rc, msg, sizeof msg);
  uint64_t any_failed = submit_dep(failed, FOIL__V1__DEPENDENCY_TYPE__AFTER_ANY, &rc, msg, sizeof msg);
  CHECK(on_failed && any_failed);
  CHECK(submit_dep(max_before + 100, FOIL__V1__DEPENDENCY_TYPE__AFTER_OK, &rc, msg, sizeof msg) == 0 &&
        rc == FOIL_ENOTFOUND && strstr(msg, "no job"));
  CHECK(finished(w, "w1", run, tok_run, FOIL__V1__JOB_STATE__JOB_COMPLETED) == 0);  /* room for one */
  coord_schedule(C);
  coord_schedule(C);
  cjob *jo = coord_job(C, on_ok), *jf = coord_job(C, on_failed), *ja = coord_job(C, any_failed);
  CHECK(jo && jf && ja);
  if (jo && jf && ja) {
    CHECKF(jf->state == FOIL__V1__JOB_STATE__JOB_CANCELLED && strstr(jf->reason, "DependencyNeverSatisfied") &&
               strstr(jf->reason, "FAILED"),
           "%s: %s", coord_state_name(jf->state), jf->reason);
    /* one slot: the older runs, the other waits for resources, not for its dependency */
    CHECKF(jo->state == FOIL__V1__JOB_STATE__JOB_RUNNING && jo->deps_ok == 1, "%s %s", coord_state_name(jo->state),
           jo->reason);
    CHECKF(ja->state == FOIL__V1__JOB_STATE__JOB_PENDING && ja->deps_met && strcmp(ja->reason, "Dependency"),
           "%s %s", coord_state_name(ja->state), ja->reason);
  }
  CHECK(coord_job(C, done) == NULL && coord_job(C, failed) == NULL);  /* still only in the store */
  uint64_t max_tok = jo && jo->natt ? jo->att[0].token : 0;

  /* a restart loads the jobs not final and those inside the window */
  static char all_mid[65536];
  CHECK(list(NULL, 0, 10000, all_mid, sizeof all_mid, &tr) == 0);
  uint64_t max_mid = C->max_id;
  stop();
  if (start()) return;
  CHECK(C->max_id == max_mid);
  /* on_ok (running), any_failed and wait1, wait2 (pending); run, on_failed (ended just now) */
  CHECKF(resident() == 6 && coord_job(C, on_ok) && coord_job(C, any_failed) && coord_job(C, wait1) &&
             coord_job(C, wait2) && coord_job(C, run) && coord_job(C, on_failed),
         "%zu resident", resident());
  CHECK(coord_job(C, done) == NULL && coord_job(C, last_cancelled) == NULL);
  CHECK(same_get(done, get_done, len_done) && same_get(first_cancelled, get_c, len_c));
  CHECK(list(NULL, 0, 10000, buf, sizeof buf, &tr) == 0 && !strcmp(buf, all_mid));
  CHECK(cancel_state(failed, &st, msg, sizeof msg) == FOIL_EPRECOND && strstr(msg, "already ended FAILED"));
  CHECK(C->next_token > max_tok);
  uint64_t next = submit_job("", NULL, 1, NULL, NULL);
  CHECK(next == max_mid + 1);
  /* on_ok ends; out of the window and after a restart the largest token
   * is an evicted job's: the next attempt's comes after it */
  w = peer("w1");
  CHECK(reg(w, "w1", 1) == 0);
  CHECK(finished(w, "w1", on_ok, max_tok, FOIL__V1__JOB_STATE__JOB_COMPLETED) == 0);
  sleep_s(WINDOW_MS / 1e3 + 0.1);
  CHECKF(evict_all() == 3 && resident() == 4, "%zu resident", resident()); /* run, on_failed, on_ok leave */
  stop();
  if (start()) return;
  CHECK(resident() == 4 && !coord_job(C, on_ok) && C->max_id == next);
  CHECKF(C->next_token > max_tok, "next token %llu, the store's largest %llu", (unsigned long long)C->next_token,
         (unsigned long long)max_tok);
  w = peer("w1");
  CHECK(reg(w, "w1", 1) == 0);
  coord_schedule(C);  /* any_failed (its dependency read from the store again) starts */
  ja = coord_job(C, any_failed);
  CHECKF(ja && ja->state == FOIL__V1__JOB_STATE__JOB_RUNNING && ja->natt == 1 && ja->att[0].token > max_tok, "%s %s",
         ja ? coord_state_name(ja->state) : "?", ja ? ja->reason : "");
  stop();
  /* the whole store at a start with window 0 */
  rig_keep_final_s = 0;
  if (start()) return;
  CHECK(resident() == C->max_id && C->max_id == next);
  CHECK(same_get(done, get_done, len_done));
  CHECK(evict_all() == 0);
  stop();
  free(get_done), free(get_failed), free(get_c);
}

/* ---- 2. window 0: every job stays ------------------------------------------------------------ */

static void test_keep_all(void) {
  rig_keep_final_s = 0;
  if (fresh("keepall")) return;
  for (int i = 0; i < 200; i++) CHECK(cancel(submit_job("", NULL, 1, NULL, NULL)) == 0);
  sleep_s(0.05);
  CHECK(evict_all() == 0 && resident() == 200);
  stop();
  if (start()) return;
  CHECK(resident() == 200 && C->max_id == 200);
  stop();
}

/* ---- 3. a long window: jobs that ended inside it stay, and load at start ------------------ */

static void test_inside_window(void) {
  rig_keep_final_s = 3600;
  if (fresh("window")) return;
  for (int i = 0; i < 50; i++) CHECK(cancel(submit_job("", NULL, 1, NULL, NULL)) == 0);
  CHECK(evict_all() == 0 && resident() == 50);
  stop();
  /* ended two hours ago (as the store has it): not loaded; an hour ago less
   * a minute: loaded */
  char q[256];
  snprintf(q, sizeof q, "UPDATE jobs SET end_time = %.3f WHERE id <= 20", log_now() - 7200);
  sql(q);
  snprintf(q, sizeof q, "UPDATE jobs SET end_time = %.3f WHERE id > 20 AND id <= 30", log_now() - 3540);
  sql(q);
  if (start()) return;
  CHECKF(resident() == 30 && !coord_job(C, 20) && coord_job(C, 21) && coord_job(C, 50), "%zu resident", resident());
  CHECK(C->max_id == 50 && submit_job("", NULL, 1, NULL, NULL) == 51);
  stop();
  rig_keep_final_s = 0;
}

/* ---- 4. an end whose write failed stays in memory until it is written --------------------- */

/* review-evict.md: a job made final in memory by a path that goes on when
 * its write fails (a lost worker's NODE_FAIL) had its only true copy freed,
 * and the store's row (RUNNING) answered from then on. */
static void test_unsaved_end(void) {
  rig_keep_final_s = WINDOW_MS / 1e3;
  if (fresh("unsaved")) return;
  void *w = peer("w1");
  CHECK(reg(w, "w1", 1) == 0);
  uint64_t id = submit_job("", NULL, 1, NULL, NULL);
  coord_schedule(C);
  cjob *j = coord_job(C, id);
  if (!j) return stop();
  CHECK(j->state == FOIL__V1__JOB_STATE__JOB_RUNNING);
  j->max_failures = 0; /* the node failure ends it */
  sql("CREATE TRIGGER fail_jobs BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'injected'); END");
  coord_worker_lost(C, &C->workers[coord_worker_find(C, "w1")], "test");
  CHECK(j->state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL && j->unsaved);
  sleep_s(WINDOW_MS / 1e3 + 0.1);
  evict_all();
  CHECKF(coord_job(C, id) == j, "a job whose end was never written was evicted");
  sql("DROP TRIGGER fail_jobs");
  evict_all();
  CHECK(coord_job(C, id) == NULL);
  size_t len = 0;
  int code = 0;
  uint8_t *b = get_bytes(id, 0, &len, &code);
  Foil__V1__Job *got = b ? foil__v1__job__unpack(NULL, len, b) : NULL;
  CHECKF(got && got->state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL, "the store says %s",
         got ? coord_state_name(got->state) : "nothing");
  if (got) foil__v1__job__free_unpacked(got, NULL);
  free(b);
  stop();
  rig_keep_final_s = 0;
}

int main(void) {
  if (rig_init("evict")) return 1;
  RUN(test_evict);
  RUN(test_keep_all);
  RUN(test_inside_window);
  RUN(test_unsaved_end);
  rig_done();
  TEST_EXIT();
}
