/* txn.c: building and committing store transactions.
 * A transaction is a list of compares and a list of ops, copied into the txn (the caller's
 * strings are not kept). Commit validates everything first (keys, JSON values), then runs
 * compares and ops inside one SQLite write transaction (BEGIN IMMEDIATE ... COMMIT) that also
 * bumps the revision and appends to the change history, so a crash at any point leaves all of
 * it or none. Watchers hear about the changes only after COMMIT returned. */
#include "store/store_int.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "util/buf.h"

enum op_kind { OP_PUT, OP_DEL, OP_DEL_PREFIX };

struct txn_op {
	enum op_kind kind;
	char *key;       /* key, or prefix for OP_DEL_PREFIX; NULL if the caller passed NULL */
	char *value;     /* OP_PUT only */
};

struct txn_cmp {
	char *key;
	int64_t rev;
};

struct store_txn {
	struct txn_cmp *cmp;
	size_t ncmp, capcmp;
	struct txn_op *op;
	size_t nop, capop;
};

/* Events gathered while applying ops, handed to watch.c after COMMIT. */
struct evlist {
	struct store_event *ev;
	size_t n, cap;
};

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

struct store_txn *store_txn_new(void)
{
	return xcalloc(1, sizeof(struct store_txn));
}

void store_txn_free(struct store_txn *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->ncmp; i++)
		free(t->cmp[i].key);
	for (size_t i = 0; i < t->nop; i++) {
		free(t->op[i].key);
		free(t->op[i].value);
	}
	free(t->cmp);
	free(t->op);
	free(t);
}

void store_txn_cmp_rev(struct store_txn *t, const char *key, int64_t rev)
{
	if (t->ncmp == t->capcmp) {
		t->capcmp = t->capcmp ? t->capcmp * 2 : 4;
		t->cmp = xrealloc(t->cmp, t->capcmp * sizeof *t->cmp);
	}
	t->cmp[t->ncmp++] = (struct txn_cmp){dup_or_null(key), rev};
}

static void add_op(struct store_txn *t, enum op_kind kind, const char *key, const char *value)
{
	if (t->nop == t->capop) {
		t->capop = t->capop ? t->capop * 2 : 4;
		t->op = xrealloc(t->op, t->capop * sizeof *t->op);
	}
	t->op[t->nop++] = (struct txn_op){kind, dup_or_null(key), dup_or_null(value)};
}

void store_txn_put(struct store_txn *t, const char *key, const char *json)
{
	add_op(t, OP_PUT, key, json);
}

void store_txn_del(struct store_txn *t, const char *key)
{
	add_op(t, OP_DEL, key, NULL);
}

void store_txn_del_prefix(struct store_txn *t, const char *prefix)
{
	add_op(t, OP_DEL_PREFIX, prefix, NULL);
}

static const char *op_name(enum op_kind k)
{
	return k == OP_PUT ? "put" : k == OP_DEL ? "delete" : "delete prefix";
}

static int check_key(const char *what, const char *key, struct err *e)
{
	if (!key)
		return err_set(e, ERR_INVALID, "store: %s: no key", what);
	if (key[0] != '/')
		return err_set(e, ERR_INVALID, "store: %s \"%s\": key must start with '/'", what, key);
	return 0;
}

/* Everything that can be rejected without touching the database, so a bad txn costs no
 * write lock and leaves no trace. */
static int txn_validate(const struct store_txn *t, struct err *e)
{
	for (size_t i = 0; i < t->ncmp; i++) {
		if (check_key("compare", t->cmp[i].key, e) < 0)
			return -1;
		if (t->cmp[i].rev < 0)
			return err_set(e, ERR_INVALID, "store: compare %s: negative revision %lld",
				       t->cmp[i].key, (long long)t->cmp[i].rev);
	}
	for (size_t i = 0; i < t->nop; i++) {
		const struct txn_op *o = &t->op[i];
		if (o->kind == OP_DEL_PREFIX) {
			if (!o->key)
				return err_set(e, ERR_INVALID, "store: delete prefix: no prefix");
			continue;
		}
		if (check_key(op_name(o->kind), o->key, e) < 0)
			return -1;
		if (o->kind != OP_PUT)
			continue;
		if (!o->value)
			return err_set(e, ERR_INVALID, "store: put %s: no value", o->key);
		json_error_t je;
		json_t *j = json_loads(o->value, JSON_DECODE_ANY, &je);
		if (!j)
			return err_set(e, ERR_INVALID, "store: put %s: invalid JSON at line %d, "
				       "column %d: %s", o->key, je.line, je.column, je.text);
		json_decref(j);
	}
	return 0;
}

static int check_cmp(struct store *s, const struct txn_cmp *c, struct err *e)
{
	sqlite3_stmt *st = store_stmt(s, ST_GET);
	sqlite3_bind_text(st, 1, c->key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int64_t mod = rc == SQLITE_ROW ? sqlite3_column_int64(st, 2) : 0;
	int r = 0;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = store_dberr(s, e, "compare %s", c->key);
	else if (c->rev == 0 && rc == SQLITE_ROW)
		r = err_set(e, ERR_CONFLICT, "store: compare %s: key exists (mod_rev %lld) but "
			    "must not", c->key, (long long)mod);
	else if (c->rev != 0 && rc == SQLITE_DONE)
		r = err_set(e, ERR_CONFLICT, "store: compare %s: key does not exist, expected "
			    "mod_rev %lld", c->key, (long long)c->rev);
	else if (c->rev != 0 && mod != c->rev)
		r = err_set(e, ERR_CONFLICT, "store: compare %s: mod_rev is %lld, expected %lld",
			    c->key, (long long)mod, (long long)c->rev);
	sqlite3_reset(st);
	return r;
}

/* Record one changed key: a row in the history and an event for the watchers. */
static int record(struct store *s, struct evlist *ev, int64_t rev, const char *key,
		  const char *value, int64_t create_rev, struct err *e)
{
	sqlite3_stmt *st = store_stmt(s, ST_CHANGE_ADD);
	sqlite3_bind_int64(st, 1, rev);
	sqlite3_bind_int64(st, 2, (int64_t)ev->n);
	sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
	if (value)
		sqlite3_bind_text(st, 4, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, create_rev);
	int r = store_exec(s, st);
	if (r < 0)
		store_dberr(s, e, "record change of %s", key);
	sqlite3_reset(st);
	if (r < 0)
		return -1;
	if (ev->n == ev->cap) {
		ev->cap = ev->cap ? ev->cap * 2 : 8;
		ev->ev = xrealloc(ev->ev, ev->cap * sizeof *ev->ev);
	}
	ev->ev[ev->n++] = (struct store_event){xstrdup(key), dup_or_null(value), rev};
	return 0;
}

static int apply_put(struct store *s, const struct txn_op *o, int64_t rev, struct evlist *ev,
		     struct err *e)
{
	sqlite3_stmt *st = store_stmt(s, ST_PUT);
	sqlite3_bind_text(st, 1, o->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, o->value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, rev);
	int64_t create_rev = rev;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		create_rev = sqlite3_column_int64(st, 0);
	if (rc != SQLITE_DONE)
		store_dberr(s, e, "put %s", o->key);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return -1;
	return record(s, ev, rev, o->key, o->value, create_rev, e);
}

static int apply_del(struct store *s, const struct txn_op *o, int64_t rev, struct evlist *ev,
		     struct err *e)
{
	sqlite3_stmt *st = store_stmt(s, ST_DEL);
	sqlite3_bind_text(st, 1, o->key, -1, SQLITE_STATIC);
	int r = store_exec(s, st);
	int gone = r == 0 && sqlite3_changes(s->db) > 0;
	if (r < 0)
		store_dberr(s, e, "delete %s", o->key);
	sqlite3_reset(st);
	if (r < 0)
		return -1;
	return gone ? record(s, ev, rev, o->key, NULL, 0, e) : 0;
}

/* Collect the keys first (in key order, which is the order watchers see them), then delete
 * the range in one statement. */
static int apply_del_prefix(struct store *s, const struct txn_op *o, int64_t rev,
			    struct evlist *ev, struct err *e)
{
	char **keys = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st = store_stmt(s, ST_RANGE_KEYS);
	store_bind_range(st, 1, o->key);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			keys = xrealloc(keys, cap * sizeof *keys);
		}
		keys[n++] = store_col_text(st, 0);
	}
	int r = 0;
	if (rc != SQLITE_DONE)
		r = store_dberr(s, e, "delete prefix %s", o->key);
	sqlite3_reset(st);
	if (r == 0 && n > 0) {
		st = store_stmt(s, ST_RANGE_DEL);
		store_bind_range(st, 1, o->key);
		r = store_exec(s, st);
		if (r < 0)
			store_dberr(s, e, "delete prefix %s", o->key);
		sqlite3_reset(st);
	}
	for (size_t i = 0; r == 0 && i < n; i++)
		r = record(s, ev, rev, keys[i], NULL, 0, e);
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	return r;
}

/* Drop history older than the last s->keep revisions, in batches of keep/10 so most
 * commits do not pay for a DELETE. Returns the new floor in *floor. */
static int compact(struct store *s, int64_t rev, int64_t *floor, struct err *e)
{
	if (rev - *floor <= s->keep + s->keep / 10)
		return 0;
	int64_t nf = rev - s->keep;
	sqlite3_stmt *st = store_stmt(s, ST_COMPACT);
	sqlite3_bind_int64(st, 1, nf);
	int r = store_exec(s, st);
	if (r < 0)
		store_dberr(s, e, "compact history to rev %lld", (long long)nf);
	sqlite3_reset(st);
	if (r < 0 || store_meta_set(s, "compact_rev", nf, e) < 0)
		return -1;
	*floor = nf;
	return 0;
}

/* BEGIN / COMMIT / ROLLBACK; e may be NULL (rollback after an error already reported). */
static int run_stmt(struct store *s, enum store_stmt i, struct err *e, const char *what,
		    int64_t rev)
{
	sqlite3_stmt *st = store_stmt(s, i);
	int r = store_exec(s, st);
	if (r < 0 && e)
		store_dberr(s, e, "%s rev %lld", what, (long long)rev);
	sqlite3_reset(st);
	return r;
}

int store_txn_commit(struct store *s, struct store_txn *t, int64_t *rev_out, struct err *e)
{
	if (txn_validate(t, e) < 0)
		return -1;
	if (run_stmt(s, ST_BEGIN, e, "begin transaction after", s->rev) < 0)
		return -1;
	struct evlist ev = {NULL, 0, 0};
	int64_t cur, floor;
	/* Read the revision inside the write lock, not from the cache, so another process
	 * sharing the file can never make two transactions claim the same revision. */
	if (store_meta_get(s, "rev", &cur, e) < 0 || store_meta_get(s, "compact_rev", &floor, e) < 0)
		goto fail;
	for (size_t i = 0; i < t->ncmp; i++)
		if (check_cmp(s, &t->cmp[i], e) < 0)
			goto fail;
	int64_t rev = cur + 1;
	for (size_t i = 0; i < t->nop; i++) {
		const struct txn_op *o = &t->op[i];
		int r = o->kind == OP_PUT   ? apply_put(s, o, rev, &ev, e)
			: o->kind == OP_DEL ? apply_del(s, o, rev, &ev, e)
					    : apply_del_prefix(s, o, rev, &ev, e);
		if (r < 0)
			goto fail;
	}
	if (store_meta_set(s, "rev", rev, e) < 0 || compact(s, rev, &floor, e) < 0)
		goto fail;
	if (run_stmt(s, ST_COMMIT, e, "commit", rev) < 0)
		goto fail;
	s->rev = rev;
	s->floor = floor;
	if (rev_out)
		*rev_out = rev;
	store_events_publish(s, ev.ev, ev.n);
	free(ev.ev);
	return 0;
fail:
	if (!sqlite3_get_autocommit(s->db))
		run_stmt(s, ST_ROLLBACK, NULL, "rollback", 0);
	for (size_t i = 0; i < ev.n; i++) {
		free(ev.ev[i].key);
		free(ev.ev[i].value);
	}
	free(ev.ev);
	return -1;
}

int store_put(struct store *s, const char *key, const char *json, struct err *e)
{
	struct store_txn *t = store_txn_new();
	store_txn_put(t, key, json);
	int r = store_txn_commit(s, t, NULL, e);
	store_txn_free(t);
	return r;
}

int store_del(struct store *s, const char *key, struct err *e)
{
	struct store_txn *t = store_txn_new();
	store_txn_del(t, key);
	int r = store_txn_commit(s, t, NULL, e);
	store_txn_free(t);
	return r;
}
