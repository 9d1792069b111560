/* foil_serve.c — foil-serve: top-k search over an index version, or a
 * router in front of several foil-serve processes.
 *
 *   foil-serve --index NAME [--root DIR] [--version K] [--shards 0,2] [--bind EP]
 *              [--threads N] [--batch-max N] [--no-watch] [--no-text] [--log FILE]
 *              [--device cpu|cuda]
 *   foil-serve --route EP1,EP2,... [--bind EP] [--index NAME --root DIR] [--log FILE]
 *   either with [--curve-key KEY_SECRET --allow-keys DIR] [--insecure]; a router
 *   also [--key KEY_SECRET --server-key KEY] for its backends
 *
 * SIGTERM/SIGINT stop it; SIGHUP rereads the allow-list (common/auth.h) and,
 * unless the server is pinned (--version), loads CURRENT (server.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/err.h"
#include "common/fileio.h"
#include "kernels/kernels.h"
#include "model/devmem.h"
#include "storage/index.h"
#include "worker/serve/router.h"
#include "worker/serve/server.h"
#include "worker/serve/smerge.h"

static volatile sig_atomic_t stop_flag, hup_flag;
static void on_stop(int s) {
  (void)s;
  stop_flag = 1;
}
static void on_hup(int s) {
  (void)s;
  hup_flag = 1;
  auth_request_reload();
}

/* --device cuda: the first visible GPU (a serve job's worker sets
 * CUDA_VISIBLE_DEVICES to the GPUs it was given). */
static int gpu_up(FILE *log, foil_err *err) {
#ifdef FOIL_HAVE_CUDA
  int rc = cuda_init(0, err);
  if (!rc) fprintf(log ? log : stderr, "foil-serve: searching on %s\n", cuda_backend());
  return rc;
#else
  (void)log;
  return devmem_ready(DEVMEM_CUDA, "search index", err);
#endif
}

static int usage(FILE *f) {
  fprintf(f,
          "usage: foil-serve --index NAME [--root DIR] [--version K] [--shards 0,2] [--bind EP]\n"
          "                  [--threads N] [--batch-max N] [--no-watch] [--no-text] [--log FILE]\n"
          "                  [--device cpu|cuda]\n"
          "       foil-serve --route EP1,EP2,... [--bind EP] [--index NAME] [--root DIR] [--log FILE]\n"
          "\n"
          "Answers top-k searches (proto/foil/v1/search.proto) over the live version of an index\n"
          "(<root>/indexes/NAME/CURRENT) and swaps to each new version without failing a request.\n"
          "  --index NAME     the index (required unless --route)\n"
          "  --root DIR       data root (default $FOIL_ROOT, else ./foil-data)\n"
          "  --version K      serve version K and stay on it, SIGHUP too (default: CURRENT, followed)\n"
          "  --shards LIST    only these shards of the version, e.g. 0,2 (default: all)\n"
          "  --bind EP        listen here (default tcp://127.0.0.1:7430; port * = any free);\n"
          "                   written to <root>/indexes/NAME/serve.json for clients (not with\n"
          "                   --shards: a server of some shards is reached through a router)\n"
          "  --threads N      search threads (default: all cores)\n"
          "  --batch-max N    queries searched together at most (default 256)\n"
          "  --no-watch       do not poll CURRENT (SIGHUP and reload requests still load it)\n"
          "  --no-text        do not load the index's checkpoint (vector queries only)\n"
          "  --device D       where the rows are searched: cpu (default), or cuda: copied to the\n"
          "                   first visible GPU as float32 and searched there (CUDA_VISIBLE_DEVICES)\n"
          "  --route EPS      router mode: fan each request out to these foil-serve endpoints (at\n"
          "                   most 64, each holding some shards), merge their top-k, never mix\n"
          "                   versions, answer only when they hold every shard of it once\n"
          "  --log FILE       append the log here (default stderr)\n"
          "  --curve-key FILE this server's key pair NAME.key_secret (`foil keys gen`): CURVE on\n"
          "  --allow-keys DIR allow-list: *.key certificates of the clients that may search (admin,\n"
          "                   submitter, reader; reload: admin); SIGHUP rereads it\n"
          "                   (also $FOIL_CURVE_KEY, $FOIL_ALLOW_KEYS)\n"
          "  --insecure       without CURVE, listen on non-loopback endpoints anyway\n"
          "  --key FILE       router: its key pair for the backends (default $FOIL_KEY, $FOIL_KEYS)\n"
          "  --server-key F   router: the backends' public key (default $FOIL_SERVER_KEY, $FOIL_KEYS)\n");
  return f == stdout ? 0 : 2;
}

static int int_arg(const char *name, const char *v, int lo, int hi, int *out) {
  char *end = NULL;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < lo || x > hi) {
    fprintf(stderr, "foil-serve: %s must be a whole number in %d..%d (got \"%s\")\n", name, lo, hi, v);
    return 2;
  }
  *out = (int)x;
  return 0;
}

/* "0,2,5" → shards; 2 on a bad list */
static int shard_list(const char *v, int *out, int *n, int max) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", v);
  *n = 0;
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int x;
    if (*n == max || int_arg("--shards", t, 0, 65535, &x)) return 2;
    for (int i = 0; i < *n; i++)
      if (out[i] == x) {
        fprintf(stderr, "foil-serve: --shards names shard %d twice\n", x);
        return 2;
      }
    out[(*n)++] = x;
  }
  if (!*n) {
    fprintf(stderr, "foil-serve: --shards needs a list of shard numbers, e.g. 0,2\n");
    return 2;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *env = getenv("FOIL_ROOT"), *log_path = NULL, *route = NULL;
  server_opts o = {.root = env && *env ? env : "./foil-data", .watch = 1, .text = 1};
  static int shards[4096];
  int threads = 0;
  const char *ck = getenv("FOIL_CURVE_KEY"), *al = getenv("FOIL_ALLOW_KEYS"), *key = NULL, *server_key = NULL;
  o.curve_key = ck && *ck ? ck : NULL, o.allow = al && *al ? al : NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int rc = 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
    if (!strcmp(a, "--no-watch")) {
      o.watch = 0;
      continue;
    }
    if (!strcmp(a, "--watch")) {
      o.watch = 1;
      continue;
    }
    if (!strcmp(a, "--no-text")) {
      o.text = 0;
      continue;
    }
    if (!strcmp(a, "--insecure")) {
      o.insecure = 1;
      continue;
    }
    if (!v) {
      fprintf(stderr, "foil-serve: %s needs a value (or unknown option)\n", a);
      return usage(stderr);
    }
    if (!strcmp(a, "--index")) o.index = v;
    else if (!strcmp(a, "--root")) o.root = v;
    else if (!strcmp(a, "--bind")) o.bind = v;
    else if (!strcmp(a, "--log")) log_path = v;
    else if (!strcmp(a, "--route")) route = v;
    else if (!strcmp(a, "--curve-key")) o.curve_key = v;
    else if (!strcmp(a, "--allow-keys")) o.allow = v;
    else if (!strcmp(a, "--key")) key = v;
    else if (!strcmp(a, "--server-key")) server_key = v;
    else if (!strcmp(a, "--version")) rc = int_arg(a, v, 1, INT_MAX, &o.version);
    else if (!strcmp(a, "--threads")) rc = int_arg(a, v, 1, 4096, &threads);
    else if (!strcmp(a, "--batch-max")) rc = int_arg(a, v, 1, 1 << 20, &o.batch_max);
    else if (!strcmp(a, "--device")) {
      if (!strcmp(v, "cpu") || !strcmp(v, "cuda")) {
        o.device = strcmp(v, "cpu") ? DEVMEM_CUDA : DEVMEM_CPU;
      } else {
        fprintf(stderr, "foil-serve: --device is cpu or cuda, not '%s'\n", v);
        return 2;
      }
    }
    else if (!strcmp(a, "--shards")) {
      rc = shard_list(v, shards, &o.nshards, 4096);
      o.shards = shards;
    } else {
      fprintf(stderr, "foil-serve: unknown option %s\n", a);
      return usage(stderr);
    }
    if (rc) return rc;
    i++;
  }
  if (route && o.device != DEVMEM_CPU) {
    fprintf(stderr, "foil-serve: --device is for a server of an index; a router (--route) searches nothing\n");
    return 2;
  }
  if (!route && !o.index) {
    fprintf(stderr, "foil-serve: --index NAME is required (or --route EP1,EP2 for a router)\n");
    return usage(stderr);
  }
  FILE *log = NULL;
  if (log_path && !(log = fopen(log_path, "a"))) {
    fprintf(stderr, "foil-serve: cannot append to %s\n", log_path);
    return foil_err_exit_code(FOIL_EPERM);
  }
  o.log = log;
  struct sigaction sa = {0};
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  if (threads) kernels_set_threads(threads);
  foil_err err = {0};
  int rc;
  if (route) {
    char buf[8192], *eps[SMERGE_MAX_LISTS], *save = NULL;
    int n = 0;
    if (strlen(route) >= sizeof buf) {
      fprintf(stderr, "foil-serve: --route is longer than %zu characters\n", sizeof buf - 1);
      return 2;
    }
    snprintf(buf, sizeof buf, "%s", route);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      if (n == SMERGE_MAX_LISTS) {  /* never cut silently: the rest's shards would be missing */
        fprintf(stderr, "foil-serve: --route names more than %d backends (the most a router takes)\n",
                SMERGE_MAX_LISTS);
        return 2;
      }
      eps[n++] = t;
    }
    router_opts ro = {.backends = (const char *const *)eps, .nbackends = n, .bind = o.bind, .log = log,
                      .curve_key = o.curve_key, .allow = o.allow, .insecure = o.insecure, .key = key,
                      .server_key = server_key};
    router *r = NULL;
    char path[1400] = "";
    rc = router_new(&r, &ro, &err);
    if (!rc && o.index) {  /* clients of the index find the router */
      char dir[1300], json[512];
      rc = index_dir(o.root, o.index, dir, sizeof dir, &err);
      if (!rc) rc = foil_mkdirs(dir, &err);
      int len = snprintf(json, sizeof json, "{\"endpoint\": \"%s\", \"pid\": %ld, \"index\": \"%s\"}\n",
                         router_endpoint(r), (long)getpid(), o.index);
      snprintf(path, sizeof path, "%s/serve.json", dir);
      if (!rc) rc = foil_write_file_atomic(path, json, (size_t)len, &err);
      if (rc) path[0] = 0;
    }
    if (!rc) rc = router_run(r, &stop_flag, &err);
    router_destroy(&r);
    if (path[0]) {  /* removed if it still names this process (as a server does) */
      char *data = NULL, mine[64];
      size_t len = 0;
      snprintf(mine, sizeof mine, "\"pid\": %ld,", (long)getpid());
      if (!foil_read_file(path, &data, &len, NULL) && strstr(data, mine)) unlink(path);
      free(data);
    }
  } else {
    server *s = NULL;
    rc = o.device == DEVMEM_CUDA ? gpu_up(log, &err) : FOIL_OK;
    if (!rc) rc = server_new(&s, &o, &err);
    if (!rc) rc = server_run(s, &stop_flag, &hup_flag, &err);
    server_destroy(&s);
#ifdef FOIL_HAVE_CUDA
    if (o.device == DEVMEM_CUDA) cuda_shutdown();
#endif
  }
  if (rc) fprintf(log ? log : stderr, "foil-serve: %s\n", err.msg);
  if (log) fclose(log);
  return foil_err_exit_code(rc);
}
