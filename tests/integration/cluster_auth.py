"""cluster_auth.py — CURVE authentication and role authorization of the
coordinator (common/auth.h), from pyzmq CURVE clients, the C `foil` CLI
and a real foil-worker, all with keys written by `foil keys gen`.

Proves: an unknown key, a plain (NULL) client and a wrong server key are
refused in the handshake (the coordinator logs the refusal and no request
of theirs is ever handled: no job appears), and a foil-worker refused so
stops by itself, exit 12 (UNAUTHENTICATED), saying why; a known key of the wrong role
gets PERMISSION_DENIED; a submitter cannot cancel another's job; a worker
key is refused on the control API and a user key on the worker socket
(in the handshake: it cannot take over a worker's routing id either);
SIGHUP rereads the allow-list (adds and removes a key); garbage, truncated
and wrong-key handshakes leave a good client working; --max-pending gives
RESOURCE_EXHAUSTED; an old job store without the submitter column still
loads; without keys a non-loopback endpoint is refused unless --insecure.

usage: cluster_auth.py BUILD_DIR SCRATCH_DIR
"""
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from foilcluster import (ApiError, Client, Cluster, check, curve_client, expect_error, gen_key, key_set,  # noqa: E402
                         pb, report)

C, W = pb.control, pb.worker


def spec(argv=("sleep", "30"), name="job"):
    return C.JobSpec(kind="command", name=name, argv=list(argv), resources=C.Resources(ranks=1))


def log_text(c):
    with open(os.path.join(c.root, "coordinator.log")) as f:
        return f.read()


def wait_log(c, text, timeout=5, after=0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in log_text(c)[after:]:
            return True
        time.sleep(0.05)
    return False


def silent(client, field, msg, what):
    """A request that must get no answer at all (refused in the handshake)."""
    try:
        client.call(field, msg, timeout_s=1.5)
        check(False, what + ": got an answer")
    except TimeoutError:
        check(True, what)
    except ApiError as e:
        check(False, "%s: got an error reply %s (the request reached foil code)" % (what, e.code))


def njobs(c):
    return len(c.call("list", C.ListJobsRequest()).jobs.jobs)


def old_store(root):
    """A coordinator.db as written before jobs had a submitter column."""
    db = sqlite3.connect(os.path.join(root, "coordinator.db"))
    db.executescript(
        "CREATE TABLE jobs(id INTEGER PRIMARY KEY, submission_id TEXT UNIQUE, spec BLOB NOT NULL,"
        " state INTEGER NOT NULL, reason TEXT, submit_time REAL, start_time REAL, end_time REAL,"
        " exit_code INTEGER, restart_count INTEGER, failures INTEGER);"
        "CREATE TABLE attempts(job_id INTEGER NOT NULL, n INTEGER NOT NULL, token INTEGER NOT NULL UNIQUE,"
        " placement TEXT, start_time REAL, end_time REAL, state INTEGER, exit_code INTEGER,"
        " signal INTEGER, resume_from TEXT, reason TEXT, PRIMARY KEY(job_id, n));"
        "CREATE TABLE workers(name TEXT PRIMARY KEY, host TEXT, slots INTEGER, gpus INTEGER, drain INTEGER,"
        " down INTEGER, registered_time REAL, last_heartbeat REAL);"
        "CREATE TABLE events(id INTEGER PRIMARY KEY, time REAL, job_id INTEGER, worker TEXT, text TEXT);")
    db.execute("INSERT INTO jobs(submission_id, spec, state, reason, submit_time, start_time, end_time,"
               " exit_code, restart_count, failures) VALUES(?,?,?,?,?,?,?,?,?,?)",
               ("old-1", spec(("true",), "old").SerializeToString(), C.JOB_COMPLETED, "", time.time(),
                0, 0, 0, 0, 0))
    db.commit()
    db.close()


def storm(host, port, stop, counts):
    """Garbage bytes, a truncated ZMTP greeting and a truncated CURVE HELLO,
    over and over, on raw TCP connections."""
    greeting = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"CURVE".ljust(20, b"\x00") + b"\x00" +
                b"\x00" * 31)
    n = 0
    while not stop.is_set():
        kind = n % 3
        try:
            s = socket.create_connection((host, port), timeout=2)
            if kind == 0:
                s.sendall(os.urandom(200))
            elif kind == 1:
                s.sendall(greeting[:30])
            else:
                s.sendall(greeting + b"\x04\x30\x05HELLO" + os.urandom(20))  # HELLO cut short
            time.sleep(0.01)
            s.close()
            counts[kind] += 1
        except OSError:
            pass
        n += 1


def main():
    build, scratch = sys.argv[1], sys.argv[2]
    shutil.rmtree(scratch, ignore_errors=True)
    roles = [("coord", "admin"), ("root", "admin"), ("alice", "submitter"), ("bob", "submitter"),
             ("rita", "reader"), ("w1", "worker"), ("eve", "submitter")]
    keys, allow, k = key_set(build, scratch, "coord", roles, allowed=("root", "alice", "bob", "rita", "w1"))

    # ---- without keys: loopback only, unless --insecure -------------------------------
    c0 = Cluster(build, os.path.join(scratch, "plain"))
    p = subprocess.run([c0.bin("foil-coordinator"), "--root", c0.root, "--control", "tcp://0.0.0.0:*",
                        "--workers", "tcp://127.0.0.1:*"], capture_output=True, text=True, timeout=30)
    check(p.returncode == 5 and "without authentication" in p.stderr,
          "a non-loopback bind without CURVE is refused (rc %d: %s)" % (p.returncode, p.stderr.strip()))
    c0.control = "tcp://0.0.0.0:*"
    c0.start_coordinator(["--insecure"])
    check("WITHOUT authentication" in log_text(c0), "--insecure: the log says it runs without authentication")
    c0.stop()

    # ---- the secure coordinator, over an old job store --------------------------------------
    c = Cluster(build, os.path.join(scratch, "root"))
    old_store(c.root)
    c.keys = k("root")
    c.start_coordinator(["--curve-key", os.path.join(keys, "coord.key_secret"), "--allow-keys", allow,
                         "--max-pending", "2"])
    j1 = c.job(1)
    check(j1.spec.name == "old" and j1.submitter == "", "a job of the old store loads (no submitter)")
    alice, bob, rita = (Client(c.control, keys=k(n)) for n in ("alice", "bob", "rita"))

    a1 = alice.call("submit", C.SubmitRequest(spec=spec(name="a1"))).submit.job_id
    b1 = bob.call("submit", C.SubmitRequest(spec=spec(name="b1"))).submit.job_id
    check(c.job(a1).submitter == "alice" and c.job(b1).submitter == "bob", "jobs record their submitter")

    # roles
    e = expect_error("PERMISSION_DENIED", bob.call, "cancel", C.CancelRequest(job_id=a1))
    check(e is not None and "alice" in e.message, "a submitter cannot cancel another's job")
    check(c.job(a1).state == C.JOB_PENDING, "the other's job is untouched")
    check(alice.call("cancel", C.CancelRequest(job_id=a1)).cancel.state == C.JOB_CANCELLED,
          "a submitter cancels her own job")
    check(len(rita.call("list", C.ListJobsRequest()).jobs.jobs) == 3, "a reader lists jobs")
    rita.call("workers", C.WorkersRequest())
    rita.call("logs", C.LogsRequest(job_id=b1))
    expect_error("PERMISSION_DENIED", rita.call, "submit", C.SubmitRequest(spec=spec()))
    expect_error("PERMISSION_DENIED", rita.call, "cancel", C.CancelRequest(job_id=b1))
    expect_error("PERMISSION_DENIED", bob.call, "drain", C.DrainRequest(worker="w1"))
    wk = Client(c.control, keys=k("w1"))
    e = expect_error("PERMISSION_DENIED", wk.call, "list", C.ListJobsRequest())
    check(e is not None and "worker key" in e.message, "a worker key is refused on the control API")
    wk.close()
    # a user key on the worker socket: refused in the handshake (the worker
    # port's ZAP domain admits worker keys only), nothing of it handled
    mark = len(log_text(c))
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.IDENTITY, b"fake-node")
    curve_client(s, *k("alice"))
    s.connect(c.workers_ep)
    s.send(W.WorkerMessage(request_id=7, register=W.Register(host="x", slots=1)).SerializeToString())
    check(not s.poll(1500), "a user key on the worker socket gets no answer")
    s.close(0)
    check(wait_log(c, "not a worker key", after=mark), "the coordinator logs a user key refused on the worker port")
    check(c.worker_info("fake-node") is None, "no worker registered with a user key")

    # priority above 0 is an admin's (as Slurm's nice); anyone may lower their own
    hi = spec(name="b-urgent")
    hi.priority = 5
    e = expect_error("PERMISSION_DENIED", bob.call, "submit", C.SubmitRequest(spec=hi))
    check(e is not None and "only an admin key" in e.message, "a submitter's priority above 0 is refused, saying why")
    lo = spec(name="b-later")
    lo.priority = -1
    bl = bob.call("submit", C.SubmitRequest(spec=lo)).submit.job_id
    check(bob.call("cancel", C.CancelRequest(job_id=bl)).cancel.state == C.JOB_CANCELLED,
          "a submitter may lower its job's priority (and cancel it)")
    ra = c.call("submit", C.SubmitRequest(spec=hi)).submit.job_id
    check(c.call("get", C.GetJobRequest(job_id=ra)).job.spec.priority == 5, "an admin submits priority 5")
    c.call("cancel", C.CancelRequest(job_id=ra))

    # max pending per submitter: bob has b1 pending
    bob.call("submit", C.SubmitRequest(spec=spec(name="b2")))
    e = expect_error("RESOURCE_EXHAUSTED", bob.call, "submit", C.SubmitRequest(spec=spec(name="b3")))
    alice.call("submit", C.SubmitRequest(spec=spec(name="a2")))  # alice has her own quota
    check(c.call("cancel", C.CancelRequest(job_id=b1)).cancel.state == C.JOB_CANCELLED, "an admin cancels anyone's job")
    bob.call("submit", C.SubmitRequest(spec=spec(name="b3")))

    # ---- refused in the handshake: nothing reaches foil code -----------------------------------
    before, mark = njobs(c), len(log_text(c))
    eve = Client(c.control, keys=k("eve"))
    silent(eve, "submit", C.SubmitRequest(spec=spec(name="eve")), "an unknown key gets no answer")
    check(wait_log(c, "refused a client", after=mark), "the coordinator logs the refused key")
    plain = Client(c.control)
    silent(plain, "submit", C.SubmitRequest(spec=spec(name="plain")), "a client without CURVE gets no answer")
    wrong = Client(c.control, keys=(k("alice")[0], os.path.join(keys, "bob.key")))
    silent(wrong, "submit", C.SubmitRequest(spec=spec(name="wrong")), "a wrong server key gets no answer")
    check(njobs(c) == before and not [j for j in c.call("list", C.ListJobsRequest()).jobs.jobs
                                      if j.spec.name in ("eve", "plain", "wrong")],
          "no job of a refused client exists")
    plain.close(), wrong.close()

    # ---- garbage / truncated / wrong-key handshakes while a good client works ----------------------
    host, port = c.control[len("tcp://"):].rsplit(":", 1)
    stop, counts = threading.Event(), [0, 0, 0]
    t = threading.Thread(target=storm, args=(host, int(port), stop, counts))
    t.start()
    ok = 0
    try:
        for i in range(40):
            rita.call("get", C.GetJobRequest(job_id=b1), timeout_s=5)
            ok += 1
            if i % 10 == 0:  # and an unknown key now and then
                x = Client(c.control, keys=k("eve"), timeout_s=0.3)
                try:
                    x.call("list", C.ListJobsRequest())
                except TimeoutError:
                    pass
                x.close()
    except (TimeoutError, ApiError) as e:
        print("good client failed:", e)
    stop.set()
    t.join()
    check(ok == 40 and min(counts) > 0,
          "a good client keeps working through bad handshakes (%d/40 calls, storm %s)" % (ok, counts))
    check(c.coord.poll() is None, "the coordinator is still running")

    # ---- SIGHUP: add and remove keys -----------------------------------------------------------
    shutil.copy(os.path.join(keys, "eve.key"), allow)
    os.remove(os.path.join(allow, "alice.key"))
    mark = len(log_text(c))
    c.coord.send_signal(signal.SIGHUP)
    check(wait_log(c, "allow-list", after=mark), "SIGHUP rereads the allow-list")
    eve2 = Client(c.control, keys=k("eve"))
    e2 = eve2.call("submit", C.SubmitRequest(spec=spec(name="eve2"))).submit.job_id
    check(c.job(e2).submitter == "eve", "a key added to the allow-list connects after SIGHUP")
    alice2 = Client(c.control, keys=k("alice"))
    silent(alice2, "list", C.ListJobsRequest(), "a key removed from the allow-list is refused after SIGHUP")
    eve.close(), eve2.close(), alice2.close()

    # ---- the C CLI with keys ------------------------------------------------------------------
    def foil(cmd, *args, key="alice"):
        a = [cmd, "--coordinator", c.control, "--timeout", "2"]
        if key:
            a += ["--key", k(key)[0], "--server-key", k(key)[1]]
        return c.foil(*(a + list(args)))
    r = foil("jobs", key="rita")
    check(r.returncode == 0 and "b3" in r.stdout, "foil jobs with a reader key (rc %d: %s)" % (r.returncode, r.stderr))
    r = foil("submit", "--", "true", key="rita")
    check(r.returncode == 5 and "may not submit" in r.stderr,
          "foil submit with a reader key: exit 5 PERMISSION_DENIED (rc %d: %s)" % (r.returncode, r.stderr.strip()))
    r = foil("cancel", str(b1), key="eve")
    check(r.returncode == 5, "foil cancel of another's job: exit 5 (rc %d: %s)" % (r.returncode, r.stderr.strip()))
    r = foil("jobs", key=None)
    check(r.returncode == 12, "foil without keys against a CURVE coordinator: exit 12 UNAUTHENTICATED (rc %d: %s)"
          % (r.returncode, r.stderr.strip()))
    r = foil("jobs", key="alice")  # removed from the allow-list
    check(r.returncode == 12 and "allow-list" in r.stderr,
          "foil with a refused key says so (rc %d: %s)" % (r.returncode, r.stderr.strip()))

    # ---- a real foil-worker with a worker key runs a submitter's job ------------------------------
    c.call("cancel", C.CancelRequest(job_id=e2))
    for j in c.call("list", C.ListJobsRequest(states=[C.JOB_PENDING])).jobs.jobs:
        c.call("cancel", C.CancelRequest(job_id=j.id))
    c.start_worker("w1", extra_args=["--key", k("w1")[0], "--server-key", k("w1")[1]])
    jid = bob.call("submit", C.SubmitRequest(spec=spec(("sh", "-c", "echo secure-hello"), "hello"))).submit.job_id
    j = c.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED"}, timeout=60)
    check(C.JobState.Name(j.state) == "JOB_COMPLETED" and "secure-hello" in c.log(jid),
          "a worker with a worker key runs a job")
    # a reader that learnt w1's routing id (it is in the coordinator's log)
    # connects under it: without the worker port's key check, ZeroMQ's
    # handover gave it w1's route, and so w1's Assigns, and w1 was lost
    routes = re.findall(r"; as (w1/[^\s]+)", log_text(c))
    check(routes, "the coordinator logs w1's routing id")
    thief = zmq.Context.instance().socket(zmq.DEALER)
    thief.setsockopt(zmq.LINGER, 0)
    thief.setsockopt(zmq.IDENTITY, routes[-1].encode() if routes else b"w1/x")
    curve_client(thief, *k("rita"))
    thief.connect(c.workers_ep)
    thief.send(W.WorkerMessage(request_id=8, heartbeat=W.Heartbeat()).SerializeToString())
    time.sleep(1.5)  # beyond the liveness window (4 heartbeats of 200 ms)
    jid = bob.call("submit", C.SubmitRequest(spec=spec(("sh", "-c", "echo still-w1"), "still"))).submit.job_id
    j = c.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED", "JOB_NODE_FAIL"}, timeout=60)
    check(C.JobState.Name(j.state) == "JOB_COMPLETED" and "still-w1" in c.log(jid) and j.restart_count == 0,
          "a reader connecting under w1's routing id does not take its route (job %s, %d restart(s))"
          % (C.JobState.Name(j.state), j.restart_count))
    check(not thief.poll(200), "the reader received nothing meant for w1")
    thief.close(0)

    # workers the coordinator refuses stop by themselves, with the code and a
    # log line that says why: a key not allow-listed (the ZAP handler refuses
    # it: UNAUTHENTICATED, naming the key and --allow-keys; libzmq would never
    # connect that socket again), no keys at all against CURVE, and a worker
    # key used under another worker's name (PERMISSION_DENIED from the
    # coordinator). A wrong server key only makes the coordinator hang up,
    # as a proxy whose coordinator is down would: that worker says so in its
    # log and keeps trying (code None), unregistered.
    gen_key(build, keys, "mallory", "worker")
    mallory_pub = [ln.split("=", 1)[1].strip().strip('"') for ln in open(os.path.join(keys, "mallory.key"))
                   if ln.startswith("public-key")][0]
    cases = (("w9", ["--key", k("mallory")[0], "--server-key", k("mallory")[1]], "an unknown key", 12,
              ["refused this worker's key", mallory_pub, "--allow-keys"]),
             ("w6", [], "no keys", 12, ["the server runs CURVE: give --key and --server-key"]),
             ("w7", ["--key", k("mallory")[0], "--server-key", os.path.join(keys, "bob.key")], "a wrong server key",
              None, ["is --server-key the server's public key?"]),
             ("w8", ["--key", k("w1")[0], "--server-key", k("w1")[1]], "another worker's key", 5,
              ["may speak only as worker \"w1\""]))
    for wname, args, what, code, says in cases:
        c.start_worker(wname, wait=False, extra_args=args)
    for wname, args, what, code, says in cases:
        p, wlog = c.workers[wname], os.path.join(c.root, "worker-%s.log" % wname)
        deadline = time.time() + (40 if code is not None else 3)
        while p.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        text = open(wlog).read() if os.path.exists(wlog) else ""
        check(all(x in text for x in says), "a worker with %s logs why the coordinator refused it (%s)"
              % (what, [ln for ln in text.splitlines() if "ERROR" in ln][-1:]))
        check(p.returncode == code, "the worker with %s %s: %s" % (what, "keeps trying" if code is None else
                                                                  "exits %d by itself" % code, p.returncode))
        check(c.worker_info(wname) is None, "the worker with %s is not registered" % what)
        if p.returncode is None:
            p.kill()
            p.wait()
        del c.workers[wname]
    check(c.worker_info("w1").state != C.WORKER_DOWN, "the real w1 is still up")

    alice.close(), bob.close(), rita.close()
    codes = c.stop()
    check(all(v == 0 for v in codes.values()), "clean exits %s" % codes)
    sys.exit(report("cluster_auth"))


if __name__ == "__main__":
    main()
