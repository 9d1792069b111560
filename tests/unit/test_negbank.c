/* test_negbank.c — negatives banks: round trip, the header alone, and the
 * refusals of checked reads (truncated, foreign, inconsistent) and of
 * negbank_check (other data, too few negatives); a killed writer's
 * temporary swept by the next write. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"
#include "storage/h5io.h"
#include "storage/negbank.h"
#include "tests/test.h"
#include "tests/unit/dead_pid.h"

static char root[512];

/* 3 pairs x 2 negatives; pair 2 has one (the index ran out). */
static negbank sample(void) {
  static int64_t rows[6] = {4, 7, 0, 9, 5, -1};
  static char *texts[6] = {"def four", "def seven", "def zero", "def nine", "def five", ""};
  negbank b = {.rows = rows, .texts = texts};
  snprintf(b.meta.index, sizeof b.meta.index, "code");
  b.meta.version = 3;
  snprintf(b.meta.checkpoint, sizeof b.meta.checkpoint, "/data/jobs/1/ckpt/step_40.h5");
  b.meta.step = 40;
  snprintf(b.meta.dataset, sizeof b.meta.dataset, "code");
  snprintf(b.meta.split, sizeof b.meta.split, "train");
  b.meta.n_pairs = 3, b.meta.m = 2;
  b.meta.fingerprint = 0x0123456789abcdefull;
  b.meta.skip_top = 1;
  b.meta.margin = 0.05;
  return b;
}

static void test_roundtrip(void) {
  char path[700];
  foil_err err = {0};
  CHECK(negbank_path(root, "code", path, sizeof path, &err) == 0);
  CHECK(strstr(path, "/negatives/code.h5") != NULL);
  CHECK(negbank_path(root, "../x", path, sizeof path, &err) == FOIL_EINVAL);
  CHECK(negbank_path(root, "code", path, sizeof path, &err) == 0);
  negbank b = sample();
  CHECKF(negbank_write(path, &b, &err) == 0, "%s", err.msg);
  negbank r;
  CHECKF(negbank_read(path, &r, &err) == 0, "%s", err.msg);
  CHECK(r.meta.version == 3 && r.meta.step == 40 && r.meta.n_pairs == 3 && r.meta.m == 2 && r.meta.skip_top == 1);
  CHECK(!strcmp(r.meta.index, "code") && !strcmp(r.meta.split, "train") && !strcmp(r.meta.dataset, "code"));
  CHECK(!strcmp(r.meta.checkpoint, b.meta.checkpoint) && r.meta.fingerprint == b.meta.fingerprint);
  CHECK(fabs(r.meta.margin - 0.05) < 1e-12 && r.meta.created > 1.6e9);
  for (int i = 0; i < 6; i++) CHECK(r.rows[i] == b.rows[i] && !strcmp(r.texts[i], b.texts[i]));
  negbank_free(&r);
  CHECK(r.rows == NULL && r.texts == NULL);
  negbank_meta m;
  CHECKF(negbank_read_meta(path, &m, &err) == 0 && m.version == 3 && m.n_pairs == 3, "%s", err.msg);
  /* no margin: NaN; and a killed writer's temporary of the bank is swept (S5) */
  char host[64], tmp[900];
  foil_host(host);
  long c = test_dead_pid();
  snprintf(tmp, sizeof tmp, "%s.tmp-%s-%ld-0123456789abcdef", path, host, (long)c);
  FILE *tf = fopen(tmp, "w");
  if (tf) fclose(tf);
  b.meta.margin = NAN;
  b.meta.version = 4;
  CHECKF(negbank_write(path, &b, &err) == 0, "%s", err.msg);
  struct stat st;
  CHECKF(stat(tmp, &st) != 0, "negbank_write left a killed writer's %s", tmp);
  CHECK(negbank_read_meta(path, &m, &err) == 0 && isnan(m.margin) && m.version == 4);
}

static void test_check(void) {
  negbank b = sample();
  foil_err err = {0};
  CHECK(negbank_check(&b.meta, "bank.h5", "train", 3, 0x0123456789abcdefull, 2, &err) == 0);
  CHECK(negbank_check(&b.meta, "bank.h5", "train", 3, 0x0123456789abcdefull, 1, &err) == 0);
  CHECK(negbank_check(&b.meta, "bank.h5", "train", 3, 0x0123456789abcdeeull, 2, &err) == FOIL_EPRECOND);
  CHECKF(strstr(err.msg, "fingerprint") != NULL, "%s", err.msg);
  CHECK(negbank_check(&b.meta, "bank.h5", "train", 4, 0x0123456789abcdefull, 2, &err) == FOIL_EPRECOND);
  CHECK(negbank_check(&b.meta, "bank.h5", "dev", 3, 0x0123456789abcdefull, 2, &err) == FOIL_EPRECOND);
  CHECK(negbank_check(&b.meta, "bank.h5", "train", 3, 0x0123456789abcdefull, 3, &err) == FOIL_EPRECOND);
  CHECKF(strstr(err.msg, "holds 2 negatives per pair, 3 are wanted") != NULL, "%s", err.msg);
  /* the fingerprint sees every text */
  char *q[2] = {"a", "b"}, *p[2] = {"c", "d"}, *p2[2] = {"c", "e"};
  dataset_pairs d1 = {.n = 2, .query = q, .positive = p}, d2 = {.n = 2, .query = q, .positive = p2};
  dataset_pairs d3 = {.n = 1, .query = q, .positive = p};
  CHECK(negbank_fingerprint(&d1) == negbank_fingerprint(&d1));
  CHECK(negbank_fingerprint(&d1) != negbank_fingerprint(&d2));
  CHECK(negbank_fingerprint(&d1) != negbank_fingerprint(&d3));
  /* texts split differently are other data: ("ab","c") vs ("a","bc") */
  char *qa[1] = {"ab"}, *pa[1] = {"c"}, *qb[1] = {"a"}, *pb[1] = {"bc"};
  dataset_pairs da = {.n = 1, .query = qa, .positive = pa}, db = {.n = 1, .query = qb, .positive = pb};
  CHECK(negbank_fingerprint(&da) != negbank_fingerprint(&db));
}

static void test_refusals(void) {
  char path[700], bad[720];
  foil_err err = {0};
  negbank b = sample(), r;
  CHECK(negbank_path(root, "refuse", path, sizeof path, &err) == 0);
  CHECKF(negbank_write(path, &b, &err) == 0, "%s", err.msg);
  /* missing */
  snprintf(bad, sizeof bad, "%s/negatives/none.h5", root);
  CHECK(negbank_read(bad, &r, &err) == FOIL_ENOTFOUND);
  /* truncated */
  struct stat st;
  CHECK(stat(path, &st) == 0);
  snprintf(bad, sizeof bad, "%s.trunc", path);
  FILE *in = fopen(path, "rb"), *out = fopen(bad, "wb");
  char *buf = malloc((size_t)st.st_size);
  CHECK(in && out && buf && fread(buf, 1, (size_t)st.st_size, in) == (size_t)st.st_size);
  fwrite(buf, 1, (size_t)st.st_size / 2, out);
  fclose(in), fclose(out), free(buf);
  CHECK(negbank_read(bad, &r, &err) != 0 && r.rows == NULL);
  CHECK(negbank_read_meta(bad, &(negbank_meta){0}, &err) != 0);
  /* foreign: another foil_format */
  h5io *f = NULL;
  snprintf(bad, sizeof bad, "%s/negatives/foreign.h5", root);
  CHECK(h5io_create(&f, bad, "foil.something.v1", &err) == 0 && h5io_publish(&f, &err) == 0);
  CHECK(negbank_read(bad, &r, &err) != 0);
  CHECKF(strstr(err.msg, "foil.negbank.v1") != NULL || strstr(err.msg, "foil_format") != NULL, "%s", err.msg);
  /* inconsistent: rows below -1; a "none" row with a text; m disagreeing with /rows */
  int64_t rows[6] = {4, 7, 0, -2, 5, -1};
  negbank x = sample();
  x.rows = rows;
  snprintf(bad, sizeof bad, "%s/negatives/below.h5", root);
  CHECK(negbank_write(bad, &x, &err) == 0);
  CHECK(negbank_read(bad, &r, &err) == FOIL_EINVAL && strstr(err.msg, "below -1"));
  rows[3] = -1;
  char *texts[6] = {"a", "b", "c", "not none", "e", ""};
  x.texts = texts;
  CHECK(negbank_write(bad, &x, &err) == 0);
  CHECK(negbank_read(bad, &r, &err) == FOIL_EINVAL && strstr(err.msg, "has a text"));
}

/* review-serve #4: a bank is replaced only by one mined from a version of
 * its index that is not older (refreshes of two checkpoints mining at once
 * may finish in either order); a bank of another index replaces it. */
static void test_newer(void) {
  char path[700];
  foil_err err = {0};
  CHECK(negbank_path(root, "order", path, sizeof path, &err) == 0);
  negbank b = sample();
  negbank_meta m;
  int kept = -1;
  b.meta.version = 5, b.meta.step = 40;
  CHECKF(negbank_write_newer(path, &b, &kept, &err) == 0 && kept == 0, "%s", err.msg);  /* none there: written */
  b.meta.version = 4, b.meta.step = 20;  /* an older refresh's mining ends last */
  CHECKF(negbank_write_newer(path, &b, &kept, &err) == 0, "%s", err.msg);
  CHECK(negbank_read_meta(path, &m, &err) == 0);
  CHECKF(m.version == 5 && m.step == 40 && kept == 5, "v4 mined last replaced v5: the bank holds v%d (kept %d)",
         m.version, kept);
  b.meta.version = 5, b.meta.step = 41;  /* the same version mined again: replaces */
  CHECK(negbank_write_newer(path, &b, &kept, &err) == 0 && kept == 0);
  CHECK(negbank_read_meta(path, &m, &err) == 0 && m.version == 5 && m.step == 41);
  b.meta.version = 6, b.meta.step = 60;
  CHECK(negbank_write_newer(path, &b, &kept, &err) == 0 && kept == 0);
  CHECK(negbank_read_meta(path, &m, &err) == 0 && m.version == 6);
  snprintf(b.meta.index, sizeof b.meta.index, "other");  /* another index: not ordered, the later wins */
  b.meta.version = 1;
  CHECK(negbank_write_newer(path, &b, &kept, &err) == 0 && kept == 0);
  CHECK(negbank_read_meta(path, &m, &err) == 0 && m.version == 1 && !strcmp(m.index, "other"));
  /* the order a trainer takes banks in */
  negbank_meta c = sample().meta;
  c.version = 5;
  CHECK(negbank_cmp(&c, "code", 0) == 1);      /* none in use */
  CHECK(negbank_cmp(&c, "code", 4) == 1);
  CHECK(negbank_cmp(&c, "code", 5) == 0);
  CHECK(negbank_cmp(&c, "code", 6) == -1);     /* older than the one in use: not taken */
  CHECK(negbank_cmp(&c, "other", 6) == 1);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(root, sizeof root, "%s/negbank-%ld", t ? t : "/tmp", (long)getpid());
  RUN(test_roundtrip);
  RUN(test_check);
  RUN(test_refusals);
  RUN(test_newer);
  TEST_EXIT();
}
