/* frame: berth-attach/1 frames, written and read incrementally (see frame.h). The reader
 * hands out a payload straight from the fed chunk when it lies there whole, and copies only
 * a payload that arrives in pieces, so memory stays at one frame whatever the stream. */
#include "util/frame.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"STDIN", "STDOUT", "STDERR", "EXIT",
				    "INFO", "STDIN_EOF", "RESIZE", "SIGNAL"};

const char *frame_type_name(int type)
{
	return type >= 0 && type <= FRAME_TYPE_MAX ? names[type] : "unknown";
}

void frame_put(struct buf *b, int type, const void *p, size_t n)
{
	if (n > FRAME_MAX_PAYLOAD || type < 0 || type > 255) {
		fprintf(stderr, "berth: frame_put: %zu bytes of type %d is not a frame\n", n, type);
		abort();
	}
	unsigned char h[FRAME_HEADER] = {(unsigned char)type, (unsigned char)(n >> 24),
					 (unsigned char)(n >> 16), (unsigned char)(n >> 8),
					 (unsigned char)n};
	buf_add(b, h, sizeof h);
	if (n)
		buf_add(b, p, n);
}

void frame_put_resize(struct buf *b, unsigned rows, unsigned cols)
{
	rows = rows > 0xffff ? 0xffff : rows;
	cols = cols > 0xffff ? 0xffff : cols;
	unsigned char p[4] = {(unsigned char)(rows >> 8), (unsigned char)rows,
			      (unsigned char)(cols >> 8), (unsigned char)cols};
	frame_put(b, FRAME_RESIZE, p, sizeof p);
}

void frame_put_signal(struct buf *b, int sig)
{
	unsigned char s = (unsigned char)sig;
	frame_put(b, FRAME_SIGNAL, &s, 1);
}

void frame_get_resize(const void *p, unsigned *rows, unsigned *cols)
{
	const unsigned char *u = p;
	*rows = (unsigned)u[0] << 8 | u[1];
	*cols = (unsigned)u[2] << 8 | u[3];
}

void frame_reader_init(struct frame_reader *r)
{
	memset(r, 0, sizeof *r);
}

void frame_reader_free(struct frame_reader *r)
{
	buf_free(&r->payload);
	memset(r, 0, sizeof *r);
}

bool frame_reader_idle(const struct frame_reader *r)
{
	return r->hlen == 0 && !r->failed;
}

/* The payload size a type must have, or -1 when any size up to the limit goes. */
static long fixed_size(int type)
{
	switch (type) {
	case FRAME_STDIN_EOF: return 0;
	case FRAME_RESIZE: return 4;
	case FRAME_SIGNAL: return 1;
	default: return -1;
	}
}

/* A complete header is in r->hdr: check it and get ready for the payload. */
static int start_frame(struct frame_reader *r, struct err *e)
{
	int type = r->hdr[0];
	size_t n = (size_t)r->hdr[1] << 24 | (size_t)r->hdr[2] << 16 | (size_t)r->hdr[3] << 8 |
		   r->hdr[4];
	r->failed = true;
	if (type > FRAME_TYPE_MAX)
		return err_set(e, ERR_INVALID, "frame type %d is not one of berth-attach/1 (0-%d)",
			       type, FRAME_TYPE_MAX);
	if (n > FRAME_MAX_PAYLOAD)
		return err_set(e, ERR_INVALID, "%s frame of %zu bytes is larger than the limit of %u "
			       "bytes", names[type], n, FRAME_MAX_PAYLOAD);
	long want = fixed_size(type);
	if (want >= 0 && n != (size_t)want)
		return err_set(e, ERR_INVALID, "%s frame of %zu bytes (it must be %ld)",
			       names[type], n, want);
	r->failed = false;
	r->type = type;
	r->need = n;
	buf_reset(&r->payload);
	return 0;
}

int frame_reader_feed(struct frame_reader *r, const void *data, size_t n, frame_fn fn, void *ud,
		      struct err *e)
{
	const unsigned char *p = data;
	if (r->failed)
		return err_set(e, ERR_INVALID, "the frame stream was already malformed");
	while (n) {
		if (r->hlen < FRAME_HEADER) {
			size_t k = FRAME_HEADER - r->hlen;
			k = k < n ? k : n;
			memcpy(r->hdr + r->hlen, p, k);
			r->hlen += k;
			p += k;
			n -= k;
			if (r->hlen < FRAME_HEADER)
				return 0;
			if (start_frame(r, e))
				return -1;
		}
		const void *body;
		size_t blen;
		if (r->payload.len == 0 && n >= r->need) {
			/* the whole payload is in this chunk: no copy */
			body = p;
			blen = r->need;
			p += r->need;
			n -= r->need;
		} else {
			if (r->payload.cap < r->need + 1) {
				/* exactly one payload, not buf's doubling: memory is one frame */
				r->payload.p = xrealloc(r->payload.p, r->need + 1);
				r->payload.cap = r->need + 1;
			}
			size_t k = r->need - r->payload.len;
			k = k < n ? k : n;
			buf_add(&r->payload, p, k);
			p += k;
			n -= k;
			if (r->payload.len < r->need)
				return 0;
			body = r->payload.p;
			blen = r->payload.len;
		}
		r->hlen = 0;
		r->need = 0;
		int rc = fn(r->type, blen ? body : "", blen, ud);
		buf_reset(&r->payload);
		if (rc > 0)
			return rc;
	}
	return 0;
}
