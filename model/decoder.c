/* decoder.c — the GPT-2-style decoder of decoder.h, built from kernels.
 *
 * Layout and activations mirror encoder.c (pre-LN path). The LM head is
 * computed in chunks of LM_ROWS rows so a loss or nll never holds the
 * [B,T,V] logits: only [LM_ROWS,V] scratch, unless the caller asked for the
 * logits. The backward recomputes each chunk's logits from the stored
 * last-layer states (2·LM_ROWS·C·V flops per chunk, a third more LM-head
 * work) rather than keeping [B,T,V] probabilities.
 *
 * Generation: a decoder_cache owns the keys/values [L, rows, max_len, C],
 * the candidates' keys/values of the last step [L, rows, cands, C] and the
 * step's activations for rows·cands tokens, so a step allocates nothing.
 *
 * Backends (devmem.h): parameters, activations and the cache live on the
 * decoder's backend and every kernel call goes through K (DEVMEM_KERN), so
 * the CPU and CUDA run the same calls in the same order; copies between
 * backend buffers are devmem_copy/copy2d, outputs reach the caller's host
 * memory through devmem_get (on the CPU plain copies, or the buffers
 * themselves). Host-side state (lengths, active rows, targets) stays on the
 * host; what a kernel reads of it is put on the backend first (ids, mask,
 * labels, lens, rows).
 */
#include "model/decoder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/devmem.h"

enum { LM_ROWS = 64 }; /* rows of logits computed at a time for loss and nll */

/* Activations of one layer. In inference every layer uses set 0. */
typedef struct {
  float *ln1, *ln1_mu, *ln1_rs; /* LN1 output and row stats */
  float *qkv, *att, *atty;      /* [N,3C], [B,NH,T,T], [N,C] */
  float *r1;                    /* x + drop(attention output) */
  float *ln2, *ln2_mu, *ln2_rs;
  float *fc1, *gelu;            /* [N,F] each */
  float *r2;                    /* layer output */
} layer_acts;

struct decoder {
  decoder_config cfg;
  int backend;     /* DEVMEM_CPU or DEVMEM_CUDA: where every float buffer lives */
  encoder_tensor t[DEC_NTENSORS];
  size_t nparams;
  float *params, *grads; /* grads: NULL on CUDA until the first training forward */

  float *act_mem;
  size_t cap_tokens, cap_att;
  int cap_sets, cap_grad;
  float *emb, *resid0;
  const float *x0; /* input of layer 0 */
  layer_acts *la;
  float *lnf, *lnf_mu, *lnf_rs, *tmp, *att_scratch;
  float *lm_a, *lm_b;  /* [LM_ROWS, V] each: logits and probabilities of a chunk */
  float *nll, *logits; /* [N], [N,V] (logits allocated only when asked for) */
  size_t cap_logits;
  float *g_res, *g_a, *g_b, *g_w1, *g_w2;
  int32_t *ids, *lab; /* backend: the kernels read them */
  uint8_t *mask;
  int32_t *targets, *h_lab, *h_ids; /* host */
  uint8_t *h_mask;
  /* host mirrors of outputs on CUDA (forward's nll/hidden/logits), and
   * decoder_lm_head's device scratch */
  float *h_nll, *h_lnf, *h_logits, *lmh_in, *lmh_out;
  size_t cap_h_nll, cap_h_lnf, cap_h_logits, cap_lmh_in, cap_lmh_out;

  /* where this rank's rows sit in the global batch (decoder_set_rows) */
  rowmap rows;
  /* the last forward; run[] are its rows' runs in the global batch */
  int B, T, train, have_fwd, n_targets, nrun;
  uint64_t seed, call;
  rowmap_run run[ROWMAP_MAX_BLOCKS];
  /* decoder_on_grads_ready's callback */
  encoder_grads_ready ready;
  void *ready_ctx;
  /* ENC_BF16: the GEMMs' bf16 working copy of the weight matrices (same
   * offsets as params), and the forward/backward's bf16 scratch for a GEMM's
   * input (xb) and output gradient (gb), grown with the activations */
  int bf16;
  uint16_t *wb, *xb, *gb;
  size_t cap_xb, cap_gb;
};

struct decoder_cache {
  int backend; /* the decoder's: every float buffer below lives there */
  int L, C, F, V, rows, max_len, cands, NH;
  float *k, *v;   /* [L, rows, max_len, C] */
  float *sk, *sv; /* [L, rows, cands, C]: the last step's candidates */
  int *len;       /* [rows] (host) */
  int *dlen, *dgrp; /* len and grp on the backend, for the attention kernel
                     * (on the CPU: len and grp themselves) */
  uint8_t *stepped; /* [rows]: row has candidates from the last step */
  int last_R;
  /* step activations for up to rows·cands tokens */
  float *mem;
  float *x, *ln, *mu, *rs, *qkv, *atty, *tmp, *fc1, *gelu, *att_scratch;
  float *states;  /* [L+1, states_na, C]: layer_state(j) of the last token of
                   * the last prefill or one-candidate step, per active row */
  float *gath;    /* [L+1, rows, C]: states gathered for decoder_layer_logits */
  int states_na;  /* active rows the states hold (grp[0..states_na)); -1: none */
  int *grp; /* [rows]: active rows of a step, in order (host) */
  float *lm; /* logits of a step's active rows before the scatter, allocated on
              * the first step with inactive rows (on CUDA: any step) that asks
              * for logits */
  size_t cap_lm;
  uint16_t *xb; /* ENC_BF16: a step's GEMM inputs in bf16 (grown on demand) */
  size_t cap_xb;
};

#define K(fn, ...) DEVMEM_KERN(d->backend, fn, __VA_ARGS__)

/* Grows the host buffer *p to n floats (contents lost). */
static int host_buf(float **p, size_t *cap, size_t n, foil_err *err) {
  if (n <= *cap) return FOIL_OK;
  free(*p);
  *p = malloc((n ? n : 1) * sizeof(float));
  *cap = *p ? n : 0;
  return *p ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "out of memory for %zu floats of outputs", n);
}

/* *out = n floats of the backend buffer src, readable on the host: src
 * itself on the CPU; on CUDA downloaded into *mirror (grown to *cap). */
static int host_view(int backend, float **mirror, size_t *cap, float *src, size_t n, float **out,
                     foil_err *err) {
  *out = src;
  if (backend == DEVMEM_CPU) return FOIL_OK;
  int rc = host_buf(mirror, cap, n, err);
  if (!rc) rc = devmem_get(backend, *mirror, src, n * sizeof(float), err);
  *out = rc ? NULL : *mirror;
  return rc;
}

/* Grows the backend buffer *p to n bf16 values (contents lost). */
static int grow16(int backend, uint16_t **p, size_t *cap, size_t n, foil_err *err) {
  if (n <= *cap) return FOIL_OK;
  devmem_free(backend, *p);
  *p = devmem_alloc(backend, n * sizeof(uint16_t));
  *cap = *p ? n : 0;
  return *p ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "out of %s memory for %zu bf16 values", devmem_where(backend), n);
}

/* Grows the backend buffer *p to n floats (contents lost). */
static int grow(int backend, float **p, size_t *cap, size_t n, foil_err *err) {
  if (n <= *cap) return FOIL_OK;
  devmem_free(backend, *p);
  *p = devmem_alloc(backend, n * sizeof(float));
  *cap = *p ? n : 0;
  return *p ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "out of %s memory for %zu floats", devmem_where(backend), n);
}

/* ---- config --------------------------------------------------------------- */

void decoder_config_default(decoder_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->dropout = 0.1f;
  cfg->ln_eps = 1e-5f;
}

int decoder_config_check(decoder_config *c, foil_err *err) {
#define NEED(cond, ...) \
  if (!(cond)) return foil_err_set(err, FOIL_EINVAL, __VA_ARGS__)
  NEED(c->n_layers >= 1 && c->n_layers <= 1024, "n_layers must be in 1..1024, got %d", c->n_layers);
  NEED(c->d_model >= 1 && c->d_model <= 65536, "d_model must be in 1..65536, got %d", c->d_model);
  NEED(c->n_heads >= 1 && c->d_model % c->n_heads == 0, "n_heads (%d) must divide d_model (%d)",
       c->n_heads, c->d_model);
  if (c->d_ff == 0) c->d_ff = 4 * c->d_model;
  NEED(c->d_ff >= 1 && c->d_ff <= 1 << 20, "d_ff must be in 1..1048576, got %d", c->d_ff);
  NEED(c->vocab >= 1 && c->vocab <= 1 << 24, "vocab must be in 1..16777216, got %d", c->vocab);
  NEED(c->max_len >= 1 && c->max_len <= 1 << 16, "max_len must be in 1..65536, got %d", c->max_len);
  NEED(c->dropout >= 0.0f && c->dropout < 1.0f, "dropout must be in [0,1), got %g", (double)c->dropout);
  NEED(c->ln_eps > 0.0f && c->ln_eps < 1.0f, "ln_eps must be in (0,1), got %g", (double)c->ln_eps);
#undef NEED
  return FOIL_OK;
}

/* ---- parameters ------------------------------------------------------------- */

static void layout(decoder *d) {
  const decoder_config *c = &d->cfg;
  int L = c->n_layers, C = c->d_model, F = c->d_ff, V = c->vocab;
  struct { const char *name; int ndim, s0, s1, s2, decay; } spec[DEC_NTENSORS] = {
      [DEC_WTE] = {"wte", 2, V, C, 0, 1},          [DEC_WPE] = {"wpe", 2, c->max_len, C, 0, 1},
      [DEC_LN1_W] = {"ln1_w", 2, L, C, 0, 0},      [DEC_LN1_B] = {"ln1_b", 2, L, C, 0, 0},
      [DEC_QKV_W] = {"qkv_w", 3, L, 3 * C, C, 1},  [DEC_QKV_B] = {"qkv_b", 2, L, 3 * C, 0, 0},
      [DEC_ATTO_W] = {"atto_w", 3, L, C, C, 1},    [DEC_ATTO_B] = {"atto_b", 2, L, C, 0, 0},
      [DEC_LN2_W] = {"ln2_w", 2, L, C, 0, 0},      [DEC_LN2_B] = {"ln2_b", 2, L, C, 0, 0},
      [DEC_FC1_W] = {"fc1_w", 3, L, F, C, 1},      [DEC_FC1_B] = {"fc1_b", 2, L, F, 0, 0},
      [DEC_FC2_W] = {"fc2_w", 3, L, C, F, 1},      [DEC_FC2_B] = {"fc2_b", 2, L, C, 0, 0},
      [DEC_LNF_W] = {"lnf_w", 1, C, 0, 0, 0},      [DEC_LNF_B] = {"lnf_b", 1, C, 0, 0, 0},
  };
  size_t off = 0;
  for (int i = 0; i < DEC_NTENSORS; i++) {
    encoder_tensor *t = &d->t[i];
    t->name = spec[i].name;
    t->ndim = spec[i].ndim;
    t->shape[0] = spec[i].s0;
    t->shape[1] = spec[i].s1;
    t->shape[2] = spec[i].s2;
    t->decay = spec[i].decay;
    t->offset = off;
    t->size = 1;
    for (int k = 0; k < t->ndim; k++) t->size *= (size_t)t->shape[k];
    off += t->size;
  }
  d->nparams = off;
}

int decoder_new_on(decoder **out, const decoder_config *cfg, int backend, foil_err *err) {
  *out = NULL;
  decoder_config c = *cfg;
  int rc = decoder_config_check(&c, err);
  if (!rc) rc = devmem_ready(backend, "decoder", err);
  if (rc) return rc;
  decoder *d = calloc(1, sizeof *d);
  if (!d) return foil_err_set(err, FOIL_ENOMEM, "out of memory for the decoder");
  d->cfg = c;
  d->backend = backend;
  d->rows = (rowmap){.rank = 0, .world = 1};
  layout(d);
  d->params = devmem_alloc_whole(backend, d->nparams * sizeof(float));
  /* gradients: on the CPU at once; on CUDA at the first training forward
   * (a decoder that only generates never holds them) */
  d->grads = backend == DEVMEM_CPU ? devmem_alloc_whole(backend, d->nparams * sizeof(float)) : NULL;
  if (!d->params || (backend == DEVMEM_CPU && !d->grads)) {
    size_t n = d->nparams;
    decoder_destroy(&d);
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for %zu parameters", devmem_where(backend), n);
  }
  *out = d;
  return FOIL_OK;
}

int decoder_new(decoder **out, const decoder_config *cfg, foil_err *err) {
  return decoder_new_on(out, cfg, DEVMEM_CPU, err);
}

int decoder_clone_on(const decoder *src, int backend, decoder **out, foil_err *err) {
  int rc = decoder_new_on(out, &src->cfg, backend, err);
  if (rc) return rc;
  rc = devmem_transfer(backend, (*out)->params, src->backend, src->params, src->nparams * sizeof(float), err);
  if (rc) decoder_destroy(out);
  return rc;
}

int decoder_set_params(decoder *d, const float *host, foil_err *err) {
  return devmem_put(d->backend, d->params, host, d->nparams * sizeof(float), err);
}
int decoder_get_params(const decoder *d, float *host, foil_err *err) {
  return devmem_get(d->backend, host, d->params, d->nparams * sizeof(float), err);
}

void decoder_destroy(decoder **dp) {
  if (!dp || !*dp) return;
  decoder *d = *dp;
  int be = d->backend;
  devmem_free(be, d->params);
  devmem_free(be, d->grads);
  devmem_free(be, d->act_mem);
  free(d->la);
  devmem_free(be, d->logits);
  devmem_free(be, d->ids);
  devmem_free(be, d->lab);
  devmem_free(be, d->mask);
  free(d->targets), free(d->h_lab), free(d->h_ids), free(d->h_mask);
  free(d->h_nll), free(d->h_lnf), free(d->h_logits);
  devmem_free(be, d->lmh_in), devmem_free(be, d->lmh_out);
  devmem_free(be, d->wb), devmem_free(be, d->xb), devmem_free(be, d->gb);
  free(d);
  *dp = NULL;
}

const decoder_config *decoder_cfg(const decoder *d) { return &d->cfg; }
int decoder_backend(const decoder *d) { return d->backend; }
size_t decoder_num_params(const decoder *d) { return d->nparams; }
float *decoder_params(decoder *d) { return d->params; }
float *decoder_grads(decoder *d) { return d->grads; }
const encoder_tensor *decoder_tensors(const decoder *d) { return d->t; }
void decoder_zero_grads(decoder *d) {
  if (d->grads) devmem_zero(d->backend, d->grads, d->nparams * sizeof(float));
}

/* Tensors stacked over layers (shape [L, ...]) and one layer's slice. */
static int stacked(int id) { return id >= DEC_LN1_W && id <= DEC_FC2_B; }
static size_t slice_size(const decoder *d, int id) {
  const encoder_tensor *t = &d->t[id];
  return stacked(id) ? t->size / (size_t)t->shape[0] : t->size;
}

/* Pointer to layer l's slice of a stacked tensor in buf (params or grads);
 * l is ignored for the others. */
static float *P(const decoder *d, const float *buf, int id, int l) {
  return (float *)buf + d->t[id].offset + (stacked(id) ? slice_size(d, id) * (size_t)l : 0);
}

void decoder_on_grads_ready(decoder *d, encoder_grads_ready fn, void *ctx) {
  d->ready = fn;
  d->ready_ctx = ctx;
}

/* The callback for tensors ids[0..n) (layer l's slice of the stacked ones). */
static int announce(decoder *d, const int *ids, int n, int l, foil_err *err) {
  for (int i = 0; d->ready && i < n; i++) {
    int rc = d->ready(d->ready_ctx, P(d, d->grads, ids[i], l), slice_size(d, ids[i]), err);
    if (rc) return rc;
  }
  return FOIL_OK;
}

/* Normal(0, std) from Philox via Box-Muller: element i of tensor id. */
static float normal_at(uint64_t seed, uint64_t stream, uint64_t i, float std) {
  float u1 = rng_uniform(seed, stream, 2 * i), u2 = rng_uniform(seed, stream, 2 * i + 1);
  u1 = u1 > 1e-7f ? u1 : 1e-7f;
  return std * sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

int decoder_init(decoder *d, uint64_t seed, foil_err *err) {
  float resid_std = 0.02f / sqrtf(2.0f * (float)d->cfg.n_layers);
  float buf[4096]; /* values are made on the host, put on the backend a piece at a time */
  for (int id = 0; id < DEC_NTENSORS; id++) {
    const encoder_tensor *t = &d->t[id];
    int is_ln_w = id == DEC_LN1_W || id == DEC_LN2_W || id == DEC_LNF_W;
    float std = id == DEC_ATTO_W || id == DEC_FC2_W ? resid_std : 0.02f;
    for (size_t i0 = 0; i0 < t->size; i0 += 4096) {
      size_t n = t->size - i0 < 4096 ? t->size - i0 : 4096;
      for (size_t i = 0; i < n; i++)
        buf[i] = t->decay ? normal_at(seed, (uint64_t)id, i0 + i, std) : (is_ln_w ? 1.0f : 0.0f);
      int rc = devmem_put(d->backend, d->params + t->offset + i0, buf, n * sizeof(float), err);
      if (rc) return rc;
    }
  }
  return FOIL_OK;
}

double decoder_forward_flops(const decoder_config *c, int B, int T) {
  double C = c->d_model, F = c->d_ff ? c->d_ff : 4.0 * c->d_model, N = (double)B * T;
  /* matmuls, attention counted over the full T×T (as the encoder), LM head */
  double per_tok = 2.0 * (3 * C * C + C * C + 2 * C * F) + 4.0 * T * C;
  return N * per_tok * c->n_layers + N * 2.0 * C * c->vocab;
}

/* ---- the GEMMs, fp32 or bf16 --------------------------------------------------------
 * W points into params; its bf16 working copy sits at the same offset in wb.
 * xb: bf16 scratch of N·C (the input), gb: of N·OC (the output gradient). */
static const uint16_t *WB(const decoder *d, const float *W) { return d->wb + (W - d->params); }

/* out = inp @ W^T + b */
static void linear(const decoder *d, uint16_t *xb, float *out, const float *inp, const float *W, const float *b,
                   int N, int C, int OC) {
  if (!d->bf16) {
    K(matmul_forward, out, inp, W, b, N, C, OC);
    return;
  }
  K(f32_to_bf16, xb, inp, (size_t)N * C);
  K(matmul_forward_bf16, out, xb, WB(d, W), b, N, C, OC);
}

/* pre = inp @ W^T + b, out = GELU(pre) (fused after the bf16 GEMM) */
static void linear_gelu(const decoder *d, uint16_t *xb, float *out, float *pre, const float *inp, const float *W,
                        const float *b, int N, int C, int OC) {
  if (!d->bf16) {
    K(matmul_forward, pre, inp, W, b, N, C, OC);
    K(gelu_forward, out, pre, (size_t)N * OC);
    return;
  }
  K(f32_to_bf16, xb, inp, (size_t)N * C);
  K(matmul_gelu_forward_bf16, out, pre, xb, WB(d, W), b, N, C, OC);
}

/* dinp += dout @ W, dW += dout^T @ inp, db += colsum(dout); bf16: dout
 * and inp rounded (the bias gradient sums dout unrounded) */
static void linear_backward(const decoder *d, float *dinp, float *dW, float *db, const float *dout, const float *inp,
                            const float *W, int N, int C, int OC) {
  if (!d->bf16) {
    K(matmul_backward, dinp, dW, db, dout, inp, W, N, C, OC);
    return;
  }
  K(f32_to_bf16, d->xb, inp, (size_t)N * C);
  K(f32_to_bf16, d->gb, dout, (size_t)N * OC);
  K(matmul_backward_bf16, dinp, dW, db, d->gb, dout, d->xb, WB(d, W), N, C, OC);
}

/* logits [N,V] = hidden [N,C] · wte^T on backend buffers. */
static void lm_head(const decoder *d, uint16_t *xb, float *logits, const float *hidden, int N) {
  linear(d, xb, logits, hidden, d->params + d->t[DEC_WTE].offset, NULL, N, d->cfg.d_model, d->cfg.vocab);
}

/* ENC_BF16: the working copy from the fp32 masters (each forward and
 * prefill: the optimizer, set_params or init may have moved them). */
static void refresh_working_copy(decoder *d) {
  static const int mats[] = {DEC_WTE, DEC_QKV_W, DEC_ATTO_W, DEC_FC1_W, DEC_FC2_W};
  for (int i = 0; i < 5; i++) {
    const encoder_tensor *t = &d->t[mats[i]];
    K(f32_to_bf16, d->wb + t->offset, d->params + t->offset, t->size);
  }
}

int decoder_set_precision(decoder *d, int precision, foil_err *err) {
  if (precision != ENC_FP32 && precision != ENC_BF16)
    return foil_err_set(err, FOIL_EINVAL, "decoder precision %d: ENC_FP32 or ENC_BF16", precision);
  if (precision == ENC_BF16 && !d->wb && !(d->wb = devmem_alloc_whole(d->backend, d->nparams * sizeof(uint16_t))))
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for a bf16 copy of %zu parameters",
                        devmem_where(d->backend), d->nparams);
  d->bf16 = precision == ENC_BF16; /* the next forward sizes its bf16 scratch (ensure_acts) */
  return FOIL_OK;
}
int decoder_precision(const decoder *d) { return d->bf16 ? ENC_BF16 : ENC_FP32; }

int decoder_lm_head(decoder *d, float *logits, const float *hidden, int N, foil_err *err) {
  size_t nc = (size_t)N * d->cfg.d_model, nv = (size_t)N * d->cfg.vocab;
  int rc = d->bf16 ? grow16(d->backend, &d->xb, &d->cap_xb, nc, err) : FOIL_OK;
  if (rc) return rc;
  if (d->backend == DEVMEM_CPU) {
    lm_head(d, d->xb, logits, hidden, N);
    return FOIL_OK;
  }
  rc = grow(d->backend, &d->lmh_in, &d->cap_lmh_in, nc, err);
  if (!rc) rc = grow(d->backend, &d->lmh_out, &d->cap_lmh_out, nv, err);
  if (!rc) rc = devmem_put(d->backend, d->lmh_in, hidden, nc * sizeof(float), err);
  if (rc) return rc;
  lm_head(d, d->xb, d->lmh_out, d->lmh_in, N);
  return devmem_get(d->backend, logits, d->lmh_out, nv * sizeof(float), err);
}

/* ---- activations ------------------------------------------------------------- */

/* ENC_BF16's scratch for N tokens: a GEMM's input (N·max(C,F)) and output
 * gradient (N·max(3C,F), or a chunk of the LM head's logits, LM_ROWS·V). */
static int ensure_b16(decoder *d, size_t N, foil_err *err) {
  if (!d->bf16) return FOIL_OK;
  const size_t C = d->cfg.d_model, F = d->cfg.d_ff, V = d->cfg.vocab;
  size_t nx = N * (C > F ? C : F), ng = N * (3 * C > F ? 3 * C : F);
  if (ng < (size_t)LM_ROWS * V) ng = (size_t)LM_ROWS * V;
  int rc = grow16(d->backend, &d->xb, &d->cap_xb, nx, err);
  return rc ? rc : grow16(d->backend, &d->gb, &d->cap_gb, ng, err);
}

/* Hands out the activation buffers from base (d->la has sets entries), or
 * with base NULL only counts the floats they take: one list sizes and
 * carves (devmem_carve). */
static size_t carve_acts(decoder *d, float *base, size_t N, size_t natt, int sets, int train) {
  const size_t C = d->cfg.d_model, F = d->cfg.d_ff, lm = (size_t)LM_ROWS * d->cfg.vocab;
  const size_t wide = 3 * C > F ? 3 * C : F;
  devmem_carve cv = {base, 0};
#define TAKE(ptr, n) (ptr = devmem_take(&cv, (n)))
  TAKE(d->emb, N * C); TAKE(d->resid0, N * C);
  for (int s = 0; s < sets; s++) {
    layer_acts *a = &d->la[s];
    TAKE(a->ln1, N * C); TAKE(a->ln1_mu, N); TAKE(a->ln1_rs, N);
    TAKE(a->qkv, N * 3 * C); TAKE(a->att, natt); TAKE(a->atty, N * C);
    TAKE(a->r1, N * C);
    TAKE(a->ln2, N * C); TAKE(a->ln2_mu, N); TAKE(a->ln2_rs, N);
    TAKE(a->fc1, N * F); TAKE(a->gelu, N * F);
    TAKE(a->r2, N * C);
  }
  TAKE(d->lnf, N * C); TAKE(d->lnf_mu, N); TAKE(d->lnf_rs, N);
  TAKE(d->tmp, N * wide); TAKE(d->att_scratch, natt);
  TAKE(d->lm_a, lm); TAKE(d->lm_b, lm); TAKE(d->nll, N);
  d->g_res = d->g_a = d->g_b = d->g_w1 = d->g_w2 = NULL;
  if (train) {
    TAKE(d->g_res, N * C); TAKE(d->g_a, N * C); TAKE(d->g_b, N * C);
    TAKE(d->g_w1, N * wide); TAKE(d->g_w2, N * wide);
  }
#undef TAKE
  return cv.used;
}

static int ensure_acts(decoder *d, int B, int T, int train, foil_err *err) {
  const decoder_config *c = &d->cfg;
  size_t N = (size_t)B * T, natt = (size_t)B * c->n_heads * T * T;
  int sets = train ? c->n_layers : 1;
  int rc = ensure_b16(d, N, err);
  if (rc) return rc;
  if (d->act_mem && N <= d->cap_tokens && natt <= d->cap_att && sets <= d->cap_sets &&
      (!train || d->cap_grad))
    return FOIL_OK;
  const int be = d->backend;
  devmem_free(be, d->act_mem);
  free(d->la);
  devmem_free(be, d->ids);
  devmem_free(be, d->lab);
  devmem_free(be, d->mask);
  free(d->targets), free(d->h_lab), free(d->h_ids), free(d->h_mask);
  d->act_mem = NULL;
  d->la = calloc((size_t)sets, sizeof(layer_acts));
  if (d->la) d->act_mem = devmem_alloc(be, carve_acts(d, NULL, N, natt, sets, train) * sizeof(float));
  d->ids = devmem_alloc(be, N * sizeof(int32_t));
  d->lab = devmem_alloc(be, (size_t)LM_ROWS * sizeof(int32_t));
  d->mask = devmem_alloc(be, N);
  d->targets = malloc(N * sizeof(int32_t));
  d->h_lab = malloc((size_t)LM_ROWS * sizeof(int32_t));
  d->h_ids = malloc(N * sizeof(int32_t));
  d->h_mask = malloc(N);
  if (!d->act_mem || !d->la || !d->ids || !d->targets || !d->lab || !d->mask || !d->h_lab || !d->h_ids ||
      !d->h_mask) {
    devmem_free(be, d->act_mem);
    d->act_mem = NULL;
    d->cap_tokens = d->cap_att = 0;
    d->cap_sets = d->cap_grad = 0;
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for activations of %zu tokens", devmem_where(be), N);
  }
  carve_acts(d, d->act_mem, N, natt, sets, train);
  d->cap_tokens = N;
  d->cap_att = natt;
  d->cap_sets = sets;
  d->cap_grad = train;
  return FOIL_OK;
}

/* ---- forward ------------------------------------------------------------------- */

/* Dropout streams as encoder.c: site 0 the embeddings; layer l owns
 * 1+3l (attention probabilities), 2+3l (attention output), 3+3l (FFN). */
static uint64_t stream_of(uint64_t call, int site) { return (call << 20) ^ (uint64_t)site; }

/* Dropout of the forward's [B,T,C] activations by run of rows in the
 * global batch (rowmap_dropout; per_row = T·C). */
static void drop_fwd(decoder *d, float *out, const float *inp, size_t per_row, float p, uint64_t seed,
                     uint64_t stream) {
  const size_t max_row = (size_t)d->cfg.max_len * d->cfg.d_model;
  rowmap_dropout(d->backend, 0, out, inp, per_row, max_row, p, seed, stream, d->run, d->nrun);
}

static void drop_bwd(decoder *d, float *dinp, const float *dout, size_t per_row, float p, uint64_t seed,
                     uint64_t stream) {
  const size_t max_row = (size_t)d->cfg.max_len * d->cfg.d_model;
  rowmap_dropout(d->backend, 1, dinp, dout, per_row, max_row, p, seed, stream, d->run, d->nrun);
}

int decoder_set_rows(decoder *d, const rowmap *m, foil_err *err) {
  int rc = rowmap_set(&d->rows, m, err);
  if (!rc) d->have_fwd = 0; /* a backward replays the masks of the map it ran with */
  return rc;
}

/* Per-layer hook of the shared forward (prefill fills the cache from it). */
typedef void (*layer_hook)(void *ctx, int l, const float *qkv, const float *x_after);

/* The transformer body: embeddings, L layers, final norm into d->lnf.
 * Inputs already validated and copied into d->ids / d->mask. */
static void body_forward(decoder *d, int B, int T, int train, uint64_t seed, uint64_t call,
                         layer_hook hook, void *ctx) {
  const decoder_config *c = &d->cfg;
  const int N = B * T, C = c->d_model, F = c->d_ff, NH = c->n_heads;
  const size_t NC = (size_t)N * C;
  const size_t TC = (size_t)T * C, Ta = (size_t)NH * T * T, Tam = (size_t)NH * c->max_len * c->max_len;
  const float p = train ? c->dropout : 0.0f;
  float *W = d->params;
  K(embed_forward, d->emb, d->ids, W + d->t[DEC_WTE].offset, W + d->t[DEC_WPE].offset, B, T, C);
  const float *x = d->emb;
  if (p > 0.0f) {
    drop_fwd(d, d->resid0, d->emb, TC, p, seed, stream_of(call, 0));
    x = d->resid0;
  }
  d->x0 = x;
  if (hook) hook(ctx, -1, NULL, x);
  for (int l = 0; l < c->n_layers; l++) {
    layer_acts *a = &d->la[train ? l : 0];
    K(layernorm_forward, a->ln1, a->ln1_mu, a->ln1_rs, x, P(d, W, DEC_LN1_W, l),
                      P(d, W, DEC_LN1_B, l), N, C, c->ln_eps);
    linear(d, d->xb, a->qkv, a->ln1, P(d, W, DEC_QKV_W, l), P(d, W, DEC_QKV_B, l), N, C, 3 * C);
    for (int i = 0; i < d->nrun; i++) { /* the probabilities' masks by run, as drop_fwd */
      const rowmap_run *r = &d->run[i];
      K(attention_forward, a->atty + r->at * TC, a->att + r->at * Ta, d->att_scratch, a->qkv + r->at * 3 * TC,
        d->mask + (size_t)r->at * T, r->n, T, C, NH, 1, p, seed, stream_of(call, 1 + 3 * l),
        rowmap_offset(r, Ta, Tam));
    }
    linear(d, d->xb, d->tmp, a->atty, P(d, W, DEC_ATTO_W, l), P(d, W, DEC_ATTO_B, l), N, C, C);
    drop_fwd(d, d->tmp, d->tmp, TC, p, seed, stream_of(call, 2 + 3 * l));
    K(residual_forward, a->r1, x, d->tmp, NC);
    K(layernorm_forward, a->ln2, a->ln2_mu, a->ln2_rs, a->r1, P(d, W, DEC_LN2_W, l),
                      P(d, W, DEC_LN2_B, l), N, C, c->ln_eps);
    linear_gelu(d, d->xb, a->gelu, a->fc1, a->ln2, P(d, W, DEC_FC1_W, l), P(d, W, DEC_FC1_B, l), N, C, F);
    linear(d, d->xb, d->tmp, a->gelu, P(d, W, DEC_FC2_W, l), P(d, W, DEC_FC2_B, l), N, F, C);
    drop_fwd(d, d->tmp, d->tmp, TC, p, seed, stream_of(call, 3 + 3 * l));
    K(residual_forward, a->r2, a->r1, d->tmp, NC);
    x = a->r2;
    if (hook) hook(ctx, l, a->qkv, x);
  }
  K(layernorm_forward, d->lnf, d->lnf_mu, d->lnf_rs, x, W + d->t[DEC_LNF_W].offset,
                    W + d->t[DEC_LNF_B].offset, N, C, c->ln_eps);
}

static int check_ids(const decoder *d, const int32_t *ids, size_t n, foil_err *err) {
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= d->cfg.vocab)
      return foil_err_set(err, FOIL_EINVAL,
                          "token id %d at position %zu is outside the vocabulary [0,%d)", ids[i], i,
                          d->cfg.vocab);
  return FOIL_OK;
}

int decoder_forward(decoder *d, const int32_t *ids, const int32_t *targets, const uint8_t *mask,
                    int B, int T, int train, uint64_t seed, uint64_t call, float *loss,
                    const float **hidden, const float **logits, const float **nll,
                    foil_err *err) {
  const decoder_config *c = &d->cfg;
  d->have_fwd = 0;
  if (loss) *loss = 0.0f;
  if (hidden) *hidden = NULL;
  if (logits) *logits = NULL;
  if (nll) *nll = NULL;
  if (B < 1 || T < 1)
    return foil_err_set(err, FOIL_EINVAL, "batch %d x length %d: both must be >= 1", B, T);
  if (T > c->max_len)
    return foil_err_set(err, FOIL_EINVAL, "sequence length %d exceeds max_len %d", T, c->max_len);
  const size_t N = (size_t)B * T, V = (size_t)c->vocab, C = (size_t)c->d_model;
  int rc = check_ids(d, ids, N, err);
  if (rc) return rc;
  if (targets)
    for (size_t i = 0; i < N; i++)
      if (targets[i] < -1 || targets[i] >= c->vocab)
        return foil_err_set(err, FOIL_EINVAL,
                            "target %d at position %zu is outside the vocabulary [0,%d) (-1 ignores)",
                            targets[i], i, c->vocab);
  if (train && !d->grads && !(d->grads = devmem_alloc_whole(d->backend, d->nparams * sizeof(float))))
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for %zu gradients", devmem_where(d->backend),
                        d->nparams);
  rc = ensure_acts(d, B, T, train, err);
  if (rc) return rc;
  if (logits && (rc = grow(d->backend, &d->logits, &d->cap_logits, N * V, err))) return rc;
  if (mask)
    memcpy(d->h_mask, mask, N);
  else
    memset(d->h_mask, 1, N);
  if ((rc = devmem_put(d->backend, d->ids, ids, N * sizeof(int32_t), err)) ||
      (rc = devmem_put(d->backend, d->mask, d->h_mask, N, err)))
    return rc;
  int nt = 0;
  for (size_t i = 0; i < N; i++) {
    d->targets[i] = targets ? targets[i] : -1;
    nt += d->targets[i] >= 0;
  }
  if (d->bf16) refresh_working_copy(d);
  if (!train) d->run[0] = (rowmap_run){.at = 0, .n = B, .g = 0}, d->nrun = 1; /* no masks drawn */
  else if ((d->nrun = rowmap_runs(&d->rows, 0, B, d->run)) < 0)
    return foil_err_set(err, FOIL_EINVAL, "%d rows run past the decoder's row map (decoder_set_rows)", B);
  body_forward(d, B, T, train, seed, call, NULL, NULL);

  /* LM head chunk by chunk (the same sgemm shapes whether or not the
   * logits are kept, so loss and nll have the same bits either way) */
  double total = 0.0;
  const int want_ce = nt > 0;
  if (logits || want_ce) {
    for (size_t r0 = 0; r0 < N; r0 += LM_ROWS) {
      int n = (int)(N - r0 < LM_ROWS ? N - r0 : LM_ROWS);
      float *lg = logits ? d->logits + r0 * V : d->lm_a;
      lm_head(d, d->xb, lg, d->lnf + r0 * C, n);
      if (!want_ce) continue;
      for (int i = 0; i < n; i++) d->h_lab[i] = d->targets[r0 + i] >= 0 ? d->targets[r0 + i] : 0;
      if ((rc = devmem_put(d->backend, d->lab, d->h_lab, (size_t)n * sizeof(int32_t), err))) return rc;
      K(crossentropy_forward, d->nll + r0, d->lm_b, lg, d->lab, n, (int)V);
    }
  }
  float *hn = NULL; /* the nll on the host, ignored positions zeroed */
  if (want_ce) {
    if ((rc = host_view(d->backend, &d->h_nll, &d->cap_h_nll, d->nll, N, &hn, err))) return rc;
    for (size_t i = 0; i < N; i++) {
      if (d->targets[i] < 0)
        hn[i] = 0.0f;
      else
        total += hn[i]; /* in row order: the same bits on any thread count */
    }
  } else {
    if (d->backend == DEVMEM_CPU) hn = d->nll;
    else if ((rc = host_buf(&d->h_nll, &d->cap_h_nll, N, err))) return rc;
    else hn = d->h_nll;
    memset(hn, 0, N * sizeof(float));
  }
  d->n_targets = nt;
  if (loss) *loss = nt > 0 ? (float)(total / nt) : 0.0f;
  float *h = NULL, *lg = NULL;
  if (hidden && (rc = host_view(d->backend, &d->h_lnf, &d->cap_h_lnf, d->lnf, N * C, &h, err))) return rc;
  if (logits && (rc = host_view(d->backend, &d->h_logits, &d->cap_h_logits, d->logits, N * V, &lg, err)))
    return rc;
  if (hidden) *hidden = h;
  if (logits) *logits = lg;
  if (nll) *nll = hn;
  d->B = B;
  d->T = T;
  d->train = train;
  d->seed = seed;
  d->call = call;
  d->have_fwd = 1;
  return FOIL_OK;
}

/* ---- backward ------------------------------------------------------------------- */

int decoder_backward(decoder *d, float loss_weight, const float *dhidden, foil_err *err) {
  const decoder_config *c = &d->cfg;
  if (!d->have_fwd || !d->train)
    return foil_err_set(err, FOIL_EPRECOND,
                        "decoder_backward needs a training forward first (train != 0; set dropout "
                        "0 for a deterministic gradient)");
  const int B = d->B, T = d->T, N = B * T, C = c->d_model, F = c->d_ff, NH = c->n_heads;
  const int V = c->vocab, be = d->backend;
  const size_t NC = (size_t)N * C, NF = (size_t)N * F, fb = sizeof(float), TC = (size_t)T * C,
               Ta = (size_t)NH * T * T, Tam = (size_t)NH * c->max_len * c->max_len;
  const float p = c->dropout;
  const uint64_t seed = d->seed, call = d->call;
  float *W = d->params, *G = d->grads;
  float *wte = W + d->t[DEC_WTE].offset, *dwte = G + d->t[DEC_WTE].offset;
  float *gres = d->g_res, *ga = d->g_a, *gb = d->g_b;
  int rc;

  /* d(hidden) = dhidden + LM head's share of the loss, into ga */
  if (dhidden) {
    if ((rc = devmem_put(be, ga, dhidden, NC * fb, err))) return rc;
  } else {
    devmem_zero(be, ga, NC * fb);
  }
  if (d->n_targets > 0 && loss_weight != 0.0f) {
    float scale = loss_weight / (float)d->n_targets;
    for (int r0 = 0; r0 < N; r0 += LM_ROWS) {
      int n = N - r0 < LM_ROWS ? N - r0 : LM_ROWS, any = 0;
      for (int i = 0; i < n; i++) {
        d->h_lab[i] = d->targets[r0 + i] >= 0 ? d->targets[r0 + i] : 0;
        any |= d->targets[r0 + i] >= 0;
      }
      if (!any) continue;
      if ((rc = devmem_put(be, d->lab, d->h_lab, (size_t)n * sizeof(int32_t), err))) return rc;
      const float *h = d->lnf + (size_t)r0 * C;
      lm_head(d, d->xb, d->lm_a, h, n); /* recomputed: no [N,V] kept */
      K(crossentropy_forward, d->tmp, d->lm_b, d->lm_a, d->lab, n, V);
      devmem_zero(be, d->lm_a, (size_t)n * V * fb);
      K(crossentropy_backward, d->lm_a, d->lm_b, d->lab, n, V, scale);
      for (int i = 0; i < n; i++)
        if (d->targets[r0 + i] < 0) devmem_zero(be, d->lm_a + (size_t)i * V, (size_t)V * fb);
      linear_backward(d, ga + (size_t)r0 * C, dwte, NULL, d->lm_a, h, wte, n, C, V);
    }
  }
  /* final norm */
  const float *xL = d->la[c->n_layers - 1].r2;
  devmem_zero(be, gres, NC * fb);
  K(layernorm_backward, gres, G + d->t[DEC_LNF_W].offset, G + d->t[DEC_LNF_B].offset, ga, xL,
    W + d->t[DEC_LNF_W].offset, d->lnf_mu, d->lnf_rs, N, C);
  static const int lnf[] = {DEC_LNF_W, DEC_LNF_B};
  if ((rc = announce(d, lnf, 2, 0, err))) return rc;

  /* layers, last to first; gres holds d(layer output) and becomes d(input) */
  for (int l = c->n_layers - 1; l >= 0; l--) {
    layer_acts *a = &d->la[l];
    const float *x = l == 0 ? d->x0 : d->la[l - 1].r2;
    float *gw1 = d->g_w1, *gw2 = d->g_w2;
    /* r2 = r1 + drop(fc2(gelu(fc1(LN2(r1))))) */
    float *dh = gb;
    devmem_copy(be, dh, gres, NC * fb);
    devmem_zero(be, d->tmp, NC * fb);
    drop_bwd(d, d->tmp, gres, TC, p, seed, stream_of(call, 3 + 3 * l));
    devmem_zero(be, gw1, NF * fb);
    linear_backward(d, gw1, P(d, G, DEC_FC2_W, l), P(d, G, DEC_FC2_B, l), d->tmp, a->gelu, P(d, W, DEC_FC2_W, l), N,
                    F, C);
    devmem_zero(be, gw2, NF * fb);
    K(gelu_backward, gw2, a->fc1, a->gelu, gw1, NF);
    devmem_zero(be, ga, NC * fb);
    linear_backward(d, ga, P(d, G, DEC_FC1_W, l), P(d, G, DEC_FC1_B, l), gw2, a->ln2, P(d, W, DEC_FC1_W, l), N, C,
                    F);
    K(layernorm_backward, dh, P(d, G, DEC_LN2_W, l), P(d, G, DEC_LN2_B, l), ga, a->r1, P(d, W, DEC_LN2_W, l),
      a->ln2_mu, a->ln2_rs, N, C);
    /* dh = d(r1); r1 = x + drop(atto(attn(qkv(LN1(x))))) */
    devmem_copy(be, gres, dh, NC * fb);
    devmem_zero(be, d->tmp, NC * fb);
    drop_bwd(d, d->tmp, dh, TC, p, seed, stream_of(call, 2 + 3 * l));
    devmem_zero(be, ga, NC * fb);
    linear_backward(d, ga, P(d, G, DEC_ATTO_W, l), P(d, G, DEC_ATTO_B, l), d->tmp, a->atty, P(d, W, DEC_ATTO_W, l),
                    N, C, C);
    devmem_zero(be, gw1, (size_t)N * 3 * C * fb);
    for (int i = 0; i < d->nrun; i++) {
      const rowmap_run *r = &d->run[i];
      K(attention_backward, gw1 + r->at * 3 * TC, d->att_scratch, ga + r->at * TC, a->qkv + r->at * 3 * TC,
        a->att + r->at * Ta, r->n, T, C, NH, p, seed, stream_of(call, 1 + 3 * l), rowmap_offset(r, Ta, Tam));
    }
    devmem_zero(be, gb, NC * fb);
    linear_backward(d, gb, P(d, G, DEC_QKV_W, l), P(d, G, DEC_QKV_B, l), gw1, a->ln1, P(d, W, DEC_QKV_W, l), N, C,
                    3 * C);
    K(layernorm_backward, gres, P(d, G, DEC_LN1_W, l), P(d, G, DEC_LN1_B, l), gb, x, P(d, W, DEC_LN1_W, l),
      a->ln1_mu, a->ln1_rs, N, C);
    static const int layer[] = {DEC_LN1_W, DEC_LN1_B, DEC_QKV_W,  DEC_QKV_B,  DEC_ATTO_W, DEC_ATTO_B,
                                DEC_LN2_W, DEC_LN2_B, DEC_FC1_W,  DEC_FC1_B,  DEC_FC2_W,  DEC_FC2_B};
    if ((rc = announce(d, layer, 12, l, err))) return rc;
  }
  /* embeddings: x0 = drop(wte[ids] + wpe[t]) */
  devmem_zero(be, ga, NC * fb);
  drop_bwd(d, ga, gres, TC, p, seed, stream_of(call, 0));
  K(embed_backward, dwte, G + d->t[DEC_WPE].offset, ga, d->ids, B, T, C);
  static const int emb[] = {DEC_WTE, DEC_WPE}; /* wte: the LM head's share came first */
  if ((rc = announce(d, emb, 2, 0, err))) return rc;
  return devmem_check(be, err);
}

/* ---- KV cache ------------------------------------------------------------------- */

/* The cache's buffers from base, or (base NULL) the floats they take. */
static size_t carve_cache(decoder_cache *k, float *base) {
  const size_t L = k->L, C = k->C, F = k->F, R = k->rows, n = R * k->cands;
  const size_t kv = L * R * k->max_len * C, s = L * R * k->cands * C;
  devmem_carve cv = {base, 0};
#define TAKE(ptr, cnt) (ptr = devmem_take(&cv, (cnt)))
  TAKE(k->k, kv); TAKE(k->v, kv); TAKE(k->sk, s); TAKE(k->sv, s);
  TAKE(k->x, n * C); TAKE(k->ln, n * C); TAKE(k->atty, n * C); TAKE(k->tmp, n * C);
  TAKE(k->mu, n); TAKE(k->rs, n); TAKE(k->qkv, n * 3 * C);
  TAKE(k->fc1, n * F); TAKE(k->gelu, n * F);
  TAKE(k->att_scratch, n * k->NH * ((size_t)k->max_len + 1));
  TAKE(k->states, (L + 1) * R * C); TAKE(k->gath, (L + 1) * R * C);
#undef TAKE
  return cv.used;
}

int decoder_cache_new(decoder_cache **out, const decoder *d, int rows, int max_len, int cands,
                      foil_err *err) {
  *out = NULL;
  const decoder_config *c = &d->cfg;
  if (rows < 1) return foil_err_set(err, FOIL_EINVAL, "cache rows must be >= 1, got %d", rows);
  if (max_len < 1 || max_len > c->max_len)
    return foil_err_set(err, FOIL_EINVAL, "cache max_len %d must be in 1..%d (the model's positions)",
                        max_len, c->max_len);
  if (cands < 1) return foil_err_set(err, FOIL_EINVAL, "cache cands must be >= 1, got %d", cands);
  decoder_cache *k = calloc(1, sizeof *k);
  if (!k) return foil_err_set(err, FOIL_ENOMEM, "out of memory for a cache");
  k->backend = d->backend;
  k->L = c->n_layers;
  k->C = c->d_model;
  k->F = c->d_ff;
  k->V = c->vocab;
  k->NH = c->n_heads;
  k->rows = rows;
  k->max_len = max_len;
  k->cands = cands;
  const size_t R = (size_t)rows;
  k->mem = devmem_alloc(k->backend, carve_cache(k, NULL) * sizeof(float));
  k->len = calloc(R, sizeof(int));
  k->grp = calloc(R, sizeof(int));
  k->stepped = calloc(R, 1);
  if (k->backend == DEVMEM_CPU) {
    k->dlen = k->len, k->dgrp = k->grp;
  } else {
    k->dlen = devmem_alloc(k->backend, R * sizeof(int));
    k->dgrp = devmem_alloc(k->backend, R * sizeof(int));
  }
  if (!k->mem || !k->len || !k->grp || !k->stepped || !k->dlen || !k->dgrp) {
    decoder_cache_destroy(&k);
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for a cache of %d rows x %d positions",
                        devmem_where(d->backend), rows, max_len);
  }
  carve_cache(k, k->mem);
  k->states_na = -1;
  *out = k;
  return FOIL_OK;
}

void decoder_cache_destroy(decoder_cache **cp) {
  if (!cp || !*cp) return;
  decoder_cache *c = *cp;
  devmem_free(c->backend, c->mem);
  if (c->dlen != c->len) devmem_free(c->backend, c->dlen);
  if (c->dgrp != c->grp) devmem_free(c->backend, c->dgrp);
  free(c->len);
  free(c->grp);
  free(c->stepped);
  devmem_free(c->backend, c->lm);
  devmem_free(c->backend, c->xb);
  free(c);
  *cp = NULL;
}

const int *decoder_cache_lens(const decoder_cache *c) { return c->len; }

void decoder_cache_reset(decoder_cache *c) {
  memset(c->len, 0, (size_t)c->rows * sizeof(int));
  memset(c->stepped, 0, (size_t)c->rows);
  c->states_na = -1;
}

static int cache_matches(const decoder *d, const decoder_cache *c, foil_err *err) {
  if (c->L != d->cfg.n_layers || c->C != d->cfg.d_model || c->F != d->cfg.d_ff ||
      c->V != d->cfg.vocab || c->NH != d->cfg.n_heads || c->backend != d->backend)
    return foil_err_set(err, FOIL_EINVAL, "the cache was made for a decoder of another config or backend");
  return FOIL_OK;
}

/* Slot t of row r in layer l of a [L, rows, slots, C] buffer. */
static float *slot(const decoder_cache *c, float *buf, int l, int r, int slots, int t) {
  return buf + (((size_t)l * c->rows + r) * slots + t) * c->C;
}

/* Grows the logits scratch c->lm to `need` floats. */
static int ensure_lm(decoder_cache *c, size_t need, foil_err *err) {
  return grow(c->backend, &c->lm, &c->cap_lm, need, err);
}

int decoder_layer_logits(const decoder *d, decoder_cache *c, const int *which, int n, float *out,
                         foil_err *err);

/* The `layers` output of prefill and step: every layer 0..L. */
static int head_all_layers(const decoder *d, decoder_cache *c, float *layers, foil_err *err) {
  int all[1025];
  for (int j = 0; j <= c->L; j++) all[j] = j;
  return decoder_layer_logits(d, c, all, c->L + 1, layers, err);
}

typedef struct {
  decoder_cache *c;
  const int *lens;
  int T;
  float *states; /* [L+1, rows, C] or NULL */
} prefill_ctx;

/* After layer l (l = -1: the embeddings): store the keys/values of every
 * real position (one strided copy per row: position t's key is at
 * qkv[t·3C + C]), and the last token's residual stream for DoLa. */
static void prefill_hook(void *vctx, int l, const float *qkv, const float *x_after) {
  prefill_ctx *p = vctx;
  decoder_cache *c = p->c;
  const int C = c->C, T = p->T, be = c->backend;
  const size_t row = (size_t)C * sizeof(float);
  if (qkv)
    for (int r = 0; r < c->rows; r++) {
      const float *src = qkv + (size_t)r * T * 3 * C;
      devmem_copy2d(be, slot(c, c->k, l, r, c->max_len, 0), row, src + C, 3 * row, row, (size_t)p->lens[r]);
      devmem_copy2d(be, slot(c, c->v, l, r, c->max_len, 0), row, src + 2 * C, 3 * row, row, (size_t)p->lens[r]);
    }
  if (p->states)
    for (int r = 0; r < c->rows; r++)
      devmem_copy(be, p->states + ((size_t)(l + 1) * c->rows + r) * C,
                  x_after + ((size_t)r * T + p->lens[r] - 1) * C, row);
}

int decoder_prefill(decoder *d, decoder_cache *c, const int32_t *ids, const int *lens, int T,
                    float *logits, float *hidden, float *layers, foil_err *err) {
  const decoder_config *cf = &d->cfg;
  d->have_fwd = 0;
  int rc = cache_matches(d, c, err);
  if (rc) return rc;
  if (T < 1 || T > c->max_len)
    return foil_err_set(err, FOIL_EINVAL, "prompt length %d must be in 1..%d (the cache's max_len)",
                        T, c->max_len);
  const int rows = c->rows, C = cf->d_model, L = cf->n_layers, be = d->backend;
  for (int r = 0; r < rows; r++) {
    if (lens[r] < 1 || lens[r] > T)
      return foil_err_set(err, FOIL_EINVAL, "prompt %d has length %d, must be in 1..%d", r, lens[r],
                          T);
    for (int t = 0; t < lens[r]; t++) {
      int32_t id = ids[(size_t)r * T + t];
      if (id < 0 || id >= cf->vocab)
        return foil_err_set(err, FOIL_EINVAL,
                            "token id %d of prompt %d at position %d is outside the vocabulary [0,%d)",
                            id, r, t, cf->vocab);
    }
  }
  rc = ensure_acts(d, rows, T, 0, err);
  if (rc) return rc;
  const size_t N = (size_t)rows * T;
  for (int r = 0; r < rows; r++)
    for (int t = 0; t < T; t++) {
      size_t i = (size_t)r * T + t;
      d->h_ids[i] = t < lens[r] ? ids[i] : 0; /* ignored positions: any valid id */
      d->h_mask[i] = t < lens[r];
    }
  if ((rc = devmem_put(be, d->ids, d->h_ids, N * sizeof(int32_t), err)) ||
      (rc = devmem_put(be, d->mask, d->h_mask, N, err)))
    return rc;
  if (d->bf16 && (rc = grow16(be, &c->xb, &c->cap_xb, (size_t)rows * C, err))) return rc;
  if (d->bf16) refresh_working_copy(d);
  prefill_ctx ctx = {c, lens, T, c->states};
  d->run[0] = (rowmap_run){.at = 0, .n = rows, .g = 0}, d->nrun = 1;
  body_forward(d, rows, T, 0, 0, 0, prefill_hook, &ctx);
  for (int r = 0; r < rows; r++) {
    c->len[r] = lens[r];
    c->stepped[r] = 0;
  }
  const size_t row = (size_t)C * sizeof(float);
  if (hidden)
    for (int r = 0; r < rows; r++) {
      float *h = hidden + (size_t)r * T * C;
      if ((rc = devmem_get(be, h, d->lnf + (size_t)r * T * C, (size_t)lens[r] * row, err))) return rc;
      memset(h + (size_t)lens[r] * C, 0, (size_t)(T - lens[r]) * row);
    }
  /* the last token's final state, gathered into the states' slot L */
  float *last = c->states + (size_t)L * rows * C;
  for (int r = 0; r < rows; r++) {
    devmem_copy(be, last + (size_t)r * C, d->lnf + ((size_t)r * T + lens[r] - 1) * C, row);
    c->grp[r] = r;
  }
  c->states_na = rows;
  if (layers) {
    rc = head_all_layers(d, c, layers, err);
    if (rc) return rc;
  }
  if (logits) {
    const size_t bytes = (size_t)rows * cf->vocab * sizeof(float);
    if (layers) {
      memcpy(logits, layers + (size_t)L * rows * cf->vocab, bytes);
    } else if (be == DEVMEM_CPU) {
      lm_head(d, c->xb, logits, last, rows);
    } else {
      if ((rc = ensure_lm(c, (size_t)rows * cf->vocab, err))) return rc;
      lm_head(d, c->xb, c->lm, last, rows);
      if ((rc = devmem_get(be, logits, c->lm, bytes, err))) return rc;
    }
  }
  return devmem_check(be, err);
}

int decoder_step(decoder *d, decoder_cache *c, const int32_t *ids, int R, const uint8_t *active,
                 float *logits, float *hidden, float *layers, foil_err *err) {
  const decoder_config *cf = &d->cfg;
  int rc = cache_matches(d, c, err);
  if (rc) return rc;
  if (R < 1 || R > c->cands)
    return foil_err_set(err, FOIL_EINVAL, "%d candidates per row: must be in 1..%d (the cache's cands)",
                        R, c->cands);
  if (layers && R != 1)
    return foil_err_set(err, FOIL_EINVAL, "per-layer logits need one candidate per row, got %d", R);
  const int rows = c->rows, C = cf->d_model, F = cf->d_ff, L = cf->n_layers, V = cf->vocab;
  const int be = d->backend;
  int na = 0;
  for (int r = 0; r < rows; r++) {
    if (active && !active[r]) continue;
    if (c->len[r] >= c->max_len)
      return foil_err_set(err, FOIL_EINVAL,
                          "row %d is full: length %d, the cache's max_len is %d", r, c->len[r],
                          c->max_len);
    for (int i = 0; i < R; i++) {
      int32_t id = ids[(size_t)r * R + i];
      if (id < 0 || id >= V)
        return foil_err_set(err, FOIL_EINVAL,
                            "token id %d of row %d, candidate %d is outside the vocabulary [0,%d)",
                            id, r, i, V);
    }
    c->grp[na++] = r;
  }
  for (int r = 0; r < rows; r++) c->stepped[r] = 0;
  c->last_R = R;
  c->states_na = -1;
  if (na == 0) return FOIL_OK;
  const int n = na * R;
  /* the LM head runs as one product over all active tokens (wte read once);
   * with inactive rows (or on a device) it writes c->lm first, scattered to
   * the rows' logits after */
  const int direct = na == rows && be == DEVMEM_CPU;
  if (logits && !direct && (rc = ensure_lm(c, (size_t)n * V, err))) return rc;
  if (d->bf16 && (rc = grow16(be, &c->xb, &c->cap_xb, (size_t)n * (C > F ? C : F), err))) return rc;
  /* the attention kernel reads the rows' lengths and the active rows there */
  if (be != DEVMEM_CPU && ((rc = devmem_put(be, c->dlen, c->len, (size_t)rows * sizeof(int), err)) ||
                           (rc = devmem_put(be, c->dgrp, c->grp, (size_t)na * sizeof(int), err))))
    return rc;
  const int keep = R == 1; /* layer states for DoLa (one candidate per row) */

  const size_t nC = (size_t)n * C, row = (size_t)C * sizeof(float);
  float *W = d->params;
  const float *wte = W + d->t[DEC_WTE].offset, *wpe = W + d->t[DEC_WPE].offset;
  /* embeddings of the n new tokens (group g's token i is token g·R+i) */
  for (int g = 0; g < na; g++)
    for (int i = 0; i < R; i++) {
      int r = c->grp[g];
      float *x = c->x + ((size_t)g * R + i) * C;
      devmem_copy(be, x, wte + (size_t)ids[(size_t)r * R + i] * C, row);
      K(add_inplace, x, wpe + (size_t)c->len[r] * C, (size_t)C);
    }
  if (keep) devmem_copy(be, c->states, c->x, (size_t)na * row);
  for (int l = 0; l < L; l++) {
    K(layernorm_forward, c->ln, c->mu, c->rs, c->x, P(d, W, DEC_LN1_W, l), P(d, W, DEC_LN1_B, l), n, C,
      cf->ln_eps);
    linear(d, c->xb, c->qkv, c->ln, P(d, W, DEC_QKV_W, l), P(d, W, DEC_QKV_B, l), n, C, 3 * C);
    /* the candidates' keys/values wait in the step scratch for commit */
    for (int g = 0; g < na; g++) {
      const float *q = c->qkv + (size_t)g * R * 3 * C;
      devmem_copy2d(be, slot(c, c->sk, l, c->grp[g], c->cands, 0), row, q + C, 3 * row, row, (size_t)R);
      devmem_copy2d(be, slot(c, c->sv, l, c->grp[g], c->cands, 0), row, q + 2 * C, 3 * row, row, (size_t)R);
    }
    K(attention_cache_forward, c->atty, c->att_scratch, c->qkv, slot(c, c->k, l, 0, c->max_len, 0),
      slot(c, c->v, l, 0, c->max_len, 0), c->dlen, c->dgrp, na, R, c->max_len, C, cf->n_heads);
    linear(d, c->xb, c->tmp, c->atty, P(d, W, DEC_ATTO_W, l), P(d, W, DEC_ATTO_B, l), n, C, C);
    K(add_inplace, c->x, c->tmp, nC);
    K(layernorm_forward, c->ln, c->mu, c->rs, c->x, P(d, W, DEC_LN2_W, l), P(d, W, DEC_LN2_B, l), n, C,
      cf->ln_eps);
    linear_gelu(d, c->xb, c->gelu, c->fc1, c->ln, P(d, W, DEC_FC1_W, l), P(d, W, DEC_FC1_B, l), n, C, F);
    linear(d, c->xb, c->tmp, c->gelu, P(d, W, DEC_FC2_W, l), P(d, W, DEC_FC2_B, l), n, F, C);
    K(add_inplace, c->x, c->tmp, nC);
    if (keep && l < L - 1) devmem_copy(be, c->states + (size_t)(l + 1) * na * C, c->x, nC * sizeof(float));
  }
  K(layernorm_forward, c->ln, c->mu, c->rs, c->x, W + d->t[DEC_LNF_W].offset, W + d->t[DEC_LNF_B].offset, n, C,
    cf->ln_eps);
  if (keep) {
    devmem_copy(be, c->states + (size_t)L * na * C, c->ln, nC * sizeof(float));
    c->states_na = na;
  }
  /* outputs, scattered to the active rows */
  for (int g = 0; g < na; g++) {
    int r = c->grp[g];
    c->stepped[r] = 1;
    if (hidden && (rc = devmem_get(be, hidden + (size_t)r * R * C, c->ln + (size_t)g * R * C, (size_t)R * row, err)))
      return rc;
  }
  if (logits) {
    if (direct) {
      lm_head(d, c->xb, logits, c->ln, n);
    } else {
      lm_head(d, c->xb, c->lm, c->ln, n);
      const size_t bytes = (size_t)R * V * sizeof(float);
      if (na == rows)
        rc = devmem_get(be, logits, c->lm, (size_t)rows * bytes, err);
      for (int g = 0; !rc && na < rows && g < na; g++)
        rc = devmem_get(be, logits + (size_t)c->grp[g] * R * V, c->lm + (size_t)g * R * V, bytes, err);
      if (rc) return rc;
    }
  }
  if (layers) return head_all_layers(d, c, layers, err);
  return devmem_check(be, err);
}

int decoder_layer_logits(const decoder *d, decoder_cache *c, const int *which, int n, float *out,
                         foil_err *err) {
  int rc = cache_matches(d, c, err);
  if (rc) return rc;
  const int L = c->L, C = c->C, V = c->V, rows = c->rows, na = c->states_na, be = c->backend;
  if (n < 1) return foil_err_set(err, FOIL_EINVAL, "layer logits: %d layers asked, need >= 1", n);
  for (int i = 0; i < n; i++)
    if (which[i] < 0 || which[i] > L)
      return foil_err_set(err, FOIL_EINVAL, "layer logits: layer %d is not in 0..%d", which[i], L);
  if (na < 0)
    return foil_err_set(err, FOIL_EPRECOND,
                        "layer logits: no layer states (need a prefill or a one-candidate step "
                        "since the last reset, reorder or multi-candidate step)");
  if (na == 0) return FOIL_OK;
  if (d->bf16 && (rc = grow16(be, &c->xb, &c->cap_xb, (size_t)(L + 1) * na * C, err))) return rc;
  /* the asked layers' states side by side, then ONE product (wte read
   * once) per L+1 of them (more only when `which` repeats layers) */
  const size_t bytes = (size_t)na * C * sizeof(float), vb = (size_t)V * sizeof(float);
  for (int i0 = 0; i0 < n; i0 += L + 1) {
    const int m = n - i0 < L + 1 ? n - i0 : L + 1;
    for (int i = 0; i < m; i++)
      devmem_copy(be, c->gath + (size_t)i * na * C, c->states + (size_t)which[i0 + i] * na * C, bytes);
    if (na == rows && be == DEVMEM_CPU) {
      lm_head(d, c->xb, out + (size_t)i0 * rows * V, c->gath, m * na);
      continue;
    }
    if ((rc = ensure_lm(c, (size_t)m * na * V, err))) return rc;
    lm_head(d, c->xb, c->lm, c->gath, m * na);
    if (na == rows) {
      if ((rc = devmem_get(be, out + (size_t)i0 * rows * V, c->lm, (size_t)m * na * vb, err))) return rc;
      continue;
    }
    for (int i = 0; i < m; i++)
      for (int g = 0; g < na; g++)
        if ((rc = devmem_get(be, out + ((size_t)(i0 + i) * rows + c->grp[g]) * V, c->lm + ((size_t)i * na + g) * V,
                             vb, err)))
          return rc;
  }
  return devmem_check(be, err);
}

void decoder_cache_commit(decoder_cache *c, const int *choice, const uint8_t *active) {
  const size_t bytes = (size_t)c->C * sizeof(float);
  for (int r = 0; r < c->rows; r++) {
    if ((active && !active[r]) || !c->stepped[r] || c->len[r] >= c->max_len) continue;
    int ch = choice ? choice[r] : 0;
    if (ch < 0 || ch >= c->last_R) continue;
    for (int l = 0; l < c->L; l++) {
      devmem_copy(c->backend, slot(c, c->k, l, r, c->max_len, c->len[r]), slot(c, c->sk, l, r, c->cands, ch), bytes);
      devmem_copy(c->backend, slot(c, c->v, l, r, c->max_len, c->len[r]), slot(c, c->sv, l, r, c->cands, ch), bytes);
    }
    c->len[r]++;
    c->stepped[r] = 0;
  }
}

int decoder_cache_reorder(decoder_cache *c, const int *src, foil_err *err) {
  const int rows = c->rows, be = c->backend;
  int changed = 0;
  for (int r = 0; r < rows; r++) {
    if (src[r] < 0 || src[r] >= rows)
      return foil_err_set(err, FOIL_EINVAL, "reorder: row %d's source %d is not in 0..%d", r,
                          src[r], rows - 1);
    changed += src[r] != r;
  }
  for (int r = 0; r < rows; r++) c->stepped[r] = 0; /* candidates no longer match their rows */
  c->states_na = -1;
  if (!changed) return FOIL_OK;
  /* Snapshot every source a changed row reads (a permutation may overwrite
   * a source before it is read), then copy. */
  int *slot_of = malloc((size_t)rows * sizeof(int)), *lens = malloc((size_t)rows * sizeof(int));
  if (!slot_of || !lens) {
    free(slot_of);
    free(lens);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory to reorder the cache");
  }
  int ns = 0;
  for (int r = 0; r < rows; r++) slot_of[r] = -1;
  for (int r = 0; r < rows; r++)
    if (src[r] != r && slot_of[src[r]] < 0) slot_of[src[r]] = ns++;
  size_t per = (size_t)c->L * c->max_len * c->C; /* one row, all layers, of k or v */
  float *snap = devmem_alloc(be, (size_t)ns * 2 * per * sizeof(float));
  if (!snap) {
    free(slot_of);
    free(lens);
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory to reorder the cache", devmem_where(be));
  }
  const size_t bytes_row = (size_t)c->C * sizeof(float);
  for (int s = 0; s < rows; s++) {
    if (slot_of[s] < 0) continue;
    float *dst = snap + (size_t)slot_of[s] * 2 * per;
    size_t n = (size_t)c->len[s] * bytes_row;
    for (int l = 0; l < c->L; l++) {
      devmem_copy(be, dst + (size_t)l * c->max_len * c->C, slot(c, c->k, l, s, c->max_len, 0), n);
      devmem_copy(be, dst + per + (size_t)l * c->max_len * c->C, slot(c, c->v, l, s, c->max_len, 0), n);
    }
  }
  memcpy(lens, c->len, (size_t)rows * sizeof(int));
  for (int r = 0; r < rows; r++) {
    if (src[r] == r) continue;
    const float *from = snap + (size_t)slot_of[src[r]] * 2 * per;
    size_t n = (size_t)lens[src[r]] * bytes_row;
    for (int l = 0; l < c->L; l++) {
      devmem_copy(be, slot(c, c->k, l, r, c->max_len, 0), from + (size_t)l * c->max_len * c->C, n);
      devmem_copy(be, slot(c, c->v, l, r, c->max_len, 0), from + per + (size_t)l * c->max_len * c->C, n);
    }
    c->len[r] = lens[src[r]];
  }

  devmem_free(be, snap);
  free(slot_of);
  free(lens);
  return devmem_check(be, err);
}
