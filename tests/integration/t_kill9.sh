#!/usr/bin/env bash
# kill -9 of the server in the middle of a deploy, then a restart on the same data dir: the
# live release comes back with exactly one process per instance, the interrupted release is
# marked failed ("interrupted"), nothing the dead server started survives, and deploying works
# again. Then the same at random moments of a deploy, five times over.
# KILL9_SEED=N replays the random delays of an earlier run.
source "$(dirname "$0")/lib.sh"
start_server
APP=k9
MARK="k9mark-$(basename "$T")"
SEED=${KILL9_SEED:-$RANDOM}
RANDOM=$SEED
D="$T/app"
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

# manifest SLOW: SLOW=1 makes web take 2 s before it listens (so a rollout is slow)
manifest() {
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

nweb() { procs_exact "$MARK-web" | wc -l; }
nworker() { procs_exact "$MARK-worker" | wc -l; }

# check_invariants WHAT: after a restart the live release runs exactly its formation, every
# release has a final status, versions are unique, exactly one is active.
check_invariants() {
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
  [ "$(nweb)" = "$NWEB" ] || fail "$what: $(nweb) web processes, want $NWEB: $(procs_exact "$MARK-web" | tr '\n' ' ')"
  [ "$(nworker)" = "$NWORKER" ] || fail "$what: $(nworker) worker processes, want $NWORKER"
  local inst_pids
  inst_pids=$(b ps --app $APP --json | json '" ".join(sorted(str(i["pid"]) for i in d["instances"]))')
  [ "$(procs_exact "$MARK" | sort | tr '\n' ' ' | sed 's/ $//')" = "$inst_pids" ] \
    || fail "$what: processes with the marker ($(procs_exact "$MARK" | tr '\n' ' ')) are not the instances ($inst_pids)"
  if [ -d "$DATA/tmp" ] && [ -n "$(ls -A "$DATA/tmp")" ]; then fail "$what: upload leftovers in DATA/tmp: $(ls -A "$DATA/tmp")"; fi
}

# kill_restart WHAT: kill -9 the server, check its instances outlived it, restart, check the
# sweep got every one of them
kill_restart() {
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

# --- v1 live
manifest 0
(cd "$D" && b deploy) >"$T/d1.out" 2>&1 || { cat "$T/d1.out"; fail "v1 deploy failed"; }
[ "$(count_state $APP)" = 3 ] || fail "v1 not running"
OLD=$(owner_pids 2>/dev/null | tr '\n' ' ')

# --- v2 (slow) deploying; kill -9 once a v2 instance is starting
manifest 1
(cd "$D" && b deploy) >"$T/d2.out" 2>&1 &
DEPLOY=$!
wait_for 'b ps --app $APP --json | json "any(i[\"release\"]==2 for i in d[\"instances\"]) or exit(1)"' 100 \
  || { cat "$T/d2.out"; fail "no v2 instance appeared"; }
OLD=$(owner_pids 2>/dev/null | tr '\n' ' ')
kill9_server
wait $DEPLOY && fail "the deploy whose server was killed exited 0"
grep -qi "connection\|server" "$T/d2.out" || { cat "$T/d2.out"; fail "the client did not say the connection broke"; }
# precondition: the dead server's instances are still there (the sweep has work to do)
for p in $OLD; do pid_alive "$p" && ALIVE_OLD=1; done
[ -n "${ALIVE_OLD:-}" ] || fail "test precondition: no instance outlived the killed server"
restart_server
for p in $OLD; do
  pid_alive "$p" && fail "process $p of the dead server still runs after the restart"
done
grep -q "left running by a previous server" "$T/server.log" || fail "the restarted server did not report sweeping old processes"
check_invariants "after kill -9 mid-deploy"
[ "$LIVE" = 1 ] || fail "v1 should be live, not v$LIVE"
[ "$(json '[r["status"] for r in d["releases"] if r["version"]==2][0]' <"$T/rel.json")" = failed ] || fail "v2 not failed"
[[ "$(json '[r["reason"] for r in d["releases"] if r["version"]==2][0]' <"$T/rel.json")" == *interrupted* ]] || fail "v2's reason does not say interrupted"
for port in $(b ps --app $APP --json | json '" ".join(str(i["port"]) for i in d["instances"] if i["port"])'); do
  [ "$(curl -s "http://127.0.0.1:$port/")" = "release 1" ] || fail "web on port $port does not serve v1"
done
pass "kill -9 mid-deploy: v1 back (2 web + 1 worker, one process each), v2 failed (interrupted), no survivors"

manifest 0
(cd "$D" && b deploy) >"$T/d3.out" 2>&1 || { cat "$T/d3.out"; fail "deploy after the restart failed"; }
check_invariants "deploy after restart"
[ "$LIVE" = 3 ] || fail "v3 should be live, not v$LIVE"
pass "a fresh deploy after the restart goes live (v3)"

# --- kill -9 at random moments of a deploy
DELAYS=""
for i in 1 2 3 4 5; do
  ms=$((RANDOM % 1501))
  DELAYS="$DELAYS $ms"
  manifest 1
  (cd "$D" && b deploy) >"$T/dr$i.out" 2>&1 &
  DEPLOY=$!
  # the clock starts when the client has packed the app and is about to upload it
  wait_for '[ -s "$T/dr$i.out" ]' 50 || fail "random kill $i: the deploy printed nothing"
  sleep "$(awk "BEGIN{print $ms/1000}")"
  kill_restart "random kill $i at ${ms} ms (seed $SEED)"
  # a client that had not connected yet may reach the new server and deploy for real: then it
  # must have succeeded; either way the state must be consistent afterwards
  rc=0; wait $DEPLOY || rc=$?
  [ $rc = 0 ] && ! grep -q "is live" "$T/dr$i.out" && { cat "$T/dr$i.out"; fail "random kill $i: exit 0 without going live"; }
  check_invariants "random kill $i at ${ms} ms (seed $SEED)"
done
pass "5 kills at random moments (ms:$DELAYS; seed $SEED): state consistent every time"

manifest 0
(cd "$D" && b deploy) >"$T/dlast.out" 2>&1 || { cat "$T/dlast.out"; fail "final deploy failed"; }
check_invariants "final deploy"
pass "deploying still works after all that (v$LIVE live)"

# --- SIGTERM (an orderly stop) mid-deploy: the client is told, the rollout is failed at restart
manifest 1
NEXT=$(( $(b releases --app $APP --json | json 'd["releases"][0]["version"]') + 1 ))
(cd "$D" && b deploy) >"$T/dt.out" 2>&1 &
DEPLOY=$!
wait_for 'b ps --app $APP --json | json "any(i[\"release\"]=='$NEXT' for i in d[\"instances\"]) or exit(1)"' 100 \
  || { cat "$T/dt.out"; fail "no v$NEXT instance appeared"; }
kill -TERM "$SRV_PID"
wait_gone "$SRV_PID" 200 || fail "server did not stop on SIGTERM"
rc=0; wait "$SRV_PID" || rc=$?
[ $rc = 0 ] || fail "server exited $rc on SIGTERM"
wait $DEPLOY && fail "the deploy interrupted by a server stop exited 0"
grep -q "shutting down" "$T/dt.out" || { cat "$T/dt.out"; fail "the deploy client was not told the server is shutting down"; }
grep -q "goes on on the server" "$T/dt.out" && { cat "$T/dt.out"; fail "the client claims the change goes on although the server stopped"; }
[ -z "$(owner_pids 2>/dev/null)" ] || fail "processes left after the orderly stop: $(owner_pids | tr '\n' ' ')"
restart_server
check_invariants "restart after SIGTERM mid-deploy"
[ "$(json '[r["status"] for r in d["releases"] if r["version"]=='$NEXT'][0]' <"$T/rel.json")" = failed ] || fail "v$NEXT not failed after SIGTERM mid-deploy"
[[ "$(json '[r["reason"] for r in d["releases"] if r["version"]=='$NEXT'][0]' <"$T/rel.json")" == *interrupted* ]] || fail "v$NEXT's reason does not say interrupted"
pass "SIGTERM mid-deploy: the client hears 'shutting down', nothing is left running, v$NEXT is failed (interrupted) after restart"

# --- a second server on the same data dir is refused before it touches anything
PIDS=$(b ps --app $APP --json | json '" ".join(sorted(str(i["pid"]) for i in d["instances"]))')
rc=0; timeout 20 "$BERTH" server --data "$DATA" --api "127.0.0.1:$(free_port)" >"$T/second.out" 2>&1 || rc=$?
[ $rc = 1 ] || { cat "$T/second.out"; fail "a second server on the same data dir exited $rc, want 1"; }
grep -q "another berth server (pid $SRV_PID) is using" "$T/second.out" || { cat "$T/second.out"; fail "the second server does not name the running one"; }
[ "$(b ps --app $APP --json | json '" ".join(sorted(str(i["pid"]) for i in d["instances"]))')" = "$PIDS" ] || fail "the refused second server disturbed the instances"
for p in $PIDS; do pid_alive "$p" || fail "instance $p died when a second server was started"; done
pass "a second server on the same data dir is refused (naming the pid of the first) and changes nothing"

# --- a stopped app stays stopped across kill -9, and comes back with start
b stop --app $APP >"$T/stop.out" 2>&1 || { cat "$T/stop.out"; fail "stop failed"; }
kill_restart "kill -9 of a server whose app is stopped"
sleep 1
[ "$(b ps --app $APP --json | json 'len(d["instances"])')" = 0 ] || { b ps --app $APP; fail "a stopped app was started by the restarted server"; }
[ -z "$(procs_exact "$MARK")" ] || fail "processes of the stopped app run after the restart"
b start --app $APP >"$T/start.out" 2>&1 || { cat "$T/start.out"; fail "start after the restart failed"; }
check_invariants "start after kill -9 of a stopped app"
pass "a stopped app stays stopped across kill -9; start brings it back"

# --- kill -9 around a scale: whatever formation was committed is what runs afterwards
for n in 3 1 4; do
  ms=$((RANDOM % 301))
  b scale worker=$n --app $APP >"$T/sc$n.out" 2>&1 &
  SC=$!
  sleep "$(awk "BEGIN{print $ms/1000}")"
  kill_restart "kill at ${ms} ms into scale worker=$n (seed $SEED)"
  wait $SC || true
  check_invariants "kill at ${ms} ms into scale worker=$n (seed $SEED)"
done
b scale worker=2 --app $APP >"$T/sc.out" 2>&1 || { cat "$T/sc.out"; fail "scale after the kills failed"; }
check_invariants "scale worker=2 after the kills"
[ "$NWORKER" = 2 ] || fail "worker=2 not applied"
pass "kill -9 during scale: the committed formation runs, one process per instance"
stop_server
