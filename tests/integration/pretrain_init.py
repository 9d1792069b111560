#!/usr/bin/python3
"""init_from: a pretrain job starts from an imported all-MiniLM-L6-v2.

    pretrain_init.py FOIL_DATA FOIL_RUN WORKDIR MODEL_DIR MPIEXEC [MPI FLAGS...]

1. `foil model import` the real all-MiniLM-L6-v2 folder into a checkpoint.
2. `foil-run pretrain` with init_from (no model sizes, no tokenizer: both
   come from the checkpoint) on the `code` pairs, 2 steps, batch 16: the
   pretrained encoder already ranks the in-batch positives first (accuracy
   at step 1 well above the 1/16 of a fresh model), the log names the
   checkpoint it started from, and the job's checkpoint holds MiniLM's
   config (6 layers, d 384, 512 positions).
3. A spec that gives model sizes beside init_from is refused, naming the key.
4. `eval.at_start`: the imported model is evaluated before step 1 (step 0,
   its zero-shot quality) on the held-out benchmark, beside BM25, then again
   at the end; on 1 rank and on 2 ranks (each encoding half of the texts,
   gathered on rank 0) the step-0 metrics agree, and MiniLM zero-shot beats
   BM25 there.
5. The fine-tuned checkpoint goes back out: `foil model export` of the
   job's step-2 checkpoint, loaded by sentence-transformers (.venv-st),
   embeds 64 docstrings and functions and one text far past 256 tokens as
   `foil model encode` of that checkpoint does (both truncate at MiniLM's
   max_seq_length) (cosine >= 0.99999, |diff| <= 1e-5), and differently
   from the imported model (the fine-tuning is in the export). Bad
   `foil model encode` arguments are refused by name.
"""
import json
import os
import shutil
import subprocess
import sys

import h5py

foil_data, foil_run, work, model_dir, mpiexec = sys.argv[1:6]
mpi_flags = sys.argv[6:]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
root = os.path.join(work, "root")
ckpt = os.path.join(work, "minilm.h5")
subprocess.run([foil_data, "model", "import", model_dir, "--out", ckpt], check=True)
subprocess.run([foil_data, "data", "prepare", "code", "--root", root], check=True, stdout=subprocess.DEVNULL)
spec = {"kind": "pretrain", "name": "init", "init_from": ckpt, "model": {"max_len": 48},
        "data": {"dataset": "code", "benchmark": ""},
        "loss": {"kind": "infonce", "temperature": 0.05, "symmetric": True},
        "batch_per_rank": 16, "steps": 2, "optimizer": {"lr": 0.00002, "warmup_steps": 0},
        "checkpoint": {"every_steps": 2}, "log_every_steps": 1, "threads": 2}
path = os.path.join(work, "spec.json")
json.dump(spec, open(path, "w"))
job = os.path.join(work, "job")
subprocess.run([foil_run, "pretrain", path, "--root", root, "--job-dir", job, "--quiet"], check=True)
failures = []


def check(cond, what):
    print(("ok     " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures.append(what)


log = open(os.path.join(job, "log")).read()
check("initialized from " + ckpt in log and "sequences of 48 tokens" in log, "the log names init_from")
steps = [json.loads(l) for l in open(os.path.join(job, "metrics")) if '"loss"' in l]
acc = steps[0].get("acc", steps[0].get("accuracy"))
check(acc is not None and acc >= 0.8, "step 1 accuracy %.3f from the pretrained encoder (fresh: ~1/16)" % acc)
with h5py.File(os.path.join(job, "ckpt", "step_2.h5"), "r") as f:
    a = dict(f["model"].attrs)
    check(int(a["n_layers"]) == 6 and int(a["d_model"]) == 384 and int(a["max_len"]) == 512,
          "the job's checkpoint has MiniLM's config")
bad = dict(spec, model={"max_len": 48, "n_layers": 2})
json.dump(bad, open(path, "w"))
r = subprocess.run([foil_run, "pretrain", path, "--root", root, "--job-dir", job + "2"], capture_output=True, text=True)
check(r.returncode == 2 and "model.n_layers comes from init_from" in r.stderr, "sizes beside init_from refused")

# 4. eval.at_start, 1 rank and 2 ranks
def evals(job):
    return [json.loads(l) for l in open(os.path.join(job, "metrics")) if '"eval"' in l]


ev = dict(spec, data={"dataset": "code", "benchmark": "heldout"}, steps=1, checkpoint={"every_steps": 1},
          eval={"at_start": True})
runs = {}
for ranks in (1, 2):
    s2 = dict(ev, threads=2 // ranks)
    json.dump(s2, open(path, "w"))
    jd = os.path.join(work, "eval%d" % ranks)
    pre = [mpiexec, *mpi_flags, "-np", "2"] if ranks == 2 else []
    r = subprocess.run(pre + [foil_run, "pretrain", path, "--root", root, "--job-dir", jd, "--quiet"],
                       capture_output=True, text=True)
    check(r.returncode == 0, "eval.at_start job on %d rank(s) ran (%s)" % (ranks, r.stderr.strip()[-300:]))
    runs[ranks] = evals(jd) if r.returncode == 0 else []
one, two = runs[1], runs[2]
print("evaluations, 1 rank:", [(e["step"], e["model"], round(e["mrr@10"], 4)) for e in one])
key = [(e["step"], e["model"]) for e in one]
check(key == [(0, "foil"), (0, "bm25"), (1, "foil")], "step 0 (foil, BM25) before training, then step 1: %s" % key)
check([(e["step"], e["model"]) for e in two] == key, "2 ranks evaluate at the same steps")
if len(one) == 3 and len(two) == 3:
    for name in ("mrr@10", "ndcg@10", "recall@10", "recall@100"):
        check(abs(one[0][name] - two[0][name]) <= 2e-3 and one[1][name] == two[1][name],
              "step 0 %s: 1 rank %.5f, 2 ranks %.5f (BM25 equal)" % (name, one[0][name], two[0][name]))
    check(one[0]["queries"] == 426 and one[0]["mrr@10"] > one[1]["mrr@10"] + 0.1,
          "zero-shot MiniLM %.3f beats BM25 %.3f on held-out docstrings" % (one[0]["mrr@10"], one[1]["mrr@10"]))

# 5. fine-tuned -> export -> sentence-transformers == foil model encode
import numpy as np  # noqa: E402

st_py = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".venv-st",
                     "bin", "python")
tuned = os.path.join(job, "ckpt", "step_2.h5")
out_dir = os.path.join(work, "exported")
subprocess.run([foil_data, "model", "export", tuned, out_dir], check=True)
with h5py.File(os.path.join(root, "datasets", "code", "benchmarks", "heldout.h5"), "r") as b:
    texts = [t.decode() for t in b["queries"][:32]] + [t.decode() for t in b["corpus"][:32]]
    b_long = b["corpus"][32:44]
texts.append(" ".join(t.decode() for t in b_long))  # far past 256 tokens: truncated as sentence-transformers does
texts = [" ".join(t.split()) for t in texts]  # one line each
tfile = os.path.join(work, "texts.txt")
open(tfile, "w").write("\n".join(texts) + "\n")
mine, base = os.path.join(work, "foil.npy"), os.path.join(work, "base.npy")
subprocess.run([foil_data, "model", "encode", tuned, "--file", tfile, "--out", mine], check=True)
subprocess.run([foil_data, "model", "encode", ckpt, "--file", tfile, "--out", base], check=True)
ef, eb = np.load(mine), np.load(base)
# the imported model's /hf rides through fine-tuning: max_seq_length, token types, pooler, config
with h5py.File(tuned, "r") as f:
    check("hf" in f and int(f["hf"].attrs["max_seq_length"]) == 256 and f["hf/token_type_embeddings"].shape == (2, 384),
          "the fine-tuned checkpoint carries the import's /hf group")
sb = json.load(open(os.path.join(out_dir, "sentence_bert_config.json")))
hc = json.load(open(os.path.join(out_dir, "config.json")))
raw = open(os.path.join(out_dir, "model.safetensors"), "rb").read()
hdr = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
check(sb["max_seq_length"] == 256 and hc["type_vocab_size"] == 2 and "pooler.dense.weight" in hdr,
      "the export has MiniLM's max_seq_length 256, its 2 token types and its pooler")
check(ef.shape == (65, 384) and ef.dtype == np.float32, "foil model encode wrote float32 [65, 384]")
if os.path.exists(st_py):
    theirs = os.path.join(work, "st.npy")
    code = ("import sys, numpy as np\nfrom sentence_transformers import SentenceTransformer\n"
            "m = SentenceTransformer(sys.argv[1], device='cpu')\n"
            "t = open(sys.argv[2], encoding='utf-8').read().split('\\n')[:-1]\n"
            "np.save(sys.argv[3], m.encode(t, batch_size=32, convert_to_numpy=True).astype(np.float32))\n")
    subprocess.run([st_py, "-c", code, out_dir, tfile, theirs], check=True)
    es = np.load(theirs)
    cos = np.sum(ef * es, axis=1) / np.linalg.norm(ef, axis=1) / np.linalg.norm(es, axis=1)
    check(es.shape == ef.shape and cos.min() >= 0.99999 and np.abs(ef - es).max() <= 1e-5,
          "sentence-transformers on the exported fine-tuned model = foil model encode (min cos %.7f, max |diff| %.2e)"
          % (cos.min(), np.abs(ef - es).max()))
    moved = 1 - np.sum(ef * eb, axis=1).min()
    check(moved > 1e-4, "the fine-tuned embeddings differ from the imported model's (1 - min cos %.2e)" % moved)
else:
    print("sentence-transformers part skipped: no .venv-st (bash deploy/setup.sh)")
for args, says in (([tuned], "as arguments or --file"), ([tuned, "x", "--file", tfile], "one of the two"),
                   ([tuned, "x", "--batch", "0"], "--batch"), ([tuned, "x", "--nope"], "--nope"),
                   ([os.path.join(work, "none.h5"), "x"], "none.h5")):
    r = subprocess.run([foil_data, "model", "encode", *args], capture_output=True, text=True)
    check(r.returncode != 0 and says in r.stderr, "foil model encode %s refused: %s" % (args[1:], r.stderr.strip()))
if failures:
    sys.exit(1)
print("all checks passed")
