#!/usr/bin/env bash
# Environments are namespaces: the same app name deployed to production and staging has its
# own releases, config, scale, instances, code directory and logs in each; `envs` and `apps`
# list both.
source "$(dirname "$0")/lib.sh"
start_server
APP=shop
D="$T/app"
mkdir -p "$D"
echo "shop" >"$D/index.html"
cat >"$D/Procfile" <<'PROC'
web: exec python3 -m http.server $PORT --bind 127.0.0.1
worker: echo "I am $BERTH_APP in $BERTH_ENV, release $BERTH_RELEASE, COLOR=${COLOR-unset}"; exec sleep 3600
PROC
# worker_said ENV VERSION: the worker's line in that env's logs for that release
worker_said() {
  wait_for "b logs --app $APP --env $1 --process worker | grep -q ' v$2 | '" 50 || fail "$1: no worker line for v$2"
  b logs --app $APP --env "$1" --process worker | grep " v$2 | " | sed 's/.* | //'
}

run_ok "$T/dp.out" b deploy "$D" --app $APP
assert_has "$(cat "$T/dp.out")" "-----> Deploying shop to production" "production deploy"
run_ok "$T/ds.out" b deploy "$D" --app $APP --env staging
assert_has "$(cat "$T/ds.out")" "-----> Deploying shop to staging" "staging deploy"
# each env starts at v1
assert_has "$(cat "$T/ds.out")" "-----> created release v1" "staging's first release"
assert_eq "$(worker_said production 1)" "I am shop in production, release 1, COLOR=unset" "production worker"
assert_eq "$(worker_said staging 1)" "I am shop in staging, release 1, COLOR=unset" "staging worker"

assert_eq "$(b envs | tr -s ' ')" "ENV APPS
production 1
staging 1" "envs"
assert_eq "$(b envs --json | json 'd["envs"]')" "[{'name': 'production', 'apps': 1}, {'name': 'staging', 'apps': 1}]" "envs --json"
assert_eq "$(b apps | tr -s ' ' | tail -n +2)" "production shop v1 running 2/2 web=1 worker=1
staging shop v1 running 2/2 web=1 worker=1" "apps"
assert_eq "$(b apps --env staging --json | json '[(a["env"], a["name"]) for a in d["apps"]]')" "[('staging', 'shop')]" "apps --env staging"
# different processes, ports and log files
P_WEB=$(pids_of $APP web production); S_WEB=$(pids_of $APP web staging)
[ "$P_WEB" != "$S_WEB" ] || fail "production and staging share a web process"
CODE=$(b releases --app $APP --json | json 'd["releases"][0]["code"]')
for e in production staging; do
  assert_eq "$(readlink /proc/$(pids_of $APP web $e)/cwd)" "$(realpath "$DATA")/releases/$e/$APP/code-${CODE:0:16}" "$e web's directory"
  [ -f "$DATA/logs/$e/$APP/worker.1.log" ] || fail "no $DATA/logs/$e/$APP/worker.1.log"
done
pass "the same app deployed to production and staging, listed in envs and apps"

# ---- config in staging only
run_ok "$T/cs.out" b config set COLOR=blue --app $APP --env staging
assert_eq "$(worker_said staging 2)" "I am shop in staging, release 2, COLOR=blue" "staging worker after config set"
assert_eq "$(b config list --app $APP --env staging --json | json 'd["config"]')" "{'COLOR': 'blue'}" "staging config"
assert_eq "$(b config list --app $APP --env production --json | json 'd["config"]')" "{}" "production config"
assert_eq "$(b releases --app $APP --env staging --json | json '[r["version"] for r in d["releases"]]')" "[2, 1]" "staging releases"
assert_eq "$(b releases --app $APP --json | json '[r["version"] for r in d["releases"]]')" "[1]" "production releases"
assert_eq "$(pids_of $APP web production)" "$P_WEB" "production's web untouched by staging's config change"
pass "config set in staging makes staging v2 and leaves production alone"

# ---- scale in production only
run_ok "$T/sp.out" b scale web=2 --app $APP
assert_eq "$(count_proc $APP web running production) $(count_proc $APP web running staging)" "2 1" "web instances production/staging"
assert_eq "$(b scale --app $APP --env staging)" "web=1 worker=1" "staging formation"
assert_eq "$(b scale --app $APP --env production)" "web=2 worker=1" "production formation"
pass "scale in production leaves staging's formation alone"

# ---- stop staging: production keeps running
run_ok "$T/st.out" b stop --app $APP --env staging
assert_eq "$(b ps --app $APP --env staging --json | json 'len(d["instances"])')" 0 "staging instances after stop"
assert_eq "$(count_state $APP running production)" 3 "production instances after stopping staging"
assert_eq "$(b apps | tr -s ' ' | tail -n +2)" "production shop v1 running 3/3 web=2 worker=1
staging shop v2 stopped 0/0 web=1 worker=1" "apps after stopping staging"
pass "stopping staging leaves production running"

stop_server
pass "server stopped, no process left"
