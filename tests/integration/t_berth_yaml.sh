#!/usr/bin/env bash
# An app described by berth.yaml: `app:` lets verbs run without --app in its directory,
# `instances: 2`, default config vars, an HTTP health check that gates the rollout, a volume
# whose data outlives the release, and stop_grace (a graceful process gets its time, one that
# ignores SIGTERM is killed once its grace is over).
source "$(dirname "$0")/lib.sh"
start_server
APP=yapp
D="$T/yapp"
mkdir -p "$D"
VOL="$(realpath "$DATA")/volumes/production/$APP/data"

# The web counts requests in its volume; /healthz fails (503) until the file "ready" exists in
# the volume, so the test decides when the health check may pass.
cat >"$D/app.py" <<'PY'
import http.server, os, sys
VER = "one"
vol = os.environ["BERTH_VOLUME_DATA"]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            code, body = (200, "ok") if os.path.exists(os.path.join(vol, "ready")) else (503, "not ready")
        else:
            path = os.path.join(vol, "count")
            n = int(open(path).read()) + 1 if os.path.exists(path) else 1
            with open(path + ".tmp", "w") as f:
                f.write(str(n))
            os.replace(path + ".tmp", path)
            code = 200
            body = "%s %s count=%d greeting=%s workers=%s debug=%s vol=%s" % (
                VER, os.environ["BERTH_INSTANCE"], n, os.environ.get("GREETING"),
                os.environ.get("WORKERS"), os.environ.get("DEBUG"), vol)
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, fmt, *a):
        print("%s %s" % (self.path, a[1]), flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
PY
cat >"$D/berth.yaml" <<'YAML'
app: yapp
config:
  GREETING: hi there
  WORKERS: 4
  DEBUG: false
processes:
  web:
    command: exec python3 app.py
    instances: 2
    health:
      http: /healthz
      interval: 200ms
      timeout: 1s
      retries: 3
      deadline: 20s
    volumes: [data]
    stop_grace: 5s
  graceful:
    command: trap 'echo "cleaning up"; sleep 0.3; echo "clean exit"; exit 0' TERM; echo "graceful up"; while true; do sleep 0.1; done
    stop_grace: 5s
  stubborn:
    command: trap 'echo "TERM ignored"' TERM; echo "stubborn up SHARED_DIR=$SHARED_DIR"; while true; do sleep 0.1; done
    volumes:
      data: SHARED_DIR
    stop_grace: 1s
YAML

# ---- v1: deployed from its directory without --app; held back by the health check
(cd "$D" && b deploy) >"$T/d1.out" 2>&1 &
DEPLOY=$!
BG_PIDS+=("$DEPLOY")
wait_for '[ "$(cd "$D" && b logs --process web | grep -c "/healthz 503")" -ge 2 ]' 100 \
  || { cat "$T/d1.out"; fail "the web instances were never health-checked on /healthz"; }
(cd "$D" && b ps --json) >"$T/ps0.json" || fail "ps without --app in the app's directory"
assert_eq "$(json 'sorted((i["id"], i["state"]) for i in d["instances"] if i["process"]=="web")' <"$T/ps0.json")" \
  "[('web.1', 'starting'), ('web.2', 'starting')]" "web instances while /healthz answers 503"
alive "$DEPLOY" || { cat "$T/d1.out"; fail "deploy finished while the health check was failing"; }
[ -d "$VOL" ] || fail "volume directory $VOL not created"
touch "$VOL/ready"
wait "$DEPLOY" || { cat "$T/d1.out"; fail "v1 deploy failed"; }
OUT=$(cat "$T/d1.out")
assert_has "$OUT" "-----> Deploying yapp to production" "deploy progress"
assert_has "$OUT" "web.2 (v1) healthy after" "deploy progress"
assert_has "$OUT" "-----> v1 is live" "deploy progress"
# the instances turned healthy only after a 200 from /healthz
for w in web.1 web.2; do
  (cd "$D" && b logs --process web) | grep " $w v1 | /healthz 200" >/dev/null || fail "$w never answered /healthz with 200"
done
pass "v1 deployed from its directory, held back until /healthz answered 200"

# ---- `app:` in berth.yaml: the verbs work without --app there, and not elsewhere
(cd "$D" && b ps) | tr -s ' ' | cut -d' ' -f1-3 >"$T/ps1.txt" || fail "ps in the app directory"
assert_eq "$(cat "$T/ps1.txt")" "INSTANCE RELEASE STATE
graceful.1 v1 running
stubborn.1 v1 running
web.1 v1 running
web.2 v1 running" "ps in the app directory"
if (cd "$T" && b ps) >"$T/noapp.out" 2>&1; then fail "ps outside the app directory without --app succeeded"; fi
assert_eq "$(cat "$T/noapp.out")" 'berth: no app given: pass --app NAME or add `app:` to berth.yaml' "ps without an app"
(cd "$D" && b scale) >"$T/scale.out" || fail "scale without arguments in the app directory"
assert_eq "$(cat "$T/scale.out")" "web=2 graceful=1 stubborn=1" "formation (manifest order) from instances: 2"
PORTS=$(b ps --app $APP --json | json '" ".join(str(i["port"]) for i in sorted(d["instances"], key=lambda i: i["id"]) if i["process"]=="web")')
set -- $PORTS
[ $# = 2 ] && [ "$1" != "$2" ] || fail "web.1 and web.2 need two different ports, got '$PORTS'"
pass "app: from berth.yaml; two web instances on two ports"

# ---- default config vars and the volume
assert_eq "$(curl -s "http://127.0.0.1:$1/")" "one web.1 count=1 greeting=hi there workers=4 debug=false vol=$VOL" "GET / on web.1"
assert_eq "$(curl -s "http://127.0.0.1:$2/")" "one web.2 count=2 greeting=hi there workers=4 debug=false vol=$VOL" "GET / on web.2"
assert_eq "$(curl -s "http://127.0.0.1:$1/")" "one web.1 count=3 greeting=hi there workers=4 debug=false vol=$VOL" "GET / on web.1 again"
assert_eq "$(cat "$VOL/count")" 3 "the counter in the volume on disk"
assert_eq "$(b logs --source app --app $APP --process stubborn | cut -d' ' -f2-)" "stubborn.1 v1 | stubborn up SHARED_DIR=$VOL" \
  "the stubborn process sees the volume under the variable it chose"
assert_eq "$(b volumes --app $APP --json | json '[(v["name"], v["path"]) for v in d["volumes"]]')" "[('data', '$VOL')]" "volumes --json"
pass "default config vars reach the instances; both web instances share the volume"

# ---- v2: new code; the volume's data is still there; stop_grace on the way out
V1_STUBBORN=$(pids_of $APP stubborn)
V1_GRACEFUL=$(pids_of $APP graceful)
sed -i 's/^VER = "one"/VER = "two"/' "$D/app.py"
(cd "$D" && b deploy) >"$T/d2.out" 2>&1 || { cat "$T/d2.out"; fail "v2 deploy failed"; }
assert_has "$(cat "$T/d2.out")" "-----> v2 is live" "v2 progress"
# the deploy is done once v2 is healthy; a v1 instance may still be in its stop grace (listed
# "stopping") for a moment after that
wait_for '[ "$(b ps --app $APP --json | json "len(d[\"instances\"])")" = 4 ]' 50 || { b ps --app $APP; fail "v1 instances linger"; }
assert_eq "$(ps_rows $APP | awk '{print $1, $2, $5}' | tr '\n' ' ')" \
  "graceful.1 running 2 stubborn.1 running 2 web.1 running 2 web.2 running 2 " "ps after v2"
set -- $(b ps --app $APP --json | json '" ".join(str(i["port"]) for i in sorted(d["instances"], key=lambda i: i["id"]) if i["process"]=="web")')
assert_eq "$(curl -s "http://127.0.0.1:$1/")" "two web.1 count=4 greeting=hi there workers=4 debug=false vol=$VOL" "GET / on v2's web.1"
assert_eq "$(cat "$VOL/count")" 4 "the counter in the volume after v2"
# stop_grace: the graceful v1 process finished its cleanup; the stubborn one ignored SIGTERM
# and was killed when its 1 s grace ran out (it is gone, and it never exited by itself).
# Only stdout counts here: sh reports its killed `sleep` child on stderr ("Terminated").
wait_for '! alive $V1_STUBBORN && ! alive $V1_GRACEFUL' 50 || fail "v1 processes still running after v2"
[ -z "$(group_pids $V1_STUBBORN)$(group_pids $V1_GRACEFUL)" ] || fail "v1 process groups not empty"
assert_eq "$(b logs --app $APP --process graceful | cut -d' ' -f2- | grep ' v1 | ')" "graceful.1 v1 | graceful up
graceful.1 v1 | cleaning up
graceful.1 v1 | clean exit" "the graceful v1 process's output"
assert_eq "$(b logs --source app --app $APP --process stubborn | cut -d' ' -f2- | grep ' v1 | ')" "stubborn.1 v1 | stubborn up SHARED_DIR=$VOL
stubborn.1 v1 | TERM ignored" "the stubborn v1 process's output"
grep -q "production/yapp stubborn.1 did not stop within 1000 ms; sending SIGKILL" "$T/server.log" \
  || fail "the server log does not say the stubborn process was killed after its 1 s grace"
grep -q "graceful.1 did not stop" "$T/server.log" && fail "the graceful process was killed instead of exiting by itself"
pass "v2 sees v1's data in the volume; stop_grace honoured (clean exit / killed after grace)"

# ---- `config set` overrides a berth.yaml default; `unset` brings the default back (run in
# the app's directory: config verbs take the app from berth.yaml too)
(cd "$D" && b config set GREETING=override) >"$T/c3.out" 2>&1 || { cat "$T/c3.out"; fail "config set in the app directory"; }
set -- $(b ps --app $APP --json | json '" ".join(str(i["port"]) for i in sorted(d["instances"], key=lambda i: i["id"]) if i["process"]=="web")')
assert_eq "$(curl -s "http://127.0.0.1:$1/")" "two web.1 count=5 greeting=override workers=4 debug=false vol=$VOL" "GET / after config set GREETING"
(cd "$D" && b config unset GREETING) >"$T/c4.out" 2>&1 || { cat "$T/c4.out"; fail "config unset in the app directory"; }
set -- $(b ps --app $APP --json | json '" ".join(str(i["port"]) for i in sorted(d["instances"], key=lambda i: i["id"]) if i["process"]=="web")')
assert_eq "$(curl -s "http://127.0.0.1:$1/")" "two web.1 count=6 greeting=hi there workers=4 debug=false vol=$VOL" "GET / after config unset GREETING"
assert_eq "$(cd "$D" && b releases --json | json '[r["version"] for r in d["releases"]]')" "[4, 3, 2, 1]" "releases in the app directory"
pass "config set overrides a berth.yaml default, unset restores it"

stop_server
[ -f "$VOL/count" ] || fail "the volume's data is gone after the server stopped"
pass "server stopped, no process left, volume kept"
