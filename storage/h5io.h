/* h5io.h — the small set of HDF5 operations every foil file uses.
 *
 * Writing is atomic: h5io_create opens "<path>.tmp-<pid>", the caller writes
 * datasets and attributes, and h5io_publish closes, fsyncs, renames it to
 * <path> and fsyncs the directory. h5io_abandon removes the temporary file.
 * A reader never sees a half-written file under its final name.
 *
 * Reading checks what it opens: h5io_open refuses a file that is missing,
 * truncated or not HDF5, and (when `format` is given) one whose root
 * attribute "foil_format" is not that string, with a message naming the
 * file. Datasets are named with readable paths ("train/query"), texts are
 * variable-length UTF-8 strings, so h5py opens everything directly.
 *
 * Ownership: an h5io handle owns its HDF5 file id; h5io_publish and
 * h5io_close/h5io_abandon free it and set the pointer to NULL. Buffers that
 * read functions return are malloc'ed and owned by the caller.
 * HDF5's own error printing is turned off; failures come back as foil_err.
 */
#ifndef FOIL_STORAGE_H5IO_H
#define FOIL_STORAGE_H5IO_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct h5io h5io;

/* ---- writing ---------------------------------------------------------------- */

/* Creates <path>.tmp-<pid> (parent directories are created). format, when
 * not NULL, is written as the root attribute "foil_format". */
int h5io_create(h5io **out, const char *path, const char *format, foil_err *err);
/* Closes, fsyncs and renames the temporary file to its final path. */
int h5io_publish(h5io **f, foil_err *err);
/* Closes and deletes the temporary file (on any error path). */
void h5io_abandon(h5io **f);

/* Datasets; intermediate groups are created. dims: ndim sizes. */
int h5io_write_f32(h5io *f, const char *name, const float *data, int ndim,
                   const uint64_t *dims, foil_err *err);
int h5io_write_f64(h5io *f, const char *name, const double *data, int ndim,
                   const uint64_t *dims, foil_err *err);
int h5io_write_i32(h5io *f, const char *name, const int32_t *data, int ndim,
                   const uint64_t *dims, foil_err *err);
int h5io_write_i64(h5io *f, const char *name, const int64_t *data, int ndim,
                   const uint64_t *dims, foil_err *err);
int h5io_write_u8(h5io *f, const char *name, const uint8_t *data, int ndim,
                  const uint64_t *dims, foil_err *err);
/* n UTF-8 strings as a 1-D variable-length string dataset. */
int h5io_write_strings(h5io *f, const char *name, const char *const *strs, size_t n,
                       foil_err *err);
/* Attributes on the object `obj` ("/" for the root, or a dataset/group). */
int h5io_attr_str(h5io *f, const char *obj, const char *key, const char *val, foil_err *err);
int h5io_attr_i64(h5io *f, const char *obj, const char *key, int64_t val, foil_err *err);
int h5io_attr_f64(h5io *f, const char *obj, const char *key, double val, foil_err *err);

/* ---- reading ------------------------------------------------------------------ */

int h5io_open(h5io **out, const char *path, const char *format, foil_err *err);
void h5io_close(h5io **f);
const char *h5io_path(const h5io *f);

/* 1 if the dataset or group exists. */
int h5io_exists(h5io *f, const char *name);
/* Shape of a dataset: *ndim and up to 8 dims. */
int h5io_shape(h5io *f, const char *name, int *ndim, uint64_t dims[8], foil_err *err);
/* Whole dataset converted to the type named; *n gets the element count. */
int h5io_read_f32(h5io *f, const char *name, float **out, size_t *n, foil_err *err);
int h5io_read_f64(h5io *f, const char *name, double **out, size_t *n, foil_err *err);
int h5io_read_i32(h5io *f, const char *name, int32_t **out, size_t *n, foil_err *err);
int h5io_read_i64(h5io *f, const char *name, int64_t **out, size_t *n, foil_err *err);
int h5io_read_u8(h5io *f, const char *name, uint8_t **out, size_t *n, foil_err *err);
/* Reads into a caller buffer of exactly the dataset's element count. */
int h5io_read_f32_into(h5io *f, const char *name, float *out, size_t n, foil_err *err);
/* A string dataset: *strs is an array of n malloc'ed strings; free with
 * h5io_free_strings. */
int h5io_read_strings(h5io *f, const char *name, char ***strs, size_t *n, foil_err *err);
void h5io_free_strings(char **strs, size_t n);
/* Attributes. A string attribute comes back malloc'ed. */
int h5io_get_attr_str(h5io *f, const char *obj, const char *key, char **val, foil_err *err);
int h5io_get_attr_i64(h5io *f, const char *obj, const char *key, int64_t *val, foil_err *err);
int h5io_get_attr_f64(h5io *f, const char *obj, const char *key, double *val, foil_err *err);

/* Escape hatch for storage/ modules that need more of HDF5: the file id
 * (an hid_t, as int64_t so this header does not include hdf5.h). */
int64_t h5io_fid(h5io *f);

#endif
