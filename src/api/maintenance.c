/* api/maintenance: an app's maintenance mode (Heroku's maintenance:on).
 *   GET  /v1/envs/E/apps/A/maintenance               the state
 *   POST /v1/envs/E/apps/A/maintenance {"on": bool}  turn it on or off (deployer)
 * Both answer {"env","app","maintenance","hosts","message"} (POST adds "changed"); "hosts"
 * are the router's routes to the app now (stored and default), as HOST or HOST/PATH.
 *
 * The state is the app document's "maintenance" (true/false; absent is off), written with
 * compare-and-swap so that a deploy, scale or rollout outcome written meanwhile is kept, and
 * kept by them in turn (they edit the document they read). routes_sync follows it into the
 * endpoints table; the router answers the app's hosts with its maintenance page (503). Nothing
 * here touches the instances: they keep running and being checked, deploys go on, and the
 * flag stays until it is turned off. A POST answers once every router thread routes with a
 * table that has the new state (bounded by MAINT_ADOPT_MS), so a script can rely on it. */
#include "api/internal.h"
#include "endpoints/endpoints.h"
#include "model/model.h"
#include "util/timeutil.h"
#include <stdlib.h>
#include <string.h>

#define MAINT_ADOPT_MS 2000    /* longest wait for the router threads to adopt the change */
#define MAINT_POLL_MS 1

/* The routes to env/app in the table now, as "host" or "host/path" (new reference). */
static json_t *app_hosts(struct api *a, const char *env, const char *app)
{
	json_t *hosts = json_array();
	if (!a->eps)
		return hosts;
	const struct ep_snapshot *s = endpoints_current(a->eps);
	for (size_t k = 0; k < s->nroutes; k++) {
		const struct route *r = &s->routes[k];
		if (strcmp(r->env, env) || strcmp(r->app, app))
			continue;
		json_array_append_new(hosts, r->path_len > 1 ? json_sprintf("%s%s", r->host, r->path)
							      : json_string(r->host));
	}
	return hosts;
}

static json_t *answer(struct api *a, const char *env, const char *app, bool on, int changed)
{
	json_t *j = json_pack("{s:s, s:s, s:b, s:o}", "env", env, "app", app, "maintenance", on, "hosts",
			      app_hosts(a, env, app));
	const char *tail = "";
	if (on && changed)
		tail = ": its hosts answer 503 with the maintenance page; its instances keep running";
	else if (on && changed < 0)
		tail = ": its hosts answer 503 with the maintenance page";
	else if (!on && changed > 0)
		tail = ": its hosts are served by the app again";
	json_object_set_new(j, "message", json_sprintf("Maintenance mode %s %s for %s/%s%s",
						       changed == 0 ? "was already" : "is", on ? "on" : "off",
						       env, app, tail));
	if (changed >= 0)
		json_object_set_new(j, "changed", json_boolean(changed));
	return j;
}

/* Set the flag in the app document. 0 and *changed, or -1 with e. */
static int set_flag(struct api *a, const char *env, const char *app, bool on, bool *changed, struct err *e)
{
	char *key = model_app_key(env, app);
	int r = model_set_field(a->st, key, "maintenance", json_boolean(on), changed, e);
	free(key);
	if (r < 0 && e->code == ERR_NOTFOUND)
		err_set(e, ERR_NOTFOUND, "no app \"%s\" in env \"%s\"", app, env);
	else if (r < 0 && e->code == ERR_CONFLICT)
		err_set(e, ERR_CONFLICT, "%s/%s kept changing while maintenance mode was being set; try again", env, app);
	return r;
}

/* ---- answering once the router threads route with the new table ---- */

struct adopt_wait {
	uv_timer_t timer;
	struct api *api;
	struct http_req *req;      /* NULL once the client left */
	json_t *answer;
	uint64_t version;
	int64_t deadline_us;
};

static void wait_abort(struct http_req *r, void *arg)
{
	struct adopt_wait *w = arg;
	w->req = NULL;
}

static void wait_closed(uv_handle_t *h)
{
	struct adopt_wait *w = h->data;
	struct api *a = w->api;
	json_decref(w->answer);
	free(w);
	api_job_done(a);
}

static void wait_poll(uv_timer_t *t)
{
	struct adopt_wait *w = t->data;
	if (w->req && !endpoints_adopted_all(w->api->eps, w->version) && time_now_us() < w->deadline_us)
		return;
	uv_timer_stop(t);
	if (w->req) {
		http_req_on_abort(w->req, NULL, NULL);
		http_respond_json(w->req, 200, w->answer);
		w->answer = NULL;
	}
	uv_close((uv_handle_t *)&w->timer, wait_closed);
}

static void respond_adopted(struct ctx *c, json_t *j)
{
	struct api *a = c->api;
	uint64_t version = a->eps ? endpoints_current(a->eps)->version : 0;
	if (!a->eps || endpoints_adopted_all(a->eps, version)) {
		http_respond_json(c->req, 200, j);
		return;
	}
	struct adopt_wait *w = xcalloc(1, sizeof *w);
	w->api = a;
	w->req = c->req;
	w->answer = j;
	w->version = version;
	w->deadline_us = time_now_us() + MAINT_ADOPT_MS * 1000LL;
	a->jobs++;
	uv_timer_init(a->loop, &w->timer);
	w->timer.data = w;
	uv_timer_start(&w->timer, wait_poll, MAINT_POLL_MS, MAINT_POLL_MS);
	http_req_on_abort(c->req, wait_abort, w);
}

void api_maintenance(struct ctx *c)
{
	struct err e = ERR_INIT;
	if (!strcmp(c->req->method, "GET")) {
		json_t *doc = api_app_doc(c->api, c->env, c->app, NULL, &e);
		if (!doc) {
			api_fail(c->req, &e);
			return;
		}
		bool on = json_is_true(json_object_get(doc, "maintenance"));
		json_decref(doc);
		http_respond_json(c->req, 200, answer(c->api, c->env, c->app, on, -1));
		return;
	}
	json_t *body = api_body_json(c->req);
	if (!body)
		return;
	json_t *on = json_object_get(body, "on");
	if (!json_is_boolean(on) || json_object_size(body) != 1) {
		json_decref(body);
		http_respond_error(c->req, 400, "expected {\"on\": true} or {\"on\": false}");
		return;
	}
	bool want = json_is_true(on);
	json_decref(body);
	bool changed = false;
	if (set_flag(c->api, c->env, c->app, want, &changed, &e) < 0) {
		api_fail(c->req, &e);
		return;
	}
	/* the store's watch has run: the table already has the new state */
	respond_adopted(c, answer(c->api, c->env, c->app, want, changed));
}
