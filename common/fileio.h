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

/* ---- killed writers' leftovers ----------------------------------------------------- */

/* Past this age (mtime), a temporary or a writer's marker counts as
 * abandoned whatever its host: no foil writer keeps one file unmodified
 * that long. */
#define FOIL_STALE_S (24 * 3600)

/* 1 when the writer (host, pid) of a file last modified age_s seconds ago
 * may still be writing it, 0 when it is surely gone: a writer of this host
 * (host as foil_tmp_name writes it) whose pid no longer exists or is a
 * zombie (killed, not yet reaped), or any writer once age_s >=
 * FOIL_STALE_S. host NULL or pid <= 0 (not known): only the age decides.
 * Cost: gethostname, one kill(pid, 0) and a read of /proc/<pid>/stat. */
int foil_writer_may_live(const char *host, long pid, double age_s);
/* This host's name as foil_tmp_name and foil_writer_may_live write and
 * compare it: [A-Za-z0-9._-], at most 63 bytes, NUL-terminated. */
void foil_host(char out[64]);

/* Removes path and, for a folder, everything below it, never following a
 * symbolic link (a link is removed, not what it names). Best effort. */
void foil_remove_tree(const char *path);

/* Removes the temporaries of killed writers in directory dir whose names
 * start with prefix: "<prefix>*.tmp-<host>-<pid>-<16 hex>" as
 * foil_tmp_name makes them, files or folders (foil_remove_tree) (e.g. prefix "step_" for every checkpoint of a
 * job, "CURRENT" for one file), when foil_writer_may_live says their
 * writer is gone. A live writer's temporary is never removed: one of this
 * host while its pid exists, one of another host for FOIL_STALE_S.
 * Best effort, no error: returns how many were removed (a missing or
 * unreadable dir: 0). Cost: one readdir of dir, a stat per matching name. */
int foil_tmp_sweep(const char *dir, const char *prefix);
/* foil_tmp_sweep of the temporaries of the one file path ("<path>.tmp-…"). */
int foil_tmp_sweep_path(const char *path);

/* An exclusive lock on the file path (created 0644 if missing, opened
 * O_CLOEXEC), waiting until it is held: flock(2), advisory, released by
 * foil_unlock or when the process dies. Across hosts it excludes only on
 * filesystems whose flock is cluster-wide (local filesystems, NFSv4,
 * Lustre mounted with -o flock, GPFS, CephFS); elsewhere (e.g. NFS mounted
 * with local_lock=flock) it serializes the processes of one host. A
 * filesystem without locks at all (ENOLCK, EOPNOTSUPP) is not an error:
 * *fd is then -1 and nothing is held. Errors: FOIL_EPERM naming path.
 * Ownership: *fd is the caller's until foil_unlock. */
int foil_lock(const char *path, int *fd, foil_err *err);
/* Releases a foil_lock (closes *fd, sets it -1); -1 is a no-op. */
void foil_unlock(int *fd);

#endif
