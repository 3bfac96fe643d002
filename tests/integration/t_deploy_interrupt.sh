#!/usr/bin/env bash
# Interrupting `berth deploy`: the CLI says the rollout goes on on the server and how to follow
# or cancel it (it does not exit without a word), the rollout indeed finishes; and
# `berth deploy --cancel` stops a rollout in progress, keeping the previous release.
. "$(dirname "$0")/lib.sh"
start_server --router 127.0.0.1:0 --dns 127.0.0.1:0
APP=intr
D=$T/app; mkdir -p "$D"
write_app() { # $1: version text, $2: seconds the release phase takes
  cat >"$D/berth.yaml" <<YAML
app: $APP
release: echo "release phase $1 starts"; sleep $2; echo "release phase $1 done"
processes:
  web:
    command: exec python3 -m http.server \$PORT --bind 127.0.0.1
YAML
  echo "$1" >"$D/index.html"
}
web_port() { b ps --app $APP --json | json '[i["port"] for i in d["instances"] if i["state"]=="running"][0]'; }

write_app one 0
run_ok "$T/d1.out" b deploy "$D"
PORT1=$(web_port)

# --- SIGTERM (as Ctrl-C would) during the release phase of v2
write_app two 3
"$BERTH" deploy "$D" >"$T/d2.out" 2>"$T/d2.err" &   # not via b(): $! must be berth itself
CLI=$!
wait_for 'grep -q "release phase two starts" "$T/d2.out"' 100 || { cat "$T/d2.out" "$T/d2.err"; fail "v2's release phase did not start"; }
kill -TERM $CLI
rc=0; wait $CLI || rc=$?
[ $rc = 143 ] || fail "the interrupted deploy exited $rc, want 143 (128+SIGTERM)"
assert_has "$(cat "$T/d2.err")" "the change goes on on the server" "interrupted deploy"
assert_has "$(cat "$T/d2.err")" "berth deploy --cancel --app $APP --env production" "interrupted deploy: how to cancel"
assert_has "$(cat "$T/d2.err")" "berth ps --app $APP --env production" "interrupted deploy: how to follow"
wait_for '[ "$(b releases --app $APP --json | json "[r[\"status\"] for r in d[\"releases\"] if r[\"version\"]==2][0]")" = active ]' 100 \
  || { b releases --app $APP; fail "v2 did not go live after the CLI was interrupted"; }
wait_for '[ "$(curl -s "http://127.0.0.1:$(web_port)/")" = two ]' 50 || fail "v2 does not serve"
pass "an interrupted deploy says the rollout goes on and how to follow or cancel it; v2 went live"

# --- deploy --cancel during v3's release phase: v2 stays
PORT2=$(web_port)
write_app three 30
"$BERTH" deploy "$D" >"$T/d3.out" 2>"$T/d3.err" &
CLI=$!
BG_PIDS+=("$CLI")
wait_for 'grep -q "release phase three starts" "$T/d3.out"' 100 || { cat "$T/d3.out" "$T/d3.err"; fail "v3's release phase did not start"; }
run_ok "$T/cancel.out" b deploy --cancel --app $APP
assert_has "$(cat "$T/cancel.out")" "cancelled the rollout of v3; v2 stays live" "deploy --cancel"
rc=0; wait $CLI || rc=$?
[ $rc = 1 ] || { cat "$T/d3.out" "$T/d3.err"; fail "the cancelled deploy exited $rc, want 1"; }
assert_has "$(cat "$T/d3.err")" "cancelled" "the cancelled deploy's error"
assert_eq "$(web_port)" "$PORT2" "v2's web after the cancel"
assert_eq "$(curl -s "http://127.0.0.1:$PORT2/")" two "v2 still serves"
assert_eq "$(b releases --app $APP --json | json '[r["status"] for r in d["releases"] if r["version"]==3][0]')" failed "v3's status"
[ -z "$(procs_exact "release phase three")" ] || wait_for '[ -z "$(procs_exact "sleep 30")" ]' 100 || fail "v3's release phase still runs"
pass "deploy --cancel stops a rollout in its release phase; v2 keeps serving"
