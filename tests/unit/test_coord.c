/* test_coord.c — the coordinator's state transitions, driven as its loop
 * drives them: a real coord (coord_new) on a fresh data root, inproc
 * endpoints, frames handed to coord_api_handle / coord_wp_handle, replies
 * read back on DEALER sockets (one per worker, "cli" for the control API;
 * the coordinator, cli and the control API from coord_rig.h). A store that
 * refuses a write is made with a SQLite trigger that aborts it (from a
 * second connection to coordinator.db).
 *
 * What it proves:
 *  - a gang that needs more than 64 workers is not started (never with
 *    fewer ranks than asked); a 64-worker placement of long names is stored
 *    whole and loads again; thousands of worker names each find their row;
 *  - only plain worker names register, and a stored row of another name
 *    (a worker, or a placement naming one) does not keep the coordinator
 *    from starting: the row is skipped, a running attempt on it requeued;
 *  - a finished report (alone or in a register), or a started one naming
 *    the checkpoint it resumes from, that was not committed is not
 *    acknowledged and changes nothing, so the worker's resend lands;
 *  - cancel and drain that were not committed leave memory as it was;
 *  - only an attempt's head reports on it;
 *  - reasons cut to fit and replies stay UTF-8; a report cut inside a
 *    character by an older worker is taken, its bad bytes replaced;
 *  - `foil logs` reads only a regular file below the data root, never
 *    through a symbolic link, and the attempt fence is never written
 *    through one;
 *  - decode-eval paths are confined at submit;
 *  - a submission memory cannot take is refused before it is committed;
 *  - a second Register racing a pass does not NODE_FAIL the attempt just
 *    assigned (one older than the heartbeat's window it leaves out does);
 *  - a worker back with more job ends than a frame holds registers (its
 *    Register built by the agent's outbox), and every job ends as reported;
 *  - after a restart the workers' grace counts from the end of the load;
 *  - one process per worker name: a second process's Register (another
 *    routing id NAME/INSTANCE) is refused ALREADY_EXISTS while the first is
 *    live, which keeps its jobs and messages; accepted once the first has
 *    been silent for the liveness window, the route switching to it;
 *  - a Goodbye from the name's route applies the job ends it carries and
 *    takes that worker as lost in one step (its jobs requeued once, none
 *    given back to it), and the next process of the name registers
 *    without waiting; a Goodbye from any other route changes nothing;
 *  - a job its worker never started (assigned while shutting down) is
 *    requeued without counting a failure.
 */
#define _DEFAULT_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/client.h"
#include "common/fileio.h"
#include "common/log.h"
#include "coordinator/coord_int.h"
#include "tests/test.h"
#include "tests/unit/coord_rig.h"
#include "worker/agent/outbox.h"

/* ---- the coordinator's peers (the coordinator, cli, the API, peer(): coord_rig.h) ------- */

/* The next message on a worker's socket s (within its 1 s timeout) with
 * request id rid: for rid > 0 an answer (ack, error, registered,
 * heartbeat), for rid 0 one the coordinator pushed (assign, signal,
 * release); the others in between are skipped. NULL when none came. */
static Foil__V1__CoordinatorMessage *next_msg(void *s, uint64_t rid) {
  for (;;) {
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, s, 0) < 0) {
      zmq_msg_close(&f);
      return NULL;
    }
    Foil__V1__CoordinatorMessage *r = foil__v1__coordinator_message__unpack(NULL, zmq_msg_size(&f), zmq_msg_data(&f));
    zmq_msg_close(&f);
    if (r && r->request_id == rid &&
        (!rid || r->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ACK ||
         r->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR ||
         r->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_REGISTERED ||
         r->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_HEARTBEAT))
      return r;
    if (r) foil__v1__coordinator_message__free_unpacked(r, NULL);
  }
}

/* The answer to request rid (> 0). */
static Foil__V1__CoordinatorMessage *answer(void *s, uint64_t rid) { return next_msg(s, rid); }

/* Sends a worker message from `name` (its socket s) and returns the answer. */
static Foil__V1__CoordinatorMessage *wp(void *s, const char *name, Foil__V1__WorkerMessage *q) {
  q->request_id = ++next_rid;
  feed(0, name, &q->base);
  return answer(s, q->request_id);
}

/* 0 for an Ack (or Registered), else the answer's error code (foil's), -1 none. */
static int wp_code(Foil__V1__CoordinatorMessage *r) {
  int code = !r ? -1
             : r->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR ? client_code_to_err(r->error->code)
                                                                        : 0;
  if (r) foil__v1__coordinator_message__free_unpacked(r, NULL);
  return code;
}

/* A Register of worker `name` sent from the routing id `route` (socket s). */
static Foil__V1__CoordinatorMessage *reg_from(void *s, const char *route, const char *name, const char *host,
                                              uint32_t slots) {
  Foil__V1__Register r = FOIL__V1__REGISTER__INIT;
  r.name = (char *)name, r.host = (char *)host, r.slots = slots, r.version = "test";
  Foil__V1__WorkerMessage q = FOIL__V1__WORKER_MESSAGE__INIT;
  q.body_case = FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, q.register_ = &r;
  return wp(s, route, &q);
}

static Foil__V1__CoordinatorMessage *reg(void *s, const char *name, uint32_t slots, Foil__V1__Finished **fin,
                                         size_t nfin) {
  Foil__V1__Register r = FOIL__V1__REGISTER__INIT;
  r.name = (char *)name, r.host = "localhost", r.slots = slots, r.version = "test";
  r.finished = fin, r.n_finished = nfin;
  Foil__V1__WorkerMessage q = FOIL__V1__WORKER_MESSAGE__INIT;
  q.body_case = FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, q.register_ = &r;
  return wp(s, name, &q);
}

static int heartbeat(void *s, const char *route) {
  Foil__V1__Heartbeat h = FOIL__V1__HEARTBEAT__INIT;
  Foil__V1__WorkerMessage q = FOIL__V1__WORKER_MESSAGE__INIT;
  q.body_case = FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT, q.heartbeat = &h;
  return wp_code(wp(s, route, &q));
}

static int finished(void *s, const char *name, uint64_t job, uint64_t token, int state, const char *msg) {
  Foil__V1__Finished f = FOIL__V1__FINISHED__INIT;
  f.job_id = job, f.token = token, f.state = state, f.message = (char *)msg;
  Foil__V1__WorkerMessage q = FOIL__V1__WORKER_MESSAGE__INIT;
  q.body_case = FOIL__V1__WORKER_MESSAGE__BODY_FINISHED, q.finished = &f;
  return wp_code(wp(s, name, &q));
}

static int drain(const char *worker) {
  Foil__V1__DrainRequest x = FOIL__V1__DRAIN_REQUEST__INIT;
  x.worker = (char *)worker;
  Foil__V1__Request q = FOIL__V1__REQUEST__INIT;
  q.body_case = FOIL__V1__REQUEST__BODY_DRAIN, q.drain = &x;
  return api_code(api(&q));
}

/* Triggers (sql) that make the coordinator's writes fail. */
#define FAIL_JOB_UPDATES "CREATE TRIGGER fail_jobs BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'injected'); END"
#define FAIL_WORKER_WRITES \
  "CREATE TRIGGER fail_workers BEFORE INSERT ON workers BEGIN SELECT RAISE(ABORT, 'injected'); END"

static int utf8_ok(const char *s) {
  char *d = strdup(s);
  size_t bad = foil_utf8_scrub(d);
  free(d);
  return bad == 0;
}

/* A 1-rank job, started by a scheduling pass on the registered worker(s):
 * its id and its attempt's token. */
static uint64_t running_job(uint64_t *token) {
  uint64_t id = submit_job("", NULL, 1, NULL, NULL);
  coord_schedule(C);
  cjob *j = coord_job(C, id);
  CHECK(j && j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->natt == 1);
  *token = j && j->natt ? j->att[0].token : 0;
  return id;
}

/* ---- 1. gangs of more than COORD_MAX_PLACE workers; S3 placements ------------- */

static void test_wide_gang(void) {
  if (fresh("wide")) return;
  char name[16];
  for (int i = 0; i <= COORD_MAX_PLACE; i++) {  /* 65 workers of 1 slot */
    snprintf(name, sizeof name, "w%02d", i);
    CHECK(wp_code(reg(peer(name), name, 1, NULL, 0)) == 0);
  }
  uint64_t id = submit_job("", NULL, COORD_MAX_PLACE + 1, NULL, NULL);
  coord_schedule(C);
  cjob *j = coord_job(C, id);
  /* never started on 64 of them with 64 ranks */
  CHECKF(j && j->natt == 0 && j->state == FOIL__V1__JOB_STATE__JOB_PENDING, "natt %zu state %d", j ? j->natt : 0,
         j ? j->state : -1);
  CHECKF(j && strstr(j->reason, "more than 64 workers"), "%s", j ? j->reason : "");
  stop();
}

static void test_long_placement(void) {
  if (fresh("place")) return;
  char names[COORD_MAX_PLACE][COORD_MAX_NAME + 1];
  for (int i = 0; i < COORD_MAX_PLACE; i++) {  /* 64 workers with names of 128 bytes */
    memset(names[i], 'a' + i % 26, COORD_MAX_NAME);
    snprintf(names[i], sizeof names[i], "%02d", i);
    names[i][2] = 'x';
    names[i][COORD_MAX_NAME] = 0;
    CHECK(wp_code(reg(peer(names[i]), names[i], 1, NULL, 0)) == 0);
  }
  uint64_t id = submit_job("", NULL, COORD_MAX_PLACE, NULL, NULL);
  coord_schedule(C);
  cjob *j = coord_job(C, id);
  CHECK(j && j->natt == 1 && j->att[0].nplace == COORD_MAX_PLACE);
  uint64_t token = j && j->natt ? j->att[0].token : 0;
  stop();
  /* what was stored loads again, every worker of the placement with its ranks */
  if (start()) return;
  j = coord_job(C, id);
  CHECK(j && j->natt == 1 && j->att[0].token == token);
  if (j && j->natt) {
    cattempt *a = &j->att[0];
    CHECKF(a->nplace == COORD_MAX_PLACE, "%d", a->nplace);
    uint32_t ranks = 0;
    for (int p = 0; p < a->nplace; p++) ranks += a->place[p].ranks;
    CHECK(ranks == COORD_MAX_PLACE);
    CHECK(a->nplace && !strcmp(C->workers[a->place[a->nplace - 1].worker].name, names[COORD_MAX_PLACE - 1]) &&
          strlen(C->workers[a->place[a->nplace - 1].worker].name) == COORD_MAX_NAME);
  }
  stop();
}

/* The name -> worker index (a hash since workers number thousands): every
 * name finds its own row through several rehashes, the rows keep their
 * indices, near names and unknown ones find nothing. */
static void test_worker_index(void) {
  if (fresh("windex")) return;
  enum { N = 3000 };
  char name[32];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "node-%d", i);
    int w = coord_worker_add(C, name);
    CHECKF(w == i, "node-%d added as %d", i, w);
  }
  int wrong = 0;
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "node-%d", i);
    wrong += coord_worker_find(C, name) != i || strcmp(C->workers[i].name, name);
  }
  CHECKF(wrong == 0, "%d of %d names not found at their index", wrong, N);
  CHECK(coord_worker_find(C, "node-") < 0 && coord_worker_find(C, "node-3000") < 0 &&
        coord_worker_find(C, "node-10x") < 0 && coord_worker_find(C, "") < 0);
  CHECK(C->whash_cap >= 2 * C->nworkers && !(C->whash_cap & (C->whash_cap - 1)));
  stop();
}

/* ---- 2. worker names ------------------------------------------------------------- */

static void test_worker_names(void) {
  if (fresh("names")) return;
  const char *bad[] = {"gpu,1", "a:b", ".."};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    Foil__V1__CoordinatorMessage *r = reg(peer(bad[i]), bad[i], 1, NULL, 0);
    CHECKF(r && r->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR &&
               r->error->code == FOIL__V1__CODE__INVALID_ARGUMENT && strstr(r->error->message, "worker name"),
           "%s", bad[i]);
    if (r) foil__v1__coordinator_message__free_unpacked(r, NULL);
    CHECK(coord_worker_find(C, bad[i]) < 0);
  }
  void *w = peer("gpu-1.a_b");
  CHECK(wp_code(reg(w, "gpu-1.a_b", 2, NULL, 0)) == 0);
  uint64_t t1 = 0, t2 = 0, done = running_job(&t1), run = running_job(&t2);
  CHECK(finished(w, "gpu-1.a_b", done, t1, FOIL__V1__JOB_STATE__JOB_COMPLETED, "exit code 0") == 0);
  stop();
  /* a row stored before names were checked is skipped, not fatal */
  sql("INSERT INTO workers(name, host, slots, gpus, drain, down, registered_time, last_heartbeat) "
      "VALUES('old,name', 'h', 1, 0, 0, 0, 0, 0)");
  /* and so is a placement naming such a worker: an ended attempt keeps its
   * row, a running one is lost (requeued) */
  sql("UPDATE attempts SET placement = 'old,name:1'");
  if (start()) return;
  CHECK(coord_worker_find(C, "gpu-1.a_b") >= 0 && coord_worker_find(C, "old,name") < 0);
  cjob *jd = coord_job(C, done), *jr = coord_job(C, run);
  CHECK(jd && jd->state == FOIL__V1__JOB_STATE__JOB_COMPLETED && jd->natt == 1 && jd->att[0].nplace == 0);
  CHECKF(jr && jr->state == FOIL__V1__JOB_STATE__JOB_REQUEUED && jr->failures == 1 && jr->natt == 1 &&
             jr->att[0].state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL && strstr(jr->reason, "placement"),
         "state %s, reason %s", jr ? coord_state_name(jr->state) : "?", jr ? jr->reason : "");
  stop();
  if (start()) return;  /* what was recorded then loads too */
  jr = coord_job(C, run);
  CHECK(jr && jr->state == FOIL__V1__JOB_STATE__JOB_REQUEUED && jr->failures == 1);
  stop();
}

/* ---- 3. finished acknowledged only once committed ------------------------------------ */

static void test_finished_durable(void) {
  if (fresh("finished")) return;
  void *w = peer("w1");
  CHECK(wp_code(reg(w, "w1", 4, NULL, 0)) == 0);
  uint64_t token = 0, id = running_job(&token);
  sql(FAIL_JOB_UPDATES);
  CHECK(finished(w, "w1", id, token, FOIL__V1__JOB_STATE__JOB_COMPLETED, "exit code 0") == FOIL_EUNAVAIL);
  cjob *j = coord_job(C, id);
  CHECK(j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->att[0].state == FOIL__V1__JOB_STATE__JOB_RUNNING);
  /* NODE_FAIL (the worker shuts down) likewise: nothing counted */
  CHECK(finished(w, "w1", id, token, FOIL__V1__JOB_STATE__JOB_NODE_FAIL, "worker w1 shut down") == FOIL_EUNAVAIL);
  CHECK(j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->failures == 0 && j->restart_count == 0);
  /* in a register: the register is not acknowledged, so it comes again */
  Foil__V1__Finished f = FOIL__V1__FINISHED__INIT, *fp = &f;
  f.job_id = id, f.token = token, f.state = FOIL__V1__JOB_STATE__JOB_COMPLETED, f.message = "exit code 0";
  Foil__V1__CoordinatorMessage *r = reg(w, "w1", 4, &fp, 1);
  CHECK(r && r->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR &&
        r->error->code == FOIL__V1__CODE__UNAVAILABLE);
  if (r) foil__v1__coordinator_message__free_unpacked(r, NULL);
  CHECK(j->state == FOIL__V1__JOB_STATE__JOB_RUNNING);
  /* the store works again: the resend is taken and acknowledged */
  sql("DROP TRIGGER fail_jobs");
  CHECK(wp_code(reg(w, "w1", 4, &fp, 1)) == 0);
  CHECK(j->state == FOIL__V1__JOB_STATE__JOB_COMPLETED);
  CHECK(finished(w, "w1", id, token, FOIL__V1__JOB_STATE__JOB_COMPLETED, "exit code 0") == 0);
  stop();
  if (start()) return;  /* and the store says so */
  j = coord_job(C, id);
  CHECK(j && j->state == FOIL__V1__JOB_STATE__JOB_COMPLETED);
  stop();
}

/* A Started whose resume-from was not committed is not acknowledged and
 * changes nothing: the worker sends it again. */
static int started(void *s, const char *name, uint64_t job, uint64_t token, const char *resume_from) {
  Foil__V1__Started st = FOIL__V1__STARTED__INIT;
  st.job_id = job, st.token = token, st.resume_from = (char *)resume_from, st.pid = 1;
  Foil__V1__WorkerMessage q = FOIL__V1__WORKER_MESSAGE__INIT;
  q.body_case = FOIL__V1__WORKER_MESSAGE__BODY_STARTED, q.started = &st;
  return wp_code(wp(s, name, &q));
}

static void test_started_durable(void) {
  if (fresh("started")) return;
  void *w = peer("w1");
  CHECK(wp_code(reg(w, "w1", 1, NULL, 0)) == 0);
  uint64_t token = 0, id = running_job(&token);
  cjob *j = coord_job(C, id);
  sql(FAIL_JOB_UPDATES);
  CHECK(started(w, "w1", id, token, "jobs/1/ckpt/step_5.h5") == FOIL_EUNAVAIL);
  CHECKF(j && j->att[0].resume_from[0] == 0, "%s", j ? j->att[0].resume_from : "");
  sql("DROP TRIGGER fail_jobs");
  CHECK(started(w, "w1", id, token, "jobs/1/ckpt/step_5.h5") == 0);
  CHECK(j && !strcmp(j->att[0].resume_from, "jobs/1/ckpt/step_5.h5"));
  stop();
  if (start()) return;  /* and the store says so */
  j = coord_job(C, id);
  CHECK(j && j->natt == 1 && !strcmp(j->att[0].resume_from, "jobs/1/ckpt/step_5.h5"));
  stop();
}

/* ---- 4. cancel and drain ------------------------------------------------------------- */

static void test_cancel_drain_durable(void) {
  if (fresh("cancel")) return;
  void *w = peer("w1");
  CHECK(wp_code(reg(w, "w1", 1, NULL, 0)) == 0);
  uint64_t token = 0, run = running_job(&token);
  uint64_t pend = submit_job("", NULL, 1, NULL, NULL);  /* waits: the slot is taken */
  coord_schedule(C);
  cjob *jr = coord_job(C, run), *jp = coord_job(C, pend);
  CHECK(jp->state == FOIL__V1__JOB_STATE__JOB_PENDING);
  char reason[256];
  snprintf(reason, sizeof reason, "%s", jp->reason);
  sql(FAIL_JOB_UPDATES);
  CHECK(cancel(pend) == FOIL_EINTERNAL);
  CHECK(jp->state == FOIL__V1__JOB_STATE__JOB_PENDING && jp->end_time == 0 && !strcmp(jp->reason, reason));
  CHECK(cancel(run) == FOIL_EINTERNAL);
  CHECK(jr->state == FOIL__V1__JOB_STATE__JOB_RUNNING && jr->stop_state == 0 && jr->reason[0] == 0);
  sql("DROP TRIGGER fail_jobs");
  CHECK(cancel(pend) == 0 && jp->state == FOIL__V1__JOB_STATE__JOB_CANCELLED);  /* the retry does it */
  CHECK(cancel(pend) == 0 && jp->state == FOIL__V1__JOB_STATE__JOB_CANCELLED);  /* and again: the same */
  CHECK(cancel(run) == 0 && jr->state == FOIL__V1__JOB_STATE__JOB_COMPLETING);
  sql(FAIL_WORKER_WRITES);
  CHECK(drain("w1") == FOIL_EINTERNAL);
  CHECK(C->workers[coord_worker_find(C, "w1")].drain == 0);
  sql("DROP TRIGGER fail_workers");
  CHECK(drain("w1") == 0 && C->workers[coord_worker_find(C, "w1")].drain == 1);
  stop();
}

/* ---- 5. only the head reports ---------------------------------------------------------- */

static void test_head_only(void) {
  if (fresh("head")) return;
  void *w1 = peer("w1"), *w2 = peer("w2");
  CHECK(wp_code(reg(w1, "w1", 1, NULL, 0)) == 0);
  uint64_t token = 0, id = running_job(&token);  /* on w1, the only worker so far */
  CHECK(wp_code(reg(w2, "w2", 1, NULL, 0)) == 0);
  cjob *j = coord_job(C, id);
  CHECK(finished(w2, "w2", id, token, FOIL__V1__JOB_STATE__JOB_COMPLETED, "") == FOIL_EPERM);
  CHECK(finished(w2, "w2", id, token, FOIL__V1__JOB_STATE__JOB_NODE_FAIL, "") == FOIL_EPERM);
  CHECK(j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->failures == 0);
  Foil__V1__Progress g = FOIL__V1__PROGRESS__INIT;
  g.value = 5, g.total = 10, g.message = "fake";
  Foil__V1__ProgressReport p = FOIL__V1__PROGRESS_REPORT__INIT;
  p.job_id = id, p.token = token, p.progress = &g;
  Foil__V1__WorkerMessage q = FOIL__V1__WORKER_MESSAGE__INIT;
  q.body_case = FOIL__V1__WORKER_MESSAGE__BODY_PROGRESS, q.progress = &p;
  CHECK(wp_code(wp(w2, "w2", &q)) == FOIL_EPERM);
  CHECK(j->p_time == 0);
  Foil__V1__Started s = FOIL__V1__STARTED__INIT;
  s.job_id = id, s.token = token, s.resume_from = "/x";
  Foil__V1__WorkerMessage q2 = FOIL__V1__WORKER_MESSAGE__INIT;
  q2.body_case = FOIL__V1__WORKER_MESSAGE__BODY_STARTED, q2.started = &s;
  CHECK(wp_code(wp(w2, "w2", &q2)) == FOIL_EPERM);
  CHECK(j->att[0].resume_from[0] == 0);
  /* its head may */
  CHECK(wp_code(wp(w1, "w1", &q)) == 0 && j->p_value == 5);
  CHECK(finished(w1, "w1", id, token, FOIL__V1__JOB_STATE__JOB_COMPLETED, "exit code 0") == 0);
  CHECK(j->state == FOIL__V1__JOB_STATE__JOB_COMPLETED);
  stop();
}

/* ---- 6. UTF-8 ----------------------------------------------------------------------------- */

static void test_utf8_helpers(void) {
  char s[16];
  strcpy(s, "ab\xe6\x97");  /* a 3-byte character cut after 2 */
  CHECK(foil_utf8_cut(s) == 2 && !strcmp(s, "ab"));
  strcpy(s, "ab\xe6\x97\xa5");
  CHECK(foil_utf8_cut(s) == 5);
  strcpy(s, "\xc3");
  CHECK(foil_utf8_cut(s) == 0 && !s[0]);
  strcpy(s, "a\xf0\x9f\x98");
  CHECK(foil_utf8_cut(s) == 1);
  strcpy(s, "a\xf0\x9f\x98\x80");
  CHECK(foil_utf8_cut(s) == 5);
  CHECK(foil_utf8_copy(s, 5, "ab\xc3\xa9\xc3\xa9") == 4 && !strcmp(s, "ab\xc3\xa9"));
  CHECK(foil_utf8_copy(s, 4, "ab\xc3\xa9\xc3\xa9") == 2 && !strcmp(s, "ab"));
  CHECK(foil_utf8_copy(s, sizeof s, "short") == 5 && !strcmp(s, "short"));
  strcpy(s, "a\xff" "b\xc3(");
  CHECK(foil_utf8_scrub(s) == 2 && !strcmp(s, "a?b?("));
  strcpy(s, "\xed\xa0\x80z");  /* a surrogate */
  CHECK(foil_utf8_scrub(s) == 3 && !strcmp(s, "???z"));
  /* the decoder every check uses: sequence lengths, 0 for each kind of bad */
  static const struct { const char *s; size_t n, want; } seq[] = {
      {"a", 1, 1},         {"\xc3\xa9", 2, 2},         {"\xe2\x82\xac", 3, 3},    {"\xf0\x9f\x98\x80", 4, 4},
      {"\xe2\x82\xac", 2, 0}, /* cut by the end */      {"\x80", 1, 0},      /* a lone continuation */
      {"\xc0\x80", 2, 0},      /* overlong NUL */        {"\xe0\x80\x80", 3, 0}, /* overlong */
      {"\xed\xa0\x80", 3, 0}, /* surrogate */           {"\xf4\x90\x80\x80", 4, 0}, /* > U+10FFFF */
      {"\xf8\x88\x80\x80", 4, 0}, /* 5-byte lead */     {"\xc3(", 2, 0},     /* bad continuation */
      {"", 0, 0},
  };
  for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++)
    CHECKF(foil_utf8_seq(seq[i].s, seq[i].n) == seq[i].want, "case %zu", i);
  /* foil_err_set cuts at a character boundary */
  char big[700];
  size_t n = 0;
  big[n++] = 'x', big[n++] = 'y';  /* 511 = 2 + 3 * 169 + 2: the cut falls inside a character */
  while (n + 3 < sizeof big) big[n++] = '\xe6', big[n++] = '\x97', big[n++] = '\xa5';
  big[n] = 0;
  foil_err e = {0};
  foil_err_set(&e, FOIL_EINVAL, "%s", big);
  CHECKF(utf8_ok(e.msg) && strlen(e.msg) >= sizeof e.msg - 4, "%zu", strlen(e.msg));
}

static void test_utf8_reasons(void) {
  if (fresh("utf8")) return;
  void *w = peer("w1");
  CHECK(wp_code(reg(w, "w1", 1, NULL, 0)) == 0);
  /* valid UTF-8 of 300 bytes, a 2-byte character across the 255 bytes a reason keeps */
  char msg[301];
  memset(msg, 'a', 300), msg[300] = 0;
  for (int i = 254; i + 1 < 300; i += 2) msg[i] = '\xc3', msg[i + 1] = '\xa9';
  CHECK(utf8_ok(msg));
  uint64_t token = 0, id = running_job(&token);
  CHECK(finished(w, "w1", id, token, FOIL__V1__JOB_STATE__JOB_FAILED, msg) == 0);
  cjob *j = coord_job(C, id);
  CHECKF(utf8_ok(j->reason) && utf8_ok(j->att[0].reason), "%s", j->reason);
  /* the reply that carries it decodes, as a strict client reads it */
  Foil__V1__GetJobRequest g = FOIL__V1__GET_JOB_REQUEST__INIT;
  g.job_id = id;
  Foil__V1__Request q = FOIL__V1__REQUEST__INIT;
  q.body_case = FOIL__V1__REQUEST__BODY_GET, q.get = &g;
  Foil__V1__Reply *r = api(&q);
  foil_err e = {0};
  CHECKF(r && r->body_case == FOIL__V1__REPLY__BODY_JOB && wire_check_msg(&r->base, &e) == 0, "%s", e.msg);
  if (r) foil__v1__reply__free_unpacked(r, NULL);
  /* a NODE_FAIL report's text becomes the requeue reason */
  token = 0;
  uint64_t id2 = running_job(&token);
  CHECK(finished(w, "w1", id2, token, FOIL__V1__JOB_STATE__JOB_NODE_FAIL, msg) == 0);
  j = coord_job(C, id2);
  CHECKF(j->state == FOIL__V1__JOB_STATE__JOB_REQUEUED && utf8_ok(j->reason) && utf8_ok(j->att[0].reason), "%s",
         j->reason);
  /* an older worker's report cut inside a character: taken, not refused */
  coord_schedule(C);
  cattempt *a = coord_current(j);
  CHECK(j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && a);
  char cut[16] = "exit \xe6\x97";
  CHECK(finished(w, "w1", id2, a ? a->token : 0, FOIL__V1__JOB_STATE__JOB_FAILED, cut) == 0);
  CHECKF(j->state == FOIL__V1__JOB_STATE__JOB_FAILED && utf8_ok(j->reason) && !strncmp(j->reason, "exit ", 5),
         "%s", j->reason);
  stop();
}

/* ---- 7. foil logs ---------------------------------------------------------------------------- */

static int logs(uint64_t job, char *out, size_t n) {
  Foil__V1__LogsRequest l = FOIL__V1__LOGS_REQUEST__INIT;
  l.job_id = job;
  Foil__V1__Request q = FOIL__V1__REQUEST__INIT;
  q.body_case = FOIL__V1__REQUEST__BODY_LOGS, q.logs = &l;
  Foil__V1__Reply *r = api(&q);
  out[0] = 0;
  if (r && r->body_case == FOIL__V1__REPLY__BODY_LOGS)
    snprintf(out, n, "%.*s", (int)r->logs->data.len, (const char *)r->logs->data.data);
  return api_code(r);
}

static void test_logs_nofollow(void) {
  if (fresh("logs")) return;
  uint64_t id = submit_job("", NULL, 1, NULL, NULL);  /* no worker: it waits */
  char p[900], t[900], got[256];
  snprintf(t, sizeof t, "%s/secret.key", base);
  foil_err err = {0};
  CHECK(foil_write_file_atomic(t, "TOPSECRET\n", 10, &err) == 0);
  CHECK(logs(id, got, sizeof got) == 0 && !got[0]);  /* no log yet */
  snprintf(p, sizeof p, "%s/jobs/%llu", root, (unsigned long long)id);
  foil_mkdirs(p, &err);
  snprintf(p, sizeof p, "%s/jobs/%llu/log", root, (unsigned long long)id);
  CHECK(symlink(t, p) == 0);  /* what a job can do in its directory */
  CHECK(logs(id, got, sizeof got) == FOIL_EPRECOND && !strstr(got, "TOPSECRET"));
  unlink(p);
  CHECK(foil_write_file_atomic(p, "hello\n", 6, &err) == 0);
  CHECK(logs(id, got, sizeof got) == 0 && !strcmp(got, "hello\n"));
  /* jobs/<id> itself replaced by a link to a directory with a "log" */
  char other[700], d[900];
  snprintf(other, sizeof other, "%s/elsewhere", base);
  foil_mkdirs(other, &err);
  snprintf(d, sizeof d, "%s/log", other);
  CHECK(foil_write_file_atomic(d, "TOPSECRET\n", 10, &err) == 0);
  unlink(p);
  snprintf(p, sizeof p, "%s/jobs/%llu", root, (unsigned long long)id);
  CHECK(rmdir(p) == 0 && symlink(other, p) == 0);
  CHECK(logs(id, got, sizeof got) == FOIL_EPRECOND && !strstr(got, "TOPSECRET"));
  stop();
}

/* The attempt fence is written into jobs/<id> without following a link
 * the job put there: a job cannot steer where the coordinator writes. */
static void test_fence_nofollow(void) {
  if (fresh("fence")) return;
  void *w = peer("w1");
  CHECK(wp_code(reg(w, "w1", 1, NULL, 0)) == 0);
  uint64_t id = submit_job("", NULL, 1, NULL, NULL);
  char p[900], other[700], f[900];
  snprintf(other, sizeof other, "%s/fence-elsewhere", base);
  foil_err err = {0};
  foil_mkdirs(other, &err);
  snprintf(p, sizeof p, "%s/jobs", root);
  foil_mkdirs(p, &err);
  snprintf(p, sizeof p, "%s/jobs/%llu", root, (unsigned long long)id);
  CHECK(symlink(other, p) == 0);  /* what a job (an earlier attempt) can do */
  coord_schedule(C);
  cjob *j = coord_job(C, id);
  snprintf(f, sizeof f, "%s/attempt", other);
  CHECKF(access(f, F_OK) != 0, "the fence was written through the link into %s", other);
  CHECKF(j && j->state == FOIL__V1__JOB_STATE__JOB_PENDING && j->natt == 0 && strstr(j->reason, "symbolic link"),
         "state %s, reason %s", j ? coord_state_name(j->state) : "?", j ? j->reason : "");
  /* the link gone: the directory is made and the fence written in it */
  CHECK(unlink(p) == 0);
  coord_schedule(C);
  CHECK(j && j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->natt == 1);
  char *text = NULL, want[32];
  snprintf(f, sizeof f, "%s/jobs/%llu/attempt", root, (unsigned long long)id);
  snprintf(want, sizeof want, "%llu\n", j && j->natt ? (unsigned long long)j->att[0].token : 0ULL);
  CHECK(foil_read_file(f, &text, NULL, &err) == 0 && text && !strcmp(text, want));
  free(text);
  struct stat st;
  CHECK(lstat(p, &st) == 0 && S_ISDIR(st.st_mode));
  stop();
}

/* ---- 8. decode-eval paths at submit --------------------------------------------------------- */

static void test_deval_confined(void) {
  if (fresh("deval")) return;
  Foil__V1__JobSpec s = FOIL__V1__JOB_SPEC__INIT;
  s.kind = "decode-eval";
  s.spec_json =
      "{\"model\": \"/etc/passwd\", \"prompts\": {\"dataset\": \"lm\"}, \"methods\": [{\"method\": \"greedy\"}]}";
  uint64_t id = 0;
  int existing = 0;
  foil_err err = {0};
  CHECK(coord_submit(C, &s, "", "", &id, &existing, &err) == FOIL_EPERM && strstr(err.msg, "spec model"));
  s.spec_json = "{\"model\": \"jobs/1\", \"prompts\": {\"file\": \"../../../p.jsonl\"}}";
  CHECK(coord_submit(C, &s, "", "", &id, &existing, &err) == FOIL_EPERM && strstr(err.msg, "prompts.file"));
  s.spec_json = "{\"model\": \"jobs/1\", \"prompts\": {\"dataset\": \"lm\"}, \"methods\": [{\"method\": \"greedy\"}]}";
  CHECKF(coord_submit(C, &s, "", "", &id, &existing, &err) == 0, "%s", err.msg);
  stop();
}

/* ---- S1. a second Register racing a scheduling pass ---------------------------------------- */

static void test_reregister_race(void) {
  if (fresh("rereg")) return;
  void *w = peer("w1");
  CHECK(wp_code(reg(w, "w1", 1, NULL, 0)) == 0);
  uint64_t token = 0, id = running_job(&token);  /* assigned a moment ago */
  /* the worker's second Register, sent before the Assign reached it, does
   * not list the attempt: it is in flight, not lost */
  CHECK(wp_code(reg(w, "w1", 1, NULL, 0)) == 0);
  cjob *j = coord_job(C, id);
  CHECKF(j && j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->failures == 0 && j->natt == 1 &&
             j->att[0].state == FOIL__V1__JOB_STATE__JOB_RUNNING,
         "state %s, %u failures, reason %s", j ? coord_state_name(j->state) : "?", j ? j->failures : 0,
         j ? j->reason : "");
  /* an attempt older than the heartbeat's window that a Register leaves out is gone */
  if (j && j->natt) j->att[0].assign_mono -= 2 * C->hb_s * C->o.liveness + 1;
  CHECK(wp_code(reg(w, "w1", 1, NULL, 0)) == 0);
  CHECKF(j && j->state == FOIL__V1__JOB_STATE__JOB_REQUEUED && j->failures == 1 &&
             strstr(j->reason, "came back without it"),
         "state %s, reason %s", j ? coord_state_name(j->state) : "?", j ? j->reason : "");
  stop();
}

/* ---- one process per worker name ----------------------------------------------------------- */

/* The next message the coordinator pushed to s (assign, signal,
 * release); NULL when none came. */
static Foil__V1__CoordinatorMessage *pushed(void *s) { return next_msg(s, 0); }

/* 1 when nothing arrives on s for a while (what was sent to it, drained). */
static int quiet(void *s) {
  zmq_msg_t f;
  zmq_msg_init(&f);
  int got = zmq_msg_recv(&f, s, ZMQ_DONTWAIT) >= 0;
  zmq_msg_close(&f);
  return !got;
}

/* Two foil-worker processes with the same name (routing ids w1/aaaa and
 * w1/bbbb). The second's Register, while the first is live, is refused
 * ALREADY_EXISTS naming the name, the first's host and how long ago it was
 * heard, with when to retry; nothing changes: the first keeps its jobs,
 * heartbeats and the coordinator's messages (a cancel's stop reaches its
 * socket, none the second's), and the second's other messages are told to
 * register first. Once the first has been silent for the liveness window
 * the second is accepted, the route switches, and the first, back, gets
 * the same refusal. Routing ids that are not NAME or NAME/INSTANCE, or
 * whose NAME is not the Register's, are refused. */
static void test_duplicate_name(void) {
  if (fresh("dup")) return;
  void *a = peer("w1/aaaa"), *b = peer("w1/bbbb");
  CHECK(wp_code(reg_from(a, "w1/aaaa", "w1", "host-a", 2)) == 0);
  int wi = coord_worker_find(C, "w1");
  CHECK(wi >= 0 && !strcmp(C->workers[wi].route, "w1/aaaa"));
  if (wi < 0) return stop();
  uint64_t token = 0, id = running_job(&token);
  Foil__V1__CoordinatorMessage *m = pushed(a);
  CHECK(m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ASSIGN && m->assign->job_id == id);
  if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  /* the second process, while the first is live */
  m = reg_from(b, "w1/bbbb", "w1", "host-b", 8);
  CHECKF(m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR &&
             m->error->code == FOIL__V1__CODE__ALREADY_EXISTS,
         "%s", m && m->error ? m->error->message : "not refused");
  if (m && m->error) {
    const char *t = m->error->message;
    CHECKF(strstr(t, "\"w1\"") && strstr(t, "host-a") && strstr(t, "heard 0.") && strstr(t, "silent for 4.0 s"),
           "%s", t);
    CHECKF(m->retry_after_ms > 0 && m->retry_after_ms <= 4100, "retry after %u ms", m->retry_after_ms);
  }
  if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  cworker *w = &C->workers[wi];
  CHECK(!strcmp(w->route, "w1/aaaa") && !strcmp(w->host, "host-a") && w->slots == 2);
  cjob *j = coord_job(C, id);
  CHECK(j && j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->failures == 0);
  /* its heartbeat is not the first's: register first */
  CHECK(heartbeat(b, "w1/bbbb") == FOIL_EPRECOND);
  /* the first is undisturbed: heartbeats, reports, and what is sent to w1 reaches it */
  CHECK(heartbeat(a, "w1/aaaa") == 0);
  CHECK(cancel(id) == 0);
  m = pushed(a);
  CHECKF(m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_SIGNAL && m->signal->stop &&
             m->signal->token == token, "the first got %s", m ? "another message" : "nothing");
  if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  CHECK(quiet(b));
  CHECK(finished(a, "w1/aaaa", id, token, FOIL__V1__JOB_STATE__JOB_CANCELLED, "cancelled") == 0);
  CHECK(j && j->state == FOIL__V1__JOB_STATE__JOB_CANCELLED);
  /* a refused Register again later: still refused while the first heartbeats */
  m = reg_from(b, "w1/bbbb", "w1", "host-b", 8);
  CHECK(m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR &&
        m->error->code == FOIL__V1__CODE__ALREADY_EXISTS);
  if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  /* the first silent for the window (crashed): the second is accepted, and
   * is where w1's work goes from now on */
  w->last_seen_mono -= C->hb_s * C->o.liveness + 0.5;
  CHECK(wp_code(reg_from(b, "w1/bbbb", "w1", "host-b", 8)) == 0);
  CHECK(!strcmp(w->route, "w1/bbbb") && !strcmp(w->host, "host-b") && w->slots == 8 && !w->down);
  uint64_t t2 = 0, id2 = running_job(&t2);
  m = pushed(b);
  CHECK(m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ASSIGN && m->assign->job_id == id2);
  if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  CHECK(quiet(a));
  /* the first comes back (it was cut off): told to register, then refused */
  CHECK(heartbeat(a, "w1/aaaa") == FOIL_EPRECOND);
  CHECK(finished(a, "w1/aaaa", id2, t2, FOIL__V1__JOB_STATE__JOB_COMPLETED, "") == FOIL_EPRECOND);
  m = reg_from(a, "w1/aaaa", "w1", "host-a", 2);
  CHECKF(m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR &&
             m->error->code == FOIL__V1__CODE__ALREADY_EXISTS && strstr(m->error->message, "host-b"),
         "%s", m && m->error ? m->error->message : "not refused");
  if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  CHECK(!strcmp(w->route, "w1/bbbb"));
  /* declared DOWN (no heartbeat for the window): any process of the name gets in */
  coord_worker_lost(C, w, "test");
  CHECK(wp_code(reg_from(a, "w1/aaaa", "w1", "host-a", 2)) == 0 && !strcmp(w->route, "w1/aaaa"));
  /* an older worker (routing id = its name) is its own instance */
  void *old = peer("w2");
  CHECK(wp_code(reg(old, "w2", 1, NULL, 0)) == 0 && heartbeat(old, "w2") == 0);
  int w2 = coord_worker_find(C, "w2");
  CHECK(w2 >= 0 && !strcmp(C->workers[w2].route, "w2"));
  void *w2b = peer("w2/cccc");
  CHECK(wp_code(reg_from(w2b, "w2/cccc", "w2", "h", 1)) == FOIL_EEXIST);
  /* routing ids that are not NAME or NAME/INSTANCE of the Register's name */
  const char *bad[] = {"w3/", "w3/a/b", "w3/x y", "w4/aaaa"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    m = reg_from(peer(bad[i]), bad[i], "w3", "h", 1);
    CHECKF(m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ERROR &&
               m->error->code == FOIL__V1__CODE__INVALID_ARGUMENT && strstr(m->error->message, "NAME/INSTANCE"),
           "%s: %s", bad[i], m && m->error ? m->error->message : "accepted");
    if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  }
  CHECK(coord_worker_find(C, "w3") < 0);
  stop();
}

/* A Goodbye from `route` (socket s), carrying n job ends: 0 for its Ack,
 * else the error code. */
static int goodbye(void *s, const char *route, Foil__V1__Finished **fin, size_t n) {
  Foil__V1__Goodbye g = FOIL__V1__GOODBYE__INIT;
  g.finished = fin, g.n_finished = n;
  Foil__V1__WorkerMessage q = FOIL__V1__WORKER_MESSAGE__INIT;
  q.body_case = FOIL__V1__WORKER_MESSAGE__BODY_GOODBYE, q.goodbye = &g;
  return wp_code(wp(s, route, &q));
}

/* A job assigned to a worker that was shutting down never ran: the worker
 * says so (Finished.not_started) and its requeue is not one of the job's
 * failures, so max_failures 0 does not end it; a NODE_FAIL of an attempt
 * that ran still counts. */
static void test_not_started(void) {
  if (fresh("notstarted")) return;
  void *s = peer("w1");
  CHECK(wp_code(reg(s, "w1", 1, NULL, 0)) == 0);
  uint64_t t = 0, id = running_job(&t);
  cjob *j = coord_job(C, id);
  if (!j) return stop();
  j->max_failures = 0;
  Foil__V1__Finished f = FOIL__V1__FINISHED__INIT;
  Foil__V1__WorkerMessage q = FOIL__V1__WORKER_MESSAGE__INIT;
  q.body_case = FOIL__V1__WORKER_MESSAGE__BODY_FINISHED, q.finished = &f;
  f.job_id = id, f.token = t, f.state = FOIL__V1__JOB_STATE__JOB_NODE_FAIL;
  f.message = "the worker is shutting down: not started", f.not_started = 1;
  CHECK(wp_code(wp(s, "w1", &q)) == 0);
  CHECKF(j->state == FOIL__V1__JOB_STATE__JOB_REQUEUED && j->failures == 0 && j->restart_count == 1,
         "%s, %u failure(s)", coord_state_name(j->state), j->failures);
  coord_schedule(C);
  CHECK(j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->natt == 2);
  f.token = j->natt == 2 ? j->att[1].token : 0, f.message = "worker w1 shut down", f.not_started = 0;
  CHECK(wp_code(wp(s, "w1", &q)) == 0);
  CHECKF(j->state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL && j->failures == 1 && strstr(j->reason, "max_failures 0"),
         "%s, %u failure(s): %s", coord_state_name(j->state), j->failures, j->reason);
  stop();
}

/* A worker that shuts down cleanly says goodbye, with the ends of the jobs
 * it stopped. From the route its name is registered from: those ends are
 * applied (NODE_FAIL, requeued) and the worker is DOWN in the same step,
 * an attempt it does not report NODE_FAIL as for a lost worker; a pass
 * then gives neither job back to it (each has failed once), and a new
 * process of the name is accepted at once — no liveness window to wait
 * out — and gets them. From any other route (a refused second process,
 * the replaced first, a name nobody registered) it is acked and changes
 * nothing, the ends it carries unread. */
static void test_goodbye(void) {
  if (fresh("bye")) return;
  void *a = peer("w1/aaaa"), *b = peer("w1/bbbb");
  Foil__V1__CoordinatorMessage *m = reg_from(a, "w1/aaaa", "w1", "host-a", 2);
  /* it says it takes goodbyes: the worker holds its job ends for one */
  CHECK(m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_REGISTERED && m->registered->goodbye);
  if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  int wi = coord_worker_find(C, "w1");
  if (wi < 0) return stop();
  cworker *w = &C->workers[wi];
  uint64_t t1 = 0, id1 = running_job(&t1), t2 = 0, id2 = running_job(&t2);
  for (int k = 0; k < 2; k++) {
    m = pushed(a);
    CHECK(m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ASSIGN);
    if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  }
  cjob *j1 = coord_job(C, id1), *j2 = coord_job(C, id2);
  if (!j1 || !j2) return stop();
  Foil__V1__Finished f = FOIL__V1__FINISHED__INIT, *fp = &f;
  f.job_id = id1, f.token = t1, f.state = FOIL__V1__JOB_STATE__JOB_NODE_FAIL, f.message = "worker w1 shut down";
  /* a second process, refused while the first is live, says goodbye
   * (naming the first's job): nothing changes */
  CHECK(wp_code(reg_from(b, "w1/bbbb", "w1", "host-b", 8)) == FOIL_EEXIST);
  CHECK(goodbye(b, "w1/bbbb", &fp, 1) == 0);
  CHECK(!w->down && w->session && !strcmp(w->route, "w1/aaaa"));
  CHECK(j1->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j1->failures == 0 && j1->natt == 1);
  CHECK(wp_code(reg_from(b, "w1/bbbb", "w1", "host-b", 8)) == FOIL_EEXIST);
  CHECK(heartbeat(a, "w1/aaaa") == 0);
  /* nor from a name nobody registered */
  void *x = peer("w9/xxxx");
  CHECK(goodbye(x, "w9/xxxx", NULL, 0) == 0 && coord_worker_find(C, "w9") < 0);
  /* the first shuts down: its goodbye (job 1's end in it, job 2's left out)
   * takes it as lost now */
  CHECK(goodbye(a, "w1/aaaa", &fp, 1) == 0);
  CHECK(w->down && !w->session);
  CHECKF(j1->state == FOIL__V1__JOB_STATE__JOB_REQUEUED && j1->failures == 1 && j1->natt == 1 &&
             j1->att[0].state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL && !strcmp(j1->att[0].reason, "worker w1 shut down"),
         "job 1 %s, attempt: %s", coord_state_name(j1->state), j1->att[0].reason);
  CHECKF(j2->state == FOIL__V1__JOB_STATE__JOB_REQUEUED && j2->failures == 1 && j2->natt == 1 &&
             j2->att[0].state == FOIL__V1__JOB_STATE__JOB_NODE_FAIL && strstr(j2->att[0].reason, "said goodbye"),
         "job 2 %s, attempt: %s", coord_state_name(j2->state), j2->att[0].reason);
  /* a pass: no job goes back to the leaving process */
  coord_schedule(C);
  CHECK(quiet(a));
  CHECK(j1->natt == 1 && j2->natt == 1 && j1->failures == 1 && j2->failures == 1);
  /* a new process of the name registers at once and runs both */
  m = reg_from(b, "w1/bbbb", "w1", "host-b", 8);
  CHECKF(m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_REGISTERED, "%s",
         m && m->error ? m->error->message : "no answer");
  if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  CHECK(!w->down && w->session && !strcmp(w->route, "w1/bbbb") && w->slots == 8);
  coord_schedule(C);
  int got = 0;
  for (int k = 0; k < 2; k++) {
    m = pushed(b);
    got += m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ASSIGN && m->assign->restart_count == 1 &&
           (m->assign->job_id == id1 || m->assign->job_id == id2);
    if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  }
  CHECK(got == 2);
  CHECK(j1->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j1->natt == 2);
  /* the first's goodbye again (a resend, late): it is not w1 any more */
  CHECK(goodbye(a, "w1/aaaa", &fp, 1) == 0);
  CHECK(!w->down && w->session && !strcmp(w->route, "w1/bbbb"));
  CHECK(j1->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j1->natt == 2 && j1->failures == 1);
  CHECK(heartbeat(b, "w1/bbbb") == 0);
  CHECK(quiet(a));
  stop();
}

/* ---- one pass that starts thousands of attempts on one worker ------------------------------ */

/* A worker with 4,096 slots and 3,000 queued one-slot jobs: one scheduling
 * pass sends 3,000 Assigns to it before it reads any. The worker socket's
 * send queue had ZeroMQ's default limit of 1,000 messages: the Assign past
 * it failed (EAGAIN), the worker was declared lost ("assign could not be
 * delivered") and every job requeued. Now all start, and all arrive. */
static void test_assign_flood(void) {
  enum { N = 3000 };
  if (fresh("flood")) return;
  void *w = peer("w1");
  CHECK(wp_code(reg(w, "w1", 4096, NULL, 0)) == 0);
  static uint64_t ids[N];
  for (int k = 0; k < N; k++) ids[k] = submit_job("", NULL, 1, NULL, NULL);
  coord_schedule(C);
  int running = 0;
  for (int k = 0; k < N; k++) {
    cjob *j = coord_job(C, ids[k]);
    running += j && j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->failures == 0;
  }
  CHECKF(running == N, "%d of %d jobs running after one pass", running, N);
  int assigns = 0;
  zmq_msg_t f;
  zmq_msg_init(&f);
  while (assigns < N && zmq_msg_recv(&f, w, 0) >= 0) { /* 1 s timeout (peer) */
    Foil__V1__CoordinatorMessage *m = foil__v1__coordinator_message__unpack(NULL, zmq_msg_size(&f), zmq_msg_data(&f));
    assigns += m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ASSIGN;
    if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
  }
  zmq_msg_close(&f);
  CHECKF(assigns == N, "the worker received %d of %d Assigns", assigns, N);
  stop();
}

/* The starts of one pass are recorded together (and, from 16 on, their
 * fences synced together); when that fails, each on its own: a job whose
 * row cannot be written stays PENDING, unassigned, and the others start.
 * Both with 3 starts (fences synced one by one) and with 40. */
static void test_starts_together(void) {
  for (int round = 0; round < 2; round++) {
    int n = round ? 40 : 3;
    if (fresh(round ? "together40" : "together3")) return;
    void *w = peer("w1");
    CHECK(wp_code(reg(w, "w1", 64, NULL, 0)) == 0);
    uint64_t ids[40];
    for (int k = 0; k < n; k++) ids[k] = submit_job("", NULL, 1, NULL, NULL);
    char trig[256];
    snprintf(trig, sizeof trig,
             "CREATE TRIGGER fail_one BEFORE UPDATE ON jobs WHEN NEW.id = %llu BEGIN SELECT RAISE(ABORT, 'injected'); "
             "END", (unsigned long long)ids[1]);
    sql(trig);
    coord_schedule(C);
    int running = 0;
    for (int k = 0; k < n; k++) {
      cjob *j = coord_job(C, ids[k]);
      if (k == 1) CHECKF(j && j->state == FOIL__V1__JOB_STATE__JOB_PENDING && j->natt == 0, "job 2: state %d natt %zu",
                         j ? j->state : -1, j ? j->natt : 0);
      else running += j && j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->natt == 1;
    }
    CHECKF(running == n - 1, "%d of %d jobs running", running, n - 1);
    int assigns = 0;
    uint64_t assigned_bad = 0;
    zmq_msg_t f;
    zmq_msg_init(&f);
    while (assigns < n - 1 && zmq_msg_recv(&f, w, 0) >= 0) {
      Foil__V1__CoordinatorMessage *m = foil__v1__coordinator_message__unpack(NULL, zmq_msg_size(&f), zmq_msg_data(&f));
      if (m && m->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_ASSIGN) {
        assigns++;
        if (m->assign->job_id == ids[1]) assigned_bad = ids[1];
      }
      if (m) foil__v1__coordinator_message__free_unpacked(m, NULL);
    }
    zmq_msg_close(&f);
    CHECKF(assigns == n - 1 && !assigned_bad, "%d Assigns, the unrecorded job's %s", assigns,
           assigned_bad ? "among them" : "not");
    sql("DROP TRIGGER fail_one");
    stop();
    if (start()) return;  /* the store agrees */
    for (int k = 0; k < n; k++) {
      cjob *j = coord_job(C, ids[k]);
      int want = k == 1 ? FOIL__V1__JOB_STATE__JOB_PENDING : FOIL__V1__JOB_STATE__JOB_RUNNING;
      CHECKF(j && j->state == want, "job %d after a restart: state %d", k + 1, j ? j->state : -1);
    }
    stop();
  }
}

/* ---- a Register of more job ends than a frame holds ----------------------------------------- */

/* A worker comes back with more job ends than one 1 MiB frame holds: 3,000
 * attempts, each report with a ~500-byte message, its Register built by the
 * agent's outbox as foil-worker builds it. The Register fits the frame; the
 * jobs it carries end as reported; those it lists by reference stay
 * RUNNING (not NODE_FAILed, though older than the window after which a
 * Register that leaves an attempt out loses it), and so does a heartbeat
 * that lists them; their Finished, sent one by one, end them: every job
 * in the state it ended in, its message its reason, no failure counted. */
static void test_register_many_finished(void) {
  enum { N = 3000 };
  if (fresh("manyfin")) return;
  void *w = peer("w1");
  CHECK(wp_code(reg(w, "w1", N, NULL, 0)) == 0);
  static uint64_t ids[N];
  for (int i = 0; i < N; i += 500) {  /* passes of 500 starts: the Assigns are read between them */
    for (int k = i; k < i + 500 && k < N; k++) ids[k] = submit_job("", NULL, 1, NULL, NULL);
    coord_schedule(C);
    zmq_msg_t f;
    zmq_msg_init(&f);
    while (zmq_msg_recv(&f, w, ZMQ_DONTWAIT) >= 0) {}
    zmq_msg_close(&f);
  }
  outbox *o = NULL;
  CHECK(outbox_new(&o, NULL) == FOIL_OK);
  static const int states[3] = {FOIL__V1__JOB_STATE__JOB_COMPLETED, FOIL__V1__JOB_STATE__JOB_FAILED,
                                FOIL__V1__JOB_STATE__JOB_TIMEOUT};
  size_t started = 0;
  for (int i = 0; i < N; i++) {
    cjob *j = coord_job(C, ids[i]);
    if (!j || j->state != FOIL__V1__JOB_STATE__JOB_RUNNING || j->natt != 1) continue;
    started++;
    j->att[0].assign_mono -= 2 * C->hb_s * C->o.liveness + 1;  /* long assigned: a Register leaving it out loses it */
    char msg[600];
    int len = snprintf(msg, sizeof msg, "job %llu ended: ", (unsigned long long)ids[i]);
    memset(msg + len, 'm', 500), msg[len + 500] = 0;
    Foil__V1__Finished f = FOIL__V1__FINISHED__INIT;
    f.job_id = ids[i], f.token = j->att[0].token, f.state = states[i % 3], f.exit_code = i % 3, f.message = msg;
    f.end_time = log_now();
    CHECK(outbox_add_finished(o, &f, 1000000 + i, NULL) == FOIL_OK);
  }
  CHECKF(started == N, "%zu of %d jobs started", started, N);
  /* the Register, as the agent sends it */
  Foil__V1__Register r = FOIL__V1__REGISTER__INIT;
  r.name = "w1", r.host = "localhost", r.slots = N, r.version = "test";
  Foil__V1__WorkerMessage q = FOIL__V1__WORKER_MESSAGE__INIT;
  q.request_id = ++next_rid;
  q.body_case = FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, q.register_ = &r;
  outbox_register_mem mem;
  size_t left = 0;
  CHECK(outbox_register(o, q.request_id, &r, OUTBOX_REGISTER_BYTES, &mem, &left, NULL) == FOIL_OK && left == 0);
  size_t packed = foil__v1__worker_message__get_packed_size(&q), carried = r.n_finished;
  CHECKF(packed <= COORD_MAX_FRAME, "the register is %zu bytes, over the coordinator's %u", packed, COORD_MAX_FRAME);
  CHECKF(carried > 0 && carried < N && carried + r.n_running == N, "%zu carried, %zu by reference", carried,
         r.n_running);
  feed(0, "w1", &q.base);
  Foil__V1__CoordinatorMessage *a = answer(w, q.request_id);
  CHECK(a && a->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_REGISTERED && a->registered->n_kill == 0);
  if (a) foil__v1__coordinator_message__free_unpacked(a, NULL);
  outbox_register_free(&mem);
  CHECK(outbox_ack_register(o, q.request_id) == (int)carried);
  size_t ended = 0, running = 0;
  for (int i = 0; i < N; i++) {
    cjob *j = coord_job(C, ids[i]);
    ended += j && j->state == states[i % 3];
    running += j && j->state == FOIL__V1__JOB_STATE__JOB_RUNNING && j->failures == 0;
  }
  CHECKF(ended == carried && running == N - carried, "after the register: %zu ended, %zu running (of %zu, %zu)", ended,
         running, carried, N - carried);
  /* a heartbeat lists those not yet acknowledged as running */
  Foil__V1__AttemptRef *refs = calloc(N, sizeof *refs), **ptrs = calloc(N, sizeof *ptrs);
  Foil__V1__Heartbeat h = FOIL__V1__HEARTBEAT__INIT;
  h.running = ptrs, h.n_running = refs && ptrs ? outbox_finished_refs(o, refs, ptrs, N) : 0;
  Foil__V1__WorkerMessage hq = FOIL__V1__WORKER_MESSAGE__INIT;
  hq.body_case = FOIL__V1__WORKER_MESSAGE__BODY_HEARTBEAT, hq.heartbeat = &h;
  a = wp(w, "w1", &hq);
  CHECK(h.n_running == N - carried && a && a->body_case == FOIL__V1__COORDINATOR_MESSAGE__BODY_HEARTBEAT &&
        a->heartbeat->n_kill == 0);
  if (a) foil__v1__coordinator_message__free_unpacked(a, NULL);
  free(refs);
  free(ptrs);
  /* then each on its own */
  size_t acked = 0;
  while (outbox_len(o)) {
    outbox_entry *e = outbox_at(o, 0);
    Foil__V1__WorkerMessage fq = FOIL__V1__WORKER_MESSAGE__INIT;
    fq.body_case = FOIL__V1__WORKER_MESSAGE__BODY_FINISHED, fq.finished = &e->finished;
    acked += wp_code(wp(w, "w1", &fq)) == 0;
    outbox_ack(o, e->request_id);
  }
  CHECKF(acked == N - carried, "%zu of %zu acknowledged", acked, N - carried);
  size_t right = 0;
  for (int i = 0; i < N; i++) {
    cjob *j = coord_job(C, ids[i]);
    char want[256];
    snprintf(want, sizeof want, "job %llu ended: mmm", (unsigned long long)ids[i]);
    right += j && j->state == states[i % 3] && j->exit_code == i % 3 && j->failures == 0 && j->natt == 1 &&
             !strncmp(j->reason, want, strlen(want)) && strlen(j->reason) == 255;
  }
  CHECKF(right == N, "%zu of %d jobs ended as reported", right, N);
  outbox_destroy(&o);
  stop();
}

/* ---- S2. the restart grace counts from the end of the load ---------------------------------- */

static void test_restart_grace(void) {
  if (fresh("grace")) return;
  void *w = peer("w1");
  CHECK(wp_code(reg(w, "w1", 4, NULL, 0)) == 0);
  uint64_t token = 0;
  for (int i = 0; i < 3; i++) running_job(&token);
  stop();
  double before = log_mono();
  if (start()) return;
  double after = log_mono();
  int wi = coord_worker_find(C, "w1");
  CHECK(wi >= 0);
  if (wi < 0) return stop();
  const cworker *x = &C->workers[wi];
  CHECK(!x->session && !x->down);
  /* the window starts once the store is loaded, not when the worker's row
   * was read (before the jobs and attempts: a slow load would eat it and
   * every worker would be DOWN on the first tick) */
  double from = x->last_seen_mono - COORD_RESTART_GRACE_S;
  for (uint64_t id = 1; id <= C->max_id; id++) {
    cjob *j = coord_job(C, id);
    cattempt *a = j ? coord_current(j) : NULL;
    CHECK(a != NULL);
    if (a) CHECKF(from >= a->assign_mono, "the grace of w1 counts from %.9f, before attempt %u of job %llu "
                  "was loaded (%.9f)", from, a->n, (unsigned long long)id, a->assign_mono);
  }
  CHECK(from >= before && from <= after);
  stop();
}

/* ---- 10. a submission memory cannot take ---------------------------------------------------- */

static void test_submit_no_memory(void) {
  if (fresh("oom")) return;
  /* active full, and no realloc can grow it */
  size_t n = C->nactive, cap = C->active_cap;
  C->nactive = C->active_cap = SIZE_MAX / sizeof *C->active;
  int rc = 0;
  uint64_t id = submit_job("", "oom-1", 1, NULL, &rc);
  C->nactive = n, C->active_cap = cap;
  CHECKF(rc == FOIL_ENOMEM && id == 0, "rc %d id %llu", rc, (unsigned long long)id);
  uint64_t found = 1;
  CHECK(store_find_submission(C->st, "", "oom-1", &found, NULL) == 0 && found == 0);  /* not committed */
  /* memory again: the same submission is a new job, and scheduled */
  id = submit_job("", "oom-1", 1, NULL, &rc);
  CHECK(rc == 0 && id > 0);
  int in_active = 0;
  for (size_t k = 0; k < C->nactive; k++) in_active |= C->active[k] == id;
  CHECK(in_active);
  stop();
}

int main(void) {
  if (rig_init("coord")) return 1;
  RUN(test_wide_gang);
  RUN(test_long_placement);
  RUN(test_worker_index);
  RUN(test_worker_names);
  RUN(test_finished_durable);
  RUN(test_started_durable);
  RUN(test_cancel_drain_durable);
  RUN(test_head_only);
  RUN(test_utf8_helpers);
  RUN(test_utf8_reasons);
  RUN(test_logs_nofollow);
  RUN(test_fence_nofollow);
  RUN(test_starts_together);
  RUN(test_deval_confined);
  RUN(test_submit_no_memory);
  RUN(test_reregister_race);
  RUN(test_duplicate_name);
  RUN(test_goodbye);
  RUN(test_not_started);
  RUN(test_assign_flood);
  RUN(test_register_many_finished);
  RUN(test_restart_grace);
  if (rig_done()) return 1;
  TEST_EXIT();
}
