/* reconcile/phase: the release phase (manifest `release:`), a one-off of the new release that
 * must succeed before any of its instances starts or any old one stops. Starts it, streams its
 * first MiB of output to the deploy's waiters, records its outcome in the release document and
 * fails the rollout when it fails; also cancels a rollout (`berth deploy --cancel`). Never
 * starts or stops an instance itself: the pass and fail_rollout() do. */
#include "reconcile/internal.h"
#include "util/log.h"
#include "model/model.h"
#include "util/buf.h"
#include "oneoff/oneoff.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Record the outcome of version's release phase in its release document. */
static void phase_record(struct reconciler *rc, struct app_rt *rt, int version, const char *state)
{
	struct err e = ERR_INIT;
	char *key = model_release_key(rt->env, rt->app, version);
	if (model_set_field(rc->st, key, "release_phase", json_string(state), NULL, &e) < 0)
		log_warn("%s/%s: recording v%d's release phase: %s", rt->env, rt->app, version, e.msg);
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

bool release_phase_pending(struct reconciler *rc, struct app_rt *rt, struct rel *r)
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
			.cwd = env.image ? NULL : env.cwd, .env_vars = env.vars, .profile = env.profile,
			.image = env.image, .volumes = env.volumes, .nvolumes = env.nvolumes,
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
