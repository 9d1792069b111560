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
 * Across ranks (comm != NULL, world W > 1): every rank holds its own B
 * queries, B positives and n_neg negatives. The normalized rows are
 * all-gathered, so each local query is scored against all W·B positives
 * and W·n_neg negatives (label rank·B + i); symmetric scores each local
 * positive against all W·B queries. The gradient w.r.t. the gathered rows
 * is reduce-scattered (summed) back to the rank that produced them. The
 * loss is the mean over this rank's queries; averaging parameter gradients
 * over ranks then gives exactly the gradient of the mean over all W·B
 * queries, i.e. W ranks × batch B equal 1 rank × batch W·B.
 *
 * A loss object owns scratch buffers sized to the largest batch seen; it
 * allocates only when a batch grows. Free with loss_destroy(&l).
 *
 * Backends (encoder.h): loss_new_on(.., DEVMEM_CUDA, ..) keeps its buffers on
 * the GPU and runs the cuda_ twins; then emb, demb and opts->queue are
 * DEVICE memory and the loss_comm callbacks get device buffers (NCCL, as
 * worker/run/comm.h does on GPU ranks). The result stays on the host.
 */
#ifndef FOIL_MODEL_LOSS_H
#define FOIL_MODEL_LOSS_H

#include <stddef.h>

#include "common/err.h"

typedef struct loss loss;

/* Collectives the loss needs, provided by the caller (model/ knows no MPI;
 * worker/run/comm.h binds these to MPI). Each returns 0 or a foil error. */
typedef struct {
  void *ctx;
  int rank, world;
  /* recv[world·n] = all ranks' send[n] in rank order */
  int (*allgather)(void *ctx, const float *send, size_t n, float *recv, foil_err *err);
  /* recv[n] = sum over ranks of send[rank·n .. rank·n+n) */
  int (*reduce_scatter_sum)(void *ctx, const float *send, size_t n, float *recv, foil_err *err);
  /* buf[n] = mean over ranks, in place */
  int (*allreduce_mean)(void *ctx, float *buf, size_t n, foil_err *err);
} loss_comm;

int loss_new(loss **out, foil_err *err);
/* backend DEVMEM_CPU or DEVMEM_CUDA (FOIL_EUNAVAIL without CUDA; cuda_init first) */
int loss_new_on(loss **out, int backend, foil_err *err);
void loss_destroy(loss **l);

typedef struct {
  float temperature; /* logits = cos/temperature (> 0) */
  int symmetric;     /* add positives -> queries and average */
  int decoupled;     /* DCL: the positive leaves the denominator */
  const float *queue; /* MoCo: queue_n extra negative keys [queue_n, D], unit
                       * rows, the same on every rank; they get no gradient */
  int queue_n;
} loss_opts;

typedef struct {
  float value;    /* the loss (mean over all ranks' queries) */
  float accuracy; /* fraction of queries whose top key is their positive (all ranks) */
  float dscale;   /* d(this rank's loss)/d(1/temperature), for a learnable temperature */
} loss_result;

/* Computes the InfoNCE loss of emb and WRITES demb (same layout) with
 * d(Σ over ranks r of rank r's loss)/d(this rank's emb): the other ranks'
 * queries score these rows too, and their gradients come back in the
 * reduce-scatter (one rank: d(loss)/d(emb)). Averaging the parameter
 * gradients over ranks then gives the gradient of the mean loss (above).
 * comm NULL means one rank. Every rank must use the same B and n_neg.
 * The queue joins the keys of the queries -> keys direction only. Cost: 2·B·(W·(B+n_neg)+queue_n)·D flops (+2·B·W·B·D if
 * symmetric)
 * plus O(W·rows·D) memory and traffic. Errors: FOIL_EINVAL on a bad size,
 * FOIL_ENOMEM, or what a collective returned. */
int loss_infonce(loss *l, loss_result *res, float *demb, const float *emb,
                 int B, int n_neg, int D, const loss_opts *opts,
                 const loss_comm *comm, foil_err *err);

#endif
