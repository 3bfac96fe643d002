/* read: logs_read, the stored lines of an app merged across instances in time order.
 * Lists DIR/logs/<env>/<app>, groups the files by instance (<process>.<slot>, with its rotated
 * files oldest first) and merges the instances with a heap ordered by (timestamp, instance),
 * so equal timestamps keep a fixed order. With n > 0 it merges backwards from the newest line,
 * reading files from their end, and stops after n lines; otherwise it streams forwards.
 * Touches only the files and l->root, never the writers' state. Unparsable lines are skipped. */
#include "logs/logs_int.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rfile {
	char *path;
	int rot;                  /* 0 = .log, N = .log.N (older as N grows) */
};

struct inst {
	char *process;
	int slot;
	int idx;                  /* place in the (process, slot) order: the tie-break */
	struct rfile *files;      /* oldest first */
	int nfiles, cap;
	int cur;                  /* file being read; -1 / nfiles when done */
	int open;
	struct logs_fwd fwd;
	struct logs_bwd bwd;
	struct logs_parsed line;  /* the current line (text inside the reader's buffer) */
};

struct set {
	struct inst **v;
	int n, cap;
	unsigned streams;          /* bit (1 << stream) of the lines wanted */
};

static int cmp_inst(const void *a, const void *b)
{
	const struct inst *x = *(struct inst *const *)a, *y = *(struct inst *const *)b;
	int c = strcmp(x->process, y->process);
	return c ? c : (x->slot > y->slot) - (x->slot < y->slot);
}

static int cmp_file(const void *a, const void *b)
{
	const struct rfile *x = a, *y = b;
	return (y->rot > x->rot) - (y->rot < x->rot);   /* higher N (older) first */
}

static void set_free(struct set *s)
{
	for (int i = 0; i < s->n; i++) {
		struct inst *in = s->v[i];
		for (int j = 0; j < in->nfiles; j++)
			free(in->files[j].path);
		free(in->files);
		free(in->process);
		free(in);
	}
	free(s->v);
}

static struct inst *set_get(struct set *s, const char *process, size_t plen, int slot)
{
	for (int i = 0; i < s->n; i++) {
		struct inst *in = s->v[i];
		if (in->slot == slot && strlen(in->process) == plen &&
		    !memcmp(in->process, process, plen))
			return in;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->v = xrealloc(s->v, (size_t)s->cap * sizeof *s->v);
	}
	struct inst *in = xcalloc(1, sizeof *in);
	in->process = xstrndup(process, plen);
	in->slot = slot;
	s->v[s->n++] = in;
	return in;
}

/* The instances of (env, app[, process]) with their files; an app without logs has none. */
static int list_instances(const char *dir, const char *process, struct set *s, struct err *e)
{
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return err_errno(e, errno, "read logs in %s", dir);
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t plen;
		int slot, rot;
		if (logs_parse_name(de->d_name, &plen, &slot, &rot) < 0)
			continue;
		if (process && (strlen(process) != plen || memcmp(process, de->d_name, plen)))
			continue;
		struct inst *in = set_get(s, de->d_name, plen, slot);
		if (in->nfiles == in->cap) {
			in->cap = in->cap ? in->cap * 2 : 4;
			in->files = xrealloc(in->files, (size_t)in->cap * sizeof *in->files);
		}
		in->files[in->nfiles].path = xasprintf("%s/%s", dir, de->d_name);
		in->files[in->nfiles].rot = rot;
		in->nfiles++;
	}
	closedir(d);
	if (s->n)
		qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_inst);
	for (int i = 0; i < s->n; i++) {
		s->v[i]->idx = i;
		if (s->v[i]->nfiles)
			qsort(s->v[i]->files, (size_t)s->v[i]->nfiles, sizeof *s->v[i]->files, cmp_file);
	}
	return 0;
}

/* ---- heap of instances by their current line ---- */

/* desc = 0: oldest first (min-heap); desc = 1: newest first. */
static int before(const struct inst *a, const struct inst *b, int desc)
{
	if (a->line.ts_us != b->line.ts_us)
		return desc ? a->line.ts_us > b->line.ts_us : a->line.ts_us < b->line.ts_us;
	return desc ? a->idx > b->idx : a->idx < b->idx;
}

static void sift_down(struct inst **h, int n, int i, int desc)
{
	for (;;) {
		int c = 2 * i + 1;
		if (c >= n)
			return;
		if (c + 1 < n && before(h[c + 1], h[c], desc))
			c++;
		if (!before(h[c], h[i], desc))
			return;
		struct inst *t = h[c];
		h[c] = h[i];
		h[i] = t;
		i = c;
	}
}

static void heapify(struct inst **h, int n, int desc)
{
	for (int i = n / 2 - 1; i >= 0; i--)
		sift_down(h, n, i, desc);
}

/* ---- forwards ---- */

/* Timestamp of the last parsable line of an open file; -1 when there is none. */
static int64_t last_ts(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct logs_bwd r;
	int64_t ts = -1;
	if (logs_bwd_init(&r, fd) == 0) {
		const char *p;
		size_t n;
		struct logs_parsed pl;
		while (logs_bwd_prev(&r, &p, &n) == 1)
			if (logs_parse_line(p, n, &pl) == 0) {
				ts = pl.ts_us;
				break;
			}
	}
	logs_bwd_close(&r);
	return ts;
}

/* Load the instance's next line with ts >= since. 1, or 0 when it has no more. */
static int fwd_advance(struct inst *in, int64_t since, unsigned streams)
{
	for (;;) {
		if (!in->open) {
			if (in->cur >= in->nfiles)
				return 0;
			const char *path = in->files[in->cur].path;
			/* A whole file older than since is not read (its last line says so). */
			if (since > 0 && in->cur < in->nfiles - 1 && last_ts(path) < since) {
				in->cur++;
				continue;
			}
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				in->cur++;       /* rotated away or removed meanwhile */
				continue;
			}
			logs_fwd_init(&in->fwd, fd);
			in->open = 1;
		}
		const char *p;
		size_t n;
		if (logs_fwd_next(&in->fwd, &p, &n) != 1) {
			logs_fwd_close(&in->fwd);
			in->open = 0;
			in->cur++;
			continue;
		}
		if (logs_parse_line(p, n, &in->line) == 0 && in->line.ts_us >= since &&
		    (streams & (1u << in->line.stream)))
			return 1;
	}
}

static void emit(const char *env, const char *app, const struct inst *in,
		 const struct logs_parsed *pl, logs_line_fn fn, void *arg)
{
	struct log_line ln = {
		.ts_us = pl->ts_us, .env = env, .app = app, .process = in->process,
		.slot = in->slot, .release = pl->release, .stream = pl->stream,
		.text = pl->text, .len = pl->len,
	};
	fn(arg, &ln);
}

static void read_forward(struct set *s, const char *env, const char *app, int64_t since,
			 logs_line_fn fn, void *arg)
{
	struct inst **h = xcalloc((size_t)s->n + 1, sizeof *h);
	int hn = 0;
	for (int i = 0; i < s->n; i++)
		if (fwd_advance(s->v[i], since, s->streams))
			h[hn++] = s->v[i];
	heapify(h, hn, 0);
	while (hn) {
		struct inst *in = h[0];
		emit(env, app, in, &in->line, fn, arg);
		if (!fwd_advance(in, since, s->streams))
			h[0] = h[--hn];
		sift_down(h, hn, 0, 0);
	}
	for (int i = 0; i < s->n; i++)
		if (s->v[i]->open)
			logs_fwd_close(&s->v[i]->fwd);
	free(h);
}

/* ---- backwards ---- */

/* Load the instance's previous line; 0 when none is left or it is older than since (a
 * file's lines are in time order, so nothing before it can qualify). */
static int bwd_advance(struct inst *in, int64_t since, unsigned streams)
{
	for (;;) {
		if (!in->open) {
			if (in->cur < 0)
				return 0;
			int fd = open(in->files[in->cur].path, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				in->cur--;
				continue;
			}
			if (logs_bwd_init(&in->bwd, fd) < 0) {
				logs_bwd_close(&in->bwd);
				in->cur--;
				continue;
			}
			in->open = 1;
		}
		const char *p;
		size_t n;
		if (logs_bwd_prev(&in->bwd, &p, &n) != 1) {
			logs_bwd_close(&in->bwd);
			in->open = 0;
			in->cur--;
			continue;
		}
		if (logs_parse_line(p, n, &in->line) < 0)
			continue;
		if (in->line.ts_us < since) {
			logs_bwd_close(&in->bwd);
			in->open = 0;
			in->cur = -1;
			return 0;
		}
		if (!(streams & (1u << in->line.stream)))
			continue;
		return 1;
	}
}

struct kept {
	int64_t ts_us;
	int inst, release, stream;
	size_t off, len;
};

static void read_backward(struct set *s, const char *env, const char *app, int n,
			  int64_t since, logs_line_fn fn, void *arg)
{
	struct inst **h = xcalloc((size_t)s->n + 1, sizeof *h);
	int hn = 0;
	for (int i = 0; i < s->n; i++) {
		s->v[i]->cur = s->v[i]->nfiles - 1;
		if (bwd_advance(s->v[i], since, s->streams))
			h[hn++] = s->v[i];
	}
	heapify(h, hn, 1);
	struct kept *k = NULL;
	int kn = 0, kcap = 0;
	struct buf text = BUF_INIT;
	while (hn && kn < n) {
		struct inst *in = h[0];
		if (kn == kcap) {
			kcap = !kcap ? (n < 64 ? n : 64) : kcap > n / 2 ? n : kcap * 2;
			k = xrealloc(k, (size_t)kcap * sizeof *k);
		}
		k[kn++] = (struct kept){ in->line.ts_us, in->idx, in->line.release, in->line.stream,
					 text.len, in->line.len };
		buf_add(&text, in->line.text, in->line.len);
		if (!bwd_advance(in, since, s->streams))
			h[0] = h[--hn];
		sift_down(h, hn, 0, 1);
	}
	for (int i = 0; i < s->n; i++)
		if (s->v[i]->open)
			logs_bwd_close(&s->v[i]->bwd);
	free(h);
	for (int i = kn - 1; i >= 0; i--) {
		struct logs_parsed pl = { k[i].ts_us, k[i].release, k[i].stream,
					  text.p ? text.p + k[i].off : "", k[i].len };
		emit(env, app, s->v[k[i].inst], &pl, fn, arg);
	}
	free(k);
	buf_free(&text);
}

int logs_read(struct logs *l, const char *env, const char *app, const char *process, int n,
	      int64_t since_us, logs_line_fn fn, void *arg, struct err *e)
{
	return logs_read_streams(l, env, app, process, LOGS_ALL_STREAMS, n, since_us, fn, arg, e);
}

int logs_read_streams(struct logs *l, const char *env, const char *app, const char *process, unsigned streams,
		      int n, int64_t since_us, logs_line_fn fn, void *arg, struct err *e)
{
	if (process && !*process)
		process = NULL;
	if (!l || !fn || !logs_name_ok(env) || !logs_name_ok(app) ||
	    (process && !logs_name_ok(process)))
		return err_set(e, ERR_INVALID, "read logs: invalid app or process name");
	char *dir = xasprintf("%s/%s/%s", l->root, env, app);
	struct set s = {0};
	s.streams = streams;
	int r = list_instances(dir, process, &s, e);
	free(dir);
	if (r == 0) {
		if (n > 0)
			read_backward(&s, env, app, n, since_us, fn, arg);
		else
			read_forward(&s, env, app, since_us, fn, arg);
	}
	set_free(&s);
	return r;
}
