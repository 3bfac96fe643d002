/* sink: writing instance output to DIR/logs/<env>/<app>/<process>.<slot>.log.
 * Owns the open files (one per slot, refcounted, shared by every sink of that slot so a
 * rotation is done once and all writers follow it), the per-sink partial lines, line cutting
 * and cleaning, the single write(2) per chunk, and size rotation. This is the hot path: per
 * line it only splits (memchr), copies and checks bytes; subscribers cost nothing when absent.
 * It never blocks for long: files are local; a failed write drops the chunk and counts it. */
#include "logs/logs_int.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"

#define OPEN_RETRY_MS 1000
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static const char *nz(const char *s)
{
	return s ? s : "(none)";
}

/* ---- open files ---- */

/* Create the directory if needed and open the current file; fills e on failure. */
static int file_open(struct log_file *f, struct err *e)
{
	if (fs_mkdir_p(f->dir, 0750, e) < 0)
		return err_prefix(e, "open log %s", f->path);
	int fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return err_errno(e, errno, "open log %s", f->path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int er = errno;
		close(fd);
		return err_errno(e, er, "stat log %s", f->path);
	}
	f->fd = fd;
	f->size = st.st_size;
	f->rotate_at = f->l->rotate_bytes;
	f->failing = 0;
	return 0;
}

static void file_free(struct log_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->env);
	free(f->app);
	free(f->process);
	free(f->dir);
	free(f->path);
	free(f);
}

static struct log_file *file_get(struct logs *l, const char *env, const char *app,
				 const char *process, int slot, struct err *e)
{
	for (struct log_file *f = l->files; f; f = f->next)
		if (f->slot == slot && !strcmp(f->process, process) && !strcmp(f->app, app) &&
		    !strcmp(f->env, env)) {
			f->refs++;
			return f;
		}
	struct log_file *f = xcalloc(1, sizeof *f);
	f->l = l;
	f->env = xstrdup(env);
	f->app = xstrdup(app);
	f->process = xstrdup(process);
	f->slot = slot;
	f->dir = xasprintf("%s/%s/%s", l->root, env, app);
	f->path = xasprintf("%s/%s.%d.log", f->dir, process, slot);
	f->fd = -1;
	if (file_open(f, e) < 0) {
		file_free(f);
		return NULL;
	}
	f->refs = 1;
	f->next = l->files;
	l->files = f;
	return f;
}

static void file_put(struct log_file *f)
{
	if (--f->refs > 0)
		return;
	if (!f->gone) {
		struct log_file **pp = &f->l->files;
		while (*pp != f)
			pp = &(*pp)->next;
		*pp = f->next;
	}
	file_free(f);
}

void logs_files_forget_app(struct logs *l, const char *env, const char *app)
{
	struct log_file **pp = &l->files;
	while (*pp) {
		struct log_file *f = *pp;
		if (!strcmp(f->env, env) && !strcmp(f->app, app)) {
			*pp = f->next;
			f->next = NULL;
			f->gone = 1;
			if (f->fd >= 0)
				close(f->fd);
			f->fd = -1;
		} else {
			pp = &f->next;
		}
	}
}

static void rot_path(struct buf *b, const struct log_file *f, int n)
{
	buf_reset(b);
	buf_addf(b, "%s.%d", f->path, n);
}

/* .log.(keep-1) -> .log.keep ... .log -> .log.1, reopen .log; files beyond keep are deleted.
 * When .log cannot be moved aside, keep writing to it and try again one rotate_bytes later. */
static void file_rotate(struct log_file *f)
{
	struct logs *l = f->l;
	int keep = l->keep > 0 ? l->keep : 0;
	struct buf from = BUF_INIT, to = BUF_INIT;
	for (int i = keep + 1; i <= keep + 1000; i++) {   /* left over from a larger keep */
		rot_path(&from, f, i);
		if (unlink(from.p) < 0)
			break;
	}
	for (int i = keep - 1; i >= 1; i--) {
		rot_path(&from, f, i);
		rot_path(&to, f, i + 1);
		if (rename(from.p, to.p) < 0 && errno != ENOENT)
			log_warn("logs: rotate %s to %s: %s", from.p, to.p, strerror(errno));
	}
	int r;
	if (keep >= 1) {
		rot_path(&to, f, 1);
		r = rename(f->path, to.p);
	} else {
		r = unlink(f->path);
	}
	if (r < 0 && errno == ENOENT)
		r = 0;                  /* deleted by hand: the reopen below starts a new file */
	if (r < 0) {
		log_warn("logs: rotate %s: %s", f->path, strerror(errno));
		f->rotate_at = f->size + l->rotate_bytes;
	} else {
		close(f->fd);
		f->fd = -1;
		struct err e = ERR_INIT;
		if (file_open(f, &e) < 0) {
			log_warn("logs: after rotation: %s", e.msg);
			f->failing = 1;
			f->retry_ms = time_mono_ms() + OPEN_RETRY_MS;
		}
	}
	buf_free(&from);
	buf_free(&to);
}

/* Append the whole buffer. 0 when written; -1 when dropped (the caller counts the lines). */
static int file_write(struct log_file *f, const char *p, size_t n)
{
	if (f->gone)
		return -1;
	if (f->fd < 0) {
		if (time_mono_ms() < f->retry_ms)
			return -1;
		struct err e = ERR_INIT;
		if (file_open(f, &e) < 0) {
			if (!f->failing)
				log_warn("logs: dropping output: %s", e.msg);
			f->failing = 1;
			f->retry_ms = time_mono_ms() + OPEN_RETRY_MS;
			return -1;
		}
	}
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(f->fd, p + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (!f->failing)
				log_warn("logs: dropping output: write %s: %s", f->path,
					 w < 0 ? strerror(errno) : "wrote nothing");
			f->failing = 1;
			if (done) {
				/* A torn line: end it so the next line starts on its own. */
				if (write(f->fd, "\n", 1) == 1)
					f->size++;
			}
			f->size += (int64_t)done;
			return -1;
		}
		done += (size_t)w;
	}
	f->size += (int64_t)n;
	f->failing = 0;
	if (f->l->rotate_bytes > 0 && f->size > f->rotate_at)
		file_rotate(f);
	return 0;
}

/* ---- formatting ---- */

/* Any byte < 0x20 or == 0x7f in the word (bit tricks that are exact for "any"). */
static inline int word_has_ctl(uint64_t x)
{
	uint64_t lt = (x - ONES * 0x20) & ~x & HIGHS;
	uint64_t y = x ^ (ONES * 0x7f);
	uint64_t del = (y - ONES) & ~y & HIGHS;
	return (lt | del) != 0;
}

static void fix_bytes(char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			p[i] = '?';
	}
}

/* Control bytes except TAB become '?': a stored line stays one line of text. Other bytes,
 * valid UTF-8 or not, are kept. Checks a word at a time since nearly every word is clean. */
static void clean(char *p, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x;
		memcpy(&x, p + i, 8);
		if (word_has_ctl(x))
			fix_bytes(p + i, 8);
	}
	fix_bytes(p + i, n - i);
}

/* The output of one call: every line gets the same prefix "<ts> v<rel> <out|err> ". */
struct emit {
	struct buf out;
	char prefix[64];
	size_t plen;
	uint64_t lines;
};

/* One stored line; len <= LOGS_LINE_MAX. */
static void emit_text(struct emit *em, const char *text, size_t len)
{
	struct buf *o = &em->out;
	size_t need = em->plen + len + 1;
	if (o->cap - o->len < need + 1)
		buf_grow(o, need);
	char *d = o->p + o->len;
	memcpy(d, em->prefix, em->plen);
	d += em->plen;
	memcpy(d, text, len);
	clean(d, len);
	d[len] = '\n';
	o->len += need;
	em->lines++;
}

/* A complete output line: cut into LOGS_LINE_MAX pieces (an empty line stays one line). */
static void emit_line(struct emit *em, const char *text, size_t len)
{
	while (len > LOGS_LINE_MAX) {
		emit_text(em, text, LOGS_LINE_MAX);
		text += LOGS_LINE_MAX;
		len -= LOGS_LINE_MAX;
	}
	emit_text(em, text, len);
}

/* Add to a partial line; a full piece is stored as a line as soon as more bytes follow it, so
 * a partial never holds more than LOGS_LINE_MAX bytes. */
static void partial_add(struct emit *em, struct buf *pb, const char *p, size_t n)
{
	while (n) {
		if (pb->len == LOGS_LINE_MAX) {
			emit_text(em, pb->p, pb->len);
			buf_reset(pb);
		}
		size_t take = LOGS_LINE_MAX - pb->len;
		if (take > n)
			take = n;
		buf_add(pb, p, take);
		p += take;
		n -= take;
	}
}

static void partial_done(struct buf *pb)
{
	if (pb->cap > 4096)
		buf_free(pb);      /* do not keep 16 KiB per stream for an idle sink */
	else
		buf_reset(pb);
}

static void emit_begin(struct emit *em, struct log_sink *s, int stream, int64_t ts)
{
	struct logs *l = s->l;
	/* Borrow the shared output buffer; a nested write (from a subscriber) gets its own. */
	em->out = l->scratch;
	l->scratch = (struct buf)BUF_INIT;
	em->out.len = 0;
	em->lines = 0;
	time_format_rfc3339(ts, em->prefix, sizeof em->prefix);
	size_t tl = strlen(em->prefix);
	int k = snprintf(em->prefix + tl, sizeof em->prefix - tl, " v%d %s ", s->release,
			 stream == 2 ? "err" : stream == LOGS_STREAM_BERTH ? "sys" : "out");
	em->plen = tl + (k > 0 ? (size_t)k : 0);
	if (em->plen >= sizeof em->prefix)
		em->plen = sizeof em->prefix - 1;
}

/* Write the lines, rotate if needed, hand them to subscribers, give the buffer back. */
static void emit_commit(struct emit *em, struct log_sink *s, int stream, int64_t ts)
{
	struct logs *l = s->l;
	struct buf *o = &em->out;
	if (em->lines) {
		o->p[o->len] = 0;
		if (file_write(s->f, o->p, o->len) == 0)
			l->lines_total += em->lines;
		else
			l->lines_dropped += em->lines;
		if (l->subs)
			logs_deliver(l, s->f, s->release, stream, ts, o->p, o->len, em->plen);
	}
	if (!l->scratch.p && o->cap <= LOGS_SCRATCH_KEEP)
		l->scratch = *o;
	else
		buf_free(o);
}

/* ---- sinks ---- */

struct log_sink *logs_sink_open(struct logs *l, const char *env, const char *app,
				const char *process, int slot, int release, struct err *e)
{
	if (!logs_name_ok(env) || !logs_name_ok(app) || !logs_name_ok(process) || slot < 0) {
		err_set(e, ERR_INVALID, "log sink for %s/%s %s.%d: invalid name", nz(env), nz(app),
			nz(process), slot);
		return NULL;
	}
	struct log_file *f = file_get(l, env, app, process, slot, e);
	if (!f)
		return NULL;
	struct log_sink *s = xcalloc(1, sizeof *s);
	s->l = l;
	s->f = f;
	s->release = release;
	s->next = l->sinks;
	if (l->sinks)
		l->sinks->prev = s;
	l->sinks = s;
	return s;
}

void logs_sink_write(struct log_sink *s, int stream, const char *data, size_t n)
{
	logs_sink_write_at(s, stream, 0, data, n);
}

void logs_sink_write_at(struct log_sink *s, int stream, int64_t ts, const char *data, size_t n)
{
	if (!s || !data || !n)
		return;
	stream = stream == 2 || stream == LOGS_STREAM_BERTH ? stream : 1;
	struct buf *pb = &s->partial[stream - 1];
	if (ts <= 0)
		ts = time_now_us();
	struct emit em;
	emit_begin(&em, s, stream, ts);
	/* Room for the common case (short lines) so the loop rarely grows the buffer. */
	buf_grow(&em.out, n + n / 2 + 256);
	const char *p = data, *end = data + n;
	if (pb->len) {
		const char *nl = memchr(p, '\n', n);
		if (!nl) {
			partial_add(&em, pb, p, n);
			p = end;
		} else {
			size_t k = (size_t)(nl - p);
			if (k && nl[-1] == '\r')
				k--;
			else if (!k && pb->p[pb->len - 1] == '\r')
				pb->len--;
			partial_add(&em, pb, p, k);
			emit_line(&em, pb->p, pb->len);
			partial_done(pb);
			p = nl + 1;
		}
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			partial_add(&em, pb, p, (size_t)(end - p));
			break;
		}
		size_t k = (size_t)(nl - p);
		if (k && nl[-1] == '\r')
			k--;
		emit_line(&em, p, k);
		p = nl + 1;
	}
	emit_commit(&em, s, stream, ts);
}

/* Store a waiting partial line as a line (end of output: the trailing '\r' goes too). */
static void sink_flush(struct log_sink *s, int stream)
{
	struct buf *pb = &s->partial[stream - 1];
	if (!pb->len) {
		buf_free(pb);
		return;
	}
	if (pb->p[pb->len - 1] == '\r')
		pb->len--;
	int64_t ts = time_now_us();
	struct emit em;
	emit_begin(&em, s, stream, ts);
	emit_line(&em, pb->p, pb->len);
	buf_free(pb);
	emit_commit(&em, s, stream, ts);
}

void logs_sink_close(struct log_sink *s)
{
	if (!s)
		return;
	struct logs *l = s->l;
	sink_flush(s, 1);
	sink_flush(s, 2);
	sink_flush(s, LOGS_STREAM_BERTH);
	if (s->prev)
		s->prev->next = s->next;
	else
		l->sinks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	file_put(s->f);
	free(s);
}

void logs_sink_free_all(struct logs *l)
{
	while (l->sinks)
		logs_sink_close(l->sinks);
}
