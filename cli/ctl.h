/* ctl.h — what the job commands (submit, jobs, status, watch, logs, cancel,
 * workers, drain) share: their common options, the connection to the
 * coordinator, one request with retries.
 *
 * Common options: --coordinator ADDR (else $FOIL_COORDINATOR, else the
 * config file, else <root>/coordinator.json, else tcp://127.0.0.1:7420; see
 * client_endpoint), --root DIR (else $FOIL_ROOT, else ./foil-data) and
 * --timeout SECONDS (per request, default 5; also $FOIL_TIMEOUT), --key FILE and
 * --server-key FILE (CURVE; else the environment, see common/auth.h).
 *
 * No global state; a ctl_opts lives on the command's stack.
 */
#ifndef FOIL_CLI_CTL_H
#define FOIL_CLI_CTL_H

#include <stdint.h>

#include "common/client.h"
#include "common/err.h"

/* Help text for the common options, to end a command's usage. */
#define CTL_OPTIONS_HELP                                                                   \
  "  --coordinator ADDR  coordinator control address (default: $FOIL_COORDINATOR, the\n"  \
  "                      config file, ROOT/coordinator.json, tcp://127.0.0.1:7420)\n"      \
  "  --root DIR          data root (default: $FOIL_ROOT, else ./foil-data)\n"              \
  "  --timeout SECONDS   wait this long for each reply (default 5, $FOIL_TIMEOUT)\n"        \
  "  --key FILE          this user's key pair, NAME.key_secret (default $FOIL_KEY, else\n"  \
  "                      $FOIL_KEYS/client.key_secret; none: no CURVE)\n"                  \
  "  --server-key FILE   the coordinator's public key, NAME.key (default $FOIL_SERVER_KEY,\n" \
  "                      else $FOIL_KEYS/server.key)\n"

typedef struct {
  const char *cmd;         /* the subcommand, for messages */
  const char *root;        /* data root */
  const char *coordinator; /* --coordinator, or NULL */
  int timeout_ms;
  const char *key, *server_key; /* --key, --server-key, or NULL (common/auth.h) */
} ctl_opts;

/* Sets the defaults (root: $FOIL_ROOT, else ./foil-data; timeout:
 * $FOIL_TIMEOUT, else 5 s). FOIL_EINVAL for a bad $FOIL_TIMEOUT. */
int ctl_init(ctl_opts *o, const char *cmd, foil_err *err);
/* If argv[*i] is a common option (--coordinator, --root, --timeout, as
 * "--opt VALUE" or "--opt=VALUE"), consumes it (and its value: *i moves to
 * the last argument used) and returns 1; returns 0 if it is not one;
 * FOIL_EINVAL for a bad or missing value. */
int ctl_option(ctl_opts *o, int argc, char **argv, int *i, foil_err *err);
/* Connects (no traffic yet). On FOIL_OK *c is the caller's
 * (client_destroy). */
int ctl_connect(client **c, const ctl_opts *o, foil_err *err);
/* Sends req and checks the reply's body is `want` (a Foil__V1__Reply body
 * case). A reply that does not come (FOIL_EUNAVAIL) is asked again, the
 * same request, up to `tries` times in all: only for requests that are
 * safe to repeat. On FOIL_OK *reply is the caller's (client_free_reply). */
int ctl_call(client *c, Foil__V1__Request *req, int want, int tries, Foil__V1__Reply **reply,
             foil_err *err);
/* Parses a job id: a positive decimal integer. */
int ctl_job_id(const char *s, uint64_t *id, foil_err *err);
/* 1 if an argument is -h or --help. */
int ctl_wants_help(int argc, char **argv);

#endif
