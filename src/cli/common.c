/* cli/common: the helpers every verb file uses: which (env, app) a verb acts on, the API path
 * of an app, connecting, printing an error once, usage errors, and --json output. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cmd.h"
#include "cli/output.h"
#include "manifest/manifest.h"

static int bad_name(const char *what, const char *name, const char *from)
{
	fprintf(stderr, "berth: invalid %s name \"%s\"%s%s: use lowercase letters, digits and '-' "
		"(at most 63, not starting with '-')\n", what, name, from ? " in " : "",
		from ? from : "");
	return EXIT_USAGE;
}

int cli_target_with(const struct cli_opts *o, const char *yaml_app, const char *yaml_env,
		    const char *from, struct cli_target *t)
{
	memset(t, 0, sizeof *t);
	const char *app = o->app ? o->app : yaml_app;
	const char *env = o->env ? o->env : yaml_env ? yaml_env : DEFAULT_ENV;
	if (!app || !*app) {
		fprintf(stderr, "berth: no app given: pass --app NAME or add `app:` to berth.yaml\n");
		return EXIT_USAGE;
	}
	if (!name_valid(app))
		return bad_name("app", app, o->app ? NULL : from);
	if (!name_valid(env))
		return bad_name("env", env, o->env || !yaml_env ? NULL : from);
	t->app = xstrdup(app);
	t->env = xstrdup(env);
	return 0;
}

int cli_target(const struct cli_opts *o, struct cli_target *t)
{
	char *app = NULL, *env = NULL;
	struct err e = ERR_INIT;
	memset(t, 0, sizeof *t);
	if ((!o->app || !o->env) && cli_yaml_defaults("berth.yaml", &app, &env, &e)) {
		fprintf(stderr, "berth: %s (or pass --app and --env)\n", e.msg);
		return EXIT_FAIL;
	}
	int rc = cli_target_with(o, app, env, "berth.yaml", t);
	free(app);
	free(env);
	return rc;
}

void cli_target_free(struct cli_target *t)
{
	free(t->app);
	free(t->env);
	t->app = t->env = NULL;
}

void cli_app_path(struct buf *b, const struct cli_target *t, const char *suffix)
{
	buf_adds(b, "/v1/envs/");
	client_escape(b, t->env);
	buf_adds(b, "/apps/");
	client_escape(b, t->app);
	buf_adds(b, suffix);
}

int cli_connect(const struct cli_opts *o, struct client *c)
{
	struct err e = ERR_INIT;
	if (client_open(c, o->api, o->token, o->data, &e))
		return cli_fail(&e);
	return 0;
}

int cli_fail(const struct err *e)
{
	fflush(stdout);
	fprintf(stderr, "berth: %s\n", e->msg[0] ? e->msg : "failed (no reason given)");
	return EXIT_FAIL;
}

int cli_usage_error(const char *verb, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "berth: %s\n", buf_str(&b));
	cli_print_usage(stderr, verb);
	buf_free(&b);
	return EXIT_USAGE;
}

int cli_flush(void)
{
	return fflush(stdout) == EOF || ferror(stdout) ? -1 : 0;
}

int cli_print_json(json_t *doc)
{
	if (json_print_doc(doc, stdout) || cli_flush())
		return EXIT_FAIL;
	return EXIT_OK;
}

json_t *cli_get(struct client *c, const char *path)
{
	struct err e = ERR_INIT;
	json_t *doc = NULL;
	if (client_json(c, "GET", path, NULL, &doc, &e)) {
		cli_fail(&e);
		return NULL;
	}
	return doc;
}

int cli_app_open(const struct cli_opts *o, struct cli_target *t, struct client *c)
{
	int rc = cli_target(o, t);
	if (rc)
		return rc;
	if ((rc = cli_connect(o, c)))
		cli_target_free(t);
	return rc;
}

void cli_app_close(struct cli_target *t, struct client *c)
{
	client_close(c);
	cli_target_free(t);
}

int cli_app_get(const struct cli_opts *o, const char *suffix, cli_show_fn show)
{
	struct cli_target t;
	struct client c;
	int rc = cli_app_open(o, &t, &c);
	if (rc)
		return rc;
	struct buf path = BUF_INIT;
	cli_app_path(&path, &t, suffix);
	json_t *doc = cli_get(&c, path.p);
	rc = EXIT_FAIL;
	if (doc && o->json) {
		rc = cli_print_json(doc);
	} else if (doc) {
		show(doc, &t);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	buf_free(&path);
	cli_app_close(&t, &c);
	return rc;
}

int cli_app_change(const struct cli_opts *o, const char *suffix, json_t *body)
{
	struct cli_target t;
	struct client c;
	int rc = cli_app_open(o, &t, &c);
	if (rc)
		return rc;
	struct buf path = BUF_INIT;
	cli_app_path(&path, &t, suffix);
	rc = cli_progress_json(&c, path.p, body, o->json);
	buf_free(&path);
	cli_app_close(&t, &c);
	return rc;
}

int cli_app_call(const struct cli_opts *o, const char *method, const char *suffix, json_t *body)
{
	struct cli_target t;
	struct client c;
	int rc = cli_app_open(o, &t, &c);
	if (rc)
		return rc;
	struct buf path = BUF_INIT;
	cli_app_path(&path, &t, suffix);
	json_t *doc = NULL;
	struct err e = ERR_INIT;
	if (client_json(&c, method, path.p, body, &doc, &e)) {
		rc = cli_fail(&e);
	} else if (o->json) {
		rc = cli_print_json(doc);
	} else {
		const char *msg = json_string_value(json_object_get(doc, "message"));
		printf("-----> %s\n", msg ? msg : "done");
		const char *w = json_string_value(json_object_get(doc, "warning"));
		if (w)
			fprintf(stderr, "berth: warning: %s\n", w);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	buf_free(&path);
	cli_app_close(&t, &c);
	return rc;
}

int cli_list(const struct cli_opts *o, struct client *c, const char *path, const char *key, const char *empty,
	     void (*show)(json_t *items))
{
	json_t *doc = cli_get(c, path);
	if (!doc)
		return EXIT_FAIL;
	int rc;
	if (o->json) {
		rc = cli_print_json(doc);
	} else {
		json_t *items = json_object_get(doc, key);
		if (!json_array_size(items))
			printf("%s\n", empty);
		else
			show(items);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	return rc;
}

int cli_delete(const struct cli_opts *o, struct client *c, const char *path, const char *done)
{
	json_t *doc = NULL;
	struct err e = ERR_INIT;
	int rc;
	if (client_json(c, "DELETE", path, NULL, &doc, &e)) {
		rc = cli_fail(&e);
	} else if (o->json) {
		rc = cli_print_json(doc);
	} else {
		printf("%s\n", done);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	return rc;
}
