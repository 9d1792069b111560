/* irmetrics.h — retrieval metrics of a set of queries against a corpus that
 * arrives chunk by chunk.
 *
 * The caller creates an irmetrics object with the query embeddings, then
 * offers the corpus embeddings in chunks of any size (irmetrics_add); each
 * chunk is scored with one sgemm and merged into per-query lists of the
 * IRM_K best documents (kernels.h topk_merge). Memory is independent of the
 * corpus size: the queries, the lists (nq·IRM_K scores and ids) and a
 * scratch block of at most IRM_SCRATCH scores. Then irmetrics_compute turns
 * the lists and the relevance judgements (qrels) into metrics.
 *
 * Scores are cosine similarities (normalize = 1: queries and every chunk are
 * L2-normalized, then dotted) or raw dot products (normalize = 0). Corpus
 * rows are numbered in arrival order from 0: that number is the "corpus row"
 * of the qrels and the id in the lists. Ties: equal scores rank the lower
 * corpus row first (see topk_merge); sentence-transformers' torch.topk +
 * heapq order tied scores differently, so results agree with it exactly
 * wherever no two scores tie at a rank boundary that matters.
 *
 * The metrics are those of sentence-transformers' InformationRetrievalEvaluator
 * (binary relevance), computed per query over the ranked list, then averaged
 * over the queries that have at least one relevant document (the others are
 * skipped, as it does). For a query with relevant set R and ranked list
 * d_1, d_2, ... and hits h_i = [d_i in R]:
 *   accuracy@k  = 1 if some h_i = 1 for i <= k, else 0
 *   precision@k = (sum_{i<=k} h_i) / k
 *   recall@k    = (sum_{i<=k} h_i) / |R|
 *   mrr@k       = 1 / (first i <= k with h_i = 1), or 0
 *   ndcg@k      = (sum_{i<=k} h_i / log2(i+1)) / (sum_{i<=min(k,|R|)} 1 / log2(i+1))
 *   map@k       = (sum_{i<=k, h_i=1} precision@i) / min(k, |R|)
 * Every metric is computed at every cutoff in irmetrics_cutoffs
 * (1, 3, 5, 10, 100), which covers the evaluator's defaults (accuracy and
 * precision/recall @1,3,5,10, MRR@10, NDCG@10, MAP@100) and Recall@100.
 *
 * Ownership: irmetrics_new returns an object freed with irmetrics_destroy.
 * Not thread-safe; the sgemm and merge inside use the kernel threads.
 */
#ifndef FOIL_MODEL_IRMETRICS_H
#define FOIL_MODEL_IRMETRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum {
  IRM_K = 100,             /* list length per query: the largest cutoff */
  IRM_NCUT = 5,            /* number of cutoffs */
  IRM_SCRATCH = 1 << 24,   /* most scores scored at once (64 MiB) */
};
/* The cutoffs, ascending: 1, 3, 5, 10, 100. */
extern const int irmetrics_cutoffs[IRM_NCUT];

typedef struct {
  int n_queries; /* queries averaged over (those with >= 1 relevant document) */
  int n_skipped; /* queries without a relevant document */
  /* means over the n_queries, at cutoff irmetrics_cutoffs[c] */
  double accuracy[IRM_NCUT];
  double precision[IRM_NCUT];
  double recall[IRM_NCUT];
  double mrr[IRM_NCUT];
  double ndcg[IRM_NCUT];
  double map[IRM_NCUT];
} irmetrics_result;

typedef struct irmetrics irmetrics;

/* Copies queries [nq, D] (normalized when normalize != 0) and empties the
 * lists. Errors: FOIL_EINVAL on nq < 1 or D < 1, FOIL_ENOMEM. */
int irmetrics_new(irmetrics **out, const float *queries, int nq, int D, int normalize,
                  foil_err *err);
void irmetrics_destroy(irmetrics **ir);

/* Scores the next nc corpus rows corpus [nc, D] (rows seen so far ..
 * seen+nc-1) against every query and merges them into the lists. nc == 0
 * is a no-op. Cost: 2·nq·nc·D flops + nq·nc compares (+ normalization).
 * Scratch grows to nq·min(nc, IRM_SCRATCH/nq) + that many rows·D floats at
 * most, once. Errors: FOIL_EINVAL on nc < 0, FOIL_ENOMEM. */
int irmetrics_add(irmetrics *ir, const float *corpus, int nc, foil_err *err);
/* Corpus rows offered so far. */
int64_t irmetrics_corpus_rows(const irmetrics *ir);
int irmetrics_num_queries(const irmetrics *ir);

/* The lists, [nq, IRM_K] each, best first; empty slots have id -1 and
 * score -INFINITY. Owned by ir; valid until the next add or destroy. */
void irmetrics_topk(const irmetrics *ir, const float **scores, const int64_t **ids);

/* Metrics of the lists against qrels [r, 2] (query row, corpus row).
 * grades [r] may be NULL (every pair relevant); otherwise a pair is
 * relevant when its grade is > 0. A pair listed twice counts once. A corpus
 * row must be < irmetrics_corpus_rows. Cost O(nq·IRM_K + r·log r).
 * Errors: FOIL_EINVAL on a row out of range, FOIL_ENOMEM. */
int irmetrics_compute(const irmetrics *ir, const int64_t *qrels, const int32_t *grades,
                      size_t r, irmetrics_result *res, foil_err *err);

/* The same metrics from given rankings: ranked [nq, K] holds corpus rows
 * best first, a negative entry ending a query's list early. Corpus rows in
 * qrels need only be >= 0 (a relevant document that was never ranked still
 * counts in |R|). Cutoffs above K see no further documents. */
int irmetrics_from_rankings(const int64_t *ranked, int nq, int K, const int64_t *qrels,
                            const int32_t *grades, size_t r, irmetrics_result *res,
                            foil_err *err);

/* One metric by name, e.g. "ndcg@10", "map@100", "recall@1" (names in lower
 * case as above, at one of the cutoffs); NAN when the name is not known. */
double irmetrics_get(const irmetrics_result *res, const char *name);

#endif
