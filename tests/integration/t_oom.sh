#!/usr/bin/env bash
# An instance killed at its profile's memory limit says so: "out of memory (limit 256 MiB,
# profile small)" in ps, in berth's own log lines and in the crash-loop alert, not only
# "killed by signal 9".
. "$(dirname "$0")/lib.sh"
start_server --router 127.0.0.1:0 --dns 127.0.0.1:0
grep -q "cgroups: none" "$T/server.log" && { pass "skipped: no cgroups here"; exit 0; }
APP=hog
D=$T/app; mkdir -p "$D"
cat >"$D/berth.yaml" <<'YAML'
processes:
  hog:
    command: exec python3 -c "import time; x = bytearray(400 * 1024 * 1024); print('allocated', flush=True); time.sleep(100)"
    profile: small
YAML
b deploy "$D" --app $APP >"$T/d.out" 2>&1
WANT="out of memory (limit 256 MiB, profile small)"
wait_for '[ "$(b ps --app $APP --json | json "d[\"instances\"][0][\"last_exit\"]")" = "$WANT" ]' 100 \
  || { b ps --app $APP; fail "ps does not say out of memory"; }
wait_for 'b logs --app $APP --source berth -n 50 | grep -q "berth| hog.1: crashed: $WANT; restarting in"' 50 \
  || { b logs --app $APP -n 20; fail "the logs do not say out of memory"; }
b logs --app $APP --source app -n 50 | grep -q allocated && fail "the process got its 400 MB although the limit is 256 MiB"
pass "an instance over its memory limit: ps and the logs say '$WANT'"
stop_server
pass "server stopped, no process left"
