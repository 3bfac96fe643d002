/* reconcile: the one place that decides what runs. It reads desired state from the store
 * (app documents, releases; see model.h), compares it with the supervisor's instances,
 * and starts/stops instances with plan_compute(). It drives rollouts (health-gated,
 * surge-style), records their outcome in the store (release active/failed), and reports
 * progress to waiters (the API's progress streams). A daemon restart is just another
 * reconcile: reconciler_start() also fails rollouts that a dead server left half-done. */
#ifndef BERTH_RECONCILE_H
#define BERTH_RECONCILE_H
#include <stdbool.h>
#include <uv.h>
#include <jansson.h>
#include "store/store.h"
#include "manifest/manifest.h"
#include "util/err.h"

struct reconciler;
struct driver;
#include "driver/driver.h"
struct logs;
struct endpoints;
struct metrics_families;
struct alerts;

struct reconciler *reconciler_new(uv_loop_t *loop, struct store *st, struct drivers *drivers,
				  struct logs *logs, struct endpoints *eps, const struct server_conf *conf,
				  const char *data_dir, const char *owner_tag);
/* Count restarts, health failures and deploys, and send alerts (crash loop, health failing,
 * recovered, deploy failed / rolled back). Either may be NULL. Also sets the collector of
 * fams->instances. */
void reconciler_observe(struct reconciler *rc, struct metrics_families *fams, struct alerts *alerts);
/* Load every app, fail interrupted rollouts, and start reconciling. */
int reconciler_start(struct reconciler *rc, struct err *e);
/* Stop all instances (each with its grace), then call done. */
void reconciler_shutdown(struct reconciler *rc, void (*done)(void *), void *arg);
/* In-place upgrade (docs/upgrade.md).
 * busy: something an upgrade would interrupt is under way (a rollout, a release phase, a
 * build, a cron run, someone waiting for a change to converge, an instance being stopped),
 * said in why.
 * end_oneoffs: stop every one-off (`run`/`exec` sessions, detached runs; SIGTERM, grace,
 * SIGKILL), then call done: an upgrade ends them while the listeners still serve.
 * handover: like reconciler_shutdown, but running instances are left running for the
 * successor (supervisor_handover; its notes are appended to notes).
 * predecessor: the notes the predecessor wrote, before reconciler_start adopts its
 * instances (referenced). */
bool reconciler_busy(struct reconciler *rc, char *why, size_t n);
void reconciler_end_oneoffs(struct reconciler *rc, void (*done)(void *), void *arg);
void reconciler_handover(struct reconciler *rc, json_t *notes, void (*done)(void *), void *arg);
void reconciler_predecessor(struct reconciler *rc, json_t *notes);
void reconciler_free(struct reconciler *rc);

enum rc_wait {
	RC_WAIT_ROLLOUT,   /* until release `version` is live (ok) or failed */
	RC_WAIT_CONVERGE,  /* until what runs matches the desired state */
};

/* Progress of a change. fn gets every event object (borrowed) and, last, one with
 * "event":"done" and done = true; the waiter is freed after that call. */
typedef void (*rc_event_fn)(void *arg, json_t *event, bool done);
struct rc_waiter;
struct rc_waiter *reconciler_wait(struct reconciler *rc, const char *env, const char *app,
				  enum rc_wait kind, int version, rc_event_fn fn, void *arg);
/* Drop a waiter whose client went away (fn is not called again). */
void reconciler_unwait(struct rc_waiter *w);

/* Stop the rollout in progress of env/app (and its release phase): its new instances are
 * stopped, the release is marked failed ("cancelled"), the live release stays. *version is
 * the cancelled one. -1 with ERR_CONFLICT when nothing is rolling out. */
int reconciler_cancel(struct reconciler *rc, const char *env, const char *app, int *version, struct err *e);

/* What a one-off of the live release of env/app gets, as process `process` would (NULL: web,
 * else the first): its variables (config, manifest defaults, build PATH, BERTH_*, volume
 * paths; no PORT), its directory, its profile, the release. -1 with e: no live release
 * (ERR_CONFLICT), no such process (ERR_INVALID). Free with rc_oneoff_free. */
struct rc_oneoff {
	char **vars;             /* NULL-terminated "K=V" */
	char *cwd;
	char *process;
	char *image;             /* a container process: the release's pinned image, else NULL */
	struct driver_volume *volumes;   /* a container's bind mounts */
	size_t nvolumes;
	const struct profile *profile;
	int release;
};
int reconciler_oneoff_env(struct reconciler *rc, const char *env, const char *app, const char *process,
			  struct rc_oneoff *out, struct err *e);
void rc_oneoff_free(struct rc_oneoff *o);
/* The server's driver called name ("docker"), or NULL when it has none. */
struct driver *reconciler_driver(struct reconciler *rc, const char *name);
/* The live instance of env/app called id ("web.1"), or NULL. */
struct instance *reconciler_instance(struct reconciler *rc, const char *env, const char *app, const char *id);

/* The cron scheduler (reconcile/cron.h). */
struct cron_sched_set *reconciler_cron(struct reconciler *rc);

/* The one-offs (builds, release phases, cron runs, `run`/`exec`) the reconciler owns. */
struct oneoffs *reconciler_oneoffs(struct reconciler *rc);

/* Instances of an app as JSON (docs/API.md "instance"), sorted by process, slot, release. */
json_t *reconciler_instances(struct reconciler *rc, const char *env, const char *app);
void reconciler_counts(struct reconciler *rc, const char *env, const char *app, int *running, int *total);
/* Does any live instance of the app use this volume? */
bool reconciler_volume_in_use(struct reconciler *rc, const char *env, const char *app, const char *vol);
/* Path of a release directory: DATA/releases/<env>/<app>/<dir> (caller frees). */
char *reconciler_release_path(struct reconciler *rc, const char *env, const char *app, const char *dir);
char *reconciler_volume_path(struct reconciler *rc, const char *env, const char *app, const char *vol);
#endif
