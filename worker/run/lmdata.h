/* lmdata.h — training and evaluation rows of a decoder job from an lm
 * dataset (docs/datasets.md, foil.lm.v1).
 *
 * Packing (as GPT-2's training): the documents of a split, in file order,
 * are tokenized with the job's BPE tokenizer and joined into one stream,
 * each document followed by the end-of-text token (tokenizer_pad_id). The
 * stream is cut into N = (tokens − 1) / T windows of T + 1 tokens that
 * overlap by one: window k holds stream[kT .. kT + T]; its inputs are the
 * first T tokens and its targets the last T (the next token at every
 * position). Rows are never padded, so every position has a target and
 * SimCTG's padding mask is all ones (a window may span a document
 * boundary, as GPT-2's do; attention then sees the previous document
 * across the end-of-text token). The tail shorter than a window is unused.
 *
 * Order: epoch e visits the windows in a permutation drawn from (seed, e)
 * (Fisher–Yates). A global step takes the next W·B windows of the epoch
 * (W ranks, B rows each; an epoch has floor(N / (W·B)) steps, the rest of
 * the permutation is skipped); rank r gets rows [r·B, r·B + B) of them. So
 * the rows of step s are a pure function of (seed, s, W·B): 2 ranks × B
 * rows see exactly the rows of 1 rank × 2B, and resuming needs only the
 * step and W·B (the checkpoint's cursor is {seed, fingerprint, step, W·B};
 * the fingerprint is the data's alone, the same for every W and B).
 *
 * Evaluation (lmdata_window) reads windows in order, unshuffled.
 * Ownership: lmdata_open returns an object freed with lmdata_destroy(&d);
 * it keeps the token stream (4 bytes a token) and one permutation (8 bytes
 * a window). Cost of opening: one tokenization of the split.
 */
#ifndef FOIL_WORKER_RUN_LMDATA_H
#define FOIL_WORKER_RUN_LMDATA_H

#include <stdint.h>

#include "common/err.h"
#include "model/tokenizer.h"

typedef struct lmdata lmdata;

typedef struct {
  const char *path;   /* <root>/datasets/<name>/lm.h5 */
  const char *split;  /* "train", "valid", "test" */
  int seq_len;        /* T */
  int batch_size;     /* B: rows per rank per step */
  int rank, world;
  uint64_t seed;
  int max_doc_tokens; /* 0: LMDATA_DOC_TOKENS_MAX; a longer document is refused (FOIL_EINVAL) */
} lmdata_config;

/* The most tokens a document may have: tokenizer_encode writes an int
 * count, so a document is encoded in one call of at most 2^30 ids. */
#define LMDATA_DOC_TOKENS_MAX (1 << 30)

int lmdata_open(lmdata **out, const lmdata_config *c, const tokenizer *tok, foil_err *err);
void lmdata_destroy(lmdata **d);

int64_t lmdata_tokens(const lmdata *d);   /* length of the stream */
int64_t lmdata_windows(const lmdata *d);  /* N */
int64_t lmdata_docs(const lmdata *d);
int64_t lmdata_steps_per_epoch(const lmdata *d);
/* A hash of the stream and T: a resume checks the data did not change. */
uint64_t lmdata_fingerprint(const lmdata *d);

/* This rank's rows of global step `step`: ids and targets [B, T]. *epoch
 * (may be NULL) gets the step's epoch. Errors only when out of memory. */
int lmdata_batch(lmdata *d, int64_t step, int32_t *ids, int32_t *targets, int64_t *epoch, foil_err *err);

/* Window k (0 <= k < N) in stream order: ids and targets [T]. */
void lmdata_window(const lmdata *d, int64_t k, int32_t *ids, int32_t *targets);

#endif
