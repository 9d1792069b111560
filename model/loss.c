/* loss.c — InfoNCE over normalized embeddings (see loss.h). */
#include "model/loss.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

struct loss {
  size_t cap_rows, cap_d, cap_probs;
  float *unit, *norm, *dunit, *probs;
  int32_t *labels;
};

int loss_new(loss **out, foil_err *err) {
  *out = calloc(1, sizeof(loss));
  return *out ? FOIL_OK : foil_err_set(err, FOIL_ENOMEM, "out of memory for the loss");
}

void loss_destroy(loss **lp) {
  if (!lp || !*lp) return;
  loss *l = *lp;
  free(l->unit);
  free(l->norm);
  free(l->dunit);
  free(l->probs);
  free(l->labels);
  free(l);
  *lp = NULL;
}

static int reserve(loss *l, size_t rows, size_t D, size_t nprobs, foil_err *err) {
  if (rows <= l->cap_rows && D <= l->cap_d && nprobs <= l->cap_probs) return FOIL_OK;
  rows = rows > l->cap_rows ? rows : l->cap_rows;
  D = D > l->cap_d ? D : l->cap_d;
  nprobs = nprobs > l->cap_probs ? nprobs : l->cap_probs;
  free(l->unit);
  free(l->norm);
  free(l->dunit);
  free(l->probs);
  free(l->labels);
  l->unit = malloc(rows * D * sizeof(float));
  l->dunit = malloc(rows * D * sizeof(float));
  l->norm = malloc(rows * sizeof(float));
  l->probs = malloc(nprobs * sizeof(float));
  l->labels = malloc(rows * sizeof(int32_t));
  if (!l->unit || !l->dunit || !l->norm || !l->probs || !l->labels) {
    l->cap_rows = l->cap_d = l->cap_probs = 0;
    return foil_err_set(err, FOIL_ENOMEM, "out of memory for a loss over %zu rows", rows);
  }
  l->cap_rows = rows;
  l->cap_d = D;
  l->cap_probs = nprobs;
  return FOIL_OK;
}

int loss_infonce(loss *l, loss_result *res, float *demb, const float *emb,
                 int B, int n_neg, int D, float temperature, int symmetric,
                 foil_err *err) {
  if (B < 1 || n_neg < 0 || D < 1)
    return foil_err_set(err, FOIL_EINVAL, "InfoNCE needs B >= 1, n_neg >= 0, D >= 1 (got %d, %d, %d)",
                        B, n_neg, D);
  if (!(temperature > 0.0f))
    return foil_err_set(err, FOIL_EINVAL, "temperature must be > 0, got %g", (double)temperature);
  int rows = 2 * B + n_neg, nk = B + n_neg;
  int rc = reserve(l, (size_t)rows, (size_t)D, (size_t)B * nk, err);
  if (rc) return rc;
  float scale = 1.0f / temperature;
  float *q = l->unit, *k = l->unit + (size_t)B * D;
  float *dq = l->dunit, *dk = l->dunit + (size_t)B * D;

  l2norm_forward(l->unit, l->norm, emb, rows, D);
  memset(l->dunit, 0, (size_t)rows * D * sizeof(float));
  for (int i = 0; i < B; i++) l->labels[i] = i;

  float w = symmetric ? 0.5f : 1.0f, dscale = 0.0f;
  int right = 0;
  float lq = infonce_forward(l->probs, &right, q, B, k, nk, D, l->labels, scale);
  infonce_backward(dq, dk, &dscale, l->probs, q, B, k, nk, D, l->labels, scale, w);
  float value = w * lq;
  if (symmetric) {
    /* positives -> queries (the hard negatives are keys only) */
    float lp = infonce_forward(l->probs, NULL, k, B, q, B, D, l->labels, scale);
    infonce_backward(dk, dq, &dscale, l->probs, k, B, q, B, D, l->labels, scale, w);
    value += w * lp;
  }
  memset(demb, 0, (size_t)rows * D * sizeof(float));
  l2norm_backward(demb, l->dunit, l->unit, l->norm, rows, D);
  res->value = value;
  res->accuracy = (float)right / (float)B;
  res->dscale = dscale;
  return FOIL_OK;
}
