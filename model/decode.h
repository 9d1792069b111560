/* decode.h — the per-step scoring rules of decoding, as pure functions on
 * next-token logits and hidden states (no model inside; model/generate.h
 * drives a decoder with them).
 *
 * Conventions: rows are independent (every function that takes N rows
 * treats row n alone: no statistic is pooled over the batch — see the
 * quirks below); V is the vocabulary size; "filtered" logits hold -INFINITY.
 * Ties: every arg-max/ordering picks the LOWEST token id among equal values
 * (PyTorch leaves the order of equal values unspecified; foil fixes it).
 * Arithmetic: float32 values in, sums and exponentials in double (DoLa's
 * contrast: its two log-sum-exps from float exponentials, see there).
 * Ownership: callers own every buffer; nothing here allocates except
 * decode_top_p, decode_beam_new and the noted scratch users, which return
 * FOIL_ENOMEM on failure. Cost: O(V) per row unless noted.
 *
 * The references these follow (each function says which, and which quirk
 * it follows or fixes):
 *   HF  = Hugging Face transformers' logits processors and beam search
 *         (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper,
 *         RepetitionPenaltyLogitsProcessor, BeamSearchScorer/BeamHypotheses),
 *   SimCTG = yxuansu/SimCTG ranking_fast (HF _ranking_fast for the mask),
 *   CD  = XiangLi1999/ContrastiveDecoding (beam_search with a student),
 *   CAD = Shi et al. 2023; AdaCAD = HanNight/AdaCAD (get_jsd),
 *   DoLa = voidism/DoLa and HF _dola_decoding / _relative_top_filter.
 */
#ifndef FOIL_MODEL_DECODE_H
#define FOIL_MODEL_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* ---- basics ----------------------------------------------------------------*/

/* Index of the largest value of x[0..V) (lowest index on ties; NaN never
 * wins; -1 if every value is NaN). */
int decode_argmax(const float *x, int V);
/* out[n] = decode_argmax(logits + n·V) for N rows. */
void decode_argmax_rows(int32_t *out, const float *logits, int N, int V);
/* out = log_softmax(x) (out may equal x). -inf entries stay -inf. */
void decode_log_softmax(float *out, const float *x, int V);
/* out = softmax(x) (out may equal x). */
void decode_softmax(float *out, const float *x, int V);
/* out[i] = softmax(x)[ids[i]] for n ids in [0,V), the same values as
 * decode_softmax's at those ids; one exp per entry for the normalizer plus
 * n (contrastive search's candidate probabilities without a [V] row). */
void decode_probs_at(float *out, const float *x, int V, const int32_t *ids, int n);

/* ---- logits processors (in place, N rows) ----------------------------------*/

/* HF TemperatureLogitsWarper: logits /= t (t > 0). */
void decode_temperature(float *logits, int N, int V, float t);
/* HF TopKLogitsWarper: k = min(max(k, min_keep), V); every logit strictly
 * below the k-th largest becomes -inf (so ties AT the k-th value all stay,
 * as in HF). k <= 0: no-op. Scratch O(V) per call (FOIL_ENOMEM); O(V)
 * per row (quickselect). */
int decode_top_k(float *logits, int N, int V, int k, int min_keep, foil_err *err);
/* HF TopPLogitsWarper: sort ascending (stable: equal values by increasing
 * id, as torch.sort(stable=True)), remove the prefix whose cumulative
 * probability is <= 1 - p, never the last min_keep; removed -> -inf.
 * p >= 1: no-op. Scratch O(V) per call (FOIL_ENOMEM). Expected O(V) per
 * row, one exp per entry: a quickselect on the cumulative mass finds the
 * removed prefix without sorting (sums in double, in other orders than a
 * sorted cumsum); when the boundary's cumulative probability is within
 * 1e-9 of 1 - p, where that order could matter, the row is decided by the
 * full sort and sequential cumsum (O(V log V)), so the result is always
 * the sorted algorithm's. */
int decode_top_p(float *logits, int N, int V, float p, int min_keep, foil_err *err);
/* HF RepetitionPenaltyLogitsProcessor on one row: for every distinct id in
 * ids[0..n) (prompt and generated so far), logit < 0 ? logit·penalty :
 * logit/penalty. Ids outside [0,V) are ignored. O(n) with a V-byte scratch
 * `seen` (caller's, zeroed on return). */
void decode_repetition_penalty(float *logits, int V, const int32_t *ids, int n, float penalty,
                               uint8_t *seen);

/* ---- sampling ----------------------------------------------------------------
 * Inverse-CDF sampling from softmax(logits): the smallest id i with
 * sum_{j<=i} p_j > u · sum_j p_j (sums in double; -inf entries have p = 0
 * and are never chosen). u in [0,1). decode_sample_rows draws u for row n
 * at step `step` as kernels.h rng_uniform(seed, stream = n0 + n, step):
 * the same (seed, row, step) gives the same token on any batch split. */
int decode_sample(const float *logits, int V, float u);
/* decode_sample with the caller's scratch work [V] doubles: the same token
 * (the same sums), one exp per entry instead of two. */
int decode_sample_work(const float *logits, int V, float u, double *work);
void decode_sample_rows(int32_t *out, const float *logits, int N, int V, uint64_t seed,
                        uint64_t n0, uint64_t step);

/* The k largest of x[0..V), best first (equal values: lower id first), ids
 * into ids[0..k) and values into vals (may be NULL). k <= V. O(V·k). */
void decode_topk_ids(const float *x, int V, int k, int32_t *ids, float *vals);

/* ---- contrastive search (SimCTG) ---------------------------------------------
 * One row: candidates c = 0..k-1 with model probability probs[c] (softmax of
 * the processed logits, taken at the candidate ids) and last-layer states
 * cand_h [k, C]; the context's last-layer states ctx_h [S, C] (the prompt
 * and everything generated so far) with ctx_mask [S] (0 = padding, NULL =
 * all real). Score
 *     s_c = (1-α)·probs[c] - α·max_{j: mask_j} cos(cand_h_c, ctx_h_j)
 * and returns the arg-max c (lowest c on ties, i.e. the more probable
 * candidate as the candidates come best first). Quirks: SimCTG divides by
 * the norms without an epsilon; foil uses max(||h||, 1e-12) so a zero
 * state gives cos = 0, not NaN. HF adds finfo.min to padded cosines; foil
 * skips them (the same max unless every position is padding, where foil's
 * penalty is 0). scores [k] (may be NULL) gets s. O(k·S·C) (each context
 * norm computed once per call; dots in double over 8 lanes). */
int decode_cs_select(const float *probs, const float *cand_h, const float *ctx_h,
                     const uint8_t *ctx_mask, int k, int S, int C, float alpha, float *scores);

/* ---- combinations of several next-token distributions ------------------------*/

/* Jensen-Shannon divergence (natural log) of softmax(a) and softmax(b):
 * 0.5·KL(p||m) + 0.5·KL(q||m), m = (p+q)/2, in double from the exact
 * log-probabilities a - lse(a). AdaCAD's get_jsd clamps conditionally, and
 * so does foil: p (q) is raised to 1e-9 where below it only when some entry
 * of p (q) is 0 in float32 (p <= 2^-150: a -inf logit, or one ~104 below
 * the row's log-sum-exp); log m is floored at log 1e-9 only when some p + q
 * is 0 in float32; otherwise every tiny probability counts exactly (a
 * peaked 50k-vocabulary row has tens of thousands below 1e-9, all > 0).
 * Agrees with get_jsd evaluated in float64 to ~1e-12 relative; the
 * reference's own float32 softmax differs from that by its rounding, and
 * where an entry of p is within float32 rounding of 0 the two may take
 * different branches. In [0, ln 2] unclamped (the clamps add mass, and
 * can move it slightly outside). */
double decode_jsd(const float *a, const float *b, int V);
/* decode_jsd with the caller's scratch work [2V] doubles: one exp per
 * entry of each row and one log, instead of two exps each and a log
 * (equal to decode_jsd up to rounding: within 1e-11·max(jsd, 1e-3)). */
double decode_jsd_work(const float *a, const float *b, int V, double *work);

/* The generic step that CAD, AdaCAD and self-contrastive decoding are
 * instances of: out[v] = sum_i w[i] · z_i[v] over n variant rows z [n, V]
 * (row i of the same prompt under prompt variant i). -inf·0 is taken as 0
 * (a variant with weight 0 contributes nothing). out may not alias z. */
void decode_combine(float *out, const float *z, const float *w, int n, int V);

/* CAD (Shi et al.): out = (1+α)·z_ctx - α·z_noctx. AdaCAD: α = JSD(
 * softmax(z_ctx), softmax(z_noctx)) (decode_jsd), raised to `floor` when
 * below it (floor <= 0: none). Returns the α used. AdaCAD's code computes
 * the JSD as a batchmean over the batch (it runs batch 1) and adds an
 * `--offset` (default 0); foil takes the JSD per row, and the floor is
 * foil's option (equal to the reference at offset 0 / floor 0). */
float decode_cad(float *out, const float *z_ctx, const float *z_noctx, int V, float alpha,
                 int adaptive, float floor);

/* ---- DoLa --------------------------------------------------------------------*/

enum { DOLA_LOW = 0, DOLA_HIGH = 1, DOLA_LIST = 2 };
/* HF _dola_decoding's candidate premature layers for a model of L layers
 * with TIED embeddings (foil's decoders): start = 2 if L > 2, 1 if L == 2,
 * else 0; "low" = range(start, L/2, 2) (or [start] if start == L/2),
 * "high" = range(L/2, L, 2), for L > 40 range(start, 20, 2) /
 * range(L-20, L, 2); a list keeps its entries < L (and, foil's check,
 * >= 0). Writes up to `cap` layer indices into out; returns the count, or
 * FOIL_EINVAL (message) when the set is empty or exceeds cap. */
int decode_dola_layers(int L, int kind, const int *list, int nlist, int *out, int cap,
                       foil_err *err);
/* The premature layer of largest JSD from the final layer: cand holds nc
 * rows of V logits (one row's layer logits), row i at cand + i·stride
 * (stride >= V), final [V]. Returns the index into cand
 * (first on ties). HF averages the JSDs over the batch before the argmax
 * (one layer for the whole batch; the original DoLa runs batch 1); foil
 * picks per row, which equals both at batch 1. js [nc] (may be NULL) gets
 * the "JSDs" (natural log; kernels' softmax_mix_kl in float with exact,
 * unfloored log-probabilities, as HF's log_softmax: early exits without
 * the final norm reach log p far below -87, and those terms count in
 * full; absolute error < 2e-6 + 4e-7·sum m·(|log p| + |log q|), so
 * layers closer than that may swap; HF's float32 is no closer). Quirk
 * followed: HF/DoLa compute F.kl_div(log p, m) = KL(m||p),
 * so their "JSD" is 0.5·(KL(m||p) + KL(m||q)), not decode_jsd's
 * 0.5·(KL(p||m) + KL(q||m)); and their .mean(-1) divides by V (same
 * argmax). */
int decode_dola_select(const float *cand, size_t stride, const float *final, int nc, int V,
                       double *js);
/* HF _relative_top_filter + contrast on one row: f = log_softmax(final),
 * b = log_softmax(base); thresh = min(max f + ln(relative_top), the
 * min_keep-th largest f); where f < thresh: out = -inf; elsewhere out =
 * f - b. (HF sets b there to -1e-3 and f to -inf, so the difference is
 * -inf too.) out may alias neither input. O(V) plus O(V·min_keep). The
 * normalizers come from float exponentials summed in double (kernels.h
 * exp_sum): log-sums off by < 3e-7, outputs within 2e-6 of the all-double
 * computation (HF works in float32). */
void decode_dola_contrast(float *out, const float *final, const float *base, int V,
                          float relative_top, int min_keep);

/* ---- beam search -------------------------------------------------------------
 * HF BeamSearchScorer/BeamHypotheses (the version the CD code carries),
 * for one prompt with nb beams. A step: the caller ranks 2·nb candidates
 * (beam, token, cumulative score) best first (decode_beam_topk, or
 * decode_cd_candidates for contrastive decoding) and calls
 * decode_beam_process, which walks them in order: an EOS candidate among
 * the first nb ranks becomes a finished hypothesis (score / len^lp, len =
 * prompt + generated tokens WITHOUT the EOS, as that HF version: newer HF
 * counts only generated tokens); other candidates fill the nb next beams.
 * Done (HF is_done): nb finished and (early_stopping, or the worst
 * finished score >= best running cumulative score / cur_len^lp, cur_len =
 * prompt + generated before this step). decode_beam_finalize adds the
 * running beams as hypotheses (HF finalize) and returns the best
 * (sorted() then pop(): the LAST added among equal scores). */
typedef struct decode_beam decode_beam;

typedef struct {
  int beam;      /* source beam 0..nb-1 */
  int32_t token; /* next token */
  float score;   /* cumulative score if chosen */
} decode_cand;

/* max_gen bounds the generated tokens of one hypothesis. */
int decode_beam_new(decode_beam **out, int nb, int prompt_len, int max_gen, float length_penalty,
                    int early_stopping, int32_t eos, foil_err *err);
void decode_beam_destroy(decode_beam **b);
/* The running beams' cumulative scores [nb] (initially 0, -1e9 for beams
 * 1.. as HF, so the first step expands beam 0 only). */
const float *decode_beam_scores(const decode_beam *b);
int decode_beam_done(const decode_beam *b);
/* Running beam i's generated tokens so far (*n of them; owned by b, valid
 * until the next decode_beam_process). */
const int32_t *decode_beam_tokens(const decode_beam *b, int i, int *n);
/* Top 2·nb of logp[beam, v] + score[beam] over nb×V (flat index order on
 * ties, as torch.topk on the [nb·V] view). logp: per-beam processed
 * log-probabilities [nb, V]. Writes 2·nb entries of cand. */
void decode_beam_topk(decode_beam *b, const float *logp, int V, decode_cand *cand);
/* Applies one step: cand [ncand] best first. Writes src [nb] (the beam each
 * new beam continues) and next [nb] (its token) for the caller's cache
 * reorder; returns 1 if the prompt is done after this step, else 0. Each
 * running beam's token history is kept inside (max_gen tokens). */
int decode_beam_process(decode_beam *b, const decode_cand *cand, int ncand, int *src,
                        int32_t *next);
/* The best hypothesis' generated tokens (EOS appended if it ended with
 * one, as HF finalize pads with EOS) into out[0..cap); returns the count. */
int decode_beam_finalize(decode_beam *b, int32_t *out, int cap, float *score);

/* ---- contrastive decoding (expert vs amateur, CD's beam_search) -----------
 * For nb beams: e = log_softmax(z_exp) [nb,V]; the plausibility mask (CD's
 * EntrPLogitsWarper, relative_top α): e' = e where e >= max e + ln α
 * (never fewer than min_keep tokens: CD keeps 2 with beams, 1 without),
 * else -inf; a = log_softmax(z_ama) / τ_ama (TemperatureLogitsWarper on
 * log-probs; -inf there becomes +inf as CD does, so such tokens lose);
 * candidates: the top 2·nb of e + beam score (first step) or of the raw e
 * WITHOUT beam scores (later steps: CD's next_token_scores_keep, a quirk
 * foil follows), then each scored e'[tok] + score[beam] - β·a[tok] and
 * re-sorted best first (stable). Writes 2·nb entries of cand. first: 1 on
 * the first step. Scratch: caller's work [2·V] floats. Cost O(nb·V) for the
 * pre-selection plus O(V) per candidate (its beam's log-softmaxes again).
 * Quirks followed: the beam scores accumulate CD scores (expert log-prob
 * minus β·amateur), not expert log-probs, as CD passes its scores to the
 * beam scorer. Fixed: CD re-orders candidates with index_select on a
 * flattened [batch, 2·nb] view, right only at batch 1; foil works per
 * prompt. */
void decode_cd_candidates(decode_beam *b, const float *z_exp, const float *z_ama, int V,
                          float alpha, float beta, float tau_ama, int min_keep, int first,
                          float *work, decode_cand *cand);

#endif
