/* router/router: the router's life on the main loop and the frame of each router thread.
 *
 * router_new binds one listening socket per thread itself (socket, SO_REUSEADDR +
 * SO_REUSEPORT, bind: errors are reported before any thread starts), starts the threads
 * (each initialises its own loop, takes its socket with uv_tcp_open and listens) and
 * registers one endpoints reader per thread. A reader callback (main loop) references the
 * new snapshot, parks it in the thread's mailbox and wakes the thread; the thread swaps it
 * in, drops the old one once no request uses it, and reports the version it adopted.
 * Access-log lines come back the other way: threads batch them under their mutex and wake
 * the main loop (at 32 KiB, or 100 ms after a batch's first line), which hands them to
 * config->access_log.
 * An in-place upgrade (router_drain) has each thread stop accepting on a duplicate of its
 * socket, which the server hands to its successor (router_config.listen_fds: one thread per
 * inherited socket), and end its connections softly (client_drain).
 *
 * Owns the threads, their loops and sockets, the config copy and the error-page cache. */
#include "router/internal.h"
#include "util/log.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One per (router, thread): the endpoints reader's argument. The endpoints table cannot
 * forget a reader, so reader slots outlive their router, parked in a list the main loop owns. */
struct reader_slot {
	struct reader_slot *next;
	struct rthread *w;       /* NULL once the router is gone */
	int id;
};
static struct reader_slot *parked_slots;

struct router {
	uv_loop_t *main;
	struct endpoints *eps;
	struct router_cfgx cfg;
	struct errpages *errpages;
	int nthreads;
	struct rthread **threads;
	struct reader_slot **slots;
	uv_async_t *log_async;
	struct buf logtmp;
	int port;
};

const struct router_cfgx *router_cfg(const struct router *r) { return &r->cfg; }
struct endpoints *router_eps(const struct router *r) { return r->eps; }
struct errpages *router_errpages(struct router *r) { return r->errpages; }
int router_nthreads(const struct router *r) { return r->nthreads; }
struct rthread *router_thread(struct router *r, int i) { return r->threads[i]; }
int router_port(const struct router *r) { return r ? r->port : -1; }

uint64_t router_adopted_version(const struct router *r)
{
	uint64_t v = UINT64_MAX;
	for (int i = 0; i < r->nthreads; i++) {
		uint64_t a = atomic_load(&r->threads[i]->adopted);
		if (a < v)
			v = a;
	}
	return r->nthreads ? v : 0;
}

void router_stats(struct router *r, struct router_stats *st)
{
	stats_aggregate(r, st);
}

/* ---- per-thread helpers ---- */

void rthread_reqid(struct rthread *w, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	if (w->rndpos + 16 > sizeof w->rnd) {
		size_t got = 0;
		while (got < sizeof w->rnd) {
			ssize_t n = getrandom(w->rnd + got, sizeof w->rnd - got, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* never seen on Linux >= 3.17; stay unique rather than fail */
				uint64_t t = uv_hrtime() ^ ((uint64_t)(uintptr_t)w << 17);
				for (; got < sizeof w->rnd; got++, t = t * 6364136223846793005ull + 1442695040888963407ull)
					w->rnd[got] = (unsigned char)(t >> 56);
				break;
			}
			got += (size_t)n;
		}
		w->rndpos = 0;
	}
	for (int i = 0; i < 16; i++) {
		unsigned char b = w->rnd[w->rndpos + (size_t)i];
		out[2 * i] = hex[b >> 4];
		out[2 * i + 1] = hex[b & 15];
	}
	memset(w->rnd + w->rndpos, 0, 16);
	w->rndpos += 16;
	out[32] = 0;
}

const char *rthread_date(struct rthread *w)
{
	time_t now = time(NULL);
	if (now != w->date_sec) {
		static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
		static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
						     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
		struct tm tm;
		gmtime_r(&now, &tm);
		snprintf(w->date, sizeof w->date, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
			 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
		w->date_sec = now;
	}
	return w->date;
}

struct snaphold *rthread_hold(struct rthread *w)
{
	w->hold->users++;
	return w->hold;
}

void rthread_release(struct rthread *w, struct snaphold *h)
{
	if (!h)
		return;
	h->users--;
	if (h != w->hold && h->users == 0) {
		ep_snapshot_unref(h->snap);
		free(h);
	}
}

void rt_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct rthread *w = h->loop->data;
	*b = uv_buf_init(w->rbuf, sizeof w->rbuf);
}

/* ---- the thread ---- */

static void adopt(struct rthread *w, struct ep_snapshot *snap)
{
	struct snaphold *old = w->hold;
	struct snaphold *h = xcalloc(1, sizeof *h);
	h->snap = snap;
	w->hold = h;
	pools_rebuild(w, snap);
	if (old && old->users == 0) {
		ep_snapshot_unref(old->snap);
		free(old);
	}
	atomic_store(&w->adopted, snap->version);
	int id = atomic_load(&w->reader_id);
	if (id >= 0)
		endpoints_adopted(w->r->eps, id, snap->version);
}

static void on_handle_closed(uv_handle_t *h)
{
}

static void thread_stop(struct rthread *w)
{
	w->stopping = 1;
	if (!uv_is_closing((uv_handle_t *)&w->listener))
		uv_close((uv_handle_t *)&w->listener, on_handle_closed);
	client_close_all(w);
	up_close_all(w);
	uv_close((uv_handle_t *)&w->wake, on_handle_closed);
	uv_close((uv_handle_t *)&w->log_timer, on_handle_closed);   /* router_free flushes */
	uv_close((uv_handle_t *)&w->drain_timer, on_handle_closed);
}

/* ---- draining for an in-place upgrade (router_drain) ---- */

static void on_drain_tick(uv_timer_t *t)
{
	struct rthread *w = t->data;
	uint64_t el = uv_now(&w->loop) - w->drain_t0;
	if (client_drain(w, el >= w->drain_idle_ms, el >= w->drain_deadline_ms)) {
		uv_timer_stop(t);
		atomic_store(&w->drained, 1);
	}
}

/* Stop accepting without closing the socket: a duplicate keeps it (and the connections the
 * kernel queues on it) for the successor; then end the connections softly. */
static void drain_begin(struct rthread *w)
{
	w->draining = 1;
	w->drain_t0 = uv_now(&w->loop);
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)&w->listener, &fd) == 0) {
		w->handover_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (w->handover_fd < 0)
			log_warn("router: thread %d: cannot keep its listening socket: %s", w->idx, strerror(errno));
	}
	if (!uv_is_closing((uv_handle_t *)&w->listener))
		uv_close((uv_handle_t *)&w->listener, on_handle_closed);
	uv_timer_start(&w->drain_timer, on_drain_tick, 0, 10);
}

static void on_wake(uv_async_t *a)
{
	struct rthread *w = a->data;
	uv_mutex_lock(&w->mu);
	struct ep_snapshot *snap = w->pending;
	w->pending = NULL;
	int stop = w->stop, drain = w->drain;
	uv_mutex_unlock(&w->mu);
	if (snap && !w->stopping)
		adopt(w, snap);
	else if (snap)
		ep_snapshot_unref(snap);
	if (drain && !w->draining && !w->stopping)
		drain_begin(w);
	if (stop && !w->stopping)
		thread_stop(w);
}

static void thread_main(void *arg)
{
	struct rthread *w = arg;
	/* a write to a peer that left must fail with EPIPE here, not kill the daemon: SIGPIPE
	 * raised by a write goes to the writing thread, where it stays blocked */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	int rc = uv_loop_init(&w->loop);
	if (rc) {
		w->start_rc = rc;
		uv_sem_post(&w->ready);
		return;
	}
	w->loop.data = w;
	uv_async_init(&w->loop, &w->wake, on_wake);
	w->wake.data = w;
	uv_timer_init(&w->loop, &w->log_timer);
	w->log_timer.data = w;
	uv_timer_init(&w->loop, &w->drain_timer);
	w->drain_timer.data = w;
	uv_tcp_init(&w->loop, &w->listener);
	w->listener.data = w;
	rc = uv_tcp_open(&w->listener, w->lfd);
	if (!rc) {
		w->lfd = -1;
		rc = uv_listen((uv_stream_t *)&w->listener, 1024, client_on_connection);
	}
	w->start_rc = rc;
	if (!rc) {
		/* route with the table's current snapshot from the first connection on */
		struct ep_snapshot *snap = w->pending;
		w->pending = NULL;
		adopt(w, snap);
	}
	if (rc) {
		uv_close((uv_handle_t *)&w->listener, on_handle_closed);
		uv_close((uv_handle_t *)&w->wake, on_handle_closed);
		uv_close((uv_handle_t *)&w->log_timer, on_handle_closed);
		uv_close((uv_handle_t *)&w->drain_timer, on_handle_closed);
		uv_run(&w->loop, UV_RUN_DEFAULT);
		uv_loop_close(&w->loop);
		uv_sem_post(&w->ready);
		return;
	}
	uv_sem_post(&w->ready);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	/* every connection is closed: requests are gone, so are their snapshot holds */
	pools_free(w);
	if (w->hold) {
		ep_snapshot_unref(w->hold->snap);
		free(w->hold);
		w->hold = NULL;
	}
	if (uv_loop_close(&w->loop))
		log_warn("router: thread %d: loop closed with handles open", w->idx);
}

/* ---- main loop side ---- */

static void on_snapshot(void *arg, struct ep_snapshot *snap)
{
	struct reader_slot *st = arg;
	struct rthread *w = st->w;
	if (!w)
		return;
	ep_snapshot_ref(snap);
	uv_mutex_lock(&w->mu);
	struct ep_snapshot *old = w->pending;
	w->pending = snap;
	uv_mutex_unlock(&w->mu);
	ep_snapshot_unref(old);
	uv_async_send(&w->wake);
}

static void flush_logs(struct router *r)
{
	for (int i = 0; i < r->nthreads; i++) {
		struct rthread *w = r->threads[i];
		uv_mutex_lock(&w->mu);
		struct buf t = w->log;
		w->log = r->logtmp;
		r->logtmp = t;
		uv_mutex_unlock(&w->mu);
		if (r->logtmp.len && r->cfg.access_log)
			r->cfg.access_log(r->cfg.access_log_arg, r->logtmp.p, r->logtmp.len);
		buf_reset(&r->logtmp);
	}
}

static void on_log_async(uv_async_t *a)
{
	struct router *r = a->data;
	if (r)
		flush_logs(r);
}

void router_log_ready(struct router *r)
{
	uv_async_send(r->log_async);
}

/* Waking the main loop for every line would cost a context switch per request: a batch
 * goes over when it is RT_LOG_BATCH big, or RT_LOG_DELAY_MS after its first line. */
static void on_log_timer(uv_timer_t *t)
{
	struct rthread *w = t->data;
	w->log_pending = 0;
	router_log_ready(w->r);
}

void rthread_log_added(struct rthread *w, size_t batch)
{
	if (batch >= RT_LOG_BATCH) {
		if (w->log_pending) {
			uv_timer_stop(&w->log_timer);
			w->log_pending = 0;
		}
		router_log_ready(w->r);
	} else if (!w->log_pending && !w->stopping) {
		w->log_pending = 1;
		uv_timer_start(&w->log_timer, on_log_timer, RT_LOG_DELAY_MS, 0);
	}
}

static int make_listener(const char *host, int *port, bool first, int *fdout, struct err *e)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	int fam;
	socklen_t slen;
	if (strchr(host, ':')) {
		if (uv_ip6_addr(host, *port, (struct sockaddr_in6 *)&ss))
			return err_set(e, ERR_INVALID, "router: listen on [%s]:%d: not an IP address", host, *port);
		fam = AF_INET6;
		slen = sizeof(struct sockaddr_in6);
	} else {
		if (uv_ip4_addr(host, *port, (struct sockaddr_in *)&ss))
			return err_set(e, ERR_INVALID, "router: listen on %s:%d: not an IP address", host, *port);
		fam = AF_INET;
		slen = sizeof(struct sockaddr_in);
	}
	int one = 1;
	if (*port != 0 && first) {
		/* SO_REUSEPORT would let this bind share the port with another process of this user
		 * (a second berth server): a plain bind first tells "in use" apart. */
		int probe = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return err_errno(e, errno, "router: socket");
		int r = setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (r == 0)
			r = bind(probe, (struct sockaddr *)&ss, slen);
		int er = errno;
		close(probe);
		if (r)
			return err_errno(e, er, "router: listen on %s:%d", host, *port);
	}
	int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_errno(e, errno, "router: socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) {
		int er = errno;
		close(fd);
		return err_errno(e, er, "router: SO_REUSEPORT");
	}
	if (bind(fd, (struct sockaddr *)&ss, slen)) {
		int er = errno;
		close(fd);
		return err_errno(e, er, "router: listen on %s:%d", host, *port);
	}
	if (*port == 0) {
		struct sockaddr_storage b;
		socklen_t bl = sizeof b;
		if (getsockname(fd, (struct sockaddr *)&b, &bl) == 0)
			*port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
							       : ((struct sockaddr_in *)&b)->sin_port);
	}
	*fdout = fd;
	return 0;
}

static void cfg_fill(struct router_cfgx *x, const struct router_config *c)
{
	x->host = xstrdup(c->host && *c->host ? c->host : "127.0.0.1");
	x->port = c->port;
	x->threads = c->threads > 0 ? c->threads : (int)uv_available_parallelism();
	if (c->nlisten_fds > 0)
		x->threads = c->nlisten_fds;    /* one thread per inherited socket */
	if (x->threads < 1)
		x->threads = 1;
	if (x->threads > 64)
		x->threads = 64;
	x->connect_ms = c->connect_ms ? c->connect_ms : ROUTER_CONNECT_MS;
	x->header_ms = c->header_ms ? c->header_ms : ROUTER_HEADER_MS;
	x->idle_ms = c->idle_ms ? c->idle_ms : ROUTER_IDLE_MS;
	x->response_ms = c->response_ms ? c->response_ms : ROUTER_RESPONSE_MS;
	x->body_ms = c->body_ms ? c->body_ms : ROUTER_BODY_MS;
	x->upstream_idle_ms = c->upstream_idle_ms ? c->upstream_idle_ms : ROUTER_UPSTREAM_IDLE_MS;
	x->tunnel_idle_ms = c->tunnel_idle_ms ? c->tunnel_idle_ms : ROUTER_TUNNEL_IDLE_MS;
	x->pool_max_idle = c->pool_max_idle ? c->pool_max_idle : ROUTER_POOL_MAX_IDLE;
	x->max_conns = c->max_conns ? c->max_conns : ROUTER_MAX_CONNS;
	x->max_body = c->max_body;
	x->error_dir = c->error_dir && *c->error_dir ? xstrdup(c->error_dir) : NULL;
	x->proto = xstrdup(c->proto && *c->proto ? c->proto : "http");
	x->access_log = c->access_log;
	x->access_log_arg = c->access_log_arg;
}

static void stop_threads(struct router *r, int n)
{
	for (int i = 0; i < n; i++) {
		struct rthread *w = r->threads[i];
		uv_mutex_lock(&w->mu);
		w->stop = 1;
		uv_mutex_unlock(&w->mu);
		uv_async_send(&w->wake);
	}
	for (int i = 0; i < n; i++)
		uv_thread_join(&r->threads[i]->tid);
}

static void free_threads(struct router *r)
{
	for (int i = 0; i < r->nthreads; i++) {
		struct rthread *w = r->threads[i];
		if (!w)
			continue;
		if (w->lfd >= 0)
			close(w->lfd);
		if (w->handover_fd >= 0)
			close(w->handover_fd);
		ep_snapshot_unref(w->pending);
		buf_free(&w->log);
		buf_free(&w->line);
		buf_free(&w->out.own);
		free(w->spare_req);
		resp_parse_free(w->spare_rp);
		tstats_free(&w->st);
		uv_mutex_destroy(&w->mu);
		uv_sem_destroy(&w->ready);
		free(w);
	}
	free(r->threads);
}

static void on_async_closed(uv_handle_t *h)
{
	free(h);
}

static void router_release(struct router *r)
{
	free_threads(r);
	free(r->slots);
	errpages_free(r->errpages);
	buf_free(&r->logtmp);
	free(r->cfg.host);
	free(r->cfg.error_dir);
	free(r->cfg.proto);
	r->log_async->data = NULL;
	uv_close((uv_handle_t *)r->log_async, on_async_closed);
	free(r);
}

struct router *router_new(uv_loop_t *main, struct endpoints *eps, const struct router_config *cfg,
			  struct err *e)
{
	struct router_config none = {0};
	struct router *r = xcalloc(1, sizeof *r);
	r->main = main;
	r->eps = eps;
	cfg_fill(&r->cfg, cfg ? cfg : &none);
	r->errpages = errpages_new(r->cfg.error_dir);
	r->log_async = xcalloc(1, sizeof *r->log_async);
	uv_async_init(main, r->log_async, on_log_async);
	r->log_async->data = r;
	r->nthreads = r->cfg.threads;
	r->threads = xcalloc((size_t)r->nthreads, sizeof *r->threads);
	r->slots = xcalloc((size_t)r->nthreads, sizeof *r->slots);

	int port = r->cfg.port;
	int ninherit = cfg && cfg->nlisten_fds > 0 && cfg->nlisten_fds <= r->nthreads ? cfg->nlisten_fds : 0;
	for (int i = 0; i < r->nthreads; i++) {
		struct rthread *w = xcalloc(1, sizeof *w);
		r->threads[i] = w;
		w->r = r;
		w->idx = i;
		w->lfd = ninherit ? cfg->listen_fds[i] : -1;
		w->handover_fd = -1;
		atomic_init(&w->reader_id, -1);
		w->rndpos = sizeof w->rnd;
		uv_mutex_init(&w->mu);
		uv_sem_init(&w->ready, 0);
	}
	if (ninherit) {
		struct sockaddr_storage b;
		socklen_t bl = sizeof b;
		if (getsockname(r->threads[0]->lfd, (struct sockaddr *)&b, &bl) == 0)
			port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
							     : ((struct sockaddr_in *)&b)->sin_port);
	}
	for (int i = 0; i < r->nthreads && !ninherit; i++) {
		if (make_listener(r->cfg.host, &port, i == 0, &r->threads[i]->lfd, e)) {
			router_release(r);
			return NULL;
		}
	}
	r->port = port;

	int started = 0;
	for (; started < r->nthreads; started++) {
		struct rthread *w = r->threads[started];
		w->pending = endpoints_current(eps);
		ep_snapshot_ref(w->pending);
		int rc = uv_thread_create(&w->tid, thread_main, w);
		if (!rc) {
			uv_sem_wait(&w->ready);
			rc = w->start_rc;
			if (rc)
				uv_thread_join(&w->tid);
		}
		if (rc) {
			err_set(e, ERR_INTERNAL, "router: starting thread %d on %s:%d: %s", started, r->cfg.host,
				port, uv_strerror(rc));
			stop_threads(r, started);
			router_release(r);
			return NULL;
		}
	}
	for (int i = 0; i < r->nthreads; i++) {
		struct reader_slot *st = xcalloc(1, sizeof *st);
		st->w = r->threads[i];
		st->id = -1;
		r->slots[i] = st;
		int id = endpoints_add_reader(eps, on_snapshot, st);
		st->id = id;
		if (id < 0) {
			err_set(e, ERR_INTERNAL, "router: the endpoints table has no room for %d more readers",
				r->nthreads - i);
			for (int k = 0; k <= i; k++) {
				r->slots[k]->w = NULL;
				r->slots[k]->next = parked_slots;
				parked_slots = r->slots[k];
				if (r->slots[k]->id >= 0)
					endpoints_adopted(eps, r->slots[k]->id, UINT64_MAX);
			}
			stop_threads(r, r->nthreads);
			router_release(r);
			return NULL;
		}
		/* the thread may have adopted the first snapshot before it knew its id */
		atomic_store(&r->threads[i]->reader_id, id);
		uint64_t v = atomic_load(&r->threads[i]->adopted);
		if (v)
			endpoints_adopted(eps, id, v);
	}
	return r;
}

void router_free(struct router *r)
{
	if (!r)
		return;
	stop_threads(r, r->nthreads);
	flush_logs(r);
	for (int i = 0; i < r->nthreads; i++) {
		struct reader_slot *st = r->slots[i];
		if (!st)
			continue;
		st->w = NULL;
		if (st->id >= 0)
			endpoints_adopted(r->eps, st->id, UINT64_MAX);
		st->next = parked_slots;
		parked_slots = st;
	}
	router_release(r);
}

void router_drain(struct router *r, uint64_t idle_grace_ms, uint64_t deadline_ms)
{
	for (int i = 0; i < r->nthreads; i++) {
		struct rthread *w = r->threads[i];
		uv_mutex_lock(&w->mu);
		w->drain = 1;
		w->drain_idle_ms = idle_grace_ms;
		w->drain_deadline_ms = deadline_ms;
		uv_mutex_unlock(&w->mu);
		uv_async_send(&w->wake);
	}
}

bool router_drained(const struct router *r)
{
	for (int i = 0; i < r->nthreads; i++)
		if (!atomic_load(&r->threads[i]->drained))
			return false;
	return true;
}

int router_take_listeners(struct router *r, int *fds, int max)
{
	int n = 0;
	for (int i = 0; i < r->nthreads && n < max; i++) {
		struct rthread *w = r->threads[i];
		if (!atomic_load(&w->drained) || w->handover_fd < 0)
			continue;
		fds[n++] = w->handover_fd;
		w->handover_fd = -1;
	}
	return n;
}
