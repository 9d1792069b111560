/* decoder.h — a GPT-2-style causal language model on flat buffers, with a
 * KV cache for generation.
 *
 * Architecture (GPT-2): token + learned position embeddings, dropout; per
 * layer, pre-LN:
 *     x = x + drop(Wo·MHA_causal(Wqkv·LN1(x)));  x = x + drop(W2·gelu(W1·LN2(x)))
 * then a final LayerNorm (lnf) and the LM head tied to the token embedding:
 *     logits = LNF(x) · wte^T   (no bias).
 * GELU is the exact one (kernels.h gelu_forward), not GPT-2's tanh
 * approximation: foil trains its decoders itself, and the PyTorch reference
 * uses nn.GELU() to match. Attention is causal; keys with mask 0 are hidden.
 *
 * Memory: parameters in ONE contiguous float buffer (dec->params),
 * gradients in another of the same layout; tensors of a kind stacked over
 * layers as in llm.c ("qkv_w" is [L, 3d, d]). The views use encoder.h's
 * encoder_tensor type (name, shape, offset, size, decay) so checkpoints and
 * the optimizer handle both models the same way. Activations are allocated
 * on the first forward of a (B,T) shape and reused while shapes do not grow.
 *
 * Hidden states, HF naming: "the last-layer state" h is LNF(x) after the
 * last layer (what SimCTG's cosine similarities and MAUVE's features use);
 * layer_state(j), j = 0..L, is the residual stream after j layers (j = 0:
 * the embeddings), with layer_state(L) replaced by LNF(x), as Hugging Face's
 * output_hidden_states. DoLa's early exits put layer_state(j) through the
 * LM head WITHOUT the final norm (decoder_lm_head).
 *
 * Backends (devmem.h): decoder_new_on(.., DEVMEM_CUDA, ..) keeps the
 * parameters, activations and caches in the device memory of the process's
 * CUDA backend and runs the kernels' cuda_ twins, in the same calls and
 * order as on the CPU (decoder.c: one source). Every pointer argument and
 * output of this API stays HOST memory on either backend (outputs are
 * downloaded, inputs such as dhidden uploaded; forward's outputs are host
 * mirrors), except decoder_params/grads, which are the backend's buffers.
 * A CUDA decoder allocates its gradients at its first training forward
 * (decoder_grads is NULL before: one that only generates never holds
 * them). Its parameters come from a CPU decoder (decoder_clone_on),
 * decoder_set_params or decoder_init.
 *
 * Ownership: decoder_new returns an object freed with decoder_destroy(&d);
 * pointers returned by forward stay valid until the next forward. A
 * decoder_cache belongs to one decoder (same config) and is freed with
 * decoder_cache_destroy(&c). Nothing here does I/O.
 */
#ifndef FOIL_MODEL_DECODER_H
#define FOIL_MODEL_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/rowmap.h"
#include "model/encoder.h"

typedef struct {
  int n_layers;   /* L */
  int d_model;    /* C */
  int n_heads;    /* C % n_heads == 0 */
  int d_ff;       /* default 4·C */
  int vocab;      /* V */
  int max_len;    /* positions */
  float dropout;  /* embedding, residual and attention-probability dropout */
  float ln_eps;   /* 1e-5 as GPT-2 */
} decoder_config;

/* The tensors, in buffer order (shapes with L layers, C d_model, F d_ff). */
enum {
  DEC_WTE,      /* wte      [V, C]   also the LM head */
  DEC_WPE,      /* wpe      [max_len, C] */
  DEC_LN1_W,    /* ln1_w    [L, C] */
  DEC_LN1_B,    /* ln1_b    [L, C] */
  DEC_QKV_W,    /* qkv_w    [L, 3C, C] */
  DEC_QKV_B,    /* qkv_b    [L, 3C] */
  DEC_ATTO_W,   /* atto_w   [L, C, C] */
  DEC_ATTO_B,   /* atto_b   [L, C] */
  DEC_LN2_W,    /* ln2_w    [L, C] */
  DEC_LN2_B,    /* ln2_b    [L, C] */
  DEC_FC1_W,    /* fc1_w    [L, F, C] */
  DEC_FC1_B,    /* fc1_b    [L, F] */
  DEC_FC2_W,    /* fc2_w    [L, C, F] */
  DEC_FC2_B,    /* fc2_b    [L, C] */
  DEC_LNF_W,    /* lnf_w    [C] */
  DEC_LNF_B,    /* lnf_b    [C] */
  DEC_NTENSORS
};

typedef struct decoder decoder;

/* foil's defaults: d_ff 0 (= 4·d_model at check time), dropout 0.1,
 * ln_eps 1e-5; the caller sets the sizes. */
void decoder_config_default(decoder_config *cfg);
/* Checks sizes and ranges (fills d_ff when 0); FOIL_EINVAL naming the key. */
int decoder_config_check(decoder_config *cfg, foil_err *err);

int decoder_new(decoder **out, const decoder_config *cfg, foil_err *err);
/* On a backend (DEVMEM_CPU: decoder_new); devmem_ready's errors for CUDA. */
int decoder_new_on(decoder **out, const decoder_config *cfg, int backend, foil_err *err);
/* A new decoder on backend with src's config and parameters. */
int decoder_clone_on(const decoder *src, int backend, decoder **out, foil_err *err);
/* All parameters from / to host memory (decoder_num_params floats). */
int decoder_set_params(decoder *d, const float *host, foil_err *err);
int decoder_get_params(const decoder *d, float *host, foil_err *err);
void decoder_destroy(decoder **d);

const decoder_config *decoder_cfg(const decoder *d);
int decoder_backend(const decoder *d);
size_t decoder_num_params(const decoder *d);
float *decoder_params(decoder *d);
float *decoder_grads(decoder *d);
const encoder_tensor *decoder_tensors(const decoder *d); /* DEC_NTENSORS views */
void decoder_zero_grads(decoder *d);

/* GPT-2's initialization from seed: N(0, 0.02) for matrices and embeddings,
 * the two residual projections (atto_w, fc2_w) N(0, 0.02/sqrt(2L)), zero
 * biases, LayerNorm 1/0. Deterministic; the same values on either backend.
 * Fails only on CUDA (an upload). */
int decoder_init(decoder *d, uint64_t seed, foil_err *err);

/* ---- training / scoring forward over whole sequences ----------------------
 * ids, targets, mask [B,T]. targets[b,t] is the token to predict at
 * position t (usually ids[b,t+1]), or -1 to ignore the position; targets
 * may be NULL (no loss: *loss is set to 0). mask as kernels.h (NULL: all
 * real); position t uses wpe[t]. train != 0 applies dropout with masks from
 * (seed, call), replayed by the backward.
 * Outputs (owned by d, valid until the next forward):
 *   *loss   mean cross-entropy over positions with targets >= 0 (0 if none)
 *   *hidden [B,T,C] last-layer states LNF(x)            (may be NULL)
 *   *logits [B,T,V]                                    (may be NULL)
 *   *nll    [B,T] per-position -log p(target), 0 where ignored (may be NULL)
 * Targets must be -1 or in [0,V), ids in [0,V), T <= max_len: FOIL_EINVAL.
 * The LM head runs in chunks of 64 rows: without *logits a loss or nll
 * holds only [64,V] of logits, never [B,T,V].
 * Cost ~ 2·(params)·B·T flops + attention + the LM head 2·B·T·C·V. */
int decoder_forward(decoder *d, const int32_t *ids, const int32_t *targets,
                    const uint8_t *mask, int B, int T, int train, uint64_t seed,
                    uint64_t call, float *loss, const float **hidden,
                    const float **logits, const float **nll, foil_err *err);

/* Where this rank's B rows sit in the global batch (model/rowmap.h; one
 * block of B rows per rank), for the masks of the training forwards that
 * follow: each row draws the dropout masks of its global row, so W ranks
 * x B rows train exactly as 1 rank x W·B rows and no two ranks share
 * masks. A training forward of more rows than the map holds: FOIL_EINVAL.
 * NULL, and a new decoder: the identity map of one process. FOIL_EINVAL
 * on a bad map. */
int decoder_set_rows(decoder *d, const rowmap *m, foil_err *err);

/* Backward of (loss_weight · *loss + <dhidden, hidden>) for the last forward:
 * dhidden [B,T,C] (may be NULL) is an extra gradient w.r.t. the last-layer
 * states (SimCTG's). ACCUMULATES into decoder_grads. Needs the last forward
 * to be a training one (train != 0; a config with dropout 0 gives the exact
 * gradient), else FOIL_EPRECOND. The LM head's logits are recomputed chunk
 * by chunk (2·B·T·C·V more flops) instead of being kept. Cost ~ 2x forward. */
int decoder_backward(decoder *d, float loss_weight, const float *dhidden, foil_err *err);

/* Precision of the GEMMs, as encoder_set_precision: ENC_FP32 (default), or
 * ENC_BF16 — every linear layer and the tied LM head multiply bf16-rounded
 * inputs by a bf16 working copy of their weights with fp32 accumulation
 * (GELU fused after FC1); the backward rounds the GEMMs' output gradients
 * to bf16 for the input and weight gradients; embeddings, LayerNorm,
 * attention, the loss, gradients and AdamW stay fp32. The working copy
 * follows the fp32 masters at every forward and prefill (steps and
 * decoder_lm_head use the last one's). FOIL_EINVAL for another value,
 * FOIL_ENOMEM. */
int decoder_set_precision(decoder *d, int precision, foil_err *err);
int decoder_precision(const decoder *d);

/* Gradients ready early, for an all-reduce overlapped with the rest of the
 * backward (GPU ranks' gradient buckets), as encoder_on_grads_ready: while
 * decoder_backward runs, fn gets each run of gradients as soon as no later
 * part of that backward writes it — the final LayerNorm's, then every
 * layer's slices of the stacked tensors (last layer first), then wte (the
 * tied LM head's share is written first, the embedding's last) and wpe;
 * every parameter exactly once per backward. A nonzero return stops the
 * backward with it. fn NULL: none. */
void decoder_on_grads_ready(decoder *d, encoder_grads_ready fn, void *ctx);

/* Model FLOPs of one forward over B×T tokens (matmuls, attention, LM head). */
double decoder_forward_flops(const decoder_config *cfg, int B, int T);

/* logits [N,V] = hidden [N,C] · wte^T (the LM head alone, no norm), host
 * buffers (on CUDA: copied up, multiplied, copied back). */
int decoder_lm_head(decoder *d, float *logits, const float *hidden, int N, foil_err *err);

/* ---- generation with a KV cache --------------------------------------------
 * A cache holds, per layer, keys and values of `rows` sequences up to
 * max_len positions each, and each row's length len[r]. Row r's token at
 * position t is cached at slot t: rows of different lengths need no
 * padding tricks, a step writes row r at its own len[r].
 * Memory: 2·L·rows·max_len·C floats, plus the step scratch for up to
 * `cands` candidate tokens per row (2·L·rows·cands·C floats, and the
 * activations of rows·cands tokens), 2·(L+1)·rows·C floats of layer
 * states, plus, from the first step with inactive rows that asks for
 * logits, [rows·cands (or (L+1)·rows), V].
 * max_len <= the model's max_len; FOIL_EINVAL otherwise. */
typedef struct decoder_cache decoder_cache;

int decoder_cache_new(decoder_cache **out, const decoder *d, int rows, int max_len, int cands,
                      foil_err *err);
void decoder_cache_destroy(decoder_cache **c);
/* Current length of each row ([rows], owned by c). */
const int *decoder_cache_lens(const decoder_cache *c);
/* Empties every row. */
void decoder_cache_reset(decoder_cache *c);

/* Runs the prompts through the model and fills the cache: ids [rows, T],
 * row r's tokens in ids[r, 0 .. lens[r]) (1 <= lens[r] <= T; the rest is
 * ignored). Writes (each may be NULL):
 *   logits [rows, V]     next-token logits after each row's last token
 *   hidden [rows, T, C]  last-layer states of every prompt position
 *                        (positions >= lens[r] hold zeros)
 *   layers [L+1, rows, V] for DoLa: every layer_state(j) of the last token
 *                        through the LM head (no final norm; j = L is the
 *                        normal logits); decoder_layer_logits heads only
 *                        the layers asked for (DoLa needs 2 of L+1)
 * Every row is (re)filled: len[r] = lens[r]. A prefill runs the decoder's
 * own forward buffers: it ends the validity of decoder_forward's outputs
 * (steps do not: they use the cache's scratch). T <= the cache's max_len.
 * Cost: one forward over rows × T tokens. */
int decoder_prefill(decoder *d, decoder_cache *c, const int32_t *ids, const int *lens, int T,
                    float *logits, float *hidden, float *layers, foil_err *err);

/* One decoding step for R candidate tokens per row: ids [rows, R], each the
 * token at position len[r] of its row, attending to the row's cached
 * positions and to itself, NOT to the other candidates (contrastive
 * search's k candidates share one cache as R query rows). Rows with
 * active[r] == 0 are skipped (their outputs are left untouched; active may
 * be NULL: all). The candidates' keys/values go to the step scratch; the
 * cache is unchanged until decoder_cache_commit. Writes (each may be NULL):
 *   logits [rows, R, V], hidden [rows, R, C] (last-layer states),
 *   layers [L+1, rows, R, V] (as prefill, for DoLa; needs R == 1).
 * A step with R == 1 keeps every layer_state(j) of its active rows' tokens
 * for decoder_layer_logits (a copy of (L+1)·rows·C floats).
 * R <= the cache's cands; len[r] < max_len (len 0 is allowed: the token
 * then attends to itself only). Cost ~ 2·params·rows·R flops
 * (weights read once for all rows·R tokens) + attention over the cache. */
int decoder_step(decoder *d, decoder_cache *c, const int32_t *ids, int R, const uint8_t *active,
                 float *logits, float *hidden, float *layers, foil_err *err);

/* DoLa's early exits for a subset of layers: out [n, rows, V] gets
 * layer_state(which[i]) of each row's last token through the LM head (no
 * final norm; which[i] = L: the normal logits), as decoder_prefill's and
 * decoder_step's `layers` output restricted to those layers (which = 0..L
 * gives exactly that output). "Last token": of the last decoder_prefill,
 * or of the last decoder_step if it had one candidate per row; only that
 * step's active rows are written (others untouched). Commits do not
 * change the states; a step with R > 1, a reorder or a reset drops them:
 * FOIL_EPRECOND. n >= 1 and which[i] in 0..L, else FOIL_EINVAL.
 * Cost: one LM-head product over n·rows states per L+1 layers asked,
 * 2·n·rows·C·V flops (the `layers` output costs (L+1)/n times more). */
int decoder_layer_logits(const decoder *d, decoder_cache *c, const int *which, int n, float *out,
                         foil_err *err);

/* Appends candidate choice[r] (0 <= choice < R of the last step) of each
 * active row to the cache and increments len[r]: L·rows·2·C floats copied,
 * never the cache. choice NULL: candidate 0 of every row. Rows that got no
 * candidates in the last step (inactive, or a prefill/reorder since), and
 * choices outside [0,R), are left unchanged. */
void decoder_cache_commit(decoder_cache *c, const int *choice, const uint8_t *active);

/* Beam search's reorder: row r becomes a copy of row src[r] (lengths too).
 * Copies only rows whose source differs: at most 2·L·rows·len·C floats
 * (plus as much temporary memory for the sources they read). Candidates of
 * the last step are dropped: step again before a commit. src[r] outside
 * [0,rows): FOIL_EINVAL, nothing changed. */
int decoder_cache_reorder(decoder_cache *c, const int *src, foil_err *err);

#endif
