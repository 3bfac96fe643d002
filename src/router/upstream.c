/* router/upstream: connections from a router thread to the instances it proxies to, and
 * the thread's pools of idle ones (one pool per endpoint, keyed by the endpoint pointer,
 * rebuilt from each new snapshot so an endpoint that left the table loses its idle
 * connections at once).
 *
 * An idle connection keeps reading (into the shared buffer): EOF or any byte closes it,
 * so a pooled connection the instance closed is noticed without a request. A connection
 * is pooled again only when its answer ended cleanly (proxy.c decides); after any error
 * it is closed. Idle ones close after upstream_idle_ms, and the most recently used one is
 * taken first (the others age out).
 *
 * Each connection has one timer: connect (connect_ms), response (response_ms of upstream
 * silence while a request is on it), idle, or a zero-delay "deferred" failure used when a
 * write fails inside a call chain (the failure is handled from the loop, not from under
 * the caller). Owns the sockets and the endpoint references they hold. */
#include "router/internal.h"
#include <stdlib.h>
#include <string.h>

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

size_t up_wq(const struct upconn *u)
{
	return u->tcp.write_queue_size;
}

/* ---- pools ---- */

static size_t ep_hash(const struct endpoint *ep, size_t cap)
{
	uint64_t x = (uint64_t)(uintptr_t)ep;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x & (cap - 1);
}

static struct pool *pool_find(struct rthread *w, const struct endpoint *ep)
{
	if (!w->npools_cap)
		return NULL;
	size_t j = ep_hash(ep, w->npools_cap);
	while (w->pools[j].ep) {
		if (w->pools[j].ep == ep)
			return &w->pools[j];
		j = (j + 1) & (w->npools_cap - 1);
	}
	return NULL;
}

static void pool_unlink(struct rthread *w, struct upconn *u)
{
	struct pool *p = pool_find(w, u->ep);
	if (!p)
		return;
	for (struct upconn **pp = &p->idle; *pp; pp = &(*pp)->inext)
		if (*pp == u) {
			*pp = u->inext;
			p->nidle--;
			atomic_fetch_sub_explicit(&w->g_idle, 1, memory_order_relaxed);
			break;
		}
	u->inext = NULL;
}

void pools_rebuild(struct rthread *w, const struct ep_snapshot *s)
{
	size_t n = 0;
	for (size_t g = 0; g < s->ngroups; g++)
		n += s->groups[g].n;
	size_t cap = 16;
	while (cap < 2 * n + 2)
		cap <<= 1;
	struct pool *np = xcalloc(cap, sizeof *np);
	for (size_t g = 0; g < s->ngroups; g++)
		for (size_t k = 0; k < s->groups[g].n; k++) {
			struct endpoint *ep = s->groups[g].eps[k];
			size_t j = ep_hash(ep, cap);
			while (np[j].ep && np[j].ep != ep)
				j = (j + 1) & (cap - 1);
			if (np[j].ep)
				continue;
			np[j].ep = ep;
			struct pool *old = pool_find(w, ep);
			if (old) {
				np[j].idle = old->idle;
				np[j].nidle = old->nidle;
				old->idle = NULL;
				old->nidle = 0;
			}
		}
	/* what is left in the old table belongs to endpoints that left: close it */
	struct pool *op = w->pools;
	size_t ocap = w->npools_cap;
	w->pools = np;
	w->npools_cap = cap;
	for (size_t j = 0; j < ocap; j++) {
		struct upconn *u = op[j].idle;
		while (u) {
			struct upconn *next = u->inext;
			u->inext = NULL;
			u->st = US_ACTIVE;      /* detached from any pool */
			atomic_fetch_sub_explicit(&w->g_idle, 1, memory_order_relaxed);
			up_close(u);
			u = next;
		}
	}
	free(op);
}

void pools_free(struct rthread *w)
{
	free(w->pools);
	w->pools = NULL;
	w->npools_cap = 0;
}

/* ---- closing ---- */

static void on_closed(uv_handle_t *h)
{
	struct upconn *u = h->data;
	if (++u->nclosed < 2)
		return;
	struct rthread *w = u->w;
	if (u->prev)
		u->prev->next = u->next;
	else
		w->upconns = u->next;
	if (u->next)
		u->next->prev = u->prev;
	atomic_fetch_sub_explicit(&w->g_upconns, 1, memory_order_relaxed);
	endpoint_unref(u->ep);
	free(u);
}

void up_close(struct upconn *u)
{
	if (u->st == US_DEAD)
		return;
	if (u->st == US_IDLE)
		pool_unlink(u->w, u);
	u->st = US_DEAD;
	u->req = NULL;
	uv_close((uv_handle_t *)&u->tcp, on_closed);
	uv_close((uv_handle_t *)&u->timer, on_closed);
}

void up_close_all(struct rthread *w)
{
	for (struct upconn *u = w->upconns; u; u = u->next)
		up_close(u);
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
	struct upconn *u = t->data;
	enum utimer mode = u->tmode;
	u->tmode = UT_NONE;
	if (u->st == US_DEAD)
		return;
	struct preq *q = u->req;
	switch (mode) {
	case UT_NONE:
		return;
	case UT_CONNECT:
		if (q)
			proxy_up_connected(q, UV_ETIMEDOUT);
		else
			up_close(u);
		return;
	case UT_RESPONSE:
		if (q)
			proxy_up_timeout(q);
		else
			up_close(u);
		return;
	case UT_IDLE:
		up_close(u);
		return;
	case UT_DEFER:
		if (!q)
			up_close(u);
		else if (u->st == US_CONNECTING)
			proxy_up_connected(q, UV_ECONNREFUSED);
		else
			proxy_up_eof(q, UV_ECONNRESET);
		return;
	}
}

void up_timer(struct upconn *u, enum utimer mode, uint64_t ms)
{
	if (u->st == US_DEAD || u->tmode == UT_DEFER)
		return;
	u->tmode = mode;
	if (mode == UT_NONE)
		uv_timer_stop(&u->timer);
	else
		uv_timer_start(&u->timer, on_timer, ms, 0);
}

static void defer_failure(struct upconn *u)
{
	u->broken = 1;
	up_timer(u, UT_DEFER, 0);
}

/* ---- I/O ---- */

void up_read(struct upconn *u, bool on)
{
	if (u->st == US_DEAD || u->st == US_CONNECTING || on == (bool)u->reading)
		return;
	if (on)
		uv_read_start((uv_stream_t *)&u->tcp, rt_alloc, on_read);
	else
		uv_read_stop((uv_stream_t *)&u->tcp);
	u->reading = on;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct upconn *u = s->data;
	if (nread == 0 || u->st == US_DEAD)
		return;
	struct preq *q = u->req;
	if (u->st == US_IDLE || !q) {
		up_close(u);   /* the instance closed an idle connection, or sent bytes nobody asked */
		return;
	}
	if (nread < 0) {
		u->reading = 0;
		uv_read_stop(s);
		proxy_up_eof(q, (int)nread);
		return;
	}
	if (q->tunnel)
		tunnel_from_upstream(q, b->base, (size_t)nread);
	else
		proxy_up_data(q, b->base, (size_t)nread);
}

static void on_written(uv_stream_t *s, int status)
{
	struct upconn *u = s->data;
	if (u->st == US_DEAD)
		return;
	if (status < 0) {
		defer_failure(u);
		return;
	}
	struct preq *q = u->req;
	if (!q)
		return;
	if (u->tmode == UT_RESPONSE)
		up_timer(u, UT_RESPONSE, router_cfg(u->w->r)->response_ms);   /* progress */
	if (up_wq(u) <= RT_WQ_LOW)
		proxy_up_drained(q);
}

int up_write(struct upconn *u, const uv_buf_t *bufs, unsigned n)
{
	if (u->st == US_DEAD || u->broken)
		return -1;
	if (wire_send((uv_stream_t *)&u->tcp, bufs, n, on_written)) {
		defer_failure(u);
		return -1;
	}
	return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	free(req);
}

void up_shutdown(struct upconn *u)
{
	if (u->st == US_DEAD || u->shut || u->broken)
		return;
	uv_shutdown_t *sr = xmalloc(sizeof *sr);
	if (uv_shutdown(sr, (uv_stream_t *)&u->tcp, on_shutdown)) {
		free(sr);
		return;
	}
	u->shut = 1;
}

/* ---- getting and giving back ---- */

static void on_connect(uv_connect_t *cr, int status)
{
	struct upconn *u = cr->handle->data;
	if (u->st == US_DEAD)
		return;
	struct preq *q = u->req;
	if (status < 0) {
		if (q)
			proxy_up_connected(q, status);
		else
			up_close(u);
		return;
	}
	u->st = US_ACTIVE;
	uv_tcp_nodelay(&u->tcp, 1);
	up_timer(u, UT_NONE, 0);
	up_read(u, true);
	if (q)
		proxy_up_connected(q, 0);
	else
		up_release(u, true);
}

struct upconn *up_get(struct rthread *w, struct endpoint *ep, struct preq *q, bool fresh, bool *reused)
{
	*reused = false;
	if (!fresh) {
		struct pool *p = pool_find(w, ep);
		if (p && p->idle) {
			struct upconn *u = p->idle;
			p->idle = u->inext;
			u->inext = NULL;
			p->nidle--;
			atomic_fetch_sub_explicit(&w->g_idle, 1, memory_order_relaxed);
			u->st = US_ACTIVE;
			u->reused = 1;
			u->req = q;
			up_timer(u, UT_NONE, 0);
			*reused = true;
			return u;
		}
	}
	struct upconn *u = xcalloc(1, sizeof *u);
	u->w = w;
	u->ep = ep;
	endpoint_ref(ep);
	uv_tcp_init(&w->loop, &u->tcp);
	uv_timer_init(&w->loop, &u->timer);
	u->tcp.data = u;
	u->timer.data = u;
	u->next = w->upconns;
	if (w->upconns)
		w->upconns->prev = u;
	w->upconns = u;
	atomic_fetch_add_explicit(&w->g_upconns, 1, memory_order_relaxed);
	u->st = US_CONNECTING;
	u->req = q;
	struct sockaddr_storage ss;
	int rc = strchr(ep->host, ':') ? uv_ip6_addr(ep->host, ep->port, (struct sockaddr_in6 *)&ss)
				       : uv_ip4_addr(ep->host, ep->port, (struct sockaddr_in *)&ss);
	if (!rc)
		rc = uv_tcp_connect(&u->creq, &u->tcp, (const struct sockaddr *)&ss, on_connect);
	if (rc)
		defer_failure(u);    /* reported from the loop as a connect failure */
	else
		up_timer(u, UT_CONNECT, router_cfg(w->r)->connect_ms);
	return u;
}

void up_release(struct upconn *u, bool reusable)
{
	struct rthread *w = u->w;
	u->req = NULL;
	if (u->st == US_DEAD)
		return;
	struct pool *p = reusable && !w->stopping && !u->broken && u->st == US_ACTIVE && !up_wq(u)
				 ? pool_find(w, u->ep) : NULL;
	if (!p || p->nidle >= router_cfg(w->r)->pool_max_idle) {
		up_close(u);
		return;
	}
	u->st = US_IDLE;
	u->inext = p->idle;
	p->idle = u;
	p->nidle++;
	atomic_fetch_add_explicit(&w->g_idle, 1, memory_order_relaxed);
	up_read(u, true);
	up_timer(u, UT_IDLE, router_cfg(w->r)->upstream_idle_ms);
}
