# engine_lib: podman's Docker-compatible service for tests that need a container engine.
# Source it, then:
#   engine_start                 start the service on a socket of its own (sets ENGINE_SOCK,
#                                ENGINE_HOST=unix://$ENGINE_SOCK); waits for /_ping, 30 s at most
#   ctr_import REF BODY [MARK]   an offline busybox image: its CMD traps TERM, prints
#                                "start $MARK port=$PORT", serves /www (index.html = BODY) with
#                                busybox httpd on $PORT (8080 by default) and prints
#                                "$MARK <token> tick N" every 100 ms
#   pod ARGS...                  podman on the same isolated storage
#   eng METHOD PATH [JSON]       the engine's API (/v1.41 prefix added) with curl
#   engine_cleanup               remove every container, stop the service, unmount and remove the
#                                temp dir; the caller puts it in its EXIT trap
# Everything lives in one temp dir (ENGINE_TMP): storage (vfs), run root, tmp, the socket, two
# config files, logs. /etc is left alone: CONTAINERS_CONF and CONTAINERS_REGISTRIES_CONF point at
# files here. containers.conf has the two lines this host needs (see ../shared/DESIGN.md): no
# default ulimits (their rlimits exceed the host's hard limits) and runc (crun refuses the
# host's hybrid cgroups). Safe under `set -u`; needs podman, runc and busybox-static
# (scripts/setup.sh installs them; engine_available says which one is missing).

ENGINE_TMP=""
ENGINE_SOCK=""
ENGINE_HOST=""
ENGINE_PIDS=()
ENGINE_PODFLAGS=()
: "${MARK:=engmark$$x$RANDOM}"

# engine_available: 0 when podman, runc and a static busybox are here; else 1 and a line saying
# what is missing
engine_available() {
  local need=()
  command -v podman >/dev/null 2>&1 || need+=(podman)
  [ -x /usr/sbin/runc ] || command -v runc >/dev/null 2>&1 || need+=(runc)
  { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
  [ ${#need[@]} -eq 0 ] && return 0
  echo "engine_lib: missing ${need[*]} (scripts/setup.sh installs them)"
  return 1
}

# engine_init: the temp dir and its config files (engine_start calls it when needed)
engine_init() {
  [ -n "$ENGINE_TMP" ] && [ -d "$ENGINE_TMP" ] && return 0
  ENGINE_TMP=$(mktemp -d /tmp/berth-engine.XXXXXX)
  mkdir -p "$ENGINE_TMP/tmp"
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' >"$ENGINE_TMP/containers.conf"
  : >"$ENGINE_TMP/registries.conf"
  ENGINE_PODFLAGS=(--root "$ENGINE_TMP/root" --runroot "$ENGINE_TMP/run" --tmpdir "$ENGINE_TMP/tmp"
                   --storage-driver vfs --cgroup-manager cgroupfs --events-backend file)
  ENGINE_SOCK="$ENGINE_TMP/engine.sock"
  ENGINE_HOST="unix://$ENGINE_SOCK"
}

pod() {
  CONTAINERS_CONF="$ENGINE_TMP/containers.conf" CONTAINERS_REGISTRIES_CONF="$ENGINE_TMP/registries.conf" \
    podman "${ENGINE_PODFLAGS[@]}" "$@"
}

# eng METHOD PATH [JSON-BODY]: prints the answer's body; ENG_TIMEOUT (s) bounds it, 30 by default
eng() {
  if [ -n "${3:-}" ]; then
    curl -s -m "${ENG_TIMEOUT:-30}" --unix-socket "$ENGINE_SOCK" -X "$1" -H 'Content-Type: application/json' \
      -d "$3" "http://d/v1.41$2"
  else
    curl -s -m "${ENG_TIMEOUT:-30}" --unix-socket "$ENGINE_SOCK" -X "$1" "http://d/v1.41$2"
  fi
}

# The service runs under a child subreaper, so the conmon processes it double-forks (one per
# container) are reaped at once (this VM's PID 1 reaps orphans only every few seconds).
ENGINE_REAPER='
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)          # PR_SET_CHILD_SUBREAPER
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
def fwd(s, f):
    try: os.kill(pid, s)
    except ProcessLookupError: pass
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP): signal.signal(s, fwd)
while True:
    try: os.wait()
    except ChildProcessError: break
'

# engine_start: 0 once the service answers OK to /_ping; else 1 with the tail of its log
engine_start() {
  engine_init
  rm -f "$ENGINE_SOCK"
  CONTAINERS_CONF="$ENGINE_TMP/containers.conf" CONTAINERS_REGISTRIES_CONF="$ENGINE_TMP/registries.conf" \
    python3 -c "$ENGINE_REAPER" podman "${ENGINE_PODFLAGS[@]}" system service --time=0 "$ENGINE_HOST" \
    >>"$ENGINE_TMP/service.log" 2>&1 </dev/null &
  local pid=$!
  ENGINE_PIDS+=("$pid")
  local end=$(( $(date +%s) + 30 ))
  while [ "$(date +%s)" -lt $end ]; do
    [ "$(curl -s -m 2 --unix-socket "$ENGINE_SOCK" http://d/_ping 2>/dev/null)" = OK ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "engine_lib: podman system service did not answer /_ping on $ENGINE_SOCK:"
  tail -5 "$ENGINE_TMP/service.log"
  return 1
}

engine_cleanup() {
  [ -n "$ENGINE_TMP" ] && [ -d "$ENGINE_TMP" ] || return 0
  pod rm -a -f -t 0 >/dev/null 2>&1
  local p
  for p in "${ENGINE_PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
  for p in "${ENGINE_PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  ENGINE_PIDS=()
  awk -v d="$ENGINE_TMP" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$ENGINE_TMP"
  ENGINE_TMP=""
}

# a busybox rootfs (Debian's busybox-static) with its applets, /www, and a root user
engine_rootfs() {
  local r="$ENGINE_TMP/rootfs" a
  mkdir -p "$r/bin" "$r/etc" "$r/www" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/root"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"; echo 'root:x:0:' >"$r/etc/group"
  chmod 1777 "$r/tmp"
}

# the image's CMD (run by /bin/sh -c): a shell as PID 1 ignores SIGTERM without the trap
ENGINE_CTR_SCRIPT='trap "exit 0" TERM INT
echo "start $MARK port=$PORT"
httpd -f -v -p "${PORT:-8080}" -h /www &
R=$(od -An -N4 -tx4 /dev/urandom | tr -d " ")
i=0
while true; do i=$((i+1)); echo "$MARK $R tick $i"; sleep 0.1; done'

# ctr_import REF BODY [MARK]: import the rootfs as image REF, serving BODY; MARK (the image's
# environment) defaults to $MARK
ctr_import() {
  engine_init
  [ -x "$ENGINE_TMP/rootfs/bin/busybox" ] || engine_rootfs
  printf '%s\n' "$2" >"$ENGINE_TMP/rootfs/www/index.html"
  tar -C "$ENGINE_TMP/rootfs" -cf "$ENGINE_TMP/img.tar" .
  local cmd
  cmd=$(python3 -c 'import json,sys; print(json.dumps(["/bin/sh","-c",sys.argv[1]]))' "$ENGINE_CTR_SCRIPT")
  pod import --change "CMD $cmd" --change "ENV MARK=${3:-$MARK}" "$ENGINE_TMP/img.tar" "$1" \
    >/dev/null 2>"$ENGINE_TMP/import.err" || { cat "$ENGINE_TMP/import.err"; return 1; }
}
