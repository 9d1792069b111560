#!/usr/bin/env python3
"""Reference for `foil model import/export` with the real all-MiniLM-L6-v2.

Runs in .venv-st (sentence-transformers 2.7 on Debian's torch; see
deploy/setup.sh). Steps:
  1. `foil-data model import MODEL --out OUT/model.h5`, then
     `foil-data model export OUT/model.h5 OUT/exported`;
  2. checks that OUT/exported/model.safetensors holds every tensor of the
     original bit for bit (token types, position ids and pooler included);
  3. encodes 300 WordNet glosses plus 4 long texts (past max_seq_length, so
     truncation is exercised) with SentenceTransformer(MODEL) and with
     SentenceTransformer(OUT/exported), and writes OUT/ref.h5:
       texts          strings [N]
       emb_original   float32 [N, D]  sentence-transformers on the original
       emb_exported   float32 [N, D]  sentence-transformers on foil's export
The C test (test_hfmodel_ref.c) encodes the texts with the imported
checkpoint and compares against both.
Usage: hfmodel_ref.py MODEL_DIR FOIL_DATA OUT_DIR
"""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
from safetensors.numpy import load_file
from sentence_transformers import SentenceTransformer
from wordnet_glosses import noun_glosses, spread

def texts():
    glosses = noun_glosses(10)
    long = [" ".join(glosses[i * 60:(i + 1) * 60]) for i in range(4)]
    return spread(glosses, 300) + long


def main():
    model, foil_data, out = sys.argv[1:4]
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    ckpt, exported = os.path.join(out, "model.h5"), os.path.join(out, "exported")
    subprocess.run([foil_data, "model", "import", model, "--out", ckpt], check=True)
    subprocess.run([foil_data, "model", "export", ckpt, exported], check=True)

    a = load_file(os.path.join(model, "model.safetensors"))
    b = load_file(os.path.join(exported, "model.safetensors"))
    bad = sorted(set(a) ^ set(b))
    bad += [k for k in set(a) & set(b)
            if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or a[k].tobytes() != b[k].tobytes()]
    if bad:
        print("FAIL: exported tensors differ from the original:", bad[:10])
        return 1
    print(f"round trip: {len(a)} tensors equal bit for bit")

    t = texts()
    e1 = SentenceTransformer(model, device="cpu").encode(t, batch_size=32, convert_to_numpy=True)
    e2 = SentenceTransformer(exported, device="cpu").encode(t, batch_size=32, convert_to_numpy=True)
    with h5py.File(os.path.join(out, "ref.h5"), "w") as f:
        f.create_dataset("texts", data=np.array(t, dtype=object), dtype=h5py.string_dtype())
        f["emb_original"] = e1.astype(np.float32)
        f["emb_exported"] = e2.astype(np.float32)
    print(f"{len(t)} texts encoded; original vs exported max |diff| {np.abs(e1 - e2).max():.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
