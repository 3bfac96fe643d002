/* http: berth's HTTP/1.1 server connection layer on libuv + llhttp (strict mode).
 * Used by the API now and by the router later. It owns sockets, framing, limits and timeouts;
 * handlers see whole requests (or a spooled body file) and answer with a full response or a
 * chunked stream. One request per connection is handled at a time (pipelined requests wait
 * in the read buffer, answered in order).
 *
 * Framing decisions and refusals (berth's own, on top of llhttp):
 *  - Content-Length together with Transfer-Encoding, duplicate/conflicting Content-Length,
 *    a Transfer-Encoding other than exactly "chunked", obs-fold, bare LF: 400, then close.
 *  - request line + headers over HTTP_MAX_HEAD bytes: 431; more than HTTP_MAX_HEADERS: 431.
 *  - body over the handler's limit: 413 (checked against Content-Length before reading, and
 *    while reading a chunked body).
 *  - request target over HTTP_MAX_URL bytes: 414; HTTP version other than 1.0/1.1: 505.
 *  - also 400: whitespace or a non-token byte in a method or header name, control bytes in a
 *    header value, bare CR, an HTTP/1.1 request without exactly one Host (1.0: at most one),
 *    Transfer-Encoding on HTTP/1.0, a target that is neither origin-form ("/p?q") nor
 *    absolute-form ("http://h/p"), a '#' in the target, and a path whose percent-decoding is
 *    malformed or yields %00 or another control byte. CONNECT: 501. Expect other than
 *    "100-continue": 417.
 *  - 10 s to receive a request head (408), 60 s between body bytes (408), 60 s idle keep-alive
 *    (closed silently). After any error answer the connection is closed.
 * Keep-alive: HTTP/1.1 by default, HTTP/1.0 only with "Connection: keep-alive". An Upgrade
 * request (its body, if any, read first) is either answered as plain HTTP, after which the
 * connection closes, or switched by the handler to a tunnel (http_req_upgrade): raw bytes both
 * ways, no timeouts, never HTTP again on that connection.
 * "Expect: 100-continue" gets "HTTP/1.1 100 Continue" once on_head accepted the request.
 * Answers carry Date, Content-Type, Content-Length (or chunked coding for streams; HTTP/1.0
 * streams end with the connection) and "Connection: close" when the connection ends after
 * them; answers to HEAD carry no body, nor do 1xx/204/304. */
#ifndef BERTH_HTTP_H
#define BERTH_HTTP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <jansson.h>
#include "util/buf.h"

#define HTTP_MAX_HEAD (32 * 1024)
#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_URL (8 * 1024)
#define HTTP_MAX_CONNS 10000         /* default; connections above it are closed at once */

struct http_header {
	char *name;    /* as received */
	char *value;   /* trimmed */
};

struct http_req {
	void *conn;                  /* opaque: the connection */
	char *method;                /* "GET", ... */
	char *target;                /* raw request target */
	char *path;                  /* target without query, percent-decoded ("/v1/apps") */
	char *query;                 /* raw query string without '?', "" if none */
	struct http_header *headers;
	size_t nheaders;
	struct buf body;             /* body, when buffered in memory (the handler may buf_detach it) */
	/* Body, when spooled to a file (mode 0600 in plan.spool_dir). When the answer ends the
	 * layer unlinks body_file and frees the string, unless the handler took it: to keep the
	 * file, rename it (or not) and set r->body_file = NULL; the handler then owns the string
	 * (free()) and the file. A request that fails or aborts before on_request loses its file. */
	char *body_file;
	uint64_t body_len;
	char peer[64];               /* "127.0.0.1:54321" */
	void *user;                  /* free for the handler */
};

/* What to do with a request body; filled by the on_head callback. */
struct http_body_plan {
	uint64_t max;                /* larger bodies get 413 (default 1 MiB) */
	const char *spool_dir;       /* non-NULL: stream the body to a temp file in this dir */
};

struct http_handlers {
	/* Headers complete, before the body. Return 0 to continue, or respond right away
	 * (e.g. 401, 404) and return -1: the body is then discarded (or the connection closed
	 * when the body is large). May be NULL. */
	int (*on_head)(void *arg, struct http_req *r, struct http_body_plan *plan);
	/* Whole request received. The handler must eventually answer with http_respond* or
	 * http_stream_*; the req stays valid until the answer ends (or the peer aborts). */
	void (*on_request)(void *arg, struct http_req *r);
	void *arg;
};

struct http_server;

/* Listen on host:port ("127.0.0.1", 7070). NULL on failure with a message in errbuf. */
struct http_server *http_server_new(uv_loop_t *loop, const char *host, int port,
				    const struct http_handlers *h, char *errbuf, size_t errlen);
/* The same on a listening socket handed over by a predecessor (an in-place upgrade); the
 * server owns fd from here on, even on failure. */
struct http_server *http_server_new_fd(uv_loop_t *loop, int fd, const struct http_handlers *h, char *errbuf,
				       size_t errlen);
/* In-place upgrade (docs/upgrade.md): stop accepting (the socket stays open for
 * http_server_take_listener; the kernel keeps queueing connections on it), close idle
 * connections and upgraded ones (tunnels) and streamed answers now, answer the requests in
 * flight with "Connection: close", and cut what is left after deadline_ms. drained: every
 * connection has ended (or only flushes its last answer's FIN). take_listener: the listening
 * socket (close-on-exec; the caller owns it), -1 when there is none. */
void http_server_drain(struct http_server *s, uint64_t deadline_ms);
bool http_server_drained(const struct http_server *s);
int http_server_take_listener(struct http_server *s);
/* Stop listening and close all connections (aborting open requests). cb may be NULL; it runs
 * from the loop once every socket is closed, and s is freed after it. */
void http_server_close(struct http_server *s, void (*cb)(void *), void *arg);
/* The bound port (useful after asking for port 0). */
int http_server_port(const struct http_server *s);
/* Tuning and test knobs. Milliseconds; 0 keeps the current value. Defaults: head 10000,
 * idle keep-alive 60000, between body bytes 60000. Applies to timers armed afterwards. */
void http_server_set_timeouts(struct http_server *s, uint64_t head_ms, uint64_t idle_ms, uint64_t body_ms);
void http_server_set_max_conns(struct http_server *s, size_t n);   /* default HTTP_MAX_CONNS */

const char *http_req_header(const struct http_req *r, const char *name);  /* case-insensitive, NULL if absent */
/* Query parameter, percent-decoded; NULL when absent. Returned string lives as long as r. */
const char *http_req_query(struct http_req *r, const char *name);

/* Full responses. extra_headers: NULL or "Name: value\r\n..." lines. */
void http_respond(struct http_req *r, int status, const char *ctype, const void *body, size_t n,
		  const char *extra_headers);
void http_respond_json(struct http_req *r, int status, json_t *j);           /* steals j */
void http_respond_error(struct http_req *r, int status, const char *msg);     /* {"error":msg} */

/* Streamed response with chunked encoding. write returns -1 once the peer is gone. */
void http_stream_start(struct http_req *r, int status, const char *ctype);
int http_stream_write(struct http_req *r, const void *data, size_t n);
void http_stream_end(struct http_req *r);

/* Called once if the peer goes away (or the server closes) before the answer ended; after
 * it returns the req is freed and must not be touched again. It always runs from the loop,
 * never from inside an http_* call. fn NULL unregisters. A handler without an abort callback
 * may still answer a request whose peer left: the answer is dropped and the req freed.
 * An answer that ends inside on_head/on_request frees the req only after that callback
 * returns; an answer that ends later frees it inside the http_respond* / http_stream_end call. */
void http_req_on_abort(struct http_req *r, void (*fn)(struct http_req *r, void *arg), void *arg);
/* Called exactly once just before the req is freed, however it ends (answered, aborted, or
 * refused by the layer after on_head, e.g. 413 or a body timeout): the place to free r->user.
 * fn NULL unregisters. */
void http_req_on_end(struct http_req *r, void (*fn)(struct http_req *r, void *arg), void *arg);

/* Called exactly once when the request's life ends (answer finished, or aborted), just before
 * the req is freed: the place to free what the handler hung on r->user. Set at most one. */
void http_req_on_end(struct http_req *r, void (*fn)(struct http_req *r, void *arg), void *arg);

const char *http_status_text(int status);

/* --- Upgrade: an HTTP/1.1 connection turned into a byte tunnel (berth run/exec attach) ---
 * The handler gets the whole request first (a JSON body is complete in r->body), then either
 * answers it normally (the connection closes after the answer) or calls http_req_upgrade.
 * A tunnel has no idle or read deadline (a shell may sit idle for an hour; TCP keep-alive
 * finds dead peers); every callback runs from the loop, never from inside an http_* call.
 * The peer's half-close (EOF) ends the tunnel like a reset does. */
struct http_tunnel;   /* an upgraded connection: raw bytes both ways */
struct http_tunnel_events {
	/* Bytes from the peer (valid during the call). May call any http_tunnel_* on t. */
	void (*on_data)(void *arg, const char *data, size_t n);
	/* The peer closed or the connection failed or the server is closing. Called at most once,
	 * never after http_tunnel_close; the tunnel is freed right after it returns (writes from
	 * inside it fail; do not close it there). */
	void (*on_close)(void *arg);
	void *arg;
	/* Optional (NULL: none). Everything queued reached the socket, after a write that had
	 * to queue: the moment to resume a producer paused on http_tunnel_queued. */
	void (*on_drain)(void *arg);
};
/* Is r an Upgrade request (HTTP/1.1, Connection: upgrade + Upgrade header) whose Upgrade
 * header names proto (case-insensitive token match within the comma list)? */
bool http_req_wants_upgrade(const struct http_req *r, const char *proto);
/* Answer r with "101 Switching Protocols" (Upgrade: proto, Connection: Upgrade, extra_headers
 * may be NULL) and turn its connection into a tunnel. The req is released (its on_end runs,
 * no abort callback later) and must not be used again: copy what you need from it (r->body)
 * first. Bytes the peer already sent after the request are delivered to on_data right after
 * this returns (from the loop, not from inside this call). NULL when r cannot be upgraded
 * (not an upgrade request for proto, called from on_head, an answer started, peer gone);
 * then r is still the handler's to answer. ev is copied; on_data and on_close are required. */
struct http_tunnel *http_req_upgrade(struct http_req *r, const char *proto, const char *extra_headers,
				     const struct http_tunnel_events *ev);
/* Queue bytes to the peer (copied). 0, or -1 once the tunnel is closed/failed. The layer
 * sets no limit: the producer bounds it with http_tunnel_queued (and on_drain). */
int http_tunnel_write(struct http_tunnel *t, const void *data, size_t n);
/* Bytes queued and not yet written to the socket (for backpressure). */
size_t http_tunnel_queued(const struct http_tunnel *t);
/* Stop / resume reading from the peer (backpressure on a slow consumer). While paused no
 * on_data runs (nor, as nothing is read, an on_close for the peer's EOF). */
void http_tunnel_pause(struct http_tunnel *t, bool paused);
/* Flush what is queued, then close (bounded as any last answer: the idle timeout to flush,
 * then the linger deadline). on_close is not called. t must not be used afterwards. */
void http_tunnel_close(struct http_tunnel *t);

/* --- the framing layer, without I/O (what the fuzz harness drives) --- */
struct http_parse;
enum http_parse_event { HTTP_EV_NONE, HTTP_EV_HEAD, HTTP_EV_BODY, HTTP_EV_DONE, HTTP_EV_ERROR };
struct http_parse *http_parse_new(void);
void http_parse_free(struct http_parse *p);
/* Feed bytes; returns how many were consumed, stopping after each event. *ev tells what
 * happened; for HTTP_EV_ERROR *status is the status to answer (400, 413, 431, 505...).
 * HTTP_EV_NONE means every byte was consumed and more are needed. After HTTP_EV_HEAD, feed
 * again (even with no bytes) to go on; a body-less request then gives HTTP_EV_DONE at once.
 * After an error every call answers the same error; after a request that does not keep the
 * connection alive, later bytes are consumed and ignored. src/http/parse.h has the rest
 * (the parsed request, body bytes, the body limit). */
size_t http_parse_feed(struct http_parse *p, const char *data, size_t n, enum http_parse_event *ev, int *status);
#endif
