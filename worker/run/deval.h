/* deval.h — the `decode-eval` job of foil-run: generate continuations of a
 * set of prompts with several decoding methods (model/generate.h) on a
 * decoder checkpoint, score every method's generations with foil's text
 * metrics (worker/run/textscore.h: the same code as `foil textmetrics`),
 * and time them.
 *
 *   mpirun -np R foil-run decode-eval SPEC.json [--root DIR] [--job-dir DIR] [--quiet]
 *
 * The spec (JSON; examples/decode-eval-lm.json), every key:
 *   kind            "decode-eval" (default; any other value is refused)
 *   name            the job's name, [A-Za-z0-9._-]{1,128} (default
 *                   "decode-eval"): the job directory without --job-dir is
 *                   <root>/jobs/decode-eval-<name>
 *   model           the decoder: a checkpoint file (.h5), or a job directory
 *                   (its ckpt/ folder, or the folder itself) whose newest
 *                   usable checkpoint is taken — the rule of refresh's
 *                   "checkpoint" (required). Its tokenizer is the one stored
 *                   in the checkpoint.
 *   amateur         the amateur decoder for contrastive_decoding, the same
 *                   forms (required when a method is contrastive_decoding,
 *                   refused otherwise); same vocabulary as the model.
 *   prompts         what to continue (required), one of
 *                     {"dataset": NAME}: prompts/prompt of
 *                       <root>/datasets/NAME/lm.h5, prompts/continuation as
 *                       the references (docs/datasets.md);
 *                     {"file": PATH}: JSON lines {"prompt": "...",
 *                       "context": "..." (optional), "reference": "..."
 *                       (optional)}; a bad line is refused as FILE:LINE;
 *                   and in both
 *                     n_prompts    the first N prompts only (default: all)
 *                     query_words  the context rule of an lm prompt for
 *                                  cad/adacad/combine (default 8, 1..64)
 *   methods         a non-empty list (at most 32) of objects
 *                   {"name": unique label (default: the method),
 *                    "method": one of greedy | beam | sample |
 *                      contrastive_search | contrastive_decoding | cad |
 *                      adacad | dola | combine (required),
 *                    and that method's parameters (others are refused):
 *                     greedy/sample/cad/adacad/dola/combine:
 *                       repetition_penalty (1; dola 1.2, as HF and the
 *                       paper advise), do_sample (sample: true, else
 *                       false), temperature (1), top_k (0 = off), top_p
 *                       (1 = off)
 *                     beam: num_beams (4), length_penalty (1),
 *                       early_stopping (false), repetition_penalty (1)
 *                     contrastive_search: top_k (5), alpha (0.6),
 *                       repetition_penalty (1)
 *                     contrastive_decoding: alpha (0.1), beta (1.0),
 *                       tau_ama (0.5), num_beams (5), length_penalty (1),
 *                       early_stopping (false), ignore_prefix (true)
 *                     cad: alpha (0.5): weights (1+α, -α)
 *                     adacad: alpha_floor (0 = none)
 *                     dola: layers ("high" | "low" | [layer, ...]),
 *                       relative_top (0.1)
 *                     combine: weights [w_context, w_plain] (required)}
 *                   The defaults are generate.h's.
 *   max_new_tokens  tokens generated per prompt at most (default 64,
 *                   1..4096); prompt + max_new_tokens must fit the model's
 *                   max_len: longer prompts keep their last tokens (the
 *                   log counts them). The amateur's max_len bounds
 *                   contrastive_decoding alone: with ignore_prefix it
 *                   needs 1 + max_new_tokens positions; without, that
 *                   method's prompts (for both models: the amateur sees
 *                   the whole prompt, as the expert) keep their last
 *                   amateur max_len - max_new_tokens tokens (logged); the
 *                   other methods never see the amateur's limit
 *   eos             true (default): a generation stops after the
 *                   end-of-text token (the tokenizer's pad id, which the
 *                   training data puts between documents); it is not part
 *                   of the generation's text
 *   seeds           a non-empty list of integers >= 0 (default [0]): a
 *                   method that samples (do_sample) runs once per seed; a
 *                   deterministic one runs once (its rows have seed null)
 *   batch           prompts per generate call (default 8, 1..4096)
 *   threads         BLAS/OpenMP threads per rank (default 0: the node's
 *                   cores shared among its ranks)
 *   device          "cpu" (default) or "cuda": each rank generates on a
 *                   GPU (node-local rank % the devices it sees; submit with
 *                   job.gpus_per_rank 1), the model and amateur moved there
 *                   after loading (decoder.h's CUDA backend: the same
 *                   calls as on the CPU); the metrics' models stay on the
 *                   CPU of rank 0
 *   metrics         optional object:
 *                     encoder  an encoder checkpoint (file or job
 *                              directory) for coherence (default: none)
 *                     scorer   a decoder checkpoint (file or job directory)
 *                              for perplexity and MAUVE, true (default:
 *                              the model itself) or false (none)
 *                     max_len  tokens per text for the scoring models
 *                              (default 0: the model's)
 *                   MAUVE needs references (lm prompts have them).
 *   job             the scheduler's object (foil submit), ignored here
 *
 * Prompts as the model sees them: [EOT] tok(text), EOT the end-of-text
 * token a training document starts after (textscore_nll scores with the
 * same prefix). That EOT is not in the repetition penalty's history
 * (generate_opts.penalty_skip 1, every method that applies a penalty,
 * beam included): it is also the run's EOS, which a penalty over the
 * whole input, as HF's processor, would lower from the first step; a
 * prompt cut to fit keeps its last tokens and has no EOT to leave out. The context rule (cad, adacad, combine: two variants of a
 * prompt): variant 0 is the whole prompt (context + query); variant 1 is
 * the query alone. A JSONL prompt with "context" is context + " " +
 * prompt (variant 0) and prompt (variant 1); without one both variants
 * are the prompt. An lm prompt (16..24 words, from a sentence start) is
 * split at whitespace: its last query_words words are the query, the words
 * before them the context — the document's recent text is what a model is
 * asked to stay faithful to, as CAD's context is the passage before the
 * question. The generation row's "prompt" is variant 0.
 *
 * Ranks: the prompts are cut into batches of `batch` in index order;
 * rank r generates batches r, r + R, r + 2R, ... so every batch holds the
 * same prompts whatever the rank count, and sampling draws prompt p's
 * tokens from stream p (generate_opts.first_row): generations.jsonl does
 * not depend on R (for the same thread count). Rank 0 gathers the tokens
 * (an allreduce of doubles), decodes, scores and writes.
 *
 * Job directory (--job-dir, else <root>/jobs/decode-eval-<name>), written
 * by rank 0, each file atomically (temp, fsync, rename):
 *   generations.jsonl  one object per generation, methods in spec order,
 *                      then seeds, then prompt index: {"method", "seed"
 *                      (null for deterministic methods), "prompt_index",
 *                      "prompt", "generation", "reference" (null when
 *                      none), "tokens" (generated, the end-of-text
 *                      included), "token_ids" (those tokens' ids, as
 *                      generated: the text is their decoding without a
 *                      final end-of-text)}
 *   metrics.json       {"model", "step", "prompts", "max_new_tokens",
 *                      "ranks", "methods": [{"name", "method", "runs",
 *                      the textscore keys of `foil textmetrics --json`
 *                      (rows, rep_2, rep_3, rep_4, diversity, mean_length,
 *                      coherence, perplexity, perplexity_tokens: the
 *                      metrics of the method's rows of generations.jsonl,
 *                      all seeds together; mauve, mauve_star,
 *                      frontier_integral: computed per run (each seed's n
 *                      generations against the n references, as `foil
 *                      textmetrics` on that seed's rows), then the mean
 *                      over the seeds; mauve_buckets: one run's),
 *                      for a method that samples "mauve_per_seed"
 *                      [{"seed", "mauve"}] and, with 2 seeds or more,
 *                      "mauve_std" (their sample standard deviation),
 *                      "tokens", "tokens_per_s", "per_token_ms",
 *                      "tokens_per_s_vs_greedy" (when a greedy method is
 *                      listed)}]}
 *   log, metrics       log lines (the table among them) and JSON lines,
 *                      one per method, as refresh's
 * Timing: a rank times each generate call; tokens_per_s = Σ tokens /
 * Σ seconds over the calls of all ranks (one rank's throughput),
 * per_token_ms = Σ seconds / Σ steps (a call's steps: its longest
 * output), i.e. the time of one decoding step of a batch.
 * Inside a cluster rank 0 sends progress (runs done) and, at the end, the
 * key numbers of each method as the progress metrics (`foil status`).
 *
 * Cost: per method and seed, one generate_* over every prompt (see
 * generate.h); memory per rank: the model(s), the caches of one batch,
 * and the gathered tokens of one run (prompts × max_new_tokens doubles).
 */
#ifndef FOIL_WORKER_RUN_DEVAL_H
#define FOIL_WORKER_RUN_DEVAL_H

#include <stdint.h>

#include "common/err.h"
#include "model/generate.h"
#include "worker/run/comm.h"

/* The parsed spec (deval_spec_parse). Methods keep generate.h's option
 * structs with the spec's values; max_new_tokens, eos_id, seed and
 * first_row of `o` are set per call by the job. */
enum { DEVAL_GREEDY, DEVAL_BEAM, DEVAL_SAMPLE, DEVAL_CS, DEVAL_CD, DEVAL_CAD, DEVAL_ADACAD, DEVAL_DOLA,
       DEVAL_COMBINE, DEVAL_N }; /* the order of "method" names */
#define DEVAL_MAX_METHODS 32
#define DEVAL_MAX_SEEDS 64
#define DEVAL_MAX_DOLA 64

typedef struct {
  char *name;
  int method;
  generate_opts o; /* max_new_tokens and eos_id are set at run time */
  generate_beam_cfg beam;
  generate_cs_cfg cs;
  generate_cd_cfg cd;
  float weights[2];  /* cad (from alpha) and combine */
  float alpha_floor; /* adacad */
  generate_dola_cfg dola;
  int dola_list[DEVAL_MAX_DOLA];
} deval_method;

typedef struct {
  char *name, *model, *amateur;
  char *dataset, *file; /* prompts.dataset or prompts.file */
  long n_prompts;       /* -1: all */
  int query_words;
  deval_method methods[DEVAL_MAX_METHODS];
  int n_methods;
  uint64_t seeds[DEVAL_MAX_SEEDS];
  int n_seeds;
  int max_new_tokens, eos, batch, threads;
  int device; /* DEVMEM_CPU or DEVMEM_CUDA */
  char *encoder; /* metrics.encoder or NULL */
  char *scorer;  /* metrics.scorer path, or NULL */
  int scorer_model; /* 1: the model itself */
  int metrics_max_len;
} deval_spec;

/* Parses and checks a spec (JSON text) without reading any file:
 * FOIL_EINVAL naming the key (first error wins). On success the caller
 * frees with deval_spec_free. */
int deval_spec_parse(deval_spec *s, const char *json, foil_err *err);
void deval_spec_free(deval_spec *s);

typedef struct {
  const char *spec_path; /* the job spec (JSON), read by every rank */
  const char *root;      /* data root: datasets/ */
  const char *job_dir;   /* NULL: <root>/jobs/decode-eval-<name> */
  int quiet;             /* 1: no log lines on stderr */
} deval_args;

int deval_run(const deval_args *a, comm *c, foil_err *err);

/* Checks a decode-eval spec (JSON text) as deval_run would, without
 * reading any file: FOIL_EINVAL naming the key. Every method parameter is
 * checked against the range its generator accepts (e.g. contrastive
 * decoding's alpha and DoLa's relative_top in (0, 1]); what needs the
 * models is deval_check_models'. */
int deval_spec_check(const char *json, foil_err *err);

/* The checks of a parsed spec that need the models, made by deval_run
 * after loading them and before any method runs (no method can fail on
 * its options after others' work): each contrastive_search top_k <= the
 * vocabulary, each DoLa layer list keeps a layer below n_layers, eos_id
 * (-1: none) inside the vocabulary, and contrastive_decoding's amateur
 * (NULL: none loaded) long enough. The prompt caps: *cap = model max_len -
 * max_new_tokens tokens for every method (>= 2, else FOIL_EINVAL naming
 * max_new_tokens); *cd_cap <= *cap for contrastive_decoding without
 * ignore_prefix (min with amateur max_len - max_new_tokens, >= 2); with
 * ignore_prefix the amateur needs only 1 + max_new_tokens positions.
 * FOIL_EINVAL naming the method and key. O(methods). */
int deval_check_models(const deval_spec *s, const decoder_config *model, const decoder_config *amateur, int eos_id,
                       int *cap, int *cd_cap, foil_err *err);

#endif
