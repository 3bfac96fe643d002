#!/usr/bin/env bash
# The router's replaceable error pages and server.yaml's router: section: a server-wide
# error_pages directory (its 404.html for an unmatched host, its 503.html for a route without
# a directory of its own), a route's own --error-pages directory (its 503.html when the app is
# scaled to 0; a relative DIR resolved by the CLI), JSON answers whatever the pages are, the
# other router: settings in force (threads: 1, forwarded_proto, max_body), bad error_pages
# refused by the API (400 naming the field) and by the CLI (exit 1, nothing stored), and a
# server.yaml mistake refused at start-up with file:line:col.
source "$(dirname "$0")/lib.sh"

# ---- server.yaml mistakes: the server refuses to start and names file:line:col
bad_start() { # YAML-FILE: run a server on it; prints its stderr, returns its exit status
  local rc=0
  timeout 20 "$BERTH" server --data "$T/bad-data" --api "127.0.0.1:$(free_port)" --router "127.0.0.1:$(free_port)" \
    --dns off --config "$1" >"$T/bad.out" 2>&1 || rc=$?
  cat "$T/bad.out"
  return $rc
}
printf 'router:\n  threads: 2\n  timeouts:\n    read: 5s\n' >"$T/bad1.yaml"
rc=0; out=$(bad_start "$T/bad1.yaml") || rc=$?
assert_eq "$rc" 1 "server exit status on an unknown router.timeouts key"
assert_has "$out" "$T/bad1.yaml:4:5: unknown key \"read\" in router.timeouts (expected one of connect, header, idle, response, body, upstream_idle, tunnel_idle)" "unknown key message"
printf 'router:\n  workers: 2\n' >"$T/bad2.yaml"
rc=0; out=$(bad_start "$T/bad2.yaml") || rc=$?
assert_eq "$rc" 1 "server exit status on an unknown router key"
assert_has "$out" "$T/bad2.yaml:2:3: unknown key \"workers\" in router" "unknown router key message"
printf 'router:\n  error_pages: %s/no-such-dir\n' "$T" >"$T/bad3.yaml"
rc=0; out=$(bad_start "$T/bad3.yaml") || rc=$?
assert_eq "$rc" 1 "server exit status on a missing error_pages directory"
assert_has "$out" "$T/bad3.yaml:2:16: router.error_pages: \"$T/no-such-dir\" does not exist" "missing error_pages message"
printf 'router:\n  threads: 0\n' >"$T/bad4.yaml"
rc=0; out=$(bad_start "$T/bad4.yaml") || rc=$?
assert_eq "$rc" 1 "server exit status on threads: 0"
assert_has "$out" "$T/bad4.yaml:2:12: router.threads: expected an integer from 1 to 64, got \"0\"" "threads message"
pass "server.yaml router: mistakes stop the server at start-up with file:line:col"

# ---- a server with a global error_pages directory, one router thread and the other settings
GLOBAL=$T/global-pages
mkdir -p "$GLOBAL"
printf '<html><body>global not found it-global-404</body></html>\n' >"$GLOBAL/404.html"
printf '<html><body>global unavailable it-global-503</body></html>\n' >"$GLOBAL/503.html"
cat >"$T/server.yaml" <<YAML
router:
  error_pages: $GLOBAL/
  threads: 1
  timeouts:
    connect: 1s
    header: 5s
    upstream_idle: 5s
  pool_max_idle: 8
  max_body: 64k
  forwarded_proto: https
YAML
start_server_net --config "$T/server.yaml"
grep -q "router: error pages from $GLOBAL\$" "$T/server.log" || fail "no 'error pages from' line in the server log"

make_echo_app shop; SHOP=$APP_DIR
make_echo_app blog; BLOG=$APP_DIR
run_ok "$T/d-shop.out" b deploy "$SHOP" --app shop
run_ok "$T/d-blog.out" b deploy "$BLOG" --app blog

# threads: 1 starts and serves; forwarded_proto and max_body are in force
assert_eq "$(rcurl shop.localhost /x | json 'd["name"]')" shop "shop.localhost through a one-thread router"
assert_eq "$(rcurl shop.localhost /x | json '[v for k, v in d["headers"] if k.lower() == "x-forwarded-proto"]')" \
  "['https']" "X-Forwarded-Proto from router.forwarded_proto"
head -c 70000 /dev/zero | tr '\0' a >"$T/big.body"
assert_eq "$(rcode shop.localhost /up --data-binary @"$T/big.body")" 413 "a body over router.max_body (64k)"
assert_eq "$(rcode shop.localhost /up --data-binary 'small')" 200 "a body under router.max_body"
pass "router: threads: 1 serves; forwarded_proto and max_body are in force"

# unmatched host: the global 404.html, sent as it is; JSON when asked for
rcurl nowhere.test /a -D "$T/h404" -o "$T/b404"
grep -q '^HTTP/1.1 404' "$T/h404" || fail "unmatched host: $(head -1 "$T/h404")"
grep -qi '^content-type: text/html' "$T/h404" || fail "custom 404 is not HTML: $(cat "$T/h404")"
assert_eq "$(cat "$T/b404")" "$(cat "$GLOBAL/404.html")" "custom 404 body"
grep -qi '^x-request-id: ' "$T/h404" || fail "custom 404 has no X-Request-Id"
rcurl nowhere.test /a -H 'Accept: application/json' -D "$T/h404j" -o "$T/b404j"
grep -qi '^content-type: application/json' "$T/h404j" || fail "JSON 404 with error_pages: $(cat "$T/h404j")"
assert_eq "$(json '(d["status"], bool(d["error"]), bool(d["request_id"]))' <"$T/b404j")" "(404, True, True)" "JSON 404 body"
pass "server-wide error_pages: an unmatched host gets its 404.html; JSON clients still get JSON"

# ---- a route with its own directory (relative, resolved by the CLI), one without
mkdir -p "$T/work/shop-pages"
printf '<html><body>shop is closed it-shop-503</body></html>\n' >"$T/work/shop-pages/503.html"
(cd "$T/work" && b routes add shop.test --app shop --error-pages shop-pages/) >"$T/r1.out" 2>&1 ||
  { cat "$T/r1.out"; fail "routes add --error-pages failed"; }
assert_has "$(cat "$T/r1.out")" "shop.test -> production/shop web (error pages from $T/work/shop-pages)" "routes add output"
run_ok "$T/r2.out" b routes add blog.test --app blog
assert_lacks "$(cat "$T/r2.out")" "error pages" "routes add output without --error-pages"
assert_eq "$(b routes --json | json 'sorted((r["host"], r["error_pages"]) for r in d["routes"] if not r["default"])')" \
  "[('blog.test', None), ('shop.test', '$T/work/shop-pages')]" "routes --json error_pages"
b routes >"$T/list.out" || fail "routes failed"
assert_has "$(head -1 "$T/list.out")" "ERROR PAGES" "routes table header"
assert_has "$(grep '^shop.test ' "$T/list.out")" "$T/work/shop-pages" "routes table row of shop.test"
wait_for '[ "$(rcurl shop.test / | json "d[\"name\"]")" = shop ] && [ "$(rcurl blog.test / | json "d[\"name\"]")" = blog ]' 50 ||
  fail "routes shop.test / blog.test not in force"

run_ok "$T/s0.out" b scale web=0 --app shop
run_ok "$T/s1.out" b scale web=0 --app blog
wait_for '[ "$(rcode shop.test /)" = 503 ] && [ "$(rcode blog.test /)" = 503 ]' 100 ||
  fail "after scaling to 0: shop.test $(rcode shop.test /), blog.test $(rcode blog.test /), want 503"
rcurl shop.test /cart -D "$T/h503" -o "$T/b503"
grep -q '^HTTP/1.1 503' "$T/h503" || fail "shop.test at web=0: $(head -1 "$T/h503")"
grep -qi '^content-type: text/html' "$T/h503" || fail "route's 503 is not HTML: $(cat "$T/h503")"
assert_eq "$(cat "$T/b503")" "$(cat "$T/work/shop-pages/503.html")" "the route's own 503.html"
assert_eq "$(rcurl blog.test /)" "$(cat "$GLOBAL/503.html")" "a route without a directory falls back to the global 503.html"
assert_eq "$(rcurl shop.test / -H 'Accept: application/json' | json '(d["status"], bool(d["request_id"]))')" "(503, True)" \
  "JSON 503 on a route with error pages"
assert_eq "$(rcurl shop.test /nothing-here-but-route)" "$(cat "$T/work/shop-pages/503.html")" "every path of the route"
pass "a route's --error-pages 503.html when its app has no instance; others fall back to the global page; JSON stays JSON"

# replacing the route without --error-pages drops its directory
run_ok "$T/r3.out" b routes add shop.test --app shop
assert_eq "$(b routes --json | json '[r["error_pages"] for r in d["routes"] if r["host"] == "shop.test"]')" "[None]" \
  "error_pages after re-adding without it"
wait_for '[ "$(rcurl shop.test /)" = "$(cat "$GLOBAL/503.html")" ]' 50 || fail "shop.test after dropping its pages: $(rcurl shop.test /)"
run_ok "$T/s2.out" b scale web=1 --app shop
wait_for '[ "$(rcode shop.test /)" = 200 ]' 100 || fail "shop.test after scaling back: $(rcode shop.test /)"
pass "re-adding a route without --error-pages drops its directory"

# ---- bad error_pages: 400 from the API, naming the field; nothing stored
printf 'x\n' >"$T/a-file"
api_add() { # JSON-VALUE-OF-error_pages
  api POST /v1/routes -H 'Content-Type: application/json' \
    -d "{\"host\":\"bad.test\",\"env\":\"production\",\"app\":\"shop\",\"error_pages\":$1}"
}
check_400() { # JSON-VALUE WANTED-TEXT
  local out
  out=$(api_add "$1")
  assert_eq "$(http_code "$out")" 400 "API status for error_pages $1"
  assert_has "$(http_body "$out" | json 'd["error"]')" "error_pages" "API error for $1 names the field"
  assert_has "$(http_body "$out" | json 'd["error"]')" "$2" "API error for $1"
}
check_400 '"shop-pages"' "must be an absolute path"
check_400 "\"$T/no-such-dir\"" "does not exist on the server"
check_400 "\"$T/a-file\"" "is not a directory"
check_400 "\"$T/work/../work/shop-pages\"" '".." components'
check_400 '""' "must be an absolute path"
check_400 '42' "must be a string"
check_400 "\"/$(head -c 5000 /dev/zero | tr '\0' a)\"" "at most 4096"
out=$(api_add "\"$T/work/shop-pages\"")
assert_eq "$(http_code "$out")" 201 "API add with a good error_pages"
assert_eq "$(http_body "$out" | json 'd["error_pages"]')" "$T/work/shop-pages" "API answer's error_pages"
run_ok "$T/rm.out" b routes remove bad.test
pass "the API refuses a relative, missing, non-directory, dotted, empty, non-string or too long error_pages with 400"

cli_bad() { # DIR WANTED-TEXT: routes add with it fails with exit 1 and says why
  local rc=0
  (cd "$T" && b routes add bad.test --app shop --error-pages "$1") >"$T/cb.out" 2>&1 || rc=$?
  assert_eq "$rc" 1 "CLI exit status for --error-pages $1"
  assert_has "$(cat "$T/cb.out")" "$2" "CLI message for --error-pages $1"
}
cli_bad "$T/no-such-dir" "error_pages \"$T/no-such-dir\" does not exist on the server"
cli_bad "$T/a-file" "error_pages \"$T/a-file\" is not a directory"
cli_bad "no-such-dir" "--error-pages \"no-such-dir\": No such file or directory"
cli_bad a-file "error_pages \"$T/a-file\" is not a directory"
rc=0; b routes --error-pages "$T" >"$T/cb2.out" 2>&1 || rc=$?
assert_eq "$rc" 2 "--error-pages with routes list"
assert_has "$(cat "$T/cb2.out")" "--error-pages only goes with routes add" "--error-pages with routes list"
assert_eq "$(b routes --json | json '[r["host"] for r in d["routes"] if r["host"] == "bad.test"]')" "[]" "no route stored after the refusals"
pass "the CLI refuses a missing or non-directory --error-pages (exit 1, with the server's or its own reason)"

stop_server
pass "server stopped, no process left"
