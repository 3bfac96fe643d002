/* reconcile/rollout: how a rollout ends (see internal.h). Records the outcome in the store
 * (the app document's target/release/config and the release's status, with compare-and-swap),
 * finishes the rollout's waiters, counts deploys and raises deploy alerts; a failure first stops
 * the new release's instances. Never decides what should run: the next pass does that. */
#include "reconcile/internal.h"
#include "model/model.h"
#include "supervise/supervise.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "metrics/metrics.h"
#include "alerts/alerts.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int app_update(struct reconciler *rc, struct app_rt *rt, app_edit_fn fn, void *arg, struct err *e)
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

void set_release_status(struct reconciler *rc, struct app_rt *rt, struct store_txn *t, int version,
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

void rollout_finish(struct reconciler *rc, struct app_rt *rt, int version, bool ok, const char *reason,
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

void fail_rollout(struct reconciler *rc, struct app_rt *rt, int version, const char *reason, json_t *logs)
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
