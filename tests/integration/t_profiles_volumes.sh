#!/usr/bin/env bash
# Resource profiles end up as real cgroup limits on the instance (v1 or v2, whichever holds the
# controller); an unknown profile is a deploy error; server.yaml adds and replaces profiles.
# Volumes are listed, keep their data across deploys, and cannot be removed while in use.
source "$(dirname "$0")/lib.sh"
mkdir -p "$T/data"
cat >"$T/data/server.yaml" <<'YAML'
profiles:
  custom: {cpus: 0.25, memory: 64M, pids: 32}
  large: {memory: 1G}
YAML
start_server
APP=pv
D="$T/app"
mkdir -p "$D"
if grep -q "cgroups unavailable" "$T/server.log"; then
  # no cgroups on this host: a profile must then be refused clearly, not ignored
  printf 'app: pv\nprocesses:\n  w:\n    command: exec sleep 1000\n    profile: small\n' >"$D/berth.yaml"
  rc=0; (cd "$D" && b deploy) >"$T/nocg.out" 2>&1 || rc=$?
  [ $rc = 1 ] && grep -q "cgroups" "$T/nocg.out" || { cat "$T/nocg.out"; fail "no cgroups: a profile was not refused clearly"; }
  pass "SKIPPED the cgroup checks: this host has no usable cgroups (a profile is refused clearly)"
  rm -f "$D/berth.yaml"
  SKIP_CGROUPS=1
fi

# cg PID memory|pids|cpu: the instance's limit as the kernel has it: bytes ("max" when
# unlimited), pids ("max"), "QUOTA PERIOD" ("max 100000" when unlimited)
cg() {
  python3 - "$1" "$2" <<'PY'
import os, sys
pid, what = sys.argv[1], sys.argv[2]
mounts = {}
for line in open("/proc/self/mountinfo"):
    f = line.split()
    sep = f.index("-")
    fstype, root, mnt = f[sep + 1], f[3], f[4]
    if fstype == "cgroup2":
        mounts.setdefault("v2", (mnt, root))
    elif fstype == "cgroup":
        for o in f[sep + 3].split(","):
            if o in ("memory", "pids", "cpu"):
                mounts[o] = (mnt, root)
paths = {}
for line in open("/proc/%s/cgroup" % pid):
    hid, ctrls, path = line.rstrip("\n").split(":", 2)
    for c in (ctrls.split(",") if ctrls else ["v2"]):
        paths[c] = path
def read(key, name):
    mnt, root = mounts[key]
    p = paths[key]
    if root != "/" and p.startswith(root):
        p = p[len(root):]
    f = os.path.join(mnt + p, name)
    if not os.path.exists(f) and p in ("", "/"):
        # left in the hierarchy's root, which has no limit files: unlimited
        return {"memory.limit_in_bytes": str(1 << 63), "cpu.cfs_quota_us": "-1",
                "cpu.cfs_period_us": "100000"}.get(name, "max")
    return open(f).read().strip()
v1 = what in mounts and what in paths
if what == "memory":
    if v1:
        v = int(read("memory", "memory.limit_in_bytes"))
        print("max" if v >= 1 << 62 else v)
    else:
        print(read("v2", "memory.max"))
elif what == "pids":
    print(read("pids", "pids.max") if v1 else read("v2", "pids.max"))
elif what == "cpu":
    if v1:
        q = int(read("cpu", "cpu.cfs_quota_us"))
        print("%s %s" % ("max" if q < 0 else q, read("cpu", "cpu.cfs_period_us")))
    else:
        print(read("v2", "cpu.max"))
PY
}

pid_of() { b ps --app $APP --json | json "[i['pid'] for i in d['instances'] if i['process']=='$1'][0]"; }

if [ -z "${SKIP_CGROUPS:-}" ]; then
cat >"$D/berth.yaml" <<'YAML'
app: pv
processes:
  small:
    command: exec sleep 1000
    profile: small
  custom:
    command: exec sleep 1001
    profile: custom
  large:
    command: exec sleep 1002
    profile: large
  free:
    command: exec sleep 1003
  store:
    command: 'echo "$BERTH_RELEASE" >>"$BERTH_VOLUME_DATA/boots"; echo cached >"$CACHE_DIR/c"; echo "shell: 0=$0 #=$# f=${__berth_f-none}"; exec sleep 1004'
    volumes: {data: , cache: CACHE_DIR}
YAML
(cd "$D" && b deploy) >"$T/d1.out" 2>&1 || { cat "$T/d1.out"; fail "deploy with profiles failed"; }
[ "$(count_state $APP)" = 5 ] || { b ps --app $APP; fail "not all 5 instances running"; }
P=$(pid_of small)
[ "$(cg "$P" memory)" = 268435456 ] || fail "small: memory limit $(cg "$P" memory), want 268435456"
[ "$(cg "$P" pids)" = 256 ] || fail "small: pids.max $(cg "$P" pids), want 256"
[ "$(cg "$P" cpu)" = "50000 100000" ] || fail "small: cpu quota $(cg "$P" cpu), want 50000 100000"
[ "$(b ps --app $APP --json | json "[i['profile'] for i in d['instances'] if i['process']=='small'][0]")" = small ] || fail "ps does not show the profile"
pass "profile small: memory 256M, pids 256, cpu 50000/100000 in the instance's cgroup"

P=$(pid_of custom)
[ "$(cg "$P" memory)" = 67108864 ] || fail "custom: memory $(cg "$P" memory), want 67108864"
[ "$(cg "$P" pids)" = 32 ] || fail "custom: pids $(cg "$P" pids), want 32"
[ "$(cg "$P" cpu)" = "25000 100000" ] || fail "custom: cpu $(cg "$P" cpu), want 25000 100000"
P=$(pid_of large)
[ "$(cg "$P" memory)" = 1073741824 ] || fail "large (replaced in server.yaml): memory $(cg "$P" memory), want 1G"
[ "$(cg "$P" pids)" = max ] || fail "large (replaced as a whole): pids should be unlimited, got $(cg "$P" pids)"
[ "$(cg "$P" cpu | cut -d' ' -f1)" = max ] || fail "large (replaced as a whole): cpu should be unlimited, got $(cg "$P" cpu)"
P=$(pid_of free)
[ "$(cg "$P" memory)" = max ] || fail "no profile: memory limited to $(cg "$P" memory)"
[ "$(cg "$P" pids)" = max ] || fail "no profile: pids limited to $(cg "$P" pids)"
pass "server.yaml: custom profile (0.25 CPU, 64M, 32 pids) applied; a replaced built-in keeps only what it names"

# unknown profile: deploy error naming it, running release untouched
PIDS_BEFORE=$(b ps --app $APP --json | json '" ".join(sorted(str(i["pid"]) for i in d["instances"]))')
sed -i 's/profile: custom/profile: huge/' "$D/berth.yaml"
rc=0; (cd "$D" && b deploy) >"$T/d2.out" 2>"$T/d2.err" || rc=$?
[ $rc != 0 ] || { cat "$T/d2.out"; fail "deploy with an unknown profile exited 0"; }
grep -q '"huge"\|huge' "$T/d2.err" || { cat "$T/d2.out" "$T/d2.err"; fail "the error does not name the unknown profile"; }
grep -qi "profile" "$T/d2.err" || { cat "$T/d2.err"; fail "the error does not say it is about a profile"; }
wait_for '[ "$(b ps --app $APP --json | json "\" \".join(sorted(str(i[\"pid\"]) for i in d[\"instances\"]))")" = "$PIDS_BEFORE" ]' 50 \
  || { b ps --app $APP; fail "the running release changed after the unknown-profile deploy"; }
LIVE=$(b apps --json | json "[a['release'] for a in d['apps'] if a['name']=='$APP'][0]")
[ "$LIVE" = 1 ] || fail "live release is v$LIVE after a failed deploy"
sed -i 's/profile: huge/profile: custom/' "$D/berth.yaml"
pass "unknown profile: deploy fails naming \"huge\"; v1 keeps running"

else
  cat >"$D/berth.yaml" <<'YAML'
app: pv
processes:
  store:
    command: 'echo "$BERTH_RELEASE" >>"$BERTH_VOLUME_DATA/boots"; echo cached >"$CACHE_DIR/c"; echo "shell: 0=$0 #=$# f=${__berth_f-none}"; exec sleep 1004'
    volumes: {data: , cache: CACHE_DIR}
YAML
  (cd "$D" && b deploy) >"$T/d1.out" 2>&1 || { cat "$T/d1.out"; fail "deploy failed"; }
fi
# ---- volumes
VOLS="$DATA/volumes/production/$APP"
[ "$(cat "$VOLS/data/boots")" = 1 ] || fail "the instance did not write into its data volume"
[ "$(cat "$VOLS/cache/c")" = cached ] || fail "mapping-form volume (CACHE_DIR) not passed"
# the command runs as under `/bin/sh -c COMMAND` (however berth puts it in its cgroup)
wait_for 'b logs --app $APP --process store -n 5 | grep -q "shell: "' 30 || fail "store printed nothing"
b logs --app $APP --process store -n 5 | grep -q "shell: 0=/bin/sh #=0 f=none$" \
  || fail "the command does not see \$0=/bin/sh and no arguments: $(b logs --app $APP --process store -n 5 | grep 'shell: ')"
b volumes --app $APP >"$T/vol.txt" || fail "volumes failed"
grep -q data "$T/vol.txt" && grep -q cache "$T/vol.txt" || { cat "$T/vol.txt"; fail "volumes does not list data and cache"; }
b volumes --app $APP --json >"$T/vol.json"
[ "$(json '" ".join(sorted(v["name"] for v in d["volumes"]))' <"$T/vol.json")" = "cache data" ] || { cat "$T/vol.json"; fail "volumes --json names"; }
[ "$(json '[v["path"] for v in d["volumes"] if v["name"]=="data"][0]' <"$T/vol.json")" = "$VOLS/data" ] || fail "volume path is not $VOLS/data"
[ "$(json '[v["bytes"] for v in d["volumes"] if v["name"]=="data"][0]' <"$T/vol.json")" -ge 2 ] || fail "volume size not counted"

echo "v2" >"$D/version.txt"
(cd "$D" && b deploy) >"$T/d3.out" 2>&1 || { cat "$T/d3.out"; fail "second deploy failed"; }
V2=$(b apps --json | json "[a['release'] for a in d['apps'] if a['name']=='$APP'][0]")
wait_for '[ "$(tr "\n" " " <"$VOLS/data/boots")" = "1 $V2 " ]' 50 || fail "data did not survive the deploy: $(cat "$VOLS/data/boots")"
b config set FOO=bar --app $APP >"$T/cfg.out" 2>&1 || { cat "$T/cfg.out"; fail "config set failed"; }
V3=$(b apps --json | json "[a['release'] for a in d['apps'] if a['name']=='$APP'][0]")
[ "$V3" = $((V2 + 1)) ] || fail "config set did not make a new release"
wait_for '[ "$(tr "\n" " " <"$VOLS/data/boots")" = "1 $V2 $V3 " ]' 50 || fail "data did not survive a config release: $(cat "$VOLS/data/boots")"
pass "volumes listed (name, path, size), passed as env vars, data kept across deploy and config releases"

rc=0; b volumes rm data --app $APP >"$T/rm0.out" 2>&1 || rc=$?
[ $rc = 2 ] || { cat "$T/rm0.out"; fail "volumes rm without --yes exited $rc, want 2"; }
rc=0; b volumes rm data --yes --app $APP >"$T/rm1.out" 2>&1 || rc=$?
[ $rc = 1 ] || { cat "$T/rm1.out"; fail "volumes rm of a volume in use exited $rc, want 1"; }
grep -qi "in use\|running\|uses it" "$T/rm1.out" || { cat "$T/rm1.out"; fail "the refusal does not say the volume is in use"; }
[ -f "$VOLS/data/boots" ] || fail "the volume in use was deleted anyway"
out=$(api DELETE "/v1/envs/production/apps/$APP/volumes/data"); [ "$(http_code "$out")" = 409 ] || fail "DELETE of a volume in use: $(http_code "$out"), want 409"
b scale store=0 --app $APP >"$T/s0.out" 2>&1 || { cat "$T/s0.out"; fail "scale store=0 failed"; }
wait_for '[ "$(b ps --app $APP --json | json "sum(1 for i in d[\"instances\"] if i[\"process\"]==\"store\")")" = 0 ]' 50 || fail "store not stopped"
b volumes rm data --yes --app $APP >"$T/rm2.out" 2>&1 || { cat "$T/rm2.out"; fail "volumes rm after scale to 0 failed"; }
[ ! -e "$VOLS/data" ] || fail "volume dir still there after rm"
[ -f "$VOLS/cache/c" ] || fail "rm of one volume touched another"
b volumes --app $APP --json | json '" ".join(v["name"] for v in d["volumes"])' | grep -qw data && fail "removed volume still listed"
b scale store=1 --app $APP >"$T/s1.out" 2>&1 || { cat "$T/s1.out"; fail "scale store=1 failed"; }
wait_for '[ "$(cat "$VOLS/data/boots" 2>/dev/null)" = "$V3" ]' 50 || fail "after rm + scale up the volume should start empty: $(cat "$VOLS/data/boots" 2>/dev/null)"
out=$(api DELETE "/v1/envs/production/apps/$APP/volumes/nope"); [ "$(http_code "$out")" = 404 ] || fail "DELETE of an unknown volume: $(http_code "$out")"
out=$(api DELETE "/v1/envs/production/apps/$APP/volumes/..%2F..%2Fetc"); case $(http_code "$out") in 400|404) ;; *) fail "DELETE of a path-like volume name: $(http_code "$out")" ;; esac
pass "volumes rm: needs --yes, refused (409) while in use, works after scale to 0; a new volume starts empty"
stop_server
