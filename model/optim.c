/* optim.c — AdamW with global-norm clipping (see optim.h). */
#include "model/optim.h"

#include <math.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#ifdef FOIL_HAVE_CUDA
#include "kernels/cuda/kernels_cuda.h"
#define KERN(o, fn, ...) ((o)->cuda ? cuda_##fn(__VA_ARGS__) : fn(__VA_ARGS__))
#else
#define KERN(o, fn, ...) fn(__VA_ARGS__)
#endif

void optim_config_default(optim_config *c) {
  c->lr = 1e-3f;
  c->beta1 = 0.9f;
  c->beta2 = 0.999f;
  c->eps = 1e-8f;
  c->weight_decay = 0.01f;
  c->max_grad_norm = 0.0f;
}

int optim_new(optim **out, size_t n, const optim_config *cfg, foil_err *err) {
  return optim_new_on(out, n, cfg, ENC_CPU, err);
}

/* n zeroed floats on the backend, NULL when out of memory */
static float *state_alloc(int cuda, size_t n) {
#ifdef FOIL_HAVE_CUDA
  if (cuda) {
    void *p = NULL;
    if (cuda_malloc(&p, n * sizeof(float), NULL) || cuda_memset0(p, n * sizeof(float), NULL)) {
      cuda_free(p);
      return NULL;
    }
    return p;
  }
#endif
  (void)cuda;
  return calloc(n ? n : 1, sizeof(float));
}
static void state_free(int cuda, float *p) {
#ifdef FOIL_HAVE_CUDA
  if (cuda) {
    cuda_free(p);
    return;
  }
#endif
  (void)cuda;
  free(p);
}

int optim_new_on(optim **out, size_t n, const optim_config *cfg, int backend, foil_err *err) {
  *out = NULL;
#ifdef FOIL_HAVE_CUDA
  if (backend == ENC_CUDA && cuda_device() < 0)
    return foil_err_set(err, FOIL_EPRECOND, "a CUDA optimizer needs the CUDA backend initialized (cuda_init)");
#else
  if (backend == ENC_CUDA)
    return foil_err_set(err, FOIL_EUNAVAIL, "this foil was built without CUDA (FOIL_CUDA=OFF or no nvcc)");
#endif
  if (backend != ENC_CPU && backend != ENC_CUDA)
    return foil_err_set(err, FOIL_EINVAL, "unknown optimizer backend %d", backend);
  optim *o = calloc(1, sizeof *o);
  if (o) {
    o->cuda = backend == ENC_CUDA;
    o->m = state_alloc(o->cuda, n);
    o->v = state_alloc(o->cuda, n);
  }
  if (!o || !o->m || !o->v) {
    optim_destroy(&o);
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for optimizer state of %zu floats",
                        backend == ENC_CUDA ? "device" : "host", 2 * n);
  }
  o->n = n;
  o->cfg = *cfg;
  *out = o;
  return FOIL_OK;
}

void optim_destroy(optim **op) {
  if (!op || !*op) return;
  state_free((*op)->cuda, (*op)->m);
  state_free((*op)->cuda, (*op)->v);
  free(*op);
  *op = NULL;
}

float optim_step(optim *o, encoder *enc, float lr) {
  return optim_step_tensors(o, encoder_params(enc), encoder_grads(enc), encoder_tensors(enc), ENC_NTENSORS,
                            lr);
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
