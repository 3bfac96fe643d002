#!/usr/bin/env bash
# The container engine misbehaving: a socket that is missing when the server starts (the
# server starts all the same, processes deploy, an image deploy says the engine does not
# answer, and once the engine is up containers deploy), and an engine that answers garbage
# (a clear error, the live release untouched, the server up).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/engine_lib.sh"
engine_available || { echo "skip [$TEST_NAME] $(engine_available)"; exit 0; }
trap 'engine_cleanup; cleanup' EXIT
engine_init

# --- the engine is down when the server starts
start_server --docker-host "$ENGINE_HOST"
curl -s -o /dev/null "$BERTH_API/healthz" || fail "the server did not start without its engine"
grep -q "does not answer\|cannot connect" "$T/server.log" || fail "the server log does not say the engine is down"
make_app p1
run_ok "$T/p1.out" b deploy "$APP_DIR" --app p1
OUT=$(b deploy --image localhost/t-eng:v1 --app c1 2>&1) && fail "an image deploy with the engine down succeeded"
assert_has "$OUT" "$ENGINE_SOCK" "the error names the engine's socket"
pass "engine down at start: the server runs, processes deploy, an image deploy fails naming $ENGINE_SOCK"

# --- the engine comes up: containers deploy
engine_start || fail "podman's service did not start"
ctr_import localhost/t-eng:v1 "eng one $MARK" || fail "podman import"
wait_for 'grep -q "answers again" "$T/server.log"' 100 || fail "the server did not notice the engine came up"
run_ok "$T/c1.out" b deploy --image localhost/t-eng:v1 --app c1
wait_for '[ "$(count_state c1)" = 1 ]' 100 || fail "no container after the engine came up"
pass "the engine came up: the server noticed and an image deploys"
stop_server

# --- an engine that answers garbage
cat >"$T/garbage.py" <<'PY'
import os, socket, sys, threading
path = sys.argv[1]
if os.path.exists(path): os.unlink(path)
s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(16)
def serve(c):
    try:
        c.recv(65536)
        body = b'{"Id": 12, "RepoDigests": "x", "Config": [1,2' + b"\xff" * 100
        c.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    finally:
        c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
python3 "$T/garbage.py" "$T/garbage.sock" &
BG_PIDS+=($!)
wait_for '[ -S "$T/garbage.sock" ]' 50 || fail "the garbage engine did not start"
start_server --docker-host "unix://$T/garbage.sock"
curl -s -o /dev/null "$BERTH_API/healthz" || fail "the server did not start beside a garbage engine"
OUT=$(b deploy --image localhost/t-eng:v1 --app c1 2>&1) && fail "an image deploy against a garbage engine succeeded"
assert_has "$OUT" "localhost/t-eng:v1" "the error names the image"
curl -s -o /dev/null "$BERTH_API/healthz" || fail "the server died on a garbage answer"
wait_for '[ "$(count_state p1)" = 2 ]' 100 || fail "the process app does not run beside a garbage engine: $(b ps --app p1)"
pass "an engine answering garbage: '$(echo "$OUT" | tail -1 | cut -c1-100)'; the server is up"
