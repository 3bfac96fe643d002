#!/usr/bin/env bash
# Deploying a Procfile app (web + worker): the progress a user sees, what `ps`, `apps`, `envs`
# and `releases` then show, the web answering, the environment and working directory of the
# instances, and a second deploy of changed code that rolls out without the web ever going
# dark.
source "$(dirname "$0")/lib.sh"
# Something in the server's own environment that must not leak into instances.
export LEAK_CHECK=leaked
start_server
APP=demo
D="$T/app"
mkdir -p "$D"
echo "hello v1" >"$D/index.html"
# Each instance prints its environment and working directory once, then runs.
cat >"$D/Procfile" <<'PROC'
web: echo "env PORT=${PORT-unset} APP=$BERTH_APP ENV=$BERTH_ENV PROCESS=$BERTH_PROCESS INSTANCE=$BERTH_INSTANCE RELEASE=$BERTH_RELEASE LEAK=${LEAK_CHECK-unset} PWD=$(pwd)"; exec python3 -m http.server $PORT --bind 127.0.0.1
worker: echo "env PORT=${PORT-unset} APP=$BERTH_APP ENV=$BERTH_ENV PROCESS=$BERTH_PROCESS INSTANCE=$BERTH_INSTANCE RELEASE=$BERTH_RELEASE LEAK=${LEAK_CHECK-unset} PWD=$(pwd)"; while true; do sleep 0.2; done
PROC

# .git/ and .berth/ are left out of the upload
mkdir -p "$D/.git" "$D/.berth" "$D/static"
echo "ref: refs/heads/main" >"$D/.git/HEAD"
echo "secret" >"$D/.berth/admin.token"
echo "css" >"$D/static/site.css"

# ---- first deploy
run_ok "$T/d1.out" b deploy "$D" --app $APP
OUT=$(cat "$T/d1.out")
assert_has "$OUT" "-----> Deploying demo to production: uploading" "deploy progress"
assert_has "$OUT" "-----> created release v1" "deploy progress"
assert_has "$OUT" "-----> v1 is live" "deploy progress"

b ps --app $APP --json >"$T/ps1.json"
assert_eq "$(json '" ".join("%s:%s:%s" % (i["id"], i["state"], i["release"]) for i in d["instances"])' <"$T/ps1.json")" \
  "web.1:running:1 worker.1:running:1" "ps --json after v1"
WEB_PID=$(json '[i["pid"] for i in d["instances"] if i["id"]=="web.1"][0]' <"$T/ps1.json")
WEB_PORT=$(json '[i["port"] for i in d["instances"] if i["id"]=="web.1"][0]' <"$T/ps1.json")
WRK_PID=$(json '[i["pid"] for i in d["instances"] if i["id"]=="worker.1"][0]' <"$T/ps1.json")
assert_eq "$(json '[i["port"] for i in d["instances"] if i["id"]=="worker.1"][0]' <"$T/ps1.json")" None "worker.1 has no port"
[[ "$WEB_PORT" =~ ^[0-9]+$ ]] || fail "web.1 has no port: $WEB_PORT"
alive "$WEB_PID" || fail "web.1 pid $WEB_PID is not a live process"
alive "$WRK_PID" || fail "worker.1 pid $WRK_PID is not a live process"
# the progress lines name the very pid and port that ps shows
assert_has "$OUT" "web.1 (v1) started, pid $WEB_PID, port $WEB_PORT" "deploy progress"
assert_has "$OUT" "worker.1 (v1) started, pid $WRK_PID" "deploy progress"
assert_has "$OUT" "web.1 (v1) healthy after" "deploy progress"
assert_has "$OUT" "worker.1 (v1) healthy after" "deploy progress"
# the text table agrees
b ps --app $APP | tr -s ' ' >"$T/ps1.txt"
grep -qx "web.1 v1 running $WEB_PID $WEB_PORT 0 [0-9.]*m\?s -" "$T/ps1.txt" || { cat "$T/ps1.txt"; fail "ps table row for web.1"; }
grep -qx "worker.1 v1 running $WRK_PID - 0 [0-9.]*m\?s -" "$T/ps1.txt" || { cat "$T/ps1.txt"; fail "ps table row for worker.1"; }

assert_eq "$(curl -s "http://127.0.0.1:$WEB_PORT/index.html")" "hello v1" "GET /index.html on web.1"

# the code is unpacked under DATA/releases/<env>/<app>/code-<sha256:16>, and the instances run there
CODE1=$(b releases --app $APP --json | json 'd["releases"][0]["code"]')
[[ "$CODE1" =~ ^[0-9a-f]{64}$ ]] || fail "release code is not a sha256: $CODE1"
RDIR1="$(realpath "$DATA")/releases/production/$APP/code-${CODE1:0:16}"
[ -f "$RDIR1/index.html" ] && [ -f "$RDIR1/Procfile" ] || fail "the code of v1 is not unpacked in $RDIR1"
assert_eq "$(cd "$RDIR1" && find . | sort | tr '\n' ' ')" ". ./Procfile ./index.html ./static ./static/site.css " "files of the release (.git and .berth left out)"
assert_eq "$(curl -s "http://127.0.0.1:$WEB_PORT/static/site.css")" "css" "GET /static/site.css on web.1"
assert_eq "$(readlink "/proc/$WEB_PID/cwd")" "$RDIR1" "web.1's working directory"
assert_eq "$(readlink "/proc/$WRK_PID/cwd")" "$RDIR1" "worker.1's working directory"

# the environment each instance sees (its first log line)
wait_for '[ "$(log_text $APP production --process worker | grep -c " | env ")" = 1 ]' 50 || fail "worker did not log its environment"
assert_eq "$(log_text $APP production --process web | grep ' | env ')" \
  "web.1 v1 | env PORT=$WEB_PORT APP=demo ENV=production PROCESS=web INSTANCE=web.1 RELEASE=1 LEAK=unset PWD=$RDIR1" "web.1's environment"
assert_eq "$(log_text $APP production --process worker | grep ' | env ')" \
  "worker.1 v1 | env PORT=unset APP=demo ENV=production PROCESS=worker INSTANCE=worker.1 RELEASE=1 LEAK=unset PWD=$RDIR1" "worker.1's environment"
pass "v1 deployed: progress, ps, web answers, env and cwd of instances"

# ---- apps, envs, releases
assert_eq "$(b apps | tr -s ' ')" "ENV APP RELEASE STATE INSTANCES FORMATION
production demo v1 running 2/2 web=1 worker=1" "apps table"
assert_eq "$(b apps --json | json '[(a["env"], a["name"], a["release"], a["state"], a["status"], a["formation"], a["instances"]) for a in d["apps"]]')" \
  "[('production', 'demo', 1, 'running', 'running', {'web': 1, 'worker': 1}, {'running': 2, 'total': 2, 'wanted': 2})]" "apps --json"
assert_eq "$(b envs | tr -s ' ')" "ENV APPS
production 1" "envs table"
assert_eq "$(b envs --json | json 'd["envs"]')" "[{'name': 'production', 'apps': 1}]" "envs --json"
b releases --app $APP | tr -s ' ' >"$T/rel1.txt"
assert_eq "$(wc -l <"$T/rel1.txt")" 2 "releases table lines (header + v1)"
grep -Eqx "v1 active (just now|[0-9]+s ago) Deploy ${CODE1:0:8} first release" "$T/rel1.txt" || { cat "$T/rel1.txt"; fail "releases table row for v1"; }
assert_eq "$(b releases --app $APP --json | json '[(r["version"], r["status"], r["description"], r["changes"], r["formation"], r["processes"]) for r in d["releases"]]')" \
  "[(1, 'active', 'Deploy ${CODE1:0:8}', ['first release'], {'web': 1, 'worker': 1}, ['web', 'worker'])]" "releases --json"
pass "apps, envs, releases (text and --json) show v1"

# ---- second deploy of changed code, watched from the side
# v2's web takes a second before it listens, so the rollout has a long window in which only
# v1 can serve. Ports change with every instance, so "curl one port in a loop" cannot work.
# Instead a watcher samples, over and over: ps --json -> the web instances the server calls
# `running` (healthy) -> curl each of them. The promise of a surge rollout is (a) there is
# always at least one running web instance, and (b) every instance called running answers.
# A failed curl only counts when the instance is still listed running with the same pid
# afterwards: an instance can legitimately be stopped between the snapshot and the curl, and
# states only move forward (running -> stopping -> gone), so running before and after means it
# was running throughout the failed request.
echo "hello v2" >"$D/index.html"
sed -i 's/; exec python3/; sleep 1; exec python3/' "$D/Procfile"
running_webs() {
  b ps --app $APP --json | json '" ".join("%s:%s" % (i["pid"], i["port"]) for i in d["instances"] if i["process"]=="web" and i["state"]=="running")'
}
watch_web() {
  while [ ! -e "$T/watch.stop" ] && [ -d "$T" ]; do
    local snap webs n
    snap=$(b ps --app $APP --json) || { echo "psfail" >>"$T/watch.log"; continue; }
    n=$(json 'sum(1 for i in d["instances"] if i["process"]=="web")' <<<"$snap")
    webs=$(json '" ".join("%s:%s" % (i["pid"], i["port"]) for i in d["instances"] if i["process"]=="web" and i["state"]=="running")' <<<"$snap")
    [ -n "$webs" ] || { echo "none listed=$n" >>"$T/watch.log"; continue; }
    for w in $webs; do
      if body=$(curl -s -m 5 "http://127.0.0.1:${w#*:}/index.html"); then
        echo "ok listed=$n $body" >>"$T/watch.log"
      elif [[ " $(running_webs) " == *" $w "* ]]; then
        echo "broken $w" >>"$T/watch.log"
      else
        echo "stopped-meanwhile $w" >>"$T/watch.log"
      fi
    done
  done
}
watch_web &
WATCHER=$!
BG_PIDS+=("$WATCHER")
wait_for '[ -s "$T/watch.log" ]' 50 || fail "the watcher took no sample"
run_ok "$T/d2.out" b deploy "$D" --app $APP -m "serve v2"
# keep watching until v2 serves alone (v1's web stops right after v2's is healthy)
wait_for 'grep -q "^ok listed=1 hello v2" "$T/watch.log"' 100 || { cat "$T/watch.log"; fail "the watcher never saw v2 serving alone"; }
touch "$T/watch.stop"
wait "$WATCHER"
assert_eq "$(grep -c '^none' "$T/watch.log")" 0 "samples with no running web instance during the rollout"
assert_eq "$(grep -c '^broken' "$T/watch.log")" 0 "running web instances that did not answer"
assert_eq "$(grep -c '^psfail' "$T/watch.log")" 0 "ps calls that failed during the rollout"
grep -q '^ok listed=2 hello v1' "$T/watch.log" || { cat "$T/watch.log"; fail "the watcher never saw the overlap (v1 serving while v2 starts)"; }
assert_eq "$(grep '^ok' "$T/watch.log" | tail -1 | cut -d' ' -f3-)" "hello v2" "what the web served last"

OUT=$(cat "$T/d2.out")
assert_has "$OUT" "-----> created release v2" "v2 progress"
assert_has "$OUT" "stopping web.1 (v1)" "v2 progress"
assert_has "$OUT" "stopping worker.1 (v1)" "v2 progress"
assert_has "$OUT" "-----> v2 is live" "v2 progress"
# surge: the new web is healthy before the old one is stopped
[ "$(grep -n 'web.1 (v2) healthy' "$T/d2.out" | cut -d: -f1)" -lt "$(grep -n 'stopping web.1 (v1)' "$T/d2.out" | cut -d: -f1)" ] \
  || { cat "$T/d2.out"; fail "web.1 (v1) was stopped before web.1 (v2) was healthy"; }

CODE2=$(b releases --app $APP --json | json '[r["code"] for r in d["releases"] if r["version"]==2][0]')
[ "$CODE2" != "$CODE1" ] || fail "v2 has the same code digest as v1"
assert_eq "$(b releases --app $APP --json | json '[(r["version"], r["status"], r["description"], r["changes"]) for r in d["releases"]]')" \
  "[(2, 'active', 'serve v2', ['code ${CODE1:0:8} -> ${CODE2:0:8}', 'web: command changed']), (1, 'superseded', 'Deploy ${CODE1:0:8}', ['first release'])]" "releases after v2 (-m sets the description)"
b releases --app $APP | tr -s ' ' >"$T/rel2.txt"
grep -Eqx "v2 active (just now|[0-9]+s ago) serve v2 code ${CODE1:0:8} -> ${CODE2:0:8}, web: command changed" "$T/rel2.txt" || { cat "$T/rel2.txt"; fail "releases table row for v2"; }

assert_eq "$(ps_rows $APP | awk '{print $1, $2, $5}' | tr '\n' ' ')" "web.1 running 2 worker.1 running 2 " "ps after v2"
WEB2_PORT=$(b ps --app $APP --json | json '[i["port"] for i in d["instances"] if i["id"]=="web.1"][0]')
WEB2_PID=$(pids_of $APP web)
assert_eq "$(curl -s "http://127.0.0.1:$WEB2_PORT/index.html")" "hello v2" "GET /index.html on v2"
RDIR2="$(realpath "$DATA")/releases/production/$APP/code-${CODE2:0:16}"
assert_eq "$(readlink "/proc/$WEB2_PID/cwd")" "$RDIR2" "v2 web.1's working directory"
wait_for '! alive $WEB_PID && ! alive $WRK_PID' 50 || fail "v1 processes still alive after v2 went live"
[ -z "$(group_pids $WEB_PID)$(group_pids $WRK_PID)" ] || fail "processes of v1's groups remain: $(group_pids $WEB_PID) $(group_pids $WRK_PID)"
assert_eq "$(log_text $APP production --process web | grep ' | env ' | tail -1)" \
  "web.1 v2 | env PORT=$WEB2_PORT APP=demo ENV=production PROCESS=web INSTANCE=web.1 RELEASE=2 LEAK=unset PWD=$RDIR2" "v2 web.1's environment"
assert_eq "$(b apps | tr -s ' ' | tail -1)" "production demo v2 running 2/2 web=1 worker=1" "apps after v2"
pass "v2 rolled out with the web answering throughout; v1's processes are gone"

stop_server
pass "server stopped, no process left"
