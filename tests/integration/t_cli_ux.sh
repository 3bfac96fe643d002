#!/usr/bin/env bash
# The CLI's manners: an unknown verb suggests the nearest; Heroku's colon spellings work;
# `help server` lists the server's flags; logs/routes/restart/scale refuse what cannot be
# (no such process, a process without a port, an app that does not exist, a stopped app);
# `restart web.1` / `restart worker.1` replace one instance (surge with a port, stop-then-start
# without).
source "$(dirname "$0")/lib.sh"

# rc_of CMD...: run CMD with stdout into $T/out and stderr into $T/err; print its exit status
rc_of() { local rc=0; "$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?; echo "$rc"; }
# events FILE INSTANCE: the start/healthy/stop events of INSTANCE in a --json progress stream
events() {
  python3 - "$1" "$2" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
print(" ".join(e["event"] for e in ev if e.get("instance") == sys.argv[2] and e["event"] in ("start", "healthy", "stop")))
PY
}
# touched FILE: every instance a --json progress stream started or stopped
touched() {
  python3 - "$1" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
print(" ".join(sorted({e["instance"] for e in ev if e["event"] in ("start", "stop") and e.get("instance")})))
PY
}

# ---- 1. unknown verbs (no server needed)
assert_eq "$(rc_of b deplyo)" 2 "exit status of an unknown verb"
assert_eq "$(cat "$T/err")" 'berth: unknown verb "deplyo"; did you mean deploy?' "unknown verb deplyo"
assert_eq "$(rc_of b dep)" 2 "exit status of a verb prefix"
assert_eq "$(cat "$T/err")" 'berth: unknown verb "dep"; did you mean deploy?' "a prefix suggests its verb"
rc_of b rstart >/dev/null
assert_eq "$(cat "$T/err")" 'berth: unknown verb "rstart"; did you mean restart or start?' "two equally near verbs"
rc_of b cofnig:set A=1 >/dev/null
assert_eq "$(cat "$T/err")" 'berth: unknown verb "cofnig:set"; did you mean config:set?' "a misspelt VERB:SUB"
rc_of b ps:sacle >/dev/null
assert_eq "$(cat "$T/err")" 'berth: unknown verb "ps:sacle"; did you mean ps:scale?' "a misspelt Heroku rename"
assert_eq "$(rc_of b xyzzy)" 2 "exit status of a far-off verb"
assert_eq "$(cat "$T/err")" 'berth: unknown verb "xyzzy" (run `berth help` for the list)' "nothing near"
assert_eq "$(rc_of b help deplyo)" 2 "help of an unknown verb"
assert_eq "$(cat "$T/err")" 'berth: unknown verb "deplyo"; did you mean deploy?' "help deplyo"
pass "unknown verbs suggest the nearest (edit distance, prefix), exit 2"

# ---- 3. help server: every flag of the server, from the table the parser reads
assert_eq "$(rc_of b help server)" 0 "help server"
HELP=$(cat "$T/out")
assert_eq "$(rc_of b server --help)" 0 "server --help"
assert_eq "$(cat "$T/out")" "$HELP" "server --help is help server"
FLAGS=$(sed -n '/^Flags:/,$p' <<<"$HELP" | grep -o '^  --[a-z-]*' | tr -d ' ' | tr '\n' ' ')
assert_eq "$FLAGS" "--data --api --router --dns --config --docker-host --quiet --upgrade --help " "flags listed by help server"
assert_has "$HELP" "--router HOST:PORT  where the HTTP router listens (default 127.0.0.1:8080" "--router's line"
# each listed flag is one the parser knows, taking what the help says (checked without
# starting a server: a value-taking flag alone is an error, a bare one followed by a bad one)
while read -r f v; do
  if [[ "$v" =~ ^[A-Z:]+$ ]]; then
    b server "$f" >/dev/null 2>"$T/err" </dev/null
    assert_eq "$(cat "$T/err")" "berth server: $f wants $v" "server $f without its value"
  elif [ "$f" != --help ]; then
    b server "$f" --bogus >/dev/null 2>"$T/err" </dev/null
    assert_eq "$(head -1 "$T/err")" "berth server: unknown flag --bogus" "server $f is known"
  fi
done < <(sed -n '/^Flags:/,$p' <<<"$HELP" | grep '^  --' | awk '{print $1, $2}')
b server --bogus >/dev/null 2>"$T/err"
assert_has "$(cat "$T/err")" "berth server: unknown flag --bogus" "server --bogus"
pass "help server and server --help list every server flag with what it does"

start_server_net
APP=shop
D="$T/app"
mkdir -p "$D"
echo shop >"$D/index.html"
cat >"$D/Procfile" <<'PROC'
web: exec python3 -m http.server $PORT --bind 127.0.0.1
worker: exec sh -c 'trap "echo bye $$; exit 0" TERM; echo hello $$; while :; do sleep 0.1; done'
PROC

# ---- 5 (before the first deploy). A route to an app that does not exist is refused; to an
# app created but not deployed it is taken, with the warning
assert_eq "$(rc_of b routes add nope.test --app nope)" 1 "routes add to a missing app"
assert_has "$(cat "$T/err")" "berth: no app nope in env production" "routes add to a missing app"
assert_eq "$(b routes --json | json 'len([r for r in d["routes"] if r["host"] == "nope.test"])')" 0 "no route to a missing app"
assert_eq "$(api POST /v1/routes -d '{"host":"nope.test","path":"/","env":"production","app":"nope"}' | tail -1)" 404 \
  "API status of a route to a missing app"

# ---- 2. Heroku's spellings
run_ok "$T/create.out" b apps:create $APP
assert_eq "$(b apps:info $APP --json | json 'd["name"]')" $APP "apps:info after apps:create"
run_ok "$T/early.out" b routes add early.test --app $APP
assert_has "$(cat "$T/early.out")" "has not been deployed yet" "route before the first deploy"
run_ok "$T/cs.out" b config:set GREETING=hi --app $APP
assert_eq "$(b config:get GREETING --app $APP)" hi "config:get after config:set"
run_ok "$T/deploy.out" b deploy "$D" --app $APP
run_ok "$T/cs2.out" b config:set OTHER=1 --app $APP
run_ok "$T/cu.out" b config:unset OTHER --app $APP
assert_eq "$(b config --app $APP --json | json '"OTHER" in d["config"]')" False "config:unset"
run_ok "$T/scale.out" b ps:scale web=2 --app $APP
assert_eq "$(b scale --app $APP)" "web=2 worker=1" "formation after ps:scale"
assert_eq "$(b releases:info v1 --app $APP --json | json 'd["version"]')" 1 "releases:info v1"
WORKER0=$(pids_of $APP worker)
run_ok "$T/psr.out" b ps:restart worker --app $APP
assert_has "$(cat "$T/psr.out")" "stopping worker.1" "ps:restart worker"
assert_lacks "$(pids_of $APP worker)" "$WORKER0" "worker pid after ps:restart"
run_ok "$T/runbg.out" b run:detached --app $APP -- echo detached-hello
grep -Eq '^run\.[0-9]+$' "$T/runbg.out" || fail "run:detached did not print a one-off id: $(cat "$T/runbg.out")"
wait_for 'b logs --app $APP --process run | grep -q detached-hello' 100 || fail "run:detached output not in the logs"
run_ok "$T/mon.out" b maintenance:on --app $APP
assert_eq "$(b maintenance --app $APP --json | json 'd["maintenance"]')" True "maintenance:on"
run_ok "$T/moff.out" b maintenance:off --app $APP
assert_eq "$(b maintenance --app $APP --json | json 'd["maintenance"]')" False "maintenance:off"
b logs --tail -n 0 --app $APP >"$T/tail.out" 2>&1 &
BG_PIDS+=($!)
# a new line until the follower (subscribed at some point) shows one
wait_for 'grep -q "run.[0-9]* v[0-9]* | tail-probe" "$T/tail.out" || { b run -d --app $APP -- echo tail-probe >/dev/null; false; }' 100 \
  || fail "logs --tail shows no new lines: $(cat "$T/tail.out")"
run_ok "$T/apps2.out" b apps:create spare
run_ok "$T/destroy.out" b apps:destroy spare --confirm spare
assert_eq "$(b apps --json | json 'sorted(a["name"] for a in d["apps"])')" "['$APP']" "apps after apps:destroy"
OVERVIEW=$(b help)
for w in "VERB:SUB" config:set apps:create "ps:scale            scale" "ps:restart          restart" \
  "run:detached        run -d" "logs --tail         logs -f"; do
  assert_has "$OVERVIEW" "$w" "help overview"
done
pass "Heroku spellings: apps:create/info/destroy, config:set/get/unset, ps:scale, ps:restart, releases:info, run:detached, maintenance:on/off, logs --tail"

# ---- 4. logs --process must be a process of the live release, or a one-off kind
assert_eq "$(rc_of b logs --app $APP --process nope)" 1 "logs --process nope"
assert_eq "$(cat "$T/err")" 'berth: shop has no process "nope" (its processes: web, worker; one-offs: build, release, run, exec, cron.NAME)' \
  "logs --process nope"
assert_eq "$(api GET "/v1/envs/production/apps/$APP/logs?process=nope" | tail -1)" 400 "API status of logs?process=nope"
for p in web worker build release run exec cron.nightly; do
  assert_eq "$(rc_of b logs --app $APP --process $p -n 1)" 0 "logs --process $p"
done
pass "logs --process: unknown process is an error naming the processes; one-off kinds are fine"

# ---- 5. routes to a process that is not there, or has no port
assert_eq "$(rc_of b routes add w.test --app $APP --process worker)" 1 "route to the worker"
assert_eq "$(cat "$T/err")" "berth: worker has no port: only processes with port: true can be routed" "route to the worker"
assert_eq "$(rc_of b routes add n.test --app $APP --process nope)" 1 "route to a missing process"
assert_eq "$(cat "$T/err")" 'berth: production/shop has no process "nope" (it has: web, worker)' "route to a missing process"
assert_eq "$(api POST /v1/routes -d '{"host":"w.test","path":"/","env":"production","app":"shop","process":"worker"}' | tail -1)" 400 \
  "API status of a route to the worker"
assert_eq "$(b routes --json | json 'sorted(r["host"] for r in d["routes"] if not r["default"])')" "['early.test']" "routes after the refusals"
run_ok "$T/rweb.out" b routes add ok.test --app $APP --process web
assert_lacks "$(cat "$T/rweb.out")" "not been deployed" "route to a deployed app's web"
pass "routes add: refused for a missing process (400), a process without a port (400), a missing app (404)"

# ---- 7. restart one instance
WEB1=$(b ps --app $APP --json | json '[i["pid"] for i in d["instances"] if i["id"] == "web.1"][0]')
WEB2=$(b ps --app $APP --json | json '[i["pid"] for i in d["instances"] if i["id"] == "web.2"][0]')
b restart web.1 --app $APP --json >"$T/r1.json" || { cat "$T/r1.json"; fail "restart web.1 failed"; }
assert_eq "$(tail -1 "$T/r1.json" | json '(d["event"], d["ok"])')" "('done', True)" "restart web.1's last event"
assert_eq "$(events "$T/r1.json" web.1)" "start healthy stop" "restart web.1: the new one healthy before the old one stops"
assert_eq "$(touched "$T/r1.json")" "web.1" "restart web.1 touches only web.1"
wait_for '[ "$(b ps --app $APP --json | json "len(d[\"instances\"])")" = 3 ]' 100 || { b ps --app $APP; fail "old web.1 lingers"; }
NEW1=$(b ps --app $APP --json | json '[i["pid"] for i in d["instances"] if i["id"] == "web.1"][0]')
[ "$NEW1" != "$WEB1" ] || fail "web.1 kept its pid $WEB1"
assert_eq "$(b ps --app $APP --json | json '[i["pid"] for i in d["instances"] if i["id"] == "web.2"][0]')" "$WEB2" "web.2's pid after restart web.1"
wait_for "! alive $WEB1" 50 || fail "old web.1 ($WEB1) still alive"
assert_eq "$(b ps --app $APP --json | json '" ".join(sorted(i["state"] for i in d["instances"]))')" "running running running" "states after restart web.1"

W1=$(pids_of $APP worker)
b restart worker.1 --app $APP --json >"$T/rw.json" || { cat "$T/rw.json"; fail "restart worker.1 failed"; }
assert_eq "$(events "$T/rw.json" worker.1)" "stop start healthy" "restart worker.1: stopped, then started"
assert_eq "$(touched "$T/rw.json")" "worker.1" "restart worker.1 touches only worker.1"
W2=$(pids_of $APP worker)
[ -n "$W2" ] && [ "$W2" != "$W1" ] || fail "worker.1 not replaced ($W1 -> $W2)"
# what the worker itself printed: the old one said bye before the new one said hello
LOG=$(log_text $APP production --process worker -n 1000)
BYE=$(grep -n "| bye $W1\$" <<<"$LOG" | cut -d: -f1)
HELLO=$(grep -n "| hello $W2\$" <<<"$LOG" | cut -d: -f1)
[ -n "$BYE" ] && [ -n "$HELLO" ] && [ "$BYE" -lt "$HELLO" ] || fail "worker.1 did not stop before its replacement started: $LOG"

assert_eq "$(rc_of b restart web.3 --app $APP)" 1 "restart web.3 (web runs 2)"
assert_eq "$(cat "$T/err")" "berth: no instance web.3: web runs 2 (web.1 to web.2)" "restart web.3"
assert_eq "$(rc_of b restart web.x --app $APP)" 2 "restart web.x"
assert_has "$(cat "$T/err")" '"web.x" is neither a process (web) nor an instance (web.2)' "restart web.x"
assert_eq "$(rc_of b restart nope.1 --app $APP)" 1 "restart nope.1"
assert_has "$(cat "$T/err")" 'unknown process "nope" (the app has: web, worker)' "restart nope.1"
# a later whole-process restart still replaces the lone-restarted slot
WEBS=$(pids_of $APP web)
run_ok "$T/rwebs.out" b restart web --app $APP
for p in $WEBS; do [[ " $(pids_of $APP web) " == *" $p "* ]] && fail "web pid $p survived restart web"; done
pass "restart web.1 surges one instance; restart worker.1 stops then starts it; others untouched"

# ---- 6. a stopped app is neither restarted nor scaled
run_ok "$T/stop.out" b stop --app $APP
assert_eq "$(rc_of b restart --app $APP)" 1 "restart of a stopped app"
assert_eq "$(cat "$T/err")" "berth: shop is stopped: berth start --app shop first" "restart of a stopped app"
assert_eq "$(rc_of b scale web=3 --app $APP)" 1 "scale of a stopped app"
assert_eq "$(cat "$T/err")" "berth: shop is stopped: berth start --app shop first" "scale of a stopped app"
assert_eq "$(rc_of b restart web.1 --app $APP)" 1 "restart web.1 of a stopped app"
assert_eq "$(api POST "/v1/envs/production/apps/$APP/scale" -d '{"formation":{"web":3}}' | tail -1)" 409 "API status of scale when stopped"
assert_eq "$(b scale --app $APP)" "web=2 worker=1" "formation unchanged on a stopped app"
assert_eq "$(b ps --app $APP --json | json 'd["instances"]')" "[]" "nothing started on a stopped app"
run_ok "$T/start.out" b start --app $APP
assert_eq "$(count_state $APP running)" 3 "instances after start"
pass "restart and scale on a stopped app say so and change nothing (409)"

stop_server
pass "server stopped, no process left"
