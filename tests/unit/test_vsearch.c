/* test_vsearch.c — exact top-k search (model/vsearch.h) against a naive
 * double-precision reference.
 *
 * What it proves:
 *  - integer-valued vectors (every float32 sum exact, so the reference's
 *    scores are foil's bit for bit) with planted ties and duplicate rows:
 *    ids and scores identical to a full sort by (score desc, id asc), for
 *    float32, float16 and int8 blocks, single queries (row-by-row path) and
 *    batches (sgemm path), with an id filter, k larger than the rows;
 *  - random real-valued vectors: every returned score is its id's true
 *    score within 1e-4 and rank r's score is the reference's rank-r score
 *    within 1e-4 (near-ties may swap);
 *  - rescoring of float16/int8 blocks from `exact`: the reference's
 *    procedure (per block the k·rescore best rows by stored score, lower
 *    row first, then the k best by exact score), rescore 0 = 4;
 *  - several blocks of mixed dtypes, in any order, 1 or 2 threads: the same
 *    bits; a query in a batch (sgemm path) gets the bits it gets alone;
 *    duplicate rows score equal bits and come back lower id first;
 *  - alone vs batch where d has a scalar tail (7, 13, 37, 100, 257):
 *    float32, float16 and int8 (plain and rescored), 1 and 2 threads, the
 *    same bits (the tail's multiply-add is one operation in scan_dot's
 *    four-row and one-row loops, whatever the compiler contracts);
 *  - bad arguments are refused with FOIL_EINVAL;
 *  - vs_to_i8 on NaN and ±inf: finite scales from the finite elements,
 *    NaN stored as 0, ±inf saturated (no undefined float→int conversion:
 *    run it under -fsanitize=float-cast-overflow), finite search scores;
 *  - queries scored in groups (a forced small list budget, so one call
 *    runs several groups, down to the least, 5 queries): the same bits as
 *    one group, at 1 and 2 threads, d 13 (not a multiple of any lane
 *    width);
 *    the lists stay within the budget and the plain blocks' lists exist
 *    only when there are plain blocks;
 *  - the peak memory of a mining-sized call (2^17 queries, k 16, rescore
 *    8, 2 threads: 432 MiB of lists without groups) stays within
 *    VS_LIST_BUDGET (Linux, not under a sanitizer).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/vsearch.h"
#include "model/vsearch_internal.h"
#include "tests/test.h"

static uint64_t prng_state;
static void prng_seed(uint64_t s) { prng_state = s * 0x9E3779B97F4A7C15ull; }
static uint64_t prng_next(void) { /* splitmix64 */
  uint64_t z = (prng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static int prng_int(int n) { return (int)(prng_next() % (uint64_t)n); }
static float prng_unif(void) { return (float)((prng_next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

/* The reference's own float16 decoder (exact, in double). */
static double t_from_f16(uint16_t h) {
  int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
  return (h & 0x8000) ? -v : v;
}

/* ---- test data: one block per dtype, all owning their buffers ---- */
typedef struct {
  vs_block b;
  float *f32, *scales, *exact;
  uint16_t *f16;
  int8_t *i8;
  int64_t *ids;
} tblock;

static void tblock_free(tblock *t) {
  free(t->f32);
  free(t->scales);
  free(t->exact);
  free(t->f16);
  free(t->i8);
  free(t->ids);
  memset(t, 0, sizeof *t);
}

/* Rows from src (n×d float32, already on the dtype's grid when exact);
 * float16 by vs_to_f16; int8 with the fixed scale `i8scale` (> 0) or, when
 * 0, by vs_to_i8 (max|x|/127 per row). */
static void tblock_make(tblock *t, vs_dtype dt, const float *src, int64_t n, int d,
                        const int64_t *ids, float i8scale, const float *exact) {
  memset(t, 0, sizeof *t);
  t->ids = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  memcpy(t->ids, ids, sizeof(int64_t) * (size_t)n);
  t->b.dtype = dt, t->b.n = n, t->b.d = d, t->b.ids = t->ids;
  size_t nd = (size_t)n * d;
  if (dt == VS_F32) {
    t->f32 = malloc(sizeof(float) * (nd ? nd : 1));
    memcpy(t->f32, src, sizeof(float) * nd);
    t->b.data = t->f32;
  } else if (dt == VS_F16) {
    t->f16 = malloc(2 * (nd ? nd : 1));
    vs_to_f16(t->f16, src, (int64_t)nd);
    t->b.data = t->f16;
  } else {
    t->i8 = malloc(nd ? nd : 1);
    t->scales = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (i8scale == 0) {
      vs_to_i8(t->i8, t->scales, src, n, d); /* the shards' own encoding */
    } else {
      /* a fixed power-of-two scale keeps integer test rows exact */
      for (int64_t r = 0; r < n; r++) {
        t->scales[r] = i8scale;
        for (int j = 0; j < d; j++) {
          float v = roundf(src[r * d + j] / i8scale);
          t->i8[r * d + j] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
      }
    }
    t->b.data = t->i8, t->b.scales = t->scales;
  }
  if (exact) {
    t->exact = malloc(sizeof(float) * (nd ? nd : 1));
    memcpy(t->exact, exact, sizeof(float) * nd);
    t->b.exact = t->exact;
  }
}

/* Stored value of element i, in double. */
static double stored(const vs_block *b, size_t i) {
  int64_t r = (int64_t)(i / (size_t)b->d);
  switch (b->dtype) {
    case VS_F16: return t_from_f16(((const uint16_t *)b->data)[i]);
    case VS_I8: return (double)b->scales[r] * ((const int8_t *)b->data)[i];
    default: return ((const float *)b->data)[i];
  }
}

typedef struct {
  double s;
  int64_t id, row;
} cand;
static int cand_cmp_id(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->s != y->s) return x->s > y->s ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}
static int cand_cmp_row(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->s != y->s) return x->s > y->s ? -1 : 1;
  return x->row < y->row ? -1 : x->row > y->row;
}

static int in_filter(int64_t id, int64_t lo, int64_t hi) { return id >= 0 && (lo > hi || (id >= lo && id <= hi)); }

/* The reference: rs/ri [nq,k] in double, by the contract's procedure. */
static void reference(const vs_block *bl, int nb, const float *q, int nq, int k, int64_t lo,
                      int64_t hi, int rescore, double *rs, int64_t *ri) {
  if (rescore == 0) rescore = 4;
  int64_t total = 0;
  for (int b = 0; b < nb; b++) total += bl[b].n;
  cand *all = malloc(sizeof(cand) * (size_t)(total + 1));
  cand *blk = malloc(sizeof(cand) * (size_t)(total + 1));
  for (int qi = 0; qi < nq; qi++) {
    const float *qv = q + (size_t)qi * bl[0].d;
    int64_t na = 0;
    for (int b = 0; b < nb; b++) {
      const vs_block *x = &bl[b];
      int d = x->d;
      int64_t nbk = 0;
      for (int64_t r = 0; r < x->n; r++) {
        if (!in_filter(x->ids[r], lo, hi)) continue;
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)qv[j] * stored(x, (size_t)r * d + j);
        blk[nbk++] = (cand){s, x->ids[r], r};
      }
      if (x->dtype != VS_F32 && x->exact) {
        qsort(blk, (size_t)nbk, sizeof(cand), cand_cmp_row);
        int64_t kc = (int64_t)k * rescore;
        if (nbk > kc) nbk = kc;
        for (int64_t c = 0; c < nbk; c++) {
          double s = 0;
          for (int j = 0; j < d; j++) s += (double)qv[j] * x->exact[blk[c].row * d + j];
          blk[c].s = s;
        }
      }
      memcpy(all + na, blk, sizeof(cand) * (size_t)nbk);
      na += nbk;
    }
    qsort(all, (size_t)na, sizeof(cand), cand_cmp_id);
    for (int r = 0; r < k; r++) {
      rs[(size_t)qi * k + r] = r < na ? all[r].s : -INFINITY;
      ri[(size_t)qi * k + r] = r < na ? all[r].id : -1;
    }
  }
  free(all);
  free(blk);
}

/* The true score of id (searching the blocks; stored values, or exact when
 * the block is rescored). NAN when not found. */
static double score_of(const vs_block *bl, int nb, const float *qv, int64_t id) {
  for (int b = 0; b < nb; b++)
    for (int64_t r = 0; r < bl[b].n; r++)
      if (bl[b].ids[r] == id) {
        double s = 0;
        for (int j = 0; j < bl[b].d; j++)
          s += (double)qv[j] * (bl[b].dtype != VS_F32 && bl[b].exact ? bl[b].exact[r * bl[b].d + j]
                                                                      : stored(&bl[b], (size_t)r * bl[b].d + j));
        return s;
      }
  return NAN;
}

/* Runs vs_search and compares with the reference: exact (bits) or within tol. */
static int check_search(const char *what, const vs_block *bl, int nb, const float *q, int nq,
                        int k, int64_t lo, int64_t hi, int rescore, double tol, float *os,
                        int64_t *oi) {
  foil_err err = {0};
  int rc = vs_search(bl, nb, q, nq, k, lo, hi, rescore, os, oi, &err);
  CHECKF(rc == 0, "%s: %s", what, err.msg);
  if (rc) return 1;
  double *rs = malloc(sizeof(double) * (size_t)nq * k);
  int64_t *ri = malloc(sizeof(int64_t) * (size_t)nq * k);
  reference(bl, nb, q, nq, k, lo, hi, rescore, rs, ri);
  int bad = 0;
  for (int qi = 0; qi < nq; qi++)
    for (int r = 0; r < k; r++) {
      size_t i = (size_t)qi * k + r;
      if (tol == 0) {
        if (oi[i] != ri[i] || (double)os[i] != rs[i]) {
          if (bad < 3)
            fprintf(stderr, "%s: q %d rank %d: foil (%lld, %.9g) ref (%lld, %.9g)\n", what, qi, r,
                    (long long)oi[i], os[i], (long long)ri[i], rs[i]);
          bad++;
        }
        continue;
      }
      if (ri[i] < 0 || oi[i] < 0) {
        if (ri[i] != oi[i]) bad++;
        continue;
      }
      double truth = score_of(bl, nb, q + (size_t)qi * bl[0].d, oi[i]);
      if (!(fabs(truth - os[i]) <= tol) || !(fabs(rs[i] - os[i]) <= tol) ||
          !in_filter(oi[i], lo, hi)) {
        if (bad < 3)
          fprintf(stderr, "%s: q %d rank %d: foil (%lld, %.9g, true %.9g) ref (%lld, %.9g)\n",
                  what, qi, r, (long long)oi[i], os[i], truth, (long long)ri[i], rs[i]);
        bad++;
      }
      if (r > 0 && (os[i] > os[i - 1] || (os[i] == os[i - 1] && oi[i] < oi[i - 1]))) bad++;
    }
  CHECKF(bad == 0, "%s: %d entries differ from the reference", what, bad);
  free(rs);
  free(ri);
  return bad;
}

/* Integer-valued data with planted ties: every score is exact in float32. */
static void make_int_rows(float *x, int64_t n, int d, int amp) {
  for (int64_t r = 0; r < n; r++) {
    if (r > 3 && prng_int(6) == 0) { /* a duplicate of an earlier row */
      memcpy(x + r * d, x + (int64_t)prng_int((int)r) * d, sizeof(float) * d);
      continue;
    }
    for (int j = 0; j < d; j++) x[r * d + j] = (float)(prng_int(2 * amp + 1) - amp);
  }
}

static void shuffled_ids(int64_t *ids, int64_t n, int64_t base, int64_t stride) {
  for (int64_t i = 0; i < n; i++) ids[i] = base + i * stride;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = prng_int((int)(i + 1)), t = ids[i];
    ids[i] = ids[j];
    ids[j] = t;
  }
}

/* Exact data: three blocks (f32, f16, int8), d 37 (tails of every SIMD
 * width), 1 / 3 / 300 queries, filters, k up to beyond all rows. */
static void test_exact_ties(void) {
  const int d = 37, nqmax = 300;
  const int64_t ns[3] = {1300, 517, 3};
  prng_seed(11);
  tblock t[3];
  float *q = malloc(sizeof(float) * nqmax * d);
  for (int i = 0; i < nqmax * d; i++) q[i] = (float)(prng_int(5) - 2);
  const int64_t base = 0;
  for (int b = 0; b < 3; b++) {
    float *x = malloc(sizeof(float) * ns[b] * d);
    int64_t *ids = malloc(sizeof(int64_t) * ns[b]);
    make_int_rows(x, ns[b], d, 3);
    shuffled_ids(ids, ns[b], base + b, 3); /* blocks interleave their ids */
    /* int8 with scale 0.5: integer rows times 2 stay exact */
    if (b == 2)
      for (int64_t i = 0; i < ns[b] * d; i++) x[i] *= 0.5f;
    tblock_make(&t[b], (vs_dtype)b, x, ns[b], d, ids, 0.5f, NULL);
    free(x);
    free(ids);
  }
  vs_block bl[3] = {t[0].b, t[1].b, t[2].b};
  const int kmax = 2000;
  float *os = malloc(sizeof(float) * nqmax * kmax);
  int64_t *oi = malloc(sizeof(int64_t) * nqmax * kmax);
  const int nqs[3] = {1, 3, 300};
  for (int a = 0; a < 3; a++) {
    char what[96];
    snprintf(what, sizeof what, "exact nq %d k 10", nqs[a]);
    check_search(what, bl, 3, q, nqs[a], 10, 1, 0, 0, 0, os, oi);
    snprintf(what, sizeof what, "exact nq %d k 1 filter", nqs[a]);
    check_search(what, bl, 3, q, nqs[a], 1, 500, 2500, 0, 0, os, oi);
    snprintf(what, sizeof what, "exact nq %d k 50 narrow filter", nqs[a]);
    check_search(what, bl, 3, q, nqs[a], 50, 1000, 1040, 0, 0, os, oi);
    snprintf(what, sizeof what, "exact nq %d k > n", nqs[a]);
    check_search(what, bl, 3, q, nqs[a] > 3 ? 20 : nqs[a], kmax, 1, 0, 0, 0, os, oi);
  }
  /* one block alone, each dtype, k > its rows */
  for (int b = 0; b < 3; b++) {
    char what[64];
    snprintf(what, sizeof what, "exact dtype %d alone", b);
    check_search(what, &bl[b], 1, q, 5, 8, 1, 0, 0, 0, os, oi);
  }
  for (int b = 0; b < 3; b++) tblock_free(&t[b]);
  free(q);
  free(os);
  free(oi);
}

/* Random real-valued rows (several items per block, d 64 and 100), within
 * tolerance; duplicate rows planted. */
static void test_random(void) {
  prng_seed(12);
  const int dims[2] = {64, 100};
  for (int di = 0; di < 2; di++) {
    const int d = dims[di], nq = 260;
    const int64_t n = 2100;
    float *x = malloc(sizeof(float) * n * d), *q = malloc(sizeof(float) * nq * d);
    int64_t *ids = malloc(sizeof(int64_t) * n);
    for (int64_t i = 0; i < n * d; i++) x[i] = prng_unif();
    for (int r = 0; r < 40; r++) memcpy(x + (5 + 50 * r) * d, x + r * d, sizeof(float) * d);
    for (int i = 0; i < nq * d; i++) q[i] = prng_unif();
    shuffled_ids(ids, n, 7, 1);
    float *os = malloc(sizeof(float) * nq * 20);
    int64_t *oi = malloc(sizeof(int64_t) * nq * 20);
    for (int dt = 0; dt < 3; dt++) {
      tblock t;
      tblock_make(&t, (vs_dtype)dt, x, n, d, ids, 0, NULL);
      char what[64];
      snprintf(what, sizeof what, "random d %d dtype %d batch", d, dt);
      check_search(what, &t.b, 1, q, nq, 20, 1, 0, 0, 1e-4, os, oi);
      snprintf(what, sizeof what, "random d %d dtype %d single", d, dt);
      check_search(what, &t.b, 1, q, 1, 20, 1, 0, 0, 1e-4, os, oi);
      check_search(what, &t.b, 1, q + d, 1, 20, 100, 900, 0, 1e-4, os, oi);
      tblock_free(&t);
    }
    free(x);
    free(q);
    free(ids);
    free(os);
    free(oi);
  }
}

/* Planted duplicates in random data: both copies come back, adjacent, with
 * equal scores, lower id first — on both scoring paths. */
static void test_duplicates(void) {
  prng_seed(13);
  const int d = 48, nq = 40;
  const int64_t n = 1200;
  float *x = malloc(sizeof(float) * n * d), *q = malloc(sizeof(float) * nq * d);
  int64_t *ids = malloc(sizeof(int64_t) * n);
  for (int i = 0; i < nq * d; i++) q[i] = prng_unif();
  for (int64_t i = 0; i < n * d; i++) x[i] = prng_unif() * 0.1f;
  /* row 1000 + i copies query i's direction scaled up: the best row; row
   * 3 + 7i is the same vector, so two rows with equal bits lead */
  for (int i = 0; i < nq; i++) {
    for (int j = 0; j < d; j++) x[(1000 + i) * d + j] = q[i * d + j];
    memcpy(x + (3 + 7 * i) * d, x + (1000 + i) * d, sizeof(float) * d);
  }
  for (int64_t i = 0; i < n; i++) ids[i] = 5000 - i; /* the later row has the lower id */
  tblock t;
  tblock_make(&t, VS_F32, x, n, d, ids, 0, NULL);
  float os[40 * 4];
  int64_t oi[40 * 4];
  const int nqs[2] = {1, nq};
  for (int a = 0; a < 2; a++) {
    foil_err err;
    CHECK(vs_search(&t.b, 1, q, nqs[a], 4, 1, 0, 0, os, oi, &err) == 0);
    int bad = 0;
    for (int i = 0; i < nqs[a]; i++)
      bad += !(oi[i * 4] == 5000 - (1000 + i) && oi[i * 4 + 1] == 5000 - (3 + 7 * i) &&
               os[i * 4] == os[i * 4 + 1]);
    CHECKF(bad == 0, "nq %d: %d queries do not lead with their two equal rows", nqs[a], bad);
  }
  tblock_free(&t);
  free(x);
  free(q);
  free(ids);
}

/* Rescoring: int8 / float16 rows with perturbed integers; exact holds the
 * true integers, so every score is exact and the candidate procedure is
 * reproduced bit for bit. Several blocks of all three dtypes. */
static void test_rescore(void) {
  prng_seed(14);
  const int d = 40, nq = 270;
  const int64_t ns[4] = {900, 1100, 600, 70};
  const vs_dtype dts[4] = {VS_I8, VS_F16, VS_F32, VS_I8};
  tblock t[4];
  for (int b = 0; b < 4; b++) {
    float *ex = malloc(sizeof(float) * ns[b] * d), *st = malloc(sizeof(float) * ns[b] * d);
    int64_t *ids = malloc(sizeof(int64_t) * ns[b]);
    make_int_rows(ex, ns[b], d, 4);
    for (int64_t i = 0; i < ns[b] * d; i++) st[i] = ex[i] + (float)(prng_int(3) - 1);
    shuffled_ids(ids, ns[b], b, 4);
    tblock_make(&t[b], dts[b], st, ns[b], d, ids, 1.0f, b == 3 ? NULL : ex);
    free(ex);
    free(st);
    free(ids);
  }
  float *q = malloc(sizeof(float) * nq * d);
  for (int i = 0; i < nq * d; i++) q[i] = (float)(prng_int(7) - 3);
  vs_block bl[4] = {t[0].b, t[1].b, t[2].b, t[3].b};
  float *os = malloc(sizeof(float) * nq * 12), *os2 = malloc(sizeof(float) * nq * 12);
  int64_t *oi = malloc(sizeof(int64_t) * nq * 12), *oi2 = malloc(sizeof(int64_t) * nq * 12);
  const int nqs[3] = {1, 2, nq};
  for (int a = 0; a < 3; a++) {
    char what[64];
    snprintf(what, sizeof what, "rescore nq %d x4", nqs[a]);
    check_search(what, bl, 4, q, nqs[a], 12, 1, 0, 0, 0, os, oi);
    check_search(what, bl, 4, q, nqs[a], 12, 1, 0, 4, 0, os2, oi2);
    CHECK(memcmp(oi, oi2, sizeof(int64_t) * nqs[a] * 12) == 0); /* 0 means 4 */
    snprintf(what, sizeof what, "rescore nq %d x1 filter", nqs[a]);
    check_search(what, bl, 4, q, nqs[a], 12, 300, 2000, 1, 0, os, oi);
    snprintf(what, sizeof what, "rescore nq %d x50", nqs[a]);
    check_search(what, bl, 4, q, nqs[a], 12, 1, 0, 50, 0, os, oi);
  }
  for (int b = 0; b < 4; b++) tblock_free(&t[b]);
  free(q);
  free(os);
  free(os2);
  free(oi);
  free(oi2);
}

/* Same bits for 1 and 2 threads and for any block order, on random data
 * (float sums whose bits depend on the summation order), both paths. */
static void test_determinism(void) {
  prng_seed(15);
  const int d = 96, nq = 300, k = 25, nb = 5;
  const int64_t ns[5] = {1537, 512, 1, 2049, 800};
  tblock t[5];
  for (int b = 0; b < nb; b++) {
    float *x = malloc(sizeof(float) * ns[b] * d), *ex = malloc(sizeof(float) * ns[b] * d);
    int64_t *ids = malloc(sizeof(int64_t) * ns[b]);
    for (int64_t i = 0; i < ns[b] * d; i++) ex[i] = prng_unif(), x[i] = ex[i] + 0.01f * prng_unif();
    shuffled_ids(ids, ns[b], b, nb);
    tblock_make(&t[b], (vs_dtype)(b % 3), x, ns[b], d, ids, 0, b == 4 ? ex : NULL);
    free(x);
    free(ex);
    free(ids);
  }
  float *q = malloc(sizeof(float) * nq * d);
  for (int i = 0; i < nq * d; i++) q[i] = prng_unif();
  size_t m = (size_t)nq * k;
  float *s0 = malloc(sizeof(float) * m), *s1 = malloc(sizeof(float) * m);
  int64_t *i0 = malloc(sizeof(int64_t) * m), *i1 = malloc(sizeof(int64_t) * m);
  const int nqs[2] = {1, nq};
  for (int a = 0; a < 2; a++) {
    vs_block bl[5];
    for (int b = 0; b < nb; b++) bl[b] = t[b].b;
    foil_err err;
    kernels_set_threads(1);
    CHECK(vs_search(bl, nb, q, nqs[a], k, 1, 0, 3, s0, i0, &err) == 0);
    for (int trial = 0; trial < 4; trial++) {
      kernels_set_threads(1 + trial % 2);
      for (int b = nb - 1; b > 0; b--) { /* shuffle the block order */
        int j = prng_int(b + 1);
        vs_block tmp = bl[b];
        bl[b] = bl[j];
        bl[j] = tmp;
      }
      CHECK(vs_search(bl, nb, q, nqs[a], k, 1, 0, 3, s1, i1, &err) == 0);
      size_t mm = (size_t)nqs[a] * k;
      CHECKF(memcmp(s0, s1, sizeof(float) * mm) == 0 && memcmp(i0, i1, sizeof(int64_t) * mm) == 0,
             "nq %d trial %d (%d threads): bits differ", nqs[a], trial, 1 + trial % 2);
    }
  }
  /* a score is a function of (query, row): a batch gives every query the
   * bits it gets alone (the batch's s0/i0 are the last computed above) */
  int bad = 0;
  vs_block bl0[5];
  for (int b = 0; b < nb; b++) bl0[b] = t[b].b;
  for (int qi = 0; qi < nq; qi += 7) {
    foil_err err;
    float s[25];
    int64_t id[25];
    CHECK(vs_search(bl0, nb, q + (size_t)qi * d, 1, k, 1, 0, 3, s, id, &err) == 0);
    bad += memcmp(s, s0 + (size_t)qi * k, sizeof s) != 0 || memcmp(id, i0 + (size_t)qi * k, sizeof id) != 0;
  }
  CHECKF(bad == 0, "%d queries get other bits alone than in a batch", bad);
  kernels_set_threads(0);
  for (int b = 0; b < nb; b++) tblock_free(&t[b]);
  free(q);
  free(s0);
  free(s1);
  free(i0);
  free(i1);
}

/* Alone vs batch where d has a scalar tail (not a multiple of any SIMD
 * width: 7, 13, 37, 100, 257): a query searched alone (the direct path,
 * rows scored four at a time by scan_dot) gets the bits it gets in a batch
 * of 24 (the sgemm path, whose selected rows scan_dot rescores one at a
 * time), for float32, float16 and int8 blocks (plain, and int8 rescored
 * from exact), at 1 and 2 threads. 1003 rows: two chunks, the second
 * ending in rows the direct path scores one at a time. The tail's
 * multiply-add must be the same operation in both loops whatever the
 * compiler contracts (kernels/cpu/scan.c). */
static void test_alone_batch_tails(void) {
  prng_seed(17);
  const int dims[5] = {7, 13, 37, 100, 257}, nq = 24, k = 10;
  const int64_t n = 1003;
  for (int di = 0; di < 5; di++) {
    const int d = dims[di];
    float *x = malloc(sizeof(float) * n * d), *q = malloc(sizeof(float) * nq * d);
    int64_t *ids = malloc(sizeof(int64_t) * n);
    for (int64_t i = 0; i < n * d; i++) x[i] = prng_unif();
    for (int i = 0; i < nq * d; i++) q[i] = prng_unif();
    shuffled_ids(ids, n, 3, 2);
    float *s0 = malloc(sizeof(float) * nq * k), *s1 = malloc(sizeof(float) * nq * k);
    int64_t *i0 = malloc(sizeof(int64_t) * nq * k), *i1 = malloc(sizeof(int64_t) * nq * k);
    for (int c = 0; c < 4; c++) { /* f32, f16, i8 plain; i8 rescored from exact */
      tblock t;
      tblock_make(&t, c == 3 ? VS_I8 : (vs_dtype)c, x, n, d, ids, 0, c == 3 ? x : NULL);
      for (int T = 1; T <= 2; T++) {
        kernels_set_threads(T);
        foil_err err;
        CHECK(vs_search(&t.b, 1, q, nq, k, 1, 0, 2, s0, i0, &err) == 0);
        if (T == 2)
          CHECKF(memcmp(s0, s1, sizeof(float) * nq * k) == 0 &&
                     memcmp(i0, i1, sizeof(int64_t) * nq * k) == 0,
                 "d %d case %d: batch bits differ at 1 and 2 threads", d, c);
        int bad = 0;
        for (int qi = 0; qi < nq; qi++) {
          float s[10];
          int64_t id[10];
          CHECK(vs_search(&t.b, 1, q + (size_t)qi * d, 1, k, 1, 0, 2, s, id, &err) == 0);
          bad += memcmp(s, s0 + (size_t)qi * k, sizeof s) != 0 ||
                 memcmp(id, i0 + (size_t)qi * k, sizeof id) != 0;
        }
        CHECKF(bad == 0, "d %d case %d (%s) T %d: %d of %d queries get other bits alone than in a batch",
               d, c, c == 0 ? "f32" : c == 1 ? "f16" : c == 2 ? "i8" : "i8 rescored", T, bad, nq);
        memcpy(s1, s0, sizeof(float) * nq * k);
        memcpy(i1, i0, sizeof(int64_t) * nq * k);
      }
      tblock_free(&t);
    }
    free(x);
    free(q);
    free(ids);
    free(s0);
    free(s1);
    free(i0);
    free(i1);
  }
  kernels_set_threads(0);
}

static void test_errors(void) {
  float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, q[4] = {1, 0, 0, 0}, os[4];
  int64_t ids[2] = {0, 1}, oi[4];
  int8_t x8[8] = {0};
  vs_block b = {VS_F32, 2, 4, x, NULL, NULL, ids};
  foil_err err;
  CHECK(vs_search(&b, 1, q, 1, 0, 1, 0, 0, os, oi, &err) == FOIL_EINVAL);
  CHECK(vs_search(&b, 1, q, 1, 2, 1, 0, -1, os, oi, &err) == FOIL_EINVAL);
  vs_block two[2] = {b, b};
  two[1].d = 2;
  CHECK(vs_search(two, 2, q, 1, 2, 1, 0, 0, os, oi, &err) == FOIL_EINVAL);
  vs_block i8 = {VS_I8, 2, 4, x8, NULL, NULL, ids};
  CHECK(vs_search(&i8, 1, q, 1, 2, 1, 0, 0, os, oi, &err) == FOIL_EINVAL);
  CHECKF(strstr(err.msg, "scale") != NULL, "%s", err.msg);
  vs_block bad = b;
  bad.dtype = (vs_dtype)7;
  CHECK(vs_search(&bad, 1, q, 1, 2, 1, 0, 0, os, oi, &err) == FOIL_EINVAL);
  /* no blocks, an empty block, no queries: empty lists / nothing */
  CHECK(vs_search(NULL, 0, q, 1, 4, 1, 0, 0, os, oi, &err) == 0);
  CHECK(oi[0] == -1 && oi[3] == -1 && isinf(os[3]));
  vs_block empty = {VS_F16, 0, 4, NULL, NULL, NULL, NULL};
  vs_block pair[2] = {empty, b};
  CHECK(vs_search(pair, 2, q, 1, 4, 1, 0, 0, os, oi, &err) == 0);
  CHECK(oi[0] == 1 && os[0] == 5.0f && oi[1] == 0 && os[1] == 1.0f && oi[2] == -1);
  CHECK(vs_search(&b, 1, NULL, 0, 4, 1, 0, 0, NULL, NULL, &err) == 0);
  /* a negative id never comes back */
  int64_t neg[2] = {-5, 9};
  vs_block nb = {VS_F32, 2, 4, x, NULL, NULL, neg};
  CHECK(vs_search(&nb, 1, q, 1, 4, 1, 0, 0, os, oi, &err) == 0);
  CHECK(oi[0] == 9 && oi[1] == -1);
}

/* vs_to_i8 on rows with NaN and ±inf: the scale from the finite elements,
 * NaN -> 0, ±inf -> ±127, a row without a nonzero finite element -> 0. */
static void test_i8_nonfinite(void) {
  const float inf = INFINITY, nan = NAN;
  const float x[5 * 4] = {1, nan, -2, 0.5f,        /* scale 2/127: 63.5 -> 64 (even), 31.75 -> 32 */
                          inf, 1, -inf, -0.5f,     /* scale 1/127: -63.5 -> -64 */
                          nan, nan, inf, 0,        /* no finite nonzero: scale 0, zeros */
                          -nan, 3, 0, -3,          /* scale 3/127 */
                          0.25f, -1, 0.5f, 0.125f}; /* finite: as before */
  const int8_t want[5 * 4] = {64, 0, -127, 32, 127, 127, -127, -64, 0, 0, 0, 0, 0, 127, 0, -127,
                              32, -127, 64, 16};
  const float want_scale[5] = {2.0f / 127.0f, 1.0f / 127.0f, 0.0f, 3.0f / 127.0f, 1.0f / 127.0f};
  int8_t q8[5 * 4];
  float sc[5];
  memset(q8, 99, sizeof q8);
  vs_to_i8(q8, sc, x, 5, 4);
  for (int r = 0; r < 5; r++)
    CHECKF(isfinite(sc[r]) && sc[r] == want_scale[r], "row %d: scale %g, want %g", r, sc[r], want_scale[r]);
  for (int i = 0; i < 5 * 4; i++) CHECKF(q8[i] == want[i], "element %d: %d, want %d", i, q8[i], want[i]);
  /* searched: every score finite */
  int64_t ids[5] = {0, 1, 2, 3, 4};
  vs_block b = {VS_I8, 5, 4, q8, sc, NULL, ids};
  float qv[4] = {0.5f, -1, 0.25f, 2}, os[5];
  int64_t oi[5];
  foil_err err;
  CHECK(vs_search(&b, 1, qv, 1, 5, 1, 0, 0, os, oi, &err) == 0);
  for (int i = 0; i < 5; i++) CHECKF(isfinite(os[i]) && oi[i] >= 0, "rank %d: id %lld score %g", i, (long long)oi[i], os[i]);
}

/* Query groups: the same bits for any list budget. Blocks of every kind
 * (float32; float16 and int8 rescored from exact; int8 not rescored), d 13,
 * 600 queries, a filter. */
static void test_groups(void) {
  prng_seed(16);
  const int d = 13, nq = 600, k = 7, rescore = 3, nb = 4;
  const int64_t ns[4] = {1300, 900, 70, 530};
  const vs_dtype dts[4] = {VS_F32, VS_F16, VS_I8, VS_I8};
  tblock t[4];
  for (int b = 0; b < nb; b++) {
    float *x = malloc(sizeof(float) * ns[b] * d), *ex = malloc(sizeof(float) * ns[b] * d);
    int64_t *ids = malloc(sizeof(int64_t) * ns[b]);
    for (int64_t i = 0; i < ns[b] * d; i++) ex[i] = prng_unif(), x[i] = ex[i] + 0.02f * prng_unif();
    shuffled_ids(ids, ns[b], b, nb);
    tblock_make(&t[b], dts[b], x, ns[b], d, ids, 0, b == 1 || b == 2 ? ex : NULL);
    free(x);
    free(ex);
    free(ids);
  }
  vs_block bl[4] = {t[0].b, t[1].b, t[2].b, t[3].b};
  float *q = malloc(sizeof(float) * nq * d);
  for (int i = 0; i < nq * d; i++) q[i] = prng_unif();
  size_t m = (size_t)nq * k;
  float *s0 = malloc(sizeof(float) * m), *s1 = malloc(sizeof(float) * m);
  int64_t *i0 = malloc(sizeof(int64_t) * m), *i1 = malloc(sizeof(int64_t) * m);
  /* list slots per query and thread: k (plain blocks) + the largest
   * k·rescore of the rescored ones (block 2 has only 70 rows) */
  const size_t slots = (size_t)k + (size_t)k * rescore, slot_b = sizeof(float) + sizeof(int64_t);
  for (int T = 1; T <= 2; T++) {
    kernels_set_threads(T);
    const size_t per_q = (size_t)T * slots * slot_b;
    foil_err err;
    vs_search_stats st;
    CHECK(vs_search(bl, nb, q, nq, k, 10, 2000, rescore, s0, i0, &err) == 0);
    CHECK(vs_search_budget(bl, nb, q, nq, k, 10, 2000, rescore, s1, i1, VS_LIST_BUDGET, &st, &err) == 0);
    CHECKF(st.groups == 1 && st.group_queries == nq && st.list_bytes == (size_t)nq * per_q,
           "T %d: one group of %d: got %d groups of %d, %zu bytes", T, nq, st.groups,
           st.group_queries, st.list_bytes);
    CHECK(memcmp(s0, s1, sizeof(float) * m) == 0 && memcmp(i0, i1, sizeof(int64_t) * m) == 0);
    /* budget -> queries per group: 1 byte and one query's lists -> the
     * least, 5 (SCAN_DIRECT_MAX + 1: the sgemm path, as the whole call),
     * 7.5 queries' -> 7, 300 -> one whole tile of 256 */
    const size_t budgets[4] = {1, per_q, 7 * per_q + per_q / 2, 300 * per_q};
    const int want_g[4] = {SCAN_DIRECT_MAX + 1, SCAN_DIRECT_MAX + 1, 7, 256};
    for (int a = 0; a < 4; a++) {
      memset(s1, 0, sizeof(float) * m);
      memset(i1, 0, sizeof(int64_t) * m);
      CHECK(vs_search_budget(bl, nb, q, nq, k, 10, 2000, rescore, s1, i1, budgets[a], &st, &err) == 0);
      CHECKF(st.group_queries == want_g[a] && st.groups == (nq + want_g[a] - 1) / want_g[a],
             "T %d budget %zu: %d groups of %d, want groups of %d", T, budgets[a], st.groups,
             st.group_queries, want_g[a]);
      CHECKF(st.list_bytes == (size_t)want_g[a] * per_q && (a < 2 || st.list_bytes <= budgets[a]),
             "T %d budget %zu: %zu bytes of lists", T, budgets[a], st.list_bytes);
      CHECKF(memcmp(s0, s1, sizeof(float) * m) == 0 && memcmp(i0, i1, sizeof(int64_t) * m) == 0,
             "T %d budget %zu (%d groups): bits differ from one group", T, budgets[a], st.groups);
    }
    /* fewer queries than the least group: one group of all, on their
     * own (direct) path */
    float s3[3 * 7], s4[3 * 7];
    int64_t i3[3 * 7], i4[3 * 7];
    CHECK(vs_search(bl, nb, q, 3, k, 10, 2000, rescore, s3, i3, &err) == 0);
    CHECK(vs_search_budget(bl, nb, q, 3, k, 10, 2000, rescore, s4, i4, 1, &st, &err) == 0);
    CHECKF(st.groups == 1 && st.group_queries == 3, "T %d, 3 queries: %d groups of %d", T, st.groups,
           st.group_queries);
    CHECK(memcmp(s3, s4, sizeof s3) == 0 && memcmp(i3, i4, sizeof i3) == 0);
    /* rescored blocks only: no lists for plain blocks */
    CHECK(vs_search_budget(bl + 1, 2, q, nq, k, 1, 0, rescore, s1, i1, VS_LIST_BUDGET, &st, &err) == 0);
    CHECKF(st.list_bytes == (size_t)nq * T * (size_t)k * rescore * slot_b,
           "T %d, rescored blocks only: %zu bytes of lists", T, st.list_bytes);
    /* plain blocks only: no candidate lists */
    vs_block plain[2] = {bl[0], bl[3]};
    CHECK(vs_search_budget(plain, 2, q, nq, k, 1, 0, rescore, s1, i1, VS_LIST_BUDGET, &st, &err) == 0);
    CHECKF(st.list_bytes == (size_t)nq * T * (size_t)k * slot_b,
           "T %d, plain blocks only: %zu bytes of lists", T, st.list_bytes);
  }
  kernels_set_threads(0);
  for (int b = 0; b < nb; b++) tblock_free(&t[b]);
  free(q);
  free(s0);
  free(s1);
  free(i0);
  free(i1);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_NO_RSS 1 /* the sanitizer's allocator and shadow distort RSS */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define TEST_NO_RSS 1
#endif
#endif

#ifndef TEST_NO_RSS
/* A /proc/self/status field in kB, or -1. */
static long status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl)) v = atol(line + kl);
  fclose(f);
  return v;
}
#endif

/* Peak memory of one vs_search as mining sizes it: 2^17 queries, k 16, a
 * float16 block rescored from exact with rescore 8, 2 threads. Without
 * query groups its lists would take 2·2^17·(16 + 128)·12 B = 432 MiB; the
 * peak RSS growth (VmHWM after the call, reset by clear_refs, minus VmRSS
 * before it) must stay within VS_LIST_BUDGET plus 16 MiB of scratch and
 * slack. The filter excludes every row: the lists are allocated and
 * initialized all the same, and the call stays cheap. */
static void test_peak_memory(void) {
#ifdef TEST_NO_RSS
  printf("  (skipped: RSS under a sanitizer)\n");
#else
  const int d = 8, nq = 1 << 17, k = 16, rescore = 8;
  const int64_t n = 512; /* >= k·rescore: the candidate lists take 128 slots */
  FILE *cr = fopen("/proc/self/clear_refs", "w");
  if (!cr || status_kb("VmHWM:") < 0) {
    if (cr) fclose(cr);
    printf("  (skipped: no /proc/self/clear_refs)\n");
    return;
  }
  prng_seed(17);
  float *x = malloc(sizeof(float) * n * d), *q = malloc(sizeof(float) * (size_t)nq * d);
  int64_t *ids = malloc(sizeof(int64_t) * n);
  for (int64_t i = 0; i < n * d; i++) x[i] = prng_unif();
  for (size_t i = 0; i < (size_t)nq * d; i++) q[i] = prng_unif();
  for (int64_t i = 0; i < n; i++) ids[i] = i;
  tblock t;
  tblock_make(&t, VS_F16, x, n, d, ids, 0, x);
  size_t m = (size_t)nq * k;
  float *os = malloc(sizeof(float) * m);
  int64_t *oi = malloc(sizeof(int64_t) * m);
  memset(os, 0xff, sizeof(float) * m); /* resident before the measure */
  memset(oi, 0xff, sizeof(int64_t) * m);
  kernels_set_threads(2);
  foil_err err;
  /* warm: both threads' sgemm buffers and OpenMP pools */
  for (int w = 0; w < 3; w++) CHECK(vs_search(&t.b, 1, q, 600, k, 1, 0, rescore, os, oi, &err) == 0);
  fputs("5", cr); /* VmHWM := VmRSS */
  fclose(cr);
  long rss0 = status_kb("VmRSS:");
  CHECK(vs_search(&t.b, 1, q, nq, k, 1000, 2000, rescore, os, oi, &err) == 0);
  long grew_kb = status_kb("VmHWM:") - rss0;
  long limit_kb = (long)(VS_LIST_BUDGET >> 10) + 16 * 1024;
  CHECKF(grew_kb <= limit_kb, "vs_search's peak RSS grew by %.1f MiB, limit %.1f MiB",
         grew_kb / 1024.0, limit_kb / 1024.0);
  printf("  peak RSS growth %.1f MiB (lists without groups: %.1f MiB)\n", grew_kb / 1024.0,
         2.0 * nq * (k + k * rescore) * 12 / 1048576.0);
  kernels_set_threads(0);
  tblock_free(&t);
  free(x);
  free(q);
  free(ids);
  free(os);
  free(oi);
#endif
}

int main(void) {
  RUN(test_exact_ties);
  RUN(test_random);
  RUN(test_duplicates);
  RUN(test_rescore);
  RUN(test_determinism);
  RUN(test_alone_batch_tails);
  RUN(test_errors);
  RUN(test_i8_nonfinite);
  RUN(test_groups);
  RUN(test_peak_memory);
  TEST_EXIT();
}
