/* test_h5io.c — atomic HDF5 publish and checked reading. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
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
  /* the integrity header's length and CRC refuse it before HDF5 reads it */
  int rc = h5io_open(&f, cut, "foil.test.v1", &err);
  CHECKF(rc == FOIL_EINVAL && !f && strstr(err.msg, "damaged or truncated (checksum mismatch"),
         "a truncated file: rc %d, %s", rc, err.msg);
  h5io_close(&f);
  /* wrong format */
  CHECK(h5io_open(&f, good, "foil.other.v1", &err) == FOIL_EINVAL && strstr(err.msg, "foil.test.v1"));
  /* abandon leaves nothing */
  const char *gone = path_in("gone.h5");
  CHECK(h5io_create(&f, gone, NULL, &err) == 0);
  h5io_abandon(&f);
  CHECK(!exists(gone) && f == NULL);
}

static long file_size(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static int copy_prefix(const char *from, const char *to, long n) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  int ok = in && out;
  for (long i = 0; ok && i < n; i++) {
    int c = fgetc(in);
    ok = c != EOF && fputc(c, out) != EOF;
  }
  if (in) fclose(in);
  if (out && fclose(out)) ok = 0;
  return ok ? 0 : -1;
}

static void xor_byte(const char *p, long at, int mask) {
  FILE *f = fopen(p, "r+b");
  if (!f) return;
  fseek(f, at, SEEK_SET);
  int c = fgetc(f);
  fseek(f, at, SEEK_SET);
  fputc(c ^ mask, f);
  fclose(f);
}

static const char *publish_sample(const char *name, const char *format) {
  foil_err err = {0};
  h5io *f;
  const char *p = path_in(name);
  float z[2000];
  for (int i = 0; i < 2000; i++) z[i] = (float)i * 0.5f;
  uint64_t d[1] = {2000};
  CHECKF(h5io_create(&f, p, format, &err) == 0, "%s", err.msg);
  if (!f) return p;
  CHECK(h5io_write_f32(f, "z", z, 1, d, &err) == 0);
  CHECK(h5io_attr_str(f, "/", "note", "integrity", &err) == 0);
  CHECKF(h5io_publish(&f, &err) == 0, "%s", err.msg);
  return p;
}

/* The integrity header: a published file carries it (magic at 0, HDF5's
 * signature at 512); every byte flip past it, a flip inside it, and every
 * truncation or extension is refused by the gate with the checksum message
 * (which only the gate writes: HDF5 is not called). */
static void test_integrity(void) {
  foil_err err = {0};
  h5io *f = NULL;
  const char *p = publish_sample("signed.h5", "foil.ckpt.v1"), *q = path_in("damaged.h5");
  unsigned char head[520];
  FILE *fp = fopen(p, "rb");
  CHECK(fp && fread(head, 1, sizeof head, fp) == sizeof head);
  if (fp) fclose(fp);
  CHECK(!memcmp(head, "FOILH5\r\n", 8) && !memcmp(head + 512, "\211HDF\r\n\032\n", 8));
  CHECKF(h5io_check(p, "foil.ckpt.v1", &err) == 0, "%s", err.msg);
  CHECKF(h5io_open(&f, p, "foil.ckpt.v1", &err) == 0, "%s", err.msg);
  float *z = NULL;
  size_t n = 0;
  CHECK(f && h5io_read_f32(f, "z", &z, &n, &err) == 0 && n == 2000 && z[1999] == 999.5f);
  free(z);
  h5io_close(&f);

  long size = file_size(p), refused = 0, tried = 0;
  CHECK(size > 512 + 8000);
  /* single-byte flips: 97 positions spread over [512, size), the last byte,
   * and each header field */
  long pos[110];
  int np = 0;
  for (int i = 0; i < 97; i++) pos[np++] = 512 + (size - 512) * i / 97;
  pos[np++] = size - 1;
  static const long hdr[] = {0, 7, 8, 12, 15, 16, 23, 24, 27};
  for (size_t i = 0; i < sizeof hdr / sizeof *hdr; i++) pos[np++] = hdr[i];
  for (int i = 0; i < np; i++) {
    if (copy_prefix(p, q, size)) break;
    xor_byte(q, pos[i], 1 << (i % 8));
    tried++;
    err.msg[0] = 0;
    int rc = h5io_open(&f, q, "foil.ckpt.v1", &err);
    int ok = rc == FOIL_EINVAL && !f && strstr(err.msg, "damaged or truncated (checksum mismatch; expected") &&
             strstr(err.msg, q) && h5io_check(q, NULL, &err) == FOIL_EINVAL;
    refused += ok;
    if (!ok) fprintf(stderr, "flip at %ld: rc %d, %s\n", pos[i], rc, err.msg);
    h5io_close(&f);
  }
  CHECKF(refused == tried && tried == np, "%ld of %ld flips refused by the gate", refused, tried);
  /* truncations, and one byte appended */
  long cuts[] = {8, 20, 28, 100, 511, 512, 513, 600, size / 2, size - 4096, size - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
    CHECK(copy_prefix(p, q, cuts[i]) == 0);
    err.msg[0] = 0;
    CHECKF(h5io_open(&f, q, NULL, &err) == FOIL_EINVAL && !f &&
               strstr(err.msg, "damaged or truncated (checksum mismatch; expected"),
           "cut at %ld: %s", cuts[i], err.msg);
    h5io_close(&f);
  }
  CHECK(copy_prefix(p, q, size) == 0);
  fp = fopen(q, "ab");
  if (fp) fputc(0, fp), fclose(fp);
  CHECK(h5io_open(&f, q, NULL, &err) == FOIL_EINVAL && strstr(err.msg, "bytes, the file has"));
  h5io_close(&f);
  /* re-signing the damaged bytes makes them pass the gate (what the fuzz
   * target's second path does) */
  CHECK(h5io_sign(q, &err) == 0 && h5io_check(q, NULL, &err) == 0);
}

/* No header: refused for a format only foil writes, opened for one users
 * make with other tools (the table in h5io.h). */
static void test_no_header(void) {
  foil_err err = {0};
  h5io *f = NULL;
  static const char zero[28];
  const char *ck = publish_sample("ckpt-noheader.h5", "foil.ckpt.v1");
  const char *ds = publish_sample("pairs-noheader.h5", "foil.pairs.v1");
  const char *any = publish_sample("any-noheader.h5", "foil.test.v1");
  const char *files[3] = {ck, ds, any};
  for (int i = 0; i < 3; i++) {
    FILE *fp = fopen(files[i], "r+b");
    CHECK(fp && fwrite(zero, 1, sizeof zero, fp) == sizeof zero);
    if (fp) fclose(fp);
  }
  static const char *only_foil[] = {"foil.ckpt.v1", "foil.index.shard.v1", "foil.index.manifest.v1",
                                    "foil.negbank.v1"};
  for (int i = 0; i < 4; i++)
    CHECKF(h5io_open(&f, ck, only_foil[i], &err) == FOIL_EINVAL && !f && strstr(err.msg, "no integrity header"),
           "%s: %s", only_foil[i], err.msg);
  CHECKF(h5io_open(&f, ds, "foil.pairs.v1", &err) == 0, "%s", err.msg);
  h5io_close(&f);
  CHECKF(h5io_open(&f, any, NULL, &err) == 0, "%s", err.msg);
  h5io_close(&f);
  /* a damaged magic (7 of 8 bytes) is a damaged header, even for a dataset */
  const char *dm = publish_sample("pairs-damaged-magic.h5", "foil.pairs.v1");
  xor_byte(dm, 3, 0x10);
  CHECK(h5io_open(&f, dm, "foil.pairs.v1", &err) == FOIL_EINVAL && strstr(err.msg, "checksum mismatch"));
  /* a file with a header is checked whatever the format */
  xor_byte(dm, 3, 0x10);
  xor_byte(dm, 4000, 0x01);
  CHECK(h5io_open(&f, dm, "foil.pairs.v1", &err) == FOIL_EINVAL && strstr(err.msg, "checksum mismatch"));
}

/* A file verified once may be trusted again while unchanged (h5io.h
 * "Cost"); a write to it must still be seen: publish, let its ctime age
 * past the 2 s window, verify, change a byte in place, verify again. */
static void test_verified_then_changed(void) {
  foil_err err = {0};
  const char *p = publish_sample("aged.h5", "foil.ckpt.v1");
  sleep(3);
  CHECKF(h5io_check(p, "foil.ckpt.v1", &err) == 0, "%s", err.msg);
  CHECKF(h5io_check(p, "foil.ckpt.v1", &err) == 0, "%s", err.msg);
  struct stat st;
  CHECK(stat(p, &st) == 0);
  xor_byte(p, file_size(p) / 2, 0x40);
  /* same size, mtime put back: only the ctime tells */
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  CHECK(utimensat(AT_FDCWD, p, times, 0) == 0);
  CHECK(h5io_check(p, "foil.ckpt.v1", &err) == FOIL_EINVAL && strstr(err.msg, "checksum mismatch"));
  /* not a regular file: refused without blocking (a FIFO) or reading */
  const char *fifo = path_in("fifo.h5");
  CHECK(mkfifo(fifo, 0600) == 0);
  h5io *f = NULL;
  CHECK(h5io_open(&f, fifo, NULL, &err) == FOIL_EINVAL && strstr(err.msg, "not a regular file"));
  CHECK(h5io_open(&f, dir, NULL, &err) == FOIL_EINVAL && strstr(err.msg, "not a regular file"));
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/h5io-%ld", t ? t : "/tmp", (long)getpid());
  RUN(test_roundtrip);
  RUN(test_bad_files);
  RUN(test_integrity);
  RUN(test_no_header);
  RUN(test_verified_then_changed);
  TEST_EXIT();
}
