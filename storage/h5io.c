/* h5io.c — atomic HDF5 writing and checked reading (see h5io.h). */
#define _POSIX_C_SOURCE 200809L
#include "storage/h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "common/fileio.h"

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

/* mkdir -p of the directory holding path (foil_mkdirs_parent: the parent
 * of each directory created is fsynced), errors as h5io's */
static int make_parents(const char *path, foil_err *err) {
  if (!*path) return foil_err_set(err, FOIL_EINVAL, "empty file name");
  foil_err e = {0};
  int rc = foil_mkdirs_parent(path, &e);
  if (!rc) return FOIL_OK;
  if (rc == FOIL_EINTERNAL) return foil_err_set(err, rc, "%s", e.msg); /* created, not durable */
  return foil_err_set(err, FOIL_EPERM, "cannot create directory for %s: %s", path, e.msg);
}

static void h5io_free(h5io *f) {
  if (!f) return;
  if (f->lcpl > 0) H5Pclose(f->lcpl);
  free(f->path);
  free(f->tmp);
  free(f);
}

/* ---- integrity header (see h5io.h "Integrity header") ------------------------------- */

static const unsigned char hdr_magic[8] = {'F', 'O', 'I', 'L', 'H', '5', '\r', '\n'};
#define HDR_VERSION 1u
#define HDR_USED 28 /* magic 8, version 4, crc 4, length 8, header crc 4 */
#define CRC_BUF (1u << 20)

static void put_le(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get_le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* CRC-32 of bytes [from, to) of fd, read with pread into a 1 MiB buffer. */
static int crc_range(int fd, uint64_t from, uint64_t to, uint32_t *out) {
  unsigned char *buf = malloc(CRC_BUF);
  if (!buf) return FOIL_ENOMEM;
  uLong crc = crc32(0L, Z_NULL, 0);
  int rc = FOIL_OK;
  while (from < to) {
    size_t want = to - from < CRC_BUF ? (size_t)(to - from) : CRC_BUF;
    ssize_t got = pread(fd, buf, want, (off_t)from);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      rc = got < 0 ? FOIL_EINTERNAL : FOIL_EINVAL; /* EOF early: shrank under us */
      break;
    }
    crc = crc32(crc, buf, (uInt)got);
    from += (uint64_t)got;
  }
  free(buf);
  *out = (uint32_t)crc;
  return rc;
}

int h5io_sign(const char *path, foil_err *err) {
  int fd = open(path, O_RDWR);
  if (fd < 0) return foil_err_set(err, FOIL_EPERM, "cannot open %s to sign it: %s", path, strerror(errno));
  struct stat st;
  int rc = FOIL_OK;
  uint32_t crc = 0;
  if (fstat(fd, &st) != 0 || st.st_size < H5IO_HEADER_BYTES)
    rc = foil_err_set(err, FOIL_EINTERNAL, "%s: no %d-byte user block to sign", path, H5IO_HEADER_BYTES);
  else if (crc_range(fd, H5IO_HEADER_BYTES, (uint64_t)st.st_size, &crc))
    rc = foil_err_set(err, FOIL_EINTERNAL, "%s: read error while signing: %s", path, strerror(errno));
  if (!rc) {
    unsigned char h[HDR_USED];
    memcpy(h, hdr_magic, 8);
    put_le(h + 8, HDR_VERSION, 4);
    put_le(h + 12, crc, 4);
    put_le(h + 16, (uint64_t)st.st_size, 8);
    put_le(h + 24, (uint32_t)crc32(crc32(0L, Z_NULL, 0), h, 24), 4);
    if (pwrite(fd, h, sizeof h, 0) != (ssize_t)sizeof h)
      rc = foil_err_set(err, FOIL_EINTERNAL, "%s: writing the integrity header: %s", path, strerror(errno));
    else if (fsync(fd) != 0)
      rc = foil_err_set(err, FOIL_EINTERNAL, "fsync %s: %s", path, strerror(errno));
  }
  close(fd);
  return rc;
}

/* foil_format values that only foil writes: the header is required. */
static int header_required(const char *format) {
  static const char *const only_foil[] = {"foil.ckpt.v1", "foil.index.shard.v1", "foil.index.manifest.v1",
                                          "foil.negbank.v1"};
  for (size_t i = 0; format && i < sizeof only_foil / sizeof *only_foil; i++)
    if (!strcmp(format, only_foil[i])) return 1;
  return 0;
}

/* Files verified in this process, by identity. A file enters only when its
 * ctime is at least 2 s older than the start of its verification ("racy
 * git"): any later write to it then gives a newer ctime, so an entry that
 * matches names bytes that were read and matched their checksum. */
typedef struct {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
} seen_file;
static seen_file seen[16];
static unsigned seen_next;
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;

static int same_ts(struct timespec a, struct timespec b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }
static int seen_match(const seen_file *s, const struct stat *st) {
  return s->ino && s->dev == st->st_dev && s->ino == st->st_ino && s->size == st->st_size &&
         same_ts(s->mtime, st->st_mtim) && same_ts(s->ctime, st->st_ctim);
}

int h5io_check(const char *path, const char *format, foil_err *err) {
  int fd = open(path, O_RDONLY | O_NONBLOCK); /* a FIFO must not block the open */
  if (fd < 0) return foil_err_set(err, FOIL_ENOTFOUND, "%s: %s", path, strerror(errno));
  struct stat st;
  struct timespec start;
  clock_gettime(CLOCK_REALTIME, &start);
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return foil_err_set(err, FOIL_ENOTFOUND, "%s: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return foil_err_set(err, FOIL_EINVAL, "%s is not a regular file", path);
  }
  pthread_mutex_lock(&seen_mu);
  int hit = 0;
  for (size_t i = 0; i < sizeof seen / sizeof *seen && !hit; i++) hit = seen_match(&seen[i], &st);
  pthread_mutex_unlock(&seen_mu);
  if (hit) {
    close(fd);
    return FOIL_OK;
  }
  unsigned char h[HDR_USED];
  ssize_t n = st.st_size > 0 ? pread(fd, h, sizeof h, 0) : 0;
  if (n < 0) n = 0;
  int near = 0; /* magic bytes that match: 5..7 of 8 is a damaged header, not a foreign file */
  for (ssize_t i = 0; i < n && i < 8; i++) near += h[i] == hdr_magic[i];
  int rc = FOIL_OK;
  if (n < 8 || near < 5) { /* no header */
    close(fd);
    if (header_required(format))
      return foil_err_set(err, FOIL_EINVAL,
                          "%s: not written by foil, or by a foil before integrity headers: no integrity header "
                          "(every %s file foil writes has one)", path, format);
    return FOIL_OK;
  }
  uint64_t want_len = n == HDR_USED ? get_le(h + 16, 8) : 0;
  uint32_t want_crc = n == HDR_USED ? (uint32_t)get_le(h + 12, 4) : 0, have_crc = 0;
  if (n < HDR_USED || near < 8 ||
      get_le(h + 24, 4) != (uint32_t)crc32(crc32(0L, Z_NULL, 0), h, 24)) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s: damaged or truncated (checksum mismatch; expected a valid "
                      "integrity header in its first %d bytes)", path, HDR_USED);
  } else if (get_le(h + 8, 4) != HDR_VERSION) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s: integrity header version %u is not known to this foil (a newer foil "
                      "wrote it?)", path, (unsigned)get_le(h + 8, 4));
  } else if (want_len != (uint64_t)st.st_size) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s: damaged or truncated (checksum mismatch; expected %llu bytes, the "
                      "file has %llu)", path, (unsigned long long)want_len, (unsigned long long)st.st_size);
  } else if (st.st_size < H5IO_HEADER_BYTES ||
             crc_range(fd, H5IO_HEADER_BYTES, (uint64_t)st.st_size, &have_crc) || have_crc != want_crc) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s: damaged or truncated (checksum mismatch; expected CRC-32 %08x, the "
                      "file's is %08x)%s", path, (unsigned)want_crc, (unsigned)have_crc,
                      header_required(format) ? "" : "; a file edited in place after foil wrote it fails this too");
  }
  close(fd);
  if (!rc && (st.st_ctim.tv_sec < start.tv_sec - 2)) {
    pthread_mutex_lock(&seen_mu);
    seen_file *s = &seen[seen_next++ % (sizeof seen / sizeof *seen)];
    *s = (seen_file){st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
    pthread_mutex_unlock(&seen_mu);
  }
  return rc;
}

/* ---- writing ------------------------------------------------------------------ */

int h5io_create(h5io **out, const char *path, const char *format, foil_err *err) {
  quiet_hdf5();
  *out = NULL;
  int rc = make_parents(path, err);
  if (rc) return rc;
  h5io *f = calloc(1, sizeof *f);
  size_t n = strlen(path) + 128; /* foil_tmp_name's suffix: host (63), pid, 16 hex digits */
  if (f) {
    f->path = dupstr(path);
    f->tmp = malloc(n);
  }
  if (!f || !f->path || !f->tmp) {
    h5io_free(f);
    return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  }
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  if (fcpl >= 0 && H5Pset_userblock(fcpl, H5IO_HEADER_BYTES) < 0) H5Pclose(fcpl), fcpl = -1;
  /* H5F_CLOSE_SEMI: H5Fclose fails while an object of the file is still
   * open, instead of (the default, WEAK) leaving the file open and writing
   * its metadata later, after h5io_publish signed it. Every writer closes
   * its datasets, attributes and groups before it returns, so this turns a
   * future leak into a publish error, not a CRC mismatch at every open. */
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_SEMI) < 0) H5Pclose(fapl), fapl = -1;
  f->fid = -1;
  /* a name of this writer's own (host, pid, 64 random bits), created
   * exclusively: never another writer's temporary (a retry only on a name
   * that exists, a 2^-64 chance) */
  struct stat st;
  for (int tries = 0; fcpl >= 0 && fapl >= 0 && f->fid < 0 && tries < 4; tries++) {
    if ((rc = foil_tmp_name(path, f->tmp, n, err))) break;
    f->fid = H5Fcreate(f->tmp, H5F_ACC_EXCL, fcpl, fapl);
    if (f->fid < 0 && stat(f->tmp, &st) != 0) break;
  }
  if (fcpl >= 0) H5Pclose(fcpl);
  if (fapl >= 0) H5Pclose(fapl);
  if (rc) {
    h5io_free(f);
    return rc;
  }
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

int h5io_publish(h5io **fp, foil_err *err) {
  h5io *f = *fp;
  int rc = FOIL_OK;
  if (H5Fclose(f->fid) < 0) rc = foil_err_set(err, FOIL_EINTERNAL, "closing %s failed", f->tmp);
  f->fid = -1;
  if (!rc) rc = h5io_sign(f->tmp, err); /* writes the integrity header, fsyncs */
  if (!rc && rename(f->tmp, f->path) != 0)
    rc = foil_err_set(err, FOIL_EINTERNAL, "rename %s -> %s: %s", f->tmp, f->path, strerror(errno));
  /* the rename is durable only once the directory is: a failed fsync of it
   * is this publish's error (the file is in place but may not survive a
   * crash, so the caller must not announce it) */
  if (!rc) rc = foil_fsync_parent(f->path, err);
  else unlink(f->tmp);
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
  int rc = h5io_check(path, format, err); /* before libhdf5 reads a byte */
  if (rc) return rc;
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
    foil_err why = {0};
    int got = h5io_get_attr_str(f, "/", "foil_format", &have, &why);
    if (got != FOIL_OK || strcmp(have, format)) {
      if (got != FOIL_OK && got != FOIL_ENOTFOUND) /* there, but not one string */
        rc = foil_err_set(err, FOIL_EINVAL, "%s is not a %s file (%.300s)", path, format, why.msg);
      else
        rc = foil_err_set(err, FOIL_EINVAL, "%s is not a %s file (foil_format is %s)", path,
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
  /* a null dataspace (h5py.Empty) has rank 0 like a scalar but no element:
   * read as one, the buffer would keep whatever malloc left there */
  if (H5Sget_simple_extent_type(sp) == H5S_NULL) {
    rc = foil_err_set(err, FOIL_EINVAL, "%s: dataset %s is empty (a null dataspace, no values)", f->path, name);
  } else if (nd < 0 || nd > 8) {
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

/* HDF5 allocates every variable-length string of a read with its own
 * malloc (a million strings: a million mallocs, and as many frees when
 * reclaimed). The read below hands it this bump allocator instead: chunks
 * of at least ARENA_CHUNK bytes, nothing freed until arena_clear. */
#define ARENA_CHUNK ((size_t)1 << 20)
typedef struct arena_chunk {
  struct arena_chunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char mem[];
} arena_chunk;

static void *arena_alloc(size_t size, void *info) {
  arena_chunk **head = info, *c = *head;
  size = (size + 15) & ~(size_t)15;
  if (!c || c->cap - c->used < size) {
    size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
    if (!(c = malloc(sizeof *c + cap))) return NULL;
    c->next = *head, c->used = 0, c->cap = cap;
    *head = c;
  }
  void *p = c->mem + c->used;
  c->used += size;
  return p;
}

static void arena_free(void *mem, void *info) { (void)mem, (void)info; }

static void arena_clear(arena_chunk **head) {
  while (*head) {
    arena_chunk *c = *head;
    *head = c->next;
    free(c);
  }
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
  /* HDF5 reads into raw, its strings in the arena (a read that fails part
   * way leaves them there too: clearing the arena reclaims them); then one
   * block [cnt + 1 pointers | the strings] is the result */
  arena_chunk *arena = NULL;
  char **raw = calloc(cnt + 1, sizeof(char *)), **res = NULL;
  hid_t t = utf8_vlen_type(), dxpl = H5Pcreate(H5P_DATASET_XFER);
  herr_t r = raw && dxpl >= 0 ? H5Pset_vlen_mem_manager(dxpl, arena_alloc, &arena, arena_free, NULL) : -1;
  if (r >= 0) r = H5Dread(ds, t, H5S_ALL, H5S_ALL, dxpl, raw);
  rc = r < 0 ? foil_err_set(err, raw ? FOIL_EINVAL : FOIL_ENOMEM, "%s: cannot read strings %s", f->path, name)
             : FOIL_OK;
  size_t bytes = (cnt + 1) * sizeof(char *);
  for (size_t i = 0; !rc && i < cnt; i++) {
    size_t len = raw[i] ? strlen(raw[i]) : 0;
    if (len >= SIZE_MAX / 2 - bytes) rc = foil_err_set(err, FOIL_EINVAL, "%s: %s is too large", f->path, name);
    bytes += len + 1;
  }
  if (!rc && !(res = malloc(bytes))) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for %s", name);
  char *at = res ? (char *)(res + cnt + 1) : NULL;
  for (size_t i = 0; !rc && i < cnt; i++) {
    size_t len = raw[i] ? strlen(raw[i]) : 0;
    if (len) memcpy(at, raw[i], len);
    at[len] = 0;
    res[i] = at;
    at += len + 1;
  }
  if (res) res[cnt] = NULL;
  arena_clear(&arena);
  if (dxpl >= 0) H5Pclose(dxpl);
  H5Tclose(t);
  H5Dclose(ds);
  free(raw);
  if (rc) return rc;
  *strs = res;
  *n = cnt;
  return FOIL_OK;
}

void h5io_free_strings(char **strs, size_t n) {
  (void)n; /* one block (h5io_read_strings) */
  free(strs);
}

/* H5Aread transfers the attribute's whole dataspace: every read here is of
 * one value, so an attribute that is not exactly one (an array, h5py's
 * Empty) is refused before it could overrun the caller's buffer. */
static int attr_single(h5io *f, hid_t a, const char *obj, const char *key, foil_err *err) {
  hid_t sp = H5Aget_space(a);
  hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
  if (sp >= 0) H5Sclose(sp);
  if (np != 1)
    return foil_err_set(err, FOIL_EINVAL, "%s: attribute %s of %s is not a single value (it holds %lld)", f->path,
                        key, obj, (long long)np);
  return FOIL_OK;
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
    if (a < 0)
      rc = foil_err_set(err, FOIL_EINVAL, "%s: attribute %s of %s cannot be opened", f->path, key, obj);
    else if (!(rc = attr_single(f, a, obj, key, err)) && H5Aread(a, type, val) < 0)
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
    hid_t at = a < 0 ? -1 : H5Aget_type(a);
    H5T_cset_t cset = at < 0 ? H5T_CSET_ERROR : H5Tget_cset(at);
    if (at < 0 || H5Tget_class(at) != H5T_STRING || cset < 0) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s: attribute %s is not a string", f->path, key);
    } else if ((rc = attr_single(f, a, obj, key, err))) {
      /* refused: an array of strings */
    } else if (H5Tis_variable_str(at) > 0) {
      hid_t t = utf8_vlen_type();
      H5Tset_cset(t, cset); /* HDF5 does not convert between ASCII and UTF-8 */
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
      /* read as NULLTERM one byte longer than stored: HDF5's conversion
       * from a NULLPAD/SPACEPAD string of the same size would drop its last
       * character to make room for the NUL */
      size_t sz = H5Tget_size(at);
      char *s = calloc(sz + 2, 1);
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, sz + 1);
      H5Tset_cset(t, cset);
      if (!s || H5Aread(a, t, s) < 0) {
        free(s);
        rc = foil_err_set(err, FOIL_EINVAL, "%s: cannot read attribute %s", f->path, key);
      } else {
        *val = s;
      }
      H5Tclose(t);
    }
    if (at >= 0) H5Tclose(at);
    if (a >= 0) H5Aclose(a);
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
