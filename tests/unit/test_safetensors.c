/* test_safetensors.c — storage/safetensors: a written file reads back
 * exactly; F16/BF16 widen exactly; hand-built files with every kind of
 * corruption are refused with the path and the reason. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/safetensors.h"
#include "tests/test.h"

static char dir[512];

static void path_of(char *p, size_t n, const char *name) { snprintf(p, n, "%s/%s", dir, name); }

/* Writes 8-byte length + header (padded to hlen_pad if larger) + data. */
static void write_raw(const char *path, const char *header, uint64_t hlen, const void *data, size_t dlen) {
  FILE *f = fopen(path, "wb");
  uint8_t l[8];
  for (int i = 0; i < 8; i++) l[i] = (uint8_t)(hlen >> (8 * i));
  fwrite(l, 1, 8, f);
  size_t hl = strlen(header);
  fwrite(header, 1, hl, f);
  if (data && dlen) fwrite(data, 1, dlen, f);
  fclose(f);
}

static void test_roundtrip(void) {
  char p[600];
  path_of(p, sizeof p, "rt.safetensors");
  float a[6] = {1.5f, -2.25f, 3e-8f, 0.f, -0.f, 1e30f};
  int64_t ids[3] = {0, 1, 1LL << 40};
  float s = 7.f;
  st_entry e[3] = {
      {.name = "layer.\"odd\"\\name", .dtype = ST_F32, .ndim = 2, .shape = {2, 3}, .data = a},
      {.name = "ids", .dtype = ST_I64, .ndim = 2, .shape = {1, 3}, .data = ids},
      {.name = "scalar", .dtype = ST_F32, .ndim = 0, .data = &s},
  };
  const char *meta[] = {"format", "pt"};
  foil_err err = {0};
  CHECKF(st_write(p, e, 3, meta, 1, &err) == FOIL_OK, "%s", err.msg);
  st_file *f = NULL;
  CHECKF(st_open(&f, p, &err) == FOIL_OK, "%s", err.msg);
  if (!f) return;
  CHECK(st_count(f) == 3);
  CHECK(st_metadata(f, "format") && !strcmp(st_metadata(f, "format"), "pt"));
  CHECK(st_metadata(f, "nope") == NULL);
  const st_tensor *t = st_find(f, "layer.\"odd\"\\name");
  CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
  float back[6];
  CHECK(t && st_read_f32(f, t, back, 6, &err) == FOIL_OK && !memcmp(back, a, sizeof a));
  CHECK(t && st_read_f32(f, t, back, 5, &err) == FOIL_EINVAL);
  const st_tensor *ti = st_find(f, "ids");
  CHECK(ti && ti->dtype == ST_I64 && ti->nbytes == 24 && !memcmp(ti->data, ids, 24));
  CHECK(ti && st_read_f32(f, ti, back, 3, &err) == FOIL_EINVAL && strstr(err.msg, "I64"));
  const st_tensor *ts = st_find(f, "scalar");
  CHECK(ts && ts->ndim == 0 && ts->nelem == 1 && st_read_f32(f, ts, back, 1, &err) == FOIL_OK && back[0] == 7.f);
  CHECK(st_at(f, 0) && !strcmp(st_at(f, 0)->name, "layer.\"odd\"\\name")); /* file order */
  st_close(&f);
  CHECK(f == NULL);
  /* header length is a multiple of 8 */
  FILE *fp = fopen(p, "rb");
  uint8_t l[8] = {0};
  CHECK(fread(l, 1, 8, fp) == 8);
  fclose(fp);
  CHECK(l[0] % 8 == 0);
}

static void test_widen(void) {
  char p[600];
  path_of(p, sizeof p, "half.safetensors");
  /* F16: 1, -2, 65504, 2^-24 (smallest subnormal), inf, 0.5;
   * BF16: 1, -3.5 */
  uint8_t data[16] = {0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x7c, 0x00, 0x38,
                      0x80, 0x3f, 0x60, 0xc0};
  const char *h = "{\"h\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]},"
                  "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]}}";
  write_raw(p, h, strlen(h), data, sizeof data);
  st_file *f = NULL;
  foil_err err = {0};
  CHECKF(st_open(&f, p, &err) == FOIL_OK, "%s", err.msg);
  if (!f) return;
  float v[6];
  CHECK(st_read_f32(f, st_find(f, "h"), v, 6, &err) == FOIL_OK);
  CHECK(v[0] == 1.f && v[1] == -2.f && v[2] == 65504.f && v[3] == 0x1p-24f && v[4] > 3e38f && v[5] == 0.5f);
  CHECK(st_read_f32(f, st_find(f, "b"), v, 2, &err) == FOIL_OK);
  CHECK(v[0] == 1.f && v[1] == -3.5f);
  st_close(&f);
}

/* Expects st_open to refuse the file with code and a message containing
 * the path and `why`. */
static void refused(const char *name, int code, const char *why) {
  char p[600];
  path_of(p, sizeof p, name);
  st_file *f = NULL;
  foil_err err = {0};
  int rc = st_open(&f, p, &err);
  CHECKF(rc == code && f == NULL, "%s: rc %d (want %d): %s", name, rc, code, err.msg);
  CHECKF(strstr(err.msg, p) != NULL, "%s: message lacks the path: %s", name, err.msg);
  CHECKF(strstr(err.msg, why) != NULL, "%s: message lacks '%s': %s", name, why, err.msg);
  st_close(&f);
}

static void corrupt(const char *name, const char *header, size_t dlen, int code, const char *why) {
  char p[600];
  path_of(p, sizeof p, name);
  uint8_t *zeros = calloc(dlen + 1, 1);
  write_raw(p, header, strlen(header), zeros, dlen);
  free(zeros);
  refused(name, code, why);
}

#define T1(dt, shape, off) "{\"a\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}}"

static void test_corruptions(void) {
  char p[600];
  /* missing */
  refused("absent.safetensors", FOIL_ENOTFOUND, "absent.safetensors");
  /* shorter than the length prefix */
  path_of(p, sizeof p, "short.safetensors");
  FILE *f = fopen(p, "wb");
  fwrite("abc", 1, 3, f);
  fclose(f);
  refused("short.safetensors", FOIL_EINVAL, "too short");
  /* header length beyond the limit, and beyond the file */
  path_of(p, sizeof p, "huge.safetensors");
  write_raw(p, "{}", (uint64_t)ST_MAX_HEADER + 1, NULL, 0);
  refused("huge.safetensors", FOIL_EINVAL, "outside");
  path_of(p, sizeof p, "longhdr.safetensors");
  write_raw(p, "{}", 4096, NULL, 0);
  refused("longhdr.safetensors", FOIL_EINVAL, "exceeds the file");
  path_of(p, sizeof p, "tiny.safetensors");
  write_raw(p, "{}", 1, NULL, 0);
  refused("tiny.safetensors", FOIL_EINVAL, "outside");
  /* not JSON, not an object, garbage after it */
  corrupt("notjson.safetensors", "{\"a\": [1,", 0, FOIL_EINVAL, "not a JSON object");
  corrupt("array.safetensors", "[1,2,3]", 0, FOIL_EINVAL, "start with '{'");
  corrupt("trail.safetensors", "{}  x", 0, FOIL_EINVAL, "after the header");
  /* entries */
  corrupt("dtype.safetensors", T1("F31", "[2]", "[0,8]"), 8, FOIL_EINVAL, "unknown dtype \"F31\"");
  corrupt("span.safetensors", T1("F32", "[3]", "[0,8]"), 8, FOIL_EINVAL, "need 12 bytes");
  corrupt("shape.safetensors", T1("F32", "[-1]", "[0,8]"), 8, FOIL_EINVAL, "shape[0]");
  corrupt("shapef.safetensors", T1("F32", "[1.5]", "[0,8]"), 8, FOIL_EINVAL, "shape[0]");
  corrupt("order.safetensors", T1("F32", "[2]", "[8,0]"), 8, FOIL_EINVAL, "begin <= end");
  corrupt("offs.safetensors", T1("F32", "[2]", "[0]"), 8, FOIL_EINVAL, "data_offsets");
  corrupt("nodtype.safetensors", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, FOIL_EINVAL,
          "needs \"dtype\"");
  corrupt("notobj.safetensors", "{\"a\":3}", 0, FOIL_EINVAL, "not an object");
  corrupt("truncated.safetensors", T1("F32", "[4]", "[0,16]"), 12, FOIL_EINVAL, "truncated");
  corrupt("hole.safetensors",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
          12, FOIL_EINVAL, "hole");
  corrupt("overlap.safetensors",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
          8, FOIL_EINVAL, "overlaps");
  corrupt("extra.safetensors", T1("F32", "[1]", "[0,4]"), 8, FOIL_EINVAL, "after the last tensor");
  corrupt("dup.safetensors",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
          8, FOIL_EINVAL, "twice");
  corrupt("meta.safetensors", "{\"__metadata__\":{\"k\":1}}", 0, FOIL_EINVAL, "not a string");
  corrupt("rank.safetensors", T1("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4, FOIL_EINVAL, "dimensions");
  corrupt("overflow.safetensors", T1("F32", "[4294967296,4294967296]", "[0,4]"), 4, FOIL_EINVAL,
          "overflows");
  /* what serde refuses and cJSON let through (review finding 6) */
  corrupt("utf8.safetensors", "{\"a\xff\xfe\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
          FOIL_EINVAL, "not valid UTF-8");
  corrupt("utf8-overlong.safetensors", "{\"a\xc0\xae\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
          FOIL_EINVAL, "not valid UTF-8");
  corrupt("utf8-surrogate.safetensors",
          "{\"a\xed\xa0\x80\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, FOIL_EINVAL,
          "not valid UTF-8");
  corrupt("nul.safetensors", "{\"ab\\u0000cd\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
          FOIL_EINVAL, "u0000");
  corrupt("ctrl.safetensors", "{\"a\tb\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
          FOIL_EINVAL, "control character");
  corrupt("expo.safetensors", T1("F32", "[1]", "[0,4e0]"), 4, FOIL_EINVAL, "data_offsets[1] is 4e0");
  corrupt("frac.safetensors", T1("F32", "[1.0]", "[0,4]"), 4, FOIL_EINVAL, "shape[0] is 1.0");
  corrupt("negzero.safetensors", T1("F32", "[1]", "[-0,4]"), 4, FOIL_EINVAL, "data_offsets[0] is -0");
  corrupt("lead0.safetensors", T1("F32", "[01]", "[0,4]"), 4, FOIL_EINVAL, "shape[0] is 01");
  corrupt("dupmeta.safetensors", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, FOIL_EINVAL,
          "\"k\" appears twice");
  /* escapes that are fine: \\ then u0000 is a backslash and text; a
   * non-ASCII name in UTF-8; \u00e9 */
  path_of(p, sizeof p, "okesc.safetensors");
  const char *okh = "{\"a\\\\u0000\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"caf\xc3\xa9\\u00e9\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                    "\"__metadata__\":{\"n\":\"1.5e3\"}}";
  uint8_t eight[8] = {0};
  write_raw(p, okh, strlen(okh), eight, 8);
  {
    st_file *g = NULL;
    foil_err e2 = {0};
    CHECKF(st_open(&g, p, &e2) == FOIL_OK, "%s", e2.msg);
    CHECK(g && st_find(g, "a\\u0000") && st_find(g, "caf\xc3\xa9\xc3\xa9"));
    st_close(&g);
  }
  /* a good file cut short loses its last bytes: refused, not misread */
  path_of(p, sizeof p, "rt.safetensors");
  char q[600];
  path_of(q, sizeof q, "cut.safetensors");
  FILE *in = fopen(p, "rb"), *out = fopen(q, "wb");
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf, in);
  fwrite(buf, 1, n - 3, out);
  fclose(in);
  fclose(out);
  refused("cut.safetensors", FOIL_EINVAL, "truncated");
  /* an empty but valid file */
  path_of(p, sizeof p, "empty.safetensors");
  write_raw(p, "{}      ", 8, NULL, 0);
  st_file *ok = NULL;
  foil_err err = {0};
  CHECKF(st_open(&ok, p, &err) == FOIL_OK && ok && st_count(ok) == 0, "%s", err.msg);
  st_close(&ok);
}

/* Many tiny tensors (53 header bytes each; a 100 MB header holds ~2M):
 * the duplicate-name check and st_find must not be quadratic (review
 * finding 5: 80k names took 10 s). */
static void test_many(void) {
  enum { N = 80000 };
  char p[600];
  path_of(p, sizeof p, "many.safetensors");
  size_t cap = (size_t)N * 64 + 64, len = 0;
  char *h = malloc(cap);
  if (!h) return;
  len += (size_t)snprintf(h + len, cap - len, "{");
  for (int i = 0; i < N; i++)
    len += (size_t)snprintf(h + len, cap - len, "%s\"t%d\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}",
                            i ? "," : "", i);
  snprintf(h + len, cap - len, "}");
  write_raw(p, h, strlen(h), NULL, 0);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  st_file *f = NULL;
  foil_err err = {0};
  CHECKF(st_open(&f, p, &err) == FOIL_OK, "%s", err.msg);
  int found = 1;
  for (int i = 0; f && i < N; i += 997) {
    char nm[32];
    snprintf(nm, sizeof nm, "t%d", i);
    const st_tensor *t = st_find(f, nm);
    found &= t && !strcmp(t->name, nm);
  }
  CHECK(f && st_count(f) == N && found && !st_find(f, "t80000"));
  st_close(&f);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  printf("  %d tensors: st_open and %d st_find in %.3f s\n", N, N / 997 + 1, s);
  CHECKF(s < 1.0, "st_open of %d tensors took %.2f s (quadratic?)", N, s); /* was 10 s */
  /* the same with a duplicate at the very end */
  snprintf(h + len, cap - len, ",\"t7\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}");
  write_raw(p, h, strlen(h), NULL, 0);
  CHECK(st_open(&f, p, &err) == FOIL_EINVAL && strstr(err.msg, "\"t7\" appears twice"));
  free(h);
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(dir, sizeof dir, "%s/safetensors.%d", t ? t : "/tmp", (int)getpid());
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
  if (system(cmd) != 0) return 1;
  RUN(test_roundtrip);
  RUN(test_widen);
  RUN(test_corruptions);
  RUN(test_many);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) return 1;
  TEST_EXIT();
}
