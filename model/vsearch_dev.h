/* vsearch_dev.h — vs_search's blocks held in GPU memory, for foil-serve
 * on a GPU: the rows are copied to the device once, and each search is
 * kernels_cuda.h's cuda_scan_topk over them (cuBLAS scores, top-k merged
 * on the device); only the queries go up and the k results come back.
 *
 * Semantics: vsearch.h's (score desc, equal scores lower id first, fewer
 * than k rows: id -1 and -INFINITY, the id filter), with one difference
 * stated here: the device holds every row as float32 — a block's `exact`
 * copy when it has one, else its stored vectors widened (float16 exactly,
 * int8 times its row's scale) — so a float16/int8 block with an exact copy
 * is searched exactly, with no candidate rescoring. Scores are float32
 * sums in cuBLAS's order, so they may differ from the CPU's in the last
 * bits; where both sides compute the same scores the lists are identical.
 * k above CUDA_TOPK_MAX (256) is answered by vs_search on the host blocks.
 * Ids must be >= 0 (-1 marks an empty slot).
 *
 * Threads: every call holds devmem_lock around its device work (the CUDA
 * backend is driven by one thread at a time), so a loader thread may build
 * and check a new index while another thread searches the live one; an
 * upload takes the lock per 16 MB piece, so a search waits for at most one
 * piece. Other device work of the process must hold the same lock.
 *
 * Ownership: vs_dev_new copies the rows and ids; it keeps the blocks array
 * and BORROWS the host data it points at (for the host fallback), which
 * must outlive the vs_dev. Cost: new reads every row once (n·d widened and
 * copied up); a search is 2·nq·n·d flops and one read of the device rows
 * per 256 queries. Memory: n·(4d + 8) bytes on the device, plus
 * ~1 MiB per query of a batch (the score tile) up to 256 queries. */
#ifndef FOIL_MODEL_VSEARCH_DEV_H
#define FOIL_MODEL_VSEARCH_DEV_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "model/vsearch.h"

typedef struct vs_dev vs_dev;

/* Copies the blocks' rows to the CUDA backend (brought up by the caller
 * with cuda_init). FOIL_EUNAVAIL in a build without CUDA, FOIL_EPRECOND
 * when the backend is not up, FOIL_EINVAL for bad blocks (as vs_search) or
 * a negative id, FOIL_ENOMEM when the device is full. */
int vs_dev_new(const vs_block *blocks, int nblocks, vs_dev **out, foil_err *err);
void vs_dev_destroy(vs_dev **x);

/* vs_search's top-k over the device rows (arguments and outputs as
 * vs_search's, without rescore). */
int vs_dev_search(vs_dev *x, const float *q, int nq, int k, int64_t id_lo, int64_t id_hi,
                  float *out_scores, int64_t *out_ids, foil_err *err);

/* Device bytes held (rows, ids, the search buffers). */
size_t vs_dev_bytes(const vs_dev *x);

#endif
