/* router/wire: socket writes for the proxy. Most writes go straight into the kernel with
 * uv_try_write (no copy, no allocation); only what the socket did not take is copied into
 * one block and queued with uv_write, so callers may pass pointers into buffers they reuse
 * at once (the thread's read buffer). Bytes queued are visible as the stream's
 * write_queue_size, which is what back-pressure looks at. Also the printf-free number
 * formatting of the per-request path (rt_add_u64, rt_add_int). */
#include "router/internal.h"
#include <stdlib.h>
#include <string.h>

struct wreq {
	uv_write_t req;
	void (*done)(uv_stream_t *, int);
	char data[];
};

static void on_written(uv_write_t *req, int status)
{
	struct wreq *wr = (struct wreq *)req;
	void (*done)(uv_stream_t *, int) = wr->done;
	uv_stream_t *s = req->handle;
	free(wr);
	if (done)
		done(s, status);
}

int wire_send(uv_stream_t *s, const uv_buf_t *bufs, unsigned n, void (*done)(uv_stream_t *, int))
{
	size_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += bufs[i].len;
	if (!total)
		return 0;
	size_t sent = 0;
	if (s->write_queue_size == 0) {
		int rc = uv_try_write(s, bufs, n);
		if (rc >= 0)
			sent = (size_t)rc;
		else if (rc != UV_EAGAIN)
			return rc;
	}
	if (sent == total)
		return 0;
	struct wreq *wr = xmalloc(sizeof *wr + (total - sent));
	wr->done = done;
	size_t skip = sent, at = 0;
	for (unsigned i = 0; i < n; i++) {
		size_t len = bufs[i].len;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		memcpy(wr->data + at, bufs[i].base + skip, len - skip);
		at += len - skip;
		skip = 0;
	}
	uv_buf_t b = uv_buf_init(wr->data, (unsigned)at);
	int rc = uv_write(&wr->req, s, &b, 1, on_written);
	if (rc) {
		free(wr);
		return rc;
	}
	return 0;
}

void rt_add_u64(struct buf *b, uint64_t v)
{
	char d[24];
	size_t i = sizeof d;
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_add(b, d + i, sizeof d - i);
}

void rt_add_int(struct buf *b, long long v)
{
	if (v < 0) {
		buf_addc(b, '-');
		rt_add_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		rt_add_u64(b, (uint64_t)v);
	}
}
