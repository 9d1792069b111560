/* index.c — embedding index versions on disk (see index.h). */
#define _POSIX_C_SOURCE 200809L
#include "storage/index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "common/fileio.h"
#include "storage/h5io.h"

#define SHARD_FORMAT "foil.index.shard.v1"
#define MANIFEST_FORMAT "foil.index.manifest.v1"
#define PATH_CAP 4352

static const char *const dtype_names[] = {"float32", "float16", "int8"};

/* Prefixes err's message (copied first: foil_err_set must not read what it writes). */
static int reword(foil_err *err, int rc, const char *prefix) {
  char was[sizeof err->msg];
  snprintf(was, sizeof was, "%s", err ? err->msg : "");
  return foil_err_set(err, rc, "%s%.440s", prefix, was);
}

/* ---- small helpers ------------------------------------------------------------ */

static int name_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n < 1 || n > 128) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return 0;
  }
  return strcmp(s, ".") && strcmp(s, "..");
}

/* k for a directory entry named v<k> (digits only, no leading zero), else -1. */
static int version_of(const char *ent) {
  if (ent[0] != 'v' || ent[1] < '1' || ent[1] > '9') return -1;
  long k = 0;
  for (const char *p = ent + 1; *p; p++) {
    if (*p < '0' || *p > '9' || k > 100000000) return -1;
    k = k * 10 + (*p - '0');
  }
  return (int)k;
}

static int vdir(const char *root, const char *name, int version, char *out, size_t n, foil_err *err) {
  char d[PATH_CAP];
  int rc = index_dir(root, name, d, sizeof d, err);
  if (rc) return rc;
  int w = snprintf(out, n, "%s/v%d", d, version);
  return w < 0 || (size_t)w >= n ? foil_err_set(err, FOIL_EINVAL, "index path too long under %s", d) : FOIL_OK;
}

/* The binary16 type h5py writes for numpy's float16 (HDF5 1.10 has none built in). */
static hid_t f16_type(void) {
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  H5Tset_fields(t, 15, 10, 5, 0, 10);
  H5Tset_size(t, 2);
  H5Tset_ebias(t, 15);
  return t;
}

static int write_raw(h5io *f, const char *name, hid_t ftype, hid_t mtype, const void *data, int ndim,
                     const uint64_t *dims, foil_err *err) {
  hsize_t d[2] = {dims[0], ndim > 1 ? dims[1] : 0};
  hid_t sp = H5Screate_simple(ndim, d, NULL);
  hid_t ds = H5Dcreate2((hid_t)h5io_fid(f), name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t w = ds >= 0 ? H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(sp);
  return w < 0 ? foil_err_set(err, FOIL_EINTERNAL, "writing dataset %s failed", name) : FOIL_OK;
}

/* Checks the stored element type of /vectors against dtype and reads it raw. */
static int read_vectors(h5io *f, vs_dtype dt, void *out, foil_err *err) {
  hid_t ds = H5Dopen2((hid_t)h5io_fid(f), "vectors", H5P_DEFAULT);
  if (ds < 0) return foil_err_set(err, FOIL_EINVAL, "%s: /vectors cannot be opened", h5io_path(f));
  hid_t ft = H5Dget_type(ds);
  H5T_class_t cls = H5Tget_class(ft);
  size_t sz = H5Tget_size(ft);
  int ok = dt == VS_I8 ? cls == H5T_INTEGER && sz == 1 && H5Tget_sign(ft) == H5T_SGN_2
                       : cls == H5T_FLOAT && sz == (dt == VS_F16 ? 2u : 4u);
  H5Tclose(ft);
  if (!ok) {
    H5Dclose(ds);
    return foil_err_set(err, FOIL_EINVAL, "%s: /vectors is not stored as %s, as its dtype attribute says",
                        h5io_path(f), dtype_names[dt]);
  }
  hid_t mt = dt == VS_F32 ? H5Tcopy(H5T_NATIVE_FLOAT) : dt == VS_F16 ? f16_type() : H5Tcopy(H5T_NATIVE_INT8);
  herr_t r = H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
  H5Tclose(mt);
  H5Dclose(ds);
  return r < 0 ? foil_err_set(err, FOIL_EINVAL, "%s: /vectors cannot be read (damaged file)", h5io_path(f))
               : FOIL_OK;
}

/* A dataset's shape must be exactly (d0) or (d0, d1). */
static int expect_shape(h5io *f, const char *name, int ndim, uint64_t d0, uint64_t d1, foil_err *err) {
  int nd = 0;
  uint64_t dims[8];
  int rc = h5io_shape(f, name, &nd, dims, err);
  if (rc) return foil_err_set(err, FOIL_EINVAL, "%s: no /%s dataset (not a complete index shard)", h5io_path(f), name);
  if (nd != ndim || dims[0] != d0 || (ndim > 1 && dims[1] != d1)) {
    if (ndim == 1)
      return foil_err_set(err, FOIL_EINVAL, "%s: /%s has shape (%llu%s), expected (%llu)", h5io_path(f), name,
                          (unsigned long long)dims[0], nd > 1 ? ", ..." : "", (unsigned long long)d0);
    return foil_err_set(err, FOIL_EINVAL, "%s: /%s has shape (%llu, %llu), expected (%llu, %llu)", h5io_path(f),
                        name, (unsigned long long)dims[0], (unsigned long long)(nd > 1 ? dims[1] : 0),
                        (unsigned long long)d0, (unsigned long long)d1);
  }
  return FOIL_OK;
}

static int get_i64(h5io *f, const char *key, int64_t *v, foil_err *err) {
  return h5io_get_attr_i64(f, "/", key, v, err);
}

static int get_str(h5io *f, const char *key, char *out, size_t n, foil_err *err) {
  char *s = NULL;
  int rc = h5io_get_attr_str(f, "/", key, &s, err);
  if (rc) return rc;
  if (strlen(s) >= n) rc = foil_err_set(err, FOIL_EINVAL, "%s: attribute %s is too long", h5io_path(f), key);
  else snprintf(out, n, "%s", s);
  free(s);
  return rc;
}

/* The version attributes shards and manifests share. */
static int write_meta(h5io *f, const index_meta *m, foil_err *err) {
  int rc = h5io_attr_str(f, "/", "name", m->name, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "version", m->version, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "n_shards", m->n_shards, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "dim", m->dim, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "count", m->count, err);
  if (!rc) rc = h5io_attr_str(f, "/", "dtype", dtype_names[m->dtype], err);
  if (!rc) rc = h5io_attr_i64(f, "/", "normalized", m->normalized ? 1 : 0, err);
  if (!rc) rc = h5io_attr_str(f, "/", "checkpoint", m->checkpoint, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "step", m->step, err);
  if (!rc) rc = h5io_attr_str(f, "/", "model_hash", m->model_hash, err);
  return rc;
}

static int read_meta(h5io *f, index_meta *m, int shard, foil_err *err) {
  memset(m, 0, sizeof *m);
  int64_t v;
  char dt[16];
  int rc = get_str(f, "name", m->name, sizeof m->name, err);
  if (!rc && !(rc = get_i64(f, "version", &v, err))) m->version = (int)v;
  if (!rc && !(rc = get_i64(f, "n_shards", &v, err))) m->n_shards = (int)v;
  if (!rc && shard && !(rc = get_i64(f, "shard", &v, err))) m->shard = (int)v;
  if (!rc && !(rc = get_i64(f, "dim", &v, err))) m->dim = v < 1 || v > INT_MAX ? 0 : (int)v; /* 0: refused below */
  if (!rc) rc = get_i64(f, "count", &m->count, err);
  if (!rc) rc = get_str(f, "dtype", dt, sizeof dt, err);
  if (!rc && !(rc = get_i64(f, "normalized", &v, err))) m->normalized = v != 0;
  if (!rc) rc = get_str(f, "checkpoint", m->checkpoint, sizeof m->checkpoint, err);
  if (!rc) rc = get_i64(f, "step", &m->step, err);
  if (!rc) rc = get_str(f, "model_hash", m->model_hash, sizeof m->model_hash, err);
  if (rc) return reword(err, FOIL_EINVAL, "not a complete index file: ");
  int found = -1;
  for (int i = 0; i < 3; i++)
    if (!strcmp(dt, dtype_names[i])) found = i;
  if (found < 0) return foil_err_set(err, FOIL_EINVAL, "%s: unknown dtype \"%s\"", h5io_path(f), dt);
  m->dtype = (vs_dtype)found;
  if (m->dim < 1 || m->count < 0 || m->version < 1 || m->n_shards < 1 || (shard && (m->shard < 0 || m->shard >= m->n_shards)))
    return foil_err_set(err, FOIL_EINVAL, "%s: impossible attributes (dim %d, count %lld, version %d, shard %d of %d)",
                        h5io_path(f), m->dim, (long long)m->count, m->version, m->shard, m->n_shards);
  return FOIL_OK;
}

/* zlib CRC-32 of a whole file. */
static int file_crc(const char *path, uint32_t *out, foil_err *err) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return foil_err_set(err, errno == ENOENT ? FOIL_ENOTFOUND : FOIL_EPERM, "%s: %s", path, strerror(errno));
  unsigned char *buf = malloc(1 << 20);
  if (!buf) {
    fclose(fp);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  size_t n;
  while ((n = fread(buf, 1, 1 << 20, fp)) > 0) crc = crc32(crc, buf, (uInt)n);
  int bad = ferror(fp);
  fclose(fp);
  free(buf);
  if (bad) return foil_err_set(err, FOIL_EINVAL, "%s: read error", path);
  *out = (uint32_t)crc;
  return FOIL_OK;
}

/* ---- public ------------------------------------------------------------------ */

int index_model_hash(const float *params, size_t n_params, const char *config_text, char out[65]) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const unsigned char *p = (const unsigned char *)params;
  size_t left = n_params * sizeof(float);
  while (left) {
    uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
    crc = crc32(crc, p, chunk);
    p += chunk, left -= chunk;
  }
  if (config_text) crc = crc32(crc, (const unsigned char *)config_text, (uInt)strlen(config_text));
  snprintf(out, 65, "%08lx", (unsigned long)(crc & 0xffffffffUL));
  return FOIL_OK;
}

int index_model_config_text(const encoder_config *cfg, char *out, size_t n) {
  int w = snprintf(out, n, "layers=%d d_model=%d heads=%d d_ff=%d max_len=%d proj_dim=%d norm=%s pooling=%s",
                   cfg->n_layers, cfg->d_model, cfg->n_heads, cfg->d_ff, cfg->max_len, cfg->proj_dim,
                   cfg->pre_ln ? "pre" : "post", cfg->pooling ? "first" : "mean");
  return w < 0 || (size_t)w >= n ? FOIL_EINVAL : FOIL_OK;
}

int index_model_hash_encoder(encoder *enc, char out[65]) {
  char text[256];
  index_model_config_text(encoder_cfg(enc), text, sizeof text);
  return index_model_hash(encoder_params(enc), encoder_num_params(enc), text, out);
}

int index_dir(const char *root, const char *name, char *out, size_t n, foil_err *err) {
  if (!name_ok(name))
    return foil_err_set(err, FOIL_EINVAL, "index name \"%.200s\" must be 1 to 128 characters of [A-Za-z0-9._-]",
                        name ? name : "");
  int w = snprintf(out, n, "%s/indexes/%s", root, name);
  return w < 0 || (size_t)w >= n ? foil_err_set(err, FOIL_EINVAL, "index path too long under %s", root) : FOIL_OK;
}

/* The v<k> under dir: their numbers (malloc'ed, ascending) and count. */
static int list_versions(const char *dir, int **out, int *n, foil_err *err) {
  *out = NULL, *n = 0;
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? FOIL_OK : foil_err_set(err, FOIL_EPERM, "cannot list %s: %s", dir, strerror(errno));
  int cap = 0, rc = FOIL_OK;
  struct dirent *e;
  while ((e = readdir(d))) {
    int k = version_of(e->d_name);
    if (k < 0) continue;
    if (*n == cap) {
      int *v = realloc(*out, sizeof(int) * (size_t)(cap = cap ? 2 * cap : 16));
      if (!v) {
        rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
        break;
      }
      *out = v;
    }
    (*out)[(*n)++] = k;
  }
  closedir(d);
  for (int i = 1; i < *n; i++) /* insertion sort: a handful of versions */
    for (int j = i; j > 0 && (*out)[j - 1] > (*out)[j]; j--) {
      int t = (*out)[j];
      (*out)[j] = (*out)[j - 1], (*out)[j - 1] = t;
    }
  if (rc) free(*out), *out = NULL, *n = 0;
  return rc;
}

/* The index's lock (indexes/<name>/.lock): version numbers, manifest +
 * CURRENT + prune are decided under it. Held for milliseconds (a listing,
 * a mkdir) or for one publish (manifest write, CURRENT, prune). */
static int lock_index(const char *idir, int *fd, foil_err *err) {
  char p[PATH_CAP + 16];
  snprintf(p, sizeof p, "%s/.lock", idir);
  return foil_lock(p, fd, err);
}

#define WRITING ".writing" /* the writer's marker in v<k>/ until its publish */

int index_version_begin_held(const char *root, const char *name, int *version, int *hold, foil_err *err) {
  char dir[PATH_CAP], v[PATH_CAP + 32], mk[PATH_CAP + 48];
  if (hold) *hold = -1;
  int rc = index_dir(root, name, dir, sizeof dir, err);
  if (rc) return rc;
  if ((rc = foil_mkdirs(dir, err))) return rc;
  int lk = -1, *ks = NULL, n = 0;
  if ((rc = lock_index(dir, &lk, err))) return rc;
  rc = list_versions(dir, &ks, &n, err);
  int k = n ? ks[n - 1] + 1 : 1;
  free(ks);
  for (; !rc; k++) { /* a writer without the lock (an older foil) may have taken k */
    snprintf(v, sizeof v, "%s/v%d", dir, k);
    if (mkdir(v, 0755) == 0) break;
    if (errno != EEXIST) rc = foil_err_set(err, FOIL_EPERM, "cannot create %s: %s", v, strerror(errno));
  }
  int fd = -1;
  if (!rc) {
    char host[64], line[96];
    foil_host(host);
    int len = snprintf(line, sizeof line, "%s %ld\n", host, (long)getpid());
    snprintf(mk, sizeof mk, "%s/" WRITING, v);
    fd = open(mk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)len) != len) {
      rc = foil_err_set(err, FOIL_EPERM, "cannot write %s: %s", mk, strerror(errno));
      if (fd >= 0) close(fd), unlink(mk);
      rmdir(v);
      fd = -1;
    }
  }
  if (!rc) rc = foil_fsync_dir(dir, err); /* v<k>'s entry survives a crash */
  foil_unlock(&lk);
  if (rc) {
    if (fd >= 0) close(fd);
    return rc;
  }
  /* the marker's flock says "alive" to any prune, however long this writer takes */
  if (hold && flock(fd, LOCK_EX | LOCK_NB) == 0) *hold = fd;
  else close(fd);
  *version = k;
  return FOIL_OK;
}

int index_version_begin(const char *root, const char *name, int *version, foil_err *err) {
  return index_version_begin_held(root, name, version, NULL, err);
}

void index_version_release(int *hold) { foil_unlock(hold); }

/* 1 when the writer of the incomplete version directory vd may still be
 * writing it: its marker's flock is held, or foil_writer_may_live says so
 * of the host and pid the marker names (age: the marker's mtime). No
 * marker: a writer that never made one (a foil before markers), gone. */
static int writer_live(const char *vd) {
  char mk[PATH_CAP + 48], buf[128], host[64];
  snprintf(mk, sizeof mk, "%s/" WRITING, vd);
  int fd = open(mk, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT; /* unreadable: do not guess */
  int live = 0;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) live = errno == EWOULDBLOCK || errno == EINTR;
  if (!live) {
    ssize_t r = read(fd, buf, sizeof buf - 1);
    buf[r > 0 ? r : 0] = 0;
    long pid = 0;
    struct stat st;
    double age = fstat(fd, &st) == 0 ? difftime(time(NULL), st.st_mtime) : 0;
    live = sscanf(buf, "%63s %ld", host, &pid) == 2 ? foil_writer_may_live(host, pid, age)
                                                     : foil_writer_may_live(NULL, 0, age);
  }
  close(fd); /* releases the probe's lock, if it took one */
  return live;
}

/* The first row of x [n, dim] holding a NaN or an infinity (*col: where),
 * or -1. One pass, no allocation. */
static int64_t first_nonfinite(const float *x, int64_t n, int dim, int *col) {
  for (int64_t i = 0; i < n; i++) {
    const float *r = x + (size_t)i * (size_t)dim;
    for (int j = 0; j < dim; j++)
      if (!isfinite(r[j])) {
        *col = j;
        return i;
      }
  }
  return -1;
}

int index_shard_write(const char *root, const index_meta *m, const int64_t *ids, char *const *keys,
                      const float *vectors, int64_t n, foil_err *err) {
  char dir[PATH_CAP], path[PATH_CAP + 64];
  int rc = vdir(root, m->name, m->version, dir, sizeof dir, err);
  if (rc) return rc;
  if (m->dim < 1 || n < 0 || m->n_shards < 1 || m->shard < 0 || m->shard >= m->n_shards || m->version < 1 ||
      (unsigned)m->dtype > VS_I8)
    return foil_err_set(err, FOIL_EINVAL, "index shard: bad arguments (dim %d, rows %lld, shard %d of %d, version %d)",
                        m->dim, (long long)n, m->shard, m->n_shards, m->version);
  /* a diverged checkpoint's NaN/inf rows would be indexed silently (never
   * found, or found for any query): refused before anything is written */
  int bad_col = 0;
  int64_t bad = first_nonfinite(vectors, n, m->dim, &bad_col);
  if (bad >= 0)
    return foil_err_set(err, FOIL_EINVAL,
                        "checkpoint %.240s (step %lld) has diverged: the embedding of row %lld (id %lld, key "
                        "%.64s) is not finite (%g at dimension %d); index %s v%d shard %d not written",
                        m->checkpoint, (long long)m->step, (long long)bad, (long long)ids[bad],
                        keys && keys[bad] ? keys[bad] : "-", (double)vectors[(size_t)bad * m->dim + bad_col],
                        bad_col, m->name, m->version, m->shard);
  snprintf(path, sizeof path, "%s/shard_%d.h5", dir, m->shard);
  const size_t nd = (size_t)n * (size_t)m->dim;
  void *conv = NULL;
  float *scales = NULL;
  if (m->dtype == VS_F16) conv = malloc(nd * 2 + 1);
  if (m->dtype == VS_I8) conv = malloc(nd + 1), scales = malloc(sizeof(float) * (size_t)n + 1);
  if (m->dtype != VS_F32 && (!conv || (m->dtype == VS_I8 && !scales))) {
    free(conv), free(scales);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory converting %lld rows to %s", (long long)n,
                        dtype_names[m->dtype]);
  }
  if (m->dtype == VS_F16) vs_to_f16(conv, vectors, (int64_t)nd);
  if (m->dtype == VS_I8) vs_to_i8(conv, scales, vectors, n, m->dim);
  h5io *f = NULL;
  index_meta mm = *m;
  mm.count = n;
  uint64_t d1[1] = {(uint64_t)n}, d2[2] = {(uint64_t)n, (uint64_t)m->dim};
  rc = h5io_create(&f, path, SHARD_FORMAT, err);
  if (!rc) rc = write_meta(f, &mm, err);
  if (!rc) rc = h5io_attr_i64(f, "/", "shard", m->shard, err);
  if (!rc) rc = h5io_write_i64(f, "ids", ids, 1, d1, err);
  if (!rc && m->dtype == VS_F32) rc = h5io_write_f32(f, "vectors", vectors, 2, d2, err);
  if (!rc && m->dtype == VS_F16) {
    hid_t t = f16_type();
    rc = write_raw(f, "vectors", t, t, conv, 2, d2, err);
    H5Tclose(t);
  }
  if (!rc && m->dtype == VS_I8) rc = write_raw(f, "vectors", H5T_STD_I8LE, H5T_NATIVE_INT8, conv, 2, d2, err);
  if (!rc && m->dtype == VS_I8) rc = h5io_write_f32(f, "scales", scales, 1, d1, err);
  if (!rc && m->dtype != VS_F32) rc = h5io_write_f32(f, "exact", vectors, 2, d2, err);
  if (!rc && keys) rc = h5io_write_strings(f, "keys", (const char *const *)keys, (size_t)n, err);
  if (!rc) rc = h5io_publish(&f, err);
  if (rc) {
    h5io_abandon(&f);
    reword(err, rc, "writing an index shard: ");
  }
  free(conv);
  free(scales);
  return rc;
}

/* Opens a shard and checks its attributes and every dataset's shape and type. */
static int open_shard(const char *path, h5io **out, index_meta *m, foil_err *err) {
  int rc = h5io_open(out, path, SHARD_FORMAT, err);
  if (rc) return rc;
  h5io *f = *out;
  if ((rc = read_meta(f, m, 1, err))) goto fail;
  const uint64_t n = (uint64_t)m->count, d = (uint64_t)m->dim;
  if ((rc = expect_shape(f, "ids", 1, n, 0, err))) goto fail;
  if ((rc = expect_shape(f, "vectors", 2, n, d, err))) goto fail;
  if (m->dtype == VS_I8 && (rc = expect_shape(f, "scales", 1, n, 0, err))) goto fail;
  if (m->dtype != VS_F32 && (rc = expect_shape(f, "exact", 2, n, d, err))) goto fail;
  if (h5io_exists(f, "keys") && (rc = expect_shape(f, "keys", 1, n, 0, err))) goto fail;
  return FOIL_OK;
fail:
  h5io_close(out);
  return rc;
}

void index_shard_destroy(index_shard **sp) {
  if (!sp || !*sp) return;
  index_shard *s = *sp;
  free(s->ids);
  free(s->vectors);
  free(s->scales);
  free(s->exact);
  if (s->keys) h5io_free_strings(s->keys, (size_t)s->n);
  free(s);
  *sp = NULL;
}

int index_shard_read(const char *path, index_shard **out, foil_err *err) {
  *out = NULL;
  h5io *f = NULL;
  index_shard *s = calloc(1, sizeof *s);
  if (!s) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  int rc = open_shard(path, &f, &s->meta, err);
  if (rc) {
    free(s);
    return rc;
  }
  s->n = s->meta.count;
  /* HDF5 lets a file declare huge extents with no storage: the byte count
   * must not wrap (count 2^32 x dim 2^30 x 4 bytes would be malloc(1)) */
  if (s->n < 0 || s->meta.dim < 0 ||
      (s->meta.dim > 0 && (uint64_t)s->n > SIZE_MAX / 8 / (uint64_t)s->meta.dim)) {
    foil_err_set(err, FOIL_EINVAL, "%s: %lld x %d vectors do not fit in memory", path,
                 (long long)s->meta.count, s->meta.dim);
    h5io_close(&f);
    free(s);
    return FOIL_EINVAL;
  }
  const size_t nd = (size_t)s->n * (size_t)s->meta.dim;
  size_t got = 0;
  rc = h5io_read_i64(f, "ids", &s->ids, &got, err);
  size_t esz = s->meta.dtype == VS_F32 ? 4 : s->meta.dtype == VS_F16 ? 2 : 1;
  if (!rc && !(s->vectors = malloc(nd * esz + 1))) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for %s", path);
  if (!rc) rc = read_vectors(f, s->meta.dtype, s->vectors, err);
  if (!rc && s->meta.dtype == VS_I8) rc = h5io_read_f32(f, "scales", &s->scales, &got, err);
  if (!rc && s->meta.dtype != VS_F32) rc = h5io_read_f32(f, "exact", &s->exact, &got, err);
  if (!rc && h5io_exists(f, "keys")) {
    size_t nk = 0;
    rc = h5io_read_strings(f, "keys", &s->keys, &nk, err);
    if (!rc && nk != (size_t)s->n) rc = foil_err_set(err, FOIL_EINVAL, "%s: /keys has %zu entries, not %lld", path, nk, (long long)s->n);
  }
  h5io_close(&f);
  if (rc) {
    index_shard_destroy(&s);
    return rc;
  }
  *out = s;
  return FOIL_OK;
}

/* Removes a version directory and the files in it. */
static void remove_version(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[PATH_CAP + 300];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

/* The manifest attributes of version k (no shard is read). */
static int manifest_meta(const char *idir, int k, index_meta *m, foil_err *err) {
  char path[PATH_CAP + 64];
  snprintf(path, sizeof path, "%s/v%d/manifest.h5", idir, k);
  h5io *f = NULL;
  int rc = h5io_open(&f, path, MANIFEST_FORMAT, err);
  if (!rc) rc = read_meta(f, m, 0, err);
  h5io_close(&f);
  return rc;
}

/* 1 when checkpoint paths a and b are in the same directory (one run's). */
static int same_run(const char *a, const char *b) {
  const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
  size_t la = sa ? (size_t)(sa - a) : 0, lb = sb ? (size_t)(sb - b) : 0;
  return la == lb && !strncmp(a, b, la);
}

int index_publish(const char *root, const char *name, int version, int n_shards, int keep, foil_err *err) {
  return index_publish_ex(root, name, version, n_shards, keep, NULL, err);
}

int index_publish_ex(const char *root, const char *name, int version, int n_shards, int keep, index_pub *out,
                     foil_err *err) {
  index_pub pub = {.live = version, .switched = 1};
  char idir[PATH_CAP], dir[PATH_CAP + 32], path[PATH_CAP + 64];
  int rc = index_dir(root, name, idir, sizeof idir, err);
  if (rc) return rc;
  if (n_shards < 1 || version < 1 || keep < 1)
    return foil_err_set(err, FOIL_EINVAL, "index_publish: version %d, %d shards, keep %d: each must be at least 1",
                        version, n_shards, keep);
  snprintf(dir, sizeof dir, "%s/v%d", idir, version);
  /* leftovers of killed writers of CURRENT and of this manifest: one readdir each */
  foil_tmp_sweep(idir, "CURRENT");
  foil_tmp_sweep(dir, "manifest.h5");
  char **files = calloc((size_t)n_shards, sizeof(char *));
  int64_t *counts = calloc((size_t)n_shards, sizeof(int64_t)), *crcs = calloc((size_t)n_shards, sizeof(int64_t));
  if (!files || !counts || !crcs) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  index_meta first = {0}, m;
  int64_t total = 0;
  for (int r = 0; !rc && r < n_shards; r++) {
    snprintf(path, sizeof path, "%s/shard_%d.h5", dir, r);
    if (access(path, F_OK) != 0) {
      rc = foil_err_set(err, FOIL_ENOTFOUND, "%s is missing: version %d of index %s is incomplete", path, version, name);
      break;
    }
    h5io *f = NULL;
    if ((rc = open_shard(path, &f, &m, err))) break;
    h5io_close(&f);
    const char *why = NULL;
    if (m.version != version) why = "version";
    else if (m.shard != r) why = "shard number";
    else if (m.n_shards != n_shards) why = "n_shards";
    else if (strcmp(m.name, name)) why = "index name";
    else if (r && m.dim != first.dim) why = "dim";
    else if (r && m.dtype != first.dtype) why = "dtype";
    else if (r && strcmp(m.model_hash, first.model_hash)) why = "model_hash";
    else if (r && m.normalized != first.normalized) why = "normalized";
    else if (r && m.step != first.step) why = "step";
    if (why) {
      rc = foil_err_set(err, FOIL_EPRECOND, "%s does not belong with the other shards of %s/v%d: its %s differs",
                        path, name, version, why);
      break;
    }
    if (!r) first = m;
    uint32_t c = 0;
    if ((rc = file_crc(path, &c, err))) break;
    char fname[64];
    snprintf(fname, sizeof fname, "shard_%d.h5", r);
    if (!(files[r] = strdup(fname))) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
    counts[r] = m.count, crcs[r] = c, total += m.count;
  }
  int lk = -1;
  if (!rc) rc = lock_index(idir, &lk, err); /* manifest, CURRENT and prune: one publisher at a time */
  if (!rc) {
    h5io *f = NULL;
    index_meta mm = first;
    mm.count = total;
    uint64_t dn[1] = {(uint64_t)n_shards};
    snprintf(path, sizeof path, "%s/manifest.h5", dir);
    rc = h5io_create(&f, path, MANIFEST_FORMAT, err);
    if (!rc) rc = write_meta(f, &mm, err);
    if (!rc) rc = h5io_attr_i64(f, "/", "created", (int64_t)time(NULL), err);
    if (!rc) rc = h5io_write_strings(f, "shards", (const char *const *)files, (size_t)n_shards, err);
    if (!rc) rc = h5io_write_i64(f, "counts", counts, 1, dn, err);
    if (!rc) rc = h5io_write_i64(f, "crc32", crcs, 1, dn, err);
    if (!rc) rc = h5io_publish(&f, err);
    if (rc) h5io_abandon(&f);
  }
  if (!rc) { /* complete now: the marker has done its work */
    snprintf(path, sizeof path, "%s/" WRITING, dir);
    unlink(path);
    pub.step = pub.live_step = first.step;
  }
  /* never backwards within one run: a live version from a later checkpoint stays live */
  int live = 0;
  index_meta lm;
  foil_err e2 = {0};
  if (!rc && index_current(root, name, &live, &e2) == FOIL_OK && live != version &&
      manifest_meta(idir, live, &lm, &e2) == FOIL_OK && lm.step > first.step && same_run(lm.checkpoint, first.checkpoint))
    pub.switched = 0, pub.live = live, pub.live_step = lm.step;
  if (!rc && pub.switched) {
    char cur[PATH_CAP + 16], text[32];
    snprintf(cur, sizeof cur, "%s/CURRENT", idir);
    int len = snprintf(text, sizeof text, "v%d\n", version);
    rc = foil_write_file_atomic(cur, text, (size_t)len, err);
  }
  for (int r = 0; files && r < n_shards; r++) free(files[r]);
  free(files);
  free(counts);
  free(crcs);
  if (rc) {
    foil_unlock(&lk);
    return rc;
  }
  /* pruning: the newest `keep` complete versions stay, the live one and
   * this one always; incomplete ones older than the newest complete one go
   * once their writer is gone */
  int *ks = NULL, n = 0;
  if (list_versions(idir, &ks, &n, NULL)) { /* published; pruning waits for the next time */
    foil_unlock(&lk);
    if (out) *out = pub;
    return FOIL_OK;
  }
  int newest = version, rank = 0;
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/v%d/manifest.h5", idir, ks[i]);
    if (access(path, F_OK) == 0 && ks[i] > newest) newest = ks[i];
  }
  for (int i = n - 1; i >= 0; i--) {
    snprintf(path, sizeof path, "%s/v%d/manifest.h5", idir, ks[i]);
    snprintf(dir, sizeof dir, "%s/v%d", idir, ks[i]);
    int drop = access(path, F_OK) == 0 ? rank++ >= keep && ks[i] != version && ks[i] != pub.live
                                       : ks[i] < newest && !writer_live(dir);
    if (drop) remove_version(dir);
  }
  free(ks);
  foil_unlock(&lk);
  if (out) *out = pub;
  return FOIL_OK;
}

int index_current(const char *root, const char *name, int *version, foil_err *err) {
  char idir[PATH_CAP], cur[PATH_CAP + 16];
  int rc = index_dir(root, name, idir, sizeof idir, err);
  if (rc) return rc;
  snprintf(cur, sizeof cur, "%s/CURRENT", idir);
  char *text = NULL;
  size_t len = 0;
  foil_err e2 = {0};
  if ((rc = foil_read_file(cur, &text, &len, &e2)))
    return rc == FOIL_ENOTFOUND
               ? foil_err_set(err, FOIL_ENOTFOUND, "index %s has no published version (no %s): run a refresh first",
                              name, cur)
               : foil_err_set(err, rc, "%s", e2.msg);
  while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) text[--len] = 0;
  int k = version_of(text);
  if (k < 1) rc = foil_err_set(err, FOIL_EINVAL, "%s does not name a version (\"%.40s\"; expected v<k>)", cur, text);
  else *version = k;
  free(text);
  return rc;
}

void index_version_destroy(index_version **vp) {
  if (!vp || !*vp) return;
  index_version *v = *vp;
  for (int i = 0; v->shards && i < v->n_shards; i++) index_shard_destroy(&v->shards[i]);
  free(v->shards);
  free(v->shard_ids);
  free(v);
  *vp = NULL;
}

int index_version_open(const char *root, const char *name, int version, const int *which, int n_which,
                       index_version **out, foil_err *err) {
  *out = NULL;
  char dir[PATH_CAP], path[PATH_CAP + 64];
  int rc = vdir(root, name, version, dir, sizeof dir, err);
  if (rc) return rc;
  snprintf(path, sizeof path, "%s/manifest.h5", dir);
  if (access(path, F_OK) != 0)
    return foil_err_set(err, FOIL_ENOTFOUND, "%s is missing: version %d of index %s was never published", path,
                        version, name);
  h5io *f = NULL;
  index_version *v = calloc(1, sizeof *v);
  char **files = NULL;
  size_t nf = 0, nc = 0, ncrc = 0;
  int64_t *counts = NULL, *crcs = NULL;
  if (!v) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  rc = h5io_open(&f, path, MANIFEST_FORMAT, err);
  if (!rc) rc = read_meta(f, &v->meta, 0, err);
  if (!rc) rc = h5io_read_strings(f, "shards", &files, &nf, err);
  if (!rc) rc = h5io_read_i64(f, "counts", &counts, &nc, err);
  if (!rc) rc = h5io_read_i64(f, "crc32", &crcs, &ncrc, err);
  if (!rc && (nf != (size_t)v->meta.n_shards || nc != nf || ncrc != nf))
    rc = foil_err_set(err, FOIL_EINVAL, "%s: %zu shard names, %zu counts and %zu checksums for %d shards", path, nf,
                      nc, ncrc, v->meta.n_shards);
  if (!rc && v->meta.version != version)
    rc = foil_err_set(err, FOIL_EINVAL, "%s says version %d, not %d", path, v->meta.version, version);
  h5io_close(&f);
  int want = which ? n_which : v->meta.n_shards;
  if (!rc && (want < 0 || !(v->shards = calloc((size_t)want + 1, sizeof *v->shards)) ||
              !(v->shard_ids = calloc((size_t)want + 1, sizeof(int)))))
    rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  int64_t rows = 0;
  for (int i = 0; !rc && i < want; i++) {
    int r = which ? which[i] : i;
    if (r < 0 || r >= v->meta.n_shards) {
      rc = foil_err_set(err, FOIL_EINVAL, "index %s v%d has shards 0..%d, not %d", name, version,
                        v->meta.n_shards - 1, r);
      break;
    }
    if (strchr(files[r], '/') || !strcmp(files[r], "..")) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s: shard name \"%.100s\" is not a file name", path, files[r]);
      break;
    }
    char sp[PATH_CAP + 300];
    snprintf(sp, sizeof sp, "%s/%s", dir, files[r]);
    uint32_t c = 0;
    if ((rc = file_crc(sp, &c, err))) {
      if (rc == FOIL_ENOTFOUND) foil_err_set(err, rc, "%s is missing from published version %d of index %s", sp, version, name);
      break;
    }
    if ((int64_t)c != crcs[r]) {
      rc = foil_err_set(err, FOIL_EPRECOND, "%s: CRC-32 %08x does not match the manifest's %08llx (the file changed "
                        "or is damaged after publishing)", sp, c, (unsigned long long)crcs[r]);
      break;
    }
    index_shard *s = NULL;
    if ((rc = index_shard_read(sp, &s, err))) break;
    v->shards[v->n_shards] = s, v->shard_ids[v->n_shards] = r, v->n_shards++;
    const index_meta *m = &s->meta, *vm = &v->meta;
    const char *why = m->version != vm->version ? "version" : m->shard != r ? "shard number"
                    : m->dim != vm->dim ? "dim" : m->dtype != vm->dtype ? "dtype"
                    : strcmp(m->model_hash, vm->model_hash) ? "model_hash" : m->count != counts[r] ? "count"
                    : m->n_shards != vm->n_shards ? "n_shards" : NULL;
    if (why) {
      rc = foil_err_set(err, FOIL_EPRECOND, "%s disagrees with its manifest %s on %s", sp, path, why);
      break;
    }
    rows += m->count;
  }
  if (files) h5io_free_strings(files, nf);
  free(counts);
  free(crcs);
  if (rc) {
    index_version_destroy(&v);
    return rc;
  }
  v->meta.count = rows;
  v->meta.shard = 0;
  *out = v;
  return FOIL_OK;
}
