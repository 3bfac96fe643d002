/* test_logs: instance output capture (line splitting, cleaning, cutting, rotation, shared
 * files, live subscribers) and reading back (merge order, n, since, rotated files, junk),
 * plus a throughput measurement of the write path (printed, not asserted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "logs/logs.h"
#include "logs/logs_int.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/timeutil.h"

static char root[64];

/* ---- helpers ---- */

static int setup(void **state)
{
	snprintf(root, sizeof root, "/tmp/berth-logs-XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	struct err e = ERR_INIT;
	assert_int_equal(fs_rm_rf(root, &e), 0);
	return 0;
}

static char *path_of(const char *rel)
{
	return xasprintf("%s/%s", root, rel);
}

/* The lines of a file under root, each split into "<ts>" and the rest after it. */
struct flines {
	int n;
	int64_t ts[4096];
	char *rest[4096];
};

static void flines_free(struct flines *f)
{
	for (int i = 0; i < f->n; i++)
		free(f->rest[i]);
	free(f);
}

static struct flines *file_lines(const char *rel)
{
	char *p = path_of(rel);
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct flines *f = calloc(1, sizeof *f);
	if (fs_read_file(p, &b, 0, &e) < 0) {
		free(p);
		return f;
	}
	free(p);
	const char *s = buf_str(&b), *end = s + b.len;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		assert_non_null(nl);              /* every stored line ends with '\n' */
		assert_true(nl - s >= LOGS_TS_LEN + 1);
		char ts[LOGS_TS_LEN + 1];
		memcpy(ts, s, LOGS_TS_LEN);
		ts[LOGS_TS_LEN] = 0;
		assert_int_equal(time_parse_rfc3339(ts, &f->ts[f->n]), 0);
		assert_int_equal(s[LOGS_TS_LEN], ' ');
		f->rest[f->n] = xstrndup(s + LOGS_TS_LEN + 1, (size_t)(nl - s) - LOGS_TS_LEN - 1);
		f->n++;
		s = nl + 1;
	}
	buf_free(&b);
	return f;
}

static void write_file(const char *rel, const char *content)
{
	char *p = path_of(rel);
	struct err e = ERR_INIT;
	assert_int_equal(fs_write_atomic(p, content, strlen(content), 0640, &e), 0);
	free(p);
}

static void add_line(struct buf *b, int64_t us, int rel, const char *stream, const char *text)
{
	char ts[40];
	buf_addf(b, "%s v%d %s %s\n", time_format_rfc3339(us, ts, sizeof ts), rel, stream, text);
}

/* Lines handed to a logs_line_fn. */
struct rec {
	int64_t ts;
	char env[32], app[32], process[32];
	int slot, release, stream;
	char *text;
	size_t len;
};

struct coll {
	struct rec *v;
	int n, cap;
	int stop_after;                 /* unsubscribe self after this many (0 = never) */
	struct logs_sub *self, *victim; /* victim: unsubscribed on the first line */
};

static void collect(void *arg, const struct log_line *ln)
{
	struct coll *c = arg;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->v = xrealloc(c->v, (size_t)c->cap * sizeof *c->v);
	}
	struct rec *r = &c->v[c->n++];
	memset(r, 0, sizeof *r);
	r->ts = ln->ts_us;
	snprintf(r->env, sizeof r->env, "%s", ln->env);
	snprintf(r->app, sizeof r->app, "%s", ln->app);
	snprintf(r->process, sizeof r->process, "%s", ln->process);
	r->slot = ln->slot;
	r->release = ln->release;
	r->stream = ln->stream;
	r->text = xstrndup(ln->text, ln->len);
	r->len = ln->len;
	if (c->victim) {
		logs_unsubscribe(c->victim);
		c->victim = NULL;
	}
	if (c->stop_after && c->n == c->stop_after)
		logs_unsubscribe(c->self);
}

static void coll_reset(struct coll *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->v[i].text);
	free(c->v);
	memset(c, 0, sizeof *c);
}

static struct logs *open_logs(int64_t rotate, int keep)
{
	struct err e = ERR_INIT;
	char *p = path_of("logs");
	struct logs *l = logs_new(p, rotate, keep, &e);
	free(p);
	assert_non_null(l);
	return l;
}

static struct log_sink *open_sink(struct logs *l, const char *app, const char *proc, int slot,
				  int rel)
{
	struct err e = ERR_INIT;
	struct log_sink *s = logs_sink_open(l, "prod", app, proc, slot, rel, &e);
	if (!s)
		fail_msg("sink: %s", e.msg);
	return s;
}

static void w(struct log_sink *s, int stream, const char *str)
{
	logs_sink_write(s, stream, str, strlen(str));
}

/* ---- writing ---- */

static void test_format_and_split(void **state)
{
	struct logs *l = open_logs(0, 0);
	int64_t t0 = time_now_us();
	struct log_sink *s = open_sink(l, "shop", "web", 1, 3);
	struct stat st;
	char *dir = path_of("logs/prod/shop");
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);
	free(dir);
	w(s, 1, "hel");
	w(s, 1, "lo\nwor");
	struct flines *f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 1);                  /* "wor" waits for its end */
	flines_free(f);
	w(s, 1, "ld\n\nlast\n");
	int64_t t1 = time_now_us();
	f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 4);
	assert_string_equal(f->rest[0], "v3 out hello");
	assert_string_equal(f->rest[1], "v3 out world");
	assert_string_equal(f->rest[2], "v3 out ");    /* an empty line stays a line */
	assert_string_equal(f->rest[3], "v3 out last");
	for (int i = 0; i < f->n; i++)
		assert_true(f->ts[i] >= t0 && f->ts[i] <= t1);
	assert_int_equal(f->ts[1], f->ts[2]);       /* one timestamp per write */
	flines_free(f);
	char *file = path_of("logs/prod/shop/web.1.log");
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	free(file);
	assert_int_equal(logs_lines_total(l), 4);
	logs_free(l);
}

static void test_crlf(void **state)
{
	struct logs *l = open_logs(0, 0);
	struct log_sink *s = open_sink(l, "shop", "web", 1, 1);
	w(s, 1, "a\r\nb\r\n");
	w(s, 1, "split\r");
	w(s, 1, "\nmid\rdle\r\n");
	w(s, 1, "c");
	w(s, 1, "\r\n");
	struct flines *f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 5);
	assert_string_equal(f->rest[0], "v1 out a");
	assert_string_equal(f->rest[1], "v1 out b");
	assert_string_equal(f->rest[2], "v1 out split");
	assert_string_equal(f->rest[3], "v1 out mid?dle");   /* only a trailing CR goes */
	assert_string_equal(f->rest[4], "v1 out c");
	flines_free(f);
	logs_free(l);
}

static void test_overlong_cut(void **state)
{
	struct logs *l = open_logs(0, 0);
	struct log_sink *s = open_sink(l, "shop", "web", 1, 1);
	size_t big = 2 * LOGS_LINE_MAX + 1000;
	char *data = xmalloc(big + 1);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)('a' + i % 26);
	data[big] = '\n';
	logs_sink_write(s, 1, data, big + 1);
	/* exactly LOGS_LINE_MAX stays one line */
	logs_sink_write(s, 1, data, LOGS_LINE_MAX);
	logs_sink_write(s, 1, "\n", 1);
	/* a partial line never grows past the limit: the first piece is stored at once */
	logs_sink_write(s, 1, data, LOGS_LINE_MAX + 10);
	struct flines *f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 5);
	const size_t pre = strlen("v1 out ");
	assert_int_equal(strlen(f->rest[0]) - pre, LOGS_LINE_MAX);
	assert_int_equal(strlen(f->rest[1]) - pre, LOGS_LINE_MAX);
	assert_int_equal(strlen(f->rest[2]) - pre, 1000);
	assert_memory_equal(f->rest[1] + pre, data + LOGS_LINE_MAX, LOGS_LINE_MAX);
	assert_memory_equal(f->rest[2] + pre, data + 2 * LOGS_LINE_MAX, 1000);
	assert_int_equal(strlen(f->rest[3]) - pre, LOGS_LINE_MAX);
	assert_int_equal(strlen(f->rest[4]) - pre, LOGS_LINE_MAX);
	flines_free(f);
	logs_sink_write(s, 1, "xy\n", 3);
	f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 6);
	assert_int_equal(strlen(f->rest[5]) - pre, 12);
	assert_memory_equal(f->rest[5] + pre, data + LOGS_LINE_MAX, 10);
	flines_free(f);
	free(data);
	logs_free(l);
}

static void test_control_chars(void **state)
{
	struct logs *l = open_logs(0, 0);
	struct log_sink *s = open_sink(l, "shop", "web", 1, 1);
	const char in[] = "a\0b\tc\x1b[31mred\x7f caf\xc3\xa9 \xff\xfe\x01\n";
	logs_sink_write(s, 1, in, sizeof in - 1);
	/* the same in a long line, every byte position of a word */
	struct buf lng = BUF_INIT;
	for (int i = 0; i < 40; i++)
		buf_add(&lng, i % 3 ? "xxxxxxx" : "xx\x02x\tx\x7f", 7);
	buf_addc(&lng, '\n');
	logs_sink_write(s, 2, lng.p, lng.len);
	struct flines *f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 2);
	assert_string_equal(f->rest[0], "v1 out a?b\tc?[31mred? caf\xc3\xa9 \xff\xfe?");
	struct buf want = BUF_INIT;
	buf_adds(&want, "v1 err ");
	for (int i = 0; i < 40; i++)
		buf_add(&want, i % 3 ? "xxxxxxx" : "xx?x\tx?", 7);
	assert_string_equal(f->rest[1], want.p);
	flines_free(f);
	buf_free(&lng);
	buf_free(&want);
	logs_free(l);
}

static void test_two_streams(void **state)
{
	struct logs *l = open_logs(0, 0);
	struct log_sink *s = open_sink(l, "shop", "web", 2, 4);
	w(s, 1, "o1 part");
	w(s, 2, "e1\ne2 part");
	w(s, 1, " end\n");
	w(s, 2, " end\n");
	struct flines *f = file_lines("logs/prod/shop/web.2.log");
	assert_int_equal(f->n, 3);
	assert_string_equal(f->rest[0], "v4 err e1");
	assert_string_equal(f->rest[1], "v4 out o1 part end");
	assert_string_equal(f->rest[2], "v4 err e2 part end");
	flines_free(f);
	logs_free(l);
}

static void test_partial_flushed_on_close(void **state)
{
	struct logs *l = open_logs(0, 0);
	struct log_sink *s = open_sink(l, "shop", "web", 1, 1);
	w(s, 1, "done\nno newline\r");
	w(s, 2, "err tail");
	struct flines *f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 1);
	flines_free(f);
	logs_sink_close(s);
	logs_sink_close(NULL);
	f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 3);
	assert_string_equal(f->rest[1], "v1 out no newline");
	assert_string_equal(f->rest[2], "v1 err err tail");
	flines_free(f);
	/* logs_free closes (and flushes) sinks left open */
	s = open_sink(l, "shop", "web", 1, 2);
	w(s, 1, "left open");
	logs_free(l);
	f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 4);
	assert_string_equal(f->rest[3], "v2 out left open");
	flines_free(f);
	logs_free(NULL);
}

static int exists(const char *rel)
{
	char *p = path_of(rel);
	int r = fs_exists(p);
	free(p);
	return r;
}

static void test_rotation_keep(void **state)
{
	/* a file left over from a larger keep is deleted at the first rotation */
	char *d = path_of("logs/prod/shop");
	struct err e = ERR_INIT;
	assert_int_equal(fs_mkdir_p(d, 0750, &e), 0);
	free(d);
	write_file("logs/prod/shop/web.1.log.3", "old\n");
	write_file("logs/prod/shop/web.1.log.4", "old\n");
	struct logs *l = open_logs(400, 2);
	struct log_sink *s = open_sink(l, "shop", "web", 1, 1);
	char line[64];
	for (int i = 0; i < 45; i++) {
		snprintf(line, sizeof line, "line %02d\n", i);   /* 43 bytes stored per line */
		w(s, 1, line);
	}
	assert_true(exists("logs/prod/shop/web.1.log"));
	assert_true(exists("logs/prod/shop/web.1.log.1"));
	assert_true(exists("logs/prod/shop/web.1.log.2"));
	assert_false(exists("logs/prod/shop/web.1.log.3"));
	assert_false(exists("logs/prod/shop/web.1.log.4"));
	/* each rotated file passed 400 bytes with its last write, the current one has not */
	struct flines *f0 = file_lines("logs/prod/shop/web.1.log");
	struct flines *f1 = file_lines("logs/prod/shop/web.1.log.1");
	struct flines *f2 = file_lines("logs/prod/shop/web.1.log.2");
	/* 10 lines pass 400 bytes: rotations after lines 9, 19, 29 and 39 */
	assert_int_equal(f0->n, 5);
	assert_int_equal(f1->n, 10);
	assert_int_equal(f2->n, 10);
	assert_string_equal(f0->rest[0], "v1 out line 40");
	assert_string_equal(f0->rest[4], "v1 out line 44");
	assert_string_equal(f1->rest[0], "v1 out line 30");
	assert_string_equal(f1->rest[9], "v1 out line 39");
	assert_string_equal(f2->rest[0], "v1 out line 20");
	flines_free(f0);
	flines_free(f1);
	flines_free(f2);
	logs_free(l);
}

/* A current file deleted by hand: the next rotation starts a new one instead of writing to
 * the deleted file for ever. */
static void test_rotation_after_delete(void **state)
{
	struct logs *l = open_logs(200, 2);
	struct log_sink *s = open_sink(l, "shop", "web", 1, 1);
	w(s, 1, "before\n");
	char *p = path_of("logs/prod/shop/web.1.log");
	assert_int_equal(unlink(p), 0);
	free(p);
	/* 42 + 3 x 57 bytes pass 200: lines 3 and 4 land in the new file */
	for (int i = 0; i < 5; i++) {
		char line[48];
		snprintf(line, sizeof line, "line %d xxxxxxxxxxxxxx\n", i);
		w(s, 1, line);
	}
	assert_false(exists("logs/prod/shop/web.1.log.1"));
	struct flines *f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 2);
	assert_string_equal(f->rest[0], "v1 out line 3 xxxxxxxxxxxxxx");
	assert_string_equal(f->rest[1], "v1 out line 4 xxxxxxxxxxxxxx");
	flines_free(f);
	logs_free(l);
}

static void test_shared_file(void **state)
{
	struct logs *l = open_logs(300, 3);
	struct log_sink *a = open_sink(l, "shop", "web", 1, 1);   /* old release */
	struct log_sink *b = open_sink(l, "shop", "web", 1, 2);   /* new release, same slot */
	struct log_sink *c = open_sink(l, "shop", "web", 2, 2);   /* another slot */
	assert_ptr_equal(a->f, b->f);
	assert_ptr_not_equal(a->f, c->f);
	w(a, 1, "from a\n");
	w(b, 1, "from b\n");
	struct flines *f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 2);
	assert_string_equal(f->rest[0], "v1 out from a");
	assert_string_equal(f->rest[1], "v2 out from b");
	flines_free(f);
	/* a rotates the shared file; b's next line lands in the new file, not in .log.1 */
	char big[400];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\n';
	logs_sink_write(a, 1, big, sizeof big);
	assert_true(exists("logs/prod/shop/web.1.log.1"));
	assert_false(exists("logs/prod/shop/web.1.log.2"));
	w(b, 1, "b after rotation\n");
	w(a, 1, "a after rotation\n");
	f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 2);
	assert_string_equal(f->rest[0], "v2 out b after rotation");
	assert_string_equal(f->rest[1], "v1 out a after rotation");
	flines_free(f);
	f = file_lines("logs/prod/shop/web.1.log.1");
	assert_int_equal(f->n, 3);
	flines_free(f);
	/* the file stays open while one sink still uses it */
	logs_sink_close(a);
	w(b, 1, "b alone\n");
	f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 3);
	flines_free(f);
	logs_sink_close(b);
	logs_sink_close(c);
	assert_null(l->files);
	logs_free(l);
}

/* ---- subscribers ---- */

static void test_subscriptions(void **state)
{
	struct logs *l = open_logs(0, 0);
	struct coll all = {0}, worker = {0}, other = {0}, staging = {0};
	struct logs_sub *sa = logs_subscribe(l, "prod", "shop", NULL, collect, &all);
	struct logs_sub *sw = logs_subscribe(l, "prod", "shop", "worker", collect, &worker);
	struct logs_sub *so = logs_subscribe(l, "prod", "blog", NULL, collect, &other);
	struct logs_sub *ss = logs_subscribe(l, "staging", "shop", NULL, collect, &staging);
	struct log_sink *web = open_sink(l, "shop", "web", 1, 7);
	struct log_sink *wk = open_sink(l, "shop", "worker", 3, 7);
	int64_t t0 = time_now_us();
	w(web, 1, "w1\nw2\x01\r\nw3");
	w(wk, 2, "k1\n");
	assert_int_equal(all.n, 3);
	assert_string_equal(all.v[0].text, "w1");
	assert_string_equal(all.v[1].text, "w2?");       /* the stored text, cleaned */
	assert_string_equal(all.v[2].text, "k1");
	assert_string_equal(all.v[0].env, "prod");
	assert_string_equal(all.v[0].app, "shop");
	assert_string_equal(all.v[0].process, "web");
	assert_int_equal(all.v[0].slot, 1);
	assert_int_equal(all.v[0].release, 7);
	assert_int_equal(all.v[0].stream, 1);
	assert_true(all.v[0].ts >= t0);
	assert_string_equal(all.v[2].process, "worker");
	assert_int_equal(all.v[2].slot, 3);
	assert_int_equal(all.v[2].stream, 2);
	assert_int_equal(worker.n, 1);
	assert_string_equal(worker.v[0].text, "k1");
	assert_int_equal(other.n, 0);
	assert_int_equal(staging.n, 0);
	/* the partial line reaches subscribers when it ends, or when the sink closes */
	logs_sink_close(web);
	assert_int_equal(all.n, 4);
	assert_string_equal(all.v[3].text, "w3");
	/* after unsubscribe, nothing more */
	logs_unsubscribe(sa);
	w(wk, 1, "k2\n");
	assert_int_equal(all.n, 4);
	assert_int_equal(worker.n, 2);
	logs_unsubscribe(sw);
	logs_unsubscribe(so);
	logs_unsubscribe(ss);
	logs_unsubscribe(NULL);
	assert_null(l->subs);
	coll_reset(&all);
	coll_reset(&worker);
	coll_reset(&other);
	coll_reset(&staging);
	logs_free(l);
}

static void test_unsubscribe_in_callback(void **state)
{
	struct logs *l = open_logs(0, 0);
	struct coll self = {0}, victim = {0}, killer = {0}, keep = {0};
	self.stop_after = 2;
	self.self = logs_subscribe(l, "prod", "shop", NULL, collect, &self);
	struct logs_sub *sv = logs_subscribe(l, "prod", "shop", NULL, collect, &victim);
	killer.victim = sv;
	/* newest subscriber is handed lines first: killer drops victim before its turn */
	logs_subscribe(l, "prod", "shop", NULL, collect, &killer);
	struct logs_sub *sk = logs_subscribe(l, "prod", "shop", NULL, collect, &keep);
	struct log_sink *s = open_sink(l, "shop", "web", 1, 1);
	w(s, 1, "1\n2\n3\n4\n5\n");
	assert_int_equal(self.n, 2);
	assert_int_equal(victim.n, 0);
	assert_int_equal(killer.n, 5);
	assert_int_equal(keep.n, 5);
	w(s, 1, "6\n");
	assert_int_equal(self.n, 2);
	assert_int_equal(killer.n, 6);
	/* the dead ones were swept after the delivery */
	int live = 0;
	for (struct logs_sub *x = l->subs; x; x = x->next) {
		assert_false(x->dead);
		live++;
	}
	assert_int_equal(live, 2);
	logs_unsubscribe(sk);
	coll_reset(&self);
	coll_reset(&victim);
	coll_reset(&killer);
	coll_reset(&keep);
	logs_free(l);                 /* frees the killer's subscription */
}

/* ---- reading ---- */

static const int64_t T0 = 1795551553000000;   /* 2026-11-24T20:19:13Z */

static int do_read(struct logs *l, const char *proc, int n, int64_t since, struct coll *c)
{
	struct err e = ERR_INIT;
	coll_reset(c);
	int r = logs_read(l, "prod", "shop", proc, n, since, collect, c, &e);
	if (r < 0)
		print_message("read: %s\n", e.msg);
	return r;
}

static void make_three(void)
{
	char *d = path_of("logs/prod/shop");
	struct err e = ERR_INIT;
	assert_int_equal(fs_mkdir_p(d, 0750, &e), 0);
	free(d);
	struct buf a = BUF_INIT, b = BUF_INIT, c = BUF_INIT;
	/* web.1: 0 3 6 6 9 ; web.2: 1 3 7 ; worker.1: 2 3 6 8 (ms after T0) */
	add_line(&a, T0, 1, "out", "a0");
	add_line(&a, T0 + 3000, 1, "out", "a3");
	buf_adds(&a, "garbage without a timestamp\n");
	buf_adds(&a, "2026-11-24T20:19:13.000000Z v1 sideways nope\n");
	add_line(&a, T0 + 6000, 1, "err", "a6");
	add_line(&a, T0 + 6000, 2, "out", "a6b");
	buf_adds(&a, "\n");
	add_line(&a, T0 + 9000, 2, "out", "a9");
	add_line(&b, T0 + 1000, 1, "out", "b1");
	add_line(&b, T0 + 3000, 1, "out", "b3");
	buf_adds(&b, "2026-11-24T20:19:13.007+00:00 v1 out b7\n");   /* hand-written time */
	add_line(&c, T0 + 2000, 1, "out", "c2");
	add_line(&c, T0 + 3000, 1, "out", "c3");
	add_line(&c, T0 + 6000, 1, "out", "c6");
	add_line(&c, T0 + 8000, 1, "out", "");
	write_file("logs/prod/shop/web.1.log", a.p);
	write_file("logs/prod/shop/web.2.log", b.p);
	write_file("logs/prod/shop/worker.1.log", c.p);
	write_file("logs/prod/shop/notes.txt", "not a log\n");
	write_file("logs/prod/shop/web.x.log", "2026-11-24T20:19:13.000000Z v1 out bad name\n");
	buf_free(&a);
	buf_free(&b);
	buf_free(&c);
}

static void expect(const struct coll *c, const char *const *want, int n)
{
	assert_int_equal(c->n, n);
	for (int i = 0; i < n; i++)
		assert_string_equal(c->v[i].text, want[i]);
}

static void test_read_merge(void **state)
{
	make_three();
	struct logs *l = open_logs(0, 0);
	struct coll c = {0};
	/* ties at +3 ms and +6 ms: web.1 < web.2 < worker.1, then file order */
	static const char *const all[] = {"a0", "b1", "c2", "a3", "b3", "c3", "a6", "a6b",
					  "c6", "b7", "", "a9"};
	assert_int_equal(do_read(l, NULL, 0, 0, &c), 0);
	expect(&c, all, 12);
	assert_string_equal(c.v[0].process, "web");
	assert_int_equal(c.v[0].slot, 1);
	assert_int_equal(c.v[1].slot, 2);
	assert_string_equal(c.v[2].process, "worker");
	assert_int_equal(c.v[0].ts, T0);
	assert_int_equal(c.v[9].ts, T0 + 7000);
	assert_int_equal(c.v[6].stream, 2);
	assert_int_equal(c.v[7].release, 2);
	assert_string_equal(c.v[0].env, "prod");
	assert_string_equal(c.v[0].app, "shop");
	/* backwards (n > 0) gives the same order */
	assert_int_equal(do_read(l, NULL, 100, 0, &c), 0);
	expect(&c, all, 12);
	/* one process */
	static const char *const web[] = {"a0", "b1", "a3", "b3", "a6", "a6b", "b7", "a9"};
	assert_int_equal(do_read(l, "web", 0, 0, &c), 0);
	expect(&c, web, 8);
	assert_int_equal(do_read(l, "web", 50, 0, &c), 0);
	expect(&c, web, 8);
	assert_int_equal(do_read(l, "nope", 0, 0, &c), 0);
	assert_int_equal(c.n, 0);
	/* an app without logs, bad names */
	struct err e = ERR_INIT;
	assert_int_equal(logs_read(l, "prod", "empty", NULL, 10, 0, collect, &c, &e), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(logs_read(l, "prod", "../x", NULL, 10, 0, collect, &c, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);
	coll_reset(&c);
	logs_free(l);
}

static void test_read_n_since(void **state)
{
	make_three();
	struct logs *l = open_logs(0, 0);
	struct coll c = {0};
	static const char *const last3[] = {"b7", "", "a9"};
	assert_int_equal(do_read(l, NULL, 3, 0, &c), 0);
	expect(&c, last3, 3);
	static const char *const last5[] = {"a6b", "c6", "b7", "", "a9"};
	assert_int_equal(do_read(l, NULL, 5, 0, &c), 0);
	expect(&c, last5, 5);
	static const char *const since6[] = {"a6", "a6b", "c6", "b7", "", "a9"};
	assert_int_equal(do_read(l, NULL, 0, T0 + 6000, &c), 0);
	expect(&c, since6, 6);
	assert_int_equal(do_read(l, NULL, 1000, T0 + 6000, &c), 0);
	expect(&c, since6, 6);
	static const char *const since6n2[] = {"", "a9"};
	assert_int_equal(do_read(l, NULL, 2, T0 + 6000, &c), 0);
	expect(&c, since6n2, 2);
	assert_int_equal(do_read(l, NULL, 0, T0 + 5999, &c), 0);
	expect(&c, since6, 6);
	assert_int_equal(do_read(l, NULL, 0, T0 + 10000, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(do_read(l, NULL, 1, 0, &c), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.v[0].text, "a9");
	coll_reset(&c);
	logs_free(l);
}

static void test_read_rotated(void **state)
{
	char *d = path_of("logs/prod/shop");
	struct err e = ERR_INIT;
	assert_int_equal(fs_mkdir_p(d, 0750, &e), 0);
	free(d);
	struct buf f2 = BUF_INIT, f1 = BUF_INIT, f0 = BUF_INIT, o = BUF_INIT;
	for (int i = 0; i < 3; i++) {
		char t[16];
		snprintf(t, sizeof t, "r2-%d", i);
		add_line(&f2, T0 + i, 1, "out", t);
		snprintf(t, sizeof t, "r1-%d", i);
		add_line(&f1, T0 + 10 + i, 1, "out", t);
		snprintf(t, sizeof t, "r0-%d", i);
		add_line(&f0, T0 + 20 + i, 2, "out", t);
		snprintf(t, sizeof t, "o-%d", i);
		add_line(&o, T0 + 5 + 10 * i, 1, "err", t);
	}
	write_file("logs/prod/shop/web.1.log.2", f2.p);
	write_file("logs/prod/shop/web.1.log.1", f1.p);
	write_file("logs/prod/shop/web.1.log", f0.p);
	write_file("logs/prod/shop/web.2.log", o.p);
	struct logs *l = open_logs(0, 0);
	struct coll c = {0};
	static const char *const all[] = {"r2-0", "r2-1", "r2-2", "o-0", "r1-0", "r1-1", "r1-2",
					  "o-1", "r0-0", "r0-1", "r0-2", "o-2"};
	assert_int_equal(do_read(l, NULL, 0, 0, &c), 0);
	expect(&c, all, 12);
	assert_int_equal(do_read(l, NULL, 12, 0, &c), 0);
	expect(&c, all, 12);
	static const char *const last6[] = {"r1-2", "o-1", "r0-0", "r0-1", "r0-2", "o-2"};
	assert_int_equal(do_read(l, NULL, 6, 0, &c), 0);
	expect(&c, last6, 6);
	/* since skips whole older files and starts inside .log.1 */
	static const char *const since11[] = {"r1-1", "r1-2", "o-1", "r0-0", "r0-1", "r0-2", "o-2"};
	assert_int_equal(do_read(l, NULL, 0, T0 + 11, &c), 0);
	expect(&c, since11, 7);
	coll_reset(&c);
	buf_free(&f2);
	buf_free(&f1);
	buf_free(&f0);
	buf_free(&o);
	logs_free(l);
}

/* Written by the sink, rotated by it, then read back: the round trip a user sees. */
static void test_read_what_was_written(void **state)
{
	struct logs *l = open_logs(20000, 5);
	struct log_sink *a = open_sink(l, "shop", "web", 1, 1);
	struct log_sink *b = open_sink(l, "shop", "web", 2, 1);
	char line[64];
	for (int i = 0; i < 1000; i++) {
		snprintf(line, sizeof line, "line %04d\n", i);
		/* distinct timestamps: equal ones merge by instance, not by write order */
		int64_t t = time_now_us();
		while (time_now_us() == t)
			;
		w(i % 2 ? b : a, i % 3 == 0 ? 2 : 1, line);
	}
	assert_true(exists("logs/prod/shop/web.1.log.1"));
	struct coll c = {0};
	assert_int_equal(do_read(l, NULL, 10, 0, &c), 0);
	assert_int_equal(c.n, 10);
	for (int i = 0; i < 10; i++) {
		snprintf(line, sizeof line, "line %04d", 990 + i);
		assert_string_equal(c.v[i].text, line);
		assert_int_equal(c.v[i].slot, (990 + i) % 2 ? 2 : 1);
	}
	assert_int_equal(do_read(l, NULL, 0, 0, &c), 0);
	int first = 1000 - c.n;                 /* rotation with keep 5 dropped the oldest */
	assert_true(c.n > 10 && c.n <= 1000);
	for (int i = 0; i < c.n; i++) {
		snprintf(line, sizeof line, "line %04d", first + i);
		assert_string_equal(c.v[i].text, line);
	}
	coll_reset(&c);
	assert_int_equal(logs_lines_total(l), 1000);
	logs_free(l);
}

/* Big files: the backward reader crosses many blocks, and junk never breaks it. */
static void test_read_big_and_junk(void **state)
{
	char *d = path_of("logs/prod/shop");
	struct err e = ERR_INIT;
	assert_int_equal(fs_mkdir_p(d, 0750, &e), 0);
	free(d);
	struct buf f = BUF_INIT;
	char t[64];
	for (int i = 0; i < 30000; i++) {
		snprintf(t, sizeof t, "line %05d", i);
		add_line(&f, T0 + i, 1, "out", t);
		if (i == 100 || i == 29990) {     /* a 200 KiB "line" of junk, no newline */
			for (int k = 0; k < 200 * 1024; k++)
				buf_addc(&f, (char)('A' + k % 7));
			buf_addc(&f, '\n');
		}
		if (i == 20000)
			buf_add(&f, "\0\0\0\n", 4);
	}
	buf_adds(&f, "2026-11-24T20:19:13.9");     /* torn tail without newline */
	char *p = path_of("logs/prod/shop/web.1.log");
	assert_int_equal(fs_write_atomic(p, f.p, f.len, 0640, &e), 0);
	free(p);
	struct logs *l = open_logs(0, 0);
	struct coll c = {0};
	assert_int_equal(do_read(l, NULL, 25, 0, &c), 0);
	assert_int_equal(c.n, 25);
	for (int i = 0; i < 25; i++) {
		snprintf(t, sizeof t, "line %05d", 30000 - 25 + i);
		assert_string_equal(c.v[i].text, t);
	}
	assert_int_equal(do_read(l, NULL, 29950, 0, &c), 0);
	assert_int_equal(c.n, 29950);
	snprintf(t, sizeof t, "line %05d", 50);
	assert_string_equal(c.v[0].text, t);
	assert_int_equal(do_read(l, NULL, 0, 0, &c), 0);
	assert_int_equal(c.n, 30000);
	for (int i = 0; i < 30000; i += 997) {
		snprintf(t, sizeof t, "line %05d", i);
		assert_string_equal(c.v[i].text, t);
	}
	coll_reset(&c);
	buf_free(&f);
	logs_free(l);
}

static void test_parse_hostile(void **state)
{
	struct logs_parsed pl;
	static const char *const bad[] = {
		"", " ", "2026-11-24T20:19:13.123456Z", "2026-11-24T20:19:13.123456Z ",
		"2026-11-24T20:19:13.123456Z v", "2026-11-24T20:19:13.123456Z v3",
		"2026-11-24T20:19:13.123456Z v3 ", "2026-11-24T20:19:13.123456Z v3 ou",
		"2026-11-24T20:19:13.123456Z 3 out x", "2026-11-24T20:19:13.123456Z v out x",
		"2026-11-24T20:19:13.123456Z v99999999999 out x",
		"2026-11-24T20:19:13.123456Z v3 outx", "2026-13-24T20:19:13.123456Z v3 out x",
		"2026-11-24T25:19:13.123456Z v3 out x", "2026-11-24 v3 out x",
		"yesterday v3 out x", "v3 out x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(logs_parse_line(bad[i], strlen(bad[i]), &pl), -1);
	/* a line with a NUL inside the hand-written time is refused, not truncated */
	const char nul[] = "2026-11-24T20:19:13Z\0junk v3 out x";
	assert_int_equal(logs_parse_line(nul, sizeof nul - 1, &pl), -1);
	const char *ok = "2026-11-24T20:19:13.123456Z v3 out";
	assert_int_equal(logs_parse_line(ok, strlen(ok), &pl), 0);
	assert_int_equal(pl.len, 0);
	ok = "2026-11-24T20:19:13.123456Z v2147483647 err  two  spaces ";
	assert_int_equal(logs_parse_line(ok, strlen(ok), &pl), 0);
	assert_int_equal(pl.release, 2147483647);
	assert_int_equal(pl.stream, 2);
	assert_int_equal(pl.len, strlen(" two  spaces "));
	/* the fast timestamp path agrees with timeutil across dates */
	static const int64_t when[] = {0, 951782400123456, 1795637953123456, 4102444799999999,
				       1709210096000001};
	for (size_t i = 0; i < sizeof when / sizeof *when; i++) {
		char ts[40], ln[80];
		int64_t want;
		time_format_rfc3339(when[i], ts, sizeof ts);
		assert_int_equal(time_parse_rfc3339(ts, &want), 0);
		snprintf(ln, sizeof ln, "%s v1 out x", ts);
		assert_int_equal(logs_parse_line(ln, strlen(ln), &pl), 0);
		assert_int_equal(pl.ts_us, want);
		assert_int_equal(pl.ts_us, when[i]);
	}
	/* random junk never crashes and never reads out of bounds (ASan) */
	srand(7);
	for (int i = 0; i < 20000; i++) {
		char junk[96];
		size_t n = (size_t)(rand() % (int)sizeof junk);
		char *heap = xmalloc(n ? n : 1);
		memcpy(junk, "2026-11-24T20:19:13.123456Z v3 out hi", 37);
		for (size_t k = 0; k < n; k++)
			if (k >= 37 || rand() % 8 == 0)
				junk[k] = (char)(rand() % 256);
		memcpy(heap, junk, n);
		(void)logs_parse_line(heap, n, &pl);
		free(heap);
	}
	/* file names */
	size_t plen;
	int slot, rot;
	assert_int_equal(logs_parse_name("web.1.log", &plen, &slot, &rot), 0);
	assert_int_equal(plen, 3);
	assert_int_equal(slot, 1);
	assert_int_equal(rot, 0);
	assert_int_equal(logs_parse_name("my.proc.12.log.3", &plen, &slot, &rot), 0);
	assert_int_equal(plen, 7);
	assert_int_equal(slot, 12);
	assert_int_equal(rot, 3);
	static const char *const badnames[] = {
		"web.log", ".1.log", "web.1.log.", "web.1.log.0", "web.1.log.x", "web.-1.log",
		"web.1.logs", "web.1.log.1.2", "web..log", "log", ".log", "web.1", "web.01.log",
		".web.1.log", "web.1.log.1234567",
	};
	for (size_t i = 0; i < sizeof badnames / sizeof *badnames; i++)
		if (logs_parse_name(badnames[i], &plen, &slot, &rot) == 0)
			fail_msg("accepted %s", badnames[i]);
}

static void test_remove_app(void **state)
{
	struct logs *l = open_logs(0, 0);
	struct log_sink *s = open_sink(l, "shop", "web", 1, 1);
	struct log_sink *o = open_sink(l, "blog", "web", 1, 1);
	w(s, 1, "one\n");
	w(o, 1, "other app\n");
	struct err e = ERR_INIT;
	assert_int_equal(logs_remove_app(l, "prod", "shop", &e), 0);
	assert_false(exists("logs/prod/shop"));
	assert_true(exists("logs/prod/blog/web.1.log"));
	/* a sink still open after removal does not bring the directory back */
	w(s, 1, "late\n");
	assert_false(exists("logs/prod/shop"));
	assert_int_equal(l->lines_dropped, 1);
	/* a new sink after removal starts a fresh file */
	struct log_sink *n = open_sink(l, "shop", "web", 1, 2);
	w(n, 1, "fresh\n");
	struct flines *f = file_lines("logs/prod/shop/web.1.log");
	assert_int_equal(f->n, 1);
	assert_string_equal(f->rest[0], "v2 out fresh");
	flines_free(f);
	logs_sink_close(s);
	assert_int_equal(logs_remove_app(l, "prod", "shop", &e), 0);
	assert_int_equal(logs_remove_app(l, "prod", "blog", &e), 0);
	assert_false(exists("logs/prod"));      /* the env's last app took the env dir */
	assert_int_equal(logs_remove_app(l, "prod", "never", &e), 0);
	assert_int_equal(logs_remove_app(l, "prod", "..", &e), -1);
	assert_null(logs_sink_open(l, "prod", "a/b", "web", 1, 1, &e));
	assert_int_equal(e.code, ERR_INVALID);
	logs_free(l);
}

static void count_line(void *arg, const struct log_line *ln)
{
	*(uint64_t *)arg += ln->len > 0;
}

/* Throughput of the write path: 50-byte lines in 64 KiB pipe reads, one sink, one core. */
static void test_throughput(void **state)
{
	struct logs *l = open_logs(64 * 1024 * 1024, 1);
	struct log_sink *s = open_sink(l, "shop", "web", 1, 12);
	struct buf chunk = BUF_INIT;
	const char *line = "GET /api/v1/items?page=2 200 1834b 3.2ms req=ab12\n";  /* 50 bytes */
	assert_int_equal(strlen(line), 50);
	while (chunk.len + 50 <= 64 * 1024)
		buf_adds(&chunk, line);
	buf_add(&chunk, line, 36);          /* reads do not end on a line boundary */
	size_t lines_per = chunk.len / 50;
	const int rounds = 800;
	int64_t t0 = time_mono_ms();
	struct timespec c0, c1;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	for (int i = 0; i < rounds; i++)
		logs_sink_write(s, 1, chunk.p, chunk.len);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	int64_t ms = time_mono_ms() - t0;
	double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
	uint64_t n = logs_lines_total(l);
	assert_true(n >= (uint64_t)rounds * lines_per);
	print_message("logs: %llu lines of 50 bytes in %lld ms: %.0f lines/s wall, %.0f lines/s cpu\n",
		      (unsigned long long)n, (long long)ms, ms ? (double)n * 1000.0 / (double)ms : 0.0,
		      cpu > 0 ? (double)n / cpu : 0.0);
	/* the same with a live subscriber of another app: no per-line cost */
	struct coll c = {0};
	struct logs_sub *sub = logs_subscribe(l, "prod", "other", NULL, collect, &c);
	t0 = time_mono_ms();
	for (int i = 0; i < rounds / 3; i++)
		logs_sink_write(s, 1, chunk.p, chunk.len);
	ms = time_mono_ms() - t0;
	print_message("logs: with a subscriber of another app: %.0f lines/s wall\n",
		      ms ? (double)(logs_lines_total(l) - n) * 1000.0 / (double)ms : 0.0);
	assert_int_equal(c.n, 0);
	logs_unsubscribe(sub);
	/* and with one following this app (a dashboard tail), which counts what it is handed */
	uint64_t seen = 0;
	sub = logs_subscribe(l, "prod", "shop", NULL, count_line, &seen);
	n = logs_lines_total(l);
	t0 = time_mono_ms();
	for (int i = 0; i < rounds / 3; i++)
		logs_sink_write(s, 1, chunk.p, chunk.len);
	ms = time_mono_ms() - t0;
	assert_int_equal(seen, logs_lines_total(l) - n);
	print_message("logs: with a subscriber of this app: %.0f lines/s wall\n",
		      ms ? (double)seen * 1000.0 / (double)ms : 0.0);
	logs_unsubscribe(sub);
	buf_free(&chunk);
	logs_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_format_and_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crlf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlong_cut, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_chars, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_streams, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_flushed_on_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_keep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_after_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscriptions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsubscribe_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_n_since, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_rotated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_what_was_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_big_and_junk, setup, teardown),
		cmocka_unit_test(test_parse_hostile),
		cmocka_unit_test_setup_teardown(test_remove_app, setup, teardown),
		cmocka_unit_test_setup_teardown(test_throughput, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
