/* test_client.c — common/client.h against a stand-in coordinator (a plain
 * ROUTER socket in a thread): a reply too large to take is reported as
 * such, not as "no reply ... is it running?" after the whole timeout; a
 * reply of the wrong request id is skipped; the client still works after. */
#include <pthread.h>
#include <string.h>
#include <zmq.h>

#include "common/client.h"
#include "common/log.h"
#include "tests/test.h"

static void *ctx, *router;

/* Answers one request with a body of n bytes of 0x08 (never parsed: the
 * client refuses it by size first), or, for n == 0, with a valid reply
 * carrying request id (its own request's id + id_delta). */
static size_t reply_bytes;
static int id_delta;

static void *serve_one(void *arg) {
  (void)arg;
  zmq_msg_t id, body;
  zmq_msg_init(&id);
  zmq_msg_init(&body);
  if (zmq_msg_recv(&id, router, 0) < 0 || zmq_msg_recv(&body, router, 0) < 0) return NULL;
  Foil__V1__Request *req = foil__v1__request__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
  zmq_msg_send(&id, router, ZMQ_SNDMORE);
  if (reply_bytes) {
    char *big = malloc(reply_bytes);
    memset(big, 8, reply_bytes);
    zmq_send(router, big, reply_bytes, 0);
    free(big);
  } else {
    Foil__V1__Reply r = FOIL__V1__REPLY__INIT;
    r.request_id = (req ? req->request_id : 0) + (uint64_t)id_delta;
    size_t n = foil__v1__reply__get_packed_size(&r);
    uint8_t *buf = malloc(n ? n : 1);
    foil__v1__reply__pack(&r, buf);
    zmq_send(router, buf, n, 0);
    free(buf);
  }
  if (req) foil__v1__request__free_unpacked(req, NULL);
  zmq_msg_close(&body);
  return NULL;
}

static int call(client *c, size_t bytes, int delta, foil_err *err, double *secs) {
  reply_bytes = bytes;
  id_delta = delta;
  pthread_t t;
  pthread_create(&t, NULL, serve_one, NULL);
  Foil__V1__Request req = FOIL__V1__REQUEST__INIT;
  Foil__V1__Reply *r = NULL;
  double t0 = log_mono();
  int rc = client_call(c, &req, &r, err);
  *secs = log_mono() - t0;
  pthread_join(t, NULL);
  if (r) client_free_reply(r);
  return rc;
}

static void test_oversized_reply(void) {
  char ep[256];
  size_t n = sizeof ep;
  CHECK(zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &n) == 0);
  client *c = NULL;
  foil_err err = {0};
  CHECKF(client_new(&c, ep, 5000, &err) == 0, "%s", err.msg);
  if (!c) return;
  double secs = 0;
  int rc = call(c, (size_t)CLIENT_MAX_REPLY + 1, 0, &err, &secs);
  CHECKF(rc == FOIL_ENOMEM && strstr(err.msg, "too large") && !strstr(err.msg, "is it running"), "%d %s", rc,
         err.msg);
  CHECKF(secs < 4.0, "%.1f s: the client waited out its timeout", secs);
  /* the connection still answers the next request */
  rc = call(c, 0, 0, &err, &secs);
  CHECKF(rc == 0, "%d %s", rc, err.msg);
  client_destroy(&c);
}

/* A reply to another request (a late one) is skipped: the call then times
 * out rather than taking it as its own. */
static void test_stale_reply_skipped(void) {
  char ep[256];
  size_t n = sizeof ep;
  zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &n);
  client *c = NULL;
  foil_err err = {0};
  CHECKF(client_new(&c, ep, 600, &err) == 0, "%s", err.msg);
  if (!c) return;
  double secs = 0;
  int rc = call(c, 0, -1, &err, &secs);
  CHECKF(rc == FOIL_EUNAVAIL && strstr(err.msg, "no reply"), "%d %s", rc, err.msg);
  client_destroy(&c);
}

int main(void) {
  ctx = zmq_ctx_new();
  router = zmq_socket(ctx, ZMQ_ROUTER);
  int maxmsg = -1;
  zmq_setsockopt(router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
  if (zmq_bind(router, "tcp://127.0.0.1:*") != 0) {
    fprintf(stderr, "cannot bind a loopback port\n");
    return 1;
  }
  RUN(test_oversized_reply);
  RUN(test_stale_reply_skipped);
  zmq_close(router);
  zmq_ctx_term(ctx);
  TEST_EXIT();
}
