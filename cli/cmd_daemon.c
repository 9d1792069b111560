/* cmd_daemon.c — `foil coordinator ARGS...` and `foil worker ARGS...`: run
 * foil-coordinator / foil-worker from the directory of this foil
 * executable, with the same arguments (the process is replaced). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

/* Replaces the process with program (from foil's directory); returns only
 * on failure. */
static int exec_beside(const char *cmd, const char *program, int argc, char **argv) {
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
  char **args = calloc((size_t)argc + 1, sizeof *args);
  if (!args) {
    foil_err_set(&err, FOIL_ENOMEM, "out of memory");
    return cli_fail(cmd, &err);
  }
  args[0] = (char *)program;
  for (int i = 1; i < argc; i++) args[i] = argv[i];
  fflush(NULL);
  execv(path, args);
  int e = errno;
  free(args);
  foil_err_set(&err, e == ENOENT ? FOIL_ENOTFOUND : FOIL_EPERM,
               "cannot run %s: %s (it is built beside foil)", path, strerror(e));
  return cli_fail(cmd, &err);
}

int cmd_coordinator(int argc, char **argv) {
  return exec_beside("coordinator", "foil-coordinator", argc, argv);
}

int cmd_worker(int argc, char **argv) { return exec_beside("worker", "foil-worker", argc, argv); }
