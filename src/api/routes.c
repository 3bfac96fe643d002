/* api/routes: HTTP routes of the built-in router. Stored routes live under /routes/ in the
 * store (routes_sync feeds them to the router); default routes (APP.ENV.localhost and
 * APP.localhost for production) come from the endpoints table and are listed read-only. */
#include "api/internal.h"
#include "endpoints/endpoints.h"
#include "endpoints/routes_sync.h"
#include "model/model.h"
#include <stdlib.h>
#include <string.h>

static json_t *route_json(const struct route *r)
{
	size_t healthy = r->group ? r->group->n : 0;
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:b, s:I}", "host", r->host, "path", r->path,
			 "env", r->env, "app", r->app, "process", r->process, "strip_prefix", r->strip_prefix,
			 "balance", r->balance == BALANCE_LEAST_CONN ? "least-conn" : "round-robin", "default",
			 r->is_default, "healthy", (json_int_t)healthy);
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
	json_t *clean = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "host", json_object_get(doc, "host"),
				  "path", json_object_get(doc, "path"), "env", json_object_get(doc, "env"), "app",
				  json_object_get(doc, "app"), "process", json_object_get(doc, "process"),
				  "strip_prefix", json_object_get(doc, "strip_prefix"), "balance",
				  json_object_get(doc, "balance"));
	json_decref(doc);
	if (!clean || routes_validate(clean, &e) < 0) {
		json_decref(clean);
		if (!e.msg[0])
			err_set(&e, ERR_INVALID, "expected {\"host\", \"path\", \"env\", \"app\", \"process\"}");
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
