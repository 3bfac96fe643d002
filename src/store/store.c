/* store.c: the SQLite backend's connection, schema and reads (open/close, get, list, changes).
 * Writes live in txn.c, watchers in watch.c. The database holds three tables: kv (the live
 * tree), meta (current revision and the history compaction floor) and changes (one row per
 * changed key per revision, bounded, for store_changes). PRAGMA user_version records the
 * schema version so a later berth can migrate. Never runs SQL built from user data: every key
 * and value travels as a bound parameter of a statement prepared once in store_open. */
#include "store/store_int.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "util/buf.h"
#include "util/fsutil.h"

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_GET] = "SELECT value, create_rev, mod_rev FROM kv WHERE key = ?1",
	[ST_LIST] = "SELECT key, value, create_rev, mod_rev FROM kv"
		    " WHERE key >= ?1 AND key < ?2 ORDER BY key",
	[ST_META_GET] = "SELECT value FROM meta WHERE name = ?1",
	[ST_META_SET] = "INSERT INTO meta(name, value) VALUES (?1, ?2)"
			" ON CONFLICT(name) DO UPDATE SET value = excluded.value",
	[ST_PUT] = "INSERT INTO kv(key, value, create_rev, mod_rev) VALUES (?1, ?2, ?3, ?3)"
		   " ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev"
		   " RETURNING create_rev",
	[ST_DEL] = "DELETE FROM kv WHERE key = ?1",
	[ST_RANGE_KEYS] = "SELECT key FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key",
	[ST_RANGE_DEL] = "DELETE FROM kv WHERE key >= ?1 AND key < ?2",
	[ST_CHANGE_ADD] = "INSERT INTO changes(rev, seq, key, value, create_rev)"
			  " VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_CHANGES] = "SELECT rev, key, value, create_rev FROM changes"
		       " WHERE rev > ?1 AND key >= ?2 AND key < ?3 ORDER BY rev, seq",
	[ST_COMPACT] = "DELETE FROM changes WHERE rev <= ?1",
};

/* Version 1. WITHOUT ROWID keeps kv clustered by key, so prefix scans read contiguous pages,
 * and changes clustered by (rev, seq), so "since rev N" is one range scan in commit order. */
static const char schema_v1[] =
	"CREATE TABLE kv ("
	" key TEXT NOT NULL PRIMARY KEY,"
	" value TEXT NOT NULL,"
	" create_rev INTEGER NOT NULL,"
	" mod_rev INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE meta ("
	" name TEXT NOT NULL PRIMARY KEY,"
	" value INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE changes ("
	" rev INTEGER NOT NULL,"
	" seq INTEGER NOT NULL,"
	" key TEXT NOT NULL,"
	" value TEXT,"
	" create_rev INTEGER NOT NULL,"
	" PRIMARY KEY (rev, seq)"
	") WITHOUT ROWID;"
	"INSERT INTO meta(name, value) VALUES ('rev', 0), ('compact_rev', 0);"
	"PRAGMA user_version = 1;";

int store_dberr(struct store *s, struct err *e, const char *fmt, ...)
{
	struct buf what = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&what, fmt, ap);
	va_end(ap);
	int rc = sqlite3_errcode(s->db);
	int code = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? ERR_UNAVAILABLE : ERR_INTERNAL;
	err_set(e, code, "store: %s: %s", buf_str(&what), sqlite3_errmsg(s->db));
	buf_free(&what);
	return -1;
}

sqlite3_stmt *store_stmt(struct store *s, enum store_stmt i)
{
	sqlite3_stmt *st = s->st[i];
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

/* Keys under prefix are exactly those in [prefix, upper) where upper is prefix with trailing
 * 0xff bytes dropped and the last byte incremented; SQLite compares TEXT bytewise (BINARY),
 * so this is an index range scan, and unlike LIKE it treats '%' and '_' as plain bytes.
 * When no such upper exists (empty prefix, or all 0xff) the bound is an empty BLOB, because
 * SQLite orders every TEXT value below every BLOB value. */
void store_bind_range(sqlite3_stmt *st, int lo, const char *prefix)
{
	size_t n = strlen(prefix);
	sqlite3_bind_text(st, lo, prefix, (int)n, SQLITE_TRANSIENT);
	while (n > 0 && (unsigned char)prefix[n - 1] == 0xff)
		n--;
	if (n == 0) {
		sqlite3_bind_zeroblob(st, lo + 1, 0);
		return;
	}
	char *upper = xstrndup(prefix, n);
	upper[n - 1] = (char)((unsigned char)upper[n - 1] + 1);
	sqlite3_bind_text(st, lo + 1, upper, (int)n, SQLITE_TRANSIENT);
	free(upper);
}

int store_exec(struct store *s, sqlite3_stmt *st)
{
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	return rc == SQLITE_DONE ? 0 : -1;
}

char *store_col_text(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	const unsigned char *p = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	return p ? xstrndup((const char *)p, n) : xstrdup("");
}

int store_meta_get(struct store *s, const char *name, int64_t *out, struct err *e)
{
	sqlite3_stmt *st = store_stmt(s, ST_META_GET);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		err_set(e, ERR_INTERNAL, "store: %s: meta row '%s' is missing", s->path, name);
	else
		store_dberr(s, e, "read %s", name);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

int store_meta_set(struct store *s, const char *name, int64_t v, struct err *e)
{
	sqlite3_stmt *st = store_stmt(s, ST_META_SET);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	int r = store_exec(s, st);
	if (r < 0)
		store_dberr(s, e, "write %s", name);
	sqlite3_reset(st);
	return r;
}

/* One-off SQL during open (pragmas, schema); open-time only, never with user data. */
static int exec_sql(struct store *s, const char *sql, struct err *e)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(e, ERR_INTERNAL, "store: open %s: %s", s->path,
			msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* A single-value PRAGMA or query, as an integer or text. */
static int query_one(struct store *s, const char *sql, struct buf *out, struct err *e)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return store_dberr(s, e, "open %s: %s", s->path, sql);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *p = sqlite3_column_text(st, 0);
		buf_adds(out, p ? (const char *)p : "");
	} else if (rc != SQLITE_DONE) {
		store_dberr(s, e, "open %s: %s", s->path, sql);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Create the schema in an empty database, or check the version of an existing one. Runs in
 * one write transaction so two processes opening a fresh file cannot both create it. */
static int schema_init(struct store *s, struct err *e)
{
	if (exec_sql(s, "BEGIN IMMEDIATE", e) < 0)
		return -1;
	struct buf v = BUF_INIT, tables = BUF_INIT;
	int r = -1;
	if (query_one(s, "PRAGMA user_version", &v, e) < 0 ||
	    query_one(s, "SELECT count(*) FROM sqlite_master", &tables, e) < 0)
		goto out;
	long ver = strtol(buf_str(&v), NULL, 10);
	if (ver == 0 && strcmp(buf_str(&tables), "0") != 0) {
		err_set(e, ERR_INVALID, "store: open %s: not a berth store (has tables but no "
			"schema version)", s->path);
		goto out;
	}
	if (ver > STORE_SCHEMA_VERSION) {
		err_set(e, ERR_INVALID, "store: open %s: schema version %ld is newer than this "
			"berth understands (%d); upgrade berth", s->path, ver, STORE_SCHEMA_VERSION);
		goto out;
	}
	if (ver == 0 && exec_sql(s, schema_v1, e) < 0)
		goto out;
	r = exec_sql(s, "COMMIT", e);
out:
	if (r < 0 && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	buf_free(&v);
	buf_free(&tables);
	return r;
}

/* Create the file ourselves so it is 0600 from the first byte: it holds the whole desired
 * state. SQLite gives the -wal and -shm files the same mode as the database file. */
static int create_file(const char *path, struct err *e)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (fs_mkdir_p(dir, 0700, e) < 0) {
			free(dir);
			return err_prefix(e, "store: open %s", path);
		}
	}
	free(dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_errno(e, errno, "store: open %s", path);
	close(fd);
	return 0;
}

struct store *store_open(const char *path, struct err *e)
{
	if (!path || !*path) {
		err_set(e, ERR_INVALID, "store: open: empty path");
		return NULL;
	}
	if (create_file(path, e) < 0)
		return NULL;
	struct store *s = xcalloc(1, sizeof *s);
	s->path = xstrdup(path);
	s->keep = STORE_HISTORY_KEEP;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
		if (s->db)
			store_dberr(s, e, "open %s", path);
		else
			err_set(e, ERR_INTERNAL, "store: open %s: out of memory", path);
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	struct buf mode = BUF_INIT;
	int r = query_one(s, "PRAGMA journal_mode = WAL", &mode, e);
	if (r == 0 && strcmp(buf_str(&mode), "wal") != 0)
		r = err_set(e, ERR_INTERNAL, "store: open %s: cannot use WAL journal (got '%s')",
			    path, buf_str(&mode));
	buf_free(&mode);
	if (r < 0 || exec_sql(s, "PRAGMA synchronous = FULL", e) < 0 || schema_init(s, e) < 0)
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
				       NULL) != SQLITE_OK) {
			store_dberr(s, e, "open %s: prepare", path);
			goto fail;
		}
	}
	if (store_meta_get(s, "rev", &s->rev, e) < 0 ||
	    store_meta_get(s, "compact_rev", &s->floor, e) < 0)
		goto fail;
	return s;
fail:
	store_close(s);
	return NULL;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	store_watch_free_all(s);
	free(s->path);
	free(s);
}

int64_t store_rev(struct store *s)
{
	return s->rev;
}

void store_set_history(struct store *s, int64_t keep)
{
	s->keep = keep > 0 ? keep : 1;
}

int store_get(struct store *s, const char *key, struct store_kv *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	if (!key)
		return err_set(e, ERR_INVALID, "store: get: no key");
	sqlite3_stmt *st = store_stmt(s, ST_GET);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int r = 1;
	if (rc == SQLITE_ROW) {
		out->key = xstrdup(key);
		out->value = store_col_text(st, 0);
		out->create_rev = sqlite3_column_int64(st, 1);
		out->mod_rev = sqlite3_column_int64(st, 2);
		r = 0;
	} else if (rc != SQLITE_DONE) {
		r = store_dberr(s, e, "get %s", key);
	}
	sqlite3_reset(st);
	return r;
}

static struct store_kv *list_push(struct store_list *l, size_t *cap)
{
	if (l->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		l->items = xrealloc(l->items, *cap * sizeof *l->items);
	}
	struct store_kv *kv = &l->items[l->n++];
	memset(kv, 0, sizeof *kv);
	return kv;
}

int store_list(struct store *s, const char *prefix, struct store_list *out, struct err *e)
{
	out->items = NULL;
	out->n = 0;
	if (!prefix)
		prefix = "";
	sqlite3_stmt *st = store_stmt(s, ST_LIST);
	store_bind_range(st, 1, prefix);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_kv *kv = list_push(out, &cap);
		kv->key = store_col_text(st, 0);
		kv->value = store_col_text(st, 1);
		kv->create_rev = sqlite3_column_int64(st, 2);
		kv->mod_rev = sqlite3_column_int64(st, 3);
	}
	int r = 0;
	if (rc != SQLITE_DONE) {
		r = store_dberr(s, e, "list %s", prefix);
		store_list_free(out);
	}
	sqlite3_reset(st);
	return r;
}

static int compacted(struct store *s, const char *prefix, int64_t since_rev, struct err *e)
{
	return err_set(e, ERR_CONFLICT, "store: changes under %s since rev %lld: history up to "
		       "rev %lld was compacted; list again instead", prefix, (long long)since_rev,
		       (long long)s->floor);
}

int store_changes(struct store *s, const char *prefix, int64_t since_rev, struct store_list *out,
		  struct err *e)
{
	out->items = NULL;
	out->n = 0;
	if (!prefix)
		prefix = "";
	if (since_rev < 0)
		return err_set(e, ERR_INVALID, "store: changes under %s: negative revision %lld",
			       prefix, (long long)since_rev);
	if (since_rev < s->floor)
		return compacted(s, prefix, since_rev, e);
	sqlite3_stmt *st = store_stmt(s, ST_CHANGES);
	sqlite3_bind_int64(st, 1, since_rev);
	store_bind_range(st, 2, prefix);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_kv *kv = list_push(out, &cap);
		kv->mod_rev = sqlite3_column_int64(st, 0);
		kv->key = store_col_text(st, 1);
		kv->value = store_col_text(st, 2);
		kv->create_rev = sqlite3_column_int64(st, 3);
	}
	int r = 0;
	if (rc != SQLITE_DONE)
		r = store_dberr(s, e, "changes under %s", prefix);
	sqlite3_reset(st);
	/* Another process sharing the file may have compacted since we last looked. Reading the
	 * floor after the rows is enough: if rows we wanted were gone, the floor is past since. */
	int64_t floor = 0;
	if (r == 0 && store_meta_get(s, "compact_rev", &floor, e) < 0)
		r = -1;
	if (r == 0 && floor > s->floor)
		s->floor = floor;
	if (r == 0 && since_rev < s->floor)
		r = compacted(s, prefix, since_rev, e);
	if (r < 0)
		store_list_free(out);
	return r;
}

void store_kv_free(struct store_kv *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	kv->key = kv->value = NULL;
}

void store_list_free(struct store_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		store_kv_free(&l->items[i]);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}
