/* http/respond: answers. Full responses (Content-Length), chunked streams, the layer's own
 * error answers, the 101 that starts a tunnel, the Date header and the status texts. Each
 * answer's bytes are built in one buffer and queued on the connection; ending an answer
 * hands the connection back to server.c (next pipelined request, discard of an unread body,
 * or close).
 * Answers for a request whose peer left are dropped (and free the request). */
#include "http/conn.h"
#include "util/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *http_status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 423: return "Locked";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: return "Unknown";
	}
}

/* "Sun, 06 Nov 1994 08:49:37 GMT", formatted once a second per thread (no locale). */
static const char *http_date(void)
{
	static _Thread_local time_t last = -1;
	static _Thread_local char cached[40];
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t now = time(NULL);
	if (now != last) {
		struct tm tm;
		gmtime_r(&now, &tm);
		snprintf(cached, sizeof cached, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
			 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
		last = now;
	}
	return cached;
}

/* A header value we were given: no CR, LF or other control byte. */
static int clean_value(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* extra_headers: whole "Name: value\r\n" lines, no bare CR/LF, no empty line. */
static int clean_extra(const char *s)
{
	size_t n = strlen(s);
	if (n < 2 || s[n - 2] != '\r' || s[n - 1] != '\n' || s[0] == '\r')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && (i + 1 >= n || s[i + 1] != '\n'))
			return 0;
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r' || (i + 1 < n && s[i + 1] == '\r')))
			return 0;
	}
	return 1;
}

/* Does this answer end the connection? Decided before its head is written. */
static void decide_close(struct conn *c, const struct http_reqx *rx)
{
	if (!rx->keep_alive || c->srv->closing || c->srv->draining || c->eof || !conn_body_unread_ok(c))
		c->close_after = 1;
}

static void add_extra(struct buf *b, const struct conn *c, const char *extra)
{
	if (extra && *extra) {
		if (clean_extra(extra))
			buf_adds(b, extra);
		else
			log_warn("http: %s: malformed extra headers were dropped", c->peer);
	}
}

/* Status line and common headers, up to (not including) framing and the final CRLF. */
static void add_head(struct buf *b, const struct conn *c, const struct http_reqx *rx, int status,
		     const char *ctype, const char *extra)
{
	buf_addf(b, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, http_status_text(status), http_date());
	if (ctype && *ctype) {
		if (clean_value(ctype))
			buf_addf(b, "Content-Type: %s\r\n", ctype);
		else
			log_warn("http: %s: a Content-Type with control bytes was dropped", c->peer);
	}
	if (c->close_after)
		buf_adds(b, "Connection: close\r\n");
	else if (rx && rx->http_minor == 0)
		buf_adds(b, "Connection: keep-alive\r\n");
	add_extra(b, c, extra);
}

static int no_body_status(int status)
{
	return (status >= 100 && status < 200) || status == 204 || status == 304;
}

/* May the handler answer r now? Sets *cp. Answers from inside abort/end callbacks, or for
 * a request whose answer already ended, are ignored. */
static int may_answer(struct http_req *r, struct conn **cp)
{
	if (!r || !r->conn)
		return 0;
	struct conn *c = r->conn;
	if (c->in_abort || c->req != (struct http_reqx *)r)
		return 0;
	*cp = c;
	return 1;
}

void http_respond(struct http_req *r, int status, const char *ctype, const void *body, size_t n,
		  const char *extra_headers)
{
	struct conn *c;
	if (!may_answer(r, &c))
		return;
	struct http_reqx *rx = (struct http_reqx *)r;
	if (c->answering) {
		log_warn("http: %s %s: a full answer after a stream started was ignored", r->method, r->path);
		return;
	}
	if (status < 100 || status > 999)
		status = 500;
	if (!body)
		n = 0;
	if (c->state != C_DEAD) {
		decide_close(c, rx);
		struct buf b = BUF_INIT;
		add_head(&b, c, rx, status, ctype, extra_headers);
		if (!no_body_status(status))
			buf_addf(&b, "Content-Length: %zu\r\n", n);
		buf_adds(&b, "\r\n");
		if (!rx->head_method && !no_body_status(status) && n)
			buf_add(&b, body, n);
		conn_write(c, &b);
	}
	conn_answer_end(c);
}

void http_respond_json(struct http_req *r, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(j);
	if (!s) {
		static const char fallback[] = "{\"error\":\"internal error: the answer could not be encoded\"}\n";
		http_respond(r, 500, "application/json", fallback, sizeof fallback - 1, NULL);
		return;
	}
	struct buf b = BUF_INIT;
	buf_adds(&b, s);
	buf_addc(&b, '\n');
	free(s);
	http_respond(r, status, "application/json", b.p, b.len, NULL);
	buf_free(&b);
}

void http_respond_error(struct http_req *r, int status, const char *msg)
{
	json_t *m = msg ? json_string(msg) : NULL;      /* NULL too when msg is not UTF-8 */
	if (!m)
		m = json_string(http_status_text(status));
	json_t *j = json_object();
	json_object_set_new(j, "error", m);
	http_respond_json(r, status, j);
}

void http_stream_start(struct http_req *r, int status, const char *ctype)
{
	struct conn *c;
	if (!may_answer(r, &c) || c->answering)
		return;
	struct http_reqx *rx = (struct http_reqx *)r;
	c->answering = 1;
	if (status < 100 || status > 999)
		status = 500;
	if (c->state == C_DEAD) {
		c->mode = A_STREAM_NOBODY;
		return;
	}
	decide_close(c, rx);
	if (rx->head_method || no_body_status(status)) {
		c->mode = A_STREAM_NOBODY;
	} else if (rx->http_minor == 0) {
		c->mode = A_STREAM_RAW;        /* HTTP/1.0 has no chunks: the close ends the body */
		c->close_after = 1;
	} else {
		c->mode = A_STREAM_CHUNKED;
	}
	struct buf b = BUF_INIT;
	add_head(&b, c, rx, status, ctype, NULL);
	if (c->mode == A_STREAM_CHUNKED || (rx->head_method && rx->http_minor == 1 && !no_body_status(status)))
		buf_adds(&b, "Transfer-Encoding: chunked\r\n");
	buf_adds(&b, "\r\n");
	conn_write(c, &b);
}

int http_stream_write(struct http_req *r, const void *data, size_t n)
{
	struct conn *c;
	if (!may_answer(r, &c) || !c->answering || c->state == C_DEAD)
		return -1;
	if (!n || c->mode == A_STREAM_NOBODY)
		return 0;
	size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
	if (queued > HTTP_STREAM_WQ_MAX) {
		log_warn("http: %s: %s %s: the client reads too slowly (%zu bytes queued); dropping it",
			 c->peer, r->method, r->path, queued);
		conn_close_now(c);             /* the abort callback follows from the loop */
		return -1;
	}
	struct buf b = BUF_INIT;
	if (c->mode == A_STREAM_CHUNKED) {
		buf_grow(&b, n + 24);
		buf_addf(&b, "%zx\r\n", n);
		buf_add(&b, data, n);
		buf_adds(&b, "\r\n");
	} else {
		buf_add(&b, data, n);
	}
	conn_write(c, &b);
	return c->state == C_DEAD ? -1 : 0;
}

void http_stream_end(struct http_req *r)
{
	struct conn *c;
	if (!may_answer(r, &c))
		return;
	if (!c->answering) {
		log_warn("http: %s %s: stream ended without a start", r->method, r->path);
		http_respond_error(r, 500, "internal error: empty stream");
		return;
	}
	if (c->state != C_DEAD && c->mode == A_STREAM_CHUNKED) {
		struct buf b = BUF_INIT;
		buf_adds(&b, "0\r\n\r\n");
		conn_write(c, &b);
	}
	conn_answer_end(c);
}

void conn_send_error(struct conn *c, int status)
{
	if (c->state == C_DEAD)
		return;
	conn_req_drop(c);
	c->close_after = 1;
	char body[128];
	int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", http_status_text(status));
	struct buf b = BUF_INIT;
	add_head(&b, c, NULL, status, "application/json", NULL);
	buf_addf(&b, "Content-Length: %d\r\n\r\n%s", n, body);
	conn_write(c, &b);
	conn_close_graceful(c);
}

void conn_send_switching(struct conn *c, const char *proto, const char *extra_headers)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "HTTP/1.1 101 Switching Protocols\r\nDate: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n",
		 http_date(), proto);
	add_extra(&b, c, extra_headers);
	buf_adds(&b, "\r\n");
	conn_write(c, &b);
}
