/* progress.c — see progress.h. */
#define _POSIX_C_SOURCE 200809L
#include "worker/run/progress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/log.h"
#include "common/wire.h"
#include "foil/v1/worker.pb-c.h"

struct progress {
  void *ctx, *sock; /* NULL when no-op */
  uint64_t job_id, token;
  char key[65];     /* $FOIL_PROGRESS_KEY: the worker takes updates only with it */
};

static uint64_t env_u64(const char *name) {
  const char *s = getenv(name);
  return s && *s ? strtoull(s, NULL, 10) : 0;
}

int progress_open(progress **out, foil_err *err) {
  *out = NULL;
  progress *p = calloc(1, sizeof *p);
  if (!p) return foil_err_set(err, FOIL_ENOMEM, "out of memory");
  const char *ep = getenv("FOIL_PROGRESS");
  if (ep && *ep) {
    p->job_id = env_u64("FOIL_JOB_ID");
    p->token = env_u64("FOIL_ATTEMPT_TOKEN");
    const char *key = getenv("FOIL_PROGRESS_KEY");
    snprintf(p->key, sizeof p->key, "%s", key ? key : "");
    p->ctx = zmq_ctx_new();
    p->sock = p->ctx ? zmq_socket(p->ctx, ZMQ_PUSH) : NULL;
    int hwm = 8, linger = 0, immediate = 1;
    if (p->sock) {
      zmq_setsockopt(p->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
      zmq_setsockopt(p->sock, ZMQ_LINGER, &linger, sizeof linger);
      /* queue nothing while the worker is not connected */
      zmq_setsockopt(p->sock, ZMQ_IMMEDIATE, &immediate, sizeof immediate);
    }
    if (!p->sock || zmq_connect(p->sock, ep)) {
      int e = errno;
      progress_destroy(&p);
      return foil_err_set(err, FOIL_EINVAL, "FOIL_PROGRESS=%s: %s", ep, zmq_strerror(e));
    }
  }
  *out = p;
  return FOIL_OK;
}

void progress_destroy(progress **pp) {
  progress *p = *pp;
  if (!p) return;
  if (p->sock) zmq_close(p->sock);
  if (p->ctx) zmq_ctx_term(p->ctx);
  free(p);
  *pp = NULL;
}

int progress_active(const progress *p) { return p && p->sock; }

int progress_send(progress *p, double value, double total, const char *message, const char *metrics_json) {
  if (!progress_active(p)) return 0;
  Foil__V1__Progress pr = FOIL__V1__PROGRESS__INIT;
  pr.value = value;
  pr.total = total;
  pr.message = (char *)(message ? message : "");
  pr.metrics_json = (char *)(metrics_json ? metrics_json : "");
  pr.time = log_now();
  Foil__V1__ProgressUpdate u = FOIL__V1__PROGRESS_UPDATE__INIT;
  u.job_id = p->job_id;
  u.token = p->token;
  u.key = p->key;
  u.progress = &pr;
  return wire_send(p->sock, NULL, &u.base, ZMQ_DONTWAIT, NULL) == FOIL_OK;
}

int progress_fenced(const char *job_dir, const char *token, foil_err *err) {
  if (!token || !*token) return FOIL_OK;
  char path[4200];
  snprintf(path, sizeof path, "%s/attempt", job_dir);
  FILE *f = fopen(path, "r");
  if (!f) return FOIL_OK;
  char buf[64] = {0};
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *end = NULL;
  errno = 0;
  unsigned long long cur = strtoull(buf, &end, 10);
  if (end == buf || errno) return FOIL_OK;  /* empty or being rewritten */
  while (*end == '\n' || *end == '\r' || *end == ' ') end++;
  if (*end) return FOIL_OK;
  errno = 0;
  char *tend = NULL;
  unsigned long long mine = strtoull(token, &tend, 10);
  if (tend == token || *tend || errno)
    return foil_err_set(err, FOIL_EINVAL, "FOIL_ATTEMPT_TOKEN=%s is not a number", token);
  if (mine != cur)
    return foil_err_set(err, FOIL_EABORTED, "attempt %llu was replaced by %llu: not writing a checkpoint",
                        mine, cur);
  return FOIL_OK;
}
