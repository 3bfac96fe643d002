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
k9_init

# --- v1 live
k9_manifest 0
(cd "$D" && b deploy) >"$T/d1.out" 2>&1 || { cat "$T/d1.out"; fail "v1 deploy failed"; }
[ "$(count_state $APP)" = 3 ] || fail "v1 not running"
OLD=$(owner_pids 2>/dev/null | tr '\n' ' ')

# --- v2 (slow) deploying; kill -9 once a v2 instance is starting
k9_manifest 1
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
k9_check "after kill -9 mid-deploy"
[ "$LIVE" = 1 ] || fail "v1 should be live, not v$LIVE"
[ "$(json '[r["status"] for r in d["releases"] if r["version"]==2][0]' <"$T/rel.json")" = failed ] || fail "v2 not failed"
[[ "$(json '[r["reason"] for r in d["releases"] if r["version"]==2][0]' <"$T/rel.json")" == *interrupted* ]] || fail "v2's reason does not say interrupted"
for port in $(b ps --app $APP --json | json '" ".join(str(i["port"]) for i in d["instances"] if i["port"])'); do
  [ "$(curl -s "http://127.0.0.1:$port/")" = "release 1" ] || fail "web on port $port does not serve v1"
done
pass "kill -9 mid-deploy: v1 back (2 web + 1 worker, one process each), v2 failed (interrupted), no survivors"

k9_manifest 0
(cd "$D" && b deploy) >"$T/d3.out" 2>&1 || { cat "$T/d3.out"; fail "deploy after the restart failed"; }
k9_check "deploy after restart"
[ "$LIVE" = 3 ] || fail "v3 should be live, not v$LIVE"
pass "a fresh deploy after the restart goes live (v3)"

# --- kill -9 at random moments of a deploy
DELAYS=""
for i in 1 2 3 4 5; do
  ms=$((RANDOM % 1501))
  DELAYS="$DELAYS $ms"
  k9_manifest 1
  (cd "$D" && b deploy) >"$T/dr$i.out" 2>&1 &
  DEPLOY=$!
  # the clock starts when the client has packed the app and is about to upload it
  wait_for '[ -s "$T/dr$i.out" ]' 50 || fail "random kill $i: the deploy printed nothing"
  sleep "$(awk "BEGIN{print $ms/1000}")"
  k9_kill_restart "random kill $i at ${ms} ms (seed $SEED)"
  # a client that had not connected yet may reach the new server and deploy for real: then it
  # must have succeeded; either way the state must be consistent afterwards
  rc=0; wait $DEPLOY || rc=$?
  [ $rc = 0 ] && ! grep -q "is live" "$T/dr$i.out" && { cat "$T/dr$i.out"; fail "random kill $i: exit 0 without going live"; }
  k9_check "random kill $i at ${ms} ms (seed $SEED)"
done
pass "5 kills at random moments (ms:$DELAYS; seed $SEED): state consistent every time"

k9_manifest 0
(cd "$D" && b deploy) >"$T/dlast.out" 2>&1 || { cat "$T/dlast.out"; fail "final deploy failed"; }
k9_check "final deploy"
pass "deploying still works after all that (v$LIVE live)"
stop_server
