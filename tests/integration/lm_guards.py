#!/usr/bin/python3
"""The decoder's pretrain job refusing and failing cleanly (model.kind
"decoder"; worker/run/lmtrain.h), on a tiny lm dataset, a few steps each.

    lm_guards.py FOIL FOIL_RUN MPIEXEC WORKDIR [MPI FLAGS...]

1. Setup agrees across ranks: 2 ranks whose rank 0 cannot make the job
   directory (it is under a regular file) fail within seconds, with the
   reason, instead of hanging in mismatched collectives.
2. A checkpoint directory that cannot be listed (a regular file named ckpt)
   fails the job before any step (2 ranks), instead of starting over from
   step 0.
3. A diverging run (lr 10, no clipping, perplexity past a double) writes
   metrics that are JSON lines all the same: null for a value that is not
   finite, no number of hundreds of digits.
4. Resume checks the global batch: 2 ranks x 4 rows stopped at step 2 are
   refused on 1 rank x 4 rows (naming the global batches) and resumed on
   1 rank x 8 (the same rows); a checkpoint whose cursor lacks the global
   batch (an older foil's) is refused by name.
5. A finite loss with an infinite gradient norm (the final LayerNorm of a
   checkpoint scaled by 1e30) ends the job before that step's update: no
   checkpoint of it, no metrics line.
6. A checkpoint whose step is outside 0..steps is refused.
7. On a fresh start the ranks check they read the same spec and tokenized
   the same data: 2 ranks given other --root data, or other spec files
   (mpirun's rank-by-rank command lines), are refused naming what differs.
8. A resumed run logs each step once: the metrics lines an earlier attempt
   wrote after its last checkpoint (and a line torn by a kill) are dropped,
   those up to the checkpoint kept (on a fresh start: none); a step's
   evaluation comes before its checkpoint, so a checkpoint never stands
   for an unevaluated step (a kill between the two used to skip it).
9. tokens_per_s is the rate of the steps alone: tokens over time_compute_s
   + time_comm_s + time_data_s, with an evaluation and a checkpoint after
   every step in between (they used to count).
"""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
from foilh5 import sign
from lmtiny import spec_file, write_lm
from mpikill import kill_ranks

foil, foil_run, mpiexec, work = sys.argv[1:5]
mpi_flags = sys.argv[5:]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
failed = []


def check(ok, what):
    if not ok:
        failed.append(what)
        print("FAIL:", what)


def done(section, msg):
    """Reports a section: msg when its checks passed."""
    print(f"{section}. " + (msg if len(failed) == done.seen else f"failed ({len(failed) - done.seen} checks)"))
    done.seen = len(failed)


done.seen = 0


# ---- data: two roots with the same tokenizer and different documents ---------------------------
rng = random.Random(7)
NOUNS = "house garden river letter sister carriage morning evening window village".split()
VERBS = "saw visited left found admired remembered".split()
NAMES = "Elinor Marianne Elizabeth Jane Emma Anne".split()


def document():
    return " ".join(f"{rng.choice(NAMES)} {rng.choice(VERBS)} the {rng.choice(NOUNS)} near the {rng.choice(NOUNS)}."
                    for _ in range(rng.randint(3, 6)))


roots = [os.path.join(work, "root"), os.path.join(work, "root-other")]
for r in roots:
    os.makedirs(os.path.join(r, "datasets", "tiny"))
    write_lm(os.path.join(r, "datasets", "tiny", "lm.h5"),
             {"train": [document() for _ in range(24)], "valid": [document() for _ in range(3)],
              "test": [document()]}, source="test")
root = roots[0]
bpe = os.path.join(work, "bpe")
subprocess.run([foil, "tokenizer", "train", "--lm", os.path.join(root, "datasets", "tiny", "lm.h5"),
                "--vocab-size", "300", "--out", bpe], check=True, capture_output=True)


def write_spec(name, **over):
    spec = {
        "kind": "pretrain", "name": name, "seed": 3,
        "model": {"kind": "decoder", "n_layers": 2, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 16,
                  "dropout": 0.0, "tokenizer": os.path.join(bpe, "vocab.json")},
        "data": {"dataset": "tiny"},
        "loss": {"kind": "causal_lm", "simctg_margin": 0.0},
        "batch_per_rank": 4, "steps": 4,
        "optimizer": {"lr": 0.003, "warmup_steps": 0},
        "checkpoint": {"every_steps": 2, "keep_last": 5},
        "eval": {"every_steps": 4, "tokens": 256},
        "log_every_steps": 1, "threads": 1,
    }
    return spec_file(os.path.join(work, name + ".json"), spec, over)


def run_argv(argv, job, timeout=60):
    """Runs argv (a job writing to job_dir); a run past timeout is killed
    with its ranks and reported as a hang (returncode None)."""
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, errs = p.communicate(timeout=timeout)
        check("Sanitizer" not in errs, f"{job}: a sanitizer report: {errs[-1500:]}")  # ASan builds: leaks on errors
        return p.returncode, errs
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.communicate()
        kill_ranks(job)
        return None, ""


def run(spec, job, ranks=1, extra=(), timeout=60):
    jdir = os.path.join(work, job)
    argv = [mpiexec, *mpi_flags, "-np", str(ranks), foil_run, "pretrain", spec, "--root", root, "--job-dir", jdir,
            "--quiet", *extra]
    return run_argv(argv, jdir, timeout)


def metric_lines(job):
    p = os.path.join(work, job, "metrics")
    return open(p).read().splitlines() if os.path.exists(p) else []


def resign(path, edit):
    """Edits a checkpoint with h5py and writes its integrity header again."""
    with h5py.File(path, "r+") as f:
        edit(f)
    sign(path)


base = write_spec("base")

# ---- 1. rank 0 cannot make the job directory: the job fails, it does not hang -------------------
open(os.path.join(work, "notadir"), "w").close()
t0 = time.time()
rc, errs = run(base, os.path.join("notadir", "job"), ranks=2, timeout=60)
check(rc is not None, "2 ranks with the job directory under a regular file hung (killed after 60 s)")
check(rc not in (None, 0), f"2 ranks with the job directory under a regular file: exit status {rc}")
check("cannot create the job directory" in errs, "no reason given for the unusable job directory: " + errs[-600:])
done("1", f"unusable job directory on 2 ranks: exit status {rc} after {time.time() - t0:.1f} s")

# ---- 2. a checkpoint directory that cannot be listed fails the job, not a fresh start -------------
os.makedirs(os.path.join(work, "ckfile"))
open(os.path.join(work, "ckfile", "ckpt"), "w").close()
rc, errs = run(base, "ckfile", ranks=2)
check(rc not in (None, 0), f"a regular file as ckpt/: exit status {rc}")
check("cannot list the checkpoints" in errs, "no reason given for the unlistable ckpt/: " + errs[-600:])
check(not any('"loss"' in x for x in metric_lines("ckfile")), "the job trained from step 0 over an unlistable ckpt/")
done("2", f"unlistable ckpt/ on 2 ranks: exit status {rc}, no step run")

# ---- 3. a diverging run's metrics are JSON lines ------------------------------------------------
div = write_spec("div", steps=8, optimizer={"lr": 10, "schedule": "constant", "max_grad_norm": 0,
                                            "weight_decay": 0},
                 checkpoint={"every_steps": 100}, eval={"every_steps": 1, "tokens": 256})
rc, errs = run(div, "div")
lines, bad, nulls, longest = metric_lines("div"), [], 0, 0


def no_constant(name):
    raise ValueError(name + " is not JSON")


for line in lines:
    try:
        rec = json.loads(line, parse_constant=no_constant)
        nulls += sum(rec.get(k, 0) is None for k in ("ppl", "val_ppl"))
        longest = max([longest] + [len(x) for x in re.findall(r"[-+0-9.eE]+", line)])
    except ValueError as e:
        bad.append(f"{line[:120]} ({e})")
check(len(lines) >= 8 and not bad, f"{len(bad)} of {len(lines)} metrics lines are not JSON: {bad[:3]}")
check(nulls > 0, f"the run did not diverge past a double's perplexity (exit status {rc}): the test proves nothing")
check(longest <= 24, f"a number of {longest} characters in the metrics")
done("3", f"diverging run: {len(lines)} metrics lines, all JSON; {nulls} perplexities null; longest number "
      f"{longest} characters")

# ---- 4. resume with another global batch ----------------------------------------------------------
rc, errs = run(base, "g", ranks=2, extra=("--stop-after", "2"))
ck2 = os.path.join(work, "g", "ckpt", "step_2.h5")
check(rc == 0 and os.path.exists(ck2), f"2 ranks stopped after 2 steps: exit status {rc} {errs[-400:]}")
with h5py.File(ck2, "r") as f:
    cur = f["loader/cursor"][()]
check(len(cur) == 4 and cur[2] == 2 and cur[3] == 8, f"cursor {cur}: want {{seed, fingerprint, 2, 8}}")
rc, errs = run(base, "g", ranks=1)
check(rc not in (None, 0) and "global batch of 8 rows" in errs and "= 4" in errs,
      f"2 x 4 rows resumed on 1 x 4: exit status {rc} {errs[-600:]}")
glog = open(os.path.join(work, "g", "log")).read()
check("resumed from" not in glog, "the 1 x 4 run resumed")
eight = write_spec("eight", batch_per_rank=8)
rc, errs = run(eight, "g", ranks=1)
check(rc == 0 and "resumed from" in open(os.path.join(work, "g", "log")).read(),
      f"2 x 4 rows resumed on 1 x 8 (the same global batch): exit status {rc} {errs[-600:]}")
done("4", "a checkpoint of 2 x 4 rows: refused on 1 x 4, resumed on 1 x 8")
shutil.copytree(os.path.join(work, "g", "ckpt"), os.path.join(work, "old", "ckpt"))
for n in os.listdir(os.path.join(work, "old", "ckpt")):
    def three(f):
        c = f["loader/cursor"][()]
        del f["loader/cursor"]
        f.create_dataset("loader/cursor", data=c[:3])
    resign(os.path.join(work, "old", "ckpt", n), three)
rc, errs = run(eight, "old")
check(rc not in (None, 0) and "does not record the global batch" in errs,
      f"a cursor without the global batch: exit status {rc} {errs[-600:]}")
done("4b", "a checkpoint whose cursor lacks the global batch: refused")

# ---- 5. infinite gradient norm, finite loss: no update, no checkpoint -------------------------------
inf = write_spec("inf", optimizer={"lr": 0.001, "max_grad_norm": 1.0}, checkpoint={"every_steps": 1})
rc, errs = run(inf, "inf", extra=("--stop-after", "1"))
ck1 = os.path.join(work, "inf", "ckpt", "step_1.h5")
check(rc == 0 and os.path.exists(ck1), f"1 step: exit status {rc} {errs[-400:]}")


def blow_up(f):
    f["model/lnf_w"][...] = f["model/lnf_w"][()] * np.float32(1e30)


resign(ck1, blow_up)
rc, errs = run(inf, "inf")
check(rc not in (None, 0) and "gradient norm is not finite at step 2" in errs,
      f"an infinite gradient norm: exit status {rc} {errs[-600:]}")
left = sorted(os.listdir(os.path.join(work, "inf", "ckpt")))
check(left == ["step_1.h5"], f"checkpoints after the step that blew up: {left}")
check(not any('"step":2' in x for x in metric_lines("inf")), "a metrics line for the step that blew up")
done("5", "finite loss, infinite gradient norm: the job ends before the update, no checkpoint of it")

# ---- 6. a checkpoint step outside 0..steps --------------------------------------------------------
for bad_step in (9, -1):
    job = f"range{bad_step}"
    shutil.copytree(os.path.join(work, "g", "ckpt"), os.path.join(work, job, "ckpt"))
    for n in os.listdir(os.path.join(work, job, "ckpt")):
        def restep(f):
            f.attrs["step"] = np.int64(bad_step)
            f["loader/cursor"][2] = bad_step
        resign(os.path.join(work, job, "ckpt", n), restep)
    rc, errs = run(eight, job)
    check(rc not in (None, 0) and f"at step {bad_step}, outside this job's 0..4 steps" in errs,
          f"a checkpoint at step {bad_step}: exit status {rc} {errs[-600:]}")
done("6", "checkpoints at steps 9 and -1 of a 4-step job: refused")

# ---- 7. ranks that read other data or another spec ----------------------------------------------------
def two_ranks(job, per_rank):
    """2 ranks, one command line each: per_rank = [(spec, root), (spec, root)]."""
    jdir = os.path.join(work, job)
    argv = [mpiexec, *mpi_flags]
    for i, (spec, r) in enumerate(per_rank):
        argv += ([":"] if i else []) + ["-np", "1", foil_run, "pretrain", spec, "--root", r, "--job-dir", jdir,
                                        "--quiet"]
    return run_argv(argv, jdir)


rc, errs = two_ranks("otherdata", [(base, roots[0]), (base, roots[1])])
check(rc not in (None, 0) and "rank 1: the fingerprint of the tokenized train split" in errs,
      f"ranks with other data: exit status {rc} {errs[-600:]}")
check(not os.path.exists(os.path.join(work, "otherdata", "ckpt", "step_2.h5")), "ranks with other data trained")
other = write_spec("other", log_every_steps=2)
rc, errs = two_ranks("otherspec", [(base, root), (other, root)])
check(rc not in (None, 0) and "rank 1: the hash of the spec it read" in errs,
      f"ranks with other specs: exit status {rc} {errs[-600:]}")
done("7", "ranks with other data or another spec: refused")

# ---- 8. resume: no metrics line twice, no checkpoint before its step's evaluation ----------------------
def steps_of(job):
    """(step, kind) of each metrics line; a line that is not JSON fails the check."""
    out = []
    for line in metric_lines(job):
        try:
            r = json.loads(line)
            out.append((r["step"], r.get("eval", "train")))
        except ValueError:
            out.append(("not JSON", line[:60]))
    return out


ev = write_spec("ev", eval={"every_steps": 2, "tokens": 256})
rc, errs = run(ev, "dup", extra=("--stop-after", "3"))  # checkpoint at 2, step 3 logged after it
check(rc == 0 and steps_of("dup") == [(1, "train"), (2, "train"), (2, "valid"), (3, "train")],
      f"3 steps: exit status {rc}, metrics {steps_of('dup')}")
with open(os.path.join(work, "dup", "metrics"), "a") as f:
    f.write('{"step":4,"loss":3.1')  # a line torn by a kill
rc, errs = run(ev, "dup")
want = [(1, "train"), (2, "train"), (2, "valid"), (3, "train"), (4, "train"), (4, "valid")]
check(rc == 0 and steps_of("dup") == want, f"resumed at step 2: exit status {rc}, metrics {steps_of('dup')}")
dlog = open(os.path.join(work, "dup", "log")).read()
for s_ in (2, 4):
    e_at, c_at = dlog.find(f"eval step {s_} on valid"), dlog.find(f"step_{s_}.h5")
    check(0 <= e_at < c_at, f"step {s_}: its checkpoint was written before its evaluation (log at {e_at}, {c_at})")
rc, errs = run(ev, "dup")  # resumed at the last step: nothing to run, the final evaluation kept
check(rc == 0 and steps_of("dup") == want, f"resumed at step 4 of 4: exit status {rc}, metrics {steps_of('dup')}")
nock = write_spec("nock", checkpoint={"every_steps": 100})
rc, errs = run(nock, "nock", extra=("--stop-after", "1"))  # no checkpoint: the rerun starts over
rc2, errs = run(nock, "nock")
check(rc == rc2 == 0 and steps_of("nock") == [(1, "train"), (2, "train"), (3, "train"), (4, "train"),
                                                (4, "valid")],
      f"a fresh start over an earlier attempt's metrics: exit status {rc2}, metrics {steps_of('nock')}")
done("8", "resumed runs log each step once; each step is evaluated before its checkpoint")

# ---- 9. tokens_per_s counts the steps, not the evaluations and checkpoints between log lines ---------
busy = write_spec("busy", steps=8, log_every_steps=4, checkpoint={"every_steps": 1},
                  eval={"every_steps": 1, "tokens": 0})
rc, errs = run(busy, "busy")
recs = [json.loads(x) for x in metric_lines("busy")]
train = [r for r in recs if "tokens_per_s" in r]
check(rc == 0 and len(train) == 2, f"8 steps logged every 4: exit status {rc}, {len(train)} lines")
for r in train:
    spent = r["time_compute_s"] + r["time_comm_s"] + r["time_data_s"]
    implied = 4 * 4 * 16 / r["tokens_per_s"]  # 4 steps of 4 rows of 16 tokens
    check(abs(implied - spent) <= 2e-4 + 1e-3 * spent,
          f"step {r['step']}: tokens_per_s implies {implied:.5f} s for the steps, their time split says {spent:.5f} s")
done("9", "tokens_per_s: " + ", ".join(f"{r['tokens_per_s']:.0f}" for r in train)
     + " over the steps' own time")

if failed:
    sys.exit(f"{len(failed)} failed: " + " | ".join(failed))
print("1 passed, 0 failed")
