/* fileio.c — whole-file reads, atomic writes (see fileio.h). */
#define _POSIX_C_SOURCE 200809L
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int foil_read_file(const char *path, char **data, size_t *len, foil_err *err) {
  *data = NULL;
  if (len) *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    return foil_err_set(err, e == ENOENT ? FOIL_ENOTFOUND : e == EACCES ? FOIL_EPERM : FOIL_EINVAL,
                        "%s: %s", path, strerror(e));
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap) break; /* end of file or an error: ferror tells */
    char *nb = realloc(buf, cap * 2 + 1);
    if (!nb) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = nb;
    cap *= 2;
  }
  int bad = ferror(f);
  fclose(f);
  if (!buf) return foil_err_set(err, FOIL_ENOMEM, "out of memory reading %s", path);
  if (bad) {
    free(buf);
    return foil_err_set(err, FOIL_EINVAL, "%s: read error", path);
  }
  buf[n] = '\0';
  *data = buf;
  if (len) *len = n;
  return FOIL_OK;
}

int foil_split_lines(char *text, size_t len, char ***lines, size_t *n, foil_err *err) {
  size_t cap = 1;
  for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
  *n = 0;
  if (!(*lines = malloc(sizeof(char *) * cap))) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  for (char *p = text; p < text + len;) {
    char *e = memchr(p, '\n', (size_t)(text + len - p));
    if (!e) e = text + len; /* foil_read_file's buffer has its NUL there */
    *e = 0;
    (*lines)[(*n)++] = p;
    p = e + 1;
  }
  return FOIL_OK;
}

static int io_code(int e) { return e == EACCES || e == EPERM || e == EROFS ? FOIL_EPERM : FOIL_EINVAL; }

int foil_write_file_atomic(const char *path, const void *data, size_t len, foil_err *err) {
  return foil_write_file_atomic_mode(path, data, len, 0644, err);
}

int foil_write_file_atomic_mode(const char *path, const void *data, size_t len, unsigned mode, foil_err *err) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
    return foil_err_set(err, FOIL_EINVAL, "path too long: %s", path);
  unlink(tmp);  /* a leftover of a crashed writer may have a wider mode */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
  if (fd < 0) return foil_err_set(err, io_code(errno), "cannot write %s: %s", tmp, strerror(errno));
  const char *p = data;
  size_t left = len;
  while (left) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    p += w, left -= (size_t)w;
  }
  int e = left ? errno : 0;
  if (!e && fsync(fd)) e = errno;
  if (close(fd) && !e) e = errno;
  if (!e && rename(tmp, path)) e = errno;
  if (e) {
    unlink(tmp);
    return foil_err_set(err, io_code(e), "cannot write %s: %s", path, strerror(e));
  }
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return FOIL_OK;
}

int foil_mkdirs(const char *path, foil_err *err) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return foil_err_set(err, FOIL_EINVAL, "path too long: %s", path);
  for (char *p = buf + 1;; p++) {
    int end = *p == 0;
    if (*p == '/' || end) {
      *p = 0;
      if (mkdir(buf, 0755) && errno != EEXIST)
        return foil_err_set(err, io_code(errno), "cannot create %s: %s", buf, strerror(errno));
      if (end) break;
      *p = '/';
    }
  }
  return FOIL_OK;
}
