/* driver/process: the process driver. Runs an instance as `/bin/sh -c COMMAND` in a new
 * session (so it leads its own process group), with stdin on /dev/null (or a pipe) and
 * stdout/stderr on pipes read by the loop; a one-off that wants a terminal gets a
 * pseudo-terminal instead (util-linux `setsid -c` makes it the controlling terminal).
 * The driver owns the instance's cgroup (driver/cgroup.h): made with the spec's profile
 * before the start, joined by the shell before it runs the command (so not even a fast fork
 * can escape), killed and removed after the exit. When the main process exits, whatever it
 * left in its group is killed: an instance never leaves orphans behind. Starting is
 * synchronous (start returns 1).
 * In-place upgrade (docs/upgrade.md): detach leaves an instance running and records it for
 * the successor (who it is, its pid, its cgroup, duplicates of its output pipes); the
 * successor, the same process after exec, gets that record (driver_process_inherit), offers
 * each instance to the reconciler (adopt) and watches the kept ones again (attach): their
 * pipes through uv_pipe_open, their exit through a SIGCHLD watcher of its own and
 * waitpid(pid) (libuv reaps only children it spawned itself). Without such a record, what a
 * previous server left is swept (driver/sweep.c), as after a crash. */
#include "driver/driver.h"
#include "driver/cgroup.h"
#include "driver/sweep.h"
#include <stdio.h>
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK (64 * 1024)
#define DRAIN_MS 200   /* after exit, how long to wait for pipe EOF (a grandchild may hold it) */

struct reaper;

struct pdriver {
	uv_loop_t *loop;
	bool cgroups;               /* cgroup_init succeeded */
	json_t *handover;           /* what detach recorded for a successor (array) */
	json_t *inherited;          /* the predecessor's record, until the adopt that offers it */
	struct driver_proc *adopted;   /* inherited instances being watched (attach) */
	pid_t *orphans;             /* inherited children nobody kept: reaped when they end */
	size_t norphans;
	struct reaper *reaper;      /* SIGCHLD watcher while there is any of the above */
	char readbuf[READ_CHUNK];   /* one loop thread: read callbacks consume it synchronously */
};

/* libuv waits only for the children it spawned; inherited ones are waited for here. */
struct reaper {
	uv_signal_t sig;
	uv_timer_t soon;            /* a look right after attach: it may have ended during the exec */
	struct pdriver *pd;
	int open;
};

struct driver_proc {
	struct pdriver *pd;
	uv_process_t proc;
	uv_pipe_t out, err;        /* TTY: out is the terminal's master side (read and written) */
	uv_pipe_t in;              /* PIPE: the write end of the child's stdin */
	enum driver_stdin stdin_mode;
	bool stdin_closed, in_open;
	size_t stdin_queued;
	uv_timer_t drain;
	struct driver_events ev;
	pid_t pid;
	char ident[32];
	int port;
	char *cgroup;
	bool cgroup_shared;         /* an exec beside an instance: never kill or remove the group */
	bool cgroup_owned;          /* made for this instance: removed after the exit */
	const struct profile *profile_for_oom;   /* for the out-of-memory message */
	int64_t memory_bytes;
	char profile_name[64];
	int handles;               /* open libuv handles; freed when it drops to 0 */
	bool exited, reported, out_eof, err_eof;
	int64_t status;
	int sig;
	/* who it is, for a successor (detach records it) */
	char *env, *app, *process, *key;
	int slot, release, gen;
	int64_t started_us;
	bool adopted;              /* inherited: no uv_process_t; the reaper waits for it */
	struct driver_proc *anext; /* pd->adopted */
};

static void proc_release(struct driver_proc *p)
{
	if (p->cgroup_owned)
		cgroup_destroy(p->cgroup);
	free(p->cgroup);
	free(p->env);
	free(p->app);
	free(p->process);
	free(p->key);
	free(p);
}

static void proc_maybe_free(struct driver_proc *p)
{
	if (p->handles == 0)
		proc_release(p);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct driver_proc *p = h->data;
	p->handles--;
	proc_maybe_free(p);
}

static void close_handle(struct driver_proc *p, uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, on_handle_closed);
}

static void kill_leftovers(struct driver_proc *p)
{
	if (p->pid > 0)
		kill(-p->pid, SIGKILL);
	if (p->cgroup && !p->cgroup_shared)
		cgroup_kill(p->cgroup);
}

/* Report the exit once the main process is gone and the pipes are drained (or the drain
 * deadline passed), then release everything. */
static void maybe_report(struct driver_proc *p, bool force)
{
	if (p->reported || !p->exited)
		return;
	if (!force && !(p->out_eof && p->err_eof))
		return;
	p->reported = true;
	kill_leftovers(p);
	uv_timer_stop(&p->drain);
	close_handle(p, (uv_handle_t *)&p->out);
	close_handle(p, (uv_handle_t *)&p->err);
	close_handle(p, (uv_handle_t *)&p->drain);
	if (!p->adopted)
		close_handle(p, (uv_handle_t *)&p->proc);
	if (p->in_open)
		close_handle(p, (uv_handle_t *)&p->in);
	p->stdin_closed = true;
	struct driver_exit x = {.status = p->status, .signal = p->sig, .started = true};
	if (p->cgroup_owned && p->sig == SIGKILL && cgroup_oom_kills(p->cgroup) > 0) {
		x.oom = true;
		if (p->memory_bytes)
			snprintf(x.detail, sizeof x.detail, "out of memory (limit %lld MiB, profile %s)",
				 (long long)(p->memory_bytes >> 20), p->profile_name);
		else
			snprintf(x.detail, sizeof x.detail, "out of memory (killed by the kernel)");
	}
	if (p->ev.on_exit)
		p->ev.on_exit(p->ev.arg, &x);
}

static void on_drain_timeout(uv_timer_t *t)
{
	maybe_report(t->data, true);
}

static void on_exit_cb(uv_process_t *h, int64_t status, int sig)
{
	struct driver_proc *p = h->data;
	p->exited = true;
	p->status = status;
	p->sig = sig;
	/* Leftover group members would keep the pipes open forever: kill them now, which also
	 * lets the pipes reach EOF promptly. */
	kill_leftovers(p);
	uv_timer_start(&p->drain, on_drain_timeout, DRAIN_MS, 0);
	maybe_report(p, false);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct driver_proc *p = h->data;
	b->base = p->pd->readbuf;
	b->len = sizeof p->pd->readbuf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct driver_proc *p = s->data;
	int stream = s == (uv_stream_t *)&p->out ? 1 : 2;
	if (n > 0) {
		if (p->ev.on_output && !p->reported)
			p->ev.on_output(p->ev.arg, stream, 0, b->base, (size_t)n);
		return;
	}
	if (n < 0) {
		uv_read_stop(s);
		if (stream == 1)
			p->out_eof = true;
		else
			p->err_eof = true;
		maybe_report(p, false);
	}
}

static void free_files(char **files, int nf)
{
	for (int k = 0; k < nf; k++)
		free(files[k]);
	free(files);
}

/* The cgroup the instance runs in: the one of the instance it runs beside, or its own, made
 * now with the spec's limits. */
static int pick_cgroup(struct pdriver *pd, const struct driver_spec *spec, struct driver_proc *p, struct err *e)
{
	if (spec->beside) {
		if (spec->beside->cgroup) {
			p->cgroup = xstrdup(spec->beside->cgroup);
			p->cgroup_shared = true;
		}
		return 0;
	}
	const struct profile *prof = spec->profile;
	if (!pd->cgroups) {
		if (prof && !spec->limits_optional)
			return err_set(e, ERR_UNAVAILABLE, "profile %s needs cgroups, which are not usable on this host (%s)",
				       prof->name, cgroup_mode());
		return 0;
	}
	if (cgroup_create(spec->key, prof, e) < 0)
		return -1;
	p->cgroup = xstrdup(spec->key);
	p->cgroup_owned = true;
	if (prof) {
		p->memory_bytes = prof->memory_bytes;
		snprintf(p->profile_name, sizeof p->profile_name, "%s", prof->name ? prof->name : "");
	}
	return 0;
}

static void proc_discard(struct driver_proc *p)
{
	proc_release(p);
}

static int pd_start(struct driver *d, const struct driver_spec *spec, const struct driver_events *ev,
		    struct driver_proc **out, struct err *e)
{
	struct pdriver *pd = d->impl;
	if (spec->image)
		return err_set(e, ERR_INVALID, "the process driver cannot run an image (%s)", spec->image);
	if (!spec->command)
		return err_set(e, ERR_INVALID, "no command to run");
	struct driver_proc *p = xcalloc(1, sizeof *p);
	p->pd = pd;
	p->ev = *ev;
	p->port = spec->port;
	p->env = xstrdup(spec->env ? spec->env : "");
	p->app = xstrdup(spec->app ? spec->app : "");
	p->process = xstrdup(spec->process ? spec->process : "");
	p->key = xstrdup(spec->key ? spec->key : "");
	p->slot = spec->slot;
	p->release = spec->release;
	p->gen = spec->gen;
	p->started_us = time_now_us();
	if (pick_cgroup(pd, spec, p, e) < 0) {
		proc_release(p);
		return -1;
	}
	/* With cgroups, the shell that will run the command first writes its own pid into the
	 * instance's cgroup.procs files, so the command and everything it ever forks are in the
	 * group from the first instruction; then it evals the command in place (an `exec` in
	 * the command still replaces it). No extra exec, no helper binary to load. The command
	 * comes last, after the files; it then sees what `/bin/sh -c COMMAND` would give it:
	 * $0 = /bin/sh, no positional parameters, no variables of ours. */
	char **files = NULL;
	int nf = p->cgroup ? cgroup_procs_files(p->cgroup, &files) : 0;
	if (p->cgroup && nf <= 0) {
		free_files(files, nf > 0 ? nf : 0);
		err_set(e, ERR_UNAVAILABLE, "instance cgroup %s is missing", p->cgroup);
		proc_discard(p);
		return -1;
	}
	char **argv = xcalloc((size_t)nf + 8, sizeof *argv);   /* + setsid -c for a terminal */
	int ac = 0;
	argv[ac++] = "/bin/sh";
	argv[ac++] = "-c";
	if (nf > 0) {
		argv[ac++] = "for __berth_f do [ $# -gt 1 ] || break; echo $$ >\"$__berth_f\" || "
			     "{ echo \"berth: cannot join cgroup $__berth_f\" >&2; exit 127; }; shift; done; "
			     "unset __berth_f; eval \"set --; $1\"";
		argv[ac++] = "/bin/sh";
		for (int k = 0; k < nf; k++)
			argv[ac++] = files[k];
		argv[ac++] = (char *)spec->command;
	} else {
		argv[ac++] = (char *)spec->command;
	}
	argv[ac] = NULL;

	p->stdin_mode = spec->stdin_mode;
	int master = -1, slave = -1;
	if (spec->stdin_mode == DRIVER_STDIN_TTY) {
		struct winsize ws = {.ws_row = (unsigned short)(spec->rows > 0 ? spec->rows : 24),
				     .ws_col = (unsigned short)(spec->cols > 0 ? spec->cols : 80)};
		if (openpty(&master, &slave, NULL, NULL, &ws) < 0) {
			int en = errno;
			free_files(files, nf);
			free(argv);
			proc_discard(p);
			return err_errno(e, en, "open a pseudo-terminal");
		}
		(void)fcntl(master, F_SETFD, FD_CLOEXEC);
		/* `setsid -c`: a new session whose controlling terminal is the pty on stdin. */
		memmove(argv + 2, argv, (size_t)(ac + 1) * sizeof *argv);
		argv[0] = "/usr/bin/setsid";
		argv[1] = "-c";
		ac += 2;
	}
	uv_pipe_init(pd->loop, &p->out, 0);
	uv_pipe_init(pd->loop, &p->err, 0);
	uv_timer_init(pd->loop, &p->drain);
	p->out.data = p->err.data = p->drain.data = p->proc.data = p->in.data = p;
	p->handles = 3;

	uv_stdio_container_t stdio[3];
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&p->out;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&p->err;
	if (spec->stdin_mode == DRIVER_STDIN_PIPE) {
		uv_pipe_init(pd->loop, &p->in, 0);
		p->in_open = true;
		p->handles++;
		stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
		stdio[0].data.stream = (uv_stream_t *)&p->in;
	} else if (spec->stdin_mode == DRIVER_STDIN_TTY) {
		for (int k = 0; k < 3; k++) {
			stdio[k].flags = UV_INHERIT_FD;
			stdio[k].data.fd = slave;
		}
	}

	uv_process_options_t o;
	memset(&o, 0, sizeof o);
	o.file = argv[0];
	o.args = argv;
	o.env = (char **)spec->vars;
	o.cwd = spec->cwd;
	/* setsid(): its own session and process group (a terminal gets it from `setsid -c`). */
	o.flags = spec->stdin_mode == DRIVER_STDIN_TTY ? 0 : UV_PROCESS_DETACHED;
	o.exit_cb = on_exit_cb;
	o.stdio = stdio;
	o.stdio_count = 3;
	int r = uv_spawn(pd->loop, &p->proc, &o);
	if (slave >= 0)
		close(slave);
	free_files(files, nf);
	free(argv);
	if (r < 0) {
		err_set(e, ERR_INTERNAL, "start `%s` in %s: %s", spec->command, spec->cwd, uv_strerror(r));
		/* uv_spawn leaves the process handle initialised and needing a close on failure. */
		p->handles++;
		p->reported = true;
		close_handle(p, (uv_handle_t *)&p->proc);
		close_handle(p, (uv_handle_t *)&p->out);
		close_handle(p, (uv_handle_t *)&p->err);
		close_handle(p, (uv_handle_t *)&p->drain);
		if (p->in_open)
			close_handle(p, (uv_handle_t *)&p->in);
		if (master >= 0)
			close(master);
		return -1;
	}
	p->handles++;
	p->pid = p->proc.pid;
	snprintf(p->ident, sizeof p->ident, "pid %d", (int)p->pid);
	if (master >= 0) {
		/* The terminal is both directions; there is no separate stderr. */
		if (uv_pipe_open(&p->out, master) < 0)
			close(master);
		p->err_eof = true;
	} else {
		uv_read_start((uv_stream_t *)&p->err, on_alloc, on_read);
	}
	uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read);
	*out = p;
	return 1;
}

static const char *pd_ident(const struct driver_proc *p)
{
	return p->ident;
}

static void pd_describe(const struct driver_proc *p, json_t *into)
{
	json_object_set_new(into, "pid", p->pid > 0 ? json_integer(p->pid) : json_null());
}

static int pd_address(const struct driver_proc *p, char *host, size_t hostlen, int *port)
{
	if (!p->port)
		return -1;
	snprintf(host, hostlen, "127.0.0.1");
	*port = p->port;
	return 0;
}

static void pd_signal(struct driver_proc *p, int sig)
{
	if (p->reported || p->pid <= 0)
		return;
	if (kill(-p->pid, sig) < 0 && errno == ESRCH)
		kill(p->pid, sig);
	if (sig == SIGKILL && p->cgroup && !p->cgroup_shared)
		cgroup_kill(p->cgroup);
}

struct stdin_write {
	uv_write_t w;
	struct driver_proc *p;
	size_t n;
	char data[];
};

static void on_stdin_written(uv_write_t *w, int status)
{
	struct stdin_write *sw = (struct stdin_write *)w;
	sw->p->stdin_queued -= sw->n;
	free(sw);
}

static uv_stream_t *stdin_stream(struct driver_proc *p)
{
	if (p->reported || p->stdin_closed)
		return NULL;
	if (p->stdin_mode == DRIVER_STDIN_PIPE)
		return (uv_stream_t *)&p->in;
	if (p->stdin_mode == DRIVER_STDIN_TTY)
		return (uv_stream_t *)&p->out;
	return NULL;
}

static int pd_write_stdin(struct driver_proc *p, const void *data, size_t n)
{
	uv_stream_t *st = stdin_stream(p);
	if (!st)
		return -1;
	if (!n)
		return 0;
	struct stdin_write *sw = xmalloc(sizeof *sw + n);
	sw->p = p;
	sw->n = n;
	memcpy(sw->data, data, n);
	uv_buf_t b = uv_buf_init(sw->data, (unsigned int)n);
	if (uv_write(&sw->w, st, &b, 1, on_stdin_written) < 0) {
		free(sw);
		return -1;
	}
	p->stdin_queued += n;
	return 0;
}

static size_t pd_stdin_queued(const struct driver_proc *p)
{
	return p->stdin_queued;
}

static void on_stdin_shutdown(uv_shutdown_t *req, int status)
{
	struct driver_proc *p = req->data;
	free(req);
	if (p->in_open)
		close_handle(p, (uv_handle_t *)&p->in);
}

static void pd_close_stdin(struct driver_proc *p)
{
	uv_stream_t *st = stdin_stream(p);
	if (!st)
		return;
	if (p->stdin_mode == DRIVER_STDIN_TTY) {
		pd_write_stdin(p, "\x04", 1);     /* the terminal's end-of-file character */
		return;
	}
	p->stdin_closed = true;
	uv_shutdown_t *req = xmalloc(sizeof *req);
	req->data = p;
	if (uv_shutdown(req, st, on_stdin_shutdown) < 0) {
		free(req);
		close_handle(p, (uv_handle_t *)&p->in);
	}
}

static void pd_resize(struct driver_proc *p, int rows, int cols)
{
	if (p->stdin_mode != DRIVER_STDIN_TTY || p->reported || rows <= 0 || cols <= 0)
		return;
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)&p->out, &fd) < 0)
		return;
	struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
	ioctl(fd, TIOCSWINSZ, &ws);   /* the kernel sends SIGWINCH to the foreground group */
}

static void pd_free(struct driver *d)
{
	struct pdriver *pd = d->impl;
	if (pd->cgroups && cgroup_release())
		log_warn("cgroups: berth-* root groups still hold instance groups; the next start sweeps them");
	json_decref(pd->handover);
	json_decref(pd->inherited);
	free(pd->orphans);
	if (pd->reaper)
		pd->reaper->pd = NULL;    /* still watching: nothing may reach pd any more */
	free(pd);
	free(d);
}

/* ---- in-place upgrade: the predecessor's side (detach) ---- */

static void adopted_unlink(struct driver_proc *p)
{
	for (struct driver_proc **pp = &p->pd->adopted; *pp; pp = &(*pp)->anext)
		if (*pp == p) {
			*pp = p->anext;
			break;
		}
	p->anext = NULL;
}

static void reaper_closed(uv_handle_t *h)
{
	struct reaper *r = h->data;
	if (--r->open == 0)
		free(r);
}

static void reaper_maybe_close(struct pdriver *pd)
{
	struct reaper *r = pd->reaper;
	if (!r || pd->adopted || pd->norphans)
		return;
	pd->reaper = NULL;
	uv_close((uv_handle_t *)&r->sig, reaper_closed);
	uv_close((uv_handle_t *)&r->soon, reaper_closed);
}

/* A duplicate (close-on-exec) of a pipe's descriptor that outlives the handle; -1 if none. */
static int keep_fd(uv_pipe_t *h, bool eof)
{
	uv_os_fd_t fd;
	if (eof || uv_fileno((uv_handle_t *)h, &fd) < 0)
		return -1;
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (d < 0)
		log_warn("cannot keep an instance's output pipe for the next server: %s", strerror(errno));
	return d;
}

/* The record the successor adopts the instance from; false when it cannot be handed over. */
static bool record(struct driver_proc *p)
{
	int out = keep_fd(&p->out, p->out_eof);
	int err = p->stdin_mode == DRIVER_STDIN_TTY ? -1 : keep_fd(&p->err, p->err_eof);
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:i, s:i, s:b}", "env", p->env,
			      "app", p->app, "process", p->process, "key", p->key, "slot", p->slot, "release",
			      p->release, "gen", p->gen, "pid", (int)p->pid, "port", p->port, "started_us",
			      (json_int_t)p->started_us, "stdout", out, "stderr", err, "cgroup_shared",
			      p->cgroup_shared);
	if (!j) {
		if (out >= 0)
			close(out);
		if (err >= 0)
			close(err);
		return false;
	}
	json_object_set_new(j, "cgroup", p->cgroup ? json_string(p->cgroup) : json_null());
	json_array_append_new(p->pd->handover, j);
	return true;
}

/* Leave the instance running for the successor: no event, no signal; the output pipes stay
 * open as the duplicates recorded (the kernel keeps what the instance writes meanwhile). */
static void pd_detach(struct driver_proc *p)
{
	struct pdriver *pd = p->pd;
	if (!p->exited && !p->reported && p->pid > 0) {
		if (record(p))
			p->cgroup_owned = false;     /* the successor's now */
		else
			log_warn("pid %d cannot be handed over; the next server stops it", (int)p->pid);
	}
	if (p->adopted)
		adopted_unlink(p);
	p->reported = true;
	p->stdin_closed = true;
	uv_timer_stop(&p->drain);
	close_handle(p, (uv_handle_t *)&p->out);
	close_handle(p, (uv_handle_t *)&p->err);
	close_handle(p, (uv_handle_t *)&p->drain);
	if (!p->adopted)
		close_handle(p, (uv_handle_t *)&p->proc);   /* a running child: libuv lets it be */
	if (p->in_open)
		close_handle(p, (uv_handle_t *)&p->in);
	reaper_maybe_close(pd);
}

json_t *driver_process_handover(struct driver *d, json_t *fds)
{
	struct pdriver *pd = d->impl;
	json_t *list = pd->handover;
	pd->handover = json_array();
	size_t k;
	json_t *h;
	json_array_foreach(list, k, h) {
		for (int s = 0; s < 2; s++) {
			json_t *fd = json_object_get(h, s ? "stderr" : "stdout");
			if (json_integer_value(fd) >= 0)
				json_array_append(fds, fd);
		}
	}
	return list;
}

/* ---- in-place upgrade: the successor's side (adopt, attach) ---- */

/* An adopted instance's main process ended. known: wstatus is its status from waitpid. */
static void adopted_exited(struct driver_proc *p, int wstatus, bool known)
{
	adopted_unlink(p);
	p->exited = true;
	if (known && WIFSIGNALED(wstatus))
		p->sig = WTERMSIG(wstatus);
	else
		p->status = known && WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 255;
	kill_leftovers(p);
	uv_timer_start(&p->drain, on_drain_timeout, DRAIN_MS, 0);
	maybe_report(p, false);
}

static void reap(struct pdriver *pd)
{
again:
	for (struct driver_proc *p = pd->adopted; p; p = p->anext) {
		int st = 0;
		pid_t r;
		do
			r = waitpid(p->pid, &st, WNOHANG);
		while (r < 0 && errno == EINTR);
		if (r == 0)
			continue;
		adopted_exited(p, st, r == p->pid);   /* r < 0: not (or no more) ours to wait for */
		goto again;                           /* the callbacks may have changed the list */
	}
	size_t n = 0;
	for (size_t k = 0; k < pd->norphans; k++)
		if (waitpid(pd->orphans[k], NULL, WNOHANG) == 0)
			pd->orphans[n++] = pd->orphans[k];
	pd->norphans = n;
	reaper_maybe_close(pd);
}

static void on_sigchld(uv_signal_t *h, int sig)
{
	struct reaper *r = h->data;
	if (r->pd)
		reap(r->pd);
}

static void on_reap_soon(uv_timer_t *t)
{
	struct reaper *r = t->data;
	if (r->pd)
		reap(r->pd);
}

/* Watch SIGCHLD (if not yet) and look at the inherited children on the next loop turn. */
static void reap_soon(struct pdriver *pd)
{
	if (!pd->reaper) {
		struct reaper *r = xcalloc(1, sizeof *r);
		r->pd = pd;
		uv_signal_init(pd->loop, &r->sig);
		uv_timer_init(pd->loop, &r->soon);
		r->sig.data = r->soon.data = r;
		r->open = 2;
		uv_signal_start(&r->sig, on_sigchld, SIGCHLD);
		pd->reaper = r;
	}
	uv_timer_start(&pd->reaper->soon, on_reap_soon, 0, 0);
}

static int rec_int(json_t *h, const char *k)
{
	json_t *v = json_object_get(h, k);
	return json_is_integer(v) ? (int)json_integer_value(v) : -1;
}

static void close_rec_fds(json_t *h)
{
	for (int s = 0; s < 2; s++) {
		int fd = rec_int(h, s ? "stderr" : "stdout");
		if (fd >= 0)
			close(fd);
	}
}

static void open_pipe(struct driver_proc *p, uv_pipe_t *h, int fd, bool *eof)
{
	if (fd >= 0 && uv_pipe_open(h, fd) == 0) {
		uv_read_start((uv_stream_t *)h, on_alloc, on_read);
		return;
	}
	if (fd >= 0)
		close(fd);
	*eof = true;
}

static int pd_attach(struct driver *d, const struct driver_found *f, const struct driver_spec *spec,
		     const struct driver_events *ev, struct driver_proc **out, struct err *e)
{
	struct pdriver *pd = d->impl;
	json_t *h = f->handover;
	int pid = rec_int(h, "pid");
	if (!json_is_object(h) || pid <= 0)
		return err_set(e, ERR_INTERNAL, "no hand-over record for %s", f->id);
	struct driver_proc *p = xcalloc(1, sizeof *p);
	p->pd = pd;
	p->ev = *ev;
	p->pid = pid;
	p->port = f->port;
	p->adopted = true;
	p->env = xstrdup(f->env);
	p->app = xstrdup(f->app);
	p->process = xstrdup(f->process);
	p->key = xstrdup(f->key);
	p->slot = f->slot;
	p->release = f->release;
	p->gen = f->gen;
	p->started_us = f->started_us;
	snprintf(p->ident, sizeof p->ident, "pid %d", pid);
	const char *cg = json_string_value(json_object_get(h, "cgroup"));
	if (cg) {
		p->cgroup = xstrdup(cg);
		p->cgroup_shared = json_is_true(json_object_get(h, "cgroup_shared"));
		p->cgroup_owned = !p->cgroup_shared;
	}
	if (spec->profile) {
		p->memory_bytes = spec->profile->memory_bytes;
		snprintf(p->profile_name, sizeof p->profile_name, "%s", spec->profile->name ? spec->profile->name : "");
	}
	uv_pipe_init(pd->loop, &p->out, 0);
	uv_pipe_init(pd->loop, &p->err, 0);
	uv_timer_init(pd->loop, &p->drain);
	p->out.data = p->err.data = p->drain.data = p;
	p->handles = 3;
	int ofd = rec_int(h, "stdout"), efd = rec_int(h, "stderr");
	json_object_set_new(h, "stdout", json_integer(-1));   /* the pipes are ours now */
	json_object_set_new(h, "stderr", json_integer(-1));
	json_object_set_new(h, "taken", json_true());
	open_pipe(p, &p->out, ofd, &p->out_eof);
	open_pipe(p, &p->err, efd, &p->err_eof);
	p->anext = pd->adopted;
	pd->adopted = p;
	reap_soon(pd);
	*out = p;
	return 1;
}

/* Is pid a running child of ours? A child that ended (during the exec) is reaped here. */
static bool running_child(pid_t pid)
{
	int st;
	pid_t r;
	do
		r = waitpid(pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	return r == 0;
}

static void add_orphan(struct pdriver *pd, pid_t pid)
{
	pd->orphans = xrealloc(pd->orphans, (pd->norphans + 1) * sizeof *pd->orphans);
	pd->orphans[pd->norphans++] = pid;
}

/* Children the predecessor had and did not hand over (an exec health check being killed,
 * say) are ours now: kill them and wait for them, or they would stay zombies. Called before
 * this image has started any child of its own. */
static void take_strays(struct pdriver *pd)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t self = getpid();
	while (d && (de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 1)
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%ld/stat", pid);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = 0;
		const char *rp = strrchr(buf, ')');
		int ppid = 0;
		char state;
		if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2 || ppid != self)
			continue;
		bool handed = false;
		size_t k;
		json_t *h;
		json_array_foreach(pd->inherited, k, h)
			handed = handed || rec_int(h, "pid") == pid;
		if (handed)
			continue;
		kill((pid_t)pid, SIGKILL);
		add_orphan(pd, (pid_t)pid);
	}
	if (d)
		closedir(d);
	if (pd->norphans) {
		log_info("upgrade: %zu child process%s of the previous image not handed over: stopped", pd->norphans,
			 pd->norphans == 1 ? "" : "es");
		reap_soon(pd);
	}
}

/* Offer the predecessor's instances (fn set), then sweep everything of this data dir that
 * nobody kept. Without fn (the early call at start-up, before the store is open) the
 * inherited instances are spared and kept for the call that offers them. After a crash there
 * is no record: the sweep stops every process a previous server left and the reconciler
 * starts new ones. */
static int pd_adopt(struct driver *d, const char *owner, driver_found_fn fn, void *arg, struct err *e)
{
	struct pdriver *pd = d->impl;
	size_t n = json_array_size(pd->inherited), k, kept = 0;
	json_t *h;
	pid_t *pgids = xcalloc(n + 1, sizeof *pgids);
	const char **groups = xcalloc(n + 1, sizeof *groups);
	struct sweep_keep keep = {pgids, 0, groups, 0};
	json_array_foreach(pd->inherited, k, h) {
		int pid = rec_int(h, "pid");
		if (fn && pid > 0 && running_child(pid)) {
			char id[32];
			snprintf(id, sizeof id, "pid %d", pid);
			struct driver_found f = {
				.env = json_string_value(json_object_get(h, "env")),
				.app = json_string_value(json_object_get(h, "app")),
				.process = json_string_value(json_object_get(h, "process")),
				.key = json_string_value(json_object_get(h, "key")),
				.slot = rec_int(h, "slot"), .release = rec_int(h, "release"), .gen = rec_int(h, "gen"),
				.port = rec_int(h, "port"),
				.started_us = json_integer_value(json_object_get(h, "started_us")),
				.id = id, .driver = "process", .handover = h,
			};
			if (f.env && f.app && f.process && f.key && f.slot > 0 && f.release > 0 && f.gen >= 0 &&
			    f.port >= 0)
				fn(arg, &f);
		} else if (fn && pid > 0) {
			log_warn("pid %d (%s) ended while the server was upgrading", pid,
				 json_string_value(json_object_get(h, "key")));
		}
		bool taken = json_is_true(json_object_get(h, "taken"));
		if (fn && !taken) {
			close_rec_fds(h);
			if (pid > 0)
				add_orphan(pd, pid);
			continue;
		}
		kept += taken;
		if (pid > 0)
			pgids[keep.npgids++] = pid;
		const char *cg = json_string_value(json_object_get(h, "cgroup"));
		if (cg && !json_is_true(json_object_get(h, "cgroup_shared")))
			groups[keep.ngroups++] = cg;
	}
	int swept = sweep_orphans(owner, &keep);
	free(pgids);
	free(groups);
	if (swept > 0)
		log_warn("stopped %d process%s left running by a previous server", swept, swept == 1 ? "" : "es");
	if (fn && n) {
		log_info("upgrade: kept %zu of the %zu process%s the previous server handed over", kept, n,
			 n == 1 ? "" : "es");
		json_decref(pd->inherited);
		pd->inherited = NULL;
		if (pd->norphans)
			reap_soon(pd);
	}
	return 0;
}

void driver_process_inherit(struct driver *d, json_t *instances)
{
	struct pdriver *pd = d->impl;
	json_decref(pd->inherited);
	pd->inherited = json_is_array(instances) ? instances : NULL;
	if (!pd->inherited) {
		json_decref(instances);
		return;
	}
	take_strays(pd);
}

struct driver *driver_process_new(uv_loop_t *loop, const char *cgroup_tag)
{
	struct driver *d = xcalloc(1, sizeof *d);
	struct pdriver *pd = xcalloc(1, sizeof *pd);
	pd->loop = loop;
	pd->handover = json_array();
	struct err ce = ERR_INIT;
	if (cgroup_init(cgroup_tag, &ce) < 0) {
		log_warn("cgroups unavailable (%s): instances run without resource limits", ce.msg);
	} else {
		pd->cgroups = true;
		log_info("cgroups: %s", cgroup_mode());
	}
	d->name = "process";
	d->start = pd_start;
	d->ident = pd_ident;
	d->describe = pd_describe;
	d->address = pd_address;
	d->adopt = pd_adopt;
	d->attach = pd_attach;
	d->detach = pd_detach;
	d->detach_upgrade_only = true;
	d->free = pd_free;
	d->signal = pd_signal;
	d->write_stdin = pd_write_stdin;
	d->stdin_queued = pd_stdin_queued;
	d->close_stdin = pd_close_stdin;
	d->resize = pd_resize;
	d->impl = pd;
	return d;
}
