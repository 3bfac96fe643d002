/* check: an exec health check through any driver (see driver.h): the command runs beside the
 * instance (in its cgroup, or in its container through the engine's exec), with its
 * environment; healthy when it exits 0 before the deadline. The first bytes of its output go
 * into the detail of a failure. The check owns its timer and frees itself once both the timer
 * is closed and the command has ended (the driver's on_exit always comes, even after a kill). */
#include "driver/driver.h"
#include "util/buf.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_OUTPUT_MAX 512

struct driver_check {
	struct driver *drv;
	struct driver_proc *proc;    /* the command, until it ends */
	uv_timer_t timer;
	driver_check_fn fn;
	void *arg;
	int64_t timeout_ms;
	bool done, cancelled, timer_open, timed_out;
	struct buf out;
};

static void maybe_free(struct driver_check *c)
{
	if (c->proc || c->timer_open)
		return;
	buf_free(&c->out);
	free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct driver_check *c = h->data;
	c->timer_open = false;
	maybe_free(c);
}

static void finish(struct driver_check *c, int ok, const char *detail)
{
	if (c->done)
		return;
	c->done = true;
	uv_timer_stop(&c->timer);
	if (!c->cancelled && c->fn)
		c->fn(c->arg, ok, detail);
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void on_output(void *arg, int stream, int64_t ts, const char *data, size_t n)
{
	struct driver_check *c = arg;
	size_t room = c->out.len < CHECK_OUTPUT_MAX ? CHECK_OUTPUT_MAX - c->out.len : 0;
	buf_add(&c->out, data, n < room ? n : room);
}

static void on_exit_cb(void *arg, const struct driver_exit *x)
{
	struct driver_check *c = arg;
	c->proc = NULL;
	char detail[CHECK_OUTPUT_MAX + 300];
	if (c->timed_out)
		snprintf(detail, sizeof detail, "exec check timed out after %lld ms", (long long)c->timeout_ms);
	else if (!x->started)
		snprintf(detail, sizeof detail, "exec check: %s", x->detail);
	else if (x->signal)
		snprintf(detail, sizeof detail, "exec check killed by signal %d", x->signal);
	else
		snprintf(detail, sizeof detail, "exec check: exit status %lld", (long long)x->status);
	if (c->out.len && (x->status || x->signal)) {
		size_t len = strlen(detail);
		snprintf(detail + len, sizeof detail - len, ": %.*s", (int)c->out.len, c->out.p);
		for (char *p = detail + len; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
	}
	finish(c, x->started && !x->signal && x->status == 0 && !c->timed_out, detail);
	maybe_free(c);
}

static void on_started(void *arg)
{
}

static void on_start_failed(uv_timer_t *t)
{
	struct driver_check *c = t->data;
	finish(c, 0, buf_str(&c->out));
}

static void on_timeout(uv_timer_t *t)
{
	struct driver_check *c = t->data;
	c->timed_out = true;
	if (c->proc)
		c->drv->signal(c->proc, SIGKILL);
}

struct driver_check *driver_check_exec(uv_loop_t *loop, struct driver *d, struct driver_proc *target,
				       const struct driver_spec *base, const char *command,
				       int64_t timeout_ms, driver_check_fn fn, void *arg)
{
	struct driver_check *c = xcalloc(1, sizeof *c);
	c->drv = d;
	c->fn = fn;
	c->arg = arg;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	c->timer_open = true;
	struct driver_spec spec = *base;
	spec.command = command ? command : "false";
	spec.beside = target;
	spec.stdin_mode = DRIVER_STDIN_NULL;
	spec.profile = NULL;
	struct driver_events ev = {.on_started = on_started, .on_output = on_output, .on_exit = on_exit_cb, .arg = c};
	struct err e = ERR_INIT;
	if (d->start(d, &spec, &ev, &c->proc, &e) < 0) {
		c->proc = NULL;
		char detail[300];
		snprintf(detail, sizeof detail, "exec check: %s", e.msg);
		/* fn must not run inside this call: deliver the failure from the timer. */
		c->timed_out = false;
		buf_adds(&c->out, detail);
		uv_timer_start(&c->timer, on_start_failed, 0, 0);
		return c;
	}
	uv_timer_start(&c->timer, on_timeout, (uint64_t)c->timeout_ms, 0);
	return c;
}

void driver_check_cancel(struct driver_check *c)
{
	if (!c)
		return;
	c->cancelled = true;
	if (c->proc)
		c->drv->signal(c->proc, SIGKILL);
	finish(c, 0, NULL);
	maybe_free(c);
}
