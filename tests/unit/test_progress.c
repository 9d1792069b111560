/* test_progress.c — rank 0's progress channel (a real PULL socket stands in
 * for the worker) and the attempt fence before checkpoints. */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/wire.h"
#include "foil/v1/worker.pb-c.h"
#include "tests/test.h"
#include "worker/run/progress.h"

static char dir[1024];

static void write_attempt(const char *text) {
  char p[1100];
  snprintf(p, sizeof p, "%s/attempt", dir);
  FILE *f = fopen(p, "w");
  fputs(text, f);
  fclose(f);
}

static void test_fence(void) {
  foil_err err = {0};
  char p[1100];
  snprintf(p, sizeof p, "%s/attempt", dir);
  unlink(p);
  CHECK(progress_fenced(dir, "12", &err) == FOIL_OK); /* no file: no fence */
  CHECK(progress_fenced(dir, NULL, &err) == FOIL_OK);
  write_attempt("12\n");
  CHECK(progress_fenced(dir, "12", &err) == FOIL_OK);
  CHECK(progress_fenced(dir, "", &err) == FOIL_OK); /* not in a cluster */
  write_attempt("15\n");
  CHECK(progress_fenced(dir, "12", &err) == FOIL_EABORTED);
  CHECKF(!strcmp(err.msg, "attempt 12 was replaced by 15: not writing a checkpoint"), "%s", err.msg);
  write_attempt("");
  CHECK(progress_fenced(dir, "12", &err) == FOIL_OK); /* being rewritten */
  write_attempt("15");
  CHECK(progress_fenced(dir, "15", &err) == FOIL_OK); /* no newline */
  CHECK(progress_fenced(dir, "x", &err) == FOIL_EINVAL);
}

static void test_noop(void) {
  unsetenv("FOIL_PROGRESS");
  progress *p = NULL;
  CHECK(progress_open(&p, NULL) == FOIL_OK && p);
  CHECK(!progress_active(p));
  CHECK(progress_send(p, 1, 2, "x", NULL) == 0);
  CHECK(progress_send(NULL, 1, 2, "x", NULL) == 0);
  progress_destroy(&p);
  CHECK(!p);
  setenv("FOIL_PROGRESS", "nonsense", 1);
  foil_err err = {0};
  CHECK(progress_open(&p, &err) == FOIL_EINVAL && !p);
  unsetenv("FOIL_PROGRESS");
}

static void test_send(void) {
  void *ctx = zmq_ctx_new(), *pull = zmq_socket(ctx, ZMQ_PULL);
  char ep[256];
  size_t len = sizeof ep;
  CHECK(zmq_bind(pull, "tcp://127.0.0.1:*") == 0);
  zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, ep, &len);
  setenv("FOIL_PROGRESS", ep, 1);
  setenv("FOIL_JOB_ID", "7", 1);
  setenv("FOIL_ATTEMPT_TOKEN", "42", 1);
  progress *p = NULL;
  CHECK(progress_open(&p, NULL) == FOIL_OK && progress_active(p));
  /* the connection takes a moment; updates before it are dropped */
  int sent = 0;
  for (int i = 0; i < 200 && !sent; i++) {
    sent = progress_send(p, 40, 100, "step 40/100", "{\"loss\":0.5}");
    if (!sent) usleep(10000);
  }
  CHECK(sent);
  int timeout = 2000;
  zmq_setsockopt(pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
  wire_msg m;
  CHECK(wire_recv(pull, &m, 0, 1 << 16, 0, NULL) == FOIL_OK);
  Foil__V1__ProgressUpdate *u = foil__v1__progress_update__unpack(NULL, zmq_msg_size(&m.body), zmq_msg_data(&m.body));
  wire_msg_close(&m);
  CHECK(u && u->job_id == 7 && u->token == 42 && u->progress);
  if (u && u->progress) {
    CHECK(u->progress->value == 40 && u->progress->total == 100);
    CHECK(!strcmp(u->progress->message, "step 40/100") && !strcmp(u->progress->metrics_json, "{\"loss\":0.5}"));
  }
  if (u) foil__v1__progress_update__free_unpacked(u, NULL);
  /* never blocks, even with nobody reading */
  for (int i = 0; i < 10000; i++) progress_send(p, i, 0, NULL, NULL);
  progress_destroy(&p);
  zmq_close(pull);
  zmq_ctx_term(ctx);
  unsetenv("FOIL_PROGRESS");
}

int main(void) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/progress", tmp ? tmp : "/tmp");
  mkdir(dir, 0755);
  RUN(test_fence);
  RUN(test_noop);
  RUN(test_send);
  TEST_EXIT();
}
