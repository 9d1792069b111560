/* jobstate.c — see jobstate.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli/jobstate.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "foil/v1/control.pb-c.h"

static const struct {
  int state;
  const char *name, *code; /* code: squeue's short form */
  int exit_code;           /* -1: not final */
} table[] = {
    {FOIL__V1__JOB_STATE__JOB_PENDING, "PENDING", "PD", -1},
    {FOIL__V1__JOB_STATE__JOB_RUNNING, "RUNNING", "R", -1},
    {FOIL__V1__JOB_STATE__JOB_COMPLETING, "COMPLETING", "CG", -1},
    {FOIL__V1__JOB_STATE__JOB_COMPLETED, "COMPLETED", "CD", JOBSTATE_EXIT_COMPLETED},
    {FOIL__V1__JOB_STATE__JOB_FAILED, "FAILED", "F", JOBSTATE_EXIT_FAILED},
    {FOIL__V1__JOB_STATE__JOB_CANCELLED, "CANCELLED", "CA", JOBSTATE_EXIT_CANCELLED},
    {FOIL__V1__JOB_STATE__JOB_TIMEOUT, "TIMEOUT", "TO", JOBSTATE_EXIT_TIMEOUT},
    {FOIL__V1__JOB_STATE__JOB_NODE_FAIL, "NODE_FAIL", "NF", JOBSTATE_EXIT_NODE_FAIL},
    {FOIL__V1__JOB_STATE__JOB_REQUEUED, "REQUEUED", "RQ", -1},
};
enum { NSTATES = sizeof table / sizeof table[0] };

const char *jobstate_name(int state) {
  for (int i = 0; i < NSTATES; i++)
    if (table[i].state == state) return table[i].name;
  return "UNKNOWN";
}

int jobstate_parse(const char *name) {
  for (int i = 0; i < NSTATES; i++)
    if (!strcasecmp(name, table[i].code)) return table[i].state;
  if (!strncasecmp(name, "JOB_", 4)) name += 4;
  for (int i = 0; i < NSTATES; i++)
    if (!strcasecmp(name, table[i].name)) return table[i].state;
  return 0;
}

int jobstate_parse_list(const char *flag, const char *list, int *states, int *n, int max,
                        foil_err *err) {
  char buf[512];
  if (strlen(list) >= sizeof buf)
    return foil_err_set(err, FOIL_EINVAL, "%s: the list of states is too long", flag);
  snprintf(buf, sizeof buf, "%s", list);
  int any = 0;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int st = jobstate_parse(t);
    if (!st)
      return foil_err_set(err, FOIL_EINVAL,
                          "%s: '%.60s' is not a job state (PENDING RUNNING COMPLETING REQUEUED "
                          "COMPLETED FAILED CANCELLED TIMEOUT NODE_FAIL, or PD R CG RQ CD F CA TO NF)",
                          flag, t);
    any = 1;
    int seen = 0;
    for (int i = 0; i < *n && !seen; i++) seen = states[i] == st;
    if (!seen && *n < max) states[(*n)++] = st;
  }
  if (!any) return foil_err_set(err, FOIL_EINVAL, "%s needs a state name, got '%.60s'", flag, list);
  return FOIL_OK;
}

int jobstate_is_final(int state) {
  for (int i = 0; i < NSTATES; i++)
    if (table[i].state == state) return table[i].exit_code >= 0;
  return 1;
}

int jobstate_exit_code(int state) {
  for (int i = 0; i < NSTATES; i++)
    if (table[i].state == state) return table[i].exit_code;
  return JOBSTATE_EXIT_UNKNOWN;
}

double jobstate_elapsed(int state, double start, double end, double now) {
  if (!(start > 0) || state == FOIL__V1__JOB_STATE__JOB_PENDING ||
      state == FOIL__V1__JOB_STATE__JOB_REQUEUED)
    return -1;
  if (jobstate_is_final(state)) return end > 0 ? end - start : -1;
  return now - start;
}
