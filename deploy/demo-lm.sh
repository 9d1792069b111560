#!/usr/bin/env bash
# deploy/demo-lm.sh — the decoding part of the demo (deploy/demo.sh runs it
# last): prepare the `lm` dataset and its BPE tokenizer, submit a small
# decoder and a smaller "amateur" pretrain job (examples/pretrain-lm-*.json
# with FOIL_DEMO_LM_STEPS steps each, default 100, instead of 3000/1500),
# then a decode-eval job (examples/decode-eval-lm.json on the first
# FOIL_DEMO_PROMPTS prompts, default 32) that starts `--after` both, and print
# its metrics table. Needs the build (./build, or $FOIL_BUILD_DIR relative to
# the checkout, as local-cluster.sh) and a running local cluster
# (deploy/local-cluster.sh start); data root $FOIL_ROOT (default ./foil-data).
#
#   bash deploy/demo-lm.sh
#
# A hundred steps make a decoder that writes poor English; the table
# shows the pipeline and how the methods differ, not good text.
set -euo pipefail
cd "$(dirname "$0")/.."
export FOIL_ROOT=${FOIL_ROOT:-./foil-data}
F=${FOIL_BUILD_DIR:-./build}/foil
STEPS=${FOIL_DEMO_LM_STEPS:-100}
PROMPTS=${FOIL_DEMO_PROMPTS:-32}
start=$(date +%s)

$F data prepare lm
bpe=$FOIL_ROOT/tokenizers/lm-bpe
# both files, or train again (an interrupted train can leave one of them)
if [ ! -f "$bpe/vocab.json" ] || [ ! -f "$bpe/merges.txt" ]; then
  $F tokenizer train --lm "$FOIL_ROOT/datasets/lm/lm.h5" --vocab-size 8000 --out "$bpe"
fi

# The demo's specs: the examples with fewer steps, the tokenizer under this data root.
specs=$FOIL_ROOT/demo-specs
mkdir -p "$specs"
/usr/bin/python3 - "$specs" "$bpe/vocab.json" "$STEPS" <<'PY'
import json, sys
out, vocab, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
for name in ("decoder", "amateur"):
    s = json.load(open(f"examples/pretrain-lm-{name}.json"))
    s["name"] = f"lm-{name}-demo"
    s["steps"] = steps
    s["model"]["tokenizer"] = vocab
    s["optimizer"]["warmup_steps"] = max(1, min(100, steps // 10))
    s["checkpoint"] = {"every_steps": steps, "keep_last": 1}
    s["eval"] = {"every_steps": steps, "tokens": 16384}
    s["log_every_steps"] = max(1, steps // 10)
    json.dump(s, open(f"{out}/lm-{name}.json", "w"), indent=2)
PY
dec=$($F submit "$specs/lm-decoder.json")
ama=$($F submit "$specs/lm-amateur.json")
/usr/bin/python3 - "$specs" "$FOIL_ROOT/jobs/$dec" "$FOIL_ROOT/jobs/$ama" "$PROMPTS" <<'PY'
import json, sys
out, dec, ama, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = json.load(open("examples/decode-eval-lm.json"))
s["name"] = "lm-demo"
s["model"], s["amateur"] = dec, ama
s["prompts"]["n_prompts"] = n
json.dump(s, open(f"{out}/decode-eval-lm.json", "w"), indent=2)
PY
ev=$($F submit "$specs/decode-eval-lm.json" --after "$dec,$ama")
echo "submitted decoder job $dec, amateur job $ama ($STEPS steps each) and decode-eval job $ev (after both)"
set +e
$F watch "$ev"
rc=$?
set -e
if [ "$rc" != 0 ]; then
  echo "job $ev did not complete (exit $rc); the logs:" >&2
  for j in "$dec" "$ama" "$ev"; do $F logs "$j" | tail -n 10 >&2; done
  exit "$rc"
fi
echo "decoders trained and evaluated in $(( $(date +%s) - start )) s; results: $FOIL_ROOT/jobs/$ev/metrics.json, generations.jsonl"

/usr/bin/python3 - "$FOIL_ROOT/jobs/$ev/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"decode-eval on {m['prompts']} lm prompts, {m['max_new_tokens']} new tokens, model step {m['step']}")
cols = [("rep_2", "rep-2", 100), ("rep_4", "rep-4", 100), ("diversity", "div.", 100), ("mean_length", "length", 1),
        ("coherence", "coh.", 1), ("perplexity", "ppl", 1), ("mauve", "MAUVE", 1), ("tokens_per_s", "tok/s", 1),
        ("tokens_per_s_vs_greedy", "vs greedy", 1)]
cols = [c for c in cols if any(c[0] in x for x in m["methods"])]
print(f"{'method':<14}" + "".join(f"{h:>10}" for _, h, _ in cols))
for x in m["methods"]:
    print(f"{x['name']:<14}" + "".join(f"{x[k] * s:>10.2f}" if k in x else f"{'-':>10}" for k, _, s in cols))
PY
