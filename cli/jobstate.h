/* jobstate.h — job states as the CLI shows them, and the exit status that
 * `foil watch` and `foil submit --wait` return for a job's final state.
 *
 *   state        short  final  exit status
 *   PENDING      PD     no
 *   RUNNING      R      no
 *   COMPLETING   CG     no
 *   REQUEUED     RQ     no
 *   COMPLETED    CD     yes    0   (JOBSTATE_EXIT_COMPLETED)
 *   FAILED       F      yes    20  (JOBSTATE_EXIT_FAILED)
 *   CANCELLED    CA     yes    21  (JOBSTATE_EXIT_CANCELLED)
 *   TIMEOUT      TO     yes    22  (JOBSTATE_EXIT_TIMEOUT)
 *   NODE_FAIL    NF     yes    23  (JOBSTATE_EXIT_NODE_FAIL)
 *   any other value (a newer coordinator's state, shown as UNKNOWN): final,
 *   exit status 11 (JOBSTATE_EXIT_UNKNOWN, as INTERNAL), so a follower
 *   never polls forever for a state it cannot recognize
 *
 * The short codes are squeue's. The numbers sit above the error exit
 * statuses (0..12, common/err.h) so a script can tell "the job failed" from
 * "foil could not ask". No allocation; names are static strings.
 */
#ifndef FOIL_CLI_JOBSTATE_H
#define FOIL_CLI_JOBSTATE_H

#include "common/err.h"

enum {
  JOBSTATE_EXIT_COMPLETED = 0,
  JOBSTATE_EXIT_UNKNOWN = 11,
  JOBSTATE_EXIT_FAILED = 20,
  JOBSTATE_EXIT_CANCELLED = 21,
  JOBSTATE_EXIT_TIMEOUT = 22,
  JOBSTATE_EXIT_NODE_FAIL = 23,
};

/* "PENDING", "RUNNING", ... (the enum name without "JOB_"); "UNKNOWN" for
 * a value outside foil.v1.JobState. */
const char *jobstate_name(int state);
/* Parses a state name, case-insensitive, with or without the "JOB_"
 * prefix ("running", "JOB_RUNNING"), or its short code ("R", "pd").
 * Returns the foil.v1.JobState value, or 0 if the name is not a state. */
int jobstate_parse(const char *name);
/* Parses a comma-separated list of states (as `foil jobs --state`) and
 * appends each one not already there to states[0..*n), at most max in all:
 * a repeated --state adds to the earlier ones. FOIL_EINVAL naming flag and
 * the word that is not a state, or for an empty list. */
int jobstate_parse_list(const char *flag, const char *list, int *states, int *n, int max,
                        foil_err *err);
/* 0 for PENDING, RUNNING, COMPLETING, REQUEUED; 1 for every other value
 * (the five final states, and states this CLI does not know). */
int jobstate_is_final(int state);
/* The exit status for a final state (table above); -1 if not final. */
int jobstate_exit_code(int state);
/* Seconds the job's current attempt has run, as `foil jobs` shows ELAPSED:
 * -1 (printed "-") for a job waiting to run (PENDING, REQUEUED: start is
 * then the failed attempt's) or one never started; end - start for a final
 * job; now - start otherwise. */
double jobstate_elapsed(int state, double start, double end, double now);

#endif
