/* test_mine.c — the mining rule on a hand-made index: the positive (and a
 * copy of its text) dropped, the skip_top window, the margin, an index
 * that runs out, float16 blocks, deeper searches when many rows drop, the
 * same result for a query alone or in a batch, and int8 blocks ranked by
 * their float32 copies. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/vsearch.h"
#include "tests/test.h"
#include "worker/run/mine.h"

enum { D = 2, N = 8 };

/* Row i of the index is at angle a_i from the query (1, 0): score cos(a_i).
 * Corpus row ids are 10 + i; the corpus holds ids 0..19. */
static float X[N * D];
static int64_t IDS[N];
static char *CORPUS[20];
static char names[20][16];

static void setup(void) {
  /* scores: 0.99 0.95 0.90 0.80 0.70 0.60 0.50 0.40 */
  const double s[N] = {0.99, 0.95, 0.90, 0.80, 0.70, 0.60, 0.50, 0.40};
  for (int i = 0; i < N; i++) {
    X[i * D] = (float)s[i];
    X[i * D + 1] = (float)sqrt(1 - s[i] * s[i]);
    IDS[i] = 10 + i;
  }
  for (int i = 0; i < 20; i++) {
    snprintf(names[i], sizeof names[i], "doc %d", i);
    CORPUS[i] = names[i];
  }
}

static vs_block block(void) { return (vs_block){.dtype = VS_F32, .n = N, .d = D, .data = X, .ids = IDS}; }

/* Mines one query (1, 0) whose positive has text pos_text and vector at score s_pos. */
static int mine1(const mine_rule *r, const char *pos_text, double s_pos, int64_t *rows, int *found) {
  vs_block b = block();
  float q[D] = {1, 0}, p[D] = {(float)s_pos, (float)sqrt(1 - s_pos * s_pos)};
  char *pt[1] = {(char *)pos_text};
  foil_err err = {0};
  int rc = mine_select(&b, 1, N, CORPUS, 20, q, p, pt, 1, r, rows, found, &err);
  if (rc) fprintf(stderr, "mine_select: %s\n", err.msg);
  return rc;
}

static void test_positive_dropped(void) {
  int64_t rows[3];
  int found = -1;
  mine_rule r = {.top = 3};
  /* the positive is row 11 (score 0.95): dropped, the rest best first */
  CHECK(mine1(&r, "doc 11", 0.95, rows, &found) == 0);
  CHECK(found == 3 && rows[0] == 10 && rows[1] == 12 && rows[2] == 13);
  /* a copy of the positive's text elsewhere is dropped too */
  CORPUS[13] = names[11];
  CHECK(mine1(&r, "doc 11", 0.95, rows, &found) == 0);
  CHECK(found == 3 && rows[0] == 10 && rows[1] == 12 && rows[2] == 14);
  CORPUS[13] = names[13];
}

static void test_skip_window(void) {
  int64_t rows[2];
  int found = -1;
  mine_rule r = {.top = 2, .skip_top = 2};
  /* drop the positive (10), then the 2 best left (11, 12); keep 13, 14 */
  CHECK(mine1(&r, "doc 10", 0.99, rows, &found) == 0);
  CHECK(found == 2 && rows[0] == 13 && rows[1] == 14);
  /* a positive outside the index: the window takes 10, 11 */
  CHECK(mine1(&r, "not there", 0.99, rows, &found) == 0);
  CHECK(found == 2 && rows[0] == 12 && rows[1] == 13);
}

static void test_margin(void) {
  int64_t rows[2];
  int found = -1;
  /* positive at 0.85, margin 0.1: rows above 0.75 dropped (10..13 scoring
   * 0.99, 0.95, 0.90, 0.80); 14 (0.70) and 15 (0.60) kept */
  mine_rule r = {.top = 2, .has_margin = 1, .margin = 0.1f};
  CHECK(mine1(&r, "positive", 0.85, rows, &found) == 0);
  CHECK(found == 2 && rows[0] == 14 && rows[1] == 15);
  /* skip_top is counted before the margin: the window takes 10, the
   * margin drops 11..13 */
  r.skip_top = 1;
  CHECK(mine1(&r, "positive", 0.85, rows, &found) == 0);
  CHECK(found == 2 && rows[0] == 14 && rows[1] == 15);
  /* a negative margin keeps rows a little above the positive */
  mine_rule r2 = {.top = 2, .has_margin = 1, .margin = -0.06f};
  CHECK(mine1(&r2, "positive", 0.85, rows, &found) == 0);
  CHECK(found == 2 && rows[0] == 12 && rows[1] == 13);
}

static void test_runs_out(void) {
  int64_t rows[4];
  int found = -1;
  /* margin drops all but 16, 17 (0.5, 0.4 < 0.55): 2 of 4, then -1 */
  mine_rule r = {.top = 4, .has_margin = 1, .margin = 0.0f};
  CHECK(mine1(&r, "positive", 0.55, rows, &found) == 0);
  CHECK(found == 2 && rows[0] == 16 && rows[1] == 17 && rows[2] == -1 && rows[3] == -1);
  /* more than the index holds */
  int64_t many[12];
  mine_rule r2 = {.top = 12};
  CHECK(mine1(&r2, "doc 10", 0.99, many, &found) == 0);
  CHECK(found == 7 && many[0] == 11 && many[6] == 17 && many[7] == -1 && many[11] == -1);
}

static void test_batch_and_depth(void) {
  /* 3 queries at once equal each alone; the second needs a deeper search
   * (skip_top 5 + top 2 + 9 > N: the whole index at once here, so use a
   * larger index: 64 rows on a circle) */
  enum { M = 64 };
  float *x = malloc(sizeof(float) * M * D);
  int64_t *ids = malloc(sizeof(int64_t) * M);
  char **corpus = malloc(sizeof(char *) * M), (*nm)[16] = malloc(16 * M);
  for (int i = 0; i < M; i++) {
    double a = 3.0 * i / M;
    x[i * D] = (float)cos(a), x[i * D + 1] = (float)sin(a);
    ids[i] = i;
    snprintf(nm[i], 16, "row %d", i);
    corpus[i] = nm[i];
  }
  vs_block b = {.dtype = VS_F32, .n = M, .d = D, .data = x, .ids = ids};
  float q[3 * D] = {1, 0, (float)cos(1.0), (float)sin(1.0), 0, 1};
  float p[3 * D];
  memcpy(p, q, sizeof q); /* positives on the queries: score 1 */
  char *pt[3] = {"row 0", "none", "row 33"};
  /* margin 0.9: only rows scoring below 0.1 qualify, far down the ranking */
  mine_rule r = {.top = 2, .skip_top = 1, .has_margin = 1, .margin = 0.9f};
  int64_t all[6], one[2];
  int fa[3], f1;
  foil_err err = {0};
  CHECKF(mine_select(&b, 1, M, corpus, M, q, p, pt, 3, &r, all, fa, &err) == 0, "%s", err.msg);
  for (int i = 0; i < 3; i++) {
    CHECK(mine_select(&b, 1, M, corpus, M, q + i * D, p + i * D, pt + i, 1, &r, one, &f1, &err) == 0);
    CHECK(f1 == fa[i] && one[0] == all[2 * i] && one[1] == all[2 * i + 1]);
    /* the kept rows score below 1 - 0.9 */
    for (int k = 0; k < fa[i]; k++) {
      int64_t id = all[2 * i + k];
      double s = q[i * D] * x[id * D] + q[i * D + 1] * x[id * D + 1];
      CHECKF(s < 0.1 + 1e-6, "query %d kept row %lld at %.3f", i, (long long)id, s);
    }
  }
  CHECK(fa[0] == 2 && fa[1] == 2 && fa[2] == 2);
  /* the same rows from float16 blocks (angles far apart enough) */
  uint16_t *h = malloc(sizeof(uint16_t) * M * D);
  vs_to_f16(h, x, M * D);
  vs_block bh = {.dtype = VS_F16, .n = M, .d = D, .data = h, .exact = x, .ids = ids};
  int64_t allh[6];
  CHECK(mine_select(&bh, 1, M, corpus, M, q, p, pt, 3, &r, allh, NULL, &err) == 0);
  CHECK(!memcmp(all, allh, sizeof all));
  /* bad input */
  mine_rule bad = {.top = 0};
  CHECK(mine_select(&b, 1, M, corpus, M, q, p, pt, 3, &bad, all, fa, &err) == FOIL_EINVAL);
  mine_rule nopos = {.top = 1, .has_margin = 1};
  CHECK(mine_select(&b, 1, M, corpus, M, q, NULL, pt, 3, &nopos, all, fa, &err) == FOIL_EINVAL);
  CHECK(mine_select(&b, 1, M, corpus, 10, q, p, pt, 3, &r, all, fa, &err) == FOIL_EINVAL); /* ids beyond the corpus */
  free(x), free(ids), free(corpus), free(nm), free(h);
}

/* An int8 block whose stored rows rank a row far below where its float32
 * copy puts it (review-serve #9): the rounds rank by the copy, as the
 * deep path does, so the best row by exact score is found first. */
static void test_quantized_rank(void) {
  enum { M = 200, HIDDEN = 150 };
  float *x = malloc(sizeof(float) * M * D), *scales = malloc(sizeof(float) * M);
  int8_t *q8 = malloc((size_t)M * D);
  int64_t *ids = malloc(sizeof(int64_t) * M);
  char **corpus = malloc(sizeof(char *) * M), (*nm)[16] = malloc(16 * M);
  for (int i = 0; i < M; i++) {
    double a = 0.5 + 2.0 * i / M;
    x[i * D] = (float)cos(a), x[i * D + 1] = (float)sin(a);
    if (i == HIDDEN) x[i * D] = 1, x[i * D + 1] = 0; /* the best row by its exact score */
    scales[i] = 1.0f / 127;
    for (int j = 0; j < D; j++) q8[i * D + j] = (int8_t)lrintf(127 * x[i * D + j]);
    if (i == HIDDEN) q8[i * D] = 0, q8[i * D + 1] = 127; /* stored: score 0, far down the int8 ranking */
    ids[i] = i;
    snprintf(nm[i], 16, "row %d", i);
    corpus[i] = nm[i];
  }
  vs_block b = {.dtype = VS_I8, .n = M, .d = D, .data = q8, .scales = scales, .exact = x, .ids = ids};
  float q[D] = {1, 0};
  char *pt[1] = {"none"};
  mine_rule r = {.top = 1, .skip_top = 0};
  int64_t row = -1;
  int found = 0;
  foil_err err = {0};
  CHECKF(mine_select(&b, 1, M, corpus, M, q, NULL, pt, 1, &r, &row, &found, &err) == 0, "%s", err.msg);
  CHECKF(found == 1 && row == HIDDEN, "kept row %lld, the best by exact score is %d", (long long)row, HIDDEN);
  free(x), free(scales), free(q8), free(ids), free(corpus), free(nm);
}

int main(void) {
  setup();
  RUN(test_positive_dropped);
  RUN(test_skip_window);
  RUN(test_margin);
  RUN(test_runs_out);
  RUN(test_batch_and_depth);
  RUN(test_quantized_rank);
  TEST_EXIT();
}
