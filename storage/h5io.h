/* h5io.h — the small set of HDF5 operations every foil file uses.
 *
 * Writing is atomic: h5io_create creates a temporary file of its own next to
 * <path> ("<path>.tmp-<host>-<pid>-<random>", common/fileio.h foil_tmp_name,
 * so writers on other hosts or processes never share it), the caller writes
 * datasets and attributes, and h5io_publish closes, signs (below), fsyncs,
 * renames it to <path> and fsyncs the directory. h5io_abandon removes the temporary file.
 * A reader never sees a half-written file under its final name.
 *
 * Reading checks what it opens: h5io_open refuses a file that is missing,
 * truncated or not HDF5, and (when `format` is given) one whose root
 * attribute "foil_format" is not that string, with a message naming the
 * file. Datasets are named with readable paths ("train/query"), texts are
 * variable-length UTF-8 strings, so h5py opens everything directly.
 *
 * Integrity header. Every file h5io_create writes has a 512-byte HDF5 user
 * block (HDF5 and h5py skip it). h5io_publish, after H5Fclose and before
 * the fsync and rename, writes into it (little-endian):
 *   0  "FOILH5\r\n"   8  version (u32, 1)   12  CRC-32 (zlib) of bytes [512, EOF)
 *   16 file length (u64, whole file)   24  CRC-32 of bytes [0, 24)   28.. zero
 * h5io_open checks it with plain reads BEFORE libhdf5 sees the file: a
 * length or CRC that does not match is refused with FOIL_EINVAL
 * "<file>: damaged or truncated (checksum mismatch; expected ...)". A file
 * with no header is decided by its expected foil_format:
 *   foil_format                                       no header
 *   foil.ckpt.v1, foil.index.shard.v1,                refused ("not written by
 *   foil.index.manifest.v1, foil.negbank.v1           foil, or by a foil before
 *     (only foil writes them)                         integrity headers")
 *   foil.pairs.v1, foil.benchmark.v1, foil.corpus.v1, opened as before (users
 *   foil.lm.v1, NULL (reference files), any other     make them with h5py)
 * A header whose magic is 5-7 of its 8 bytes, or whose own CRC fails, is a
 * damaged header (refused), not a foreign file. The check guards against
 * on-disk damage and truncation, not against a crafted file: anyone who can
 * write the file can also write a valid header (tests/fuzz/README.md).
 * Cost: h5io_open of a file with a header reads the whole file once more
 * (pread, one 1 MiB buffer) and computes its CRC-32: one sequential read at
 * disk speed when cold, zlib's CRC-32 (~2 GB/s on this project's dev
 * machine) when cached; a loader that then reads every dataset, as
 * ckpt_load does, gets that second read from the page cache. A file
 * verified in this process is not read again while its device, inode,
 * size, mtime and ctime are unchanged, if its ctime was over 2 s old when
 * verified (so a later write cannot leave the ctime as it was): loading an
 * older checkpoint (ckpt_read_config, ckpt_load, its tokenizer) pays once,
 * one published under 2 s ago pays per open. h5io_publish reads the file
 * once too (to sign it) before its fsync.
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

/* The user block size that holds the integrity header. */
#define H5IO_HEADER_BYTES 512

/* ---- writing ---------------------------------------------------------------- */

/* Creates the temporary file for path (parent directories are created, and
 * their parents fsynced). format, when not NULL, is written as the root
 * attribute "foil_format". */
int h5io_create(h5io **out, const char *path, const char *format, foil_err *err);
/* Closes, signs (integrity header), fsyncs and renames the temporary file
 * to its final path, then fsyncs the directory. An error from that last
 * fsync (FOIL_EINTERNAL naming the directory) leaves the file in place but
 * not durable: the caller must not announce it. */
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

/* Checks the integrity header (h5io_check), then opens, then checks
 * foil_format when format is not NULL. */
int h5io_open(h5io **out, const char *path, const char *format, foil_err *err);
/* The integrity gate alone, with no HDF5 call: FOIL_OK when path's header
 * matches its bytes, or it has none and format does not require one (the
 * table above); FOIL_ENOTFOUND when missing, else FOIL_EINVAL. Reads the
 * file once (see Cost). */
int h5io_check(const char *path, const char *format, foil_err *err);
/* Writes a valid integrity header for path's current bytes [512, EOF) into
 * its first 28 bytes and fsyncs it. The file must already have a 512-byte
 * user block (h5io_publish does this; the fuzz target re-signs mutated
 * files with it). */
int h5io_sign(const char *path, foil_err *err);
void h5io_close(h5io **f);
const char *h5io_path(const h5io *f);

/* 1 if the dataset or group exists. */
int h5io_exists(h5io *f, const char *name);
/* Shape of a dataset: *ndim and up to 8 dims. A dataset with a null
 * dataspace (h5py.Empty: no values, not even one) is refused with
 * FOIL_EINVAL here and by every read below. */
int h5io_shape(h5io *f, const char *name, int *ndim, uint64_t dims[8], foil_err *err);
/* Whole dataset converted to the type named; *n gets the element count. */
int h5io_read_f32(h5io *f, const char *name, float **out, size_t *n, foil_err *err);
int h5io_read_f64(h5io *f, const char *name, double **out, size_t *n, foil_err *err);
int h5io_read_i32(h5io *f, const char *name, int32_t **out, size_t *n, foil_err *err);
int h5io_read_i64(h5io *f, const char *name, int64_t **out, size_t *n, foil_err *err);
int h5io_read_u8(h5io *f, const char *name, uint8_t **out, size_t *n, foil_err *err);
/* Reads into a caller buffer of exactly the dataset's element count. */
int h5io_read_f32_into(h5io *f, const char *name, float *out, size_t n, foil_err *err);
/* A string dataset: *strs is n strings and a NULL, in one malloc'ed block
 * (the pointers, then the text): free it whole with h5io_free_strings, never
 * a string alone; a string may be changed in place up to its length. Cost:
 * one pass of HDF5's read (its strings go to a bump allocator, not one
 * malloc each) and one copy; memory: the text twice while reading. */
int h5io_read_strings(h5io *f, const char *name, char ***strs, size_t *n, foil_err *err);
void h5io_free_strings(char **strs, size_t n);
/* Attributes. Each holds exactly one value (scalar, or shape (1,)): an
 * array or an empty attribute is refused with FOIL_EINVAL ("not a single
 * value"). A string attribute comes back malloc'ed, whole: variable-length
 * or fixed-length of any padding (NULLTERM, NULLPAD as numpy bytes,
 * SPACEPAD: trailing spaces dropped), ASCII or UTF-8. */
int h5io_get_attr_str(h5io *f, const char *obj, const char *key, char **val, foil_err *err);
int h5io_get_attr_i64(h5io *f, const char *obj, const char *key, int64_t *val, foil_err *err);
int h5io_get_attr_f64(h5io *f, const char *obj, const char *key, double *val, foil_err *err);

/* Escape hatch for storage/ modules that need more of HDF5: the file id
 * (an hid_t, as int64_t so this header does not include hdf5.h). */
int64_t h5io_fid(h5io *f);

#endif
