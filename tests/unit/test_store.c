/* test_store: the SQLite store as its callers see it: ordering and prefix ranges, revisions,
 * compare-and-swap, JSON validation, watchers (including re-entrant ones), change history and
 * its compaction, reopening, and atomicity when the writer is SIGKILLed mid-commit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "store/store.h"
#include "store/store_int.h"
#include "util/buf.h"
#include "util/fsutil.h"

struct fx {
	char dir[64];
	char *path;
	struct store *s;
};

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/berth-test-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->path = xasprintf("%s/state/berth.db", f->dir);
	struct err e = ERR_INIT;
	f->s = store_open(f->path, &e);
	if (!f->s)
		fail_msg("%s", e.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->s);
	struct err e = ERR_INIT;
	fs_rm_rf(f->dir, &e);
	free(f->path);
	free(f);
	return 0;
}

static void put_ok(struct store *s, const char *key, const char *json)
{
	struct err e = ERR_INIT;
	if (store_put(s, key, json, &e) < 0)
		fail_msg("put %s: %s", key, e.msg);
}

/* The value at key, or NULL if absent; caller frees. */
static char *get_value(struct store *s, const char *key)
{
	struct store_kv kv;
	struct err e = ERR_INIT;
	int r = store_get(s, key, &kv, &e);
	if (r < 0)
		fail_msg("get %s: %s", key, e.msg);
	if (r == 1)
		return NULL;
	char *v = kv.value;
	kv.value = NULL;
	store_kv_free(&kv);
	return v;
}

/* The keys under prefix joined by spaces, as a caller would print them. */
static char *list_keys(struct store *s, const char *prefix)
{
	struct store_list l;
	struct err e = ERR_INIT;
	if (store_list(s, prefix, &l, &e) < 0)
		fail_msg("list %s: %s", prefix, e.msg);
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < l.n; i++)
		buf_addf(&b, "%s%s", i ? " " : "", l.items[i].key);
	store_list_free(&l);
	return buf_detach(&b);
}

static void assert_keys(struct store *s, const char *prefix, const char *want)
{
	char *got = list_keys(s, prefix);
	assert_string_equal(got, want);
	free(got);
}

static void test_put_get_list(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	assert_int_equal(store_rev(s), 0);
	put_ok(s, "/envs/b", "{\"n\":2}");
	put_ok(s, "/envs/a", "{\"n\":1}");
	put_ok(s, "/envs/c", "[1,2,3]");
	assert_int_equal(store_rev(s), 3);

	struct store_kv kv;
	struct err e = ERR_INIT;
	assert_int_equal(store_get(s, "/envs/a", &kv, &e), 0);
	assert_string_equal(kv.key, "/envs/a");
	assert_string_equal(kv.value, "{\"n\":1}");
	assert_int_equal(kv.create_rev, 2);
	assert_int_equal(kv.mod_rev, 2);
	store_kv_free(&kv);
	assert_int_equal(store_get(s, "/envs/zz", &kv, &e), 1);

	/* An update keeps create_rev and moves mod_rev. */
	put_ok(s, "/envs/a", "{\"n\":10}");
	assert_int_equal(store_get(s, "/envs/a", &kv, &e), 0);
	assert_string_equal(kv.value, "{\"n\":10}");
	assert_int_equal(kv.create_rev, 2);
	assert_int_equal(kv.mod_rev, 4);
	store_kv_free(&kv);

	struct store_list l;
	assert_int_equal(store_list(s, "/envs/", &l, &e), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.items[0].key, "/envs/a");
	assert_string_equal(l.items[0].value, "{\"n\":10}");
	assert_int_equal(l.items[0].mod_rev, 4);
	assert_string_equal(l.items[1].key, "/envs/b");
	assert_string_equal(l.items[2].key, "/envs/c");
	assert_string_equal(l.items[2].value, "[1,2,3]");
	store_list_free(&l);
	assert_int_equal(store_list(s, "/nothing/", &l, &e), 0);
	assert_int_equal(l.n, 0);
	store_list_free(&l);
}

static void test_prefix_boundaries(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	const char *keys[] = {"/ab", "/a/x", "/a", "/b", "/a%", "/a_b", "/a/y/z", "/\xff", "/\xff\xff"};
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		put_ok(s, keys[i], "1");
	/* Bytewise order: '%' 0x25 < '/' 0x2f < '_' 0x5f < 'b' 0x62. */
	assert_keys(s, "/a", "/a /a% /a/x /a/y/z /a_b /ab");
	assert_keys(s, "/a/", "/a/x /a/y/z");
	assert_keys(s, "/ab", "/ab");
	assert_keys(s, "/a%", "/a%");   /* '%' is not a wildcard */
	assert_keys(s, "/a_", "/a_b");  /* nor is '_' */
	assert_keys(s, "/\xff", "/\xff /\xff\xff");   /* no upper bound exists above 0xff */
	assert_keys(s, "/\xff\xff", "/\xff\xff");
	assert_keys(s, "", "/a /a% /a/x /a/y/z /a_b /ab /b /\xff /\xff\xff");
	assert_keys(s, "/a/x/", "");

	struct store_txn *t = store_txn_new();
	store_txn_del_prefix(t, "/a/");
	struct err e = ERR_INIT;
	assert_int_equal(store_txn_commit(s, t, NULL, &e), 0);
	store_txn_free(t);
	assert_keys(s, "", "/a /a% /a_b /ab /b /\xff /\xff\xff");

	t = store_txn_new();
	store_txn_del_prefix(t, "/a_");
	store_txn_del_prefix(t, "/\xff");
	assert_int_equal(store_txn_commit(s, t, NULL, &e), 0);
	store_txn_free(t);
	assert_keys(s, "", "/a /a% /ab /b");
}

static void test_cas(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	put_ok(s, "/apps/web", "{\"v\":1}");
	struct store_kv kv;
	struct err e = ERR_INIT;
	assert_int_equal(store_get(s, "/apps/web", &kv, &e), 0);
	int64_t seen = kv.mod_rev;
	store_kv_free(&kv);

	struct store_txn *t = store_txn_new();
	store_txn_cmp_rev(t, "/apps/web", seen);
	store_txn_put(t, "/apps/web", "{\"v\":2}");
	int64_t rev = 0;
	assert_int_equal(store_txn_commit(s, t, &rev, &e), 0);
	store_txn_free(t);
	assert_int_equal(rev, seen + 1);

	/* A second writer holding the old revision loses, and nothing it asked for happens. */
	t = store_txn_new();
	store_txn_cmp_rev(t, "/apps/web", seen);
	store_txn_put(t, "/apps/web", "{\"v\":3}");
	store_txn_put(t, "/apps/other", "{}");
	assert_int_equal(store_txn_commit(s, t, &rev, &e), -1);
	store_txn_free(t);
	assert_int_equal(e.code, ERR_CONFLICT);
	assert_non_null(strstr(e.msg, "/apps/web"));
	assert_int_equal(store_rev(s), seen + 1);
	char *v = get_value(s, "/apps/web");
	assert_string_equal(v, "{\"v\":2}");
	free(v);
	assert_null(get_value(s, "/apps/other"));

	/* Expecting a revision of a key that does not exist is a conflict too. */
	t = store_txn_new();
	store_txn_cmp_rev(t, "/apps/ghost", 1);
	store_txn_put(t, "/apps/ghost", "{}");
	err_clear(&e);
	assert_int_equal(store_txn_commit(s, t, NULL, &e), -1);
	store_txn_free(t);
	assert_int_equal(e.code, ERR_CONFLICT);
	assert_non_null(strstr(e.msg, "/apps/ghost"));
}

static void test_must_not_exist(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct err e = ERR_INIT;
	for (int round = 0; round < 2; round++) {
		struct store_txn *t = store_txn_new();
		store_txn_cmp_rev(t, "/envs/prod", 0);
		store_txn_put(t, "/envs/prod", round ? "{\"second\":true}" : "{}");
		int r = store_txn_commit(s, t, NULL, &e);
		store_txn_free(t);
		if (round == 0) {
			assert_int_equal(r, 0);
		} else {
			assert_int_equal(r, -1);
			assert_int_equal(e.code, ERR_CONFLICT);
			assert_non_null(strstr(e.msg, "/envs/prod"));
		}
	}
	char *v = get_value(s, "/envs/prod");
	assert_string_equal(v, "{}");
	free(v);
	assert_int_equal(store_rev(s), 1);
}

static void test_delete(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct err e = ERR_INIT;
	put_ok(s, "/k/1", "1");
	put_ok(s, "/k/2", "2");
	put_ok(s, "/k/3/x", "3");
	put_ok(s, "/kk", "4");
	assert_int_equal(store_del(s, "/k/1", &e), 0);
	assert_null(get_value(s, "/k/1"));
	assert_int_equal(store_del(s, "/k/1", &e), 0);   /* deleting nothing is not an error */
	struct store_txn *t = store_txn_new();
	store_txn_del_prefix(t, "/k/");
	assert_int_equal(store_txn_commit(s, t, NULL, &e), 0);
	store_txn_free(t);
	assert_keys(s, "", "/kk");

	/* A re-created key starts a new life: create_rev is the revision that re-created it. */
	put_ok(s, "/k/2", "22");
	struct store_kv kv;
	assert_int_equal(store_get(s, "/k/2", &kv, &e), 0);
	assert_int_equal(kv.create_rev, store_rev(s));
	store_kv_free(&kv);
}

static void test_revision_per_txn(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct err e = ERR_INIT;
	put_ok(s, "/r/x", "0");
	put_ok(s, "/r/y", "0");
	int64_t before = store_rev(s);
	struct store_txn *t = store_txn_new();
	store_txn_put(t, "/r/a", "1");
	store_txn_put(t, "/r/b", "2");
	store_txn_put(t, "/r/a", "3");   /* a key written twice in one txn: the last write wins */
	store_txn_del(t, "/r/x");
	store_txn_del_prefix(t, "/r/y");
	int64_t rev = 0;
	assert_int_equal(store_txn_commit(s, t, &rev, &e), 0);
	store_txn_free(t);
	assert_int_equal(rev, before + 1);
	assert_int_equal(store_rev(s), before + 1);

	struct store_list l;
	assert_int_equal(store_list(s, "/r/", &l, &e), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.items[0].value, "3");
	for (size_t i = 0; i < l.n; i++) {
		assert_int_equal(l.items[i].mod_rev, rev);
		assert_int_equal(l.items[i].create_rev, rev);
	}
	store_list_free(&l);

	put_ok(s, "/r/c", "4");
	assert_int_equal(store_rev(s), before + 2);
}

static void expect_invalid(struct store *s, const char *key, const char *json, const char *in_msg)
{
	struct err e = ERR_INIT;
	int64_t before = store_rev(s);
	struct store_txn *t = store_txn_new();
	store_txn_put(t, "/good", "{\"ok\":true}");
	store_txn_put(t, key, json);
	assert_int_equal(store_txn_commit(s, t, NULL, &e), -1);
	store_txn_free(t);
	assert_int_equal(e.code, ERR_INVALID);
	if (!strstr(e.msg, in_msg))
		fail_msg("error \"%s\" does not mention \"%s\"", e.msg, in_msg);
	assert_int_equal(store_rev(s), before);
	assert_null(get_value(s, "/good"));
}

static void test_invalid_json(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	expect_invalid(s, "/bad", "{\"a\":", "/bad");
	expect_invalid(s, "/bad", "{} trailing", "/bad");
	expect_invalid(s, "/bad", "", "/bad");
	expect_invalid(s, "/bad", "{'single':1}", "invalid JSON");
	expect_invalid(s, "/bad", NULL, "/bad");
	expect_invalid(s, "relative/key", "{}", "relative/key");
	expect_invalid(s, "", "{}", "must start with '/'");
	expect_invalid(s, NULL, "{}", "no key");
	/* Any JSON value is fine, not only objects. */
	put_ok(s, "/scalar/n", "42");
	put_ok(s, "/scalar/s", "\"text\"");
	put_ok(s, "/scalar/null", "null");
	assert_int_equal(store_rev(s), 3);
}

/* A watcher that records what it saw as "key=value@rev" lines. */
struct seen {
	struct buf log;
	int calls;
};

static void record_cb(void *arg, const char *key, const char *value, int64_t rev)
{
	struct seen *w = arg;
	buf_addf(&w->log, "%s=%s@%lld\n", key, value ? value : "(deleted)", (long long)rev);
	w->calls++;
}

static void test_watch_prefix(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct err e = ERR_INIT;
	put_ok(s, "/apps/old", "0");   /* before the watch: never reported */
	struct seen apps = {BUF_INIT, 0}, all = {BUF_INIT, 0};
	int id1 = store_watch(s, "/apps/", record_cb, &apps);
	int id2 = store_watch(s, "", record_cb, &all);
	assert_true(id1 > 0 && id2 > 0 && id1 != id2);

	put_ok(s, "/apps/web", "1");       /* rev 2 */
	put_ok(s, "/appsx", "2");          /* rev 3: outside /apps/ */
	struct store_txn *t = store_txn_new();
	store_txn_put(t, "/apps/api", "3");
	store_txn_put(t, "/other", "4");
	store_txn_del(t, "/apps/missing");  /* not a change: not reported */
	assert_int_equal(store_txn_commit(s, t, NULL, &e), 0);   /* rev 4 */
	store_txn_free(t);
	assert_int_equal(store_del(s, "/apps/web", &e), 0);       /* rev 5 */
	t = store_txn_new();
	store_txn_del_prefix(t, "/apps/");
	assert_int_equal(store_txn_commit(s, t, NULL, &e), 0);   /* rev 6 */
	store_txn_free(t);

	assert_string_equal(buf_str(&apps.log),
			    "/apps/web=1@2\n"
			    "/apps/api=3@4\n"
			    "/apps/web=(deleted)@5\n"
			    "/apps/api=(deleted)@6\n"
			    "/apps/old=(deleted)@6\n");
	assert_string_equal(buf_str(&all.log),
			    "/apps/web=1@2\n"
			    "/appsx=2@3\n"
			    "/apps/api=3@4\n"
			    "/other=4@4\n"
			    "/apps/web=(deleted)@5\n"
			    "/apps/api=(deleted)@6\n"
			    "/apps/old=(deleted)@6\n");

	/* A failed transaction reports nothing; an unwatched watcher hears nothing more. */
	int calls = all.calls;
	t = store_txn_new();
	store_txn_cmp_rev(t, "/other", 99);
	store_txn_put(t, "/other", "5");
	assert_int_equal(store_txn_commit(s, t, NULL, &e), -1);
	store_txn_free(t);
	assert_int_equal(all.calls, calls);
	store_unwatch(s, id2);
	store_unwatch(s, 12345);   /* unknown id: ignored */
	put_ok(s, "/apps/new", "6");
	assert_int_equal(all.calls, calls);
	assert_int_equal(apps.calls, 6);
	buf_free(&apps.log);
	buf_free(&all.log);
}

/* Unwatches itself and a second watcher the first time it is called. */
struct unwatcher {
	struct store *s;
	int self, other;
	int calls;
};

static void unwatch_cb(void *arg, const char *key, const char *value, int64_t rev)
{
	struct unwatcher *u = arg;
	u->calls++;
	store_unwatch(u->s, u->self);
	store_unwatch(u->s, u->other);
}

static void count_cb(void *arg, const char *key, const char *value, int64_t rev)
{
	(*(int *)arg)++;
}

static void test_watch_unwatch_in_callback(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct err e = ERR_INIT;
	int before = 0, victim = 0, after = 0;
	struct unwatcher u = {s, 0, 0, 0};
	store_watch(s, "/", count_cb, &before);
	u.self = store_watch(s, "/", unwatch_cb, &u);
	u.other = store_watch(s, "/", count_cb, &victim);
	store_watch(s, "/", count_cb, &after);

	struct store_txn *t = store_txn_new();
	store_txn_put(t, "/x/1", "1");
	store_txn_put(t, "/x/2", "2");
	assert_int_equal(store_txn_commit(s, t, NULL, &e), 0);
	store_txn_free(t);
	put_ok(s, "/x/3", "3");
	/* The unwatcher ran once; the victim, after it in line, never ran; the rest saw all. */
	assert_int_equal(u.calls, 1);
	assert_int_equal(victim, 0);
	assert_int_equal(before, 3);
	assert_int_equal(after, 3);
}

/* On each /jobs/ key, writes /done/<same name> from inside the callback. */
struct chain {
	struct store *s;
	int failures;
};

static void chain_cb(void *arg, const char *key, const char *value, int64_t rev)
{
	struct chain *c = arg;
	if (!value)
		return;
	char *out = xasprintf("/done/%s", key + strlen("/jobs/"));
	struct err e = ERR_INIT;
	struct store_txn *t = store_txn_new();
	store_txn_cmp_rev(t, out, 0);
	store_txn_put(t, out, value);
	if (store_txn_commit(c->s, t, NULL, &e) < 0)
		c->failures++;
	store_txn_free(t);
	free(out);
}

static struct seen *late_seen;

/* Registers a new watcher from inside a callback: it must hear only later revisions. */
static void adder_cb(void *arg, const char *key, const char *value, int64_t rev)
{
	struct store *s = arg;
	if (!late_seen) {
		late_seen = xcalloc(1, sizeof *late_seen);
		store_watch(s, "", record_cb, late_seen);
	}
}

static void test_watch_commit_in_callback(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct err e = ERR_INIT;
	struct chain c = {s, 0};
	struct seen all = {BUF_INIT, 0};
	late_seen = NULL;
	store_watch(s, "/jobs/", adder_cb, s);
	store_watch(s, "/jobs/", chain_cb, &c);
	store_watch(s, "", record_cb, &all);

	struct store_txn *t = store_txn_new();
	store_txn_put(t, "/jobs/a", "\"A\"");
	store_txn_put(t, "/jobs/b", "\"B\"");
	int64_t rev = 0;
	assert_int_equal(store_txn_commit(s, t, &rev, &e), 0);
	store_txn_free(t);
	assert_int_equal(rev, 1);
	assert_int_equal(c.failures, 0);
	assert_int_equal(store_rev(s), 3);
	char *v = get_value(s, "/done/a");
	assert_string_equal(v, "\"A\"");
	free(v);
	v = get_value(s, "/done/b");
	assert_string_equal(v, "\"B\"");
	free(v);
	/* Every watcher sees revisions in order, nested commits after the one that caused them. */
	assert_string_equal(buf_str(&all.log),
			    "/jobs/a=\"A\"@1\n"
			    "/jobs/b=\"B\"@1\n"
			    "/done/a=\"A\"@2\n"
			    "/done/b=\"B\"@3\n");
	/* Added while rev 1 was being delivered: it heard revs 2 and 3 only. */
	assert_non_null(late_seen);
	assert_string_equal(buf_str(&late_seen->log), "/done/a=\"A\"@2\n/done/b=\"B\"@3\n");
	buf_free(&late_seen->log);
	free(late_seen);
	late_seen = NULL;
	buf_free(&all.log);
}

static void test_changes(void **state)
{
	struct store *s = ((struct fx *)*state)->s;
	struct err e = ERR_INIT;
	put_ok(s, "/c/a", "1");                  /* 1 */
	put_ok(s, "/c/b", "2");                  /* 2 */
	put_ok(s, "/elsewhere", "3");            /* 3 */
	put_ok(s, "/c/a", "4");                  /* 4 */
	assert_int_equal(store_del(s, "/c/b", &e), 0);   /* 5 */

	struct store_list l;
	assert_int_equal(store_changes(s, "/c/", 1, &l, &e), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.items[0].key, "/c/b");
	assert_string_equal(l.items[0].value, "2");
	assert_int_equal(l.items[0].mod_rev, 2);
	assert_int_equal(l.items[0].create_rev, 2);
	assert_string_equal(l.items[1].key, "/c/a");
	assert_string_equal(l.items[1].value, "4");
	assert_int_equal(l.items[1].mod_rev, 4);
	assert_int_equal(l.items[1].create_rev, 1);
	assert_string_equal(l.items[2].key, "/c/b");
	assert_null(l.items[2].value);
	assert_int_equal(l.items[2].mod_rev, 5);
	store_list_free(&l);

	assert_int_equal(store_changes(s, "", 0, &l, &e), 0);
	assert_int_equal(l.n, 5);
	store_list_free(&l);
	assert_int_equal(store_changes(s, "", 5, &l, &e), 0);
	assert_int_equal(l.n, 0);
	store_list_free(&l);
	assert_int_equal(store_changes(s, "", -1, &l, &e), -1);
	assert_int_equal(e.code, ERR_INVALID);

	/* Keep 3 revisions: after enough commits, asking from before the floor is a conflict
	 * and asking from the floor on still gives every later change. */
	store_set_history(s, 3);
	for (int i = 0; i < 5; i++)
		put_ok(s, "/c/n", "0");          /* 6..10 */
	assert_int_equal(store_rev(s), 10);
	err_clear(&e);
	assert_int_equal(store_changes(s, "/c/", 1, &l, &e), -1);
	assert_int_equal(e.code, ERR_CONFLICT);
	assert_int_equal(store_changes(s, "", 7, &l, &e), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.items[0].mod_rev, 8);
	store_list_free(&l);
}

static void test_reopen(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	put_ok(f->s, "/keep/a", "{\"x\":1}");
	put_ok(f->s, "/keep/b", "[true]");
	assert_int_equal(store_del(f->s, "/keep/a", &e), 0);
	int64_t rev = store_rev(f->s);
	store_close(f->s);

	f->s = store_open(f->path, &e);
	if (!f->s)
		fail_msg("%s", e.msg);
	assert_int_equal(store_rev(f->s), rev);
	assert_keys(f->s, "/keep/", "/keep/b");
	char *v = get_value(f->s, "/keep/b");
	assert_string_equal(v, "[true]");
	free(v);
	struct store_list l;
	assert_int_equal(store_changes(f->s, "/keep/", 0, &l, &e), 0);
	assert_int_equal(l.n, 3);
	store_list_free(&l);
	put_ok(f->s, "/keep/c", "1");
	assert_int_equal(store_rev(f->s), rev + 1);

	/* The state is private: the database and its WAL are readable by the owner only. */
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *wal = xasprintf("%s-wal", f->path);
	assert_int_equal(stat(wal, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(wal);
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	/* A SQLite file that is not ours. */
	char *foreign = xasprintf("%s/foreign.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(foreign, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_null(store_open(foreign, &e));
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "not a berth store"));

	/* A store written by a newer berth. */
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	err_clear(&e);
	assert_null(store_open(f->path, &e));
	assert_non_null(strstr(e.msg, "newer"));
	free(foreign);

	/* A path whose parent cannot be created. */
	err_clear(&e);
	assert_null(store_open("/proc/berth-no/such/dir/x.db", &e));
	assert_non_null(strstr(e.msg, "/proc/berth-no"));
}

/* Child: commit forever; each txn sets /crash/a and /crash/b to the same counter and then
 * reports the counter on the pipe, so the parent knows what was acknowledged. */
static void crash_child(const char *path, int wfd)
{
	struct err e = ERR_INIT;
	struct store *s = store_open(path, &e);
	if (!s)
		_exit(2);
	long n = store_rev(s);
	char json[64];
	for (;;) {
		n++;
		snprintf(json, sizeof json, "{\"n\":%ld}", n);
		struct store_txn *t = store_txn_new();
		store_txn_put(t, "/crash/a", json);
		store_txn_put(t, "/crash/b", json);
		store_txn_put(t, "/crash/pad", "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"");
		if (store_txn_commit(s, t, NULL, &e) < 0)
			_exit(3);
		store_txn_free(t);
		if (write(wfd, &n, sizeof n) != (ssize_t)sizeof n)
			_exit(4);
	}
}

static void test_crash_safety(void **state)
{
	struct fx *f = *state;
	store_close(f->s);
	f->s = NULL;
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	long acked = 0;
	for (int round = 0; round < 4; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			crash_child(f->path, p[1]);
		}
		close(p[1]);
		/* Wait for the child's first commit (so a slow start cannot make the round
		 * vacuous), then let it run for a random while and kill it wherever it is. */
		long n, last = acked;
		assert_int_equal(read(p[0], &n, sizeof n), sizeof n);
		last = n;
		usleep((useconds_t)(rand() % 120000));
		assert_int_equal(kill(pid, SIGKILL), 0);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		while (read(p[0], &n, sizeof n) == (ssize_t)sizeof n)
			last = n;
		close(p[0]);
		assert_true(last > acked);

		struct err e = ERR_INIT;
		struct store *s = store_open(f->path, &e);
		if (!s)
			fail_msg("reopen after kill: %s", e.msg);
		struct store_kv a, b;
		assert_int_equal(store_get(s, "/crash/a", &a, &e), 0);
		assert_int_equal(store_get(s, "/crash/b", &b, &e), 0);
		/* Both keys from the same transaction, and it is the latest one. */
		assert_string_equal(a.value, b.value);
		assert_int_equal(a.mod_rev, b.mod_rev);
		assert_int_equal(a.mod_rev, store_rev(s));
		long got = 0;
		assert_int_equal(sscanf(a.value, "{\"n\":%ld}", &got), 1);
		/* Every acknowledged commit survived; at most one more, unacknowledged, did too. */
		assert_true(got == last || got == last + 1);
		assert_int_equal(got, store_rev(s));
		struct store_list l;
		assert_int_equal(store_changes(s, "/crash/a", got - 1, &l, &e), 0);
		assert_int_equal(l.n, 1);
		store_list_free(&l);
		store_kv_free(&a);
		store_kv_free(&b);
		store_close(s);
		acked = got;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefix_boundaries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_must_not_exist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revision_per_txn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_unwatch_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_commit_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
