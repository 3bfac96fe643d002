/* Tests for supervise/health: HTTP, TCP and EXEC probes against a small libuv TCP server
 * running on the same loop (answers 200, 500, 301, never answers, closes, sends garbage,
 * dribbles its status line), a refused port, shell commands, timeouts and cancellation.
 * Every test ends with uv_loop_close() == 0: all handles of the probe were closed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "supervise/health.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/timeutil.h"

/* ---- a tiny HTTP-ish server on the test loop ---- */

enum srv_mode {
	SRV_200, SRV_500, SRV_301, SRV_SILENT, SRV_CLOSE_NOW, SRV_CLOSE_AFTER_READ,
	SRV_GARBAGE, SRV_SPLIT, SRV_LONG_LINE,
};

struct conn;

struct server {
	uv_tcp_t tcp;
	int port;
	enum srv_mode mode;
	int requests;          /* complete requests received */
	struct buf first_req;  /* bytes of the first request */
	struct conn *conns;
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;      /* SRV_SPLIT: sends the next piece */
	int step;
	int open;
	struct server *srv;
	struct buf in;
	struct buf out;        /* SRV_LONG_LINE response, alive until closed */
	uv_write_t w[4];
	int nw;
	int answered;
	struct conn *next;
};

static char long_line[2100];

static void conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->open == 0) {
		buf_free(&c->in);
		buf_free(&c->out);
		free(c);
	}
}

static void conn_close(struct conn *c)
{
	struct conn **pp;
	for (pp = &c->srv->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, conn_closed);
	if (!uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void after_last_write(uv_write_t *w, int status)
{
	conn_close(w->data);
}

static void after_write(uv_write_t *w, int status)
{
}

static void conn_send(struct conn *c, const char *s, size_t n, int last)
{
	uv_buf_t b = uv_buf_init((char *)s, (unsigned int)n);
	uv_write_t *w = &c->w[c->nw++];
	w->data = c;
	assert_int_equal(uv_write(w, (uv_stream_t *)&c->tcp, &b, 1,
				  last ? after_last_write : after_write), 0);
}

static void split_step(uv_timer_t *t)
{
	static const char *pieces[] = {"HTT", "P/1.0 204 No", " Content\r", "\n\r\n"};
	struct conn *c = t->data;
	conn_send(c, pieces[c->step], strlen(pieces[c->step]), c->step == 3);
	if (++c->step < 4)
		uv_timer_start(&c->timer, split_step, 20, 0);
}

static void conn_answer(struct conn *c)
{
	static const char r200[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	static const char r500[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
	static const char r301[] = "HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\n\r\n";
	static const char garbage[] = "SSH-2.0-OpenSSH_9.2p1\r\n";

	switch (c->srv->mode) {
	case SRV_200: conn_send(c, r200, sizeof r200 - 1, 1); break;
	case SRV_500: conn_send(c, r500, sizeof r500 - 1, 1); break;
	case SRV_301: conn_send(c, r301, sizeof r301 - 1, 1); break;
	case SRV_GARBAGE: conn_send(c, garbage, sizeof garbage - 1, 1); break;
	case SRV_CLOSE_AFTER_READ: conn_close(c); break;
	case SRV_SPLIT: split_step(&c->timer); break;
	case SRV_LONG_LINE:
		buf_adds(&c->out, "HTTP/1.1 200 ");
		buf_adds(&c->out, long_line);
		buf_adds(&c->out, "\r\n\r\n");
		conn_send(c, c->out.p, c->out.len, 1);
		break;
	default: break;   /* SRV_SILENT */
	}
}

static void srv_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
	*b = uv_buf_init(malloc(n), (unsigned int)n);
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = s->data;
	if (n > 0)
		buf_add(&c->in, b->base, (size_t)n);
	free(b->base);
	if (n < 0) {
		conn_close(c);
		return;
	}
	if (!c->answered && c->in.p && strstr(c->in.p, "\r\n\r\n")) {
		c->answered = 1;
		if (c->srv->requests++ == 0)
			buf_add(&c->srv->first_req, c->in.p, c->in.len);
		uv_read_stop(s);
		conn_answer(c);
	}
}

static void on_conn(uv_stream_t *l, int status)
{
	struct server *srv = l->data;
	struct conn *c = calloc(1, sizeof *c);
	assert_int_equal(status, 0);
	c->srv = srv;
	uv_tcp_init(l->loop, &c->tcp);
	uv_timer_init(l->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->open = 2;
	c->next = srv->conns;
	srv->conns = c;
	assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
	if (srv->mode == SRV_CLOSE_NOW)
		conn_close(c);
	else
		uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, conn_read);
}

static int tcp_port(uv_tcp_t *t)
{
	struct sockaddr_in sin;
	int len = sizeof sin;
	assert_int_equal(uv_tcp_getsockname(t, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static void server_start(uv_loop_t *loop, struct server *srv, enum srv_mode mode)
{
	struct sockaddr_in sin;
	memset(srv, 0, sizeof *srv);
	srv->mode = mode;
	uv_ip4_addr("127.0.0.1", 0, &sin);
	uv_tcp_init(loop, &srv->tcp);
	srv->tcp.data = srv;
	assert_int_equal(uv_tcp_bind(&srv->tcp, (struct sockaddr *)&sin, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&srv->tcp, 16, on_conn), 0);
	srv->port = tcp_port(&srv->tcp);
}

static void server_stop(struct server *srv)
{
	while (srv->conns)
		conn_close(srv->conns);
	uv_close((uv_handle_t *)&srv->tcp, NULL);
}

/* ---- probe results and loop helpers ---- */

struct result {
	int called;
	int ok;
	char detail[1024];
};

static void on_done(void *arg, int ok, const char *detail)
{
	struct result *r = arg;
	r->called++;
	r->ok = ok;
	snprintf(r->detail, sizeof r->detail, "%s", detail);
}

static void run_until_done(uv_loop_t *loop, struct result *r)
{
	int64_t deadline = time_mono_ms() + 10000;
	while (!r->called && time_mono_ms() < deadline)
		uv_run(loop, UV_RUN_ONCE);
	assert_int_equal(r->called, 1);
}

/* Run until nothing is left, then check that every handle was closed. */
static void finish_loop(uv_loop_t *loop)
{
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
}

static struct health_spec http_spec(const char *path, int64_t timeout_ms)
{
	struct health_spec s;
	memset(&s, 0, sizeof s);
	s.kind = HEALTH_HTTP;
	s.path = (char *)path;
	s.timeout_ms = timeout_ms;
	return s;
}

static struct result http_probe(enum srv_mode mode, int64_t timeout_ms, struct server *srv)
{
	uv_loop_t loop;
	struct result r = {0};
	struct health_spec s = http_spec("/healthz", timeout_ms);
	uv_loop_init(&loop);
	server_start(&loop, srv, mode);
	assert_non_null(health_probe_start(&loop, &s, "127.0.0.1", srv->port, NULL, NULL,
					   on_done, &r));
	run_until_done(&loop, &r);
	server_stop(srv);
	finish_loop(&loop);
	assert_int_equal(r.called, 1);
	return r;
}

static void expect_detail(const struct result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void expect_detail(const struct result *r, const char *fmt, ...)
{
	char want[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(want, sizeof want, fmt, ap);
	va_end(ap);
	assert_string_equal(r->detail, want);
}

/* ---- HTTP ---- */

static void test_http_200(void **state)
{
	struct server srv;
	struct result r = http_probe(SRV_200, 1000, &srv);
	char want[256];
	assert_int_equal(r.ok, 1);
	expect_detail(&r, "GET /healthz on 127.0.0.1:%d: status 200", srv.port);
	snprintf(want, sizeof want,
		 "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: berth-health\r\n"
		 "Connection: close\r\n\r\n", srv.port);
	assert_string_equal(buf_str(&srv.first_req), want);
	buf_free(&srv.first_req);
}

static void test_http_500(void **state)
{
	struct server srv;
	struct result r = http_probe(SRV_500, 1000, &srv);
	assert_int_equal(r.ok, 0);
	expect_detail(&r, "GET /healthz on 127.0.0.1:%d: status 500", srv.port);
	buf_free(&srv.first_req);
}

static void test_http_redirect_is_healthy(void **state)
{
	struct server srv;
	struct result r = http_probe(SRV_301, 1000, &srv);
	assert_int_equal(r.ok, 1);
	expect_detail(&r, "GET /healthz on 127.0.0.1:%d: status 301", srv.port);
	buf_free(&srv.first_req);
}

static void test_http_status_line_in_pieces(void **state)
{
	struct server srv;
	struct result r = http_probe(SRV_SPLIT, 2000, &srv);
	assert_int_equal(r.ok, 1);
	expect_detail(&r, "GET /healthz on 127.0.0.1:%d: status 204", srv.port);
	buf_free(&srv.first_req);
}

static void test_http_silent_server_times_out(void **state)
{
	struct server srv;
	int64_t t0 = time_mono_ms();
	struct result r = http_probe(SRV_SILENT, 200, &srv);
	int64_t took = time_mono_ms() - t0;
	assert_int_equal(r.ok, 0);
	expect_detail(&r, "GET /healthz on 127.0.0.1:%d: timed out after 200 ms", srv.port);
	assert_true(took >= 190 && took < 2000);
	assert_int_equal(srv.requests, 1);
	buf_free(&srv.first_req);
}

static void test_http_closed_after_request(void **state)
{
	struct server srv;
	struct result r = http_probe(SRV_CLOSE_AFTER_READ, 1000, &srv);
	assert_int_equal(r.ok, 0);
	expect_detail(&r, "GET /healthz on 127.0.0.1:%d: connection closed without a response",
		      srv.port);
	buf_free(&srv.first_req);
}

static void test_http_closed_at_once(void **state)
{
	struct server srv;
	char prefix[64];
	struct result r = http_probe(SRV_CLOSE_NOW, 1000, &srv);
	assert_int_equal(r.ok, 0);
	/* FIN or RST depending on whether the request had arrived: either way a failure
	 * naming the request, never a timeout. */
	snprintf(prefix, sizeof prefix, "GET /healthz on 127.0.0.1:%d: ", srv.port);
	assert_memory_equal(r.detail, prefix, strlen(prefix));
	assert_null(strstr(r.detail, "timed out"));
}

static void test_http_garbage(void **state)
{
	struct server srv;
	struct result r = http_probe(SRV_GARBAGE, 1000, &srv);
	assert_int_equal(r.ok, 0);
	expect_detail(&r, "GET /healthz on 127.0.0.1:%d: not an HTTP/1.x response", srv.port);
	buf_free(&srv.first_req);
}

static void test_http_long_status_line(void **state)
{
	struct server srv;
	memset(long_line, 'x', sizeof long_line - 1);
	struct result r = http_probe(SRV_LONG_LINE, 1000, &srv);
	assert_int_equal(r.ok, 0);
	expect_detail(&r, "GET /healthz on 127.0.0.1:%d: status line longer than 1024 bytes",
		      srv.port);
	buf_free(&srv.first_req);
}

/* A port nothing listens on: bind one, note it, close it. */
static int free_port(void)
{
	uv_loop_t loop;
	uv_tcp_t t;
	struct sockaddr_in sin;
	int port;
	uv_loop_init(&loop);
	uv_ip4_addr("127.0.0.1", 0, &sin);
	uv_tcp_init(&loop, &t);
	assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&sin, 0), 0);
	port = tcp_port(&t);
	uv_close((uv_handle_t *)&t, NULL);
	finish_loop(&loop);
	return port;
}

static void test_http_refused(void **state)
{
	uv_loop_t loop;
	struct result r = {0};
	struct health_spec s = http_spec("/healthz", 1000);
	int port = free_port();
	uv_loop_init(&loop);
	assert_non_null(health_probe_start(&loop, &s, "127.0.0.1", port, NULL, NULL, on_done, &r));
	run_until_done(&loop, &r);
	finish_loop(&loop);
	assert_int_equal(r.ok, 0);
	expect_detail(&r, "connect 127.0.0.1:%d: connection refused", port);
}

static void test_http_bad_path_never_sent(void **state)
{
	uv_loop_t loop;
	struct result r = {0};
	struct health_spec s = http_spec("/x HTTP/1.1\r\nX-Evil: 1", 1000);
	uv_loop_init(&loop);
	/* Reported from the loop, not from inside start. */
	assert_non_null(health_probe_start(&loop, &s, "127.0.0.1", 9, NULL, NULL, on_done, &r));
	assert_int_equal(r.called, 0);
	run_until_done(&loop, &r);
	finish_loop(&loop);
	assert_int_equal(r.ok, 0);
	assert_string_equal(r.detail, "GET on 127.0.0.1:9: invalid request path");
}

static void test_http_by_name(void **state)
{
	uv_loop_t loop;
	struct server srv;
	struct result r = {0};
	struct health_spec s = http_spec("/", 2000);
	uv_loop_init(&loop);
	server_start(&loop, &srv, SRV_200);
	assert_non_null(health_probe_start(&loop, &s, "localhost", srv.port, NULL, NULL,
					   on_done, &r));
	run_until_done(&loop, &r);
	server_stop(&srv);
	finish_loop(&loop);
	assert_int_equal(r.ok, 1);
	expect_detail(&r, "GET / on localhost:%d: status 200", srv.port);
	buf_free(&srv.first_req);
}

/* ---- TCP ---- */

static void test_tcp_connects(void **state)
{
	uv_loop_t loop;
	struct server srv;
	struct result r = {0};
	struct health_spec s = {.kind = HEALTH_TCP, .timeout_ms = 1000};
	uv_loop_init(&loop);
	server_start(&loop, &srv, SRV_SILENT);
	assert_non_null(health_probe_start(&loop, &s, "127.0.0.1", srv.port, NULL, NULL,
					   on_done, &r));
	run_until_done(&loop, &r);
	server_stop(&srv);
	finish_loop(&loop);
	assert_int_equal(r.ok, 1);
	expect_detail(&r, "connected to 127.0.0.1:%d", srv.port);
}

static void test_tcp_refused(void **state)
{
	uv_loop_t loop;
	struct result r = {0};
	struct health_spec s = {.kind = HEALTH_TCP, .timeout_ms = 1000};
	int port = free_port();
	uv_loop_init(&loop);
	assert_non_null(health_probe_start(&loop, &s, "127.0.0.1", port, NULL, NULL, on_done, &r));
	run_until_done(&loop, &r);
	finish_loop(&loop);
	assert_int_equal(r.ok, 0);
	expect_detail(&r, "connect 127.0.0.1:%d: connection refused", port);
}

static void test_none_has_no_probe(void **state)
{
	uv_loop_t loop;
	struct result r = {0};
	struct health_spec s = {.kind = HEALTH_NONE};
	uv_loop_init(&loop);
	assert_null(health_probe_start(&loop, &s, "127.0.0.1", 80, NULL, NULL, on_done, &r));
	finish_loop(&loop);
	assert_int_equal(r.called, 0);
}

/* ---- EXEC ---- */

static struct result exec_probe(const char *cmd, int64_t timeout_ms, const char *cwd,
				char *const *env)
{
	uv_loop_t loop;
	struct result r = {0};
	struct health_spec s = {.kind = HEALTH_EXEC, .command = (char *)cmd,
				.timeout_ms = timeout_ms};
	uv_loop_init(&loop);
	assert_non_null(health_probe_start(&loop, &s, NULL, 0, cwd, env, on_done, &r));
	run_until_done(&loop, &r);
	finish_loop(&loop);
	return r;
}

static void test_exec_true(void **state)
{
	struct result r = exec_probe("true", 2000, NULL, NULL);
	assert_int_equal(r.ok, 1);
	assert_string_equal(r.detail, "exit status 0");
}

static void test_exec_false(void **state)
{
	struct result r = exec_probe("false", 2000, NULL, NULL);
	assert_int_equal(r.ok, 0);
	assert_string_equal(r.detail, "exit status 1");
}

static void test_exec_output_in_detail(void **state)
{
	struct result r = exec_probe("echo 'db  down' >&2; echo second line; exit 3", 2000, NULL,
				     NULL);
	assert_int_equal(r.ok, 0);
	assert_string_equal(r.detail, "exit status 3: db down second line");
}

static void test_exec_output_bounded(void **state)
{
	/* 100 KB of output: drained (the child is not stuck on a full pipe), 512 kept. */
	struct result r = exec_probe("head -c 100000 /dev/zero | tr '\\0' a; exit 2", 2000,
				     NULL, NULL);
	assert_int_equal(r.ok, 0);
	assert_int_equal(strlen(r.detail), strlen("exit status 2: ") + 512);
}

static void test_exec_cwd_and_env(void **state)
{
	char dir[] = "/tmp/berth-health-XXXXXX";
	struct buf marker = BUF_INIT;
	struct err e = ERR_INIT;
	char *good[] = {"PROBE_VAR=yes", "PATH=/usr/bin:/bin", NULL};
	char *bad[] = {"PROBE_VAR=no", "PATH=/usr/bin:/bin", NULL};
	const char *cmd = "test -f marker && test \"$PROBE_VAR\" = yes";

	assert_non_null(mkdtemp(dir));
	buf_addf(&marker, "%s/marker", dir);
	assert_int_equal(fs_write_atomic(marker.p, "x", 1, 0644, &e), 0);
	struct result r = exec_probe(cmd, 2000, dir, good);
	assert_int_equal(r.ok, 1);
	r = exec_probe(cmd, 2000, dir, bad);
	assert_int_equal(r.ok, 0);
	assert_string_equal(r.detail, "exit status 1");
	r = exec_probe(cmd, 2000, "/", good);
	assert_int_equal(r.ok, 0);
	assert_int_equal(fs_rm_rf(dir, &e), 0);
	buf_free(&marker);
}

static void test_exec_missing_cwd(void **state)
{
	struct result r = exec_probe("true", 2000, "/nonexistent/berth-dir", NULL);
	assert_int_equal(r.ok, 0);
	assert_string_equal(r.detail,
			    "exec: start /bin/sh in /nonexistent/berth-dir: no such file or directory");
}

static pid_t read_pid(const char *path)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	pid_t pid = 0;
	if (fs_read_file(path, &b, 64, &e) == 0)
		pid = (pid_t)atoi(buf_str(&b));
	buf_free(&b);
	return pid;
}

/* Gone or a zombie waiting for its reaper (grandchildren go to init, which may be slow). */
static int process_dead(pid_t pid)
{
	char path[64];
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	int dead = 1;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (fs_read_file(path, &b, 4096, &e) == 0) {
		const char *rp = strrchr(buf_str(&b), ')');
		dead = rp && (rp[2] == 'Z' || rp[2] == 'X');
	}
	buf_free(&b);
	return dead;
}

static void wait_dead(pid_t pid)
{
	int64_t deadline = time_mono_ms() + 2000;
	while (!process_dead(pid) && time_mono_ms() < deadline)
		usleep(10000);
	assert_true(process_dead(pid));
}

static void test_exec_timeout_kills_group(void **state)
{
	char dir[] = "/tmp/berth-health-XXXXXX";
	struct err e = ERR_INIT;
	char *shpid, *bgpid, *cmd;
	assert_non_null(mkdtemp(dir));
	shpid = xasprintf("%s/sh.pid", dir);
	bgpid = xasprintf("%s/bg.pid", dir);
	/* The shell and a background child both outlive the timeout unless the whole
	 * process group is killed. */
	cmd = xasprintf("echo $$ > %s; sleep 30 & echo $! > %s; wait", shpid, bgpid);

	int64_t t0 = time_mono_ms();
	struct result r = exec_probe(cmd, 300, NULL, NULL);
	int64_t took = time_mono_ms() - t0;
	assert_int_equal(r.ok, 0);
	assert_string_equal(r.detail, "timed out after 300 ms");
	assert_true(took >= 290 && took < 3000);
	pid_t a = read_pid(shpid), b = read_pid(bgpid);
	assert_true(a > 0 && b > 0);
	wait_dead(a);
	wait_dead(b);
	assert_int_equal(fs_rm_rf(dir, &e), 0);
	free(shpid);
	free(bgpid);
	free(cmd);
}

static void test_exec_background_child_does_not_hold_result(void **state)
{
	/* The grandchild keeps the output pipe open; the probe still ends when sh exits. */
	int64_t t0 = time_mono_ms();
	struct result r = exec_probe("sleep 2 & echo started; exit 4", 5000, NULL, NULL);
	assert_int_equal(r.ok, 0);
	assert_string_equal(r.detail, "exit status 4: started");
	assert_true(time_mono_ms() - t0 < 1500);
}

/* ---- cancel ---- */

static void test_cancel_before_connect(void **state)
{
	uv_loop_t loop;
	struct server srv;
	struct result r = {0};
	struct health_spec s = http_spec("/healthz", 1000);
	uv_loop_init(&loop);
	server_start(&loop, &srv, SRV_200);
	struct health_probe *p = health_probe_start(&loop, &s, "127.0.0.1", srv.port, NULL, NULL,
						    on_done, &r);
	assert_non_null(p);
	health_probe_cancel(p);
	uv_run(&loop, UV_RUN_NOWAIT);
	server_stop(&srv);
	finish_loop(&loop);
	assert_int_equal(r.called, 0);
	buf_free(&srv.first_req);
}

static void test_cancel_while_waiting_for_response(void **state)
{
	uv_loop_t loop;
	struct server srv;
	struct result r = {0};
	struct health_spec s = http_spec("/healthz", 300);
	int64_t deadline = time_mono_ms() + 5000;
	uv_loop_init(&loop);
	server_start(&loop, &srv, SRV_SILENT);
	struct health_probe *p = health_probe_start(&loop, &s, "127.0.0.1", srv.port, NULL, NULL,
						    on_done, &r);
	while (srv.requests == 0 && time_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(srv.requests, 1);
	assert_int_equal(r.called, 0);
	health_probe_cancel(p);
	server_stop(&srv);
	finish_loop(&loop);   /* past the 300 ms timeout: the timer is gone too */
	assert_int_equal(r.called, 0);
	buf_free(&srv.first_req);
}

static void test_cancel_during_resolve(void **state)
{
	uv_loop_t loop;
	struct result r = {0};
	struct health_spec s = {.kind = HEALTH_TCP, .timeout_ms = 1000};
	uv_loop_init(&loop);
	struct health_probe *p = health_probe_start(&loop, &s, "localhost", 9, NULL, NULL,
						    on_done, &r);
	health_probe_cancel(p);
	health_probe_cancel(NULL);
	finish_loop(&loop);
	assert_int_equal(r.called, 0);
}

static void test_cancel_exec_kills_child(void **state)
{
	uv_loop_t loop;
	struct result r = {0};
	char dir[] = "/tmp/berth-health-XXXXXX";
	struct err e = ERR_INIT;
	assert_non_null(mkdtemp(dir));
	char *pidf = xasprintf("%s/sh.pid", dir);
	char *cmd = xasprintf("echo $$ > %s.tmp && mv %s.tmp %s; sleep 30", pidf, pidf, pidf);
	struct health_spec s = {.kind = HEALTH_EXEC, .command = cmd, .timeout_ms = 10000};
	uv_loop_init(&loop);
	struct health_probe *p = health_probe_start(&loop, &s, NULL, 0, NULL, NULL, on_done, &r);
	int64_t deadline = time_mono_ms() + 5000;
	while (!fs_exists(pidf) && time_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
	pid_t pid = read_pid(pidf);
	assert_true(pid > 0);
	health_probe_cancel(p);
	int64_t t0 = time_mono_ms();
	finish_loop(&loop);
	assert_true(time_mono_ms() - t0 < 2000);
	assert_int_equal(r.called, 0);
	wait_dead(pid);
	assert_int_equal(fs_rm_rf(dir, &e), 0);
	free(pidf);
	free(cmd);
}

static void cancel_self(void *arg, int ok, const char *detail)
{
	struct health_probe **pp = arg;
	/* Cancelling from inside the callback is harmless: the probe is already finishing. */
	health_probe_cancel(*pp);
	*pp = NULL;
}

static void test_cancel_inside_callback(void **state)
{
	uv_loop_t loop;
	struct health_spec s = {.kind = HEALTH_EXEC, .command = "true", .timeout_ms = 2000};
	struct health_probe *p;
	uv_loop_init(&loop);
	p = health_probe_start(&loop, &s, NULL, 0, NULL, NULL, cancel_self, &p);
	finish_loop(&loop);
	assert_null(p);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_200),
		cmocka_unit_test(test_http_500),
		cmocka_unit_test(test_http_redirect_is_healthy),
		cmocka_unit_test(test_http_status_line_in_pieces),
		cmocka_unit_test(test_http_silent_server_times_out),
		cmocka_unit_test(test_http_closed_after_request),
		cmocka_unit_test(test_http_closed_at_once),
		cmocka_unit_test(test_http_garbage),
		cmocka_unit_test(test_http_long_status_line),
		cmocka_unit_test(test_http_refused),
		cmocka_unit_test(test_http_bad_path_never_sent),
		cmocka_unit_test(test_http_by_name),
		cmocka_unit_test(test_tcp_connects),
		cmocka_unit_test(test_tcp_refused),
		cmocka_unit_test(test_none_has_no_probe),
		cmocka_unit_test(test_exec_true),
		cmocka_unit_test(test_exec_false),
		cmocka_unit_test(test_exec_output_in_detail),
		cmocka_unit_test(test_exec_output_bounded),
		cmocka_unit_test(test_exec_cwd_and_env),
		cmocka_unit_test(test_exec_missing_cwd),
		cmocka_unit_test(test_exec_timeout_kills_group),
		cmocka_unit_test(test_exec_background_child_does_not_hold_result),
		cmocka_unit_test(test_cancel_before_connect),
		cmocka_unit_test(test_cancel_while_waiting_for_response),
		cmocka_unit_test(test_cancel_during_resolve),
		cmocka_unit_test(test_cancel_exec_kills_child),
		cmocka_unit_test(test_cancel_inside_callback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
