"""lmtiny.py — writes a small `lm` dataset file (foil.lm.v1, docs/datasets.md)
with h5py, for the decoder tests that generate their own documents.

    write_lm(path, {"train": [...], "valid": [...], "test": [...]},
             prompts=None, continuations=None, source=None)

Each split gets its documents as `text`, a `source` per document
("<source or the split's name>:<i>") and a `count` attribute; prompts and
continuations, when given, go to the `prompts` group.

    spec_file(path, spec, over)

writes a job spec for those tests: `spec` with the overrides `over` (a
dict value updates that section, any other replaces the key) as JSON.
"""
import json

import h5py


def spec_file(path, spec, over):
    for k, v in over.items():
        if isinstance(v, dict):
            spec[k].update(v)
        else:
            spec[k] = v
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


def write_lm(path, splits, prompts=None, continuations=None, source=None):
    with h5py.File(path, "w") as f:
        f.attrs["foil_format"] = "foil.lm.v1"
        for name, docs in splits.items():
            g = f.create_group(name)
            g.create_dataset("text", data=docs, dtype=h5py.string_dtype())
            g.create_dataset("source", data=[f"{source or name}:{i}" for i in range(len(docs))],
                             dtype=h5py.string_dtype())
            g.attrs["count"] = len(docs)
        if prompts is not None:
            g = f.create_group("prompts")
            g.create_dataset("prompt", data=prompts, dtype=h5py.string_dtype())
            g.create_dataset("continuation", data=continuations, dtype=h5py.string_dtype())
            g.attrs["count"] = len(prompts)
