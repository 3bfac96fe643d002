#!/usr/bin/env python3
"""bench_net.py: the network benchmarks of bench/run.sh, each next to its peer from Debian in
the same run (bench/README.md says what each figure means and why the set-up is fair):

    bench_net.py router   the HTTP router vs nginx, both proxying to one upstream (wrk)
    bench_net.py idle     memory per idle keep-alive client connection, router vs nginx
    bench_net.py dns      the DNS server vs knot serving the same records (dnsperf)

It uses bench.py's results file, helpers and peer handling (run.sh has started the server
with --router and --dns on free ports and exported BENCH_ROUTER_PORT and BENCH_DNS_PORT). The
upstream of both proxies is one nginx run by berth as the `web` instance of the app `up`, so
the router reaches it the way it reaches any app and nginx is pointed at the same port.
Exit status as bench.py's. Standard library only; the tools come from bench/setup.sh."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/ from importing bench.py
import bench as B  # noqa: E402

PARAMS = {
    "router": {"ROUTER_SECONDS": 8, "ROUTER_ROUNDS": 5, "ROUTER_CONNS": 64},
    "idle": {"IDLE_CONNS": 10000},
    "dns": {"DNS_SECONDS": 10, "DNS_ROUNDS": 3, "DNS_CLIENTS": 4},
}
UP_APP = "up"
HOST = "up.localhost"           # the router's default host of the production app `up`
DNS_APP = "dnsapp"
DNS_INSTANCES = 3
START_DEADLINE = 10             # seconds for a peer to answer after it was started


def cpus():
    """What berth's router uses by default (uv_available_parallelism: the affinity mask)."""
    return len(os.sched_getaffinity(0))


def tool(name):
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}")
                                       if os.access(p, os.X_OK)), None)
    if not path:
        raise B.BenchError(f"{name} not found (run bench/setup.sh)")
    return path


def version_of(argv, pattern):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(pattern, p.stdout + p.stderr)
    return m.group(1) if m else "?"


def note_versions(res, names):
    v = res.setdefault("versions", {})
    probes = {"nginx": ([tool("nginx"), "-v"], r"nginx/(\S+)"),
              "wrk": ([tool("wrk"), "-v"], r"wrk (\S+)"),
              "knot": ([tool("knotd"), "-V"], r"(\d+\.\d+\.\d+)"),
              "dnsperf": ([tool("dnsperf"), "-h"], r"Version (\S+)")}
    for n in names:
        v[n] = version_of(*probes[n])


def workdir(name):
    d = os.path.join(B.env("BENCH_TMP"), name)
    os.makedirs(d, exist_ok=True)
    return d


def group_pids(pgid):
    """Live processes of one process group (a peer and its workers)."""
    return [pid for pid, rest in B.proc_stats() if int(rest[2]) == pgid and rest[0] != "Z"]


def series(runs, key, scale=1000):
    """'12.3/12.9/13.1': one figure per run, divided by scale."""
    return "/".join(f"{r[key] / scale:.1f}" for r in runs)


def cpu_of(pids):
    t = 0.0
    for p in pids:
        try:
            t += B.proc_cpu_s(p)
        except OSError:
            pass
    return t


def rss_of(pids):
    return sum(B.proc_status_kib(p, "VmRSS") for p in pids)


# ---- HTTP on a raw socket (keep-alive, exact framing) ----

def http_request(sock, host):
    """One keep-alive GET on an open socket; returns (status, body). Reads exactly one answer
    (Content-Length framing, which is what both proxies send for the upstream's answer)."""
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise B.BenchError("the proxy closed a keep-alive connection before answering")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise B.BenchError("the proxy closed a connection in the middle of an answer")
        body += chunk
    return status, body


def get_ok(port, host, deadline_s=START_DEADLINE):
    """Polls until GET / through port answers 200 "ok"."""
    t0 = time.time()
    last = "no answer"
    while time.time() - t0 < deadline_s:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                st, body = http_request(s, host)
                if st == 200 and body == b"ok\n":
                    return
                last = f"status {st}, body {body[:60]!r}"
        except (OSError, B.BenchError) as e:
            last = str(e)
        time.sleep(0.05)
    raise B.BenchError(f"GET http://127.0.0.1:{port}/ (Host: {host}) did not answer 200 ok: {last}")


# ---- nginx: the upstream (run by berth) and the peer proxy ----

def nginx_globals(d, name):
    """The top of an nginx.conf that runs from a temp dir without touching /var."""
    user = ""
    if os.geteuid() == 0:  # as root, nginx would switch its workers to nobody: keep them ours
        import grp
        import pwd
        user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(0).gr_name};\n"
    return (f"{user}error_log {d}/{name}.err warn;\npid {d}/{name}.pid;\n"
            f"worker_rlimit_nofile {fd_limit()};\n")


def nginx_http_common(d):
    return (f"    client_body_temp_path {d}/tmp-body; proxy_temp_path {d}/tmp-proxy;\n"
            f"    fastcgi_temp_path {d}/tmp-fcgi; uwsgi_temp_path {d}/tmp-uwsgi; scgi_temp_path {d}/tmp-scgi;\n"
            "    keepalive_requests 100000000;\n    keepalive_timeout 120s;\n")


def fd_limit():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_fd_limit():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def upstream_ensure():
    """The app `up`: one nginx answering 200 "ok\\n" (3 bytes) with keep-alive, started by berth.
    Returns (port, pid of the instance). Deploys it on first use."""
    found = upstream_find()
    if found:
        return found
    d = workdir("upstream")
    nginx = tool("nginx")
    tmpl = os.path.join(d, "upstream.conf.in")
    with open(tmpl, "w") as f:
        f.write(nginx_globals(d, "upstream-@PORT@") + "worker_processes 1;\n"
                "events { worker_connections 4096; }\n"
                "http {\n    access_log off;\n    default_type text/plain;\n" + nginx_http_common(d) +
                "    server {\n        listen 127.0.0.1:@PORT@;\n"
                "        location / { return 200 \"ok\\n\"; }\n    }\n}\n")
    conf = os.path.join(d, "upstream-$PORT.conf")
    command = (f"sed \"s/@PORT@/$PORT/g\" {tmpl} > {conf} && "
               f"exec {nginx} -p {d} -e {d}/upstream-$PORT.err -c {conf} -g 'daemon off;'")
    app = B.write_app(UP_APP, {"berth.yaml": B.manifest("web", command, [
        "health:", "  http: /", "  deadline: 20s", "stop_grace: 2s"])})
    B.berth("deploy", app, "--app", UP_APP, "--json")
    found = upstream_find()
    if not found:
        raise B.BenchError("the upstream app `up` was deployed but has no running instance")
    return found


def upstream_find():
    try:
        _, _, out = B.berth("ps", "--app", UP_APP, "--json")
    except B.BenchError as e:
        if "no app" in str(e):
            return None
        raise
    for i in json.loads(out).get("instances", []):
        if i.get("state") == "running" and i.get("port") and i.get("pid"):
            B.note_group(i["pid"])  # berth starts it in its own session; for run.sh's cleanup
            return i["port"], i["pid"]
    return None


def nginx_proxy_start(name, upstream_port, workers, max_conns):
    """The peer: nginx proxying every request to the upstream with a keep-alive pool, doing what
    berth's router does per request (X-Forwarded-*, X-Request-Id, a buffered access log).
    Returns (port, Popen)."""
    d = workdir(name)
    port = B.free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_globals(d, "proxy") + f"worker_processes {workers};\n"
                f"events {{ worker_connections {max_conns}; }}\n"
                "http {\n"
                f"    access_log {d}/access.log combined buffer=64k flush=1s;\n" + nginx_http_common(d) +
                f"    upstream app {{\n        server 127.0.0.1:{upstream_port};\n"
                "        keepalive 64;\n        keepalive_requests 100000000;\n        keepalive_timeout 60s;\n    }\n"
                f"    server {{\n        listen 127.0.0.1:{port} reuseport;\n"
                "        location / {\n"
                "            proxy_pass http://app;\n"
                "            proxy_http_version 1.1;\n"
                "            proxy_set_header Connection \"\";\n"
                "            proxy_set_header Host $host;\n"
                "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
                "            proxy_set_header X-Forwarded-Proto $scheme;\n"
                "            proxy_set_header X-Forwarded-Host $host;\n"
                "            proxy_set_header X-Request-Id $request_id;\n"
                "        }\n    }\n}\n")
    err = open(os.path.join(d, "stderr"), "w")
    p = B.peer_spawn([tool("nginx"), "-p", d, "-e", f"{d}/proxy.err", "-c", conf, "-g", "daemon off;"],
                     stderr=err)
    err.close()
    try:
        get_ok(port, HOST)
    except B.BenchError as e:
        raise B.BenchError(f"nginx peer: {e} ({tail(os.path.join(d, 'proxy.err'))})")
    want = workers + 1
    t0 = time.time()
    while len(group_pids(p.pid)) < want and time.time() - t0 < START_DEADLINE:
        time.sleep(0.05)
    return port, p


def tail(path, n=3):
    try:
        with open(path) as f:
            return " / ".join(f.read().strip().splitlines()[-n:]) or "empty log"
    except OSError:
        return "no log"


# ---- router: throughput, p99, CPU per request ----

def to_ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        raise B.BenchError(f"wrk: unexpected latency {v!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]


def wrk(port, seconds, conns, threads):
    cmd = [tool("wrk"), f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency",
           "-H", f"Host: {HOST}", f"http://127.0.0.1:{port}/"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise B.BenchError(f"wrk did not finish within {seconds + 30} s")
    out = p.stdout
    if p.returncode != 0:
        raise B.BenchError(f"wrk: exit status {p.returncode}: {(p.stderr or out).strip()[-400:]}")
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    if not m:
        raise B.BenchError(f"wrk: no request count in {out[-400:]!r}")
    r = {"requests": int(m.group(1)), "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "90", "99"):
        r[f"p{pct}_ms"] = to_ms(re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M).group(1))
    r["max_ms"] = to_ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["sock_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return r


def cpu_idle_pct(window=1.0):
    """The machine's idle CPU share (%) over the next `window` seconds (/proc/stat)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = snap()
    time.sleep(window)
    t1, i1 = snap()
    return 100.0 * (i1 - i0) / max(1, t1 - t0)


def wait_quiet(min_idle=90.0, max_wait=30.0):
    """Latency tails measure the scheduler as much as the proxy: a run starts only once the
    machine has been idle for a second (or after max_wait, noted). Returns the idle share."""
    deadline = time.monotonic() + max_wait
    while True:
        idle = cpu_idle_pct()
        if idle >= min_idle or time.monotonic() >= deadline:
            return idle


def wrk_measured(port, proxy_pids_fn, upstream_pid, seconds, conns, threads):
    """One wrk run with the CPU time the proxy's and the upstream's processes spent in it."""
    idle = wait_quiet()
    pids = proxy_pids_fn()
    ups = group_pids(upstream_pid)
    c0, u0 = cpu_of(pids), cpu_of(ups)
    r = wrk(port, seconds, conns, threads)
    c1, u1 = cpu_of(pids), cpu_of(ups)
    r["cpu_s"] = c1 - c0
    r["cpu_us_per_req"] = (c1 - c0) / r["requests"] * 1e6
    r["upstream_cpu_us_per_req"] = (u1 - u0) / r["requests"] * 1e6
    r["idle_before_pct"] = idle
    return r


def cmd_router(res):
    seconds, rounds = B.env_int("ROUTER_SECONDS", 8), B.env_int("ROUTER_ROUNDS", 5)
    conns = B.env_int("ROUTER_CONNS", 64)
    threads = cpus()
    wrk_threads = B.env_int("WRK_THREADS", threads)
    note_versions(res, ["nginx", "wrk"])
    raise_fd_limit()
    rport = B.env_int("BENCH_ROUTER_PORT", 0)
    up_port, up_pid = upstream_ensure()
    get_ok(rport, HOST)
    nport, ngx = nginx_proxy_start("nginx-router", up_port, threads, 4096)
    srv = B.server_pid()
    sides = {"berth": (rport, lambda: [srv]), "nginx": (nport, lambda: group_pids(ngx.pid))}
    # warm-up (pools, caches, page faults), not counted
    for name, (port, _) in sides.items():
        wrk(port, 2, conns, wrk_threads)
    alone = wrk_measured(up_port, lambda: [], up_pid, seconds, conns, wrk_threads)
    runs = {"berth": [], "nginx": []}
    for _ in range(rounds):
        for name, (port, pids_fn) in sides.items():  # alternating: berth, nginx, berth, ...
            runs[name].append(wrk_measured(port, pids_fn, up_pid, seconds, conns, wrk_threads))
    res["raw"]["router"] = {"threads": threads, "wrk_threads": wrk_threads, "conns": conns,
                            "seconds": seconds, "upstream_alone": alone, **runs}

    def med(name, key):
        return B.median([r[key] for r in runs[name]])

    b_rps, n_rps = med("berth", "rps"), med("nginx", "rps")
    b99, n99 = med("berth", "p99_ms"), med("nginx", "p99_ms")
    bcpu, ncpu = med("berth", "cpu_us_per_req"), med("nginx", "cpu_us_per_req")
    errs = {n: sum(r["non2xx"] + r["sock_errors"] for r in runs[n]) for n in runs}
    ref = "HAProxy 243k req/s per core with keep-alive (published)"
    label = f"{conns} conns, {threads} threads/workers, median of {rounds} × {seconds} s"
    add = B.add_row
    add(res, "router", f"router throughput, {label}",
        f"{b_rps / 1000:.1f} k req/s ({b_rps / n_rps:.0%} of nginx)", f"nginx: {n_rps / 1000:.1f} k req/s",
        ref, "≥ nginx", b_rps >= n_rps)
    add(res, "router", "router latency p99 / p50 (wrk)",
        f"{B.fmt_ms(b99)} / {B.fmt_ms(med('berth', 'p50_ms'))}",
        f"nginx: {B.fmt_ms(n99)} / {B.fmt_ms(med('nginx', 'p50_ms'))}", "—", "p99 ≤ nginx", b99 <= n99)
    add(res, "router", "router CPU per request (proxy process, user + system)",
        f"{bcpu:.1f} µs", f"nginx: {ncpu:.1f} µs", "HAProxy ~4 µs (243k/s per core, published)", "—", None)
    add(res, "router", "failed requests (non-2xx, socket errors), all runs", str(errs["berth"]),
        f"nginx: {errs['nginx']}", "—", "0", errs["berth"] == 0)
    res["notes"].append(
        f"router: every run {series(runs['berth'], 'rps')} k req/s for berth, "
        f"{series(runs['nginx'], 'rps')} for nginx (alternating, in that order); "
        f"p99 {series(runs['berth'], 'p99_ms', 1)} ms vs {series(runs['nginx'], 'p99_ms', 1)} ms. The upstream alone (wrk straight at it) "
        f"answers {alone['rps'] / 1000:.1f} k req/s; it used {med('berth', 'upstream_cpu_us_per_req'):.1f} µs "
        f"of CPU per request behind berth and {med('nginx', 'upstream_cpu_us_per_req'):.1f} µs behind nginx. "
        f"wrk runs on the same {threads} cores ({wrk_threads} threads) as the proxy and the upstream; "
        f"berth's server and nginx each run in their own session (scheduler autogroup), and each run "
        f"started on a quiet machine (idle before the runs: min {min(r['idle_before_pct'] for v in runs.values() for r in v):.0f}%).")
    if errs["berth"]:
        raise B.BenchProblem(f"{errs['berth']} requests through berth's router failed (non-2xx or socket errors)")


# ---- idle: memory per idle keep-alive connection ----

def hold_idle(port, n):
    """Opens n connections, one request each (answer read), and keeps them open, idle."""
    socks = []
    try:
        for k in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)
            st, _ = http_request(s, HOST)
            if st != 200:
                raise B.BenchError(f"connection {k + 1}: status {st}")
    except OSError as e:
        for s in socks:
            s.close()
        raise B.BenchError(f"opening idle connection {len(socks) + 1} of {n}: {e}")
    return socks


def idle_side(port, pids_fn, n):
    """(RSS before, RSS with n idle connections, RSS after closing them, anon before/with),
    in KiB, summed over pids_fn()."""
    for _ in range(3):  # settle the first-request allocations
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            http_request(s, HOST)
    time.sleep(0.5)
    before = rss_of(pids_fn())
    anon0 = sum(B.proc_status_kib(p, "RssAnon") for p in pids_fn())
    t0 = time.perf_counter()
    socks = hold_idle(port, n)
    opened_s = time.perf_counter() - t0
    time.sleep(1.0)
    held = rss_of(pids_fn())
    anon1 = sum(B.proc_status_kib(p, "RssAnon") for p in pids_fn())
    # still open and usable? a second request on a sample of them
    alive = 0
    for s in socks[:: max(1, n // 100)]:
        try:
            s.settimeout(5)
            if http_request(s, HOST)[0] == 200:
                alive += 1
        except (OSError, B.BenchError):
            pass
    sample = len(socks[:: max(1, n // 100)])
    for s in socks:
        s.close()
    time.sleep(1.0)
    after = rss_of(pids_fn())
    return {"before_kib": before, "held_kib": held, "after_kib": after, "anon_before_kib": anon0,
            "anon_held_kib": anon1, "per_conn_kib": (held - before) / n, "opened_s": opened_s,
            "sample": sample, "sample_alive": alive}


def cmd_idle(res):
    n = B.env_int("IDLE_CONNS", 10000)
    note_versions(res, ["nginx"])
    limit = raise_fd_limit()
    threads = cpus()
    if n + 100 > limit:
        res["notes"].append(f"idle: the fd limit is {limit}, so {limit - 100} connections instead of {n}.")
        n = limit - 100
    srv = B.server_pid()
    with open(f"/proc/{srv}/limits") as f:
        m = re.search(r"Max open files\s+(\d+)", f.read())
    if m and int(m.group(1)) < n + 100:
        raise B.BenchError(f"the berth server may open only {m.group(1)} files, fewer than {n} connections "
                           f"(run.sh raises `ulimit -n`; raise the hard limit)")
    rport = B.env_int("BENCH_ROUTER_PORT", 0)
    up_port, _ = upstream_ensure()
    get_ok(rport, HOST)
    ours = idle_side(rport, lambda: [srv], n)
    nport, ngx = nginx_proxy_start("nginx-idle", up_port, threads, (n + 1000) // threads + 1000)
    workers = lambda: [p for p in group_pids(ngx.pid) if p != ngx.pid]  # noqa: E731
    peer = idle_side(nport, workers, n)
    B.peer_stop_all()
    res["raw"]["idle"] = {"n": n, "berth": ours, "nginx": peer}
    add = B.add_row
    add(res, "idle", f"router memory per idle keep-alive connection ({n:,} open, after one request each)",
        f"{ours['per_conn_kib'] * 1024:.0f} B", f"nginx: {peer['per_conn_kib'] * 1024:.0f} B",
        "nginx: 10,000 idle ≈ 2.5 MB (its docs)", "< 4 KiB", ours["per_conn_kib"] < 4)
    add(res, "idle", f"proxy RSS before / with {n:,} idle / after closing them",
        f"{B.fmt_mib(ours['before_kib'])} / {B.fmt_mib(ours['held_kib'])} / {B.fmt_mib(ours['after_kib'])}",
        f"nginx workers: {B.fmt_mib(peer['before_kib'])} / {B.fmt_mib(peer['held_kib'])} / "
        f"{B.fmt_mib(peer['after_kib'])}", "—", "—", None)
    res["notes"].append(
        f"idle: berth's server RSS is the whole daemon (router threads, API, supervisor); its anonymous part "
        f"grew {ours['anon_held_kib'] - ours['anon_before_kib']:,} KiB for {n:,} connections. nginx's figure "
        f"is the sum over its {threads} workers, which allocate their connection array (worker_connections "
        f"entries) at start: that part is in the 'before' figure, not in the delta. Socket buffers are kernel "
        f"memory and count for neither. Opening took {ours['opened_s']:.1f} s (berth) and "
        f"{peer['opened_s']:.1f} s (nginx); a second request on {ours['sample']} of the idle connections "
        f"succeeded on {ours['sample_alive']} (berth) and {peer['sample_alive']} (nginx).")
    if ours["sample_alive"] != ours["sample"]:
        raise B.BenchProblem(f"berth closed {ours['sample'] - ours['sample_alive']} of {ours['sample']} "
                             f"sampled idle keep-alive connections within seconds")


# ---- dns: queries/s against knot ----

DNS_QUERIES = [(f"web.{DNS_APP}.service.production.consul", "A"),
               (f"web.{DNS_APP}.service.production.consul", "SRV"),
               (f"{DNS_APP}.service.consul", "A"),
               (f"{DNS_APP}.service.consul", "SRV"),
               (f"web.{DNS_APP}.production.berth", "A"),
               (f"web.{DNS_APP}.production.berth", "SRV")]


def dig(port, name, qtype):
    """(answer records, additional records) as sorted zone-file lines, TTLs included."""
    cmd = [tool("dig"), "@127.0.0.1", "-p", str(port), "+noall", "+answer", "+additional", "+norec",
           "+tries=1", "+time=2", name, qtype]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        raise B.BenchError(f"dig {name} {qtype} on port {port}: {(p.stderr or p.stdout).strip()[-300:]}")
    recs = [" ".join(ln.split()) for ln in p.stdout.splitlines() if ln.strip() and not ln.startswith(";")]
    return sorted(recs)


def dns_records(port):
    return {f"{n} {t}": dig(port, n, t) for n, t in DNS_QUERIES}


def knot_start(name, records, workers):
    """knotd on a free port serving every record berth gave, in one zone (the root), so that
    it too puts the SRV targets' A records in the additional section."""
    d = workdir(name)
    port = B.free_port()
    lines = [". 0 IN SOA ns.berth. hostmaster.berth. 1 3600 600 86400 0", ". 0 IN NS ns.berth.",
             "ns.berth. 0 IN A 127.0.0.1"]
    seen = set()
    for recs in records.values():
        for r in recs:
            if r not in seen:
                seen.add(r)
                lines.append(r)
    with open(os.path.join(d, "root.zone"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(d, "knot.conf"), "w") as f:
        f.write(f"server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n"
                f"    udp-workers: {workers}\n    tcp-workers: 1\n    background-workers: 1\n"
                f"control:\n    listen: \"{d}/knot.sock\"\n"
                f"database:\n    storage: \"{d}/db\"\n"
                "log:\n  - target: stderr\n    any: error\n"
                f"zone:\n  - domain: .\n    storage: \"{d}\"\n    file: root.zone\n"
                "    semantic-checks: off\n    journal-content: none\n")
    os.makedirs(os.path.join(d, "db"), exist_ok=True)
    err = open(os.path.join(d, "stderr"), "w")
    p = B.peer_spawn([tool("knotd"), "-c", os.path.join(d, "knot.conf")], stderr=err)
    err.close()
    t0 = time.time()
    while True:
        try:
            got = dns_records(port)
            break
        except (B.BenchError, subprocess.TimeoutExpired):
            if p.poll() is not None or time.time() - t0 > START_DEADLINE:
                raise B.BenchError(f"knotd did not answer on port {port} ({tail(os.path.join(d, 'stderr'))})")
            time.sleep(0.1)
    if got != records:
        diff = [f"{q}: berth {records[q]} / knot {got[q]}" for q in records if got[q] != records[q]]
        raise B.BenchError(f"knot does not answer what berth answers: {diff[0]}")
    return port, p


def dnsperf(port, qfile, seconds, clients, threads):
    cmd = [tool("dnsperf"), "-s", "127.0.0.1", "-p", str(port), "-d", qfile, "-l", str(seconds),
           "-c", str(clients), "-T", str(threads), "-q", "200"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise B.BenchError(f"dnsperf did not finish within {seconds + 30} s")
    out = p.stdout
    m = re.search(r"Queries per second:\s+([\d.]+)", out)
    if p.returncode != 0 or not m:
        raise B.BenchError(f"dnsperf: exit status {p.returncode}: {(p.stderr or out).strip()[-400:]}")
    lat = re.search(r"Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)", out)
    return {"qps": float(m.group(1)),
            "completed": int(re.search(r"Queries completed:\s+(\d+)", out).group(1)),
            "lost": int(re.search(r"Queries lost:\s+(\d+)", out).group(1)),
            "rcodes": re.search(r"Response codes:\s+(.*)", out).group(1).strip(),
            "resp_size": int(re.search(r"response (\d+)", out).group(1)),
            "avg_ms": float(lat.group(1)) * 1000, "max_ms": float(lat.group(3)) * 1000}


def cmd_dns(res):
    seconds, rounds = B.env_int("DNS_SECONDS", 10), B.env_int("DNS_ROUNDS", 3)
    clients = B.env_int("DNS_CLIENTS", 4)
    threads = cpus()
    note_versions(res, ["knot", "dnsperf"])
    dport = B.env_int("BENCH_DNS_PORT", 0)
    app = B.write_app(DNS_APP, {"tcp.py": B.TCP_APP, "berth.yaml": B.manifest(
        "web", f"exec {B.env('BENCH_PYTHON')} tcp.py",
        [f"instances: {DNS_INSTANCES}", "health:", "  tcp: true", "  deadline: 20s", "stop_grace: 2s"])})
    B.berth("deploy", app, "--app", DNS_APP, "--json")
    t0 = time.time()
    while True:  # the endpoints snapshot follows the healthy events
        records = dns_records(dport)
        if all(len([r for r in records[f"{n} SRV"] if " SRV " in r]) == DNS_INSTANCES
               for n, t in DNS_QUERIES if t == "SRV"):
            break
        if time.time() - t0 > START_DEADLINE:
            raise B.BenchError(f"berth's DNS does not answer {DNS_INSTANCES} SRV records: {records}")
        time.sleep(0.1)
    qfile = os.path.join(workdir("dns"), "queries.txt")
    with open(qfile, "w") as f:
        f.write("".join(f"{n} {t}\n" for n, t in DNS_QUERIES))
    kport, knot = knot_start("knot", records, threads)
    k1port, knot1 = knot_start("knot-1", records, 1)
    srv = B.server_pid()
    sides = {"berth": (dport, lambda: [srv]), "knot": (kport, lambda: group_pids(knot.pid)),
             "knot-1": (k1port, lambda: group_pids(knot1.pid))}
    for port, _ in sides.values():  # warm-up
        dnsperf(port, qfile, 1, clients, threads)
    runs = {n: [] for n in sides}
    for _ in range(rounds):
        for name, (port, pids_fn) in sides.items():
            pids = pids_fn()
            c0 = cpu_of(pids)
            r = dnsperf(port, qfile, seconds, clients, threads)
            r["cpu_us_per_query"] = (cpu_of(pids) - c0) / max(r["completed"], 1) * 1e6
            runs[name].append(r)
    res["raw"]["dns"] = {"threads": threads, "clients": clients, "seconds": seconds, **runs}

    def med(name, key):
        return B.median([r[key] for r in runs[name]])

    b, k, k1 = med("berth", "qps"), med("knot", "qps"), med("knot-1", "qps")
    label = f"A + SRV, dnsperf {clients} clients × {threads} threads, median of {rounds} × {seconds} s"
    add = B.add_row
    add(res, "dns", f"DNS queries/s, {label}", f"{b / 1000:.1f} k qps ({b / k:.0%} of knot)",
        f"knot ({threads} UDP workers): {k / 1000:.1f} k qps", "CoreDNS ~34k qps on 2 vCPUs (published)",
        "≥ knot", b >= k)
    add(res, "dns", "DNS queries/s against knot with 1 UDP worker (berth answers on 1 thread)",
        f"{b / 1000:.1f} k qps", f"knot (1 UDP worker): {k1 / 1000:.1f} k qps", "—", "—", None)
    add(res, "dns", "DNS latency average / max (dnsperf)",
        f"{med('berth', 'avg_ms'):.3f} ms / {med('berth', 'max_ms'):.1f} ms",
        f"knot: {med('knot', 'avg_ms'):.3f} ms / {med('knot', 'max_ms'):.1f} ms", "—", "—", None)
    add(res, "dns", "DNS CPU per query (server process)", f"{med('berth', 'cpu_us_per_query'):.1f} µs",
        f"knot: {med('knot', 'cpu_us_per_query'):.1f} µs; 1 worker: {med('knot-1', 'cpu_us_per_query'):.1f} µs",
        "—", "—", None)
    lost = {n: sum(r["lost"] for r in runs[n]) for n in runs}
    res["notes"].append(
        f"dns: the query file cycles {len(DNS_QUERIES)} queries (A and SRV for the three name forms of an app "
        f"with {DNS_INSTANCES} healthy instances). knot serves the very records berth answered, checked with "
        f"dig before the runs (answer and additional sections equal); average answer size "
        f"{runs['berth'][0]['resp_size']} B (berth) and {runs['knot'][0]['resp_size']} B (knot). Runs "
        f"(k qps, in order): berth {series(runs['berth'], 'qps')}, knot {series(runs['knot'], 'qps')}, "
        f"knot-1 {series(runs['knot-1'], 'qps')}. Lost queries: berth {lost['berth']}, "
        f"knot {lost['knot']}, knot-1 {lost['knot-1']}; response codes (berth): {runs['berth'][0]['rcodes']}. "
        f"dnsperf runs on the same {threads} cores.")
    bad = [r["rcodes"] for r in runs["berth"] if not r["rcodes"].startswith("NOERROR") or "," in r["rcodes"]]
    if bad:
        raise B.BenchProblem(f"berth's DNS answered other than NOERROR: {bad[0]}")


def main():
    cmds = {"router": cmd_router, "idle": cmd_idle, "dns": cmd_dns}
    if len(sys.argv) != 2 or sys.argv[1] not in cmds:
        print("usage: bench_net.py router|idle|dns", file=sys.stderr)
        return 2
    what = sys.argv[1]
    return B.measure(what, cmds[what], PARAMS[what])


if __name__ == "__main__":
    sys.exit(main())
