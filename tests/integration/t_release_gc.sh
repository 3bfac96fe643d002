#!/usr/bin/env bash
# Release code garbage collection: with release_keep: 3 in server.yaml, six deploys of
# different code leave three code-* directories (the live one among them) and no .gc-*
# leftover; `releases` marks the others as removed; a rollback to a pruned release fails
# before changing anything, one to a kept release works; deploying the old code again brings
# it back; a .gc-* leftover of a crash is removed when the server starts again after kill -9.
source "$(dirname "$0")/lib.sh"
mkdir -p "$T/data"
echo "release_keep: 3" >"$T/data/server.yaml"
start_server
APP=gcapp
D="$T/app"
mkdir -p "$D"
cat >"$D/Procfile" <<'PROC'
web: exec python3 -m http.server $PORT --bind 127.0.0.1
PROC
RDIR="$DATA/releases/production/$APP"
code_dirs() { (cd "$RDIR" && ls -d code-* 2>/dev/null | sort | tr '\n' ' ' | sed 's/ $//'); }
gc_dirs() { (cd "$RDIR" && ls -A | grep '^\.gc-' || true); }
ncode() { (cd "$RDIR" && ls -d code-* 2>/dev/null | wc -l); }
# dir_of V: the code directory of release V (code-<16 hex of its sha256>)
dir_of() { echo "code-$(b releases --app $APP --json | json "[r for r in d['releases'] if r['version']==$1][0]['code'][:16]")"; }
kept_of() { b releases --app $APP --json | json "[r for r in d['releases'] if r['version']==$1][0]['code_kept']"; }
live() { b apps --json | json "[a for a in d['apps'] if a['name']=='$APP'][0]['release']"; }

# ---- six deploys of different code
for i in 1 2 3 4 5 6; do
  echo "version $i $RANDOM$RANDOM" >"$D/index.html"
  [ $i = 1 ] && cp "$D/index.html" "$T/index-v1.html"
  run_ok "$T/d$i.out" b deploy "$D" --app $APP
  assert_has "$(cat "$T/d$i.out")" "-----> v$i is live" "deploy $i"
done
wait_for '[ "$(ncode)" = 3 ]' 100 || fail "after 6 deploys with release_keep 3: code dirs $(code_dirs)"
WANT="$(for v in 4 5 6; do dir_of $v; done | sort | tr '\n' ' ' | sed 's/ $//')"
assert_eq "$(code_dirs)" "$WANT" "the code dirs left are those of v4, v5, v6"
WEB=$(pids_of $APP web)
assert_eq "$(readlink "/proc/$WEB/cwd")" "$RDIR/$(dir_of 6)" "the live web runs in v6's code dir"
wait_for '[ -z "$(gc_dirs)" ]' 100 || fail ".gc-* leftovers after pruning: $(gc_dirs)"
grep -q "$APP: removed [0-9]* old release code director" "$T/server.log" || fail "no prune in the server log"
pass "6 deploys with release_keep 3 keep 3 code dirs (the live one among them), no .gc-* left"

# ---- releases shows which releases lost their code
assert_eq "$(for v in 1 2 3 4 5 6; do kept_of $v; done | tr '\n' ' ')" "False False False True True True " \
  "code_kept of v1..v6"
b releases --app $APP | tr -s ' ' >"$T/rel.txt"
head -1 "$T/rel.txt" | grep -qx "VERSION STATUS CODE CREATED DESCRIPTION CHANGES" || { cat "$T/rel.txt"; fail "releases header"; }
grep -Eq "^v6 active kept " "$T/rel.txt" || { cat "$T/rel.txt"; fail "releases row of v6"; }
grep -Eq "^v2 superseded removed " "$T/rel.txt" || { cat "$T/rel.txt"; fail "releases row of v2"; }
ONE=$(api GET "/v1/envs/production/apps/$APP/releases/1")
assert_eq "$(http_body "$ONE" | json 'd["code_kept"]')" False "GET releases/1 code_kept"
pass "releases marks v1..v3 as removed (CODE column, code_kept in --json)"

# ---- rollback to a pruned release: refused, nothing changes
MSG="the code of v2 was removed (only the last 3 releases keep their code; release_keep in server.yaml); deploy it again"
rc=0
b rollback v2 --app $APP >"$T/rb2.out" 2>&1 || rc=$?
[ "$rc" != 0 ] || { cat "$T/rb2.out"; fail "rollback to pruned v2 exited 0"; }
assert_has "$(cat "$T/rb2.out")" "$MSG" "rollback to pruned v2"
R=$(api POST "/v1/envs/production/apps/$APP/rollback" -d '{"version":1}')
assert_eq "$(http_code "$R")" 409 "API rollback to pruned v1"
assert_eq "$(http_body "$R" | json 'd["error"]')" "${MSG//v2/v1}" "API rollback to pruned v1: error"
assert_eq "$(b releases --app $APP --json | json 'len(d["releases"])')" 6 "releases after refused rollbacks"
assert_eq "$(live)" 6 "live release after refused rollbacks"
assert_eq "$(pids_of $APP web)" "$WEB" "the web instance after refused rollbacks"
assert_eq "$(code_dirs)" "$WANT" "code dirs after refused rollbacks"
pass "rollback to a pruned release fails with 409 and the reason; nothing changed"

# ---- rollback to a kept release works (and keeps using its dir)
run_ok "$T/rb4.out" b rollback v4 --app $APP
assert_has "$(cat "$T/rb4.out")" "-----> v7 is live" "rollback to v4"
WEB=$(pids_of $APP web)
assert_eq "$(readlink "/proc/$WEB/cwd")" "$RDIR/$(dir_of 4)" "the web of v7 runs in v4's code dir"
sleep 0.3
assert_eq "$(code_dirs)" "$WANT" "code dirs after rollback to v4 (v7 shares v4's)"
pass "rollback to kept v4 -> v7 live in v4's code dir"

# ---- "deploy it again": v1's files as a new release (then v5's code goes)
cp "$T/index-v1.html" "$D/index.html"
run_ok "$T/d8.out" b deploy "$D" --app $APP
assert_has "$(cat "$T/d8.out")" "-----> v8 is live" "deploy of v1's files again"
W8="$(for v in 8 4 6; do dir_of $v; done | sort | tr '\n' ' ' | sed 's/ $//')"
wait_for '[ "$(code_dirs)" = "$W8" ]' 100 || fail "code dirs after v8: $(code_dirs), want $W8"
assert_eq "$(kept_of 8) $(kept_of 7) $(kept_of 6) $(kept_of 5)" "True True True False" "code_kept of v8..v5"
assert_eq "$(curl -s "http://127.0.0.1:$(b ps --app $APP --json | json 'd["instances"][0]["port"]')/index.html")" \
  "$(cat "$T/index-v1.html")" "v8 serves v1's page"
wait_for '[ -z "$(gc_dirs)" ]' 100 || fail ".gc-* leftovers after v8: $(gc_dirs)"
pass "deploy of v1's files again -> v8; code dirs of v8, v7 (= v4), v6"

# ---- kill -9, a .gc-* leftover of a crash, restart
mkdir -p "$RDIR/.gc-code-0123456789abcdef-deadbeef/sub"
echo junk >"$RDIR/.gc-code-0123456789abcdef-deadbeef/sub/file"
kill9_server
restart_server
wait_for '[ -z "$(gc_dirs)" ]' 100 || fail ".gc-* leftover still there after restart: $(gc_dirs)"
grep -q "removed 1 release code or cache directory left behind by a previous server" "$T/server.log" || fail "no leftover removal in the server log"
wait_for '[ "$(count_state $APP running)" = 1 ]' 150 || { b ps --app $APP; fail "app not running after restart"; }
assert_eq "$(live)" 8 "live release after restart"
assert_eq "$(code_dirs)" "$W8" "code dirs after restart"
assert_eq "$(readlink "/proc/$(pids_of $APP web)/cwd")" "$RDIR/$(dir_of 8)" "the web after restart runs in v8's dir"
pass "after kill -9 and restart: serving v8, .gc-* leftover removed"

stop_server
pass "server stopped, no process left"
