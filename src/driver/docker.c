/* driver/docker: instances as containers, through the Docker Engine API (src/engine: libcurl
 * on a thread of its own, never blocking the loop). A start is a chain of engine calls, each
 * continuing in the previous one's callback: inspect the image (pull it when missing or when
 * told to, its progress reported), create the container (berth's labels, the profile as
 * HostConfig limits, volumes as bind mounts, host networking: the instance listens on
 * 127.0.0.1:$PORT like a process), start it, then follow its logs and wait for its exit.
 * After the exit the container is inspected (out of memory?) and removed.
 * Logs keep a cursor per container (DATA/containers/ID.cursor: the engine time of the last
 * line delivered and how many lines carried that time), so a server that adopts the
 * container after a crash resumes exactly after the last line it wrote: the engine's `since`
 * filter works in whole seconds, and the lines of that second already written are skipped.
 * exec (and exec health checks) use the engine's exec over a hijacked connection (hijack.c);
 * an interactive one-off attaches to its container the same way before it starts.
 * See docs/drivers.md. */
#include "driver/driver.h"
#include "driver/docker.h"
#include "engine/engine.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include <errno.h>
#include <sodium.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CALL_TIMEOUT_MS 30000        /* inspect, create, start, kill, remove */
#define PULL_TIMEOUT_MS (30 * 60000) /* a pull or a build may be slow, never endless */
#define DRAIN_MS 2000                /* after the exit, how long the log stream may still run */
#define LINE_MAX_OUT (16 * 1024 + 2)

struct ddriver {
	uv_loop_t *loop;
	struct engine *en;
	char *sock;                  /* the socket path, for hijacked connections */
	char *cursor_dir;            /* DATA/containers */
	char *data_dir;
	docker_auth_fn auth;         /* registry credentials for a pull (may be NULL) */
	void *auth_arg;
	json_t *adopting;            /* the container an adopt callback is asked about */
	/* The engine did not answer at start-up: adoption waits for it (so that nothing is
	 * started twice), and so does every start. */
	bool adopt_pending;
	char *adopt_owner;
	driver_found_fn adopt_fn;
	void *adopt_arg;
	uv_timer_t ping;
	bool ping_open;
	struct engine_req *ping_req;
	struct driver *self;
};

enum dstep { S_INSPECT, S_PULL, S_CREATE, S_ATTACH, S_START, S_RUNNING, S_EXITED };

struct driver_proc {
	struct ddriver *dd;
	struct driver_events ev;
	enum dstep step;
	char *id;                    /* container id; for an exec, the exec id */
	char *ctr;                   /* the container an exec runs in */
	char *name;                  /* container name */
	char ident[48];
	char *ref;                   /* the image as given */
	char *image_id;              /* sha256:... once inspected */
	char *digest;                /* repo digest, when the image has one */
	char *pull;                  /* "missing", "always", "never" */
	bool pulled;
	json_t *create;              /* the create body, built at start */
	int port;
	bool is_exec, tty, stdin_open;
	struct engine_req *req;      /* the step in flight */
	struct engine_req *logs_req, *wait_req;
	struct engine_demux demux;
	bool demux_open;
	struct engine_jstream js;
	bool js_open;
	bool started, stopping, exited, logs_done, reported;
	int stop_signal;             /* signal asked for before the start finished */
	int64_t status;
	int signal;
	bool oom;
	char detail[256];
	struct buf line;             /* a line and its newline, for on_output */
	/* the log cursor */
	int cursor_fd;
	int64_t cur_sec;
	int cur_count;
	bool cursor_dirty;
	int64_t skip_sec;            /* lines of an earlier run up to here were written already */
	int skip_count;
	uv_timer_t drain;
	bool drain_open;
	struct hijack *hj;           /* exec, or an attached one-off's stdin/stdout */
};

static void start_inspect(struct driver_proc *p);
static void maybe_report(struct driver_proc *p);
static void begin_watch(struct driver_proc *p, bool logs);
static void start_container(struct driver_proc *p);
static void exec_finished(struct driver_proc *p);

/* ---- small helpers ---- */

static char *auth_line(struct ddriver *dd, const char *ref)
{
	char *v = NULL, *line = NULL;
	if (dd->auth && dd->auth(dd->auth_arg, ref, &v) == 0 && v) {
		line = xasprintf("X-Registry-Auth: %s", v);
		sodium_memzero(v, strlen(v));
		free(v);
	}
	return line;
}

char *docker_auth_header(struct driver *d, const char *ref)
{
	return auth_line(d->impl, ref);
}

static struct engine_req *call(struct driver_proc *p, const char *method, const char *path, json_t *body,
			       int64_t timeout_ms, engine_data_fn on_data, engine_done_fn on_done)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	const char *hdrs[2] = {NULL, NULL};
	char *auth_hdr = NULL;
	if (!strcmp(method, "POST") && !strncmp(path, "/images/create", 14)) {
		auth_hdr = auth_line(p->dd, p->ref);
		hdrs[0] = auth_hdr;
	}
	struct engine_call c = {
		.method = method, .path = path, .body = text, .body_len = text ? strlen(text) : 0,
		.headers = hdrs[0] ? hdrs : NULL, .timeout_ms = timeout_ms, .on_data = on_data,
		.on_done = on_done, .arg = p,
	};
	struct engine_req *r = engine_call(p->dd->en, &c);
	free(text);
	if (auth_hdr) {
		sodium_memzero(auth_hdr, strlen(auth_hdr));
		free(auth_hdr);
	}
	return r;
}

static void fire_done(void *arg, const struct engine_resp *r)
{
	/* 304: already stopped; 404: already gone; 409: not running (a kill after the exit) */
	if (r->error || (r->status >= 400 && r->status != 404 && r->status != 409)) {
		char msg[300];
		log_warn("docker: %s: %s", (const char *)arg, engine_error_text(r, msg, sizeof msg));
	}
}

/* A call whose answer only the log cares about (a kill, a remove, a resize). */
static void fire(struct ddriver *dd, const char *method, const char *path, const char *what)
{
	struct engine_call c = {.method = method, .path = path, .timeout_ms = CALL_TIMEOUT_MS,
				.on_done = fire_done, .arg = (void *)what};
	engine_call(dd->en, &c);
}

static void remove_container(struct ddriver *dd, const char *id)
{
	char path[200];
	snprintf(path, sizeof path, "/containers/%s?force=1&v=1", id);
	fire(dd, "DELETE", path, "removing a container");
}

static void set_detail(struct driver_proc *p, const char *what, const struct engine_resp *r)
{
	char msg[300];
	if (r->error)
		snprintf(p->detail, sizeof p->detail, "%s: the container engine at %s did not answer: %s", what,
			 engine_host(p->dd->en), r->error);
	else
		snprintf(p->detail, sizeof p->detail, "%s: %s", what, engine_error_text(r, msg, sizeof msg));
}

/* The start failed (or was stopped before it finished): clean up and report. */
static void start_failed(struct driver_proc *p)
{
	p->req = NULL;
	p->exited = true;
	p->logs_done = true;
	if (p->id && !p->is_exec) {
		remove_container(p->dd, p->id);
	}
	maybe_report(p);
}

/* ---- the log cursor ---- */

static char *cursor_path(struct ddriver *dd, const char *id)
{
	return xasprintf("%s/%.64s.cursor", dd->cursor_dir, id);
}

static void cursor_open(struct driver_proc *p, bool read_old)
{
	char *path = cursor_path(p->dd, p->id);
	p->cursor_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (p->cursor_fd >= 0 && read_old) {
		char b[64] = "";
		ssize_t n = pread(p->cursor_fd, b, sizeof b - 1, 0);
		long long sec = 0;
		int count = 0;
		if (n > 0 && sscanf(b, "%lld %d", &sec, &count) == 2 && sec > 0 && count >= 0) {
			p->skip_sec = sec;
			p->skip_count = count;
			p->cur_sec = sec;
			p->cur_count = count;
		}
	}
	free(path);
}

static void cursor_note(struct driver_proc *p, int64_t sec)
{
	if (sec == p->cur_sec) {
		p->cur_count++;
	} else {
		p->cur_sec = sec;
		p->cur_count = 1;
	}
	p->cursor_dirty = true;
}

/* Written once per chunk of the log stream, after its lines went to the log file: a server
 * killed in between repeats at most the lines of that one chunk. */
static void cursor_flush(struct driver_proc *p)
{
	if (p->cursor_fd < 0 || !p->cursor_dirty)
		return;
	p->cursor_dirty = false;
	char b[48];
	int n = snprintf(b, sizeof b, "%020lld %010d\n", (long long)p->cur_sec, p->cur_count);
	if (pwrite(p->cursor_fd, b, (size_t)n, 0) < 0)
		log_warn("docker: log cursor of %.12s: %s", p->id, strerror(errno));
}

static void cursor_drop(struct driver_proc *p)
{
	if (p->cursor_fd >= 0) {
		close(p->cursor_fd);
		p->cursor_fd = -1;
		char *path = cursor_path(p->dd, p->id);
		unlink(path);
		free(path);
	}
}

/* ---- output ---- */

static void on_line(void *arg, int stream, int64_t ts_us, const char *text, size_t n)
{
	struct driver_proc *p = arg;
	if (p->reported)
		return;
	int64_t sec = ts_us > 0 ? ts_us / 1000000 : 0;
	if (!p->is_exec && !p->hj && sec) {
		/* Lines of an earlier server's run up to its cursor are written already. */
		if (sec < p->skip_sec)
			return;
		if (sec == p->skip_sec && p->skip_count > 0) {
			p->skip_count--;
			return;
		}
		cursor_note(p, sec);
	}
	buf_reset(&p->line);
	buf_add(&p->line, text, n);
	if (!p->tty)
		buf_addc(&p->line, '\n');
	if (p->ev.on_output)
		p->ev.on_output(p->ev.arg, stream, ts_us, p->line.p, p->line.len);
}

/* ---- reporting the end ---- */

static void proc_free(struct driver_proc *p)
{
	if (p->demux_open)
		engine_demux_finish(&p->demux);
	if (p->js_open)
		engine_jstream_finish(&p->js);
	if (p->cursor_fd >= 0)
		close(p->cursor_fd);
	json_decref(p->create);
	buf_free(&p->line);
	free(p->id);
	free(p->ctr);
	free(p->name);
	free(p->ref);
	free(p->image_id);
	free(p->digest);
	free(p->pull);
	free(p);
}

static void on_drain_closed(uv_handle_t *h)
{
	proc_free(h->data);
}

/* No more callbacks for p: every engine call cancelled, the stream closed, the last partial
 * lines delivered. */
static void stop_watching(struct driver_proc *p)
{
	p->reported = true;
	if (p->req)
		engine_cancel(p->req);
	if (p->logs_req)
		engine_cancel(p->logs_req);
	if (p->wait_req)
		engine_cancel(p->wait_req);
	p->req = p->logs_req = p->wait_req = NULL;
	if (p->hj) {
		hijack_free(p->hj);
		p->hj = NULL;
	}
	if (p->demux_open) {
		engine_demux_finish(&p->demux);   /* the last partial lines */
		p->demux_open = false;
	}
}

static void maybe_report(struct driver_proc *p)
{
	if (p->reported || !p->exited || !p->logs_done)
		return;
	if (p->hj && !hijack_closed(p->hj))
		return;
	stop_watching(p);
	if (p->started && p->id && !p->is_exec) {
		cursor_drop(p);
		remove_container(p->dd, p->id);
	}
	struct driver_exit x = {.status = p->status, .signal = p->signal, .started = p->started, .oom = p->oom};
	snprintf(x.detail, sizeof x.detail, "%s", p->detail);
	utf8_fix(x.detail);   /* it may quote the engine, cut anywhere */
	if (p->ev.on_exit)
		p->ev.on_exit(p->ev.arg, &x);
	if (p->drain_open) {
		uv_timer_stop(&p->drain);
		uv_close((uv_handle_t *)&p->drain, on_drain_closed);
	} else {
		proc_free(p);
	}
}

static void on_drain(uv_timer_t *t)
{
	struct driver_proc *p = t->data;
	p->logs_done = true;
	maybe_report(p);
}

/* ---- the exit ---- */

static void on_exit_inspect(void *arg, const struct engine_resp *r)
{
	struct driver_proc *p = arg;
	p->req = NULL;
	struct engine_container c;
	struct err e = ERR_INIT;
	if (r->status == 200 && engine_parse_container(r->body, r->len, &c, &e) == 0) {
		p->oom = c.oom_killed;
		if (p->status < 0)
			p->status = c.exit_code;
		engine_container_free(&c);
	}
	if (p->oom)
		snprintf(p->detail, sizeof p->detail, "out of memory (killed by the kernel at the container's limit)");
	if (p->status < 0)
		p->status = 255;
	if (p->status >= 128 + 1 && p->status <= 128 + 64 && p->stop_signal) {
		p->signal = (int)(p->status - 128);   /* killed by the signal berth sent */
	}
	p->exited = true;
	if (!p->logs_done) {
		uv_timer_start(&p->drain, on_drain, DRAIN_MS, 0);
		return;
	}
	maybe_report(p);
}

static void on_wait_done(void *arg, const struct engine_resp *r)
{
	struct driver_proc *p = arg;
	p->wait_req = NULL;
	p->status = -1;
	if (r->status == 200) {
		json_t *j = json_loadb(r->body, r->len, 0, NULL);
		json_t *sc = json_object_get(j, "StatusCode");
		if (json_is_integer(sc))
			p->status = json_integer_value(sc);
		json_decref(j);
	} else if (r->error && !p->stopping) {
		/* The engine went away while the container runs: it may still run. Report what we
		 * know; the supervisor restarts, and a later server adopts or removes it. */
		set_detail(p, "lost the container", r);
	}
	char path[160];
	snprintf(path, sizeof path, "/containers/%s/json", p->id);
	p->req = call(p, "GET", path, NULL, CALL_TIMEOUT_MS, NULL, on_exit_inspect);
}

static void on_logs_data(void *arg, const char *data, size_t n)
{
	struct driver_proc *p = arg;
	engine_demux_feed(&p->demux, data, n);
	cursor_flush(p);
}

static void on_logs_done(void *arg, const struct engine_resp *r)
{
	struct driver_proc *p = arg;
	p->logs_req = NULL;
	p->logs_done = true;
	if (p->drain_open)
		uv_timer_stop(&p->drain);
	maybe_report(p);
}

/* Follow the logs (from the cursor) and wait for the exit. */
static void begin_watch(struct driver_proc *p, bool logs)
{
	char path[300];
	if (logs) {
		engine_demux_init(&p->demux, p->tty, true, on_line, p);
		p->demux_open = true;
		snprintf(path, sizeof path, "/containers/%s/logs?follow=1&stdout=1&stderr=1&timestamps=1&since=%lld", p->id,
			 (long long)(p->skip_sec > 0 ? p->skip_sec : 0));
		p->logs_req = call(p, "GET", path, NULL, 0, on_logs_data, on_logs_done);
	} else {
		p->logs_done = true;
	}
	snprintf(path, sizeof path, "/containers/%s/wait?condition=not-running", p->id);
	p->wait_req = call(p, "POST", path, NULL, 0, NULL, on_wait_done);
}

/* ---- starting ---- */

static void on_started_ok(struct driver_proc *p)
{
	p->step = S_RUNNING;
	p->started = true;
	snprintf(p->ident, sizeof p->ident, "container %.12s", p->id);
	if (p->stopping) {
		/* Told to stop while starting: now there is something to signal. */
		char path[160];
		snprintf(path, sizeof path, "/containers/%s/kill?signal=%d", p->id, p->stop_signal ? p->stop_signal : SIGTERM);
		begin_watch(p, !p->hj);
		fire(p->dd, "POST", path, "stopping a container");
		return;
	}
	begin_watch(p, !p->hj);
	if (p->ev.on_started)
		p->ev.on_started(p->ev.arg);
}

static void on_start_done(void *arg, const struct engine_resp *r)
{
	struct driver_proc *p = arg;
	p->req = NULL;
	if (r->status != 204 && r->status != 304) {
		set_detail(p, "could not start the container", r);
		start_failed(p);
		return;
	}
	cursor_open(p, false);
	on_started_ok(p);
}

static void start_container(struct driver_proc *p)
{
	p->step = S_START;
	char path[160];
	snprintf(path, sizeof path, "/containers/%s/start", p->id);
	p->req = call(p, "POST", path, NULL, CALL_TIMEOUT_MS, NULL, on_start_done);
}

static void on_attached(void *arg, int ok, const char *why)
{
	struct driver_proc *p = arg;
	if (!ok) {
		snprintf(p->detail, sizeof p->detail, "could not attach to the container: %s", why);
		start_failed(p);
		return;
	}
	start_container(p);
}

static void on_hijack_line(void *arg, int stream, const char *data, size_t n)
{
	struct driver_proc *p = arg;
	if (!p->reported && p->ev.on_output)
		p->ev.on_output(p->ev.arg, stream, 0, data, n);
}

static void on_hijack_end(void *arg)
{
	struct driver_proc *p = arg;
	if (p->is_exec)
		exec_finished(p);
	else
		maybe_report(p);
}

static void on_create_done(void *arg, const struct engine_resp *r);

static void on_name_removed(void *arg, const struct engine_resp *r)
{
	struct driver_proc *p = arg;
	p->req = NULL;
	char path[200];
	snprintf(path, sizeof path, "/containers/create?name=%s", p->name);
	p->req = call(p, "POST", path, p->create, CALL_TIMEOUT_MS, NULL, on_create_done);
}

static void on_create_done(void *arg, const struct engine_resp *r)
{
	struct driver_proc *p = arg;
	p->req = NULL;
	if (r->status == 409 && !p->id) {
		/* A container of that name is left from an incarnation that was not cleaned up. */
		p->id = xstrdup("");
		char path[200];
		snprintf(path, sizeof path, "/containers/%s?force=1&v=1", p->name);
		p->req = call(p, "DELETE", path, NULL, CALL_TIMEOUT_MS, NULL, on_name_removed);
		return;
	}
	json_t *j = r->status == 201 ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(j, "Id"));
	if (!id || strlen(id) < 12 || strlen(id) > 128 || strspn(id, "0123456789abcdef") != strlen(id)) {
		set_detail(p, "could not create the container", r);
		json_decref(j);
		free(p->id);
		p->id = NULL;
		start_failed(p);
		return;
	}
	free(p->id);
	p->id = xstrdup(id);
	json_decref(j);
	if (p->stopping) {
		snprintf(p->detail, sizeof p->detail, "stopped before it started");
		start_failed(p);
		return;
	}
	if (p->stdin_open) {
		p->step = S_ATTACH;
		char path[200];
		snprintf(path, sizeof path, "/containers/%s/attach?stream=1&stdin=1&stdout=1&stderr=1", p->id);
		p->hj = hijack_open(p->dd->loop, p->dd->sock, engine_api_version(p->dd->en), path, NULL, p->tty,
				    on_attached, on_hijack_line, on_hijack_end, p);
		return;
	}
	start_container(p);
}

static void create(struct driver_proc *p)
{
	p->step = S_CREATE;
	json_object_set_new(p->create, "Image", json_string(p->image_id));
	json_t *labels = json_object_get(p->create, "Labels");
	json_object_set_new(labels, "io.berth.image", json_string(p->ref));
	if (p->digest)
		json_object_set_new(labels, "io.berth.digest", json_string(p->digest));
	char path[200];
	snprintf(path, sizeof path, "/containers/create?name=%s", p->name);
	p->req = call(p, "POST", path, p->create, CALL_TIMEOUT_MS, NULL, on_create_done);
}

static void on_pull_data(void *arg, const char *data, size_t n)
{
	struct driver_proc *p = arg;
	engine_jstream_feed(&p->js, data, n);
}

static void on_pull_progress(void *arg, const char *text)
{
	struct driver_proc *p = arg;
	if (p->ev.on_progress) {
		char line[300];
		snprintf(line, sizeof line, "pulling %s: %s", p->ref, text);
		p->ev.on_progress(p->ev.arg, line);
	}
}

static void on_pull_done(void *arg, const struct engine_resp *r)
{
	struct driver_proc *p = arg;
	p->req = NULL;
	engine_jstream_finish(&p->js);
	p->js_open = false;
	if (r->status != 200 || p->js.error[0]) {
		char what[300];
		snprintf(what, sizeof what, "could not pull %s", p->ref);
		if (p->js.error[0] && r->status == 200)
			snprintf(p->detail, sizeof p->detail, "%s: %s", what, p->js.error);
		else
			set_detail(p, what, r);
		start_failed(p);
		return;
	}
	p->pulled = true;
	if (p->stopping) {
		snprintf(p->detail, sizeof p->detail, "stopped before it started");
		start_failed(p);
		return;
	}
	start_inspect(p);
}

static void pull(struct driver_proc *p)
{
	p->step = S_PULL;
	char *path = docker_pull_path(p->ref);
	engine_jstream_init(&p->js, on_pull_progress, p);
	p->js_open = true;
	p->req = call(p, "POST", path, NULL, PULL_TIMEOUT_MS, on_pull_data, on_pull_done);
	free(path);
}

static void on_inspect_done(void *arg, const struct engine_resp *r)
{
	struct driver_proc *p = arg;
	p->req = NULL;
	if (p->stopping) {
		snprintf(p->detail, sizeof p->detail, "stopped before it started");
		start_failed(p);
		return;
	}
	if (r->status == 404 && !p->pulled) {
		if (!strcmp(p->pull, "never")) {
			snprintf(p->detail, sizeof p->detail, "image %s is not on this host, and pulling is off (--pull never)",
				 p->ref);
			start_failed(p);
			return;
		}
		pull(p);
		return;
	}
	struct engine_image im;
	struct err e = ERR_INIT;
	if (r->status != 200 || engine_parse_image(r->body, r->len, &im, &e) < 0) {
		char what[300];
		snprintf(what, sizeof what, "image %s", p->ref);
		if (r->status == 200)
			snprintf(p->detail, sizeof p->detail, "%s: %s", what, e.msg);
		else
			set_detail(p, what, r);
		start_failed(p);
		return;
	}
	if (!strcmp(p->pull, "always") && !p->pulled && strncmp(p->ref, "sha256:", 7)) {
		engine_image_free(&im);
		pull(p);
		return;
	}
	free(p->image_id);
	p->image_id = xstrdup(im.id);
	free(p->digest);
	p->digest = im.repo_digest ? xstrdup(im.repo_digest) : NULL;
	engine_image_free(&im);
	create(p);
}

static void start_inspect(struct driver_proc *p)
{
	p->step = S_INSPECT;
	char *path = docker_image_path(p->ref, "/json");
	p->req = call(p, "GET", path, NULL, CALL_TIMEOUT_MS, NULL, on_inspect_done);
	free(path);
}

/* ---- exec beside a running container ---- */

static void on_exec_inspect(void *arg, const struct engine_resp *r)
{
	struct driver_proc *p = arg;
	p->req = NULL;
	json_t *j = r->status == 200 ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	json_t *ec = json_object_get(j, "ExitCode");
	p->status = json_is_integer(ec) ? json_integer_value(ec) : 255;
	if (!json_is_integer(ec) && !p->signal)
		set_detail(p, "exec: no exit status", r);
	json_decref(j);
	p->exited = true;
	p->logs_done = true;
	maybe_report(p);
}

static void exec_finished(struct driver_proc *p)
{
	if (p->exited || p->req)
		return;
	if (!p->id || !p->started) {
		p->exited = p->logs_done = true;
		maybe_report(p);
		return;
	}
	char path[200];
	snprintf(path, sizeof path, "/exec/%s/json", p->id);
	p->req = call(p, "GET", path, NULL, CALL_TIMEOUT_MS, NULL, on_exec_inspect);
}

static void on_exec_attached(void *arg, int ok, const char *why)
{
	struct driver_proc *p = arg;
	if (!ok) {
		snprintf(p->detail, sizeof p->detail, "exec: %s", why);
		p->exited = p->logs_done = true;
		maybe_report(p);
		return;
	}
	p->started = true;
	p->step = S_RUNNING;
	snprintf(p->ident, sizeof p->ident, "exec %.12s in %.12s", p->id, p->ctr);
	if (p->ev.on_started)
		p->ev.on_started(p->ev.arg);
}

static void on_exec_created(void *arg, const struct engine_resp *r)
{
	struct driver_proc *p = arg;
	p->req = NULL;
	json_t *j = r->status == 201 ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(j, "Id"));
	if (!id || strlen(id) > 128 || strspn(id, "0123456789abcdef") != strlen(id)) {
		set_detail(p, "exec", r);
		json_decref(j);
		p->exited = p->logs_done = true;
		maybe_report(p);
		return;
	}
	p->id = xstrdup(id);
	json_decref(j);
	char path[200], body[64];
	snprintf(path, sizeof path, "/exec/%s/start", p->id);
	snprintf(body, sizeof body, "{\"Detach\":false,\"Tty\":%s}", p->tty ? "true" : "false");
	p->hj = hijack_open(p->dd->loop, p->dd->sock, engine_api_version(p->dd->en), path, body, p->tty,
			    on_exec_attached, on_hijack_line, on_hijack_end, p);
}

/* ---- the driver table ---- */

/* The container sees the app's variables, not the daemon's PATH and HOME (the image has its
 * own), nor the owner mark the process sweep looks for. */
static json_t *container_env(char *const *vars)
{
	json_t *a = json_array();
	for (char *const *v = vars; v && *v; v++) {
		if (!strncmp(*v, "PATH=", 5) || !strncmp(*v, "HOME=", 5) || !strncmp(*v, "BERTH_OWNER=", 12))
			continue;
		json_array_append_new(a, json_string(*v));
	}
	return a;
}

static json_t *shell_cmd(const char *command)
{
	return json_pack("[s, s, s]", "/bin/sh", "-c", command);
}

static json_t *create_body(const struct driver_spec *spec)
{
	json_t *labels = json_object();
	char num[24];
	json_object_set_new(labels, "io.berth.app", json_string(spec->app));
	json_object_set_new(labels, "io.berth.env", json_string(spec->env));
	json_object_set_new(labels, "io.berth.process", json_string(spec->process));
	json_object_set_new(labels, "io.berth.instance", json_string(spec->name));
	json_object_set_new(labels, "io.berth.key", json_string(spec->key));
	snprintf(num, sizeof num, "%d", spec->release);
	json_object_set_new(labels, "io.berth.release", json_string(num));
	snprintf(num, sizeof num, "%d", spec->slot);
	json_object_set_new(labels, "io.berth.slot", json_string(num));
	snprintf(num, sizeof num, "%d", spec->gen);
	json_object_set_new(labels, "io.berth.gen", json_string(num));
	snprintf(num, sizeof num, "%d", spec->port);
	json_object_set_new(labels, "io.berth.port", json_string(num));
	json_object_set_new(labels, "io.berth.owner", json_string(spec->owner ? spec->owner : ""));
	json_t *host = json_object();
	json_object_set_new(host, "NetworkMode", json_string("host"));
	json_object_set_new(host, "RestartPolicy", json_pack("{s:s}", "Name", "no"));
	const struct profile *pr = spec->profile;
	if (pr) {
		if (pr->memory_bytes) {
			json_object_set_new(host, "Memory", json_integer(pr->memory_bytes));
			json_object_set_new(host, "MemorySwap", json_integer(pr->memory_bytes));
		}
		if (pr->cpus > 0)
			json_object_set_new(host, "NanoCpus", json_integer((json_int_t)(pr->cpus * 1e9)));
		if (pr->cpu_weight > 0)
			json_object_set_new(host, "CpuShares", json_integer(pr->cpu_weight * 1024 / 100));
		if (pr->pids)
			json_object_set_new(host, "PidsLimit", json_integer(pr->pids));
	}
	if (spec->nvolumes) {
		json_t *binds = json_array();
		for (size_t k = 0; k < spec->nvolumes; k++) {
			char *b = xasprintf("%s:%s:rw", spec->volumes[k].source, spec->volumes[k].target);
			json_array_append_new(binds, json_string(b));
			free(b);
		}
		json_object_set_new(host, "Binds", binds);
	}
	json_t *body = json_object();
	json_object_set_new(body, "Labels", labels);
	json_object_set_new(body, "Env", container_env(spec->vars));
	json_object_set_new(body, "HostConfig", host);
	if (spec->command)
		json_object_set_new(body, "Cmd", shell_cmd(spec->command));
	if (spec->cwd)
		json_object_set_new(body, "WorkingDir", json_string(spec->cwd));
	bool in = spec->stdin_mode != DRIVER_STDIN_NULL;
	json_object_set_new(body, "Tty", json_boolean(spec->stdin_mode == DRIVER_STDIN_TTY));
	json_object_set_new(body, "OpenStdin", json_boolean(in));
	json_object_set_new(body, "StdinOnce", json_boolean(in));
	json_object_set_new(body, "AttachStdin", json_boolean(in));
	json_object_set_new(body, "AttachStdout", json_boolean(in));
	json_object_set_new(body, "AttachStderr", json_boolean(in));
	return body;
}

static struct driver_proc *proc_new(struct ddriver *dd, const struct driver_events *ev)
{
	struct driver_proc *p = xcalloc(1, sizeof *p);
	p->dd = dd;
	p->ev = *ev;
	p->cursor_fd = -1;
	p->status = -1;
	uv_timer_init(dd->loop, &p->drain);
	p->drain.data = p;
	p->drain_open = true;
	return p;
}

static int dk_start(struct driver *d, const struct driver_spec *spec, const struct driver_events *ev,
		    struct driver_proc **out, struct err *e)
{
	struct ddriver *dd = d->impl;
	if (dd->adopt_pending)
		return err_set(e, ERR_UNAVAILABLE, "the container engine at %s does not answer (see docs/runbooks/engine-down.md)",
			       engine_host(dd->en));
	if (spec->beside) {
		struct driver_proc *t = spec->beside;
		if (!t->started || !t->id || t->is_exec)
			return err_set(e, ERR_CONFLICT, "the container is not running");
		struct driver_proc *p = proc_new(dd, ev);
		p->is_exec = true;
		p->tty = spec->stdin_mode == DRIVER_STDIN_TTY;
		p->ctr = xstrdup(t->id);
		snprintf(p->ident, sizeof p->ident, "exec in %.12s", t->id);
		json_t *body = json_pack("{s:b, s:b, s:b, s:b, s:o, s:o}", "AttachStdin", spec->stdin_mode != DRIVER_STDIN_NULL,
					 "AttachStdout", 1, "AttachStderr", 1, "Tty", p->tty, "Cmd",
					 shell_cmd(spec->command ? spec->command : "true"), "Env", container_env(spec->vars));
		char path[200];
		snprintf(path, sizeof path, "/containers/%s/exec", t->id);
		p->req = call(p, "POST", path, body, CALL_TIMEOUT_MS, NULL, on_exec_created);
		json_decref(body);
		*out = p;
		return 0;
	}
	if (!spec->image)
		return err_set(e, ERR_INVALID, "the docker driver runs images; %s has none", spec->name ? spec->name : "it");
	if (!manifest_image_ref_valid(spec->image))
		return err_set(e, ERR_INVALID, "\"%.100s\" is not an image reference", spec->image);
	if (!spec->key || strspn(spec->key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
	    strlen(spec->key))
		return err_set(e, ERR_INVALID, "bad instance key");
	struct driver_proc *p = proc_new(dd, ev);
	p->ref = xstrdup(spec->image);
	p->pull = xstrdup(spec->pull && *spec->pull ? spec->pull : "missing");
	p->name = xasprintf("berth-%s", spec->key);
	p->port = spec->port;
	p->tty = spec->stdin_mode == DRIVER_STDIN_TTY;
	p->stdin_open = spec->stdin_mode != DRIVER_STDIN_NULL;
	p->create = create_body(spec);
	snprintf(p->ident, sizeof p->ident, "container (starting)");
	start_inspect(p);
	*out = p;
	return 0;
}

static const char *dk_ident(const struct driver_proc *p)
{
	return p->ident;
}

static void dk_describe(const struct driver_proc *p, json_t *into)
{
	if (p->is_exec)
		return;
	if (p->id && *p->id)
		json_object_set_new(into, "container", json_string(p->id));
	if (p->image_id)
		json_object_set_new(into, "image", json_string(p->image_id));
	if (p->digest)
		json_object_set_new(into, "image_digest", json_string(p->digest));
	if (p->ref)
		json_object_set_new(into, "image_ref", json_string(p->ref));
}

static int dk_address(const struct driver_proc *p, char *host, size_t hostlen, int *port)
{
	if (!p->port)
		return -1;
	snprintf(host, hostlen, "127.0.0.1");
	*port = p->port;
	return 0;
}

static void dk_signal(struct driver_proc *p, int sig)
{
	if (p->reported)
		return;
	p->stopping = true;
	if (!p->stop_signal || sig == SIGKILL)
		p->stop_signal = sig;
	if (p->is_exec) {
		/* The engine cannot signal an exec: hanging up ends a terminal's session; the
		 * stream closing ends the wait for it. */
		if (sig == SIGKILL || sig == SIGTERM || sig == SIGHUP || sig == SIGINT) {
			if (p->hj && !p->tty && sig == SIGINT)
				return;
			p->signal = sig;
			if (p->hj)
				hijack_close(p->hj);
			else if (!p->req)
				exec_finished(p);
		}
		return;
	}
	if (!p->started)
		return;   /* the step in flight sees `stopping` and gives up */
	char path[200];
	snprintf(path, sizeof path, "/containers/%s/kill?signal=%d", p->id, sig);
	fire(p->dd, "POST", path, "signalling a container");
}

static int dk_write_stdin(struct driver_proc *p, const void *data, size_t n)
{
	return p->hj && !p->reported ? hijack_write(p->hj, data, n) : -1;
}

static size_t dk_stdin_queued(const struct driver_proc *p)
{
	return p->hj ? hijack_queued(p->hj) : 0;
}

static void dk_close_stdin(struct driver_proc *p)
{
	if (!p->hj || p->reported)
		return;
	if (p->tty)
		hijack_write(p->hj, "\x04", 1);
	else
		hijack_shutdown(p->hj);
}

static void dk_resize(struct driver_proc *p, int rows, int cols)
{
	if (!p->tty || !p->id || !*p->id || rows <= 0 || cols <= 0 || p->reported)
		return;
	char path[240];
	snprintf(path, sizeof path, "/%s/%s/resize?h=%d&w=%d", p->is_exec ? "exec" : "containers", p->id, rows, cols);
	fire(p->dd, "POST", path, "resizing a terminal");
}

static int label_int(json_t *labels, const char *k)
{
	const char *v = json_string_value(json_object_get(labels, k));
	if (!v || !*v || strlen(v) > 9 || strspn(v, "0123456789") != strlen(v))
		return -1;
	return atoi(v);
}

static int dk_adopt(struct driver *d, const char *owner, driver_found_fn fn, void *arg, struct err *e)
{
	struct ddriver *dd = d->impl;
	if (dd->adopt_pending) {
		free(dd->adopt_owner);
		dd->adopt_owner = xstrdup(owner);
		dd->adopt_fn = fn;
		dd->adopt_arg = arg;
		log_warn("docker: the engine at %s does not answer; its containers are adopted when it does",
			 engine_host(dd->en));
		return 0;
	}
	char *filter = xasprintf("{\"label\":[\"io.berth.owner=%s\"]}", owner);
	char *q = docker_query_escape(filter);
	char *path = xasprintf("/containers/json?all=1&filters=%s", q);
	free(filter);
	free(q);
	long status = 0;
	char *body = NULL;
	size_t len = 0;
	int r = engine_call_sync(dd->en, "GET", path, NULL, CALL_TIMEOUT_MS, &status, &body, &len, e);
	free(path);
	if (r < 0 || status != 200) {
		if (r == 0)
			err_set(e, ERR_UNAVAILABLE, "listing containers: status %ld", status);
		free(body);
		return -1;
	}
	json_t *list = engine_parse_container_list(body, len, e);
	free(body);
	if (!list)
		return -1;
	int kept = 0, removed = 0;
	size_t k;
	json_t *c;
	json_array_foreach(list, k, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *state = json_string_value(json_object_get(c, "state"));
		json_t *l = json_object_get(c, "labels");
		if (!id)
			continue;
		struct driver_found f = {
			.env = json_string_value(json_object_get(l, "io.berth.env")),
			.app = json_string_value(json_object_get(l, "io.berth.app")),
			.process = json_string_value(json_object_get(l, "io.berth.process")),
			.key = json_string_value(json_object_get(l, "io.berth.key")),
			.slot = label_int(l, "io.berth.slot"), .release = label_int(l, "io.berth.release"),
			.gen = label_int(l, "io.berth.gen"), .port = label_int(l, "io.berth.port"), .id = id,
			.driver = "docker",
		};
		bool keep = false;
		if (f.env && f.app && f.process && f.key && f.slot > 0 && f.release > 0 && f.gen >= 0 && f.port >= 0 &&
		    state && !strcmp(state, "running") && fn) {
			dd->adopting = c;
			keep = fn(arg, &f);
			dd->adopting = NULL;
		}
		if (keep) {
			kept++;
			continue;
		}
		char p2[160];
		snprintf(p2, sizeof p2, "/containers/%s?force=1&v=1", id);
		struct err re = ERR_INIT;
		long st2 = 0;
		char *b2 = NULL;
		if (engine_call_sync(dd->en, "DELETE", p2, NULL, CALL_TIMEOUT_MS, &st2, &b2, NULL, &re) < 0)
			log_warn("docker: could not remove container %.12s: %s", id, re.msg);
		else
			removed++;
		free(b2);
		char *cp = cursor_path(dd, id);
		unlink(cp);
		free(cp);
	}
	json_decref(list);
	if (kept || removed)
		log_info("docker: adopted %d container%s left running; removed %d no instance wants", kept,
			 kept == 1 ? "" : "s", removed);
	return 0;
}

static int dk_attach(struct driver *d, const struct driver_found *f, const struct driver_spec *spec,
		     const struct driver_events *ev, struct driver_proc **out, struct err *e)
{
	struct ddriver *dd = d->impl;
	struct driver_proc *p = proc_new(dd, ev);
	p->id = xstrdup(f->id);
	p->name = xasprintf("berth-%s", f->key);
	p->ref = xstrdup(spec->image ? spec->image : "");
	p->pull = xstrdup("never");
	p->port = f->port;
	json_t *l = json_object_get(dd->adopting, "labels");
	const char *dg = json_string_value(json_object_get(l, "io.berth.digest"));
	p->digest = dg ? xstrdup(dg) : NULL;
	const char *img = json_string_value(json_object_get(dd->adopting, "image_id"));
	p->image_id = xstrdup(img ? img : (spec->image ? spec->image : ""));
	cursor_open(p, true);
	p->step = S_RUNNING;
	p->started = true;
	snprintf(p->ident, sizeof p->ident, "container %.12s", p->id);
	begin_watch(p, true);
	*out = p;
	return 1;
}

static void dk_detach(struct driver_proc *p)
{
	stop_watching(p);
	uv_timer_stop(&p->drain);
	uv_close((uv_handle_t *)&p->drain, on_drain_closed);   /* the cursor file stays */
}

static void on_ping_closed(uv_handle_t *h)
{
	struct ddriver *dd = h->data;
	engine_free(dd->en);
	free(dd->adopt_owner);
	free(dd->sock);
	free(dd->cursor_dir);
	free(dd->data_dir);
	free(dd);
}

static void dk_free(struct driver *d)
{
	struct ddriver *dd = d->impl;
	free(d);
	if (dd->ping_req)
		engine_cancel(dd->ping_req);
	if (dd->ping_open) {
		uv_timer_stop(&dd->ping);
		uv_close((uv_handle_t *)&dd->ping, on_ping_closed);
		return;
	}
	engine_free(dd->en);
	free(dd->adopt_owner);
	free(dd->sock);
	free(dd->cursor_dir);
	free(dd->data_dir);
	free(dd);
}

static void on_ping_timer(uv_timer_t *t);

static void on_ping(void *arg, const struct engine_resp *r)
{
	struct ddriver *dd = arg;
	struct driver *d = dd->self;
	dd->ping_req = NULL;
	if (r->status != 200 || r->len < 2 || memcmp(r->body, "OK", 2)) {
		uv_timer_start(&dd->ping, on_ping_timer, 2000, 0);
		return;
	}
	log_info("docker: the engine at %s answers again", engine_host(dd->en));
	dd->adopt_pending = false;
	struct err e = ERR_INIT;
	if (dd->adopt_fn && dk_adopt(d, dd->adopt_owner, dd->adopt_fn, dd->adopt_arg, &e) < 0)
		log_error("docker: adopting containers: %s", e.msg);
}

static void on_ping_timer(uv_timer_t *t)
{
	struct ddriver *dd = t->data;
	struct engine_call c = {.method = "GET", .path = "/_ping", .timeout_ms = 5000, .on_done = on_ping, .arg = dd};
	dd->ping_req = engine_call(dd->en, &c);
}

void driver_docker_set_auth(struct driver *d, docker_auth_fn fn, void *arg)
{
	struct ddriver *dd = d->impl;
	dd->auth = fn;
	dd->auth_arg = arg;
}

struct engine *driver_docker_engine(struct driver *d)
{
	return ((struct ddriver *)d->impl)->en;
}

struct driver *driver_docker_new(uv_loop_t *loop, const char *host, const char *data_dir, struct err *e)
{
	struct engine *en = engine_new(loop, host, e);
	if (!en)
		return NULL;
	struct err pe = ERR_INIT;
	bool up = engine_ping_sync(en, 5000, &pe) == 0;
	struct ddriver *dd = xcalloc(1, sizeof *dd);
	dd->loop = loop;
	dd->en = en;
	dd->sock = xstrdup(host + strlen("unix://"));
	dd->data_dir = xstrdup(data_dir);
	dd->cursor_dir = xasprintf("%s/containers", data_dir);
	if (fs_mkdir_p(dd->cursor_dir, 0700, e) < 0) {
		engine_free(en);
		free(dd->sock);
		free(dd->data_dir);
		free(dd->cursor_dir);
		free(dd);
		return NULL;
	}
	struct driver *d = xcalloc(1, sizeof *d);
	dd->self = d;
	if (up) {
		log_info("docker: engine at %s answers (API %s)", host, engine_api_version(en));
	} else {
		/* The server starts all the same: processes run, container processes wait. */
		log_error("docker: %s; container processes wait until it answers (checked every 2 s)", pe.msg);
		dd->adopt_pending = true;
		uv_timer_init(loop, &dd->ping);
		dd->ping.data = dd;
		dd->ping_open = true;
		uv_timer_start(&dd->ping, on_ping_timer, 2000, 0);
	}
	d->name = "docker";
	d->start = dk_start;
	d->ident = dk_ident;
	d->describe = dk_describe;
	d->address = dk_address;
	d->signal = dk_signal;
	d->write_stdin = dk_write_stdin;
	d->stdin_queued = dk_stdin_queued;
	d->close_stdin = dk_close_stdin;
	d->resize = dk_resize;
	d->adopt = dk_adopt;
	d->attach = dk_attach;
	d->detach = dk_detach;
	d->free = dk_free;
	d->impl = dd;
	return d;
}
