/* cmd_submit.c — `foil submit`: send a job to the coordinator.
 *
 *   foil submit SPEC.json [options]
 *   foil submit [options] -- PROGRAM ARGS...
 *
 * The spec → JobSpec translation is cli/jobspec.h. A submission id (given,
 * or random) makes the request safe to repeat: a request that gets no reply
 * is sent again with the same id, and the coordinator answers a repeat with
 * the job it already made. Prints the job id; --wait then follows the job
 * (cli/follow.h) on stderr and exits with the job's status (cli/jobstate.h).
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ctl.h"
#include "cli/follow.h"
#include "cli/jobspec.h"
#include "cli/jobstate.h"
#include "cli/pbjson.h"
#include "common/fileio.h"

enum { SUBMIT_TRIES = 4 };

static void usage(FILE *out) {
  fprintf(out,
          "usage: foil submit SPEC.json [options]\n"
          "       foil submit [options] -- PROGRAM ARGS...\n"
          "\n"
          "Submits a job and prints its id. SPEC.json gives \"kind\" (pretrain, refresh,\n"
          "decode-eval, serve, command; without it, pretrain when its top-level keys are\n"
          "pretrain's, else refused naming the likely kind), \"name\" and the scheduler's\n"
          "object \"job\" (ranks, gpus_per_rank, nodes, priority, time_limit_s,\n"
          "max_failures, after_ok, after_any, warn_signal, warn_before_s); the whole file\n"
          "goes to the job, whose own keys foil-run checks when it starts. After `--`, a\n"
          "job of kind \"command\" runs PROGRAM with ARGS. Options override the file:\n"
          "  --ranks N             MPI ranks in all (default 1)\n"
          "  --gpus-per-rank G     GPUs per rank (default 0: CPU ranks)\n"
          "  --nodes N             exactly N workers (default: as few as fit)\n"
          "  --priority P          higher runs first (default 0)\n"
          "  --time-limit T        stop the job after T (default: no limit): SECONDS, or as\n"
          "                        sbatch --time MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS\n"
          "                        (a bare number is seconds here, not sbatch's minutes)\n"
          "  --signal SIG@SECONDS  send SIG that long before the time limit (default 60 s;\n"
          "                        needs a time limit)\n"
          "  --max-failures N      node failures requeued before NODE_FAIL (-1: no limit)\n"
          "  --after ID[,ID..]     start once these jobs COMPLETED (cancelled otherwise)\n"
          "  --after-any ID[,ID..] start once these jobs ended, however\n"
          "  --name NAME           job name ([A-Za-z0-9._-], at most 128)\n"
          "  --chdir DIR           run the job in DIR (default: this directory, as sbatch;\n"
          "                        relative paths in the spec are taken from it)\n"
          "  --submission-id ID    make a repeated submit return the same job (default:\n"
          "                        random, reused for retries of this command)\n"
          "  --wait                follow the job (as `foil watch`, on stderr) and exit with\n"
          "                        its status: 0 COMPLETED, 20 FAILED, 21 CANCELLED,\n"
          "                        22 TIMEOUT, 23 NODE_FAIL\n"
          "  --json                print the reply as JSON instead of the id\n" CTL_OPTIONS_HELP);
}

static int fail(foil_err *e) { return cli_fail("submit", e); }

/* Appends a comma and s to the list in buf (a repeated --after). */
static int join_ids(char *buf, size_t n, const char *s) {
  size_t l = strlen(buf);
  int w = snprintf(buf + l, n - l, "%s%s", l ? "," : "", s);
  return w < 0 || (size_t)w >= n - l ? FOIL_EINVAL : FOIL_OK;
}

int cmd_submit(int argc, char **argv) {
  if (ctl_wants_help(argc, argv)) {
    usage(stdout);
    return FOIL_OK;
  }
  foil_err err = {0};
  ctl_opts co;
  if (ctl_init(&co, "submit", &err)) return fail(&err);
  jobspec_opts o = {0};
  const char *spec_path = NULL, *submission_id = NULL, *chdir_to = NULL;
  static char after[8192], after_any[8192];
  after[0] = after_any[0] = 0;
  int wait = 0, json = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int rc = ctl_option(&co, argc, argv, &i, &err);
    if (rc < 0) return fail(&err);
    if (rc) continue;
    if (!strcmp(a, "--")) {
      o.argc = argc - i - 1;
      o.argv = argv + i + 1;
      if (o.argc < 1) {
        foil_err_set(&err, FOIL_EINVAL, "`--` must be followed by a program to run");
        return fail(&err);
      }
      break;
    }
    if (!strcmp(a, "--wait")) {
      wait = 1;
      continue;
    }
    if (!strcmp(a, "--json")) {
      json = 1;
      continue;
    }
    static const char *const valued[] = {"--ranks", "--gpus-per-rank", "--nodes", "--priority",
                                         "--time-limit", "--signal", "--max-failures", "--after",
                                         "--after-any", "--name", "--submission-id", "--chdir", NULL};
    int k = 0;
    const char *val = NULL;
    for (; valued[k]; k++) {
      size_t l = strlen(valued[k]);
      if (!strcmp(a, valued[k])) {
        if (i + 1 >= argc) {
          foil_err_set(&err, FOIL_EINVAL, "%s needs a value (see --help)", a);
          return fail(&err);
        }
        val = argv[++i];
        break;
      }
      if (!strncmp(a, valued[k], l) && a[l] == '=') {
        val = a + l + 1;
        break;
      }
    }
    if (!valued[k]) {
      if (a[0] == '-' && a[1]) {
        foil_err_set(&err, FOIL_EINVAL, "unknown option '%s' (see --help)", a);
        return fail(&err);
      }
      if (spec_path) {
        foil_err_set(&err, FOIL_EINVAL,
                     "one spec file only ('%s' and '%s'); a program goes after `--`", spec_path, a);
        return fail(&err);
      }
      spec_path = a;
      continue;
    }
    switch (k) {
      case 0: o.ranks = val; break;
      case 1: o.gpus_per_rank = val; break;
      case 2: o.nodes = val; break;
      case 3: o.priority = val; break;
      case 4: o.time_limit = val; break;
      case 5: o.signal = val; break;
      case 6: o.max_failures = val; break;
      case 7:
      case 8:
        /* `--after "$jid"` where the submit that set jid failed: never a
         * job without its dependency */
        if (!val[0]) {
          foil_err_set(&err, FOIL_EINVAL,
                       "%s needs job ids, got an empty value (did the command that gave the id "
                       "fail?)",
                       valued[k]);
          return fail(&err);
        }
        if (join_ids(k == 7 ? after : after_any, sizeof after, val)) {
          foil_err_set(&err, FOIL_EINVAL, "%s: too many job ids", valued[k]);
          return fail(&err);
        }
        break;
      case 9: o.name = val; break;
      case 10: submission_id = val; break;
      default: chdir_to = val; break;
    }
  }
  /* the job runs where it was submitted from, or in --chdir (absolute) */
  char cwd[4096];
  if (!realpath(chdir_to ? chdir_to : ".", cwd)) {
    foil_err_set(&err, FOIL_EINVAL, "--chdir %s: %s", chdir_to ? chdir_to : ".", strerror(errno));
    return fail(&err);
  }
  o.workdir = cwd;
  if (after[0]) o.after = after;
  if (after_any[0]) o.after_any = after_any;
  char sid[64];
  int own_id = submission_id != NULL;
  if (submission_id) {
    size_t l = strlen(submission_id);
    if (!l || l > 128) {
      foil_err_set(&err, FOIL_EINVAL, "--submission-id must be 1..128 bytes");
      return fail(&err);
    }
  } else {
    if (jobspec_submission_id(sid, sizeof sid, &err)) return fail(&err);
    submission_id = sid;
  }

  char *text = NULL;
  size_t len = 0;
  if (spec_path && foil_read_file(spec_path, &text, &len, &err)) return fail(&err);
  if (text && strlen(text) != len) {
    free(text);
    foil_err_set(&err, FOIL_EINVAL, "%s: has a NUL byte; a spec is a JSON text file", spec_path);
    return fail(&err);
  }
  Foil__V1__JobSpec *spec;
  int rc = jobspec_build(&spec, text, spec_path, &o, &err);
  free(text);
  if (rc) return fail(&err);

  client *c = NULL;
  rc = ctl_connect(&c, &co, &err);
  Foil__V1__Reply *r = NULL;
  if (!rc) {
    Foil__V1__Request req = FOIL__V1__REQUEST__INIT;
    Foil__V1__SubmitRequest s = FOIL__V1__SUBMIT_REQUEST__INIT;
    s.spec = spec;
    s.submission_id = (char *)submission_id;
    req.body_case = FOIL__V1__REQUEST__BODY_SUBMIT;
    req.submit = &s;
    rc = ctl_call(c, &req, FOIL__V1__REPLY__BODY_SUBMIT, SUBMIT_TRIES, &r, &err);
  }
  jobspec_free(spec);
  if (rc == FOIL_EUNAVAIL) {
    /* the coordinator may have committed the job and lost only the reply:
     * the same submission id makes a retry return that job, not a second */
    char m[sizeof err.msg];
    snprintf(m, sizeof m, "%s", err.msg);
    foil_err_set(&err, rc,
                 "%.500s; the job may have been created: retry with --submission-id %.128s "
                 "(a repeat returns that job, never a second one)",
                 m, submission_id);
  }
  if (rc) {
    client_destroy(&c);
    return fail(&err);
  }
  uint64_t id = r->submit->job_id;
  if (json) rc = pbjson_print(&r->submit->base);
  else printf("%llu\n", (unsigned long long)id);
  fflush(stdout);
  /* with a random id, "existing" only means our own retry got through */
  if (r->submit->existing && own_id)
    fprintf(stderr, "foil submit: submission id %s was already submitted: job %llu\n",
            submission_id, (unsigned long long)id);
  client_free_reply(r);
  if (!rc && wait) {
    int state = 0;
    rc = follow_job(c, id, stderr, 0.5, &state, &err);
    client_destroy(&c);
    if (rc) return fail(&err);
    return jobstate_exit_code(state);
  }
  client_destroy(&c);
  return rc;
}
