/* http/server: the listening socket, connections and the request cycle on libuv.
 * Reads go into a per-connection buffer that is freed whenever it is empty (an idle
 * keep-alive connection holds no buffer); the framing layer (parse.c) turns bytes into
 * events; one request per connection is in flight, later pipelined ones wait in the buffer.
 * Owns every socket, timer and spool file descriptor; handlers own only their answers.
 * Peer trouble (EOF, ECONNRESET, EPIPE) closes that connection and nothing else; libuv's
 * writes never raise SIGPIPE. A peer that sends EOF while its request is being answered
 * is taken as gone (the abort callback runs), as nginx does. Spooled bodies are written
 * with plain write(2) on the loop: page-cache writes, bounded by the handler's plan.max.
 * An upgraded connection (C_TUNNEL) keeps its socket and buffer here; tunnel.c has the
 * handler's side of it. For an in-place upgrade of the server the listening socket can come
 * from a predecessor (http_server_new_fd) and go to a successor (http_server_drain, then
 * http_server_take_listener). */
#include "http/conn.h"
#include "util/log.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_HEAD_MS 10000
#define DEFAULT_IDLE_MS 60000
#define DEFAULT_BODY_MS 60000

static void conn_process(struct conn *c);
static void on_timer(uv_timer_t *t);

/* An idle connection holds no parser: that is the phase between requests. */
static enum http_parse_phase conn_phase(const struct conn *c)
{
	return c->parse ? http_parse_phase(c->parse) : HTTP_PHASE_IDLE;
}

/* --- server ---------------------------------------------------------------------------- */

static void server_maybe_done(struct http_server *s)
{
	if (!s->closing || s->nhandles)
		return;
	void (*cb)(void *) = s->close_cb;
	void *arg = s->close_arg;
	if (cb)
		cb(arg);
	free(s);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct http_server *s = h->data;
	s->nhandles--;
	server_maybe_done(s);
}

static void on_refused_closed(uv_handle_t *h)
{
	struct http_server *s = h->data;
	free(h);
	s->nhandles--;
	server_maybe_done(s);
}

/* Over the connection limit: accept (so the peer is not left in the backlog) and close. */
static void refuse(struct http_server *s)
{
	uv_tcp_t *t = xmalloc(sizeof *t);
	uv_tcp_init(s->loop, t);
	t->data = s;
	s->nhandles++;
	(void)uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t);
	uv_close((uv_handle_t *)t, on_refused_closed);
}

static void peer_name(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "";
	snprintf(c->peer, sizeof c->peer, "unknown");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		uv_ip6_name(a, ip, sizeof ip);
		snprintf(c->peer, sizeof c->peer, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
	} else if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		uv_ip4_name(a, ip, sizeof ip);
		snprintf(c->peer, sizeof c->peer, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
	}
}

static void on_connection(uv_stream_t *l, int status)
{
	struct http_server *s = l->data;
	if (status < 0) {
		log_warn("http: accept on port %d: %s", s->port, uv_strerror(status));
		return;
	}
	if (s->closing)
		return;
	if (s->nconns >= s->max_conns) {
		refuse(s);
		return;
	}
	struct conn *c = xcalloc(1, sizeof *c);
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->srv = s;
	c->spool_fd = -1;
	c->state = C_READ;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	s->nhandles += 2;
	if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
		conn_close_now(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, 60);
	peer_name(c);
	conn_update(c);
}

static struct http_server *server_alloc(uv_loop_t *loop, const struct http_handlers *h)
{
	struct http_server *s = xcalloc(1, sizeof *s);
	s->loop = loop;
	if (h)
		s->h = *h;
	s->head_ms = DEFAULT_HEAD_MS;
	s->idle_ms = DEFAULT_IDLE_MS;
	s->body_ms = DEFAULT_BODY_MS;
	s->max_conns = HTTP_MAX_CONNS;
	s->handover_fd = -1;
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	s->nhandles = 1;
	return s;
}

/* Listen on the bound (or adopted) socket; on failure the server is freed from the loop. */
static struct http_server *server_listen(struct http_server *s, int rc, const char *what, char *errbuf,
					 size_t errlen)
{
	if (!rc)
		rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
	if (rc) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "listen on %s: %s", what, uv_strerror(rc));
		s->closing = 1;   /* freed by the close callback, no user callback */
		uv_close((uv_handle_t *)&s->listener, on_listener_closed);
		return NULL;
	}
	struct sockaddr_storage bound;
	int blen = sizeof bound;
	if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen) == 0)
		s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
							     : ((struct sockaddr_in *)&bound)->sin_port);
	return s;
}

struct http_server *http_server_new(uv_loop_t *loop, const char *host, int port,
				    const struct http_handlers *h, char *errbuf, size_t errlen)
{
	struct sockaddr_storage ss;
	int rc;
	if (errbuf && errlen)
		errbuf[0] = 0;
	if (!host || !*host)
		host = "127.0.0.1";
	if (strchr(host, ':'))
		rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
	else
		rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
	if (rc || port < 0 || port > 65535) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "listen on %s:%d: not an IP address and port", host, port);
		return NULL;
	}
	struct http_server *s = server_alloc(loop, h);
	s->port = port;
	char what[300];
	snprintf(what, sizeof what, "%s:%d", host, port);
	return server_listen(s, uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0), what, errbuf, errlen);
}

struct http_server *http_server_new_fd(uv_loop_t *loop, int fd, const struct http_handlers *h, char *errbuf,
				       size_t errlen)
{
	if (errbuf && errlen)
		errbuf[0] = 0;
	struct http_server *s = server_alloc(loop, h);
	int rc = uv_tcp_open(&s->listener, fd);
	if (rc)
		close(fd);
	char what[64];
	snprintf(what, sizeof what, "inherited socket %d", fd);
	return server_listen(s, rc, what, errbuf, errlen);
}

static void on_drain_timer_closed(uv_handle_t *h)
{
	struct http_server *s = h->data;
	free(h);
	s->nhandles--;
	server_maybe_done(s);
}

static void on_drain_deadline(uv_timer_t *t)
{
	struct http_server *s = t->data;
	for (struct conn *c = s->conns; c; c = c->next)
		conn_close_now(c);
}

void http_server_drain(struct http_server *s, uint64_t deadline_ms)
{
	if (!s || s->closing || s->draining)
		return;
	s->draining = 1;
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)&s->listener, &fd) == 0) {
		s->handover_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (s->handover_fd < 0)
			log_warn("http: cannot keep the listening socket of port %d: %s", s->port, strerror(errno));
	}
	uv_close((uv_handle_t *)&s->listener, on_listener_closed);
	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->state == C_DEAD || c->state == C_CLOSING)
			continue;
		if (c->state == C_TUNNEL || (c->state == C_ANSWER && c->answering))
			conn_close_now(c);          /* a session or a stream: it ends with the server */
		else if (c->state == C_READ && !c->req && conn_phase(c) == HTTP_PHASE_IDLE && c->rpos >= c->rbuf.len)
			conn_close_graceful(c);     /* idle keep-alive */
		/* else a request in flight: its answer says "Connection: close" (decide_close) */
	}
	s->drain_timer = xmalloc(sizeof *s->drain_timer);
	uv_timer_init(s->loop, s->drain_timer);
	s->drain_timer->data = s;
	s->nhandles++;
	uv_timer_start(s->drain_timer, on_drain_deadline, deadline_ms, 0);
}

bool http_server_drained(const struct http_server *s)
{
	for (const struct conn *c = s->conns; c; c = c->next)
		if (c->state != C_DEAD && !(c->state == C_CLOSING && c->flushed))
			return false;
	return true;
}

int http_server_take_listener(struct http_server *s)
{
	int fd = s->handover_fd;
	s->handover_fd = -1;
	return fd;
}

void http_server_close(struct http_server *s, void (*cb)(void *), void *arg)
{
	if (!s || s->closing)
		return;
	s->closing = 1;
	s->close_cb = cb;
	s->close_arg = arg;
	if (!uv_is_closing((uv_handle_t *)&s->listener))
		uv_close((uv_handle_t *)&s->listener, on_listener_closed);
	if (s->drain_timer) {
		uv_close((uv_handle_t *)s->drain_timer, on_drain_timer_closed);
		s->drain_timer = NULL;
	}
	if (s->handover_fd >= 0) {
		close(s->handover_fd);
		s->handover_fd = -1;
	}
	for (struct conn *c = s->conns; c; c = c->next)
		conn_close_now(c);
}

int http_server_port(const struct http_server *s)
{
	return s ? s->port : -1;
}

void http_server_set_timeouts(struct http_server *s, uint64_t head_ms, uint64_t idle_ms, uint64_t body_ms)
{
	if (head_ms)
		s->head_ms = head_ms;
	if (idle_ms)
		s->idle_ms = idle_ms;
	if (body_ms)
		s->body_ms = body_ms;
}

void http_server_set_max_conns(struct http_server *s, size_t n)
{
	s->max_conns = n;
}

/* --- request lifetime ------------------------------------------------------------------ */

/* Free a request: its spool descriptor, the end callback, its body file unless taken. */
static void req_release(struct conn *c, struct http_reqx *rx)
{
	if (c->req == rx)
		c->req = NULL;
	if (c->ended == rx)
		c->ended = NULL;
	if (c->spool_fd >= 0) {
		close(c->spool_fd);
		c->spool_fd = -1;
	}
	http_req_cb fn = c->end_fn;
	void *arg = c->end_arg;
	c->end_fn = NULL;
	c->abort_fn = NULL;
	if (fn) {
		c->in_abort = 1;    /* answers from here are ignored */
		fn(&rx->pub, arg);
		c->in_abort = 0;
	}
	if (rx->pub.body_file && unlink(rx->pub.body_file) < 0 && errno != ENOENT)
		log_warn("http: remove request body file %s: %s", rx->pub.body_file, strerror(errno));
	http_req_free(&rx->pub);
}

static void conn_maybe_free(struct conn *c)
{
	if (c->nclosed < 2 || c->req || c->ended)
		return;
	buf_free(&c->rbuf);
	http_parse_free(c->parse);
	free(c);
}

void conn_req_drop(struct conn *c)
{
	if (c->req && !c->handed)
		req_release(c, c->req);
}

void http_req_on_abort(struct http_req *r, void (*fn)(struct http_req *r, void *arg), void *arg)
{
	if (!r || !r->conn)
		return;
	struct conn *c = r->conn;
	if (c->req != (struct http_reqx *)r)
		return;     /* the answer already ended: nothing left to abort */
	c->abort_fn = fn;
	c->abort_arg = arg;
}

void http_req_on_end(struct http_req *r, void (*fn)(struct http_req *r, void *arg), void *arg)
{
	if (!r || !r->conn)
		return;
	struct conn *c = r->conn;
	if (c->req != (struct http_reqx *)r && c->ended != (struct http_reqx *)r)
		return;
	c->end_fn = fn;
	c->end_arg = arg;
}

int conn_body_unread_ok(const struct conn *c)
{
	const struct http_reqx *rx = c->req;
	if (c->complete || !rx)
		return 1;
	if (rx->chunked || rx->expect_continue)
		return 0;   /* unbounded, or the client waits for a 100 that will not come */
	if (!rx->has_length)
		return 1;
	uint64_t seen = http_parse_body_seen(c->parse);
	return rx->content_length - seen <= HTTP_DISCARD_MAX;
}

void conn_answer_end(struct conn *c)
{
	struct http_reqx *rx = c->req;
	if (!rx)
		return;
	c->answering = 0;
	c->mode = A_NONE;
	c->abort_fn = NULL;
	c->served = 1;
	if (c->in_cb) {
		c->ended = rx;      /* freed when the callback returns */
		c->req = NULL;
	} else {
		req_release(c, rx);
	}
	if (c->state == C_DEAD) {
		conn_maybe_free(c);   /* an orphan: its handles may be closed already */
		return;
	}
	if (c->close_after || c->srv->draining) {
		conn_close_graceful(c);
		return;
	}
	if (c->complete) {
		c->state = C_READ;
	} else {
		c->state = C_DISCARD;
		http_parse_set_body_max(c->parse, UINT64_MAX);
	}
	c->complete = 0;
	c->handed = 0;
	if (!c->in_process)
		conn_process(c);
}

void conn_tunnel_enter(struct conn *c)
{
	struct http_reqx *rx = c->req;
	c->state = C_TUNNEL;
	c->answering = 0;
	c->mode = A_NONE;
	c->abort_fn = NULL;
	c->served = 1;
	c->wblocked = 0;
	c->head_timer = 0;
	c->tpaused = 0;
	http_parse_free(c->parse);     /* what follows the request is not HTTP */
	c->parse = NULL;
	if (c->in_cb) {
		c->ended = rx;             /* freed when on_request returns */
		c->req = NULL;
	} else {
		req_release(c, rx);
	}
	if (c->state != C_TUNNEL)
		return;                    /* on_end closed the server */
	uv_timer_stop(&c->timer);
	if (!c->in_process)
		conn_update(c);            /* else conn_process's end does it */
}

/* --- closing --------------------------------------------------------------------------- */

static void on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (++c->nclosed < 2)
		return;
	struct http_server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	s->nhandles -= 2;
	c->srv = NULL;
	conn_tunnel_gone(c);          /* failed, reset, or the server closes: on_close */
	if (c->req) {
		struct http_reqx *rx = c->req;
		if (c->abort_fn) {
			http_req_cb fn = c->abort_fn;
			c->abort_fn = NULL;
			c->in_abort = 1;
			fn(&rx->pub, c->abort_arg);
			c->in_abort = 0;
			req_release(c, rx);
		} else if (!c->handed) {
			req_release(c, rx);
		}
		/* else: an orphan; the handler's answer will be dropped and free it */
	}
	conn_maybe_free(c);
	server_maybe_done(s);
}

void conn_close_now(struct conn *c)
{
	if (c->state == C_DEAD)
		return;
	c->state = C_DEAD;
	c->reading = 0;
	uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;
	free(req);
	if (c->state == C_DEAD)
		return;
	if (status < 0 || c->eof) {
		conn_close_now(c);
		return;
	}
	c->flushed = 1;
	/* Linger: read and drop what the peer still sends, until its EOF or the deadline. */
	uv_timer_start(&c->timer, on_timer, HTTP_LINGER_MS, 0);
}

void conn_close_graceful(struct conn *c)
{
	if (c->state == C_DEAD)
		return;
	c->state = C_CLOSING;
	if (c->eof && !c->nwrites) {
		conn_close_now(c);
		return;
	}
	if (!c->shut) {
		c->shut = 1;
		uv_shutdown_t *req = xmalloc(sizeof *req);
		req->data = c;
		if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
			free(req);
			conn_close_now(c);
			return;
		}
	}
	/* A peer that does not read our last answer gets as long as an idle one. */
	uv_timer_start(&c->timer, on_timer, c->srv->idle_ms, 0);
	conn_update(c);
}

/* --- writing --------------------------------------------------------------------------- */

struct wreq {
	uv_write_t w;
	struct conn *c;
	char *data;
};

static void on_write(uv_write_t *w, int status)
{
	struct wreq *wr = (struct wreq *)w;
	struct conn *c = wr->c;
	free(wr->data);
	free(wr);
	c->nwrites--;
	if (status < 0) {          /* EPIPE, ECONNRESET...: the peer is gone */
		conn_close_now(c);
		return;
	}
	if (c->wblocked && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <= HTTP_WQ_MAX / 2) {
		c->wblocked = 0;
		if (c->state == C_READ || c->state == C_DISCARD)
			conn_process(c);
	}
	if (c->state == C_TUNNEL)
		conn_tunnel_wrote(c);     /* last: its on_drain may close the tunnel */
}

void conn_write(struct conn *c, struct buf *b)
{
	size_t len = b->len;
	if (c->state == C_DEAD || !len) {
		buf_free(b);
		return;
	}
	struct wreq *wr = xmalloc(sizeof *wr);
	wr->c = c;
	wr->data = buf_detach(b);
	uv_buf_t ub = uv_buf_init(wr->data, (unsigned int)len);
	if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &ub, 1, on_write) != 0) {
		free(wr->data);
		free(wr);
		conn_close_now(c);
		return;
	}
	c->nwrites++;
}

/* --- reading and the request cycle ----------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
	struct conn *c = t->data;
	switch (c->state) {
	case C_READ:
		if (!c->req && conn_phase(c) == HTTP_PHASE_IDLE)
			conn_close_now(c);             /* idle keep-alive, or a silent new connection */
		else
			conn_send_error(c, 408);       /* a request started and did not finish */
		break;
	case C_DISCARD:
	case C_CLOSING:
		conn_close_now(c);
		break;
	case C_TUNNEL:
		conn_tunnel_deliver(c);        /* no deadline: only "hand over what is buffered" */
		break;
	default:
		break;
	}
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct conn *c = h->data;
	buf_grow(&c->rbuf, HTTP_READ_CHUNK);
	b->base = c->rbuf.p + c->rbuf.len;
	b->len = c->rbuf.cap - c->rbuf.len - 1;   /* keep the buf's NUL */
}

static void conn_peer_end(struct conn *c, ssize_t err)
{
	c->eof = 1;
	if (c->state == C_TUNNEL) {
		conn_tunnel_deliver(c);        /* bytes that came before the end, if still held */
		conn_tunnel_gone(c);
		if (c->state == C_TUNNEL)
			c->state = C_CLOSING;      /* flush what the handler queued, then close */
	}
	if (err != UV_EOF) {
		conn_close_now(c);
		return;
	}
	switch (c->state) {
	case C_READ:
	case C_DISCARD:
	case C_CLOSING:
		if (c->nwrites)
			conn_close_graceful(c);   /* flush what was answered, then close */
		else
			conn_close_now(c);
		break;
	default:
		conn_close_now(c);            /* answering: the peer left, abort */
		break;
	}
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
	struct conn *c = st->data;
	if (nread == 0)
		return;
	if (nread < 0) {
		conn_peer_end(c, nread);
		return;
	}
	if (c->state == C_CLOSING || c->state == C_DEAD)
		return;                       /* lingering: dropped */
	c->rbuf.len += (size_t)nread;
	c->rbuf.p[c->rbuf.len] = 0;
	if (c->state == C_TUNNEL) {
		conn_tunnel_deliver(c);
		return;
	}
	if ((c->state == C_READ || c->state == C_DISCARD) && !c->wblocked)
		conn_process(c);
	else
		conn_update(c);
}

static void update_reading(struct conn *c)
{
	size_t pending = c->rbuf.len - c->rpos;
	int want;
	switch (c->state) {
	case C_READ:
	case C_DISCARD:
		want = !c->wblocked || pending < HTTP_PIPE_MAX;
		break;
	case C_ANSWER:
		want = pending < HTTP_PIPE_MAX;   /* keep watching for EOF unless much is buffered */
		break;
	case C_TUNNEL:
		want = !c->tpaused;
		break;
	case C_CLOSING:
		want = !c->eof;
		break;
	default:
		want = 0;
	}
	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
			conn_close_now(c);
			return;
		}
		c->reading = 1;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
}

/* Deadlines and reading, after anything happened on c. */
void conn_update(struct conn *c)
{
	struct http_server *s = c->srv;
	switch (c->state) {
	case C_READ:
		switch (conn_phase(c)) {
		case HTTP_PHASE_IDLE:
			c->head_timer = 0;
			uv_timer_start(&c->timer, on_timer, c->served ? s->idle_ms : s->head_ms, 0);
			break;
		case HTTP_PHASE_HEAD:
			if (!c->head_timer) {
				c->head_timer = 1;
				uv_timer_start(&c->timer, on_timer, s->head_ms, 0);
			}
			break;
		default:
			c->head_timer = 0;
			uv_timer_start(&c->timer, on_timer, s->body_ms, 0);
			break;
		}
		break;
	case C_DISCARD:
		uv_timer_start(&c->timer, on_timer, s->body_ms, 0);
		break;
	case C_ANSWER:
		uv_timer_stop(&c->timer);
		break;
	case C_TUNNEL:            /* no deadline; bytes held (the request's leftovers, or held
				   * while paused) are handed over from the loop */
		if (!c->tpaused && c->rbuf.len > c->rpos)
			uv_timer_start(&c->timer, on_timer, 0, 0);
		break;
	case C_CLOSING:
		break;            /* its own deadline is set */
	case C_DEAD:
		return;
	}
	update_reading(c);
}

static int spool_open(struct conn *c, const char *dir)
{
	struct buf path = BUF_INIT;
	buf_addf(&path, "%s/berth-body-XXXXXX", dir);
	int fd = mkostemp(path.p, O_CLOEXEC);
	if (fd < 0) {
		log_warn("http: %s: cannot spool a request body in %s: %s", c->peer, dir, strerror(errno));
		buf_free(&path);
		return -1;
	}
	(void)fchmod(fd, 0600);
	c->spool_fd = fd;
	c->req->pub.body_file = buf_detach(&path);
	return 0;
}

static int write_all(int fd, const char *d, size_t n)
{
	while (n) {
		ssize_t w = write(fd, d, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		d += w;
		n -= (size_t)w;
	}
	return 0;
}

static void on_head_event(struct conn *c)
{
	struct http_server *s = c->srv;
	struct http_reqx *rx = (struct http_reqx *)http_parse_take_req(c->parse);
	if (!rx) {
		conn_send_error(c, 500);
		return;
	}
	struct http_req *r = &rx->pub;
	r->conn = c;
	memcpy(r->peer, c->peer, sizeof r->peer);
	c->req = rx;
	c->handed = c->complete = c->answering = c->close_after = 0;
	c->mode = A_NONE;
	c->abort_fn = c->end_fn = NULL;
	c->head_timer = 0;

	struct http_body_plan plan = {HTTP_DEFAULT_BODY_MAX, NULL};
	int rc = 0;
	c->state = C_ANSWER;          /* an answer given now comes before the body */
	if (s->h.on_head) {
		c->in_cb = 1;
		rc = s->h.on_head(s->h.arg, r, &plan);
		c->in_cb = 0;
	}
	if (c->ended) {                   /* answered inside on_head */
		req_release(c, c->ended);
		return;
	}
	if (c->state == C_DEAD || c->answering)
		return;                   /* closed meanwhile, or a stream answers before the body */
	if (rc != 0) {
		http_respond_error(r, 500, "the request was refused without an answer");
		return;
	}
	c->state = C_READ;
	http_parse_set_body_max(c->parse, plan.max);
	if (plan.spool_dir && spool_open(c, plan.spool_dir) < 0) {
		conn_send_error(c, 500);
		return;
	}
	if (rx->expect_continue && (rx->chunked || rx->content_length > 0) &&
	    !(rx->has_length && rx->content_length > plan.max) && c->rpos == c->rbuf.len) {
		struct buf b = BUF_INIT;
		buf_adds(&b, "HTTP/1.1 100 Continue\r\n\r\n");
		conn_write(c, &b);
	}
}

static void on_body_event(struct conn *c)
{
	const char *d;
	size_t n;
	http_parse_body(c->parse, &d, &n);
	if (c->state != C_READ || !c->req)
		return;                   /* discarding */
	if (c->spool_fd >= 0) {
		if (write_all(c->spool_fd, d, n) < 0) {
			int err = errno;
			log_warn("http: %s: write request body to %s: %s", c->peer, c->req->pub.body_file,
				 strerror(err));
			conn_send_error(c, err == ENOSPC || err == EDQUOT ? 507 : 500);
		}
		return;
	}
	buf_add(&c->req->pub.body, d, n);
}

static void on_done_event(struct conn *c)
{
	struct http_server *s = c->srv;
	if (c->state == C_DISCARD) {
		c->state = C_READ;
		return;
	}
	struct http_reqx *rx = c->req;
	if (!rx)
		return;
	if (c->spool_fd >= 0) {
		close(c->spool_fd);
		c->spool_fd = -1;
	}
	rx->pub.body_len = http_parse_body_seen(c->parse);
	c->complete = 1;
	c->handed = 1;
	c->state = C_ANSWER;
	uv_timer_stop(&c->timer);
	c->in_cb = 1;
	if (s->h.on_request)
		s->h.on_request(s->h.arg, &rx->pub);
	else
		http_respond_error(&rx->pub, 500, "no request handler");
	c->in_cb = 0;
	if (c->ended)
		req_release(c, c->ended);
}

/* Parse what is buffered, one event at a time, while the connection is reading requests. */
static void conn_process(struct conn *c)
{
	if (c->in_process)
		return;
	c->in_process = 1;
	while (c->state == C_READ || c->state == C_DISCARD) {
		if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > HTTP_WQ_MAX) {
			c->wblocked = 1;    /* the peer does not read its answers: wait */
			break;
		}
		size_t avail = c->rbuf.len - c->rpos;
		enum http_parse_event ev;
		int status;
		if (!c->parse)
			c->parse = http_parse_new();
		size_t used = http_parse_feed(c->parse, avail ? c->rbuf.p + c->rpos : NULL, avail, &ev, &status);
		c->rpos += used;
		if (ev == HTTP_EV_NONE)
			break;
		switch (ev) {
		case HTTP_EV_HEAD:
			on_head_event(c);
			break;
		case HTTP_EV_BODY:
			on_body_event(c);
			break;
		case HTTP_EV_DONE:
			on_done_event(c);
			break;
		case HTTP_EV_ERROR:
			if (c->state == C_DISCARD)
				conn_close_graceful(c);
			else
				conn_send_error(c, status);
			break;
		default:
			break;
		}
	}
	c->in_process = 0;
	if (c->state == C_DEAD)
		return;
	if (c->rpos >= c->rbuf.len) {
		buf_free(&c->rbuf);           /* nothing pending: hold no buffer */
		if (c->state == C_READ && conn_phase(c) == HTTP_PHASE_IDLE) {
			http_parse_free(c->parse);   /* nor a parser: the next request gets a new one */
			c->parse = NULL;
		}
	} else if (c->rpos) {
		buf_consume(&c->rbuf, c->rpos);
	}
	c->rpos = 0;
	conn_update(c);
}
