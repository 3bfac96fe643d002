#!/usr/bin/env bash
# The release phase: a `release:` line in the Procfile or `release:` in berth.yaml runs once per
# new release, after the release is made and before any of its instances starts or any old
# one is stopped; its output shows in the deploy ("release | ..."). A failing one stops the
# rollout with its output while the live release keeps its very process; a rollback skips it
# unless --run-release; `berth deploy --cancel` stops a slow one and keeps the live release.
# Ordering is proved by the processes themselves: the release command appends a numbered
# marker (with the web processes it saw running) to a file, and each web reads that file when
# it starts and serves the last marker.
source "$(dirname "$0")/lib.sh"
start_server
APP=rp
TOK=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
MARK="rpmark-$TOK"
MARKERS="$T/markers"; : >"$MARKERS"
STARTS="$T/webstarts"; : >"$STARTS"
D="$T/app"; mkdir -p "$D"

# release.sh [yaml|fail|slow]: the release command
cat >"$D/release.sh" <<SH
case "\$1" in
fail) echo "migrating v\$BERTH_RELEASE"; echo "migration failed $TOK" >&2; exit 4 ;;
slow) echo "slow release pid \$\$"; sleep 30 ;;
esac
n=\$((\$(wc -l <"$MARKERS") + 1))
webs=\$(for p in \$(pgrep -f "app.py $MARK-"); do tr '\0' ' ' </proc/\$p/cmdline | sed -n 's/.*$MARK-\(v[0-9]*\).*/\1/p'; done | sort | tr '\n' ',')
echo "release v\$BERTH_RELEASE seq=\$n from=\${1:-procfile} webs=\$webs" >>"$MARKERS"
echo "release phase of v\$BERTH_RELEASE wrote marker \$n"
SH
cat >"$D/app.py" <<PY
import http.server, os
rel = os.environ["BERTH_RELEASE"]
lines = open("$MARKERS").read().splitlines()
saw = lines[-1] if lines else "none"
with open("$STARTS", "a") as f:
    f.write("web v%s saw=%s\n" % (rel, saw))
body = ("rp v%s saw=%s\n" % (rel, saw)).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
PY
# procfile TAG: a Procfile app with a release: line; the web's command line carries TAG
procfile() { rm -f "$D/berth.yaml"; printf 'release: sh release.sh\nweb: exec python3 app.py %s-%s\n' "$MARK" "$1" >"$D/Procfile"; }
# yaml TAG RELEASE-ARG: a berth.yaml app (no Procfile) with release:
yaml() {
  rm -f "$D/Procfile"
  cat >"$D/berth.yaml" <<YAML
app: $APP
release: sh release.sh $2
processes:
  web:
    command: exec python3 app.py $MARK-$1
    health: {http: /}
YAML
}
web_pid() { b ps --app $APP --json | json '[i["pid"] for i in d["instances"] if i["id"]=="web.1" and i["state"]=="running"][0]'; }
answer() { curl -s -m 5 "http://127.0.0.1:$(b ps --app $APP --json | json '[i["port"] for i in d["instances"] if i["id"]=="web.1" and i["state"]=="running"][0]')/"; }
line_of() { grep -n -F -- "$2" "$1" | head -1 | cut -d: -f1; }
rel_status() { b releases --app $APP --json | json "[r['status'] for r in d['releases'] if r['version']==$1][0]"; }

# ---- v1: Procfile release: line, before the first instance
procfile v1
run_ok "$T/d1.out" b deploy "$D" --app $APP
OUT=$(cat "$T/d1.out")
assert_has "$OUT" "-----> running the release phase of v1: sh release.sh" "v1 deploy"
assert_has "$OUT" "       release | release phase of v1 wrote marker 1" "v1 deploy (the release command's output)"
assert_has "$OUT" "-----> release phase of v1 done" "v1 deploy"
[ "$(line_of "$T/d1.out" "release phase of v1 done")" -lt "$(line_of "$T/d1.out" "web.1 (v1) started")" ] ||
  { cat "$T/d1.out"; fail "v1's web started before its release phase was done"; }
assert_eq "$(cat "$MARKERS")" "release v1 seq=1 from=procfile webs=" "markers after v1 (no web ran during the release phase)"
assert_eq "$(answer)" "rp v1 saw=release v1 seq=1 from=procfile webs=" "v1's web read the marker at start"
PID1=$(web_pid)
pass "Procfile release: ran once before v1's web started (the web read its marker)"

# ---- v2: berth.yaml release:, while v1 still serves and before v2's web starts
yaml v2 yaml
run_ok "$T/d2.out" b deploy "$D"
OUT=$(cat "$T/d2.out")
assert_has "$OUT" "-----> running the release phase of v2: sh release.sh yaml" "v2 deploy"
assert_has "$OUT" "       release | release phase of v2 wrote marker 2" "v2 deploy"
[ "$(line_of "$T/d2.out" "release phase of v2 done")" -lt "$(line_of "$T/d2.out" "web.1 (v2) started")" ] ||
  { cat "$T/d2.out"; fail "v2's web started before its release phase was done"; }
assert_eq "$(sed -n 2p "$MARKERS")" "release v2 seq=2 from=yaml webs=v1," "v2's marker (v1's web, and only it, ran during the release phase)"
assert_eq "$(wc -l <"$MARKERS")" 2 "markers after v2 (the release phase ran once)"
assert_eq "$(answer)" "rp v2 saw=release v2 seq=2 from=yaml webs=v1," "v2's web read v2's marker at start"
alive "$PID1" && fail "v1's web still runs after v2 went live"
PID2=$(web_pid)
pass "berth.yaml release: ran once, with v1 still serving, before v2's web started"

# ---- v3: a failing release phase stops the rollout; v2 keeps its process
yaml v3 fail
rc=0; b deploy "$D" >"$T/d3.out" 2>&1 || rc=$?
OUT=$(cat "$T/d3.out")
[ "$rc" = 1 ] || { cat "$T/d3.out"; fail "deploy with a failing release phase exited $rc, want 1"; }
assert_has "$OUT" "       release | migrating v3" "failing release phase (stdout)"
assert_has "$OUT" "       release | migration failed $TOK" "failing release phase (stderr)"
assert_has "$OUT" "berth: the release phase of v3 failed: exit status 4" "failing release phase's error"
assert_lacks "$OUT" "web.1 (v3) started" "failing release phase"
assert_lacks "$(cat "$STARTS")" "web v3" "web starts"
assert_eq "$(web_pid)" "$PID2" "v2's web pid after v3's release phase failed"
assert_eq "$(answer)" "rp v2 saw=release v2 seq=2 from=yaml webs=v1," "v2 answers after v3 failed"
assert_eq "$(rel_status 3)" failed "status of v3"
assert_eq "$(rel_status 2)" active "status of v2"
assert_has "$(log_text $APP production --process release)" "| migration failed $TOK" "logs --process release"
pass "a failing release phase fails the deploy (exit 1) with its output; v2 keeps the same process"

# ---- rollback skips the release phase; rollback --run-release runs it
NM=$(wc -l <"$MARKERS")
run_ok "$T/rb1.out" b rollback --app $APP
OUT=$(cat "$T/rb1.out")
assert_has "$OUT" "-----> created release v4 (Rollback to v1)" "rollback"
assert_lacks "$OUT" "release phase" "rollback"
assert_eq "$(wc -l <"$MARKERS")" "$NM" "markers after a rollback (no release phase)"
assert_eq "$(answer)" "rp v4 saw=release v2 seq=2 from=yaml webs=v1," "v4 (v1's code) answer"
run_ok "$T/rb2.out" b rollback v2 --run-release --app $APP
OUT=$(cat "$T/rb2.out")
assert_has "$OUT" "-----> created release v5 (Rollback to v2)" "rollback --run-release"
assert_has "$OUT" "       release | release phase of v5 wrote marker 3" "rollback --run-release"
[ "$(line_of "$T/rb2.out" "release phase of v5 done")" -lt "$(line_of "$T/rb2.out" "web.1 (v5) started")" ] ||
  { cat "$T/rb2.out"; fail "v5's web started before its release phase was done"; }
assert_eq "$(tail -1 "$MARKERS")" "release v5 seq=3 from=yaml webs=v1," "marker of rollback --run-release (v4's web, with v1's code, still running)"
assert_eq "$(answer)" "rp v5 saw=release v5 seq=3 from=yaml webs=v1," "v5's web read v5's marker"
pass "rollback skips the release phase; rollback --run-release runs it before the new web"

# ---- deploy --cancel during a slow release phase
PID5=$(web_pid)
yaml v6 slow
b deploy "$D" >"$T/d6.out" 2>&1 &
DEP=$!
BG_PIDS+=("$DEP")
wait_for 'grep -q "release | slow release pid" "$T/d6.out"' 100 || { cat "$T/d6.out"; fail "the slow release phase did not start"; }
RPID=$(sed -n 's/.*release | slow release pid \([0-9]*\).*/\1/p' "$T/d6.out")
alive "$RPID" || fail "the slow release phase (pid $RPID) is not running"
assert_eq "$(b apps | tr -s ' ' | grep "^production $APP " | cut -d' ' -f3,4)" "v5 deploying" "apps row during the release phase"
run_ok "$T/cancel.out" b deploy --cancel --app $APP
assert_eq "$(cat "$T/cancel.out")" "-----> cancelled the rollout of v6; v5 stays live" "deploy --cancel"
rc=0; wait "$DEP" || rc=$?
[ "$rc" = 1 ] || { cat "$T/d6.out"; fail "the cancelled deploy exited $rc, want 1"; }
assert_has "$(cat "$T/d6.out")" "cancelled (berth deploy --cancel)" "the cancelled deploy's output"
wait_for '! alive $RPID && [ -z "$(group_pids $RPID)" ]' 50 || fail "the cancelled release phase (pid $RPID) or its sleep still runs"
assert_eq "$(web_pid)" "$PID5" "v5's web pid after the cancel"
assert_eq "$(answer)" "rp v5 saw=release v5 seq=3 from=yaml webs=v1," "v5 answers after the cancel"
assert_lacks "$(cat "$STARTS")" "web v6" "web starts"
assert_eq "$(wc -l <"$MARKERS")" 3 "markers after the cancel"
assert_eq "$(rel_status 6)" failed "status of the cancelled v6"
rc=0; b deploy --cancel --app $APP >"$T/cancel2.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exit status of deploy --cancel with no rollout in progress"
assert_has "$(cat "$T/cancel2.out")" "no build or rollout is in progress" "deploy --cancel with no rollout"
pass "deploy --cancel stops a slow release phase; v5 keeps serving with the same process"

# ---- and the next deploy runs its release phase normally
yaml v7 yaml
run_ok "$T/d7.out" b deploy "$D"
assert_eq "$(answer)" "rp v7 saw=release v7 seq=4 from=yaml webs=v2," "v7 (v5 ran v2's code)"
assert_eq "$(grep -c '^release v7 ' "$MARKERS")" 1 "release phases of v7"
stop_server
pass "a deploy after the cancel runs its release phase once; server stopped, no process left"
