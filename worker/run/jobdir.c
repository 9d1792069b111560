/* jobdir.c — a job's directory, log, metrics and progress (see jobdir.h). */
#define _POSIX_C_SOURCE 200809L /* PATH_MAX (limits.h) */
#include "worker/run/jobdir.h"

#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "storage/ckpt.h"

int jobdir_open(const char *dir, const char *sub, FILE **log, FILE **metrics, progress **prog, foil_err *err) {
  char p[4300];
  if (sub) snprintf(p, sizeof p, "%s/%s", dir, sub);
  else snprintf(p, sizeof p, "%s", dir);
  if (foil_mkdirs(p, NULL)) return foil_err_set(err, FOIL_EPERM, "cannot create the job directory %s", dir);
  snprintf(p, sizeof p, "%s/log", dir);
  *log = fopen(p, "a");
  snprintf(p, sizeof p, "%s/metrics", dir);
  *metrics = fopen(p, "a");
  if (!*log || !*metrics) return foil_err_set(err, FOIL_EPERM, "cannot write the log and metrics in %s", dir);
  return progress_open(prog, err);
}

/* 1 when line[0..n) is a whole metrics line of step <= keep_max: a JSON
 * object that starts with "step". A line torn by a kill (no closing brace)
 * is not. */
static int metrics_keep(const char *line, size_t n, int64_t keep_max) {
  static const char head[] = "{\"step\":";
  const size_t h = sizeof head - 1;
  if (n <= h + 1 || memcmp(line, head, h) != 0 || line[n - 1] != '}') return 0;
  char *end;
  long long s = strtoll(line + h, &end, 10);
  return end > line + h && (*end == ',' || *end == '}') && s <= keep_max;
}

int jobdir_metrics_from(const char *dir, int64_t from, FILE **metrics, size_t *dropped, foil_err *err) {
  char path[4200], *text = NULL, *out = NULL;
  size_t len = 0, n_out = 0, gone = 0;
  if (dropped) *dropped = 0;
  snprintf(path, sizeof path, "%s/metrics", dir);
  int rc = foil_read_file(path, &text, &len, err);
  if (!rc && !(out = malloc(len + 1))) rc = foil_err_set(err, FOIL_ENOMEM, "out of memory for %s", path);
  const int64_t keep_max = from > 0 ? from : -1;
  for (size_t i = 0; !rc && i < len;) {
    const char *line = text + i, *nl = memchr(line, '\n', len - i);
    const size_t n = nl ? (size_t)(nl - line) : len - i;
    if (nl && metrics_keep(line, n, keep_max)) {
      memcpy(out + n_out, line, n + 1); /* with its '\n' */
      n_out += n + 1;
    } else {
      gone++;
    }
    i += n + (nl != NULL);
  }
  if (!rc && gone) {
    if (*metrics) fclose(*metrics); /* the old file's handle: appends must go to the new one */
    *metrics = NULL;
    rc = foil_write_file_atomic(path, out, n_out, err);
    if (!rc && !(*metrics = fopen(path, "a")))
      rc = foil_err_set(err, FOIL_EPERM, "cannot reopen %s for appending", path);
  }
  if (!rc && dropped) *dropped = gone;
  free(text);
  free(out);
  return rc;
}

int jobdir_resume_pick(comm *c, const char *ckpt_dir, char out[PATH_MAX], char **skipped, foil_err *err) {
  out[0] = 0;
  *skipped = NULL;
  int rc = FOIL_OK;
  if (comm_rank(c) == 0) {
    char *path = NULL;
    foil_err e2 = {0};
    rc = ckpt_latest(ckpt_dir, &path, skipped, &e2);
    if (rc == FOIL_OK) {
      size_t len = strlen(path);
      if (len < PATH_MAX) {
        memcpy(out, path, len + 1);
      } else { /* cannot be opened by that name: passed over like an unusable file */
        size_t had = *skipped ? strlen(*skipped) : 0;
        char *g = realloc(*skipped, had + 240);
        if (g) snprintf(g + had, 240, "%.200s...: path too long to resume from\n", path), *skipped = g;
      }
    } else if (rc == FOIL_ENOTFOUND) { /* no directory, or no usable checkpoint in it: a fresh start */
      rc = FOIL_OK;
    } else { /* unreadable, an I/O error, out of memory: starting over would throw the run away */
      rc = foil_err_set(err, rc, "cannot choose the checkpoint to resume from: %s", e2.msg);
    }
    free(path);
  }
  /* every rank learns whether rank 0 could choose, then what it chose */
  if ((rc = comm_all_ok(c, rc, "choosing the checkpoint to resume from", err))) return rc;
  return comm_bcast(c, out, PATH_MAX, 0, err);
}
