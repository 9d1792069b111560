/* cmd_jobs.c — `foil jobs` (the queue, as squeue) and `foil status ID` (one
 * job with its attempts, as scontrol show job). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ctl.h"
#include "cli/jobstate.h"
#include "cli/pbjson.h"
#include "cli/signame.h"
#include "cli/timefmt.h"
#include "common/log.h"

enum { RECENT_S = 3600 }; /* final jobs that ended this recently are shown */

static void jobs_usage(FILE *out) {
  fprintf(out,
          "usage: foil jobs [--all] [--state STATE[,STATE..]] [--start] [--json] [options]\n"
          "\n"
          "Lists jobs, oldest first: ID NAME KIND STATE REASON RANKS ELAPSED WORKERS\n"
          "(REASON: why a job waits or how it ended; `foil status ID` has the details;\n"
          "ELAPSED: of the current attempt, \"-\" while PENDING or REQUEUED).\n"
          "By default every job not yet final and those that ended in the last hour.\n"
          "ELAPSED and the last hour are by the coordinator's clock, not this host's.\n"
          "  --all         every job the coordinator keeps (newest 10,000)\n"
          "  --state S,..  only these states (PENDING RUNNING COMPLETING REQUEUED COMPLETED\n"
          "                FAILED CANCELLED TIMEOUT NODE_FAIL, or squeue's PD R CG RQ CD F\n"
          "                CA TO NF), whenever they ended (newest 10,000); repeatable\n"
          "  --start       START instead of ELAPSED and WORKERS: when a pending job is\n"
          "                expected to start (as squeue --start), else when it started\n"
          "  --json        the list as JSON (foil.v1.JobList field names; now: the\n"
          "                coordinator's clock, 0 from one that does not send it;\n"
          "                truncated: jobs left out at the reply's size limit)\n"
          "A note on stderr says when a list was cut at its limit (10,000 jobs) or the\n"
          "coordinator's reply size limit (32 MiB: \"truncated: N more jobs\"); --state\n"
          "narrows the query. `foil status ID` shows a job's command and spec.\n" CTL_OPTIONS_HELP);
}

static void status_usage(FILE *out) {
  fprintf(out,
          "usage: foil status ID [--json] [options]\n"
          "\n"
          "Shows job ID: state and reason, times, resources, progress, its directory, and\n"
          "each attempt (N TOKEN WORKERS START END STATE EXIT RESUME_FROM).\n"
          "  --json  the job as JSON (foil.v1.Job field names)\n" CTL_OPTIONS_HELP);
}

/* Worker names per job id, from a Workers reply (NULL if none came). */
static void workers_of(const Foil__V1__Reply *w, uint64_t id, char *buf, size_t n) {
  size_t at = 0;
  buf[0] = 0;
  for (size_t i = 0; w && i < w->workers->n_workers; i++) {
    const Foil__V1__WorkerInfo *wi = w->workers->workers[i];
    for (size_t k = 0; k < wi->n_jobs; k++)
      if (wi->jobs[k] == id && at < n) {
        int x = snprintf(buf + at, n - at, "%s%s", at ? "," : "", wi->name);
        at += x > 0 ? (size_t)x : 0;
        break;
      }
  }
  if (!buf[0]) snprintf(buf, n, "-");
}

static int by_id(const void *a, const void *b) {
  uint64_t x = (*(Foil__V1__Job *const *)a)->id, y = (*(Foil__V1__Job *const *)b)->id;
  return x < y ? -1 : x > y;
}

enum { MAX_STATES = 16, LIST_LIMIT = 10000, RECENT_LIMIT = 1000 };

/* The time ELAPSED and "ended in the last hour" are measured against: the
 * coordinator's clock when it built the list (JobList.now), the clock the
 * jobs' times come from, so a client whose clock is off shows the same
 * times. A coordinator older than the field sends 0: then the local clock,
 * and any skew between the two shows in both. */
static double coord_now(const Foil__V1__JobList *l) {
  return l->now > 0 && isfinite(l->now) ? l->now : log_now();
}

/* One ListJobs request: states (n of them; 0: any), newest `limit`. */
static int list_jobs(client *c, const int *states, int n, uint32_t limit, Foil__V1__Reply **r,
                     foil_err *err) {
  Foil__V1__Request req = FOIL__V1__REQUEST__INIT;
  Foil__V1__ListJobsRequest l = FOIL__V1__LIST_JOBS_REQUEST__INIT;
  Foil__V1__JobState st[MAX_STATES];
  for (int i = 0; i < n && i < MAX_STATES; i++) st[i] = (Foil__V1__JobState)states[i];
  l.states = st;
  l.n_states = (size_t)n;
  l.limit = limit;
  req.body_case = FOIL__V1__REQUEST__BODY_LIST;
  req.list = &l;
  return ctl_call(c, &req, FOIL__V1__REPLY__BODY_JOBS, 1, r, err);
}

int cmd_jobs(int argc, char **argv) {
  if (ctl_wants_help(argc, argv)) {
    jobs_usage(stdout);
    return FOIL_OK;
  }
  foil_err err = {0};
  ctl_opts co;
  if (ctl_init(&co, "jobs", &err)) return cli_fail("jobs", &err);
  int all = 0, start = 0, json = 0, states[MAX_STATES], nstates = 0;
  for (int i = 1; i < argc; i++) {
    int rc = ctl_option(&co, argc, argv, &i, &err);
    if (rc < 0) return cli_fail("jobs", &err);
    if (rc) continue;
    if (!strcmp(argv[i], "--all")) all = 1;
    else if (!strcmp(argv[i], "--start")) start = 1;
    else if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--state") && i + 1 < argc) {
      if (jobstate_parse_list("--state", argv[++i], states, &nstates, MAX_STATES, &err))
        return cli_fail("jobs", &err);
    } else if (!strncmp(argv[i], "--state=", 8)) {
      if (jobstate_parse_list("--state", argv[i] + 8, states, &nstates, MAX_STATES, &err))
        return cli_fail("jobs", &err);
    } else {
      foil_err_set(&err, FOIL_EINVAL, "unexpected '%s' (see --help)", argv[i]);
      return cli_fail("jobs", &err);
    }
  }
  client *c;
  if (ctl_connect(&c, &co, &err)) return cli_fail("jobs", &err);
  /* The default view asks twice: every job not final (however old: a job
   * pending behind thousands of newer ones is still in the queue), then
   * the newest jobs of any state, for those that ended in the last hour. */
  static const int waiting[] = {FOIL__V1__JOB_STATE__JOB_PENDING, FOIL__V1__JOB_STATE__JOB_RUNNING,
                                FOIL__V1__JOB_STATE__JOB_COMPLETING,
                                FOIL__V1__JOB_STATE__JOB_REQUEUED};
  int dflt = !all && !nstates;
  Foil__V1__Reply *r = NULL, *r2 = NULL, *w = NULL;
  int rc = dflt ? list_jobs(c, waiting, 4, LIST_LIMIT, &r, &err)
                : list_jobs(c, states, nstates, LIST_LIMIT, &r, &err);
  if (!rc && dflt) rc = list_jobs(c, NULL, 0, RECENT_LIMIT, &r2, &err);
  if (rc) {
    client_free_reply(r);
    client_destroy(&c);
    return cli_fail("jobs", &err);
  }
  double now = coord_now(r->jobs);
  size_t n1 = r->jobs->n_jobs, n2 = r2 ? r2->jobs->n_jobs : 0, keep = 0;
  /* the jobs shown, borrowed from the replies (freed with them) */
  Foil__V1__Job **shown = malloc((n1 + n2 + 1) * sizeof *shown);
  if (!shown) {
    client_free_reply(r);
    client_free_reply(r2);
    client_destroy(&c);
    foil_err_set(&err, FOIL_ENOMEM, "out of memory for %zu jobs", n1 + n2);
    return cli_fail("jobs", &err);
  }
  for (size_t i = 0; i < n1; i++) shown[keep++] = r->jobs->jobs[i];
  for (size_t i = 0; i < n2; i++) {
    Foil__V1__Job *j = r2->jobs->jobs[i];
    if (!jobstate_is_final(j->state) || (j->end_time > 0 && now - j->end_time < RECENT_S))
      shown[keep++] = j; /* duplicates of the first list are dropped below */
  }
  if (keep > 1) qsort(shown, keep, sizeof *shown, by_id);
  size_t u = 0;
  for (size_t i = 0; i < keep; i++)
    if (!u || shown[u - 1]->id != shown[i]->id) shown[u++] = shown[i];
  keep = u;
  /* a list cut at its limit is said so, on stderr */
  if (n1 >= LIST_LIMIT)
    fprintf(stderr, "foil jobs: note: only the newest %d %sjobs are listed; older ones are not shown\n",
            LIST_LIMIT, dflt ? "unfinished " : all ? "" : "matching ");
  /* a list the coordinator cut at its reply's byte budget (JobList.truncated;
   * newest first, so the oldest matches are the ones left out) */
  uint32_t cut1 = r->jobs->truncated, cut2 = r2 ? r2->jobs->truncated : 0;
  if (cut1)
    fprintf(stderr, "foil jobs: note: truncated: %u more %sjobs are not shown (the coordinator's reply "
            "reached its size limit); narrow the query with --state\n",
            cut1, dflt ? "unfinished " : all ? "" : "matching ");
  if (cut2)
    fprintf(stderr, "foil jobs: note: truncated: %u more jobs were not checked for having ended in the last "
            "hour (the coordinator's reply reached its size limit); narrow the query with --state\n", cut2);
  if (n2 >= RECENT_LIMIT) {
    const Foil__V1__Job *oldest = r2->jobs->jobs[n2 - 1]; /* newest first */
    if (oldest->end_time > 0 && now - oldest->end_time < RECENT_S)
      fprintf(stderr,
              "foil jobs: note: jobs before %llu that ended in the last hour are not shown "
              "(--state or --all to see them)\n",
              (unsigned long long)oldest->id);
  }
  if (json) {
    Foil__V1__JobList jl = FOIL__V1__JOB_LIST__INIT;
    jl.jobs = shown;
    jl.n_jobs = keep;
    jl.now = r->jobs->now; /* the coordinator's, as it sent it (0 from an older one) */
    jl.truncated = cut1 > cut2 ? cut1 : cut2; /* the most either list left out */
    rc = pbjson_print(&jl.base);
  } else {
    if (!start) { /* which workers run what: one more request, not required */
      Foil__V1__Request wr = FOIL__V1__REQUEST__INIT;
      Foil__V1__WorkersRequest wq = FOIL__V1__WORKERS_REQUEST__INIT;
      wr.body_case = FOIL__V1__REQUEST__BODY_WORKERS;
      wr.workers = &wq;
      foil_err e2 = {0};
      if (ctl_call(c, &wr, FOIL__V1__REPLY__BODY_WORKERS, 1, &w, &e2)) w = NULL;
    }
    printf("%-6s %-20s %-9s %-10s %-24s %5s %s\n", "ID", "NAME", "KIND", "STATE", "REASON",
           "RANKS", start ? "START" : "ELAPSED    WORKERS");
    for (size_t i = 0; i < keep; i++) {
      const Foil__V1__Job *j = shown[i];
      const Foil__V1__JobSpec *s = j->spec;
      char t[64], ws[512];
      unsigned ranks = s && s->resources && s->resources->ranks ? s->resources->ranks : 1;
      /* the reason's code ("Resources", "Dependency"), not its explanation
       * after the colon: `foil status` has the whole sentence */
      int rlen = (int)strcspn(j->reason, ":");
      printf("%-6llu %-20.20s %-9.9s %-10s %-24.*s %5u ", (unsigned long long)j->id,
             s && s->name[0] ? s->name : "-", s && s->kind[0] ? s->kind : "-",
             jobstate_name(j->state), rlen ? (rlen < 24 ? rlen : 24) : 1,
             rlen ? j->reason : "-", ranks);
      if (start) {
        int pend = j->state == FOIL__V1__JOB_STATE__JOB_PENDING ||
                   j->state == FOIL__V1__JOB_STATE__JOB_REQUEUED;
        double when = pend ? j->est_start_time : j->start_time;
        printf("%s\n", pend && when == 0 ? "N/A" : timefmt_clock(when, t, sizeof t));
      } else {
        timefmt_duration(jobstate_elapsed(j->state, j->start_time, j->end_time, now), t, sizeof t);
        workers_of(w, j->id, ws, sizeof ws);
        printf("%-10s %s\n", t, ws);
      }
    }
  }
  free(shown);
  client_free_reply(w);
  client_free_reply(r2);
  client_free_reply(r);
  client_destroy(&c);
  if (rc) {
    foil_err_set(&err, rc, "out of memory");
    return cli_fail("jobs", &err);
  }
  return FOIL_OK;
}

static void print_job(const Foil__V1__Job *j) {
  char t[64], t2[64];
  const Foil__V1__JobSpec *s = j->spec;
  const Foil__V1__Resources *res = s ? s->resources : NULL;
  printf("job %llu\n", (unsigned long long)j->id);
  printf("  name:          %s\n", s && s->name[0] ? s->name : "-");
  printf("  kind:          %s\n", s && s->kind[0] ? s->kind : "-");
  printf("  state:         %s\n", jobstate_name(j->state));
  printf("  reason:        %s\n", j->reason[0] ? j->reason : "-");
  if (jobstate_is_final(j->state)) { /* "-": it never ran (cancelled while pending) */
    if (j->n_attempts) printf("  exit code:     %d\n", j->exit_code);
    else printf("  exit code:     -\n");
  }
  printf("  submitted:     %s\n", timefmt_clock(j->submit_time, t, sizeof t));
  if (j->est_start_time > 0)
    printf("  expected start: %s\n", timefmt_clock(j->est_start_time, t, sizeof t));
  printf("  started:       %s\n", timefmt_clock(j->start_time, t, sizeof t));
  printf("  ended:         %s\n", timefmt_clock(j->end_time, t, sizeof t));
  printf("  resources:     %u ranks, %u GPUs per rank, %s nodes\n",
         res && res->ranks ? res->ranks : 1, res ? res->gpus_per_rank : 0,
         res && res->nodes ? (snprintf(t2, sizeof t2, "%u", res->nodes), t2) : "any");
  if (s) {
    printf("  priority:      %d\n", s->priority);
    printf("  time limit:    %s\n",
           s->time_limit_s ? timefmt_duration(s->time_limit_s, t, sizeof t) : "none");
    for (size_t i = 0; i < s->n_dependencies; i++)
      printf("  depends on:    %s %llu\n",
             s->dependencies[i]->type == FOIL__V1__DEPENDENCY_TYPE__AFTER_ANY ? "afterany"
                                                                             : "afterok",
             (unsigned long long)s->dependencies[i]->job_id);
    if (s->n_argv) {
      printf("  command:      ");
      for (size_t i = 0; i < s->n_argv; i++) {
        putchar(' ');
        cli_shell_quote(stdout, s->argv[i]);
      }
      printf("\n");
    }
  }
  printf("  restarts:      %u (node failures %u)\n", j->restart_count, j->failures);
  const Foil__V1__Progress *p = j->progress;
  if (p && (p->value > 0 || p->total > 0 || p->message[0])) {
    printf("  progress:      %g", p->value);
    if (p->total > 0) printf("/%g (%.0f%%)", p->total, 100 * p->value / p->total);
    if (p->message[0]) printf(" %s", p->message);
    printf("\n");
    if (p->metrics_json[0]) printf("  metrics:       %s\n", p->metrics_json);
  }
  printf("  job dir:       %s\n", j->job_dir[0] ? j->job_dir : "-");
  printf("  submission id: %s\n", j->submission_id[0] ? j->submission_id : "-");
  if (!j->n_attempts) return;
  printf("\n  %-3s %-20s %-20s %-19s %-19s %-10s %-8s %s\n", "N", "TOKEN", "WORKERS", "START", "END",
         "STATE", "EXIT", "RESUME_FROM");
  for (size_t i = 0; i < j->n_attempts; i++) {
    const Foil__V1__Attempt *a = j->attempts[i];
    char ws[256] = "", ex[32];
    size_t at = 0;
    for (size_t k = 0; k < a->n_workers && at < sizeof ws; k++) {
      int x = snprintf(ws + at, sizeof ws - at, "%s%s", k ? "," : "", a->workers[k]);
      at += x > 0 ? (size_t)x : 0;
    }
    if (a->signal) {
      const char *sn = signame_name(a->signal);
      if (sn) snprintf(ex, sizeof ex, "SIG%s", sn);
      else snprintf(ex, sizeof ex, "sig %d", a->signal);
    } else if (jobstate_is_final(a->state)) {
      snprintf(ex, sizeof ex, "%d", a->exit_code);
    } else {
      snprintf(ex, sizeof ex, "-");
    }
    printf("  %-3u %-20llu %-20s %-19s %-19s %-10s %-8s %s\n", a->n, (unsigned long long)a->token,
           ws[0] ? ws : "-", timefmt_clock(a->start_time, t, sizeof t),
           timefmt_clock(a->end_time, t2, sizeof t2), jobstate_name(a->state), ex,
           a->resume_from[0] ? a->resume_from : "-");
    if (a->reason[0]) printf("      %s\n", a->reason);
  }
}

int cmd_status(int argc, char **argv) {
  if (ctl_wants_help(argc, argv)) {
    status_usage(stdout);
    return FOIL_OK;
  }
  foil_err err = {0};
  ctl_opts co;
  if (ctl_init(&co, "status", &err)) return cli_fail("status", &err);
  int json = 0;
  uint64_t id = 0;
  for (int i = 1; i < argc; i++) {
    int rc = ctl_option(&co, argc, argv, &i, &err);
    if (rc < 0) return cli_fail("status", &err);
    if (rc) continue;
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (id || argv[i][0] == '-') {
      foil_err_set(&err, FOIL_EINVAL, "unexpected '%s' (see --help)", argv[i]);
      return cli_fail("status", &err);
    } else if (ctl_job_id(argv[i], &id, &err)) {
      return cli_fail("status", &err);
    }
  }
  if (!id) {
    foil_err_set(&err, FOIL_EINVAL, "which job? usage: foil status ID");
    return cli_fail("status", &err);
  }
  client *c;
  if (ctl_connect(&c, &co, &err)) return cli_fail("status", &err);
  Foil__V1__Request req = FOIL__V1__REQUEST__INIT;
  Foil__V1__GetJobRequest g = FOIL__V1__GET_JOB_REQUEST__INIT;
  g.job_id = id;
  req.body_case = FOIL__V1__REQUEST__BODY_GET;
  req.get = &g;
  Foil__V1__Reply *r;
  int rc = ctl_call(c, &req, FOIL__V1__REPLY__BODY_JOB, 1, &r, &err);
  client_destroy(&c);
  if (rc) return cli_fail("status", &err);
  if (json) rc = pbjson_print(&r->job->base);
  else print_job(r->job);
  client_free_reply(r);
  if (rc) {
    foil_err_set(&err, rc, "out of memory");
    return cli_fail("status", &err);
  }
  return FOIL_OK;
}
