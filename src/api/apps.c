/* api/apps: environments and apps: listing, one app, deleting an app. */
#include "api/internal.h"
#include "model/model.h"
#include "logs/logs.h"
#include "util/fsutil.h"
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

static json_t *app_summary(struct api *a, json_t *doc)
{
	const char *env = model_json_str(doc, "env", ""), *app = model_json_str(doc, "name", "");
	int running, total;
	reconciler_counts(a->rc, env, app, &running, &total);
	json_t *j = json_object();
	json_object_set_new(j, "env", json_string(env));
	json_object_set_new(j, "name", json_string(app));
	json_object_set_new(j, "release", json_integer(model_json_int(doc, "release", 0)));
	json_object_set_new(j, "target_release", json_integer(model_json_int(doc, "target", 0)));
	json_object_set_new(j, "state", json_string(model_json_str(doc, "state", "running")));
	json_object_set_new(j, "formation", api_formation(a, doc));
	json_object_set_new(j, "instances", json_pack("{s:i, s:i}", "running", running, "total", total));
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
	http_respond_json(c->req, 200, app_summary(c->api, doc));
	json_decref(doc);
}

/* Deleting an app removes its desired state in one transaction (the reconciler then stops
 * its instances) and its logs; volumes stay unless ?volumes=1, and so does its release code
 * (instances may still be stopping in it; a later app of the same name prunes it). */
void api_app_delete(struct ctx *c)
{
	struct err e = ERR_INIT;
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
	int r = store_txn_commit(c->api->st, t, NULL, &e);
	store_txn_free(t);
	free(prefix);
	free(key);
	if (r < 0) {
		api_fail(c->req, &e);
		return;
	}
	/* Release directories are left for instances still stopping; a later deploy of the same
	 * name reuses identical code directories. Logs are removed now. */
	struct err e2 = ERR_INIT;
	logs_remove_app(c->api->logs, c->env, c->app, &e2);
	const char *vol = http_req_query(c->req, "volumes");
	if (vol && !strcmp(vol, "1")) {
		char *vdir = xasprintf("%s/volumes/%s/%s", c->api->data_dir, c->env, c->app);
		fs_rm_rf(vdir, &e2);
		free(vdir);
	}
	http_respond_json(c->req, 200, json_pack("{s:b}", "deleted", 1));
}
