/* cli/envs: `berth envs`: the environments and how many apps each holds. */
#include <inttypes.h>
#include "cli/cmd.h"
#include "cli/output.h"

/* "apps" may be a count or the list of app names; show a count either way. */
static void count_apps(struct buf *b, json_t *apps)
{
	if (json_is_array(apps))
		buf_addf(b, "%zu", json_array_size(apps));
	else if (json_is_integer(apps))
		buf_addf(b, "%" PRId64, (int64_t)json_integer_value(apps));
	else
		buf_adds(b, "-");
}

int cmd_envs(struct cli_opts *o)
{
	if (o->npos)
		return cli_usage_error("envs", "envs takes no arguments, got \"%s\"", o->pos[0]);
	struct client c;
	int rc = cli_connect(o, &c);
	if (rc)
		return rc;
	json_t *doc = cli_get(&c, "/v1/envs");
	rc = EXIT_FAIL;
	if (doc && o->json) {
		rc = cli_print_json(doc);
	} else if (doc) {
		json_t *envs = json_object_get(doc, "envs");
		if (!json_array_size(envs)) {
			printf("No environments yet: the first deploy creates one (default \"%s\").\n",
			       DEFAULT_ENV);
		} else {
			static const char *const head[] = {"ENV", "APPS"};
			struct table *t = table_new(2, head);
			size_t i;
			json_t *env;
			json_array_foreach(envs, i, env) {
				struct buf n = BUF_INIT;
				count_apps(&n, json_object_get(env, "apps"));
				const char *row[] = {json_string_value(json_object_get(env, "name")), n.p};
				table_add(t, row);
				buf_free(&n);
			}
			table_print(t, stdout);
			table_free(t);
		}
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	client_close(&c);
	return rc;
}
