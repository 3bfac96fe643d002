/* server/upgrade: the in-place upgrade of a running server (docs/upgrade.md).
 *
 * SIGUSR2 (or `berth server --upgrade`, which sends it) makes the server re-execute its
 * binary as it is on disk now, keeping its pid: the instances stay its children, the data
 * dir's lock (an flock on an open file) and the listening sockets stay open across the exec,
 * and the kernel queues new connections on those sockets meanwhile, so that no instance is
 * restarted and no request refused. The steps, each on the loop:
 *   check     run `NEWBIN server --handover-version`: it must run and speak our hand-over
 *   wait      until no rollout, release phase, build, deploy upload, cron run or instance
 *             stop is under way
 *   one-offs  `run`/`exec` sessions (and detached runs) are stopped, the router still serving
 *   drain     stop accepting (the sockets are kept), end every connection softly
 *   handover  the supervisor detaches every instance (the process driver records each one
 *             and keeps its output pipes)
 *   exec      write DATA/handover.json, let exactly the handed-over descriptors survive, exec
 * Until the drain begins, a failure leaves the server as it was (DATA/upgrade.result says
 * why). The successor reads the hand-over at start-up (handover_load) and takes the sockets,
 * the lock and the instances; the reconciler adopts the instances it still wants.
 * Also here: `berth server --upgrade`, the client that asks for an upgrade and waits for it. */
#include "server/internal.h"
#include "api/api.h"
#include "dns/dns.h"
#include "driver/driver.h"
#include "logs/logs.h"
#include "reconcile/reconcile.h"
#include "router/router.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define CHECK_MS 10000                   /* the new binary answers --handover-version within this */
#define BUSY_POLL_MS 200                 /* how often the wait looks again */
#define BUSY_MAX_MS (10 * 60 * 1000)     /* then the upgrade is given up */
#define DRAIN_POLL_MS 5
#define ROUTER_IDLE_GRACE_MS 1000        /* a keep-alive client's last request may come this late */
#define DRAIN_MS 5000                    /* requests still in flight then are cut */
#define MAX_LISTENERS 64
#define CLIENT_POLL_MS 50
#define CLIENT_WAIT_MS (BUSY_MAX_MS + 60 * 1000)

enum phase { UP_CHECK, UP_WAIT, UP_ONEOFFS, UP_DRAIN, UP_HANDOVER };

struct upgrade {
	struct server *s;
	enum phase phase;
	int64_t t0_us;               /* the request */
	uint64_t phase_ms;           /* uv_now when the phase began */
	uv_process_t check;          /* `NEWBIN server --handover-version` */
	uv_pipe_t check_out;
	uv_timer_t timer;            /* the check's deadline, the wait's and the drain's polls */
	int handles;                 /* open among the three; the struct goes with the last */
	bool check_exited, check_eof;
	bool ended;                  /* given up (up_end): only closing remains */
	int64_t check_status;
	int check_sig;
	struct buf out;              /* what the check printed */
	char why[256];               /* what the wait waits for (logged when it changes) */
	int api_fd, dns_udp, dns_tcp, nrouter;
	int router_fds[MAX_LISTENERS];
	json_t *notes;               /* the supervisor's, for the successor */
	bool stop_requested;         /* SIGTERM during the hand-over: the successor stops */
};

struct handover {
	json_t *doc;
	int lock_fd, api_fd, dns_udp, dns_tcp, nrouter;
	int router_fds[MAX_LISTENERS];
	json_t *process, *notes;
	int64_t requested_us;
	bool stop_requested;
};

/* ---- DATA/upgrade.result: what `berth server --upgrade` follows ---- */

/* A small file replaced atomically (no fsync: it only has to be whole when read). */
static int write_small(const char *path, const char *text)
{
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r = -1;
	if (fd >= 0) {
		size_t n = strlen(text), off = 0;
		while (off < n) {
			ssize_t w = write(fd, text + off, n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		r = close(fd) == 0 && off == n ? rename(tmp, path) : -1;
	}
	if (r < 0)
		unlink(tmp);
	free(tmp);
	return r;
}

/* extra: more members (stolen; may be NULL). */
static void result_write(struct server *s, const char *state, json_t *extra)
{
	char ts[40];
	json_t *j = json_pack("{s:s, s:i, s:s}", "state", state, "pid", (int)getpid(), "ts",
			      time_format_rfc3339(time_now_us(), ts, sizeof ts));
	if (extra)
		json_object_update(j, extra);
	json_decref(extra);
	char *text = json_dumps(j, JSON_COMPACT);
	char *path = xasprintf("%s/upgrade.result", s->data);
	if (write_small(path, text) < 0)
		log_warn("upgrade: cannot write %s: %s", path, strerror(errno));
	free(path);
	free(text);
	json_decref(j);
}

/* ---- the predecessor: the upgrade's life ---- */

static void on_up_closed(uv_handle_t *h)
{
	struct upgrade *u = h->data;
	if (--u->handles == 0) {
		buf_free(&u->out);
		free(u);
	}
}

static void up_close(struct upgrade *u, uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, on_up_closed);
}

/* The upgrade is over without an exec: the server goes on as it was. A check still running
 * is killed; its handle closes when it has been waited for (no zombie is left). */
static void up_end(struct upgrade *u)
{
	u->s->up = NULL;
	u->ended = true;
	if (u->dns_udp >= 0)
		close(u->dns_udp);
	if (u->dns_tcp >= 0)
		close(u->dns_tcp);
	json_decref(u->notes);
	u->notes = NULL;
	up_close(u, (uv_handle_t *)&u->timer);
	up_close(u, (uv_handle_t *)&u->check_out);
	if (u->check_exited || !u->check.pid)
		up_close(u, (uv_handle_t *)&u->check);
	else
		uv_process_kill(&u->check, SIGKILL);
}

static void up_fail(struct upgrade *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void up_fail(struct upgrade *u, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	log_error("upgrade: %s; this server goes on as it was", b.p);
	result_write(u->s, "failed", json_pack("{s:s}", "error", b.p));
	buf_free(&b);
	up_end(u);
}

/* ---- exec ---- */

/* Exactly the handed-over descriptors survive the exec (and 0, 1, 2); every other one gets
 * close-on-exec, whoever opened it (SQLite, libcurl, the logs). */
static void prepare_fds(const json_t *keep)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int dfd = dirfd(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		if (*end || fd <= 2 || fd == dfd)
			continue;
		bool k = false;
		size_t i;
		json_t *v;
		json_array_foreach(keep, i, v)
			k = k || json_integer_value(v) == fd;
		int fl = fcntl((int)fd, F_GETFD);
		if (fl >= 0)
			fcntl((int)fd, F_SETFD, k ? fl & ~FD_CLOEXEC : fl | FD_CLOEXEC);
	}
	closedir(d);
}

static void add_fd(json_t *fds, int fd)
{
	if (fd >= 0)
		json_array_append_new(fds, json_integer(fd));
}

/* The hand-over goes to DATA/handover.json; if that cannot be written, to a memory file
 * whose descriptor survives the exec ("fd:N"). Returns what BERTH_HANDOVER says, or NULL. */
static char *store_handover(struct server *s, const char *text, json_t *fds)
{
	char *path = xasprintf("%s/handover.json", s->data);
	if (write_small(path, text) == 0)
		return path;
	log_warn("upgrade: cannot write %s (%s); handing over in memory", path, strerror(errno));
	free(path);
	int fd = memfd_create("berth-handover", MFD_CLOEXEC);
	size_t n = strlen(text);
	if (fd < 0 || write(fd, text, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) < 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	add_fd(fds, fd);
	return xasprintf("fd:%d", fd);
}

/* From here to the exec the loop does not run: a SIGTERM/SIGINT that comes meanwhile (to any
 * thread) is noted here and passed on in the hand-over. */
static volatile sig_atomic_t stop_during_exec;

static void note_stop(int sig)
{
	stop_during_exec = 1;
}

static void exec_successor(struct upgrade *u)
{
	struct server *s = u->s;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = note_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	json_t *fds = json_array();
	json_t *doc = json_pack("{s:i, s:i, s:I, s:s, s:I, s:b}", "berth_handover", HANDOVER_VERSION, "pid",
				(int)getpid(), "requested_us", (json_int_t)u->t0_us, "from_binary", s->self_bin,
				"from_started_us", (json_int_t)s->started_us, "stop_requested", u->stop_requested);
	json_object_set_new(doc, "lock", json_integer(s->lock_fd));
	add_fd(fds, s->lock_fd);
	if (u->api_fd >= 0) {
		json_object_set_new(doc, "api", json_integer(u->api_fd));
		add_fd(fds, u->api_fd);
	}
	json_t *rf = json_array();
	for (int k = 0; k < u->nrouter; k++) {
		json_array_append_new(rf, json_integer(u->router_fds[k]));
		add_fd(fds, u->router_fds[k]);
	}
	json_object_set_new(doc, "router", rf);
	if (u->dns_udp >= 0 && u->dns_tcp >= 0) {
		json_object_set_new(doc, "dns", json_pack("{s:i, s:i}", "udp", u->dns_udp, "tcp", u->dns_tcp));
		add_fd(fds, u->dns_udp);
		add_fd(fds, u->dns_tcp);
	}
	json_object_set_new(doc, "notes", u->notes);
	u->notes = NULL;
	json_t *procs = driver_process_handover(drivers_get(s->drivers, "process"), fds);
	size_t nproc = json_array_size(procs);
	json_object_set_new(doc, "process", procs);
	json_object_set_new(doc, "fds", fds);
	/* Signals that come during the exec stay pending (blocked) for the successor. */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	if (stop_during_exec)
		json_object_set_new(doc, "stop_requested", json_true());
	char *text = json_dumps(doc, JSON_COMPACT);
	char *where = store_handover(s, text, fds);
	free(text);
	if (!where) {
		/* Nothing can tell a successor what it gets: a successor could only sweep them. */
		log_error("upgrade: cannot hand over (%s); exiting: the next start stops and replaces the "
			  "instances left running", strerror(errno));
		result_write(s, "failed", json_pack("{s:s}", "error", "could not write the hand-over"));
		_exit(1);
	}
	setenv("BERTH_HANDOVER", where, 1);
	log_info("upgrade: handing %zu process%s over to %s; exec", nproc, nproc == 1 ? "" : "es", s->self_bin);
	store_close(s->st);
	s->st = NULL;
	fflush(NULL);
	prepare_fds(json_object_get(doc, "fds"));
	char **argv = xcalloc((size_t)s->argc + 2, sizeof *argv);
	argv[0] = s->self_bin;
	for (int k = 0; k < s->argc; k++)
		argv[k + 1] = s->argv[k];
	execv(s->self_bin, argv);
	int en = errno;
	log_error("upgrade: cannot execute %s (%s); running this server's own binary again", s->self_bin, strerror(en));
	execv("/proc/self/exe", argv);
	log_error("upgrade: cannot execute /proc/self/exe either (%s); exiting: the next start stops and "
		  "replaces the instances left running", strerror(errno));
	char msg[300];
	snprintf(msg, sizeof msg, "cannot execute %s: %s", s->self_bin, strerror(en));
	result_write(s, "failed", json_pack("{s:s}", "error", msg));
	_exit(1);
}

/* ---- the steps ---- */

static void on_handed_over(void *arg)
{
	exec_successor(arg);
}

/* The connections have ended: take the sockets, let the API and the router go, and have the
 * supervisor leave every instance running. */
static void begin_handover(struct upgrade *u)
{
	struct server *s = u->s;
	u->phase = UP_HANDOVER;
	uv_timer_stop(&u->timer);
	if (s->api) {
		u->api_fd = api_take_listener(s->api);
		api_free(s->api);
		s->api = NULL;
	}
	if (s->router) {
		u->nrouter = router_take_listeners(s->router, u->router_fds, MAX_LISTENERS);
		server_router_free(s);
	}
	logs_sink_close(s->access_log);
	s->access_log = NULL;
	result_write(s, "handing over", NULL);
	log_info("upgrade: connections drained in %llu ms; handing the instances over",
		 (unsigned long long)(uv_now(s->loop) - u->phase_ms));
	u->notes = json_array();
	reconciler_handover(s->rc, u->notes, on_handed_over, u);
}

static void on_drain_tick(uv_timer_t *t)
{
	struct upgrade *u = t->data;
	struct server *s = u->s;
	bool done = (!s->api || api_drained(s->api)) && (!s->router || router_drained(s->router));
	if (!done && uv_now(s->loop) - u->phase_ms < DRAIN_MS + 2000)
		return;
	begin_handover(u);
}

static void begin_drain(struct upgrade *u)
{
	struct server *s = u->s;
	u->phase = UP_DRAIN;
	u->phase_ms = uv_now(s->loop);
	log_info("upgrade: draining the router%s and the API", s->dns ? ", DNS" : "");
	result_write(s, "draining", NULL);
	if (s->dns) {
		metrics_family_set_collect(s->fams.dns_queries, NULL, NULL);
		if (dns_server_take_fds(s->dns, &u->dns_udp, &u->dns_tcp) < 0)
			log_warn("upgrade: cannot keep the DNS sockets; the new server binds them again");
		dns_server_close(s->dns, NULL, NULL);
		s->dns = NULL;
	}
	if (s->api)
		api_drain(s->api, DRAIN_MS);
	if (s->router)
		router_drain(s->router, ROUTER_IDLE_GRACE_MS, DRAIN_MS);
	uv_timer_start(&u->timer, on_drain_tick, DRAIN_POLL_MS, DRAIN_POLL_MS);
}

static void on_oneoffs_ended(void *arg)
{
	struct upgrade *u = arg;
	if (!u->stop_requested) {
		begin_drain(u);
		return;
	}
	struct server *s = u->s;
	result_write(s, "failed", json_pack("{s:s}", "error", "the server was asked to stop"));
	up_end(u);
	server_stop(s);
}

static void on_wait_tick(uv_timer_t *t)
{
	struct upgrade *u = t->data;
	struct server *s = u->s;
	char why[256] = "";
	if ((s->api && api_busy(s->api, why, sizeof why)) || reconciler_busy(s->rc, why, sizeof why)) {
		if (strcmp(why, u->why)) {
			snprintf(u->why, sizeof u->why, "%s", why);
			log_info("upgrade: waiting until nothing would be interrupted: %s", why);
			result_write(s, "waiting", json_pack("{s:s}", "message", why));
		}
		if (uv_now(s->loop) - u->phase_ms > BUSY_MAX_MS)
			up_fail(u, "gave up after waiting %d minutes (%s)", BUSY_MAX_MS / 60000, why);
		return;
	}
	uv_timer_stop(t);
	u->phase = UP_ONEOFFS;
	reconciler_end_oneoffs(s->rc, on_oneoffs_ended, u);
}

/* "berth-handover 1 2 ...\n": the hand-over versions a binary can take; ours must be one. */
static bool speaks_handover(const char *answer)
{
	const char *p = answer && !strncmp(answer, "berth-handover ", 15) ? answer + 15 : NULL;
	while (p && *p && *p != '\n') {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			return false;
		if (v == HANDOVER_VERSION && (*end == ' ' || *end == '\n' || !*end))
			return true;
		p = end + strspn(end, " ");
	}
	return false;
}

static void check_done(struct upgrade *u)
{
	if (!u->check_exited || !u->check_eof || u->phase != UP_CHECK || u->ended)
		return;
	uv_timer_stop(&u->timer);
	const char *bin = u->s->self_bin;
	if (u->check_sig)
		up_fail(u, "the new binary %s was killed by signal %d when asked for --handover-version", bin,
			u->check_sig);
	else if (u->check_status)
		up_fail(u, "the new binary %s exited with status %lld when asked for --handover-version (see the "
			"server's log)", bin, (long long)u->check_status);
	else if (!speaks_handover(u->out.p))
		up_fail(u, "the new binary %s does not take over a running server (it answered \"%.60s\" to "
			"--handover-version)", bin, u->out.p ? u->out.p : "");
	else {
		u->phase = UP_WAIT;
		u->phase_ms = uv_now(u->s->loop);
		uv_timer_start(&u->timer, on_wait_tick, 0, BUSY_POLL_MS);
	}
}

static void on_check_exit(uv_process_t *p, int64_t status, int sig)
{
	struct upgrade *u = p->data;
	u->check_exited = true;
	u->check_status = status;
	u->check_sig = sig;
	up_close(u, (uv_handle_t *)p);
	check_done(u);
}

static void on_check_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	static char chunk[512];
	*b = uv_buf_init(chunk, sizeof chunk);
}

static void on_check_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct upgrade *u = st->data;
	if (n > 0 && u->out.len < 4096) {
		buf_add(&u->out, b->base, (size_t)n);
		return;
	}
	if (n < 0) {
		u->check_eof = true;
		up_close(u, (uv_handle_t *)st);
		check_done(u);
	}
}

static void on_check_timeout(uv_timer_t *t)
{
	struct upgrade *u = t->data;
	up_fail(u, "the new binary %s did not answer --handover-version within %d s", u->s->self_bin, CHECK_MS / 1000);
}

void upgrade_request(struct server *s)
{
	if (s->stopping)
		return;
	if (s->up) {
		log_info("upgrade: SIGUSR2 again: an upgrade is already under way");
		return;
	}
	struct upgrade *u = xcalloc(1, sizeof *u);
	u->s = s;
	u->t0_us = time_now_us();
	u->phase = UP_CHECK;
	u->phase_ms = uv_now(s->loop);
	u->api_fd = u->dns_udp = u->dns_tcp = -1;
	s->up = u;
	uv_timer_init(s->loop, &u->timer);
	uv_pipe_init(s->loop, &u->check_out, 0);
	u->timer.data = u->check_out.data = u->check.data = u;
	u->handles = 2;
	log_info("upgrade: asked to re-execute %s in place; checking it first", s->self_bin);
	result_write(s, "checking", json_pack("{s:s}", "binary", s->self_bin));
	char *args[] = {s->self_bin, "server", "--handover-version", NULL};
	uv_stdio_container_t stdio[3] = {
		{.flags = UV_IGNORE},
		{.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&u->check_out},
		{.flags = UV_INHERIT_FD, .data.fd = 2},
	};
	uv_process_options_t o = {.file = s->self_bin, .args = args, .exit_cb = on_check_exit, .stdio = stdio,
				  .stdio_count = 3};
	int r = uv_spawn(s->loop, &u->check, &o);
	u->handles++;   /* initialised either way; closed either way */
	if (r < 0) {
		up_fail(u, "cannot run the new binary %s: %s", s->self_bin, uv_strerror(r));
		return;
	}
	uv_read_start((uv_stream_t *)&u->check_out, on_check_alloc, on_check_read);
	uv_timer_start(&u->timer, on_check_timeout, CHECK_MS, 0);
}

bool upgrade_on_stop(struct server *s)
{
	struct upgrade *u = s->up;
	if (!u)
		return false;
	if (u->phase == UP_ONEOFFS) {
		u->stop_requested = true;    /* on_oneoffs_ended stops the server */
		log_info("upgrade: abandoned: the server stops once the one-offs being stopped are gone");
		return true;
	}
	if (u->phase == UP_HANDOVER) {
		u->stop_requested = true;
		log_info("upgrade: stop asked during the hand-over: the new server stops as soon as it runs");
		return true;
	}
	log_info("upgrade: abandoned: the server stops");
	result_write(s, "failed", json_pack("{s:s}", "error", "the server was asked to stop"));
	up_end(u);
	return false;
}

/* ---- the successor ---- */

static int take(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

static int json_fd(json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < INT_MAX
		       ? (int)json_integer_value(v) : -1;
}

int handover_load(struct server *s, struct err *e)
{
	char *path = xasprintf("%s/handover.json", s->data);
	const char *where = getenv("BERTH_HANDOVER");
	if (!where) {
		if (fs_exists(path)) {
			log_warn("removing %s: an upgrade that did not finish left it", path);
			unlink(path);
		}
		free(path);
		return 0;
	}
	struct buf b = BUF_INIT;
	int r;
	if (!strncmp(where, "fd:", 3)) {
		int fd = atoi(where + 3);
		char chunk[65536];
		ssize_t n;
		while ((n = read(fd, chunk, sizeof chunk)) > 0)
			buf_add(&b, chunk, (size_t)n);
		r = n < 0 ? err_errno(e, errno, "read the hand-over (%s)", where) : 0;
		close(fd);
	} else {
		r = fs_read_file(where, &b, 64 << 20, e);
		unlink(where);
	}
	free(path);
	unsetenv("BERTH_HANDOVER");
	if (r < 0) {
		buf_free(&b);
		return err_prefix(e, "upgrade");
	}
	json_error_t je;
	json_t *doc = json_loadb(b.p ? b.p : "", b.len, 0, &je);
	buf_free(&b);
	if (!doc || json_integer_value(json_object_get(doc, "berth_handover")) != HANDOVER_VERSION ||
	    json_integer_value(json_object_get(doc, "pid")) != getpid()) {
		json_decref(doc);
		return err_set(e, ERR_INVALID, "upgrade: the hand-over in %s is not one this server can take (%s)",
			       where, doc ? "another version or process" : je.text);
	}
	size_t k;
	json_t *v;
	json_array_foreach(json_object_get(doc, "fds"), k, v) {
		int fd = json_fd(v);
		if (fd < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
			json_decref(doc);
			return err_set(e, ERR_INTERNAL, "upgrade: descriptor %lld was not handed over",
				       (long long)json_integer_value(v));
		}
	}
	struct handover *h = xcalloc(1, sizeof *h);
	h->doc = doc;
	h->lock_fd = json_fd(json_object_get(doc, "lock"));
	h->api_fd = json_fd(json_object_get(doc, "api"));
	h->dns_udp = json_fd(json_object_get(json_object_get(doc, "dns"), "udp"));
	h->dns_tcp = json_fd(json_object_get(json_object_get(doc, "dns"), "tcp"));
	json_array_foreach(json_object_get(doc, "router"), k, v)
		if (h->nrouter < MAX_LISTENERS && json_fd(v) >= 0)
			h->router_fds[h->nrouter++] = json_fd(v);
	h->process = json_incref(json_object_get(doc, "process"));
	h->notes = json_incref(json_object_get(doc, "notes"));
	h->requested_us = json_integer_value(json_object_get(doc, "requested_us"));
	h->stop_requested = json_is_true(json_object_get(doc, "stop_requested"));
	s->ho = h;
	size_t np = json_array_size(h->process);
	log_info("upgrade: taking over from %s (pid %d): %zu process%s",
		 json_string_value(json_object_get(doc, "from_binary")), (int)getpid(), np, np == 1 ? "" : "es");
	return 0;
}

int handover_lock_fd(struct server *s)
{
	return s->ho ? take(&s->ho->lock_fd) : -1;
}

int handover_api_fd(struct server *s)
{
	return s->ho ? take(&s->ho->api_fd) : -1;
}

int handover_router_fds(struct server *s, int *fds, int max)
{
	int n = 0;
	for (int k = 0; s->ho && k < s->ho->nrouter && n < max; k++)
		fds[n++] = take(&s->ho->router_fds[k]);
	return n;
}

int handover_dns_fds(struct server *s, int *udp_fd, int *tcp_fd)
{
	*udp_fd = s->ho ? take(&s->ho->dns_udp) : -1;
	*tcp_fd = s->ho ? take(&s->ho->dns_tcp) : -1;
	if (*udp_fd >= 0 && *tcp_fd >= 0)
		return 0;
	if (*udp_fd >= 0)
		close(*udp_fd);
	if (*tcp_fd >= 0)
		close(*tcp_fd);
	*udp_fd = *tcp_fd = -1;
	return -1;
}

json_t *handover_process(struct server *s)
{
	json_t *p = s->ho ? s->ho->process : NULL;
	if (s->ho)
		s->ho->process = NULL;
	return p;
}

json_t *handover_notes(struct server *s)
{
	return s->ho ? s->ho->notes : NULL;
}

void handover_free(struct server *s)
{
	struct handover *h = s->ho;
	if (!h)
		return;
	s->ho = NULL;
	int *fds[] = {&h->lock_fd, &h->api_fd, &h->dns_udp, &h->dns_tcp};
	for (size_t k = 0; k < sizeof fds / sizeof fds[0]; k++)
		if (*fds[k] >= 0)
			close(take(fds[k]));
	for (int k = 0; k < h->nrouter; k++)
		if (h->router_fds[k] >= 0)
			close(h->router_fds[k]);
	json_decref(h->process);
	json_decref(h->notes);
	json_decref(h->doc);
	free(h);
}

void handover_finish(struct server *s)
{
	struct handover *h = s->ho;
	if (!h)
		return;
	int running = 0, total = 0;
	reconciler_counts(s->rc, NULL, NULL, &running, &total);
	int64_t took_ms = (time_now_us() - h->requested_us) / 1000;
	char ts[40], api[300];
	snprintf(api, sizeof api, "%s:%d", s->api_host, s->api_port);
	log_info("upgrade: done %lld ms after it was asked for: %s runs now (pid %d); %d instance%s kept running",
		 (long long)took_ms, s->self_bin, (int)getpid(), total, total == 1 ? "" : "s");
	result_write(s, "done", json_pack("{s:s, s:s?, s:s, s:I, s:i, s:s}", "binary", s->self_bin, "from_binary",
					  json_string_value(json_object_get(h->doc, "from_binary")), "started_at",
					  time_format_rfc3339(s->started_us, ts, sizeof ts), "took_ms", (json_int_t)took_ms,
					  "kept", total, "api", api));
	bool stop = h->stop_requested;
	handover_free(s);
	if (stop) {
		log_info("upgrade: a stop was asked for during the hand-over: stopping");
		server_stop(s);
	}
}

/* ---- `berth server --upgrade` ---- */

static json_t *read_json(const char *path)
{
	struct buf b = BUF_INIT;
	json_t *j = NULL;
	if (fs_read_file(path, &b, 1 << 20, NULL) == 0 && b.len)
		j = json_loadb(b.p, b.len, 0, NULL);
	buf_free(&b);
	return j;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	buf_add(arg, p, size * n);
	return size * n;
}

/* GET http://api/healthz: the server's start time ("" when it does not answer). */
static void healthz_started(const char *api, char *out, size_t n)
{
	out[0] = 0;
	CURL *c = curl_easy_init();
	if (!c)
		return;
	char url[400];
	snprintf(url, sizeof url, "http://%s/healthz", api);
	struct buf b = BUF_INIT;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	long status = 0;
	if (curl_easy_perform(c) == CURLE_OK && curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
	    status == 200) {
		json_t *j = json_loadb(b.p ? b.p : "", b.len, 0, NULL);
		snprintf(out, n, "%s", json_string_value(json_object_get(j, "started_at")) ?
				       json_string_value(json_object_get(j, "started_at")) : "");
		json_decref(j);
	}
	buf_free(&b);
	curl_easy_cleanup(c);
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int upgrade_client(const char *data)
{
	char real[PATH_MAX];
	if (!realpath(data, real)) {
		fprintf(stderr, "berth server --upgrade: no data dir %s: %s\n", data, strerror(errno));
		return 1;
	}
	char *lock = xasprintf("%s/server.lock", real);
	char *res = xasprintf("%s/upgrade.result", real);
	int rc = 1;
	int fd = open(lock, O_RDONLY | O_CLOEXEC);
	char pidtext[32] = "";
	ssize_t n = fd >= 0 ? pread(fd, pidtext, sizeof pidtext - 1, 0) : -1;
	pidtext[n > 0 ? n : 0] = 0;
	int pid = atoi(pidtext);
	if (fd < 0 && errno != ENOENT) {
		fprintf(stderr, "berth server --upgrade: cannot read %s: %s\n", lock, strerror(errno));
		goto out;
	}
	if (fd < 0 || flock(fd, LOCK_SH | LOCK_NB) == 0 || pid <= 1) {
		fprintf(stderr, "berth server --upgrade: no berth server is running on %s\n", real);
		goto out;
	}
	if (kill(pid, 0) < 0) {
		fprintf(stderr, "berth server --upgrade: cannot signal the server on %s (pid %d): %s%s\n", real, pid,
			strerror(errno), errno == EPERM ? " (run this as the server's user)" : "");
		goto out;
	}
	/* The running image must handle SIGUSR2 (an older berth would just stop): ask it. */
	char cmd[80], banner[64] = "";
	snprintf(cmd, sizeof cmd, "/proc/%d/exe server --handover-version 2>/dev/null", pid);
	FILE *p = popen(cmd, "r");
	if (p) {
		if (!fgets(banner, sizeof banner, p))
			banner[0] = 0;
		pclose(p);
	}
	if (strncmp(banner, "berth-handover ", 15)) {
		fprintf(stderr, "berth server --upgrade: the server running on %s (pid %d) cannot upgrade in place (its "
			"binary predates it, and SIGUSR2 would stop it): restart it instead\n", real, pid);
		goto out;
	}
	json_t *prev = read_json(res);
	const char *pst = json_string_value(json_object_get(prev, "state"));
	bool ongoing = pst && strcmp(pst, "done") && strcmp(pst, "failed");
	if (ongoing && json_integer_value(json_object_get(prev, "pid")) == pid) {
		fprintf(stderr, "berth server --upgrade: an upgrade of the server on %s (pid %d) is already under "
			"way (%s)\n", real, pid, pst);
		json_decref(prev);
		goto out;
	}
	json_decref(prev);
	unlink(res);
	printf("berth: asking the server on %s (pid %d) to upgrade in place\n", real, pid);
	fflush(stdout);
	if (kill(pid, SIGUSR2) < 0) {
		fprintf(stderr, "berth server --upgrade: cannot signal pid %d: %s\n", pid, strerror(errno));
		goto out;
	}
	char last[300] = "";
	for (long waited = 0; waited < CLIENT_WAIT_MS; waited += CLIENT_POLL_MS) {
		nap_ms(CLIENT_POLL_MS);
		if (kill(pid, 0) < 0 && errno == ESRCH) {
			fprintf(stderr, "berth server --upgrade: the server (pid %d) is gone: the new binary did not start "
				"(see the server's log). Its instances still run; the next `berth server --data %s` stops "
				"and replaces them.\n", pid, real);
			goto out;
		}
		json_t *r = read_json(res);
		const char *st = json_string_value(json_object_get(r, "state"));
		if (!st) {
			json_decref(r);
			continue;
		}
		const char *msg = json_string_value(json_object_get(r, "message"));
		static const char *const said[][2] = {
			{"checking", "checking the new binary"}, {"waiting", "waiting"},
			{"draining", "draining connections"}, {"handing over", "handing the instances over"},
		};
		const char *what = st;
		for (size_t k = 0; k < sizeof said / sizeof said[0]; k++)
			if (!strcmp(st, said[k][0]))
				what = said[k][1];
		char now[300];
		snprintf(now, sizeof now, "%s%s%s", what, msg ? ": " : "", msg ? msg : "");
		if (strcmp(now, last) && strcmp(st, "done") && strcmp(st, "failed")) {
			printf("  %s\n", now);
			fflush(stdout);
			snprintf(last, sizeof last, "%s", now);
		}
		if (!strcmp(st, "failed")) {
			const char *why = json_string_value(json_object_get(r, "error"));
			fprintf(stderr, "berth server --upgrade: the upgrade failed: %s\n", why ? why : "?");
			json_decref(r);
			goto out;
		}
		if (!strcmp(st, "done")) {
			const char *api = json_string_value(json_object_get(r, "api"));
			const char *started = json_string_value(json_object_get(r, "started_at"));
			char seen[64];
			healthz_started(api ? api : "", seen, sizeof seen);
			if (!started || strcmp(seen, started)) {
				fprintf(stderr, "berth server --upgrade: the upgraded server does not answer on http://%s/healthz "
					"as expected (started_at \"%s\", want \"%s\")\n", api ? api : "?", seen,
					started ? started : "?");
				json_decref(r);
				goto out;
			}
			int kept = (int)json_integer_value(json_object_get(r, "kept"));
			printf("berth: upgraded in %.2f s: pid %d runs %s (started %s); %d instance%s kept running\n",
			       (double)json_integer_value(json_object_get(r, "took_ms")) / 1000, pid,
			       json_string_value(json_object_get(r, "binary")), started, kept, kept == 1 ? "" : "s");
			json_decref(r);
			rc = 0;
			goto out;
		}
		json_decref(r);
	}
	fprintf(stderr, "berth server --upgrade: no answer from the server after %d minutes\n", CLIENT_WAIT_MS / 60000);
out:
	if (fd >= 0)
		close(fd);
	free(lock);
	free(res);
	return rc;
}

/* The binary to re-execute: argv[0] as this process was started, made absolute (a symlink is
 * not resolved: pointing it at a new version is one way to upgrade); /proc/self/exe as it
 * was at start-up when argv[0] cannot be found. */
char *upgrade_self_path(void)
{
	char arg0[PATH_MAX] = "";
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, arg0, sizeof arg0 - 1);
		arg0[n > 0 ? n : 0] = 0;
		close(fd);
	}
	if (arg0[0] == '/')
		return xstrdup(arg0);
	char cwd[PATH_MAX];
	if (strchr(arg0, '/') && getcwd(cwd, sizeof cwd))
		return xasprintf("%s/%s", cwd, arg0);
	const char *path = getenv("PATH");
	while (arg0[0] && path && *path) {
		size_t len = strcspn(path, ":");
		char *cand = xasprintf("%.*s/%s", (int)len, path, arg0);
		if (cand[0] == '/' && access(cand, X_OK) == 0)
			return cand;
		free(cand);
		path += len + (path[len] == ':');
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	return xstrdup(exe);
}
