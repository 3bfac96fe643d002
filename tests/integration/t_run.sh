#!/usr/bin/env bash
# berth run / berth exec (berth-attach/1): a one-off's exit status is berth's; stdin, stdout
# and stderr go where they should, large data and EOF included; the one-off sees the app's
# config and has no PORT; flags after CMD are CMD's; under a pseudo-terminal it gets a
# terminal of its own (its size, resizes, Ctrl-C as a key) and ours is restored afterwards;
# SIGINT to berth reaches the command; killing berth, or closing its stdout, stops the
# command; -d leaves it running with its output in the logs; exec runs beside web.1 in its
# directory and environment; a viewer token and an app with no release are refused.
source "$(dirname "$0")/lib.sh"
start_server
APP=oneoff
make_app $APP
run_ok "$T/d1.out" b deploy "$APP_DIR" --app $APP
cd "$T"   # no berth.yaml here: every verb names its app
R() { b run --app $APP "$@"; }

# no_token FILE WHAT: the admin token appears nowhere in FILE
no_token() { ! grep -qF "$BERTH_TOKEN" "$1" || fail "$2: the token is in the output"; }

# ---- exit status, stdin, stdout, stderr
rc=0; R -- sh -c 'exit 7' </dev/null >"$T/x.out" 2>"$T/x.err" || rc=$?
assert_eq "$rc" 7 "berth run -- sh -c 'exit 7'"
no_token "$T/x.err" "run"
assert_eq "$(echo hi | R -- cat 2>"$T/cat.err")" hi "echo hi | berth run -- cat"
rc=0; R -- sh -c 'echo out-line; echo err-line >&2; exit 0' </dev/null >"$T/s.out" 2>"$T/s.err" || rc=$?
assert_eq "$rc" 0 "run with stdout and stderr"
assert_eq "$(cat "$T/s.out")" out-line "the command's stdout"
assert_has "$(cat "$T/s.err")" err-line "the command's stderr"
assert_lacks "$(cat "$T/s.out")" err-line "stdout"
rc=0; R -- sh -c 'kill -TERM $$' </dev/null >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 143 "a command ended by SIGTERM"
pass "exit status (7, 143 for SIGTERM), stdin, stdout and stderr each where they belong"

head -c 3000000 /dev/urandom >"$T/big.in"
rc=0; R -- sh -c 'cat; echo after-eof >&2' <"$T/big.in" >"$T/big.out" 2>"$T/big.err" || rc=$?
assert_eq "$rc" 0 "berth run -- cat <3 MB"
cmp -s "$T/big.in" "$T/big.out" || fail "3 MB through cat came back different ($(wc -c <"$T/big.out") bytes)"
assert_has "$(cat "$T/big.err")" after-eof "the command saw EOF on stdin"
pass "3 MB through stdin and stdout intact, then EOF"

# ---- config, no PORT; flags after CMD belong to CMD
run_ok "$T/c2.out" b config set GREETING=x --app $APP
assert_eq "$(R -- sh -c 'echo $PORT-$GREETING' </dev/null 2>/dev/null)" "-x" "the one-off's environment"
assert_eq "$(R sh -c 'echo "$@"' sh -la --app y </dev/null 2>/dev/null)" "-la --app y" "flags after CMD"
assert_eq "$(R -- sh -c 'echo "$@"' sh -la </dev/null 2>/dev/null)" "-la" "flags after --"
assert_eq "$(b run --env production --app $APP -T ls -d / </dev/null 2>/dev/null)" "/" "flags before CMD"
pass "the one-off sees the config (GREETING=x) and no PORT; words after CMD are its own"

# ---- usage errors
rc=0; R >"$T/u1.out" 2>&1 </dev/null || rc=$?
assert_eq "$rc" 2 "berth run without a command"
assert_has "$(cat "$T/u1.out")" "usage: berth run" "berth run without a command"
rc=0; R -t -T -- true >"$T/u2.out" 2>&1 </dev/null || rc=$?
assert_eq "$rc" 2 "berth run -t -T"
rc=0; b exec --app $APP web.1 >"$T/u3.out" 2>&1 </dev/null || rc=$?
assert_eq "$rc" 2 "berth exec without a command"
rc=0; b exec --app $APP web -- true >"$T/u4.out" 2>&1 </dev/null || rc=$?
assert_eq "$rc" 2 "berth exec with a bad instance"
pass "no command, -t with -T, a bad instance: usage errors (exit 2)"

# ---- under a pseudo-terminal: a terminal of its own, its size, resizes, Ctrl-C, exit status
cat >"$T/drive_pty.py" <<'PY'
import fcntl, os, pty, select, signal, struct, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    os.execvp(sys.argv[1], sys.argv[1:])
before = termios.tcgetattr(fd)
buf = b""
def read_until(needle, secs=30):
    global buf
    end = time.time() + secs
    while needle not in buf:
        left = end - time.time()
        if left <= 0:
            sys.exit("timed out waiting for %r; the terminal showed %r" % (needle, buf))
        if select.select([fd], [], [], left)[0]:
            try:
                d = os.read(fd, 4096)
            except OSError:
                d = b""
            if not d:
                sys.exit("berth ended while waiting for %r; the terminal showed %r" % (needle, buf))
            buf += d
def send(s):
    os.write(fd, s)
# what the commands print is computed, so the remote terminal's echo of a line never matches
send(b"PS1='RDY'$((1+1))'> '\n")    # a prompt the test can wait for
read_until(b"RDY2> ")
send(b"echo $((6*7))\n")
read_until(b"42\r\n")
send(b"tty\n")
read_until(b"/dev/pts/")
send(b"stty size\n")
read_until(b"33 101\r\n")
# SIGWINCH to berth, which sends a RESIZE frame before the next keys
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
send(b"stty size\n")
read_until(b"40 120\r\n")
# Ctrl-C is a key like any other: the remote terminal turns it into SIGINT
send(b"echo sleeping-$((2+2)); sleep 30; echo not-$((1+1))-interrupted\n")
read_until(b"sleeping-4\r\n")
send(b"\x03")
read_until(b"^C")   # the remote terminal echoes it and flushes its input
read_until(b"RDY2> ")   # the shell is back at its prompt: type on after that
send(b"echo after-$((1+1))-ctrl-c\n")
read_until(b"after-2-ctrl-c\r\n", 20)
send(b"exit 3\n")
end = time.time() + 30
while True:
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if time.time() > end:
        os.kill(pid, signal.SIGKILL)
        sys.exit("berth did not exit after `exit 3`: %r" % buf)
    if select.select([fd], [], [], 0.2)[0]:
        try:
            buf += os.read(fd, 4096)
        except OSError:
            pass
if b"not-2-interrupted" in buf:
    sys.exit("Ctrl-C did not interrupt sleep: %r" % buf)
after = termios.tcgetattr(fd)
if after[3] != before[3] or after[1] != before[1]:
    sys.exit("the terminal was not restored: lflag %o -> %o, oflag %o -> %o" % (before[3], after[3], before[1], after[1]))
print(os.waitstatus_to_exitcode(st))
PY
out=$(python3 "$T/drive_pty.py" "$BERTH" run --app $APP -- sh 2>&1) || fail "under a pty: $out"
assert_eq "$(tail -n1 <<<"$out")" 3 "berth run -- sh under a pty, then exit 3"
pass "under a pty: 42, a /dev/pts terminal of 33x101, resized to 40x120, Ctrl-C as a key, exit 3, terminal restored"

# ---- SIGINT to berth (pipe mode) reaches the command
# (berth itself in the background, not the R function: that would be a subshell's pid)
"$BERTH" run --app $APP -- sh -c 'trap "echo got-int; exit 9" INT; echo ready; while :; do sleep 0.1; done' \
  </dev/null >"$T/int.out" 2>"$T/int.err" &
RP=$!
wait_for 'grep -qx ready "$T/int.out"' 150 || fail "the trap command never said ready: $(cat "$T/int.out" "$T/int.err")"
kill -INT $RP
wait_gone $RP 150 || fail "berth still runs 15 s after SIGINT"
rc=0; wait $RP || rc=$?
assert_eq "$rc" 9 "exit status after SIGINT"
assert_eq "$(cat "$T/int.out")" "ready
got-int" "the command's output after SIGINT"
pass "SIGINT to berth reaches the command (got-int, exit 9)"

# ---- killing berth stops the command
"$BERTH" run --app $APP -- sh -c "echo \$\$ >'$T/victim.pid'; echo ready; while :; do sleep 0.1; done" \
  </dev/null >"$T/kill.out" 2>&1 &
RP=$!
wait_for '[ -s "$T/victim.pid" ] && grep -qx ready "$T/kill.out"' 150 || fail "the victim never started: $(cat "$T/kill.out")"
VP=$(cat "$T/victim.pid")
alive "$VP" || fail "the victim ($VP) is not running"
kill -9 $RP
wait $RP 2>/dev/null
wait_for '! alive $VP' 150 || fail "the command (pid $VP) still runs 15 s after berth was killed"
pass "SIGKILL to berth stops the command (pid $VP gone)"

# ---- a closed stdout stops the command; berth exits 141 without a word
rm -f "$T/victim.pid"
set -o pipefail
rc=0; R -- sh -c "echo \$\$ >'$T/victim.pid'; while :; do echo y; done" </dev/null 2>"$T/pipe.err" | head -n 2 >"$T/pipe.out" || rc=$?
set +o pipefail
assert_eq "$(cat "$T/pipe.out")" "y
y" "berth run ... | head -n 2"
assert_eq "$rc" 141 "berth's status when its stdout closed"
assert_lacks "$(cat "$T/pipe.err")" "lost" "stderr when stdout closed"
VP=$(cat "$T/victim.pid")
wait_for '! alive $VP' 150 || fail "the command (pid $VP) still runs after berth's stdout closed"
pass "berth run | head -n 2: berth exits 141, the command stops"

# ---- -d: in the background, its output in the logs
ID=$(R -d -- sh -c 'echo detached-output-$GREETING' 2>"$T/d.err" </dev/null) || fail "run -d: $(cat "$T/d.err")"
[[ "$ID" =~ ^[a-z0-9-]+\.[0-9]+$ ]] || fail "run -d printed '$ID', want an id like run.4"
wait_for "b logs --app $APP | grep -q detached-output-x" 150 || fail "the detached command's output is not in the logs"
pass "run -d prints $ID; its output reaches the logs"

# ---- exec beside web.1
WP=$(pids_of $APP web)
b exec web.1 --app $APP -- sh -c 'echo $BERTH_INSTANCE; pwd; echo $GREETING' </dev/null >"$T/exec.out" 2>"$T/exec.err" ||
  fail "exec: $(cat "$T/exec.err")"
assert_eq "$(cat "$T/exec.out")" "web.1
$(readlink "/proc/$WP/cwd")
x" "berth exec web.1: BERTH_INSTANCE, cwd, config"
rc=0; b exec --app $APP web.1 sh -c 'exit 4' </dev/null >/dev/null 2>&1 || rc=$?
assert_eq "$rc" 4 "exec's exit status"
assert_eq "$(pids_of $APP web)" "$WP" "web.1's pid after exec"
rc=0; b exec web.9 --app $APP -- true </dev/null >"$T/e9.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "exec on an instance that does not exist"
assert_has "$(cat "$T/e9.out")" "berth: " "exec on web.9"
pass "exec web.1 runs in web.1's directory and environment; web.9 is refused"

# ---- refusals: a viewer, an app with no release
VT=$(b tokens create "viewer-$RANDOM" --role viewer 2>/dev/null) || fail "tokens create failed"
rc=0; BERTH_TOKEN=$VT b run --app $APP -- true </dev/null >"$T/v.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "berth run with a viewer token"
assert_has "$(cat "$T/v.out")" "berth: " "viewer run"
grep -qF "$VT" "$T/v.out" && fail "the viewer's token is in the message"
rc=0; BERTH_TOKEN=$VT b exec web.1 --app $APP -- true </dev/null >"$T/v2.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "berth exec with a viewer token"
rc=0; b run --app ghost -- true </dev/null >"$T/g.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "berth run on an app never deployed"
assert_has "$(cat "$T/g.out")" "ghost" "the message for an app never deployed"
mkdir -p "$T/app-bad"
echo 'web: exit 1' >"$T/app-bad/Procfile"
b deploy "$T/app-bad" --app bad >"$T/bad.out" 2>&1 && fail "a deploy of web: exit 1 succeeded"
rc=0; b run --app bad -- true </dev/null >"$T/nr.out" 2>&1 || rc=$?
assert_eq "$rc" 1 "berth run on an app whose only release failed"
assert_eq "$(grep -c . "$T/nr.out")" 1 "one line of message for an app with no release: $(cat "$T/nr.out")"
assert_has "$(cat "$T/nr.out")" "berth: " "the message for an app with no release"
pass "a viewer token, an app never deployed and one with no live release are refused (exit 1)"

stop_server
pass "server stopped, no process left"
