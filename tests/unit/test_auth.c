/* test_auth.c — common/auth: key files (written, read back, malformed ones
 * refused), the loopback rule without CURVE, and the ZAP handler in one
 * process: an allow-listed key's messages carry its role and name, an
 * unknown key's never arrive, a reload adds a key, a worker port admits
 * worker keys only, one public key under two identities is refused; key
 * files that are FIFOs or too big are refused. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/auth.h"
#include "tests/test.h"

static char dir[512];

static void path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static void write_text(const char *name, const char *text, int mode) {
  char p[700];
  path(p, sizeof p, name);
  FILE *f = fopen(p, "w");
  fputs(text, f);
  fclose(f);
  chmod(p, (mode_t)mode);
}

static void test_files(void) {
  foil_err e = {0};
  CHECK(auth_keys_gen(dir, "alice", AUTH_SUBMITTER, &e) == FOIL_OK);
  CHECK(auth_keys_gen(dir, "alice", AUTH_SUBMITTER, &e) == FOIL_EEXIST);
  CHECK(auth_keys_gen(dir, "../x", AUTH_READER, &e) == FOIL_EINVAL);
  char p[700];
  struct stat st;
  path(p, sizeof p, "alice.key_secret");
  CHECK(!stat(p, &st) && (st.st_mode & 0777) == 0600);
  auth_cert sec, pub;
  CHECK(auth_cert_load(p, 1, &sec, &e) == FOIL_OK);
  path(p, sizeof p, "alice.key");
  CHECK(auth_cert_load(p, 0, &pub, &e) == FOIL_OK);
  CHECK(!strcmp(sec.pub, pub.pub) && !strcmp(pub.name, "alice") && pub.role == AUTH_SUBMITTER && !pub.sec[0]);
  CHECK(auth_cert_load(p, 1, &pub, &e) == FOIL_EINVAL);  /* no secret in a public file */
  /* a secret others may read */
  char text[512];
  snprintf(text, sizeof text, "name = a\nrole = admin\npublic-key = %s\nsecret-key = %s\n", sec.pub, sec.sec);
  write_text("open.key_secret", text, 0644);
  path(p, sizeof p, "open.key_secret");
  CHECK(auth_cert_load(p, 1, &pub, &e) == FOIL_EPERM);
  /* a public key that is not the secret's */
  char other[41], osec[41];
  zmq_curve_keypair(other, osec);
  snprintf(text, sizeof text, "name = a\nrole = admin\npublic-key = %s\nsecret-key = %s\n", other, sec.sec);
  write_text("mixed.key_secret", text, 0600);
  path(p, sizeof p, "mixed.key_secret");
  CHECK(auth_cert_load(p, 1, &pub, &e) == FOIL_EINVAL && strstr(e.msg, "does not belong"));
  write_text("bad1.key", "name = a\nrole = king\npublic-key = x\n", 0644);
  path(p, sizeof p, "bad1.key");
  CHECK(auth_cert_load(p, 0, &pub, &e) == FOIL_EINVAL && strstr(e.msg, ":2:"));
  write_text("bad2.key", "name = a\nrole = admin\npublic-key = too-short\n", 0644);
  path(p, sizeof p, "bad2.key");
  CHECK(auth_cert_load(p, 0, &pub, &e) == FOIL_EINVAL && strstr(e.msg, "Z85"));
  write_text("bad3.key", "garbage\n", 0644);
  path(p, sizeof p, "bad3.key");
  CHECK(auth_cert_load(p, 0, &pub, &e) == FOIL_EINVAL);
  /* a FIFO (or any file not regular) is refused at once, never read: one
   * dropped into an allow-list directory must not stall the ZAP thread */
  path(p, sizeof p, "fifo.key");
  CHECK(!mkfifo(p, 0644));
  CHECK(auth_cert_load(p, 0, &pub, &e) == FOIL_EINVAL && strstr(e.msg, "not a regular file"));
  unlink(p);
  /* too big: refused, the size read from the open file */
  char big[5000];
  memset(big, '#', sizeof big - 1);
  big[sizeof big - 1] = 0;
  write_text("big.key", big, 0644);
  path(p, sizeof p, "big.key");
  CHECK(auth_cert_load(p, 0, &pub, &e) == FOIL_EINVAL && strstr(e.msg, "too big"));
  unlink(p);
  /* the bad ones go, or the allow-list test below would log them: fine, but tidy */
  const char *junk[] = {"open.key_secret", "mixed.key_secret", "bad1.key", "bad2.key", "bad3.key"};
  for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
    path(p, sizeof p, junk[i]);
    unlink(p);
  }
}

static void test_loopback(void) {
  void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_ROUTER);
  auth *a = NULL;
  foil_err e = {0};
  auth_opts o = {0};
  CHECK(auth_new(&a, ctx, &o, &e) == FOIL_OK && !auth_enabled(a));
  CHECK(auth_server_socket(a, s, "tcp://127.0.0.1:7420", &e) == FOIL_OK);
  CHECK(auth_server_socket(a, s, "ipc:///tmp/x", &e) == FOIL_OK);
  CHECK(auth_server_socket(a, s, "tcp://0.0.0.0:7420", &e) == FOIL_EPERM && strstr(e.msg, "--insecure"));
  CHECK(auth_server_socket(a, s, "tcp://*:7420", &e) == FOIL_EPERM);
  auth_destroy(&a);
  o.insecure = 1;
  CHECK(auth_new(&a, ctx, &o, &e) == FOIL_OK);
  CHECK(auth_server_socket(a, s, "tcp://0.0.0.0:7420", &e) == FOIL_OK);
  auth_destroy(&a);
  o.insecure = 0;
  o.allow = dir;  /* one without the other */
  CHECK(auth_new(&a, ctx, &o, &e) == FOIL_EINVAL && !a);
  zmq_close(s);
  zmq_ctx_term(ctx);
}

/* A client with `name`'s key sends "hi"; returns the role the server saw
 * (AUTH_NONE: nothing arrived within 700 ms) and the name in who. */
static int exchange(void *ctx, auth *a, void *srv, const char *ep, const char *name, char *who) {
  char kp[700], sp[700];
  snprintf(kp, sizeof kp, "%s/%s.key_secret", dir, name);
  path(sp, sizeof sp, "server.key");
  auth_client ac;
  foil_err e = {0};
  if (auth_client_load(&ac, kp, sp, &e)) return -1;
  void *c = zmq_socket(ctx, ZMQ_DEALER);
  int zero = 0, role = AUTH_NONE;
  zmq_setsockopt(c, ZMQ_LINGER, &zero, sizeof zero);
  auth_client_socket(&ac, c, &e);
  zmq_connect(c, ep);
  zmq_send(c, "hi", 2, 0);
  zmq_pollitem_t it = {.socket = srv, .events = ZMQ_POLLIN};
  if (zmq_poll(&it, 1, 700) > 0) {
    zmq_msg_t id, body;
    zmq_msg_init(&id), zmq_msg_init(&body);
    zmq_msg_recv(&id, srv, 0);
    zmq_msg_recv(&body, srv, 0);
    role = auth_peer(a, &body, who, AUTH_MAX_NAME + 1);
    zmq_msg_close(&id), zmq_msg_close(&body);
  }
  zmq_close(c);
  return role;
}

static void test_zap(void) {
  foil_err e = {0};
  char allow[600], p[700], q[700];
  snprintf(allow, sizeof allow, "%s/allow", dir);
  mkdir(allow, 0755);
  CHECK(auth_keys_gen(dir, "server", AUTH_ADMIN, &e) == FOIL_OK);
  CHECK(auth_keys_gen(dir, "rita", AUTH_READER, &e) == FOIL_OK);
  CHECK(auth_keys_gen(dir, "eve", AUTH_SUBMITTER, &e) == FOIL_OK);
  path(p, sizeof p, "rita.key");
  snprintf(q, sizeof q, "%s/rita.key", allow);
  CHECK(!link(p, q));
  void *ctx = zmq_ctx_new();
  auth *a = NULL;
  path(p, sizeof p, "server.key_secret");
  auth_opts o = {.key = p, .allow = allow, .component = "test"};
  CHECK(auth_new(&a, ctx, &o, &e) == FOIL_OK && auth_enabled(a));
  void *srv = zmq_socket(ctx, ZMQ_ROUTER);
  int zero = 0;
  zmq_setsockopt(srv, ZMQ_LINGER, &zero, sizeof zero);
  CHECK(auth_server_socket(a, srv, "tcp://0.0.0.0:0", &e) == FOIL_OK);  /* CURVE: any address */
  char ep[256];
  size_t len = sizeof ep;
  CHECK(!zmq_bind(srv, "tcp://127.0.0.1:*") && !zmq_getsockopt(srv, ZMQ_LAST_ENDPOINT, ep, &len));
  char who[AUTH_MAX_NAME + 1] = "";
  CHECK(exchange(ctx, a, srv, ep, "rita", who) == AUTH_READER && !strcmp(who, "rita"));
  CHECK(exchange(ctx, a, srv, ep, "eve", who) == AUTH_NONE);  /* never arrives */
  unsigned long acc, ref;
  auth_counts(a, &acc, &ref);
  CHECK(acc == 1 && ref >= 1);
  path(p, sizeof p, "eve.key");
  snprintf(q, sizeof q, "%s/eve.key", allow);
  CHECK(!link(p, q));
  auth_request_reload();
  struct timespec ts = {0, 400 * 1000 * 1000};
  nanosleep(&ts, NULL);
  CHECK(exchange(ctx, a, srv, ep, "eve", who) == AUTH_SUBMITTER && !strcmp(who, "eve"));
  /* a worker port: only worker keys complete the handshake, an allow-listed
   * reader or submitter is refused before any message */
  CHECK(auth_keys_gen(dir, "node1", AUTH_WORKER, &e) == FOIL_OK);
  path(p, sizeof p, "node1.key");
  snprintf(q, sizeof q, "%s/node1.key", allow);
  CHECK(!link(p, q));
  auth_request_reload();
  nanosleep(&ts, NULL);
  void *wrk = zmq_socket(ctx, ZMQ_ROUTER);
  zmq_setsockopt(wrk, ZMQ_LINGER, &zero, sizeof zero);
  CHECK(auth_worker_socket(a, wrk, "tcp://0.0.0.0:0", &e) == FOIL_OK);
  len = sizeof ep;
  CHECK(!zmq_bind(wrk, "tcp://127.0.0.1:*") && !zmq_getsockopt(wrk, ZMQ_LAST_ENDPOINT, ep, &len));
  auth_counts(a, &acc, &ref);
  unsigned long ref0 = ref;
  CHECK(exchange(ctx, a, wrk, ep, "rita", who) == AUTH_NONE);
  CHECK(exchange(ctx, a, wrk, ep, "eve", who) == AUTH_NONE);
  CHECK(exchange(ctx, a, wrk, ep, "node1", who) == AUTH_WORKER && !strcmp(who, "node1"));
  auth_counts(a, &acc, &ref);
  CHECKF(ref >= ref0 + 2, "%lu refused on the worker port", ref - ref0);
  /* the same worker key on the general port is still accepted */
  len = sizeof ep;
  CHECK(!zmq_getsockopt(srv, ZMQ_LAST_ENDPOINT, ep, &len));
  CHECK(exchange(ctx, a, srv, ep, "node1", who) == AUTH_WORKER);
  /* one public key in two files: the same identity twice counts once;
   * another identity for it (a name or role) refuses that key until one
   * file goes, whatever the directory's order */
  path(p, sizeof p, "eve.key");
  snprintf(q, sizeof q, "%s/eve-copy.key", allow);
  CHECK(!link(p, q));
  auth_request_reload();
  nanosleep(&ts, NULL);
  CHECK(exchange(ctx, a, srv, ep, "eve", who) == AUTH_SUBMITTER && !strcmp(who, "eve"));
  auth_cert ec;
  CHECK(auth_cert_load(p, 0, &ec, &e) == FOIL_OK);
  char text[512];
  snprintf(text, sizeof text, "name = eve\nrole = admin\npublic-key = %s\n", ec.pub);
  write_text("allow/eve-admin.key", text, 0644);
  auth_request_reload();
  nanosleep(&ts, NULL);
  CHECK(exchange(ctx, a, srv, ep, "eve", who) == AUTH_NONE);
  CHECK(exchange(ctx, a, srv, ep, "rita", who) == AUTH_READER);
  snprintf(q, sizeof q, "%s/eve-admin.key", allow);
  unlink(q);
  auth_request_reload();
  nanosleep(&ts, NULL);
  CHECK(exchange(ctx, a, srv, ep, "eve", who) == AUTH_SUBMITTER);
  /* a server holding its secret key is not dumpable (no core, no ptrace) */
  CHECK(prctl(PR_GET_DUMPABLE) == 0);
  zmq_close(wrk);
  zmq_close(srv);
  auth_destroy(&a);
  zmq_ctx_term(ctx);
}

int main(void) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/auth-%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) return 1;
  if (mkdir(dir, 0700)) return 1;
  RUN(test_files);
  RUN(test_loopback);
  RUN(test_zap);
  if (system(cmd)) return 1;
  TEST_EXIT();
}
