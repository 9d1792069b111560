/* decode.c — the scoring rules of decode.h. */
#include "model/decode.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

/* ---- basics ----------------------------------------------------------------*/

int decode_argmax(const float *x, int V) {
  int best = -1;
  for (int v = 0; v < V; v++)
    if (!isnan(x[v]) && (best < 0 || x[v] > x[best])) best = v;
  return best;
}

void decode_argmax_rows(int32_t *out, const float *logits, int N, int V) {
  for (int n = 0; n < N; n++) out[n] = decode_argmax(logits + (size_t)n * V, V);
}

static float row_max(const float *x, int V) { return max_of(x, (size_t)V); }

void decode_log_softmax(float *out, const float *x, int V) {
  float m = row_max(x, V);
  if (m == -INFINITY) {
    for (int v = 0; v < V; v++) out[v] = -INFINITY;
    return;
  }
  double s = 0;
  for (int v = 0; v < V; v++) s += exp((double)x[v] - m);
  double ls = log(s) + m;
  for (int v = 0; v < V; v++) out[v] = (float)((double)x[v] - ls);
}

void decode_probs_at(float *out, const float *x, int V, const int32_t *ids, int n) {
  float m = row_max(x, V);
  double s = 0;
  for (int v = 0; v < V; v++) s += exp((double)x[v] - m);
  for (int i = 0; i < n; i++) out[i] = (float)(exp((double)x[ids[i]] - m) / s);
}

void decode_softmax(float *out, const float *x, int V) {
  float m = row_max(x, V);
  double s = 0;
  for (int v = 0; v < V; v++) s += exp((double)x[v] - m);
  for (int v = 0; v < V; v++) out[v] = (float)(exp((double)x[v] - m) / s);
}

/* ---- logits processors -------------------------------------------------------*/

void decode_temperature(float *logits, int N, int V, float t) {
  size_t n = (size_t)N * V;
  for (size_t i = 0; i < n; i++) logits[i] /= t;
}

/* The k-th largest value of x (1-based k <= V), by selection on a copy. */
static float kth_largest(const float *x, int V, int k, float *tmp) {
  memcpy(tmp, x, (size_t)V * sizeof *tmp);
  /* Partial selection sort is O(V·k); quickselect keeps it O(V). */
  int lo = 0, hi = V - 1, want = k - 1; /* index in descending order */
  while (lo < hi) {
    float piv = tmp[(lo + hi) / 2];
    int i = lo, j = hi;
    while (i <= j) {
      while (tmp[i] > piv) i++;
      while (tmp[j] < piv) j--;
      if (i <= j) {
        float t = tmp[i];
        tmp[i] = tmp[j];
        tmp[j] = t;
        i++;
        j--;
      }
    }
    if (want <= j)
      hi = j;
    else if (want >= i)
      lo = i;
    else
      break;
  }
  return tmp[want];
}

int decode_top_k(float *logits, int N, int V, int k, int min_keep, foil_err *err) {
  if (k <= 0) return FOIL_OK;
  if (k < min_keep) k = min_keep;
  if (k >= V) return FOIL_OK;
  float *tmp = malloc((size_t)V * sizeof *tmp);
  if (!tmp) return foil_err_set(err, FOIL_ENOMEM, "top-k: out of memory for %d entries", V);
  for (int n = 0; n < N; n++) {
    float *x = logits + (size_t)n * V;
    float th = kth_largest(x, V, k, tmp);
    for (int v = 0; v < V; v++)
      if (x[v] < th) x[v] = -INFINITY;
  }
  free(tmp);
  return FOIL_OK;
}

/* One vocabulary entry for top-p: its logit, id and exp(logit - max). */
typedef struct {
  double e;
  float val;
  int id;
} vid;

/* HF's order: ascending by value, equal values by increasing id (the order
 * of torch.sort(stable=True)); a total order, as ids differ. */
static int vid_less(const vid *x, const vid *y) {
  return x->val < y->val || (x->val == y->val && x->id < y->id);
}

static void vid_swap(vid *a, int i, int j) {
  vid t = a[i];
  a[i] = a[j];
  a[j] = t;
}

/* How many entries of s[0..V) HF's top-p removes: the longest prefix of the
 * sorted order whose cumulative probability is <= budget and that leaves
 * the top min_keep. Never sorts: a quickselect on the cumulative mass
 * moves the removed entries to s[0..count) (in no particular order), each
 * round partitioning the undecided range around a pivot and keeping the
 * side where the boundary lies. Expected O(V). */
static int top_p_removed(vid *s, int V, double tot, double budget, int keep_from) {
  int lo = 0, hi = V; /* undecided range; s[0..lo) removed, s[hi..V) kept */
  double base = 0;    /* mass of s[0..lo) */
  while (lo < hi) {
    /* median of three as the pivot, moved to hi-1 */
    int mid = lo + (hi - lo) / 2;
    if (vid_less(&s[mid], &s[lo])) vid_swap(s, mid, lo);
    if (vid_less(&s[hi - 1], &s[lo])) vid_swap(s, hi - 1, lo);
    if (vid_less(&s[mid], &s[hi - 1])) vid_swap(s, mid, hi - 1);
    const vid piv = s[hi - 1];
    int i = lo;
    double less = 0;
    for (int j = lo; j < hi - 1; j++)
      if (vid_less(&s[j], &piv)) {
        less += s[j].e;
        vid_swap(s, i++, j);
      }
    vid_swap(s, i, hi - 1); /* the pivot at its rank i */
    double cum = base + less + piv.e;
    if (i < keep_from && cum / tot <= budget) {
      base = cum; /* the pivot and everything below it go */
      lo = i + 1;
    } else {
      hi = i; /* the pivot stays, and so does everything above it */
    }
  }
  return lo;
}

/* qsort order for the exact fallback: ascending value, then id */
static int vid_asc(const void *a, const void *b) {
  const vid *x = a, *y = b;
  if (x->val < y->val) return -1;
  if (x->val > y->val) return 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* The plain algorithm (HF's, in double as foil's reference): full sort,
 * sequential cumsum of exp/tot in sorted order. Returns the count removed;
 * s[0..count) are the removed entries. */
static int top_p_sorted(vid *s, int V, float m, double budget, int keep_from) {
  qsort(s, (size_t)V, sizeof *s, vid_asc);
  double tot = 0, cum = 0;
  for (int v = 0; v < V; v++) tot += exp((double)s[v].val - m);
  int i = 0;
  for (; i < V; i++) {
    cum += exp((double)s[i].val - m) / tot;
    if (i >= keep_from || !(cum <= budget)) break;
  }
  return i;
}

/* Sums in another order differ from the sorted cumsum by < V·2^-52 of the
 * total; a boundary closer than this to the budget is decided by the sort. */
#define TOP_P_NEAR 1e-9

int decode_top_p(float *logits, int N, int V, float p, int min_keep, foil_err *err) {
  if (p >= 1.0f) return FOIL_OK;
  vid *s = malloc((size_t)V * sizeof *s);
  if (!s) return foil_err_set(err, FOIL_ENOMEM, "top-p: out of memory for %d entries", V);
  const int keep_from = V - (min_keep > 0 ? min_keep : 0);
  for (int n = 0; n < N; n++) {
    float *x = logits + (size_t)n * V;
    float m = row_max(x, V);
    if (m == -INFINITY) continue; /* every entry filtered: nothing to rank */
    double tot = 0;
    for (int v = 0; v < V; v++) {
      double e = exp((double)x[v] - m);
      s[v] = (vid){e, x[v], v};
      tot += e;
    }
    const double budget = 1.0 - (double)p;
    int r = top_p_removed(s, V, tot, budget, keep_from);
    /* the mass removed, and with the next entry (the smallest kept) */
    double below = 0, next = INFINITY;
    int nx = -1;
    for (int i = 0; i < r; i++) below += s[i].e;
    for (int i = r; i < V; i++)
      if (nx < 0 || vid_less(&s[i], &s[nx])) nx = i;
    if (nx >= 0 && r < keep_from) next = (below + s[nx].e) / tot;
    if ((r > 0 && budget - below / tot < TOP_P_NEAR) || next - budget < TOP_P_NEAR) {
      for (int v = 0; v < V; v++) s[v] = (vid){0, x[v], v};
      r = top_p_sorted(s, V, m, budget, keep_from);
    }
    for (int i = 0; i < r; i++) x[s[i].id] = -INFINITY;
  }
  free(s);
  return FOIL_OK;
}

void decode_repetition_penalty(float *logits, int V, const int32_t *ids, int n, float penalty,
                               uint8_t *seen) {
  for (int i = 0; i < n; i++) {
    int t = ids[i];
    if (t < 0 || t >= V || seen[t]) continue;
    seen[t] = 1;
    logits[t] = logits[t] < 0 ? logits[t] * penalty : logits[t] / penalty;
  }
  for (int i = 0; i < n; i++)
    if (ids[i] >= 0 && ids[i] < V) seen[ids[i]] = 0;
}

/* ---- sampling ----------------------------------------------------------------*/

int decode_sample(const float *logits, int V, float u) {
  float m = row_max(logits, V);
  double tot = 0;
  for (int v = 0; v < V; v++) tot += exp((double)logits[v] - m);
  double target = (double)u * tot, cum = 0;
  int last = -1;
  for (int v = 0; v < V; v++) {
    double e = exp((double)logits[v] - m);
    if (e <= 0) continue;
    cum += e;
    last = v;
    if (cum > target) return v;
  }
  return last; /* rounding at u close to 1 */
}

int decode_sample_work(const float *logits, int V, float u, double *work) {
  float m = row_max(logits, V);
  double tot = 0;
  for (int v = 0; v < V; v++) tot += work[v] = exp((double)logits[v] - m);
  /* the same sums as decode_sample, from the kept exponentials */
  double target = (double)u * tot, cum = 0;
  int last = -1;
  for (int v = 0; v < V; v++) {
    double e = work[v];
    if (e <= 0) continue;
    cum += e;
    last = v;
    if (cum > target) return v;
  }
  return last;
}

void decode_sample_rows(int32_t *out, const float *logits, int N, int V, uint64_t seed,
                        uint64_t n0, uint64_t step) {
  for (int n = 0; n < N; n++)
    out[n] = decode_sample(logits + (size_t)n * V, V, rng_uniform(seed, n0 + (uint64_t)n, step));
}

void decode_topk_ids(const float *x, int V, int k, int32_t *ids, float *vals) {
  int cnt = 0;
  for (int v = 0; v < V; v++) {
    float val = x[v];
    if (isnan(val)) continue;
    if (cnt == k && !(val > x[ids[k - 1]])) continue; /* equal: earlier id stays */
    int p = cnt < k ? cnt++ : k - 1;
    while (p > 0 && val > x[ids[p - 1]]) {
      ids[p] = ids[p - 1];
      p--;
    }
    ids[p] = v;
  }
  for (int i = cnt; i < k; i++) ids[i] = cnt > 0 ? ids[cnt - 1] : 0;
  if (vals)
    for (int i = 0; i < k; i++) vals[i] = x[ids[i]];
}

/* ---- contrastive search --------------------------------------------------------*/

/* sum of a[i]·b[i] in double, in 8 independent lanes (a vector loop) */
static double dot_d(const float *a, const float *b, int C) {
  double acc[8] = {0}, s = 0;
  int i = 0;
  for (; i + 8 <= C; i += 8)
    for (int u = 0; u < 8; u++) acc[u] += (double)a[i + u] * b[i + u];
  for (int u = 0; u < 8; u++) s += acc[u];
  for (; i < C; i++) s += (double)a[i] * b[i];
  return s;
}

static double norm_of(const float *h, int C) {
  double s = sqrt(dot_d(h, h, C));
  return s > 1e-12 ? s : 1e-12;
}

int decode_cs_select(const float *probs, const float *cand_h, const float *ctx_h,
                     const uint8_t *ctx_mask, int k, int S, int C, float alpha, float *scores) {
  /* context rows outer: each context norm once, not once per candidate */
  double nc[64], mx[64];
  int best = 0;
  double best_s = -INFINITY;
  for (int c0 = 0; c0 < k; c0 += 64) {
    const int kc = k - c0 < 64 ? k - c0 : 64;
    for (int c = 0; c < kc; c++) {
      nc[c] = norm_of(cand_h + (size_t)(c0 + c) * C, C);
      mx[c] = -INFINITY;
    }
    for (int j = 0; j < S; j++) {
      if (ctx_mask && !ctx_mask[j]) continue;
      const float *hj = ctx_h + (size_t)j * C;
      const double nj = norm_of(hj, C);
      for (int c = 0; c < kc; c++) {
        double cs = dot_d(cand_h + (size_t)(c0 + c) * C, hj, C) / (nc[c] * nj);
        if (cs > mx[c]) mx[c] = cs;
      }
    }
    for (int c = 0; c < kc; c++) {
      double m = mx[c] == -INFINITY ? 0 : mx[c];
      double s = (1.0 - alpha) * probs[c0 + c] - alpha * m;
      if (scores) scores[c0 + c] = (float)s;
      if (c0 + c == 0 || s > best_s) {
        best_s = s;
        best = c0 + c;
      }
    }
  }
  return best;
}

/* ---- combinations ----------------------------------------------------------------*/

/* A probability whose float32 rounding is 0: p <= 2^-150, log p <= -150·ln 2. */
#define LOG_F32_ZERO (-103.97207708399179)

/* decode_jsd; with work [2V] the exponentials of the first pass are kept
 * (1 log per entry in the second), without it recomputed (2 exps + 1 log).
 * get_jsd's clamps are data-dependent: p (q) is clamped at 1e-9 only when
 * some entry of p (q) is 0 in float32, known from the row's minimum before
 * the second pass; m only when some p + q is 0, known only after it, so
 * the second pass sums both forms of the m terms and keeps one. */
static double jsd(const float *a, const float *b, int V, double *work) {
  float ma = -INFINITY, mb = -INFINITY, na = INFINITY, nb = INFINITY;
  for (int v = 0; v < V; v++) {
    ma = a[v] > ma ? a[v] : ma;
    mb = b[v] > mb ? b[v] : mb;
    na = a[v] < na ? a[v] : na;
    nb = b[v] < nb ? b[v] : nb;
  }
  double sa = 0, sb = 0;
  if (work) {
    for (int v = 0; v < V; v++) {
      sa += work[v] = exp((double)a[v] - ma);
      sb += work[V + v] = exp((double)b[v] - mb);
    }
  } else {
    for (int v = 0; v < V; v++) {
      sa += exp((double)a[v] - ma);
      sb += exp((double)b[v] - mb);
    }
  }
  /* log p = a - lse(a) directly, never log of p */
  const double lsa = log(sa) + ma, lsb = log(sb) + mb, lfloor = log(1e-9);
  const double ia = 1.0 / sa, ib = 1.0 / sb;
  const int clamp_p = (double)na - lsa <= LOG_F32_ZERO, clamp_q = (double)nb - lsb <= LOG_F32_ZERO;
  double js = 0, jsm = 0; /* m exact; m clamped */
  int clamp_m = 0;
  for (int v = 0; v < V; v++) {
    double lp = (double)a[v] - lsa, lq = (double)b[v] - lsb;
    double p = work ? work[v] * ia : exp(lp), q = work ? work[V + v] * ib : exp(lq);
    double m = 0.5 * (p + q), lm;
    if (m > 1e-300) {
      lm = log(m);
    } else { /* from the log-probabilities, where p and q (nearly) underflow in double */
      double hi = lp > lq ? lp : lq, lo = lp > lq ? lq : lp;
      lm = hi == -INFINITY ? -INFINITY : hi + log1p(exp(lo - hi)) - 0.69314718055994531;
    }
    double lmc = lm > lfloor ? lm : lfloor;
    clamp_m |= lp <= LOG_F32_ZERO && lq <= LOG_F32_ZERO;
    double pc = p, qc = q, lpc = lp, lqc = lq;
    if (clamp_p && p < 1e-9) pc = 1e-9, lpc = lfloor;
    if (clamp_q && q < 1e-9) qc = 1e-9, lqc = lfloor;
    /* F.kl_div(m_log, p) = p·(log p - log m), 0 where p = 0 (xlogy) */
    double tp = pc > 0 ? pc * (lpc - lm) : 0, tq = qc > 0 ? qc * (lqc - lm) : 0;
    double tpm = pc > 0 ? pc * (lpc - lmc) : 0, tqm = qc > 0 ? qc * (lqc - lmc) : 0;
    js += 0.5 * (tp + tq);
    jsm += 0.5 * (tpm + tqm);
  }
  return clamp_m ? jsm : js;
}

double decode_jsd(const float *a, const float *b, int V) { return jsd(a, b, V, NULL); }

double decode_jsd_work(const float *a, const float *b, int V, double *work) {
  return jsd(a, b, V, work);
}

void decode_combine(float *out, const float *z, const float *w, int n, int V) {
  for (int v = 0; v < V; v++) {
    double s = 0;
    for (int i = 0; i < n; i++)
      if (w[i] != 0) s += (double)w[i] * z[(size_t)i * V + v];
    out[v] = (float)s;
  }
}

float decode_cad(float *out, const float *z_ctx, const float *z_noctx, int V, float alpha,
                 int adaptive, float floor) {
  if (adaptive) {
    alpha = (float)decode_jsd(z_ctx, z_noctx, V);
    if (floor > 0 && alpha < floor) alpha = floor;
  }
  for (int v = 0; v < V; v++) out[v] = (1.0f + alpha) * z_ctx[v] - alpha * z_noctx[v];
  return alpha;
}

/* ---- DoLa ----------------------------------------------------------------------*/

int decode_dola_layers(int L, int kind, const int *list, int nlist, int *out, int cap,
                       foil_err *err) {
  int start = L > 2 ? 2 : L == 2 ? 1 : 0, n = 0;
  int lo = 0, hi = 0;
  if (kind == DOLA_LOW) {
    if (start == L / 2) {
      lo = start;
      hi = start + 1;
    } else {
      lo = start;
      hi = L <= 40 ? L / 2 : 20;
    }
  } else if (kind == DOLA_HIGH) {
    lo = L <= 40 ? L / 2 : L - 20;
    hi = L;
  } else if (kind == DOLA_LIST) {
    for (int i = 0; i < nlist; i++) {
      if (list[i] >= L) continue; /* HF drops them silently */
      if (list[i] < 0)
        return foil_err_set(err, FOIL_EINVAL, "dola_layers: layer %d is negative", list[i]);
      if (n == cap) return foil_err_set(err, FOIL_EINVAL, "dola_layers: more than %d layers", cap);
      out[n++] = list[i];
    }
  } else {
    return foil_err_set(err, FOIL_EINVAL, "dola_layers: kind %d is not low, high or a list", kind);
  }
  if (kind != DOLA_LIST)
    for (int j = lo; j < hi; j += 2) {
      if (n == cap) return foil_err_set(err, FOIL_EINVAL, "dola_layers: more than %d layers", cap);
      out[n++] = j;
    }
  if (n == 0)
    return foil_err_set(err, FOIL_EINVAL,
                        "dola_layers: no premature layer below the final layer %d", L);
  return n;
}

int decode_dola_select(const float *cand, size_t stride, const float *final, int nc, int V,
                       double *js) {
  /* HF's JSD here has no clamp: softmax_mix_kl, vectorized in float, with
   * exact (unfloored) log-probabilities (the argmax of JSDs that differ by
   * more than kernels.h's error bound; ties go first) */
  const float ma = row_max(final, V);
  const double lsa = log(exp_sum(final, (size_t)V, ma)) + ma;
  int best = 0;
  double bj = -INFINITY;
  for (int i = 0; i < nc; i++) {
    const float *c = cand + (size_t)i * stride;
    const float mb = row_max(c, V);
    const double lsb = log(exp_sum(c, (size_t)V, mb)) + mb;
    double j = softmax_mix_kl(final, lsa, c, lsb, (size_t)V);
    if (js) js[i] = j;
    if (j > bj) {
      bj = j;
      best = i;
    }
  }
  return best;
}

void decode_dola_contrast(float *out, const float *final, const float *base, int V,
                          float relative_top, int min_keep) {
  const float mf = row_max(final, V), fb_max = row_max(base, V);
  if (mf == -INFINITY) {
    for (int v = 0; v < V; v++) out[v] = -INFINITY;
    return;
  }
  /* float exponentials (kernels' exp_sum): log-sums off by < 3e-7, inside
   * HF's float32 log_softmax rounding of these outputs' magnitude */
  const double lsf = log(exp_sum(final, (size_t)V, mf)) + mf;
  const double lsb = log(exp_sum(base, (size_t)V, fb_max)) + fb_max;
  /* max of log_softmax(final): rounding is monotone, so it is the max's */
  float mx = (float)((double)mf - lsf);
  double th = (double)mx + log((double)relative_top);
  if (min_keep > 1) {
    for (int v = 0; v < V; v++) out[v] = (float)((double)final[v] - lsf);
    /* the min_keep-th largest of out */
    float prev = INFINITY, kth = -INFINITY;
    int cnt = 0;
    while (cnt < min_keep) {
      float m = -INFINITY;
      for (int v = 0; v < V; v++)
        if (out[v] < prev && out[v] > m) m = out[v];
      int c = 0;
      for (int v = 0; v < V; v++)
        if (out[v] == m) c++;
      if (c == 0 || m == -INFINITY) break;
      kth = m;
      cnt += c;
      prev = m;
    }
    if (kth < th) th = kth;
  }
  float thf = (float)th; /* HF compares float32 against float32 */
  for (int v = 0; v < V; v++) {
    float f = (float)((double)final[v] - lsf); /* log_softmax(final)[v] */
    float g = f - (float)((double)base[v] - lsb);
    /* out = f < thf ? -inf : g as a bit select, which GCC vectorizes (a
     * conditional it would not, for the conversions' possible traps) */
    uint32_t gb, drop = -(uint32_t)(f < thf);
    memcpy(&gb, &g, sizeof gb);
    gb = (gb & ~drop) | (0xff800000u & drop); /* -inf's bits */
    memcpy(out + v, &gb, sizeof gb);
  }
}

/* ---- beam search ---------------------------------------------------------------*/

struct decode_beam {
  int nb, prompt_len, max_gen, early, done;
  float lp;
  int32_t eos;
  int cur; /* generated tokens of each running beam */
  float *score;     /* [nb] running cumulative scores */
  int32_t *toks;    /* [nb, max_gen] running histories */
  int32_t *tmp;     /* [nb, max_gen] reorder scratch */
  int nh;           /* finished hypotheses kept (<= nb) */
  float worst;      /* HF worst_score */
  float *hscore;    /* [nb + 1] */
  int *hlen;        /* [nb + 1] generated tokens, EOS excluded */
  int *heos;        /* [nb + 1] ended with EOS */
  int *horder;      /* [nb + 1] insertion counter (for finalize's tie rule) */
  int32_t *htoks;   /* [nb + 1, max_gen] */
  int counter;
  long *cidx;       /* [2·nb] candidate scratch */
  float *cval;      /* [2·nb] */
  float *ns;        /* [nb] */
};

int decode_beam_new(decode_beam **out, int nb, int prompt_len, int max_gen, float length_penalty,
                    int early_stopping, int32_t eos, foil_err *err) {
  *out = NULL;
  if (nb < 1 || max_gen < 1 || prompt_len < 0)
    return foil_err_set(err, FOIL_EINVAL, "beam: need num_beams >= 1 and max_new_tokens >= 1");
  decode_beam *b = calloc(1, sizeof *b);
  if (!b) return foil_err_set(err, FOIL_ENOMEM, "beam: out of memory");
  b->nb = nb;
  b->prompt_len = prompt_len;
  b->max_gen = max_gen;
  b->lp = length_penalty;
  b->early = early_stopping;
  b->eos = eos;
  b->worst = 1e9f;
  size_t hs = (size_t)(nb + 1);
  b->score = malloc((size_t)nb * sizeof *b->score);
  b->toks = calloc((size_t)nb * max_gen, sizeof *b->toks);
  b->tmp = calloc((size_t)nb * max_gen, sizeof *b->tmp);
  b->hscore = malloc(hs * sizeof *b->hscore);
  b->hlen = malloc(hs * sizeof *b->hlen);
  b->heos = malloc(hs * sizeof *b->heos);
  b->horder = malloc(hs * sizeof *b->horder);
  b->htoks = calloc(hs * max_gen, sizeof *b->htoks);
  b->cidx = malloc((size_t)(2 * nb) * sizeof *b->cidx);
  b->cval = malloc((size_t)(2 * nb) * sizeof *b->cval);
  b->ns = malloc((size_t)nb * sizeof *b->ns);
  if (!b->cidx || !b->cval || !b->ns || !b->score || !b->toks || !b->tmp || !b->hscore || !b->hlen || !b->heos || !b->horder ||
      !b->htoks) {
    decode_beam_destroy(&b);
    return foil_err_set(err, FOIL_ENOMEM, "beam: out of memory");
  }
  for (int i = 0; i < nb; i++) b->score[i] = i == 0 ? 0.0f : -1e9f;
  *out = b;
  return FOIL_OK;
}

void decode_beam_destroy(decode_beam **pb) {
  decode_beam *b = pb ? *pb : NULL;
  if (!b) return;
  free(b->score);
  free(b->toks);
  free(b->tmp);
  free(b->hscore);
  free(b->hlen);
  free(b->heos);
  free(b->horder);
  free(b->htoks);
  free(b->cidx);
  free(b->cval);
  free(b->ns);
  free(b);
  *pb = NULL;
}

const float *decode_beam_scores(const decode_beam *b) { return b->score; }
int decode_beam_done(const decode_beam *b) { return b->done; }

const int32_t *decode_beam_tokens(const decode_beam *b, int i, int *n) {
  *n = b->cur;
  return b->toks + (size_t)i * b->max_gen;
}

/* Is (s, i) ranked before (t, j)? Higher score first, lower flat index on
 * ties (torch.topk returns the lower index first on CPU in practice). */
static int cand_before(float s, long i, float t, long j) { return s > t || (s == t && i < j); }

void decode_beam_topk(decode_beam *b, const float *logp, int V, decode_cand *cand) {
  int K = 2 * b->nb, cnt = 0;
  long *idx = b->cidx;
  float *val = b->cval;
  for (int beam = 0; beam < b->nb; beam++)
    for (int v = 0; v < V; v++) {
      float s = logp[(size_t)beam * V + v] + b->score[beam];
      long id = (long)beam * V + v;
      if (isnan(s)) continue;
      if (cnt == K && !cand_before(s, id, val[K - 1], idx[K - 1])) continue;
      int p = cnt < K ? cnt++ : K - 1;
      while (p > 0 && cand_before(s, id, val[p - 1], idx[p - 1])) {
        val[p] = val[p - 1];
        idx[p] = idx[p - 1];
        p--;
      }
      val[p] = s;
      idx[p] = id;
    }
  for (int i = 0; i < K; i++) {
    int j = i < cnt ? i : cnt - 1;
    cand[i].beam = (int)(idx[j] / V);
    cand[i].token = (int32_t)(idx[j] % V);
    cand[i].score = val[j];
  }
}

/* HF BeamHypotheses.add. len = generated tokens (EOS excluded). */
static void hyp_add(decode_beam *b, const int32_t *toks, int len, float sum_logprobs, int eos) {
  double L = (double)(b->prompt_len + len);
  float sc = (float)((double)sum_logprobs / pow(L > 0 ? L : 1, (double)b->lp));
  if (b->nh < b->nb || sc > b->worst) {
    int h = b->nh++;
    b->hscore[h] = sc;
    b->hlen[h] = len;
    b->heos[h] = eos;
    b->horder[h] = b->counter++;
    memcpy(b->htoks + (size_t)h * b->max_gen, toks, (size_t)len * sizeof *toks);
    if (b->nh > b->nb) {
      /* drop the worst (first in sorted order on ties, as HF's sorted()[0]) */
      int w = 0;
      for (int i = 1; i < b->nh; i++)
        if (b->hscore[i] < b->hscore[w] ||
            (b->hscore[i] == b->hscore[w] && b->horder[i] < b->horder[w]))
          w = i;
      int last = b->nh - 1;
      if (w != last) {
        b->hscore[w] = b->hscore[last];
        b->hlen[w] = b->hlen[last];
        b->heos[w] = b->heos[last];
        b->horder[w] = b->horder[last];
        memcpy(b->htoks + (size_t)w * b->max_gen, b->htoks + (size_t)last * b->max_gen,
               (size_t)b->max_gen * sizeof *b->htoks);
      }
      b->nh--;
      float mn = INFINITY;
      for (int i = 0; i < b->nh; i++)
        if (b->hscore[i] < mn) mn = b->hscore[i];
      b->worst = mn;
    } else {
      if (sc < b->worst) b->worst = sc;
    }
  }
}

int decode_beam_process(decode_beam *b, const decode_cand *cand, int ncand, int *src,
                        int32_t *next) {
  if (b->done) {
    for (int i = 0; i < b->nb; i++) {
      src[i] = i;
      next[i] = b->eos >= 0 ? b->eos : 0;
    }
    return 1;
  }
  int nb = b->nb, filled = 0;
  float *ns = b->ns;
  for (int r = 0; r < ncand && filled < nb; r++) {
    const decode_cand *c = &cand[r];
    if (b->eos >= 0 && c->token == b->eos) {
      if (r >= nb) continue;
      hyp_add(b, b->toks + (size_t)c->beam * b->max_gen, b->cur, c->score, 1);
    } else {
      ns[filled] = c->score;
      src[filled] = c->beam;
      next[filled] = c->token;
      filled++;
    }
  }
  for (int i = filled; i < nb; i++) { /* fewer candidates than beams */
    ns[i] = -INFINITY;
    src[i] = filled > 0 ? src[0] : 0;
    next[i] = filled > 0 ? next[0] : 0;
  }
  /* is_done with the best candidate score of this step (HF passes
   * next_scores.max(), the first of the sorted candidates). The bound is
   * rounded to float as hyp_add rounds a score (HF: both float32 tensors),
   * so when this step's best candidate is the EOS that became the worst
   * hypothesis, the two are equal and the search is done, as in HF (a
   * double bound made that depend on the rounding's direction). */
  float best = ncand > 0 ? cand[0].score : -INFINITY;
  if (b->nh >= nb) {
    if (b->early)
      b->done = 1;
    else {
      double cur_len = (double)(b->prompt_len + b->cur);
      float cs = (float)((double)best / pow(cur_len > 0 ? cur_len : 1, (double)b->lp));
      if (b->worst >= cs) b->done = 1;
    }
  }
  /* new histories */
  if (b->cur < b->max_gen) {
    for (int i = 0; i < nb; i++) {
      memcpy(b->tmp + (size_t)i * b->max_gen, b->toks + (size_t)src[i] * b->max_gen,
             (size_t)b->cur * sizeof *b->toks);
      b->tmp[(size_t)i * b->max_gen + b->cur] = next[i];
    }
    int32_t *t = b->toks;
    b->toks = b->tmp;
    b->tmp = t;
    b->cur++;
  }
  memcpy(b->score, ns, (size_t)nb * sizeof *ns);
  return b->done;
}

int decode_beam_finalize(decode_beam *b, int32_t *out, int cap, float *score) {
  if (!b->done)
    for (int i = 0; i < b->nb; i++)
      hyp_add(b, b->toks + (size_t)i * b->max_gen, b->cur, b->score[i], 0);
  if (b->nh == 0) {
    if (score) *score = -INFINITY;
    return 0;
  }
  /* sorted by score (stable in insertion order), pop() the last: the best,
   * and among equal scores the one added last. */
  int w = 0;
  for (int i = 1; i < b->nh; i++)
    if (b->hscore[i] > b->hscore[w] ||
        (b->hscore[i] == b->hscore[w] && b->horder[i] > b->horder[w]))
      w = i;
  int n = b->hlen[w];
  if (n > cap) n = cap;
  memcpy(out, b->htoks + (size_t)w * b->max_gen, (size_t)n * sizeof *out);
  if (b->heos[w] && n < cap && n < b->max_gen) out[n++] = b->eos;
  if (score) *score = b->hscore[w];
  return n;
}

/* ---- contrastive decoding ------------------------------------------------------*/

void decode_cd_candidates(decode_beam *b, const float *z_exp, const float *z_ama, int V,
                          float alpha, float beta, float tau_ama, int min_keep, int first,
                          float *work, decode_cand *cand) {
  int nb = b->nb, K = 2 * nb, cnt = 0;
  float *e = work, *a = work + V;
  long *idx = b->cidx;
  float *key = b->cval;
  /* 1. pre-selection over nb·V by the key (see decode.h) */
  for (int beam = 0; beam < nb; beam++) {
    const float *ze = z_exp + (size_t)beam * V;
    decode_log_softmax(e, ze, V);
    float th = 0;
    if (first) {
      float mx = row_max(e, V);
      th = mx + logf(alpha);
      if (min_keep > 1) {
        int32_t ids[8];
        int mk = min_keep > 8 ? 8 : min_keep;
        decode_topk_ids(e, V, mk, ids, NULL);
        if (e[ids[mk - 1]] < th) th = e[ids[mk - 1]];
      }
    }
    for (int v = 0; v < V; v++) {
      float s = first ? (e[v] < th ? -INFINITY : e[v] + b->score[beam]) : e[v];
      long id = (long)beam * V + v;
      if (isnan(s)) continue;
      if (cnt == K && !cand_before(s, id, key[K - 1], idx[K - 1])) continue;
      int p = cnt < K ? cnt++ : K - 1;
      while (p > 0 && cand_before(s, id, key[p - 1], idx[p - 1])) {
        key[p] = key[p - 1];
        idx[p] = idx[p - 1];
        p--;
      }
      key[p] = s;
      idx[p] = id;
    }
  }
  /* 2. CD scores of the selected candidates */
  for (int i = 0; i < K; i++) {
    int j = i < cnt ? i : cnt - 1;
    int beam = (int)(idx[j] / V);
    int32_t tok = (int32_t)(idx[j] % V);
    const float *ze = z_exp + (size_t)beam * V, *za = z_ama + (size_t)beam * V;
    decode_log_softmax(e, ze, V);
    decode_log_softmax(a, za, V);
    float mx = row_max(e, V), th = mx + logf(alpha);
    if (min_keep > 1) {
      int32_t ids[8];
      int mk = min_keep > 8 ? 8 : min_keep;
      decode_topk_ids(e, V, mk, ids, NULL);
      if (e[ids[mk - 1]] < th) th = e[ids[mk - 1]];
    }
    float ep = e[tok] < th ? -INFINITY : e[tok];
    float am = a[tok] / tau_ama;
    if (am == -INFINITY) am = INFINITY;
    cand[i].beam = beam;
    cand[i].token = tok;
    cand[i].score = ep + b->score[beam] - beta * am;
  }
  /* 3. stable re-sort, best first */
  for (int i = 1; i < K; i++) {
    decode_cand c = cand[i];
    int p = i;
    while (p > 0 && c.score > cand[p - 1].score) {
      cand[p] = cand[p - 1];
      p--;
    }
    cand[p] = c;
  }
}
