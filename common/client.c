/* client.c — see client.h. */
#define _POSIX_C_SOURCE 200809L
#include "common/client.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "common/auth.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/wire.h"

struct client {
  void *ctx, *sock, *mon;
  char endpoint[512];
  int timeout_ms;
  uint64_t next_id;
  auth_client keys;
};

static void close_socket(client *c) {
  auth_unwatch(c->sock, &c->mon);
  if (c->sock) zmq_close(c->sock);
  c->sock = NULL;
}

static int open_socket(client *c, foil_err *err) {
  c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
  if (!c->sock) return foil_err_set(err, FOIL_EINTERNAL, "zmq_socket: %s", zmq_strerror(errno));
  int linger = 0;
  zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
  int rc = auth_client_socket(&c->keys, c->sock, err);
  if (rc) return rc;
  auth_watch(c->ctx, c->sock, &c->mon);
  if (zmq_connect(c->sock, c->endpoint))
    return foil_err_set(err, FOIL_EINVAL, "bad coordinator address %s: %s", c->endpoint,
                        zmq_strerror(errno));
  return FOIL_OK;
}

int client_new(client **out, const char *endpoint, int timeout_ms, foil_err *err) {
  return client_new_keys(out, endpoint, timeout_ms, NULL, NULL, err);
}

int client_new_keys(client **out, const char *endpoint, int timeout_ms, const char *key, const char *server_key,
                    foil_err *err) {
  *out = NULL;
  auth_client keys;
  int krc = auth_client_load(&keys, key, server_key, err);
  if (krc) return krc;
  client *c = calloc(1, sizeof *c);
  if (!c) return foil_err_set(err, FOIL_ENOMEM, "no memory");
  c->keys = keys;
  snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
  c->timeout_ms = timeout_ms;
  /* request ids: unique per process run, so replies meant for an earlier
   * client with the same socket cannot match */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  c->next_id = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec;
  c->ctx = zmq_ctx_new();
  int rc = c->ctx ? open_socket(c, err) : foil_err_set(err, FOIL_EINTERNAL, "zmq_ctx_new failed");
  if (rc) {
    client_destroy(&c);
    return rc;
  }
  *out = c;
  return FOIL_OK;
}

void client_destroy(client **cp) {
  client *c = *cp;
  if (!c) return;
  close_socket(c);
  if (c->ctx) zmq_ctx_term(c->ctx);
  memset(&c->keys, 0, sizeof c->keys);
  free(c);
  *cp = NULL;
}

void client_set_timeout(client *c, int timeout_ms) { c->timeout_ms = timeout_ms; }
const char *client_endpoint_of(const client *c) { return c->endpoint; }
void client_free_reply(Foil__V1__Reply *r) {
  if (r) foil__v1__reply__free_unpacked(r, NULL);
}

int client_code_to_err(int code) { return code ? -code : FOIL_OK; }
int client_err_to_code(int e) { return e ? -e : 0; }

int client_call(client *c, Foil__V1__Request *req, Foil__V1__Reply **reply, foil_err *err) {
  *reply = NULL;
  req->request_id = ++c->next_id;
  int rc = wire_send(c->sock, NULL, &req->base, ZMQ_DONTWAIT, err);
  if (rc) return rc;
  double deadline = log_mono() * 1e3 + c->timeout_ms;
  for (;;) {
    double left = deadline - log_mono() * 1e3;
    zmq_pollitem_t it = {.socket = c->sock, .events = ZMQ_POLLIN};
    int n = left > 0 ? zmq_poll(&it, 1, (long)left) : 0;
    if (n < 0 && errno == EINTR) return foil_err_set(err, FOIL_EABORTED, "interrupted");
    if (n <= 0) {
      const char *why = auth_handshake_failed(c->mon, &c->keys);
      if (why) {
        close_socket(c);
        open_socket(c, NULL);
        return foil_err_set(err, FOIL_EUNAUTH, "the coordinator at %s: %s", c->endpoint, why);
      }
      /* reopen: a reply arriving late must not answer the next request */
      close_socket(c);
      open_socket(c, NULL);
      return foil_err_set(err, FOIL_EUNAVAIL,
                          "no reply from the coordinator at %s within %.1f s (is it running? "
                          "`foil coordinator` or deploy/local-cluster.sh start)",
                          c->endpoint, c->timeout_ms / 1e3);
    }
    wire_msg m;
    foil_err e2 = {0};
    rc = wire_recv(c->sock, &m, 0, CLIENT_MAX_REPLY, ZMQ_DONTWAIT, &e2);
    Foil__V1__Reply *r = NULL;
    if (!rc) r = foil__v1__reply__unpack(NULL, zmq_msg_size(&m.body), zmq_msg_data(&m.body));
    wire_msg_close(&m);
    if (rc == FOIL_ENOMEM || rc == FOIL_EINVAL) /* it answered, with what we cannot take */
      return foil_err_set(err, rc, "the coordinator's reply (%s) was refused: %s",
                          rc == FOIL_ENOMEM ? "too large" : "misframed", e2.msg);
    if (rc) continue;
    if (!r) return foil_err_set(err, FOIL_EINTERNAL, "the coordinator's reply does not parse");
    if (r->request_id != req->request_id) {  /* a stale reply */
      client_free_reply(r);
      continue;
    }
    if (r->body_case == FOIL__V1__REPLY__BODY_ERROR) {
      int code = r->error ? client_code_to_err(r->error->code) : FOIL_EINTERNAL;
      if (code == FOIL_OK) code = FOIL_EINTERNAL;
      foil_err_set(err, code, "%s", r->error && r->error->message ? r->error->message : "error");
      client_free_reply(r);
      return code;
    }
    *reply = r;
    return FOIL_OK;
  }
}

/* "key" of the JSON object in path, copied to out; 1 if found. */
static int json_key(const char *path, const char *key, char *out, size_t n) {
  char *data = NULL;
  size_t len = 0;
  if (foil_read_file(path, &data, &len, NULL)) return 0;
  cJSON *j = cJSON_Parse(data);
  free(data);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
  int ok = cJSON_IsString(v) && v->valuestring[0];
  if (ok) snprintf(out, n, "%s", v->valuestring);
  cJSON_Delete(j);
  return ok;
}

int client_endpoint(const char *flag, const char *root, char *out, size_t n, const char **source,
                    foil_err *err) {
  const char *src = NULL;
  const char *env = getenv("FOIL_COORDINATOR");
  char path[1024];
  if (flag && *flag) {
    snprintf(out, n, "%s", flag);
    src = "--coordinator";
  } else if (env && *env) {
    snprintf(out, n, "%s", env);
    src = "$FOIL_COORDINATOR";
  } else {
    const char *cfg = getenv("FOIL_CONFIG"), *home = getenv("HOME");
    if (cfg && *cfg) snprintf(path, sizeof path, "%s", cfg);
    else snprintf(path, sizeof path, "%s/.config/foil/config.json", home ? home : ".");
    if (json_key(path, "coordinator", out, n)) {
      src = "the config file";
    } else {
      snprintf(path, sizeof path, "%s/coordinator.json", root && *root ? root : "./foil-data");
      if (json_key(path, "control", out, n)) src = "coordinator.json in the data root";
      else {
        snprintf(out, n, "%s", CLIENT_DEFAULT_ENDPOINT);
        src = "the default";
      }
    }
  }
  if (source) *source = src;
  if (strncmp(out, "tcp://", 6) && strncmp(out, "ipc://", 6))
    return foil_err_set(err, FOIL_EINVAL, "coordinator address %s (from %s) must start with tcp:// or ipc://",
                        out, src);
  return FOIL_OK;
}
