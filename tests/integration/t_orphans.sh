#!/usr/bin/env bash
# No orphans, ever: whatever an instance forks (a background child, a child in a new session,
# a child that ignores SIGTERM) goes away with the instance on stop, scale-down, rollout and
# crash. An instance that ignores SIGTERM is SIGKILLed once its stop_grace has passed.
source "$(dirname "$0")/lib.sh"
# on failure, helpers nothing else can find (the ghost has no BERTH_OWNER) must not outlive us
ALL_HELPERS=""
kill_helpers() {
  for p in $ALL_HELPERS; do
    [ -r "/proc/$p/cmdline" ] && tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q "^sleep 100" && kill -9 "$p" 2>/dev/null
  done
  return 0
}
trap 'kill_helpers; cleanup' EXIT
start_server
D="$T/orph"
mkdir -p "$D"
# Each instance starts three helpers and says which pids they got:
#   child    - a plain background child (same process group)
#   escapee  - a child in a session of its own (only the cgroup can find it)
#   stubborn - a child that ignores SIGTERM
#   ghost    - a child in its own session with an empty environment (no BERTH_OWNER either)
cat >"$D/berth.yaml" <<'YAML'
app: orph
processes:
  forker:
    command: 'sleep 1001 & echo "child $!"; setsid sleep 1002 & echo "escapee $!"; (trap "" TERM; exec sleep 1003) & echo "stubborn $!"; setsid env -i sleep 1004 & echo "ghost $!"; exec sleep 1000'
    stop_grace: 3s
YAML
(cd "$D" && b deploy) >"$T/d1.out" 2>&1 || { cat "$T/d1.out"; fail "deploy failed"; }

# helpers INSTANCE: "MAIN CHILD ESCAPEE STUBBORN GHOST" of the current incarnation of INSTANCE
helpers() {
  local main
  main=$(b ps --app orph --json | json "[i['pid'] for i in d['instances'] if i['id']=='$1' and i['state']=='running'][0]") || return 1
  b logs --app orph -n 1000 --json | python3 -c '
import json, sys
inst, main = sys.argv[1], sys.argv[2]
last = {}
for l in sys.stdin:
    o = json.loads(l)
    if o["instance"] != inst:
        continue
    w = o["line"].split()
    if len(w) == 2 and w[0] in ("child", "escapee", "stubborn", "ghost"):
        if w[0] == "child":
            last = {}
        last[w[0]] = w[1]
if len(last) != 4:
    sys.exit(1)
print(main, last["child"], last["escapee"], last["stubborn"], last["ghost"])
' "$1" "$main"
}
# fresh INSTANCE: wait until INSTANCE runs and its helpers are all alive; sets H
fresh() {
  wait_for '(H=$(helpers '"$1"') && for p in $H; do pid_alive $p || exit 1; done)' 50 || { b ps --app orph; fail "$1: helpers not found/alive"; }
  H=$(helpers "$1")
  ALL_HELPERS="$ALL_HELPERS $H"
  # precondition: the escapee really is in another session than the instance
  local main esc
  main=${H%% *}; esc=$(cut -d' ' -f3 <<<"$H")
  [ "$(ps -o sid= -p "$esc" | tr -d ' ')" != "$(ps -o sid= -p "$main" | tr -d ' ')" ] || fail "test precondition: the escapee did not leave the session"
}
# all_gone WHAT PIDS...: every pid is gone (after the change said it was done)
all_gone() {
  local what=$1; shift
  wait_for '(for p in '"$*"'; do pid_alive $p && exit 1; done; exit 0)' 30 || {
    for p in "$@"; do pid_alive "$p" && echo "still alive: $p $(tr '\0' ' ' </proc/$p/cmdline)"; done
    fail "$what: processes left behind"
  }
}

# --- stop
fresh forker.1
H1=$H
b stop --app orph >"$T/stop.out" 2>&1 || { cat "$T/stop.out"; fail "stop failed"; }
all_gone "stop" $H1
[ -z "$(owner_pids 2>/dev/null)" ] || fail "stop: processes of the app still run: $(owner_pids | tr '\n' ' ')"
pass "stop: the instance, its child, a setsid escapee, a TERM-ignoring child and an env-less ghost are all gone"
b start --app orph >"$T/start.out" 2>&1 || { cat "$T/start.out"; fail "start failed"; }

# --- scale down
b scale forker=2 --app orph >"$T/s2.out" 2>&1 || { cat "$T/s2.out"; fail "scale up failed"; }
fresh forker.1; H1=$H
fresh forker.2; H2=$H
b scale forker=1 --app orph >"$T/s1.out" 2>&1 || { cat "$T/s1.out"; fail "scale down failed"; }
all_gone "scale down" $H2
for p in $H1; do pid_alive "$p" || fail "scale down killed forker.1's process $p"; done
pass "scale-down: forker.2 and everything it started are gone; forker.1 untouched"

# --- rollout (a config release replaces the instance)
b config set ROUND=2 --app orph >"$T/c.out" 2>&1 || { cat "$T/c.out"; fail "config set failed"; }
all_gone "rollout" $H1
fresh forker.1
pass "rollout: the replaced instance's helpers are gone, the new one has its own"

# --- crash: the main process dies; the supervisor restarts it, its helpers must not pile up
H1=$H
kill -9 "${H1%% *}"
all_gone "crash" $H1
wait_for '[ "$(b ps --app orph --json | json "d[\"instances\"][0][\"restarts\"]")" -ge 1 ]' 50 || fail "crashed instance not restarted"
LAST=$(b ps --app orph --json | json 'd["instances"][0]["last_exit"]')
[ "$LAST" = "killed by signal 9" ] || fail "last_exit after kill -9 is '$LAST', want 'killed by signal 9' (docs/API.md)"
fresh forker.1
[ "$(owner_pids 2>/dev/null | wc -l)" = 4 ] || fail "after a crash and restart: $(owner_pids | wc -l) processes with the owner tag, want 4 (instance + 3 helpers; the ghost has no environment)"
pass "crash: a killed instance's helpers are cleaned up before it is restarted"

# --- kill -9 of the server: the next server's start-up sweep finds every one of them
fresh forker.1
H1=$H
kill9_server
for p in $H1; do pid_alive "$p" || fail "test precondition: $p died with the server"; done
restart_server
for p in $H1; do pid_alive "$p" && fail "after kill -9 and restart, $p ($(tr '\0' ' ' </proc/$p/cmdline)) of the dead server still runs"; done
fresh forker.1
[ "$(b ps --app orph --json | json 'len(d["instances"])')" = 1 ] || fail "after the restart: not exactly one forker"
[ "$(owner_pids 2>/dev/null | wc -l)" = 4 ] || fail "after the restart: $(owner_pids | wc -l) owned processes, want 4"
pass "kill -9 of the server, restart: every helper of the old instance is gone (escapee, stubborn, ghost too)"

# --- an instance that ignores SIGTERM is killed after stop_grace (1s)
S="$T/stub"
mkdir -p "$S"
cat >"$S/berth.yaml" <<'YAML'
app: stub
processes:
  deaf:
    command: 'trap "" TERM; echo "deaf and running"; exec sleep 1000'
    stop_grace: 1s
YAML
(cd "$S" && b deploy) >"$T/d2.out" 2>&1 || { cat "$T/d2.out"; fail "deploy stub failed"; }
DEAF=$(b ps --app stub --json | json 'd["instances"][0]["pid"]')
grep -q "SigIgn:.*" "/proc/$DEAF/status" && [ $(( 0x$(awk '/SigIgn/{print $2}' "/proc/$DEAF/status") >> 14 & 1 )) = 1 ] \
  || fail "test precondition: the deaf instance does not ignore SIGTERM"
b scale deaf=0 --app stub >"$T/s0.out" 2>&1 &
SCALE=$!
# while it is stopping (SIGTERM sent, ignored) the process is still there
wait_for '[ "$(b ps --app stub --json | json "d[\"instances\"][0][\"state\"]" 2>/dev/null)" = stopping ]' 50 || fail "deaf never showed as stopping"
pid_alive "$DEAF" || fail "the deaf instance died before its grace period was over (it ignores SIGTERM)"
wait $SCALE || { cat "$T/s0.out"; fail "scale deaf=0 failed"; }
all_gone "deaf stop" "$DEAF"
grep -q "stub deaf.1 did not stop within 1000 ms; sending SIGKILL" "$T/server.log" || fail "the server log does not say it SIGKILLed deaf.1 after 1000 ms"
[ "$(b ps --app stub --json | json 'len(d["instances"])')" = 0 ] || fail "deaf still listed"
pass "an instance ignoring SIGTERM survives the grace period, then is SIGKILLed (stop_grace 1s)"

# --- an exec health check that leaves a background child behind: the check's leftovers are
# killed with it, they do not pile up with every probe
N=$((200000 + RANDOM))
P="$T/probe"
mkdir -p "$P"
cat >"$P/berth.yaml" <<YAML
app: probe
processes:
  w:
    command: exec sleep 1000
    health:
      exec: "(sleep $N &); true"
      interval: 100ms
YAML
(cd "$P" && b deploy) >"$T/d3.out" 2>&1 || { cat "$T/d3.out"; fail "deploy probe failed"; }
# let about 20 probes run
sleep 2
n=$(pgrep -fx "sleep $N" | wc -l)
[ "$n" -le 1 ] || { pkill -fx "sleep $N"; fail "$n children of exec health checks are left running (each probe leaves one)"; }
b stop --app probe >"$T/stopp.out" 2>&1 || { cat "$T/stopp.out"; fail "stop probe failed"; }
wait_for '[ "$(pgrep -fx "sleep $N" | wc -l)" = 0 ]' 20 || { pkill -fx "sleep $N"; fail "children of exec health checks outlive the stopped app"; }
pass "an exec health check's background children are killed with the check"

# --- and on server shutdown nothing is left
stop_server
pass "server shutdown leaves no process behind"
