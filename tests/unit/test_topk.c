/* test_topk.c — the streaming top-k kernel (kernels.h topk_init/topk_merge).
 *
 * What it proves:
 *  - hand-computed lists, including the tie rule (equal scores: lower id
 *    first) when the lower id arrives in a later chunk;
 *  - a corpus smaller than K leaves empty slots (id -1, -inf); NaN never
 *    enters; -inf scores do enter an empty slot; the row stride is honoured;
 *  - on scores with many ties the lists equal a full sort by (score desc,
 *    id asc), whatever the chunk sizes, the chunk order and the thread count.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
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

static void test_hand(void) {
  /* 2 queries, K = 3, two chunks. */
  float ts[6];
  int64_t ti[6];
  topk_init(ts, ti, 2, 3);
  for (int i = 0; i < 6; i++) CHECK(ti[i] == -1 && isinf(ts[i]) && ts[i] < 0);
  /* chunk ids 10..13 */
  float c1[8] = {0.5f, 0.9f, 0.1f, 0.7f, /* q0 */
                 -1.0f, -2.0f, -0.5f, -3.0f /* q1 */};
  topk_merge(ts, ti, 2, 3, c1, 4, 4, 10);
  CHECK(ti[0] == 11 && ti[1] == 13 && ti[2] == 10);
  CHECK(ts[0] == 0.9f && ts[1] == 0.7f && ts[2] == 0.5f);
  CHECK(ti[3] == 12 && ti[4] == 10 && ti[5] == 11);
  /* chunk ids 0..1: q0 gets a 0.7 tie with id 13 (id 0 ranks before 13 and
   * pushes 10 out), then 0.5 for id 1, now below the worst entry. */
  float c2[4] = {0.7f, 0.5f, /* q0 */
                 -0.5f, -2.5f /* q1: tie with id 12 at -0.5: id 0 ranks first */};
  topk_merge(ts, ti, 2, 3, c2, 2, 2, 0);
  CHECK(ti[0] == 11 && ti[1] == 0 && ti[2] == 13);
  CHECK(ts[0] == 0.9f && ts[1] == 0.7f && ts[2] == 0.7f);
  CHECK(ti[3] == 0 && ti[4] == 12 && ti[5] == 10);
  /* A tie at the worst slot with a HIGHER id does not enter. */
  float c3[2] = {0.7f, -1.0f};
  topk_merge(ts, ti, 2, 3, c3, 1, 1, 20);
  CHECK(ti[2] == 13 && ti[5] == 10);
}

static void test_edges(void) {
  float ts[4];
  int64_t ti[4];
  topk_init(ts, ti, 1, 4);
  /* stride 5 with 3 columns used; a NaN and a -inf among them */
  float s[5] = {NAN, -INFINITY, 2.0f, 99.0f, 99.0f};
  topk_merge(ts, ti, 1, 4, s, 3, 5, 7);
  CHECK(ti[0] == 9 && ts[0] == 2.0f);
  CHECK(ti[1] == 8 && isinf(ts[1]));
  CHECK(ti[2] == -1 && ti[3] == -1); /* NaN (id 7) never entered */
  /* nothing happens on empty input */
  topk_merge(ts, ti, 1, 4, s, 0, 5, 100);
  topk_merge(ts, ti, 0, 4, s, 3, 5, 100);
  CHECK(ti[0] == 9 && ti[2] == -1);
  /* K = 1 */
  float t1;
  int64_t i1;
  topk_init(&t1, &i1, 1, 1);
  float s1[4] = {1, 3, 3, 2};
  topk_merge(&t1, &i1, 1, 1, s1, 4, 4, 0);
  CHECK(i1 == 1 && t1 == 3.0f);
}

typedef struct {
  float s;
  int64_t id;
} cand;
static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->s != y->s) return x->s > y->s ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* Many ties (scores on a grid of 7 values), random chunking and chunk
 * order, against a full sort; 1 vs 2 threads. */
static void test_random_chunks(void) {
  const int nq = 9, nc = 1500, K = 100;
  float *S = malloc(sizeof(float) * nq * nc);
  float *ts = malloc(sizeof(float) * nq * K), *ts2 = malloc(sizeof(float) * nq * K);
  int64_t *ti = malloc(sizeof(int64_t) * nq * K), *ti2 = malloc(sizeof(int64_t) * nq * K);
  float *blk = malloc(sizeof(float) * nq * nc);
  cand *c = malloc(sizeof(cand) * nc);
  prng_seed(5);
  for (int i = 0; i < nq * nc; i++) S[i] = (float)(prng_int(7) - 3) * 0.25f;
  for (int trial = 0; trial < 6; trial++) {
    /* cut [0,nc) into random chunks, then visit them in a shuffled order */
    int starts[64], n = 0, at = 0;
    while (at < nc && n < 63) {
      starts[n++] = at;
      at += 1 + prng_int(trial % 2 ? 400 : 60);
    }
    if (at < nc) starts[n++] = at;
    starts[n] = nc;
    int order[64];
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
      int j = prng_int(i + 1), t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    kernels_set_threads(1 + trial % 2);
    topk_init(ts, ti, nq, K);
    for (int b = 0; b < n; b++) {
      int c0 = starts[order[b]], c1 = starts[order[b] + 1];
      /* a chunk as the caller would have it: [nq, c1-c0], stride c1-c0 */
      for (int q = 0; q < nq; q++)
        memcpy(blk + (size_t)q * (c1 - c0), S + (size_t)q * nc + c0, sizeof(float) * (c1 - c0));
      topk_merge(ts, ti, nq, K, blk, c1 - c0, (size_t)(c1 - c0), c0);
    }
    int bad = 0;
    for (int q = 0; q < nq; q++) {
      for (int j = 0; j < nc; j++) c[j] = (cand){S[(size_t)q * nc + j], j};
      qsort(c, nc, sizeof *c, cand_cmp);
      for (int r = 0; r < K; r++)
        if (ti[q * K + r] != c[r].id || ts[q * K + r] != c[r].s) bad++;
    }
    CHECKF(bad == 0, "trial %d: %d entries differ from the full sort", trial, bad);
    if (trial == 0) {
      memcpy(ts2, ts, sizeof(float) * nq * K);
      memcpy(ti2, ti, sizeof(int64_t) * nq * K);
    } else {
      CHECK(memcmp(ti, ti2, sizeof(int64_t) * nq * K) == 0);
      CHECK(memcmp(ts, ts2, sizeof(float) * nq * K) == 0);
    }
  }
  /* whole matrix in one call with the full stride */
  topk_init(ts, ti, nq, K);
  topk_merge(ts, ti, nq, K, S, nc, nc, 0);
  CHECK(memcmp(ti, ti2, sizeof(int64_t) * nq * K) == 0);
  kernels_set_threads(0);
  free(S);
  free(ts);
  free(ts2);
  free(ti);
  free(ti2);
  free(blk);
  free(c);
}

int main(void) {
  RUN(test_hand);
  RUN(test_edges);
  RUN(test_random_chunks);
  TEST_EXIT();
}
