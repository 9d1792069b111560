#!/usr/bin/python3
"""The `foil` job commands against a real foil-coordinator and foil-worker
on loopback, and deploy/local-cluster.sh once.

    cluster_cli.py BUILD_DIR WORKDIR

Submit (flags, a spec file with "job" keys, -- PROGRAM), jobs, status,
logs, watch without a TTY, --wait exit statuses (0 COMPLETED, 20 FAILED,
21 CANCELLED), an --after chain of three jobs that runs in order, cancel,
a repeated --submission-id that returns the same job, --json output that
parses, and `logs --follow` that ends with exit 10 (UNAVAILABLE) when the
coordinator is SIGKILLed. Also what the CLI review found: `--after ""`
refused, a spec without "kind" that is not pretrain's refused naming its
kind, a submit without a reply naming the submission id to retry with,
repeated and short --state, sbatch time limits, cancel of several ids,
quoted commands and "-" for a job that never ran in `foil status`, ELAPSED
"-" for a REQUEUED job, the full exit table in --help, and the default
`foil jobs` showing a pending job behind more than 1000 newer ones.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from foilcluster import Cluster, STATE  # noqa: E402

build, work = (os.path.abspath(a) for a in sys.argv[1:3])
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.makedirs(work, exist_ok=True)
checks = 0


def check(cond, what, *detail):
    global checks
    checks += 1
    if not cond:
        print("FAILED:", what)
        for d in detail:
            print("   ", d)
        raise SystemExit(1)


def run(c, *args, code=0, **kw):
    p = c.foil(*args, **kw)
    check(p.returncode == code, "foil %s exits %d" % (" ".join(args), code),
          "got %d" % p.returncode, "stdout: " + p.stdout[-2000:], "stderr: " + p.stderr[-2000:])
    return p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def job_id(p):
    out = p.stdout.strip()
    check(out.isdigit(), "submit prints the job id alone", repr(p.stdout), p.stderr)
    return int(out)


# nothing here needs a lost worker found fast: a 5 s liveness window, so a
# worker slowed by ASan beside other tests is not taken for lost
c = Cluster(build, os.path.join(work, "root"), heartbeat_ms=200, liveness=25)
try:
    c.start_coordinator()

    # ---- what needs only the coordinator -----------------------------------
    p = run(c, "jobs", "--json")
    j = json.loads(p.stdout)
    # now: the coordinator's clock (this host's here), which ELAPSED is measured against
    # truncated: jobs left out at the reply's size limit (none here)
    check(sorted(j) == ["jobs", "now", "truncated"] and j["jobs"] == [] and j["truncated"] == 0
          and abs(j["now"] - time.time()) < 60,
          "jobs --json of an empty queue", p.stdout)
    p = run(c, "workers")
    check(p.stdout.split()[:3] == ["NAME", "HOST", "STATE"], "workers prints a header", p.stdout)

    early = job_id(run(c, "submit", "--submission-id", "cli-test-1", "--name", "early", "--",
                       "sh", "-c", "echo early"))
    again = run(c, "submit", "--submission-id", "cli-test-1", "--", "sh", "-c", "echo early")
    check(job_id(again) == early, "a repeated submission id returns the same job", again.stdout)
    check("already submitted" in again.stderr, "and says so", again.stderr)

    bad = os.path.join(work, "bad.json")
    with open(bad, "w") as f:
        json.dump({"kind": "command", "argv": ["true"], "job": {"ranks": -2}}, f)
    p = run(c, "submit", bad, code=2)
    check("job.ranks" in p.stderr, "a bad job key is named", p.stderr)
    with open(bad, "w") as f:
        json.dump({"kind": "command", "argv": ["true"], "job": {"rankz": 2}}, f)
    p = run(c, "submit", bad, code=2)
    check("job.rankz is not a job key" in p.stderr, "an unknown job key is named", p.stderr)
    p = run(c, "status", "999999", code=3)
    check("999999" in p.stderr, "status of a missing job says which", p.stderr)

    # `foil --help` lists every exit status the commands return
    p = run(c, "--help")
    for code in ("4 already exists", "7 failed precondition", "8 aborted", "9 deadline exceeded",
                 "20 failed"):
        check(code in p.stdout, "foil --help lists exit status '%s'" % code, p.stdout)

    # `--after "$jid"` where the submit that set jid failed: refused, never a
    # job without its dependency
    for flag in (["--after", ""], ["--after="], ["--after-any", ""]):
        p = run(c, "submit", *flag, "--", "true", code=2)
        check("needs job ids, got an empty value" in p.stderr, "%s refused" % flag, p.stderr)

    # a spec without "kind" that is not a pretrain spec: refused before
    # sending, naming the kind it looks like (it used to run as pretrain)
    nokind = os.path.join(work, "refresh-nokind.json")
    with open(nokind, "w") as f:
        json.dump({"name": "wordnet", "checkpoint": "jobs/1", "corpus": {"dataset": "wordnet"}}, f)
    p = run(c, "submit", nokind, code=2)
    check('add "kind": "refresh"' in p.stderr, "a refresh spec without kind is named", p.stderr)
    with open(nokind, "w") as f:
        f.write('{"kind": "command", "argv": ["true"], "job": {"ranks": 1, "ranks": 2}}')
    p = run(c, "submit", nokind, code=2)
    check('"job.ranks" appears twice' in p.stderr, "a duplicate key is refused", p.stderr)

    # a warning signal that could never be sent
    p = run(c, "submit", "--signal", "USR1@10", "--", "true", code=2)
    check("the job has none" in p.stderr, "--signal without a time limit", p.stderr)
    p = run(c, "submit", "--signal", "USR1", "--time-limit", "30", "--", "true", code=2)
    check("means 60 s before the time limit" in p.stderr and "N < 30" in p.stderr,
          "the implicit 60 s is explained", p.stderr)

    # no reply: the job may exist, and the submission id to retry with is given
    dead = "tcp://127.0.0.1:%d" % free_port()
    p = run(c, "submit", "--coordinator", dead, "--timeout", "0.2", "--", "true", code=10)
    check(re.search(r"retry with --submission-id [0-9a-f]{32}\b", p.stderr),
          "a submit without a reply names its submission id", p.stderr)
    p = run(c, "submit", "--coordinator", dead, "--timeout=0.2", "--submission-id", "mine-1",
            "--", "true", code=10)
    check("retry with --submission-id mine-1" in p.stderr, "and a given one", p.stderr)

    # sbatch's durations for --time-limit; a bare number stays seconds
    tl = job_id(run(c, "submit", "--time-limit", "1:00:00", "--name", "tl", "--", "true"))
    check("time limit:    1:00:00" in run(c, "status", str(tl)).stdout, "--time-limit 1:00:00")
    tl2 = job_id(run(c, "submit", "--time-limit", "90", "--name", "tl2", "--", "true"))
    check("time limit:    1:30" in run(c, "status", str(tl2)).stdout, "--time-limit 90 is seconds")
    run(c, "submit", "--time-limit", "1:61", "--", "true", code=2)

    # cancel takes several ids; one that fails does not stop the others, and
    # the exit status is the worst
    p = run(c, "cancel", str(tl), "999998", str(tl2), code=3)
    check("job %d CANCELLED" % tl in p.stdout and "job %d CANCELLED" % tl2 in p.stdout,
          "cancel of several ids cancels each", p.stdout, p.stderr)
    check("999998" in p.stderr, "and names the one that failed", p.stderr)
    # a job cancelled before it ran has no exit code
    p = run(c, "status", str(tl))
    check(re.search(r"exit code: +-\n", p.stdout), "status: exit code - for a job that never ran",
          p.stdout)

    doomed = job_id(run(c, "submit", "--name", "doomed", "--", "true"))
    p = run(c, "cancel", str(doomed))
    check("CANCELLED" in p.stdout, "cancel prints the state", p.stdout)
    p = run(c, "watch", str(doomed), code=21)
    check(p.stdout.strip().splitlines()[-1].startswith("job %d CANCELLED" % doomed),
          "watch of a cancelled job ends with its state", p.stdout)

    p = run(c, "status", str(early), "--json")
    j = json.loads(p.stdout)
    check(j["id"] == early and j["state"] == "JOB_PENDING" and j["submission_id"] == "cli-test-1"
          and j["spec"]["argv"] == ["sh", "-c", "echo early"], "status --json", p.stdout)

    # ---- with a worker -------------------------------------------------------
    c.start_worker("w1", slots=2)
    c.wait_state(early, {"JOB_COMPLETED"}, timeout=60)
    p = run(c, "workers")
    check(any(l.split()[:1] == ["w1"] for l in p.stdout.splitlines()), "workers lists w1", p.stdout)
    check(json.loads(run(c, "workers", "--json").stdout)["workers"][0]["name"] == "w1",
          "workers --json")

    spec = os.path.join(work, "hello.json")
    with open(spec, "w") as f:
        json.dump({"kind": "command", "name": "hello",
                   "argv": ["sh", "-c", "echo hello from foil; sleep 0.5"],
                   "job": {"ranks": 1, "priority": 5, "time_limit_s": 120}}, f)
    p = run(c, "submit", spec, "--wait", timeout=120)
    hello = job_id(p)
    check("COMPLETED" in p.stderr, "--wait follows the job on stderr", p.stderr)
    p = run(c, "jobs")
    rows = [l.split() for l in p.stdout.splitlines()[1:]]
    check(any(r[:4] == [str(hello), "hello", "command", "COMPLETED"] for r in rows),
          "jobs lists the job that just ended", p.stdout)
    check(not any(r[0] == str(hello) for r in
                  (l.split() for l in run(c, "jobs", "--state", "pending,running").stdout
                   .splitlines()[1:])), "jobs --state filters")
    p = run(c, "status", str(hello))
    check("COMPLETED" in p.stdout and "w1" in p.stdout and "priority:      5" in p.stdout,
          "status shows state, attempt worker, priority", p.stdout)
    p = run(c, "logs", str(hello))
    check("hello from foil" in p.stdout, "logs prints the job's output", p.stdout)
    j = json.loads(run(c, "jobs", "--json").stdout)
    check(any(x["id"] == hello and x["state"] == "JOB_COMPLETED" for x in j["jobs"]), "jobs --json")

    p = run(c, "submit", "--wait", "--", "sh", "-c", "exit 3", code=20, timeout=120)
    check("FAILED" in p.stderr, "a failing command: FAILED, exit status 20", p.stderr)
    failed = job_id(p)
    p = run(c, "status", str(failed))
    check("command:       sh -c 'exit 3'\n" in p.stdout, "status quotes the command's words",
          p.stdout)
    check(re.search(r"exit code: +3\n", p.stdout), "and shows its exit code", p.stdout)

    # an --after chain runs in order
    order = os.path.join(work, "order")
    if os.path.exists(order):
        os.remove(order)
    prev, chain = None, []
    for name in ("a", "b", "c"):
        args = ["submit", "--name", "chain-" + name]
        if prev:
            args += ["--after", str(prev)]
        prev = job_id(run(c, *args, "--", "sh", "-c", "sleep 0.3; echo %s >> %s" % (name, order)))
        chain.append(prev)
    c.wait_state(chain[-1], {"JOB_COMPLETED"}, timeout=120)
    check(open(order).read().split() == ["a", "b", "c"], "the chain ran in order",
          open(order).read())
    jobs = [c.job(i) for i in chain]
    check(all(jobs[k + 1].start_time >= jobs[k].end_time for k in range(2)),
          "each link started after the previous ended")

    # cancel a running job
    sleeper = job_id(run(c, "submit", "--name", "sleeper", "--", "sleep", "60"))
    c.wait_state(sleeper, {"JOB_RUNNING"}, timeout=60)
    # --state repeated adds (it used to keep only the last), short codes too
    held = job_id(run(c, "submit", "--name", "held", "--after", str(sleeper), "--", "true"))
    for args in (["--state", "RUNNING", "--state", "PENDING"], ["--state", "R,PD"],
                 ["--state=r", "--state=pd"]):
        ids = [l.split()[0] for l in run(c, "jobs", *args).stdout.splitlines()[1:]]
        check(str(sleeper) in ids and str(held) in ids, "jobs %s lists both" % " ".join(args), ids)
    run(c, "cancel", str(sleeper))
    c.wait_state(sleeper, {"JOB_CANCELLED"}, timeout=60)
    run(c, "watch", str(sleeper), code=21)

    # watch without a TTY: plain lines, one per change, none redrawn
    w = job_id(run(c, "submit", "--name", "watched", "--", "sh", "-c", "sleep 1"))
    p = run(c, "watch", str(w), timeout=120)
    lines = p.stdout.splitlines()
    check(lines and all(l.startswith("job %d " % w) for l in lines) and "\r" not in p.stdout
          and "\033" not in p.stdout, "watch prints plain lines", p.stdout)
    check(lines[-1].startswith("job %d COMPLETED exit 0" % w), "watch ends with the final state",
          p.stdout)
    check(len(lines) == len(set(lines)), "no line printed twice", p.stdout)

    # drain and undo
    p = run(c, "drain", "w1")
    check("DRAIN" in p.stdout, "drain shows the worker draining", p.stdout)
    p = run(c, "drain", "w1", "--undo")
    check("DRAIN" not in p.stdout.splitlines()[1], "drain --undo", p.stdout)

    # a REQUEUED job (its worker lost) shows ELAPSED "-": nothing runs
    # (it kept counting from the failed attempt's start)
    rq = job_id(run(c, "submit", "--name", "requeued", "--", "sleep", "60"))
    c.wait_state(rq, {"JOB_RUNNING"}, timeout=60)
    c.kill_worker("w1")
    c.wait_state(rq, {"JOB_REQUEUED"}, timeout=60)
    time.sleep(1.1)
    row = [l.split() for l in run(c, "jobs").stdout.splitlines() if l.split()[:1] == [str(rq)]]
    check(row and row[0][3] == "REQUEUED" and row[0][6] == "-", "REQUEUED shows ELAPSED -", row)
    run(c, "cancel", str(rq))
    c.wait_state(rq, {"JOB_CANCELLED"}, timeout=60)
    c.start_worker("w1", slots=2)

    # logs --follow when the coordinator dies: exit 10, never success
    tail = job_id(run(c, "submit", "--name", "tail", "--", "sh", "-c", "echo start; sleep 60"))
    c.wait_state(tail, {"JOB_RUNNING"}, timeout=60)
    f = subprocess.Popen([c.bin("foil"), "logs", str(tail), "--follow", "--timeout", "1"],
                         env=c.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    c.kill_coordinator(signal.SIGKILL)
    out, err = f.communicate(timeout=60)
    check(f.returncode == 10, "logs --follow exits 10 when the coordinator is gone",
          "got %d" % f.returncode, out, err)
    check("no reply from the coordinator" in err, "and says why", err)
    c.start_coordinator()
    run(c, "cancel", str(tail))
    c.wait_state(tail, {"JOB_CANCELLED"}, timeout=60)
finally:
    c.stop()


# ---- `foil jobs` with more than 1000 newer jobs --------------------------------
# The default view asked for the newest 1000 jobs of any state, so a job
# still pending behind them was missing from the queue.
c = Cluster(build, os.path.join(work, "root-many"), heartbeat_ms=200, liveness=25)
try:
    c.start_coordinator()
    first = c.submit_command(["true"], name="first")
    for _ in range(1000):
        c.submit_command(["true"], name="later")
    p = run(c, "jobs")
    ids = [l.split()[0] for l in p.stdout.splitlines()[1:]]
    check(len(ids) == 1001 and ids[0] == str(first), "jobs lists the oldest pending job too",
          "%d rows, first %s" % (len(ids), ids[:1]))
    j = json.loads(run(c, "jobs", "--json").stdout)
    check(len(j["jobs"]) == 1001, "and so does jobs --json", len(j["jobs"]))
finally:
    c.stop()


# ---- deploy/local-cluster.sh --------------------------------------------------
root = os.path.join(work, "local-root")
subprocess.run(["rm", "-rf", root], check=True)
# the jobs below run in this test's directory, under the build directory:
# allowed as a user's own directory would be (the build may live outside
# the checkout, which local-cluster.sh allows by itself)
env = dict(os.environ, FOIL_ROOT=root, FOIL_BUILD_DIR=build, FOIL_CONTROL_PORT=str(free_port()),
           FOIL_WORKERS_PORT=str(free_port()), FOIL_ALLOW_DIRS=build)
env.pop("FOIL_COORDINATOR", None)
script = os.path.join(REPO, "deploy", "local-cluster.sh")


def lc(*args, code=0):
    p = subprocess.run(["bash", script, *args], env=env, capture_output=True, text=True,
                       timeout=120)
    check(p.returncode == code, "local-cluster.sh %s exits %d" % (" ".join(args), code),
          "got %d" % p.returncode, p.stdout, p.stderr)
    return p


try:
    lc("start")
    p = lc("status")
    check("coordinator: running" in p.stdout and "worker-local: running" in p.stdout,
          "status shows both running", p.stdout)
    # the CLI finds the local cluster from FOIL_ROOT alone (coordinator.json)
    p = subprocess.run([os.path.join(build, "foil"), "submit", "--wait", "--", "true"], env=env,
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, "a job on the local cluster, found without --coordinator",
          p.stdout, p.stderr)
finally:
    lc("stop")
p = lc("status", code=3)
check("coordinator: stopped" in p.stdout, "status after stop", p.stdout)
print("%d checks passed" % checks)
