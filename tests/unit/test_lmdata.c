/* test_lmdata.c — decoder rows from an lm dataset: the packed stream
 * (documents + end-of-text), windows and their targets, the per-epoch
 * order, ranks × rows = one rank × all rows, determinism, refusals. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/bpe_train.h"
#include "model/tokenizer.h"
#include "storage/h5io.h"
#include "storage/lmcorpus.h"
#include "tests/test.h"
#include "worker/run/lmdata.h"

static char dir[512], path[600];
static const char *docs[] = {
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be "
    "in want of a wife.",
    "In the beginning God created the heavens and the earth.",
    "The Python tutorial: an informal introduction to Python. Numbers, strings and lists.",
    "However little known the feelings or views of such a man may be on his first entering a "
    "neighbourhood, this truth is so well fixed in the minds of the surrounding families.",
};

static tokenizer *make_tok(void) {
  bpe_trainer *tr = NULL;
  tokenizer *t = NULL;
  foil_err err = {0};
  bpe_trainer_new(&tr, &err);
  for (int i = 0; i < 4; i++) bpe_trainer_feed(tr, docs[i], strlen(docs[i]), "docs", &err);
  const char *specials[] = {"<|endoftext|>"};
  CHECKF(bpe_trainer_train(tr, 300, 2, specials, 1, &t, &err) == 0, "%s", err.msg);
  bpe_trainer_destroy(&tr);
  return t;
}

static void write_lm(void) {
  h5io *f;
  foil_err err = {0};
  CHECK(h5io_create(&f, path, LMCORPUS_FORMAT, &err) == 0);
  CHECK(h5io_write_strings(f, "train/text", docs, 4, &err) == 0);
  CHECK(h5io_write_strings(f, "valid/text", docs + 1, 1, &err) == 0);
  CHECK(h5io_write_strings(f, "test/text", docs, 0, &err) == 0);
  CHECKF(h5io_publish(&f, &err) == 0, "%s", err.msg);
}

static void test_stream_and_windows(void) {
  tokenizer *tok = make_tok();
  foil_err err = {0};
  const int T = 8, B = 2;
  lmdata_config c = {.path = path, .split = "train", .seq_len = T, .batch_size = B, .rank = 0, .world = 1,
                     .seed = 3};
  lmdata *d = NULL;
  CHECKF(lmdata_open(&d, &c, tok, &err) == 0, "%s", err.msg);
  if (!d) return;
  /* the stream: each document's tokens, then end-of-text */
  int32_t *want = malloc(sizeof(int32_t) * 4096);
  int n = 0;
  for (int i = 0; i < 4; i++) {
    int k = 0;
    tokenizer_encode(tok, docs[i], strlen(docs[i]), 0, want + n, 4096 - n, &k, &err);
    n += k;
    want[n++] = tokenizer_pad_id(tok);
  }
  CHECKF(lmdata_tokens(d) == n && lmdata_docs(d) == 4, "%lld tokens, want %d", (long long)lmdata_tokens(d), n);
  CHECK(lmdata_windows(d) == (n - 1) / T && lmdata_steps_per_epoch(d) == lmdata_windows(d) / B);
  int32_t ids[8], tg[8];
  for (int64_t k = 0; k < lmdata_windows(d); k++) {
    lmdata_window(d, k, ids, tg);
    CHECK(memcmp(ids, want + k * T, sizeof ids) == 0 && memcmp(tg, want + k * T + 1, sizeof tg) == 0);
  }
  /* one epoch visits distinct windows; the same step gives the same rows */
  const int64_t spe = lmdata_steps_per_epoch(d), N = lmdata_windows(d);
  int *seen = calloc((size_t)N, sizeof(int));
  int32_t rows[2 * 8], trg[2 * 8], again[2 * 8];
  for (int64_t s = 0; s < spe; s++) {
    int64_t e = -1;
    CHECK(lmdata_batch(d, s, rows, trg, &e, &err) == 0 && e == 0);
    for (int b = 0; b < B; b++)
      for (int64_t k = 0; k < N; k++) {
        lmdata_window(d, k, ids, tg);
        if (!memcmp(ids, rows + b * T, sizeof ids) && !memcmp(tg, trg + b * T, sizeof tg)) seen[k]++;
      }
  }
  int distinct = 0;
  for (int64_t k = 0; k < N; k++) distinct += seen[k] == 1;
  CHECKF(distinct >= spe * B, "an epoch saw %d distinct windows of %lld", distinct, (long long)(spe * B));
  lmdata_batch(d, 1, rows, trg, NULL, &err);
  lmdata_batch(d, spe + 1, again, trg, NULL, &err); /* another epoch, then back: the same rows */
  int32_t back[2 * 8];
  lmdata_batch(d, 1, back, trg, NULL, &err);
  CHECK(memcmp(rows, back, sizeof back) == 0);
  /* 2 ranks × 1 row = 1 rank × 2 rows, for every step */
  lmdata *r0 = NULL, *r1 = NULL;
  lmdata_config c0 = c, c1 = c;
  c0.batch_size = c1.batch_size = 1, c0.world = c1.world = 2, c1.rank = 1;
  CHECKF(lmdata_open(&r0, &c0, tok, &err) == 0 && lmdata_open(&r1, &c1, tok, &err) == 0, "%s", err.msg);
  CHECK(lmdata_fingerprint(r0) == lmdata_fingerprint(d));
  for (int64_t s = 0; r0 && r1 && s < 3 * spe; s++) {
    int32_t a[16], at[16];
    lmdata_batch(d, s, rows, trg, NULL, &err);
    lmdata_batch(r0, s, a, at, NULL, &err);
    lmdata_batch(r1, s, a + T, at + T, NULL, &err);
    CHECKF(!memcmp(a, rows, sizeof a) && !memcmp(at, trg, sizeof at), "step %lld differs", (long long)s);
  }
  /* another seed: another order; another T: another fingerprint */
  lmdata *o = NULL;
  lmdata_config co = c;
  co.seed = 4;
  CHECK(lmdata_open(&o, &co, tok, &err) == 0);
  int differ = 0;
  for (int64_t s = 0; o && s < spe; s++) {
    int32_t a[16], at[16];
    lmdata_batch(d, s, rows, trg, NULL, &err);
    lmdata_batch(o, s, a, at, NULL, &err);
    differ += memcmp(a, rows, sizeof a) != 0;
  }
  CHECK(differ > 0);
  lmdata_destroy(&o);
  co = c;
  co.seq_len = 7;
  CHECK(lmdata_open(&o, &co, tok, &err) == 0 && lmdata_fingerprint(o) != lmdata_fingerprint(d));
  lmdata_destroy(&o);
  lmdata_destroy(&r0);
  lmdata_destroy(&r1);
  lmdata_destroy(&d);
  CHECK(d == NULL);
  free(seen);
  free(want);
  tokenizer_destroy(&tok);
}

static void test_refusals(void) {
  tokenizer *tok = make_tok();
  foil_err err = {0};
  lmdata *d = NULL;
  lmdata_config c = {.path = path, .split = "test", .seq_len = 8, .batch_size = 2, .rank = 0, .world = 1};
  CHECKF(lmdata_open(&d, &c, tok, &err) == FOIL_EINVAL && strstr(err.msg, "test split"), "%s", err.msg);
  c.split = "dev";
  CHECKF(lmdata_open(&d, &c, tok, &err) == FOIL_EINVAL && strstr(err.msg, "train, valid and test"), "%s", err.msg);
  c.split = "valid";
  c.seq_len = 4096;
  CHECKF(lmdata_open(&d, &c, tok, &err) == FOIL_EINVAL && strstr(err.msg, "not one window"), "%s", err.msg);
  c.seq_len = 8;
  c.path = "/nonexistent/lm.h5";
  CHECK(lmdata_open(&d, &c, tok, &err) != 0 && strstr(err.msg, "/nonexistent/lm.h5"));
  c.path = path;
  c.rank = 2;
  CHECK(lmdata_open(&d, &c, tok, &err) == FOIL_EINVAL);
  CHECK(d == NULL);
  /* a document over the cap (2^30 tokens, what one encode call can hold;
   * lower here) is refused by index, not grown into until memory runs out */
  c.rank = 0;
  c.split = "train";
  c.max_doc_tokens = 12;
  CHECKF(lmdata_open(&d, &c, tok, &err) == FOIL_EINVAL && strstr(err.msg, "train document 0 has more than 12 tokens"),
         "%s", err.msg);
  CHECK(d == NULL);
  c.max_doc_tokens = 4096; /* every document fits */
  CHECKF(lmdata_open(&d, &c, tok, &err) == 0, "%s", err.msg);
  lmdata_destroy(&d);
  tokenizer_destroy(&tok);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s", t ? t : "/tmp");
  snprintf(path, sizeof path, "%s/lmdata-%ld.h5", dir, (long)getpid());
  write_lm();
  RUN(test_stream_and_windows);
  RUN(test_refusals);
  unlink(path);
  TEST_EXIT();
}
