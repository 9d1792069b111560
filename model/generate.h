/* generate.h — batched text generation over model/decoder.h with the
 * scoring rules of model/decode.h.
 *
 * Every generate_* call takes P prompts of different lengths (ids [P, T],
 * prompt p in ids[p, 0 .. lens[p]), the rest ignored: no padding enters the
 * model, each prompt is its own cache row) and writes up to max_new_tokens
 * ids per prompt into out [P, max_new_tokens], the count into out_len [P].
 * A prompt stops at max_new_tokens or after emitting eos_id (the EOS is
 * part of the output, as Hugging Face's sequences). A prompt's output does
 * not depend on the other prompts of the batch (sampling draws with the
 * prompt's own stream, first_row + p).
 *
 * Memory: one decoder_cache per model with one row per prompt (per beam, per
 * variant), max_len = T + max_new_tokens positions (<= the model's
 * max_len, else FOIL_EINVAL). Contrastive search keeps the k candidates in
 * the cache's step scratch (k query rows on the shared cache; only the
 * winner is committed: no per-candidate copies of the cache) plus the
 * context's last-layer states [P, T + max_new_tokens, C].
 *
 * Cost per generated token: one decoder_step over the active rows (R = k
 * rows for contrastive search, which heads only the chosen candidate
 * through the LM head; 2 models for contrastive decoding; N rows per
 * prompt for the variant combination; DoLa heads its candidate premature
 * layers and the final one, not all L+1) plus O(V) scoring per row.
 *
 * Ownership: the caller owns every buffer; the functions allocate their
 * caches and scratch and free them before returning. Errors: FOIL_EINVAL
 * (message names the option) for bad options or prompts, FOIL_ENOMEM, and
 * whatever the decoder returns.
 */
#ifndef FOIL_MODEL_GENERATE_H
#define FOIL_MODEL_GENERATE_H

#include <stdint.h>

#include "common/err.h"
#include "model/decoder.h"

/* Options every method shares: the stop rule and how the final scores of a
 * step become a token (greedy unless do_sample). Defaults
 * (generate_opts_default): max_new_tokens 256, eos_id -1 (none), greedy,
 * temperature 1, top_k 0 (off), top_p 1 (off), repetition_penalty 1 (off),
 * penalty_skip NULL, seed 0, first_row 0. Processors run in Hugging Face's
 * order: repetition penalty, then (when sampling) temperature, top-k,
 * top-p.
 *
 * The repetition penalty's history is prompt p's ids (variant 0's for
 * generate_combine, the beam's prompt for generate_beam) from index
 * penalty_skip[p] on, then the tokens generated so far. penalty_skip
 * ([P], borrowed for the call; NULL: 0 for every prompt, exactly HF's
 * RepetitionPenaltyLogitsProcessor over input_ids) leaves out a synthetic
 * prefix the caller put before the text, e.g. decode-eval's leading
 * end-of-text token, which is also the run's EOS: penalised, it would
 * lower the EOS score from step 0. Values above a prompt's length count as
 * its length; a negative one is FOIL_EINVAL. The prefix is still part of
 * the model's input. Contrastive decoding applies no penalty. */
typedef struct {
  int max_new_tokens;
  int32_t eos_id;
  int do_sample;
  float temperature;
  int top_k;
  float top_p;
  float repetition_penalty;
  const int *penalty_skip; /* [P] or NULL: leading prompt ids the penalty ignores */
  uint64_t seed;      /* sampling: token of prompt p at step t uses */
  uint64_t first_row; /* rng_uniform(seed, first_row + p, t) */
} generate_opts;

void generate_opts_default(generate_opts *o);

/* Greedy search or sampling (top-k / top-p / temperature) per opts. */
int generate_plain(decoder *d, const int32_t *ids, const int *lens, int P, int T,
                   const generate_opts *o, int32_t *out, int *out_len, foil_err *err);

/* Beam search (HF BeamSearchScorer as decode.h describes: length penalty
 * over prompt + generated tokens). num_beams 4, length_penalty 1.0,
 * early_stopping 0 by default. Uses opts' max_new_tokens, eos_id and
 * repetition_penalty (on each beam's log-probabilities over its prompt,
 * from penalty_skip on, + generated tokens, as HF's processors in beam
 * search); sampling options are ignored. */
typedef struct {
  int num_beams;
  float length_penalty;
  int early_stopping;
} generate_beam_cfg;
void generate_beam_default(generate_beam_cfg *c);
int generate_beam(decoder *d, const int32_t *ids, const int *lens, int P, int T,
                  const generate_beam_cfg *c, const generate_opts *o, int32_t *out,
                  int *out_len, foil_err *err);

/* Contrastive search (Su et al. 2022, SimCTG): top_k candidates of the
 * processed distribution, score (1-α)·p - α·max cos(h_v, h_j) over the
 * context's last-layer states (prompt included). Defaults: top_k 5,
 * alpha 0.6 (SimCTG's open-ended setting; HF's penalty_alpha). α = 0 is
 * greedy search. Sampling options are ignored. */
typedef struct {
  int top_k;
  float alpha;
} generate_cs_cfg;
void generate_cs_default(generate_cs_cfg *c);
int generate_cs(decoder *d, const int32_t *ids, const int *lens, int P, int T,
                const generate_cs_cfg *c, const generate_opts *o, int32_t *out, int *out_len,
                foil_err *err);

/* Contrastive decoding (Li et al. 2023): expert and amateur decoders (same
 * vocabulary), each with its own cache, beam search over decode.h's
 * decode_cd_candidates. Defaults as the paper and its code: alpha 0.1
 * (plausibility), beta 1.0 (st_coef), tau_ama 0.5 (student_temperature),
 * num_beams 5, length_penalty 1, ignore_prefix 1 (the amateur sees only the
 * last prompt token, at position 0, as the repo's ignore_prefix
 * prepare_inputs). Uses opts' max_new_tokens and eos_id only, and applies
 * no logits processor besides the plausibility mask. The CD repo's runs
 * (text-generation/run_generation.py on its modified HF generation_utils)
 * have two more, which foil does NOT follow (nor does the re-derivation
 * in tests/reference/generate_ref.py):
 *   - min_length = max_length: HF's MinLengthLogitsProcessor sets the EOS
 *     score to -inf in place on the step's log-probabilities, the tensor
 *     its candidate ranking also reads, so the reference never emits EOS
 *     and always generates max_new_tokens tokens. foil stops a beam at
 *     eos_id as its other methods do; eos_id -1 runs to max_new_tokens but
 *     can still pick the end-of-text id as an ordinary token.
 *   - its beam branch sets top_k = None, so _get_logits_warper falls back
 *     to the model config's top_k, 50 for the GPT-2 configs: a
 *     TopKLogitsWarper(50, min_tokens_to_keep 2) runs before the
 *     plausibility warper (EntrPLogitsWarper), whose log_softmax then
 *     renormalizes the expert's scores over those 50: the expert score is
 *     log p - log(top-50 mass), a per-beam shift that adds up in the beam
 *     scores. foil masks and scores the full-vocabulary log_softmax. */
typedef struct {
  float alpha, beta, tau_ama;
  int num_beams;
  float length_penalty;
  int early_stopping;
  int ignore_prefix;
} generate_cd_cfg;
void generate_cd_default(generate_cd_cfg *c);
int generate_cd(decoder *expert, decoder *amateur, const int32_t *ids, const int *lens, int P,
                int T, const generate_cd_cfg *c, const generate_opts *o, int32_t *out,
                int *out_len, foil_err *err);

/* N prompt variants -> weighted logit combination (decode_combine): prompt
 * p has N variant prompts, rows p·N + i of ids [P·N, T] / lens [P·N]; one
 * batched decoder step over all P·N rows; every variant of p appends the
 * same chosen token. Fixed weights w[0..N), or adaptive (AdaCAD, N == 2:
 * row 0 with context, row 1 without, α_t = JSD raised to alpha_floor).
 * CAD is N = 2 with w = (1+α, -α) (generate_cad_weights); self-contrastive
 * decoding is w = (1+α, -α) on a prompt and its degraded variant. Then
 * opts' processors and greedy/sampling pick the token (AdaCAD's own code
 * samples from the top-p 0.2 nucleus of the combined logits: set do_sample,
 * top_p 0.2 to match it; CAD's paper uses greedy) (the repetition
 * penalty sees variant 0's prompt, from penalty_skip[p] on, + the
 * generated tokens). alphas [P,
 * max_new_tokens] (may be NULL) gets AdaCAD's α of every step. */
typedef struct {
  int n_variants;
  const float *weights; /* [n_variants]; ignored when adaptive */
  int adaptive;
  float alpha_floor;    /* AdaCAD only; <= 0: none */
} generate_combine_cfg;
/* w[2] = {1+alpha, -alpha}; CAD's default alpha is 0.5 (Shi et al. 2023,
 * summarization; 1.0 for knowledge conflicts). */
void generate_cad_weights(float alpha, float w[2]);
int generate_combine(decoder *d, const int32_t *ids, const int *lens, int P, int T,
                     const generate_combine_cfg *c, const generate_opts *o, int32_t *out,
                     int *out_len, float *alphas, foil_err *err);

/* DoLa (Chuang et al. 2024; HF _dola_decoding): per step, the premature
 * layer of largest JSD among the candidates (decode_dola_layers: "low",
 * "high" or a list), early exits through the LM head without the final
 * norm, relative-top mask 0.1, contrast log p_final - log p_premature,
 * then opts' processors (set repetition_penalty 1.2, as HF and the paper
 * advise; generate_dola_default does not touch opts). Defaults: layers
 * "high", relative_top 0.1. */
typedef struct {
  int layers_kind; /* DOLA_LOW, DOLA_HIGH, DOLA_LIST */
  const int *layers;
  int n_layers;
  float relative_top;
} generate_dola_cfg;
void generate_dola_default(generate_dola_cfg *c);
int generate_dola(decoder *d, const int32_t *ids, const int *lens, int P, int T,
                  const generate_dola_cfg *c, const generate_opts *o, int32_t *out,
                  int *out_len, foil_err *err);

#endif
