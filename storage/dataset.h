/* dataset.h — typed writing and reading of foil's dataset files, as
 * docs/datasets.md defines them: foil.pairs.v1 (pairs.h5), foil.benchmark.v1
 * (benchmarks/<b>.h5) and foil.corpus.v1 (corpus.h5).
 *
 * Writing is staged: dataset_*_create writes a whole file under its
 * temporary name (storage/h5io.h) and hands back the open handle; the caller
 * publishes it with h5io_publish, or drops it with h5io_abandon. A command
 * that writes several files creates them all first and publishes only when
 * every one was written, so an error leaves nothing behind.
 *
 * Reading checks what it returns: the foil_format attribute, equal lengths,
 * group/offsets/qrels in range, so a loader can index without checks.
 *
 * Ownership: writers borrow the caller's arrays; readers fill a struct
 * whose every array is malloc'ed and freed by dataset_*_free (which zeroes
 * it; freeing a zeroed struct is a no-op). Cost: linear in the total text;
 * the whole split/benchmark is held in memory.
 */
#ifndef FOIL_STORAGE_DATASET_H
#define FOIL_STORAGE_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/h5io.h"

#define DATASET_PAIRS_FORMAT "foil.pairs.v1"
#define DATASET_BENCH_FORMAT "foil.benchmark.v1"
#define DATASET_CORPUS_FORMAT "foil.corpus.v1"

/* The root attributes every dataset file carries. */
typedef struct {
  const char *source;     /* what the data was built from */
  const char *created_by; /* the command line */
  uint64_t seed;          /* stored as int64 (seeds are < 2^63) */
} dataset_meta;

/* One split of a pairs file: row i is (query[i], positive[i]) with split
 * key group[i]; its hard negatives, when the file has them, are
 * negatives[negatives_offsets[i] .. negatives_offsets[i+1]). */
typedef struct {
  size_t n;
  char **query, **positive;
  int64_t *group;
  size_t n_negatives;
  char **negatives;           /* NULL when the file has no negatives */
  int64_t *negatives_offsets; /* [n+1], NULL when the file has no negatives */
} dataset_pairs;

/* A retrieval benchmark: qrels[2*k] is a query row, qrels[2*k+1] a corpus
 * row; qrels_score[k] its graded relevance (NULL: all 1). */
typedef struct {
  size_t n_queries, n_corpus, n_qrels;
  char **queries, **query_ids;
  char **corpus, **corpus_ids;
  int64_t *qrels;
  int32_t *qrels_score;
} dataset_bench;

/* The split names, in file order. */
extern const char *const dataset_splits[3]; /* "train", "dev", "test" */

/* ---- writing (staged; publish or abandon the returned handle) ---------------- */

/* splits[0..2] are train, dev, test (a NULL entry writes an empty split).
 * with_negatives: write negatives/negatives_offsets for every split (a
 * split whose negatives_offsets is NULL gets n+1 zeros). */
int dataset_pairs_create(h5io **out, const char *path, const dataset_pairs *const splits[3],
                         int with_negatives, const dataset_meta *meta, foil_err *err);
int dataset_bench_create(h5io **out, const char *path, const dataset_bench *b,
                         const dataset_meta *meta, foil_err *err);
int dataset_corpus_create(h5io **out, const char *path, char *const *ids, char *const *text,
                          size_t n, const dataset_meta *meta, foil_err *err);

/* ---- reading -------------------------------------------------------------------- */

/* One split ("train", "dev" or "test") of a pairs.h5. */
int dataset_pairs_read(const char *path, const char *split, dataset_pairs *out, foil_err *err);
void dataset_pairs_free(dataset_pairs *p);

int dataset_bench_read(const char *path, dataset_bench *out, foil_err *err);
void dataset_bench_free(dataset_bench *b);

/* corpus.h5: n ids and texts (free both with h5io_free_strings). */
int dataset_corpus_read(const char *path, char ***ids, char ***text, size_t *n, foil_err *err);

#endif
