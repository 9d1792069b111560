"""foilcluster — real foil processes on loopback, for integration tests.

A Cluster owns one data root, one foil-coordinator and any number of
foil-worker processes, and talks to the coordinator's control API with
pyzmq and the Python classes protoc generates from proto/ (so the schema
is proven outside C). Ports are picked by the coordinator on first start
and kept across restarts, so workers reconnect to a restarted coordinator.

    from foilcluster import Cluster, pb
    c = Cluster(build_dir, root)
    c.start_coordinator(); c.start_worker("w1", slots=2)
    jid = c.submit_command(["sh", "-c", "echo hi"])
    job = c.wait_state(jid, {"JOB_COMPLETED"}, timeout=30)
    c.stop()

For the test scripts: check() and expect_error() record what failed in
`failures` and report() ends a script with it; gen_key() and key_set()
make key pairs with `foil keys gen` for CURVE servers and their clients.
"""
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _generate():
    """protoc → Python classes in a fresh temp dir; returns (control_pb2, worker_pb2)."""
    out = tempfile.mkdtemp(prefix="foil-pyproto-")
    src = os.path.join(REPO, "proto")
    subprocess.check_call(["protoc", "--python_out=" + out, "-I", src,
                           "foil/v1/control.proto", "foil/v1/worker.proto"])
    sys.path.insert(0, out)
    # the folder lives as long as this process: jobs and scripts it starts may
    # import the same classes from it (pb.worker.__file__)
    atexit.register(shutil.rmtree, out, True)
    from foil.v1 import control_pb2, worker_pb2  # noqa: E402
    return control_pb2, worker_pb2


_control, _worker = _generate()
pb = types.SimpleNamespace(control=_control, worker=_worker)
STATE = _control.JobState  # STATE.Name(n) → "JOB_RUNNING"


def read_cert(path):
    """A foil certificate (common/auth.h) as a dict: name, role, public-key
    and, in a NAME.key_secret, secret-key (keys as Z85 bytes)."""
    d = {}
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = (x.strip() for x in line.split("=", 1))
        d[k] = v.strip('"')
    for k in ("public-key", "secret-key"):
        if k in d:
            d[k] = d[k].encode()
    return d


def curve_client(sock, key_secret, server_key):
    """Makes a pyzmq socket a CURVE client with a NAME.key_secret and the
    server's NAME.key (paths); call before connect."""
    mine, srv = read_cert(key_secret), read_cert(server_key)
    sock.curve_secretkey = mine["secret-key"]
    sock.curve_publickey = mine["public-key"]
    sock.curve_serverkey = srv["public-key"]


def gen_key(build, keys, name, role):
    """A key pair NAME.key / NAME.key_secret of role in the folder keys, by
    `foil keys gen` of the build; the secret must be the owner's alone."""
    r = subprocess.run([os.path.join(build, "foil"), "keys", "gen", name, "--role", role, "--dir", keys],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sec = os.path.join(keys, name + ".key_secret")
    assert (os.stat(sec).st_mode & 0o777) == 0o600, "secret key file mode"


def key_set(build, scratch, server, roles, allowed):
    """Key pairs for a CURVE server and its clients: gen_key for each (name,
    role) of roles into SCRATCH/keys, and the public keys of the names in
    allowed copied to SCRATCH/allow (the server's --allow-keys). Returns
    (keys, allow, k): k(name) is (NAME.key_secret, the server's NAME.key),
    as Client's keys= and curve_client take them."""
    keys, allow = os.path.join(scratch, "keys"), os.path.join(scratch, "allow")
    os.makedirs(allow)
    for name, role in roles:
        gen_key(build, keys, name, role)
    for name in allowed:
        shutil.copy(os.path.join(keys, name + ".key"), allow)
    server_pub = os.path.join(keys, server + ".key")
    return keys, allow, lambda name: (os.path.join(keys, name + ".key_secret"), server_pub)


class ApiError(Exception):
    def __init__(self, code, message):
        super().__init__("%s: %s" % (_control.Code.Name(code), message))
        self.code = _control.Code.Name(code)
        self.message = message


# ---- checks ------------------------------------------------------------------
failures = []  # what check() found false, in order (a script's exit status)


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what, flush=True)
    else:
        print("ok:", what, flush=True)


def expect_error(code, fn, *args, **kw):
    """Checks that fn(*args, **kw) raises ApiError of code (a Code name, as
    "INVALID_ARGUMENT"); returns the error, None when it succeeded."""
    try:
        fn(*args, **kw)
    except ApiError as e:
        check(e.code == code, "expected %s, got %s (%s)" % (code, e.code, e.message))
        return e
    check(False, "expected %s, got success" % code)


def report(name):
    """Says how many checks failed, or that all passed; the script's exit
    status (1 if any failed)."""
    if failures:
        print("%s: %d check(s) failed" % (name, len(failures)))
        return 1
    print("%s: all checks passed" % name)
    return 0


class Client:
    """One DEALER socket to the control API; call() sends a Request and
    returns the Reply with the same request_id (ApiError for an Error)."""

    def __init__(self, endpoint, timeout_s=10.0, keys=None):
        """keys: (NAME.key_secret, server NAME.key) for CURVE, or None."""
        self.ctx = zmq.Context.instance()
        self.endpoint = endpoint
        self.keys = keys
        self.timeout_s = timeout_s
        self.sock = None
        self.rid = int(time.time() * 1000) << 8
        self._open()

    def _open(self):
        if self.sock is not None:
            self.sock.close(0)
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if self.keys:
            curve_client(self.sock, *self.keys)
        self.sock.connect(self.endpoint)

    def raw(self, frames, timeout_s=None):
        """Sends raw frames; returns the reply frame parsed as Reply (or None)."""
        self.sock.send_multipart(frames)
        if not self.sock.poll(int((timeout_s or self.timeout_s) * 1000)):
            self._open()
            return None
        r = _control.Reply()
        r.ParseFromString(self.sock.recv_multipart()[-1])
        return r

    def call(self, field, msg, timeout_s=None):
        self.rid += 1
        req = _control.Request(request_id=self.rid)
        getattr(req, field).CopyFrom(msg)
        self.sock.send(req.SerializeToString())
        deadline = time.time() + (timeout_s or self.timeout_s)
        while True:
            left = deadline - time.time()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                self._open()
                raise TimeoutError("no reply from %s" % self.endpoint)
            r = _control.Reply()
            r.ParseFromString(self.sock.recv())
            if r.request_id != self.rid:
                continue
            if r.WhichOneof("body") == "error":
                raise ApiError(r.error.code, r.error.message)
            return r

    def close(self):
        self.sock.close(0)


class Cluster:
    def __init__(self, build_dir, root, heartbeat_ms=200, liveness=4, grace_s=2, allow_dirs=()):
        """allow_dirs: directories outside the data root whose files jobs may
        name (foil-coordinator --allow-dir); the test's working directory
        (where `foil submit` runs, the jobs' workdir) is always one."""
        self.build = os.path.abspath(build_dir)
        self.allow_dirs = [os.getcwd()] + [os.path.abspath(d) for d in allow_dirs]
        self.root = os.path.abspath(root)
        self.hb = heartbeat_ms
        self.liveness = liveness
        self.grace = grace_s
        self.coord = None
        self.workers = {}
        self.control = "tcp://127.0.0.1:*"
        self.workers_ep = "tcp://127.0.0.1:*"
        self.client = None
        self.keys = None   # (admin NAME.key_secret, coordinator NAME.key) for self.client
        shutil.rmtree(self.root, ignore_errors=True)
        os.makedirs(self.root)

    def bin(self, name):
        return os.path.join(self.build, name)

    def env(self):
        e = dict(os.environ)
        e["FOIL_ROOT"] = self.root
        e.pop("FOIL_COORDINATOR", None)
        return e

    # ---- coordinator ------------------------------------------------------
    def start_coordinator(self, extra_args=()):
        info = os.path.join(self.root, "coordinator.json")
        old = os.path.getmtime(info) if os.path.exists(info) else None
        args = [self.bin("foil-coordinator"), "--root", self.root, "--control", self.control,
                "--workers", self.workers_ep, "--heartbeat-ms", str(self.hb),
                "--liveness", str(self.liveness), "--grace-s", str(self.grace),
                "--log", os.path.join(self.root, "coordinator.log")]
        for d in self.allow_dirs:
            args += ["--allow-dir", d]
        args += list(extra_args)
        self.coord = subprocess.Popen(args, env=self.env())
        deadline = time.time() + 30
        while True:
            if self.coord.poll() is not None:
                raise RuntimeError("foil-coordinator exited with %d; see %s/coordinator.log"
                                   % (self.coord.returncode, self.root))
            if os.path.exists(info) and os.path.getmtime(info) != old:
                try:
                    d = json.load(open(info))
                    if d.get("pid") == self.coord.pid:
                        break
                except ValueError:
                    pass
            if time.time() > deadline:
                raise RuntimeError("foil-coordinator did not start")
            time.sleep(0.05)
        self.control, self.workers_ep = d["control"], d["workers"]
        if self.client is None:
            self.client = Client(self.control, keys=self.keys)
        return self.coord

    def kill_coordinator(self, sig=signal.SIGKILL):
        self.coord.send_signal(sig)
        self.coord.wait(30)

    # ---- workers ----------------------------------------------------------
    def start_worker(self, name, slots=2, gpus=0, extra_args=(), wait=True, key=None):
        """key: what self.workers and the log file (ROOT/worker-KEY.log) call
        this process, by default its name; a second foil-worker of a name
        already running needs another."""
        key = key or name
        args = [self.bin("foil-worker"), "--root", self.root, "--coordinator", self.workers_ep,
                "--name", name, "--host", "localhost", "--slots", str(slots), "--gpus", str(gpus),
                "--log", os.path.join(self.root, "worker-%s.log" % key)] + list(extra_args)
        p = subprocess.Popen(args, env=self.env(), start_new_session=True)
        self.workers[key] = p
        if wait:
            self.wait_worker(name, up=True)
        return p

    def kill_worker(self, name, sig=signal.SIGKILL, node=True):
        """node=True: the node dies — every process of the worker's session
        (its jobs' process groups too), as when a machine is lost.
        node=False: the daemon alone gets sig; its jobs run on."""
        p = self.workers[name]
        if node:
            subprocess.run(["pkill", "-%d" % sig, "-s", str(p.pid)], check=False)
        else:
            p.send_signal(sig)
        p.wait(30)

    def worker_info(self, name):
        for w in self.call("workers", pb.control.WorkersRequest()).workers.workers:
            if w.name == name:
                return w
        return None

    def wait_worker(self, name, up=True, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            w = self.worker_info(name)
            down = w is None or w.state == pb.control.WORKER_DOWN
            if down != up:
                return w
            p = self.workers.get(name)
            if up and p is not None and p.poll() is not None:
                raise RuntimeError("foil-worker %s exited with %d; see %s/worker-%s.log"
                                   % (name, p.returncode, self.root, name))
            time.sleep(0.05)
        raise TimeoutError("worker %s not %s after %ss" % (name, "up" if up else "down", timeout))

    # ---- the API ------------------------------------------------------------
    def call(self, field, msg, timeout_s=None):
        return self.client.call(field, msg, timeout_s)

    def submit(self, spec, submission_id=""):
        r = self.call("submit", pb.control.SubmitRequest(spec=spec, submission_id=submission_id))
        return r.submit.job_id

    def submit_command(self, argv, ranks=1, **fields):
        spec = pb.control.JobSpec(kind="command", argv=list(argv),
                                  resources=pb.control.Resources(ranks=ranks), **fields)
        return self.submit(spec)

    def job(self, job_id):
        return self.call("get", pb.control.GetJobRequest(job_id=job_id)).job

    def wait_state(self, job_id, states, timeout=60):
        deadline = time.time() + timeout
        while True:
            j = self.job(job_id)
            if STATE.Name(j.state) in states:
                return j
            if time.time() > deadline:
                raise TimeoutError("job %d is %s after %ss (waited for %s); reason: %s"
                                   % (job_id, STATE.Name(j.state), timeout, sorted(states), j.reason))
            time.sleep(0.05)

    def foil(self, *args, timeout=120, env=None):
        e = self.env()
        e.update(env or {})
        return subprocess.run([self.bin("foil")] + list(args), env=e, capture_output=True,
                              text=True, timeout=timeout)

    def log(self, job_id):
        p = os.path.join(self.root, "jobs", str(job_id), "log")
        return open(p).read() if os.path.exists(p) else ""

    def stop(self):
        """Stops everything; returns {"coordinator": rc, worker name: rc, ...}
        for processes this call stopped (an ASan leak report makes rc != 0)."""
        codes = {}
        for p in self.workers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in self.workers.items():
            was_running = p.returncode is None
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if was_running:
                codes[name] = p.returncode
        if self.coord is not None and self.coord.poll() is None:
            self.coord.send_signal(signal.SIGTERM)
            try:
                self.coord.wait(30)
            except subprocess.TimeoutExpired:
                self.coord.kill()
                self.coord.wait()
            codes["coordinator"] = self.coord.returncode
        if self.client is not None:
            self.client.close()
        return codes
