/* api/stream: progress streams. Bridges a reconciler waiter to an NDJSON chunked answer;
 * the change goes on if the client leaves (only the waiter is dropped). */
#include "api/internal.h"
#include <stdlib.h>
#include "util/timeutil.h"

struct op {
	struct http_req *req;
	struct rc_waiter *w;
};

static void write_event(struct http_req *r, json_t *ev)
{
	char *s = json_dumps(ev, JSON_COMPACT);
	if (!s)
		return;
	struct buf b = BUF_INIT;
	buf_adds(&b, s);
	buf_addc(&b, '\n');
	http_stream_write(r, b.p, b.len);
	buf_free(&b);
	free(s);
}

static void on_event(void *arg, json_t *ev, bool done)
{
	struct op *op = arg;
	write_event(op->req, ev);
	if (done) {
		op->w = NULL;
		struct http_req *r = op->req;
		free(op);
		http_stream_end(r);
	}
}

static void on_abort(struct http_req *r, void *arg)
{
	struct op *op = arg;
	reconciler_unwait(op->w);
	free(op);
}

/* Every progress event carries its time (docs/API.md); the API's own first events get "now",
 * written first like the reconciler's. */
static void write_stamped(struct http_req *r, json_t *ev)
{
	if (json_object_get(ev, "ts")) {
		write_event(r, ev);
		return;
	}
	char ts[40];
	json_t *s = json_object();
	json_object_set_new(s, "ts", json_string(time_format_rfc3339(time_now_us(), ts, sizeof ts)));
	json_object_update(s, ev);
	write_event(r, s);
	json_decref(s);
}

void api_stream_begin(struct ctx *c)
{
	if (c->streaming)
		return;
	c->streaming = true;
	http_stream_start(c->req, 200, "application/x-ndjson");
}

void api_stream_event(struct ctx *c, json_t *ev)
{
	api_stream_begin(c);
	write_stamped(c->req, ev);
	json_decref(ev);
}

void api_stream_finish(struct ctx *c, json_t *done)
{
	api_stream_begin(c);
	write_stamped(c->req, done);
	json_decref(done);
	http_stream_end(c->req);
}

void api_stream_wait(struct ctx *c, enum rc_wait kind, int version, json_t *first)
{
	struct op *op = xcalloc(1, sizeof *op);
	op->req = c->req;
	api_stream_begin(c);
	size_t k;
	json_t *ev;
	json_array_foreach(first, k, ev)
		write_stamped(c->req, ev);
	json_decref(first);
	http_req_on_abort(c->req, on_abort, op);
	op->w = reconciler_wait(c->api->rc, c->env, c->app, kind, version, on_event, op);
}
