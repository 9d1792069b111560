#!/usr/bin/env python3
"""Reference top-k for model/vsearch.c: faiss-cpu's IndexFlatIP.

Run with .venv-faiss/bin/python (deploy/setup.sh: faiss-cpu 1.15.1 with its
own numpy 2.2.6, which Debian's torch cannot share). Writes, per case, raw
little-endian files into OUT_DIR that test_vsearch_ref.c reads:

  <case>.meta        "n d nq k" (text)
  <case>.xb.f32      database [n,d] float32
  <case>.xq.f32      queries  [nq,d] float32
  <case>.xb.f16      the database as IEEE half (numpy: round to nearest even)
  <case>.xb.i8       the database as int8, row scale max|x|/127 (<case>.xb.scale)
  <case>.D.f32       faiss scores [nq,k]
  <case>.I.i64       faiss ids    [nq,k] (ids = row numbers)

Cases:
  random  Gaussian rows, L2-normalized (as sentence embeddings), n 20000,
          d 128: distinct scores almost everywhere.
  ties    small integer vectors (every float32 sum exact) with planted
          duplicate rows: many exactly equal scores. faiss does not promise
          an order among equal scores; foil ranks the lower id first.
Usage: vsearch_faiss.py OUT_DIR
"""
import os
import sys

import faiss
import numpy as np

K = 10


def write(out, name, xb, xq):
    n, d = xb.shape
    index = faiss.IndexFlatIP(d)
    index.add(xb)
    D, I = index.search(xq, K)
    with open(os.path.join(out, f"{name}.meta"), "w") as f:
        f.write(f"{n} {d} {len(xq)} {K}\n")
    xb.astype(np.float32).tofile(os.path.join(out, f"{name}.xb.f32"))
    xq.astype(np.float32).tofile(os.path.join(out, f"{name}.xq.f32"))
    xb.astype(np.float16).tofile(os.path.join(out, f"{name}.xb.f16"))
    scale = np.abs(xb).max(axis=1) / np.float32(127.0)
    scale[scale == 0] = 1.0
    np.clip(np.rint(xb / scale[:, None]), -127, 127).astype(np.int8).tofile(
        os.path.join(out, f"{name}.xb.i8"))
    scale.astype(np.float32).tofile(os.path.join(out, f"{name}.xb.scale"))
    D.astype(np.float32).tofile(os.path.join(out, f"{name}.D.f32"))
    I.astype(np.int64).tofile(os.path.join(out, f"{name}.I.i64"))
    print(f"{name}: n {n}, d {d}, {len(xq)} queries, faiss {faiss.__version__}")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261128)
    xb = rng.standard_normal((20000, 128), dtype=np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq = rng.standard_normal((200, 128), dtype=np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    write(out, "random", xb, xq)

    xb = rng.integers(-2, 3, size=(6000, 24)).astype(np.float32)
    dup = rng.integers(0, 6000, size=1500)
    xb[rng.integers(0, 6000, size=1500)] = xb[dup]  # duplicate rows: exact ties
    xq = rng.integers(-2, 3, size=(100, 24)).astype(np.float32)
    write(out, "ties", xb, xq)


if __name__ == "__main__":
    main()
