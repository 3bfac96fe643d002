/* cli/apps: `berth apps [--env E]`: every app (in every env, or in E) with its live release,
 * state, running/total instances and formation; `apps create`, `apps destroy` and
 * `apps info`, the app's life cycle. */
#include <inttypes.h>
#include "cli/cmd.h"
#include "cli/output.h"
#include <string.h>

static void show(json_t *apps)
{
	static const char *const head[] = {"ENV", "APP", "RELEASE", "STATE", "INSTANCES", "FORMATION"};
	struct table *t = table_new(6, head);
	size_t i;
	json_t *a;
	json_array_foreach(apps, i, a) {
		struct buf rel = BUF_INIT, inst = BUF_INIT, form = BUF_INIT;
		fmt_release(&rel, json_object_get(a, "release"));
		json_t *in = json_object_get(a, "instances");
		buf_addf(&inst, "%" PRId64 "/%" PRId64,
			 (int64_t)json_integer_value(json_object_get(in, "running")),
			 (int64_t)json_integer_value(json_object_get(in, "wanted")));
		fmt_formation(&form, json_object_get(a, "formation"));
		const char *status = json_string_value(json_object_get(a, "status"));
		const char *row[] = {json_string_value(json_object_get(a, "env")),
				     json_string_value(json_object_get(a, "name")), rel.p,
				     status ? status : json_string_value(json_object_get(a, "state")), inst.p, form.p};
		table_add(t, row);
		buf_free(&rel);
		buf_free(&inst);
		buf_free(&form);
	}
	table_print(t, stdout);
	table_free(t);
}

/* `apps create|destroy|info NAME`: the app is the positional NAME (or --app / berth.yaml). */
static int app_target(struct cli_opts *o, const char *verb, struct cli_target *t)
{
	if (o->npos > 2)
		return cli_usage_error("apps", "apps %s takes one app name, got \"%s\" too", verb, o->pos[2]);
	if (o->npos == 2) {
		if (o->app && strcmp(o->app, o->pos[1]))
			return cli_usage_error("apps", "two app names: %s and --app %s", o->pos[1], o->app);
		o->app = o->pos[1];
	}
	return cli_target(o, t);
}

static int apps_create(struct cli_opts *o)
{
	struct cli_target t;
	int rc = app_target(o, "create", &t);
	if (rc)
		return rc;
	struct client c;
	if ((rc = cli_connect(o, &c))) {
		cli_target_free(&t);
		return rc;
	}
	struct buf path = BUF_INIT;
	buf_adds(&path, "/v1/envs/");
	client_escape(&path, t.env);
	buf_adds(&path, "/apps");
	json_t *body = json_pack("{s:s}", "name", t.app), *doc = NULL;
	struct err e = ERR_INIT;
	if (client_json(&c, "POST", path.p, body, &doc, &e)) {
		rc = cli_fail(&e);
	} else if (o->json) {
		rc = cli_print_json(doc);
	} else {
		printf("%s\n", json_string_value(json_object_get(doc, "message")));
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(body);
	json_decref(doc);
	buf_free(&path);
	client_close(&c);
	cli_target_free(&t);
	return rc;
}

static int apps_destroy(struct cli_opts *o)
{
	struct cli_target t;
	int rc = app_target(o, "destroy", &t);
	if (rc)
		return rc;
	if (!o->confirm || strcmp(o->confirm, t.app)) {
		fprintf(stderr, "berth: destroying %s/%s stops its instances and removes its releases, code, config and "
			"routes; confirm with the app's name: berth apps destroy %s --env %s --confirm %s\n", t.env, t.app,
			t.app, t.env, t.app);
		cli_target_free(&t);
		return EXIT_USAGE;
	}
	struct buf suffix = BUF_INIT;
	buf_adds(&suffix, "?confirm=");
	client_escape(&suffix, t.app);
	if (o->volumes)
		buf_adds(&suffix, "&volumes=1");
	if (o->purge_logs)
		buf_adds(&suffix, "&purge_logs=1");
	struct cli_opts named = *o;
	named.app = t.app;
	named.env = t.env;
	rc = cli_app_call(&named, "DELETE", suffix.p, NULL);
	buf_free(&suffix);
	cli_target_free(&t);
	return rc;
}

static void show_info(json_t *a, const struct cli_target *t)
{
	struct buf b = BUF_INIT;
	printf("=== %s (%s)\n", t->app, t->env);
	const char *status = json_string_value(json_object_get(a, "status"));
	printf("State:      %s%s\n", status ? status : json_string_value(json_object_get(a, "state")),
	       json_is_true(json_object_get(a, "maintenance")) ? " (maintenance on: the router answers 503)" : "");
	fmt_release(&b, json_object_get(a, "release"));
	printf("Release:    %s\n", b.len ? b.p : "none yet");
	buf_free(&b);
	int target = (int)json_integer_value(json_object_get(a, "target_release"));
	if (target)
		printf("Rolling out: v%d\n", target);
	fmt_formation(&b, json_object_get(a, "formation"));
	printf("Formation:  %s\n", b.len ? b.p : "-");
	buf_free(&b);
	json_t *in = json_object_get(a, "instances");
	printf("Instances:  %lld running of %lld wanted\n", (long long)json_integer_value(json_object_get(in, "running")),
	       (long long)json_integer_value(json_object_get(in, "wanted")));
	json_t *cfg = json_object_get(a, "config_keys");
	printf("Config:     %zu key%s", json_array_size(cfg), json_array_size(cfg) == 1 ? "" : "s");
	size_t i;
	json_t *k;
	json_array_foreach(cfg, i, k)
		printf("%s%s", i ? ", " : " (", json_string_value(k));
	printf("%s\n", json_array_size(cfg) ? ")" : "");
	json_t *routes = json_object_get(a, "routes");
	printf("Routes:     ");
	json_array_foreach(routes, i, k)
		printf("%s%s", i ? ", " : "", json_string_value(k));
	printf("%s\n", json_array_size(routes) ? "" : "-");
	const char *build = json_string_value(json_object_get(a, "builder"));
	if (build)
		printf("Builder:    %s\n", build);
	json_array_foreach(json_object_get(a, "oneoffs"), i, k)
		printf("%s%s (pid %lld)", i ? ", " : "One-offs:   ", json_string_value(json_object_get(k, "id")),
		       (long long)json_integer_value(json_object_get(k, "pid")));
	if (json_array_size(json_object_get(a, "oneoffs")))
		printf("\n");
	printf("Created:    %s\n", json_string_value(json_object_get(a, "created_at")));
}

int cmd_apps(struct cli_opts *o)
{
	const char *sub = o->npos ? o->pos[0] : NULL;
	if (sub && !strcmp(sub, "create"))
		return apps_create(o);
	if (sub && (!strcmp(sub, "destroy") || !strcmp(sub, "delete")))
		return apps_destroy(o);
	if (sub && !strcmp(sub, "info")) {
		struct cli_opts copy = *o;
		if (o->npos == 2)
			copy.app = o->pos[1];
		return cli_app_get(&copy, "", show_info);
	}
	if (o->npos)
		return cli_usage_error("apps", "unknown apps command \"%s\" (create, destroy, info, or none to list)",
				       o->pos[0]);
	struct client c;
	int rc = cli_connect(o, &c);
	if (rc)
		return rc;
	struct buf path = BUF_INIT;
	buf_adds(&path, "/v1/apps");
	if (o->env) {
		buf_adds(&path, "?env=");
		client_escape(&path, o->env);
	}
	json_t *doc = cli_get(&c, path.p);
	rc = EXIT_FAIL;
	if (doc && o->json) {
		rc = cli_print_json(doc);
	} else if (doc) {
		json_t *apps = json_object_get(doc, "apps");
		if (!json_array_size(apps))
			printf("No apps%s%s yet. Deploy one with `berth deploy --app NAME`.\n",
			       o->env ? " in " : "", o->env ? o->env : "");
		else
			show(apps);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	buf_free(&path);
	client_close(&c);
	return rc;
}
