/* test_h5io.c — atomic HDF5 publish and checked reading. */
#define _GNU_SOURCE /* syscall */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "storage/h5io.h"
#include "tests/test.h"

static char dir[512];

#include "tests/unit/fsync_fault.h"

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
  /* one block: the pointers, a NULL, then the strings back to back (a
   * dataset of a million strings is one malloc, not a million) */
  if (n == 3)
    CHECK(rs[3] == NULL && rs[0] == (char *)(rs + 4) && rs[1] == rs[0] + 6 && rs[2] == rs[1] + 1);
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

/* ---- files as other tools write them (HDF5's C API here; h5py makes the same) ---------- */

/* An attribute of `type` on loc: scalar (n == 0) or 1-D of n values. */
static void raw_attr(hid_t loc, const char *key, hid_t type, hsize_t n, const void *val) {
  hid_t sp = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(loc, key, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  CHECKF(a >= 0 && H5Awrite(a, type, val) >= 0, "writing attribute %s", key);
  H5Aclose(a);
  H5Sclose(sp);
}

/* A fixed-length string type: numpy bytes ("S13") is NULLPAD ASCII. */
static hid_t fixed_str(size_t size, H5T_str_t pad, H5T_cset_t cset) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, size);
  H5Tset_strpad(t, pad);
  H5Tset_cset(t, cset);
  return t;
}

static hid_t vlen_str(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

/* Attributes holding more than one value (h5py: f.attrs["foil_format"] =
 * ["foil.pairs.v1", "x"], np.array([b"...", b"x"]), [1, 2, 3]) or none
 * (h5py.Empty) are refused: HDF5 reads a whole attribute, so reading one
 * into a single value would write past it. Shape (1,) is one value. */
static void test_attr_not_single(void) {
  foil_err err = {0};
  const char *p = path_in("attr-arrays.h5"), *q = path_in("attr-array-format.h5");
  hid_t vs = vlen_str(), fs = fixed_str(13, H5T_STR_NULLPAD, H5T_CSET_ASCII);
  const char *two[2] = {"foil.pairs.v1", "x"}, *one[1] = {"ok"};
  char bytes2[26] = "foil.pairs.v1x"; /* two S13 values */
  int64_t i3[3] = {1, 2, 3}, i1[1] = {42};
  double d3[3] = {0.5, 1, 2};
  hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(f >= 0);
  raw_attr(f, "vlen2", vs, 2, two);
  raw_attr(f, "bytes2", fs, 2, bytes2);
  raw_attr(f, "step", H5T_NATIVE_INT64, 3, i3);
  raw_attr(f, "scale", H5T_NATIVE_DOUBLE, 3, d3);
  raw_attr(f, "one", H5T_NATIVE_INT64, 1, i1);
  raw_attr(f, "onestr", vs, 1, one);
  hid_t nsp = H5Screate(H5S_NULL);
  H5Aclose(H5Acreate2(f, "empty", H5T_NATIVE_INT64, nsp, H5P_DEFAULT, H5P_DEFAULT));
  H5Aclose(H5Acreate2(f, "emptystr", vs, nsp, H5P_DEFAULT, H5P_DEFAULT));
  H5Sclose(nsp);
  H5Fclose(f);
  f = H5Fcreate(q, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  raw_attr(f, "foil_format", vs, 2, two);
  H5Fclose(f);
  h5io *h = NULL;
  CHECKF(h5io_open(&h, q, "foil.pairs.v1", &err) == FOIL_EINVAL && !h && strstr(err.msg, "not a single value"),
         "%s", err.msg);
  h5io_close(&h);
  f = H5Fcreate(q, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  raw_attr(f, "foil_format", fs, 2, bytes2);
  H5Fclose(f);
  CHECKF(h5io_open(&h, q, "foil.pairs.v1", &err) == FOIL_EINVAL && !h && strstr(err.msg, "not a single value"),
         "%s", err.msg);
  h5io_close(&h);
  CHECKF(h5io_open(&h, p, NULL, &err) == 0, "%s", err.msg);
  if (!h) return;
  int64_t iv[4] = {0}; /* room for what an unchecked read would write */
  double dv[4] = {0};
  char *sv = NULL;
  CHECKF(h5io_get_attr_i64(h, "/", "step", iv, &err) == FOIL_EINVAL && strstr(err.msg, "not a single value") &&
             strstr(err.msg, "step"), "%s", err.msg);
  CHECKF(h5io_get_attr_f64(h, "/", "scale", dv, &err) == FOIL_EINVAL && strstr(err.msg, "not a single value"),
         "%s", err.msg);
  CHECKF(h5io_get_attr_str(h, "/", "vlen2", &sv, &err) == FOIL_EINVAL && !sv && strstr(err.msg, "not a single"),
         "%s", err.msg);
  CHECKF(h5io_get_attr_str(h, "/", "bytes2", &sv, &err) == FOIL_EINVAL && !sv && strstr(err.msg, "not a single"),
         "%s", err.msg);
  CHECKF(h5io_get_attr_i64(h, "/", "empty", iv, &err) == FOIL_EINVAL, "%s", err.msg);
  CHECKF(h5io_get_attr_str(h, "/", "emptystr", &sv, &err) == FOIL_EINVAL && !sv, "%s", err.msg);
  CHECKF(h5io_get_attr_i64(h, "/", "one", iv, &err) == 0 && iv[0] == 42, "%s", err.msg);
  CHECKF(h5io_get_attr_str(h, "/", "onestr", &sv, &err) == 0 && sv && !strcmp(sv, "ok"), "%s", err.msg);
  free(sv);
  h5io_close(&h);
  H5Tclose(vs);
  H5Tclose(fs);
}

/* Fixed-length string attributes come back whole whatever their padding:
 * numpy bytes (NULLPAD) filling their size, SPACEPAD, UTF-8 (h5py's
 * string_dtype("utf-8", n)), and NULLTERM as before. */
static void test_fixed_string_attrs(void) {
  foil_err err = {0};
  const char *p = path_in("fixed-strings.h5");
  hid_t np = fixed_str(13, H5T_STR_NULLPAD, H5T_CSET_ASCII), sp = fixed_str(6, H5T_STR_SPACEPAD, H5T_CSET_ASCII),
        sp2 = fixed_str(6, H5T_STR_SPACEPAD, H5T_CSET_ASCII), u8 = fixed_str(5, H5T_STR_NULLPAD, H5T_CSET_UTF8),
        pad = fixed_str(8, H5T_STR_NULLPAD, H5T_CSET_ASCII), nt = fixed_str(7, H5T_STR_NULLTERM, H5T_CSET_ASCII);
  hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(f >= 0);
  raw_attr(f, "foil_format", np, 0, "foil.pairs.v1");
  raw_attr(f, "spaces", sp, 0, "abcdef");
  raw_attr(f, "spaces2", sp2, 0, "ab    ");
  raw_attr(f, "utf8", u8, 0, "caf\xc3\xa9");
  raw_attr(f, "padded", pad, 0, "ab\0\0\0\0\0\0");
  raw_attr(f, "nullterm", nt, 0, "encoder");
  H5Fclose(f);
  h5io *h = NULL;
  CHECKF(h5io_open(&h, p, "foil.pairs.v1", &err) == 0, "a numpy-bytes foil_format: %s", err.msg);
  if (!h) CHECKF(h5io_open(&h, p, NULL, &err) == 0, "%s", err.msg);
  static const char *const want[][2] = {{"foil_format", "foil.pairs.v1"}, {"spaces", "abcdef"}, {"spaces2", "ab"},
                                        {"utf8", "caf\xc3\xa9"}, {"padded", "ab"}, {"nullterm", "encoder"}};
  for (size_t i = 0; h && i < sizeof want / sizeof *want; i++) {
    char *v = NULL;
    int rc = h5io_get_attr_str(h, "/", want[i][0], &v, &err);
    CHECKF(rc == 0 && v && !strcmp(v, want[i][1]), "%s: rc %d, \"%s\", want \"%s\" (%s)", want[i][0], rc,
           v ? v : "(null)", want[i][1], rc ? err.msg : "");
    free(v);
  }
  h5io_close(&h);
  H5Tclose(np), H5Tclose(sp), H5Tclose(sp2), H5Tclose(u8), H5Tclose(pad), H5Tclose(nt);
}

/* A dataset with a null dataspace (h5py.Empty("<i8")) has no values: it is
 * refused, not read as one uninitialized element. */
static void test_null_dataspace(void) {
  foil_err err = {0};
  const char *p = path_in("null-dataspace.h5");
  hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hid_t nsp = H5Screate(H5S_NULL), lcpl = H5Pcreate(H5P_LINK_CREATE), vs = vlen_str();
  H5Pset_create_intermediate_group(lcpl, 1);
  H5Dclose(H5Dcreate2(f, "train/group", H5T_STD_I64LE, nsp, lcpl, H5P_DEFAULT, H5P_DEFAULT));
  H5Dclose(H5Dcreate2(f, "train/query", vs, nsp, lcpl, H5P_DEFAULT, H5P_DEFAULT));
  H5Tclose(vs);
  H5Pclose(lcpl);
  H5Sclose(nsp);
  H5Fclose(f);
  h5io *h = NULL;
  CHECKF(h5io_open(&h, p, NULL, &err) == 0, "%s", err.msg);
  if (!h) return;
  int64_t *v = NULL;
  size_t n = 99;
  int rc = h5io_read_i64(h, "train/group", &v, &n, &err);
  CHECKF(rc == FOIL_EINVAL && !v && strstr(err.msg, "empty") && strstr(err.msg, "train/group"),
         "rc %d, n %zu: %s", rc, n, err.msg);
  free(v);
  int nd;
  uint64_t dims[8];
  CHECK(h5io_shape(h, "train/group", &nd, dims, &err) == FOIL_EINVAL && strstr(err.msg, "null dataspace"));
  float one;
  CHECK(h5io_read_f32_into(h, "train/group", &one, 1, &err) == FOIL_EINVAL);
  char **strs = NULL;
  CHECK(h5io_read_strings(h, "train/query", &strs, &n, &err) == FOIL_EINVAL && !strs);
  h5io_close(&h);
}

static int count_entries(const char *d, const char *prefix) {
  DIR *dp = opendir(d);
  int k = 0;
  struct dirent *e;
  while (dp && (e = readdir(dp))) k += !strncmp(e->d_name, prefix, strlen(prefix));
  if (dp) closedir(dp);
  return k;
}

/* A failed fsync of the directory after the rename is the publish's error,
 * naming the directory (the file is renamed but not durable); creating a
 * new directory for a file fsyncs its parent, and a failure there is an
 * error too. A filesystem that cannot sync directories (EINVAL) is not. */
static void test_dir_fsync_error(void) {
  foil_err err = {0};
  h5io *f = NULL;
  const char *sub = path_in("fsync"), *p = path_in("fsync/published.h5");
  float z[4] = {1, 2, 3, 4};
  uint64_t d[1] = {4};
  CHECKF(h5io_create(&f, p, "foil.test.v1", &err) == 0, "%s", err.msg);
  CHECK(f && h5io_write_f32(f, "z", z, 1, d, &err) == 0);
  dir_fsync_errno = EIO;
  int rc = f ? h5io_publish(&f, &err) : -1;
  dir_fsync_errno = 0;
  CHECKF(rc == FOIL_EINTERNAL && strstr(err.msg, sub) && strstr(err.msg, "directory") &&
             strstr(err.msg, strerror(EIO)), "publish with a failing directory fsync: rc %d, %s", rc, err.msg);
  CHECK(f == NULL && exists(p) && count_entries(sub, "published.h5.tmp-") == 0);
  /* EINVAL: the filesystem has no directory fsync; nothing to report */
  CHECKF(h5io_create(&f, p, "foil.test.v1", &err) == 0, "%s", err.msg);
  dir_fsync_errno = EINVAL;
  rc = f ? h5io_publish(&f, &err) : -1;
  dir_fsync_errno = 0;
  CHECKF(rc == 0, "EINVAL from a directory fsync: rc %d, %s", rc, err.msg);
  /* a new directory: its parent's fsync failing is an error naming it */
  const char *nd = path_in("fsync/new/deeper/x.h5");
  dir_fsync_errno = EIO;
  rc = h5io_create(&f, nd, NULL, &err);
  dir_fsync_errno = 0;
  CHECKF(rc == FOIL_EINTERNAL && !f && strstr(err.msg, sub) && strstr(err.msg, "directory"),
         "mkdir with a failing parent fsync: rc %d, %s", rc, err.msg);
  h5io_abandon(&f);
}

/* Temporary names are each writer's own (host, pid, random bits), created
 * exclusively: a file that happens to carry another writer's name (here:
 * the name every writer of this pid used before) is never truncated,
 * renamed or removed, and two writers of one path in one process each get
 * their own temporary and both publish. */
static void test_tmp_names(void) {
  foil_err err = {0};
  char sh[600], p[700], other[800];
  snprintf(sh, sizeof sh, "%s", path_in("shared"));
  snprintf(p, sizeof p, "%s/target.h5", sh);
  snprintf(other, sizeof other, "%s.tmp-%ld", p, (long)getpid());
  mkdir(sh, 0755);
  FILE *fp = fopen(other, "w");
  CHECK(fp && fputs("another writer's bytes", fp) >= 0);
  if (fp) fclose(fp);
  h5io *a = NULL, *b = NULL;
  CHECKF(h5io_create(&a, p, "foil.test.v1", &err) == 0, "first writer: %s", err.msg);
  CHECKF(h5io_create(&b, p, "foil.test.v1", &err) == 0, "second writer of the same path: %s", err.msg);
  CHECK(count_entries(sh, "target.h5.tmp-") == 3);
  char host[64] = "";
  gethostname(host, sizeof host - 1);
  int plain = host[0] != 0; /* then the name carries it as it is */
  for (const char *c = host; *c; c++)
    plain &= (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
             *c == '.' || *c == '_';
  char mine[200];
  snprintf(mine, sizeof mine, "target.h5.tmp-%s-%ld-", host, (long)getpid());
  if (plain) CHECKF(count_entries(sh, mine) == 2, "no temporary named %s*", mine);
  CHECK(a && h5io_attr_i64(a, "/", "writer", 1, &err) == 0);
  CHECK(b && h5io_attr_i64(b, "/", "writer", 2, &err) == 0);
  CHECKF(a && h5io_publish(&a, &err) == 0, "%s", err.msg);
  CHECKF(b && h5io_publish(&b, &err) == 0, "%s", err.msg);
  h5io *r = NULL;
  int64_t w = 0;
  CHECKF(h5io_open(&r, p, "foil.test.v1", &err) == 0 && h5io_get_attr_i64(r, "/", "writer", &w, &err) == 0 && w == 2,
         "%s", err.msg);
  h5io_close(&r);
  char buf[64] = "";
  fp = fopen(other, "r");
  CHECKF(fp && fgets(buf, sizeof buf, fp) && !strcmp(buf, "another writer's bytes"),
         "%s was truncated, replaced or removed", other);
  if (fp) fclose(fp);
  CHECK(count_entries(sh, "target.h5.tmp-") == 1); /* only the other writer's */
}

/* H5F_CLOSE_SEMI on written files: an object left open when the file is
 * published makes the publish fail (closing fails), instead of HDF5
 * keeping the file open and writing its metadata after the signature
 * (a file every later open refuses); nothing appears under the path. */
static void test_leak_fails_publish(void) {
  foil_err err = {0};
  char p[700];
  snprintf(p, sizeof p, "%s", path_in("leak.h5"));
  h5io *f = NULL;
  CHECKF(h5io_create(&f, p, "foil.test.v1", &err) == 0, "%s", err.msg);
  hid_t g = f ? H5Gcreate2((hid_t)h5io_fid(f), "left_open", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
  CHECK(g >= 0);
  int rc = f ? h5io_publish(&f, &err) : -1;
  CHECKF(rc == FOIL_EINTERNAL && strstr(err.msg, "closing"), "rc %d: %s", rc, err.msg);
  CHECK(access(p, F_OK) != 0);
  if (g >= 0) H5Gclose(g);
  /* the same file without the leak publishes and opens */
  CHECKF(h5io_create(&f, p, "foil.test.v1", &err) == 0, "%s", err.msg);
  g = f ? H5Gcreate2((hid_t)h5io_fid(f), "closed", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
  if (g >= 0) H5Gclose(g);
  CHECKF(f && h5io_publish(&f, &err) == 0, "%s", err.msg);
  h5io *r = NULL;
  CHECKF(h5io_open(&r, p, "foil.test.v1", &err) == 0, "%s", err.msg);
  h5io_close(&r);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/h5io-%ld", t ? t : "/tmp", (long)getpid());
  RUN(test_roundtrip);
  RUN(test_bad_files);
  RUN(test_integrity);
  RUN(test_no_header);
  RUN(test_verified_then_changed);
  RUN(test_attr_not_single);
  RUN(test_fixed_string_attrs);
  RUN(test_null_dataspace);
  RUN(test_dir_fsync_error);
  RUN(test_tmp_names);
  RUN(test_leak_fails_publish);
  TEST_EXIT();
}
