/* cli/attach: berth-attach/1 sessions over libcurl CONNECT_ONLY and poll() (see attach.h).
 * Phases: connect; send the request; read the answer's head (framed by router/resp.c, the
 * parser the router already trusts with hostile upstreams): a 101, or an error answer whose
 * JSON becomes the message; then pump frames until EXIT, a lost connection, a broken
 * stream, stdout gone, or the user gives up. Process-wide state (signal handlers, the
 * terminal's mode) is taken for the session only and given back on every way out. */
#include "cli/attach.h"
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "cli/cmd.h"
#include "cli/version.h"
#include "router/resp.h"
#include "util/buf.h"
#include "util/frame.h"

#define RECV_CHUNK (64u << 10)
#define STDIN_CHUNK (32u << 10)
#define RECV_TURNS 16                 /* socket reads per loop turn, so stdin and signals get theirs */
#define ERROR_BODY_MAX (64u << 10)    /* bytes of an error answer kept for its message */
#define HEAD_TIMEOUT_MS (300 * 1000)  /* the server answers the POST (101 or error) within this */
#define GIVE_UP_AFTER 3               /* the third SIGINT/TERM/HUP/QUIT closes the connection */
#define UPGRADE_TOKEN "berth-attach/1"

/* ---- signals: a self-pipe that poll() watches ---- */

static int sigfd[2] = {-1, -1};
static const int caught[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH};
#define NCAUGHT (sizeof caught / sizeof caught[0])
static struct sigaction old_act[NCAUGHT], old_pipe;

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	ssize_t w = write(sigfd[1], &b, 1);   /* a full pipe drops it: plenty are queued */
	(void)w;
	errno = saved;
}

static int signals_catch(struct err *e)
{
	if (pipe2(sigfd, O_NONBLOCK | O_CLOEXEC))
		return err_errno(e, errno, "cannot make a pipe for signals");
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;   /* no SA_RESTART: a write blocked on stdout returns and the signal is seen */
	for (size_t i = 0; i < NCAUGHT; i++)
		sigaction(caught[i], &sa, &old_act[i]);
	struct sigaction ign;
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &old_pipe);   /* a closed stdout is an EPIPE, handled */
	return 0;
}

static void signals_release(void)
{
	if (sigfd[0] < 0)
		return;
	for (size_t i = 0; i < NCAUGHT; i++)
		sigaction(caught[i], &old_act[i], NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	close(sigfd[0]);
	close(sigfd[1]);
	sigfd[0] = sigfd[1] = -1;
}

/* The next caught signal, or 0. */
static int signal_next(void)
{
	unsigned char b;
	return read(sigfd[0], &b, 1) == 1 ? b : 0;
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGINT: return "SIGINT";
	case SIGTERM: return "SIGTERM";
	case SIGHUP: return "SIGHUP";
	case SIGQUIT: return "SIGQUIT";
	default: return "a signal";
	}
}

/* ---- the local terminal ---- */

static struct termios saved_tio;
static bool raw_on;

static void term_restore(void)
{
	if (raw_on) {
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
		raw_on = false;
	}
}

static int term_raw(struct err *e)
{
	static bool registered;
	if (tcgetattr(STDIN_FILENO, &saved_tio))
		return err_errno(e, errno, "cannot read the terminal's settings");
	struct termios t = saved_tio;
	cfmakeraw(&t);
	if (!registered) {
		atexit(term_restore);   /* a safety net: every path below restores it itself */
		registered = true;
	}
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t))
		return err_errno(e, errno, "cannot put the terminal in raw mode");
	raw_on = true;
	return 0;
}

static bool win_size(unsigned *rows, unsigned *cols)
{
	for (int fd = 0; fd <= 2; fd++) {
		struct winsize ws;
		if (!ioctl(fd, TIOCGWINSZ, &ws) && ws.ws_row && ws.ws_col) {
			*rows = ws.ws_row;
			*cols = ws.ws_col;
			return true;
		}
	}
	return false;
}

int attach_want_tty(const struct cli_opts *o, const char *verb, bool *tty)
{
	if (o->tty && o->no_tty) {
		cli_usage_error(verb, "-t (--tty) and -T (--no-tty) contradict each other");
		return -1;
	}
	*tty = o->tty || (!o->no_tty && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO));
	return 0;
}

json_t *attach_argv(size_t n, const char *const *words, struct err *e)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *w = json_string(words[i]);
		if (!w) {
			json_decref(a);
			err_set(e, ERR_INVALID, "word %zu of the command is not valid UTF-8", i + 1);
			return NULL;
		}
		json_array_append_new(a, w);
	}
	return a;
}

/* ---- the session ---- */

enum end { E_RUNNING, E_EXITED, E_LOST, E_BROKEN, E_STDOUT_GONE, E_GAVE_UP };

struct session {
	struct client *c;
	CURL *h;
	curl_socket_t sock;
	char curlerr[CURL_ERROR_SIZE];   /* curl's error buffer: lives as long as the handle uses it */
	bool tty;
	bool winch;              /* the window changed before the 101 */
	struct buf up;           /* frames waiting to be sent; up_off of them are */
	size_t up_off;
	bool send_broken;        /* sending failed: read on for the EXIT frame, send no more */
	struct buf down;         /* STDOUT/STDERR frames waiting to be written, in arrival order */
	size_t down_pos;         /* start of the frame being written */
	size_t down_done;        /* its payload bytes already written */
	bool stderr_gone;
	struct frame_reader rd;
	bool stdin_open;
	int nsig;                /* SIGINT/TERM/HUP/QUIT so far */
	enum end end;
	int status;              /* E_EXITED, E_GAVE_UP: the exit status */
	char *exit_msg;          /* the EXIT frame's "message" */
	int out_errno;           /* E_STDOUT_GONE: why */
	struct err e;            /* E_BROKEN: what was wrong */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Control bytes of a server's text would drive our terminal: shown as '?'. */
static void add_clean(struct buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		buf_addc(b, (ch < 0x20 && ch != '\t') || ch == 0x7f ? '?' : (char)ch);
	}
}

/* Queue "berth: TEXT" for stderr, in order with the command's output. */
static void note(struct session *s, const char *text, size_t n)
{
	struct buf b = BUF_INIT;
	buf_adds(&b, "berth: ");
	add_clean(&b, text, n);
	buf_adds(&b, raw_on ? "\r\n" : "\n");
	frame_put(&s->down, FRAME_STDERR, b.p, b.len);
	buf_free(&b);
}

static int broken(struct session *s, const char *what, const void *p, size_t n)
{
	struct buf b = BUF_INIT;
	add_clean(&b, p, n > 200 ? 200 : n);
	err_set(&s->e, ERR_INVALID, "%s: %s%s", what, buf_str(&b), n > 200 ? "..." : "");
	buf_free(&b);
	s->end = E_BROKEN;
	return 1;
}

static int on_info(struct session *s, const void *p, size_t n)
{
	json_t *j = json_loadb(p, n, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return broken(s, "an INFO frame that is not a JSON object", p, n);
	}
	json_t *m = json_object_get(j, "message");
	if (json_is_string(m))
		note(s, json_string_value(m), json_string_length(m));
	json_decref(j);
	return 0;
}

static int on_exit_frame(struct session *s, const void *p, size_t n)
{
	json_t *j = json_loadb(p, n, 0, NULL);
	json_t *st = json_object_get(j, "status"), *sg = json_object_get(j, "signal");
	json_t *m = json_object_get(j, "message");
	int rc = 0;
	if (json_is_integer(st) && json_integer_value(st) >= 0 && json_integer_value(st) <= 255) {
		s->status = (int)json_integer_value(st);
	} else if (json_is_integer(sg) && json_integer_value(sg) > 0 &&
		   json_integer_value(sg) < 128) {
		s->status = 128 + (int)json_integer_value(sg);
	} else {
		rc = broken(s, "an EXIT frame without a status (0-255) or a signal (1-127)", p, n);
	}
	if (!rc) {
		if (json_is_string(m) && json_string_length(m)) {
			struct buf b = BUF_INIT;
			add_clean(&b, json_string_value(m), json_string_length(m));
			s->exit_msg = buf_detach(&b);
		}
		s->end = E_EXITED;
		rc = 1;
	}
	json_decref(j);
	return rc;
}

/* A whole frame from the server. */
static int on_frame(int type, const void *p, size_t n, void *ud)
{
	struct session *s = ud;
	switch (type) {
	case FRAME_STDOUT:
	case FRAME_STDERR:
		if (n)
			frame_put(&s->down, type, p, n);
		return 0;
	case FRAME_INFO:
		return on_info(s, p, n);
	case FRAME_EXIT:
		return on_exit_frame(s, p, n);
	default:
		err_set(&s->e, ERR_INVALID, "the server sent a %s frame, which only a client sends",
			frame_type_name(type));
		s->end = E_BROKEN;
		return 1;
	}
}

static bool down_pending(const struct session *s)
{
	return s->down_pos < s->down.len;
}

static int down_fd(const struct session *s)
{
	return (unsigned char)s->down.p[s->down_pos] == FRAME_STDOUT ? STDOUT_FILENO : STDERR_FILENO;
}

/* Write what can be written of the queued output. 0: all of it; 1: the fd would block (or
 * a signal came); -1: stdout is gone (s->end set). A gone stderr is let go silently. */
static int down_flush(struct session *s)
{
	while (down_pending(s)) {
		const unsigned char *h = (const unsigned char *)s->down.p + s->down_pos;
		size_t n = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
		int fd = down_fd(s);
		while (s->down_done < n && !(fd == STDERR_FILENO && s->stderr_gone)) {
			ssize_t w = write(fd, h + FRAME_HEADER + s->down_done, n - s->down_done);
			if (w < 0 && (errno == EAGAIN || errno == EINTR))
				return 1;
			if (w <= 0 && fd == STDERR_FILENO) {
				s->stderr_gone = true;
			} else if (w <= 0) {
				s->out_errno = w < 0 ? errno : EIO;
				s->end = E_STDOUT_GONE;
				return -1;
			} else {
				s->down_done += (size_t)w;
			}
		}
		s->down_pos += FRAME_HEADER + n;
		s->down_done = 0;
	}
	buf_reset(&s->down);
	s->down_pos = 0;
	return 0;
}

/* Send what the socket takes of the queued frames. */
static void up_flush(struct session *s)
{
	while (s->up_off < s->up.len && !s->send_broken) {
		size_t k = 0;
		CURLcode rc = curl_easy_send(s->h, s->up.p + s->up_off, s->up.len - s->up_off, &k);
		if (rc == CURLE_AGAIN)
			return;
		if (rc != CURLE_OK) {
			/* the server may be gone after its EXIT frame: read on to find out */
			s->send_broken = true;
			s->stdin_open = false;
			break;
		}
		s->up_off += k;
	}
	buf_reset(&s->up);
	s->up_off = 0;
}

static bool up_pending(const struct session *s)
{
	return s->up_off < s->up.len;
}

static void feed(struct session *s, const void *p, size_t n)
{
	int rc = frame_reader_feed(&s->rd, p, n, on_frame, s, &s->e);
	if (rc < 0)
		s->end = E_BROKEN;
}

/* Read from the socket while nothing waits to be written locally. */
static void down_read(struct session *s)
{
	static char chunk[RECV_CHUNK];
	for (int turn = 0; turn < RECV_TURNS && s->end == E_RUNNING && !down_pending(s); turn++) {
		size_t n = 0;
		CURLcode rc = curl_easy_recv(s->h, chunk, sizeof chunk, &n);
		if (rc == CURLE_AGAIN)
			return;
		if (rc != CURLE_OK || n == 0) {
			s->end = E_LOST;
			return;
		}
		feed(s, chunk, n);
		if (down_flush(s) < 0)
			return;
	}
}

static void read_stdin(struct session *s)
{
	static char chunk[STDIN_CHUNK];
	ssize_t r = read(STDIN_FILENO, chunk, sizeof chunk);
	if (r > 0) {
		frame_put(&s->up, FRAME_STDIN, chunk, (size_t)r);
	} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
		s->stdin_open = false;   /* EOF, or a stdin that cannot be read: the same to the command */
		frame_put(&s->up, FRAME_STDIN_EOF, NULL, 0);
	}
}

static void take_signals(struct session *s)
{
	int sig;
	while ((sig = signal_next())) {
		if (sig == SIGWINCH) {
			unsigned rows, cols;
			if (s->tty && win_size(&rows, &cols))
				frame_put_resize(&s->up, rows, cols);
			continue;
		}
		if (++s->nsig >= GIVE_UP_AFTER) {
			s->end = E_GAVE_UP;
			s->status = 128 + sig;
			return;
		}
		if (!s->send_broken)
			frame_put_signal(&s->up, sig);
		if (s->nsig == GIVE_UP_AFTER - 1) {
			char msg[160];
			int n = snprintf(msg, sizeof msg, "sent %s to the command again; once more and "
					 "berth disconnects, which stops it", signal_name(sig));
			note(s, msg, (size_t)n);
		}
	}
}

/* The session after the 101: until s->end is set. */
static void pump(struct session *s)
{
	while (s->end == E_RUNNING) {
		if (!down_pending(s))
			down_read(s);   /* also what a TLS layer holds that poll() cannot see */
		if (s->end != E_RUNNING)
			break;
		up_flush(s);
		struct pollfd f[4];
		int n = 0, isock, iin = -1, iout = -1;
		f[n++] = (struct pollfd){sigfd[0], POLLIN, 0};
		short sev = (short)((down_pending(s) ? 0 : POLLIN) | (up_pending(s) ? POLLOUT : 0));
		isock = n;
		/* not wanted: -1, or a closed socket's POLLHUP would spin the loop */
		f[n++] = (struct pollfd){sev ? s->sock : -1, sev, 0};
		if (s->stdin_open && !up_pending(s)) {
			iin = n;
			f[n++] = (struct pollfd){STDIN_FILENO, POLLIN, 0};
		}
		if (down_pending(s)) {
			iout = n;
			f[n++] = (struct pollfd){down_fd(s), POLLOUT, 0};
		}
		if (poll(f, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			err_errno(&s->e, errno, "poll");
			s->end = E_BROKEN;
			break;
		}
		/* Always, not only on f[0].revents: a handler runs when poll() returns to us, after
		 * poll() looked at the pipe, so a window change that came before these keys may
		 * only now be in the pipe; it must go up first. */
		take_signals(s);
		if (s->end != E_RUNNING)
			break;
		if (iout >= 0 && f[iout].revents && down_flush(s) < 0)
			break;
		if (iin >= 0 && f[iin].revents)
			read_stdin(s);
		if (f[isock].revents & (POLLOUT | POLLERR | POLLHUP))
			up_flush(s);
	}
}

/* After the session: write out what the server sent before it ended (a signal abandons it). */
static void drain(struct session *s)
{
	while (down_pending(s) && s->end != E_STDOUT_GONE) {
		struct pollfd f[2] = {{down_fd(s), POLLOUT, 0}, {sigfd[0], POLLIN, 0}};
		if (poll(f, 2, -1) < 0 && errno != EINTR)
			return;
		int sig;
		while ((sig = signal_next()))
			if (sig != SIGWINCH)
				return;
		if (f[0].revents)
			down_flush(s);
	}
}

/* ---- connecting, the request and the answer's head ---- */

static int connect_api(struct session *s, struct err *e)
{
	CURL *h = s->h;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, s->c->base);
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->curlerr);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
	curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);   /* through a proxy: a CONNECT tunnel */
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);   /* ALPN too */
	CURLcode rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		const char *why = s->curlerr[0] ? s->curlerr : curl_easy_strerror(rc);
		long os = 0;
		curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os);
		if (rc == CURLE_COULDNT_CONNECT && os == ECONNREFUSED)
			why = "connection refused";
		return err_set(e, ERR_UNAVAILABLE, "cannot reach the berth server at %s: %s%s", s->c->base,
			       why, rc == CURLE_COULDNT_CONNECT ? " (is `berth server` running?)" : "");
	}
	curl_socket_t sock = CURL_SOCKET_BAD;
	if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK || sock == CURL_SOCKET_BAD)
		return err_set(e, ERR_INTERNAL, "connected to %s but found no socket", s->c->base);
	s->sock = sock;
	return 0;
}

/* Wait until the socket is ready for events, before the deadline. 0: ready; 1: a signal
 * made us give up (s->status set); -1: e set. */
static int head_wait(struct session *s, short events, int64_t deadline, struct err *e)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return err_set(e, ERR_UNAVAILABLE, "the berth server at %s did not answer within "
				       "%d s", s->c->base, HEAD_TIMEOUT_MS / 1000);
		struct pollfd f[2] = {{s->sock, events, 0}, {sigfd[0], POLLIN, 0}};
		if (poll(f, 2, left > 60000 ? 60000 : (int)left) < 0 && errno != EINTR)
			return err_errno(e, errno, "poll");
		{   /* whatever f[1] says: see pump() */
			int sig;
			while ((sig = signal_next())) {
				if (sig == SIGWINCH) {
					s->winch = true;
					continue;
				}
				s->status = 128 + sig;   /* nothing runs yet: leave at once */
				return 1;
			}
		}
		if (f[0].revents)
			return 0;
	}
}

static int head_send(struct session *s, const char *p, size_t n, int64_t deadline, struct err *e)
{
	while (n) {
		size_t k = 0;
		CURLcode rc = curl_easy_send(s->h, p, n, &k);
		if (rc == CURLE_OK) {
			p += k;
			n -= k;
		} else if (rc == CURLE_AGAIN) {
			int w = head_wait(s, POLLOUT, deadline, e);
			if (w)
				return w;
		} else {
			return err_set(e, ERR_UNAVAILABLE, "the connection to the berth server at %s broke "
				       "while sending the request: %s", s->c->base, curl_easy_strerror(rc));
		}
	}
	return 0;
}

/* "http://user@host:7070/prefix" -> host "host:7070", prefix "/prefix". */
static void split_base(const char *base, struct buf *host, struct buf *prefix)
{
	const char *a = strstr(base, "://");
	a = a ? a + 3 : base;
	const char *slash = strchr(a, '/');
	size_t alen = slash ? (size_t)(slash - a) : strlen(a);
	const char *at = memrchr(a, '@', alen);
	if (at) {
		alen -= (size_t)(at + 1 - a);
		a = at + 1;
	}
	buf_add(host, a, alen);
	buf_adds(prefix, slash ? slash : "");
}

static int send_request(struct session *s, const char *path, json_t *body, int64_t deadline,
			struct err *e)
{
	char *json = json_dumps(body, JSON_COMPACT);
	if (!json)
		return err_set(e, ERR_INTERNAL, "cannot encode the request");
	struct buf req = BUF_INIT, host = BUF_INIT, prefix = BUF_INIT;
	split_base(s->c->base, &host, &prefix);
	size_t jn = strlen(json);
	buf_addf(&req, "POST %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: berth/" BERTH_VERSION "\r\n",
		 prefix.p ? prefix.p : "", path, host.p);
	if (s->c->token)
		buf_addf(&req, "Authorization: Bearer %s\r\n", s->c->token);
	buf_addf(&req, "Accept: application/json\r\nConnection: Upgrade\r\nUpgrade: " UPGRADE_TOKEN
		 "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", jn);
	buf_add(&req, json, jn);
	int rc = head_send(s, req.p, req.len, deadline, e);
	memset(req.p, 0, req.cap);   /* the token was in it */
	buf_free(&req);
	buf_free(&host);
	buf_free(&prefix);
	free(json);
	return rc;
}

/* A non-101 answer: its {"error"} (a string, or {"code","message"}), else the status. */
static int answer_error(struct session *s, int status, const struct buf *body, struct err *e)
{
	struct buf msg = BUF_INIT;
	json_t *j = json_loadb(buf_str(body), body->len, 0, NULL);
	json_t *ev = json_object_get(j, "error");
	json_t *m = json_is_string(ev) ? ev : json_object_get(ev, "message");
	if (json_is_string(m) && json_string_length(m)) {
		add_clean(&msg, json_string_value(m), json_string_length(m));
	} else if (status / 100 == 2) {
		buf_addf(&msg, "the server at %s answered HTTP %d instead of switching to " UPGRADE_TOKEN
			 " (is it older than this berth?)", s->c->base, status);
	} else {
		buf_addf(&msg, "the server at %s answered HTTP %d", s->c->base, status);
		size_t n = 0;
		while (n < body->len && n < 200 && body->p[n] != '\n' && body->p[n] != '\r')
			n++;
		if (n) {
			buf_adds(&msg, ": ");
			add_clean(&msg, body->p, n);
		}
	}
	json_decref(j);
	if (status == 401) {
		if (!s->c->token)
			buf_adds(&msg, " (no API token found: set BERTH_TOKEN, pass --token TOKEN, or on "
				       "the server's machine pass --data DIR to use DIR/admin.token)");
		else
			buf_addf(&msg, " (the token from %s was not accepted: check it, or ask an admin "
				       "for one with `berth tokens create`)", s->c->token_from);
	}
	err_set(e, status == 401 ? ERR_AUTH : status == 403 ? ERR_FORBIDDEN : ERR_INTERNAL, "%s",
		buf_str(&msg));
	buf_free(&msg);
	return -1;
}

static bool upgrade_ok(const struct resp_head *h)
{
	for (size_t i = 0; i < h->nheaders; i++)
		if (!strcasecmp(h->headers[i].name, "Upgrade"))
			return !strcasecmp(h->headers[i].value, UPGRADE_TOKEN);
	return false;
}

/* Read the answer to the request. 0: a 101 (bytes after its head already fed to the frame
 * reader); 1: gave up on a signal; -1: e set (the server's refusal or a transport failure). */
static int read_head(struct session *s, int64_t deadline, struct err *e)
{
	static char chunk[RECV_CHUNK];
	struct resp_parse *rp = resp_parse_new();
	struct buf body = BUF_INIT;
	int status = 0, rc = 0;
	resp_parse_start(rp, 0);
	for (;;) {
		size_t n = 0;
		CURLcode cr = curl_easy_recv(s->h, chunk, sizeof chunk, &n);
		if (cr == CURLE_AGAIN) {
			if ((rc = head_wait(s, POLLIN, deadline, e)))
				break;
			continue;
		}
		if (cr != CURLE_OK || n == 0) {
			if (status && resp_parse_eof(rp) == RESP_EV_DONE) {
				rc = answer_error(s, status, &body, e);
				break;
			}
			rc = err_set(e, ERR_UNAVAILABLE, "the berth server at %s closed the connection "
				     "before answering%s%s", s->c->base, cr != CURLE_OK ? ": " : "",
				     cr != CURLE_OK ? curl_easy_strerror(cr) : "");
			break;
		}
		size_t off = 0;
		enum resp_event ev = RESP_EV_NONE;
		do {
			off += resp_parse_feed(rp, chunk + off, n - off, &ev);
			if (ev == RESP_EV_HEAD) {
				const struct resp_head *h = resp_parse_head(rp);
				status = h->status;
				if (status == 101 && !upgrade_ok(h)) {
					rc = err_set(e, ERR_INTERNAL, "the server at %s switched to another "
						     "protocol than " UPGRADE_TOKEN, s->c->base);
				} else if (status == 101) {
					feed(s, chunk + off, n - off);   /* the first frames, maybe */
					rc = 0;
				}
				if (status == 101)
					goto out;
			} else if (ev == RESP_EV_BODY) {
				const char *d;
				size_t bn;
				resp_parse_body(rp, &d, &bn);
				if (body.len + bn > ERROR_BODY_MAX)
					bn = ERROR_BODY_MAX - body.len;
				buf_add(&body, d, bn);
			} else if (ev == RESP_EV_DONE && status / 100 != 1) {
				rc = answer_error(s, status, &body, e);
				goto out;
			} else if (ev == RESP_EV_ERROR) {
				rc = err_set(e, ERR_INTERNAL, "the server at %s sent an answer that is not "
					     "HTTP/1.1: %s", s->c->base, resp_parse_error(rp));
				goto out;
			}
		} while (ev != RESP_EV_NONE);
	}
out:
	buf_free(&body);
	resp_parse_free(rp);
	return rc;
}

/* ---- the whole of it ---- */

static void add_terminal(json_t *body, bool tty)
{
	unsigned rows, cols;
	json_object_set_new(body, "tty", json_boolean(tty));
	if (!tty)
		return;
	if (win_size(&rows, &cols)) {
		json_object_set_new(body, "rows", json_integer(rows));
		json_object_set_new(body, "cols", json_integer(cols));
	}
	const char *term = getenv("TERM");
	json_t *t = term && *term ? json_string(term) : NULL;
	if (t)
		json_object_set_new(body, "term", t);
}

int attach_run(struct client *c, const char *path, json_t *body, bool tty)
{
	struct session s;
	struct err e = ERR_INIT;
	memset(&s, 0, sizeof s);
	s.c = c;
	s.h = c->curl;
	s.tty = tty;
	s.stdin_open = true;
	frame_reader_init(&s.rd);
	add_terminal(body, tty);

	int64_t deadline = now_ms() + HEAD_TIMEOUT_MS;
	int rc = connect_api(&s, &e);
	if (!rc)
		rc = signals_catch(&e);
	if (!rc)
		rc = send_request(&s, path, body, deadline, &e);
	if (!rc)
		rc = read_head(&s, deadline, &e);
	if (rc) {
		signals_release();
		frame_reader_free(&s.rd);
		buf_free(&s.down);
		return rc > 0 ? s.status : cli_fail(&e);
	}

	if (tty && isatty(STDIN_FILENO) && term_raw(&e)) {
		fprintf(stderr, "berth: %s; going on without it\n", e.msg);
		err_clear(&e);
	}
	if (s.winch) {
		unsigned rows, cols;
		if (win_size(&rows, &cols))
			frame_put_resize(&s.up, rows, cols);
	}
	if (s.end == E_RUNNING)
		pump(&s);
	if (s.end != E_GAVE_UP)
		drain(&s);
	term_restore();
	signals_release();

	fflush(stdout);
	switch (s.end) {
	case E_EXITED:
		rc = s.status;
		if (s.exit_msg)
			fprintf(stderr, "berth: %s\n", s.exit_msg);
		break;
	case E_GAVE_UP:
		rc = s.status;
		fprintf(stderr, "berth: disconnected; the server stops the command\n");
		break;
	case E_STDOUT_GONE:
		rc = ATTACH_EXIT_STDOUT_GONE;
		if (s.out_errno != EPIPE)
			fprintf(stderr, "berth: cannot write the command's output: %s; the command was "
				"stopped\n", strerror(s.out_errno));
		break;
	case E_BROKEN:
		rc = ATTACH_EXIT_LOST;
		fprintf(stderr, "berth: the server broke the attach protocol: %s; the command was "
			"stopped\n", s.e.msg);
		break;
	default:
		rc = ATTACH_EXIT_LOST;
		fprintf(stderr, "berth: connection to the server lost; the command was stopped\n");
		break;
	}
	free(s.exit_msg);
	frame_reader_free(&s.rd);
	buf_free(&s.up);
	buf_free(&s.down);
	return rc;
}
