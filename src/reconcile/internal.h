/* reconcile/internal.h: what the reconciler's files share (private to src/reconcile).
 *
 *   reconcile.c  the app runtime records and their release cache, waiters, the pass (plan
 *                inputs, starting instances, deadlines), store and supervisor events, cron
 *                runs, life (new/start/shutdown/free) and queries
 *   rollout.c    how a rollout ends: its outcome in the store, its waiters, deploy metrics
 *                and alerts; failing one stops the new release's instances first
 *   phase.c      the release phase of a rollout target, and cancelling a rollout
 *   env.c        what a process gets: instance variables, a one-off's whole environment
 *   observe.c    metrics and alerts from supervisor events, the instances gauge
 *   plan.c       the pure decision (plan.h); cron.c the cron scheduler (cron.h)
 *
 * Everything runs on the daemon loop. A struct app_rt lives from its first mention (store,
 * waiter, event) until run_pass() forgets a deleted app whose instances are gone. */
#ifndef BERTH_RECONCILE_INTERNAL_H
#define BERTH_RECONCILE_INTERNAL_H
#include "reconcile/reconcile.h"
#include "manifest/manifest.h"
#include "store/store.h"
#include "supervise/supervise.h"
#include <stdbool.h>
#include <stdint.h>

struct oneoff;

/* A parsed release document (cached, up to four per app: see rel_get). */
struct rel {
	int version;
	struct manifest m;
	json_t *config;          /* object K -> V */
	json_t *build;           /* the release's "build" (path, env), or NULL */
	json_t *images;          /* {process: {"ref","id","digest"}}: images pinned at deploy, or NULL */
	char *dir;               /* absolute release directory */
	bool rollback;           /* a rollback (no release phase unless asked) */
	bool run_release;        /* run the release phase even so */
	char *phase;             /* release phase state: NULL, "ok", "failed" */
};

struct rc_waiter {
	struct rc_waiter *next;
	struct app_rt *rt;
	enum rc_wait kind;
	int version;
	int64_t deadline_us;     /* converge waiters */
	int64_t started_us;
	rc_event_fn fn;
	void *arg;
};

struct app_rt {
	struct app_rt *next;
	char env[64], app[64];
	json_t *doc;             /* app document, NULL once deleted */
	struct rel *rels[4];     /* small cache of parsed releases */
	struct rc_waiter *waiters;
	bool dirty;
	bool failing;            /* a rollout failure is being recorded */
	int rollout_version;     /* target whose start time is below */
	int64_t rollout_started_us;
	char fail_reason[512];
	json_t *fail_logs;
	/* the release phase of the rollout target, while it runs */
	struct oneoff *phase;
	int phase_version;
	int64_t phase_streamed;      /* bytes of its output sent to waiters */
	struct reconciler *rc;
};

struct reconciler {
	uv_loop_t *loop;
	struct store *st;
	struct logs *logs;
	struct supervisor *sv;
	struct drivers *drivers;     /* borrowed from the server */
	char *owner_tag;
	struct oneoffs *oneoffs;     /* builds, release phases, cron, run/exec (owned) */
	struct cron_sched_set *cron; /* cron: jobs of live releases (owned) */
	struct endpoints *eps;
	const struct server_conf *conf;
	char *data_dir;
	struct app_rt *apps;
	struct metrics_families *fams;
	struct alerts *alerts;
	uv_timer_t kick, tick;
	bool kick_pending;
	int watch_id;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
};

/* ---- reconcile.c ---- */
/* The record of env/app; created (empty, no doc) when create, else NULL if unknown. */
struct app_rt *rt_find(struct reconciler *rc, const char *env, const char *app, bool create);
/* Release version of rt, parsed and cached (borrowed; valid until evicted); NULL with e. */
struct rel *rel_get(struct reconciler *rc, struct app_rt *rt, int version, struct err *e);
/* Run one pass on the loop soon (coalesced; none once shutting down). */
void schedule(struct reconciler *rc);
/* A progress event {"ts","event":type,"message":msg?}; the caller owns it. */
json_t *event_new(const char *type, const char *msg);
/* Send ev (stolen) to every waiter of rt. */
void broadcast(struct app_rt *rt, json_t *ev);
/* Finish a waiter with a done event (stolen); w is unlinked and freed. */
void waiter_done(struct rc_waiter *w, json_t *done);
/* A "done" event (new reference); version 0, error and logs (borrowed) are left out when absent. */
json_t *done_event(bool ok, int version, const char *msg, const char *error, json_t *logs);

/* ---- rollout.c ---- */
/* Read-modify-write the app document with compare-and-swap; fn edits doc and may add ops. */
typedef void (*app_edit_fn)(struct app_rt *rt, json_t *doc, struct store_txn *t, void *arg);
int app_update(struct reconciler *rc, struct app_rt *rt, app_edit_fn fn, void *arg, struct err *e);
/* Add to t a put of release version's document with status (and reason, finished_at). */
void set_release_status(struct reconciler *rc, struct app_rt *rt, struct store_txn *t, int version,
			const char *status, const char *reason);
/* Record the outcome of the rollout of version, finish its waiters, count and alert. */
void rollout_finish(struct reconciler *rc, struct app_rt *rt, int version, bool ok, const char *reason,
		    json_t *logs);
/* Stop version's instances, tell the waiters, and finish its rollout as failed (logs borrowed). */
void fail_rollout(struct reconciler *rc, struct app_rt *rt, int version, const char *reason, json_t *logs);

/* ---- phase.c ---- */
/* Does the rollout of r wait for its release phase? Starts it when it has not run. true
 * while it runs (or could not start and the rollout was failed). */
bool release_phase_pending(struct reconciler *rc, struct app_rt *rt, struct rel *r);

/* ---- env.c ---- */
/* Append "k=val" to the NULL-terminated array *v of *n entries. */
void add_var(char ***v, size_t *n, const char *k, const char *val);
/* The variables of a process of release r (config, manifest defaults, build, BERTH_*),
 * NULL-terminated; caller frees each and the array. */
char **release_vars(struct app_rt *rt, struct rel *r, const char *process, size_t *count);
/* What a one-off of release r gets as process `process` would (NULL: web, else the first);
 * free out with rc_oneoff_free. -1 with e: no such process, a volume directory failed. */
int rel_oneoff_env(struct reconciler *rc, struct app_rt *rt, struct rel *r, const char *process,
		   struct rc_oneoff *out, struct err *e);

/* The image a process of release r runs (pinned id, else the manifest's reference), or NULL
 * for a process that is a command. */
const char *rel_image(const struct rel *r, const struct process_spec *p);
/* A process's volumes: made on the host, their paths added to vars (a container sees each at
 * /berth/volumes/NAME, bind-mounted: *vols, owned strings; free with volumes_free). */
int proc_volumes(struct reconciler *rc, struct app_rt *rt, const struct rel *r, const struct process_spec *p,
		 char ***vars, size_t *nv, struct driver_volume **vols, size_t *nvols, struct err *e);
void volumes_free(struct driver_volume *v, size_t n);

/* ---- observe.c ---- */
/* Metrics and alerts for one supervisor event. */
void observe_event(struct reconciler *rc, struct instance *inst, enum inst_event ev, const char *detail);
#endif
