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
6. Metrics across a resume, with evaluation (2 ranks, a tiny custom
   dataset and benchmark so evaluations take milliseconds): a run stopped
   after step 3 (checkpoint and evaluation at 2) and resumed, over a line
   torn by a kill, logs each step once: its metrics are the uninterrupted
   run's line for line, time fields and pairs_per_s aside (the BM25
   baseline too, once), and its final checkpoint has the same bits; each
   step's evaluation is logged before its checkpoint; a resume at the last
   step changes nothing; evaluating changes no trained bit (a run without
   a benchmark ends with the same checkpoint); pairs_per_s is the steps'
   own rate, world x batch over time_compute_s + time_comm_s +
   time_data_s, with a checkpoint and an evaluation between log lines.
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


def cmd(job, spec_file=spec_path):
    return [mpiexec, *mpi_flags, "-np", "2", foil_run, "pretrain", spec_file, "--root", root,
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

# Metrics across a resume, with evaluation. A tiny custom dataset: 320
# pairs, a corpus of 160 documents and 40 queries (benchmark "test").
words = ("river bank money water stone green house music paper light table window garden winter summer "
         "city road forest bird apple chair glass fire cloud horse ocean bread metal plant school").split()
rng = np.random.default_rng(5)
tiny = os.path.join(work, "tiny")
os.makedirs(tiny, exist_ok=True)
with open(os.path.join(tiny, "pairs.tsv"), "w") as f:
    for i in range(320):
        w = rng.choice(words, 4)
        f.write(f"{w[0]} {w[1]} {w[2]} {w[3]}\t{w[2]} {w[0]}\n")
docs = [" ".join(rng.choice(words, 5)) for _ in range(160)]
with open(os.path.join(tiny, "corpus.tsv"), "w") as f:
    f.writelines(f"d{i}\t{d}\n" for i, d in enumerate(docs))
with open(os.path.join(tiny, "queries.tsv"), "w") as f, open(os.path.join(tiny, "qrels.tsv"), "w") as g:
    for q in range(40):
        d = docs[4 * q].split()
        f.write(f"q{q}\t{d[1]} {d[3]}\n")
        g.write(f"q{q}\td{4 * q}\t1\n")
subprocess.run([foil, "data", "prepare", "custom", "--root", root, "--name", "tiny"] +
               [x for k in ("pairs", "corpus", "queries", "qrels") for x in (f"--{k}", os.path.join(tiny, k + ".tsv"))],
               check=True, stdout=subprocess.DEVNULL)
ev_spec = dict(spec, steps=4, data={"dataset": "tiny", "benchmark": "test"},
               checkpoint={"every_steps": 2, "keep_last": 10}, eval={"every_steps": 2}, log_every_steps=1)
failed = []


def check(ok, what):
    if not ok:
        failed.append(what)
        print("FAILED", what)


def ev_run(job, benchmark="test", extra=()):
    path = os.path.join(work, f"spec-{job}.json")
    with open(path, "w") as f:
        json.dump(dict(ev_spec, data={"dataset": "tiny", "benchmark": benchmark}), f)
    r = subprocess.run(cmd(job, path) + list(extra), env=env, capture_output=True, text=True)
    check(r.returncode == 0, f"{job}: exit status {r.returncode}: {r.stderr[-800:]}")


def lines(job):
    return open(os.path.join(work, job, "metrics")).read().splitlines()


def records(job):
    """each metrics line as a dict; {"not JSON": line} for a line that is not"""
    out = []
    for x in lines(job):
        try:
            out.append(json.loads(x))
        except ValueError:
            out.append({"not JSON": x[:60]})
    return out


def kinds(job):
    return [(r.get("step", "not JSON"), r.get("model", "train")) for r in records(job)]


TIMES = ("pairs_per_s", "time_compute_s", "time_comm_s", "time_data_s")


def untimed(job):
    return [{k: v for k, v in r.items() if k not in TIMES} for r in records(job)]


def model_bits(job):
    with h5py.File(os.path.join(work, job, "ckpt", "step_4.h5"), "r") as f:
        out = {}
        f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
        return out


for job in ("ev-a", "ev-b", "ev-none"):
    shutil.rmtree(os.path.join(work, job), ignore_errors=True)
t0 = time.time()
ev_run("ev-a")
want = [(1, "train"), (2, "train"), (2, "foil"), (2, "bm25"), (3, "train"), (4, "train"), (4, "foil")]
check(kinds("ev-a") == want, f"uninterrupted: metrics {kinds('ev-a')}")
ev_run("ev-b", extra=("--stop-after", "3"))  # checkpoint and evaluation at 2, step 3 logged after them
check(kinds("ev-b") == want[:5], f"stopped after step 3: metrics {kinds('ev-b')}")
with open(os.path.join(work, "ev-b", "metrics"), "a") as f:
    f.write('{"step":4,"loss":3.1')  # a line torn by a kill
ev_run("ev-b")
check(kinds("ev-b") == want, f"resumed at step 2: metrics {kinds('ev-b')}")
check(untimed("ev-b") == untimed("ev-a"), "the resumed run's metrics differ from the uninterrupted run's")
blog = open(os.path.join(work, "ev-b", "log")).read()
check("resumed from" in blog and "metrics: 2 line(s) after step 2 dropped" in blog, "ev-b did not resume as expected")
for s_ in (2, 4):
    e_at, c_at = blog.find(f"eval step {s_} foil on test"), blog.find(f"ckpt/step_{s_}.h5")
    check(0 <= e_at < c_at, f"step {s_}: its checkpoint was written before its evaluation (log at {e_at}, {c_at})")
a_bits, b_bits = model_bits("ev-a"), model_bits("ev-b")
check(a_bits.keys() == b_bits.keys() and all(np.array_equal(a_bits[k], b_bits[k]) for k in a_bits),
      "the resumed run with evaluations ends with other bits than the uninterrupted one")
before = lines("ev-b")
ev_run("ev-b")  # resumed at the last step: nothing to run, nothing logged again
check(lines("ev-b") == before, f"resumed at step 4 of 4: metrics {kinds('ev-b')}")
ev_run("ev-none", benchmark="")  # no evaluation at all: the same trained bits
n_bits = model_bits("ev-none")
check(a_bits.keys() == n_bits.keys() and all(np.array_equal(a_bits[k], n_bits[k]) for k in a_bits),
      f"evaluating changed the trained bits: {[k for k in a_bits if not np.array_equal(a_bits[k], n_bits.get(k))][:5]}")
for r in records("ev-a") + records("ev-b"):
    if "pairs_per_s" not in r:
        continue
    spent = r["time_compute_s"] + r["time_comm_s"] + r["time_data_s"]
    implied = 2 * 16 / r["pairs_per_s"]  # one step of 2 ranks x 16 pairs a line
    check(abs(implied - spent) <= 2e-4 + 1e-3 * spent and r["time_compute_s"] >= 0,
          f"step {r['step']}: pairs_per_s implies {implied:.5f} s for the step, its time split says {spent:.5f} s "
          f"(compute {r['time_compute_s']})")
if failed:
    sys.exit(f"{len(failed)} failed: " + " | ".join(failed))
print(f"metrics across a resume with evaluation: each step once, the uninterrupted run's lines and bits, "
      f"evaluation before its checkpoint, pairs_per_s over the steps ({time.time() - t0:.1f} s)")
print("1 passed, 0 failed")
