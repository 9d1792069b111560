/* refresh.h — the `refresh` job of foil-run: encode a corpus with a
 * checkpoint's encoder on every rank and publish the embeddings as a new
 * version of an index (storage/index.h).
 *
 *   mpirun -np R foil-run refresh SPEC.json [--root DIR] [--job-dir DIR] [--quiet]
 *
 * The spec (JSON; examples/refresh-wordnet.json), every key:
 *   kind            "refresh" (default; any other value is refused)
 *   name            the index name, [A-Za-z0-9._-]{1,128} (required):
 *                   <root>/indexes/<name>/
 *   checkpoint      a checkpoint file (.h5), or a job directory (its ckpt/
 *                   folder, or the folder itself) whose newest usable
 *                   checkpoint is taken (storage/ckpt.h ckpt_latest;
 *                   damaged ones are skipped and logged). Relative paths
 *                   are from the working directory (required). Shards
 *                   record its absolute path.
 *   corpus          what to encode (required), one of
 *                     {"dataset": NAME, "benchmark": "test"}: the corpus of
 *                       <root>/datasets/NAME/benchmarks/<benchmark>.h5
 *                       (benchmark default "test"), keys = its corpus ids;
 *                     {"file": PATH}: JSON lines {"id": "...", "text": "..."}
 *                       (relative to the working directory); ids must be
 *                       non-empty strings; a bad line is refused as FILE:LINE.
 *   dtype           "float32" (default) | "float16" | "int8" (per-row scale);
 *                   float16 and int8 shards also keep the float32 rows
 *                   (/exact) for rescoring.
 *   normalize       true (default): rows are L2-normalized, as the encoder
 *                   was trained (cosine similarity) and as foil-serve scores
 *                   (inner product). false is refused: unnormalized rows
 *                   would rank by length as much as by meaning.
 *   batch           sequences per encoder forward (default 128)
 *   keep_versions   complete versions kept after publishing (default 3)
 *   threads         BLAS/OpenMP threads per rank (default 0: the node's
 *                   cores shared among its ranks)
 *   job             the scheduler's object (foil submit), ignored here
 *
 * The model config and tokenizer come from the checkpoint (its /tokenizer
 * group, else the model.tokenizer path in the spec it records).
 *
 * Ranks: with N documents and R ranks, rank r encodes rows
 * [r·N/R, (r+1)·N/R) and writes shard r (ids = corpus row numbers, keys =
 * the corpus's ids), in batches that end at multiples of `batch` corpus
 * rows, so a row's vector does not depend on the number of ranks (the same
 * bits for the same thread count), except in a batch that a rank boundary
 * splits: its rows are padded and multiplied with other rows, and may differ
 * in the last bits. Rank 0 picks the version and broadcasts it; after
 * every shard is written rank 0 checks the attempt fence
 * (worker/run/progress.h) and publishes (manifest, CURRENT, pruning). An
 * error on any rank, or bad input found before encoding, publishes nothing;
 * a run killed at any point leaves CURRENT on the previous complete version
 * (its partial version is removed by the next publish).
 *
 * Job directory (--job-dir, else <root>/jobs/refresh-<name>): rank 0
 * appends to log (one line per event) and metrics (JSON lines: one per
 * rank with rows, seconds and sentences/s, then the published version).
 * Inside a cluster rank 0 sends progress (rows encoded of the total,
 * estimated from its own share) to its worker.
 *
 * Cost: one inference forward per batch over N/R rows per rank; memory
 * per rank: the whole corpus text (every rank reads it) plus its rows ×
 * dim floats; publishing reads every shard once (CRC-32).
 */
#ifndef FOIL_WORKER_RUN_REFRESH_H
#define FOIL_WORKER_RUN_REFRESH_H

#include "common/err.h"
#include "worker/run/comm.h"

typedef struct {
  const char *spec_path; /* the job spec (JSON), read by every rank */
  const char *root;      /* data root: datasets/, indexes/ */
  const char *job_dir;   /* where log and metrics go; NULL: <root>/jobs/refresh-<name> */
  double publish_delay_s; /* > 0: rank 0 waits this long before publishing
                           * (tests: a kill between the shards and the publish) */
  int quiet;             /* 1: no log lines on stderr */
} refresh_args;

int refresh_run(const refresh_args *a, comm *c, foil_err *err);

#endif
