#!/usr/bin/python3
"""The trainer <-> index loop through the cluster: a pretrain job whose
spec asks for refreshes gets them by itself, each refresh publishes a
version and mines a negatives bank, and the trainer picks the bank up.

    cluster_loop.py BUILD_DIR WORKDIR VOCAB [MPI FLAGS...]

1. `foil data prepare code` (3,878 training pairs, 5,026 functions).
2. A coordinator and one worker (4 slots: the 2-rank pretrain job and a
   2-rank refresh job side by side). A 2-rank pretrain job of 60 steps with
   refresh.every_steps 20, loss.hard_negatives 2 and data.negatives_bank.
3. Refresh jobs appear by themselves (kind refresh, "<name>-refresh",
   submission id refresh-<job>-<step>, one per step), and complete; the
   pretrain job completes; the coordinator's log names each submission.
4. Versions are published; the bank names its version (the newest), the
   checkpoint and step that made it, the split's fingerprint matches a
   recomputation, and the pretrain log and metrics show the bank picked up
   with its staleness; the final checkpoint records the bank version.
5. The mined negatives of 150 pairs equal a numpy recomputation of the
   rule from the shard vectors read with h5py (queries and positives
   encoded by `foil-run refresh` of a JSONL file with the same checkpoint),
   exactly except where scores are within 1e-4 of each other or of the
   margin threshold.
"""
import json
import os
import re
import struct
import subprocess
import sys
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from foilcluster import STATE, Cluster, pb  # noqa: E402

build, work, vocab = sys.argv[1:4]
mpi_flags = sys.argv[4:]
failures = []
FINAL = {"JOB_COMPLETED", "JOB_FAILED", "JOB_NODE_FAIL", "JOB_CANCELLED", "JOB_TIMEOUT"}


def check(cond, what):
    print(("ok     " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures.append(what)


c = Cluster(build, os.path.join(work, "root"), heartbeat_ms=200, liveness=10, grace_s=2,
            allow_dirs=[os.path.dirname(os.path.abspath(vocab))])
root = c.root
subprocess.run([c.bin("foil"), "data", "prepare", "code", "--root", root], check=True, stdout=subprocess.DEVNULL)

STEPS, EVERY, TOP, SKIP, MARGIN = 60, 20, 2, 1, 0.05
spec = {
    "kind": "pretrain", "name": "code-loop", "seed": 7,
    "model": {"n_layers": 2, "d_model": 64, "n_heads": 2, "d_ff": 128, "max_len": 64, "dropout": 0.1,
              "tokenizer": vocab},
    "data": {"dataset": "code", "benchmark": "", "negatives_bank": "code-neg", "negatives_check_every": 2},
    "loss": {"kind": "infonce", "temperature": 0.05, "hard_negatives": TOP},
    "batch_per_rank": 96, "steps": STEPS,
    "optimizer": {"lr": 0.002, "warmup_steps": 5},
    "checkpoint": {"every_steps": EVERY, "keep_last": 5},
    "log_every_steps": 2, "threads": 1,
    "refresh": {"every_steps": EVERY, "index": "code", "ranks": 2,
                "corpus": {"dataset": "code", "benchmark": "all"}, "dtype": "float32", "keep_versions": 3,
                "batch": 128, "threads": 1,
                "mine": {"dataset": "code", "split": "train", "top": TOP, "skip_top": SKIP, "margin": MARGIN,
                         "bank": "code-neg"}},
    "job": {"ranks": 2},
}
spec_path = os.path.join(work, "loop.json")
with open(spec_path, "w") as f:
    json.dump(spec, f)

c.start_coordinator()
try:
    c.start_worker("n1", slots=4, extra_args=["--mpirun-args", " ".join(mpi_flags)])
    t0 = time.time()
    r = c.foil("submit", spec_path)
    check(r.returncode == 0, "foil submit of the loop job: %s %s" % (r.stdout.strip(), r.stderr.strip()))
    jid = int(r.stdout.strip())
    j = c.wait_state(jid, FINAL, 540)
    check(STATE.Name(j.state) == "JOB_COMPLETED", "pretrain job COMPLETED in %.0f s (%s: %s)"
          % (time.time() - t0, STATE.Name(j.state), j.reason))

    def refresh_jobs():
        jobs = c.call("list", pb.control.ListJobsRequest()).jobs.jobs
        return sorted([x for x in jobs if x.spec.kind == "refresh"], key=lambda x: x.id)

    # the step-60 refresh is submitted after the last checkpoint; wait for every refresh to end
    deadline = time.time() + 240
    while time.time() < deadline:
        rj = refresh_jobs()
        if rj and all(STATE.Name(x.state) in FINAL for x in rj) and len(rj) >= 2:
            break
        time.sleep(0.2)
    rj = refresh_jobs()
    sids = [x.submission_id for x in rj]
    check(len(rj) >= 2 and sids[:2] == ["refresh-%d-20" % jid, "refresh-%d-40" % jid]
          and len(set(sids)) == len(sids) and all(s.startswith("refresh-%d-" % jid) for s in sids),
          "refresh jobs appeared by themselves, one per step: %s" % sids)
    check(all(STATE.Name(x.state) == "JOB_COMPLETED" for x in rj),
          "every refresh job COMPLETED: %s" % [(x.id, STATE.Name(x.state), x.reason) for x in rj])
    check(all(x.spec.name == "code-loop-refresh" and x.spec.resources.ranks == 2 for x in rj),
          "named code-loop-refresh, 2 ranks each")
    rspec = c.job(rj[0].id).spec  # list rows leave spec_json out; Get has it
    rs = json.loads(rspec.spec_json)
    check(rs["name"] == "code" and rs["checkpoint"].endswith("/ckpt/step_20.h5") and rs["mine"]["top"] == TOP
          and "every_steps" not in rs, "the first refresh spec: index code, the step-20 checkpoint, mine: %s"
          % rspec.spec_json[:160])
    clog = open(os.path.join(root, "coordinator.log")).read()
    check(all(("loop: checkpoint step %d -> refresh job %d" % (int(s.rsplit("-", 1)[1]), x.id)) in clog
              for s, x in zip(sids, rj)), "the coordinator logged each submission as an event")

    # versions and the bank
    idx = os.path.join(root, "indexes", "code")
    cur = int(open(os.path.join(idx, "CURRENT")).read().strip()[1:])
    check(cur == len(rj), "CURRENT names v%d, one version per refresh" % cur)
    bank_path = os.path.join(root, "negatives", "code-neg.h5")
    check(os.path.exists(bank_path), "the bank exists: %s" % bank_path)
    bank = h5py.File(bank_path, "r")
    ba = dict(bank.attrs)
    pairs = h5py.File(os.path.join(root, "datasets", "code", "pairs.h5"), "r")
    tq = [x.decode() for x in pairs["train/query"][()]]
    tp = [x.decode() for x in pairs["train/positive"][()]]
    P = len(tq)
    check(ba["foil_format"] == "foil.negbank.v1" and ba["version"] == cur and ba["index"] == "code"
          and ba["n_pairs"] == P and ba["m"] == TOP and ba["skip_top"] == SKIP
          and abs(ba["margin"] - MARGIN) < 1e-9 and ba["dataset"] == "code" and ba["split"] == "train",
          "the bank names its version v%d and the rule: %s" % (cur, {k: ba[k] for k in ("version", "index", "m")}))
    vdir = os.path.join(idx, "v%d" % cur)
    shard0 = h5py.File(os.path.join(vdir, "shard_0.h5"), "r")
    check(ba["checkpoint"] == shard0.attrs["checkpoint"] and ba["step"] == shard0.attrs["step"],
          "the bank names the checkpoint and step that made the index (%s, step %d)"
          % (os.path.basename(ba["checkpoint"]), ba["step"]))
    h = 0xcbf29ce484222325
    def fnv(h, b):
        for x in b:
            h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        return h
    h = fnv(h, struct.pack("<Q", P))
    for qt, pt in zip(tq, tp):
        for t in (qt.encode(), pt.encode()):
            h = fnv(fnv(h, struct.pack("<Q", len(t))), t)
    check(ba["fingerprint"] == "%016x" % h, "the bank's fingerprint is the split's (%s)" % ba["fingerprint"])
    rows = bank["rows"][()]
    texts = [x.decode() for x in bank["texts"][()]]
    check(rows.shape == (P, TOP) and len(texts) == P * TOP, "bank /rows [%d, %d], /texts %d" % (P, TOP, len(texts)))

    # the trainer picked it up
    jdir = os.path.join(root, "jobs", str(jid))
    log = open(os.path.join(jdir, "log")).read()
    picks = re.findall(r"negatives bank code-neg v(\d+) picked up before step (\d+).*?\(staleness (-?\d+) steps\)", log)
    check(len(picks) >= 1 and all(int(s) >= 0 for _, _, s in picks),
          "the pretrain log shows the bank picked up with its staleness: %s" % picks)
    check("in-batch negatives only" in log, "the log says steps before the first bank train in-batch only")
    mets = [json.loads(x) for x in open(os.path.join(jdir, "metrics")) if '"loss"' in x]
    used = [m for m in mets if m.get("bank_version", 0) > 0]
    check(len(used) >= 1 and all(m["bank_staleness"] >= 0 and m["negatives"] in (0, 2 * 96) for m in used)
          and mets[0]["bank_version"] == 0,
          "metrics: bank_version and bank_staleness once a bank is in use (%d of %d lines; last %s)"
          % (len(used), len(mets), {k: used[-1][k] for k in ("step", "bank_version", "bank_staleness")}
             if used else None))
    last = h5py.File(os.path.join(jdir, "ckpt", "step_%d.h5" % STEPS), "r")
    check(last.attrs.get("negatives_bank") == "code-neg"
          and last.attrs.get("negatives_bank_version") == (used[-1]["bank_version"] if used else -1),
          "the final checkpoint records the bank version in use (%s)" % last.attrs.get("negatives_bank_version"))
    check('"checkpoint_step"' in j.progress.metrics_json, "the job's last progress carries the checkpoint fields")
finally:
    codes = c.stop()
check(all(v == 0 for v in codes.values()), "daemons exit cleanly: %s" % codes)

# 5. the mined rows against numpy: queries and positives encoded by foil-run refresh
bench = h5py.File(os.path.join(root, "datasets", "code", "benchmarks", "all.h5"), "r")
corpus = [x.decode() for x in bench["corpus"][()]]
rng = np.random.default_rng(3)
sample = sorted(rng.choice(P, 150, replace=False).tolist())
probe = os.path.join(work, "probe.jsonl")
with open(probe, "w") as f:
    for i in sample:
        f.write(json.dumps({"id": "q%d" % i, "text": tq[i]}) + "\n")
        f.write(json.dumps({"id": "p%d" % i, "text": tp[i]}) + "\n")
pspec = os.path.join(work, "probe.json")
with open(pspec, "w") as f:
    json.dump({"kind": "refresh", "name": "probe", "checkpoint": ba["checkpoint"], "corpus": {"file": probe},
               "batch": 128, "threads": 1}, f)
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
r = subprocess.run(["mpirun", *mpi_flags, "-np", "1", c.bin("foil-run"), "refresh", pspec, "--root", root,
                    "--job-dir", os.path.join(work, "probe-job"), "--quiet"], env=env)
check(r.returncode == 0, "the probe refresh encoded the sampled queries and positives")
pf = h5py.File(os.path.join(root, "indexes", "probe", "v1", "shard_0.h5"), "r")
pvec = {k.decode(): v for k, v in zip(pf["keys"][()], pf["vectors"][()])}
X = np.zeros((len(corpus), int(shard0.attrs["dim"])), np.float32)
for s in sorted(os.listdir(vdir)):
    if s.startswith("shard_"):
        sh = h5py.File(os.path.join(vdir, s), "r")
        X[sh["ids"][()]] = sh["vectors"][()]
exact = tol_ok = 0
bad = []
for i in sample:
    q, p = pvec["q%d" % i].astype(np.float64), pvec["p%d" % i].astype(np.float64)
    sc = X.astype(np.float64) @ q
    thr = float(q @ p) - MARGIN
    order = sorted(range(len(corpus)), key=lambda r_: (-sc[r_], r_))
    want, skipped = [], 0
    for r_ in order:
        if corpus[r_] == tp[i]:
            continue
        if skipped < SKIP:
            skipped += 1
            continue
        if sc[r_] > thr:
            continue
        want.append(r_)
        if len(want) == TOP:
            break
    want += [-1] * (TOP - len(want))
    got = rows[i].tolist()
    if got == want:
        exact += 1
        continue
    # near ties: the rows differ only where scores are within 1e-4 of each other or of the threshold
    near = any(abs(sc[a] - sc[b]) < 1e-4 for a, b in zip(got, want) if a >= 0 and b >= 0) or \
        any(abs(sc[r_] - thr) < 1e-4 for r_ in got + want if r_ >= 0)
    tol_ok += near
    if not near:
        bad.append((i, got, want))
check(not bad and exact >= 0.9 * len(sample),
      "mined negatives equal numpy's rule on %d pairs (%d exactly, %d at near-ties); differing: %s"
      % (len(sample), exact, tol_ok, bad[:3]))
check(all(texts[i * TOP + k] == (corpus[rows[i, k]] if rows[i, k] >= 0 else "") for i in sample for k in range(TOP)),
      "the bank's texts are the corpus texts of its rows")

if failures:
    sys.exit("%d check(s) failed" % len(failures))
print("all checks passed")
