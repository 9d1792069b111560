/* bench_serve_client.c — single-query round trips to foil-serve from C
 * (protobuf-c over a ZeroMQ DEALER), so that the client's own cost is a
 * few microseconds, not a Python protobuf's; bench/serve.py runs it.
 *
 *   bench_serve_client ENDPOINT QUERIES.f32 D NQ K
 *
 * Sends NQ requests of one vector each (rows of QUERIES.f32), one at a
 * time, after 5 warm-up ones; prints JSON with the round-trip and the
 * server's own receive-to-send times (median, p99) and the p99 of their
 * per-request difference, in ms. With FOIL_BENCH_SPIN=1 the client polls
 * without sleeping while it waits (what a latency-bound client may do), so
 * the wake-up of an idle client thread and core is not in the round trip.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zmq.h>

#include "common/wire.h"
#include "foil/v1/search.pb-c.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double pct(double *v, int n, double p) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return v[(int)(p * (n - 1) + 0.5)];
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: bench_serve_client ENDPOINT QUERIES.f32 D NQ K\n");
    return 2;
  }
  int d = atoi(argv[3]), nq = atoi(argv[4]), k = atoi(argv[5]);
  FILE *f = fopen(argv[2], "rb");
  float *q = malloc(sizeof(float) * (size_t)d * (size_t)nq);
  if (!f || !q || fread(q, sizeof(float) * (size_t)d, (size_t)nq, f) != (size_t)nq) {
    fprintf(stderr, "bench_serve_client: cannot read %d queries of %d floats from %s\n", nq, d, argv[2]);
    return 1;
  }
  fclose(f);
  void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
  int zero = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  if (zmq_connect(s, argv[1])) return 1;
  const char *sp = getenv("FOIL_BENCH_SPIN");
  int spin = sp && *sp == '1';
  double *rtt = malloc(sizeof(double) * (size_t)nq), *srv = malloc(sizeof(double) * (size_t)nq),
         *dif = malloc(sizeof(double) * (size_t)nq);
  for (int i = -5; i < nq; i++) {
    const float *v = q + (size_t)(i < 0 ? 0 : i) * d;
    Foil__V1__SearchQuery sq = FOIL__V1__SEARCH_QUERY__INIT, *sqp = &sq;
    sq.n_vector = (size_t)d, sq.vector = (float *)v;
    Foil__V1__SearchRequest sr = FOIL__V1__SEARCH_REQUEST__INIT;
    sr.n_queries = 1, sr.queries = &sqp, sr.k = (uint32_t)k;
    Foil__V1__ServeRequest rq = FOIL__V1__SERVE_REQUEST__INIT;
    rq.request_id = (uint64_t)(i + 10), rq.body_case = FOIL__V1__SERVE_REQUEST__BODY_SEARCH, rq.search = &sr;
    double t0 = now_ms();
    foil_err err = {0};
    if (wire_send(s, NULL, &rq.base, 0, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
    while (spin && zmq_poll(&it, 1, 0) == 0) {
    }
    wire_msg m;
    if (wire_recv(s, &m, 0, 64u << 20, 0, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    Foil__V1__ServeReply *r = foil__v1__serve_reply__unpack(NULL, zmq_msg_size(&m.body), zmq_msg_data(&m.body));
    double t = now_ms() - t0;
    wire_msg_close(&m);
    if (!r || r->body_case != FOIL__V1__SERVE_REPLY__BODY_SEARCH) return fprintf(stderr, "error reply\n"), 1;
    if (i >= 0) rtt[i] = t, srv[i] = r->search->server_ms, dif[i] = t - r->search->server_ms;
    foil__v1__serve_reply__free_unpacked(r, NULL);
  }
  printf("{\"rtt_p50\": %.4f, \"rtt_p99\": %.4f, \"server_p50\": %.4f, \"server_p99\": %.4f, "
         "\"diff_p50\": %.4f, \"diff_p99\": %.4f}\n",
         pct(rtt, nq, 0.5), pct(rtt, nq, 0.99), pct(srv, nq, 0.5), pct(srv, nq, 0.99), pct(dif, nq, 0.5),
         pct(dif, nq, 0.99));
  zmq_close(s);
  zmq_ctx_term(ctx);
  free(q), free(rtt), free(srv), free(dif);
  return 0;
}
