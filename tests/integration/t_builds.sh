#!/usr/bin/env bash
# The build stage of `berth deploy`, as a user sees it: the python builder installs
# requirements.txt (from a local wheel directory named in server.yaml `builds:`, no PyPI) into
# a virtualenv that is first on the web's PATH; a redeploy of changed code with the same
# requirements installs nothing and keeps the very same virtualenv; --no-cache installs again.
# The node builder runs `npm ci` for a committed lockfile (tests/fixtures/node-app, one tiny
# package required at runtime) and `npm run build`; a go app builds when go is installed.
# A build: command that fails, times out or floods its output fails the deploy with its last
# lines while the live release keeps serving; a malformed lockfile is an error naming the file;
# .berthignore'd files, .git and a local .venv / node_modules never reach the server.
source "$(dirname "$0")/lib.sh"
FIX=$(cd "$(dirname "$0")/../fixtures" && pwd)
python3 -c 'import venv, ensurepip' 2>/dev/null || fail "python3 cannot make a virtualenv here (apt-get install python3-venv)"
TOK=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')

# a wheel pip can only find through builds.pip_find_links; PIP_NO_INDEX keeps PyPI out of it
W="$T/wheels"
python3 "$FIX/make_wheel.py" berthprobe 1.0 "wheel-$TOK" "$W" || fail "could not write the test wheel"
mkdir -p "$T/data"
cat >"$T/data/server.yaml" <<YAML
builds:
  pip_find_links: $W
  output_limit: 2MB
  env:
    PIP_NO_INDEX: "1"
    PIP_DEFAULT_TIMEOUT: "5"
    PIP_RETRIES: "0"
YAML
start_server_net
RDATA=$(realpath "$DATA")

# web_pid APP / web_port APP: of the running web.1
web_pid() { b ps --app "$1" --json | json '[i["pid"] for i in d["instances"] if i["id"]=="web.1" and i["state"]=="running"][0]'; }
web_port() { b ps --app "$1" --json | json '[i["port"] for i in d["instances"] if i["id"]=="web.1" and i["state"]=="running"][0]'; }
# env_of PID VAR: a variable of a running process's environment
env_of() { tr '\0' '\n' <"/proc/$1/environ" | sed -n "s/^$2=//p"; }
nrel() { b releases --app "$1" --json | json 'len(d["releases"])'; }

# ================= python: requirements.txt from local wheels
P="$T/py"
mkdir -p "$P/.git" "$P/.venv/bin"
cat >"$P/app.py" <<'PY'
import http.server, os, berthprobe
body = ("%s %s\n" % (berthprobe.MARK, open("version.txt").read().strip())).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
PY
echo 'web: exec python3 app.py' >"$P/Procfile"
echo 'berthprobe==1.0' >"$P/requirements.txt"
echo v1 >"$P/version.txt"
# left out of the upload: a .berthignore'd file, .git, and a (broken) local virtualenv
echo "secret.txt" >"$P/.berthignore"
echo "SECRET=secret-$TOK" >"$P/secret.txt"
printf '[core]\n\tgitmark = gitmark-%s\n' "$TOK" >"$P/.git/config"
ln -s /nonexistent/bin/python3 "$P/.venv/bin/python3"
echo "venvmark-$TOK" >"$P/.venv/pyvenv.cfg"

run_ok "$T/p1.out" b deploy "$P" --app py
OUT=$(cat "$T/p1.out")
assert_has "$OUT" "-----> building with the python builder (requirements.txt)" "python deploy"
assert_has "$OUT" "       build | -----> python: installing dependencies from requirements.txt" "python deploy"
assert_has "$OUT" "       build | Successfully installed berthprobe-1.0" "python deploy (pip's own output)"
assert_has "$OUT" "-----> v1 is live" "python deploy"
grep -q -- "-----> Packed 5 files .*left out 1 file and 2 directories" "$T/p1.out" ||
  { cat "$T/p1.out"; fail "the pack line does not say 5 files packed, 1 file and 2 directories left out"; }
PID1=$(web_pid py)
assert_eq "$(curl -s -m 5 "http://127.0.0.1:$(web_port py)/")" "wheel-$TOK v1" "python v1 (the wheel imported at runtime)"
assert_eq "$(rcurl py.localhost /)" "wheel-$TOK v1" "python v1 through the router"
RDIR1=$(readlink "/proc/$PID1/cwd")
case "$RDIR1" in "$RDATA/releases/production/py/"*) ;; *) fail "web runs in $RDIR1, not in a release dir under $RDATA/releases" ;; esac
assert_eq "$(cd "$RDIR1" && find . -path ./.berth -prune -o -print | sort | tr '\n' ' ')" \
  ". ./.berthignore ./Procfile ./app.py ./requirements.txt ./version.txt " "files of the python release"
[ -e "$RDIR1/secret.txt" ] && fail ".berthignore'd secret.txt reached the release dir"
[ -z "$(find "$RDATA" -name .git)" ] || fail ".git reached the data dir: $(find "$RDATA" -name .git)"
leak=$(python3 - "$RDATA" "secret-$TOK" "gitmark-$TOK" "venvmark-$TOK" <<'PY'
import gzip, os, sys
root, marks = sys.argv[1], [m.encode() for m in sys.argv[2:]]
for d, dirs, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        try:
            if os.path.islink(p) or not os.path.isfile(p): continue
            b = open(p, "rb").read()
            if b[:2] == b"\x1f\x8b": b += gzip.decompress(b)
        except Exception:
            continue
        for m in marks:
            if m in b: print(p, m.decode())
PY
)
[ -z "$leak" ] || fail "left-out files reached the server: $leak"
# the virtualenv: built by the server in its cache, first on the web's PATH
VENV=$(readlink -f "$RDIR1/.berth/venv")
case "$VENV" in "$RDATA/cache/production/py/python/"*) ;; *) fail "the release's .berth/venv points to $VENV, not into the app's cache" ;; esac
[ -x "$VENV/bin/python" ] || fail "no python in the virtualenv $VENV"
assert_eq "$(env_of "$PID1" PATH | cut -d: -f1)" "$RDIR1/.berth/venv/bin" "first entry of the web's PATH"
SITE=$(echo "$VENV"/lib/python3*/site-packages/berthprobe)
[ -f "$SITE/__init__.py" ] || fail "berthprobe is not installed in $VENV"
STAT1=$(stat -c '%i %y' "$VENV" "$SITE" "$VENV/bin/python")
pass "python: requirements.txt installed from local wheels into a cached virtualenv, first on PATH; left-out files never uploaded"

# --- only the code changes: nothing is installed, the very same virtualenv serves the new code
echo v2 >"$P/version.txt"
run_ok "$T/p2.out" b deploy "$P" --app py
OUT=$(cat "$T/p2.out")
assert_has "$OUT" "-----> building with the python builder (requirements.txt, dependencies unchanged)" "redeploy"
assert_has "$OUT" "build | -----> python: dependencies unchanged (requirements.txt" "redeploy"
assert_has "$OUT" "reusing them, nothing to install" "redeploy"
assert_lacks "$OUT" "installing dependencies" "redeploy"
assert_lacks "$OUT" "Successfully installed" "redeploy"
assert_has "$OUT" "-----> v2 is live" "redeploy"
PID2=$(web_pid py)
[ "$PID2" != "$PID1" ] || fail "the web was not replaced by the redeploy"
assert_eq "$(curl -s -m 5 "http://127.0.0.1:$(web_port py)/")" "wheel-$TOK v2" "python v2 answer"
RDIR2=$(readlink "/proc/$PID2/cwd")
[ "$RDIR2" != "$RDIR1" ] || fail "v2 runs in v1's release dir"
assert_eq "$(readlink -f "$RDIR2/.berth/venv")" "$VENV" "v2's virtualenv"
assert_eq "$(stat -c '%i %y' "$VENV" "$SITE" "$VENV/bin/python")" "$STAT1" "inode and mtime of the virtualenv after a redeploy with the same requirements"
pass "python: a redeploy of changed code installs nothing, keeps the same virtualenv, serves the new code"

# --- --no-cache: installed again, into a fresh virtualenv
run_ok "$T/p3.out" b deploy "$P" --app py --no-cache
OUT=$(cat "$T/p3.out")
assert_has "$OUT" "build | -----> python: installing dependencies from requirements.txt" "--no-cache deploy"
assert_has "$OUT" "build | Successfully installed berthprobe-1.0" "--no-cache deploy"
assert_lacks "$OUT" "nothing to install" "--no-cache deploy"
PID3=$(web_pid py)
VENV3=$(readlink -f "$(readlink "/proc/$PID3/cwd")/.berth/venv")
[ "$VENV3" != "$VENV" ] || fail "--no-cache reused the virtualenv $VENV"
[ -x "$VENV3/bin/python" ] || fail "no python in the fresh virtualenv $VENV3"
assert_eq "$(curl -s -m 5 "http://127.0.0.1:$(web_port py)/")" "wheel-$TOK v2" "python after --no-cache"
log_text py production --process build >"$T/buildlog.txt"
grep -q "| Successfully installed berthprobe-1.0" "$T/buildlog.txt" || { cat "$T/buildlog.txt"; fail "logs --process build lacks pip's output"; }
grep -q "| -----> python: dependencies unchanged .*nothing to install" "$T/buildlog.txt" || { cat "$T/buildlog.txt"; fail "logs --process build lacks the cached build"; }
pass "python: --no-cache installs again into a new virtualenv; build output in logs --process build"

# --- only a pyproject.toml: its declared dependencies are cached, the app's own code is not
Q=$T/pyproj; mkdir -p "$Q"
cat >"$Q/pyproject.toml" <<'TOML'
[project]
name = "pyproj-app"
version = "0.1"
dependencies = ["berthprobe==1.0"]
TOML
cp "$P/app.py" "$Q/app.py" 2>/dev/null || fail "test precondition: no app.py in $P"
cp "$P/Procfile" "$Q/Procfile"
echo q1 >"$Q/version.txt"
run_ok "$T/q1.out" b deploy "$Q" --app pq
assert_has "$(cat "$T/q1.out")" "build | Successfully installed berthprobe-1.0" "pyproject.toml deploy"
assert_eq "$(curl -s -m 5 "http://127.0.0.1:$(web_port pq)/")" "wheel-$TOK q1" "pyproject app answer"
echo q2 >"$Q/version.txt"
run_ok "$T/q2.out" b deploy "$Q" --app pq
assert_has "$(cat "$T/q2.out")" "nothing to install" "pyproject.toml redeploy"
assert_eq "$(curl -s -m 5 "http://127.0.0.1:$(web_port pq)/")" "wheel-$TOK q2" "pyproject app answer after a code change"
pass "python: with only pyproject.toml its dependencies are cached; a code change is served without installing"

# ================= node: npm ci from a committed lockfile, npm run build, a package used at runtime
N="$T/node"
cp -r "$FIX/node-app" "$N"
echo v1 >"$N/version.txt"
mkdir -p "$N/node_modules/stale-$TOK"   # a local node_modules the builder recreates: left out
echo "junk" >"$N/node_modules/stale-$TOK/index.js"
run_ok "$T/n1.out" b deploy "$N" --app nd
OUT=$(cat "$T/n1.out")
assert_has "$OUT" "-----> building with the node builder (package-lock.json)" "node deploy"
assert_has "$OUT" "build | -----> node: installing dependencies from package-lock.json" "node deploy"
assert_has "$OUT" "build | -----> node: npm run build" "node deploy"
assert_has "$OUT" "build | fixture build script wrote build.txt" "node deploy (npm run build)"
grep -q -- "-----> Packed .*left out .*node_modules" "$T/n1.out" || { cat "$T/n1.out"; fail "the pack line does not say node_modules was left out"; }
NPID=$(web_pid nd)
NBODY=$(curl -s -m 5 "http://127.0.0.1:$(web_port nd)/")
assert_has "$NBODY" 'node v1 is-number("42")=true is-number("x")=false NODE_ENV=production built ' "node answer"
assert_has "$NBODY" "is-number(7)=true" "node answer (build.txt written by npm run build)"
NDIR=$(readlink "/proc/$NPID/cwd")
[ -L "$NDIR/node_modules" ] || fail "the node release's node_modules is not the builder's"
case "$(readlink -f "$NDIR/node_modules")" in "$RDATA/cache/production/nd/node/"*) ;; *) fail "node_modules points to $(readlink -f "$NDIR/node_modules")" ;; esac
[ -e "$NDIR/node_modules/stale-$TOK" ] && fail "the local node_modules reached the release"
assert_eq "$(json 'd["version"]' <"$NDIR/node_modules/is-number/package.json")" 7.0.0 "installed is-number"
[[ ":$(env_of "$NPID" PATH):" == *":$NDIR/node_modules/.bin:"* ]] || fail "node_modules/.bin not on the web's PATH: $(env_of "$NPID" PATH)"
echo v2 >"$N/version.txt"
run_ok "$T/n2.out" b deploy "$N" --app nd
assert_has "$(cat "$T/n2.out")" "build | -----> node: dependencies unchanged (package-lock.json" "node redeploy"
assert_lacks "$(cat "$T/n2.out")" "installing dependencies" "node redeploy"
assert_has "$(curl -s -m 5 "http://127.0.0.1:$(web_port nd)/")" 'node v2 is-number("42")=true' "node v2 answer"
pass "node: npm ci from package-lock.json, npm run build, is-number required at runtime; a redeploy reuses node_modules"

# --- a malformed package-lock.json: an error naming the file, nothing changes
NPID=$(web_pid nd); NREL=$(nrel nd)
printf '{\n  "name": "berth-node-fixture",\n  "lockfileVersion": 3,\n  "packages": {\n' >"$N/package-lock.json"
rc=0; b deploy "$N" --app nd >"$T/n3.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$T/n3.out"; fail "deploy with a malformed package-lock.json exited $rc, want 1"; }
grep -q "berth: package-lock.json:[0-9]*:[0-9]*: not valid JSON" "$T/n3.out" || { cat "$T/n3.out"; fail "the error does not name package-lock.json:line:col"; }
assert_eq "$(web_pid nd)" "$NPID" "node web pid after the malformed lockfile"
assert_eq "$(nrel nd)" "$NREL" "node releases after the malformed lockfile"
assert_has "$(curl -s -m 5 "http://127.0.0.1:$(web_port nd)/")" "node v2 " "node still serving"
pass "node: a malformed package-lock.json fails the deploy naming the file; v2 keeps serving"

# ================= go (only where go is installed)
if command -v go >/dev/null; then
  G="$T/goapp"; mkdir -p "$G"
  printf 'module example.com/berthgo\n\ngo 1.18\n' >"$G/go.mod"
  cat >"$G/main.go" <<'GO'
package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "go %s\n", os.Getenv("BERTH_RELEASE")) })
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
GO
  echo 'web: exec berthgo' >"$G/Procfile"
  run_ok "$T/g1.out" b deploy "$G" --app gob
  assert_has "$(cat "$T/g1.out")" "build | -----> go: go build -o bin/ ./..." "go deploy"
  assert_eq "$(curl -s -m 5 "http://127.0.0.1:$(web_port gob)/")" "go 1" "go answer (bin/berthgo found on PATH)"
  [ -x "$(readlink "/proc/$(web_pid gob)/cwd")/bin/berthgo" ] || fail "no bin/berthgo in the go release"
  pass "go: go build -o bin/ ./..., the binary on PATH"
else
  echo "skip [$TEST_NAME] go builder: no go on this machine"
fi

# ================= build: commands that fail
BF="$T/bf"; mkdir -p "$BF"
echo "bf index" >"$BF/index.html"
bf_manifest() { # BUILD-COMMAND [extra top-level yaml]
  cat >"$BF/berth.yaml" <<YAML
app: bf
build: $1
${2:-}
processes:
  web:
    command: exec python3 -m http.server \$PORT --bind 127.0.0.1
    health: {http: /index.html}
YAML
}
bf_manifest "'echo \"built with \$BUILD_NOTE\" > built.txt'"
run_ok "$T/bf1.out" b deploy "$BF"
assert_has "$(cat "$T/bf1.out")" "-----> building with build: from berth.yaml" "build: deploy"
assert_eq "$(curl -s -m 5 "http://127.0.0.1:$(web_port bf)/built.txt")" "built with " "built.txt of v1"
# the build gets the app's config
run_ok "$T/bfc.out" b config set BUILD_NOTE="note-$TOK" --app bf
echo "v3" >"$BF/version.txt"
run_ok "$T/bf2.out" b deploy "$BF"
assert_eq "$(curl -s -m 5 "http://127.0.0.1:$(web_port bf)/built.txt")" "built with note-$TOK" "built.txt (the build sees the app's config)"
BPID=$(web_pid bf); BPORT=$(web_port bf); BREL=$(nrel bf)
pass "build: runs in the release dir with the app's config"

# bf_fails WHAT: the deploy exited 1, no release was made, the same web still serves
bf_fails() {
  local rc=$1 what=$2
  [ "$rc" = 1 ] || { cat "$T/bff.out"; fail "$what: deploy exited $rc, want 1"; }
  assert_eq "$(nrel bf)" "$BREL" "$what: number of releases"
  assert_eq "$(web_pid bf)" "$BPID" "$what: pid of the live web"
  assert_eq "$(curl -s -m 5 "http://127.0.0.1:$BPORT/built.txt")" "built with note-$TOK" "$what: the live release's answer"
}

# --- exit 3: the last lines shown
bf_manifest "'for i in \$(seq 1 30); do echo \"line \$i of the build\"; done; echo \"bad thing $TOK\" >&2; exit 3'"
rc=0; b deploy "$BF" >"$T/bff.out" 2>&1 || rc=$?
bf_fails "$rc" "build exiting 3"
OUT=$(cat "$T/bff.out")
assert_has "$OUT" "       build | line 1 of the build" "failing build's progress"
assert_has "$OUT" "berth: build failed (command: build: in berth.yaml): exit status 3; v3 keeps running" "failing build's error"
assert_has "$OUT" "       | line 30 of the build" "failing build's last lines"
assert_has "$OUT" "       | bad thing $TOK" "failing build's last lines (its stderr)"
assert_lacks "$OUT" "created release" "failing build"
pass "a build: that exits 3 fails the deploy (exit 1) with its last lines; the live release keeps serving"

# --- a build over build_timeout: stopped, and its processes with it
bf_manifest "'echo \"build pid \$\$\"; sleep 60'" "build_timeout: 2s"
rc=0; b deploy "$BF" >"$T/bff.out" 2>&1 || rc=$?
bf_fails "$rc" "build over build_timeout"
assert_has "$(cat "$T/bff.out")" "berth: build failed (command: build: in berth.yaml): timed out after 2 s and was stopped" "timed-out build's error"
GPID=$(sed -n 's/.*build | build pid \([0-9]*\).*/\1/p' "$T/bff.out")
[ -n "$GPID" ] || { cat "$T/bff.out"; fail "the build's pid line is not in the progress"; }
wait_for '! alive $GPID && [ -z "$(group_pids $GPID)" ]' 50 || fail "the timed-out build (pid $GPID) or its sleep still runs"
pass "a build over build_timeout: 2s is stopped and fails the deploy, saying it timed out"

# --- a build that prints 100 MB: stopped at builds.output_limit (2MB in server.yaml)
bf_manifest "'yes \"flood-$TOK of build output\" | head -c 100000000; echo \"finished-$TOK\"'"
rc=0; b deploy "$BF" >"$T/bff.out" 2>&1 || rc=$?
bf_fails "$rc" "build printing 100 MB"
OUT=$(tail -c 20000 "$T/bff.out")
assert_has "$OUT" "berth: build failed (command: build: in berth.yaml): stopped: more than 2 MiB of output" "flooding build's error"
assert_lacks "$(grep -v 'flood-' "$T/bff.out")" "finished-$TOK" "flooding build"
[ "$(wc -c <"$T/bff.out")" -lt 20000000 ] || fail "the deploy printed $(wc -c <"$T/bff.out") bytes of a build limited to 2 MB"
wait_for '[ -z "$(procs_exact "flood-$TOK")" ]' 50 || fail "the flooding build still runs: $(procs_exact "flood-$TOK")"
pass "a build printing 100 MB is stopped at the output limit and the error says so"

# ================= apps info names the builder; apps destroy removes the dependency cache
grep -qx "Builder: *python" <(b apps info py) || { b apps info py; fail "apps info py does not name the python builder"; }
[ -d "$RDATA/cache/production/py" ] || fail "no dependency cache for py under $RDATA/cache"
run_ok "$T/destroy.out" b apps destroy py --confirm py
[ ! -e "$RDATA/cache/production/py" ] || fail "the dependency cache of py is still there after apps destroy: $(ls "$RDATA/cache/production/py")"
[ -d "$RDATA/cache/production/nd" ] || fail "apps destroy py removed nd's cache"
pass "apps info names the builder; apps destroy removes the app's dependency cache (only its own)"

stop_server
pass "server stopped, no process left"
