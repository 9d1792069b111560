/* foil_worker.c — foil-worker, the node daemon (worker/agent/agent.h).
 *
 *   foil-worker [--coordinator tcp://HOST:PORT] [--root DIR] [--name NAME]
 *               [--host HOST] [--slots N] [--gpus N] [--foil-run PATH]
 *               [--mpirun PATH] [--mpirun-args "ARGS"] [--grace-s S]
 *               [--log FILE] [--help]
 *
 * SIGTERM or SIGINT: the worker stops its jobs (SIGTERM, grace, SIGKILL),
 * reports them NODE_FAIL "worker NAME shut down" (requeued), says goodbye
 * to the coordinator (which frees the name for a restart at once) and
 * exits 0.
 * Exit status as the CLI's (common/err.h foil_err_exit_code).
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fileio.h"
#include "worker/agent/agent.h"

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: foil-worker [options]\n"
          "  --coordinator tcp://HOST:PORT  the coordinator's worker endpoint (default: $FOIL_COORDINATOR_WORKERS,\n"
          "                                 else \"workers\" of ROOT/coordinator.json, else %s)\n"
          "  --root DIR          data root (default: $FOIL_ROOT, else ./foil-data)\n"
          "  --name NAME         worker name (default: the host name)\n"
          "  --host HOST         what mpirun --host calls this node (default: the host name)\n"
          "  --slots N           CPU ranks run at once (default: online CPUs)\n"
          "  --gpus N            GPUs (default 0)\n"
          "  --foil-run PATH     foil-run (default: next to foil-worker)\n"
          "  --mpirun PATH       mpirun (default: mpirun on PATH)\n"
          "  --mpirun-args ARGS  extra mpirun flags, split at blanks\n"
          "  --grace-s S         seconds between SIGTERM and SIGKILL when a message gives none (default 10)\n"
          "  --log FILE          append the worker's log to FILE (default: stderr)\n"
          "  --key FILE          CURVE: this worker's key pair, NAME.key_secret of role worker\n"
          "                      (default $FOIL_KEY, else $FOIL_KEYS/client.key_secret; none: no CURVE)\n"
          "  --server-key FILE   the coordinator's public key NAME.key (default $FOIL_SERVER_KEY,\n"
          "                      else $FOIL_KEYS/server.key)\n"
          "SIGTERM/SIGINT stop the jobs (SIGTERM, grace, SIGKILL), report them (requeued), say\n"
          "goodbye to the coordinator (a foil-worker of the same name started again is\n"
          "accepted at once) and exit 0.\n",
          AGENT_DEFAULT_WORKERS_ENDPOINT);
}

static int fail(int code, const char *fmt, const char *a) {
  fprintf(stderr, "foil-worker: ");
  fprintf(stderr, fmt, a);
  fprintf(stderr, " (foil-worker --help)\n");
  return foil_err_exit_code(code);
}

static int parse_uint(const char *s, unsigned max, unsigned *out) {
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || errno || v > max || s[0] == '-') return -1;
  *out = (unsigned)v;
  return 0;
}

/* "workers" of <root>/coordinator.json into out; 1 if found. */
static int workers_endpoint(const char *root, char *out, size_t n) {
  char path[PATH_MAX], *data = NULL;
  snprintf(path, sizeof path, "%s/coordinator.json", root);
  if (foil_read_file(path, &data, NULL, NULL)) return 0;
  cJSON *j = cJSON_Parse(data);
  free(data);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "workers");
  int ok = cJSON_IsString(v) && v->valuestring[0];
  if (ok) snprintf(out, n, "%s", v->valuestring);
  cJSON_Delete(j);
  return ok;
}

int main(int argc, char **argv) {
  const char *coordinator = NULL, *root = NULL, *name = NULL, *host = NULL, *foil_run = NULL;
  const char *key = NULL, *server_key = NULL;
  const char *mpirun = "mpirun", *mpirun_args = NULL, *log_path = NULL;
  unsigned slots = 0, gpus = 0, grace = 10;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      usage(stdout);
      return 0;
    }
    if (strncmp(o, "--", 2)) return fail(FOIL_EINVAL, "unexpected argument '%s'", o);
    if (i + 1 >= argc) return fail(FOIL_EINVAL, "%s needs a value", o);
    const char *v = argv[++i];
    unsigned *num = NULL, max = 1u << 20;
    if (!strcmp(o, "--coordinator")) coordinator = v;
    else if (!strcmp(o, "--root")) root = v;
    else if (!strcmp(o, "--name")) name = v;
    else if (!strcmp(o, "--host")) host = v;
    else if (!strcmp(o, "--foil-run")) foil_run = v;
    else if (!strcmp(o, "--mpirun")) mpirun = v;
    else if (!strcmp(o, "--mpirun-args")) mpirun_args = v;
    else if (!strcmp(o, "--log")) log_path = v;
    else if (!strcmp(o, "--key")) key = v;
    else if (!strcmp(o, "--server-key")) server_key = v;
    else if (!strcmp(o, "--slots")) num = &slots;
    else if (!strcmp(o, "--gpus")) num = &gpus, max = AGENT_MAX_GPUS;
    else if (!strcmp(o, "--grace-s")) num = &grace, max = 86400;
    else return fail(FOIL_EINVAL, "unknown option %s", o);
    if (num && parse_uint(v, max, num)) {
      fprintf(stderr, "foil-worker: %s wants a whole number from 0 to %u, not '%s'\n", o, max, v);
      return foil_err_exit_code(FOIL_EINVAL);
    }
    if (!num && !*v) return fail(FOIL_EINVAL, "%s needs a non-empty value", o);
  }
  if (!root) {
    const char *e = getenv("FOIL_ROOT");
    root = e && *e ? e : "./foil-data";
  }
  char endpoint[1024];
  if (coordinator) snprintf(endpoint, sizeof endpoint, "%s", coordinator);
  else if (getenv("FOIL_COORDINATOR_WORKERS") && *getenv("FOIL_COORDINATOR_WORKERS"))
    snprintf(endpoint, sizeof endpoint, "%s", getenv("FOIL_COORDINATOR_WORKERS"));
  else if (!workers_endpoint(root, endpoint, sizeof endpoint))
    snprintf(endpoint, sizeof endpoint, "%s", AGENT_DEFAULT_WORKERS_ENDPOINT);
  char hostname[256] = "localhost";
  gethostname(hostname, sizeof hostname - 1);
  if (!name) name = hostname;
  if (!host) host = hostname;
  if (!slots) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    slots = n > 0 ? (unsigned)n : 1;
  }
  char run_path[PATH_MAX];
  if (!foil_run) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
      self[n] = 0;
      char *slash = strrchr(self, '/');
      if (slash) *slash = 0;
      snprintf(run_path, sizeof run_path, "%.*s/foil-run", (int)(sizeof run_path - 10), self);
      foil_run = run_path;
    } else {
      foil_run = "foil-run";
    }
  }
  FILE *logf = NULL;
  if (log_path && !(logf = fopen(log_path, "ae"))) {
    fprintf(stderr, "foil-worker: cannot open the log %s: %s\n", log_path, strerror(errno));
    return foil_err_exit_code(FOIL_EPERM);
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  agent_config cfg = {.coordinator = endpoint, .root = root, .name = name, .host = host, .slots = slots,
                      .gpus = gpus, .foil_run = foil_run, .mpirun = mpirun, .mpirun_args = mpirun_args,
                      .grace_s = grace, .log = logf, .key = key, .server_key = server_key};
  foil_err err = {0};
  agent *a = NULL;
  int rc = agent_new(&a, &cfg, &err);
  if (!rc) rc = agent_run(a, &stop_flag, &err);
  if (rc) fprintf(stderr, "foil-worker: %s\n", err.msg);
  agent_destroy(&a);
  if (logf) fclose(logf);
  return foil_err_exit_code(rc);
}
