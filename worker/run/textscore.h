/* textscore.h — scoring a set of generations with foil's text metrics: what
 * `foil textmetrics FILE.jsonl` prints and what the decode-eval job
 * reports, from one code path.
 *
 * A set is rows of (prompt, generation, optional reference), read from JSON
 * lines ({"prompt": "...", "generation": "...", "reference": "..."}; other
 * keys ignored; blank lines skipped) or filled by the caller. Metrics
 * (model/textmetrics.h and model/mauve.h for the definitions and quirks):
 *   - rep-2/3/4, diversity, mean length: of the generations, always;
 *   - coherence: with an encoder checkpoint (a foil encoder, its own
 *     tokenizer), cos(e(prompt), e(generation)) averaged over rows, the
 *     embeddings from worker/run/encode.h's encode_texts;
 *   - perplexity and MAUVE with a scorer decoder (model/decoder.h):
 *     textscore_nll and textscore_features take a decoder and its BPE
 *     tokenizer in memory (what decode-eval holds), textscore_mauve the
 *     features; textscore_run opens scorer_ckpt (storage/ckpt.h
 *     ckpt_open_decoder) and reports perplexity over every row, and MAUVE
 *     with P = the rows' references (rows without one are left out of P),
 *     Q = all generations, when at least one row has a reference;
 *     with run_rows (several runs of one method, e.g. sampling seeds, over
 *     the same prompts) MAUVE per run, P = that run's references, and the
 *     mean over runs, as the MAUVE paper and the contrastive-search papers
 *     report it (pooling would count each reference once per run and size
 *     the buckets by all runs' rows).
 *
 * Ownership: a textscore_set owns its strings (textscore_set_free). Models
 * are loaded per call and freed before return. Cost: one encoder forward
 * per prompt and per generation (coherence); one decoder forward per row
 * (perplexity) and per reference and generation (MAUVE's features; with
 * run_rows a run whose references are the first run's reuses its
 * features), plus MAUVE's clustering (model/mauve.h), once per run; the
 * rest is linear in the text.
 */
#ifndef FOIL_WORKER_RUN_TEXTSCORE_H
#define FOIL_WORKER_RUN_TEXTSCORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/decoder.h"
#include "model/mauve.h"
#include "model/textmetrics.h"
#include "model/tokenizer.h"

typedef struct {
  size_t n;
  char **prompt, **generation;
  char **reference; /* reference[i] NULL when row i has none */
  size_t n_ref;     /* rows with a reference */
} textscore_set;

/* Reads JSON lines from path. Errors name the place: "FILE:LINE: key
 * \"generation\" is missing or not a string" (FOIL_EINVAL); an empty file
 * (no row) is FOIL_EINVAL too. On error s holds nothing. */
int textscore_read_jsonl(const char *path, textscore_set *s, foil_err *err);
/* Appends one row (strings copied; reference may be NULL). */
int textscore_add(textscore_set *s, const char *prompt, const char *generation,
                  const char *reference, foil_err *err);
void textscore_set_free(textscore_set *s);

#define TEXTSCORE_MAX_RUNS 64 /* runs of run_rows rows MAUVE scores apart */

typedef struct {
  const char *encoder_ckpt; /* NULL: no coherence */
  const char *scorer_ckpt;  /* a decoder checkpoint; NULL: no perplexity / MAUVE */
  int max_len;              /* tokens per text for the models; 0: the model's max_len */
  int batch;                /* texts per forward; 0: 32 */
  mauve_config mauve;       /* mauve_config_default unless changed */
  /* 0 (default): one MAUVE over all rows. k > 0: the rows are runs of k
   * consecutive rows (n a multiple of k, at most TEXTSCORE_MAX_RUNS runs,
   * else FOIL_EINVAL), each with references when any row has one (else
   * FOIL_EINVAL); MAUVE per run, P = its rows' references, Q = its
   * generations. Only MAUVE is per run: the other metrics are over all rows. */
  size_t run_rows;
} textscore_opts;

void textscore_opts_default(textscore_opts *o);

typedef struct {
  size_t n;          /* rows */
  tm_counts counts;  /* n-gram counts of the generations */
  double rep[TM_NREP], diversity, mean_length;
  int has_coherence;
  double coherence;
  int has_perplexity;
  double perplexity;
  int64_t ppl_tokens;
  int has_mauve;
  /* with run_rows: the means over the runs; buckets, n_p and n_q the first
   * run's (the same for runs of the same size and references) */
  double mauve, mauve_star, frontier_integral;
  int mauve_buckets, mauve_n_p, mauve_n_q;
  int mauve_runs;                          /* 1 without run_rows */
  double mauve_run[TEXTSCORE_MAX_RUNS];    /* each run's MAUVE, in row order */
  double mauve_std;                        /* sample std (n - 1) of mauve_run; 0 for one run */
} textscore_result;

/* Every metric the options ask for. */
int textscore_run(const textscore_set *s, const textscore_opts *o, textscore_result *r,
                  foil_err *err);

/* The model-free metrics only (rep-n, diversity, length). */
int textscore_text(const textscore_set *s, textscore_result *r, foil_err *err);

/* Coherence with an encoder checkpoint's encoder and tokenizer. */
int textscore_coherence(const textscore_set *s, const char *encoder_ckpt, int max_len, int batch,
                        double *out, foil_err *err);

/* Scored tokens of each row under a scorer decoder: the row is [EOT]
 * tok(prompt) tok(generation) (EOT = tokenizer_pad_id, the end-of-text
 * token a decoder's training data puts before every document; BPE adds no
 * other special token); only the generation's tokens are scored, each
 * conditioned on all before it. A row longer than max_len (0: the model's)
 * keeps at most the prompt's LAST max_len/2 tokens, then the generation's
 * first tokens that fit. Adds Σ −log p to *nll_sum and the token count to
 * *ntok (both set, not accumulated); perplexity = tm_perplexity(*nll_sum,
 * *ntok). Rows are padded together in batches of `batch` (0: 16), without
 * dropout. Cost: one forward over the batch's tokens. */
int textscore_nll(decoder *dec, const tokenizer *tok, char *const *prompts, char *const *gens,
                  size_t n, int max_len, int batch, double *nll_sum, int64_t *ntok, foil_err *err);

/* MAUVE features, as mauve-text featurizes text: the decoder's last-layer
 * state (LNF output) at the final token of tok(text), the text cut to its
 * first max_len tokens (0: the model's max_len), no end-of-text prefix; an
 * empty text is the end-of-text token alone. out [n, d_model]. */
int textscore_features(decoder *dec, const tokenizer *tok, char *const *texts, size_t n,
                       int max_len, int batch, float *out, foil_err *err);

/* MAUVE of references P [np, d] against generations Q [nq, d] into r
 * (has_mauve set). */
int textscore_mauve(const float *p, int np, const float *q, int nq, int d,
                    const mauve_config *cfg, textscore_result *r, foil_err *err);

#endif
