/* signame.c — see signame.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli/signame.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <strings.h>

static const struct {
  const char *name;
  int sig;
} names[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT},
    {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CHLD", SIGCHLD},
    {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU}, {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ}, {"URG", SIGURG},
};
enum { NNAMES = sizeof names / sizeof names[0] };

int signame_parse(const char *s, int *sig, foil_err *err) {
  if (s[0] >= '0' && s[0] <= '9') {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < 1 || v > 64)
      return foil_err_set(err, FOIL_EINVAL, "signal '%s': a number must be 1..64", s);
    *sig = (int)v;
    return FOIL_OK;
  }
  const char *n = strncasecmp(s, "SIG", 3) ? s : s + 3;
  for (int i = 0; i < NNAMES; i++)
    if (!strcasecmp(n, names[i].name)) {
      *sig = names[i].sig;
      return FOIL_OK;
    }
  return foil_err_set(err, FOIL_EINVAL,
                      "signal '%s' is not a signal name (USR1, TERM, INT, ...) or number", s);
}

const char *signame_name(int sig) {
  for (int i = 0; i < NNAMES; i++)
    if (names[i].sig == sig) return names[i].name;
  return NULL;
}
