"""foil-worker with a real coordinator on loopback (tests/integration/foilcluster.py).

    cluster_worker.py BUILD_DIR WORK_DIR [MPIRUN_FLAGS...]

Scenarios: a command job runs to COMPLETED with its output in the job log;
cancel stops a running job's whole process group (CANCELLED); a job over
its time limit gets its warn signal and ends TIMEOUT; a 4-rank job is
gang-placed on two 2-slot workers and launched by mpirun from the head;
SIGKILL of the worker running a job makes the attempt NODE_FAIL and the
job runs again on the other worker (restart_count 1); progress sent by a
job's rank 0 reaches Job.progress; a second foil-worker started with the
name of a running one is refused (it logs ALREADY_EXISTS and keeps
retrying) while the first runs its job to completion, never DOWN; a
worker stopped with SIGTERM says goodbye, so one started again at once
under its name is accepted without waiting out the liveness window, idle
or running a job, which is requeued once and runs on the new one.
"""
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from foilcluster import Cluster, STATE, pb  # noqa: E402

build, work = sys.argv[1], sys.argv[2]
mpi_flags = " ".join(sys.argv[3:])
os.makedirs(work, exist_ok=True)
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        failures.append(what)


def group_gone(pgid, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def read_pid(path, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            s = open(path).read().strip()
            if s:
                return int(s)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise TimeoutError("no pid in " + path)


# a 2 s liveness window: the killed worker is still found in seconds, and a
# worker slowed by ASan beside other tests is not taken for lost (0.8 s was)
c = Cluster(build, os.path.join(work, "root"), heartbeat_ms=200, liveness=10, grace_s=2)
leftovers = []
try:
    c.start_coordinator()
    wargs = ["--mpirun-args", mpi_flags] if mpi_flags else []
    c.start_worker("w1", slots=2, extra_args=wargs)
    c.start_worker("w2", slots=2, extra_args=wargs)

    # ---- a command job runs to COMPLETED; its output is in the job log ----
    jid = c.submit_command(["sh", "-c", "echo hello from job $FOIL_JOB_ID attempt $FOIL_ATTEMPT"])
    j = c.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED"}, timeout=30)
    check(STATE.Name(j.state) == "JOB_COMPLETED", "command job COMPLETED (%s: %s)" % (STATE.Name(j.state), j.reason))
    log = c.log(jid)
    check("hello from job %d attempt 1" % jid in log, "its output is in <root>/jobs/%d/log" % jid)
    check("attempt 1 (token" in log and "sh -c" in log, "the worker's launch line is in the log")

    # ---- argv is executed as an array (execvp), never through a shell: shell
    # metacharacters in an argument reach the program literally ----
    meta = "a;b $(touch PWNED1) `touch PWNED2` | cat > f && echo x '\" * ~ $HOME\\n"
    jid = c.submit_command(["printf", "[%s]\\n", meta])
    j = c.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED"}, timeout=30)
    check(STATE.Name(j.state) == "JOB_COMPLETED", "printf job COMPLETED (%s)" % j.reason)
    check("[%s]" % meta in c.log(jid), "an argv element with shell metacharacters is passed literally")
    jobdir = os.path.join(c.root, "jobs", str(jid))
    check(not any(os.path.exists(os.path.join(d, n)) for d in (os.getcwd(), jobdir)
                  for n in ("PWNED1", "PWNED2", "f")), "no shell ran it (no file was made)")

    # ---- cancel of a running job: CANCELLED, its process group gone ----
    pidf = os.path.join(work, "cancel.pid")
    jid = c.submit_command(["sh", "-c", "echo $$ > %s; sleep 300 & wait" % pidf])
    c.wait_state(jid, {"JOB_RUNNING"}, timeout=30)
    pg = read_pid(pidf)
    leftovers.append(pg)
    c.call("cancel", pb.control.CancelRequest(job_id=jid))
    j = c.wait_state(jid, {"JOB_CANCELLED", "JOB_FAILED", "JOB_COMPLETED"}, timeout=30)
    check(STATE.Name(j.state) == "JOB_CANCELLED", "cancel -> CANCELLED (%s)" % STATE.Name(j.state))
    check(group_gone(pg), "the cancelled job's process group is gone")

    # ---- time limit: warn signal, then TIMEOUT ----
    script = ("trap 'echo warned by USR1' USR1; i=0; "
              "while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done")
    jid = c.submit_command(["sh", "-c", script], time_limit_s=3, warn_signal=int(signal.SIGUSR1),
                           warn_before_s=2)
    j = c.wait_state(jid, {"JOB_TIMEOUT", "JOB_FAILED", "JOB_COMPLETED", "JOB_CANCELLED"}, timeout=40)
    check(STATE.Name(j.state) == "JOB_TIMEOUT", "over its time limit -> TIMEOUT (%s)" % STATE.Name(j.state))
    check("warned by USR1" in c.log(jid), "the warn signal reached the job's trap")

    # ---- 4 ranks over two 2-slot workers, launched by mpirun from the head ----
    jid = c.submit_command(["sh", "-c", "echo rank-$OMPI_COMM_WORLD_RANK-of-$OMPI_COMM_WORLD_SIZE"], ranks=4)
    j = c.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED"}, timeout=60)
    check(STATE.Name(j.state) == "JOB_COMPLETED", "4-rank job COMPLETED (%s: %s)" % (STATE.Name(j.state), j.reason))
    workers = sorted(j.attempts[-1].workers) if j.attempts else []
    check(workers == ["w1", "w2"], "gang-placed on both workers (%s)" % workers)
    log = c.log(jid)
    check(all("rank-%d-of-4" % r in log for r in range(4)), "every rank ran")
    check("--host localhost:4" in log, "placements on one host merged into localhost:4")

    # ---- progress from rank 0 reaches Job.progress ----
    proto_dir = os.path.dirname(os.path.dirname(os.path.dirname(pb.worker.__file__)))
    code = (
        "import os, sys, time, zmq\n"
        "sys.path.insert(0, %r)\n"
        "from foil.v1 import worker_pb2, control_pb2\n"
        "s = zmq.Context().socket(zmq.PUSH); s.connect(os.environ['FOIL_PROGRESS'])\n"
        "for i in range(1, 31):\n"
        "    u = worker_pb2.ProgressUpdate(job_id=int(os.environ['FOIL_JOB_ID']),\n"
        "        token=int(os.environ['FOIL_ATTEMPT_TOKEN']), key=os.environ['FOIL_PROGRESS_KEY'],\n"
        "        progress=control_pb2.Progress(value=i, total=30, message='step %%d/30' %% i,\n"
        "                                      metrics_json='{\"loss\": 0.5}'))\n"
        "    s.send(u.SerializeToString()); time.sleep(0.1)\n"
        "time.sleep(1)\n" % proto_dir)
    jid = c.submit_command([sys.executable, "-c", code])
    c.wait_state(jid, {"JOB_RUNNING"}, timeout=30)
    seen = None
    deadline = time.time() + 20
    while time.time() < deadline:
        j = c.job(jid)
        if j.progress.message:
            seen = j.progress
        if STATE.Name(j.state) not in ("JOB_RUNNING", "JOB_PENDING"):
            break
        time.sleep(0.1)
    j = c.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED"}, timeout=30)
    check(STATE.Name(j.state) == "JOB_COMPLETED", "progress job COMPLETED (%s: %s)" % (STATE.Name(j.state), j.reason))
    check(seen is not None and seen.message.startswith("step ") and seen.total == 30,
          "progress reached Job.progress (%s)" % (seen.message if seen else None))
    check(j.progress.value >= 25, "the latest progress wins (value %g)" % j.progress.value)

    # ---- a second foil-worker with a running one's name: refused; the first keeps its route ----
    # (its routing id was the name: the second took the route over, the
    # first got no replies, and the two flapped, the first DOWN for a minute)
    jid = c.submit_command(["sh", "-c", "sleep 4; echo the first kept it"])
    j = c.wait_state(jid, {"JOB_RUNNING"}, timeout=30)
    owner = j.attempts[-1].workers[0]
    dup_key = owner + "-second"
    dup = c.start_worker(owner, slots=2, extra_args=wargs, wait=False, key=dup_key)
    dlog = os.path.join(c.root, "worker-%s.log" % dup_key)
    downs, refused, text = 0, False, ""
    deadline = time.time() + 30
    while time.time() < deadline:
        info = c.worker_info(owner)
        downs += info is None or info.state == pb.control.WORKER_DOWN
        text = open(dlog).read() if os.path.exists(dlog) else ""
        refused = "ALREADY_EXISTS" in text and "in use by a live foil-worker on host localhost" in text
        if refused and STATE.Name(c.job(jid).state) not in ("JOB_RUNNING", "JOB_PENDING"):
            break
        time.sleep(0.1)
    j = c.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED", "JOB_NODE_FAIL", "JOB_CANCELLED"}, timeout=30)
    check(refused, "the second foil-worker named %s logs that the coordinator refuses it (%s)"
          % (owner, [ln for ln in text.splitlines() if "ERROR" in ln][-1:]))
    check(dup.poll() is None, "the second keeps running (registering again now and then), not exiting")
    check(STATE.Name(j.state) == "JOB_COMPLETED" and j.restart_count == 0 and len(j.attempts) == 1
          and "the first kept it" in c.log(jid),
          "the first ran its job to completion (%s, restart count %d)" % (STATE.Name(j.state), j.restart_count))
    check(downs == 0, "the first was never DOWN meanwhile (%d polls said so)" % downs)
    clog = open(os.path.join(c.root, "coordinator.log")).read()
    check("a second foil-worker of that name" in clog, "the coordinator logs the refusal")
    dup.send_signal(signal.SIGTERM)
    check(dup.wait(30) == 0, "the second stops on SIGTERM (exit %s)" % dup.returncode)
    del c.workers[dup_key]
    info = c.worker_info(owner)
    check(info is not None and info.state != pb.control.WORKER_DOWN, "the first is still up")

    # ---- SIGKILL the worker running a job: NODE_FAIL, requeued, done elsewhere ----
    pidf = os.path.join(work, "nodefail.pid")
    script = ('if [ "$FOIL_RESTART_COUNT" = 0 ]; then echo $$ > %s; sleep 300; fi; '
              'echo second attempt restart $FOIL_RESTART_COUNT' % pidf)
    jid = c.submit_command(["sh", "-c", script], max_failures=1, max_failures_set=True)
    j = c.wait_state(jid, {"JOB_RUNNING"}, timeout=30)
    leftovers.append(read_pid(pidf))
    first = j.attempts[-1].workers[0]
    other = "w2" if first == "w1" else "w1"
    c.kill_worker(first, signal.SIGKILL)
    j = c.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED", "JOB_NODE_FAIL"}, timeout=60)
    check(STATE.Name(j.state) == "JOB_COMPLETED", "requeued job COMPLETED (%s: %s)" % (STATE.Name(j.state), j.reason))
    check(j.restart_count == 1, "restart_count 1 (%d)" % j.restart_count)
    states = [STATE.Name(a.state) for a in j.attempts]
    check(states[:1] == ["JOB_NODE_FAIL"], "first attempt NODE_FAIL (%s)" % states)
    check(len(j.attempts) >= 2 and j.attempts[-1].workers[0] == other,
          "second attempt on %s (%s)" % (other, [list(a.workers) for a in j.attempts]))
    check("second attempt restart 1" in c.log(jid), "the second attempt ran with FOIL_RESTART_COUNT=1")

    # ---- SIGTERM a worker, start it again at once: its goodbye frees the
    # name, so the new process is accepted without waiting out the liveness
    # window (it was refused ALREADY_EXISTS for up to one, the coordinator
    # still counting the stopped one as live) ----
    def restart(key, new_key):
        """SIGTERMs the foil-worker c.workers[key] (named `other`), starts
        another of that name at once as new_key; returns (seconds until it
        registered or None, its log, the old one's log)."""
        old = c.workers[key]
        old.send_signal(signal.SIGTERM)
        check(old.wait(30) == 0, "%s (%s) stops on SIGTERM (exit %s)" % (other, key, old.returncode))
        t0 = time.time()
        c.start_worker(other, slots=2, extra_args=wargs, wait=False, key=new_key)
        nlog = os.path.join(c.root, "worker-%s.log" % new_key)
        text, took = "", None
        deadline = time.time() + 30
        while time.time() < deadline:
            text = open(nlog).read() if os.path.exists(nlog) else ""
            if "registered with the coordinator" in text:
                took = time.time() - t0
                break
            time.sleep(0.02)
        return took, text, open(os.path.join(c.root, "worker-%s.log" % key)).read()

    window = 0.2 * 10  # heartbeat_ms x liveness, as the Cluster above
    took, text, olog = restart(other, other + "-2")
    check(took is not None and "ALREADY_EXISTS" not in text,
          "%s stopped idle and started again at once is accepted without a refusal (in %s s; the window is "
          "%.1f s; %s)" % (other, "%.2f" % took if took is not None else "never", window,
                           [ln for ln in text.splitlines() if "ALREADY_EXISTS" in ln][-1:]))
    check("said goodbye to the coordinator" in olog, "the stopped worker's log says it said goodbye")
    check("said goodbye" in open(os.path.join(c.root, "coordinator.log")).read(),
          "the coordinator logs the goodbye")

    # ---- the same with a job running: the job it stopped is requeued once
    # (its end travels in the goodbye, so the coordinator never gives it back
    # to the process on its way out, which cost it a second failure) and runs
    # on the new process ----
    script = ('if [ "$FOIL_RESTART_COUNT" = 0 ]; then sleep 300; fi; '
              'echo ran again restart $FOIL_RESTART_COUNT')
    jid = c.submit_command(["sh", "-c", script], max_failures=1, max_failures_set=True)
    j = c.wait_state(jid, {"JOB_RUNNING"}, timeout=30)
    check(j.attempts[-1].workers[0] == other, "the job runs on %s, the one worker up" % other)
    took, text, olog = restart(other + "-2", other + "-3")
    check(took is not None and "ALREADY_EXISTS" not in text,
          "%s stopped with a job and started again at once is accepted without a refusal (in %s s)"
          % (other, "%.2f" % took if took is not None else "never"))
    j = c.wait_state(jid, {"JOB_COMPLETED", "JOB_FAILED", "JOB_NODE_FAIL"}, timeout=60)
    states = [STATE.Name(a.state) for a in j.attempts]
    check(STATE.Name(j.state) == "JOB_COMPLETED" and j.restart_count == 1 and states == ["JOB_NODE_FAIL", "JOB_COMPLETED"]
          and "ran again restart 1" in c.log(jid),
          "the stopped job was requeued once and ran on the new process (%s, attempts %s)"
          % (STATE.Name(j.state), states))
finally:
    c.stop()
    for pg in leftovers:
        try:
            os.killpg(pg, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

if failures:
    print("%d check(s) failed; logs under %s" % (len(failures), c.root))
    sys.exit(1)
print("all checks passed")
