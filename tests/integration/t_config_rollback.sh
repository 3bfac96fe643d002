#!/usr/bin/env bash
# Config and rollback: `config set` / `unset` make new releases whose instances see the new
# values; `config list|get` show them; `rollback` (default: the release before the live one)
# and `rollback vN` make new releases "Rollback to vN" with vN's config; `releases --json`
# carries the fields of docs/API.md.
source "$(dirname "$0")/lib.sh"
start_server
APP=cfg
D="$T/app"
mkdir -p "$D"
echo "cfg web" >"$D/index.html"
# the worker prints the config it was started with, once
cat >"$D/Procfile" <<'PROC'
web: exec python3 -m http.server $PORT --bind 127.0.0.1
worker: echo "A=${A-unset} B=${B-unset} URL=${URL-unset} MSG=${MSG-unset} E=${E-unset}"; exec sleep 3600
PROC
# seen VERSION: what the worker of release VERSION printed
seen() {
  wait_for "b logs --app $APP --process worker | grep -q ' worker.1 v$1 | '" 50 || fail "worker.1 v$1 printed nothing"
  b logs --app $APP --process worker | grep " worker.1 v$1 | " | sed 's/.* | //'
}
# web_env VAR: the variable in the environment of the live web process
web_env() { { tr '\0' '\n' </proc/"$(pids_of $APP web)"/environ; } 2>/dev/null | sed -n "s/^$1=//p"; }
# rel V EXPR: a field of release V from `releases --json`
rel() { b releases --app $APP --json | json "[r for r in d['releases'] if r['version']==$1][0]$2"; }

run_ok "$T/d1.out" b deploy "$D" --app $APP
assert_eq "$(seen 1)" "A=unset B=unset URL=unset MSG=unset E=unset" "v1's config"
assert_eq "$(b config list --app $APP)" 'No config vars for cfg in production. Set one with `berth config set KEY=VALUE`.' "config list of v1"
assert_eq "$(b config list --app $APP --json | json 'd["config"]')" "{}" "config list --json of v1"

# ---- set
run_ok "$T/c2.out" b config set A=1 B=2 --app $APP
assert_has "$(cat "$T/c2.out")" "-----> created release v2 (Set A, B)" "config set progress"
assert_has "$(cat "$T/c2.out")" "-----> v2 is live" "config set progress"
assert_eq "$(seen 2)" "A=1 B=2 URL=unset MSG=unset E=unset" "v2's config seen by the worker"
assert_eq "$(web_env A) $(web_env B)" "1 2" "v2's config seen by the web"
assert_eq "$(b config list --app $APP | tr -s ' ')" "KEY VALUE SOURCE
A 1 config set
B 2 config set" "config list of v2"
assert_eq "$(b config list --app $APP --json | json 'd["config"]')" "{'A': '1', 'B': '2'}" "config list --json of v2"
assert_eq "$(b config get A --app $APP)" 1 "config get A"
if b config get NOPE --app $APP >"$T/get.out" 2>&1; then fail "config get of an unset var exited 0"; fi
assert_eq "$(cat "$T/get.out")" "berth: NOPE is not set for cfg in production" "config get of an unset var"
b releases --app $APP | tr -s ' ' >"$T/rel2.txt"
grep -Eqx "v2 active (just now|[0-9]+s ago) Set A, B config \+A, config \+B" "$T/rel2.txt" || { cat "$T/rel2.txt"; fail "releases row for v2"; }
assert_eq "$(rel 2 '["changes"]')" "['config +A', 'config +B']" "v2's changes"
pass "config set A=1 B=2 -> v2 with the values seen by the instances"

# ---- values with '=', spaces, empty; a changed value
run_ok "$T/c3.out" b config set 'URL=postgres://db/app?sslmode=disable' 'MSG=hello world' B=3 E= --app $APP
assert_eq "$(seen 3)" "A=1 B=3 URL=postgres://db/app?sslmode=disable MSG=hello world E=" "v3's config"
assert_eq "$(b config get URL --app $APP)" "postgres://db/app?sslmode=disable" "config get URL"
assert_eq "$(b config get MSG --app $APP)" "hello world" "config get MSG"
assert_eq "$(b config get E --app $APP)" "" "config get E (empty)"
assert_eq "$(rel 3 '["changes"]')" "['config ~B', 'config +URL', 'config +MSG', 'config +E']" "v3's changes"
pass "config set with '=', spaces and an empty value -> v3"

# ---- unset
run_ok "$T/c4.out" b config unset B E --app $APP
assert_has "$(cat "$T/c4.out")" "-----> created release v4 (Unset B, E)" "config unset progress"
assert_eq "$(seen 4)" "A=1 B=unset URL=postgres://db/app?sslmode=disable MSG=hello world E=unset" "v4's config"
assert_eq "$(b config list --app $APP --json | json 'sorted(d["config"])')" "['A', 'MSG', 'URL']" "config list after unset"
assert_eq "$(rel 4 '["changes"]')" "['config -B', 'config -E']" "v4's changes"
pass "config unset B E -> v4 without them"

# ---- rollback with no argument: the release before the live one (v3)
run_ok "$T/r5.out" b rollback --app $APP
assert_has "$(cat "$T/r5.out")" "-----> created release v5 (Rollback to v3)" "rollback progress"
assert_has "$(cat "$T/r5.out")" "-----> v5 is live" "rollback progress"
assert_eq "$(seen 5)" "A=1 B=3 URL=postgres://db/app?sslmode=disable MSG=hello world E=" "v5's config (= v3's)"
assert_eq "$(rel 5 '["config"]')" "$(rel 3 '["config"]')" "v5's config equals v3's"
assert_eq "$(rel 5 '["rollback_of"]') $(rel 5 '["description"]')" "3 Rollback to v3" "v5's rollback_of and description"
assert_eq "$(web_env B)" 3 "the web's B after rolling back to v3"

# ---- rollback to v1 (as vN) and to v2 (as a bare N)
run_ok "$T/r6.out" b rollback v1 --app $APP
assert_has "$(cat "$T/r6.out")" "-----> created release v6 (Rollback to v1)" "rollback v1 progress"
assert_eq "$(seen 6)" "A=unset B=unset URL=unset MSG=unset E=unset" "v6's config (= v1's)"
assert_eq "$(b config list --app $APP --json | json 'd["config"]')" "{}" "config list after rollback to v1"
assert_eq "$(web_env A)" "" "the web's A after rolling back to v1"
run_ok "$T/r7.out" b rollback 2 --app $APP
assert_has "$(cat "$T/r7.out")" "-----> created release v7 (Rollback to v2)" "rollback 2 progress"
assert_eq "$(seen 7)" "A=1 B=2 URL=unset MSG=unset E=unset" "v7's config (= v2's)"
assert_eq "$(b config list --app $APP --json | json 'd["config"]')" "{'A': '1', 'B': '2'}" "config list after rollback to v2"
b releases --app $APP | tr -s ' ' >"$T/rel7.txt"
grep -Eqx "v7 active (just now|[0-9]+s ago) Rollback to v2 config \+A, config \+B" "$T/rel7.txt" || { cat "$T/rel7.txt"; fail "releases row for v7"; }
grep -Eqx "v5 superseded (just now|[0-9]+s ago) Rollback to v3 config \+B, config \+E" "$T/rel7.txt" || { cat "$T/rel7.txt"; fail "releases row for v5"; }
pass "rollback (default v3), rollback v1, rollback 2 -> v5, v6, v7 with the old config"

# ---- releases --json: the documented fields, newest first
b releases --app $APP --json >"$T/rel.json"
python3 - "$T/rel.json" <<'PY' || fail "releases --json does not match docs/API.md"
import json, re, sys
rs = json.load(open(sys.argv[1]))["releases"]
fields = {"version", "created_at", "description", "status", "code", "config", "formation",
          "processes", "changes", "reason", "rollback_of", "finished_at"}
ts = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
def check(ok, what):
    if not ok:
        print("releases --json:", what); sys.exit(1)
check([r["version"] for r in rs] == [7, 6, 5, 4, 3, 2, 1], "versions newest first")
for r in rs:
    v = r["version"]
    check(fields <= set(r), "v%d lacks %s" % (v, fields - set(r)))
    check(r["status"] == ("active" if v == 7 else "superseded"), "v%d status %s" % (v, r["status"]))
    check(ts.match(r["created_at"]) and ts.match(r["finished_at"]), "v%d times" % v)
    check(r["created_at"] <= r["finished_at"], "v%d finished before it was created" % v)
    check(r["code"] == rs[-1]["code"] and re.match("^[0-9a-f]{64}$", r["code"]), "v%d code" % v)
    check(r["formation"] == {"web": 1, "worker": 1}, "v%d formation" % v)
    check(r["processes"] == ["web", "worker"], "v%d processes" % v)
    check(r["reason"] is None, "v%d reason" % v)
    check(r["rollback_of"] == {5: 3, 6: 1, 7: 2}.get(v), "v%d rollback_of %r" % (v, r["rollback_of"]))
    check(all(isinstance(c, str) for c in r["changes"]) and r["changes"], "v%d changes" % v)
by = {r["version"]: r for r in rs}
check(by[1]["description"].startswith("Deploy ") and by[1]["changes"] == ["first release"], "v1")
check(by[6]["config"] == {} and by[7]["config"] == {"A": "1", "B": "2"}, "configs of v6/v7")
PY
# one release by number over the API is the object of the list, plus its details
ONE=$(api GET "/v1/envs/production/apps/$APP/releases/5")
assert_eq "$(http_code "$ONE")" 200 "GET releases/5"
assert_eq "$(http_body "$ONE" | json 'json.dumps({k: v for k, v in d.items() if k != "process_details"}, sort_keys=True)')" \
  "$(json 'json.dumps([r for r in d["releases"] if r["version"]==5][0], sort_keys=True)' <"$T/rel.json")" "GET releases/5 vs the list"
pass "releases --json has the documented fields"

stop_server
pass "server stopped, no process left"
