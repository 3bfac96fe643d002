# Shared helpers for integration tests: each test starts its own real `berth server` on a free
# port with its own data dir, drives it with the real CLI, and cleans up every process it made.
# Source it from a test script; BERTH_BIN is the binary under test.
set -u
BERTH=${BERTH_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/berth}
T=$(mktemp -d /tmp/berth-it.XXXXXX)
SRV_PID=""
BG_PIDS=()   # background helpers of the test (watchers, `logs -f`), killed at exit
TEST_NAME=$(basename "$0" .sh)

cleanup() {
  local bp
  for bp in "${BG_PIDS[@]}"; do kill "$bp" 2>/dev/null; done
  [ -n "$SRV_PID" ] && kill -TERM "$SRV_PID" 2>/dev/null && wait_gone "$SRV_PID" 50
  [ -n "$SRV_PID" ] && kill -9 "$SRV_PID" 2>/dev/null
  # anything still running from this test's data dir
  for p in $(grep -l "BERTH_OWNER=" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
    { tr '\0' '\n' </proc/$p/environ; } 2>/dev/null | grep -q "^BERTH_OWNER=${OWNER:-none}$" && kill -9 "$p" 2>/dev/null
  done
  # KEEP=1 keeps the test's directory (data dir, server.log) for a post-mortem
  if [ -n "${KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail() {
  echo "FAIL [$TEST_NAME]: $*"
  if [ -f "$T/server.log" ]; then echo "--- server log (last 30 lines)"; tail -30 "$T/server.log"; fi
  exit 1
}
pass() { echo "ok   [$TEST_NAME] $*"; }

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

wait_gone() { # pid, tenths of a second
  for _ in $(seq 1 "$2"); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

# start_server [extra args]: sets BERTH_API, BERTH_TOKEN, SRV_PID, DATA
start_server() {
  DATA="$T/data"
  mkdir -p "$DATA"
  API_PORT=${API_PORT:-$(free_port)}
  "$BERTH" server --data "$DATA" --api "127.0.0.1:$API_PORT" "$@" >>"$T/server.log" 2>&1 &
  SRV_PID=$!
  export BERTH_API="http://127.0.0.1:$API_PORT"
  for _ in $(seq 1 100); do
    [ -s "$DATA/admin.token" ] && curl -s -o /dev/null "$BERTH_API/healthz" && break
    kill -0 "$SRV_PID" 2>/dev/null || fail "server exited at start-up"
    sleep 0.05
  done
  [ -s "$DATA/admin.token" ] || fail "server did not start"
  export BERTH_TOKEN=$(cat "$DATA/admin.token")
  OWNER=$(python3 -c 'import hashlib,os,sys;print(hashlib.sha256(os.path.realpath(sys.argv[1]).encode()).hexdigest()[:12])' "$DATA")
}

# app_dir NAME: a Procfile app with a web (python http.server) and a ticking worker
make_app() {
  APP_DIR="$T/app-$1"
  mkdir -p "$APP_DIR"
  echo "hello from $1" > "$APP_DIR/index.html"
  cat > "$APP_DIR/Procfile" <<PROC
web: exec python3 -m http.server \$PORT --bind 127.0.0.1
worker: exec sh -c 'while true; do echo "tick $1 \$BERTH_RELEASE \$GREETING"; sleep 0.2; done'
PROC
}

b() { "$BERTH" "$@"; }

# json FIELD-EXPR: run python on stdin JSON, e.g.  b ps --app x --json | json 'len(d["instances"])'
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# count of instances of APP in state STATE (default running)
count_state() {
  b ps --app "$1" --env "${3:-production}" --json | json "sum(1 for i in d['instances'] if i['state']=='${2:-running}')"
}

# wait_for 'shell condition' tenths-of-a-second
wait_for() {
  for _ in $(seq 1 "${2:-100}"); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# process count whose command line contains a marker
procs_with() { pgrep -f "$1" | wc -l; }

# ---- failure-path helpers (t_failed_health, t_crashloop, t_kill9, t_badinput, ...) ----

# pid_alive PID: the process exists and is not a zombie
pid_alive() {
  local s
  s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
  [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
}

# cpu_ticks PID: utime+stime of a process in clock ticks
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# kill9_server: kill -9 the server and wait until it is gone (its instances stay behind)
kill9_server() {
  kill -9 "$SRV_PID" 2>/dev/null
  wait "$SRV_PID" 2>/dev/null
  wait_gone "$SRV_PID" 50 || fail "server $SRV_PID did not die on SIGKILL"
}

# restart_server [extra args]: a new server on the same data dir and API port
restart_server() {
  start_server "$@"
}

# api METHOD PATH [curl args...]: raw API call with the admin token; prints the body, then
# the status code on a last line of its own
api() {
  local m=$1 p=$2; shift 2
  curl -s -X "$m" -H "Authorization: Bearer $BERTH_TOKEN" -w '\n%{http_code}' "$@" "$BERTH_API$p"
}

# http_code STATUS-AND-BODY: the status line api printed (last line)
http_code() { tail -n1 <<<"$1"; }
# http_body STATUS-AND-BODY: everything but the last line
http_body() { sed '$d' <<<"$1"; }

# procs_exact MARKER: pids whose command line contains MARKER (not pgrep's own, not this shell)
procs_exact() { pgrep -f -- "$1" | grep -vx "$$" || true; }

# ---- helpers for the everyday-path tests (t_deploy, t_scale, t_logs, ...) ----

# assert_eq GOT WANT WHAT / assert_has TEXT NEEDLE WHAT / assert_lacks TEXT NEEDLE WHAT
assert_eq() { [ "$1" = "$2" ] || fail "$3: got '$1', want '$2'"; }
assert_has() { case "$1" in *"$2"*) ;; *) fail "$3: no '$2' in: $1" ;; esac; }
assert_lacks() { case "$1" in *"$2"*) fail "$3: unexpected '$2' in: $1" ;; esac; }

# run_ok FILE CMD...: run CMD with stdout+stderr into FILE; fail (showing FILE) unless it exits 0
run_ok() {
  local out=$1 rc=0; shift
  "$@" >"$out" 2>&1 || rc=$?
  [ "$rc" = 0 ] || { cat "$out"; fail "'$*' exited $rc"; }
}

# ps_rows APP [ENV]: one line per instance, "id state pid port release", sorted by id
ps_rows() {
  b ps --app "$1" --env "${2:-production}" --json |
    json "'\n'.join(sorted('%s %s %s %s %s' % (i['id'], i['state'], i['pid'], i['port'], i['release']) for i in d['instances']))"
}

# pids_of APP PROCESS [ENV]: the pids of that process's instances, space separated, by slot
pids_of() {
  b ps --app "$1" --env "${3:-production}" --json |
    json "' '.join(str(i['pid']) for i in sorted(d['instances'], key=lambda i: i['slot']) if i['process']=='$2')"
}

# count_proc APP PROCESS [STATE] [ENV]: instances of PROCESS in STATE (default running)
count_proc() {
  b ps --app "$1" --env "${4:-production}" --json |
    json "sum(1 for i in d['instances'] if i['process']=='$2' and i['state']=='${3:-running}')"
}

# alive PID: the process exists and is not a zombie
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# group_pids PGID: live members of a process group (an instance's group is its pid)
group_pids() { pgrep -g "$1" 2>/dev/null | while read -r p; do alive "$p" && echo "$p"; done; }

# owner_pids: every live process carrying this test server's BERTH_OWNER tag
owner_pids() {
  local p
  for p in $(grep -l "BERTH_OWNER=${OWNER:-none}" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
    { tr '\0' '\n' </proc/$p/environ; } 2>/dev/null | grep -qx "BERTH_OWNER=${OWNER:-none}" && alive "$p" && echo "$p"
  done
}

# log_text APP [ENV] [logs flags...]: `berth logs` output with the timestamps cut off
log_text() {
  local app=$1 env=${2:-production}; shift 2 || shift $#
  b logs --app "$app" --env "$env" "$@" | cut -d' ' -f2-
}

# stop_server: SIGTERM the server, wait for it to exit 0, then check that none of its
# instances (or anything they started) is left running
stop_server() {
  [ -n "$SRV_PID" ] || return 0
  kill -TERM "$SRV_PID"
  wait_gone "$SRV_PID" 200 || fail "server still running 20 s after SIGTERM"
  local rc=0
  wait "$SRV_PID" || rc=$?
  SRV_PID=""
  if [ "$rc" != 0 ]; then
    grep -q "ERROR: LeakSanitizer" "$T/server.log" &&
      fail "server exited $rc after SIGTERM: it leaked memory ($(grep -m1 '^SUMMARY: AddressSanitizer' "$T/server.log"))"
    fail "server exited $rc after SIGTERM"
  fi
  wait_for '[ -z "$(owner_pids)" ]' 20 || fail "processes left after the server stopped: $(owner_pids | tr '\n' ' ')"
}
