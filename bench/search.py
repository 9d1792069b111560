#!/usr/bin/env python3
"""Exact top-k search: foil's vs_search against faiss-cpu, identical vectors.

    .venv-faiss/bin/python bench/search.py [--build build] [--sizes 200000,1000000]
        [--threads 1,2] [--batch 1000] [--single 200] [--dir TMPDIR]

.venv-faiss is the virtualenv deploy/setup.sh makes with faiss-cpu 1.15.1
and its own numpy. Per size (d 256, k 10) the script writes, once:
database rows (Gaussian, L2-normalized, as sentence embeddings are) as
float32, float16 (numpy's round to nearest even) and int8 with a per-row
scale max|x|/127; 1000 queries of the same distribution. Then, per thread
count, each in a fresh process with OMP_NUM_THREADS = OPENBLAS_NUM_THREADS =
the count:
  - read bandwidth (bench_search bw: a streaming sum over 1 GiB);
  - foil float32: one batch of --batch queries (queries/s, best of 2),
    then --single queries one at a time (median, p99 latency);
  - faiss IndexFlatIP on the same float32 rows, the same measurements
    (faiss.omp_set_num_threads at the count);
  - foil float16 and int8, without and with rescoring (rescore 4 from the
    float32 copy): the same measurements, and recall@10 against the exact
    float32 top-10 (faiss's);
  - faiss IndexScalarQuantizer fp16 / 8bit (its own per-dimension ranges),
    a batch of 100 queries, as context for the quantized rows.
The single-query bandwidth bound = bytes scanned / measured bandwidth
(float32 rows: N·d·4 bytes; int8: + the scales).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
D, K = 256, 10


def tenv(t):
    return dict(os.environ, OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t),
                MKL_NUM_THREADS=str(t))


def run_json(cmd, t):
    out = subprocess.run(cmd, env=tenv(t), check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def write_data(dirname, n, nq, seed):
    rng = np.random.default_rng(seed)
    xb = np.empty((n, D), dtype=np.float32)
    for s in range(0, n, 100000):
        blk = rng.standard_normal((min(100000, n - s), D), dtype=np.float32)
        blk /= np.linalg.norm(blk, axis=1, keepdims=True)
        xb[s:s + len(blk)] = blk
    xq = rng.standard_normal((nq, D), dtype=np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    xb.tofile(os.path.join(dirname, "xb.f32"))
    xq.tofile(os.path.join(dirname, "xq.f32"))
    xb.astype(np.float16).tofile(os.path.join(dirname, "xb.f16"))
    scale = np.abs(xb).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    np.clip(np.rint(xb / scale[:, None]), -127, 127).astype(np.int8).tofile(
        os.path.join(dirname, "xb.i8"))
    scale.astype(np.float32).tofile(os.path.join(dirname, "xb.scale"))


def faiss_side(dirname, n, t, nbatch, nsingle, kind):
    """Runs in its own process (see main): faiss on the written files."""
    import faiss
    faiss.omp_set_num_threads(t)
    xb = np.fromfile(os.path.join(dirname, "xb.f32"), dtype=np.float32).reshape(n, D)
    xq = np.fromfile(os.path.join(dirname, "xq.f32"), dtype=np.float32).reshape(-1, D)
    if kind == "flat":
        index = faiss.IndexFlatIP(D)
    else:
        qt = faiss.ScalarQuantizer.QT_fp16 if kind == "sq16" else faiss.ScalarQuantizer.QT_8bit
        index = faiss.IndexScalarQuantizer(D, qt, faiss.METRIC_INNER_PRODUCT)
        index.train(xb)
    index.add(xb)
    best = 1e30
    for _ in range(2):
        t0 = time.perf_counter()
        _, ids = index.search(xq[:nbatch], K)
        best = min(best, time.perf_counter() - t0)
    if kind == "flat":
        ids.astype(np.int64).tofile(os.path.join(dirname, "faiss_flat.i64"))
    lat = []
    index.search(xq[:1], K)
    for i in range(nsingle):
        t0 = time.perf_counter()
        index.search(xq[i:i + 1], K)
        lat.append((time.perf_counter() - t0) * 1e3)
    lat.sort()
    r = {"side": "faiss", "kind": kind, "threads": t, "qps": nbatch / best,
         "version": faiss.__version__}
    if lat:
        r["median_ms"] = lat[len(lat) // 2]
        r["p99_ms"] = lat[int(round(0.99 * (len(lat) - 1)))]
    print(json.dumps(r))


def recall(dirname, name, nbatch):
    got = np.fromfile(os.path.join(dirname, name), dtype=np.int64).reshape(nbatch, K)
    ref = np.fromfile(os.path.join(dirname, "faiss_flat.i64"), dtype=np.int64).reshape(nbatch, K)
    return np.mean([len(set(a) & set(b)) / K for a, b in zip(got, ref)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--sizes", default="200000,1000000")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--single", type=int, default=200)
    ap.add_argument("--dir", default=None, help="where the vectors go (default: a temp dir)")
    ap.add_argument("--faiss-side", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.faiss_side:
        d, n, t, ns, kind = a.faiss_side
        return faiss_side(d, int(n), int(t), a.batch, int(ns), kind)
    foil = os.path.join(a.build, "bench", "bench_search")
    tmp = tempfile.TemporaryDirectory(dir=a.dir)
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        write_data(tmp.name, n, max(a.batch, a.single), seed=n)
        print(f"  {n} vectors written", file=sys.stderr)
        for t in [int(x) for x in a.threads.split(",")]:
            bw = run_json([foil, "bw", str(t)], t)["gbps"]

            def fo(dt, rs, ns=a.single):
                return run_json([foil, "run", tmp.name, str(n), str(D), str(t), dt, str(rs),
                                 str(a.batch), str(ns), str(K)], t)

            def fa(kind, nb, ns):
                cmd = [sys.executable, os.path.abspath(__file__), "--batch", str(nb),
                       "--faiss-side", tmp.name, str(n), str(t), str(ns), kind]
                return run_json(cmd, t)

            f32 = fo("f32", 0)
            fl = fa("flat", a.batch, a.single)
            same = np.mean(np.fromfile(os.path.join(tmp.name, "foil_f32_0.i64"), dtype=np.int64)
                           == np.fromfile(os.path.join(tmp.name, "faiss_flat.i64"), dtype=np.int64))
            quant = []
            for dt in ("f16", "i8"):
                for rs in (0, 4):
                    r = fo(dt, rs, min(a.single, 100))
                    r["recall"] = recall(tmp.name, f"foil_{dt}_{rs}.i64", a.batch)
                    quant.append(r)
            sq = [fa("sq16", 100, 0), fa("sq8", 100, 0)]
            rows.append(dict(n=n, t=t, bw=bw, f32=f32, flat=fl, same=same, quant=quant, sq=sq))
            print(f"  {n} x {t} thread(s) done", file=sys.stderr)

    print(f"exact top-{K} by inner product, d {D}, batch {a.batch} queries, "
          f"single-query latency over {a.single} queries (quantized: {min(a.single, 100)})")
    print(f"{'N':>8}{'thr':>4}{'bw GB/s':>9} | {'batch QPS foil':>14}{'faiss':>9}{'ratio':>7} | "
          f"{'single ms foil med':>18}{'p99':>7}{'bound':>7}{'/bound':>7}{'faiss med':>10}{'ratio':>7}"
          f" | ids = faiss")
    for r in rows:
        f, fl = r["f32"], r["flat"]
        bound = f["bytes"] / (r["bw"] * 1e9) * 1e3
        print(f"{r['n']:>8}{r['t']:>4}{r['bw']:>9.1f} | {f['qps']:>14.1f}{fl['qps']:>9.1f}"
              f"{f['qps'] / fl['qps']:>6.2f}x | {f['median_ms']:>18.2f}{f['p99_ms']:>7.2f}"
              f"{bound:>7.2f}{f['median_ms'] / bound:>6.2f}x{fl['median_ms']:>10.2f}"
              f"{fl['median_ms'] / f['median_ms']:>6.2f}x | {100 * r['same']:.2f}%")
    print()
    print(f"{'N':>8}{'thr':>4} {'rows':<12}{'batch QPS':>10}{'single med':>11}{'p99':>7}"
          f"{'bound':>7}{'/bound':>7}{'recall@10':>10}")
    for r in rows:
        for q in r["quant"]:
            bound = q["bytes"] / (r["bw"] * 1e9) * 1e3
            name = q["dtype"] + (" rescore 4" if q["rescore"] else "")
            print(f"{r['n']:>8}{r['t']:>4} {name:<12}{q['qps']:>10.1f}{q['median_ms']:>11.2f}"
                  f"{q['p99_ms']:>7.2f}{bound:>7.2f}{q['median_ms'] / bound:>6.2f}x{q['recall']:>10.4f}")
        for s in r["sq"]:
            print(f"{r['n']:>8}{r['t']:>4} {'faiss ' + s['kind']:<12}{s['qps']:>10.1f}"
                  f"   (batch of 100)")


if __name__ == "__main__":
    main()
