/* encoder.c — the transformer encoder of encoder.h, built from kernels.
 *
 * One source for both backends: every kernel call goes through KERN, which
 * calls the kernels.h function on a CPU encoder and its cuda_ twin
 * (kernels/cuda/kernels_cuda.h, same arguments) on a CUDA one, and every
 * buffer through devmem.h on the encoder's backend. The forward and
 * backward are therefore the same sequence of calls on either backend. */
#include "model/encoder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

#define KERN(e, fn, ...) DEVMEM_KERN((e)->backend, fn, __VA_ARGS__)

/* Activations of one layer. In inference every layer uses set 0. */
typedef struct {
  float *ln1, *ln1_mu, *ln1_rs; /* LN1 output and row stats */
  float *qkv, *att, *atty;      /* [N,3d], [B,NH,T,T], [N,d] */
  float *r1;                    /* x + drop(attention output) */
  float *ln2, *ln2_mu, *ln2_rs;
  float *fc1, *gelu;            /* [N,dff] each */
  float *r2;                    /* FFN residual sum */
} layer_acts;

struct encoder {
  encoder_config cfg;
  int backend; /* DEVMEM_CUDA: every buffer below is device memory */
  encoder_tensor t[ENC_NTENSORS];
  size_t nparams;
  float *params, *grads;

  /* activations, sized for cap_tokens tokens / cap_att attention floats /
   * cap_B sequences, with cap_sets layer sets */
  float *act_mem;
  size_t cap_tokens, cap_att, cap_B;
  int cap_sets, cap_grad;
  float *emb_sum, *emb_ln, *emb_mu, *emb_rs, *resid0;
  const float *x0; /* input of layer 0: resid0, or the embeddings when p == 0 */
  layer_acts *la;
  float *lnf, *lnf_mu, *lnf_rs, *pooled, *out, *tmp, *att_scratch;
  /* backward buffers */
  float *g_res, *g_a, *g_b, *g_w1, *g_w2, *g_pool, *g_out;
  int32_t *ids;
  uint8_t *mask;
  /* ENC_BF16: the GEMMs' bf16 working copy of the weight matrices [nparams]
   * (refreshed from params by every forward) and scratch for a GEMM's
   * input and output gradient in bf16 (cap_tokens·max(3d, d_ff) each, or
   * the projection head's B·proj_dim if larger) */
  int bf16;
  uint16_t *wb, *xb, *gb16;
  /* encoder_on_grads_ready's callback */
  encoder_grads_ready ready;
  void *ready_ctx;

  /* where this rank's rows sit in the global batch (encoder_set_rows) */
  rowmap rows;
  /* the last forward; run[] are its rows' runs in the global batch */
  int B, T, train, have_fwd, nrun;
  uint64_t seed, call;
  rowmap_run run[ROWMAP_MAX_BLOCKS];
  /* a failure encoder_init could not return (CUDA upload), reported by the
   * next forward */
  foil_err pending;
};

/* ---- buffers on the encoder's backend ------------------------------------------ */

static void *dalloc(const encoder *e, size_t bytes) { return devmem_alloc(e->backend, bytes); }
static void dfree(const encoder *e, void *p) { devmem_free(e->backend, p); }
static void dzero(const encoder *e, void *p, size_t bytes) { devmem_zero(e->backend, p, bytes); }
static void dcopy(const encoder *e, void *dst, const void *src, size_t bytes) {
  devmem_copy(e->backend, dst, src, bytes);
}

/* ---- config --------------------------------------------------------------- */

void encoder_config_default(encoder_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->pre_ln = 0;
  cfg->pooling = POOL_MEAN;
  cfg->dropout = 0.1f;
  cfg->ln_eps = 1e-5f;
}

int encoder_config_check(const encoder_config *c, foil_err *err) {
#define NEED(cond, ...) \
  if (!(cond)) return foil_err_set(err, FOIL_EINVAL, __VA_ARGS__)
  NEED(c->n_layers >= 1 && c->n_layers <= 1024, "n_layers must be in 1..1024, got %d", c->n_layers);
  NEED(c->d_model >= 1 && c->d_model <= 65536, "d_model must be in 1..65536, got %d", c->d_model);
  NEED(c->n_heads >= 1 && c->d_model % c->n_heads == 0,
       "n_heads (%d) must divide d_model (%d)", c->n_heads, c->d_model);
  NEED(c->d_ff >= 1 && c->d_ff <= 1 << 20, "d_ff must be in 1..1048576, got %d", c->d_ff);
  NEED(c->vocab >= 1 && c->vocab <= 1 << 24, "vocab must be in 1..16777216, got %d", c->vocab);
  NEED(c->max_len >= 1 && c->max_len <= 1 << 16, "max_len must be in 1..65536, got %d", c->max_len);
  NEED(c->proj_dim >= 0 && c->proj_dim <= 65536, "proj_dim must be in 0..65536, got %d", c->proj_dim);
  NEED(c->pre_ln == 0 || c->pre_ln == 1, "pre_ln must be 0 or 1, got %d", c->pre_ln);
  NEED(c->pooling == POOL_MEAN || c->pooling == POOL_FIRST, "pooling must be mean or first");
  NEED(c->dropout >= 0.0f && c->dropout < 1.0f, "dropout must be in [0,1), got %g", (double)c->dropout);
  NEED(c->ln_eps > 0.0f && c->ln_eps < 1.0f, "ln_eps must be in (0,1), got %g", (double)c->ln_eps);
#undef NEED
  return FOIL_OK;
}

/* ---- parameters ------------------------------------------------------------- */

static void layout(encoder *e) {
  const encoder_config *c = &e->cfg;
  int L = c->n_layers, d = c->d_model, f = c->d_ff, V = c->vocab;
  int post = !c->pre_ln, P = c->proj_dim;
  struct { const char *name; int ndim, s0, s1, s2, present, decay; } spec[ENC_NTENSORS] = {
      [ENC_WTE] = {"wte", 2, V, d, 0, 1, 1},
      [ENC_WPE] = {"wpe", 2, c->max_len, d, 0, 1, 1},
      [ENC_EMB_LN_W] = {"emb_ln_w", 1, d, 0, 0, post, 0},
      [ENC_EMB_LN_B] = {"emb_ln_b", 1, d, 0, 0, post, 0},
      [ENC_LN1_W] = {"ln1_w", 2, L, d, 0, 1, 0},
      [ENC_LN1_B] = {"ln1_b", 2, L, d, 0, 1, 0},
      [ENC_QKV_W] = {"qkv_w", 3, L, 3 * d, d, 1, 1},
      [ENC_QKV_B] = {"qkv_b", 2, L, 3 * d, 0, 1, 0},
      [ENC_ATTO_W] = {"atto_w", 3, L, d, d, 1, 1},
      [ENC_ATTO_B] = {"atto_b", 2, L, d, 0, 1, 0},
      [ENC_LN2_W] = {"ln2_w", 2, L, d, 0, 1, 0},
      [ENC_LN2_B] = {"ln2_b", 2, L, d, 0, 1, 0},
      [ENC_FC1_W] = {"fc1_w", 3, L, f, d, 1, 1},
      [ENC_FC1_B] = {"fc1_b", 2, L, f, 0, 1, 0},
      [ENC_FC2_W] = {"fc2_w", 3, L, d, f, 1, 1},
      [ENC_FC2_B] = {"fc2_b", 2, L, d, 0, 1, 0},
      [ENC_LNF_W] = {"lnf_w", 1, d, 0, 0, !post, 0},
      [ENC_LNF_B] = {"lnf_b", 1, d, 0, 0, !post, 0},
      [ENC_PROJ_W] = {"proj_w", 2, P, d, 0, P > 0, 1},
      [ENC_PROJ_B] = {"proj_b", 1, P, 0, 0, P > 0, 0},
  };
  size_t off = 0;
  for (int i = 0; i < ENC_NTENSORS; i++) {
    encoder_tensor *t = &e->t[i];
    t->name = spec[i].name;
    t->ndim = spec[i].ndim;
    t->shape[0] = spec[i].s0;
    t->shape[1] = spec[i].s1;
    t->shape[2] = spec[i].s2;
    t->decay = spec[i].decay;
    t->offset = off;
    t->size = 0;
    if (spec[i].present) {
      t->size = 1;
      for (int k = 0; k < t->ndim; k++) t->size *= (size_t)t->shape[k];
    }
    off += t->size;
  }
  e->nparams = off;
}

int encoder_new(encoder **out, const encoder_config *cfg, foil_err *err) {
  return encoder_new_on(out, cfg, DEVMEM_CPU, err);
}

int encoder_new_on(encoder **out, const encoder_config *cfg, int backend, foil_err *err) {
  *out = NULL;
  int rc = encoder_config_check(cfg, err);
  if (rc) return rc;
  if ((rc = devmem_ready(backend, "encoder", err))) return rc;
  encoder *e = calloc(1, sizeof *e);
  if (!e) return foil_err_set(err, FOIL_ENOMEM, "out of memory for the encoder");
  e->cfg = *cfg;
  e->backend = backend;
  e->rows = (rowmap){.rank = 0, .world = 1};
  layout(e);
  e->params = devmem_alloc_whole(e->backend, e->nparams * sizeof(float));
  e->grads = devmem_alloc_whole(e->backend, e->nparams * sizeof(float));
  if (!e->params || !e->grads) {
    size_t n = e->nparams;
    encoder_destroy(&e);
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for %zu parameters", devmem_where(backend), n);
  }
  *out = e;
  return FOIL_OK;
}

int encoder_clone_on(encoder **out, const encoder *src, int backend, foil_err *err) {
  int rc = encoder_new_on(out, &src->cfg, backend, err);
  if (rc) return rc;
  rc = devmem_transfer(backend, (*out)->params, src->backend, src->params, src->nparams * sizeof(float), err);
  if (rc) encoder_destroy(out);
  return rc;
}

void encoder_destroy(encoder **enc) {
  if (!enc || !*enc) return;
  encoder *e = *enc;
  dfree(e, e->params);
  dfree(e, e->grads);
  dfree(e, e->act_mem);
  free(e->la);
  dfree(e, e->ids);
  dfree(e, e->mask);
  dfree(e, e->wb);
  dfree(e, e->xb);
  dfree(e, e->gb16);
  free(e);
  *enc = NULL;
}

int encoder_set_precision(encoder *e, int precision, foil_err *err) {
  if (precision != ENC_FP32 && precision != ENC_BF16)
    return foil_err_set(err, FOIL_EINVAL, "unknown encoder precision %d", precision);
  if (precision == ENC_BF16 && !e->wb && !(e->wb = devmem_alloc_whole(e->backend, e->nparams * sizeof(uint16_t))))
    return foil_err_set(err, FOIL_ENOMEM, "out of memory for a bf16 copy of %zu parameters", e->nparams);
  if (precision == ENC_FP32) {
    dfree(e, e->wb);
    e->wb = NULL;
  }
  /* the GEMM scratch comes with the activations: without it the next
   * forward reallocates them (ensure_acts) */
  dfree(e, e->xb);
  dfree(e, e->gb16);
  e->xb = e->gb16 = NULL;
  e->bf16 = precision == ENC_BF16;
  return FOIL_OK;
}

int encoder_precision(const encoder *e) { return e->bf16 ? ENC_BF16 : ENC_FP32; }

void encoder_on_grads_ready(encoder *e, encoder_grads_ready fn, void *ctx) {
  e->ready = fn;
  e->ready_ctx = ctx;
}

int encoder_backend(const encoder *e) { return e->backend; }

int encoder_set_params(encoder *e, const float *host, foil_err *err) {
  return devmem_put(e->backend, e->params, host, e->nparams * sizeof(float), err);
}
int encoder_get_params(const encoder *e, float *host, foil_err *err) {
  return devmem_get(e->backend, host, e->params, e->nparams * sizeof(float), err);
}
int encoder_get_grads(const encoder *e, float *host, foil_err *err) {
  return devmem_get(e->backend, host, e->grads, e->nparams * sizeof(float), err);
}
int encoder_copy_out(const encoder *e, float *host, const float *src, size_t n, foil_err *err) {
  return devmem_get(e->backend, host, src, n * sizeof(float), err);
}

const encoder_config *encoder_cfg(const encoder *e) { return &e->cfg; }
size_t encoder_num_params(const encoder *e) { return e->nparams; }
float *encoder_params(encoder *e) { return e->params; }
float *encoder_grads(encoder *e) { return e->grads; }
const encoder_tensor *encoder_tensors(const encoder *e) { return e->t; }
int encoder_out_dim(const encoder *e) {
  return e->cfg.proj_dim > 0 ? e->cfg.proj_dim : e->cfg.d_model;
}
void encoder_zero_grads(encoder *e) { dzero(e, e->grads, e->nparams * sizeof(float)); }

/* Tensors of shape [L, ...], one slice per layer. */
static int stacked(int id) { return id >= ENC_LN1_W && id <= ENC_FC2_B; }

/* Floats of one layer's slice of a stacked tensor; the whole tensor for
 * the others. */
static size_t slice_size(const encoder *e, int id) {
  const encoder_tensor *t = &e->t[id];
  return stacked(id) ? t->size / (size_t)t->shape[0] : t->size;
}

/* Pointer to layer l's slice of a stacked tensor in buf (params or grads);
 * l is ignored for the others. */
static float *P(const encoder *e, float *buf, int id, int l) {
  return buf + e->t[id].offset + (stacked(id) ? slice_size(e, id) * (size_t)l : 0);
}

/* ---- the linear layer in the encoder's precision -------------------------------- */

/* W's bf16 working copy: the same offset in wb as W has in params */
static const uint16_t *WB(const encoder *e, const float *W) { return e->wb + (W - e->params); }

/* out = inp @ W^T + b (W, b in params). bf16: inp rounded into xb times
 * W's working copy, fp32 accumulate (the tensor cores on CUDA). */
static void linear_fwd(encoder *e, float *out, const float *inp, const float *W, const float *b, int N, int C,
                       int OC) {
  if (!e->bf16) {
    KERN(e, matmul_forward, out, inp, W, b, N, C, OC);
    return;
  }
  KERN(e, f32_to_bf16, e->xb, inp, (size_t)N * C);
  KERN(e, matmul_forward_bf16, out, e->xb, WB(e, W), b, N, C, OC);
}

/* dinp += dout @ W, dW += dout^T @ inp, db += colsum(dout). bf16: dout and
 * inp rounded (the forward's rounding of inp again: the same bits), W's
 * working copy; the bias gradient from the fp32 dout. */
static void linear_bwd(encoder *e, float *dinp, float *dW, float *db, const float *dout, const float *inp,
                       const float *W, int N, int C, int OC) {
  if (!e->bf16) {
    KERN(e, matmul_backward, dinp, dW, db, dout, inp, W, N, C, OC);
    return;
  }
  KERN(e, f32_to_bf16, e->xb, inp, (size_t)N * C);
  KERN(e, f32_to_bf16, e->gb16, dout, (size_t)N * OC);
  KERN(e, matmul_backward_bf16, dinp, dW, db, e->gb16, dout, e->xb, WB(e, W), N, C, OC);
}

/* bf16: the working copy of the weight matrices from the fp32 masters
 * (one pass over them; biases, LayerNorms and embeddings stay fp32). */
static void refresh_working_copy(encoder *e) {
  static const int mats[] = {ENC_QKV_W, ENC_ATTO_W, ENC_FC1_W, ENC_FC2_W, ENC_PROJ_W};
  for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
    const encoder_tensor *t = &e->t[mats[i]];
    if (t->size) KERN(e, f32_to_bf16, e->wb + t->offset, e->params + t->offset, t->size);
  }
}

/* Normal(0, std) from Philox via Box-Muller: element i of tensor id. */
static float normal_at(uint64_t seed, uint64_t stream, uint64_t i, float std) {
  float u1 = rng_uniform(seed, stream, 2 * i), u2 = rng_uniform(seed, stream, 2 * i + 1);
  u1 = u1 > 1e-7f ? u1 : 1e-7f;
  return std * sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

/* The initial values of every tensor into host memory P [nparams]. */
static void init_into(const encoder *e, float *P, uint64_t seed) {
  for (int id = 0; id < ENC_NTENSORS; id++) {
    const encoder_tensor *t = &e->t[id];
    float *p = P + t->offset;
    int is_ln_w = id == ENC_EMB_LN_W || id == ENC_LN1_W || id == ENC_LN2_W || id == ENC_LNF_W;
    for (size_t i = 0; i < t->size; i++)
      p[i] = t->decay ? normal_at(seed, (uint64_t)id, i, 0.02f) : (is_ln_w ? 1.0f : 0.0f);
  }
}

void encoder_init(encoder *e, uint64_t seed) {
  if (e->backend == DEVMEM_CPU) {
    init_into(e, e->params, seed);
    return;
  }
  /* drawn on the host (the same values), then uploaded */
  float *host = malloc(e->nparams * sizeof(float));
  if (!host) {
    foil_err_set(&e->pending, FOIL_ENOMEM, "out of host memory to initialize %zu parameters", e->nparams);
    return;
  }
  init_into(e, host, seed);
  encoder_set_params(e, host, &e->pending);
  free(host);
}

double encoder_forward_flops(const encoder_config *c, int B, int T) {
  double d = c->d_model, f = c->d_ff, N = (double)B * T;
  double per_tok = 2.0 * (3 * d * d + d * d + 2 * d * f) + 4.0 * T * d;
  return N * per_tok * c->n_layers + 2.0 * B * d * c->proj_dim;
}

/* ---- activations ------------------------------------------------------------- */

/* Hands out the activation buffers from base (e->la has sets entries), or
 * with base NULL only counts the floats they take: one list sizes and
 * carves (devmem_carve). */
static size_t carve_acts(encoder *e, float *base, int B, int T, int sets, int train) {
  const encoder_config *c = &e->cfg;
  const size_t N = (size_t)B * T, natt = (size_t)B * c->n_heads * T * T, nB = (size_t)B;
  const size_t d = c->d_model, f = c->d_ff, Pd = c->proj_dim > 0 ? (size_t)c->proj_dim : d;
  const size_t wide = 3 * d > f ? 3 * d : f;
  devmem_carve cv = {base, 0};
#define TAKE(ptr, n) (ptr = devmem_take(&cv, (n)))
  TAKE(e->emb_sum, N * d); TAKE(e->emb_ln, N * d); TAKE(e->resid0, N * d);
  TAKE(e->emb_mu, N); TAKE(e->emb_rs, N);
  for (int s = 0; s < sets; s++) {
    layer_acts *a = &e->la[s];
    TAKE(a->ln1, N * d); TAKE(a->ln1_mu, N); TAKE(a->ln1_rs, N);
    TAKE(a->qkv, N * 3 * d); TAKE(a->att, natt); TAKE(a->atty, N * d);
    TAKE(a->r1, N * d);
    TAKE(a->ln2, N * d); TAKE(a->ln2_mu, N); TAKE(a->ln2_rs, N);
    TAKE(a->fc1, N * f); TAKE(a->gelu, N * f);
    TAKE(a->r2, N * d);
  }
  TAKE(e->lnf, N * d); TAKE(e->lnf_mu, N); TAKE(e->lnf_rs, N);
  TAKE(e->pooled, nB * d); TAKE(e->out, nB * Pd);
  TAKE(e->tmp, N * wide); TAKE(e->att_scratch, natt);
  e->g_res = e->g_a = e->g_b = e->g_w1 = e->g_w2 = e->g_pool = e->g_out = NULL;
  if (train) {
    TAKE(e->g_res, N * d); TAKE(e->g_a, N * d); TAKE(e->g_b, N * d);
    TAKE(e->g_w1, N * wide); TAKE(e->g_w2, N * wide);
    TAKE(e->g_pool, nB * d); TAKE(e->g_out, nB * Pd);
  }
#undef TAKE
  return cv.used;
}

static int ensure_acts(encoder *e, int B, int T, int train, foil_err *err) {
  const encoder_config *c = &e->cfg;
  size_t N = (size_t)B * T, natt = (size_t)B * c->n_heads * T * T;
  int sets = train ? c->n_layers : 1;
  if (e->act_mem && N <= e->cap_tokens && natt <= e->cap_att &&
      (size_t)B <= e->cap_B && sets <= e->cap_sets && (!train || e->cap_grad) && (!e->bf16 || e->xb))
    return FOIL_OK;
  /* Does not fit: reallocate for exactly this shape and mode (a training
   * run that evaluates now and then pays one reallocation per switch). */
  dfree(e, e->act_mem);
  free(e->la);
  dfree(e, e->ids);
  dfree(e, e->mask);
  e->act_mem = NULL;
  e->la = calloc((size_t)sets, sizeof(layer_acts));
  if (e->la) e->act_mem = dalloc(e, carve_acts(e, NULL, B, T, sets, train) * sizeof(float));
  e->ids = dalloc(e, N * sizeof(int32_t));
  e->mask = dalloc(e, N);
  if (!e->act_mem || !e->la || !e->ids || !e->mask) {
    dfree(e, e->act_mem);
    dfree(e, e->ids);
    dfree(e, e->mask);
    free(e->la);
    e->act_mem = NULL;
    e->ids = NULL;
    e->mask = NULL;
    e->la = NULL;
    e->cap_tokens = e->cap_att = e->cap_B = 0;
    e->cap_sets = e->cap_grad = 0;
    return foil_err_set(err, FOIL_ENOMEM, "out of memory for activations of %zu tokens", N);
  }
  carve_acts(e, e->act_mem, B, T, sets, train);
  if (e->bf16) {
    const size_t d = c->d_model, f = c->d_ff, Pd = c->proj_dim > 0 ? (size_t)c->proj_dim : d;
    const size_t wide = 3 * d > f ? 3 * d : f, nB = (size_t)B;
    dfree(e, e->xb);
    dfree(e, e->gb16);
    size_t nscr = N * wide > nB * Pd ? N * wide : nB * Pd; /* the projection head's dout too */
    e->xb = dalloc(e, nscr * sizeof(uint16_t));
    e->gb16 = dalloc(e, nscr * sizeof(uint16_t));
    if (!e->xb || !e->gb16) {
      dfree(e, e->xb);
      dfree(e, e->gb16);
      e->xb = e->gb16 = NULL;
      e->cap_tokens = 0;
      return foil_err_set(err, FOIL_ENOMEM, "out of memory for bf16 scratch of %zu tokens", N);
    }
  }
  e->cap_tokens = N;
  e->cap_att = natt;
  e->cap_B = (size_t)B;
  e->cap_sets = sets;
  e->cap_grad = train;
  return FOIL_OK;
}

/* ---- forward ------------------------------------------------------------------- */

/* Dropout streams: (call, site) -> one 64-bit Philox stream. Site 0 is the
 * embedding dropout; layer l owns sites 1+3l (attention probabilities),
 * 2+3l (attention output), 3+3l (FFN output). */
static uint64_t stream_of(uint64_t call, int site) {
  return (call << 20) ^ (uint64_t)site;
}

/* Dropout of the last forward's [B,T,d] activations by run of rows in the
 * global batch (rowmap_dropout; per_row = T·d). */
static void drop_fwd(encoder *e, float *out, const float *inp, size_t per_row, float p, uint64_t stream) {
  const size_t max_row = (size_t)e->cfg.max_len * e->cfg.d_model;
  rowmap_dropout(e->backend, 0, out, inp, per_row, max_row, p, e->seed, stream, e->run, e->nrun);
}

static void drop_bwd(encoder *e, float *dinp, const float *dout, size_t per_row, float p, uint64_t stream) {
  const size_t max_row = (size_t)e->cfg.max_len * e->cfg.d_model;
  rowmap_dropout(e->backend, 1, dinp, dout, per_row, max_row, p, e->seed, stream, e->run, e->nrun);
}

int encoder_set_rows(encoder *e, const rowmap *m, foil_err *err) {
  int rc = rowmap_set(&e->rows, m, err);
  if (!rc) e->have_fwd = 0; /* a backward replays the masks of the map it ran with */
  return rc;
}

int encoder_forward(encoder *e, const float **emb, const int32_t *ids,
                    const uint8_t *mask, int B, int T, int train,
                    uint64_t seed, uint64_t call, foil_err *err) {
  return encoder_forward_rows(e, emb, ids, mask, B, T, train, seed, call, 0, err);
}

int encoder_forward_rows(encoder *e, const float **emb, const int32_t *ids,
                         const uint8_t *mask, int B, int T, int train,
                         uint64_t seed, uint64_t call, uint64_t row0, foil_err *err) {
  const encoder_config *c = &e->cfg;
  *emb = NULL;
  e->have_fwd = 0;
  if (e->pending.code) {
    if (err) *err = e->pending;
    return e->pending.code;
  }
  if (B < 1 || T < 1)
    return foil_err_set(err, FOIL_EINVAL, "batch %d x length %d: both must be >= 1", B, T);
  if (T > c->max_len)
    return foil_err_set(err, FOIL_EINVAL, "sequence length %d exceeds max_len %d", T, c->max_len);
  for (size_t i = 0; i < (size_t)B * T; i++)
    if (ids[i] < 0 || ids[i] >= c->vocab)
      return foil_err_set(err, FOIL_EINVAL, "token id %d at position %zu is outside the vocabulary [0,%d)",
                          ids[i], i, c->vocab);
  /* dropout's runs: an inference forward draws no masks, whatever its rows */
  rowmap_run one = {.at = 0, .n = B, .g = 0};
  int nrun = train ? rowmap_runs(&e->rows, row0, B, e->run) : (e->run[0] = one, 1);
  if (nrun < 0)
    return foil_err_set(err, FOIL_EINVAL, "rows %llu..%llu run past the encoder's row map (encoder_set_rows)",
                        (unsigned long long)row0, (unsigned long long)row0 + (uint64_t)B - 1);
  int rc = ensure_acts(e, B, T, train, err);
  if (rc) return rc;
  e->nrun = nrun;
  e->seed = seed;

  const int N = B * T, d = c->d_model, f = c->d_ff, NH = c->n_heads;
  const size_t Nd = (size_t)N * d, Td = (size_t)T * d, Ta = (size_t)NH * T * T;
  const size_t Tam = (size_t)NH * c->max_len * c->max_len; /* Ta at max_len (rowmap_offset) */
  const float p = train ? c->dropout : 0.0f;
  if (e->bf16) refresh_working_copy(e);
  float *W = e->params;
  if ((rc = devmem_put(e->backend, e->ids, ids, (size_t)N * sizeof(int32_t), err)) ||
      (rc = devmem_put(e->backend, e->mask, mask, (size_t)N, err)))
    return rc;

  KERN(e, embed_forward, e->emb_sum, e->ids, W + e->t[ENC_WTE].offset, W + e->t[ENC_WPE].offset, B, T, d);
  const float *src = e->emb_sum;
  if (!c->pre_ln) {
    KERN(e, layernorm_forward, e->emb_ln, e->emb_mu, e->emb_rs, e->emb_sum, W + e->t[ENC_EMB_LN_W].offset,
                      W + e->t[ENC_EMB_LN_B].offset, N, d, c->ln_eps);
    src = e->emb_ln;
  }
  const float *x = src; /* without dropout, layer 0 reads src directly */
  if (p > 0.0f) {
    drop_fwd(e, e->resid0, src, Td, p, stream_of(call, 0));
    x = e->resid0;
  }

  e->x0 = x;
  for (int l = 0; l < c->n_layers; l++) {
    layer_acts *a = &e->la[train ? l : 0];
    const float *ain = x;
    if (c->pre_ln) {
      KERN(e, layernorm_forward, a->ln1, a->ln1_mu, a->ln1_rs, x, P(e, W, ENC_LN1_W, l),
                        P(e, W, ENC_LN1_B, l), N, d, c->ln_eps);
      ain = a->ln1;
    }
    linear_fwd(e, a->qkv, ain, P(e, W, ENC_QKV_W, l), P(e, W, ENC_QKV_B, l), N, d, 3 * d);
    for (int i = 0; i < nrun; i++) { /* the probabilities' masks by run, as drop_fwd */
      const rowmap_run *r = &e->run[i];
      KERN(e, attention_forward, a->atty + r->at * Td, a->att + r->at * Ta, e->att_scratch,
           a->qkv + r->at * 3 * Td, e->mask + (size_t)r->at * T, r->n, T, d, NH, 0, p, seed,
           stream_of(call, 1 + 3 * l), rowmap_offset(r, Ta, Tam));
    }
    linear_fwd(e, e->tmp, a->atty, P(e, W, ENC_ATTO_W, l), P(e, W, ENC_ATTO_B, l), N, d, d);
    drop_fwd(e, e->tmp, e->tmp, Td, p, stream_of(call, 2 + 3 * l));
    KERN(e, residual_forward, a->r1, x, e->tmp, Nd);
    const float *h;
    if (c->pre_ln) {
      KERN(e, layernorm_forward, a->ln2, a->ln2_mu, a->ln2_rs, a->r1, P(e, W, ENC_LN2_W, l),
                        P(e, W, ENC_LN2_B, l), N, d, c->ln_eps);
      h = a->ln2;
    } else {
      KERN(e, layernorm_forward, a->ln1, a->ln1_mu, a->ln1_rs, a->r1, P(e, W, ENC_LN1_W, l),
                        P(e, W, ENC_LN1_B, l), N, d, c->ln_eps);
      h = a->ln1;
    }
    if (e->bf16) { /* GELU fused after the GEMM */
      KERN(e, f32_to_bf16, e->xb, h, (size_t)N * d);
      KERN(e, matmul_gelu_forward_bf16, a->gelu, a->fc1, e->xb, WB(e, P(e, W, ENC_FC1_W, l)),
           P(e, W, ENC_FC1_B, l), N, d, f);
    } else {
      linear_fwd(e, a->fc1, h, P(e, W, ENC_FC1_W, l), P(e, W, ENC_FC1_B, l), N, d, f);
      KERN(e, gelu_forward, a->gelu, a->fc1, (size_t)N * f);
    }
    linear_fwd(e, e->tmp, a->gelu, P(e, W, ENC_FC2_W, l), P(e, W, ENC_FC2_B, l), N, f, d);
    drop_fwd(e, e->tmp, e->tmp, Td, p, stream_of(call, 3 + 3 * l));
    if (c->pre_ln) {
      KERN(e, residual_forward, a->r2, a->r1, e->tmp, Nd); /* the stream bypasses LN2 */
      x = a->r2;
    } else {
      KERN(e, residual_forward, a->r2, h, e->tmp, Nd);
      KERN(e, layernorm_forward, a->ln2, a->ln2_mu, a->ln2_rs, a->r2, P(e, W, ENC_LN2_W, l),
                        P(e, W, ENC_LN2_B, l), N, d, c->ln_eps);
      x = a->ln2;
    }
  }
  if (c->pre_ln) {
    KERN(e, layernorm_forward, e->lnf, e->lnf_mu, e->lnf_rs, x, W + e->t[ENC_LNF_W].offset,
                      W + e->t[ENC_LNF_B].offset, N, d, c->ln_eps);
    x = e->lnf;
  }
  KERN(e, pool_forward, e->pooled, x, e->mask, B, T, d, c->pooling);
  const float *res = e->pooled;
  if (c->proj_dim > 0) {
    linear_fwd(e, e->out, e->pooled, W + e->t[ENC_PROJ_W].offset, W + e->t[ENC_PROJ_B].offset,
                   B, d, c->proj_dim);
    res = e->out;
  }
  if ((rc = devmem_check(e->backend, err))) return rc;
  e->B = B;
  e->T = T;
  e->train = train;
  e->call = call;
  e->have_fwd = 1;
  *emb = res;
  return FOIL_OK;
}

/* ---- backward ------------------------------------------------------------------- */

/* The callback for tensors ids[0..n) (layer l's slice of the stacked ones,
 * l ignored for the others), skipping absent tensors. */
static int announce(encoder *e, const int *ids, int n, int l, foil_err *err) {
  for (int i = 0; e->ready && i < n; i++) {
    if (!e->t[ids[i]].size) continue;
    int rc = e->ready(e->ready_ctx, P(e, e->grads, ids[i], l), slice_size(e, ids[i]), err);
    if (rc) return rc;
  }
  return FOIL_OK;
}

int encoder_backward(encoder *e, const float *demb, foil_err *err) {
  const encoder_config *c = &e->cfg;
  if (!e->have_fwd || !e->train)
    return foil_err_set(err, FOIL_EPRECOND, "encoder_backward needs a training forward first");
  const int B = e->B, T = e->T, N = B * T, d = c->d_model, f = c->d_ff, NH = c->n_heads;
  const size_t Nd = (size_t)N * d, Nf = (size_t)N * f;
  const float p = c->dropout;
  const uint64_t seed = e->seed, call = e->call;
  const size_t Td = (size_t)T * d, Ta = (size_t)NH * T * T, Tam = (size_t)NH * c->max_len * c->max_len;
  float *W = e->params, *G = e->grads;

  /* head: projection and pooling into g_res = d(final token states) */
  const float *dpool = demb;
  if (c->proj_dim > 0) {
    dzero(e, e->g_pool, (size_t)B * d * sizeof(float));
    linear_bwd(e, e->g_pool, G + e->t[ENC_PROJ_W].offset, G + e->t[ENC_PROJ_B].offset, demb,
                    e->pooled, W + e->t[ENC_PROJ_W].offset, B, d, c->proj_dim);
    dpool = e->g_pool;
  }
  float *gres = e->g_res, *ga = e->g_a, *gb = e->g_b;
  dzero(e, gres, Nd * sizeof(float));
  const float *xL = c->n_layers ? (c->pre_ln ? e->la[c->n_layers - 1].r2 : e->la[c->n_layers - 1].ln2)
                                : e->x0;
  if (c->pre_ln) {
    dzero(e, ga, Nd * sizeof(float));
    KERN(e, pool_backward, ga, dpool, e->mask, B, T, d, c->pooling);
    KERN(e, layernorm_backward, gres, G + e->t[ENC_LNF_W].offset, G + e->t[ENC_LNF_B].offset, ga, xL,
                       W + e->t[ENC_LNF_W].offset, e->lnf_mu, e->lnf_rs, N, d);
  } else {
    KERN(e, pool_backward, gres, dpool, e->mask, B, T, d, c->pooling);
  }
  static const int head[] = {ENC_PROJ_W, ENC_PROJ_B, ENC_LNF_W, ENC_LNF_B};
  int rc = announce(e, head, 4, 0, err);
  if (rc) return rc;

  /* layers, last to first; gres holds d(layer output) and becomes d(input) */
  for (int l = c->n_layers - 1; l >= 0; l--) {
    layer_acts *a = &e->la[l];
    const float *x = l == 0 ? e->x0 : (c->pre_ln ? e->la[l - 1].r2 : e->la[l - 1].ln2);
    float *gw1 = e->g_w1, *gw2 = e->g_w2;
    /* d(r2): post-LN goes through LN2 first */
    float *dr2 = gres;
    if (!c->pre_ln) {
      dzero(e, ga, Nd * sizeof(float));
      KERN(e, layernorm_backward, ga, P(e, G, ENC_LN2_W, l), P(e, G, ENC_LN2_B, l), gres, a->r2,
                         P(e, W, ENC_LN2_W, l), a->ln2_mu, a->ln2_rs, N, d);
      dr2 = ga;
    }
    /* r2 = h + drop(y): dh = dr2 (+ FFN path), dy = drop'(dr2) */
    float *dh = gb;
    dcopy(e, dh, dr2, Nd * sizeof(float));
    dzero(e, e->tmp, Nd * sizeof(float));
    drop_bwd(e, e->tmp, dr2, Td, p, stream_of(call, 3 + 3 * l));
    dzero(e, gw1, Nf * sizeof(float));
    linear_bwd(e, gw1, P(e, G, ENC_FC2_W, l), P(e, G, ENC_FC2_B, l), e->tmp, a->gelu,
                    P(e, W, ENC_FC2_W, l), N, f, d);
    dzero(e, gw2, Nf * sizeof(float));
    KERN(e, gelu_backward, gw2, a->fc1, a->gelu, gw1, Nf);
    const float *h = c->pre_ln ? a->ln2 : a->ln1;
    float *dr1;
    if (c->pre_ln) {
      /* h = LN2(r1): accumulate into d(r1) = d(r2) (the residual) */
      dzero(e, ga, Nd * sizeof(float));
      linear_bwd(e, ga, P(e, G, ENC_FC1_W, l), P(e, G, ENC_FC1_B, l), gw2, h,
                      P(e, W, ENC_FC1_W, l), N, d, f);
      KERN(e, layernorm_backward, dh, P(e, G, ENC_LN2_W, l), P(e, G, ENC_LN2_B, l), ga, a->r1,
                         P(e, W, ENC_LN2_W, l), a->ln2_mu, a->ln2_rs, N, d);
      dr1 = dh; /* dh started as d(r2), the residual path into r1 */
    } else {
      linear_bwd(e, dh, P(e, G, ENC_FC1_W, l), P(e, G, ENC_FC1_B, l), gw2, h,
                      P(e, W, ENC_FC1_W, l), N, d, f);
      /* h = LN1(r1) */
      dzero(e, ga, Nd * sizeof(float));
      KERN(e, layernorm_backward, ga, P(e, G, ENC_LN1_W, l), P(e, G, ENC_LN1_B, l), dh, a->r1,
                         P(e, W, ENC_LN1_W, l), a->ln1_mu, a->ln1_rs, N, d);
      dr1 = ga;
    }
    /* r1 = x + drop(o): dx = dr1 (+ attention path) */
    float *dx = gres;
    if (dx != dr1) dcopy(e, dx, dr1, Nd * sizeof(float));
    dzero(e, e->tmp, Nd * sizeof(float));
    drop_bwd(e, e->tmp, dr1, Td, p, stream_of(call, 2 + 3 * l));
    float *datty = dr1 == ga ? gb : ga; /* whichever of ga/gb is free now */
    dzero(e, datty, Nd * sizeof(float));
    linear_bwd(e, datty, P(e, G, ENC_ATTO_W, l), P(e, G, ENC_ATTO_B, l), e->tmp, a->atty,
                    P(e, W, ENC_ATTO_W, l), N, d, d);
    dzero(e, gw1, (size_t)N * 3 * d * sizeof(float));
    for (int i = 0; i < e->nrun; i++) {
      const rowmap_run *r = &e->run[i];
      KERN(e, attention_backward, gw1 + r->at * 3 * Td, e->att_scratch, datty + r->at * Td,
           a->qkv + r->at * 3 * Td, a->att + r->at * Ta, r->n, T, d, NH, p, seed, stream_of(call, 1 + 3 * l),
           rowmap_offset(r, Ta, Tam));
    }
    if (c->pre_ln) {
      dzero(e, datty, Nd * sizeof(float));
      linear_bwd(e, datty, P(e, G, ENC_QKV_W, l), P(e, G, ENC_QKV_B, l), gw1, a->ln1,
                      P(e, W, ENC_QKV_W, l), N, d, 3 * d);
      KERN(e, layernorm_backward, dx, P(e, G, ENC_LN1_W, l), P(e, G, ENC_LN1_B, l), datty, x,
                         P(e, W, ENC_LN1_W, l), a->ln1_mu, a->ln1_rs, N, d);
    } else {
      linear_bwd(e, dx, P(e, G, ENC_QKV_W, l), P(e, G, ENC_QKV_B, l), gw1, x,
                      P(e, W, ENC_QKV_W, l), N, d, 3 * d);
    }
    static const int layer[] = {ENC_LN1_W, ENC_LN1_B, ENC_QKV_W, ENC_QKV_B, ENC_ATTO_W, ENC_ATTO_B,
                                ENC_LN2_W, ENC_LN2_B, ENC_FC1_W, ENC_FC1_B, ENC_FC2_W, ENC_FC2_B};
    if ((rc = announce(e, layer, 12, l, err))) return rc;
  }

  /* embeddings: resid0 = drop(src), src = emb_sum or LN(emb_sum) */
  dzero(e, ga, Nd * sizeof(float));
  drop_bwd(e, ga, gres, Td, p, stream_of(call, 0));
  float *dsum = ga;
  if (!c->pre_ln) {
    dzero(e, gb, Nd * sizeof(float));
    KERN(e, layernorm_backward, gb, G + e->t[ENC_EMB_LN_W].offset, G + e->t[ENC_EMB_LN_B].offset, ga,
                       e->emb_sum, W + e->t[ENC_EMB_LN_W].offset, e->emb_mu, e->emb_rs, N, d);
    dsum = gb;
  }
  KERN(e, embed_backward, G + e->t[ENC_WTE].offset, G + e->t[ENC_WPE].offset, dsum, e->ids, B, T, d);
  static const int emb[] = {ENC_WTE, ENC_WPE, ENC_EMB_LN_W, ENC_EMB_LN_B};
  if ((rc = announce(e, emb, 4, 0, err))) return rc;
  return devmem_check(e->backend, err);
}
