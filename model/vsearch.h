/* vsearch.h — exact top-k search by inner product over blocks of stored
 * vectors (float32, float16, or int8 with a per-row scale), for foil-serve
 * and hard-negative mining.
 *
 * Semantics (the contract foil-serve's replies and the faiss comparison
 * rely on):
 *  - score(q, row) = Σ_j q_j · x_j in float32, x the row as stored (float16
 *    widened, int8 times its row's scale);
 *  - per query the k best rows of all blocks, by score descending; equal
 *    scores: lower id first (ids are the blocks' ids, not row numbers);
 *    fewer than k rows: the rest is id -1, score -INFINITY;
 *  - rows whose id is outside [id_lo, id_hi] are skipped (id_lo > id_hi: no
 *    filter);
 *  - a block whose data is float16 or int8 and has `exact` (float32 copy)
 *    is rescored: the scan keeps the best k·rescore rows by the stored
 *    vectors, their float32 scores are computed from `exact`, and the k best
 *    of those are returned (rescore 0 means 4);
 *  - the result does not depend on the thread count or the block order.
 *
 * Cost: one pass over every block's rows (n·d multiply-adds per query, in
 * blocks so that each row is read from memory once per group of queries,
 * see Memory), plus a k-sized merge per block of rows. Threads: the
 * kernels' OpenMP pool (kernels_set_threads); the rows are split over the
 * threads (single query or batch), each thread scoring every query of the
 * group against its rows.
 * Memory, allocated per call and freed before it returns:
 *  - per thread a scan scratch of (SCAN_QTILE + d)·SCAN_ROWS floats
 *    (0.5 MB + 2 KB·d);
 *  - per thread top-k lists for the queries of a group: 12 bytes times k
 *    (if any block is float32 or not rescored) plus the largest k·rescore
 *    of the rescored blocks, per query. The queries are scored in groups
 *    sized so that these lists, all threads together, stay within 256 MB
 *    (a group holds at least 5 queries, or all of them: only when 5
 *    queries' lists exceed 256 MB, k·threads·(1 + rescore) above ~4 M,
 *    does a call take more); the blocks are read once per group. Grouping
 *    changes no result bit;
 *  - 16 bytes per SCAN_ROWS rows of the blocks that are not rescored.
 */
#ifndef FOIL_MODEL_VSEARCH_H
#define FOIL_MODEL_VSEARCH_H

#include <stdint.h>

#include "common/err.h"

typedef enum { VS_F32 = 0, VS_F16 = 1, VS_I8 = 2 } vs_dtype;

typedef struct {
  vs_dtype dtype;
  int64_t n;              /* rows */
  int d;                  /* dimension (the same for every block) */
  const void *data;       /* n×d, row-major, in dtype (uint16_t IEEE half for F16) */
  const float *scales;    /* VS_I8: row scales (x ≈ scale · int8 row); else NULL */
  const float *exact;     /* optional n×d float32 copy for rescoring; NULL: none */
  const int64_t *ids;     /* n ids */
} vs_block;

/* Top-k for nq queries (q: nq×d float32) over the blocks; out_scores and
 * out_ids are nq×k. FOIL_EINVAL for a bad argument (k < 1, dimensions that
 * differ, a missing scale), FOIL_ENOMEM. */
int vs_search(const vs_block *blocks, int nblocks, const float *q, int nq, int k, int64_t id_lo,
              int64_t id_hi, int rescore, float *out_scores, int64_t *out_ids, foil_err *err);

/* vs_search's checks of its arguments alone (what it answers FOIL_EINVAL
 * for), for other searches over the same blocks (vsearch_dev.h). */
int vs_check_args(const vs_block *blocks, int nblocks, const float *q, int nq, int k, int rescore,
                  const float *out_scores, const int64_t *out_ids, foil_err *err);

/* Conversions used to write shards: float32 → IEEE half (round to nearest
 * even; NaN stays NaN, overflow gives ±inf), and → int8 with a per-row
 * scale (max |x| / 127, symmetric). Non-finite input to vs_to_i8 (index
 * shards refuse it before converting, index.h) is still well defined: the
 * scale is taken over the row's finite elements, NaN stores 0, ±inf
 * stores ±127 (0 in a row whose finite elements are all 0). */
void vs_to_f16(uint16_t *dst, const float *src, int64_t n);
void vs_from_f16(float *dst, const uint16_t *src, int64_t n);
void vs_to_i8(int8_t *dst, float *scales, const float *src, int64_t rows, int d);
/* Rows [r0, r0+m) of block b as float32: its `exact` copy when it has one,
 * else the stored rows widened (float16 exactly, int8 times its row's
 * scale). out: m×d. */
void vs_rows_f32(const vs_block *b, int64_t r0, int64_t m, float *out);

#endif
