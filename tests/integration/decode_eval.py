#!/usr/bin/python3
"""The decode-eval job end to end (worker/run/deval.h).

    decode_eval.py FOIL FOIL_RUN MPIEXEC WORKDIR MINILM_DIR [MPI FLAGS...]

1. A tiny lm dataset written here with h5py (documents and prompts with
   continuations), its BPE learnt by `foil tokenizer train --lm`, a tiny
   decoder and a smaller amateur trained for a few steps by
   `foil-run pretrain` (model.kind "decoder").
2. `foil-run decode-eval` with greedy, beam, sampling (2 seeds),
   contrastive search, contrastive decoding, CAD, AdaCAD and DoLa on 1 and
   on 2 ranks: generations.jsonl is byte-identical.
3. Every deterministic method's generation equals the PyTorch re-derivation
   of tests/reference/generate_ref.py (its own full-recompute loops, float64)
   run on the checkpoint's weights read with h5py, from the prompt ids that
   `foil tokenizer encode` gives: the rows' token_ids equal its ids, and
   their text `foil tokenizer decode` of them.
   Prompts from a JSONL file with "context": CAD on context + prompt vs
   prompt, re-derived the same way. An amateur of max_len 16: greedy's
   prompts stay whole, contrastive decoding with ignore_prefix too, without
   it its prompts keep the amateur's last 16 - max_new_tokens tokens; an
   amateur too short, or a spec value the generator refuses, fails before
   any method runs.
4. metrics.json: each method's metrics (rep-n, diversity, length,
   coherence under the imported all-MiniLM-L6-v2, perplexity and MAUVE
   under the model as scorer) equal `foil textmetrics --json --encoder
   --scorer` on that method's rows of generations.jsonl; for the sampling
   method (2 seeds) MAUVE is `foil textmetrics` on each seed's rows
   (mauve_per_seed), and mauve, mauve_star, frontier_integral their mean
   over the seeds, mauve_std their standard deviation.
5. A bad spec is refused naming the key, and writes nothing. "device":
   "cuda" without a GPU (or CUDA) is refused with the reason, nothing
   written; with $FOIL_RUN_DEVICE (foil-run-shim: the decoders' CUDA paths
   against tests/gpu/cuda_shim.c) it runs on 2 ranks and generations.jsonl
   and metrics.json equal the CPU run's byte for byte; on a real GPU,
   generations.jsonl of the deterministic methods must equal the CPU's too.
6. Through a local cluster: a submitted decode-eval job completes and
   `foil status` shows its metrics.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "reference"))
import generate_ref as ref  # noqa: E402
from lmtiny import write_lm  # noqa: E402

foil, foil_run, mpiexec, work, minilm_dir = sys.argv[1:6]
mpi_flags = sys.argv[6:]
shutil.rmtree(work, ignore_errors=True)
root = os.path.join(work, "root")
ds = os.path.join(root, "datasets", "tiny")
os.makedirs(ds)
failures = []
T0 = time.time()


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


# ---- 1. data, tokenizer, two decoders ------------------------------------------------------
rng = random.Random(11)
NOUNS = "house garden river letter sister carriage morning evening window village".split()
ADJS = "quiet little pleasant young old bright cold".split()
VERBS = "saw visited left found admired remembered".split()
NAMES = "Elinor Marianne Elizabeth Jane Emma Anne".split()


def sentence():
    return (f"{rng.choice(NAMES)} {rng.choice(VERBS)} the {rng.choice(ADJS)} {rng.choice(NOUNS)} "
            f"near the {rng.choice(NOUNS)}.")


def document():
    return " ".join(sentence() for _ in range(rng.randint(4, 8)))


splits = {"train": [document() for _ in range(60)], "valid": [document() for _ in range(6)],
          "test": [document() for _ in range(7)]}
prompts, conts = [], []
for d in splits["test"]:
    w = d.split(" ")
    prompts.append(" ".join(w[:8]))
    conts.append(" " + " ".join(w[8:20]))
write_lm(os.path.join(ds, "lm.h5"), splits, prompts, conts, source="test")
bpe = os.path.join(work, "bpe")
subprocess.run([foil, "tokenizer", "train", "--lm", os.path.join(ds, "lm.h5"), "--vocab-size", "300",
                "--out", bpe], check=True, stdout=subprocess.DEVNULL)
vocab_json = os.path.join(bpe, "vocab.json")
EOT = json.load(open(vocab_json))["<|endoftext|>"]

env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def pretrain(name, layers, d, steps, max_len=64):
    spec = {"kind": "pretrain", "name": name, "seed": 3,
            "model": {"kind": "decoder", "n_layers": layers, "d_model": d, "n_heads": 2, "d_ff": 2 * d,
                      "max_len": max_len, "dropout": 0.0, "tokenizer": vocab_json},
            "data": {"dataset": "tiny"}, "loss": {"kind": "causal_lm"}, "batch_per_rank": 8, "steps": steps,
            "optimizer": {"lr": 0.01, "warmup_steps": 3, "weight_decay": 0.01},
            "checkpoint": {"every_steps": steps, "keep_last": 1}, "eval": {"every_steps": steps, "tokens": 512},
            "log_every_steps": steps, "threads": 1}
    path = os.path.join(work, name + ".json")
    json.dump(spec, open(path, "w"))
    subprocess.run([mpiexec, *mpi_flags, "-np", "1", foil_run, "pretrain", path, "--root", root,
                    "--job-dir", os.path.join(work, name), "--quiet"], check=True, env=env)
    return os.path.join(work, name)


minilm = os.path.join(work, "minilm.h5")  # the coherence encoder
subprocess.run([foil, "model", "import", minilm_dir, "--out", minilm], check=True, stdout=subprocess.DEVNULL)
expert_dir = pretrain("expert", 2, 32, 150)
amateur_dir = pretrain("amateur", 1, 16, 40)
short_dir = pretrain("amateur16", 1, 16, 40, max_len=16)  # shorter than the prompts + NEW
print(f"trained expert and amateur in {time.time() - T0:.1f} s")

METHODS = [
    {"method": "greedy"},
    {"name": "beam2", "method": "beam", "num_beams": 2},
    {"name": "topk", "method": "sample", "top_k": 20},
    {"name": "cs", "method": "contrastive_search", "top_k": 4, "alpha": 0.6},
    {"name": "cd", "method": "contrastive_decoding", "num_beams": 2},
    {"name": "cad", "method": "cad", "alpha": 0.5},
    {"name": "adacad", "method": "adacad"},
    {"name": "dola", "method": "dola"},
]
NEW = 10
# perplexity and MAUVE with the model itself as the scorer (the default)
USE_SCORER = True


def deval_spec(name, **over):
    spec = {"kind": "decode-eval", "name": name, "model": expert_dir, "amateur": amateur_dir,
            "prompts": {"dataset": "tiny", "query_words": 5}, "methods": METHODS, "max_new_tokens": NEW,
            "seeds": [1, 2], "batch": 3, "threads": 1,
            "metrics": {"scorer": USE_SCORER, "encoder": minilm}}
    spec.update(over)
    spec = {k: v for k, v in spec.items() if v is not None}
    path = os.path.join(work, name + ".json")
    json.dump(spec, open(path, "w"))
    return path


def err_line(r):
    return " | ".join(x for x in r.stderr.splitlines() if x.startswith("foil-run"))[:400]


def deval(spec, job, ranks):
    return subprocess.run([mpiexec, *mpi_flags, "-np", str(ranks), foil_run, "decode-eval", spec, "--root", root,
                           "--job-dir", os.path.join(work, job), "--quiet"], env=env, capture_output=True, text=True)


# ---- 2. 1 rank and 2 ranks ----------------------------------------------------------------------
spec = deval_spec("lm")
t = time.time()
r1 = deval(spec, "one", 1)
check(r1.returncode == 0, "decode-eval on 1 rank " + err_line(r1))
r2 = deval(spec, "two", 2)
check(r2.returncode == 0, "decode-eval on 2 ranks " + err_line(r2))
print(f"two decode-eval runs in {time.time() - t:.1f} s")
g1 = open(os.path.join(work, "one", "generations.jsonl"), "rb").read()
g2 = open(os.path.join(work, "two", "generations.jsonl"), "rb").read()
check(g1 == g2, "generations.jsonl identical on 1 and 2 ranks")
rows = [json.loads(line) for line in g1.decode().splitlines()]
n = len(prompts)
want_rows = n * (len(METHODS) + 1)  # sample runs twice (2 seeds)
check(len(rows) == want_rows, f"{want_rows} generations ({len(rows)})")
check([r["prompt_index"] for r in rows[:n]] == list(range(n)) and rows[0]["method"] == "greedy",
      "rows in method, seed, prompt order")
check(all(r["reference"] == conts[r["prompt_index"]] and r["prompt"] == prompts[r["prompt_index"]] for r in rows),
      "each row carries its prompt and its continuation as the reference")
s1 = [r["generation"] for r in rows if r["method"] == "topk" and r["seed"] == 1]
s2 = [r["generation"] for r in rows if r["method"] == "topk" and r["seed"] == 2]
check(len(s1) == n and s1 != s2 and all(r["seed"] is None for r in rows if r["method"] == "greedy"),
      "sampling runs once per seed (different draws), greedy once with seed null")

# ---- 3. each generation is what the method gives: PyTorch re-derivation --------------------------


def load_model(job):
    d = os.path.join(work, job, "ckpt")
    path = os.path.join(d, sorted(os.listdir(d))[-1])
    with h5py.File(path, "r") as f:
        a = f["model"].attrs
        c = {k: int(a[k]) for k in ("n_layers", "d_model", "n_heads", "d_ff", "max_len", "vocab")}
        p = {name: f["model"][name][()] for name in ref.shapes(c)}
    return ref.GPT2(c, p)


def encode(texts):
    path = os.path.join(work, "enc.txt")
    with open(path, "w") as f:
        f.write("\n".join(texts) + "\n")
    out = subprocess.run([foil, "tokenizer", "encode", "--vocab", vocab_json, "--no-special", "--file", path],
                         check=True, capture_output=True, text=True).stdout
    return [[EOT] + [int(x) for x in line.split()] for line in out.splitlines()]


def decode(ids):
    ids = [i for i in ids if i != EOT]
    if not ids:
        return ""
    return subprocess.run([foil, "tokenizer", "decode", "--vocab", vocab_json, *map(str, ids)], check=True,
                          capture_output=True, text=True).stdout.rstrip("\n")


exp, ama = load_model("expert"), load_model("amateur")
full = encode(prompts)
query = encode([" ".join(p.split(" ")[-5:]) for p in prompts])
derive = {
    "greedy": lambda i: ref.greedy(exp, full[i], NEW, EOT),
    "beam2": lambda i: ref.beam_search(exp, None, full[i], NEW, EOT, 2, 1.0, False, None),
    "cs": lambda i: ref.contrastive_search(exp, full[i], NEW, EOT, 4, 0.6),
    "cd": lambda i: ref.beam_search(exp, ama, full[i], NEW, EOT, 2, 1.0, False, (0.1, 1.0, 0.5, 2, True)),
    "cad": lambda i: ref.cad(exp, full[i], query[i], NEW, EOT, 0.5, False, 0)[0],
    "adacad": lambda i: ref.cad(exp, full[i], query[i], NEW, EOT, 0.5, True, 0)[0],
    # the penalty's history leaves out the leading EOT (generate_opts.penalty_skip 1, review B2)
    "dola": lambda i: ref.dola(exp, full[i], NEW, EOT, "high", 1.2, 1),
}
for name, fn in derive.items():
    mine = [r for r in rows if r["method"] == name]
    want_ids = [fn(i) for i in range(n)]
    same = sum(r["token_ids"] == w for r, w in zip(mine, want_ids))
    check(same == n, f"{name}: {same}/{n} generations' token ids equal PyTorch's" +
          ("" if same == n else f" (first diff: {next((r['token_ids'], w) for r, w in zip(mine, want_ids) if r['token_ids'] != w)})"))
    texts = sum(r["generation"] == decode(w) and r["tokens"] == len(w) for r, w in zip(mine, want_ids))
    check(texts == n, f"{name}: {texts}/{n} texts are their ids decoded")
check(len({r["generation"] for r in rows}) > 3, "the methods do not all say the same")

# prompts from a JSONL file: "context" + " " + "prompt" is the whole prompt, "prompt" alone the query
jl = os.path.join(work, "prompts.jsonl")
jrows = [{"prompt": "Emma saw the", "context": prompts[0], "reference": "x"},
         {"prompt": "Jane left the cold"}, {"prompt": "Anne found", "context": prompts[3]}]
with open(jl, "w") as f:
    f.write("\n".join(json.dumps(r) for r in jrows) + "\n\n")
js = deval_spec("jl", prompts={"file": jl}, amateur=None, methods=[{"method": "cad"}], seeds=None,
                metrics={"scorer": False})
r = deval(js, "jl", 1)
check(r.returncode == 0, "decode-eval on JSONL prompts " + err_line(r))
jg = [json.loads(line) for line in open(os.path.join(work, "jl", "generations.jsonl"))]
whole = [(x["context"] + " " if x.get("context") else "") + x["prompt"] for x in jrows]
check([x["prompt"] for x in jg] == whole and [x["reference"] for x in jg] == ["x", None, None],
      "JSONL: the row's prompt is context + prompt, its reference as given (else null)")
jw, jq = encode(whole), encode([x["prompt"] for x in jrows])
same = sum(x["generation"] == decode(ref.cad(exp, jw[i], jq[i], NEW, EOT, 0.5, False, 0)[0]) for i, x in enumerate(jg))
check(same == len(jrows), f"JSONL: cad with the context: {same}/{len(jrows)} equal PyTorch's")

# an amateur of max_len 16 < prompt + NEW: it bounds contrastive decoding alone. With ignore_prefix
# it needs 1 + NEW positions (the prompts stay whole); without, that method's prompts (for both
# models) keep their last 16 - NEW tokens; greedy's prompts are the whole prompts still.
ama16 = load_model("amateur16")
SHORT = 16 - NEW
check(max(len(x) for x in full) > SHORT, f"some prompts are longer than {SHORT} tokens")
ss = deval_spec("short", amateur=short_dir, seeds=None, metrics={"scorer": False},
                methods=[{"method": "greedy"}, {"name": "cd", "method": "contrastive_decoding", "num_beams": 2},
                         {"name": "cd_whole", "method": "contrastive_decoding", "num_beams": 2,
                          "ignore_prefix": False}])
r = deval(ss, "short", 1)
check(r.returncode == 0, "decode-eval with an amateur of max_len 16 " + err_line(r))
if r.returncode == 0:
    sg = [json.loads(line) for line in open(os.path.join(work, "short", "generations.jsonl"))]
    check([x["token_ids"] for x in sg if x["method"] == "greedy"] ==
          [x["token_ids"] for x in rows if x["method"] == "greedy"],
          "the amateur's max_len does not cut greedy's prompts (the same generations as without it)")
    want = [ref.beam_search(exp, ama16, full[i], NEW, EOT, 2, 1.0, False, (0.1, 1.0, 0.5, 2, True)) for i in range(n)]
    same = sum(x["token_ids"] == w for x, w in zip([x for x in sg if x["method"] == "cd"], want))
    check(same == n, f"cd (ignore_prefix) with the short amateur on whole prompts: {same}/{n} equal PyTorch's")
    want = [ref.beam_search(exp, ama16, full[i][-SHORT:], NEW, EOT, 2, 1.0, False, (0.1, 1.0, 0.5, 2, False))
            for i in range(n)]
    same = sum(x["token_ids"] == w for x, w in zip([x for x in sg if x["method"] == "cd_whole"], want))
    check(same == n, f"cd without ignore_prefix: prompts cut to the amateur's {SHORT} tokens: {same}/{n} equal "
          "PyTorch's")
    slog = open(os.path.join(work, "short", "log")).read()
    check("contrastive_decoding without ignore_prefix" in slog, "the log says which prompts were cut for it")
bad = deval_spec("bad3", amateur=short_dir, seeds=None, max_new_tokens=16,
                 methods=[{"method": "greedy"}, {"method": "contrastive_decoding"}])
r = deval(bad, "bad3", 1)
check(r.returncode != 0 and "methods[1]" in r.stderr and not os.path.exists(os.path.join(work, "bad3", "generations.jsonl")),
      "an amateur too short for 1 + max_new_tokens is refused before any method runs: " + err_line(r))
bad = deval_spec("bad4", amateur=None, seeds=None, methods=[{"method": "greedy"}, {"method": "dola", "relative_top": 0}])
r = deval(bad, "bad4", 1)
check(r.returncode != 0 and "methods[1].relative_top" in r.stderr, "dola relative_top 0 refused at parse time: "
      + err_line(r))

# ---- 4. metrics.json = foil textmetrics on the method's rows -------------------------------------
m = json.load(open(os.path.join(work, "one", "metrics.json")))
check([x["name"] for x in m["methods"]] == [x.get("name", x["method"]) for x in METHODS], "a row per method")
check(m["prompts"] == n and m["ranks"] == 1, "metrics.json: prompts and ranks")
scorer_args = (["--scorer", m["model"]] if USE_SCORER else []) + ["--encoder", minilm]


def textmetrics(name, keep):
    """`foil textmetrics --json` on the rows of method `name` that keep(row) accepts."""
    part = os.path.join(work, "part.jsonl")
    with open(part, "w") as f:
        for r in rows:
            if r["method"] == name and keep(r):
                f.write(json.dumps(r) + "\n")
    # one thread, as the job ran ("threads": 1): the scorer's sums then add in the same order
    cli = subprocess.run([foil, "textmetrics", part, "--json", *scorer_args], capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    check(cli.returncode == 0, f"foil textmetrics on {name}'s rows: {cli.stderr.strip()}")
    return json.loads(cli.stdout) if cli.returncode == 0 else None


MAUVE_KEYS = ("mauve", "mauve_star", "frontier_integral", "mauve_buckets")
for x in m["methods"]:
    want = textmetrics(x["name"], lambda r: True)
    if want is None:
        continue
    check("coherence" in want and -1 <= x.get("coherence", 9) <= 1, f"{x['name']}: coherence {x.get('coherence')}")
    seeds = sorted({r["seed"] for r in rows if r["method"] == x["name"] and r["seed"] is not None})
    if seeds:
        # MAUVE per seed, each seed's rows against the n references once, then the mean (review B3):
        # the pooled MAUVE of all seeds' rows would count each reference once per seed
        per = [textmetrics(x["name"], lambda r, s=s: r["seed"] == s) for s in seeds]
        if None in per:
            continue
        got = [e["seed"] for e in x.get("mauve_per_seed", [])]
        check(got == seeds, f"{x['name']}: mauve_per_seed lists the seeds {seeds} ({got})")
        for e, w in zip(x.get("mauve_per_seed", []), per):
            check(abs(e["mauve"] - w["mauve"]) <= 1e-9, f"{x['name']} seed {e['seed']}: MAUVE {e['mauve']} = "
                  f"foil textmetrics on that seed's rows {w['mauve']}")
        for k in ("mauve", "mauve_star", "frontier_integral"):
            mean = sum(w[k] for w in per) / len(per)
            check(abs(x.get(k, -9) - mean) <= 1e-9, f"{x['name']}: {k} {x.get(k)} is the mean over seeds {mean} "
                  f"(pooled: {want[k]})")
        sd = float(np.std([w["mauve"] for w in per], ddof=1))
        check(abs(x.get("mauve_std", -9) - sd) <= 1e-9, f"{x['name']}: mauve_std {x.get('mauve_std')} ({sd})")
        check(x.get("mauve_buckets") == per[0]["mauve_buckets"], f"{x['name']}: one seed's MAUVE buckets "
              f"{x.get('mauve_buckets')} ({per[0]['mauve_buckets']}; pooled {want['mauve_buckets']})")
        want = {k: v for k, v in want.items() if k not in MAUVE_KEYS}
    else:
        check("mauve_per_seed" not in x and "mauve_std" not in x, f"{x['name']}: deterministic, no per-seed MAUVE")
    diff = {k: (x.get(k), v) for k, v in want.items() if x.get(k) != v}
    check(not diff, f"{x['name']}: metrics.json equals foil textmetrics ({len(want)} keys){diff or ''}")
    check(x["tokens_per_s"] > 0 and x["per_token_ms"] > 0 and x["tokens"] > 0, f"{x['name']}: timed")
log = open(os.path.join(work, "one", "log")).read()
check("rep-2" in log and "tokens/s" in log and all(x["name"] in log for x in m["methods"]), "the log holds the table")
lines = [json.loads(line) for line in open(os.path.join(work, "one", "metrics"))]
check(len(lines) == len(METHODS), "one metrics line per method")

# ---- 5. refusals ----------------------------------------------------------------------------------
bad = deval_spec("bad", methods=[{"method": "greedy", "top_k": 3}])
r = deval(bad, "bad", 1)
check(r.returncode != 0 and "methods[0]" in r.stderr and "top_k" in r.stderr, "unknown method key refused: " + err_line(r))
check(not os.path.exists(os.path.join(work, "bad", "generations.jsonl")), "nothing written")
bad = deval_spec("bad2", max_new_tokens=63)
r = deval(bad, "bad2", 1)
check(r.returncode != 0 and "max_new_tokens" in r.stderr, "max_new_tokens beyond max_len refused: " + err_line(r))

# device "cuda": refused here without a GPU; through the shim (and on a GPU) the CPU run's results
spec_gpu = deval_spec("lm-gpu", device="cuda")
r = deval(spec_gpu, "gpu", 1)
gpu_rows = os.path.join(work, "gpu", "generations.jsonl")
if r.returncode != 0:
    check("CUDA" in r.stderr and "device" in r.stderr, "device cuda without a GPU: refused with the reason: "
          + err_line(r))
    check(not os.path.exists(gpu_rows), "nothing written")
else:
    print("device cuda ran here: a GPU is visible")
    det = {m.get("name", m["method"]) for m in METHODS if m["method"] != "sample"}
    cpu = [x for x in rows if x["method"] in det]
    got = [json.loads(x) for x in open(gpu_rows)]
    check([x["token_ids"] for x in got if x["method"] in det] == [x["token_ids"] for x in cpu],
          "on the GPU: every deterministic method generates the CPU's tokens")
if os.environ.get("FOIL_RUN_DEVICE"):
    r = subprocess.run([mpiexec, *mpi_flags, "-np", "2", os.environ["FOIL_RUN_DEVICE"], "decode-eval", spec_gpu,
                        "--root", root, "--job-dir", os.path.join(work, "shim"), "--quiet"], env=env,
                       capture_output=True, text=True)
    check(r.returncode == 0, "decode-eval with device cuda on the shim, 2 ranks " + err_line(r))
    g = open(os.path.join(work, "shim", "generations.jsonl"), "rb").read()
    check(g == g1, "device cuda (shim): generations.jsonl identical to the CPU run's")
    def quality(job):  # each method's metrics without its timings
        ms = json.load(open(os.path.join(work, job, "metrics.json")))["methods"]
        return [{k: v for k, v in m.items() if not k.startswith(("tokens_per_s", "per_token"))} for m in ms]
    check(quality("shim") == quality("one") and len(quality("one")) == len(METHODS),
          "device cuda (shim): the same metrics")

# ---- 6. through the cluster -------------------------------------------------------------------------
try:
    sys.path.insert(0, HERE)
    from foilcluster import STATE, Cluster
except ImportError as e:
    Cluster = None
    print("cluster part skipped: %s" % e)
if Cluster:
    cl = Cluster(os.path.dirname(os.path.abspath(foil)), os.path.join(work, "cluster-root"))
    os.symlink(os.path.join(root, "datasets"), os.path.join(cl.root, "datasets"))
    cspec = deval_spec("cl", methods=METHODS[:2], amateur=None, job={"ranks": 2})
    cl.start_coordinator()
    try:
        cl.start_worker("n1", slots=2, extra_args=["--mpirun-args", " ".join(mpi_flags)])
        r = cl.foil("submit", cspec)
        check(r.returncode == 0, "foil submit of a decode-eval job: %s %s" % (r.stdout.strip(), r.stderr.strip()))
        jid = int(r.stdout.strip())
        j = cl.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED", "JOB_NODE_FAIL", "JOB_CANCELLED"}, 120)
        check(STATE.Name(j.state) == "JOB_COMPLETED", "decode-eval job COMPLETED (%s: %s)\n%s"
              % (STATE.Name(j.state), j.reason, cl.log(jid)[-1500:]))
        jd = os.path.join(cl.root, "jobs", str(jid))
        cg = open(os.path.join(jd, "generations.jsonl"), "rb").read()
        check(cg.splitlines() == g1.splitlines()[:2 * n], "the cluster's generations equal the direct run's")
        st = cl.foil("status", str(jid))
        check(st.returncode == 0 and "greedy" in st.stdout and "rep_4" in st.stdout,
              "foil status shows the metrics: " + st.stdout.strip()[-400:])
    finally:
        codes = cl.stop()
    check(all(v == 0 for v in codes.values()), "daemons exit cleanly: %s" % codes)

print(f"total {time.time() - T0:.1f} s")
if failures:
    sys.exit("%d check(s) failed" % len(failures))
print("all checks passed")
