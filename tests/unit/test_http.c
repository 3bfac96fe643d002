/* test_http: the HTTP layer. First the framing layer on its own (valid requests, pipelining,
 * chunked bodies, byte-at-a-time feeding, every refusal with its status, query decoding);
 * then the server on a real loopback socket: a libuv loop in the test's main thread, a
 * client written with plain blocking sockets in a second thread (keep-alive, pipelining,
 * bodies in memory and spooled to files, 413/431/400, Expect: 100-continue, chunked
 * requests and streamed answers, abort on disconnect, HTTP/1.0, early answers, timeouts,
 * the connection limit, idle connections holding no buffer, Upgrade to a tunnel: echo both
 * ways, refusals, close by either side or by the server, several MB with backpressure).
 * The client thread only records what it saw; assertions run in the main thread after it
 * is joined. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "http/http.h"
#include "http/parse.h"
#include "http/conn.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/timeutil.h"

/* ======================================================================================
 * The framing layer
 * ====================================================================================== */

/* Parse input with the given piece size (0: all at once) and body limit; return the story
 * as text: "HEAD METHOD path ?query\n", "BODY n\n" (merged per request), "DONE body\n",
 * "ERROR status\n". The caller frees it. */
static char *story(const char *in, size_t n, size_t piece, uint64_t max)
{
	struct buf out = BUF_INIT, body = BUF_INIT, pend = BUF_INIT;
	struct http_parse *p = http_parse_new();
	size_t pos = 0;
	int stop = 0;
	do {
		size_t k = piece ? piece : n;
		if (k > n - pos)
			k = n - pos;
		buf_add(&pend, in + pos, k);
		pos += k;
		size_t off = 0;
		for (;;) {
			enum http_parse_event ev;
			int st;
			off += http_parse_feed(p, pend.p ? pend.p + off : NULL, pend.len - off, &ev, &st);
			if (ev == HTTP_EV_NONE)
				break;
			if (ev == HTTP_EV_HEAD) {
				struct http_req *r = http_parse_take_req(p);
				buf_addf(&out, "HEAD %s %s ?%s\n", r->method, r->path, r->query);
				http_req_free(r);
				http_parse_set_body_max(p, max);
				buf_reset(&body);
			} else if (ev == HTTP_EV_BODY) {
				const char *d;
				size_t bn;
				http_parse_body(p, &d, &bn);
				buf_add(&body, d, bn);
			} else if (ev == HTTP_EV_DONE) {
				buf_addf(&out, "DONE %s\n", buf_str(&body));
				buf_reset(&body);
			} else {
				buf_addf(&out, "ERROR %d\n", st);
				stop = 1;
				break;
			}
		}
		buf_consume(&pend, off);
	} while (pos < n && !stop);
	http_parse_free(p);
	buf_free(&body);
	buf_free(&pend);
	return out.p ? buf_detach(&out) : xstrdup("");
}

/* The story must be the same however the bytes are cut. */
static void expect_story(const char *in, const char *want, uint64_t max)
{
	size_t n = strlen(in);
	size_t pieces[] = {0, 1, 2, 3, 7, 64};
	for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
		char *got = story(in, n, pieces[i], max);
		if (strcmp(got, want))
			fail_msg("input cut in pieces of %zu:\n%s\nwant:\n%s\ngot:\n%s", pieces[i], in, want, got);
		free(got);
	}
}

static struct http_req *parse_one(struct http_parse *p, const char *in)
{
	enum http_parse_event ev;
	int st;
	http_parse_feed(p, in, strlen(in), &ev, &st);
	assert_int_equal(ev, HTTP_EV_HEAD);
	return http_parse_take_req(p);
}

static void test_parse_get(void **state)
{
	const char *in = "GET /v1/apps?env=prod HTTP/1.1\r\nHost: example\r\nX-Pad:   spaced  value \t\r\n"
			 "x-empty:\r\n\r\n";
	struct http_parse *p = http_parse_new();
	enum http_parse_event ev;
	int st;
	size_t n = strlen(in);
	assert_int_equal(http_parse_phase(p), HTTP_PHASE_IDLE);
	size_t used = http_parse_feed(p, in, 10, &ev, &st);
	assert_int_equal(used, 10);
	assert_int_equal(ev, HTTP_EV_NONE);
	assert_int_equal(http_parse_phase(p), HTTP_PHASE_HEAD);
	used = http_parse_feed(p, in + 10, n - 10, &ev, &st);
	assert_int_equal(used, n - 10);
	assert_int_equal(ev, HTTP_EV_HEAD);
	struct http_req *r = http_parse_take_req(p);
	assert_non_null(r);
	assert_string_equal(r->method, "GET");
	assert_string_equal(r->target, "/v1/apps?env=prod");
	assert_string_equal(r->path, "/v1/apps");
	assert_string_equal(r->query, "env=prod");
	assert_int_equal(r->nheaders, 3);
	assert_string_equal(r->headers[1].name, "X-Pad");
	assert_string_equal(http_req_header(r, "x-pad"), "spaced  value");
	assert_string_equal(http_req_header(r, "HOST"), "example");
	assert_string_equal(http_req_header(r, "X-Empty"), "");
	assert_null(http_req_header(r, "Missing"));
	struct http_reqx *rx = (struct http_reqx *)r;
	assert_true(rx->keep_alive);
	assert_int_equal(rx->http_minor, 1);
	assert_false(rx->chunked);
	http_req_free(r);
	used = http_parse_feed(p, NULL, 0, &ev, &st);
	assert_int_equal(used, 0);
	assert_int_equal(ev, HTTP_EV_DONE);
	assert_int_equal(http_parse_phase(p), HTTP_PHASE_IDLE);
	used = http_parse_feed(p, NULL, 0, &ev, &st);
	assert_int_equal(ev, HTTP_EV_NONE);
	http_parse_free(p);
}

static void test_parse_pipelined(void **state)
{
	expect_story("GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
		     "POST /two?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
		     "DELETE /three HTTP/1.1\r\nHost: a\r\n\r\n"
		     "\r\nHEAD /four HTTP/1.1\r\nHost: a\r\n\r\n"
		     "GET /partial HTTP/1.1\r\nHo",
		     "HEAD GET /one ?\nDONE \n"
		     "HEAD POST /two ?x=1\nDONE hello world\n"
		     "HEAD DELETE /three ?\nDONE \n"
		     "HEAD HEAD /four ?\nDONE \n",
		     HTTP_DEFAULT_BODY_MAX);
}

static void test_parse_chunked(void **state)
{
	expect_story("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "5\r\nhello\r\n6;name=value\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
		     "POST /empty HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"
		     "GET /after HTTP/1.1\r\nHost: a\r\n\r\n",
		     "HEAD POST /up ?\nDONE hello world0123456789\n"
		     "HEAD POST /empty ?\nDONE \n"
		     "HEAD GET /after ?\nDONE \n",
		     HTTP_DEFAULT_BODY_MAX);
	/* chunked bodies are held to the limit while they are read */
	expect_story("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "8\r\n12345678\r\n8\r\n12345678\r\n1\r\nX\r\n0\r\n\r\n",
		     "HEAD POST /up ?\nERROR 413\n", 16);
	expect_story("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n",
		     "HEAD POST /up ?\nERROR 413\n", 1024);
	expect_story("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
		     "HEAD POST /up ?\nDONE 1234567812345678\n", 16);
}

static void test_parse_content_length_limit(void **state)
{
	/* decided from Content-Length, before any body byte */
	expect_story("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n",
		     "HEAD POST /x ?\nERROR 413\n", 16);
	expect_story("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n0123456789abcdef",
		     "HEAD POST /x ?\nDONE 0123456789abcdef\n", 16);
	expect_story("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
		     "HEAD POST /x ?\nERROR 413\n", 0);
}

static void test_parse_keepalive(void **state)
{
	/* HTTP/1.0 closes by default: what follows is never parsed */
	expect_story("GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n", "HEAD GET /a ?\nDONE \n",
		     HTTP_DEFAULT_BODY_MAX);
	expect_story("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\nGET /c HTTP/1.0\r\n\r\n",
		     "HEAD GET /a ?\nDONE \nHEAD GET /b ?\nDONE \n", HTTP_DEFAULT_BODY_MAX);
	expect_story("GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
		     "HEAD GET /a ?\nDONE \n", HTTP_DEFAULT_BODY_MAX);
	/* Upgrade is answered as plain HTTP and ends the connection */
	expect_story("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
		     "GET /b HTTP/1.1\r\nHost: a\r\n\r\n",
		     "HEAD GET /ws ?\nDONE \n", HTTP_DEFAULT_BODY_MAX);

	struct http_parse *p = http_parse_new();
	enum http_parse_event ev;
	int st;
	const char *in = "GET / HTTP/1.0\r\n\r\n";
	http_parse_feed(p, in, strlen(in), &ev, &st);
	assert_int_equal(ev, HTTP_EV_HEAD);
	struct http_reqx *rx = (struct http_reqx *)http_parse_take_req(p);
	assert_false(rx->keep_alive);
	assert_int_equal(rx->http_minor, 0);
	http_req_free(&rx->pub);
	http_parse_feed(p, NULL, 0, &ev, &st);
	assert_int_equal(ev, HTTP_EV_DONE);
	assert_int_equal(http_parse_phase(p), HTTP_PHASE_CLOSED);
	assert_int_equal(http_parse_feed(p, "junk", 4, &ev, &st), 4);
	assert_int_equal(ev, HTTP_EV_NONE);
	http_parse_free(p);
}

/* An Upgrade request's body is read first; what follows it is never parsed as HTTP and is
 * left unconsumed for the tunnel. */
static void test_parse_upgrade(void **state)
{
	const char *head = "POST /run HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: berth-attach/1\r\n"
			   "Content-Type: application/json\r\nContent-Length: 5\r\n\r\n";
	struct buf in = BUF_INIT;
	buf_adds(&in, head);
	buf_adds(&in, "helloGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
	expect_story(in.p, "HEAD POST /run ?\nDONE hello\n", HTTP_DEFAULT_BODY_MAX);
	expect_story("POST /run HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n"
		     "Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nraw bytes",
		     "HEAD POST /run ?\nDONE hi\n", HTTP_DEFAULT_BODY_MAX);
	/* an upgrade request is still held to the framing rules */
	const char *smuggle = "POST /run HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n"
			      "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
	char *got = story(smuggle, strlen(smuggle), 0, HTTP_DEFAULT_BODY_MAX);
	assert_string_equal(got, "ERROR 400\n");
	free(got);

	/* where the request ends, exactly */
	struct http_parse *p = http_parse_new();
	enum http_parse_event ev;
	int st;
	size_t off = http_parse_feed(p, in.p, in.len, &ev, &st);
	assert_int_equal(ev, HTTP_EV_HEAD);
	assert_int_equal(off, strlen(head));
	struct http_reqx *rx = (struct http_reqx *)http_parse_take_req(p);
	assert_true(rx->upgrade);
	assert_false(rx->keep_alive);
	assert_true(http_req_wants_upgrade(&rx->pub, "berth-attach/1"));
	assert_true(http_req_wants_upgrade(&rx->pub, "Berth-Attach/1"));
	assert_false(http_req_wants_upgrade(&rx->pub, "berth-attach"));
	assert_false(http_req_wants_upgrade(&rx->pub, "websocket"));
	assert_false(http_req_wants_upgrade(&rx->pub, "berth-attach/1\r\nX: y"));
	assert_false(http_req_wants_upgrade(&rx->pub, ""));
	assert_false(http_req_wants_upgrade(NULL, "berth-attach/1"));
	http_req_free(&rx->pub);
	off += http_parse_feed(p, in.p + off, in.len - off, &ev, &st);
	assert_int_equal(ev, HTTP_EV_BODY);
	off += http_parse_feed(p, in.p + off, in.len - off, &ev, &st);
	assert_int_equal(ev, HTTP_EV_DONE);
	assert_int_equal(off, strlen(head) + 5);
	assert_int_equal(http_parse_phase(p), HTTP_PHASE_CLOSED);
	http_parse_free(p);
	buf_free(&in);

	/* which requests want which protocol */
	const struct {
		const char *in, *proto;
		bool want;
	} cases[] = {
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket ,berth-attach/1\r\n\r\n",
		 "berth-attach/1", true},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket ,berth-attach/1\r\n\r\n",
		 "websocket", true},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nUpgrade: berth-attach/1\r\n\r\n",
		 "berth-attach/1", true},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: berth-attach/1x\r\n\r\n",
		 "berth-attach/1", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: berth-attach/1\r\n\r\n", "berth-attach/1", false},
		{"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n", "berth-attach/1", false},
		{"GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: berth-attach/1\r\n\r\n", "berth-attach/1", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		p = http_parse_new();
		struct http_req *r = parse_one(p, cases[i].in);
		if (http_req_wants_upgrade(r, cases[i].proto) != cases[i].want)
			fail_msg("case %zu (%s): want %d", i, cases[i].proto, cases[i].want);
		http_req_free(r);
		http_parse_free(p);
	}
}

static void test_parse_forms(void **state)
{
	expect_story("GET http://example.com:8080/p%20q?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
		     "GET https://example.com?y HTTP/1.1\r\nHost: example.com\r\n\r\n"
		     "GET /a%2Fb%7e HTTP/1.1\r\nHost: a\r\n\r\n",
		     "HEAD GET /p q ?x=1\nDONE \nHEAD GET / ?y\nDONE \nHEAD GET /a/b~ ?\nDONE \n",
		     HTTP_DEFAULT_BODY_MAX);
	/* leading empty lines before a request are tolerated (RFC 9112 2.2) */
	expect_story("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "HEAD GET / ?\nDONE \n", HTTP_DEFAULT_BODY_MAX);

	/* Expect: 100-continue is noted on the request */
	struct http_parse *p = http_parse_new();
	enum http_parse_event ev;
	int st;
	const char *in = "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
	http_parse_feed(p, in, strlen(in), &ev, &st);
	assert_int_equal(ev, HTTP_EV_HEAD);
	struct http_reqx *rx = (struct http_reqx *)http_parse_take_req(p);
	assert_true(rx->expect_continue);
	assert_true(rx->has_length);
	assert_int_equal(rx->content_length, 3);
	http_req_free(&rx->pub);
	http_parse_free(p);
}

struct refusal {
	const char *why;
	const char *in;
	int status;
};

static void test_parse_refusals(void **state)
{
	static char big_head[HTTP_MAX_HEAD + 200], many[8192], long_url[HTTP_MAX_URL + 100];
	struct buf b = BUF_INIT;
	buf_adds(&b, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
	while (b.len < HTTP_MAX_HEAD + 10)
		buf_addc(&b, 'b');
	buf_adds(&b, "\r\n\r\n");
	snprintf(big_head, sizeof big_head, "%s", b.p);
	buf_reset(&b);
	buf_adds(&b, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		buf_addf(&b, "X-%d: v\r\n", i);
	buf_adds(&b, "\r\n");
	snprintf(many, sizeof many, "%s", b.p);
	buf_reset(&b);
	buf_adds(&b, "GET /");
	while (b.len < HTTP_MAX_URL + 5)
		buf_addc(&b, 'u');
	buf_adds(&b, " HTTP/1.1\r\nHost: a\r\n\r\n");
	snprintf(long_url, sizeof long_url, "%s", b.p);
	buf_free(&b);

	const struct refusal cases[] = {
		{"CL then TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE then CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"duplicate CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
		{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400},
		{"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400},
		{"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"TE list", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
		{"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n", 400},
		{"obs-fold TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400},
		{"whitespace before first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
		{"bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", 400},
		{"bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
		{"bare LF ending a header", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
		{"bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
		{"bare CR", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400},
		{"bare LF in chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400},
		{"bare LF after chunk data", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", 400},
		{"bare LF ending trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\n", 400},
		{"obs-fold in trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", 400},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"chunk size with space", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400},
		{"control byte in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", 400},
		{"DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400},
		{"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n", 400},
		{"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"trailing space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
		{"no version (0.9)", "GET /\r\n\r\n", 400},
		{"bad version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400},
		{"lowercase protocol", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
		{"obs-text in target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"unknown method", "BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"two Hosts in 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"%00 in path", "GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"%0a in path", "GET /a%0ab HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"malformed escape", "GET /a%zzb HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"truncated escape", "GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"truncated escape before query", "GET /a%4?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"asterisk form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"absolute-form without host", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501},
		{"Expect other", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
		{"HTTP/0.9 with version", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505},
		{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505},
		{"head too big", big_head, 431},
		{"too many headers", many, 431},
		{"target too long", long_url, 414},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct refusal *c = &cases[i];
		size_t n = strlen(c->in);
		size_t pieces[] = {0, 1, 5};
		for (size_t k = 0; k < 3; k++) {
			char *got = story(c->in, n, pieces[k], HTTP_DEFAULT_BODY_MAX);
			char want[32];
			snprintf(want, sizeof want, "ERROR %d\n", c->status);
			const char *last = strrchr(got, 'E');
			if (!last || strcmp(last, want) || strstr(got, "DONE"))
				fail_msg("%s (pieces of %zu): want %d, got:\n%s", c->why, pieces[k], c->status, got);
			free(got);
		}
	}
	/* a NUL in a header name */
	static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX\0Y: a\r\n\r\n";
	char *got = story(nul, sizeof nul - 1, 0, HTTP_DEFAULT_BODY_MAX);
	assert_string_equal(got, "ERROR 400\n");
	free(got);

	/* an error sticks: later bytes get the same answer */
	struct http_parse *p = http_parse_new();
	enum http_parse_event ev;
	int st;
	http_parse_feed(p, "GET / HTTP/9.9\r\n", 16, &ev, &st);
	assert_int_equal(ev, HTTP_EV_ERROR);
	assert_int_equal(st, 505);
	http_parse_feed(p, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, &ev, &st);
	assert_int_equal(ev, HTTP_EV_ERROR);
	assert_int_equal(st, 505);
	assert_int_equal(http_parse_phase(p), HTTP_PHASE_CLOSED);
	http_parse_free(p);
}

static void test_parse_limits_exact(void **state)
{
	/* exactly HTTP_MAX_HEADERS headers and a target of exactly HTTP_MAX_URL bytes pass */
	struct buf b = BUF_INIT;
	buf_adds(&b, "GET /");
	while (b.len < 4 + HTTP_MAX_URL)
		buf_addc(&b, 'u');
	buf_adds(&b, " HTTP/1.1\r\nHost: a\r\n");
	for (int i = 1; i < HTTP_MAX_HEADERS; i++)
		buf_addf(&b, "X-%d: v\r\n", i);
	buf_adds(&b, "\r\n");
	char *got = story(b.p, b.len, 0, HTTP_DEFAULT_BODY_MAX);
	assert_non_null(strstr(got, "DONE"));
	free(got);
	buf_free(&b);
}

static void test_parse_query(void **state)
{
	struct http_parse *p = http_parse_new();
	struct http_req *r = parse_one(p, "GET /q?a=1&b=x+y%21&empty=&bare&a=2&bad=%zz&bad=ok&nul=%00&%62%20c=sp HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_string_equal(http_req_query(r, "a"), "1");
	assert_string_equal(http_req_query(r, "b"), "x y!");
	assert_string_equal(http_req_query(r, "empty"), "");
	assert_string_equal(http_req_query(r, "bare"), "");
	assert_string_equal(http_req_query(r, "bad"), "ok");
	assert_null(http_req_query(r, "nul"));
	assert_string_equal(http_req_query(r, "b c"), "sp");
	assert_null(http_req_query(r, "missing"));
	assert_null(http_req_query(r, "missing"));
	const char *a1 = http_req_query(r, "a");
	assert_ptr_equal(a1, http_req_query(r, "a"));
	http_req_free(r);
	http_parse_free(p);

	p = http_parse_new();
	r = parse_one(p, "GET /noq HTTP/1.1\r\nHost: h\r\n\r\n");
	assert_string_equal(r->query, "");
	assert_null(http_req_query(r, "a"));
	http_req_free(r);
	http_parse_free(p);
}

static void test_status_text(void **state)
{
	assert_string_equal(http_status_text(200), "OK");
	assert_string_equal(http_status_text(404), "Not Found");
	assert_string_equal(http_status_text(413), "Content Too Large");
	assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
	assert_string_equal(http_status_text(799), "Unknown");
}

/* ======================================================================================
 * The server on a loopback socket
 * ====================================================================================== */

struct resp {
	int status;
	struct buf head;
	struct buf body;
};

struct fx {
	uv_loop_t loop;
	struct http_server *srv;
	int port;
	uv_async_t done, probe;
	uv_timer_t tick;
	pthread_t th;
	void (*client)(struct fx *f);
	char tmpdir[64];
	/* the loop thread's side, read by the main thread after the join */
	int heads, ends, requests, aborts, writes_failed, stream_lines, flood;
	struct http_req *streaming, *pending;
	char spool_path[256];
	unsigned spool_mode;
	long long spool_size;
	char peers[8][64];
	int npeers;
	size_t probe_conns, probe_rbuf_cap;
	int probe_has_req, probe_has_parser, probe_requests;
	atomic_int probe_done, abort_flag;
	/* tunnels (loop thread) */
	struct http_tunnel *tun;
	struct http_req *upgrading;   /* an upgrade decided later, from the tick timer */
	struct conn *tconn;           /* the tunnel's connection, looked at while it is live */
	struct buf tin;               /* what on_data got (not in bulk mode) */
	int tmode, resume, tcloses, tclose_on_server_close, tpauses, tresumes, body_ok, up_null, wants;
	size_t tbytes, tmax_queued, tmax_rbuf;
	atomic_int tclosed, tpaused_once;
	/* the client thread's side */
	struct resp r[8];
	int nr;
	int eof[8];
	int got_continue;
	int abort_seen;
	long long ms[4];
};

static void resp_free(struct resp *r)
{
	buf_free(&r->head);
	buf_free(&r->body);
}

/* A header's value in a response head, or NULL; the result lives until the next call. */
static const char *hdr(const struct resp *r, const char *name)
{
	static char val[256];
	const char *h = buf_str(&r->head);
	size_t nl = strlen(name);
	for (const char *line = strstr(h, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
		const char *s = line + 2;
		if (!strncasecmp(s, name, nl) && s[nl] == ':') {
			s += nl + 1;
			while (*s == ' ')
				s++;
			const char *e = strstr(s, "\r\n");
			snprintf(val, sizeof val, "%.*s", (int)(e - s), s);
			return val;
		}
	}
	return NULL;
}

/* --- the client (blocking sockets, in its own thread) --- */

struct cli {
	int fd;
	struct buf in;
};

static int cli_open(struct cli *c, int port)
{
	memset(c, 0, sizeof *c);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {5, 0};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return connect(c->fd, (struct sockaddr *)&a, sizeof a);
}

static void cli_close(struct cli *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buf_free(&c->in);
}

static void cli_send(struct cli *c, const void *d, size_t n)
{
	const char *p = d;
	while (n) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void cli_sends(struct cli *c, const char *s)
{
	cli_send(c, s, strlen(s));
}

/* Read more; 0 on EOF, -1 on error or timeout. */
static int cli_fill(struct cli *c)
{
	char tmp[65536];
	ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
	if (n > 0)
		buf_add(&c->in, tmp, (size_t)n);
	return n > 0 ? 1 : (int)n;
}

/* Has the server closed the connection (EOF or reset), with nothing more sent? */
static int cli_eof(struct cli *c)
{
	if (c->in.len)
		return 0;
	char tmp[256];
	ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static int cli_need(struct cli *c, size_t n)
{
	while (c->in.len < n)
		if (cli_fill(c) <= 0)
			return -1;
	return 0;
}

static int cli_line(struct cli *c, struct buf *line)
{
	char *e;
	while (!(e = c->in.p ? memmem(c->in.p, c->in.len, "\r\n", 2) : NULL))
		if (cli_fill(c) <= 0)
			return -1;
	buf_reset(line);
	buf_add(line, c->in.p, (size_t)(e - c->in.p));
	buf_consume(&c->in, (size_t)(e - c->in.p) + 2);
	return 0;
}

/* Read one response. no_body: the answer to a HEAD. Returns 0, or -1 if the connection
 * ended first. */
static int cli_response(struct cli *c, struct resp *r, int no_body)
{
	char *e;
	buf_reset(&r->head);
	buf_reset(&r->body);
	r->status = 0;
	while (!(e = c->in.p ? memmem(c->in.p, c->in.len, "\r\n\r\n", 4) : NULL))
		if (cli_fill(c) <= 0)
			return -1;
	size_t hl = (size_t)(e - c->in.p) + 4;
	buf_add(&r->head, c->in.p, hl);
	buf_consume(&c->in, hl);
	r->status = atoi(r->head.p + 9);
	if (no_body || r->status == 100 || r->status == 204 || r->status == 304)
		return 0;
	const char *te = hdr(r, "Transfer-Encoding");
	if (te && !strcmp(te, "chunked")) {
		struct buf line = BUF_INIT;
		for (;;) {
			if (cli_line(c, &line) < 0)
				goto bad;
			size_t n = strtoul(line.p, NULL, 16);
			if (!n) {
				if (cli_line(c, &line) < 0 || line.len)
					goto bad;
				break;
			}
			if (cli_need(c, n + 2) < 0)
				goto bad;
			buf_add(&r->body, c->in.p, n);
			buf_consume(&c->in, n + 2);
		}
		buf_free(&line);
		return 0;
bad:
		buf_free(&line);
		return -1;
	}
	const char *cl = hdr(r, "Content-Length");
	if (cl) {
		size_t n = strtoul(cl, NULL, 10);
		if (cli_need(c, n) < 0)
			return -1;
		buf_add(&r->body, c->in.p, n);
		buf_consume(&c->in, n);
		return 0;
	}
	while (cli_fill(c) > 0)
		;
	buf_add(&r->body, c->in.p ? c->in.p : "", c->in.len);
	buf_reset(&c->in);
	return 0;
}

/* Record the next response in f->r[f->nr++]. */
static int next_response(struct fx *f, struct cli *c, int no_body)
{
	if (f->nr >= 8)
		return -1;
	return cli_response(c, &f->r[f->nr++], no_body);
}

/* Ask the loop thread to look at the server's connections; wait for the answer. */
static void probe(struct fx *f)
{
	atomic_store(&f->probe_done, 0);
	uv_async_send(&f->probe);
	for (int i = 0; i < 500 && !atomic_load(&f->probe_done); i++)
		usleep(2000);
}

static long long now_ms(void)
{
	return (long long)time_mono_ms();
}

/* --- the handlers (loop thread) --- */

static void count_end(struct http_req *r, void *arg)
{
	((struct fx *)arg)->ends++;
}

static int h_head(void *arg, struct http_req *r, struct http_body_plan *plan)
{
	struct fx *f = arg;
	f->heads++;
	if (!strcmp(r->path, "/deny-late")) {
		/* answer first, register the end callback afterwards (the API does this) */
		http_respond_error(r, 401, "no token");
		http_req_on_end(r, count_end, f);
		return -1;
	}
	http_req_on_end(r, count_end, f);
	if (!strcmp(r->path, "/spool") || !strcmp(r->path, "/keep")) {
		plan->spool_dir = f->tmpdir;
		plan->max = 8 << 20;
	} else if (!strcmp(r->path, "/small")) {
		plan->max = 16;
	} else if (!strcmp(r->path, "/deny")) {
		http_respond_error(r, 401, "no token");
		return -1;
	}
	return 0;
}

static void on_stream_abort(struct http_req *r, void *arg)
{
	struct fx *f = arg;
	f->aborts++;
	f->streaming = NULL;
	uv_timer_stop(&f->tick);
	atomic_store(&f->abort_flag, 1);
}

#define BIG_LEN (1024 * 1024)
static char bigbody[BIG_LEN];

/* --- tunnels (loop thread) --- */

static void on_tick(uv_timer_t *t);

#define ATTACH_PROTO "berth-attach/1"
#define ATTACH_JSON "{\"argv\":[\"sh\",\"-c\",\"exit 7\"],\"tty\":false}"
#define BULK_LIMIT (256 * 1024)        /* the bulk echo pauses reading above this much queued */
enum { T_ECHO, T_QUIT, T_BULK };

static void t_data(void *arg, const char *d, size_t n)
{
	struct fx *f = arg;
	f->tbytes += n;
	if (f->tconn->tpaused)
		f->writes_failed = 1000;   /* no data while paused */
	if (n + f->tconn->rbuf.cap > f->tmax_rbuf)
		f->tmax_rbuf = n + f->tconn->rbuf.cap;   /* what one read costs */
	if (f->tmode == T_BULK) {
		if (http_tunnel_write(f->tun, d, n) < 0)
			f->writes_failed++;
		size_t q = http_tunnel_queued(f->tun);
		if (q > f->tmax_queued)
			f->tmax_queued = q;
		if (q > BULK_LIMIT) {
			http_tunnel_pause(f->tun, true);
			f->tpauses++;
			atomic_store(&f->tpaused_once, 1);
		}
		return;
	}
	buf_add(&f->tin, d, n);
	if (f->tmode == T_QUIT) {
		if (strstr(buf_str(&f->tin), "quit")) {
			/* more than the socket takes at once: the close must flush it first */
			http_tunnel_write(f->tun, bigbody, BIG_LEN);
			http_tunnel_write(f->tun, "END", 3);
			http_tunnel_close(f->tun);
			f->tun = NULL;
		}
		return;
	}
	if (http_tunnel_write(f->tun, d, n) < 0)
		f->writes_failed++;
}

static void t_close(void *arg)
{
	struct fx *f = arg;
	f->tcloses++;
	f->tclose_on_server_close = f->srv->closing;
	if (http_tunnel_write(f->tun, "x", 1) >= 0)   /* a closed tunnel takes no more writes */
		f->writes_failed = 1000;
	f->tun = NULL;
	f->tconn = NULL;
	atomic_store(&f->tclosed, 1);
}

static void t_drain(void *arg)
{
	struct fx *f = arg;
	if (f->tmode == T_BULK && f->tconn->tpaused) {
		f->tresumes++;
		http_tunnel_pause(f->tun, false);
	}
}

/* Switch r to a tunnel; the handlers for /attach/... */
static void attach(struct fx *f, struct http_req *r)
{
	f->body_ok = r->body.len == strlen(ATTACH_JSON) && !memcmp(r->body.p, ATTACH_JSON, r->body.len);
	struct conn *c = r->conn;
	bool async = !strcmp(r->path, "/attach/async");   /* r is gone once upgraded */
	if (!strcmp(r->path, "/attach/bulk")) {
		int v = 64 * 1024;    /* small socket buffers: the queue, not the kernel, takes the load */
		uv_send_buffer_size((uv_handle_t *)&c->tcp, &v);
		uv_recv_buffer_size((uv_handle_t *)&c->tcp, &v);
	}
	struct http_tunnel_events ev = {t_data, t_close, f, t_drain};
	f->tmode = !strcmp(r->path, "/attach/quit") ? T_QUIT : !strcmp(r->path, "/attach/bulk") ? T_BULK : T_ECHO;
	f->tun = http_req_upgrade(r, ATTACH_PROTO, "X-Attach: yes\r\n", &ev);
	if (!f->tun) {
		f->up_null++;
		http_respond_error(r, 500, "could not upgrade");
		return;
	}
	f->tconn = c;
	http_tunnel_write(f->tun, "hi\n", 3);
	if (async) {
		/* paused before anything was handed over: the early bytes wait for the resume */
		http_tunnel_pause(f->tun, true);
		f->resume = 1;
		uv_timer_start(&f->tick, on_tick, 1, 0);
	}
}

static void h_attach(struct fx *f, struct http_req *r)
{
	f->wants += http_req_wants_upgrade(r, ATTACH_PROTO);
	if (!strcmp(r->path, "/attach/busy")) {
		http_respond_error(r, 409, "the app is not running");
	} else if (!strcmp(r->path, "/attach/wrong") || !strcmp(r->path, "/attach")) {
		struct http_tunnel_events ev = {t_data, t_close, f, NULL};
		if (!strcmp(r->path, "/attach/wrong") ? http_req_upgrade(r, "websocket", NULL, &ev)
						      : http_req_upgrade(r, ATTACH_PROTO, NULL, &ev))
			f->writes_failed = 1000;   /* must not happen */
		else
			f->up_null++;
		http_respond_error(r, 426, "upgrade to " ATTACH_PROTO);
	} else if (!strcmp(r->path, "/attach/async")) {
		f->upgrading = r;               /* decided later, from the loop */
		uv_timer_start(&f->tick, on_tick, 1, 0);
	} else {
		attach(f, r);
	}
}

static void on_tick(uv_timer_t *t)
{
	struct fx *f = t->data;
	if (f->streaming) {
		int rc = f->flood ? http_stream_write(f->streaming, bigbody, 256 * 1024)
				  : http_stream_write(f->streaming, "{\"tick\":1}\n", 11);
		if (rc < 0)
			f->writes_failed++;
		else
			f->stream_lines++;
	}
	if (f->resume && f->tun) {
		f->resume = 0;
		f->tresumes++;
		http_tunnel_pause(f->tun, false);
	}
	if (f->upgrading) {
		struct http_req *r = f->upgrading;
		f->upgrading = NULL;
		attach(f, r);
	}
	if (f->pending) {
		struct http_req *r = f->pending;
		f->pending = NULL;
		http_respond(r, 200, "text/plain", "late\n", 5, NULL);
	}
}

static void h_request(void *arg, struct http_req *r)
{
	struct fx *f = arg;
	f->requests++;
	if (f->npeers < 8)
		snprintf(f->peers[f->npeers++], sizeof f->peers[0], "%s", r->peer);
	char msg[256];
	if (!strcmp(r->path, "/hello")) {
		int n = snprintf(msg, sizeof msg, "hello %d\n", f->requests);
		http_respond(r, 200, "text/plain", msg, (size_t)n, "X-Test: yes\r\n");
	} else if (!strcmp(r->path, "/echo") || !strcmp(r->path, "/small")) {
		http_respond(r, 200, "application/octet-stream", r->body.p, r->body.len, NULL);
	} else if (!strcmp(r->path, "/json")) {
		const char *a = http_req_query(r, "a");
		http_respond_json(r, 201, json_pack("{s:s, s:s, s:i}", "path", r->path, "a", a ? a : "", "n", 3));
	} else if (!strcmp(r->path, "/spool")) {
		struct stat st;
		snprintf(f->spool_path, sizeof f->spool_path, "%s", r->body_file ? r->body_file : "");
		if (r->body_file && stat(r->body_file, &st) == 0) {
			f->spool_mode = st.st_mode & 0777;
			f->spool_size = (long long)st.st_size;
		}
		http_respond_json(r, 200, json_pack("{s:I, s:b}", "len", (json_int_t)r->body_len, "mem", r->body.len > 0));
	} else if (!strcmp(r->path, "/keep")) {
		char kept[128];
		snprintf(kept, sizeof kept, "%s/kept", f->tmpdir);
		int ok = r->body_file && rename(r->body_file, kept) == 0;
		free(r->body_file);
		r->body_file = NULL;
		http_respond(r, ok ? 200 : 500, "text/plain", "kept\n", 5, NULL);
	} else if (!strcmp(r->path, "/stream")) {
		http_stream_start(r, 200, "application/x-ndjson");
		for (int i = 0; i < 3; i++) {
			int n = snprintf(msg, sizeof msg, "{\"i\":%d}\n", i);
			http_stream_write(r, msg, (size_t)n);
		}
		http_stream_write(r, "", 0);   /* an empty write must not end the stream */
		http_stream_end(r);
	} else if (!strcmp(r->path, "/forever") || !strcmp(r->path, "/flood")) {
		http_stream_start(r, 200, "application/x-ndjson");
		http_req_on_abort(r, on_stream_abort, f);
		f->streaming = r;
		f->flood = !strcmp(r->path, "/flood");
		uv_timer_start(&f->tick, on_tick, 5, f->flood ? 2 : 5);
	} else if (!strcmp(r->path, "/big")) {
		http_respond(r, 200, "application/octet-stream", bigbody, BIG_LEN, NULL);
	} else if (!strncmp(r->path, "/attach", 7)) {
		h_attach(f, r);
	} else if (!strcmp(r->path, "/async")) {
		f->pending = r;
		uv_timer_start(&f->tick, on_tick, 30, 0);
	} else {
		http_respond_error(r, 404, "no such path");
	}
}

static void on_probe(uv_async_t *a)
{
	struct fx *f = a->data;
	f->probe_conns = 0;
	f->probe_rbuf_cap = 0;
	f->probe_has_req = 0;
	f->probe_has_parser = 0;
	f->probe_requests = f->requests;
	for (struct conn *c = f->srv->conns; c; c = c->next) {
		f->probe_conns++;
		if (c->rbuf.cap > f->probe_rbuf_cap)
			f->probe_rbuf_cap = c->rbuf.cap;
		if (c->req)
			f->probe_has_req = 1;
		if (c->parse)
			f->probe_has_parser = 1;
	}
	atomic_store(&f->probe_done, 1);
}

static void on_server_closed(void *arg)
{
	(void)arg;
}

static void on_done(uv_async_t *a)
{
	struct fx *f = a->data;
	http_server_close(f->srv, on_server_closed, f);
	uv_close((uv_handle_t *)&f->done, NULL);
	uv_close((uv_handle_t *)&f->probe, NULL);
	uv_close((uv_handle_t *)&f->tick, NULL);
}

static void *client_main(void *arg)
{
	struct fx *f = arg;
	f->client(f);
	uv_async_send(&f->done);
	return NULL;
}

/* Run one client against a fresh server; timeouts in ms (0: 2 s), max_conns 0: default. */
static struct fx *fx_run(void (*client)(struct fx *), uint64_t head_ms, uint64_t idle_ms, uint64_t body_ms,
			 size_t max_conns)
{
	struct fx *f = xcalloc(1, sizeof *f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	snprintf(f->tmpdir, sizeof f->tmpdir, "/tmp/berth-http-XXXXXX");
	assert_non_null(mkdtemp(f->tmpdir));
	struct http_handlers h = {h_head, h_request, f};
	char err[256];
	f->srv = http_server_new(&f->loop, "127.0.0.1", 0, &h, err, sizeof err);
	if (!f->srv)
		fail_msg("http_server_new: %s", err);
	f->port = http_server_port(f->srv);
	assert_true(f->port > 0);
	http_server_set_timeouts(f->srv, head_ms ? head_ms : 2000, idle_ms ? idle_ms : 2000, body_ms ? body_ms : 2000);
	if (max_conns)
		http_server_set_max_conns(f->srv, max_conns);
	uv_async_init(&f->loop, &f->done, on_done);
	uv_async_init(&f->loop, &f->probe, on_probe);
	uv_timer_init(&f->loop, &f->tick);
	f->done.data = f->probe.data = f->tick.data = f;
	f->client = client;
	assert_int_equal(pthread_create(&f->th, NULL, client_main, f), 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	pthread_join(f->th, NULL);
	assert_int_equal(uv_loop_close(&f->loop), 0);   /* every handle was closed */
	return f;
}

static void fx_free(struct fx *f)
{
	buf_free(&f->tin);
	for (int i = 0; i < 8; i++)
		resp_free(&f->r[i]);
	struct err e = ERR_INIT;
	fs_rm_rf(f->tmpdir, &e);
	free(f);
}

/* Every request that got a head had its end callback exactly once. */
static void assert_ends(struct fx *f)
{
	assert_int_equal(f->ends, f->heads);
}

/* --- keep-alive and pipelining --- */

static void cl_keepalive(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	next_response(f, &c, 0);
	usleep(50 * 1000);
	probe(f);          /* idle between the two requests: no buffer held */
	cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	next_response(f, &c, 0);
	cli_sends(&c, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	next_response(f, &c, 1);
	cli_sends(&c, "GET /json?a=x%20y HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	next_response(f, &c, 0);
	f->eof[0] = cli_eof(&c);
	cli_close(&c);
}

static void test_server_keepalive(void **state)
{
	struct fx *f = fx_run(cl_keepalive, 0, 0, 0, 0);
	assert_int_equal(f->nr, 4);
	assert_int_equal(f->r[0].status, 200);
	assert_string_equal(buf_str(&f->r[0].body), "hello 1\n");
	assert_string_equal(hdr(&f->r[0], "Content-Length"), "8");
	assert_string_equal(hdr(&f->r[0], "Content-Type"), "text/plain");
	assert_string_equal(hdr(&f->r[0], "X-Test"), "yes");
	assert_non_null(hdr(&f->r[0], "Date"));
	assert_true(strstr(hdr(&f->r[0], "Date"), " GMT") != NULL);
	assert_null(hdr(&f->r[0], "Connection"));
	assert_true(!strncmp(f->r[0].head.p, "HTTP/1.1 200 OK\r\n", 17));
	assert_string_equal(buf_str(&f->r[1].body), "hello 2\n");
	/* HEAD: the length of what GET would send, no body; the next answer still parses */
	assert_int_equal(f->r[2].status, 200);
	assert_string_equal(hdr(&f->r[2], "Content-Length"), "8");
	assert_int_equal(f->r[3].status, 201);
	assert_string_equal(buf_str(&f->r[3].body), "{\"path\":\"/json\",\"a\":\"x y\",\"n\":3}\n");
	assert_string_equal(hdr(&f->r[3], "Content-Type"), "application/json");
	assert_string_equal(hdr(&f->r[3], "Connection"), "close");
	assert_true(f->eof[0]);
	/* one connection carried them all */
	assert_int_equal(f->npeers, 4);
	assert_string_equal(f->peers[0], f->peers[3]);
	assert_true(!strncmp(f->peers[0], "127.0.0.1:", 10));
	/* idle keep-alive connection: no read buffer, no parser, no request */
	assert_int_equal(f->probe_conns, 1);
	assert_int_equal(f->probe_rbuf_cap, 0);
	assert_false(f->probe_has_req);
	assert_false(f->probe_has_parser);
	assert_ends(f);
	fx_free(f);
}

static void cl_pipelined(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	cli_sends(&c, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n"
		      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world"
		      "GET /json?a=3 HTTP/1.1\r\nHost: t\r\n\r\n"
		      "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
		      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
	for (int i = 0; i < 5; i++)
		next_response(f, &c, 0);
	cli_close(&c);
}

static void test_server_pipelined(void **state)
{
	struct fx *f = fx_run(cl_pipelined, 0, 0, 0, 0);
	assert_int_equal(f->nr, 5);
	/* in order, although the first one was answered late */
	assert_int_equal(f->r[0].status, 200);
	assert_string_equal(buf_str(&f->r[0].body), "late\n");
	assert_string_equal(buf_str(&f->r[1].body), "hello world");
	assert_int_equal(f->r[2].status, 201);
	assert_string_equal(buf_str(&f->r[2].body), "{\"path\":\"/json\",\"a\":\"3\",\"n\":3}\n");
	assert_int_equal(f->r[3].status, 404);
	assert_string_equal(buf_str(&f->r[3].body), "{\"error\":\"no such path\"}\n");
	assert_string_equal(buf_str(&f->r[4].body), "abc");
	assert_int_equal(f->requests, 5);
	assert_ends(f);
	fx_free(f);
}

/* --- bodies --- */

static void cl_bodies(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	/* in memory */
	struct buf body = BUF_INIT;
	for (int i = 0; i < 5000; i++)
		buf_addc(&body, (char)('a' + i % 26));
	struct buf req = BUF_INIT;
	buf_addf(&req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", body.len);
	cli_send(&c, req.p, req.len);
	cli_send(&c, body.p, body.len);
	next_response(f, &c, 0);
	f->eof[0] = strcmp(buf_str(&f->r[0].body), body.p) == 0;

	/* spooled: 300 kB in several writes */
	buf_reset(&body);
	for (int i = 0; i < 300000; i++)
		buf_addc(&body, (char)('0' + i % 10));
	buf_reset(&req);
	buf_addf(&req, "POST /spool HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", body.len);
	cli_send(&c, req.p, req.len);
	for (size_t off = 0; off < body.len; off += 70000)
		cli_send(&c, body.p + off, body.len - off < 70000 ? body.len - off : 70000);
	next_response(f, &c, 0);

	/* spooled, and the handler keeps the file */
	cli_sends(&c, "POST /keep HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
		      "4\r\nkeep\r\n3\r\n me\r\n0\r\n\r\n");
	next_response(f, &c, 0);
	cli_close(&c);
	buf_free(&body);
	buf_free(&req);
}

static void test_server_bodies(void **state)
{
	struct fx *f = fx_run(cl_bodies, 0, 0, 0, 0);
	assert_int_equal(f->nr, 3);
	assert_int_equal(f->r[0].status, 200);
	assert_true(f->eof[0]);   /* the echo matched */
	assert_int_equal(f->r[1].status, 200);
	assert_string_equal(buf_str(&f->r[1].body), "{\"len\":300000,\"mem\":false}\n");
	assert_int_equal(f->spool_mode, 0600);
	assert_int_equal(f->spool_size, 300000);
	assert_true(!strncmp(f->spool_path, f->tmpdir, strlen(f->tmpdir)));
	assert_false(fs_exists(f->spool_path));       /* removed once answered */
	assert_int_equal(f->r[2].status, 200);
	char kept[128];
	snprintf(kept, sizeof kept, "%s/kept", f->tmpdir);
	struct buf got = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(fs_read_file(kept, &got, 0, &e), 0);
	assert_string_equal(buf_str(&got), "keep me");
	buf_free(&got);
	assert_ends(f);
	fx_free(f);
}

/* --- refusals over the socket --- */

static void cl_refusals(struct fx *f)
{
	struct cli c;
	/* 413 from Content-Length, before the body is sent */
	cli_open(&c, f->port);
	cli_sends(&c, "POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n");
	next_response(f, &c, 0);
	f->eof[0] = cli_eof(&c);
	cli_close(&c);
	/* 413 with Expect: no 100 Continue first */
	cli_open(&c, f->port);
	cli_sends(&c, "POST /small HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n");
	next_response(f, &c, 0);
	f->eof[1] = cli_eof(&c);
	cli_close(&c);
	/* 431: a head over the limit */
	cli_open(&c, f->port);
	struct buf big = BUF_INIT;
	buf_adds(&big, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ");
	while (big.len < HTTP_MAX_HEAD + 100)
		buf_addc(&big, 'x');
	buf_adds(&big, "\r\n\r\n");
	cli_send(&c, big.p, big.len);
	buf_free(&big);
	next_response(f, &c, 0);
	f->eof[2] = cli_eof(&c);
	cli_close(&c);
	/* smuggling attempt: 400 and close, the smuggled request is never answered */
	cli_open(&c, f->port);
	cli_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n"
		      "0\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	next_response(f, &c, 0);
	f->eof[3] = cli_eof(&c);
	cli_close(&c);
	/* a chunked body over the limit while it is read */
	cli_open(&c, f->port);
	cli_sends(&c, "POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
		      "a\r\n0123456789\r\n");
	usleep(20 * 1000);
	cli_sends(&c, "a\r\n0123456789\r\n0\r\n\r\n");
	next_response(f, &c, 0);
	f->eof[4] = cli_eof(&c);
	cli_close(&c);
	/* bare LF */
	cli_open(&c, f->port);
	cli_sends(&c, "GET /hello HTTP/1.1\nHost: t\n\n");
	next_response(f, &c, 0);
	f->eof[5] = cli_eof(&c);
	cli_close(&c);
}

static void test_server_refusals(void **state)
{
	struct fx *f = fx_run(cl_refusals, 0, 0, 0, 0);
	assert_int_equal(f->nr, 6);
	int want[] = {413, 413, 431, 400, 413, 400};
	for (int i = 0; i < 6; i++) {
		if (f->r[i].status != want[i])
			fail_msg("case %d: want %d, got %d:\n%s", i, want[i], f->r[i].status, buf_str(&f->r[i].head));
		assert_string_equal(hdr(&f->r[i], "Connection"), "close");
		assert_string_equal(hdr(&f->r[i], "Content-Type"), "application/json");
		assert_true(f->eof[i]);
	}
	assert_string_equal(buf_str(&f->r[0].body), "{\"error\":\"Content Too Large\"}\n");
	assert_string_equal(buf_str(&f->r[2].body), "{\"error\":\"Request Header Fields Too Large\"}\n");
	assert_int_equal(f->requests, 0);   /* no handler saw any of them */
	assert_ends(f);
	fx_free(f);
}

/* --- Expect: 100-continue --- */

static void cl_continue(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	cli_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
	struct resp r100 = {0};
	if (cli_response(&c, &r100, 0) == 0 && r100.status == 100 &&
	    !strcmp(buf_str(&r100.head), "HTTP/1.1 100 Continue\r\n\r\n"))
		f->got_continue = 1;
	resp_free(&r100);
	cli_sends(&c, "hello");
	next_response(f, &c, 0);
	cli_close(&c);
}

static void test_server_expect_continue(void **state)
{
	struct fx *f = fx_run(cl_continue, 0, 0, 0, 0);
	assert_true(f->got_continue);
	assert_int_equal(f->nr, 1);
	assert_int_equal(f->r[0].status, 200);
	assert_string_equal(buf_str(&f->r[0].body), "hello");
	assert_ends(f);
	fx_free(f);
}

/* --- streams --- */

static void cl_stream(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	cli_sends(&c, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
	next_response(f, &c, 0);
	cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	next_response(f, &c, 0);
	cli_close(&c);
	/* HTTP/1.0 has no chunks: the body ends with the connection */
	cli_open(&c, f->port);
	cli_sends(&c, "GET /stream HTTP/1.0\r\n\r\n");
	next_response(f, &c, 0);
	cli_close(&c);
}

static void test_server_stream(void **state)
{
	struct fx *f = fx_run(cl_stream, 0, 0, 0, 0);
	assert_int_equal(f->nr, 3);
	assert_int_equal(f->r[0].status, 200);
	assert_string_equal(hdr(&f->r[0], "Transfer-Encoding"), "chunked");
	assert_string_equal(hdr(&f->r[0], "Content-Type"), "application/x-ndjson");
	assert_null(hdr(&f->r[0], "Content-Length"));
	assert_string_equal(buf_str(&f->r[0].body), "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n");
	assert_string_equal(buf_str(&f->r[1].body), "hello 2\n");
	assert_null(hdr(&f->r[2], "Transfer-Encoding"));
	assert_string_equal(hdr(&f->r[2], "Connection"), "close");
	assert_string_equal(buf_str(&f->r[2].body), "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n");
	assert_ends(f);
	fx_free(f);
}

static void cl_abort(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	cli_sends(&c, "GET /forever HTTP/1.1\r\nHost: t\r\n\r\n");
	/* the head and a few chunks, then hang up */
	struct buf line = BUF_INIT;
	int lines = 0;
	while (lines < 8 && cli_line(&c, &line) == 0)
		lines++;
	buf_free(&line);
	cli_close(&c);
	for (int i = 0; i < 1000 && !atomic_load(&f->abort_flag); i++)
		usleep(2000);
	f->abort_seen = atomic_load(&f->abort_flag);
	usleep(50 * 1000);   /* no second abort may follow */
}

static void test_server_abort_on_disconnect(void **state)
{
	struct fx *f = fx_run(cl_abort, 0, 0, 0, 0);
	assert_true(f->abort_seen);
	assert_int_equal(f->aborts, 1);
	assert_true(f->stream_lines >= 1);
	assert_ends(f);
	fx_free(f);
}

/* A stream still open when the server closes is aborted too. */
static void cl_abort_on_close(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	cli_sends(&c, "GET /forever HTTP/1.1\r\nHost: t\r\n\r\n");
	struct buf line = BUF_INIT;
	for (int lines = 0; lines < 4 && cli_line(&c, &line) == 0;)
		lines++;
	buf_free(&line);
	buf_free(&c.in);
	/* leave it open: fx's done closes the server */
	f->eof[0] = c.fd;
}

static void test_server_abort_on_close(void **state)
{
	struct fx *f = fx_run(cl_abort_on_close, 0, 0, 0, 0);
	close(f->eof[0]);
	assert_int_equal(f->aborts, 1);
	assert_ends(f);
	fx_free(f);
}

/* --- HTTP/1.0 and early answers --- */

static void cl_http10_and_early(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	cli_sends(&c, "GET /hello HTTP/1.0\r\n\r\n");
	next_response(f, &c, 0);          /* r0 */
	f->eof[0] = cli_eof(&c);
	cli_close(&c);

	cli_open(&c, f->port);
	cli_sends(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	next_response(f, &c, 0);          /* r1 */
	cli_sends(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	next_response(f, &c, 0);          /* r2 */
	cli_close(&c);

	/* answered from on_head: a small body is skipped and the connection kept */
	cli_open(&c, f->port);
	cli_sends(&c, "POST /deny HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	next_response(f, &c, 0);          /* r3 */
	next_response(f, &c, 0);          /* r4 */
	cli_sends(&c, "GET /deny-late HTTP/1.1\r\nHost: t\r\n\r\n");
	next_response(f, &c, 0);          /* r5 */
	cli_close(&c);

	/* ... a big one closes the connection instead */
	cli_open(&c, f->port);
	cli_sends(&c, "POST /deny HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n");
	next_response(f, &c, 0);          /* r6 */
	f->eof[1] = cli_eof(&c);
	cli_close(&c);
}

static void test_server_http10_and_early(void **state)
{
	struct fx *f = fx_run(cl_http10_and_early, 0, 0, 0, 0);
	assert_int_equal(f->nr, 7);
	assert_int_equal(f->r[0].status, 200);
	assert_string_equal(hdr(&f->r[0], "Connection"), "close");
	assert_true(f->eof[0]);
	assert_string_equal(hdr(&f->r[1], "Connection"), "keep-alive");
	assert_int_equal(f->r[2].status, 200);
	assert_int_equal(f->r[3].status, 401);
	assert_string_equal(buf_str(&f->r[3].body), "{\"error\":\"no token\"}\n");
	assert_null(hdr(&f->r[3], "Connection"));
	assert_int_equal(f->r[4].status, 200);
	assert_int_equal(f->r[5].status, 401);
	assert_int_equal(f->r[6].status, 401);
	assert_string_equal(hdr(&f->r[6], "Connection"), "close");
	assert_true(f->eof[1]);
	assert_ends(f);
	fx_free(f);
}

/* --- timeouts --- */

static void cl_timeouts(struct fx *f)
{
	struct cli c;
	long long t0;
	/* an unfinished head: 408 */
	cli_open(&c, f->port);
	t0 = now_ms();
	cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n");
	next_response(f, &c, 0);
	f->ms[0] = now_ms() - t0;
	f->eof[0] = cli_eof(&c);
	cli_close(&c);
	/* an idle keep-alive connection is closed without a word */
	cli_open(&c, f->port);
	cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	next_response(f, &c, 0);
	t0 = now_ms();
	f->eof[1] = cli_eof(&c);
	f->ms[1] = now_ms() - t0;
	cli_close(&c);
	/* a body that stops coming: 408 */
	cli_open(&c, f->port);
	cli_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
	t0 = now_ms();
	next_response(f, &c, 0);
	f->ms[2] = now_ms() - t0;
	f->eof[2] = cli_eof(&c);
	cli_close(&c);
	/* a connection that never says anything */
	cli_open(&c, f->port);
	t0 = now_ms();
	f->eof[3] = cli_eof(&c);
	f->ms[3] = now_ms() - t0;
	cli_close(&c);
}

static void test_server_timeouts(void **state)
{
	struct fx *f = fx_run(cl_timeouts, 200, 300, 250, 0);
	assert_int_equal(f->nr, 3);
	assert_int_equal(f->r[0].status, 408);
	assert_string_equal(hdr(&f->r[0], "Connection"), "close");
	assert_true(f->eof[0]);
	assert_true(f->ms[0] >= 150 && f->ms[0] < 3000);
	assert_int_equal(f->r[1].status, 200);
	assert_true(f->eof[1]);
	assert_true(f->ms[1] >= 200 && f->ms[1] < 3000);
	assert_int_equal(f->r[2].status, 408);
	assert_true(f->eof[2]);
	assert_true(f->ms[2] >= 200 && f->ms[2] < 3000);
	assert_true(f->eof[3]);
	assert_true(f->ms[3] >= 150 && f->ms[3] < 3000);
	assert_int_equal(f->requests, 1);
	assert_ends(f);
	fx_free(f);
}

/* --- the connection limit --- */

static void cl_max_conns(struct fx *f)
{
	struct cli a, b;
	cli_open(&a, f->port);
	cli_sends(&a, "GET /hello HTTP/1.1\r\n");   /* a started request holds the one slot */
	usleep(50 * 1000);
	cli_open(&b, f->port);
	f->eof[0] = cli_eof(&b);                      /* refused: closed at once */
	cli_close(&b);
	cli_sends(&a, "Host: t\r\n\r\n");
	next_response(f, &a, 0);
	cli_close(&a);
	usleep(50 * 1000);
	cli_open(&b, f->port);                         /* the slot is free again */
	cli_sends(&b, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	next_response(f, &b, 0);
	cli_close(&b);
}

static void test_server_max_conns(void **state)
{
	struct fx *f = fx_run(cl_max_conns, 0, 0, 0, 1);
	assert_true(f->eof[0]);
	assert_int_equal(f->nr, 2);
	assert_int_equal(f->r[0].status, 200);
	assert_int_equal(f->r[1].status, 200);
	assert_ends(f);
	fx_free(f);
}

/* --- back-pressure --- */

/* A client that pipelines many requests and reads nothing: the server stops answering
 * (and then reading) until the answers drain; then every answer arrives, in order. */
static void cl_backpressure(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	struct buf req = BUF_INIT;
	for (int i = 0; i < 40; i++)
		buf_addf(&req, "GET /big?i=%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
	cli_send(&c, req.p, req.len);
	buf_free(&req);
	usleep(300 * 1000);
	probe(f);
	struct resp r = {0};
	int good = 0;
	for (int i = 0; i < 40; i++) {
		if (cli_response(&c, &r, 0) == 0 && r.status == 200 && r.body.len == BIG_LEN &&
		    !memcmp(r.body.p, bigbody, BIG_LEN))
			good++;
	}
	resp_free(&r);
	f->eof[0] = good;
	cli_close(&c);
}

static void test_server_backpressure(void **state)
{
	for (size_t i = 0; i < BIG_LEN; i++)
		bigbody[i] = (char)('A' + i % 23);
	struct fx *f = fx_run(cl_backpressure, 0, 0, 0, 0);
	assert_true(f->probe_requests >= 1);
	assert_true(f->probe_requests < 40);
	assert_int_equal(f->eof[0], 40);
	assert_int_equal(f->requests, 40);
	assert_ends(f);
	fx_free(f);
}

/* A stream reader that stops reading is dropped before the server's memory grows without
 * bound; the handler learns it from write's -1 and the abort callback. */
static void cl_slow_reader(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	cli_sends(&c, "GET /flood HTTP/1.1\r\nHost: t\r\n\r\n");
	for (int i = 0; i < 2500 && !atomic_load(&f->abort_flag); i++)
		usleep(2000);
	f->abort_seen = atomic_load(&f->abort_flag);
	cli_close(&c);
}

static void test_server_slow_reader(void **state)
{
	struct fx *f = fx_run(cl_slow_reader, 0, 0, 0, 0);
	assert_true(f->abort_seen);
	assert_int_equal(f->aborts, 1);
	assert_true(f->writes_failed >= 1);
	assert_ends(f);
	fx_free(f);
}

/* A spooled upload cut short leaves no file behind. */
static void cl_spool_abort(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	cli_sends(&c, "POST /spool HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n");
	cli_send(&c, bigbody, 100000);
	usleep(100 * 1000);
	cli_close(&c);
	usleep(100 * 1000);
}

static void test_server_spool_abort(void **state)
{
	struct fx *f = fx_run(cl_spool_abort, 0, 0, 0, 0);
	assert_int_equal(f->heads, 1);
	assert_int_equal(f->requests, 0);
	assert_ends(f);
	DIR *d = opendir(f->tmpdir);
	assert_non_null(d);
	int files = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			files++;
	closedir(d);
	assert_int_equal(files, 0);
	fx_free(f);
}

/* --- Upgrade: tunnels --- */

/* Wait (with a deadline) for the loop thread to raise a flag. */
static int wait_flag(atomic_int *flag)
{
	for (int i = 0; i < 5000 && !atomic_load(flag); i++)
		usleep(1000);
	return atomic_load(flag);
}

static void send_attach(struct cli *c, const char *path, const char *after)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer T\r\nConnection: Upgrade\r\n"
		 "Upgrade: " ATTACH_PROTO "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s%s",
		 path, strlen(ATTACH_JSON), ATTACH_JSON, after);
	cli_send(c, b.p, b.len);     /* head, body and the first tunnel bytes in one segment */
	buf_free(&b);
}

/* Read exactly n tunnel bytes into out. */
static int cli_take(struct cli *c, size_t n, struct buf *out)
{
	if (cli_need(c, n) < 0)
		return -1;
	buf_add(out, c->in.p, n);
	buf_consume(&c->in, n);
	return 0;
}

/* Upgrade (answered inside on_request, then from a timer), echo both ways, hang up. */
static void cl_tunnel_echo(struct fx *f)
{
	const char *paths[] = {"/attach/echo", "/attach/async"};
	for (int i = 0; i < 2; i++) {
		struct cli c;
		struct resp *r = &f->r[f->nr];
		cli_open(&c, f->port);
		atomic_store(&f->tclosed, 0);
		send_attach(&c, paths[i], "early!");
		if (next_response(f, &c, 1) < 0)
			return;
		cli_take(&c, 3 + 6, &r->body);          /* the handler's "hi\n", then the echo */
		cli_sends(&c, "ping");
		cli_take(&c, 4, &r->body);
		shutdown(c.fd, SHUT_WR);                 /* the peer's EOF ends the tunnel */
		f->eof[i] = wait_flag(&f->tclosed) && cli_eof(&c);
		cli_close(&c);
	}
}

static void test_tunnel_echo(void **state)
{
	struct fx *f = fx_run(cl_tunnel_echo, 0, 0, 0, 0);
	assert_int_equal(f->nr, 2);
	for (int i = 0; i < 2; i++) {
		struct resp *r = &f->r[i];
		if (r->status != 101)
			fail_msg("%d: want 101, got:\n%s", i, buf_str(&r->head));
		assert_true(!strncmp(r->head.p, "HTTP/1.1 101 Switching Protocols\r\n", 34));
		assert_string_equal(hdr(r, "Upgrade"), ATTACH_PROTO);
		assert_string_equal(hdr(r, "Connection"), "Upgrade");
		assert_string_equal(hdr(r, "X-Attach"), "yes");
		assert_non_null(hdr(r, "Date"));
		assert_null(hdr(r, "Content-Length"));
		assert_null(hdr(r, "Transfer-Encoding"));
		assert_string_equal(buf_str(&r->body), "hi\nearly!ping");
		assert_true(f->eof[i]);
	}
	/* the bytes sent with the request reached on_data, not the HTTP parser */
	assert_string_equal(buf_str(&f->tin), "early!pingearly!ping");
	assert_true(f->body_ok);
	assert_int_equal(f->tcloses, 2);
	assert_false(f->tclose_on_server_close);
	assert_int_equal(f->requests, 2);
	assert_int_equal(f->wants, 2);
	assert_int_equal(f->up_null, 0);
	assert_int_equal(f->tresumes, 1);
	assert_int_equal(f->writes_failed, 0);
	assert_ends(f);
	fx_free(f);
}

/* Upgrade requests answered as plain HTTP: the answer arrives, then the connection ends. */
static void cl_tunnel_refused(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	send_attach(&c, "/attach/busy", "stdin bytes");
	next_response(f, &c, 0);                /* r0 */
	f->eof[0] = cli_eof(&c);
	cli_close(&c);

	cli_open(&c, f->port);
	send_attach(&c, "/attach/wrong", "");
	next_response(f, &c, 0);                /* r1: the handler speaks another protocol */
	f->eof[1] = cli_eof(&c);
	cli_close(&c);

	/* not an upgrade request: upgrade refuses, the connection stays for the next request */
	cli_open(&c, f->port);
	cli_sends(&c, "POST /attach HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
	next_response(f, &c, 0);                /* r2 */
	cli_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	next_response(f, &c, 0);                /* r3 */
	cli_close(&c);

	/* HTTP/1.0 has no Upgrade */
	cli_open(&c, f->port);
	cli_sends(&c, "GET /attach/echo HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: " ATTACH_PROTO "\r\n\r\n");
	next_response(f, &c, 0);                /* r4 */
	f->eof[2] = cli_eof(&c);
	cli_close(&c);
}

static void test_tunnel_refused(void **state)
{
	struct fx *f = fx_run(cl_tunnel_refused, 0, 0, 0, 0);
	assert_int_equal(f->nr, 5);
	assert_int_equal(f->r[0].status, 409);
	assert_string_equal(buf_str(&f->r[0].body), "{\"error\":\"the app is not running\"}\n");
	assert_string_equal(hdr(&f->r[0], "Connection"), "close");
	assert_null(hdr(&f->r[0], "Upgrade"));
	assert_true(f->eof[0]);
	assert_int_equal(f->r[1].status, 426);
	assert_string_equal(hdr(&f->r[1], "Connection"), "close");
	assert_true(f->eof[1]);
	assert_int_equal(f->r[2].status, 426);
	assert_null(hdr(&f->r[2], "Connection"));
	assert_int_equal(f->r[3].status, 200);
	assert_int_equal(f->r[4].status, 500);      /* attach() could not upgrade it */
	assert_string_equal(hdr(&f->r[4], "Connection"), "close");
	assert_true(f->eof[2]);
	assert_int_equal(f->wants, 2);              /* busy and wrong; not the plain one nor 1.0 */
	assert_int_equal(f->up_null, 3);
	assert_int_equal(f->tcloses, 0);
	assert_int_equal(f->writes_failed, 0);
	assert_ends(f);
	fx_free(f);
}

/* The handler closes: the peer gets everything queued, then EOF; no on_close. */
static void cl_tunnel_handler_close(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	send_attach(&c, "/attach/quit", "");
	next_response(f, &c, 1);
	struct resp *r = &f->r[0];
	cli_take(&c, 3, &r->body);
	cli_sends(&c, "qu");
	cli_sends(&c, "it");
	if (cli_take(&c, BIG_LEN + 3, &r->body) == 0)
		f->eof[0] = cli_eof(&c);
	cli_close(&c);
}

static void test_tunnel_handler_close(void **state)
{
	for (size_t i = 0; i < BIG_LEN; i++)
		bigbody[i] = (char)('A' + i % 23);
	struct fx *f = fx_run(cl_tunnel_handler_close, 0, 0, 0, 0);
	assert_int_equal(f->r[0].status, 101);
	assert_int_equal(f->r[0].body.len, 3 + BIG_LEN + 3);
	assert_memory_equal(f->r[0].body.p, "hi\n", 3);
	assert_memory_equal(f->r[0].body.p + 3, bigbody, BIG_LEN);
	assert_memory_equal(f->r[0].body.p + 3 + BIG_LEN, "END", 3);
	assert_true(f->eof[0]);
	assert_int_equal(f->tcloses, 0);
	assert_ends(f);
	fx_free(f);
}

/* A tunnel still open when the server closes gets its on_close. */
static void cl_tunnel_server_close(struct fx *f)
{
	struct cli c;
	cli_open(&c, f->port);
	send_attach(&c, "/attach/echo", "x");
	next_response(f, &c, 1);
	cli_take(&c, 4, &f->r[0].body);
	f->eof[0] = c.fd;                        /* left open: fx's done closes the server */
	buf_free(&c.in);
}

static void test_tunnel_server_close(void **state)
{
	struct fx *f = fx_run(cl_tunnel_server_close, 0, 0, 0, 0);
	close(f->eof[0]);
	assert_int_equal(f->r[0].status, 101);
	assert_string_equal(buf_str(&f->r[0].body), "hi\nx");
	assert_int_equal(f->tcloses, 1);
	assert_true(f->tclose_on_server_close);
	assert_int_equal(f->writes_failed, 0);
	assert_ends(f);
	fx_free(f);
}

#define BULK_TOTAL (8u << 20)

static unsigned char bulk_byte(size_t i)
{
	return (unsigned char)((i * 131u) ^ (i >> 13));
}

/* Several MB both ways through an echo that pauses reading while its queue is long, and a
 * client that reads nothing until the server had to pause. */
static void cl_tunnel_bulk(struct fx *f)
{
	struct cli c;
	memset(&c, 0, sizeof c);
	c.fd = socket(AF_INET, SOCK_STREAM, 0);
	int v = 64 * 1024;
	setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
	setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
	struct timeval tv = {5, 0};
	setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c.fd, (struct sockaddr *)&a, sizeof a) < 0)
		return;
	send_attach(&c, "/attach/bulk", "");
	if (next_response(f, &c, 1) < 0 || cli_need(&c, 3) < 0)
		return;
	buf_consume(&c.in, 3);                    /* "hi\n" */
	fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
	static unsigned char out[64 * 1024];
	size_t sent = 0, got = 0, bad = 0;
	long long deadline = now_ms() + 30000;
	while (got < BULK_TOTAL && now_ms() < deadline) {
		int reading = atomic_load(&f->tpaused_once) || sent == BULK_TOTAL;
		struct pollfd pfd = {c.fd, (short)((sent < BULK_TOTAL ? POLLOUT : 0) | (reading ? POLLIN : 0)), 0};
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if (pfd.revents & POLLOUT) {
			size_t n = BULK_TOTAL - sent < sizeof out ? BULK_TOTAL - sent : sizeof out;
			for (size_t i = 0; i < n; i++)
				out[i] = bulk_byte(sent + i);
			ssize_t w = send(c.fd, out, n, MSG_NOSIGNAL);
			if (w > 0)
				sent += (size_t)w;
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			unsigned char in[64 * 1024];
			ssize_t n = recv(c.fd, in, sizeof in, 0);
			if (n <= 0 && !(n < 0 && errno == EAGAIN))
				break;
			for (ssize_t i = 0; i < n; i++)
				bad += in[i] != bulk_byte(got + (size_t)i);
			if (n > 0)
				got += (size_t)n;
		}
	}
	f->ms[0] = (long long)sent;
	f->ms[1] = (long long)got;
	f->ms[2] = (long long)bad;
	atomic_store(&f->tclosed, 0);
	shutdown(c.fd, SHUT_WR);
	f->eof[0] = wait_flag(&f->tclosed);
	cli_close(&c);
}

static void test_tunnel_bulk(void **state)
{
	struct fx *f = fx_run(cl_tunnel_bulk, 0, 0, 0, 0);
	assert_int_equal(f->r[0].status, 101);
	assert_int_equal(f->ms[0], BULK_TOTAL);
	assert_int_equal(f->ms[1], BULK_TOTAL);
	assert_int_equal(f->ms[2], 0);
	assert_int_equal(f->tbytes, BULK_TOTAL);
	assert_true(f->tpauses >= 1);
	assert_true(f->tresumes >= 1);
	/* bounded memory: the queue stops one read over the limit; a read is handed over
	 * whole and the connection keeps no other input buffer meanwhile */
	assert_true(f->tmax_queued <= BULK_LIMIT + 2 * HTTP_READ_CHUNK);
	assert_true(f->tmax_rbuf > 0);
	assert_true(f->tmax_rbuf <= 2 * HTTP_READ_CHUNK);
	assert_true(f->eof[0]);
	assert_int_equal(f->tcloses, 1);
	assert_int_equal(f->writes_failed, 0);
	assert_ends(f);
	fx_free(f);
}

static void test_server_listen_error(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct http_handlers h = {NULL, NULL, NULL};
	char err[256];
	assert_null(http_server_new(&loop, "not-an-ip", 80, &h, err, sizeof err));
	assert_non_null(strstr(err, "not-an-ip"));
	struct http_server *s = http_server_new(&loop, "127.0.0.1", 0, &h, err, sizeof err);
	assert_non_null(s);
	assert_null(http_server_new(&loop, "127.0.0.1", http_server_port(s), &h, err, sizeof err));
	assert_non_null(strstr(err, "address already in use"));
	http_server_close(s, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_get),
		cmocka_unit_test(test_parse_pipelined),
		cmocka_unit_test(test_parse_chunked),
		cmocka_unit_test(test_parse_content_length_limit),
		cmocka_unit_test(test_parse_keepalive),
		cmocka_unit_test(test_parse_upgrade),
		cmocka_unit_test(test_parse_forms),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_parse_limits_exact),
		cmocka_unit_test(test_parse_query),
		cmocka_unit_test(test_status_text),
		cmocka_unit_test(test_server_keepalive),
		cmocka_unit_test(test_server_pipelined),
		cmocka_unit_test(test_server_bodies),
		cmocka_unit_test(test_server_refusals),
		cmocka_unit_test(test_server_expect_continue),
		cmocka_unit_test(test_server_stream),
		cmocka_unit_test(test_server_abort_on_disconnect),
		cmocka_unit_test(test_server_abort_on_close),
		cmocka_unit_test(test_server_http10_and_early),
		cmocka_unit_test(test_server_timeouts),
		cmocka_unit_test(test_server_max_conns),
		cmocka_unit_test(test_server_backpressure),
		cmocka_unit_test(test_server_slow_reader),
		cmocka_unit_test(test_server_spool_abort),
		cmocka_unit_test(test_tunnel_echo),
		cmocka_unit_test(test_tunnel_refused),
		cmocka_unit_test(test_tunnel_handler_close),
		cmocka_unit_test(test_tunnel_server_close),
		cmocka_unit_test(test_tunnel_bulk),
		cmocka_unit_test(test_server_listen_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
