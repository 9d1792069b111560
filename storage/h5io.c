/* h5io.c — atomic HDF5 writing and checked reading (see h5io.h). */
#define _POSIX_C_SOURCE 200809L
#include "storage/h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct h5io {
  hid_t fid;
  hid_t lcpl; /* link creation: intermediate groups */
  char *path, *tmp;
};

static void quiet_hdf5(void) {
  static int done = 0;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    done = 1;
  }
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* mkdir -p of the directory holding path */
static int make_parents(const char *path, foil_err *err) {
  char *buf = dupstr(path);
  if (!buf) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
      int e = errno;
      free(buf);
      return foil_err_set(err, FOIL_EPERM, "cannot create directory for %s: %s", path,
                          strerror(e));
    }
    *p = '/';
  }
  free(buf);
  return FOIL_OK;
}

static void h5io_free(h5io *f) {
  if (!f) return;
  if (f->lcpl > 0) H5Pclose(f->lcpl);
  free(f->path);
  free(f->tmp);
  free(f);
}

/* ---- writing ------------------------------------------------------------------ */

int h5io_create(h5io **out, const char *path, const char *format, foil_err *err) {
  quiet_hdf5();
  *out = NULL;
  int rc = make_parents(path, err);
  if (rc) return rc;
  h5io *f = calloc(1, sizeof *f);
  size_t n = strlen(path) + 32;
  if (f) {
    f->path = dupstr(path);
    f->tmp = malloc(n);
  }
  if (!f || !f->path || !f->tmp) {
    h5io_free(f);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  snprintf(f->tmp, n, "%s.tmp-%ld", path, (long)getpid());
  f->fid = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f->fid < 0) {
    rc = foil_err_set(err, FOIL_EPERM, "cannot create %s", f->tmp);
    h5io_free(f);
    return rc;
  }
  f->lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(f->lcpl, 1);
  if (format && (rc = h5io_attr_str(f, "/", "foil_format", format, err))) {
    h5io_abandon(&f);
    return rc;
  }
  *out = f;
  return FOIL_OK;
}

static int fsync_path(const char *path, int dir) {
  int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

int h5io_publish(h5io **fp, foil_err *err) {
  h5io *f = *fp;
  int rc = FOIL_OK;
  if (H5Fclose(f->fid) < 0) rc = foil_err_set(err, FOIL_EINTERNAL, "closing %s failed", f->tmp);
  f->fid = -1;
  if (!rc && fsync_path(f->tmp, 0) != 0)
    rc = foil_err_set(err, FOIL_EINTERNAL, "fsync %s: %s", f->tmp, strerror(errno));
  if (!rc && rename(f->tmp, f->path) != 0)
    rc = foil_err_set(err, FOIL_EINTERNAL, "rename %s -> %s: %s", f->tmp, f->path, strerror(errno));
  if (!rc) {
    char *d = dupstr(f->path);
    if (d) fsync_path(dirname(d), 1); /* best effort: the rename is durable */
    free(d);
  } else {
    unlink(f->tmp);
  }
  h5io_free(f);
  *fp = NULL;
  return rc;
}

void h5io_abandon(h5io **fp) {
  if (!fp || !*fp) return;
  h5io *f = *fp;
  if (f->fid >= 0) H5Fclose(f->fid);
  if (f->tmp) unlink(f->tmp);
  h5io_free(f);
  *fp = NULL;
}

static int write_ds(h5io *f, const char *name, hid_t file_type, hid_t mem_type, const void *data,
                    int ndim, const uint64_t *dims, foil_err *err) {
  hsize_t d[8];
  if (ndim < 0 || ndim > 8) return foil_err_set(err, FOIL_EINVAL, "%s: bad rank %d", name, ndim);
  for (int i = 0; i < ndim; i++) d[i] = dims[i];
  hid_t sp = ndim ? H5Screate_simple(ndim, d, NULL) : H5Screate(H5S_SCALAR);
  hid_t ds = H5Dcreate2(f->fid, name, file_type, sp, f->lcpl, H5P_DEFAULT, H5P_DEFAULT);
  herr_t w = ds >= 0 ? H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(sp);
  if (w < 0) return foil_err_set(err, FOIL_EINTERNAL, "writing dataset %s to %s failed", name, f->tmp);
  return FOIL_OK;
}

int h5io_write_f32(h5io *f, const char *name, const float *data, int ndim, const uint64_t *dims,
                   foil_err *err) {
  return write_ds(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, ndim, dims, err);
}
int h5io_write_f64(h5io *f, const char *name, const double *data, int ndim, const uint64_t *dims,
                   foil_err *err) {
  return write_ds(f, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, data, ndim, dims, err);
}
int h5io_write_i32(h5io *f, const char *name, const int32_t *data, int ndim, const uint64_t *dims,
                   foil_err *err) {
  return write_ds(f, name, H5T_STD_I32LE, H5T_NATIVE_INT32, data, ndim, dims, err);
}
int h5io_write_i64(h5io *f, const char *name, const int64_t *data, int ndim, const uint64_t *dims,
                   foil_err *err) {
  return write_ds(f, name, H5T_STD_I64LE, H5T_NATIVE_INT64, data, ndim, dims, err);
}
int h5io_write_u8(h5io *f, const char *name, const uint8_t *data, int ndim, const uint64_t *dims,
                  foil_err *err) {
  return write_ds(f, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, data, ndim, dims, err);
}

static hid_t utf8_vlen_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

int h5io_write_strings(h5io *f, const char *name, const char *const *strs, size_t n,
                       foil_err *err) {
  hid_t t = utf8_vlen_type();
  uint64_t dims[1] = {n};
  /* HDF5 cannot write a zero-length selection from a NULL buffer */
  static const char *empty[1] = {""};
  int rc = write_ds(f, name, t, t, n ? (const void *)strs : (const void *)empty, 1, dims, err);
  H5Tclose(t);
  return rc;
}

static int write_attr(h5io *f, const char *obj, const char *key, hid_t type, const void *val,
                      foil_err *err) {
  hid_t o = H5Oopen(f->fid, obj, H5P_DEFAULT);
  if (o < 0) return foil_err_set(err, FOIL_ENOTFOUND, "%s: no object %s for attribute %s", f->tmp, obj, key);
  if (H5Aexists(o, key) > 0) H5Adelete(o, key);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(o, key, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t w = a >= 0 ? H5Awrite(a, type, val) : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  H5Oclose(o);
  if (w < 0) return foil_err_set(err, FOIL_EINTERNAL, "%s: writing attribute %s failed", f->tmp, key);
  return FOIL_OK;
}

int h5io_attr_str(h5io *f, const char *obj, const char *key, const char *val, foil_err *err) {
  hid_t t = utf8_vlen_type();
  int rc = write_attr(f, obj, key, t, &val, err);
  H5Tclose(t);
  return rc;
}
int h5io_attr_i64(h5io *f, const char *obj, const char *key, int64_t val, foil_err *err) {
  return write_attr(f, obj, key, H5T_NATIVE_INT64, &val, err);
}
int h5io_attr_f64(h5io *f, const char *obj, const char *key, double val, foil_err *err) {
  return write_attr(f, obj, key, H5T_NATIVE_DOUBLE, &val, err);
}

/* ---- reading --------------------------------------------------------------------- */

int h5io_open(h5io **out, const char *path, const char *format, foil_err *err) {
  quiet_hdf5();
  *out = NULL;
  struct stat st;
  if (stat(path, &st) != 0)
    return foil_err_set(err, FOIL_ENOTFOUND, "%s: %s", path, strerror(errno));
  if (H5Fis_hdf5(path) <= 0)
    return foil_err_set(err, FOIL_EINVAL, "%s is not an HDF5 file (foreign or truncated)", path);
  hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (fid < 0)
    return foil_err_set(err, FOIL_EINVAL, "%s cannot be opened as HDF5 (truncated or corrupt)", path);
  h5io *f = calloc(1, sizeof *f);
  if (!f || !(f->path = dupstr(path))) {
    H5Fclose(fid);
    h5io_free(f);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  f->fid = fid;
  f->lcpl = -1;
  if (format) {
    char *have = NULL;
    if (h5io_get_attr_str(f, "/", "foil_format", &have, NULL) != FOIL_OK || strcmp(have, format)) {
      int rc = foil_err_set(err, FOIL_EINVAL, "%s is not a %s file (foil_format is %s)", path,
                            format, have ? have : "missing");
      free(have);
      h5io_close(&f);
      return rc;
    }
    free(have);
  }
  *out = f;
  return FOIL_OK;
}

void h5io_close(h5io **fp) {
  if (!fp || !*fp) return;
  if ((*fp)->fid >= 0) H5Fclose((*fp)->fid);
  h5io_free(*fp);
  *fp = NULL;
}

const char *h5io_path(const h5io *f) { return f->path; }
int64_t h5io_fid(h5io *f) { return (int64_t)f->fid; }

int h5io_exists(h5io *f, const char *name) {
  if (!name[0]) return 0;
  /* check each prefix: H5Lexists fails on a missing intermediate group */
  char buf[512];
  snprintf(buf, sizeof buf, "%s", name);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (H5Lexists(f->fid, buf, H5P_DEFAULT) <= 0) return 0;
      if (!c) return 1;
      *p = c;
    }
  }
}

static hid_t open_ds(h5io *f, const char *name, foil_err *err) {
  hid_t ds = h5io_exists(f, name) ? H5Dopen2(f->fid, name, H5P_DEFAULT) : -1;
  if (ds < 0) foil_err_set(err, FOIL_ENOTFOUND, "%s has no dataset %s", f->path, name);
  return ds;
}

int h5io_shape(h5io *f, const char *name, int *ndim, uint64_t dims[8], foil_err *err) {
  hid_t ds = open_ds(f, name, err);
  if (ds < 0) return FOIL_ENOTFOUND;
  hid_t sp = H5Dget_space(ds);
  int nd = H5Sget_simple_extent_ndims(sp);
  hsize_t d[8] = {0};
  int rc = FOIL_OK;
  if (nd < 0 || nd > 8) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s: dataset %s has an unsupported rank", f->path, name);
  } else {
    H5Sget_simple_extent_dims(sp, d, NULL);
    *ndim = nd;
    for (int i = 0; i < 8; i++) dims[i] = i < nd ? d[i] : 0;
  }
  H5Sclose(sp);
  H5Dclose(ds);
  return rc;
}

/* Elements of a dataset of these dims; FOIL_EINVAL when count × elem does
 * not fit in memory's address space (a damaged shape). */
static int ds_count(h5io *f, const char *name, int nd, const uint64_t *dims, size_t elem, size_t *count,
                    foil_err *err) {
  size_t c = 1;
  for (int i = 0; i < nd; i++) {
    if (dims[i] && c > SIZE_MAX / 2 / elem / dims[i])
      return foil_err_set(err, FOIL_EINVAL, "%s: dataset %s has an impossible shape (damaged file)", f->path, name);
    c *= dims[i];
  }
  *count = c;
  return FOIL_OK;
}

/* A numeric dataset's stored type must be an integer, a float or an enum
 * (h5py's bool) of at most 16 bytes: HDF5 sizes its conversion buffer from
 * it, and a damaged type header otherwise asks for gigabytes. */
static int ds_numeric(h5io *f, hid_t ds, const char *name, foil_err *err) {
  hid_t t = H5Dget_type(ds);
  H5T_class_t k = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
  size_t sz = t < 0 ? 0 : H5Tget_size(t);
  if (t >= 0) H5Tclose(t);
  if ((k != H5T_INTEGER && k != H5T_FLOAT && k != H5T_ENUM) || sz < 1 || sz > 16)
    return foil_err_set(err, FOIL_EINVAL, "%s: dataset %s is not stored as numbers (damaged file or wrong dataset)",
                        f->path, name);
  return FOIL_OK;
}

static int read_ds(h5io *f, const char *name, hid_t mem_type, size_t elem, void **out, size_t *n,
                   foil_err *err) {
  int nd;
  uint64_t dims[8];
  *out = NULL;
  int rc = h5io_shape(f, name, &nd, dims, err);
  if (rc) return rc;
  size_t count = 1;
  if ((rc = ds_count(f, name, nd, dims, elem, &count, err))) return rc;
  hid_t ds = H5Dopen2(f->fid, name, H5P_DEFAULT);
  if ((rc = ds_numeric(f, ds, name, err))) {
    H5Dclose(ds);
    return rc;
  }
  void *buf = malloc(count * elem + 1);
  if (!buf) {
    H5Dclose(ds);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory reading %s", name);
  }
  herr_t r = H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  H5Dclose(ds);
  if (r < 0) {
    free(buf);
    return foil_err_set(err, FOIL_EINVAL, "%s: dataset %s cannot be read as the expected type "
                        "(wrong dtype or damaged file)", f->path, name);
  }
  *out = buf;
  if (n) *n = count;
  return FOIL_OK;
}

int h5io_read_f32(h5io *f, const char *name, float **out, size_t *n, foil_err *err) {
  return read_ds(f, name, H5T_NATIVE_FLOAT, sizeof(float), (void **)out, n, err);
}
int h5io_read_f64(h5io *f, const char *name, double **out, size_t *n, foil_err *err) {
  return read_ds(f, name, H5T_NATIVE_DOUBLE, sizeof(double), (void **)out, n, err);
}
int h5io_read_i32(h5io *f, const char *name, int32_t **out, size_t *n, foil_err *err) {
  return read_ds(f, name, H5T_NATIVE_INT32, sizeof(int32_t), (void **)out, n, err);
}
int h5io_read_i64(h5io *f, const char *name, int64_t **out, size_t *n, foil_err *err) {
  return read_ds(f, name, H5T_NATIVE_INT64, sizeof(int64_t), (void **)out, n, err);
}
int h5io_read_u8(h5io *f, const char *name, uint8_t **out, size_t *n, foil_err *err) {
  return read_ds(f, name, H5T_NATIVE_UINT8, 1, (void **)out, n, err);
}

int h5io_read_f32_into(h5io *f, const char *name, float *out, size_t n, foil_err *err) {
  int nd;
  uint64_t dims[8];
  int rc = h5io_shape(f, name, &nd, dims, err);
  if (rc) return rc;
  size_t count = 1;
  if ((rc = ds_count(f, name, nd, dims, sizeof(float), &count, err))) return rc;
  if (count != n)
    return foil_err_set(err, FOIL_EINVAL, "%s: dataset %s has %zu elements, expected %zu", f->path,
                        name, count, n);
  hid_t ds = H5Dopen2(f->fid, name, H5P_DEFAULT);
  if ((rc = ds_numeric(f, ds, name, err))) {
    H5Dclose(ds);
    return rc;
  }
  herr_t r = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
  H5Dclose(ds);
  return r < 0 ? foil_err_set(err, FOIL_EINVAL, "%s: dataset %s cannot be read", f->path, name)
               : FOIL_OK;
}

int h5io_read_strings(h5io *f, const char *name, char ***strs, size_t *n, foil_err *err) {
  *strs = NULL;
  *n = 0;
  int nd;
  uint64_t dims[8];
  int rc = h5io_shape(f, name, &nd, dims, err);
  if (rc) return rc;
  if (nd != 1) return foil_err_set(err, FOIL_EINVAL, "%s: %s is not a 1-D string dataset", f->path, name);
  hid_t ds = H5Dopen2(f->fid, name, H5P_DEFAULT);
  hid_t ftype = H5Dget_type(ds);
  int is_str = H5Tget_class(ftype) == H5T_STRING && H5Tis_variable_str(ftype) > 0;
  H5Tclose(ftype);
  if (!is_str) {
    H5Dclose(ds);
    return foil_err_set(err, FOIL_EINVAL, "%s: %s is not a variable-length string dataset", f->path, name);
  }
  size_t cnt = dims[0];
  if (dims[0] > SIZE_MAX / 2 / sizeof(char *)) {
    H5Dclose(ds);
    return foil_err_set(err, FOIL_EINVAL, "%s: %s has an impossible length (damaged file)", f->path, name);
  }
  char **raw = calloc(cnt + 1, sizeof(char *));
  char **res = calloc(cnt + 1, sizeof(char *));
  hid_t t = utf8_vlen_type();
  herr_t r = raw && res ? H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) : -1;
  rc = r < 0 ? foil_err_set(err, FOIL_EINVAL, "%s: cannot read strings %s", f->path, name) : FOIL_OK;
  for (size_t i = 0; !rc && i < cnt; i++)
    if (!(res[i] = dupstr(raw[i] ? raw[i] : ""))) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  if (raw) {  /* a read that failed part way (a damaged file) may have
               * allocated some strings already: raw starts all NULL, and
               * reclaiming frees whatever HDF5 put there */
    hid_t sp = H5Dget_space(ds);
    H5Dvlen_reclaim(t, sp, H5P_DEFAULT, raw);
    H5Sclose(sp);
  }
  H5Tclose(t);
  H5Dclose(ds);
  free(raw);
  if (rc) {
    h5io_free_strings(res, cnt);
    return rc;
  }
  *strs = res;
  *n = cnt;
  return FOIL_OK;
}

void h5io_free_strings(char **strs, size_t n) {
  if (!strs) return;
  for (size_t i = 0; i < n; i++) free(strs[i]);
  free(strs);
}

static int read_attr(h5io *f, const char *obj, const char *key, hid_t type, void *val,
                     foil_err *err) {
  hid_t o = H5Oopen(f->fid, obj, H5P_DEFAULT);
  if (o < 0) return foil_err_set(err, FOIL_ENOTFOUND, "%s: no object %s", f->path, obj);
  int rc = FOIL_OK;
  if (H5Aexists(o, key) <= 0) {
    rc = foil_err_set(err, FOIL_ENOTFOUND, "%s: %s has no attribute %s", f->path, obj, key);
  } else {
    hid_t a = H5Aopen(o, key, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, type, val) < 0)
      rc = foil_err_set(err, FOIL_EINVAL, "%s: attribute %s of %s has the wrong type", f->path, key, obj);
    if (a >= 0) H5Aclose(a);
  }
  H5Oclose(o);
  return rc;
}

int h5io_get_attr_str(h5io *f, const char *obj, const char *key, char **val, foil_err *err) {
  *val = NULL;
  hid_t o = H5Oopen(f->fid, obj, H5P_DEFAULT);
  if (o < 0) return foil_err_set(err, FOIL_ENOTFOUND, "%s: no object %s", f->path, obj);
  int rc = FOIL_OK;
  if (H5Aexists(o, key) <= 0) {
    rc = foil_err_set(err, FOIL_ENOTFOUND, "%s: %s has no attribute %s", f->path, obj, key);
  } else {
    hid_t a = H5Aopen(o, key, H5P_DEFAULT);
    hid_t at = H5Aget_type(a);
    if (H5Tget_class(at) != H5T_STRING) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s: attribute %s is not a string", f->path, key);
    } else if (H5Tis_variable_str(at) > 0) {
      hid_t t = utf8_vlen_type();
      char *s = NULL;
      if (H5Aread(a, t, &s) < 0 || !s) {
        rc = foil_err_set(err, FOIL_EINVAL, "%s: cannot read attribute %s", f->path, key);
      } else {
        *val = dupstr(s);
        hid_t sp = H5Screate(H5S_SCALAR);
        H5Dvlen_reclaim(t, sp, H5P_DEFAULT, &s);
        H5Sclose(sp);
      }
      H5Tclose(t);
    } else { /* fixed-length string (as h5py writes numpy bytes) */
      size_t sz = H5Tget_size(at);
      char *s = calloc(sz + 1, 1);
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, sz);
      if (!s || H5Aread(a, t, s) < 0) {
        free(s);
        rc = foil_err_set(err, FOIL_EINVAL, "%s: cannot read attribute %s", f->path, key);
      } else {
        *val = s;
      }
      H5Tclose(t);
    }
    H5Tclose(at);
    H5Aclose(a);
  }
  H5Oclose(o);
  if (!rc && !*val) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory");
  return rc;
}

int h5io_get_attr_i64(h5io *f, const char *obj, const char *key, int64_t *val, foil_err *err) {
  return read_attr(f, obj, key, H5T_NATIVE_INT64, val, err);
}
int h5io_get_attr_f64(h5io *f, const char *obj, const char *key, double *val, foil_err *err) {
  return read_attr(f, obj, key, H5T_NATIVE_DOUBLE, val, err);
}
