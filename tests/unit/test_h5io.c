/* test_h5io.c — atomic HDF5 publish and checked reading. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/h5io.h"
#include "tests/test.h"

static char dir[512];

static const char *path_in(const char *name) {
  static char buf[4][600];
  static int k = 0;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

static int exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static void test_roundtrip(void) {
  foil_err err = {0};
  h5io *f;
  const char *p = path_in("sub/dir/round.h5");
  CHECKF(h5io_create(&f, p, "foil.test.v1", &err) == 0, "%s", err.msg);
  float a[6] = {1, 2, 3, 4, 5, 6.5f};
  int64_t q[4] = {-1, 0, 1LL << 40, 7};
  uint8_t m[3] = {0, 1, 255};
  const char *s[3] = {"hello", "", "naïve café ☕"};
  uint64_t d23[2] = {2, 3}, d4[1] = {4}, d3[1] = {3};
  CHECK(h5io_write_f32(f, "params/a", a, 2, d23, &err) == 0);
  CHECK(h5io_write_i64(f, "ids", q, 1, d4, &err) == 0);
  CHECK(h5io_write_u8(f, "mask", m, 1, d3, &err) == 0);
  CHECK(h5io_write_strings(f, "train/query", s, 3, &err) == 0);
  CHECK(h5io_write_strings(f, "empty", NULL, 0, &err) == 0);
  CHECK(h5io_attr_i64(f, "/", "step", 42, &err) == 0);
  CHECK(h5io_attr_f64(f, "params/a", "scale", 0.25, &err) == 0);
  CHECK(h5io_attr_str(f, "/", "source", "unit test", &err) == 0);
  CHECK(!exists(p)); /* not visible before publish */
  CHECKF(h5io_publish(&f, &err) == 0 && f == NULL, "%s", err.msg);
  CHECK(exists(p));

  CHECKF(h5io_open(&f, p, "foil.test.v1", &err) == 0, "%s", err.msg);
  if (!f) return;
  float *ra;
  size_t n;
  int nd;
  uint64_t dims[8];
  CHECK(h5io_shape(f, "params/a", &nd, dims, &err) == 0 && nd == 2 && dims[0] == 2 && dims[1] == 3);
  CHECK(h5io_read_f32(f, "params/a", &ra, &n, &err) == 0 && n == 6 && memcmp(ra, a, sizeof a) == 0);
  free(ra);
  int64_t *rq;
  CHECK(h5io_read_i64(f, "ids", &rq, &n, &err) == 0 && n == 4 && rq[2] == (1LL << 40));
  free(rq);
  double *rd; /* conversion on read */
  CHECK(h5io_read_f64(f, "params/a", &rd, &n, &err) == 0 && rd[5] == 6.5);
  free(rd);
  char **rs;
  CHECK(h5io_read_strings(f, "train/query", &rs, &n, &err) == 0 && n == 3);
  if (n == 3) CHECK(!strcmp(rs[0], "hello") && !strcmp(rs[1], "") && !strcmp(rs[2], s[2]));
  h5io_free_strings(rs, n);
  CHECK(h5io_read_strings(f, "empty", &rs, &n, &err) == 0 && n == 0);
  h5io_free_strings(rs, n);
  int64_t step;
  double sc;
  char *src;
  CHECK(h5io_get_attr_i64(f, "/", "step", &step, &err) == 0 && step == 42);
  CHECK(h5io_get_attr_f64(f, "params/a", "scale", &sc, &err) == 0 && sc == 0.25);
  CHECK(h5io_get_attr_str(f, "/", "source", &src, &err) == 0 && !strcmp(src, "unit test"));
  free(src);
  CHECK(h5io_exists(f, "train/query") && h5io_exists(f, "train") && !h5io_exists(f, "dev/query"));
  CHECK(h5io_read_f32(f, "nope/x", &ra, &n, &err) == FOIL_ENOTFOUND && strstr(err.msg, "nope/x"));
  CHECK(h5io_read_strings(f, "ids", &rs, &n, &err) == FOIL_EINVAL);
  CHECK(h5io_get_attr_i64(f, "/", "missing", &step, &err) == FOIL_ENOTFOUND);
  h5io_close(&f);
  CHECK(f == NULL);
}

static void test_bad_files(void) {
  foil_err err = {0};
  h5io *f = NULL;
  /* missing */
  CHECK(h5io_open(&f, path_in("missing.h5"), NULL, &err) == FOIL_ENOTFOUND && !f);
  /* foreign: a text file */
  const char *txt = path_in("foreign.h5");
  FILE *fp = fopen(txt, "w");
  fputs("this is not hdf5\n", fp);
  fclose(fp);
  CHECK(h5io_open(&f, txt, NULL, &err) == FOIL_EINVAL && strstr(err.msg, "not an HDF5"));
  /* truncated: a real file cut in half */
  const char *good = path_in("good.h5"), *cut = path_in("cut.h5");
  float z[4096] = {0};
  uint64_t d[1] = {4096};
  CHECK(h5io_create(&f, good, "foil.test.v1", &err) == 0);
  h5io_write_f32(f, "z", z, 1, d, &err);
  CHECK(h5io_publish(&f, &err) == 0);
  FILE *in = fopen(good, "rb"), *out = fopen(cut, "wb");
  char buf[65536];
  size_t got = fread(buf, 1, sizeof buf, in);
  fwrite(buf, 1, got / 2, out);
  fclose(in);
  fclose(out);
  int rc = h5io_open(&f, cut, "foil.test.v1", &err);
  float *r = NULL;
  size_t n;
  if (rc == 0) { /* superblock may survive: then the data read must fail */
    rc = h5io_read_f32(f, "z", &r, &n, &err);
    free(r);
    h5io_close(&f);
  }
  CHECKF(rc != 0, "a truncated file was read without error");
  /* wrong format */
  CHECK(h5io_open(&f, good, "foil.other.v1", &err) == FOIL_EINVAL && strstr(err.msg, "foil.test.v1"));
  /* abandon leaves nothing */
  const char *gone = path_in("gone.h5");
  CHECK(h5io_create(&f, gone, NULL, &err) == 0);
  h5io_abandon(&f);
  CHECK(!exists(gone) && f == NULL);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/h5io-%ld", t ? t : "/tmp", (long)getpid());
  RUN(test_roundtrip);
  RUN(test_bad_files);
  TEST_EXIT();
}
