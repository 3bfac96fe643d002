/* fuzz_http_resp: libFuzzer harness for the router's upstream response framing
 * (src/router/resp.c), without any I/O.
 *
 * The input is what an upstream connection delivers: answers one after another (as on a
 * keep-alive connection), interim 1xx answers, a 101 and tunnel bytes, garbage. It is
 * parsed twice, as the router would: once in one piece, once cut into small pieces (cuts,
 * and whether the request was HEAD, come from a hash of the input so the corpus stays
 * plain HTTP text); at the end of the input the upstream "closes" (resp_parse_eof). Both
 * runs must tell the same story: the same heads, the same body bytes, the same ends and
 * refusals. Invariants on the way: consumption never exceeds what was given, body bytes
 * point inside it, HEAD/1xx/204/304 answers have no body, a Content-Length body has exactly
 * that length, an error sticks, a head has at most HTTP_MAX_HEADERS fields and no control
 * byte in a value. */
#include "router/resp.h"
#include "util/buf.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "fuzz_http_resp: %s:%d: check failed: %s\n", __FILE__, \
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

struct story {
	struct buf text;
	uint64_t body;          /* body bytes of the current answer */
	uint64_t bhash;
	int head_req;
	int has_length, no_body;
	uint64_t length;
	int stopped;            /* error or 101: nothing more is parsed */
};

static void on_head(struct story *st, struct resp_parse *p)
{
	const struct resp_head *h = resp_parse_head(p);
	CHECK(h);
	CHECK(h->status >= 100 && h->status <= 999);
	CHECK(h->nheaders <= HTTP_MAX_HEADERS);
	for (size_t i = 0; i < h->nheaders; i++)
		for (const char *v = h->headers[i].value; *v; v++)
			CHECK((unsigned char)*v >= 0x20 || *v == '\t');
	if (st->head_req || h->status / 100 == 1 || h->status == 204 || h->status == 304)
		CHECK(h->no_body);
	CHECK(!(h->chunked && h->has_length));
	buf_addf(&st->text, "HEAD %d 1.%d n=%zu cl=%d/%llu ch=%d nb=%d up=%d reason=%s\n", h->status, h->minor,
		 h->nheaders, h->has_length, (unsigned long long)h->content_length, h->chunked, h->no_body,
		 h->upgrade, h->reason);
	for (size_t i = 0; i < h->nheaders; i++)
		buf_addf(&st->text, "  %s: %s\n", h->headers[i].name, h->headers[i].value);
	st->body = 0;
	st->bhash = 14695981039346656037ull;
	st->has_length = h->has_length;
	st->length = h->content_length;
	st->no_body = h->no_body;
	if (h->upgrade)
		st->stopped = 1;
}

static void on_done(struct story *st, struct resp_parse *p, int eof)
{
	if (st->no_body)
		CHECK(st->body == 0);
	else if (st->has_length && !eof)
		CHECK(st->body == st->length);
	buf_addf(&st->text, "DONE body=%llu %016llx ka=%d%s\n", (unsigned long long)st->body,
		 (unsigned long long)st->bhash, resp_parse_keep_alive(p), eof ? " eof" : "");
}

/* Feed pend[*off..len); keep going until more bytes are needed. */
static void drain(struct story *st, struct resp_parse *p, const char *pend, size_t len, size_t *off)
{
	for (int guard = 0; guard < 100000 && !st->stopped; guard++) {
		enum resp_event ev;
		size_t n = len - *off;
		size_t used = resp_parse_feed(p, pend + *off, n, &ev);
		CHECK(used <= n);
		const char *base = pend + *off;
		*off += used;
		switch (ev) {
		case RESP_EV_NONE:
			CHECK(used == n);
			return;
		case RESP_EV_HEAD:
			on_head(st, p);
			break;
		case RESP_EV_BODY: {
			const char *d;
			size_t bn;
			resp_parse_body(p, &d, &bn);
			CHECK(bn > 0);
			CHECK(d >= base && d + bn <= base + used);
			CHECK(!st->no_body);
			st->body += bn;
			st->bhash = fnv(d, bn, st->bhash);
			break;
		}
		case RESP_EV_DONE: {
			const struct resp_head *h = resp_parse_head(p);
			int interim = h && h->status / 100 == 1;
			on_done(st, p, 0);
			if (!interim) {
				/* the next answer on a keep-alive connection */
				resp_parse_start(p, st->head_req);
			}
			break;
		}
		case RESP_EV_ERROR: {
			buf_addf(&st->text, "ERROR\n");
			enum resp_event ev2;
			CHECK(resp_parse_feed(p, "x", 1, &ev2) == 0 && ev2 == RESP_EV_ERROR);   /* sticks */
			st->stopped = 1;
			return;
		}
		}
	}
	CHECK(st->stopped);
}

static void finish(struct story *st, struct resp_parse *p)
{
	if (st->stopped)
		return;
	enum resp_event ev = resp_parse_eof(p);
	if (ev == RESP_EV_DONE)
		on_done(st, p, 1);
	else
		buf_addf(&st->text, "EOF ERROR\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t h = fnv(data, size, 14695981039346656037ull);
	int head_req = (h & 3) == 0;

	struct story one = {BUF_INIT, 0, 0, head_req, 0, 0, 0, 0};
	struct resp_parse *p = resp_parse_new();
	resp_parse_start(p, head_req);
	size_t off = 0;
	drain(&one, p, (const char *)data, size, &off);
	finish(&one, p);
	resp_parse_free(p);

	struct story two = {BUF_INIT, 0, 0, head_req, 0, 0, 0, 0};
	p = resp_parse_new();
	resp_parse_start(p, head_req);
	struct buf pend = BUF_INIT;
	size_t pos = 0;
	uint64_t x = h | 1;
	while (pos < size && !two.stopped) {
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
	finish(&two, p);
	resp_parse_free(p);

	if (strcmp(buf_str(&one.text), buf_str(&two.text))) {
		fprintf(stderr, "fuzz_http_resp: whole and split runs differ\n--- whole\n%s--- split\n%s",
			buf_str(&one.text), buf_str(&two.text));
		abort();
	}
	buf_free(&one.text);
	buf_free(&two.text);
	buf_free(&pend);
	return 0;
}
