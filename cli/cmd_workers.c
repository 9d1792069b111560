/* cmd_workers.c — `foil workers` (the nodes, as sinfo) and `foil drain
 * WORKER [--undo]`. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/ctl.h"
#include "cli/pbjson.h"
#include "cli/timefmt.h"
#include "common/log.h"

static const char *worker_state(int s) {
  switch (s) {
    case FOIL__V1__WORKER_STATE__WORKER_IDLE: return "IDLE";
    case FOIL__V1__WORKER_STATE__WORKER_MIXED: return "MIXED";
    case FOIL__V1__WORKER_STATE__WORKER_ALLOCATED: return "ALLOCATED";
    case FOIL__V1__WORKER_STATE__WORKER_DRAINING: return "DRAINING";
    case FOIL__V1__WORKER_STATE__WORKER_DRAINED: return "DRAINED";
    case FOIL__V1__WORKER_STATE__WORKER_DOWN: return "DOWN";
    default: return "UNKNOWN";
  }
}

static void workers_usage(FILE *out) {
  fprintf(out,
          "usage: foil workers [--json] [options]\n"
          "\n"
          "Lists the workers: NAME HOST STATE SLOTS (used/total) GPUS (used/total)\n"
          "LAST-HEARTBEAT JOBS. States: IDLE, MIXED (some slots in use), ALLOCATED (all),\n"
          "DRAINING, DRAINED, DOWN (missed its heartbeats). LAST-HEARTBEAT is by the\n"
          "coordinator's clock, not this host's.\n"
          "  --json  the list as JSON (foil.v1.WorkerList field names; now: the\n"
          "          coordinator's clock, 0 from one that does not send it)\n" CTL_OPTIONS_HELP);
}

static void drain_usage(FILE *out) {
  fprintf(out,
          "usage: foil drain WORKER [--undo] [--json] [options]\n"
          "\n"
          "Stops giving jobs to WORKER; the jobs it runs finish (DRAINING, then DRAINED).\n"
          "  --undo  take jobs again\n"
          "  --json  the worker as JSON (foil.v1.WorkerInfo field names)\n" CTL_OPTIONS_HELP);
}

static void print_worker_row(const Foil__V1__WorkerInfo *w, double now) {
  char slots[32], gpus[32], hb[32], jobs[256] = "";
  snprintf(slots, sizeof slots, "%u/%u", w->slots_used, w->slots);
  snprintf(gpus, sizeof gpus, "%u/%u", w->gpus_used, w->gpus);
  size_t at = 0;
  for (size_t k = 0; k < w->n_jobs && at < sizeof jobs; k++) {
    int x = snprintf(jobs + at, sizeof jobs - at, "%s%llu", k ? "," : "",
                     (unsigned long long)w->jobs[k]);
    at += x > 0 ? (size_t)x : 0;
  }
  printf("%-16.16s %-20.20s %-10s %-7s %-7s %-14s %s\n", w->name, w->host[0] ? w->host : "-",
         worker_state(w->state), slots, gpus, timefmt_ago(now, w->last_heartbeat, hb, sizeof hb),
         jobs[0] ? jobs : "-");
}

/* The time LAST-HEARTBEAT is measured against: the coordinator's clock
 * when it built the list (WorkerList.now), the clock the heartbeat times
 * come from, so a client whose clock is off shows the same ages. A
 * coordinator older than the field sends 0: then the local clock, and any
 * skew between the two shows. */
static double coord_now(const Foil__V1__WorkerList *l) {
  return l->now > 0 && isfinite(l->now) ? l->now : log_now();
}

static void print_header(void) {
  printf("%-16s %-20s %-10s %-7s %-7s %-14s %s\n", "NAME", "HOST", "STATE", "SLOTS", "GPUS",
         "LAST-HEARTBEAT", "JOBS");
}

int cmd_workers(int argc, char **argv) {
  if (ctl_wants_help(argc, argv)) {
    workers_usage(stdout);
    return FOIL_OK;
  }
  foil_err err = {0};
  ctl_opts co;
  if (ctl_init(&co, "workers", &err)) return cli_fail("workers", &err);
  int json = 0;
  for (int i = 1; i < argc; i++) {
    int rc = ctl_option(&co, argc, argv, &i, &err);
    if (rc < 0) return cli_fail("workers", &err);
    if (rc) continue;
    if (!strcmp(argv[i], "--json")) json = 1;
    else {
      foil_err_set(&err, FOIL_EINVAL, "unexpected '%s' (see --help)", argv[i]);
      return cli_fail("workers", &err);
    }
  }
  client *c;
  if (ctl_connect(&c, &co, &err)) return cli_fail("workers", &err);
  Foil__V1__Request req = FOIL__V1__REQUEST__INIT;
  Foil__V1__WorkersRequest wq = FOIL__V1__WORKERS_REQUEST__INIT;
  req.body_case = FOIL__V1__REQUEST__BODY_WORKERS;
  req.workers = &wq;
  Foil__V1__Reply *r;
  int rc = ctl_call(c, &req, FOIL__V1__REPLY__BODY_WORKERS, 1, &r, &err);
  client_destroy(&c);
  if (rc) return cli_fail("workers", &err);
  if (json) {
    rc = pbjson_print(&r->workers->base);
  } else {
    double now = coord_now(r->workers);
    print_header();
    for (size_t i = 0; i < r->workers->n_workers; i++) print_worker_row(r->workers->workers[i], now);
  }
  client_free_reply(r);
  if (rc) return cli_fail("workers", &(foil_err){rc, "out of memory"});
  return FOIL_OK;
}

int cmd_drain(int argc, char **argv) {
  if (ctl_wants_help(argc, argv)) {
    drain_usage(stdout);
    return FOIL_OK;
  }
  foil_err err = {0};
  ctl_opts co;
  if (ctl_init(&co, "drain", &err)) return cli_fail("drain", &err);
  int json = 0, undo = 0;
  const char *name = NULL;
  for (int i = 1; i < argc; i++) {
    int rc = ctl_option(&co, argc, argv, &i, &err);
    if (rc < 0) return cli_fail("drain", &err);
    if (rc) continue;
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--undo")) undo = 1;
    else if (name || argv[i][0] == '-') {
      foil_err_set(&err, FOIL_EINVAL, "unexpected '%s' (see --help)", argv[i]);
      return cli_fail("drain", &err);
    } else {
      name = argv[i];
    }
  }
  if (!name) {
    foil_err_set(&err, FOIL_EINVAL, "which worker? usage: foil drain WORKER [--undo]");
    return cli_fail("drain", &err);
  }
  client *c;
  if (ctl_connect(&c, &co, &err)) return cli_fail("drain", &err);
  Foil__V1__Request req = FOIL__V1__REQUEST__INIT;
  Foil__V1__DrainRequest d = FOIL__V1__DRAIN_REQUEST__INIT;
  d.worker = (char *)name;
  d.undo = undo;
  req.body_case = FOIL__V1__REQUEST__BODY_DRAIN;
  req.drain = &d;
  Foil__V1__Reply *r;
  int rc = ctl_call(c, &req, FOIL__V1__REPLY__BODY_DRAIN, 3, &r, &err);
  client_destroy(&c);
  if (rc) return cli_fail("drain", &err);
  if (json) {
    rc = pbjson_print(&r->drain->base);
  } else {
    print_header();
    print_worker_row(r->drain, log_now());
  }
  client_free_reply(r);
  if (rc) return cli_fail("drain", &(foil_err){rc, "out of memory"});
  return FOIL_OK;
}
