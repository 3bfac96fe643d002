/* dns/server: the DNS listeners on a libuv loop (UDP and TCP on the same port).
 *
 * UDP: libuv reads batches with recvmmsg into one buffer the server owns and hands over each
 * datagram, then signals the end of the batch (UV_UDP_MMSG_FREE); each answer is built into
 * a fixed slot and the batch goes out with one sendmmsg, so a query costs no allocation and
 * about one system call per batch each way. Only when the socket's send buffer is full is an
 * answer copied and queued through libuv (at most MAX_UDP_QUEUED, then answers are dropped and
 * counted: the client retries, as it would after any lost datagram).
 * TCP (RFC 7766): 2-byte length-prefixed messages, several per connection, answered in
 * order; a connection idle for tcp_idle_ms is closed; reading pauses while more than
 * TCP_WRITE_HIGH bytes of answers wait to be written.
 *
 * Snapshots: the server is a reader of the endpoints table; each new snapshot is referenced,
 * the previous one dropped, and the adopted version reported. The table has no way to forget
 * a reader, so the callback argument is a slot in a static table that outlives the server: a
 * closed server empties its slot (late snapshots are ignored) and reports the largest version
 * as adopted, so it never holds back endpoints_drained(). Main loop only.
 * An in-place upgrade of the server hands the two sockets over: dns_server_take_fds in the
 * predecessor, dns_server_new_fds in the successor. */
#include "dns/dns.h"
#include "util/buf.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#define MMSG_CHUNKS 20                 /* libuv reads at most 20 datagrams per recvmmsg */
#define UDP_CHUNK (64 * 1024)          /* libuv's recvmmsg slot size */
#define MAX_UDP_QUEUED 1024
#define TCP_WRITE_HIGH (256 * 1024)
#define TCP_BUF_MAX (2 + DNS_TCP_MAX)
#define MAX_SERVERS 256

struct reader_slot {
	struct dns_server *srv;
};
static struct reader_slot slots[MAX_SERVERS];
static int nslots;

struct tcp_conn {
	uv_tcp_t h;
	uv_timer_t idle;
	struct dns_server *s;
	struct tcp_conn *prev, *next;
	uint8_t *buf;                  /* unread bytes (length-prefixed messages) */
	size_t len, cap;
	size_t queued;                 /* answer bytes waiting in uv_write */
	int handles;                   /* open libuv handles (h, idle) */
	bool closing, reading;
};

struct udp_send {
	uv_udp_send_t req;
	struct dns_server *s;
	uint8_t data[];
};

struct tcp_write {
	uv_write_t req;
	struct tcp_conn *c;
	size_t len;
	uint8_t data[];
};

/* Answers waiting for one sendmmsg. */
struct udp_batch {
	struct mmsghdr msg[MMSG_CHUNKS];
	struct iovec iov[MMSG_CHUNKS];
	struct sockaddr_storage to[MMSG_CHUNKS];
	uint8_t out[MMSG_CHUNKS][DNS_UDP_MAX_LIMIT];
	unsigned n;
};

struct dns_server {
	uv_loop_t *loop;
	struct endpoints *table;
	int reader;
	struct reader_slot *slot;
	struct ep_snapshot *snap;
	struct dns_opts o;
	uv_udp_t udp;
	uv_tcp_t tcp;
	uint8_t *rbuf;
	size_t rbuf_len;
	struct dns_stats stats;
	struct tcp_conn *conns;
	size_t nconns;
	size_t udp_queued;
	int port;
	int handles;                   /* listeners + connections not yet closed */
	bool closing;
	void (*close_cb)(void *);
	void *close_arg;
	struct udp_batch batch;
	uint8_t tcp_out[2 + DNS_TCP_MAX];
};

/* ---- closing ---- */

static void server_maybe_done(struct dns_server *s)
{
	if (!s->closing || s->handles)
		return;
	if (s->close_cb)
		s->close_cb(s->close_arg);
	free(s->rbuf);
	free(s);
}

static void listener_closed(uv_handle_t *h)
{
	struct dns_server *s = h->data;
	s->handles--;
	server_maybe_done(s);
}

static void conn_closed(uv_handle_t *h)
{
	struct tcp_conn *c = h->data;
	if (--c->handles)
		return;
	struct dns_server *s = c->s;
	free(c->buf);
	free(c);
	s->handles--;
	server_maybe_done(s);
}

static void conn_close(struct tcp_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	struct dns_server *s = c->s;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	uv_close((uv_handle_t *)&c->h, conn_closed);
	uv_close((uv_handle_t *)&c->idle, conn_closed);
}

void dns_server_close(struct dns_server *s, void (*cb)(void *), void *arg)
{
	if (!s || s->closing)
		return;
	s->closing = true;
	s->close_cb = cb;
	s->close_arg = arg;
	if (s->slot)
		s->slot->srv = NULL;
	if (s->reader >= 0)
		endpoints_adopted(s->table, s->reader, UINT64_MAX);
	ep_snapshot_unref(s->snap);
	s->snap = NULL;
	while (s->conns)
		conn_close(s->conns);
	uv_close((uv_handle_t *)&s->udp, listener_closed);
	uv_close((uv_handle_t *)&s->tcp, listener_closed);
}

/* ---- snapshots ---- */

static void on_snapshot(void *arg, struct ep_snapshot *snap)
{
	struct reader_slot *slot = arg;
	struct dns_server *s = slot->srv;
	if (!s)
		return;
	ep_snapshot_ref(snap);
	ep_snapshot_unref(s->snap);
	s->snap = snap;
	if (s->reader >= 0)
		endpoints_adopted(s->table, s->reader, snap->version);
}

/* ---- UDP ---- */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct dns_server *s = h->data;
	*b = uv_buf_init((char *)s->rbuf, (unsigned)s->rbuf_len);
}

static void udp_sent(uv_udp_send_t *req, int status)
{
	struct udp_send *q = (struct udp_send *)req;
	q->s->udp_queued--;
	if (status < 0)
		q->s->stats.send_errors++;
	free(q);
}

static void udp_send(struct dns_server *s, const uint8_t *d, size_t n, const struct sockaddr *to)
{
	uv_buf_t b = uv_buf_init((char *)d, (unsigned)n);
	int e = uv_udp_try_send(&s->udp, &b, 1, to);
	if (e >= 0)
		return;
	if ((e != UV_EAGAIN && e != UV_ENOBUFS) || s->udp_queued >= MAX_UDP_QUEUED) {
		s->stats.send_errors++;
		return;
	}
	struct udp_send *q = xmalloc(sizeof *q + n);
	q->s = s;
	memcpy(q->data, d, n);
	b = uv_buf_init((char *)q->data, (unsigned)n);
	if (uv_udp_send(&q->req, &s->udp, &b, 1, to, udp_sent) < 0) {
		s->stats.send_errors++;
		free(q);
		return;
	}
	s->udp_queued++;
}

static void udp_flush(struct dns_server *s)
{
	struct udp_batch *b = &s->batch;
	unsigned sent = 0;
	int fd;
	/* Straight to the socket unless libuv holds queued answers (then they go in order). */
	if (!s->udp_queued && uv_fileno((uv_handle_t *)&s->udp, &fd) == 0) {
		while (sent < b->n) {
			int r = sendmmsg(fd, b->msg + sent, b->n - sent, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			sent += (unsigned)r;
		}
	}
	/* The rest (socket buffer full, an error for one destination) one by one. */
	for (unsigned k = sent; k < b->n; k++)
		udp_send(s, b->out[k], b->iov[k].iov_len, (const struct sockaddr *)&b->to[k]);
	b->n = 0;
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
	struct dns_server *s = h->data;
	struct udp_batch *b = &s->batch;
	if (s->closing)
		return;
	if (!addr) {
		udp_flush(s);   /* the end of a recvmmsg batch, or nothing more to read */
		return;
	}
	if (nread < 0)
		return;         /* errors are per datagram (ICMP) */
	if (nread == 0 || (flags & UV_UDP_PARTIAL)) {
		s->stats.dropped++;
	} else {
		struct dns_result r;
		unsigned k = b->n;
		size_t n = dns_answer(s->snap, &s->o, (const uint8_t *)buf->base, (size_t)nread, b->out[k],
				      sizeof b->out[k], DNS_UDP, &r);
		dns_stats_count(&s->stats, &r, DNS_UDP);
		if (n) {
			socklen_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
								    : sizeof(struct sockaddr_in);
			memcpy(&b->to[k], addr, alen);
			b->iov[k] = (struct iovec){b->out[k], n};
			b->msg[k].msg_hdr = (struct msghdr){.msg_name = &b->to[k], .msg_namelen = alen,
							    .msg_iov = &b->iov[k], .msg_iovlen = 1};
			b->n++;
		}
	}
	if (!(flags & UV_UDP_MMSG_CHUNK) || b->n == MMSG_CHUNKS)
		udp_flush(s);
}

/* ---- TCP ---- */

static void conn_process(struct tcp_conn *c);
static void tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void tcp_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b);

static void conn_reading(struct tcp_conn *c, bool on)
{
	if (on == c->reading || c->closing)
		return;
	c->reading = on;
	if (!on)
		uv_read_stop((uv_stream_t *)&c->h);
	else if (uv_read_start((uv_stream_t *)&c->h, tcp_alloc, tcp_read) < 0)
		conn_close(c);
}

static void tcp_written(uv_write_t *req, int status)
{
	struct tcp_write *w = (struct tcp_write *)req;
	struct tcp_conn *c = w->c;
	c->queued -= w->len;
	free(w);
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	uv_timer_again(&c->idle);
	if (!c->reading && c->queued <= TCP_WRITE_HIGH / 2) {
		conn_reading(c, true);
		conn_process(c);   /* messages that arrived while paused */
	}
}

static void conn_write(struct tcp_conn *c, const uint8_t *d, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)d, (unsigned)n);
	int done = uv_try_write((uv_stream_t *)&c->h, &b, 1);   /* EAGAIN while writes are queued */
	if (done == (int)n)
		return;
	if (done < 0 && done != UV_EAGAIN) {
		conn_close(c);
		return;
	}
	size_t off = done > 0 ? (size_t)done : 0;
	struct tcp_write *w = xmalloc(sizeof *w + (n - off));
	w->c = c;
	w->len = n - off;
	memcpy(w->data, d + off, n - off);
	b = uv_buf_init((char *)w->data, (unsigned)w->len);
	if (uv_write(&w->req, (uv_stream_t *)&c->h, &b, 1, tcp_written) < 0) {
		free(w);
		conn_close(c);
		return;
	}
	c->queued += w->len;
}

static void tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct tcp_conn *c = h->data;
	if (c->cap - c->len < 1024 && c->cap < TCP_BUF_MAX) {
		size_t want = c->cap ? c->cap * 2 : 1024;
		if (want > TCP_BUF_MAX)
			want = TCP_BUF_MAX;
		c->buf = xrealloc(c->buf, want);
		c->cap = want;
	}
	/* A full buffer cannot happen (it holds at most one incomplete message); if it did, a
	 * zero-length buffer makes libuv report UV_ENOBUFS and the connection is closed. */
	*b = uv_buf_init((char *)c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void tcp_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b)
{
	struct tcp_conn *c = h->data;
	if (nread < 0) {
		conn_close(c);   /* EOF, reset, ENOBUFS */
		return;
	}
	c->len += (size_t)nread;
	uv_timer_again(&c->idle);
	conn_process(c);
}

/* Answer every complete message in the buffer, in order. */
static void conn_process(struct tcp_conn *c)
{
	struct dns_server *s = c->s;
	size_t off = 0;
	while (!c->closing && c->reading && c->len - off >= 2) {
		size_t ml = (size_t)c->buf[off] << 8 | c->buf[off + 1];
		if (c->len - off < 2 + ml)
			break;
		struct dns_result r;
		size_t n = dns_answer(s->snap, &s->o, c->buf + off + 2, ml, s->tcp_out + 2, DNS_TCP_MAX, DNS_TCP, &r);
		dns_stats_count(&s->stats, &r, DNS_TCP);
		off += 2 + ml;
		if (n) {
			s->tcp_out[0] = (uint8_t)(n >> 8);
			s->tcp_out[1] = (uint8_t)n;
			conn_write(c, s->tcp_out, n + 2);
		}
		if (c->queued > TCP_WRITE_HIGH)
			conn_reading(c, false);   /* a client that does not read its answers */
	}
	if (c->closing)
		return;
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
}

static void on_idle(uv_timer_t *t)
{
	conn_close(t->data);
}

static void on_conn(uv_stream_t *l, int status)
{
	struct dns_server *s = l->data;
	if (status < 0 || s->closing)
		return;
	struct tcp_conn *c = xcalloc(1, sizeof *c);
	c->s = s;
	uv_tcp_init(s->loop, &c->h);
	uv_timer_init(s->loop, &c->idle);
	c->h.data = c->idle.data = c;
	c->handles = 2;
	s->handles++;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	if (uv_accept(l, (uv_stream_t *)&c->h) < 0) {
		conn_close(c);
		return;
	}
	if (s->nconns > s->o.tcp_max_conns) {
		s->stats.tcp_refused++;
		conn_close(c);
		return;
	}
	s->stats.tcp_conns++;
	uv_tcp_nodelay(&c->h, 1);
	uv_timer_start(&c->idle, on_idle, s->o.tcp_idle_ms, s->o.tcp_idle_ms);
	conn_reading(c, true);
}

/* ---- start ---- */

int dns_server_port(const struct dns_server *s)
{
	return s->port;
}

const struct dns_stats *dns_stats(const struct dns_server *s)
{
	return &s->stats;
}

static int set_port(struct sockaddr_storage *sa, int port)
{
	if (sa->ss_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
	return port;
}

static int bound_port(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

static struct dns_server *server_alloc(uv_loop_t *loop, struct endpoints *table, unsigned family,
				       const struct dns_opts *o, struct err *err)
{
	if (nslots == MAX_SERVERS) {
		err_set(err, ERR_INTERNAL, "dns: more than %d servers started in this process", MAX_SERVERS);
		return NULL;
	}
	struct dns_server *s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->table = table;
	s->reader = -1;
	if (o)
		s->o = *o;
	else
		dns_opts_default(&s->o);
	if (!s->o.tcp_idle_ms)
		s->o.tcp_idle_ms = 10000;
	if (!s->o.tcp_max_conns)
		s->o.tcp_max_conns = 1000;
	uv_udp_init_ex(loop, &s->udp, family | UV_UDP_RECVMMSG);
	uv_tcp_init(loop, &s->tcp);
	s->udp.data = s->tcp.data = s;
	s->handles = 2;
	s->rbuf_len = uv_udp_using_recvmmsg(&s->udp) ? MMSG_CHUNKS * UDP_CHUNK : UDP_CHUNK;
	s->rbuf = xmalloc(s->rbuf_len);
	return s;
}

/* The sockets are bound (and TCP listens): read, and become a reader of the table. */
static struct dns_server *server_start(struct dns_server *s, struct err *err)
{
	int size = 1 << 20;    /* absorb bursts; the kernel caps it at net.core.rmem_max */
	uv_recv_buffer_size((uv_handle_t *)&s->udp, &size);

	s->slot = &slots[nslots++];
	s->slot->srv = s;
	int id = endpoints_add_reader(s->table, on_snapshot, s->slot);   /* calls on_snapshot now */
	if (id < 0) {
		err_set(err, ERR_INTERNAL, "dns: the endpoints table has no room for another reader");
		dns_server_close(s, NULL, NULL);
		return NULL;
	}
	s->reader = id;
	if (s->snap)
		endpoints_adopted(s->table, id, s->snap->version);
	return s;
}

struct dns_server *dns_server_new(uv_loop_t *loop, struct endpoints *table, const char *host, int port,
				  const struct dns_opts *o, struct err *err)
{
	struct sockaddr_storage sa;
	memset(&sa, 0, sizeof sa);
	if (port < 0 || port > 65535 ||
	    (uv_ip4_addr(host, port, (struct sockaddr_in *)&sa) && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa))) {
		err_set(err, ERR_INVALID, "dns: bad listen address %s:%d", host, port);
		return NULL;
	}
	struct dns_server *s = server_alloc(loop, table, (unsigned)sa.ss_family, o, err);
	if (!s)
		return NULL;

	/* TCP first: with port 0 it picks the port, and UDP takes the same one. */
	int e = uv_tcp_bind(&s->tcp, (struct sockaddr *)&sa, 0);
	if (!e)
		e = uv_listen((uv_stream_t *)&s->tcp, 128, on_conn);
	const char *what = "tcp";
	if (!e) {
		int len = sizeof sa;
		uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&sa, &len);
		s->port = set_port(&sa, bound_port(&sa));
		what = "udp";
		e = uv_udp_bind(&s->udp, (struct sockaddr *)&sa, 0);
	}
	if (!e)
		e = uv_udp_recv_start(&s->udp, udp_alloc, udp_recv);
	if (e) {
		err_set(err, ERR_UNAVAILABLE, "dns: listen on %s:%d/%s: %s", host, port ? port : s->port, what,
			uv_strerror(e));
		dns_server_close(s, NULL, NULL);
		return NULL;
	}
	return server_start(s, err);
}

struct dns_server *dns_server_new_fds(uv_loop_t *loop, struct endpoints *table, int udp_fd, int tcp_fd,
				      const struct dns_opts *o, struct err *err)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof sa;
	memset(&sa, 0, sizeof sa);
	if (getsockname(tcp_fd, (struct sockaddr *)&sa, &len) < 0) {
		err_errno(err, errno, "dns: inherited socket %d", tcp_fd);
		close(udp_fd);
		close(tcp_fd);
		return NULL;
	}
	/* AF_UNSPEC: libuv makes no socket of its own, the inherited one goes in */
	struct dns_server *s = server_alloc(loop, table, AF_UNSPEC, o, err);
	if (!s) {
		close(udp_fd);
		close(tcp_fd);
		return NULL;
	}
	s->port = bound_port(&sa);
	int e = uv_tcp_open(&s->tcp, tcp_fd);
	if (e)
		close(tcp_fd);
	if (!e)
		e = uv_listen((uv_stream_t *)&s->tcp, 128, on_conn);
	int u = uv_udp_open(&s->udp, udp_fd);
	if (u)
		close(udp_fd);
	if (!e)
		e = u;
	if (!e)
		e = uv_udp_recv_start(&s->udp, udp_alloc, udp_recv);
	if (e) {
		err_set(err, ERR_UNAVAILABLE, "dns: inherited sockets of port %d: %s", s->port, uv_strerror(e));
		dns_server_close(s, NULL, NULL);
		return NULL;
	}
	return server_start(s, err);
}

int dns_server_take_fds(struct dns_server *s, int *udp_fd, int *tcp_fd)
{
	uv_os_fd_t u, t;
	if (uv_fileno((uv_handle_t *)&s->udp, &u) || uv_fileno((uv_handle_t *)&s->tcp, &t))
		return -1;
	*udp_fd = fcntl(u, F_DUPFD_CLOEXEC, 3);
	*tcp_fd = fcntl(t, F_DUPFD_CLOEXEC, 3);
	if (*udp_fd < 0 || *tcp_fd < 0) {
		if (*udp_fd >= 0)
			close(*udp_fd);
		if (*tcp_fd >= 0)
			close(*tcp_fd);
		*udp_fd = *tcp_fd = -1;
		return -1;
	}
	return 0;
}
