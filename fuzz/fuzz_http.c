/* fuzz_http: libFuzzer harness for berth's HTTP/1.1 framing layer (src/http/parse.c + the
 * request helpers in req.c), without any I/O.
 *
 * The input is a raw byte stream from a client (several pipelined requests, smuggling
 * attempts, garbage). It is parsed twice, as a server would: once handed over in one piece,
 * once cut into small pieces (the cuts and the body limit come from a hash of the input, so
 * the corpus stays plain HTTP text). The body limits are the API's (a small one, the 1 MiB
 * default) and the router's (none: it streams bodies). Both runs must tell the same story:
 * the same heads, the same bodies byte for byte, the same end or refusal. Invariants checked on the way:
 * consumption never exceeds what was given, body bytes point inside it, no body exceeds
 * the limit, a decoded path starts with '/' and holds no control byte, an error sticks. */
#include "http/parse.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "fuzz_http: %s:%d: check failed: %s\n", __FILE__,     \
				__LINE__, #cond);                                                 \
			abort();                                                          \
		}                                                                         \
	} while (0)

static uint64_t fnv(const void *d, size_t n, uint64_t h)
{
	const unsigned char *p = d;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* What a run saw, as text: one line per head, finished body, error. */
struct story {
	struct buf text;
	struct buf body;     /* the current request's body so far */
	uint64_t max;
	int errored;
};

static void on_head(struct story *st, struct http_parse *p)
{
	struct http_req *r = http_parse_take_req(p);
	CHECK(r);
	CHECK(r->path[0] == '/');
	for (const char *s = r->path; *s; s++)
		CHECK((unsigned char)*s >= 0x20 && *s != 0x7f);
	CHECK(r->nheaders <= HTTP_MAX_HEADERS);
	CHECK(strlen(r->target) <= HTTP_MAX_URL);
	const char *host = http_req_header(r, "Host");
	const char *a = http_req_query(r, "a");
	const char *a2 = http_req_query(r, "a");
	CHECK(a == a2);      /* cached */
	const char *b = http_req_query(r, "b c");
	buf_addf(&st->text, "HEAD %s %s ? %s h=%s a=%s b=%s n=%zu\n", r->method, r->path, r->query,
		 host ? host : "-", a ? a : "-", b ? b : "-", r->nheaders);
	for (size_t i = 0; i < r->nheaders; i++)
		buf_addf(&st->text, "  %s: %s\n", r->headers[i].name, r->headers[i].value);
	http_req_free(r);
	http_parse_set_body_max(p, st->max);
	buf_reset(&st->body);
}

/* Feed everything in pend from *off on, handling events, until more bytes are needed. */
static void drain(struct story *st, struct http_parse *p, const char *pend, size_t len, size_t *off)
{
	for (int guard = 0; guard < 100000; guard++) {
		enum http_parse_event ev;
		int status;
		size_t n = len - *off;
		size_t used = http_parse_feed(p, pend + *off, n, &ev, &status);
		CHECK(used <= n);
		const char *base = pend + *off;
		*off += used;
		switch (ev) {
		case HTTP_EV_NONE:
			CHECK(used == n);
			return;
		case HTTP_EV_HEAD:
			on_head(st, p);
			break;
		case HTTP_EV_BODY: {
			const char *d;
			size_t bn;
			http_parse_body(p, &d, &bn);
			CHECK(bn > 0);
			CHECK(d >= base && d + bn <= base + used);
			buf_add(&st->body, d, bn);
			CHECK(st->body.len <= st->max);
			break;
		}
		case HTTP_EV_DONE:
			buf_addf(&st->text, "DONE body=%zu %016llx\n", st->body.len,
				 (unsigned long long)fnv(st->body.p ? st->body.p : "", st->body.len, 14695981039346656037ull));
			buf_reset(&st->body);
			break;
		case HTTP_EV_ERROR: {
			CHECK(status >= 400 && status <= 599);
			buf_addf(&st->text, "ERROR %d\n", status);
			enum http_parse_event ev2;
			int status2;
			http_parse_feed(p, "x", 1, &ev2, &status2);   /* errors stick */
			CHECK(ev2 == HTTP_EV_ERROR && status2 == status);
			st->errored = 1;
			return;
		}
		}
	}
	CHECK(!"no progress");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fnv(data, size, 14695981039346656037ull);
	uint64_t max = (h & 1) ? 64 : (h & 2) ? UINT64_MAX : HTTP_DEFAULT_BODY_MAX;

	/* Run 1: all at once. */
	struct story one = {BUF_INIT, BUF_INIT, max, 0};
	struct http_parse *p = http_parse_new();
	size_t off = 0;
	drain(&one, p, (const char *)data, size, &off);
	http_parse_free(p);

	/* Run 2: in pieces, keeping what was not consumed, like a connection's read buffer. */
	struct story two = {BUF_INIT, BUF_INIT, max, 0};
	p = http_parse_new();
	struct buf pend = BUF_INIT;
	size_t pos = 0;
	uint64_t x = h | 1;
	while (pos < size && !two.errored) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t piece = (x & 7) == 0 ? (size_t)(x >> 8) % 4096 + 1 : (size_t)(x >> 8) % 16 + 1;
		if (piece > size - pos)
			piece = size - pos;
		buf_add(&pend, data + pos, piece);
		pos += piece;
		size_t used = 0;
		drain(&two, p, pend.p, pend.len, &used);
		buf_consume(&pend, used);
	}
	if (!size) {
		size_t used = 0;
		drain(&two, p, "", 0, &used);
	}
	http_parse_free(p);

	if (strcmp(buf_str(&one.text), buf_str(&two.text))) {
		fprintf(stderr, "fuzz_http: whole and split runs differ\n--- whole\n%s--- split\n%s",
			buf_str(&one.text), buf_str(&two.text));
		abort();
	}
	buf_free(&one.text);
	buf_free(&one.body);
	buf_free(&two.text);
	buf_free(&two.body);
	buf_free(&pend);
	return 0;
}
