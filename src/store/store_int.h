/* store_int: what the files of src/store share and nobody else may see: the struct store
 * layout, its cached prepared statements, the watch/event queue, and the SQL helpers.
 * Only the .c files of src/store and the store unit test include this; everyone else uses store.h. */
#ifndef BERTH_STORE_INT_H
#define BERTH_STORE_INT_H
#include <sqlite3.h>
#include "store/store.h"

#define STORE_SCHEMA_VERSION 1
#define STORE_HISTORY_KEEP 10000   /* revisions of change history kept for store_changes */

/* Cached prepared statements, one per SQL text in store.c's stmt_sql[] (same order). */
enum store_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_GET,
	ST_LIST,
	ST_META_GET,
	ST_META_SET,
	ST_PUT,
	ST_DEL,
	ST_RANGE_KEYS,
	ST_RANGE_DEL,
	ST_CHANGE_ADD,
	ST_CHANGES,
	ST_COMPACT,
	ST_COUNT
};

/* A change waiting to be shown to watchers; owns its strings. */
struct store_event {
	char *key;
	char *value;     /* NULL for a delete */
	int64_t rev;
};

struct store_watcher {
	int id;
	int removed;     /* store_unwatch during a dispatch only marks; the slot is reaped later */
	char *prefix;
	size_t prefix_len;
	store_watch_fn fn;
	void *arg;
	int64_t since;   /* revision current at store_watch: only later events are delivered */
};

struct store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *st[ST_COUNT];
	int64_t rev;            /* latest committed revision */
	int64_t floor;          /* history below or at this revision is compacted away */
	int64_t keep;           /* revisions of history to keep (STORE_HISTORY_KEEP) */

	struct store_watcher *w;
	size_t nw, capw;
	int next_watch_id;

	struct store_event *q;  /* committed events not yet delivered, FIFO from qhead */
	size_t qhead, nq, capq;
	int dispatching;        /* inside store_dispatch: nested commits only enqueue */
};

/* Prepared statement i, reset and with bindings cleared, ready to bind. */
sqlite3_stmt *store_stmt(struct store *s, enum store_stmt i);
/* Bind prefix's range [prefix, upper) to parameters lo and lo+1 (see store.c for why). */
void store_bind_range(sqlite3_stmt *st, int lo, const char *prefix);
/* Step a bound statement to completion; 0, or -1 with the reason in sqlite3_errmsg. */
int store_exec(struct store *s, sqlite3_stmt *st);
/* Fill e with "store: <what>: <SQLite's message>" (busy/locked -> ERR_UNAVAILABLE). -1. */
int store_dberr(struct store *s, struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* meta table rows ("rev", "compact_rev"). 0 or -1. */
int store_meta_get(struct store *s, const char *name, int64_t *out, struct err *e);
int store_meta_set(struct store *s, const char *name, int64_t v, struct err *e);
/* Copy a text column into a fresh NUL-terminated string (NULL for SQL NULL). */
char *store_col_text(sqlite3_stmt *st, int col);

/* Queue events (taking ownership of the array's strings) and, unless a dispatch is already
 * running further up the stack, deliver everything queued to matching watchers. */
void store_events_publish(struct store *s, struct store_event *ev, size_t n);
void store_watch_free_all(struct store *s);

/* Test hook: keep only `keep` revisions of history (compaction runs on later commits). */
void store_set_history(struct store *s, int64_t keep);

#endif
