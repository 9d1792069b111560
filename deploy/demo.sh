#!/usr/bin/env bash
# deploy/demo.sh — the main demo on the embedded defaults: install and build
# (deploy/setup.sh), prepare the WordNet dataset into the data root, start a
# local cluster (one coordinator with its SQLite job store, one worker with
# CPU slots: deploy/local-cluster.sh), submit a pretrain job of 2 MPI ranks
# (symmetric InfoNCE) and watch it, then print its held-out retrieval
# metrics beside BM25's on the same benchmark. Then the decoding part
# (deploy/demo-lm.sh): the lm dataset and its BPE, a small decoder and an
# amateur trained as two jobs, a decode-eval job after both, its table.
#
#   bash deploy/demo.sh                 # data root ./foil-data (or $FOIL_ROOT)
#   FOIL_SKIP_APT=1 FOIL_SKIP_PIP=1 bash deploy/demo.sh   # packages already there
#
# The build goes to ./build, or $FOIL_BUILD_DIR (relative to the checkout),
# as in deploy/setup.sh; local-cluster.sh and demo-lm.sh use the same one.
# The cluster keeps running afterwards (`./build/foil jobs`, `foil workers`);
# stop it with `bash deploy/local-cluster.sh stop`.
set -euo pipefail
cd "$(dirname "$0")/.."
# one build for setup.sh, this script, local-cluster.sh and demo-lm.sh
export FOIL_BUILD_DIR=${FOIL_BUILD_DIR:-./build}
bash deploy/setup.sh
export FOIL_ROOT=${FOIL_ROOT:-./foil-data}
SPEC=${FOIL_DEMO_SPEC:-examples/pretrain-wordnet-demo.json}
F=$FOIL_BUILD_DIR/foil

$F data prepare wordnet

# (as root, local-cluster.sh lets the worker's mpirun run as root)
bash deploy/local-cluster.sh start
job=$($F submit "$SPEC")
echo "submitted job $job ($SPEC); follow it from another shell with: $F watch $job / $F logs $job --follow"
start=$(date +%s)
set +e
$F watch "$job"
rc=$?
set -e
if [ "$rc" != 0 ]; then
  echo "job $job did not complete (exit $rc); its log:" >&2
  $F logs "$job" | tail -n 30 >&2
  exit "$rc"
fi
echo "trained in $(( $(date +%s) - start )) s; job directory: $FOIL_ROOT/jobs/$job"

# The last evaluation of foil and the BM25 baseline, from the job's metrics.
/usr/bin/python3 - "$FOIL_ROOT/jobs/$job/metrics" <<'PY'
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
bash deploy/demo-lm.sh
echo "the local cluster is still up: $F jobs, $F workers; stop it with: bash deploy/local-cluster.sh stop"
