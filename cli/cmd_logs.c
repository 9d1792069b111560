/* cmd_logs.c — `foil logs ID [--follow]`: a job's log from the start, as
 * the coordinator serves it in pieces (LogsRequest offsets). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/ctl.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: foil logs ID [--follow] [options]\n"
          "\n"
          "Writes the log of job ID (its ranks' stdout and stderr) to stdout.\n"
          "  --follow  keep writing what the job adds until it is final; exits 10\n"
          "            (UNAVAILABLE) if the coordinator stops answering\n" CTL_OPTIONS_HELP);
}

int cmd_logs(int argc, char **argv) {
  if (ctl_wants_help(argc, argv)) {
    usage(stdout);
    return FOIL_OK;
  }
  foil_err err = {0};
  ctl_opts co;
  if (ctl_init(&co, "logs", &err)) return cli_fail("logs", &err);
  uint64_t id = 0;
  int follow = 0;
  for (int i = 1; i < argc; i++) {
    int rc = ctl_option(&co, argc, argv, &i, &err);
    if (rc < 0) return cli_fail("logs", &err);
    if (rc) continue;
    if (!strcmp(argv[i], "--follow") || !strcmp(argv[i], "-f")) follow = 1;
    else if (id || argv[i][0] == '-') {
      foil_err_set(&err, FOIL_EINVAL, "unexpected '%s' (see --help)", argv[i]);
      return cli_fail("logs", &err);
    } else if (ctl_job_id(argv[i], &id, &err)) {
      return cli_fail("logs", &err);
    }
  }
  if (!id) {
    foil_err_set(&err, FOIL_EINVAL, "which job? usage: foil logs ID");
    return cli_fail("logs", &err);
  }
  client *c;
  if (ctl_connect(&c, &co, &err)) return cli_fail("logs", &err);
  uint64_t offset = 0;
  int rc = FOIL_OK;
  for (;;) {
    Foil__V1__Request req = FOIL__V1__REQUEST__INIT;
    Foil__V1__LogsRequest l = FOIL__V1__LOGS_REQUEST__INIT;
    l.job_id = id;
    l.offset = offset;
    req.body_case = FOIL__V1__REQUEST__BODY_LOGS;
    req.logs = &l;
    Foil__V1__Reply *r;
    rc = ctl_call(c, &req, FOIL__V1__REPLY__BODY_LOGS, follow ? 3 : 1, &r, &err);
    if (rc) break;
    const Foil__V1__LogsReply *lr = r->logs;
    size_t n = lr->data.len;
    if (n && fwrite(lr->data.data, 1, n, stdout) != n) {
      client_free_reply(r);
      rc = foil_err_set(&err, FOIL_EABORTED, "cannot write to stdout");
      break;
    }
    fflush(stdout);
    offset = lr->next_offset > offset ? lr->next_offset : offset + n;
    int eof = lr->eof;
    client_free_reply(r);
    if (eof || (!follow && n == 0)) break;
    if (n == 0) {
      struct timespec ts = {0, 500000000L};
      nanosleep(&ts, NULL);
    }
  }
  client_destroy(&c);
  return rc ? cli_fail("logs", &err) : FOIL_OK;
}
