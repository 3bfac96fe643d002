#!/usr/bin/env bash
# bench/setup.sh: install the peers and load generators of the benchmarks on Debian 12
# (idempotent; run as root or with sudo). The build dependencies come from scripts/setup.sh.
#   nginx      the router's peer, and the upstream both proxies talk to
#   wrk        HTTP load generator          dnsperf   DNS load generator
#   knot       the DNS server's peer        dnsutils  dig, to copy berth's records into knot's zone
# The benchmarks start their own nginx and knotd on free ports; the packages' system services
# are not started by this install (a policy-rc.d is in place while it runs), and not needed.
set -euo pipefail
PKGS=(nginx wrk dnsperf knot dnsutils python3 gcc)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && { echo "bench/setup.sh: everything is installed"; exit 0; }
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
POLICY=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$POLICY" ]; then
  # tell invoke-rc.d not to start nginx or knot on port 53/80 after installing them
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  added_policy=1
fi
trap '[ -n "$added_policy" ] && $SUDO rm -f "$POLICY"' EXIT
echo "bench/setup.sh: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
