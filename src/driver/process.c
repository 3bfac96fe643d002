/* driver/process: the process driver. Runs an instance as `/bin/sh -c COMMAND` in a new
 * session (so it leads its own process group), with stdin on /dev/null (or a pipe) and
 * stdout/stderr on pipes read by the loop; a one-off that wants a terminal gets a
 * pseudo-terminal instead (util-linux `setsid -c` makes it the controlling terminal).
 * The driver owns the instance's cgroup (driver/cgroup.h): made with the spec's profile
 * before the start, joined by the shell before it runs the command (so not even a fast fork
 * can escape), killed and removed after the exit. When the main process exits, whatever it
 * left in its group is killed: an instance never leaves orphans behind. Starting is
 * synchronous (start returns 1). */
#include "driver/driver.h"
#include "driver/cgroup.h"
#include "driver/sweep.h"
#include <stdio.h>
#include "util/buf.h"
#include "util/log.h"
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK (64 * 1024)
#define DRAIN_MS 200   /* after exit, how long to wait for pipe EOF (a grandchild may hold it) */

struct pdriver {
	uv_loop_t *loop;
	bool cgroups;               /* cgroup_init succeeded */
	char readbuf[READ_CHUNK];   /* one loop thread: read callbacks consume it synchronously */
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
};

static void proc_maybe_free(struct driver_proc *p)
{
	if (p->handles == 0) {
		if (p->cgroup_owned)
			cgroup_destroy(p->cgroup);
		free(p->cgroup);
		free(p);
	}
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
	if (p->cgroup_owned)
		cgroup_destroy(p->cgroup);
	free(p->cgroup);
	free(p);
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
	if (pick_cgroup(pd, spec, p, e) < 0) {
		free(p);
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
	free(pd);
	free(d);
}

/* After a crash of the server its processes are not adopted: the start-up sweep
 * (driver/sweep.c) stops them and the reconciler starts new ones. */
static int pd_adopt(struct driver *d, const char *owner, driver_found_fn fn, void *arg, struct err *e)
{
	int swept = sweep_orphans(owner);
	if (swept > 0)
		log_warn("stopped %d process%s left running by a previous server", swept, swept == 1 ? "" : "es");
	return 0;
}

struct driver *driver_process_new(uv_loop_t *loop, const char *cgroup_tag)
{
	struct driver *d = xcalloc(1, sizeof *d);
	struct pdriver *pd = xcalloc(1, sizeof *pd);
	pd->loop = loop;
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
	d->free = pd_free;
	d->signal = pd_signal;
	d->write_stdin = pd_write_stdin;
	d->stdin_queued = pd_stdin_queued;
	d->close_stdin = pd_close_stdin;
	d->resize = pd_resize;
	d->impl = pd;
	return d;
}
