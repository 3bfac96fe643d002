#!/usr/bin/env bash
# Stopping and restarting the server around changes: SIGTERM mid-deploy tells the client and
# fails the rollout at the next start; a second server on the same data dir is refused
# without touching anything; a stopped app stays stopped across kill -9; kill -9 during a
# scale leaves exactly the committed formation running. (kill -9 mid-deploy: t_kill9.sh.)
# KILL9_SEED=N replays the random delays of an earlier run.
source "$(dirname "$0")/lib.sh"
start_server
APP=srs
MARK="srsmark-$(basename "$T")"
SEED=${KILL9_SEED:-$RANDOM}
RANDOM=$SEED
D="$T/app"
k9_init
k9_manifest 0
(cd "$D" && b deploy) >"$T/d1.out" 2>&1 || { cat "$T/d1.out"; fail "v1 deploy failed"; }
k9_check "v1"

# --- SIGTERM (an orderly stop) mid-deploy: the client is told, the rollout is failed at restart
k9_manifest 1
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
k9_check "restart after SIGTERM mid-deploy"
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
k9_kill_restart "kill -9 of a server whose app is stopped"
sleep 1
[ "$(b ps --app $APP --json | json 'len(d["instances"])')" = 0 ] || { b ps --app $APP; fail "a stopped app was started by the restarted server"; }
[ -z "$(procs_exact "$MARK")" ] || fail "processes of the stopped app run after the restart"
b start --app $APP >"$T/start.out" 2>&1 || { cat "$T/start.out"; fail "start after the restart failed"; }
k9_check "start after kill -9 of a stopped app"
pass "a stopped app stays stopped across kill -9; start brings it back"

# --- kill -9 around a scale: whatever formation was committed is what runs afterwards
for n in 3 1 4; do
  ms=$((RANDOM % 301))
  b scale worker=$n --app $APP >"$T/sc$n.out" 2>&1 &
  SC=$!
  sleep "$(awk "BEGIN{print $ms/1000}")"
  k9_kill_restart "kill at ${ms} ms into scale worker=$n (seed $SEED)"
  wait $SC || true
  k9_check "kill at ${ms} ms into scale worker=$n (seed $SEED)"
done
b scale worker=2 --app $APP >"$T/sc.out" 2>&1 || { cat "$T/sc.out"; fail "scale after the kills failed"; }
k9_check "scale worker=2 after the kills"
[ "$NWORKER" = 2 ] || fail "worker=2 not applied"
pass "kill -9 during scale: the committed formation runs, one process per instance"
stop_server
