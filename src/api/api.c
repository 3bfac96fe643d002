/* api: listener, authentication, routing of /v1 paths to handlers, error mapping. */
#include "api/internal.h"
#include "manifest/manifest.h"
#include "util/log.h"
#include "util/fsutil.h"
#include "metrics/metrics.h"
#include "util/timeutil.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int api_status_of(const struct err *e)
{
	switch (e->code) {
	case ERR_INVALID: return 400;
	case ERR_AUTH: return 401;
	case ERR_FORBIDDEN: return 403;
	case ERR_NOTFOUND: return 404;
	case ERR_CONFLICT: return 409;
	case ERR_TOOBIG: return 413;
	case ERR_UNAVAILABLE: return 503;
	default: return 500;
	}
}

void api_fail(struct http_req *r, const struct err *e)
{
	int status = api_status_of(e);
	if (status >= 500)
		log_error("%s %s: %s", r->method, r->path, e->msg);
	http_respond_error(r, status, e->msg[0] ? e->msg : "internal error");
}

json_t *api_body_json(struct http_req *r)
{
	if (r->body.len == 0)
		return json_object();
	json_error_t je;
	json_t *j = json_loadb(r->body.p, r->body.len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		char msg[300];
		snprintf(msg, sizeof msg, "malformed JSON body at line %d column %d: %s", je.line, je.column, je.text);
		http_respond_error(r, 400, msg);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		http_respond_error(r, 400, "the JSON body must be an object");
		return NULL;
	}
	return j;
}

static void ctx_free(struct ctx *c)
{
	for (int k = 0; k < c->nseg; k++)
		free(c->seg[k]);
	free(c);
}

/* Split "/v1/envs/E/apps/A/..." into segments after "v1". -1 when not a /v1 path or too deep. */
static int split_path(struct ctx *c, const char *path)
{
	if (strncmp(path, "/v1/", 4) && strcmp(path, "/v1"))
		return -1;
	const char *p = path + 3;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, "/");
		if (c->nseg == 8)
			return -1;
		c->seg[c->nseg++] = xstrndup(p, n);
		p += n;
	}
	return 0;
}

static bool is(const struct ctx *c, int k, const char *s)
{
	return k < c->nseg && !strcmp(c->seg[k], s);
}

static int need(struct http_req *r, struct ctx *c, enum role role)
{
	if (c->role >= role)
		return 0;
	http_respond_error(r, 403, role == ROLE_ADMIN ? "this needs an admin token"
						     : "this token may only read (role viewer)");
	return -1;
}

static bool method(struct http_req *r, const char *m)
{
	return !strcmp(r->method, m);
}

static void not_allowed(struct http_req *r)
{
	http_respond_error(r, 405, "method not allowed here");
}

/* Route /v1/envs/E/apps/A/... (segments 4.. after the app). */
static void route_app(struct ctx *c)
{
	struct http_req *r = c->req;
	bool get = method(r, "GET"), post = method(r, "POST"), del = method(r, "DELETE");
	if (!name_valid(c->seg[1]) || !name_valid(c->seg[3])) {
		http_respond_error(r, 400, "env and app names must match [a-z0-9][a-z0-9-]* (at most 63 characters)");
		return;
	}
	snprintf(c->env, sizeof c->env, "%s", c->seg[1]);
	snprintf(c->app, sizeof c->app, "%s", c->seg[3]);
	if (!get && need(r, c, ROLE_DEPLOYER) < 0)
		return;
	const char *what = c->nseg > 4 ? c->seg[4] : "";
	if (c->nseg == 4) {
		if (get) api_app_get(c);
		else if (del) api_app_delete(c);
		else not_allowed(r);
	} else if (!strcmp(what, "deploys") && c->nseg == 5) {
		if (post) api_deploy(c); else not_allowed(r);
	} else if (!strcmp(what, "releases") && c->nseg == 5) {
		if (get) api_releases(c); else not_allowed(r);
	} else if (!strcmp(what, "releases") && c->nseg == 6) {
		if (get) api_release_get(c, c->seg[5]); else not_allowed(r);
	} else if (!strcmp(what, "rollback") && c->nseg == 5) {
		if (post) api_rollback(c); else not_allowed(r);
	} else if (!strcmp(what, "config") && c->nseg == 5) {
		if (get) api_config_get(c);
		else if (post) api_config_set(c);
		else not_allowed(r);
	} else if (!strcmp(what, "scale") && c->nseg == 5) {
		if (post) api_scale(c); else not_allowed(r);
	} else if (!strcmp(what, "restart") && c->nseg == 5) {
		if (post) api_restart(c); else not_allowed(r);
	} else if ((!strcmp(what, "stop") || !strcmp(what, "start")) && c->nseg == 5) {
		if (post) api_stopstart(c, !strcmp(what, "stop")); else not_allowed(r);
	} else if (!strcmp(what, "instances") && c->nseg == 5) {
		if (get) api_instances(c); else not_allowed(r);
	} else if (!strcmp(what, "instances") && c->nseg == 7 && !strcmp(c->seg[6], "exec")) {
		if (post) api_exec(c, c->seg[5]); else not_allowed(r);
	} else if (!strcmp(what, "run") && c->nseg == 5) {
		if (post) api_run(c); else not_allowed(r);
	} else if (!strcmp(what, "cron") && c->nseg == 5) {
		if (get) api_cron_list(c); else not_allowed(r);
	} else if (!strcmp(what, "cron") && c->nseg == 7 && !strcmp(c->seg[6], "run")) {
		if (post) api_cron_run(c, c->seg[5]); else not_allowed(r);
	} else if (!strcmp(what, "cancel") && c->nseg == 5) {
		if (post) api_cancel(c); else not_allowed(r);
	} else if (!strcmp(what, "logs") && c->nseg == 5) {
		if (get) api_logs(c); else not_allowed(r);
	} else if (!strcmp(what, "volumes") && c->nseg == 5) {
		if (get) api_volumes(c); else not_allowed(r);
	} else if (!strcmp(what, "volumes") && c->nseg == 6) {
		if (del) api_volume_delete(c, c->seg[5]); else not_allowed(r);
	} else if (!strcmp(what, "maintenance") && c->nseg == 5) {
		if (get || post) api_maintenance(c); else not_allowed(r);
	} else {
		http_respond_error(r, 404, "no such API path");
	}
}

static void route(struct ctx *c)
{
	struct http_req *r = c->req;
	if (is(c, 0, "envs") && c->nseg == 1) {
		if (method(r, "GET")) api_envs(c); else not_allowed(r);
	} else if (is(c, 0, "apps") && c->nseg == 1) {
		if (method(r, "GET")) api_apps(c); else not_allowed(r);
	} else if (is(c, 0, "envs") && is(c, 2, "alerts") && c->nseg == 3) {
		api_env_alerts(c);
	} else if (is(c, 0, "envs") && is(c, 2, "apps") && c->nseg == 3) {
		if (!name_valid(c->seg[1]))
			http_respond_error(r, 400, "env names must match [a-z0-9][a-z0-9-]* (at most 63 characters)");
		else if (!method(r, "POST"))
			not_allowed(r);
		else if (need(r, c, ROLE_DEPLOYER) == 0) {
			snprintf(c->env, sizeof c->env, "%s", c->seg[1]);
			api_app_create(c);
		}
	} else if (is(c, 0, "envs") && is(c, 2, "apps") && c->nseg >= 4) {
		route_app(c);
	} else if (is(c, 0, "router") && is(c, 1, "logs") && c->nseg == 2) {
		if (!method(r, "GET")) {
			not_allowed(r);
			return;
		}
		snprintf(c->env, sizeof c->env, "%s", API_SYSTEM_ENV);
		snprintf(c->app, sizeof c->app, "router");
		api_logs(c);
	} else if (is(c, 0, "routes") && c->nseg == 1) {
		if (method(r, "GET"))
			api_routes(c);
		else if (need(r, c, ROLE_DEPLOYER) < 0)
			return;
		else if (method(r, "POST"))
			api_route_add(c);
		else if (method(r, "DELETE"))
			api_route_delete(c);
		else
			not_allowed(r);
	} else if (is(c, 0, "debug") && is(c, 1, "clock") && c->nseg == 2) {
		if (!method(r, "POST"))
			not_allowed(r);
		else if (need(r, c, ROLE_ADMIN) == 0)
			api_debug_clock(c);
	} else if (is(c, 0, "tokens") && c->nseg <= 2) {
		if (need(r, c, ROLE_ADMIN) < 0)
			return;
		if (c->nseg == 1 && method(r, "GET")) api_tokens(c);
		else if (c->nseg == 1 && method(r, "POST")) api_token_new(c);
		else if (c->nseg == 2 && method(r, "DELETE")) api_token_delete(c, c->seg[1]);
		else not_allowed(r);
	} else if (is(c, 0, "registries") && c->nseg <= 2) {
		if (need(r, c, ROLE_ADMIN) < 0)
			return;
		if (c->nseg == 1 && method(r, "GET")) api_registries(c);
		else if (c->nseg == 1 && method(r, "POST")) api_registry_login(c);
		else if (c->nseg == 2 && method(r, "DELETE")) api_registry_logout(c, c->seg[1]);
		else not_allowed(r);
	} else {
		http_respond_error(r, 404, "no such API path");
	}
}

static int is_deploy_path(const struct ctx *c)
{
	return c->nseg == 5 && is(c, 0, "envs") && is(c, 2, "apps") && is(c, 4, "deploys");
}

static int on_head(void *arg, struct http_req *r, struct http_body_plan *plan)
{
	struct api *a = arg;
	if (!strcmp(r->path, "/healthz"))
		return 0;
	struct ctx *c = xcalloc(1, sizeof *c);
	c->api = a;
	c->req = r;
	r->user = c;
	if (!strcmp(r->path, "/metrics")) {
		c->role = api_auth(a, r, c->who, sizeof c->who);
		if (!c->role) {
			http_respond_error(r, 401, "missing or invalid token: /metrics needs a bearer token (any role)");
			return -1;
		}
		c->is_metrics = true;
		return 0;
	}
	if (split_path(c, r->path) < 0) {
		http_respond_error(r, 404, "no such API path (the API lives under /v1)");
		return -1;
	}
	c->role = api_auth(a, r, c->who, sizeof c->who);
	if (!c->role) {
		http_respond_error(r, 401, http_req_header(r, "Authorization")
						   ? "invalid token"
						   : "missing token: send Authorization: Bearer <token> (set BERTH_TOKEN)");
		return -1;
	}
	if (is_deploy_path(c)) {
		plan->max = (uint64_t)a->conf->upload_limit_bytes;
		plan->spool_dir = a->tmp_dir;
		const char *cl = http_req_header(r, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > plan->max) {
			char msg[200];
			snprintf(msg, sizeof msg, "upload too large: %s bytes, over the server's upload_limit of %lld bytes "
				 "(server.yaml)", cl, (long long)a->conf->upload_limit_bytes);
			http_respond_error(r, 413, msg);
			return -1;
		}
	} else {
		plan->max = 1024 * 1024;
	}
	return 0;
}

static void on_request(void *arg, struct http_req *r)
{
	struct api *a = arg;
	if (!strcmp(r->path, "/healthz")) {
		if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD")) {
			http_respond_error(r, 405, "method not allowed here");
			return;
		}
		/* started_at tells a server from its successor after an in-place upgrade (the pid
		 * stays the same; docs/upgrade.md) */
		char ts[40], body[160];
		int n = snprintf(body, sizeof body, "{\"ok\":true,\"pid\":%d,\"started_at\":\"%s\"}\n", (int)getpid(),
				 time_format_rfc3339(a->started_us, ts, sizeof ts));
		http_respond(r, 200, "application/json", body, (size_t)n, NULL);
		return;
	}
	struct ctx *c = r->user;
	if (!c) {
		http_respond_error(r, 500, "internal error: request without context");
		return;
	}
	if (c->is_metrics) {
		if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD")) {
			http_respond_error(r, 405, "method not allowed here");
			return;
		}
		if (!a->metrics) {
			http_respond_error(r, 404, "metrics are not enabled");
			return;
		}
		struct buf b = BUF_INIT;
		metrics_render(a->metrics, &b);
		http_respond(r, 200, METRICS_CONTENT_TYPE, b.p ? b.p : "", b.len, NULL);
		buf_free(&b);
		return;
	}
	route(c);
}

/* The ctx lives as long as the request; free it when the request ends. */
static void ctx_release(struct http_req *r, void *arg)
{
	(void)r;
	ctx_free(arg);
}

static int on_head_wrap(void *arg, struct http_req *r, struct http_body_plan *plan)
{
	int rc = on_head(arg, r, plan);
	if (r->user)
		http_req_on_end(r, ctx_release, r->user);
	return rc;
}

struct api *api_new(uv_loop_t *loop, const struct api_config *cfg, struct store *st, struct reconciler *rc,
		    struct logs *logs, const struct server_conf *conf, struct err *e)
{
	struct api *a = xcalloc(1, sizeof *a);
	a->loop = loop;
	a->st = st;
	a->rc = rc;
	a->logs = logs;
	a->conf = conf;
	a->data_dir = xstrdup(cfg->data_dir);
	a->tmp_dir = xasprintf("%s/tmp", cfg->data_dir);
	a->eps = cfg->endpoints;
	a->metrics = cfg->metrics;
	if (fs_mkdir_p(a->tmp_dir, 0700, e) < 0) {
		if (cfg->listen_fd)
			close(*cfg->listen_fd);
		api_free(a);
		return NULL;
	}
	a->started_us = cfg->started_us ? cfg->started_us : time_now_us();
	struct http_handlers h = {.on_head = on_head_wrap, .on_request = on_request, .arg = a};
	char errbuf[256] = "";
	if (cfg->listen_fd)
		a->http = http_server_new_fd(loop, *cfg->listen_fd, &h, errbuf, sizeof errbuf);
	else
		a->http = http_server_new(loop, cfg->host, cfg->port, &h, errbuf, sizeof errbuf);
	if (!a->http) {
		err_set(e, ERR_UNAVAILABLE, "API listener on %s:%d: %s", cfg->host, cfg->port, errbuf);
		api_free(a);
		return NULL;
	}
	api_gc_init(a);
	return a;
}

static void api_destroy(struct api *a)
{
	api_gc_free(a);
	free(a->data_dir);
	free(a->tmp_dir);
	free(a);
}

/* Deploys and prunes on the work queue hold the api; the last one to end frees it. */
void api_free(struct api *a)
{
	if (!a || a->closing)
		return;
	a->closing = true;
	if (a->http)
		http_server_close(a->http, NULL, NULL);
	a->http = NULL;
	if (!a->jobs)
		api_destroy(a);
}

bool api_busy(struct api *a, char *why, size_t n)
{
	if (a->builds)
		snprintf(why, n, "a deploy is building");
	else if (a->jobs)
		snprintf(why, n, "%d upload%s or prune%s in progress", a->jobs, a->jobs == 1 ? "" : "s",
			 a->jobs == 1 ? "" : "s");
	return a->builds || a->jobs;
}

void api_drain(struct api *a, uint64_t deadline_ms)
{
	http_server_drain(a->http, deadline_ms);
}

bool api_drained(struct api *a)
{
	return !a->http || http_server_drained(a->http);
}

int api_take_listener(struct api *a)
{
	return a->http ? http_server_take_listener(a->http) : -1;
}

void api_job_done(struct api *a)
{
	if (--a->jobs == 0 && a->closing)
		api_destroy(a);
}
