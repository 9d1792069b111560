#!/usr/bin/python3
"""Control plane: foil's coordinator against Slurm (slurmctld + slurmd) on
loopback, same work, in one run.

    /usr/bin/python3 bench/control.py [--build build] [--work DIR] [--jobs 100]
                                      [--requests 400] [--clients 8]
                                      [--pending 10000] [--skip-slurm]

1. Control API requests/s, CLIENTS concurrent clients (threads), REQUESTS
   each: (a) submissions that cannot run (foil: a `command` job on a
   coordinator with no worker, so only the durable submit is measured;
   Slurm: `sbatch --hold --wrap true`), (b) status queries of those jobs
   (foil: GetJobRequest; Slurm: `scontrol show job ID`). foil through its
   Python client (pyzmq, one socket per thread) and through its CLI, one
   `foil submit` / `foil status` process per request, like `sbatch` and
   `scontrol`; the CLI rows are the like-for-like ones.
2. Submit-to-running latency on an idle one-node cluster (4 CPU slots):
   jobs one at a time; each job writes `date +%s.%N` to a file; latency =
   that time minus the client's clock just before the submit (foil CLI,
   foil pyzmq, sbatch). The next job is submitted once the last has ended.
   Slurm twice: at its defaults (batch_sched_delay=3 s holds batch jobs
   back; --slurm-default-jobs of them) and with batch_sched_delay=0.
3. Scheduling pass time with PENDING pending jobs: foil's
   `bench/bench_sched` (one conservative-backfill pass, median of 5; on one
   64-slot worker like Slurm's node, and on 64 workers x 32 slots) beside
   Slurm's sdiag mean cycles (main scheduler and backfill) over a queue of
   PENDING individually submitted jobs blocked behind a job holding 60 of a
   64-CPU node. The work is not the same: see the printed notes.

Each phase starts fresh daemons on a fresh state directory. Slurm runs from
a slurm.conf written under WORK (ports picked free, no cgroups, no
accounting); munged is started if it is not running and stopped if this
script started it. If Slurm cannot be brought up the script says why and
prints foil's numbers alone.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from foilcluster import Client, Cluster, STATE, pb  # noqa: E402

C = pb.control
SLOTS = 4
# Slurm delays starting a batch job by up to batch_sched_delay (default 3 s)
# to schedule submissions in bulk; its latency is measured at the defaults
# and with this delay off.
FAST = "batch_sched_delay=0"


def note(*a):
    print(*a, file=sys.stderr, flush=True)


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    i = int(k)
    j = min(i + 1, len(xs) - 1)
    return xs[i] + (xs[j] - xs[i]) * (k - i)


def hammer(clients, per_client, make_worker):
    """Runs `clients` threads; make_worker(t) returns a function f(i) doing
    request i of thread t and returning True on success. Returns (req/s,
    failures)."""
    fails = [0] * clients
    fns = [make_worker(t) for t in range(clients)]
    start = threading.Barrier(clients + 1)

    def body(t):
        start.wait()
        for i in range(per_client):
            if not fns[t](i):
                fails[t] += 1

    th = [threading.Thread(target=body, args=(t,)) for t in range(clients)]
    for x in th:
        x.start()
    start.wait()
    t0 = time.perf_counter()
    for x in th:
        x.join()
    return clients * per_client / (time.perf_counter() - t0), sum(fails)


def wait_file(path, timeout):
    """Polls for a file with one complete line; returns its float."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path) as f:
                s = f.read()
            if s.endswith("\n"):
                return float(s)
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    raise TimeoutError("%s not written after %ss" % (path, timeout))


# ---- foil -------------------------------------------------------------------------


class Foil:
    def __init__(self, build, work):
        self.build, self.work = build, work
        self.cli = os.path.join(build, "foil")
        self.has_cli = False
        if os.access(self.cli, os.X_OK):
            p = subprocess.run([self.cli, "submit", "--help"], capture_output=True, text=True)
            self.has_cli = p.returncode == 0 and "usage: foil submit" in p.stdout + p.stderr
        self.c = None

    def fresh(self, name, worker=False):
        self.stop()
        self.c = Cluster(self.build, os.path.join(self.work, name))
        self.c.start_coordinator()
        if worker:
            self.c.start_worker("w1", slots=SLOTS)
        return self.c

    def run_cli(self, *args):
        # --coordinator always: never the default address of someone else's cluster
        return subprocess.run([self.cli] + list(args) + ["--coordinator", self.c.control],
                              env=self.c.env(), capture_output=True, text=True)

    def stop(self):
        if self.c is not None:
            self.c.stop()
            self.c = None

    # 1. requests/s
    def rates(self, clients, n):
        out = {}
        c = self.fresh("rps")
        spec = C.JobSpec(kind="command", name="bench", argv=["true"], resources=C.Resources(ranks=1))
        ids = []
        lock = threading.Lock()

        def zmq_submit(t):
            cl = Client(c.control)

            def f(i):
                r = cl.call("submit", C.SubmitRequest(spec=spec))
                with lock:
                    ids.append(r.submit.job_id)
                return r.submit.job_id > 0
            return f

        out["submit_zmq"] = hammer(clients, n, zmq_submit)
        if self.has_cli:
            def cli_submit(t):
                def f(i):
                    p = self.run_cli("submit", "--name", "bench", "--", "true")
                    return p.returncode == 0 and p.stdout.strip().isdigit()
                return f
            out["submit_cli"] = hammer(clients, n, cli_submit)

        def zmq_get(t):
            cl = Client(c.control)
            rng = random.Random(t)

            def f(i):
                return cl.call("get", C.GetJobRequest(job_id=rng.choice(ids))).job.state == STATE.Value("JOB_PENDING")
            return f

        out["status_zmq"] = hammer(clients, n, zmq_get)
        if self.has_cli:
            def cli_get(t):
                rng = random.Random(100 + t)

                def f(i):
                    p = self.run_cli("status", str(rng.choice(ids)))
                    return p.returncode == 0 and "PENDING" in p.stdout
                return f
            out["status_cli"] = hammer(clients, n, cli_get)
        out["queued"] = len(c.call("list", C.ListJobsRequest(limit=10000)).jobs.jobs)
        self.stop()
        return out

    # 2. latency
    def latency(self, n):
        c = self.fresh("latency", worker=True)
        ts = os.path.join(self.work, "foil-ts")
        shutil.rmtree(ts, ignore_errors=True)
        os.makedirs(ts)
        out = {}
        modes = (["cli"] if self.has_cli else []) + ["zmq"]
        for mode in modes:
            lat = []
            for i in range(n + 1):  # the first is a warm-up
                path = os.path.join(ts, "%s-%d" % (mode, i))
                argv = ["sh", "-c", "date +%s.%N > " + path]
                t0 = time.time()
                if mode == "cli":
                    p = self.run_cli("submit", "--", *argv)
                    if p.returncode:
                        raise RuntimeError("foil submit failed: " + p.stderr)
                    jid = int(p.stdout)
                else:
                    jid = c.submit_command(argv)
                t1 = wait_file(path, 60)
                if i:
                    lat.append(t1 - t0)
                c.wait_state(jid, {"JOB_COMPLETED"}, timeout=60)
            out[mode] = lat
        self.stop()
        return out

    # 3. scheduling pass
    def sched(self, pending):
        prog = os.path.join(self.build, "bench", "bench_sched")
        res = {}
        for key, extra in (("64x32", []), ("1x64", ["1", "64", "20"])):
            o = subprocess.run([prog, str(pending)] + extra, check=True, capture_output=True, text=True).stdout
            res[key] = json.loads(o.strip().splitlines()[-1])
        return res


# ---- Slurm ------------------------------------------------------------------------


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class SlurmError(Exception):
    pass


class Slurm:
    def __init__(self, work):
        self.work = work
        self.ctld = self.slurmd = None
        self.started_munged = False
        self.dir = None
        self.sched_params = ""
        self.cpus = SLOTS

    # -- munge
    def munge_ok(self):
        try:
            enc = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
            if enc.returncode:
                return False
            dec = subprocess.run(["unmunge"], input=enc.stdout, capture_output=True, timeout=10)
            return dec.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def start_munge(self):
        for tool in ("munge", "munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sdiag"):
            if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
                raise SlurmError("%s is not installed (apt-get install -y slurmctld slurmd slurm-client "
                                 "munge, or FOIL_BENCH=1 bash deploy/setup.sh)" % tool)
        if self.munge_ok():
            return
        if not os.path.exists("/etc/munge/munge.key"):
            r = subprocess.run(["mungekey", "--create"], capture_output=True, text=True)
            if r.returncode:
                raise SlurmError("no /etc/munge/munge.key and mungekey --create failed: " + r.stderr.strip())
            subprocess.run(["chown", "munge:munge", "/etc/munge/munge.key"])
        for d in ("/run/munge", "/var/log/munge", "/var/lib/munge"):
            os.makedirs(d, exist_ok=True)
            subprocess.run(["chown", "munge:munge", d])
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "munge", "--", "munged"]
        else:
            cmd = ["munged"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            r = subprocess.run(["munged", "--force"], capture_output=True, text=True)
        deadline = time.time() + 10
        while not self.munge_ok():
            if time.time() > deadline:
                raise SlurmError("munged does not answer (munged said: %s)" % (r.stderr.strip() or "nothing"))
            time.sleep(0.1)
        self.started_munged = True

    # -- daemons
    def conf(self):
        d = self.dir
        lines = [
            "ClusterName=foilbench",
            "SlurmctldHost=localhost",
            "SlurmctldPort=%d" % free_port(),
            "SlurmdPort=%d" % free_port(),
            # config_overrides: the node may claim more CPUs than the machine has
            "NodeName=localhost CPUs=%d State=UNKNOWN" % self.cpus,
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
            "SlurmdParameters=config_overrides",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/backfill",
            "StateSaveLocation=%s/state" % d,
            "SlurmdSpoolDir=%s/spool" % d,
            "SlurmctldPidFile=%s/slurmctld.pid" % d,
            "SlurmdPidFile=%s/slurmd.pid" % d,
            "SlurmctldLogFile=%s/slurmctld.log" % d,
            "SlurmdLogFile=%s/slurmd.log" % d,
            "AuthType=auth/munge",
            "MpiDefault=none",
            "ReturnToService=2",
            "JobCompType=jobcomp/none",
            "AccountingStorageType=accounting_storage/none",
            "SlurmUser=root",
            "MaxJobCount=20000",
            "SlurmctldDebug=error",
            "SlurmdDebug=error",
            "MailProg=/bin/true",
        ]
        if self.sched_params:
            lines.append("SchedulerParameters=" + self.sched_params)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def env(self):
        return dict(os.environ, SLURM_CONF=self.conf_path)

    def cmd(self, *args, check=True, timeout=60):
        p = subprocess.run(list(args), env=self.env(), capture_output=True, text=True, timeout=timeout)
        if check and p.returncode:
            raise SlurmError("%s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr.strip()))
        return p

    def log_tail(self):
        out = []
        for n in ("slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"):
            p = os.path.join(self.dir, n)
            if os.path.exists(p):
                t = open(p, errors="replace").read().strip().splitlines()[-6:]
                if t:
                    out.append("  %s:\n    %s" % (n, "\n    ".join(t)))
        return "\n".join(out)

    def fresh(self, name, cpus=SLOTS, sched_params=""):
        self.stop()
        self.start_munge()
        self.cpus, self.sched_params = cpus, sched_params
        self.dir = os.path.join(self.work, "slurm-" + name)
        shutil.rmtree(self.dir, ignore_errors=True)
        for sub in ("state", "spool"):
            os.makedirs(os.path.join(self.dir, sub))
        self.conf_path = os.path.join(self.dir, "slurm.conf")
        self.conf()
        env = self.env()
        self.ctld = subprocess.Popen(["slurmctld", "-D", "-f", self.conf_path], env=env,
                                     stdout=open(os.path.join(self.dir, "slurmctld.out"), "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 30
        while self.cmd("scontrol", "ping", check=False).stdout.find("UP") < 0:
            if self.ctld.poll() is not None or time.time() > deadline:
                raise SlurmError("slurmctld did not come up:\n" + self.log_tail())
            time.sleep(0.2)
        self.slurmd = subprocess.Popen(["slurmd", "-D", "-N", "localhost", "-f", self.conf_path], env=env,
                                       stdout=open(os.path.join(self.dir, "slurmd.out"), "w"),
                                       stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while True:
            st = self.cmd("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
            if st == "idle":
                break
            if self.slurmd.poll() is not None or time.time() > deadline:
                raise SlurmError("the node is not idle (sinfo: %r):\n%s" % (st, self.log_tail()))
            time.sleep(0.2)
        return self

    def stop(self):
        if self.ctld is None:
            return
        if self.ctld.poll() is None:
            # cancel every job first: slurmstepd outlives slurmd otherwise
            self.cmd("scancel", "-u", "root", check=False)
            deadline = time.time() + 30
            while time.time() < deadline:
                q = self.cmd("squeue", "-h", "-t", "R,CG", "-o", "%i", check=False).stdout.strip()
                if not q:
                    break
                time.sleep(0.2)
        for p in (self.slurmd, self.ctld):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.ctld = self.slurmd = None

    def close(self):
        self.stop()
        if self.started_munged:
            subprocess.run(["munged", "--stop"], capture_output=True)
            self.started_munged = False

    def sbatch(self, *args):
        p = self.cmd("sbatch", "--parsable", "-o", "/dev/null", *args)
        return int(p.stdout.strip().split(";")[0])

    # 1. requests/s
    def rates(self, clients, n):
        out = {}
        self.fresh("rps")
        ids = []
        lock = threading.Lock()
        env = self.env()

        def submit(t):
            def f(i):
                p = subprocess.run(["sbatch", "--parsable", "--hold", "-o", "/dev/null", "-J", "bench",
                                    "--wrap", "true"], env=env, capture_output=True, text=True)
                ok = p.returncode == 0 and p.stdout.strip().isdigit()
                if ok:
                    with lock:
                        ids.append(int(p.stdout))
                return ok
            return f

        out["submit_cli"] = hammer(clients, n, submit)
        if not ids:
            raise SlurmError("no sbatch succeeded:\n" + self.log_tail())

        def get(t):
            rng = random.Random(100 + t)

            def f(i):
                p = subprocess.run(["scontrol", "show", "job", str(rng.choice(ids))], env=env,
                                   capture_output=True, text=True)
                return p.returncode == 0 and "JobState=PENDING" in p.stdout
            return f

        out["status_cli"] = hammer(clients, n, get)
        out["queued"] = len(self.cmd("squeue", "-h", "-o", "%i").stdout.split())
        self.stop()
        return out

    # 2. latency
    def latency(self, n, params=""):
        self.fresh("latency", sched_params=params)
        ts = os.path.join(self.work, "slurm-ts")
        shutil.rmtree(ts, ignore_errors=True)
        os.makedirs(ts)
        lat = []
        for i in range(n + 1):  # the first is a warm-up
            path = os.path.join(ts, str(i))
            t0 = time.time()
            jid = self.sbatch("--wrap", "date +%s.%N > " + path)
            t1 = wait_file(path, 120)
            if i:
                lat.append(t1 - t0)
            deadline = time.time() + 60
            while self.cmd("squeue", "-h", "-j", str(jid), "-o", "%T", check=False).stdout.strip():
                if time.time() > deadline:
                    raise SlurmError("job %d still in the queue 60 s after it started" % jid)
                time.sleep(0.02)
        self.stop()
        return lat

    # 3. scheduling
    def sdiag(self):
        s = self.cmd("sdiag").stdout
        main, bf = s.split("Backfilling stats", 1)
        main = main.split("Main schedule statistics", 1)[1]

        def num(text, label):
            m = re.search(r"^\s*" + re.escape(label) + r":\s*(\d+)", text, re.M)
            return int(m.group(1)) if m else None
        return {"main_cycles": num(main, "Total cycles"), "main_mean_us": num(main, "Mean cycle"),
                "main_max_us": num(main, "Max cycle"), "main_mean_depth": num(main, "Mean depth cycle"),
                "bf_cycles": num(bf, "Total cycles"), "bf_mean_us": num(bf, "Mean cycle"),
                "bf_max_us": num(bf, "Max cycle"), "bf_depth": num(bf, "Last depth cycle"),
                "bf_depth_try": num(bf, "Last depth cycle (try sched)"),
                "bf_queue": num(bf, "Last queue length")}

    def wait_cycles(self, want=3, timeout=120):
        self.cmd("sdiag", "-r")
        deadline = time.time() + timeout
        while time.time() < deadline:
            d = self.sdiag()
            if (d["bf_cycles"] or 0) >= want and (d["main_cycles"] or 0) >= want:
                return d
            time.sleep(1)
        return self.sdiag()

    def sched(self, pending, clients):
        params = "bf_interval=5,sched_interval=5"
        self.fresh("sched", cpus=64, sched_params=params)
        blocker = self.sbatch("-n", "60", "--time=600", "-J", "blocker", "--wrap", "sleep 100000")
        deadline = time.time() + 60
        while self.cmd("squeue", "-h", "-j", str(blocker), "-o", "%T").stdout.strip() != "RUNNING":
            if time.time() > deadline:
                raise SlurmError("the blocking job did not start:\n" + self.log_tail())
            time.sleep(0.2)
        # the same shapes as bench_sched's pending jobs: 1..64 CPUs, 4 in 5 with a time limit
        rng = random.Random(42)
        shapes = []
        for _ in range(pending):
            r = 1 << rng.randrange(7)
            t = ["--time=%d" % (1 + rng.randrange(600))] if rng.randrange(5) else []
            shapes.append(["-n", str(r)] + t)
        env = self.env()
        per = (pending + clients - 1) // clients
        fails = [0]

        def submit(t):
            def f(i):
                k = t * per + i
                if k >= pending:
                    return True
                p = subprocess.run(["sbatch", "-o", "/dev/null", "-J", "q"] + shapes[k] +
                                   ["--wrap", "sleep 100000"], env=env, capture_output=True, text=True)
                return p.returncode == 0
            return f

        t0 = time.time()
        _, fails = hammer(clients, per, submit)
        note("  slurm: %d jobs queued in %.0f s (%d sbatch failures)" % (pending, time.time() - t0, fails))
        res = {"params": params, "failures": fails}
        res["default"] = self.wait_cycles()
        res["queue"] = len(self.cmd("squeue", "-h", "-t", "PD", "-o", "%i").stdout.split())
        # Slurm's backfill tests 500 jobs by default; let it test the whole queue too
        self.sched_params = params + ",bf_max_job_test=%d,default_queue_depth=%d" % (pending + 100, pending + 100)
        self.rewrite_sched()
        res["params_all"] = self.sched_params
        res["all"] = self.wait_cycles()
        self.stop()
        return res

    def rewrite_sched(self):
        text = open(self.conf_path).read()
        text = re.sub(r"^SchedulerParameters=.*$", "SchedulerParameters=" + self.sched_params, text, flags=re.M)
        with open(self.conf_path, "w") as f:
            f.write(text)
        self.cmd("scontrol", "reconfigure")
        time.sleep(2)


# ---- report -----------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir, removed)")
    ap.add_argument("--jobs", type=int, default=100, help="jobs for the latency test, each side")
    ap.add_argument("--slurm-default-jobs", type=int, default=30,
                    help="latency jobs for Slurm at its defaults (about 3 s each)")
    ap.add_argument("--requests", type=int, default=400, help="requests per client")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--pending", type=int, default=10000)
    ap.add_argument("--skip-slurm", action="store_true")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    work = a.work or tempfile.mkdtemp(prefix="foil-control-")
    os.makedirs(work, exist_ok=True)
    foil = Foil(build, work)
    slurm = None if a.skip_slurm else Slurm(work)
    F, S = {}, {}
    slurm_err = "skipped (--skip-slurm)" if a.skip_slurm else None

    def slurm_phase(name, fn):
        nonlocal slurm_err
        if slurm is None or slurm_err:
            return
        try:
            S[name] = fn()
        except (SlurmError, OSError, subprocess.SubprocessError, TimeoutError) as e:
            slurm_err = "%s phase: %s" % (name, e)
            note("slurm: " + slurm_err)
            slurm.stop()

    load0 = os.getloadavg()[0]
    try:
        note("1. requests/s: foil")
        F["rates"] = foil.rates(a.clients, a.requests)
        note("1. requests/s: slurm")
        slurm_phase("rates", lambda: slurm.rates(a.clients, a.requests))
        note("2. latency: foil")
        F["lat"] = foil.latency(a.jobs)
        note("2. latency: slurm, defaults (%d jobs)" % min(a.jobs, a.slurm_default_jobs))
        slurm_phase("lat", lambda: slurm.latency(min(a.jobs, a.slurm_default_jobs)))
        note("2. latency: slurm, %s (%d jobs)" % (FAST, a.jobs))
        slurm_phase("lat_fast", lambda: slurm.latency(a.jobs, FAST))
        note("3. scheduling: foil")
        F["sched"] = foil.sched(a.pending)
        note("3. scheduling: slurm")
        slurm_phase("sched", lambda: slurm.sched(a.pending, a.clients))
    finally:
        foil.stop()
        if slurm is not None:
            slurm.close()
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)

    ver = subprocess.run(["slurmctld", "-V"], capture_output=True, text=True).stdout.strip() if slurm else ""
    print("foil coordinator vs %s on loopback; %d clients x %d requests; start latency over %d jobs "
          "(foil, Slurm with %s), %d (Slurm defaults); %d pending jobs"
          % (ver or "Slurm", a.clients, a.requests, a.jobs, FAST, min(a.jobs, a.slurm_default_jobs), a.pending))
    print("machine: %d CPUs, load average %.2f at the start, %.2f at the end"
          % (os.cpu_count(), load0, os.getloadavg()[0]))
    if slurm_err:
        print("Slurm: NOT MEASURED — " + slurm_err)
    if not foil.has_cli:
        print("foil CLI: `foil submit` is not in this build; foil measured through pyzmq only")
    print("%-48s%12s%12s%9s" % ("measure", "foil", "Slurm", "ratio"))

    def row(label, f, s, unit_time=False, like=True, fmt="%12.1f"):
        fs = fmt % f if f is not None else "%12s" % "-"
        ss = fmt % s if s is not None else "%12s" % "-"
        r = ""
        if f and s:
            r = (s / f) if unit_time else (f / s)
            r = ("%7.2fx" if like else "(%5.2fx)") % r
        print("%-48s%s%s%9s" % (label, fs, ss, r))

    fr, sr = F["rates"], S.get("rates", {})
    sg = lambda k: sr[k][0] if k in sr else None  # noqa: E731
    if "submit_cli" in fr:
        row("submit/s, process per request (CLI|sbatch)", fr["submit_cli"][0], sg("submit_cli"))
    row("submit/s, foil pyzmq client | sbatch", fr["submit_zmq"][0], sg("submit_cli"), like=False)
    if "status_cli" in fr:
        row("status/s, process per request (CLI|scontrol)", fr["status_cli"][0], sg("status_cli"))
    row("status/s, foil pyzmq client | scontrol", fr["status_zmq"][0], sg("status_cli"), like=False)
    fl = F["lat"]
    lat_rows = [(k, l) for k, l in (("lat", "Slurm defaults"), ("lat_fast", FAST)) if k in S]
    for sk, slabel in lat_rows or [("-", "(no Slurm)")]:
        sl = S.get(sk)
        for mode, label in (("cli", "CLI"), ("zmq", "pyzmq")):
            if mode not in fl:
                continue
            for p in (50, 99):
                row("start ms p%d, foil %s | %s" % (p, label, slabel), 1e3 * pct(fl[mode], p),
                    1e3 * pct(sl, p) if sl else None, unit_time=True, like=mode == "cli")
    fs, ss = F["sched"], S.get("sched")
    sv = lambda key, k: ss[key][k] / 1e3 if ss else None  # noqa: E731
    f1 = fs["1x64"]["pass_ms"]
    row("sched ms, foil pass | Slurm backfill cycle", f1, sv("default", "bf_mean_us"), unit_time=True,
        like=False, fmt="%12.2f")
    if ss:
        row("sched ms, foil pass | backfill, whole queue", f1, sv("all", "bf_mean_us"), unit_time=True,
            like=False, fmt="%12.2f")
        row("sched ms, foil pass | Slurm main cycle", f1, sv("default", "main_mean_us"), unit_time=True,
            like=False, fmt="%12.2f")
    print("ratio: foil/Slurm for rates, Slurm/foil for times (above 1: foil ahead); "
          "(parenthesized): not the same client path or not the same work")

    print("\nnotes:")
    print("- failures: foil submit %s, status %s; Slurm submit %s, status %s; jobs queued: foil %d, Slurm %s"
          % (fr["submit_zmq"][1] + fr.get("submit_cli", (0, 0))[1],
             fr["status_zmq"][1] + fr.get("status_cli", (0, 0))[1],
             sr.get("submit_cli", ("-", "-"))[1], sr.get("status_cli", ("-", "-"))[1],
             fr["queued"], sr.get("queued", "-")))
    for k in ("64x32", "1x64"):
        j = fs[k]
        print("- foil bench_sched %s: %d pending, %d workers, %d running, depth %d: one pass %.2f ms "
              "(the dense reference pass %.2f ms, the same decisions), started %d, reserved %d"
              % (k, j["pending"], j["workers"], j["running"], j["depth"], j["pass_ms"], j["ref_ms"],
                 j["started"], j["reserved"]))
    if ss:
        for key, pk in (("default", "params"), ("all", "params_all")):
            d = ss[key]
            print("- Slurm SchedulerParameters=%s: %d pending (one 64-CPU node, 60 CPUs held by a "
                  "running job); main scheduler mean %.2f ms over %s cycles (max %.2f ms, mean depth %s); "
                  "backfill mean %.2f ms over %s cycles (max %.2f ms, last depth %s, tried %s, queue %s)"
                  % (ss[pk], ss["queue"], d["main_mean_us"] / 1e3, d["main_cycles"], d["main_max_us"] / 1e3,
                     d["main_mean_depth"], d["bf_mean_us"] / 1e3, d["bf_cycles"], d["bf_max_us"] / 1e3,
                     d["bf_depth"], d["bf_depth_try"], d["bf_queue"]))
        print("  the work differs: Slurm's cycles run inside slurmctld on its real queue (one node), "
              "foil's pass is the scheduler alone on a synthetic cluster")


if __name__ == "__main__":
    main()
