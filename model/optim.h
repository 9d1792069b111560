/* optim.h — AdamW over a flat parameter buffer, with global-norm clipping.
 *
 * Matches torch.optim.AdamW (decoupled weight decay, bias correction) with
 * torch.nn.utils.clip_grad_norm_ applied first. Weight decay applies to the
 * tensors whose `decay` flag is set (matrices and embeddings; not biases or
 * LayerNorm), as BERT-style training does. Moments m and v have the
 * parameters' layout and are part of a checkpoint.
 * Ownership: optim_new allocates 2×n floats; free with optim_destroy(&o).
 *
 * Backends: optim_new_on(.., DEVMEM_CUDA, ..) keeps m and v in device memory
 * (encoder.h's backends) and steps DEVICE parameter and gradient buffers
 * with the cuda_ twins of sumsq, scale_inplace and adamw_update; the
 * norm it returns is on the host (one synchronization per step).
 */
#ifndef FOIL_MODEL_OPTIM_H
#define FOIL_MODEL_OPTIM_H

#include <stddef.h>

#include "common/err.h"
#include "model/encoder.h"

typedef struct {
  float lr;            /* overridden per step by optim_step's lr argument */
  float beta1, beta2;  /* 0.9, 0.999 */
  float eps;           /* 1e-8 */
  float weight_decay;  /* 0.01 */
  float max_grad_norm; /* 0: no clipping */
} optim_config;

typedef struct {
  size_t n;
  float *m, *v; /* on the backend (device memory on DEVMEM_CUDA) */
  int backend;
  int t; /* steps taken */
  optim_config cfg;
} optim;

void optim_config_default(optim_config *cfg);
int optim_new(optim **out, size_t n, const optim_config *cfg, foil_err *err);
/* backend: DEVMEM_CPU or DEVMEM_CUDA (FOIL_EUNAVAIL without CUDA; cuda_init first) */
int optim_new_on(optim **out, size_t n, const optim_config *cfg, int backend, foil_err *err);
void optim_destroy(optim **o);

/* dst's moments and step count := src's (same n), across backends: a GPU
 * rank's host copy before a checkpoint, and back after a resume. FOIL_EINVAL
 * when the sizes differ. Cost: 2·n floats copied. */
int optim_copy_state(optim *dst, const optim *src, foil_err *err);

/* One step at learning rate lr over the encoder's parameters and gradients:
 * clip (if configured), then AdamW per tensor. Returns the gradient norm
 * before clipping. Cost: 3 passes over the parameters. */
float optim_step(optim *o, encoder *enc, float lr);

/* The same over any model laid out as views into one flat buffer (the
 * decoder's decoder_tensors, DEC_NTENSORS of them): params and grads of
 * o->n floats, nt views (size 0 ones skipped). optim_step is this on the
 * encoder's buffers. */
float optim_step_tensors(optim *o, float *params, float *grads, const encoder_tensor *t, int nt,
                         float lr);

#endif
