/* moco.c — momentum encoder update and the negatives queue (see moco.h). */
#include "model/moco.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#ifdef FOIL_HAVE_CUDA
#include "kernels/cuda/kernels_cuda.h"
#endif

int moco_queue_new(moco_queue **out, int64_t K, int64_t D, foil_err *err) {
  return moco_queue_new_on(out, K, D, ENC_CPU, err);
}

int moco_queue_new_on(moco_queue **out, int64_t K, int64_t D, int backend, foil_err *err) {
  *out = NULL;
  if (K < 1 || D < 1)
    return foil_err_set(err, FOIL_EINVAL, "a MoCo queue needs K >= 1 and D >= 1 (got %lld, %lld)",
                        (long long)K, (long long)D);
  if (backend != ENC_CPU && backend != ENC_CUDA)
    return foil_err_set(err, FOIL_EINVAL, "unknown queue backend %d", backend);
#ifdef FOIL_HAVE_CUDA
  if (backend == ENC_CUDA && cuda_device() < 0)
    return foil_err_set(err, FOIL_EPRECOND, "a CUDA queue needs the CUDA backend initialized (cuda_init)");
#else
  if (backend == ENC_CUDA)
    return foil_err_set(err, FOIL_EUNAVAIL, "this foil was built without CUDA (FOIL_CUDA=OFF or no nvcc)");
#endif
  moco_queue *q = calloc(1, sizeof *q);
  size_t bytes = (size_t)(K * D) * sizeof(float);
  if (q) {
    q->cuda = backend == ENC_CUDA;
#ifdef FOIL_HAVE_CUDA
    if (q->cuda) {
      void *p = NULL;
      if (!cuda_malloc(&p, bytes, NULL) && !cuda_memset0(p, bytes, NULL)) q->keys = p;
      else cuda_free(p);
    } else
#endif
      q->keys = calloc(1, bytes);
  }
  if (!q || !q->keys) {
    free(q);
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for a queue of %lld keys",
                        backend == ENC_CUDA ? "device" : "host", (long long)K);
  }
  q->K = K;
  q->D = D;
  *out = q;
  return FOIL_OK;
}

void moco_queue_destroy(moco_queue **qp) {
  if (!qp || !*qp) return;
#ifdef FOIL_HAVE_CUDA
  if ((*qp)->cuda) cuda_free((*qp)->keys);
  else
#endif
    free((*qp)->keys);
  free(*qp);
  *qp = NULL;
}

void moco_queue_push(moco_queue *q, const float *keys, int64_t n) {
  if (n > q->K) { /* only the newest K survive; keep their ring position */
    int64_t skip = n - q->K;
    q->ptr = (q->ptr + skip) % q->K;
    keys += skip * q->D;
    n = q->K;
  }
  while (n > 0) {
    int64_t take = q->K - q->ptr < n ? q->K - q->ptr : n;
    float *dst = q->keys + q->ptr * q->D;
    size_t bytes = (size_t)(take * q->D) * sizeof(float);
#ifdef FOIL_HAVE_CUDA
    if (q->cuda) cuda_copy(dst, keys, bytes, NULL); /* on the stream, in order */
    else
#endif
      memcpy(dst, keys, bytes);
    q->ptr = (q->ptr + take) % q->K;
    keys += take * q->D;
    n -= take;
    q->fill = q->fill + take < q->K ? q->fill + take : q->K;
  }
}

const float *moco_queue_keys(const moco_queue *q, int *n) {
  *n = (int)q->fill;
  return q->keys;
}

void moco_momentum_update(encoder *key, const encoder *query, float m) {
#ifdef FOIL_HAVE_CUDA
  if (encoder_backend(key) == ENC_CUDA) { /* both on the device (moco.h) */
    cuda_ema_update(encoder_params(key), encoder_params((encoder *)query), encoder_num_params(key), m);
    return;
  }
#endif
  ema_update(encoder_params(key), encoder_params((encoder *)query), encoder_num_params(key), m);
}
