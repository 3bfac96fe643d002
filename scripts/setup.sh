#!/usr/bin/env bash
# Install what berth needs to build and test on Debian 12 (idempotent). Run as root or with sudo.
set -euo pipefail
PKGS=(build-essential pkg-config clang libclang-rt-14-dev
      libuv1-dev libsqlite3-dev libjansson-dev libyaml-dev libcurl4-openssl-dev libsodium-dev
      libarchive-dev node-llhttp libcmocka-dev
      python3 python3-venv curl procps iproute2
      prometheus dnsutils knot-dnsutils dnsmasq-base
      podman runc busybox-static)
PKGS+=(docker-registry)   # tests/integration/t_registry.sh: a real registry (distribution 2.8)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # the registry package enables a system service on :5000; the tests run their own
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi
