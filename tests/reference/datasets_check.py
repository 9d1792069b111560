"""datasets_check.py FOIL TMPDIR — runs the real `foil data prepare wordnet`
and `foil data prepare code` (twice with one seed, once with another) and
checks the HDF5 files with h5py against docs/datasets.md: formats and
dtypes, counts (2000 test / 1000 dev WordNet synsets), no held-out synset
or module in train, qrels in range, every query with a relevant document,
determinism for a seed and a different split for another seed. Prints the
dataset sizes and the time each prepare took."""
import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

FOIL, TMP = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what)


def prepare(source, root, seed):
    env = dict(os.environ, FOIL_ROOT=root)  # --root would differ in created_by
    t = time.perf_counter()
    r = subprocess.run([FOIL, "data", "prepare", source, "--seed", str(seed)], env=env,
                       capture_output=True, text=True)
    dt = time.perf_counter() - t
    check(r.returncode == 0, f"prepare {source} seed {seed}: exit {r.returncode}: {r.stderr}")
    print(r.stdout.rstrip())
    print(f"  [{source} seed {seed}: {dt:.2f} s]")
    return dt


def strs(ds):
    check(h5py.check_string_dtype(ds.dtype) is not None and
          h5py.check_string_dtype(ds.dtype).encoding == "utf-8", f"{ds.name} is a UTF-8 string dataset")
    return [s.decode() for s in ds[()]]


def read_pairs(path):
    f = h5py.File(path, "r")
    check(f.attrs["foil_format"] == "foil.pairs.v1", f"{path}: foil_format")
    for a in ("source", "created_by", "seed"):
        check(a in f.attrs, f"{path}: root attribute {a}")
    out = {}
    for s in ("train", "dev", "test"):
        q, p = strs(f[s + "/query"]), strs(f[s + "/positive"])
        g = f[s + "/group"][()]
        check(g.dtype == np.int64, f"{path}: {s}/group is int64")
        check(len(q) == len(p) == len(g) == f[s].attrs["count"], f"{path}: {s} lengths and count")
        out[s] = (q, p, g)
    f.close()
    return out


def read_bench(path):
    f = h5py.File(path, "r")
    check(f.attrs["foil_format"] == "foil.benchmark.v1", f"{path}: foil_format")
    b = {k: strs(f[k]) for k in ("queries", "query_ids", "corpus", "corpus_ids")}
    qr = f["qrels"][()]
    f.close()
    check(qr.dtype == np.int64 and qr.ndim == 2 and qr.shape[1] == 2, f"{path}: qrels int64 [r,2]")
    nq, nc = len(b["queries"]), len(b["corpus"])
    check(len(b["query_ids"]) == nq and len(b["corpus_ids"]) == nc, f"{path}: id lengths")
    check(len(set(b["corpus_ids"])) == nc, f"{path}: corpus ids unique")
    check(len(set(b["query_ids"])) == nq, f"{path}: query ids unique")
    check(qr.size == 0 or (qr[:, 0].min() >= 0 and qr[:, 0].max() < nq and qr[:, 1].min() >= 0
                           and qr[:, 1].max() < nc), f"{path}: qrels in range")
    check(len(set(qr[:, 0].tolist())) == nq, f"{path}: every query has a relevant document")
    b["qrels"] = qr
    return b


def same_files(a, b):
    """Every dataset and attribute of every file under a equals b's."""
    for dirpath, _, files in os.walk(a):
        for name in files:
            pa = os.path.join(dirpath, name)
            pb = os.path.join(b, os.path.relpath(pa, a))
            if not name.endswith(".h5"):
                if open(pa, "rb").read() != open(pb, "rb").read():
                    return f"{pa} differs"
                continue
            fa, fb = h5py.File(pa, "r"), h5py.File(pb, "r")
            names = []
            fa.visit(names.append)
            other = []
            fb.visit(other.append)
            if names != other:
                return f"{pa}: objects differ"
            if dict(fa.attrs) != dict(fb.attrs):
                return f"{pa}: attributes differ"
            for n in names:
                if isinstance(fa[n], h5py.Dataset) and not np.array_equal(fa[n][()], fb[n][()]):
                    return f"{pa}: {n} differs"
                if dict(fa[n].attrs) != dict(fb[n].attrs):
                    return f"{pa}: attributes of {n} differ"
    return None


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    roots = [os.path.join(TMP, r) for r in ("a", "b", "c")]
    times = {}
    for source in ("wordnet", "code"):
        times[source] = [prepare(source, roots[0], 1), prepare(source, roots[1], 1), prepare(source, roots[2], 2)]

    # ---- wordnet
    w = os.path.join(roots[0], "datasets/wordnet")
    pairs = read_pairs(os.path.join(w, "pairs.h5"))
    test, dev = read_bench(os.path.join(w, "benchmarks/test.h5")), read_bench(os.path.join(w, "benchmarks/dev.h5"))
    check(len(test["queries"]) == 2000 and len(dev["queries"]) == 1000, "wordnet: 2000 test / 1000 dev queries")
    tr_q, _, tr_g = pairs["train"]
    tr_g, tr_q = set(tr_g.tolist()), set(tr_q)
    for s in ("dev", "test"):
        q, p, g = pairs[s]
        check(not (set(g.tolist()) & tr_g), f"wordnet: no {s} synset (group) in train")
        check(len(set(g.tolist())) == (2000 if s == "test" else 1000), f"wordnet: {s} pairs cover the held-out synsets")
    check(not (set(test["queries"]) & tr_q), "wordnet: no test definition is a train query")
    check(not (set(dev["queries"]) & tr_q), "wordnet: no dev definition is a train query")
    check(not (set(test["queries"]) & set(dev["queries"])), "wordnet: test and dev definitions differ")
    check(test["corpus"] == sorted(test["corpus"], key=lambda s: s.encode()) and test["corpus"] == test["corpus_ids"],
          "wordnet: corpus = sorted distinct lemmas, ids = lemmas")
    check(len(set(test["corpus"])) == len(test["corpus"]) > 140000, "wordnet: corpus holds all distinct lemmas")
    # qrels of a query = its synset's lemmas: the test pairs (definition -> lemma) say the same
    rel = {}
    for qi, ci in test["qrels"].tolist():
        rel.setdefault(test["queries"][qi], set()).add(test["corpus"][ci])
    q, p, _ = pairs["test"]
    from_pairs = {}
    for a, b in zip(q, p):
        if a in rel:
            from_pairs.setdefault(a, set()).add(b)
    check(from_pairs == rel, "wordnet: test qrels are the synsets' lemmas")
    check(os.path.getsize(os.path.join(w, "LICENSE")) > 1000 and
          "Princeton" in open(os.path.join(w, "LICENSE")).read(), "wordnet: LICENSE kept")
    print(f"wordnet sizes: pairs train {len(pairs['train'][0])}, dev {len(pairs['dev'][0])}, test {len(pairs['test'][0])}; "
          f"test.h5 {len(test['queries'])} queries x {len(test['corpus'])} docs, {len(test['qrels'])} qrels; "
          f"dev.h5 {len(dev['queries'])} queries, {len(dev['qrels'])} qrels")

    # ---- code
    c = os.path.join(roots[0], "datasets/code")
    cp = read_pairs(os.path.join(c, "pairs.h5"))
    held, allb = read_bench(os.path.join(c, "benchmarks/heldout.h5")), read_bench(os.path.join(c, "benchmarks/all.h5"))
    ctr_q, ctr_p, ctr_g = cp["train"]
    for s in ("dev", "test"):
        q, p, g = cp[s]
        check(not (set(g.tolist()) & set(ctr_g.tolist())), f"code: no {s} module in train")
        check(not (set(q) & set(ctr_q)), f"code: no {s} docstring in train")
    tq, tp, _ = cp["test"]
    check(held["queries"] == tq and held["corpus"] == tp, "code: heldout = test docstrings x test functions")
    check(allb["queries"] == tq and len(allb["corpus"]) == sum(len(cp[s][0]) for s in cp), "code: all = test docstrings x all functions")
    allq = [x for s in cp for x in cp[s][0]]
    check(len(set(allq)) == len(allq), "code: docstrings deduplicated")
    check(all(len(x.split()) >= 3 for x in allq), "code: docstrings have >= 3 words")
    check(all(x.lstrip().startswith(("def ", "async def ", "@")) for s in cp for x in cp[s][1]), "code: positives are functions")
    check(len(tq) > 50, "code: a useful test split")
    for qi, ci in allb["qrels"].tolist():
        check(allb["corpus"][ci] == tp[qi], "code: all.h5 qrels point at the query's function")
        break
    check("Python" in open(os.path.join(c, "LICENSE")).read(), "code: LICENSE kept")
    print(f"code sizes: pairs train {len(ctr_q)}, dev {len(cp['dev'][0])}, test {len(tq)}; "
          f"heldout.h5 {len(held['queries'])} x {len(held['corpus'])}; all.h5 {len(allb['queries'])} x {len(allb['corpus'])}")

    # ---- determinism
    d = same_files(os.path.join(roots[0], "datasets"), os.path.join(roots[1], "datasets"))
    check(d is None, f"same seed, identical datasets ({d})")
    for name, bench in (("wordnet", "benchmarks/test.h5"), ("code", "benchmarks/heldout.h5")):
        a = read_bench(os.path.join(roots[0], "datasets", name, bench))["query_ids"]
        b = read_bench(os.path.join(roots[2], "datasets", name, bench))["query_ids"]
        check(a != b, f"{name}: another seed, another split")
    for source, t in times.items():
        print(f"time {source}: " + ", ".join(f"{x:.2f} s" for x in t))
    shutil.rmtree(TMP, ignore_errors=True)
    print(f"{len(failures)} failed checks")
    sys.exit(1 if failures else 0)


main()
