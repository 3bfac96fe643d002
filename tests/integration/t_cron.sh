#!/usr/bin/env bash
# cron: jobs of berth.yaml run as one-offs of the live release on their schedule (time driven
# by the BERTH_TEST_HOOKS clock hook, not by waiting minutes), with their output in the logs
# as cron.NAME; `berth cron` lists last and next runs; `cron run NAME` starts one now;
# concurrency: forbid skips a run while one is going; timeouts stop a run; a run missed while
# the server was down is made up once at start-up; bad schedules are file:line:col errors.
. "$(dirname "$0")/lib.sh"
export BERTH_TEST_HOOKS=1 BERTH_TEST_CRON_FROZEN=1   # the scheduler's clock moves only when the test says
start_server --router 127.0.0.1:0 --dns 127.0.0.1:0
APP=crony
D=$T/app; mkdir -p "$D"
cat >"$D/berth.yaml" <<'YAML'
processes:
  web:
    command: exec python3 -m http.server $PORT --bind 127.0.0.1
config:
  GREETING: hello
cron:
  tick:
    schedule: "* * * * *"
    command: echo "tick $GREETING $BERTH_RELEASE $(date +%s%N)" >>"$MARKS/tick"; echo tick-out
  slow:
    schedule: "0 0 29 2 *"     # never within this test: it is run by hand
    command: echo "slow-start" >>"$MARKS/slow"; sleep 30
    timeout: 3s
YAML
MARKS=$T/marks; mkdir -p "$MARKS"
run_ok "$T/d1.out" b deploy "$D" --app $APP
run_ok "$T/cfg.out" b config set MARKS="$MARKS" --app $APP

advance() { api POST /v1/debug/clock -d "{\"advance_s\": $1, \"freeze\": true}" >/dev/null; }
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

# ---- listing before any run: schedule, time zone, next run, never run
b cron --app $APP >"$T/c0.txt" || fail "berth cron failed"
grep -q '^tick  *\* \* \* \* \* (UTC)  *never' "$T/c0.txt" && grep -q '^slow  *0 0 29 2 \* (UTC)  *never' "$T/c0.txt" || { cat "$T/c0.txt"; fail "cron listing before a run"; }
pass "berth cron lists the jobs with schedule, time zone and next run"

# ---- one minute later: tick ran once, with the app's config, output in the logs
advance 60
wait_for '[ "$(lines "$MARKS/tick")" -ge 1 ]' 100 || fail "tick did not run after the clock moved a minute"
assert_has "$(cat "$MARKS/tick")" "tick hello 2" "tick's environment (config, release v2)"
wait_for 'b logs --app $APP --process cron.tick | grep -q tick-out' 50 || fail "tick's output is not in berth logs --process cron.tick"
wait_for 'b cron --app $APP --json | json "[j for j in d[\"jobs\"] if j[\"name\"]==\"tick\"][0][\"last_result\"]" | grep -q "exit status 0"' 50 \
  || { b cron --app $APP; fail "cron listing does not show tick's last result"; }
pass "a job runs when its minute comes, with the release's config; output in logs as cron.tick"

# ---- a second minute: one more run, not two
advance 60
wait_for '[ "$(lines "$MARKS/tick")" -ge 2 ]' 100 || fail "tick did not run in the second minute"
advance 0
[ "$(lines "$MARKS/tick")" = 2 ] || fail "tick ran $(lines "$MARKS/tick") times after two minutes"
pass "one run per minute"

# ---- cron run NAME; forbid; timeout
run_ok "$T/run.out" b cron run slow --app $APP
wait_for '[ "$(lines "$MARKS/slow")" -ge 1 ]' 50 || fail "cron run slow did not start it"
rc=0; b cron run slow --app $APP >"$T/run2.out" 2>&1 || rc=$?
[ $rc = 1 ] || { cat "$T/run2.out"; fail "a second cron run of a forbid job while one runs exited $rc"; }
grep -q "still running" "$T/run2.out" || { cat "$T/run2.out"; fail "the refused run does not say why"; }
wait_for 'b cron --app $APP --json | json "[j for j in d[\"jobs\"] if j[\"name\"]==\"slow\"][0][\"last_result\"]" | grep -q "timed out"' 100 \
  || { b cron --app $APP; fail "the slow job was not stopped at its 3 s timeout"; }
pass "cron run starts a job now; forbid refuses a second run; a run over its timeout is stopped"

# ---- downtime: a slot that passed while the server was down runs once at start-up
n_before=$(lines "$MARKS/tick")
stop_server
# the server's clock offset is gone after a restart: make the stored last slot 3 minutes old
python3 - "$DATA/state.db" <<'PY' || fail "could not age the stored cron state"
import json, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
rows = db.execute("select key, value from kv where key like '%/cron/tick'").fetchall()
assert rows, "no stored cron state"
for k, v in rows:
    d = json.loads(v); d["last_scheduled"] = int(time.time()) - 180
    db.execute("update kv set value=? where key=?", (json.dumps(d), k))
db.commit()
PY
restart_server --router 127.0.0.1:0 --dns 127.0.0.1:0
wait_for '[ "$(lines "$MARKS/tick")" -ge $((n_before + 1)) ]' 100 || fail "the missed tick was not made up at start-up"
advance 0
[ "$(lines "$MARKS/tick")" = $((n_before + 1)) ] || fail "missed runs were made up $(( $(lines "$MARKS/tick") - n_before )) times, want once"
pass "a run missed while the server was down is made up once"

# ---- bad schedules: file:line:col, nothing deployed
B=$T/bad; mkdir -p "$B"; echo 'web: exec sleep 100' >"$B/Procfile"
printf 'cron:\n  x:\n    schedule: "61 * * * *"\n    command: echo\n' >"$B/berth.yaml"
rc=0; b deploy "$B" --app $APP >"$T/bad1.out" 2>&1 || rc=$?
[ $rc != 0 ] || fail "a minute of 61 was accepted"
assert_has "$(cat "$T/bad1.out")" "berth.yaml:3:16: cron.x.schedule: minute 61 is out of range 0-59" "61 * * * *"
printf 'cron:\n  x:\n    schedule: "* * * * * *"\n    command: echo\n' >"$B/berth.yaml"
rc=0; b deploy "$B" --app $APP >"$T/bad2.out" 2>&1 || rc=$?
[ $rc != 0 ] || fail "a six-field schedule was accepted"
assert_has "$(cat "$T/bad2.out")" "berth.yaml:3:26:" "six fields: the column of the sixth"
assert_eq "$(b releases --app $APP --json | json 'len(d["releases"])')" 2 "no release from the bad manifests"
pass "bad schedules are refused with file:line:col before anything is uploaded"
