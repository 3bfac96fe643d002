/* router/resp: upstream response framing without I/O (see resp.h).
 *
 * llhttp (never lenient) parses the bytes; our callbacks build the head in one arena and
 * pause at every point the router must act on: end of head, end of each chunk (so each
 * body span is contiguous), end of message. Framing rules of our own are applied at the
 * end of the head: exactly "chunked" as Transfer-Encoding, never both framings, no body
 * for HEAD/1xx/204/304 whatever the head says (llhttp would read a 304's Content-Length
 * bytes as a body), a 101 stops parsing (the rest is the tunnel's).
 * Owns the llhttp parser and the head's memory; never touches a socket. */
#include "router/resp.h"
#include "http/parse.h"
#include "util/buf.h"
#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum rstate { R_HEAD, R_BODY, R_DONE, R_UPGRADE, R_ERROR };

struct resp_parse {
	llhttp_t ll;
	enum rstate st;
	int head_request;
	const char *err;
	/* the head being built */
	struct buf arena;
	struct http_hoff *hoff;
	size_t nh, caph;
	size_t name_off, value_off, reason_off;
	int in_name, in_value, has_reason;
	size_t head_bytes;
	struct resp_head head;
	int have_head;
	/* the body */
	uint64_t seen;
	const char *span;
	size_t span_len;
	int hc, mc;
	int done_pending;
	int keep_alive;
};

#define RP(ll) ((struct resp_parse *)(ll)->data)

static int refuse(struct resp_parse *p, const char *why)
{
	if (!p->err)
		p->err = why;
	return -1;
}

/* Control bytes (but HTAB) have no place in a value or reason phrase we pass on. */
static int clean(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}

static int cb_status(llhttp_t *ll, const char *at, size_t n)
{
	struct resp_parse *p = RP(ll);
	if (!clean(at, n))
		return refuse(p, "control byte in reason phrase");
	if (!p->has_reason) {
		p->has_reason = 1;
		p->reason_off = p->arena.len;
	}
	buf_add(&p->arena, at, n);
	return 0;
}

static int cb_status_complete(llhttp_t *ll)
{
	struct resp_parse *p = RP(ll);
	if (!p->has_reason) {
		p->has_reason = 1;
		p->reason_off = p->arena.len;
	}
	buf_addc(&p->arena, 0);
	return 0;
}

static int cb_field(llhttp_t *ll, const char *at, size_t n)
{
	struct resp_parse *p = RP(ll);
	if (p->st != R_HEAD)
		return 0;     /* trailer fields: dropped */
	if (!p->in_name) {
		if (p->nh >= HTTP_MAX_HEADERS)
			return refuse(p, "too many header fields");
		p->in_name = 1;
		p->name_off = p->arena.len;
	}
	buf_add(&p->arena, at, n);
	return 0;
}

static int cb_field_complete(llhttp_t *ll)
{
	struct resp_parse *p = RP(ll);
	if (p->st != R_HEAD)
		return 0;
	if (!p->in_name)
		p->name_off = p->arena.len;
	p->in_name = 0;
	buf_addc(&p->arena, 0);
	p->value_off = p->arena.len;
	return 0;
}

static int cb_value(llhttp_t *ll, const char *at, size_t n)
{
	struct resp_parse *p = RP(ll);
	if (p->st != R_HEAD)
		return 0;
	if (!clean(at, n))
		return refuse(p, "control byte in a header value");
	buf_add(&p->arena, at, n);
	return 0;
}

static int cb_value_complete(llhttp_t *ll)
{
	struct resp_parse *p = RP(ll);
	if (p->st != R_HEAD)
		return 0;
	http_hoff_push(&p->arena, &p->hoff, &p->nh, &p->caph, p->name_off, p->value_off);
	return 0;
}

static int cb_headers_complete(llhttp_t *ll)
{
	struct resp_parse *p = RP(ll);
	struct resp_head *h = &p->head;
	const char *a = p->arena.p ? p->arena.p : "";
	size_t ncl = 0, nte = 0;
	const char *te = NULL, *cl = NULL;
	for (size_t i = 0; i < p->nh; i++) {
		const char *name = a + p->hoff[i].name;
		if (!strcasecmp(name, "content-length")) {
			ncl++;
			cl = a + p->hoff[i].value;
		} else if (!strcasecmp(name, "transfer-encoding")) {
			nte++;
			te = a + p->hoff[i].value;
		}
	}
	if (ll->http_major != 1)
		return refuse(p, "HTTP version other than 1.x");
	if (ll->status_code < 100 || ll->status_code > 999)
		return refuse(p, "status code not of three digits");
	if (ncl > 1 || (ncl && !http_digits_only(cl)))
		return refuse(p, "malformed or repeated Content-Length");
	if (nte && (nte > 1 || ncl || strcasecmp(te, "chunked")))
		return refuse(p, "Transfer-Encoding other than chunked, or with Content-Length");
	if (!!(ll->flags & F_CHUNKED) != !!nte || !!(ll->flags & F_CONTENT_LENGTH) != !!ncl)
		return refuse(p, "framing disagreement");

	memset(h, 0, sizeof *h);
	h->status = ll->status_code;
	h->minor = ll->http_minor;
	h->reason = p->has_reason ? a + p->reason_off : "";
	h->headers = xcalloc(p->nh ? p->nh : 1, sizeof *h->headers);
	for (size_t i = 0; i < p->nh; i++) {
		h->headers[i].name = (char *)a + p->hoff[i].name;
		h->headers[i].value = (char *)a + p->hoff[i].value;
	}
	h->nheaders = p->nh;
	h->has_length = ncl ? 1 : 0;
	h->content_length = ncl ? ll->content_length : 0;
	h->chunked = nte ? 1 : 0;
	h->upgrade = h->status == 101;
	if (p->head_request || h->status / 100 == 1 || h->status == 204 || h->status == 304) {
		h->no_body = 1;
		ll->flags |= F_SKIPBODY;   /* read by llhttp when it resumes */
	}
	p->have_head = 1;
	p->hc = 1;
	return HPE_PAUSED;
}

static int cb_body(llhttp_t *ll, const char *at, size_t n)
{
	struct resp_parse *p = RP(ll);
	if (!n)
		return 0;
	if (!p->span) {
		p->span = at;
		p->span_len = n;
	} else if (p->span + p->span_len == at) {
		p->span_len += n;
	} else {
		return refuse(p, "split body span");
	}
	return 0;
}

static int cb_chunk_complete(llhttp_t *ll)
{
	return HPE_PAUSED;
}

static int cb_message_complete(llhttp_t *ll)
{
	RP(ll)->mc = 1;
	return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
	.on_status = cb_status,
	.on_status_complete = cb_status_complete,
	.on_header_field = cb_field,
	.on_header_field_complete = cb_field_complete,
	.on_header_value = cb_value,
	.on_header_value_complete = cb_value_complete,
	.on_headers_complete = cb_headers_complete,
	.on_body = cb_body,
	.on_chunk_complete = cb_chunk_complete,
	.on_message_complete = cb_message_complete,
};

struct resp_parse *resp_parse_new(void)
{
	struct resp_parse *p = xcalloc(1, sizeof *p);
	resp_parse_start(p, 0);
	return p;
}

static void head_reset(struct resp_parse *p)
{
	free(p->head.headers);
	memset(&p->head, 0, sizeof p->head);
	p->have_head = 0;
	buf_reset(&p->arena);
	p->nh = 0;
	p->in_name = p->in_value = p->has_reason = 0;
	p->head_bytes = 0;
}

void resp_parse_free(struct resp_parse *p)
{
	if (!p)
		return;
	free(p->head.headers);
	free(p->hoff);
	buf_free(&p->arena);
	free(p);
}

void resp_parse_start(struct resp_parse *p, int head_request)
{
	llhttp_init(&p->ll, HTTP_RESPONSE, &settings);
	p->ll.data = p;
	head_reset(p);
	p->st = R_HEAD;
	p->head_request = head_request;
	p->err = NULL;
	p->seen = 0;
	p->span = NULL;
	p->span_len = 0;
	p->hc = p->mc = 0;
	p->done_pending = 0;
	p->keep_alive = 0;
}

static size_t fail(struct resp_parse *p, enum resp_event *ev, size_t off, const char *why)
{
	if (!p->err)
		p->err = why;
	p->st = R_ERROR;
	*ev = RESP_EV_ERROR;
	return off;
}

/* Run llhttp; a pause is resumed at once. Returns the bytes consumed. */
static size_t run(struct resp_parse *p, const char *d, size_t n, llhttp_errno_t *e)
{
	*e = llhttp_execute(&p->ll, d, n);
	if (*e == HPE_PAUSED) {
		const char *at = llhttp_get_error_pos(&p->ll);
		llhttp_resume(&p->ll);
		return (size_t)(at - d);
	}
	return n;
}

/* A message ended: the final answer, or an interim one after which parsing goes on. */
static void message_end(struct resp_parse *p)
{
	if (p->head.status / 100 == 1 && !p->head.upgrade) {
		/* llhttp carries on with the next message by itself; only our head is reset */
		head_reset(p);
		p->st = R_HEAD;
		return;
	}
	p->keep_alive = llhttp_should_keep_alive(&p->ll);
	p->st = R_DONE;
}

size_t resp_parse_feed(struct resp_parse *p, const char *data, size_t n, enum resp_event *ev)
{
	size_t off = 0;
	*ev = RESP_EV_NONE;
	if (!data) {
		data = "";
		n = 0;
	}
	if (p->done_pending) {
		p->done_pending = 0;
		*ev = RESP_EV_DONE;
		return 0;
	}
	switch (p->st) {
	case R_ERROR:
		*ev = RESP_EV_ERROR;
		return 0;
	case R_DONE:
	case R_UPGRADE:
		if (n)
			return fail(p, ev, 0, "bytes after the answer");
		return 0;
	case R_HEAD: {
		if (!n)
			return 0;
		size_t budget = RESP_MAX_HEAD - p->head_bytes;
		size_t m = n < budget ? n : budget;
		llhttp_errno_t e;
		p->hc = 0;
		size_t c = run(p, data, m, &e);
		if (e != HPE_OK && e != HPE_PAUSED)
			return fail(p, ev, 0, p->err ? p->err : llhttp_errno_name(e));
		p->head_bytes += c;
		p->seen += c;
		if (!p->hc) {
			if (e == HPE_PAUSED || c != m)
				return fail(p, ev, c, "unexpected pause in head");
			if (m < n || p->head_bytes >= RESP_MAX_HEAD)
				return fail(p, ev, c, "response head too large");
			return c;
		}
		*ev = RESP_EV_HEAD;
		if (p->head.upgrade) {
			p->st = R_UPGRADE;
			return c;
		}
		p->st = R_BODY;
		return c;
	}
	case R_BODY:
		break;
	}
	/* R_BODY: body spans until the message completes. */
	for (int turn = 0; turn < 4; turn++) {
		llhttp_errno_t e;
		p->span = NULL;
		p->span_len = 0;
		p->mc = 0;
		size_t c = run(p, data + off, n - off, &e);
		if (e != HPE_OK && e != HPE_PAUSED)
			return fail(p, ev, off, p->err ? p->err : llhttp_errno_name(e));
		off += c;
		p->seen += c;
		if (p->mc) {
			message_end(p);
			if (p->span) {
				p->done_pending = 1;
				*ev = RESP_EV_BODY;
			} else
				*ev = RESP_EV_DONE;
			return off;
		}
		if (p->span) {
			*ev = RESP_EV_BODY;
			return off;
		}
		if (e == HPE_OK)
			return off;      /* every byte used, more needed */
		/* paused at a chunk end with no data in it: go on */
	}
	return fail(p, ev, off, "no progress");
}

enum resp_event resp_parse_eof(struct resp_parse *p)
{
	if (p->done_pending || p->st == R_DONE)
		return RESP_EV_DONE;
	if (p->st != R_BODY) {
		if (!p->err)
			p->err = p->st == R_HEAD && !p->head_bytes ? "closed before any response byte"
								   : "closed in the response head";
		p->st = R_ERROR;
		return RESP_EV_ERROR;
	}
	p->mc = 0;
	llhttp_errno_t e = llhttp_finish(&p->ll);
	if (e == HPE_PAUSED)
		llhttp_resume(&p->ll);
	if ((e == HPE_OK || e == HPE_PAUSED) && p->mc) {
		p->keep_alive = 0;
		p->st = R_DONE;
		return RESP_EV_DONE;
	}
	if (!p->err)
		p->err = "closed in the response body";
	p->st = R_ERROR;
	return RESP_EV_ERROR;
}

const struct resp_head *resp_parse_head(const struct resp_parse *p)
{
	return p->have_head ? &p->head : NULL;
}

void resp_parse_body(const struct resp_parse *p, const char **data, size_t *n)
{
	*data = p->span ? p->span : "";
	*n = p->span_len;
}

int resp_parse_keep_alive(const struct resp_parse *p)
{
	return p->st == R_DONE && p->keep_alive;
}

uint64_t resp_parse_seen(const struct resp_parse *p)
{
	return p->seen;
}

const char *resp_parse_error(const struct resp_parse *p)
{
	return p->err ? p->err : "";
}
