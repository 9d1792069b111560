"""lm_check.py — builds the `lm` dataset (foil.lm.v1) with `foil data
prepare lm` from the installed Debian packages into temporary roots and
checks it with h5py:
format and attributes, >= 10 MB of text, no document in two splits,
500 prompts whose prompt + continuation occur in a test document, prompt
and continuation word counts, and determinism (same seed -> identical
datasets; another seed -> another split).

usage: lm_check.py FOIL WORKDIR
"""
import os
import shutil
import subprocess
import sys
import time

import h5py

SPLITS = ("train", "valid", "test")


def build(exe, root, seed):
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.monotonic()
    subprocess.run([exe, "data", "prepare", "lm", "--root", root, "--seed", str(seed)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def strings(f, name):
    return [s.decode("utf-8") for s in f[name][...]]


def load(root):
    path = os.path.join(root, "datasets", "lm", "lm.h5")
    with h5py.File(path, "r") as f:
        d = {"attrs": dict(f.attrs)}
        for s in SPLITS:
            d[s + "/text"] = strings(f, s + "/text")
            d[s + "/source"] = strings(f, s + "/source")
            d[s + "/count"] = int(f[s].attrs["count"])
        d["prompt"] = strings(f, "prompts/prompt")
        d["continuation"] = strings(f, "prompts/continuation")
        d["prompts_attrs"] = dict(f["prompts"].attrs)
    return d


def main():
    exe, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    fails = []

    def check(cond, msg):
        if not cond:
            fails.append(msg)
            print("FAIL:", msg)

    r1, r2, r3 = (os.path.join(work, n) for n in ("seed1a", "seed1b", "seed2"))
    t1 = build(exe, r1, 1)
    build(exe, r2, 1)
    build(exe, r3, 2)
    a, b, c = load(r1), load(r2), load(r3)

    at = a["attrs"]
    check(at["foil_format"] in ("foil.lm.v1", b"foil.lm.v1"), "foil_format")
    for k in ("source", "created_by", "seed"):
        check(k in at, "root attribute " + k)
    check(int(at["seed"]) == 1, "seed attribute")

    total = sum(len(t.encode("utf-8")) for s in SPLITS for t in a[s + "/text"])
    check(total >= 10_000_000, "total text %d bytes < 10 MB" % total)
    for s in SPLITS:
        check(len(a[s + "/text"]) == len(a[s + "/source"]) == a[s + "/count"] > 0, "split " + s + " counts")
        check(all(len(t.split()) >= 50 for t in a[s + "/text"]), "documents of >= 50 words in " + s)

    # documents never straddle splits (sources are unique ids; texts too)
    seen = {}
    for s in SPLITS:
        for src in a[s + "/source"]:
            check(src not in seen, "document %s in %s and %s" % (src, seen.get(src), s))
            seen[src] = s
    texts = [t for s in SPLITS for t in a[s + "/text"]]
    check(len(set(texts)) == len(texts), "duplicate document texts")
    origins = {src.split(":")[0] for src in seen}
    check(origins == {"r-cran-janeaustenr", "sword-text-web", "python3.11-doc"}, "sources %s" % origins)

    # prompts
    P, C = a["prompt"], a["continuation"]
    check(len(P) == len(C) == 500 == int(a["prompts_attrs"]["count"]), "500 prompts")
    test = a["test/text"]
    places = set()
    for p, q in zip(P, C):
        nw = len(p.split())
        check(16 <= nw <= 24, "prompt of %d words: %r" % (nw, p))
        check(len(q.split()) == 64, "continuation of %d words" % len(q.split()))
        hits = [i for i, t in enumerate(test) if (p + q) in t]
        check(len(hits) >= 1, "prompt+continuation not in a test document: %r" % p[:60])
        if hits:
            places.add((hits[0], test[hits[0]].find(p + q)))
    check(len(places) == len(P), "prompts at distinct places (%d of %d)" % (len(places), len(P)))
    check(len(set(P)) == len(P), "distinct prompts")

    # determinism
    check(a == b, "two builds with seed 1 differ")
    check(a["test/source"] != c["test/source"], "seed 2 gives the same test split")
    check(c["attrs"]["seed"] == 2, "seed 2 attribute")

    lic = open(os.path.join(r1, "datasets", "lm", "LICENSE"), encoding="utf-8").read()
    for needle in ("public domain", "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2", "Jane Austen",
                   "World English Bible"):
        check(needle.lower() in lic.lower(), "LICENSE mentions " + needle)
    # no temporary files left behind
    left = [n for n in os.listdir(os.path.join(r1, "datasets", "lm")) if ".tmp-" in n]
    check(not left, "temporary files left: %s" % left)

    print("lm: %d documents (train %d, valid %d, test %d), %.2f MB, %d prompts, build %.2f s"
          % (len(seen), a["train/count"], a["valid/count"], a["test/count"], total / 1e6, len(P), t1))
    if fails:
        print("%d checks failed" % len(fails))
        return 1
    print("all lm checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
