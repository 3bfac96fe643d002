/* hijack: a hijacked connection to the container engine (see docker.h). The engine answers
 * an exec start or an attach with "101 UPGRADED" (or 200) and then turns the HTTP connection
 * into the process's stdin one way and its output the other: raw bytes with a terminal,
 * else frames (an 8-byte header: stream, three zero bytes, big-endian length) that are cut
 * here into stdout and stderr. libcurl cannot hand such a connection to the loop, so this
 * speaks the few lines of HTTP/1.1 itself, non-blocking on a uv_pipe_t.
 * The answer is untrusted: its head is bounded (HEAD_MAX) and parsed by hijack_parse_head,
 * which the engine fuzzer also feeds. Ownership: the struct is freed when its pipe has closed
 * and hijack_free has been called, whichever is last. */
#include "driver/docker.h"
#include "util/buf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_MAX 8192
#define READ_CHUNK 65536

struct hijack {
	uv_pipe_t pipe;
	uv_connect_t conn;
	bool pipe_open, opened, ended, freed, tty;
	hijack_open_fn open_fn;
	hijack_data_fn data_fn;
	hijack_end_fn end_fn;
	void *arg;
	struct buf req;              /* the request, until written */
	struct buf head;             /* the answer's head, until complete */
	size_t queued;
	/* frame state */
	unsigned char fh[8];
	size_t fh_len;
	uint64_t frame_left;
	int frame_stream;
	char rbuf[READ_CHUNK];
};

struct hj_write {
	uv_write_t w;
	struct hijack *h;
	size_t n;
	char data[];
};

static void on_closed(uv_handle_t *hd)
{
	struct hijack *h = hd->data;
	h->pipe_open = false;
	if (h->freed) {
		buf_free(&h->req);
		buf_free(&h->head);
		free(h);
	}
}

static void end_stream(struct hijack *h, int ok, const char *why)
{
	if (h->pipe_open && !uv_is_closing((uv_handle_t *)&h->pipe))
		uv_close((uv_handle_t *)&h->pipe, on_closed);
	if (h->ended)
		return;
	h->ended = true;
	if (h->freed)
		return;
	if (!h->opened) {
		if (h->open_fn)
			h->open_fn(h->arg, 0, why ? why : "the engine closed the connection");
	} else if (h->end_fn) {
		h->end_fn(h->arg);
	}
}

int hijack_parse_head(const char *data, size_t n, size_t *head_len)
{
	const char *end = NULL;
	for (size_t k = 0; k + 3 < n; k++)
		if (data[k] == '\r' && data[k + 1] == '\n' && data[k + 2] == '\r' && data[k + 3] == '\n') {
			end = data + k + 4;
			break;
		}
	if (!end)
		return n > HEAD_MAX ? -1 : 0;
	if ((size_t)(end - data) > HEAD_MAX)
		return -1;
	/* "HTTP/1.x NNN ..." */
	if (n < 12 || memcmp(data, "HTTP/1.", 7) || (data[7] != '0' && data[7] != '1') || data[8] != ' ')
		return -1;
	int code = 0;
	for (int k = 9; k < 12; k++) {
		if (data[k] < '0' || data[k] > '9')
			return -1;
		code = code * 10 + (data[k] - '0');
	}
	if (code < 100 || (data[12] != ' ' && data[12] != '\r'))
		return -1;
	*head_len = (size_t)(end - data);
	return code;
}

static void deliver(struct hijack *h, const char *p, size_t n)
{
	if (h->tty) {
		if (h->data_fn && !h->freed)
			h->data_fn(h->arg, 1, p, n);
		return;
	}
	while (n && !h->freed) {
		if (h->frame_left == 0) {
			size_t take = 8 - h->fh_len < n ? 8 - h->fh_len : n;
			memcpy(h->fh + h->fh_len, p, take);
			h->fh_len += take;
			p += take;
			n -= take;
			if (h->fh_len < 8)
				return;
			h->fh_len = 0;
			if (h->fh[0] > 2 || h->fh[1] || h->fh[2] || h->fh[3]) {
				end_stream(h, 1, NULL);     /* not a frame: the stream is garbage */
				return;
			}
			h->frame_stream = h->fh[0] == 2 ? 2 : 1;
			h->frame_left = ((uint64_t)h->fh[4] << 24) | ((uint64_t)h->fh[5] << 16) | ((uint64_t)h->fh[6] << 8) | h->fh[7];
			continue;
		}
		size_t take = h->frame_left < n ? (size_t)h->frame_left : n;
		if (h->data_fn)
			h->data_fn(h->arg, h->frame_stream, p, take);
		h->frame_left -= take;
		p += take;
		n -= take;
	}
}

static void on_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b)
{
	struct hijack *h = hd->data;
	b->base = h->rbuf;
	b->len = sizeof h->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct hijack *h = s->data;
	if (n < 0) {
		end_stream(h, 0, uv_strerror((int)n));
		return;
	}
	if (n == 0 || h->freed)
		return;
	if (h->opened) {
		deliver(h, b->base, (size_t)n);
		return;
	}
	buf_add(&h->head, b->base, (size_t)n);
	size_t hl = 0;
	int code = hijack_parse_head(h->head.p, h->head.len, &hl);
	if (code == 0)
		return;
	if (code != 101 && code != 200) {
		char why[300];
		if (code < 0) {
			snprintf(why, sizeof why, "the engine's answer is not HTTP");
		} else {
			/* the error message is the body of the answer, when it came with the head */
			const char *body = h->head.p + hl;
			size_t bl = h->head.len - hl;
			const char *msg = memmem(body, bl, "\"message\":\"", 11);
			if (msg) {
				msg += 11;
				const char *q = memchr(msg, '"', bl - (size_t)(msg - body));
				snprintf(why, sizeof why, "status %d: %.*s", code, q ? (int)(q - msg) : 0, msg);
			} else {
				snprintf(why, sizeof why, "status %d", code);
			}
		}
		end_stream(h, 0, why);
		return;
	}
	h->opened = true;
	if (h->open_fn)
		h->open_fn(h->arg, 1, NULL);
	if (!h->freed && !h->ended && h->head.len > hl)
		deliver(h, h->head.p + hl, h->head.len - hl);
	buf_free(&h->head);
}

static void on_req_written(uv_write_t *w, int status)
{
	struct hijack *h = w->data;
	free(w);
	if (status < 0)
		end_stream(h, 0, uv_strerror(status));
}

static void on_connect(uv_connect_t *c, int status)
{
	struct hijack *h = c->data;
	if (h->freed)
		return;
	if (status < 0) {
		char why[200];
		snprintf(why, sizeof why, "cannot connect to the engine: %s", uv_strerror(status));
		end_stream(h, 0, why);
		return;
	}
	uv_write_t *w = xmalloc(sizeof *w);
	w->data = h;
	uv_buf_t b = uv_buf_init(h->req.p, (unsigned int)h->req.len);
	if (uv_write(w, (uv_stream_t *)&h->pipe, &b, 1, on_req_written) < 0) {
		free(w);
		end_stream(h, 0, "cannot write to the engine");
		return;
	}
	uv_read_start((uv_stream_t *)&h->pipe, on_alloc, on_read);
}

struct hijack *hijack_open(uv_loop_t *loop, const char *sock, const char *version, const char *path,
			   const char *body, bool tty, hijack_open_fn open_fn, hijack_data_fn data_fn,
			   hijack_end_fn end_fn, void *arg)
{
	struct hijack *h = xcalloc(1, sizeof *h);
	h->tty = tty;
	h->open_fn = open_fn;
	h->data_fn = data_fn;
	h->end_fn = end_fn;
	h->arg = arg;
	size_t bl = body ? strlen(body) : 0;
	buf_addf(&h->req, "POST /v%s%s HTTP/1.1\r\nHost: docker\r\nUser-Agent: berth\r\nConnection: Upgrade\r\n"
		 "Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", version, path, bl);
	if (bl)
		buf_add(&h->req, body, bl);
	uv_pipe_init(loop, &h->pipe, 0);
	h->pipe.data = h;
	h->pipe_open = true;
	h->conn.data = h;
	uv_pipe_connect(&h->conn, &h->pipe, sock, on_connect);
	return h;
}

static void on_written(uv_write_t *w, int status)
{
	struct hj_write *hw = (struct hj_write *)w;
	hw->h->queued -= hw->n;
	free(hw);
}

int hijack_write(struct hijack *h, const void *data, size_t n)
{
	if (!h->opened || h->ended)
		return -1;
	if (!n)
		return 0;
	struct hj_write *hw = xmalloc(sizeof *hw + n);
	hw->h = h;
	hw->n = n;
	memcpy(hw->data, data, n);
	uv_buf_t b = uv_buf_init(hw->data, (unsigned int)n);
	if (uv_write(&hw->w, (uv_stream_t *)&h->pipe, &b, 1, on_written) < 0) {
		free(hw);
		return -1;
	}
	h->queued += n;
	return 0;
}

size_t hijack_queued(const struct hijack *h)
{
	return h->queued;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	free(req);
}

void hijack_shutdown(struct hijack *h)
{
	if (!h->opened || h->ended)
		return;
	uv_shutdown_t *req = xmalloc(sizeof *req);
	if (uv_shutdown(req, (uv_stream_t *)&h->pipe, on_shutdown) < 0)
		free(req);
}

void hijack_close(struct hijack *h)
{
	end_stream(h, 0, "closed");
}

bool hijack_closed(const struct hijack *h)
{
	return h->ended;
}

void hijack_free(struct hijack *h)
{
	if (!h)
		return;
	h->freed = true;
	h->ended = true;
	if (h->pipe_open) {
		if (!uv_is_closing((uv_handle_t *)&h->pipe))
			uv_close((uv_handle_t *)&h->pipe, on_closed);
		return;
	}
	buf_free(&h->req);
	buf_free(&h->head);
	free(h);
}
