/* test_serve.c — foil-serve's pure parts: request limits (sreq), the
 * router's merge and version rule (smerge), batching (sbatch). */
#include <math.h>
#include <string.h>

#include "tests/test.h"
#include "worker/serve/sbatch.h"
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

int main(void) {
  RUN(test_limits);
  RUN(test_merge);
  RUN(test_batch);
  TEST_EXIT();
}
