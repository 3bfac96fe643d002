/* router/stats: per-thread counters (requests by route and status class, upstream errors
 * by kind, retries, a latency histogram) and the access log. A finished request takes its
 * thread's mutex once: the counters are updated and its log line appended to the thread's
 * batch, which the main loop collects (router.c). The main loop aggregates the counters of
 * every thread for router_stats(). Nothing here writes a file. */
#include "router/internal.h"
#include "util/timeutil.h"
#include <stdlib.h>
#include <string.h>

const uint64_t router_latency_bounds_us[ROUTER_LAT_BUCKETS] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000,
};

const char *router_uperr_name(enum router_uperr k)
{
	switch (k) {
	case ROUTER_UPERR_CONNECT: return "connect";
	case ROUTER_UPERR_CONNECT_TIMEOUT: return "connect_timeout";
	case ROUTER_UPERR_RESET: return "reset";
	case ROUTER_UPERR_TIMEOUT: return "timeout";
	case ROUTER_UPERR_BAD_RESPONSE: return "bad_response";
	default: return "unknown";
	}
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct route_stat *route_slot(struct tstats *t, const char *key)
{
	if (2 * (t->nroutes + 1) > t->nroutes_cap) {
		size_t ncap = t->nroutes_cap ? 2 * t->nroutes_cap : 16;
		struct route_stat *n = xcalloc(ncap, sizeof *n);
		for (size_t i = 0; i < t->nroutes_cap; i++) {
			if (!t->routes[i].key)
				continue;
			size_t j = hash_str(t->routes[i].key) & (ncap - 1);
			while (n[j].key)
				j = (j + 1) & (ncap - 1);
			n[j] = t->routes[i];
		}
		free(t->routes);
		t->routes = n;
		t->nroutes_cap = ncap;
	}
	size_t j = hash_str(key) & (t->nroutes_cap - 1);
	while (t->routes[j].key && strcmp(t->routes[j].key, key))
		j = (j + 1) & (t->nroutes_cap - 1);
	if (!t->routes[j].key) {
		t->routes[j].key = xstrdup(key);
		t->nroutes++;
	}
	return &t->routes[j];
}

void tstats_free(struct tstats *t)
{
	for (size_t i = 0; i < t->nroutes_cap; i++)
		free(t->routes[i].key);
	free(t->routes);
	memset(t, 0, sizeof *t);
}

static bool plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* Append s escaped for a double-quoted logfmt value (without the quotes). Runs of plain
 * bytes (nearly every target and host) go in one copy. */
static void add_escaped(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	while (*s) {
		const char *run = s;
		while (*s && plain((unsigned char)*s))
			s++;
		if (s > run)
			buf_add(b, run, (size_t)(s - run));
		if (!*s)
			break;
		unsigned char c = (unsigned char)*s++;
		if (c == '"' || c == '\\') {
			char x[2] = {'\\', (char)c};
			buf_add(b, x, 2);
		} else {
			char x[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
			buf_add(b, x, 4);
		}
	}
}

/* Append s as a double-quoted logfmt value. */
static void add_quoted(struct buf *b, const char *s)
{
	buf_addc(b, '"');
	add_escaped(b, s);
	buf_addc(b, '"');
}

/* Append the RFC 3339 time of us (as time_format_rfc3339 writes it); the part down to the
 * second is formatted once a second. */
static void add_time(struct rthread *w, struct buf *b, int64_t us)
{
	if (us < 0) {
		char ts[40];
		buf_adds(b, time_format_rfc3339(us, ts, sizeof ts));
		return;
	}
	int64_t sec = us / 1000000;
	if (sec != w->ts_sec || !w->ts_prefix[0]) {
		char ts[40];
		time_format_rfc3339(sec * 1000000, ts, sizeof ts);
		size_t n = strcspn(ts, ".");
		if (ts[n] != '.' || n + 2 > sizeof w->ts_prefix) {
			buf_adds(b, time_format_rfc3339(us, ts, sizeof ts));
			return;
		}
		memcpy(w->ts_prefix, ts, n + 1);
		w->ts_prefix[n + 1] = 0;
		w->ts_sec = sec;
	}
	buf_adds(b, w->ts_prefix);
	char frac[8];
	int f = (int)(us % 1000000);
	for (int i = 5; i >= 0; i--, f /= 10)
		frac[i] = (char)('0' + f % 10);
	frac[6] = 'Z';
	buf_add(b, frac, 7);
}

static void format_line(struct rthread *w, const struct preq *q, int status, uint64_t us, struct buf *b)
{
	buf_reset(b);
	add_time(w, b, q->t0_us);
	buf_adds(b, " client=");
	buf_adds(b, client_peer_str(q->c));
	buf_adds(b, " method=");
	buf_adds(b, q->hr ? q->hr->method : "-");
	buf_adds(b, " target=");
	add_quoted(b, q->hr ? q->hr->target : "-");
	buf_adds(b, " host=");
	add_quoted(b, q->host);
	if (q->route) {
		buf_adds(b, " route=\"");
		add_escaped(b, q->route->host);
		add_escaped(b, q->route->path);
		buf_adds(b, "\" app=");
		buf_adds(b, q->route->env);
		buf_addc(b, '/');
		buf_adds(b, q->route->app);
	} else {
		buf_adds(b, " route=- app=-");
	}
	if (q->ep) {
		buf_adds(b, " upstream=");
		buf_adds(b, q->ep->instance);
		buf_adds(b, " addr=");
		buf_adds(b, q->ep->host);
		buf_addc(b, ':');
		rt_add_int(b, q->ep->port);
	} else {
		buf_adds(b, " upstream=- addr=-");
	}
	buf_adds(b, " status=");
	rt_add_int(b, status);
	buf_adds(b, " in=");
	rt_add_u64(b, q->bytes_in);
	buf_adds(b, " out=");
	rt_add_u64(b, q->bytes_out);
	buf_adds(b, " us=");
	rt_add_u64(b, us);
	buf_adds(b, " id=");
	buf_adds(b, q->id);
	if (q->upstream_failed) {
		buf_adds(b, " error=");
		buf_adds(b, router_uperr_name(q->uperr));
	}
	if (q->tunnel)
		buf_adds(b, " tunnel=1");
	if (q->maintenance)
		buf_adds(b, " maintenance=1");
	buf_addc(b, '\n');
}

static void route_key(const struct preq *q, char *key, size_t n)
{
	/* what snprintf(key, n, "%s%s", host, path) gives, without its cost */
	key[0] = 0;
	if (!q->route || !n)
		return;
	size_t hl = strnlen(q->route->host, n - 1);
	memcpy(key, q->route->host, hl);
	size_t pl = strnlen(q->route->path, n - 1 - hl);
	memcpy(key + hl, q->route->path, pl);
	key[hl + pl] = 0;
}

void stats_request(struct rthread *w, const struct preq *q)
{
	uint64_t us = (uv_hrtime() - q->t0_ns) / 1000;
	bool aborted = q->aborted && !q->resp_started;
	int status = aborted ? 499 : q->status;
	bool logging = router_cfg(w->r)->access_log != NULL;
	if (logging)
		format_line(w, q, status, us, &w->line);
	char key[600];
	route_key(q, key, sizeof key);
	int cls = status / 100 - 1;

	uv_mutex_lock(&w->mu);
	struct tstats *t = &w->st;
	struct route_stat *rs = route_slot(t, key);
	t->requests++;
	if (aborted) {
		t->aborted++;
		rs->aborted++;
	} else if (cls >= 0 && cls < 5) {
		t->status[cls]++;
		rs->status[cls]++;
	}
	size_t b = 0;
	while (b < ROUTER_LAT_BUCKETS && us > router_latency_bounds_us[b])
		b++;
	t->lat[b]++;
	t->lat_sum_us += us;
	rs->lat[b]++;
	rs->lat_sum_us += us;
	size_t batch = 0;
	if (!logging) {
		/* nobody reads the lines */
	} else if (w->log.len + w->line.len > RT_LOG_MAX) {
		w->log_dropped++;
	} else {
		buf_add(&w->log, w->line.p, w->line.len);
		batch = w->log.len;
	}
	uv_mutex_unlock(&w->mu);
	if (batch)
		rthread_log_added(w, batch);
}

void stats_uperr(struct rthread *w, const struct preq *q, enum router_uperr k)
{
	char key[600];
	route_key(q, key, sizeof key);
	uv_mutex_lock(&w->mu);
	w->st.uperr[k]++;
	route_slot(&w->st, key)->uperr[k]++;
	uv_mutex_unlock(&w->mu);
}

void stats_retry(struct rthread *w)
{
	uv_mutex_lock(&w->mu);
	w->st.retries++;
	uv_mutex_unlock(&w->mu);
}

static int rs_cmp(const void *a, const void *b)
{
	return strcmp(((const struct router_route_stats *)a)->route, ((const struct router_route_stats *)b)->route);
}

/* Add one thread's counters into st (routes merged by name). */
static void merge(struct router_stats *st, const struct tstats *t, size_t *cap)
{
	st->requests += t->requests;
	st->aborted += t->aborted;
	st->retries += t->retries;
	for (int i = 0; i < 5; i++)
		st->status[i] += t->status[i];
	for (int i = 0; i < ROUTER_UPERR__N; i++)
		st->upstream_errors[i] += t->uperr[i];
	for (int i = 0; i <= ROUTER_LAT_BUCKETS; i++)
		st->latency[i] += t->lat[i];
	st->latency_sum_us += t->lat_sum_us;
	for (size_t i = 0; i < t->nroutes_cap; i++) {
		const struct route_stat *rs = &t->routes[i];
		if (!rs->key)
			continue;
		struct router_route_stats *o = NULL;
		for (size_t k = 0; k < st->nroutes; k++)
			if (!strcmp(st->routes[k].route, rs->key)) {
				o = &st->routes[k];
				break;
			}
		if (!o) {
			if (st->nroutes == *cap) {
				*cap = *cap ? 2 * *cap : 16;
				st->routes = xrealloc(st->routes, *cap * sizeof *st->routes);
			}
			o = &st->routes[st->nroutes++];
			memset(o, 0, sizeof *o);
			o->route = xstrdup(rs->key);
		}
		for (int c = 0; c < 5; c++)
			o->status[c] += rs->status[c];
		o->aborted += rs->aborted;
		for (int k = 0; k < ROUTER_UPERR__N; k++)
			o->upstream_errors[k] += rs->uperr[k];
		for (int b = 0; b <= ROUTER_LAT_BUCKETS; b++)
			o->latency[b] += rs->lat[b];
		o->latency_sum_us += rs->lat_sum_us;
	}
}

void stats_aggregate(struct router *r, struct router_stats *st)
{
	size_t cap = 0;
	memset(st, 0, sizeof *st);
	for (int i = 0; i < router_nthreads(r); i++) {
		struct rthread *w = router_thread(r, i);
		uv_mutex_lock(&w->mu);
		merge(st, &w->st, &cap);
		st->log_dropped += w->log_dropped;
		uv_mutex_unlock(&w->mu);
		st->client_conns += atomic_load_explicit(&w->g_clients, memory_order_relaxed);
		st->upstream_conns += atomic_load_explicit(&w->g_upconns, memory_order_relaxed);
		st->upstream_idle += atomic_load_explicit(&w->g_idle, memory_order_relaxed);
		st->tunnels += atomic_load_explicit(&w->g_tunnels, memory_order_relaxed);
	}
	if (st->nroutes)
		qsort(st->routes, st->nroutes, sizeof *st->routes, rs_cmp);
}

void router_stats_release(struct router_stats *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nroutes; i++)
		free(st->routes[i].route);
	free(st->routes);
	memset(st, 0, sizeof *st);
}
