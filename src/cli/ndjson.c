/* cli/ndjson: NDJSON line splitting for streamed responses (see ndjson.h). Whole lines
 * inside one chunk go to the callback straight from the chunk; only a line split across
 * chunks is copied. */
#include "cli/ndjson.h"
#include <string.h>

void ndjson_init(struct ndjson *s, size_t max_line)
{
	s->pending = (struct buf)BUF_INIT;
	s->max_line = max_line;
}

static int emit(const char *p, size_t n, ndjson_line_fn fn, void *ud)
{
	if (n && p[n - 1] == '\r')
		n--;
	if (!n)
		return 0;
	return fn(p, n, ud);
}

static int too_long(const struct ndjson *s, struct err *e)
{
	return err_set(e, ERR_TOOBIG, "the server sent a line longer than %zu bytes", s->max_line);
}

int ndjson_feed(struct ndjson *s, const char *data, size_t n, ndjson_line_fn fn, void *ud,
		struct err *e)
{
	while (n) {
		const char *nl = memchr(data, '\n', n);
		if (!nl) {
			if (s->pending.len + n > s->max_line)
				return too_long(s, e);
			buf_add(&s->pending, data, n);
			return 0;
		}
		size_t take = (size_t)(nl - data);
		int rc;
		if (s->pending.len) {
			if (s->pending.len + take > s->max_line)
				return too_long(s, e);
			buf_add(&s->pending, data, take);
			rc = emit(s->pending.p, s->pending.len, fn, ud);
			buf_reset(&s->pending);
		} else {
			if (take > s->max_line)
				return too_long(s, e);
			rc = emit(data, take, fn, ud);
		}
		if (rc)
			return rc;
		data = nl + 1;
		n -= take + 1;
	}
	return 0;
}

int ndjson_finish(struct ndjson *s, ndjson_line_fn fn, void *ud)
{
	if (!s->pending.len)
		return 0;
	int rc = emit(s->pending.p, s->pending.len, fn, ud);
	buf_reset(&s->pending);
	return rc;
}

void ndjson_free(struct ndjson *s)
{
	buf_free(&s->pending);
}
