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

/* Publishes data as path: written to path.tmp.<pid>, fsynced, renamed over
 * path, and the directory fsynced, so a reader sees the old file or the
 * new one, never a part. Errors name the path (FOIL_EPERM, FOIL_EINVAL). */
int foil_write_file_atomic(const char *path, const void *data, size_t len, foil_err *err);
/* The same with the file's mode (before the umask), e.g. 0600 for a secret:
 * the file never exists with a wider mode. */
int foil_write_file_atomic_mode(const char *path, const void *data, size_t len, unsigned mode, foil_err *err);

/* mkdir -p: creates path and its missing parents (mode 0755). */
int foil_mkdirs(const char *path, foil_err *err);

#endif
