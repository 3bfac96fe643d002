#!/usr/bin/env bash
# Pulls from a private registry use `berth registry login`: an image pushed to Debian's
# docker-registry (htpasswd auth, plain HTTP on localhost) is refused to a deploy before the
# login (a clear error naming the registry's answer, the live release untouched), pulls and
# runs after it, with the pull's progress in the deploy; `--pull never` refuses an image the
# host does not have; the password is in no log.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/engine_lib.sh"
engine_available || { echo "skip [$TEST_NAME] $(engine_available)"; exit 0; }
command -v docker-registry >/dev/null 2>&1 || { echo "skip [$TEST_NAME] docker-registry is not installed"; exit 0; }
trap 'engine_cleanup; cleanup' EXIT
PW="Pull-pw-$RANDOM$RANDOM-z3"
if command -v htpasswd >/dev/null 2>&1; then
  htpasswd -nbB bob "$PW" | head -1 >"$T/htpasswd"
else
  python3 -W ignore -c 'import crypt, sys
print(sys.argv[1] + ":" + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))' bob "$PW" >"$T/htpasswd"
fi
REG_PORT=$(free_port)
REG="localhost:$REG_PORT"
cat >"$T/registry.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $T/registry-data}}
http: {addr: 127.0.0.1:$REG_PORT, secret: berth-test-secret}
auth: {htpasswd: {realm: berth-test, path: $T/htpasswd}}
YML
docker-registry serve "$T/registry.yml" >"$T/registry.log" 2>&1 &
BG_PIDS+=($!)
wait_for '[ "$(curl -s -o /dev/null -w "%{http_code}" http://$REG/v2/)" = 401 ]' 100 || fail "docker-registry did not start"
engine_init
printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REG" >"$ENGINE_TMP/registries.conf"
engine_start || fail "podman's service did not start"
ctr_import localhost/t-priv:1 "private one $MARK" || fail "podman import"
pod push --quiet --tls-verify=false --creds "bob:$PW" localhost/t-priv:1 "docker://$REG/team/priv:1" >"$T/push.log" 2>&1 ||
  fail "podman push to the registry failed: $(tail -3 "$T/push.log")"
pod rmi -f "$REG/team/priv:1" >/dev/null 2>&1
start_server --docker-host "$ENGINE_HOST"

OUT=$(b deploy --image "$REG/team/priv:1" --app priv --pull never 2>&1) && fail "--pull never deployed an image the host does not have"
assert_has "$OUT" "pulling is off" "--pull never says why"
OUT=$(b deploy --image "$REG/team/priv:1" --app priv 2>&1) && fail "a pull without credentials succeeded"
assert_has "$OUT" "could not pull $REG/team/priv:1" "the error names the image"
pass "before the login: --pull never and an unauthenticated pull fail clearly ($(echo "$OUT" | tail -1 | cut -c1-90)...)"

printf '%s\n' "$PW" | b registry login "$REG" --username bob >"$T/login.out" 2>&1 || { cat "$T/login.out"; fail "registry login failed"; }
# an engine build whose FROM is the private image: the build gets the credentials too
BD="$T/build"; mkdir -p "$BD"
printf 'FROM %s/team/priv:1\nRUN echo "built on the private base" > /www/index.html\n' "$REG" >"$BD/Dockerfile"
run_ok "$T/build.out" b deploy "$BD" --app privbuild
wait_for '[ "$(count_state privbuild)" = 1 ]' 100 || fail "the image built FROM the private base does not run"
OUT=$(b run --app privbuild -- cat /www/index.html 2>&1) || fail "run in the built image failed: $OUT"
assert_has "$OUT" "built on the private base" "the built image's content"
pass "a Dockerfile FROM the private registry builds with the stored credentials (X-Registry-Config)"
pod rmi -f "$REG/team/priv:1" >/dev/null 2>&1
run_ok "$T/d1.out" b deploy --image "$REG/team/priv:1" --app priv
grep -q "pull |" "$T/d1.out" || fail "the deploy shows no pull progress: $(cat "$T/d1.out")"
wait_for '[ "$(count_state priv)" = 1 ]' 100 || fail "the pulled image does not run"
DG=$(b ps --app priv --json | json 'd["instances"][0].get("image_digest") or ""')
assert_has "$DG" "@sha256:" "the pulled image is pinned by its registry digest"
OUT=$(b run --app priv -- cat /www/index.html 2>&1) || fail "run in the pulled image failed: $OUT"
assert_has "$OUT" "private one $MARK" "the pulled image's content"
grep -rqF "$PW" "$T/server.log" "$DATA" && fail "the registry password is in the server log or the data dir"
pass "after the login: pulled with progress, pinned by digest ${DG#*@}, runs; the password is in no log"
