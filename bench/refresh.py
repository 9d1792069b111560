#!/usr/bin/python3
"""Embedding refresh against the engine's encode rate, same model and corpus.

    /usr/bin/python3 bench/refresh.py [--build build] [--root foil-data] [--threads 2] [--batch 128]

The demo's encoder (2 layers, d 128, all-MiniLM-L6-v2's WordPiece; its
weights after one training step — speed does not depend on them) encodes
the held-out WordNet corpus (148,730 lemmas):
  - engine: bench_encode, encode_texts alone over the whole corpus in one
    call (sorted by length, batches of --batch; tokenizing included,
    nothing else);
  - refresh: `foil-run refresh` on 1 rank, float32: its own encode-loop rate
    (metrics sentences_per_s) and the whole job's rate (rows / wall time of
    the process: start-up, checkpoint and corpus reads, encoding, the shard
    written and fsynced, the version published).
The issue's target: the refresh rate within 10% of the engine's.
Prepares WordNet into --root first if it is not there.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--root", default=os.path.join(REPO, "foil-data"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    bench = os.path.join(root, "datasets", "wordnet", "benchmarks", "test.h5")
    if not os.path.exists(bench):
        subprocess.run([os.path.join(a.build, "foil"), "data", "prepare", "wordnet", "--root", root], check=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    work = tempfile.TemporaryDirectory()
    demo = json.load(open(os.path.join(REPO, "examples", "pretrain-wordnet-demo.json")))
    demo["model"]["tokenizer"] = os.path.join(REPO, demo["model"]["tokenizer"])
    demo.update(name="bench-refresh-ckpt", steps=1, log_every_steps=1, threads=a.threads,
                checkpoint={"every_steps": 1, "keep_last": 1})
    demo["data"]["benchmark"] = ""  # no evaluation
    demo.pop("eval", None)
    demo["optimizer"]["warmup_steps"] = 0
    spec = os.path.join(work.name, "pretrain.json")
    json.dump(demo, open(spec, "w"))
    job = os.path.join(work.name, "ckptjob")
    subprocess.run([os.path.join(a.build, "foil-run"), "pretrain", spec, "--root", root, "--job-dir", job,
                    "--quiet"], check=True, env=env)
    ckpt = os.path.join(job, "ckpt", "step_1.h5")

    eng = json.loads(subprocess.run([os.path.join(a.build, "bench", "bench_encode"), ckpt, bench, str(a.batch),
                                     str(a.threads)], check=True, env=env, capture_output=True,
                                    text=True).stdout)
    rspec = os.path.join(work.name, "refresh.json")
    json.dump({"kind": "refresh", "name": "bench-refresh", "checkpoint": ckpt,
               "corpus": {"dataset": "wordnet", "benchmark": "test"}, "dtype": "float32",
               "batch": a.batch, "keep_versions": 1, "threads": a.threads}, open(rspec, "w"))
    rjob = os.path.join(work.name, "refreshjob")
    # a scratch root that sees the prepared datasets: the index is written there, not in --root
    os.symlink(os.path.join(root, "datasets"), os.path.join(work.name, "datasets"))
    t0 = time.perf_counter()
    subprocess.run([os.path.join(a.build, "foil-run"), "refresh", rspec, "--root", work.name, "--job-dir", rjob,
                    "--quiet"], check=True, env=env)
    wall = time.perf_counter() - t0
    lines = [json.loads(l) for l in open(os.path.join(rjob, "metrics"))]
    loop = [l for l in lines if "rank" in l][0]["sentences_per_s"]
    rows = eng["rows"]
    print(f"refresh vs engine: {rows} WordNet lemmas, demo encoder (d 128, 2 layers), batch {a.batch}, "
          f"{a.threads} thread(s)")
    print(f"{'engine encode_texts':<34}{eng['sentences_per_s']:>10.0f} sentences/s")
    print(f"{'refresh, its encode loop':<34}{loop:>10.0f} sentences/s  {loop / eng['sentences_per_s']:.2f}x")
    print(f"{'refresh, whole job (wall)':<34}{rows / wall:>10.0f} sentences/s  "
          f"{rows / wall / eng['sentences_per_s']:.2f}x   ({wall:.1f} s; target >= 0.90x)")


if __name__ == "__main__":
    main()
