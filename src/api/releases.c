/* api/releases: creating releases (deploy, config change, rollback all end here), listing
 * them, and the config and rollback verbs. A release is written together with the app's
 * rollout target in one compare-and-swap transaction, so it is never half-recorded.
 * Old releases may have lost their code directory (release_keep, gc.c): the listing says so
 * ("code_kept") and a rollback to one is refused before anything is written. */
#include "api/internal.h"
#include "model/model.h"
#include "util/timeutil.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static json_t *release_doc(struct api *a, const char *env, const char *app, int v, struct err *e)
{
	char *key = model_release_key(env, app, v);
	json_t *d = model_get(a->st, key, NULL, e);
	free(key);
	if (!d && e->code == ERR_NOTFOUND)
		err_set(e, ERR_NOTFOUND, "%s/%s has no release v%d", env, app, v);
	return d;
}

/* Formation snapshot: the app's scale for processes it has, else the manifest default. */
static json_t *formation_for(json_t *app, json_t *manifest)
{
	json_t *out = json_object();
	json_t *f = json_object_get(app, "formation");
	size_t k;
	json_t *p;
	json_array_foreach(json_object_get(manifest, "processes"), k, p) {
		const char *name = model_json_str(p, "name", "");
		json_t *n = json_object_get(f, name);
		json_object_set_new(out, name, json_integer(n ? json_integer_value(n) : model_json_int(p, "instances", 1)));
	}
	return out;
}

int api_release_create(struct api *a, const char *env, const char *app, json_t *fields, struct err *e)
{
	char *akey = model_app_key(env, app), *ekey = model_env_key(env);
	int version = -1;
	char ts[40];
	time_format_rfc3339(time_now_us(), ts, sizeof ts);
	for (int attempt = 0; attempt < 5 && version < 0; attempt++) {
		int64_t rev = 0, erev = 0;
		json_t *doc = model_get(a->st, akey, &rev, e);
		if (!doc && e->code != ERR_NOTFOUND)
			break;
		if (!doc) {
			rev = 0;
			doc = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:{}, s:{}, s:i, s:{}}", "env", env, "name", app,
					"created_at", ts, "release", 0, "target", 0, "state", "running", "formation",
					"gens", "next_version", 1, "config");
		}
		int target = model_json_int(doc, "target", 0);
		if (target) {
			err_set(e, ERR_CONFLICT, "a rollout of v%d is in progress for %s/%s; wait for it to finish", target,
				env, app);
			json_decref(doc);
			break;
		}
		int v = model_json_int(doc, "next_version", 1), live = model_json_int(doc, "release", 0);
		json_t *rel = json_deep_copy(fields);
		json_t *cfg = json_object_get(fields, "config");
		if (!cfg)
			json_object_set(rel, "config", json_object_get(doc, "config"));
		json_object_set_new(rel, "version", json_integer(v));
		json_object_set_new(rel, "created_at", json_string(ts));
		json_object_set_new(rel, "status", json_string("pending"));
		json_object_set_new(rel, "reason", json_null());
		json_object_set_new(rel, "finished_at", json_null());
		if (!json_object_get(rel, "rollback_of"))
			json_object_set_new(rel, "rollback_of", json_null());
		json_t *manifest = json_object_get(rel, "manifest");
		json_object_set_new(rel, "formation", formation_for(doc, manifest));
		json_t *names = json_array();
		size_t k;
		json_t *p;
		json_array_foreach(json_object_get(manifest, "processes"), k, p)
			json_array_append_new(names, json_string(model_json_str(p, "name", "")));
		json_object_set_new(rel, "processes", names);
		struct err pe = ERR_INIT;
		json_t *prev = live ? release_doc(a, env, app, live, &pe) : NULL;
		json_object_set_new(rel, "changes", model_release_changes(prev, rel));
		json_decref(prev);

		json_object_set_new(doc, "next_version", json_integer(v + 1));
		json_object_set_new(doc, "target", json_integer(v));
		json_object_set(doc, "config", json_object_get(rel, "config"));
		struct store_txn *t = store_txn_new();
		store_txn_cmp_rev(t, akey, rev);
		struct store_kv ekv;
		int has_env = store_get(a->st, ekey, &ekv, e);
		if (has_env == 0) {
			erev = ekv.mod_rev;
			store_kv_free(&ekv);
		} else if (has_env == 1) {
			json_t *edoc = json_pack("{s:s, s:s}", "name", env, "created_at", ts);
			char *es = model_dump(edoc);
			store_txn_cmp_rev(t, ekey, 0);
			store_txn_put(t, ekey, es);
			free(es);
			json_decref(edoc);
		}
		(void)erev;
		char *rkey = model_release_key(env, app, v);
		char *rs = model_dump(rel), *ds = model_dump(doc);
		store_txn_cmp_rev(t, rkey, 0);
		store_txn_put(t, rkey, rs);
		store_txn_put(t, akey, ds);
		int r = has_env < 0 ? -1 : store_txn_commit(a->st, t, NULL, e);
		store_txn_free(t);
		free(rkey);
		free(rs);
		free(ds);
		json_decref(rel);
		json_decref(doc);
		if (r == 0)
			version = v;
		else if (e->code != ERR_CONFLICT)
			break;
	}
	free(akey);
	free(ekey);
	return version;
}

/* Is the code directory of release doc still there? seen (may be NULL) caches answers per
 * dir, as many releases share one. */
static bool code_kept(struct ctx *c, json_t *doc, json_t *seen)
{
	const char *dir = model_json_str(doc, "dir", "");
	json_t *known = seen ? json_object_get(seen, dir) : NULL;
	if (known)
		return json_is_true(known);
	bool kept = !api_gc_code_gone(c->api, c->env, c->app, dir);
	if (seen)
		json_object_set_new(seen, dir, json_boolean(kept));
	return kept;
}

static json_t *public_release(struct ctx *c, json_t *doc, json_t *seen)
{
	json_t *j = json_deep_copy(doc);
	json_object_del(j, "manifest");
	json_object_del(j, "dir");
	json_object_set_new(j, "code_kept", json_boolean(code_kept(c, doc, seen)));
	return j;
}

void api_releases(struct ctx *c)
{
	if (api_need_app(c) < 0)
		return;
	struct err e = ERR_INIT;
	char *prefix = model_releases_prefix(c->env, c->app);
	struct store_list l;
	int r = store_list(c->api->st, prefix, &l, &e);
	free(prefix);
	if (r < 0) {
		api_fail(c->req, &e);
		return;
	}
	json_t *arr = json_array(), *seen = json_object();
	for (size_t k = l.n; k-- > 0;) {
		json_t *doc = json_loads(l.items[k].value, 0, NULL);
		if (doc)
			json_array_append_new(arr, public_release(c, doc, seen));
		json_decref(doc);
	}
	json_decref(seen);
	store_list_free(&l);
	http_respond_json(c->req, 200, json_pack("{s:o}", "releases", arr));
}

/* "3", "v3" -> 3; 0 when malformed. */
static int parse_version(const char *s)
{
	if (*s == 'v' || *s == 'V')
		s++;
	if (!*s || strlen(s) > 9)
		return 0;
	for (const char *p = s; *p; p++)
		if (!isdigit((unsigned char)*p))
			return 0;
	return atoi(s);
}

void api_release_get(struct ctx *c, const char *num)
{
	struct err e = ERR_INIT;
	int v = parse_version(num);
	if (v <= 0) {
		http_respond_error(c->req, 400, "a release is named by its number, like 3 or v3");
		return;
	}
	json_t *doc = release_doc(c->api, c->env, c->app, v, &e);
	if (!doc) {
		api_fail(c->req, &e);
		return;
	}
	json_t *j = public_release(c, doc, NULL);
	/* In full: processes with their commands, the release phase and cron jobs (the config is
	 * in the document as in the listing; the CLI masks its values unless --reveal). */
	json_t *m = json_object_get(doc, "manifest");
	json_t *procs = json_array();
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(m, "processes"), i, p) {
		const char *name = model_json_str(p, "name", "");
		json_t *n = json_object_get(json_object_get(doc, "formation"), name);
		json_t *pj = json_pack("{s:s, s:s, s:I, s:b, s:s?, s:s}", "name", name, "command",
				       model_json_str(p, "command", ""), "instances", (json_int_t)(n ? json_integer_value(n) : 0),
				       "port", json_is_true(json_object_get(p, "port")), "profile",
				       model_json_str(p, "profile", NULL), "health",
				       model_json_str(json_object_get(p, "health"), "kind", "none"));
		const char *image = model_json_str(p, "image", NULL);
		if (image)
			json_object_set_new(pj, "image", json_string(image));
		json_array_append_new(procs, pj);
	}
	json_object_set_new(j, "process_details", procs);
	const char *rel_cmd = model_json_str(m, "release", NULL);
	if (rel_cmd)
		json_object_set_new(j, "release_command", json_string(rel_cmd));
	json_t *cron = json_object_get(m, "cron");
	if (cron)
		json_object_set(j, "cron", cron);
	http_respond_json(c->req, 200, j);
	json_decref(doc);
}

/* Start a rollout of the release just created and stream its progress. */
static void stream_rollout(struct ctx *c, int version, const char *what)
{
	char msg[200];
	snprintf(msg, sizeof msg, "created release v%d (%s)", version, what);
	json_t *first = json_array();
	json_t *ev = json_pack("{s:s, s:i, s:s}", "event", "release", "release", version, "message", msg);
	json_array_append_new(first, ev);
	api_stream_wait(c, RC_WAIT_ROLLOUT, version, first);
}

/* A new release from the live one with some fields replaced (config change, rollback). */
static int release_from(struct ctx *c, json_t *base, json_t *config, const char *desc, int rollback_of,
			bool run_release, struct err *e)
{
	json_t *f = json_object();
	if (c->who[0])
		json_object_set_new(f, "by", json_string(c->who));
	if (json_is_object(json_object_get(base, "build")))
		json_object_set(f, "build", json_object_get(base, "build"));
	if (run_release)
		json_object_set_new(f, "run_release", json_true());
	json_object_set_new(f, "description", json_string(desc));
	json_object_set(f, "code", json_object_get(base, "code"));
	json_object_set(f, "dir", json_object_get(base, "dir"));
	json_object_set(f, "manifest", json_object_get(base, "manifest"));
	if (json_is_object(json_object_get(base, "images")))
		json_object_set(f, "images", json_object_get(base, "images"));   /* pinned: the same images */
	json_object_set(f, "config", config);
	if (rollback_of)
		json_object_set_new(f, "rollback_of", json_integer(rollback_of));
	int v = api_release_create(c->api, c->env, c->app, f, e);
	json_decref(f);
	return v;
}

void api_rollback(struct ctx *c)
{
	struct err e = ERR_INIT;
	json_t *body = api_body_json(c->req);
	if (!body)
		return;
	json_t *app = api_app_doc(c->api, c->env, c->app, NULL, &e);
	if (!app) {
		json_decref(body);
		api_fail(c->req, &e);
		return;
	}
	int live = model_json_int(app, "release", 0);
	json_decref(app);
	int to = 0;
	bool run_release = json_is_true(json_object_get(body, "run_release"));
	json_t *jv = json_object_get(body, "version");   /* borrowed from body */
	bool given = jv && !json_is_null(jv);
	if (json_is_integer(jv))
		to = (int)json_integer_value(jv);
	else if (json_is_string(jv))
		to = parse_version(json_string_value(jv));
	else if (jv && !json_is_null(jv)) {
		json_decref(body);
		http_respond_error(c->req, 400, "\"version\" must be a release number like 3 or \"v3\"");
		return;
	}
	json_decref(body);
	if (given && to <= 0) {
		http_respond_error(c->req, 400, "\"version\" must be a release number like 3 or \"v3\"");
		return;
	}
	if (!live) {
		http_respond_error(c->req, 409, "nothing to roll back: the app has no live release");
		return;
	}
	json_t *base = NULL;
	if (to) {
		if (to == live) {
			http_respond_error(c->req, 409, "that release is already live");
			return;
		}
		base = release_doc(c->api, c->env, c->app, to, &e);
		if (!base) {
			api_fail(c->req, &e);
			return;
		}
	} else {
		/* The newest release before the live one that was live itself. */
		for (int v = live - 1; v > 0 && !base; v--) {
			json_t *d = release_doc(c->api, c->env, c->app, v, &e);
			const char *st = model_json_str(d, "status", "");
			if (d && (!strcmp(st, "superseded") || !strcmp(st, "active")))
				base = d;
			else
				json_decref(d);
		}
		if (!base) {
			http_respond_error(c->req, 409, "no earlier release was ever live; nothing to roll back to");
			return;
		}
		to = model_json_int(base, "version", 0);
	}
	if (!code_kept(c, base, NULL)) {
		char msg[300];
		snprintf(msg, sizeof msg, "the code of v%d was removed (only the last %d releases keep their code; "
			 "release_keep in server.yaml); deploy it again", to, c->api->conf->release_keep);
		json_decref(base);
		http_respond_error(c->req, 409, msg);
		return;
	}
	char desc[64];
	snprintf(desc, sizeof desc, "Rollback to v%d", to);
	int v = release_from(c, base, json_object_get(base, "config"), desc, to, run_release, &e);
	json_decref(base);
	if (v < 0) {
		api_fail(c->req, &e);
		return;
	}
	api_gc_request(c->api, c->env, c->app);   /* before the stream, which may end c */
	stream_rollout(c, v, desc);
}

/* GET .../config: {"config": what `config set` gave, "vars": what an instance really gets,
 * each {"key","value","source"}: "config" (config set), "berth.yaml" (its config: defaults),
 * "build" (the builder's, e.g. NODE_ENV, and the PATH it puts first) or "berth" (BERTH_*;
 * PORT and BERTH_INSTANCE differ per instance and are left out)}. The live release (or the
 * one rolling out) decides the defaults. */
void api_config_get(struct ctx *c)
{
	struct err e = ERR_INIT;
	json_t *app = api_app_doc(c->api, c->env, c->app, NULL, &e);
	if (!app) {
		api_fail(c->req, &e);
		return;
	}
	json_t *cfg = json_object_get(app, "config");
	if (!json_is_object(cfg))
		cfg = NULL;
	int v = model_json_int(app, "target", 0);
	if (!v)
		v = model_json_int(app, "release", 0);
	json_t *rel = v ? release_doc(c->api, c->env, c->app, v, &e) : NULL;
	json_t *vars = json_array();
	const char *k;
	json_t *val;
	json_object_foreach(json_object_get(json_object_get(rel, "manifest"), "config"), k, val)
		if (!cfg || !json_object_get(cfg, k))
			json_array_append_new(vars, json_pack("{s:s, s:O, s:s}", "key", k, "value", val, "source", "berth.yaml"));
	json_t *build = json_object_get(rel, "build");
	json_object_foreach(json_object_get(build, "env"), k, val)
		if (!cfg || !json_object_get(cfg, k))
			json_array_append_new(vars, json_pack("{s:s, s:O, s:s}", "key", k, "value", val, "source", "build"));
	json_t *path = json_object_get(build, "path");
	if (json_array_size(path) && (!cfg || !json_object_get(cfg, "PATH"))) {
		struct buf b = BUF_INIT;
		size_t i;
		json_t *p;
		json_array_foreach(path, i, p)
			buf_addf(&b, "$RELEASE/%s:", json_string_value(p));
		buf_adds(&b, "$PATH");
		json_array_append_new(vars, json_pack("{s:s, s:s, s:s}", "key", "PATH", "value", buf_str(&b), "source", "build"));
		buf_free(&b);
		json_array_foreach(path, i, p)
			if (!strcmp(json_string_value(p), ".berth/venv/bin") && (!cfg || !json_object_get(cfg, "VIRTUAL_ENV")))
				json_array_append_new(vars, json_pack("{s:s, s:s, s:s}", "key", "VIRTUAL_ENV", "value",
								      "$RELEASE/.berth/venv", "source", "build"));
	}
	json_object_foreach(cfg, k, val)
		json_array_append_new(vars, json_pack("{s:s, s:O, s:s}", "key", k, "value", val, "source", "config"));
	char num[16];
	snprintf(num, sizeof num, "%d", v);
	const char *bk[] = {"BERTH_APP", c->app, "BERTH_ENV", c->env, "BERTH_RELEASE", num};
	for (size_t i = 0; v && i < 6; i += 2)
		json_array_append_new(vars, json_pack("{s:s, s:s, s:s}", "key", bk[i], "value", bk[i + 1], "source", "berth"));
	json_decref(rel);
	http_respond_json(c->req, 200, json_pack("{s:O, s:o}", "config", cfg ? cfg : json_object(), "vars", vars));
	json_decref(app);
}

/* Store cfg as the config of an app that has no release (compare-and-swap on its revision). */
static int app_set_config(struct ctx *c, json_t *app, json_t *cfg, struct err *e)
{
	int64_t rev;
	json_t *doc = api_app_doc(c->api, c->env, c->app, &rev, e);
	if (!doc)
		return -1;
	if (model_json_int(doc, "release", 0) || model_json_int(doc, "target", 0)) {
		json_decref(doc);
		return err_set(e, ERR_CONFLICT, "%s/%s was deployed meanwhile; set the config again", c->env, c->app);
	}
	json_object_set(doc, "config", cfg);
	char *key = model_app_key(c->env, c->app), *s = model_dump(doc);
	json_decref(doc);
	struct store_txn *t = store_txn_new();
	store_txn_cmp_rev(t, key, rev);
	store_txn_put(t, key, s);
	int r = store_txn_commit(c->api->st, t, NULL, e);
	store_txn_free(t);
	free(key);
	free(s);
	if (r < 0 && e->code == ERR_CONFLICT)
		err_set(e, ERR_CONFLICT, "%s/%s changed meanwhile; set the config again", c->env, c->app);
	return r;
}

static bool config_key_valid(const char *k)
{
	if (!*k || strlen(k) > 255 || !(isalpha((unsigned char)*k) || *k == '_'))
		return false;
	for (const char *p = k; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return true;
}

void api_config_set(struct ctx *c)
{
	struct err e = ERR_INIT;
	json_t *body = api_body_json(c->req);
	if (!body)
		return;
	json_t *set = json_object_get(body, "set"), *unset = json_object_get(body, "unset");
	if ((set && !json_is_object(set)) || (unset && !json_is_array(unset)) || (!set && !unset)) {
		json_decref(body);
		http_respond_error(c->req, 400, "expected {\"set\": {KEY: \"value\"}, \"unset\": [KEY]}");
		return;
	}
	json_t *app = api_app_doc(c->api, c->env, c->app, NULL, &e);
	if (!app) {
		json_decref(body);
		api_fail(c->req, &e);
		return;
	}
	json_t *cfg = json_deep_copy(json_object_get(app, "config"));
	if (!json_is_object(cfg)) {
		json_decref(cfg);
		cfg = json_object();
	}
	struct buf desc = BUF_INIT;
	const char *k;
	json_t *v;
	char bad[400] = "";
	json_object_foreach(set, k, v) {
		if (!config_key_valid(k))
			snprintf(bad, sizeof bad, "config key \"%.200s\" must match [A-Za-z_][A-Za-z0-9_]*", k);
		else if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
			snprintf(bad, sizeof bad, "config value of %.200s must be a string without NUL bytes", k);
		json_object_set(cfg, k, v);
		buf_addf(&desc, "%s%s", desc.len ? ", " : "Set ", k);
	}
	size_t i;
	json_array_foreach(unset, i, v) {
		if (!json_is_string(v) || !config_key_valid(json_string_value(v))) {
			snprintf(bad, sizeof bad, "\"unset\" must list config keys");
			break;
		}
		json_object_del(cfg, json_string_value(v));
		buf_addf(&desc, "%s%s", i == 0 ? (desc.len ? "; unset " : "Unset ") : ", ", json_string_value(v));
	}
	json_decref(body);
	if (bad[0]) {
		json_decref(cfg);
		json_decref(app);
		buf_free(&desc);
		http_respond_error(c->req, 400, bad);
		return;
	}
	int live = model_json_int(app, "release", 0);
	if (json_equal(cfg, json_object_get(app, "config")) ||
	    (!json_object_size(cfg) && !json_object_get(app, "config"))) {
		/* Nothing changes: no release, no restart. */
		json_decref(cfg);
		json_decref(app);
		buf_free(&desc);
		json_t *done = json_pack("{s:s, s:b, s:s, s:b}", "event", "done", "ok", 1, "message",
					 "no change: the config already has these values; no new release, nothing restarted",
					 "unchanged", 1);
		api_stream_finish(c, done);
		return;
	}
	if (!live) {
		/* No release yet: the first deploy takes the config. */
		struct err ue = ERR_INIT;
		int r = app_set_config(c, app, cfg, &ue);
		json_decref(cfg);
		json_decref(app);
		if (r < 0) {
			buf_free(&desc);
			api_fail(c->req, &ue);
			return;
		}
		char msg[300];
		snprintf(msg, sizeof msg, "%s: saved; %s/%s has no release yet, its first deploy takes it", buf_str(&desc),
			 c->env, c->app);
		buf_free(&desc);
		api_stream_finish(c, json_pack("{s:s, s:b, s:s}", "event", "done", "ok", 1, "message", msg));
		return;
	}
	json_decref(app);
	json_t *base = release_doc(c->api, c->env, c->app, live, &e);
	int nv = base ? release_from(c, base, cfg, buf_str(&desc), 0, false, &e) : -1;
	json_decref(base);
	json_decref(cfg);
	if (nv < 0) {
		buf_free(&desc);
		api_fail(c->req, &e);
		return;
	}
	api_gc_request(c->api, c->env, c->app);
	stream_rollout(c, nv, buf_str(&desc));
	buf_free(&desc);
}

/* POST .../cancel: stop the rollout in progress; the live release stays. */
void api_cancel(struct ctx *c)
{
	struct err e = ERR_INIT;
	json_t *app = api_app_doc(c->api, c->env, c->app, NULL, &e);
	if (!app) {
		api_fail(c->req, &e);
		return;
	}
	int live = model_json_int(app, "release", 0);
	json_decref(app);
	int v = 0;
	int builds = api_deploy_cancel(c->api, c->env, c->app);
	if (reconciler_cancel(c->api->rc, c->env, c->app, &v, &e) < 0) {
		if (builds) {
			char msg[200];
			snprintf(msg, sizeof msg, "cancelled %d deploy%s in its build stage%s%s", builds, builds == 1 ? "" : "s",
				 live ? "; the live release stays" : "", "");
			http_respond_json(c->req, 200, json_pack("{s:b, s:i, s:s}", "cancelled", 1, "builds", builds, "message", msg));
			return;
		}
		err_set(&e, ERR_CONFLICT, "nothing to cancel: no build or rollout is in progress for %s/%s", c->env, c->app);
		api_fail(c->req, &e);
		return;
	}
	char msg[200];
	if (live)
		snprintf(msg, sizeof msg, "cancelled the rollout of v%d; v%d stays live", v, live);
	else
		snprintf(msg, sizeof msg, "cancelled the rollout of v%d (the app had no live release)", v);
	http_respond_json(c->req, 200, json_pack("{s:b, s:i, s:s}", "cancelled", 1, "release", v, "message", msg));
}
