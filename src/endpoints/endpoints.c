/* endpoints: the serving-instance table and its immutable snapshots (see endpoints.h). */
#include "endpoints/endpoints.h"
#include "util/buf.h"
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_READERS 64

struct reader {
	endpoints_reader_fn fn;
	void *arg;
	_Atomic uint64_t adopted;
};

struct app_set {
	char **pairs;
	size_t n;
};

struct endpoints {
	uv_loop_t *loop;
	struct endpoint **eps;        /* in the table, each with one table reference */
	size_t neps;
	struct route *routes;         /* stored routes (owned copies) */
	size_t nroutes;
	struct ep_snapshot *cur;
	uint64_t version;
	struct app_set web_apps;      /* apps declared to have a web process */
	struct app_set maint;         /* apps in maintenance mode */
	struct reader readers[MAX_READERS];
	int nreaders;
};

/* ---- sets of (env, app), each stored as one "env\0app" string ---- */

static ssize_t app_set_find(const struct app_set *s, const char *env, const char *app)
{
	for (size_t k = 0; k < s->n; k++) {
		const char *e = s->pairs[k];
		if (!strcmp(e, env) && !strcmp(e + strlen(e) + 1, app))
			return (ssize_t)k;
	}
	return -1;
}

/* Add or remove (env, app); true when the set changed. */
static bool app_set_put(struct app_set *s, const char *env, const char *app, bool in)
{
	ssize_t k = app_set_find(s, env, app);
	if (in == (k >= 0))
		return false;
	if (!in) {
		free(s->pairs[k]);
		s->pairs[k] = s->pairs[--s->n];
		return true;
	}
	size_t el = strlen(env), al = strlen(app);
	char *pair = xmalloc(el + al + 2);
	memcpy(pair, env, el + 1);
	memcpy(pair + el + 1, app, al + 1);
	s->pairs = xrealloc(s->pairs, (s->n + 1) * sizeof *s->pairs);
	s->pairs[s->n++] = pair;
	return true;
}

static void app_set_free(struct app_set *s)
{
	for (size_t k = 0; k < s->n; k++)
		free(s->pairs[k]);
	free(s->pairs);
}

/* ---- refcounts ---- */

void endpoint_ref(struct endpoint *e)
{
	atomic_fetch_add(&e->refs, 1);
}

void endpoint_unref(struct endpoint *e)
{
	if (e && atomic_fetch_sub(&e->refs, 1) == 1)
		free(e);
}

static void route_free_fields(struct route *r)
{
	free(r->host);
	free(r->path);
	free(r->env);
	free(r->app);
	free(r->process);
	free(r->error_dir);
}

static void route_copy(struct route *dst, const struct route *src)
{
	*dst = *src;
	dst->host = xstrdup(src->host);
	for (char *p = dst->host; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	const char *path = src->path && *src->path ? src->path : "/";
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	dst->path = xstrndup(path, n);
	dst->path_len = n;
	dst->env = xstrdup(src->env);
	dst->app = xstrdup(src->app);
	dst->process = xstrdup(src->process && *src->process ? src->process : "web");
	dst->error_dir = src->error_dir ? xstrdup(src->error_dir) : NULL;
	dst->group = NULL;
}

void ep_snapshot_ref(struct ep_snapshot *s)
{
	atomic_fetch_add(&s->refs, 1);
}

void ep_snapshot_unref(struct ep_snapshot *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (size_t k = 0; k < s->ngroups; k++) {
		for (size_t j = 0; j < s->groups[k].n; j++)
			endpoint_unref(s->groups[k].eps[j]);
		free(s->groups[k].eps);
	}
	free(s->groups);
	for (size_t k = 0; k < s->nroutes; k++)
		route_free_fields(&s->routes[k]);
	free(s->routes);
	free(s);
}

/* ---- lookups (any thread, on an immutable snapshot) ---- */

static int group_cmp3(const char *env, const char *app, const char *proc, const struct ep_group *g)
{
	int c = strcmp(env, g->env);
	if (c)
		return c;
	c = strcmp(app, g->app);
	if (c || !proc)
		return c;
	return strcmp(proc, g->process);
}

const struct ep_group *ep_snapshot_group(const struct ep_snapshot *s, const char *env, const char *app,
					 const char *process)
{
	if (!process) {
		long k = ep_snapshot_app_first(s, env, app);
		return k < 0 ? NULL : &s->groups[k];
	}
	size_t lo = 0, hi = s->ngroups;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = group_cmp3(env, app, process, &s->groups[mid]);
		if (c == 0)
			return &s->groups[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

long ep_snapshot_app_first(const struct ep_snapshot *s, const char *env, const char *app)
{
	for (size_t k = 0; k < s->ngroups; k++)
		if (!group_cmp3(env, app, NULL, &s->groups[k]))
			return (long)k;
	return -1;
}

static bool host_eq(const char *route_host, const char *host, size_t n)
{
	size_t rl = strlen(route_host);
	return rl == n && strncasecmp(route_host, host, n) == 0;
}

const struct route *ep_snapshot_route(const struct ep_snapshot *s, const char *host, size_t host_len,
				      const char *path, size_t path_len)
{
	/* Strip ":port" (not inside an IPv6 literal) and a trailing dot. */
	if (host_len && host[0] != '[') {
		const char *colon = memchr(host, ':', host_len);
		if (colon)
			host_len = (size_t)(colon - host);
	} else if (host_len) {
		const char *rb = memchr(host, ']', host_len);
		if (rb)
			host_len = (size_t)(rb - host) + 1;
	}
	if (host_len && host[host_len - 1] == '.')
		host_len--;
	const struct route *best = NULL;
	for (size_t k = 0; k < s->nroutes; k++) {
		const struct route *r = &s->routes[k];
		if (!host_eq(r->host, host, host_len))
			continue;
		bool match;
		if (r->path_len == 1)
			match = true;   /* "/" */
		else
			match = path_len >= r->path_len && !memcmp(path, r->path, r->path_len) &&
				(path_len == r->path_len || path[r->path_len] == '/' || path[r->path_len] == '?');
		if (match && (!best || r->path_len > best->path_len))
			best = r;
	}
	return best;
}

/* ---- building snapshots (main loop) ---- */

static int ep_cmp(const void *a, const void *b)
{
	const struct endpoint *x = *(struct endpoint *const *)a, *y = *(struct endpoint *const *)b;
	int c = strcmp(x->env, y->env);
	if (!c)
		c = strcmp(x->app, y->app);
	if (!c)
		c = strcmp(x->process, y->process);
	if (!c)
		c = x->slot - y->slot;
	if (!c)
		c = x->release - y->release;
	return c;
}

static int route_cmp(const void *a, const void *b)
{
	const struct route *x = a, *y = b;
	int c = strcmp(x->host, y->host);
	if (c)
		return c;
	return (int)y->path_len - (int)x->path_len;
}

static bool has_route(const struct route *rs, size_t n, const char *host, const char *path)
{
	for (size_t k = 0; k < n; k++)
		if (!strcmp(rs[k].host, host) && !strcmp(rs[k].path, path))
			return true;
	return false;
}

static void publish(struct endpoints *t)
{
	struct ep_snapshot *s = xcalloc(1, sizeof *s);
	atomic_init(&s->refs, 1);
	s->version = ++t->version;
	if (t->neps)
		qsort(t->eps, t->neps, sizeof *t->eps, ep_cmp);
	/* Groups. */
	s->groups = xcalloc(t->neps ? t->neps : 1, sizeof *s->groups);
	for (size_t k = 0; k < t->neps; k++) {
		struct endpoint *e = t->eps[k];
		struct ep_group *g = s->ngroups ? &s->groups[s->ngroups - 1] : NULL;
		if (!g || strcmp(g->env, e->env) || strcmp(g->app, e->app) || strcmp(g->process, e->process)) {
			g = &s->groups[s->ngroups++];
			g->env = e->env;
			g->app = e->app;
			g->process = e->process;
			atomic_init(&g->rr, 0);
		}
		g->eps = xrealloc(g->eps, (g->n + 1) * sizeof *g->eps);
		g->eps[g->n++] = e;
		endpoint_ref(e);
	}
	/* Routes: stored ones, then defaults for every app with a web group. */
	size_t cap = t->nroutes + 2 * s->ngroups + 1;
	s->routes = xcalloc(cap, sizeof *s->routes);
	for (size_t k = 0; k < t->nroutes; k++)
		route_copy(&s->routes[s->nroutes++], &t->routes[k]);
	size_t nweb = 0;
	const char **web = xcalloc(2 * (s->ngroups + t->web_apps.n) + 2, sizeof *web);
	for (size_t k = 0; k < s->ngroups; k++)
		if (!strcmp(s->groups[k].process, "web")) {
			web[2 * nweb] = s->groups[k].env;
			web[2 * nweb++ + 1] = s->groups[k].app;
		}
	for (size_t k = 0; k < t->web_apps.n; k++) {
		web[2 * nweb] = t->web_apps.pairs[k];
		web[2 * nweb++ + 1] = t->web_apps.pairs[k] + strlen(t->web_apps.pairs[k]) + 1;
	}
	s->routes = xrealloc(s->routes, (s->nroutes + 2 * nweb + 1) * sizeof *s->routes);
	for (size_t k = 0; k < nweb; k++) {
		const char *env = web[2 * k], *app = web[2 * k + 1];
		char *hosts[2] = {xasprintf("%s.%s.localhost", app, env),
				  !strcmp(env, "production") ? xasprintf("%s.localhost", app) : NULL};
		for (int h = 0; h < 2; h++) {
			if (hosts[h] && !has_route(s->routes, s->nroutes, hosts[h], "/")) {
				struct route d = {.host = hosts[h], .path = "/", .env = (char *)env,
						  .app = (char *)app, .process = "web", .is_default = true};
				route_copy(&s->routes[s->nroutes++], &d);
			}
			free(hosts[h]);
		}
	}
	free(web);
	if (s->nroutes)
		qsort(s->routes, s->nroutes, sizeof *s->routes, route_cmp);
	for (size_t k = 0; k < s->nroutes; k++) {
		struct route *r = &s->routes[k];
		r->group = ep_snapshot_group(s, r->env, r->app, r->process);
		r->maintenance = t->maint.n && app_set_find(&t->maint, r->env, r->app) >= 0;
	}
	struct ep_snapshot *old = t->cur;
	t->cur = s;
	for (int r = 0; r < t->nreaders; r++)
		t->readers[r].fn(t->readers[r].arg, s);
	ep_snapshot_unref(old);
}

struct endpoints *endpoints_new(uv_loop_t *loop)
{
	struct endpoints *t = xcalloc(1, sizeof *t);
	t->loop = loop;
	publish(t);
	return t;
}

void endpoints_free(struct endpoints *t)
{
	if (!t)
		return;
	for (size_t k = 0; k < t->neps; k++)
		endpoint_unref(t->eps[k]);
	free(t->eps);
	for (size_t k = 0; k < t->nroutes; k++)
		route_free_fields(&t->routes[k]);
	free(t->routes);
	app_set_free(&t->web_apps);
	app_set_free(&t->maint);
	ep_snapshot_unref(t->cur);
	free(t);
}

int endpoints_add_reader(struct endpoints *t, endpoints_reader_fn fn, void *arg)
{
	if (t->nreaders == MAX_READERS)
		return -1;
	int id = t->nreaders++;
	t->readers[id].fn = fn;
	t->readers[id].arg = arg;
	atomic_init(&t->readers[id].adopted, 0);
	fn(arg, t->cur);
	return id;
}

void endpoints_adopted(struct endpoints *t, int reader, uint64_t version)
{
	if (reader >= 0 && reader < MAX_READERS)
		atomic_store(&t->readers[reader].adopted, version);
}

struct ep_snapshot *endpoints_current(struct endpoints *t)
{
	return t->cur;
}

static ssize_t find(struct endpoints *t, const char *env, const char *app, const char *instance, int release)
{
	for (size_t k = 0; k < t->neps; k++) {
		struct endpoint *e = t->eps[k];
		if (!strcmp(e->env, env) && !strcmp(e->app, app) && !strcmp(e->instance, instance) &&
		    e->release == release)
			return (ssize_t)k;
	}
	return -1;
}

struct endpoint *endpoints_put(struct endpoints *t, const char *env, const char *app, const char *process,
			       const char *instance, int slot, int release, int port)
{
	/* The same instance put again (same port) is already in. A different port is another
	 * process: during a restart the replacement of web.1 has web.1's name and release while
	 * the old one is still serving and must drain, so both are in the table for a while. */
	for (size_t k = 0; k < t->neps; k++) {
		struct endpoint *o = t->eps[k];
		if (o->port == port && o->release == release && !strcmp(o->env, env) && !strcmp(o->app, app) &&
		    !strcmp(o->instance, instance))
			return o;
	}
	struct endpoint *e = xcalloc(1, sizeof *e);
	snprintf(e->env, sizeof e->env, "%s", env);
	snprintf(e->app, sizeof e->app, "%s", app);
	snprintf(e->process, sizeof e->process, "%s", process);
	snprintf(e->instance, sizeof e->instance, "%s", instance);
	snprintf(e->host, sizeof e->host, "127.0.0.1");
	e->ipv4 = 0x7f000001u;
	e->slot = slot;
	e->release = release;
	e->port = port;
	atomic_init(&e->refs, 1);
	atomic_init(&e->inflight, 0);
	atomic_init(&e->requests, 0);
	t->eps = xrealloc(t->eps, (t->neps + 1) * sizeof *t->eps);
	t->eps[t->neps++] = e;
	publish(t);
	return e;
}

struct endpoint *endpoints_remove(struct endpoints *t, const char *env, const char *app, const char *instance,
				  int release)
{
	ssize_t k = find(t, env, app, instance, release);
	if (k < 0)
		return NULL;
	struct endpoint *e = t->eps[k];
	t->eps[k] = t->eps[--t->neps];
	e->removed_version = t->version + 1;
	publish(t);
	return e;   /* the table's reference passes to the caller */
}

struct endpoint *endpoints_withdraw(struct endpoints *t, struct endpoint *e)
{
	for (size_t k = 0; k < t->neps; k++) {
		if (t->eps[k] != e)
			continue;
		t->eps[k] = t->eps[--t->neps];
		e->removed_version = t->version + 1;
		publish(t);
		return e;   /* the table's reference passes to the caller */
	}
	return NULL;
}

bool endpoints_drained(struct endpoints *t, struct endpoint *e)
{
	return endpoints_adopted_all(t, e->removed_version) && atomic_load(&e->inflight) == 0;
}

void endpoints_declare_app(struct endpoints *t, const char *env, const char *app, bool web)
{
	if (app_set_put(&t->web_apps, env, app, web))
		publish(t);
}

void endpoints_set_maintenance(struct endpoints *t, const char *env, const char *app, bool on)
{
	if (app_set_put(&t->maint, env, app, on))
		publish(t);
}

bool endpoints_maintenance(const struct endpoints *t, const char *env, const char *app)
{
	return app_set_find(&t->maint, env, app) >= 0;
}

bool endpoints_adopted_all(const struct endpoints *t, uint64_t version)
{
	for (int r = 0; r < t->nreaders; r++)
		if (atomic_load(&t->readers[r].adopted) < version)
			return false;
	return true;
}

void endpoints_set_routes(struct endpoints *t, const struct route *routes, size_t n)
{
	for (size_t k = 0; k < t->nroutes; k++)
		route_free_fields(&t->routes[k]);
	free(t->routes);
	t->routes = xcalloc(n ? n : 1, sizeof *t->routes);
	for (size_t k = 0; k < n; k++)
		route_copy(&t->routes[k], &routes[k]);
	t->nroutes = n;
	publish(t);
}
