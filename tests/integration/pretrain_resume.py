#!/usr/bin/python3
"""Exact resume: a 2-rank pretrain run killed with SIGKILL between
checkpoints and resumed ends with the same bits as an uninterrupted run.

    pretrain_resume.py FOIL FOIL_RUN MPIEXEC WORKDIR VOCAB [MPI FLAGS...]

1. `foil data prepare wordnet` into WORKDIR/root (the real WordNet data).
2. Run A: 2 ranks, uninterrupted, to the last step.
3. Run B: same spec; SIGKILL the whole mpirun process group as soon as the
   first checkpoint is published (mid-way to the second), then run again:
   it resumes from the newest usable checkpoint and finishes.
4. Compare the final checkpoints with h5py: parameters, optimizer moments,
   MoCo momentum encoder and queue, loader cursor must be bit-identical.
5. Retention (1 rank, keep_last 1): beside a damaged higher-step file and
   one that cannot be removed, every checkpoint written is kept until the
   next and the failed removal is logged as a warning; training goes on.
Runs MoCo with a learnable temperature so that every piece of state (queue,
momentum encoder, temperature and its moments) is exercised.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
from mpikill import kill_ranks

foil, foil_run, mpiexec, work, vocab = sys.argv[1:6]
mpi_flags = sys.argv[6:]
root = os.path.join(work, "root")
for job in ("a", "b"):  # a job directory with checkpoints would be resumed
    shutil.rmtree(os.path.join(work, job), ignore_errors=True)
os.makedirs(work, exist_ok=True)

subprocess.run([foil, "data", "prepare", "wordnet", "--root", root], check=True,
               stdout=subprocess.DEVNULL)

STEPS, EVERY = 240, 60
spec = {
    "kind": "pretrain", "name": "resume-test", "seed": 7,
    "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 16,
              "dropout": 0.1, "tokenizer": vocab},
    "data": {"dataset": "wordnet", "benchmark": ""},
    "loss": {"kind": "moco", "temperature": 0.07, "learnable_temperature": True,
             "queue_size": 100, "momentum": 0.99, "momentum_schedule": "cosine"},
    "batch_per_rank": 16, "steps": STEPS,
    "optimizer": {"lr": 0.001, "warmup_steps": 4},
    "checkpoint": {"every_steps": EVERY, "keep_last": 10},
    "log_every_steps": 20, "threads": 1,
}
spec_path = os.path.join(work, "spec.json")
with open(spec_path, "w") as f:
    json.dump(spec, f)

env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def cmd(job):
    return [mpiexec, *mpi_flags, "-np", "2", foil_run, "pretrain", spec_path, "--root", root,
            "--job-dir", os.path.join(work, job), "--quiet"]


t0 = time.time()
subprocess.run(cmd("a"), check=True, env=env)
print(f"uninterrupted run: {time.time() - t0:.1f} s")

first = os.path.join(work, "b", "ckpt", f"step_{EVERY}.h5")
p = subprocess.Popen(cmd("b"), env=env, start_new_session=True)
while not os.path.exists(first):
    if p.poll() is not None:
        sys.exit("run B ended before its first checkpoint")
    time.sleep(0.01)
os.killpg(p.pid, signal.SIGKILL)  # right after the first checkpoint: mid-way to the next
p.wait()
kill_ranks(os.path.join(work, "b"))  # its ranks too: they are not in mpirun's process group
done = sorted(os.listdir(os.path.join(work, "b", "ckpt")))
print("killed run B; its checkpoints:", done)
if f"step_{STEPS}.h5" in done:
    sys.exit("run B finished before the kill: the test proves nothing")
subprocess.run(cmd("b"), check=True, env=env)

a = h5py.File(os.path.join(work, "a", "ckpt", f"step_{STEPS}.h5"), "r")
b = h5py.File(os.path.join(work, "b", "ckpt", f"step_{STEPS}.h5"), "r")
names = []
a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
bad = [n for n in names if not np.array_equal(a[n][()], b[n][()])]
for n in ("model/wte", "optim/m/qkv_w", "momentum/fc1_w", "queue/keys", "loader/cursor", "scalars"):
    assert n in names, f"{n} missing from the checkpoint"
assert a["queue"].attrs["ptr"] == b["queue"].attrs["ptr"]
if bad:
    sys.exit(f"resumed run differs from the uninterrupted one in: {bad[:10]}")
log = open(os.path.join(work, "b", "log")).read()
assert "resumed from" in log, "run B did not resume"
print(f"resumed run matches bit for bit ({len(names)} datasets compared)")

# Retention. Run C (1 rank, 4 steps, a checkpoint every 2, keep_last 1)
# starts in a job directory holding a damaged step_999.h5 (refused at
# resume: a fresh start) and a step_1.h5 that cannot be removed (a
# directory): each checkpoint written stays until the next one replaces it
# (the damaged higher step neither counts nor goes), and the failed removal
# is a warning in the log, not the end of training.
cjob = os.path.join(work, "c")
shutil.rmtree(cjob, ignore_errors=True)
os.makedirs(os.path.join(cjob, "ckpt", "step_1.h5"))
open(os.path.join(cjob, "ckpt", "step_1.h5", "x"), "w").close()
with open(os.path.join(cjob, "ckpt", "step_999.h5"), "wb") as f:
    f.write(b"\x89HDF\r\n\x1a\n" + bytes(100))
short_path = os.path.join(work, "spec-retain.json")
with open(short_path, "w") as f:
    json.dump(dict(spec, steps=4, checkpoint={"every_steps": 2, "keep_last": 1}), f)
r = subprocess.run([mpiexec, *mpi_flags, "-np", "1", foil_run, "pretrain", short_path, "--root", root,
                    "--job-dir", cjob, "--quiet"], env=env)
log = open(os.path.join(cjob, "log")).read()
assert r.returncode == 0, "a failed checkpoint removal stopped training:\n" + log[-2000:]
left = sorted(os.listdir(os.path.join(cjob, "ckpt")))
assert left == ["step_1.h5", "step_4.h5", "step_999.h5"], f"checkpoints left: {left}"
assert "WARN" in log and "checkpoint retention" in log and "step_1.h5" in log, log[-2000:]
print("retention: a damaged newer file and a failed removal keep the new checkpoint and training going")
print("1 passed, 0 failed")
