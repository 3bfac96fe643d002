/* router/client: client connections on a router thread. Bytes read go through berth's
 * framing layer (http/parse.c, the same one the API uses) one request at a time; the
 * request itself is proxy.c's business. Pipelined requests wait in the input buffer (at
 * most RT_PIPE_MAX bytes, then reading stops) and are parsed when the answer before them
 * has ended, so answers go out in order.
 *
 * Memory: reads land in the thread's shared buffer; only bytes that cannot be parsed yet
 * are copied into the connection's own buffer, which is freed as soon as it is empty, and
 * the parser is freed between requests. An idle keep-alive connection is this struct and
 * its two libuv handles, nothing else.
 *
 * Timers (one per connection): the head of the first request must arrive within header_ms
 * of the accept, later heads within header_ms of their first byte (a fixed deadline:
 * trickling bytes does not extend it; 408); a keep-alive connection idle for idle_ms is
 * closed; a client silent for body_ms while sending a body (408) or not reading its
 * answer for body_ms is dropped. Closing after an answer: shutdown once the answer is
 * flushed, then read and drop input for RT_LINGER_MS so the client sees the answer and
 * not a reset. */
#include "router/internal.h"
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

size_t client_wq(const struct client *c)
{
	return c->tcp.write_queue_size;
}

const char *client_peer_ip(const struct client *c, size_t *len)
{
	*len = c->ip_len;
	return c->peer + c->ip_off;
}

const char *client_peer_str(const struct client *c)
{
	return c->peer;
}

/* Fill c->peer from the socket's peer address (once per connection: the access log and
 * X-Forwarded-For would otherwise format it for every request). */
static void peer_format(struct client *c)
{
	struct sockaddr_storage ss;
	int slen = sizeof ss;
	char ip[INET6_ADDRSTRLEN];
	unsigned port = 0;
	ip[0] = 0;
	memset(&ss, 0, sizeof ss);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &slen) == 0) {
		if (ss.ss_family == AF_INET6) {
			uv_ip6_name((const struct sockaddr_in6 *)&ss, ip, sizeof ip);
			port = ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
		} else if (ss.ss_family == AF_INET) {
			uv_ip4_name((const struct sockaddr_in *)&ss, ip, sizeof ip);
			port = ntohs(((const struct sockaddr_in *)&ss)->sin_port);
		}
	}
	size_t il = strnlen(ip, sizeof ip - 1);
	if (!il) {
		memcpy(c->peer, "unknown", 8);
		c->ip_off = 0;
		c->ip_len = 7;
		return;
	}
	bool v6 = ss.ss_family == AF_INET6;
	size_t n = 0;
	if (v6)
		c->peer[n++] = '[';
	c->ip_off = (unsigned char)n;
	c->ip_len = (unsigned char)il;
	memcpy(c->peer + n, ip, il);
	n += il;
	if (v6)
		c->peer[n++] = ']';
	c->peer[n++] = ':';
	char d[6];
	size_t k = sizeof d;
	do {
		d[--k] = (char)('0' + port % 10);
		port /= 10;
	} while (port && k);
	memcpy(c->peer + n, d + k, sizeof d - k);
	n += sizeof d - k;
	c->peer[n] = 0;
}

/* ---- closing ---- */

static void on_closed(uv_handle_t *h)
{
	struct client *c = h->data;
	if (++c->nclosed < 2)
		return;
	struct rthread *w = c->w;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nclients--;
	atomic_fetch_sub_explicit(&w->g_clients, 1, memory_order_relaxed);
	free(c);
}

static void drop_input(struct client *c)
{
	http_parse_free(c->parse);
	c->parse = NULL;
	buf_free(&c->in);
	c->inpos = 0;
}

void client_close_now(struct client *c)
{
	if (c->st == CS_DEAD)
		return;
	c->st = CS_DEAD;
	if (c->req)
		proxy_client_gone(c->req);
	drop_input(c);
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_close((uv_handle_t *)&c->tcp, on_closed);
	uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void set_timer(struct client *c, enum ctimer mode, uint64_t ms, bool restart);

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct client *c = req->handle->data;
	free(req);
	if (c->st != CS_CLOSING)
		return;
	if (status < 0) {
		client_close_now(c);
		return;
	}
	c->flushed = 1;
	set_timer(c, CT_LINGER, RT_LINGER_MS, true);
}

void client_close_graceful(struct client *c)
{
	if (c->st == CS_DEAD || c->st == CS_CLOSING)
		return;
	if (c->req)
		proxy_client_gone(c->req);
	c->st = CS_CLOSING;
	drop_input(c);
	if (c->broken) {
		client_close_now(c);
		return;
	}
	uv_shutdown_t *sr = xmalloc(sizeof *sr);
	if (uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_shutdown)) {
		free(sr);
		client_close_now(c);
		return;
	}
	c->shut = 1;
	/* the answer must flush within body_ms; then the linger runs */
	set_timer(c, CT_LINGER, router_cfg(c->w->r)->body_ms, true);
	if (!c->reading) {
		uv_read_start((uv_stream_t *)&c->tcp, rt_alloc, on_read);
		c->reading = 1;
	}
}

void client_close_all(struct rthread *w)
{
	struct client *c = w->clients;
	while (c) {
		struct client *next = c->next;
		client_close_now(c);
		c = next;
	}
}

bool client_drain(struct rthread *w, bool idle, bool cut)
{
	bool done = true;
	for (struct client *c = w->clients; c; c = c->next) {
		if (c->st == CS_DEAD)
			continue;
		if (cut || c->st == CS_TUNNEL) {
			client_close_now(c);
			continue;
		}
		if (c->st == CS_CLOSING) {
			done = done && c->flushed;
			continue;
		}
		done = false;
		bool in_head = c->in.len > c->inpos || (c->parse && http_parse_phase(c->parse) == HTTP_PHASE_HEAD);
		if (idle && !c->req && !in_head)
			client_close_graceful(c);
	}
	return done;
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
	struct client *c = t->data;
	enum ctimer mode = c->tmode;
	c->tmode = CT_NONE;
	if (c->st == CS_DEAD)
		return;
	switch (mode) {
	case CT_HEAD:
		if (c->parse && http_parse_phase(c->parse) == HTTP_PHASE_HEAD) {
			proxy_refuse(c, 408, c->head_bytes);
			return;
		}
		client_close_now(c);
		return;
	case CT_BODY:
		if (c->req) {
			proxy_client_error(c->req, 408);
			return;
		}
		client_close_now(c);
		return;
	case CT_NONE:
		return;
	case CT_IDLE:
	case CT_SEND:
	case CT_TUNNEL:
	case CT_LINGER:
	case CT_DEFER:
		client_close_now(c);
		return;
	}
}

static void set_timer(struct client *c, enum ctimer mode, uint64_t ms, bool restart)
{
	if (c->st == CS_DEAD || (c->tmode == mode && !restart) || c->tmode == CT_DEFER)
		return;
	c->tmode = mode;
	if (mode == CT_NONE)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Activity: inactivity timers start over. */
static void touch(struct client *c)
{
	const struct router_cfgx *cfg = router_cfg(c->w->r);
	switch (c->tmode) {
	case CT_BODY:
	case CT_SEND:
		set_timer(c, c->tmode, cfg->body_ms, true);
		break;
	case CT_TUNNEL:
		set_timer(c, CT_TUNNEL, cfg->tunnel_idle_ms, true);
		break;
	default:
		break;
	}
}

/* ---- reading and the state ---- */

static void set_reading(struct client *c, bool on)
{
	if (on == (bool)c->reading)
		return;
	if (on)
		uv_read_start((uv_stream_t *)&c->tcp, rt_alloc, on_read);
	else
		uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = on;
}

void client_update(struct client *c)
{
	if (c->st == CS_DEAD || c->st == CS_CLOSING || c->broken)
		return;
	const struct router_cfgx *cfg = router_cfg(c->w->r);
	struct preq *q = c->req;
	size_t pending = c->in.len - c->inpos;
	if (c->st == CS_TUNNEL) {
		set_reading(c, !c->eof && q && !q->up_paused);
		set_timer(c, CT_TUNNEL, cfg->tunnel_idle_ms, false);
		return;
	}
	if (!q) {
		set_reading(c, true);
		bool in_head = pending || (c->parse && http_parse_phase(c->parse) == HTTP_PHASE_HEAD);
		if (in_head || !c->served)
			set_timer(c, CT_HEAD, cfg->header_ms, false);
		else
			set_timer(c, CT_IDLE, cfg->idle_ms, false);
		return;
	}
	if (!q->body_done && !q->answered) {
		bool feed = proxy_can_feed(q) && !pending;
		set_reading(c, feed);
		if (feed)
			set_timer(c, CT_BODY, cfg->body_ms, false);
		else
			set_timer(c, q->client_paused ? CT_SEND : CT_NONE, cfg->body_ms, false);
		return;
	}
	/* waiting for the answer or sending it: keep an eye on the client (EOF), buffer
	 * pipelined input up to a bound */
	set_reading(c, pending < RT_PIPE_MAX);
	set_timer(c, q->client_paused ? CT_SEND : CT_NONE, cfg->body_ms, false);
}

/* Feed d[0..n) to the framing layer while the request in flight can take it. Returns the
 * bytes used. Events may end requests and start the next ones (in order). */
static size_t feed(struct client *c, const char *d, size_t n)
{
	size_t off = 0;
	int need_feed = 0;     /* after a head: feed again even with no bytes */
	while (c->st == CS_OPEN) {
		struct preq *q = c->req;
		if (q && (q->body_done || !proxy_can_feed(q)))
			break;
		if (off == n && !need_feed)
			break;
		if (!c->parse)
			c->parse = http_parse_new();
		enum http_parse_event ev;
		int status;
		size_t used = http_parse_feed(c->parse, d + off, n - off, &ev, &status);
		off += used;
		need_feed = 0;
		if (!q && !c->head_t0 && used)
			c->head_t0 = uv_hrtime();     /* a request's first byte: its clock starts */
		switch (ev) {
		case HTTP_EV_NONE:
			if (q)
				q->bytes_in += used;   /* chunk framing */
			else
				c->head_bytes += used;
			return off;
		case HTTP_EV_HEAD: {
			uint64_t hb = c->head_bytes + used;
			c->head_bytes = 0;
			need_feed = 1;
			proxy_head(c, http_parse_take_req(c->parse), hb);
			break;
		}
		case HTTP_EV_BODY: {
			const char *bd;
			size_t bn;
			http_parse_body(c->parse, &bd, &bn);
			proxy_body(q, bd, bn, used);
			need_feed = 1;   /* the message's end may be pending with no more bytes */
			break;
		}
		case HTTP_EV_DONE:
			proxy_body_done(q, used);
			break;
		case HTTP_EV_ERROR:
			if (q)
				proxy_client_error(q, status);
			else
				proxy_refuse(c, status, c->head_bytes + used);
			return n;
		}
	}
	return off;
}

/* Between requests with nothing pending, the parser goes: it is rebuilt on the next byte. */
static void maybe_shrink(struct client *c)
{
	if (c->inpos >= c->in.len) {
		buf_free(&c->in);
		c->inpos = 0;
	} else if (c->inpos > 4096 && c->inpos * 2 > c->in.len) {
		buf_consume(&c->in, c->inpos);
		c->inpos = 0;
	}
	if (!c->req && c->parse && !c->in.len && http_parse_phase(c->parse) == HTTP_PHASE_IDLE) {
		http_parse_free(c->parse);
		c->parse = NULL;
	}
}

void client_resume(struct client *c)
{
	if (c->in_process)
		return;      /* the feed loop under us goes on by itself */
	if (c->st == CS_OPEN && c->in.len > c->inpos) {
		c->in_process = 1;
		size_t used = feed(c, c->in.p + c->inpos, c->in.len - c->inpos);
		c->in_process = 0;
		if (c->st == CS_OPEN)
			c->inpos += used;
	}
	if (c->st == CS_OPEN)
		maybe_shrink(c);
	client_update(c);
}

static void read_end(struct client *c, ssize_t nread)
{
	if (c->st == CS_CLOSING) {
		client_close_now(c);
		return;
	}
	if (c->st == CS_TUNNEL && nread == UV_EOF && c->req) {
		c->eof = 1;
		tunnel_client_eof(c->req);
		client_update(c);
		return;
	}
	client_close_now(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct client *c = s->data;
	if (nread == 0 || c->st == CS_DEAD)
		return;
	if (nread < 0) {
		read_end(c, nread);
		return;
	}
	if (c->st == CS_CLOSING)
		return;      /* lingering: input is dropped */
	if (c->st == CS_TUNNEL) {
		if (c->req)
			tunnel_from_client(c->req, b->base, (size_t)nread);
		touch(c);
		client_update(c);
		return;
	}
	touch(c);
	if (c->in.len > c->inpos) {
		/* earlier input waits: keep order */
		buf_add(&c->in, b->base, (size_t)nread);
		client_resume(c);
		return;
	}
	c->in_process = 1;
	size_t used = feed(c, b->base, (size_t)nread);
	c->in_process = 0;
	if (c->st == CS_OPEN && used < (size_t)nread) {
		buf_free(&c->in);
		buf_add(&c->in, b->base + used, (size_t)nread - used);
		c->inpos = 0;
		/* a request may have ended inside feed with more input behind it */
		client_resume(c);
		return;
	}
	if (c->st == CS_OPEN)
		maybe_shrink(c);
	client_update(c);
}

/* ---- writing ---- */

static void on_written(uv_stream_t *s, int status)
{
	struct client *c = s->data;
	if (c->st == CS_DEAD)
		return;
	if (status < 0) {
		c->broken = 1;
		set_timer(c, CT_DEFER, 0, true);
		return;
	}
	if (c->tmode == CT_SEND || c->tmode == CT_TUNNEL)
		touch(c);
	if (c->req && c->req->client_paused && client_wq(c) <= RT_WQ_LOW)
		proxy_client_drained(c->req);
}

int client_write(struct client *c, const uv_buf_t *bufs, unsigned n)
{
	if (c->st == CS_DEAD || c->broken)
		return -1;
	if (wire_send((uv_stream_t *)&c->tcp, bufs, n, on_written)) {
		c->broken = 1;
		set_timer(c, CT_DEFER, 0, true);
		return -1;
	}
	return 0;
}

void client_req_ended(struct client *c, bool keep)
{
	c->req = NULL;
	c->served = 1;
	if (c->st != CS_OPEN)
		return;
	if (!keep) {
		client_close_graceful(c);
		return;
	}
	client_resume(c);
}

/* ---- accepting ---- */

static void on_refused_closed(uv_handle_t *h)
{
	free(h);
}

void client_on_connection(uv_stream_t *l, int status)
{
	struct rthread *w = l->data;
	if (status < 0 || w->stopping)
		return;
	const struct router_cfgx *cfg = router_cfg(w->r);
	if (w->nclients >= cfg->max_conns) {
		uv_tcp_t *t = xmalloc(sizeof *t);
		uv_tcp_init(&w->loop, t);
		(void)uv_accept(l, (uv_stream_t *)t);
		uv_close((uv_handle_t *)t, on_refused_closed);
		return;
	}
	struct client *c = xcalloc(1, sizeof *c);
	c->w = w;
	uv_tcp_init(&w->loop, &c->tcp);
	uv_timer_init(&w->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->next = w->clients;
	if (w->clients)
		w->clients->prev = c;
	w->clients = c;
	w->nclients++;
	atomic_fetch_add_explicit(&w->g_clients, 1, memory_order_relaxed);
	c->st = CS_OPEN;
	if (uv_accept(l, (uv_stream_t *)&c->tcp)) {
		client_close_now(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	peer_format(c);
	client_update(c);
}

/* ---- tunnels ---- */

static void on_tunnel_shutdown(uv_shutdown_t *req, int status)
{
	free(req);
}

void client_shutdown(struct client *c)
{
	if (c->st == CS_DEAD || c->shut || c->broken)
		return;
	uv_shutdown_t *sr = xmalloc(sizeof *sr);
	if (uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_tunnel_shutdown)) {
		free(sr);
		return;
	}
	c->shut = 1;
}

void client_tunnel(struct client *c)
{
	http_parse_free(c->parse);
	c->parse = NULL;
	c->st = CS_TUNNEL;
}

void client_touch(struct client *c)
{
	if (c->tmode == CT_SEND || c->tmode == CT_TUNNEL || c->tmode == CT_BODY)
		touch(c);
}
