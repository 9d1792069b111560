/* mauve.h — MAUVE (Pillutla et al., NeurIPS 2021; JMLR 2023) between a
 * reference distribution P and a model distribution Q, each given as
 * feature rows (a decoder's last-layer state at the final token), computed
 * as the official implementation, PyPI's mauve-text 0.4.0 compute_mauve
 * with p_features/q_features, computes it:
 *
 *  1. rows L2-normalized; the data is Q's rows then P's ([nq+np, d]);
 *  2. PCA (centered, not whitened): eigen-decomposition of the covariance
 *     (kernels.h symeig, double); keep the first m components, m the first
 *     count whose cumulative explained-variance ratio reaches
 *     explained_var (0.9), and project;
 *  3. k-means into k buckets, k = num_buckets or, when 0, "auto":
 *     max(2, round(min(np, nq) / 10)) with Python's round (half to even:
 *     25 rows → 2, 35 → 4) — a quirk followed;
 *  4. per-bucket counts of P's and Q's rows → histograms p, q (sum 1);
 *  5. the divergence curve at the mixture weights w_i = linspace(1e-6,
 *     1 − 1e-6, curve_points) (numpy's: start + i·step, the last exactly
 *     1 − 1e-6): r = w·p + (1 − w)·q, point (exp(−c·KL(q‖r)), exp(−c·KL(p‖r)))
 *     with c = scaling (5), plus the extreme points (1, 0) and (0, 1)
 *     (from KL 0 and +inf); KL(a‖b) sums a·log(a/b) over a, b != 0 and is
 *     +inf where a > 0 = b;
 *  6. MAUVE = ½·(area under y(x) + area under x(y)), each the trapezoid
 *     rule over the points sorted by that coordinate (sklearn's auc after
 *     numpy's argsort; foil's sort is stable, numpy's argsort is not, which
 *     only matters for exactly tied coordinates: see mauve.c);
 *  7. also as mauve-text 0.4.0: the frontier integral (scaling 2) and the
 *     smoothed variants MAUVE* / FI* from counts + 0.5 (Krichevsky–
 *     Trofimov).
 *
 * The clustering is NOT faiss's (mauve-text calls faiss.Kmeans: random
 * initial centroids, 500 iterations, 5 restarts, seed 25 + 2, float32).
 * foil's k-means (double) starts from k-means++ seeds drawn from
 * (seed, restart) with kernels.h's counter-based RNG, runs Lloyd's
 * iterations until no assignment changes or max_iter, refills an empty
 * bucket with the point farthest from its centroid, and keeps the restart
 * of lowest within-bucket sum of squares (ties: the earlier). k-means++
 * because its result depends less on the seed than random seeding, so
 * foil's MAUVE moves less between seeds; the price is that foil's buckets
 * are not faiss's, and MAUVE agrees with mauve-text only within the
 * tolerance measured in tests/reference/mauve_ref.py (README), while from
 * the SAME labels (mauve_from_labels) it agrees to 1e-6.
 *
 * Deterministic: same inputs, seed and thread count → same bits.
 * Memory: the data in double ([n, d]), the d×d covariance, k centroids;
 * results own two histograms of k doubles (mauve_result_clear frees them).
 * Cost: n·d² (covariance) + ~4·d³ (eigen) + redo·iters·n·m·k (k-means).
 * Nothing here does I/O.
 */
#ifndef FOIL_MODEL_MAUVE_H
#define FOIL_MODEL_MAUVE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct {
  int num_buckets;      /* 0: auto, max(2, round_half_even(min(np, nq) / 10)) */
  double explained_var; /* PCA variance kept, in (0, 1); 0.9 */
  int kmeans_redo;      /* restarts, the best kept; 5 */
  int kmeans_max_iter;  /* Lloyd iterations at most; 500 */
  uint64_t seed;        /* 25 */
  int curve_points;     /* mixture weights on the divergence curve; 25 */
  double scaling;       /* c; 5 */
} mauve_config;

typedef struct {
  double mauve;                  /* in (0, 1]; 1: P and Q alike */
  double frontier_integral;      /* in [0, 1]; 0: alike */
  double mauve_star;             /* from the KT-smoothed histograms */
  double frontier_integral_star;
  int num_buckets;               /* k */
  int pca_dim;                   /* m (0 when given labels) */
  double *p_hist, *q_hist;       /* [k] each, owned: mauve_result_clear */
} mauve_result;

void mauve_config_default(mauve_config *cfg);
/* The "auto" bucket count for np and nq rows. */
int mauve_auto_buckets(int np, int nq);
void mauve_result_clear(mauve_result *r);

/* Steps 4-7 from bucket labels in [0, k): p_labels [np], q_labels [nq].
 * Fills r (r->p_hist, q_hist allocated). FOIL_EINVAL for a label out of
 * range or an empty side. */
int mauve_from_labels(const int *p_labels, int np, const int *q_labels, int nq, int k,
                      const mauve_config *cfg, mauve_result *r, foil_err *err);

/* The whole computation from features p [np, d] and q [nq, d] (float32
 * rows as a decoder writes them). FOIL_EINVAL for empty sides, d < 1,
 * non-finite features, k > np + nq or bad config; FOIL_ENOMEM. */
int mauve_compute(const float *p, int np, const float *q, int nq, int d,
                  const mauve_config *cfg, mauve_result *r, foil_err *err);

/* The clustering alone (steps 1-3), for tests and tools: labels [np + nq]
 * of the rows in mauve-text's order (Q's first, then P's); *pca_dim gets m
 * (may be NULL). */
int mauve_cluster(const float *p, int np, const float *q, int nq, int d, int k,
                  const mauve_config *cfg, int *labels, int *pca_dim, foil_err *err);

#endif
