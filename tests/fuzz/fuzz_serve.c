/* fuzz_serve.c — foil-serve's request handling (worker/serve/server.c:
 * frame checks, ServeRequest decoding, search checks and batching, top-k
 * over the shards, status, reload) on a tiny index: 2 shards of 12 rows,
 * dim 4, written and published once in a temporary data root. The server
 * runs as in foil-serve (server_run, its own thread) on an ipc endpoint;
 * each input is sent as one frame from a DEALER, and the reply must come
 * (a request left unanswered aborts: the protocol answers every frame).
 * FOIL_FUZZ_SERVE_LOG names a file for the server's log (default none).
 * Text queries are answered FAILED_PRECONDITION (no checkpoint is loaded). */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/fileio.h"
#include "storage/index.h"
#include "worker/serve/server.h"

static server *srv;
static void *zctx, *cli;
static volatile sig_atomic_t stop_flag;

static void *serve_main(void *arg) {
  (void)arg;
  foil_err err = {0};
  if (server_run(srv, &stop_flag, NULL, &err)) {
    fprintf(stderr, "fuzz_serve: server_run: %s\n", err.msg);
    abort();
  }
  return NULL;
}

static void make_index(const char *root) {
  foil_err err = {0};
  int version = 0;
  enum { N = 24, D = 4, SHARDS = 2 };
  float x[N * D];
  for (int i = 0; i < N * D; i++) x[i] = (float)((i * 7919) % 23) - 11.0f;
  for (int i = 0; i < N; i++) {  /* unit rows, as a refresh writes them */
    float s = 0;
    for (int d = 0; d < D; d++) s += x[i * D + d] * x[i * D + d];
    for (int d = 0; d < D; d++) x[i * D + d] /= s > 0 ? __builtin_sqrtf(s) : 1.0f;
  }
  if (index_version_begin(root, "fz", &version, &err)) goto fail;
  for (int r = 0; r < SHARDS; r++) {
    int lo = r * N / SHARDS, hi = (r + 1) * N / SHARDS;
    int64_t ids[N];
    char *keys[N], kb[N][16];
    for (int i = lo; i < hi; i++) {
      ids[i - lo] = 100 + i;
      snprintf(kb[i], sizeof kb[i], "doc-%d", i);
      keys[i - lo] = kb[i];
    }
    index_meta m = {.version = version, .shard = r, .n_shards = SHARDS, .dim = D, .dtype = VS_F32,
                    .normalized = 1, .step = 1};
    snprintf(m.name, sizeof m.name, "fz");
    snprintf(m.checkpoint, sizeof m.checkpoint, "/nonexistent/step_1.h5");
    snprintf(m.model_hash, sizeof m.model_hash, "0badcafe");
    if (index_shard_write(root, &m, ids, keys, x + lo * D, hi - lo, &err)) goto fail;
  }
  if (index_publish(root, "fz", version, SHARDS, 2, &err)) goto fail;
  return;
fail:
  fprintf(stderr, "fuzz_serve: making the index: %s\n", err.msg);
  abort();
}

static void init(void) {
  if (srv) return;
  const char *tmp = getenv("FOIL_TEST_TMP");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/foil-fuzz-serve-XXXXXX",
           tmp && *tmp ? tmp : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  foil_err err = {0};
  if (tmp && *tmp) foil_mkdirs(tmp, &err);
  if (!mkdtemp(dir)) abort();
  make_index(dir);
  static char root[512], ep[600];
  snprintf(root, sizeof root, "%s", dir);
  snprintf(ep, sizeof ep, "ipc://%s/serve.sock", dir);
  server_opts o = {.root = root, .index = "fz", .bind = ep, .batch_max = 8, .watch = 0, .text = 0,
                   .log = fopen(getenv("FOIL_FUZZ_SERVE_LOG") ? getenv("FOIL_FUZZ_SERVE_LOG") : "/dev/null", "a")};
  if (server_new(&srv, &o, &err)) {
    fprintf(stderr, "fuzz_serve: server_new: %s\n", err.msg);
    abort();
  }
  pthread_t th;
  if (pthread_create(&th, NULL, serve_main, NULL)) abort();
  pthread_detach(th);
  zctx = zmq_ctx_new();
  cli = zmq_socket(zctx, ZMQ_DEALER);
  int zero = 0, timeout = 10000;
  zmq_setsockopt(cli, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(cli, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
  if (zmq_connect(cli, server_endpoint(srv))) abort();
}

/* The last inputs, written out when one goes unanswered (the hang may need
 * the ones before it): $FOIL_TEST_TMP/fuzz-serve-last/NNNN. */
enum { RING = 256 };
static uint8_t *ring[RING];
static size_t ring_len[RING];
static unsigned long nin;

static void dump_ring(void) {
  const char *tmp = getenv("FOIL_TEST_TMP");
  char dir[600], p[700];
  snprintf(dir, sizeof dir, "%s/fuzz-serve-last", tmp && *tmp ? tmp : "/tmp");
  foil_err err = {0};
  foil_mkdirs(dir, &err);
  unsigned long first = nin > RING ? nin - RING : 0;
  for (unsigned long i = first; i < nin; i++) {
    snprintf(p, sizeof p, "%s/%06lu", dir, i);
    foil_write_file_atomic(p, ring[i % RING], ring_len[i % RING], &err);
  }
  fprintf(stderr, "fuzz_serve: the last %lu inputs are in %s\n", nin - first, dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init();
  free(ring[nin % RING]);
  ring[nin % RING] = malloc(size ? size : 1);
  memcpy(ring[nin % RING], data, size);
  ring_len[nin++ % RING] = size;
  if (zmq_send(cli, data, size, 0) < 0) abort();
  zmq_msg_t r;
  zmq_msg_init(&r);
  /* libFuzzer's -timeout alarm (SIGALRM) interrupts the wait: retry */
  int got = -1;
  for (int tries = 0; got < 0 && tries < 100; tries++) {
    got = zmq_msg_recv(&r, cli, 0);
    if (got < 0 && errno != EINTR) break;
  }
  if (got < 0) {
    fprintf(stderr, "fuzz_serve: no reply within 10 s to a %zu-byte request\n", size);
    dump_ring();
    abort();
  }
  zmq_msg_close(&r);
  return 0;
}
