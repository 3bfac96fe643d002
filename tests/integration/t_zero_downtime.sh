#!/usr/bin/env bash
# Zero downtime: a load generator (keep-alive clients, one of them POSTing bodies, plus a
# client opening a new connection per request) runs against the router while 10 rolling
# deploys (config changes and code changes, alternately) and a scale-down from web=3 to
# web=1 happen. Not one request may fail or hit a connection error, answers must come from
# more than one release (and from the last one), and after the scale-down only web.1 answers.
source "$(dirname "$0")/lib.sh"
start_server_net
APP=zd
make_echo_app zd; D=$APP_DIR
echo "code 0" >"$D/VERSION"
run_ok "$T/d0.out" b deploy "$D" --app $APP
run_ok "$T/s3.out" b scale web=3 --app $APP
assert_eq "$(count_proc $APP web)" 3 "web instances before the load"
wait_for '[ "$(b routes --json | json "[r[\"healthy\"] for r in d[\"routes\"] if r[\"host\"] == \"zd.localhost\"]")" = "[3]" ]' 50 ||
  fail "zd.localhost does not reach 3 healthy instances: $(b routes)"

cat >"$T/load.py" <<'PY'
# Load generator: KA keep-alive threads (thread 0 POSTs a body and checks the echo, thread 1
# asks for answers that take 300 ms, so requests are in flight when instances drain) and one
# thread with a new connection per request. Stops when STOP exists, or once AFTER answers
# arrived after the SCALED marker appeared. Prints a JSON summary.
import http.client, json, os, sys, threading
port, stop, scaled = int(sys.argv[1]), sys.argv[2], sys.argv[3]
KA, AFTER = 4, 300
lock = threading.Lock()
st = {"ok": 0, "slow_ok": 0, "bad": 0, "conn_errors": 0, "server_closes": 0, "new_conn_ok": 0, "post_ok": 0,
      "releases": {}, "after_scale": {}, "problems": []}

def done():
    return os.path.exists(stop) or sum(st["after_scale"].values()) >= AFTER

def note(kind, what):
    with lock:
        st[kind] += 1
        if len(st["problems"]) < 20:
            st["problems"].append(what)

def answer(r, body, sent):
    if r.status != 200:
        note("bad", "status %d: %r" % (r.status, body[:200]))
        return False
    d = json.loads(body)
    if sent is not None and d["body"] != sent:
        note("bad", "POST body came back as %r" % d["body"][:100])
        return False
    after = os.path.exists(scaled)
    with lock:
        st["ok"] += 1
        st["releases"][d["release"]] = st["releases"].get(d["release"], 0) + 1
        if after:
            st["after_scale"][d["instance"]] = st["after_scale"].get(d["instance"], 0) + 1
    return True

def keepalive(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    n = 0
    while not done():
        n += 1
        sent = ("payload %d %d " % (i, n)) * 40 if i == 0 else None
        try:
            if sent is None:
                slow = "?sleep=300" if i == 1 else ""
                c.request("GET", "/ka/%d/%d%s" % (i, n, slow), headers={"Host": "zd.localhost"})
            else:
                c.request("POST", "/post/%d" % n, body=sent.encode(), headers={"Host": "zd.localhost"})
            r = c.getresponse()
            body = r.read()
            if answer(r, body, sent) and i < 2:
                with lock:
                    st["post_ok" if i == 0 else "slow_ok"] += 1
            if r.will_close:   # the router ended the keep-alive connection (allowed, but noted)
                with lock:
                    st["server_closes"] += 1
        except Exception as e:
            note("conn_errors", "keep-alive %d request %d: %r" % (i, n, e))
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)

def fresh():
    n = 0
    while not done():
        n += 1
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            c.request("GET", "/new/%d" % n, headers={"Host": "zd.localhost", "Connection": "close"})
            r = c.getresponse()
            if answer(r, r.read(), None):
                with lock:
                    st["new_conn_ok"] += 1
        except Exception as e:
            note("conn_errors", "new connection %d: %r" % (n, e))
        finally:
            c.close()

ts = [threading.Thread(target=keepalive, args=(i,)) for i in range(KA)] + [threading.Thread(target=fresh)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps(st))
PY
python3 "$T/load.py" "$RPORT" "$T/stop" "$T/scaled" >"$T/load.json" 2>"$T/load.err" &
LOAD=$!
BG_PIDS+=("$LOAD")
# the load is flowing before the first deploy
wait_for 'b logs --router -n 50 | grep -c "status=200" | grep -qx 50' 100 || fail "the load generator does not get through"

for i in $(seq 1 10); do
  if [ $((i % 2)) = 1 ]; then
    run_ok "$T/r$i.out" b config set ROUND=$i --app $APP
  else
    echo "code $i" >"$D/VERSION"
    run_ok "$T/r$i.out" b deploy "$D" --app $APP -m "code change $i"
  fi
  kill -0 $LOAD 2>/dev/null || { cat "$T/load.err" "$T/load.json"; fail "load generator ended during deploy $i"; }
done
assert_eq "$(b releases --app $APP --json | json 'max(r["version"] for r in d["releases"])')" 11 "releases after 10 deploys"
assert_eq "$(count_proc $APP web)" 3 "web instances after 10 deploys"
pass "10 rolling deploys done under load"

# a restart replaces each instance by one with the same name and release: the old one must
# drain, the new one must be routed to (not withdrawn with the old one's name)
run_ok "$T/rs.out" b restart --app $APP
kill -0 $LOAD 2>/dev/null || { cat "$T/load.err" "$T/load.json"; fail "load generator ended during the restart"; }
wait_for '[ "$(b routes --json | json "[r[\"healthy\"] for r in d[\"routes\"] if r[\"host\"] == \"zd.localhost\"]")" = "[3]" ]' 50 ||
  fail "after a restart zd.localhost reaches $(b routes --json | json "[r[\"healthy\"] for r in d[\"routes\"] if r[\"host\"] == \"zd.localhost\"]") healthy instances, not 3: $(b ps --app $APP)"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: zd.localhost' "http://127.0.0.1:$RPORT/after-restart")
assert_eq "$code" 200 "a request after the restart"
pass "restart under load: every replacement routed to, the old ones drained"

run_ok "$T/s1.out" b scale web=1 --app $APP
wait_for '[ "$(b ps --app $APP --json | json "len(d[\"instances\"])")" = 1 ]' 100 || fail "scale-down did not finish: $(b ps --app $APP)"
touch "$T/scaled"
# the generator stops by itself once 300 answers arrived after the scale-down
for _ in $(seq 1 600); do kill -0 $LOAD 2>/dev/null || break; sleep 0.1; done
kill -0 $LOAD 2>/dev/null && { touch "$T/stop"; wait_gone $LOAD 100; fail "load generator did not get 300 answers after the scale-down"; }
wait $LOAD || { cat "$T/load.err"; fail "load generator crashed"; }

R=$(cat "$T/load.json")
echo "load: $(json '"%d ok (%d on new connections, %d POSTs, %d slow), %d bad, %d connection errors, %d server closes; answers by release %s" % (d["ok"], d["new_conn_ok"], d["post_ok"], d["slow_ok"], d["bad"], d["conn_errors"], d["server_closes"], sorted(d["releases"].items(), key=lambda kv: int(kv[0])))' <<<"$R")"
[ "$(json 'd["problems"]' <<<"$R")" = "[]" ] || echo "problems: $(json 'd["problems"]' <<<"$R")"
assert_eq "$(json 'd["bad"]' <<<"$R")" 0 "failed requests"
assert_eq "$(json 'd["conn_errors"]' <<<"$R")" 0 "connection errors"
[ "$(json 'd["ok"]' <<<"$R")" -ge 500 ] || fail "only $(json 'd["ok"]' <<<"$R") requests went through"
[ "$(json 'd["new_conn_ok"]' <<<"$R")" -ge 20 ] || fail "only $(json 'd["new_conn_ok"]' <<<"$R") new-connection requests went through"
[ "$(json 'd["post_ok"]' <<<"$R")" -ge 20 ] || fail "only $(json 'd["post_ok"]' <<<"$R") POSTs went through"
[ "$(json 'd["slow_ok"]' <<<"$R")" -ge 5 ] || fail "only $(json 'd["slow_ok"]' <<<"$R") slow requests went through"
[ "$(json 'len(d["releases"])' <<<"$R")" -ge 2 ] || fail "answers came from one release only: $(json 'd["releases"]' <<<"$R")"
assert_eq "$(json '"1" in d["releases"] and "11" in d["releases"]' <<<"$R")" True "answers from the first (v1) and the last (v11) release"
assert_eq "$(json 'list(d["after_scale"])' <<<"$R")" "['web.1']" "instances answering after the scale-down to web=1"
pass "zero failed requests and zero connection errors across 10 deploys and a scale-down"

stop_server
pass "server stopped, no process left"
