/* Tests for alerts: webhooks delivered to a real HTTP server on 127.0.0.1 (a small socket
 * server on its own thread that records each request and answers from a script): payload
 * fields and the Slack "text", null fields, per-env webhooks, retry after a 500 then success,
 * exponential backoff and giving up, no retry on 4xx, refused connections, secrets kept out
 * of the log, the rate limit with its "(N suppressed)" flush and recovery, the bounded queue
 * dropping the oldest, shutdown with a hung webhook within about a second, and the
 * berth_alerts_total metric. Each test ends with uv_loop_close() == 0. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "alerts/alerts.h"
#include "metrics/metrics.h"
#include "util/buf.h"
#include "util/timeutil.h"

/* ---- a webhook receiver ---- */

#define MAXREQ 64

struct hook_req {
	char path[256];
	char ctype[128];
	char *body;
	int64_t at_ms;
};

struct hook_srv {
	int fd, port;
	int stop_pipe[2];
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hook_req reqs[MAXREQ];
	int nreq;
	int script[MAXREQ];      /* status for the i-th request; 0 = default_status */
	int default_status;
	bool hold;               /* do not answer until released (or stopped) */
	bool released, stopping;
};

/* Read until the request is complete (headers + Content-Length body) or the peer/stop ends it. */
static int read_request(struct hook_srv *s, int c, struct buf *in)
{
	for (;;) {
		const char *hend = in->p ? strstr(in->p, "\r\n\r\n") : NULL;
		if (hend) {
			const char *cl = strcasestr(in->p, "\r\ncontent-length:");
			size_t want = cl && cl < hend ? (size_t)atol(cl + 17) : 0;
			if (in->len >= (size_t)(hend + 4 - in->p) + want)
				return 0;
		}
		struct pollfd pf[2] = {{c, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
		if (poll(pf, 2, 5000) <= 0 || pf[1].revents)
			return -1;
		char tmp[4096];
		ssize_t n = read(c, tmp, sizeof tmp);
		if (n <= 0)
			return -1;
		buf_add(in, tmp, (size_t)n);
	}
}

static void *srv_main(void *arg)
{
	struct hook_srv *s = arg;
	for (;;) {
		struct pollfd pf[2] = {{s->fd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		int c = accept(s->fd, NULL, NULL);
		if (c < 0)
			continue;
		struct buf in = BUF_INIT;
		if (read_request(s, c, &in) < 0) {
			buf_free(&in);
			close(c);
			continue;
		}
		pthread_mutex_lock(&s->mu);
		int i = s->nreq;
		struct hook_req *r = &s->reqs[i < MAXREQ ? i : MAXREQ - 1];
		sscanf(in.p, "POST %255s", r->path);
		const char *ct = strcasestr(in.p, "\r\ncontent-type:");
		if (ct)
			sscanf(ct + 15, " %127[^\r]", r->ctype);
		free(r->body);
		r->body = xstrdup(strstr(in.p, "\r\n\r\n") + 4);
		r->at_ms = time_mono_ms();
		if (s->nreq < MAXREQ)
			s->nreq++;
		int status = i < MAXREQ && s->script[i] ? s->script[i] : s->default_status;
		pthread_cond_broadcast(&s->cv);
		while (s->hold && !s->released && !s->stopping)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
		char resp[128];
		int n = snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
				 status);
		ssize_t w = send(c, resp, (size_t)n, MSG_NOSIGNAL);   /* the client may be gone */
		(void)w;
		buf_free(&in);
		close(c);
	}
	return NULL;
}

static struct hook_srv *srv_start(int default_status)
{
	struct hook_srv *s = xcalloc(1, sizeof *s);
	s->default_status = default_status;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(s->fd, 64), 0);
	socklen_t len = sizeof sa;
	getsockname(s->fd, (struct sockaddr *)&sa, &len);
	s->port = ntohs(sa.sin_port);
	assert_int_equal(pipe(s->stop_pipe), 0);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
	return s;
}

static void srv_release(struct hook_srv *s)
{
	pthread_mutex_lock(&s->mu);
	s->released = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void srv_stop(struct hook_srv *s)
{
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	ssize_t w = write(s->stop_pipe[1], "x", 1);
	(void)w;
	pthread_join(s->th, NULL);
	close(s->fd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	for (int i = 0; i < MAXREQ; i++)
		free(s->reqs[i].body);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

static int srv_count(struct hook_srv *s)
{
	pthread_mutex_lock(&s->mu);
	int n = s->nreq;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static char *srv_url(struct hook_srv *s, const char *path)
{
	return xasprintf("http://127.0.0.1:%d%s", s->port, path);
}

/* ---- loop helpers ---- */

/* Run the loop (for the rate-limit timer) for ms. */
static void pump(uv_loop_t *loop, int64_t ms)
{
	int64_t end = time_mono_ms() + ms;
	while (time_mono_ms() < end) {
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(2000);
	}
}

/* Pump until the server has n requests; fails after timeout_ms. */
static void wait_reqs(uv_loop_t *loop, struct hook_srv *s, int n, int64_t timeout_ms)
{
	int64_t end = time_mono_ms() + timeout_ms;
	while (srv_count(s) < n) {
		if (time_mono_ms() > end)
			fail_msg("expected %d webhook requests, got %d", n, srv_count(s));
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(2000);
	}
}

/* Pump until the delivery totals settle at sent + failed + dropped >= n. */
static void wait_done(uv_loop_t *loop, struct alerts *a, uint64_t n, int64_t timeout_ms, struct alerts_stats *st)
{
	int64_t end = time_mono_ms() + timeout_ms;
	for (;;) {
		alerts_stats(a, st);
		if (st->sent + st->failed + st->dropped >= n)
			return;
		if (time_mono_ms() > end)
			fail_msg("deliveries not done: sent %llu failed %llu dropped %llu, want %llu",
				 (unsigned long long)st->sent, (unsigned long long)st->failed,
				 (unsigned long long)st->dropped, (unsigned long long)n);
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(2000);
	}
}

static void finish(uv_loop_t *loop, struct alerts *a)
{
	alerts_free(a);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
}

static json_t *body_json(struct hook_srv *s, int i)
{
	json_error_t je;
	json_t *j = json_loads(s->reqs[i].body, 0, &je);
	if (!j)
		fail_msg("request %d: not JSON (%s): %s", i, je.text, s->reqs[i].body);
	return j;
}

static const char *jstr(json_t *j, const char *k)
{
	return json_string_value(json_object_get(j, k));
}

/* ---- tests ---- */

static void test_payload(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct hook_srv *s = srv_start(200);
	char *url = srv_url(s, "/services/T000/B000/SECRETTOKEN?x=1");
	const char *urls[] = {url};
	struct alerts_conf c = {.server = "box-1", .urls = urls, .nurls = 1};
	struct err e = ERR_INIT;
	struct alerts *a = alerts_new(&loop, &c, &e);
	assert_non_null(a);
	int64_t before = time_now_us();
	alerts_emit(a, ALERT_CRASH_LOOP, "production", "shop", "web", "web.1",
		    "exited 5 times in 60 s: exit status 1 <&>");
	alerts_emitf(a, ALERT_DEPLOY_FAILED, "staging", "shop", NULL, NULL, "v%d: health check %s", 12,
		     "timed out");
	struct alerts_stats st;
	wait_done(&loop, a, 2, 5000, &st);
	assert_int_equal(st.sent, 2);
	assert_int_equal(st.emitted, 2);
	assert_int_equal(srv_count(s), 2);

	/* Deliveries are concurrent: find each by kind. */
	for (int i = 0; i < 2; i++) {
		assert_string_equal(s->reqs[i].path, "/services/T000/B000/SECRETTOKEN?x=1");
		assert_string_equal(s->reqs[i].ctype, "application/json");
		json_t *j = body_json(s, i);
		assert_string_equal(jstr(j, "server"), "box-1");
		int64_t ts;
		assert_int_equal(time_parse_rfc3339(jstr(j, "ts"), &ts), 0);
		assert_true(ts >= before - 1000000 && ts <= time_now_us());
		assert_int_equal(json_integer_value(json_object_get(j, "suppressed")), 0);
		if (strcmp(jstr(j, "kind"), "crash_loop") == 0) {
			assert_string_equal(jstr(j, "env"), "production");
			assert_string_equal(jstr(j, "app"), "shop");
			assert_string_equal(jstr(j, "process"), "web");
			assert_string_equal(jstr(j, "instance"), "web.1");
			assert_string_equal(jstr(j, "message"), "exited 5 times in 60 s: exit status 1 <&>");
			assert_string_equal(jstr(j, "text"), "[berth@box-1] crash loop: production/shop web.1: "
							     "exited 5 times in 60 s: exit status 1 &lt;&amp;&gt;");
		} else {
			assert_string_equal(jstr(j, "kind"), "deploy_failed");
			assert_true(json_is_null(json_object_get(j, "process")));
			assert_true(json_is_null(json_object_get(j, "instance")));
			assert_string_equal(jstr(j, "message"), "v12: health check timed out");
			assert_string_equal(jstr(j, "text"),
					    "[berth@box-1] deploy failed: staging/shop: v12: health check timed out");
		}
		json_decref(j);
	}
	finish(&loop, a);
	srv_stop(s);
	free(url);
}

static void test_env_webhooks(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct hook_srv *s = srv_start(200);
	char *server_url = srv_url(s, "/server-hook"), *env_url = srv_url(s, "/env-hook");
	const char *urls[] = {server_url};
	struct alerts_conf c = {.server = "b", .urls = urls, .nurls = 1, .rate_limit_ms = -1};
	struct err e = ERR_INIT;
	struct alerts *a = alerts_new(&loop, &c, &e);
	assert_non_null(a);
	const char *env_urls[] = {env_url};
	assert_int_equal(alerts_set_env_webhooks(a, "staging", env_urls, 1, &e), 0);

	alerts_emit(a, ALERT_HEALTH_FAILING, "staging", "shop", "web", "web.2", "GET /healthz: 500");
	struct alerts_stats st;
	wait_done(&loop, a, 2, 5000, &st);
	assert_int_equal(srv_count(s), 2);      /* (also orders our reads after the server's writes) */
	bool saw_server = false, saw_env = false;
	for (int i = 0; i < 2; i++) {
		saw_server |= strcmp(s->reqs[i].path, "/server-hook") == 0;
		saw_env |= strcmp(s->reqs[i].path, "/env-hook") == 0;
	}
	assert_true(saw_server && saw_env);

	alerts_emit(a, ALERT_HEALTH_FAILING, "production", "shop", "web", "web.2", "GET /healthz: 500");
	wait_done(&loop, a, 3, 5000, &st);
	assert_int_equal(srv_count(s), 3);
	assert_string_equal(s->reqs[2].path, "/server-hook");

	/* Clearing the env's list: only the server's webhook remains. */
	assert_int_equal(alerts_set_env_webhooks(a, "staging", NULL, 0, &e), 0);
	alerts_emit(a, ALERT_RECOVERED, "staging", "shop", "web", "web.2", "healthy again");
	wait_done(&loop, a, 4, 5000, &st);
	pump(&loop, 100);
	assert_int_equal(srv_count(s), 4);
	assert_string_equal(s->reqs[3].path, "/server-hook");

	/* A bad URL is refused and its secret part is not in the error. */
	const char *bad[] = {"ftp://files.example.com/SECRETPATH"};
	assert_int_equal(alerts_set_env_webhooks(a, "staging", bad, 1, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "ftp://files.example.com"));
	assert_null(strstr(e.msg, "SECRETPATH"));
	const char *junk[] = {"not a url"};
	assert_int_equal(alerts_set_env_webhooks(a, "staging", junk, 1, &e), -1);
	finish(&loop, a);

	struct alerts_conf cbad = {.urls = bad, .nurls = 1};
	assert_null(alerts_new(&loop, &cbad, &e));
	srv_stop(s);
	free(server_url);
	free(env_url);
}

static void test_retry_after_500(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct hook_srv *s = srv_start(200);
	s->script[0] = 500;
	char *url = srv_url(s, "/hook");
	const char *urls[] = {url};
	struct alerts_conf c = {.server = "b", .urls = urls, .nurls = 1, .backoff_ms = 150};
	struct err e = ERR_INIT;
	struct alerts *a = alerts_new(&loop, &c, &e);
	alerts_emit(a, ALERT_DEPLOY_ROLLED_BACK, "production", "shop", NULL, NULL, "back to v11");
	struct alerts_stats st;
	wait_done(&loop, a, 1, 5000, &st);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.retries, 1);
	assert_int_equal(srv_count(s), 2);
	int64_t gap = s->reqs[1].at_ms - s->reqs[0].at_ms;
	assert_true(gap >= 140 && gap < 1000);
	assert_string_equal(s->reqs[0].body, s->reqs[1].body);    /* the same payload again */
	finish(&loop, a);
	srv_stop(s);
	free(url);
}

static void test_backoff_and_give_up(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct hook_srv *s = srv_start(503);
	char *url = srv_url(s, "/hook");
	const char *urls[] = {url};
	struct alerts_conf c = {.server = "b", .urls = urls, .nurls = 1, .backoff_ms = 80, .max_attempts = 4};
	struct err e = ERR_INIT;
	struct alerts *a = alerts_new(&loop, &c, &e);
	alerts_emit(a, ALERT_CRASH_LOOP, "production", "shop", "web", "web.1", "x");
	struct alerts_stats st;
	wait_done(&loop, a, 1, 5000, &st);
	pump(&loop, 300);
	assert_int_equal(srv_count(s), 4);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.retries, 3);
	for (int i = 1; i < 4; i++) {
		int64_t want = 80LL << (i - 1), gap = s->reqs[i].at_ms - s->reqs[i - 1].at_ms;
		if (gap < want - 10 || gap > want + 300)
			fail_msg("gap %d: %lld ms, want about %lld", i, (long long)gap, (long long)want);
	}
	finish(&loop, a);
	srv_stop(s);
	free(url);
}

static void test_no_retry_on_4xx(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct hook_srv *s = srv_start(404);
	char *url = srv_url(s, "/gone");
	const char *urls[] = {url};
	struct alerts_conf c = {.server = "b", .urls = urls, .nurls = 1, .backoff_ms = 20};
	struct err e = ERR_INIT;
	struct alerts *a = alerts_new(&loop, &c, &e);
	alerts_emit(a, ALERT_CRASH_LOOP, "production", "shop", "web", "web.1", "x");
	struct alerts_stats st;
	wait_done(&loop, a, 1, 5000, &st);
	pump(&loop, 150);
	assert_int_equal(srv_count(s), 1);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.retries, 0);
	finish(&loop, a);
	srv_stop(s);
	free(url);
}

/* A refused connection is retried, then given up; the log names only scheme://host:port. */
static void test_refused_and_secret_not_logged(void **state)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bind(fd, (struct sockaddr *)&sa, sizeof sa);
	socklen_t len = sizeof sa;
	getsockname(fd, (struct sockaddr *)&sa, &len);
	int port = ntohs(sa.sin_port);
	close(fd);     /* nothing listens there now */

	char logpath[] = "/tmp/berth-alerts-log-XXXXXX";
	int logfd = mkstemp(logpath);
	fflush(stderr);
	int saved = dup(2);
	dup2(logfd, 2);

	uv_loop_t loop;
	uv_loop_init(&loop);
	char *url = xasprintf("http://user:PASSWORD@127.0.0.1:%d/hooks/SECRETPATH?token=SECRETQUERY", port);
	const char *urls[] = {url};
	struct alerts_conf c = {.server = "b", .urls = urls, .nurls = 1, .backoff_ms = 20, .max_attempts = 3};
	struct err e = ERR_INIT;
	struct alerts *a = alerts_new(&loop, &c, &e);
	assert_non_null(a);
	alerts_emit(a, ALERT_CRASH_LOOP, "production", "shop", "web", "web.1", "x");
	struct alerts_stats st;
	wait_done(&loop, a, 1, 5000, &st);
	finish(&loop, a);

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	struct buf log = BUF_INIT;
	char tmp[4096];
	ssize_t n;
	lseek(logfd, 0, SEEK_SET);
	while ((n = read(logfd, tmp, sizeof tmp)) > 0)
		buf_add(&log, tmp, (size_t)n);
	close(logfd);
	unlink(logpath);

	assert_int_equal(st.failed, 1);
	assert_int_equal(st.retries, 2);
	char *host = xasprintf("http://127.0.0.1:%d", port);
	if (!strstr(buf_str(&log), host) || !strstr(buf_str(&log), "failed after 3 attempts"))
		fail_msg("log lacks the failure: %s", buf_str(&log));
	assert_null(strstr(buf_str(&log), "SECRET"));
	assert_null(strstr(buf_str(&log), "PASSWORD"));
	free(host);
	buf_free(&log);
	free(url);
}

static void test_redact(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com"},
		{"http://user:pw@example.com:8080/a?b=c#d", "http://example.com:8080"},
		{"https://[::1]:9000/x", "https://[::1]:9000"},
		{"nonsense", "(invalid URL)"},
		{"", "(invalid URL)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf b = BUF_INIT;
		alerts_url_redact(cases[i].in, &b);
		assert_string_equal(buf_str(&b), cases[i].out);
		buf_free(&b);
	}
	assert_string_equal(alert_kind_name(ALERT_HEALTH_FAILING), "health_failing");
	assert_string_equal(alert_kind_name(ALERT_DEPLOY_ROLLED_BACK), "deploy_rolled_back");
	assert_string_equal(alert_kind_name(ALERT_RECOVERED), "recovered");
}

static void test_rate_limit(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct hook_srv *s = srv_start(200);
	char *url = srv_url(s, "/hook");
	const char *urls[] = {url};
	struct alerts_conf c = {.server = "b", .urls = urls, .nurls = 1, .rate_limit_ms = 300};
	struct err e = ERR_INIT;
	struct alerts *a = alerts_new(&loop, &c, &e);
	int64_t t0 = time_mono_ms();
	for (int i = 1; i <= 4; i++)
		alerts_emitf(a, ALERT_CRASH_LOOP, "production", "shop", "web", "web.1", "crash %d", i);
	/* Another process, and another kind, have windows of their own. */
	alerts_emit(a, ALERT_CRASH_LOOP, "production", "shop", "worker", "worker.1", "crash w");
	alerts_emit(a, ALERT_HEALTH_FAILING, "production", "shop", "web", "web.1", "checks fail");
	wait_reqs(&loop, s, 3, 2000);
	pump(&loop, 150);
	assert_int_equal(srv_count(s), 3);
	for (int i = 0; i < 3; i++)
		assert_null(strstr(s->reqs[i].body, "crash 2"));

	/* The window closes: the latest held alert goes out with the count of the others. */
	wait_reqs(&loop, s, 4, 2000);
	assert_true(s->reqs[3].at_ms - t0 >= 290);
	json_t *j = body_json(s, 3);
	assert_string_equal(jstr(j, "message"), "crash 4");
	assert_int_equal(json_integer_value(json_object_get(j, "suppressed")), 2);
	assert_non_null(strstr(jstr(j, "text"), "crash 4 (2 suppressed)"));
	json_decref(j);
	pump(&loop, 400);
	assert_int_equal(srv_count(s), 4);
	struct alerts_stats st;
	alerts_stats(a, &st);
	assert_int_equal(st.suppressed, 2);
	assert_int_equal(st.emitted, 4);

	/* A recovery drops failure alerts still held for that process and says how many. */
	pump(&loop, 350);     /* let the health_failing window close */
	for (int i = 0; i < 3; i++)
		alerts_emitf(a, ALERT_HEALTH_FAILING, "staging", "shop", "web", "web.3", "fail %d", i);
	alerts_emit(a, ALERT_RECOVERED, "staging", "shop", "web", "web.3", "healthy again");
	wait_reqs(&loop, s, 6, 2000);
	pump(&loop, 500);
	assert_int_equal(srv_count(s), 6);
	j = body_json(s, 5);
	if (strcmp(jstr(j, "kind"), "recovered") != 0) {
		json_decref(j);
		j = body_json(s, 4);
	}
	assert_string_equal(jstr(j, "kind"), "recovered");
	assert_int_equal(json_integer_value(json_object_get(j, "suppressed")), 2);
	assert_non_null(strstr(jstr(j, "text"), "healthy again (2 suppressed)"));
	json_decref(j);
	finish(&loop, a);
	srv_stop(s);
	free(url);
}

static void test_queue_drops_oldest(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct hook_srv *s = srv_start(200);
	s->hold = true;
	char *url = srv_url(s, "/hook");
	const char *urls[] = {url};
	struct alerts_conf c = {.server = "b", .urls = urls, .nurls = 1, .rate_limit_ms = -1,
				.queue_max = 3, .max_inflight = 1};
	struct err e = ERR_INIT;
	struct alerts *a = alerts_new(&loop, &c, &e);
	struct metrics *m = metrics_new();
	struct metrics_families fam;
	assert_int_equal(metrics_default_families(m, &fam, &e), 0);
	alerts_set_metrics(a, fam.alerts);

	alerts_emit(a, ALERT_DEPLOY_FAILED, "production", "app", NULL, NULL, "alert 0");
	wait_reqs(&loop, s, 1, 2000);      /* the only transfer slot is now busy */
	for (int i = 1; i <= 8; i++)
		alerts_emitf(a, ALERT_DEPLOY_FAILED, "production", "app", NULL, NULL, "alert %d", i);
	struct alerts_stats st;
	alerts_stats(a, &st);
	assert_int_equal(st.dropped, 5);
	srv_release(s);
	wait_done(&loop, a, 9, 5000, &st);
	assert_int_equal(st.sent, 4);
	assert_int_equal(st.dropped, 5);
	assert_int_equal(srv_count(s), 4);
	for (int i = 1; i <= 3; i++) {
		json_t *j = body_json(s, i);
		char want[32];
		snprintf(want, sizeof want, "alert %d", 5 + i);     /* the newest three survived */
		assert_string_equal(jstr(j, "message"), want);
		json_decref(j);
	}
	struct buf out = BUF_INIT;
	metrics_render(m, &out);
	assert_non_null(strstr(buf_str(&out), "berth_alerts_total{kind=\"deploy_failed\",outcome=\"sent\"} 4\n"));
	assert_non_null(strstr(buf_str(&out), "berth_alerts_total{kind=\"deploy_failed\",outcome=\"dropped\"} 5\n"));
	buf_free(&out);
	finish(&loop, a);
	metrics_free(m);
	srv_stop(s);
	free(url);
}

static void test_shutdown_bounded(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct hook_srv *s = srv_start(200);
	s->hold = true;                    /* the webhook never answers */
	char *url = srv_url(s, "/hook");
	const char *urls[] = {url};
	struct alerts_conf c = {.server = "b", .urls = urls, .nurls = 1, .rate_limit_ms = -1, .max_inflight = 1};
	struct err e = ERR_INIT;
	struct alerts *a = alerts_new(&loop, &c, &e);
	struct metrics *m = metrics_new();
	struct metrics_families fam;
	assert_int_equal(metrics_default_families(m, &fam, &e), 0);
	alerts_set_metrics(a, fam.alerts);
	for (int i = 0; i < 3; i++)
		alerts_emitf(a, ALERT_CRASH_LOOP, "production", "shop", "web", "web.1", "pending %d", i);
	wait_reqs(&loop, s, 1, 2000);
	int64_t t0 = time_mono_ms();
	alerts_free(a);
	int64_t took = time_mono_ms() - t0;
	if (took > 1500)
		fail_msg("alerts_free took %lld ms", (long long)took);
	assert_true(took >= 900);          /* it did give the pending deliveries their grace */
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	srv_stop(s);
	/* The one in flight and the two waiting are counted as dropped. */
	struct buf out = BUF_INIT;
	metrics_render(m, &out);
	assert_non_null(strstr(buf_str(&out), "berth_alerts_total{kind=\"crash_loop\",outcome=\"dropped\"} 3\n"));
	buf_free(&out);
	metrics_free(m);

	/* With nothing pending, stopping is immediate. */
	uv_loop_init(&loop);
	struct alerts_conf c2 = {.server = "b"};
	a = alerts_new(&loop, &c2, &e);
	alerts_emit(a, ALERT_CRASH_LOOP, "production", "shop", "web", "web.1", "no webhooks: nothing sent");
	t0 = time_mono_ms();
	alerts_free(a);
	assert_true(time_mono_ms() - t0 < 200);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	free(url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_payload),
		cmocka_unit_test(test_env_webhooks),
		cmocka_unit_test(test_retry_after_500),
		cmocka_unit_test(test_backoff_and_give_up),
		cmocka_unit_test(test_no_retry_on_4xx),
		cmocka_unit_test(test_refused_and_secret_not_logged),
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_queue_drops_oldest),
		cmocka_unit_test(test_shutdown_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
