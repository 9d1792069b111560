#!/usr/bin/python3
"""`foil textmetrics --scorer` end to end with a decoder foil trained.

    textmetrics_scorer.py FOIL FOIL_DATA FOIL_RUN MPIEXEC WORKDIR FAISS_PY [MPI FLAGS...]

1. A small lm dataset (h5py, foil.lm.v1) of generated sentences, its BPE
   tokenizer from `foil tokenizer train --lm`, and a tiny decoder trained
   for 40 steps on 1 rank by `foil-run pretrain` (model.kind "decoder").
2. 60 rows of prompt / generation / reference sentences in a JSONL file;
   `foil textmetrics FILE --scorer CKPT --json`.
3. Outside references, from the checkpoint's weights read with h5py and the
   ids of `foil tokenizer encode`: the GPT-2 of tests/reference/decoder_ref.py
   (plain torch, float64) gives the perplexity of the generations' tokens
   after [EOT] + prompt — foil's must agree to 1e-5 relative — and the
   last-layer states at the final token of each reference and generation,
   which mauve-text (FAISS_PY, .venv-faiss; skipped if missing) turns into
   MAUVE: foil's must be within max(0.05, mauve-text's spread over seeds
   25..29 + 0.02), the tolerance of reference.mauve.
"""
import json
import math
import os
import random
import shutil
import subprocess
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from decoder_ref import gpt2  # noqa: E402  (the plain-torch GPT-2 of reference.decoder)
from lmtiny import write_lm  # noqa: E402

foil, foil_data, foil_run, mpiexec, work, faiss_py = sys.argv[1:7]
mpi_flags = sys.argv[7:]
shutil.rmtree(work, ignore_errors=True)
root = os.path.join(work, "root")
ds = os.path.join(root, "datasets", "tiny")
os.makedirs(ds)

rng = random.Random(11)
WHO = "Anne Emma Jane Marianne Elinor".split()
DID = "saw visited admired left remembered".split()
WHAT = "garden river village window carriage letter".split()
HOW = "quiet bright little old cold".split()


def sentence():
    return f"{rng.choice(WHO)} {rng.choice(DID)} the {rng.choice(HOW)} {rng.choice(WHAT)}."


def document():
    return " ".join(sentence() for _ in range(rng.randint(4, 8)))


write_lm(os.path.join(ds, "lm.h5"),
         {name: [document() for _ in range(n)] for name, n in (("train", 80), ("valid", 6), ("test", 2))})
bpe = os.path.join(work, "bpe")
subprocess.run([foil, "tokenizer", "train", "--lm", os.path.join(ds, "lm.h5"), "--vocab-size", "300",
                "--out", bpe], check=True)
spec = {
    "kind": "pretrain", "name": "scorer", "seed": 5,
    "model": {"kind": "decoder", "n_layers": 2, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 128,
              "dropout": 0.0, "tokenizer": os.path.join(bpe, "vocab.json")},
    "data": {"dataset": "tiny"},
    "loss": {"kind": "causal_lm"},
    "batch_per_rank": 8, "steps": 40,
    "optimizer": {"lr": 0.003, "warmup_steps": 3},
    "checkpoint": {"every_steps": 40, "keep_last": 1},
    "log_every_steps": 10, "threads": 1,
}
spec_path = os.path.join(work, "spec.json")
json.dump(spec, open(spec_path, "w"))
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
subprocess.run([mpiexec, *mpi_flags, "-np", "1", foil_run, "pretrain", spec_path, "--root", root,
                "--job-dir", os.path.join(work, "job"), "--quiet"], check=True, env=env)
ckpt = os.path.join(work, "job", "ckpt", "step_40.h5")

rows = []
for i in range(60):
    r = {"prompt": sentence(), "generation": " " + " ".join(sentence() for _ in range(2)),
         "reference": " " + " ".join(sentence() for _ in range(2))}
    if i % 7 == 3:  # a degenerate generation: the model's favourite loop
        r["generation"] = " " + " ".join([sentence()] * 3)
    rows.append(r)
jsonl = os.path.join(work, "gen.jsonl")
with open(jsonl, "w") as f:
    for r in rows:
        f.write(json.dumps(r) + "\n")
p = subprocess.run([foil_data, "textmetrics", jsonl, "--scorer", ckpt, "--json"], capture_output=True,
                   text=True)
assert p.returncode == 0, p.stderr
got = json.loads(p.stdout)
print("foil:", got)


# ---- references ---------------------------------------------------------------------------------
def encode(texts):
    path = os.path.join(work, "texts.txt")
    with open(path, "w") as f:
        for t in texts:
            assert "\n" not in t
            f.write(t + "\n")
    out = subprocess.run([foil, "tokenizer", "encode", "--vocab", os.path.join(bpe, "vocab.json"),
                          "--file", path], capture_output=True, text=True, check=True).stdout
    lines = out.split("\n")[:len(texts)]
    return [[int(x) for x in line.split()] for line in lines]


vocab = json.load(open(os.path.join(bpe, "vocab.json")))
eot = vocab["<|endoftext|>"]
with h5py.File(ckpt, "r") as f:
    m = f["model"]
    c = {k: int(m.attrs[k]) for k in ("n_layers", "d_model", "n_heads", "d_ff", "vocab", "max_len")}
    P = {n: torch.tensor(m[n][()], dtype=torch.float64) for n in m.keys()}

prompts = encode([r["prompt"] for r in rows])
gens = encode([r["generation"] for r in rows])
refs = encode([r["reference"] for r in rows])
nll, count = 0.0, 0
for pi, gi in zip(prompts, gens):
    ids = [eot] + pi + gi
    assert len(ids) <= c["max_len"]
    t = torch.tensor([ids])
    _, logits = gpt2(P, c, t, torch.ones_like(t))
    logp = torch.log_softmax(logits[0], dim=-1)
    for pos in range(len(pi), len(ids) - 1):
        nll -= float(logp[pos, ids[pos + 1]])
        count += 1
ppl = math.exp(nll / count)
d = abs(got["perplexity"] - ppl) / ppl
print(f"perplexity: foil {got['perplexity']:.6f}  torch {ppl:.6f}  rel diff {d:.2e}  "
      f"({count} tokens, foil {got['perplexity_tokens']})")
fails = 0
if d > 1e-5 or got["perplexity_tokens"] != count:
    fails += 1
if not got["perplexity"] < c["vocab"] / 2:
    print("the trained decoder should beat a uniform guess by far")
    fails += 1


def features(seqs):
    out = []
    for ids in seqs:
        t = torch.tensor([ids if ids else [eot]])
        h, _ = gpt2(P, c, t, torch.ones_like(t))
        out.append(h[0, -1].numpy())
    return np.array(out, dtype=np.float32)


if os.access(faiss_py, os.X_OK):
    np.save(os.path.join(work, "p.npy"), features(refs))
    np.save(os.path.join(work, "q.npy"), features(gens))
    prog = ("import sys, numpy as np, mauve\n"
            "p, q = np.load(sys.argv[1]), np.load(sys.argv[2])\n"
            "v = [mauve.compute_mauve(p_features=p, q_features=q, seed=s).mauve for s in range(25, 30)]\n"
            "print(v[0], max(v) - min(v))\n")
    out = subprocess.run([faiss_py, "-c", prog, os.path.join(work, "p.npy"), os.path.join(work, "q.npy")],
                         capture_output=True, text=True, check=True).stdout.split()
    ref, spread = float(out[0]), float(out[1])
    tol = max(0.05, spread + 0.02)
    d = abs(got["mauve"] - ref)
    print(f"MAUVE: foil {got['mauve']:.4f}  mauve-text on torch features {ref:.4f} (seed spread "
          f"{spread:.4f})  |diff| {d:.4f}  tolerance {tol:.3f}")
    if d > tol or got["mauve_buckets"] != 6:
        fails += 1
else:
    print(f"MAUVE check skipped: {faiss_py} missing")
print(f"{3 - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
