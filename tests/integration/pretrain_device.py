#!/usr/bin/python3
"""`foil-run pretrain` with "device": "cuda" (GPU ranks), on whatever machine
runs it.

    pretrain_device.py FOIL FOIL_RUN MPIEXEC WORKDIR VOCAB [MPI FLAGS...]

Everywhere: "device": "gpu" is refused naming the choices, and a decoder
with "precision": "bf16" on CPU ranks is refused (decoders on GPU ranks:
lm_pretrain.py).

Where no GPU is visible (nvidia-smi -L fails), or foil was built without
CUDA: a "cuda" run fails at once with the reason, naming the device, and
writes no checkpoint.

Where one is (a GPU machine with the whole tree built), on the real
WordNet pairs, MoCo with a learnable temperature and an evaluation (the
queue, the momentum encoder, the scalar all-reduce and evaluation's
all-gather all on the device):
  - the GPU run's logged losses follow the CPU run's (rtol 2e-3 over 20
    steps: fp32 on both, sums in other orders), and so does its MRR@10 on
    WordNet's dev benchmark at the end (within 0.01);
  - a GPU run stopped after its first checkpoint and resumed ends with the
    same bits as the uninterrupted GPU run (parameters, moments, queue);
  - that checkpoint resumes on the CPU (the same file format either way);
  - `foil-run refresh` with "device": "cuda" encodes a small corpus from
    the GPU run's checkpoint into the CPU refresh's rows (within 1e-4),
    and with "precision": "bf16" into rows within bf16 rounding of them
    (every cosine > 0.999, not the same bits);
  - "precision": "bf16" (mixed precision) trains, its losses within 5% of
    the fp32 run's; "bf16" without "cuda" is refused (unit.spec).

With FOIL_DEVICE_SHIM=1 (integration.pretrain_device_shim), FOIL_RUN is
foil-run-shim (tests/gpu/cuda_shim.c standing in for CUDA, MPI for NCCL)
and the GPU half runs here, on 2 ranks: the host side of GPU ranks —
buckets during the backward, device all-gathers, host copies for
checkpoints, resume — checked on every CI run, the kernels excepted.
"""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

foil, foil_run, mpiexec, work, vocab = sys.argv[1:6]
mpi_flags = sys.argv[6:]
root = os.path.join(work, "root")
os.makedirs(work, exist_ok=True)
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
failures = []
shim = os.environ.get("FOIL_DEVICE_SHIM") == "1"
RANKS = 2 if shim else 1  # 2: the cross-rank paths of GPU ranks too


def reason(r):
    """foil-run's own error line in a run's stderr (mpirun adds its own text)"""
    lines = [x for x in r.stderr.splitlines() if x.startswith("foil-run")]
    return lines[0] if lines else r.stderr.strip()[-200:]


def check(cond, what):
    print(("ok     " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures.append(what)


subprocess.run([foil, "data", "prepare", "wordnet", "--root", root], check=True, stdout=subprocess.DEVNULL)
STEPS, EVERY = 20, 10


def spec(name, device, **over):
    s = {"kind": "pretrain", "name": name, "seed": 11, "device": device,
         "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 16, "dropout": 0.1,
                   "tokenizer": vocab},
         "data": {"dataset": "wordnet", "benchmark": ""},
         "loss": {"kind": "moco", "temperature": 0.07, "learnable_temperature": True, "queue_size": 64,
                  "momentum": 0.99},
         "batch_per_rank": 16, "steps": STEPS, "optimizer": {"lr": 0.001, "warmup_steps": 2},
         "checkpoint": {"every_steps": EVERY, "keep_last": 5}, "log_every_steps": 2, "threads": 1}
    s.update(over)
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        json.dump(s, f)
    return path


def run(name, device, extra=(), **over):
    job = os.path.join(work, name)
    return subprocess.run([mpiexec, *mpi_flags, "-np", str(RANKS), foil_run, "pretrain", spec(name, device, **over),
                           "--root", root, "--job-dir", job, "--quiet", *extra], env=env, capture_output=True,
                          text=True)


def losses(name):
    with open(os.path.join(work, name, "metrics")) as f:
        return [json.loads(line)["loss"] for line in f if '"loss"' in line]


def mrr(name):
    with open(os.path.join(work, name, "metrics")) as f:
        rows = [json.loads(line) for line in f if '"eval"' in line]
    return next((x["mrr@10"] for x in rows if x.get("model") == "foil"), None)


def state(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) and
                     (k.startswith("model") or k.startswith("optim") or k.startswith("momentum") or
                      k.startswith("queue") or k == "scalars") else None)
        return out


for name in ("gpu-refused", "a-cpu", "b-gpu", "c-gpu", "d-cpu", "e-bf16"):
    shutil.rmtree(os.path.join(work, name), ignore_errors=True)

r = run("gpu-refused", "gpu")
check(r.returncode != 0 and "device" in r.stderr and "cuda" in r.stderr,
      "device \"gpu\" is refused, naming the choices: %s" % reason(r))
r = run("gpu-refused", "cpu", model={"kind": "decoder", "n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64,
                                     "max_len": 16, "tokenizer": vocab}, loss={"kind": "causal_lm"},
            data={"dataset": "lm"}, precision="bf16")
check(r.returncode != 0 and "bf16" in r.stderr and "cuda" in r.stderr,
      "a decoder in bf16 on CPU ranks is refused: %s" % reason(r))

gpu = shim or shutil.which("nvidia-smi") is not None and subprocess.run(["nvidia-smi", "-L"],
                                                                         capture_output=True).returncode == 0
# runs a and b also evaluate at the end (WordNet's dev benchmark): on GPU
# ranks that is evaluation's all-gather through device buffers
EVAL = dict(data={"dataset": "wordnet", "benchmark": "dev"}, eval={"every_steps": STEPS})
r = run("b-gpu", "cuda", **EVAL)
if not gpu or "without CUDA" in r.stderr:
    check(r.returncode != 0 and "device \"cuda\"" in r.stderr,
          "no GPU here: device \"cuda\" fails with the reason: %s" % reason(r))
    ck = os.path.join(work, "b-gpu", "ckpt")
    check(not os.path.isdir(ck) or not os.listdir(ck), "and writes no checkpoint")
else:
    check(r.returncode == 0, "the GPU run finishes: %s" % reason(r))
    r = run("a-cpu", "cpu", **EVAL)
    check(r.returncode == 0, "the CPU run finishes: %s" % reason(r))
    la, lb = losses("a-cpu"), losses("b-gpu")
    check(len(la) == len(lb) == STEPS // 2 and np.allclose(lb, la, rtol=2e-3, atol=0),
          "GPU losses follow the CPU's (max rel diff %.2g)" %
          (max(abs(x - y) / abs(y) for x, y in zip(lb, la)) if la and len(la) == len(lb) else float("nan")))
    ma, mb = mrr("a-cpu"), mrr("b-gpu")
    check(ma is not None and mb is not None and abs(ma - mb) <= 0.01,
          "the GPU run's MRR@10 on dev matches the CPU run's (%s vs %s)" % (mb, ma))
    r = run("c-gpu", "cuda", extra=("--stop-after", str(EVERY)))
    r2 = run("c-gpu", "cuda")
    check(r.returncode == 0 and r2.returncode == 0 and "resumed" in open(os.path.join(work, "c-gpu", "log")).read(),
          "a GPU run stopped at step %d resumes" % EVERY)
    sb, sc = state(os.path.join(work, "b-gpu", "ckpt", "step_%d.h5" % STEPS)), \
        state(os.path.join(work, "c-gpu", "ckpt", "step_%d.h5" % STEPS))
    same = sb.keys() == sc.keys() and all(np.array_equal(sb[k], sc[k]) for k in sb)
    check(same and len(sb) > 0, "and ends with the uninterrupted GPU run's bits (%d datasets)" % len(sb))
    r = run("e-bf16", "cuda", precision="bf16")
    le = losses("e-bf16") if r.returncode == 0 else []
    check(r.returncode == 0 and len(le) == STEPS // 2 and all(np.isfinite(le)) and
          np.allclose(le, lb, rtol=5e-2, atol=0),
          "precision bf16 trains on the GPU, its losses within 5%% of fp32's: %s" % reason(r))
    # refresh with the GPU run's checkpoint, on "cuda" and on the CPU: the same rows
    docs = os.path.join(work, "docs.jsonl")
    with open(docs, "w") as f:
        for i, w in enumerate(["cat", "dog", "a small boat", "the river bank", "a bank account", "green tea",
                               "black coffee", "to run quickly", "a running stream", "an old book"] * 5):
            f.write(json.dumps({"id": "d%d" % i, "text": w}) + "\n")
    rows = {}
    for dev in ("cuda", "cpu", "cuda-bf16"):
        name = "ix-" + dev
        shutil.rmtree(os.path.join(root, "indexes", name), ignore_errors=True)
        rs = os.path.join(work, "refresh-%s.json" % dev)
        with open(rs, "w") as f:
            json.dump({"kind": "refresh", "name": name, "checkpoint": os.path.join(work, "b-gpu"),
                       "corpus": {"file": docs}, "batch": 16, "threads": 1, "device": dev.split("-")[0],
                       "precision": "bf16" if dev.endswith("bf16") else "fp32"}, f)
        r = subprocess.run([mpiexec, *mpi_flags, "-np", str(RANKS), foil_run, "refresh", rs, "--root", root,
                            "--job-dir", os.path.join(work, "job-" + name), "--quiet"], env=env,
                           capture_output=True, text=True)
        check(r.returncode == 0, "refresh on %s: %s" % (dev, reason(r)))
        vd = os.path.join(root, "indexes", name, "v1")
        if r.returncode == 0:
            parts = []
            for k in range(RANKS):
                with h5py.File(os.path.join(vd, "shard_%d.h5" % k), "r") as h:
                    parts.append(h["vectors"][()])
            rows[dev] = np.concatenate(parts)
    if len(rows) == 3:
        check(rows["cuda"].shape == (50, 32) and np.allclose(rows["cuda"], rows["cpu"], atol=1e-4, rtol=0),
              "refresh on cuda gives the CPU's rows (max diff %.2g)" % float(np.abs(rows["cuda"] - rows["cpu"]).max()))
        cos = (rows["cuda-bf16"] * rows["cpu"]).sum(1)  # unit rows
        check(cos.min() > 0.999 and not np.array_equal(rows["cuda-bf16"], rows["cpu"]),
              "refresh in bf16: the fp32 rows to bf16 rounding (min cosine %.6f)" % cos.min())
    os.makedirs(os.path.join(work, "d-cpu", "ckpt"))
    shutil.copy(os.path.join(work, "c-gpu", "ckpt", "step_%d.h5" % EVERY), os.path.join(work, "d-cpu", "ckpt"))
    r = run("d-cpu", "cpu")
    check(r.returncode == 0 and "resumed" in open(os.path.join(work, "d-cpu", "log")).read(),
          "the GPU checkpoint of step %d resumes on the CPU: %s" % (EVERY, reason(r)))

print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
