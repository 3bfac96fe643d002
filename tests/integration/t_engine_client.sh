#!/usr/bin/env bash
# The engine client's unit test (tests/unit/test_engine.c) against a real podman service: ping
# and version negotiation, create/start/inspect, a followed log stream through the loop,
# stop and remove. The test binary is the one built beside BERTH_BIN (build/tests or
# build-asan/tests).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/engine_lib.sh"
engine_available || { echo "skip [$TEST_NAME] $(engine_available)"; exit 0; }
trap 'engine_cleanup; cleanup' EXIT
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=$(dirname "$BERTH")
if [ "$BIN_DIR" = "$ROOT" ]; then TE="$ROOT/build/tests/test_engine"; else TE="$BIN_DIR/tests/test_engine"; fi
[ -x "$TE" ] || fail "no test_engine binary at $TE (make unit-build)"
engine_start || fail "podman's service did not start"
ctr_import localhost/berth-unit:v1 "hello $MARK" || fail "podman import"
BERTH_TEST_ENGINE=$ENGINE_HOST BERTH_TEST_IMAGE=localhost/berth-unit:v1 "$TE" >"$T/te.out" 2>&1 ||
  { tail -20 "$T/te.out"; fail "test_engine against podman failed"; }
grep -q "SKIPPED" "$T/te.out" && { grep SKIPPED "$T/te.out"; fail "test_engine skipped its podman cases"; }
pass "test_engine against podman: $(grep -c '^\[       OK \]' "$T/te.out") cases ok"
