/* bench_tokenizer.c — foil's encoding speed, for bench/tokenizer.py.
 *
 *   bench_tokenizer VOCAB TEXTFILE [REPEATS]
 * Encodes every line of TEXTFILE (WordPiece with [CLS]/[SEP]; BPE as is),
 * one call per line, single-threaded, REPEATS times (default 5), and prints
 * "MB/s <best> ids <count> bytes <n>" for the fastest pass.
 *
 *   bench_tokenizer VOCAB --long N [REPEATS]
 * The same for one line of N 'a's: a single pre-token, the worst case for
 * BPE's merge loop (O(N log N); it was O(N^2): 80k took 1.8 s).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/tokenizer.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_tokenizer VOCAB TEXTFILE|--long N [REPEATS]\n");
    return 2;
  }
  int reps = argc > 3 ? atoi(argv[3]) : 5;
  foil_err err = {0};
  tokenizer *t;
  if (tokenizer_load(&t, argv[1], &err)) {
    fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
    return 1;
  }
  long n;
  char *text;
  if (!strcmp(argv[2], "--long")) {
    if (argc < 4) return 2;
    n = atol(argv[3]);
    reps = argc > 4 ? atoi(argv[4]) : 5;
    text = malloc((size_t)n + 1);
    if (!text) return 1;
    memset(text, 'a', (size_t)n);
  } else {
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
      fprintf(stderr, "bench_tokenizer: cannot read %s\n", argv[2]);
      return 1;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) return 1;
    fclose(f);
  }
  int special = tokenizer_kind(t) == TOKENIZER_WORDPIECE;
  enum { CAP = 1 << 16 };
  int32_t *ids = malloc(CAP * sizeof *ids);
  double best = 1e30;
  long total = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    total = 0;
    for (long i = 0; i < n;) {
      char *nl = memchr(text + i, '\n', (size_t)(n - i));
      long e = nl ? nl - text : n;
      int k;
      if (tokenizer_encode(t, text + i, (size_t)(e - i), special, ids, CAP, &k, &err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 1;
      }
      total += k;
      i = e + 1;
    }
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  printf("MB/s %.2f ids %ld bytes %ld\n", (double)n / best / 1e6, total, n);
  free(ids);
  free(text);
  tokenizer_destroy(&t);
  return 0;
}
