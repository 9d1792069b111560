"""cluster_api.py — the control API and the worker protocol, driven from
Python (pyzmq + protoc's classes) against a real foil-coordinator.

Workers here are protocol-level stand-ins written in Python (FakeWorker),
so each rule of worker.proto is exercised exactly: fencing tokens,
re-registration after a coordinator restart, missed heartbeats. The real
foil-worker is tested end to end by cluster_worker.py.

usage: cluster_api.py BUILD_DIR SCRATCH_DIR
"""
import json
import os
import random
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from foilcluster import ApiError, Client, Cluster, STATE, check, expect_error, failures, pb, report  # noqa: E402

C, W = pb.control, pb.worker


class FakeWorker:
    """Speaks worker.proto over a DEALER socket whose routing id is
    NAME/INSTANCE, as foil-worker's (one instance per FakeWorker)."""

    def __init__(self, cluster, name, slots=2, gpus=0):
        self.c, self.name, self.slots, self.gpus = cluster, name, slots, gpus
        self.route = "%s/%s" % (name, uuid.uuid4().hex[:16])
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, self.route.encode())
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(cluster.workers_ep)
        self.rid = 0
        self.inbox = []        # assign / signal / release
        self.running = {}      # job_id → token
        self.last_hb = 0
        self.alive = True

    def send(self, field, msg):
        self.rid += 1
        m = W.WorkerMessage(request_id=self.rid)
        getattr(m, field).CopyFrom(msg)
        self.sock.send(m.SerializeToString())
        return self.rid

    def _take(self, timeout_ms):
        if not self.sock.poll(timeout_ms):
            return None
        m = W.CoordinatorMessage()
        m.ParseFromString(self.sock.recv())
        if m.request_id == 0:
            self.inbox.append(m)
        return m

    def request(self, field, msg, timeout=10):
        rid = self.send(field, msg)
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self._take(100)
            if m is not None and m.request_id == rid:
                return m
        raise TimeoutError("no answer to %s" % field)

    def refs(self):
        return [W.AttemptRef(job_id=j, token=t) for j, t in self.running.items()]

    def register(self, finished=()):
        return self.request("register", W.Register(name=self.name, host="localhost", slots=self.slots,
                                                   gpus=self.gpus, running=self.refs(),
                                                   finished=list(finished)))

    def pump(self, seconds=0.0):
        """Heartbeats (when due) and collects what the coordinator sends."""
        end = time.time() + seconds
        while True:
            if self.alive and time.time() - self.last_hb > 0.1:
                self.last_hb = time.time()
                r = self.request("heartbeat", W.Heartbeat(running=self.refs()))
                if r.WhichOneof("body") == "error":
                    self.register()
            self._take(20)
            if time.time() >= end:
                return

    def wait_inbox(self, kind, timeout=15, pump_also=()):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, m in enumerate(self.inbox):
                if m.WhichOneof("body") == kind:
                    return self.inbox.pop(i)
            self.pump(0.05)
            for o in pump_also:
                o.pump(0)
        raise TimeoutError("%s got no %s" % (self.name, kind))

    def finish(self, job_id, token, state="JOB_COMPLETED", exit_code=0):
        self.running.pop(job_id, None)
        return self.request("finished", W.Finished(job_id=job_id, token=token, state=STATE.Value(state),
                                                   exit_code=exit_code, end_time=time.time()))

    def close(self):
        self.sock.close(0)


def state(c, jid):
    return STATE.Name(c.job(jid).state)


def test_api_basics(c):
    w = FakeWorker(c, "fw1", slots=2)
    check(w.register().WhichOneof("body") == "registered", "register answered")
    info = c.worker_info("fw1")
    check(info is not None and info.slots == 2 and info.state == C.WORKER_IDLE, "worker listed IDLE")
    # submit → assign → started → progress → finished
    jid = c.submit_command(["echo", "hi"], name="basic")
    a = w.wait_inbox("assign").assign
    check(a.job_id == jid and a.head and a.attempt == 1 and a.placement[0].worker == "fw1", "assign")
    check(a.job_dir.endswith("/jobs/%d" % jid), "job dir in assign")
    fence = open(os.path.join(a.job_dir, "attempt")).read().strip()
    check(fence == str(a.token), "fence file holds the token")
    w.running[jid] = a.token
    check(state(c, jid) == "JOB_RUNNING", "RUNNING after assign")
    check(w.request("started", W.Started(job_id=jid, token=a.token)).WhichOneof("body") == "ack", "started ack")
    p = C.Progress(value=3, total=10, message="step 3/10", metrics_json='{"loss": 1.5}')
    check(w.request("progress", W.ProgressReport(job_id=jid, token=a.token, progress=p))
          .WhichOneof("body") == "ack", "progress ack")
    j = c.call("watch", C.WatchRequest(job_id=jid)).job
    check(j.progress.value == 3 and j.progress.total == 10 and '"loss"' in j.progress.metrics_json,
          "progress visible to watch")
    # a stale token is fenced off
    r = w.request("progress", W.ProgressReport(job_id=jid, token=a.token + 1000, progress=p))
    check(r.WhichOneof("body") == "error" and r.error.code == C.ABORTED, "stale token → ABORTED")
    check(w.finish(jid, a.token).WhichOneof("body") == "ack", "finished ack")
    check(w.finish(jid, a.token).WhichOneof("body") == "ack", "a resent finished is acked again")
    j = c.job(jid)
    check(STATE.Name(j.state) == "JOB_COMPLETED" and j.attempts[0].state == STATE.Value("JOB_COMPLETED"),
          "COMPLETED with its attempt")
    # list with a state filter, logs of a job without a log
    jobs = c.call("list", C.ListJobsRequest(states=[STATE.Value("JOB_COMPLETED")])).jobs.jobs
    check([x.id for x in jobs] == [jid], "list filtered by state")
    lg = c.call("logs", C.LogsRequest(job_id=jid)).logs
    check(lg.eof and lg.data == b"", "logs of a job with no log: empty, eof")
    # errors
    expect_error("NOT_FOUND", c.job, 999999)
    expect_error("NOT_FOUND", c.submit_command, ["true"], dependencies=[C.Dependency(job_id=4242)])
    expect_error("INVALID_ARGUMENT", c.submit_command, ["true"], name="bad name!")
    expect_error("INVALID_ARGUMENT", c.submit, C.JobSpec(kind="refreshx"))
    expect_error("INVALID_ARGUMENT", c.submit_command, ["x"] * 300)
    expect_error("FAILED_PRECONDITION", c.call, "cancel", C.CancelRequest(job_id=jid))
    expect_error("NOT_FOUND", c.call, "drain", C.DrainRequest(worker="nope"))
    # drain: no new work
    c.call("drain", C.DrainRequest(worker="fw1"))
    j2 = c.submit_command(["true"], name="after-drain")
    w.pump(0.6)
    check(state(c, j2) == "JOB_PENDING" and not any(m.WhichOneof("body") == "assign" for m in w.inbox),
          "a drained worker gets nothing")
    check(c.worker_info("fw1").state == C.WORKER_DRAINED, "DRAINED")
    c.call("drain", C.DrainRequest(worker="fw1", undo=True))
    a2 = w.wait_inbox("assign").assign
    check(a2.job_id == j2, "undrained worker takes the job")
    w.finish(j2, a2.token)
    # cancel a running job: COMPLETING, a stop signal, then CANCELLED
    j3 = c.submit_command(["sleep", "100"], name="to-cancel")
    a3 = w.wait_inbox("assign").assign
    w.running[j3] = a3.token
    check(c.call("cancel", C.CancelRequest(job_id=j3)).cancel.state == STATE.Value("JOB_COMPLETING"),
          "cancel → COMPLETING")
    s = w.wait_inbox("signal").signal
    check(s.stop and s.job_id == j3 and s.state == STATE.Value("JOB_CANCELLED"), "stop signal sent")
    w.finish(j3, a3.token, "JOB_FAILED", exit_code=143)
    check(state(c, j3) == "JOB_CANCELLED", "cancelled job ends CANCELLED")
    # signal only
    j4 = c.submit_command(["sleep", "100"], name="to-signal")
    a4 = w.wait_inbox("assign").assign
    w.running[j4] = a4.token
    check(c.call("cancel", C.CancelRequest(job_id=j4, signal=10)).cancel.state == STATE.Value("JOB_RUNNING"),
          "--signal leaves it running")
    s = w.wait_inbox("signal").signal
    check(not s.stop and s.signal == 10, "signal 10 delivered")
    w.finish(j4, a4.token)
    w.close()
    c.call("drain", C.DrainRequest(worker="fw1"))  # keep it out of later tests


def test_dependencies(c):
    w = FakeWorker(c, "fw2", slots=4)
    w.register()
    a = c.submit_command(["true"], name="dep-a")
    b = c.submit_command(["true"], name="dep-b", dependencies=[C.Dependency(job_id=a)])
    d = c.submit_command(["true"], name="dep-c", dependencies=[C.Dependency(job_id=b)])
    x = c.submit_command(["true"], name="dep-any",
                         dependencies=[C.Dependency(job_id=d, type=C.AFTER_ANY)])
    order = []
    for _ in range(4):
        m = w.wait_inbox("assign").assign
        order.append(m.job_id)
        w.pump(0.3)
        check(not any(i.WhichOneof("body") == "assign" for i in w.inbox), "one at a time along the chain")
        w.finish(m.job_id, m.token, "JOB_FAILED" if m.job_id == d else "JOB_COMPLETED", 1 if m.job_id == d else 0)
    check(order == [a, b, d, x], "chain order %s" % order)
    # afterok on a failed job: cancelled, never run
    y = c.submit_command(["true"], name="dep-never", dependencies=[C.Dependency(job_id=d)])
    j = c.wait_state(y, {"JOB_CANCELLED"}, 10)
    check("DependencyNeverSatisfied" in j.reason, "reason says why: %s" % j.reason)
    # pending reason
    z = c.submit_command(["true"], name="dep-wait", dependencies=[C.Dependency(job_id=c.submit_command(
        ["true"], name="big", ranks=64))])
    w.pump(0.5)
    check(c.job(z).reason == "Dependency", "reason Dependency: %s" % c.job(z).reason)
    w.close()
    c.call("drain", C.DrainRequest(worker="fw2"))


def test_gang_and_node_fail(c):
    w1, w2 = FakeWorker(c, "g1", slots=2), FakeWorker(c, "g2", slots=2)
    w1.register(), w2.register()
    jid = c.submit_command(["hostname"], ranks=4, name="gang", max_failures=1, max_failures_set=True)
    a1 = w1.wait_inbox("assign", pump_also=[w2]).assign
    a2 = w2.wait_inbox("assign", pump_also=[w1]).assign
    check(a1.token == a2.token and a1.head != a2.head, "both workers of the gang assigned, one head")
    check(sorted(p.ranks for p in a1.placement) == [2, 2], "2 + 2 ranks")
    head, member = (w1, w2) if a1.head else (w2, w1)
    head.running[jid] = a1.token
    # the member dies: NODE_FAIL, requeued; the head is told to stop
    member.alive = False
    deadline = time.time() + 10
    while state(c, jid) not in ("JOB_REQUEUED", "JOB_PENDING") and time.time() < deadline:
        head.pump(0.05)
    j = c.job(jid)
    check(STATE.Name(j.state) == "JOB_REQUEUED" and j.restart_count == 1 and j.failures == 1,
          "REQUEUED with restart_count 1 (%s)" % STATE.Name(j.state))
    check(j.attempts[0].state == STATE.Value("JOB_NODE_FAIL"), "attempt 1 NODE_FAIL")
    s = head.wait_inbox("signal").signal
    check(s.stop and s.token == a1.token, "surviving head told to stop")
    # the head's late report for the replaced attempt is refused
    r = head.finish(jid, a1.token, "JOB_FAILED", 143)
    check(r.WhichOneof("body") == "error" and r.error.code == C.ABORTED, "stale finished → ABORTED")
    check(c.worker_info(member.name).state == C.WORKER_DOWN, "member DOWN")
    # the stale member comes back, claiming the old attempt: told to kill it
    member.alive = True
    member.running[jid] = a1.token
    reg = member.register()
    check([k.token for k in reg.registered.kill] == [a1.token], "re-registered worker told to kill")
    member.running.clear()
    for x in (head, member):
        c.call("drain", C.DrainRequest(worker=x.name))
    c.call("cancel", C.CancelRequest(job_id=jid))
    head.close(), member.close()


def test_restart_keeps_running(c):
    w = FakeWorker(c, "r1", slots=2)
    w.register()
    jid = c.submit_command(["sleep", "5"], name="survivor")
    a = w.wait_inbox("assign").assign
    w.running[jid] = a.token
    c.kill_coordinator(signal.SIGKILL)
    c.start_coordinator()
    w.pump(1.0)   # heartbeat → "register first" → re-register with the running attempt
    j = c.job(jid)
    check(STATE.Name(j.state) == "JOB_RUNNING" and j.restart_count == 0, "still RUNNING after restart")
    check(w.finish(jid, a.token).WhichOneof("body") == "ack", "finished accepted by the new coordinator")
    check(state(c, jid) == "JOB_COMPLETED", "COMPLETED")
    # a worker shutting down reports its job NODE_FAIL: requeued, not failed
    j2 = c.submit_command(["sleep", "5"], name="shutdown")
    a2 = w.wait_inbox("assign").assign
    w.running[j2] = a2.token
    w.finish(j2, a2.token, "JOB_NODE_FAIL")
    j = c.job(j2)
    check(STATE.Name(j.state) in ("JOB_REQUEUED", "JOB_RUNNING") and j.restart_count == 1
          and j.attempts[0].state == STATE.Value("JOB_NODE_FAIL"), "worker shutdown → requeued")
    c.call("cancel", C.CancelRequest(job_id=j2))
    w.close()
    c.call("drain", C.DrainRequest(worker="r1"))


def test_burst_and_kill(c):
    """200 submissions from 4 clients; the coordinator is SIGKILLed midway.
    Every acknowledged job survives; retries with the same submission id
    never make a second job."""
    sids = ["burst-%d-%s" % (i, uuid.uuid4().hex[:8]) for i in range(200)]
    acked = {}
    lock = threading.Lock()

    def client(part):
        cl = Client(c.control, timeout_s=2)
        for sid in part:
            spec = C.JobSpec(kind="command", argv=["true"], name="burst",
                             resources=C.Resources(ranks=4000))  # no worker runs it
            req = C.SubmitRequest(spec=spec, submission_id=sid)
            while True:
                try:
                    r = cl.call("submit", req, timeout_s=2)
                    with lock:
                        acked[sid] = r.submit.job_id
                    break
                except (TimeoutError, ApiError):
                    time.sleep(0.1)   # coordinator down: retry the same id
        cl.close()

    threads = [threading.Thread(target=client, args=(sids[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    while len(acked) < 80:
        time.sleep(0.005)
    before = dict(acked)
    c.kill_coordinator(signal.SIGKILL)
    time.sleep(0.3)
    c.start_coordinator()
    for t in threads:
        t.join(120)
    check(len(acked) == 200, "every submission acknowledged in the end (%d)" % len(acked))
    jobs = c.call("list", C.ListJobsRequest(limit=10000)).jobs.jobs
    burst = [j for j in jobs if j.submission_id.startswith("burst-")]
    by_sid = {}
    for j in burst:
        by_sid.setdefault(j.submission_id, []).append(j.id)
    check(all(len(v) == 1 for v in by_sid.values()), "no submission twice")
    check(set(by_sid) == set(sids), "every submission present (%d of 200)" % len(by_sid))
    check(all(by_sid[s] == [i] for s, i in before.items()), "jobs acked before the kill kept their ids")
    check(all(by_sid[s] == [i] for s, i in acked.items()), "retries got the same job")
    print("burst: %d acked before the kill, %d after" % (len(before), 200 - len(before)))


def test_garbage(c):
    """Bad frames to both sockets: an error answer each, and the coordinator lives."""
    rnd = random.Random(7)
    cl = Client(c.control, timeout_s=5)
    for i in range(300):
        n = rnd.choice([0, 1, 3, 17, 200, 5000])
        data = bytes(rnd.getrandbits(8) for _ in range(n))
        if i % 3 == 0:   # a valid request with its bytes flipped
            req = C.Request(request_id=5, submit=C.SubmitRequest(spec=C.JobSpec(kind="command", argv=["x"])))
            b = bytearray(req.SerializeToString())
            for _ in range(3):
                b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
            data = bytes(b)
        frames = [data] if i % 5 else [data, b"extra"]
        r = cl.raw(frames)
        check(r is not None, "an answer to garbage frame %d" % i)
    r = cl.raw([b"x" * (1 << 20 + 1)])
    check(r is not None and r.error.code == C.RESOURCE_EXHAUSTED, "oversized → RESOURCE_EXHAUSTED")
    cl.close()
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.IDENTITY, b"garbage-worker")
    s.setsockopt(zmq.LINGER, 0)
    s.connect(c.workers_ep)
    for i in range(200):
        s.send(bytes(rnd.getrandbits(8) for _ in range(rnd.choice([0, 2, 50, 3000]))))
        check(s.poll(5000), "worker socket answers garbage %d" % i)
        if s.poll(0):
            m = W.CoordinatorMessage()
            m.ParseFromString(s.recv())
            check(m.WhichOneof("body") == "error", "error answer")
    s.close(0)
    check(c.coord.poll() is None, "coordinator still running")
    c.call("workers", C.WorkersRequest())


def test_limits(c):
    """Frame and field limits on both sockets, each a typed error."""
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.IDENTITY, b"limit-worker")
    s.setsockopt(zmq.LINGER, 0)
    s.connect(c.workers_ep)

    def ask(msg):
        s.send(msg if isinstance(msg, bytes) else msg.SerializeToString())
        if not s.poll(5000):
            return None
        m = W.CoordinatorMessage()
        m.ParseFromString(s.recv())
        return m

    m = ask(b"x" * ((1 << 20) + 1))
    check(m is not None and m.error.code == C.RESOURCE_EXHAUSTED, "worker socket: a 1 MiB + 1 frame → RESOURCE_EXHAUSTED")
    m = ask(W.WorkerMessage(request_id=1, register=W.Register(name="limit-worker", host="h" * 300, slots=1)))
    check(m is not None and m.error.code == C.INVALID_ARGUMENT and "register.host" in m.error.message,
          "worker socket: a 300-byte host → INVALID_ARGUMENT naming register.host")
    s.close(0)
    big = C.JobSpec(kind="command", argv=["true"], name="n" * 129)
    e = expect_error("INVALID_ARGUMENT", c.submit, big)
    check(e is not None and "spec.name" in e.message, "control: a 129-byte name names spec.name")
    e = expect_error("INVALID_ARGUMENT", c.submit_command, ["echo", "a" * 5000])
    check(e is not None and "argv" in e.message, "control: a 5000-byte argv entry names spec.argv")
    e = expect_error("INVALID_ARGUMENT", c.submit, C.JobSpec(kind="pretrain", spec_json="{" + " " * (256 << 10) + "}"))
    check(e is not None and "spec_json" in e.message, "control: a spec over 256 KiB names spec.spec_json")


def test_path_confinement(c):
    """Job specs name data-root things by plain names and files only inside the
    data root or an --allow-dir directory (README "Path confinement")."""
    root = c.root
    # outside the data root and every allowed directory (the test's cwd is one)
    outside = tempfile.mkdtemp(prefix="foil-outside-")
    open(os.path.join(outside, "vocab.txt"), "w").write("[PAD]\n")
    os.makedirs(os.path.join(root, "tok"), exist_ok=True)
    open(os.path.join(root, "tok", "vocab.txt"), "w").write("[PAD]\n")
    link = os.path.join(root, "escape")
    if not os.path.islink(link):
        os.symlink(outside, link)

    def pretrain(**spec):
        return C.JobSpec(kind="pretrain", spec_json=json.dumps(spec), workdir=root)

    good = {"data": {"dataset": "d"}, "model": {"tokenizer": "tok/vocab.txt"}, "steps": 1}
    jid = c.submit(pretrain(**good))
    check(jid > 0, "a spec whose tokenizer is inside the data root is accepted")
    c.call("cancel", C.CancelRequest(job_id=jid))
    for spec, code, words in [
            ({"data": {"dataset": "../d"}}, "INVALID_ARGUMENT", "data.dataset"),
            ({"data": {"dataset": "a/b"}}, "INVALID_ARGUMENT", "data.dataset"),
            ({"data": {"dataset": "d", "negatives_bank": ".."}}, "INVALID_ARGUMENT", "data.negatives_bank"),
            ({"model": {"tokenizer": os.path.relpath(os.path.join(outside, "vocab.txt"), root)}},
             "PERMISSION_DENIED", "model.tokenizer"),
            ({"model": {"tokenizer": os.path.join(outside, "vocab.txt")}}, "PERMISSION_DENIED", "model.tokenizer"),
            ({"model": {"tokenizer": "/etc/passwd"}}, "PERMISSION_DENIED", "/etc/passwd"),
            ({"model": {"tokenizer": "escape/vocab.txt"}}, "PERMISSION_DENIED", "escape/vocab.txt"),
            ({"init_from": "escape/new/ckpt.h5"}, "PERMISSION_DENIED", "init_from"),
            ({"refresh": {"index": "x", "corpus": {"file": "/tmp/c.jsonl"}}}, "PERMISSION_DENIED", "corpus.file")]:
        e = expect_error(code, c.submit, pretrain(**spec))
        check(e is not None and words in e.message, "%s → %s naming %s (%s)" % (spec, code, words, e and e.message))
    refresh = {"name": "code", "checkpoint": "escape", "corpus": {"dataset": "code"}}
    e = expect_error("PERMISSION_DENIED", c.submit,
                     C.JobSpec(kind="refresh", spec_json=json.dumps(refresh), workdir=root))
    check(e is not None and "checkpoint" in e.message, "a refresh checkpoint through a symlink out is refused")
    for ix in ("..", ".", "a/b"):
        expect_error("INVALID_ARGUMENT", c.submit, C.JobSpec(kind="serve", spec_json=json.dumps({"index": ix})))
    e = expect_error("PERMISSION_DENIED", c.submit_command, ["true"], workdir=outside)
    check(e is not None and "spec.workdir" in e.message, "a workdir outside is refused naming spec.workdir")
    expect_error("PERMISSION_DENIED", c.submit_command, ["true"], workdir=link)
    expect_error("INVALID_ARGUMENT", c.submit_command, ["true"], name="..")
    # foil-run checks again where it opens the files (a spec that reached a
    # worker some other way): inside a cluster ($FOIL_JOB_ID) it refuses
    spec = os.path.join(root, "bad-spec.json")
    json.dump({"data": {"dataset": "d"}, "model": {"tokenizer": "escape/vocab.txt"}, "steps": 1}, open(spec, "w"))
    env = dict(c.env(), FOIL_JOB_ID="99", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    r = subprocess.run([c.bin("foil-run"), "pretrain", spec, "--root", root, "--job-dir",
                        os.path.join(root, "jobs", "99")], env=env, cwd=root, capture_output=True, text=True,
                       timeout=120)
    check(r.returncode != 0 and "model.tokenizer" in r.stderr and "outside the data root" in r.stderr,
          "foil-run in a cluster refuses a tokenizer through a symlink out (%d: %s)" % (r.returncode, r.stderr.strip()))
    os.unlink(link)
    shutil.rmtree(outside, ignore_errors=True)


def main():
    build, scratch = sys.argv[1], sys.argv[2]
    c = Cluster(build, os.path.join(scratch, "root"), heartbeat_ms=100, liveness=4)
    c.start_coordinator()
    try:
        for t in (test_api_basics, test_dependencies, test_gang_and_node_fail, test_restart_keeps_running,
                  test_garbage, test_limits, test_path_confinement, test_burst_and_kill):
            t0 = time.time()
            n = len(failures)
            t(c)
            print("%-32s %s (%.1f s)" % (t.__name__, "ok" if len(failures) == n else "FAILED",
                                         time.time() - t0), flush=True)
    finally:
        codes = c.stop()
    check(codes.get("coordinator") == 0, "coordinator exits 0 on SIGTERM (no leaks): %s" % codes)
    sys.exit(report("cluster_api"))


if __name__ == "__main__":
    main()
