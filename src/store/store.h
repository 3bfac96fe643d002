/* store: berth's versioned key-value tree of desired state.
 * Keys are '/'-separated paths ("/envs/production/apps/web/releases/0000000003"), values are
 * JSON text. Every committed transaction bumps one global revision; each key remembers the
 * revision that created it and the one that last changed it (as etcd does), so callers can
 * compare-and-swap. This interface is what the SQLite backend implements now and an etcd
 * backend will implement for cluster mode. Nothing outside src/store writes SQL.
 * Not thread-safe: use one struct store from one thread (the daemon's loop). */
#ifndef BERTH_STORE_H
#define BERTH_STORE_H
#include <stdint.h>
#include <stddef.h>
#include "util/err.h"

struct store;

struct store_kv {
	char *key;
	char *value;          /* JSON text; NULL for a delete event in store_changes */
	int64_t create_rev;
	int64_t mod_rev;
};

struct store_list {
	struct store_kv *items;
	size_t n;
};

/* Open (creating if needed) the store at path: SQLite, WAL mode, synchronous=FULL so a
 * committed transaction survives kill -9 and power loss. NULL + e on failure. */
struct store *store_open(const char *path, struct err *e);
void store_close(struct store *s);              /* accepts NULL */

int64_t store_rev(struct store *s);             /* current (latest committed) revision */

/* 0 and *out filled (free with store_kv_free), 1 if the key does not exist, -1 on error. */
int store_get(struct store *s, const char *key, struct store_kv *out, struct err *e);
/* All keys starting with prefix, ordered by key. 0 or -1. Free with store_list_free. */
int store_list(struct store *s, const char *prefix, struct store_list *out, struct err *e);
void store_kv_free(struct store_kv *kv);
void store_list_free(struct store_list *l);

/* Transactions: all compares must hold, then all ops apply atomically with one new revision.
 * A failed compare returns -1 with e->code == ERR_CONFLICT and changes nothing. */
struct store_txn;
struct store_txn *store_txn_new(void);
void store_txn_free(struct store_txn *t);       /* accepts NULL */
/* The key's mod_rev must equal rev; rev == 0 means "the key must not exist". */
void store_txn_cmp_rev(struct store_txn *t, const char *key, int64_t rev);
void store_txn_put(struct store_txn *t, const char *key, const char *json);
void store_txn_del(struct store_txn *t, const char *key);
void store_txn_del_prefix(struct store_txn *t, const char *prefix);
/* Commit; *rev_out (may be NULL) gets the new revision. Watchers are called after commit. */
int store_txn_commit(struct store *s, struct store_txn *t, int64_t *rev_out, struct err *e);

/* One-op conveniences built on transactions. */
int store_put(struct store *s, const char *key, const char *json, struct err *e);
int store_del(struct store *s, const char *key, struct err *e);

/* Changes with revision > since_rev under prefix, in revision order (a delete has value NULL).
 * The store keeps a bounded history; asking for a compacted revision gives ERR_CONFLICT. */
int store_changes(struct store *s, const char *prefix, int64_t since_rev, struct store_list *out,
		  struct err *e);

/* Watch: fn is called synchronously, after each commit, once per changed key under prefix
 * (value NULL for a delete). Returns a watch id for store_unwatch. */
typedef void (*store_watch_fn)(void *arg, const char *key, const char *value, int64_t rev);
int store_watch(struct store *s, const char *prefix, store_watch_fn fn, void *arg);
void store_unwatch(struct store *s, int id);

#endif
