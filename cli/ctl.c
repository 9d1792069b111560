/* ctl.c — see ctl.h. */
#define _POSIX_C_SOURCE 200809L
#include "cli/ctl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int parse_timeout(const char *s, const char *where, int *ms, foil_err *err) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || *end || errno || !isfinite(v) || v <= 0 || v > 3600)
    return foil_err_set(err, FOIL_EINVAL, "%s must be seconds in (0, 3600], got '%s'", where, s);
  *ms = (int)ceil(v * 1e3);
  return FOIL_OK;
}

int ctl_init(ctl_opts *o, const char *cmd, foil_err *err) {
  o->cmd = cmd;
  o->coordinator = NULL;
  o->timeout_ms = 5000;
  o->key = o->server_key = NULL;
  /* $FOIL_ROOT or the default; --root comes through ctl_option, which
   * stops at `--` where cli_data_root would not */
  int one = 1;
  char *none[] = {(char *)cmd, NULL};
  o->root = cli_data_root(&one, none);
  const char *env = getenv("FOIL_TIMEOUT");
  if (env && *env) return parse_timeout(env, "$FOIL_TIMEOUT", &o->timeout_ms, err);
  return FOIL_OK;
}

int ctl_option(ctl_opts *o, int argc, char **argv, int *i, foil_err *err) {
  const char *a = argv[*i];
  const char *val = NULL;
  int which = 0;
  if (!strcmp(a, "--key") || !strcmp(a, "--server-key")) {
    if (*i + 1 >= argc) return foil_err_set(err, FOIL_EINVAL, "%s needs a value", a);
    if (a[2] == 'k') o->key = argv[++*i];
    else o->server_key = argv[++*i];
    return 1;
  }
  if (!strncmp(a, "--key=", 6)) {
    o->key = a + 6;
    return 1;
  }
  if (!strncmp(a, "--server-key=", 13)) {
    o->server_key = a + 13;
    return 1;
  }
  if (!strcmp(a, "--coordinator") || !strcmp(a, "--timeout") || !strcmp(a, "--root")) {
    which = a[2] == 'c' ? 1 : a[2] == 't' ? 2 : 3;
    if (*i + 1 >= argc) return foil_err_set(err, FOIL_EINVAL, "%s needs a value", a);
    val = argv[++*i];
  } else if (!strncmp(a, "--coordinator=", 14)) {
    which = 1;
    val = a + 14;
  } else if (!strncmp(a, "--timeout=", 10)) {
    which = 2;
    val = a + 10;
  } else if (!strncmp(a, "--root=", 7)) {
    which = 3;
    val = a + 7;
  }
  if (which == 1) o->coordinator = val;
  if (which == 3) o->root = val;
  if (which == 2) {
    int rc = parse_timeout(val, "--timeout", &o->timeout_ms, err);
    if (rc) return rc;
  }
  return which ? 1 : 0;
}

int ctl_connect(client **c, const ctl_opts *o, foil_err *err) {
  char ep[512];
  int rc = client_endpoint(o->coordinator, o->root, ep, sizeof ep, NULL, err);
  return rc ? rc : client_new_keys(c, ep, o->timeout_ms, o->key, o->server_key, err);
}

int ctl_call(client *c, Foil__V1__Request *req, int want, int tries, Foil__V1__Reply **reply,
             foil_err *err) {
  int rc = FOIL_EUNAVAIL;
  for (int t = 0; t < (tries > 0 ? tries : 1) && rc == FOIL_EUNAVAIL; t++)
    rc = client_call(c, req, reply, err);
  if (rc == FOIL_EUNAVAIL && tries > 1) {
    char m[sizeof err->msg];
    snprintf(m, sizeof m, "%s", err->msg);
    foil_err_set(err, rc, "%.400s (asked %d times)", m, tries);
  }
  if (rc) return rc;
  if ((int)(*reply)->body_case != want) {
    client_free_reply(*reply);
    *reply = NULL;
    return foil_err_set(err, FOIL_EINTERNAL,
                        "the coordinator answered with another kind of reply than asked for "
                        "(a coordinator of another version?)");
  }
  return FOIL_OK;
}

int ctl_job_id(const char *s, uint64_t *id, foil_err *err) {
  char *end = (char *)s;
  errno = 0;
  unsigned long long v = s[0] >= '0' && s[0] <= '9' ? strtoull(s, &end, 10) : 0;
  if (!v || *end || errno)
    return foil_err_set(err, FOIL_EINVAL, "'%s' is not a job id (a positive number)", s);
  *id = v;
  return FOIL_OK;
}

int ctl_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) return 0;
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
  }
  return 0;
}
