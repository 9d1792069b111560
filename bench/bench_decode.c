/* bench_decode.c — foil's side of the decoding benchmark (bench/decode.py
 * runs one method per fresh process and prints each against greedy).
 *
 *   bench_decode METHOD BATCH THREADS [NEW_TOKENS] [REPEATS] [MODEL]
 *   bench_decode machine THREADS
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
 * Calls of NEW_TOKENS and of 1 new token alternate: one warm-up of each,
 * then the best of REPEATS (default 3) of each.
 *
 * Prints one line of JSON, the serving benchmarks' two latencies:
 *   ttft_ms   time to the first token: the 1-token call (the prefill and
 *             one step's choice of the batch's first tokens)
 *   tpot_ms   time per output token after it: (best NEW-token call - best
 *             1-token call) / (NEW_TOKENS - 1), one decoding step of the
 *             whole batch
 * tokens/s (BATCH·NEW_TOKENS / the NEW-token call), the peak resident
 * memory above what the process held after building the models (ru_maxrss:
 * the caches and scratch the call allocated), and, for greedy, sampling,
 * contrastive search, CAD, AdaCAD and DoLa, the work of one decoding step
 * at the middle length (32 + NEW/2 positions): "macs" (multiply-adds: the
 * linear layers over every row the method runs, attention, the LM head
 * over the rows it heads) and "bytes" (the weights, read once a step, and
 * the KV cache rows read; 0 for the demo, whose weights stay in cache): a
 * step cannot take less than max(bytes / read bandwidth, macs / FMA peak)
 * on any implementation.
 *
 * "machine" prints this machine's two limits at THREADS threads:
 * {"gbps": read bandwidth (a streaming sum over 1 GiB in 2 MB pages, as
 * foil's weights are; best of 5), "gmacs": fp32 multiply-adds per second
 * (24 independent vector FMA chains per thread, registers only)}.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kernels/kernels.h"
#include "model/decoder.h"
#include "model/devmem.h"
#include "model/decode.h"
#include "model/generate.h"
#include "readbw.h"

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

/* ---- this machine's limits ------------------------------------------------ */

static int machine(void) {
  const size_t n = (size_t)1 << 28; /* 1 GiB of floats */
  float *buf = devmem_alloc_whole(DEVMEM_CPU, n * sizeof(float));
  if (!buf) return 1;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) buf[i] = 1.0f;
  double check;
  const double gbps = readbw_gbps(buf, n, &check);
  devmem_free(DEVMEM_CPU, buf);
  /* FMA peak: 24 independent chains (12 or 16 leave FMA units idle here:
   * ~120 and ~128 G/s on one core against ~133) */
#if defined(__AVX512F__)
  typedef float vec __attribute__((vector_size(64)));
  enum { CH = 24 }; /* of 32 registers */
#elif defined(__AVX__)
  typedef float vec __attribute__((vector_size(32)));
  enum { CH = 12 }; /* of 16 */
#else
  typedef float vec __attribute__((vector_size(16))); /* SSE: one register */
  enum { CH = 12 };
#endif
  enum { LANES = sizeof(vec) / sizeof(float) };
  const long iters = 20000000;
  double fbest = 1e30;
  for (int pass = 0; pass < 3; pass++) {
    double t0 = now();
    float sum = 0;
#pragma omp parallel reduction(+ : sum)
    {
      vec a[CH], m, c;
      for (int k = 0; k < CH; k++)
        for (int l = 0; l < LANES; l++) a[k][l] = 1.0f + 1e-3f * (float)(k + l);
      for (int l = 0; l < LANES; l++) m[l] = 0.999999f, c[l] = 1e-7f;
      for (long it = 0; it < iters; it++) {
        __asm__("" : "+x"(m)); /* keeps the loop from being folded */
#pragma GCC unroll 24
        for (int k = 0; k < CH; k++) a[k] = a[k] * m + c;
      }
      for (int k = 0; k < CH; k++) sum += a[k][0];
    }
    double t = now() - t0;
    check += sum;
    if (t < fbest) fbest = t;
  }
  const double macs = (double)iters * CH * LANES * kernels_get_threads();
  printf("{\"mode\":\"machine\",\"threads\":%d,\"gbps\":%.3f,\"gmacs\":%.2f,\"check\":%.3g}\n",
         kernels_get_threads(), gbps, macs / fbest / 1e9, check);
  return 0;
}

/* One decoding step's work (see the header) for the methods with a speed
 * target, 0 for the others. rows: tokens through the layers; heads: rows
 * through the LM head; crows: cache rows read (contrastive search's k
 * candidates share their prompt's); len, len2: the cache lengths of the
 * two kinds of rows (CAD's second variant is the prompt's last 8 tokens;
 * one kind elsewhere). */
static void step_work(const char *m, const decoder_config *c, size_t nparams, int B, int T, int N,
                      double *macs, double *bytes) {
  double rows, heads, crows, len = T + N / 2.0, len2 = len;
  if (!strcmp(m, "greedy") || !strcmp(m, "sample")) {
    rows = heads = crows = B;
  } else if (!strcmp(m, "cs")) {
    generate_cs_cfg k;
    generate_cs_default(&k);
    rows = (double)B * k.top_k, heads = crows = B;
  } else if (!strcmp(m, "cad") || !strcmp(m, "adacad")) {
    rows = heads = crows = 2.0 * B, len2 = 8 + N / 2.0;
  } else if (!strcmp(m, "dola")) {
    generate_dola_cfg k;
    generate_dola_default(&k);
    int which[64];
    int nc = decode_dola_layers(c->n_layers, k.layers_kind, k.layers, k.n_layers, which, 64, NULL);
    rows = crows = B, heads = (double)B * (nc + 1);
  } else {
    *macs = *bytes = 0;
    return;
  }
  const double C = c->d_model, F = c->d_ff, L = c->n_layers, V = c->vocab;
  const double avg = (len + len2) / 2; /* CAD: half the rows of each kind */
  /* per token per layer: qkv, out, fc1, fc2; attention: q·k and p·v over the cache */
  *macs = rows * L * (4 * C * C + 2 * C * F + 2 * avg * C) + heads * V * C;
  *bytes = 4.0 * nparams + crows * L * 2 * avg * C * 4;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "machine")) {
    kernels_set_threads(atoi(argv[2]));
    return machine();
  }
  if (argc < 4) {
    fprintf(stderr, "usage: bench_decode greedy|sample|beam|cs|cd|cad|adacad|dola BATCH THREADS [NEW] [REPEATS] "
            "[demo|gpt2]\n       bench_decode machine THREADS\n");
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
  if (N < 2) {
    fprintf(stderr, "bench_decode: NEW_TOKENS must be >= 2 (the time per token is measured after the first)\n");
    return 2;
  }
  long base = rss_kb();
  foil_err err = {0};
  double best[2] = {1e30, 1e30}; /* [0]: N new tokens, [1]: one */
  for (int r = 0; r <= reps; r++)
    for (int k = 0; k < 2; k++) {
      double t0 = now();
      if (run(m, d, ama, ids, lens, B, T, k ? 1 : N, out, out_len, &err)) {
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        return 1;
      }
      double dt = now() - t0;
      if (r > 0 && dt < best[k]) best[k] = dt; /* r == 0 warms up */
    }
  long peak = peak_kb();
  double macs, bytes;
  step_work(m, decoder_cfg(d), decoder_num_params(d), B, T, N, &macs, &bytes);
  if (!gpt2) bytes = 0; /* the demo's 13 MB stay in cache: DRAM's bandwidth bounds nothing */
  printf("{\"model\":\"%s\",\"method\":\"%s\",\"batch\":%d,\"threads\":%d,\"new_tokens\":%d,"
         "\"ttft_ms\":%.4f,\"tpot_ms\":%.4f,\"tokens_per_s\":%.1f,\"mem_kb\":%ld,\"macs\":%.6g,\"bytes\":%.6g}\n",
         gpt2 ? "gpt2" : "demo", m, B, threads, N, 1000 * best[1], 1000 * (best[0] - best[1]) / (N - 1),
         (double)B * N / best[0], peak - base, macs, bytes);
  decoder_destroy(&d);
  decoder_destroy(&ama);
  free(ids), free(out), free(lens), free(out_len);
  return 0;
}
