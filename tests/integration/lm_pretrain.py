#!/usr/bin/python3
"""The decoder's pretrain job end to end on 2 ranks (model.kind "decoder").

    lm_pretrain.py FOIL FOIL_RUN MPIEXEC WORKDIR [MPI FLAGS...]

1. A tiny lm dataset written here with h5py (foil.lm.v1: train/valid/test
   documents of generated English-like sentences) and its BPE tokenizer
   learnt by the real `foil tokenizer train --lm`.
2. Run A: 2 ranks, causal LM + SimCTG (margin 0.5), dropout on,
   uninterrupted. Run B: the same spec, SIGKILLed right after its first
   checkpoint, then run again: it resumes and must end with the same bits
   as A in every dataset of the final checkpoint (parameters, AdamW
   moments, cursor, tokenizer), and with A's metrics lines (each step
   once, the same losses: the lines the killed attempt wrote after its
   checkpoint are dropped when it resumes).
3. The loss goes down (MLE and validation perplexity); the checkpoint opens
   in h5py with readable names (model kind "decoder", its config, wte ...).
4. Data parallel: 2 ranks x 4 rows and 1 rank x 8 rows (dropout on: each
   row draws the masks of its place in the global batch) give the same
   losses and parameters up to float rounding; with eval.at_start both
   evaluate the starting weights as step 0, to the same validation loss.
4b. Retention: beside a damaged higher-step file and one that cannot be
   removed, every checkpoint written is kept until the next (keep_last 1)
   and the failed removal is logged as a warning; training goes on.
5. GPU ranks ("device": "cuda"): without a GPU (or CUDA) refused with the
   reason, no checkpoint written; on a GPU, run A's spec on the device
   follows A's losses (rtol 2e-3). With $FOIL_RUN_DEVICE (foil-run-shim:
   the decoder's and the job's CUDA paths against tests/gpu/cuda_shim.c,
   MPI carrying the "device" buffers where NCCL would): run A's spec on 2
   GPU ranks ends with A's bits, and so does one SIGKILLed after its first
   checkpoint and resumed (host copies to and from the checkpoint); with
   "precision": "bf16" its final MLE is within 5% of A's (not A's bits).
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
from lmtiny import spec_file, write_lm
from mpikill import kill_ranks

foil, foil_run, mpiexec, work = sys.argv[1:5]
mpi_flags = sys.argv[5:]
shutil.rmtree(work, ignore_errors=True)
root = os.path.join(work, "root")
ds = os.path.join(root, "datasets", "tiny")
os.makedirs(ds)

# ---- 1. data and tokenizer --------------------------------------------------------------
rng = random.Random(5)
NOUNS = "house garden river letter sister carriage morning evening window village".split()
ADJS = "quiet little pleasant young old bright cold".split()
VERBS = "saw visited left found admired remembered".split()
NAMES = "Elinor Marianne Elizabeth Jane Emma Anne".split()


def sentence():
    return (f"{rng.choice(NAMES)} {rng.choice(VERBS)} the {rng.choice(ADJS)} {rng.choice(NOUNS)} "
            f"near the {rng.choice(NOUNS)}.")


def document():
    return "\n\n".join(" ".join(sentence() for _ in range(rng.randint(3, 6))) for _ in range(rng.randint(2, 4)))


splits = {"train": [document() for _ in range(60)], "valid": [document() for _ in range(8)],
          "test": [document() for _ in range(2)]}
write_lm(os.path.join(ds, "lm.h5"), splits, source="test")
bpe = os.path.join(work, "bpe")
subprocess.run([foil, "tokenizer", "train", "--lm", os.path.join(ds, "lm.h5"), "--vocab-size", "320",
                "--out", bpe], check=True)
vocab = json.load(open(os.path.join(bpe, "vocab.json")))
assert "<|endoftext|>" in vocab and len(vocab) <= 320, len(vocab)

env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def write_spec(name, **over):
    spec = {
        "kind": "pretrain", "name": name, "seed": 3,
        "model": {"kind": "decoder", "n_layers": 2, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 16,
                  "dropout": 0.1, "tokenizer": os.path.join(bpe, "vocab.json")},
        "data": {"dataset": "tiny"},
        "loss": {"kind": "causal_lm", "simctg_margin": 0.5},
        "batch_per_rank": 4, "steps": 60,
        "optimizer": {"lr": 0.003, "warmup_steps": 3, "weight_decay": 0.01},
        "checkpoint": {"every_steps": 15, "keep_last": 10},
        "eval": {"every_steps": 30, "tokens": 1024},
        "log_every_steps": 5, "threads": 1,
    }
    return spec_file(os.path.join(work, name + ".json"), spec, over)


def cmd(spec_path, job, ranks=2):
    return [mpiexec, *mpi_flags, "-np", str(ranks), foil_run, "pretrain", spec_path, "--root", root,
            "--job-dir", os.path.join(work, job), "--quiet"]


def metrics(job):
    return [json.loads(line) for line in open(os.path.join(work, job, "metrics"))]


def killed_and_resumed(argv, job):
    """Runs argv (a job writing to work/job), SIGKILLs it right after its
    first checkpoint, runs it again, and checks that it resumed."""
    first = os.path.join(work, job, "ckpt", "step_15.h5")
    p = subprocess.Popen(argv, env=env, start_new_session=True)
    while not os.path.exists(first):
        if p.poll() is not None:
            sys.exit(f"run {job} ended before its first checkpoint")
        time.sleep(0.005)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    kill_ranks(os.path.join(work, job))  # its ranks too: they are not in mpirun's process group
    done = sorted(os.listdir(os.path.join(work, job, "ckpt")))
    print(f"killed run {job}; its checkpoints:", done)
    if "step_60.h5" in done:
        sys.exit(f"run {job} finished before the kill: the test proves nothing")
    subprocess.run(argv, check=True, env=env)
    assert "resumed from" in open(os.path.join(work, job, "log")).read(), f"run {job} did not resume"


# ---- 2. exact resume -----------------------------------------------------------------------------
spec = write_spec("lm")
t0 = time.time()
subprocess.run(cmd(spec, "a"), check=True, env=env)
print(f"uninterrupted run: {time.time() - t0:.1f} s")
killed_and_resumed(cmd(spec, "b"), "b")

a = h5py.File(os.path.join(work, "a", "ckpt", "step_60.h5"), "r")
b = h5py.File(os.path.join(work, "b", "ckpt", "step_60.h5"), "r")
names = []
a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
bad = [n for n in names if not np.array_equal(a[n][()], b[n][()])]
if bad:
    sys.exit(f"resumed run differs from the uninterrupted one in: {bad[:10]}")
print(f"resumed run matches bit for bit ({len(names)} datasets compared)")


def metric_keys(job):
    return [(r["step"], r.get("eval", "train"), r.get("loss"), r.get("val_loss")) for r in metrics(job)]


if metric_keys("b") != metric_keys("a"):
    sys.exit(f"resumed run's metrics differ from the uninterrupted one's:\n{metric_keys('b')}\n{metric_keys('a')}")
print(f"resumed run's metrics: the uninterrupted one's {len(metric_keys('a'))} lines, each step once")

# ---- 3. readable checkpoint, loss goes down --------------------------------------------------------
m = a["model"].attrs
assert m["kind"] in ("decoder", b"decoder"), m["kind"]
assert (m["n_layers"], m["d_model"], m["n_heads"], m["d_ff"], m["max_len"], m["vocab"]) == \
    (2, 32, 2, 64, 16, len(vocab)), dict(m)
for n in ("model/wte", "model/wpe", "model/qkv_w", "model/lnf_w", "optim/m/wte", "optim/v/fc2_w",
          "loader/cursor"):
    assert n in names, f"{n} missing from the checkpoint"
assert a["model/wte"].shape == (len(vocab), 32) and a["model/qkv_w"].shape == (2, 96, 32)
assert "tokenizer" in a, "no tokenizer in the checkpoint"
assert a["loader/cursor"][2] == 60 and a.attrs["step"] == 60
train = [r for r in metrics("a") if "mle" in r]
evals = [r for r in metrics("a") if r.get("eval") == "valid"]
assert train[0]["simctg"] > 0, "SimCTG is on: its loss must show"
print(f"mle {train[0]['mle']:.3f} -> {train[-1]['mle']:.3f}; valid ppl "
      + " -> ".join(f"{r['val_ppl']:.2f}" for r in evals))
assert train[-1]["mle"] < 0.8 * train[0]["mle"], "the loss did not go down"
assert len(evals) == 2 and evals[-1]["val_ppl"] < 0.7 * len(vocab), "validation perplexity did not drop"

# ---- 4. 2 ranks x 4 rows = 1 rank x 8 rows ----------------------------------------------------------
over = dict(steps=6, checkpoint={"every_steps": 6}, eval={"every_steps": 6, "at_start": True}, log_every_steps=1)
two = write_spec("two", model={"dropout": 0.1}, **over)
one = write_spec("one", model={"dropout": 0.1}, batch_per_rank=8, **over)
subprocess.run(cmd(two, "two", 2), check=True, env=env)
subprocess.run(cmd(one, "one", 1), check=True, env=env)
lt = [r["loss"] for r in metrics("two") if "mle" in r]
lo = [r["loss"] for r in metrics("one") if "mle" in r]
assert len(lt) == len(lo) == 6
diff = max(abs(x - y) / abs(y) for x, y in zip(lt, lo))
assert diff < 1e-4, f"losses differ: {lt} vs {lo}"
pt = h5py.File(os.path.join(work, "two", "ckpt", "step_6.h5"), "r")
po = h5py.File(os.path.join(work, "one", "ckpt", "step_6.h5"), "r")
worst = max(float(np.max(np.abs(pt["model"][n][()] - po["model"][n][()]))) for n in pt["model"])
assert worst < 1e-4, f"parameters differ by {worst}"
print(f"2 ranks x 4 rows = 1 rank x 8 rows: losses rel {diff:.2e}, parameters max |diff| {worst:.2e}")
et = [(r["step"], r["val_loss"]) for r in metrics("two") if r.get("eval") == "valid"]
eo = [(r["step"], r["val_loss"]) for r in metrics("one") if r.get("eval") == "valid"]
assert [x[0] for x in et] == [x[0] for x in eo] == [0, 6], f"eval.at_start: evaluations at {et} and {eo}"
assert abs(et[0][1] - eo[0][1]) < 1e-5 * abs(eo[0][1]) and eo[1][1] < eo[0][1], f"step-0 evaluations {et} {eo}"
print(f"eval.at_start: valid loss at step 0 {eo[0][1]:.4f} (2 ranks {et[0][1]:.4f}), at step 6 {eo[1][1]:.4f}")

# ---- 4b. retention ----------------------------------------------------------------------------------
# 1 rank, 4 steps, a checkpoint every 2, keep_last 1, in a job directory
# holding a damaged step_999.h5 (refused at resume: a fresh start) and a
# step_1.h5 that cannot be removed (a directory): each checkpoint written
# stays until the next replaces it (the damaged higher step neither counts
# nor goes), and the failed removal is a warning, not the end of training.
rjob = os.path.join(work, "retain")
os.makedirs(os.path.join(rjob, "ckpt", "step_1.h5"))
open(os.path.join(rjob, "ckpt", "step_1.h5", "x"), "w").close()
with open(os.path.join(rjob, "ckpt", "step_999.h5"), "wb") as f:
    f.write(b"\x89HDF\r\n\x1a\n" + bytes(100))
retain = write_spec("retain", steps=4, checkpoint={"every_steps": 2, "keep_last": 1}, eval={"every_steps": 4})
r = subprocess.run(cmd(retain, "retain", 1), env=env)
rlog = open(os.path.join(rjob, "log")).read()
assert r.returncode == 0, "a failed checkpoint removal stopped training:\n" + rlog[-2000:]
left = sorted(os.listdir(os.path.join(rjob, "ckpt")))
assert left == ["step_1.h5", "step_4.h5", "step_999.h5"], f"checkpoints left: {left}"
assert "WARN" in rlog and "checkpoint retention" in rlog and "step_1.h5" in rlog, rlog[-2000:]
print("retention: a damaged newer file and a failed removal keep the new checkpoint and training going")

# ---- 5. GPU ranks ----------------------------------------------------------------------------------
def final_differs(job):
    c = h5py.File(os.path.join(work, job, "ckpt", "step_60.h5"), "r")
    return [n for n in names if n in c and not np.array_equal(a[n][()], c[n][()])] + [n for n in names if n not in c]


cuda = write_spec("lm-cuda", device="cuda")
r = subprocess.run(cmd(cuda, "cuda"), env=env, capture_output=True, text=True)
if r.returncode != 0:
    why = " | ".join(x for x in r.stderr.splitlines() if x.startswith("foil-run"))[:300]
    assert "device \"cuda\"" in r.stderr and "CUDA" in r.stderr, f"device cuda refused without its reason: {why}"
    ck = os.path.join(work, "cuda", "ckpt")
    assert not os.path.isdir(ck) or not os.listdir(ck), "a refused device run wrote a checkpoint"
    print("device cuda without a GPU: refused:", why)
else:
    lc = [x["loss"] for x in metrics("cuda") if "mle" in x]
    la = [x["loss"] for x in metrics("a") if "mle" in x]
    worst = max(abs(x - y) / abs(y) for x, y in zip(lc, la))
    assert len(lc) == len(la) and worst < 2e-3, f"GPU losses {lc} vs CPU {la}"
    print(f"device cuda on a GPU: losses within {worst:.1e} of the CPU run's")
shim = os.environ.get("FOIL_RUN_DEVICE")
if shim:
    def cmd_shim(job):
        return [mpiexec, *mpi_flags, "-np", "2", shim, "pretrain", cuda, "--root", root, "--job-dir",
                os.path.join(work, job), "--quiet"]
    subprocess.run(cmd_shim("shim"), check=True, env=env)
    bad = final_differs("shim")
    assert not bad, f"device cuda (shim) differs from the CPU run in: {bad[:10]}"
    killed_and_resumed(cmd_shim("shim-b"), "shim-b")
    bad = final_differs("shim-b")
    assert not bad, f"device cuda (shim), killed and resumed, differs from the CPU run in: {bad[:10]}"
    print(f"device cuda (shim, 2 ranks): the CPU run's bits, uninterrupted and resumed ({len(names)} datasets)")
    # mixed precision: bf16 GEMMs train the same model to within 5% of fp32's loss, and are not fp32's bits
    bf = write_spec("lm-bf16", device="cuda", precision="bf16")
    subprocess.run([mpiexec, *mpi_flags, "-np", "2", shim, "pretrain", bf, "--root", root, "--job-dir",
                    os.path.join(work, "shim-bf16"), "--quiet"], check=True, env=env)
    lb = [x["mle"] for x in metrics("shim-bf16") if "mle" in x]
    la = [x["mle"] for x in metrics("a") if "mle" in x]
    assert len(lb) == len(la) and lb != la, "the bf16 run logged the fp32 run's losses"
    assert abs(lb[-1] - la[-1]) < 0.05 * la[-1] and lb[-1] < 0.8 * lb[0], f"bf16 mle {lb} vs fp32 {la}"
    print(f"precision bf16 (shim): final mle {lb[-1]:.4f} vs fp32 {la[-1]:.4f}")
print("1 passed, 0 failed")
