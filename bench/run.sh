#!/usr/bin/env bash
# bench/run.sh: berth's benchmarks (`make bench`). Starts its own `berth server` (API, router
# and DNS on free ports) with a throwaway data dir, measures deploy -> healthy, 0 -> 50 -> 0
# scaling, server memory with 100 instances, log ingest, router throughput and latency against
# nginx, router memory per idle connection, DNS queries/s against knot, a Node redeploy whose
# lockfile did not change and `berth run` round trips (each next to its peer, measured in the
# same run: see bench/README.md), prints a table, and appends (or, same
# day, machine, revision and benchmarks, rewrites) a dated section of bench/RESULTS.md. Every
# process it started is gone when it exits, however it exits.
#
# Settings (environment): BERTH_BIN (default ./berth), BENCH_PYTHON (interpreter of the test
# apps, default /usr/bin/python3), CC, DEPLOYS=20, SCALE_N=50, SCALE_ROUNDS=3, RSS_N=100,
# LOG_LINES=2000000, LOG_ROUNDS=3, ROUTER_SECONDS=8, ROUTER_ROUNDS=5, ROUTER_CONNS=64,
# WRK_THREADS (default: CPUs), IDLE_CONNS=10000, DNS_SECONDS=10, DNS_ROUNDS=3, DNS_CLIENTS=4,
# BUILD_DEPLOYS=20, RUN_N=50,
# BENCH_ONLY="rss deploy scale logs router idle dns build run" (a subset; commas or spaces;
# "apps" is build and run),
# RESULTS=bench/RESULTS.md, NO_RESULTS=1 (print only), BENCH_KEEP=1 (keep the temp dir),
# BENCH_REVISION (the revision BERTH_BIN was built from; default: git describe of this tree).
# The router, idle and dns benchmarks need nginx, wrk, knot, dnsperf and dig (bench/setup.sh);
# build needs node and npm, and the npm registry for its one cold install.
# Exit status: 0 all measured; 1 something could not be measured or berth misbehaved (the
# table and RESULTS.md still show what was measured); 2 bad set-up.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BERTH=${BERTH_BIN:-$ROOT/berth}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
ALL="rss deploy scale logs router idle dns build run"
ONLY=$(echo "${BENCH_ONLY:-$ALL}" | tr ',' ' ' | sed 's/\<apps\>/build run/g')
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-1200}

die() { echo "bench: $*" >&2; exit 2; }
say() { echo "bench: $*" >&2; }

# ---- prerequisites ----
[ -x "$BERTH" ] || die "no berth binary at $BERTH (build it first: make -j2)"
# the revision the binary was (presumably) built from; "-dirty": with uncommitted changes.
# Set BENCH_REVISION when BERTH_BIN was built from another tree (e.g. a `git archive` of HEAD).
BENCH_REVISION=${BENCH_REVISION:-$(git -C "$ROOT" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)}
if [ -z "${BENCH_PYTHON:-}" ]; then
  # Debian's interpreter, not a version-manager shim (pyenv's adds ~200 ms to every start)
  if [ -x /usr/bin/python3 ]; then BENCH_PYTHON=/usr/bin/python3; else BENCH_PYTHON=$(command -v python3 || true); fi
fi
[ -n "$BENCH_PYTHON" ] && [ -x "$BENCH_PYTHON" ] || die "python3 not found (apt-get install python3)"
CC=${CC:-cc}
command -v "$CC" >/dev/null || die "no C compiler ($CC) for the log generator (apt-get install gcc)"
for tool in timeout cat setsid; do command -v "$tool" >/dev/null || die "$tool not found (coreutils/util-linux)"; done
for b in $ONLY; do
  case $b in
    rss|deploy|scale|logs|run) ;;
    build) for tool in node npm; do command -v "$tool" >/dev/null || die "$tool not found (the node builder runs npm: apt-get install nodejs npm)"; done ;;
    router|idle) need="nginx wrk" ;;&
    dns) need="knotd dnsperf dig" ;;&
    router|idle|dns)
      for tool in $need; do
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || die "$tool not found (run bench/setup.sh)"
      done ;;
    *) die "BENCH_ONLY: unknown benchmark '$b' ($ALL)";;
  esac
done
# the router benchmarks hold 10,000 connections: as many descriptors as allowed
ulimit -n "$(ulimit -Hn)" 2>/dev/null
# processes started from here on have a start time >= this (clock ticks since boot)
RUN_START=$(sed 's/.*) //' /proc/$$/stat | cut -d' ' -f20)

# ---- temp dir, cleanup ----
T=$(mktemp -d /tmp/berth-bench.XXXXXX) || die "mktemp failed"
TAG=$(basename "$T")
DATA="$T/data"
SRV_PID=""
STEP_PID=""
OWNER=""

kill_marked() { # kill -9 every process whose environment holds $1=$2
  local p
  for p in $(grep -l -a -F "$1=$2" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
    [ "$p" = "$$" ] && continue
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx -F "$1=$2" && kill -9 "$p" 2>/dev/null
  done
}

kill_groups() { # kill -9 the peers' process groups (noted by bench.py) started by this run
  [ -s "$T/peer-groups" ] || return 0
  local p st
  for p in /proc/[0-9]*; do
    st=$(sed 's/.*) //' "$p/stat" 2>/dev/null) || continue
    set -- $st   # $3: process group, $20: start time
    [ "${20:-0}" -ge "$RUN_START" ] && grep -qx -F "$3" "$T/peer-groups" && kill -9 "${p#/proc/}" 2>/dev/null
  done
  return 0
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$STEP_PID" ] && kill -0 "$STEP_PID" 2>/dev/null; then
    kill -TERM "$STEP_PID" 2>/dev/null   # timeout passes it on to bench.py, which stops its peers
    for _ in $(seq 1 50); do kill -0 "$STEP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$STEP_PID" 2>/dev/null
  fi
  if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
    kill -TERM "$SRV_PID" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SRV_PID" 2>/dev/null; then
      say "server $SRV_PID did not stop within 15 s of SIGTERM; killing it"
      kill -9 "$SRV_PID" 2>/dev/null
    fi
    wait "$SRV_PID" 2>/dev/null
  fi
  [ -n "$OWNER" ] && kill_marked BERTH_OWNER "$OWNER"   # instances the server left behind
  kill_marked BERTH_BENCH "$TAG"                        # peers a killed bench.py left behind
  kill_groups                                           # ... and those that hide their environment
  if [ "${BENCH_KEEP:-}" = 1 ]; then say "kept $T"; else rm -rf "$T"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM HUP

# ---- the binary under test: a private copy, so that a rebuild during the run changes nothing ----
cp "$BERTH" "$T/berth" && "$T/berth" version >/dev/null 2>&1 \
  || die "could not copy a working $BERTH (being rebuilt? try again)"
BERTH="$T/berth"

# ---- build the log generator ----
"$CC" -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$T/loggen" "$HERE/loggen.c" \
  || die "could not compile bench/loggen.c"

# ---- start the server ----
free_port() { "$BENCH_PYTHON" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
mkdir -p "$DATA"
# Big rotation for the log benchmark: 2M lines of ~90 B on disk are ~180 MB; 64M x (10+1)
# keeps every line so that nothing lost can be told from something rotated away.
printf 'log_rotate: 64M\nlog_keep: 10\n' >"$DATA/server.yaml"
API_PORT=$(free_port) && ROUTER_PORT=$(free_port) && DNS_PORT=$(free_port) || die "no free port"
# In its own session like every peer (bench.py's peer_spawn): with the scheduler's autogroups
# (kernel.sched_autogroup_enabled), a server left in this script's session would share one
# CPU group with wrk and dnsperf while the peers each get their own, an unequal contest.
setsid "$BERTH" server --data "$DATA" --api "127.0.0.1:$API_PORT" --router "127.0.0.1:$ROUTER_PORT" \
  --dns "127.0.0.1:$DNS_PORT" >"$T/server.log" 2>&1 &
SRV_PID=$!
export BERTH_API="http://127.0.0.1:$API_PORT"
for _ in $(seq 1 200); do
  kill -0 "$SRV_PID" 2>/dev/null || { cat "$T/server.log" >&2; die "berth server exited at start-up"; }
  [ -s "$DATA/admin.token" ] && "$BERTH" envs --token "$(cat "$DATA/admin.token")" >/dev/null 2>&1 && break
  sleep 0.05
done
[ -s "$DATA/admin.token" ] || { cat "$T/server.log" >&2; die "berth server did not start within 10 s"; }
BERTH_TOKEN=$(cat "$DATA/admin.token")
export BERTH_TOKEN
OWNER=$("$BENCH_PYTHON" -c 'import hashlib,os,sys;print(hashlib.sha256(os.path.realpath(sys.argv[1]).encode()).hexdigest()[:12])' "$DATA")

export BERTH_BIN="$BERTH" BENCH_TMP="$T" BENCH_DATA="$DATA" BENCH_SERVER_PID="$SRV_PID" BENCH_TAG="$TAG"
export BENCH_PYTHON BENCH_LOGGEN="$T/loggen" BENCH_RESULTS="$T/results.json"
export BENCH_ROUTER_PORT="$ROUTER_PORT" BENCH_DNS_PORT="$DNS_PORT"
BENCH_PYTHON_VERSION=$("$BENCH_PYTHON" -c 'import sys;print("Python %d.%d.%d" % sys.version_info[:3])')
BENCH_CGROUPS=$(sed -n 's/.*info cgroups: //p' "$T/server.log" | head -1)
BENCH_LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
export BENCH_REVISION BENCH_PYTHON_VERSION BENCH_CGROUPS BENCH_LOAD_START
if awk -v l="$BENCH_LOAD_START" -v c="$(nproc)" 'BEGIN { exit !(l > c / 2) }'; then
  say "warning: load average $BENCH_LOAD_START on $(nproc) cores: other work will slow the figures down (noted in the results)"
fi
say "server pid $SRV_PID on $BERTH_API (router :$ROUTER_PORT, DNS :$DNS_PORT), data in $DATA, apps run with $BENCH_PYTHON_VERSION"

# ---- measure: memory first, so that the server's peak (VmHWM) is that of the 100 instances ----
status=0
for b in $ALL; do
  case " $ONLY " in *" $b "*) ;; *) continue;; esac
  case $b in router|idle|dns) script=bench_net.py ;; build|run) script=bench_apps.py ;; *) script=bench.py ;; esac
  say "measuring: $b"
  # in the background, so that a signal to this script is handled at once (by cleanup)
  timeout -k 10 "$STEP_TIMEOUT" "$BENCH_PYTHON" "$HERE/$script" "$b" 2>"$T/err.$b" &
  STEP_PID=$!
  wait "$STEP_PID"
  rc=$?
  STEP_PID=""
  cat "$T/err.$b" >&2
  case $rc in
    0) ;;
    3) status=1 ;;  # measured; berth misbehaved (in the table, and on stderr above)
    124|137) status=1; "$BENCH_PYTHON" "$HERE/bench.py" fail "$b: timed out after $STEP_TIMEOUT s" ;;
    *) status=1; "$BENCH_PYTHON" "$HERE/bench.py" fail "$b: $(tail -1 "$T/err.$b" | sed 's/^bench [a-z]*: //')" ;;
  esac
  if ! kill -0 "$SRV_PID" 2>/dev/null; then
    say "the berth server died during '$b'; last lines of its log:"
    tail -20 "$T/server.log" >&2
    "$BENCH_PYTHON" "$HERE/bench.py" fail "the server died during $b"
    SRV_PID=""
    status=1
    break
  fi
done
[ -n "$SRV_PID" ] && "$BENCH_PYTHON" "$HERE/bench.py" final
if grep -q ' warn \| error ' "$T/server.log"; then
  say "the server logged warnings or errors:"
  grep ' warn \| error ' "$T/server.log" | head -10 >&2
fi

# ---- report ----
[ "${NO_RESULTS:-}" = 1 ] && RESULTS="$T/RESULTS.md"   # print the table only
"$BENCH_PYTHON" "$HERE/bench.py" report "$RESULTS" || status=1
exit "$status"
