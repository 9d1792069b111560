/* irmetrics.c — streaming top-k retrieval and IR metrics (irmetrics.h). */
#include "model/irmetrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

const int irmetrics_cutoffs[IRM_NCUT] = {1, 3, 5, 10, 100};

struct irmetrics {
  int nq, D, normalize;
  int64_t seen;      /* corpus rows offered so far */
  float *queries;    /* [nq, D], normalized when asked */
  float *top_score;  /* [nq, IRM_K] */
  int64_t *top_id;   /* [nq, IRM_K] */
  float *scores;     /* scratch [nq, cap] */
  float *chunk;      /* scratch [cap, D] normalized corpus rows */
  float *norm;       /* scratch [max(nq, cap)] */
  int cap;           /* columns the scratch holds */
};

int irmetrics_new(irmetrics **out, const float *queries, int nq, int D, int normalize,
                  foil_err *err) {
  *out = NULL;
  if (nq < 1 || D < 1 || !queries)
    return foil_err_set(err, FOIL_EINVAL, "irmetrics: need at least one query of dimension >= 1 (got %d x %d)", nq, D);
  irmetrics *ir = calloc(1, sizeof *ir);
  if (!ir) return foil_err_set(err, FOIL_ENOMEM, "irmetrics: out of memory");
  ir->nq = nq;
  ir->D = D;
  ir->normalize = normalize != 0;
  size_t qn = (size_t)nq * D, kn = (size_t)nq * IRM_K;
  ir->queries = malloc(qn * sizeof(float));
  ir->top_score = malloc(kn * sizeof(float));
  ir->top_id = malloc(kn * sizeof(int64_t));
  ir->norm = malloc((size_t)nq * sizeof(float));
  if (!ir->queries || !ir->top_score || !ir->top_id || !ir->norm) {
    irmetrics_destroy(&ir);
    return foil_err_set(err, FOIL_ENOMEM, "irmetrics: out of memory for %d queries", nq);
  }
  if (ir->normalize)
    l2norm_forward(ir->queries, ir->norm, queries, nq, D);
  else
    memcpy(ir->queries, queries, qn * sizeof(float));
  topk_init(ir->top_score, ir->top_id, nq, IRM_K);
  *out = ir;
  return FOIL_OK;
}

void irmetrics_destroy(irmetrics **ir) {
  if (!ir || !*ir) return;
  irmetrics *p = *ir;
  free(p->queries);
  free(p->top_score);
  free(p->top_id);
  free(p->scores);
  free(p->chunk);
  free(p->norm);
  free(p);
  *ir = NULL;
}

int64_t irmetrics_corpus_rows(const irmetrics *ir) { return ir->seen; }
int irmetrics_num_queries(const irmetrics *ir) { return ir->nq; }

void irmetrics_topk(const irmetrics *ir, const float **scores, const int64_t **ids) {
  if (scores) *scores = ir->top_score;
  if (ids) *ids = ir->top_id;
}

/* Grows the scratch to hold `cols` columns (cols <= IRM_SCRATCH / nq). */
static int irm_reserve(irmetrics *ir, int cols, foil_err *err) {
  if (cols <= ir->cap) return FOIL_OK;
  float *s = realloc(ir->scores, (size_t)ir->nq * cols * sizeof(float));
  if (!s) return foil_err_set(err, FOIL_ENOMEM, "irmetrics: out of memory for scores");
  ir->scores = s;
  if (ir->normalize) {
    float *c = realloc(ir->chunk, (size_t)cols * ir->D * sizeof(float));
    if (!c) return foil_err_set(err, FOIL_ENOMEM, "irmetrics: out of memory for a chunk");
    ir->chunk = c;
    if (cols > ir->nq) {
      float *n = realloc(ir->norm, (size_t)cols * sizeof(float));
      if (!n) return foil_err_set(err, FOIL_ENOMEM, "irmetrics: out of memory");
      ir->norm = n;
    }
  }
  ir->cap = cols;
  return FOIL_OK;
}

int irmetrics_add(irmetrics *ir, const float *corpus, int nc, foil_err *err) {
  if (nc < 0 || (nc > 0 && !corpus))
    return foil_err_set(err, FOIL_EINVAL, "irmetrics: bad chunk of %d rows", nc);
  int block = IRM_SCRATCH / ir->nq;
  if (block < 1) block = 1;
  for (int c0 = 0; c0 < nc; c0 += block) {
    int cols = nc - c0 < block ? nc - c0 : block;
    int rc = irm_reserve(ir, cols, err);
    if (rc) return rc;
    const float *rows = corpus + (size_t)c0 * ir->D;
    if (ir->normalize) {
      l2norm_forward(ir->chunk, ir->norm, rows, cols, ir->D);
      rows = ir->chunk;
    }
    /* scores[nq, cols] = queries @ rows^T */
    matmul_forward(ir->scores, ir->queries, rows, NULL, ir->nq, ir->D, cols);
    topk_merge(ir->top_score, ir->top_id, ir->nq, IRM_K, ir->scores, cols, (size_t)cols,
               ir->seen + c0);
  }
  ir->seen += nc;
  return FOIL_OK;
}

/* ---- metrics -------------------------------------------------------------- */

typedef struct {
  int64_t q, d;
} irm_pair;

static int irm_pair_cmp(const void *a, const void *b) {
  const irm_pair *x = a, *y = b;
  if (x->q != y->q) return x->q < y->q ? -1 : 1;
  if (x->d != y->d) return x->d < y->d ? -1 : 1;
  return 0;
}

static int irm_contains(const irm_pair *rel, size_t n, int64_t d) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (rel[mid].d == d) return 1;
    if (rel[mid].d < d) lo = mid + 1;
    else hi = mid;
  }
  return 0;
}

/* Adds one query's metrics at every cutoff to the sums in res. */
static void irm_score_query(const int64_t *ranked, int K, const irm_pair *rel, size_t nrel,
                            irmetrics_result *res) {
  int hit[IRM_K];
  int n = 0;
  for (; n < K && n < IRM_K && ranked[n] >= 0; n++) hit[n] = irm_contains(rel, nrel, ranked[n]);
  for (int c = 0; c < IRM_NCUT; c++) {
    int k = irmetrics_cutoffs[c];
    int m = k < n ? k : n;
    int correct = 0, first = 0;
    double dcg = 0, sum_prec = 0;
    for (int i = 0; i < m; i++) {
      if (!hit[i]) continue;
      correct++;
      if (!first) first = i + 1;
      dcg += 1.0 / log2((double)i + 2.0);
      sum_prec += (double)correct / (double)(i + 1);
    }
    size_t ideal = nrel < (size_t)k ? nrel : (size_t)k;
    double idcg = 0;
    for (size_t i = 0; i < ideal; i++) idcg += 1.0 / log2((double)i + 2.0);
    res->accuracy[c] += correct > 0;
    res->precision[c] += (double)correct / k;
    res->recall[c] += (double)correct / (double)nrel;
    res->mrr[c] += first ? 1.0 / first : 0.0;
    res->ndcg[c] += dcg / idcg;
    res->map[c] += sum_prec / (double)ideal;
  }
}

static int irm_metrics(const int64_t *ranked, int nq, int K, const int64_t *qrels,
                       const int32_t *grades, size_t r, int64_t max_row,
                       irmetrics_result *res, foil_err *err) {
  memset(res, 0, sizeof *res);
  if (nq < 0 || K < 0 || (r > 0 && !qrels))
    return foil_err_set(err, FOIL_EINVAL, "irmetrics: bad arguments");
  irm_pair *rel = malloc((r ? r : 1) * sizeof *rel);
  if (!rel) return foil_err_set(err, FOIL_ENOMEM, "irmetrics: out of memory for %zu qrels", r);
  size_t n = 0;
  for (size_t i = 0; i < r; i++) {
    int64_t q = qrels[2 * i], d = qrels[2 * i + 1];
    if (q < 0 || q >= nq || d < 0 || (max_row >= 0 && d >= max_row)) {
      free(rel);
      return foil_err_set(err, FOIL_EINVAL,
                          "irmetrics: qrel %zu (query %lld, corpus row %lld) is out of range "
                          "(%d queries, %lld corpus rows)",
                          i, (long long)q, (long long)d, nq, (long long)max_row);
    }
    if (grades && grades[i] <= 0) continue;
    rel[n].q = q;
    rel[n].d = d;
    n++;
  }
  qsort(rel, n, sizeof *rel, irm_pair_cmp);
  size_t u = 0; /* drop duplicates */
  for (size_t i = 0; i < n; i++)
    if (u == 0 || irm_pair_cmp(&rel[u - 1], &rel[i]) != 0) rel[u++] = rel[i];
  size_t at = 0;
  for (int q = 0; q < nq; q++) {
    size_t start = at;
    while (at < u && rel[at].q == q) at++;
    if (at == start) {
      res->n_skipped++;
      continue;
    }
    res->n_queries++;
    irm_score_query(K > 0 ? ranked + (size_t)q * K : NULL, K, rel + start, at - start, res);
  }
  free(rel);
  if (res->n_queries > 0) {
    double inv = 1.0 / res->n_queries;
    for (int c = 0; c < IRM_NCUT; c++) {
      res->accuracy[c] *= inv;
      res->precision[c] *= inv;
      res->recall[c] *= inv;
      res->mrr[c] *= inv;
      res->ndcg[c] *= inv;
      res->map[c] *= inv;
    }
  }
  return FOIL_OK;
}

int irmetrics_compute(const irmetrics *ir, const int64_t *qrels, const int32_t *grades,
                      size_t r, irmetrics_result *res, foil_err *err) {
  return irm_metrics(ir->top_id, ir->nq, IRM_K, qrels, grades, r, ir->seen, res, err);
}

int irmetrics_from_rankings(const int64_t *ranked, int nq, int K, const int64_t *qrels,
                            const int32_t *grades, size_t r, irmetrics_result *res,
                            foil_err *err) {
  if (nq > 0 && K > 0 && !ranked) return foil_err_set(err, FOIL_EINVAL, "irmetrics: no rankings");
  return irm_metrics(ranked, nq, K, qrels, grades, r, -1, res, err);
}

double irmetrics_get(const irmetrics_result *res, const char *name) {
  static const char *names[] = {"accuracy", "precision", "recall", "mrr", "ndcg", "map"};
  const double *arrays[] = {res->accuracy, res->precision, res->recall,
                            res->mrr,      res->ndcg,      res->map};
  const char *at = name ? strchr(name, '@') : NULL;
  if (!at) return NAN;
  size_t len = (size_t)(at - name);
  char *end;
  long k = strtol(at + 1, &end, 10);
  if (*end != '\0' || end == at + 1) return NAN;
  for (int m = 0; m < 6; m++) {
    if (strlen(names[m]) != len || strncmp(names[m], name, len) != 0) continue;
    for (int c = 0; c < IRM_NCUT; c++)
      if (irmetrics_cutoffs[c] == k) return arrays[m][c];
  }
  return NAN;
}
