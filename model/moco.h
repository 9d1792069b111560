/* moco.h — MoCo's pieces (He et al. 2020): a momentum key encoder and a
 * queue of past keys used as extra negatives.
 *
 * The key encoder is an encoder of the same config whose parameters follow
 * the query encoder by EMA (moco_momentum_update); it gets no gradient. The
 * queue holds K unit-norm keys of width D in a ring: each step enqueues the
 * keys of the whole global batch (every rank enqueues the same all-gathered
 * keys, so the queue is replicated identically), overwriting the oldest.
 * Any K works: a batch that wraps the end continues at row 0, and a batch
 * larger than K keeps its last K keys. Rows beyond `fill` are not yet keys;
 * moco_queue_keys hands the loss only the filled rows.
 * Ownership: moco_queue_new allocates K·D floats; moco_queue_destroy(&q).
 * On a CUDA backend (moco_queue_new_on with DEVMEM_CUDA, encoder.h) the keys
 * live on the device: push takes device rows, moco_queue_keys returns a
 * device pointer, and the queue never crosses to the host.
 */
#ifndef FOIL_MODEL_MOCO_H
#define FOIL_MODEL_MOCO_H

#include <stdint.h>

#include "common/err.h"
#include "model/encoder.h"

typedef struct {
  float *keys;  /* [K, D] */
  int64_t K, D;
  int64_t ptr;  /* next row to write */
  int64_t fill; /* rows holding keys, <= K */
  int backend;  /* DEVMEM_CUDA: keys are device memory */
} moco_queue;

int moco_queue_new(moco_queue **out, int64_t K, int64_t D, foil_err *err);
/* backend DEVMEM_CPU or DEVMEM_CUDA (FOIL_EUNAVAIL without CUDA; cuda_init first) */
int moco_queue_new_on(moco_queue **out, int64_t K, int64_t D, int backend, foil_err *err);
void moco_queue_destroy(moco_queue **q);
/* Appends n keys [n, D] (ring order). O(n·D). */
void moco_queue_push(moco_queue *q, const float *keys, int64_t n);
/* The filled rows, for loss_opts.queue / queue_n. Before the queue has
 * wrapped they are rows [0, fill); after, all K rows. */
const float *moco_queue_keys(const moco_queue *q, int *n);

/* key = m·key + (1-m)·query over all parameters (same config, same
 * backend: on CUDA encoders the device's ema_update twin). */
void moco_momentum_update(encoder *key, const encoder *query, float m);

#endif
