/* reconcile: desired state (store) vs actual (supervisor) for every app (see reconcile.h).
 * Runs on the daemon loop. Work is coalesced: store changes and instance events mark an app
 * dirty and schedule one pass; a 100 ms tick checks rollout deadlines.
 *
 * This file: the app runtime records and their release cache, waiters, the pass (plan inputs,
 * starting instances, deadlines), store and supervisor events, cron runs, life and queries.
 * The other rooms are listed in internal.h. Writes the store only through app_update()
 * (rollout.c); reaches processes only through the supervisor and the one-offs. */
#include "reconcile/internal.h"
#include "driver/docker.h"
#include "registry/registry.h"
#include "reconcile/plan.h"
#include "model/model.h"
#include "supervise/supervise.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "endpoints/endpoints.h"
#include "oneoff/oneoff.h"
#include "reconcile/cron.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 100
#define CONVERGE_SLACK_MS 5000   /* a converge waiter gives up this long after the slowest deadline */

static void on_sv_event(void *arg, struct instance *inst, enum inst_event ev, const char *detail);
static const char *converged_message(struct reconciler *rc, struct app_rt *rt, bool stopped);

/* ---- app runtime records ---- */

struct app_rt *rt_find(struct reconciler *rc, const char *env, const char *app, bool create)
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
	json_decref(r->images);
	free(r->dir);
	free(r->phase);
	free(r);
}

struct rel *rel_get(struct reconciler *rc, struct app_rt *rt, int version, struct err *e)
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
	json_t *im = json_object_get(doc, "images");
	r->images = json_is_object(im) ? json_incref(im) : NULL;
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

json_t *event_new(const char *type, const char *msg)
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

void broadcast(struct app_rt *rt, json_t *ev)
{
	for (struct rc_waiter *w = rt->waiters, *next; w; w = next) {
		next = w->next;
		w->fn(w->arg, ev, false);
	}
	json_decref(ev);
}

void waiter_done(struct rc_waiter *w, json_t *done)
{
	waiter_unlink(w);
	w->fn(w->arg, done, true);
	json_decref(done);
	free(w);
}

json_t *done_event(bool ok, int version, const char *msg, const char *error, json_t *logs)
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

/* ---- starting instances ---- */

/* Start slot of process p (or, with found, adopt what an earlier server left running). */
static struct instance *start_or_adopt(struct reconciler *rc, struct app_rt *rt, struct rel *r,
				       const struct process_spec *p, int slot, int gen,
				       const struct driver_found *found, struct err *e)
{
	size_t nv = 0, nvols = 0;
	struct driver_volume *vols = NULL;
	char **vars = release_vars(rt, r, p->name, &nv);
	int rcode = proc_volumes(rc, rt, r, p, &vars, &nv, &vols, &nvols, e);
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
			.restart = true, .stop_grace_ms = p->stop_grace_ms, .image = rel_image(r, p),
			.driver = rel_image(r, p) ? "docker" : "process", .pull = "missing",
			.volumes = vols, .nvolumes = nvols,
		};
		if (spec.image)
			spec.cwd = NULL;
		inst = found ? supervisor_adopt(rc->sv, &spec, found, e) : supervisor_start(rc->sv, &spec, e);
	}
	for (size_t j = 0; j < nv; j++)
		free(vars[j]);
	free(vars);
	volumes_free(vols, nvols);
	return inst;
}

static struct instance *start_instance(struct reconciler *rc, struct app_rt *rt, struct rel *r,
				       const struct process_spec *p, int slot, int gen, struct err *e)
{
	return start_or_adopt(rc, rt, r, p, slot, gen, NULL, e);
}

/* ---- adoption ---- */

static int formation_of(json_t *doc, const struct process_spec *p)
{
	json_t *f = json_object_get(json_object_get(doc, "formation"), p->name);
	return json_is_integer(f) ? (int)json_integer_value(f) : p->instances;
}


/* An instance an earlier server left running (a container, or any instance an in-place
 * upgrade handed over): keep it when it is exactly what
 * should run now (the live release, a slot within the formation, the current restart
 * generation, not already taken by another), so that nothing runs twice; the driver removes
 * what is not kept. */
static bool adopt_found(void *arg, const struct driver_found *f)
{
	struct reconciler *rc = arg;
	struct err e = ERR_INIT;
	struct app_rt *rt = rt_find(rc, f->env, f->app, false);
	if (!rt || !rt->doc || !strcmp(model_json_str(rt->doc, "state", "running"), "stopped"))
		return false;
	int live = model_json_int(rt->doc, "release", 0);
	if (!live || f->release != live)
		return false;
	struct rel *r = rel_get(rc, rt, live, &e);
	const struct process_spec *p = r ? manifest_process(&r->m, f->process) : NULL;
	if (!p || f->slot < 1 || f->slot > formation_of(rt->doc, p) ||
	    strcmp(f->driver ? f->driver : "", rel_image(r, p) ? "docker" : "process"))
		return false;
	/* the generation the slot wants: the process's, or the slot's own after `restart web.2` */
	json_t *g = json_object_get(json_object_get(rt->doc, "gens"), p->name);
	int want = json_is_integer(g) ? (int)json_integer_value(g) : 0;
	char slot_key[80];
	snprintf(slot_key, sizeof slot_key, "%s.%d", p->name, f->slot);
	json_t *sg = json_object_get(json_object_get(rt->doc, "slot_gens"), slot_key);
	if (json_is_integer(sg) && json_integer_value(sg) > want)
		want = (int)json_integer_value(sg);
	if (f->gen != want)
		return false;
	struct instance **v;
	size_t n = supervisor_list(rc->sv, f->env, f->app, &v);
	bool taken = false;
	for (size_t k = 0; k < n && !taken; k++) {
		const struct instance_status *s = instance_status(v[k]);
		taken = !strcmp(s->process, f->process) && s->slot == f->slot;
	}
	free(v);
	if (taken)
		return false;
	if (!start_or_adopt(rc, rt, r, p, f->slot, f->gen, f, &e)) {
		log_warn("%s/%s %s.%d: could not adopt %s: %s", f->env, f->app, f->process, f->slot, f->id, e.msg);
		return false;
	}
	log_info("%s/%s %s.%d (v%d): adopted %s, left running by the previous server", f->env, f->app, f->process,
		 f->slot, f->release, f->id);
	return true;
}

static void adopt_leftovers(struct reconciler *rc)
{
	for (size_t k = 0; k < drivers_count(rc->drivers); k++) {
		struct driver *d = drivers_at(rc->drivers, k);
		struct err e = ERR_INIT;
		if (d->adopt && d->adopt(d, rc->owner_tag, adopt_found, rc, &e) < 0)
			log_error("driver %s: finding what the previous server left: %s", d->name, e.msg);
	}
}

/* ---- the pass ---- */

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

void schedule(struct reconciler *rc)
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
		.env = env, .app = app, .kind = kind, .release = env_.release, .command = job->command, .cwd = env_.image ? NULL : env_.cwd, .image = env_.image,
		.volumes = env_.volumes, .nvolumes = env_.nvolumes,
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

/* Registry credentials for the docker driver's pulls (berth registry login). */
static int registry_auth(void *arg, const char *ref, char **out)
{
	struct reconciler *rc = arg;
	struct err e = ERR_INIT;
	if (registry_auth_for(rc->st, rc->data_dir, ref, out, &e) < 0) {
		log_warn("pulling %s without credentials: %s", ref, e.msg);
		*out = NULL;
		return -1;
	}
	return 0;
}

struct reconciler *reconciler_new(uv_loop_t *loop, struct store *st, struct drivers *drivers,
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
	rc->drivers = drivers;
	rc->owner_tag = xstrdup(owner_tag);
	rc->sv = supervisor_new(loop, drivers, logs, eps, owner_tag, on_sv_event, rc);
	struct driver *dk = drivers_get(drivers, "docker");
	if (dk)
		driver_docker_set_auth(dk, registry_auth, rc);
	rc->oneoffs = oneoffs_new(loop, drivers, logs, owner_tag);
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
	adopt_leftovers(rc);
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

static void shutdown_common(struct reconciler *rc, json_t *notes, void (*done)(void *), void *arg);

void reconciler_shutdown(struct reconciler *rc, void (*done)(void *), void *arg)
{
	shutdown_common(rc, NULL, done, arg);
}

void reconciler_handover(struct reconciler *rc, json_t *notes, void (*done)(void *), void *arg)
{
	shutdown_common(rc, notes, done, arg);
}

void reconciler_predecessor(struct reconciler *rc, json_t *notes)
{
	supervisor_predecessor(rc->sv, notes);
}

bool reconciler_busy(struct reconciler *rc, char *why, size_t n)
{
	for (struct app_rt *rt = rc->apps; rt; rt = rt->next) {
		int target = model_json_int(rt->doc, "target", 0);
		if (target || rt->phase || rt->waiters) {
			snprintf(why, n, "%s/%s: %s", rt->env, rt->app,
				 target ? "a rollout is in progress" : rt->phase ? "its release phase runs"
								      : "a change is being waited on");
			return true;
		}
	}
	struct instance **v;
	size_t ni = supervisor_list(rc->sv, NULL, NULL, &v);
	bool busy = false;
	for (size_t k = 0; k < ni && !busy; k++) {
		const struct instance_status *st = instance_status(v[k]);
		if (st->state == INST_STOPPING) {
			snprintf(why, n, "%s/%s: %s (v%d) is stopping", st->env, st->app, st->id, st->release);
			busy = true;
		}
	}
	free(v);
	if (busy)
		return true;
	json_t *list = oneoffs_list(rc->oneoffs, NULL, NULL);
	size_t k;
	json_t *o;
	json_array_foreach(list, k, o) {
		const char *kind = json_string_value(json_object_get(o, "kind"));
		if (kind && (!strcmp(kind, "build") || !strcmp(kind, "release") || !strncmp(kind, "cron.", 5))) {
			snprintf(why, n, "%s/%s: %s runs", json_string_value(json_object_get(o, "env")),
				 json_string_value(json_object_get(o, "app")),
				 json_string_value(json_object_get(o, "id")));
			busy = true;
			break;
		}
	}
	json_decref(list);
	return busy;
}

void reconciler_end_oneoffs(struct reconciler *rc, void (*done)(void *), void *arg)
{
	oneoffs_shutdown(rc->oneoffs, done, arg);
}

static void shutdown_common(struct reconciler *rc, json_t *notes, void (*done)(void *), void *arg)
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
	if (notes)
		supervisor_handover(rc->sv, notes, on_sv_shutdown, rc);
	else
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
	free(rc->owner_tag);
	/* rc itself is freed by the caller after the loop has closed the timers. */
}

/* ---- queries ---- */

struct oneoffs *reconciler_oneoffs(struct reconciler *rc)
{
	return rc->oneoffs;
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

struct driver *reconciler_driver(struct reconciler *rc, const char *name)
{
	return drivers_get(rc->drivers, name);
}
