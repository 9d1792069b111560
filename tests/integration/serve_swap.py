"""serve_swap.py — foil-serve end to end: exact results, hot swaps under
load, a corrupt version refused, the router, garbage frames, `foil search`.

Index versions are written here in Python (h5py) in the format
storage/index.h documents (shards, manifest.h5 with zlib CRC-32s, CURRENT,
each file written to a temporary name and renamed; the HDF5 files with
storage/h5io.h's integrity header, foilh5.py), which doubles as a
check of that contract. Version v's ids are v·1,000,000 + row, so every
reply proves which version answered it.

usage: serve_swap.py BUILD_DIR SCRATCH_DIR [FOIL_RUN MPIEXEC VOCAB [MPI FLAGS...]]
(with foil-run: also text queries over a real refreshed index, through a
cluster whose refresh job makes the coordinator SIGHUP the serve job)

FOIL_SERVE_DEVICE=cuda runs every server with --device cuda (the rows
searched on the GPU, model/vsearch_dev.h) and FOIL_SERVE_EXE names the
foil-serve to run (integration.serve_swap_shim: foil-serve-shim, whose
"GPU" is tests/gpu/cuda_shim.c). FOIL_SERVE_SHIM (that binary) also has
the text-query step run a --device cuda server of the real index beside
the CPU one: the same hits, the text encoded on the stand-in GPU. Without them, the "device" step checks
that foil-serve --device cuda refuses with CUDA's reason where no GPU is
visible, or answers exactly from the GPU where one is.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib

import h5py
import numpy as np
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


sys.path.insert(0, HERE)
from foilcluster import STATE, Cluster, pb  # noqa: E402  (protoc's control/worker classes)
import foilh5  # noqa: E402  (the integrity header shards and manifests need)


def _generate():
    """search.proto's classes beside foilcluster's (they share control_pb2)."""
    out = os.path.dirname(os.path.dirname(os.path.dirname(pb.control.__file__)))
    subprocess.check_call(["protoc", "--python_out=" + out, "-I", os.path.join(REPO, "proto"),
                           "foil/v1/search.proto"])
    from foil.v1 import search_pb2  # noqa: E402
    return pb.control, search_pb2


C, S = _generate()
failures = []
DIM, ROWS, SHARDS = 16, 1500, 2   # rows per version, split over the shards
VBASE = 1000000
DEVICE = os.environ.get("FOIL_SERVE_DEVICE")  # servers search there (--device)
EXE = os.environ.get("FOIL_SERVE_EXE")        # another foil-serve binary


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what, flush=True)
    return cond


# ---- the index format (storage/index.h) ------------------------------------------


def _publish_file(path, write):
    tmp = path + ".tmp.%d" % os.getpid()
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.rename(tmp, path)


def _attrs(f, name, version, n_shards, dim, count, dtype, normalized, checkpoint, step, model_hash):
    a = f.attrs
    a["name"] = name
    a["version"] = np.int64(version)
    a["n_shards"] = np.int64(n_shards)
    a["dim"] = np.int64(dim)
    a["count"] = np.int64(count)
    a["dtype"] = dtype
    a["normalized"] = np.int64(normalized)
    a["checkpoint"] = checkpoint
    a["step"] = np.int64(step)
    a["model_hash"] = model_hash


def write_version(root, name, version, parts, dtype="float32", normalized=1, checkpoint="", step=0,
                  model_hash="", current=True, corrupt_shard=None):
    """parts: per shard (ids int64 [n], vectors float32 [n, dim], keys list or None)."""
    d = os.path.join(root, "indexes", name, "v%d" % version)
    os.makedirs(d, exist_ok=True)
    dim = parts[0][1].shape[1]
    names, counts, crcs = [], [], []
    for r, (ids, vecs, keys) in enumerate(parts):
        fn = "shard_%d.h5" % r
        path = os.path.join(d, fn)

        def w(tmp, ids=ids, vecs=vecs, keys=keys, r=r):
            with h5py.File(tmp, "w", userblock_size=foilh5.USERBLOCK) as f:
                f.attrs["foil_format"] = "foil.index.shard.v1"
                _attrs(f, name, version, len(parts), dim, len(ids), dtype, normalized, checkpoint, step, model_hash)
                f.attrs["shard"] = np.int64(r)
                f["ids"] = np.asarray(ids, np.int64)
                if dtype == "float32":
                    f["vectors"] = vecs.astype(np.float32)
                elif dtype == "float16":
                    f["vectors"] = vecs.astype(np.float16)
                    f["exact"] = vecs.astype(np.float32)
                if keys is not None:
                    f.create_dataset("keys", data=keys, dtype=h5py.string_dtype("utf-8"))
            foilh5.sign(tmp)
        _publish_file(path, w)
        names.append(fn)
        counts.append(len(ids))
        crcs.append(zlib.crc32(open(path, "rb").read()) & 0xffffffff)
    if corrupt_shard is not None:   # damaged after its checksum was taken
        p = os.path.join(d, names[corrupt_shard])
        with open(p, "r+b") as f:
            f.seek(os.path.getsize(p) - 8)
            f.write(b"\xde\xad\xbe\xef\xde\xad\xbe\xef")

    def wm(tmp):
        with h5py.File(tmp, "w", userblock_size=foilh5.USERBLOCK) as f:
            f.attrs["foil_format"] = "foil.index.manifest.v1"
            _attrs(f, name, version, len(parts), dim, sum(counts), dtype, normalized, checkpoint, step, model_hash)
            f.attrs["created"] = np.int64(time.time())
            f.create_dataset("shards", data=names, dtype=h5py.string_dtype("utf-8"))
            f["counts"] = np.asarray(counts, np.int64)
            f["crc32"] = np.asarray(crcs, np.int64)
        foilh5.sign(tmp)
    _publish_file(os.path.join(d, "manifest.h5"), wm)
    if current:
        set_current(root, name, version)


def set_current(root, name, version):
    def w(tmp):
        with open(tmp, "w") as f:
            f.write("v%d\n" % version)
    _publish_file(os.path.join(root, "indexes", name, "CURRENT"), w)


def version_data(v, rows=ROWS, dim=DIM):
    """Version v's rows: ids v·1e6 + row, unit vectors, keys "doc-v-row";
    a few exact duplicates so that ties are exercised."""
    rng = np.random.default_rng(v)
    x = rng.standard_normal((rows, dim)).astype(np.float32)
    x[10] = x[20]
    x[11] = x[20]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(rows, dtype=np.int64) + v * VBASE
    keys = ["doc-%d-%d" % (v, r) for r in range(rows)]
    return ids, x, keys


def split(ids, x, keys, n=SHARDS):
    parts = []
    for r in range(n):
        sl = slice(r, None, n)
        parts.append((ids[sl], x[sl], keys[sl]))
    return parts


def publish(root, name, v, **kw):
    ids, x, keys = version_data(v)
    write_version(root, name, v, split(ids, x, keys), **kw)
    return ids, x, keys


def brute(ids, x, q, k, lo=None, hi=None):
    """numpy top-k with search.proto's order (score desc, lower id first),
    the scores computed in float32 as the server does."""
    keep = np.ones(len(ids), bool) if lo is None else (ids >= lo) & (ids <= hi)
    ids, x = ids[keep], x[keep]
    sc = (x @ q.astype(np.float32)).astype(np.float32)
    order = np.lexsort((ids, -sc))[:k]
    return ids[order], sc[order]


# ---- talking to foil-serve ---------------------------------------------------------


class Client:
    def __init__(self, ep, timeout_s=20):
        self.ep, self.timeout_s = ep, timeout_s
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(ep)
        self.rid = 1000

    def send(self, req):
        self.rid += 1
        req.request_id = self.rid
        self.sock.send(req.SerializeToString())
        return self.rid

    def recv(self, timeout_s=None):
        if not self.sock.poll(int((timeout_s or self.timeout_s) * 1000)):
            raise TimeoutError("no reply from %s" % self.ep)
        r = S.ServeReply()
        r.ParseFromString(self.sock.recv())
        return r

    def call(self, req, timeout_s=None):
        rid = self.send(req)
        while True:
            r = self.recv(timeout_s)
            if r.request_id == rid:
                return r

    def raw(self, frames, timeout_s=10):
        self.sock.send_multipart(frames)
        return self.recv(timeout_s)

    def close(self):
        self.sock.close(0)


def search_req(vectors=(), texts=(), k=10, rng=None):
    req = S.ServeRequest()
    req.search.k = k
    for v in vectors:
        req.search.queries.add().vector.extend([float(a) for a in v])
    for t in texts:
        req.search.queries.add().text = t
    if rng is not None:
        req.search.id_range, req.search.id_min, req.search.id_max = True, rng[0], rng[1]
    return req


def status(cl):
    req = S.ServeRequest()
    req.status.SetInParent()
    r = cl.call(req)
    assert r.WhichOneof("body") == "status", r
    return r.status


def error_of(r):
    return C.Code.Name(r.error.code) if r.WhichOneof("body") == "error" else None


class Serve:
    """One foil-serve (or router) process."""

    def __init__(self, build, root, args, name, index="ix", device=DEVICE, exe=None):
        self.log = os.path.join(root, name + ".log")
        self.info = os.path.join(root, "indexes", index, "serve.json") if index else None
        old = os.path.getmtime(self.info) if self.info and os.path.exists(self.info) else None
        if device and "--route" not in args:
            args = args + ["--device", device]
        self.p = subprocess.Popen([exe or EXE or os.path.join(build, "foil-serve")] + args + ["--log", self.log])
        self.ep = None
        deadline = time.time() + 60
        while time.time() < deadline and self.ep is None:
            if self.p.poll() is not None:
                raise RuntimeError("foil-serve exited with %d; see %s" % (self.p.returncode, self.log))
            if self.info and os.path.exists(self.info) and os.path.getmtime(self.info) != old:
                try:
                    d = json.load(open(self.info))
                    if d.get("pid") == self.p.pid:
                        self.ep = d["endpoint"]
                except ValueError:
                    pass
            if not self.info:   # read the endpoint from the log
                for line in open(self.log) if os.path.exists(self.log) else []:
                    if " on tcp://" in line:
                        self.ep = "tcp://" + line.split(" on tcp://")[1].split()[0]
            time.sleep(0.05)
        if self.ep is None:
            raise RuntimeError("foil-serve did not start; see %s" % self.log)

    def stop(self, what):
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(60)
        check(rc == 0, "%s exits 0 on SIGTERM (got %d; see %s)" % (what, rc, self.log))


def wait_version(cl, v, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if status(cl).version == v:
            return True
        time.sleep(0.05)
    return False


# ---- scenarios ---------------------------------------------------------------------


def exact_results(cl, data):
    ids, x, keys = data
    rng = np.random.default_rng(7)
    qs = rng.standard_normal((20, DIM)).astype(np.float32)
    qs[0] = x[20]   # a row with two duplicates: ties go to the lower id
    r = cl.call(search_req(qs, k=10))
    check(r.WhichOneof("body") == "search", "a search is answered: %s" % r)
    check(r.search.version == 1 and r.search.index == "ix", "version 1 of ix answers")
    for i, q in enumerate(qs):
        want_ids, want_sc = brute(ids, x, q, 10)
        got = r.search.results[i]
        check(same_hits(got, want_ids, want_sc, x, q, 1),
              "query %d: ids %s, numpy %s" % (i, list(got.ids)[:4], list(want_ids)[:4]))
        check(np.allclose(got.scores, want_sc, atol=1e-5), "query %d: scores match numpy" % i)
        check(list(got.keys) == ["doc-1-%d" % (a - VBASE) for a in got.ids], "query %d: keys are the rows' keys" % i)
    check(list(r.search.results[0].ids[:3]) == [VBASE + 10, VBASE + 11, VBASE + 20], "ties: lower id first")
    # an id filter, k beyond the rows in range, the default k
    lo, hi = VBASE + 100, VBASE + 104
    r = cl.call(search_req(qs[:3], k=50, rng=(lo, hi)))
    for i in range(3):
        want_ids, _ = brute(ids, x, qs[i], 50, lo, hi)
        check(list(r.search.results[i].ids) == list(want_ids), "filtered query %d: the 5 rows in range" % i)
    r = cl.call(search_req(qs[:1], k=0))
    check(len(r.search.results[0].ids) == 10, "k 0 means 10")


def batching(cl, data):
    """50 requests sent at once (mixed k and filters) are batched together;
    each still gets exactly its own answer."""
    ids, x, _ = data
    rng = np.random.default_rng(11)
    sent = {}
    for i in range(50):
        q = rng.standard_normal((1 + i % 3, DIM)).astype(np.float32)
        k = [3, 10, 7][i % 3]
        filt = (VBASE + 200, VBASE + 900) if i % 4 == 0 else None
        sent[cl.send(search_req(q, k=k, rng=filt))] = (q, k, filt)
    got = 0
    while got < 50:
        r = cl.recv()
        q, k, filt = sent.pop(r.request_id)
        got += 1
        ok = r.WhichOneof("body") == "search" and len(r.search.results) == len(q)
        for j in range(len(q)) if ok else []:
            want, wsc = brute(ids, x, q[j], k, *(filt or (None, None)))
            ok = ok and same_hits(r.search.results[j], want, wsc, x, q[j], 1)
        check(ok, "pipelined request %d gets its own exact answer" % r.request_id)
    check(not sent, "every pipelined request is answered once")


def garbage(cl, ep):
    bad = [([b"\xff\xfe\xfd garbage"], "INVALID_ARGUMENT"),
           ([b""], "INVALID_ARGUMENT"),                       # an empty ServeRequest names no operation
           ([b"a", b"b"], "INVALID_ARGUMENT")]                # two payload frames
    for frames, code in bad:
        r = cl.raw(frames)
        check(error_of(r) == code, "garbage %r → %s (got %s)" % (frames[0][:8], code, error_of(r)))
    v = np.zeros(DIM, np.float32)
    cases = [(search_req([v[:5]]), "INVALID_ARGUMENT", "dimension"),
             (search_req([v], k=1001), "INVALID_ARGUMENT", "k 1001"),
             (search_req([v] * 1025), "INVALID_ARGUMENT", "1024"),
             (search_req([]), "INVALID_ARGUMENT", "no queries"),
             (search_req(texts=["x" * 9000]), "INVALID_ARGUMENT", "8192"),
             (search_req(texts=["hello"]), "FAILED_PRECONDITION", "text"),
             (search_req([v], rng=(5, 4)), "INVALID_ARGUMENT", "empty")]
    for req, code, words in cases:
        r = cl.call(req)
        check(error_of(r) == code and words in r.error.message,
              "%s → %s mentioning '%s' (got %s: %s)" % (words, code, words, error_of(r), r.error.message))
    q = search_req([v])
    q.search.queries[0].text = "both"
    r = cl.call(q)
    check(error_of(r) == "INVALID_ARGUMENT", "vector and text in one query → INVALID_ARGUMENT")
    big = b"\x12" + b"\x00" * (17 << 20)
    r = cl.raw([big], timeout_s=20)
    check(error_of(r) == "RESOURCE_EXHAUSTED", "a 17 MiB frame → RESOURCE_EXHAUSTED (got %s)" % error_of(r))
    check(status(cl).version >= 1, "still answering after garbage")


def same_hits(got, want, wsc, x, q, v):
    """The reply's hits are numpy's, or differ from them only by the order
    of near-ties (scores within float32 rounding of each other: a GPU sums
    in another order than numpy): rank by rank the same scores, and each
    hit's own numpy score is the one the reply gives it."""
    if list(got.ids) == list(want):
        return True
    tol = 1e-5
    own = [float(x[a - v * VBASE] @ q) for a in got.ids]
    return (len(got.ids) == len(want) and all(abs(g - w) <= tol for g, w in zip(got.scores, wsc))
            and all(abs(o - g) <= tol for o, g in zip(own, got.scores)))


def swaps_under_load(root, srv, cl, datas):
    """4 client threads query while versions 2, 3, 4 are published (watch,
    SIGHUP, ReloadRequest): no failed reply, no mixed-version reply."""
    stop = threading.Event()
    stats = {"ok": 0, "failed": [], "mixed": [], "wrong": [], "backwards": 0, "lat": [], "versions": set()}
    lock = threading.Lock()

    def load(seed):
        c = Client(srv.ep)
        rng = np.random.default_rng(seed)
        last = 0
        while not stop.is_set():
            q = rng.standard_normal((1 + seed % 2, DIM)).astype(np.float32)
            t0 = time.time()
            try:
                r = c.call(search_req(q, k=10))
            except TimeoutError as e:
                with lock:
                    stats["failed"].append(str(e))
                continue
            dt = time.time() - t0
            with lock:
                stats["lat"].append((t0, dt))
                if r.WhichOneof("body") != "search":
                    stats["failed"].append(r.error.message)
                    continue
                v = r.search.version
                stats["versions"].add(v)
                stats["ok"] += 1
                if v < last:
                    stats["backwards"] += 1
                last = v
                for res in r.search.results:
                    if any(not (v * VBASE <= a < v * VBASE + ROWS) for a in res.ids):
                        stats["mixed"].append((v, list(res.ids)))
                # exactness against the version the reply names
                if v in datas and stats["ok"] % 7 == 0:
                    ids, x, _ = datas[v]
                    want, wsc = brute(ids, x, q[0], 10)
                    got = r.search.results[0]
                    if not same_hits(got, want, wsc, x, q[0], v):
                        stats["wrong"].append((v, list(got.ids), list(want), list(got.scores), list(wsc)))
        c.close()

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    t_swaps = time.time()
    datas[2] = publish(root, "ix", 2)                      # the watch picks it up
    check(wait_version(cl, 2), "v2 served after CURRENT names it (watch)")
    time.sleep(0.3)
    datas[3] = publish(root, "ix", 3)
    srv.p.send_signal(signal.SIGHUP)                       # SIGHUP loads it now
    check(wait_version(cl, 3), "v3 served after SIGHUP")
    time.sleep(0.3)
    ids, x, keys = version_data(4)
    write_version(root, "ix", 4, split(ids, x, keys), current=False)
    datas[4] = (ids, x, keys)
    req = S.ServeRequest()
    req.reload.version = 4
    r = cl.call(req, timeout_s=60)                         # a ReloadRequest (pinned version)
    check(r.WhichOneof("body") == "status" and r.status.version == 4,
          "ReloadRequest{version 4} answers after the swap with version 4 (%s)" % r)
    set_current(root, "ix", 4)
    t_end = time.time()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    during = sorted(dt for t0, dt in stats["lat"] if t_swaps <= t0 <= t_end)
    p99 = during[int(0.99 * (len(during) - 1))] * 1e3 if during else float("nan")
    p50 = during[len(during) // 2] * 1e3 if during else float("nan")
    print("load: %d replies (%d during the swaps), versions %s; latency during swaps p50 %.2f ms, p99 %.2f ms"
          % (stats["ok"], len(during), sorted(stats["versions"]), p50, p99), flush=True)
    check(not stats["failed"], "no failed reply under load (%s)" % stats["failed"][:3])
    check(not stats["mixed"], "no mixed-version reply (%s)" % stats["mixed"][:2])
    check(not stats["wrong"], "replies are exact for the version they name (%s)" % stats["wrong"][:5])
    check(stats["backwards"] == 0, "a client never sees an older version after a newer one")
    check({1, 2, 3, 4} <= stats["versions"], "every version answered some queries: %s" % sorted(stats["versions"]))
    st = status(cl)
    check(st.swaps == 3 and st.version == 4 and st.count == ROWS and list(st.shards) == [0, 1],
          "status after the swaps: v4, 3 swaps, %d rows, shards 0,1 (%s)" % (ROWS, st))


def corrupt(root, srv, cl, datas):
    publish(root, "ix", 5, corrupt_shard=1)   # CURRENT → v5, whose shard 1 fails its CRC
    time.sleep(2.0)                           # several watch turns
    st = status(cl)
    check(st.version == 4, "a corrupt v5 is refused; v4 keeps serving (status says v%d)" % st.version)
    # ... by the watch itself: the ReloadRequest{version 4} of the swaps must not have pinned the server
    # (review-serve #1), so the watch tried v5 before any explicit reload below
    log = open(srv.log).read()
    check("loading ix v5" in log and "v5 refused" in log,
          "the watch (not only the explicit reload below) tried the corrupt v5 and refused it: %s"
          % log.strip().splitlines()[-3:])
    r = cl.call(search_req([datas[4][1][3]], k=1))
    check(r.search.version == 4 and list(r.search.results[0].ids) == [4 * VBASE + 3], "searches still answer from v4")
    req = S.ServeRequest()
    req.reload.SetInParent()
    r = cl.call(req, timeout_s=60)
    check(error_of(r) is not None and "CRC" in r.error.message and "v4 keeps serving" in r.error.message,
          "an explicit reload of the corrupt version says why (%s)" % r.error.message)
    log = open(srv.log).read()
    check("v5 refused" in log, "the refusal is logged")
    datas[6] = publish(root, "ix", 6)
    check(wait_version(cl, 6), "the next good version (v6) is taken")


def router(build, root, cl, datas):
    """Two servers pinned to v6 holding shards {0} and {1}, a router in front:
    the same answers as one server holding both."""
    a = Serve(build, root, ["--index", "ix", "--root", root, "--version", "6", "--shards", "0", "--bind",
                            "tcp://127.0.0.1:*", "--no-watch"], "serve-a", index=None)
    b = Serve(build, root, ["--index", "ix", "--root", root, "--version", "6", "--shards", "1", "--bind",
                            "tcp://127.0.0.1:*", "--no-watch"], "serve-b", index=None)
    r = Serve(build, root, ["--route", "%s,%s" % (a.ep, b.ep), "--bind", "tcp://127.0.0.1:*"], "router", index=None)
    rc = Client(r.ep)
    qs = np.random.default_rng(5).standard_normal((25, DIM)).astype(np.float32)
    qs[0] = datas[6][1][20]
    for k in (1, 10, 100):
        one = cl.call(search_req(qs, k=k)).search
        two = rc.call(search_req(qs, k=k))
        check(two.WhichOneof("body") == "search" and two.search.version == 6, "the router answers from v6")
        same = all(list(x.ids) == list(y.ids) and np.allclose(x.scores, y.scores, atol=0) and list(x.keys) == list(y.keys)
                   for x, y in zip(one.results, two.search.results))
        check(same and len(one.results) == len(two.search.results), "router over {0},{1} == one server, k=%d" % k)
    st = status(rc)
    check(list(st.shards) == [0, 1] and st.count == ROWS and st.version == 6, "router status sums its backends")
    check(error_of(rc.raw([b"\xff\xfe"])) == "INVALID_ARGUMENT", "the router answers garbage with an error")
    check(error_of(rc.call(search_req([np.zeros(3)]))) == "INVALID_ARGUMENT", "a backend's error is passed on")
    # mixed versions: shard 1 from v4 → the router never mixes, it refuses
    b.stop("backend b")
    b4 = Serve(build, root, ["--index", "ix", "--root", root, "--version", "4", "--shards", "1", "--bind",
                             b.ep, "--no-watch"], "serve-b4", index=None)
    t0 = time.time()
    x = rc.call(search_req(qs[:2], k=5))
    check(error_of(x) == "UNAVAILABLE" and "different versions" in x.error.message,
          "backends on v6 and v4 → UNAVAILABLE, not a mixed reply (%s)" % x)
    print("router: mixed versions refused after %.0f ms of retries" % ((time.time() - t0) * 1e3), flush=True)
    # ... and a swap on one backend heals it: b4 reloads v6
    req = S.ServeRequest()
    req.reload.version = 6
    Client(b4.ep).call(req, timeout_s=60)
    x = rc.call(search_req(qs[:2], k=5))
    check(x.WhichOneof("body") == "search" and x.search.version == 6, "after the backend swaps, the router answers")
    # a pinned server stays on its version through SIGHUP (the coordinator sends one after every refresh;
    # review-serve #2); --shards 0,1: all shards, but no serve.json of its own
    p = Serve(build, root, ["--index", "ix", "--root", root, "--version", "4", "--shards", "0,1", "--bind",
                            "tcp://127.0.0.1:*"], "serve-pinned", index=None)
    pc = Client(p.ep)
    check(status(pc).version == 4, "a --version 4 server serves v4")
    p.p.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    check(status(pc).version == 4, "a --version 4 server still serves v4 after SIGHUP, CURRENT being v6 (got v%d)"
          % status(pc).version)
    check("pinned to ix v4" in open(p.log).read(), "its log says SIGHUP did not reload (pinned)")
    pc.close()
    p.stop("pinned server")
    rc.close()
    r.stop("router")
    a.stop("backend a")
    b4.stop("backend b4")


def publish_shards(root, v, n):
    ids, x, keys = version_data(v)
    write_version(root, "ix", v, split(ids, x, keys, n))
    return ids, x, keys


def router_shards(build, root, datas):
    """Backends of shards {0} and {1} that follow CURRENT, a router in front,
    a client querying all along (review-serve #3). A version of 3 shards,
    then one of 1: the backends refuse both (their shard map no longer fits)
    and the router keeps answering the old version whole, never with rows
    missing, never failing; a version of 2 shards again is taken. A router
    over backends that miss shard 1 answers FAILED_PRECONDITION naming it."""
    cur = int(open(os.path.join(root, "indexes", "ix", "CURRENT")).read().strip()[1:])
    a = Serve(build, root, ["--index", "ix", "--root", root, "--shards", "0", "--bind", "tcp://127.0.0.1:*"],
              "follow-a", index=None)
    b = Serve(build, root, ["--index", "ix", "--root", root, "--shards", "1", "--bind", "tcp://127.0.0.1:*"],
              "follow-b", index=None)
    r = Serve(build, root, ["--route", "%s,%s" % (a.ep, b.ep), "--bind", "tcp://127.0.0.1:*"], "router-follow",
              index=None)
    try:
        router_shards_checks(build, root, datas, cur, a, b, r)
    finally:   # a failed check above must not leave these running
        for p, what in ((r, "router (following)"), (a, "backend a (following)"), (b, "backend b (following)")):
            if p.p.poll() is None:
                p.stop(what)


def router_shards_checks(build, root, datas, cur, a, b, r):
    rc = Client(r.ep)
    stop = threading.Event()
    seen = {"ok": 0, "bad": [], "versions": set()}

    def load():
        c = Client(r.ep)
        rng = np.random.default_rng(9)
        while not stop.is_set():
            q = rng.standard_normal(DIM).astype(np.float32)
            x = c.call(search_req([q], k=3))
            if x.WhichOneof("body") != "search":
                seen["bad"].append(x.error.message)
                continue
            seen["ok"] += 1
            v = x.search.version
            seen["versions"].add(v)
            data = datas.get(v)
            if data is None:
                seen["bad"].append("v%d: a version this test did not write" % v)
                continue
            want, wsc = brute(data[0], data[1], q, 3)
            if not same_hits(x.search.results[0], want, wsc, data[1], q, v):
                seen["bad"].append("v%d: ids %s, numpy %s" % (v, list(x.search.results[0].ids), list(want)))
        c.close()

    t = threading.Thread(target=load)
    t.start()
    try:
        time.sleep(0.5)
        v3s, v1s, v2s = cur + 1, cur + 2, cur + 3
        datas[v3s] = publish_shards(root, v3s, 3)
        time.sleep(1.5)
        st = status(rc)
        check(st.version == cur and st.count == ROWS and list(st.shards) == [0, 1] and st.total_shards == 2,
              "a 3-shard v%d is refused by both backends; the router serves v%d whole (%s)" % (v3s, cur, st))
        datas[v1s] = publish_shards(root, v1s, 1)
        time.sleep(1.5)
        st = status(rc)
        check(st.version == cur and st.count == ROWS and not st.problem,
              "a 1-shard v%d is refused too: no outage, v%d whole (%s)" % (v1s, cur, st))
        log = open(a.log).read()
        check("has 3 shard(s)" in log and "restart every backend" in log, "the backend's log says why and what to do")
        datas[v2s] = publish_shards(root, v2s, 2)
        check(wait_version(rc, v2s), "a 2-shard v%d is taken by both" % v2s)
        time.sleep(0.5)
    finally:
        stop.set()
        t.join()
    print("router shards: %d searches, versions %s" % (seen["ok"], sorted(seen["versions"])), flush=True)
    check(not seen["bad"], "every router search answered whole from one version (%s)" % seen["bad"][:3])
    check(v3s not in seen["versions"] and v1s not in seen["versions"], "never from the mis-sharded versions")
    # backends that miss shard 1: a clear refusal, never a partial reply
    r2 = Serve(build, root, ["--route", a.ep, "--bind", "tcp://127.0.0.1:*"], "router-half", index=None)
    c2 = Client(r2.ep)
    try:
        x = c2.call(search_req([np.ones(DIM, np.float32)], k=3))
        check(error_of(x) == "FAILED_PRECONDITION" and "held by no backend: 1" in x.error.message,
              "a router over shard 0 only → FAILED_PRECONDITION naming shard 1 (%s)" % x)
        check("held by no backend: 1" in getattr(status(c2), "problem", ""), "... and its status says so")
        check("held by no backend" in open(r2.log).read(), "... and its log")
    finally:
        c2.close()
        r2.stop("router over shard 0")
    # more than 64 backends: refused, not cut
    p = subprocess.run([EXE or os.path.join(build, "foil-serve"), "--route",
                        ",".join("tcp://127.0.0.1:%d" % (20000 + i) for i in range(65))],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 2 and "more than 64" in p.stderr, "--route with 65 endpoints exits 2 (%d %s)"
          % (p.returncode, p.stderr))
    rc.close()


def cli(build, root, srv, datas, v):
    ids, x, keys = datas[v]
    vf = os.path.join(root, "q.txt")
    qs = np.random.default_rng(3).standard_normal((2, DIM)).astype(np.float32)
    with open(vf, "w") as f:
        for q in qs:
            f.write(" ".join("%.9g" % a for a in q) + "\n")
    env = dict(os.environ, FOIL_ROOT=root)
    env.pop("FOIL_SERVE", None)
    foil = os.path.join(build, "foil")
    p = subprocess.run([foil, "search", "--vector-file", vf, "-k", "3", "--index", "ix"], env=env,
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "foil search --vector-file exits 0 (%s)" % p.stderr)
    print(p.stdout, flush=True)
    check(("version %d" % v) in p.stdout, "foil search prints the version")
    rows = [l.split() for l in p.stdout.splitlines() if l.strip() and l.split()[0].isdigit()]
    want = [brute(ids, x, q, 3)[0] for q in qs]
    check([int(r[1]) for r in rows] == [int(a) for w in want for a in w], "foil search: ids are numpy's")
    check(rows and rows[0][2] == keys[int(rows[0][1]) - v * VBASE], "foil search prints keys")
    env["FOIL_SERVE"] = srv.ep   # the server from the environment, JSON out
    p = subprocess.run([foil, "search", "--vector-file", vf, "-k", "2", "--json", "--id-range",
                        "%d:%d" % (v * VBASE, v * VBASE + 99)], env=env, capture_output=True, text=True, timeout=60)
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    check(j.get("version") == v and len(j.get("results", [])) == 2 and
          all(v * VBASE <= a <= v * VBASE + 99 for r in j["results"] for a in r["ids"]),
          "foil search --json --id-range (%s)" % (p.stderr or p.stdout[:200]))
    p = subprocess.run([foil, "search", "hello", "--index", "ix"], env=dict(env, FOIL_SERVE=""), capture_output=True,
                       text=True, timeout=60)
    check(p.returncode == 7 and "text" in p.stderr, "a text query without a checkpoint: exit 7 (%d %s)" % (p.returncode, p.stderr))
    p = subprocess.run([foil, "search", "--vector-file", vf, "--server", "tcp://127.0.0.1:1", "--timeout", "0.5"],
                       env=env, capture_output=True, text=True, timeout=60)
    check(p.returncode == 10, "no server: exit 10 UNAVAILABLE (%d)" % p.returncode)


def text_queries(build, scratch, foil_run, mpiexec, vocab, mpi_flags):
    """A real index: a tiny checkpoint, `foil-run refresh` of the code corpus,
    foil-serve as a job of a cluster. Text queries are encoded with the
    index's checkpoint (a document's own text finds it); a refresh job that
    completes makes the coordinator SIGHUP the serve job, which swaps; a
    checkpoint whose parameters no longer hash to the shards' model_hash is
    refused for text (vectors still served)."""
    # the checkpoint the refresh job reads lives in text-work: allowed
    cl = Cluster(build, os.path.join(os.path.abspath(scratch), "text-root"),
                 allow_dirs=[os.path.join(os.path.abspath(scratch), "text-work")])
    root = cl.root
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    foil = os.path.join(build, "foil")
    subprocess.run([foil, "data", "prepare", "code", "--root", root], check=True, stdout=subprocess.DEVNULL)
    work = os.path.join(os.path.abspath(scratch), "text-work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    train = {"kind": "pretrain", "name": "serve-train", "seed": 5,
             "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_len": 32, "tokenizer": vocab},
             "data": {"dataset": "code", "benchmark": ""}, "batch_per_rank": 16, "steps": 20,
             "optimizer": {"lr": 0.001}, "log_every_steps": 10, "threads": 1}
    train_dir = os.path.join(work, "train")
    json.dump(train, open(os.path.join(work, "train.json"), "w"))
    subprocess.run([mpiexec, *mpi_flags, "-np", "1", foil_run, "pretrain", os.path.join(work, "train.json"), "--root",
                    root, "--job-dir", train_dir, "--quiet"], check=True, env=env)
    ckpt = os.path.join(train_dir, "ckpt", "step_20.h5")
    refresh = {"kind": "refresh", "name": "code", "checkpoint": train_dir,
               "corpus": {"dataset": "code", "benchmark": "all"}, "dtype": "float16", "batch": 64,
               "keep_versions": 3, "threads": 1, "job": {"ranks": 1}}
    rspec = os.path.join(work, "refresh.json")
    json.dump(refresh, open(rspec, "w"))
    subprocess.run([mpiexec, *mpi_flags, "-np", "1", foil_run, "refresh", rspec, "--root", root, "--job-dir",
                    os.path.join(work, "job-refresh"), "--quiet"], check=True, env=env)
    bench = h5py.File(os.path.join(root, "datasets", "code", "benchmarks", "all.h5"), "r")
    corpus_ids = [x.decode() for x in bench["corpus_ids"][()]]
    corpus = [x.decode() for x in bench["corpus"][()]]
    cl.start_coordinator()
    try:
        cl.start_worker("n1", slots=4, extra_args=["--mpirun-args", " ".join(mpi_flags)])
        for bad, words in (('{"name": "code"}', "index"), ('{"index": "../x"}', "index"), ('[1]', "JSON object")):
            try:
                cl.call("submit", C.SubmitRequest(spec=C.JobSpec(kind="serve", spec_json=bad)))
                check(False, "a serve spec %s is refused" % bad)
            except Exception as e:   # foilcluster.ApiError
                check(getattr(e, "code", "") == "INVALID_ARGUMENT" and words in str(e),
                      "a serve spec %s is refused naming %s (%s)" % (bad, words, e))
        sspec = os.path.join(work, "serve.json")
        json.dump({"kind": "serve", "name": "serve-code", "index": "code", "bind": "tcp://127.0.0.1:*",
                   "watch": False}, open(sspec, "w"))
        r = cl.foil("submit", sspec)
        check(r.returncode == 0, "foil submit of a serve job (%s)" % r.stderr.strip())
        sid = int(r.stdout.strip())
        cl.wait_state(sid, {"JOB_RUNNING"}, 30)
        info = os.path.join(root, "indexes", "code", "serve.json")
        deadline = time.time() + 60
        while not os.path.exists(info) and time.time() < deadline:
            time.sleep(0.1)
        ep = json.load(open(info))["endpoint"]
        c = Client(ep)
        st = status(c)
        check(st.version == 1 and st.text and st.dtype == "float16" and st.count == len(corpus),
              "the serve job serves code v1, float16, text on (%s)" % st)
        docs = [5, 1234, 4000]
        rep = c.call(search_req(texts=[corpus[j] for j in docs], k=5))
        check(rep.WhichOneof("body") == "search", "text queries answered (%s)" % rep.error.message)
        for j, res in zip(docs, rep.search.results if rep.WhichOneof("body") == "search" else []):
            top = res.scores[0]
            check(top > 0.999 and (j in list(res.ids)[:3]) and abs(res.scores[list(res.ids).index(j)] - top) < 1e-4,
                  "the text of document %d finds it first (ids %s, scores %s)" % (j, list(res.ids), list(res.scores)))
            check(res.keys[list(res.ids).index(j)] == corpus_ids[j], "its key is the corpus id")
        if os.environ.get("FOIL_SERVE_SHIM"):  # the same text queries encoded and searched on the stand-in GPU
            g = Serve(build, root, ["--index", "code", "--root", root, "--shards", "0", "--bind", "tcp://127.0.0.1:*",
                                    "--no-watch"], "serve-code-gpu", index=None, device="cuda",
                      exe=os.environ["FOIL_SERVE_SHIM"])
            cg = Client(g.ep)
            rg = cg.call(search_req(texts=[corpus[j] for j in docs], k=5))
            ok = rg.WhichOneof("body") == "search" and rep.WhichOneof("body") == "search"
            # float32 sums in another order than the CPU's rescoring: scores rank by rank to 1e-5 (near-ties
            # may swap), and the same first hit (the text's own document, checked above on the CPU)
            check(ok and all(np.allclose(x.scores, y.scores, rtol=0, atol=1e-5) and x.ids[0] == y.ids[0]
                             for x, y in zip(rg.search.results, rep.search.results)),
                  "--device cuda (stand-in): text queries encoded and searched there give the CPU's hits")
            check("text encoded there too" in open(g.log).read(), "its log says text is encoded on the GPU")
            cg.close()
            g.stop("foil-serve --device cuda (text)")
        p = cl.foil("search", corpus[5], "-k", "3", "--index", "code")
        check(p.returncode == 0 and corpus_ids[5] in p.stdout, "foil search TEXT prints the document's key (%s)"
              % (p.stderr or p.stdout))
        # a refresh job that completes tells the serve job (SIGHUP; it does not watch)
        refresh["job"] = {"ranks": 1}
        refresh["checkpoint"] = os.path.abspath(train_dir)
        json.dump(refresh, open(rspec, "w"))
        r = cl.foil("submit", rspec)
        rid = int(r.stdout.strip())
        j = cl.wait_state(rid, {"JOB_COMPLETED", "JOB_FAILED", "JOB_CANCELLED", "JOB_NODE_FAIL"}, 120)
        check(STATE.Name(j.state) == "JOB_COMPLETED", "the refresh job COMPLETED (%s)" % j.reason)
        check(wait_version(c, 2, 30), "the serve job swapped to v2 after the refresh job (SIGHUP)")
        check("SIGHUP" in cl.log(sid), "its log says SIGHUP")
        check("SIGHUP (refresh job %d published index code)" % rid in open(os.path.join(root, "coordinator.log")).read(),
              "the coordinator logs why it signalled")
        # the checkpoint changes under the index: text refused, vectors served
        with h5py.File(ckpt, "r+") as f:
            name = sorted(k for k in f["model"].keys() if isinstance(f["model"][k], h5py.Dataset))[0]
            d = f["model"][name]
            x = d[()]
            x.flat[0] += 0.5
            d[...] = x
        foilh5.sign(ckpt)   # as if foil had published it so (unsigned, the integrity header refuses it)
        other = Serve(build, root, ["--index", "code", "--root", root, "--shards", "0", "--bind", "tcp://127.0.0.1:*",
                                    "--no-watch"], "serve-mismatch", index=None)
        c2 = Client(other.ep)
        st = status(c2)
        check(not st.text, "a checkpoint that changed after the refresh: text off")
        r2 = c2.call(search_req(texts=["def add(a, b):"]))
        check(error_of(r2) == "FAILED_PRECONDITION" and "hashes to" in r2.error.message and "refresh the index again"
              in r2.error.message, "text query → FAILED_PRECONDITION with the reason (%s)" % r2.error.message)
        print("model hash refusal: %s" % r2.error.message, flush=True)
        r2 = c2.call(search_req([np.ones(st.dim, np.float32)], k=3))
        check(r2.WhichOneof("body") == "search" and len(r2.search.results[0].ids) == 3, "vectors are still served")
        c2.close()
        other.stop("foil-serve (mismatch)")
        c.close()
        cl.call("cancel", C.CancelRequest(job_id=sid))
        j = cl.wait_state(sid, {"JOB_CANCELLED", "JOB_FAILED", "JOB_COMPLETED"}, 30)
        check(STATE.Name(j.state) == "JOB_CANCELLED", "the serve job is cancelled (%s)" % STATE.Name(j.state))
    finally:
        codes = cl.stop()
    check(all(v == 0 for v in codes.values()), "daemons exit cleanly: %s" % codes)


def device(build, root, srv, cl, data):
    """Where the rows are searched. With FOIL_SERVE_DEVICE the server says
    it searches on the GPU; without, a foil-serve --device cuda beside the
    CPU one either refuses (no GPU visible, or no CUDA in this build) with
    the reason, or (a GPU) answers exactly as the CPU does."""
    if DEVICE:
        log = open(srv.log).read()
        check("searching on the GPU" in log, "foil-serve --device %s searches on the GPU: %s" % (DEVICE, log[-400:]))
        return
    # all shards named: a server that leaves serve.json to the running one
    args = ["--index", "ix", "--root", root, "--bind", "tcp://127.0.0.1:*", "--no-watch", "--shards", "0,1"]
    try:
        gpu = Serve(build, root, args, "serve-cuda", index=None, device="cuda")
    except RuntimeError:
        log = open(os.path.join(root, "serve-cuda.log")).read()
        check("CUDA" in log, "without a GPU, --device cuda refuses with CUDA's reason: %s" % log[-300:])
        print("device: no GPU here; --device cuda refused:", log.strip().splitlines()[-1][:200], flush=True)
        return
    gcl = Client(gpu.ep)
    try:
        check("searching on the GPU" in open(gpu.log).read(), "foil-serve --device cuda says it searches on the GPU")
        exact_results(gcl, data)
    finally:
        gcl.close()
        gpu.stop("foil-serve --device cuda")


def main():
    build, scratch = sys.argv[1], sys.argv[2]
    root = os.path.join(os.path.abspath(scratch), "root")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    datas = {1: publish(root, "ix", 1)}
    srv = Serve(build, root, ["--index", "ix", "--root", root, "--bind", "tcp://127.0.0.1:*", "--batch-max", "64"],
                "serve")
    cl = Client(srv.ep)
    steps = [("exact results", lambda: exact_results(cl, datas[1])),
             ("batching", lambda: batching(cl, datas[1])),
             ("garbage", lambda: garbage(cl, srv.ep)),
             ("device", lambda: device(build, root, srv, cl, datas[1])),
             ("swaps under load", lambda: swaps_under_load(root, srv, cl, datas)),
             ("corrupt version", lambda: corrupt(root, srv, cl, datas)),
             ("router", lambda: router(build, root, cl, datas)),
             ("foil search", lambda: cli(build, root, srv, datas, 6)),
             ("router shards", lambda: router_shards(build, root, datas))]
    if len(sys.argv) > 5:   # FOIL_RUN MPIEXEC VOCAB [MPI FLAGS]: a real refreshed index
        steps.append(("text queries", lambda: text_queries(build, scratch, sys.argv[3], sys.argv[4], sys.argv[5],
                                                           sys.argv[6:])))
    try:
        for name, fn in steps:
            t0 = time.time()
            n = len(failures)
            fn()
            print("%-20s %s (%.1f s)" % (name, "ok" if len(failures) == n else "FAILED", time.time() - t0), flush=True)
    finally:
        cl.close()
        if srv.p.poll() is None:
            srv.stop("foil-serve")
    check(not os.path.exists(srv.info), "serve.json is removed when foil-serve stops")
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
