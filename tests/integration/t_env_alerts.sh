#!/usr/bin/env bash
# Per-env alert webhooks set through the API and the CLI (`berth envs alerts ENV --webhook URL`)
# on a server whose server.yaml has no alerts: a crash loop in that env reaches the env's
# webhook (Slack-style JSON with "text"); a crash loop in another env does not; the setting
# takes effect without a restart, survives kill -9 and a restart (then with a server.yaml
# that gives the env a list too: the API's wins), and --clear stops it (server.yaml's list
# for the env applies again).
# A viewer token may read the list (redacted) but not set it (403); malformed bodies get 400
# naming the bad item and change nothing; the URL's secret path never shows in the server's
# log, in an API answer or error, or in the CLI's output.
source "$(dirname "$0")/lib.sh"

start_hook_receiver   # HOOK_PORT; every POST lands in $T/hooks.jsonl

SECRET=s3cr3t-T0KEN-$RANDOM$RANDOM
HOOK="http://127.0.0.1:$HOOK_PORT/services/$SECRET/staging?token=$SECRET"
SHOWN="http://127.0.0.1:$HOOK_PORT/…"      # how berth shows it
start_server --router off --dns off
grep -q '^alerts:' "$DATA/server.yaml" 2>/dev/null && fail "the test wants a server without server.yaml alerts"

# crash_app NAME ENV: an app whose worker runs until $T/crash-NAME exists, then exits 3 at
# once, every time (a crash loop)
crash_app() {
  local d=$T/app-$1
  mkdir -p "$d"
  cat >"$d/Procfile" <<PROC
worker: exec sh -c 'while [ ! -e $T/crash-$1 ]; do sleep 0.1; done; echo "boom \$BERTH_INSTANCE"; exit 3'
PROC
  run_ok "$T/deploy-$1.out" b deploy "$d" --app "$1" --env "$2"
}
# crash_looped APP ENV: its worker has crashed at least 3 times in a row (the alert's moment)
crash_looped() {
  b ps --app "$1" --env "$2" --json | json "max([i['restarts'] for i in d['instances']] + [0]) >= 3 and d['instances'][0]['state'] == 'backoff'" | grep -qx True
}
# hooks_for ENV: the alerts received for that env, one JSON line each
hooks_for() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["body"].get("env") == sys.argv[2]: print(json.dumps(r))' "$T/hooks.jsonl" "$1"; }
# hooks_at PATH-PREFIX: the alerts received at webhook paths starting with it
hooks_at() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["path"].startswith(sys.argv[2]): print(json.dumps(r))' "$T/hooks.jsonl" "$1"; }
# no_secret WHAT TEXT
no_secret() { assert_lacks "$2" "$SECRET" "$1 (the webhook's secret)"; }

crash_app cl staging
crash_app other production

# ---- nothing set yet
run_ok "$T/show0.out" b envs alerts staging
assert_has "$(cat "$T/show0.out")" "staging has no webhooks of its own" "envs alerts before setting"
assert_eq "$(b envs alerts staging --json | json 'd')" "{'env': 'staging', 'webhooks': [], 'source': 'none'}" "envs alerts --json before setting"
R=$(api GET /v1/envs/nosuch/alerts)
assert_eq "$(http_code "$R")" 404 "GET alerts of an unknown env"
assert_has "$(http_body "$R")" 'no env \"nosuch\"' "404 message"
assert_eq "$(http_code "$(api PUT /v1/envs/nosuch/alerts -d '{"webhooks":[]}')")" 404 "PUT alerts of an unknown env"
assert_eq "$(http_code "$(api GET /v1/envs/Bad_Env/alerts)")" 400 "GET alerts of a malformed env name"
pass "an env without webhooks says so; unknown env 404, malformed name 400"

# ---- set through the CLI: shown redacted, applied at once
run_ok "$T/set.out" b envs alerts staging --webhook "$HOOK"
OUT=$(cat "$T/set.out")
assert_has "$OUT" "staging's alerts now go to 1 webhook of its own" "envs alerts --webhook"
assert_has "$OUT" "  $SHOWN" "envs alerts --webhook shows the redacted URL"
no_secret "envs alerts --webhook output" "$OUT"
run_ok "$T/show1.out" b envs alerts staging
assert_eq "$(cat "$T/show1.out")" "staging's alerts go to 1 webhook of its own (and to the server-wide ones):
  $SHOWN" "envs alerts after setting"
J=$(b envs alerts staging --json)
no_secret "envs alerts --json" "$J"
assert_eq "$(json 'd' <<<"$J")" "{'env': 'staging', 'webhooks': ['$SHOWN'], 'source': 'api'}" "envs alerts --json after setting"
assert_eq "$(b envs alerts production --json | json 'd["source"]')" none "production is untouched"
pass "berth envs alerts ENV --webhook sets the list; it is only ever shown as scheme://host:port/…"

# ---- roles: a viewer reads (redacted), cannot set
VIEWER=$(b tokens create watcher --role viewer 2>/dev/null) || fail "tokens create viewer"
DEPLOYER=$(b tokens create ci --role deployer 2>/dev/null) || fail "tokens create deployer"
R=$(curl -s -w '\n%{http_code}' -H "Authorization: Bearer $VIEWER" "$BERTH_API/v1/envs/staging/alerts")
assert_eq "$(http_code "$R")" 200 "viewer GET"
assert_eq "$(http_body "$R" | json 'd["webhooks"]')" "['$SHOWN']" "viewer sees the redacted URL"
no_secret "viewer GET" "$R"
for tok in "$VIEWER" "$DEPLOYER"; do
  R=$(curl -s -w '\n%{http_code}' -X PUT -H "Authorization: Bearer $tok" -d '{"webhooks":[]}' "$BERTH_API/v1/envs/staging/alerts")
  assert_eq "$(http_code "$R")" 403 "PUT with a non-admin token"
  assert_has "$(http_body "$R")" "admin" "403 message"
done
rc=0; BERTH_TOKEN=$VIEWER b envs alerts staging --clear >"$T/viewer-clear.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exit status of envs alerts --clear with a viewer token"
assert_has "$(cat "$T/viewer-clear.out")" "admin" "viewer --clear message"
run_ok "$T/viewer-show.out" env BERTH_TOKEN="$VIEWER" "$BERTH" envs alerts staging
assert_has "$(cat "$T/viewer-show.out")" "  $SHOWN" "viewer envs alerts"
assert_eq "$(b envs alerts staging --json | json 'd["webhooks"]')" "['$SHOWN']" "the list after the refused changes"
pass "a viewer (and a deployer) sees the list redacted and gets 403 when setting it"

# ---- malformed bodies: 400 naming the item, nothing changed, no secret echoed
LONG="https://example.com/$(head -c 2100 /dev/zero | tr '\0' a)"
SEVENTEEN=$(python3 -c 'import json; print(json.dumps({"webhooks": ["https://h%d.example.com/x" % i for i in range(17)]}))')
bad_put() { # BODY WANT-IN-MESSAGE
  local r
  r=$(api PUT /v1/envs/staging/alerts --data-binary "$1")
  assert_eq "$(http_code "$r")" 400 "PUT $1"
  assert_has "$(http_body "$r")" "$2" "message for $1"
  no_secret "400 answer" "$r"
}
bad_put 'not json' "malformed JSON"
bad_put "{\"webhooks\": [\"https://h/$SECRET" "malformed JSON"
bad_put '["https://h/x"]' "must be a JSON object"
bad_put '{}' 'needs \"webhooks\"'
bad_put '{"webhook": ["https://h/x"]}' 'unknown field \"webhook\"'
bad_put '{"webhooks": "https://h/x"}' "must be a list"
bad_put "{\"webhooks\": [\"https://ok.example.com/a\", 42]}" "webhooks[1] must be a string"
bad_put "{\"webhooks\": [\"https://ok.example.com/a\", \"ftp://files.example.com/$SECRET\"]}" "webhooks[1]: ftp://files.example.com: only http and https"
bad_put "{\"webhooks\": [\"hooks.example.com/$SECRET\"]}" "webhooks[0]"
bad_put "{\"webhooks\": [\"https:///$SECRET\"]}" "webhooks[0]"
bad_put "{\"webhooks\": [\"https://h.example.com/$SECRET\\n\"]}" "webhooks[0]: the webhook URL holds a space or a control character"
bad_put "{\"webhooks\": [\"https://h.example.com/a b$SECRET\"]}" "webhooks[0]"
bad_put "{\"webhooks\": [\"$LONG\"]}" "webhooks[0]: the webhook URL is longer than 2048 bytes"
bad_put "{\"webhooks\": [\"https://h.example.com/$SECRET\", \"https://h.example.com/$SECRET\"]}" "webhooks[1] repeats webhooks[0]"
bad_put "$SEVENTEEN" "at most 16"
bad_put '{"webhooks": ["https://h.example.com/x"], "webhooks": []}' "malformed JSON"
assert_eq "$(b envs alerts staging --json | json 'd')" "{'env': 'staging', 'webhooks': ['$SHOWN'], 'source': 'api'}" "the list after the bad bodies"
# the CLI checks --webhook before sending (usage error, exit 2) without quoting the URL
rc=0; b envs alerts staging --webhook "ftp://files.example.com/$SECRET" >"$T/cli-bad.out" 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status of envs alerts --webhook ftp://..."
assert_has "$(cat "$T/cli-bad.out")" "only http and https" "CLI message for an ftp webhook"
no_secret "CLI usage error" "$(cat "$T/cli-bad.out")"
rc=0; b envs alerts staging --webhook "$HOOK" --clear >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status of --webhook with --clear"
rc=0; b envs alerts >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status of envs alerts without an env"
rc=0; b envs --webhook "$HOOK" >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status of envs --webhook"
pass "malformed bodies get 400 naming the item and change nothing; the CLI refuses bad URLs itself"

# ---- a crash loop in staging reaches its webhook; one in production does not
touch "$T/crash-cl" "$T/crash-other"
wait_for '[ -n "$(hooks_for staging)" ]' 200 || { b ps --app cl --env staging; cat "$T/hooks.jsonl"; fail "no alert reached staging's webhook"; }
A=$(hooks_for staging | head -1)
assert_eq "$(json '(d["path"], d["ctype"].split(";")[0])' <<<"$A")" "('/services/$SECRET/staging?token=$SECRET', 'application/json')" "the alert's POST"
assert_eq "$(json '[d["body"][k] for k in ("kind", "env", "app", "process", "instance")]' <<<"$A")" \
  "['crash_loop', 'staging', 'cl', 'worker', 'worker.1']" "crash_loop alert fields"
assert_has "$(json 'd["body"]["text"]' <<<"$A")" "crash loop: staging/cl worker.1" "the alert's text"
wait_for 'crash_looped other production' 200 || { b ps --app other; fail "the production worker did not crash-loop"; }
sleep 1
assert_eq "$(hooks_for production)" "" "alerts of production at staging's webhook"
pass "a crash loop in staging reaches staging's webhook (no restart needed); production's does not"

# ---- kill -9, then a restart with server.yaml giving staging a list of its own: the list
# set through the API is still there, still used, and wins over server.yaml's
N0=$(hooks_at /services/ | wc -l)
kill9_server
cat >"$T/server.yaml" <<YAML
alerts:
  envs:
    staging:
      webhooks: [http://127.0.0.1:$HOOK_PORT/yaml/staging]
YAML
restart_server --router off --dns off --config "$T/server.yaml"
assert_eq "$(b envs alerts staging --json | json 'd')" "{'env': 'staging', 'webhooks': ['$SHOWN'], 'source': 'api'}" "the list after kill -9 and a restart"
# the restarted server starts the worker again, which crash-loops again: a new alert
wait_for '[ "$(hooks_at /services/ | wc -l)" -gt "$N0" ]' 200 || { b ps --app cl --env staging; fail "no alert at staging's webhook after the restart"; }
assert_eq "$(hooks_at /services/ | tail -1 | json 'd["body"]["kind"]')" crash_loop "the alert after the restart"
assert_eq "$(hooks_at /yaml/)" "" "alerts at server.yaml's staging webhook while the API's list is set"
pass "the env's webhooks survive kill -9 and a restart, are applied at start-up and win over server.yaml's"

# ---- --clear stops it; server.yaml's list for staging applies again
run_ok "$T/clear.out" b envs alerts staging --clear
assert_eq "$(cat "$T/clear.out")" "Its own list was cleared; staging's alerts go to 1 webhook of its own from server.yaml (and to the server-wide ones):
  $SHOWN" "envs alerts --clear"
assert_eq "$(b envs alerts staging --json | json 'd')" "{'env': 'staging', 'webhooks': ['$SHOWN'], 'source': 'server.yaml'}" "the list after --clear"
N1=$(hooks_at /services/ | wc -l)
crash_app cl2 staging
touch "$T/crash-cl2"
wait_for '[ -n "$(hooks_at /yaml/)" ]' 200 || { b ps --app cl2 --env staging; cat "$T/hooks.jsonl"; fail "no alert at server.yaml's staging webhook after --clear"; }
assert_eq "$(hooks_at /yaml/ | json '[d["body"][k] for k in ("kind", "env", "app")]')" "['crash_loop', 'staging', 'cl2']" "the alert at server.yaml's webhook"
rm -f "$T/crash-cl"      # cl recovers: its recovered alert goes to server.yaml's webhook only
wait_for '[ "$(hooks_at /yaml/ | wc -l)" = 2 ]' 400 || { b ps --app cl --env staging; cat "$T/hooks.jsonl"; fail "no recovered alert at server.yaml's webhook"; }
assert_eq "$(hooks_at /yaml/ | tail -1 | json '[d["body"][k] for k in ("kind", "app")]')" "['recovered', 'cl']" "the recovered alert"
assert_eq "$(hooks_at /services/ | wc -l)" "$N1" "alerts at the API's webhook after --clear"
# an env without any list: production's set to [] through PUT answers "none"
R=$(api PUT /v1/envs/production/alerts -d '{"webhooks": []}')
assert_eq "$(http_code "$R")" 200 "PUT an empty list"
assert_eq "$(http_body "$R" | json 'd')" "{'env': 'production', 'webhooks': [], 'source': 'none'}" "PUT an empty list: the answer"
pass "after --clear the API's webhook gets nothing more; server.yaml's list for the env applies again"

# ---- the secret is nowhere in the server's log
stop_server
no_secret "server log" "$(cat "$T/server.log")"
assert_has "$(cat "$T/server.log")" "alerts: env staging now sends its alerts to its own 1 webhook" "server log of the change"
pass "the webhook's secret never appears in the server's log; server stopped, no process left"
