/* jobstate.c — see jobstate.h. */
#include "cli/jobstate.h"

#include <strings.h>

#include "foil/v1/control.pb-c.h"

static const struct {
  int state;
  const char *name;
  int exit_code; /* -1: not final */
} table[] = {
    {FOIL__V1__JOB_STATE__JOB_PENDING, "PENDING", -1},
    {FOIL__V1__JOB_STATE__JOB_RUNNING, "RUNNING", -1},
    {FOIL__V1__JOB_STATE__JOB_COMPLETING, "COMPLETING", -1},
    {FOIL__V1__JOB_STATE__JOB_COMPLETED, "COMPLETED", JOBSTATE_EXIT_COMPLETED},
    {FOIL__V1__JOB_STATE__JOB_FAILED, "FAILED", JOBSTATE_EXIT_FAILED},
    {FOIL__V1__JOB_STATE__JOB_CANCELLED, "CANCELLED", JOBSTATE_EXIT_CANCELLED},
    {FOIL__V1__JOB_STATE__JOB_TIMEOUT, "TIMEOUT", JOBSTATE_EXIT_TIMEOUT},
    {FOIL__V1__JOB_STATE__JOB_NODE_FAIL, "NODE_FAIL", JOBSTATE_EXIT_NODE_FAIL},
    {FOIL__V1__JOB_STATE__JOB_REQUEUED, "REQUEUED", -1},
};
enum { NSTATES = sizeof table / sizeof table[0] };

const char *jobstate_name(int state) {
  for (int i = 0; i < NSTATES; i++)
    if (table[i].state == state) return table[i].name;
  return "UNKNOWN";
}

int jobstate_parse(const char *name) {
  if (!strncasecmp(name, "JOB_", 4)) name += 4;
  for (int i = 0; i < NSTATES; i++)
    if (!strcasecmp(name, table[i].name)) return table[i].state;
  return 0;
}

int jobstate_is_final(int state) { return jobstate_exit_code(state) >= 0; }

int jobstate_exit_code(int state) {
  for (int i = 0; i < NSTATES; i++)
    if (table[i].state == state) return table[i].exit_code;
  return -1;
}
