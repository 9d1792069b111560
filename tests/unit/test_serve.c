/* test_serve.c — foil-serve's pure parts: request limits (sreq), the
 * router's merge and version rule (smerge), batching (sbatch); and a
 * server (server.h) on a tiny index swapping between two versions under a
 * stream of reloads, so that the loader starts a load while the query loop
 * swaps: the loader must not read the live generation the loop is freeing
 * (a race that ThreadSanitizer reports, and ASan when the free lands
 * between the loader's two reads), and every reload request is answered
 * with its own load's result or ABORTED "superseded", never with the
 * result of a reload that replaced it. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/fileio.h"
#include "storage/index.h"
#include "tests/test.h"
#include "worker/serve/sbatch.h"
#include "worker/serve/server.h"
#include "worker/serve/smerge.h"
#include "worker/serve/sreq.h"

static Foil__V1__SearchQuery qv[4], *qp[4];
static float vec[4][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 1}};

static Foil__V1__SearchRequest search_of(int n) {
  Foil__V1__SearchRequest s = FOIL__V1__SEARCH_REQUEST__INIT;
  for (int i = 0; i < 4; i++) {
    foil__v1__search_query__init(&qv[i]);
    qv[i].vector = vec[i], qv[i].n_vector = 3;
    qp[i] = &qv[i];
  }
  s.queries = qp, s.n_queries = (size_t)n;
  return s;
}

static void test_limits(void) {
  foil_err e = {0};
  Foil__V1__SearchRequest s = search_of(2);
  int nt = -1;
  CHECK(sreq_check_search(&s, 3, NULL, &nt, &e) == FOIL_OK && nt == 0);
  CHECK(sreq_k(&s) == 10);
  CHECK(sreq_check_search(&s, 4, NULL, NULL, &e) == FOIL_EINVAL && strstr(e.msg, "dimension is 4"));
  CHECK(sreq_check_search(&s, 0, NULL, NULL, &e) == FOIL_OK);  /* the router does not know dim */
  s.k = 1001;
  CHECK(sreq_check_search(&s, 3, NULL, NULL, &e) == FOIL_EINVAL && strstr(e.msg, "k 1001"));
  s.k = 1000;
  CHECK(sreq_check_search(&s, 3, NULL, NULL, &e) == FOIL_OK && sreq_k(&s) == 1000);
  s.id_range = 1, s.id_min = 5, s.id_max = 4;
  CHECK(sreq_check_search(&s, 3, NULL, NULL, &e) == FOIL_EINVAL);
  int64_t lo, hi;
  s.id_max = 9;
  sreq_range(&s, &lo, &hi);
  CHECK(lo == 5 && hi == 9);
  s.id_range = 0;
  sreq_range(&s, &lo, &hi);
  CHECK(lo > hi);
  s.n_queries = 0;
  CHECK(sreq_check_search(&s, 3, NULL, NULL, &e) == FOIL_EINVAL && strstr(e.msg, "no queries"));
  s.n_queries = SREQ_MAX_QUERIES + 1;
  CHECK(sreq_check_search(&s, 3, NULL, NULL, &e) == FOIL_EINVAL && strstr(e.msg, "limit of 1024"));
  /* both, neither, text too long, text where none can be encoded, NaN */
  s = search_of(2);
  qv[1].text = (char *)"hello";
  CHECK(sreq_check_search(&s, 3, NULL, NULL, &e) == FOIL_EINVAL && strstr(e.msg, "query 1 has both"));
  qv[1].n_vector = 0;
  CHECK(sreq_check_search(&s, 3, NULL, &nt, &e) == FOIL_OK && nt == 1);
  CHECK(sreq_check_search(&s, 3, "model hash differs", NULL, &e) == FOIL_EPRECOND &&
        strstr(e.msg, "model hash differs"));
  static char big[SREQ_MAX_TEXT + 2];
  memset(big, 'a', sizeof big - 1);
  qv[1].text = big;
  CHECK(sreq_check_search(&s, 3, NULL, NULL, &e) == FOIL_EINVAL && strstr(e.msg, "8192"));
  qv[1].text = (char *)"";
  CHECK(sreq_check_search(&s, 3, NULL, NULL, &e) == FOIL_EINVAL && strstr(e.msg, "neither"));
  s = search_of(1);
  float bad[3] = {1, NAN, 0};
  qv[0].vector = bad;
  CHECK(sreq_check_search(&s, 3, NULL, NULL, &e) == FOIL_EINVAL && strstr(e.msg, "not finite"));
}

static void test_merge(void) {
  /* two shards' lists; ties broken by the lower id wherever it lives */
  int64_t a_ids[] = {7, 3, 10}, b_ids[] = {2, 5, 11, 12};
  float a_sc[] = {0.9f, 0.5f, 0.1f}, b_sc[] = {0.9f, 0.5f, 0.4f, 0.0f};
  char *a_keys[] = {"a7", "a3", "a10"};
  Foil__V1__SearchHits a = FOIL__V1__SEARCH_HITS__INIT, b = FOIL__V1__SEARCH_HITS__INIT;
  a.ids = a_ids, a.n_ids = 3, a.scores = a_sc, a.n_scores = 3, a.keys = a_keys, a.n_keys = 3;
  b.ids = b_ids, b.n_ids = 4, b.scores = b_sc, b.n_scores = 4;
  const Foil__V1__SearchHits *lists[] = {&a, &b, NULL};
  int64_t ids[10];
  float sc[10];
  char *keys[10];
  int any = 0;
  size_t n = smerge_hits(lists, 3, 5, ids, sc, keys, &any);
  CHECK(n == 5 && any == 1);
  int64_t want[] = {2, 7, 3, 5, 11};
  for (int i = 0; i < 5; i++) CHECKF(ids[i] == want[i], "rank %d: id %lld, want %lld", i, (long long)ids[i], (long long)want[i]);
  CHECK(!strcmp(keys[0], "") && !strcmp(keys[1], "a7") && !strcmp(keys[2], "a3"));
  n = smerge_hits(lists, 3, 10, ids, sc, NULL, &any);
  CHECK(n == 7 && ids[6] == 12);
  for (size_t i = 1; i < n; i++) CHECK(smerge_before(sc[i - 1], ids[i - 1], sc[i], ids[i]));
  CHECK(smerge_hits(lists + 2, 1, 5, ids, sc, NULL, &any) == 0 && any == 0);
  /* the version rule */
  Foil__V1__SearchReply r1 = FOIL__V1__SEARCH_REPLY__INIT, r2 = FOIL__V1__SEARCH_REPLY__INIT;
  r1.index = r2.index = (char *)"ix";
  r1.version = r2.version = 3;
  const Foil__V1__SearchReply *rs[] = {&r1, &r2};
  CHECK(smerge_same_version(rs, 2) == 1);
  r2.version = 4;
  CHECK(smerge_same_version(rs, 2) == 0);
  r2.version = 3, r2.index = (char *)"other";
  CHECK(smerge_same_version(rs, 2) == 0);
  CHECK(smerge_same_version(rs, 1) == 1);
}

static void test_batch(void) {
  CHECK(sbatch_joins(0, 5000, 256));   /* a large request alone */
  CHECK(sbatch_joins(200, 56, 256));
  CHECK(!sbatch_joins(200, 57, 256));
  Foil__V1__SearchRequest r[5];
  for (int i = 0; i < 5; i++) r[i] = search_of(i % 2 ? 2 : 1);
  r[1].k = 10;                       /* = the default: same group as r[0] */
  r[2].k = 5;
  r[3].id_range = 1, r[3].id_min = 0, r[3].id_max = 99;
  r[4].k = 5;
  const Foil__V1__SearchRequest *p[5] = {&r[0], &r[1], &r[2], &r[3], &r[4]};
  sbatch_plan_t *plan = NULL;
  foil_err e = {0};
  CHECK(sbatch_plan(p, 5, &plan, &e) == FOIL_OK);
  CHECK(plan->ngroups == 3);
  CHECK(plan->groups[0].k == 10 && plan->groups[0].nreq == 2 && plan->groups[0].req[0] == 0 &&
        plan->groups[0].req[1] == 1 && plan->groups[0].nq == 3);
  CHECK(plan->groups[1].k == 5 && plan->groups[1].nreq == 2 && plan->groups[1].req[0] == 2 &&
        plan->groups[1].req[1] == 4 && plan->groups[1].nq == 2);
  CHECK(plan->groups[2].nreq == 1 && plan->groups[2].req[0] == 3 && plan->groups[2].lo == 0 &&
        plan->groups[2].hi == 99);
  sbatch_free(&plan);
  CHECK(plan == NULL);
  CHECK(sbatch_plan(p, 0, &plan, &e) == FOIL_OK && plan->ngroups == 0);
  sbatch_free(&plan);
}

/* ---- reloads ------------------------------------------------------------------------ */

static server *srv;
static volatile sig_atomic_t srv_stop;
static int srv_rc;
static foil_err srv_err;

static void *serve_main(void *arg) {
  (void)arg;
  srv_rc = server_run(srv, &srv_stop, NULL, &srv_err);
  return NULL;
}

/* Publishes one version of index "sw": 8 rows of dim 4, one shard. */
static int publish(const char *root, float shift) {
  enum { N = 8, D = 4 };
  float x[N * D];
  for (int i = 0; i < N * D; i++) x[i] = (i % (D + 1)) == 0 ? 1.0f : shift;
  for (int i = 0; i < N; i++) {
    float q = 0;
    for (int d = 0; d < D; d++) q += x[i * D + d] * x[i * D + d];
    for (int d = 0; d < D; d++) x[i * D + d] /= sqrtf(q);
  }
  int64_t ids[N];
  char *keys[N], kb[N][8];
  for (int i = 0; i < N; i++) ids[i] = i, snprintf(kb[i], sizeof kb[i], "k%d", i), keys[i] = kb[i];
  foil_err err = {0};
  int v = 0;
  index_meta m = {.shard = 0, .n_shards = 1, .dim = D, .dtype = VS_F32, .normalized = 1, .step = 1};
  snprintf(m.name, sizeof m.name, "sw");
  snprintf(m.checkpoint, sizeof m.checkpoint, "/nonexistent/step_1.h5");
  snprintf(m.model_hash, sizeof m.model_hash, "0badcafe");
  int rc = index_version_begin(root, "sw", &v, &err);
  m.version = v;
  if (!rc) rc = index_shard_write(root, &m, ids, keys, x, N, &err);
  if (!rc) rc = index_publish(root, "sw", v, 1, 2, &err);
  CHECKF(rc == 0, "%s", err.msg);
  return rc ? 0 : v;
}

static void send_reload(void *cli, uint64_t rid, int v) {
  Foil__V1__ReloadRequest rl = FOIL__V1__RELOAD_REQUEST__INIT;
  rl.version = (uint32_t)v;
  Foil__V1__ServeRequest q = FOIL__V1__SERVE_REQUEST__INIT;
  q.request_id = rid, q.body_case = FOIL__V1__SERVE_REQUEST__BODY_RELOAD, q.reload = &rl;
  uint8_t buf[64];
  size_t n = foil__v1__serve_request__pack(&q, buf);
  CHECK(zmq_send(cli, buf, n, 0) == (int)n);
}

static void test_reload_swaps(void) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  char dir[600];
  snprintf(dir, sizeof dir, "%s/serve-swap-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  foil_err err = {0};
  if (tmp && *tmp) foil_mkdirs(tmp, &err);
  if (!mkdtemp(dir)) return;
  int v1 = publish(dir, 0.25f), v2 = publish(dir, 0.5f);
  CHECK(v1 > 0 && v2 > v1);
  char ep[700];
  snprintf(ep, sizeof ep, "ipc://%s/serve.sock", dir);
  server_opts o = {.root = dir, .index = "sw", .bind = ep, .check_samples = 2, .log = fopen("/dev/null", "a")};
  srv = NULL;
  CHECKF(server_new(&srv, &o, &err) == 0, "%s", err.msg);
  if (!srv) return;
  pthread_t th;
  srv_stop = 0;
  CHECK(pthread_create(&th, NULL, serve_main, NULL) == 0);
  void *ctx = zmq_ctx_new(), *cli = zmq_socket(ctx, ZMQ_DEALER);
  int zero = 0, ms = 10000;
  zmq_setsockopt(cli, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(cli, ZMQ_RCVTIMEO, &ms, sizeof ms);
  CHECK(zmq_connect(cli, server_endpoint(srv)) == 0);
  /* bursts of reloads to alternate versions: the next load starts while
   * the loop swaps in the one before. Each request gets its own answer:
   * the status once the version it asked for serves, or ABORTED when a
   * later reload took its place before its load began (never the result
   * of another request's load). The last of a burst is never superseded. */
  int answered = 0, statuses = 0, superseded = 0, wrong = 0;
  for (int round = 0; round < 30; round++) {
    for (int k = 0; k < 4; k++) send_reload(cli, (uint64_t)(round * 4 + k + 1), k % 2 ? v2 : v1);
    for (int k = 0; k < 4; k++) {
      zmq_msg_t f;
      zmq_msg_init(&f);
      if (zmq_msg_recv(&f, cli, 0) >= 0) {
        answered++;
        Foil__V1__ServeReply *r = foil__v1__serve_reply__unpack(NULL, zmq_msg_size(&f), zmq_msg_data(&f));
        int asked = r && r->request_id ? ((int)((r->request_id - 1) % 4) % 2 ? v2 : v1) : 0;
        if (r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_STATUS && r->status->version == (uint32_t)asked)
          statuses++;
        else if (r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_ERROR &&
                 r->error->code == FOIL__V1__CODE__ABORTED && strstr(r->error->message, "superseded by a later reload"))
          superseded++;
        else if (wrong++ < 3)
          fprintf(stderr, "request %llu (v%d): answered %s v%u\n", r ? (unsigned long long)r->request_id : 0ULL, asked,
                  r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_STATUS ? "status of" : "an error or",
                  r && r->body_case == FOIL__V1__SERVE_REPLY__BODY_STATUS ? r->status->version : 0);
        if (r) foil__v1__serve_reply__free_unpacked(r, NULL);
      }
      zmq_msg_close(&f);
    }
  }
  CHECKF(answered == 120 && statuses + superseded == 120 && statuses >= 30,
         "%d answered, %d statuses of the version asked, %d superseded", answered, statuses, superseded);
  zmq_close(cli);
  zmq_ctx_term(ctx);
  srv_stop = 1;
  pthread_join(th, NULL);
  CHECKF(srv_rc == 0, "%s", srv_err.msg);
  server_destroy(&srv);
  fclose(o.log);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
}

int main(void) {
  RUN(test_limits);
  RUN(test_merge);
  RUN(test_batch);
  RUN(test_reload_swaps);
  TEST_EXIT();
}
