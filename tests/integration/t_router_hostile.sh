#!/usr/bin/env bash
# Hostile input against the router and the DNS server. HTTP: request-smuggling shapes (both
# Content-Length and Transfer-Encoding, duplicate Content-Length, bad chunk sizes, obs-fold,
# bare LF/CR, ...) get 400 and a closed connection; oversized request lines and headers get
# 414/431; a client sending its head one byte per second is cut off by the header timeout;
# after each, a normal request on a new connection still gets 200, and no smuggled request
# ever reaches the app. DNS: random bytes, truncated headers, compression loops and other
# malformed packets over UDP and TCP get FORMERR (or no answer), and dig still works after.
source "$(dirname "$0")/lib.sh"
start_server_net
APP=hs
make_echo_app hs; D=$APP_DIR
printf 'config:\n  ECHO_LOG: "1"\n' >"$D/berth.yaml"
run_ok "$T/d1.out" b deploy "$D" --app $APP
wait_for '[ "$(rcode hs.localhost /)" = 200 ]' 50 || fail "hs.localhost does not answer"

# ---- malformed HTTP requests, one per connection
cat >"$T/hostile.py" <<'PY'
# Each case: raw bytes on a new connection -> the status wanted, then the connection must be
# closed by the router; then a normal request on a new connection must get 200.
import socket, sys, time
port = int(sys.argv[1])
H = b"Host: hs.localhost\r\n"
SMUG = b"GET /smuggled HTTP/1.1\r\nHost: hs.localhost\r\n\r\n"
big = b"a" * 40000
cases = [
    ("CL+TE", b"POST /cl-te HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUG, {400}),
    ("TE+CL", b"POST /te-cl HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 49\r\n\r\n0\r\n\r\n" + SMUG, {400}),
    ("duplicate CL", b"POST /dup HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nContent-Length: 45\r\n\r\n" + SMUG, {400}),
    ("duplicate CL, same value", b"POST /dup2 HTTP/1.1\r\n" + H + b"Content-Length: 45\r\nContent-Length: 45\r\n\r\n" + SMUG, {400}),
    ("CL not a number", b"POST /cl HTTP/1.1\r\n" + H + b"Content-Length: 4x\r\n\r\nabcd", {400}),
    ("CL negative", b"POST /cl HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\nabcd", {400}),
    ("TE not chunked", b"POST /te HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n" + SMUG, {400, 501}),
    ("TE chunked twice", b"POST /te HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("space before colon", b"POST /sp HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUG, {400}),
    ("bad chunk size", b"POST /chunk HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", {400}),
    ("negative chunk size", b"POST /chunk HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk size overflow", b"POST /chunk HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nhello\r\n0\r\n\r\n", {400, 413}),
    ("chunk without CRLF", b"POST /chunk HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", {400}),
    ("obs-fold", b"GET /fold HTTP/1.1\r\n" + H + b"X-Folded: a\r\n  b\r\n\r\n", {400}),
    ("obs-fold of TE", b"POST /fold HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n chunked\r\n\r\n0\r\n\r\n", {400}),
    ("bare LF line ends", b"GET /lf HTTP/1.1\n" + b"Host: hs.localhost\n\n", {400}),
    ("bare LF in a header", b"GET /lf HTTP/1.1\r\n" + H + b"X-A: 1\nTransfer-Encoding: chunked\r\n\r\n", {400}),
    ("bare CR", b"GET /cr HTTP/1.1\r\n" + H + b"X-A: 1\rX-B: 2\r\n\r\n", {400}),
    ("NUL in a header", b"GET /nul HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", {400}),
    ("two Host headers", b"GET /2h HTTP/1.1\r\n" + H + b"Host: other.localhost\r\n\r\n", {400}),
    ("no Host", b"GET /nohost HTTP/1.1\r\n\r\n", {400}),
    ("URL over the limit", b"GET /" + big[:20000] + b" HTTP/1.1\r\n" + H + b"\r\n", {414, 431}),
    ("header over the limit", b"GET /big HTTP/1.1\r\n" + H + b"X-Big: " + big + b"\r\n\r\n", {431}),
    ("too many headers", b"GET /many HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n", {431}),
    ("HTTP/2.0 version", b"GET /v HTTP/2.0\r\n" + H + b"\r\n", {400, 505}),
]

def response(s):
    """Read one response; returns (status, closed_after)."""
    s.settimeout(5)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout) as e:
        if not data:
            return ("no answer (%r)" % e, True)
    if not data:
        return ("no answer (closed)", True)
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    n = 0
    for l in head.split(b"\r\n")[1:]:
        k, _, v = l.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    try:
        while len(body) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        s.settimeout(5)
        closed = s.recv(65536) == b""
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        closed = False
    return (status, closed)

def normal():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /normal HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    st, _ = response(s)
    s.close()
    return st

bad = 0
for name, raw, want in cases:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(raw)
    except (BrokenPipeError, ConnectionResetError):
        pass
    st, closed = response(s)
    s.close()
    after = normal()
    ok = st in want and closed and after == 200
    bad += not ok
    print("%s %-26s status %s (want %s), %s; then a normal request: %s" % (
        "ok  " if ok else "BAD ", name, st, "/".join(map(str, sorted(want))),
        "closed" if closed else "LEFT OPEN", after))
sys.exit(1 if bad else 0)
PY
# A case that is not refused is reported at the end, so the slow-client and DNS parts still run.
HTTP_BAD=""
if ! python3 "$T/hostile.py" "$RPORT" >"$T/hostile.out" 2>&1; then
  cat "$T/hostile.out"
  HTTP_BAD=$(grep -v '^ok' "$T/hostile.out")
  echo "BAD  [$TEST_NAME] malformed HTTP requests not refused cleanly (reported at the end)"
fi
kill -0 "$SRV_PID" || fail "the server died"
[ -n "$HTTP_BAD" ] || pass "$(grep -c '^ok' "$T/hostile.out") malformed requests: 400/414/431/505, connection closed; the router kept serving"

# nothing smuggled reached the app or the access log as a request of its own
wait_for 'log_text $APP production | grep -q "REQ GET /normal"' 50 || fail "the app does not log its requests"
assert_lacks "$(log_text $APP production -n 1000)" "/smuggled" "requests the app received"
assert_lacks "$(b logs --router -n 1000)" 'target="/smuggled"' "router access log"
pass "no smuggled request reached the app"

# ---- a slow client (one byte a second) is cut off by the 10 s header timeout (there is no
# flag to shorten it; this part takes about 10 s), a client that connects and sends nothing is
# closed too, and others are served meanwhile
python3 - "$RPORT" >"$T/slow.out" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
head = b"GET /slow HTTP/1.1\r\nHost: hs.localhost\r\nX-Pad: " + b"p" * 30 + b"\r\n\r\n"   # 60+ s at 1 byte/s
silent = socket.create_connection(("127.0.0.1", port), timeout=5)   # connects, sends nothing
s = socket.create_connection(("127.0.0.1", port), timeout=5)
sent, answer = 0, b""
for i, c in enumerate(head):
    try:
        s.sendall(bytes([c]))
        sent += 1
    except (BrokenPipeError, ConnectionResetError):
        break
    time.sleep(1)
    s.setblocking(False)
    try:
        d = s.recv(4096)
        answer += d
        if not d:
            break
    except BlockingIOError:
        pass
    except ConnectionResetError:
        break
    finally:
        s.setblocking(True)
    if answer:
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        break
print("sent %d of %d; answer %r" % (sent, len(head), answer.split(b"\r\n")[0]))
# the silent connection is older than the slow one: by now its 10 s are over too
silent.settimeout(15)
try:
    print("silent connection:", "closed" if silent.recv(4096) == b"" else "answered")
except ConnectionResetError:
    print("silent connection: closed")
except socket.timeout:
    print("silent connection: still open")
PY
SLOW=$!
BG_PIDS+=($SLOW)
# while the slow client dribbles, others are served
for i in 1 2 3 4 5; do assert_eq "$(rcode hs.localhost /during-slow)" 200 "a request while a slow client holds a connection"; sleep 0.5; done
wait $SLOW
OUT=$(cat "$T/slow.out")
echo "slow client: $OUT"
assert_has "$OUT" "silent connection: closed" "a connection that never sends a byte"
N=$(sed -n 's/^sent \([0-9]*\) of \([0-9]*\).*/\1 \2/p' <<<"$OUT")
[ -n "$N" ] && [ "${N% *}" -lt "${N#* }" ] || fail "the slow client was not cut off: $OUT"
case "$OUT" in *"answer b''"* | *"408"*) ;; *) fail "slow client got neither a 408 nor a plain close: $OUT" ;; esac
assert_eq "$(rcode hs.localhost /after-slow)" 200 "a request after the slow client"
pass "a client sending its head one byte per second is cut off (and one sending nothing closed); others are served meanwhile"

# ---- malformed DNS packets over UDP and TCP
cat >"$T/dnsbad.py" <<'PY'
# Sends malformed packets; each must get FORMERR (or another rcode for junk that parses by
# chance) or no answer at all, never a crash. Prints one line per crafted case, then totals.
import random, socket, struct, sys
port = int(sys.argv[1])
def hdr(qd=1, an=0, ns=0, ar=0, flags=0x0100, id=0x1234):
    return struct.pack(">HHHHHH", id, flags, qd, an, ns, ar)
def name(*labels):
    return b"".join(bytes([len(l)]) + l for l in labels) + b"\x00"
q = name(b"web", b"hs", b"service", b"production", b"consul")
cases = [
    ("empty", b""),
    ("truncated header", hdr()[:5]),
    ("header only, qdcount=1", hdr()),
    ("question cut in the name", hdr() + q[:7]),
    ("question without type/class", hdr() + q),
    ("compression loop", hdr() + b"\xc0\x0c" + b"\x00\x01\x00\x01"),
    ("pointer past the end", hdr() + b"\xc0\xff" + b"\x00\x01\x00\x01"),
    ("pointer loop via two labels", hdr() + b"\x03abc\xc0\x11\xc0\x0c" + b"\x00\x01\x00\x01"),
    ("label over 63", hdr() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01"),
    ("name over 255", hdr() + b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\x00\x00\x01\x00\x01"),
    ("reserved label type 0x40", hdr() + b"\x41a\x00\x00\x01\x00\x01"),
    ("qdcount=2 with one question", hdr(qd=2) + q + b"\x00\x01\x00\x01"),
    ("qdcount=0", hdr(qd=0)),
    ("ancount lies", hdr(an=5) + q + b"\x00\x01\x00\x01"),
    ("bad OPT record", hdr(ar=1) + q + b"\x00\x01\x00\x01" + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\xff\xff"),
    ("two OPT records", hdr(ar=2) + q + b"\x00\x01\x00\x01" + (b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00") * 2),
    ("a response (QR=1)", hdr(flags=0x8100) + q + b"\x00\x01\x00\x01"),
    ("trailing garbage", hdr() + q + b"\x00\x01\x00\x01" + b"\xde\xad\xbe\xef" * 4),
]
rnd = random.Random(20261124)
for i in range(200):
    n = rnd.choice([0, 1, 11, 12, 13, 17, 30, 64, 300, 511, 512, 513, 1400])
    cases.append(("random %d (%d bytes)" % (i, n), bytes(rnd.getrandbits(8) for _ in range(n))))
for i in range(100):   # a valid query with a few bytes flipped
    pkt = bytearray(hdr(id=i) + q + b"\x00\x21\x00\x01")
    for _ in range(rnd.randint(1, 4)):
        pkt[rnd.randrange(len(pkt))] = rnd.getrandbits(8)
    cases.append(("mutated %d" % i, bytes(pkt)))
RC = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
counts = {}
# After each packet a valid query (the sentinel) follows; the server answers in order, so
# whatever arrives before the sentinel's answer is the answer to the packet: no guessing
# with timeouts, and the server is shown to still answer after every packet.
for i, (cname, pkt) in enumerate(cases):
    sid = 0xa000 + i
    if pkt[:2] == struct.pack(">H", sid):
        sid ^= 0x4000
    u.sendto(pkt, ("127.0.0.1", port))
    u.sendto(hdr(id=sid) + q + b"\x00\x01\x00\x01", ("127.0.0.1", port))
    got = []
    try:
        while True:
            r, _ = u.recvfrom(65536)
            if r[:2] == struct.pack(">H", sid) and len(r) >= 12 and r[3] & 0x0f == 0 and r[7] == 1:
                break
            got.append(r)
    except socket.timeout:
        print("udp %-30s the server stopped answering (no answer to the query after it)" % cname)
        sys.exit(1)
    if not got:
        rc = "no answer"
    elif len(got) > 1:
        rc = "%d answers" % len(got)
    else:
        r = got[0]
        rc = RC.get(r[3] & 0x0f, str(r[3] & 0x0f)) if len(r) >= 12 else "short answer %d bytes" % len(r)
        if len(r) >= 2 and len(pkt) >= 2 and r[:2] != pkt[:2]:
            rc += " (wrong id)"
    if not (cname.startswith("random") or cname.startswith("mutated")):
        print("udp %-30s %s" % (cname, rc))
    counts[rc] = counts.get(rc, 0) + 1
print("udp totals", sorted(counts.items()))
# TCP: a length prefix bigger than what follows, then close; a zero length; garbage after a query
for cname, raw in [("length 65535 then close", b"\xff\xff" + b"abc"), ("length 0", b"\x00\x00"),
                   ("compression loop", struct.pack(">H", 18) + hdr() + b"\xc0\x0c\x00\x01\x00\x01"),
                   ("one byte", b"\x01")]:
    t = socket.create_connection(("127.0.0.1", port), timeout=2)
    t.sendall(raw)
    try:
        r = t.recv(65536)
        out = "closed" if not r else "rcode " + RC.get(r[5] & 0x0f, "?") if len(r) >= 14 else "%d bytes" % len(r)
    except (socket.timeout, ConnectionResetError) as e:
        out = "no answer (%s)" % type(e).__name__
    t.close()
    print("tcp %-30s %s" % (cname, out))
PY
python3 "$T/dnsbad.py" "$DPORT" >"$T/dnsbad.out" 2>&1 || { cat "$T/dnsbad.out"; fail "DNS fuzz script failed"; }
kill -0 "$SRV_PID" || { cat "$T/dnsbad.out"; fail "the server died on malformed DNS packets"; }
# the crafted malformed queries: FORMERR or no answer, never a positive answer
BADLINES=$(grep '^udp ' "$T/dnsbad.out" | grep -v 'totals' | grep -Ev ' (FORMERR|no answer)$' |
  grep -Ev '^udp (qdcount=0|ancount lies|trailing garbage|bad OPT record) ' || true)
[ -z "$BADLINES" ] || { cat "$T/dnsbad.out"; fail "malformed DNS queries answered with something other than FORMERR: $BADLINES"; }
for c in "compression loop" "pointer past the end" "label over 63" "name over 255" "question without type/class"; do
  grep -E "^udp $c +FORMERR$" "$T/dnsbad.out" >/dev/null || { cat "$T/dnsbad.out"; fail "'$c' did not get FORMERR"; }
done
grep -Eq '^udp a response \(QR=1\) +no answer$' "$T/dnsbad.out" || fail "a DNS response packet was answered"
grep -Eq '^udp (empty|truncated header) +no answer$' "$T/dnsbad.out" || fail "a runt packet was answered"
grep -Eq "wrong id|[0-9]+ answers" "$T/dnsbad.out" && { cat "$T/dnsbad.out"; fail "an answer with another id than the query's, or several answers to one packet"; }
grep 'totals' "$T/dnsbad.out"
assert_eq "$(rdig web.hs.service.production.consul A +short)" 127.0.0.1 "dig after the malformed packets (UDP)"
assert_eq "$(rdig +tcp web.hs.service.production.consul A +short)" 127.0.0.1 "dig after the malformed packets (TCP)"
FE=$(curl -s -H "Authorization: Bearer $BERTH_TOKEN" "$BERTH_API/metrics" | grep -F 'rcode="FORMERR"' | awk '{s += $NF} END {print s + 0}')
[ "$FE" -ge 5 ] || fail "berth_dns_queries_total counts $FE FORMERR answers"
pass "malformed DNS packets: FORMERR or no answer, no crash; dig still works"

assert_eq "$(rcode hs.localhost /at-the-end)" 200 "router at the end"
stop_server
pass "server stopped, no process left"
[ -z "$HTTP_BAD" ] || fail "malformed HTTP requests not refused cleanly: $HTTP_BAD"
