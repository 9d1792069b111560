/* cmd_daemon.c — `foil coordinator ARGS...` and `foil worker ARGS...`: run
 * foil-coordinator / foil-worker from the directory of this foil
 * executable, with the same arguments (the process is replaced); `foil data`
 * and `foil tokenizer` run foil-data the same way. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

int cli_exec_beside(const char *cmd, const char *program, int argc, char **argv, int keep_cmd) {
  foil_err err = {0};
  char self[PATH_MAX], path[PATH_MAX + 64];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    foil_err_set(&err, FOIL_EINTERNAL, "cannot find the foil executable (/proc/self/exe: %s)",
                 strerror(errno));
    return cli_fail(cmd, &err);
  }
  self[n] = 0;
  char *slash = strrchr(self, '/');
  if (slash) *slash = 0;
  snprintf(path, sizeof path, "%s/%s", slash ? self : ".", program);
  char **args = calloc((size_t)argc + 2, sizeof *args);
  if (!args) {
    foil_err_set(&err, FOIL_ENOMEM, "out of memory");
    return cli_fail(cmd, &err);
  }
  args[0] = (char *)program;
  for (int i = keep_cmd ? 0 : 1; i < argc; i++) args[i + (keep_cmd != 0)] = argv[i];
  fflush(NULL);
  execv(path, args);
  int e = errno;
  free(args);
  foil_err_set(&err, e == ENOENT ? FOIL_ENOTFOUND : FOIL_EPERM,
               "cannot run %s: %s (it is built beside foil)", path, strerror(e));
  return cli_fail(cmd, &err);
}

int cmd_coordinator(int argc, char **argv) {
  return cli_exec_beside("coordinator", "foil-coordinator", argc, argv, 0);
}

int cmd_worker(int argc, char **argv) { return cli_exec_beside("worker", "foil-worker", argc, argv, 0); }

/* `foil data` and `foil tokenizer` live in foil-data, which links HDF5 (and
 * through it MPI): keeping them out of `foil` keeps every job command's
 * start-up at a few libraries. */
int cmd_data_exec(int argc, char **argv) { return cli_exec_beside("data", "foil-data", argc, argv, 1); }
int cmd_model_exec(int argc, char **argv) { return cli_exec_beside("model", "foil-data", argc, argv, 1); }
int cmd_textmetrics_exec(int argc, char **argv) {
  return cli_exec_beside("textmetrics", "foil-data", argc, argv, 1);
}
int cmd_tokenizer_exec(int argc, char **argv) {
  return cli_exec_beside("tokenizer", "foil-data", argc, argv, 1);
}
