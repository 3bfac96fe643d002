/* api/formation: what runs of a deployed app: scale, rolling restart, stop and start.
 * Each edits the app document with compare-and-swap, then streams until what runs matches. */
#include "api/internal.h"
#include "model/model.h"
#include <stdlib.h>
#include <string.h>

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
	char *key = model_release_key(model_json_str(app, "env", ""), model_json_str(app, "name", ""), v);
	json_t *rel = model_get(a->st, key, NULL, e);
	free(key);
	if (!rel)
		return NULL;
	json_t *m = json_incref(json_object_get(rel, "manifest"));
	json_decref(rel);
	return m;
}

static bool has_process(json_t *manifest, const char *name, struct buf *names)
{
	size_t k;
	json_t *p;
	bool found = false;
	json_array_foreach(json_object_get(manifest, "processes"), k, p) {
		const char *n = model_json_str(p, "name", "");
		if (!strcmp(n, name))
			found = true;
		if (names)
			buf_addf(names, "%s%s", k ? ", " : "", n);
	}
	return found;
}

/* Apply edit to the app document under CAS; on success start a converge stream. */
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
		if (!m) {
			json_decref(app);
			break;
		}
		r = edit(app, m, arg, &e);
		json_decref(m);
		if (r == 0) {
			struct store_txn *t = store_txn_new();
			store_txn_cmp_rev(t, key, rev);
			char *s = model_dump(app);
			store_txn_put(t, key, s);
			free(s);
			r = store_txn_commit(c->api->st, t, NULL, &e);
			store_txn_free(t);
		}
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
	json_t *f = json_object_get(app, "formation");
	if (!json_is_object(f)) {
		f = json_object();
		json_object_set_new(app, "formation", f);
	}
	const char *k;
	json_t *v;
	json_object_foreach(want, k, v) {
		struct buf names = BUF_INIT;
		if (!has_process(m, k, &names)) {
			err_set(e, ERR_INVALID, "unknown process \"%s\" (the app has: %s)", k, buf_str(&names));
			buf_free(&names);
			return -1;
		}
		buf_free(&names);
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

static int edit_restart(json_t *app, json_t *m, json_t *arg, struct err *e)
{
	const char *only = json_string_value(json_object_get(arg, "process"));
	if (only) {
		struct buf names = BUF_INIT;
		if (!has_process(m, only, &names)) {
			err_set(e, ERR_INVALID, "unknown process \"%s\" (the app has: %s)", only, buf_str(&names));
			buf_free(&names);
			return -1;
		}
		buf_free(&names);
	}
	json_t *gens = json_object_get(app, "gens");
	if (!json_is_object(gens)) {
		gens = json_object();
		json_object_set_new(app, "gens", gens);
	}
	size_t k;
	json_t *p;
	json_array_foreach(json_object_get(m, "processes"), k, p) {
		const char *n = model_json_str(p, "name", "");
		if (only && strcmp(only, n))
			continue;
		json_object_set_new(gens, n, json_integer(model_json_int(gens, n, 0) + 1));
	}
	return 0;
}

void api_restart(struct ctx *c)
{
	json_t *body = api_body_json(c->req);
	if (!body)
		return;
	json_t *p = json_object_get(body, "process");
	if (p && !json_is_null(p) && !json_is_string(p)) {
		json_decref(body);
		http_respond_error(c->req, 400, "\"process\" must be a process name");
		return;
	}
	change_app(c, edit_restart, body, "rolling restart");
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
