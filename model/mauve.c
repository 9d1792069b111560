/* mauve.c — MAUVE from features or bucket labels (model/mauve.h).
 *
 * Ties on the divergence curve: the area under y(x) sorts the points by x;
 * points with EQUAL x (identical histograms give many (1, 1) points next to
 * the extreme (1, 0)) are put in the order the curve runs — y descending —
 * and the area under x(y) likewise (y ascending, then x descending). That
 * is the monotone frontier's own order and gives MAUVE(P, P) = 1, which is
 * what mauve-text returns; numpy's argsort is not stable and promises no
 * order among ties, so this is the one place foil chooses. */
#include "model/mauve.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

void mauve_config_default(mauve_config *cfg) {
  cfg->num_buckets = 0;
  cfg->explained_var = 0.9;
  cfg->kmeans_redo = 5;
  cfg->kmeans_max_iter = 500;
  cfg->seed = 25;
  cfg->curve_points = 25;
  cfg->scaling = 5;
}

int mauve_auto_buckets(int np, int nq) {
  int n = np < nq ? np : nq;
  /* Python's round(): half to even, which nearbyint does in the default
   * rounding mode. */
  int k = (int)nearbyint((double)n / 10.0);
  return k < 2 ? 2 : k;
}

void mauve_result_clear(mauve_result *r) {
  free(r->p_hist);
  free(r->q_hist);
  memset(r, 0, sizeof *r);
}

static int check_cfg(const mauve_config *cfg, foil_err *err) {
  if (!(cfg->explained_var > 0 && cfg->explained_var < 1))
    return foil_err_set(err, FOIL_EINVAL, "mauve: explained_var must be in (0, 1), got %g",
                        cfg->explained_var);
  if (cfg->kmeans_redo < 1 || cfg->kmeans_max_iter < 1)
    return foil_err_set(err, FOIL_EINVAL, "mauve: kmeans_redo and kmeans_max_iter must be >= 1");
  if (cfg->curve_points < 1)
    return foil_err_set(err, FOIL_EINVAL, "mauve: curve_points must be >= 1");
  if (!(cfg->scaling > 0))
    return foil_err_set(err, FOIL_EINVAL, "mauve: scaling must be > 0, got %g", cfg->scaling);
  if (cfg->num_buckets < 0)
    return foil_err_set(err, FOIL_EINVAL, "mauve: num_buckets must be >= 0 (0: auto)");
  return 0;
}

/* ---- histograms → curve → areas ---------------------------------------- */

/* KL(a‖b) over k buckets: +inf where a > 0 = b. */
static double kl(const double *a, const double *b, int k) {
  for (int i = 0; i < k; i++)
    if (a[i] != 0 && b[i] == 0) return INFINITY;
  double s = 0;
  for (int i = 0; i < k; i++)
    if (a[i] != 0 && b[i] != 0) s += a[i] * log(a[i] / b[i]);
  return s;
}

typedef struct {
  double x, y;
} point;

static int by_x(const void *pa, const void *pb) {
  const point *a = pa, *b = pb;
  if (a->x != b->x) return a->x < b->x ? -1 : 1;
  return (a->y < b->y) - (a->y > b->y); /* y descending */
}

static int by_y(const void *pa, const void *pb) {
  const point *a = pa, *b = pb;
  if (a->y != b->y) return a->y < b->y ? -1 : 1;
  return (a->x < b->x) - (a->x > b->x); /* x descending */
}

/* Trapezoid area of v(u) over points sorted by u. */
static double trapezoid(const point *pts, int n, int u_is_x) {
  double s = 0;
  for (int i = 0; i + 1 < n; i++) {
    double du = u_is_x ? pts[i + 1].x - pts[i].x : pts[i + 1].y - pts[i].y;
    double v = u_is_x ? pts[i + 1].y + pts[i].y : pts[i + 1].x + pts[i].x;
    s += du * v / 2.0;
  }
  return s;
}

/* MAUVE of two histograms; pts scratch [points + 2]. */
static double mauve_hist(const double *p, const double *q, int k, const mauve_config *cfg,
                         double *r, point *pts) {
  int m = cfg->curve_points;
  double lo = 1e-6, hi = 1 - 1e-6;
  double step = m > 1 ? (hi - lo) / (double)(m - 1) : 0;
  pts[0] = (point){exp(-cfg->scaling * 0.0), 0.0}; /* (KL 0, KL inf) */
  for (int i = 0; i < m; i++) {
    double w = (double)i * step + lo; /* numpy.linspace */
    if (m > 1 && i == m - 1) w = hi;
    for (int j = 0; j < k; j++) r[j] = w * p[j] + (1 - w) * q[j];
    pts[1 + i] = (point){exp(-cfg->scaling * kl(q, r, k)), exp(-cfg->scaling * kl(p, r, k))};
  }
  pts[m + 1] = (point){0.0, 1.0};
  int n = m + 2;
  qsort(pts, (size_t)n, sizeof *pts, by_x);
  double a1 = trapezoid(pts, n, 1);
  qsort(pts, (size_t)n, sizeof *pts, by_y);
  double a2 = trapezoid(pts, n, 0);
  return 0.5 * (a1 + a2);
}

/* mauve-text's get_fronter_integral (scaling 2). */
static double frontier_integral(const double *p, const double *q, int k) {
  double total = 0;
  for (int i = 0; i < k; i++) {
    double a = p[i], b = q[i];
    if (a == 0 && b == 0) continue;
    if (a == 0) total += b / 4;
    else if (b == 0) total += a / 4;
    else if (fabs(a - b) > 1e-8)
      total += 0.25 * (a + b) - 0.5 * (a * b * (log(a) - log(b)) / (a - b));
  }
  return total * 2;
}

/* counts[j] = how many of labels[0..n) are j; a label outside [0, k) is
 * FOIL_EINVAL naming its side (P or Q) and row. */
static int count_labels(const int *labels, int n, int k, int64_t *counts, char side, foil_err *err) {
  for (int i = 0; i < n; i++) {
    if (labels[i] < 0 || labels[i] >= k)
      return foil_err_set(err, FOIL_EINVAL, "mauve: %c label %d of row %d not in [0, %d)", side, labels[i], i, k);
    counts[labels[i]]++;
  }
  return FOIL_OK;
}

int mauve_from_labels(const int *p_labels, int np, const int *q_labels, int nq, int k,
                      const mauve_config *cfg, mauve_result *r, foil_err *err) {
  memset(r, 0, sizeof *r);
  int rc = check_cfg(cfg, err);
  if (rc) return rc;
  if (np < 1 || nq < 1)
    return foil_err_set(err, FOIL_EINVAL, "mauve: P and Q need at least one row each (%d, %d)",
                        np, nq);
  if (k < 1) return foil_err_set(err, FOIL_EINVAL, "mauve: %d buckets", k);
  int64_t *pc = calloc((size_t)k, sizeof *pc), *qc = calloc((size_t)k, sizeof *qc);
  double *ps = malloc((size_t)k * sizeof *ps), *qs = malloc((size_t)k * sizeof *qs);
  double *mix = malloc((size_t)k * sizeof *mix);
  point *pts = malloc((size_t)(cfg->curve_points + 2) * sizeof *pts);
  r->p_hist = malloc((size_t)k * sizeof *r->p_hist);
  r->q_hist = malloc((size_t)k * sizeof *r->q_hist);
  if (!pc || !qc || !ps || !qs || !mix || !pts || !r->p_hist || !r->q_hist) {
    rc = foil_err_set(err, FOIL_ENOMEM, "mauve: out of memory for %d buckets", k);
    goto done;
  }
  if ((rc = count_labels(p_labels, np, k, pc, 'P', err)) || (rc = count_labels(q_labels, nq, k, qc, 'Q', err)))
    goto done;
  for (int j = 0; j < k; j++) {
    r->p_hist[j] = (double)pc[j] / (double)np;
    r->q_hist[j] = (double)qc[j] / (double)nq;
    ps[j] = ((double)pc[j] + 0.5) / ((double)np + 0.5 * k);
    qs[j] = ((double)qc[j] + 0.5) / ((double)nq + 0.5 * k);
  }
  r->num_buckets = k;
  r->mauve = mauve_hist(r->p_hist, r->q_hist, k, cfg, mix, pts);
  r->frontier_integral = frontier_integral(r->p_hist, r->q_hist, k);
  r->mauve_star = mauve_hist(ps, qs, k, cfg, mix, pts);
  r->frontier_integral_star = frontier_integral(ps, qs, k);
done:
  free(pc);
  free(qc);
  free(ps);
  free(qs);
  free(mix);
  free(pts);
  if (rc) mauve_result_clear(r);
  return rc;
}

/* ---- PCA ----------------------------------------------------------------- */

/* x [n, d] (normalized rows, double) → y [n, m] of the first m principal
 * components reaching explained_var. Returns m, or a negative code. */
static int pca(const double *x, int n, int d, double explained_var, double **y_out,
               foil_err *err) {
  double *mean = calloc((size_t)d, sizeof *mean);
  double *cov = calloc((size_t)d * d, sizeof *cov);
  double *w = malloc((size_t)d * sizeof *w);
  double *xc = malloc((size_t)d * sizeof *xc);
  double *y = NULL;
  int m = 0;
  if (!mean || !cov || !w || !xc) {
    m = foil_err_set(err, FOIL_ENOMEM, "mauve: out of memory for a %dx%d covariance", d, d);
    goto done;
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < d; j++) mean[j] += x[(size_t)i * d + j];
  for (int j = 0; j < d; j++) mean[j] /= n;
  /* upper triangle (row-major) of Xc^T Xc, one rank-1 update per row */
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < d; j++) xc[j] = x[(size_t)i * d + j] - mean[j];
    for (int a = 0; a < d; a++) {
      double xa = xc[a];
      double *row = cov + (size_t)a * d;
      for (int b = a; b < d; b++) row[b] += xa * xc[b];
    }
  }
  for (int a = 0; a < d; a++)
    for (int b = 0; b < a; b++) cov[(size_t)a * d + b] = cov[(size_t)b * d + a];
  int info = symeig(cov, w, d);
  if (info != 0) {
    m = info < 0 ? foil_err_set(err, FOIL_ENOMEM, "mauve: out of memory in the eigen-solver")
                 : foil_err_set(err, FOIL_EINTERNAL,
                                "mauve: eigen-solver did not converge (%d values)", info);
    goto done;
  }
  /* descending order: component c is eigenpair d-1-c; negative rounding
   * noise counts as 0 variance */
  double total = 0;
  for (int j = 0; j < d; j++) total += w[j] > 0 ? w[j] : 0;
  m = d;
  if (total > 0) {
    double cum = 0;
    for (int c = 0; c < d; c++) {
      double v = w[d - 1 - c];
      cum += (v > 0 ? v : 0) / total;
      if (cum >= explained_var) {
        m = c + 1;
        break;
      }
    }
  } else {
    m = 1; /* every row the same point: numpy's argmax of all-False is 0 */
  }
  y = malloc((size_t)n * m * sizeof *y);
  if (!y) {
    m = foil_err_set(err, FOIL_ENOMEM, "mauve: out of memory for %d x %d projections", n, m);
    goto done;
  }
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < d; j++) xc[j] = x[(size_t)i * d + j] - mean[j];
    for (int c = 0; c < m; c++) {
      const double *v = cov + (size_t)(d - 1 - c) * d;
      double s = 0;
      for (int j = 0; j < d; j++) s += xc[j] * v[j];
      y[(size_t)i * m + c] = s;
    }
  }
  *y_out = y;
  y = NULL;
done:
  free(mean);
  free(cov);
  free(w);
  free(xc);
  free(y);
  return m;
}

/* ---- k-means ------------------------------------------------------------- */

static double sqdist(const double *a, const double *b, int m) {
  double s = 0;
  for (int j = 0; j < m; j++) {
    double t = a[j] - b[j];
    s += t * t;
  }
  return s;
}

/* A uniform double in [0, 1) from the counter-based RNG. */
static double unif(uint64_t seed, uint64_t stream, uint64_t *ctr) {
  uint32_t hi = rng_u32(seed, stream, (*ctr)++), lo = rng_u32(seed, stream, (*ctr)++);
  return ((double)(hi >> 5) * 67108864.0 + (double)(lo >> 6)) / 9007199254740992.0;
}

/* Assigns every row to its nearest centroid (ties: the lower index);
 * returns the sum of squared distances, fills dist. */
static double assign(const double *y, int n, int m, const double *cent, int k, int *lab,
                     double *dist, int *changed) {
  double obj = 0;
  int ch = 0;
  for (int i = 0; i < n; i++) {
    const double *yi = y + (size_t)i * m;
    int best = 0;
    double bd = sqdist(yi, cent, m);
    for (int c = 1; c < k; c++) {
      double dd = sqdist(yi, cent + (size_t)c * m, m);
      if (dd < bd) {
        bd = dd;
        best = c;
      }
    }
    if (lab[i] != best) ch = 1;
    lab[i] = best;
    dist[i] = bd;
    obj += bd;
  }
  *changed = ch;
  return obj;
}

/* One restart: k-means++ seeding from (seed, stream), Lloyd until stable or
 * max_iter. Leaves lab assigned to the final centroids; returns the SSE. */
static double kmeans_run(const double *y, int n, int m, int k, int max_iter, uint64_t seed,
                         uint64_t stream, double *cent, int *lab, double *dist, int *cnt) {
  uint64_t ctr = 0;
  /* k-means++: first centroid uniform, then each new one with probability
   * proportional to the squared distance to the nearest chosen one. */
  int first = (int)(unif(seed, stream, &ctr) * n);
  if (first >= n) first = n - 1;
  memcpy(cent, y + (size_t)first * m, (size_t)m * sizeof *cent);
  for (int i = 0; i < n; i++) dist[i] = sqdist(y + (size_t)i * m, cent, m);
  for (int c = 1; c < k; c++) {
    double tot = 0;
    for (int i = 0; i < n; i++) tot += dist[i];
    int pick = n - 1;
    if (tot > 0) {
      double u = unif(seed, stream, &ctr) * tot, acc = 0;
      for (int i = 0; i < n; i++) {
        acc += dist[i];
        if (u < acc) {
          pick = i;
          break;
        }
      }
    } else {
      pick = (int)(unif(seed, stream, &ctr) * n); /* all points coincide */
      if (pick >= n) pick = n - 1;
    }
    double *cc = cent + (size_t)c * m;
    memcpy(cc, y + (size_t)pick * m, (size_t)m * sizeof *cc);
    for (int i = 0; i < n; i++) {
      double dd = sqdist(y + (size_t)i * m, cc, m);
      if (dd < dist[i]) dist[i] = dd;
    }
  }
  for (int i = 0; i < n; i++) lab[i] = -1;
  int changed = 1;
  double obj = 0;
  for (int it = 0; it < max_iter; it++) {
    obj = assign(y, n, m, cent, k, lab, dist, &changed);
    if (!changed) break;
    /* centroids = means of their rows */
    memset(cent, 0, (size_t)k * m * sizeof *cent);
    memset(cnt, 0, (size_t)k * sizeof *cnt);
    for (int i = 0; i < n; i++) {
      cnt[lab[i]]++;
      double *cc = cent + (size_t)lab[i] * m;
      const double *yi = y + (size_t)i * m;
      for (int j = 0; j < m; j++) cc[j] += yi[j];
    }
    for (int c = 0; c < k; c++)
      if (cnt[c] > 0)
        for (int j = 0; j < m; j++) cent[(size_t)c * m + j] /= cnt[c];
    for (int c = 0; c < k; c++) {
      if (cnt[c] > 0) continue;
      /* empty bucket: take the row farthest from its centroid among buckets
       * of more than one row (the lowest row on ties) */
      int far = -1;
      for (int i = 0; i < n; i++)
        if (cnt[lab[i]] > 1 && (far < 0 || dist[i] > dist[far])) far = i;
      if (far < 0) continue; /* fewer distinct rows than buckets */
      cnt[lab[far]]--;
      cnt[c] = 1;
      lab[far] = c;
      dist[far] = 0;
      memcpy(cent + (size_t)c * m, y + (size_t)far * m, (size_t)m * sizeof *cent);
    }
    /* the bucket a row was taken from keeps its mean until the next
     * update recomputes it from the rows it is assigned */
  }
  if (changed) obj = assign(y, n, m, cent, k, lab, dist, &changed);
  return obj;
}

int mauve_cluster(const float *p, int np, const float *q, int nq, int d, int k,
                  const mauve_config *cfg, int *labels, int *pca_dim, foil_err *err) {
  int rc = check_cfg(cfg, err);
  if (rc) return rc;
  if (np < 1 || nq < 1)
    return foil_err_set(err, FOIL_EINVAL, "mauve: P and Q need at least one row each (%d, %d)",
                        np, nq);
  if (d < 1) return foil_err_set(err, FOIL_EINVAL, "mauve: feature dimension %d", d);
  int n = np + nq;
  if (k < 1 || k > n)
    return foil_err_set(err, FOIL_EINVAL, "mauve: %d buckets for %d rows", k, n);
  double *x = malloc((size_t)n * d * sizeof *x);
  double *y = NULL, *cent = NULL, *dist = NULL;
  int *lab = NULL, *cnt = NULL, m = 0;
  double best = INFINITY;
  if (!x) return foil_err_set(err, FOIL_ENOMEM, "mauve: out of memory for %d x %d features", n, d);
  /* Q's rows, then P's; L2-normalized (a zero row stays zero, as sklearn) */
  for (int i = 0; i < n; i++) {
    const float *src = i < nq ? q + (size_t)i * d : p + (size_t)(i - nq) * d;
    double ss = 0;
    for (int j = 0; j < d; j++) {
      if (!isfinite(src[j])) {
        rc = foil_err_set(err, FOIL_EINVAL, "mauve: %s feature row %d has a non-finite value",
                          i < nq ? "Q" : "P", i < nq ? i : i - nq);
        goto done;
      }
      ss += (double)src[j] * src[j];
    }
    double nrm = ss > 0 ? sqrt(ss) : 1;
    for (int j = 0; j < d; j++) x[(size_t)i * d + j] = src[j] / nrm;
  }
  m = pca(x, n, d, cfg->explained_var, &y, err);
  if (m < 0) {
    rc = m;
    goto done;
  }
  if (pca_dim) *pca_dim = m;
  cent = malloc((size_t)k * m * sizeof *cent);
  dist = malloc((size_t)n * sizeof *dist);
  lab = malloc((size_t)n * sizeof *lab);
  cnt = malloc((size_t)k * sizeof *cnt);
  if (!cent || !dist || !lab || !cnt) {
    rc = foil_err_set(err, FOIL_ENOMEM, "mauve: out of memory for k-means");
    goto done;
  }
  for (int r = 0; r < cfg->kmeans_redo; r++) {
    double obj = kmeans_run(y, n, m, k, cfg->kmeans_max_iter, cfg->seed, (uint64_t)r, cent, lab,
                            dist, cnt);
    if (obj < best) {
      best = obj;
      memcpy(labels, lab, (size_t)n * sizeof *labels);
    }
  }
done:
  free(x);
  free(y);
  free(cent);
  free(dist);
  free(lab);
  free(cnt);
  return rc;
}

int mauve_compute(const float *p, int np, const float *q, int nq, int d,
                  const mauve_config *cfg, mauve_result *r, foil_err *err) {
  memset(r, 0, sizeof *r);
  int rc = check_cfg(cfg, err);
  if (rc) return rc;
  if (np < 1 || nq < 1)
    return foil_err_set(err, FOIL_EINVAL, "mauve: P and Q need at least one row each (%d, %d)",
                        np, nq);
  int k = cfg->num_buckets > 0 ? cfg->num_buckets : mauve_auto_buckets(np, nq);
  int n = np + nq, m = 0;
  int *labels = malloc((size_t)n * sizeof *labels);
  if (!labels) return foil_err_set(err, FOIL_ENOMEM, "mauve: out of memory for %d labels", n);
  rc = mauve_cluster(p, np, q, nq, d, k, cfg, labels, &m, err);
  if (rc == 0) rc = mauve_from_labels(labels + nq, np, labels, nq, k, cfg, r, err);
  if (rc == 0) r->pca_dim = m;
  free(labels);
  return rc;
}
