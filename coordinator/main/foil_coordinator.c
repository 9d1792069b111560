/* foil_coordinator.c — foil-coordinator, the cluster's one coordinator.
 *
 *   foil-coordinator [--root DIR] [--control EP] [--workers EP]
 *                    [--heartbeat-ms MS] [--liveness N] [--grace-s S] [--log FILE]
 *                    [--curve-key KEY_SECRET --allow-keys DIR] [--insecure] [--max-pending N]
 *                    [--allow-dir DIR]... [--keep-final-s SECONDS]
 *
 * Endpoints default to tcp://127.0.0.1:7420 (control API) and
 * tcp://127.0.0.1:7421 (workers); port `*` picks a free one. The endpoints
 * it listens on are written to <root>/coordinator.json, where `foil` and
 * foil-worker find them. SIGTERM/SIGINT stop it; running jobs go on.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/auth.h"
#include "common/err.h"
#include "coordinator/coord.h"

static volatile sig_atomic_t stop_flag;
static void on_signal(int s) {
  if (s == SIGHUP) auth_request_reload();
  else stop_flag = 1;
}

static int usage(FILE *f) {
  fprintf(f,
          "usage: foil-coordinator [--root DIR] [--control EP] [--workers EP] [--heartbeat-ms MS]\n"
          "                        [--liveness N] [--grace-s S] [--log FILE]\n"
          "                        [--curve-key KEY_SECRET --allow-keys DIR] [--insecure] [--max-pending N]\n"
          "                        [--allow-dir DIR]... [--keep-final-s SECONDS]\n"
          "  --root DIR        data root (default $FOIL_ROOT, else ./foil-data): coordinator.db, jobs/\n"
          "  --control EP      control API endpoint (default tcp://127.0.0.1:7420; port * = any free)\n"
          "  --workers EP      worker endpoint (default tcp://127.0.0.1:7421)\n"
          "  --heartbeat-ms MS heartbeat interval workers are told (default 1000)\n"
          "  --liveness N      missed heartbeats before a worker is DOWN (default 4)\n"
          "  --grace-s S       SIGTERM to SIGKILL on cancel and time limit (default 10)\n"
          "  --log FILE        append the log here (default stderr)\n"
          "  --curve-key FILE  this coordinator's key pair (NAME.key_secret from `foil keys gen`): CURVE on\n"
          "  --allow-keys DIR  allow-list: the *.key certificates of admins, submitters, readers, workers;\n"
          "                    SIGHUP rereads it (also $FOIL_CURVE_KEY, $FOIL_ALLOW_KEYS)\n"
          "  --insecure        without CURVE, listen on non-loopback endpoints anyway\n"
          "  --max-pending N   jobs not yet started per submitter (default 0: no limit)\n"
          "  --allow-dir DIR   jobs may also name files under DIR (repeatable; default: only the\n"
          "                    data root; README \"Path confinement\")\n"
          "  --keep-final-s S  a job that ended (COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL) more\n"
          "                    than S seconds ago leaves the coordinator's memory; coordinator.db keeps\n"
          "                    it and every request still finds it there (default 3600; 0: keep every\n"
          "                    job in memory)\n");
  return f == stdout ? 0 : 2;
}

static int int_arg(const char *name, const char *v, int lo, int hi, int *out) {
  char *end = NULL;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < lo || x > hi) {
    fprintf(stderr, "foil-coordinator: %s must be a whole number in %d..%d (got \"%s\")\n", name, lo, hi, v);
    return 2;
  }
  *out = (int)x;
  return 0;
}

int main(int argc, char **argv) {
  const char *env = getenv("FOIL_ROOT"), *log_path = NULL;
  const char *allow[COORD_MAX_ALLOW];
  coord_opts o = {.allow_dirs = allow, .root = env && *env ? env : "./foil-data", .control = "tcp://127.0.0.1:7420",
                  .workers = "tcp://127.0.0.1:7421"};
  const char *ck = getenv("FOIL_CURVE_KEY"), *al = getenv("FOIL_ALLOW_KEYS");
  o.curve_key = ck && *ck ? ck : NULL, o.allow = al && *al ? al : NULL;
  int keep_final = 3600;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int rc = 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
    if (!strcmp(a, "--insecure")) {
      o.insecure = 1;
      continue;
    }
    if (!v) {
      fprintf(stderr, "foil-coordinator: %s needs a value (or unknown option)\n", a);
      return usage(stderr);
    }
    if (!strcmp(a, "--root")) o.root = v;
    else if (!strcmp(a, "--control")) o.control = v;
    else if (!strcmp(a, "--workers")) o.workers = v;
    else if (!strcmp(a, "--log")) log_path = v;
    else if (!strcmp(a, "--curve-key")) o.curve_key = v;
    else if (!strcmp(a, "--allow-keys")) o.allow = v;
    else if (!strcmp(a, "--max-pending")) rc = int_arg(a, v, 0, 1000000, &o.max_pending);
    else if (!strcmp(a, "--keep-final-s")) rc = int_arg(a, v, 0, 315360000, &keep_final);
    else if (!strcmp(a, "--allow-dir")) {
      if (o.n_allow_dirs == COORD_MAX_ALLOW) {
        fprintf(stderr, "foil-coordinator: at most %d --allow-dir\n", COORD_MAX_ALLOW);
        return 2;
      }
      allow[o.n_allow_dirs++] = v;
    }
    else if (!strcmp(a, "--heartbeat-ms")) rc = int_arg(a, v, 10, 600000, &o.heartbeat_ms);
    else if (!strcmp(a, "--liveness")) rc = int_arg(a, v, 2, 1000, &o.liveness);
    else if (!strcmp(a, "--grace-s")) rc = int_arg(a, v, 1, 3600, &o.grace_s);
    else {
      fprintf(stderr, "foil-coordinator: unknown option %s\n", a);
      return usage(stderr);
    }
    if (rc) return rc;
    i++;
  }
  FILE *log = NULL;
  if (log_path && !(log = fopen(log_path, "a"))) {
    fprintf(stderr, "foil-coordinator: cannot append to %s\n", log_path);
    return 5;
  }
  o.log = log;
  o.keep_final_s = keep_final;
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  foil_err err = {0};
  coord *c = NULL;
  int rc = coord_new(&c, &o, &err);
  if (!rc) rc = coord_run(c, &stop_flag, &err);
  if (rc) fprintf(log ? log : stderr, "foil-coordinator: %s\n", err.msg);
  coord_destroy(&c);
  if (log) fclose(log);
  return foil_err_exit_code(rc);
}
