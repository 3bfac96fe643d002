/* router/internal.h: what the router's files share (private to src/router).
 *
 *   router.c    lifecycle: listeners, threads, snapshot hand-over, access-log hand-over
 *   client.c    client connections: reading, framing (http/parse), timeouts, writing
 *   proxy.c     one request's life: route, balance, attempts and retries, streaming both
 *               ways, the answer's head, finishing (inflight, pool, log)
 *   tunnel.c    websocket tunnels after a 101
 *   upstream.c  upstream connections and the per-thread pools
 *   headers.c   pure helpers: hop-by-hop, forwarded headers, request ids, Accept, targets
 *   errpage.c   error and maintenance pages (built-in, per-route and global overrides, JSON)
 *   stats.c     per-thread counters, latency histogram, access-log lines
 *   wire.c      writes that try the socket first and copy only what is left
 *   resp.c      upstream response framing (no I/O)
 *
 * Threading: everything below belongs to one router thread (its loop) except the fields
 * of struct rthread marked "shared", which the main loop reads under rthread.mu. */
#ifndef BERTH_ROUTER_INTERNAL_H
#define BERTH_ROUTER_INTERNAL_H
#include "router/router.h"
#include "router/resp.h"
#include "http/parse.h"
#include "util/buf.h"
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>

#define RT_READ_BUF (64 * 1024)      /* one per thread, shared by every read */
#define RT_WQ_HIGH (256 * 1024)      /* a write queue over this stops reading the other side */
#define RT_WQ_LOW (64 * 1024)        /* ... until it drains below this */
#define RT_PIPE_MAX (64 * 1024)      /* pipelined input buffered while a request is answered */
#define RT_LINGER_MS 2000            /* reading and dropping input after a closing answer */
#define RT_MAX_TRIES 8               /* endpoints tried for one request (connect failures) */
#define RT_LOG_MAX (4 * 1024 * 1024) /* access-log bytes a thread keeps for the main loop */
#define RT_LOG_BATCH (64 * 1024)     /* ... the main loop is woken when a batch is this big */
#define RT_LOG_DELAY_MS 100          /* ... or this long after its first line */
#define RT_OUT_MAX 8                 /* pieces of answer gathered into one write */
#define RT_REQID_MAX 128

struct router;
struct rthread;
struct client;
struct preq;
struct upconn;

struct router_cfgx {             /* config with defaults applied, strings owned */
	char *host;
	int port;
	int threads;
	uint64_t connect_ms, header_ms, idle_ms, response_ms, body_ms, upstream_idle_ms, tunnel_idle_ms;
	unsigned pool_max_idle;
	size_t max_conns;
	uint64_t max_body;
	char *error_dir;
	char *proto;
	void (*access_log)(void *arg, const char *lines, size_t n);
	void *access_log_arg;
};

/* A snapshot held by this thread: the current one, or an older one still used by requests. */
struct snaphold {
	struct ep_snapshot *snap;
	unsigned users;              /* requests routed with it */
};

/* Idle upstream connections to one endpoint (this thread's). */
struct pool {
	struct endpoint *ep;
	struct upconn *idle;         /* most recently used first */
	unsigned nidle;
	unsigned mark;               /* rebuild bookkeeping */
};

struct route_stat {
	char *key;
	uint64_t status[5], aborted;
	uint64_t uperr[ROUTER_UPERR__N];
	uint64_t lat[ROUTER_LAT_BUCKETS + 1], lat_sum_us;
};

struct tstats {                  /* under rthread.mu */
	uint64_t requests, status[5], aborted, retries;
	uint64_t uperr[ROUTER_UPERR__N];
	uint64_t lat[ROUTER_LAT_BUCKETS + 1], lat_sum_us;
	struct route_stat *routes;   /* open addressing, capacity nroutes_cap (power of 2) */
	size_t nroutes, nroutes_cap;
};

struct rthread {
	struct router *r;
	int idx;
	uv_thread_t tid;
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_async_t wake;
	uv_timer_t log_timer;        /* hands a small access-log batch over after RT_LOG_DELAY_MS */
	int lfd;                     /* listening socket until the thread takes it */
	int start_rc;                /* 0 or a uv error, set before ready is posted */
	uv_sem_t ready;
	_Atomic int reader_id;      /* -1 until endpoints_add_reader returned */
	/* shared (under mu) */
	uv_mutex_t mu;
	struct ep_snapshot *pending; /* handed over, not adopted yet */
	int stop;
	struct buf log;
	uint64_t log_dropped;
	struct tstats st;
	uint64_t drain_idle_ms, drain_deadline_ms;   /* router_drain's, read with drain */
	int drain;                   /* router_drain asked: stop accepting, end connections */
	int handover_fd;             /* the listening socket kept for the successor (-1: none) */
	_Atomic int drained;         /* every connection has ended (set by the thread) */
	_Atomic uint64_t adopted;
	_Atomic uint64_t g_clients, g_upconns, g_idle, g_tunnels;
	/* thread only */
	struct snaphold *hold;
	struct client *clients;
	size_t nclients;
	struct upconn *upconns;      /* every upstream connection (idle or not) */
	struct pool *pools;          /* open addressing keyed by endpoint, power-of-2 capacity */
	size_t npools_cap;
	unsigned pool_mark;
	int stopping;
	int draining;                /* router_drain: no keep-alive, no accept */
	uint64_t drain_t0;           /* uv_now when the drain began */
	uv_timer_t drain_timer;      /* ends idle connections, then cuts at the deadline */
	unsigned char rnd[4096];
	size_t rndpos;
	char date[40];               /* IMF-fixdate of date_sec */
	int64_t date_sec;
	struct buf line;             /* scratch for an access-log line */
	/* the last request's struct and answer parser, reused by the next request (proxy.c):
	 * no allocation per request for them; owned by the thread, freed with it */
	struct preq *spare_req;
	struct resp_parse *spare_rp;
	char ts_prefix[32];          /* "YYYY-MM-DDTHH:MM:SS." of ts_sec (access-log lines) */
	int64_t ts_sec;
	int log_pending;             /* lines wait for log_timer */
	/* an answer's pieces gathered during one upstream read, written with one writev
	 * (proxy.c): bytes of our own in `own`, the others point into the read buffer */
	struct {
		struct client *c;
		struct buf own;
		struct { const char *p; size_t off, len; } v[RT_OUT_MAX];
		unsigned n;
	} out;
	char rbuf[RT_READ_BUF];
};

/* ---- client connections (client.c) ---- */

enum cstate {
	CS_OPEN,       /* reading requests (between requests, in a head, or in a request) */
	CS_TUNNEL,     /* raw bytes both ways (tunnel.c) */
	CS_CLOSING,    /* last answer flushing, then shutdown + linger */
	CS_DEAD,       /* handles closing */
};

enum ctimer { CT_NONE, CT_IDLE, CT_HEAD, CT_BODY, CT_SEND, CT_TUNNEL, CT_LINGER, CT_DEFER };

struct client {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct rthread *w;
	struct client *prev, *next;
	struct http_parse *parse;    /* NULL between requests when no input is pending */
	struct buf in;               /* input not fed yet, from inpos; freed when empty */
	size_t inpos;
	struct preq *req;            /* the request being answered */
	uint64_t head_bytes;         /* bytes of the head being read */
	uint64_t head_t0;            /* uv_hrtime of its first byte */
	enum cstate st;
	enum ctimer tmode;
	/* The peer as "ip:port" or "[ip6]:port" (or "unknown"), formatted once at accept for the
	 * access log; the ip alone is peer[ip_off .. ip_off + ip_len) (X-Forwarded-For). */
	char peer[INET6_ADDRSTRLEN + 9];
	unsigned char ip_off, ip_len;
	unsigned reading : 1;
	unsigned eof : 1;            /* the client shut its side (tunnel) */
	unsigned broken : 1;         /* a write failed: close at the deferred timer */
	unsigned in_process : 1;
	unsigned shut : 1;
	unsigned nclosed : 2;
	unsigned served : 1;         /* at least one request answered */
	unsigned flushed : 1;        /* closing: the last answer is out and our FIN sent */
};

void client_on_connection(uv_stream_t *l, int status);
/* Feed buffered input again (the request can take body bytes, or it ended). */
void client_resume(struct client *c);
/* Write to the client (try first, copy the rest). Returns 0, or -1 when the client is
 * broken (it will be closed from the loop; the caller goes on as if written). */
int client_write(struct client *c, const uv_buf_t *bufs, unsigned n);
size_t client_wq(const struct client *c);
/* Reading on/off and the timer, from the connection's state. */
void client_update(struct client *c);
/* The request ended: keep = the connection may carry another one. */
void client_req_ended(struct client *c, bool keep);
/* Close now (abort whatever is in flight) / after flushing what is queued. */
void client_close_now(struct client *c);
void client_close_graceful(struct client *c);
void client_close_all(struct rthread *w);
/* router_drain, every tick: tunnels are closed; idle: keep-alive connections with no
 * request are closed too; cut: everything is. True once every connection's last answer is
 * out (none is open, none closing with bytes still queued). */
bool client_drain(struct rthread *w, bool idle, bool cut);
/* The peer's address as text (not NUL-terminated; *len bytes). */
const char *client_peer_ip(const struct client *c, size_t *len);
/* Tunnels: switch to raw mode (input left in c->in is the caller's to take), shut the
 * write side once queued bytes are out, restart the inactivity timer on traffic. */
void client_tunnel(struct client *c);
void client_shutdown(struct client *c);
void client_touch(struct client *c);
/* The peer as "ip:port" (NUL-terminated). */
const char *client_peer_str(const struct client *c);

/* ---- one request (proxy.c) ---- */

enum body_kind { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };

struct preq {
	struct client *c;
	struct rthread *w;
	struct http_req *hr;         /* the parsed head (owned) */
	struct snaphold *hold;       /* snapshot the route comes from */
	const struct route *route;
	const struct ep_group *group;
	struct endpoint *ep;         /* current target (the last of tried) */
	struct endpoint *tried[RT_MAX_TRIES];
	unsigned ntried;
	struct upconn *up;
	struct resp_parse *rp;
	struct buf uphead;           /* the head sent upstream (kept for a retry) */
	char host[256];              /* Host (or absolute-form authority), as received */
	char id[RT_REQID_MAX + 1];
	uint64_t t0_ns;              /* uv_hrtime of the request's first byte */
	int64_t t0_us;               /* wall clock then */
	uint64_t bytes_in, bytes_out;
	int status;                  /* answered status (0: none yet) */
	enum router_uperr uperr;     /* when upstream_failed */
	enum body_kind body;
	unsigned keep_alive : 1;     /* the client connection may go on after this request */
	unsigned body_done : 1;      /* the client's request body was fully read */
	unsigned body_sent : 1;      /* some body byte went upstream */
	unsigned head_written : 1;   /* the head went to the current upstream connection */
	unsigned expect : 1;         /* Expect: 100-continue, not answered yet */
	unsigned ws : 1;             /* websocket upgrade asked */
	unsigned tunnel : 1;
	unsigned resp_started : 1;   /* the answer's head went to the client */
	unsigned resp_chunked : 1;   /* ... with chunked coding we add */
	unsigned resp_close : 1;     /* ... close-delimited (HTTP/1.0 client) */
	unsigned resp_nobody : 1;
	unsigned counted : 1;        /* inflight++ done on ep */
	unsigned fresh_retry : 1;    /* the one retry on a fresh connection was used */
	unsigned upstream_failed : 1;
	unsigned aborted : 1;        /* the client left before the answer ended */
	unsigned client_paused : 1;  /* upstream reads stopped for the client's write queue */
	unsigned up_paused : 1;      /* client body feeding stopped for the upstream's queue */
	unsigned answered : 1;       /* an early answer is complete; waiting for the head's end */
	unsigned interim : 1;        /* the upstream head being passed is a 1xx (dropped) */
	unsigned up_eof : 1;         /* tunnel: the upstream shut its side */
	unsigned tried_ref : 1;      /* tried[] outlive the snapshot they came from: referenced */
	unsigned maintenance : 1;    /* answered with the maintenance page (the app is in maintenance) */
};

/* The head of a request was read (takes hr). */
void proxy_head(struct client *c, struct http_req *hr, uint64_t head_bytes);
/* May the client's parser be fed now (body bytes have somewhere to go)? */
bool proxy_can_feed(const struct preq *q);
void proxy_body(struct preq *q, const char *d, size_t n, size_t raw);
void proxy_body_done(struct preq *q, size_t raw);
/* The client's framing failed in the body (status to answer if nothing was sent). */
void proxy_client_error(struct preq *q, int status);
/* The client went away (or the router stops): abort, release everything, log. */
void proxy_client_gone(struct preq *q);
/* The client's write queue drained below RT_WQ_LOW. */
void proxy_client_drained(struct preq *q);
/* Answer the request with an error page now (or cut the answer if it began). */
void proxy_error(struct preq *q, int status);
/* Answer a request that has no preq yet (framing error on the head). */
void proxy_refuse(struct client *c, int status, uint64_t bytes_in);

/* Called by upstream.c: */
void proxy_up_connected(struct preq *q, int status);
void proxy_up_data(struct preq *q, const char *d, size_t n);
void proxy_up_eof(struct preq *q, int status);     /* UV_EOF or an error */
void proxy_up_timeout(struct preq *q);
void proxy_up_drained(struct preq *q);            /* upstream write queue below RT_WQ_LOW */
/* Pass an upstream head's fields on without the hop-by-hop ones (Upgrade kept if asked). */
void proxy_copy_headers(struct buf *b, const struct http_header *hs, size_t n, bool upgrade);

/* ---- tunnels (tunnel.c) ---- */
/* The upstream said 101: pass its head on, then bytes both ways (rest: bytes after it). */
void tunnel_start(struct preq *q, const struct resp_head *h, const char *rest, size_t n);
void tunnel_from_client(struct preq *q, const char *d, size_t n);
void tunnel_client_eof(struct preq *q);
void tunnel_from_upstream(struct preq *q, const char *d, size_t n);
void tunnel_upstream_eof(struct preq *q);
void tunnel_end(struct preq *q);

/* ---- upstream connections (upstream.c) ---- */

enum ustate { US_CONNECTING, US_ACTIVE, US_IDLE, US_DEAD };
enum utimer { UT_NONE, UT_CONNECT, UT_RESPONSE, UT_IDLE, UT_DEFER };

struct upconn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t creq;
	struct rthread *w;
	struct endpoint *ep;         /* referenced */
	struct upconn *prev, *next;  /* w->upconns */
	struct upconn *inext;        /* pool idle list */
	struct preq *req;
	enum ustate st;
	enum utimer tmode;
	unsigned reused : 1;         /* came from the pool */
	unsigned got_byte : 1;       /* a response byte arrived for the current request */
	unsigned reading : 1;
	unsigned broken : 1;
	unsigned shut : 1;
	unsigned nclosed : 2;
};

/* A connection to ep for q: an idle pooled one (*reused = true, ready now) or a new one
 * (connect under way; proxy_up_connected follows). */
struct upconn *up_get(struct rthread *w, struct endpoint *ep, struct preq *q, bool fresh, bool *reused);
int up_write(struct upconn *u, const uv_buf_t *bufs, unsigned n);   /* 0 or -1 (broken) */
size_t up_wq(const struct upconn *u);
void up_read(struct upconn *u, bool on);
void up_timer(struct upconn *u, enum utimer mode, uint64_t ms);
/* Done with u for this request: back to the pool when reusable, else closed. */
void up_release(struct upconn *u, bool reusable);
void up_close(struct upconn *u);
void up_shutdown(struct upconn *u);
/* A new snapshot: drop pools (and idle connections) of endpoints no longer in it. */
void pools_rebuild(struct rthread *w, const struct ep_snapshot *s);
void up_close_all(struct rthread *w);
void pools_free(struct rthread *w);

/* ---- helpers (headers.c) ---- */
bool hdr_is_hop(const char *name);
bool hdr_list_has(const char *list, const char *token);   /* comma list, case-insensitive */
bool hdr_connection_lists(const struct http_header *h, size_t n, const char *name);
bool reqid_ok(const char *s);
bool accept_prefers_json(const char *accept);
bool host_ok(const char *h, size_t n);
/* The target to send upstream: origin-form of t with the first `strip` decoded bytes of its
 * path removed (they are the route's prefix), never empty. auth, alen: the authority of
 * an absolute-form target (NULL if origin-form). 0, or -1 when t cannot be forwarded. */
int target_rewrite(const char *t, size_t strip, struct buf *out, const char **auth, size_t *alen);

/* ---- error pages (errpage.c) ---- */
#define ERRPAGE_MAINTENANCE_MSG "this app is down for maintenance"   /* the JSON "error" text */
#define ERRPAGE_RETRY_AFTER "60"     /* Retry-After of a maintenance answer (seconds) */
struct errpages;
struct errpages *errpages_new(const char *global_dir);
void errpages_free(struct errpages *ep);
/* The body of an error answer: a route's page, the global one, or the built-in page (or
 * the JSON variant). maintenance: the maintenance page (a 503 whatever status says).
 * ctype is set to a static string. Any thread. */
void errpage_build(struct errpages *ep, const struct route *rt, int status, bool maintenance, bool json,
		   const char *id, struct buf *body, const char **ctype);
const char *errpage_message(int status);   /* the JSON "error" text */
/* Where a page may come from (pure): the file that replaces the built-in page of status
 * ("503.html"; "maintenance.html" for maintenance mode; NULL when that status cannot be
 * replaced), and the (dir, file) pairs to try in order: the route's directory, then the
 * global one (either may be NULL or ""). Returns how many pairs were filled in out. */
struct errpage_src {
	const char *dir, *file;
};
const char *errpage_file(int status, bool maintenance);
size_t errpage_sources(const char *route_dir, const char *global_dir, int status, bool maintenance,
		       struct errpage_src out[2]);

/* ---- stats and the access log (stats.c) ---- */
void stats_request(struct rthread *w, const struct preq *q);   /* one finished request */
void stats_uperr(struct rthread *w, const struct preq *q, enum router_uperr k);
void stats_retry(struct rthread *w);
void stats_aggregate(struct router *r, struct router_stats *st);
void tstats_free(struct tstats *t);

/* ---- router.c ---- */
const struct router_cfgx *router_cfg(const struct router *r);
struct errpages *router_errpages(struct router *r);
int router_nthreads(const struct router *r);
struct rthread *router_thread(struct router *r, int i);
struct endpoints *router_eps(const struct router *r);
void router_log_ready(struct router *r);     /* a thread has lines: wake the main loop */
void rthread_log_added(struct rthread *w, size_t batch);   /* after a line went into w->log */
void rthread_reqid(struct rthread *w, char out[33]);
void rt_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);   /* the thread's read buffer */
const char *rthread_date(struct rthread *w);
/* The snapshot requests start with now (counted as a user). */
struct snaphold *rthread_hold(struct rthread *w);
void rthread_release(struct rthread *w, struct snaphold *h);

/* ---- wire.c ---- */
/* Append v in decimal (the hot path's printf-free "%d"/"%llu"). */
void rt_add_int(struct buf *b, long long v);
void rt_add_u64(struct buf *b, uint64_t v);

/* Write bufs to s: directly when the queue is empty, a copy of the rest queued; done(s,
 * status) runs when a queued copy is written. 0 or a uv error. */
int wire_send(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, void (*done)(uv_stream_t *, int));
#endif
