/* test_irmetrics_ref.c — foil's streaming retrieval and metrics against the
 * sentence-transformers procedure (irmetrics_ref.py writes the file).
 *
 * Per case: the corpus is offered in chunks of the case's size (different
 * from the chunking the reference used), the lists must hold the same corpus
 * rows as the reference's ranking, and every metric at every cutoff must
 * match to 1e-6 (absolute; all metrics lie in [0, 1]).
 * Usage: test_irmetrics_ref REF.h5
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/irmetrics.h"
#include "storage/h5io.h"
#include "tests/test.h"

static void run_case(h5io *f, const char *name) {
  foil_err err = {0};
  char path[256];
  uint64_t qd[8], cd[8];
  int nd;
  float *Q = NULL, *C = NULL;
  int64_t *qrels = NULL, *top = NULL, normalize = 0, chunk = 0, nq_ref = 0, nskip_ref = 0;
  int32_t *grades = NULL;
  size_t n, nqr, ng, ntop;
  irmetrics *ir = NULL;
#define P(x) (snprintf(path, sizeof path, "%s/%s", name, x), path)
  int ok = h5io_shape(f, P("queries"), &nd, qd, &err) == 0 &&
           h5io_shape(f, P("corpus"), &nd, cd, &err) == 0 &&
           h5io_read_f32(f, P("queries"), &Q, &n, &err) == 0 &&
           h5io_read_f32(f, P("corpus"), &C, &n, &err) == 0 &&
           h5io_read_i64(f, P("qrels"), &qrels, &nqr, &err) == 0 &&
           h5io_read_i32(f, P("grades"), &grades, &ng, &err) == 0 &&
           h5io_read_i64(f, P("top_ids"), &top, &ntop, &err) == 0 &&
           h5io_get_attr_i64(f, name, "normalize", &normalize, &err) == 0 &&
           h5io_get_attr_i64(f, name, "chunk", &chunk, &err) == 0 &&
           h5io_get_attr_i64(f, name, "n_queries", &nq_ref, &err) == 0 &&
           h5io_get_attr_i64(f, name, "n_skipped", &nskip_ref, &err) == 0;
  CHECKF(ok, "%s: %s", name, err.msg);
  if (!ok) goto done;
  int nq = (int)qd[0], D = (int)qd[1], nc = (int)cd[0];
  CHECK(ntop == (size_t)nq * IRM_K && ng * 2 == nqr);
  CHECKF(irmetrics_new(&ir, Q, nq, D, (int)normalize, &err) == 0, "%s", err.msg);
  if (!ir) goto done;
  for (int at = 0; at < nc; at += (int)chunk) {
    int m = nc - at < chunk ? nc - at : (int)chunk;
    CHECK(irmetrics_add(ir, C + (size_t)at * D, m, &err) == 0);
  }
  const int64_t *ids;
  irmetrics_topk(ir, NULL, &ids);
  int bad = 0;
  for (size_t i = 0; i < ntop; i++) bad += ids[i] != top[i];
  CHECKF(bad == 0, "%s: %d list entries differ from the reference ranking", name, bad);

  irmetrics_result res;
  CHECKF(irmetrics_compute(ir, qrels, grades, ng, &res, &err) == 0, "%s", err.msg);
  CHECK(res.n_queries == nq_ref && res.n_skipped == nskip_ref);
  const char *metric[6] = {"accuracy", "precision", "recall", "mrr", "ndcg", "map"};
  const double *got[6] = {res.accuracy, res.precision, res.recall, res.mrr, res.ndcg, res.map};
  double worst = 0;
  for (int m = 0; m < 6; m++) {
    double *want = NULL;
    size_t nw;
    if (h5io_read_f64(f, P(metric[m]), &want, &nw, &err) != 0 || nw != IRM_NCUT) {
      CHECKF(0, "%s/%s: %s", name, metric[m], err.msg);
      free(want);
      continue;
    }
    for (int c = 0; c < IRM_NCUT; c++) {
      double e = fabs(got[m][c] - want[c]);
      if (e > worst) worst = e;
      CHECKF(e <= 1e-6, "%s %s@%d: foil %.9f reference %.9f", name, metric[m],
             irmetrics_cutoffs[c], got[m][c], want[c]);
    }
    free(want);
  }
  printf("%-14s %d queries, %d corpus rows, max |error| %.2e, ndcg@10 %.4f\n", name, nq, nc,
         worst, res.ndcg[3]);
#undef P
done:
  irmetrics_destroy(&ir);
  free(Q);
  free(C);
  free(qrels);
  free(grades);
  free(top);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s REF.h5\n", argv[0]);
    return 2;
  }
  foil_err err = {0};
  h5io *f = NULL;
  if (h5io_open(&f, argv[1], NULL, &err) != 0) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  const char *cases[] = {"cosine", "dot", "small_corpus", "dot_ties"};
  for (int i = 0; i < 4; i++) run_case(f, cases[i]);
  h5io_close(&f);
  TEST_EXIT();
}
