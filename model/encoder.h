/* encoder.h — a config-driven transformer text encoder on flat buffers.
 *
 * Architecture (per layer, BERT naming):
 *   post-LN (BERT):  x = LN1(x + drop(Wo·MHA(Wqkv·x)));  x = LN2(x + drop(W2·gelu(W1·x)))
 *                    with a LayerNorm on the embeddings (emb_ln) before layer 0.
 *   pre-LN:          x = x + drop(Wo·MHA(Wqkv·LN1(x)));  x = x + drop(W2·gelu(W1·LN2(x)))
 *                    with a final LayerNorm (lnf) after the last layer.
 * Embeddings: token + learned position, then dropout. Attention probabilities
 * are dropped out too. Pooling: mean over real tokens, or the first token;
 * then an optional projection head (Linear d_model -> proj_dim).
 *
 * Memory: the parameters live in ONE contiguous float buffer (enc->params),
 * gradients in another of the same layout (enc->grads); named views point
 * into them (see encoder_tensors). Tensors of the same kind are stacked over
 * layers, as in llm.c: e.g. "qkv_w" is [L, 3d, d]. Activations are
 * allocated on the first forward of a (B,T) shape and reused while shapes do
 * not grow, so a training step allocates nothing.
 *
 * Backends: an encoder lives on the CPU (encoder_new) or, in a build with
 * CUDA, on the GPU this process's CUDA backend drives (encoder_new_on with
 * DEVMEM_CUDA, after cuda_init of kernels/cuda/kernels_cuda.h). A CUDA
 * encoder's parameters, gradients and activations are device memory:
 * encoder_params/encoder_grads return DEVICE pointers, forward returns
 * device embeddings and backward takes device gradients; ids and mask stay
 * host arrays (copied over per call; a [B,T] upload). The same calls run
 * in the same order on the cuda_ twins, so both backends agree to fp32
 * rounding and draw the same dropout masks (tests/gpu/test_gpu_encoder.c).
 * encoder_set_params / encoder_get_params move the parameters between a
 * host buffer and either backend (checkpoints and model files are written
 * from host copies).
 *
 * Ownership: encoder_new returns an object the caller frees with
 * encoder_destroy(&enc). Pointers returned by forward stay valid until the
 * next forward.
 */
#ifndef FOIL_MODEL_ENCODER_H
#define FOIL_MODEL_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/rowmap.h"
#include "model/devmem.h" /* backends: DEVMEM_CPU, DEVMEM_CUDA */

typedef struct {
  int n_layers;      /* L */
  int d_model;       /* d */
  int n_heads;       /* d % n_heads == 0 */
  int d_ff;
  int vocab;
  int max_len;       /* positions */
  int proj_dim;      /* 0: no projection head */
  int pre_ln;        /* 0: post-LN as BERT, 1: pre-LN */
  int pooling;       /* POOL_MEAN or POOL_FIRST (kernels.h) */
  float dropout;     /* hidden, embedding and attention-probability dropout */
  float ln_eps;      /* LayerNorm epsilon (1e-5 as torch; BERT uses 1e-12) */
} encoder_config;

/* The tensors, in buffer order. Views of the same kind are stacked over
 * layers. */
enum {
  ENC_WTE, ENC_WPE, ENC_EMB_LN_W, ENC_EMB_LN_B,
  ENC_LN1_W, ENC_LN1_B, ENC_QKV_W, ENC_QKV_B, ENC_ATTO_W, ENC_ATTO_B,
  ENC_LN2_W, ENC_LN2_B, ENC_FC1_W, ENC_FC1_B, ENC_FC2_W, ENC_FC2_B,
  ENC_LNF_W, ENC_LNF_B, ENC_PROJ_W, ENC_PROJ_B,
  ENC_NTENSORS
};

typedef struct {
  const char *name;  /* e.g. "qkv_w" */
  int ndim;
  int shape[3];
  size_t offset;     /* in floats from the buffer start */
  size_t size;       /* in floats; 0 when absent in this config */
  int decay;         /* 1 when weight decay applies (matrices), 0 otherwise */
} encoder_tensor;

typedef struct encoder encoder;

/* Fills a config with foil's defaults (post-LN, mean pooling, dropout 0.1,
 * eps 1e-5); the caller sets the sizes. */
void encoder_config_default(encoder_config *cfg);
/* Checks sizes and ranges; on error fills err and returns FOIL_EINVAL. */
int encoder_config_check(const encoder_config *cfg, foil_err *err);

/* Allocates parameters and gradients (zeroed) on the CPU. */
int encoder_new(encoder **out, const encoder_config *cfg, foil_err *err);
/* The same on a backend. DEVMEM_CUDA: FOIL_EUNAVAIL in a build without CUDA,
 * FOIL_EPRECOND before cuda_init, FOIL_ENOMEM when the device is full. */
int encoder_new_on(encoder **out, const encoder_config *cfg, int backend, foil_err *err);
/* A new encoder on backend with src's config and parameters (fp32
 * precision, zero gradients, no activations), from either backend. */
int encoder_clone_on(encoder **out, const encoder *src, int backend, foil_err *err);
void encoder_destroy(encoder **enc);
int encoder_backend(const encoder *enc);
/* Copies all parameters from / to host memory [encoder_num_params]
 * (a memcpy on the CPU, an upload/download on CUDA); get_grads likewise. */
int encoder_set_params(encoder *enc, const float *host, foil_err *err);
int encoder_get_params(const encoder *enc, float *host, foil_err *err);
int encoder_get_grads(const encoder *enc, float *host, foil_err *err);
/* n floats of the encoder's memory (forward's embeddings, say) into host
 * memory: a memcpy on the CPU, a download (synchronizing) on CUDA. */
int encoder_copy_out(const encoder *enc, float *host, const float *src, size_t n, foil_err *err);

const encoder_config *encoder_cfg(const encoder *enc);
size_t encoder_num_params(const encoder *enc);
float *encoder_params(encoder *enc);
float *encoder_grads(encoder *enc);
/* The ENC_NTENSORS views (absent ones have size 0). */
const encoder_tensor *encoder_tensors(const encoder *enc);
/* Output width: proj_dim if set, else d_model. */
int encoder_out_dim(const encoder *enc);

/* Initializes parameters from seed as BERT does: N(0, 0.02) for matrices and
 * embeddings, zero biases, LayerNorm weight 1 / bias 0. Deterministic; the
 * same values on both backends (a CUDA encoder's are drawn on the host and
 * uploaded: a failure there is returned by the next forward). */
void encoder_init(encoder *enc, uint64_t seed);

/* Encodes B sequences of length T (ids [B,T], mask [B,T] as kernels.h).
 * train != 0 applies dropout with masks drawn from (seed, call); a later
 * backward replays them. Returns the [B, out_dim] embeddings (not
 * normalized), owned by enc. Cost ~ 2·(params excluding embeddings)·B·T
 * flops plus attention. Errors: FOIL_EINVAL on T > max_len or bad ids,
 * FOIL_ENOMEM. */
int encoder_forward(encoder *enc, const float **emb, const int32_t *ids,
                    const uint8_t *mask, int B, int T, int train,
                    uint64_t seed, uint64_t call, foil_err *err);

/* The same for B sequences that are rows row0 .. row0+B-1 of this rank's
 * batch of length T: dropout draws the masks the whole batch would, so a
 * batch encoded slice by slice (GradCache) equals the one-shot batch.
 * encoder_forward is row0 = 0. Rows past the end of the row map
 * (encoder_set_rows): FOIL_EINVAL. */
int encoder_forward_rows(encoder *enc, const float **emb, const int32_t *ids,
                         const uint8_t *mask, int B, int T, int train,
                         uint64_t seed, uint64_t call, uint64_t row0, foil_err *err);

/* Where this rank's rows sit in the global batch (model/rowmap.h), for the
 * dropout masks of the training forwards that follow: each row draws the
 * masks of its global row, so W ranks x B rows train exactly as 1 rank x
 * W·B rows when every row is padded to max_len (a row's masks depend on
 * its batch's padded length T too), and no two ranks share mask elements
 * whatever their T (rowmap.h). NULL, and a new encoder: the identity map
 * of one process. FOIL_EINVAL on a bad map. */
int encoder_set_rows(encoder *enc, const rowmap *m, foil_err *err);

/* Backward of the last forward: demb [B, out_dim] is d(loss)/d(embeddings).
 * Gradients are ACCUMULATED into encoder_grads (zero them with
 * encoder_zero_grads). Cost ~ 2x the forward. */
int encoder_backward(encoder *enc, const float *demb, foil_err *err);
void encoder_zero_grads(encoder *enc);

/* Gradients ready early, for an all-reduce overlapped with the rest of the
 * backward (GPU ranks' gradient buckets): while encoder_backward runs, fn
 * gets each run of gradients as soon as no later part of that backward
 * writes it — the projection head and final LayerNorm first, then every
 * layer's slices of the stacked tensors (last layer first), then the
 * embeddings and their LayerNorm; every parameter exactly once per
 * backward (g points into encoder_grads; on CUDA after the kernels that
 * write it were queued). A nonzero return stops the backward with it. fn
 * NULL: none. With GradCache only the last slice's backward makes the
 * gradients final: set fn for that one. */
typedef int (*encoder_grads_ready)(void *ctx, float *g, size_t n, foil_err *err);
void encoder_on_grads_ready(encoder *enc, encoder_grads_ready fn, void *ctx);

/* Precision of the GEMMs. ENC_FP32 (default): fp32 operands. ENC_BF16
 * (mixed precision): every linear layer multiplies bf16-rounded inputs by
 * a bf16 working copy of its weight matrix with fp32 accumulation (tensor
 * cores on CUDA; kernels/cpu/bf16.c's reference loops on the CPU, no
 * faster than fp32 there); parameters, gradients, optimizer state,
 * LayerNorm, softmax and the loss stay fp32 (the working copy is
 * refreshed from the fp32 masters by every forward, so an optimizer step
 * needs no hook). Agrees with fp32 to bf16's 2^-8 relative per operand.
 * Allocates the copy (2 bytes per parameter); activations are reallocated
 * at the next forward. */
enum { ENC_FP32 = 0, ENC_BF16 = 1 };
int encoder_set_precision(encoder *enc, int precision, foil_err *err);
int encoder_precision(const encoder *enc);

/* Model FLOPs of one forward over B×T tokens (matmuls and attention, the
 * usual 2·m·n·k count); a training step is 3× this. */
double encoder_forward_flops(const encoder_config *cfg, int B, int T);

#endif
