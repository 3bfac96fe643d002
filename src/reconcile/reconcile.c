/* reconcile: desired state (store) vs actual (supervisor) for every app (see reconcile.h).
 * Runs on the daemon loop. Work is coalesced: store changes and instance events mark an app
 * dirty and schedule one pass; a 100 ms tick checks rollout deadlines. */
#include "reconcile/reconcile.h"
#include "reconcile/plan.h"
#include "model/model.h"
#include "supervise/supervise.h"
#include "driver/driver.h"
#include "logs/logs.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "metrics/metrics.h"
#include "endpoints/endpoints.h"
#include "alerts/alerts.h"
#include "oneoff/oneoff.h"
#include "reconcile/cron.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 100
#define CONVERGE_SLACK_MS 5000   /* a converge waiter gives up this long after the slowest deadline */

struct rel {
	int version;
	struct manifest m;
	json_t *config;          /* object K -> V */
	json_t *build;           /* the release's "build" (path, env), or NULL */
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

static void on_sv_event(void *arg, struct instance *inst, enum inst_event ev, const char *detail);
static void schedule(struct reconciler *rc);
static const char *converged_message(struct reconciler *rc, struct app_rt *rt, bool stopped);

/* ---- app runtime records ---- */

static struct app_rt *rt_find(struct reconciler *rc, const char *env, const char *app, bool create)
{
	for (struct app_rt *r = rc->apps; r; r = r->next)
		if (!strcmp(r->env, env) && !strcmp(r->app, app))
			return r;
	if (!create)
		return NULL;
	struct app_rt *r = xcalloc(1, sizeof *r);
	snprintf(r->env, sizeof r->env, "%s", env);
	snprintf(r->app, sizeof r->app, "%s", app);
	r->next = rc->apps;
	r->rc = rc;
	rc->apps = r;
	return r;
}

static void rel_free(struct rel *r)
{
	if (!r)
		return;
	manifest_free(&r->m);
	json_decref(r->config);
	json_decref(r->build);
	free(r->dir);
	free(r->phase);
	free(r);
}

static struct rel *rel_get(struct reconciler *rc, struct app_rt *rt, int version, struct err *e)
{
	for (int k = 0; k < 4; k++)
		if (rt->rels[k] && rt->rels[k]->version == version)
			return rt->rels[k];
	char *key = model_release_key(rt->env, rt->app, version);
	json_t *doc = model_get(rc->st, key, NULL, e);
	free(key);
	if (!doc)
		return NULL;
	struct rel *r = xcalloc(1, sizeof *r);
	r->version = version;
	if (manifest_from_json(json_object_get(doc, "manifest"), &r->m, e) < 0) {
		err_prefix(e, "release v%d of %s/%s", version, rt->env, rt->app);
		json_decref(doc);
		free(r);
		return NULL;
	}
	r->config = json_incref(json_object_get(doc, "config"));
	if (!json_is_object(r->config)) {
		json_decref(r->config);
		r->config = json_object();
	}
	r->dir = reconciler_release_path(rc, rt->env, rt->app, model_json_str(doc, "dir", ""));
	json_t *b = json_object_get(doc, "build");
	r->build = json_is_object(b) ? json_incref(b) : NULL;
	r->rollback = json_is_integer(json_object_get(doc, "rollback_of"));
	r->run_release = json_is_true(json_object_get(doc, "run_release"));
	const char *ph = model_json_str(doc, "release_phase", NULL);
	r->phase = ph ? xstrdup(ph) : NULL;
	json_decref(doc);
	/* Evict the slot that is neither live nor target. */
	int live = model_json_int(rt->doc, "release", 0), target = model_json_int(rt->doc, "target", 0);
	int slot = 0;
	for (int k = 0; k < 4; k++) {
		if (!rt->rels[k]) {
			slot = k;
			break;
		}
		if (rt->rels[k]->version != live && rt->rels[k]->version != target)
			slot = k;
	}
	rel_free(rt->rels[slot]);
	rt->rels[slot] = r;
	return r;
}

char *reconciler_release_path(struct reconciler *rc, const char *env, const char *app, const char *dir)
{
	return xasprintf("%s/releases/%s/%s/%s", rc->data_dir, env, app, dir);
}

char *reconciler_volume_path(struct reconciler *rc, const char *env, const char *app, const char *vol)
{
	return xasprintf("%s/volumes/%s/%s/%s", rc->data_dir, env, app, vol);
}

/* ---- waiters ---- */

static json_t *event_new(const char *type, const char *msg)
{
	char ts[40];
	json_t *j = json_object();
	json_object_set_new(j, "ts", json_string(time_format_rfc3339(time_now_us(), ts, sizeof ts)));
	json_object_set_new(j, "event", json_string(type));
	if (msg)
		json_object_set_new(j, "message", json_string(msg));
	return j;
}

static void waiter_unlink(struct rc_waiter *w)
{
	for (struct rc_waiter **pp = &w->rt->waiters; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			return;
		}
	}
}

static void broadcast(struct app_rt *rt, json_t *ev)
{
	for (struct rc_waiter *w = rt->waiters, *next; w; w = next) {
		next = w->next;
		w->fn(w->arg, ev, false);
	}
	json_decref(ev);
}

/* Finish a waiter with a done event (stolen). */
static void waiter_done(struct rc_waiter *w, json_t *done)
{
	waiter_unlink(w);
	w->fn(w->arg, done, true);
	json_decref(done);
	free(w);
}

static json_t *done_event(bool ok, int version, const char *msg, const char *error, json_t *logs)
{
	json_t *d = event_new("done", msg);
	json_object_set_new(d, "ok", json_boolean(ok));
	if (version)
		json_object_set_new(d, "release", json_integer(version));
	if (error)
		json_object_set_new(d, "error", json_string(error));
	if (logs)
		json_object_set(d, "logs", logs);
	return d;
}

struct rc_waiter *reconciler_wait(struct reconciler *rc, const char *env, const char *app,
				  enum rc_wait kind, int version, rc_event_fn fn, void *arg)
{
	struct app_rt *rt = rt_find(rc, env, app, true);
	struct rc_waiter *w = xcalloc(1, sizeof *w);
	w->rt = rt;
	w->kind = kind;
	w->version = version;
	w->fn = fn;
	w->arg = arg;
	w->started_us = time_now_us();
	/* Give a converge waiter the slowest health deadline of the app, plus slack. */
	int64_t dl = 30000;
	int live = model_json_int(rt->doc, "target", 0);
	if (!live)
		live = model_json_int(rt->doc, "release", 0);
	struct err e = ERR_INIT;
	struct rel *r = live ? rel_get(rc, rt, live, &e) : NULL;
	for (size_t k = 0; r && k < r->m.nprocs; k++)
		if (r->m.procs[k].health.deadline_ms > dl)
			dl = r->m.procs[k].health.deadline_ms;
	w->deadline_us = w->started_us + (dl + CONVERGE_SLACK_MS) * 1000;
	w->next = rt->waiters;
	rt->waiters = w;
	rt->dirty = true;
	schedule(rc);
	return w;
}

void reconciler_unwait(struct rc_waiter *w)
{
	if (!w)
		return;
	waiter_unlink(w);
	free(w);
}

/* ---- instance specs ---- */

static void add_var(char ***v, size_t *n, const char *k, const char *val)
{
	*v = xrealloc(*v, (*n + 2) * sizeof **v);
	(*v)[(*n)++] = xasprintf("%s=%s", k, val);
	(*v)[*n] = NULL;
}

/* What every process of release r gets from its build: the build's PATH entries (absolute,
 * before the server's PATH) and variables, under the app's config. */
static void add_build_vars(struct rel *r, char ***vars, size_t *nv)
{
	json_t *path = json_object_get(r->build, "path");
	if (json_array_size(path)) {
		struct buf b = BUF_INIT;
		size_t i;
		json_t *p;
		json_array_foreach(path, i, p)
			if (json_is_string(p))
				buf_addf(&b, "%s/%s:", r->dir, json_string_value(p));
		const char *host = getenv("PATH");
		buf_adds(&b, host ? host : "/usr/local/bin:/usr/bin:/bin");
		add_var(vars, nv, "PATH", buf_str(&b));
		buf_free(&b);
		const char *venv = NULL;
		json_array_foreach(path, i, p)
			if (json_is_string(p) && !strcmp(json_string_value(p), ".berth/venv/bin"))
				venv = ".berth/venv";
		if (venv) {
			char *vdir = xasprintf("%s/%s", r->dir, venv);
			add_var(vars, nv, "VIRTUAL_ENV", vdir);
			free(vdir);
		}
	}
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(r->build, "env"), k, v) {
		if (!json_is_string(v) || json_object_get(r->config, k))
			continue;
		const char *val = json_string_value(v);
		if (!strncmp(val, "$RELEASE/", 9)) {      /* a path inside the release directory */
			char *abs = xasprintf("%s/%s", r->dir, val + 9);
			add_var(vars, nv, k, abs);
			free(abs);
		} else {
			add_var(vars, nv, k, val);
		}
	}
}

/* The variables of a process of release r (config, manifest defaults, build, BERTH_*),
 * NULL-terminated; caller frees each and the array. */
static char **release_vars(struct app_rt *rt, struct rel *r, const char *process, size_t *count)
{
	char **vars = xcalloc(1, sizeof *vars);
	size_t nv = 0;
	for (size_t k = 0; k < r->m.nvars; k++)
		if (!json_object_get(r->config, r->m.vars[k].name))
			add_var(&vars, &nv, r->m.vars[k].name, r->m.vars[k].value);
	add_build_vars(r, &vars, &nv);
	const char *k;
	json_t *v;
	json_object_foreach(r->config, k, v)
		if (json_is_string(v))
			add_var(&vars, &nv, k, json_string_value(v));
	char num[16];
	snprintf(num, sizeof num, "%d", r->version);
	add_var(&vars, &nv, "BERTH_APP", rt->app);
	add_var(&vars, &nv, "BERTH_ENV", rt->env);
	if (process)
		add_var(&vars, &nv, "BERTH_PROCESS", process);
	add_var(&vars, &nv, "BERTH_RELEASE", num);
	*count = nv;
	return vars;
}

static struct instance *start_instance(struct reconciler *rc, struct app_rt *rt, struct rel *r,
				       const struct process_spec *p, int slot, int gen, struct err *e)
{
	size_t nv = 0;
	char **vars = release_vars(rt, r, p->name, &nv);
	int rcode = 0;
	for (size_t j = 0; j < p->nvolumes && rcode == 0; j++) {
		char *path = reconciler_volume_path(rc, rt->env, rt->app, p->volumes[j].name);
		rcode = fs_mkdir_p(path, 0750, e);
		add_var(&vars, &nv, p->volumes[j].env_var, path);
		free(path);
	}
	const struct profile *prof = NULL;
	if (rcode == 0 && p->profile) {
		prof = server_conf_profile(rc->conf, p->profile);
		if (!prof)
			rcode = err_set(e, ERR_INVALID, "unknown resource profile \"%s\"", p->profile);
	}
	struct instance *inst = NULL;
	if (rcode == 0) {
		struct instance_spec spec = {
			.env = rt->env, .app = rt->app, .process = p->name, .slot = slot,
			.release = r->version, .gen = gen, .command = p->command, .cwd = r->dir,
			.env_vars = vars, .port = p->port, .health = p->health, .profile = prof,
			.restart = true, .stop_grace_ms = p->stop_grace_ms,
		};
		inst = supervisor_start(rc->sv, &spec, e);
	}
	for (size_t j = 0; j < nv; j++)
		free(vars[j]);
	free(vars);
	return inst;
}

/* ---- store updates ---- */

/* Read-modify-write the app document with compare-and-swap; fn edits doc and may add ops. */
typedef void (*app_edit_fn)(struct app_rt *rt, json_t *doc, struct store_txn *t, void *arg);
static int app_update(struct reconciler *rc, struct app_rt *rt, app_edit_fn fn, void *arg, struct err *e)
{
	char *key = model_app_key(rt->env, rt->app);
	int r = -1;
	for (int attempt = 0; attempt < 5; attempt++) {
		int64_t rev;
		json_t *doc = model_get(rc->st, key, &rev, e);
		if (!doc)
			break;
		struct store_txn *t = store_txn_new();
		store_txn_cmp_rev(t, key, rev);
		fn(rt, doc, t, arg);
		char *s = model_dump(doc);
		store_txn_put(t, key, s);
		free(s);
		json_decref(doc);
		r = store_txn_commit(rc->st, t, NULL, e);
		store_txn_free(t);
		if (r == 0 || e->code != ERR_CONFLICT)
			break;
	}
	free(key);
	return r;
}

static void set_release_status(struct reconciler *rc, struct app_rt *rt, struct store_txn *t, int version,
			       const char *status, const char *reason)
{
	struct err e = ERR_INIT;
	char *key = model_release_key(rt->env, rt->app, version);
	json_t *doc = model_get(rc->st, key, NULL, &e);
	if (doc) {
		char ts[40];
		json_object_set_new(doc, "status", json_string(status));
		if (reason)
			json_object_set_new(doc, "reason", json_string(reason));
		if (strcmp(status, "superseded"))
			json_object_set_new(doc, "finished_at", json_string(time_format_rfc3339(time_now_us(), ts, sizeof ts)));
		char *s = model_dump(doc);
		store_txn_put(t, key, s);
		free(s);
		json_decref(doc);
	}
	free(key);
}

struct outcome {
	struct reconciler *rc;
	int version;
	bool ok;
	const char *reason;
};

static void edit_outcome(struct app_rt *rt, json_t *doc, struct store_txn *t, void *arg)
{
	struct outcome *o = arg;
	int live = model_json_int(doc, "release", 0);
	if (model_json_int(doc, "target", 0) != o->version)
		return;
	json_object_set_new(doc, "target", json_integer(0));
	if (o->ok) {
		json_object_set_new(doc, "release", json_integer(o->version));
		set_release_status(o->rc, rt, t, o->version, "active", NULL);
		if (live && live != o->version)
			set_release_status(o->rc, rt, t, live, "superseded", NULL);
	} else {
		set_release_status(o->rc, rt, t, o->version, "failed", o->reason);
		/* The app's config is what the live release runs with, not what failed. */
		struct err e = ERR_INIT;
		char *key = live ? model_release_key(rt->env, rt->app, live) : NULL;
		json_t *rel = key ? model_get(o->rc->st, key, NULL, &e) : NULL;
		json_t *cfg = json_object_get(rel, "config");
		if (json_is_object(cfg))
			json_object_set(doc, "config", cfg);
		json_decref(rel);
		free(key);
	}
}

static void rollout_finish(struct reconciler *rc, struct app_rt *rt, int version, bool ok, const char *reason,
			   json_t *logs)
{
	struct err e = ERR_INIT;
	struct outcome o = {rc, version, ok, reason};
	if (app_update(rc, rt, edit_outcome, &o, &e) < 0)
		log_error("%s/%s: recording the outcome of v%d: %s", rt->env, rt->app, version, e.msg);
	int64_t now = time_now_us();
	bool had_live = model_json_int(rt->doc, "release", 0) != 0 && model_json_int(rt->doc, "release", 0) != version;
	for (struct rc_waiter *w = rt->waiters, *next; w; w = next) {
		next = w->next;
		if (w->kind != RC_WAIT_ROLLOUT || w->version != version)
			continue;
		char msg[256];
		if (ok)
			snprintf(msg, sizeof msg, "v%d is live (%lld ms)", version, (long long)((now - w->started_us) / 1000));
		else if (had_live)
			snprintf(msg, sizeof msg, "v%d failed; the previous release keeps running", version);
		else
			snprintf(msg, sizeof msg, "v%d failed; the app has no release running (it had none live)", version);
		waiter_done(w, done_event(ok, version, msg, ok ? NULL : reason, ok ? NULL : logs));
	}
	if (ok)
		log_info("%s/%s: v%d is live", rt->env, rt->app, version);
	else
		log_warn("%s/%s: rollout of v%d failed: %s", rt->env, rt->app, version, reason);
	const char *outcome = ok ? "succeeded" : had_live ? "rolled_back" : "failed";
	if (rc->fams) {
		const char *labels[] = {rt->env, rt->app, outcome};
		metrics_inc(rc->fams->deploys, labels);
		if (rt->rollout_version == version && rt->rollout_started_us)
			metrics_observe(rc->fams->deploy_duration, labels, (double)(now - rt->rollout_started_us) / 1e6);
	}
	if (!ok && rc->alerts)
		alerts_emitf(rc->alerts, had_live ? ALERT_DEPLOY_ROLLED_BACK : ALERT_DEPLOY_FAILED, rt->env, rt->app, NULL,
			     NULL, "release v%d failed%s: %s", version,
			     had_live ? "; the previous release keeps running" : "", reason);
	rt->rollout_version = 0;
}

/* ---- the pass ---- */

static int formation_of(json_t *doc, const struct process_spec *p)
{
	json_t *f = json_object_get(json_object_get(doc, "formation"), p->name);
	return json_is_integer(f) ? (int)json_integer_value(f) : p->instances;
}

static void fail_rollout(struct reconciler *rc, struct app_rt *rt, int version, const char *reason, json_t *logs)
{
	/* Stop the new release's instances first; the pass that follows brings the old back. */
	struct instance **v;
	size_t n = supervisor_list(rc->sv, rt->env, rt->app, &v), started = 0;
	for (size_t k = 0; k < n; k++)
		if (instance_status(v[k])->release == version) {
			instance_stop(v[k], -1);
			started++;
		}
	free(v);
	json_t *ev = event_new("rollback", NULL);
	char msg[600];
	int live = model_json_int(rt->doc, "release", 0);
	if (live && live != version && !started)
		snprintf(msg, sizeof msg, "not rolled out (v%d keeps running): %s", live, reason);
	else if (live && live != version)
		snprintf(msg, sizeof msg, "rolling back: %s", reason);
	else
		snprintf(msg, sizeof msg, "stopping v%d (no earlier release to go back to): %s", version, reason);
	json_object_set_new(ev, "message", json_string(msg));
	broadcast(rt, ev);
	rollout_finish(rc, rt, version, false, reason, logs);
}

/* ---- the release phase ---- */

static int rel_oneoff_env(struct reconciler *rc, struct app_rt *rt, struct rel *r, const char *process,
			  struct rc_oneoff *out, struct err *e);

/* Record the outcome of version's release phase in its release document. */
static void phase_record(struct reconciler *rc, struct app_rt *rt, int version, const char *state)
{
	struct err e = ERR_INIT;
	char *key = model_release_key(rt->env, rt->app, version);
	for (int attempt = 0; attempt < 5; attempt++) {
		int64_t rev;
		json_t *doc = model_get(rc->st, key, &rev, &e);
		if (!doc)
			break;
		json_object_set_new(doc, "release_phase", json_string(state));
		char *sv = model_dump(doc);
		json_decref(doc);
		struct store_txn *t = store_txn_new();
		store_txn_cmp_rev(t, key, rev);
		store_txn_put(t, key, sv);
		free(sv);
		int r = store_txn_commit(rc->st, t, NULL, &e);
		store_txn_free(t);
		if (r == 0 || e.code != ERR_CONFLICT)
			break;
	}
	free(key);
}

/* A line of the release phase's output, to the deploy's progress (the first MiB of it). */
static void on_phase_line(void *arg, int stream, const char *text)
{
	struct app_rt *rt = arg;
	if (!rt->waiters || rt->phase_streamed > (1 << 20))
		return;
	rt->phase_streamed += (int64_t)strlen(text);
	if (rt->phase_streamed > (1 << 20)) {
		broadcast(rt, event_new("info", "the release phase prints a lot: the rest of its output is only in "
					"the logs (berth logs --process release)"));
		return;
	}
	char *msg = xasprintf("release | %s", text);
	json_t *ev = event_new("output", msg);
	free(msg);
	json_object_set_new(ev, "process", json_string("release"));
	json_object_set_new(ev, "line", json_string(text));
	broadcast(rt, ev);
}

static void on_phase_exit(void *arg, const struct oneoff_result *res)
{
	struct app_rt *rt = arg;
	struct reconciler *rc = rt->rc;
	rt->phase = NULL;
	int version = rt->phase_version;
	bool ok = !res->signal && res->status == 0 && !res->timed_out;
	int target = model_json_int(rt->doc, "target", 0);
	for (int k = 0; k < 4; k++)
		if (rt->rels[k] && rt->rels[k]->version == version) {
			free(rt->rels[k]->phase);
			rt->rels[k]->phase = xstrdup(ok ? "ok" : "failed");
		}
	phase_record(rc, rt, version, ok ? "ok" : "failed");
	if (rt->waiters) {
		char msg[300];
		snprintf(msg, sizeof msg, "release phase of v%d %s (%s, %lld ms)", version, ok ? "done" : "failed",
			 res->summary, (long long)res->duration_ms);
		broadcast(rt, event_new("info", msg));
	}
	if (!ok && target == version && rt->doc) {
		char reason[400];
		snprintf(reason, sizeof reason, "the release phase of v%d failed: %s; nothing was rolled out", version,
			 res->summary);
		fail_rollout(rc, rt, version, reason, res->output);
	}
	rt->dirty = true;
	schedule(rc);
}

/* Does the rollout of r wait for its release phase? Starts it when it has not run. true
 * while it runs (or could not start and the rollout was failed). */
static bool release_phase_pending(struct reconciler *rc, struct app_rt *rt, struct rel *r)
{
	if (!r->m.release || (r->rollback && !r->run_release) || (r->phase && !strcmp(r->phase, "ok")))
		return false;
	if (rt->phase)
		return true;
	if (r->phase)                    /* failed earlier: the rollout was failed with it */
		return true;
	/* A one-off of the new release, as its web process (else its first) would run: its
	 * environment, volumes and profile. */
	struct err e = ERR_INIT;
	struct rc_oneoff env;
	rt->phase_streamed = 0;
	rt->phase_version = r->version;
	rt->phase = NULL;
	if (rel_oneoff_env(rc, rt, r, NULL, &env, &e) == 0) {
		struct oneoff_spec spec = {
			.env = rt->env, .app = rt->app, .kind = "release", .release = r->version, .command = r->m.release,
			.cwd = env.cwd, .env_vars = env.vars, .profile = env.profile,
			.timeout_ms = r->m.release_timeout_ms > 0 ? r->m.release_timeout_ms : 600000, .log = true,
			.output_limit = rc->conf->builds.output_limit,
		};
		struct oneoff_events ev = {.on_line = on_phase_line, .on_exit = on_phase_exit, .arg = rt};
		rt->phase = oneoff_start(rc->oneoffs, &spec, &ev, &e);
		rc_oneoff_free(&env);
	}
	if (!rt->phase) {
		char reason[600];
		snprintf(reason, sizeof reason, "the release phase could not start: %s", e.msg);
		free(r->phase);
		r->phase = xstrdup("failed");
		fail_rollout(rc, rt, r->version, reason, NULL);
		return true;
	}
	if (rt->waiters) {
		char msg[600];
		snprintf(msg, sizeof msg, "running the release phase of v%d: %s", r->version, r->m.release);
		broadcast(rt, event_new("info", msg));
	}
	return true;
}

static void reconcile_app(struct reconciler *rc, struct app_rt *rt)
{
	rt->dirty = false;
	struct err e = ERR_INIT;
	int desired = 0;
	bool stopped = false;
	struct rel *r = NULL;
	if (rt->doc) {
		int target = model_json_int(rt->doc, "target", 0);
		desired = target ? target : model_json_int(rt->doc, "release", 0);
		stopped = !strcmp(model_json_str(rt->doc, "state", "running"), "stopped");
		if (desired) {
			r = rel_get(rc, rt, desired, &e);
			if (!r) {
				log_error("%s/%s: %s", rt->env, rt->app, e.msg);
				if (target) {
					fail_rollout(rc, rt, target, e.msg, NULL);
					return;
				}
				desired = 0;
			}
		}
		/* The release phase runs before any instance of the target starts or any old one
		 * stops: until it is done, the live release is what should run. */
		if (r && target && release_phase_pending(rc, rt, r)) {
			if (!model_json_int(rt->doc, "target", 0))
				return;      /* the phase could not start and failed the rollout */
			desired = model_json_int(rt->doc, "release", 0);
			r = desired ? rel_get(rc, rt, desired, &e) : NULL;
			if (!r)
				desired = 0;
		}
	}
	if (rc->eps) {
		/* Default routes exist while the desired release has a web process, healthy or not. */
		const struct process_spec *web = r ? manifest_process(&r->m, "web") : NULL;
		endpoints_declare_app(rc->eps, rt->env, rt->app, web && web->port);
	}
	struct instance **insts;
	size_t ni = supervisor_list(rc->sv, rt->env, rt->app, &insts);
	struct plan_inst *pi = xcalloc(ni ? ni : 1, sizeof *pi);
	for (size_t k = 0; k < ni; k++) {
		const struct instance_status *s = instance_status(insts[k]);
		pi[k] = (struct plan_inst){s->process, s->slot, s->release, s->gen, s->healthy,
					   s->ever_healthy, s->state == INST_STOPPING};
	}
	size_t np = r ? r->m.nprocs : 0;
	struct plan_proc *pp = xcalloc(np ? np : 1, sizeof *pp);
	json_t *gens = json_object_get(rt->doc, "gens");
	for (size_t k = 0; k < np; k++) {
		pp[k].name = r->m.procs[k].name;
		pp[k].count = formation_of(rt->doc, &r->m.procs[k]);
		json_t *g = json_object_get(gens, pp[k].name);
		pp[k].gen = json_is_integer(g) ? (int)json_integer_value(g) : 0;
		/* "slot_gens": {"web.2": 4}: slots restarted on their own (`berth restart web.2`);
		 * without a port the old instance goes first (plan.h). */
		pp[k].stop_first = !r->m.procs[k].port;
		int *sg = xcalloc((size_t)pp[k].count + 1, sizeof *sg);
		size_t nl = strlen(pp[k].name);
		const char *sk;
		json_t *sv;
		json_object_foreach(json_object_get(rt->doc, "slot_gens"), sk, sv) {
			char *end = "";
			long s = strncmp(sk, pp[k].name, nl) || sk[nl] != '.' ? 0 : strtol(sk + nl + 1, &end, 10);
			if (s >= 1 && s <= pp[k].count && !*end && json_is_integer(sv))
				sg[s - 1] = (int)json_integer_value(sv);
		}
		pp[k].slot_gens = sg;
		pp[k].nslot_gens = pp[k].count;
	}
	struct plan_input in = {desired, stopped, pp, np, pi, ni, 1};
	struct plan_output out;
	plan_compute(&in, &out);

	for (size_t k = 0; k < out.nstops; k++) {
		struct instance *x = insts[out.stops[k]];
		const struct instance_status *s = instance_status(x);
		if (rt->waiters) {
			char msg[200];
			snprintf(msg, sizeof msg, "stopping %s (v%d)", s->id, s->release);
			json_t *ev = event_new("stop", msg);
			json_object_set_new(ev, "instance", json_string(s->id));
			json_object_set_new(ev, "release", json_integer(s->release));
			broadcast(rt, ev);
		}
		instance_stop(x, -1);
	}
	if (out.nstops) {
		/* Once they are marked stopping the app may count as converged: look again. */
		rt->dirty = true;
		schedule(rc);
	}
	for (size_t k = 0; k < out.nstarts; k++) {
		const struct process_spec *p = manifest_process(&r->m, out.starts[k].process);
		int gen = 0;
		for (size_t j = 0; j < np; j++)
			if (!strcmp(pp[j].name, p->name))
				gen = plan_want_gen(&pp[j], out.starts[k].slot);
		if (!start_instance(rc, rt, r, p, out.starts[k].slot, gen, &e)) {
			char reason[700];
			snprintf(reason, sizeof reason, "%s.%d: %s", p->name, out.starts[k].slot, e.msg);
			log_error("%s/%s: %s", rt->env, rt->app, reason);
			if (model_json_int(rt->doc, "target", 0) == desired && desired) {
				fail_rollout(rc, rt, desired, reason, NULL);
				break;
			}
			for (struct rc_waiter *w = rt->waiters, *next; w; w = next) {
				next = w->next;
				waiter_done(w, done_event(false, 0, NULL, reason, NULL));
			}
			break;
		}
	}
	bool converged = out.converged;
	plan_output_free(&out);
	for (size_t k = 0; k < np; k++)
		free((int *)pp[k].slot_gens);
	free(pp);
	free(pi);
	free(insts);

	if (!rt->doc) {
		cron_sched_forget(rc->cron, rt->env, rt->app);
		return;
	}
	{
		int live = model_json_int(rt->doc, "release", 0);
		struct err ce = ERR_INIT;
		struct rel *lr = live ? rel_get(rc, rt, live, &ce) : NULL;
		cron_sched_sync(rc->cron, rt->env, rt->app, live, lr ? &lr->m : NULL, stopped);
	}
	int target = model_json_int(rt->doc, "target", 0);
	if (converged && target && target == desired)
		rollout_finish(rc, rt, target, true, NULL, NULL);
	if (target && target != desired)
		converged = false;     /* the release phase is still running */
	if (converged) {
		for (struct rc_waiter *w = rt->waiters, *next; w; w = next) {
			next = w->next;
			if (w->kind == RC_WAIT_CONVERGE)
				waiter_done(w, done_event(true, desired, converged_message(rc, rt, stopped), NULL, NULL));
		}
	}
}

/* "stopped", "no instances running", or "3 instances healthy". */
static const char *converged_message(struct reconciler *rc, struct app_rt *rt, bool stopped)
{
	static char msg[64];
	int running, total;
	reconciler_counts(rc, rt->env, rt->app, &running, &total);
	if (stopped)
		return "stopped";
	if (total == 0)
		return "no instances running";
	snprintf(msg, sizeof msg, "%d instance%s healthy", running, running == 1 ? "" : "s");
	return msg;
}

/* Deadlines: a new release's instance that is not healthy in time fails the rollout; a
 * converge waiter gives up after its deadline. */
static void check_deadlines(struct reconciler *rc, struct app_rt *rt)
{
	int64_t now = time_now_us();
	int target = model_json_int(rt->doc, "target", 0);
	if (target) {
		struct err e = ERR_INIT;
		struct rel *r = rel_get(rc, rt, target, &e);
		struct instance **v;
		size_t n = supervisor_list(rc->sv, rt->env, rt->app, &v);
		for (size_t k = 0; r && k < n; k++) {
			const struct instance_status *s = instance_status(v[k]);
			const struct process_spec *p = manifest_process(&r->m, s->process);
			if (s->release != target || s->ever_healthy || !p || s->state == INST_STOPPING)
				continue;
			if (s->started_us && now - s->started_us > p->health.deadline_ms * 1000) {
				char reason[800], hint[200] = "";
				if (s->port && (p->health.kind == HEALTH_TCP || p->health.kind == HEALTH_HTTP) &&
				    strstr(s->last_error, "refused"))
					snprintf(hint, sizeof hint, " (hint: nothing listens on 127.0.0.1:%d; the app must listen on "
						 "the port in $PORT)", s->port);
				snprintf(reason, sizeof reason, "%s (v%d) not healthy after %lld ms%s%s%s", s->id, target,
					 (long long)p->health.deadline_ms, s->last_error[0] ? ": " : "", s->last_error, hint);
				json_t *logs = instance_failure_output(v[k]);
				free(v);
				fail_rollout(rc, rt, target, reason, logs);
				json_decref(logs);
				return;
			}
		}
		free(v);
	}
	for (struct rc_waiter *w = rt->waiters, *next; w; w = next) {
		next = w->next;
		if (w->kind == RC_WAIT_CONVERGE && now > w->deadline_us)
			waiter_done(w, done_event(false, 0, NULL, "instances did not all become healthy in time (see `berth ps`)", NULL));
	}
}

static void run_pass(struct reconciler *rc)
{
	for (struct app_rt *rt = rc->apps; rt; rt = rt->next)
		if (rt->dirty)
			reconcile_app(rc, rt);
	/* Forget deleted apps once their instances are gone. */
	for (struct app_rt **pp = &rc->apps; *pp;) {
		struct app_rt *rt = *pp;
		int running, total;
		reconciler_counts(rc, rt->env, rt->app, &running, &total);
		if (!rt->doc && total == 0 && !rt->waiters) {
			*pp = rt->next;
			if (rt->phase)
				oneoff_detach(rt->phase, true);   /* its events must not reach a freed rt */
			for (int k = 0; k < 4; k++)
				rel_free(rt->rels[k]);
			json_decref(rt->fail_logs);
			free(rt);
			continue;
		}
		pp = &rt->next;
	}
}

static void on_kick(uv_timer_t *t)
{
	struct reconciler *rc = t->data;
	rc->kick_pending = false;
	run_pass(rc);
}

static void schedule(struct reconciler *rc)
{
	if (rc->kick_pending || rc->shutdown_done)
		return;
	rc->kick_pending = true;
	uv_timer_start(&rc->kick, on_kick, 0, 0);
}

static void on_tick(uv_timer_t *t)
{
	struct reconciler *rc = t->data;
	for (struct app_rt *rt = rc->apps; rt; rt = rt->next)
		if (rt->doc && (rt->waiters || model_json_int(rt->doc, "target", 0)))
			check_deadlines(rc, rt);
}

/* ---- events ---- */

static void on_store_change(void *arg, const char *key, const char *value, int64_t rev)
{
	struct reconciler *rc = arg;
	char env[64], app[64];
	if (model_parse_app_key(key, env, app) < 0)
		return;
	char *akey = model_app_key(env, app);
	bool is_app = !strcmp(key, akey);
	free(akey);
	if (!is_app)
		return;
	struct app_rt *rt = rt_find(rc, env, app, true);
	json_decref(rt->doc);
	rt->doc = value ? json_loads(value, 0, NULL) : NULL;
	rt->dirty = true;
	schedule(rc);
	int target = model_json_int(rt->doc, "target", 0);
	if (target && target != rt->rollout_version) {
		rt->rollout_version = target;
		rt->rollout_started_us = time_now_us();
	}
	if (!rt->doc) {
		/* Deleted: nothing will converge for anyone still waiting on it. */
		while (rt->waiters)
			waiter_done(rt->waiters, done_event(false, 0, NULL, "the app was deleted", NULL));
	}
}

/* Metrics and alerts for one supervisor event. */
static void observe_event(struct reconciler *rc, struct instance *inst, enum inst_event ev, const char *detail)
{
	const struct instance_status *s = instance_status(inst);
	const char *labels[] = {s->env, s->app, s->process};
	switch (ev) {
	case IEV_EXITED:
		if (rc->fams)
			metrics_inc(rc->fams->instance_restarts, labels);
		if (rc->alerts && s->crashes == SUPERVISE_CRASH_LOOP && s->state == INST_BACKOFF)
			alerts_emitf(rc->alerts, ALERT_CRASH_LOOP, s->env, s->app, s->process, s->id,
				     "%s (v%d) is crash-looping: %d crashes in a row, last %s", s->id, s->release,
				     s->crashes, s->last_exit);
		break;
	case IEV_UNHEALTHY:
		if (rc->fams)
			metrics_inc(rc->fams->health_failures, labels);
		if (rc->alerts)
			alerts_emitf(rc->alerts, ALERT_HEALTH_FAILING, s->env, s->app, s->process, s->id,
				     "%s (v%d) health check failing: %s", s->id, s->release, detail ? detail : "");
		break;
	case IEV_HEALTHY:
		if (rc->alerts && detail && !strcmp(detail, "recovered"))
			alerts_emitf(rc->alerts, ALERT_RECOVERED, s->env, s->app, s->process, s->id,
				     "%s (v%d) is healthy again", s->id, s->release);
		break;
	default:
		break;
	}
}

static void collect_instances(void *arg, struct metrics_emitter *em)
{
	struct reconciler *rc = arg;
	struct instance **v;
	size_t n = supervisor_list(rc->sv, NULL, NULL, &v);
	for (size_t k = 0; k < n; k++) {
		const struct instance_status *s = instance_status(v[k]);
		const char *labels[] = {s->env, s->app, s->process, inst_state_name(s->state)};
		metrics_emit(em, labels, 1);
	}
	free(v);
}

void reconciler_observe(struct reconciler *rc, struct metrics_families *fams, struct alerts *alerts)
{
	rc->fams = fams;
	rc->alerts = alerts;
	if (fams && fams->instances)
		metrics_family_set_collect(fams->instances, collect_instances, rc);
}

static void on_sv_event(void *arg, struct instance *inst, enum inst_event ev, const char *detail)
{
	struct reconciler *rc = arg;
	const struct instance_status *s = instance_status(inst);
	struct app_rt *rt = rt_find(rc, s->env, s->app, false);
	if (!rt)
		return;
	rt->dirty = true;
	schedule(rc);
	char msg[600];
	const char *type = NULL;
	switch (ev) {
	case IEV_STARTED:
		type = "start";
		if (s->port)
			snprintf(msg, sizeof msg, "%s (v%d) started, pid %d, port %d", s->id, s->release, s->pid, s->port);
		else
			snprintf(msg, sizeof msg, "%s (v%d) started, pid %d", s->id, s->release, s->pid);
		break;
	case IEV_HEALTHY:
		type = "healthy";
		snprintf(msg, sizeof msg, "%s (v%d) healthy after %lld ms", s->id, s->release,
			 (long long)((s->healthy_us - s->started_us) / 1000));
		break;
	case IEV_UNHEALTHY:
		type = "unhealthy";
		snprintf(msg, sizeof msg, "%s (v%d) unhealthy: %s", s->id, s->release, detail ? detail : "");
		break;
	case IEV_EXITED:
		type = "crashed";
		snprintf(msg, sizeof msg, "%s (v%d) exited: %s", s->id, s->release, detail ? detail : "");
		break;
	case IEV_FAILED:
		type = "crashed";
		snprintf(msg, sizeof msg, "%s (v%d) could not start: %s", s->id, s->release, detail ? detail : "");
		break;
	case IEV_STOPPED:
		break;
	}
	observe_event(rc, inst, ev, detail);
	if (type && rt->waiters) {
		json_t *j = event_new(type, msg);
		json_object_set_new(j, "instance", json_string(s->id));
		json_object_set_new(j, "release", json_integer(s->release));
		broadcast(rt, j);
	}
	/* A new instance that dies before it was ever healthy fails a rollout at once, and a
	 * converge waiter too (the supervisor keeps retrying it with backoff). */
	if ((ev == IEV_EXITED || ev == IEV_FAILED) && !s->ever_healthy && rt->doc) {
		char reason[700];
		snprintf(reason, sizeof reason, "%s (v%d) %s before becoming healthy", s->id, s->release,
			 ev == IEV_FAILED ? detail : s->last_exit);
		if (ev == IEV_EXITED)
			snprintf(reason, sizeof reason, "%s (v%d) exited before becoming healthy: %s", s->id,
				 s->release, s->last_exit);
		int target = model_json_int(rt->doc, "target", 0);
		json_t *logs = instance_failure_output(inst);
		if (target && s->release == target) {
			fail_rollout(rc, rt, target, reason, logs);
		} else {
			for (struct rc_waiter *w = rt->waiters, *next; w; w = next) {
				next = w->next;
				if (w->kind == RC_WAIT_CONVERGE)
					waiter_done(w, done_event(false, 0, NULL, reason, logs));
			}
		}
		json_decref(logs);
	}
	if (ev == IEV_STOPPED && rc->shutdown_done) {
		/* handled by the supervisor's shutdown callback */
	}
}

/* ---- cron runs ---- */

static void on_cron_exit(void *arg, const struct oneoff_result *r)
{
	bool ok = !r->signal && r->status == 0 && !r->timed_out;
	cron_sched_run_ended(arg, ok, r->summary, r->duration_ms);
}

static struct oneoff *cron_start(void *arg, const char *env, const char *app, const struct cron_job *job,
				 void *run_ctx, struct err *e)
{
	struct reconciler *rc = arg;
	struct rc_oneoff env_ = {0};
	if (reconciler_oneoff_env(rc, env, app, job->process, &env_, e) < 0)
		return NULL;
	char kind[80];
	snprintf(kind, sizeof kind, "cron.%s", job->name);
	struct oneoff_spec spec = {
		.env = env, .app = app, .kind = kind, .release = env_.release, .command = job->command, .cwd = env_.cwd,
		.env_vars = env_.vars, .profile = env_.profile, .timeout_ms = job->timeout_ms, .log = true,
		.output_limit = rc->conf->builds.output_limit,
	};
	struct oneoff_events ev = {.on_exit = on_cron_exit, .arg = run_ctx};
	struct oneoff *o = oneoff_start(rc->oneoffs, &spec, &ev, e);
	rc_oneoff_free(&env_);
	return o;
}

struct cron_sched_set *reconciler_cron(struct reconciler *rc)
{
	return rc->cron;
}

/* ---- life ---- */

struct reconciler *reconciler_new(uv_loop_t *loop, struct store *st, struct driver *drv,
				  struct logs *logs, struct endpoints *eps, const struct server_conf *conf,
				  const char *data_dir, const char *owner_tag)
{
	struct reconciler *rc = xcalloc(1, sizeof *rc);
	rc->loop = loop;
	rc->st = st;
	rc->logs = logs;
	rc->conf = conf;
	rc->data_dir = xstrdup(data_dir);
	rc->eps = eps;
	rc->sv = supervisor_new(loop, drv, logs, eps, owner_tag, on_sv_event, rc);
	rc->oneoffs = oneoffs_new(loop, drv, logs, owner_tag);
	rc->cron = cron_sched_new(loop, st, cron_start, rc);
	uv_timer_init(loop, &rc->kick);
	uv_timer_init(loop, &rc->tick);
	rc->kick.data = rc->tick.data = rc;
	return rc;
}

static void edit_interrupted(struct app_rt *rt, json_t *doc, struct store_txn *t, void *arg)
{
	struct reconciler *rc = arg;
	int target = model_json_int(doc, "target", 0);
	if (!target)
		return;
	json_object_set_new(doc, "target", json_integer(0));
	set_release_status(rc, rt, t, target, "failed", "interrupted: the server stopped during the rollout");
}

int reconciler_start(struct reconciler *rc, struct err *e)
{
	struct store_list l;
	if (store_list(rc->st, "/envs/", &l, e) < 0)
		return -1;
	for (size_t k = 0; k < l.n; k++) {
		char env[64], app[64];
		if (model_parse_app_key(l.items[k].key, env, app) < 0)
			continue;
		char *akey = model_app_key(env, app);
		bool is_app = !strcmp(akey, l.items[k].key);
		free(akey);
		if (!is_app)
			continue;
		struct app_rt *rt = rt_find(rc, env, app, true);
		rt->doc = json_loads(l.items[k].value, 0, NULL);
		rt->dirty = true;
		if (model_json_int(rt->doc, "target", 0)) {
			log_warn("%s/%s: rollout of v%d was interrupted by a server stop; marking it failed",
				 env, app, model_json_int(rt->doc, "target", 0));
			if (app_update(rc, rt, edit_interrupted, rc, e) < 0) {
				store_list_free(&l);
				return -1;
			}
			json_decref(rt->doc);
			char *key = model_app_key(env, app);
			rt->doc = model_get(rc->st, key, NULL, e);
			free(key);
		}
	}
	store_list_free(&l);
	rc->watch_id = store_watch(rc->st, "/envs/", on_store_change, rc);
	uv_timer_start(&rc->tick, on_tick, TICK_MS, TICK_MS);
	schedule(rc);
	return 0;
}

static void on_oneoffs_shutdown(void *arg)
{
	struct reconciler *rc = arg;
	void (*done)(void *) = rc->shutdown_done;
	rc->shutdown_done = NULL;
	if (done)
		done(rc->shutdown_arg);
}

static void on_sv_shutdown(void *arg)
{
	struct reconciler *rc = arg;
	oneoffs_shutdown(rc->oneoffs, on_oneoffs_shutdown, rc);
}

void reconciler_shutdown(struct reconciler *rc, void (*done)(void *), void *arg)
{
	uv_timer_stop(&rc->tick);
	uv_timer_stop(&rc->kick);
	rc->shutdown_done = done;
	rc->shutdown_arg = arg;
	for (struct app_rt *rt = rc->apps; rt; rt = rt->next) {
		while (rt->waiters)
			waiter_done(rt->waiters, done_event(false, 0, NULL, "the server is shutting down", NULL));
		if (rt->phase) {
			/* oneoffs_shutdown stops it; nobody listens any more (the rollout is failed
			 * as interrupted at the next start). */
			oneoff_detach(rt->phase, false);
			rt->phase = NULL;
		}
	}
	supervisor_shutdown(rc->sv, on_sv_shutdown, rc);
}

void reconciler_free(struct reconciler *rc)
{
	if (!rc)
		return;
	store_unwatch(rc->st, rc->watch_id);
	for (struct app_rt *rt = rc->apps, *next; rt; rt = next) {
		next = rt->next;
		while (rt->waiters)
			reconciler_unwait(rt->waiters);
		for (int k = 0; k < 4; k++)
			rel_free(rt->rels[k]);
		json_decref(rt->doc);
		json_decref(rt->fail_logs);
		free(rt);
	}
	uv_close((uv_handle_t *)&rc->kick, NULL);
	uv_close((uv_handle_t *)&rc->tick, NULL);
	supervisor_free(rc->sv);
	cron_sched_free(rc->cron);
	oneoffs_free(rc->oneoffs);
	free(rc->data_dir);
	/* rc itself is freed by the caller after the loop has closed the timers. */
}

/* What a one-off of release r gets as process `process` would (NULL: web, else the first). */
static int rel_oneoff_env(struct reconciler *rc, struct app_rt *rt, struct rel *r, const char *process,
			  struct rc_oneoff *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	const struct process_spec *p = NULL;
	if (process) {
		p = manifest_process(&r->m, process);
		if (!p) {
			struct buf names = BUF_INIT;
			for (size_t k = 0; k < r->m.nprocs; k++)
				buf_addf(&names, "%s%s", k ? ", " : "", r->m.procs[k].name);
			err_set(e, ERR_INVALID, "v%d of %s/%s has no process \"%s\" (it has: %s)", r->version, rt->env,
				rt->app, process, buf_str(&names));
			buf_free(&names);
			return -1;
		}
	} else {
		p = manifest_process(&r->m, "web");
		if (!p)
			p = &r->m.procs[0];
	}
	size_t nv = 0;
	char **vars = release_vars(rt, r, p->name, &nv);
	for (size_t j = 0; j < p->nvolumes; j++) {
		char *path = reconciler_volume_path(rc, rt->env, rt->app, p->volumes[j].name);
		if (fs_mkdir_p(path, 0750, e) < 0) {
			free(path);
			for (size_t k = 0; k < nv; k++)
				free(vars[k]);
			free(vars);
			return -1;
		}
		add_var(&vars, &nv, p->volumes[j].env_var, path);
		free(path);
	}
	out->vars = vars;
	out->cwd = xstrdup(r->dir);
	out->release = r->version;
	out->process = xstrdup(p->name);
	out->profile = p->profile ? server_conf_profile(rc->conf, p->profile) : NULL;
	return 0;
}

int reconciler_oneoff_env(struct reconciler *rc, const char *env, const char *app, const char *process,
			  struct rc_oneoff *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	struct app_rt *rt = rt_find(rc, env, app, false);
	int live = rt ? model_json_int(rt->doc, "release", 0) : 0;
	if (!live)
		return err_set(e, ERR_CONFLICT, "%s/%s has no live release: deploy it first", env, app);
	struct rel *r = rel_get(rc, rt, live, e);
	if (!r)
		return -1;
	return rel_oneoff_env(rc, rt, r, process, out, e);
}

void rc_oneoff_free(struct rc_oneoff *o)
{
	for (char **v = o->vars; v && *v; v++)
		free(*v);
	free(o->vars);
	free(o->cwd);
	free(o->process);
	memset(o, 0, sizeof *o);
}

struct instance *reconciler_instance(struct reconciler *rc, const char *env, const char *app, const char *id)
{
	struct instance **v, *found = NULL;
	size_t n = supervisor_list(rc->sv, env, app, &v);
	/* The newest serving incarnation first: a rollout may briefly have two of one slot. */
	for (size_t k = 0; k < n; k++) {
		const struct instance_status *st = instance_status(v[k]);
		if (strcmp(st->id, id) || st->state == INST_STOPPING)
			continue;
		if (!found || st->release > instance_status(found)->release)
			found = v[k];
	}
	free(v);
	return found;
}


int reconciler_cancel(struct reconciler *rc, const char *env, const char *app, int *version, struct err *e)
{
	struct app_rt *rt = rt_find(rc, env, app, false);
	int target = rt ? model_json_int(rt->doc, "target", 0) : 0;
	*version = target;
	if (!target)
		return err_set(e, ERR_CONFLICT, "no rollout is in progress for %s/%s", env, app);
	if (rt->phase && rt->phase_version == target) {
		oneoff_detach(rt->phase, true);
		rt->phase = NULL;
	}
	char reason[200];
	snprintf(reason, sizeof reason, "cancelled (berth deploy --cancel)");
	fail_rollout(rc, rt, target, reason, NULL);
	rt->dirty = true;
	schedule(rc);
	return 0;
}

/* ---- queries ---- */

struct oneoffs *reconciler_oneoffs(struct reconciler *rc)
{
	return rc->oneoffs;
}

static int inst_cmp(const void *a, const void *b)
{
	const struct instance_status *x = instance_status(*(struct instance *const *)a);
	const struct instance_status *y = instance_status(*(struct instance *const *)b);
	int c = strcmp(x->process, y->process);
	if (c)
		return c;
	if (x->slot != y->slot)
		return x->slot - y->slot;
	return x->release - y->release;
}

json_t *reconciler_instances(struct reconciler *rc, const char *env, const char *app)
{
	struct instance **v;
	size_t n = supervisor_list(rc->sv, env, app, &v);
	qsort(v, n, sizeof *v, inst_cmp);
	json_t *a = json_array();
	for (size_t k = 0; k < n; k++)
		json_array_append_new(a, instance_to_json(v[k]));
	free(v);
	return a;
}

void reconciler_counts(struct reconciler *rc, const char *env, const char *app, int *running, int *total)
{
	struct instance **v;
	size_t n = supervisor_list(rc->sv, env, app, &v);
	*running = 0;
	for (size_t k = 0; k < n; k++)
		if (instance_status(v[k])->state == INST_RUNNING)
			(*running)++;
	*total = (int)n;
	free(v);
}

bool reconciler_volume_in_use(struct reconciler *rc, const char *env, const char *app, const char *vol)
{
	struct app_rt *rt = rt_find(rc, env, app, false);
	if (!rt)
		return false;
	struct instance **v;
	size_t n = supervisor_list(rc->sv, env, app, &v);
	bool used = false;
	for (size_t k = 0; k < n && !used; k++) {
		const struct instance_status *s = instance_status(v[k]);
		for (int j = 0; j < 4 && !used; j++) {
			struct rel *r = rt->rels[j];
			if (!r || r->version != s->release)
				continue;
			const struct process_spec *p = manifest_process(&r->m, s->process);
			for (size_t q = 0; p && q < p->nvolumes; q++)
				if (!strcmp(p->volumes[q].name, vol))
					used = true;
		}
	}
	free(v);
	return used;
}
