#!/usr/bin/env bash
# deploy/local-cluster.sh — a foil cluster on this machine: one coordinator
# and one worker ("local"), in the background.
#
#   deploy/local-cluster.sh start    start both, wait until the worker is up
#   deploy/local-cluster.sh status   show both processes and `foil workers`
#   deploy/local-cluster.sh stop     SIGTERM both (worker first) and wait
#
# Environment:
#   FOIL_ROOT          data root (default ./foil-data); logs go to
#                      ROOT/coordinator.log and ROOT/worker-local.log, pid
#                      files to ROOT/run/
#   FOIL_BUILD_DIR     where foil, foil-coordinator and foil-worker are
#                      (default ./build)
#   FOIL_CONTROL_PORT  control API port (default 7420)
#   FOIL_WORKERS_PORT  worker protocol port (default 7421)
#   FOIL_START_TIMEOUT seconds to wait for the worker to be up (default 30)
#   FOIL_STOP_TIMEOUT  seconds to wait after SIGTERM before SIGKILL (default 15)
#   FOIL_MPIRUN_ARGS   extra mpirun flags the worker adds to every launch
#                      (default: --bind-to none --mca btl self,vader, ranks
#                      share the cores and talk through shared memory)
#
# The coordinator writes ROOT/coordinator.json with its addresses, so
# `foil ...` with the same FOIL_ROOT finds it without --coordinator.
set -euo pipefail

root=${FOIL_ROOT:-./foil-data}
build=${FOIL_BUILD_DIR:-./build}
control_port=${FOIL_CONTROL_PORT:-7420}
workers_port=${FOIL_WORKERS_PORT:-7421}
start_timeout=${FOIL_START_TIMEOUT:-30}
stop_timeout=${FOIL_STOP_TIMEOUT:-15}
mpirun_args=${FOIL_MPIRUN_ARGS:---bind-to none --mca btl self,vader}

die() { echo "local-cluster: $*" >&2; exit 1; }
# The local cluster runs without CURVE, on loopback only (the daemons refuse
# anything else without keys, and log that they run without authentication);
# keys meant for a real cluster must not leak into it.
unset FOIL_KEY FOIL_SERVER_KEY FOIL_KEYS FOIL_CURVE_KEY FOIL_ALLOW

mkdir -p "$root/run"
root=$(cd "$root" && pwd)
[ -d "$build" ] || die "no build directory $build (set FOIL_BUILD_DIR, or build with deploy/setup.sh)"
build=$(cd "$build" && pwd)
run=$root/run
control=tcp://127.0.0.1:$control_port
workers=tcp://127.0.0.1:$workers_port
foil() { "$build/foil" "$@" --root "$root" --coordinator "$control" --timeout 2; }

# pid of a running daemon from its pid file, or nothing
pid_of() {
  local f=$run/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

# launch NAME PROGRAM ARGS...: in its own session, immune to hangups
launch() {
  local name=$1; shift
  [ -x "$1" ] || die "$1 is not built (cmake --build $build)"
  setsid nohup "$@" >>"$root/$name.out" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
}

worker_up() { foil workers 2>/dev/null | awk '$1 == "local" && $3 != "DOWN" { up = 1 } END { exit !up }'; }

start() {
  if [ -z "$(pid_of coordinator)" ]; then
    launch coordinator "$build/foil-coordinator" --root "$root" --control "$control" \
      --workers "$workers" --log "$root/coordinator.log"
  fi
  if [ -z "$(pid_of worker-local)" ]; then
    launch worker-local "$build/foil-worker" --root "$root" --name local --coordinator "$workers" \
      --mpirun-args "$mpirun_args" --log "$root/worker-local.log"
  fi
  local waited=0
  until worker_up; do
    for d in coordinator worker-local; do
      if [ -z "$(pid_of $d)" ]; then
        echo "local-cluster: $d exited; the end of its log:" >&2
        tail -n 20 "$root/$d.log" "$root/$d.out" >&2 2>/dev/null || true
        exit 1
      fi
    done
    if [ "$waited" -ge $((start_timeout * 2)) ]; then
      die "worker 'local' is not up after ${start_timeout}s (see $root/coordinator.log and $root/worker-local.log); stop with: $0 stop"
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  echo "local cluster up: coordinator $control (pid $(pid_of coordinator)), worker local (pid $(pid_of worker-local)), root $root"
  echo "local cluster: no authentication (no CURVE keys): loopback only; README \"A secure cluster\" for more"
}

stop_one() {
  local name=$1 pid waited=0
  pid=$(pid_of "$name")
  if [ -z "$pid" ]; then rm -f "$run/$name.pid"; return 0; fi
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge $((stop_timeout * 10)) ]; then
      echo "local-cluster: $name (pid $pid) still running ${stop_timeout}s after SIGTERM; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$run/$name.pid"
  echo "stopped $name (pid $pid)"
}

status() {
  local rc=0 pid
  for d in coordinator worker-local; do
    pid=$(pid_of $d)
    if [ -n "$pid" ]; then echo "$d: running (pid $pid)"; else echo "$d: stopped"; rc=3; fi
  done
  if [ -n "$(pid_of coordinator)" ]; then echo; foil workers || rc=$?; fi
  return $rc
}

case ${1:-} in
  start) start ;;
  stop) stop_one worker-local; stop_one coordinator ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status (see the top of this file for the environment)" >&2; exit 2 ;;
esac
