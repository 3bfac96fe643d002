#!/usr/bin/env bash
# stop / start / restart: stop leaves no instance and no process (release and formation kept),
# start brings them back as new processes, restart replaces every instance one at a time
# (each new one healthy before its old one stops), `restart worker` only the worker's.
source "$(dirname "$0")/lib.sh"
start_server
APP=ssr
MARK="ssrmark-$(basename "$T")"
D="$T/app"
mkdir -p "$D"
echo "ssr" >"$D/index.html"
cat >"$D/Procfile" <<PROC
web: exec python3 -m http.server \$PORT --bind 127.0.0.1
worker: exec sh -c 'while true; do sleep 0.2; done' $MARK-worker
PROC
# workers are counted by the marker in their command line, webs by the pids berth reports
nworker() { procs_exact "$MARK-worker" | wc -l; }
all_pids() { b ps --app $APP --json | json '" ".join(str(i["pid"]) for i in sorted(d["instances"], key=lambda i: i["id"]))'; }
web_ports() { b ps --app $APP --json | json '" ".join(str(i["port"]) for i in d["instances"] if i["process"]=="web")'; }
serves() { for p in $(web_ports); do [ "$(curl -s "http://127.0.0.1:$p/index.html")" = ssr ] || return 1; done; }
# rolling EVENTS-FILE: in the --json progress, every instance's replacement goes start ->
# healthy -> stop of the old one, and no replacement starts before the previous one was healthy
rolling() {
  python3 - "$1" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
ev = [(e["event"], e.get("instance")) for e in ev if e["event"] in ("start", "healthy", "stop")]
inflight = None
seen = {}
for kind, inst in ev:
    seen.setdefault(inst, []).append(kind)
    if kind == "start":
        assert inflight is None, "%s started while %s was not yet healthy" % (inst, inflight)
        inflight = inst
    elif kind == "healthy":
        inflight = None
for inst, kinds in seen.items():
    assert kinds == ["start", "healthy", "stop"], "%s: %r" % (inst, kinds)
print(" ".join(sorted(seen)))
PY
}

run_ok "$T/d.out" b deploy "$D" --app $APP
run_ok "$T/s.out" b scale web=2 --app $APP
PIDS0=$(all_pids)
assert_eq "$(ps_rows $APP | awk '{print $1, $2}' | tr '\n' ' ')" "web.1 running web.2 running worker.1 running " "ps before stop"
assert_eq "$(nworker)" 1 "worker processes before stop"

# ---- stop
run_ok "$T/stop.out" b stop --app $APP
OUT=$(cat "$T/stop.out")
assert_has "$OUT" "-----> stopping all instances" "stop progress"
for i in web.1 web.2 worker.1; do assert_has "$OUT" "stopping $i (v1)" "stop progress"; done
assert_has "$OUT" "-----> stopped" "stop progress"
assert_eq "$(b ps --app $APP --json | json 'd["instances"]')" "[]" "ps --json after stop"
assert_eq "$(b ps --app $APP)" "No instances of ssr in production (not deployed yet, stopped, or scaled to 0)." "ps after stop"
for p in $PIDS0; do
  alive "$p" && fail "process $p still alive after stop returned"
  [ -z "$(group_pids "$p")" ] || fail "process group $p not empty after stop: $(group_pids "$p")"
done
assert_eq "$(nworker)" 0 "worker processes after stop"
assert_eq "$(owner_pids | wc -l)" 0 "processes of this server after stop"
assert_eq "$(b apps | tr -s ' ' | tail -1)" "production ssr v1 stopped 0/0 web=2 worker=1" "apps after stop"
assert_eq "$(b scale --app $APP)" "web=2 worker=1" "formation kept across stop"
assert_eq "$(b releases --app $APP --json | json '[(r["version"], r["status"]) for r in d["releases"]]')" "[(1, 'active')]" "releases after stop"
pass "stop: no instances, no processes; release and formation kept"

# ---- start
run_ok "$T/start.out" b start --app $APP
OUT=$(cat "$T/start.out")
assert_has "$OUT" "-----> starting instances" "start progress"
for i in web.1 web.2 worker.1; do assert_has "$OUT" "$i (v1) healthy after" "start progress"; done
# the closing line says the app converged (its wording: "all instances healthy" or with the count)
grep -Eqx -- "-----> (all|3) instances healthy" "$T/start.out" || { cat "$T/start.out"; fail "start progress: no closing line"; }
assert_eq "$(ps_rows $APP | awk '{print $1, $2, $5}' | tr '\n' ' ')" "web.1 running 1 web.2 running 1 worker.1 running 1 " "ps after start"
PIDS1=$(all_pids)
for p in $PIDS1; do
  [[ " $PIDS0 " == *" $p "* ]] && fail "pid $p from before the stop is listed again"
  alive "$p" || fail "pid $p listed after start is not running"
done
assert_eq "$(nworker)" 1 "worker processes after start"
serves || fail "the web does not answer after start"
assert_eq "$(b apps | tr -s ' ' | tail -1)" "production ssr v1 running 3/3 web=2 worker=1" "apps after start"
pass "start: every instance back, as new processes"

# ---- restart (all): every instance replaced, one at a time
b restart --app $APP --json >"$T/restart.json" || { cat "$T/restart.json"; fail "restart failed"; }
assert_eq "$(tail -1 "$T/restart.json" | json '(d["event"], d["ok"])')" "('done', True)" "restart's last event"
REPLACED=$(rolling "$T/restart.json") || { cat "$T/restart.json"; fail "restart was not rolling"; }
assert_eq "$REPLACED" "web.1 web.2 worker.1" "instances replaced by restart"
wait_for '[ "$(b ps --app $APP --json | json "len(d[\"instances\"])")" = 3 ]' 50 || { b ps --app $APP; fail "old instances linger after restart"; }
assert_eq "$(ps_rows $APP | awk '{print $1, $2, $5}' | tr '\n' ' ')" "web.1 running 1 web.2 running 1 worker.1 running 1 " "ps after restart"
PIDS2=$(all_pids)
for p in $PIDS2; do [[ " $PIDS1 " == *" $p "* ]] && fail "instance with pid $p was not restarted"; done
for p in $PIDS1; do wait_for "! alive $p" 50 || fail "pre-restart process $p still alive"; done
assert_eq "$(nworker)" 1 "worker processes after restart"
serves || fail "the web does not answer after restart"
assert_eq "$(b releases --app $APP --json | json 'len(d["releases"])')" 1 "releases after restart (restart makes no release)"
pass "restart: all 3 instances replaced, each new one healthy before its old one stopped"

# ---- restart worker: only the worker
WEBS=$(pids_of $APP web)
WORKER=$(pids_of $APP worker)
run_ok "$T/rw.out" b restart worker --app $APP
OUT=$(cat "$T/rw.out")
assert_has "$OUT" "stopping worker.1 (v1)" "restart worker progress"
assert_lacks "$OUT" "web." "restart worker progress"
wait_for "! alive $WORKER" 50 || fail "old worker still alive after restart worker"
assert_eq "$(pids_of $APP web)" "$WEBS" "web pids after restart worker"
NEWWORKER=$(pids_of $APP worker)
[ -n "$NEWWORKER" ] && [ "$NEWWORKER" != "$WORKER" ] || fail "worker not replaced ($WORKER -> $NEWWORKER)"
assert_eq "$(count_proc $APP worker)" 1 "running workers after restart worker"
assert_eq "$(nworker)" 1 "worker processes after restart worker"
pass "restart worker replaces only the worker"

stop_server
pass "server stopped, no process left"
