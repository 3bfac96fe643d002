#!/usr/bin/env bash
# A web process whose health check never passes (it listens on a port of its own instead of
# $PORT): the failed deploy shows the first lines the app printed as well as its last, and a
# hint that nothing listens on $PORT.
. "$(dirname "$0")/lib.sh"
start_server --router 127.0.0.1:0 --dns 127.0.0.1:0
D=$T/app; mkdir -p "$D"
WRONG=$(free_port)
cat >"$D/app.py" <<PY
import http.server
print("booting: first line of many", flush=True)
for i in range(50):
    print("noise", i, flush=True)
print("serving on $WRONG, not on PORT", flush=True)
http.server.HTTPServer(("127.0.0.1", $WRONG), http.server.BaseHTTPRequestHandler).serve_forever()
PY
cat >"$D/berth.yaml" <<'YAML'
processes:
  web:
    command: exec python3 app.py
    health:
      deadline: 2s
YAML
rc=0; b deploy "$D" --app wrongport >"$T/d.out" 2>"$T/d.err" || rc=$?
[ $rc = 1 ] || { cat "$T/d.out" "$T/d.err"; fail "a deploy whose health check never passes exited $rc"; }
assert_has "$(cat "$T/d.err")" "not healthy after 2000 ms" "the reason"
assert_has "$(cat "$T/d.err")" "hint: nothing listens on 127.0.0.1:" "the \$PORT hint"
assert_has "$(cat "$T/d.err")" "the app must listen on the port in \$PORT" "the \$PORT hint"
assert_has "$(cat "$T/d.err")" "| booting: first line of many" "the app's first line"
assert_has "$(cat "$T/d.err")" "       | ..." "the cut between first and last lines"
assert_has "$(cat "$T/d.err")" "| serving on $WRONG, not on PORT" "the app's last line"
pass "a health check that never passes: first and last lines of the app, and a hint about \$PORT"
