/* signame.h — signal names as users type them (`--signal USR1`,
 * `--signal SIGTERM`, `--signal 10`) and back. Names follow POSIX; the
 * numbers are this platform's. No allocation; names are static strings.
 */
#ifndef FOIL_CLI_SIGNAME_H
#define FOIL_CLI_SIGNAME_H

#include "common/err.h"

/* Parses a signal: a name with or without "SIG", any case (HUP INT QUIT
 * KILL USR1 USR2 TERM ALRM CONT STOP TSTP XCPU ...), or a number 1..64.
 * FOIL_EINVAL with a message naming s when it is neither. */
int signame_parse(const char *s, int *sig, foil_err *err);
/* "USR1" for SIGUSR1; NULL for a number without a name here. */
const char *signame_name(int sig);

#endif
