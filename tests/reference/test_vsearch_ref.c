/* test_vsearch_ref.c — vs_search against faiss-cpu's IndexFlatIP
 * (vsearch_faiss.py writes the files).
 *
 * float32 rows, batch (sgemm path) and one query at a time (dot path):
 *  - every score within 1e-5 of faiss's at the same rank;
 *  - identical ids wherever the scores are distinct: at rank r when foil's
 *    scores at r-1, r, r+1 (foil searches k+1) are more than 1e-5 apart,
 *    since two float32 summation orders may swap nearer scores;
 *  - "ties" (integer vectors: every sum exact, so scores are EQUAL bits):
 *    foil's scores equal faiss's; within a group of equal scores foil
 *    ranks the lower id first, while faiss promises no order among equal
 *    scores, so groups are compared as sets, and a group cut by rank k must
 *    hold the lowest ids of all rows with that score (brute force).
 * float16 and int8 rows (numpy's conversions), with and without rescoring
 * from the float32 copy: recall@10 against the exact ids, printed and held
 * to floors; a rescored hit's score equals the float32 search's bits.
 * Usage: test_vsearch_ref DIR   (exit 77: no files, .venv-faiss missing)
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/vsearch.h"
#include "tests/test.h"

static const char *dir;

static void *load(const char *cas, const char *what, size_t bytes) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.%s", dir, cas, what);
  FILE *f = fopen(path, "rb");
  void *p = malloc(bytes ? bytes : 1);
  size_t got = f && p ? fread(p, 1, bytes, f) : 0;
  if (f) fclose(f);
  CHECKF(got == bytes, "%s: %zu of %zu bytes", path, got, bytes);
  return p;
}

typedef struct {
  int n, d, nq, k;
  float *xb, *xq, *D, *scale;
  uint16_t *f16;
  int8_t *i8;
  int64_t *I, *ids;
} refcase;

static int load_case(refcase *c, const char *cas) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.meta", dir, cas);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int ok = fscanf(f, "%d %d %d %d", &c->n, &c->d, &c->nq, &c->k) == 4;
  fclose(f);
  if (!ok) return -1;
  size_t nd = (size_t)c->n * c->d;
  c->xb = load(cas, "xb.f32", nd * 4);
  c->xq = load(cas, "xq.f32", (size_t)c->nq * c->d * 4);
  c->f16 = load(cas, "xb.f16", nd * 2);
  c->i8 = load(cas, "xb.i8", nd);
  c->scale = load(cas, "xb.scale", (size_t)c->n * 4);
  c->D = load(cas, "D.f32", (size_t)c->nq * c->k * 4);
  c->I = load(cas, "I.i64", (size_t)c->nq * c->k * 8);
  c->ids = malloc(sizeof(int64_t) * c->n);
  for (int i = 0; i < c->n; i++) c->ids[i] = i;
  return 0;
}

static void free_case(refcase *c) {
  free(c->xb), free(c->xq), free(c->D), free(c->scale), free(c->f16), free(c->i8), free(c->I),
      free(c->ids);
}

/* foil's top-(k+1), batch (single = 0) or one query at a time. */
static void search(const refcase *c, vs_block b, int single, int rescore, float *s, int64_t *id) {
  foil_err err = {0};
  int K = c->k + 1;
  if (!single) {
    CHECKF(vs_search(&b, 1, c->xq, c->nq, K, 1, 0, rescore, s, id, &err) == 0, "%s", err.msg);
    return;
  }
  for (int q = 0; q < c->nq; q++)
    CHECKF(vs_search(&b, 1, c->xq + (size_t)q * c->d, 1, K, 1, 0, rescore, s + (size_t)q * K,
                     id + (size_t)q * K, &err) == 0,
           "%s", err.msg);
}

static vs_block f32_block(const refcase *c) {
  return (vs_block){VS_F32, c->n, c->d, c->xb, NULL, NULL, c->ids};
}

static void test_random(void) {
  refcase c;
  if (load_case(&c, "random")) return;
  int K = c.k + 1;
  float *s = malloc(sizeof(float) * c.nq * K);
  int64_t *id = malloc(sizeof(int64_t) * c.nq * K);
  for (int single = 0; single < 2; single++) {
    search(&c, f32_block(&c), single, 0, s, id);
    int compared = 0, near = 0, bad_id = 0, bad_s = 0;
    double maxdiff = 0;
    for (int q = 0; q < c.nq; q++)
      for (int r = 0; r < c.k; r++) {
        float fs = s[q * K + r], fa = c.D[q * c.k + r];
        double diff = fabs((double)fs - fa);
        maxdiff = diff > maxdiff ? diff : maxdiff;
        bad_s += !(diff <= 1e-5);
        int distinct = (r == 0 || s[q * K + r - 1] - fs > 1e-5f) && fs - s[q * K + r + 1] > 1e-5f;
        if (!distinct) {
          near++;
          continue;
        }
        compared++;
        bad_id += id[q * K + r] != c.I[q * c.k + r];
      }
    printf("random f32 %s: %d ids compared, %d equal to faiss; %d ranks within 1e-5 of a "
           "neighbour not compared; max |score diff| %.2e\n",
           single ? "one query at a time" : "batch", compared, compared - bad_id, near, maxdiff);
    CHECKF(bad_id == 0, "%d ids differ from faiss where scores are distinct", bad_id);
    CHECKF(bad_s == 0, "%d scores differ from faiss's by more than 1e-5", bad_s);
    CHECK(compared > c.nq * c.k * 9 / 10);
  }

  /* float16 / int8, without and with rescoring: recall@10 against exact. */
  float *s32 = malloc(sizeof(float) * c.nq * K);
  int64_t *id32 = malloc(sizeof(int64_t) * c.nq * K);
  search(&c, f32_block(&c), 0, 0, s32, id32);
  const double floor_[2][2] = {{0.97, 0.995}, {0.90, 0.995}};
  for (int dt = 0; dt < 2; dt++)
    for (int rs = 0; rs < 2; rs++) {
      vs_block b = {dt ? VS_I8 : VS_F16, c.n, c.d, dt ? (const void *)c.i8 : (const void *)c.f16,
                    dt ? c.scale : NULL, rs ? c.xb : NULL, c.ids};
      search(&c, b, 0, rs ? 4 : 0, s, id);
      int hits = 0, bits_bad = 0;
      for (int q = 0; q < c.nq; q++)
        for (int r = 0; r < c.k; r++) {
          for (int j = 0; j < c.k; j++)
            if (id[q * K + r] == c.I[q * c.k + j]) {
              hits++;
              break;
            }
          if (rs) /* a rescored hit carries the float32 search's score bits */
            for (int j = 0; j < K; j++)
              if (id32[q * K + j] == id[q * K + r]) bits_bad += s32[q * K + j] != s[q * K + r];
        }
      double rec = (double)hits / (c.nq * c.k);
      printf("random %s%s: recall@10 against exact %.4f\n", dt ? "int8" : "float16",
             rs ? " rescore 4" : "", rec);
      CHECKF(rec >= floor_[dt][rs], "recall %.4f below %.3f", rec, floor_[dt][rs]);
      CHECKF(bits_bad == 0, "%d rescored scores differ from the float32 search's", bits_bad);
    }
  free(s32);
  free(id32);
  free(s);
  free(id);
  free_case(&c);
}

static void test_ties(void) {
  refcase c;
  if (load_case(&c, "ties")) return;
  int K = c.k + 1;
  float *s = malloc(sizeof(float) * c.nq * K);
  int64_t *id = malloc(sizeof(int64_t) * c.nq * K);
  for (int single = 0; single < 2; single++) {
    search(&c, f32_block(&c), single, 0, s, id);
    int bad_s = 0, bad_set = 0, bad_low = 0, groups = 0, faiss_other = 0;
    for (int q = 0; q < c.nq; q++) {
      const float *fs = s + (size_t)q * K, *fa = c.D + (size_t)q * c.k;
      const int64_t *fi = id + (size_t)q * K, *ai = c.I + (size_t)q * c.k;
      for (int r = 0; r < c.k; r++) bad_s += fs[r] != fa[r];
      for (int r0 = 0; r0 < c.k;) {
        int r1 = r0;
        while (r1 < c.k && fs[r1] == fs[r0]) r1++;
        groups++;
        for (int r = r0 + 1; r < r1; r++) bad_low += fi[r] < fi[r - 1];
        for (int r = r0; r < r1; r++) faiss_other += fi[r] != ai[r];
        if (r1 < c.k || fs[c.k] != fs[r0]) {
          /* the whole group is inside the top k: the same set of ids */
          for (int r = r0; r < r1; r++) {
            int found = 0;
            for (int j = r0; j < r1; j++) found |= fi[r] == ai[j];
            bad_set += !found;
          }
        } else {
          /* cut by rank k: foil holds the lowest ids with this score */
          const float *qv = c.xq + (size_t)q * c.d;
          int taken = 0;
          for (int i = 0; i < c.n && taken < r1 - r0; i++) {
            double sc = 0;
            for (int j = 0; j < c.d; j++) sc += (double)qv[j] * c.xb[(size_t)i * c.d + j];
            if (sc == fs[r0]) bad_set += fi[r0 + taken++] != i;
          }
        }
        r0 = r1;
      }
    }
    printf("ties f32 %s: %d tie groups; %d ranks where faiss's order differs from lower id "
           "first (allowed)\n",
           single ? "one query at a time" : "batch", groups, faiss_other);
    CHECKF(bad_s == 0, "%d scores differ from faiss's (all sums are exact)", bad_s);
    CHECKF(bad_set == 0, "%d ids outside the tie group faiss returns / not the lowest", bad_set);
    CHECKF(bad_low == 0, "%d tie groups not lower id first", bad_low);
  }
  free(s);
  free(id);
  free_case(&c);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  dir = argv[1];
  char path[4096];
  snprintf(path, sizeof path, "%s/random.meta", dir);
  FILE *f = fopen(path, "r");
  if (!f) {
    printf("SKIPPED: %s missing (vsearch_faiss.py did not run: no .venv-faiss?)\n", path);
    return 77;
  }
  fclose(f);
  RUN(test_random);
  RUN(test_ties);
  TEST_EXIT();
}
