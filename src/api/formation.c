/* api/formation: what runs of a deployed app: scale, rolling restart (of the app, a process or
 * one instance), stop and start. Each edits the app document with compare-and-swap, then
 * streams until what runs matches. Also the lookups "which processes does this app have"
 * that routes and logs share (api_app_manifest, api_manifest_process).
 * Generations: "gens" {"web": g} restarts a whole process; "slot_gens" {"web.2": g} one slot
 * of it; a slot wants the larger of the two (reconcile/plan.h, plan_want_gen). */
#include "api/internal.h"
#include "model/model.h"
#include <stdlib.h>
#include <string.h>

static json_t *release_manifest(struct api *a, json_t *app, int v, struct err *e)
{
	char *key = model_release_key(model_json_str(app, "env", ""), model_json_str(app, "name", ""), v);
	json_t *rel = model_get(a->st, key, NULL, e);
	free(key);
	if (!rel)
		return NULL;
	json_t *m = json_incref(json_object_get(rel, "manifest"));
	json_decref(rel);
	return m;
}

/* The manifest of the release that is (or is becoming) live. */
static json_t *current_manifest(struct api *a, json_t *app, struct err *e)
{
	int v = model_json_int(app, "target", 0);
	if (!v)
		v = model_json_int(app, "release", 0);
	if (!v) {
		err_set(e, ERR_CONFLICT, "the app has no release yet: deploy it first");
		return NULL;
	}
	return release_manifest(a, app, v, e);
}

json_t *api_app_manifest(struct api *a, json_t *app, struct err *e)
{
	int v = model_json_int(app, "release", 0);
	if (!v)
		v = model_json_int(app, "target", 0);
	if (!v)
		v = model_json_int(app, "next_version", 1) - 1;
	return v > 0 ? release_manifest(a, app, v, e) : NULL;
}

json_t *api_manifest_process(json_t *manifest, const char *name, struct buf *names)
{
	size_t k;
	json_t *p, *found = NULL;
	json_array_foreach(json_object_get(manifest, "processes"), k, p) {
		const char *n = model_json_str(p, "name", "");
		if (!found && !strcmp(n, name))
			found = p;
		if (names)
			buf_addf(names, "%s%s", k ? ", " : "", n);
	}
	return found;
}

/* "unknown process "x" (the app has: web, worker)" into e. */
static int unknown_process(json_t *m, const char *name, struct err *e)
{
	struct buf names = BUF_INIT;
	api_manifest_process(m, name, &names);
	err_set(e, ERR_INVALID, "unknown process \"%s\" (the app has: %s)", name, buf_str(&names));
	buf_free(&names);
	return -1;
}

/* Scale and restart change nothing on a stopped app: `start` brings it back as it was. */
static int refuse_stopped(json_t *app, struct err *e)
{
	if (strcmp(model_json_str(app, "state", "running"), "stopped"))
		return 0;
	const char *name = model_json_str(app, "name", ""), *env = model_json_str(app, "env", "");
	bool prod = !strcmp(env, "production");
	return err_set(e, ERR_CONFLICT, "%s is stopped: berth start --app %s%s%s first", name, name,
		       prod ? "" : " --env ", prod ? "" : env);
}

/* Apply edit to the app document under CAS; on success start a converge stream. Only a lost
 * compare-and-swap is retried; an edit that refuses answers at once. */
typedef int (*edit_fn)(json_t *app, json_t *manifest, json_t *arg, struct err *e);

static void change_app(struct ctx *c, edit_fn edit, json_t *arg, const char *what)
{
	struct err e = ERR_INIT;
	char *key = model_app_key(c->env, c->app);
	int r = -1;
	for (int attempt = 0; attempt < 5; attempt++) {
		int64_t rev;
		json_t *app = api_app_doc(c->api, c->env, c->app, &rev, &e);
		if (!app)
			break;
		json_t *m = current_manifest(c->api, app, &e);
		r = m ? edit(app, m, arg, &e) : -1;
		json_decref(m);
		if (r < 0) {
			json_decref(app);
			break;
		}
		struct store_txn *t = store_txn_new();
		store_txn_cmp_rev(t, key, rev);
		char *s = model_dump(app);
		store_txn_put(t, key, s);
		free(s);
		r = store_txn_commit(c->api->st, t, NULL, &e);
		store_txn_free(t);
		json_decref(app);
		if (r == 0 || e.code != ERR_CONFLICT || attempt == 4)
			break;
		r = -1;
	}
	free(key);
	if (r < 0) {
		api_fail(c->req, &e);
		return;
	}
	json_t *first = json_array();
	json_array_append_new(first, json_pack("{s:s, s:s}", "event", "info", "message", what));
	api_stream_wait(c, RC_WAIT_CONVERGE, 0, first);
}

static int edit_scale(json_t *app, json_t *m, json_t *want, struct err *e)
{
	if (refuse_stopped(app, e) < 0)
		return -1;
	json_t *f = json_object_get(app, "formation");
	if (!json_is_object(f)) {
		f = json_object();
		json_object_set_new(app, "formation", f);
	}
	const char *k;
	json_t *v;
	json_object_foreach(want, k, v) {
		if (!api_manifest_process(m, k, NULL))
			return unknown_process(m, k, e);
		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000)
			return err_set(e, ERR_INVALID, "instances of %s must be a whole number from 0 to 1000", k);
		json_object_set(f, k, v);
	}
	return 0;
}

void api_scale(struct ctx *c)
{
	json_t *body = api_body_json(c->req);
	if (!body)
		return;
	json_t *want = json_object_get(body, "formation");
	if (!json_is_object(want) || json_object_size(want) == 0) {
		json_decref(body);
		http_respond_error(c->req, 400, "expected {\"formation\": {\"web\": 3}}");
		return;
	}
	struct buf what = BUF_INIT;
	const char *k;
	json_t *v;
	json_object_foreach(want, k, v)
		buf_addf(&what, "%s%s=%lld", what.len ? " " : "scaling to ", k,
			 json_is_integer(v) ? (long long)json_integer_value(v) : -1LL);
	change_app(c, edit_scale, want, buf_str(&what));
	buf_free(&what);
	json_decref(body);
}

static json_t *object_member(json_t *parent, const char *name)
{
	json_t *o = json_object_get(parent, name);
	if (!json_is_object(o)) {
		o = json_object();
		json_object_set_new(parent, name, o);
	}
	return o;
}

/* The instances of process p in effect: the app's formation, else the manifest's default. */
static json_int_t instances_of(json_t *app, json_t *p)
{
	const char *name = model_json_str(p, "name", "");
	json_t *n = json_object_get(json_object_get(app, "formation"), name);
	return json_is_integer(n) ? json_integer_value(n) : json_integer_value(json_object_get(p, "instances"));
}

/* Restart one slot: its generation becomes one above what it wants now. */
static int restart_slot(json_t *app, json_t *p, json_int_t slot, struct err *e)
{
	const char *name = model_json_str(p, "name", "");
	json_int_t n = instances_of(app, p);
	if (slot > n && n == 0)
		return err_set(e, ERR_INVALID, "no instance %s.%lld: %s is scaled to 0", name,
			       (long long)slot, name);
	if (slot > n)
		return err_set(e, ERR_INVALID, "no instance %s.%lld: %s runs %lld (%s.1 to %s.%lld)", name,
			       (long long)slot, name, (long long)n, name, name, (long long)n);
	char id[80];
	snprintf(id, sizeof id, "%s.%lld", name, (long long)slot);
	json_t *slots = object_member(app, "slot_gens");
	json_int_t g = model_json_int(json_object_get(app, "gens"), name, 0);
	json_int_t sg = model_json_int(slots, id, 0);
	json_object_set_new(slots, id, json_integer((sg > g ? sg : g) + 1));
	return 0;
}

/* Restart a whole process: its generation goes above every slot's, whose own are dropped. */
static void restart_process(json_t *app, const char *name)
{
	json_t *gens = object_member(app, "gens");
	json_int_t g = model_json_int(gens, name, 0);
	json_t *slots = json_object_get(app, "slot_gens");
	size_t nl = strlen(name);
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(slots, tmp, k, v) {
		if (strncmp(k, name, nl) || k[nl] != '.')
			continue;
		if (json_is_integer(v) && json_integer_value(v) > g)
			g = json_integer_value(v);
		json_object_del(slots, k);
	}
	json_object_set_new(gens, name, json_integer(g + 1));
}

static int edit_restart(json_t *app, json_t *m, json_t *arg, struct err *e)
{
	if (refuse_stopped(app, e) < 0)
		return -1;
	const char *only = json_string_value(json_object_get(arg, "process"));
	json_t *slot = json_object_get(arg, "slot");
	if (only) {
		json_t *p = api_manifest_process(m, only, NULL);
		if (!p)
			return unknown_process(m, only, e);
		if (slot)
			return restart_slot(app, p, json_integer_value(slot), e);
	}
	size_t k;
	json_t *p;
	json_array_foreach(json_object_get(m, "processes"), k, p) {
		const char *n = model_json_str(p, "name", "");
		if (!only || !strcmp(only, n))
			restart_process(app, n);
	}
	return 0;
}

/* Body: {} (every process), {"process": "web"}, or {"process": "web", "slot": 2} (web.2). */
void api_restart(struct ctx *c)
{
	json_t *body = api_body_json(c->req);
	if (!body)
		return;
	json_t *p = json_object_get(body, "process");
	json_t *slot = json_object_get(body, "slot");
	const char *bad = NULL;
	if (p && !json_is_null(p) && !json_is_string(p))
		bad = "\"process\" must be a process name";
	else if (slot && !json_is_null(slot) && (!json_is_string(p) || !json_is_integer(slot) ||
						  json_integer_value(slot) < 1 || json_integer_value(slot) > 10000))
		bad = "\"slot\" must be an instance number from 1 to 10000, with \"process\"";
	if (bad) {
		json_decref(body);
		http_respond_error(c->req, 400, bad);
		return;
	}
	if (json_is_null(slot))
		json_object_del(body, "slot");
	char what[120] = "rolling restart";
	if (json_is_integer(slot))
		snprintf(what, sizeof what, "restarting %s.%lld", json_string_value(p),
			 (long long)json_integer_value(slot));
	change_app(c, edit_restart, body, what);
	json_decref(body);
}

static int edit_state(json_t *app, json_t *m, json_t *arg, struct err *e)
{
	json_object_set(app, "state", arg);
	return 0;
}

void api_stopstart(struct ctx *c, bool stop)
{
	json_t *st = json_string(stop ? "stopped" : "running");
	change_app(c, edit_state, st, stop ? "stopping all instances" : "starting instances");
	json_decref(st);
}
