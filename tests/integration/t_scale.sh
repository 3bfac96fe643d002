#!/usr/bin/env bash
# Scaling: up to web=3 worker=2 (new instances, the old ones untouched, every web answering),
# down to one each (exactly the extra slots go, their processes with them), worker=0 (no worker
# process left); scale changes the formation, not the release.
source "$(dirname "$0")/lib.sh"
start_server
APP=sc
MARK="scmark-$(basename "$T")"
D="$T/app"
mkdir -p "$D"
# Every process carries MARK in its command line, so pgrep can count them.
cat >"$D/web.py" <<'PY'
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["BERTH_INSTANCE"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
PY
cat >"$D/Procfile" <<PROC
web: exec python3 web.py $MARK-web
worker: exec sh -c 'while true; do sleep 0.2; done' $MARK-worker
PROC
nweb() { procs_exact "$MARK-web" | wc -l; }
nworker() { procs_exact "$MARK-worker" | wc -l; }

run_ok "$T/d1.out" b deploy "$D" --app $APP
WEB1=$(pids_of $APP web)
WORKER1=$(pids_of $APP worker)
assert_eq "$(nweb) $(nworker)" "1 1" "web and worker processes after deploy"

# ---- up
run_ok "$T/up.out" b scale web=3 worker=2 --app $APP
OUT=$(cat "$T/up.out")
assert_has "$OUT" "-----> scaling to web=3 worker=2" "scale progress"
for i in web.2 web.3 worker.2; do assert_has "$OUT" "$i (v1) started, pid" "scale progress"; done
for i in web.2 web.3 worker.2; do assert_has "$OUT" "$i (v1) healthy after" "scale progress"; done
assert_lacks "$OUT" "stopping" "scale-up progress"
# the closing line says the app converged (its wording: "all instances healthy" or with the count)
grep -Eqx -- "-----> (all|5) instances healthy" "$T/up.out" || { cat "$T/up.out"; fail "scale progress: no closing line"; }
assert_eq "$(ps_rows $APP | awk '{print $1, $2, $5}' | tr '\n' ' ')" \
  "web.1 running 1 web.2 running 1 web.3 running 1 worker.1 running 1 worker.2 running 1 " "ps after scale-up"
assert_eq "$(pids_of $APP web | cut -d' ' -f1)" "$WEB1" "web.1 keeps its process while scaling up"
assert_eq "$(pids_of $APP worker | cut -d' ' -f1)" "$WORKER1" "worker.1 keeps its process while scaling up"
assert_eq "$(nweb) $(nworker)" "3 2" "web and worker processes after scale-up"
for port in $(b ps --app $APP --json | json '" ".join(str(i["port"]) for i in d["instances"] if i["process"]=="web")'); do
  body=$(curl -s "http://127.0.0.1:$port/") || fail "web on port $port does not answer"
  assert_has "$body" "web." "GET / on port $port"
done
assert_eq "$(b ps --app $APP --json | json 'len(set(i["port"] for i in d["instances"] if i["process"]=="web"))')" 3 "distinct web ports"
assert_eq "$(b scale --app $APP)" "web=3 worker=2" "scale without arguments"
assert_eq "$(b apps | tr -s ' ' | tail -1)" "production sc v1 running 5/5 web=3 worker=2" "apps after scale-up"
assert_eq "$(b releases --app $APP --json | json '[r["version"] for r in d["releases"]]')" "[1]" "releases after scale (scale makes no release)"
pass "scaled up to web=3 worker=2"

# ---- down to one of each: exactly the extra slots go, and their processes with them
OLD_WEB=$(pids_of $APP web)
OLD_WORKER=$(pids_of $APP worker)
run_ok "$T/down.out" b scale web=1 worker=1 --app $APP
OUT=$(cat "$T/down.out")
for i in web.2 web.3 worker.2; do assert_has "$OUT" "stopping $i (v1)" "scale-down progress"; done
assert_lacks "$OUT" "stopping web.1" "scale-down progress"
assert_lacks "$OUT" "started" "scale-down progress"
wait_for '[ "$(b ps --app $APP --json | json "len(d[\"instances\"])")" = 2 ]' 50 || { b ps --app $APP; fail "stopped instances still listed"; }
assert_eq "$(ps_rows $APP | awk '{print $1, $2, $3}' | tr '\n' ' ')" "web.1 running $WEB1 worker.1 running $WORKER1 " "ps after scale-down"
for p in ${OLD_WEB#* } ${OLD_WORKER#* }; do
  wait_for "! alive $p" 50 || fail "process $p of a removed instance is still running"
  [ -z "$(group_pids "$p")" ] || fail "process group $p of a removed instance is not empty: $(group_pids "$p")"
done
assert_eq "$(nweb) $(nworker)" "1 1" "web and worker processes after scale-down"
alive "$WEB1" && alive "$WORKER1" || fail "the remaining instances' processes died"
assert_eq "$(b scale --app $APP)" "web=1 worker=1" "formation after scale-down"
pass "scaled down to web=1 worker=1; the others' processes are gone"

# ---- worker=0
run_ok "$T/zero.out" b scale worker=0 --app $APP
assert_has "$(cat "$T/zero.out")" "stopping worker.1 (v1)" "worker=0 progress"
wait_for '[ "$(b ps --app $APP --json | json "len(d[\"instances\"])")" = 1 ]' 50 || { b ps --app $APP; fail "worker still listed"; }
assert_eq "$(ps_rows $APP | awk '{print $1, $2, $3}')" "web.1 running $WEB1" "ps after worker=0"
wait_for "! alive $WORKER1" 50 || fail "worker process still running after worker=0"
assert_eq "$(nweb) $(nworker)" "1 0" "web and worker processes after worker=0"
assert_eq "$(b scale --app $APP)" "web=1 worker=0" "formation after worker=0"
assert_eq "$(b apps | tr -s ' ' | tail -1)" "production sc v1 running 1/1 web=1 worker=0" "apps after worker=0"
# --json: the raw progress events, the last one says done and ok
b scale worker=1 --app $APP --json >"$T/json.out" || fail "scale worker=1 --json failed"
assert_eq "$(tail -1 "$T/json.out" | json '(d["event"], d["ok"])')" "('done', True)" "last --json progress event"
assert_eq "$(python3 -c 'import json,sys; print(all("event" in json.loads(l) and "ts" in json.loads(l) for l in open(sys.argv[1])))' "$T/json.out")" \
  True "every --json progress line is an event object"
assert_eq "$(count_proc $APP worker)" 1 "workers after scaling back to 1"
assert_eq "$(nworker)" 1 "worker processes after scaling back to 1"
pass "worker=0 stops every worker process; worker=1 brings one back"

stop_server
pass "server stopped, no process left"
