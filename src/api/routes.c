/* api/routes: HTTP routes of the built-in router. Stored routes live under /routes/ in the
 * store (routes_sync feeds them to the router); default routes (APP.ENV.localhost and
 * APP.localhost for production) come from the endpoints table and are listed read-only.
 * A route's "error_pages" (a directory whose 502/503/504.html replace the router's pages for
 * that route; a 404 has no route) is a path on the server: it is checked against the file
 * system when the route is added; if it goes away later the router falls back to the
 * server's pages. */
#include "api/internal.h"
#include "endpoints/endpoints.h"
#include "endpoints/routes_sync.h"
#include "model/model.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ERROR_PAGES_MAX 4096

/* The fields of a route document a client may send; anything else is dropped. */
static const char *const route_fields[] = {"host", "path", "env", "app", "process",
					   "strip_prefix", "balance", "error_pages", NULL};

static json_t *route_json(const struct route *r)
{
	size_t healthy = r->group ? r->group->n : 0;
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s?, s:b, s:I}", "host", r->host, "path",
			 r->path, "env", r->env, "app", r->app, "process", r->process, "strip_prefix",
			 r->strip_prefix, "balance", r->balance == BALANCE_LEAST_CONN ? "least-conn" : "round-robin",
			 "error_pages", r->error_dir, "default", r->is_default, "healthy", (json_int_t)healthy);
}

/* Check doc's "error_pages" (absent or null: none) and normalise it in place (no trailing
 * '/'; null when absent): a string, an absolute path, no NUL, at most 4096 bytes, no ".."
 * component, naming a directory that exists on this machine now. 0, or -1 with e
 * (ERR_INVALID) naming the field. */
static int check_error_pages(json_t *doc, struct err *e)
{
	json_t *v = json_object_get(doc, "error_pages");
	if (!v || json_is_null(v)) {
		json_object_set_new(doc, "error_pages", json_null());
		return 0;
	}
	if (!json_is_string(v))
		return err_set(e, ERR_INVALID, "error_pages must be a string: the absolute path of a "
			       "directory on the server holding 502.html, 503.html, 504.html");
	const char *p = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 0 || strlen(p) != n || p[0] != '/')
		return err_set(e, ERR_INVALID, "error_pages \"%.200s\" must be an absolute path (it is "
			       "a directory on the server)", p);
	if (n > ERROR_PAGES_MAX)
		return err_set(e, ERR_INVALID, "error_pages is %zu bytes long; at most %d", n,
			       ERROR_PAGES_MAX);
	for (const char *d = p; (d = strstr(d, "..")); d += 2)
		if (d[-1] == '/' && (d[2] == '/' || !d[2]))
			return err_set(e, ERR_INVALID, "error_pages \"%.200s\" must not hold \"..\" "
				       "components", p);
	struct stat st;
	if (stat(p, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return err_set(e, ERR_INVALID, "error_pages \"%.200s\" does not exist on the "
				       "server", p);
		return err_set(e, ERR_INVALID, "error_pages \"%.200s\" cannot be used: %s", p,
			       strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return err_set(e, ERR_INVALID, "error_pages \"%.200s\" is not a directory", p);
	while (n > 1 && p[n - 1] == '/')
		n--;
	json_object_set_new(doc, "error_pages", json_stringn(p, n));
	return 0;
}

/* The route's app must exist (404), and once it has a release, the route's process must be
 * one of it with a port (400). *deployed says whether it has a release; 0, or -1 with e. */
static int check_target(struct api *a, json_t *route, bool *deployed, struct err *e)
{
	const char *env = json_string_value(json_object_get(route, "env"));
	const char *app = json_string_value(json_object_get(route, "app"));
	const char *proc = json_string_value(json_object_get(route, "process"));
	json_t *doc = api_app_doc(a, env, app, NULL, e);
	if (!doc) {
		if (e->code == ERR_NOTFOUND)
			err_set(e, ERR_NOTFOUND, "no app %s in env %s: create it first (berth apps create %s "
				"--env %s) or deploy it", app, env, app, env);
		return -1;
	}
	json_t *m = api_app_manifest(a, doc, e);
	json_decref(doc);
	if (!m)
		return e->code ? -1 : 0;
	*deployed = true;
	struct buf names = BUF_INIT;
	json_t *p = api_manifest_process(m, proc, &names);
	int r = 0;
	if (!p)
		r = err_set(e, ERR_INVALID, "%s/%s has no process \"%s\" (it has: %s)", env, app, proc,
			    buf_str(&names));
	else if (!json_is_true(json_object_get(p, "port")))
		r = err_set(e, ERR_INVALID, "%s has no port: only processes with port: true can be routed",
			    proc);
	buf_free(&names);
	json_decref(m);
	return r;
}

void api_routes(struct ctx *c)
{
	json_t *arr = json_array();
	if (c->api->eps) {
		struct ep_snapshot *s = endpoints_current(c->api->eps);
		for (size_t k = 0; k < s->nroutes; k++)
			json_array_append_new(arr, route_json(&s->routes[k]));
	}
	http_respond_json(c->req, 200, json_pack("{s:o}", "routes", arr));
}

void api_route_add(struct ctx *c)
{
	json_t *doc = api_body_json(c->req);
	if (!doc)
		return;
	struct err e = ERR_INIT;
	json_t *clean = json_object();
	for (size_t k = 0; route_fields[k]; k++) {
		json_t *v = json_object_get(doc, route_fields[k]);
		if (v)
			json_object_set(clean, route_fields[k], v);
	}
	json_decref(doc);
	if (routes_validate(clean, &e) < 0 || check_error_pages(clean, &e) < 0) {
		json_decref(clean);
		if (!e.msg[0])
			err_set(&e, ERR_INVALID, "expected {\"host\", \"path\", \"env\", \"app\", \"process\"}");
		api_fail(c->req, &e);
		return;
	}
	const char *env = json_string_value(json_object_get(clean, "env"));
	const char *app = json_string_value(json_object_get(clean, "app"));
	bool deployed = false;
	if (check_target(c->api, clean, &deployed, &e) < 0) {
		json_decref(clean);
		api_fail(c->req, &e);
		return;
	}
	const char *host = json_string_value(json_object_get(clean, "host"));
	const char *path = json_string_value(json_object_get(clean, "path"));
	char *key = routes_key(host, path);
	char *val = model_dump(clean);
	struct store_kv old;
	int existed = store_get(c->api->st, key, &old, &e);
	if (existed == 0)
		store_kv_free(&old);
	int r = existed < 0 ? -1 : store_put(c->api->st, key, val, &e);
	free(key);
	free(val);
	if (r < 0) {
		json_decref(clean);
		api_fail(c->req, &e);
		return;
	}
	json_object_set_new(clean, "replaced", json_boolean(existed == 0));
	/* A route may come before its app's first deploy; say so, since it answers 503 until then. */
	if (!deployed)
		json_object_set_new(clean, "warning", json_sprintf("%s/%s has not been deployed yet: the route "
			"answers 503 until it has a healthy instance", env, app));
	http_respond_json(c->req, existed == 0 ? 200 : 201, clean);
}

void api_route_delete(struct ctx *c)
{
	const char *host = http_req_query(c->req, "host");
	const char *path = http_req_query(c->req, "path");
	if (!host || !*host) {
		http_respond_error(c->req, 400, "pass ?host=HOST[&path=/prefix]");
		return;
	}
	json_t *probe = json_pack("{s:s, s:s, s:s, s:s}", "host", host, "path", path && *path ? path : "/", "env",
				  "x", "app", "x");
	struct err e = ERR_INIT;
	if (routes_validate(probe, &e) < 0) {
		json_decref(probe);
		api_fail(c->req, &e);
		return;
	}
	char *key = routes_key(json_string_value(json_object_get(probe, "host")),
			       json_string_value(json_object_get(probe, "path")));
	json_decref(probe);
	struct store_kv kv;
	int g = store_get(c->api->st, key, &kv, &e);
	if (g == 1) {
		http_respond_error(c->req, 404, "no such route (default routes cannot be removed)");
	} else if (g < 0 || store_del(c->api->st, key, &e) < 0) {
		api_fail(c->req, &e);
	} else {
		store_kv_free(&kv);
		http_respond_json(c->req, 200, json_pack("{s:b}", "deleted", 1));
	}
	free(key);
}
