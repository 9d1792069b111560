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
 *   device          "cpu" (default) | "cuda": each rank encodes on a GPU,
 *                   its node-local rank % the devices it sees (submit with
 *                   job.gpus_per_rank 1: the worker sets
 *                   CUDA_VISIBLE_DEVICES); refused where foil-run was
 *                   built without CUDA or the rank sees no device. The
 *                   vectors agree with a CPU refresh's to fp32 rounding.
 *   precision       "fp32" (default) | "bf16" (with device "cuda"): the
 *                   encoder's GEMMs on bf16 operands (ENC_BF16, the
 *                   tensor cores); the vectors then agree with an fp32
 *                   refresh's to bf16 rounding (cosines ~0.9999)
 *   mine            optional: after publishing, mine hard negatives from the
 *                   new version for the pairs of a dataset's split and
 *                   publish them as a bank (storage/negbank.h):
 *                     dataset   NAME: <root>/datasets/NAME/pairs.h5 (required)
 *                     split     "train" (default) | "dev" | "test"
 *                     top       m, negatives per pair, 1..1024 (required)
 *                     skip_top  ranks dropped after the positive, the
 *                               false-negative window (default 0)
 *                     margin    optional; drops candidates scoring above
 *                               score(query, positive) - margin (-2..2)
 *                     bank      the bank's name (default: the index name):
 *                               <root>/negatives/<bank>.h5
 *                   The rule, in worker/run/mine.h: rows whose text equals
 *                   the pair's positive are dropped, then the first
 *                   skip_top, then (margin) rows too close to the positive;
 *                   the next m are kept. A pair for which the index runs out
 *                   keeps fewer: its missing slots are row -1 and text "".
 *   job             the scheduler's object (foil submit), ignored here
 *
 * The model config and tokenizer come from the checkpoint (its /tokenizer
 * group, else the model.tokenizer path in the spec it records).
 *
 * Ranks: with N documents and R ranks, rank r encodes rows
 * [r·N/R, (r+1)·N/R) and writes shard r (ids = corpus row numbers, keys =
 * the corpus's ids), in windows of 256·`batch` rows that end at multiples
 * of that in corpus rows; each window's texts are sorted by token count
 * and encoded `batch` at a time (worker/run/encode.h: little padding). So a
 * row's vector does not depend on the number of ranks (the same bits for
 * the same thread count), except in a window that a rank boundary splits:
 * its rows are batched with other rows, and may differ in the last bits. Rank 0 picks the version and broadcasts it; after
 * every shard is written rank 0 checks the attempt fence
 * (worker/run/progress.h) and publishes (manifest, CURRENT, pruning). An
 * error on any rank, or bad input found before encoding, publishes nothing;
 * a run killed at any point leaves CURRENT on the previous complete version
 * (its partial version is removed by the next publish).
 *
 * Mining (with "mine"), after the publish: every rank opens the whole new
 * version (index_version_open, all shards) and mines pairs
 * [r·P/R, (r+1)·P/R) of the split: encodes their queries (and positives,
 * for the margin rule) with the same encoder, searches with vs_search and
 * applies the rule; rank 0 gathers the rows, checks the fence and writes
 * the bank atomically (index, version, checkpoint and step, dataset,
 * split, pair count, m, the split's fingerprint, skip_top, margin). A
 * failure while mining fails the job but leaves the version published.
 * Memory per rank: the whole version, the split's texts, P·m doubles.
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

/* Checks a refresh spec (JSON text) as refresh_run would, without reading
 * any file: FOIL_EINVAL naming the key. (The pretrain spec's "refresh"
 * object is checked with it.) */
int refresh_spec_check(const char *json, foil_err *err);

#endif
