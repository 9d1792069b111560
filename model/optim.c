/* optim.c — AdamW with global-norm clipping (see optim.h). */
#include "model/optim.h"

#include <math.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#include "model/devmem.h"

#define KERN(o, fn, ...) DEVMEM_KERN((o)->backend, fn, __VA_ARGS__)

void optim_config_default(optim_config *c) {
  c->lr = 1e-3f;
  c->beta1 = 0.9f;
  c->beta2 = 0.999f;
  c->eps = 1e-8f;
  c->weight_decay = 0.01f;
  c->max_grad_norm = 0.0f;
}

int optim_new(optim **out, size_t n, const optim_config *cfg, foil_err *err) {
  return optim_new_on(out, n, cfg, DEVMEM_CPU, err);
}

int optim_new_on(optim **out, size_t n, const optim_config *cfg, int backend, foil_err *err) {
  *out = NULL;
  int rc = devmem_ready(backend, "optimizer", err);
  if (rc) return rc;
  optim *o = calloc(1, sizeof *o);
  if (o) {
    o->backend = backend;
    o->m = devmem_alloc_whole(backend, n * sizeof(float));
    o->v = devmem_alloc_whole(backend, n * sizeof(float));
  }
  if (!o || !o->m || !o->v) {
    optim_destroy(&o);
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for optimizer state of %zu floats",
                        devmem_where(backend), 2 * n);
  }
  o->n = n;
  o->cfg = *cfg;
  *out = o;
  return FOIL_OK;
}

void optim_destroy(optim **op) {
  if (!op || !*op) return;
  devmem_free((*op)->backend, (*op)->m);
  devmem_free((*op)->backend, (*op)->v);
  free(*op);
  *op = NULL;
}

float optim_step(optim *o, encoder *enc, float lr) {
  return optim_step_tensors(o, encoder_params(enc), encoder_grads(enc), encoder_tensors(enc), ENC_NTENSORS,
                            lr);
}

int optim_copy_state(optim *dst, const optim *src, foil_err *err) {
  if (dst->n != src->n)
    return foil_err_set(err, FOIL_EINVAL, "optimizer state of %zu floats into one of %zu", src->n, dst->n);
  const size_t bytes = src->n * sizeof(float);
  int rc = devmem_transfer(dst->backend, dst->m, src->backend, src->m, bytes, err);
  if (!rc) rc = devmem_transfer(dst->backend, dst->v, src->backend, src->v, bytes, err);
  if (!rc) dst->t = src->t;
  return rc;
}

float optim_step_tensors(optim *o, float *p, float *g, const encoder_tensor *t, int nt, float lr) {
  float norm = (float)sqrt(KERN(o, sumsq, g, o->n));
  if (o->cfg.max_grad_norm > 0.0f) {
    /* as clip_grad_norm_: multiply by min(1, max/(norm + 1e-6)) */
    float coef = o->cfg.max_grad_norm / (norm + 1e-6f);
    if (coef < 1.0f) KERN(o, scale_inplace, g, o->n, coef);
  }
  o->t++;
  for (int i = 0; i < nt; i++) {
    if (!t[i].size) continue;
    size_t off = t[i].offset;
    KERN(o, adamw_update, p + off, g + off, o->m + off, o->v + off, t[i].size, lr, o->cfg.beta1,
                 o->cfg.beta2, o->cfg.eps, t[i].decay ? o->cfg.weight_decay : 0.0f, o->t);
  }
  return norm;
}
