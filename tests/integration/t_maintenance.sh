#!/usr/bin/env bash
# Maintenance mode (`berth maintenance on|off`): the router answers every host of the app (a
# stored route and the default APP.localhost / APP.ENV.localhost) with a 503 maintenance page
# (branded, Retry-After: 60, Cache-Control: no-store; JSON for JSON clients) as soon as the
# command returns, while the instance keeps running untouched (same pid, answering on its
# own port, `berth ps` unchanged) and other apps are served; the access log records the 503s;
# a viewer may read the state but not change it; a deploy goes through and the mode stays on;
# it survives a server restart (in force before the first request); maintenance.html in the
# route's --error-pages directory, then in server.yaml's router.error_pages, replaces the
# built-in page; off -> 200 again.
source "$(dirname "$0")/lib.sh"

GLOBAL=$T/global-pages
PAGES=$T/shop-pages
mkdir -p "$GLOBAL" "$PAGES"
printf 'router:\n  error_pages: %s\n' "$GLOBAL" >"$T/server.yaml"
start_server_net --config "$T/server.yaml"

make_echo_app shop; SHOP=$APP_DIR
make_echo_app blog; BLOG=$APP_DIR
run_ok "$T/d-shop.out" b deploy "$SHOP" --app shop
run_ok "$T/d-blog.out" b deploy "$BLOG" --app blog
run_ok "$T/r-shop.out" b routes add shop.test --app shop --error-pages "$PAGES"
wait_for '[ "$(rcode shop.test /)" = 200 ]' 50 || fail "shop.test before maintenance: $(rcode shop.test /)"

run_ok "$T/m0.out" b maintenance --app shop
assert_eq "$(cat "$T/m0.out")" "Maintenance mode is off for production/shop." "maintenance state before"
assert_eq "$(b maintenance --app shop --json | json 'd["maintenance"]')" False "maintenance --json before"

# ---- on: every host of the app answers the maintenance page at once
PS_BEFORE=$(b ps --app shop --json | json "sorted((i['id'], i['state'], i['pid'], i['port'], i['release'], i['restarts']) for i in d['instances'])")
PID=$(pids_of shop web)
PORT=$(b ps --app shop --json | json "[i['port'] for i in d['instances'] if i['process'] == 'web'][0]")
run_ok "$T/m1.out" b maintenance on --app shop
assert_has "$(cat "$T/m1.out")" "Maintenance mode is on for production/shop: its hosts answer 503 with the maintenance page; its instances keep running." "maintenance on output"
assert_has "$(cat "$T/m1.out")" "Hosts: " "maintenance on output lists the hosts"
for h in shop.test shop.localhost shop.production.localhost; do
  assert_has "$(grep '^Hosts: ' "$T/m1.out")" "$h" "hosts listed by maintenance on"
done
# no waiting: the command returned once the router routes with the new state
rcurl shop.test /cart -D "$T/h1" -o "$T/b1"
grep -q '^HTTP/1.1 503' "$T/h1" || fail "shop.test in maintenance: $(head -1 "$T/h1")"
grep -qi '^retry-after: 60' "$T/h1" || fail "no Retry-After: 60: $(cat "$T/h1")"
grep -qi '^cache-control: no-store' "$T/h1" || fail "no Cache-Control: no-store: $(cat "$T/h1")"
grep -qi '^content-type: text/html; charset=utf-8' "$T/h1" || fail "maintenance page is not HTML: $(cat "$T/h1")"
grep -qi '^x-request-id: ' "$T/h1" || fail "maintenance page without X-Request-Id"
grep -q 'Down for maintenance' "$T/b1" || fail "built-in maintenance page without its text: $(cat "$T/b1")"
grep -q 'BERTH' "$T/b1" || fail "built-in maintenance page is not branded: $(cat "$T/b1")"
assert_eq "$(rcode shop.localhost /)" 503 "shop.localhost in maintenance"
assert_eq "$(rcode shop.production.localhost /x)" 503 "shop.production.localhost in maintenance"
assert_eq "$(rcode shop.test / -X POST --data-binary 'order=1')" 503 "a POST in maintenance"
assert_eq "$(rcurl shop.test / -H 'Accept: application/json' | json '(d["status"], d["error"], bool(d["request_id"]))')" \
  "(503, 'this app is down for maintenance', True)" "JSON maintenance answer"
size=$(rcurl shop.test / -I -o /dev/null -D "$T/hhead" -w '%{size_download}')
grep -q '^HTTP/1.1 503' "$T/hhead" && [ "$size" = 0 ] || fail "HEAD in maintenance ($size body bytes): $(cat "$T/hhead")"
assert_eq "$(rcurl blog.localhost / | json 'd["name"]')" blog "another app is served meanwhile"
pass "maintenance on: shop.test and the default hosts answer 503 with the built-in page at once; other apps are served"

# ---- the instance is untouched and still answers on its own port
assert_eq "$(b ps --app shop --json | json "sorted((i['id'], i['state'], i['pid'], i['port'], i['release'], i['restarts']) for i in d['instances'])")" \
  "$PS_BEFORE" "berth ps in maintenance"
alive "$PID" || fail "the instance $PID is gone"
assert_eq "$(curl -s -m 5 "http://127.0.0.1:$PORT/direct" | json '(d["name"], d["path"])')" "('shop', '/direct')" \
  "the instance on its own port"
pass "the instance keeps running (pid $PID, port $PORT, ps unchanged) and answers on its own port"

# ---- the state, read by anyone, changed only by a deployer
run_ok "$T/m2.out" b maintenance --app shop
assert_has "$(cat "$T/m2.out")" "Maintenance mode is on for production/shop" "maintenance state"
VIEWER=$(b tokens create "watcher-$RANDOM" --role viewer 2>/dev/null) || fail "tokens create viewer"
out=$(BERTH_TOKEN=$VIEWER api GET /v1/envs/production/apps/shop/maintenance -H "Authorization: Bearer $VIEWER")
assert_eq "$(http_code "$out")" 200 "viewer GET maintenance"
assert_eq "$(http_body "$out" | json 'd["maintenance"]')" True "viewer GET maintenance state"
out=$(curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer $VIEWER" -d '{"on": false}' \
  "$BERTH_API/v1/envs/production/apps/shop/maintenance")
assert_eq "$(http_code "$out")" 403 "viewer POST maintenance"
rc=0; BERTH_TOKEN=$VIEWER b maintenance off --app shop >"$T/vm.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "viewer maintenance off exit status"
assert_has "$(cat "$T/vm.out")" "may only read" "viewer maintenance off message"
assert_eq "$(rcode shop.test /)" 503 "still in maintenance after the viewer's attempt"
out=$(api POST /v1/envs/production/apps/shop/maintenance -d '{"on": "yes"}')
assert_eq "$(http_code "$out")" 400 "POST maintenance with a non-boolean"
assert_has "$(http_body "$out")" 'expected {\"on\": true} or {\"on\": false}' "POST maintenance with a non-boolean"
out=$(api POST /v1/envs/production/apps/nope/maintenance -d '{"on": true}')
assert_eq "$(http_code "$out")" 404 "POST maintenance for an unknown app"
rc=0; b maintenance sideways --app shop >"$T/bad.out" 2>&1 || rc=$?
assert_eq "$rc" 2 "maintenance with a bad argument"
assert_has "$(cat "$T/bad.out")" 'maintenance takes on or off, got "sideways"' "maintenance with a bad argument"
run_ok "$T/m3.out" b maintenance on --app shop
assert_has "$(cat "$T/m3.out")" "Maintenance mode was already on for production/shop." "maintenance on twice"
pass "a viewer reads the state but gets 403 changing it; bad bodies, unknown apps and bad arguments are refused"

# ---- the access log records the 503s
wait_for 'b logs --router -n 200 | grep "host=\"shop.test\"" | grep -q "status=503.*maintenance=1"' 50 ||
  { b logs --router -n 20; fail "no maintenance 503 of shop.test in the access log"; }
line=$(b logs --router -n 200 | grep 'target="/cart" host="shop.test"' | tail -1)
assert_has "$line" 'route="shop.test/" app=production/shop upstream=- addr=- status=503' "access-log line of a maintenance answer"
assert_has "$line" "maintenance=1" "access-log line of a maintenance answer"
pass "the access log records the maintenance 503s (upstream=-, maintenance=1)"

# ---- a deploy goes through; maintenance stays on
echo "v2" >"$SHOP/version.txt"
run_ok "$T/d2.out" b deploy "$SHOP" --app shop
wait_for '[ "$(b ps --app shop --json | json "sorted(set(i[\"release\"] for i in d[\"instances\"]))")" = "[2]" ]' 100 ||
  fail "the deploy's release is not the only one running: $(ps_rows shop)"
PORT2=$(b ps --app shop --json | json "[i['port'] for i in d['instances'] if i['process'] == 'web'][0]")
assert_eq "$(curl -s -m 5 "http://127.0.0.1:$PORT2/" | json 'd["release"]')" 2 "the new instance on its own port"
assert_eq "$(rcode shop.test /)" 503 "shop.test after a deploy in maintenance"
assert_eq "$(rcode shop.localhost /)" 503 "shop.localhost after a deploy in maintenance"
assert_eq "$(b maintenance --app shop --json | json 'd["maintenance"]')" True "maintenance state after a deploy"
pass "a deploy in maintenance goes through and the mode stays on"

# ---- a server restart: still on, before the first request
stop_server
start_server_net --config "$T/server.yaml"
assert_eq "$(rcode shop.test /)" 503 "shop.test right after a restart"
wait_for '[ "$(count_proc shop web)" = 1 ]' 100 || fail "shop's web instance not running after the restart: $(ps_rows shop)"
assert_eq "$(rcode shop.test /)" 503 "shop.test after a restart with its instance running"
assert_eq "$(rcode shop.localhost /)" 503 "shop.localhost after a restart"
assert_eq "$(rcurl blog.localhost / | json 'd["name"]')" blog "blog after a restart"
assert_has "$(b maintenance --app shop)" "Maintenance mode is on for production/shop" "maintenance state after a restart"
pass "maintenance mode survives a server restart"

# ---- custom pages: the route's maintenance.html, then the server's
printf '<html><body>shop is being restocked it-shop-maint</body></html>\n' >"$PAGES/maintenance.html"
wait_for '[ "$(rcurl shop.test /)" = "$(cat "$PAGES/maintenance.html")" ]' 50 ||
  fail "the route's maintenance.html is not served: $(rcurl shop.test /)"
rcurl shop.test / -D "$T/h2" -o /dev/null
grep -q '^HTTP/1.1 503' "$T/h2" && grep -qi '^retry-after: 60' "$T/h2" || fail "custom maintenance page head: $(cat "$T/h2")"
grep -q 'Down for maintenance' <<<"$(rcurl shop.localhost /)" || fail "a default host without a page of its own: $(rcurl shop.localhost /)"
printf '<html><body>all of us are away it-global-maint</body></html>\n' >"$GLOBAL/maintenance.html"
wait_for '[ "$(rcurl shop.localhost /)" = "$(cat "$GLOBAL/maintenance.html")" ]' 50 ||
  fail "server.yaml's maintenance.html is not served: $(rcurl shop.localhost /)"
assert_eq "$(rcurl shop.test /)" "$(cat "$PAGES/maintenance.html")" "the route's page wins over the server's"
assert_eq "$(rcurl shop.test / -H 'Accept: application/json' | json 'd["status"]')" 503 "JSON whatever the pages"
pass "maintenance.html from the route's --error-pages directory, then from router.error_pages"

# ---- off: served again at once
run_ok "$T/m4.out" b maintenance off --app shop
assert_has "$(cat "$T/m4.out")" "Maintenance mode is off for production/shop: its hosts are served by the app again." "maintenance off output"
assert_eq "$(rcurl shop.test /x | json 'd["name"]')" shop "shop.test after maintenance off"
assert_eq "$(rcurl shop.localhost /x | json 'd["name"]')" shop "shop.localhost after maintenance off"
assert_eq "$(rcode shop.production.localhost /)" 200 "shop.production.localhost after maintenance off"
run_ok "$T/m5.out" b maintenance off --app shop
assert_has "$(cat "$T/m5.out")" "Maintenance mode was already off for production/shop." "maintenance off twice"
assert_eq "$(b maintenance --app shop --json | json '(d["maintenance"], d["app"], d["env"])')" "(False, 'shop', 'production')" \
  "maintenance --json after off"
pass "maintenance off: the app answers again"

stop_server
pass "server stopped, no process left"
