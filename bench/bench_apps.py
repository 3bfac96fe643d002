#!/usr/bin/env python3
"""bench_apps.py: the app-feature benchmarks of bench/run.sh, measured through the real CLI
against the server run.sh started, each next to its peer in the same run (bench/README.md says
what each figure means):

    bench_apps.py build   redeploy of a Node app whose lockfile did not change (the build stage
                          finds its dependencies cached) vs the same code with no package.json
                          (no builder runs); and the first, cold deploy with `npm ci`, once
    bench_apps.py run     `berth run -- true` round trip and the time to the first byte of
                          `berth run -- echo hi`, vs the same commands started directly

It uses bench.py's results file, helpers and report. `build` needs node and npm on the
server's PATH and the npm registry (or the mirror npm is configured for) for the cold install;
`run` needs nothing more than run.sh does. Exit status as bench.py's. Standard library only
(hyperfine, when installed, adds a cross-check of the run round trip)."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/ from importing bench.py
import bench as B  # noqa: E402

PARAMS = {"build": {"BUILD_DEPLOYS": 20}, "run": {"RUN_N": 50, "RUN_PAUSE_MS": 100}}
NODE_APP = "nodedeps"     # package.json + package-lock.json: the node builder runs
PLAIN_APP = "nodeplain"   # the same code and berth.yaml, no package.json: no builder
RUN_APP = "runapp"        # the live release `berth run` starts its one-offs in
RUN_WARMUP = 3

# One tiny dependency (no dependencies of its own). The lockfile is what `npm install
# --package-lock-only` wrote for it with npm 11; `npm ci` installs exactly this.
PACKAGE_JSON = """{
  "name": "bench-node",
  "version": "1.0.0",
  "private": true,
  "dependencies": {
    "is-number": "7.0.0"
  }
}
"""
PACKAGE_LOCK = """{
  "name": "bench-node",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {
      "name": "bench-node",
      "version": "1.0.0",
      "dependencies": {
        "is-number": "7.0.0"
      }
    },
    "node_modules/is-number": {
      "version": "7.0.0",
      "integrity": "sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==",
      "license": "MIT",
      "engines": {
        "node": ">=0.12.0"
      }
    }
  }
}
"""
# The same code in both apps; it says whether the dependency is installed, so that the run
# can check through the router that the node app really got it and the plain one did not.
NODE_JS = r"""// The build benchmark's app: 200 to every request, naming whether is-number is installed.
const http = require('http');
let dep = 'no';
try { if (require('is-number')(7)) dep = 'yes'; } catch (e) {}
http.createServer((req, res) => { res.end('is-number: ' + dep + '\n'); })
  .listen(+process.env.PORT, '127.0.0.1');
"""


# ---- helpers ----

def stats_text(xs):
    """'median / p90 (min–max)' in ms."""
    return (f"{B.fmt_ms(B.median(xs))} / {B.fmt_ms(B.p90(xs))} "
            f"({B.fmt_ms(min(xs))}–{B.fmt_ms(max(xs))})")


def spread(xs):
    return f"{B.fmt_ms(B.median(xs))} (p90 {B.fmt_ms(B.p90(xs))})"


def version(argv, pattern=r"(\d+\.\d+\.\d+)"):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(pattern, p.stdout + p.stderr)
    return m.group(1) if m else "?"


def need(name):
    path = shutil.which(name)
    if not path:
        raise B.BenchError(f"{name} not found on PATH (the node builder runs npm; apt-get install nodejs npm)")
    return path


def router_get(app):
    """Body of GET / on the app's default host through berth's router ('' on failure)."""
    port = int(B.env("BENCH_ROUTER_PORT"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(f"GET / HTTP/1.0\r\nHost: {app}.localhost\r\n\r\n".encode())
            data = b""
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return ""
    head, _, body = data.partition(b"\r\n\r\n")
    return body.decode(errors="replace") if head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200") else ""


def passed_env(extra):
    """What the server passes to a build (docs/builds.md), for a peer that does a build's work."""
    keep = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "http_proxy", "https_proxy", "no_proxy",
            "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    e = {k: v for k, v in os.environ.items()
         if k in keep or k.startswith(("npm_config_", "NPM_CONFIG_"))}
    e["BERTH_BENCH"] = B.env("BENCH_TAG")
    e.update(extra)
    return e


# ---- build: Node redeploy with an unchanged lockfile vs no builder ----

def deploy_timed(d, app):
    """One `berth deploy`; returns a dict of its figures (ms) from the CLI clock and the
    server's progress events (same machine, same clock)."""
    t0, wall, out = B.berth("deploy", d, "--app", app, "--json")
    evs = B.events(out)
    r = {"cli_ms": wall * 1000, "rollout_ms": B.ms_in(evs[-1].get("message"), "done"),
         "to_upload_ms": (B.ev_ts(evs, "upload") - t0) * 1000,
         "upload_to_release_ms": (B.ev_ts(evs, "release") - B.ev_ts(evs, "upload")) * 1000,
         "release_to_healthy_ms": (B.ev_ts(evs, "healthy") - B.ev_ts(evs, "release")) * 1000,
         "healthy_to_exit_ms": (t0 + wall - B.ev_ts(evs, "healthy")) * 1000}
    builds = [e for e in evs if e.get("event") == "build"]
    if builds:
        r["built_ms"] = B.ms_in(builds[-1].get("message"), "build")
        r["build_started"] = builds[0].get("message", "")
        outs = [e for e in evs if e.get("event") == "output" and e.get("process") == "build" and e.get("ts")]
        if outs:  # the build script's first line: the one-off is running
            r["build_to_first_line_ms"] = (B.ts_epoch(outs[0]["ts"]) - B.ts_epoch(builds[0]["ts"])) * 1000
        m = re.search(r"added \d+ packages? in (\d+(?:\.\d+)?)(m?s)", out)
        if m:
            r["npm_said_ms"] = float(m.group(1)) * (1 if m.group(2) == "ms" else 1000)
    return r


def peer_npm_ci(npm, cache):
    """`npm ci` alone in a fresh directory with a fresh npm cache: the floor of the cold build."""
    d = tempfile.mkdtemp(dir=B.env("BENCH_TMP"), prefix="npm-peer.")
    for fn, text in (("package.json", PACKAGE_JSON), ("package-lock.json", PACKAGE_LOCK)):
        with open(os.path.join(d, fn), "w") as f:
            f.write(text)
    t0 = time.perf_counter()
    p = subprocess.Popen([npm, "ci", "--no-audit", "--no-fund"], cwd=d, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                         env=passed_env({"npm_config_cache": cache}))
    B.note_group(p.pid)
    try:
        out, _ = p.communicate(timeout=B.CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.wait()
        raise B.BenchError(f"npm ci (the peer) did not finish within {B.CLI_TIMEOUT} s")
    ms = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        raise B.BenchError(f"npm ci (the peer) failed with status {p.returncode}: {out.decode(errors='replace')[-800:]}")
    return ms


def cmd_build(res):
    count = B.env_int("BUILD_DEPLOYS", 20)
    need("node")
    npm = need("npm")
    res.setdefault("versions", {}).update({"node": version(["node", "--version"]), "npm": version([npm, "--version"])})
    tmp = B.env("BENCH_TMP")
    # A fresh npm cache, given to the build through the app's config, makes the first deploy
    # really cold: npm downloads the package instead of copying it from ~/.npm.
    yaml = (f"config:\n  npm_config_cache: {json.dumps(os.path.join(tmp, 'npm-cache-berth'))}\n"
            + B.manifest("web", "exec node app.js",
                         ["health:", "  http: /", "  deadline: 20s", "stop_grace: 2s"]))
    dn = B.write_app(NODE_APP, {"app.js": NODE_JS, "berth.yaml": yaml, "package.json": PACKAGE_JSON,
                                "package-lock.json": PACKAGE_LOCK})
    dp = B.write_app(PLAIN_APP, {"app.js": NODE_JS, "berth.yaml": yaml})

    cold = deploy_timed(dn, NODE_APP)          # v1: npm ci into an empty dependency cache
    if "built_ms" not in cold:
        raise B.BenchError(f"the first deploy of {NODE_APP} ran no build (is package.json detected?)")
    plain1 = deploy_timed(dp, PLAIN_APP)       # v1 of the plain app: the same cold start, no build
    if "built_ms" in plain1:
        raise B.BenchError(f"{PLAIN_APP} has no package.json, yet a build ran: {plain1['build_started']}")
    peer_cold = peer_npm_ci(npm, os.path.join(tmp, "npm-cache-peer"))
    problems = []
    for app, want in ((NODE_APP, "is-number: yes"), (PLAIN_APP, "is-number: no")):
        got = router_get(app).strip()
        if got != want:
            problems.append(f"{app} answered {got!r} through the router after its first deploy, expected {want!r}")

    node, plain = [], []
    for k in range(count):
        for d in (dn, dp):
            with open(os.path.join(d, "release.txt"), "w") as f:
                f.write(f"{k}\n")  # only a code file changes: a new release, the same lockfile
        # alternate which goes first, so that neither always follows the other's old instance
        order = [(dn, NODE_APP, node), (dp, PLAIN_APP, plain)]
        for d, app, out in (order if k % 2 == 0 else order[::-1]):
            out.append(deploy_timed(d, app))
    for r in node:
        if "built_ms" not in r or "dependencies unchanged" not in r["build_started"]:
            problems.append(f"a redeploy of {NODE_APP} with the same lockfile did not reuse its dependencies: "
                            f"{r.get('build_started', 'no build event')!r}")
            break
    for app, want in ((NODE_APP, "is-number: yes"), (PLAIN_APP, "is-number: no")):
        got = router_get(app).strip()
        if got != want:
            problems.append(f"{app} answered {got!r} through the router after {count} redeploys, expected {want!r}")
    B.berth("stop", "--app", NODE_APP, "--json")
    B.berth("stop", "--app", PLAIN_APP, "--json")

    col = lambda rs, key: [r[key] for r in rs if key in r]  # noqa: E731
    nw, pw = col(node, "cli_ms"), col(plain, "cli_ms")
    paired = [a - b for a, b in zip(nw, pw)]
    diff = B.median(nw) - B.median(pw)
    res["raw"]["build"] = {"cold": cold, "plain_first": plain1, "peer_npm_ci_ms": peer_cold,
                           "node": node, "plain": plain}
    B.add_row(res, "build", "Node redeploy, lockfile unchanged: CLI wall, median / p90 (min–max)",
            stats_text(nw), f"no package.json: {stats_text(pw)}", "—", "—", None)
    B.add_row(res, "build", "… added by the build stage (difference of the medians)",
            f"{round(diff):+d} ms (paired: {round(B.median(paired)):+d} ms median, {round(B.p90(paired)):+d} ms p90)",
            f"server's \"built in\": {spread(col(node, 'built_ms'))}", "—", "< 100 ms", diff < 100)
    B.add_row(res, "build", "Node first deploy, cold `npm ci` (empty npm cache): CLI wall, once",
            f"{B.fmt_s_or_ms(cold['cli_ms'])} (build {B.fmt_s_or_ms(cold['built_ms'])})",
            f"npm ci alone: {B.fmt_s_or_ms(peer_cold)}; no package.json: {B.fmt_ms(plain1['cli_ms'])}",
            "—", "—", None)
    parts = ("to_upload_ms", "upload_to_release_ms", "release_to_healthy_ms", "healthy_to_exit_ms")
    split = lambda rs: ", ".join(f"{B.median(col(rs, p)):.0f}" for p in parts)  # noqa: E731
    res["notes"].append(
        f"build ({count} redeploys of each app, alternating; medians, ms): CLI start → upload received, "
        f"upload → release created, release → healthy, healthy → CLI exit: Node app {split(node)}; "
        f"no package.json {split(plain)}. The Node app's build stage: the server counted "
        f"{B.median(col(node, 'built_ms')):.0f} ms"
        + (f", of which {B.median(col(node, 'build_to_first_line_ms')):.0f} ms passed before the one-off's first "
           f"line (\"dependencies unchanged\")" if col(node, "build_to_first_line_ms") else "") + ".")
    res["notes"].append(
        f"build, cold: the first deploy of the Node app took {B.fmt_s_or_ms(cold['cli_ms'])}: "
        f"{cold['to_upload_ms']:.0f} ms to the upload, build {cold['built_ms']} ms"
        + (f" (npm said {cold['npm_said_ms']:.0f} ms)" if "npm_said_ms" in cold else "") + ", release → healthy "
        f"{cold['release_to_healthy_ms']:.0f} ms. npm ci alone, cold, in the same run: {peer_cold:.0f} ms. "
        f"Both download from {npm_registry()}.")
    if problems:
        for p in problems:
            res["notes"].append("PROBLEM: " + p)
        raise B.BenchProblem("; ".join(problems))


def npm_registry():
    return version(["npm", "config", "get", "registry"], r"(\S+)")


# ---- run: berth run round trip and time to first byte ----

class Spawned:
    """One process spawned with stdout on a pipe: times (s, perf_counter) of its spawn, its
    first byte on stdout, its exit; its output and exit status."""

    def __init__(self, argv, env):
        r, w = os.pipe()
        err = tempfile.TemporaryFile()
        fa = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
              (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, err.fileno(), 2)]
        self.epoch = time.time()
        self.t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=fa)
        os.close(w)
        self.first = None
        out = b""
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            if self.first is None:
                self.first = time.perf_counter()
            out += chunk
        _, status = os.waitpid(pid, 0)
        self.exit = time.perf_counter()
        os.close(r)
        err.seek(0)
        self.stderr = err.read().decode(errors="replace")
        err.close()
        self.out = out
        self.status = os.waitstatus_to_exitcode(status)

    def ms(self, t):
        return (t - self.t0) * 1000


def spawn_checked(argv, env, want_out):
    s = Spawned(argv, env)
    if s.status != 0 or (want_out is not None and s.out != want_out):
        raise B.BenchError(f"{' '.join(argv)}: exit status {s.status}, stdout {s.out[:200]!r} "
                           f"(expected {want_out!r}), stderr {s.stderr.strip()[-800:]!r}")
    return s


class ServerLog:
    """Follows the server's log for the one-off lines of `berth run` (their timestamps split
    a run into CLI → spawn, the command itself, end → CLI exit)."""

    START = re.compile(r"^(\S+) info \S+ run\.\d+ started \(pid \d+\)")
    END = re.compile(r"^(\S+) info \S+ run\.\d+ ended: ")

    def __init__(self):
        self.path = os.path.join(B.env("BENCH_TMP"), "server.log")
        self.off = os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def next_run(self, deadline_s=0.5):
        """(started, ended) epoch seconds of the next run in the log, or None."""
        t_end = time.perf_counter() + deadline_s
        while True:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                text = f.read().decode(errors="replace")
            lines = text.split("\n")[:-1]  # whole lines only
            start = end = None
            used = 0
            for line in lines:
                used += len(line.encode()) + 1
                m = self.START.match(line)
                if m and start is None:
                    start = B.ts_epoch(m.group(1))
                m = self.END.match(line)
                if m and start is not None:
                    end = B.ts_epoch(m.group(1))
                    self.off += used
                    return start, end
            if time.perf_counter() > t_end:
                self.off += used
                return None
            time.sleep(0.005)


def loop(argv, env, want_out, n, log=None):
    """n timed runs after RUN_WARMUP untimed ones, each checked (exit status 0, stdout
    want_out unless None): lists of exit ms, first-byte ms, and (with log) the split of each
    run by the server's timestamps. Each timed run follows a pause of RUN_PAUSE_MS, as a
    user's does: run back to back, a one-off's move into its cgroup skips the RCU grace
    period (5-15 ms on a VM) that it waits for after a pause."""
    pause = B.env_int("RUN_PAUSE_MS", 100) / 1000
    for _ in range(RUN_WARMUP):
        spawn_checked(argv, env, want_out)
    if log:
        log.off = os.path.getsize(log.path)
    exits, firsts, splits = [], [], []
    for _ in range(n):
        time.sleep(pause)
        s = spawn_checked(argv, env, want_out)
        exits.append(s.ms(s.exit))
        if s.first is not None:
            firsts.append(s.ms(s.first))
        if log:
            se = log.next_run()
            if se:
                end_epoch = s.epoch + (s.exit - s.t0)
                splits.append(((se[0] - s.epoch) * 1000, (se[1] - se[0]) * 1000, (end_epoch - se[1]) * 1000))
    return exits, firsts, splits


def hyperfine(argv, n):
    """hyperfine's view of the same round trip (no shell, -N), or None when not installed."""
    hf = shutil.which("hyperfine")
    if not hf:
        return None
    out = os.path.join(B.env("BENCH_TMP"), "hyperfine.json")
    pause = B.env_int("RUN_PAUSE_MS", 100) / 1000
    p = subprocess.run([hf, "-N", "--style", "none", "-w", str(RUN_WARMUP), "-r", str(n),
                        "--prepare", f"sleep {pause}", "--export-json", out, " ".join(argv)],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise B.BenchError(f"hyperfine failed: {(p.stderr or p.stdout).strip()[-500:]}")
    with open(out) as f:
        r = json.load(f)["results"][0]
    return {k: r[k] * 1000 for k in ("mean", "stddev", "median", "min", "max")} | {"version": version([hf, "--version"])}


def cmd_run(res):
    n = B.env_int("RUN_N", 50)
    py = B.env("BENCH_PYTHON")
    berth = B.env("BERTH_BIN")
    env = dict(os.environ)
    tiny = f"exec {py} app.py"
    d = B.write_app(RUN_APP, {"app.py": B.TINY_APP, "berth.yaml": B.manifest(
        "web", tiny, ["health:", "  http: /", "  deadline: 20s", "stop_grace: 2s"])})
    B.berth("deploy", d, "--app", RUN_APP, "--json")
    log = ServerLog()

    run_true = [berth, "run", "--app", RUN_APP, "--", "true"]
    run_echo = [berth, "run", "--app", RUN_APP, "--", "echo", "hi"]
    t_exit, _, t_split = loop(run_true, env, b"", n, log)
    e_exit, e_first, e_split = loop(run_echo, env, b"hi\n", n, log)
    # the floor: the same commands as the one-off runs them (/bin/sh -c "exec 'CMD' ..."), no berth
    p_true, _, _ = loop(["/bin/sh", "-c", "exec 'true'"], env, b"", n)
    _, p_first, _ = loop(["/bin/sh", "-c", "exec 'echo' 'hi'"], env, b"hi\n", n)
    # what every CLI call costs before it talks to anyone, and one plain API round trip
    v_exit, _, _ = loop([berth, "version"], env, None, n)
    ps_exit, _, _ = loop([berth, "ps", "--app", RUN_APP], env, None, n)
    hf = hyperfine(run_true, n)
    B.berth("stop", "--app", RUN_APP, "--json")

    res["raw"]["run"] = {"run_true_ms": t_exit, "run_true_split_ms": t_split, "echo_first_byte_ms": e_first,
                         "echo_exit_ms": e_exit, "echo_split_ms": e_split, "peer_true_ms": p_true,
                         "peer_echo_first_byte_ms": p_first, "version_ms": v_exit, "ps_ms": ps_exit,
                         "hyperfine": hf}
    B.add_row(res, "run", "`berth run -- true` round trip, median / p90 (min–max)", stats_text(t_exit),
            f"sh -c alone: {stats_text(p_true)}", "—", "< 150 ms", B.median(t_exit) < 150)
    B.add_row(res, "run", "`berth run -- echo hi`: spawn → first byte of \"hi\", median / p90 (min–max)",
            stats_text(e_first), f"sh -c alone: {stats_text(p_first)}", "—", "—", None)
    sp = lambda xs, i: B.median([x[i] for x in xs])  # noqa: E731
    note = (f"run ({n} runs each after {RUN_WARMUP} warm-ups, {B.env_int('RUN_PAUSE_MS', 100)} ms apart, "
            f"stdin /dev/null, stdout a pipe; medians): ")
    if t_split:
        note += (f"`run -- true` splits by the server log's timestamps into CLI start → one-off spawned "
                 f"{sp(t_split, 0):.1f} ms, the command itself {sp(t_split, 1):.1f} ms, its end → CLI exit "
                 f"{sp(t_split, 2):.1f} ms ({len(t_split)} of {n} runs found in the log). ")
    if e_split:
        note += (f"`run -- echo hi`: CLI start → spawned {sp(e_split, 0):.1f} ms, first byte at "
                 f"{B.median(e_first):.1f} ms, exit at {B.median(e_exit):.1f} ms. ")
    note += (f"For scale: `berth version` (process start, no network) takes {B.median(v_exit):.1f} ms and "
             f"`berth ps --app {RUN_APP}` (one API request) {B.median(ps_exit):.1f} ms.")
    res["notes"].append(note)
    if hf:
        res.setdefault("versions", {})["hyperfine"] = hf["version"]
        res["notes"].append(
            f"run, hyperfine -N --prepare 'sleep {B.env_int('RUN_PAUSE_MS', 100) / 1000}' ({n} runs, "
            f"{RUN_WARMUP} warm-ups) of `berth run -- true`: mean "
            f"{hf['mean']:.1f} ± {hf['stddev']:.1f} ms, median {hf['median']:.1f} ms, "
            f"{hf['min']:.1f}–{hf['max']:.1f} ms.")


def main():
    cmds = {"build": cmd_build, "run": cmd_run}
    if len(sys.argv) != 2 or sys.argv[1] not in cmds:
        print("usage: bench_apps.py build|run", file=sys.stderr)
        return 2
    what = sys.argv[1]
    return B.measure(what, cmds[what], PARAMS[what])


if __name__ == "__main__":
    sys.exit(main())
