#!/usr/bin/env bash
# Container registry credentials (`berth registry login|list|logout`) against a real registry:
# Debian's docker-registry (distribution 2.8) with htpasswd (Basic) auth, plain HTTP on
# 127.0.0.1, storage in the test's dir; and a small stand-in for a registry that sends logins
# to a Bearer token service (the Docker Hub's handshake).
# A wrong password exits 1 naming the registry and stores nothing (nor replaces what is
# stored); the right one is stored; `registry list` shows host and user, never the password;
# the password is nowhere in the data dir (store, WAL, key dir) nor in the server's log, in
# plain text; the key file is 0600 and survives a restart with the credentials; logout
# removes them; a viewer or deployer token gets 403; malformed bodies get a 4xx JSON error
# that does not echo the password.
source "$(dirname "$0")/lib.sh"

# ---- a real registry with htpasswd auth
if ! command -v docker-registry >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "docker-registry is not installed (scripts/setup.sh installs it)"
  { apt-get install -y --no-install-recommends docker-registry ||
    { apt-get update && apt-get install -y --no-install-recommends docker-registry; }; } >"$T/apt.log" 2>&1 ||
    { tail -5 "$T/apt.log"; fail "cannot install docker-registry"; }
fi
PW="Reg-pw-$RANDOM$RANDOM-x9"        # alice's password at the real registry
WRONG="Wrong-pw-$RANDOM$RANDOM"
PW2="Tok-pw-$RANDOM$RANDOM-q7"       # carol's at the token-service stand-in
# htpasswd line, bcrypt (the registry takes nothing else): apache2-utils' htpasswd if it is
# there, else Python's crypt (Debian 12's python3 has it).
if command -v htpasswd >/dev/null 2>&1; then
  htpasswd -nbB alice "$PW" | head -1 >"$T/htpasswd"
else
  python3 -W ignore -c 'import crypt, sys
print(sys.argv[1] + ":" + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))' alice "$PW" >"$T/htpasswd"
fi
grep -q '^alice:\$2[aby]\$' "$T/htpasswd" || fail "no bcrypt htpasswd line: $(cat "$T/htpasswd")"
REG_PORT=$(free_port)
REG="127.0.0.1:$REG_PORT"
cat >"$T/registry.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $T/registry-data}}
http: {addr: $REG, secret: berth-test-secret}
auth: {htpasswd: {realm: berth-test, path: $T/htpasswd}}
YML
docker-registry serve "$T/registry.yml" >"$T/registry.log" 2>&1 &
BG_PIDS+=($!)
wait_for '[ "$(curl -s -o /dev/null -w "%{http_code}" http://$REG/v2/)" = 401 ]' 100 ||
  fail "docker-registry did not start on $REG: $(tail -5 "$T/registry.log")"
[ "$(curl -s -o /dev/null -w '%{http_code}' -u "alice:$PW" "http://$REG/v2/")" = 200 ] ||
  fail "the registry does not take alice's password itself"

# ---- a registry whose logins go to a Bearer token service (both in one small server):
# /v2/ answers 401 with a Bearer challenge; /token answers a token for carol:PW2 when asked
# for service berth-test, else 401. Every /token request is logged (path and the user).
TOK_PORT=$(free_port)
TOK="127.0.0.1:$TOK_PORT"
cat >"$T/tokensvc.py" <<'PY'
import base64, http.server, json, sys, urllib.parse
port, user, pw, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body, extra=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/v2/":
            realm = "http://127.0.0.1:%d/token" % port
            return self.answer(401, {"errors": []}, [("WWW-Authenticate",
                               'Bearer realm="%s",service="berth-test"' % realm)])
        if u.path == "/token":
            q = urllib.parse.parse_qs(u.query)
            auth = self.headers.get("Authorization", "")
            got = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
            with open(log, "a") as f:
                f.write(json.dumps({"query": q, "user": got.split(":")[0]}) + "\n")
            if got == user + ":" + pw and q.get("service") == ["berth-test"]:
                return self.answer(200, {"token": "tok-123", "expires_in": 60})
            return self.answer(401, {"details": "incorrect username or password"})
        self.answer(404, {})
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
python3 "$T/tokensvc.py" "$TOK_PORT" carol "$PW2" "$T/token.log" >"$T/tokensvc.err" 2>&1 &
BG_PIDS+=($!)
wait_for "curl -s -o /dev/null http://$TOK/v2/" 50 || fail "token service stand-in did not start: $(cat "$T/tokensvc.err")"

start_server --router off --dns off

# no_secret WHAT TEXT: none of the passwords is in TEXT
no_secret() {
  local s
  for s in "$PW" "$WRONG" "$PW2"; do
    case "$2" in *"$s"*) fail "$1 shows a password: $2" ;; esac
  done
}
login() { # HOST USER PASSWORD [more args]: login with the password on stdin; sets RC, OUT
  local host=$1 user=$2 pass=$3; shift 3
  RC=0
  printf '%s\n' "$pass" | b registry login "$host" --username "$user" "$@" >"$T/login.out" 2>&1 || RC=$?
  OUT=$(cat "$T/login.out")
  no_secret "registry login output" "$OUT"
}

# ---- a wrong password first: exit 1, the registry named, nothing stored
login "$REG" alice "$WRONG"
assert_eq "$RC" 1 "exit status of a login with a wrong password"
assert_has "$OUT" "registry $REG refused the credentials of user alice" "wrong-password message"
assert_has "$OUT" "nothing was stored" "wrong-password message"
assert_eq "$(b registry list --json | json 'd["registries"]')" "[]" "registries after a refused login"
assert_has "$(b registry)" "No registry credentials" "registry list after a refused login"
pass "a wrong password: exit 1, \"registry $REG refused the credentials of user alice\", nothing stored"

# ---- the right password: stored; list shows host and user, never the password
login "$REG" alice "$PW"
[ "$RC" = 0 ] || fail "login with the right password exited $RC: $OUT"
assert_has "$OUT" "Logged in to $REG as alice" "login output"
LIST=$(b registry)
assert_eq "$(head -1 <<<"$LIST" | tr -s ' ')" "HOST USERNAME ADDED BY" "registry list header"
assert_eq "$(sed -n 2p <<<"$LIST" | tr -s ' ' | cut -d' ' -f1,2)" "$REG alice" "registry list row"
assert_has "$LIST" "token admin" "registry list says who added it"
no_secret "registry list" "$LIST"
J=$(b registry list --json)
no_secret "registry list --json" "$J"
assert_lacks "$J" "sealed" "registry list --json"
assert_eq "$(json '[(r["host"], r["username"], r["added_by"], sorted(r)) for r in d["registries"]]' <<<"$J")" \
  "[('$REG', 'alice', 'token admin', ['added_at', 'added_by', 'host', 'username'])]" "registry list --json"
ADDED_AT=$(json 'd["registries"][0]["added_at"]' <<<"$J")
pass "the right password: logged in; list shows host, user, when and by whom, no password"

# ---- a wrong password for a stored host replaces nothing
login "$REG" bob "$WRONG"
assert_eq "$RC" 1 "exit status of a refused login over stored credentials"
assert_eq "$(b registry list --json | json '[(r["username"], r["added_at"]) for r in d["registries"]]')" \
  "[('alice', '$ADDED_AT')]" "stored credentials after a refused login"
pass "a refused login leaves the stored credentials as they were"

# ---- the Bearer token handshake
login "$TOK" carol "$WRONG"
assert_eq "$RC" 1 "exit status of a refused login at the token service"
assert_has "$OUT" "registry $TOK refused the credentials of user carol (HTTP 401 from http://$TOK/token?" "token-service refusal"
login "$TOK" carol "$PW2"
[ "$RC" = 0 ] || fail "login through the token service exited $RC: $OUT"
assert_eq "$(tail -1 "$T/token.log" | json '(d["user"], d["query"]["service"], d["query"]["account"])')" \
  "('carol', ['berth-test'], ['carol'])" "the token request"
assert_eq "$(b registry list --json | json '" ".join(sorted(r["host"] + "=" + r["username"] for r in d["registries"]))')" \
  "$(printf '%s\n' "$REG=alice" "$TOK=carol" | sort | tr '\n' ' ' | sed 's/ $//')" "registries after the Bearer login"
pass "Bearer handshake: realm asked with service and account, token means accepted, 401 means refused"

# ---- nothing in plain text at rest or in the log
KEY="$DATA/keys/secrets.key"
assert_eq "$(stat -c %a "$KEY")" 600 "mode of the secrets key"
assert_eq "$(stat -c %a "$DATA/keys")" 700 "mode of the keys directory"
assert_eq "$(stat -c %s "$KEY")" 32 "size of the secrets key"
for s in "$PW" "$WRONG" "$PW2"; do
  grep -r -l -a -F -- "$s" "$DATA" >"$T/found" 2>/dev/null && fail "a password is in the data dir in plain text: $(cat "$T/found")"
  grep -q -a -F -- "$s" "$T/server.log" && fail "a password is in the server's log"
done
grep -a -q "sealed_password\":\"v1:" "$DATA"/state.db* || fail "the store has no sealed password"
grep -q "registry $REG: credentials of user alice stored by token admin" "$T/server.log" || fail "no log line for the login"
pass "the secrets key is 0600 in a 0700 dir; no password in the data dir or the server log"

# ---- roles: admin only
VT=$(b tokens create viewer1 --role viewer 2>/dev/null) || fail "tokens create viewer"
DT=$(b tokens create deploy1 --role deployer 2>/dev/null) || fail "tokens create deployer"
for tok in "$VT" "$DT"; do
  for req in "GET /v1/registries" "POST /v1/registries" "DELETE /v1/registries/$REG"; do
    R=$(curl -s -w '\n%{http_code}' -X "${req% *}" -H "Authorization: Bearer $tok" \
      -d "{\"host\":\"$REG\",\"username\":\"alice\",\"password\":\"x\"}" "$BERTH_API${req#* }")
    assert_eq "$(http_code "$R")" 403 "$req with a non-admin token"
    assert_has "$(http_body "$R")" "admin" "403 message"
  done
  rc=0; BERTH_TOKEN=$tok b registry >"$T/role.out" 2>&1 || rc=$?
  assert_eq "$rc" 1 "exit status of registry list with a non-admin token"
  assert_has "$(cat "$T/role.out")" "admin" "registry list with a non-admin token"
  rc=0; printf '%s\n' "$PW" | BERTH_TOKEN=$tok b registry login "$REG" -u alice >"$T/role.out" 2>&1 || rc=$?
  assert_eq "$rc" 1 "exit status of registry login with a non-admin token"
done
assert_eq "$(b registry list --json | json 'len(d["registries"])')" 2 "registries after the refused calls"
pass "viewer and deployer tokens get 403 on list, login and logout"

# ---- bad input: 4xx JSON errors, no password echoed
bad() { # WANT-STATUS WANT-IN-MESSAGE curl-args...
  local want=$1 msg=$2 r; shift 2
  r=$(api POST /v1/registries "$@")
  assert_eq "$(http_code "$r")" "$want" "POST $*"
  assert_has "$(http_body "$r" | json 'd["error"]')" "$msg" "message for $*"
  no_secret "error answer" "$r"
}
bad 400 "malformed JSON" --data-binary "{\"host\":\"$REG\",\"username\":\"alice\",\"password\":\"$PW"
bad 400 "malformed JSON" --data-binary "not json $PW"
bad 400 "must be an object" --data-binary '["x"]'
bad 400 "host is required" --data-binary '{"username":"a","password":"b"}'
bad 400 "username is required" --data-binary "{\"host\":\"$REG\",\"password\":\"$PW\"}"
bad 400 "password is required" --data-binary "{\"host\":\"$REG\",\"username\":\"a\"}"
bad 400 "password is empty" --data-binary "{\"host\":\"$REG\",\"username\":\"a\",\"password\":\"\"}"
bad 400 "password must be a string" --data-binary "{\"host\":\"$REG\",\"username\":\"a\",\"password\":7}"
bad 400 "NUL" --data-binary "{\"host\":\"$REG\",\"username\":\"a\",\"password\":\"a\\u0000b\"}"
bad 400 "may not contain ':'" --data-binary "{\"host\":\"$REG\",\"username\":\"a:b\",\"password\":\"$PW\"}"
bad 400 "not a registry host" --data-binary "{\"host\":\"http://$REG\",\"username\":\"a\",\"password\":\"$PW\"}"
bad 400 "unknown field" --data-binary "{\"host\":\"$REG\",\"username\":\"a\",\"password\":\"$PW\",\"insecure\":true}"
bad 400 "password is longer than" --data-binary "{\"host\":\"$REG\",\"username\":\"a\",\"password\":\"$(head -c 20000 /dev/zero | tr '\0' p)\"}"
head -c 2000000 /dev/zero | tr '\0' x >"$T/huge"
R=$(api POST /v1/registries --data-binary @"$T/huge")
assert_eq "$(http_code "$R")" 413 "a 2 MB body"
http_body "$R" | json 'd["error"]' >/dev/null || fail "413 answer is not JSON: $R"
R=$(api DELETE "/v1/registries/not..a..host")
assert_eq "$(http_code "$R")" 400 "DELETE of a malformed host"
R=$(api PUT /v1/registries)
assert_eq "$(http_code "$R")" 405 "PUT /v1/registries"
rc=0; echo x | b registry login "http://$REG" -u a >"$T/bad.out" 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status of registry login URL"
rc=0; b registry login "$REG" -u a </dev/null >"$T/bad.out" 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status of a login with an empty stdin"
assert_has "$(cat "$T/bad.out")" "password is empty" "empty stdin"
rc=0; echo x | b registry login "$REG" >"$T/bad.out" 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status of a login without --username from a pipe"
assert_has "$(cat "$T/bad.out")" "needs --username" "login without --username"
rc=0; echo x | b registry login -u a 127.0.0.1:1 >"$T/bad.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exit status of a login to a registry that is not there"
assert_has "$(cat "$T/bad.out")" "cannot reach registry 127.0.0.1:1" "unreachable registry"
rc=0; b registry frobnicate >"$T/bad.out" 2>&1 || rc=$?
assert_eq "$rc" 2 "exit status of an unknown registry command"
assert_eq "$(b registry list --json | json 'len(d["registries"])')" 2 "registries after the bad requests"
for s in "$PW" "$WRONG" "$PW2"; do
  grep -q -a -F -- "$s" "$T/server.log" && fail "a password is in the server's log after the bad requests"
done
pass "malformed, incomplete and oversized bodies get 4xx JSON errors without the password; bad CLI use exits 2"

# ---- kept across a restart, with the same key
KEYSUM=$(sha256sum <"$KEY")
stop_server
start_server --router off --dns off
assert_eq "$(sha256sum <"$KEY")" "$KEYSUM" "the secrets key after a restart"
assert_eq "$(b registry list --json | json '" ".join(sorted(r["host"] for r in d["registries"]))')" \
  "$(printf '%s\n' "$REG" "$TOK" | sort | tr '\n' ' ' | sed 's/ $//')" "registries after a restart"
pass "credentials and the key survive a restart"

# ---- logout
run_ok "$T/logout.out" b registry logout "$REG"
assert_has "$(cat "$T/logout.out")" "Logged out of $REG" "logout output"
assert_eq "$(b registry list --json | json '" ".join(r["host"] for r in d["registries"])')" "$TOK" "registries after logout"
rc=0; b registry logout "$REG" >"$T/logout2.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exit status of a second logout"
assert_has "$(cat "$T/logout2.out")" "no credentials for registry $REG" "second logout"
run_ok "$T/logout3.out" b registry logout "$TOK" --json
assert_eq "$(json 'd["deleted"]' <"$T/logout3.out")" True "logout --json"
assert_has "$(b registry)" "No registry credentials" "registry list at the end"
pass "logout removes the credentials; a second logout exits 1"
stop_server
