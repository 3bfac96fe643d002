#!/usr/bin/env bash
# A worker that starts crashing after its release went live: `ps` shows it in backoff with a
# growing restart count and its exit status, restarts slow down (exponential backoff), the
# server does not burn CPU on it, the web next to it is untouched, and a restart after the
# cause is fixed brings it back.
source "$(dirname "$0")/lib.sh"
start_server
APP=cl
D="$T/app"
mkdir -p "$D"
# The worker runs until a file appears in its volume; from then on it exits 1 at once.
cat > "$D/berth.yaml" <<'YAML'
app: cl
processes:
  web:
    command: exec python3 -m http.server $PORT --bind 127.0.0.1
  worker:
    command: 'echo "worker up"; while [ ! -f "$BERTH_VOLUME_DATA/crash" ]; do sleep 0.05; done; echo "crash file present, giving up" >&2; exit 1'
    volumes: [data]
YAML
(cd "$D" && b deploy) >"$T/d1.out" 2>&1 || { cat "$T/d1.out"; fail "deploy failed"; }
[ "$(count_state $APP)" = 2 ] || fail "v1 not running"
WEBPID=$(b ps --app $APP --json | json '[i["pid"] for i in d["instances"] if i["process"]=="web"][0]')
VOL="$DATA/volumes/production/$APP/data"
[ -d "$VOL" ] || fail "volume dir $VOL missing"

worker() { b ps --app $APP --json | json "[i for i in d['instances'] if i['process']=='worker'][0]$1"; }

CPU0=$(cpu_ticks "$SRV_PID")
touch "$VOL/crash"
wait_for '[ "$(worker "[\"state\"]")" = backoff ]' 50 || { b ps --app $APP; fail "worker never went to backoff"; }
[ "$(worker '["last_exit"]')" = "exit status 1" ] || fail "last_exit is $(worker '["last_exit"]')"
wait_for '[ "$(worker "[\"restarts\"]")" -ge 3 ]' 50 || { b ps --app $APP; fail "restarts do not grow"; }
R1=$(worker '["restarts"]')
# the worker is in backoff most of the time, starting for a moment between crashes: wait for
# the table to catch it in backoff
wait_for 'b ps --app $APP >"$T/ps.txt"; grep -E "^worker\.1 .*backoff.*exit status 1" "$T/ps.txt"' 50 \
  || { cat "$T/ps.txt"; fail "ps table does not show backoff and the exit status"; }
pass "crash loop visible: state backoff, restarts $R1, last_exit 'exit status 1'"

# backoff 100 ms doubling: within ~5 s of crashing it restarts about 6 times, not 50
sleep 5
R2=$(worker '["restarts"]')
CPU1=$(cpu_ticks "$SRV_PID")
[ "$R2" -gt "$R1" ] || fail "restart count not growing ($R1 -> $R2)"
[ "$R2" -le 8 ] || fail "restarting too fast: $R2 restarts in ~5 s"
NEXT=$(worker '.get("next_restart_s", -1)')
python3 -c "import sys; sys.exit(0 if float('$NEXT') >= 0 else 1)" || fail "no next_restart_s while in backoff"
TICKS=$((CPU1 - CPU0))
HZ=$(getconf CLK_TCK)
# the server may use at most 10% of a core while the worker crash-loops
[ "$TICKS" -le $((HZ / 2)) ] || fail "server used $TICKS ticks of CPU (HZ $HZ) in ~5 s of crash loop"
pass "restarts slow down ($R2 after ~5 s), next restart in ${NEXT}s, server CPU $TICKS ticks"

# the web is unaffected, and the log has the worker's complaint
[ "$(b ps --app $APP --json | json '[i["pid"] for i in d["instances"] if i["process"]=="web"][0]')" = "$WEBPID" ] || fail "web was restarted"
b logs --app $APP --process worker -n 50 >"$T/logs.txt" || fail "logs failed"
grep -q "crash file present, giving up" "$T/logs.txt" || { cat "$T/logs.txt"; fail "worker's stderr line not in the logs"; }
[ "$(grep -c "worker up" "$T/logs.txt")" -ge 3 ] || fail "each restart should have logged 'worker up'"

# fix the cause, restart the process: it runs again with a fresh restart count
rm -f "$VOL/crash"
b restart worker --app $APP >"$T/restart.out" 2>&1 || { cat "$T/restart.out"; fail "restart worker failed"; }
wait_for '[ "$(worker "[\"state\"]")" = running ]' 50 || { b ps --app $APP; fail "worker not running after the fix"; }
[ "$(worker '["restarts"]')" = 0 ] || fail "restarted worker should start with 0 restarts"
[ "$(b ps --app $APP --json | json 'len(d["instances"])')" = 2 ] || { b ps --app $APP; fail "expected exactly 2 instances"; }
pass "after the fix, restart brings the worker back (running, 0 restarts)"
