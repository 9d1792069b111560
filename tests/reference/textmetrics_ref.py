#!/usr/bin/env python3
"""Reference for `foil textmetrics` end to end with a real encoder.

Runs in .venv-st (sentence-transformers 2.7 on Debian's torch). Steps:
  1. writes OUT/gen.jsonl: 120 rows whose prompts are WordNet glosses and
     whose generations are glosses with planted repetitions (phrases
     repeated, words stuttered), Unicode spaces, short and empty
     generations, and a "reference" on every other row;
  2. `foil-data model import MINILM --out OUT/minilm.h5` (all-MiniLM-L6-v2);
  3. `foil-data textmetrics OUT/gen.jsonl --encoder OUT/minilm.h5 --json`;
  4. recomputes every number independently:
       rep-n / diversity: SimCTG's procedure (per document: text.strip(),
         str.split(), n-grams from windows ending before the last token,
         unique per document, counts summed; diversity the product of
         (1 - rep-n), without SimCTG's rounding to 2 decimals);
       length: mean len(str.split());
       coherence: SentenceTransformer(MINILM) embeddings of prompts and
         generations, mean cosine;
     and requires rep/diversity/length to 1e-12, coherence to 1e-5;
  5. a malformed JSONL line exits 2 naming FILE:LINE and the key; an
     encoder checkpoint given as --scorer exits 2 saying it is not a decoder
     (--scorer itself: tests/integration/textmetrics_scorer.py).
Usage: textmetrics_ref.py MINILM_DIR FOIL_DATA OUT_DIR
"""
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
from sentence_transformers import SentenceTransformer
from wordnet_glosses import noun_glosses, spread

def glosses(n):
    return spread(noun_glosses(20), n)


def rows():
    rnd = random.Random(7)
    g = glosses(240)
    out = []
    for i in range(120):
        prompt, gen = g[2 * i], g[2 * i + 1]
        w = gen.split()
        kind = i % 6
        if kind == 1 and len(w) > 3:      # a phrase repeated (degeneration)
            gen = " ".join(w + w[:4] + w[:4])
        elif kind == 2 and len(w) > 2:    # a stutter
            j = rnd.randrange(len(w))
            gen = " ".join(w[:j] + [w[j]] * 3 + w[j:])
        elif kind == 3:                   # Unicode and odd whitespace
            gen = "\u00a0" + "\u3000".join(w[:3]) + "\t\n " + " ".join(w[3:]) + "\u2009"
        elif kind == 4:                   # short
            gen = " ".join(w[:2])
        r = {"prompt": prompt, "generation": gen}
        if i % 2 == 0:
            r["reference"] = g[(2 * i + 7) % len(g)]
        out.append(r)
    out.append({"prompt": "an empty continuation", "generation": ""})
    return out


def simctg_counts(texts):
    uniq = {2: 0, 3: 0, 4: 0}
    total = {2: 0, 3: 0, 4: 0}
    for t in texts:
        toks = t.strip().split()
        for n in (2, 3, 4):
            seen = set()
            count = 0
            end = n
            while end < len(toks):   # SimCTG: the window ending at the last token is not counted
                seen.add(tuple(toks[end - n:end]))
                count += 1
                end += 1
            uniq[n] += len(seen)
            total[n] += count
    rep = {n: (1 - uniq[n] / total[n]) if total[n] else 0.0 for n in (2, 3, 4)}
    return rep


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def main():
    minilm, foil_data, out = sys.argv[1:4]
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    data = rows()
    path = os.path.join(out, "gen.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in data:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    ckpt = os.path.join(out, "minilm.h5")
    p = run([foil_data, "model", "import", minilm, "--out", ckpt])
    assert p.returncode == 0, p.stderr
    p = run([foil_data, "textmetrics", path, "--encoder", ckpt, "--json"])
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    print("foil:", got)

    gens = [r["generation"] for r in data]
    prompts = [r["prompt"] for r in data]
    rep = simctg_counts(gens)
    div = (1 - rep[2]) * (1 - rep[3]) * (1 - rep[4])
    length = sum(len(t.split()) for t in gens) / len(gens)
    st = SentenceTransformer(minilm, device="cpu")
    a = st.encode(prompts, convert_to_numpy=True, batch_size=32).astype(np.float64)
    b = st.encode(gens, convert_to_numpy=True, batch_size=32).astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    coh = float(cos.mean())
    print(f"reference: rep-2 {rep[2]:.6f} rep-3 {rep[3]:.6f} rep-4 {rep[4]:.6f} "
          f"diversity {div:.6f} length {length:.4f} coherence {coh:.7f}")
    fails = 0
    for key, want, tol in [("rows", len(data), 0), ("rep_2", rep[2], 1e-12), ("rep_3", rep[3], 1e-12),
                           ("rep_4", rep[4], 1e-12), ("diversity", div, 1e-12),
                           ("mean_length", length, 1e-12), ("coherence", coh, 1e-5)]:
        d = abs(got[key] - want)
        ok = d <= tol
        fails += not ok
        print(f"  {key:12s} foil {got[key]:.9f}  reference {want:.9f}  |diff| {d:.2e}  "
              f"{'ok' if ok else 'FAILED'}")
    assert rep[2] > 0.02 and rep[4] > 0.01, "the planted repetitions must show"

    # a malformed line: exit 2, FILE:LINE and the key
    bad = os.path.join(out, "bad.jsonl")
    with open(bad, "w") as f:
        f.write(json.dumps(data[0]) + "\n" + json.dumps({"prompt": "x", "generation": 3}) + "\n")
    p = run([foil_data, "textmetrics", bad])
    print("bad line:", p.returncode, p.stderr.strip())
    if p.returncode != 2 or f"{bad}:2: key \"generation\" is not a string" not in p.stderr:
        fails += 1
    p = run([foil_data, "textmetrics", path, "--scorer", ckpt])
    print("scorer:", p.returncode, p.stderr.strip())
    if p.returncode != 2 or "not a decoder" not in p.stderr:
        fails += 1
    print(f"{7 + 2 - fails} passed, {fails} failed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
