#!/usr/bin/python3
"""foil-serve end to end over ZeroMQ against the same search in process.

    /usr/bin/python3 bench/serve.py [--build build] [--n 200000] [--threads 1,2]
        [--single 300] [--dir TMPDIR] [--pin]

One index of N float32 rows × 256 (unit-norm Gaussian, as sentence
embeddings are; the same rows bench/search.py uses), k = 10:
  - in process: bench_search's single-query latency (vs_search alone);
  - end to end: a foil-serve process (--threads T) on the same rows written
    as an index version (storage/index.h's format), queried one request of
    one vector at a time by a pyzmq DEALER client: round-trip latency as
    the client sees it (pack, send, the server's receive, search, pack,
    reply, unpack), and the server's own receive-to-send time;
  - the transport alone: the round trip of a status request;
  - the same queries from a C client (bench_serve_client, protobuf-c), so
    that the round trip holds no Python protobuf work.
With --pin, foil-serve runs on CPUs 0..T-1 and both clients on CPU T
(thread counts T with T + 1 > the CPUs are skipped): the search, the
server's and the client's ZeroMQ threads then do not take turns on the
same cores, so the comparison measures foil's path rather than the
scheduler's.
Prints median and p99 of each and the end-to-end overhead at p99 against
the issue's target (p99 ≤ in-process p99 + 200 µs): against bench_search's
separate run, and against the same run's in-process time (the server's
receive-to-send time of each request), with the per-request difference.
"""
import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import serve_swap  # noqa: E402  (index writer in the documented format, search_pb2)

spec = importlib.util.spec_from_file_location("search_bench", os.path.join(HERE, "search.py"))
search_bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(search_bench)
S = serve_swap.S
D, K = 256, 10


def pct(xs, p):
    xs = sorted(xs)
    return xs[int(round(p * (len(xs) - 1)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--single", type=int, default=300)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--pin", action="store_true", help="server on CPUs 0..T-1, clients on CPU T")
    a = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(dir=a.dir)
    n = a.n
    search_bench.write_data(tmp.name, n, a.single, seed=n)
    xb = np.fromfile(os.path.join(tmp.name, "xb.f32"), dtype=np.float32).reshape(n, D)
    xq = np.fromfile(os.path.join(tmp.name, "xq.f32"), dtype=np.float32).reshape(-1, D)
    root = os.path.join(tmp.name, "root")
    serve_swap.write_version(root, "bench", 1, [(np.arange(n, dtype=np.int64), xb, None)])
    del xb
    print(f"foil-serve end to end vs in process: {n} x {D} float32, k {K}, {a.single} single queries",
          flush=True)
    print(f"{'threads':>7} {'in-process p50/p99 ms':>22} {'end-to-end p50/p99 ms':>22} "
          f"{'server p50 ms':>13} {'p99 overhead us':>15}  target <= 200 us   status RTT p50/p99 ms")
    ncpu = os.cpu_count() or 1
    for t in [int(x) for x in a.threads.split(",")]:
        if a.pin and t + 1 > ncpu:
            print(f"{t:>7} skipped: --pin needs {t + 1} CPUs, this machine has {ncpu}", flush=True)
            continue
        env = search_bench.tenv(t)
        srv_pin = (lambda: os.sched_setaffinity(0, set(range(t)))) if a.pin else None
        cli_pin = ["taskset", "-c", str(t)] if a.pin else []
        if a.pin:
            os.sched_setaffinity(0, {t})
        inproc = subprocess.run([os.path.join(a.build, "bench", "bench_search"), "run", tmp.name, str(n),
                                 str(D), str(t), "f32", "0", "0", str(a.single), str(K)], env=env,
                                check=True, capture_output=True, text=True, preexec_fn=srv_pin).stdout
        ip = json.loads(inproc.strip().splitlines()[-1])
        srv = subprocess.Popen([os.path.join(a.build, "foil-serve"), "--index", "bench", "--root", root,
                                "--bind", "tcp://127.0.0.1:*", "--threads", str(t), "--no-watch",
                                "--log", os.path.join(tmp.name, f"serve{t}.log")], env=env, preexec_fn=srv_pin)
        try:
            info = os.path.join(root, "indexes", "bench", "serve.json")
            deadline = time.time() + 120
            ep = None
            while time.time() < deadline and ep is None:
                try:
                    d = json.load(open(info))
                    ep = d["endpoint"] if d.get("pid") == srv.pid else None
                except (OSError, ValueError):
                    pass
                time.sleep(0.05)
            sock = zmq.Context.instance().socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(ep)
            rtt, server = [], []
            for i in range(a.single + 5):
                req = S.ServeRequest(request_id=i + 1)
                req.search.k = K
                req.search.queries.add().vector.extend(xq[i % len(xq)].tolist())
                t0 = time.perf_counter()
                sock.send(req.SerializeToString())
                if not sock.poll(60000):
                    raise RuntimeError("no reply from foil-serve")
                r = S.ServeReply()
                r.ParseFromString(sock.recv())
                dt = (time.perf_counter() - t0) * 1e3
                if r.WhichOneof("body") != "search":
                    raise RuntimeError("error reply: %s" % r)
                if i >= 5:  # warm-up
                    rtt.append(dt)
                    server.append(r.search.server_ms)
            # the transport alone: status requests (no search)
            st = []
            for i in range(a.single):
                req = S.ServeRequest(request_id=100000 + i)
                req.status.SetInParent()
                t0 = time.perf_counter()
                sock.send(req.SerializeToString())
                sock.poll(60000)
                sock.recv()
                st.append((time.perf_counter() - t0) * 1e3)
            sock.close(0)
            # the same single queries from a C client (protobuf-c): no Python in the round trip
            cc = json.loads(subprocess.run(cli_pin + [os.path.join(a.build, "bench", "bench_serve_client"), ep,
                                            os.path.join(tmp.name, "xq.f32"), str(D), str(a.single), str(K)],
                                           check=True, capture_output=True, text=True).stdout)
        finally:
            srv.send_signal(signal.SIGTERM)
            srv.wait(60)
        over = (pct(rtt, 0.99) - ip["p99_ms"]) * 1e3
        # the same run's own in-process time: each request's receive-to-send in the server
        own = (pct(rtt, 0.99) - pct(server, 0.99)) * 1e3
        extra = sorted((x - y) * 1e3 for x, y in zip(rtt, server))
        print(f"{t:>7} {ip['median_ms']:>10.2f} / {ip['p99_ms']:<9.2f} {pct(rtt, 0.5):>10.2f} / "
              f"{pct(rtt, 0.99):<9.2f} {pct(server, 0.5):>13.2f} {over:>15.0f}  "
              f"{'met' if over <= 200 else 'not met':<8}          {pct(st, 0.5):.3f} / {pct(st, 0.99):.3f}",
              flush=True)
        cover = (cc["rtt_p99"] - ip["p99_ms"]) * 1e3
        cown = (cc["rtt_p99"] - cc["server_p99"]) * 1e3
        print(f"{'':>7} C client: end to end p50/p99 {cc['rtt_p50']:.2f} / {cc['rtt_p99']:.2f} ms, server "
              f"{cc['server_p50']:.2f} / {cc['server_p99']:.2f} ms; p99 over bench_search's {cover:+.0f} us, over "
              f"the same run's server p99 {cown:+.0f} us ({'met' if cown <= 200 else 'not met'}); per request "
              f"round trip - server time p50 {cc['diff_p50'] * 1e3:.0f} us, p99 {cc['diff_p99'] * 1e3:.0f} us",
              flush=True)
        print(f"{'':>7} same run: server p99 {pct(server, 0.99):.2f} ms, end-to-end p99 over it {own:+.0f} us "
              f"({'met' if own <= 200 else 'not met'}); per request, round trip - server time: "
              f"p50 {pct(extra, 0.5):.0f} us, p99 {pct(extra, 0.99):.0f} us", flush=True)


if __name__ == "__main__":
    main()
