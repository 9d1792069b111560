/* coord_harness.h — an in-memory coordinator for the fuzz targets of the
 * control API and the worker protocol: a real coord (coord_new) whose data
 * root is a fresh temporary directory (SQLite store included), bound to
 * inproc endpoints, with one DEALER client on each socket (identities
 * "fuzz-client" and "fuzz-worker/f0221", a worker's NAME/INSTANCE) so that
 * replies go somewhere and are drained. Inputs are handed to the handlers (coord_api_handle,
 * coord_wp_handle) as the coordinator's loop would hand a received frame,
 * then one scheduling pass runs. The worker "fuzz-worker" is registered
 * and one pretrain and one command job are submitted at start, so inputs
 * can reach the started/progress/finished paths of a running attempt.
 * Test code only; one coordinator per process, never destroyed (the
 * process ends with the fuzzer). */
#ifndef FOIL_TESTS_FUZZ_COORD_HARNESS_H
#define FOIL_TESTS_FUZZ_COORD_HARNESS_H

#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "coordinator/coord_int.h"

#define HARNESS_CLIENT "fuzz-client"
#define HARNESS_WORKER "fuzz-worker"                /* the worker's name (Register.name in the seeds) */
#define HARNESS_WORKER_ROUTE HARNESS_WORKER "/f0221" /* its routing id, NAME/INSTANCE */

static coord *harness_c;
static void *harness_cli, *harness_wrk;
static char harness_root[1024];
static FILE *harness_log;
static unsigned long harness_inputs;

/* What was made durable must load: a second coordinator opens the same data
 * root (as after a restart) and must start. Run for the first inputs (so a
 * replayed regression input is checked) and every 512th after. */
static void harness_check_restart(void) {
  static int n;
  char ctl[64], wrk[64];
  snprintf(ctl, sizeof ctl, "inproc://fuzz-ctl2-%d", n);
  snprintf(wrk, sizeof wrk, "inproc://fuzz-wrk2-%d", n++);
  coord_opts o = {.root = harness_root, .control = ctl, .workers = wrk, .log = harness_log};
  coord *c2 = NULL;
  foil_err err = {0};
  if (coord_new(&c2, &o, &err)) {
    fprintf(stderr, "harness: the data root does not load again: %s\n", err.msg);
    abort();
  }
  coord_destroy(&c2);
}

/* A received message as wire_recv leaves it: routing id, then body. */
static void harness_msg(wire_msg *m, const char *peer, const uint8_t *data, size_t size) {
  memset(m, 0, sizeof *m);
  zmq_msg_init_size(&m->route[0], strlen(peer));
  memcpy(zmq_msg_data(&m->route[0]), peer, strlen(peer));
  m->nroute = 1;
  zmq_msg_init_size(&m->body, size);
  if (size) memcpy(zmq_msg_data(&m->body), data, size);
  m->has_body = 1;
}

static void harness_drain(void) {
  char buf[256];
  while (zmq_recv(harness_cli, buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {}
  while (zmq_recv(harness_wrk, buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {}
}

/* Hands data to the control API (api 1) or the worker protocol (api 0). */
static void harness_feed(int api, const uint8_t *data, size_t size) {
  wire_msg m;
  foil_err e = {0};
  int rc = FOIL_OK;
  harness_msg(&m, api ? HARNESS_CLIENT : HARNESS_WORKER_ROUTE, data, size);
  if (size > COORD_MAX_FRAME) rc = foil_err_set(&e, FOIL_ENOMEM, "over the limit");
  if (api) coord_api_handle(harness_c, &m, rc, &e);
  else coord_wp_handle(harness_c, &m, rc, &e);
  wire_msg_close(&m);
  coord_schedule(harness_c);
  harness_drain();
  if (harness_inputs++ < 64 || harness_inputs % 512 == 0) harness_check_restart();
}

static void harness_feed_msg(int api, const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(len ? len : 1);
  protobuf_c_message_pack(msg, buf);
  harness_feed(api, buf, len);
  free(buf);
}

static void harness_submit(const char *kind, const char *spec_json, char **argv, size_t argc) {
  Foil__V1__JobSpec s = FOIL__V1__JOB_SPEC__INIT;
  s.kind = (char *)kind, s.spec_json = (char *)spec_json, s.argv = argv, s.n_argv = argc;
  Foil__V1__SubmitRequest sr = FOIL__V1__SUBMIT_REQUEST__INIT;
  sr.spec = &s;
  Foil__V1__Request q = FOIL__V1__REQUEST__INIT;
  q.request_id = 1, q.body_case = FOIL__V1__REQUEST__BODY_SUBMIT, q.submit = &sr;
  harness_feed_msg(1, &q.base);
}

static int harness_init(void) {
  if (harness_c) return 0;
  const char *tmp = getenv("FOIL_TEST_TMP");
  char dir[1024];
  /* tmpfs when there is one: the store fsyncs every submit */
  snprintf(dir, sizeof dir, "%s/foil-fuzz-coord-XXXXXX",
           tmp && *tmp ? tmp : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (tmp && *tmp) {
    char mk[1100];
    snprintf(mk, sizeof mk, "%s", tmp);
    foil_err e = {0};
    foil_mkdirs(mk, &e);
  }
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    abort();
  }
  static char ctl[64], wrk[64];
  snprintf(ctl, sizeof ctl, "inproc://fuzz-ctl-%d", (int)getpid());
  snprintf(wrk, sizeof wrk, "inproc://fuzz-wrk-%d", (int)getpid());
  harness_log = fopen("/dev/null", "w");
  snprintf(harness_root, sizeof harness_root, "%s", dir);
  coord_opts o = {.root = harness_root, .control = ctl, .workers = wrk, .log = harness_log};
  foil_err err = {0};
  if (coord_new(&harness_c, &o, &err)) {
    fprintf(stderr, "harness: %s\n", err.msg);
    abort();
  }
  harness_cli = zmq_socket(harness_c->zctx, ZMQ_DEALER);
  harness_wrk = zmq_socket(harness_c->zctx, ZMQ_DEALER);
  zmq_setsockopt(harness_cli, ZMQ_ROUTING_ID, HARNESS_CLIENT, strlen(HARNESS_CLIENT));
  zmq_setsockopt(harness_wrk, ZMQ_ROUTING_ID, HARNESS_WORKER_ROUTE, strlen(HARNESS_WORKER_ROUTE));
  int zero = 0;
  zmq_setsockopt(harness_cli, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(harness_wrk, ZMQ_LINGER, &zero, sizeof zero);
  if (zmq_connect(harness_cli, ctl) || zmq_connect(harness_wrk, wrk)) abort();
  /* the sockets' handshakes complete in the I/O thread */
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
  Foil__V1__Register r = FOIL__V1__REGISTER__INIT;
  r.name = HARNESS_WORKER, r.host = "localhost", r.slots = 4, r.version = "fuzz";
  Foil__V1__WorkerMessage wm = FOIL__V1__WORKER_MESSAGE__INIT;
  wm.request_id = 1, wm.body_case = FOIL__V1__WORKER_MESSAGE__BODY_REGISTER, wm.register_ = &r;
  harness_feed_msg(0, &wm.base);
  harness_submit("pretrain", "{\"steps\": 1}", NULL, 0);
  char *argv[] = {"true"};
  harness_submit("command", "{}", argv, 1);
  return 0;
}

#endif
