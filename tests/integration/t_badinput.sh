#!/usr/bin/env bash
# Bad input of every kind: malformed manifests (through the CLI and straight to the API),
# bad scale/rollback/config arguments, an upload over the size limit, hostile tarballs, calls
# without a valid token or with a viewer token, malformed JSON, unknown paths, oversized
# headers and garbage on the API socket. Each gets a clear error, none changes what runs,
# nothing is written outside the data dir, and the server keeps serving throughout.
source "$(dirname "$0")/lib.sh"
mkdir -p "$T/data"
printf 'upload_limit: 1M\n' >"$T/data/server.yaml"
start_server
APP=bad
A="$BERTH_API/v1/envs/production/apps/$APP"

# tar_dir DIR OUT: a tar.gz of DIR's contents, as the CLI would upload it
tar_dir() {
  python3 - "$1" "$2" <<'PY'
import os, sys, tarfile
src, out = sys.argv[1], sys.argv[2]
with tarfile.open(out, "w:gz") as tf:
    for name in sorted(os.listdir(src)):
        tf.add(os.path.join(src, name), arcname=name)
PY
}

# upload FILE [TOKEN]: POST a tarball as a deploy; prints body then status
upload() {
  curl -s -X POST -H "Authorization: Bearer ${2:-$BERTH_TOKEN}" -H 'Content-Type: application/gzip' \
    --data-binary @"$1" -w '\n%{http_code}' "$A/deploys"
}

# expect_json_error OUT STATUS WHAT: OUT (body+status from api/upload) has STATUS and {"error"}
expect_json_error() {
  local got body
  got=$(http_code "$1"); body=$(http_body "$1")
  [ "$got" = "$2" ] || fail "$3: status $got, want $2 (body: $body)"
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert isinstance(d.get("error"), str) and d["error"]' "$body" 2>/dev/null \
    || fail "$3: body is not a JSON error: $body"
}

# the good app, v1
GOOD="$T/good"
mkdir -p "$GOOD"
printf 'web: exec python3 -m http.server $PORT --bind 127.0.0.1\n' >"$GOOD/Procfile"
echo "good" >"$GOOD/index.html"
(cd "$GOOD" && b deploy --app $APP) >"$T/d1.out" 2>&1 || { cat "$T/d1.out"; fail "good deploy failed"; }
WEBPID=$(pids_of $APP web)
PORT1=$(b ps --app $APP --json | json 'd["instances"][0]["port"]')
NREL=$(b releases --app $APP --json | json 'len(d["releases"])')
[ "$NREL" = 1 ] || fail "expected 1 release"

# untouched: v1 still the only release, same process, still serving
untouched() {
  [ "$(b releases --app $APP --json | json 'len(d["releases"])')" = "$NREL" ] || { b releases --app $APP; fail "$1: a release was created"; }
  [ "$(pids_of $APP web)" = "$WEBPID" ] || { b ps --app $APP; fail "$1: the web process changed"; }
  [ "$(b scale --app $APP)" = "web=1" ] || fail "$1: formation changed: $(b scale --app $APP)"
  curl -sf "http://127.0.0.1:$PORT1/" | grep -q good || fail "$1: v1 no longer serves"
  ls "$DATA/releases/production/$APP" | grep -c '^code-' | grep -qx "${NCODE:-1}" || fail "$1: a release dir appeared: $(ls "$DATA/releases/production/$APP")"
}

# ---- malformed manifests, through the CLI (checked locally) and straight to the API
BADY="$T/bady"
mkdir -p "$BADY"
cp "$GOOD/index.html" "$BADY/"
# bad_manifest FILE CONTENT POSITION NEEDLE
bad_manifest() {
  rm -f "$BADY/berth.yaml" "$BADY/Procfile"
  printf '%b' "$2" >"$BADY/$1"
  local rc=0
  (cd "$BADY" && b deploy --app $APP) >"$T/bm.out" 2>"$T/bm.err" || rc=$?
  [ $rc != 0 ] || fail "deploy of a bad $1 ($4) exited 0"
  grep -q "$1:$3: " "$T/bm.err" || { cat "$T/bm.err"; fail "CLI error for bad $1 lacks position $1:$3"; }
  grep -qF "$4" "$T/bm.err" || { cat "$T/bm.err"; fail "CLI error for bad $1 lacks '$4'"; }
  tar_dir "$BADY" "$T/bm.tgz"
  local out
  out=$(upload "$T/bm.tgz")
  expect_json_error "$out" 400 "upload of a bad $1 ($4)"
  local msg
  msg=$(http_body "$out" | json 'd["error"]')
  grep -q "$1:$3: " <<<"$msg" || fail "API error for bad $1 lacks $1:$3: $msg"
  grep -qF "$4" <<<"$msg" || fail "API error for bad $1 lacks '$4': $msg"
}
bad_manifest berth.yaml 'processes:\n  web:\n    command: foo\n     instances: 2\n' 4:15 "YAML syntax error"
bad_manifest berth.yaml 'processes:\n  web:\n    comand: foo\n' 3:5 'unknown key "comand"'
bad_manifest berth.yaml 'processes:\n  web:\n    command: foo\n    instances: two\n' 4:16 'expected a non-negative integer, got "two"'
bad_manifest berth.yaml 'processes:\n  web:\n    command: foo\n    stop_grace: 2w\n' 4:17 'expected a duration'
bad_manifest berth.yaml 'processes:\n  web:\n    command: foo\n    health:\n      http: /\n      deadline: -1s\n' 6:17 'expected a duration'
bad_manifest berth.yaml 'processes:\n  web:\n    command: [a, b]\n' 3:14 'processes.web.command'
bad_manifest Procfile 'web: ok\nworker exec sleep 1\n' 2:7 "expected ':'"
bad_manifest Procfile 'web: ok\nweb: again\n' 2:1 'duplicate process'
untouched "after malformed manifests"
pass "malformed berth.yaml/Procfile: CLI and API name file:line:col and the problem; v1 untouched"

# ---- scale, rollback, config: bad arguments (CLI) and bad bodies (API)
expect_cli() { # EXPECTED-RC NEEDLE CMD...
  local want=$1 needle=$2 rc=0; shift 2
  b "$@" >"$T/cli.out" 2>"$T/cli.err" || rc=$?
  [ "$rc" = "$want" ] || { cat "$T/cli.out" "$T/cli.err"; fail "'berth $*' exited $rc, want $want"; }
  grep -qF -- "$needle" "$T/cli.err" || { cat "$T/cli.err"; fail "'berth $*': no '$needle' in the error"; }
}
expect_cli 1 'unknown process "nope"' scale nope=1 --app $APP
expect_cli 2 'non-negative integer' scale web=-1 --app $APP
expect_cli 2 'non-negative integer' scale web=x --app $APP
expect_cli 2 'non-negative integer' scale web=99999999999999999999 --app $APP
expect_cli 1 'no release v99' rollback v99 --app $APP
expect_cli 1 'no release v99' rollback 99 --app $APP
expect_cli 2 '1BAD' config set 1BAD=x --app $APP
expect_cli 2 'KEY=VALUE' config set NOEQ --app $APP
expect_cli 1 'nothing to roll back to' rollback --app $APP     # nothing before v1
out=$(api POST "/v1/envs/production/apps/$APP/scale" -d '{"formation":{"web":-1}}'); expect_json_error "$out" 400 "scale web=-1"
out=$(api POST "/v1/envs/production/apps/$APP/scale" -d '{"formation":{"web":"2"}}'); expect_json_error "$out" 400 "scale web=\"2\""
out=$(api POST "/v1/envs/production/apps/$APP/scale" -d '{"formation":{"web":1.5}}'); expect_json_error "$out" 400 "scale web=1.5"
out=$(api POST "/v1/envs/production/apps/$APP/scale" -d '{"formation":{"nope":1}}')
case $(http_code "$out") in 400|404) expect_json_error "$out" "$(http_code "$out")" "scale nope=1" ;; *) fail "scale nope=1: status $(http_code "$out")" ;; esac
out=$(api POST "/v1/envs/production/apps/$APP/scale" -d '{"formation":"web=2"}'); expect_json_error "$out" 400 "formation as a string"
out=$(api POST "/v1/envs/production/apps/$APP/rollback" -d '{"version":99}'); expect_json_error "$out" 404 "rollback to v99"
out=$(api POST "/v1/envs/production/apps/$APP/rollback" -d '{"version":"x"}'); expect_json_error "$out" 400 "rollback to \"x\""
out=$(api POST "/v1/envs/production/apps/$APP/config" -d '{"set":{"1BAD":"x"}}'); expect_json_error "$out" 400 "config key 1BAD"
out=$(api POST "/v1/envs/production/apps/$APP/config" -d '{"set":{"A":1}}'); expect_json_error "$out" 400 "config value not a string"
out=$(api POST "/v1/envs/production/apps/$APP/config" -d '{"unset":"A"}'); expect_json_error "$out" 400 "unset not a list"
out=$(api GET "/v1/envs/production/apps/nope"); expect_json_error "$out" 404 "unknown app"
out=$(api GET "/v1/envs/production/apps/$APP/releases/99"); expect_json_error "$out" 404 "unknown release"
out=$(api GET "/v1/envs/production/apps/BAD_NAME"); case $(http_code "$out") in 400|404) ;; *) fail "bad app name: $(http_code "$out")" ;; esac
untouched "after bad scale/rollback/config"
pass "bad scale/rollback/config: clear CLI errors (exit 2 before sending, 1 when refused), 4xx JSON from the API"

# ---- upload size limit (server.yaml upload_limit: 1M)
BIG="$T/big"
mkdir -p "$BIG"
cp "$GOOD/Procfile" "$BIG/"
head -c 2000000 /dev/urandom >"$BIG/blob.bin"
rc=0; (cd "$BIG" && b deploy --app $APP) >"$T/big.out" 2>"$T/big.err" || rc=$?
[ $rc = 1 ] || { cat "$T/big.out" "$T/big.err"; fail "2 MB upload over a 1M limit exited $rc"; }
grep -qi "too large" "$T/big.err" || { cat "$T/big.err"; fail "the over-limit error does not say the upload is too large"; }
tar_dir "$BIG" "$T/big.tgz"
out=$(upload "$T/big.tgz"); expect_json_error "$out" 413 "2 MB raw upload"
# a body that claims to be huge is refused before it is sent
out=$(curl -s -X POST -H "Authorization: Bearer $BERTH_TOKEN" -H 'Content-Type: application/gzip' \
  -H 'Content-Length: 50000000000' -w '\n%{http_code}' --max-time 10 --data-binary @"$T/bm.tgz" "$A/deploys" 2>/dev/null || true)
[ "$(http_code "$out")" = 413 ] || fail "a huge Content-Length got $(http_code "$out")"
# a small upload that unpacks to far more than the limit (a "zip bomb") is refused too
python3 - "$T/bomb.tgz" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as tf:
    for name, data in (("Procfile", b"web: exec python3 -m http.server $PORT --bind 127.0.0.1\n"),
                       ("zeros", b"\0" * (64 << 20))):
        ti = tarfile.TarInfo(name); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
PY
[ "$(stat -c %s "$T/bomb.tgz")" -lt 1000000 ] || fail "test precondition: the bomb is not small"
out=$(upload "$T/bomb.tgz")
case $(http_code "$out") in 400|413) expect_json_error "$out" "$(http_code "$out")" "64 MiB unpacked from a small upload" ;; *) fail "bomb: status $(http_code "$out"): $(http_body "$out" | tail -c 300)" ;; esac
# not a tarball at all, an empty body, a tarball without a manifest
printf 'this is not a tarball\n' >"$T/junk.bin"
out=$(upload "$T/junk.bin"); expect_json_error "$out" 400 "a body that is not a tar.gz"
: >"$T/empty.bin"
out=$(upload "$T/empty.bin"); expect_json_error "$out" 400 "an empty body"
mkdir -p "$T/nomanifest"; echo hi >"$T/nomanifest/index.html"
tar_dir "$T/nomanifest" "$T/nomanifest.tgz"
out=$(upload "$T/nomanifest.tgz"); expect_json_error "$out" 400 "a tarball without berth.yaml or Procfile"
http_body "$out" | grep -q "no berth.yaml or Procfile" || fail "no-manifest error: $(http_body "$out")"
gzip -c "$T/nomanifest.tgz" | head -c 60 >"$T/trunc.tgz"
out=$(upload "$T/trunc.tgz"); expect_json_error "$out" 400 "a truncated tar.gz"
untouched "after the oversized uploads"
[ -z "$(ls -A "$DATA/tmp" 2>/dev/null)" ] || fail "upload leftovers in DATA/tmp: $(ls -A "$DATA/tmp")"
[ -z "$(find "$DATA/releases" -name '.unpack*' 2>/dev/null)" ] || fail "unpack leftovers: $(find "$DATA/releases" -name '.unpack*')"
pass "uploads over upload_limit (1M) or unpacking past it: 413 JSON, CLI says too large; junk/empty/truncated/manifest-less bodies: 400"

# ---- hostile tarballs
CANARY="$T/canary"
mkdir -p "$CANARY"
echo original >"$CANARY/target"
NAME=$(basename "$T")
hostile() { # KIND OUT
  python3 - "$1" "$2" "$CANARY" "$NAME" <<'PY'
import io, sys, tarfile
kind, out, canary, name = sys.argv[1:5]
up = "../" * 16
buf = io.BytesIO()
tf = tarfile.open(fileobj=buf, mode="w:gz")
def add_file(n, data=b"pwned\n"):
    ti = tarfile.TarInfo(n); ti.size = len(data); ti.mode = 0o644
    tf.addfile(ti, io.BytesIO(data))
def add_link(n, target, typ):
    ti = tarfile.TarInfo(n); ti.type = typ; ti.linkname = target
    tf.addfile(ti)
add_file("Procfile", b"web: exec python3 -m http.server $PORT --bind 127.0.0.1\n")
if kind == "absolute":
    add_file(canary + "/abs-" + name)
elif kind == "dotdot":
    add_file("../escape-" + name)
elif kind == "dotdot-deep":
    add_file(up + canary.lstrip("/") + "/deep-" + name)
elif kind == "dotdot-inner":
    add_file("sub/../../inner-" + name)
elif kind == "symlink-etc":
    add_link("etc", "/etc", tarfile.SYMTYPE)
    add_file("etc/berth-canary-" + name)
elif kind == "symlink-up":
    add_link("up", up + canary.lstrip("/"), tarfile.SYMTYPE)
    add_file("up/via-symlink-" + name)
elif kind == "device":
    ti = tarfile.TarInfo("null"); ti.type = tarfile.CHRTYPE; ti.devmajor = 1; ti.devminor = 3
    tf.addfile(ti)
elif kind == "blockdev":
    ti = tarfile.TarInfo("sda"); ti.type = tarfile.BLKTYPE; ti.devmajor = 8; ti.devminor = 0
    tf.addfile(ti)
elif kind == "hardlink":
    add_link("hl", canary + "/target", tarfile.LNKTYPE)
    add_file("hl", b"overwritten\n")
elif kind == "hardlink-up":
    add_link("hl2", up + canary.lstrip("/") + "/target", tarfile.LNKTYPE)
    add_file("hl2", b"overwritten\n")
tf.close()
open(out, "wb").write(buf.getvalue())
PY
}
# kind -> the entry the error must name
for spec in "absolute:$CANARY/abs-$NAME" "dotdot:../escape-$NAME" "dotdot-deep:deep-$NAME" \
  "dotdot-inner:sub/../../inner-$NAME" "symlink-etc:\"etc\"" "symlink-up:\"up\"" "device:\"null\"" \
  "blockdev:\"sda\"" "hardlink:\"hl\"" "hardlink-up:\"hl2\""; do
  kind=${spec%%:*}; entry=${spec#*:}
  hostile "$kind" "$T/h.tgz"
  out=$(upload "$T/h.tgz")
  expect_json_error "$out" 400 "hostile tarball ($kind)"
  msg=$(http_body "$out" | json 'd["error"]')
  grep -qF -- "$entry" <<<"$msg" || fail "hostile tarball ($kind): the error does not name the entry $entry: $msg"
  kill -0 "$SRV_PID" || fail "server died on the hostile tarball ($kind)"
done
[ "$(cat "$CANARY/target")" = original ] || fail "the hard-link target outside the data dir was overwritten"
[ "$(ls "$CANARY")" = target ] || fail "files written into the canary dir: $(ls "$CANARY")"
[ ! -e "/etc/berth-canary-$NAME" ] || { rm -f "/etc/berth-canary-$NAME"; fail "a file was written into /etc through a symlink"; }
LEAKED=$(find /tmp "$T" -xdev \( -name "*-$NAME" -o -name "via-symlink-*" \) ! -path "$T" 2>/dev/null | grep -v "^$T/canary$" || true)
[ -z "$LEAKED" ] || fail "files written outside the release: $LEAKED"
[ -z "$(ls -A "$DATA/tmp" 2>/dev/null)" ] || fail "upload leftovers in DATA/tmp: $(ls -A "$DATA/tmp")"
# a symlink that stays inside the release is fine
mkdir -p "$T/inner/static"
cp "$GOOD/Procfile" "$GOOD/index.html" "$T/inner/"
echo hi >"$T/inner/static/a.txt"
ln -s static/a.txt "$T/inner/link.txt"
tar_dir "$T/inner" "$T/inner.tgz"
out=$(upload "$T/inner.tgz")
[ "$(http_code "$out")" = 200 ] || fail "a tarball with an inner symlink was refused: $out"
http_body "$out" | grep '"event":"done"' | grep -q '"ok":true' || fail "the deploy with an inner symlink failed: $(http_body "$out")"
NREL=2; NCODE=2
WEBPID=$(pids_of $APP web)
PORT1=$(b ps --app $APP --json | json 'd["instances"][0]["port"]')
[ "$(curl -s "http://127.0.0.1:$PORT1/link.txt")" = hi ] || fail "inner symlink not served"
pass "hostile tarballs (absolute, .., symlinks out, devices, hard links) refused with 400 naming the entry; nothing written outside"

# ---- authentication and authorisation
out=$(curl -s -w '\n%{http_code}' -X POST -d '{"formation":{"web":3}}' "$A/scale"); expect_json_error "$out" 401 "scale without a token"
out=$(curl -s -w '\n%{http_code}' -X POST -H 'Content-Type: application/gzip' --data-binary @"$T/inner.tgz" "$A/deploys"); expect_json_error "$out" 401 "deploy without a token"
out=$(curl -s -w '\n%{http_code}' -X POST -H 'Authorization: Bearer berth_wrong' -d '{"set":{"X":"1"}}' "$A/config"); expect_json_error "$out" 401 "config with a wrong token"
out=$(curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer ${BERTH_TOKEN}x" -d '{"formation":{"web":3}}' "$A/scale"); expect_json_error "$out" 401 "token with an extra byte"
out=$(curl -s -w '\n%{http_code}' -X DELETE -H "Authorization: Basic $BERTH_TOKEN" "$A"); expect_json_error "$out" 401 "delete with a non-bearer scheme"
out=$(curl -s -w '\n%{http_code}' -H "Authorization: Bearer" "$BERTH_API/v1/apps"); expect_json_error "$out" 401 "empty bearer"
curl -s -D - -o /dev/null "$BERTH_API/v1/apps" | grep -qi '^content-type: application/json' || fail "401 is not served as application/json"
rc=0; BERTH_TOKEN=berth_wrong b ps --app $APP >"$T/wt.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -qi "token" "$T/wt.out" || { cat "$T/wt.out"; fail "CLI with a wrong token: exit $rc"; }
VT=$(b tokens create "viewer-$RANDOM" --role viewer 2>/dev/null) || fail "tokens create failed"
[[ "$VT" == berth_* ]] || fail "tokens create printed '$VT'"
BERTH_TOKEN=$VT b ps --app $APP >/dev/null || fail "viewer cannot run ps"
BERTH_TOKEN=$VT b releases --app $APP >/dev/null || fail "viewer cannot list releases"
BERTH_TOKEN=$VT b logs --app $APP -n 5 >/dev/null || fail "viewer cannot read logs"
out=$(curl -s -w '\n%{http_code}' -H "Authorization: Bearer $VT" "$BERTH_API/v1/apps"); [ "$(http_code "$out")" = 200 ] || fail "viewer GET /v1/apps: $(http_code "$out")"
out=$(upload "$T/inner.tgz" "$VT"); expect_json_error "$out" 403 "viewer deploy"
out=$(curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer $VT" -d '{"formation":{"web":3}}' "$A/scale"); expect_json_error "$out" 403 "viewer scale"
out=$(curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer $VT" -d '{"name":"x","role":"admin"}' "$BERTH_API/v1/tokens"); expect_json_error "$out" 403 "viewer creating a token"
rc=0; (cd "$GOOD" && BERTH_TOKEN=$VT b deploy --app $APP) >"$T/vd.out" 2>&1 || rc=$?
[ $rc = 1 ] || { cat "$T/vd.out"; fail "viewer deploy via CLI exited $rc"; }
rc=0; BERTH_TOKEN=$VT b scale web=3 --app $APP >"$T/vs.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "role viewer\|may only read\|403\|not allowed" "$T/vs.out" || { cat "$T/vs.out"; fail "viewer scale via CLI: exit $rc"; }
untouched "after unauthorised calls"
pass "no/wrong token -> 401 JSON, viewer reads but gets 403 on deploy/scale/tokens; nothing changed"

# ---- malformed requests
out=$(api POST "/v1/envs/production/apps/$APP/scale" -d '{"formation":'); expect_json_error "$out" 400 "truncated JSON"
out=$(api POST "/v1/envs/production/apps/$APP/scale" -d 'not json at all'); expect_json_error "$out" 400 "not JSON"
out=$(api POST "/v1/envs/production/apps/$APP/scale" -d '[1,2]'); expect_json_error "$out" 400 "JSON array body"
out=$(api POST "/v1/envs/production/apps/$APP/scale" --data-binary $'{"formation":{"web\x00":1}}'); case $(http_code "$out") in 400|404) ;; *) fail "NUL in a JSON key: $(http_code "$out")" ;; esac
python3 -c 'print("{\"formation\":" + "["*100000 + "]"*100000 + "}")' >"$T/deep.json"
out=$(api POST "/v1/envs/production/apps/$APP/scale" --data-binary @"$T/deep.json"); case $(http_code "$out") in 400|413) ;; *) fail "deeply nested JSON: $(http_code "$out")" ;; esac
out=$(api GET "/v1/no/such/path"); expect_json_error "$out" 404 "unknown path"
out=$(api GET "/nope"); expect_json_error "$out" 404 "unknown path outside /v1"
out=$(api DELETE "/v1/apps"); case $(http_code "$out") in 404|405) expect_json_error "$out" "$(http_code "$out")" "wrong method" ;; *) fail "DELETE /v1/apps: $(http_code "$out")" ;; esac
out=$(curl -s -w '\n%{http_code}' -H "X-Big: $(head -c 70000 /dev/zero | tr '\0' a)" "$BERTH_API/healthz"); [ "$(http_code "$out")" = 431 ] || fail "oversized header: $(http_code "$out")"
hdrs=(); for i in $(seq 1 300); do hdrs+=(-H "X-H$i: v"); done
out=$(curl -s -w '\n%{http_code}' "${hdrs[@]}" "$BERTH_API/healthz"); [ "$(http_code "$out")" = 431 ] || fail "300 headers: $(http_code "$out")"
out=$(curl -s -w '\n%{http_code}' "$BERTH_API/v1/$(head -c 100000 /dev/zero | tr '\0' a)"); case $(http_code "$out") in 414|431|400|404) ;; *) fail "100 kB URL: $(http_code "$out")" ;; esac
untouched "after malformed requests"
pass "malformed JSON -> 400 JSON, unknown path -> 404 JSON, oversized headers -> 431"

# ---- garbage on the socket
python3 - "$API_PORT" <<'PY' || fail "garbage sender failed"
import os, socket, sys, time
port = int(sys.argv[1])
def send(data, read=True, shut=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        if read:
            try:
                s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        s.close()
rnd = os.urandom
for k in range(20):
    send(rnd(4096), shut=True)
send(b"\x00" * 100000, shut=True)
send(b"GET / HTTP/1.1\r\n", read=False)                       # half a request, then gone
send(b"POST /v1/apps HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc", read=False)
send(b"GET /healthz HTTP/9.9\r\n\r\n", shut=True)
send(b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", shut=True)
send(b"POST /v1/apps HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\n", shut=True)
send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 500, shut=True)   # pipelined, never read
send(b"\r\n" * 10000 + b"GET /healthz HTTP/1.1\r\n\r\n", shut=True)
# many idle connections at once, then all dropped
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
for s in socks:
    s.close()
PY
kill -0 "$SRV_PID" || fail "the server died on garbage input"
curl -s "$BERTH_API/healthz" | grep -q '^{"ok":true,' || fail "healthz after garbage: $(curl -s "$BERTH_API/healthz")"
b ps --app $APP >/dev/null || fail "ps fails after garbage"
untouched "after garbage on the socket"
# and it still does real work
b scale web=2 --app $APP >"$T/sc.out" 2>&1 || { cat "$T/sc.out"; fail "scale after all the bad input failed"; }
[ "$(count_proc $APP web)" = 2 ] || fail "scale to 2 did not happen"
grep -qiE "AddressSanitizer|runtime error|assert" "$T/server.log" && fail "the server log shows a sanitizer/assert report"
pass "garbage bytes, half requests, pipelining floods, 200 idle connections: the server survives and keeps working"
