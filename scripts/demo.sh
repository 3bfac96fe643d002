#!/usr/bin/env bash
# The main job: build berth, start a server on the embedded store (data in ./.berth-demo),
# deploy the examples, and print what to try next. The server keeps running in the foreground
# of this script until Ctrl-C (which stops it and its instances).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
make -s
DATA=${BERTH_DATA:-$PWD/.berth-demo}
API=${BERTH_API_ADDR:-127.0.0.1:7070}
ROUTER=${BERTH_ROUTER_ADDR:-127.0.0.1:8080}
DNS=${BERTH_DNS_ADDR:-127.0.0.1:8600}
./berth server --data "$DATA" --api "$API" --router "$ROUTER" --dns "$DNS" &
SRV=$!
trap 'kill -TERM $SRV 2>/dev/null; wait $SRV 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
  kill -0 $SRV 2>/dev/null || { echo "berth server did not start (see above)"; exit 1; }
  [ -s "$DATA/admin.token" ] && curl -s -o /dev/null "http://$API/healthz" && break
  sleep 0.1
done
export BERTH_API="http://$API" BERTH_TOKEN="$(cat "$DATA/admin.token")"
./berth deploy examples/hello
./berth deploy examples/ticker --app ticker
./berth ps --app hello
cat <<MSG

berth is running (API http://$API, data in $DATA).
  web via the router:  curl -H 'Host: hello.localhost' http://$ROUTER/
                       (or open http://hello.localhost:${ROUTER##*:}/ in a browser)
  DNS:                 dig @${DNS%:*} -p ${DNS##*:} web.hello.service.consul SRV
  try:     export BERTH_API=http://$API BERTH_TOKEN=\$(cat $DATA/admin.token)
           ./berth apps                      ./berth ps --app hello
           ./berth logs -f --app ticker      ./berth scale web=3 --app hello
           ./berth config set GREETING=hi --app hello
           ./berth releases --app hello      ./berth rollback --app hello
           ./berth routes                    ./berth logs --router
           ./berth run --app hello -- python3 -c 'import os; print(os.environ["GREETING"])'
           ./berth cron --app hello          ./berth releases info v1 --app hello
           curl -H "Authorization: Bearer \$BERTH_TOKEN" http://$API/metrics
Press Ctrl-C to stop the server and its instances.
MSG
wait $SRV
