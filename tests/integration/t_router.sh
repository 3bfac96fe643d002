#!/usr/bin/env bash
# HTTP router: two apps share one host split by path (/careers from the old site, the rest
# from the new one), longest prefix on segment boundaries, --strip-prefix, the default hosts
# APP.localhost and APP.ENV.localhost, branded 404/503 pages (HTML and JSON), the
# X-Forwarded-*/X-Request-Id headers and hop-by-hop removal as the upstream sees them,
# keep-alive, a chunked POST streamed through, routes remove, `logs --router`, `routes --json`.
source "$(dirname "$0")/lib.sh"
start_server_net
make_echo_app old; OLD=$APP_DIR
make_echo_app new; NEW=$APP_DIR
run_ok "$T/d-old.out" b deploy "$OLD" --app old
run_ok "$T/d-new.out" b deploy "$NEW" --app new
run_ok "$T/d-stg.out" b deploy "$OLD" --app old --env staging

# who HOST PATH [curl args]: the name of the app that answered (the echo app's "name"),
# or "status N" when the router answered something else
who() {
  local out code
  out=$(rcurl "$1" "$2" -w '\n%{http_code}' "${@:3}")
  code=$(tail -n1 <<<"$out")
  if [ "$code" = 200 ]; then sed '$d' <<<"$out" | json 'd["name"]'; else echo "status $code"; fi
}
# upath HOST PATH: the path the upstream received
upath() { rcurl "$1" "$2" | json 'd["path"]'; }

# ---- two apps on one host, split by path
run_ok "$T/r1.out" b routes add site.test/careers --app old
assert_has "$(cat "$T/r1.out")" "site.test/careers -> production/old web" "routes add output"
run_ok "$T/r2.out" b routes add site.test --app new
assert_has "$(cat "$T/r2.out")" "site.test -> production/new web" "routes add output"
wait_for '[ "$(who site.test /careers)" = old ] && [ "$(who site.test /)" = new ]' 50 ||
  fail "routes not in force: /careers -> $(who site.test /careers), / -> $(who site.test /)"
assert_eq "$(who site.test /careers)" old "/careers"
assert_eq "$(who site.test /careers/)" old "/careers/"
assert_eq "$(who site.test /careers/engineer/42)" old "/careers/engineer/42"
assert_eq "$(who site.test '/careers?page=2')" old "/careers?page=2"
assert_eq "$(who site.test /careersfair)" new "/careersfair (not on a segment boundary)"
assert_eq "$(who site.test /)" new "/"
assert_eq "$(who site.test /customers)" new "/customers"
assert_eq "$(who SITE.Test /careers)" old "Host is case-insensitive"
assert_eq "$(upath site.test /careers/engineer/42)" /careers/engineer/42 "path the upstream gets (no strip)"
pass "site.test: /careers from the old app, everything else from the new one"

# ---- longest prefix wins
run_ok "$T/r3.out" b routes add site.test/careers/new-jobs --app new
wait_for '[ "$(who site.test /careers/new-jobs/1)" = new ]' 50 || fail "longest prefix: /careers/new-jobs/1 -> $(who site.test /careers/new-jobs/1)"
assert_eq "$(who site.test /careers/new-jobs)" new "/careers/new-jobs"
assert_eq "$(who site.test /careers/old-jobs)" old "/careers/old-jobs (shorter prefix)"
assert_eq "$(who site.test /careers)" old "/careers (shorter prefix)"
pass "the longest matching prefix wins"

# ---- a route ahead of its app's first deploy (`apps create`): accepted, with a note; a route
# to an app that does not exist at all is refused
rc=0; b routes add nowhere.test --app no-such-app >"$T/r4x.out" 2>&1 || rc=$?
[ $rc = 1 ] || { cat "$T/r4x.out"; fail "a route to an app that does not exist exited $rc"; }
run_ok "$T/r4c.out" b apps create not-yet
run_ok "$T/r4.out" b routes add later.test --app not-yet
assert_has "$(cat "$T/r4.out")" "note: production/not-yet has not been deployed yet" "route to an undeployed app"
assert_lacks "$(cat "$T/r3.out")" "note:" "route to a deployed app"
run_ok "$T/r5.out" b routes remove later.test
pass "a route to an app with no deploy yet is kept, with a note"

# ---- --strip-prefix
run_ok "$T/r4.out" b routes add site.test/api --app old --strip-prefix
assert_has "$(cat "$T/r4.out")" "prefix stripped" "routes add --strip-prefix output"
wait_for '[ "$(who site.test /api/v1/users)" = old ]' 50 || fail "/api route not in force"
assert_eq "$(upath site.test '/api/v1/users?limit=5')" "/v1/users?limit=5" "strip-prefix: /api/v1/users?limit=5"
assert_eq "$(upath site.test /api)" "/" "strip-prefix: /api"
assert_eq "$(upath site.test /api/)" "/" "strip-prefix: /api/"
assert_eq "$(upath site.test '/api?x=1')" "/?x=1" "strip-prefix: /api?x=1"
assert_eq "$(who site.test /apiary)" new "/apiary is not under /api"
pass "--strip-prefix removes the prefix, keeps the query"

# ---- default hosts, reached the way a user types them (curl resolves *.localhost itself;
# --resolve makes sure it goes to this test's router)
dflt() { curl -s -m 10 --resolve "$1:$RPORT:127.0.0.1" "http://$1:$RPORT$2"; }
assert_eq "$(dflt old.localhost /x | json '(d["name"], d["path"])')" "('old', '/x')" "old.localhost"
assert_eq "$(dflt new.localhost /x | json 'd["name"]')" new "new.localhost"
assert_eq "$(dflt old.production.localhost /x | json 'd["name"]')" old "old.production.localhost"
assert_eq "$(dflt old.staging.localhost / | json '(d["name"], d["env"])')" "('old', 'staging')" "old.staging.localhost"
assert_eq "$(dflt old.localhost / | json 'd["env"]')" production "old.localhost is production's"
# staging and production are different instances: change staging's config, only it moves
run_ok "$T/cfg.out" b config set MARK=1 --app old --env staging
assert_eq "$(dflt old.staging.localhost / | json 'd["release"]')" 2 "old.staging.localhost serves staging's v2"
assert_eq "$(dflt old.localhost / | json 'd["release"]')" 1 "old.localhost still serves production's v1"
assert_eq "$(who nosuch.staging.localhost /)" "status 404" "an app that does not exist"
pass "default hosts APP.localhost and APP.ENV.localhost"

# ---- unmatched host: 404, branded HTML; JSON when the client asks for it
rcurl nowhere.test /a -D "$T/h404" -o "$T/b404" || fail "request for an unknown host failed"
grep -q '^HTTP/1.1 404' "$T/h404" || fail "unknown host: $(head -1 "$T/h404")"
grep -qi '^content-type: text/html' "$T/h404" || fail "404 page is not HTML: $(cat "$T/h404")"
RID=$(sed -n 's/^[Xx]-[Rr]equest-[Ii]d: *\([^[:space:]]*\).*/\1/p' "$T/h404")
[ -n "$RID" ] || fail "404 answer has no X-Request-Id"
B=$(cat "$T/b404")
assert_has "$B" "<html" "404 page"
assert_has "$B" "404" "404 page"
assert_has "$(tr 'A-Z' 'a-z' <<<"$B")" "berth" "404 page is branded"
assert_has "$B" "$RID" "404 page shows the request id"
rcurl nowhere.test /a -H 'Accept: application/json' -D "$T/h404j" -o "$T/b404j"
grep -qi '^content-type: application/json' "$T/h404j" || fail "JSON 404: $(cat "$T/h404j")"
assert_eq "$(json '(d["status"], bool(d["error"]), bool(d["request_id"]))' <"$T/b404j")" "(404, True, True)" "JSON 404 body"
assert_eq "$(rcode nowhere.test / -H 'Accept: text/html,application/json;q=0.5' -o /dev/null -w '%{content_type}')" \
  "text/html; charset=utf-8" "Accept preferring HTML"
pass "unknown host: branded 404 page, JSON variant on Accept: application/json"

# ---- headers the upstream sees
rcurl site.test /hdr -D "$T/hhdr" -o "$T/hdr.json" \
  -H 'Connection: keep-alive, X-Hop' -H 'X-Hop: secret' -H 'Keep-Alive: timeout=5' -H 'TE: trailers' \
  -H 'Proxy-Connection: keep-alive' -H 'X-Forwarded-For: 203.0.113.7' -H 'X-Keep: yes' || fail "header request failed"
HDRS=$(json '"\n".join("%s: %s" % (k.lower(), v) for k, v in d["headers"])' <"$T/hdr.json")
hdr() { sed -n "s/^$1: //p" <<<"$HDRS"; }
assert_eq "$(hdr x-forwarded-for)" "203.0.113.7, 127.0.0.1" "X-Forwarded-For (appended to the client's)"
assert_eq "$(hdr x-forwarded-proto)" http "X-Forwarded-Proto"
assert_eq "$(hdr x-forwarded-host)" site.test "X-Forwarded-Host"
assert_eq "$(hdr host)" site.test "Host"
[ -n "$(hdr x-request-id)" ] || fail "no X-Request-Id upstream: $HDRS"
assert_eq "$(hdr x-keep)" yes "an end-to-end header"
for h in x-hop keep-alive te proxy-connection; do
  [ -z "$(hdr $h)" ] || fail "hop-by-hop header $h reached the upstream: $HDRS"
done
assert_lacks "$(hdr connection)" "X-Hop" "Connection header upstream"
# and the upstream's own hop-by-hop header (the echo app sends Keep-Alive) is not passed back
grep -qi '^keep-alive: timeout=30' "$T/hhdr" && fail "upstream's Keep-Alive header reached the client: $(cat "$T/hhdr")"
# a client's own well-formed X-Request-Id is kept
assert_eq "$(rcurl site.test /hdr -H 'X-Request-Id: it-req-42' | json '[v for k, v in d["headers"] if k.lower() == "x-request-id"]')" \
  "['it-req-42']" "client X-Request-Id passed on (once)"
# two requests get different ids
ID1=$(rcurl site.test /a | json '[v for k, v in d["headers"] if k.lower() == "x-request-id"][0]')
ID2=$(rcurl site.test /a | json '[v for k, v in d["headers"] if k.lower() == "x-request-id"][0]')
[ "$ID1" != "$ID2" ] || fail "two requests got the same X-Request-Id $ID1"
pass "X-Forwarded-For/-Proto/-Host and X-Request-Id reach the upstream; hop-by-hop headers do not"

# ---- keep-alive: many requests (and a 404) on one client connection
python3 - "$RPORT" >"$T/ka.out" 2>&1 <<'PY' || { cat "$T/ka.out"; fail "keep-alive client"; }
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.connect()
sock = c.sock
plan = [("site.test", "/careers/x", "old"), ("site.test", "/", "new"), ("old.localhost", "/", "old"),
        ("nowhere.test", "/", 404), ("site.test", "/api/y", "old")] * 6
for host, path, want in plan:
    c.request("GET", path, headers={"Host": host})
    r = c.getresponse()
    body = r.read()
    got = json.loads(body)["name"] if r.status == 200 else r.status
    if got != want:
        sys.exit("%s%s: got %r, want %r" % (host, path, got, want))
    if c.sock is not sock:
        sys.exit("the router closed the connection after %s%s (%d)" % (host, path, r.status))
print("ok", len(plan))
PY
assert_eq "$(cat "$T/ka.out")" "ok 30" "keep-alive client"
pass "30 requests (4 routes and a 404) on one keep-alive connection"

# ---- a chunked POST body streams through: the upstream gets the first chunk while the client
# is still holding back the rest, and echoes the whole body
python3 - "$RPORT" "$T/chunks" >"$T/chunk.out" 2>&1 <<'PY' || { cat "$T/chunk.out"; fail "chunked POST"; }
import json, os, socket, sys, time
port, trace = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=15)
s.sendall(b"POST /careers/apply HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n"
          b"Content-Type: text/plain\r\nX-Chunk-Trace: " + trace.encode() + b"\r\n\r\n")
parts = [b"first-chunk;", b"x" * 70000, b";third", b"\n" * 3, b"end"]
s.sendall(b"%x\r\n%s\r\n" % (len(parts[0]), parts[0]))
deadline = time.time() + 10
while not (os.path.exists(trace) and open(trace).read().strip()):
    if time.time() > deadline:
        sys.exit("the upstream did not get the first chunk while the request was still open (body buffered?)")
    time.sleep(0.05)
for p in parts[1:]:
    s.sendall(b"%x\r\n%s\r\n" % (len(p), p))
s.sendall(b"0\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(65536)
head, body = data.split(b"\r\n\r\n", 1)
n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
while len(body) < n:
    body += s.recv(65536)
d = json.loads(body)
want = b"".join(parts).decode()
if (d["name"], d["method"], d["chunked"], d["body"] == want) != ("old", "POST", True, True):
    sys.exit("echo: name=%s method=%s chunked=%s body %d bytes, want %d" % (d["name"], d["method"], d["chunked"], len(d["body"]), len(want)))
print("ok", len(want))
PY
assert_eq "$(cat "$T/chunk.out")" "ok 70024" "chunked POST"
# a content-length POST through the strip-prefix route, with curl
assert_eq "$(rcurl site.test /api/upload --data-binary 'a=1&b=2' | json '(d["method"], d["path"], d["body"])')" \
  "('POST', '/upload', 'a=1&b=2')" "content-length POST"
pass "chunked POST streamed to the upstream (first chunk seen before the last was sent) and echoed"

# ---- no healthy instance: 503 (branded, JSON variant), back to 200 when it returns
run_ok "$T/s0.out" b scale web=0 --app old
wait_for '[ "$(rcode site.test /careers)" = 503 ]' 50 || fail "/careers with old at web=0: $(rcode site.test /careers), want 503"
rcurl site.test /careers -D "$T/h503" -o "$T/b503"
grep -qi '^content-type: text/html' "$T/h503" || fail "503 page is not HTML: $(cat "$T/h503")"
assert_has "$(cat "$T/b503")" "503" "503 page"
assert_has "$(tr 'A-Z' 'a-z' <"$T/b503")" "berth" "503 page is branded"
assert_eq "$(rcurl site.test /careers -H 'Accept: application/json' | json 'd["status"]')" 503 "JSON 503"
assert_eq "$(who site.test /x)" new "the new app keeps serving while old has no instance"
assert_eq "$(b routes --json | json '[r["healthy"] for r in d["routes"] if r["host"] == "site.test" and r["path"] == "/careers"]')" \
  "[0]" "routes: /careers has 0 healthy instances"
run_ok "$T/s1.out" b scale web=1 --app old
wait_for '[ "$(who site.test /careers)" = old ]' 100 || fail "/careers after scaling back: $(who site.test /careers)"
pass "no healthy instance: 503 (HTML and JSON); back to 200 after scaling up"

# ---- access log: berth logs --router
rcurl site.test /careers/logged -H 'X-Request-Id: it-log-77' >/dev/null
rcurl nowhere.test /logged-404 -H 'X-Request-Id: it-log-78' >/dev/null
# Router threads hand their lines over in batches, so the two lines may arrive in either order.
wait_for 'b logs --router -n 5 | grep -q "it-log-78" && b logs --router -n 5 | grep -q "it-log-77"' 50 ||
  { b logs --router -n 5; fail "access-log lines of both requests not in logs --router"; }
b logs --router -n 5 >"$T/rlog.out" 2>&1 || fail "logs --router failed"
assert_eq "$(wc -l <"$T/rlog.out")" 5 "logs --router -n 5 line count"
L=$(grep 'it-log-77' "$T/rlog.out") || { cat "$T/rlog.out"; fail "no access-log line for it-log-77"; }
assert_has "$L" " router | " "access-log line prefix"
assert_has "$L" 'route="site.test/careers"' "access-log route"
assert_has "$L" "upstream=web.1" "access-log upstream"
assert_has "$L" "status=200" "access-log status"
assert_has "$L" "/careers/logged" "access-log target"
L=$(grep 'it-log-78' "$T/rlog.out")
assert_has "$L" "status=404" "access-log of the 404"
assert_has "$L" 'host="nowhere.test"' "access-log of the 404"
assert_eq "$(b logs --router -n 5 --json | python3 -c 'import json,sys; ds=[json.loads(l) for l in sys.stdin]; print(len(ds), all(d["process"]=="access" for d in ds), any("it-log-78" in d["line"] for d in ds))')" "5 True True" "logs --router --json"
rc=0; b logs --router --app old >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "logs --router --app is a usage error"
pass "logs --router shows access-log lines with route, upstream and status"

# ---- routes --json, routes remove
b routes --json >"$T/routes.json" || fail "routes --json failed"
assert_eq "$(json 'sorted((r["host"], r["path"], r["app"], r["strip_prefix"], r["default"]) for r in d["routes"] if not r["default"])' <"$T/routes.json")" \
  "[('site.test', '/', 'new', False, False), ('site.test', '/api', 'old', True, False), ('site.test', '/careers', 'old', False, False), ('site.test', '/careers/new-jobs', 'new', False, False)]" \
  "stored routes"
assert_eq "$(json 'sorted(r["host"] for r in d["routes"] if r["default"])' <"$T/routes.json")" \
  "['new.localhost', 'new.production.localhost', 'old.localhost', 'old.production.localhost', 'old.staging.localhost']" "default routes"
assert_eq "$(json 'sorted(set((r["env"], r["process"], r["balance"], r["healthy"]) for r in d["routes"] if r["app"] == "old"))' <"$T/routes.json")" \
  "[('production', 'web', 'round-robin', 1), ('staging', 'web', 'round-robin', 1)]" "route fields"
run_ok "$T/rm.out" b routes remove site.test/careers
wait_for '[ "$(who site.test /careers)" = new ]' 50 || fail "/careers after routes remove: $(who site.test /careers)"
assert_eq "$(who site.test /careers/new-jobs)" new "/careers/new-jobs after removing /careers"
run_ok "$T/rm2.out" b routes remove site.test/careers/new-jobs
run_ok "$T/rm3.out" b routes remove site.test
wait_for '[ "$(who site.test /)" = "status 404" ]' 50 || fail "site.test/ after removing it: $(who site.test /)"
assert_eq "$(who site.test /api/x)" old "the /api route is still there"
rc=0; b routes remove site.test/careers >"$T/rm4.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "removing a route that is gone"
rc=0; b routes remove old.localhost >"$T/rm5.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "removing a default route"
assert_eq "$(who old.localhost /)" old "old.localhost after the refused remove"
assert_eq "$(b routes --json | json 'sorted(r["host"] + r["path"] for r in d["routes"] if not r["default"])')" "['site.test/api']" "routes left"
pass "routes --json lists stored and default routes; routes remove takes a route away"

# ---- an app whose only web instance crash-loops: its default host answers 503, not 404
# (docs/issue: every (env, app) with a web process gets APP.localhost; no healthy instance
# is a 503). Checked last and reported at the end so the rest of the test still runs.
make_echo_app cr; CR=$APP_DIR
cat >"$CR/Procfile" <<PROC
web: [ -e $T/cr-crash ] && { echo crashing; exit 1; }; exec python3 echo.py cr
PROC
run_ok "$T/cr.out" b deploy "$CR" --app cr
assert_eq "$(who cr.localhost /)" cr "cr.localhost before the crash"
touch "$T/cr-crash"
kill "$(pids_of cr web)"
wait_for '[ "$(count_proc cr web backoff)" = 1 ]' 100 || { b ps --app cr; fail "cr's web is not crash-looping"; }
CR_CODE=$(rcode cr.localhost /)
echo "cr.localhost while its web crash-loops: $CR_CODE"
stop_server
pass "server stopped, no process left"
[ "$CR_CODE" = 503 ] || fail "APP.localhost of an app whose web instance crash-loops answers $CR_CODE, want 503 (the default route vanishes with the last healthy instance)"
