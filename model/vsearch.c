/* vsearch.c — exact top-k search over stored blocks (vsearch.h), built on
 * the kernels' fused scan + top-k (scan_topk, topk_offer).
 *
 * Plan of one call:
 *  1. Every block's rows are cut into items of SCAN_ROWS rows counted from
 *     the block's row 0, so a row is always scored by the same code on the
 *     same neighbours, whoever scores it.
 *  2. Blocks that are not rescored: one parallel pass over all their items
 *     (dynamic schedule); each thread offers to its own lists [nq,k].
 *  3. Each rescored block (float16/int8 with `exact`): a parallel pass over
 *     its items into per-thread candidate lists [nq,kc] of ROW NUMBERS
 *     (kc = k·rescore, at most the block's rows), filter applied; then per
 *     query the threads' candidates are merged to the kc best, scored from
 *     `exact` in float32 (scan_dot) and offered, with their ids, to the
 *     result list. Candidates are chosen per block, so a block's candidates
 *     do not depend on the other blocks.
 *  4. Per query the result list takes every thread's list from step 2.
 * The top k of a set under a total order (score desc, id asc) does not
 * depend on how the set was split, and every score's bits are fixed by step
 * 1: the result is the same for any thread count and block order.
 *
 * Single query: step 2 splits the rows over threads, each streaming its
 * items through scan_dot (memory-bound). A batch: each item is widened once
 * and scored by sgemm per tile of queries inside the item's thread.
 *
 * Memory: steps 2-3 keep per-thread lists for every query scored at once,
 * so the queries are scored in groups whose lists fit in VS_LIST_BUDGET
 * (vsearch_internal.h); steps 2-4 run once per group. The plain blocks'
 * lists exist only when there are plain rows, the candidate lists only
 * when a block is rescored.
 *
 * Ids: rows whose id is negative are never returned (a negative id would
 * read as an empty slot); ids are expected distinct across blocks. */
#include "model/vsearch.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/vsearch_internal.h"

typedef struct {
  int block;
  int64_t row;
} vs_item;

static int scan_dtype(vs_dtype t) { return t == VS_F16 ? SCAN_F16 : t == VS_I8 ? SCAN_I8 : SCAN_F32; }
static size_t elem_size(vs_dtype t) { return t == VS_F16 ? 2 : t == VS_I8 ? 1 : 4; }
static int rescored(const vs_block *b) { return b->dtype != VS_F32 && b->exact != NULL; }

/* a·b·c·e bytes, or 0 on overflow */
static size_t mul4(size_t a, size_t b, size_t c, size_t e) {
  size_t r = a;
  if (b && r > SIZE_MAX / b) return 0;
  r *= b;
  if (c && r > SIZE_MAX / c) return 0;
  r *= c;
  if (e && r > SIZE_MAX / e) return 0;
  return r * e;
}

int vs_check_args(const vs_block *blocks, int nblocks, const float *q, int nq, int k, int rescore,
                  const float *out_scores, const int64_t *out_ids, foil_err *err) {
  if (k < 1) return foil_err_set(err, FOIL_EINVAL, "vs_search: k must be >= 1, got %d", k);
  if (nq < 0) return foil_err_set(err, FOIL_EINVAL, "vs_search: nq must be >= 0, got %d", nq);
  if (nblocks < 0 || (nblocks > 0 && !blocks))
    return foil_err_set(err, FOIL_EINVAL, "vs_search: no blocks (nblocks %d)", nblocks);
  if (rescore < 0)
    return foil_err_set(err, FOIL_EINVAL, "vs_search: rescore must be >= 0, got %d", rescore);
  if (nq > 0 && (!q || !out_scores || !out_ids))
    return foil_err_set(err, FOIL_EINVAL, "vs_search: queries or outputs missing");
  for (int b = 0; b < nblocks; b++) {
    const vs_block *x = &blocks[b];
    if (x->dtype != VS_F32 && x->dtype != VS_F16 && x->dtype != VS_I8)
      return foil_err_set(err, FOIL_EINVAL, "vs_search: block %d has unknown dtype %d", b,
                          (int)x->dtype);
    if (x->d < 1)
      return foil_err_set(err, FOIL_EINVAL, "vs_search: block %d has dimension %d", b, x->d);
    if (x->d != blocks[0].d)
      return foil_err_set(err, FOIL_EINVAL,
                          "vs_search: block %d has dimension %d, block 0 has %d", b, x->d,
                          blocks[0].d);
    if (x->n < 0) return foil_err_set(err, FOIL_EINVAL, "vs_search: block %d has %lld rows", b,
                                      (long long)x->n);
    if (x->n > 0 && (!x->data || !x->ids))
      return foil_err_set(err, FOIL_EINVAL, "vs_search: block %d lacks data or ids", b);
    if (x->n > 0 && x->dtype == VS_I8 && !x->scales)
      return foil_err_set(err, FOIL_EINVAL, "vs_search: int8 block %d has no row scales", b);
  }
  return FOIL_OK;
}

/* Candidates per query kept for a rescored block: k·rescore, at most its rows. */
static int cand_count(const vs_block *b, int k, int rescore) {
  int64_t kc = (int64_t)k * rescore;
  if (kc > b->n) kc = b->n;
  return kc > INT_MAX ? INT_MAX : (int)kc;
}

/* One call's fixed state: the item plan and the per-thread buffers, sized
 * for groups of up to G queries. */
typedef struct {
  const vs_block *blocks;
  int nblocks, d, k, rescore, T;
  int64_t id_lo, id_hi;
  const vs_item *items;
  int64_t nitems;
  size_t scr_n;          /* floats of scratch per thread */
  float *ls, *cs, *ts, *scratch;
  int64_t *li, *ci, *ti;
} vs_plan;

/* Steps 2-4 of the plan for nq queries q (nq <= the plan's group size); the
 * result lists out_* [nq,k] are already initialized. */
static void search_group(const vs_plan *p, const float *q, int nq, float *out_scores,
                         int64_t *out_ids) {
  const vs_block *blocks = p->blocks;
  const int d = p->d, k = p->k, T = p->T;
  const int64_t id_lo = p->id_lo, id_hi = p->id_hi, nitems = p->nitems;
  const size_t scr_n = p->scr_n;
  float *ls = p->ls, *cs = p->cs, *ts = p->ts, *scratch = p->scratch;
  int64_t *li = p->li, *ci = p->ci, *ti = p->ti;

  /* Step 2: plain blocks. */
  if (nitems > 0) {
    for (int t = 0; t < T; t++) topk_init(ls + (size_t)t * nq * k, li + (size_t)t * nq * k, nq, k);
#pragma omp parallel num_threads(T)
    {
      int t = omp_get_thread_num();
      float *my_s = ls + (size_t)t * nq * k, *my_scr = scratch + (size_t)t * scr_n;
      int64_t *my_i = li + (size_t)t * nq * k;
#pragma omp for schedule(dynamic, 1)
      for (int64_t w = 0; w < nitems; w++) {
        const vs_block *x = &blocks[p->items[w].block];
        int64_t r = p->items[w].row;
        int n = x->n - r < SCAN_ROWS ? (int)(x->n - r) : SCAN_ROWS;
        scan_topk(my_s, my_i, nq, k, q, d, scan_dtype(x->dtype),
                  (const char *)x->data + (size_t)r * d * elem_size(x->dtype),
                  x->scales ? x->scales + r : NULL, x->ids + r, n, id_lo, id_hi, -1, my_scr);
      }
    }
  }

  /* Step 3: rescored blocks, one at a time. */
  for (int b = 0; b < p->nblocks; b++) {
    const vs_block *x = &blocks[b];
    if (!rescored(x) || x->n == 0) continue;
    const int kc = cand_count(x, k, p->rescore);
    const int64_t nit = (x->n + SCAN_ROWS - 1) / SCAN_ROWS;
    for (int t = 0; t < T; t++)
      topk_init(cs + (size_t)t * nq * kc, ci + (size_t)t * nq * kc, nq, kc);
#pragma omp parallel num_threads(T)
    {
      int t = omp_get_thread_num();
      float *my_s = cs + (size_t)t * nq * kc, *my_scr = scratch + (size_t)t * scr_n;
      int64_t *my_i = ci + (size_t)t * nq * kc;
#pragma omp for schedule(dynamic, 1)
      for (int64_t w = 0; w < nit; w++) {
        int64_t r = w * SCAN_ROWS;
        int n = x->n - r < SCAN_ROWS ? (int)(x->n - r) : SCAN_ROWS;
        scan_topk(my_s, my_i, nq, kc, q, d, scan_dtype(x->dtype),
                  (const char *)x->data + (size_t)r * d * elem_size(x->dtype),
                  x->scales ? x->scales + r : NULL, x->ids + r, n, id_lo, id_hi, r, my_scr);
      }
      /* Per query: the kc best rows over all threads, rescored from exact. */
      float *cand_s = ts + (size_t)t * kc;
      int64_t *cand_r = ti + (size_t)t * kc;
#pragma omp for schedule(static)
      for (int qi = 0; qi < nq; qi++) {
        topk_init(cand_s, cand_r, 1, kc);
        for (int u = 0; u < T; u++) {
          size_t off = ((size_t)u * nq + qi) * kc;
          topk_offer(cand_s, cand_r, kc, cs + off, kc, ci + off, 1, 0, -1);
        }
        const float *qv = q + (size_t)qi * d;
        for (int j = 0; j < kc && cand_r[j] >= 0; j++) {
          int64_t row = cand_r[j];
          float s;
          scan_dot(&s, qv, d, SCAN_F32, x->exact + (size_t)row * d, NULL, 1);
          topk_offer(out_scores + (size_t)qi * k, out_ids + (size_t)qi * k, k, &s, 1,
                     x->ids + row, 1, 0, -1);
        }
      }
    }
  }

  /* Step 4: the threads' lists of the plain blocks into the result. */
  if (nitems > 0) {
#pragma omp parallel for num_threads(T) schedule(static)
    for (int qi = 0; qi < nq; qi++)
      for (int u = 0; u < T; u++) {
        size_t off = ((size_t)u * nq + qi) * k;
        topk_offer(out_scores + (size_t)qi * k, out_ids + (size_t)qi * k, k, ls + off, k,
                   li + off, 1, 0, -1);
      }
  }
}

int vs_search_budget(const vs_block *blocks, int nblocks, const float *q, int nq, int k,
                     int64_t id_lo, int64_t id_hi, int rescore, float *out_scores,
                     int64_t *out_ids, size_t budget, vs_search_stats *st, foil_err *err) {
  if (st) memset(st, 0, sizeof *st);
  int rc = vs_check_args(blocks, nblocks, q, nq, k, rescore, out_scores, out_ids, err);
  if (rc) return rc;
  if (nq == 0) return FOIL_OK;
  if (rescore == 0) rescore = 4;
  topk_init(out_scores, out_ids, nq, k);
  if (nblocks == 0) return FOIL_OK;
  const int d = blocks[0].d;

  /* Items of the plain blocks; the largest candidate list of the rescored. */
  int64_t nitems = 0;
  int kc_max = 0;
  for (int b = 0; b < nblocks; b++) {
    if (rescored(&blocks[b])) {
      int kc = cand_count(&blocks[b], k, rescore);
      if (kc > kc_max) kc_max = kc;
    } else {
      nitems += (blocks[b].n + SCAN_ROWS - 1) / SCAN_ROWS;
    }
  }
  /* List slots per query and thread: k for the plain blocks (when there
   * are any rows in them), kc_max for the rescored. None: no rows at all. */
  const size_t slots = (nitems > 0 ? (size_t)k : 0) + (size_t)kc_max;
  if (slots == 0) return FOIL_OK;

  /* Query groups: every thread holds its lists for one group at a time, so
   * the lists of all threads take per_q bytes per query of the group.
   * G = budget / per_q, at most nq; when that splits the queries and is
   * above one sgemm tile, whole tiles. Each query's lists are independent
   * of the others', so the grouping changes no result bit. G is at least
   * SCAN_DIRECT_MAX + 1 (or nq when smaller), so every group but a short
   * last one takes the scoring path (kernels.h scan_topk: direct or sgemm,
   * chosen by the query count) of the whole call; the last may take the
   * other, which gives the same bits (a query gets the same bits alone as
   * in a batch: kernels/cpu/scan.c). */
  const int T = kernels_get_threads();
  const size_t per_q = mul4((size_t)T, slots, 1, sizeof(float) + sizeof(int64_t));
  const size_t scr_n = scan_topk_scratch(d), scr_b = mul4((size_t)T, scr_n, 1, sizeof(float));
  if (!per_q || !scr_b || (uint64_t)nitems > SIZE_MAX / sizeof(vs_item))
    return foil_err_set(err, FOIL_ENOMEM, "vs_search: k %d on %d threads does not fit in memory",
                        k, T);
  size_t g = budget / per_q;
  if (g < SCAN_DIRECT_MAX + 1) g = SCAN_DIRECT_MAX + 1;
  if (g >= (size_t)nq) g = (size_t)nq;
  else if (g > SCAN_QTILE) g -= g % SCAN_QTILE;
  const int G = (int)g;
  if (!mul4((size_t)T, (size_t)G, slots, sizeof(float) + sizeof(int64_t)))
    return foil_err_set(err, FOIL_ENOMEM, "vs_search: %d queries x k %d on %d threads does not fit in memory",
                        G, k, T);

  vs_plan p = {.blocks = blocks, .nblocks = nblocks, .d = d, .k = k, .rescore = rescore, .T = T,
               .id_lo = id_lo, .id_hi = id_hi, .nitems = nitems, .scr_n = scr_n};
  vs_item *items = malloc(sizeof(vs_item) * (size_t)(nitems ? nitems : 1));
  p.scratch = malloc(scr_b);
  int ok = items && p.scratch;
  if (ok && nitems > 0) {
    p.ls = malloc(mul4((size_t)T, (size_t)G, (size_t)k, sizeof(float)));
    p.li = malloc(mul4((size_t)T, (size_t)G, (size_t)k, sizeof(int64_t)));
    ok = p.ls && p.li;
  }
  if (ok && kc_max) {
    p.cs = malloc(mul4((size_t)T, (size_t)G, (size_t)kc_max, sizeof(float)));
    p.ci = malloc(mul4((size_t)T, (size_t)G, (size_t)kc_max, sizeof(int64_t)));
    p.ts = malloc(mul4((size_t)T, (size_t)kc_max, 1, sizeof(float)));
    p.ti = malloc(mul4((size_t)T, (size_t)kc_max, 1, sizeof(int64_t)));
    ok = p.cs && p.ci && p.ts && p.ti;
  }
  if (!ok) {
    rc = foil_err_set(err, FOIL_ENOMEM, "vs_search: out of memory (%d queries per group, k %d, %d threads)",
                      G, k, T);
    goto done;
  }
  int64_t it = 0;
  for (int b = 0; b < nblocks; b++)
    if (!rescored(&blocks[b]))
      for (int64_t r = 0; r < blocks[b].n; r += SCAN_ROWS) items[it++] = (vs_item){b, r};
  p.items = items;

  int groups = 0;
  for (int64_t g0 = 0; g0 < nq; g0 += G, groups++)
    search_group(&p, q + (size_t)g0 * d, nq - g0 < G ? (int)(nq - g0) : G,
                 out_scores + (size_t)g0 * k, out_ids + (size_t)g0 * k);
  if (st) st->groups = groups, st->group_queries = G, st->list_bytes = (size_t)G * per_q;
  rc = FOIL_OK;
done:
  free(items);
  free(p.scratch);
  free(p.ls);
  free(p.li);
  free(p.cs);
  free(p.ci);
  free(p.ts);
  free(p.ti);
  return rc;
}

int vs_search(const vs_block *blocks, int nblocks, const float *q, int nq, int k, int64_t id_lo,
              int64_t id_hi, int rescore, float *out_scores, int64_t *out_ids, foil_err *err) {
  return vs_search_budget(blocks, nblocks, q, nq, k, id_lo, id_hi, rescore, out_scores, out_ids,
                          VS_LIST_BUDGET, NULL, err);
}
