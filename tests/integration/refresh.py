#!/usr/bin/python3
"""Embedding refresh end to end: foil-run refresh on MPI ranks, the files
it publishes read back with h5py, a kill mid-way, and a refresh job
through the cluster.

    refresh.py FOIL FOIL_RUN MPIEXEC WORKDIR VOCAB [MPI FLAGS...]

1. `foil data prepare code` (5,026 Python functions) into WORKDIR/root and
   a tiny checkpoint (30 steps, 1 rank).
2. Refresh the `all` benchmark's corpus on 2 ranks in float32, float16 and
   int8 (keep_versions 2). For each: shards and manifest open, attributes,
   ids cover 0..N-1 once, keys equal the corpus ids, the manifest's crc32
   equals zlib.crc32 of each file, CURRENT names the newest version, only
   keep_versions versions remain. float32 rows are unit-norm and equal
   (1e-5) what PyTorch computes from the checkpoint's weights and HF's
   tokenizer, and 1 rank gives the same bits as 2; float16/int8 rows
   dequantize close to /exact, which equals the float32 rows.
3. A refresh SIGKILLed (the whole mpirun process group) once its first
   shard file exists: CURRENT still names the previous version, which
   opens and checks; once its ranks are gone, the next refresh publishes
   and removes the partial version. Bad input (an unknown dataset) publishes nothing; device
   "gpu" is refused; device "cuda" encodes on a GPU where one is visible
   (rows within 1e-4 of the CPU's) and elsewhere fails with its reason.
4. The same refresh submitted to a coordinator with one worker (2 ranks):
   COMPLETED, progress rows/total reached the coordinator, a new version.
5. A refresh of an older checkpoint (step 20) of the same run publishing
   after step 30's: CURRENT stays, its version is complete, the log names
   both steps.
6. Rank 0 resolves the checkpoint and broadcasts it: a relative checkpoint
   path that only rank 0's working directory resolves still works, both
   shards name the same file.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib

import h5py
import numpy as np
from mpikill import kill_ranks

foil, foil_run, mpiexec, work, vocab = sys.argv[1:6]
mpi_flags = sys.argv[6:]
HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def reason(r):
    """foil-run's own error line in a run's stderr (mpirun adds its own text)"""
    lines = [x for x in r.stderr.splitlines() if x.startswith("foil-run")]
    return lines[0] if lines else r.stderr.strip()[-200:]


def check(cond, what):
    print(("ok     " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures.append(what)


shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
root = os.path.join(work, "root")
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
subprocess.run([foil, "data", "prepare", "code", "--root", root], check=True, stdout=subprocess.DEVNULL)

# 1. a tiny checkpoint
train = {
    "kind": "pretrain", "name": "refresh-train", "seed": 5,
    "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 32, "tokenizer": vocab},
    "data": {"dataset": "code", "benchmark": ""},
    "batch_per_rank": 16, "steps": 30, "optimizer": {"lr": 0.001}, "log_every_steps": 10, "threads": 1,
    "checkpoint": {"every_steps": 10, "keep_last": 3},  # step_20.h5 stays: an older checkpoint of this run
}
train_dir = os.path.join(work, "train")
with open(os.path.join(work, "train.json"), "w") as f:
    json.dump(train, f)
subprocess.run([mpiexec, *mpi_flags, "-np", "1", foil_run, "pretrain", os.path.join(work, "train.json"),
                "--root", root, "--job-dir", train_dir, "--quiet"], check=True, env=env)
ckpt = os.path.join(train_dir, "ckpt", "step_30.h5")
check(os.path.exists(ckpt), "tiny checkpoint trained")

bench = h5py.File(os.path.join(root, "datasets", "code", "benchmarks", "all.h5"), "r")
corpus_ids = [x.decode() for x in bench["corpus_ids"][()]]
corpus_text = [x.decode() for x in bench["corpus"][()]]
N = len(corpus_ids)
check(N == 5026, "the code corpus has 5,026 functions (%d)" % N)
idx = os.path.join(root, "indexes", "code")


def spec(name="code", dtype="float32", corpus=None, keep=2, batch=64):
    s = {"kind": "refresh", "name": name, "checkpoint": train_dir,
         "corpus": corpus or {"dataset": "code", "benchmark": "all"},
         "dtype": dtype, "batch": batch, "keep_versions": keep, "threads": 1, "job": {"ranks": 2}}
    path = os.path.join(work, "refresh-%s-%s.json" % (name, dtype))
    with open(path, "w") as f:
        json.dump(s, f)
    return path


def refresh_cmd(path, ranks=2, extra=()):
    return [mpiexec, *mpi_flags, "-np", str(ranks), foil_run, "refresh", path, "--root", root,
            "--job-dir", os.path.join(work, "job-refresh"), "--quiet", *extra]


def current(d=idx):
    with open(os.path.join(d, "CURRENT")) as f:
        return f.read()


def versions(d=idx):
    return sorted(int(e[1:]) for e in os.listdir(d) if e.startswith("v") and e[1:].isdigit())


def load_version(d, k):
    """Reads v<k> with h5py, checking it as index.h says; returns (meta, rows by id, exact by id)."""
    vd = os.path.join(d, "v%d" % k)
    m = h5py.File(os.path.join(vd, "manifest.h5"), "r")
    meta = dict(m.attrs)
    ok = meta["foil_format"] == "foil.index.manifest.v1" and meta["version"] == k
    shards = [s.decode() for s in m["shards"][()]]
    crcs_ok = all(int(m["crc32"][i]) == zlib.crc32(open(os.path.join(vd, s), "rb").read())
                  for i, s in enumerate(shards))
    dim, dtype = int(meta["dim"]), meta["dtype"]
    vec = np.full((N, dim), np.nan, np.float32)
    exact = np.full((N, dim), np.nan, np.float32)
    seen = np.zeros(N, np.int64)
    keys_ok = True
    for i, s in enumerate(shards):
        f = h5py.File(os.path.join(vd, s), "r")
        a = dict(f.attrs)
        ok &= (a["foil_format"] == "foil.index.shard.v1" and a["shard"] == i and a["n_shards"] == len(shards)
               and a["dim"] == dim and a["dtype"] == dtype and a["model_hash"] == meta["model_hash"]
               and a["step"] == 30 and a["normalized"] == 1 and a["checkpoint"] == os.path.realpath(ckpt)
               and a["count"] == int(m["counts"][i]) and a["version"] == k and a["name"] == "code")
        ids = f["ids"][()]
        lo, hi = i * N // len(shards), (i + 1) * N // len(shards)
        ok &= bool(np.array_equal(ids, np.arange(lo, hi)))  # rank r: rows [r*N/R, (r+1)*N/R)
        seen[ids] += 1
        keys_ok &= [x.decode() for x in f["keys"][()]] == [corpus_ids[j] for j in ids]
        v = f["vectors"][()]
        if dtype == "float32":
            ok &= v.dtype == np.float32 and "exact" not in f
            vec[ids] = v
        elif dtype == "float16":
            ok &= v.dtype == np.float16
            vec[ids] = v.astype(np.float32)
        else:
            ok &= v.dtype == np.int8 and f["scales"].shape == (len(ids),)
            vec[ids] = v.astype(np.float32) * f["scales"][()][:, None]
        if dtype != "float32":
            exact[ids] = f["exact"][()]
    return dict(meta=meta, ok=ok, crcs_ok=crcs_ok, keys_ok=keys_ok, once=bool((seen == 1).all()),
                vec=vec, exact=exact, total=int(meta["count"]))


# 2. float32, float16, int8 on 2 ranks
results = {}
for k, dtype in enumerate(("float32", "float16", "int8"), start=1):
    t0 = time.time()
    r = subprocess.run(refresh_cmd(spec(dtype=dtype)), env=env)
    check(r.returncode == 0, "refresh %s on 2 ranks (%.1f s)" % (dtype, time.time() - t0))
    check(current() == "v%d\n" % k, "CURRENT names v%d (%r)" % (k, current()))
    v = load_version(idx, k)
    results[dtype] = v
    check(v["ok"] and v["total"] == N, "v%d (%s): manifest and shards open, attributes and ids right" % (k, dtype))
    check(v["crcs_ok"], "v%d: the manifest's crc32 equals zlib.crc32 of each shard" % k)
    check(v["once"] and v["keys_ok"], "v%d: ids cover 0..N-1 once, keys are the corpus ids" % k)
    check(versions() == list(range(max(1, k - 1), k + 1)), "only keep_versions=2 remain: %s" % versions())

f32 = results["float32"]["vec"]
norms = np.linalg.norm(f32.astype(np.float64), axis=1)
check(np.abs(norms - 1).max() < 1e-5, "float32 rows are unit-norm (max |norm-1| %.2g)" % np.abs(norms - 1).max())
for dtype, tol in (("float16", 1e-3), ("int8", 0.5 / 127 * 1.01)):
    v = results[dtype]
    err = np.abs(v["vec"] - v["exact"]).max()
    check(err <= tol, "%s dequantized within %g of /exact (max %.2g)" % (dtype, tol, err))
    check(np.array_equal(v["exact"], f32), "%s: /exact equals the float32 rows" % dtype)
log = open(os.path.join(work, "job-refresh", "metrics")).read().splitlines()
recs = [json.loads(x) for x in log]
check(sum(1 for x in recs if "rank" in x) == 6 and all(x["sentences_per_s"] > 0 for x in recs if "rank" in x),
      "metrics: a line per rank with sentences/s")

# 1 rank = 2 ranks, bit for bit: windows of 256 batches end at multiples
# of 256·`batch` corpus rows on every rank (their texts sorted by length,
# then batched); only the window that the rank boundary (N/2) splits
# batches other rows together. With batch 64 one window holds the whole
# corpus: batch 4 makes windows of 1,024 rows.
r = subprocess.run(refresh_cmd(spec(name="code1", batch=4), ranks=1), env=env)
one = h5py.File(os.path.join(root, "indexes", "code1", "v1", "shard_0.h5"), "r")["vectors"][()]
r2 = subprocess.run(refresh_cmd(spec(name="code2", batch=4), ranks=2), env=env)
two = load_version(os.path.join(root, "indexes", "code2"), 1)["vec"] if r2.returncode == 0 else f32
W = 256 * 4
split = np.zeros(N, bool)
split[(N // 2) // W * W:((N // 2) // W + 1) * W] = True
check(r.returncode == 0 and r2.returncode == 0 and (~split).sum() > N // 3 and np.array_equal(one[~split], two[~split]),
      "1 rank gives the same bits as 2 ranks (outside the window the rank boundary splits: %d of %d rows)"
      % ((~split).sum(), N))
check(np.abs(one[split] - two[split]).max() < 1e-6, "and within 1e-6 inside it (max %.2g)"
      % np.abs(one[split] - two[split]).max())

# the vectors against PyTorch (tests/reference/encoder_ref.py's model code, HF's tokenizer)
try:
    import torch
    from tokenizers import Tokenizer
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "reference"))
    from encoder_ref import encode as torch_encode
    ck = h5py.File(ckpt, "r")
    c = {k2: (float(x) if k2 == "ln_eps" else int(x)) for k2, x in ck["model"].attrs.items() if k2 != "dropout"}
    P = {n: torch.tensor(ck["model"][n][()], dtype=torch.float64) for n in ck["model"]}
    tk = Tokenizer.from_file(os.path.join(os.path.dirname(vocab), "tokenizer.json"))
    T = c["max_len"]
    tk.enable_truncation(max_length=T)  # [CLS] + first T-2 + [SEP], as foil truncates
    tk.no_padding()
    rows = list(range(0, N, 5))  # every 5th document
    enc = [tk.encode(corpus_text[i]).ids for i in rows]
    ids = np.zeros((len(rows), T), np.int64)
    mask = np.zeros((len(rows), T), np.uint8)
    for i, e in enumerate(enc):
        ids[i, :len(e)], mask[i, :len(e)] = e, 1
    with torch.no_grad():
        emb = torch_encode(P, c, torch.tensor(ids), torch.tensor(mask))
        ref = torch.nn.functional.normalize(emb, dim=-1).numpy()
    d = np.abs(ref - f32[rows]).max()
    check(d < 1e-5, "float32 rows equal PyTorch's encoder on the checkpoint (%d rows, max diff %.2g)" % (len(rows), d))
except ImportError as e:
    print("PyTorch reference skipped: %s" % e)

# 3. SIGKILL between the first shard and the publish
p = subprocess.Popen(refresh_cmd(spec(dtype="float32"), extra=("--publish-delay", "60")), env=env,
                     start_new_session=True)
first = os.path.join(idx, "v4", "shard_0.h5")
deadline = time.time() + 120
while not os.path.exists(first) and p.poll() is None and time.time() < deadline:
    time.sleep(0.005)
check(os.path.exists(first), "the killed refresh wrote its first shard")
with open(os.path.join(idx, "v4", ".writing")) as f:  # "<host> <pid>": rank 0, the writer
    writer = int(f.read().split()[1])
check(b"refresh" in open("/proc/%d/cmdline" % writer, "rb").read(), "v4/.writing names its live writer")
os.killpg(p.pid, signal.SIGKILL)
p.wait()
# the ranks are not in mpirun's process group: kill them too (mpikill.py),
# or v4's writer would live on for a few seconds and keep v4 from a prune
kill_ranks(os.path.join(work, "job-refresh"))
check(current() == "v3\n", "after the kill CURRENT still names v3 (%r)" % current())
check(not os.path.exists(os.path.join(idx, "v4", "manifest.h5")), "v4 was never published")
v3 = load_version(idx, 3)
check(v3["ok"] and v3["crcs_ok"] and v3["once"], "v3 still opens and checks")
r = subprocess.run(refresh_cmd(spec(dtype="float32")), env=env)
check(r.returncode == 0 and current() == "v5\n", "the next refresh publishes v5 (%r)" % current())
check(versions() == [3, 5], "the partial v4 is removed, keep_versions kept v3 and v5: %s" % versions())
check(np.array_equal(load_version(idx, 5)["vec"], f32), "v5 has the same rows as v1")

bad = spec(name="code", corpus={"dataset": "nope", "benchmark": "all"})
r = subprocess.run(refresh_cmd(bad), env=env, capture_output=True, text=True)
check(r.returncode == 3 and "nope" in r.stderr, "an unknown dataset is refused with exit 3: %s" %
      r.stderr.strip().splitlines()[0] if r.stderr.strip() else "")
check(current() == "v5\n" and versions() == [3, 5], "and nothing was published or started")

# device: an unknown one is refused by the spec; "cuda" encodes on a GPU
# where one is visible (rows within fp32 rounding of the CPU's), and
# elsewhere fails with the reason, publishing nothing


def device_spec(device, **over):
    with open(spec()) as f:
        s = json.load(f)
    s["device"] = device
    s.update(over)
    path = os.path.join(work, "refresh-device-%s%s.json" % (device, "".join("-" + str(v) for v in over.values())))
    with open(path, "w") as f:
        json.dump(s, f)
    return path


r = subprocess.run(refresh_cmd(device_spec("gpu"), ranks=1), env=env, capture_output=True, text=True)
check(r.returncode != 0 and "device" in r.stderr and "cuda" in r.stderr,
      "device \"gpu\" is refused, naming the choices: %s" % reason(r))
r = subprocess.run(refresh_cmd(device_spec("cpu", precision="bf16"), ranks=1), env=env, capture_output=True, text=True)
check(r.returncode != 0 and "bf16" in r.stderr and "cuda" in r.stderr,
      "precision \"bf16\" on CPU ranks is refused: %s" % reason(r))
gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0 if shutil.which("nvidia-smi") else False
r = subprocess.run(refresh_cmd(device_spec("cuda"), ranks=1), env=env, capture_output=True, text=True)
if gpu:
    check(r.returncode == 0 and current() == "v6\n", "device \"cuda\" publishes v6 on this GPU machine: %s" %
          reason(r))
    if r.returncode == 0:
        v6 = load_version(idx, 6)["vec"]
        check(np.allclose(v6, f32, atol=1e-4, rtol=0), "its rows agree with the CPU's (max diff %.2g)" %
              float(np.abs(v6 - f32).max()))
else:
    check(r.returncode != 0 and "cuda" in r.stderr.lower() and ("CUDA" in r.stderr or "device" in r.stderr),
          "device \"cuda\" without a GPU fails with the reason: %s" % reason(r))
    check(current() == "v5\n" and versions() == [3, 5], "and publishes nothing")

# 5. concurrent refreshes (S1): a refresh of an older checkpoint of the same
# run that publishes after a newer one's keeps CURRENT where it is (its
# version is complete, the job succeeds and its log says why)
live_before, n_before = current(), max(versions())
with open(spec()) as f:
    s_old = json.load(f)
s_old["checkpoint"] = os.path.join(train_dir, "ckpt", "step_20.h5")
old_path = os.path.join(work, "refresh-older-step.json")
with open(old_path, "w") as f:
    json.dump(s_old, f)
r = subprocess.run(refresh_cmd(old_path), env=env, capture_output=True, text=True)
vk = max(versions())
check(r.returncode == 0 and vk == n_before + 1 and current() == live_before,
      "an older step's refresh does not move CURRENT back (%r, v%d): %s" % (current(), vk, reason(r)))
check(os.path.exists(os.path.join(idx, "v%d" % vk, "manifest.h5")), "its version v%d is complete all the same" % vk)
jlog = open(os.path.join(work, "job-refresh", "log")).read()
check("not made live" in jlog and "step 20" in jlog and "step 30" in jlog,
      "the job's log names both steps: %s" % [x for x in jlog.splitlines() if "not made live" in x][-1:])

# 6. one checkpoint for all ranks (S3): rank 0 resolves it and broadcasts the
# path; here only rank 0's working directory has the relative path the spec
# names, so a rank resolving it itself would fail
wd = [os.path.join(work, "wd-%d" % i) for i in range(2)]
for d in wd:
    os.makedirs(d, exist_ok=True)
os.symlink(os.path.abspath(train_dir), os.path.join(wd[0], "the-run"))
with open(spec()) as f:
    s_rel = json.load(f)
s_rel["checkpoint"] = "the-run"
rel_path = os.path.join(work, "refresh-relative.json")
with open(rel_path, "w") as f:
    json.dump(s_rel, f)
one = [foil_run, "refresh", rel_path, "--root", root, "--job-dir", os.path.join(work, "job-refresh"), "--quiet"]
r = subprocess.run([mpiexec, *mpi_flags, "-np", "1", "-wdir", wd[0], *one, ":", "-np", "1", "-wdir", wd[1], *one],
                   env=env, capture_output=True, text=True)
vk = max(versions())
check(r.returncode == 0 and current() == "v%d\n" % vk, "every rank loads rank 0's checkpoint (%r): %s"
      % (current(), reason(r)))
if r.returncode == 0:
    shards = [h5py.File(os.path.join(idx, "v%d" % vk, "shard_%d.h5" % i), "r") for i in range(2)]
    check(all(sh.attrs["checkpoint"] == os.path.realpath(ckpt) for sh in shards),
          "both shards record the one checkpoint %s" % os.path.realpath(ckpt))

# 4. through the cluster
try:
    sys.path.insert(0, HERE)
    from foilcluster import STATE, Cluster
except ImportError as e:
    Cluster = None
    print("cluster part skipped: %s" % e)
if Cluster:
    # the checkpoint the refresh job reads lives in work: allowed
    # a 5 s liveness window: nothing here needs a lost worker found fast,
    # and under ASan beside another test 0.8 s went by without a heartbeat
    cl = Cluster(os.path.dirname(os.path.abspath(foil)), os.path.join(work, "cluster-root"), liveness=25,
                 allow_dirs=[work])
    os.symlink(os.path.join(root, "datasets"), os.path.join(cl.root, "datasets"))
    cspec = spec(name="code", keep=3)
    with open(cspec) as f:
        s = json.load(f)
    s["checkpoint"] = os.path.abspath(train_dir)
    with open(cspec, "w") as f:
        json.dump(s, f)
    cl.start_coordinator()
    try:
        cl.start_worker("n1", slots=2, extra_args=["--mpirun-args", " ".join(mpi_flags)])
        r = cl.foil("submit", cspec)
        check(r.returncode == 0, "foil submit of a refresh job: %s %s" % (r.stdout.strip(), r.stderr.strip()))
        jid = int(r.stdout.strip())
        j = cl.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED", "JOB_NODE_FAIL", "JOB_CANCELLED"}, 120)
        check(STATE.Name(j.state) == "JOB_COMPLETED", "refresh job COMPLETED (%s: %s)" % (STATE.Name(j.state), j.reason))
        check(j.spec.kind == "refresh" and j.spec.resources.ranks == 2, "kind refresh, 2 ranks")
        check(j.progress.total == N and j.progress.value == N, "progress %g/%g rows reached the coordinator"
              % (j.progress.value, j.progress.total))
        cidx = os.path.join(cl.root, "indexes", "code")
        # v1, or a later version should the first attempt be requeued all
        # the same (its successor publishes the next version)
        cur = current(cidx).strip()
        k = int(cur[1:]) if cur[:1] == "v" and cur[1:].isdigit() else 0
        check(k >= 1 and load_version(cidx, k)["ok"], "the cluster's refresh published %r" % cur)
        check(k >= 1 and np.array_equal(load_version(cidx, k)["vec"], f32), "with the same rows as the direct run")
        check("published code %s" % cur in cl.log(jid), "the job's log says what it published")
    finally:
        codes = cl.stop()
    check(all(v == 0 for v in codes.values()), "daemons exit cleanly: %s" % codes)

if failures:
    sys.exit("%d check(s) failed" % len(failures))
print("all checks passed")
