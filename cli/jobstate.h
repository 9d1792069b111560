/* jobstate.h — job states as the CLI shows them, and the exit status that
 * `foil watch` and `foil submit --wait` return for a job's final state.
 *
 *   state        final  exit status
 *   COMPLETED    yes    0   (JOBSTATE_EXIT_COMPLETED)
 *   FAILED       yes    20  (JOBSTATE_EXIT_FAILED)
 *   CANCELLED    yes    21  (JOBSTATE_EXIT_CANCELLED)
 *   TIMEOUT      yes    22  (JOBSTATE_EXIT_TIMEOUT)
 *   NODE_FAIL    yes    23  (JOBSTATE_EXIT_NODE_FAIL)
 *   PENDING, RUNNING, COMPLETING, REQUEUED: not final
 *
 * The numbers sit above the error exit statuses (0..12, common/err.h) so a
 * script can tell "the job failed" from "foil could not ask". No allocation;
 * names are static strings.
 */
#ifndef FOIL_CLI_JOBSTATE_H
#define FOIL_CLI_JOBSTATE_H

enum {
  JOBSTATE_EXIT_COMPLETED = 0,
  JOBSTATE_EXIT_FAILED = 20,
  JOBSTATE_EXIT_CANCELLED = 21,
  JOBSTATE_EXIT_TIMEOUT = 22,
  JOBSTATE_EXIT_NODE_FAIL = 23,
};

/* "PENDING", "RUNNING", ... (the enum name without "JOB_"); "UNKNOWN" for
 * a value outside foil.v1.JobState. */
const char *jobstate_name(int state);
/* Parses a state name, case-insensitive, with or without the "JOB_"
 * prefix ("running", "JOB_RUNNING"). Returns the foil.v1.JobState value,
 * or 0 if the name is not a state. */
int jobstate_parse(const char *name);
/* 1 for COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL. */
int jobstate_is_final(int state);
/* The exit status for a final state (table above); -1 if not final. */
int jobstate_exit_code(int state);

#endif
