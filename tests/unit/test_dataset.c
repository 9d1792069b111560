/* test_dataset.c — typed dataset files: write, publish, read back, and
 * the reader's checks (storage/dataset.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/dataset.h"
#include "tests/test.h"

static char dir[512];

static const char *path_in(const char *name) {
  static char buf[4][600];
  static int k = 0;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static void test_pairs_roundtrip(void) {
  foil_err err = {0};
  char *q[3] = {"what is a cat", "naïve café", "x"}, *p[3] = {"cat", "coffee ☕", "y"};
  int64_t g[3] = {7, 8, 1LL << 40};
  char *neg[3] = {"dog", "tea", "water"};
  int64_t off[4] = {0, 1, 3, 3};
  dataset_pairs train = {.n = 3, .query = q, .positive = p, .group = g, .n_negatives = 3,
                         .negatives = neg, .negatives_offsets = off};
  dataset_pairs test = {.n = 1, .query = q, .positive = p, .group = g}; /* no negatives: zeros */
  const dataset_pairs *splits[3] = {&train, NULL, &test};
  dataset_meta meta = {"unit test", "foil test", 42};
  h5io *f;
  const char *path = path_in("pairs.h5");
  CHECKF(dataset_pairs_create(&f, path, splits, 1, &meta, &err) == 0, "%s", err.msg);
  CHECK(access(path, F_OK) != 0); /* staged, not yet visible */
  CHECKF(h5io_publish(&f, &err) == 0, "%s", err.msg);

  dataset_pairs r;
  CHECKF(dataset_pairs_read(path, "train", &r, &err) == 0, "%s", err.msg);
  CHECK(r.n == 3 && r.n_negatives == 3 && r.negatives_offsets);
  if (r.n == 3) {
    CHECK(!strcmp(r.query[1], "naïve café") && !strcmp(r.positive[1], "coffee ☕"));
    CHECK(r.group[2] == (1LL << 40));
    CHECK(r.negatives_offsets[1] == 1 && r.negatives_offsets[2] == 3 && !strcmp(r.negatives[2], "water"));
  }
  dataset_pairs_free(&r);
  CHECK(r.n == 0 && r.query == NULL);
  CHECK(dataset_pairs_read(path, "dev", &r, &err) == 0 && r.n == 0 && r.negatives_offsets);
  dataset_pairs_free(&r);
  CHECK(dataset_pairs_read(path, "test", &r, &err) == 0 && r.n == 1 && r.negatives_offsets[1] == 0);
  dataset_pairs_free(&r);
  CHECK(dataset_pairs_read(path, "valid", &r, &err) == FOIL_EINVAL && strstr(err.msg, "valid"));

  h5io *h;
  char *s = NULL;
  int64_t seed = 0, count = 0;
  CHECK(h5io_open(&h, path, DATASET_PAIRS_FORMAT, &err) == 0);
  CHECK(h5io_get_attr_str(h, "/", "source", &s, &err) == 0 && !strcmp(s, "unit test"));
  free(s);
  CHECK(h5io_get_attr_i64(h, "/", "seed", &seed, &err) == 0 && seed == 42);
  CHECK(h5io_get_attr_i64(h, "train", "count", &count, &err) == 0 && count == 3);
  h5io_close(&h);
  /* a pairs file is not a benchmark */
  dataset_bench b;
  CHECK(dataset_bench_read(path, &b, &err) == FOIL_EINVAL && strstr(err.msg, DATASET_PAIRS_FORMAT));
}

static void test_bench_roundtrip(void) {
  foil_err err = {0};
  char *qs[2] = {"q one", "q two"}, *qid[2] = {"a", "b"};
  char *docs[3] = {"d0", "d1", "d2"}, *did[3] = {"x", "y", "z"};
  int64_t qrels[6] = {0, 2, 1, 0, 1, 1};
  int32_t score[3] = {1, 2, 1};
  dataset_bench b = {2, 3, 3, qs, qid, docs, did, qrels, score};
  dataset_meta meta = {"unit", "foil", 1};
  h5io *f;
  const char *path = path_in("bench/b.h5");
  CHECKF(dataset_bench_create(&f, path, &b, &meta, &err) == 0, "%s", err.msg);
  CHECK(h5io_publish(&f, &err) == 0);
  dataset_bench r;
  CHECKF(dataset_bench_read(path, &r, &err) == 0, "%s", err.msg);
  CHECK(r.n_queries == 2 && r.n_corpus == 3 && r.n_qrels == 3 && r.qrels_score);
  if (r.n_qrels == 3) CHECK(r.qrels[1] == 2 && r.qrels[4] == 1 && r.qrels_score[1] == 2);
  if (r.n_corpus == 3) CHECK(!strcmp(r.corpus_ids[2], "z") && !strcmp(r.corpus[1], "d1"));
  dataset_bench_free(&r);
  /* without scores */
  b.qrels_score = NULL;
  CHECK(dataset_bench_create(&f, path, &b, &meta, &err) == 0 && h5io_publish(&f, &err) == 0);
  CHECK(dataset_bench_read(path, &r, &err) == 0 && r.qrels_score == NULL && r.n_qrels == 3);
  dataset_bench_free(&r);
  /* the writer refuses qrels out of range and leaves nothing */
  int64_t badq[2] = {0, 3};
  dataset_bench bad = {2, 3, 1, qs, qid, docs, did, badq, NULL};
  const char *bp = path_in("bench/bad.h5");
  CHECK(dataset_bench_create(&f, bp, &bad, &meta, &err) == FOIL_EINTERNAL && f == NULL);
  CHECK(access(bp, F_OK) != 0);
  /* the reader refuses a damaged one (written by hand with h5io) */
  h5io *h;
  uint64_t d2[2] = {1, 2};
  CHECK(h5io_create(&h, bp, DATASET_BENCH_FORMAT, &err) == 0);
  h5io_write_strings(h, "queries", (const char *const *)qs, 2, &err);
  h5io_write_strings(h, "query_ids", (const char *const *)qid, 2, &err);
  h5io_write_strings(h, "corpus", (const char *const *)docs, 3, &err);
  h5io_write_strings(h, "corpus_ids", (const char *const *)did, 3, &err);
  h5io_write_i64(h, "qrels", badq, 2, d2, &err);
  CHECK(h5io_publish(&h, &err) == 0);
  CHECK(dataset_bench_read(bp, &r, &err) == FOIL_EINVAL && strstr(err.msg, "out of range"));
  CHECK(r.queries == NULL);
}

static void test_corpus_roundtrip(void) {
  foil_err err = {0};
  char *ids[2] = {"1", "2"}, *text[2] = {"hello", "world"};
  dataset_meta meta = {"unit", "foil", 0};
  h5io *f;
  const char *path = path_in("corpus.h5");
  CHECK(dataset_corpus_create(&f, path, ids, text, 2, &meta, &err) == 0 && h5io_publish(&f, &err) == 0);
  char **ri, **rt;
  size_t n;
  CHECKF(dataset_corpus_read(path, &ri, &rt, &n, &err) == 0, "%s", err.msg);
  CHECK(n == 2 && !strcmp(ri[1], "2") && !strcmp(rt[0], "hello"));
  h5io_free_strings(ri, n);
  h5io_free_strings(rt, n);
  CHECK(dataset_corpus_read(path_in("missing.h5"), &ri, &rt, &n, &err) == FOIL_ENOTFOUND);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/dataset-%ld", t ? t : "/tmp", (long)getpid());
  RUN(test_pairs_roundtrip);
  RUN(test_bench_roundtrip);
  RUN(test_corpus_roundtrip);
  TEST_EXIT();
}
