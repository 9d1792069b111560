/* jobdir.c — a job's directory, log, metrics and progress (see jobdir.h). */
#include "worker/run/jobdir.h"

#include "common/fileio.h"

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
