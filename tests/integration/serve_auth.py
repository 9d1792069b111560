"""serve_auth.py — CURVE on foil-serve and its router (common/auth.h),
driven by clients/python/search_client.py and `foil search` with keys
from `foil keys gen`.

Proves: readers search, an unknown key and a plain client get no answer
(the server logs the refusal), a worker key gets PERMISSION_DENIED, only
admins reload; a router with its own key pair fans out to CURVE shard
servers and refuses unknown keys itself; SIGHUP adds a key; garbage and
truncated handshakes leave a good client working; without keys a
non-loopback bind is refused.

usage: serve_auth.py BUILD_DIR SCRATCH_DIR
"""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "clients", "python"))
import serve_swap as sw  # noqa: E402  (the index format, writing versions from Python)
from cluster_auth import storm  # noqa: E402
from foilcluster import check, failures, key_set, report  # noqa: E402
from search_client import SearchClient, SearchError  # noqa: E402


def refused(client, what):
    try:
        client.search(vectors=[[0.0] * sw.DIM], k=1)
        check(False, what + ": got an answer")
    except TimeoutError:
        check(True, what)
    except SearchError as e:
        check(False, "%s: got an error reply %s (the request reached foil code)" % (what, e.code))
    client.close()


def denied(fn, what):
    try:
        fn()
        check(False, what + ": succeeded")
    except SearchError as e:
        check(e.code == "PERMISSION_DENIED", "%s (%s: %s)" % (what, e.code, e.message))


def main():
    build, scratch = sys.argv[1], sys.argv[2]
    shutil.rmtree(scratch, ignore_errors=True)
    root = os.path.join(scratch, "root")
    os.makedirs(root)
    foil = os.path.join(build, "foil")
    roles = [("srv", "admin"), ("root", "admin"), ("rita", "reader"), ("w1", "worker"), ("eve", "reader"),
             ("rtr", "admin")]
    keys, allow, k = key_set(build, scratch, "srv", roles, allowed=("root", "rita", "w1", "rtr"))
    srv_pub = os.path.join(keys, "srv.key")
    curve = ["--curve-key", os.path.join(keys, "srv.key_secret"), "--allow-keys", allow]
    ids, x, _ = sw.publish(root, "ix", 1)

    # without keys: loopback only
    p = subprocess.run([os.path.join(build, "foil-serve"), "--index", "ix", "--root", root, "--bind",
                        "tcp://0.0.0.0:*", "--no-text"], capture_output=True, text=True, timeout=60)
    check(p.returncode == 5 and "without authentication" in p.stderr,
          "foil-serve refuses a non-loopback bind without CURVE (rc %d)" % p.returncode)

    s = sw.Serve(build, root, ["--index", "ix", "--root", root, "--bind", "tcp://127.0.0.1:*", "--no-text"] + curve,
                 "serve")
    rita = SearchClient(s.ep, timeout_s=10, keys=k("rita"))
    r = rita.search(vectors=[x[7]], k=3)
    check(r.hits[0][0].id == ids[7], "a reader's search over CURVE finds the row")
    refused(SearchClient(s.ep, timeout_s=1.5, keys=k("eve")), "an unknown key gets no answer")
    refused(SearchClient(s.ep, timeout_s=1.5, keys=None), "a plain client gets no answer")
    check("refused a client" in open(s.log).read(), "foil-serve logs the refused keys")
    wk = SearchClient(s.ep, timeout_s=10, keys=k("w1"))
    denied(lambda: wk.search(vectors=[x[0]], k=1), "a worker key may not search")
    denied(lambda: rita.reload(), "a reader may not reload")
    check(SearchClient(s.ep, timeout_s=30, keys=k("root")).reload().version == 1, "an admin reloads")

    # foil search with keys
    vf = os.path.join(scratch, "q.txt")
    with open(vf, "w") as f:
        f.write(" ".join("%.8f" % v for v in x[7]) + "\n")
    q = subprocess.run([foil, "search", "--server", s.ep, "--vector-file", vf, "-k", "1", "--timeout", "5",
                        "--key", k("rita")[0], "--server-key", srv_pub], capture_output=True, text=True)
    check(q.returncode == 0 and str(ids[7]) in q.stdout, "foil search with keys (rc %d: %s)" % (q.returncode, q.stderr))
    q = subprocess.run([foil, "search", "--server", s.ep, "--vector-file", vf, "-k", "1", "--timeout", "1.5"],
                       capture_output=True, text=True, timeout=60)  # a hang fails here, not the whole suite
    check(q.returncode == 10 and "--key" in q.stderr, "foil search without keys gets no answer and a hint (rc %d: %s)"
          % (q.returncode, q.stderr.strip()))

    # garbage / truncated handshakes while a good client searches
    host, port = s.ep[len("tcp://"):].rsplit(":", 1)
    stop, counts = threading.Event(), [0, 0, 0]
    t = threading.Thread(target=storm, args=(host, int(port), stop, counts))
    t.start()
    ok = n = 0
    deadline = time.time() + 30
    while (n < 30 or min(counts) < 5) and time.time() < deadline:
        i = n % 100
        n += 1
        try:
            if rita.search(vectors=[x[i]], k=1).hits[0][0].id == sw.brute(ids, x, x[i], 1)[0][0]:
                ok += 1
        except (TimeoutError, SearchError) as e:
            print("search failed:", e)
        time.sleep(0.01)
    stop.set()
    t.join()
    check(ok == n and min(counts) >= 5, "searches go on through bad handshakes (%d/%d, storm %s)" % (ok, n, counts))

    # SIGHUP adds a key
    shutil.copy(os.path.join(keys, "eve.key"), allow)
    s.p.send_signal(signal.SIGHUP)
    time.sleep(0.6)
    eve = SearchClient(s.ep, timeout_s=10, keys=k("eve"))
    check(eve.search(vectors=[x[3]], k=1).hits[0][0].id == ids[3], "a key added to the allow-list searches after SIGHUP")
    eve.close()
    os.remove(os.path.join(allow, "eve.key"))

    # the router: CURVE in front, its own key pair towards CURVE shard servers
    s0 = sw.Serve(build, root, ["--index", "ix", "--root", root, "--bind", "tcp://127.0.0.1:*", "--no-text",
                                "--shards", "0"] + curve, "shard0", index=None)
    s1 = sw.Serve(build, root, ["--index", "ix", "--root", root, "--bind", "tcp://127.0.0.1:*", "--no-text",
                                "--shards", "1"] + curve, "shard1", index=None)
    rt = sw.Serve(build, root, ["--route", "%s,%s" % (s0.ep, s1.ep), "--bind", "tcp://127.0.0.1:*",
                                "--key", k("rtr")[0], "--server-key", srv_pub] + curve, "router", index=None)
    rr = SearchClient(rt.ep, timeout_s=10, keys=k("rita"))
    qv = x[11] + 0.01 * np.ones(sw.DIM, np.float32)
    got = [h.id for h in rr.search(vectors=[qv], k=5).hits[0]]
    want = [int(i) for i in sw.brute(ids, x, qv, 5)[0]]
    check(got == want, "the router over CURVE shard servers gives the exact top-k (%s vs %s)" % (got, want))
    refused(SearchClient(rt.ep, timeout_s=1.5, keys=k("eve")), "the router refuses an unknown key")
    rr.close(), rita.close(), wk.close()
    for srv, what in ((rt, "router"), (s0, "shard 0"), (s1, "shard 1"), (s, "foil-serve")):
        srv.stop(what)
    failures.extend(sw.failures)
    return report("serve_auth")


if __name__ == "__main__":
    sys.exit(main())
