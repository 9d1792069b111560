/* vsearch_dev.c — see vsearch_dev.h. */
#define _POSIX_C_SOURCE 200809L
#include "model/vsearch_dev.h"

#include <stdlib.h>
#include <string.h>

#include "model/devmem.h"

enum {
  STAGE_BYTES = 16 << 20,  /* an upload's piece, converted on the host */
  QCHUNK = 256,            /* queries per pass over the rows */
  PIECE_ROWS = 1 << 30,    /* rows per cuda_scan_topk call (its n is an int) */
};

struct vs_dev {
  vs_block *blocks;  /* the caller's blocks (host data borrowed) */
  int nblocks, d;
  float **x;         /* per block: n×d float32 rows on the device */
  int64_t **ids;     /* per block: n ids on the device */
  float *q, *top_s, *scratch;  /* search buffers for up to cap queries */
  int64_t *top_i;
  int cap;
  size_t bytes, buf_bytes;  /* rows and ids; the search buffers */
};

static int put_locked(void *dst, const void *src, size_t bytes, foil_err *err) {
  devmem_lock();
  int rc = devmem_put(DEVMEM_CUDA, dst, src, bytes, err);
  devmem_unlock();
  return rc;
}

/* Copies block b's rows and ids up, STAGE_BYTES at a time. */
static int upload(vs_dev *x, int b, void *stage, foil_err *err) {
  const vs_block *blk = &x->blocks[b];
  int64_t per = STAGE_BYTES / ((int64_t)blk->d * (int64_t)sizeof(float));
  if (per < 1) per = 1;
  for (int64_t r = 0; r < blk->n; r++)
    if (blk->ids[r] < 0)
      return foil_err_set(err, FOIL_EINVAL, "vs_dev: block %d row %lld has id %lld; ids must be >= 0", b,
                          (long long)r, (long long)blk->ids[r]);
  for (int64_t r0 = 0; r0 < blk->n; r0 += per) {
    int64_t m = blk->n - r0 < per ? blk->n - r0 : per;
    vs_rows_f32(blk, r0, m, stage);
    int rc = put_locked(x->x[b] + (size_t)r0 * (size_t)blk->d, stage, (size_t)m * (size_t)blk->d * sizeof(float),
                        err);
    if (rc) return rc;
  }
  int64_t per_id = STAGE_BYTES / (int64_t)sizeof(int64_t);
  for (int64_t r0 = 0; r0 < blk->n; r0 += per_id) {
    int64_t m = blk->n - r0 < per_id ? blk->n - r0 : per_id;
    int rc = put_locked(x->ids[b] + r0, blk->ids + r0, (size_t)m * sizeof(int64_t), err);
    if (rc) return rc;
  }
  return FOIL_OK;
}

/* A device buffer, counted; NULL (and FOIL_ENOMEM in err) when full. */
static void *dev_alloc(vs_dev *x, size_t bytes, foil_err *err) {
  devmem_lock();
  void *p = devmem_alloc(DEVMEM_CUDA, bytes);
  devmem_unlock();
  if (!p) foil_err_set(err, FOIL_ENOMEM, "vs_dev: the GPU has no room for %zu more bytes (%zu held)", bytes, x->bytes);
  else x->bytes += bytes;
  return p;
}

int vs_dev_new(const vs_block *blocks, int nblocks, vs_dev **out, foil_err *err) {
  *out = NULL;
  int rc = devmem_ready(DEVMEM_CUDA, "search index", err);
  if (rc) return rc;
  if ((rc = vs_check_args(blocks, nblocks, NULL, 0, 1, 0, NULL, NULL, err))) return rc;
  vs_dev *x = calloc(1, sizeof *x);
  void *stage = malloc(STAGE_BYTES);
  if (!x || !stage) {
    free(x), free(stage);
    return foil_err_set(err, FOIL_ENOMEM, "no memory");
  }
  x->nblocks = nblocks;
  x->d = nblocks ? blocks[0].d : 0;
  x->blocks = malloc((size_t)(nblocks ? nblocks : 1) * sizeof *x->blocks);
  x->x = calloc((size_t)(nblocks ? nblocks : 1), sizeof *x->x);
  x->ids = calloc((size_t)(nblocks ? nblocks : 1), sizeof *x->ids);
  if (!x->blocks || !x->x || !x->ids) rc = foil_err_set(err, FOIL_ENOMEM, "no memory");
  if (!rc && nblocks) memcpy(x->blocks, blocks, (size_t)nblocks * sizeof *blocks);
  for (int b = 0; !rc && b < nblocks; b++) {
    size_t n = (size_t)blocks[b].n;
    if (!n) continue;
    if (!(x->x[b] = dev_alloc(x, n * (size_t)x->d * sizeof(float), err)) ||
        !(x->ids[b] = dev_alloc(x, n * sizeof(int64_t), err)))
      rc = FOIL_ENOMEM;
    if (!rc) rc = upload(x, b, stage, err);
  }
  free(stage);
  if (rc) {
    vs_dev_destroy(&x);
    return rc;
  }
  *out = x;
  return FOIL_OK;
}

static void free_search_buffers(vs_dev *x) {
  devmem_free(DEVMEM_CUDA, x->q), devmem_free(DEVMEM_CUDA, x->top_s);
  devmem_free(DEVMEM_CUDA, x->top_i), devmem_free(DEVMEM_CUDA, x->scratch);
  x->q = x->top_s = x->scratch = NULL, x->top_i = NULL;
  x->cap = 0, x->buf_bytes = 0;
}

void vs_dev_destroy(vs_dev **xp) {
  vs_dev *x = *xp;
  if (!x) return;
  devmem_lock();
  for (int b = 0; b < x->nblocks; b++) {
    if (x->x) devmem_free(DEVMEM_CUDA, x->x[b]);
    if (x->ids) devmem_free(DEVMEM_CUDA, x->ids[b]);
  }
  free_search_buffers(x);
  devmem_unlock();
  free(x->x), free(x->ids), free(x->blocks);
  free(x);
  *xp = NULL;
}

size_t vs_dev_bytes(const vs_dev *x) { return x ? x->bytes + x->buf_bytes : 0; }

#ifdef FOIL_HAVE_CUDA
/* Buffers for m queries of k results (called with the lock held). */
static int reserve(vs_dev *x, int m, foil_err *err) {
  if (m <= x->cap) return FOIL_OK;
  free_search_buffers(x);
  size_t nq = (size_t)m * (size_t)x->d * sizeof(float), nl = (size_t)m * CUDA_TOPK_MAX,
         ns = cuda_scan_topk_scratch(m) * sizeof(float);
  x->q = devmem_alloc(DEVMEM_CUDA, nq);
  x->top_s = devmem_alloc(DEVMEM_CUDA, nl * sizeof(float));
  x->top_i = devmem_alloc(DEVMEM_CUDA, nl * sizeof(int64_t));
  x->scratch = devmem_alloc(DEVMEM_CUDA, ns);
  if (!x->q || !x->top_s || !x->top_i || !x->scratch) {
    free_search_buffers(x);
    return foil_err_set(err, FOIL_ENOMEM, "vs_dev: the GPU has no room for a batch of %d queries", m);
  }
  x->cap = m, x->buf_bytes = nq + nl * (sizeof(float) + sizeof(int64_t)) + ns;
  return FOIL_OK;
}

/* Queries [q0, q0+m) (called with the lock held). */
static int search_chunk(vs_dev *x, const float *q, int m, int k, int64_t lo, int64_t hi, float *scores,
                        int64_t *ids, foil_err *err) {
  int rc = reserve(x, m, err);
  if (!rc) rc = devmem_put(DEVMEM_CUDA, x->q, q, (size_t)m * (size_t)x->d * sizeof(float), err);
  if (rc) return rc;
  cuda_topk_init(x->top_s, x->top_i, m, k);
  for (int b = 0; b < x->nblocks; b++)
    for (int64_t r0 = 0; r0 < x->blocks[b].n; r0 += PIECE_ROWS) {
      int64_t n = x->blocks[b].n - r0 < PIECE_ROWS ? x->blocks[b].n - r0 : PIECE_ROWS;
      cuda_scan_topk(x->top_s, x->top_i, m, k, x->q, x->d, x->x[b] + (size_t)r0 * (size_t)x->d, (int)n,
                     x->ids[b] + r0, 0, lo, hi, x->scratch);
    }
  if ((rc = devmem_check(DEVMEM_CUDA, err))) return rc;
  rc = devmem_get(DEVMEM_CUDA, scores, x->top_s, (size_t)m * (size_t)k * sizeof(float), err);
  if (!rc) rc = devmem_get(DEVMEM_CUDA, ids, x->top_i, (size_t)m * (size_t)k * sizeof(int64_t), err);
  return rc;
}
#endif

int vs_dev_search(vs_dev *x, const float *q, int nq, int k, int64_t id_lo, int64_t id_hi, float *out_scores,
                  int64_t *out_ids, foil_err *err) {
  int rc = vs_check_args(x->blocks, x->nblocks, q, nq, k, 0, out_scores, out_ids, err);
  if (rc) return rc;
#ifdef FOIL_HAVE_CUDA
  if (k <= CUDA_TOPK_MAX && x->nblocks > 0) {
    devmem_lock();
    for (int q0 = 0; !rc && q0 < nq; q0 += QCHUNK) {
      int m = nq - q0 < QCHUNK ? nq - q0 : QCHUNK;
      rc = search_chunk(x, q + (size_t)q0 * (size_t)x->d, m, k, id_lo, id_hi, out_scores + (size_t)q0 * k,
                        out_ids + (size_t)q0 * k, err);
    }
    devmem_unlock();
    return rc;
  }
#endif
  /* k beyond the device's lists (or no blocks): the host search */
  return vs_search(x->blocks, x->nblocks, q, nq, k, id_lo, id_hi, 0, out_scores, out_ids, err);
}
