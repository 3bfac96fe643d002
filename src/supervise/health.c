/* health: one health probe of one instance, run on the daemon's libuv loop (see health.h).
 * HTTP and TCP probes are non-blocking sockets; EXEC probes are child processes in their own
 * session, so a timeout can SIGKILL the whole process group. Every probe has a timer for its
 * deadline and never blocks the loop.
 * Ownership: a probe owns its handles and buffers and frees itself in the last handle close
 * callback, after fn has run or after health_probe_cancel. The caller's pointer stays valid
 * until fn returns or cancel returns, and must be forgotten then. */
#include "supervise/health.h"
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util/buf.h"

#define HEALTH_DEFAULT_TIMEOUT_MS 1000
#define HEALTH_STATUS_LINE_MAX 1024   /* a longer status line is not a real HTTP server */
#define HEALTH_OUTPUT_MAX 512         /* EXEC output kept for the detail of a failure */

struct health_probe {
	uv_loop_t *loop;
	enum health_kind kind;
	health_done_fn fn;
	void *arg;
	int64_t timeout_ms;
	int done;              /* fn has run or the probe was cancelled: tear down only */
	int cancelled;         /* fn must never run */
	int open;              /* handles initialised and not yet closed */
	int reqs;              /* getaddrinfo requests whose callback has not run */
	char *fail;            /* failure found while starting, delivered from the loop */
	uv_timer_t timer;

	/* HTTP and TCP */
	char *host;            /* as given, for getaddrinfo */
	char *target;          /* "host:port" or "[v6]:port", for messages and the Host header */
	char *path;            /* HTTP request path */
	int port;
	uv_getaddrinfo_t gai;
	int gai_active;
	uv_tcp_t tcp;
	int tcp_init;
	uv_connect_t conn;
	uv_write_t wreq;
	struct buf req;        /* request bytes, alive until the write callback */
	struct buf rx;         /* response bytes up to the end of the status line */

	/* EXEC */
	uv_process_t proc;
	int proc_init;
	int proc_running;      /* spawned and not yet reaped */
	uv_pipe_t out;         /* child's stdout and stderr, merged */
	int out_init;
	int out_eof;
	struct buf output;     /* first HEALTH_OUTPUT_MAX bytes of it */

	char rbuf[4096];       /* read buffer; one stream reads at a time */
};

static void on_timer(uv_timer_t *t);

static void probe_maybe_free(struct health_probe *p)
{
	if (p->open > 0 || p->reqs > 0)
		return;
	free(p->fail);
	free(p->host);
	free(p->target);
	free(p->path);
	buf_free(&p->req);
	buf_free(&p->rx);
	buf_free(&p->output);
	free(p);
}

static void on_close(uv_handle_t *h)
{
	struct health_probe *p = h->data;
	p->open--;
	probe_maybe_free(p);
}

static void close_handle(struct health_probe *p, uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, on_close);
}

/* Close everything. A running EXEC child is killed (its whole process group) and its handle
 * is closed by the exit callback, so the child is always reaped. */
static void probe_teardown(struct health_probe *p)
{
	uv_timer_stop(&p->timer);
	close_handle(p, (uv_handle_t *)&p->timer);
	if (p->gai_active)
		uv_cancel((uv_req_t *)&p->gai);
	if (p->tcp_init)
		close_handle(p, (uv_handle_t *)&p->tcp);
	if (p->out_init)
		close_handle(p, (uv_handle_t *)&p->out);
	if (p->proc_init) {
		if (p->proc_running) {
			/* Detached: the child leads its own process group, which takes the
			 * shell's children along. The pid cannot be reused before it is reaped. */
			kill(-p->proc.pid, SIGKILL);
			uv_process_kill(&p->proc, SIGKILL);
		} else {
			close_handle(p, (uv_handle_t *)&p->proc);
		}
	}
}

static void probe_finish(struct health_probe *p, int ok, const char *detail)
{
	if (p->done)
		return;
	p->done = 1;
	if (!p->cancelled)
		p->fn(p->arg, ok, detail);
	probe_teardown(p);
}

static void probe_finishf(struct health_probe *p, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void probe_finishf(struct health_probe *p, int ok, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	probe_finish(p, ok, buf_str(&b));
	buf_free(&b);
}

/* A failure found in health_probe_start is reported from the loop, never from inside start,
 * so the caller always has its pointer before fn runs. */
static void probe_fail_later(struct health_probe *p, char *detail)
{
	if (p->fail) {
		free(detail);
		return;
	}
	p->fail = detail;
	uv_timer_start(&p->timer, on_timer, 0, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct health_probe *p = t->data;
	if (p->fail) {
		probe_finish(p, 0, p->fail);
		return;
	}
	switch (p->kind) {
	case HEALTH_HTTP:
		probe_finishf(p, 0, "GET %s on %s: timed out after %lld ms", p->path, p->target,
			      (long long)p->timeout_ms);
		break;
	case HEALTH_TCP:
		probe_finishf(p, 0, "connect %s: timed out after %lld ms", p->target,
			      (long long)p->timeout_ms);
		break;
	default:
		probe_finishf(p, 0, "timed out after %lld ms", (long long)p->timeout_ms);
		break;
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct health_probe *p = h->data;
	*b = uv_buf_init(p->rbuf, sizeof p->rbuf);
}

/* ---- HTTP / TCP ---- */

/* Parse "HTTP/1.x NNN reason\r\n" from the start of a response, checking each byte as it
 * arrives. Returns 1 with *code when the line is complete, 0 when more bytes are needed,
 * -1 when the bytes cannot be an HTTP/1.x status line. A bare "\n" ends the line too. */
static int parse_status_line(const char *s, size_t n, int *code)
{
	static const char prefix[] = "HTTP/1.";
	size_t i;
	int c = 0;

	for (i = 0; i < sizeof prefix - 1; i++) {
		if (i >= n)
			return 0;
		if (s[i] != prefix[i])
			return -1;
	}
	if (n <= 7)
		return 0;
	if (s[7] < '0' || s[7] > '9')
		return -1;
	if (n <= 8)
		return 0;
	if (s[8] != ' ')
		return -1;
	for (i = 9; i < 12; i++) {
		if (i >= n)
			return 0;
		if (s[i] < '0' || s[i] > '9')
			return -1;
		c = c * 10 + (s[i] - '0');
	}
	if (c < 100)
		return -1;
	if (n <= 12)
		return 0;
	if (s[12] != ' ' && s[12] != '\r' && s[12] != '\n')
		return -1;
	for (i = 12; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '\n') {
			*code = c;
			return 1;
		}
		if (ch == '\r') {
			if (i + 1 >= n)
				return 0;
			if (s[i + 1] != '\n')
				return -1;
			*code = c;
			return 1;
		}
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return -1;
	}
	return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct health_probe *p = s->data;
	int code = 0, st;

	if (p->done)
		return;
	if (nread == UV_EOF) {
		if (p->rx.len == 0)
			probe_finishf(p, 0, "GET %s on %s: connection closed without a response",
				      p->path, p->target);
		else
			probe_finishf(p, 0, "GET %s on %s: connection closed inside the status line",
				      p->path, p->target);
		return;
	}
	if (nread < 0) {
		probe_finishf(p, 0, "GET %s on %s: read: %s", p->path, p->target,
			      uv_strerror((int)nread));
		return;
	}
	size_t room = HEALTH_STATUS_LINE_MAX - p->rx.len;
	buf_add(&p->rx, b->base, (size_t)nread < room ? (size_t)nread : room);
	st = parse_status_line(p->rx.p, p->rx.len, &code);
	if (st == 1)
		probe_finishf(p, code >= 200 && code <= 399, "GET %s on %s: status %d", p->path,
			      p->target, code);
	else if (st < 0)
		probe_finishf(p, 0, "GET %s on %s: not an HTTP/1.x response", p->path, p->target);
	else if (p->rx.len >= HEALTH_STATUS_LINE_MAX)
		probe_finishf(p, 0, "GET %s on %s: status line longer than %d bytes", p->path,
			      p->target, HEALTH_STATUS_LINE_MAX);
}

static void on_write(uv_write_t *w, int status)
{
	struct health_probe *p = w->data;
	if (p->done || status >= 0)
		return;
	probe_finishf(p, 0, "GET %s on %s: send: %s", p->path, p->target, uv_strerror(status));
}

static void on_connect(uv_connect_t *c, int status)
{
	struct health_probe *p = c->data;
	int r;

	if (p->done)
		return;
	if (status < 0) {
		probe_finishf(p, 0, "connect %s: %s", p->target, uv_strerror(status));
		return;
	}
	if (p->kind == HEALTH_TCP) {
		probe_finishf(p, 1, "connected to %s", p->target);
		return;
	}
	uv_buf_t b = uv_buf_init(p->req.p, (unsigned int)p->req.len);
	p->wreq.data = p;
	r = uv_write(&p->wreq, (uv_stream_t *)&p->tcp, &b, 1, on_write);
	if (r == 0)
		r = uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
	if (r < 0)
		probe_finishf(p, 0, "GET %s on %s: send: %s", p->path, p->target, uv_strerror(r));
}

static void tcp_connect(struct health_probe *p, const struct sockaddr *sa)
{
	int r;
	p->conn.data = p;
	r = uv_tcp_connect(&p->conn, &p->tcp, sa, on_connect);
	if (r < 0)
		probe_fail_later(p, xasprintf("connect %s: %s", p->target, uv_strerror(r)));
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
	struct health_probe *p = g->data;
	const struct addrinfo *ai, *pick = NULL;

	p->gai_active = 0;
	p->reqs--;
	if (p->done) {
		uv_freeaddrinfo(res);
		probe_maybe_free(p);
		return;
	}
	if (status < 0) {
		probe_finishf(p, 0, "resolve %s: %s", p->host, uv_strerror(status));
		uv_freeaddrinfo(res);
		return;
	}
	/* Instances usually listen on IPv4 (0.0.0.0 or 127.0.0.1): prefer it to ::1. */
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			pick = ai;
			break;
		}
		if (!pick && ai->ai_family == AF_INET6)
			pick = ai;
	}
	if (!pick)
		probe_finishf(p, 0, "resolve %s: no IPv4 or IPv6 address", p->host);
	else
		tcp_connect(p, pick->ai_addr);
	uv_freeaddrinfo(res);
}

static int path_valid(const char *s)
{
	if (s[0] != '/')
		return 0;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= 0x20 || ch == 0x7f)
			return 0;
	}
	return 1;
}

static void start_net(struct health_probe *p, const struct health_spec *spec, const char *host,
		      int port)
{
	struct sockaddr_storage ss;
	int r;

	p->host = xstrdup(host ? host : "127.0.0.1");
	p->port = port;
	p->target = strchr(p->host, ':') ? xasprintf("[%s]:%d", p->host, port)
					 : xasprintf("%s:%d", p->host, port);
	p->path = xstrdup(spec->path && spec->path[0] ? spec->path : "/");

	r = uv_tcp_init(p->loop, &p->tcp);
	if (r < 0) {
		probe_fail_later(p, xasprintf("connect %s: %s", p->target, uv_strerror(r)));
		return;
	}
	p->tcp.data = p;
	p->tcp_init = 1;
	p->open++;

	if (port <= 0 || port > 65535) {
		probe_fail_later(p, xasprintf("connect %s: invalid port", p->target));
		return;
	}
	if (p->kind == HEALTH_HTTP) {
		if (!path_valid(p->path)) {
			probe_fail_later(p, xasprintf("GET on %s: invalid request path", p->target));
			return;
		}
		buf_addf(&p->req,
			 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: berth-health\r\n"
			 "Connection: close\r\n\r\n",
			 p->path, p->target);
	}

	memset(&ss, 0, sizeof ss);
	if (uv_ip4_addr(p->host, port, (struct sockaddr_in *)&ss) == 0 ||
	    uv_ip6_addr(p->host, port, (struct sockaddr_in6 *)&ss) == 0) {
		tcp_connect(p, (const struct sockaddr *)&ss);
		return;
	}
	struct addrinfo hints;
	char service[16];
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof service, "%d", port);
	p->gai.data = p;
	r = uv_getaddrinfo(p->loop, &p->gai, on_resolved, p->host, service, &hints);
	if (r < 0) {
		probe_fail_later(p, xasprintf("resolve %s: %s", p->host, uv_strerror(r)));
		return;
	}
	p->gai_active = 1;
	p->reqs++;
}

/* ---- EXEC ---- */

static void on_output(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct health_probe *p = s->data;
	if (nread < 0) {
		p->out_eof = 1;
		uv_read_stop(s);
		return;
	}
	if (p->output.len < HEALTH_OUTPUT_MAX) {
		size_t room = HEALTH_OUTPUT_MAX - p->output.len;
		buf_add(&p->output, b->base, (size_t)nread < room ? (size_t)nread : room);
	}
}

/* The exit callback can run before the last output was read from the pipe: take what is
 * already there without waiting (the fd is non-blocking), so a grandchild that keeps the
 * pipe open cannot hold the result back. */
static void drain_output(struct health_probe *p)
{
	uv_os_fd_t fd;
	if (!p->out_init || p->out_eof || uv_fileno((uv_handle_t *)&p->out, &fd) < 0)
		return;
	for (;;) {
		ssize_t n = read(fd, p->rbuf, sizeof p->rbuf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (p->output.len < HEALTH_OUTPUT_MAX) {
			size_t room = HEALTH_OUTPUT_MAX - p->output.len;
			buf_add(&p->output, p->rbuf, (size_t)n < room ? (size_t)n : room);
		}
	}
}

/* ": output" with control characters turned into spaces and runs of space folded, or "". */
static void add_output(struct buf *d, const struct buf *out)
{
	size_t i, start = d->len;
	int space = 1;
	buf_adds(d, ": ");
	for (i = 0; i < out->len; i++) {
		unsigned char ch = (unsigned char)out->p[i];
		if (ch < 0x20 || ch == 0x7f || ch == ' ') {
			if (!space)
				buf_addc(d, ' ');
			space = 1;
		} else {
			buf_addc(d, (char)ch);
			space = 0;
		}
	}
	while (d->len > start + 2 && d->p[d->len - 1] == ' ')
		d->p[--d->len] = 0;
	if (d->len == start + 2) {
		d->len = start;
		d->p[start] = 0;
	}
}

static void on_proc_exit(uv_process_t *h, int64_t status, int sig)
{
	struct health_probe *p = h->data;
	struct buf d = BUF_INIT;

	p->proc_running = 0;
	/* Whatever the check left in its process group goes with it: a probe runs every
	 * interval, and leftovers would pile up. The group id cannot be reused while any
	 * member lives, so this reaches only the check's own children. */
	if (h->pid > 0)
		kill(-h->pid, SIGKILL);
	if (p->done) {
		close_handle(p, (uv_handle_t *)h);
		return;
	}
	drain_output(p);
	if (sig)
		buf_addf(&d, "killed by signal %d (%s)", sig, strsignal(sig));
	else
		buf_addf(&d, "exit status %lld", (long long)status);
	if (sig || status != 0)
		add_output(&d, &p->output);
	probe_finish(p, !sig && status == 0, buf_str(&d));
	buf_free(&d);
}

static void start_exec(struct health_probe *p, const struct health_spec *spec, const char *cwd,
		       char *const *env)
{
	uv_process_options_t o;
	uv_stdio_container_t stdio[3];
	uv_file fds[2];
	char sh[] = "/bin/sh", dash_c[] = "-c";
	char *args[4];
	int r;

	if (!spec->command || !spec->command[0]) {
		probe_fail_later(p, xstrdup("exec probe has no command"));
		return;
	}
	r = uv_pipe(fds, 0, 0);
	if (r < 0) {
		probe_fail_later(p, xasprintf("exec: pipe: %s", uv_strerror(r)));
		return;
	}
	uv_pipe_init(p->loop, &p->out, 0);
	p->out.data = p;
	p->out_init = 1;
	p->open++;
	r = uv_pipe_open(&p->out, fds[0]);
	if (r < 0) {
		close(fds[0]);
		close(fds[1]);
		probe_fail_later(p, xasprintf("exec: pipe: %s", uv_strerror(r)));
		return;
	}

	args[0] = sh;
	args[1] = dash_c;
	args[2] = spec->command;
	args[3] = NULL;
	memset(&o, 0, sizeof o);
	memset(stdio, 0, sizeof stdio);
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = fds[1];
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = fds[1];
	o.file = sh;
	o.args = args;
	o.env = (char **)env;   /* only read, and only during uv_spawn */
	o.cwd = cwd;
	o.flags = UV_PROCESS_DETACHED;
	o.stdio = stdio;
	o.stdio_count = 3;
	o.exit_cb = on_proc_exit;

	p->proc.data = p;
	r = uv_spawn(p->loop, &p->proc, &o);
	close(fds[1]);
	p->proc_init = 1;   /* a failed spawn still leaves a handle to close */
	p->open++;
	if (r < 0) {
		probe_fail_later(p, xasprintf("exec: start /bin/sh in %s: %s", cwd ? cwd : ".",
					      uv_strerror(r)));
		return;
	}
	p->proc_running = 1;
	uv_read_start((uv_stream_t *)&p->out, on_alloc, on_output);
}

struct health_probe *health_probe_start(uv_loop_t *loop, const struct health_spec *spec,
					const char *host, int port, const char *cwd,
					char *const *env, health_done_fn fn, void *arg)
{
	struct health_probe *p;

	if (spec->kind != HEALTH_HTTP && spec->kind != HEALTH_TCP && spec->kind != HEALTH_EXEC)
		return NULL;
	p = xcalloc(1, sizeof *p);
	p->loop = loop;
	p->kind = spec->kind;
	p->fn = fn;
	p->arg = arg;
	p->timeout_ms = spec->timeout_ms > 0 ? spec->timeout_ms : HEALTH_DEFAULT_TIMEOUT_MS;

	uv_timer_init(loop, &p->timer);
	p->timer.data = p;
	p->open++;
	uv_timer_start(&p->timer, on_timer, (uint64_t)p->timeout_ms, 0);

	if (spec->kind == HEALTH_EXEC)
		start_exec(p, spec, cwd, env);
	else
		start_net(p, spec, host, port);
	return p;
}

void health_probe_cancel(struct health_probe *p)
{
	if (!p || p->done)
		return;
	p->cancelled = 1;
	p->done = 1;
	probe_teardown(p);
}
