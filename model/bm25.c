/* bm25.c — inverted index and BM25 scoring (see bm25.h). */
#include "model/bm25.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct bm25 {
  int ndocs, nterms;
  float k1, b;
  int64_t *start;  /* [nterms+1]: postings of term t are [start[t], start[t+1]) */
  int32_t *doc;    /* posting: document */
  float *tf;       /* posting: term frequency */
  float *idf;      /* [nterms] */
  float *norm;     /* [ndocs]: k1·(1 - b + b·|d|/avgdl) */
};

void bm25_destroy(bm25 **xp) {
  if (!xp || !*xp) return;
  bm25 *x = *xp;
  free(x->start);
  free(x->doc);
  free(x->tf);
  free(x->idf);
  free(x->norm);
  free(x);
  *xp = NULL;
}

int bm25_num_docs(const bm25 *x) { return x->ndocs; }

int bm25_build(bm25 **out, const int32_t *const *docs, const int *lens, int ndocs, int nterms,
               float k1, float b, foil_err *err) {
  *out = NULL;
  if (ndocs < 1 || nterms < 1)
    return foil_err_set(err, FOIL_EINVAL, "BM25 needs documents and terms (got %d, %d)", ndocs, nterms);
  bm25 *x = calloc(1, sizeof *x);
  if (!x) return foil_err_set(err, FOIL_ENOMEM, "out of memory for the BM25 index");
  x->ndocs = ndocs, x->nterms = nterms, x->k1 = k1, x->b = b;
  x->start = calloc((size_t)nterms + 1, sizeof(int64_t));
  x->idf = malloc(sizeof(float) * (size_t)nterms);
  x->norm = malloc(sizeof(float) * (size_t)ndocs);
  /* pass 1: postings per term = number of distinct (term, doc) pairs. A
   * per-term "last doc seen" marks repeats within a document. */
  int32_t *last = malloc(sizeof(int32_t) * (size_t)nterms);
  if (!x->start || !x->idf || !x->norm || !last) goto oom;
  for (int t = 0; t < nterms; t++) last[t] = -1;
  double total_len = 0;
  for (int d = 0; d < ndocs; d++) {
    total_len += lens[d];
    for (int i = 0; i < lens[d]; i++) {
      int32_t t = docs[d][i];
      if (t < 0 || t >= nterms) continue;
      if (last[t] != d) last[t] = d, x->start[t + 1]++;
    }
  }
  for (int t = 0; t < nterms; t++) x->start[t + 1] += x->start[t];
  int64_t np = x->start[nterms];
  x->doc = malloc(sizeof(int32_t) * (size_t)(np ? np : 1));
  x->tf = calloc((size_t)(np ? np : 1), sizeof(float));
  int64_t *fillp = malloc(sizeof(int64_t) * (size_t)nterms);
  if (!x->doc || !x->tf || !fillp) {
    free(fillp);
    goto oom;
  }
  /* pass 2: fill postings in document order */
  memcpy(fillp, x->start, sizeof(int64_t) * (size_t)nterms);
  for (int t = 0; t < nterms; t++) last[t] = -1;
  for (int d = 0; d < ndocs; d++)
    for (int i = 0; i < lens[d]; i++) {
      int32_t t = docs[d][i];
      if (t < 0 || t >= nterms) continue;
      if (last[t] != d) {
        last[t] = d;
        x->doc[fillp[t]] = d;
        fillp[t]++;
      }
      x->tf[fillp[t] - 1] += 1.0f;
    }
  free(fillp);
  free(last);
  double avgdl = total_len / ndocs;
  for (int t = 0; t < nterms; t++) {
    double df = (double)(x->start[t + 1] - x->start[t]);
    x->idf[t] = (float)log(1.0 + (ndocs - df + 0.5) / (df + 0.5));
  }
  for (int d = 0; d < ndocs; d++)
    x->norm[d] = (float)(k1 * (1.0 - b + b * (avgdl > 0 ? lens[d] / avgdl : 0.0)));
  *out = x;
  return FOIL_OK;
oom:
  free(last);
  bm25_destroy(&x);
  return foil_err_set(err, FOIL_ENOMEM, "out of memory for the BM25 index of %d documents", ndocs);
}

void bm25_score(const bm25 *x, const int32_t *q, int qlen, float *scores) {
  memset(scores, 0, sizeof(float) * (size_t)x->ndocs);
  for (int i = 0; i < qlen; i++) {
    int32_t t = q[i];
    if (t < 0 || t >= x->nterms) continue;
    float idf = x->idf[t], k1p = x->k1 + 1.0f;
    for (int64_t p = x->start[t]; p < x->start[t + 1]; p++) {
      float tf = x->tf[p];
      int32_t d = x->doc[p];
      scores[d] += idf * tf * k1p / (tf + x->norm[d]);
    }
  }
}
