"""serve_swap.py — foil-serve end to end: exact results, hot swaps under
load, a corrupt version refused, the router, garbage frames, `foil search`.

Index versions are written here in Python (h5py) in the format
storage/index.h documents (shards, manifest.h5 with zlib CRC-32s, CURRENT,
each file written to a temporary name and renamed), which doubles as a
check of that contract. Version v's ids are v·1,000,000 + row, so every
reply proves which version answered it.

usage: serve_swap.py BUILD_DIR SCRATCH_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import h5py
import numpy as np
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _generate():
    out = tempfile.mkdtemp(prefix="foil-pyproto-")
    subprocess.check_call(["protoc", "--python_out=" + out, "-I", os.path.join(REPO, "proto"),
                           "foil/v1/control.proto", "foil/v1/search.proto"])
    sys.path.insert(0, out)
    from foil.v1 import control_pb2, search_pb2  # noqa: E402
    return control_pb2, search_pb2


C, S = _generate()
failures = []
DIM, ROWS, SHARDS = 16, 1500, 2   # rows per version, split over the shards
VBASE = 1000000


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
            with h5py.File(tmp, "w") as f:
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
        with h5py.File(tmp, "w") as f:
            f.attrs["foil_format"] = "foil.index.manifest.v1"
            _attrs(f, name, version, len(parts), dim, sum(counts), dtype, normalized, checkpoint, step, model_hash)
            f.attrs["created"] = np.int64(time.time())
            f.create_dataset("shards", data=names, dtype=h5py.string_dtype("utf-8"))
            f["counts"] = np.asarray(counts, np.int64)
            f["crc32"] = np.asarray(crcs, np.int64)
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

    def __init__(self, build, root, args, name, index="ix"):
        self.log = os.path.join(root, name + ".log")
        self.info = os.path.join(root, "indexes", index, "serve.json") if index else None
        old = os.path.getmtime(self.info) if self.info and os.path.exists(self.info) else None
        self.p = subprocess.Popen([os.path.join(build, "foil-serve")] + args + ["--log", self.log])
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
        check(list(got.ids) == list(want_ids), "query %d: ids %s, numpy %s" % (i, list(got.ids)[:4], list(want_ids)[:4]))
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
            want, _ = brute(ids, x, q[j], k, *(filt or (None, None)))
            ok = ok and list(r.search.results[j].ids) == list(want)
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
                    want, _ = brute(ids, x, q[0], 10)
                    if list(res.ids if len(q) == 1 else r.search.results[0].ids) != list(want):
                        stats["wrong"].append(v)
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
    rc.close()
    r.stop("router")
    a.stop("backend a")
    b4.stop("backend b4")


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
             ("swaps under load", lambda: swaps_under_load(root, srv, cl, datas)),
             ("corrupt version", lambda: corrupt(root, srv, cl, datas)),
             ("router", lambda: router(build, root, cl, datas)),
             ("foil search", lambda: cli(build, root, srv, datas, 6))]
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
