/* test_decode.c — the fast paths of model/decode.h against the plain
 * algorithms they replace (written out here as oracles), on many random
 * rows with ties, -inf entries and vocabularies up to 8000. The torch
 * references (tests/reference/test_decode_ref.c) check the semantics on
 * small rows; these check that the shortcuts change nothing:
 *   - decode_top_p (quickselect on the mass) removes exactly what a full
 *     stable sort + sequential cumsum removes, min_keep included;
 *   - decode_sample_work picks decode_sample's token;
 *   - decode_probs_at equals decode_softmax at the ids;
 *   - decode_dola_contrast (one pass, float exponentials) equals
 *     log-softmaxes + relative-top written out in double: the same mask,
 *     values within 2e-6 (the torch test allows 1e-5);
 *   - decode_jsd and decode_jsd_work equal AdaCAD's get_jsd written out
 *     (clamps only when a probability is 0 in float32; rel. 1e-12; the
 *     work form 1e-11·max(jsd, 1e-3)), also on a peaked 50k-vocabulary
 *     row where clamping every p < 1e-9 was off by ~1e-4;
 *   - decode_dola_select picks HF's layer where log-probabilities fall far
 *     below -87 (the review's case);
 *   - decode_cs_select picks the candidate of the k-inner loop, scores
 *     within 1e-6.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/decode.h"
#include "tests/test.h"

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* xorshift64, [0,1) */
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return (double)(rs >> 11) / 9007199254740992.0;
}
static double nrand(void) {
  double u = urand(), v = urand();
  return sqrt(-2.0 * log(u > 1e-300 ? u : 1e-300)) * cos(6.283185307179586 * v);
}

/* A row of kind 0: normal·scale; 1: ties (values on a grid of 0.5);
 * 2: like 0 with a tenth -inf; 3: every entry equal. */
static void make_row(float *x, int V, int kind, double scale) {
  for (int v = 0; v < V; v++) {
    double z = nrand() * scale;
    if (kind == 1) z = floor(z * 2.0) / 2.0;
    if (kind == 3) z = 0.25;
    x[v] = (float)z;
    if (kind == 2 && urand() < 0.1) x[v] = -INFINITY;
  }
}

/* ---- oracles: the plain algorithms ------------------------------------------------*/

typedef struct {
  float val;
  int id;
} ovid;

static int ovid_asc(const void *a, const void *b) {
  const ovid *x = a, *y = b;
  if (x->val < y->val) return -1;
  if (x->val > y->val) return 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* HF TopPLogitsWarper by a full stable sort, cumsum in sorted order */
static void oracle_top_p(float *x, int V, float p, int min_keep) {
  ovid *s = malloc(sizeof *s * (size_t)V);
  for (int v = 0; v < V; v++) s[v] = (ovid){x[v], v};
  qsort(s, (size_t)V, sizeof *s, ovid_asc);
  float m = s[V - 1].val;
  if (m != -INFINITY) {
    double tot = 0, cum = 0;
    for (int v = 0; v < V; v++) tot += exp((double)s[v].val - m);
    int keep_from = V - (min_keep > 0 ? min_keep : 0);
    for (int i = 0; i < V; i++) {
      cum += exp((double)s[i].val - m) / tot;
      if (i >= keep_from || !(cum <= 1.0 - (double)p)) break;
      x[s[i].id] = -INFINITY;
    }
  }
  free(s);
}

static double lse(const float *x, int V) {
  float m = -INFINITY;
  for (int v = 0; v < V; v++) m = x[v] > m ? x[v] : m;
  double s = 0;
  for (int v = 0; v < V; v++) s += exp((double)x[v] - m);
  return log(s) + m;
}

static void oracle_dola_contrast(float *out, const float *f, const float *b, int V, float rt,
                                 int min_keep) {
  double lf = lse(f, V), lb = lse(b, V);
  float mx = -INFINITY;
  for (int v = 0; v < V; v++) {
    out[v] = (float)((double)f[v] - lf);
    mx = out[v] > mx ? out[v] : mx;
  }
  double th = (double)mx + log((double)rt);
  if (min_keep > 1) {
    int32_t ids[16];
    decode_topk_ids(out, V, min_keep, ids, NULL);
    if (out[ids[min_keep - 1]] < th) th = out[ids[min_keep - 1]];
  }
  float thf = (float)th;
  for (int v = 0; v < V; v++)
    out[v] = out[v] < thf ? -INFINITY : out[v] - (float)((double)b[v] - lb);
}

/* AdaCAD's get_jsd written out: p, q = softmax in double; m's log floored
 * at log 1e-9 only if some p + q is 0 in float32, p (q) raised to 1e-9
 * only if some p (q) is 0 in float32; p·(log p - log m), 0 where p = 0.
 * always_clamp: the clamps unconditional (what foil did before). */
static double oracle_jsd_clamp(const float *a, const float *b, int V, int always_clamp) {
  double la = lse(a, V), lb = lse(b, V), js = 0;
  int zp = always_clamp, zq = always_clamp, zm = always_clamp;
  for (int v = 0; v < V; v++) {
    float pf = (float)exp((double)a[v] - la), qf = (float)exp((double)b[v] - lb);
    zp |= pf == 0, zq |= qf == 0, zm |= pf + qf == 0;
  }
  for (int v = 0; v < V; v++) {
    double p = exp((double)a[v] - la), q = exp((double)b[v] - lb), m = 0.5 * (p + q);
    double lm = log(zm && m < 1e-9 ? 1e-9 : m);
    if (zp && p < 1e-9) p = 1e-9;
    if (zq && q < 1e-9) q = 1e-9;
    js += 0.5 * ((p > 0 ? p * (log(p) - lm) : 0) + (q > 0 ? q * (log(q) - lm) : 0));
  }
  return js;
}
static double oracle_jsd(const float *a, const float *b, int V) { return oracle_jsd_clamp(a, b, V, 0); }

/* ---- tests ---------------------------------------------------------------------*/

static void test_top_p_matches_sort(void) {
  static const int Vs[] = {1, 2, 3, 17, 50, 1000, 8000};
  static const float ps[] = {0.05f, 0.3f, 0.5f, 0.9f, 0.95f, 0.999f};
  static const int mks[] = {0, 1, 3};
  float *x = malloc(sizeof(float) * 8000), *y = malloc(sizeof(float) * 8000);
  int cases = 0, removed_any = 0;
  for (size_t iv = 0; iv < sizeof Vs / sizeof Vs[0]; iv++)
    for (int kind = 0; kind < 4; kind++)
      for (size_t ip = 0; ip < sizeof ps / sizeof ps[0]; ip++)
        for (size_t im = 0; im < sizeof mks / sizeof mks[0]; im++) {
          const int V = Vs[iv];
          make_row(x, V, kind, kind == 0 && ip % 2 ? 4.0 : 1.0);
          memcpy(y, x, sizeof(float) * (size_t)V);
          oracle_top_p(y, V, ps[ip], mks[im]);
          foil_err err = {0};
          CHECK(decode_top_p(x, 1, V, ps[ip], mks[im], &err) == 0);
          int diff = 0, gone = 0;
          for (int v = 0; v < V; v++) {
            diff += (x[v] == -INFINITY) != (y[v] == -INFINITY);
            gone += x[v] == -INFINITY;
          }
          CHECKF(diff == 0, "V %d kind %d p %g min_keep %d: %d entries differ", V, kind,
                 (double)ps[ip], mks[im], diff);
          removed_any += gone > 0;
          cases++;
        }
  CHECK(removed_any > cases / 2); /* the cases do filter */
  /* several rows at once, and p >= 1 untouched */
  enum { N = 5, V = 300 };
  float a[N * V], b[N * V];
  for (int n = 0; n < N; n++) make_row(a + n * V, V, n % 3, 2.0);
  memcpy(b, a, sizeof a);
  CHECK(decode_top_p(a, N, V, 0.7f, 1, NULL) == 0);
  for (int n = 0; n < N; n++) oracle_top_p(b + n * V, V, 0.7f, 1);
  CHECK(memcmp(a, b, sizeof a) == 0);
  memcpy(b, a, sizeof a);
  CHECK(decode_top_p(a, N, V, 1.0f, 1, NULL) == 0 && memcmp(a, b, sizeof a) == 0);
  free(x);
  free(y);
}

static void test_sample_work_and_probs(void) {
  enum { V = 777 };
  float x[V], pr[V], at[8];
  double work[V];
  int32_t ids[8] = {0, 5, 776, 3, 3, 100, 200, 300};
  for (int t = 0; t < 200; t++) {
    make_row(x, V, t % 3, 1.0 + t % 5);
    if (t % 4 == 0) decode_top_p(x, 1, V, 0.6f, 1, NULL);
    float u = (float)urand();
    CHECKF(decode_sample_work(x, V, u, work) == decode_sample(x, V, u), "trial %d u %g", t,
           (double)u);
    decode_softmax(pr, x, V);
    decode_probs_at(at, x, V, ids, 8);
    for (int i = 0; i < 8; i++) CHECK(at[i] == pr[ids[i]]);
  }
}

static void test_dola_contrast_matches(void) {
  enum { V = 2000 };
  float *f = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V);
  float *o1 = malloc(sizeof(float) * V), *o2 = malloc(sizeof(float) * V);
  for (int t = 0; t < 24; t++) {
    make_row(f, V, t % 3, 1.0 + t % 4);
    make_row(b, V, (t + 1) % 3, 2.0);
    int mk = t % 2 ? 1 : 4;
    decode_dola_contrast(o1, f, b, V, t % 3 ? 0.1f : 0.5f, mk);
    oracle_dola_contrast(o2, f, b, V, t % 3 ? 0.1f : 0.5f, mk);
    /* the log-sums from float exponentials (exp_sum): off by < 3e-7 */
    int mask_diff = 0, kept = 0;
    double md = 0;
    for (int v = 0; v < V; v++) {
      mask_diff += (o1[v] == -INFINITY) != (o2[v] == -INFINITY);
      if (o1[v] != -INFINITY && o2[v] != -INFINITY) md = fmax(md, fabs((double)o1[v] - o2[v])), kept++;
    }
    CHECKF(mask_diff == 0 && kept > 0 && md <= 2e-6, "trial %d: %d mask entries differ, max diff %g",
           t, mask_diff, md);
  }
  free(f), free(b), free(o1), free(o2);
}

static void test_jsd_matches(void) {
  enum { V = 3000 };
  float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V);
  double *work = malloc(sizeof(double) * 2 * V);
  for (int t = 0; t < 24; t++) {
    make_row(a, V, t % 3, 1.0 + t % 3);
    memcpy(b, a, sizeof(float) * V);
    for (int v = 0; v < V; v++) /* near (small JSD) or far */
      b[v] += (float)(nrand() * (t % 2 ? 0.01 : 3.0));
    double got = decode_jsd(a, b, V), want = oracle_jsd(a, b, V);
    CHECKF(fabs(got - want) <= 1e-12 * fmax(want, 1e-6), "trial %d: %.17g vs %.17g", t, got, want);
    /* p = exp·(1/sum) instead of exp(log p): rounding at 1e-16 absolute,
     * 1e5 times inside the torch test's 1e-6·max(jsd, 1e-3) */
    got = decode_jsd_work(a, b, V, work);
    CHECKF(fabs(got - want) <= 1e-11 * fmax(want, 1e-3), "trial %d work: %.17g vs %.17g", t, got,
           want);
  }
  free(a), free(b), free(work);
}

/* The review's AdaCAD case: V = 50257, context logits N(0,3) with +25 on
 * one token, no-context logits N(0,2): ~50k probabilities below 1e-9, none
 * 0, so get_jsd clamps nothing (0.69307; clamping them all gave 0.69289).
 * Then -inf logits: at the same entry of both rows (every clamp applies),
 * and in one row only (p's clamp alone). */
static void test_jsd_peaked(void) {
  enum { V = 50257 };
  float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V);
  double *work = malloc(sizeof(double) * 2 * V);
  for (int t = 0; t < 4; t++) {
    for (int v = 0; v < V; v++) a[v] = (float)(nrand() * 3.0), b[v] = (float)(nrand() * 2.0);
    a[17] += 25.0f;
    if (t == 2) a[5] = b[5] = -INFINITY; /* p, q and p + q have a 0: all three clamp */
    if (t == 3) a[5] = -INFINITY;        /* p alone */
    double want = oracle_jsd(a, b, V), old = oracle_jsd_clamp(a, b, V, 1);
    double got = decode_jsd(a, b, V), gotw = decode_jsd_work(a, b, V, work);
    CHECKF(fabs(got - want) <= 1e-12 * want && fabs(gotw - want) <= 1e-11 * want, "trial %d: %.15g %.15g vs %.15g",
           t, got, gotw, want);
    if (t < 2) /* the unconditional clamp was off by ~1e-4 */
      CHECKF(fabs(old - want) > 1e-5, "trial %d: clamped %.9g vs %.9g", t, old, want);
    else if (t == 2) /* every clamp applies: the unconditional formula */
      CHECKF(fabs(old - want) <= 1e-12 * want, "trial %d: clamped %.9g vs %.9g", t, old, want);
  }
  free(a), free(b), free(work);
}

/* DoLa's layer choice with HF's exact log_softmax: the review's case,
 * final [5,0,0,0], layer A [0,1000,990,990], layer B [0,100,0,0]. HF's
 * JSDs: A 245.6317, B 25.3869, so A; with log-probabilities floored at -87
 * they were 21.90 and 22.16, and B won. */
static void test_dola_select_exact(void) {
  const float fin[4] = {5, 0, 0, 0};
  const float cand[2][4] = {{0, 1000, 990, 990}, {0, 100, 0, 0}};
  double js[2];
  int sel = decode_dola_select(&cand[0][0], 4, fin, 2, 4, js);
  CHECKF(sel == 0 && fabs(js[0] - 245.6317) < 1e-3 && fabs(js[1] - 25.3869) < 1e-3, "layer %d, JSDs %.6f %.6f",
         sel, js[0], js[1]);
  /* and in the other order: the index of A */
  const float rev[2][4] = {{0, 100, 0, 0}, {0, 1000, 990, 990}};
  CHECK(decode_dola_select(&rev[0][0], 4, fin, 2, 4, NULL) == 1);
}

static void test_cs_select_matches(void) {
  enum { K = 5, S = 40, C = 70 };
  float cand[K * C], ctx[S * C], probs[K], sc[K];
  uint8_t mask[S];
  for (int t = 0; t < 50; t++) {
    for (int i = 0; i < K * C; i++) cand[i] = (float)nrand();
    for (int i = 0; i < S * C; i++) ctx[i] = (float)nrand();
    if (t % 5 == 0) memcpy(ctx + 7 * C, cand + 2 * C, sizeof(float) * C); /* cos 1 */
    if (t % 7 == 0) memset(cand + C, 0, sizeof(float) * C);                /* zero state */
    for (int k = 0; k < K; k++) probs[k] = (float)urand();
    for (int j = 0; j < S; j++) mask[j] = urand() < 0.8;
    float alpha = (float)(t % 3) * 0.4f;
    /* oracle: candidates outer, sequential double dots */
    int best = 0;
    double bs = -INFINITY, want[K];
    for (int k = 0; k < K; k++) {
      double nk = 0, mx = -INFINITY;
      for (int i = 0; i < C; i++) nk += (double)cand[k * C + i] * cand[k * C + i];
      nk = fmax(sqrt(nk), 1e-12);
      for (int j = 0; j < S; j++) {
        if (!mask[j]) continue;
        double nj = 0, dot = 0;
        for (int i = 0; i < C; i++) {
          nj += (double)ctx[j * C + i] * ctx[j * C + i];
          dot += (double)cand[k * C + i] * ctx[j * C + i];
        }
        double cs = dot / (nk * fmax(sqrt(nj), 1e-12));
        mx = cs > mx ? cs : mx;
      }
      if (mx == -INFINITY) mx = 0;
      want[k] = (1.0 - alpha) * probs[k] - alpha * mx;
      if (k == 0 || want[k] > bs) bs = want[k], best = k;
    }
    int got = decode_cs_select(probs, cand, ctx, mask, K, S, C, alpha, sc);
    CHECKF(got == best, "trial %d: %d vs %d", t, got, best);
    for (int k = 0; k < K; k++) CHECK(fabs(sc[k] - want[k]) <= 1e-6);
  }
}

int main(void) {
  RUN(test_top_p_matches_sort);
  RUN(test_sample_work_and_probs);
  RUN(test_dola_contrast_matches);
  RUN(test_jsd_matches);
  RUN(test_jsd_peaked);
  RUN(test_dola_select_exact);
  RUN(test_cs_select_matches);
  TEST_EXIT();
}
