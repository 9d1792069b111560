/* bench_engine.c — foil's side of the engine benchmark (bench/engine.py
 * runs this and the PyTorch anchor on identical work and prints ratios).
 *
 *   bench_engine train  small|minilm THREADS [STEPS]   pairs/s of a training step
 *   bench_engine encode small|minilm THREADS [BATCHES] sentences/s, no grad
 *   bench_engine sgemm  THREADS                         OpenBLAS sgemm GFLOP/s
 *   bench_engine loss   THREADS B D K                   InfoNCE fwd+bwd ms with a K-key queue
 *
 * Prints one line of JSON. Work: SMALL = vocab 8192, d 256, 4 heads, d_ff
 * 1024, 4 layers, seq 32; MINILM = vocab 30522, d 384, 12 heads, d_ff 1536,
 * 6 layers, seq 64. Training: 64 (query, positive) pairs = 128 sequences,
 * symmetric InfoNCE at temperature 0.05, AdamW. Encoding: batch 256.
 * Dropout 0.1 in training. Token ids are uniform random, all sequences full
 * length, seeded, the same as the PyTorch side draws.
 */
#define _POSIX_C_SOURCE 199309L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "model/encoder.h"
#include "model/loss.h"
#include "model/optim.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int config_of(const char *name, encoder_config *c, int *T) {
  encoder_config_default(c);
  c->dropout = 0.1f;
  if (!strcmp(name, "small")) {
    c->vocab = 8192, c->d_model = 256, c->n_heads = 4, c->d_ff = 1024, c->n_layers = 4;
    *T = 32;
  } else if (!strcmp(name, "minilm")) {
    c->vocab = 30522, c->d_model = 384, c->n_heads = 12, c->d_ff = 1536, c->n_layers = 6;
    *T = 64;
  } else {
    return -1;
  }
  c->max_len = *T;
  return 0;
}

static void fill_ids(int32_t *ids, uint8_t *mask, size_t n, int vocab, uint64_t seed) {
  for (size_t i = 0; i < n; i++) {
    ids[i] = (int32_t)(rng_u32(seed, 99, i) % (uint32_t)vocab);
    mask[i] = 1;
  }
}

static int bench_sgemm(void) {
  /* The square shape of the step's largest GEMMs. */
  int n = 1024;
  float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
        *c = malloc(sizeof(float) * n * n);
  rng_uniform_fill(a, (size_t)n * n, 1, 1, 0);
  rng_uniform_fill(b, (size_t)n * n, 1, 2, 0);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
  int reps = 0;
  double t0 = now(), t;
  do {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    reps++;
  } while ((t = now() - t0) < 2.0);
  printf("{\"side\":\"foil\",\"mode\":\"sgemm\",\"threads\":%d,\"gflops\":%.2f}\n",
         kernels_get_threads(), 2.0 * n * n * (double)n * reps / t / 1e9);
  free(a);
  free(b);
  free(c);
  return 0;
}

/* One InfoNCE forward + backward of B pairs of width D against in-batch
 * keys plus a queue of K keys (MoCo), in milliseconds. */
static int bench_loss(int B, int D, int K) {
  float *emb = malloc(sizeof(float) * 2 * B * D), *demb = malloc(sizeof(float) * 2 * B * D);
  float *queue = malloc(sizeof(float) * ((size_t)K + 1) * D);
  rng_uniform_fill(emb, (size_t)2 * B * D, 3, 1, 0);
  rng_uniform_fill(queue, ((size_t)K + 1) * D, 3, 2, 0);
  float norms[1];
  for (int k = 0; k < K; k++) l2norm_forward(queue + (size_t)k * D, norms, queue + (size_t)k * D, 1, D);
  loss *ls;
  foil_err err;
  loss_new(&ls, &err);
  loss_opts lo = {.temperature = 0.05f, .queue = K ? queue : NULL, .queue_n = K};
  loss_result r;
  loss_infonce(ls, &r, demb, emb, B, 0, D, &lo, NULL, &err); /* warm */
  int reps = 0;
  double t0 = now(), t;
  do {
    loss_infonce(ls, &r, demb, emb, B, 0, D, &lo, NULL, &err);
    reps++;
  } while ((t = now() - t0) < 1.0);
  printf("{\"side\":\"foil\",\"mode\":\"loss\",\"threads\":%d,\"B\":%d,\"D\":%d,\"K\":%d,"
         "\"ms\":%.4f}\n", kernels_get_threads(), B, D, K, 1e3 * t / reps);
  loss_destroy(&ls);
  free(emb);
  free(demb);
  free(queue);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 6 && !strcmp(argv[1], "loss")) {
    kernels_set_threads(atoi(argv[2]));
    return bench_loss(atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
  }
  if (argc < 3) {
    fprintf(stderr, "usage: %s train|encode small|minilm THREADS [N] | sgemm THREADS\n", argv[0]);
    return 2;
  }
  if (!strcmp(argv[1], "sgemm")) {
    kernels_set_threads(atoi(argv[2]));
    return bench_sgemm();
  }
  if (argc < 4) return 2;
  encoder_config cfg;
  int T;
  if (config_of(argv[2], &cfg, &T)) {
    fprintf(stderr, "unknown config %s\n", argv[2]);
    return 2;
  }
  int threads = kernels_set_threads(atoi(argv[3]));
  int train = !strcmp(argv[1], "train");
  int iters = argc > 4 ? atoi(argv[4]) : (train ? 10 : 4);
  int B = train ? 128 : 256;

  foil_err err = {0};
  encoder *enc = NULL;
  loss *ls = NULL;
  optim *opt = NULL;
  optim_config oc;
  optim_config_default(&oc);
  if (encoder_new(&enc, &cfg, &err) || loss_new(&ls, &err) ||
      optim_new(&opt, encoder_num_params(enc), &oc, &err)) {
    fprintf(stderr, "bench_engine: %s\n", err.msg);
    return 1;
  }
  encoder_init(enc, 1);
  int32_t *ids = malloc(sizeof(int32_t) * B * T);
  uint8_t *mask = malloc((size_t)B * T);
  float *demb = malloc(sizeof(float) * B * cfg.d_model);
  const float *emb;
  loss_result lr = {0};
  double t0 = 0;
  for (int it = -1; it < iters; it++) { /* iteration -1 warms up */
    if (it == 0) t0 = now();
    fill_ids(ids, mask, (size_t)B * T, cfg.vocab, (uint64_t)it + 2);
    int rc = encoder_forward(enc, &emb, ids, mask, B, T, train, 1, (uint64_t)(it + 1), &err);
    if (!rc && train) {
      encoder_zero_grads(enc);
      const loss_opts lo = {.temperature = 0.05f, .symmetric = 1};
      rc = loss_infonce(ls, &lr, demb, emb, B / 2, 0, cfg.d_model, &lo, NULL, &err);
      rc = rc ? rc : encoder_backward(enc, demb, &err);
      if (!rc) optim_step(opt, enc, 1e-4f);
    }
    if (rc) {
      fprintf(stderr, "bench_engine: %s\n", err.msg);
      return 1;
    }
  }
  double dt = now() - t0;
  double flops = encoder_forward_flops(&cfg, B, T) * (train ? 3 : 1) * iters;
  printf("{\"side\":\"foil\",\"mode\":\"%s\",\"config\":\"%s\",\"threads\":%d,"
         "\"per_s\":%.2f,\"gflops\":%.2f,\"loss\":%.4f}\n",
         argv[1], argv[2], threads, (train ? B / 2 : B) * iters / dt, flops / dt / 1e9,
         lr.value);
  free(ids);
  free(mask);
  free(demb);
  optim_destroy(&opt);
  loss_destroy(&ls);
  encoder_destroy(&enc);
  return 0;
}
