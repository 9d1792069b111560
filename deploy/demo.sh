#!/usr/bin/env bash
# deploy/demo.sh — the main demo on the embedded defaults: install and build
# (deploy/setup.sh), prepare the WordNet dataset into the data root, train a
# text encoder on 2 CPU ranks with symmetric InfoNCE, evaluate it on the
# held-out definition -> lemma benchmark, and print its metrics beside
# BM25's on the same benchmark.
#
#   bash deploy/demo.sh                 # data root ./foil-data (or $FOIL_ROOT)
#   FOIL_SKIP_APT=1 FOIL_SKIP_PIP=1 bash deploy/demo.sh   # packages already there
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
ROOT=${FOIL_ROOT:-./foil-data}
SPEC=${FOIL_DEMO_SPEC:-examples/pretrain-wordnet-demo.json}
JOB="$ROOT/jobs/wordnet-demo-$(date +%Y%m%d-%H%M%S)"

./build/foil data prepare wordnet --root "$ROOT"

# Open MPI refuses to start as root unless told; a fresh machine often runs
# as root. The ranks share this machine's cores (one thread each on 2 cores).
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
start=$(date +%s)
mpirun --oversubscribe --bind-to none --mca btl self,vader -np 2 \
  ./build/foil-run pretrain "$SPEC" --root "$ROOT" --job-dir "$JOB"
echo "trained in $(( $(date +%s) - start )) s; job directory: $JOB"

# The last evaluation of foil and the BM25 baseline, from the job's metrics.
/usr/bin/python3 - "$JOB/metrics" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if '"eval"' in l]
last = {}
for e in ev:
    last[e["model"]] = e
print(f"{'held-out WordNet (test)':<26}{'MRR@10':>8}{'NDCG@10':>9}{'R@1':>7}{'R@10':>7}{'R@100':>7}")
for m in ("foil", "bm25"):
    e = last[m]
    print(f"{m:<26}{e['mrr@10']:8.4f}{e['ndcg@10']:9.4f}{e['recall@1']:7.4f}{e['recall@10']:7.4f}"
          f"{e['recall@100']:7.4f}")
print(f"foil / BM25 on MRR@10: {last['foil']['mrr@10'] / last['bm25']['mrr@10']:.2f}x")
PY
