/* test_router: the HTTP router, end to end on loopback.
 *
 * Each test starts a real router (router_new, 2 threads) on port 0 with an endpoints table
 * on a libuv loop owned by the test's main thread; upstream instances are small HTTP/1.1
 * servers written here (one thread per connection, blocking sockets) whose behaviour is
 * chosen by the request path; clients are plain blocking sockets. The main loop is run
 * (uv_run NOWAIT) between steps to collect access-log lines; snapshot changes are waited
 * for with router_adopted_version(). After each scenario every endpoint's inflight count
 * must come back to zero.
 *
 * Upstream paths: /echo (default: the request as seen, as the body), /big?n=N (N bytes,
 * Content-Length), /bigchunked?n=N, /chunkwait (one chunk, then waits for the test's
 * go-ahead), /bodywait (reads a chunked body, flags its first chunk), /slow?ms=N, /hang,
 * /close (closes without answering), /postclose (reads the body, then closes), /drop2
 * (closes without answering the 2nd request of a connection), /eof (body until close),
 * /early (413 before reading the body), /hop (hop-by-hop fields in the answer),
 * /status/N, /100 (a 100 Continue first), /ws (101, then echo).
 * Pure helpers (headers.c) and the response parser (resp.c) are tested first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "endpoints/endpoints.h"
#include "router/internal.h"
#include "router/resp.h"
#include "router/router.h"
#include "util/buf.h"
#include "util/fsutil.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ======================================================================================
 * Pure helpers
 * ====================================================================================== */

static void test_header_helpers(void **state)
{
	assert_true(hdr_is_hop("Connection"));
	assert_true(hdr_is_hop("keep-alive"));
	assert_true(hdr_is_hop("TE"));
	assert_true(hdr_is_hop("Transfer-Encoding"));
	assert_true(hdr_is_hop("Proxy-Connection"));
	assert_false(hdr_is_hop("Content-Length"));
	assert_true(hdr_list_has("keep-alive, X-Secret", "x-secret"));
	assert_true(hdr_list_has(" close ,,upgrade", "Upgrade"));
	assert_false(hdr_list_has("x-secretive", "x-secret"));
	assert_false(hdr_list_has("", "x"));

	assert_true(reqid_ok("5f0c6a0e-1b1c-4a7e-9c55-0123456789ab"));
	assert_true(reqid_ok("abc"));
	assert_false(reqid_ok(""));
	assert_false(reqid_ok("a b"));
	assert_false(reqid_ok("a\"b"));
	char long_id[200];
	memset(long_id, 'a', sizeof long_id - 1);
	long_id[sizeof long_id - 1] = 0;
	assert_false(reqid_ok(long_id));
	long_id[128] = 0;
	assert_true(reqid_ok(long_id));

	assert_true(accept_prefers_json("application/json"));
	assert_true(accept_prefers_json("application/json, text/plain"));
	assert_true(accept_prefers_json("text/html;q=0.5, application/json"));
	assert_true(accept_prefers_json("application/*"));
	assert_false(accept_prefers_json("*/*"));
	assert_false(accept_prefers_json("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
	assert_false(accept_prefers_json("application/json;q=0.5, text/html"));
	assert_false(accept_prefers_json("application/json;q=0"));
	assert_false(accept_prefers_json(NULL));
	assert_false(accept_prefers_json("text/html, application/json"));

	assert_true(host_ok("example.com", 11));
	assert_true(host_ok("example.com:8080", 16));
	assert_true(host_ok("[::1]:80", 8));
	assert_false(host_ok("exa mple", 8));
	assert_false(host_ok("a/b", 3));
	assert_false(host_ok("a@b", 3));

	struct {
		const char *t;
		size_t strip;
		const char *want;   /* NULL: refused */
		const char *auth;
	} cases[] = {
		{"/api/users?x=1", 4, "/users?x=1", NULL},
		{"/api", 4, "/", NULL},
		{"/api?x=1", 4, "/?x=1", NULL},
		{"/api/", 4, "/", NULL},
		{"/%61pi/v", 4, "/v", NULL},
		{"/a/b", 0, "/a/b", NULL},
		{"http://example.com/api/x", 4, "/x", "example.com"},
		{"http://example.com", 0, "/", "example.com"},
		{"http://example.com?q", 0, "/?q", "example.com"},
		{"http://u@example.com/", 0, NULL, NULL},
		{"*", 0, NULL, NULL},
		{"/ab", 4, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct buf b = BUF_INIT;
		const char *auth;
		size_t alen;
		int rc = target_rewrite(cases[i].t, cases[i].strip, &b, &auth, &alen);
		if (!cases[i].want) {
			assert_int_equal(rc, -1);
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(buf_str(&b), cases[i].want);
			if (cases[i].auth) {
				assert_int_equal(alen, strlen(cases[i].auth));
				assert_memory_equal(auth, cases[i].auth, alen);
			} else {
				assert_null(auth);
			}
		}
		buf_free(&b);
	}
}

/* Parse a response (piece = 0: all at once) and return its story; body bytes are merged
 * up to the next event, so any piece size tells the same story. */
static char *resp_story(const char *in, size_t piece, int head_req, int eof)
{
	struct resp_parse *p = resp_parse_new();
	resp_parse_start(p, head_req);
	struct buf out = BUF_INIT, pend = BUF_INIT;
	size_t n = strlen(in), pos = 0;
	int stop = 0, in_body = 0;
#define EV_SEP() do { if (in_body) { buf_addc(&out, '|'); in_body = 0; } } while (0)
	while (!stop && pos < n) {
		size_t k = piece ? piece : n;
		if (k > n - pos)
			k = n - pos;
		buf_add(&pend, in + pos, k);
		pos += k;
		size_t off = 0;
		for (;;) {
			enum resp_event ev;
			off += resp_parse_feed(p, pend.p + off, pend.len - off, &ev);
			if (ev == RESP_EV_NONE)
				break;
			if (ev == RESP_EV_HEAD) {
				EV_SEP();
				const struct resp_head *h = resp_parse_head(p);
				buf_addf(&out, "HEAD %d n=%zu%s%s%s|", h->status, h->nheaders, h->chunked ? " chunked" : "",
					 h->no_body ? " nobody" : "", h->upgrade ? " upgrade" : "");
				if (h->upgrade) {
					buf_addf(&out, "REST %zu|", pend.len - off + (n - pos));
					stop = 1;
					break;
				}
			} else if (ev == RESP_EV_BODY) {
				const char *d;
				size_t bn;
				resp_parse_body(p, &d, &bn);
				buf_add(&out, d, bn);
				in_body = 1;
			} else if (ev == RESP_EV_DONE) {
				EV_SEP();
				buf_addf(&out, "DONE ka=%d|", resp_parse_keep_alive(p));
			} else {
				EV_SEP();
				buf_addf(&out, "ERROR %s|", resp_parse_error(p));
				stop = 1;
				break;
			}
		}
		buf_consume(&pend, off);
	}
	if (eof && !stop) {
		EV_SEP();
		enum resp_event ev = resp_parse_eof(p);
		buf_addf(&out, "EOF %s|", ev == RESP_EV_DONE ? "done" : "error");
	}
#undef EV_SEP
	resp_parse_free(p);
	buf_free(&pend);
	return buf_detach(&out);
}

static void check_story(const char *in, int head_req, int eof, const char *want)
{
	size_t pieces[] = {0, 1, 3, 7};
	for (size_t i = 0; i < 4; i++) {
		char *s = resp_story(in, pieces[i], head_req, eof);
		if (strcmp(s, want))
			fail_msg("piece %zu: got %s want %s", pieces[i], s, want);
		free(s);
	}
}

static void test_resp_parse(void **state)
{
	check_story("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, 0, "HEAD 200 n=1|hello|DONE ka=1|");
	check_story("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX: y\r\n\r\n",
		    0, 0, "HEAD 200 n=1 chunked|hello world|DONE ka=1|");
	check_story("HTTP/1.1 200 OK\r\n\r\nuntil-eof", 0, 1, "HEAD 200 n=0|until-eof|EOF done|");
	char *s;
	check_story("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 1, 0, "HEAD 200 n=1 nobody|DONE ka=1|");
	check_story("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 0, 0, "HEAD 304 n=1 nobody|DONE ka=1|");
	check_story("HTTP/1.1 204 No Content\r\n\r\n", 0, 0, "HEAD 204 n=0 nobody|DONE ka=1|");
	check_story("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0,
		    "HEAD 100 n=0 nobody|DONE ka=0|HEAD 200 n=1|ok|DONE ka=1|");
	check_story("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nRAW", 0, 0,
		    "HEAD 101 n=2 nobody upgrade|REST 3|");
	check_story("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 0, 1, "HEAD 200 n=1|ab|EOF error|");
	check_story("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0, "HEAD 200 n=1|ok|DONE ka=0|");
	check_story("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 0, 0,
		    "HEAD 200 n=2|ok|DONE ka=0|");
	/* refusals */
	s = resp_story("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 0, 0);
	assert_non_null(strstr(s, "ERROR"));
	free(s);
	s = resp_story("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", 0, 0, 0);
	assert_non_null(strstr(s, "ERROR"));
	free(s);
	s = resp_story("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, 0, 0);
	assert_non_null(strstr(s, "ERROR"));
	free(s);
	s = resp_story("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, 0, 0);
	assert_non_null(strstr(s, "ERROR"));
	free(s);
	s = resp_story("HTTP/1.1 200 OK\r\nX: a\x01" "b\r\n\r\n", 0, 0, 0);
	assert_non_null(strstr(s, "ERROR"));
	free(s);
	s = resp_story("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 0, 0, 1);
	assert_string_equal(s, "HEAD 200 n=1|ab|EOF error|");
	free(s);
	s = resp_story("", 0, 0, 1);
	assert_string_equal(s, "EOF error|");
	free(s);
	s = resp_story("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", 0, 0, 0);
	assert_string_equal(s, "HEAD 200 n=1|ok|DONE ka=1|ERROR bytes after the answer|");
	free(s);
	/* a head that never ends */
	struct buf big = BUF_INIT;
	buf_adds(&big, "HTTP/1.1 200 OK\r\n");
	while (big.len < RESP_MAX_HEAD + 100)
		buf_adds(&big, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
	s = resp_story(big.p, 0, 0, 0);
	assert_non_null(strstr(s, "ERROR"));
	free(s);
	buf_free(&big);
}

/* ======================================================================================
 * Test upstream servers: one thread per connection, blocking sockets
 * ====================================================================================== */

struct upsrv {
	int lfd, port;
	pthread_t th;
	atomic_int stop;
	char name[16];
	atomic_int conns, reqs;
	atomic_int go;            /* /chunkwait: the test says "send the rest" */
	atomic_int first_chunk;   /* /bodywait: the first chunk arrived */
	pthread_mutex_t mu;
	int *cfd;
	pthread_t *cth;
	size_t nc, capc;
	char last_head[16384];
};

struct uconn {
	struct upsrv *s;
	int fd, id;
	char buf[65536];
	size_t len, pos;
};

struct ureq {
	char method[16], target[4096], path[4096];
	char head[16384];
	long cl;             /* -1: none */
	int chunked, close;
};

static int send_all(int fd, const void *d, size_t n)
{
	const char *p = d;
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int send_str(int fd, const char *s)
{
	return send_all(fd, s, strlen(s));
}

static int uc_fill(struct uconn *uc)
{
	if (uc->pos == uc->len)
		uc->pos = uc->len = 0;
	if (uc->len == sizeof uc->buf) {
		memmove(uc->buf, uc->buf + uc->pos, uc->len - uc->pos);
		uc->len -= uc->pos;
		uc->pos = 0;
	}
	for (;;) {
		ssize_t k = recv(uc->fd, uc->buf + uc->len, sizeof uc->buf - uc->len, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		uc->len += (size_t)k;
		return 0;
	}
}

/* A line (without CRLF) into out. */
static int uc_line(struct uconn *uc, char *out, size_t n)
{
	for (;;) {
		char *nl = memmem(uc->buf + uc->pos, uc->len - uc->pos, "\r\n", 2);
		if (nl) {
			size_t l = (size_t)(nl - (uc->buf + uc->pos));
			size_t c = l < n - 1 ? l : n - 1;
			memcpy(out, uc->buf + uc->pos, c);
			out[c] = 0;
			uc->pos += l + 2;
			return 0;
		}
		if (uc_fill(uc))
			return -1;
	}
}

static int read_head(struct uconn *uc, struct ureq *r)
{
	memset(r, 0, sizeof *r);
	r->cl = -1;
	for (;;) {
		char *end = memmem(uc->buf + uc->pos, uc->len - uc->pos, "\r\n\r\n", 4);
		if (end) {
			size_t hl = (size_t)(end - (uc->buf + uc->pos)) + 4;
			size_t c = hl < sizeof r->head - 1 ? hl : sizeof r->head - 1;
			memcpy(r->head, uc->buf + uc->pos, c);
			r->head[c] = 0;
			uc->pos += hl;
			break;
		}
		if (uc_fill(uc))
			return -1;
	}
	if (sscanf(r->head, "%15s %4095s", r->method, r->target) != 2)
		return -1;
	snprintf(r->path, sizeof r->path, "%s", r->target);
	char *q = strchr(r->path, '?');
	if (q)
		*q = 0;
	for (char *line = strstr(r->head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
		const char *h = line + 2;
		if (!strncasecmp(h, "Content-Length:", 15))
			r->cl = atol(h + 15);
		else if (!strncasecmp(h, "Transfer-Encoding:", 18) && strstr(h, "chunked"))
			r->chunked = 1;
		else if (!strncasecmp(h, "Connection:", 11) && strcasestr(h, "close") &&
			 strcasestr(h, "close") < strstr(h, "\r\n"))
			r->close = 1;
	}
	pthread_mutex_lock(&uc->s->mu);
	snprintf(uc->s->last_head, sizeof uc->s->last_head, "%s", r->head);
	pthread_mutex_unlock(&uc->s->mu);
	return 0;
}

/* Read the body; returns its length (or -1), its FNV hash in *sum. */
static long read_body(struct uconn *uc, const struct ureq *r, uint32_t *sum, atomic_int *first)
{
	uint32_t h = 2166136261u;
	long total = 0;
	if (r->chunked) {
		char line[256];
		for (;;) {
			if (uc_line(uc, line, sizeof line))
				return -1;
			long n = strtol(line, NULL, 16);
			if (n == 0)
				break;
			while (n > 0) {
				if (uc->pos == uc->len && uc_fill(uc))
					return -1;
				size_t k = uc->len - uc->pos;
				if ((long)k > n)
					k = (size_t)n;
				for (size_t i = 0; i < k; i++)
					h = (h ^ (unsigned char)uc->buf[uc->pos + i]) * 16777619u;
				uc->pos += k;
				n -= (long)k;
				total += (long)k;
			}
			if (first)
				atomic_store(first, 1);
			if (uc_line(uc, line, sizeof line))
				return -1;
		}
		do {
			if (uc_line(uc, line, sizeof line))
				return -1;
		} while (line[0]);
	} else if (r->cl > 0) {
		long n = r->cl;
		while (n > 0) {
			if (uc->pos == uc->len && uc_fill(uc))
				return -1;
			size_t k = uc->len - uc->pos;
			if ((long)k > n)
				k = (size_t)n;
			for (size_t i = 0; i < k; i++)
				h = (h ^ (unsigned char)uc->buf[uc->pos + i]) * 16777619u;
			uc->pos += k;
			n -= (long)k;
			total += (long)k;
		}
	}
	*sum = h;
	return total;
}

static long qnum(const char *target, const char *key, long dflt)
{
	const char *q = strchr(target, '?');
	if (!q)
		return dflt;
	const char *p = strstr(q, key);
	return p ? atol(p + strlen(key)) : dflt;
}

static char pattern_byte(size_t i)
{
	return (char)('a' + (i % 26));
}

static int send_big(int fd, long n, int chunked)
{
	static char block[65536];
	char h[256];
	snprintf(h, sizeof h, chunked ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				      : "HTTP/1.1 200 OK\r\nContent-Length: %ld\r\n\r\n", n);
	if (send_str(fd, h))
		return -1;
	size_t off = 0;
	while ((long)off < n) {
		size_t k = sizeof block;
		if ((long)k > n - (long)off)
			k = (size_t)(n - (long)off);
		for (size_t i = 0; i < k; i++)
			block[i] = pattern_byte(off + i);
		if (chunked) {
			char ch[32];
			snprintf(ch, sizeof ch, "%zx\r\n", k);
			if (send_str(fd, ch))
				return -1;
		}
		if (send_all(fd, block, k))
			return -1;
		if (chunked && send_str(fd, "\r\n"))
			return -1;
		off += k;
	}
	return chunked ? send_str(fd, "0\r\n\r\n") : 0;
}

/* Answer one request; -1 ends the connection. */
static int handle(struct uconn *uc, struct ureq *r, int nreq)
{
	struct upsrv *s = uc->s;
	int fd = uc->fd;
	uint32_t sum = 0;
	const char *p = r->path;
	if (!strcmp(p, "/ws")) {
		if (send_str(fd, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
				 "Sec-WebSocket-Accept: test\r\n\r\n"))
			return -1;
		for (;;) {
			if (uc->pos < uc->len) {
				if (send_all(fd, uc->buf + uc->pos, uc->len - uc->pos))
					return -1;
				uc->pos = uc->len;
			}
			if (uc_fill(uc))
				return -1;
		}
	}
	if (!strcmp(p, "/early")) {
		send_str(fd, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope");
		return -1;
	}
	if (!strcmp(p, "/close"))
		return -1;
	if (!strcmp(p, "/drop2") && nreq >= 2)
		return -1;
	if (!strcmp(p, "/hang")) {
		while (!uc_fill(uc))
			;
		return -1;
	}
	if (!strcmp(p, "/slowbody"))
		sleep_ms((int)qnum(r->target, "ms=", 500));
	long blen = read_body(uc, r, &sum, !strcmp(p, "/bodywait") ? &s->first_chunk : NULL);
	if (blen < 0)
		return -1;
	if (!strcmp(p, "/postclose"))
		return -1;
	if (!strcmp(p, "/big"))
		return send_big(fd, qnum(r->target, "n=", 1000), 0);
	if (!strcmp(p, "/bigchunked"))
		return send_big(fd, qnum(r->target, "n=", 1000), 1);
	if (!strcmp(p, "/slow"))
		sleep_ms((int)qnum(r->target, "ms=", 100));
	if (!strcmp(p, "/chunkwait")) {
		if (send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n"))
			return -1;
		int64_t t0 = now_ms();
		while (!atomic_load(&s->go) && now_ms() - t0 < 5000)
			sleep_ms(1);
		return send_str(fd, "6\r\nsecond\r\n0\r\n\r\n");
	}
	if (!strcmp(p, "/eof")) {
		send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody-until-eof");
		return -1;
	}
	if (!strcmp(p, "/h10")) {
		send_str(fd, "HTTP/1.0 200 OK\r\n\r\nten-body");
		return -1;
	}
	if (!strcmp(p, "/hop"))
		return send_str(fd, "HTTP/1.1 200 OK\r\nConnection: X-Up-Secret\r\nX-Up-Secret: 1\r\n"
				    "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTrailer: X-T\r\n"
				    "Upgrade: h2c\r\nX-Kept: yes\r\nContent-Length: 3\r\n\r\nhop");
	if (!strncmp(p, "/status/", 8)) {
		int st = atoi(p + 8);
		char out[256];
		if (st == 204 || st == 304)
			snprintf(out, sizeof out, "HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n", st);
		else
			snprintf(out, sizeof out, "HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nst", st);
		return send_str(fd, out);
	}
	if (!strcmp(p, "/closeidle")) {
		send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
		sleep_ms(30);
		return -1;
	}
	if (!strcmp(p, "/100")) {
		if (send_str(fd, "HTTP/1.1 100 Continue\r\n\r\n"))
			return -1;
	}
	struct buf b = BUF_INIT;
	buf_addf(&b, "srv=%s conn=%d req=%d method=%s target=%s body=%ld sum=%08x\n%s", s->name, uc->id, nreq,
		 r->method, r->target, blen, sum, r->head);
	char h[256];
	snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n", b.len,
		 r->close ? "Connection: close\r\n" : "");
	int rc = send_str(fd, h);
	if (!rc && strcmp(r->method, "HEAD"))
		rc = send_all(fd, b.p, b.len);
	buf_free(&b);
	return rc || r->close ? -1 : 0;
}

static void *uconn_main(void *arg)
{
	struct uconn *uc = arg;
	struct ureq r;
	for (int n = 1;; n++) {
		if (read_head(uc, &r))
			break;
		atomic_fetch_add(&uc->s->reqs, 1);
		if (handle(uc, &r, n))
			break;
	}
	shutdown(uc->fd, SHUT_RDWR);
	free(uc);
	return NULL;
}

static void *upsrv_main(void *arg)
{
	struct upsrv *s = arg;
	while (!atomic_load(&s->stop)) {
		struct pollfd pf = {s->lfd, POLLIN, 0};
		if (poll(&pf, 1, 20) <= 0)
			continue;
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct uconn *uc = xcalloc(1, sizeof *uc);
		uc->s = s;
		uc->fd = fd;
		uc->id = atomic_fetch_add(&s->conns, 1) + 1;
		pthread_mutex_lock(&s->mu);
		if (s->nc == s->capc) {
			s->capc = s->capc ? 2 * s->capc : 64;
			s->cfd = xrealloc(s->cfd, s->capc * sizeof *s->cfd);
			s->cth = xrealloc(s->cth, s->capc * sizeof *s->cth);
		}
		s->cfd[s->nc] = fd;
		pthread_create(&s->cth[s->nc], NULL, uconn_main, uc);
		s->nc++;
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

static int listen_any(int *port, int backlog)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, backlog), 0);
	socklen_t al = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &al);
	*port = ntohs(a.sin_port);
	return fd;
}

static struct upsrv *upsrv_start(const char *name)
{
	struct upsrv *s = xcalloc(1, sizeof *s);
	snprintf(s->name, sizeof s->name, "%s", name);
	pthread_mutex_init(&s->mu, NULL);
	s->lfd = listen_any(&s->port, 128);
	pthread_create(&s->th, NULL, upsrv_main, s);
	return s;
}

static void upsrv_stop(struct upsrv *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, 1);
	pthread_join(s->th, NULL);
	close(s->lfd);
	pthread_mutex_lock(&s->mu);
	size_t n = s->nc;
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < n; i++)
		shutdown(s->cfd[i], SHUT_RDWR);
	atomic_store(&s->go, 1);
	for (size_t i = 0; i < n; i++) {
		pthread_join(s->cth[i], NULL);
		close(s->cfd[i]);
	}
	free(s->cfd);
	free(s->cth);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* A port nothing listens on. */
static int dead_port(void)
{
	int port;
	int fd = listen_any(&port, 1);
	close(fd);
	return port;
}

/* ======================================================================================
 * Test clients: blocking sockets
 * ====================================================================================== */

struct cc {
	int fd;
	struct buf in;
};

struct cresp {
	int status;
	char head[8192];
	struct buf body;
	int eof;          /* the connection ended after this response */
};

static int tcp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
		close(fd);
		return -1;
	}
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static void cc_open(struct cc *c, int port)
{
	memset(c, 0, sizeof *c);
	c->fd = tcp_connect(port);
	assert_true(c->fd >= 0);
}

static void cc_close(struct cc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buf_free(&c->in);
}

static void cc_send(struct cc *c, const char *s)
{
	assert_int_equal(send_all(c->fd, s, strlen(s)), 0);
}

/* More input: >0 bytes, 0 EOF, -1 error/timeout. */
static int cc_fill(struct cc *c)
{
	char tmp[65536];
	ssize_t k;
	do
		k = recv(c->fd, tmp, sizeof tmp, 0);
	while (k < 0 && errno == EINTR);
	if (k > 0)
		buf_add(&c->in, tmp, (size_t)k);
	return k > 0 ? (int)k : k == 0 ? 0 : -1;
}

static const char *rhdr(const struct cresp *r, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name);
	for (const char *l = strstr(r->head, "\r\n"); l && l[2] && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
		const char *h = l + 2;
		if (!strncasecmp(h, name, nl) && h[nl] == ':') {
			const char *v = h + nl + 1;
			while (*v == ' ')
				v++;
			size_t vl = strcspn(v, "\r");
			if (vl >= n)
				vl = n - 1;
			memcpy(out, v, vl);
			out[vl] = 0;
			return out;
		}
	}
	return NULL;
}

static int has_hdr(const struct cresp *r, const char *name)
{
	char tmp[512];
	return rhdr(r, name, tmp, sizeof tmp) != NULL;
}

/* Read one response. Returns 0, or -1 when none came (EOF/timeout before a head). */
static int cc_resp(struct cc *c, struct cresp *r, int head_req)
{
	memset(r, 0, sizeof *r);
	char *end;
	while (!(end = c->in.p ? memmem(c->in.p, c->in.len, "\r\n\r\n", 4) : NULL)) {
		if (cc_fill(c) <= 0)
			return -1;
	}
	size_t hl = (size_t)(end - c->in.p) + 4;
	assert_true(hl < sizeof r->head);
	memcpy(r->head, c->in.p, hl);
	r->head[hl] = 0;
	buf_consume(&c->in, hl);
	r->status = atoi(r->head + 9);
	char v[64];
	int chunked = rhdr(r, "Transfer-Encoding", v, sizeof v) && strstr(v, "chunked");
	long cl = rhdr(r, "Content-Length", v, sizeof v) ? atol(v) : -1;
	int closing = rhdr(r, "Connection", v, sizeof v) && strcasestr(v, "close");
	if (head_req || r->status / 100 == 1 || r->status == 204 || r->status == 304) {
		/* no body */
	} else if (chunked) {
		for (;;) {
			char *nl;
			while (!(nl = c->in.p ? memmem(c->in.p, c->in.len, "\r\n", 2) : NULL))
				if (cc_fill(c) <= 0)
					return -1;
			long n = strtol(c->in.p, NULL, 16);
			buf_consume(&c->in, (size_t)(nl - c->in.p) + 2);
			while ((long)c->in.len < n + 2)
				if (cc_fill(c) <= 0)
					return -1;
			buf_add(&r->body, c->in.p, (size_t)n);
			buf_consume(&c->in, (size_t)n + 2);
			if (n == 0)
				break;
		}
	} else if (cl >= 0) {
		while ((long)c->in.len < cl)
			if (cc_fill(c) <= 0)
				return -1;
		buf_add(&r->body, c->in.p, (size_t)cl);
		buf_consume(&c->in, (size_t)cl);
	} else {
		while (cc_fill(c) > 0)
			;
		buf_add(&r->body, c->in.p, c->in.len);
		buf_reset(&c->in);
		r->eof = 1;
	}
	if (closing && !r->eof) {
		/* the router must close after it */
		r->eof = cc_fill(c) == 0;
	}
	return 0;
}

static void cresp_free(struct cresp *r)
{
	buf_free(&r->body);
}

/* Does the connection get closed (EOF, or a reset) within the receive timeout? */
static int cc_closed(struct cc *c)
{
	for (;;) {
		int k = cc_fill(c);
		if (k == 0)
			return 1;
		if (k < 0)
			return errno == ECONNRESET;
	}
}

/* ======================================================================================
 * The router under test
 * ====================================================================================== */

static uv_loop_t loop;
static struct endpoints *eps;
static struct router *rt;
static int rport;
static struct buf access_log;

static void on_access(void *arg, const char *lines, size_t n)
{
	buf_add(&access_log, lines, n);
}

static void pump(void)
{
	uv_run(&loop, UV_RUN_NOWAIT);
}

static void sync_router(void)
{
	int64_t t0 = now_ms();
	while (router_adopted_version(rt) < endpoints_current(eps)->version) {
		assert_true(now_ms() - t0 < 3000);
		sleep_ms(1);
	}
}

static void start(struct router_config *cfg)
{
	assert_int_equal(uv_loop_init(&loop), 0);
	eps = endpoints_new(&loop);
	struct router_config dflt = {0};
	if (!cfg)
		cfg = &dflt;
	cfg->threads = cfg->threads ? cfg->threads : 2;
	cfg->access_log = on_access;
	buf_reset(&access_log);
	struct err e = ERR_INIT;
	rt = router_new(&loop, eps, cfg, &e);
	if (!rt)
		fail_msg("router_new: %s", e.msg);
	rport = router_port(rt);
	assert_true(rport > 0);
	sync_router();
}

static void stop(void)
{
	router_free(rt);
	rt = NULL;
	uv_run(&loop, UV_RUN_DEFAULT);
	endpoints_free(eps);
	eps = NULL;
	assert_int_equal(uv_loop_close(&loop), 0);
	buf_free(&access_log);
}

static struct endpoint *put(const char *app, const char *inst, int slot, int port)
{
	struct endpoint *e = endpoints_put(eps, "production", app, "web", inst, slot, 1, port);
	sync_router();
	return e;
}

static void set_routes(const struct route *r, size_t n)
{
	endpoints_set_routes(eps, r, n);
	sync_router();
}

static void wait_inflight_zero(struct endpoint *e)
{
	int64_t t0 = now_ms();
	while (atomic_load(&e->inflight) != 0) {
		if (now_ms() - t0 > 3000)
			fail_msg("endpoint %s: inflight stuck at %d", e->instance, atomic_load(&e->inflight));
		sleep_ms(2);
	}
}

/* One request on a new connection; the response in r. */
static int get1(const char *host, const char *path, const char *extra, struct cresp *r)
{
	struct cc c;
	cc_open(&c, rport);
	char req[4096];
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, host, extra ? extra : "");
	cc_send(&c, req);
	int rc = cc_resp(&c, r, 0);
	cc_close(&c);
	return rc;
}

/* The "srv=" name in an echo body. */
static const char *srv_of(const struct cresp *r, char *out, size_t n)
{
	const char *s = strstr(buf_str(&r->body), "srv=");
	if (!s)
		return "";
	size_t l = strcspn(s + 4, " \n");
	if (l >= n)
		l = n - 1;
	memcpy(out, s + 4, l);
	out[l] = 0;
	return out;
}

static int conn_of(const struct cresp *r)
{
	const char *s = strstr(buf_str(&r->body), "conn=");
	return s ? atoi(s + 5) : -1;
}

/* The upstream's view of a header in an echo body ("" if absent). */
static const char *seen_hdr(const struct cresp *r, const char *name, char *out, size_t n)
{
	const char *b = buf_str(&r->body);
	size_t nl = strlen(name);
	out[0] = 0;
	for (const char *l = strstr(b, "\r\n"); l && l[2] && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
		if (!strncasecmp(l + 2, name, nl) && l[2 + nl] == ':') {
			const char *v = l + 3 + nl;
			while (*v == ' ')
				v++;
			size_t vl = strcspn(v, "\r");
			if (vl >= n)
				vl = n - 1;
			memcpy(out, v, vl);
			out[vl] = 0;
			return out;
		}
	}
	return out;
}

static int seen_has(const struct cresp *r, const char *name)
{
	char tmp[1024];
	const char *b = buf_str(&r->body);
	size_t nl = strlen(name);
	for (const char *l = strstr(b, "\r\n"); l && l[2] && l[2] != '\r'; l = strstr(l + 2, "\r\n"))
		if (!strncasecmp(l + 2, name, nl) && l[2 + nl] == ':')
			return 1;
	(void)tmp;
	return 0;
}

/* ASan keeps freed memory in quarantine and pads every allocation: RSS figures measured
 * under it say nothing about the router, so the memory bounds are checked without it. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ======================================================================================
 * Scenarios
 * ====================================================================================== */

static void test_routing(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A"), *b = upsrv_start("B"), *c = upsrv_start("C");
	struct endpoint *ea = put("newsite", "web.1", 1, a->port);
	struct endpoint *eb = put("oldsite", "web.1", 1, b->port);
	struct endpoint *ec = put("api", "web.1", 1, c->port);
	struct route routes[] = {
		{.host = "example.com", .path = "/", .env = "production", .app = "newsite", .process = "web"},
		{.host = "example.com", .path = "/careers", .env = "production", .app = "oldsite", .process = "web"},
		{.host = "example.com", .path = "/customers", .env = "production", .app = "oldsite", .process = "web"},
		{.host = "example.com", .path = "/careers/api", .env = "production", .app = "api", .process = "web"},
	};
	set_routes(routes, 4);
	struct {
		const char *host, *path, *srv;
	} cases[] = {
		{"example.com", "/", "A"},
		{"example.com", "/about", "A"},
		{"Example.COM:8080", "/careers", "B"},
		{"example.com", "/careers/jobs?x=1", "B"},
		{"example.com", "/careersx", "A"},
		{"example.com", "/customers/", "B"},
		{"example.com", "/careers/api/v1", "C"},
		{"example.com.", "/careers/api", "C"},
		{"http://example.com/careers", "", "B"},   /* absolute-form target */
		{"newsite.localhost", "/x", "A"},             /* default routes */
		{"newsite.production.localhost", "/x", "A"},
		{"oldsite.localhost", "/", "B"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct cresp r;
		char s[32];
		if (!*cases[i].path) {
			struct cc cl;
			cc_open(&cl, rport);
			cc_send(&cl, "GET http://example.com/careers HTTP/1.1\r\nHost: other.org\r\n\r\n");
			assert_int_equal(cc_resp(&cl, &r, 0), 0);
			cc_close(&cl);
		} else {
			assert_int_equal(get1(cases[i].host, cases[i].path, NULL, &r), 0);
		}
		if (r.status != 200 || strcmp(srv_of(&r, s, sizeof s), cases[i].srv))
			fail_msg("%s%s: status %d srv %s, want %s", cases[i].host, cases[i].path, r.status, s, cases[i].srv);
		cresp_free(&r);
	}
	/* unmatched host: 404 */
	struct cresp r;
	assert_int_equal(get1("nothing.example", "/", NULL, &r), 0);
	assert_int_equal(r.status, 404);
	cresp_free(&r);
	wait_inflight_zero(ea);
	wait_inflight_zero(eb);
	wait_inflight_zero(ec);
	upsrv_stop(a);
	upsrv_stop(b);
	upsrv_stop(c);
	stop();
}

static void test_strip_prefix(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("api", "web.1", 1, a->port);
	struct route routes[] = {
		{.host = "example.com", .path = "/api", .env = "production", .app = "api", .process = "web",
		 .strip_prefix = true},
		{.host = "example.com", .path = "/keep", .env = "production", .app = "api", .process = "web"},
	};
	set_routes(routes, 2);
	struct {
		const char *path, *want;
	} cases[] = {
		{"/api/users?x=1", "target=/users?x=1 "},
		{"/api", "target=/ "},
		{"/api?x=1", "target=/?x=1 "},
		{"/api/", "target=/ "},
		{"/keep/users", "target=/keep/users "},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct cresp r;
		assert_int_equal(get1("example.com", cases[i].path, NULL, &r), 0);
		assert_int_equal(r.status, 200);
		if (!strstr(buf_str(&r.body), cases[i].want))
			fail_msg("%s: upstream saw %s", cases[i].path, buf_str(&r.body));
		cresp_free(&r);
	}
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

static void test_error_pages(void **state)
{
	char dir[] = "/tmp/berth-router-err-XXXXXX", rdir[] = "/tmp/berth-router-rerr-XXXXXX";
	assert_non_null(mkdtemp(dir));
	assert_non_null(mkdtemp(rdir));
	struct err e = ERR_INIT;
	char path[256];
	snprintf(path, sizeof path, "%s/404.html", dir);
	assert_int_equal(fs_write_atomic(path, "<p>custom 404</p>", 17, 0644, &e), 0);
	snprintf(path, sizeof path, "%s/503.html", rdir);
	assert_int_equal(fs_write_atomic(path, "<p>route 503</p>", 16, 0644, &e), 0);
	struct router_config cfg = {.error_dir = dir, .connect_ms = 300};
	start(&cfg);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct route routes[] = {
		{.host = "down.example", .path = "/", .env = "production", .app = "nothing", .process = "web"},
		{.host = "down2.example", .path = "/", .env = "production", .app = "nothing", .process = "web",
		 .error_dir = rdir},
		{.host = "bad.example", .path = "/", .env = "production", .app = "app", .process = "web"},
	};
	set_routes(routes, 3);
	struct cresp r;
	char v[256];

	/* 404: global override */
	assert_int_equal(get1("nope.example", "/", NULL, &r), 0);
	assert_int_equal(r.status, 404);
	assert_string_equal(buf_str(&r.body), "<p>custom 404</p>");
	assert_non_null(rhdr(&r, "X-Request-Id", v, sizeof v));
	cresp_free(&r);
	/* 404 as JSON */
	assert_int_equal(get1("nope.example", "/", "Accept: application/json\r\n", &r), 0);
	assert_int_equal(r.status, 404);
	assert_string_equal(rhdr(&r, "Content-Type", v, sizeof v), "application/json");
	char want[512];
	rhdr(&r, "X-Request-Id", v, sizeof v);
	snprintf(want, sizeof want, "{\"error\": \"no app is served at this address\", \"status\": 404, \"request_id\": \"%s\"}\n", v);
	assert_string_equal(buf_str(&r.body), want);
	cresp_free(&r);
	/* a client's request id is echoed in the JSON body */
	assert_int_equal(get1("nope.example", "/", "Accept: application/json\r\nX-Request-Id: my-id-1\r\n", &r), 0);
	assert_non_null(strstr(buf_str(&r.body), "\"request_id\": \"my-id-1\""));
	cresp_free(&r);
	/* 503: no healthy instance, built-in page (branded) */
	assert_int_equal(get1("down.example", "/", NULL, &r), 0);
	assert_int_equal(r.status, 503);
	assert_non_null(strstr(buf_str(&r.body), "<h1>503</h1>"));
	assert_non_null(strstr(buf_str(&r.body), "BERTH"));
	assert_string_equal(rhdr(&r, "Content-Type", v, sizeof v), "text/html; charset=utf-8");
	cresp_free(&r);
	/* 503: the route's own page */
	assert_int_equal(get1("down2.example", "/", NULL, &r), 0);
	assert_int_equal(r.status, 503);
	assert_string_equal(buf_str(&r.body), "<p>route 503</p>");
	cresp_free(&r);
	/* 502: the instance closes without answering */
	assert_int_equal(get1("bad.example", "/close", NULL, &r), 0);
	assert_int_equal(r.status, 502);
	assert_non_null(strstr(buf_str(&r.body), "<h1>502</h1>"));
	cresp_free(&r);
	assert_int_equal(get1("bad.example", "/close", "Accept: text/html;q=0.1, application/json\r\n", &r), 0);
	assert_int_equal(r.status, 502);
	assert_non_null(strstr(buf_str(&r.body), "\"status\": 502"));
	cresp_free(&r);
	/* 502: nothing listens */
	endpoints_remove(eps, "production", "app", "web.1", 1);
	endpoint_unref(ea);
	struct endpoint *dead = put("app", "web.1", 1, dead_port());
	assert_int_equal(get1("bad.example", "/", NULL, &r), 0);
	assert_int_equal(r.status, 502);
	cresp_free(&r);
	/* keep-alive after an error page: the connection serves the next request */
	struct cc c;
	cc_open(&c, rport);
	cc_send(&c, "GET / HTTP/1.1\r\nHost: nope.example\r\n\r\nGET / HTTP/1.1\r\nHost: nope.example\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 404);
	cresp_free(&r);
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 404);
	cresp_free(&r);
	/* HEAD gets no body */
	cc_send(&c, "HEAD / HTTP/1.1\r\nHost: nope.example\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 1), 0);
	assert_int_equal(r.status, 404);
	assert_int_equal(r.body.len, 0);
	cresp_free(&r);
	cc_close(&c);
	wait_inflight_zero(dead);
	upsrv_stop(a);
	stop();
	fs_rm_rf(dir, &e);
	fs_rm_rf(rdir, &e);
}

/* Which file replaces which page, and where it is looked for (pure). */
static void test_errpage_sources(void **state)
{
	assert_string_equal(errpage_file(404, false), "404.html");
	assert_string_equal(errpage_file(502, false), "502.html");
	assert_string_equal(errpage_file(503, false), "503.html");
	assert_string_equal(errpage_file(504, false), "504.html");
	assert_null(errpage_file(400, false));   /* refusals keep the built-in page */
	assert_null(errpage_file(413, false));
	assert_null(errpage_file(500, false));
	/* maintenance has its own file (not 503.html, whose text says nothing is running) */
	assert_string_equal(errpage_file(503, true), "maintenance.html");

	struct errpage_src src[2];
	/* the route's directory, then the server's */
	assert_int_equal(errpage_sources("/r", "/g", 503, true, src), 2);
	assert_string_equal(src[0].dir, "/r");
	assert_string_equal(src[0].file, "maintenance.html");
	assert_string_equal(src[1].dir, "/g");
	assert_string_equal(src[1].file, "maintenance.html");
	assert_int_equal(errpage_sources("/r", "/g", 502, false, src), 2);
	assert_string_equal(src[0].dir, "/r");
	assert_string_equal(src[0].file, "502.html");
	/* either directory may be missing (NULL or "") */
	assert_int_equal(errpage_sources(NULL, "/g", 503, true, src), 1);
	assert_string_equal(src[0].dir, "/g");
	assert_int_equal(errpage_sources("", "/g", 504, false, src), 1);
	assert_string_equal(src[0].dir, "/g");
	assert_int_equal(errpage_sources("/r", NULL, 503, true, src), 1);
	assert_string_equal(src[0].dir, "/r");
	assert_int_equal(errpage_sources(NULL, "", 503, true, src), 0);
	/* a status without a replaceable page: nowhere */
	assert_int_equal(errpage_sources("/r", "/g", 400, false, src), 0);
}

/* One request; the upstream must not have been asked (requests counter of e). */
static void get_maint(const char *host, const char *extra, struct cresp *r)
{
	assert_int_equal(get1(host, "/shop/cart?x=1", extra, r), 0);
	assert_int_equal(r->status, 503);
	char v[256];
	assert_string_equal(rhdr(r, "Retry-After", v, sizeof v), "60");
	assert_string_equal(rhdr(r, "Cache-Control", v, sizeof v), "no-store");
	assert_non_null(rhdr(r, "X-Request-Id", v, sizeof v));
}

/* Maintenance mode: the table marks every route of the app (stored and default) and
 * publishes only on change; the router answers them with the maintenance page without
 * reaching the instance, logs the answer, and serves again once it is off. */
static void test_maintenance(void **state)
{
	char dir[] = "/tmp/berth-router-mg-XXXXXX", rdir[] = "/tmp/berth-router-mr-XXXXXX";
	assert_non_null(mkdtemp(dir));
	assert_non_null(mkdtemp(rdir));
	struct err e = ERR_INIT;
	char path[256];
	/* a 503.html must not be taken for the maintenance page */
	snprintf(path, sizeof path, "%s/503.html", rdir);
	assert_int_equal(fs_write_atomic(path, "<p>route 503</p>", 16, 0644, &e), 0);
	struct router_config cfg = {.error_dir = dir};
	start(&cfg);
	struct upsrv *a = upsrv_start("A"), *b = upsrv_start("B");
	struct endpoint *ea = put("shop", "web.1", 1, a->port);
	struct endpoint *eb = put("blog", "web.1", 1, b->port);
	struct route routes[] = {
		{.host = "shop.example", .path = "/", .env = "production", .app = "shop", .process = "web",
		 .error_dir = rdir, .maintenance = true},   /* a caller's flag is ignored */
		{.host = "shop.example", .path = "/blog", .env = "production", .app = "blog", .process = "web"},
	};
	set_routes(routes, 2);
	struct cresp r;
	char s[32], v[512];
	assert_int_equal(get1("shop.example", "/", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(srv_of(&r, s, sizeof s), "A");
	cresp_free(&r);

	uint64_t v0 = endpoints_current(eps)->version;
	endpoints_set_maintenance(eps, "production", "shop", true);
	assert_true(endpoints_maintenance(eps, "production", "shop"));
	assert_false(endpoints_maintenance(eps, "production", "blog"));
	uint64_t v1 = endpoints_current(eps)->version;
	assert_true(v1 > v0);
	endpoints_set_maintenance(eps, "production", "shop", true);   /* no change: no new table */
	endpoints_set_maintenance(eps, "staging", "shop", false);
	assert_true(endpoints_current(eps)->version == v1);
	const struct ep_snapshot *snap = endpoints_current(eps);
	size_t marked = 0;
	for (size_t k = 0; k < snap->nroutes; k++) {
		const struct route *rt0 = &snap->routes[k];
		assert_int_equal(rt0->maintenance, !strcmp(rt0->app, "shop"));
		marked += rt0->maintenance;
	}
	assert_int_equal(marked, 3);   /* shop.example/, shop.localhost, shop.production.localhost */
	sync_router();
	assert_true(endpoints_adopted_all(eps, v1));

	uint64_t before = atomic_load(&ea->requests);
	/* the built-in page: branded, never the route's 503.html */
	get_maint("shop.example", NULL, &r);
	assert_non_null(strstr(buf_str(&r.body), "Down for maintenance"));
	assert_non_null(strstr(buf_str(&r.body), "BERTH"));
	assert_null(strstr(buf_str(&r.body), "route 503"));
	assert_string_equal(rhdr(&r, "Content-Type", v, sizeof v), "text/html; charset=utf-8");
	cresp_free(&r);
	get_maint("shop.localhost", NULL, &r);
	cresp_free(&r);
	get_maint("shop.production.localhost", "X-Request-Id: maint-id-1\r\n", &r);
	cresp_free(&r);
	/* JSON */
	get_maint("shop.example", "Accept: application/json\r\nX-Request-Id: maint-id-2\r\n", &r);
	assert_string_equal(rhdr(&r, "Content-Type", v, sizeof v), "application/json");
	assert_string_equal(buf_str(&r.body), "{\"error\": \"this app is down for maintenance\", \"status\": 503, "
			    "\"request_id\": \"maint-id-2\"}\n");
	cresp_free(&r);
	/* another app on the same host is served */
	assert_int_equal(get1("shop.example", "/blog/x", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(srv_of(&r, s, sizeof s), "B");
	cresp_free(&r);
	/* keep-alive goes on after the page; HEAD gets no body */
	struct cc c;
	cc_open(&c, rport);
	cc_send(&c, "HEAD / HTTP/1.1\r\nHost: shop.example\r\n\r\nGET /blog HTTP/1.1\r\nHost: shop.example\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 1), 0);
	assert_int_equal(r.status, 503);
	assert_int_equal(r.body.len, 0);
	cresp_free(&r);
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	/* a request with a body is answered too (and the connection closed after it) */
	cc_send(&c, "POST / HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 5\r\n\r\nhello");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 503);
	cresp_free(&r);
	cc_close(&c);
	assert_true(atomic_load(&ea->requests) == before);   /* the instance was never asked */

	/* pages: the route's maintenance.html, then the server's */
	snprintf(path, sizeof path, "%s/maintenance.html", dir);
	assert_int_equal(fs_write_atomic(path, "<p>global maint</p>", 19, 0644, &e), 0);
	snprintf(path, sizeof path, "%s/maintenance.html", rdir);
	assert_int_equal(fs_write_atomic(path, "<p>route maint</p>", 18, 0644, &e), 0);
	int64_t t0 = now_ms();
	for (;;) {   /* pages are re-read at most every 2 s */
		get_maint("shop.localhost", NULL, &r);
		bool seen = !strcmp(buf_str(&r.body), "<p>global maint</p>");
		cresp_free(&r);
		if (seen)
			break;
		if (now_ms() - t0 > 5000)
			fail_msg("the global maintenance.html was not picked up");
		sleep_ms(50);
	}
	t0 = now_ms();
	for (;;) {
		get_maint("shop.example", NULL, &r);
		bool seen = !strcmp(buf_str(&r.body), "<p>route maint</p>");
		cresp_free(&r);
		if (seen)
			break;
		if (now_ms() - t0 > 5000)
			fail_msg("the route's maintenance.html was not picked up");
		sleep_ms(50);
	}

	/* the access log records the 503s */
	t0 = now_ms();
	while (!strstr(buf_str(&access_log), "id=maint-id-2") && now_ms() - t0 < 2000) {
		pump();
		sleep_ms(1);
	}
	const char *l = strstr(buf_str(&access_log), "id=maint-id-1");
	assert_non_null(l);
	const char *bol = l;
	while (bol > buf_str(&access_log) && bol[-1] != '\n')
		bol--;
	size_t ll = strcspn(bol, "\n");
	snprintf(v, sizeof v, "%.*s", (int)ll, bol);
	assert_non_null(strstr(v, " host=\"shop.production.localhost\" route=\"shop.production.localhost/\" "
			       "app=production/shop upstream=- addr=- status=503 "));
	assert_non_null(strstr(v, " maintenance=1"));
	/* ... and only them */
	l = strstr(buf_str(&access_log), "target=\"/blog/x\"");
	assert_non_null(l);
	ll = strcspn(l, "\n");
	snprintf(v, sizeof v, "%.*s", (int)ll, l);
	assert_non_null(strstr(v, " status=200 "));
	assert_null(strstr(v, "maintenance="));

	/* off: served again */
	endpoints_set_maintenance(eps, "production", "shop", false);
	sync_router();
	assert_false(endpoints_maintenance(eps, "production", "shop"));
	assert_int_equal(get1("shop.example", "/", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(srv_of(&r, s, sizeof s), "A");
	cresp_free(&r);
	assert_int_equal(get1("shop.localhost", "/", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	/* an app in maintenance with no instance and no route yet: its routes come later flagged */
	endpoints_set_maintenance(eps, "production", "later", true);
	endpoints_declare_app(eps, "production", "later", true);
	sync_router();
	get_maint("later.localhost", NULL, &r);
	cresp_free(&r);
	wait_inflight_zero(ea);
	wait_inflight_zero(eb);
	upsrv_stop(a);
	upsrv_stop(b);
	stop();
	fs_rm_rf(dir, &e);
	fs_rm_rf(rdir, &e);
}

static void test_forwarded_headers(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct cresp r;
	char v[512];
	assert_int_equal(get1("app.localhost:8080", "/echo",
			      "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nX-Forwarded-Proto: https\r\n"
			      "X-Forwarded-Host: evil\r\nX-Request-Id: abc-123\r\n"
			      "Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
			      "Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Other: kept\r\n",
			      &r),
			 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(seen_hdr(&r, "X-Forwarded-For", v, sizeof v), "10.0.0.1, 10.0.0.2, 127.0.0.1");
	assert_string_equal(seen_hdr(&r, "X-Forwarded-Proto", v, sizeof v), "http");
	assert_string_equal(seen_hdr(&r, "X-Forwarded-Host", v, sizeof v), "app.localhost:8080");
	assert_string_equal(seen_hdr(&r, "Host", v, sizeof v), "app.localhost:8080");
	assert_string_equal(seen_hdr(&r, "X-Request-Id", v, sizeof v), "abc-123");
	assert_string_equal(seen_hdr(&r, "X-Other", v, sizeof v), "kept");
	assert_false(seen_has(&r, "X-Secret"));
	assert_false(seen_has(&r, "Keep-Alive"));
	assert_false(seen_has(&r, "TE"));
	assert_false(seen_has(&r, "Proxy-Connection"));
	assert_false(seen_has(&r, "Upgrade"));
	assert_false(seen_has(&r, "Connection"));
	cresp_free(&r);
	/* a malformed request id is replaced by 32 hex digits */
	assert_int_equal(get1("app.localhost", "/echo", "X-Request-Id: bad id\"\r\n", &r), 0);
	seen_hdr(&r, "X-Request-Id", v, sizeof v);
	assert_int_equal(strlen(v), 32);
	assert_int_equal(strspn(v, "0123456789abcdef"), 32);
	assert_string_equal(seen_hdr(&r, "X-Forwarded-For", v, sizeof v), "127.0.0.1");
	cresp_free(&r);
	/* two requests get two ids */
	char id1[64];
	assert_int_equal(get1("app.localhost", "/echo", NULL, &r), 0);
	seen_hdr(&r, "X-Request-Id", id1, sizeof id1);
	cresp_free(&r);
	assert_int_equal(get1("app.localhost", "/echo", NULL, &r), 0);
	assert_string_not_equal(seen_hdr(&r, "X-Request-Id", v, sizeof v), id1);
	cresp_free(&r);
	/* hop-by-hop fields of the answer are dropped, the rest kept */
	assert_int_equal(get1("app.localhost", "/hop", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(buf_str(&r.body), "hop");
	assert_false(has_hdr(&r, "X-Up-Secret"));
	assert_false(has_hdr(&r, "Keep-Alive"));
	assert_false(has_hdr(&r, "Proxy-Connection"));
	assert_false(has_hdr(&r, "Trailer"));
	assert_false(has_hdr(&r, "Upgrade"));
	assert_false(has_hdr(&r, "Connection"));
	assert_true(has_hdr(&r, "X-Kept"));
	cresp_free(&r);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

static void test_keepalive_reuse(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct cc c;
	cc_open(&c, rport);
	int first = -1;
	for (int i = 0; i < 5; i++) {
		struct cresp r;
		cc_send(&c, "GET /echo HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
		assert_int_equal(cc_resp(&c, &r, 0), 0);
		assert_int_equal(r.status, 200);
		assert_false(r.eof);
		if (first < 0)
			first = conn_of(&r);
		assert_int_equal(conn_of(&r), first);   /* one pooled upstream connection */
		char want[32];
		snprintf(want, sizeof want, "req=%d ", i + 1);
		assert_non_null(strstr(buf_str(&r.body), want));
		cresp_free(&r);
	}
	/* HTTP/1.0 with keep-alive */
	cc_send(&c, "GET /echo HTTP/1.0\r\nHost: app.localhost\r\nConnection: keep-alive\r\n\r\n");
	struct cresp r;
	char v[64];
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(rhdr(&r, "Connection", v, sizeof v), "keep-alive");
	cresp_free(&r);
	/* Connection: close ends it after the answer */
	cc_send(&c, "GET /echo HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(rhdr(&r, "Connection", v, sizeof v), "close");
	assert_true(r.eof);
	cresp_free(&r);
	cc_close(&c);
	assert_int_equal(atomic_load(&a->conns), 1);
	/* HTTP/1.0 without keep-alive: close-delimited answer from a chunked upstream */
	cc_open(&c, rport);
	cc_send(&c, "GET /bigchunked?n=100000 HTTP/1.0\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body.len, 100000);
	assert_false(has_hdr(&r, "Transfer-Encoding"));
	cresp_free(&r);
	cc_close(&c);
	/* a close-delimited upstream answer is re-framed as chunked for HTTP/1.1 */
	cc_open(&c, rport);
	cc_send(&c, "GET /eof HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_string_equal(rhdr(&r, "Transfer-Encoding", v, sizeof v), "chunked");
	assert_string_equal(buf_str(&r.body), "body-until-eof");
	cresp_free(&r);
	cc_send(&c, "GET /h10 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_string_equal(buf_str(&r.body), "ten-body");
	cresp_free(&r);
	/* 204 / 304 carry no body even with a Content-Length; HEAD neither */
	cc_send(&c, "GET /status/304 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 304);
	cresp_free(&r);
	cc_send(&c, "GET /status/204 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 204);
	cresp_free(&r);
	cc_send(&c, "HEAD /echo HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 1), 0);
	assert_int_equal(r.status, 200);
	assert_true(has_hdr(&r, "Content-Length"));
	cresp_free(&r);
	/* an interim 100 from the instance is not passed on */
	cc_send(&c, "GET /100 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	cc_send(&c, "GET /echo HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	cc_close(&c);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

static void test_streaming(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct cc c;
	struct cresp r;
	/* request body: the instance sees the first chunk before the client sends the rest */
	cc_open(&c, rport);
	cc_send(&c, "POST /bodywait HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "5\r\nhello\r\n");
	int64_t t0 = now_ms();
	while (!atomic_load(&a->first_chunk)) {
		if (now_ms() - t0 > 3000)
			fail_msg("the first chunk did not reach the instance: the body was buffered");
		sleep_ms(1);
	}
	cc_send(&c, "6\r\n world\r\n0\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(buf_str(&r.body), "body=11 "));
	cresp_free(&r);
	/* Content-Length body, with Expect: 100-continue */
	cc_send(&c, "POST /echo HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 100);
	cresp_free(&r);
	cc_send(&c, "abcde");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(buf_str(&r.body), "body=5 "));
	cresp_free(&r);
	/* response body: the client gets the first chunk while the instance waits */
	cc_send(&c, "GET /chunkwait HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	t0 = now_ms();
	while (!c.in.p || !memmem(c.in.p, c.in.len, "first", 5)) {
		assert_true(cc_fill(&c) > 0);
		if (now_ms() - t0 > 3000)
			fail_msg("the first chunk did not reach the client");
	}
	atomic_store(&a->go, 1);
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(buf_str(&r.body), "firstsecond");
	cresp_free(&r);
	/* a big chunked request body */
	cc_send(&c, "POST /echo HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
	char chunk[8192 + 16];
	memset(chunk, 'z', sizeof chunk);
	for (int i = 0; i < 256; i++) {
		char h[16];
		snprintf(h, sizeof h, "2000\r\n");
		cc_send(&c, h);
		assert_int_equal(send_all(c.fd, chunk, 8192), 0);
		cc_send(&c, "\r\n");
	}
	cc_send(&c, "0\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(buf_str(&r.body), "body=2097152 "));
	cresp_free(&r);
	cc_close(&c);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

static void test_large_response(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	const long n = 50L * 1024 * 1024;
	long rss0 = rss_kib();
	struct cc c;
	cc_open(&c, rport);
	char req[128];
	snprintf(req, sizeof req, "GET /big?n=%ld HTTP/1.1\r\nHost: app.localhost\r\n\r\n", n);
	cc_send(&c, req);
	/* do not read for a while: the router must stop reading the instance */
	sleep_ms(700);
	long rss_paused = rss_kib();
	/* read it all, checking every byte */
	long got = 0;
	int in_body = 0;
	char buf[65536];
	int64_t t0 = now_ms();
	while (got < n) {
		ssize_t k = recv(c.fd, buf, sizeof buf, 0);
		assert_true(k > 0);
		size_t off = 0;
		if (!in_body) {
			buf_add(&c.in, buf, (size_t)k);
			char *e = memmem(c.in.p, c.in.len, "\r\n\r\n", 4);
			if (!e)
				continue;
			assert_int_equal(strncmp(c.in.p, "HTTP/1.1 200", 12), 0);
			size_t hl = (size_t)(e - c.in.p) + 4;
			for (size_t i = hl; i < c.in.len; i++, got++)
				assert_true(c.in.p[i] == pattern_byte((size_t)got));
			buf_reset(&c.in);
			in_body = 1;
			continue;
		}
		for (; off < (size_t)k; off++, got++)
			if (buf[off] != pattern_byte((size_t)got))
				fail_msg("byte %ld differs", got);
	}
	assert_int_equal(got, n);
	long rss1 = rss_kib();
	printf("[ RSS      ] 50 MiB streamed in %lld ms: RSS %+ld KiB while paused, %+ld KiB after\n",
	       (long long)(now_ms() - t0), rss_paused - rss0, rss1 - rss0);
	if (!UNDER_ASAN) {
		assert_true(rss_paused - rss0 < 8 * 1024);
		assert_true(rss1 - rss0 < 8 * 1024);
	}
	/* the connection is still good */
	struct cresp r;
	cc_send(&c, "GET /echo HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	cc_close(&c);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

static void test_pipelining(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct cc c;
	cc_open(&c, rport);
	/* five requests in one write: a slow one first, an unrouted one, a POST, answers in order */
	cc_send(&c, "GET /slow?ms=200 HTTP/1.1\r\nHost: app.localhost\r\n\r\n"
		    "GET /echo?n=2 HTTP/1.1\r\nHost: app.localhost\r\n\r\n"
		    "GET / HTTP/1.1\r\nHost: unknown.example\r\n\r\n"
		    "POST /echo?n=4 HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 3\r\n\r\nabc"
		    "GET /echo?n=5 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	const char *want[] = {"target=/slow?ms=200 ", "target=/echo?n=2 ", NULL, "target=/echo?n=4 body=3 ",
			      "target=/echo?n=5 "};
	for (int i = 0; i < 5; i++) {
		struct cresp r;
		assert_int_equal(cc_resp(&c, &r, 0), 0);
		if (!want[i]) {
			assert_int_equal(r.status, 404);
		} else {
			assert_int_equal(r.status, 200);
			if (!strstr(buf_str(&r.body), want[i]))
				fail_msg("answer %d: %s", i, buf_str(&r.body));
		}
		cresp_free(&r);
	}
	cc_close(&c);
	/* many small pipelined requests in one write */
	cc_open(&c, rport);
	struct buf many = BUF_INIT;
	for (int i = 0; i < 200; i++)
		buf_addf(&many, "GET /echo?i=%d HTTP/1.1\r\nHost: app.localhost\r\n\r\n", i);
	assert_int_equal(send_all(c.fd, many.p, many.len), 0);
	buf_free(&many);
	for (int i = 0; i < 200; i++) {
		struct cresp r;
		char w[32];
		assert_int_equal(cc_resp(&c, &r, 0), 0);
		snprintf(w, sizeof w, "target=/echo?i=%d ", i);
		assert_non_null(strstr(buf_str(&r.body), w));
		cresp_free(&r);
	}
	cc_close(&c);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

static void test_websocket(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct cc c;
	cc_open(&c, rport);
	cc_send(&c, "GET /ws HTTP/1.1\r\nHost: app.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nearly");
	struct cresp r;
	char v[64];
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 101);
	assert_string_equal(rhdr(&r, "Upgrade", v, sizeof v), "websocket");
	assert_string_equal(rhdr(&r, "Connection", v, sizeof v), "Upgrade");
	assert_string_equal(rhdr(&r, "Sec-WebSocket-Accept", v, sizeof v), "test");
	cresp_free(&r);
	/* the bytes sent before the 101 come back first, then each message */
	while (c.in.len < 5)
		assert_true(cc_fill(&c) > 0);
	assert_memory_equal(c.in.p, "early", 5);
	buf_reset(&c.in);
	for (int i = 0; i < 20; i++) {
		char msg[64];
		snprintf(msg, sizeof msg, "message %d", i);
		cc_send(&c, msg);
		while (c.in.len < strlen(msg))
			assert_true(cc_fill(&c) > 0);
		assert_memory_equal(c.in.p, msg, strlen(msg));
		buf_reset(&c.in);
	}
	/* a large burst both ways */
	static char big[1 << 20];
	memset(big, 'w', sizeof big);
	assert_int_equal(send_all(c.fd, big, sizeof big), 0);
	while (c.in.len < sizeof big)
		assert_true(cc_fill(&c) > 0);
	assert_int_equal(c.in.len, sizeof big);
	assert_true(atomic_load(&ea->inflight) == 1);   /* the tunnel counts while open */
	struct router_stats st;
	router_stats(rt, &st);
	assert_int_equal(st.tunnels, 1);
	router_stats_release(&st);
	/* the client half-closes: the instance sees EOF and closes, so does the router */
	shutdown(c.fd, SHUT_WR);
	assert_true(cc_closed(&c));
	cc_close(&c);
	wait_inflight_zero(ea);
	/* an upgrade the instance refuses is a normal answer */
	cc_open(&c, rport);
	cc_send(&c, "GET /echo HTTP/1.1\r\nHost: app.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	cc_close(&c);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

static void test_connect_retry(void **state)
{
	struct router_config cfg = {.threads = 1};
	start(&cfg);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *dead = put("app", "web.1", 1, dead_port());
	struct endpoint *live = put("app", "web.2", 2, a->port);
	for (int i = 0; i < 10; i++) {
		struct cresp r;
		char s[16];
		assert_int_equal(get1("app.localhost", "/echo", NULL, &r), 0);
		assert_int_equal(r.status, 200);
		assert_string_equal(srv_of(&r, s, sizeof s), "A");
		cresp_free(&r);
	}
	struct router_stats st;
	int64_t t0 = now_ms();
	for (;;) {
		router_stats(rt, &st);
		if (st.requests == 10 || now_ms() - t0 > 2000)
			break;
		router_stats_release(&st);
		sleep_ms(2);
	}
	assert_true(st.upstream_errors[ROUTER_UPERR_CONNECT] >= 4);
	assert_int_equal(st.nroutes, 1);
	assert_string_equal(st.routes[0].route, "app.localhost/");
	assert_int_equal(st.routes[0].upstream_errors[ROUTER_UPERR_CONNECT], st.upstream_errors[ROUTER_UPERR_CONNECT]);
	assert_true(st.retries >= 4);
	assert_int_equal(st.status[1], 10);
	router_stats_release(&st);
	wait_inflight_zero(dead);
	wait_inflight_zero(live);
	upsrv_stop(a);
	stop();
}

static void test_no_retry_after_body(void **state)
{
	struct router_config cfg = {.threads = 1};
	start(&cfg);
	struct upsrv *a = upsrv_start("A"), *b = upsrv_start("B");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct endpoint *eb = put("app", "web.2", 2, b->port);
	/* whichever instance gets the POST reads its body and closes: 502, the other is not tried */
	struct cc c;
	cc_open(&c, rport);
	cc_send(&c, "POST /postclose HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 11\r\n\r\nhello world");
	struct cresp r;
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 502);
	cresp_free(&r);
	cc_close(&c);
	assert_int_equal(atomic_load(&a->reqs) + atomic_load(&b->reqs), 1);
	/* a stale pooled connection (the instance dropped it) is retried once on a fresh one */
	endpoints_remove(eps, "production", "app", "web.2", 1);
	endpoint_unref(eb);
	sync_router();
	cc_open(&c, rport);
	cc_send(&c, "GET /drop2 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	int conns = atomic_load(&a->conns);
	cc_send(&c, "GET /drop2 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);   /* the 2nd request of a connection was dropped, then retried */
	assert_int_equal(atomic_load(&a->conns), conns + 1);
	cresp_free(&r);
	/* but a POST with a body that went out is not retried */
	cc_send(&c, "POST /drop2 HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 3\r\n\r\nabc");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 502);
	cresp_free(&r);
	cc_close(&c);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	upsrv_stop(b);
	stop();
}

static void test_timeouts(void **state)
{
	struct router_config cfg = {.header_ms = 300, .idle_ms = 300, .response_ms = 300, .connect_ms = 300,
				    .body_ms = 300};
	start(&cfg);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct cc c;
	struct cresp r;
	/* header: a partial head gets 408 and the connection closes */
	cc_open(&c, rport);
	cc_send(&c, "GET / HTTP/1.1\r\nHo");
	int64_t t0 = now_ms();
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 408);
	assert_true(now_ms() - t0 >= 250);
	assert_true(r.eof);
	cresp_free(&r);
	cc_close(&c);
	/* a connection that never sends anything is closed */
	cc_open(&c, rport);
	assert_true(cc_closed(&c));
	cc_close(&c);
	/* idle keep-alive */
	cc_open(&c, rport);
	cc_send(&c, "GET /echo HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	cresp_free(&r);
	t0 = now_ms();
	assert_true(cc_closed(&c));
	assert_true(now_ms() - t0 >= 250);
	cc_close(&c);
	/* upstream response */
	assert_int_equal(get1("app.localhost", "/hang", NULL, &r), 0);
	assert_int_equal(r.status, 504);
	cresp_free(&r);
	wait_inflight_zero(ea);
	/* client body too slow */
	cc_open(&c, rport);
	cc_send(&c, "POST /echo HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 100\r\n\r\n0123456789");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 408);
	cresp_free(&r);
	cc_close(&c);
	wait_inflight_zero(ea);
	/* upstream connect: a listener whose backlog is full drops SYNs */
	int port;
	int lfd = listen_any(&port, 0);
	int fill[4];
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
	}
	sleep_ms(50);
	endpoints_remove(eps, "production", "app", "web.1", 1);
	endpoint_unref(ea);
	struct endpoint *eslow = put("app", "web.1", 1, port);
	t0 = now_ms();
	assert_int_equal(get1("app.localhost", "/", NULL, &r), 0);
	assert_int_equal(r.status, 504);
	assert_true(now_ms() - t0 < 2000);
	cresp_free(&r);
	struct router_stats st;
	router_stats(rt, &st);
	assert_true(st.upstream_errors[ROUTER_UPERR_CONNECT_TIMEOUT] >= 1);
	assert_true(st.upstream_errors[ROUTER_UPERR_TIMEOUT] >= 1);
	router_stats_release(&st);
	wait_inflight_zero(eslow);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
	upsrv_stop(a);
	stop();
}

static void test_slowloris(void **state)
{
	struct router_config cfg = {.header_ms = 600};
	start(&cfg);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct cc c;
	cc_open(&c, rport);
	const char *req = "GET /echo HTTP/1.1\r\nHost: app.localhost\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	int64_t t0 = now_ms();
	int refused = 0;
	for (size_t i = 0; req[i] && now_ms() - t0 < 3000; i++) {
		if (send(c.fd, req + i, 1, MSG_NOSIGNAL) != 1) {
			refused = 1;
			break;
		}
		struct pollfd pf = {c.fd, POLLIN, 0};
		if (poll(&pf, 1, 100) > 0) {
			refused = 1;
			break;
		}
	}
	assert_true(refused);
	struct cresp r;
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 408);
	int64_t took = now_ms() - t0;
	assert_true(took >= 550 && took < 1500);
	assert_true(r.eof);
	cresp_free(&r);
	cc_close(&c);
	/* others are still served */
	assert_int_equal(get1("app.localhost", "/echo", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

static void test_smuggling(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct {
		const char *req;
		int status;
	} cases[] = {
		{"POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400},
		{"POST / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
		/* chunk data not followed by CRLF (llhttp 8 alone would take "XX" for it) */
		{"POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		{"POST / HTTP/1.0\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"GET / HTTP/1.1\nHost: app.localhost\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: app.localhost\r\nX: a\rb\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: other\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\n\r\n", 400},
		{"GET /%00 HTTP/1.1\r\nHost: app.localhost\r\n\r\n", 400},
		{"GET / HTTP/1.2\r\nHost: app.localhost\r\n\r\n", 505},
		{"CONNECT app.localhost:80 HTTP/1.1\r\nHost: app.localhost\r\n\r\n", 501},
		{"GET / HTTP/1.1\r\nHost: app\x01.localhost\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
	};
	int reqs0 = atomic_load(&a->reqs);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct cc c;
		struct cresp r;
		cc_open(&c, rport);
		cc_send(&c, cases[i].req);
		if (cc_resp(&c, &r, 0))
			fail_msg("case %zu: no answer", i);
		if (r.status != cases[i].status)
			fail_msg("case %zu: status %d, want %d", i, r.status, cases[i].status);
		assert_true(r.eof);
		cresp_free(&r);
		cc_close(&c);
	}
	/* a bad chunk size in the middle of a proxied body: the instance gets a cut body */
	struct cc c;
	struct cresp r;
	cc_open(&c, rport);
	cc_send(&c, "POST /echo HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n");
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 400);
	cresp_free(&r);
	cc_close(&c);
	/* oversized head */
	cc_open(&c, rport);
	struct buf big = BUF_INIT;
	buf_adds(&big, "GET / HTTP/1.1\r\nHost: app.localhost\r\n");
	while (big.len < HTTP_MAX_HEAD + 1000)
		buf_adds(&big, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
	send_all(c.fd, big.p, big.len);
	buf_free(&big);
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 431);
	cresp_free(&r);
	cc_close(&c);
	/* only the heads of the three requests with a bad chunk reached the instance (their
	 * bodies were cut, the connection closed); the router still serves */
	assert_int_equal(get1("app.localhost", "/echo", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	int64_t t0 = now_ms();
	while (atomic_load(&a->reqs) < reqs0 + 4 && now_ms() - t0 < 2000)
		sleep_ms(2);
	sleep_ms(50);
	assert_int_equal(atomic_load(&a->reqs), reqs0 + 4);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

static void test_client_abort(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	/* the client leaves while the instance thinks */
	struct cc c;
	cc_open(&c, rport);
	cc_send(&c, "GET /hang HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	int64_t t0 = now_ms();
	while (atomic_load(&ea->inflight) != 1 && now_ms() - t0 < 2000)
		sleep_ms(1);
	assert_int_equal(atomic_load(&ea->inflight), 1);
	cc_close(&c);
	wait_inflight_zero(ea);
	/* the client leaves in the middle of a big answer */
	cc_open(&c, rport);
	cc_send(&c, "GET /big?n=30000000 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	assert_true(cc_fill(&c) > 0);
	cc_close(&c);
	wait_inflight_zero(ea);
	/* the client leaves in the middle of its body */
	cc_open(&c, rport);
	cc_send(&c, "POST /echo HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 100000\r\n\r\nabc");
	sleep_ms(50);
	cc_close(&c);
	wait_inflight_zero(ea);
	/* the instance answers early (before reading the body) */
	cc_open(&c, rport);
	cc_send(&c, "POST /early HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 100000\r\n\r\nabc");
	struct cresp r;
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 413);
	assert_string_equal(buf_str(&r.body), "nope");
	cresp_free(&r);
	cc_close(&c);
	wait_inflight_zero(ea);
	sleep_ms(50);
	pump();
	struct router_stats st;
	router_stats(rt, &st);
	assert_true(st.aborted >= 2);
	router_stats_release(&st);
	upsrv_stop(a);
	stop();
}

static void test_least_conn_and_swap(void **state)
{
	struct router_config cfg = {.threads = 2};
	start(&cfg);
	struct upsrv *a = upsrv_start("A"), *b = upsrv_start("B");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct endpoint *eb = put("app", "web.2", 2, b->port);
	struct route routes[] = {
		{.host = "lc.example", .path = "/", .env = "production", .app = "app", .process = "web",
		 .balance = BALANCE_LEAST_CONN},
	};
	set_routes(routes, 1);
	/* round-robin on the default route spreads requests */
	int na = 0, nb = 0;
	for (int i = 0; i < 10; i++) {
		struct cresp r;
		char s[16];
		assert_int_equal(get1("app.localhost", "/echo", NULL, &r), 0);
		if (!strcmp(srv_of(&r, s, sizeof s), "A"))
			na++;
		else
			nb++;
		cresp_free(&r);
	}
	assert_true(na >= 4 && nb >= 4);
	/* least-connections: with a request hanging on one, the others go to the other */
	wait_inflight_zero(ea);
	wait_inflight_zero(eb);
	struct cc hang;
	cc_open(&hang, rport);
	cc_send(&hang, "GET /hang HTTP/1.1\r\nHost: lc.example\r\n\r\n");
	int64_t t0 = now_ms();
	while (atomic_load(&ea->inflight) + atomic_load(&eb->inflight) != 1 && now_ms() - t0 < 2000)
		sleep_ms(1);
	const char *busy = atomic_load(&ea->inflight) ? "A" : "B";
	struct endpoint *idle_ep = atomic_load(&ea->inflight) ? eb : ea;
	for (int i = 0; i < 6; i++) {
		struct cresp r;
		char s[16];
		/* the last answer's inflight may still be counted on the other router thread */
		wait_inflight_zero(idle_ep);
		assert_int_equal(get1("lc.example", "/echo", NULL, &r), 0);
		assert_string_not_equal(srv_of(&r, s, sizeof s), busy);
		cresp_free(&r);
	}
	cc_close(&hang);
	wait_inflight_zero(ea);
	wait_inflight_zero(eb);

	/* snapshot swap while a request runs: the request finishes on the old instance, new
	 * ones go to the new one, and the old one drains */
	struct upsrv *c2 = upsrv_start("C");
	struct cc slow;
	cc_open(&slow, rport);
	cc_send(&slow, "GET /slow?ms=400 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	t0 = now_ms();
	while (atomic_load(&ea->inflight) + atomic_load(&eb->inflight) != 1 && now_ms() - t0 < 2000)
		sleep_ms(1);
	struct endpoint *ra = endpoints_remove(eps, "production", "app", "web.1", 1);
	struct endpoint *rb = endpoints_remove(eps, "production", "app", "web.2", 1);
	struct endpoint *ec = put("app", "web.3", 3, c2->port);
	assert_false(endpoints_drained(eps, atomic_load(&ra->inflight) ? ra : rb));
	for (int i = 0; i < 4; i++) {
		struct cresp r;
		char s[16];
		assert_int_equal(get1("app.localhost", "/echo", NULL, &r), 0);
		assert_string_equal(srv_of(&r, s, sizeof s), "C");
		cresp_free(&r);
	}
	struct cresp r;
	assert_int_equal(cc_resp(&slow, &r, 0), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	cc_close(&slow);
	t0 = now_ms();
	while (!(endpoints_drained(eps, ra) && endpoints_drained(eps, rb))) {
		assert_true(now_ms() - t0 < 3000);
		sleep_ms(2);
	}
	endpoint_unref(ra);
	endpoint_unref(rb);
	wait_inflight_zero(ec);
	upsrv_stop(a);
	upsrv_stop(b);
	upsrv_stop(c2);
	stop();
}

static uint64_t stat_idle(void)
{
	struct router_stats st;
	router_stats(rt, &st);
	uint64_t n = st.upstream_idle;
	router_stats_release(&st);
	return n;
}

static void wait_idle(uint64_t want)
{
	int64_t t0 = now_ms();
	while (stat_idle() != want) {
		if (now_ms() - t0 > 3000)
			fail_msg("idle upstream connections: %llu, want %llu", (unsigned long long)stat_idle(),
				 (unsigned long long)want);
		sleep_ms(2);
	}
}

static void test_upstream_pool(void **state)
{
	struct router_config cfg = {.upstream_idle_ms = 300, .threads = 1, .pool_max_idle = 2};
	start(&cfg);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct cresp r;
	assert_int_equal(get1("app.localhost", "/echo", NULL, &r), 0);
	assert_int_equal(conn_of(&r), 1);
	cresp_free(&r);
	wait_idle(1);
	assert_int_equal(get1("app.localhost", "/echo", NULL, &r), 0);
	assert_int_equal(conn_of(&r), 1);        /* reused across client connections */
	cresp_free(&r);
	/* idle for longer than upstream_idle_ms: closed, the next request opens another */
	sleep_ms(500);
	wait_idle(0);
	assert_int_equal(get1("app.localhost", "/echo", NULL, &r), 0);
	assert_int_equal(conn_of(&r), 2);
	cresp_free(&r);
	/* three at once: three connections, two of them kept (pool_max_idle) */
	struct cc cs[3];
	for (int i = 0; i < 3; i++) {
		cc_open(&cs[i], rport);
		cc_send(&cs[i], "GET /slow?ms=150 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(cc_resp(&cs[i], &r, 0), 0);
		assert_int_equal(r.status, 200);
		cresp_free(&r);
		cc_close(&cs[i]);
	}
	wait_idle(2);
	/* the instance leaves the table: its idle connections are closed at once */
	wait_inflight_zero(ea);
	struct endpoint *gone = endpoints_remove(eps, "production", "app", "web.1", 1);
	sync_router();
	wait_idle(0);
	endpoint_unref(gone);
	/* an instance that closes an idle connection: noticed at once, never reused */
	struct endpoint *eb = put("app", "web.2", 2, a->port);
	int conns = atomic_load(&a->conns);
	assert_int_equal(get1("app.localhost", "/closeidle", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	assert_int_equal(atomic_load(&a->conns), conns + 1);
	sleep_ms(100);
	wait_idle(0);
	assert_int_equal(get1("app.localhost", "/echo", NULL, &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(conn_of(&r), conns + 2);
	cresp_free(&r);
	wait_inflight_zero(eb);
	upsrv_stop(a);
	stop();
}

struct upload {
	int fd;
	long n;
	int rc;
};

static void *upload_main(void *arg)
{
	struct upload *u = arg;
	static char block[65536];
	memset(block, 'u', sizeof block);
	char h[256];
	snprintf(h, sizeof h, "POST /slowbody?ms=800 HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: %ld\r\n\r\n", u->n);
	u->rc = send_all(u->fd, h, strlen(h));
	for (long off = 0; !u->rc && off < u->n; off += (long)sizeof block) {
		size_t k = sizeof block;
		if ((long)k > u->n - off)
			k = (size_t)(u->n - off);
		u->rc = send_all(u->fd, block, k);
	}
	return NULL;
}

/* A client uploads faster than the instance reads: the router stops reading the client
 * instead of buffering the body. */
static void test_upload_backpressure(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct cc c;
	cc_open(&c, rport);
	struct timeval tv = {20, 0};
	setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct upload up = {c.fd, 40L * 1024 * 1024, 0};
	long rss0 = rss_kib();
	pthread_t th;
	pthread_create(&th, NULL, upload_main, &up);
	sleep_ms(500);     /* the instance is not reading yet */
	long rss_mid = rss_kib();
	pthread_join(th, NULL);
	assert_int_equal(up.rc, 0);
	struct cresp r;
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(buf_str(&r.body), "body=41943040 "));
	cresp_free(&r);
	printf("[ RSS      ] 40 MiB upload to a slow reader: RSS %+ld KiB while it waited\n", rss_mid - rss0);
	if (!UNDER_ASAN)
		assert_true(rss_mid - rss0 < 8 * 1024);
	cc_close(&c);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

/* A request whose connect is still under way when a deploy replaces the instance is
 * retried on the new instance (routed again with the newest snapshot). */
static void test_reroute_on_retry(void **state)
{
	struct router_config cfg = {.connect_ms = 400, .threads = 1};
	start(&cfg);
	int port;
	int lfd = listen_any(&port, 0);
	int fill[4];
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
	}
	sleep_ms(50);
	struct endpoint *old = put("app", "web.1", 1, port);
	struct cc c;
	cc_open(&c, rport);
	cc_send(&c, "GET /echo HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
	int64_t t0 = now_ms();
	while (atomic_load(&old->inflight) != 1 && now_ms() - t0 < 2000)
		sleep_ms(1);
	assert_int_equal(atomic_load(&old->inflight), 1);   /* counted while connecting */
	struct upsrv *b = upsrv_start("B");
	struct endpoint *gone = endpoints_remove(eps, "production", "app", "web.1", 1);
	struct endpoint *nb = put("app", "web.2", 2, b->port);
	assert_false(endpoints_drained(eps, gone));
	struct cresp r;
	char s[16];
	assert_int_equal(cc_resp(&c, &r, 0), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(srv_of(&r, s, sizeof s), "B");
	cresp_free(&r);
	cc_close(&c);
	t0 = now_ms();
	while (!endpoints_drained(eps, gone) && now_ms() - t0 < 2000)
		sleep_ms(1);
	assert_true(endpoints_drained(eps, gone));
	endpoint_unref(gone);
	wait_inflight_zero(nb);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
	upsrv_stop(b);
	stop();
}

static void test_access_log_and_stats(void **state)
{
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	struct route routes[] = {
		{.host = "example.com", .path = "/api", .env = "production", .app = "app", .process = "web"},
	};
	set_routes(routes, 1);
	struct cresp r;
	assert_int_equal(get1("example.com", "/api/x?y=\"z\"", "X-Request-Id: log-id-1\r\n", &r), 0);
	assert_int_equal(r.status, 200);
	cresp_free(&r);
	assert_int_equal(get1("nowhere.example", "/", NULL, &r), 0);
	cresp_free(&r);
	int64_t t0 = now_ms();
	while (!strstr(buf_str(&access_log), "nowhere.example") && now_ms() - t0 < 2000) {
		pump();
		sleep_ms(1);
	}
	const char *log = buf_str(&access_log);
	const char *l1 = strstr(log, "id=log-id-1");
	assert_non_null(l1);
	/* the line of the first request */
	const char *bol = l1;
	while (bol > log && bol[-1] != '\n')
		bol--;
	char line[1024];
	size_t ll = strcspn(bol, "\n");
	memcpy(line, bol, ll);
	line[ll] = 0;
	printf("[ LOG      ] %s\n", line);
	assert_non_null(strstr(line, "client=127.0.0.1:"));
	assert_non_null(strstr(line, " method=GET "));
	assert_non_null(strstr(line, " target=\"/api/x?y=\\\"z\\\"\" "));
	assert_non_null(strstr(line, " host=\"example.com\" "));
	assert_non_null(strstr(line, " route=\"example.com/api\" "));
	assert_non_null(strstr(line, " app=production/app "));
	assert_non_null(strstr(line, " upstream=web.1 addr=127.0.0.1:"));
	assert_non_null(strstr(line, " status=200 "));
	assert_non_null(strstr(line, " us="));
	assert_non_null(strstr(log, "status=404"));
	struct router_stats st;
	router_stats(rt, &st);
	assert_int_equal(st.requests, 2);
	assert_int_equal(st.status[1], 1);
	assert_int_equal(st.status[3], 1);
	uint64_t total = 0;
	for (int i = 0; i <= ROUTER_LAT_BUCKETS; i++)
		total += st.latency[i];
	assert_int_equal(total, 2);
	assert_int_equal(st.nroutes, 2);
	assert_string_equal(st.routes[0].route, "");
	assert_int_equal(st.routes[0].status[3], 1);
	assert_string_equal(st.routes[1].route, "example.com/api");
	assert_int_equal(st.routes[1].status[1], 1);
	total = 0;
	for (int i = 0; i <= ROUTER_LAT_BUCKETS; i++)
		total += st.routes[1].latency[i];
	assert_int_equal(total, 1);
	assert_true(st.routes[1].latency_sum_us > 0);
	assert_true(st.latency_sum_us >= st.routes[1].latency_sum_us);
	router_stats_release(&st);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

static void test_idle_memory(void **state)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 5000 && rl.rlim_max >= 5000) {
		rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 4500)
		skip();
	start(NULL);
	struct upsrv *a = upsrv_start("A");
	struct endpoint *ea = put("app", "web.1", 1, a->port);
	enum { N = 2000 };
	static int fds[N];
	const char *req = "GET /status/200 HTTP/1.1\r\nHost: app.localhost\r\n\r\n";
	/* warm up: allocator arenas, pools */
	for (int i = 0; i < 200; i++) {
		struct cresp r;
		assert_int_equal(get1("app.localhost", "/status/200", NULL, &r), 0);
		cresp_free(&r);
	}
	sleep_ms(100);
	long rss0 = rss_kib();
	for (int i = 0; i < N; i++) {
		fds[i] = tcp_connect(rport);
		assert_true(fds[i] >= 0);
		assert_int_equal(send_all(fds[i], req, strlen(req)), 0);
		char buf[1024];
		size_t got = 0;
		while (!memmem(buf, got, "\r\n\r\nst", 6)) {
			ssize_t k = recv(fds[i], buf + got, sizeof buf - got, 0);
			assert_true(k > 0);
			got += (size_t)k;
		}
	}
	sleep_ms(200);
	long rss1 = rss_kib();
	struct router_stats st;
	router_stats(rt, &st);
	assert_int_equal(st.client_conns, N);
	router_stats_release(&st);
	double per = (double)(rss1 - rss0) * 1024.0 / N;
	printf("[ RSS      ] %d idle keep-alive connections: RSS %+ld KiB, %.0f bytes per connection%s\n", N,
	       rss1 - rss0, per, UNDER_ASAN ? " (ASan build: not checked)" : "");
	if (!UNDER_ASAN)
		assert_true(per < 4096);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	wait_inflight_zero(ea);
	upsrv_stop(a);
	stop();
}

static void test_router_lifecycle(void **state)
{
	/* two routers on one table; a port in use is an error naming it */
	assert_int_equal(uv_loop_init(&loop), 0);
	eps = endpoints_new(&loop);
	int port;
	int lfd = listen_any(&port, 1);
	struct router_config cfg = {.port = port, .threads = 1};
	struct err e = ERR_INIT;
	struct router *r1 = router_new(&loop, eps, &cfg, &e);
	assert_null(r1);
	assert_non_null(strstr(e.msg, "router: listen on 127.0.0.1:"));
	close(lfd);
	cfg.port = 0;
	cfg.host = "not-an-ip";
	assert_null(router_new(&loop, eps, &cfg, &e));
	cfg.host = NULL;
	cfg.threads = 3;
	r1 = router_new(&loop, eps, &cfg, &e);
	assert_non_null(r1);
	struct router *r2 = router_new(&loop, eps, &cfg, &e);
	assert_non_null(r2);
	struct endpoint *ep = endpoints_put(eps, "production", "app", "web", "web.1", 1, 1, 1);
	int64_t t0 = now_ms();
	while (router_adopted_version(r1) < endpoints_current(eps)->version ||
	       router_adopted_version(r2) < endpoints_current(eps)->version) {
		assert_true(now_ms() - t0 < 2000);
		sleep_ms(1);
	}
	router_free(r1);
	/* a freed router's readers never hold up a drain */
	struct endpoint *gone = endpoints_remove(eps, "production", "app", "web.1", 1);
	assert_ptr_equal(gone, ep);
	t0 = now_ms();
	while (router_adopted_version(r2) < endpoints_current(eps)->version)
		sleep_ms(1);
	assert_true(endpoints_drained(eps, gone));
	endpoint_unref(gone);
	router_free(r2);
	router_free(NULL);
	/* IPv6: the client address is logged and forwarded without brackets in X-Forwarded-For */
	struct router_config c6 = {.host = "::1", .threads = 1, .access_log = on_access};
	struct router *r6 = router_new(&loop, eps, &c6, &e);
	if (r6) {
		int fd = socket(AF_INET6, SOCK_STREAM, 0);
		struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)router_port(r6)),
					  .sin6_addr = IN6ADDR_LOOPBACK_INIT};
		assert_int_equal(connect(fd, (struct sockaddr *)&a6, sizeof a6), 0);
		struct cc c = {fd, BUF_INIT};
		struct timeval tv = {5, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		cc_send(&c, "GET / HTTP/1.1\r\nHost: nowhere.example\r\n\r\n");
		struct cresp r;
		assert_int_equal(cc_resp(&c, &r, 0), 0);
		assert_int_equal(r.status, 404);
		cresp_free(&r);
		cc_close(&c);
		router_free(r6);
		assert_non_null(strstr(buf_str(&access_log), "client=[::1]:"));
		buf_free(&access_log);
	} else {
		printf("[ NOTE     ] no IPv6 loopback here: %s\n", e.msg);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	endpoints_free(eps);
	eps = NULL;
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (getenv("ROUTER_TEST"))   /* run one scenario: ROUTER_TEST=test_websocket */
		cmocka_set_test_filter(getenv("ROUTER_TEST"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_helpers),
		cmocka_unit_test(test_resp_parse),
		cmocka_unit_test(test_router_lifecycle),
		cmocka_unit_test(test_routing),
		cmocka_unit_test(test_strip_prefix),
		cmocka_unit_test(test_error_pages),
		cmocka_unit_test(test_errpage_sources),
		cmocka_unit_test(test_maintenance),
		cmocka_unit_test(test_forwarded_headers),
		cmocka_unit_test(test_keepalive_reuse),
		cmocka_unit_test(test_streaming),
		cmocka_unit_test(test_large_response),
		cmocka_unit_test(test_pipelining),
		cmocka_unit_test(test_websocket),
		cmocka_unit_test(test_connect_retry),
		cmocka_unit_test(test_no_retry_after_body),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_slowloris),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_client_abort),
		cmocka_unit_test(test_least_conn_and_swap),
		cmocka_unit_test(test_reroute_on_retry),
		cmocka_unit_test(test_upstream_pool),
		cmocka_unit_test(test_upload_backpressure),
		cmocka_unit_test(test_access_log_and_stats),
		cmocka_unit_test(test_idle_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
