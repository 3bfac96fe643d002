/* routes_sync: store -> endpoints table for HTTP routes and maintenance mode (see
 * routes_sync.h). */
#include "endpoints/routes_sync.h"
#include "manifest/manifest.h"
#include "model/model.h"
#include "util/buf.h"
#include "util/log.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "/routes/"
#define APPS_PREFIX "/envs/"

struct routes_sync {
	struct store *st;
	struct endpoints *eps;
	int watch;
	int apps_watch;
};

char *routes_key(const char *host, const char *path)
{
	return xasprintf(PREFIX "%s%s", host, path);
}

static bool host_valid(const char *h)
{
	size_t n = strlen(h);
	if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-')
		return false;
	for (const char *p = h; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.' || *p == '_' || *p == '*'))
			return false;
	return !strstr(h, "..");
}

static bool path_valid(const char *p)
{
	if (p[0] != '/' || strlen(p) > 1024)
		return false;
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '?' || *c == '#' || *c == '%')
			return false;
	return !strstr(p, "//") && !strstr(p, "/../") && !strstr(p, "/./");
}

int routes_validate(json_t *doc, struct err *e)
{
	const char *host = json_string_value(json_object_get(doc, "host"));
	const char *path = json_string_value(json_object_get(doc, "path"));
	const char *env = json_string_value(json_object_get(doc, "env"));
	const char *app = json_string_value(json_object_get(doc, "app"));
	const char *proc = json_string_value(json_object_get(doc, "process"));
	const char *bal = json_string_value(json_object_get(doc, "balance"));
	json_t *strip = json_object_get(doc, "strip_prefix");
	if (!host)
		return err_set(e, ERR_INVALID, "a route needs a \"host\"");
	char *lower = xstrdup(host);
	for (char *p = lower; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!host_valid(lower)) {
		free(lower);
		return err_set(e, ERR_INVALID, "\"%.100s\" is not a host name (letters, digits, '-' and '.'; no port)", host);
	}
	json_object_set_new(doc, "host", json_string(lower));
	free(lower);
	if (!path)
		path = "/";
	if (!path_valid(path))
		return err_set(e, ERR_INVALID, "route path \"%.100s\" must start with '/' and hold no spaces, '?', '#', '%%', '//' or dot segments", path);
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	json_object_set_new(doc, "path", json_stringn(path, n));
	if (!env || !name_valid(env) || !app || !name_valid(app))
		return err_set(e, ERR_INVALID, "a route needs a valid \"env\" and \"app\"");
	if (proc && !name_valid(proc))
		return err_set(e, ERR_INVALID, "\"%.100s\" is not a process name", proc);
	if (!proc)
		json_object_set_new(doc, "process", json_string("web"));
	if (bal && strcmp(bal, "round-robin") && strcmp(bal, "least-conn"))
		return err_set(e, ERR_INVALID, "balance must be \"round-robin\" or \"least-conn\"");
	if (!bal)
		json_object_set_new(doc, "balance", json_string("round-robin"));
	if (strip && !json_is_boolean(strip))
		return err_set(e, ERR_INVALID, "strip_prefix must be true or false");
	if (!strip)
		json_object_set_new(doc, "strip_prefix", json_false());
	return 0;
}

static void reload(struct routes_sync *s)
{
	struct store_list l;
	struct err e = ERR_INIT;
	if (store_list(s->st, PREFIX, &l, &e) < 0) {
		log_error("routes: %s", e.msg);
		return;
	}
	struct route *rs = xcalloc(l.n ? l.n : 1, sizeof *rs);
	size_t n = 0;
	json_t **docs = xcalloc(l.n ? l.n : 1, sizeof *docs);
	for (size_t k = 0; k < l.n; k++) {
		json_t *d = json_loads(l.items[k].value, 0, NULL);
		struct err ve = ERR_INIT;
		if (!d || routes_validate(d, &ve) < 0) {
			log_warn("routes: ignoring %s: %s", l.items[k].key, d ? ve.msg : "not JSON");
			json_decref(d);
			continue;
		}
		docs[n] = d;
		struct route *r = &rs[n++];
		r->host = (char *)json_string_value(json_object_get(d, "host"));
		r->path = (char *)json_string_value(json_object_get(d, "path"));
		r->env = (char *)json_string_value(json_object_get(d, "env"));
		r->app = (char *)json_string_value(json_object_get(d, "app"));
		r->process = (char *)json_string_value(json_object_get(d, "process"));
		r->strip_prefix = json_is_true(json_object_get(d, "strip_prefix"));
		r->balance = !strcmp(json_string_value(json_object_get(d, "balance")), "least-conn") ? BALANCE_LEAST_CONN
												       : BALANCE_ROUND_ROBIN;
		/* "error_pages" in the document (the API's name); route.error_dir in the table */
		r->error_dir = (char *)json_string_value(json_object_get(d, "error_pages"));
	}
	endpoints_set_routes(s->eps, rs, n);
	for (size_t k = 0; k < n; k++)
		json_decref(docs[k]);
	free(docs);
	free(rs);
	store_list_free(&l);
}

static void on_change(void *arg, const char *key, const char *value, int64_t rev)
{
	reload(arg);
}

/* ---- maintenance mode: the "maintenance" flag of app documents ---- */

/* Is key an app document's key ("/envs/E/apps/A", nothing deeper)? env, app: 64 bytes. */
static bool app_doc_key(const char *key, char *env, char *app)
{
	if (model_parse_app_key(key, env, app) < 0)
		return false;
	char *k = model_app_key(env, app);
	bool is = !strcmp(k, key);
	free(k);
	return is;
}

/* value: the app document's JSON text, NULL when it was deleted. */
static void app_doc_changed(struct routes_sync *s, const char *key, const char *value)
{
	char env[64], app[64];
	if (!app_doc_key(key, env, app))
		return;
	bool on = false;
	if (value) {
		json_t *d = json_loads(value, 0, NULL);
		on = json_is_true(json_object_get(d, "maintenance"));
		json_decref(d);
	}
	endpoints_set_maintenance(s->eps, env, app, on);
}

static void on_app_change(void *arg, const char *key, const char *value, int64_t rev)
{
	app_doc_changed(arg, key, value);
}

static void load_maintenance(struct routes_sync *s)
{
	struct store_list l;
	struct err e = ERR_INIT;
	if (store_list(s->st, APPS_PREFIX, &l, &e) < 0) {
		log_error("maintenance mode: %s", e.msg);
		return;
	}
	for (size_t k = 0; k < l.n; k++)
		app_doc_changed(s, l.items[k].key, l.items[k].value);
	store_list_free(&l);
}

struct routes_sync *routes_sync_start(struct store *st, struct endpoints *eps, struct err *e)
{
	struct routes_sync *s = xcalloc(1, sizeof *s);
	s->st = st;
	s->eps = eps;
	reload(s);
	s->watch = store_watch(st, PREFIX, on_change, s);
	load_maintenance(s);
	s->apps_watch = store_watch(st, APPS_PREFIX, on_app_change, s);
	return s;
}

void routes_sync_free(struct routes_sync *s)
{
	if (!s)
		return;
	store_unwatch(s->st, s->watch);
	store_unwatch(s->st, s->apps_watch);
	free(s);
}
