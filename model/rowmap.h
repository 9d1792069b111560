/* rowmap.h — where one rank's rows sit in the global batch, so that a
 * row's dropout masks depend on its place in the global batch and not on
 * how that batch is split over ranks or micro-batches.
 *
 * A rank's batch is nblocks consecutive blocks of rows — a contrastive
 * batch is B queries, B positives, B·m negatives — and block b holds
 * size[b] rows on every rank. The global batch is the same blocks, each
 * holding every rank's rows of it in rank order (the layout the loaders
 * deal out and model/loss.h gathers): rank r's row i of block b is global
 * row  world·(size[0] + ... + size[b-1]) + r·size[b] + i.  So W ranks × B
 * rows draw exactly the masks of 1 rank × W·B rows. A block may hold fewer
 * rows than size[b] on some rank (a batch without its bank negatives): its
 * rows keep their places.
 *
 * Mask elements. A rank's rows of one block (a segment, global rows
 * s .. s+size-1) padded to T tokens take the mask elements from s·R_max
 * on, R = T·(elements per token) per row, row i of the segment at
 * s·R_max + i·R, where R_max is R at max_len (rowmap_offset). A segment
 * thus stays within its own rows' share of the elements whatever the
 * ranks' padded lengths, so no two ranks (and no two blocks) share mask
 * elements; slices of a segment (GradCache) draw what the whole batch
 * would; and with every row padded to max_len, row g's elements start at
 * g·R_max, as on 1 rank × W·B.
 *
 * nblocks 0 is the identity map of a single process (world 1): local row
 * i is global row i, without end. Header only; no allocation. */
#ifndef FOIL_MODEL_ROWMAP_H
#define FOIL_MODEL_ROWMAP_H

#include <stdint.h>

#include "common/err.h"
#include "model/devmem.h"

#define ROWMAP_MAX_BLOCKS 4

typedef struct {
  int rank, world; /* 0 <= rank < world */
  int nblocks;     /* 0..ROWMAP_MAX_BLOCKS; 0 = identity (world 1) */
  int64_t size[ROWMAP_MAX_BLOCKS]; /* rows per rank of each block, >= 0 */
} rowmap;

/* A run of rows contiguous in the global batch: rows at .. at+n-1 of a
 * call (counted from the call's first row) are global rows g .. g+n-1,
 * rows in_seg .. of the segment that starts at global row seg. */
typedef struct {
  int at, n;
  uint64_t g, seg, in_seg;
} rowmap_run;

/* The first mask element of run r's first row: per_row elements a row at
 * the call's padded length, per_row_max at max_len (>= per_row). */
static inline uint64_t rowmap_offset(const rowmap_run *r, uint64_t per_row, uint64_t per_row_max) {
  return r->seg * per_row_max + r->in_seg * per_row;
}

static inline int rowmap_check(const rowmap *m, foil_err *err) {
  if (m->world < 1 || m->rank < 0 || m->rank >= m->world)
    return foil_err_set(err, FOIL_EINVAL, "row map: rank %d of world %d", m->rank, m->world);
  if (m->nblocks < 0 || m->nblocks > ROWMAP_MAX_BLOCKS)
    return foil_err_set(err, FOIL_EINVAL, "row map: %d blocks (0..%d)", m->nblocks, ROWMAP_MAX_BLOCKS);
  if (m->nblocks == 0 && m->world != 1)
    return foil_err_set(err, FOIL_EINVAL, "row map: the identity map is for one process, not %d", m->world);
  for (int b = 0; b < m->nblocks; b++)
    if (m->size[b] < 0 || m->size[b] > (int64_t)1 << 40)
      return foil_err_set(err, FOIL_EINVAL, "row map: block %d has %lld rows", b, (long long)m->size[b]);
  return FOIL_OK;
}

/* *dst = *m after rowmap_check; m NULL: the identity map. */
static inline int rowmap_set(rowmap *dst, const rowmap *m, foil_err *err) {
  const rowmap id = {.rank = 0, .world = 1};
  int rc = rowmap_check(m ? m : &id, err);
  if (!rc) *dst = m ? *m : id;
  return rc;
}

/* Splits the rows row0 .. row0+n-1 of the rank's batch (n >= 1) into runs
 * contiguous in the global batch: fills runs[] (room for
 * ROWMAP_MAX_BLOCKS) and returns their number, or -1 when the rows go
 * past the last block. m must pass rowmap_check. O(nblocks). */
static inline int rowmap_runs(const rowmap *m, uint64_t row0, int n, rowmap_run *runs) {
  if (m->nblocks == 0) {
    runs[0] = (rowmap_run){.at = 0, .n = n, .g = row0, .seg = 0, .in_seg = row0};
    return 1;
  }
  uint64_t start = 0; /* block b's first local row = rows of blocks < b per rank */
  int k = 0, at = 0;
  for (int b = 0; b < m->nblocks && at < n; b++) {
    const uint64_t size = (uint64_t)m->size[b], row = row0 + (uint64_t)at;
    if (row < start + size) {
      uint64_t take = start + size - row;
      if (take > (uint64_t)(n - at)) take = (uint64_t)(n - at);
      const uint64_t seg = (uint64_t)m->world * start + (uint64_t)m->rank * size;
      runs[k++] = (rowmap_run){.at = at, .n = (int)take, .g = seg + (row - start), .seg = seg, .in_seg = row - start};
      at += (int)take;
    }
    start += size;
  }
  return at == n ? k : -1;
}

/* Dropout (kernels.h) of a call's activations, per_row elements a row
 * (per_row_max at max_len), on backend, run by run: each run draws the
 * mask elements of its rows' places (rowmap_offset). backward 0: out =
 * drop(inp) (out may be inp); 1: out += drop'(inp). One kernel call per
 * run. */
static inline void rowmap_dropout(int backend, int backward, float *out, const float *inp, size_t per_row,
                                  size_t per_row_max, float p, uint64_t seed, uint64_t stream, const rowmap_run *run,
                                  int nrun) {
  for (int i = 0; i < nrun; i++) {
    const size_t o = (size_t)run[i].at * per_row, n = (size_t)run[i].n * per_row;
    const uint64_t off = rowmap_offset(&run[i], per_row, per_row_max);
    if (backward) DEVMEM_KERN(backend, dropout_backward, out + o, inp + o, n, p, seed, stream, off);
    else DEVMEM_KERN(backend, dropout_forward, out + o, inp + o, n, p, seed, stream, off);
  }
}

#endif
