/* textmetrics.h — the text metrics of open-ended generation, as the
 * contrastive-search papers define them (SimCTG's evaluation scripts).
 *
 * Tokens are WHITESPACE tokens: a text is split as Python's str.split()
 * with no argument splits it (runs of ASCII whitespace, \x1c-\x1f, and the
 * Unicode spaces U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
 * U+202F, U+205F, U+3000 in UTF-8), so leading/trailing space never counts.
 *
 *   rep-n      = 1 − Σ_docs unique_n(doc) / Σ_docs total_n(doc), n = 2, 3, 4:
 *                n-grams are counted PER DOCUMENT (a repeat across two
 *                documents is no repeat) and the counts summed.
 *                QUIRK FOLLOWED: SimCTG's eval_text loops `while end_idx <
 *                len(tokens)`, so a document of k tokens offers the k − n
 *                n-grams that START before its last n tokens' window — the
 *                final n-gram is never counted (k <= n: none). Every
 *                published rep-n/diversity table uses this count, so foil
 *                does too, to stay comparable.
 *   diversity  = Π_{n=2..4} (1 − rep-n).
 *                QUIRK NOT FOLLOWED: SimCTG rounds each rep-n (in percent)
 *                to 2 decimals before the product; foil keeps full
 *                precision (the difference is below 5e-5 per factor).
 *                A corpus with no n-gram at all (every document <= n
 *                tokens) has rep-n 0 here (SimCTG divides by zero).
 *   length     = whitespace tokens of a generation; the table shows the mean.
 *   coherence  = mean over documents of cos(e(prompt), e(generation)), the
 *                embeddings from a foil encoder (SimCTG uses SimCSE's).
 *   perplexity = exp(Σ nll / Σ tokens) over every scored continuation token
 *                (corpus-level, token-weighted, as lm-eval / HF do), each
 *                token's nll conditioned on its prompt and the tokens before.
 *
 * Nothing here allocates beyond a call's own scratch (freed before return)
 * or does I/O. Cost: rep-n O(k log k · n) string compares per document of k
 * tokens; the rest linear.
 */
#ifndef FOIL_MODEL_TEXTMETRICS_H
#define FOIL_MODEL_TEXTMETRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum { TM_NREP = 3 }; /* n = 2, 3, 4 */

/* n-gram counts of a set of documents, summed over documents. */
typedef struct {
  int64_t unique[TM_NREP]; /* distinct n-grams per document, summed (n = 2 + i) */
  int64_t total[TM_NREP];  /* n-grams per document (k − n, SimCTG), summed */
  int64_t tokens;          /* whitespace tokens, summed */
  int64_t docs;
} tm_counts;

/* Whitespace tokens of text (NUL-terminated UTF-8). O(len). */
size_t tm_length(const char *text);

/* Adds one document's counts to c (zero c first: memset or {0}). Returns 0 or
 * FOIL_ENOMEM. */
int tm_count(tm_counts *c, const char *text, foil_err *err);

/* rep-n (index n − 2) and diversity from counts. */
double tm_rep(const tm_counts *c, int n);
double tm_diversity(const tm_counts *c);

/* Mean over the n rows of the cosine between a[i] and b[i] ([n, dim] each;
 * rows need not be normalized; a zero row gives cosine 0). Summed in
 * double. n = 0: 0. */
double tm_coherence(const float *a, const float *b, size_t n, int dim);

/* exp(nll_sum / tokens); tokens = 0: NAN. */
double tm_perplexity(double nll_sum, int64_t tokens);

#endif
