/* router/proxy: the life of one proxied request, from its head to the end of its answer.
 *
 *   head read  -> route (Host + longest path prefix) -> pick an endpoint (round-robin or
 *   least-connections) -> pooled or new upstream connection -> head sent (inflight++)
 *   -> body streamed as the client sends it -> answer head rewritten and sent -> answer
 *   body streamed -> done (inflight--, connection pooled or closed, access-log line).
 *
 * Retries: a failed connect moves on to another endpoint of the group (nothing was sent);
 * a pooled connection that fails before any answer byte is retried once on a fresh
 * connection when the request has no body or none of it was sent yet. Nothing else is
 * retried: once body bytes went to an upstream, the request belongs to it.
 * Errors before the answer began become an error page (502/503/504, 404 unrouted);
 * after it began, the client connection is cut so the client sees a truncated answer.
 * A route to an app in maintenance mode is answered at once with the maintenance page (503,
 * Retry-After): one flag of the route already found, nothing sent upstream.
 *
 * Every path out of a request goes through req_end(), which releases the endpoint's
 * inflight count exactly once (the `counted` flag), so draining never waits on a leak.
 * What one upstream read yields for the client (head, body, chunk framing, the end) is
 * gathered and leaves in one writev (the thread's `out`, flushed before the read returns):
 * a small answer costs one write, not three. */
#include "router/internal.h"
#include "util/timeutil.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct router_cfgx *cfg_of(const struct preq *q)
{
	return router_cfg(q->w->r);
}

static void release_ep(struct preq *q)
{
	if (q->counted) {
		atomic_fetch_sub(&q->ep->inflight, 1);
		q->counted = 0;
	}
}

static void drop_up(struct preq *q, bool reusable)
{
	struct upconn *u = q->up;
	if (!u)
		return;
	q->up = NULL;
	u->req = NULL;
	up_release(u, reusable);
}

static void req_end(struct preq *q, bool keep)
{
	struct client *c = q->c;
	struct rthread *w = q->w;
	release_ep(q);
	drop_up(q, false);
	if (q->tunnel)
		atomic_fetch_sub_explicit(&w->g_tunnels, 1, memory_order_relaxed);
	stats_request(w, q);
	if (q->tried_ref)
		for (unsigned i = 0; i < q->ntried; i++)
			endpoint_unref(q->tried[i]);
	if (q->rp && !w->spare_rp)
		w->spare_rp = q->rp;
	else
		resp_parse_free(q->rp);
	buf_free(&q->uphead);
	http_req_free(q->hr);
	rthread_release(w, q->hold);
	c->req = NULL;
	if (!w->spare_req)
		w->spare_req = q;
	else
		free(q);
	client_req_ended(c, keep);
}

/* The answer to the client is complete. */
static void finish(struct preq *q)
{
	if (!q->body_done && q->body == BODY_NONE) {
		q->answered = 1;     /* answered inside the head's handling: its end follows */
		return;
	}
	req_end(q, q->keep_alive && q->body_done && !q->resp_close);
}

static struct preq *req_new(struct client *c, struct http_req *hr, uint64_t head_bytes)
{
	struct preq *q = c->w->spare_req;
	if (q) {
		c->w->spare_req = NULL;
		memset(q, 0, sizeof *q);
	} else {
		q = xcalloc(1, sizeof *q);
	}
	q->c = c;
	q->w = c->w;
	q->hr = hr;
	q->hold = rthread_hold(c->w);
	uint64_t now = uv_hrtime();
	q->t0_ns = c->head_t0 && c->head_t0 <= now ? c->head_t0 : now;
	q->t0_us = time_now_us() - (int64_t)((now - q->t0_ns) / 1000);
	c->head_t0 = 0;
	q->bytes_in = head_bytes;
	c->req = q;
	return q;
}

bool proxy_can_feed(const struct preq *q)
{
	if (q->answered || q->body == BODY_NONE)
		return true;
	return q->head_written && q->up && q->up->st == US_ACTIVE && !q->up_paused && !q->tunnel;
}

/* ---- error answers ---- */

/* The router's own answer: an error page, or (maintenance) the maintenance page, a 503 with
 * Retry-After that no instance is asked for. */
static void answer_page(struct preq *q, int status, bool maintenance)
{
	struct client *c = q->c;
	if (q->resp_started) {
		client_close_now(c);
		return;
	}
	release_ep(q);
	drop_up(q, false);
	q->status = status;
	q->resp_started = 1;
	struct http_reqx *rx = (struct http_reqx *)q->hr;
	bool head = q->hr && !strcmp(q->hr->method, "HEAD");
	bool json = q->hr && accept_prefers_json(http_req_header(q->hr, "Accept"));
	bool keep = q->keep_alive && (q->body_done || q->body == BODY_NONE) && !q->w->draining;
	struct buf body = BUF_INIT, h = BUF_INIT;
	const char *ctype;
	errpage_build(router_errpages(q->w->r), q->route, status, maintenance, json, q->id, &body, &ctype);
	buf_addf(&h,
		 "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		 "X-Request-Id: %s\r\nCache-Control: no-store\r\n%s%s\r\n",
		 status, http_status_text(status), rthread_date(q->w), ctype, body.len, q->id,
		 maintenance ? "Retry-After: " ERRPAGE_RETRY_AFTER "\r\n" : "",
		 !keep ? "Connection: close\r\n" : (rx && !rx->http_minor) ? "Connection: keep-alive\r\n" : "");
	uv_buf_t b[2] = {uv_buf_init(h.p, (unsigned)h.len), uv_buf_init(body.p ? body.p : "", (unsigned)body.len)};
	client_write(c, b, head ? 1 : 2);
	q->bytes_out += h.len + (head ? 0 : body.len);
	buf_free(&h);
	buf_free(&body);
	q->keep_alive = keep;
	finish(q);
}

void proxy_error(struct preq *q, int status)
{
	answer_page(q, status, false);
}

void proxy_refuse(struct client *c, int status, uint64_t bytes_in)
{
	struct preq *q = req_new(c, NULL, bytes_in);
	rthread_reqid(c->w, q->id);
	q->keep_alive = 0;
	q->body_done = 1;
	proxy_error(q, status);
}

void proxy_client_error(struct preq *q, int status)
{
	q->keep_alive = 0;
	if (q->resp_started) {
		client_close_now(q->c);
		return;
	}
	proxy_error(q, status);
}

void proxy_client_gone(struct preq *q)
{
	q->aborted = 1;
	release_ep(q);
	drop_up(q, false);
	req_end(q, false);
}

/* ---- the head sent upstream ---- */

static bool is(const char *a, const char *b)
{
	return !strcasecmp(a, b);
}

/* Headers a proxy must not pass on: hop-by-hop ones, those the Connection header names,
 * and the ones we write ourselves. */
static bool skip_request_header(const struct http_req *hr, const char *name)
{
	return hdr_is_hop(name) || is(name, "host") || is(name, "content-length") || is(name, "expect") ||
	       is(name, "x-forwarded-for") || is(name, "x-forwarded-proto") || is(name, "x-forwarded-host") ||
	       is(name, "x-request-id") || hdr_connection_lists(hr->headers, hr->nheaders, name);
}

static int build_uphead(struct preq *q)
{
	struct http_req *hr = q->hr;
	struct http_reqx *rx = (struct http_reqx *)hr;
	struct buf *b = &q->uphead;
	const struct route *rt = q->route;
	size_t strip = rt->strip_prefix && rt->path_len > 1 ? rt->path_len : 0;
	const char *auth;
	size_t alen;
	buf_grow(b, 512 + strlen(hr->target));
	buf_adds(b, hr->method);
	buf_addc(b, ' ');
	if (target_rewrite(hr->target, strip, b, &auth, &alen))
		return -1;
	buf_adds(b, " HTTP/1.1\r\nHost: ");
	buf_adds(b, q->host);
	buf_adds(b, "\r\n");
	struct buf xff = BUF_INIT;
	for (size_t i = 0; i < hr->nheaders; i++) {
		const struct http_header *h = &hr->headers[i];
		if (is(h->name, "x-forwarded-for") && *h->value) {
			if (xff.len)
				buf_adds(&xff, ", ");
			buf_adds(&xff, h->value);
		}
		if (skip_request_header(hr, h->name))
			continue;
		buf_adds(b, h->name);
		buf_adds(b, ": ");
		buf_adds(b, h->value);
		buf_adds(b, "\r\n");
	}
	size_t iplen;
	const char *ip = client_peer_ip(q->c, &iplen);
	buf_adds(b, "X-Forwarded-For: ");
	if (xff.len) {
		buf_add(b, xff.p, xff.len);
		buf_adds(b, ", ");
	}
	buf_add(b, ip, iplen);
	buf_adds(b, "\r\nX-Forwarded-Proto: ");
	buf_adds(b, cfg_of(q)->proto);
	buf_adds(b, "\r\nX-Forwarded-Host: ");
	buf_adds(b, q->host);
	buf_adds(b, "\r\nX-Request-Id: ");
	buf_adds(b, q->id);
	buf_adds(b, "\r\n");
	buf_free(&xff);
	if (q->body == BODY_LENGTH) {
		buf_adds(b, "Content-Length: ");
		rt_add_u64(b, rx->content_length);
		buf_adds(b, "\r\n");
	} else if (q->body == BODY_CHUNKED)
		buf_adds(b, "Transfer-Encoding: chunked\r\n");
	else if (rx->has_length)
		buf_adds(b, "Content-Length: 0\r\n");
	if (q->ws)
		buf_adds(b, "Connection: Upgrade\r\nUpgrade: websocket\r\n");
	buf_adds(b, "\r\n");
	return 0;
}

/* ---- choosing an endpoint, attempts ---- */

static bool was_tried(const struct preq *q, const struct endpoint *e)
{
	for (unsigned i = 0; i < q->ntried; i++)
		if (q->tried[i] == e)
			return true;
	return false;
}

static struct endpoint *pick(struct preq *q)
{
	const struct ep_group *g = q->group;
	if (!g || !g->n || q->ntried >= RT_MAX_TRIES)
		return NULL;
	unsigned start = atomic_fetch_add_explicit((atomic_uint *)&g->rr, 1, memory_order_relaxed);
	bool least = q->route->balance == BALANCE_LEAST_CONN;
	struct endpoint *best = NULL;
	int best_load = INT_MAX;
	for (size_t i = 0; i < g->n; i++) {
		struct endpoint *e = g->eps[(start + i) % g->n];
		if (was_tried(q, e))
			continue;
		if (!least)
			return e;
		int load = atomic_load_explicit(&e->inflight, memory_order_relaxed);
		if (load < best_load) {
			best = e;
			best_load = load;
		}
	}
	return best;
}

static void send_request(struct preq *q);

/* Before another endpoint is tried: if the thread adopted a newer snapshot meanwhile (a
 * rolling deploy replaced the instance that refused us), route again with it, so the new
 * instances can take the request. Nothing was sent yet, so nothing is lost. */
static void reroute(struct preq *q)
{
	struct rthread *w = q->w;
	if (q->hold == w->hold || !q->hr)
		return;
	struct snaphold *nh = rthread_hold(w);
	const struct route *nr = ep_snapshot_route(nh->snap, q->host, strlen(q->host), q->hr->path,
						   strlen(q->hr->path));
	if (!nr || !nr->group || !nr->group->n) {
		rthread_release(w, nh);
		return;
	}
	if (!q->tried_ref) {
		/* the endpoints tried may leave with the old snapshot: keep them */
		for (unsigned i = 0; i < q->ntried; i++)
			endpoint_ref(q->tried[i]);
		q->tried_ref = 1;
	}
	struct snaphold *old = q->hold;
	const struct route *old_rt = q->route;
	q->hold = nh;
	q->route = nr;
	q->group = nr->group;
	struct buf keep = q->uphead;
	q->uphead = (struct buf)BUF_INIT;
	if (build_uphead(q)) {
		buf_free(&q->uphead);
		q->uphead = keep;
		q->hold = old;
		q->route = old_rt;
		q->group = old_rt->group;
		rthread_release(w, nh);
		return;
	}
	buf_free(&keep);
	rthread_release(w, old);
}

static void attempt(struct preq *q, bool fresh)
{
	if (fresh || q->ntried)
		stats_retry(q->w);
	if (!fresh) {
		if (q->ntried)
			reroute(q);
		struct endpoint *e = pick(q);
		if (!e) {
			q->upstream_failed = q->ntried > 0;
			proxy_error(q, q->ntried == 0 ? 503 : q->uperr == ROUTER_UPERR_CONNECT_TIMEOUT ? 504 : 502);
			return;
		}
		q->tried[q->ntried++] = e;
		if (q->tried_ref)
			endpoint_ref(e);
		q->ep = e;
	}
	/* counted from the choice on (connect included): a drain never misses a request
	 * that is about to reach the instance */
	if (!q->counted) {
		atomic_fetch_add(&q->ep->inflight, 1);
		q->counted = 1;
	}
	q->head_written = 0;
	bool reused = false;
	q->up = up_get(q->w, q->ep, q, fresh, &reused);
	if (reused)
		send_request(q);
}

static void send_request(struct preq *q)
{
	struct upconn *u = q->up;
	atomic_fetch_add(&q->ep->requests, 1);
	if (!q->rp) {
		q->rp = q->w->spare_rp ? q->w->spare_rp : resp_parse_new();
		q->w->spare_rp = NULL;
	}
	resp_parse_start(q->rp, !strcmp(q->hr->method, "HEAD"));
	q->interim = 0;
	u->got_byte = 0;
	uv_buf_t b = uv_buf_init(q->uphead.p, (unsigned)q->uphead.len);
	up_write(u, &b, 1);
	q->head_written = 1;
	/* the answer is awaited once the request is out; while the client still sends its
	 * body, the client's body timer is the one that runs */
	bool sent = q->body == BODY_NONE || q->body_done;
	up_timer(u, sent ? UT_RESPONSE : UT_NONE, cfg_of(q)->response_ms);
	if (q->body == BODY_NONE)
		return;
	if (q->body_done) {
		/* an empty chunked body (retry): only its end goes again */
		if (q->body == BODY_CHUNKED) {
			uv_buf_t z = uv_buf_init("0\r\n\r\n", 5);
			up_write(u, &z, 1);
		}
		return;
	}
	if (q->expect) {
		q->expect = 0;
		uv_buf_t cont = uv_buf_init("HTTP/1.1 100 Continue\r\n\r\n", 25);
		client_write(q->c, &cont, 1);
	}
	client_resume(q->c);      /* the body flows now (q may end inside) */
}

/* ---- the request head ---- */

void proxy_head(struct client *c, struct http_req *hr, uint64_t head_bytes)
{
	struct http_reqx *rx = (struct http_reqx *)hr;
	struct preq *q = req_new(c, hr, head_bytes);
	const struct router_cfgx *cfg = cfg_of(q);
	const char *rid = http_req_header(hr, "X-Request-Id");
	if (rid && reqid_ok(rid))
		snprintf(q->id, sizeof q->id, "%s", rid);
	else
		rthread_reqid(c->w, q->id);
	q->keep_alive = rx->keep_alive && !c->w->draining;   /* an upgrade ends the connection */
	q->body = rx->chunked ? BODY_CHUNKED : rx->has_length && rx->content_length ? BODY_LENGTH : BODY_NONE;
	http_parse_set_body_max(c->parse, cfg->max_body ? cfg->max_body : UINT64_MAX);
	q->expect = rx->expect_continue && q->body != BODY_NONE;
	const char *up = http_req_header(hr, "Upgrade");
	q->ws = rx->upgrade && up && hdr_list_has(up, "websocket");

	/* the host: an absolute-form target's authority wins over Host (RFC 9112 3.2.2) */
	const char *host = http_req_header(hr, "Host");
	size_t hl = host ? strlen(host) : 0;
	if (hr->target[0] != '/') {
		const char *a = strstr(hr->target, "://");
		host = a ? a + 3 : "";
		hl = strcspn(host, "/?");
	}
	if (!host || !host_ok(host, hl)) {
		q->keep_alive = 0;
		proxy_error(q, 400);
		return;
	}
	memcpy(q->host, host, hl);
	q->host[hl] = 0;
	if (q->ws && q->body != BODY_NONE) {
		q->keep_alive = 0;
		proxy_error(q, 400);
		return;
	}
	if (cfg->max_body && rx->has_length && rx->content_length > cfg->max_body) {
		q->keep_alive = 0;
		proxy_error(q, 413);
		return;
	}
	q->route = ep_snapshot_route(q->hold->snap, q->host, hl, hr->path, strlen(hr->path));
	if (!q->route) {
		proxy_error(q, 404);
		return;
	}
	if (q->route->maintenance) {
		/* the app is down for maintenance: its instances run on, untouched */
		q->maintenance = 1;
		answer_page(q, 503, true);
		return;
	}
	q->group = q->route->group;
	if (!q->group || !q->group->n) {
		proxy_error(q, 503);
		return;
	}
	if (build_uphead(q)) {
		q->keep_alive = 0;
		proxy_error(q, 400);
		return;
	}
	attempt(q, false);
}

/* ---- the request body ---- */

void proxy_body(struct preq *q, const char *d, size_t n, size_t raw)
{
	q->bytes_in += raw;
	if (q->answered || !q->up || !q->head_written)
		return;
	if (q->body == BODY_CHUNKED) {
		char hx[24];
		int hn = snprintf(hx, sizeof hx, "%zx\r\n", n);
		uv_buf_t b[3] = {uv_buf_init(hx, (unsigned)hn), uv_buf_init((char *)d, (unsigned)n),
				 uv_buf_init("\r\n", 2)};
		up_write(q->up, b, 3);
	} else {
		uv_buf_t b = uv_buf_init((char *)d, (unsigned)n);
		up_write(q->up, &b, 1);
	}
	q->body_sent = 1;
	if (up_wq(q->up) >= RT_WQ_HIGH) {
		q->up_paused = 1;      /* the instance must take it within response_ms */
		up_timer(q->up, UT_RESPONSE, cfg_of(q)->response_ms);
	}
}

void proxy_body_done(struct preq *q, size_t raw)
{
	q->bytes_in += raw;
	q->body_done = 1;
	if (q->answered) {
		finish(q);
		return;
	}
	if (q->up && q->head_written) {
		if (q->body == BODY_CHUNKED) {
			uv_buf_t z = uv_buf_init("0\r\n\r\n", 5);
			up_write(q->up, &z, 1);
		}
		if (!q->resp_started && !q->client_paused)
			up_timer(q->up, UT_RESPONSE, cfg_of(q)->response_ms);
	}
}

/* ---- the answer ---- */

static void check_client_pause(struct preq *q)
{
	if (!q->client_paused && q->up && client_wq(q->c) >= RT_WQ_HIGH) {
		q->client_paused = 1;
		up_read(q->up, false);
		up_timer(q->up, UT_NONE, 0);
		client_update(q->c);
	}
}

void proxy_client_drained(struct preq *q)
{
	if (!q->client_paused)
		return;
	q->client_paused = 0;
	if (q->up && !q->up_eof) {
		up_read(q->up, true);
		if (!q->tunnel)
			up_timer(q->up, UT_RESPONSE, cfg_of(q)->response_ms);
	}
	client_update(q->c);
}

void proxy_copy_headers(struct buf *b, const struct http_header *hs, size_t n, bool upgrade)
{
	for (size_t i = 0; i < n; i++) {
		const char *name = hs[i].name;
		if ((hdr_is_hop(name) && !(upgrade && is(name, "upgrade"))) || hdr_connection_lists(hs, n, name))
			continue;
		buf_adds(b, name);
		buf_adds(b, ": ");
		buf_adds(b, hs[i].value);
		buf_adds(b, "\r\n");
	}
}

/* ---- the answer's pieces, gathered during one upstream read into one writev ---- */

static void out_flush(struct preq *q)
{
	struct rthread *w = q->w;
	if (!w->out.n)
		return;
	uv_buf_t b[RT_OUT_MAX];
	for (unsigned i = 0; i < w->out.n; i++)
		b[i] = uv_buf_init(w->out.v[i].p ? (char *)w->out.v[i].p : w->out.own.p + w->out.v[i].off,
				   (unsigned)w->out.v[i].len);
	client_write(w->out.c, b, w->out.n);
	w->out.n = 0;
	buf_reset(&w->out.own);
	check_client_pause(q);
}

static void out_discard(struct rthread *w)
{
	w->out.n = 0;
	buf_reset(&w->out.own);
}

/* Room for one more piece (flushing the gathered ones if needed). */
static void out_room(struct preq *q)
{
	struct rthread *w = q->w;
	if (w->out.n == RT_OUT_MAX || (w->out.n && w->out.c != q->c))
		out_flush(q);
	w->out.c = q->c;
}

/* p: bytes valid until the read callback returns; NULL: w->out.own from off on. */
static void out_piece(struct preq *q, const char *p, size_t off, size_t len)
{
	struct rthread *w = q->w;
	out_room(q);
	if (!len)
		return;
	w->out.v[w->out.n].p = p;
	w->out.v[w->out.n].off = off;
	w->out.v[w->out.n].len = len;
	w->out.n++;
}

static void response_head(struct preq *q, const struct resp_head *h)
{
	struct http_reqx *rx = (struct http_reqx *)q->hr;
	out_room(q);
	struct buf *ob = &q->w->out.own;
	size_t off = ob->len;
	q->status = h->status;
	q->resp_started = 1;
	buf_free(&q->uphead);
	bool keep = q->keep_alive && (q->body_done || q->body == BODY_NONE) && !q->w->draining;
	q->resp_nobody = h->no_body;
	buf_adds(ob, "HTTP/1.1 ");
	rt_add_int(ob, h->status);
	buf_addc(ob, ' ');
	buf_adds(ob, *h->reason ? h->reason : http_status_text(h->status));
	buf_adds(ob, "\r\n");
	proxy_copy_headers(ob, h->headers, h->nheaders, false);
	if (!h->no_body && !h->has_length) {
		if (rx->http_minor == 1) {
			buf_adds(ob, "Transfer-Encoding: chunked\r\n");
			q->resp_chunked = 1;
		} else {
			q->resp_close = 1;     /* HTTP/1.0: the end of the connection ends the body */
			keep = false;
		}
	}
	if (!keep)
		buf_adds(ob, "Connection: close\r\n");
	else if (!rx->http_minor)
		buf_adds(ob, "Connection: keep-alive\r\n");
	buf_adds(ob, "\r\n");
	q->keep_alive = keep;
	out_piece(q, NULL, off, ob->len - off);
	q->bytes_out += ob->len - off;
}

static void response_body(struct preq *q, const char *d, size_t n)
{
	if (q->resp_chunked) {
		char hx[24];
		int hn = snprintf(hx, sizeof hx, "%zx\r\n", n);
		out_room(q);
		size_t off = q->w->out.own.len;
		buf_add(&q->w->out.own, hx, (size_t)hn);
		out_piece(q, NULL, off, (size_t)hn);
		out_piece(q, d, 0, n);
		out_piece(q, "\r\n", 0, 2);
		q->bytes_out += (size_t)hn + n + 2;
	} else {
		out_piece(q, d, 0, n);
		q->bytes_out += n;
	}
}

static void response_done(struct preq *q, bool leftover)
{
	if (q->resp_chunked) {
		out_piece(q, "0\r\n\r\n", 0, 5);
		q->bytes_out += 5;
	}
	out_flush(q);
	bool reusable = resp_parse_keep_alive(q->rp) && !leftover && q->body_done;
	release_ep(q);
	drop_up(q, reusable);
	finish(q);
}

static void upstream_failure(struct preq *q, enum router_uperr kind)
{
	out_discard(q->w);   /* pieces of an answer that is cut anyway */
	struct upconn *u = q->up;
	bool reused = u && u->reused, got = u && u->got_byte;
	stats_uperr(q->w, q, kind);
	q->uperr = kind;
	release_ep(q);
	drop_up(q, false);
	q->head_written = 0;
	q->up_paused = 0;
	if (q->resp_started) {
		q->upstream_failed = 1;
		client_close_now(q->c);      /* the client sees a cut answer, never a wrong one */
		return;
	}
	if (kind == ROUTER_UPERR_CONNECT || kind == ROUTER_UPERR_CONNECT_TIMEOUT) {
		attempt(q, false);           /* nothing was sent: another endpoint may take it */
		return;
	}
	if (reused && !got && (q->body == BODY_NONE || !q->body_sent) && !q->fresh_retry) {
		q->fresh_retry = 1;          /* a stale pooled connection: once more, fresh */
		attempt(q, true);
		return;
	}
	q->upstream_failed = 1;
	proxy_error(q, kind == ROUTER_UPERR_TIMEOUT ? 504 : 502);
}

void proxy_up_connected(struct preq *q, int status)
{
	if (status < 0) {
		upstream_failure(q, status == UV_ETIMEDOUT ? ROUTER_UPERR_CONNECT_TIMEOUT : ROUTER_UPERR_CONNECT);
		return;
	}
	send_request(q);
}

void proxy_up_data(struct preq *q, const char *d, size_t n)
{
	struct upconn *u = q->up;
	u->got_byte = 1;
	if (!q->client_paused)
		up_timer(u, UT_RESPONSE, cfg_of(q)->response_ms);
	size_t off = 0;
	for (;;) {
		enum resp_event ev;
		size_t used = resp_parse_feed(q->rp, d + off, n - off, &ev);
		off += used;
		switch (ev) {
		case RESP_EV_NONE:
			out_flush(q);
			return;
		case RESP_EV_HEAD: {
			const struct resp_head *h = resp_parse_head(q->rp);
			if (h->status == 101) {
				if (!q->ws) {
					upstream_failure(q, ROUTER_UPERR_BAD_RESPONSE);
					return;
				}
				out_flush(q);
				tunnel_start(q, h, d + off, n - off);
				return;
			}
			if (h->status / 100 == 1) {
				q->interim = 1;      /* 100/102/103: not passed on */
				break;
			}
			response_head(q, h);
			break;
		}
		case RESP_EV_BODY: {
			const char *bd;
			size_t bn;
			resp_parse_body(q->rp, &bd, &bn);
			if (!q->resp_nobody)
				response_body(q, bd, bn);
			break;
		}
		case RESP_EV_DONE:
			if (q->interim) {
				q->interim = 0;
				break;
			}
			response_done(q, off < n);
			return;
		case RESP_EV_ERROR:
			upstream_failure(q, ROUTER_UPERR_BAD_RESPONSE);
			return;
		}
	}
}

void proxy_up_eof(struct preq *q, int status)
{
	if (q->tunnel) {
		if (status == UV_EOF)
			tunnel_upstream_eof(q);
		else
			tunnel_end(q);
		return;
	}
	if (status == UV_EOF && q->rp && q->resp_started && resp_parse_eof(q->rp) == RESP_EV_DONE) {
		response_done(q, false);
		return;
	}
	upstream_failure(q, ROUTER_UPERR_RESET);
}

void proxy_up_timeout(struct preq *q)
{
	if (q->tunnel) {
		tunnel_end(q);
		return;
	}
	upstream_failure(q, ROUTER_UPERR_TIMEOUT);
}

void proxy_up_drained(struct preq *q)
{
	if (!q->up_paused)
		return;
	q->up_paused = 0;
	if (q->tunnel) {
		client_update(q->c);
		return;
	}
	if (!q->body_done && !q->resp_started && q->up)
		up_timer(q->up, UT_NONE, 0);   /* back to waiting on the client's body */
	client_resume(q->c);
}
