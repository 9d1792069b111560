/* mine.h — the hard-negative mining rule (ANCE-style negatives from the
 * live index), apart from files and ranks so that it can be tested on a
 * hand-made index.
 *
 * For a pair (query q, positive p with text P) and the index's rows ranked
 * by score(q, row) (vsearch.h: inner product of unit rows, ties by lower
 * id), walking the ranking from the top:
 *   1. a row whose corpus text equals P byte for byte is dropped (the
 *      positive itself, or a copy of it);
 *   2. the first skip_top of the remaining rows are dropped (the false-
 *      negative window: the very best rows are often unlabeled positives);
 *   3. with a margin x, a row scoring above score(q, p) - x is dropped
 *      (too close to the positive to be a safe negative);
 *   4. the next `top` rows are kept, best first.
 * When the index runs out first, the pair keeps fewer: the rest of its
 * slots are -1 and *found says how many were kept.
 *
 * The search asks vs_search for skip_top + top + 9 candidates per query
 * and, for the queries that did not fill their slots, doubles that while
 * it stays small (<= 32); a query still short then takes the deep path:
 * two passes over the whole index (scores from each block's float32 copy
 * when it has one, else the stored rows) that find the rows above the
 * margin threshold that fill the window and the best rows below it,
 * without ranking everything. Either way the result is that of walking
 * the full ranking (float16/int8 blocks with a float32 copy: ranked by
 * that copy in both paths; without one, by their stored rows).
 *
 * Cost: a vs_search over all blocks per round (1 to 3 rounds), up to 4 Mi
 * candidates of memory per search; the deep path 2·n_rows·d per query
 * that takes it (many early in training with a margin, when the positive
 * scores low and most rows are too close to it).
 */
#ifndef FOIL_WORKER_RUN_MINE_H
#define FOIL_WORKER_RUN_MINE_H

#include <stdint.h>

#include "common/err.h"
#include "model/vsearch.h"

typedef struct {
  int top;        /* m: negatives kept per pair, >= 1 */
  int skip_top;   /* rows dropped after the positive, >= 0 */
  int has_margin; /* 1: apply the margin rule */
  float margin;
} mine_rule;

/* blocks: the index (ids are corpus rows, 0 <= id < n_corpus, n_rows rows
 * in all); corpus: the texts of those rows. q, pos: n unit queries and
 * positives [n, d] (pos may be NULL without a margin); pos_texts: the n
 * positives' texts. Writes rows [n, top] (-1: none) and, when found is not
 * NULL, found [n]. Errors: FOIL_EINVAL (bad rule, an id outside the
 * corpus), FOIL_ENOMEM, and vs_search's. */
int mine_select(const vs_block *blocks, int nblocks, int64_t n_rows, char *const *corpus, int64_t n_corpus,
                const float *q, const float *pos, char *const *pos_texts, int n, const mine_rule *r,
                int64_t *rows, int *found, foil_err *err);

#endif
