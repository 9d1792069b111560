/* test_gpu_search.c — exact top-k search on the GPU (cuda_scan_topk)
 * against the CPU's lists (topk_merge / topk_offer) on the same scores.
 *
 * The vectors hold small integers, so every score is an exact integer in
 * fp32 on both sides and many scores tie: the lists must be IDENTICAL
 * (ids and scores, ties ranked by the lower id), across several tiles of
 * CUDA_SCAN_ROWS rows, across two calls over two ranges, with the id
 * filter, with ids given as an array (scrambled, not consecutive), and with
 * a corpus smaller than K (empty slots id -1, -inf). */
#include "tests/gpu/gpu_test.h"

enum { NQ = 5, D = 16 };

static float *int_vectors(size_t n) {
  float *x = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) x[i] = (float)(int)(frand() * 3.5f);
  return x;
}

static int lists_equal(const char *what, const float *gs, const int64_t *gi, const float *cs,
                       const int64_t *ci, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (gi[i] != ci[i] || !(gs[i] == cs[i])) {
      test_checks++;
      test_failures++;
      fprintf(stderr, "%s: slot %zu: gpu (%g, %lld) cpu (%g, %lld)\n", what, i, gs[i],
              (long long)gi[i], cs[i], (long long)ci[i]);
      return 0;
    }
  test_checks++;
  return 1;
}

/* given_ids: row j's id is a scrambled, non-consecutive one passed as an
 * array (as shards of foil-serve have), else id0 + j */
static void run(int n, int K, int64_t id_lo, int64_t id_hi, int split, int given_ids, const char *what) {
  const int64_t id0 = 1000;
  float *q = int_vectors((size_t)NQ * D), *x = int_vectors((size_t)n * D);
  float *scores = malloc(sizeof(float) * NQ * (size_t)n + 1);
  matmul_forward(scores, q, x, NULL, NQ, D, n); /* exact integers */
  float *cs = malloc(sizeof(float) * NQ * K);
  int64_t *ci = malloc(sizeof(int64_t) * NQ * K);
  int64_t *ids = malloc(sizeof(int64_t) * n + 1);
  for (int j = 0; j < n; j++) ids[j] = given_ids ? (int64_t)((j * 7919LL) % n) * 3 + 5 : id0 + j;
  topk_init(cs, ci, NQ, K);
  if (id_lo > id_hi && !given_ids) {
    topk_merge(cs, ci, NQ, K, scores, n, (size_t)n, id0);
  } else {
    for (int i = 0; i < NQ; i++)
      topk_offer(cs + (size_t)i * K, ci + (size_t)i * K, K, scores + (size_t)i * n, n, ids, id_lo,
                 id_hi, -1);
  }
  int64_t *dids = given_ids ? dev_from(ids, sizeof(int64_t) * n) : NULL;
  float *dq = dev_from(q, sizeof(float) * NQ * D), *dx = dev_from(x, sizeof(float) * n * D);
  float *ds = dev_from(NULL, sizeof(float) * NQ * K);
  int64_t *di = dev_from(NULL, sizeof(int64_t) * NQ * K);
  float *scr = dev_from(NULL, sizeof(float) * cuda_scan_topk_scratch(NQ));
  cuda_topk_init(ds, di, NQ, K);
  if (split) { /* two ranges, the second first: the lists depend only on the set */
    int h = n / 2;
    cuda_scan_topk(ds, di, NQ, K, dq, D, dx + (size_t)h * D, n - h, dids ? dids + h : NULL, id0 + h,
                   id_lo, id_hi, scr);
    cuda_scan_topk(ds, di, NQ, K, dq, D, dx, h, dids, id0, id_lo, id_hi, scr);
  } else {
    cuda_scan_topk(ds, di, NQ, K, dq, D, dx, n, dids, id0, id_lo, id_hi, scr);
  }
  float *gs = host_from(ds, sizeof(float) * NQ * K);
  int64_t *gi = host_from(di, sizeof(int64_t) * NQ * K);
  lists_equal(what, gs, gi, cs, ci, (size_t)NQ * K);
  cuda_free(dq); cuda_free(dx); cuda_free(ds); cuda_free(di); cuda_free(scr); cuda_free(dids);
  free(q); free(x); free(scores); free(cs); free(ci); free(gs); free(gi); free(ids);
}

static void test_tiles(void) { run(2 * CUDA_SCAN_ROWS + 1001, 10, 1, 0, 0, 0, "3 tiles, K 10"); }
static void test_large_k(void) { run(CUDA_SCAN_ROWS + 4500, 200, 1, 0, 0, 0, "2 tiles, K 200"); }
static void test_split(void) { run(CUDA_SCAN_ROWS + 70001, 32, 1, 0, 1, 0, "two ranges, K 32"); }
static void test_filter(void) { run(100000, 16, 1000 + 5000, 1000 + 90000, 0, 0, "id filter"); }
static void test_small(void) { run(7, 10, 1, 0, 0, 0, "corpus smaller than K"); }
static void test_given_ids(void) {
  run(CUDA_SCAN_ROWS + 3000, 20, 1, 0, 1, 1, "id array, two ranges");
  run(90000, 12, 40000, 200000, 0, 1, "id array, filter");
}

int main(void) {
  gpu_require();
  RUN(test_tiles);
  RUN(test_large_k);
  RUN(test_split);
  RUN(test_filter);
  RUN(test_small);
  RUN(test_given_ids);
  cuda_shutdown();
  TEST_EXIT();
}
