/* cli/routes: the built-in HTTP router's routes. `berth routes` lists them (the stored ones
 * and the default APP.ENV.localhost ones, with how many healthy instances each can reach),
 * `routes add HOST[/PATH] --app A` sends a host (or a path prefix of it) to a process of an
 * app, `routes remove HOST[/PATH]` (alias rm) takes a stored route away. Default routes come
 * and go with the apps; the server refuses to remove them.
 * `--error-pages DIR` names a directory on the server's machine; a relative DIR is resolved
 * here (realpath) because the CLI usually runs there too; the server checks it exists. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cmd.h"
#include "cli/output.h"
#include "manifest/manifest.h"

/* "site.test/careers", or "site.test" for the whole host. */
static void addr(struct buf *b, const char *host, const char *path)
{
	buf_adds(b, host ? host : "?");
	if (path && strcmp(path, "/"))
		buf_adds(b, path);
}

static const char *yes_no(json_t *v)
{
	return json_is_true(v) ? "yes" : "no";
}

/* The table; the ERROR PAGES column only when some route has its own directory. */
static void show_list(json_t *routes)
{
	static const char *const head[] = {"HOST", "PATH", "ENV", "APP", "PROCESS", "STRIP",
					   "BALANCE", "HEALTHY", "DEFAULT", "ERROR PAGES"};
	size_t i;
	json_t *r;
	bool pages = false;
	json_array_foreach(routes, i, r)
		pages = pages || json_is_string(json_object_get(r, "error_pages"));
	struct table *t = table_new(pages ? 10 : 9, head);
	json_array_foreach(routes, i, r) {
		struct buf healthy = BUF_INIT;
		json_t *h = json_object_get(r, "healthy");
		if (json_is_integer(h))
			buf_addf(&healthy, "%" PRId64, (int64_t)json_integer_value(h));
		const char *row[] = {json_string_value(json_object_get(r, "host")),
				     json_string_value(json_object_get(r, "path")),
				     json_string_value(json_object_get(r, "env")),
				     json_string_value(json_object_get(r, "app")),
				     json_string_value(json_object_get(r, "process")),
				     yes_no(json_object_get(r, "strip_prefix")),
				     json_string_value(json_object_get(r, "balance")),
				     healthy.len ? healthy.p : NULL,
				     yes_no(json_object_get(r, "default")),
				     json_string_value(json_object_get(r, "error_pages"))};
		table_add(t, row);
		buf_free(&healthy);
	}
	table_print(t, stdout);
	table_free(t);
}

static int list(struct cli_opts *o, struct client *c)
{
	return cli_list(o, c, "/v1/routes", "routes", "No routes (an app with a web process gets APP.ENV.localhost; add one "
			"with `berth routes add HOST[/PATH] --app A`).", show_list);
}

/* body is the route to send; the answer is the stored route, normalised by the server. */
static int add(struct cli_opts *o, struct client *c, json_t *body)
{
	json_t *doc = NULL;
	struct err e = ERR_INIT;
	int rc;
	if (client_json(c, "POST", "/v1/routes", body, &doc, &e)) {
		rc = cli_fail(&e);
	} else if (o->json) {
		rc = cli_print_json(doc);
	} else {
		struct buf b = BUF_INIT;
		addr(&b, json_string_value(json_object_get(doc, "host")),
		     json_string_value(json_object_get(doc, "path")));
		const char *env = json_string_value(json_object_get(doc, "env"));
		const char *app = json_string_value(json_object_get(doc, "app"));
		const char *proc = json_string_value(json_object_get(doc, "process"));
		const char *bal = json_string_value(json_object_get(doc, "balance"));
		printf("Route %s -> %s/%s %s", b.p, env ? env : "?", app ? app : "?",
		       proc ? proc : "web");
		if (json_is_true(json_object_get(doc, "strip_prefix")))
			printf(" (prefix stripped)");
		if (bal && strcmp(bal, "round-robin"))
			printf(" (%s)", bal);
		const char *pages = json_string_value(json_object_get(doc, "error_pages"));
		if (pages)
			printf(" (error pages from %s)", pages);
		if (json_is_true(json_object_get(doc, "replaced")))
			printf(", replacing the route it had");
		printf("\n");
		const char *warn = json_string_value(json_object_get(doc, "warning"));
		if (warn)
			printf("note: %s\n", warn);
		buf_free(&b);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	return rc;
}

static int rm(struct cli_opts *o, struct client *c, const char *host, const char *path)
{
	struct buf p = BUF_INIT, done = BUF_INIT;
	buf_adds(&p, "/v1/routes?host=");
	client_escape(&p, host);
	buf_adds(&p, "&path=");
	client_escape(&p, path);
	buf_adds(&done, "Removed route ");
	addr(&done, host, path);
	buf_addc(&done, '.');
	int rc = cli_delete(o, c, p.p, buf_str(&done));
	buf_free(&done);
	buf_free(&p);
	return rc;
}

/* The flags only `routes add` takes, when given to list or remove. */
static int add_only_flags(const struct cli_opts *o, const char *sub)
{
	static const cli_flags_t bits[] = {F_APP, F_ENV, F_PROCESS, F_STRIP, F_BALANCE, F_ERROR_PAGES};
	for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
		if (o->set & bits[i])
			return cli_usage_error("routes", "--%s only goes with routes add, not routes %s",
					       cli_flag_name(bits[i]), sub);
	return 0;
}

/* --error-pages DIR as the server should get it: an absolute DIR as given (the server checks
 * it), a relative one resolved from the current directory. Owned string in *out, or an
 * exit status after printing why it cannot be used. */
static int error_pages_arg(const char *dir, char **out)
{
	*out = NULL;
	if (!*dir)
		return cli_usage_error("routes", "--error-pages needs a directory");
	if (dir[0] == '/') {
		*out = xstrdup(dir);
		return 0;
	}
	char real[PATH_MAX];
	if (!realpath(dir, real)) {
		struct err e = ERR_INIT;
		err_set(&e, ERR_INVALID, "--error-pages \"%.200s\": %s (a relative directory is taken "
			"from the current directory; give the server's directory as an absolute path)",
			dir, strerror(errno));
		return cli_fail(&e);
	}
	*out = xstrdup(real);
	return 0;
}

/* Check the add command line and build its request body (NULL after printing a usage error
 * or a berth.yaml problem; *rc is then the exit status). */
static json_t *add_body(const struct cli_opts *o, const char *host, const char *path, int *rc)
{
	if (!o->app) {
		*rc = cli_usage_error("routes", "routes add needs --app: the app the route sends to");
		return NULL;
	}
	if (o->process && !name_valid(o->process)) {
		*rc = cli_usage_error("routes", "\"%s\" is not a process name", o->process);
		return NULL;
	}
	if (o->balance && !cli_balance_valid(o->balance)) {
		*rc = cli_usage_error("routes", "--balance is round-robin or least-conn, got \"%s\"",
				      o->balance);
		return NULL;
	}
	char *pages = NULL;
	if (o->error_pages && (*rc = error_pages_arg(o->error_pages, &pages)))
		return NULL;
	struct cli_target t;
	if ((*rc = cli_target(o, &t))) {
		free(pages);
		return NULL;
	}
	json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "host", host, "path", path,
				 "env", t.env, "app", t.app, "process",
				 o->process ? o->process : "web", "strip_prefix", o->strip_prefix,
				 "balance", o->balance ? o->balance : "round-robin");
	cli_target_free(&t);
	if (body && pages) {
		/* a path that is not UTF-8 cannot travel in JSON */
		json_t *pv = json_string(pages);
		if (!pv) {
			json_decref(body);
			free(pages);
			struct err e = ERR_INIT;
			err_set(&e, ERR_INVALID, "--error-pages: the path is not valid UTF-8");
			*rc = cli_fail(&e);
			return NULL;
		}
		json_object_set_new(body, "error_pages", pv);
	}
	free(pages);
	if (!body) {   /* every string was checked above; only an allocation can fail here */
		struct err e = ERR_INIT;
		err_set(&e, ERR_INTERNAL, "could not build the route request");
		*rc = cli_fail(&e);
	}
	return body;
}

int cmd_routes(struct cli_opts *o)
{
	const char *sub = o->npos ? o->pos[0] : "list";
	bool is_list = !strcmp(sub, "list"), is_add = !strcmp(sub, "add"),
	     is_rm = !strcmp(sub, "remove") || !strcmp(sub, "rm");
	if (!is_list && !is_add && !is_rm)
		return cli_usage_error("routes", "unknown routes command \"%s\" (list, add or remove)",
				       sub);
	if (is_list && o->npos > 1)
		return cli_usage_error("routes", "routes list takes no arguments, got \"%s\"",
				       o->pos[1]);
	if (!is_list && o->npos != 2)
		return cli_usage_error("routes", "routes %s takes exactly one HOST[/PATH], e.g. "
				       "site.test/careers", sub);
	int rc;
	if (!is_add && (rc = add_only_flags(o, sub)))
		return rc;
	char *host = NULL, *path = NULL;
	json_t *body = NULL;
	struct err e = ERR_INIT;
	if (!is_list && cli_parse_route_addr(o->pos[1], &host, &path, &e))
		return cli_usage_error("routes", "%s", e.msg);
	if (is_add && !(body = add_body(o, host, path, &rc)))
		goto out;
	struct client c;
	if ((rc = cli_connect(o, &c)))
		goto out;
	if (is_list)
		rc = list(o, &c);
	else if (is_add)
		rc = add(o, &c, body);
	else
		rc = rm(o, &c, host, path);
	client_close(&c);
out:
	json_decref(body);
	free(host);
	free(path);
	return rc;
}
