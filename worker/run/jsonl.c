/* jsonl.c — see jsonl.h. */
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "worker/run/jsonl.h"

int jsonl_each(const char *path, const char *what, jsonl_fn fn, void *ctx, foil_err *err) {
  char *data = NULL;
  size_t len = 0;
  int rc = foil_read_file(path, &data, &len, err);
  if (rc) return rc;
  int line = 0;
  for (char *p = data, *next; !rc && p < data + len; p = next) {
    line++;
    char *nl = memchr(p, '\n', (size_t)(data + len - p));
    char *end = nl ? nl : data + len;
    next = nl ? nl + 1 : end;
    if (memchr(p, 0, (size_t)(end - p))) {
      rc = foil_err_set(err, FOIL_EINVAL, "%s:%d: a NUL byte inside the line", path, line);
      break;
    }
    *end = 0; /* a file without a final newline: foil_read_file leaves room for it */
    const char *q = p;
    while (*q == ' ' || *q == '\t' || *q == '\r') q++;
    if (!*q) continue;
    cJSON *o = cJSON_ParseWithOpts(p, NULL, 1);
    if (!cJSON_IsObject(o)) rc = foil_err_set(err, FOIL_EINVAL, "%s:%d: not a JSON object (%s)", path, line, what);
    else rc = fn(ctx, o, path, line, err);
    cJSON_Delete(o);
  }
  free(data);
  return rc == JSONL_STOP ? FOIL_OK : rc;
}
