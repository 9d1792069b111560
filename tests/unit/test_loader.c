/* test_loader.c — training batches from pairs.h5 (worker/run/loader.h).
 *
 * The test writes a WordPiece vocab.txt ([PAD] [UNK] [CLS] [SEP] [MASK],
 * then whole words t0..t899) and a pairs.h5 whose texts are words of that
 * vocabulary, so the expected ids of every row are known: [CLS] word ids
 * [SEP], truncated to [CLS] + first T-2 + [SEP], padded with [PAD].
 *
 * What it proves:
 *  - sharding: the ranks' parts of each step are disjoint and, in rank
 *    order, equal the batch of one rank with batch world·B; no pair twice
 *    in an epoch; steps per epoch <= floor(n / G);
 *  - the permutation is a pure function of (seed, epoch): same seed, same
 *    batches; other epochs and other seeds differ;
 *  - resume: 5 batches, save the cursor, 5 more (across an epoch boundary);
 *    a fresh loader restored from the cursor gives the same 5 bit for bit,
 *    also with another world size of the same global batch; a cursor of
 *    another seed or global batch is refused;
 *  - no text repeats inside a global batch (pairs sharing a query, a
 *    positive or a negative are kept apart), and deferred pairs are not lost;
 *  - token ids, truncation, padding, mask, pad_to_longest, negatives layout
 *    and pairs skipped for too few negatives;
 *  - refused configs and an epoch with no whole batch.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer.h"
#include "storage/h5io.h"
#include "tests/test.h"
#include "worker/run/loader.h"

enum { N = 103, MAXW = 8, NWORDS = 900, SPECIALS = 5, CLS = 2, SEP = 3, PAD = 0 };

static char dir[512], vocab_path[600], pairs_path[600], nopairs_path[600], same_path[600];

/* the words of every text, -1 terminated */
static int qw[N][MAXW], pw[N][MAXW], nw[2 * N][MAXW];
static int64_t noff[N + 1];
static char *qtext[N], *ptext[N], *ntext[2 * N];

static char *words_text(const int *w) {
  char *s = malloc(MAXW * 8 + 1);
  size_t at = 0;
  for (int k = 0; k < MAXW && w[k] >= 0; k++) at += (size_t)sprintf(s + at, k ? " t%d" : "t%d", w[k]);
  s[at] = '\0';
  return s;
}

static void set_words(int *w, int first, int extra, int base, int mult) {
  int k = 0;
  w[k++] = first;
  for (int j = 0; j < extra && k < MAXW - 1; j++) w[k++] = base + (first * mult + j * 7) % 300;
  w[k] = -1;
}

static void make_data(void) {
  for (int i = 0; i < N; i++) {
    if (i < 10) { /* ten pairs share the query "t1 t2" */
      qw[i][0] = 1;
      qw[i][1] = 2;
      qw[i][2] = -1;
    } else {
      set_words(qw[i], 10 + i, i % 6, 0, 13);
    }
    if (i >= 10 && i < 15) { /* five share the positive "t300 t301 t302" */
      pw[i][0] = 300;
      pw[i][1] = 301;
      pw[i][2] = 302;
      pw[i][3] = -1;
    } else {
      set_words(pw[i], 310 + i, i % 5, 300, 11);
    }
  }
  /* negatives: rows with i % 17 == 0 have one, the others two; rows 20 and
   * 21 share their first negative */
  int at = 0;
  for (int i = 0; i < N; i++) {
    noff[i] = at;
    int cnt = i % 17 == 0 ? 1 : 2;
    for (int j = 0; j < cnt; j++, at++) set_words(nw[at], 600 + (2 * i + j) % 300, (i + j) % 4, 600, 3);
    if (i == 21) memcpy(nw[noff[21]], nw[noff[20]], sizeof nw[0]);
  }
  noff[N] = at;
  for (int i = 0; i < N; i++) {
    qtext[i] = words_text(qw[i]);
    ptext[i] = words_text(pw[i]);
  }
  for (int k = 0; k < at; k++) ntext[k] = words_text(nw[k]);
}

static void free_data(void) {
  for (int i = 0; i < N; i++) {
    free(qtext[i]);
    free(ptext[i]);
  }
  for (int k = 0; k < noff[N]; k++) free(ntext[k]);
}

static int write_pairs(const char *path, int n, char **q, char **p, int with_neg) {
  foil_err err = {0};
  h5io *f;
  if (h5io_create(&f, path, "foil.pairs.v1", &err)) return fprintf(stderr, "%s\n", err.msg), -1;
  int64_t *group = malloc(sizeof(int64_t) * n);
  for (int i = 0; i < n; i++) group[i] = i / 3;
  uint64_t dn[1] = {(uint64_t)n}, dn1[1] = {(uint64_t)n + 1};
  int rc = h5io_write_strings(f, "train/query", (const char *const *)q, n, &err) ||
           h5io_write_strings(f, "train/positive", (const char *const *)p, n, &err) ||
           h5io_write_i64(f, "train/group", group, 1, dn, &err) ||
           h5io_attr_i64(f, "train", "count", n, &err) ||
           h5io_attr_str(f, "/", "source", "test_loader", &err);
  if (!rc && with_neg)
    rc = h5io_write_strings(f, "train/negatives", (const char *const *)ntext, (size_t)noff[n], &err) ||
         h5io_write_i64(f, "train/negatives_offsets", noff, 1, dn1, &err);
  free(group);
  if (rc) {
    fprintf(stderr, "%s\n", err.msg);
    h5io_abandon(&f);
    return -1;
  }
  return h5io_publish(&f, &err);
}

static int setup(void) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s", tmp && *tmp ? tmp : "/tmp");
  snprintf(vocab_path, sizeof vocab_path, "%s/loader_vocab.txt", dir);
  snprintf(pairs_path, sizeof pairs_path, "%s/loader_pairs.h5", dir);
  snprintf(nopairs_path, sizeof nopairs_path, "%s/loader_pairs_noneg.h5", dir);
  snprintf(same_path, sizeof same_path, "%s/loader_pairs_same.h5", dir);
  FILE *v = fopen(vocab_path, "w");
  if (!v) return -1;
  fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", v);
  for (int w = 0; w < NWORDS; w++) fprintf(v, "t%d\n", w);
  fclose(v);
  make_data();
  if (write_pairs(pairs_path, N, qtext, ptext, 1)) return -1;
  if (write_pairs(nopairs_path, N, qtext, ptext, 0)) return -1;
  /* 8 pairs, all with the query "t1 t2": no batch of 2 can be formed */
  char *sq[8], *sp[8];
  for (int i = 0; i < 8; i++) {
    sq[i] = qtext[0];
    sp[i] = ptext[20 + i];
  }
  return write_pairs(same_path, 8, sq, sp, 0);
}

static tokenizer *tok;

static loader *open_loader(const char *path, int B, int rank, int world, int T, int npp, int longest,
                           uint64_t seed) {
  loader_config c = {.path = path, .split = "train", .batch_size = B, .rank = rank, .world = world,
                     .max_len = T, .neg_per_pair = npp, .pad_to_longest = longest, .seed = seed};
  loader *ld = NULL;
  foil_err err = {0};
  int rc = loader_open(&ld, &c, tok, &err);
  CHECKF(rc == 0, "%s", err.msg);
  return ld;
}

/* expected encoding of words w at width T: returns the real length */
static int expect_row(const int *w, int T, int32_t *ids, uint8_t *mask, int *trunc) {
  int n = 0;
  while (n < MAXW && w[n] >= 0) n++;
  int full = n + 2, len = full < T ? full : T;
  *trunc = full > T;
  ids[0] = CLS;
  for (int k = 1; k < len - 1; k++) ids[k] = SPECIALS + w[k - 1];
  ids[len - 1] = SEP;
  for (int t = 0; t < T; t++) {
    if (t >= len) ids[t] = PAD;
    mask[t] = t < len;
  }
  return len;
}

/* ---- sharding -------------------------------------------------------------------- */

static void test_sharding(void) {
  enum { W = 3, B = 4, G = W * B };
  loader *ranks[W], *one = open_loader(pairs_path, G, 0, 1, 16, 0, 0, 7);
  for (int r = 0; r < W; r++) ranks[r] = open_loader(pairs_path, B, r, W, 16, 0, 0, 7);
  if (!one || !ranks[0] || !ranks[1] || !ranks[2]) goto out;
  foil_err err = {0};
  int64_t steps = 0;
  CHECK(loader_epoch_steps(one, &steps, &err) == 0 && steps >= 1 && steps <= N / G);
  for (int epoch = 0; epoch < 2; epoch++) {
    int seen[N] = {0}, bad_union = 0, twice = 0;
    for (int64_t s = 0; s < steps; s++) {
      loader_batch gb, rb;
      CHECK(loader_next(one, &gb, &err) == 0 && gb.epoch == epoch && gb.step == s);
      for (int r = 0; r < W; r++) {
        CHECK(loader_next(ranks[r], &rb, &err) == 0 && rb.epoch == epoch && rb.step == s);
        for (int i = 0; i < B; i++) {
          if (rb.pairs[i] != gb.pairs[r * B + i]) bad_union++;
          if (seen[rb.pairs[i]]++) twice++;
        }
      }
    }
    CHECKF(bad_union == 0, "epoch %d: %d rank rows differ from the global batch", epoch, bad_union);
    CHECKF(twice == 0, "epoch %d: %d pairs delivered twice", epoch, twice);
    int total = 0;
    for (int i = 0; i < N; i++) total += seen[i];
    CHECK(total == steps * G);
    /* the next call crosses into the next epoch */
    if (epoch == 0) {
      int64_t s2;
      loader_batch b;
      CHECK(loader_next(one, &b, &err) == 0 && b.epoch == 1 && b.step == 0);
      CHECK(loader_epoch_steps(one, &s2, &err) == 0);
      steps = s2;
      loader_cursor c;
      loader_get_cursor(one, &c);
      c.step = 0;
      CHECK(loader_set_cursor(one, &c, &err) == 0); /* back to the start of epoch 1 */
    }
  }
out:
  loader_destroy(&one);
  for (int r = 0; r < W; r++) loader_destroy(&ranks[r]);
}

/* ---- permutation determinism -------------------------------------------------------- */

static void read_pairs(loader *ld, int64_t *out, int nb, int B) {
  foil_err err = {0};
  for (int k = 0; k < nb; k++) {
    loader_batch b;
    int rc = loader_next(ld, &b, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    memcpy(out + (size_t)k * B, b.pairs, sizeof(int64_t) * B);
  }
}

static void test_permutation(void) {
  enum { B = 10, NB = 20 }; /* 10 steps per epoch at most: 2 epochs */
  loader *a = open_loader(pairs_path, B, 0, 1, 16, 0, 0, 42);
  loader *b = open_loader(pairs_path, B, 0, 1, 16, 0, 0, 42);
  loader *c = open_loader(pairs_path, B, 0, 1, 16, 0, 0, 43);
  if (!a || !b || !c) goto out;
  int64_t pa[NB * B], pb[NB * B], pc[NB * B];
  foil_err err = {0};
  int64_t steps;
  CHECK(loader_epoch_steps(a, &steps, &err) == 0 && steps >= 8 && steps <= 10);
  read_pairs(a, pa, NB, B);
  read_pairs(b, pb, NB, B);
  read_pairs(c, pc, NB, B);
  CHECK(memcmp(pa, pb, sizeof pa) == 0);
  CHECK(memcmp(pa, pc, sizeof pa) != 0);
  /* epochs 0 and 1 start differently */
  CHECK(memcmp(pa, pa + steps * B, sizeof(int64_t) * B) != 0);
  /* jumping straight to epoch 1 gives the same epoch 1 */
  loader_cursor cur;
  loader_get_cursor(b, &cur);
  cur.epoch = 1;
  cur.step = 0;
  CHECK(loader_set_cursor(b, &cur, &err) == 0);
  int64_t p1[B];
  read_pairs(b, p1, 1, B);
  CHECK(memcmp(p1, pa + steps * B, sizeof p1) == 0);
out:
  loader_destroy(&a);
  loader_destroy(&b);
  loader_destroy(&c);
}

/* ---- resume ------------------------------------------------------------------------- */

typedef struct {
  int rows, T;
  int32_t ids[64 * 16];
  uint8_t mask[64 * 16];
  int64_t pairs[16], epoch, step;
} saved;

static void save(saved *s, const loader_batch *b) {
  s->rows = b->rows;
  s->T = b->T;
  memcpy(s->ids, b->ids, sizeof(int32_t) * b->rows * b->T);
  memcpy(s->mask, b->mask, (size_t)b->rows * b->T);
  memcpy(s->pairs, b->pairs, sizeof(int64_t) * b->B);
  s->epoch = b->epoch;
  s->step = b->step;
}

static int same(const saved *s, const loader_batch *b) {
  return s->rows == b->rows && s->T == b->T && s->epoch == b->epoch && s->step == b->step &&
         memcmp(s->ids, b->ids, sizeof(int32_t) * b->rows * b->T) == 0 &&
         memcmp(s->mask, b->mask, (size_t)b->rows * b->T) == 0 &&
         memcmp(s->pairs, b->pairs, sizeof(int64_t) * b->B) == 0;
}

static void test_resume(void) {
  enum { B = 6, W = 2 }; /* G = 12: 8 steps per epoch, so 10 batches cross it */
  loader *a = open_loader(pairs_path, B, 1, W, 12, 2, 1, 9);
  if (!a) return;
  foil_err err = {0};
  loader_batch b;
  for (int k = 0; k < 5; k++) CHECK(loader_next(a, &b, &err) == 0);
  loader_cursor cur;
  loader_get_cursor(a, &cur);
  CHECK(cur.epoch == 0 && cur.step == 5 && cur.seed == 9);
  saved want[5];
  int crossed = 0;
  for (int k = 0; k < 5; k++) {
    CHECK(loader_next(a, &b, &err) == 0);
    save(&want[k], &b);
    crossed |= b.epoch == 1;
  }
  CHECK(crossed);
  loader_destroy(&a);

  loader *r = open_loader(pairs_path, B, 1, W, 12, 2, 1, 9);
  if (!r) return;
  CHECKF(loader_set_cursor(r, &cur, &err) == 0, "%s", err.msg);
  for (int k = 0; k < 5; k++) {
    CHECK(loader_next(r, &b, &err) == 0);
    CHECKF(same(&want[k], &b), "resumed batch %d differs", k);
  }
  loader_destroy(&r);

  /* the same global batch on 4 ranks of 3: rank 2 holds the rows that
   * rank 1 of 2 held first */
  loader *w4 = open_loader(pairs_path, 3, 2, 4, 12, 2, 0, 9);
  if (!w4) return;
  CHECK(loader_set_cursor(w4, &cur, &err) == 0);
  CHECK(loader_next(w4, &b, &err) == 0);
  CHECK(memcmp(b.pairs, want[0].pairs, sizeof(int64_t) * 3) == 0);
  loader_destroy(&w4);

  /* refused: another seed, another global batch, another negatives setting */
  loader *o = open_loader(pairs_path, B, 1, W, 12, 2, 1, 10);
  if (o) CHECK(loader_set_cursor(o, &cur, &err) == FOIL_EPRECOND);
  loader_destroy(&o);
  o = open_loader(pairs_path, B, 0, 1, 12, 2, 1, 9);
  if (o) CHECK(loader_set_cursor(o, &cur, &err) == FOIL_EPRECOND);
  loader_destroy(&o);
  o = open_loader(pairs_path, B, 1, W, 12, 1, 1, 9);
  if (o) CHECK(loader_set_cursor(o, &cur, &err) == FOIL_EPRECOND);
  if (o) {
    loader_cursor neg = {.seed = 9, .fingerprint = 0, .epoch = -1};
    loader_get_cursor(o, &neg);
    neg.epoch = -1;
    CHECK(loader_set_cursor(o, &neg, &err) == FOIL_EINVAL);
  }
  loader_destroy(&o);
}

/* ---- duplicates, tokens, negatives ----------------------------------------------------- */

static void test_duplicates(void) {
  enum { B = 8 };
  loader *ld = open_loader(pairs_path, B, 0, 1, 32, 2, 0, 3);
  if (!ld) return;
  foil_err err = {0};
  CHECK(loader_num_pairs(ld) == N);
  size_t skipped = 0;
  for (int i = 0; i < N; i++) skipped += i % 17 == 0;
  CHECK(loader_skipped_pairs(ld) == skipped);
  int shared_q = 0, shared_p = 0, rep = 0, skipped_seen = 0;
  for (int s = 0; s < 3 * 11; s++) { /* about three epochs */
    loader_batch b;
    if (loader_next(ld, &b, &err) != 0) {
      CHECKF(0, "%s", err.msg);
      break;
    }
    const char *texts[4 * B];
    int nt = 0;
    for (int i = 0; i < B; i++) {
      int64_t r = b.pairs[i];
      shared_q += r < 10;
      shared_p += r >= 10 && r < 15;
      skipped_seen += r % 17 == 0;
      texts[nt++] = qtext[r];
      texts[nt++] = ptext[r];
      texts[nt++] = ntext[noff[r]];
      texts[nt++] = ntext[noff[r] + 1];
    }
    for (int x = 0; x < nt; x++)
      for (int y = x + 1; y < nt; y++) rep += strcmp(texts[x], texts[y]) == 0;
  }
  CHECKF(rep == 0, "%d repeated texts inside batches", rep);
  CHECK(skipped_seen == 0);
  /* deferred pairs are delivered later, not lost: in ~3 epochs of 11 steps
   * each pair sharing the query appears about 3 times (at most once a
   * batch) */
  CHECKF(shared_q >= 15, "pairs sharing a query delivered %d times", shared_q);
  CHECKF(shared_p >= 8, "pairs sharing a positive delivered %d times", shared_p);
  loader_destroy(&ld);
}

static void check_rows(const loader_batch *b, int T_full, int *bad, int *trunc_total) {
  int32_t ids[64];
  uint8_t mask[64];
  int B = b->B, m = b->n_neg / (B ? B : 1);
  for (int row = 0; row < b->rows; row++) {
    const int *w;
    int i;
    if (row < B) {
      i = row;
      w = qw[b->pairs[i]];
    } else if (row < 2 * B) {
      i = row - B;
      w = pw[b->pairs[i]];
    } else {
      i = (row - 2 * B) / m;
      w = nw[noff[b->pairs[i]] + (row - 2 * B) % m];
    }
    int tr;
    expect_row(w, T_full, ids, mask, &tr);
    *trunc_total += tr;
    /* with pad_to_longest the row is the first b->T entries */
    if (memcmp(ids, b->ids + (size_t)row * b->T, sizeof(int32_t) * b->T) != 0 ||
        memcmp(mask, b->mask + (size_t)row * b->T, (size_t)b->T) != 0)
      (*bad)++;
    for (int t = b->T; t < T_full; t++)
      if (mask[t]) (*bad)++; /* a real token cut by pad_to_longest */
  }
}

static void test_tokens(void) {
  foil_err err = {0};
  /* full width, truncating width, pad_to_longest; with 2 negatives */
  int widths[3] = {12, 4, 12}, longest[3] = {0, 0, 1};
  for (int c = 0; c < 3; c++) {
    loader *ld = open_loader(pairs_path, 5, 0, 1, widths[c], 2, longest[c], 5);
    if (!ld) continue;
    int bad = 0, trunc_want = 0, trunc_got = 0, narrower = 0;
    for (int s = 0; s < 6; s++) {
      loader_batch b;
      if (loader_next(ld, &b, &err)) {
        CHECKF(0, "%s", err.msg);
        break;
      }
      CHECK(b.B == 5 && b.n_neg == 10 && b.rows == 20);
      CHECK(longest[c] ? b.T <= widths[c] : b.T == widths[c]);
      narrower += b.T < widths[c];
      check_rows(&b, widths[c], &bad, &trunc_want);
      trunc_got += b.truncated;
    }
    CHECKF(bad == 0, "width %d longest %d: %d rows differ from the expected ids", widths[c], longest[c], bad);
    CHECK(trunc_got == trunc_want);
    if (widths[c] == 4) CHECK(trunc_got > 0);
    if (longest[c]) CHECK(narrower > 0);
    loader_destroy(&ld);
  }
}

static void test_errors(void) {
  foil_err err = {0};
  loader *ld = NULL;
  loader_config c = {.path = pairs_path, .batch_size = 4, .rank = 2, .world = 2, .max_len = 8, .seed = 1};
  CHECK(loader_open(&ld, &c, tok, &err) == FOIL_EINVAL && ld == NULL);
  c.rank = 0;
  c.batch_size = 60; /* G = 120 > 103 pairs */
  CHECK(loader_open(&ld, &c, tok, &err) == FOIL_EINVAL && strstr(err.msg, "global batch"));
  c.batch_size = 4;
  c.max_len = 0;
  CHECK(loader_open(&ld, &c, tok, &err) == FOIL_EINVAL);
  c.max_len = 8;
  c.path = nopairs_path;
  c.neg_per_pair = 1;
  CHECK(loader_open(&ld, &c, tok, &err) == FOIL_EINVAL && strstr(err.msg, "negatives"));
  c.neg_per_pair = 0;
  c.split = "validation";
  CHECK(loader_open(&ld, &c, tok, &err) != 0);
  c.split = NULL; /* train */
  CHECK(loader_open(&ld, &c, tok, &err) == 0);
  loader_destroy(&ld);
  char missing[700];
  snprintf(missing, sizeof missing, "%s/no_such_pairs.h5", dir);
  c.path = missing;
  CHECK(loader_open(&ld, &c, tok, &err) != 0 && ld == NULL);
  /* every pair has the same query: no batch of 2 without a repeat */
  c.path = same_path;
  c.batch_size = 2;
  CHECK(loader_open(&ld, &c, tok, &err) == 0);
  loader_batch b;
  if (ld) CHECK(loader_next(ld, &b, &err) == FOIL_EPRECOND);
  loader_destroy(&ld);
  loader_destroy(&ld); /* NULL is fine */
}

int main(void) {
  if (setup()) {
    fprintf(stderr, "setup failed\n");
    return 1;
  }
  foil_err err = {0};
  if (tokenizer_load(&tok, vocab_path, &err)) {
    fprintf(stderr, "tokenizer: %s\n", err.msg);
    free_data();
    return 1;
  }
  CHECK(tokenizer_pad_id(tok) == PAD);
  RUN(test_sharding);
  RUN(test_permutation);
  RUN(test_resume);
  RUN(test_duplicates);
  RUN(test_tokens);
  RUN(test_errors);
  tokenizer_destroy(&tok);
  free_data();
  TEST_EXIT();
}
