#!/usr/bin/env python3
"""Reference MAUVE for model/mauve.c: PyPI's mauve-text 0.4.0 (compute_mauve).

Run with .venv-faiss/bin/python (deploy/setup.sh installs mauve-text with
its scikit-learn and scipy there, beside faiss-cpu, which mauve-text's
clustering is). Writes raw little-endian files into OUT_DIR that
test_mauve_ref.c reads:

  labels.txt   one line per label case: name np nq k mauve fi mauve* fi*
  <name>.p.i32, <name>.q.i32     bucket labels of P's and Q's rows
  features.txt one line per feature case: name np nq d k mauve fi mauve* fi*
               spread  (spread: max - min of mauve-text's MAUVE over seeds
               25..29, how much the official number moves with its own seed)
  <name>.p.f32, <name>.q.f32     features [n, d] float32

(a) Label cases: mauve-text's own code computes MAUVE from histograms that
    come from GIVEN labels: its cluster_feats is replaced by one that counts
    the labels exactly as cluster_feats does after clustering (np.histogram,
    then /sum, and +0.5 for the smoothed pair); everything after that —
    mixture weights, divergence curve, argsort, sklearn's auc, frontier
    integral — is compute_mauve's own. foil must agree to 1e-6.
(b) Feature cases: compute_mauve(p_features, q_features) end to end with its
    defaults (L2 norm, PCA 0.9, auto buckets, faiss k-means 5 redo x 500
    iterations, seed 25). foil clusters with its own k-means, so it agrees
    within the tolerance test_mauve_ref.c states (measured there).
Usage: mauve_ref.py OUT_DIR
"""
import os
import sys

import numpy as np
import mauve

# the module (the package's `compute_mauve` attribute is the function)
cm = sys.modules["mauve.compute_mauve"]

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = np.random.RandomState(20261128)


def mauve_from_labels(p_lab, q_lab, k):
    def fake_cluster_feats(p, q, num_clusters, **kw):
        assert num_clusters == k
        pc = np.histogram(p_lab, bins=k, range=[0, k], density=False)[0]
        qc = np.histogram(q_lab, bins=k, range=[0, k], density=False)[0]
        norm = lambda a: a / a.sum()
        return norm(pc), norm(qc), norm(pc + 0.5), norm(qc + 0.5)
    saved = cm.cluster_feats
    cm.cluster_feats = fake_cluster_feats
    try:
        out = mauve.compute_mauve(p_features=np.zeros((len(p_lab), 1)),
                                  q_features=np.zeros((len(q_lab), 1)), num_buckets=k)
    finally:
        cm.cluster_feats = saved
    return out


def label_cases():
    cases = []
    # random labels, several sizes and bucket counts
    for i, (n_p, n_q, k) in enumerate([(100, 100, 10), (250, 120, 12), (40, 60, 2), (500, 500, 50)]):
        cases.append((f"random{i}", rng.randint(0, k, n_p), rng.randint(0, k, n_q), k))
    # skewed: Q piles into few buckets, P spread (some buckets only P's)
    k = 20
    cases.append(("skewed", rng.randint(0, k, 300), rng.randint(0, 4, 200), k))
    # disjoint supports: P in buckets 0..4, Q in 5..9 (KL = inf at the ends)
    cases.append(("disjoint", rng.randint(0, 5, 100), rng.randint(5, 10, 100), 10))
    # identical histograms (ties on the curve)
    lab = rng.randint(0, 8, 160)
    cases.append(("identical", lab, lab.copy(), 8))
    # a bucket empty on both sides
    cases.append(("emptybucket", rng.randint(0, 5, 90), rng.randint(0, 5, 70), 7))
    with open(os.path.join(OUT, "labels.txt"), "w") as f:
        for name, p_lab, q_lab, k in cases:
            o = mauve_from_labels(p_lab, q_lab, k)
            p_lab.astype("<i4").tofile(os.path.join(OUT, f"{name}.p.i32"))
            q_lab.astype("<i4").tofile(os.path.join(OUT, f"{name}.q.i32"))
            f.write(f"{name} {len(p_lab)} {len(q_lab)} {k} {o.mauve:.17g} {o.frontier_integral:.17g} "
                    f"{o.mauve_star:.17g} {o.frontier_integral_star:.17g}\n")


def mixture(n, d, centers, scale, shift=0.0):
    comp = rng.randint(0, len(centers), n)
    x = centers[comp] + scale * rng.randn(n, d) + shift
    return x.astype(np.float32)


def feature_cases():
    cases = []
    d = 32
    centers = 3.0 * rng.randn(8, d)
    same = mixture(200, d, centers, 1.0)
    cases.append(("same", same, same.copy()))
    cases.append(("iid", mixture(300, d, centers, 1.0), mixture(300, d, centers, 1.0)))
    cases.append(("shift_mild", mixture(300, d, centers, 1.0), mixture(300, d, centers, 1.0, 0.15)))
    cases.append(("shift_small", mixture(300, d, centers, 1.0), mixture(300, d, centers, 1.0, 0.5)))
    cases.append(("shift_large", mixture(300, d, centers, 1.0), mixture(300, d, centers, 1.0, 2.0)))
    cases.append(("sizes", mixture(400, d, centers, 1.0), mixture(150, d, centers, 1.0, 0.5)))
    # Q uses only half of P's modes (a model that drops modes)
    cases.append(("dropped_modes", mixture(300, d, centers, 1.0), mixture(300, d, centers[:4], 1.0)))
    # decoder-like: d 256, low-rank structure plus noise
    D, R = 256, 8
    basis = rng.randn(R, D)
    cz = 2.0 * rng.randn(6, R)
    def lowrank(n, shift):
        z = cz[rng.randint(0, 6, n)] + rng.randn(n, R) + shift
        return (z @ basis + 0.3 * rng.randn(n, D)).astype(np.float32)
    cases.append(("lowrank256", lowrank(500, 0.0), lowrank(400, 0.4)))
    with open(os.path.join(OUT, "features.txt"), "w") as f:
        for name, p, q in cases:
            o = mauve.compute_mauve(p_features=p, q_features=q)
            seeds = [mauve.compute_mauve(p_features=p, q_features=q, seed=s).mauve
                     for s in range(25, 30)]
            p.astype("<f4").tofile(os.path.join(OUT, f"{name}.p.f32"))
            q.astype("<f4").tofile(os.path.join(OUT, f"{name}.q.f32"))
            f.write(f"{name} {len(p)} {len(q)} {p.shape[1]} {o.num_buckets} {o.mauve:.17g} "
                    f"{o.frontier_integral:.17g} {o.mauve_star:.17g} "
                    f"{o.frontier_integral_star:.17g} {max(seeds) - min(seeds):.17g}\n")


label_cases()
feature_cases()
print("mauve_ref: wrote", OUT)
