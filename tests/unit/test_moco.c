/* test_moco.c — the queue's ring (any K, wrapping, oversized batches) and
 * the momentum update. */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/moco.h"
#include "tests/test.h"

/* Pushes batches of `batch` keys, key number v has all D entries = v, and
 * checks the queue holds exactly the newest min(K, pushed) keys. */
static void ring_case(int64_t K, int64_t batch, int pushes) {
  enum { D = 3 };
  moco_queue *q;
  foil_err err;
  CHECK(moco_queue_new(&q, K, D, &err) == 0);
  float buf[64 * D];
  int64_t v = 0;
  for (int p = 0; p < pushes; p++) {
    for (int64_t i = 0; i < batch; i++)
      for (int d = 0; d < D; d++) buf[i * D + d] = (float)(v + i);
    moco_queue_push(q, buf, batch);
    v += batch;
    int n;
    const float *keys = moco_queue_keys(q, &n);
    int64_t want = v < K ? v : K;
    CHECKF(n == want, "K=%lld batch=%lld push %d: fill %d, want %lld", (long long)K,
           (long long)batch, p, n, (long long)want);
    /* the set of values present is exactly [v - want, v) */
    int seen[256] = {0}, ok = 1;
    for (int i = 0; i < n; i++) {
      int val = (int)keys[i * D];
      ok &= val >= v - want && val < v && !seen[val] && keys[i * D + 2] == keys[i * D];
      if (val >= 0 && val < 256) seen[val] = 1;
    }
    CHECKF(ok, "K=%lld batch=%lld push %d: wrong keys in the queue", (long long)K, (long long)batch, p);
    /* the next row to overwrite holds the oldest key once full */
    if (v >= K) CHECK((int64_t)keys[q->ptr * D] == v - K);
  }
  moco_queue_destroy(&q);
  CHECK(q == NULL);
}

static void test_ring(void) {
  ring_case(7, 3, 9);   /* K not a multiple of the batch */
  ring_case(8, 4, 5);   /* a multiple */
  ring_case(5, 12, 3);  /* batch larger than K */
  ring_case(1, 2, 3);
  moco_queue *q;
  foil_err err;
  CHECK(moco_queue_new(&q, 0, 4, &err) == FOIL_EINVAL);
}

static void test_momentum(void) {
  encoder_config c;
  encoder_config_default(&c);
  c.n_layers = 1, c.d_model = 4, c.n_heads = 1, c.d_ff = 8, c.vocab = 10, c.max_len = 4;
  encoder *qe, *ke;
  foil_err err;
  encoder_new(&qe, &c, &err);
  encoder_new(&ke, &c, &err);
  encoder_init(qe, 1);
  encoder_init(ke, 2);
  size_t n = encoder_num_params(qe);
  float before = encoder_params(ke)[5], target = encoder_params(qe)[5];
  moco_momentum_update(ke, qe, 0.9f);
  CHECK(fabsf(encoder_params(ke)[5] - (0.9f * before + 0.1f * target)) <= 1e-7f * (fabsf(before) + fabsf(target)));
  moco_momentum_update(ke, qe, 0.0f); /* m = 0 copies */
  CHECK(memcmp(encoder_params(ke), encoder_params(qe), n * sizeof(float)) == 0);
  encoder_destroy(&qe);
  encoder_destroy(&ke);
}

int main(void) {
  RUN(test_ring);
  RUN(test_momentum);
  TEST_EXIT();
}
