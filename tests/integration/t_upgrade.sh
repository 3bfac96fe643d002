#!/usr/bin/env bash
# In-place upgrade (docs/upgrade.md): `berth server --upgrade` (and SIGUSR2) re-executes the
# server's binary with the same pid, handing over its listeners and its instances. Under a
# load generator going through the router (keep-alive clients, one POSTing bodies, one asking
# for slow answers, plus a client with a new connection per request), three upgrades (two
# with --upgrade, one with SIGUSR2 after the binary was replaced on disk by another file):
# not one request fails, every instance keeps its pid, its output keeps flowing into the
# same log, the API answers with the same token, a deploy afterwards still works, and a
# clean stop leaves nothing running. A new binary that cannot take over is refused and the
# server goes on as it was. Two more upgrades with nothing going on leave the server with
# the same descriptors.
source "$(dirname "$0")/lib.sh"

# The server runs a copy of the binary under test, which the test replaces on disk; the
# CLI stays the binary under test.
mkdir -p "$T/bin"
cp "$BERTH" "$T/bin/berth.copy" && mv "$T/bin/berth.copy" "$T/bin/berth"
CLI_BIN=$BERTH
BERTH="$T/bin/berth"
start_server_net
BERTH=$CLI_BIN
APP=up
make_echo_app up; D=$APP_DIR
# the worker leaves a child in a session of its own (only its cgroup ties it to the worker)
ESC="esc-$$-$RANDOM"
cat >>"$D/Procfile" <<PROC
worker: setsid sh -c 'sleep 1000; :' $ESC & exec sh -c 'i=0; while :; do i=\$((i+1)); echo "beat \$i"; sleep 0.1; done'
PROC
run_ok "$T/d1.out" b deploy "$D" --app $APP
run_ok "$T/s2.out" b scale web=2 --app $APP
wait_for '[ "$(b routes --json | json "[r[\"healthy\"] for r in d[\"routes\"] if r[\"host\"] == \"up.localhost\"]")" = "[2]" ]' 50 ||
  fail "up.localhost does not reach 2 healthy instances: $(b routes)"

cat >"$T/load.py" <<'PY'
# Keep-alive clients (0 POSTs a body and checks the echo, 1 asks for 200 ms answers, so that
# requests are in flight when the router drains) and one client with a new connection per
# request, until STOP exists. Every error counts: a status other than 200, a connection
# refused, reset or closed without an answer. Prints a JSON summary.
import http.client, json, os, sys, threading, time
port, stop = int(sys.argv[1]), sys.argv[2]
KA = 4
lock = threading.Lock()
st = {"ok": 0, "failed": 0, "server_closes": 0, "new_conn_ok": 0, "post_ok": 0, "slow_ok": 0, "problems": []}

def note(what):
    with lock:
        st["failed"] += 1
        if len(st["problems"]) < 20:
            st["problems"].append("%.3f %s" % (time.time(), what))

def good(r, body, sent):
    if r.status != 200:
        note("status %d: %r" % (r.status, body[:200]))
        return False
    if sent is not None and json.loads(body)["body"] != sent:
        note("POST body came back wrong")
        return False
    with lock:
        st["ok"] += 1
    return True

def keepalive(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    n = 0
    while not os.path.exists(stop):
        n += 1
        sent = ("payload %d %d " % (i, n)) * 40 if i == 0 else None
        try:
            if sent is None:
                c.request("GET", "/ka/%d/%d%s" % (i, n, "?sleep=200" if i == 1 else ""), headers={"Host": "up.localhost"})
            else:
                c.request("POST", "/post/%d" % n, body=sent.encode(), headers={"Host": "up.localhost"})
            r = c.getresponse()
            body = r.read()
            if good(r, body, sent) and i < 2:
                with lock:
                    st["post_ok" if i == 0 else "slow_ok"] += 1
            if r.will_close:
                with lock:
                    st["server_closes"] += 1
                c.close()
        except Exception as e:
            note("keep-alive %d request %d: %r" % (i, n, e))
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)

def fresh():
    n = 0
    while not os.path.exists(stop):
        n += 1
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            c.request("GET", "/new/%d" % n, headers={"Host": "up.localhost", "Connection": "close"})
            r = c.getresponse()
            if good(r, r.read(), None):
                with lock:
                    st["new_conn_ok"] += 1
        except Exception as e:
            note("new connection %d: %r" % (n, e))
        finally:
            c.close()

ts = [threading.Thread(target=keepalive, args=(i,)) for i in range(KA)] + [threading.Thread(target=fresh)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps(st))
PY
python3 "$T/load.py" "$RPORT" "$T/stop" >"$T/load.json" 2>"$T/load.err" &
LOAD=$!
BG_PIDS+=("$LOAD")
wait_for 'b logs --router -n 50 | grep -c "status=200" | grep -qx 50' 100 || fail "the load generator does not get through"

ROWS0=$(ps_rows $APP)
assert_eq "$(wc -l <<<"$ROWS0")" 3 "instances before the upgrades"
ESC_PID=$(procs_exact "$ESC")
[ -n "$ESC_PID" ] || fail "the worker's setsid child did not start"
CGROUPS=$(grep -c "info cgroups: " "$T/server.log")
started_at() { curl -s -m 5 "$BERTH_API/healthz" | json 'd["started_at"]'; }
last_beat() { b logs --source app --app $APP --process worker -n 1 | sed -n 's/.*| beat \([0-9]*\)$/\1/p'; }
apps_json() { b apps --json | json '[a["name"] for a in d["apps"]]'; }
APPS0=$(apps_json) || fail "the API does not answer before the upgrades"

# check_upgraded WHAT OLD-STARTED: the same server process runs a new image, every instance
# is the one it was, the worker's output goes on in the same log, the API takes the token
check_upgraded() {
  local what=$1 before=$2 beat
  kill -0 "$SRV_PID" 2>/dev/null || fail "$what: the server process $SRV_PID is gone"
  [ "$(started_at)" != "$before" ] || fail "$what: /healthz still shows the old start time $before"
  assert_eq "$(ps_rows $APP)" "$ROWS0" "$what: instances (id state pid port release)"
  beat=$(last_beat)
  [ -n "$beat" ] || fail "$what: no beat of the worker in its log"
  wait_for '[ "$(last_beat)" -gt "$beat" ]' 50 || fail "$what: the worker's output stopped reaching its log after beat $beat"
  grep -qw "beat $(last_beat)" "$DATA/logs/production/$APP/worker.1.log" ||
    fail "$what: the worker's new lines are not in its log file"
  assert_eq "$(apps_json)" "$APPS0" "$what: the apps the API lists with the same token"
  # with cgroups, what an instance started in a session of its own is spared by the sweep too
  [ "$CGROUPS" = 0 ] || pid_alive "$ESC_PID" || fail "$what: the worker's setsid child $ESC_PID is gone"
  kill -0 $LOAD 2>/dev/null || { cat "$T/load.err"; fail "$what: the load generator ended"; }
}

# 1: berth server --upgrade
S0=$(started_at)
run_ok "$T/up1.out" b server --upgrade --data "$DATA"
assert_has "$(cat "$T/up1.out")" "3 instances kept running" "upgrade 1 report"
check_upgraded "upgrade 1" "$S0"
D1=$(rdig web.up.service.production.consul SRV)
assert_eq "$(dns_status "$D1")" NOERROR "DNS after the upgrade (the same sockets)"
assert_has "$D1" "ANSWER: 2," "DNS answers after the upgrade"
pass "upgrade 1 (--upgrade): $(tail -1 "$T/up1.out" | sed 's/^berth: //')"

# 2: SIGUSR2 after another file took the binary's place
OLD_INODE=$(stat -L -c %i /proc/$SRV_PID/exe)
cp "$T/bin/berth" "$T/bin/berth.new" && mv "$T/bin/berth.new" "$T/bin/berth"
NEW_INODE=$(stat -c %i "$T/bin/berth")
[ "$OLD_INODE" != "$NEW_INODE" ] || fail "the replacement binary has the same inode"
grep -q "(deleted)" <<<"$(readlink /proc/$SRV_PID/exe)" || fail "the running image should be the replaced file now"
S1=$(started_at)
kill -USR2 "$SRV_PID"
wait_for '[ "$(json "d[\"state\"]" <"$DATA/upgrade.result")" = done ] && [ "$(started_at)" != "$S1" ]' 300 ||
  fail "SIGUSR2: no upgrade: $(cat "$DATA/upgrade.result" 2>/dev/null)"
assert_eq "$(stat -L -c %i /proc/$SRV_PID/exe)" "$NEW_INODE" "the binary the server runs after SIGUSR2"
check_upgraded "upgrade 2 (SIGUSR2)" "$S1"
pass "upgrade 2 (SIGUSR2, new binary file): the server runs the new file, instances kept"

# 3: --upgrade again
S2=$(started_at)
run_ok "$T/up3.out" b server --upgrade --data "$DATA"
check_upgraded "upgrade 3" "$S2"

# not one request of the load failed across the three upgrades
touch "$T/stop"
wait "$LOAD" || fail "the load generator failed: $(cat "$T/load.err")"
python3 - "$T/load.json" <<'PY' || fail "load across the upgrades: $(cat "$T/load.json")"
import json, sys
st = json.load(open(sys.argv[1]))
assert st["failed"] == 0, "%d failed requests: %s" % (st["failed"], st["problems"])
assert st["ok"] > 200 and st["new_conn_ok"] > 10 and st["post_ok"] > 10 and st["slow_ok"] > 3, st
PY
pass "3 upgrades under load: $(json '"%d requests, 0 failed, %d new connections, %d closed by the drain" % (d["ok"], d["new_conn_ok"], d["server_closes"])' <"$T/load.json")"

# a new binary that cannot take over is refused; the server goes on as it was
cp "$T/bin/berth" "$T/bin/berth.good"
printf '#!/bin/sh\necho "not a berth" >&2\nexit 3\n' >"$T/bin/berth.bad" && chmod +x "$T/bin/berth.bad"
mv "$T/bin/berth.bad" "$T/bin/berth"
S3=$(started_at)
if b server --upgrade --data "$DATA" >"$T/bad.out" 2>&1; then cat "$T/bad.out"; fail "an upgrade to a broken binary succeeded"; fi
assert_has "$(cat "$T/bad.out")" "exited with status 3" "refused upgrade message"
assert_eq "$(started_at)" "$S3" "start time after a refused upgrade"
assert_eq "$(ps_rows $APP)" "$ROWS0" "instances after a refused upgrade"
assert_eq "$(rcode up.localhost /)" 200 "the router after a refused upgrade"
mv "$T/bin/berth.good" "$T/bin/berth"
pass "a binary that cannot take over is refused; the server goes on"

# descriptors: two more upgrades with nothing going on leave the same ones open (TCP
# connections aside: the CLI's come and go)
fds() {
  python3 - "$SRV_PID" <<'PY'
import os, re, sys
pid = sys.argv[1]
kinds = {}
for f, kind in (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp"), ("unix", "unix")):
    lines = open("/proc/net/" + f).read().splitlines()[1:]
    for l in lines:
        p = l.split()
        if kind == "unix":
            kinds[p[6]] = "unix socket"
        elif kind == "udp":
            kinds[p[9]] = "udp socket"
        else:
            kinds[p[9]] = "listening tcp socket" if p[3] == "0A" else None
out = []
for fd in os.listdir("/proc/%s/fd" % pid):
    try:
        t = os.readlink("/proc/%s/fd/%s" % (pid, fd))
    except OSError:
        continue
    m = re.match(r"socket:\[(\d+)\]", t)
    if m:
        k = kinds.get(m.group(1), "socket")
        if k:
            out.append(k)
    else:
        out.append(re.sub(r"\[\d+\]", "[N]", t))
print("\n".join("%s x%d" % (k, out.count(k)) for k in sorted(set(out))))
PY
}
run_ok "$T/up4.out" b server --upgrade --data "$DATA"
FDS4=$(fds)
run_ok "$T/up5.out" b server --upgrade --data "$DATA"
assert_eq "$(fds)" "$FDS4" "open descriptors after one more upgrade"
assert_eq "$(ps_rows $APP)" "$ROWS0" "instances after five upgrades"
pass "no descriptor leaks across upgrades ($(ls /proc/$SRV_PID/fd | wc -l) open)"

# an adopted instance that dies is waited for and restarted like any other
W=$(pids_of $APP worker)
kill -9 "$W"
wait_for '[ "$(pids_of $APP worker)" != "$W" ] && [ "$(count_proc $APP worker)" = 1 ]' 100 ||
  fail "the adopted worker $W was killed and not restarted: $(b ps --app $APP)"
wait_for "[ ! -d /proc/$W ]" 50 || fail "the adopted worker $W was killed and not waited for: $(head -3 /proc/$W/status)"
assert_has "$(log_text $APP production --process worker -n 500)" "crashed: killed by signal 9" "the worker's log after its crash"
pass "an adopted instance that crashes is restarted"

# life goes on: a deploy rolls the adopted instances over, they stop for good
OLDPIDS=$(b ps --app $APP --json | json '" ".join(str(i["pid"]) for i in d["instances"])')
echo "v2" >"$D/VERSION"
run_ok "$T/d2.out" b deploy "$D" --app $APP -m "after the upgrades"
assert_eq "$(b ps --app $APP --json | json '" ".join(sorted(set(str(i["release"]) for i in d["instances"])))')" 2 \
  "releases running after the deploy"
for p in $OLDPIDS; do   # gone, not a zombie: the server waited for it
  wait_for "[ ! -d /proc/$p ]" 50 || fail "adopted instance $p still there after the deploy replaced it: $(head -c 300 /proc/$p/status)"
done
assert_eq "$(rcurl up.localhost / | json 'd["release"]')" 2 "release answering after the deploy"
pass "a deploy after the upgrades replaces the adopted instances"

stop_server
grep -q "ERROR: AddressSanitizer\|runtime error:" "$T/server.log" && fail "sanitizer report in the server log"
pass "clean stop after the upgrades: nothing left running"
