/* fileio.h — reading a whole file, the one way every foil module does it.
 *
 * foil_read_file reads path into a malloc'ed buffer the caller frees, with
 * a NUL after the last byte (so text can be used as a C string; *len does
 * not count it). Works on regular files and on pipes (/dev/stdin). Errors:
 * FOIL_ENOTFOUND (no such file), FOIL_EPERM (not readable), FOIL_EINVAL
 * (a read error), FOIL_ENOMEM; the message names the path.
 * Cost: one pass; the buffer grows geometrically, at most 2× the file.
 */
#ifndef FOIL_COMMON_FILEIO_H
#define FOIL_COMMON_FILEIO_H

#include <stddef.h>

#include "common/err.h"

int foil_read_file(const char *path, char **data, size_t *len, foil_err *err);

/* Splits text[0..len) into lines in place, as a file of one text per line
 * is read: each '\n' becomes a NUL and *lines (malloc'ed; the caller frees
 * the array, not the strings) points at each line's start, *n counting
 * them. A final line without '\n' counts; nothing follows the last '\n'
 * (an empty text has no lines). Empty lines and '\r' are kept. Errors:
 * FOIL_ENOMEM. Cost: two passes over text. */
int foil_split_lines(char *text, size_t len, char ***lines, size_t *n, foil_err *err);

/* Publishes data as path: written to a temporary name of its own
 * (foil_tmp_name, created with O_EXCL), fsynced, renamed over path, and the
 * directory fsynced, so a reader sees the old file or the new one, never a
 * part. Errors name the path (FOIL_EPERM, FOIL_EINVAL), or the directory
 * (FOIL_EINTERNAL) when its fsync fails: path is then already replaced but
 * not durable, and the caller must not report it published. */
int foil_write_file_atomic(const char *path, const void *data, size_t len, foil_err *err);
/* The same with the file's mode (before the umask), e.g. 0600 for a secret:
 * the file never exists with a wider mode. */
int foil_write_file_atomic_mode(const char *path, const void *data, size_t len, unsigned mode, foil_err *err);

/* mkdir -p: creates path and its missing parents (mode 0755); the parent
 * of each directory it creates is fsynced (foil_fsync_dir), so a file later
 * published inside does not vanish with its directory entry in a crash. */
int foil_mkdirs(const char *path, foil_err *err);
/* foil_mkdirs of the directory holding path, before a file is published
 * there (nothing to do when path's only '/' is a leading one, or none). */
int foil_mkdirs_parent(const char *path, foil_err *err);

/* A temporary name next to path, for writing it before a rename:
 * "<path>.tmp-<host>-<pid>-<16 hex digits>" (host reduced to [A-Za-z0-9._-],
 * 64 random bits), so writers on different hosts, processes or threads
 * sharing a filesystem never pick the same one. out holds n bytes; errors:
 * FOIL_EINVAL (does not fit). Cost: gethostname and one getrandom call. */
int foil_tmp_name(const char *path, char *out, size_t n, foil_err *err);

/* fsyncs the directory dir, making the entries created, renamed or removed
 * in it durable. Errors: FOIL_EINTERNAL naming dir when it cannot be opened
 * or its fsync fails (EIO, ENOSPC, ...); a filesystem that does not sync
 * directories at all (fsync says EINVAL) is not an error. Cost: one
 * fsync of the directory (a journal commit on most filesystems). */
int foil_fsync_dir(const char *dir, foil_err *err);
/* foil_fsync_dir of the directory holding path. */
int foil_fsync_parent(const char *path, foil_err *err);

#endif
