#!/usr/bin/env bash
# Containers outlive the server. kill -9 of the server between deploys: a load generator on the
# containers' own ports counts zero failed requests, the restarted server adopts the same
# containers (same ids, health checks resumed, routed again), and their logs resume where they
# stopped: every tick line once, none missing. kill -9 in the middle of a deploy: the
# interrupted release's containers are removed, the live release's are adopted, nothing runs
# twice. A clean stop and start adopts too.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/engine_lib.sh"
engine_available || { echo "skip [$TEST_NAME] $(engine_available)"; exit 0; }
trap 'engine_cleanup; cleanup' EXIT
engine_start || fail "podman's service did not start"
ctr_import localhost/t-adopt:v1 "adopt one $MARK" || fail "podman import"
RPORT=$(free_port); DPORT=$(free_port); export RPORT DPORT
SRV_ARGS=(--router "127.0.0.1:$RPORT" --dns "127.0.0.1:$DPORT" --docker-host "$ENGINE_HOST")
start_server "${SRV_ARGS[@]}"
A=adopt

ctrs() {  # running containers of app $A: "ID INSTANCE RELEASE", sorted
  eng GET "/containers/json?all=1" | python3 -c 'import json,sys
for c in json.load(sys.stdin):
    l = c.get("Labels") or {}
    if l.get("io.berth.app") == sys.argv[1] and str(c.get("State","")).lower() == "running":
        print(c["Id"], l.get("io.berth.instance"), l.get("io.berth.release"))' $A | sort
}
ps_ids() { b ps --app $A --json | json '" ".join(sorted(i.get("container","-") for i in d["instances"] if i["state"]=="running"))'; }

run_ok "$T/d1.out" b deploy --image localhost/t-adopt:v1 --app $A
run_ok "$T/s.out" b scale web=2 --app $A
wait_for '[ "$(count_state $A)" = 2 ]' 150 || fail "2 containers did not come up"
b routes add $A.test --app $A >/dev/null || fail "routes add"
wait_for 'rcurl $A.test / | grep -q "adopt one"' 100 || fail "not routed"
BEFORE=$(ctrs)
IDS=$(ps_ids)
PORTS=$(b ps --app $A --json | json '" ".join(str(i["port"]) for i in d["instances"])')

# a load generator on the containers' own ports until told to stop
cat >"$T/load.py" <<'PY'
import os, sys, threading, urllib.request
ports, stop = sys.argv[1].split(), sys.argv[2]
ok = bad = 0; lock = threading.Lock(); errs = []
def run(port):
    global ok, bad
    while not os.path.exists(stop):
        try:
            urllib.request.urlopen("http://127.0.0.1:%s/" % port, timeout=3).read()
            with lock: ok += 1
        except Exception as e:
            with lock:
                bad += 1; errs.append(repr(e))
ts = [threading.Thread(target=run, args=(p,)) for p in ports for _ in range(2)]
for t in ts: t.start()
for t in ts: t.join()
print(ok, bad, errs[:3])
PY
python3 "$T/load.py" "$PORTS" "$T/stop" >"$T/load.out" 2>&1 &
LOAD=$!
kill9_server
[ "$(ctrs)" = "$BEFORE" ] || fail "the containers changed when the server died: $(ctrs)"
start_server "${SRV_ARGS[@]}"
wait_for '[ "$(count_state $A)" = 2 ]' 150 || fail "the restarted server does not run 2 instances: $(b ps --app $A)"
assert_eq "$(ps_ids)" "$IDS" "the restarted server's instances are the same containers"
assert_eq "$(ctrs)" "$BEFORE" "the engine runs the same containers, no more"
wait_for 'rcurl $A.test / | grep -q "adopt one"' 100 || fail "adopted containers are not routed"
grep -q "adopted" "$T/server.log" || fail "the server log does not say it adopted containers"
touch "$T/stop"; wait $LOAD
read -r OK BAD _ <"$T/load.out"
[ "${OK:-0}" -gt 0 ] || fail "the load generator made no request: $(cat "$T/load.out")"
assert_eq "$BAD" 0 "failed requests to the containers across kill -9 and restart ($(cat "$T/load.out"))"
pass "kill -9 and restart: $OK requests, 0 failed; the same 2 containers adopted, health checked, routed"

# logs resume where they stopped: each container's tick lines once each, none missing
for n in 1 2; do
  wait_for '[ "$(grep -c "$MARK .* tick" "$DATA/logs/production/$A/web.$n.log")" -gt 60 ]' 100 || fail "web.$n logs stopped"
  python3 - "$DATA/logs/production/$A/web.$n.log" "$MARK" <<'PY' || fail "web.$n's log lines across the restart are not exactly once each"
import re, sys, collections
seen = collections.defaultdict(list)
for line in open(sys.argv[1], errors="replace"):
    m = re.search(re.escape(sys.argv[2]) + r" (\w+) tick (\d+)", line)
    if m: seen[m.group(1)].append(int(m.group(2)))
for tok, ticks in seen.items():
    dup = [t for t, c in collections.Counter(ticks).items() if c > 1]
    missing = sorted(set(range(min(ticks), max(ticks) + 1)) - set(ticks))
    if dup or missing:
        print("token", tok, "twice:", dup[:10], "missing:", missing[:10]); sys.exit(1)
PY
done
pass "logs resumed after the restart: every tick line of both containers once, none missing"

# kill -9 in the middle of a deploy: its containers go, the live ones stay, nothing twice
M="$T/slow"; mkdir -p "$M"
cat >"$M/berth.yaml" <<YAML
app: $A
processes:
  web:
    image: localhost/t-adopt:v1
    command: sleep 2; exec httpd -f -p \$PORT -h /www
    health: {http: /, deadline: 30s}
YAML
(b deploy "$M" >"$T/d2.out" 2>&1 &)
wait_for '[ "$(ctrs | awk "\$3 == 2" | wc -l)" -ge 1 ]' 100 || fail "no v2 container appeared"
kill9_server
start_server "${SRV_ARGS[@]}"
wait_for '[ "$(count_state $A)" = 2 ] && [ "$(ctrs | wc -l)" = 2 ]' 150 || fail "after kill -9 mid-deploy: $(ctrs)"
assert_eq "$(ctrs)" "$BEFORE" "after kill -9 mid-deploy the engine runs exactly the live release's containers"
assert_has "$(b releases --app $A)" "interrupted" "the interrupted release is marked"
pass "kill -9 mid-deploy: v2's container removed, the 2 live containers adopted, nothing doubled"

# a clean stop leaves the containers; the next start adopts them
stop_server
assert_eq "$(ctrs)" "$BEFORE" "a clean stop left the containers running"
start_server "${SRV_ARGS[@]}"
wait_for '[ "$(count_state $A)" = 2 ]' 150 || fail "not adopted after a clean restart"
assert_eq "$(ps_ids)" "$IDS" "same containers after a clean restart"
# scale to 0 stops and removes them
run_ok "$T/s0.out" b scale web=0 --app $A
wait_for '[ -z "$(ctrs)" ]' 150 || fail "scale web=0 left containers: $(ctrs)"
[ -z "$(ls "$DATA"/containers/ 2>/dev/null)" ] || fail "log cursors left behind: $(ls "$DATA/containers")"
pass "a clean stop and start adopts the same containers; scale to 0 removes them and their log cursors"
