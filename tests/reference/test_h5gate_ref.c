/* test_h5gate_ref.c — the C side of reference.h5gate (h5gate_ref.py).
 *   test_h5gate_ref write DIR   publishes DIR/foil.h5 (foil.ckpt.v1) with
 *                               h5io, for h5py to open and to re-check the
 *                               integrity header in plain Python
 *   test_h5gate_ref check DIR   opens the files h5py wrote (py_*.h5) and
 *                               expects what h5io.h's table says
 * Exit status 0 when every expectation holds. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/h5io.h"

static int fails = 0;

static void expect(int ok, const char *what, const char *msg) {
  printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, msg && *msg ? ": " : "", msg ? msg : "");
  fails += !ok;
}

static int write_file(const char *dir) {
  char p[1024];
  snprintf(p, sizeof p, "%s/foil.h5", dir);
  foil_err err = {0};
  h5io *f = NULL;
  float x[6] = {1, 2, 3, 4, 5, 6.5f};
  uint64_t d[2] = {2, 3};
  const char *s[2] = {"alpha", "naïve"};
  int rc = h5io_create(&f, p, "foil.ckpt.v1", &err);
  if (!rc) rc = h5io_write_f32(f, "model/x", x, 2, d, &err);
  if (!rc) rc = h5io_write_strings(f, "texts", s, 2, &err);
  if (!rc) rc = h5io_attr_i64(f, "/", "step", 7, &err);
  if (!rc) rc = h5io_publish(&f, &err);
  if (rc) {
    h5io_abandon(&f);
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  return 0;
}

/* name, format, expected rc, substring of the message */
static void open_one(const char *dir, const char *name, const char *format, int want, const char *msg) {
  char p[1024], what[1200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  foil_err err = {0};
  h5io *f = NULL;
  int rc = h5io_open(&f, p, format, &err);
  float *x = NULL;
  size_t n = 0;
  if (!rc) rc = h5io_read_f32(f, "x", &x, &n, &err);
  if (!rc && (n != 4 || x[3] != 3.5f)) rc = -1;
  free(x);
  h5io_close(&f);
  snprintf(what, sizeof what, "%s as %s: rc %d (want %d)", name, format ? format : "(any)", rc, want);
  expect(rc == want && (!msg || strstr(err.msg, msg)), what, rc ? err.msg : "");
}

static int check_files(const char *dir) {
  /* h5py with no user block: a dataset opens, a foil-only format does not */
  open_one(dir, "py_pairs.h5", "foil.pairs.v1", FOIL_OK, NULL);
  open_one(dir, "py_ckpt.h5", "foil.ckpt.v1", FOIL_EINVAL, "no integrity header");
  /* h5py with a 512-byte user block, signed by foilh5.py: opens */
  open_one(dir, "py_signed.h5", "foil.ckpt.v1", FOIL_OK, NULL);
  /* the same, one data byte changed after signing: refused */
  open_one(dir, "py_badsign.h5", "foil.ckpt.v1", FOIL_EINVAL, "checksum mismatch");
  return fails ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: test_h5gate_ref write|check DIR\n");
    return 2;
  }
  if (!strcmp(argv[1], "write")) return write_file(argv[2]);
  if (!strcmp(argv[1], "check")) return check_files(argv[2]);
  return 2;
}
