#!/usr/bin/python3
"""Reference retrieval metrics for model/irmetrics.c.

Follows the procedure of sentence-transformers' InformationRetrievalEvaluator
(written here from its documented behaviour, no foil code): scores of the
queries against the corpus in chunks, torch.topk per chunk, a heap of the
best max_k (score, corpus id) per query, the hits sorted by score, then
accuracy/precision/recall/MRR/NDCG/MAP at each cutoff with binary relevance,
averaged over the queries that have a relevant document.

Ties. torch.topk leaves the order of equal scores unspecified; foil ranks the
lower corpus row first. The random cases are drawn so that no two of a
query's best max_k+1 scores are closer than 1e-5 (queries that would be are
drawn again), so the two orders cannot differ there, and the C side may score
in float32 with any summation order. The "dot_ties" case uses small integer
vectors (exact dot products, many real ties) and ranks by (score desc, row
asc), foil's documented rule, instead of torch.topk.

Writes one HDF5 file; per case group:
  queries f32 [q,D], corpus f32 [c,D], qrels i64 [r,2], grades i32 [r]
  attrs: normalize (1 cosine, 0 dot), chunk (the C side's chunk size)
  top_ids i64 [q,100]     the ranked corpus rows (-1 past the corpus)
  <metric> f64 [5]        accuracy, precision, recall, mrr, ndcg, map at
                          cutoffs (1, 3, 5, 10, 100); attr cutoffs
  attrs n_queries, n_skipped
Usage: irmetrics_ref.py OUT.h5
"""
import heapq
import math
import sys

import h5py
import numpy as np
import torch

CUTOFFS = [1, 3, 5, 10, 100]
MAX_K = max(CUTOFFS)
MARGIN = 1e-5


def cos_sim(a, b):
    a = torch.nn.functional.normalize(a, p=2, dim=1)
    b = torch.nn.functional.normalize(b, p=2, dim=1)
    return a @ b.T


def st_rank(queries, corpus, normalize, chunk):
    """Top MAX_K corpus rows per query as the evaluator collects them."""
    q = torch.from_numpy(queries.astype(np.float64))
    c = torch.from_numpy(corpus.astype(np.float64))
    heaps = [[] for _ in range(len(q))]
    for start in range(0, len(c), chunk):
        sub = c[start:start + chunk]
        scores = cos_sim(q, sub) if normalize else q @ sub.T
        vals, idx = torch.topk(scores, min(MAX_K, sub.shape[0]), dim=1, largest=True, sorted=False)
        for qi in range(len(q)):
            for j, s in zip(idx[qi].tolist(), vals[qi].tolist()):
                item = (s, start + j)
                if len(heaps[qi]) < MAX_K:
                    heapq.heappush(heaps[qi], item)
                else:
                    heapq.heappushpop(heaps[qi], item)
    return [[cid for s, cid in sorted(h, key=lambda x: x[0], reverse=True)] for h in heaps]


def exact_rank(queries, corpus):
    """foil's rule on exact (integer) dot products: score desc, row asc."""
    s = queries.astype(np.int64) @ corpus.astype(np.int64).T
    out = []
    for row in s:
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        out.append(order[:MAX_K])
    return out


def dcg(rel, k):
    return sum(rel[i] / math.log2(i + 2) for i in range(min(len(rel), k)))


def metrics(ranked, relevant):
    """The evaluator's compute_metrics over queries with relevant docs."""
    acc = {k: 0.0 for k in CUTOFFS}
    prec, rec, mrr, ndcg, ap = ({k: [] for k in CUTOFFS} for _ in range(5))
    used = [qi for qi in range(len(ranked)) if relevant.get(qi)]
    for qi in used:
        hits = ranked[qi]
        rel = relevant[qi]
        for k in CUTOFFS:
            top = hits[:k]
            flags = [1 if h in rel else 0 for h in top]
            correct = sum(flags)
            acc[k] += 1.0 if correct else 0.0
            prec[k].append(correct / k)
            rec[k].append(correct / len(rel))
            first = next((i for i, f in enumerate(flags) if f), None)
            mrr[k].append(0.0 if first is None else 1.0 / (first + 1))
            ndcg[k].append(dcg(flags, k) / dcg([1] * len(rel), k))
            num, sp = 0, 0.0
            for i, f in enumerate(flags):
                if f:
                    num += 1
                    sp += num / (i + 1)
            ap[k].append(sp / min(k, len(rel)))
    n = len(used)
    return dict(
        accuracy=[acc[k] / n for k in CUTOFFS],
        precision=[float(np.mean(prec[k])) for k in CUTOFFS],
        recall=[float(np.mean(rec[k])) for k in CUTOFFS],
        mrr=[float(np.mean(mrr[k])) for k in CUTOFFS],
        ndcg=[float(np.mean(ndcg[k])) for k in CUTOFFS],
        map=[float(np.mean(ap[k])) for k in CUTOFFS],
    ), n, len(ranked) - n


def well_separated(qv, corpus, normalize):
    s = qv.astype(np.float64) @ corpus.astype(np.float64).T
    if normalize:
        s = s / (np.linalg.norm(qv) * np.linalg.norm(corpus, axis=1))
    top = np.sort(s)[::-1][:MAX_K + 1]
    return len(top) < 2 or np.min(top[:-1] - top[1:]) > MARGIN


def draw_qrels(rng, ranked_fn, nq, nc, with_grades):
    """1-6 relevant rows for most queries (some taken from near the top of
    the ranking so the metrics are not all zero), none for a few; optional
    grade-0 (not relevant) pairs and duplicates."""
    pairs, grades = [], []
    for qi in range(nq):
        if rng.random() < 0.15:
            continue
        top = ranked_fn(qi)
        n = int(rng.integers(1, 7))
        rel = set()
        for _ in range(n):
            if rng.random() < 0.6 and top:
                rel.add(int(top[int(rng.integers(0, min(len(top), 30)))]))
            else:
                rel.add(int(rng.integers(0, nc)))
        for d in sorted(rel):
            pairs.append((qi, d))
            grades.append(int(rng.integers(1, 3)))
        if with_grades:
            pairs.append((qi, int(rng.integers(0, nc))))  # grade 0: not relevant
            grades.append(0)
            pairs.append(pairs[-2])  # a duplicate of a relevant pair
            grades.append(grades[-2])
    return np.array(pairs, dtype=np.int64).reshape(-1, 2), np.array(grades, dtype=np.int32)


def relevant_sets(qrels, grades):
    rel = {}
    for (q, d), g in zip(qrels.tolist(), grades.tolist()):
        if g > 0:
            rel.setdefault(q, set()).add(d)
    return rel


def random_case(rng, nq, nc, D, normalize, st_chunk, c_chunk):
    corpus = rng.standard_normal((nc, D)).astype(np.float32)
    if not normalize:
        corpus *= rng.uniform(0.5, 2.0, size=(nc, 1)).astype(np.float32)
    queries = np.empty((nq, D), dtype=np.float32)
    for qi in range(nq):
        while True:  # redraw queries with near-ties among their best scores
            v = rng.standard_normal(D).astype(np.float32)
            if well_separated(v, corpus, normalize):
                queries[qi] = v
                break
    ranked = st_rank(queries, corpus, normalize, st_chunk)
    qrels, grades = draw_qrels(rng, lambda qi: ranked[qi], nq, nc, with_grades=True)
    return dict(queries=queries, corpus=corpus, qrels=qrels, grades=grades, ranked=ranked,
                normalize=normalize, chunk=c_chunk)


def ties_case(rng, nq, nc, D, c_chunk):
    queries = rng.integers(-2, 3, size=(nq, D)).astype(np.float32)
    corpus = rng.integers(-2, 3, size=(nc, D)).astype(np.float32)
    ranked = exact_rank(queries, corpus)
    qrels, grades = draw_qrels(rng, lambda qi: ranked[qi], nq, nc, with_grades=False)
    return dict(queries=queries, corpus=corpus, qrels=qrels, grades=grades, ranked=ranked,
                normalize=0, chunk=c_chunk)


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(20261128)
    cases = {
        # cosine, corpus much larger than 100, uneven C chunks
        "cosine": random_case(rng, nq=60, nc=900, D=24, normalize=1, st_chunk=128, c_chunk=97),
        # raw dot products of rows with different norms
        "dot": random_case(rng, nq=40, nc=500, D=16, normalize=0, st_chunk=500, c_chunk=64),
        # corpus smaller than 100: short lists
        "small_corpus": random_case(rng, nq=25, nc=40, D=8, normalize=1, st_chunk=16, c_chunk=7),
        # exact integer scores with many ties, foil's tie rule
        "dot_ties": ties_case(rng, nq=30, nc=400, D=6, c_chunk=50),
    }
    with h5py.File(out, "w") as f:
        for name, c in cases.items():
            g = f.create_group(name)
            g["queries"] = c["queries"]
            g["corpus"] = c["corpus"]
            g["qrels"] = c["qrels"]
            g["grades"] = c["grades"]
            top = np.full((len(c["ranked"]), MAX_K), -1, dtype=np.int64)
            for qi, r in enumerate(c["ranked"]):
                top[qi, :len(r)] = r
            g["top_ids"] = top
            m, n, skipped = metrics(c["ranked"], relevant_sets(c["qrels"], c["grades"]))
            for key, vals in m.items():
                g[key] = np.array(vals, dtype=np.float64)
            g.attrs["normalize"] = c["normalize"]
            g.attrs["chunk"] = c["chunk"]
            g.attrs["n_queries"] = n
            g.attrs["n_skipped"] = skipped
            g.attrs["cutoffs"] = np.array(CUTOFFS, dtype=np.int64)
            print(f"{name}: {n} queries ({skipped} skipped), ndcg@10 {m['ndcg'][3]:.4f} "
                  f"mrr@10 {m['mrr'][3]:.4f} recall@100 {m['recall'][4]:.4f} map@100 {m['map'][4]:.4f}")


if __name__ == "__main__":
    main()
