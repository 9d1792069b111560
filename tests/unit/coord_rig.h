/* coord_rig.h — a real coordinator for the unit tests that drive it as its
 * loop does (test_coord.c, test_coord_list.c, test_submit_ids.c): coord_new
 * on a data root below a fresh directory, inproc endpoints (or tcp control,
 * for the CLI), one DEALER "cli" on the control socket, requests handed to
 * coord_api_handle as received from "cli" and the replies read back on it,
 * submissions through coord_submit, SQL on coordinator.db from a second
 * connection. One coordinator at a time, in these static globals:
 *   rig_keep_final_s  the start's keep_final_s (default 0: keep all)
 *   base     the directory of the test's data roots (rig_init makes it,
 *            rig_done removes it)
 *   root     the data root of the coordinator (use_root picks it)
 *   C        the coordinator (start: open, stop: destroy)
 *   cli      the control client; socks: every socket stop closes (cli, and
 *            those a test adds, such as workers' DEALERs)
 * The log goes to /dev/null, or to $FOIL_TEST_COORD_LOG.
 * (tests/fuzz/coord_harness.h is the fuzzers' own: one coordinator per
 * process, never stopped, and any error aborts.) */
#ifndef FOIL_TESTS_UNIT_COORD_RIG_H
#define FOIL_TESTS_UNIT_COORD_RIG_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/client.h"
#include "common/fileio.h"
#include "coordinator/coord_int.h"
#include "tests/test.h"

enum { RIG_MAX_SOCKS = 80 };

static char base[512], root[600];
static coord *C;
static FILE *coord_log_file;
static void *cli;
static void *socks[RIG_MAX_SOCKS];
static int nsocks, ninst;
static uint64_t next_rid = 100;
/* coord_opts.keep_final_s of the next start (0: every job stays in memory) */
static double rig_keep_final_s;

/* Makes base (foil-test-NAME-XXXXXX on tmpfs when there is one: the store
 * fsyncs every commit) and opens the coordinators' log; 0, else -1 having
 * said why. */
static inline int rig_init(const char *name) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  snprintf(base, sizeof base, "%s/foil-test-%s-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                                        : tmp && *tmp                 ? tmp
                                                                                      : "/tmp",
           name);
  if (!mkdtemp(base)) {
    perror("mkdtemp");
    return -1;
  }
  coord_log_file = getenv("FOIL_TEST_COORD_LOG") ? fopen(getenv("FOIL_TEST_COORD_LOG"), "w") : fopen("/dev/null", "w");
  return 0;
}

/* Closes the log and removes base; 0, else -1. */
static inline int rig_done(void) {
  fclose(coord_log_file);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  return system(cmd) ? -1 : 0;
}

/* The data root base/NAME (made if new) for the next start. */
static inline void use_root(const char *name) {
  snprintf(root, sizeof root, "%s/%s", base, name);
  foil_err err = {0};
  foil_mkdirs(root, &err);
}

/* Waits until the ROUTER `router` routes to the DEALER s (its handshake is
 * done in the I/O thread): s says hello, the router receives it. */
static inline void joined(void *router, void *s) {
  zmq_send(s, "", 0, 0);
  int ms = 2000;
  zmq_setsockopt(router, ZMQ_RCVTIMEO, &ms, sizeof ms);
  zmq_msg_t f;
  zmq_msg_init(&f);
  int more = 1, got = 0;
  while (more && zmq_msg_recv(&f, router, 0) >= 0) {
    got++;
    more = zmq_msg_more(&f);
  }
  zmq_msg_close(&f);
  CHECK(got == 2);
}

/* Opens the coordinator of root, as after a restart, and connects cli;
 * control on tcp when tcp (for the CLI), else inproc; cli's receive queue
 * holds rcvhwm messages (0: ZeroMQ's default). -1, C NULL, when it does
 * not start. */
static inline int start_with(int tcp, int rcvhwm) {
  char ctl[64], wrk[64];
  snprintf(ctl, sizeof ctl, tcp ? "tcp://127.0.0.1:*" : "inproc://rig-ctl-%d", ninst);
  snprintf(wrk, sizeof wrk, "inproc://rig-wrk-%d", ninst++);
  coord_opts o = {.root = root, .control = ctl, .workers = wrk, .log = coord_log_file,
                  .keep_final_s = rig_keep_final_s};
  foil_err err = {0};
  C = NULL;
  CHECKF(coord_new(&C, &o, &err) == 0, "the data root does not load: %s", err.msg);
  nsocks = 0;
  if (!C) return -1;
  cli = zmq_socket(C->zctx, ZMQ_DEALER);
  zmq_setsockopt(cli, ZMQ_ROUTING_ID, "cli", 3);
  if (rcvhwm) zmq_setsockopt(cli, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
  zmq_connect(cli, C->ctl_ep);
  socks[nsocks++] = cli;
  joined(C->ctl, cli);
  return 0;
}

static inline int start(void) { return start_with(0, 0); }

/* A fresh data root base/NAME, and its coordinator started. */
static inline int fresh(const char *name) {
  use_root(name);
  return start();
}

/* Closes every socket in socks (cli too) and destroys the coordinator. */
static inline void stop(void) {
  int zero = 0;
  for (int i = 0; i < nsocks; i++) {
    zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(socks[i]);
  }
  nsocks = 0;
  coord_destroy(&C);
}

/* A worker's socket, connected to the worker port as `name` (its routing id). */
static inline void *peer(const char *name) {
  void *s = zmq_socket(C->zctx, ZMQ_DEALER);
  zmq_setsockopt(s, ZMQ_ROUTING_ID, name, strlen(name));
  int ms = 1000;
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &ms, sizeof ms);
  zmq_connect(s, C->wrk_ep);
  CHECK(nsocks < RIG_MAX_SOCKS);
  socks[nsocks++] = s;
  joined(C->wrk, s);
  return s;
}

/* Hands msg to a handler as received from the routing id `from` (api: the
 * control API, else the worker protocol). Before a control request the
 * ROUTER takes in ZeroMQ's commands, as coord_run's poll has it do each
 * turn: among them a reader's "read so far" that frees room under the send
 * limit (without them a socket that only sends sees its peer's queue full
 * after 16 replies). */
static inline void feed(int api, const char *from, const ProtobufCMessage *msg) {
  if (api) {
    int events = 0;
    size_t elen = sizeof events;
    zmq_getsockopt(C->ctl, ZMQ_EVENTS, &events, &elen);
  }
  size_t len = protobuf_c_message_get_packed_size(msg);
  wire_msg m;
  memset(&m, 0, sizeof m);
  zmq_msg_init_size(&m.route[0], strlen(from));
  memcpy(zmq_msg_data(&m.route[0]), from, strlen(from));
  m.nroute = 1;
  zmq_msg_init_size(&m.body, len);
  protobuf_c_message_pack(msg, zmq_msg_data(&m.body));
  m.has_body = 1;
  foil_err e = {0};
  if (api) coord_api_handle(C, &m, 0, &e);
  else coord_wp_handle(C, &m, 0, &e);
  wire_msg_close(&m);
}

/* Hands control request q (its request id set here) to the API as from
 * "cli", the local user (admin, no name); the reply is left on cli. */
static inline void api_send(Foil__V1__Request *q) {
  q->request_id = ++next_rid;
  feed(1, "cli", &q->base);
}

/* The next reply on cli within ms, or NULL; *size (when size): its bytes. */
static inline Foil__V1__Reply *recv_reply(int ms, size_t *size) {
  zmq_setsockopt(cli, ZMQ_RCVTIMEO, &ms, sizeof ms);
  zmq_msg_t f;
  zmq_msg_init(&f);
  Foil__V1__Reply *r = NULL;
  if (zmq_msg_recv(&f, cli, 0) >= 0) {
    r = foil__v1__reply__unpack(NULL, zmq_msg_size(&f), zmq_msg_data(&f));
    if (size) *size = zmq_msg_size(&f);
  }
  zmq_msg_close(&f);
  return r;
}

/* A control API request from "cli"; returns its reply (the caller frees
 * it), *size (when size) the reply's bytes. */
static inline Foil__V1__Reply *api_sized(Foil__V1__Request *q, size_t *size) {
  api_send(q);
  Foil__V1__Reply *r = recv_reply(1000, size);
  CHECK(r && r->request_id == q->request_id);
  return r;
}

static inline Foil__V1__Reply *api(Foil__V1__Request *q) { return api_sized(q, NULL); }

/* Frees reply r; 0 if it is no Error, else its code (foil's), -1 for none.
 * msg (when msg): the Error's message, else "". */
static inline int api_error(Foil__V1__Reply *r, char *msg, size_t n) {
  int code = !r ? -1 : r->body_case == FOIL__V1__REPLY__BODY_ERROR ? client_code_to_err(r->error->code) : 0;
  if (msg) snprintf(msg, n, "%s", r && r->body_case == FOIL__V1__REPLY__BODY_ERROR ? r->error->message : "");
  if (r) foil__v1__reply__free_unpacked(r, NULL);
  return code;
}

static inline int api_code(Foil__V1__Reply *r) { return api_error(r, NULL, 0); }

static inline int cancel(uint64_t job) {
  Foil__V1__CancelRequest x = FOIL__V1__CANCEL_REQUEST__INIT;
  x.job_id = job;
  Foil__V1__Request q = FOIL__V1__REQUEST__INIT;
  q.body_case = FOIL__V1__REQUEST__BODY_CANCEL, q.cancel = &x;
  return api_code(api(&q));
}

/* Submits the command job `true` of `ranks` ranks for submitter who (""
 * the local user) with submission id sid (NULL: none) through
 * coord_submit, as the API and the refresh loop submit; its id, 0 if
 * refused. *existing (when existing): sid named a job of who's already.
 * *rc_out (when rc_out): coord_submit's result, else it is CHECKed. */
static inline uint64_t submit_job(const char *who, const char *sid, uint32_t ranks, int *existing, int *rc_out) {
  char *argv[] = {"true"};
  Foil__V1__Resources r = FOIL__V1__RESOURCES__INIT;
  r.ranks = ranks;
  Foil__V1__JobSpec s = FOIL__V1__JOB_SPEC__INIT;
  s.kind = "command", s.spec_json = "{}", s.argv = argv, s.n_argv = 1, s.resources = &r;
  uint64_t id = 0;
  int ex = 0;
  foil_err err = {0};
  int rc = coord_submit(C, &s, sid ? sid : "", who, &id, &ex, &err);
  if (rc_out) *rc_out = rc;
  else CHECKF(rc == 0, "\"%s\"'s submit of \"%s\": %s", who, sid ? sid : "", err.msg);
  if (existing) *existing = ex;
  return id;
}

/* root's coordinator.db on a second connection (as another program would
 * open it), or NULL. */
static inline sqlite3 *db_open(void) {
  char p[700];
  snprintf(p, sizeof p, "%s/coordinator.db", root);
  sqlite3 *db = NULL;
  if (sqlite3_open(p, &db) != SQLITE_OK) {
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

/* Runs SQL text on root's coordinator.db from a second connection (such as
 * triggers that make the coordinator's writes fail); 0 if it ran, else
 * SQLite's error, its message in msg (n bytes) when msg. */
static inline int sql_run(const char *text, char *msg, size_t n) {
  if (msg) snprintf(msg, n, "the database does not open");
  sqlite3 *db = db_open();
  if (!db) return SQLITE_CANTOPEN;
  char *m = NULL;
  int rc = sqlite3_exec(db, text, NULL, NULL, &m);
  if (msg) snprintf(msg, n, "%s", m ? m : "");
  sqlite3_free(m);
  sqlite3_close(db);
  return rc;
}

/* sql_run, CHECKed to succeed. */
static inline void sql(const char *text) {
  char msg[512];
  CHECKF(sql_run(text, msg, sizeof msg) == SQLITE_OK, "%s: %s", text, msg);
}

#endif
