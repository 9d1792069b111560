/* test_kernels.c — unit tests for every kernel in kernels/kernels.h.
 *
 * What it proves:
 *  - every backward is the gradient of its forward: central differences
 *    (one float input perturbed at a time, loss L = sum r_i·out_i summed in
 *    double) match the analytical gradient, with padding masks, causal masks
 *    and replayed (hence deterministic, hence differentiable) dropout;
 *  - exact zeros where the math says so (padded tokens, padded keys, queries
 *    that see no key), and that backwards accumulate (+=);
 *  - forwards match naive double-precision references (embedding, layernorm,
 *    matmul, GELU via libm erf, dropout mask, attention with mask / causal /
 *    dropout, pooling, l2norm, cross-entropy, InfoNCE, sumsq, AdamW);
 *  - the Philox RNG is a pure function of (seed, stream, offset), fill agrees
 *    with single draws, and its mean is sane;
 *  - reductions give the same bits on 1 and 2 threads;
 *  - scan_dot: a row gets the same bits among others as alone, for every
 *    dtype and d (scalar tails of every length), within the float32
 *    summation bound of a double reference;
 *  - bf16 rounding (nearest even) and the bf16-operand linear layer;
 *  - edge cases (fully padded sequences, logits of 1e4) stay finite;
 *  - kernels_set_threads holds on other threads: a pthread started after
 *    it (as foil-serve's loader) reads the count and runs its kernels'
 *    parallel regions with it.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#include <pthread.h>

#include "kernels/kernels.h"
#include "tests/test.h"

/* ---- helpers -------------------------------------------------------------- */

static uint64_t prng_state;
static void prng_seed(uint64_t s) { prng_state = s * 0x9E3779B97F4A7C15ull; }
static double prng_u01(void) { /* splitmix64 */
  uint64_t z = (prng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}
static void fill(float *x, size_t n, double lo, double hi) {
  for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * prng_u01());
}
static void *xalloc(size_t bytes) {
  void *p = calloc(1, bytes ? bytes : 1);
  if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
  return p;
}
static float *falloc(size_t n) { return xalloc(n * sizeof(float)); }
static double *dalloc(size_t n) { return xalloc(n * sizeof(double)); }

static double dot_r(const float *r, const float *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)r[i] * x[i];
  return s;
}
static int all_finite(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}
static int all_zero(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (x[i] != 0.0f) return 0;
  return 1;
}
/* max_i |got-ref| / (1+|ref|): relative for large values, absolute near 0. */
static double max_err(const float *got, const double *ref, size_t n) {
  double w = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(got[i] - ref[i]) / (1.0 + fabs(ref[i]));
    if (isnan(e)) e = INFINITY;
    if (e > w) w = e;
  }
  return w;
}
/* the same against s·ref for a float ref (s = 2 checks accumulation) */
static double max_err_f(const float *got, const float *ref, size_t n, double s) {
  double w = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(got[i] - s * ref[i]) / (1.0 + fabs(s * ref[i]));
    if (isnan(e)) e = INFINITY;
    if (e > w) w = e;
  }
  return w;
}

/* ---- finite differences ------------------------------------------------------
 * For each x[i]: L(x+h) and L(x-h) with the float that was actually stored,
 * numeric = (L+ - L-)/(x+ - x-). Inputs and r are O(1), so gradients are O(1)
 * and the FD noise (float forward ~1e-7 relative, truncation ~eps²) is below
 * 1e-4 (measured worst 8e-5). Tolerance FD_TOL = 1e-3 on |a-n|/max(1,|a|,|n|)
 * per element, plus ||a-n||_2 <= FD_TOL·||n||_2 + 1e-4·sqrt(n) over the whole buffer (catches a
 * wrong factor on gradients that happen to be small). A missing term, wrong
 * sign or wrong scale in a backward gives errors of order 1e-1 and fails. */
#define FD_TOL 1e-3
typedef double (*loss_fn)(void *ctx);

static void fd_check(const char *what, loss_fn f, void *ctx, float *x, size_t n,
                     const float *grad, float eps) {
  double worst = 0, se = 0, sn = 0, wa = 0, wn = 0;
  size_t wi = 0;
  for (size_t i = 0; i < n; i++) {
    float x0 = x[i];
    x[i] = x0 + eps;
    float hp = x[i];
    double lp = f(ctx);
    x[i] = x0 - eps;
    float hm = x[i];
    double lm = f(ctx);
    x[i] = x0;
    double num = (lp - lm) / ((double)hp - (double)hm), a = grad[i];
    double err = fabs(a - num) / fmax(1.0, fmax(fabs(a), fabs(num)));
    if (isnan(err)) err = INFINITY;
    if (err > worst) { worst = err; wi = i; wa = a; wn = num; }
    se += (a - num) * (a - num);
    sn += num * num;
  }
#ifdef FD_VERBOSE
  printf("  fd %-34s worst %.2e  rel-norm %.2e\n", what, worst, sqrt(se / (sn + 1e-30)));
#endif
  CHECKF(worst <= FD_TOL, "%s: element %zu analytic %.7g numeric %.7g", what,
         wi, wa, wn);
  CHECKF(sqrt(se) <= FD_TOL * sqrt(sn) + 1e-4 * sqrt((double)n),
         "%s: ||analytic-numeric|| %.3g, ||numeric|| %.3g", what, sqrt(se),
         sqrt(sn));
}

/* ---- runtime, rng ---------------------------------------------------------- */

static void test_runtime(void) {
  const char *be = kernels_backend();
  CHECK(be != NULL && be[0] != '\0');
  /* the startup warning: exactly when the OpenBLAS loaded is not OpenMP's */
  const char *bw = kernels_backend_warning();
  CHECKF((bw == NULL) == (strstr(be, "OpenMP flavour") != NULL), "backend %s, warning %s", be, bw ? bw : "none");
  int n = kernels_get_threads();
  CHECK(n >= 1);
  int m = kernels_set_threads(1);
  CHECK(m == 1 && kernels_get_threads() == 1);
  kernels_set_threads(n);
  CHECK(kernels_get_threads() == n);
}

/* On a new pthread: kernels_get_threads, then after one kernel call the
 * thread's own OpenMP setting and the team a parallel region gets. */
static void *threads_probe(void *arg) {
  int *out = arg;
  out[0] = kernels_get_threads();
  float a[4] = {1, 2, 3, 4}, b[4] = {1, 1, 1, 1};
  add_inplace(a, b, 4);
  out[1] = omp_get_max_threads();
  int team = 0;
#pragma omp parallel
  {
#pragma omp single
    team = omp_get_num_threads();
  }
  out[2] = team;
  return NULL;
}

/* kernels_set_threads in this thread holds in a thread started after it:
 * 1 (the OpenMP default there would be all cores), then 2 where there are
 * two cores or more. */
static void test_threads_other_pthread(void) {
  const int n0 = kernels_get_threads(), procs = omp_get_num_procs();
  for (int want = 1; want <= (procs >= 2 ? 2 : 1); want++) {
    kernels_set_threads(want);
    int got[3] = {0, 0, 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, threads_probe, got) == 0 && pthread_join(th, NULL) == 0);
    CHECKF(got[0] == want && got[1] == want && got[2] == want,
           "set %d here: a new thread reads %d, runs with %d, gets a team of %d (%d cores)", want, got[0],
           got[1], got[2], procs);
  }
  kernels_set_threads(n0);
}

static void test_rng(void) {
  enum { N = 100000 };
  float *u = falloc(N);
  rng_uniform_fill(u, N, 42, 3, 0);
  double mean = 0;
  int in_range = 1, bits24 = 1, fill_eq = 1;
  for (int i = 0; i < N; i++) {
    in_range &= u[i] >= 0.0f && u[i] < 1.0f;
    double s = (double)u[i] * 16777216.0;
    bits24 &= s == floor(s);
    mean += u[i];
    if (i < 1000) fill_eq &= u[i] == rng_uniform(42, 3, (uint64_t)i);
  }
  mean /= N;
  CHECK(in_range);
  CHECK(bits24);
  CHECK(fill_eq);
  CHECKF(fabs(mean - 0.5) < 0.01, "mean %.5f", mean);
  /* fill at unaligned and large offsets equals single draws */
  const uint64_t offs[] = {1, 3, 5, 6, (1ull << 33) + 7, 0xFFFFFFFFull - 2};
  for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
    float buf[13];
    rng_uniform_fill(buf, 13, 7, 11, offs[k]);
    int eq = 1;
    for (int i = 0; i < 13; i++)
      eq &= buf[i] == rng_uniform(7, 11, offs[k] + (uint64_t)i);
    CHECKF(eq, "fill offset %llu", (unsigned long long)offs[k]);
  }
  /* Philox4x32-10 known answer (Random123 KAT): counter 0, key 0 */
  CHECK(rng_u32(0, 0, 0) == 0x6627e8d5u && rng_u32(0, 0, 1) == 0xe169c58du &&
        rng_u32(0, 0, 2) == 0xbc57ac4cu && rng_u32(0, 0, 3) == 0x9b00dbd8u);
  /* pure function; seed and stream matter */
  CHECK(rng_u32(1, 2, 3) == rng_u32(1, 2, 3));
  CHECK(rng_uniform(9, 8, 7) == rng_uniform(9, 8, 7));
  int same_stream = 0, same_seed = 0, same_next = 0;
  for (uint64_t i = 0; i < 1000; i++) {
    same_stream += rng_u32(5, 0, i) == rng_u32(5, 1, i);
    same_seed += rng_u32(5, 0, i) == rng_u32(6, 0, i);
    same_next += rng_u32(5, 0, i) == rng_u32(5, 0, i + 1);
  }
  CHECKF(same_stream == 0 && same_seed == 0 && same_next == 0,
         "collisions stream %d seed %d offset %d", same_stream, same_seed,
         same_next);
  free(u);
}

/* ---- embedding ---------------------------------------------------------------- */

typedef struct { float *out, *wte, *wpe, *r; const int32_t *ids; int B, T, C; } EmbedCtx;
static double embed_loss(void *p) {
  EmbedCtx *c = p;
  embed_forward(c->out, c->ids, c->wte, c->wpe, c->B, c->T, c->C);
  return dot_r(c->r, c->out, (size_t)c->B * c->T * c->C);
}

static void test_embed(void) {
  enum { B = 2, T = 4, C = 8, V = 5 };
  const int32_t ids[B * T] = {1, 3, 1, 0, 4, 1, 2, 1}; /* repeated ids */
  float wte[V * C], wpe[T * C], out[B * T * C], r[B * T * C];
  float dwte[V * C] = {0}, dwpe[T * C] = {0}, d2[V * C] = {0}, d3[T * C] = {0};
  prng_seed(1);
  fill(wte, V * C, -1, 1); fill(wpe, T * C, -1, 1); fill(r, B * T * C, -1, 1);
  embed_forward(out, ids, wte, wpe, B, T, C);
  int ok = 1;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++)
        ok &= out[(b * T + t) * C + c] == wte[ids[b * T + t] * C + c] + wpe[t * C + c];
  CHECK(ok);
  embed_backward(dwte, dwpe, r, ids, B, T, C);
  EmbedCtx ctx = {.out = falloc(B * T * C), .wte = wte, .wpe = wpe, .r = r,
                  .ids = ids, .B = B, .T = T, .C = C};
  fd_check("embed dwte", embed_loss, &ctx, wte, V * C, dwte, 1e-2f);
  fd_check("embed dwpe", embed_loss, &ctx, wpe, T * C, dwpe, 1e-2f);
  /* either gradient may be NULL */
  embed_backward(d2, NULL, r, ids, B, T, C);
  embed_backward(NULL, d3, r, ids, B, T, C);
  CHECK(max_err_f(d2, dwte, V * C, 1.0) <= 1e-6);
  CHECK(max_err_f(d3, dwpe, T * C, 1.0) <= 1e-6);
  free(ctx.out);
}

/* ---- layernorm ----------------------------------------------------------------- */

typedef struct { float *out, *mean, *rstd, *inp, *w, *b, *r; int N, C; float eps; } LnCtx;
static double ln_loss(void *p) {
  LnCtx *c = p;
  layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, c->eps);
  return dot_r(c->r, c->out, (size_t)c->N * c->C);
}

static void test_layernorm(void) {
  enum { N = 3, C = 10 };
  const float eps = 1e-5f;
  float inp[N * C], w[C], b[C], out[N * C], mean[N], rstd[N], r[N * C];
  float dinp[N * C] = {0}, dw[C] = {0}, db[C] = {0};
  double oref[N * C], mref[N], rref[N];
  prng_seed(2);
  fill(inp, N * C, -1, 1); fill(w, C, 0.5, 1.5); fill(b, C, -0.5, 0.5);
  fill(r, N * C, -1, 1);
  for (int c = 0; c < C; c++) inp[2 * C + c] += 2.0f; /* a row with a large mean */
  layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps);
  for (int n = 0; n < N; n++) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += inp[n * C + c];
    m /= C;
    for (int c = 0; c < C; c++) v += (inp[n * C + c] - m) * (inp[n * C + c] - m);
    v /= C; /* biased */
    mref[n] = m;
    rref[n] = 1.0 / sqrt(v + eps);
    for (int c = 0; c < C; c++)
      oref[n * C + c] = (inp[n * C + c] - m) * rref[n] * w[c] + b[c];
  }
  CHECKF(max_err(mean, mref, N) <= 1e-6, "mean %.3g", max_err(mean, mref, N));
  CHECKF(max_err(rstd, rref, N) <= 1e-5, "rstd %.3g", max_err(rstd, rref, N));
  CHECKF(max_err(out, oref, N * C) <= 1e-5, "out %.3g", max_err(out, oref, N * C));

  layernorm_backward(dinp, dw, db, r, inp, w, mean, rstd, N, C);
  CHECK(all_finite(dinp, N * C));
  /* a second call doubles every gradient (accumulation) */
  float di2[N * C], dw2[C], db2[C];
  memcpy(di2, dinp, sizeof di2); memcpy(dw2, dw, sizeof dw2); memcpy(db2, db, sizeof db2);
  layernorm_backward(di2, dw2, db2, r, inp, w, mean, rstd, N, C);
  CHECK(max_err_f(di2, dinp, N * C, 2.0) <= 1e-6);
  CHECK(max_err_f(dw2, dw, C, 2.0) <= 1e-6);
  CHECK(max_err_f(db2, db, C, 2.0) <= 1e-6);

  float fo[N * C], fm[N], fr[N];
  LnCtx ctx = {.out = fo, .mean = fm, .rstd = fr, .inp = inp, .w = w, .b = b,
               .r = r, .N = N, .C = C, .eps = eps};
  fd_check("layernorm dinp", ln_loss, &ctx, inp, N * C, dinp, 1e-2f);
  fd_check("layernorm dw", ln_loss, &ctx, w, C, dw, 1e-2f);
  fd_check("layernorm db", ln_loss, &ctx, b, C, db, 1e-2f);
}

/* ---- matmul ------------------------------------------------------------------- */

typedef struct { float *out, *inp, *W, *b, *r; int N, C, OC; } MmCtx;
static double mm_loss(void *p) {
  MmCtx *c = p;
  matmul_forward(c->out, c->inp, c->W, c->b, c->N, c->C, c->OC);
  return dot_r(c->r, c->out, (size_t)c->N * c->OC);
}

static void test_matmul(void) {
  enum { N = 4, C = 6, OC = 5 };
  float inp[N * C], W[OC * C], b[OC], out[N * OC], r[N * OC];
  double ref[N * OC];
  prng_seed(3);
  fill(inp, N * C, -1, 1); fill(W, OC * C, -1, 1); fill(b, OC, -1, 1);
  fill(r, N * OC, -1, 1);
  for (int with_bias = 0; with_bias < 2; with_bias++) {
    const float *bb = with_bias ? b : NULL;
    matmul_forward(out, inp, W, bb, N, C, OC);
    for (int n = 0; n < N; n++)
      for (int o = 0; o < OC; o++) {
        double s = bb ? bb[o] : 0.0;
        for (int c = 0; c < C; c++) s += (double)inp[n * C + c] * W[o * C + c];
        ref[n * OC + o] = s;
      }
    CHECKF(max_err(out, ref, N * OC) <= 1e-5, "bias %d: %.3g", with_bias,
           max_err(out, ref, N * OC));

    float dinp[N * C] = {0}, dW[OC * C] = {0}, db[OC] = {0};
    matmul_backward(dinp, dW, with_bias ? db : NULL, r, inp, W, N, C, OC);
    float fo[N * OC];
    MmCtx ctx = {.out = fo, .inp = inp, .W = W, .b = b, .r = r, .N = N, .C = C, .OC = OC};
    ctx.b = with_bias ? b : NULL;
    fd_check("matmul dinp", mm_loss, &ctx, inp, N * C, dinp, 1e-2f);
    fd_check("matmul dW", mm_loss, &ctx, W, OC * C, dW, 1e-2f);
    if (with_bias) {
      fd_check("matmul db", mm_loss, &ctx, b, OC, db, 1e-2f);
      /* accumulation: a second call doubles; NULL skips a gradient */
      float di2[N * C], dW2[OC * C], db2[OC];
      memcpy(di2, dinp, sizeof di2); memcpy(dW2, dW, sizeof dW2); memcpy(db2, db, sizeof db2);
      matmul_backward(di2, dW2, db2, r, inp, W, N, C, OC);
      CHECK(max_err_f(di2, dinp, N * C, 2.0) <= 1e-6);
      CHECK(max_err_f(dW2, dW, OC * C, 2.0) <= 1e-6);
      CHECK(max_err_f(db2, db, OC, 2.0) <= 1e-6);
      float only_db[OC] = {0}, only_di[N * C] = {0}, only_dW[OC * C] = {0};
      matmul_backward(NULL, NULL, only_db, r, inp, W, N, C, OC);
      matmul_backward(only_di, NULL, NULL, r, inp, W, N, C, OC);
      matmul_backward(NULL, only_dW, NULL, r, inp, W, N, C, OC);
      CHECK(max_err_f(only_db, db, OC, 1.0) <= 1e-6);
      CHECK(max_err_f(only_di, dinp, N * C, 1.0) <= 1e-6);
      CHECK(max_err_f(only_dW, dW, OC * C, 1.0) <= 1e-6);
    }
  }
}

/* The few-rows path (N <= 64: no sgemm; groups of up to 6 rows) and sgemm
 * around it, against a double reference, with lane and 4-row-block
 * remainders; a row's bits do not depend on the rows beside it nor on the
 * thread count. */
/* The bf16-operand linear layer (kernels/cpu/bf16.c): rounding to nearest
 * even, widening exact; forward, backward and the GELU-fused forward equal
 * double-precision sums of the widened operands (fp32 accumulation: 1e-5
 * relative to the sum of |terms|), and the backward accumulates. */
static void test_matmul_bf16(void) {
  enum { N = 5, C = 37, OC = 9 };
  const float special[] = {1.0f, 1.00390625f, 1.01171875f, -2.0f, INFINITY, 3.4e38f, -0.0f};
  const uint16_t bits[] = {0x3f80, 0x3f80, 0x3f82, 0xc000, 0x7f80, 0x7f80, 0x8000};
  uint16_t h[7];
  f32_to_bf16(h, special, 7);
  for (int i = 0; i < 7; i++) CHECKF(h[i] == bits[i], "bf16(%g) = %#x, want %#x", special[i], h[i], bits[i]);
  float nan = NAN, back;
  f32_to_bf16(h, &nan, 1);
  CHECK((h[0] & 0x7fc0) == 0x7fc0);
  f32_to_bf16(h, &special[2], 1);
  bf16_to_f32(&back, h, 1);
  CHECK(back == 1.015625f); /* 0x3f82 */

  float x[N * C], w[OC * C], b[OC], g[N * OC], xr[N * C], wr[OC * C], gr[N * OC];
  uint16_t xh[N * C], wh[OC * C], gh[N * OC];
  prng_seed(17);
  fill(x, N * C, -2, 2); fill(w, OC * C, -1, 1); fill(b, OC, -1, 1); fill(g, N * OC, -1, 1);
  f32_to_bf16(xh, x, N * C); f32_to_bf16(wh, w, OC * C); f32_to_bf16(gh, g, N * OC);
  bf16_to_f32(xr, xh, N * C); bf16_to_f32(wr, wh, OC * C); bf16_to_f32(gr, gh, N * OC);
  float out[N * OC], pre[N * OC], gel[N * OC], ref_gelu[N * OC];
  double ref[N * OC], mag[N * OC];
  matmul_forward_bf16(out, xh, wh, b, N, C, OC);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = b[o], m = fabs(b[o]);
      for (int c = 0; c < C; c++) s += (double)xr[n * C + c] * wr[o * C + c], m += fabs((double)xr[n * C + c] * wr[o * C + c]);
      ref[n * OC + o] = s, mag[n * OC + o] = m;
    }
  int ok = 1;
  for (int i = 0; i < N * OC; i++) ok &= fabs(out[i] - ref[i]) <= 1e-5 * mag[i];
  CHECKF(ok, "matmul_forward_bf16 = the widened operands' product");
  matmul_gelu_forward_bf16(gel, pre, xh, wh, b, N, C, OC);
  gelu_forward(ref_gelu, out, N * OC);
  CHECK(memcmp(pre, out, sizeof pre) == 0 && memcmp(gel, ref_gelu, sizeof gel) == 0);

  float dx[N * C], dw[OC * C], db[OC];
  for (int pass = 1; pass <= 2; pass++) { /* the second pass checks += */
    if (pass == 1) memset(dx, 0, sizeof dx), memset(dw, 0, sizeof dw), memset(db, 0, sizeof db);
    matmul_backward_bf16(dx, dw, db, gh, g, xh, wh, N, C, OC);
    ok = 1;
    for (int n = 0; n < N; n++)
      for (int c = 0; c < C; c++) {
        double s = 0, m = 0;
        for (int o = 0; o < OC; o++) s += (double)gr[n * OC + o] * wr[o * C + c], m += fabs((double)gr[n * OC + o] * wr[o * C + c]);
        ok &= fabs(dx[n * C + c] - pass * s) <= 2e-5 * pass * m;
      }
    for (int o = 0; o < OC; o++)
      for (int c = 0; c < C; c++) {
        double s = 0, m = 0;
        for (int n = 0; n < N; n++) s += (double)gr[n * OC + o] * xr[n * C + c], m += fabs((double)gr[n * OC + o] * xr[n * C + c]);
        ok &= fabs(dw[o * C + c] - pass * s) <= 2e-5 * pass * m;
      }
    for (int o = 0; o < OC; o++) {
      double s = 0, m = 0;
      for (int n = 0; n < N; n++) s += g[n * OC + o], m += fabs(g[n * OC + o]);
      ok &= fabs(db[o] - pass * s) <= 2e-5 * pass * m;
    }
    CHECKF(ok, "matmul_backward_bf16 pass %d: dinp, dW (bf16 dout), db (fp32 dout)", pass);
  }
  float keep = dx[0];
  matmul_backward_bf16(NULL, NULL, NULL, gh, g, xh, wh, N, C, OC); /* all skipped */
  CHECK(dx[0] == keep);
}

/* A long row: C = 768·3400 (2.6 M) with one input row, so the prefetch
 * schedule's product q·npf (call index × prefetch lines, 3399 × 652800)
 * passes int's range; it is int64 (UBSan's signed-overflow check catches
 * the int version). Two blocks of 4 outputs: the first prefetches the
 * second. Checked against double. */
static void test_matmul_long_rows(void) {
  const int N = 1, C = 768 * 3400, OC = 8;
  prng_seed(8);
  float *inp = falloc((size_t)N * C), *W = falloc((size_t)OC * C), out[8];
  fill(inp, (size_t)N * C, -1, 1);
  fill(W, (size_t)OC * C, -1, 1);
  matmul_forward(out, inp, W, NULL, N, C, OC);
  int bad = 0;
  for (int o = 0; o < OC; o++) {
    double s = 0, sa = 0;
    for (size_t c = 0; c < (size_t)C; c++) {
      double t = (double)inp[c] * W[(size_t)o * C + c];
      s += t, sa += fabs(t);
    }
    bad += !(fabs(out[o] - s) <= 1e-6 * sa);
  }
  CHECKF(bad == 0, "%d of %d outputs off at C %d", bad, OC, C);
  free(inp);
  free(W);
}

static void test_matmul_small_rows(void) {
  static const int shapes[][3] = {{1, 37, 9}, {2, 16, 4}, {7, 64, 13}, {12, 50, 8},
                                  {13, 40, 6}, {3, 300, 70}, {16, 33, 5}, {40, 96, 11},
                                  {64, 20, 7}, {65, 40, 6}, {80, 33, 9},
                                  /* column chunks (C past 768), a tail of 4 */
                                  {9, 1700, 13}, {40, 3100, 6}};
  prng_seed(5);
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    const int N = shapes[k][0], C = shapes[k][1], OC = shapes[k][2];
    float *inp = malloc(sizeof(float) * N * C), *W = malloc(sizeof(float) * OC * C);
    float *b = malloc(sizeof(float) * OC), *out = malloc(sizeof(float) * N * OC);
    float *one = malloc(sizeof(float) * OC), *t2 = malloc(sizeof(float) * N * OC);
    double *ref = malloc(sizeof(double) * N * OC);
    fill(inp, N * C, -1, 1); fill(W, OC * C, -1, 1); fill(b, OC, -1, 1);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
      const float *bb = with_bias ? b : NULL;
      matmul_forward(out, inp, W, bb, N, C, OC);
      for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
          double s = bb ? bb[o] : 0.0;
          for (int c = 0; c < C; c++) s += (double)inp[n * C + c] * W[o * C + c];
          ref[n * OC + o] = s;
        }
      CHECKF(max_err(out, ref, N * OC) <= 2e-5 * sqrt((double)C), "N %d C %d OC %d bias %d: %.3g",
             N, C, OC, with_bias, max_err(out, ref, N * OC));
      if (N <= 64)
        for (int n = 0; n < N; n++) {
          matmul_forward(one, inp + (size_t)n * C, W, bb, 1, C, OC);
          CHECKF(memcmp(one, out + (size_t)n * OC, sizeof(float) * OC) == 0,
                 "N %d: row %d alone differs", N, n);
        }
      int orig = kernels_get_threads();
      kernels_set_threads(orig == 2 ? 1 : 2);
      matmul_forward(t2, inp, W, bb, N, C, OC);
      kernels_set_threads(orig);
      if (N <= 64) CHECKF(memcmp(t2, out, sizeof(float) * N * OC) == 0, "N %d: 2 threads differ", N);
    }
    free(inp), free(W), free(b), free(out), free(one), free(t2), free(ref);
  }
}

/* max_of against one compare chain: lane remainders, -inf rows, NaNs skipped */
static void test_max_of(void) {
  static const size_t ns[] = {0, 1, 15, 16, 17, 100, 50257};
  float *x = malloc(sizeof(float) * 50257);
  prng_seed(8);
  for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
    size_t n = ns[k];
    for (int pass = 0; pass < 3; pass++) {
      fill(x, n, -30, 5);
      if (pass == 1)
        for (size_t i = 0; i < n; i++) x[i] = -INFINITY;
      if (pass == 2 && n > 3) x[n / 2] = NAN, x[n - 1] = 7.5f;
      float ref = -INFINITY;
      for (size_t i = 0; i < n; i++)
        if (x[i] > ref) ref = x[i];
      CHECKF(max_of(x, n) == ref, "n %zu pass %d: %g vs %g", n, pass, max_of(x, n), ref);
    }
  }
  free(x);
}

/* exp_sum against libm in double: lanes and remainder, -inf entries */
static void test_exp_sum(void) {
  static const size_t ns[] = {1, 7, 8, 9, 100, 8003};
  float *x = malloc(sizeof(float) * 8003);
  prng_seed(9);
  for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
    size_t n = ns[k];
    fill(x, n, -30, 5);
    if (n > 8) x[3] = x[n - 1] = -INFINITY;
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    double ref = 0;
    for (size_t i = 0; i < n; i++) ref += exp((double)x[i] - m);
    double got = exp_sum(x, n, m);
    CHECKF(fabs(got - ref) <= 3e-7 * ref, "n %zu: %.9g vs %.9g", n, got, ref);
  }
  free(x);
}

/* softmax_mix_kl against the same sum in double with libm: vocabulary
 * sizes with lane remainders, logit spreads of 1 to 20, one row's mass on
 * the other's tail, and -inf entries (both rows: no term); then spreads of
 * 200 and 2000 (early exits without the final norm: log-probabilities
 * down to -4000, where a floor at -87 used to cap the terms) within the
 * documented bound 2e-6 + 4e-7·sum m·(|log p| + |log q|) (*w gets the
 * sum); and the review's DoLa case, where the floor picked the wrong layer. */
static double mix_kl_ref(const float *a, const float *b, size_t n, double *la, double *lb, double *w) {
  double ma = -INFINITY, mb = -INFINITY, sa = 0, sb = 0, j = 0;
  for (size_t i = 0; i < n; i++) ma = fmax(ma, a[i]), mb = fmax(mb, b[i]);
  for (size_t i = 0; i < n; i++) sa += exp(a[i] - ma), sb += exp(b[i] - mb);
  *la = log(sa) + ma, *lb = log(sb) + mb;
  if (w) *w = 0;
  for (size_t i = 0; i < n; i++) {
    double lp = a[i] - *la, lq = b[i] - *lb, m = 0.5 * (exp(lp) + exp(lq));
    if (m > 0) j += 0.5 * m * (2 * log(m) - lp - lq);
    if (m > 0 && w) *w += m * (fabs(lp) + fabs(lq));
  }
  return j;
}

static void test_softmax_mix_kl(void) {
  static const size_t ns[] = {1, 7, 9, 100, 8000, 50257};
  static const float spread[] = {1, 5, 20, 200, 2000};
  float *a = malloc(sizeof(float) * 50257), *b = malloc(sizeof(float) * 50257);
  prng_seed(17);
  for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
    for (int s = 0; s < 5; s++) {
      size_t n = ns[k];
      fill(a, n, -spread[s], spread[s]);
      for (size_t i = 0; i < n; i++) b[i] = 0.7f * a[i] + (float)(2 * prng_u01() - 1) * spread[s] * 0.5f;
      if (n > 9) a[n - 1] = b[n - 1] = -INFINITY, a[3] = 30 + spread[s]; /* b has little mass at 3 */
      if (s >= 3) /* a's mass where b's log-probability is about -spread */
        for (size_t i = 0; i < n; i += 2) b[i] = -1.5f * spread[s];
      double la, lb, w, ref = mix_kl_ref(a, b, n, &la, &lb, &w);
      double got = softmax_mix_kl(a, la, b, lb, n);
      CHECKF(isfinite(got) && fabs(got - ref) <= 2e-6 + 4e-7 * w, "n %zu spread %g: %.9g vs %.9g (bound %.3g)",
             n, (double)spread[s], got, ref, 2e-6 + 4e-7 * w);
    }
  fill(a, 100, -1, 1);
  double la, lb;
  mix_kl_ref(a, a, 100, &la, &lb, NULL);
  CHECKF(fabs(softmax_mix_kl(a, la, a, lb, 100)) <= 1e-7, "same rows: %g", softmax_mix_kl(a, la, a, lb, 100));
  /* the review's case: final [5,0,0,0], layer A [0,1000,990,990], layer B
   * [0,100,0,0]; HF's JSD (exact log_softmax): A 245.63, B 25.39, so DoLa
   * takes A (a floor at -87 gave 21.90 vs 22.16: B) */
  const float fin[4] = {5, 0, 0, 0}, la_[4] = {0, 1000, 990, 990}, lb_[4] = {0, 100, 0, 0};
  double lf, l1, l2, w;
  double ra = mix_kl_ref(fin, la_, 4, &lf, &l1, &w), rb = mix_kl_ref(fin, lb_, 4, &lf, &l2, NULL);
  double ja = softmax_mix_kl(fin, lf, la_, l1, 4), jb = softmax_mix_kl(fin, lf, lb_, l2, 4);
  CHECKF(fabs(ra - 245.6317) < 1e-3 && fabs(rb - 25.3869) < 1e-3, "reference %.6f %.6f", ra, rb);
  CHECKF(fabs(ja - ra) <= 2e-6 + 4e-7 * w && fabs(jb - rb) <= 1e-5 && ja > jb, "A %.9g vs %.9g, B %.9g vs %.9g",
         ja, ra, jb, rb);
  /* -inf against a finite log-probability: +inf (HF's kl_div too) */
  const float ninf[4] = {-INFINITY, 0, 0, 0};
  mix_kl_ref(fin, ninf, 4, &lf, &l1, NULL);
  CHECK(softmax_mix_kl(fin, lf, ninf, l1, 4) == INFINITY);
  free(a), free(b);
}

/* ---- GELU, residual, scale ------------------------------------------------------ */

typedef struct { float *out, *inp, *r; size_t n; } EwCtx;
static double gelu_loss(void *p) {
  EwCtx *c = p;
  gelu_forward(c->out, c->inp, c->n);
  return dot_r(c->r, c->out, c->n);
}

static void test_gelu(void) {
  enum { N = 81, NF = 32 };
  float x[N], out[N], ones[N], d[N] = {0};
  double ref[N], dref[N];
  for (int i = 0; i < N; i++) x[i] = (float)(-8.0 + 0.2 * i); /* includes 0 */
  x[N - 1] = 30.0f; x[0] = -30.0f;
  for (int i = 0; i < N; i++) ones[i] = 1.0f;
  gelu_forward(out, x, N);
  gelu_backward(d, x, out, ones, N);
  for (int i = 0; i < N; i++) {
    double xi = x[i], cdf = 0.5 * (1.0 + erf(xi / sqrt(2.0)));
    ref[i] = xi * cdf;
    dref[i] = cdf + xi * exp(-0.5 * xi * xi) / sqrt(2.0 * 3.14159265358979323846);
  }
  CHECKF(max_err(out, ref, N) <= 1e-6, "gelu forward %.3g", max_err(out, ref, N));
  CHECKF(max_err(d, dref, N) <= 2e-6, "gelu derivative %.3g", max_err(d, dref, N));
  CHECK(all_finite(out, N) && all_finite(d, N));

  /* dense grid, both tails: relative error of GELU and absolute error of its
   * derivative. For x < -4 the float exp argument (x²/2 up to 72) carries a
   * rounding of ~4e-6 relative into the result, hence the wider bound there;
   * torch's float form 0.5·x·(1+erf(x/√2)) cancels catastrophically in that
   * tail (relative errors of 1e-1 and worse), the erfc form does not. */
  enum { NG = 24 * 1024 + 1 };
  float *gx = falloc(NG), *go = falloc(NG), *gd = falloc(NG), *g1 = falloc(NG);
  for (int i = 0; i < NG; i++) gx[i] = (float)(-12.0 + i / 1024.0), g1[i] = 1.0f, gd[i] = 0.0f;
  gelu_forward(go, gx, NG);
  gelu_backward(gd, gx, go, g1, NG);
  double worst_rel = 0, worst_tail = 0, worst_d = 0;
  for (int i = 0; i < NG; i++) {
    double xi = gx[i], cdf = 0.5 * erfc(-xi / sqrt(2.0)), g = xi * cdf;
    double dg = cdf + xi * exp(-0.5 * xi * xi) / sqrt(2.0 * 3.14159265358979323846);
    double rel = g != 0.0 ? fabs(go[i] - g) / fabs(g) : fabs(go[i]);
    if (xi >= -4.0) worst_rel = fmax(worst_rel, rel);
    else worst_tail = fmax(worst_tail, rel);
    worst_d = fmax(worst_d, fabs(gd[i] - dg));
  }
  CHECKF(worst_rel <= 2e-6, "gelu forward relative error %.3g on [-4,12]", worst_rel);
  CHECKF(worst_tail <= 2e-5, "gelu forward relative error %.3g on [-12,-4)", worst_tail);
  CHECKF(worst_d <= 2e-6, "gelu derivative error %.3g on [-12,12]", worst_d);
  free(gx); free(go); free(gd); free(g1);

  float xf[NF], r[NF], fo[NF], df[NF] = {0};
  prng_seed(4);
  fill(xf, NF, -3, 3); fill(r, NF, -1, 1);
  gelu_forward(fo, xf, NF);
  gelu_backward(df, xf, fo, r, NF);
  EwCtx ctx = {.out = fo, .inp = xf, .r = r, .n = NF};
  fd_check("gelu dinp", gelu_loss, &ctx, xf, NF, df, 1e-2f);
}

static void test_residual_scale(void) {
  enum { N = 37 };
  float a[N], b[N], out[N], acc[N], x[N];
  prng_seed(5);
  fill(a, N, -2, 2); fill(b, N, -2, 2);
  residual_forward(out, a, b, N);
  memcpy(acc, b, sizeof acc);
  add_inplace(acc, a, N);
  memcpy(x, a, sizeof x);
  scale_inplace(x, N, 0.37f);
  int ok_res = 1, ok_add = 1, ok_scale = 1;
  for (int i = 0; i < N; i++) {
    ok_res &= out[i] == a[i] + b[i];
    ok_add &= acc[i] == b[i] + a[i];
    ok_scale &= fabs(x[i] - (double)a[i] * 0.37f) <= 1e-7 * fabs(a[i]);
  }
  CHECK(ok_res); CHECK(ok_add); CHECK(ok_scale);
  /* residual's gradient is the identity for both operands */
  memcpy(acc, a, sizeof acc);
  add_inplace(acc, b, N);
  add_inplace(acc, b, N);
  int ok = 1;
  for (int i = 0; i < N; i++) ok &= fabs(acc[i] - (a[i] + 2.0 * b[i])) <= 1e-6;
  CHECK(ok);
}

/* ---- dropout ------------------------------------------------------------------- */

typedef struct { float *out, *inp, *r; size_t n; float p; } DropCtx;
static double drop_loss(void *p) {
  DropCtx *c = p;
  dropout_forward(c->out, c->inp, c->n, c->p, 99, 5, 0);
  return dot_r(c->r, c->out, c->n);
}

static void test_dropout(void) {
  enum { N = 20000, NF = 40 };
  const float p = 0.3f;
  float *x = falloc(N), *out = falloc(N), *out2 = falloc(N), *d = falloc(N);
  prng_seed(6);
  fill(x, N, 0.5, 1.5); /* nonzero, so a zero output means dropped */
  dropout_forward(out, x, N, p, 99, 5, 0);
  int zeros = 0, mask_ok = 1, scale_ok = 1;
  for (int i = 0; i < N; i++) {
    int keep = dropout_kept(99, 5, (uint64_t)i, p);
    zeros += out[i] == 0.0f;
    mask_ok &= keep == (out[i] != 0.0f);
    if (keep) scale_ok &= fabs(out[i] - x[i] / (1.0 - p)) <= 1e-6 * out[i];
  }
  CHECKF(fabs((double)zeros / N - p) < 0.02, "dropped fraction %.4f", (double)zeros / N);
  CHECK(mask_ok);
  CHECK(scale_ok);
  /* same arguments: same output; other stream: other mask; in place */
  dropout_forward(out2, x, N, p, 99, 5, 0);
  CHECK(memcmp(out, out2, N * sizeof(float)) == 0);
  dropout_forward(out2, x, N, p, 99, 6, 0);
  CHECK(memcmp(out, out2, N * sizeof(float)) != 0);
  memcpy(out2, x, N * sizeof(float));
  dropout_forward(out2, out2, N, p, 99, 5, 0);
  CHECK(memcmp(out, out2, N * sizeof(float)) == 0);
  /* backward applies the same mask: dinp == forward(dout) for dinp = 0 */
  dropout_backward(d, x, N, p, 99, 5, 0);
  CHECK(max_err_f(d, out, N, 1.0) <= 1e-6);
  /* p = 0 is an exact copy, and its backward adds dout */
  dropout_forward(out2, x, N, 0.0f, 99, 5, 0);
  CHECK(memcmp(out2, x, N * sizeof(float)) == 0);
  memset(d, 0, N * sizeof(float));
  dropout_backward(d, x, N, 0.0f, 99, 5, 0);
  CHECK(memcmp(d, x, N * sizeof(float)) == 0);
  /* finite differences: with a fixed (seed, stream) dropout is linear */
  float xf[NF], r[NF], fo[NF], df[NF] = {0};
  fill(xf, NF, -1, 1); fill(r, NF, -1, 1);
  dropout_backward(df, r, NF, p, 99, 5, 0);
  DropCtx ctx = {.out = fo, .inp = xf, .r = r, .n = NF, .p = p};
  fd_check("dropout dinp", drop_loss, &ctx, xf, NF, df, 1e-2f);
  free(x); free(out); free(out2); free(d);
}

/* ---- attention ------------------------------------------------------------------ */

#define ATT_SEED 1234u
#define ATT_STREAM 7u
typedef struct { float *out, *att, *scr, *qkv, *r; const uint8_t *mask; int B, T, C, NH, causal; float p; } AttnCtx;
static double attn_loss(void *p) {
  AttnCtx *c = p;
  attention_forward(c->out, c->att, c->scr, c->qkv, c->mask, c->B, c->T, c->C, c->NH,
                    c->causal, c->p, ATT_SEED, ATT_STREAM, 0);
  return dot_r(c->r, c->out, (size_t)c->B * c->T * c->C);
}
static int attn_visible(const uint8_t *mask, int b, int T, int t, int j, int causal) {
  return mask[b * T + j] && (!causal || j <= t);
}
static int attn_any_visible(const uint8_t *mask, int b, int T, int t, int causal) {
  for (int j = 0; j < T; j++)
    if (attn_visible(mask, b, T, t, j, causal)) return 1;
  return 0;
}

/* naive double attention: softmax(q·k/sqrt(hs)) over visible keys, dropout of
 * the probabilities (offset = index into att), times v. */
static void attn_ref(double *out, double *att, const float *qkv, const uint8_t *mask,
                     int B, int T, int C, int NH, int causal, float p) {
  int hs = C / NH;
  double sc = 1.0 / sqrt((double)hs);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
        size_t arow = (((size_t)b * NH + h) * T + t) * T;
        double *a = att + arow, mx = -INFINITY, sum = 0;
        for (int j = 0; j < T; j++) {
          a[j] = 0;
          if (!attn_visible(mask, b, T, t, j, causal)) continue;
          const float *k = qkv + ((size_t)b * T + j) * 3 * C + C + h * hs;
          for (int d = 0; d < hs; d++) a[j] += (double)q[d] * k[d];
          a[j] *= sc;
          if (a[j] > mx) mx = a[j];
        }
        for (int j = 0; j < T; j++)
          if (attn_visible(mask, b, T, t, j, causal)) sum += (a[j] = exp(a[j] - mx));
        for (int j = 0; j < T; j++)
          a[j] = attn_visible(mask, b, T, t, j, causal) ? a[j] / sum : 0.0;
        for (int d = 0; d < hs; d++) {
          double o = 0;
          for (int j = 0; j < T; j++) {
            double pj = a[j];
            if (p > 0)
              pj = dropout_kept(ATT_SEED, ATT_STREAM, arow + (size_t)j, p) ? pj / (1.0 - p) : 0.0;
            o += pj * qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * hs + d];
          }
          out[((size_t)b * T + t) * C + h * hs + d] = o;
        }
      }
}

static void attn_case(const char *name, int B, int T, int C, int NH, int causal,
                      float p, const uint8_t *mask) {
  size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C;
  size_t natt = (size_t)B * NH * T * T;
  float *qkv = falloc(nqkv), *out = falloc(nout), *att = falloc(natt);
  float *r = falloc(nout), *dqkv = falloc(nqkv), *dqkv2 = falloc(nqkv);
  float *scratch = falloc(natt), *fo = falloc(nout), *fa = falloc(natt);
  double *oref = dalloc(nout), *aref = dalloc(natt);
  fill(qkv, nqkv, -1, 1); fill(r, nout, -1, 1);
  for (size_t i = 0; i < natt; i++) att[i] = 7.0f; /* att must be fully written */
  for (size_t i = 0; i < nout; i++) out[i] = 7.0f;
  fill(scratch, natt, -100, 100); /* scratch may hold anything */
  attention_forward(out, att, scratch, qkv, mask, B, T, C, NH, causal, p, ATT_SEED, ATT_STREAM, 0);
  attn_ref(oref, aref, qkv, mask, B, T, C, NH, causal, p);
  CHECKF(max_err(out, oref, nout) <= 1e-5, "%s: out err %.3g", name, max_err(out, oref, nout));
  CHECKF(max_err(att, aref, natt) <= 2e-6, "%s: att err %.3g", name, max_err(att, aref, natt));

  fill(scratch, natt, -100, 100); /* scratch may hold anything */
  attention_backward(dqkv, scratch, r, qkv, att, B, T, C, NH, p, ATT_SEED, ATT_STREAM, 0);
  CHECKF(all_finite(dqkv, nqkv), "%s: non-finite dqkv", name);
  memcpy(dqkv2, dqkv, nqkv * sizeof(float));
  attention_backward(dqkv2, scratch, r, qkv, att, B, T, C, NH, p, ATT_SEED, ATT_STREAM, 0);
  CHECKF(max_err_f(dqkv2, dqkv, nqkv, 2.0) <= 1e-6, "%s: backward does not accumulate", name);

  /* exact zeros: padded keys get no dK/dV; a query that sees no key outputs
   * zeros and gets no dQ */
  int bad_kv = 0, bad_q = 0;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const float *row = dqkv + ((size_t)b * T + t) * 3 * C;
      if (!mask[b * T + t])
        for (int c = C; c < 3 * C; c++) bad_kv += row[c] != 0.0f;
      if (!attn_any_visible(mask, b, T, t, causal))
        for (int c = 0; c < C; c++)
          bad_q += row[c] != 0.0f || out[((size_t)b * T + t) * C + c] != 0.0f;
    }
  CHECKF(bad_kv == 0, "%s: %d nonzero dK/dV at padded keys", name, bad_kv);
  CHECKF(bad_q == 0, "%s: %d nonzero out/dQ at queries without keys", name, bad_q);

  AttnCtx ctx = {.out = fo, .att = fa, .scr = scratch, .qkv = qkv, .r = r, .mask = mask, .B = B,
                 .T = T, .C = C, .NH = NH, .causal = causal, .p = p};
  fd_check(name, attn_loss, &ctx, qkv, nqkv, dqkv, 1e-2f);
  free(qkv); free(out); free(att); free(r); free(dqkv); free(dqkv2);
  free(scratch); free(fo); free(fa); free(oref); free(aref);
}

/* seq 0 full, seq 1 right-padded, seq 2 left-padded (causal: query 0 of
 * seq 2 sees no key) */
static const uint8_t MASK_A[3 * 5] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1};
static const uint8_t MASK_FULL[2 * 5] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
static const uint8_t MASK_EMPTY_SEQ[2 * 4] = {1, 1, 1, 0, 0, 0, 0, 0};
static const uint8_t MASK_HOLE[2 * 4] = {1, 1, 0, 1, 1, 1, 1, 1}; /* pad mid-sequence */

static void test_attention_bidir_padded(void) {
  prng_seed(7);
  attn_case("attention bidir+pad", 3, 5, 8, 2, 0, 0.0f, MASK_A);
  attn_case("attention bidir NH=3 hole", 2, 4, 12, 3, 0, 0.0f, MASK_HOLE);
}
static void test_attention_causal(void) {
  prng_seed(8);
  attn_case("attention causal", 2, 5, 8, 2, 1, 0.0f, MASK_FULL);
  attn_case("attention causal+pad", 3, 5, 8, 2, 1, 0.0f, MASK_A);
}
static void test_attention_dropout(void) {
  prng_seed(9);
  attn_case("attention bidir+pad drop", 3, 5, 8, 2, 0, 0.3f, MASK_A);
  attn_case("attention causal+pad drop", 3, 5, 8, 2, 1, 0.3f, MASK_A);
}
static void test_attention_fully_padded(void) {
  prng_seed(10);
  attn_case("attention empty seq", 2, 4, 8, 2, 0, 0.0f, MASK_EMPTY_SEQ);
  attn_case("attention empty seq causal drop", 2, 4, 8, 2, 1, 0.2f, MASK_EMPTY_SEQ);
}

/* ---- pooling --------------------------------------------------------------------- */

typedef struct { float *out, *inp, *r; const uint8_t *mask; int B, T, C, mode; } PoolCtx;
static double pool_loss(void *p) {
  PoolCtx *c = p;
  pool_forward(c->out, c->inp, c->mask, c->B, c->T, c->C, c->mode);
  return dot_r(c->r, c->out, (size_t)c->B * c->C);
}

static void test_pool(void) {
  enum { B = 3, T = 4, C = 5 };
  /* mean: full, half, fully padded; first: every first token is real */
  const uint8_t mmean[B * T] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0};
  const uint8_t mfirst[B * T] = {1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0};
  float inp[B * T * C], out[B * C], r[B * C], fo[B * C];
  double ref[B * C];
  prng_seed(11);
  fill(inp, B * T * C, -1, 1); fill(r, B * C, -1, 1);
  for (int mode = POOL_MEAN; mode <= POOL_FIRST; mode++) {
    const uint8_t *mask = mode == POOL_MEAN ? mmean : mfirst;
    for (int i = 0; i < B * C; i++) out[i] = 7.0f;
    pool_forward(out, inp, mask, B, T, C, mode);
    for (int b = 0; b < B; b++)
      for (int c = 0; c < C; c++) {
        double s = 0;
        int n = 0;
        for (int t = 0; t < T; t++)
          if (mode == POOL_FIRST ? t == 0 : mask[b * T + t] != 0) {
            s += inp[(b * T + t) * C + c];
            n++;
          }
        ref[b * C + c] = n ? s / n : 0.0;
      }
    CHECKF(max_err(out, ref, B * C) <= 1e-6, "mode %d: %.3g", mode, max_err(out, ref, B * C));
    if (mode == POOL_MEAN) CHECK(all_zero(out + 2 * C, C)); /* fully padded: zeros */
    float dinp[B * T * C] = {0};
    pool_backward(dinp, r, mask, B, T, C, mode);
    CHECK(all_finite(dinp, B * T * C));
    int bad = 0; /* exactly zero where the token does not contribute */
    for (int b = 0; b < B; b++)
      for (int t = 0; t < T; t++)
        if (mode == POOL_FIRST ? t != 0 : !mask[b * T + t])
          bad += !all_zero(dinp + (b * T + t) * C, C);
    CHECKF(bad == 0, "mode %d: %d non-contributing tokens got gradient", mode, bad);
    PoolCtx ctx = {.out = fo, .inp = inp, .r = r, .mask = mask, .B = B, .T = T,
                   .C = C, .mode = mode};
    fd_check(mode == POOL_MEAN ? "pool mean dinp" : "pool first dinp", pool_loss,
             &ctx, inp, B * T * C, dinp, 1e-2f);
  }
}

/* ---- l2norm --------------------------------------------------------------------- */

typedef struct { float *out, *norm, *inp, *r; int N, C; } L2Ctx;
static double l2_loss(void *p) {
  L2Ctx *c = p;
  l2norm_forward(c->out, c->norm, c->inp, c->N, c->C);
  return dot_r(c->r, c->out, (size_t)c->N * c->C);
}

static void test_l2norm(void) {
  enum { N = 4, C = 8 };
  float inp[N * C], out[N * C], norm[N], r[N * C], dinp[N * C] = {0};
  float fo[N * C], fn[N];
  double oref[N * C], nref[N];
  prng_seed(12);
  fill(inp, N * C, -1, 1); fill(r, N * C, -1, 1);
  for (int c = 0; c < C; c++) inp[3 * C + c] *= 5.0f; /* a longer row */
  l2norm_forward(out, norm, inp, N, C);
  for (int n = 0; n < N; n++) {
    double s = 0;
    for (int c = 0; c < C; c++) s += (double)inp[n * C + c] * inp[n * C + c];
    nref[n] = sqrt(s);
    for (int c = 0; c < C; c++) oref[n * C + c] = inp[n * C + c] / nref[n];
  }
  CHECKF(max_err(out, oref, N * C) <= 1e-6, "out %.3g", max_err(out, oref, N * C));
  CHECKF(max_err(norm, nref, N) <= 1e-6, "norm %.3g", max_err(norm, nref, N));
  l2norm_backward(dinp, r, out, norm, N, C);
  L2Ctx ctx = {.out = fo, .norm = fn, .inp = inp, .r = r, .N = N, .C = C};
  fd_check("l2norm dinp", l2_loss, &ctx, inp, N * C, dinp, 1e-2f);
  /* a zero row: zeros out, norm clamped to 1e-12 */
  float z[2 * C] = {0}, zo[2 * C], zn[2];
  fill(z, C, -1, 1);
  l2norm_forward(zo, zn, z, 2, C);
  CHECK(all_zero(zo + C, C) && all_finite(zo, 2 * C));
  CHECKF(fabs(zn[1] - 1e-12) <= 1e-18, "clamped norm %g", zn[1]);
}

/* ---- cross-entropy ---------------------------------------------------------------- */

typedef struct { float *losses, *probs, *logits; const int32_t *labels; int N, V; float scale; } CeCtx;
static double ce_loss(void *p) {
  CeCtx *c = p;
  crossentropy_forward(c->losses, c->probs, c->logits, c->labels, c->N, c->V);
  double s = 0;
  for (int i = 0; i < c->N; i++) s += c->losses[i];
  return c->scale * s;
}

static void test_crossentropy(void) {
  enum { N = 4, V = 7 };
  const int32_t labels[N] = {0, 6, 3, 3};
  const float scale = 0.37f;
  float logits[N * V], probs[N * V], losses[N], d[N * V] = {0};
  float fl[N], fp[N * V];
  double pref[N * V], lref[N];
  prng_seed(13);
  fill(logits, N * V, -3, 3);
  crossentropy_forward(losses, probs, logits, labels, N, V);
  for (int n = 0; n < N; n++) {
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, logits[n * V + v]);
    for (int v = 0; v < V; v++) s += exp(logits[n * V + v] - mx);
    for (int v = 0; v < V; v++) pref[n * V + v] = exp(logits[n * V + v] - mx) / s;
    lref[n] = mx + log(s) - logits[n * V + labels[n]];
  }
  CHECKF(max_err(probs, pref, N * V) <= 1e-6, "probs %.3g", max_err(probs, pref, N * V));
  CHECKF(max_err(losses, lref, N) <= 1e-6, "losses %.3g", max_err(losses, lref, N));
  crossentropy_backward(d, probs, labels, N, V, scale);
  CeCtx ctx = {.losses = fl, .probs = fp, .logits = logits, .labels = labels,
               .N = N, .V = V, .scale = scale};
  fd_check("crossentropy dlogits", ce_loss, &ctx, logits, N * V, d, 1e-2f);

  /* logits of 1e4 stay finite */
  const float big[2 * 4] = {1e4f, -1e4f, 0.0f, 5e3f, 1e4f, 1e4f, 1e4f, 1e4f};
  const int32_t bl[2] = {1, 2};
  float bp[2 * 4], bloss[2], bd[2 * 4] = {0};
  crossentropy_forward(bloss, bp, big, bl, 2, 4);
  crossentropy_backward(bd, bp, bl, 2, 4, 1.0f);
  CHECK(all_finite(bp, 8) && all_finite(bloss, 2) && all_finite(bd, 8));
  CHECKF(fabs(bloss[0] - 2e4) <= 2e4 * 1e-6, "loss %g, want 2e4", bloss[0]);
  CHECKF(fabs(bloss[1] - log(4.0)) <= 1e-6, "loss %g, want ln 4", bloss[1]);
  CHECK(bp[0] == 1.0f && bp[1] == 0.0f && fabs(bp[5] - 0.25) <= 1e-7);
}

/* ---- InfoNCE ---------------------------------------------------------------------- */

typedef struct { float *probs, *q, *k, *kx; const int32_t *labels; int nq, nk, nx, D, dcl; float scale, weight; } NceCtx;
static double nce_loss(void *p) {
  NceCtx *c = p;
  return c->weight * (double)infonce_forward(c->probs, NULL, c->q, c->nq, c->k, c->nk, c->kx,
                                             c->nx, c->D, c->labels, c->scale, c->dcl);
}

static void test_infonce(void) {
  enum { NQ = 4, NK = 7, D = 8 }; /* 3 extra (hard) negative keys */
  const int32_t labels[NQ] = {0, 2, 1, 5}; /* rows 1..3 not on the diagonal */
  const float weight = 0.7f;
  float q[NQ * D], k[NK * D], probs[NQ * NK], fp[NQ * NK];
  double pref[NQ * NK], lref = 0;
  int cref = 0, correct = -1;
  prng_seed(14);
  fill(q, NQ * D, -1, 1); fill(k, NK * D, -1, 1);
  for (int d = 0; d < D; d++) q[2 * D + d] = k[1 * D + d]; /* row 2 likely correct */
  NceCtx ctx = {.probs = fp, .q = q, .k = k, .labels = labels, .nq = NQ, .nk = NK,
                .D = D, .scale = 3.0f, .weight = weight};
  float loss = infonce_forward(probs, &correct, q, NQ, k, NK, NULL, 0, D, labels, ctx.scale, 0);
  for (int i = 0; i < NQ; i++) {
    double lg[NK], mx = -INFINITY, s = 0;
    int am = 0;
    for (int j = 0; j < NK; j++) {
      lg[j] = 0;
      for (int d = 0; d < D; d++) lg[j] += (double)q[i * D + d] * k[j * D + d];
      lg[j] *= ctx.scale;
      if (lg[j] > mx) { mx = lg[j]; am = j; }
    }
    for (int j = 0; j < NK; j++) s += exp(lg[j] - mx);
    for (int j = 0; j < NK; j++) pref[i * NK + j] = exp(lg[j] - mx) / s;
    lref += (mx + log(s) - lg[labels[i]]) / NQ;
    cref += am == labels[i];
  }
  CHECKF(fabs(loss - lref) <= 1e-5 * (1 + lref), "loss %.7g ref %.7g", loss, lref);
  CHECKF(max_err(probs, pref, NQ * NK) <= 1e-6, "probs %.3g", max_err(probs, pref, NQ * NK));
  CHECKF(correct == cref, "correct %d ref %d", correct, cref);

  float dq[NQ * D] = {0}, dk[NK * D] = {0}, dscale = 0;
  infonce_backward(dq, dk, &dscale, probs, q, NQ, k, NK, NULL, 0, D, labels, ctx.scale, weight);
  /* probs now holds d(weight·loss)/d logits = weight/nq·(p - onehot) */
  int pg_ok = 1;
  for (int i = 0; i < NQ; i++)
    for (int j = 0; j < NK; j++)
      pg_ok &= fabs(probs[i * NK + j] - weight / NQ * (pref[i * NK + j] - (j == labels[i]))) <= 1e-6;
  CHECK(pg_ok);
  fd_check("infonce dq", nce_loss, &ctx, q, NQ * D, dq, 3e-3f);
  fd_check("infonce dk", nce_loss, &ctx, k, NK * D, dk, 3e-3f);
  fd_check("infonce dscale", nce_loss, &ctx, &ctx.scale, 1, &dscale, 3e-3f);
  CHECKF(fabs(dscale) > 1e-3, "dscale %g should not be ~0 here", dscale);
  /* NULL gradients are skipped; the others are unchanged */
  float dq2[NQ * D] = {0}, dk2[NK * D] = {0};
  infonce_forward(probs, NULL, q, NQ, k, NK, NULL, 0, D, labels, ctx.scale, 0);
  infonce_backward(dq2, NULL, NULL, probs, q, NQ, k, NK, NULL, 0, D, labels, ctx.scale, weight);
  infonce_forward(probs, NULL, q, NQ, k, NK, NULL, 0, D, labels, ctx.scale, 0);
  infonce_backward(NULL, dk2, NULL, probs, q, NQ, k, NK, NULL, 0, D, labels, ctx.scale, weight);
  CHECK(max_err_f(dq2, dq, NQ * D, 1.0) <= 1e-6);
  CHECK(max_err_f(dk2, dk, NK * D, 1.0) <= 1e-6);
}

/* Extra keys (a MoCo queue) score like more rows of k but get no gradient;
 * DCL drops the positive from the denominator. */
static void test_infonce_queue_dcl(void) {
  enum { NQ = 3, NK = 4, NX = 5, D = 6 };
  const int32_t labels[NQ] = {0, 3, 1};
  float q[NQ * D], k[NK * D], kx[NX * D], kall[(NK + NX) * D];
  float p1[NQ * (NK + NX)], p2[NQ * (NK + NX)], fp[NQ * (NK + NX)];
  prng_seed(15);
  fill(q, NQ * D, -1, 1); fill(k, NK * D, -1, 1); fill(kx, NX * D, -1, 1);
  memcpy(kall, k, sizeof k);
  memcpy(kall + NK * D, kx, sizeof kx);
  /* queue = the same keys appended to k: same loss and dq, dk for k only */
  float l1 = infonce_forward(p1, NULL, q, NQ, k, NK, kx, NX, D, labels, 2.0f, 0);
  float l2 = infonce_forward(p2, NULL, q, NQ, kall, NK + NX, NULL, 0, D, labels, 2.0f, 0);
  CHECKF(fabsf(l1 - l2) <= 1e-6f * fabsf(l2), "queue loss %g vs appended %g", l1, l2);
  float dq1[NQ * D] = {0}, dq2[NQ * D] = {0}, dk1[NK * D] = {0}, dk2[(NK + NX) * D] = {0};
  infonce_backward(dq1, dk1, NULL, p1, q, NQ, k, NK, kx, NX, D, labels, 2.0f, 1.0f);
  infonce_backward(dq2, dk2, NULL, p2, q, NQ, kall, NK + NX, NULL, 0, D, labels, 2.0f, 1.0f);
  CHECK(max_err_f(dq1, dq2, NQ * D, 1.0) <= 1e-6 && max_err_f(dk1, dk2, NK * D, 1.0) <= 1e-6);
  /* DCL against a naive double version, and by finite differences */
  float ld = infonce_forward(p1, NULL, q, NQ, k, NK, kx, NX, D, labels, 2.0f, 1);
  double lref = 0;
  for (int i = 0; i < NQ; i++) {
    double lg[NK + NX], s = 0;
    for (int j = 0; j < NK + NX; j++) {
      lg[j] = 0;
      for (int d = 0; d < D; d++) lg[j] += (double)q[i * D + d] * kall[j * D + d];
      lg[j] *= 2.0;
      if (j != labels[i]) s += exp(lg[j]);
    }
    lref += (log(s) - lg[labels[i]]) / NQ;
    CHECK(p1[i * (NK + NX) + labels[i]] == 0.0f);
  }
  CHECKF(fabs(ld - lref) <= 1e-5 * fabs(lref), "DCL loss %.7g ref %.7g", ld, lref);
  float dq[NQ * D] = {0}, dk[NK * D] = {0}, dscale = 0;
  infonce_backward(dq, dk, &dscale, p1, q, NQ, k, NK, kx, NX, D, labels, 2.0f, 1.0f);
  NceCtx ctx = {.probs = fp, .q = q, .k = k, .kx = kx, .labels = labels, .nq = NQ, .nk = NK,
                .nx = NX, .D = D, .dcl = 1, .scale = 2.0f, .weight = 1.0f};
  fd_check("dcl dq", nce_loss, &ctx, q, NQ * D, dq, 3e-3f);
  fd_check("dcl dk", nce_loss, &ctx, k, NK * D, dk, 3e-3f);
  fd_check("dcl dscale", nce_loss, &ctx, &ctx.scale, 1, &dscale, 3e-3f);
}

/* ---- optimizer ---------------------------------------------------------------------- */

/* sumsq returns the plain sum of squares (model/optim.c takes the sqrt; the
 * header comment saying sqrt is stale). Blocks of 4096 are summed in float
 * and the blocks in double, hence a 1e-5 relative tolerance. */
static void test_sumsq(void) {
  size_t n = 3 * 4096 + 123;
  float *g = falloc(n);
  prng_seed(15);
  fill(g, n, -2, 2);
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
  double got = sumsq(g, n);
  CHECKF(fabs(got - s) <= 1e-5 * s, "sumsq %.17g ref %.17g", got, s);
  CHECK(sumsq(g, 0) == 0.0);
  CHECKF(fabs(sumsq(g, 1) - (double)g[0] * g[0]) <= 1e-7 * (double)g[0] * g[0],
         "sumsq of one %.17g", sumsq(g, 1));
  free(g);
}

static void test_adamw(void) {
  enum { N = 40 };
  const float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-6f, wd = 0.1f;
  float p[N], g[N], m[N] = {0}, v[N] = {0};
  double pd[N], md[N] = {0}, vd[N] = {0};
  prng_seed(16);
  fill(p, N, -1, 1);
  for (int i = 0; i < N; i++) pd[i] = p[i];
  for (int t = 1; t <= 3; t++) {
    fill(g, N, -1, 1);
    for (int i = 0; i < 4; i++) g[i] = 0.0f;                        /* only decay */
    for (int i = 4; i < 8; i++) g[i] = (float)(1e-5 * (i - 5.5)); /* eps matters */
    adamw_update(p, g, m, v, N, lr, b1, b2, eps, wd, t);
    double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    for (int i = 0; i < N; i++) {
      pd[i] *= 1.0 - (double)lr * wd;
      md[i] = b1 * md[i] + (1.0 - b1) * g[i];
      vd[i] = b2 * vd[i] + (1.0 - b2) * (double)g[i] * g[i];
      pd[i] -= lr / bc1 * md[i] / (sqrt(vd[i]) / sqrt(bc2) + eps);
    }
    double ep = 0, em = 0, ev = 0;
    for (int i = 0; i < N; i++) {
      ep = fmax(ep, fabs(p[i] - pd[i]) / fmax(1.0, fabs(pd[i])));
      em = fmax(em, fabs(m[i] - md[i]) / (fabs(md[i]) + 1e-12));
      ev = fmax(ev, fabs(v[i] - vd[i]) / (fabs(vd[i]) + 1e-20));
    }
    /* one step moves p by ~lr = 1e-2; 1e-6 catches any formula error */
    CHECKF(ep <= 1e-6 && em <= 1e-5 && ev <= 1e-5, "step %d: p %.3g m %.3g v %.3g",
           t, ep, em, ev);
  }
}

/* ---- top-k scan: a row's score alone and among others ------------------------------ */

/* scan_dot scores rows four at a time, then the rest one at a time, each
 * with a vector part and a scalar tail (d not a multiple of the lanes).
 * Every row gets the bits it gets scored alone (n = 1), for every d from 1
 * to 33 and 37, 64, 100, 257, and every dtype: the tail's multiply-add is
 * the same operation in both loops whatever the compiler contracts. And
 * each score is the double reference's within the bound of any float32
 * summation order, 2·(d+2)·2^-24·Σ|q_j·x_j|. */
static void test_scan_rows(void) {
  prng_seed(41);
  enum { N = 11 };
  const int dmax = 257;
  float *q = falloc(dmax), *xf = falloc((size_t)N * dmax), scales[N], all[N], one;
  uint16_t *xh = xalloc(sizeof(uint16_t) * N * dmax);
  int8_t *xb = xalloc((size_t)N * dmax);
  for (int i = 0; i < N; i++) scales[i] = (float)(0.001 + 0.02 * prng_u01());
  int dims[37], nd = 0;
  for (int d = 1; d <= 33; d++) dims[nd++] = d;
  dims[nd++] = 37, dims[nd++] = 64, dims[nd++] = 100, dims[nd++] = 257;
  for (int di = 0; di < nd; di++) {
    const int d = dims[di];
    fill(q, (size_t)d, -1, 1);
    fill(xf, (size_t)N * d, -1, 1);
    for (int i = 0; i < N * d; i++) {
      uint16_t e = (uint16_t)(8 + (int)(14 * prng_u01())), m = (uint16_t)(1024 * prng_u01());
      xh[i] = (uint16_t)((prng_u01() < 0.5 ? 0x8000u : 0u) | (unsigned)e << 10 | m);
      xb[i] = (int8_t)((int)(255 * prng_u01()) - 127);
    }
    for (int dt = SCAN_F32; dt <= SCAN_I8; dt++) {
      const void *x = dt == SCAN_F32 ? (const void *)xf : dt == SCAN_F16 ? (const void *)xh : xb;
      const size_t esz = dt == SCAN_F32 ? 4 : dt == SCAN_F16 ? 2 : 1;
      scan_dot(all, q, d, dt, x, dt == SCAN_I8 ? scales : NULL, N);
      int bad = 0;
      double worst = 0;
      for (int i = 0; i < N; i++) {
        scan_dot(&one, q, d, dt, (const char *)x + (size_t)i * d * esz,
                 dt == SCAN_I8 ? scales + i : NULL, 1);
        bad += memcmp(&one, &all[i], sizeof one) != 0;
        double ref = 0, mag = 0;
        for (int j = 0; j < d; j++) {
          size_t e = (size_t)i * d + j;
          double v = dt == SCAN_F32 ? xf[e] : dt == SCAN_I8 ? xb[e] : 0;
          if (dt == SCAN_F16) {
            int ex = (xh[e] >> 10) & 0x1f, mm = xh[e] & 0x3ff;
            v = ldexp(1024 + mm, ex - 25) * ((xh[e] & 0x8000) ? -1 : 1);
          }
          ref += (double)q[j] * v, mag += fabs((double)q[j] * v);
        }
        double sc = dt == SCAN_I8 ? scales[i] : 1;
        double err = fabs(all[i] - ref * sc) / ((2.0 * (d + 2) * 0x1p-24 * mag + 0x1p-24 * fabs(ref)) * sc + 1e-30);
        worst = err > worst ? err : worst;
      }
      CHECKF(bad == 0, "d %d dtype %d: %d of %d rows get other bits among others than alone", d, dt,
             bad, N);
      CHECKF(worst <= 1.0, "d %d dtype %d: error %.3g of the float32 bound", d, dt, worst);
    }
  }
  free(q);
  free(xf);
  free(xh);
  free(xb);
}

/* ---- determinism across thread counts ------------------------------------------------ */

static void test_thread_determinism(void) {
  enum { N = 512, C = 256, B = 8, T = 64, V = 37, MN = 2048, MC = 8, MO = 128 };
  const size_t SN = (1u << 20) + 17;
  int orig = kernels_get_threads();
  float *inp = falloc((size_t)N * C), *dout = falloc((size_t)N * C), *w = falloc(C);
  float *mean = falloc(N), *rstd = falloc(N), *lo = falloc((size_t)N * C);
  float *eout = falloc((size_t)B * T * C), *minp = falloc(MN * MC);
  float *mdout = falloc(MN * MO), *mW = falloc(MO * MC), *g = falloc(SN);
  int32_t ids[B * T];
  prng_seed(17);
  fill(inp, (size_t)N * C, -1, 1); fill(dout, (size_t)N * C, -1, 1); fill(w, C, 0.5, 1.5);
  fill(eout, (size_t)B * T * C, -1, 1); fill(minp, MN * MC, -1, 1);
  fill(mdout, MN * MO, -1, 1); fill(mW, MO * MC, -1, 1); fill(g, SN, -1, 1);
  for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(prng_u01() * V);
  layernorm_forward(lo, mean, rstd, inp, w, w, N, C, 1e-5f);
  float *res[2][6];
  double ss[2];
  for (int k = 0; k < 2; k++) {
    kernels_set_threads(k + 1);
    res[k][0] = falloc((size_t)N * C); res[k][1] = falloc(C); res[k][2] = falloc(C);
    res[k][3] = falloc((size_t)V * C); res[k][4] = falloc((size_t)T * C); res[k][5] = falloc(MO);
    layernorm_backward(res[k][0], res[k][1], res[k][2], dout, inp, w, mean, rstd, N, C);
    embed_backward(res[k][3], res[k][4], eout, ids, B, T, C);
    matmul_backward(NULL, NULL, res[k][5], mdout, minp, mW, MN, MC, MO);
    ss[k] = sumsq(g, SN);
  }
  kernels_set_threads(orig);
  const size_t sz[6] = {(size_t)N * C, C, C, (size_t)V * C, (size_t)T * C, MO};
  const char *nm[6] = {"layernorm dinp", "layernorm dw", "layernorm db",
                       "embed dwte", "embed dwpe", "matmul db"};
  for (int i = 0; i < 6; i++)
    CHECKF(memcmp(res[0][i], res[1][i], sz[i] * sizeof(float)) == 0,
           "%s differs between 1 and 2 threads", nm[i]);
  CHECKF(memcmp(&ss[0], &ss[1], sizeof(double)) == 0, "sumsq %.17g vs %.17g", ss[0], ss[1]);
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < 6; i++) free(res[k][i]);
  free(inp); free(dout); free(w); free(mean); free(rstd); free(lo); free(eout);
  free(minp); free(mdout); free(mW); free(g);
}

int main(void) {
  printf("backend: %s, %d threads\n", kernels_backend(), kernels_get_threads());
  RUN(test_runtime);
  RUN(test_threads_other_pthread);
  RUN(test_rng);
  RUN(test_embed);
  RUN(test_layernorm);
  RUN(test_matmul);
  RUN(test_matmul_small_rows);
  RUN(test_matmul_long_rows);
  RUN(test_max_of);
  RUN(test_exp_sum);
  RUN(test_softmax_mix_kl);
  RUN(test_gelu);
  RUN(test_residual_scale);
  RUN(test_dropout);
  RUN(test_attention_bidir_padded);
  RUN(test_attention_causal);
  RUN(test_attention_dropout);
  RUN(test_attention_fully_padded);
  RUN(test_pool);
  RUN(test_l2norm);
  RUN(test_crossentropy);
  RUN(test_infonce);
  RUN(test_infonce_queue_dcl);
  RUN(test_matmul_bf16);
  RUN(test_sumsq);
  RUN(test_adamw);
  RUN(test_scan_rows);
  RUN(test_thread_determinism);
  TEST_EXIT();
}
