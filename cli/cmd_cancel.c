/* cmd_cancel.c — `foil cancel ID [--signal SIG]`: stop a job (SIGTERM to
 * its process group, SIGKILL after the grace period), or only deliver a
 * signal and leave it running. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ctl.h"
#include "cli/jobstate.h"
#include "cli/signame.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: foil cancel ID... [--signal SIG] [options]\n"
          "\n"
          "Cancels each job ID: a pending job ends at once; a running one gets SIGTERM,\n"
          "then SIGKILL after the grace period. Prints each job's state. With several\n"
          "IDs, every one is asked even when one fails, and the exit status is the\n"
          "highest of theirs.\n"
          "  --signal SIG  only send SIG (USR1, TERM, 10, ...) to the jobs' processes and\n"
          "                leave them running\n" CTL_OPTIONS_HELP);
}

enum { MAX_IDS = 4096 };

/* Cancels (or signals) one job; prints its state. */
static int cancel_one(client *c, uint64_t id, int sig, foil_err *err) {
  Foil__V1__Request req = FOIL__V1__REQUEST__INIT;
  Foil__V1__CancelRequest cr = FOIL__V1__CANCEL_REQUEST__INIT;
  cr.job_id = id;
  cr.signal = sig;
  req.body_case = FOIL__V1__REQUEST__BODY_CANCEL;
  req.cancel = &cr;
  Foil__V1__Reply *r;
  /* cancelling twice is the same as once; a signal is sent once */
  int rc = ctl_call(c, &req, FOIL__V1__REPLY__BODY_CANCEL, sig ? 1 : 3, &r, err);
  if (rc) return rc;
  const char *sn = signame_name(sig);
  if (sig && sn) printf("job %llu %s (sent SIG%s)\n", (unsigned long long)id,
                        jobstate_name(r->cancel->state), sn);
  else if (sig) printf("job %llu %s (sent signal %d)\n", (unsigned long long)id,
                       jobstate_name(r->cancel->state), sig);
  else printf("job %llu %s\n", (unsigned long long)id, jobstate_name(r->cancel->state));
  fflush(stdout);
  client_free_reply(r);
  return FOIL_OK;
}

int cmd_cancel(int argc, char **argv) {
  if (ctl_wants_help(argc, argv)) {
    usage(stdout);
    return FOIL_OK;
  }
  foil_err err = {0};
  ctl_opts co;
  if (ctl_init(&co, "cancel", &err)) return cli_fail("cancel", &err);
  static uint64_t ids[MAX_IDS];
  int nids = 0;
  int sig = 0;
  for (int i = 1; i < argc; i++) {
    int rc = ctl_option(&co, argc, argv, &i, &err);
    if (rc < 0) return cli_fail("cancel", &err);
    if (rc) continue;
    const char *sv = !strcmp(argv[i], "--signal") && i + 1 < argc ? argv[++i]
                     : !strncmp(argv[i], "--signal=", 9)          ? argv[i] + 9
                                                                  : NULL;
    if (sv) {
      if (signame_parse(sv, &sig, &err)) return cli_fail("cancel", &err);
    } else if (argv[i][0] == '-') {
      foil_err_set(&err, FOIL_EINVAL, "unexpected '%s' (see --help)", argv[i]);
      return cli_fail("cancel", &err);
    } else if (nids == MAX_IDS) {
      foil_err_set(&err, FOIL_EINVAL, "more than %d job ids", MAX_IDS);
      return cli_fail("cancel", &err);
    } else if (ctl_job_id(argv[i], &ids[nids++], &err)) {
      return cli_fail("cancel", &err);
    }
  }
  if (!nids) {
    foil_err_set(&err, FOIL_EINVAL, "which job? usage: foil cancel ID...");
    return cli_fail("cancel", &err);
  }
  client *c;
  if (ctl_connect(&c, &co, &err)) return cli_fail("cancel", &err);
  int worst = 0; /* the highest exit status of the ids' */
  for (int i = 0; i < nids; i++) {
    int dup = 0;
    for (int k = 0; k < i && !dup; k++) dup = ids[k] == ids[i];
    if (dup) continue;
    int rc = cancel_one(c, ids[i], sig, &err);
    if (!rc) continue;
    if (nids > 1) fprintf(stderr, "foil cancel: job %llu: %s\n", (unsigned long long)ids[i], err.msg);
    else cli_fail("cancel", &err);
    int code = foil_err_exit_code(rc);
    if (code > worst) worst = code;
    if (rc == FOIL_EUNAVAIL) { /* no coordinator: the others would wait as long */
      if (i + 1 < nids) fprintf(stderr, "foil cancel: the jobs after %llu were not asked\n",
                                (unsigned long long)ids[i]);
      break;
    }
  }
  client_destroy(&c);
  return worst; /* > 0: the exit status itself (cli.h) */
}
