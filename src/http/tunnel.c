/* http/tunnel: HTTP/1.1 Upgrade. Deciding whether a request asks for a protocol, the 101
 * answer, and the handler's side of an upgraded connection: bytes in (on_data), bytes out
 * (queued on the socket), pause/resume, close. server.c keeps the socket, the read buffer
 * and the state (C_TUNNEL); this file never reads a socket itself.
 *
 * A struct http_tunnel lives from http_req_upgrade until on_close has returned or
 * http_tunnel_close was called, whichever comes first; the connection points to it
 * (c->tunnel) only while it is live, which is how every call here tells a closed tunnel. */
#include "http/conn.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct http_tunnel {
	struct conn *c;
	struct http_tunnel_events ev;
	unsigned want_drain : 1;   /* a write had to queue: on_drain when the queue empties */
	unsigned in_close : 1;     /* inside on_close: freed by its caller */
};

/* Is tok one of the elements of a comma-separated list (optional whitespace around them)? */
static bool token_listed(const char *list, const char *tok)
{
	size_t n = strlen(tok);
	const char *s = list;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		const char *e = s;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if ((size_t)(t - s) == n && !strncasecmp(s, tok, n))
			return true;
		s = e;
	}
	return false;
}

/* protocol-name ["/" protocol-version], both tokens (RFC 9110 7.8): safe in a header. */
static bool proto_ok(const char *p)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	size_t slashes = 0, n = 0;
	for (; *p; p++, n++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '/') {
			if (++slashes > 1 || !n || !p[1])
				return false;
		} else if (!((ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') ||
			     strchr(tchar, ch))) {
			return false;
		}
	}
	return n > 0;
}

bool http_req_wants_upgrade(const struct http_req *r, const char *proto)
{
	if (!r || !proto || !proto_ok(proto))
		return false;
	const struct http_reqx *rx = (const struct http_reqx *)r;
	/* llhttp's upgrade flag: an Upgrade header and "upgrade" among the Connection options.
	 * HTTP/1.0 has no Upgrade (RFC 9110 7.8: a server ignores it there). */
	if (!rx->upgrade || rx->http_minor != 1)
		return false;
	for (size_t i = 0; i < r->nheaders; i++)
		if (!strcasecmp(r->headers[i].name, "upgrade") && token_listed(r->headers[i].value, proto))
			return true;
	return false;
}

struct http_tunnel *http_req_upgrade(struct http_req *r, const char *proto, const char *extra_headers,
				     const struct http_tunnel_events *ev)
{
	if (!r || !r->conn || !ev || !ev->on_data || !ev->on_close || !http_req_wants_upgrade(r, proto))
		return NULL;
	struct conn *c = r->conn;
	/* Only the handler that owns the whole request may switch: not from on_head (the body
	 * would be mixed into the tunnel), not after an answer started, not an orphan. */
	if (c->in_abort || c->req != (struct http_reqx *)r || c->state != C_ANSWER || !c->handed ||
	    !c->complete || c->answering || c->eof)
		return NULL;
	struct http_tunnel *t = xcalloc(1, sizeof *t);
	t->c = c;
	t->ev = *ev;
	conn_send_switching(c, proto, extra_headers);
	if (c->state == C_DEAD) {          /* the write failed at once */
		free(t);
		return NULL;
	}
	c->tunnel = t;
	conn_tunnel_enter(c);
	return t;
}

static bool live(const struct http_tunnel *t)
{
	return t && !t->in_close && t->c->tunnel == t && t->c->state == C_TUNNEL;
}

int http_tunnel_write(struct http_tunnel *t, const void *data, size_t n)
{
	if (!live(t))
		return -1;
	if (!n)
		return 0;
	struct conn *c = t->c;
	/* Straight to the socket when nothing waits (most writes): no copy. uv_try_write says
	 * EAGAIN by itself while earlier bytes are still queued, which keeps the order. */
	uv_buf_t ub = uv_buf_init((char *)data, (unsigned int)(n > UINT32_MAX / 2 ? UINT32_MAX / 2 : n));
	int w = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
	if (w < 0 && w != UV_EAGAIN) {
		conn_close_now(c);         /* the peer is gone: on_close follows from the loop */
		return -1;
	}
	size_t done = w > 0 ? (size_t)w : 0;
	if (done < n) {
		struct buf b = BUF_INIT;
		buf_add(&b, (const char *)data + done, n - done);
		conn_write(c, &b);
		if (c->state != C_TUNNEL)
			return -1;
		t->want_drain = 1;
	}
	return 0;
}

size_t http_tunnel_queued(const struct http_tunnel *t)
{
	if (!live(t))
		return 0;
	return uv_stream_get_write_queue_size((const uv_stream_t *)&t->c->tcp);
}

void http_tunnel_pause(struct http_tunnel *t, bool paused)
{
	if (!live(t) || t->c->tpaused == paused)
		return;
	struct conn *c = t->c;
	c->tpaused = paused;
	conn_update(c);                /* reading; on resume, held bytes are handed over */
}

void http_tunnel_close(struct http_tunnel *t)
{
	if (!t || t->in_close)
		return;
	struct conn *c = t->c;
	c->tunnel = NULL;
	free(t);
	if (c->state != C_TUNNEL)
		return;                    /* failed already: on_close was due, now it is not */
	buf_free(&c->rbuf);            /* input not handed over yet is dropped */
	c->rpos = 0;
	conn_close_graceful(c);
}

void conn_tunnel_deliver(struct conn *c)
{
	struct http_tunnel *t = c->tunnel;
	if (!live(t) || c->tpaused)
		return;                    /* held until resumed, or dropped with the connection */
	/* The bytes leave the connection before on_data sees them: whatever on_data does
	 * (close, pause, write) they stay valid for the call, and between reads the tunnel
	 * holds no buffer at all. */
	struct buf in = c->rbuf;
	size_t from = c->rpos;
	c->rbuf = (struct buf)BUF_INIT;
	c->rpos = 0;
	if (in.len > from)
		t->ev.on_data(t->ev.arg, in.p + from, in.len - from);
	buf_free(&in);
}

void conn_tunnel_gone(struct conn *c)
{
	struct http_tunnel *t = c->tunnel;
	if (!t)
		return;
	c->tunnel = NULL;
	t->in_close = 1;
	t->ev.on_close(t->ev.arg);
	free(t);
}

void conn_tunnel_wrote(struct conn *c)
{
	struct http_tunnel *t = c->tunnel;
	if (!live(t) || !t->want_drain || uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp))
		return;
	t->want_drain = 0;
	if (t->ev.on_drain)
		t->ev.on_drain(t->ev.arg);
}
