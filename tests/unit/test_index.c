/* test_index.c — embedding index versions: shard round trip per dtype,
 * keys, publish → CURRENT, pruning, and the refusals of checked reads;
 * concurrent refreshes: the index lock, a live writer's version never
 * pruned, CURRENT never moved to an older step of the same run; a
 * non-finite vector (a diverged checkpoint) refused before a shard is
 * written. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "model/vsearch.h"
#include "storage/h5io.h"
#include "storage/index.h"
#include "tests/test.h"
#include "tests/unit/dead_pid.h"

static char root[512];
enum { D = 12 };

static float *unit_rows(int64_t n, int d, uint32_t seed) {
  float *x = malloc(sizeof(float) * (size_t)(n * d + 1));
  uint32_t s = seed * 2654435761u + 1;
  for (int64_t i = 0; i < n; i++) {
    double norm = 0;
    for (int j = 0; j < d; j++) {
      s = s * 1664525u + 1013904223u;
      x[i * d + j] = (float)((s >> 8) / 16777216.0 - 0.5);
      norm += (double)x[i * d + j] * x[i * d + j];
    }
    for (int j = 0; j < d; j++) x[i * d + j] = (float)(x[i * d + j] / sqrt(norm));
  }
  return x;
}

static index_meta meta(const char *name, int version, int shard, int n_shards, vs_dtype dt) {
  index_meta m = {.version = version, .shard = shard, .n_shards = n_shards, .dim = D, .dtype = dt,
                  .normalized = 1, .step = 42};
  snprintf(m.name, sizeof m.name, "%s", name);
  snprintf(m.checkpoint, sizeof m.checkpoint, "/ckpt/step_42.h5");
  snprintf(m.model_hash, sizeof m.model_hash, "0badcafe");
  return m;
}

/* Writes an n_shards version of `rows` rows (ids 100.., keys "doc-i") and publishes it. */
static int make_version(const char *name, vs_dtype dt, int n_shards, int64_t rows, int keep, int *version,
                        foil_err *err) {
  int rc = index_version_begin(root, name, version, err);
  float *x = unit_rows(rows, D, (uint32_t)*version);
  for (int r = 0; !rc && r < n_shards; r++) {
    int64_t lo = r * rows / n_shards, hi = (r + 1) * rows / n_shards;
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(hi - lo + 1));
    char **keys = malloc(sizeof(char *) * (size_t)(hi - lo + 1));
    for (int64_t i = lo; i < hi; i++) {
      ids[i - lo] = 100 + i;
      keys[i - lo] = malloc(32);
      snprintf(keys[i - lo], 32, "doc-%lld", (long long)i);
    }
    index_meta m = meta(name, *version, r, n_shards, dt);
    rc = index_shard_write(root, &m, ids, keys, x + lo * D, hi - lo, err);
    for (int64_t i = lo; i < hi; i++) free(keys[i - lo]);
    free(keys);
    free(ids);
  }
  free(x);
  if (!rc) rc = index_publish(root, name, *version, n_shards, keep, err);
  return rc;
}

static void test_roundtrip(void) {
  const char *names[3] = {"rt-f32", "rt-f16", "rt-i8"};
  for (int dt = 0; dt < 3; dt++) {
    foil_err err = {0};
    int v = 0;
    const int64_t rows = 37;
    CHECKF(make_version(names[dt], (vs_dtype)dt, 3, rows, 3, &v, &err) == 0, "%s", err.msg);
    CHECK(v == 1);
    int cur = 0;
    CHECKF(index_current(root, names[dt], &cur, &err) == 0 && cur == 1, "%s", err.msg);
    index_version *iv = NULL;
    CHECKF(index_version_open(root, names[dt], 1, NULL, 0, &iv, &err) == 0, "%s", err.msg);
    if (!iv) continue;
    CHECK(iv->n_shards == 3 && iv->meta.count == rows && iv->meta.dim == D && iv->meta.dtype == (vs_dtype)dt);
    CHECK(!strcmp(iv->meta.model_hash, "0badcafe") && iv->meta.step == 42 && iv->meta.normalized == 1);
    float *x = unit_rows(rows, D, 1);
    double maxerr = 0;
    int64_t seen = 0;
    for (int s = 0; s < iv->n_shards; s++) {
      index_shard *sh = iv->shards[s];
      CHECK(sh->meta.shard == s && iv->shard_ids[s] == s && sh->keys);
      float *back = malloc(sizeof(float) * (size_t)(sh->n * D + 1));
      if (dt == VS_F32) memcpy(back, sh->vectors, sizeof(float) * (size_t)(sh->n * D));
      if (dt == VS_F16) vs_from_f16(back, sh->vectors, sh->n * D);
      for (int64_t i = 0; dt == VS_I8 && i < sh->n; i++)
        for (int j = 0; j < D; j++) back[i * D + j] = sh->scales[i] * ((const int8_t *)sh->vectors)[i * D + j];
      for (int64_t i = 0; i < sh->n; i++) {
        int64_t row = sh->ids[i] - 100;
        char want[32];
        snprintf(want, sizeof want, "doc-%lld", (long long)row);
        CHECK(row >= 0 && row < rows && !strcmp(sh->keys[i], want));
        if (row < 0 || row >= rows) continue;
        for (int j = 0; j < D; j++) {
          double e = fabs(back[i * D + j] - x[row * D + j]);
          if (e > maxerr) maxerr = e;
          if (sh->exact) CHECK(sh->exact[i * D + j] == x[row * D + j]);
        }
        seen++;
      }
      CHECK((dt == VS_F32) == (sh->exact == NULL) && (dt == VS_I8) == (sh->scales != NULL));
      free(back);
    }
    CHECK(seen == rows);
    double tol = dt == VS_F32 ? 0 : dt == VS_F16 ? 1e-3 : 0.5 / 127 * 1.0001;
    CHECKF(maxerr <= tol, "%s: max error %g over %g", names[dt], maxerr, tol);
    free(x);
    index_version_destroy(&iv);
    /* a subset of shards */
    int which[1] = {2};
    CHECKF(index_version_open(root, names[dt], 1, which, 1, &iv, &err) == 0, "%s", err.msg);
    CHECK(iv && iv->n_shards == 1 && iv->shard_ids[0] == 2 && iv->meta.count == rows - 2 * rows / 3);
    index_version_destroy(&iv);
  }
}

static void test_half_conversion(void) {
  float in[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 1e6f, 6.0e-8f, 1e-9f, 0.33325195f, 1.0009766f, 1.00048828125f};
  uint16_t h[11];
  float out[11];
  vs_to_f16(h, in, 11);
  vs_from_f16(out, h, 11);
  CHECK(h[0] == 0 && h[1] == 0x8000 && h[2] == 0x3c00 && h[3] == 0xc100 && h[4] == 0x7bff);
  CHECK(h[5] == 0x7c00);                 /* overflow → inf */
  CHECK(h[6] == 0x0001 && h[7] == 0);    /* smallest subnormal; underflow → 0 */
  CHECK(out[8] == 0.33325195f && out[9] == 1.0009766f);
  CHECK(h[10] == 0x3c00);                /* a tie rounds to even */
  int8_t q[4];
  float sc, row[4] = {0.5f, -1.0f, 0.25f, 0.0f};
  vs_to_i8(q, &sc, row, 1, 4);
  CHECK(fabsf(sc - 1.0f / 127) < 1e-9f && q[1] == -127 && q[0] == 64 && q[3] == 0);
}

static void test_publish_and_prune(void) {
  foil_err err = {0};
  int v = 0;
  for (int i = 1; i <= 5; i++) {
    CHECKF(make_version("pr", VS_F32, 2, 10, 2, &v, &err) == 0, "%s", err.msg);
    CHECK(v == i);
  }
  char p[1024];
  for (int k = 1; k <= 5; k++) {
    snprintf(p, sizeof p, "%s/indexes/pr/v%d", root, k);
    CHECKF((access(p, F_OK) == 0) == (k >= 4), "v%d kept: %d", k, access(p, F_OK) == 0);
  }
  /* an incomplete version (a killed refresh: a child that wrote one shard
   * and died holding its marker) stays while it is the newest... */
  int vi = 0;
  pid_t c = fork();
  if (c == 0) {
    int hold = -1;
    if (index_version_begin_held(root, "pr", &vi, &hold, &err) || vi != 6) _exit(1);
    index_meta m = meta("pr", 6, 0, 2, VS_F32);
    int64_t ids[1] = {0};
    float *x = unit_rows(1, D, 9);
    _exit(index_shard_write(root, &m, ids, NULL, x, 1, &err) == 0 ? 0 : 1);
  }
  int st = 0;
  CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  int cur = 0;
  CHECK(index_current(root, "pr", &cur, &err) == 0 && cur == 5);
  /* publishing it while a shard is missing is refused and changes nothing */
  CHECK(index_publish(root, "pr", 6, 2, 2, &err) == FOIL_ENOTFOUND && strstr(err.msg, "shard_1.h5"));
  CHECK(index_current(root, "pr", &cur, &err) == 0 && cur == 5);
  index_version *iv = NULL;
  CHECK(index_version_open(root, "pr", 6, NULL, 0, &iv, &err) == FOIL_ENOTFOUND && !iv);
  /* ...and goes with the next publish */
  CHECKF(make_version("pr", VS_F32, 2, 10, 2, &v, &err) == 0 && v == 7, "%s", err.msg);
  snprintf(p, sizeof p, "%s/indexes/pr/v6", root);
  CHECK(access(p, F_OK) != 0);
  snprintf(p, sizeof p, "%s/indexes/pr/v5", root);
  CHECK(access(p, F_OK) == 0);
  snprintf(p, sizeof p, "%s/indexes/pr/CURRENT", root);
  char *text = NULL;
  size_t len = 0;
  CHECK(foil_read_file(p, &text, &len, &err) == 0 && text && !strcmp(text, "v7\n"));
  free(text);
  /* names, unpublished indexes */
  CHECK(index_current(root, "nothing-here", &cur, &err) == FOIL_ENOTFOUND && strstr(err.msg, "no published"));
  CHECK(index_dir(root, "../etc", p, sizeof p, &err) == FOIL_EINVAL);
  CHECK(index_version_begin(root, "a/b", &vi, &err) == FOIL_EINVAL);
}

/* Writes and publishes a 1-shard version from checkpoint ckpt at step. */
static int make_step(const char *name, const char *ckpt, int64_t step, int keep, int *version, index_pub *pub,
                     foil_err *err) {
  int rc = index_version_begin(root, name, version, err);
  float *x = unit_rows(4, D, (uint32_t)step);
  int64_t ids[4] = {0, 1, 2, 3};
  index_meta m = meta(name, *version, 0, 1, VS_F32);
  m.step = step;
  snprintf(m.checkpoint, sizeof m.checkpoint, "%s", ckpt);
  if (!rc) rc = index_shard_write(root, &m, ids, NULL, x, 4, err);
  free(x);
  if (!rc) rc = index_publish_ex(root, name, *version, 1, keep, pub, err);
  return rc;
}

static int vexists(const char *name, int k) {
  char p[1024];
  snprintf(p, sizeof p, "%s/indexes/%s/v%d", root, name, k);
  return access(p, F_OK) == 0;
}

/* S1: a refresh of an older checkpoint that publishes after a newer one's
 * does not move CURRENT back (its version is complete and kept, the call
 * says so); keep 1 never leaves CURRENT on a removed version; a later
 * checkpoint then goes live and the older versions go; another run's
 * checkpoints are not ordered by step. */
static void test_never_backwards(void) {
  foil_err err = {0};
  index_pub pub = {0};
  int v = 0, cur = 0;
  CHECKF(make_step("nb", "/jobs/7/ckpt/step_200.h5", 200, 1, &v, &pub, &err) == 0 && v == 1, "%s", err.msg);
  CHECK(pub.switched && pub.live == 1 && pub.step == 200);
  CHECKF(make_step("nb", "/jobs/7/ckpt/step_100.h5", 100, 1, &v, &pub, &err) == 0 && v == 2, "%s", err.msg);
  CHECKF(!pub.switched && pub.live == 1 && pub.step == 100 && pub.live_step == 200, "switched %d live %d steps %lld %lld",
         pub.switched, pub.live, (long long)pub.step, (long long)pub.live_step);
  CHECK(index_current(root, "nb", &cur, &err) == 0 && cur == 1);
  index_version *iv = NULL;
  CHECKF(index_version_open(root, "nb", cur, NULL, 0, &iv, &err) == 0, "CURRENT names a removed version: %s", err.msg);
  index_version_destroy(&iv);
  CHECKF(index_version_open(root, "nb", 2, NULL, 0, &iv, &err) == 0, "the older step's version is complete: %s",
         err.msg);
  index_version_destroy(&iv);
  /* a later step goes live, keep 1 removes both others */
  CHECKF(make_step("nb", "/jobs/7/ckpt/step_300.h5", 300, 1, &v, &pub, &err) == 0 && v == 3, "%s", err.msg);
  CHECK(pub.switched && pub.live == 3 && index_current(root, "nb", &cur, &err) == 0 && cur == 3);
  CHECK(!vexists("nb", 1) && !vexists("nb", 2) && vexists("nb", 3));
  /* another run (another directory): its step 10 is not "older" */
  CHECKF(make_step("nb", "/jobs/8/ckpt/step_10.h5", 10, 1, &v, &pub, &err) == 0 && v == 4, "%s", err.msg);
  CHECK(pub.switched && index_current(root, "nb", &cur, &err) == 0 && cur == 4 && !vexists("nb", 3));
}

/* S1: a version being written (its writer holds the marker's lock, or is
 * this host's live process) is never pruned by another publish; it
 * publishes when done. Another host's marker counts as live until
 * FOIL_STALE_S; after that the version goes. */
static void test_live_writer(void) {
  foil_err err = {0};
  index_pub pub = {0};
  int v = 0, a = 0, hold = -1;
  CHECKF(make_step("lw", "/r/ckpt/step_1.h5", 1, 1, &v, &pub, &err) == 0 && v == 1, "%s", err.msg);
  /* A: a slow refresh, still writing v2 (one of two shards) */
  CHECKF(index_version_begin_held(root, "lw", &a, &hold, &err) == 0 && a == 2 && hold >= 0, "%s", err.msg);
  index_meta m = meta("lw", a, 0, 2, VS_F32);
  m.step = 5;
  snprintf(m.checkpoint, sizeof m.checkpoint, "/r/ckpt/step_5.h5");
  int64_t ids[2] = {0, 1};
  float *x = unit_rows(2, D, 3);
  CHECK(index_shard_write(root, &m, ids, NULL, x, 1, &err) == 0);
  /* B starts later and publishes first (v3): v2 must survive */
  CHECKF(make_step("lw", "/r/ckpt/step_6.h5", 6, 1, &v, &pub, &err) == 0 && v == 3, "%s", err.msg);
  CHECK(vexists("lw", 2));
  /* the same with only the pid to tell (no lock held) */
  index_version_release(&hold);
  CHECK(hold == -1);
  CHECKF(make_step("lw", "/r/ckpt/step_7.h5", 7, 1, &v, &pub, &err) == 0 && v == 4, "%s", err.msg);
  CHECKF(vexists("lw", 2), "a live writer's v2 was pruned");
  /* A finishes: publishes (not live: step 5 < 7), nothing lost */
  m.shard = 1;
  CHECK(index_shard_write(root, &m, ids + 1, NULL, x + D, 1, &err) == 0);
  free(x);
  CHECKF(index_publish_ex(root, "lw", a, 2, 1, &pub, &err) == 0, "%s", err.msg);
  CHECK(!pub.switched && pub.live == 4);
  int cur = 0;
  CHECK(index_current(root, "lw", &cur, &err) == 0 && cur == 4);
  /* another host's writer: young, kept; untouched for FOIL_STALE_S, swept */
  int b = 0;
  CHECK(index_version_begin(root, "lw", &b, &err) == 0 && b == 5);
  char mk[1024];
  snprintf(mk, sizeof mk, "%s/indexes/lw/v%d/.writing", root, b);
  FILE *f = fopen(mk, "w");
  CHECK(f && fputs("some-other-node 1\n", f) >= 0);
  if (f) fclose(f);
  CHECKF(make_step("lw", "/r/ckpt/step_8.h5", 8, 1, &v, &pub, &err) == 0 && v == 6, "%s", err.msg);
  CHECK(vexists("lw", b));
  struct timeval tv[2];
  gettimeofday(&tv[0], NULL);
  tv[0].tv_sec -= FOIL_STALE_S + 60;
  tv[1] = tv[0];
  CHECK(utimes(mk, tv) == 0);
  CHECKF(make_step("lw", "/r/ckpt/step_9.h5", 9, 1, &v, &pub, &err) == 0 && v == 7, "%s", err.msg);
  CHECK(!vexists("lw", b) && vexists("lw", 7));
}

/* S1: version numbers and publishing happen under indexes/<name>/.lock: a
 * child starting a version while this process holds the lock waits. */
static void test_index_lock(void) {
  foil_err err = {0};
  char idir[1024], lp[1100];
  CHECK(index_dir(root, "lk", idir, sizeof idir, &err) == 0 && foil_mkdirs(idir, &err) == 0);
  snprintf(lp, sizeof lp, "%s/.lock", idir);
  int fd = -1;
  CHECK(foil_lock(lp, &fd, &err) == 0 && fd >= 0);
  pid_t c = fork();
  if (c == 0) {
    close(fd);
    int v = 0;
    _exit(index_version_begin(root, "lk", &v, &err) == 0 && v == 1 ? 0 : 1);
  }
  struct timespec ts = {0, 300 * 1000 * 1000};
  nanosleep(&ts, NULL);
  int st = 0;
  CHECKF(waitpid(c, &st, WNOHANG) == 0, "index_version_begin did not wait for the index lock");
  foil_unlock(&fd);
  CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  /* publishing (manifest, CURRENT, prune) waits too */
  index_meta m = meta("lk", 1, 0, 1, VS_F32);
  int64_t ids[1] = {0};
  float *x = unit_rows(1, D, 4);
  CHECK(index_shard_write(root, &m, ids, NULL, x, 1, &err) == 0);
  free(x);
  CHECK(foil_lock(lp, &fd, &err) == 0 && fd >= 0);
  if ((c = fork()) == 0) {
    close(fd);
    _exit(index_publish(root, "lk", 1, 1, 2, &err) == 0 ? 0 : 1);
  }
  nanosleep(&ts, NULL);
  int cur = 0;
  CHECKF(waitpid(c, &st, WNOHANG) == 0 && index_current(root, "lk", &cur, &err) == FOIL_ENOTFOUND,
         "index_publish did not wait for the index lock");
  foil_unlock(&fd);
  CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK(index_current(root, "lk", &cur, &err) == 0 && cur == 1);
}

/* S5: a killed writer's temporary of CURRENT is swept by the next publish;
 * a live one's is not. */
static void test_publish_sweeps(void) {
  foil_err err = {0};
  index_pub pub = {0};
  int v = 0;
  CHECKF(make_step("sw5", "/r/ckpt/step_1.h5", 1, 2, &v, &pub, &err) == 0, "%s", err.msg);
  char host[64], dead[1200], live[1200];
  foil_host(host);
  long c = test_dead_pid();
  snprintf(dead, sizeof dead, "%s/indexes/sw5/CURRENT.tmp-%s-%ld-00000000deadbeef", root, host, (long)c);
  snprintf(live, sizeof live, "%s/indexes/sw5/CURRENT.tmp-%s-%ld-00000000deadbeef", root, host, (long)getpid());
  FILE *f = fopen(dead, "w");
  if (f) fclose(f);
  f = fopen(live, "w");
  if (f) fclose(f);
  CHECKF(make_step("sw5", "/r/ckpt/step_2.h5", 2, 2, &v, &pub, &err) == 0, "%s", err.msg);
  CHECKF(access(dead, F_OK) != 0, "a killed writer's %s is still there", dead);
  CHECK(access(live, F_OK) == 0);
  unlink(live);
}

/* Overwrites len bytes at offset of a file (offset < 0: truncate to -offset). */
static void damage(const char *path, long offset) {
  if (offset < 0) {
    CHECK(truncate(path, -offset) == 0);
    return;
  }
  FILE *fp = fopen(path, "r+b");
  CHECK(fp != NULL);
  if (!fp) return;
  fseek(fp, offset, SEEK_SET);
  int c = fgetc(fp);
  fseek(fp, offset, SEEK_SET);
  fputc(c ^ 0x5a, fp);
  fclose(fp);
}

static void copy_file(const char *from, const char *to) {
  char *data = NULL;
  size_t len = 0;
  foil_err err;
  CHECK(foil_read_file(from, &data, &len, &err) == 0);
  CHECK(foil_write_file_atomic(to, data, len, &err) == 0);
  free(data);
}

static void test_refusals(void) {
  foil_err err = {0};
  int v = 0;
  char shard[1024], p[1024], keep[1024];
  index_version *iv = NULL;
  index_shard *sh = NULL;
  CHECKF(make_version("bad", VS_I8, 2, 40, 5, &v, &err) == 0, "%s", err.msg);
  snprintf(shard, sizeof shard, "%s/indexes/bad/v1/shard_1.h5", root);
  snprintf(keep, sizeof keep, "%s/indexes/bad/shard_1.h5.orig", root);
  copy_file(shard, keep);
  struct stat st;
  stat(shard, &st);

  /* a byte changed in the data: the CRC no longer matches the manifest */
  damage(shard, (long)st.st_size - 16);
  CHECK(index_version_open(root, "bad", 1, NULL, 0, &iv, &err) == FOIL_EPRECOND && !iv);
  CHECKF(strstr(err.msg, "shard_1.h5") && strstr(err.msg, "CRC-32"), "%s", err.msg);
  copy_file(keep, shard);
  CHECKF(index_version_open(root, "bad", 1, NULL, 0, &iv, &err) == 0, "%s", err.msg);
  index_version_destroy(&iv);

  /* truncated */
  damage(shard, -(long)(st.st_size / 2));
  CHECK(index_version_open(root, "bad", 1, NULL, 0, &iv, &err) != 0 && !iv);
  CHECK(index_shard_read(shard, &sh, &err) != 0 && !sh && strstr(err.msg, "shard_1.h5"));
  CHECK(index_publish(root, "bad", 1, 2, 5, &err) != 0);
  copy_file(keep, shard);

  /* missing */
  unlink(shard);
  CHECK(index_version_open(root, "bad", 1, NULL, 0, &iv, &err) == FOIL_ENOTFOUND && strstr(err.msg, "shard_1.h5"));
  copy_file(keep, shard);

  /* a foreign HDF5 file (another foil format) and a non-HDF5 file */
  snprintf(p, sizeof p, "%s/foreign.h5", root);
  h5io *f = NULL;
  CHECK(h5io_create(&f, p, "foil.ckpt.v1", &err) == 0);
  CHECK(h5io_publish(&f, &err) == 0);
  CHECK(index_shard_read(p, &sh, &err) != 0 && strstr(err.msg, "foreign.h5"));
  snprintf(p, sizeof p, "%s/plain.txt", root);
  CHECK(foil_write_file_atomic(p, "hello\n", 6, &err) == 0);
  CHECK(index_shard_read(p, &sh, &err) != 0 && strstr(err.msg, "plain.txt"));
  CHECK(index_shard_read("/nonexistent/shard_0.h5", &sh, &err) == FOIL_ENOTFOUND);

  /* shards that disagree: a shard of another dim, another model hash */
  int v2 = 0;
  CHECK(index_version_begin(root, "bad", &v2, &err) == 0 && v2 == 2);
  float *x = unit_rows(4, D, 3);
  int64_t ids[4] = {0, 1, 2, 3};
  index_meta m = meta("bad", 2, 0, 2, VS_F32);
  CHECK(index_shard_write(root, &m, ids, NULL, x, 2, &err) == 0);
  m.shard = 1;
  snprintf(m.model_hash, sizeof m.model_hash, "12345678");
  CHECK(index_shard_write(root, &m, ids + 2, NULL, x + 2 * D, 2, &err) == 0);
  CHECK(index_publish(root, "bad", 2, 2, 5, &err) == FOIL_EPRECOND && strstr(err.msg, "model_hash"));
  m = meta("bad", 2, 1, 2, VS_F32);
  m.dim = D / 2;
  CHECK(index_shard_write(root, &m, ids, NULL, x, 4, &err) == 0);
  CHECK(index_publish(root, "bad", 2, 2, 5, &err) == FOIL_EPRECOND && strstr(err.msg, "dim"));
  int cur = 0;
  CHECK(index_current(root, "bad", &cur, &err) == 0 && cur == 1);
  /* a shard swapped in from another version: the manifest's CRC refuses it */
  snprintf(p, sizeof p, "%s/indexes/bad/v2/shard_1.h5", root);
  copy_file(p, shard);
  CHECK(index_version_open(root, "bad", 1, NULL, 0, &iv, &err) == FOIL_EPRECOND && !iv);
  copy_file(keep, shard);
  free(x);

  /* a CURRENT that names nothing sensible */
  snprintf(p, sizeof p, "%s/indexes/bad/CURRENT", root);
  CHECK(foil_write_file_atomic(p, "garbage", 7, &err) == 0);
  CHECK(index_current(root, "bad", &cur, &err) == FOIL_EINVAL && strstr(err.msg, "CURRENT"));
}

static void test_empty_shard_and_hash(void) {
  foil_err err = {0};
  int v = 0;
  CHECKF(make_version("tiny", VS_F16, 3, 2, 3, &v, &err) == 0, "%s", err.msg); /* shard 0 has no rows */
  index_version *iv = NULL;
  CHECKF(index_version_open(root, "tiny", v, NULL, 0, &iv, &err) == 0, "%s", err.msg);
  CHECK(iv && iv->meta.count == 2 && iv->shards[0]->n == 0);
  index_version_destroy(&iv);
  float params[3] = {1, 2, 3};
  char h1[65], h2[65], h3[65];
  index_model_hash(params, 3, "layers=1", h1);
  index_model_hash(params, 3, "layers=2", h2);
  params[2] = 3.5f;
  index_model_hash(params, 3, "layers=1", h3);
  CHECK(strlen(h1) == 8 && strcmp(h1, h2) && strcmp(h1, h3));
  encoder_config c;
  encoder_config_default(&c);
  c.n_layers = 2, c.d_model = 8, c.n_heads = 2, c.d_ff = 16, c.max_len = 4, c.vocab = 10;
  char text[256];
  CHECK(index_model_config_text(&c, text, sizeof text) == 0);
  CHECKF(!strcmp(text, "layers=2 d_model=8 heads=2 d_ff=16 max_len=4 proj_dim=0 norm=post pooling=mean"), "%s", text);
}

/* NaN or ±inf in a vector: FOIL_EINVAL naming the checkpoint, the row, its
 * id and key, for every dtype; no shard file appears, so the version
 * cannot be published. */
static void test_nonfinite_refused(void) {
  const float bad_vals[3] = {NAN, INFINITY, -INFINITY};
  for (int dt = 0; dt < 3; dt++) {
    foil_err err = {0};
    int v = 0;
    char name[32];
    snprintf(name, sizeof name, "diverged-%d", dt);
    CHECKF(index_version_begin(root, name, &v, &err) == 0, "%s", err.msg);
    float *x = unit_rows(5, D, 9);
    x[3 * D + 7] = bad_vals[dt];
    int64_t ids[5] = {10, 11, 12, 13, 14};
    char *keys[5] = {"k0", "k1", "k2", "doc-three", "k4"};
    index_meta m = meta(name, v, 0, 1, (vs_dtype)dt);
    CHECK(index_shard_write(root, &m, ids, keys, x, 5, &err) == FOIL_EINVAL);
    CHECKF(strstr(err.msg, "/ckpt/step_42.h5") && strstr(err.msg, "row 3") && strstr(err.msg, "id 13") &&
               strstr(err.msg, "doc-three") && strstr(err.msg, "dimension 7"),
           "%s", err.msg);
    char p[1024];
    snprintf(p, sizeof p, "%s/indexes/%s/v%d/shard_0.h5", root, name, v);
    CHECKF(access(p, F_OK) != 0, "%s was written", p);
    CHECK(index_publish(root, name, v, 1, 3, &err) != 0);
    /* without keys, and the row fixed: written */
    CHECK(index_shard_write(root, &m, ids, NULL, x, 5, &err) == FOIL_EINVAL && strstr(err.msg, "key -"));
    x[3 * D + 7] = 0.0f;
    CHECKF(index_shard_write(root, &m, ids, keys, x, 5, &err) == 0, "%s", err.msg);
    free(x);
  }
}

int main(void) {
  const char *t = getenv("FOIL_TEST_TMP");
  snprintf(root, sizeof root, "%s/index-%ld", t ? t : "/tmp", (long)getpid());
  RUN(test_half_conversion);
  RUN(test_roundtrip);
  RUN(test_publish_and_prune);
  RUN(test_never_backwards);
  RUN(test_live_writer);
  RUN(test_index_lock);
  RUN(test_publish_sweeps);
  RUN(test_refusals);
  RUN(test_empty_shard_and_hash);
  RUN(test_nonfinite_refused);
  TEST_EXIT();
}
