#!/usr/bin/env python3
"""bench.py: the measurements behind bench/run.sh. run.sh builds the log generator, starts a
throwaway `berth server` and cleans up every process; each subcommand here measures one group
of figures against that server and against its peer (the same work without berth, in the same
run), and adds its rows to the run's results file (JSON). `report` prints the table and writes
the dated section of bench/RESULTS.md.

    bench.py rss | deploy | scale | logs     measure (needs the BENCH_* environment of run.sh)
                                             (router, idle and dns are in bench_net.py)
    bench.py final                           note the server's memory and CPU at the end
    bench.py fail WHAT                       note a figure that could not be measured
    bench.py report RESULTS.md               print the table, rewrite/append the dated section

Nothing here asserts a time: a figure that misses its target is reported, not failed. A
subcommand exits 1 (with one clear line on stderr) when it could not measure (e.g. a deploy
failed), and 3 when it measured but berth misbehaved (log lines lost or out of order: the row
says so too). Standard library only."""

import datetime
import json
import math
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

CLI_TIMEOUT = 120  # seconds for one berth CLI call
LOG_DEADLINE = 300  # seconds for the log files to fill up
LOG_STALL = 10  # seconds without any log growth before giving up

TINY_APP = r'''"""A tiny HTTP server: 200 to every request (the deploy benchmark's app)."""
import os
import socket

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"])))
s.listen(128)
while True:
    c, _ = s.accept()
    try:
        c.recv(4096)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
    except OSError:
        pass
    c.close()
'''

TCP_APP = r'''"""A tiny TCP listener that accepts and closes (the scale benchmark's app)."""
import os
import socket

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"])))
s.listen(128)
while True:
    c, _ = s.accept()
    c.close()
'''


# the settings of each benchmark and their defaults (README.md)
PARAMS = {"rss": {"RSS_N": 100}, "deploy": {"DEPLOYS": 20}, "scale": {"SCALE_N": 50, "SCALE_ROUNDS": 3},
          "logs": {"LOG_LINES": 2000000, "LOG_ROUNDS": 3}}


class BenchError(Exception):
    """The figure could not be measured (exit status 1)."""


class BenchProblem(Exception):
    """Measured, and berth did something wrong, e.g. lost log lines (exit status 3)."""


def env(name):
    v = os.environ.get(name)
    if not v:
        raise BenchError(f"{name} is not set (run bench/run.sh, not bench.py alone)")
    return v


def env_int(name, default):
    v = os.environ.get(name, "")
    if not v:
        return default
    if not v.isdigit() or int(v) <= 0:
        raise BenchError(f"{name}={v!r}: expected a positive integer")
    return int(v)


# ---- the run's results file ----

def results_load():
    path = env("BENCH_RESULTS")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"rows": [], "notes": [], "raw": {}}


def results_save(res):
    path = env("BENCH_RESULTS")
    with open(path + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
    os.replace(path + ".tmp", path)


def add_row(res, group, figure, berth, peer, reference, target, met):
    res["rows"].append({"group": group, "figure": figure, "berth": berth, "peer": peer,
                        "reference": reference, "target": target, "met": met})


# ---- statistics and formatting ----

def median(xs):
    return statistics.median(xs)


def p90(xs):
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def fmt_ms(x):
    return f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def fmt_s_or_ms(ms):
    return fmt_ms(ms) if ms < 1000 else f"{ms / 1000:.2f} s"


def fmt_mib(kib):
    return f"{kib / 1024:.1f} MiB"


def fmt_rate(r):
    return f"{r / 1e6:.2f} M lines/s" if r >= 1e6 else f"{r / 1e3:.0f} k lines/s"


# ---- the berth CLI ----

def berth(*args, timeout=CLI_TIMEOUT):
    """Runs the berth CLI; returns (epoch start, wall seconds, stdout). Raises on failure."""
    cmd = [env("BERTH_BIN"), *args]
    t0 = time.time()
    p0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"berth {' '.join(args)}: no answer within {timeout} s")
    wall = time.perf_counter() - p0
    if p.returncode != 0:
        raise BenchError(f"berth {' '.join(args)}: exit status {p.returncode}: "
                         f"{(p.stderr or p.stdout).strip()[-1500:]}")
    return t0, wall, p.stdout


def events(out):
    """The NDJSON progress events of a change verb run with --json; checks the final one."""
    evs = []
    for line in out.splitlines():
        line = line.strip()
        if line:
            try:
                evs.append(json.loads(line))
            except ValueError:
                raise BenchError(f"not a JSON progress event: {line[:200]!r}")
    if not evs or evs[-1].get("event") != "done" or not evs[-1].get("ok"):
        raise BenchError(f"the change did not end with a successful done event: {out.strip()[-800:]}")
    return evs


def ts_epoch(ts):
    dt = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def ev_ts(evs, kind, first=True):
    xs = [ts_epoch(e["ts"]) for e in evs if e.get("event") == kind and e.get("ts")]
    if not xs:
        raise BenchError(f"no timed {kind!r} event in the progress stream")
    return xs[0] if first else xs[-1]


def ms_in(msg, what):
    m = re.search(r"(\d+) ms", msg or "")
    if not m:
        raise BenchError(f"no duration in the {what} message {msg!r}")
    return int(m.group(1))


def write_app(name, files):
    d = os.path.join(env("BENCH_TMP"), "apps", name)
    os.makedirs(d, exist_ok=True)
    for fn, text in files.items():
        with open(os.path.join(d, fn), "w") as f:
            f.write(text)
    return d


def manifest(proc, command, extra):
    return f"processes:\n  {proc}:\n    command: {json.dumps(command)}\n" + "".join(
        f"    {line}\n" for line in extra)


# ---- the server process ----

def server_pid():
    return int(env("BENCH_SERVER_PID"))


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {key} in /proc/{pid}/status")


def proc_pss_kib(pid):
    """Proportional set size: shared pages divided among the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_stats():
    """(pid, fields of /proc/PID/stat after the command name) for every live process; fields[0]
    is the state, [1] the parent, [2] the process group."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                yield int(d), f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue


def children_of(pid):
    kids = []
    for child, rest in proc_stats():
        if int(rest[1]) != pid:
            continue
        try:
            with open(f"/proc/{child}/comm") as f:
                kids.append((child, f.read().strip()))
        except OSError:
            continue
    return kids


def procs_with_env(key, value):
    """pids whose environment has key=value (instances: BERTH_APP=..., peers: BERTH_BENCH=...)."""
    want = f"{key}={value}".encode()
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if want in f.read().split(b"\0"):
                    found.append(int(d))
        except OSError:
            continue
    return found


# ---- peers: the same processes started without berth ----

PEERS = []


def peer_spawn(argv, port=None, cwd=None, stdout=subprocess.DEVNULL, stdin=None, stderr=subprocess.DEVNULL):
    """Starts a peer in its own session (its process group is killed at the end). The group
    is also noted in BENCH_TMP/peer-groups for run.sh's cleanup: nginx overwrites its
    environment with its process title, so the BERTH_BENCH tag cannot find it."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "BERTH_BENCH": env("BENCH_TAG")}
    if port:
        e["PORT"] = str(port)
    p = subprocess.Popen(argv, cwd=cwd, env=e, stdin=stdin, stdout=stdout,
                         stderr=stderr, start_new_session=True)
    PEERS.append(p)
    note_group(p.pid)
    return p


def note_group(pgid):
    with open(os.path.join(env("BENCH_TMP"), "peer-groups"), "a") as f:
        f.write(f"{pgid}\n")


def peer_stop_all():
    for p in PEERS:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
    for p in PEERS:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    PEERS.clear()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
            c.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            return c.recv(64).startswith((b"HTTP/1.0 2", b"HTTP/1.1 2", b"HTTP/1.0 3", b"HTTP/1.1 3"))
    except OSError:
        return False


def tcp_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def peer_start_ms(argv, cwd, deadline_s=20):
    """Spawns one app directly and polls HTTP every 1 ms: ms from spawn to the first 2xx."""
    port = free_port()
    t0 = time.perf_counter()
    p = peer_spawn(argv, port=port, cwd=cwd)
    while not http_ok(port):
        if p.poll() is not None:
            raise BenchError(f"peer {' '.join(argv)} exited with status {p.returncode}")
        if time.perf_counter() - t0 > deadline_s:
            raise BenchError(f"peer {' '.join(argv)} did not answer within {deadline_s} s")
        time.sleep(0.001)
    ms = (time.perf_counter() - t0) * 1000
    peer_stop_all()
    return ms


# ---- rss: server memory with RSS_N sleeping workers ----

def cmd_rss(res):
    n = env_int("RSS_N", 100)
    pid = server_pid()
    idle_rss = proc_status_kib(pid, "VmRSS")
    idle_hwm = proc_status_kib(pid, "VmHWM")
    d = write_app("rss", {"berth.yaml": manifest("worker", "exec sleep 1000000",
                                                  ["instances: 0", "health: none", "stop_grace: 2s"])})
    berth("deploy", d, "--app", "rss", "--json")
    _, wall, out = berth("scale", f"worker={n}", "--app", "rss", "--json")
    events(out)
    time.sleep(1.0)  # let any allocation settle (timers, buffers)
    rss = proc_status_kib(pid, "VmRSS")
    hwm = proc_status_kib(pid, "VmHWM")
    anon = proc_status_kib(pid, "RssAnon")
    rfile = proc_status_kib(pid, "RssFile")
    pss = proc_pss_kib(pid)
    kids = children_of(pid)
    running = len([k for k in kids if k[1] == "sleep"])
    if running != n:
        raise BenchError(f"expected {n} sleep instances as children of the server, found {running} "
                         f"(children: {sorted(set(k[1] for k in kids))})")
    _, ps_wall, ps_out = berth("ps", "--app", "rss", "--json")
    listed = sum(1 for i in json.loads(ps_out)["instances"] if i.get("state") == "running")
    if listed != n:
        raise BenchError(f"`berth ps` lists {listed} running instances, expected {n}")
    rss_ps = proc_status_kib(pid, "VmRSS")
    _, down_wall, out = berth("scale", "worker=0", "--app", "rss", "--json")
    events(out)
    rss_after = proc_status_kib(pid, "VmRSS")
    per = (rss - idle_rss) / n
    others = len([k for k in kids if k[1] != "sleep"])
    res["raw"]["rss"] = {"n": n, "idle_rss_kib": idle_rss, "idle_hwm_kib": idle_hwm, "rss_kib": rss,
                         "hwm_kib": hwm, "rss_after_ps_kib": rss_ps, "rss_after_scale_down_kib": rss_after,
                         "scale_up_s": wall, "ps_s": ps_wall, "scale_down_s": down_wall,
                         "helper_processes": others, "rss_anon_kib": anon, "rss_file_kib": rfile,
                         "pss_kib": pss}
    ref = "Nomad 15–20 MB/task, containerd 5–10 MB/shim (published)"
    add_row(res, "memory", f"server VmRSS, {n} workers running", fmt_mib(rss), "—", ref,
            "< 20 MiB", rss < 20 * 1024)
    add_row(res, "memory", f"server VmHWM (peak), {n} workers", fmt_mib(hwm), "—", "as above",
            "< 20 MiB", hwm < 20 * 1024)
    add_row(res, "memory", "server VmRSS idle (fresh, no app)", fmt_mib(idle_rss), "—", "—", "—", None)
    add_row(res, "memory", "server memory per instance (RSS − idle) / n", f"{per:.0f} KiB",
            "—", "Nomad 15–20 MB/task (published)", "—", None)
    res["notes"].append(
        f"memory: with {n} instances VmRSS is {fmt_mib(anon)} anonymous (heap, stacks) + {fmt_mib(rfile)} "
        f"file-backed (the binary and its shared libraries, shared with every other process using them)"
        + (f"; PSS {fmt_mib(pss)}." if pss is not None else "."))
    res["notes"].append(
        f"memory: the {n} instances are direct children of the server (no per-instance helper process: "
        f"{others} other children); `berth ps --json` of {n} instances took {ps_wall * 1000:.0f} ms "
        f"and left VmRSS at {fmt_mib(rss_ps)}; after `scale worker=0` VmRSS is {fmt_mib(rss_after)}.")


# ---- deploy: deploy -> all healthy ----

def deploy_series(res, app, files, command, label, count):
    d = write_app(app, files)
    berth("deploy", d, "--app", app, "--json")  # v1: warm-up, not counted
    walls, rollouts, healthy, pre, post = [], [], [], [], []
    for k in range(count):
        with open(os.path.join(d, "release.txt"), "w") as f:
            f.write(f"{k}\n")  # new code: every deploy is a new release of the same app
        t0, wall, out = berth("deploy", d, "--app", app, "--json")
        evs = events(out)
        done = evs[-1]
        walls.append(wall * 1000)
        rollouts.append(ms_in(done.get("message"), "done"))
        hs = [e for e in evs if e.get("event") == "healthy"]
        if len(hs) != 1:
            raise BenchError(f"expected one healthy event per deploy, got {len(hs)}")
        healthy.append(ms_in(hs[0].get("message"), "healthy"))
        pre.append((ev_ts(evs, "start") - t0) * 1000)
        post.append((t0 + wall - ev_ts(evs, "healthy")) * 1000)
    berth("stop", "--app", app, "--json")
    # the peer: the same command started as berth starts it (sh -c)
    peers = [peer_start_ms(["/bin/sh", "-c", command], d) for _ in range(count)]
    res["raw"][f"deploy-{app}"] = {"cli_ms": walls, "rollout_ms": rollouts, "healthy_after_ms": healthy,
                                   "cli_start_to_spawn_ms": pre, "healthy_to_cli_exit_ms": post,
                                   "peer_start_ms": peers}
    ref = "k8s p99 ≤ 5 s; kamal-proxy polls 1 s; Dokku waits 10 s (published)"
    peer = f"app alone: {fmt_ms(median(peers))} / {fmt_ms(p90(peers))}"
    add_row(res, "deploy", f"deploy → healthy, {label}: CLI wall, median / p90",
            f"{fmt_ms(median(walls))} / {fmt_ms(p90(walls))}", peer, ref, "< 300 ms", p90(walls) < 300)
    add_row(res, "deploy", f"deploy → healthy, {label}: server rollout, median / p90",
            f"{fmt_ms(median(rollouts))} / {fmt_ms(p90(rollouts))}", peer, ref, "< 300 ms",
            p90(rollouts) < 300)
    res["notes"].append(
        f"deploy ({label}, {count} deploys, medians): CLI start → new instance spawned "
        f"{median(pre):.0f} ms (pack, upload, unpack, release commit); spawned → healthy "
        f"{median(healthy):.0f} ms (the app alone, started with `sh -c` as berth starts it, needs "
        f"{median(peers):.0f} ms to answer); "
        f"healthy → CLI exit {median(post):.0f} ms (stop old instance, record outcome, stream end).")


def cmd_deploy(res):
    count = env_int("DEPLOYS", 20)
    py = env("BENCH_PYTHON")
    extra = ["health:", "  http: /", "  deadline: 20s", "stop_grace: 2s"]
    tiny = f"exec {py} app.py"
    deploy_series(res, "tiny", {"app.py": TINY_APP, "berth.yaml": manifest("web", tiny, extra)},
                  tiny, "tiny app", count)
    hs = f"exec {py} -m http.server $PORT --bind 127.0.0.1"
    deploy_series(res, "httpserver", {"berth.yaml": manifest("web", hs, extra)}, hs, "http.server", count)


# ---- scale: 0 -> N -> 0 ----

def peer_scale(command, d, n):
    """n listeners started directly as berth starts them (sh -c), polled (TCP connect, every
    1 ms) until all accept; then SIGTERM to all, waited for. Returns (up ms, down ms)."""
    ports = [free_port() for _ in range(n)]
    argv = ["/bin/sh", "-c", command]
    t0 = time.perf_counter()
    procs = [peer_spawn(argv, port=p, cwd=d) for p in ports]
    waiting = set(ports)
    while waiting:
        for p in list(waiting):
            if tcp_ok(p):
                waiting.discard(p)
        if time.perf_counter() - t0 > 30:
            raise BenchError(f"peer: {len(waiting)} of {n} listeners not up after 30 s")
        if waiting:
            time.sleep(0.001)
    up = (time.perf_counter() - t0) * 1000
    t1 = time.perf_counter()
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)
    down = (time.perf_counter() - t1) * 1000
    PEERS.clear()
    return up, down


def pids_alive(pids):
    alive = []
    for p in pids:
        try:
            os.kill(p, 0)
            alive.append(p)
        except ProcessLookupError:
            pass
        except PermissionError:
            alive.append(p)
    return alive


def cmd_scale(res):
    n = env_int("SCALE_N", 50)
    rounds = env_int("SCALE_ROUNDS", 3)
    command = f"exec {env('BENCH_PYTHON')} tcp.py"
    d = write_app("scale", {"tcp.py": TCP_APP, "berth.yaml": manifest(
        "web", command, ["instances: 0", "health:", "  tcp: true", "  deadline: 30s",
                                     "stop_grace: 5s"])})
    berth("deploy", d, "--app", "scale", "--json")
    ups, downs, gones, spawn_phase, last_to_done, peers_up, peers_down = [], [], [], [], [], [], []
    early = []
    for _ in range(rounds):
        _, wall, out = berth("scale", f"web={n}", "--app", "scale", "--json")
        evs = events(out)
        ups.append(wall * 1000)
        if evs[-1].get("ts"):
            spawn_phase.append((ev_ts(evs, "start", first=False) - ev_ts(evs, "start")) * 1000)
            last_to_done.append((ts_epoch(evs[-1]["ts"]) - ev_ts(evs, "start", first=False)) * 1000)
        healthy = sum(1 for e in evs if e.get("event") == "healthy")
        _, _, ps = berth("ps", "--app", "scale", "--json")
        pids = [i["pid"] for i in json.loads(ps)["instances"] if i.get("state") == "running" and i.get("pid")]
        if len(pids) != n or healthy != n:
            raise BenchError(f"after scale web={n}: {len(pids)} running instances, {healthy} healthy events")
        t0 = time.perf_counter()
        _, wall, out = berth("scale", "web=0", "--app", "scale", "--json")
        events(out)
        downs.append(wall * 1000)
        early.append(len(pids_alive(pids)))
        while pids_alive(pids):
            if time.perf_counter() - t0 > 30:
                raise BenchError(f"after scale web=0: {len(pids_alive(pids))} instances still running after 30 s")
            time.sleep(0.001)
        gones.append((time.perf_counter() - t0) * 1000)
        pu, pd = peer_scale(command, d, n)
        peers_up.append(pu)
        peers_down.append(pd)
    res["raw"]["scale"] = {"n": n, "up_ms": ups, "down_ms": downs, "down_all_gone_ms": gones,
                           "alive_when_down_returned": early, "spawn_phase_ms": spawn_phase,
                           "last_spawn_to_done_ms": last_to_done, "peer_up_ms": peers_up,
                           "peer_down_ms": peers_down}
    add_row(res, "scale", f"scale 0 → {n}, CLI wall, median of {rounds}",
            fmt_s_or_ms(median(ups)), f"started directly: {fmt_s_or_ms(median(peers_up))}",
            "k8s p99 ≤ 5 s per pod (published)", "< 3 s", median(ups) < 3000)
    add_row(res, "scale", f"scale {n} → 0, CLI wall / all exited, median of {rounds}",
            f"{fmt_s_or_ms(median(downs))} / {fmt_s_or_ms(median(gones))}",
            f"SIGTERM + wait: {fmt_s_or_ms(median(peers_down))}", "—", "—", None)
    if spawn_phase:
        res["notes"].append(
            f"scale 0 → {n} (medians): the server spawned the {n} instances over {median(spawn_phase):.0f} ms "
            f"(first → last start event, {median(spawn_phase) / max(n - 1, 1):.1f} ms each, one at a time on "
            f"its loop), then {median(last_to_done):.0f} ms until the last was healthy. The same {n} "
            f"started directly (`sh -c`, as berth starts them) take {median(peers_up):.0f} ms.")
    if any(early):
        res["notes"].append(
            f"scale {n} → 0: the command returned while {median(early):.0f} of the {n} processes were still "
            f"running (median); all had exited {median(gones) - median(downs):.0f} ms later.")


# ---- logs: ingest rate of one chatty instance ----

def log_files(d, prefix):
    """The slot's files, oldest first: prefix.log.K ... prefix.log.1, prefix.log."""
    rotated = []
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    for fn in names:
        m = re.fullmatch(re.escape(prefix) + r"\.log\.(\d+)", fn)
        if m:
            rotated.append((int(m.group(1)), fn))
    files = [os.path.join(d, fn) for _, fn in sorted(rotated, reverse=True)]
    if prefix + ".log" in names:
        files.append(os.path.join(d, prefix + ".log"))
    return files


def total_size(files):
    t = 0
    for f in files:
        try:
            t += os.stat(f).st_size
        except FileNotFoundError:
            pass
    return t


def wait_for_size(files_fn, want_fn, deadline_s, what):
    """Polls every 2 ms until the files hold want_fn() bytes; returns the epoch time it saw that.
    want_fn may return None while it cannot know yet (no first line)."""
    t_begin = time.time()
    last, last_change = -1, time.time()
    while True:
        size = total_size(files_fn())
        now = time.time()
        want = want_fn()
        if want is not None and size >= want:
            return now
        if size != last:
            last, last_change = size, now
        if now - last_change > LOG_STALL or now - t_begin > deadline_s:
            raise BenchError(f"{what}: the log stopped at {size} bytes"
                             + (f" of {want}" if want else "") + f" after {now - t_begin:.1f} s")
        time.sleep(0.002)


def verify_berth_log(files, n, release):
    """Every line is `<ts> v<release> out <seq> ...` with seq 1..n in order; returns (count, error)."""
    want = 1
    bad = None
    count = 0
    tag = f"v{release}".encode()
    for path in files:
        with open(path, "rb") as f:
            for line in f:
                count += 1
                parts = line.split(b" ", 4)
                if bad is None:
                    ok = len(parts) >= 4 and parts[1] == tag and parts[2] == b"out" and parts[3].isdigit()
                    if not ok:
                        bad = f"line {count}: unexpected {line[:120]!r}"
                    elif int(parts[3]) != want:
                        bad = f"line {count}: sequence {int(parts[3])}, expected {want}"
                want += 1
    if bad is None and count != n:
        bad = f"{count} lines, expected {n}"
    return count, bad


def berth_log_round(k, n, loggen):
    app = f"logs-{k}"
    d = write_app(app, {"berth.yaml": manifest("gen", f"exec {loggen} {n} sleep",
                                               ["instances: 0", "stop_grace: 1s"])})
    berth("deploy", d, "--app", app, "--json")
    logdir = os.path.join(env("BENCH_DATA"), "logs", "production", app)
    pid = server_pid()
    cpu0 = proc_cpu_s(pid)
    cmd = [env("BERTH_BIN"), "scale", "gen=1", "--app", app, "--json"]
    cli = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        files_fn = lambda: log_files(logdir, "gen.1")  # noqa: E731
        line_len = {}

        def want():
            if "n" not in line_len:
                fs = files_fn()
                if not fs:
                    return None
                with open(fs[0], "rb") as f:
                    first = f.readline()
                if not first.endswith(b"\n"):
                    return None
                line_len["n"] = len(first)
            return line_len["n"] * n

        t_end = wait_for_size(files_fn, want, LOG_DEADLINE, f"berth logs round {k}")
        out, err = cli.communicate(timeout=CLI_TIMEOUT)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    if cli.returncode != 0:
        raise BenchError(f"berth scale gen=1: exit status {cli.returncode}: {err.strip()[-800:]}")
    evs = events(out)
    t_start = ev_ts(evs, "start")
    cpu = proc_cpu_s(pid) - cpu0
    files = log_files(logdir, "gen.1")
    count, bad = verify_berth_log(files, n, evs[-1].get("release", 1))
    rss = proc_status_kib(pid, "VmRSS")
    berth("scale", "gen=0", "--app", app, "--json")
    for f in log_files(logdir, "gen.1"):
        os.unlink(f)
    return {"seconds": t_end - t_start, "rate": n / (t_end - t_start), "server_cpu_s": cpu,
            "count": count, "error": bad, "files": len(files), "rss_kib": rss}


def peer_log_round(n, loggen):
    out_path = os.path.join(env("BENCH_TMP"), "peer-log.out")
    with open(out_path, "wb") as out:
        t0 = time.time()
        gen = peer_spawn([loggen, str(n), "sleep"], stdout=subprocess.PIPE)
        cat = peer_spawn(["cat"], stdin=gen.stdout, stdout=out)
        gen.stdout.close()
    try:
        t_end = wait_for_size(lambda: [out_path], lambda: 51 * n, LOG_DEADLINE, "peer (pipe to cat)")
    finally:
        peer_stop_all()
    with open(out_path, "rb") as f:
        count = sum(1 for _ in f)
    os.unlink(out_path)
    if count != n:
        raise BenchError(f"peer (pipe to cat): {count} lines, expected {n}")
    return {"seconds": t_end - t0, "rate": n / (t_end - t0)}


def cmd_logs(res):
    n = env_int("LOG_LINES", 2000000)
    rounds = env_int("LOG_ROUNDS", 3)
    loggen = env("BENCH_LOGGEN")
    ours, peers = [], []
    for k in range(1, rounds + 1):
        ours.append(berth_log_round(k, n, loggen))
        peers.append(peer_log_round(n, loggen))
    res["raw"]["logs"] = {"n": n, "berth": ours, "peer": peers}
    lost = [r for r in ours if r["error"]]
    rate = median([r["rate"] for r in ours])
    prate = median([r["rate"] for r in peers])
    cpu = median([r["server_cpu_s"] for r in ours])
    verdict = "all lines, in order" if not lost else f"LOST/BAD in {len(lost)} of {rounds} rounds: {lost[0]['error']}"
    add_row(res, "logs", f"log ingest, {n:,} lines of 51 B, median of {rounds}",
            f"{fmt_rate(rate)} ({verdict})", f"pipe to cat: {fmt_rate(prate)}",
            "Fluent Bit ~1 M lines/s (published)", "> 500 k/s, no loss",
            rate > 500000 and not lost)
    add_row(res, "logs", "server CPU per million log lines", f"{cpu / n * 1e6:.2f} s", "—", "—", "—", None)
    res["notes"].append(
        f"logs: {n:,} lines in {median([r['seconds'] for r in ours]):.2f} s with berth "
        f"({median([r['files'] for r in ours]):.0f} files after rotation) vs "
        f"{median([r['seconds'] for r in peers]):.3f} s through a bare pipe; the server used "
        f"{cpu:.2f} s of CPU per round; VmRSS after a round {fmt_mib(ours[-1]['rss_kib'])}.")
    if lost:
        raise BenchProblem(f"log lines lost or out of order: {lost[0]['error']}")


# ---- report ----

def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1])
    debian = ""
    try:
        with open("/etc/debian_version") as f:
            debian = "Debian " + f.read().strip()
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram": f"{mem / 1024 / 1024:.1f} GiB",
            "kernel": platform.release(), "os": debian, "revision": os.environ.get("BENCH_REVISION", "unknown"),
            "python": os.environ.get("BENCH_PYTHON_VERSION", ""), "cgroups": os.environ.get("BENCH_CGROUPS", ""),
            "load": f"{os.environ.get('BENCH_LOAD_START', '?')} at start, {load1()} at end"}


def load1():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def table(rows, md):
    head = ["figure", "berth", "peer (same run)", "published reference", "target", "met"]
    cells = [[r["figure"], r["berth"], r["peer"], r["reference"], r["target"],
              "—" if r["met"] is None else ("yes" if r["met"] else "NO")] for r in rows]
    if md:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(out)
    widths = [max(len(x) for x in col) for col in zip(head, *cells)]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells])


def cmd_report(res, path):
    m = machine()
    date = datetime.date.today().isoformat()
    title = (f"{date} — {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, Linux {m['kernel']}"
             f"{', ' + m['os'] if m['os'] else ''}, berth {m['revision']}")
    benches = " ".join(res.get("benchmarks", []))
    if benches != "rss deploy scale logs router idle dns":
        title += f" ({benches or 'nothing measured'})"
    failed = res.get("failed", [])
    print()
    print(title)
    print(f"load average (1 min): {m['load']}")
    print(table(res["rows"], md=False))
    for n in res["notes"]:
        print("  * " + n)
    for f in failed:
        print("  ! " + f)
    # one section per day, machine, berth revision and set of benchmarks: a rerun rewrites it
    key = f"{date} {m['cpu']} {m['cores']} {m['ram']} {m['kernel']} {m['revision']} [{benches}]"
    p = res.get("params", {})
    tools = res.get("versions", {})
    body = [f"<!-- bench-run: {key} -->", f"## {title}", "",
            f"Benchmarks: {benches or 'none'}. Apps run with {m['python']}; cgroups: {m['cgroups'] or 'unknown'}; "
            f"load average (1 min): {m['load']}; parameters: "
            + ", ".join(f"{k}={v}" for k, v in sorted(p.items())) + "."
            + ("" if not tools else " Peers and tools: " + ", ".join(f"{k} {v}" for k, v in sorted(tools.items())) + "."),
            "", table(res["rows"], md=True), ""]
    body += [f"- {n}" for n in res["notes"]]
    body += [f"- **not measured**: {f}" for f in failed]
    body += ["<!-- /bench-run -->"]
    section = "\n".join(body) + "\n"
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    else:
        text = ("# berth benchmark results\n\nWritten by `bench/run.sh` (see README.md for what each "
                "figure means): one section\nper date, machine, berth revision and set of benchmarks; "
                "a rerun of the same rewrites its section.\n\n")
    pat = re.compile(r"<!-- bench-run: " + re.escape(key) + r" -->.*?<!-- /bench-run -->\n?", re.S)
    if pat.search(text):
        text = pat.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print(f"\nwrote the {date} section of {path}")


def cmd_final(res):
    pid = server_pid()
    res["notes"].append(f"server at the end of the run: VmRSS {fmt_mib(proc_status_kib(pid, 'VmRSS'))}, "
                        f"VmHWM {fmt_mib(proc_status_kib(pid, 'VmHWM'))} (peak over every benchmark), "
                        f"CPU {proc_cpu_s(pid):.1f} s.")


def measure(what, func, params):
    """Runs one measuring subcommand against the run's results file: records its settings
    (params: name -> default) and its name, saves whatever it added even when it fails, and
    stops its peers. Returns the exit status (0, 1 not measured, 3 berth misbehaved)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        res = results_load()
        p = res.setdefault("params", {})
        for k, default in params.items():
            p[k] = env_int(k, default)
        if what != "final" and what not in res.setdefault("benchmarks", []):
            res["benchmarks"].append(what)
        try:
            func(res)
        finally:
            results_save(res)
    except BenchError as e:
        print(f"bench {what}: {e}", file=sys.stderr)
        return 1
    except BenchProblem as e:
        print(f"bench {what}: PROBLEM: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"bench {what}: interrupted", file=sys.stderr)
        return 130
    finally:
        peer_stop_all()
    return 0


def main():
    cmds = {"rss": cmd_rss, "deploy": cmd_deploy, "scale": cmd_scale, "logs": cmd_logs, "final": cmd_final}
    if len(sys.argv) < 2 or sys.argv[1] not in (*cmds, "report", "fail"):
        print("usage: bench.py rss|deploy|scale|logs|final | report RESULTS.md | fail WHAT", file=sys.stderr)
        return 2
    what = sys.argv[1]
    try:
        if what == "report":
            cmd_report(results_load(), sys.argv[2])
            return 0
        if what == "fail":
            res = results_load()
            res.setdefault("failed", []).append(" ".join(sys.argv[2:]))
            results_save(res)
            return 0
    except BenchError as e:
        print(f"bench {what}: {e}", file=sys.stderr)
        return 1
    return measure(what, cmds[what], PARAMS.get(what, {}))


if __name__ == "__main__":
    sys.exit(main())
