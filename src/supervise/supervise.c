/* supervise: the life of every instance: start through the driver, capture output into the
 * logs, probe health, restart with backoff, stop with a grace period (see supervise.h).
 * Owns struct instance; the reconciler only sees instance_status() and the event callback.
 * An instance is freed only after its libuv handles have closed, so a callback may call
 * instance_stop() on the instance it is being told about. */
#include "supervise/supervise.h"
#include "supervise/health.h"
#include "driver/driver.h"
#include "logs/logs.h"
#include "endpoints/endpoints.h"
#include "util/buf.h"
#include "util/envp.h"
#include "util/log.h"
#include "util/timeutil.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RING_BYTES 8192          /* recent output kept for failure reports */
#define HEAD_BYTES 2048          /* the first lines of a run, for failure reports */
#define HEAD_LINES 5
#define DRAIN_POLL_MS 2
#define STABLE_MS 10000          /* up this long: the crash counter starts again */
#define FIRST_PROBE_MS 5
#define MAX_STARTUP_PROBE_MS 500
#define FAST_PROBE_CAP_MS 25
#define FAST_PROBE_BURST_MS 100
#define FAST_PROBE_WINDOW_MS 3000

struct supervisor {
	uv_loop_t *loop;
	struct drivers *drivers;
	struct logs *logs;
	struct endpoints *eps;
	char *owner_tag;
	supervise_event_fn fn;
	void *arg;
	struct instance *head;       /* live instances, most recent first */
	uint64_t seq;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
	json_t *notes_out;           /* supervisor_handover: notes for the successor */
	json_t *notes_in;            /* the predecessor's (supervisor_predecessor) */
};

struct instance {
	struct supervisor *sv;
	struct instance *next;
	struct instance_status st;
	/* spec, owned copies */
	char *env, *app, *process, *command, *cwd, *profile_name, *image, *pull;
	char **envp;                 /* full environment for the driver */
	struct driver *drv;
	struct driver_volume *volumes;
	size_t nvolumes;
	struct health_spec health;
	struct profile profile;
	bool has_profile, restart;
	int64_t grace_ms;
	/* runtime */
	struct driver_proc *proc;
	bool proc_started;           /* the driver said it runs (an asynchronous start finished) */
	struct log_sink *sink;
	struct health_probe *probe;
	struct driver_check *check;  /* an exec health check in flight */
	uv_timer_t timer;            /* backoff, startup settle, health schedule */
	uv_timer_t kill_timer;       /* stop grace; also polls the drain before SIGTERM */
	struct endpoint *ep;         /* in the endpoints table while serving (borrowed) */
	struct endpoint *draining;   /* taken out, waiting for in-flight requests (own ref) */
	int64_t drain_deadline_ms;
	int handles;
	int crashes;                 /* consecutive crashes, for backoff */
	int64_t stable_for;          /* started_us of the run a pending crash-loop recovery waits on */
	int probe_fails;
	int64_t probe_delay_ms;
	bool freed_pending, removed;
	char ring[RING_BYTES];
	size_t ring_len, ring_pos;
	char head[HEAD_BYTES];       /* the first lines of the current run */
	size_t head_len;
	int head_lines;
	int64_t lines_seen;          /* newlines of the current run */
	char *found_key;             /* adopted: the driver key it was found under (until a restart) */
	bool adopting;               /* supervisor_adopt is attaching it */
};

static void schedule_probe(struct instance *i, int64_t delay);
static void spawn_instance(struct instance *i);
static void finish_stop(struct instance *i);
static void on_kill_timer(uv_timer_t *t);

const char *inst_state_name(enum inst_state st)
{
	switch (st) {
	case INST_STARTING: return "starting";
	case INST_RUNNING: return "running";
	case INST_UNHEALTHY: return "unhealthy";
	case INST_BACKOFF: return "backoff";
	case INST_STOPPING: return "stopping";
	case INST_STOPPED: return "stopped";
	}
	return "unknown";
}

int64_t supervise_backoff_ms(int n)
{
	if (n < 1)
		n = 1;
	int64_t ms = 100;
	for (int k = 1; k < n && ms < 30000; k++)
		ms *= 2;
	return ms > 30000 ? 30000 : ms;
}

static void emit(struct instance *i, enum inst_event ev, const char *detail)
{
	if (i->sv->fn)
		i->sv->fn(i->sv->arg, i, ev, detail);
}

/* One of berth's own lines about the instance in its log ("sys"), beside the app's, as
 * Heroku's "heroku[web.1]: State changed from starting to up". */
static void sys_line(struct instance *i, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sys_line(struct instance *i, const char *fmt, ...)
{
	if (!i->sink)
		return;
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s: ", i->st.id);
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	buf_addc(&b, '\n');
	logs_sink_write(i->sink, LOGS_STREAM_BERTH, b.p, b.len);
	buf_free(&b);
}

/* ---- endpoints ---- */

static void publish_endpoint(struct instance *i)
{
	if (i->sv->eps && i->st.port && !i->ep)
		i->ep = endpoints_put(i->sv->eps, i->env, i->app, i->process, i->st.id, i->st.slot, i->st.release,
				      i->st.port);
}

/* Take the instance out of the table; returns the endpoint (own ref) or NULL. */
static struct endpoint *withdraw_endpoint(struct instance *i)
{
	if (!i->ep || !i->sv->eps)
		return NULL;
	struct endpoint *e = i->ep;
	i->ep = NULL;
	return endpoints_withdraw(i->sv->eps, e);
}

static void drop_endpoint(struct instance *i)
{
	endpoint_unref(withdraw_endpoint(i));
}

/* ---- memory ---- */

static void free_instance(struct instance *i)
{
	free(i->env);
	free(i->app);
	free(i->process);
	free(i->command);
	free(i->cwd);
	free(i->profile_name);
	free(i->image);
	free(i->pull);
	for (size_t k = 0; k < i->nvolumes; k++) {
		free((char *)i->volumes[k].source);
		free((char *)i->volumes[k].target);
	}
	free(i->volumes);
	free(i->profile.name);
	for (char **p = i->envp; p && *p; p++)
		free(*p);
	free(i->envp);
	free(i->health.path);
	free(i->health.command);
	free(i->found_key);
	free(i);
}

static void on_inst_handle_closed(uv_handle_t *h)
{
	struct instance *i = h->data;
	if (--i->handles == 0)
		free_instance(i);
}

static void unlink_instance(struct instance *i)
{
	if (i->removed)
		return;
	i->removed = true;
	for (struct instance **pp = &i->sv->head; *pp; pp = &(*pp)->next) {
		if (*pp == i) {
			*pp = i->next;
			break;
		}
	}
}

/* ---- ports ---- */

static bool port_taken(struct supervisor *s, int port)
{
	for (struct instance *i = s->head; i; i = i->next)
		if (i->st.port == port)
			return true;
	return false;
}

/* Ask the kernel for a free loopback port, skipping ports other instances hold. */
static int alloc_port(struct supervisor *s, struct err *e)
{
	for (int tries = 0; tries < 50; tries++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return err_errno(e, errno, "allocate a port");
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t len = sizeof a;
		if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
			close(fd);
			return err_errno(e, errno, "allocate a port");
		}
		close(fd);
		int port = ntohs(a.sin_port);
		if (!port_taken(s, port))
			return port;
	}
	return err_set(e, ERR_INTERNAL, "allocate a port: no free port found");
}

/* ---- output ---- */

static void ring_add(struct instance *i, const char *d, size_t n)
{
	if (n >= RING_BYTES) {
		d += n - RING_BYTES;
		n = RING_BYTES;
	}
	for (size_t k = 0; k < n; k++) {
		i->ring[i->ring_pos] = d[k];
		i->ring_pos = (i->ring_pos + 1) % RING_BYTES;
	}
	i->ring_len = i->ring_len + n > RING_BYTES ? RING_BYTES : i->ring_len + n;
}

static void head_add(struct instance *i, const char *d, size_t n)
{
	for (size_t k = 0; k < n && i->head_lines < HEAD_LINES && i->head_len < HEAD_BYTES; k++) {
		i->head[i->head_len++] = d[k];
		if (d[k] == '\n')
			i->head_lines++;
	}
}

static void on_output(void *arg, int stream, int64_t ts_us, const char *data, size_t n)
{
	struct instance *i = arg;
	if (i->sink)
		logs_sink_write_at(i->sink, stream, ts_us, data, n);
	ring_add(i, data, n);
	head_add(i, data, n);
	for (const char *p = data; (p = memchr(p, '\n', n - (size_t)(p - data))); p++)
		i->lines_seen++;
}

json_t *instance_first_output(const struct instance *i, int n)
{
	json_t *lines = json_array();
	const char *p = i->head, *end = i->head + i->head_len;
	while (p < end && (int)json_array_size(lines) < n) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t len = (size_t)(le - p);
		if (len && p[len - 1] == '\r')
			len--;
		json_array_append_new(lines, json_stringn_nocheck(p, len));
		p = le + 1;
	}
	return lines;
}

json_t *instance_failure_output(const struct instance *i)
{
	if (i->lines_seen <= HEAD_LINES + 10)
		return instance_recent_output(i, HEAD_LINES + 10);
	json_t *all = instance_first_output(i, HEAD_LINES);
	json_array_append_new(all, json_string("..."));
	json_t *tail = instance_recent_output(i, 10);
	json_array_extend(all, tail);
	json_decref(tail);
	return all;
}

json_t *instance_recent_output(const struct instance *i, int n)
{
	struct buf b = BUF_INIT;
	size_t start = (i->ring_pos + RING_BYTES - i->ring_len) % RING_BYTES;
	for (size_t k = 0; k < i->ring_len; k++)
		buf_addc(&b, i->ring[(start + k) % RING_BYTES]);
	json_t *lines = json_array();
	/* Take the last n complete or partial lines. */
	const char *p = buf_str(&b), *end = p + b.len;
	while (end > p && end[-1] == '\n')
		end--;
	const char *cut = end;
	int count = 0;
	while (cut > p && count < n) {
		const char *q = cut;
		while (q > p && q[-1] != '\n')
			q--;
		count++;
		cut = q > p ? q - 1 : q;
		if (q == p)
			break;
	}
	const char *s = cut == p ? p : cut + 1;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *le = nl ? nl : end;
		size_t len = (size_t)(le - s);
		if (len && s[len - 1] == '\r')
			len--;
		char *line = xstrndup(s, len);
		json_array_append_new(lines, json_stringn_nocheck(line, len));
		free(line);
		s = le + 1;
	}
	buf_free(&b);
	return lines;
}

/* ---- health ---- */

/* A crash-looping instance is "recovered" once it has stayed up STABLE_MS, not when it
 * passes a health check again: an app that crashes a while after each start would otherwise
 * raise a crash-loop alert followed by a "recovered" one after every restart. */
static void on_stable(uv_timer_t *t)
{
	struct instance *i = t->data;
	if (i->st.state != INST_RUNNING || !i->st.healthy || i->st.started_us != i->stable_for ||
	    i->crashes < SUPERVISE_CRASH_LOOP)
		return;
	i->crashes = 0;
	i->st.crashes = 0;
	emit(i, IEV_HEALTHY, "recovered");
}

static void arm_stable(struct instance *i)
{
	int64_t up_ms = (time_now_us() - i->st.started_us) / 1000;
	int64_t left = STABLE_MS - up_ms;
	i->stable_for = i->st.started_us;
	/* kill_timer is idle while the instance runs; a stop takes it over (and cancels this). */
	uv_timer_start(&i->kill_timer, on_stable, (uint64_t)(left > 0 ? left : 0), 0);
}

static void set_healthy(struct instance *i)
{
	i->probe_fails = 0;
	if (i->st.healthy)
		return;
	bool recovered = i->st.state == INST_UNHEALTHY;
	bool from_loop = !recovered && i->crashes >= SUPERVISE_CRASH_LOOP;
	i->st.healthy = true;
	i->st.state = INST_RUNNING;
	if (!i->st.ever_healthy) {
		i->st.ever_healthy = true;
		i->st.healthy_us = time_now_us();
	}
	i->st.last_error[0] = 0;
	publish_endpoint(i);
	if (recovered || from_loop)
		sys_line(i, "healthy again");
	else
		sys_line(i, "healthy after %lld ms", (long long)((time_now_us() - i->st.started_us) / 1000));
	emit(i, IEV_HEALTHY, recovered ? "recovered" : NULL);
	if (from_loop && i->st.state == INST_RUNNING)
		arm_stable(i);
}

static void on_probe_done(void *arg, int ok, const char *detail)
{
	struct instance *i = arg;
	i->probe = NULL;
	if (i->st.state == INST_STOPPING || i->st.state == INST_STOPPED || i->st.state == INST_BACKOFF)
		return;
	if (ok) {
		set_healthy(i);
		if (i->st.state == INST_STOPPED)
			return;
		schedule_probe(i, i->health.interval_ms);
		return;
	}
	snprintf(i->st.last_error, sizeof i->st.last_error, "%s", detail ? detail : "health check failed");
	if (!i->st.ever_healthy && i->st.state == INST_STARTING) {
		/* Still starting: poll fast, backing off gently. */
		/* Deploy latency is decided here: probe every 5 ms for the first 100 ms (a loopback
		 * connect costs microseconds), every 25 ms up to 3 s, then back off to 500 ms. */
		int64_t up_ms = (time_now_us() - i->st.started_us) / 1000;
		int64_t d = up_ms < FAST_PROBE_BURST_MS ? FIRST_PROBE_MS : i->probe_delay_ms * 2;
		int64_t cap = up_ms < FAST_PROBE_WINDOW_MS ? FAST_PROBE_CAP_MS : MAX_STARTUP_PROBE_MS;
		if (d > cap)
			d = cap;
		if (d > i->health.interval_ms)
			d = i->health.interval_ms;
		i->probe_delay_ms = d;
		schedule_probe(i, d);
		return;
	}
	i->probe_fails++;
	if (i->probe_fails >= i->health.retries && i->st.healthy) {
		i->st.healthy = false;
		i->st.state = INST_UNHEALTHY;
		drop_endpoint(i);
		sys_line(i, "unhealthy: %s (taken out of the router)", i->st.last_error);
		emit(i, IEV_UNHEALTHY, i->st.last_error);
		if (i->st.state == INST_STOPPING || i->st.state == INST_STOPPED)
			return;
	}
	if (i->probe_fails >= 2 * i->health.retries && i->proc) {
		/* Failing for twice the retries: restart it, like a crash. */
		log_warn("%s/%s %s: health checks failing (%s); restarting", i->env, i->app, i->st.id, i->st.last_error);
		i->drv->signal(i->proc, SIGKILL);
		return;
	}
	schedule_probe(i, i->health.interval_ms);
}

static void on_check_done(void *arg, int ok, const char *detail)
{
	struct instance *i = arg;
	i->check = NULL;
	on_probe_done(arg, ok, detail);
}

static void cancel_probe(struct instance *i)
{
	if (i->probe) {
		health_probe_cancel(i->probe);
		i->probe = NULL;
	}
	if (i->check) {
		driver_check_cancel(i->check);
		i->check = NULL;
	}
}

/* The spec an instance's processes are started with (driver.start), also the base of an exec
 * health check beside it. */
static struct driver_spec driver_spec_of(struct instance *i, char *key, size_t keylen)
{
	snprintf(key, keylen, "%s.%d", i->st.key, i->st.restarts);
	return (struct driver_spec){
		.env = i->env, .app = i->app, .process = i->process, .name = i->st.id, .key = key,
		.owner = i->sv->owner_tag, .release = i->st.release, .image = i->image, .command = i->command,
		.cwd = i->cwd, .vars = i->envp, .profile = i->has_profile ? &i->profile : NULL,
		.volumes = i->volumes, .nvolumes = i->nvolumes, .port = i->st.port, .pull = i->pull,
		.slot = i->st.slot, .gen = i->st.gen,
	};
}

static void on_timer_probe(uv_timer_t *t)
{
	struct instance *i = t->data;
	if (!i->proc || !i->proc_started)
		return;
	if (i->health.kind == HEALTH_NONE) {
		set_healthy(i);
		return;
	}
	if (i->health.kind == HEALTH_EXEC) {
		char key[200];
		struct driver_spec base = driver_spec_of(i, key, sizeof key);
		i->check = driver_check_exec(i->sv->loop, i->drv, i->proc, &base, i->health.command,
					     i->health.timeout_ms, on_check_done, i);
		if (!i->check)
			set_healthy(i);
		return;
	}
	char host[64];
	int port = 0;
	if (i->drv->address(i->proc, host, sizeof host, &port) < 0) {
		snprintf(host, sizeof host, "127.0.0.1");
		port = i->st.port;
	}
	i->probe = health_probe_start(i->sv->loop, &i->health, host, port, i->cwd, i->envp, on_probe_done, i);
	if (!i->probe)
		set_healthy(i);
}

static void schedule_probe(struct instance *i, int64_t delay)
{
	uv_timer_stop(&i->timer);
	uv_timer_start(&i->timer, on_timer_probe, (uint64_t)(delay < 0 ? 0 : delay), 0);
}

/* ---- process lifecycle ---- */

/* The documented forms (docs/API.md, supervise.h): "exit status 1", "killed by signal 9". */
static void describe_exit(char *out, size_t n, int64_t status, int sig)
{
	if (sig)
		snprintf(out, n, "killed by signal %d", sig);
	else
		snprintf(out, n, "exit status %lld", (long long)status);
}

static void on_timer_restart(uv_timer_t *t)
{
	struct instance *i = t->data;
	if (i->st.state == INST_BACKOFF)
		spawn_instance(i);
}

static void on_timer_restart(uv_timer_t *t);

/* It could not be started. Reported (a rollout fails on it); an instance that restarts is
 * then tried again with the crash backoff, so that an engine that is down or a cgroup that
 * cannot be made does not turn into a hot loop of attempts. */
static void fail_start(struct instance *i, const char *why)
{
	snprintf(i->st.last_error, sizeof i->st.last_error, "%s", why);
	snprintf(i->st.last_exit, sizeof i->st.last_exit, "could not start");
	i->crashes++;
	i->st.crashes = i->crashes;
	int64_t wait = supervise_backoff_ms(i->crashes);
	if (i->crashes <= 1 || i->crashes % 10 == 0)
		log_error("%s/%s %s: %s", i->env, i->app, i->st.id, why);
	if (i->restart) {
		sys_line(i, "could not start: %s; trying again in %lld ms", why, (long long)wait);
		i->st.state = INST_BACKOFF;
		i->st.next_restart_us = time_now_us() + wait * 1000;
		uv_timer_start(&i->timer, on_timer_restart, (uint64_t)wait, 0);
	} else {
		sys_line(i, "could not start: %s", why);
	}
	emit(i, IEV_FAILED, why);
	if (!i->restart && i->st.state != INST_STOPPED)
		finish_stop(i);
}

static void on_proc_exit(void *arg, const struct driver_exit *x)
{
	struct instance *i = arg;
	bool was_started = i->proc_started;
	i->proc = NULL;
	i->proc_started = false;
	drop_endpoint(i);
	cancel_probe(i);
	uv_timer_stop(&i->timer);
	i->st.ident[0] = 0;
	i->st.pid = 0;
	if (!x->started && i->st.state != INST_STOPPING && !i->st.restarts && !was_started) {
		/* The first start never got going (no such image, the engine refused): that is a
		 * failure to report, not a crash to retry. */
		fail_start(i, x->detail[0] ? x->detail : "could not start");
		return;
	}
	if (!x->started || x->detail[0])
		snprintf(i->st.last_exit, sizeof i->st.last_exit, "%s", x->detail[0] ? x->detail : "could not start");
	else
		describe_exit(i->st.last_exit, sizeof i->st.last_exit, x->status, x->signal);
	if (i->st.state == INST_STOPPING) {
		sys_line(i, "exited: %s", i->st.last_exit);
		finish_stop(i);
		return;
	}
	bool was_stable = i->st.started_us && time_now_us() - i->st.started_us >= STABLE_MS * 1000LL;
	i->crashes = was_stable ? 1 : i->crashes + 1;
	i->st.crashes = i->crashes;
	i->st.healthy = false;
	i->st.restarts++;
	if (i->restart) {
		int64_t wait = supervise_backoff_ms(i->crashes);
		i->st.state = INST_BACKOFF;
		i->st.next_restart_us = time_now_us() + wait * 1000;
		uv_timer_start(&i->timer, on_timer_restart, (uint64_t)wait, 0);
		sys_line(i, "crashed: %s; restarting in %lld ms%s", i->st.last_exit, (long long)wait,
			 i->crashes >= SUPERVISE_CRASH_LOOP ? " (crash loop)" : "");
	} else {
		sys_line(i, "exited: %s", i->st.last_exit);
	}
	log_info("%s/%s %s (v%d) exited: %s", i->env, i->app, i->st.id, i->st.release, i->st.last_exit);
	emit(i, IEV_EXITED, i->st.last_exit);
	if (!i->restart && i->st.state != INST_STOPPED)
		finish_stop(i);
}

/* The driver says the instance runs (at once, or when its asynchronous start finished). */
static void on_proc_started(void *arg)
{
	struct instance *i = arg;
	if (!i->proc || i->proc_started)
		return;
	i->proc_started = true;
	i->st.started_us = time_now_us();
	snprintf(i->st.ident, sizeof i->st.ident, "%s", i->drv->ident(i->proc));
	i->st.pid = 0;
	json_t *d = json_object();
	i->drv->describe(i->proc, d);
	if (json_is_integer(json_object_get(d, "pid")))
		i->st.pid = (int)json_integer_value(json_object_get(d, "pid"));
	json_decref(d);
	if (i->st.state == INST_STOPPING) {
		i->drv->signal(i->proc, SIGTERM);   /* told to stop while it was starting */
		return;
	}
	const char *what = i->image ? i->image : i->command;
	if (i->adopting)
		;   /* it runs already: supervisor_adopt says so */
	else if (i->st.port)
		sys_line(i, "starting (v%d, %s, port %d): %s", i->st.release, i->st.ident, i->st.port, what);
	else
		sys_line(i, "starting (v%d, %s): %s", i->st.release, i->st.ident, what);
	emit(i, IEV_STARTED, NULL);
	if (i->st.state != INST_STARTING)
		return;
	if (i->health.kind == HEALTH_NONE) {
		schedule_probe(i, i->health.startup_ms);
	} else {
		i->probe_delay_ms = FIRST_PROBE_MS;
		schedule_probe(i, FIRST_PROBE_MS);
	}
}

static void on_proc_progress(void *arg, const char *text)
{
	sys_line(arg, "%s", text);
}

static const struct driver_events inst_events = {
	.on_started = on_proc_started, .on_progress = on_proc_progress, .on_output = on_output,
	.on_exit = on_proc_exit,
};

static void spawn_instance(struct instance *i)
{
	struct err e = ERR_INIT;
	char key[200];
	struct driver_spec ds = driver_spec_of(i, key, sizeof key);
	struct driver_events ev = inst_events;
	ev.arg = i;
	i->st.state = INST_STARTING;
	i->st.healthy = false;
	i->probe_fails = 0;
	i->head_len = 0;
	i->head_lines = 0;
	i->lines_seen = 0;
	i->proc_started = false;
	i->st.next_restart_us = 0;
	free(i->found_key);
	i->found_key = NULL;
	int r = i->drv->start(i->drv, &ds, &ev, &i->proc, &e);
	if (r < 0) {
		i->proc = NULL;
		fail_start(i, e.msg);
		return;
	}
	if (r == 1)
		on_proc_started(i);
	else
		sys_line(i, "starting (v%d): %s", i->st.release, i->image ? i->image : i->command);
}

/* ---- environment ---- */

void instance_exec_info(const struct instance *i, struct driver **drv, struct driver_proc **proc, const char **cwd,
			char *const **envp, const char **image)
{
	*drv = i->drv;
	*proc = i->proc_started ? i->proc : NULL;
	*cwd = i->cwd;
	*envp = i->envp;
	*image = i->image;
}

/* A clean environment (util/envp.h), then the instance's own variables. */
static char **build_env(struct instance *i, char *const *vars)
{
	struct envp e = {0};
	envp_base(&e);
	envp_put_all(&e, vars);
	char port[16];
	if (i->st.port) {
		snprintf(port, sizeof port, "%d", i->st.port);
		envp_put(&e, "PORT", port);
	}
	envp_put(&e, "BERTH_INSTANCE", i->st.id);
	envp_put(&e, "BERTH_OWNER", i->sv->owner_tag);
	return envp_detach(&e);
}

/* ---- public ---- */

struct supervisor *supervisor_new(uv_loop_t *loop, struct drivers *drivers, struct logs *logs,
				  struct endpoints *eps, const char *owner_tag, supervise_event_fn fn,
				  void *arg)
{
	struct supervisor *s = xcalloc(1, sizeof *s);
	s->eps = eps;
	s->loop = loop;
	s->drivers = drivers;
	s->seq = (uint64_t)time_now_us();   /* keys stay unique across server restarts */
	s->logs = logs;
	s->owner_tag = xstrdup(owner_tag);
	s->fn = fn;
	s->arg = arg;
	return s;
}

/* A new instance from spec, not yet started: everything but the driver call. port: the one
 * an adopted instance already listens on (0: allocate one when spec wants a port). */
static struct instance *instance_new(struct supervisor *s, const struct instance_spec *spec, int port, struct err *e)
{
	const char *dname = spec->driver ? spec->driver : "process";
	struct driver *drv = drivers_get(s->drivers, dname);
	if (!drv) {
		if (!strcmp(dname, "docker"))
			err_set(e, ERR_UNAVAILABLE, "%s runs an image, and this server has no container engine "
				"(start it with --docker-host unix:///PATH, or set DOCKER_HOST)", spec->process);
		else
			err_set(e, ERR_UNAVAILABLE, "no driver named %s", dname);
		return NULL;
	}
	struct instance *i = xcalloc(1, sizeof *i);
	i->sv = s;
	i->drv = drv;
	i->env = xstrdup(spec->env);
	i->app = xstrdup(spec->app);
	i->process = xstrdup(spec->process);
	i->command = spec->command ? xstrdup(spec->command) : NULL;
	i->cwd = spec->cwd ? xstrdup(spec->cwd) : NULL;
	i->image = spec->image ? xstrdup(spec->image) : NULL;
	i->pull = spec->pull ? xstrdup(spec->pull) : NULL;
	if (spec->nvolumes) {
		i->volumes = xcalloc(spec->nvolumes, sizeof *i->volumes);
		for (size_t k = 0; k < spec->nvolumes; k++) {
			i->volumes[k].source = xstrdup(spec->volumes[k].source);
			i->volumes[k].target = xstrdup(spec->volumes[k].target);
		}
		i->nvolumes = spec->nvolumes;
	}
	i->health = spec->health;
	i->health.path = spec->health.path ? xstrdup(spec->health.path) : NULL;
	i->health.command = spec->health.command ? xstrdup(spec->health.command) : NULL;
	if (i->health.interval_ms <= 0)
		i->health.interval_ms = 2000;
	if (i->health.timeout_ms <= 0)
		i->health.timeout_ms = 1000;
	if (i->health.retries <= 0)
		i->health.retries = 3;
	i->restart = spec->restart;
	i->grace_ms = spec->stop_grace_ms > 0 ? spec->stop_grace_ms : 10000;
	if (spec->profile) {
		i->has_profile = true;
		i->profile = *spec->profile;
		i->profile.name = xstrdup(spec->profile->name);
	}
	i->st.env = i->env;
	i->st.app = i->app;
	i->st.process = i->process;
	i->st.slot = spec->slot;
	i->st.release = spec->release;
	i->st.gen = spec->gen;
	i->st.profile = i->has_profile ? i->profile.name : NULL;
	snprintf(i->st.id, sizeof i->st.id, "%s.%d", spec->process, spec->slot);
	snprintf(i->st.key, sizeof i->st.key, "%s.%s.%s.%d.%llx", spec->env, spec->app, spec->process,
		 spec->slot, (unsigned long long)++s->seq);
	if (port) {
		i->st.port = port;
	} else if (spec->port) {
		int p = alloc_port(s, e);
		if (p < 0) {
			free_instance(i);
			return NULL;
		}
		i->st.port = p;
	}
	i->sink = logs_sink_open(s->logs, spec->env, spec->app, spec->process, spec->slot, spec->release, e);
	if (!i->sink) {
		free_instance(i);
		return NULL;
	}
	i->envp = build_env(i, spec->env_vars);
	uv_timer_init(s->loop, &i->timer);
	uv_timer_init(s->loop, &i->kill_timer);
	i->timer.data = i->kill_timer.data = i;
	i->handles = 2;
	i->next = s->head;
	s->head = i;
	return i;
}

struct instance *supervisor_start(struct supervisor *s, const struct instance_spec *spec, struct err *e)
{
	struct instance *i = instance_new(s, spec, 0, e);
	if (i)
		spawn_instance(i);
	return i;
}

/* The predecessor's note about the instance found under key (borrowed), or NULL. */
static json_t *predecessor_note(struct supervisor *s, const char *key)
{
	size_t k;
	json_t *n;
	json_array_foreach(s->notes_in, k, n) {
		const char *nk = json_string_value(json_object_get(n, "key"));
		if (key && nk && !strcmp(nk, key))
			return n;
	}
	return NULL;
}

struct instance *supervisor_adopt(struct supervisor *s, const struct instance_spec *spec,
				  const struct driver_found *f, struct err *e)
{
	struct instance *i = instance_new(s, spec, f->port, e);
	if (!i)
		return NULL;
	json_t *note = predecessor_note(s, f->key);
	if (note) {
		/* an in-place upgrade: the same instance, its history goes on */
		i->st.restarts = (int)json_integer_value(json_object_get(note, "restarts"));
		i->crashes = i->st.crashes = (int)json_integer_value(json_object_get(note, "crashes"));
	}
	i->found_key = f->key ? xstrdup(f->key) : NULL;
	char key[200];
	struct driver_spec ds = driver_spec_of(i, key, sizeof key);
	struct driver_events ev = inst_events;
	ev.arg = i;
	i->st.state = INST_STARTING;
	if (i->drv->attach(i->drv, f, &ds, &ev, &i->proc, e) < 0) {
		i->proc = NULL;
		sys_line(i, "could not adopt %s: %s", f->id, e->msg);
		finish_stop(i);
		return NULL;
	}
	if (note)
		sys_line(i, "%s: taken over by the upgraded server", f->id);
	else
		sys_line(i, "adopted %s from the previous server", f->id);
	i->adopting = true;
	on_proc_started(i);
	i->adopting = false;
	if (f->started_us)
		i->st.started_us = f->started_us;
	if (note && json_is_true(json_object_get(note, "ever_healthy")) && i->st.state == INST_STARTING) {
		json_t *hu = json_object_get(note, "healthy_us");
		i->st.ever_healthy = true;
		i->st.healthy_us = json_is_integer(hu) ? json_integer_value(hu) : time_now_us();
		if (json_is_true(json_object_get(note, "healthy"))) {
			/* It served until a moment ago: serve it at once (the router and DNS start only
			 * after adoption); the first health check, due now, confirms it. */
			i->st.healthy = true;
			i->st.state = INST_RUNNING;
			publish_endpoint(i);
			emit(i, IEV_HEALTHY, NULL);
		} else {
			i->st.state = INST_UNHEALTHY;   /* failing checks go on counting towards a restart */
		}
	}
	return i;
}

void supervisor_predecessor(struct supervisor *s, json_t *notes)
{
	json_decref(s->notes_in);
	s->notes_in = json_incref(notes);
}

static void on_kill_timer(uv_timer_t *t)
{
	struct instance *i = t->data;
	if (i->proc) {
		log_warn("%s/%s %s did not stop within %lld ms; sending SIGKILL", i->env, i->app, i->st.id,
			 (long long)i->grace_ms);
		i->drv->signal(i->proc, SIGKILL);
	}
}

static void end_drain(struct instance *i)
{
	endpoint_unref(i->draining);
	i->draining = NULL;
}

static void send_term(struct instance *i)
{
	end_drain(i);
	uv_timer_stop(&i->kill_timer);
	if (!i->proc)
		return;
	i->drv->signal(i->proc, SIGTERM);
	uv_timer_start(&i->kill_timer, on_kill_timer, (uint64_t)i->grace_ms, 0);
}

static void on_drain_poll(uv_timer_t *t)
{
	struct instance *i = t->data;
	if (!i->draining || endpoints_drained(i->sv->eps, i->draining) || time_mono_ms() >= i->drain_deadline_ms) {
		if (i->draining && atomic_load(&i->draining->inflight) > 0)
			log_warn("%s/%s %s: %d requests still in flight after %lld ms of draining; stopping anyway",
				 i->env, i->app, i->st.id, atomic_load(&i->draining->inflight), (long long)i->grace_ms);
		send_term(i);
	}
}

static void finish_stop(struct instance *i)
{
	if (i->st.state == INST_STOPPED)
		return;
	i->st.state = INST_STOPPED;
	i->st.healthy = false;
	drop_endpoint(i);
	end_drain(i);
	uv_timer_stop(&i->timer);
	uv_timer_stop(&i->kill_timer);
	if (i->probe) {
		health_probe_cancel(i->probe);
		i->probe = NULL;
	}
	sys_line(i, "stopped");
	logs_sink_close(i->sink);
	i->sink = NULL;
	unlink_instance(i);
	emit(i, IEV_STOPPED, i->st.last_exit);
	uv_close((uv_handle_t *)&i->timer, on_inst_handle_closed);
	uv_close((uv_handle_t *)&i->kill_timer, on_inst_handle_closed);
	struct supervisor *s = i->sv;
	if (s->shutdown_done && !s->head) {
		void (*done)(void *) = s->shutdown_done;
		s->shutdown_done = NULL;
		done(s->shutdown_arg);
	}
}

void instance_stop(struct instance *i, int64_t grace_ms)
{
	if (i->st.state == INST_STOPPING || i->st.state == INST_STOPPED)
		return;
	if (grace_ms >= 0)
		i->grace_ms = grace_ms;
	uv_timer_stop(&i->timer);
	if (i->probe) {
		health_probe_cancel(i->probe);
		i->probe = NULL;
	}
	i->st.healthy = false;
	if (!i->proc) {
		drop_endpoint(i);
		finish_stop(i);
		return;
	}
	i->st.state = INST_STOPPING;
	sys_line(i, "stopping (grace %lld ms)", (long long)i->grace_ms);
	i->draining = withdraw_endpoint(i);
	if (i->draining && !endpoints_drained(i->sv->eps, i->draining)) {
		/* Let routers stop picking it and finish what they sent, then SIGTERM. */
		i->drain_deadline_ms = time_mono_ms() + i->grace_ms;
		uv_timer_start(&i->kill_timer, on_drain_poll, DRAIN_POLL_MS, DRAIN_POLL_MS);
		return;
	}
	send_term(i);
}

const struct instance_status *instance_status(const struct instance *i)
{
	return &i->st;
}

json_t *instance_to_json(const struct instance *i)
{
	char ts[40];
	const struct instance_status *st = &i->st;
	json_t *j = json_object();
	json_object_set_new(j, "id", json_string(st->id));
	json_object_set_new(j, "process", json_string(st->process));
	json_object_set_new(j, "slot", json_integer(st->slot));
	json_object_set_new(j, "release", json_integer(st->release));
	json_object_set_new(j, "state", json_string(inst_state_name(st->state)));
	json_object_set_new(j, "healthy", json_boolean(st->healthy));
	json_object_set_new(j, "pid", st->pid ? json_integer(st->pid) : json_null());
	if (i->proc && i->proc_started)
		i->drv->describe(i->proc, j);
	json_object_set_new(j, "driver", json_string(i->drv->name));
	json_object_set_new(j, "port", st->port ? json_integer(st->port) : json_null());
	json_object_set_new(j, "restarts", json_integer(st->restarts));
	json_object_set_new(j, "last_exit", st->last_exit[0] ? json_string(st->last_exit) : json_null());
	json_object_set_new(j, "last_error", st->last_error[0] ? json_string(st->last_error) : json_null());
	json_object_set_new(j, "started_at",
			    st->started_us ? json_string(time_format_rfc3339(st->started_us, ts, sizeof ts)) : json_null());
	double up = i->proc_started && st->started_us ? (double)(time_now_us() - st->started_us) / 1e6 : 0;
	json_object_set_new(j, "uptime_s", json_real((double)(int64_t)(up * 10) / 10));
	if (st->state == INST_BACKOFF && st->next_restart_us) {
		double left = (double)(st->next_restart_us - time_now_us()) / 1e6;
		json_object_set_new(j, "next_restart_s", json_real(left < 0 ? 0 : left));
	}
	json_object_set_new(j, "profile", st->profile ? json_string(st->profile) : json_null());
	return j;
}

size_t supervisor_list(struct supervisor *s, const char *env, const char *app, struct instance ***out)
{
	size_t n = 0, cap = 8;
	struct instance **v = xmalloc(cap * sizeof *v);
	for (struct instance *i = s->head; i; i = i->next) {
		if (env && strcmp(env, i->env))
			continue;
		if (app && strcmp(app, i->app))
			continue;
		if (n == cap)
			v = xrealloc(v, (cap *= 2) * sizeof *v);
		v[n++] = i;
	}
	*out = v;
	return n;
}

/* Leave a running instance to the next server: stop watching it, do not stop it. */
static void detach_instance(struct instance *i)
{
	if (i->sv->notes_out) {
		char key[200];
		driver_spec_of(i, key, sizeof key);
		json_array_append_new(i->sv->notes_out,
				      json_pack("{s:s, s:b, s:b, s:I, s:i, s:i, s:I}",
						"key", i->found_key ? i->found_key : key, "healthy", i->st.healthy,
						"ever_healthy", i->st.ever_healthy, "healthy_us",
						(json_int_t)i->st.healthy_us, "restarts", i->st.restarts, "crashes",
						i->crashes, "started_us", (json_int_t)i->st.started_us));
	}
	cancel_probe(i);
	drop_endpoint(i);
	end_drain(i);
	uv_timer_stop(&i->timer);
	uv_timer_stop(&i->kill_timer);
	i->drv->detach(i->proc);
	i->proc = NULL;
	i->proc_started = false;
	if (i->sv->notes_out)
		sys_line(i, "%s: handing over to the upgraded server", i->st.ident);
	else
		sys_line(i, "left running for the next server (%s)", i->st.ident);
	i->st.state = INST_STOPPED;
	logs_sink_close(i->sink);
	i->sink = NULL;
	unlink_instance(i);
	emit(i, IEV_STOPPED, "detached");
	uv_close((uv_handle_t *)&i->timer, on_inst_handle_closed);
	uv_close((uv_handle_t *)&i->kill_timer, on_inst_handle_closed);
}

static void shutdown_all(struct supervisor *s, bool upgrade, void (*done)(void *), void *arg)
{
	struct instance **v;
	size_t n = supervisor_list(s, NULL, NULL, &v);
	for (size_t k = 0; k < n; k++) {
		struct driver *d = v[k]->drv;
		if (d->detach && (upgrade || !d->detach_upgrade_only) && v[k]->proc && v[k]->proc_started &&
		    v[k]->st.state != INST_STOPPING)
			detach_instance(v[k]);
	}
	free(v);
	if (!s->head) {
		done(arg);
		return;
	}
	s->shutdown_done = done;
	s->shutdown_arg = arg;
	n = supervisor_list(s, NULL, NULL, &v);
	for (size_t k = 0; k < n; k++)
		instance_stop(v[k], -1);
	free(v);
}

void supervisor_shutdown(struct supervisor *s, void (*done)(void *), void *arg)
{
	shutdown_all(s, false, done, arg);
}

void supervisor_handover(struct supervisor *s, json_t *notes, void (*done)(void *), void *arg)
{
	s->notes_out = notes;     /* borrowed while the instances are detached, right here */
	shutdown_all(s, true, done, arg);
	s->notes_out = NULL;
}

void supervisor_free(struct supervisor *s)
{
	if (!s)
		return;
	json_decref(s->notes_in);
	free(s->owner_tag);
	free(s);
}
