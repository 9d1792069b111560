"""Killing an mpirun job for good in a test: mpirun's ranks are not in its
process group, so os.killpg(mpirun) leaves them training on alone, writing
later checkpoints under the run that resumes. kill_ranks(path) SIGKILLs
every process with path (the job's directory) as one of its arguments and waits
until none is left."""
import os
import signal
import time


def _cmdline(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def kill_ranks(path, timeout=60):
    key, deadline = os.fsencode(path) + b"\0", time.time() + timeout  # an argument that is path
    while time.time() < deadline:
        left = [int(q) for q in os.listdir("/proc") if q.isdigit() and key in _cmdline(q)]
        if not left:
            return
        for q in left:
            try:
                os.kill(q, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)
    raise RuntimeError("processes naming %s outlived SIGKILL for %d s" % (path, timeout))
