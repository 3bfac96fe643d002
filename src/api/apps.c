/* api/apps: environments and apps: listing, one app, creating one, destroying one. */
#include "api/internal.h"
#include "model/model.h"
#include "logs/logs.h"
#include "util/fsutil.h"
#include "util/timeutil.h"
#include "util/log.h"
#include "oneoff/oneoff.h"
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *api_app_doc(struct api *a, const char *env, const char *app, int64_t *rev, struct err *e)
{
	char *key = model_app_key(env, app);
	json_t *doc = model_get(a->st, key, rev, e);
	free(key);
	if (!doc && e->code == ERR_NOTFOUND)
		err_set(e, ERR_NOTFOUND, "no app \"%s\" in env \"%s\"", app, env);
	return doc;
}

int api_need_app(struct ctx *c)
{
	struct err e = ERR_INIT;
	json_t *doc = api_app_doc(c->api, c->env, c->app, NULL, &e);
	if (!doc) {
		api_fail(c->req, &e);
		return -1;
	}
	json_decref(doc);
	return 0;
}

/* The formation in effect: the release's snapshot (manifest defaults) with the app's scale
 * over it, for the release that is (or is becoming) live. */
json_t *api_formation(struct api *a, json_t *doc)
{
	int v = model_json_int(doc, "target", 0);
	if (!v)
		v = model_json_int(doc, "release", 0);
	json_t *out = json_object();
	if (v) {
		struct err e = ERR_INIT;
		char *key = model_release_key(model_json_str(doc, "env", ""), model_json_str(doc, "name", ""), v);
		json_t *rel = model_get(a->st, key, NULL, &e);
		free(key);
		json_t *f = json_object_get(rel, "formation");
		if (json_is_object(f))
			json_object_update(out, f);
		json_decref(rel);
	}
	json_t *scale = json_object_get(doc, "formation");
	const char *k;
	json_t *n;
	json_object_foreach(scale, k, n)
		if (json_object_get(out, k))
			json_object_set(out, k, n);
	return out;
}

/* The app's state as a user would say it: new (no release yet), failed (its only releases
 * failed), stopped, deploying, starting, crashing, degraded (fewer healthy than wanted),
 * running. */
static const char *app_status(struct api *a, json_t *doc, json_t *formation, int *wanted_out)
{
	const char *env = model_json_str(doc, "env", ""), *app = model_json_str(doc, "name", "");
	int live = model_json_int(doc, "release", 0), target = model_json_int(doc, "target", 0);
	int wanted = 0;
	const char *k;
	json_t *n;
	json_object_foreach(formation, k, n)
		wanted += json_is_integer(n) ? (int)json_integer_value(n) : 0;
	*wanted_out = wanted;
	if (!strcmp(model_json_str(doc, "state", "running"), "stopped"))
		return "stopped";
	if (target || api_deploy_building(a, env, app))
		return "deploying";
	if (!live) {
		int last = model_json_int(doc, "next_version", 1) - 1;
		return last > 0 ? "failed" : "new";
	}
	json_t *insts = reconciler_instances(a->rc, env, app);
	int running = 0, starting = 0, crashing = 0;
	size_t i;
	json_t *in;
	json_array_foreach(insts, i, in) {
		const char *st = model_json_str(in, "state", "");
		if (!strcmp(st, "running"))
			running++;
		else if (!strcmp(st, "starting"))
			starting++;
		else if (!strcmp(st, "backoff"))
			crashing++;
	}
	json_decref(insts);
	if (crashing)
		return "crashing";
	if (running >= wanted)
		return "running";
	return starting ? "starting" : "degraded";
}

static json_t *app_summary(struct api *a, json_t *doc)
{
	const char *env = model_json_str(doc, "env", ""), *app = model_json_str(doc, "name", "");
	int running, total, wanted;
	reconciler_counts(a->rc, env, app, &running, &total);
	json_t *formation = api_formation(a, doc);
	const char *status = app_status(a, doc, formation, &wanted);
	json_t *j = json_object();
	json_object_set_new(j, "status", json_string(status));
	json_object_set_new(j, "env", json_string(env));
	json_object_set_new(j, "name", json_string(app));
	json_object_set_new(j, "release", json_integer(model_json_int(doc, "release", 0)));
	json_object_set_new(j, "target_release", json_integer(model_json_int(doc, "target", 0)));
	json_object_set_new(j, "state", json_string(model_json_str(doc, "state", "running")));
	json_object_set_new(j, "formation", formation);
	json_object_set_new(j, "instances", json_pack("{s:i, s:i, s:i}", "running", running, "total", total, "wanted",
						      !strcmp(status, "stopped") ? 0 : wanted));
	json_object_set_new(j, "created_at", json_string(model_json_str(doc, "created_at", "")));
	return j;
}

/* Every app document, optionally of one env. */
static int each_app(struct api *a, const char *env, void (*fn)(struct api *, json_t *, void *), void *arg,
		    struct err *e)
{
	struct store_list l;
	if (store_list(a->st, "/envs/", &l, e) < 0)
		return -1;
	for (size_t k = 0; k < l.n; k++) {
		char en[64], ap[64];
		if (model_parse_app_key(l.items[k].key, en, ap) < 0)
			continue;
		if (env && strcmp(env, en))
			continue;
		char *akey = model_app_key(en, ap);
		bool is_app = !strcmp(akey, l.items[k].key);
		free(akey);
		if (!is_app)
			continue;
		json_t *doc = json_loads(l.items[k].value, 0, NULL);
		if (doc)
			fn(a, doc, arg);
		json_decref(doc);
	}
	store_list_free(&l);
	return 0;
}

static void collect_app(struct api *a, json_t *doc, void *arg)
{
	json_array_append_new(arg, app_summary(a, doc));
}

void api_apps(struct ctx *c)
{
	const char *env = http_req_query(c->req, "env");
	json_t *arr = json_array();
	struct err e = ERR_INIT;
	if (each_app(c->api, env && *env ? env : NULL, collect_app, arr, &e) < 0) {
		json_decref(arr);
		api_fail(c->req, &e);
		return;
	}
	http_respond_json(c->req, 200, json_pack("{s:o}", "apps", arr));
}

static void count_env(struct api *a, json_t *doc, void *arg)
{
	json_t *envs = arg;
	const char *env = model_json_str(doc, "env", "");
	json_t *n = json_object_get(envs, env);
	json_object_set_new(envs, env, json_integer(n ? json_integer_value(n) + 1 : 1));
}

void api_envs(struct ctx *c)
{
	struct err e = ERR_INIT;
	json_t *counts = json_object();
	if (each_app(c->api, NULL, count_env, counts, &e) < 0) {
		json_decref(counts);
		api_fail(c->req, &e);
		return;
	}
	struct store_list l;
	json_t *arr = json_array();
	if (store_list(c->api->st, "/envs/", &l, &e) == 0) {
		for (size_t k = 0; k < l.n; k++) {
			const char *name = l.items[k].key + 6;
			if (strchr(name, '/'))
				continue;
			json_t *n = json_object_get(counts, name);
			json_array_append_new(arr, json_pack("{s:s, s:i}", "name", name, "apps",
							      n ? (int)json_integer_value(n) : 0));
		}
		store_list_free(&l);
	}
	json_decref(counts);
	http_respond_json(c->req, 200, json_pack("{s:o}", "envs", arr));
}

void api_app_get(struct ctx *c)
{
	struct err e = ERR_INIT;
	json_t *doc = api_app_doc(c->api, c->env, c->app, NULL, &e);
	if (!doc) {
		api_fail(c->req, &e);
		return;
	}
	json_t *j = app_summary(c->api, doc);
	json_t *keys = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(doc, "config"), k, v)
		json_array_append_new(keys, json_string(k));
	json_object_set_new(j, "config_keys", keys);
	json_t *routes = json_array();
	struct store_list l;
	if (store_list(c->api->st, "/routes/", &l, &e) == 0) {
		for (size_t i = 0; i < l.n; i++) {
			json_t *r = json_loads(l.items[i].value, 0, NULL);
			if (r && !strcmp(model_json_str(r, "env", ""), c->env) && !strcmp(model_json_str(r, "app", ""), c->app)) {
				const char *path = model_json_str(r, "path", "/");
				char *txt = xasprintf("%s%s", model_json_str(r, "host", ""), strcmp(path, "/") ? path : "");
				json_array_append_new(routes, json_string(txt));
				free(txt);
			}
			json_decref(r);
		}
		store_list_free(&l);
	}
	json_object_set_new(j, "routes", routes);
	int live = model_json_int(doc, "release", 0);
	if (live) {
		char *key = model_release_key(c->env, c->app, live);
		json_t *rel = model_get(c->api->st, key, NULL, &e);
		free(key);
		const char *builder = model_json_str(json_object_get(rel, "build"), "builder", NULL);
		if (builder)
			json_object_set_new(j, "builder", json_string(builder));
		json_decref(rel);
	}
	json_object_set_new(j, "oneoffs", oneoffs_list(reconciler_oneoffs(c->api->rc), c->env, c->app));
	json_object_set_new(j, "maintenance", json_boolean(json_is_true(json_object_get(doc, "maintenance"))));
	http_respond_json(c->req, 200, j);
	json_decref(doc);
}

/* POST /v1/envs/E/apps {"name": A}: an app with no release yet. Config and routes can be
 * set before its first deploy, which takes them. */
void api_app_create(struct ctx *c)
{
	struct err e = ERR_INIT;
	json_t *body = api_body_json(c->req);
	if (!body)
		return;
	const char *name = json_string_value(json_object_get(body, "name"));
	if (!name || !name_valid(name)) {
		json_decref(body);
		http_respond_error(c->req, 400, "\"name\" must be an app name: [a-z0-9][a-z0-9-]*, at most 63 characters");
		return;
	}
	char app[64];
	snprintf(app, sizeof app, "%s", name);
	json_decref(body);
	char ts[40];
	time_format_rfc3339(time_now_us(), ts, sizeof ts);
	char *akey = model_app_key(c->env, app), *ekey = model_env_key(c->env);
	json_t *doc = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:{}, s:{}, s:i, s:{}}", "env", c->env, "name", app,
				"created_at", ts, "release", 0, "target", 0, "state", "running", "formation", "gens",
				"next_version", 1, "config");
	char *ds = model_dump(doc);
	json_decref(doc);
	struct store_txn *t = store_txn_new();
	store_txn_cmp_rev(t, akey, 0);
	store_txn_put(t, akey, ds);
	struct store_kv ekv;
	int has_env = store_get(c->api->st, ekey, &ekv, &e);
	if (has_env == 0) {
		store_kv_free(&ekv);
	} else if (has_env == 1) {
		json_t *edoc = json_pack("{s:s, s:s}", "name", c->env, "created_at", ts);
		char *es = model_dump(edoc);
		json_decref(edoc);
		store_txn_cmp_rev(t, ekey, 0);
		store_txn_put(t, ekey, es);
		free(es);
	}
	int r = has_env < 0 ? -1 : store_txn_commit(c->api->st, t, NULL, &e);
	store_txn_free(t);
	free(ds);
	free(akey);
	free(ekey);
	if (r < 0) {
		if (e.code == ERR_CONFLICT)
			err_set(&e, ERR_CONFLICT, "app \"%s\" already exists in env \"%s\"", app, c->env);
		api_fail(c->req, &e);
		return;
	}
	char msg[300];
	snprintf(msg, sizeof msg, "created app %s in %s (no release yet: set config and routes now, then deploy)", app,
		 c->env);
	http_respond_json(c->req, 201, json_pack("{s:s, s:s, s:s}", "env", c->env, "name", app, "message", msg));
}

/* Destroying an app (DELETE .../apps/A?confirm=A[&volumes=1][&purge_logs=1]):
 *  1. one transaction removes its desired state: the app, its releases and its routes (so the
 *     reconciler stops its instances and the router forgets it at once);
 *  2. its one-offs are stopped; the answer waits until no instance or one-off is left;
 *  3. then its files go on the work queue: release code and the dependency cache (renamed to
 *     .gc-* first, so a crash leaves only leftovers that the next start removes, see gc.c),
 *     volumes only with volumes=1, logs only with purge_logs=1.
 * A crash between 1 and 3 leaves files of an app the store no longer has: the next start's
 * gc removes code directories of apps that do not exist. */
struct destroy {
	uv_work_t work;
	uv_timer_t timer;
	struct ctx *c;             /* NULL once the client left */
	struct api *api;
	char env[64], app[64];
	bool volumes, purge_logs;
	int64_t deadline_us;
	char *paths[3];            /* code, cache, volumes: removed on the work queue */
	char error[300];
};

static void destroy_abort(struct http_req *r, void *arg)
{
	struct destroy *d = arg;
	d->c = NULL;
}

static void destroy_closed(uv_handle_t *h)
{
	struct destroy *d = h->data;
	for (int k = 0; k < 3; k++)
		free(d->paths[k]);
	struct api *a = d->api;
	free(d);
	api_job_done(a);
}

static void destroy_work(uv_work_t *w)
{
	struct destroy *d = w->data;
	for (int k = 0; k < 3; k++) {
		if (!d->paths[k] || !fs_exists(d->paths[k]))
			continue;
		/* Rename first: a directory is either whole or a .gc-* leftover. */
		char *slash = strrchr(d->paths[k], '/');
		char *tmp = xasprintf("%.*s/.gc-%s-%u", (int)(slash - d->paths[k]), d->paths[k], slash + 1,
				      (unsigned)randombytes_random());
		struct err e = ERR_INIT;
		if (rename(d->paths[k], tmp) < 0 || fs_rm_rf(tmp, &e) < 0) {
			if (!d->error[0])
				snprintf(d->error, sizeof d->error, "removing %s: %s", k == 0 ? "release code" :
					 k == 1 ? "the dependency cache" : "volumes", e.msg[0] ? e.msg : strerror(errno));
		}
		free(tmp);
	}
}

static void destroy_after(uv_work_t *w, int status)
{
	struct destroy *d = w->data;
	if (d->purge_logs) {
		struct err e = ERR_INIT;
		logs_remove_app(d->api->logs, d->env, d->app, &e);
	}
	if (d->c) {
		http_req_on_abort(d->c->req, NULL, NULL);
		char msg[400];
		snprintf(msg, sizeof msg, "destroyed %s/%s: instances stopped, releases, code, config and routes removed%s%s",
			 d->env, d->app, d->volumes ? ", volumes deleted" : " (volumes kept: --volumes deletes them)",
			 d->purge_logs ? ", logs deleted" : " (logs kept: --purge-logs deletes them)");
		json_t *j = json_pack("{s:b, s:s}", "deleted", 1, "message", msg);
		if (d->error[0])
			json_object_set_new(j, "warning", json_string(d->error));
		http_respond_json(d->c->req, 200, j);
	}
	log_info("%s/%s: destroyed%s%s", d->env, d->app, d->error[0] ? "; " : "", d->error);
	uv_close((uv_handle_t *)&d->timer, destroy_closed);
}

static void destroy_poll(uv_timer_t *t)
{
	struct destroy *d = t->data;
	int running, total;
	reconciler_counts(d->api->rc, d->env, d->app, &running, &total);
	json_t *oo = oneoffs_list(reconciler_oneoffs(d->api->rc), d->env, d->app);
	size_t n1 = json_array_size(oo);
	json_decref(oo);
	if ((total || n1) && time_now_us() < d->deadline_us)
		return;
	uv_timer_stop(t);
	d->work.data = d;
	uv_queue_work(d->api->loop, &d->work, destroy_work, destroy_after);
}

void api_app_delete(struct ctx *c)
{
	struct err e = ERR_INIT;
	const char *confirm = http_req_query(c->req, "confirm");
	if (!confirm || strcmp(confirm, c->app)) {
		char msg[200];
		snprintf(msg, sizeof msg, "destroying %s/%s removes its releases, code, config and routes: confirm with "
			 "the app's name (confirm=%s; berth apps destroy %s --confirm %s)", c->env, c->app, c->app, c->app,
			 c->app);
		http_respond_error(c->req, 400, msg);
		return;
	}
	int64_t rev;
	json_t *doc = api_app_doc(c->api, c->env, c->app, &rev, &e);
	if (!doc) {
		api_fail(c->req, &e);
		return;
	}
	json_decref(doc);
	char *key = model_app_key(c->env, c->app);
	char *prefix = xasprintf("%s/", key);
	struct store_txn *t = store_txn_new();
	store_txn_cmp_rev(t, key, rev);
	store_txn_del(t, key);
	store_txn_del_prefix(t, prefix);
	struct store_list l;
	if (store_list(c->api->st, "/routes/", &l, &e) == 0) {
		for (size_t k = 0; k < l.n; k++) {
			json_t *r = json_loads(l.items[k].value, 0, NULL);
			if (r && !strcmp(model_json_str(r, "env", ""), c->env) && !strcmp(model_json_str(r, "app", ""), c->app)) {
				store_txn_cmp_rev(t, l.items[k].key, l.items[k].mod_rev);
				store_txn_del(t, l.items[k].key);
			}
			json_decref(r);
		}
		store_list_free(&l);
	}
	int r = store_txn_commit(c->api->st, t, NULL, &e);
	store_txn_free(t);
	free(prefix);
	free(key);
	if (r < 0) {
		if (e.code == ERR_CONFLICT)
			err_set(&e, ERR_CONFLICT, "%s/%s changed while it was being destroyed; try again", c->env, c->app);
		api_fail(c->req, &e);
		return;
	}
	oneoffs_stop_app(reconciler_oneoffs(c->api->rc), c->env, c->app);
	struct destroy *d = xcalloc(1, sizeof *d);
	d->c = c;
	d->api = c->api;
	snprintf(d->env, sizeof d->env, "%s", c->env);
	snprintf(d->app, sizeof d->app, "%s", c->app);
	const char *vol = http_req_query(c->req, "volumes"), *pl = http_req_query(c->req, "purge_logs");
	d->volumes = vol && !strcmp(vol, "1");
	d->purge_logs = pl && !strcmp(pl, "1");
	d->paths[0] = xasprintf("%s/releases/%s/%s", c->api->data_dir, c->env, c->app);
	d->paths[1] = xasprintf("%s/cache/%s/%s", c->api->data_dir, c->env, c->app);
	if (d->volumes)
		d->paths[2] = xasprintf("%s/volumes/%s/%s", c->api->data_dir, c->env, c->app);
	/* Instances stop within their grace (drained first); give them that and some more. */
	d->deadline_us = time_now_us() + 70LL * 1000000;
	c->api->jobs++;
	uv_timer_init(c->api->loop, &d->timer);
	d->timer.data = d;
	uv_timer_start(&d->timer, destroy_poll, 20, 20);
	http_req_on_abort(c->req, destroy_abort, d);
}
