/* router/tunnel: a websocket connection after the upstream's 101. The 101 head is passed
 * on (hop-by-hop fields dropped, Connection/Upgrade set), then bytes flow both ways as
 * they come, each direction with back-pressure (a side's reads stop while the other
 * side's write queue is over RT_WQ_HIGH). A side that shuts its half gets the other
 * side's write half shut once its queued bytes are out; when both are shut, or on any
 * error, or after tunnel_idle_ms without traffic, both connections close. The endpoint's
 * inflight count covers the whole tunnel. */
#include "router/internal.h"
#include <string.h>
#include <strings.h>

void tunnel_start(struct preq *q, const struct resp_head *h, const char *rest, size_t n)
{
	struct client *c = q->c;
	struct upconn *u = q->up;
	q->tunnel = 1;
	q->status = 101;
	q->resp_started = 1;
	buf_free(&q->uphead);
	atomic_fetch_add_explicit(&q->w->g_tunnels, 1, memory_order_relaxed);

	const char *upg = "websocket";
	for (size_t i = 0; i < h->nheaders; i++)
		if (!strcasecmp(h->headers[i].name, "upgrade") && *h->headers[i].value)
			upg = h->headers[i].value;
	struct buf b = BUF_INIT;
	buf_addf(&b, "HTTP/1.1 101 %s\r\n", *h->reason ? h->reason : "Switching Protocols");
	/* hop-by-hop fields dropped (Upgrade too: written once below) */
	proxy_copy_headers(&b, h->headers, h->nheaders, false);
	buf_addf(&b, "Connection: Upgrade\r\nUpgrade: %s\r\n\r\n", upg);
	uv_buf_t ub = uv_buf_init(b.p, (unsigned)b.len);
	client_write(c, &ub, 1);
	q->bytes_out += b.len;
	buf_free(&b);

	up_timer(u, UT_NONE, 0);
	client_tunnel(c);
	if (n) {
		uv_buf_t r = uv_buf_init((char *)rest, (unsigned)n);
		client_write(c, &r, 1);
		q->bytes_out += n;
	}
	if (c->in.len > c->inpos) {
		/* what the client sent after its head, before the 101 */
		uv_buf_t r = uv_buf_init(c->in.p + c->inpos, (unsigned)(c->in.len - c->inpos));
		up_write(u, &r, 1);
		q->bytes_in += r.len;
	}
	buf_free(&c->in);
	c->inpos = 0;
	if (up_wq(u) >= RT_WQ_HIGH)
		q->up_paused = 1;
	if (client_wq(c) >= RT_WQ_HIGH) {
		q->client_paused = 1;
		up_read(u, false);
	}
	client_update(c);
}

void tunnel_from_client(struct preq *q, const char *d, size_t n)
{
	if (!q->up)
		return;
	uv_buf_t b = uv_buf_init((char *)d, (unsigned)n);
	up_write(q->up, &b, 1);
	q->bytes_in += n;
	if (up_wq(q->up) >= RT_WQ_HIGH)
		q->up_paused = 1;     /* client_update stops reading the client */
}

void tunnel_from_upstream(struct preq *q, const char *d, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)d, (unsigned)n);
	client_write(q->c, &b, 1);
	q->bytes_out += n;
	client_touch(q->c);
	if (client_wq(q->c) >= RT_WQ_HIGH && q->up) {
		q->client_paused = 1;
		up_read(q->up, false);
	}
}

void tunnel_client_eof(struct preq *q)
{
	if (q->up)
		up_shutdown(q->up);
	if (q->up_eof)
		tunnel_end(q);
}

void tunnel_upstream_eof(struct preq *q)
{
	q->up_eof = 1;
	if (q->up)
		up_read(q->up, false);
	client_shutdown(q->c);
	if (q->c->eof)
		tunnel_end(q);
}

void tunnel_end(struct preq *q)
{
	client_close_now(q->c);   /* ends q through proxy_client_gone, closing the upstream too */
}
