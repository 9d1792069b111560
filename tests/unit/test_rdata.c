/* test_rdata.c — R serialization reader: hand-built XDR streams (plain and
 * zlib/gzip wrapped), a lazy-load database written by the test, the real
 * janeaustenr/tidytext databases when installed, and corrupt inputs. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lzma.h>
#include <zlib.h>

#include "storage/rdata.h"
#include "tests/test.h"

typedef struct {
  unsigned char b[16384];
  size_t n;
} buf_t;

static void put_int(buf_t *o, int32_t v) {
  uint32_t u = (uint32_t)v;
  o->b[o->n++] = (unsigned char)(u >> 24);
  o->b[o->n++] = (unsigned char)(u >> 16);
  o->b[o->n++] = (unsigned char)(u >> 8);
  o->b[o->n++] = (unsigned char)u;
}
static void put_real(buf_t *o, double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  for (int i = 0; i < 8; i++) o->b[o->n++] = (unsigned char)(u >> (56 - 8 * i));
}
static void put_header(buf_t *o, int version) {
  o->b[o->n++] = 'X';
  o->b[o->n++] = '\n';
  put_int(o, version);
  put_int(o, 0x040201);
  put_int(o, 0x030500);
  if (version == 3) {
    put_int(o, 5);
    memcpy(o->b + o->n, "UTF-8", 5);
    o->n += 5;
  }
}
/* CHARSXP; levels 8 = UTF-8, 4 = latin1, 64 = ASCII; s NULL = NA */
static void put_char(buf_t *o, const char *s, int levels) {
  put_int(o, 9 | levels << 12);
  if (!s) {
    put_int(o, -1);
    return;
  }
  put_int(o, (int32_t)strlen(s));
  memcpy(o->b + o->n, s, strlen(s));
  o->n += strlen(s);
}
static void put_sym(buf_t *o, const char *s) {
  put_int(o, 1);
  put_char(o, s, 64);
}

/* list(x = 1:3 as INTSXP, y = c("a", NA, "caf\xe9" latin1)) with names,
 * attributes pairlist: names, then a second element referring back to the
 * "names" symbol by REFSXP. */
static void build_list(buf_t *o, int version) {
  put_header(o, version);
  put_int(o, 19 | 1 << 9); /* VECSXP with attributes */
  put_int(o, 2);
  put_int(o, 13); /* INTSXP */
  put_int(o, 3);
  put_int(o, 1);
  put_int(o, 2);
  put_int(o, INT32_MIN);
  put_int(o, 16); /* STRSXP */
  put_int(o, 3);
  put_char(o, "a", 64);
  put_char(o, NULL, 0);
  put_char(o, "caf\xe9", 4);
  /* attributes: pairlist (names = c("x", "y"), comment = "names" symbol ref) */
  put_int(o, 2 | 1 << 10);
  put_sym(o, "names"); /* ref 1 */
  put_int(o, 16);
  put_int(o, 2);
  put_char(o, "x", 64);
  put_char(o, "y", 8);
  put_int(o, 2 | 1 << 10);
  put_sym(o, "comment"); /* ref 2 */
  put_int(o, 255 | 1 << 8); /* REFSXP to ref 1 (the names symbol) */
  put_int(o, 254);          /* end of pairlist */
}

static void check_list(const rdata_val *v) {
  CHECK(v && v->type == RDATA_VECSXP && v->n == 2);
  if (!v || v->n != 2) return;
  const rdata_val *x = rdata_get(v, "x"), *y = rdata_get(v, "y");
  CHECK(x && x->type == RDATA_INTSXP && x->n == 3 && x->ints[0] == 1 && x->ints[2] == RDATA_NA_INT);
  CHECK(y && y->type == RDATA_STRSXP && y->n == 3);
  if (y && y->n == 3) {
    CHECK(!strcmp(y->str[0], "a") && y->str[1] == NULL);
    CHECK(!strcmp(y->str[2], "caf\xc3\xa9")); /* latin1 converted to UTF-8 */
  }
  const rdata_val *c = rdata_attr(v, "comment");
  CHECK(c && c->type == RDATA_SYMSXP && !strcmp(c->str[0], "names"));
  CHECK(rdata_get(v, "z") == NULL);
}

static size_t zwrap(const buf_t *in, unsigned char *out, size_t cap, int gzip) {
  z_stream z;
  memset(&z, 0, sizeof z);
  deflateInit2(&z, 6, Z_DEFLATED, gzip ? 31 : 15, 8, Z_DEFAULT_STRATEGY);
  z.next_in = (Bytef *)in->b;
  z.avail_in = (uInt)in->n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  deflate(&z, Z_FINISH);
  size_t n = cap - z.avail_out;
  deflateEnd(&z);
  return n;
}

static void test_streams(void) {
  foil_err err = {0};
  for (int version = 2; version <= 3; version++) {
    buf_t o = {.n = 0};
    build_list(&o, version);
    rdata_doc *d;
    const rdata_val *v;
    CHECKF(rdata_unserialize(o.b, o.n, "hand", &d, &v, &err) == 0, "%s", err.msg);
    check_list(v);
    rdata_doc_free(&d);
    CHECK(d == NULL);
    unsigned char z[8192];
    for (int gz = 0; gz < 2; gz++) {
      size_t zn = zwrap(&o, z, sizeof z, gz);
      CHECKF(rdata_unserialize(z, zn, "hand.gz", &d, &v, &err) == 0, "%s", err.msg);
      check_list(v);
      rdata_doc_free(&d);
    }
  }
  /* NULL, a REALSXP with attributes-free doubles */
  buf_t o = {.n = 0};
  put_header(&o, 2);
  put_int(&o, 254);
  rdata_doc *d;
  const rdata_val *v;
  CHECK(rdata_unserialize(o.b, o.n, "null", &d, &v, &err) == 0 && v == NULL);
  rdata_doc_free(&d);
}

static void test_corrupt(void) {
  foil_err err = {0};
  buf_t o = {.n = 0};
  build_list(&o, 3);
  rdata_doc *d = (rdata_doc *)1;
  const rdata_val *v;
  /* every truncation is refused with an offset, never a crash */
  int refused = 0;
  for (size_t cut = 0; cut < o.n; cut++) {
    err.msg[0] = '\0';
    if (rdata_unserialize(o.b, cut, "cut", &d, &v, &err) == FOIL_EINVAL && d == NULL &&
        strstr(err.msg, "cut"))
      refused++;
  }
  CHECKF(refused == (int)o.n, "%d of %zu truncations refused", refused, o.n);
  /* a truncated stream's message names the offset */
  rdata_unserialize(o.b, o.n - 3, "short.rds", &d, &v, &err);
  CHECKF(strstr(err.msg, "short.rds") && strstr(err.msg, "offset"), "%s", err.msg);
  /* flipping each byte: never a crash (ASan/UBSan watch), errors are INVALID_ARGUMENT */
  for (size_t i = 0; i < o.n; i++) {
    buf_t c = o;
    c.b[i] ^= 0xA5;
    int rc = rdata_unserialize(c.b, c.n, "flip", &d, &v, &err);
    CHECK(rc == 0 || rc == FOIL_EINVAL);
    rdata_doc_free(&d);
  }
  /* a huge declared length is refused before allocating */
  buf_t h = {.n = 0};
  put_header(&h, 2);
  put_int(&h, 16);
  put_int(&h, 0x7FFFFFFF);
  CHECK(rdata_unserialize(h.b, h.n, "huge", &d, &v, &err) == FOIL_EINVAL && strstr(err.msg, "length"));
  /* dangling reference */
  buf_t r = {.n = 0};
  put_header(&r, 2);
  put_int(&r, 255 | 7 << 8);
  CHECK(rdata_unserialize(r.b, r.n, "ref", &d, &v, &err) == FOIL_EINVAL && strstr(err.msg, "reference"));
  /* deep nesting */
  buf_t deep = {.n = 0};
  put_header(&deep, 2);
  for (int i = 0; i < 600; i++) {
    put_int(&deep, 19);
    put_int(&deep, 1);
  }
  put_int(&deep, 254);
  CHECK(rdata_unserialize(deep.b, deep.n, "deep", &d, &v, &err) == FOIL_EINVAL && strstr(err.msg, "deep"));
  /* not XDR */
  CHECK(rdata_unserialize("A\n1\n", 4, "ascii", &d, &v, &err) == FOIL_EINVAL && strstr(err.msg, "ASCII"));
  /* corrupt zlib wrapper */
  unsigned char z[8192];
  size_t zn = zwrap(&o, z, sizeof z, 0);
  CHECK(rdata_unserialize(z, zn / 2, "half.gz", &d, &v, &err) == FOIL_EINVAL && strstr(err.msg, "half.gz"));
}

/* ALTREP info pairlist (class, package, type) */
static void put_altrep(buf_t *o, const char *cls, int type) {
  put_int(o, 238);
  put_int(o, 2);
  put_sym(o, cls);
  put_int(o, 2);
  put_sym(o, "base");
  put_int(o, 2);
  put_int(o, 13);
  put_int(o, 1);
  put_int(o, type);
  put_int(o, 254);
}
/* compact sequence: (length, start, step) */
static void put_seq(buf_t *o, const char *cls, double n, double n1, double inc) {
  put_altrep(o, cls, cls[8] == 'i' ? 13 : 14);
  put_int(o, 14);
  put_int(o, 3);
  put_real(o, n);
  put_real(o, n1);
  put_real(o, inc);
  put_int(o, 254);
}

/* Inputs the fuzzer (tests/fuzz/fuzz_foreign.c) or its review found: a
 * few bytes that expanded to gigabytes, and doubles converted to integers
 * they do not fit (undefined; UBSan in the sanitizer build). */
static void test_hostile(void) {
  foil_err err = {0};
  rdata_doc *d;
  const rdata_val *v;
  /* a compact integer sequence starting at NaN: refused, not converted */
  buf_t o = {.n = 0};
  put_header(&o, 3);
  put_seq(&o, "compact_intseq", 5, NAN, 1);
  CHECKF(rdata_unserialize(o.b, o.n, "nan", &d, &v, &err) == FOIL_EINVAL && strstr(err.msg, "integer range"),
         "%s", err.msg);
  /* a 2^27-element sequence (512 MiB of ints from 60 bytes): over the budget */
  o.n = 0;
  put_header(&o, 3);
  put_seq(&o, "compact_intseq", 134217728.0, 1, 1);
  CHECKF(rdata_unserialize(o.b, o.n, "bomb", &d, &v, &err) == FOIL_EINVAL && strstr(err.msg, "256 MiB") &&
             strstr(err.msg, "bomb") && strstr(err.msg, "offset"),
         "%s", err.msg);
  /* the budget is per stream: two sequences of 24M doubles (192 MiB each) */
  o.n = 0;
  put_header(&o, 3);
  put_int(&o, 19);
  put_int(&o, 2);
  put_seq(&o, "compact_realseq", 25165824.0, 0.5, 1);
  put_seq(&o, "compact_realseq", 25165824.0, 0.5, 1);
  CHECKF(rdata_unserialize(o.b, o.n, "two", &d, &v, &err) == FOIL_EINVAL && strstr(err.msg, "256 MiB"), "%s",
         err.msg);
  /* deferred strings of a long sequence: ~24 bytes a string */
  o.n = 0;
  put_header(&o, 3);
  put_altrep(&o, "deferred_string", 16);
  put_int(&o, 2);
  put_seq(&o, "compact_intseq", 16777216.0, 1, 1);
  put_int(&o, 2);
  put_int(&o, 13);
  put_int(&o, 1);
  put_int(&o, 1);
  put_int(&o, 254);
  put_int(&o, 254);
  CHECKF(rdata_unserialize(o.b, o.n, "strings", &d, &v, &err) == FOIL_EINVAL && strstr(err.msg, "deferred_string"),
         "%s", err.msg);
  /* within the budget: expanded as before */
  o.n = 0;
  put_header(&o, 3);
  put_seq(&o, "compact_intseq", 1000000.0, -5, 1);
  CHECKF(rdata_unserialize(o.b, o.n, "ok", &d, &v, &err) == 0, "%s", err.msg);
  CHECK(v && v->type == RDATA_INTSXP && v->n == 1000000 && v->ints[0] == -5 && v->ints[999999] == 999994);
  rdata_doc_free(&d);
}

/* a lazy-load database: .rdx (gzip'd index) + .rdb (zlib records) */
static void write_db(const char *base, int truncate_rdb) {
  buf_t rec = {.n = 0};
  build_list(&rec, 3);
  unsigned char z[8192];
  size_t zn = zwrap(&rec, z, sizeof z, 0);
  char path[700];
  snprintf(path, sizeof path, "%s.rdb", base);
  FILE *f = fopen(path, "wb");
  unsigned char hdr[4] = {(unsigned char)(rec.n >> 24), (unsigned char)(rec.n >> 16),
                          (unsigned char)(rec.n >> 8), (unsigned char)rec.n};
  fwrite(hdr, 1, 4, f);
  fwrite(z, 1, truncate_rdb ? zn / 2 : zn, f);
  fclose(f);
  buf_t x = {.n = 0};
  put_header(&x, 3);
  put_int(&x, 19 | 1 << 9); /* list(variables=, references=, compressed=) */
  put_int(&x, 3);
  put_int(&x, 19 | 1 << 9); /* variables: list(obj = c(0L, len)) */
  put_int(&x, 1);
  put_int(&x, 13);
  put_int(&x, 2);
  put_int(&x, 0);
  put_int(&x, (int32_t)(4 + zn));
  put_int(&x, 2 | 1 << 10);
  put_sym(&x, "names");
  put_int(&x, 16);
  put_int(&x, 1);
  put_char(&x, "obj", 64);
  put_int(&x, 254);
  put_int(&x, 19); /* references: list() */
  put_int(&x, 0);
  put_int(&x, 10); /* compressed: TRUE */
  put_int(&x, 1);
  put_int(&x, 1);
  put_int(&x, 2 | 1 << 10);
  put_int(&x, 255 | 1 << 8);
  put_int(&x, 16);
  put_int(&x, 3);
  put_char(&x, "variables", 64);
  put_char(&x, "references", 64);
  put_char(&x, "compressed", 64);
  put_int(&x, 254);
  size_t gn = zwrap(&x, z, sizeof z, 1);
  snprintf(path, sizeof path, "%s.rdx", base);
  f = fopen(path, "wb");
  fwrite(z, 1, gn, f);
  fclose(f);
}

static void test_db(const char *dir) {
  foil_err err = {0};
  char base[600];
  snprintf(base, sizeof base, "%s/Rdata", dir);
  write_db(base, 0);
  rdata_db *db;
  CHECKF(rdata_db_open(&db, base, &err) == 0, "%s", err.msg);
  if (!db) return;
  CHECK(rdata_db_count(db) == 1 && !strcmp(rdata_db_name(db, 0), "obj"));
  rdata_doc *d;
  const rdata_val *v;
  CHECKF(rdata_db_load(db, "obj", &d, &v, &err) == 0, "%s", err.msg);
  check_list(v);
  rdata_doc_free(&d);
  CHECK(rdata_db_load(db, "nope", &d, &v, &err) == FOIL_ENOTFOUND);
  rdata_db_close(&db);
  /* the .rdb cut short: the index points past its end */
  snprintf(base, sizeof base, "%s/Cut", dir);
  write_db(base, 1);
  CHECK(rdata_db_open(&db, base, &err) == FOIL_EINVAL && strstr(err.msg, "Cut.rdb") &&
        strstr(err.msg, "truncated") && db == NULL);
  /* missing */
  snprintf(base, sizeof base, "%s/Missing", dir);
  CHECK(rdata_db_open(&db, base, &err) == FOIL_ENOTFOUND && strstr(err.msg, "Missing.rdx"));
}

static void test_corrupt_record(const char *dir) {
  /* a corrupt compressed record inside a well-formed database */
  foil_err err = {0};
  char base[600], path[700];
  snprintf(base, sizeof base, "%s/Bad", dir);
  write_db(base, 0);
  snprintf(path, sizeof path, "%s.rdb", base);
  FILE *f = fopen(path, "r+b");
  fseek(f, 20, SEEK_SET);
  fputc(0xFF, f);
  fputc(0x00, f);
  fclose(f);
  rdata_db *db;
  CHECKF(rdata_db_open(&db, base, &err) == 0, "%s", err.msg);
  if (!db) return;
  rdata_doc *d;
  const rdata_val *v;
  int rc = rdata_db_load(db, "obj", &d, &v, &err);
  CHECKF(rc == FOIL_EINVAL && strstr(err.msg, "Bad.rdb") && strstr(err.msg, "byte 0") && d == NULL,
         "rc %d: %s", rc, err.msg);
  rdata_db_close(&db);
}

/* writes <base>.rdx: list(variables = list(obj = <entry>), references =
 * list(), compressed = <compressed>), each given as raw items */
static void write_rdx(const char *base, const buf_t *entry, const buf_t *compressed) {
  buf_t x = {.n = 0};
  put_header(&x, 3);
  put_int(&x, 19 | 1 << 9);
  put_int(&x, 3);
  put_int(&x, 19 | 1 << 9);
  put_int(&x, 1);
  memcpy(x.b + x.n, entry->b, entry->n);
  x.n += entry->n;
  put_int(&x, 2 | 1 << 10);
  put_sym(&x, "names");
  put_int(&x, 16);
  put_int(&x, 1);
  put_char(&x, "obj", 64);
  put_int(&x, 254);
  put_int(&x, 19);
  put_int(&x, 0);
  memcpy(x.b + x.n, compressed->b, compressed->n);
  x.n += compressed->n;
  put_int(&x, 2 | 1 << 10);
  put_int(&x, 255 | 1 << 8);
  put_int(&x, 16);
  put_int(&x, 3);
  put_char(&x, "variables", 64);
  put_char(&x, "references", 64);
  put_char(&x, "compressed", 64);
  put_int(&x, 254);
  char path[700];
  snprintf(path, sizeof path, "%s.rdx", base);
  FILE *f = fopen(path, "wb");
  fwrite(x.b, 1, x.n, f);
  fclose(f);
}

static void write_rdb(const char *base, const void *rec, size_t n) {
  char path[700];
  snprintf(path, sizeof path, "%s.rdb", base);
  FILE *f = fopen(path, "wb");
  fwrite(rec, 1, n, f);
  fclose(f);
}

/* damaged indexes and records: refused by name, without undefined
 * conversions or allocations the bytes do not justify */
static void test_hostile_db(const char *dir) {
  foil_err err = {0};
  char base[600];
  snprintf(base, sizeof base, "%s/Hostile", dir);
  buf_t rec = {.n = 0};
  put_header(&rec, 2);
  put_int(&rec, 254);
  unsigned char r[256] = {0, 0, 0, (unsigned char)rec.n};
  uLongf zl = sizeof r - 4;
  compress(r + 4, &zl, rec.b, rec.n);
  write_rdb(base, r, 4 + zl);
  buf_t good = {.n = 0}, t = {.n = 0}, e = {.n = 0}, c = {.n = 0};
  put_int(&good, 13), put_int(&good, 2), put_int(&good, 0), put_int(&good, (int32_t)(4 + zl));
  put_int(&t, 10), put_int(&t, 1), put_int(&t, 1);
  /* an offset of 1e300 as a double */
  put_int(&e, 14), put_int(&e, 2), put_real(&e, 1e300), put_real(&e, 10);
  write_rdx(base, &e, &t);
  rdata_db *db = NULL;
  CHECKF(rdata_db_open(&db, base, &err) == FOIL_EINVAL && strstr(err.msg, "Hostile.rdx") &&
             strstr(err.msg, "(offset, length)"),
         "%s", err.msg);
  rdata_db_close(&db);
  /* compressed = NaN, and 1e300 */
  for (int k = 0; k < 2; k++) {
    c.n = 0;
    put_int(&c, 14), put_int(&c, 1), put_real(&c, k ? 1e300 : NAN);
    write_rdx(base, &good, &c);
    CHECKF(rdata_db_open(&db, base, &err) == FOIL_EINVAL && strstr(err.msg, "compressed"), "%s", err.msg);
    rdata_db_close(&db);
  }
  /* a record whose header claims 2 GiB - 1: decoded into a buffer that
   * grows with the real output, then refused */
  r[0] = 0x7f, r[1] = r[2] = r[3] = 0xff;
  write_rdb(base, r, 4 + zl);
  write_rdx(base, &good, &t);
  CHECKF(rdata_db_open(&db, base, &err) == 0, "%s", err.msg);
  rdata_doc *d = NULL;
  const rdata_val *v;
  if (db)
    CHECKF(rdata_db_load(db, "obj", &d, &v, &err) == FOIL_EINVAL && strstr(err.msg, "2147483647"), "%s", err.msg);
  rdata_db_close(&db);
  /* an xz record whose block header asks for a 4 GiB dictionary */
  unsigned char xz[512];
  size_t xn = 0;
  lzma_options_lzma opt;
  lzma_lzma_preset(&opt, 0);
  opt.dict_size = 1 << 16;
  lzma_filter filters[] = {{.id = LZMA_FILTER_LZMA2, .options = &opt}, {.id = LZMA_VLI_UNKNOWN}};
  CHECK(lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32, NULL, rec.b, rec.n, xz, &xn, sizeof xz) == LZMA_OK);
  /* block header at 12: size, flags, the sizes (varints) when flagged,
   * filter id 0x21, props size 1, the dictionary byte (40: 4 GiB - 1),
   * padding, CRC-32 */
  size_t bh = 12, bsz = ((size_t)xz[bh] + 1) * 4, p = bh + 2;
  for (int bit = 0x40; bit <= 0x80; bit <<= 1)
    if (xz[bh + 1] & bit)
      while (xz[p++] & 0x80) {
      }
  CHECK((xz[bh + 1] & 3) == 0 && xz[p] == 0x21 && xz[p + 1] == 1);
  p += 2;
  xz[p] = 40;
  uint32_t crc = (uint32_t)crc32(0, xz + bh, (uInt)(bsz - 4));
  for (int i = 0; i < 4; i++) xz[bh + bsz - 4 + i] = (unsigned char)(crc >> (8 * i));
  unsigned char rx[600] = {0, 0, 0, (unsigned char)rec.n, 'X'};
  memcpy(rx + 5, xz, xn);
  write_rdb(base, rx, 5 + xn);
  good.n = 0;
  put_int(&good, 13), put_int(&good, 2), put_int(&good, 0), put_int(&good, (int32_t)(5 + xn));
  c.n = 0;
  put_int(&c, 13), put_int(&c, 1), put_int(&c, 3);
  write_rdx(base, &good, &c);
  CHECKF(rdata_db_open(&db, base, &err) == 0, "%s", err.msg);
  if (db)
    CHECKF(rdata_db_load(db, "obj", &d, &v, &err) == FOIL_EINVAL && strstr(err.msg, "4096 MiB") &&
               strstr(err.msg, "Hostile.rdb"),
           "%s", err.msg);
  rdata_db_close(&db);
  /* the same record with a 64 KiB dictionary again: reads */
  xz[p] = 0;
  crc = (uint32_t)crc32(0, xz + bh, (uInt)(bsz - 4));
  for (int i = 0; i < 4; i++) xz[bh + bsz - 4 + i] = (unsigned char)(crc >> (8 * i));
  memcpy(rx + 5, xz, xn);
  write_rdb(base, rx, 5 + xn);
  CHECKF(rdata_db_open(&db, base, &err) == 0, "%s", err.msg);
  if (db) CHECKF(rdata_db_load(db, "obj", &d, &v, &err) == 0 && v == NULL, "%s", err.msg);
  rdata_doc_free(&d);
  rdata_db_close(&db);
}

static void test_installed(void) {
  struct stat st;
  const char *ja = "/usr/lib/R/site-library/janeaustenr/data/Rdata";
  if (stat("/usr/lib/R/site-library/janeaustenr/data/Rdata.rdx", &st) != 0) {
    printf("(janeaustenr not installed: skipped)\n");
    return;
  }
  foil_err err = {0};
  rdata_db *db;
  CHECKF(rdata_db_open(&db, ja, &err) == 0, "%s", err.msg);
  if (!db) return;
  CHECK(rdata_db_count(db) == 6);
  rdata_doc *d;
  const rdata_val *v;
  CHECKF(rdata_db_load(db, "emma", &d, &v, &err) == 0, "%s", err.msg);
  CHECK(v && v->type == RDATA_STRSXP && v->n > 16000);
  if (v && v->n > 14) {
    CHECK(!strcmp(v->str[0], "EMMA"));
    CHECK(!strncmp(v->str[14], "Emma Woodhouse, handsome, clever, and rich", 42));
  }
  rdata_doc_free(&d);
  rdata_db_close(&db);
  /* tidytext: tibbles (data frames with class and compact row names) */
  if (rdata_db_open(&db, "/usr/lib/R/site-library/tidytext/data/Rdata", &err) == 0) {
    CHECKF(rdata_db_load(db, "stop_words", &d, &v, &err) == 0, "%s", err.msg);
    CHECK(v && v->type == RDATA_VECSXP && rdata_inherits(v, "data.frame") && rdata_inherits(v, "tbl_df"));
    const rdata_val *w = rdata_get(v, "word");
    CHECK(w && w->type == RDATA_STRSXP && w->n > 1000 && !strcmp(w->str[0], "a"));
    rdata_doc_free(&d);
    rdata_db_close(&db);
  }
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/rdata-%ld", t ? t : "/tmp", (long)getpid());
  mkdir(t ? t : "/tmp", 0755);
  mkdir(dir, 0755);
  RUN(test_streams);
  RUN(test_corrupt);
  RUN(test_hostile);
  int before = test_failures;
  test_db(dir);
  test_corrupt_record(dir);
  test_hostile_db(dir);
  printf("%-40s %s\n", "test_db", test_failures == before ? "ok" : "FAILED");
  RUN(test_installed);
  TEST_EXIT();
}
