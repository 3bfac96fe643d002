/* cli/apps: `berth apps [--env E]`: every app (in every env, or in E) with its live release,
 * state, running/total instances and formation. */
#include <inttypes.h>
#include "cli/cmd.h"
#include "cli/output.h"

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
			 (int64_t)json_integer_value(json_object_get(in, "total")));
		fmt_formation(&form, json_object_get(a, "formation"));
		const char *row[] = {json_string_value(json_object_get(a, "env")),
				     json_string_value(json_object_get(a, "name")), rel.p,
				     json_string_value(json_object_get(a, "state")), inst.p, form.p};
		table_add(t, row);
		buf_free(&rel);
		buf_free(&inst);
		buf_free(&form);
	}
	table_print(t, stdout);
	table_free(t);
}

int cmd_apps(struct cli_opts *o)
{
	if (o->npos)
		return cli_usage_error("apps", "apps takes no arguments, got \"%s\"", o->pos[0]);
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
