# Shared helpers for integration tests: each test starts its own real `berth server` on a free
# port with its own data dir, drives it with the real CLI, and cleans up every process it made.
# Source it from a test script; BERTH_BIN is the binary under test.
set -u
BERTH=${BERTH_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/berth}
T=$(mktemp -d /tmp/berth-it.XXXXXX)
SRV_PID=""
BG_PIDS=()   # background helpers of the test (watchers, `logs -f`), killed at exit
TEST_NAME=$(basename "$0" .sh)${SUITE:+/$SUITE}   # SUITE: which run (asan) when two run side by side

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

# ---- kill -9 / restart helpers (t_kill9, t_restart): an app with a python web (2 instances,
# http check) and a shell worker, whose processes carry $MARK in their command lines.
# Globals: APP, MARK, D (the app dir), T. Call k9_init once after start_server.
k9_init() {
  mkdir -p "$D"
  cat > "$D/app.py" <<'PY'
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("release %s\n" % os.environ.get("BERTH_RELEASE")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
PY
}
# k9_manifest SLOW: SLOW=1 makes web take 2 s before it listens (so a rollout is slow)
k9_manifest() {
  local pre=""
  [ "$1" = 1 ] && pre="sleep 2; "
  cat > "$D/berth.yaml" <<YAML
app: $APP
processes:
  web:
    command: ${pre}exec python3 app.py $MARK-web
    instances: 2
    health: {http: /, deadline: 20s}
  worker:
    command: exec sh -c 'while :; do sleep 0.2; done' $MARK-worker
YAML
  echo "$RANDOM $RANDOM" >"$D/version.txt"   # new code each time
}

k9_nweb() { procs_exact "$MARK-web" | wc -l; }
k9_nworker() { procs_exact "$MARK-worker" | wc -l; }

# k9_check WHAT: after a restart the live release runs exactly its formation, every
# release has a final status, versions are unique, exactly one is active.
k9_check() {
  local what=$1 form
  form=$(b scale --app $APP) || fail "$what: scale (show formation) failed"
  NWEB=$(sed -n 's/.*web=\([0-9]*\).*/\1/p' <<<"$form"); NWORKER=$(sed -n 's/.*worker=\([0-9]*\).*/\1/p' <<<"$form")
  NALL=$((NWEB + NWORKER))
  wait_for '[ "$(count_state $APP running)" = $NALL ] && [ "$(b ps --app $APP --json | json "len(d[\"instances\"])")" = $NALL ]' 150 \
    || { b ps --app $APP; fail "$what: the live release is not back to $form running"; }
  b releases --app $APP --json >"$T/rel.json" || fail "$what: releases failed"
  python3 - "$T/rel.json" <<'PY' || fail "$what: releases inconsistent: $(cat "$T/rel.json")"
import json, sys
rs = json.load(open(sys.argv[1]))["releases"]
vs = [r["version"] for r in rs]
assert len(vs) == len(set(vs)), "duplicate versions %s" % vs
assert vs == sorted(vs, reverse=True), "not newest first: %s" % vs
assert vs == list(range(len(vs), 0, -1)), "versions have holes: %s" % vs
for r in rs:
    assert r["status"] in ("active", "superseded", "failed"), "v%d has status %r" % (r["version"], r["status"])
    if r["status"] == "failed":
        assert r["reason"], "v%d failed without a reason" % r["version"]
assert sum(r["status"] == "active" for r in rs) == 1, "not exactly one active release"
PY
  LIVE=$(json '[r["version"] for r in d["releases"] if r["status"]=="active"][0]' <"$T/rel.json")
  [ "$(b ps --app $APP --json | json '" ".join(sorted(set(str(i["release"]) for i in d["instances"])))')" = "$LIVE" ] \
    || { b ps --app $APP; fail "$what: instances are not all of the live release v$LIVE"; }
  # give a wrongly started duplicate the chance to show up before counting
  sleep 0.5
  [ "$(k9_nweb)" = "$NWEB" ] || fail "$what: $(k9_nweb) web processes, want $NWEB: $(procs_exact "$MARK-web" | tr '\n' ' ')"
  [ "$(k9_nworker)" = "$NWORKER" ] || fail "$what: $(k9_nworker) worker processes, want $NWORKER"
  local inst_pids
  inst_pids=$(b ps --app $APP --json | json '" ".join(sorted(str(i["pid"]) for i in d["instances"]))')
  [ "$(procs_exact "$MARK" | sort | tr '\n' ' ' | sed 's/ $//')" = "$inst_pids" ] \
    || fail "$what: processes with the marker ($(procs_exact "$MARK" | tr '\n' ' ')) are not the instances ($inst_pids)"
  if [ -d "$DATA/tmp" ] && [ -n "$(ls -A "$DATA/tmp")" ]; then fail "$what: upload leftovers in DATA/tmp: $(ls -A "$DATA/tmp")"; fi
}

# k9_kill_restart WHAT: kill -9 the server, check its instances outlived it, restart, check the
# sweep got every one of them
k9_kill_restart() {
  local what=$1 old
  old=$(owner_pids 2>/dev/null | tr '\n' ' ')
  kill9_server
  RESTARTS=$((${RESTARTS:-0} + 1))
  restart_server
  for p in $old; do
    pid_alive "$p" && [ "$(tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -x "BERTH_OWNER=$OWNER")" ] \
      && fail "$what: process $p of the dead server still runs after the restart ($(tr '\0' ' ' </proc/$p/cmdline))"
  done
  return 0
}

# ---- helpers for the router / DNS / metrics tests (t_router, t_dns, t_zero_downtime, ...) ----

# start_server_net [extra args]: start_server with the HTTP router and DNS on free ports of
# their own; exports RPORT and DPORT and waits until the router accepts connections
start_server_net() {
  RPORT=${RPORT:-$(free_port)}
  DPORT=${DPORT:-$(free_port)}
  export RPORT DPORT
  start_server --router "127.0.0.1:$RPORT" --dns "127.0.0.1:$DPORT" "$@"
  wait_for 'curl -s -o /dev/null -m 2 "http://127.0.0.1:$RPORT/"' 100 || fail "router on port $RPORT does not answer"
}

# rcurl HOST PATH [curl args...]: a request through the router with that Host header
rcurl() {
  local h=$1 p=$2; shift 2
  curl -s -m 10 -H "Host: $h" "$@" "http://127.0.0.1:$RPORT$p"
}

# rcode HOST PATH [curl args...]: only the status code of a request through the router
rcode() {
  local h=$1 p=$2; shift 2
  curl -s -m 10 -o /dev/null -w '%{http_code}' -H "Host: $h" "$@" "http://127.0.0.1:$RPORT$p"
}

# rdig [dig args...]: dig against this test's DNS server (one try, 2 s)
rdig() { dig @127.0.0.1 -p "$DPORT" +time=2 +tries=1 "$@"; }

# dns_status DIG-OUTPUT: the status word of a dig answer (NOERROR, NXDOMAIN, ...)
dns_status() { sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$1" | head -1; }

# make_echo_app NAME [DIR]: an app whose web process answers every request with JSON:
# {"name","env","release","instance","method","path","headers":[[k,v]...],"body","chunked"}.
# It speaks HTTP/1.1 keep-alive and reads chunked request bodies (with X-Chunk-Trace: FILE it
# appends each chunk's size to FILE as the chunk arrives). ?sleep=MS delays the answer. With the
# config var ECHO_LOG set, it prints "REQ METHOD PATH" for every request it gets.
# Sets APP_DIR.
make_echo_app() {
  APP_DIR=${2:-$T/app-$1}
  mkdir -p "$APP_DIR"
  cat >"$APP_DIR/echo.py" <<'PY'
import http.server, json, os, re, sys, time
NAME = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data, trace = b"", self.headers.get("X-Chunk-Trace")
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data, True
                data += self.rfile.read(size)
                self.rfile.readline()
                if trace:  # the test watches this file to see the body arrive chunk by chunk
                    with open(trace, "a") as f:
                        f.write("%d\n" % size)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n), False
    def any(self):
        if os.environ.get("ECHO_LOG"):  # every request the app sees, in its log
            print("REQ", self.command, self.path, flush=True)
        data, chunked = self.body()
        slow = re.search(r"[?&]sleep=([0-9]+)", self.path)
        if slow:
            time.sleep(int(slow.group(1)) / 1000)
        out = json.dumps({"name": NAME, "env": os.environ.get("BERTH_ENV"), "release": os.environ.get("BERTH_RELEASE"),
                          "instance": os.environ.get("BERTH_INSTANCE"), "method": self.command,
                          "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                          "body": data.decode("latin-1"), "chunked": chunked}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("Keep-Alive", "timeout=30")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = any
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
PY
  cat >"$APP_DIR/Procfile" <<PROC
web: exec python3 echo.py $1
PROC
}

# start_hook_receiver: a local webhook receiver on HOOK_PORT (set here) that appends every
# POST to $T/hooks.jsonl as one JSON line {"path", "ctype", "body"} and answers 200.
start_hook_receiver() {
  HOOK_PORT=$(free_port)
  cat >"$T/hook.py" <<'PY'
import http.server, json, sys
port, out = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        rec = {"path": self.path, "ctype": self.headers.get("Content-Type"), "body": json.loads(body)}
        with open(out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
  touch "$T/hooks.jsonl"
  python3 "$T/hook.py" "$HOOK_PORT" "$T/hooks.jsonl" >"$T/hook.err" 2>&1 &
  BG_PIDS+=($!)
  wait_for "curl -s -o /dev/null http://127.0.0.1:$HOOK_PORT/" 50 || fail "webhook receiver did not start: $(cat "$T/hook.err")"
}
