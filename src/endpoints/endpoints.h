/* endpoints: the table of healthy instances (and HTTP routes) that the router and DNS read.
 *
 * The supervisor (through the reconciler) tells the table which instances are serving; the
 * API tells it the routes. The table lives on the main loop and publishes an immutable,
 * reference-counted snapshot after every change. Readers (router loops on their own threads,
 * the DNS server) hold a snapshot while they use it and never touch the store or take a lock
 * on the request path: a reader adopts a new snapshot when it is told (its callback runs on
 * the main loop; thread readers hand it over with uv_async) and reports the version it has
 * adopted, so the table knows when nobody can pick a removed endpoint any more.
 *
 * Draining: an endpoint removed from the table stays alive (refcounted) while requests are in
 * flight on it; `inflight` is incremented by a router when it sends a request to it and
 * decremented when the answer is done. endpoints_drained() says when it is safe to stop it.
 *
 * Maintenance mode: the table also knows which apps are in maintenance (routes_sync follows
 * the app documents' "maintenance" flag) and marks every route to such an app, stored or
 * default, in the snapshots; the router then answers the route with its maintenance page
 * and leaves the app's instances alone. */
#ifndef BERTH_ENDPOINTS_H
#define BERTH_ENDPOINTS_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct endpoint {
	char env[64], app[64], process[64];
	char instance[80];       /* "web.1" */
	int slot, release;
	char host[64];           /* "127.0.0.1" */
	int port;
	uint32_t ipv4;           /* host byte order, for DNS A answers */
	atomic_int inflight;     /* requests in flight through the router */
	atomic_uint_fast64_t requests; /* requests sent to it (for least-connections / stats) */
	atomic_int refs;         /* snapshot references + owner's */
	uint64_t removed_version; /* first snapshot version without it (0 while in the table) */
};

/* All endpoints of one (env, app, process), sorted by slot then release. */
struct ep_group {
	const char *env, *app, *process;
	struct endpoint **eps;
	size_t n;
	atomic_uint rr;          /* round-robin cursor, shared by readers */
};

enum balance { BALANCE_ROUND_ROBIN = 0, BALANCE_LEAST_CONN = 1 };

struct route {
	char *host;              /* lower case, no port; "" never */
	char *path;              /* prefix starting with '/', no trailing '/' except "/" itself */
	size_t path_len;
	char *env, *app, *process;
	bool strip_prefix;
	bool is_default;         /* APP.ENV.localhost / APP.localhost, not stored */
	enum balance balance;
	char *error_dir;         /* NULL, or a directory with 502.html/503.html/504.html/maintenance.html */
	bool maintenance;        /* the app is in maintenance mode: answer 503, send nothing on.
	                          * Set by the table when it publishes (a caller's value is ignored) */
	const struct ep_group *group;   /* resolved target (may be NULL: nothing healthy) */
};

struct ep_snapshot {
	atomic_int refs;
	uint64_t version;
	struct route *routes;    /* sorted: host, then longer paths first */
	size_t nroutes;
	struct ep_group *groups; /* sorted by env, app, process */
	size_t ngroups;
};

/* Take/drop a reference (any thread). The last unref frees the snapshot and drops its
 * references on the endpoints. */
void ep_snapshot_ref(struct ep_snapshot *s);
void ep_snapshot_unref(struct ep_snapshot *s);

/* Longest-prefix route for host (case-insensitive, ":port" ignored) and path (matched on
 * segment boundaries: "/careers" matches "/careers", "/careers/x", not "/careersx"). */
const struct route *ep_snapshot_route(const struct ep_snapshot *s, const char *host, size_t host_len,
				      const char *path, size_t path_len);
/* Group of (env, app, process); process NULL = the first group of the app (any process). */
const struct ep_group *ep_snapshot_group(const struct ep_snapshot *s, const char *env, const char *app,
					 const char *process);
/* Iterate groups of an app (all processes): returns index of first match or -1. */
long ep_snapshot_app_first(const struct ep_snapshot *s, const char *env, const char *app);

/* Endpoint refcount (any thread). */
void endpoint_ref(struct endpoint *e);
void endpoint_unref(struct endpoint *e);

/* ---- the table (main loop only) ---- */
struct endpoints;

/* A reader: fn is called on the main loop with each new snapshot (borrowed: ref it to keep).
 * It returns a reader id for endpoints_adopted(). */
typedef void (*endpoints_reader_fn)(void *arg, struct ep_snapshot *snap);

struct endpoints *endpoints_new(uv_loop_t *loop);
void endpoints_free(struct endpoints *t);

int endpoints_add_reader(struct endpoints *t, endpoints_reader_fn fn, void *arg);
/* A reader reports (from any thread) that it now uses the snapshot of this version. */
void endpoints_adopted(struct endpoints *t, int reader, uint64_t version);

/* Put an instance in the table (serving). Publishes. Returns the endpoint (borrowed; stays
 * valid while it is in the table). Putting the same (instance, release, port) again returns
 * the one already in; the same name on another port is another process (a restart's
 * replacement) and gets its own endpoint next to the old one. */
struct endpoint *endpoints_put(struct endpoints *t, const char *env, const char *app, const char *process,
			       const char *instance, int slot, int release, int port);
/* Take an instance out by name (the first match). Publishes. Returns the removed endpoint
 * with a reference the caller must drop (for drain waiting), or NULL if it was not in. */
struct endpoint *endpoints_remove(struct endpoints *t, const char *env, const char *app, const char *instance,
				  int release);
/* Take exactly this endpoint out (the supervisor's own; by name, a restart's replacement
 * with the same name and release would be taken instead). Publishes. Returns e with the
 * table's reference (the caller drops it after draining), or NULL if it was not in. */
struct endpoint *endpoints_withdraw(struct endpoints *t, struct endpoint *e);
/* True once every reader has adopted a snapshot without e, and no request is in flight on it. */
bool endpoints_drained(struct endpoints *t, struct endpoint *e);

/* Replace the stored routes (copied). Default routes for apps with a "web" group are added
 * automatically: APP.ENV.localhost, and APP.localhost for production. Publishes. */
void endpoints_set_routes(struct endpoints *t, const struct route *routes, size_t n);

/* Tell the table whether (env, app) has a web process in its desired release, so its default
 * routes exist (and answer 503) even while no instance is healthy. Publishes on change. */
void endpoints_declare_app(struct endpoints *t, const char *env, const char *app, bool web);

/* Put (env, app) in maintenance mode or take it out: every route to the app (stored and
 * default) carries the flag in the snapshots from now on. Publishes on change only. */
void endpoints_set_maintenance(struct endpoints *t, const char *env, const char *app, bool on);
/* Is (env, app) in maintenance mode in the table? */
bool endpoints_maintenance(const struct endpoints *t, const char *env, const char *app);
/* True once every reader has adopted the snapshot of this version (or a newer one): from
 * then on no new request is routed with an older table. */
bool endpoints_adopted_all(const struct endpoints *t, uint64_t version);

/* The current snapshot (main loop; borrowed). */
struct ep_snapshot *endpoints_current(struct endpoints *t);
#endif
