/* bench_encode.c — the engine's encode rate on a corpus: a checkpoint's
 * encoder and tokenizer, a benchmark's corpus (or the lines of a text
 * file), encode_texts over the whole list in one call (it sorts the texts
 * by length and encodes BATCH at a time, as sentence-transformers' encode
 * does), nothing else timed. bench/refresh.py sets it beside a whole
 * refresh job on the same corpus (which sorts within windows of 32
 * batches); bench/minilm.py beside sentence-transformers.
 *
 *   bench_encode CKPT BENCHMARK.h5|TEXTS.txt BATCH THREADS [OUT.f32]
 *
 * OUT.f32 (optional) receives the embeddings, [n, D] float32, so the
 * caller can check both sides did the same work.
 * Prints {"rows": n, "seconds": s, "sentences_per_s": r}.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fileio.h"
#include "kernels/kernels.h"
#include "storage/ckpt.h"
#include "storage/dataset.h"
#include "worker/run/encode.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: bench_encode CKPT BENCHMARK.h5|TEXTS.txt BATCH THREADS [OUT.f32]\n");
    return 2;
  }
  int batch = atoi(argv[3]);
  kernels_set_threads(atoi(argv[4]));
  foil_err err = {0};
  encoder *enc = NULL;
  tokenizer *tok = NULL;
  dataset_bench b = {0};
  char *text = NULL, **lines = NULL;
  size_t len = strlen(argv[2]), nlines = 0;
  int txt = len > 4 && !strcmp(argv[2] + len - 4, ".txt");
  int rc = ckpt_open_encoder(argv[1], &enc, &tok, NULL, &err);
  if (!rc && !txt) rc = dataset_bench_read(argv[2], &b, &err);
  if (!rc && txt) { /* one text per line; the buffer is split in place */
    size_t tn = 0;
    rc = foil_read_file(argv[2], &text, &tn, &err);
    if (!rc) rc = foil_split_lines(text, tn, &lines, &nlines, &err);
  }
  if (rc) {
    fprintf(stderr, "bench_encode: %s\n", err.msg);
    return 1;
  }
  char *const *texts = txt ? lines : b.corpus;
  size_t n = txt ? nlines : b.n_corpus, D = (size_t)encoder_out_dim(enc);
  float *out = malloc(sizeof(float) * n * D);
  double t0 = now();
  /* the whole list in one call: encode_texts batches rows of similar lengths */
  rc = encode_texts(enc, tok, texts, n, encoder_cfg(enc)->max_len, batch, out, &err);
  double s = now() - t0;
  if (rc) {
    fprintf(stderr, "bench_encode: %s\n", err.msg);
    return 1;
  }
  if (argc == 6) {
    FILE *o = fopen(argv[5], "wb");
    if (!o || fwrite(out, sizeof(float), n * D, o) != n * D || fclose(o)) {
      fprintf(stderr, "bench_encode: cannot write %s\n", argv[5]);
      return 1;
    }
  }
  printf("{\"rows\": %zu, \"seconds\": %.4f, \"sentences_per_s\": %.1f}\n", n, s, n / s);
  free(out);
  if (!txt) dataset_bench_free(&b);
  free(lines);
  free(text);
  tokenizer_destroy(&tok);
  encoder_destroy(&enc);
  return 0;
}
