/* loss.c — InfoNCE over normalized embeddings, on one rank or many
 * (see loss.h). One source for both backends, as encoder.c: KERN picks the
 * kernels.h function or its cuda_ twin, buffers live on the loss's backend. */
#include "model/loss.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/devmem.h"

#define KERN(l, fn, ...) DEVMEM_KERN((l)->backend, fn, __VA_ARGS__)

struct loss {
  int backend;                 /* DEVMEM_CUDA: every buffer below is device memory */
  size_t cap_local, cap_global, cap_probs, cap_labels;
  float *unit, *norm, *dunit;  /* local rows: [rows, D], [rows], [rows, D] */
  float *all, *dall, *dsum;    /* gathered rows [W·rows, D], their grads, reduce-scatter out */
  float *qall, *kall, *dqall, *dkall; /* [W·B, D] queries, [W·(B+n_neg), D] keys, grads */
  float *probs;
  int32_t *labels;
  int32_t *labels_host; /* the labels before their upload (CUDA) */
  float *stats;         /* [2] loss and accuracy, for the all-reduce (CUDA) */
};

int loss_new(loss **out, foil_err *err) { return loss_new_on(out, DEVMEM_CPU, err); }

int loss_new_on(loss **out, int backend, foil_err *err) {
  *out = NULL;
  int rc = devmem_ready(backend, "loss", err);
  if (rc) return rc;
  loss *l = calloc(1, sizeof(loss));
  if (!l) return foil_err_set(err, FOIL_ENOMEM, "out of memory for the loss");
  l->backend = backend;
  *out = l;
  return FOIL_OK;
}

static void *dalloc(const loss *l, size_t bytes) { return devmem_alloc(l->backend, bytes); }
static void dfree(const loss *l, void *p) { devmem_free(l->backend, p); }
static void dzero(const loss *l, void *p, size_t bytes) { devmem_zero(l->backend, p, bytes); }
static void dcopy(const loss *l, void *dst, const void *src, size_t bytes) { devmem_copy(l->backend, dst, src, bytes); }

static void free_buffers(loss *l) {
  float **bufs[] = {&l->unit, &l->norm, &l->dunit, &l->all, &l->dall, &l->dsum,
                    &l->qall, &l->kall, &l->dqall, &l->dkall, &l->probs, &l->stats};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
    dfree(l, *bufs[i]);
    *bufs[i] = NULL;
  }
  dfree(l, l->labels);
  l->labels = NULL;
  free(l->labels_host);
  l->labels_host = NULL;
  l->cap_local = l->cap_global = l->cap_probs = l->cap_labels = 0;
}

void loss_destroy(loss **lp) {
  if (!lp || !*lp) return;
  free_buffers(*lp);
  free(*lp);
  *lp = NULL;
}

/* Sizes in floats: local = rows·D, global = W·rows·D, probs = B·max(nk),
 * labels = B. Grows only. */
static int reserve(loss *l, size_t local, size_t global, size_t nprobs, size_t nlab,
                   foil_err *err) {
  if (local <= l->cap_local && global <= l->cap_global && nprobs <= l->cap_probs &&
      nlab <= l->cap_labels)
    return FOIL_OK;
  if (local < l->cap_local) local = l->cap_local;
  if (global < l->cap_global) global = l->cap_global;
  if (nprobs < l->cap_probs) nprobs = l->cap_probs;
  if (nlab < l->cap_labels) nlab = l->cap_labels;
  free_buffers(l);
  l->unit = dalloc(l, local * sizeof(float));
  l->dunit = dalloc(l, local * sizeof(float));
  l->norm = dalloc(l, local * sizeof(float)); /* >= rows */
  l->all = dalloc(l, global * sizeof(float));
  l->dall = dalloc(l, global * sizeof(float));
  l->dsum = dalloc(l, local * sizeof(float));
  l->qall = dalloc(l, global * sizeof(float));
  l->kall = dalloc(l, global * sizeof(float));
  l->dqall = dalloc(l, global * sizeof(float));
  l->dkall = dalloc(l, global * sizeof(float));
  l->probs = dalloc(l, nprobs * sizeof(float));
  l->labels = dalloc(l, nlab * sizeof(int32_t));
  l->labels_host = malloc(nlab * sizeof(int32_t));
  l->stats = dalloc(l, 2 * sizeof(float));
  if (!l->unit || !l->dunit || !l->norm || !l->all || !l->dall || !l->dsum || !l->qall ||
      !l->kall || !l->dqall || !l->dkall || !l->probs || !l->labels || !l->labels_host || !l->stats) {
    free_buffers(l);
    return foil_err_set(err, FOIL_ENOMEM, "out of %s memory for a loss over %zu floats", devmem_where(l->backend),
                        global);
  }
  l->cap_local = local;
  l->cap_global = global;
  l->cap_probs = nprobs;
  l->cap_labels = nlab;
  return FOIL_OK;
}

int loss_infonce(loss *l, loss_result *res, float *demb, const float *emb,
                 int B, int n_neg, int D, const loss_opts *opts,
                 const loss_comm *comm, foil_err *err) {
  const float temperature = opts->temperature;
  const int symmetric = opts->symmetric, nx = opts->queue ? opts->queue_n : 0;
  if (B < 1 || n_neg < 0 || D < 1)
    return foil_err_set(err, FOIL_EINVAL, "InfoNCE needs B >= 1, n_neg >= 0, D >= 1 (got %d, %d, %d)",
                        B, n_neg, D);
  if (!(temperature > 0.0f))
    return foil_err_set(err, FOIL_EINVAL, "temperature must be > 0, got %g", (double)temperature);
  if (nx < 0) return foil_err_set(err, FOIL_EINVAL, "queue_n must be >= 0, got %d", nx);
  const int W = comm ? comm->world : 1, rank = comm ? comm->rank : 0;
  const int rows = 2 * B + n_neg;
  const size_t rowsD = (size_t)rows * D, BD = (size_t)B * D;
  const int nq_all = W * B, nk_all = W * (B + n_neg);
  if (opts->decoupled && nk_all + nx < 2)
    return foil_err_set(err, FOIL_EINVAL, "DCL needs at least one negative key");
  if (opts->decoupled && symmetric && nq_all < 2) /* key -> query: the other queries are the negatives */
    return foil_err_set(err, FOIL_EINVAL, "symmetric DCL needs at least two pairs in the global batch "
                        "(the other queries are each key's negatives)");
  int rc = reserve(l, rowsD, (size_t)W * rowsD,
                   (size_t)B * (nk_all + nx > nq_all ? nk_all + nx : nq_all), (size_t)B, err);
  if (rc) return rc;
  const float scale = 1.0f / temperature, w = symmetric ? 0.5f : 1.0f;

  KERN(l, l2norm_forward, l->unit, l->norm, emb, rows, D);
  const float *q = l->unit, *p = l->unit + BD;
  float *dq = l->dunit, *dp = l->dunit + BD;
  dzero(l, l->dunit, rowsD * sizeof(float));

  /* Gathered matrices. One rank: views of the local rows (keys [p; neg]
   * are contiguous). Many: all-gather the local block [q; p; neg] and lay
   * out Q_all = all q blocks, K_all = all p blocks then all neg blocks. */
  const float *qall = q, *kall = p;
  if (W > 1) {
    rc = comm->allgather(comm->ctx, l->unit, rowsD, l->all, err);
    if (rc) return rc;
    for (int s = 0; s < W; s++) {
      const float *blk = l->all + (size_t)s * rowsD;
      dcopy(l, l->qall + (size_t)s * BD, blk, BD * sizeof(float));
      dcopy(l, l->kall + (size_t)s * BD, blk + BD, BD * sizeof(float));
      dcopy(l, l->kall + (size_t)nq_all * D + (size_t)s * n_neg * D, blk + 2 * BD,
            (size_t)n_neg * D * sizeof(float));
    }
    qall = l->qall;
    kall = l->kall;
    dzero(l, l->dqall, (size_t)nq_all * D * sizeof(float));
    dzero(l, l->dkall, (size_t)nk_all * D * sizeof(float));
  }
  float *dqall = W > 1 ? l->dqall : dq, *dkall = W > 1 ? l->dkall : dp;

  for (int i = 0; i < B; i++) l->labels_host[i] = rank * B + i;
  if ((rc = devmem_put(l->backend, l->labels, l->labels_host, (size_t)B * sizeof(int32_t), err))) return rc;
  float dscale = 0.0f;
  int right = 0;
  /* local queries -> all keys (loss and `right` come back to the host) */
  float lq = KERN(l, infonce_forward, l->probs, &right, q, B, kall, nk_all, opts->queue, nx, D, l->labels,
                             scale, opts->decoupled);
  KERN(l, infonce_backward, dq, dkall, &dscale, l->probs, q, B, kall, nk_all, opts->queue, nx, D, l->labels,
                   scale, w);
  float value = w * lq;
  if (symmetric) {
    /* local positives -> all queries (hard negatives are keys only) */
    float lp = KERN(l, infonce_forward, l->probs, NULL, p, B, qall, nq_all, NULL, 0, D, l->labels, scale,
                               opts->decoupled);
    KERN(l, infonce_backward, dp, dqall, &dscale, l->probs, p, B, qall, nq_all, NULL, 0, D, l->labels, scale, w);
    value += w * lp;
  }

  if (W > 1) {
    /* route gathered-row gradients back to their ranks: lay them out in the
     * gathered block order, reduce-scatter (sum), add to the local rows */
    for (int s = 0; s < W; s++) {
      float *blk = l->dall + (size_t)s * rowsD;
      dcopy(l, blk, l->dqall + (size_t)s * BD, BD * sizeof(float));
      dcopy(l, blk + BD, l->dkall + (size_t)s * BD, BD * sizeof(float));
      dcopy(l, blk + 2 * BD, l->dkall + (size_t)nq_all * D + (size_t)s * n_neg * D,
            (size_t)n_neg * D * sizeof(float));
    }
    rc = comm->reduce_scatter_sum(comm->ctx, l->dall, rowsD, l->dsum, err);
    if (rc) return rc;
    KERN(l, add_inplace, l->dunit, l->dsum, rowsD);
  }
  dzero(l, demb, rowsD * sizeof(float));
  KERN(l, l2norm_backward, demb, l->dunit, l->unit, l->norm, rows, D);

  float stats[2] = {value, (float)right / (float)B};
  if (W > 1) { /* on the backend's memory: a GPU rank's collectives take device buffers */
    if ((rc = devmem_put(l->backend, l->stats, stats, sizeof stats, err)) ||
        (rc = comm->allreduce_mean(comm->ctx, l->stats, 2, err)) ||
        (rc = devmem_get(l->backend, stats, l->stats, sizeof stats, err)))
      return rc;
  }
  res->value = stats[0];
  res->accuracy = stats[1];
  res->dscale = dscale;
  return FOIL_OK;
}
