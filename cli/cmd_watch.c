/* cmd_watch.c — `foil watch ID`: follow a job until it is final
 * (cli/follow.h) and exit with its status (cli/jobstate.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ctl.h"
#include "cli/follow.h"
#include "cli/jobstate.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: foil watch ID [options]\n"
          "\n"
          "Follows job ID until it is final. On a terminal: one line redrawn in place with a\n"
          "progress bar, value/total, loss, throughput, ETA and state; otherwise one line\n"
          "per change. Exit status: 0 COMPLETED, 20 FAILED, 21 CANCELLED, 22 TIMEOUT,\n"
          "23 NODE_FAIL; 10 if the coordinator stops answering; 11 for a final state this\n"
          "foil does not know (a newer coordinator's).\n" CTL_OPTIONS_HELP);
}

int cmd_watch(int argc, char **argv) {
  if (ctl_wants_help(argc, argv)) {
    usage(stdout);
    return FOIL_OK;
  }
  foil_err err = {0};
  ctl_opts co;
  if (ctl_init(&co, "watch", &err)) return cli_fail("watch", &err);
  uint64_t id = 0;
  for (int i = 1; i < argc; i++) {
    int rc = ctl_option(&co, argc, argv, &i, &err);
    if (rc < 0) return cli_fail("watch", &err);
    if (rc) continue;
    if (id || argv[i][0] == '-') {
      foil_err_set(&err, FOIL_EINVAL, "unexpected '%s' (see --help)", argv[i]);
      return cli_fail("watch", &err);
    }
    if (ctl_job_id(argv[i], &id, &err)) return cli_fail("watch", &err);
  }
  if (!id) {
    foil_err_set(&err, FOIL_EINVAL, "which job? usage: foil watch ID");
    return cli_fail("watch", &err);
  }
  client *c;
  if (ctl_connect(&c, &co, &err)) return cli_fail("watch", &err);
  int state = 0;
  int rc = follow_job(c, id, stdout, 0.5, &state, &err);
  client_destroy(&c);
  if (rc) return cli_fail("watch", &err);
  return jobstate_exit_code(state);
}
