#!/usr/bin/env bash
# Image garbage collection: with release_keep 1, an image that no kept release pins is removed
# from the engine after a deploy; the live release's image and images berth never deployed
# stay; images.gc: false keeps everything.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/engine_lib.sh"
engine_available || { echo "skip [$TEST_NAME] $(engine_available)"; exit 0; }
trap 'engine_cleanup; cleanup' EXIT
engine_start || fail "podman's service did not start"
for v in 1 2 3; do ctr_import localhost/t-gc:v$v "gc $v $MARK" "$MARK-$v" || fail "podman import v$v"; done
ctr_import localhost/t-other:1 "not berth's" || fail "podman import other"
img_id() { local i; i=$(pod image inspect --format '{{.Id}}' "$1" 2>/dev/null) && echo "sha256:${i#sha256:}"; }
ID1=$(img_id localhost/t-gc:v1); ID3=$(img_id localhost/t-gc:v3); OTHER=$(img_id localhost/t-other:1)
has_image() { [ "$(eng GET "/images/$1/json" | json 'd.get("Id","")' 2>/dev/null)" != "" ]; }
mkdir -p "$T/data"
printf 'release_keep: 1\n' >"$T/data/server.yaml"
start_server --docker-host "$ENGINE_HOST"
for v in 1 2 3; do run_ok "$T/d$v.out" b deploy --image localhost/t-gc:v$v --app gc; done
wait_for '! has_image "$ID1"' 100 || fail "v1's image is still in the engine after v3 went live with release_keep 1"
has_image "$ID3" || fail "the live release's image was removed"
has_image "$OTHER" || fail "an image berth never deployed was removed"
grep -q "removed image ${ID1:0:19}" "$T/server.log" || fail "the server log does not say it removed the image"
pass "release_keep 1: v1's image removed after v3 went live; the live image and a foreign image kept"
stop_server
printf 'release_keep: 1\nimages: {gc: false}\n' >"$T/data/server.yaml"
ctr_import localhost/t-gc:v4 "gc 4 $MARK" "$MARK-4" || fail "podman import v4"
ID3=$(img_id localhost/t-gc:v3)
start_server --docker-host "$ENGINE_HOST"
run_ok "$T/d4.out" b deploy --image localhost/t-gc:v4 --app gc
run_ok "$T/d5.out" b deploy --image localhost/t-gc:v2 --app gc
has_image "$ID3" || fail "images.gc: false still removed an image"
pass "images.gc: false keeps old images"
