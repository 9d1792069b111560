#!/usr/bin/python3
"""Every loss of `foil-run pretrain` trains on 2 ranks: InfoNCE (symmetric,
learnable temperature), DCL, unsupervised SimCSE and MoCo, 60 steps each
on the real WordNet pairs, and GradCache (micro-batches) reproduces the
one-shot batch; with dropout on, 2 ranks x 16 pairs give 1 rank x 32's
parameters (InfoNCE and SimCSE). Each run must finish, log finite losses, lower
its loss (mean of the last 10 logged steps below that of steps 11-20, when
MoCo's queue is already full and the task no longer grows harder), and a
learnable temperature must move. A rank that fails alone (rank 0 cannot
make the job directory) ends the whole job instead of hanging it.

    pretrain_losses.py FOIL FOIL_RUN MPIEXEC WORKDIR VOCAB [MPI FLAGS...]
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys

foil, foil_run, mpiexec, work, vocab = sys.argv[1:6]
mpi_flags = sys.argv[6:]
root = os.path.join(work, "root")
os.makedirs(work, exist_ok=True)
subprocess.run([foil, "data", "prepare", "wordnet", "--root", root], check=True,
               stdout=subprocess.DEVNULL)
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

losses = {
    "infonce": {"kind": "infonce", "symmetric": True, "learnable_temperature": True},
    "dcl": {"kind": "dcl", "symmetric": True},
    "simcse": {"kind": "simcse", "temperature": 0.05},
    "moco": {"kind": "moco", "queue_size": 300, "momentum": 0.99},
}
failed = 0
for name, loss in losses.items():
    job = os.path.join(work, name)
    shutil.rmtree(job, ignore_errors=True)
    spec = {"kind": "pretrain", "name": name, "seed": 3,
            "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 24,
                      "dropout": 0.1, "tokenizer": vocab},
            "data": {"dataset": "wordnet", "benchmark": ""}, "loss": loss,
            "batch_per_rank": 32, "steps": 60, "optimizer": {"lr": 0.003, "schedule": "constant"},
            "log_every_steps": 1, "threads": 1}
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        json.dump(spec, f)
    subprocess.run([mpiexec, *mpi_flags, "-np", "2", foil_run, "pretrain", path, "--root", root,
                    "--job-dir", job, "--quiet"], check=True, env=env)
    rows = [json.loads(l) for l in open(os.path.join(job, "metrics")) if '"loss"' in l]
    vals = [r["loss"] for r in rows]
    first, last = sum(vals[10:20]) / 10, sum(vals[-10:]) / 10
    ok = len(rows) == 60 and all(math.isfinite(v) for v in vals) and last < first
    temps = {round(r["temperature"], 6) for r in rows}
    if loss.get("learnable_temperature"):
        ok = ok and len(temps) > 1
    print(f"{name:<8} loss {first:.3f} -> {last:.3f}  temperature {min(temps):.4f}..{max(temps):.4f}"
          f"  queue {rows[-1]['queue_fill']}  {'ok' if ok else 'FAILED'}")
    failed += not ok
# GradCache: micro-batches of 8 pairs give the run of the one-shot batch
# (the same dropout masks; only float rounding of smaller GEMMs differs).
import h5py  # noqa: E402
import numpy as np  # noqa: E402

final = {}
for name, micro in (("gc-off", 0), ("gc-on", 8)):
    job = os.path.join(work, name)
    shutil.rmtree(job, ignore_errors=True)
    spec = {"kind": "pretrain", "name": name, "seed": 5,
            "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 24,
                      "dropout": 0.1, "tokenizer": vocab},
            "data": {"dataset": "wordnet", "benchmark": ""},
            "loss": {"kind": "infonce", "symmetric": True}, "batch_per_rank": 32,
            "micro_batch": micro, "steps": 10, "optimizer": {"lr": 0.001}, "threads": 1}
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        json.dump(spec, f)
    subprocess.run([mpiexec, *mpi_flags, "-np", "2", foil_run, "pretrain", path, "--root", root,
                    "--job-dir", job, "--quiet"], check=True, env=env)
    with h5py.File(os.path.join(job, "ckpt", "step_10.h5"), "r") as f:
        final[name] = {k: f["model"][k][()] for k in f["model"]}
worst = max(np.linalg.norm(final["gc-on"][k] - final["gc-off"][k]) /
            max(np.linalg.norm(final["gc-off"][k]), 1e-12) for k in final["gc-off"])
ok = worst <= 1e-4
print(f"gradcache: parameters after 10 steps, micro-batches of 8 vs one shot: rel {worst:.2e}"
      f"  {'ok' if ok else 'FAILED'}")
failed += not ok
# Data parallel with dropout on: 2 ranks x 16 pairs train exactly as 1 rank x
# 32 (every row draws the dropout masks of its place in the global batch,
# model/rowmap.h; rows padded to max_len, as masks depend on the padded
# length too), for InfoNCE and for SimCSE, whose only augmentation is
# dropout; only float rounding of smaller GEMMs and reductions differs.
# Before row maps, every rank repeated rank 0's masks.
for loss in ({"kind": "infonce", "symmetric": True}, {"kind": "simcse", "temperature": 0.05}):
    for ranks in (1, 2):
        name = f"dp-{loss['kind']}-{ranks}"
        job = os.path.join(work, name)
        shutil.rmtree(job, ignore_errors=True)
        spec = {"kind": "pretrain", "name": name, "seed": 7,
                "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 24,
                          "dropout": 0.1, "tokenizer": vocab},
                "data": {"dataset": "wordnet", "benchmark": "", "padding": "max_len"}, "loss": loss,
                "batch_per_rank": 32 // ranks, "steps": 8, "optimizer": {"lr": 0.003}, "threads": 1}
        path = os.path.join(work, name + ".json")
        with open(path, "w") as f:
            json.dump(spec, f)
        subprocess.run([mpiexec, *mpi_flags, "-np", str(ranks), foil_run, "pretrain", path, "--root", root,
                        "--job-dir", job, "--quiet"], check=True, env=env)
        with h5py.File(os.path.join(job, "ckpt", "step_8.h5"), "r") as f:
            final[name] = {k: f["model"][k][()] for k in f["model"]}
    one, two = final[f"dp-{loss['kind']}-1"], final[f"dp-{loss['kind']}-2"]
    worst = max(np.linalg.norm(two[k] - one[k]) / max(np.linalg.norm(one[k]), 1e-12) for k in one)
    ok = worst <= 1e-4
    print(f"{loss['kind']}: 2 ranks x 16 = 1 rank x 32 with dropout, parameters after 8 steps rel {worst:.2e}"
          f"  {'ok' if ok else 'FAILED'}")
    failed += not ok
# A rank that fails alone ends the whole job: here rank 0 cannot make the
# job directory (its parent is a file) while rank 1 goes on to its first
# collective; without an abort rank 1 waits there, rank 0's MPI_Finalize
# waits for rank 1, and the job hangs until its time limit.
blocker = os.path.join(work, "a-file")
open(blocker, "w").close()
p = subprocess.Popen([mpiexec, *mpi_flags, "-np", "2", foil_run, "pretrain", path, "--root", root,
                      "--job-dir", os.path.join(blocker, "job"), "--quiet"], env=env, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True, start_new_session=True)
try:
    _, errout = p.communicate(timeout=120)
    ok = p.returncode != 0 and "a-file" in errout
    why = "exit %d" % p.returncode
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
    ok, why = False, "still running after 120 s"
print(f"one rank failing alone ends the job ({why})  {'ok' if ok else 'FAILED'}")
failed += not ok
print(f"{len(losses) + 4 - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
