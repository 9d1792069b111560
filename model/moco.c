/* moco.c — momentum encoder update and the negatives queue (see moco.h). */
#include "model/moco.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/devmem.h"

int moco_queue_new(moco_queue **out, int64_t K, int64_t D, foil_err *err) {
  return moco_queue_new_on(out, K, D, DEVMEM_CPU, err);
}

int moco_queue_new_on(moco_queue **out, int64_t K, int64_t D, int backend, foil_err *err) {
  *out = NULL;
  if (K < 1 || D < 1)
    return foil_err_set(err, FOIL_EINVAL, "a MoCo queue needs K >= 1 and D >= 1 (got %lld, %lld)",
                        (long long)K, (long long)D);
  int rc = devmem_ready(backend, "queue", err);
  if (rc) return rc;
  moco_queue *q = calloc(1, sizeof *q);
  if (q) {
    q->backend = backend;
    q->keys = devmem_alloc(backend, (size_t)(K * D) * sizeof(float));
  }
  if (!q || !q->keys) {
    free(q);
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for a queue of %lld keys",
                        devmem_where(backend), (long long)K);
  }
  q->K = K;
  q->D = D;
  *out = q;
  return FOIL_OK;
}

void moco_queue_destroy(moco_queue **qp) {
  if (!qp || !*qp) return;
  devmem_free((*qp)->backend, (*qp)->keys);
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
    devmem_copy(q->backend, q->keys + q->ptr * q->D, keys, (size_t)(take * q->D) * sizeof(float));
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
  /* both on the same backend (moco.h) */
  DEVMEM_KERN(encoder_backend(key), ema_update, encoder_params(key), encoder_params((encoder *)query),
              encoder_num_params(key), m);
}
