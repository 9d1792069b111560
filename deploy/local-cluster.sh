#!/usr/bin/env bash
# deploy/local-cluster.sh — a foil cluster on this machine: one coordinator
# and one worker ("local"), in the background.
#
#   deploy/local-cluster.sh start    start the coordinator, wait until it
#                                    answers, then the worker; wait until
#                                    the worker is up (on failure: the end
#                                    of the log, stop what this start
#                                    launched, exit 1)
#   deploy/local-cluster.sh status   show both processes and `foil workers`
#   deploy/local-cluster.sh stop     SIGTERM both (worker first) and wait
#
# Linux only (setsid, /proc). A pid file in ROOT/run/ is trusted only while
# /proc/PID is foil-coordinator (foil-worker) run with --root ROOT; else it
# is stale (a crash, a reboot, a reused pid): it is removed and said so, and
# that process is left alone. As root, the worker gets
# OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1, which it
# passes on to mpirun (Open MPI refuses to start as root otherwise).
#
# Environment:
#   FOIL_ROOT          data root (default ./foil-data); logs go to
#                      ROOT/coordinator.log and ROOT/worker-local.log, pid
#                      files to ROOT/run/
#   FOIL_BUILD_DIR     where foil, foil-coordinator and foil-worker are
#                      (default ./build)
#   FOIL_CONTROL_PORT  control API port (default 7420)
#   FOIL_WORKERS_PORT  worker protocol port (default 7421)
#   FOIL_START_TIMEOUT seconds to wait for the coordinator to answer, and
#                      then for the worker to be up (default 30 each)
#   FOIL_STOP_TIMEOUT  seconds to wait after SIGTERM before SIGKILL (default 15)
#   FOIL_ALLOW_DIRS    more directories (':'-separated) whose files jobs may
#                      name, besides the data root and this checkout (the
#                      examples read their tokenizer from .venv): the
#                      coordinator's --allow-dir (README "Path confinement")
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
unset FOIL_KEY FOIL_SERVER_KEY FOIL_KEYS FOIL_CURVE_KEY FOIL_ALLOW_KEYS

case ${1:-} in
  start | stop | status) ;;
  *) echo "usage: $0 start|stop|status (see the top of this file for the environment)" >&2; exit 2 ;;
esac
# Linux only: the daemons are told apart from reused pids through /proc, and
# started in their own session with setsid (util-linux).
[ -r /proc/self/cmdline ] || die "no /proc here: this script runs on Linux only (start foil-coordinator and foil-worker by hand elsewhere)"
command -v setsid >/dev/null 2>&1 || die "setsid not found (on Debian/Ubuntu it is in util-linux): this script runs on Linux only"

mkdir -p "$root/run"
root=$(cd "$root" && pwd)
root_real=$(cd "$root" && pwd -P)
[ -d "$build" ] || die "no build directory $build (set FOIL_BUILD_DIR, or build with deploy/setup.sh)"
build=$(cd "$build" && pwd)
checkout=$(cd "$(dirname "$0")/.." && pwd)
allow=(--allow-dir "$checkout")
extra_allow=()
IFS=: read -r -a extra_allow <<< "${FOIL_ALLOW_DIRS:-}" || true
# ${a[@]+"${a[@]}"}: an empty array is "unbound" under set -u in bash < 4.4
for d in ${extra_allow[@]+"${extra_allow[@]}"}; do [ -n "$d" ] && allow+=(--allow-dir "$d"); done
run=$root/run
control=tcp://127.0.0.1:$control_port
workers=tcp://127.0.0.1:$workers_port
foil() { "$build/foil" "$@" --root "$root" --coordinator "$control" --timeout 2; }

# program NAME: the daemon a pid file names
program() { case $1 in coordinator) echo foil-coordinator ;; *) echo foil-worker ;; esac; }

# alive PID: the process exists and is not a zombie (also another user's)
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# is_ours NAME PID: PID is NAME's program (its /proc/PID/exe, or argv[0]
# where exe cannot be read) run with --root of this data root
is_ours() {
  local prog exe arg prev="" argv0="" root_ok=1 a
  prog=$(program "$1")
  alive "$2" || return 1
  exe=$(readlink "/proc/$2/exe" 2>/dev/null) || exe=""
  exe=${exe% (deleted)}  # rebuilt while it runs
  while IFS= read -r -d '' arg; do
    [ -z "$argv0" ] && argv0=$arg
    if [ "$prev" = --root ]; then
      a=$(cd "$arg" 2>/dev/null && pwd -P) && [ "$a" = "$root_real" ] && root_ok=0
    fi
    prev=$arg
  done < "/proc/$2/cmdline"
  [ "$root_ok" = 0 ] || return 1
  if [ -n "$exe" ]; then [ "${exe##*/}" = "$prog" ]; else [ "${argv0##*/}" = "$prog" ]; fi
}

# pid of a running daemon from its pid file, or nothing; a pid file that
# names no such daemon of this root is stale: removed, and said so
pid_of() {
  local f=$run/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null) || pid=""
  case $pid in '' | *[!0-9]*) pid="" ;; esac
  if [ -n "$pid" ] && is_ours "$1" "$pid"; then echo "$pid"; return 0; fi
  local what="it holds no pid"
  [ -z "$pid" ] || what="pid $pid is not $(program "$1") of $root; that process is left alone"
  if rm -f "$f" 2>/dev/null; then
    echo "local-cluster: stale pid file $f ($what): removed" >&2
  else
    echo "local-cluster: stale pid file $f ($what); cannot remove it" >&2
  fi
}

# launch NAME PROGRAM ARGS...: in its own session, immune to hangups; sets
# $launched to its pid
launch() {
  local name=$1; shift
  [ -x "$1" ] || die "$1 is not built (cmake --build $build)"
  setsid nohup "$@" >>"$root/$name.out" 2>&1 </dev/null &
  launched=$!
  echo "$launched" >"$run/$name.pid"
}

# the end of NAME's log and output, to stderr
log_tail() {
  echo "local-cluster: the end of $root/$1.log and $1.out:" >&2
  tail -n 20 "$root/$1.log" "$root/$1.out" >&2 2>/dev/null || true
}

# the coordinator that wrote ROOT/coordinator.json is PID
wrote_json() {
  local j
  j=$(cat "$root/coordinator.json" 2>/dev/null) || return 1
  case $j in *"\"pid\":$1,"* | *"\"pid\":$1}"*) return 0 ;; esac
  return 1
}

worker_up() { foil workers 2>/dev/null | awk '$1 == "local" && $3 != "DOWN" { up = 1 } END { exit !up }'; }

started=()  # NAME:PID of what this start launched: stopped again if it fails
fail() {
  local i
  echo "local-cluster: $*" >&2
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_one "${started[i]%%:*}" "${started[i]#*:}" >&2 || true; done
  exit 1
}

start() {
  local cpid wpid deadline
  cpid=$(pid_of coordinator)
  if [ -z "$cpid" ]; then
    launch coordinator "$build/foil-coordinator" --root "$root" --control "$control" \
      --workers "$workers" --log "$root/coordinator.log" ${allow[@]+"${allow[@]}"}
    cpid=$launched
    started+=("coordinator:$cpid")
  fi
  # Our coordinator is up once it wrote ROOT/coordinator.json with its own
  # pid (after binding both ports) and answers on $control. Until then the
  # worker is not launched: on a busy port the coordinator exits, and a
  # worker would register with whatever cluster holds the port.
  deadline=$((SECONDS + start_timeout))
  until wrote_json "$cpid" && foil workers >/dev/null 2>&1; do
    if ! alive "$cpid"; then
      log_tail coordinator
      fail "the coordinator (pid $cpid) exited; is another cluster on $control or $workers? (FOIL_CONTROL_PORT, FOIL_WORKERS_PORT)"
    fi
    [ "$SECONDS" -lt "$deadline" ] || { log_tail coordinator; fail "the coordinator (pid $cpid) does not answer on $control after ${start_timeout}s"; }
    sleep 0.2
  done

  wpid=$(pid_of worker-local)
  if [ -z "$wpid" ]; then
    # Open MPI refuses to start as root unless told; the worker passes its
    # environment on to mpirun
    if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
    launch worker-local "$build/foil-worker" --root "$root" --name local --coordinator "$workers" \
      --mpirun-args "$mpirun_args" --log "$root/worker-local.log"
    wpid=$launched
    started+=("worker-local:$wpid")
  fi
  deadline=$((SECONDS + start_timeout))
  while :; do
    # our processes first: `foil workers` would believe any coordinator
    if ! alive "$cpid"; then log_tail coordinator; fail "the coordinator (pid $cpid) exited"; fi
    if ! alive "$wpid"; then log_tail worker-local; fail "the worker (pid $wpid) exited"; fi
    worker_up && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      log_tail coordinator
      log_tail worker-local
      fail "worker 'local' is not up after ${start_timeout}s"
    fi
    sleep 0.5
  done
  echo "local cluster up: coordinator $control (pid $cpid), worker local (pid $wpid), root $root"
  echo "local cluster: no authentication (no CURVE keys): loopback only; README \"A secure cluster\" for more"
}

# stop_one NAME [PID]: PID when this run launched it, else from the pid file
stop_one() {
  local name=$1 pid=${2:-} waited=0
  [ -n "$pid" ] || pid=$(pid_of "$name")
  if [ -z "$pid" ] || ! alive "$pid"; then rm -f "$run/$name.pid"; return 0; fi
  if ! kill -TERM "$pid"; then
    echo "local-cluster: cannot signal $name (pid $pid)" >&2
    return 1
  fi
  while alive "$pid"; do
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
  local rc=0 pid cpid
  for d in coordinator worker-local; do
    pid=$(pid_of $d)
    if [ -n "$pid" ]; then echo "$d: running (pid $pid)"; else echo "$d: stopped"; rc=3; fi
    [ "$d" = coordinator ] && cpid=$pid
  done
  if [ -n "$cpid" ]; then echo; foil workers || rc=$?; fi
  return $rc
}

case $1 in
  start) start ;;
  stop)
    rc=0
    stop_one worker-local || rc=1
    stop_one coordinator || rc=1
    exit "$rc"
    ;;
  status) status ;;
esac
