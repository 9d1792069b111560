/* test_serve_follow.c — which version foil-serve serves, in process:
 *   - a ReloadRequest naming a version (one that does not exist, or an
 *     older one that loads) never stops the watch from following CURRENT
 *     (review-serve #1);
 *   - a pinned server (opts.version) stays on its version through SIGHUP
 *     (review-serve #2);
 *   - servers of some shards refuse a version split into another number
 *     of shards, so a router in front of them keeps answering complete
 *     replies from the old version; the router refuses (never a partial
 *     reply) when its backends do not hold every shard once, and says so
 *     in its status (review-serve #3); smerge_covers, the rule itself.
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "common/fileio.h"
#include "storage/index.h"
#include "tests/test.h"
#include "worker/serve/router.h"
#include "worker/serve/server.h"
#include "worker/serve/smerge.h"

enum { ROWS = 8, DIM = 4 };

static FILE *devnull;

/* Publishes the next version of index `name` in nshards shards of ROWS
 * rows each (ids v·1000 + shard·100 + row); returns the version. */
static int publish(const char *root, const char *name, int nshards) {
  foil_err err = {0};
  int v = 0, rc = index_version_begin(root, name, &v, &err);
  for (int s = 0; !rc && s < nshards; s++) {
    float x[ROWS * DIM];
    int64_t ids[ROWS];
    for (int i = 0; i < ROWS; i++) {
      float q = 0;
      for (int d = 0; d < DIM; d++) x[i * DIM + d] = (float)((i * 7 + d * 3 + s * 5 + v) % 11) + (d == i % DIM);
      for (int d = 0; d < DIM; d++) q += x[i * DIM + d] * x[i * DIM + d];
      for (int d = 0; d < DIM; d++) x[i * DIM + d] /= sqrtf(q);
      ids[i] = (int64_t)v * 1000 + s * 100 + i;
    }
    index_meta m = {.version = v, .shard = s, .n_shards = nshards, .dim = DIM, .dtype = VS_F32, .normalized = 1,
                    .step = v};
    snprintf(m.name, sizeof m.name, "%s", name);
    rc = index_shard_write(root, &m, ids, NULL, x, ROWS, &err);
  }
  if (!rc) rc = index_publish(root, name, v, nshards, 20, &err);
  CHECKF(rc == 0, "%s", err.msg);
  return rc ? 0 : v;
}

/* ---- servers in child processes, a router on a thread ------------------------------------
 * HDF5 here is not thread-safe: servers (whose loader threads read shards)
 * run in processes of their own, forked before this one ever searches (no
 * OpenMP pool to inherit), while the test publishes versions. A router
 * touches no HDF5 and runs on a thread. */

typedef struct {
  pid_t pid;             /* a server */
  router *r;             /* or a router */
  volatile sig_atomic_t stop;
  pthread_t th;
  int rc;
  foil_err err;
} runner;

static volatile sig_atomic_t child_stop, child_hup;
static void on_term(int sig) { (void)sig, child_stop = 1; }
static void on_hup(int sig) { (void)sig, child_hup = 1; }

static void *router_main(void *arg) {
  runner *x = arg;
  x->rc = router_run(x->r, &x->stop, &x->err);
  return NULL;
}

static int start_server(runner *x, const char *root, const char *index, int version, const int *shards, int nshards,
                        const char *ep) {
  memset(x, 0, sizeof *x);
  fflush(NULL);
  x->pid = fork();
  if (x->pid == 0) {  /* the child: as foil-serve's main, SIGTERM stops, SIGHUP sets the flag */
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    server_opts o = {.root = root, .index = index, .version = version, .shards = shards, .nshards = nshards,
                     .bind = ep, .watch = 1, .watch_ms = 50, .check_samples = 2, .log = devnull};
    server *s = NULL;
    foil_err err = {0};
    int rc = server_new(&s, &o, &err);
    if (!rc) rc = server_run(s, &child_stop, &child_hup, &err);
    if (rc) fprintf(stderr, "server %s: %s\n", ep, err.msg);
    server_destroy(&s);
    _exit(rc ? 1 : 0);
  }
  CHECK(x->pid > 0);
  return x->pid > 0 ? 0 : -1;
}

static int start_router(runner *x, const char *const *eps, int n, const char *ep) {
  memset(x, 0, sizeof *x);
  router_opts ro = {.backends = eps, .nbackends = n, .bind = ep, .log = devnull};
  CHECKF(router_new(&x->r, &ro, &x->err) == 0, "%s", x->err.msg);
  if (!x->r) return -1;
  CHECK(pthread_create(&x->th, NULL, router_main, x) == 0);
  return 0;
}

static void stop(runner *x) {
  if (x->r) {
    x->stop = 1;
    pthread_join(x->th, NULL);
    CHECKF(x->rc == 0, "%s", x->err.msg);
    router_destroy(&x->r);
  } else if (x->pid > 0) {
    int st = 0;
    kill(x->pid, SIGTERM);
    CHECK(waitpid(x->pid, &st, 0) == x->pid);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a server exits 0 on SIGTERM (status %d)", st);
    x->pid = 0;
  }
}

/* ---- a client ------------------------------------------------------------------------------- */

static void *zctx;

static void *client(const char *ep) {
  void *c = zmq_socket(zctx, ZMQ_DEALER);
  int zero = 0, ms = 20000;
  zmq_setsockopt(c, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(c, ZMQ_RCVTIMEO, &ms, sizeof ms);
  CHECK(zmq_connect(c, ep) == 0);
  return c;
}

static uint64_t rid;

/* Sends q, returns the reply to it (the caller frees), NULL on a timeout. */
static Foil__V1__ServeReply *call(void *c, Foil__V1__ServeRequest *q) {
  q->request_id = ++rid;
  size_t n = foil__v1__serve_request__get_packed_size(q);
  uint8_t *buf = malloc(n + 1);
  foil__v1__serve_request__pack(q, buf);
  CHECK(zmq_send(c, buf, n, 0) == (int)n);
  free(buf);
  for (;;) {
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, c, 0) < 0) {
      zmq_msg_close(&f);
      return NULL;
    }
    Foil__V1__ServeReply *r = foil__v1__serve_reply__unpack(NULL, zmq_msg_size(&f), zmq_msg_data(&f));
    zmq_msg_close(&f);
    if (r && r->request_id == q->request_id) return r;
    if (r) foil__v1__serve_reply__free_unpacked(r, NULL);
  }
}

static Foil__V1__ServeReply *reload(void *c, int v) {
  Foil__V1__ReloadRequest rl = FOIL__V1__RELOAD_REQUEST__INIT;
  rl.version = (uint32_t)v;
  Foil__V1__ServeRequest q = FOIL__V1__SERVE_REQUEST__INIT;
  q.body_case = FOIL__V1__SERVE_REQUEST__BODY_RELOAD, q.reload = &rl;
  return call(c, &q);
}

/* The version the status names (-1: no status); the problem into why. */
static int status_of(void *c, char *why, size_t n) {
  Foil__V1__ServeStatusRequest sr = FOIL__V1__SERVE_STATUS_REQUEST__INIT;
  Foil__V1__ServeRequest q = FOIL__V1__SERVE_REQUEST__INIT;
  q.body_case = FOIL__V1__SERVE_REQUEST__BODY_STATUS, q.status = &sr;
  Foil__V1__ServeReply *r = call(c, &q);
  int v = r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_STATUS ? (int)r->status->version : -1;
  if (why) snprintf(why, n, "%s", v >= 0 && r->status->problem ? r->status->problem : "");
  if (r) foil__v1__serve_reply__free_unpacked(r, NULL);
  return v;
}

static int version_of(void *c) { return status_of(c, NULL, 0); }

/* Polls the status until it names v (up to `s` seconds): 1 when it did. */
static int reaches(void *c, int v, double s) {
  for (int i = 0; i < (int)(s * 20); i++) {
    if (version_of(c) == v) return 1;
    usleep(50000);
  }
  return version_of(c) == v;
}

/* One query, k 100: *version and *hits of the reply (0 and the error code
 * on an error, whose message goes to msg). */
static int search(void *c, int *version, size_t *hits, char *msg, size_t n) {
  float v[DIM] = {1, 0.5f, 0.25f, 0};
  Foil__V1__SearchQuery sq = FOIL__V1__SEARCH_QUERY__INIT, *sqp = &sq;
  sq.vector = v, sq.n_vector = DIM;
  Foil__V1__SearchRequest s = FOIL__V1__SEARCH_REQUEST__INIT;
  s.queries = &sqp, s.n_queries = 1, s.k = 100;
  Foil__V1__ServeRequest q = FOIL__V1__SERVE_REQUEST__INIT;
  q.body_case = FOIL__V1__SERVE_REQUEST__BODY_SEARCH, q.search = &s;
  Foil__V1__ServeReply *r = call(c, &q);
  int code = -1;
  *version = 0, *hits = 0, msg[0] = 0;
  if (r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_SEARCH && r->search->n_results == 1) {
    code = 0, *version = (int)r->search->version, *hits = r->search->results[0]->n_ids;
  } else if (r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_ERROR) {
    code = (int)r->error->code;
    snprintf(msg, n, "%s", r->error->message ? r->error->message : "");
  }
  if (r) foil__v1__serve_reply__free_unpacked(r, NULL);
  return code;
}

static char dir[600];

static void tmpdir(const char *what) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  foil_err err = {0};
  if (tmp && *tmp) foil_mkdirs(tmp, &err);
  snprintf(dir, sizeof dir, "%s/serve-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", what);
  CHECK(mkdtemp(dir) != NULL);
}

static void rmdir_all(void) {
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

/* ---- #1: a reload never pins ------------------------------------------------------------------ */

static void test_reload_does_not_pin(void) {
  tmpdir("follow");
  int v1 = publish(dir, "fw", 1);
  char ep[700];
  snprintf(ep, sizeof ep, "ipc://%s/s.sock", dir);
  runner x;
  if (start_server(&x, dir, "fw", 0, NULL, 0, ep)) return;
  void *c = client(ep);
  CHECK(version_of(c) == v1);
  /* a reload of a version that does not exist: NOT_FOUND, v1 keeps serving ... */
  Foil__V1__ServeReply *r = reload(c, 99);
  CHECKF(r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_ERROR && r->error->code == FOIL__V1__CODE__NOT_FOUND,
         "reload of v99: %s", r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_ERROR ? r->error->message : "no error");
  if (r) foil__v1__serve_reply__free_unpacked(r, NULL);
  /* ... and the watch still follows CURRENT */
  int v2 = publish(dir, "fw", 1);
  CHECKF(reaches(c, v2, 5), "after a failed reload of v99, v%d published: still serving v%d (the watch stopped)", v2,
         version_of(c));
  /* a reload of an older version that loads: served until CURRENT moves ... */
  r = reload(c, v1);
  CHECK(r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_STATUS && (int)r->status->version == v1);
  if (r) foil__v1__serve_reply__free_unpacked(r, NULL);
  usleep(300000);  /* 6 watch turns: CURRENT (v2) was taken already, not again */
  CHECKF(version_of(c) == v1, "a reload of v%d is undone by the watch before CURRENT moves (v%d)", v1, version_of(c));
  /* ... then the watch takes the next version */
  int v3 = publish(dir, "fw", 1);
  CHECKF(reaches(c, v3, 5), "after a reload of v%d, v%d published: still serving v%d (the watch stopped)", v1, v3,
         version_of(c));
  /* a reload of CURRENT (version 0) of a version already served: answered at once */
  r = reload(c, 0);
  CHECK(r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_STATUS && (int)r->status->version == v3);
  if (r) foil__v1__serve_reply__free_unpacked(r, NULL);
  zmq_close(c);
  stop(&x);
  rmdir_all();
}

/* ---- #2: SIGHUP never unpins ------------------------------------------------------------------ */

static void test_pinned_sighup(void) {
  tmpdir("pin");
  int v1 = publish(dir, "pn", 1), v2 = publish(dir, "pn", 1);
  char ep[700];
  snprintf(ep, sizeof ep, "ipc://%s/s.sock", dir);
  runner x;
  if (start_server(&x, dir, "pn", v1, NULL, 0, ep)) return;
  void *c = client(ep);
  CHECK(version_of(c) == v1);
  CHECK(kill(x.pid, SIGHUP) == 0);  /* as the coordinator does after a refresh of the index */
  usleep(600000);
  CHECKF(version_of(c) == v1, "a server pinned to v%d serves v%d after SIGHUP (CURRENT is v%d)", v1, version_of(c),
         v2);
  /* an explicit reload still loads what it names */
  Foil__V1__ServeReply *r = reload(c, v2);
  CHECK(r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_STATUS && (int)r->status->version == v2);
  if (r) foil__v1__serve_reply__free_unpacked(r, NULL);
  zmq_close(c);
  stop(&x);
  rmdir_all();
}

/* ---- #3: shards ------------------------------------------------------------------------------- */

static void test_covers(void) {
  uint32_t a[] = {0, 2}, b[] = {1}, c[] = {0}, big[] = {5};
  const char *names[] = {"A", "B", "C"};
  char why[512];
  const uint32_t *l1[] = {a, b};
  size_t n1[] = {2, 1};
  uint32_t t3[] = {3, 3, 3}, t2[] = {2, 2, 2}, t4[] = {4, 4, 4}, tx[] = {3, 2, 3}, t0[] = {0, 0, 0};
  CHECK(smerge_covers(l1, n1, t3, 2, names, why, sizeof why) == 1 && why[0] == 0);
  CHECK(smerge_covers(l1, n1, t4, 2, names, why, sizeof why) == 0);
  CHECKF(strstr(why, "held by no backend: 3") != NULL, "%s", why);
  CHECK(smerge_covers(l1, n1, t2, 2, names, why, sizeof why) == 0);
  CHECKF(strstr(why, "A holds shard 2") != NULL, "%s", why);
  CHECK(smerge_covers(l1, n1, tx, 2, names, why, sizeof why) == 0);
  CHECKF(strstr(why, "disagree") != NULL && strstr(why, "A: 3, B: 2") != NULL, "%s", why);
  CHECK(smerge_covers(l1, n1, t0, 2, names, why, sizeof why) == 0 && strstr(why, "older"));
  const uint32_t *l2[] = {a, b, c};
  size_t n2[] = {2, 1, 1};
  CHECK(smerge_covers(l2, n2, t3, 3, names, why, sizeof why) == 0);
  CHECKF(strstr(why, "shard 0 is held by both A and C") != NULL, "%s", why);
  const uint32_t *l3[] = {big};
  size_t n3[] = {1};
  CHECK(smerge_covers(l3, n3, t3, 1, names, why, sizeof why) == 0);
  CHECK(smerge_covers(l3, n3, t3, 0, names, why, sizeof why) == 0);
}

static void test_router_shards(void) {
  tmpdir("shards");
  int v1 = publish(dir, "sh", 2);
  char epa[700], epb[700], epr[700], epd[700];
  snprintf(epa, sizeof epa, "ipc://%s/a.sock", dir);
  snprintf(epb, sizeof epb, "ipc://%s/b.sock", dir);
  snprintf(epr, sizeof epr, "ipc://%s/r.sock", dir);
  snprintf(epd, sizeof epd, "ipc://%s/d.sock", dir);
  static const int s0[] = {0}, s1[] = {1};
  runner a, b, d, rt, rd;
  if (start_server(&a, dir, "sh", 0, s0, 1, epa) || start_server(&b, dir, "sh", 0, s1, 1, epb) ||
      start_server(&d, dir, "sh", 0, s0, 1, epd))
    return;
  const char *eps[] = {epa, epb};
  if (start_router(&rt, eps, 2, epr)) return;
  void *c = client(epr), *ca = client(epa), *cb = client(epb);
  int v = 0;
  size_t hits = 0;
  char msg[1024];
  CHECKF(search(c, &v, &hits, msg, sizeof msg) == 0 && v == v1 && hits == 2 * ROWS, "v%d: %zu hits: %s", v, hits, msg);
  /* a version of 3 shards: both backends refuse it (the router would miss shard 2's rows) */
  int v2 = publish(dir, "sh", 3);
  usleep(600000);
  CHECKF(version_of(ca) == v1 && version_of(cb) == v1, "v%d of 3 shards: the backends serve v%d and v%d, not v%d",
         v2, version_of(ca), version_of(cb), v1);
  CHECKF(search(c, &v, &hits, msg, sizeof msg) == 0 && v == v1 && hits == 2 * ROWS,
         "after a 3-shard v%d: the router answers v%d with %zu hits (of %d rows): %s", v2, v, hits, 2 * ROWS, msg);
  /* a version of 1 shard: refused too; the router keeps answering (no outage) */
  int v3 = publish(dir, "sh", 1);
  usleep(600000);
  CHECKF(search(c, &v, &hits, msg, sizeof msg) == 0 && v == v1 && hits == 2 * ROWS,
         "after a 1-shard v%d: the router answers v%d with %zu hits: %s", v3, v, hits, msg);
  /* a version of 2 shards again: taken by both */
  int v4 = publish(dir, "sh", 2);
  CHECK(reaches(ca, v4, 5) && reaches(cb, v4, 5));
  CHECKF(search(c, &v, &hits, msg, sizeof msg) == 0 && v == v4 && hits == 2 * ROWS, "v%d: %zu hits: %s", v, hits, msg);
  /* a router whose backends hold shard 0 twice and shard 1 never: refused with the reason, never partial */
  char epr2[700];
  snprintf(epr2, sizeof epr2, "ipc://%s/r2.sock", dir);
  const char *eps2[] = {epa, epd};
  void *cd = client(epd);
  CHECK(reaches(cd, v4, 5));
  zmq_close(cd);
  if (start_router(&rd, eps2, 2, epr2)) return;
  void *c2 = client(epr2);
  int code = search(c2, &v, &hits, msg, sizeof msg);
  CHECKF(code == FOIL__V1__CODE__FAILED_PRECONDITION && strstr(msg, "shard 0 is held by both") &&
         strstr(msg, "held by no backend: 1"), "backends of shards {0} and {0}: code %d, %zu hits: %s", code, hits, msg);
  char why[1024];
  CHECKF(status_of(c2, why, sizeof why) == v4 && strstr(why, "held by no backend: 1"), "router status problem: %s", why);
  CHECKF(status_of(c, why, sizeof why) == v4 && why[0] == 0, "a complete router's status has no problem: %s", why);
  zmq_close(c2);
  stop(&rd);
  stop(&d);
  zmq_close(c), zmq_close(ca), zmq_close(cb);
  stop(&rt);
  stop(&a);
  stop(&b);
  rmdir_all();
}

int main(void) {
  devnull = fopen(getenv("FOIL_TEST_LOG") ? getenv("FOIL_TEST_LOG") : "/dev/null", "a");
  zctx = zmq_ctx_new();
  RUN(test_reload_does_not_pin);
  RUN(test_pinned_sighup);
  RUN(test_covers);
  RUN(test_router_shards);
  zmq_ctx_term(zctx);
  fclose(devnull);
  TEST_EXIT();
}
