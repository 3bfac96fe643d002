#!/usr/bin/env bash
# A release whose web never passes its health check, or whose command exits at once, fails
# its deploy with the reason and the instance's last log lines; the live release keeps its
# very same processes, keeps serving, and the failed release's instances are gone.
source "$(dirname "$0")/lib.sh"
start_server
APP=fh
MARK="fhmark-$(basename "$T")"

D="$T/app"
mkdir -p "$D"
cat > "$D/app.py" <<'PY'
import http.server, os, sys
rel = os.environ.get("BERTH_RELEASE", "?")
seen = set()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 500 if self.path == "/bad" else 200
        body = ("release %s %s\n" % (rel, self.path)).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *a):
        if self.path in seen:
            return
        seen.add(self.path)
        sys.stderr.write("first request %s -> %s\n" % (self.path, a[1]))
        sys.stderr.flush()
print("booting release %s on port %s" % (rel, os.environ["PORT"]), flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
PY

# manifest VERSION-TAG HEALTH-PATH [COMMAND]
manifest() {
  cat > "$D/berth.yaml" <<YAML
app: $APP
processes:
  web:
    command: ${3:-exec python3 app.py $MARK-$1}
    instances: 2
    health:
      http: $2
      deadline: 2s
YAML
}

manifest v1 /healthz
(cd "$D" && b deploy) >"$T/d1.out" 2>&1 || { cat "$T/d1.out"; fail "v1 deploy failed"; }
[ "$(count_state $APP)" = 2 ] || fail "v1: 2 running instances expected"
b ps --app $APP --json >"$T/ps1.json"
PIDS1=$(json '" ".join(str(i["pid"]) for i in d["instances"])' <"$T/ps1.json")
PORTS1=$(json '" ".join(str(i["port"]) for i in d["instances"])' <"$T/ps1.json")

# --- v2: health check on a path that answers 500 -> deadline failure
manifest v2 /bad
(cd "$D" && b deploy) >"$T/d2.out" 2>"$T/d2.err" &
D2=$!
# while v2 rolls out, a second deploy waits for it (and says so), never interleaved: it
# becomes v3 after v2 ended, and fails on the same health check
wait_for 'b ps --app $APP --json | json "any(i[\"release\"]==2 for i in d[\"instances\"]) or exit(1)"' 50 || fail "no v2 instance appeared"
rc=0; (cd "$D" && b deploy) >"$T/dc.out" 2>&1 || rc=$?
[ $rc = 1 ] || { cat "$T/dc.out"; fail "a deploy during a rollout exited $rc"; }
grep -q "waiting for the rollout of v2 in progress" "$T/dc.out" || { cat "$T/dc.out"; fail "the second deploy does not say it waits for the rollout in progress"; }
grep -q "created release v3" "$T/dc.out" || { cat "$T/dc.out"; fail "the waiting deploy did not go on as v3 after v2"; }
if wait $D2; then
  cat "$T/d2.out" "$T/d2.err"; fail "v2 deploy with a failing health check exited 0"
fi
grep -q "not healthy" "$T/d2.err" || { cat "$T/d2.err"; fail "v2: the error does not say the instance was not healthy"; }
grep -q "500" "$T/d2.err" || { cat "$T/d2.err"; fail "v2: the error does not give the health check's answer (HTTP 500)"; }
grep -q "last log lines" "$T/d2.err" || { cat "$T/d2.err"; fail "v2: no 'last log lines' in the error"; }
grep -q "| booting release 2" "$T/d2.err" || { cat "$T/d2.err"; fail "v2: the instance's own log line is not in the error"; }
grep -q "| first request /bad -> 500" "$T/d2.err" || { cat "$T/d2.err"; fail "v2: the instance's last request log line is not in the error"; }
pass "failing health check: deploy exits non-zero with the reason and the instance's log lines; a deploy meanwhile waits for it"

b releases --app $APP --json >"$T/rel.json"
[ "$(json '[r["status"] for r in d["releases"] if r["version"]==2][0]' <"$T/rel.json")" = failed ] || { cat "$T/rel.json"; fail "v2 not marked failed"; }
REASON=$(json '[r["reason"] for r in d["releases"] if r["version"]==2][0]' <"$T/rel.json")
[[ "$REASON" == *"not healthy"* ]] || fail "v2's reason does not say why: $REASON"
[ "$(json '[r["status"] for r in d["releases"] if r["version"]==1][0]' <"$T/rel.json")" = active ] || fail "v1 no longer active"
b releases --app $APP | grep -E '^v2 +failed' >/dev/null || { b releases --app $APP; fail "releases table does not show v2 failed"; }

wait_for '[ "$(b ps --app $APP --json | json "sorted(set(i[\"release\"] for i in d[\"instances\"]))")" = "[1]" ]' 50 \
  || { b ps --app $APP; fail "v2 instances still listed after the failed rollout"; }
b ps --app $APP --json >"$T/ps2.json"
[ "$(json '" ".join(str(i["pid"]) for i in d["instances"])' <"$T/ps2.json")" = "$PIDS1" ] || fail "v1's processes changed: $PIDS1 -> $(json '[i["pid"] for i in d["instances"]]' <"$T/ps2.json")"
[ "$(json '" ".join(i["state"] for i in d["instances"])' <"$T/ps2.json")" = "running running" ] || fail "v1 not running"
for p in $PIDS1; do pid_alive "$p" || fail "v1 pid $p is gone"; done
for port in $PORTS1; do
  [ "$(curl -s "http://127.0.0.1:$port/")" = "release 1 /" ] || fail "v1 on port $port does not serve"
done
wait_for '[ -z "$(procs_exact "$MARK-v2")" ]' 50 || fail "a v2 process still runs: $(procs_exact "$MARK-v2")"
[ "$(procs_exact "$MARK-v1" | wc -l)" = 2 ] || fail "expected exactly the 2 v1 processes"
pass "after the failed rollout v1 keeps its processes (pids $PIDS1) and serves; v2 is gone"

# --- v3: a command that writes to stderr and exits 3 -> fails at once on the exit
manifest v3 /healthz "'echo \"fatal: cannot read settings $MARK\" >&2; exit 3'"
if (cd "$D" && b deploy) >"$T/d3.out" 2>"$T/d3.err"; then
  cat "$T/d3.out" "$T/d3.err"; fail "v3 deploy of a command that exits 3 exited 0"
fi
grep -q "exit status 3" "$T/d3.err" || { cat "$T/d3.out" "$T/d3.err"; fail "v3: no 'exit status 3' in the error"; }
grep -q "not healthy after" "$T/d3.err" && fail "v3: failed on the health deadline instead of on the exit"
grep -q "| fatal: cannot read settings $MARK" "$T/d3.err" || { cat "$T/d3.err"; fail "v3: the line the process wrote to stderr is not shown"; }
b releases --app $APP --json >"$T/rel3.json"
[ "$(json '[r["status"] for r in d["releases"] if r["version"]==4][0]' <"$T/rel3.json")" = failed ] || fail "v3 (release v4) not marked failed"
[[ "$(json '[r["reason"] for r in d["releases"] if r["version"]==4][0]' <"$T/rel3.json")" == *"exit status 3"* ]] || fail "v3's reason lacks the exit status"
[ "$(json '[r["status"] for r in d["releases"] if r["version"]==1][0]' <"$T/rel3.json")" = active ] || fail "v1 no longer active after v3"
wait_for '[ "$(b ps --app $APP --json | json "[i[\"pid\"] for i in d[\"instances\"] if i[\"release\"]==1 and i[\"state\"]==\"running\"]" | tr -d "[],")" = "$PIDS1" ] && [ "$(count_state $APP running)" = 2 ]' 50 \
  || { b ps --app $APP; fail "after v3, v1 is not exactly as before"; }
[ "$(b ps --app $APP --json | json 'len(d["instances"])')" = 2 ] || { b ps --app $APP; fail "v3 instances linger"; }
for port in $PORTS1; do
  [ "$(curl -s "http://127.0.0.1:$port/")" = "release 1 /" ] || fail "v1 on port $port does not serve after v3"
done
pass "a command that exits 3 fails the deploy with 'exit status 3' and its stderr line; v1 untouched"

# --- v4: only the second slot fails, after slot 1 was already replaced: v1 must come back
# to full strength (a new web.1, the same web.2)
manifest v4 /healthz "'if [ \"\$BERTH_INSTANCE\" = web.2 ]; then echo \"slot two refuses $MARK\" >&2; exit 4; fi; exec python3 app.py $MARK-v4'"
WEB2=$(pids_of $APP web | cut -d' ' -f2)
if (cd "$D" && b deploy) >"$T/d4.out" 2>"$T/d4.err"; then
  cat "$T/d4.out" "$T/d4.err"; fail "v4 (slot 2 exits) deploy exited 0"
fi
grep -q "web.1 (v5) healthy" "$T/d4.out" || { cat "$T/d4.out"; fail "test precondition: web.1 of v4 did not become healthy first"; }
grep -q "stopping web.1 (v1)" "$T/d4.out" || { cat "$T/d4.out"; fail "test precondition: web.1 of v1 was not replaced"; }
grep -q "web.2 (v5).*exit status 4" "$T/d4.err" || { cat "$T/d4.err"; fail "v4: the error does not name web.2 and exit status 4"; }
grep -q "| slot two refuses $MARK" "$T/d4.err" || { cat "$T/d4.err"; fail "v4: web.2's stderr line not shown"; }
wait_for '[ "$(ps_rows $APP | cut -d" " -f2,5 | tr "\n" " ")" = "running 1 running 1 " ]' 50 \
  || { b ps --app $APP; fail "v1 not back to 2 running instances after v4 failed on slot 2"; }
[ "$(pids_of $APP web | cut -d' ' -f2)" = "$WEB2" ] || fail "v1's web.2 was replaced although it never had to stop"
[ -z "$(procs_exact "$MARK-v4")" ] || fail "a v4 process still runs"
[ "$(procs_exact "$MARK-v1" | wc -l)" = 2 ] || fail "expected exactly 2 v1 processes, got $(procs_exact "$MARK-v1" | wc -l)"
for port in $(b ps --app $APP --json | json '" ".join(str(i["port"]) for i in d["instances"])'); do
  [ "$(curl -s "http://127.0.0.1:$port/")" = "release 1 /" ] || fail "v1 on port $port does not serve after v4"
done
[ "$(b releases --app $APP --json | json '[r["status"] for r in d["releases"] if r["version"]==5][0]')" = failed ] || fail "v4 (release v5) not failed"
pass "a failure on slot 2 after slot 1 was replaced: v1 restarts its web.1, keeps web.2, serves on both"

# --- and a good deploy still works afterwards
manifest v5 /healthz
(cd "$D" && b deploy) >"$T/d5.out" 2>&1 || { cat "$T/d5.out"; fail "v5 (good) deploy failed"; }
[ "$(b ps --app $APP --json | json '" ".join(str(i["release"]) for i in d["instances"])')" = "6 6" ] || fail "v5 (release v6) not running"
pass "a good deploy after the failures goes live"
