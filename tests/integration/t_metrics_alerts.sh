#!/usr/bin/env bash
# Metrics and alerts: GET /metrics needs a token; with one it is Prometheus text that
# `promtool check metrics` accepts, with instances, router requests, deploys and DNS queries
# after some traffic; a real Prometheus server scrapes it with a bearer token. Webhook alerts
# (server.yaml alerts:) reach a receiver: a worker that starts crash-looping sends crash_loop,
# a failed deploy sends deploy_rolled_back (deploy_failed for a first deploy, also to the
# env's own webhook), each with a Slack-style "text" and kind/env/app/process fields.
source "$(dirname "$0")/lib.sh"
GAPS=()   # known gaps against the docs, reported at the end so the rest still runs
gap() { echo "GAP  [$TEST_NAME] $*"; GAPS+=("$*"); }

start_hook_receiver   # HOOK_PORT; every POST lands in $T/hooks.jsonl

cat >"$T/server.yaml" <<YAML
alerts:
  name: it-server
  webhooks: [http://127.0.0.1:$HOOK_PORT/hook]
  rate_limit: 0s
  envs:
    staging:
      webhooks: [http://127.0.0.1:$HOOK_PORT/staging-hook]
YAML
start_server_net --config "$T/server.yaml"

# an app whose worker runs fine until $T/crash exists, then exits 3 at once, every time
APP=al
make_echo_app al; D=$APP_DIR
cat >"$D/Procfile" <<PROC
web: exec python3 echo.py al
worker: exec sh -c 'while [ ! -e $T/crash ]; do if [ -e $T/late ]; then sleep 1; echo "late boom"; exit 4; fi; sleep 0.1; done; echo "boom \$BERTH_INSTANCE"; exit 3'
PROC
run_ok "$T/d1.out" b deploy "$D" --app $APP

# ---- /metrics needs a token
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$BERTH_API/metrics")" 401 "/metrics without a token"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' "$BERTH_API/metrics")" 401 "/metrics with a wrong token"
# some traffic: router requests to a route and to no route, DNS queries (counted from a
# first scrape: start_server_net's probe of the router was already an unmatched request)
metrics() { curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_API/metrics"; }
metrics >"$T/m0.txt"
for i in 1 2 3; do rcurl al.localhost /m >/dev/null; done
rcurl nowhere.test / >/dev/null
assert_eq "$(rdig web.al.service.consul A +short)" 127.0.0.1 "dig before scraping"
rdig nosuch.service.consul A >/dev/null
rdig web.al.service.consul SRV >/dev/null
curl -s -D "$T/mh" -o "$T/m1.txt" -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_API/metrics" || fail "GET /metrics failed"
grep -q '^HTTP/1.1 200' "$T/mh" || fail "/metrics: $(head -1 "$T/mh")"
grep -qi '^content-type: text/plain; version=0.0.4' "$T/mh" || fail "/metrics content type: $(grep -i content-type "$T/mh")"
promtool check metrics <"$T/m1.txt" >"$T/promtool.out" 2>&1 || { cat "$T/promtool.out"; fail "promtool check metrics refused /metrics"; }
M=$(cat "$T/m1.txt")
# val NAME{LABELS} [FILE]: the sample's value (empty when absent)
val() { grep -F "$1 " "${2:-$T/m1.txt}" | head -1 | awk '{print $NF}'; }
# delta NAME{LABELS}: how much the sample grew since the first scrape (absent counts as 0)
delta() { local a b; a=$(val "$1"); b=$(val "$1" "$T/m0.txt"); echo $(( ${a:-0} - ${b:-0} )); }
assert_eq "$(val 'berth_instances{env="production",app="al",process="web",state="running"}')" 1 "berth_instances web running"
assert_eq "$(val 'berth_instances{env="production",app="al",process="worker",state="running"}')" 1 "berth_instances worker running"
assert_eq "$(val 'berth_deploys_total{env="production",app="al",outcome="succeeded"}')" 1 "berth_deploys_total succeeded"
assert_eq "$(val 'berth_deploy_duration_seconds_count{env="production",app="al"}')" 1 "berth_deploy_duration_seconds_count"
assert_eq "$(delta 'berth_router_requests_total{route="al.localhost/",status="2xx"}')" 3 "router requests to al.localhost/"
assert_eq "$(delta 'berth_router_requests_total{route="unmatched",status="4xx"}')" 1 "router requests that matched no route"
assert_eq "$(delta 'berth_dns_queries_total{qtype="A",rcode="NOERROR"}')" 1 "DNS A NOERROR queries"
assert_eq "$(delta 'berth_dns_queries_total{qtype="A",rcode="NXDOMAIN"}')" 1 "DNS A NXDOMAIN queries"
assert_eq "$(delta 'berth_dns_queries_total{qtype="SRV",rcode="NOERROR"}')" 1 "DNS SRV NOERROR queries"
for f in berth_log_lines_total berth_process_resident_memory_bytes berth_process_open_fds berth_process_start_time_seconds \
  berth_router_retries_total berth_router_client_aborts_total berth_router_access_log_dropped_total 'berth_router_connections{kind="client"}' \
  'berth_router_connections{kind="upstream_idle"}'; do
  grep -q "^$f " "$T/m1.txt" || fail "/metrics has no $f sample"
done
grep -q '^berth_router_request_duration_seconds_count{route="al.localhost/"} 3$' "$T/m1.txt" ||
  gap "/metrics has no router latency histogram (berth_router_request_duration_seconds{route=\"al.localhost/\"}, docs/metrics.md) after 3 requests"
# counters move: three more requests
for i in 1 2 3; do rcurl al.localhost /m >/dev/null; done
assert_eq "$(metrics | grep -F 'berth_router_requests_total{route="al.localhost/",status="2xx"} ' | awk '{print $NF}')" 6 "router requests after 3 more"
pass "/metrics: 401 without a token; promtool accepts it; instances, deploys, router and DNS counters"

# ---- a real Prometheus server scrapes berth with the bearer token
PROM_PORT=$(free_port)
printf '%s' "$BERTH_TOKEN" >"$T/prom-token"
echo wrong-token >"$T/prom-bad-token"
cat >"$T/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: berth
    authorization:
      credentials_file: $T/prom-token
    static_configs:
      - targets: ["127.0.0.1:$API_PORT"]
  - job_name: berth-bad-token
    authorization:
      credentials_file: $T/prom-bad-token
    static_configs:
      - targets: ["127.0.0.1:$API_PORT"]
YAML
promtool check config "$T/prometheus.yml" >"$T/promcfg.out" 2>&1 || { cat "$T/promcfg.out"; fail "promtool check config"; }
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom-data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$T/prometheus.log" 2>&1 &
BG_PIDS+=($!)
PROM="http://127.0.0.1:$PROM_PORT"
# target_health JOB: "up", "down" or "unknown" as Prometheus sees berth
target_health() {
  curl -s "$PROM/api/v1/targets" | json "[t['health'] for t in d['data']['activeTargets'] if t['labels']['job'] == '$1'][0]"
}
wait_for '[ "$(target_health berth)" = up ]' 300 ||
  { tail -20 "$T/prometheus.log"; curl -s "$PROM/api/v1/targets"; fail "Prometheus never scraped berth successfully"; }
wait_for '[ "$(target_health berth-bad-token)" = down ]' 300 || fail "the scrape with a wrong token is not down: $(target_health berth-bad-token)"
assert_has "$(curl -s "$PROM/api/v1/targets" | json "[t['lastError'] for t in d['data']['activeTargets'] if t['labels']['job'] == 'berth-bad-token'][0]")" \
  401 "Prometheus' error for the wrong token"
q() { curl -s "$PROM/api/v1/query" --data-urlencode "query=$1"; }
wait_for '[ "$(q "berth_instances{job=\"berth\",app=\"al\",state=\"running\"}" | json "len(d[\"data\"][\"result\"])")" = 2 ]' 100 ||
  fail "berth_instances is not queryable in Prometheus: $(q 'berth_instances')"
assert_eq "$(q 'sum(berth_instances{job="berth",app="al"})' | json 'd["data"]["result"][0]["value"][1]')" 2 "sum(berth_instances) in Prometheus"
assert_eq "$(q 'berth_router_requests_total{job="berth",route="al.localhost/"}' | json 'd["data"]["result"][0]["value"][1]')" 6 \
  "router requests in Prometheus"
pass "a real Prometheus server scrapes /metrics with a bearer token (and fails with a wrong one)"

# ---- alerts: a worker starts crash-looping
# alerts KIND: the received alerts of that kind, one JSON line each
alerts() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["body"].get("kind") == sys.argv[2]: print(json.dumps(r))' "$T/hooks.jsonl" "$1"; }
assert_eq "$(wc -l <"$T/hooks.jsonl")" 0 "alerts before anything went wrong"
touch "$T/crash"
wait_for '[ -n "$(alerts crash_loop)" ]' 200 || { b ps --app $APP; cat "$T/hooks.jsonl"; fail "no crash_loop alert"; }
A=$(alerts crash_loop | head -1)
assert_eq "$(json '(d["path"], d["ctype"].split(";")[0])' <<<"$A")" "('/hook', 'application/json')" "crash_loop POST"
assert_eq "$(json '[d["body"][k] for k in ("kind", "env", "app", "process", "instance", "server")]' <<<"$A")" \
  "['crash_loop', 'production', 'al', 'worker', 'worker.1', 'it-server']" "crash_loop alert fields"
TEXT=$(json 'd["body"]["text"]' <<<"$A")
assert_has "$TEXT" "[berth@it-server] " "crash_loop text"
assert_has "$TEXT" "production/al" "crash_loop text"
assert_has "$TEXT" "worker.1" "crash_loop text"
assert_has "$(json 'd["body"]["message"]' <<<"$A")" "exit status 3" "crash_loop message"
json 'd["body"]["ts"]' <<<"$A" | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' || fail "crash_loop ts: $(json 'd["body"]["ts"]' <<<"$A")"
grep -q 'staging-hook' "$T/hooks.jsonl" && fail "a production alert went to the staging webhook"
[ "$(metrics | grep -F 'berth_instance_restarts_total{env="production",app="al",process="worker"} ' | awk '{print $NF}')" -ge 3 ] ||
  fail "berth_instance_restarts_total for the crash-looping worker: $(metrics | grep restarts_total)"
wait_for 'metrics | grep -qF "berth_alerts_total{kind=\"crash_loop\",outcome=\"sent\"} "' 50 ||
  fail "berth_alerts_total has no sent crash_loop: $(metrics | grep alerts_total)"
pass "a crash-looping worker sends a crash_loop alert (Slack text, kind/env/app/process/instance)"
rm -f "$T/crash"
wait_for '[ -n "$(alerts recovered)" ]' 400 || { b ps --app $APP; fail "no recovered alert once the worker runs again"; }
assert_eq "$(alerts recovered | head -1 | json '[d["body"][k] for k in ("kind", "env", "app", "process", "instance")]')" \
  "['recovered', 'production', 'al', 'worker', 'worker.1']" "recovered alert fields"
pass "the worker running again sends a recovered alert"

# ---- a worker that crashes a second after each start: still a crash loop, no "recovered"
# until it has stayed up (10 s) again
NREC=$(alerts recovered | wc -l)
NLOOP=$(alerts crash_loop | wc -l)
touch "$T/late"
wait_for '[ "$(alerts crash_loop | wc -l)" -gt "$NLOOP" ]' 300 || { b ps --app $APP; fail "no crash_loop alert for late crashes"; }
sleep 6
assert_eq "$(alerts recovered | wc -l)" "$NREC" "recovered alerts while the worker still crashes a second after each start"
rm -f "$T/late"
wait_for '[ "$(alerts recovered | wc -l)" -gt "$NREC" ]' 400 || { b ps --app $APP; fail "no recovered alert once the worker stays up"; }
pass "late crashes: a crash_loop alert, and recovered only once the worker stayed up"

# ---- alerts: a deploy that fails its health checks is rolled back
FD=$T/app-fd
make_echo_app fd "$FD"
run_ok "$T/fd1.out" b deploy "$FD" --app fd
cat >"$FD/berth.yaml" <<'YAML'
processes:
  web:
    command: exec sleep 1000
    health: {deadline: 2s}
YAML
rc=0; b deploy "$FD" --app fd >"$T/fd2.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exit status of the failing deploy"
wait_for '[ -n "$(alerts deploy_rolled_back)" ]' 100 || { cat "$T/hooks.jsonl"; fail "no deploy_rolled_back alert"; }
A=$(alerts deploy_rolled_back | head -1)
assert_eq "$(json '[d["body"][k] for k in ("kind", "env", "app", "process", "instance")]' <<<"$A")" \
  "['deploy_rolled_back', 'production', 'fd', None, None]" "deploy_rolled_back alert fields"
assert_has "$(json 'd["body"]["text"]' <<<"$A")" "[berth@it-server] " "deploy_rolled_back text"
assert_has "$(json 'd["body"]["text"]' <<<"$A")" "production/fd" "deploy_rolled_back text"
assert_eq "$(rcurl fd.localhost / | json 'd["release"]')" 1 "v1 still serves after the rollback"
pass "a deploy that never gets healthy sends deploy_rolled_back"

# ---- alerts: a first deploy fails (in staging: also to the env's own webhook)
FF=$T/app-ff
mkdir -p "$FF"
cp "$FD/berth.yaml" "$FF/berth.yaml"
rc=0; b deploy "$FF" --app ff --env staging >"$T/ff.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exit status of the failing first deploy"
wait_for '[ "$(alerts deploy_failed | while read -r l; do json "d[\"path\"]" <<<"$l"; done | sort | tr "\n" " ")" = "/hook /staging-hook " ]' 100 ||
  { cat "$T/hooks.jsonl"; fail "deploy_failed did not reach both the server's and staging's webhooks"; }
A=$(alerts deploy_failed | head -1)
assert_eq "$(json '[d["body"][k] for k in ("kind", "env", "app", "process")]' <<<"$A")" \
  "['deploy_failed', 'staging', 'ff', None]" "deploy_failed alert fields"
assert_has "$(json 'd["body"]["text"]' <<<"$A")" "staging/ff" "deploy_failed text"
M=$(metrics)
assert_has "$M" 'berth_deploys_total{env="production",app="fd",outcome="rolled_back"} 1' "deploys metric"
assert_has "$M" 'berth_deploys_total{env="staging",app="ff",outcome="failed"} 1' "deploys metric"
pass "a failed first deploy sends deploy_failed to the server's and the env's webhooks"

stop_server
pass "server stopped, no process left"
[ ${#GAPS[@]} = 0 ] || fail "${#GAPS[@]} gap(s): ${GAPS[*]}"
