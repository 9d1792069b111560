#!/usr/bin/python3
"""A pretrain job through the cluster survives the loss of its node and
ends with the same bits as an uninterrupted run.

    cluster_pretrain.py BUILD_DIR WORKDIR VOCAB [MPI FLAGS...]

1. `foil data prepare wordnet` into the data root (the real WordNet data).
2. Run A: `mpirun -np 2 foil-run pretrain` directly, uninterrupted.
3. Run B: the same spec submitted with `foil submit --max-failures 1` to a
   coordinator with two workers of 2 slots. Rank 0's progress reaches
   `foil status`; once the first checkpoint is published, the node running
   the job is killed (the worker and its job's processes, SIGKILL).
   The coordinator marks the attempt NODE_FAIL, requeues the job, the other
   worker runs attempt 2, told to resume from that checkpoint; the job ends
   COMPLETED with restart count 1.
4. The final checkpoints of A and B are bit-identical (h5py).
"""
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from foilcluster import STATE, Cluster  # noqa: E402

build, work, vocab = sys.argv[1:4]
mpi_flags = sys.argv[4:]
failures = []


def check(cond, what):
    print(("ok     " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures.append(what)


# liveness 10 (2 s): the kill is found in 2 s, and two training ranks under
# ASan beside another test cannot starve a worker's heartbeats that long
c = Cluster(build, os.path.join(work, "root"), heartbeat_ms=200, liveness=10, grace_s=2,
            allow_dirs=[os.path.dirname(os.path.abspath(vocab))])
root = c.root
subprocess.run([c.bin("foil"), "data", "prepare", "wordnet", "--root", root], check=True,
               stdout=subprocess.DEVNULL)

STEPS, EVERY = 240, 60
spec = {
    "kind": "pretrain", "name": "cluster-resume", "seed": 11,
    "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 16,
              "dropout": 0.1, "tokenizer": vocab},
    "data": {"dataset": "wordnet", "benchmark": ""},
    "loss": {"kind": "moco", "temperature": 0.07, "queue_size": 100, "momentum": 0.99},
    "batch_per_rank": 16, "steps": STEPS,
    "optimizer": {"lr": 0.001, "warmup_steps": 4},
    "checkpoint": {"every_steps": EVERY, "keep_last": 10},
    "log_every_steps": 10, "threads": 1,
    "job": {"ranks": 2},
}
spec_path = os.path.join(work, "spec.json")
with open(spec_path, "w") as f:
    json.dump(spec, f)

# A: uninterrupted, straight through mpirun
job_a = os.path.join(work, "a")
subprocess.run(["rm", "-rf", job_a])
t0 = time.time()
subprocess.run(["mpirun", *mpi_flags, "-np", "2", c.bin("foil-run"), "pretrain", spec_path, "--root", root,
                "--job-dir", job_a, "--quiet"], check=True)
print("run A: %.1f s" % (time.time() - t0))

# B: through the cluster, losing a node after the first checkpoint
c.start_coordinator()
worker_args = ["--mpirun-args", " ".join(mpi_flags)]
try:
    c.start_worker("n1", slots=2, extra_args=worker_args)
    c.start_worker("n2", slots=2, extra_args=worker_args)
    r = c.foil("submit", spec_path, "--max-failures", "1")
    check(r.returncode == 0, "foil submit: %s %s" % (r.stdout.strip(), r.stderr.strip()))
    jid = int(r.stdout.strip())
    first = os.path.join(root, "jobs", str(jid), "ckpt", "step_%d.h5" % EVERY)
    deadline = time.time() + 300
    while not os.path.exists(first) and time.time() < deadline:
        time.sleep(0.02)
    check(os.path.exists(first), "first checkpoint published")
    j = c.job(jid)
    # the latest progress: a log step's (loss, ...) or the checkpoint's own (checkpoint_step)
    pm = json.loads(j.progress.metrics_json or "{}")
    check(j.progress.total == STEPS and j.progress.value > 0 and ("loss" in pm or "checkpoint_step" in pm),
          "rank 0's progress reached the coordinator (%g/%g, %s)" % (j.progress.value, j.progress.total,
                                                                    sorted(pm)))
    lost = j.attempts[-1].workers[0]
    c.kill_worker(lost, signal.SIGKILL, node=True)
    j = c.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED", "JOB_NODE_FAIL", "JOB_CANCELLED"}, 300)
    check(STATE.Name(j.state) == "JOB_COMPLETED", "job COMPLETED (%s: %s)" % (STATE.Name(j.state), j.reason))
    check(j.restart_count == 1 and len(j.attempts) == 2, "restart count 1, two attempts")
    a1, a2 = j.attempts[0], j.attempts[1]
    check(STATE.Name(a1.state) == "JOB_NODE_FAIL" and list(a1.workers) == [lost], "attempt 1 NODE_FAIL on %s" % lost)
    check(a2.workers[0] != lost and a2.token > a1.token, "attempt 2 on the other worker, a newer token")
    check(os.path.basename(a2.resume_from).startswith("step_") and a2.resume_from.endswith(".h5"),
          "attempt 2 told to resume from %r" % a2.resume_from)
    st = c.foil("status", str(jid))
    check("NODE_FAIL" in st.stdout and "COMPLETED" in st.stdout, "foil status shows both attempts")
    log = c.log(jid)
    check("resumed from" in log, "the job's log says where it resumed")
    # 4. same bits as A
    fa = h5py.File(os.path.join(job_a, "ckpt", "step_%d.h5" % STEPS), "r")
    fb = h5py.File(os.path.join(root, "jobs", str(jid), "ckpt", "step_%d.h5" % STEPS), "r")
    names = []
    fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    diff = [n for n in names if n not in fb or not np.array_equal(fa[n][()], fb[n][()])]
    check(len(names) > 10 and not diff, "final checkpoint bit-identical to the uninterrupted run (%d datasets, differing: %s)"
          % (len(names), diff[:5]))
finally:
    codes = c.stop()
check(all(v == 0 for v in codes.values()), "daemons exit cleanly: %s" % codes)
if failures:
    sys.exit(1)
print("all checks passed")
