/* ready_log.h — for the tests of encoder_on_grads_ready and
 * decoder_on_grads_ready: a callback that records each announced run of
 * gradients (offset, length, a snapshot of its values), and the check that
 * every parameter was announced exactly once and already final (each
 * snapshot equals the gradient after the whole backward, bit for bit). */
#ifndef FOIL_TESTS_UNIT_READY_LOG_H
#define FOIL_TESTS_UNIT_READY_LOG_H

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

enum { READY_LOG_MAX = 256 };

typedef struct {
  const float *base; /* the model's gradient buffer */
  size_t off[READY_LOG_MAX], n[READY_LOG_MAX];
  float *snap[READY_LOG_MAX];
  int calls, fail_at; /* fail_at: the call that returns an error (-1: none) */
} ready_log;

static int log_ready(void *ctx, float *g, size_t n, foil_err *err) {
  ready_log *r = ctx;
  if (r->calls == r->fail_at) return foil_err_set(err, FOIL_EABORTED, "stop at call %d", r->calls);
  if (r->calls < READY_LOG_MAX) {
    r->off[r->calls] = (size_t)(g - r->base), r->n[r->calls] = n;
    r->snap[r->calls] = malloc(n * sizeof(float));
    memcpy(r->snap[r->calls], g, n * sizeof(float));
  }
  r->calls++;
  return FOIL_OK;
}

/* Frees the snapshots; *once: every one of the np parameters announced
 * exactly once; *final: every snapshot equals grads now. */
static void ready_log_check(ready_log *r, const float *grads, size_t np, int *once, int *final) {
  unsigned char *seen = calloc(np, 1);
  *once = seen != NULL, *final = 1;
  for (int c = 0; c < r->calls && c < READY_LOG_MAX; c++) {
    for (size_t k = 0; seen && k < r->n[c]; k++) *once &= seen[r->off[c] + k]++ == 0;
    *final &= memcmp(r->snap[c], grads + r->off[c], r->n[c] * sizeof(float)) == 0;
    free(r->snap[c]);
  }
  for (size_t k = 0; seen && k < np; k++) *once &= seen[k] == 1;
  free(seen);
}

#endif
