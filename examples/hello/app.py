"""hello: the example web service. Serves a greeting and a visit counter kept in the
app's volume (so it survives deploys), and /healthz for berth's health check."""
import http.server
import json
import os
import signal
import sys

PORT = int(os.environ.get("PORT", "8000"))
DATA = os.environ.get("BERTH_VOLUME_DATA", ".")
COUNTER = os.path.join(DATA, "visits")


def bump():
    try:
        with open(COUNTER) as f:
            n = int(f.read() or 0)
    except (FileNotFoundError, ValueError):
        n = 0
    n += 1
    tmp = COUNTER + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(n))
    os.replace(tmp, COUNTER)
    return n


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body = b"ok\n"
        else:
            body = json.dumps({
                "greeting": os.environ.get("GREETING", "hello"),
                "instance": os.environ.get("BERTH_INSTANCE"),
                "release": os.environ.get("BERTH_RELEASE"),
                "visits": bump(),
            }).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain" if self.path == "/healthz" else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    signal.signal(signal.SIGTERM, lambda *_: (print("SIGTERM: shutting down", flush=True), sys.exit(0)))
    print("listening on 127.0.0.1:%d" % PORT, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
