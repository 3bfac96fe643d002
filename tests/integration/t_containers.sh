#!/usr/bin/env bash
# Containers through a real podman service (Docker Engine API): an image deploys like a
# directory. deploy --image pinned by id (a tag moved later changes nothing until the next
# deploy), ps and releases name the container and image, berth's labels, logs live and on disk,
# a berth.yaml mixing a process and a container process with a profile (limits seen by
# `podman inspect`) and a volume, exec and run in containers, scale, rollback, and bad input:
# an image that does not exist, a container that exits at once, a health check that never
# passes, each a clear error with the live release untouched and the server up.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/engine_lib.sh"
engine_available || { echo "skip [$TEST_NAME] $(engine_available)"; exit 0; }
trap 'engine_cleanup; cleanup' EXIT
engine_start || fail "podman's service did not start"
ctr_import localhost/t-ctr:v1 "image one $MARK" || fail "podman import v1"
ctr_import localhost/t-ctr:v2 "image two $MARK" || fail "podman import v2"
ID1=$(pod image inspect --format "{{.Id}}" localhost/t-ctr:v1); ID1=sha256:${ID1#sha256:}
start_server_net --docker-host "$ENGINE_HOST"
A=ctr

running_ctrs() {  # running containers of app $1: "ID INSTANCE RELEASE"
  eng GET "/containers/json?filters=$(python3 -c 'import json,sys,urllib.parse;print(urllib.parse.quote(json.dumps({"label":["io.berth.app="+sys.argv[1]]})))' "$1")" |
    python3 -c 'import json,sys
for c in json.load(sys.stdin):
    l = c.get("Labels") or {}
    if str(c.get("State","")).lower() == "running":
        print(c["Id"], l.get("io.berth.instance"), l.get("io.berth.release"))'
}

# --- deploy --image: the release pins the image; ps and releases say which
run_ok "$T/d1.out" b deploy --image localhost/t-ctr:v1 --app $A
assert_has "$(cat "$T/d1.out")" "image localhost/t-ctr:v1 is sha256:" "the deploy names the image's id"
wait_for '[ "$(count_state $A)" = 1 ]' 100 || fail "no running container instance: $(b ps --app $A)"
CID=$(running_ctrs $A | awk '{print $1}')
[ -n "$CID" ] || fail "the engine runs no container of $A"
PSJ=$(b ps --app $A --json)
assert_eq "$(echo "$PSJ" | json 'd["instances"][0]["container"]')" "$CID" "ps --json names the container"
assert_eq "$(echo "$PSJ" | json 'd["instances"][0]["image"]')" "$ID1" "ps --json names the pinned image"
assert_eq "$(echo "$PSJ" | json 'd["instances"][0]["driver"]')" "docker" "ps --json names the driver"
assert_has "$(b ps --app $A)" "${CID:0:12}" "ps shows the container id"
DG=$(echo "$PSJ" | json 'd["instances"][0].get("image_digest") or d["instances"][0]["image"]')
DG=${DG#*@}
assert_has "$(b releases --app $A)" "web ${DG:0:19}" "releases shows the image each release runs"
assert_has "$(b releases info v1 --app $A)" "localhost/t-ctr:v1 = $ID1" "releases info shows the pinned image"
LABELS=$(eng GET "/containers/$CID/json" | json 'sorted(k for k in d["Config"]["Labels"] if k.startswith("io.berth."))')
for l in app env process instance release owner; do assert_has "$LABELS" "io.berth.$l" "berth's labels on the container"; done
b routes add $A.test --app $A >/dev/null || fail "routes add"
wait_for 'rcurl $A.test / | grep -q "image one"' 100 || fail "the router does not serve the container: $(rcurl $A.test /)"
pass "deploy --image: ps names container ${CID:0:12} and image ${ID1:7:12}, labels, releases, router"

# --- logs: live (logs -f) and on disk, with berth's own lines beside them
b logs --app $A -f >"$T/follow.out" 2>&1 &
BG_PIDS+=($!)
wait_for 'grep -q "$MARK .* tick" "$T/follow.out"' 100 || fail "logs -f shows no container output"
F=$(ls "$DATA"/logs/production/$A/web.1*.log 2>/dev/null | head -1)
[ -n "$F" ] && grep -q "$MARK .* tick" "$F" || fail "no container output in the log file on disk ($F)"
assert_has "$(b logs --app $A --source berth -n 50)" "starting (v1, container ${CID:0:12}" "berth's sys line names the container"
pass "container output in logs -f and in $(basename "$F") on the host"

# --- a tag that moves changes nothing until the next deploy
pod tag localhost/t-ctr:v2 localhost/t-ctr:v1 || fail "podman tag"
run_ok "$T/restart.out" b restart --app $A
wait_for '[ "$(running_ctrs $A | grep -vc "^$CID")" -ge 1 ] && [ "$(count_state $A)" = 1 ]' 150 || fail "restart did not replace the container"
wait_for 'rcurl $A.test / | grep -q "image one"' 50 || fail "after the tag moved, a restart serves '$(rcurl $A.test /)', not the pinned image"
pass "the tag moved to another image: a restart still runs the pinned one"

# --- exec and run in the container's image
OUT=$(b exec web.1 --app $A -- cat /www/index.html 2>&1) || fail "exec failed: $OUT"
assert_has "$OUT" "image one $MARK" "exec runs in the container"
OUT=$(b exec web.1 --app $A -- sh -c 'echo $BERTH_APP; exit 4' 2>&1); rc=$?
assert_eq "$rc" 4 "exec's exit status"
assert_has "$OUT" "$A" "exec sees the container's environment"
OUT=$(b run --app $A -- sh -c 'cat /www/index.html; echo port=${PORT:-none}' 2>&1) || fail "run failed: $OUT"
assert_has "$OUT" "image one" "run runs a container of the release's image"
pass "exec (exit status 4, environment) and run in the release's image"

# --- scale and rollback
ctr_import localhost/t-ctr:v1 "image one $MARK" >/dev/null   # put the tag back
run_ok "$T/scale.out" b scale web=2 --app $A
wait_for '[ "$(running_ctrs $A | wc -l)" = 2 ] && [ "$(count_state $A)" = 2 ]' 150 || fail "scale web=2: $(running_ctrs $A)"
# a load generator through the router while v2 rolls out and back: no request may fail
cat >"$T/load.py" <<'PY'
import os, sys, threading, http.client
port, host, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ok = bad = 0; lock = threading.Lock(); errs = []
def run():
    global ok, bad
    c = None
    while not os.path.exists(stop):
        try:
            if c is None: c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/", headers={"Host": host}); r = c.getresponse(); r.read()
            with lock:
                if r.status == 200: ok += 1
                else: bad += 1; errs.append(r.status)
        except Exception as e:
            with lock: bad += 1; errs.append(repr(e))
            c = None
ts = [threading.Thread(target=run) for _ in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(ok, bad, errs[:3])
PY
python3 "$T/load.py" "$RPORT" "$A.test" "$T/stop" >"$T/load.out" 2>&1 &
LOAD=$!
run_ok "$T/d2.out" b deploy --image localhost/t-ctr:v2 --app $A
wait_for 'rcurl $A.test / | grep -q "image two"' 100 || fail "v2 not served"
run_ok "$T/rb.out" b rollback --app $A
wait_for 'rcurl $A.test / | grep -q "image one" && [ "$(running_ctrs $A | awk "{print \$3}" | sort -u | wc -l)" = 1 ] && [ "$(running_ctrs $A | wc -l)" = 2 ]' 150 ||
  fail "rollback: $(running_ctrs $A)"
touch "$T/stop"; wait $LOAD
read -r OK BAD _ <"$T/load.out"
[ "${OK:-0}" -gt 0 ] || fail "the load generator made no request: $(cat "$T/load.out")"
assert_eq "$BAD" 0 "failed requests through the router during the container rollout and rollback ($(cat "$T/load.out"))"
pass "scale to 2 containers, v2, rollback to the first image's content on 2 containers: $OK requests through the router, 0 failed"

# --- berth.yaml: a process beside a container process with a profile, a volume, a command
M="$T/mixed"; mkdir -p "$M"
cat >"$M/berth.yaml" <<YAML
app: mix
processes:
  web:
    image: localhost/t-ctr:v1
    profile: small
    volumes: [data]
  writer:
    image: localhost/t-ctr:v1
    command: echo "\$BERTH_APP wrote" > \$BERTH_VOLUME_DATA/note; exec sleep 1000
    volumes: [data]
  local:
    command: exec sh -c 'while true; do echo local-$MARK; sleep 0.2; done'
YAML
run_ok "$T/mix.out" b deploy "$M"
wait_for '[ "$(count_state mix)" = 3 ]' 150 || fail "mixed app: $(b ps --app mix)"
PSM=$(b ps --app mix --json)
assert_eq "$(echo "$PSM" | json '" ".join(sorted(i["driver"] for i in d["instances"]))')" "docker docker process" "drivers per process"
WC=$(running_ctrs mix | awk '$2 == "web.1" {print $1}')
INS=$(eng GET "/containers/$WC/json")
assert_eq "$(echo "$INS" | json 'd["HostConfig"]["Memory"]')" "268435456" "the profile's memory limit in podman inspect"
assert_eq "$(echo "$INS" | json 'd["HostConfig"]["PidsLimit"]')" "256" "the profile's pids limit in podman inspect"
assert_has "$(echo "$INS" | json 'd["HostConfig"]["NanoCpus"]')" "500000000" "the profile's CPU limit in podman inspect"
wait_for '[ -s "$DATA/volumes/production/mix/data/note" ]' 100 || fail "the container wrote nothing into its volume"
assert_eq "$(cat "$DATA/volumes/production/mix/data/note")" "mix wrote" "the volume's content on the host"
wait_for 'log_text mix production -n 50 | grep -q "local-$MARK"' 50 || fail "the process beside the containers logs nothing"
pass "berth.yaml: container and process side by side; profile small in podman inspect; volume bind-mounted"

# --- bad input: the live release stays
OUT=$(b deploy --image localhost/no-such-image:1 --app $A 2>&1) && fail "deploying a missing image succeeded"
assert_has "$OUT" "no-such-image" "the error names the image"
wait_for 'rcurl $A.test / | grep -q "image one"' 30 || fail "the live release stopped serving after a failed deploy"
OUT=$(b deploy --image 'bad ref!' --app $A 2>&1); rc=$?
assert_eq "$rc" 2 "a malformed reference is a usage error"
cat >"$M/berth.yaml" <<YAML
app: quick
processes:
  web:
    image: localhost/t-ctr:v1
    command: echo "going away"; exit 3
YAML
b deploy "$M" >"$T/quick.out" 2>&1 && fail "a container that exits at once deployed"
assert_has "$(cat "$T/quick.out")" "exit status 3" "the failure says how the container ended"
assert_has "$(cat "$T/quick.out")" "going away" "the failure shows the container's output"
cat >"$M/berth.yaml" <<YAML
app: $A
processes:
  web:
    image: localhost/t-ctr:v1
    health: {http: /nothing-here, deadline: 3s}
YAML
b deploy "$M" >"$T/unhealthy.out" 2>&1 && fail "a container whose health check never passes deployed"
assert_has "$(cat "$T/unhealthy.out")" "/nothing-here" "the failure names the health check"
wait_for 'rcurl $A.test / | grep -q "image one"' 30 || fail "the live release stopped serving after an unhealthy deploy"
curl -s -o /dev/null "$BERTH_API/healthz" || fail "the server is down"
pass "a missing image, a malformed reference, an exit at once, a failing health check: clear errors, v$(b releases --app $A --json | json '[r["version"] for r in d["releases"] if r["status"]=="active"][0]') still live"

# --- a container that crashes after it went live: restarted with backoff, each time a new container
cat >"$M/berth.yaml" <<YAML
app: crash
processes:
  web:
    image: localhost/t-ctr:v1
    command: httpd -p \$PORT -h /www; sleep 1; echo "crashing $MARK"; exit 5
YAML
run_ok "$T/crash.out" b deploy "$M"
wait_for '[ "$(b ps --app crash --json | json "d[\"instances\"][0][\"restarts\"]")" -ge 3 ]' 300 ||
  fail "the crashing container was not restarted 3 times: $(b ps --app crash)"
PSC=$(b ps --app crash --json)
assert_eq "$(echo "$PSC" | json 'd["instances"][0]["last_exit"]')" "exit status 5" "the crash's exit status"
assert_has "$(b logs --app crash --source berth -n 50)" "crash loop" "berth's log line says crash loop"
assert_has "$(log_text crash production -n 100)" "crashing $MARK" "the crashing container's output"
[ "$(eng GET "/containers/json?all=1&filters=$(python3 -c 'import json,urllib.parse;print(urllib.parse.quote(json.dumps({"label":["io.berth.app=crash"]})))')" | json 'len(d)')" -le 1 ] ||
  fail "crashed containers are left behind in the engine"
pass "a crash loop: restarted with backoff ($(echo "$PSC" | json 'd["instances"][0]["restarts"]') restarts, exit status 5), dead containers removed"

stop_server
[ -z "$(running_ctrs $A)" ] && fail "the server's stop removed the containers (they should outlive it)"
pass "server stopped; its containers keep running for the next server"
