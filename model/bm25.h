/* bm25.h — Okapi BM25 over integer terms, the lexical baseline foil's
 * retrieval results are compared with.
 *
 * score(q, d) = sum over query terms t (repeats count again) of
 *   idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 - b + b·|d|/avgdl)),
 *   idf(t) = ln(1 + (N - df(t) + 0.5)/(df(t) + 0.5))
 * (Lucene's / Pyserini's idf; defaults k1 = 0.9, b = 0.4 as Pyserini's).
 * Terms are whatever integer ids the caller's analyzer produces (foil uses
 * its tokenizer's ids without special tokens).
 * Index: an inverted list per term; memory O(total postings). Scoring a
 * query touches only the postings of its terms.
 * Ownership: bm25_build returns an index freed with bm25_destroy(&x).
 */
#ifndef FOIL_MODEL_BM25_H
#define FOIL_MODEL_BM25_H

#include <stdint.h>

#include "common/err.h"

typedef struct bm25 bm25;

/* docs[i] holds lens[i] term ids in [0, nterms). */
int bm25_build(bm25 **out, const int32_t *const *docs, const int *lens, int ndocs, int nterms,
               float k1, float b, foil_err *err);
void bm25_destroy(bm25 **x);
int bm25_num_docs(const bm25 *x);
/* scores[ndocs] = BM25 of the query against every document (0 where no
 * term matches). Terms outside [0, nterms) are ignored. */
void bm25_score(const bm25 *x, const int32_t *q, int qlen, float *scores);

#endif
