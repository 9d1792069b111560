/* loss.h — contrastive losses on a batch of embeddings.
 *
 * Layout of the embeddings of one step (rows of width D, as the encoder
 * produced them, not normalized):
 *   rows [0, B)            queries q_i
 *   rows [B, 2B)           positives p_i (the key that matches q_i)
 *   rows [2B, 2B + n_neg)  extra (hard) negatives, keys for every query
 * InfoNCE on cosine similarity: rows are L2-normalized, logits are
 * cos/temperature, the target of q_i is p_i; the other positives are the
 * in-batch negatives. Symmetric adds the positives->queries direction (hard
 * negatives stay on the query side, as sentence-transformers'
 * MultipleNegativesSymmetricRankingLoss) and averages the two.
 *
 * A loss object owns scratch buffers sized to the largest batch seen; it
 * allocates only when a batch grows. Free with loss_destroy(&l).
 */
#ifndef FOIL_MODEL_LOSS_H
#define FOIL_MODEL_LOSS_H

#include "common/err.h"

typedef struct loss loss;

int loss_new(loss **out, foil_err *err);
void loss_destroy(loss **l);

typedef struct {
  float value;    /* the loss */
  float accuracy; /* fraction of queries whose top key is their positive */
  float dscale;   /* d(loss)/d(1/temperature), for a learnable temperature */
} loss_result;

/* Computes the InfoNCE loss of emb and WRITES demb (same layout) with
 * d(loss)/d(emb). Cost: 2·B·(B+n_neg)·D flops (×2 if symmetric) plus
 * O(rows·D). Errors: FOIL_EINVAL on a bad size, FOIL_ENOMEM. */
int loss_infonce(loss *l, loss_result *res, float *demb, const float *emb,
                 int B, int n_neg, int D, float temperature, int symmetric,
                 foil_err *err);

#endif
