/* bench_decode.c — foil's side of the decoding benchmark (bench/decode.py
 * runs one method per fresh process and prints each against greedy).
 *
 *   bench_decode METHOD BATCH THREADS [NEW_TOKENS] [REPEATS] [MODEL]
 *
 * METHOD: greedy | sample | beam | cs | cd | cad | adacad | dola.
 * MODEL "demo" (default): the demo decoder (examples/pretrain-lm-decoder.json:
 * vocab 8000, d 256, 4 heads, d_ff 1024, 4 layers, max_len 128; 13 MB of
 * weights, which stay in this CPU's L3 cache) with seeded random weights;
 * cd's amateur is examples/pretrain-lm-amateur.json's (2 layers, d 128, 2
 * heads, d_ff 512). MODEL "gpt2": GPT-2 small's shape (vocab 50257, d 768,
 * 12 heads, d_ff 3072, 12 layers, max_len 1024; 124 M parameters, 500 MB:
 * every step streams them from memory), cd's amateur the demo decoder's
 * shape on GPT-2's vocabulary. BATCH prompts of 32 uniform random tokens,
 * NEW_TOKENS (default 64) new tokens each, no EOS (every prompt runs the
 * full length), generate.h's defaults (cs: k 5, α 0.6; cad: α 0.5; dola:
 * "high", repetition penalty 1.2; sample: top-p 0.95; beam: 4 beams).
 * One warm-up call, then the best of REPEATS (default 3) calls.
 *
 * Prints one line of JSON: per-step milliseconds (one decoding step of
 * the batch = call time / NEW_TOKENS, the prefill included), tokens/s
 * (BATCH·NEW_TOKENS / call time), and the peak resident memory above what
 * the process held after building the models (ru_maxrss: the caches and
 * scratch the call allocated).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kernels/kernels.h"
#include "model/decoder.h"
#include "model/generate.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
  }
  return res * 4; /* 4 KiB pages */
}

static long peak_kb(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

static decoder *make(int V, int L, int C, int H, int F, int T, uint64_t seed) {
  decoder_config c;
  decoder_config_default(&c);
  c.vocab = V, c.n_layers = L, c.d_model = C, c.n_heads = H, c.d_ff = F, c.max_len = T, c.dropout = 0;
  decoder *d = NULL;
  foil_err err = {0};
  if (decoder_new(&d, &c, &err)) {
    fprintf(stderr, "bench_decode: %s\n", err.msg);
    exit(1);
  }
  decoder_init(d, seed, NULL);  /* a CPU decoder: cannot fail */
  return d;
}

static int run(const char *m, decoder *d, decoder *ama, const int32_t *ids, const int *lens, int B, int T,
               int N, int32_t *out, int *out_len, foil_err *err) {
  generate_opts o;
  generate_opts_default(&o);
  o.max_new_tokens = N, o.eos_id = -1, o.seed = 1;
  if (!strcmp(m, "greedy")) return generate_plain(d, ids, lens, B, T, &o, out, out_len, err);
  if (!strcmp(m, "sample")) {
    o.do_sample = 1, o.top_p = 0.95f;
    return generate_plain(d, ids, lens, B, T, &o, out, out_len, err);
  }
  if (!strcmp(m, "beam")) {
    generate_beam_cfg c;
    generate_beam_default(&c);
    return generate_beam(d, ids, lens, B, T, &c, &o, out, out_len, err);
  }
  if (!strcmp(m, "cs")) {
    generate_cs_cfg c;
    generate_cs_default(&c);
    return generate_cs(d, ids, lens, B, T, &c, &o, out, out_len, err);
  }
  if (!strcmp(m, "cd")) {
    generate_cd_cfg c;
    generate_cd_default(&c);
    return generate_cd(d, ama, ids, lens, B, T, &c, &o, out, out_len, err);
  }
  if (!strcmp(m, "dola")) {
    generate_dola_cfg c;
    generate_dola_default(&c);
    o.repetition_penalty = 1.2f;
    return generate_dola(d, ids, lens, B, T, &c, &o, out, out_len, err);
  }
  if (!strcmp(m, "cad") || !strcmp(m, "adacad")) {
    /* two variants per prompt: the whole prompt and its last 8 tokens */
    float w[2];
    generate_cad_weights(0.5f, w);
    generate_combine_cfg c = {.n_variants = 2, .weights = w, .adaptive = !strcmp(m, "adacad")};
    int32_t *v = calloc((size_t)2 * B * T, sizeof *v);
    int *vl = malloc(sizeof(int) * 2 * (size_t)B);
    for (int p = 0; p < B; p++) {
      memcpy(v + (size_t)(2 * p) * T, ids + (size_t)p * T, sizeof(int32_t) * (size_t)T);
      memcpy(v + (size_t)(2 * p + 1) * T, ids + (size_t)p * T + T - 8, sizeof(int32_t) * 8);
      vl[2 * p] = T, vl[2 * p + 1] = 8;
    }
    int rc = generate_combine(d, v, vl, B, T, &c, &o, out, out_len, NULL, err);
    free(v), free(vl);
    return rc;
  }
  return foil_err_set(err, FOIL_EINVAL, "unknown method %s", m);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: bench_decode greedy|sample|beam|cs|cd|cad|adacad|dola BATCH THREADS [NEW] [REPEATS] "
            "[demo|gpt2]\n");
    return 2;
  }
  const char *m = argv[1];
  int B = atoi(argv[2]), threads = atoi(argv[3]), N = argc > 4 ? atoi(argv[4]) : 64, reps = argc > 5 ? atoi(argv[5]) : 3;
  const int T = 32;
  kernels_set_threads(threads);
  const int gpt2 = argc > 6 && !strcmp(argv[6], "gpt2"), V = gpt2 ? 50257 : 8000;
  if (argc > 6 && !gpt2 && strcmp(argv[6], "demo")) {
    fprintf(stderr, "bench_decode: model '%s' is neither demo nor gpt2\n", argv[6]);
    return 2;
  }
  int cd = !strcmp(m, "cd");
  decoder *d = gpt2 ? make(V, 12, 768, 12, 3072, 1024, 1) : make(V, 4, 256, 4, 1024, 128, 1);
  decoder *ama = !cd ? NULL : gpt2 ? make(V, 4, 256, 4, 1024, 1024, 2) : make(V, 2, 128, 2, 512, 128, 2);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * T), *out = malloc(sizeof(int32_t) * (size_t)B * N);
  int *lens = malloc(sizeof(int) * (size_t)B), *out_len = malloc(sizeof(int) * (size_t)B);
  for (int p = 0; p < B; p++) {
    lens[p] = T;
    for (int t = 0; t < T; t++) ids[p * T + t] = (int32_t)(rng_u32(7, (uint64_t)p, (uint64_t)t) % (uint32_t)V);
  }
  long base = rss_kb();
  foil_err err = {0};
  double best = 1e30;
  for (int r = 0; r <= reps; r++) {
    double t0 = now();
    if (run(m, d, ama, ids, lens, B, T, N, out, out_len, &err)) {
      fprintf(stderr, "bench_decode: %s\n", err.msg);
      return 1;
    }
    double dt = now() - t0;
    if (r > 0 && dt < best) best = dt; /* r == 0 warms up */
  }
  long peak = peak_kb();
  printf("{\"model\":\"%s\",\"method\":\"%s\",\"batch\":%d,\"threads\":%d,\"new_tokens\":%d,\"per_step_ms\":%.4f,"
         "\"tokens_per_s\":%.1f,\"mem_kb\":%ld}\n",
         gpt2 ? "gpt2" : "demo", m, B, threads, N, 1000 * best / N, (double)B * N / best, peak - base);
  decoder_destroy(&d);
  decoder_destroy(&ama);
  free(ids), free(out), free(lens), free(out_len);
  return 0;
}
