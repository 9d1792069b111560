/* fileio.c — whole-file reads (see fileio.h). */
#include "common/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
