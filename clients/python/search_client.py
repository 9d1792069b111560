"""search_client.py — a small client for foil-serve (and its router).

foil-serve speaks proto/foil/v1/search.proto over ZeroMQ: a DEALER socket
sends one ServeRequest per frame and gets exactly one ServeReply with the
same request_id. This module generates the Python classes from the .proto
files with protoc at import time (no generated code is checked in), so it
needs `protoc`, `pyzmq` and `protobuf`.

    from search_client import SearchClient
    c = SearchClient.for_index("wiki", root="./foil-data")   # reads serve.json
    reply = c.search(texts=["how do magnets work"], k=5)
    for hit in reply.hits[0]:
        print(hit.rank, hit.id, hit.key, hit.score)
    print("answered by version", reply.version)

Run as a script:  python search_client.py --index wiki "how do magnets work"

CURVE (a server started with --curve-key and --allow-keys): pass keys=(the
client's NAME.key_secret, the server's NAME.key), or set $FOIL_KEY and
$FOIL_SERVER_KEY (or $FOIL_KEYS: client.key_secret and server.key there),
as the foil CLI reads them. Files are written by `foil keys gen`.
"""
import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import namedtuple

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.environ.get("FOIL_PROTO_DIR", os.path.join(os.path.dirname(os.path.dirname(HERE)), "proto"))


def _generate():
    out = tempfile.mkdtemp(prefix="foil-search-pb-")
    subprocess.check_call(["protoc", "--python_out=" + out, "-I", PROTO,
                           "foil/v1/control.proto", "foil/v1/search.proto"])
    sys.path.insert(0, out)
    # the generated folder lives as long as this process
    atexit.register(shutil.rmtree, out, True)
    from foil.v1 import control_pb2, search_pb2  # noqa: E402
    return control_pb2, search_pb2


control_pb2, search_pb2 = _generate()

Hit = namedtuple("Hit", "rank id key score")
Reply = namedtuple("Reply", "index version hits server_ms")


class SearchError(Exception):
    """An Error reply: .code is its name (e.g. "INVALID_ARGUMENT")."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (control_pb2.Code.Name(code), message))
        self.code = control_pb2.Code.Name(code)
        self.message = message


def read_cert(path):
    """A foil certificate file as a dict (name, role, public-key and, in a
    NAME.key_secret, secret-key; keys as Z85 bytes)."""
    d = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = (x.strip() for x in line.split("=", 1))
            d[k] = v.strip('"')
    for k in ("public-key", "secret-key"):
        if k in d:
            d[k] = d[k].encode()
    return d


def keys_from_env():
    """(key_secret path, server key path) from the environment, or None."""
    d = os.environ.get("FOIL_KEYS")
    key = os.environ.get("FOIL_KEY") or (d and os.path.join(d, "client.key_secret"))
    srv = os.environ.get("FOIL_SERVER_KEY") or (d and os.path.join(d, "server.key"))
    if not key and not srv:
        return None
    if not key or not srv:
        raise ValueError("CURVE needs both $FOIL_KEY and $FOIL_SERVER_KEY (or $FOIL_KEYS)")
    return key, srv


class SearchClient:
    """One DEALER socket to a foil-serve endpoint; one request at a time."""

    def __init__(self, endpoint, timeout_s=30.0, keys="env"):
        """keys: (NAME.key_secret, server NAME.key) paths for CURVE; "env":
        from the environment; None: no CURVE."""
        self.keys = keys_from_env() if keys == "env" else keys
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.ctx = zmq.Context.instance()
        self.sock = None
        self.rid = int(time.time() * 1000) << 12
        self._open()

    @classmethod
    def for_index(cls, name, root=None, **kw):
        """The server that <root>/indexes/<name>/serve.json names."""
        root = root or os.environ.get("FOIL_ROOT", "./foil-data")
        with open(os.path.join(root, "indexes", name, "serve.json")) as f:
            return cls(json.load(f)["endpoint"], **kw)

    def _open(self):
        if self.sock is not None:
            self.sock.close(0)
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        # a DEALER without a connected peer blocks in send (a CURVE handshake
        # the server refused can leave it so): bound that by the timeout too
        self.sock.setsockopt(zmq.SNDTIMEO, max(1, int(self.timeout_s * 1000)))
        if self.keys:
            mine, srv = read_cert(self.keys[0]), read_cert(self.keys[1])
            self.sock.curve_secretkey = mine["secret-key"]
            self.sock.curve_publickey = mine["public-key"]
            self.sock.curve_serverkey = srv["public-key"]
        self.sock.connect(self.endpoint)

    def call(self, req):
        """Sends a ServeRequest (its request_id is set here); returns the
        ServeReply, raising SearchError for an Error reply."""
        self.rid += 1
        req.request_id = self.rid
        try:
            self.sock.send(req.SerializeToString())
        except zmq.Again:
            self._open()
            raise TimeoutError("could not send to foil-serve at %s within %.1f s" % (self.endpoint, self.timeout_s))
        deadline = time.time() + self.timeout_s
        while True:
            left = deadline - time.time()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                self._open()  # a late reply must not answer the next request
                raise TimeoutError("no reply from foil-serve at %s within %.1f s" % (self.endpoint, self.timeout_s))
            rep = search_pb2.ServeReply()
            rep.ParseFromString(self.sock.recv())
            if rep.request_id != self.rid:
                continue
            if rep.WhichOneof("body") == "error":
                raise SearchError(rep.error.code, rep.error.message)
            return rep

    def search(self, vectors=None, texts=None, k=10, id_range=None):
        """Top-k for each vector (a sequence of floats, the index's dimension)
        or each text. id_range=(lo, hi) keeps ids in [lo, hi]. Returns a
        Reply: hits[i] lists the Hits of query i; version names the index
        version that answered all of them."""
        req = search_pb2.ServeRequest()
        s = req.search
        s.k = k
        for v in vectors or []:
            s.queries.add().vector.extend(float(x) for x in v)
        for t in texts or []:
            s.queries.add().text = t
        if id_range is not None:
            s.id_range, s.id_min, s.id_max = True, int(id_range[0]), int(id_range[1])
        r = self.call(req).search
        hits = []
        for res in r.results:
            keys = list(res.keys) or [""] * len(res.ids)
            hits.append([Hit(i + 1, res.ids[i], keys[i], res.scores[i]) for i in range(len(res.ids))])
        return Reply(r.index, r.version, hits, r.server_ms)

    def status(self):
        """The server's ServeStatus (version, rows, shards, text, ...)."""
        req = search_pb2.ServeRequest()
        req.status.SetInParent()
        return self.call(req).status

    def reload(self, version=0):
        """Loads CURRENT (or `version`), checks it and swaps it in; returns
        the status after the swap (SearchError if the load failed and the
        old version keeps serving)."""
        req = search_pb2.ServeRequest()
        req.reload.version = version
        return self.call(req).status

    def close(self):
        self.sock.close(0)


# exit codes of the command line, as `foil search` (README "Exit codes")
EXIT = {"INVALID_ARGUMENT": 2, "NOT_FOUND": 3, "ALREADY_EXISTS": 4, "PERMISSION_DENIED": 5,
        "RESOURCE_EXHAUSTED": 6, "FAILED_PRECONDITION": 7, "ABORTED": 8, "DEADLINE_EXCEEDED": 9,
        "UNAVAILABLE": 10, "INTERNAL": 11, "UNAUTHENTICATED": 12}


class _Fail(Exception):
    """A command-line error: one line and an exit code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.exit = EXIT[code]


def _endpoint(a):
    """--server, else --index's serve.json, else $FOIL_SERVE."""
    if a.server:
        return a.server
    if a.index:
        path = os.path.join(a.root, "indexes", a.index, "serve.json")
        try:
            with open(path) as f:
                ep = json.load(f)["endpoint"]
        except (OSError, ValueError, KeyError, TypeError):
            raise _Fail("UNAVAILABLE", "no server for index %s (%s is missing or has no endpoint: start "
                        "`foil-serve --index %s`, or give --server)" % (a.index, path, a.index))
        if not isinstance(ep, str) or not ep:
            raise _Fail("UNAVAILABLE", "%s names no endpoint" % path)
        return ep
    if os.environ.get("FOIL_SERVE"):
        return os.environ["FOIL_SERVE"]
    raise _Fail("INVALID_ARGUMENT", "give --server EP or --index NAME (or set $FOIL_SERVE)")


def _query(a):
    """(vectors, texts, id_range) from the arguments, checked before connecting."""
    if not 1 <= a.k <= 1000:
        raise _Fail("INVALID_ARGUMENT", "-k must be a whole number in 1..1000 (got %d)" % a.k)
    if not 0 < a.timeout <= 86400:
        raise _Fail("INVALID_ARGUMENT", "--timeout must be seconds, more than 0 (got %g)" % a.timeout)
    id_range = None
    if a.id_range is not None:
        try:
            lo, hi = (int(x) for x in a.id_range.split(":"))
        except ValueError:
            lo = hi = None
        if lo is None or lo > hi:
            raise _Fail("INVALID_ARGUMENT", "--id-range must be LO:HI with LO <= HI (got \"%s\")" % a.id_range)
        id_range = (lo, hi)
    if a.status:
        return None, None, None
    if (a.text is None) == (a.vector is None):
        raise _Fail("INVALID_ARGUMENT", "give a TEXT or --vector (one of them)")
    if a.text is not None:
        return None, [a.text], id_range
    vec = []
    for x in a.vector.split(","):
        try:
            f = float(x)
        except ValueError:
            f = float("nan")
        if f != f or f in (float("inf"), float("-inf")):
            raise _Fail("INVALID_ARGUMENT", "--vector: '%s' is not a finite number" % x.strip())
        vec.append(f)
    return [vec], None, id_range


def main(argv=None):
    ap = argparse.ArgumentParser(description="Top-k search against foil-serve. Exit codes as `foil search`: "
                                 "0 ok, 2 invalid argument, 10 unavailable (no reply), ... (README)")
    ap.add_argument("text", nargs="?", help="query text (encoded by the server)")
    ap.add_argument("-k", type=int, default=10, help="hits per query (default 10, at most 1000)")
    ap.add_argument("--index", help="find the server in ROOT/indexes/INDEX/serve.json")
    ap.add_argument("--root", default=os.environ.get("FOIL_ROOT", "./foil-data"))
    ap.add_argument("--server", help="endpoint, e.g. tcp://127.0.0.1:7430 (default: --index's serve.json, "
                    "else $FOIL_SERVE)")
    ap.add_argument("--vector", help="a query vector: comma-separated numbers")
    ap.add_argument("--id-range", metavar="LO:HI", help="only rows whose id is in [LO, HI]")
    ap.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                    help="wait this long for the reply (default 30)")
    ap.add_argument("--status", action="store_true", help="print the server's status instead")
    ap.add_argument("--key", help="CURVE: this client's NAME.key_secret (default $FOIL_KEY / $FOIL_KEYS)")
    ap.add_argument("--server-key", help="CURVE: the server's NAME.key (default $FOIL_SERVER_KEY / $FOIL_KEYS)")
    # a value may start with '-' (--vector -0.5,1): argparse would take it
    # for an option, so such values are joined to their flag
    argv, i = sys.argv[1:] if argv is None else list(argv), 0
    while i + 1 < len(argv) and argv[i] != "--":
        if argv[i] in ("--vector", "--id-range"):
            argv[i:i + 2] = [argv[i] + "=" + argv[i + 1]]
        i += 1
    a = ap.parse_args(argv)
    keys = (a.key, a.server_key) if a.key or a.server_key else "env"
    if keys != "env" and not all(keys):
        ap.error("give both --key and --server-key")
    c = None
    try:
        vecs, texts, id_range = _query(a)
        ep = _endpoint(a)
        if not ep.startswith(("tcp://", "ipc://")):
            raise _Fail("INVALID_ARGUMENT", "server address %s must start with tcp:// or ipc://" % ep)
        try:
            c = SearchClient(ep, timeout_s=a.timeout, keys=keys)
        except KeyError as e:  # a key file without that line
            raise _Fail("INVALID_ARGUMENT", "cannot use the CURVE keys: no %s line" % e)
        except (OSError, ValueError) as e:  # the key files
            raise _Fail("INVALID_ARGUMENT", "cannot use the CURVE keys: %s" % e)
        except zmq.ZMQError as e:
            raise _Fail("INVALID_ARGUMENT", "cannot connect to %s: %s" % (ep, e))
        if a.status:
            print(c.status())
            return 0
        r = c.search(vectors=vecs, texts=texts, k=a.k, id_range=id_range)
    except _Fail as e:
        print("search_client:", e, file=sys.stderr)
        return e.exit
    except SearchError as e:
        print("search_client:", e, file=sys.stderr)
        return EXIT.get(e.code, 1)
    except TimeoutError as e:
        hint = "is this key on its allow-list?" if c and c.keys else \
            "does it run CURVE? then give --key and --server-key"
        print("search_client: %s (is it running? %s)" % (e, hint), file=sys.stderr)
        return EXIT["UNAVAILABLE"]
    except zmq.ZMQError as e:
        print("search_client: ZeroMQ: %s" % e, file=sys.stderr)
        return EXIT["UNAVAILABLE"]
    except Exception as e:  # e.g. a reply that does not parse
        print("search_client: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return EXIT["INTERNAL"]
    finally:
        if c:
            c.close()
    print("index %s version %d (%.1f ms in the server)" % (r.index, r.version, r.server_ms))
    for h in r.hits[0]:
        print("%4d  %12d  %-24s  %.6f" % (h.rank, h.id, h.key or "-", h.score))
    return 0


if __name__ == "__main__":
    sys.exit(main())
