/* test_outbox.c — the worker's un-acknowledged reports: acks by request
 * id, a register's Registered, drops of a replaced attempt, and a Register
 * of more reports than a frame holds. */
#include <stdlib.h>
#include <string.h>

#include "tests/test.h"
#include "worker/agent/outbox.h"

static void add_fin(outbox *o, uint64_t job, uint64_t token, uint64_t id) {
  Foil__V1__Finished f = FOIL__V1__FINISHED__INIT;
  f.job_id = job, f.token = token, f.state = FOIL__V1__JOB_STATE__JOB_COMPLETED, f.message = "exit code 0";
  CHECK(outbox_add_finished(o, &f, id, NULL) == FOIL_OK);
}

static void test_ack(void) {
  outbox *o = NULL;
  CHECK(outbox_new(&o, NULL) == FOIL_OK);
  Foil__V1__Started s = FOIL__V1__STARTED__INIT;
  s.job_id = 1, s.token = 10, s.pid = 77, s.resume_from = "/x/step_5.h5";
  CHECK(outbox_add_started(o, &s, 100, NULL) == FOIL_OK);
  add_fin(o, 1, 10, 101);
  add_fin(o, 2, 20, 102);
  CHECK(outbox_len(o) == 3);
  CHECK(outbox_at(o, 0)->kind == OUTBOX_STARTED && !strcmp(outbox_at(o, 0)->started.resume_from, "/x/step_5.h5"));
  CHECK(outbox_find(o, 102) && outbox_find(o, 102)->finished.job_id == 2);
  CHECK(outbox_ack(o, 999) == 0);
  CHECK(outbox_ack(o, 100) == 1);
  CHECK(outbox_len(o) == 2 && outbox_at(o, 0)->request_id == 101); /* order kept */
  CHECK(outbox_ack(o, 100) == 0);                                  /* a second ack is harmless */
  outbox_destroy(&o);
  CHECK(o == NULL);
}

/* Register.finished of the outbox, no size limit reached. */
static int reg_with(outbox *o, uint64_t id, Foil__V1__Register *r, outbox_register_mem *mem) {
  Foil__V1__Register init = FOIL__V1__REGISTER__INIT;
  *r = init;
  r->name = "w1", r->host = "h";
  size_t left = 0;
  int rc = outbox_register(o, id, r, 1u << 20, mem, &left, NULL);
  CHECK(left == 0);
  return rc;
}

static void test_register(void) {
  outbox *o = NULL;
  outbox_new(&o, NULL);
  Foil__V1__Started s = FOIL__V1__STARTED__INIT;
  s.job_id = 3, s.token = 30;
  outbox_add_started(o, &s, 1, NULL);
  add_fin(o, 1, 10, 2);
  add_fin(o, 2, 20, 3);
  Foil__V1__Register r;
  outbox_register_mem mem;
  CHECK(reg_with(o, 55, &r, &mem) == FOIL_OK);
  CHECK(r.n_finished == 2 && r.finished[0]->job_id == 1 && r.finished[1]->job_id == 2 && r.n_running == 0);
  outbox_register_free(&mem);
  add_fin(o, 4, 40, 4); /* ended after the register went out */
  CHECK(outbox_ack_register(o, 54) == 0);
  CHECK(outbox_ack_register(o, 55) == 2);
  CHECK(outbox_len(o) == 2 && outbox_at(o, 0)->kind == OUTBOX_STARTED && outbox_at(o, 1)->finished.job_id == 4);
  outbox_destroy(&o);
  outbox_new(&o, NULL);
  CHECK(reg_with(o, 1, &r, &mem) == FOIL_OK && !r.finished && !r.n_finished && !r.running && !r.n_running);
  outbox_register_free(&mem);
  outbox_destroy(&o);
}

/* More reports than one frame holds: the oldest go whole, every other one
 * by reference after the attempts still running, the whole within the
 * limit; a Registered acknowledges only those carried. Messages are kept
 * to OUTBOX_MAX_MESSAGE bytes, cut at a character. */
static void test_register_limit(void) {
  outbox *o = NULL;
  outbox_new(&o, NULL);
  enum { N = 5000 };
  static char text[3000];
  memset(text, 'x', sizeof text - 1);
  memcpy(text + OUTBOX_MAX_MESSAGE - 1, "\xc3\xa9", 2);  /* a 2-byte character across the cut */
  for (int i = 0; i < N; i++) {
    Foil__V1__Finished f = FOIL__V1__FINISHED__INIT;
    f.job_id = 1000 + i, f.token = 7000000 + i, f.state = FOIL__V1__JOB_STATE__JOB_FAILED, f.message = text;
    CHECK(outbox_add_finished(o, &f, 100 + i, NULL) == FOIL_OK);
  }
  CHECK(strlen(outbox_at(o, 0)->finished.message) == OUTBOX_MAX_MESSAGE - 1);
  Foil__V1__AttemptRef run = FOIL__V1__ATTEMPT_REF__INIT, *runp = &run;
  run.job_id = 1, run.token = 2;
  Foil__V1__Register r = FOIL__V1__REGISTER__INIT;
  r.name = "w1", r.host = "h", r.running = &runp, r.n_running = 1;
  outbox_register_mem mem;
  size_t left = 1, max = 1u << 20;
  CHECK(outbox_register(o, 9, &r, max, &mem, &left, NULL) == FOIL_OK && left == 0);
  size_t packed = foil__v1__register__get_packed_size(&r);
  CHECKF(packed <= max && packed > max - 600, "%zu bytes", packed);  /* full: not one more report fits */
  CHECKF(r.n_finished > 1500 && r.n_finished + r.n_running == N + 1, "%zu + %zu", r.n_finished, r.n_running);
  CHECK(r.n_running && r.running[0] == &run);
  int order = 1;
  for (size_t i = 0; i < r.n_finished; i++) order &= r.finished[i]->job_id == 1000 + i;
  for (size_t i = 1; i < r.n_running; i++) order &= r.running[i]->job_id == 1000 + r.n_finished + i - 1 &&
                                                    r.running[i]->token == 7000000 + r.n_finished + i - 1;
  CHECK(order);
  size_t carried = r.n_finished;
  outbox_register_free(&mem);
  CHECK(outbox_ack_register(o, 9) == (int)carried && outbox_len(o) == N - carried);
  /* a heartbeat lists the rest */
  Foil__V1__AttemptRef *refs = calloc(N, sizeof *refs), **ptrs = calloc(N, sizeof *ptrs);
  CHECK(outbox_finished_refs(o, refs, ptrs, N) == N - carried && ptrs[0]->job_id == 1000 + carried);
  /* acks in a burst, then the order of what is left */
  for (size_t i = carried; i < N; i += 2) CHECK(outbox_ack(o, 100 + i) == 1);
  CHECK(outbox_len(o) == (N - carried) / 2 && outbox_at(o, 0)->request_id == 100 + carried + 1 &&
        outbox_at(o, 1)->request_id == 100 + carried + 3);
  /* a limit that not even the references meet: the oldest are left out */
  Foil__V1__Register r2 = FOIL__V1__REGISTER__INIT;
  r2.name = "w1", r2.host = "h";
  CHECK(outbox_register(o, 10, &r2, 2000, &mem, &left, NULL) == FOIL_OK);
  CHECKF(left > 0 && r2.n_finished == 0 && left + r2.n_running == outbox_len(o) &&
         foil__v1__register__get_packed_size(&r2) <= 2000, "%zu left out", left);
  outbox_register_free(&mem);
  free(refs);
  free(ptrs);
  outbox_destroy(&o);
}

static void test_drop(void) {
  outbox *o = NULL;
  outbox_new(&o, NULL);
  Foil__V1__Started s = FOIL__V1__STARTED__INIT;
  s.job_id = 1, s.token = 10;
  outbox_add_started(o, &s, 1, NULL);
  add_fin(o, 1, 10, 2);
  add_fin(o, 1, 11, 3);
  CHECK(outbox_drop(o, 1, 10) == 2);
  CHECK(outbox_len(o) == 1 && outbox_at(o, 0)->finished.token == 11);
  outbox_destroy(&o);
}

int main(void) {
  RUN(test_ack);
  RUN(test_register);
  RUN(test_register_limit);
  RUN(test_drop);
  TEST_EXIT();
}
