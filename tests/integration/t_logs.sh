#!/usr/bin/env bash
# Logs: `logs -n N` gives exactly the last N lines, merged across instances in time order, each
# line with its instance; --process, --since, --json; `logs -f` streams new lines as they come
# (also from an instance started after it began); the files on disk follow docs/logs.md.
source "$(dirname "$0")/lib.sh"
start_server
APP=lg
D="$T/app"
mkdir -p "$D"
# Two workers each print 20 numbered lines and one stderr line, then stay quiet; the ticker
# prints a numbered line every 0.1 s for ever; two bursts print 300 lines each in one go (so
# many lines share one read, hence one timestamp).
cat >"$D/worker.sh" <<'SH'
i=0
while [ $i -lt 20 ]; do i=$((i+1)); echo "line $BERTH_INSTANCE $i"; sleep 0.02; done
echo "warn $BERTH_INSTANCE" >&2
exec sleep 3600
SH
cat >"$D/ticker.sh" <<'SH'
i=0
while true; do i=$((i+1)); echo "tick $i"; sleep 0.1; done
SH
cat >"$D/berth.yaml" <<'YAML'
app: lg
processes:
  worker:
    command: exec sh worker.sh
    instances: 2
  ticker:
    command: exec sh ticker.sh
  burst:
    command: seq -f "burst $BERTH_INSTANCE %g" 1 300; exec sleep 3600
    instances: 2
YAML
run_ok "$T/d.out" b deploy "$D"
wait_for '[ "$(b logs --source app --app $APP --process worker -n 1000 | wc -l)" = 42 ]' 100 \
  || { b logs --source app --app $APP --process worker -n 1000; fail "the workers did not print their 42 lines"; }

# ---- the text format, per instance, in time order
b logs --source app --app $APP --process worker -n 1000 >"$T/w.txt"
python3 - "$T/w.txt" <<'PY' || { cat "$T/w.txt"; fail "logs --process worker text output"; }
import re, sys
lines = open(sys.argv[1]).read().splitlines()
fmt = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (worker\.[12]) v1 (\||err\|) (.*)$")
seen = {"worker.1": [], "worker.2": []}
prev = ""
for l in lines:
    m = fmt.match(l)
    assert m, "bad line: %r" % l
    ts, inst, mark, text = m.groups()
    assert ts >= prev, "not in time order at %r" % l
    prev = ts
    # each line carries the instance that wrote it
    assert text.split()[1] == inst, "line %r shown as %s" % (text, inst)
    assert (mark == "err|") == text.startswith("warn"), "stream marker of %r" % l
    seen[inst].append(text)
for inst, texts in seen.items():
    want = ["line %s %d" % (inst, i) for i in range(1, 21)] + ["warn %s" % inst]
    assert texts == want, "%s printed %r" % (inst, texts)
PY
pass "logs --process worker: 42 lines, time-ordered, each with its instance and stream"

# ---- lines that share a timestamp keep their order
wait_for '[ "$(b logs --source app --app $APP --process burst -n 1000 | wc -l)" = 600 ]' 50 || fail "the bursts did not print their 600 lines"
for i in 1 2; do
  assert_eq "$(b logs --source app --app $APP --process burst -n 1000 | grep " burst.$i v1 " | sed 's/.* | //' | md5sum)" \
    "$(seq -f "burst burst.$i %g" 1 300 | md5sum)" "burst.$i's 300 lines, in order"
done
LASTB=$(b logs --source app --app $APP --process burst -n 1 | awk '{print $2}')
assert_eq "$(b logs --source app --app $APP --process burst -n 10 | sed 's/.* | //')" "$(seq -f "burst $LASTB %g" 291 300)" "logs -n 10 of a burst"
pass "lines read together keep their order, in full and with -n"

# ---- -n N: exactly the last N lines of the merge (compared with the files on disk)
LOGDIR="$DATA/logs/production/$APP"
b logs --source app --app $APP --process worker -n 22 --json >"$T/n22.json"
python3 - "$T/n22.json" "$LOGDIR" <<'PY' || fail "logs -n 22 is not the last 22 lines of the merged worker logs"
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
assert len(got) == 22, "%d lines" % len(got)
for g in got:
    assert set(g) >= {"ts", "instance", "process", "slot", "release", "stream", "line"}, g
    assert g["instance"] == "%s.%d" % (g["process"], g["slot"]) and g["release"] == 1, g
assert [g["ts"] for g in got] == sorted(g["ts"] for g in got), "not in time order"
# 22 lines of instances that wrote 21 each: both instances must be in there
assert {g["instance"] for g in got} == {"worker.1", "worker.2"}, "not merged across both workers"
disk = []
for inst in ("worker.1", "worker.2"):
    for l in open("%s/%s.log" % (sys.argv[2], inst)):
        ts, rel, stream, text = l.rstrip("\n").split(" ", 3)
        if stream != "sys":    # berth's own lines about the instance: --source app leaves them out
            disk.append((ts, inst, stream, text))
# the lines left out are none newer than the oldest line shown
picked = {(g["ts"], g["instance"], g["stream"], g["line"]) for g in got}
assert picked <= set(disk), "lines not on disk: %r" % (picked - set(disk))
oldest = min(p[0] for p in picked)
assert all(d[0] <= oldest for d in disk if d not in picked), "a newer line was left out"
PY
b logs --source app --app $APP --process worker -n 5 >"$T/n5.txt"
assert_eq "$(wc -l <"$T/n5.txt")" 5 "logs -n 5 line count"
assert_eq "$(b logs --source app --app $APP --process worker -n 0 | wc -l)" 0 "logs -n 0 line count"
pass "logs -n 22 --json is exactly the newest 22 lines of both workers"

# ---- --process: only that process's instances
b logs --source app --app $APP --process ticker -n 5 | cut -d' ' -f2- >"$T/t5.txt"
assert_eq "$(wc -l <"$T/t5.txt")" 5 "logs --process ticker -n 5 line count"
grep -vqE '^ticker\.1 v1 \| tick [0-9]+$' "$T/t5.txt" && { cat "$T/t5.txt"; fail "logs --process ticker shows other lines"; }
python3 -c 'import sys; n=[int(l.split()[-1]) for l in open(sys.argv[1])]; sys.exit(n != list(range(n[0], n[0]+5)))' "$T/t5.txt" \
  || { cat "$T/t5.txt"; fail "the last 5 ticks are not consecutive"; }
assert_eq "$(b logs --source app --app $APP -n 1000 | grep -c ' worker\.')" 42 "every process's lines without --process (worker)"
pass "logs --process ticker shows only the ticker's newest lines"

# ---- --since 1s. The workers have been quiet for over a second (wait for that), the ticker
# goes on. The server reads its clock somewhere between T0 and T1 (taken around the call), so:
# every line shown is at most 1 s older than T0, and every line on disk between T1-1s and T0
# must be shown.
last_worker_us() { b logs --source app --app $APP --process worker -n 1 --json | json 'd["ts"]' | python3 -c \
  'import sys,datetime; print(int(datetime.datetime.fromisoformat(sys.stdin.read().strip().replace("Z","+00:00")).timestamp()*1e6))'; }
LW=$(last_worker_us)
wait_for '[ $(( $(date +%s%6N) - LW )) -gt 1500000 ]' 50 || fail "clock did not advance"
T0=$(date +%s%6N)
b logs --source app --app $APP --since 1s -n 1000 --json >"$T/since.json" || fail "logs --since 1s failed"
T1=$(date +%s%6N)
python3 - "$T/since.json" "$LOGDIR/ticker.1.log" "$T0" "$T1" <<'PY' || fail "logs --since 1s"
import datetime, json, sys
def us(ts):
    return int(datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e6)
got = [json.loads(l) for l in open(sys.argv[1])]
t0, t1 = int(sys.argv[3]), int(sys.argv[4])
assert got, "no lines"
assert all(g["process"] == "ticker" for g in got), "lines older than 1 s: %r" % [g for g in got if g["process"] != "ticker"]
assert all(us(g["ts"]) >= t0 - 1000000 for g in got), "a line older than 1 s"
shown = {(g["ts"], g["line"]) for g in got}
for l in open(sys.argv[2]):
    ts, rel, stream, text = l.rstrip("\n").split(" ", 3)
    if t1 - 1000000 <= us(ts) <= t0:
        assert (ts, text) in shown, "line %r of the last second missing" % l
PY
assert_eq "$(b logs --source app --app $APP --process worker --since 1s | wc -l)" 0 "worker lines in the last second"
pass "logs --since 1s shows exactly the last second"

# ---- -f: new lines as they come, nothing dropped, also from an instance started afterwards.
# Two followers: one of the ticker only, one of everything. Both are known to be subscribed
# once each has received ticker lines; only then a third worker is started, whose 21 lines
# must reach the unfiltered follower (and not the ticker one).
LAST=$(b logs --source app --app $APP --process ticker -n 1 | awk '{print $NF}')
b logs -f -n 0 --source app --app $APP --process ticker >"$T/follow.out" 2>"$T/follow.err" &
FOLLOW=$!
BG_PIDS+=("$FOLLOW")
b logs -f -n 0 --source app --app $APP >"$T/followall.out" 2>"$T/followall.err" &
FOLLOWALL=$!
BG_PIDS+=("$FOLLOWALL")
wait_for '[ "$(wc -l <"$T/follow.out")" -ge 3 ] && [ "$(wc -l <"$T/followall.out")" -ge 3 ]' 50 \
  || { cat "$T/follow.out" "$T/follow.err" "$T/followall.err"; fail "logs -f got no new lines"; }
run_ok "$T/scale.out" b scale worker=3 --app $APP
wait_for '[ "$(grep -c " worker.3 " "$T/followall.out")" = 21 ] && [ "$(wc -l <"$T/follow.out")" -ge 8 ]' 50 \
  || { cat "$T/followall.out"; fail "logs -f did not stream the new worker.3's lines"; }
alive "$FOLLOW" && alive "$FOLLOWALL" || fail "logs -f ended by itself"
kill "$FOLLOW" "$FOLLOWALL"; wait "$FOLLOW" "$FOLLOWALL" 2>/dev/null
python3 - "$T/follow.out" "$LAST" <<'PY' || { cat "$T/follow.out"; fail "logs -f --process ticker output"; }
import re, sys
n = []
for l in open(sys.argv[1]):
    m = re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ticker\.1 v1 \| tick (\d+)$", l)
    assert m, "bad line %r" % l
    n.append(int(m.group(1)))
assert n[0] > int(sys.argv[2]), "an old line (tick %d <= %s) was replayed with -n 0" % (n[0], sys.argv[2])
assert n == list(range(n[0], n[0] + len(n))), "ticks missing or out of order: %r" % n
PY
assert_eq "$(grep ' worker\.' "$T/followall.out" | cut -d' ' -f2-)" \
  "$(for i in $(seq 1 20); do echo "worker.3 v1 | line worker.3 $i"; done; echo "worker.3 v1 err| warn worker.3")" \
  "logs -f of an instance started after the follow began"
python3 -c 'import sys; t=[l.split()[0] for l in open(sys.argv[1])]; sys.exit(t != sorted(t))' "$T/followall.out" \
  || fail "unfiltered logs -f is not in time order"
pass "logs -f streams new lines, none dropped, including a newly started instance"

# ---- the files on disk (docs/logs.md)
assert_eq "$(stat -c %a "$DATA/logs/production" "$LOGDIR" | tr '\n' ' ')" "750 750 " "log directory modes"
assert_eq "$(cd "$LOGDIR" && ls | tr '\n' ' ')" "burst.1.log burst.2.log ticker.1.log worker.1.log worker.2.log worker.3.log " "log files"
for f in "$LOGDIR"/*.log; do
  assert_eq "$(stat -c %a "$f")" 640 "mode of $f"
  grep -vqE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z v1 (out|err|sys) ' "$f" \
    && { grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z v1 (out|err|sys) ' "$f" | head -3; fail "$f has lines not in the documented format"; }
done
assert_eq "$(cut -d' ' -f2- "$LOGDIR/worker.2.log" | grep -v "^v1 sys ")" "$(for i in $(seq 1 20); do echo "v1 out line worker.2 $i"; done; echo "v1 err warn worker.2")" "worker.2.log"
# berth's own lines about the instance, beside the app's (Heroku's "State changed ..."):
# --source berth shows only those, the default shows both
b logs --source berth --app $APP --process worker -n 100 >"$T/sys.txt"
grep -q " worker.1 v1 berth| worker.1: starting (v1, pid [0-9]*)" "$T/sys.txt" || { cat "$T/sys.txt"; fail "no 'starting' line of berth's"; }
grep -q " worker.1 v1 berth| worker.1: healthy after [0-9]* ms" "$T/sys.txt" || { cat "$T/sys.txt"; fail "no 'healthy' line of berth's"; }
grep -vq " berth| " "$T/sys.txt" && { cat "$T/sys.txt"; fail "--source berth shows app lines"; }
b logs --app $APP --process worker -n 1000 | grep -q " berth| worker.2: starting" || fail "berth's lines are not in the default logs"
# sort merges the files into time order, as the docs promise
assert_eq "$(sort "$LOGDIR"/worker.[12].log | cut -d' ' -f4- | grep -c '^line worker')" 40 "sorted worker files"
pass "log files under DATA/logs/production/lg in the documented format and modes"

stop_server
pass "server stopped, no process left"
