/* spec.h — the pretrain job spec: JSON in, a checked struct out.
 *
 * Rule for units: a key names its unit when it has one (`steps`,
 * `every_steps`, `warmup_steps`, `queue_size`); plain numbers elsewhere are
 * dimensionless. Every key has a default or a clear "required" error;
 * unknown keys and out-of-range values are errors that name the key by its
 * path ("optimizer.lr"). examples/pretrain-*.json document every key.
 *
 * The top-level object "job" is the scheduler's (ranks, time limit,
 * dependencies...: cli/jobspec.h reads it for `foil submit`); foil-run
 * accepts it and ignores it.
 *
 * Ownership: spec_parse fills a caller-owned struct; strings inside it are
 * copies freed by spec_free.
 */
#ifndef FOIL_WORKER_RUN_SPEC_H
#define FOIL_WORKER_RUN_SPEC_H

#include <stdint.h>

#include "common/err.h"
#include "model/decoder.h"
#include "model/encoder.h"

enum { LOSS_INFONCE = 0, LOSS_DCL = 1, LOSS_SIMCSE = 2, LOSS_MOCO = 3, LOSS_CAUSAL_LM = 4 };
enum { MODEL_ENCODER = 0, MODEL_DECODER = 1 };
enum { SCHED_CONSTANT = 0, SCHED_COSINE = 1, SCHED_LINEAR = 2 };

typedef struct {
  char *name;               /* job name (default "pretrain") */
  uint64_t seed;            /* default 1 */
  int model_kind;           /* model.kind: "encoder" (default) or "decoder" */
  encoder_config model;     /* model.* of an encoder; vocab is 0 here: the tokenizer sets it */
  decoder_config dmodel;    /* model.* of a decoder (model.kind "decoder"): n_layers, d_model,
                             * n_heads, d_ff, max_len (the training sequence length), dropout,
                             * ln_eps as the encoder's keys; no proj_dim, norm (always pre-LN) or
                             * pooling. vocab 0 here: the BPE tokenizer (a vocab.json) sets it.
                             * A decoder job: data.dataset names an lm dataset (lm.h5), loss.kind
                             * is "causal_lm" (its default), batch_per_rank counts sequences of
                             * max_len tokens; data.benchmark, negatives, micro_batch, refresh
                             * and init_from are encoder-only (worker/run/lmtrain.h). */
  float simctg_margin;      /* loss.simctg_margin ρ (decoder; default 0 = SimCTG off; the paper's 0.5) */
  int64_t eval_tokens;      /* eval.tokens (decoder): validation tokens per evaluation, from the
                             * start of the valid split (default 65536; 0 = the whole split) */
  char *init_from;          /* init_from: a checkpoint (e.g. `foil model import`'s) whose config,
                             * weights and tokenizer the job starts from (default none). The
                             * model's sizes, norm, pooling, ln_eps and projection are then the
                             * checkpoint's and may not be given; model.dropout applies;
                             * model.max_len, if given, is the training sequence length (at most
                             * the checkpoint's positions; default min(positions, 128)); the
                             * tokenizer is the checkpoint's unless model.tokenizer names one.
                             * Resuming from the job's own checkpoints takes precedence. */
  int seq_len;              /* tokens per training/eval text: model.max_len, or as above */
  char *tokenizer;          /* model.tokenizer: vocab.txt or vocab.json path (required; relative
                             * paths are taken from the working directory) */
  char *dataset;            /* data.dataset: name under <root>/datasets (required) */
  char *benchmark;          /* data.benchmark: benchmark name, "" for none (default "test") */
  char *negatives_bank;     /* data.negatives_bank: NAME of <root>/negatives/NAME.h5 (default none).
                             * Pair i's loss.hard_negatives negatives come from the bank's row i
                             * (storage/negbank.h) instead of pairs.h5; until a bank exists, steps
                             * train with in-batch negatives only. Needs loss.hard_negatives >= 1. */
  int64_t negatives_check_every; /* data.negatives_check_every: steps between looks for a newer bank
                                  * (default: log_every_steps) */
  int pad_max_len;          /* data.padding: "longest" (0, default: a rank's rows are padded to its
                             * batch's longest) or "max_len" (1: every row to max_len tokens —
                             * fixed shapes; and, with dropout on, W ranks × B pairs then train
                             * exactly as 1 rank × W·B, since a row's dropout masks depend on its
                             * place in the global batch and on the padded length) */
  int loss;                 /* loss.kind: infonce|dcl|simcse|moco (encoder), causal_lm (decoder) */
  float temperature;        /* loss.temperature (default 0.05) */
  int learnable_temperature;/* loss.learnable_temperature (default false) */
  int symmetric;            /* loss.symmetric (default false) */
  int hard_negatives;       /* loss.hard_negatives per pair (default 0) */
  int64_t queue_size;       /* loss.queue_size (MoCo; default 4096) */
  float momentum;           /* loss.momentum (MoCo; default 0.999) */
  int momentum_schedule;    /* loss.momentum_schedule: constant|cosine (to 1) */
  int batch_per_rank;       /* pairs per rank per step (default 32) */
  int micro_batch;          /* GradCache micro-batch in pairs, 0 = off */
  int64_t steps;            /* required */
  float lr, beta1, beta2, eps, weight_decay, max_grad_norm; /* optimizer.* */
  int64_t warmup_steps;     /* optimizer.warmup_steps (default 0) */
  int schedule;             /* optimizer.schedule: constant|cosine|linear (default cosine) */
  int64_t checkpoint_every_steps; /* checkpoint.every_steps (default: steps) */
  int checkpoint_keep_last;       /* checkpoint.keep_last (default 2) */
  int64_t checkpoint_keep_every_steps; /* checkpoint.keep_every_steps (default 0 = none) */
  int64_t eval_every_steps; /* eval.every_steps (default: steps, i.e. at the end) */
  int eval_at_start;        /* eval.at_start (default false): evaluate the starting weights (init_from's,
                             * or the fresh ones) before step 1, as step 0, as transformers'
                             * eval_on_start; not again on a resume past step 0 */
  int64_t log_every_steps;  /* default 10 */
  int threads;              /* per rank, 0 = all cores / ranks on the node */
  int device;               /* device: "cpu" (0, default) | "cuda" (1): each rank trains on a GPU,
                             * its node-local rank % the devices it sees (job.gpus_per_rank 1),
                             * collectives over NCCL; encoders and decoders. Checkpoints are the
                             * same files either way (a run resumes on the other device). */
  int precision;            /* precision: "fp32" (0, default) | "bf16" (1, with device "cuda"): mixed
                             * precision, bf16 GEMM operands on the tensor cores, fp32 master weights,
                             * gradients, optimizer and loss (ENC_BF16 of model/encoder.h and
                             * model/decoder.h) */
  /* refresh: the loop's object, for the coordinator (foil-run only checks it):
   *   every_steps  N (required): after the checkpoint of every step that is a
   *                multiple of N the coordinator submits a refresh job; a
   *                multiple of checkpoint.every_steps
   *   index        the index name (required), the refresh spec's "name"
   *   ranks        the refresh job's ranks (default 1)
   *   corpus, dtype, keep_versions, mine, batch, threads: as in the refresh
   *                spec (worker/run/refresh.h), copied into it
   * The refresh job encodes with that checkpoint file: keep it until the
   * job runs (checkpoint.keep_last, or keep_every_steps = every_steps). */
  char *refresh_json;       /* the object as JSON text, or NULL */
  int64_t refresh_every_steps;
} spec;

/* Parses and checks. On error, fills err with the key and the reason and
 * returns FOIL_EINVAL; s is left freed. */
int spec_parse(spec *s, const char *json, foil_err *err);
void spec_free(spec *s);

/* Learning rate at 0-based step: linear warmup to lr over warmup_steps, then
 * the schedule down to 0 at `steps`. */
float spec_lr_at(const spec *s, int64_t step);
/* MoCo momentum at step: constant, or cosine from momentum up to 1. */
float spec_momentum_at(const spec *s, int64_t step);

#endif
