/* loader.h — tokenized training batches of (query, positive[, negatives])
 * from one split of a pairs.h5 (docs/datasets.md), sharded over ranks.
 *
 * Global batches. Every step has one global batch of G = world·B pairs;
 * rank r gets pairs [r·B, (r+1)·B) of it, so the ranks' parts of one step
 * are disjoint and together are the global batch (the layout model/loss.h
 * gathers in rank order). Every rank computes the same plan, from the data,
 * the seed, the epoch and G alone: W ranks × batch B see exactly the pairs
 * of 1 rank × batch W·B.
 *
 * Epochs. The pairs of epoch e are visited in a permutation that is a pure
 * function of (seed, e): Fisher–Yates driven by Philox (kernels.h rng_u32,
 * stream LOADER_RNG_STREAM + e, two words per swap). The permuted pairs are
 * packed into global batches in order, with one rule: a pair whose query,
 * positive or (used) negative text equals a text already in the batch — a
 * would-be false negative — is deferred. Deferred pairs wait in arrival
 * order and get the first chance at each following batch, before new pairs
 * (the rule of sentence-transformers' NoDuplicatesBatchSampler). Nothing is
 * checked within one pair. Texts are compared exactly (byte for byte).
 *
 * Last partial batch: DROPPED (as drop_last=True in PyTorch). When the
 * permutation runs out, pairs that cannot fill one more whole global batch
 * (the remainder, and deferred pairs that would duplicate each other) are
 * skipped for this epoch; the next epoch reshuffles every pair. So an
 * epoch has floor(n/G) steps or, when deferral leaves pairs over, fewer;
 * loader_epoch_steps says how many.
 *
 * Negatives. neg_per_pair = m > 0 takes the first m hard negatives of each
 * pair from the file; pairs with fewer than m are not used (counted by
 * loader_skipped_pairs). Batch rows: B queries, B positives, then the B·m
 * negatives, pair i's at rows 2B + i·m .. 2B + i·m + m - 1.
 *
 * Bank negatives. With bank_negatives = m > 0 (neg_per_pair must be 0)
 * the negatives come from a bank handed over with loader_set_bank (the
 * trainer's data.negatives_bank, storage/negbank.h), not from the file:
 * pair i's are the bank's row i. The plan does not depend on the bank:
 * bank negatives take no part in the duplicate-deferral rule above (their
 * false-negative guard is the mining rule, worker/run/mine.h), and the
 * cursor's fingerprint ignores them, so a bank can come, go or change
 * between steps, and a resume delivers the same pairs; the same bits only
 * with the same bank. A pair with fewer than m bank negatives repeats its
 * own; one with none takes those of the next pair of its rank's batch
 * that has some (counted in bank_filled); a batch in which no pair has any
 * (or no bank yet) has no negative rows (n_neg 0).
 *
 * Tokens. Each text is encoded with the tokenizer (WordPiece: [CLS] ...
 * [SEP]), truncated to T tokens (WordPiece keeps [SEP] last, see
 * tokenizer.h), right-padded with the tokenizer's pad id; mask is 1 on real
 * tokens. T = max_len, or with pad_to_longest the longest row of this
 * rank's batch (<= max_len).
 *
 * Resume. The cursor (loader_cursor) is the seed, a fingerprint of the data
 * and of (G, neg_per_pair), the epoch and the number of steps done in it:
 * the permutation is recomputed, so there is no other RNG state. A loader
 * restored from a cursor delivers exactly the batches the saved one would
 * have delivered next — also with another world size of the same G.
 *
 * Ownership and cost: the loader borrows the tokenizer (it must outlive the
 * loader) and holds the whole split in memory (dataset_pairs_read) plus a
 * few words per pair. loader_open reads and hashes every text: linear in
 * the split's bytes. Planning an epoch is O(n) plus O(deferred pairs) per
 * batch (large only when many pairs share a text). loader_next tokenizes
 * this rank's rows only; the batch's arrays are owned by the loader and
 * valid until the next loader_next or loader_destroy. Not thread-safe.
 */
#ifndef FOIL_WORKER_RUN_LOADER_H
#define FOIL_WORKER_RUN_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/tokenizer.h"
#include "storage/dataset.h"

/* Philox stream base of the epoch permutations. */
#define LOADER_RNG_STREAM 0x6c6f616465720000ull /* "loader" */

typedef struct {
  const char *path;   /* pairs.h5 */
  const char *split;  /* "train", "dev" or "test"; NULL means "train" */
  int batch_size;     /* B: pairs per rank per step, >= 1 */
  int rank, world;    /* 0 <= rank < world */
  int max_len;        /* tokens per row, >= 1 */
  int neg_per_pair;   /* hard negatives per pair from the file, >= 0 */
  int bank_negatives; /* negatives per pair from a bank (loader_set_bank), >= 0 */
  int pad_to_longest; /* 0: rows are max_len long; 1: the batch's longest */
  uint64_t seed;
} loader_config;

typedef struct {
  uint64_t seed;
  uint64_t fingerprint; /* data + G + neg_per_pair; a restore must match */
  int64_t epoch;        /* 0-based */
  int64_t step;         /* global batches already delivered in this epoch */
} loader_cursor;

typedef struct {
  int B;                /* pairs (this rank) */
  int n_neg;            /* negative rows: B·neg_per_pair */
  int rows;             /* 2B + n_neg */
  int T;                /* tokens per row */
  const int32_t *ids;   /* [rows, T] */
  const uint8_t *mask;  /* [rows, T], 1 real token, 0 padding */
  const int64_t *pairs; /* [B] the split rows of this rank's pairs */
  int64_t epoch, step;  /* where this batch is */
  int truncated;        /* rows whose encoding was longer than max_len */
  int bank_filled;      /* bank slots filled by repetition or from another pair */
} loader_batch;

typedef struct loader loader;

/* Reads the split and checks the config. Errors: FOIL_EINVAL (bad config,
 * a split with negatives missing when neg_per_pair > 0, fewer usable pairs
 * than one global batch), FOIL_ENOMEM, and what reading the file returns. */
int loader_open(loader **out, const loader_config *cfg, const tokenizer *tok, foil_err *err);
void loader_destroy(loader **ld);

/* This rank's part of the next global batch; crosses into the next epoch
 * when this one is done. Errors: FOIL_EPRECOND when an epoch has no whole
 * batch (every pair repeats a text of the others), tokenizer errors
 * (naming the split row), FOIL_ENOMEM. */
int loader_next(loader *ld, loader_batch *batch, foil_err *err);

/* The position after the last batch delivered (a cursor saved now resumes
 * with the batch loader_next would return next). */
void loader_get_cursor(const loader *ld, loader_cursor *c);
/* Moves to c. Errors: FOIL_EPRECOND when its seed or fingerprint differ
 * from this loader's (another dataset, split, global batch or negatives
 * setting), FOIL_EINVAL on a negative epoch or step. */
int loader_set_cursor(loader *ld, const loader_cursor *c, foil_err *err);

/* Steps in the current epoch (plans it if needed). Errors as loader_next. */
int loader_epoch_steps(loader *ld, int64_t *steps, foil_err *err);
/* Hands over (or, texts NULL, takes back) a bank: texts[r·stride + k] is
 * split row r's k-th negative, count[r] how many of them exist (those
 * first). Borrowed: they must outlive their use. The next loader_next uses
 * the first bank_negatives of each row. FOIL_EINVAL when the loader was
 * opened without bank_negatives or stride is smaller. */
int loader_set_bank(loader *ld, char *const *texts, const int32_t *count, int stride, foil_err *err);

/* The split as read (for the trainer's bank checks). */
const dataset_pairs *loader_pairs(const loader *ld);

/* Pairs in the split, and those skipped for too few negatives. */
size_t loader_num_pairs(const loader *ld);
size_t loader_skipped_pairs(const loader *ld);

#endif
