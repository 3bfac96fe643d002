/* oneoff: run-once commands of an app (see oneoff.h). Each gets its own cgroup named like an
 * instance's ("<env>.<app>.<kind>.<slot>.<seq>"), so the start-up sweep of a restarted server
 * finds and stops what a killed one left, exactly as for instances. */
#include "oneoff/oneoff.h"
#include "logs/logs.h"
#include "util/buf.h"
#include "util/envp.h"
#include "util/log.h"
#include "util/timeutil.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_GRACE_MS 5000

struct oneoffs {
	uv_loop_t *loop;
	struct drivers *drivers;
	struct logs *logs;
	char *owner_tag;
	struct oneoff *head;
	uint64_t seq;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
};

struct oneoff {
	struct oneoffs *set;
	struct oneoff *next;
	char *env, *app, *kind, *command;
	char id[96];
	char key[200];
	char ident[80];
	int release, pid;
	struct driver *drv;
	struct driver_proc *proc;
	struct log_sink *sink;
	struct oneoff_events ev;       /* zeroed once detached */
	struct profile profile;
	bool has_profile;
	uv_timer_t deadline, kill;
	int handles;                   /* open timers */
	bool exited, timed_out, stopped, too_much, freed;
	int64_t started_us, output, output_limit;
	char started_at[40];
	/* output as lines, for on_line and the report */
	struct buf partial[2];
	json_t *head, *tail;
	int64_t lines;
};

#define REPORT_HEAD 5
#define REPORT_TAIL 20
#define ONEOFF_LINE_MAX 4096

/* One line of output: made printable and UTF-8, kept for the report, given to on_line. */
static void take_line(struct oneoff *o, int stream, const char *s, size_t n)
{
	if (n && s[n - 1] == '\r')
		n--;
	char *text = xstrndup(s, n);
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			*p = '?';
	json_t *line = json_string(text);
	if (!line)
		line = json_string("(a line that is not UTF-8)");
	free(text);
	o->lines++;
	if (json_array_size(o->head) < REPORT_HEAD)
		json_array_append(o->head, line);
	json_array_append(o->tail, line);
	if (json_array_size(o->tail) > REPORT_TAIL)
		json_array_remove(o->tail, 0);
	if (o->ev.on_line)
		o->ev.on_line(o->ev.arg, stream, json_string_value(line));
	json_decref(line);
}

static void split_lines(struct oneoff *o, int stream, const char *data, size_t n)
{
	struct buf *b = &o->partial[stream == 2 ? 1 : 0];
	buf_add(b, data, n);
	size_t start = 0;
	const char *nl;
	while ((nl = memchr(b->p + start, '\n', b->len - start))) {
		take_line(o, stream, b->p + start, (size_t)(nl - (b->p + start)));
		start = (size_t)(nl - b->p) + 1;
	}
	while (b->len - start > ONEOFF_LINE_MAX) {             /* a very long line: in pieces */
		take_line(o, stream, b->p + start, ONEOFF_LINE_MAX);
		start += ONEOFF_LINE_MAX;
	}
	buf_consume(b, start);
}

/* The report of a run: every line when short, else the first, "...", the last (new ref). */
static json_t *report(const struct oneoff *o)
{
	json_t *r = json_array();
	if (o->lines > (int64_t)json_array_size(o->tail)) {
		json_array_extend(r, o->head);
		json_array_append_new(r, json_string("..."));
	}
	json_array_extend(r, o->tail);
	return r;
}

static void oo_maybe_free(struct oneoff *o)
{
	if (!o->exited || o->handles > 0 || o->freed)
		return;
	o->freed = true;
	struct oneoffs *s = o->set;
	for (struct oneoff **pp = &s->head; *pp; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			break;
		}
	}
	free(o->env);
	free(o->app);
	free(o->kind);
	free(o->command);
	free(o->profile.name);
	buf_free(&o->partial[0]);
	buf_free(&o->partial[1]);
	json_decref(o->head);
	json_decref(o->tail);
	free(o);
	if (!s->head && s->shutdown_done) {
		void (*done)(void *) = s->shutdown_done;
		s->shutdown_done = NULL;
		done(s->shutdown_arg);
	}
}

static void on_timer_closed(uv_handle_t *h)
{
	struct oneoff *o = h->data;
	o->handles--;
	oo_maybe_free(o);
}

static void on_output(void *arg, int stream, int64_t ts_us, const char *data, size_t n)
{
	struct oneoff *o = arg;
	o->output += (int64_t)n;
	if (o->sink)
		logs_sink_write(o->sink, stream, data, n);
	if (o->ev.on_output)
		o->ev.on_output(o->ev.arg, stream, data, n);
	split_lines(o, stream, data, n);
	if (o->output_limit && o->output > o->output_limit && !o->too_much && o->proc) {
		o->too_much = true;
		log_warn("%s/%s %s printed more than %lld bytes; stopping it", o->env, o->app, o->id,
			 (long long)o->output_limit);
		o->drv->signal(o->proc, SIGKILL);
	}
}

static int proc_pid(struct oneoff *o)
{
	json_t *d = json_object();
	o->drv->describe(o->proc, d);
	json_t *p = json_object_get(d, "pid");
	int pid = json_is_integer(p) ? (int)json_integer_value(p) : 0;
	json_decref(d);
	return pid;
}

static void on_started(void *arg)
{
	struct oneoff *o = arg;
	snprintf(o->ident, sizeof o->ident, "%s", o->drv->ident(o->proc));
	o->pid = proc_pid(o);
	log_info("%s/%s %s running (%s)", o->env, o->app, o->id, o->ident);
}

static void on_progress(void *arg, const char *text)
{
	struct oneoff *o = arg;
	if (o->sink) {
		char line[600];
		int n = snprintf(line, sizeof line, "berth: %s: %s\n", o->id, text);
		logs_sink_write(o->sink, LOGS_STREAM_BERTH, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1));
	}
}

static void describe(const struct oneoff *o, struct oneoff_result *r)
{
	if (r->oom && o->has_profile)
		snprintf(r->summary, sizeof r->summary, "out of memory (limit %lld MiB, profile %s)",
			 (long long)(o->profile.memory_bytes >> 20), o->profile.name);
	else if (r->oom)
		snprintf(r->summary, sizeof r->summary, "out of memory (killed by the kernel)");
	else if (r->too_much_output)
		snprintf(r->summary, sizeof r->summary, "stopped: more than %lld MiB of output",
			 (long long)(o->output_limit >> 20));
	else if (r->timed_out)
		snprintf(r->summary, sizeof r->summary, "timed out after %lld s and was stopped",
			 (long long)((r->duration_ms + 500) / 1000));
	else if (r->signal)
		snprintf(r->summary, sizeof r->summary, "killed by signal %d (%s)", r->signal, strsignal(r->signal));
	else
		snprintf(r->summary, sizeof r->summary, "exit status %lld", (long long)r->status);
}

static void on_exit_cb(void *arg, const struct driver_exit *x)
{
	struct oneoff *o = arg;
	o->proc = NULL;
	o->exited = true;
	for (int k = 0; k < 2; k++)
		if (o->partial[k].len) {
			take_line(o, k + 1, o->partial[k].p, o->partial[k].len);
			buf_consume(&o->partial[k], o->partial[k].len);
		}
	struct oneoff_result r = {
		.status = x->started ? x->status : 127, .signal = x->signal, .timed_out = o->timed_out,
		.stopped = o->stopped, .too_much_output = o->too_much, .oom = x->oom,
		.duration_ms = (time_now_us() - o->started_us) / 1000,
	};
	describe(o, &r);
	if (!x->started)
		snprintf(r.summary, sizeof r.summary, "could not start: %s", x->detail);
	log_info("%s/%s %s ended: %s (%lld ms)", o->env, o->app, o->id, r.summary, (long long)r.duration_ms);
	if (o->sink) {
		char line[300];
		int n = snprintf(line, sizeof line, "berth: %s ended: %s\n", o->id, r.summary);
		logs_sink_write(o->sink, LOGS_STREAM_BERTH, line, (size_t)n);
		logs_sink_close(o->sink);
		o->sink = NULL;
	}
	uv_timer_stop(&o->deadline);
	uv_timer_stop(&o->kill);
	uv_close((uv_handle_t *)&o->deadline, on_timer_closed);
	uv_close((uv_handle_t *)&o->kill, on_timer_closed);
	struct oneoff_events ev = o->ev;
	memset(&o->ev, 0, sizeof o->ev);
	r.output = report(o);
	if (ev.on_exit)
		ev.on_exit(ev.arg, &r);
	json_decref(r.output);
}

static void on_kill(uv_timer_t *t)
{
	struct oneoff *o = t->data;
	if (o->proc)
		o->drv->signal(o->proc, SIGKILL);
}

void oneoff_stop(struct oneoff *o, int64_t grace_ms)
{
	if (!o || !o->proc)
		return;
	o->stopped = true;
	o->drv->signal(o->proc, SIGTERM);
	if (!uv_is_active((uv_handle_t *)&o->kill))
		uv_timer_start(&o->kill, on_kill, (uint64_t)(grace_ms > 0 ? grace_ms : DEFAULT_GRACE_MS), 0);
}

static void on_deadline(uv_timer_t *t)
{
	struct oneoff *o = t->data;
	if (!o->proc)
		return;
	log_warn("%s/%s %s reached its deadline; stopping it", o->env, o->app, o->id);
	oneoff_stop(o, DEFAULT_GRACE_MS);
	o->stopped = false;
	o->timed_out = true;
}

struct oneoffs *oneoffs_new(uv_loop_t *loop, struct drivers *drivers, struct logs *logs, const char *owner_tag)
{
	struct oneoffs *s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->drivers = drivers;
	s->logs = logs;
	s->owner_tag = xstrdup(owner_tag ? owner_tag : "");
	return s;
}

/* The slot number of a new one-off of this kind: one more than the highest running. */
static int next_slot(struct oneoffs *s, const char *env, const char *app, const char *kind)
{
	int slot = 1;
	for (struct oneoff *o = s->head; o; o = o->next) {
		if (strcmp(o->env, env) || strcmp(o->app, app) || strcmp(o->kind, kind))
			continue;
		const char *dot = strrchr(o->id, '.');
		int n = dot ? atoi(dot + 1) : 0;
		if (n >= slot)
			slot = n + 1;
	}
	return slot;
}

struct oneoff *oneoff_start(struct oneoffs *s, const struct oneoff_spec *spec, const struct oneoff_events *ev,
			    struct err *e)
{
	if (s->shutdown_done) {
		err_set(e, ERR_UNAVAILABLE, "the server is shutting down");
		return NULL;
	}
	struct oneoff *o = xcalloc(1, sizeof *o);
	o->set = s;
	o->env = xstrdup(spec->env);
	o->app = xstrdup(spec->app);
	o->kind = xstrdup(spec->kind);
	o->command = xstrdup(spec->command);
	o->release = spec->release;
	o->output_limit = spec->output_limit;
	o->head = json_array();
	o->tail = json_array();
	if (ev)
		o->ev = *ev;
	/* run and exec are numbered (run.1, run.2 at the same time); a build, the release phase
	 * and a cron job are one of their kind at a time per app. */
	bool numbered = !strcmp(spec->kind, "run") || !strcmp(spec->kind, "exec");
	int slot = numbered ? next_slot(s, spec->env, spec->app, spec->kind) : 1;
	if (numbered)
		snprintf(o->id, sizeof o->id, "%s.%d", spec->kind, slot);
	else
		snprintf(o->id, sizeof o->id, "%s", spec->kind);
	if (spec->profile) {
		o->has_profile = true;
		o->profile = *spec->profile;
		o->profile.name = xstrdup(spec->profile->name);
	}
	o->drv = spec->beside_driver ? spec->beside_driver
		 : drivers_get(s->drivers, spec->image ? "docker" : "process");
	if (!o->drv) {
		err_set(e, ERR_UNAVAILABLE, "%s runs an image, and this server has no container engine "
			"(start it with --docker-host unix:///PATH, or set DOCKER_HOST)", o->id);
		goto fail;
	}
	snprintf(o->key, sizeof o->key, "%s.%s.%s.%d.o%llx", spec->env, spec->app, spec->kind, slot,
		 (unsigned long long)++s->seq);
	if (spec->log) {
		o->sink = logs_sink_open(s->logs, spec->env, spec->app, spec->kind, numbered ? slot : 1, spec->release, e);
		if (!o->sink)
			goto fail;
	}
	struct envp env = {0};
	if (spec->full_env) {
		envp_put_all(&env, spec->env_vars);
	} else {
		envp_base(&env);
		envp_put_all(&env, spec->env_vars);
		envp_put(&env, "BERTH_INSTANCE", o->id);
	}
	envp_put(&env, "BERTH_OWNER", s->owner_tag);
	if (spec->stdin_mode == DRIVER_STDIN_TTY && !envp_get(&env, "TERM"))
		envp_put(&env, "TERM", "xterm-256color");
	struct driver_spec ds = {
		.env = spec->env, .app = spec->app, .process = spec->kind, .name = o->id, .key = o->key,
		.owner = s->owner_tag, .release = spec->release, .slot = slot, .image = spec->image,
		.command = spec->command, .cwd = spec->cwd, .vars = env.v, .profile = spec->profile,
		.limits_optional = spec->profile_optional, .volumes = spec->volumes, .nvolumes = spec->nvolumes,
		.beside = spec->beside, .stdin_mode = spec->stdin_mode, .rows = spec->rows, .cols = spec->cols,
	};
	struct driver_events dev = {.on_started = on_started, .on_progress = on_progress, .on_output = on_output,
				    .on_exit = on_exit_cb, .arg = o};
	int r = o->drv->start(o->drv, &ds, &dev, &o->proc, e);
	envp_free(&env);
	if (r < 0) {
		err_prefix(e, "%s", o->id);
		goto fail;
	}
	snprintf(o->ident, sizeof o->ident, "%s", r == 1 ? o->drv->ident(o->proc) : "starting");
	o->pid = r == 1 ? proc_pid(o) : 0;
	o->started_us = time_now_us();
	time_format_rfc3339(o->started_us, o->started_at, sizeof o->started_at);
	uv_timer_init(s->loop, &o->deadline);
	uv_timer_init(s->loop, &o->kill);
	o->deadline.data = o->kill.data = o;
	o->handles = 2;
	if (spec->timeout_ms > 0)
		uv_timer_start(&o->deadline, on_deadline, (uint64_t)spec->timeout_ms, 0);
	o->next = s->head;
	s->head = o;
	log_info("%s/%s %s started (%s): %s", o->env, o->app, o->id, o->ident,
		 strcmp(o->kind, "exec") && strcmp(o->kind, "run") ? o->kind : "command");
	return o;
fail:
	if (o->sink)
		logs_sink_close(o->sink);
	json_decref(o->head);
	json_decref(o->tail);
	free(o->env);
	free(o->app);
	free(o->kind);
	free(o->command);
	free(o->profile.name);
	free(o);
	return NULL;
}

int oneoff_write(struct oneoff *o, const void *data, size_t n)
{
	return o && o->proc ? o->drv->write_stdin(o->proc, data, n) : -1;
}

size_t oneoff_stdin_queued(const struct oneoff *o)
{
	return o && o->proc ? o->drv->stdin_queued(o->proc) : 0;
}

void oneoff_close_stdin(struct oneoff *o)
{
	if (o && o->proc)
		o->drv->close_stdin(o->proc);
}

void oneoff_resize(struct oneoff *o, int rows, int cols)
{
	if (o && o->proc)
		o->drv->resize(o->proc, rows, cols);
}

void oneoff_signal(struct oneoff *o, int sig)
{
	if (o && o->proc)
		o->drv->signal(o->proc, sig);
}

void oneoff_detach(struct oneoff *o, bool stop)
{
	if (!o)
		return;
	memset(&o->ev, 0, sizeof o->ev);
	if (stop)
		oneoff_stop(o, DEFAULT_GRACE_MS);
}

const char *oneoff_id(const struct oneoff *o)
{
	return o->id;
}

int oneoff_pid(const struct oneoff *o)
{
	return o->pid;
}

json_t *oneoffs_list(struct oneoffs *s, const char *env, const char *app)
{
	json_t *a = json_array();
	for (struct oneoff *o = s->head; o; o = o->next) {
		if (o->exited || (env && strcmp(env, o->env)) || (app && strcmp(app, o->app)))
			continue;
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:s}", "env", o->env, "app",
						   o->app, "id", o->id, "kind", o->kind, "pid", o->pid, "release",
						   o->release, "started_at", o->started_at, "command", o->command));
	}
	return a;
}

bool oneoffs_running(struct oneoffs *s, const char *env, const char *app, const char *kind)
{
	for (struct oneoff *o = s->head; o; o = o->next)
		if (!o->exited && !strcmp(o->env, env) && !strcmp(o->app, app) && !strcmp(o->kind, kind))
			return true;
	return false;
}

void oneoffs_stop_app(struct oneoffs *s, const char *env, const char *app)
{
	for (struct oneoff *o = s->head; o; o = o->next)
		if (!o->exited && !strcmp(o->env, env) && !strcmp(o->app, app))
			oneoff_stop(o, DEFAULT_GRACE_MS);
}

void oneoffs_shutdown(struct oneoffs *s, void (*done)(void *), void *arg)
{
	if (!s->head) {
		done(arg);
		return;
	}
	s->shutdown_done = done;
	s->shutdown_arg = arg;
	/* Owners still hear how their one-off ended (a build fails its deploy, a cron run is
	 * recorded); whoever must not be called any more has detached. */
	for (struct oneoff *o = s->head; o; o = o->next)
		oneoff_stop(o, DEFAULT_GRACE_MS);
}

void oneoffs_free(struct oneoffs *s)
{
	if (!s)
		return;
	free(s->owner_tag);
	free(s);
}
