/* bench_encode.c — the engine's encode rate on a corpus: a checkpoint's
 * encoder and tokenizer, a benchmark's corpus, encode_texts in chunks of
 * BATCH rows (as foil-run refresh does), nothing else timed. bench/refresh.py
 * sets it beside a whole refresh job on the same corpus.
 *
 *   bench_encode CKPT BENCHMARK.h5 BATCH THREADS
 *
 * Prints {"rows": n, "seconds": s, "sentences_per_s": r}.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/kernels.h"
#include "storage/ckpt.h"
#include "storage/dataset.h"
#include "storage/h5io.h"
#include "storage/tokenizer_h5.h"
#include "worker/run/encode.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: bench_encode CKPT BENCHMARK.h5 BATCH THREADS\n");
    return 2;
  }
  int batch = atoi(argv[3]);
  kernels_set_threads(atoi(argv[4]));
  foil_err err = {0};
  encoder_config cfg;
  encoder *enc = NULL;
  tokenizer *tok = NULL;
  h5io *f = NULL;
  dataset_bench b;
  int rc = ckpt_read_config(argv[1], &cfg, &err);
  if (!rc) rc = encoder_new(&enc, &cfg, &err);
  ckpt_state st = {.enc = enc};
  if (!rc) rc = ckpt_load(argv[1], &st, &err);
  free((char *)st.spec_json);
  if (!rc) rc = h5io_open(&f, argv[1], CKPT_FORMAT, &err);
  if (!rc) rc = tokenizer_h5_read(f, "tokenizer", &tok, &err);
  h5io_close(&f);
  if (!rc) rc = dataset_bench_read(argv[2], &b, &err);
  if (rc) {
    fprintf(stderr, "bench_encode: %s\n", err.msg);
    return 1;
  }
  size_t n = b.n_corpus, D = (size_t)encoder_out_dim(enc);
  float *out = malloc(sizeof(float) * n * D);
  double t0 = now();
  for (size_t r0 = 0; !rc && r0 < n; r0 += (size_t)batch) {
    size_t m = n - r0 < (size_t)batch ? n - r0 : (size_t)batch;
    rc = encode_texts(enc, tok, b.corpus + r0, m, cfg.max_len, batch, out + r0 * D, &err);
  }
  double s = now() - t0;
  if (rc) {
    fprintf(stderr, "bench_encode: %s\n", err.msg);
    return 1;
  }
  printf("{\"rows\": %zu, \"seconds\": %.4f, \"sentences_per_s\": %.1f}\n", n, s, n / s);
  free(out);
  dataset_bench_free(&b);
  tokenizer_destroy(&tok);
  encoder_destroy(&enc);
  return 0;
}
