/* lmtrain.h — the `pretrain` job for a decoder (spec model.kind
 * "decoder"): causal language modelling on an lm dataset, optionally with
 * SimCTG's token-level contrastive loss, data parallel over the ranks of a
 * comm, with checkpoints, exact resume and validation perplexity.
 * pretrain_run dispatches here; the arguments are pretrain.h's.
 *
 * Per step (every rank): this rank's B rows of T tokens (worker/run/
 * lmdata.h: packed, ordered by the seed), one training forward (dropout
 * masks from (seed, step)), L = MLE + SimCTG (model/simctg.h, when
 * loss.simctg_margin ρ > 0, on the last-layer states, normalized by
 * Σ_b T(T−1) — rows are never padded, so SimCTG's mask is all ones),
 * backward, gradients averaged over ranks (worker/run/comm.h), clipping,
 * AdamW at the scheduled learning rate. Every rank has the same number of
 * target tokens and pairs, so the averaged gradient is that of the global
 * batch: N ranks × B rows equal 1 rank × N·B rows up to float rounding
 * (exactly the same rows; with model.dropout 0 the same math).
 *
 * Evaluation (eval.every_steps and at the end): mean next-token loss and
 * perplexity over the first eval.tokens tokens of the valid split (whole
 * windows, no dropout), windows dealt round-robin to the ranks and the
 * sums reduced. Rank 0 writes the job directory as pretrain.h describes:
 * log, metrics (JSON lines: {"step","loss","mle","ppl","simctg","lr",
 * "grad_norm","tokens_per_s",...} every log step; {"step","eval":"valid",
 * "val_loss","val_ppl","tokens"} every evaluation; a value that is not
 * finite is null, perplexities have 6 significant digits, and a value
 * whose usual format would take more than 24 characters has 9 significant
 * digits; tokens_per_s is over the steps' own time, time_compute_s +
 * time_comm_s + time_data_s, not over evaluations and checkpoints between
 * log lines; on GPU ranks with more than one rank the gradient all-reduce
 * overlaps the backward and its time is in time_compute_s, time_comm_s is
 * then about 0), ckpt/step_<n>.h5 (a decoder checkpoint:
 * storage/ckpt.h with the tokenizer and the cursor {seed, data fingerprint,
 * step, global batch W·B}; written after that step's evaluation and with
 * the metrics through it on disk). A job directory with a usable checkpoint is
 * resumed from it bit for bit (same world size; another W with the same
 * W·B takes the same rows, up to float rounding); one written with another seed,
 * other data, another W·B or a step outside 0..steps is refused, and so is
 * one written before the cursor held W·B (run those again in a new job
 * directory). A run drops the metrics lines after the step it starts from
 * (all of them on a fresh start), an earlier attempt's that it logs again,
 * so each step has one line of each kind; the log keeps every attempt's.
 *
 * Failures: setup agrees across ranks at every collective (every rank
 * reaches the same ones, so one rank's error, e.g. rank 0 unable to make
 * the job directory, fails the job instead of hanging it), and checks that
 * every rank read the same spec and tokenized the same data into the same
 * model size. A step whose loss or gradient norm is not finite ends the job
 * before the optimizer update, so no checkpoint holds its effect.
 */
#ifndef FOIL_WORKER_RUN_LMTRAIN_H
#define FOIL_WORKER_RUN_LMTRAIN_H

#include "common/err.h"
#include "worker/run/comm.h"
#include "worker/run/pretrain.h"

int lmtrain_run(const pretrain_args *a, comm *c, foil_err *err);

#endif
