#!/usr/bin/env bash
# An app's life as a user sees it: `apps create`, config and a route set before the first
# deploy and taken by it; `apps` / `apps info` and their STATE (new, failed after a failed first
# deploy, running, stopped); a config set that changes nothing makes no release; `apps destroy`
# is refused without --confirm APP (nothing touched), and with it stops every instance and
# one-off and removes releases, code, config and routes while logs and volumes stay unless
# --purge-logs / --volumes ask for them.
source "$(dirname "$0")/lib.sh"
start_server_net
RDATA=$(realpath "$DATA")
APP=lc
TOK=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
D="$T/app"
mkdir -p "$D"
cat >"$D/app.py" <<'PY'
import http.server, os
vol = os.environ["BERTH_VOLUME_DATA"]
with open(os.path.join(vol, "boots"), "a") as f:
    f.write("boot\n")
boots = len(open(os.path.join(vol, "boots")).read().split())
body = ("lc v%s greeting=%s boots=%d\n" % (os.environ["BERTH_RELEASE"], os.environ.get("GREETING", "-"), boots)).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
print("lc web up", flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
PY
manifest() { # COMMAND
  cat >"$D/berth.yaml" <<YAML
app: $APP
processes:
  web:
    command: $1
    volumes: [data]
    health: {http: /, deadline: 10s}
YAML
}
apps_row() { b apps | tr -s ' ' | grep "^production $APP "; }
nrel() { b releases --app $APP --json | json 'len(d["releases"])'; }
web_pid() { b ps --app $APP --json | json '[i["pid"] for i in d["instances"] if i["id"]=="web.1" and i["state"]=="running"][0]'; }

# ---- apps create: an app with no release
run_ok "$T/create.out" b apps create $APP
assert_has "$(cat "$T/create.out")" "created app $APP in production" "apps create"
rc=0; b apps create $APP >"$T/create2.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exit status of a second apps create"
assert_has "$(cat "$T/create2.out")" "already exists" "second apps create"
assert_eq "$(apps_row)" "production $APP - new 0/0 -" "apps row of a new app"
assert_eq "$(b apps --json | json '[(a["name"], a["status"], a["instances"]["total"]) for a in d["apps"]]')" "[('$APP', 'new', 0)]" "apps --json of a new app (status: the STATE column)"

# ---- config and a route before the first deploy
run_ok "$T/cfg1.out" b config set GREETING="early-$TOK" --app $APP
assert_has "$(cat "$T/cfg1.out")" "its first deploy takes it" "config set before the first deploy"
run_ok "$T/route.out" b routes add lc.test --app $APP
assert_eq "$(head -1 "$T/route.out")" "Route lc.test -> production/$APP web" "routes add before the first deploy"
assert_eq "$(rcode lc.test /)" 503 "router answer for the route of an app not deployed yet"
b releases --app $APP --json >"$T/rel0.json" || fail "releases of a new app failed"
assert_eq "$(json 'len(d["releases"])' <"$T/rel0.json")" 0 "releases before the first deploy"
b apps info $APP >"$T/info0.txt" || fail "apps info of a new app failed"
grep -qx "State: *new" "$T/info0.txt" || { cat "$T/info0.txt"; fail "apps info of a new app: state"; }
grep -qx "Config: *1 key (GREETING)" "$T/info0.txt" || { cat "$T/info0.txt"; fail "apps info: config set before the first deploy"; }
grep -qx "Routes: *lc.test" "$T/info0.txt" || { cat "$T/info0.txt"; fail "apps info: route added before the first deploy"; }
pass "apps create, config set and routes add before the first deploy; apps shows the app as new"

# ---- a failed first deploy: STATE failed, not "running 0/0"
manifest "'echo \"cannot start $TOK\" >&2; exit 5'"
rc=0; b deploy "$D" >"$T/d1.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exit status of a failing first deploy"
assert_has "$(cat "$T/d1.out")" "| cannot start $TOK" "failing first deploy"
assert_eq "$(apps_row)" "production $APP - failed 0/0 -" "apps row after a failed first deploy"
assert_eq "$(b apps info $APP --json | json 'd["status"]')" failed "apps info --json status after a failed first deploy"
grep -qx "State: *failed" <(b apps info $APP) || { b apps info $APP; fail "apps info after a failed first deploy"; }
[ -z "$(owner_pids)" ] || fail "processes left after the failed first deploy: $(owner_pids)"
pass "a failed first deploy leaves the app failed (apps, apps info), nothing running"

# ---- the first good deploy takes the config and the route
manifest "exec python3 app.py $TOK-web"
run_ok "$T/d2.out" b deploy "$D"
assert_has "$(cat "$T/d2.out")" "-----> v2 is live" "first good deploy"
assert_eq "$(rcurl lc.test /)" "lc v2 greeting=early-$TOK boots=1" "the route added before the first deploy"
assert_eq "$(rcurl lc.localhost /)" "lc v2 greeting=early-$TOK boots=1" "the default route"
assert_eq "$(apps_row)" "production $APP v2 running 1/1 web=1" "apps row when running"
b apps info $APP >"$T/info2.txt"
for want in "State: *running" "Release: *v2" "Formation: *web=1" "Instances: *1 running of 1 wanted" "Config: *1 key (GREETING)" "Routes: *lc.test"; do
  grep -qx "$want" "$T/info2.txt" || { cat "$T/info2.txt"; fail "apps info when running: no line '$want'"; }
done
VOL="$RDATA/volumes/production/$APP/data"
assert_eq "$(cat "$VOL/boots" 2>/dev/null)" "boot" "the volume the web wrote"
PID=$(web_pid)
pass "the first good deploy takes the early config and route; apps and apps info show it running"

# ---- config set with the same value: no change, no release, no restart
NREL=$(nrel)
run_ok "$T/cfg2.out" b config set GREETING="early-$TOK" --app $APP
assert_has "$(cat "$T/cfg2.out")" "no change" "config set with the same value"
assert_eq "$(nrel)" "$NREL" "releases after a config set that changes nothing"
assert_eq "$(web_pid)" "$PID" "web pid after a config set that changes nothing"
run_ok "$T/cfg3.out" b config set GREETING="later-$TOK" --app $APP
assert_eq "$(nrel)" "$((NREL + 1))" "releases after a config set that changes a value"
assert_eq "$(rcurl lc.test /)" "lc v3 greeting=later-$TOK boots=2" "after a real config change"
pass "a config set that changes nothing says so and makes no release; a real change does"

# ---- stopped
run_ok "$T/stop.out" b stop --app $APP
assert_eq "$(apps_row | cut -d' ' -f1-4)" "production $APP v3 stopped" "apps row of a stopped app"
grep -qx "State: *stopped" <(b apps info $APP) || { b apps info $APP; fail "apps info of a stopped app"; }
run_ok "$T/start.out" b start --app $APP
assert_eq "$(apps_row)" "production $APP v3 running 1/1 web=1" "apps row after start"
pass "a stopped app shows stopped, and running again after start"

# ---- destroy without (or with a wrong) --confirm: refused, nothing removed
PID=$(web_pid)
CODEDIRS=$(ls "$RDATA/releases/production/$APP")
[ -n "$CODEDIRS" ] || fail "no code dirs under $RDATA/releases/production/$APP"
for args in "" "--confirm other"; do
  rc=0; b apps destroy $APP $args >"$T/destroy0.out" 2>&1 || rc=$?
  assert_eq "$rc" 2 "exit status of apps destroy $args"
  assert_has "$(cat "$T/destroy0.out")" "--confirm $APP" "apps destroy $args (how to confirm)"
done
alive "$PID" || fail "apps destroy without --confirm stopped the web"
assert_eq "$(rcurl lc.test /)" "lc v3 greeting=later-$TOK boots=3" "after a refused destroy"
assert_eq "$(ls "$RDATA/releases/production/$APP")" "$CODEDIRS" "code dirs after a refused destroy"
assert_eq "$(nrel)" 3 "releases after a refused destroy"
pass "apps destroy without --confirm APP exits 2 and touches nothing"

# ---- destroy --confirm: instances and one-offs stopped; releases, code, config, routes gone
run_ok "$T/run.out" b run -d --app $APP -- sh -c "echo oneoff-$TOK; sleep 60"
wait_for '[ -n "$(procs_exact "oneoff-$TOK; sleep 60")" ]' 50 || { cat "$T/run.out"; fail "the detached one-off did not start"; }
ONEOFF=$(procs_exact "oneoff-$TOK; sleep 60" | head -1)
run_ok "$T/destroy.out" b apps destroy $APP --confirm $APP
assert_has "$(cat "$T/destroy.out")" "destroyed production/$APP" "apps destroy --confirm"
wait_for '! alive $PID && ! alive $ONEOFF' 50 || fail "web ($PID) or one-off ($ONEOFF) still runs after apps destroy"
wait_for '[ -z "$(owner_pids)" ]' 50 || fail "processes left after apps destroy: $(owner_pids)"
assert_eq "$(rcode lc.test /)" 404 "router answer for the destroyed app's route"
assert_eq "$(rcode lc.localhost /)" 404 "router answer for the destroyed app's default route"
assert_eq "$(b routes --json | json "[r['host'] for r in d['routes'] if r['app']=='$APP']")" "[]" "routes of the destroyed app"
assert_eq "$(b apps --json | json "[a['name'] for a in d['apps']]")" "[]" "apps after destroy"
rc=0; b releases --app $APP >"$T/rel-gone.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exit status of releases of a destroyed app"
[ -z "$(ls -A "$RDATA/releases/production/$APP" 2>/dev/null)" ] || fail "code left after destroy: $(ls "$RDATA/releases/production/$APP")"
[ -f "$RDATA/logs/production/$APP/web.1.log" ] || fail "the logs were removed without --purge-logs"
assert_eq "$(cat "$VOL/boots" 2>/dev/null | wc -l)" 3 "boots in the volume kept without --volumes"
pass "apps destroy --confirm stops web and one-off, removes routes (404), releases and code; keeps logs and volumes"

# ---- the same name again: a fresh app (no config), the kept volume; then destroy everything
run_ok "$T/d3.out" b deploy "$D"
assert_has "$(cat "$T/d3.out")" "-----> v1 is live" "deploy after destroy (a new app starts at v1)"
assert_eq "$(rcurl lc.localhost /)" "lc v1 greeting=- boots=4" "the recreated app (old config gone, volume kept)"
assert_eq "$(rcode lc.test /)" 404 "the old route does not come back"
PID=$(web_pid)
run_ok "$T/destroy2.out" b apps destroy $APP --confirm $APP --volumes --purge-logs
wait_for '! alive $PID' 50 || fail "web still runs after the second destroy"
[ ! -e "$VOL" ] || fail "the volume is still there after destroy --volumes"
[ -z "$(ls -A "$RDATA/logs/production/$APP" 2>/dev/null)" ] || fail "logs left after destroy --purge-logs: $(ls "$RDATA/logs/production/$APP")"
[ -z "$(ls -A "$RDATA/releases/production/$APP" 2>/dev/null)" ] || fail "code left after the second destroy"
pass "the same name again is a fresh app with the kept volume; destroy --volumes --purge-logs removes them"

stop_server
pass "server stopped, no process left"
