#!/usr/bin/python3
"""Engine benchmark: foil against PyTorch on identical work, in one run.

    /usr/bin/python3 bench/engine.py [--build build] [--threads 1,2] [--quick]

For each thread count, every measurement runs in a fresh process:
  - OpenBLAS sgemm (1024^3) through foil's kernels: the practical ceiling;
  - training step on SMALL (64 pairs, symmetric InfoNCE, AdamW): pairs/s;
  - encoding, no grad, SMALL and MINILM, batch 256: sentences/s.
PyTorch runs with OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = torch threads =
the count, once with OMP_WAIT_POLICY=ACTIVE and once PASSIVE; its better run
is the anchor. foil runs with its defaults. Prints both rates, the ratio,
and the GFLOP/s each side achieves on the model FLOPs with foil's share of
the sgemm rate. See bench_engine.c and engine_torch.py for the work itself.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env_extra):
    env = dict(os.environ, **env_extra)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def thread_env(t, policy=None):
    e = {"OMP_NUM_THREADS": str(t), "OPENBLAS_NUM_THREADS": str(t)}
    if policy:
        e["OMP_WAIT_POLICY"] = policy
    return e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--quick", action="store_true", help="fewer iterations (noisier)")
    a = ap.parse_args()
    foil = os.path.join(a.build, "bench", "bench_engine")
    torch_py = os.path.join(HERE, "engine_torch.py")
    work = [("train", "small", 4 if a.quick else 10),
            ("encode", "small", 2 if a.quick else 6),
            ("encode", "minilm", 1 if a.quick else 2)]
    rows = []
    for t in [int(x) for x in a.threads.split(",")]:
        sg = run([foil, "sgemm", str(t)], thread_env(t))["gflops"]
        for mode, cfg, n in work:
            f = run([foil, mode, cfg, str(t), str(n)], thread_env(t))
            best = None
            for policy in ("ACTIVE", "PASSIVE"):
                r = run([sys.executable, torch_py, mode, cfg, str(t), str(n)], thread_env(t, policy))
                r["policy"] = policy
                if best is None or r["per_s"] > best["per_s"]:
                    best = r
            rows.append((t, mode, cfg, f, best, sg))
            print(f"  done: {mode} {cfg} {t} thread(s)", file=sys.stderr)

    unit = {"train": "pairs/s", "encode": "sentences/s"}
    print(f"{'work':<14}{'thr':>4}{'foil':>10}{'torch':>10}{'ratio':>7}"
          f"{'foil GF/s':>11}{'torch GF/s':>11}{'sgemm GF/s':>11}{'foil/sgemm':>11}  torch policy")
    for t, mode, cfg, f, b, sg in rows:
        print(f"{mode + ' ' + cfg:<14}{t:>4}{f['per_s']:>10.1f}{b['per_s']:>10.1f}"
              f"{f['per_s'] / b['per_s']:>6.2f}x{f['gflops']:>11.1f}{b['gflops']:>11.1f}"
              f"{sg:>11.1f}{100 * f['gflops'] / sg:>10.0f}%  {b['policy']}  ({unit[mode]})")


if __name__ == "__main__":
    main()
