#!/usr/bin/env bash
# A directory with a Dockerfile deploys, built by a real podman service (Docker Engine API):
# the uploaded directory is the build's context, the build's steps stream into the deploy's
# output and into `berth logs --process build`, the image is tagged berth/ENV/APP:vN and pinned
# by id; the router serves what the Dockerfile copied in. A code change builds v2, rollback
# serves v1's content again. berth.yaml's dockerfile: (a Containerfile, beside a Dockerfile
# that is not used) with a web running the built CMD and a worker running a command in the
# built image; a Procfile beside a Dockerfile. A failing RUN and a syntax error fail the
# deploy with the build's lines while the live release keeps serving; `berth deploy --cancel`
# ends a deploy in a slow RUN step at once, and the engine stops the build (no later step,
# nothing tagged). A server without an engine refuses a Dockerfile with a clear error; a
# hostile stand-in engine's answers to a build end in clear errors, the server up.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/engine_lib.sh"
engine_available || { echo "skip [$TEST_NAME] $(engine_available)"; exit 0; }
trap 'engine_cleanup; cleanup' EXIT
engine_start || fail "podman's service did not start"
ctr_import localhost/t-base:1 "base image $MARK" || fail "podman import of the base image"
start_server_net --docker-host "$ENGINE_HOST"
A=site

# img_id REF: the id podman gives the image REF ("sha256:...")
img_id() { local i; i=$(pod image inspect --format '{{.Id}}' "$1" 2>/dev/null) || return 1; echo "sha256:${i#sha256:}"; }
# ps_images APP PROCESS: the images its running instances run, sorted, unique
ps_images() {
  b ps --app "$1" --json | json "' '.join(sorted(set(i['image'] for i in d['instances'] if i['process']=='$2' and i['state']=='running')))"
}
nrel() { b releases --app "$1" --json | json 'len(d["releases"])'; }
live() { b releases --app "$1" --json | json '[r["version"] for r in d["releases"] if r["status"]=="active"][0]'; }

# --- (1) only a Dockerfile: built, one web process running it, served through the router
D="$T/site"; mkdir -p "$D"
cat >"$D/Dockerfile" <<EOF
FROM localhost/t-base:1
COPY index.html /www/index.html
RUN echo "built in a RUN step $MARK" > /www/built.txt
EOF
echo "site one $MARK" >"$D/index.html"
run_ok "$T/d1.out" b deploy "$D" --app $A
OUT=$(cat "$T/d1.out")
assert_has "$OUT" "building berth/production/$A:v1 from Dockerfile" "the deploy says what it builds"
assert_has "$OUT" "build | STEP 1/3: FROM localhost/t-base:1" "the build's first step in the deploy's output"
assert_has "$OUT" "build | STEP 2/3: COPY index.html /www/index.html" "the build's COPY step in the deploy's output"
assert_has "$OUT" "build | STEP 3/3: RUN echo" "the build's RUN step in the deploy's output"
assert_has "$OUT" "built berth/production/$A:v1 (sha256:" "the deploy names the built image"
wait_for '[ "$(count_state $A)" = 1 ]' 100 || fail "no running instance: $(b ps --app $A)"
b routes add $A.test --app $A >/dev/null || fail "routes add"
wait_for 'rcurl $A.test / | grep -q "site one $MARK"' 100 || fail "the router does not serve the copied file: $(rcurl $A.test /)"
assert_eq "$(rcurl $A.test /built.txt)" "built in a RUN step $MARK" "what the RUN step wrote"
ID1=$(img_id berth/production/$A:v1) || fail "podman has no image berth/production/$A:v1: $(pod images)"
assert_eq "$(ps_images $A web)" "$ID1" "ps: web.1 runs the image tagged berth/production/$A:v1"
assert_eq "$(b ps --app $A --json | json 'd["instances"][0]["driver"]')" "docker" "the built image runs as a container"
INFO=$(b releases info v1 --app $A)
assert_has "$INFO" "berth/production/$A:v1 = $ID1" "releases info shows the pinned built image"
assert_has "$INFO" "Build:       dockerfile" "releases info says how v1 was built"
assert_eq "$(b releases info v1 --app $A --json | json 'd["build"]["dockerfile"] + " " + d["build"]["image"]')" \
  "Dockerfile berth/production/$A:v1" "the release records what it was built from"
assert_has "$(log_text $A production --process build -n 50)" "STEP 2/3: COPY index.html /www/index.html" \
  "the build's output in berth logs --process build"
pass "a Dockerfile alone: built (steps in the output and the logs), tagged v1 = ${ID1:7:12}, served through the router"

# --- (2) a code change builds v2; rollback serves v1's content again
echo "site two $MARK" >"$D/index.html"
run_ok "$T/d2.out" b deploy "$D" --app $A
assert_has "$(cat "$T/d2.out")" "built berth/production/$A:v2" "the second deploy builds v2"
wait_for 'rcurl $A.test / | grep -q "site two $MARK"' 100 || fail "v2 is not served: $(rcurl $A.test /)"
ID2=$(img_id berth/production/$A:v2) || fail "podman has no image berth/production/$A:v2"
[ "$ID2" != "$ID1" ] || fail "v2's image is v1's"
wait_for '[ "$(ps_images $A web)" = "$ID2" ]' 100 || fail "web does not run v2's image: $(ps_images $A web)"
run_ok "$T/rb.out" b rollback --app $A
wait_for 'rcurl $A.test / | grep -q "site one $MARK"' 100 || fail "rollback does not serve v1's content: $(rcurl $A.test /)"
wait_for '[ "$(ps_images $A web)" = "$ID1" ]' 100 || fail "after the rollback web runs $(ps_images $A web), not $ID1"
pass "a code change deploys v2 (${ID2:7:12}); rollback serves v1's content from v1's image"

# --- (3) berth.yaml's dockerfile: a Containerfile; web with the built CMD, worker with a command
M="$T/two"; mkdir -p "$M"
cat >"$M/Containerfile" <<EOF
FROM localhost/t-base:1
COPY index.html /www/index.html
ENV FLAVOUR=containerfile-$MARK
EOF
# a Dockerfile that cannot build: berth.yaml's dockerfile: decides, this one is not used
printf 'FROM localhost/no-such-base:1\n' >"$M/Dockerfile"
echo "two web $MARK" >"$M/index.html"
cat >"$M/berth.yaml" <<'YAML'
app: two
dockerfile: Containerfile
processes:
  web:
  worker:
    command: echo "worker sees $FLAVOUR in $(cat /www/index.html)"; exec sleep 1000
YAML
run_ok "$T/two.out" b deploy "$M"
assert_has "$(cat "$T/two.out")" "building berth/production/two:v1 from Containerfile" "the build uses the Containerfile"
wait_for '[ "$(count_state two)" = 2 ]' 150 || fail "two processes do not run: $(b ps --app two)"
IDT=$(img_id berth/production/two:v1) || fail "podman has no image berth/production/two:v1"
assert_eq "$(ps_images two web)" "$IDT" "web runs the built image"
assert_eq "$(ps_images two worker)" "$IDT" "worker runs the built image"
wait_for 'log_text two production --process worker -n 20 | grep -q "worker sees containerfile-$MARK in two web $MARK"' 100 ||
  fail "the worker's command did not run in the built image: $(log_text two production --process worker -n 20)"
b routes add two.test --app two >/dev/null || fail "routes add two"
wait_for 'rcurl two.test / | grep -q "two web $MARK"' 100 || fail "web (the built CMD) does not serve: $(rcurl two.test /)"
pass "dockerfile: Containerfile: web runs its CMD, worker its command, both in image ${IDT:7:12}"

# --- a Procfile beside a Dockerfile (no berth.yaml): its processes run as commands in the image
P="$T/procfile"; mkdir -p "$P"
printf 'FROM localhost/t-base:1\nCOPY page.txt /www/index.html\n' >"$P/Dockerfile"
echo "procfile page $MARK" >"$P/page.txt"
echo 'web: echo "procfile web"; exec httpd -f -p $PORT -h /www' >"$P/Procfile"
run_ok "$T/pf.out" b deploy "$P" --app pf
wait_for '[ "$(count_state pf)" = 1 ]' 100 || fail "the Procfile's web does not run: $(b ps --app pf)"
assert_eq "$(ps_images pf web)" "$(img_id berth/production/pf:v1)" "the Procfile's web runs the built image"
b routes add pf.test --app pf >/dev/null || fail "routes add pf"
wait_for 'rcurl pf.test / | grep -q "procfile page $MARK"' 100 || fail "the Procfile's web does not serve: $(rcurl pf.test /)"
assert_lacks "$(log_text pf production --process web -n 20)" "start $MARK" "the image's own CMD ran instead of the Procfile's command"
pass "a Procfile beside a Dockerfile: its web runs as a command in the built image"

# --- (4) a failing RUN, then a syntax error: the deploy fails with the build's lines, v3 stays
LIVE=$(live $A); N=$(nrel $A)
F="$T/fail"; mkdir -p "$F"
echo "broken $MARK" >"$F/index.html"
printf 'FROM localhost/t-base:1\nRUN echo "about to fail %s"; exit 7\n' "$MARK" >"$F/Dockerfile"
b deploy "$F" --app $A >"$T/f1.out" 2>&1; rc=$?
assert_eq "$rc" 1 "a deploy whose RUN fails exits"
OUT=$(cat "$T/f1.out")
assert_has "$OUT" "build | about to fail $MARK" "the failing step's output streamed"
assert_has "$OUT" "build failed (Dockerfile): building at STEP \"RUN echo \"about to fail" "the error names the failing step"
assert_has "$OUT" "exit status 7" "the error gives the step's exit status"
assert_has "$OUT" "v$LIVE keeps running" "the error says the live release stays"
assert_has "$OUT" "| about to fail $MARK" "the build's last lines under the error"
printf 'FROM localhost/t-base:1\nBOGUS instruction\n' >"$F/Dockerfile"
b deploy "$F" --app $A >"$T/f2.out" 2>&1; rc=$?
assert_eq "$rc" 1 "a deploy whose Dockerfile does not parse exits"
assert_has "$(cat "$T/f2.out")" "build failed (Dockerfile):" "a syntax error fails the build"
assert_has "$(grep '^berth:' "$T/f2.out")" "Unknown instruction: \"BOGUS\"" "a syntax error names the instruction"
assert_lacks "$(grep '^berth:' "$T/f2.out")" "imagebuilder.Step" "the engine's internals in the error"
assert_eq "$(nrel $A)" "$N" "failed builds make no release"
assert_eq "$(live $A)" "$LIVE" "the live release after failed builds"
rcurl $A.test / | grep -q "site one $MARK" || fail "the live release stopped serving: $(rcurl $A.test /)"
pass "a failing RUN (exit status 7, its output) and a syntax error: deploy exits 1, v$LIVE keeps serving"

# --- (5) berth deploy --cancel during a slow build stops it. The deploy ends at once; the engine
# stops the build when its connection closes (podman 4.3 lets the RUN step under way finish,
# then stops: no later step runs, nothing is tagged, its working container is removed).
printf 'FROM localhost/t-base:1\nRUN echo "slow step %s"; sleep 20; echo "slow step done %s"\nRUN echo "next step %s"\n' \
  "$MARK" "$MARK" "$MARK" >"$F/Dockerfile"
b deploy "$F" --app $A >"$T/c.out" 2>&1 &
DP=$!
wait_for 'grep -q "build | slow step $MARK" "$T/c.out"' 300 || { kill $DP; fail "the slow build did not start: $(cat "$T/c.out")"; }
wait_for 'pgrep -f "slow step done $MARK" >/dev/null' 50 || fail "no process of the slow RUN step on the host"
run_ok "$T/cancel.out" b deploy --cancel --app $A
assert_has "$(cat "$T/cancel.out")" "cancelled 1 deploy in its build stage" "deploy --cancel"
wait_gone $DP 50 || { kill $DP; fail "the cancelled deploy did not end while its build step runs"; }
wait $DP; rc=$?
assert_eq "$rc" 1 "the cancelled deploy exits"
assert_has "$(cat "$T/c.out")" "the deploy was cancelled during its build; v$LIVE keeps running" "the cancelled deploy's error"
assert_lacks "$(cat "$T/c.out")" "build | slow step done" "the cancelled deploy's output after the cancel"
assert_eq "$(nrel $A)" "$N" "a cancelled build makes no release"
rcurl $A.test / | grep -q "site one $MARK" || fail "the live release stopped serving after the cancel"
pass "deploy --cancel during a RUN step: the deploy ends at once (exit 1), no release, v$LIVE keeps serving"
# build_ctrs: buildah's working containers (podman ps --external shows them as "Storage")
build_ctrs() { pod ps --external -a --format '{{.ID}} {{.Status}}' | grep -c Storage; }
wait_for '! pgrep -f "slow step done $MARK" >/dev/null && [ "$(build_ctrs)" = 0 ]' 400 ||
  fail "the engine did not stop the cancelled build: $(pgrep -af "slow step done $MARK"; pod ps --external -a)"
pod image exists berth/production/$A:v4 && fail "the cancelled build was finished and tagged"
pgrep -f "next step $MARK" >/dev/null && fail "the cancelled build went on to its next step"
pass "the engine stopped the cancelled build: no next step, nothing tagged, no working container left"

curl -s -o /dev/null "$BERTH_API/healthz" || fail "the server is down"
stop_server
pass "server stopped cleanly"

# --- a server without a container engine: a Dockerfile cannot be built, and it says so
restart_server
b deploy "$P" --app noengine >"$T/ne.out" 2>&1 && fail "a Dockerfile deployed on a server without an engine"
assert_has "$(cat "$T/ne.out")" "Dockerfile: without a berth.yaml an app with a Dockerfile is built into an image, and this server has no container engine" \
  "the error says why the Dockerfile needs an engine"
assert_has "$(cat "$T/ne.out")" "or add a berth.yaml (without dockerfile:) to run the processes on the host" "the error says how to opt out"
b deploy "$M" --app noengine >"$T/ne2.out" 2>&1 && fail "dockerfile: deployed on a server without an engine"
assert_has "$(cat "$T/ne2.out")" "berth.yaml: dockerfile: Containerfile: this server has no container engine to build it" \
  "the error names berth.yaml's dockerfile:"
stop_server
pass "without --docker-host: a clear error, naming the Dockerfile and how to run without it"

# --- a hostile engine: what it answers to a build is untrusted input. A stand-in that passes
# /_ping, then answers each build as $T/fake.mode says: garbage lines (not UTF-8, control
# bytes, a line that is no JSON) and an image id that is not one; a 500 whose body is not
# text; an endless flood of output.
cat >"$T/fake_engine.py" <<'PY'
import json, socketserver, sys, http.server
sock, mode_file = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def head(self, code, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Api-Version", "1.41")
        self.send_header("Connection", "close")
        self.end_headers()
    def do_GET(self):
        if self.path == "/_ping":
            self.head(200, "text/plain"); self.wfile.write(b"OK")
        elif self.path.startswith("/v1.41/containers/json"):
            self.head(200); self.wfile.write(b"[]")
        elif self.path.startswith("/v1.41/images/"):
            self.head(200); self.wfile.write(json.dumps({"Id": "sha256:\u00e9t\u00e9 \"x\"", "Config": {}}).encode())
        else:
            self.head(404); self.wfile.write(b'{"message":"no such thing"}')
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        mode = open(mode_file).read().strip()
        if not self.path.startswith("/v1.41/build"):
            self.head(404); self.wfile.write(b'{"message":"no such thing"}')
        elif mode == "garbage":
            self.head(200)
            self.wfile.write(b'{"stream":"Step 1/1 : FROM scratch\\n"}\n')
            self.wfile.write(b'\xff\xfe not utf-8 \xc3\n')
            self.wfile.write(b'{"stream":"bell \\u0007 and esc \\u001b[31m red\\n"}\n')
            self.wfile.write(b'{"stream":' + b'"' + b'x' * 300000 + b'"}\n')
            self.wfile.write(b'{"aux":{"ID":"sha256:' + b'ab' * 32 + b'"}}\n')
        elif mode == "500":
            self.head(500, "text/plain"); self.wfile.write(b"\xff\xfe engine \x01 broke \xc3")
        elif mode == "flood":
            self.head(200)
            line = b'{"stream":"' + b'f' * 1000 + b'\\n"}\n'
            try:
                for _ in range(100000):
                    self.wfile.write(line)
            except OSError:
                pass
class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
S(sock, H).serve_forever()
PY
FAKE="$T/fake.sock"
echo garbage >"$T/fake.mode"
python3 "$T/fake_engine.py" "$FAKE" "$T/fake.mode" >"$T/fake.log" 2>&1 &
BG_PIDS+=($!)
wait_for '[ -S "$FAKE" ]' 50 || fail "the stand-in engine did not start: $(cat "$T/fake.log")"
printf 'builds:\n  output_limit: 1M\n' >"$DATA/server.yaml"
restart_server --docker-host "unix://$FAKE"
H="$T/hostile"; mkdir -p "$H"
printf 'FROM scratch\n' >"$H/Dockerfile"
b deploy "$H" --app hostile >"$T/h1.out" 2>&1 && fail "a build with a bogus image id deployed"
assert_has "$(cat "$T/h1.out")" "the engine gave the built image an id that is not one" "a bogus image id"
assert_has "$(cat "$T/h1.out")" "build | (a line that is not UTF-8)" "a line that is not UTF-8, replaced"
assert_has "$(cat "$T/h1.out")" "build | bell ? and esc ?[31m red" "control bytes made visible"
echo 500 >"$T/fake.mode"
b deploy "$H" --app hostile >"$T/h2.out" 2>&1 && fail "a build answered 500 deployed"
assert_has "$(cat "$T/h2.out")" "build failed (Dockerfile): 500: ?? engine ? broke ?" "a 500 with a body that is not UTF-8"
echo flood >"$T/fake.mode"
b deploy "$H" --app hostile >"$T/h3.out" 2>&1 && fail "a build flooding its output deployed"
assert_has "$(cat "$T/h3.out")" "build failed (Dockerfile): stopped: more than 1 MiB of output" "the output limit"
curl -s -o /dev/null "$BERTH_API/healthz" || fail "the server is down after the hostile engine"
stop_server
pass "a hostile engine (not UTF-8, control bytes, a bogus id, a 500 of binary, a flood): clear errors, server up"
