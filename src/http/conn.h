/* http/conn.h: the server's connection state, shared by server.c (sockets, reading, timers,
 * the request cycle), respond.c (answers) and tunnel.c (upgraded connections). Private to
 * the http module.
 *
 * A connection carries one request at a time. Its life:
 *   C_READ    parsing: between requests, in a head, in a body (c->req set once the head
 *             is in); a request whose body is complete goes to on_request and C_ANSWER
 *   C_ANSWER  the handler owns the answer; input is only buffered (reads stop past
 *             HTTP_PIPE_MAX), EOF means the peer left
 *   C_DISCARD the answer came before the body (e.g. 401 from on_head): the body is read
 *             and dropped, then C_READ again
 *   C_TUNNEL  upgraded (http_req_upgrade, from C_ANSWER): no parser, no request, no timer
 *             deadline; each read goes to the tunnel's on_data and its buffer is freed (rbuf
 *             holds bytes only while they wait: those that came with the request, or a read
 *             made just before a pause); EOF or an error ends it. Never back to C_READ.
 *   C_CLOSING the last answer is flushed, then shutdown, then a short linger reading and
 *             dropping input (so the peer sees the answer, not a reset), then closed
 *   C_DEAD    uv handles closing/closed; the struct lives on while a handler still owns a
 *             request (an "orphan" answer is dropped and frees it) */
#ifndef BERTH_HTTP_CONN_H
#define BERTH_HTTP_CONN_H
#include "http/parse.h"

#define HTTP_PIPE_MAX (64 * 1024)            /* input buffered while answering before reads stop */
#define HTTP_WQ_MAX (256 * 1024)             /* queued output before pipelined requests wait */
#define HTTP_STREAM_WQ_MAX (8 * 1024 * 1024) /* a stream reader this far behind is dropped */
#define HTTP_DISCARD_MAX (1024 * 1024)       /* unread body an early answer may skip and keep alive */
#define HTTP_LINGER_MS 2000
#define HTTP_READ_CHUNK (64 * 1024)

enum conn_state { C_READ, C_ANSWER, C_DISCARD, C_TUNNEL, C_CLOSING, C_DEAD };
enum answer_mode { A_NONE, A_STREAM_CHUNKED, A_STREAM_RAW, A_STREAM_NOBODY };

struct http_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	struct http_handlers h;
	struct conn *conns;
	size_t nconns, max_conns;
	size_t nhandles;          /* open uv handles: listener, 2 per conn, refused sockets */
	uint64_t head_ms, idle_ms, body_ms;
	int port;
	int closing;
	int draining;             /* http_server_drain: no keep-alive, no accept */
	int handover_fd;          /* the listening socket kept for a successor (-1: none) */
	uv_timer_t *drain_timer;  /* the drain's deadline (counted in nhandles while open) */
	void (*close_cb)(void *);
	void *close_arg;
};

typedef void (*http_req_cb)(struct http_req *r, void *arg);

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct http_server *srv;   /* NULL once the handles are closed */
	struct conn *prev, *next;
	struct http_parse *parse;  /* NULL between requests when nothing is pending */
	struct buf rbuf;           /* input not parsed yet (from rpos); freed when empty */
	size_t rpos;
	enum conn_state state;
	struct http_reqx *req;     /* the request in flight */
	struct http_reqx *ended;   /* answered inside a callback: freed when it returns */
	int spool_fd;
	http_req_cb abort_fn, end_fn;
	void *abort_arg, *end_arg;
	enum answer_mode mode;     /* a started stream */
	struct http_tunnel *tunnel; /* C_TUNNEL (or C_DEAD from it): until on_close or close */
	size_t nwrites;            /* uv_write requests in flight */
	unsigned handed : 1;       /* on_request was called for req */
	unsigned complete : 1;     /* req's body is fully read */
	unsigned answering : 1;    /* a stream was started for req */
	unsigned close_after : 1;  /* close once the current answer is out */
	unsigned in_cb : 1;        /* inside on_head/on_request */
	unsigned in_process : 1;
	unsigned in_abort : 1;
	unsigned reading : 1;
	unsigned wblocked : 1;     /* waiting for output to drain before parsing more */
	unsigned head_timer : 1;   /* the head deadline is armed */
	unsigned served : 1;       /* at least one request was answered */
	unsigned eof : 1;
	unsigned tpaused : 1;      /* C_TUNNEL: the handler paused reading */
	unsigned shut : 1;         /* shutdown requested */
	unsigned nclosed : 2;      /* handle close callbacks seen */
	unsigned flushed : 1;      /* closing: the last answer is out and our FIN sent */
	char peer[64];
};

/* server.c */
void conn_write(struct conn *c, struct buf *b);      /* takes b's memory */
void conn_answer_end(struct conn *c);                /* the answer to c->req is complete */
void conn_close_now(struct conn *c);
void conn_close_graceful(struct conn *c);
int conn_body_unread_ok(const struct conn *c);       /* may an early answer keep the conn? */
void conn_req_drop(struct conn *c);                  /* free c->req unless a handler owns it */
void conn_update(struct conn *c);                    /* deadlines and reading, after a change */
/* c->req was answered with a 101: release it (its on_end runs), drop the parser and enter
 * C_TUNNEL with c->tunnel set by the caller; bytes already buffered go to the tunnel from
 * the loop. */
void conn_tunnel_enter(struct conn *c);

/* respond.c: an error answer from the layer itself; the connection closes after it. */
void conn_send_error(struct conn *c, int status);
/* respond.c: the head of a "101 Switching Protocols" to proto (a checked token). */
void conn_send_switching(struct conn *c, const char *proto, const char *extra_headers);

/* tunnel.c, called by server.c on a C_TUNNEL connection: */
void conn_tunnel_deliver(struct conn *c);            /* hand buffered input to on_data */
void conn_tunnel_gone(struct conn *c);               /* on_close (once), detach and free */
void conn_tunnel_wrote(struct conn *c);              /* a write completed: maybe on_drain */
#endif
