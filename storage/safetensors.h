/* safetensors.h — Hugging Face's safetensors format, read and written by hand.
 *
 * A file is: an 8-byte little-endian header length N, N bytes of JSON (an
 * object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__" object of string -> string), then the
 * raw little-endian tensor bytes; offsets count from the end of the header.
 *
 * Reading is strict, as the reference implementation: the header length
 * must fit the file and stay under ST_MAX_HEADER; every dtype must be one
 * of safetensors' names; shape × dtype size must equal the byte span; the
 * spans must lie inside the data, must not overlap and must cover it
 * exactly (no holes, no trailing bytes); the header must be valid UTF-8,
 * its strings free of raw control characters, and shape and offset
 * entries written as plain digits (4e0, 1.0, -0 are refused, as serde
 * does for u64). foil is stricter where a reader could be misled: a tensor
 * name or __metadata__ key given twice (the reference keeps the last), and
 * a string holding \u0000 (a C string would end there), are refused. Any
 * violation is refused with the path and the reason. Cost: O(n log n) in
 * the number of tensors (names are sorted). Tensors of any known dtype can
 * be listed; reading as float32 accepts F32 and widens F16 and BF16
 * (others are refused).
 *
 * Ownership: st_open returns a handle that owns the whole file in memory
 * (one read; cost: the file's size) and frees it in st_close. Views
 * (st_tensor) point into it and live as long as the handle.
 */
#ifndef FOIL_STORAGE_SAFETENSORS_H
#define FOIL_STORAGE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define ST_MAX_HEADER (100u << 20) /* 100 MB, as safetensors' own limit */
#define ST_MAX_DIMS 8

typedef enum {
  ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_I16, ST_U16, ST_F16, ST_BF16,
  ST_I32, ST_U32, ST_F32, ST_I64, ST_U64, ST_F64, ST_NDTYPES
} st_dtype;

typedef struct {
  const char *name;   /* owned by the file handle */
  st_dtype dtype;
  int ndim;           /* 0: a scalar */
  int64_t shape[ST_MAX_DIMS];
  size_t nelem;
  const uint8_t *data; /* the raw little-endian bytes, nbytes of them */
  size_t nbytes;
} st_tensor;

typedef struct st_file st_file;

/* The dtype's name ("F32") and element size in bytes. */
const char *st_dtype_name(st_dtype d);
size_t st_dtype_size(st_dtype d);

/* Reads and checks path. Errors: FOIL_ENOTFOUND (no file), FOIL_EINVAL
 * (any format violation; the message names the path and what is wrong). */
int st_open(st_file **out, const char *path, foil_err *err);
void st_close(st_file **f);

const char *st_path(const st_file *f);
/* Tensors in file order (by data offset). */
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);
/* NULL when absent. Cost: a binary search over the names, O(log n). */
const st_tensor *st_find(const st_file *f, const char *name);
/* A "__metadata__" value, NULL when absent. Owned by f. */
const char *st_metadata(const st_file *f, const char *key);

/* Copies a tensor into out as float32 (n = its element count; F16 and BF16
 * are widened exactly). Errors name the tensor: other dtypes, n mismatch. */
int st_read_f32(const st_file *f, const st_tensor *t, float *out, size_t n, foil_err *err);

/* ---- writing ----------------------------------------------------------------- */

typedef struct {
  const char *name;
  st_dtype dtype;
  int ndim;
  int64_t shape[ST_MAX_DIMS];
  const void *data; /* shape × dtype size bytes, little-endian */
} st_entry;

/* Writes n entries, in the order given, with optional metadata (n_meta
 * key/value string pairs, e.g. {"format", "pt"}), atomically
 * (common/fileio.h). The header is padded with spaces to a multiple of 8
 * as safetensors does. Cost: the whole file is built in memory once. */
int st_write(const char *path, const st_entry *e, int n, const char *const *meta_kv, int n_meta,
             foil_err *err);

#endif
