#!/usr/bin/env bash
# DNS service discovery, asked with dig: A and SRV (targets' A records in the additional
# section, ports as in `berth ps`) for PROCESS.APP.service.ENV.consul, APP.service.consul
# (production), APP.service.ENV.consul and PROCESS.APP.ENV.berth; NXDOMAIN with the zone's SOA
# for unknown names, NODATA for AAAA, REFUSED outside the zones, case-insensitive names, TCP;
# a scaled-down instance leaves the answers; and the same names through a real recursive
# forwarder (dnsmasq forwarding consul. to berth, as Consul's docs set it up).
source "$(dirname "$0")/lib.sh"
start_server_net
APP=shop
make_echo_app shop; D=$APP_DIR
cat >"$D/berth.yaml" <<'YAML'
processes:
  web:
    command: exec python3 echo.py shop-web
    instances: 2
  api:
    command: exec python3 echo.py shop-api
    port: true
YAML
run_ok "$T/d1.out" b deploy "$D" --app $APP
run_ok "$T/d2.out" b deploy "$D" --app $APP --env staging
assert_eq "$(count_proc $APP web) $(count_proc $APP api)" "2 1" "production instances"

# ports APP PROCESS [ENV]: the instances' ports, sorted, space separated
ports() {
  b ps --app "$1" --env "${3:-production}" --json |
    json "' '.join(sorted(str(i['port']) for i in d['instances'] if i['process'] == '$2' and i['state'] == 'running'))"
}
# srv NAME [dig args]: the SRV answer as "port target" lines, sorted
srv() { rdig "$1" SRV +short "${@:2}" | awk '{print $3, $4}' | sort; }
# srv_ports NAME [dig args]: the ports of the SRV answer, sorted, space separated
srv_ports() { srv "$@" | awk '{print $1}' | sort | tr '\n' ' ' | sed 's/ $//'; }
WEB_PORTS=$(ports $APP web)
API_PORT_=$(ports $APP api)
STG_WEB=$(ports $APP web staging)
# the DNS server may adopt a new snapshot a moment after ps shows the instances running
wait_for '[ "$(srv_ports web.shop.service.production.consul)" = "$WEB_PORTS" ]' 50 ||
  fail "SRV web.shop.service.production.consul: '$(srv_ports web.shop.service.production.consul)', want '$WEB_PORTS'"

# ---- PROCESS.APP.service.ENV.consul
OUT=$(rdig web.shop.service.production.consul A)
assert_eq "$(dns_status "$OUT")" NOERROR "A web.shop.service.production.consul"
assert_has "$OUT" " aa" "answer is authoritative (flags)"
assert_eq "$(rdig web.shop.service.production.consul A +short)" 127.0.0.1 "A web.shop.service.production.consul"
OUT=$(rdig web.shop.service.production.consul SRV)
assert_eq "$(dns_status "$OUT")" NOERROR "SRV web.shop.service.production.consul"
assert_eq "$(srv web.shop.service.production.consul | awk '{print $2}' | sort | tr '\n' ' ')" \
  "web-1.shop.production.node.berth. web-2.shop.production.node.berth. " "SRV targets"
assert_eq "$(rdig web.shop.service.production.consul SRV +short | awk '{print $1, $2}' | sort -u)" "1 1" "SRV priority and weight"
ADD=$(sed -n '/^;; ADDITIONAL SECTION:/,/^$/p' <<<"$OUT" | grep -v '^;' | awk 'NF {print $1, $4, $5}' | sort)
assert_eq "$ADD" "web-1.shop.production.node.berth. A 127.0.0.1
web-2.shop.production.node.berth. A 127.0.0.1" "SRV additional section"
assert_eq "$(rdig web-2.shop.production.node.berth A +short)" 127.0.0.1 "A of an SRV target"
assert_eq "$(srv_ports api.shop.service.production.consul)" "$API_PORT_" "SRV api.shop.service.production.consul"
assert_eq "$(srv_ports web.shop.service.staging.consul)" "$STG_WEB" "SRV web.shop.service.staging.consul (the staging instance)"
pass "PROCESS.APP.service.ENV.consul: A, SRV with the instance ports and the targets' A records"

# ---- APP.service.consul (production), APP.service.ENV.consul, PROCESS.APP.ENV.berth
ALL=$(echo $WEB_PORTS $API_PORT_ | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')
assert_eq "$(rdig shop.service.consul A +short)" 127.0.0.1 "A shop.service.consul"
assert_eq "$(srv_ports shop.service.consul)" "$ALL" "SRV shop.service.consul (every production instance)"
assert_eq "$(srv_ports shop.service.production.consul)" "$ALL" "SRV shop.service.production.consul"
assert_eq "$(srv_ports web.shop.service.consul)" "$WEB_PORTS" "SRV web.shop.service.consul"
assert_eq "$(srv_ports shop.service.staging.consul)" "$(echo $(ports $APP api staging) $STG_WEB | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" \
  "SRV shop.service.staging.consul"
assert_eq "$(rdig web.shop.production.berth A +short)" 127.0.0.1 "A web.shop.production.berth"
assert_eq "$(srv_ports web.shop.production.berth)" "$WEB_PORTS" "SRV web.shop.production.berth"
assert_eq "$(srv_ports web.shop.staging.berth)" "$STG_WEB" "SRV web.shop.staging.berth"
assert_eq "$(srv_ports _shop._tcp.service.consul)" "$ALL" "SRV _shop._tcp.service.consul (RFC 2782 form)"
pass "APP.service.consul, APP.service.ENV.consul, PROCESS.APP.ENV.berth"

# ---- negative answers
for name in nosuch.service.consul web.nosuch.service.production.consul web.shop.service.nowhere.consul \
  cron.shop.service.production.consul web.shop.qa.berth; do
  OUT=$(rdig "$name" A)
  assert_eq "$(dns_status "$OUT")" NXDOMAIN "A $name"
  AUTH=$(sed -n '/^;; AUTHORITY SECTION:/,/^$/p' <<<"$OUT" | grep -v '^;' | awk 'NF {print $1, $4}')
  assert_eq "$AUTH" "${name##*.}. SOA" "authority section of NXDOMAIN for $name"
done
OUT=$(rdig web.shop.service.production.consul AAAA)
assert_eq "$(dns_status "$OUT")" NOERROR "AAAA web.shop.service.production.consul (NODATA)"
assert_has "$OUT" "ANSWER: 0," "AAAA answer count"
assert_eq "$(sed -n '/^;; AUTHORITY SECTION:/,/^$/p' <<<"$OUT" | grep -v '^;' | awk 'NF {print $1, $4}')" "consul. SOA" "authority of NODATA"
assert_eq "$(dns_status "$(rdig web.shop.production.berth TXT)")" NOERROR "TXT web.shop.production.berth (NODATA)"
assert_eq "$(rdig web.shop.production.berth TXT | grep -o 'ANSWER: [0-9]*')" "ANSWER: 0" "TXT answer count"
for name in example.com localhost shop.service.consul.example.org; do
  assert_eq "$(dns_status "$(rdig "$name" A)")" REFUSED "A $name"
done
assert_eq "$(rdig consul SOA +short | awk '{print $1, $2}')" "ns.consul. hostmaster.consul." "SOA consul."
# an empty non-terminal exists (names below it do): NODATA, not NXDOMAIN
OUT=$(rdig service.production.consul A)
assert_eq "$(dns_status "$OUT") $(grep -o 'ANSWER: [0-9]*' <<<"$OUT")" "NOERROR ANSWER: 0" "service.production.consul (empty non-terminal)"
pass "NXDOMAIN with the SOA, NODATA for AAAA/TXT, REFUSED outside consul./berth."

# ---- case-insensitive names, TCP
assert_eq "$(srv_ports WEB.Shop.SERVICE.Production.CONSUL)" "$WEB_PORTS" "SRV in mixed case"
assert_eq "$(rdig Web.SHOP.production.Berth A +short)" 127.0.0.1 "A in mixed case (.berth)"
# the answer keeps the asker's spelling (resolvers randomising case, 0x20, check it)
assert_eq "$(rdig WEB.Shop.SERVICE.Production.CONSUL A +noall +answer | awk '{print $1, $5}')" \
  "WEB.Shop.SERVICE.Production.CONSUL. 127.0.0.1" "owner name of an answer to a mixed-case query"
OUT=$(rdig +tcp web.shop.service.production.consul SRV)
assert_has "$OUT" "(TCP)" "dig +tcp"
assert_eq "$(dns_status "$OUT")" NOERROR "SRV over TCP"
assert_eq "$(srv_ports web.shop.service.production.consul +tcp)" "$WEB_PORTS" "SRV ports over TCP"
assert_eq "$(dns_status "$(rdig +tcp nosuch.service.consul A)")" NXDOMAIN "NXDOMAIN over TCP"
# several queries on one TCP connection (dig +keepopen)
assert_eq "$(rdig +tcp +keepopen web.shop.service.production.consul A api.shop.service.production.consul A +short | tr '\n' ' ')" \
  "127.0.0.1 127.0.0.1 " "two queries on one TCP connection"
pass "case-insensitive names; answers over TCP"

# ---- a scaled-down instance leaves the answers
WEB1_PORT=$(b ps --app $APP --json | json '[i["port"] for i in d["instances"] if i["id"] == "web.1"][0]')
run_ok "$T/s1.out" b scale web=1 --app $APP
wait_for '[ "$(srv_ports web.shop.service.production.consul)" = "$WEB1_PORT" ]' 50 ||
  fail "SRV after scale web=1: '$(srv_ports web.shop.service.production.consul)', want '$WEB1_PORT'"
assert_eq "$(srv web.shop.service.production.consul | awk '{print $2}')" "web-1.shop.production.node.berth." "SRV target after scale-down"
assert_eq "$(dns_status "$(rdig web-2.shop.production.node.berth A)")" NXDOMAIN "A of the removed instance's node name"
assert_eq "$(srv_ports shop.service.consul)" "$(echo $WEB1_PORT $API_PORT_ | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" \
  "SRV shop.service.consul after scale-down"
run_ok "$T/s0.out" b scale web=0 --app $APP
wait_for '[ "$(dns_status "$(rdig web.shop.service.production.consul A)")" = NXDOMAIN ]' 50 ||
  fail "web.shop.service.production.consul with web=0: $(dns_status "$(rdig web.shop.service.production.consul A)")"
assert_eq "$(srv_ports shop.service.consul)" "$API_PORT_" "SRV shop.service.consul with web=0"
assert_eq "$(srv_ports web.shop.service.staging.consul)" "$STG_WEB" "staging untouched by production's scale"
pass "scaled-down instances disappear from A/SRV answers (web=0: NXDOMAIN)"

# ---- through a real recursive forwarder: dnsmasq sends consul. to berth
run_ok "$T/s2.out" b scale web=2 --app $APP
WEB_PORTS=$(ports $APP web)
FPORT=$(free_port)
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts --port="$FPORT" \
  --listen-address=127.0.0.1 --bind-interfaces --server="/consul/127.0.0.1#$DPORT" --pid-file="$T/dnsmasq.pid" \
  --log-facility="$T/dnsmasq.log" --log-queries >"$T/dnsmasq.out" 2>&1 &
BG_PIDS+=($!)
fdig() { dig @127.0.0.1 -p "$FPORT" +time=2 +tries=1 "$@"; }
wait_for '[ -n "$(fdig web.shop.service.production.consul A +short)" ]' 50 ||
  { cat "$T/dnsmasq.out" "$T/dnsmasq.log" 2>/dev/null; fail "dnsmasq on port $FPORT does not resolve web.shop.service.production.consul"; }
OUT=$(fdig web.shop.service.production.consul A)
assert_eq "$(dns_status "$OUT")" NOERROR "A through dnsmasq"
assert_has "$OUT" " ra" "dnsmasq answers as a recursive server"
assert_eq "$(fdig web.shop.service.production.consul A +short)" 127.0.0.1 "A through dnsmasq"
assert_eq "$(fdig web.shop.service.production.consul SRV +short | awk '{print $3}' | sort | tr '\n' ' ' | sed 's/ $//')" \
  "$WEB_PORTS" "SRV through dnsmasq"
assert_eq "$(fdig shop.service.consul A +short)" 127.0.0.1 "A shop.service.consul through dnsmasq"
assert_eq "$(dns_status "$(fdig nosuch.service.consul A)")" NXDOMAIN "NXDOMAIN through dnsmasq"
grep -q "forwarded web.shop.service.production.consul to 127.0.0.1#$DPORT" "$T/dnsmasq.log" ||
  { cat "$T/dnsmasq.log"; fail "dnsmasq did not forward to berth"; }
pass "dnsmasq forwarding consul. to berth resolves web.shop.service.production.consul"

stop_server
pass "server stopped, no process left"
