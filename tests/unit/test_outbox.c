/* test_outbox.c — the worker's un-acknowledged reports: acks by request
 * id, a register's Registered, drops of a replaced attempt. */
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

static void test_register(void) {
  outbox *o = NULL;
  outbox_new(&o, NULL);
  Foil__V1__Started s = FOIL__V1__STARTED__INIT;
  s.job_id = 3, s.token = 30;
  outbox_add_started(o, &s, 1, NULL);
  add_fin(o, 1, 10, 2);
  add_fin(o, 2, 20, 3);
  Foil__V1__Finished **fin = NULL;
  size_t n = 0;
  CHECK(outbox_finished_for_register(o, 55, &fin, &n, NULL) == FOIL_OK);
  CHECK(n == 2 && fin[0]->job_id == 1 && fin[1]->job_id == 2);
  free(fin);
  add_fin(o, 4, 40, 4); /* ended after the register went out */
  CHECK(outbox_ack_register(o, 54) == 0);
  CHECK(outbox_ack_register(o, 55) == 2);
  CHECK(outbox_len(o) == 2 && outbox_at(o, 0)->kind == OUTBOX_STARTED && outbox_at(o, 1)->finished.job_id == 4);
  outbox_destroy(&o);
  outbox_new(&o, NULL);
  CHECK(outbox_finished_for_register(o, 1, &fin, &n, NULL) == FOIL_OK && !fin && !n);
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
  RUN(test_drop);
  TEST_EXIT();
}
