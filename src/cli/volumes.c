/* cli/volumes: `berth volumes` lists an app's volumes (named directories that outlive
 * releases) with their size; `berth volumes rm NAME --yes` deletes one and its data. */
#include <inttypes.h>
#include <string.h>
#include "cli/cmd.h"
#include "cli/output.h"
#include "manifest/manifest.h"

static void show_list(json_t *doc, const struct cli_target *t)
{
	json_t *vols = json_object_get(doc, "volumes");
	if (!json_array_size(vols)) {
		printf("No volumes for %s in %s (declare them under a process's volumes: in "
		       "berth.yaml).\n", t->app, t->env);
		return;
	}
	static const char *const head[] = {"VOLUME", "SIZE", "PATH"};
	struct table *tb = table_new(3, head);
	size_t i;
	json_t *v;
	json_array_foreach(vols, i, v) {
		struct buf size = BUF_INIT;
		json_t *bytes = json_object_get(v, "bytes");
		if (json_is_integer(bytes))
			fmt_bytes(&size, (int64_t)json_integer_value(bytes));
		const char *row[] = {json_string_value(json_object_get(v, "name")), size.p,
				     json_string_value(json_object_get(v, "path"))};
		table_add(tb, row);
		buf_free(&size);
	}
	table_print(tb, stdout);
	table_free(tb);
}

static int rm(struct cli_opts *o)
{
	if (o->npos != 2)
		return cli_usage_error("volumes", "volumes rm takes exactly one volume name");
	const char *name = o->pos[1];
	if (!name_valid(name))
		return cli_usage_error("volumes", "\"%s\" is not a volume name", name);
	if (!o->yes)
		return cli_usage_error("volumes", "volumes rm deletes the data in %s for good: pass "
				       "--yes to confirm", name);
	struct cli_target t;
	struct client c;
	int rc = cli_app_open(o, &t, &c);
	if (rc)
		return rc;
	struct buf path = BUF_INIT;
	cli_app_path(&path, &t, "/volumes/");
	client_escape(&path, name);
	json_t *doc = NULL;
	struct err e = ERR_INIT;
	if (client_json(&c, "DELETE", path.p, NULL, &doc, &e)) {
		rc = cli_fail(&e);
	} else if (o->json) {
		rc = cli_print_json(doc);
	} else {
		printf("Deleted volume %s of %s in %s.\n", name, t.app, t.env);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	buf_free(&path);
	cli_app_close(&t, &c);
	return rc;
}

int cmd_volumes(struct cli_opts *o)
{
	const char *sub = o->npos ? o->pos[0] : "list";
	if (!strcmp(sub, "list")) {
		if (o->npos > 1)
			return cli_usage_error("volumes", "volumes list takes no arguments, got \"%s\"",
					       o->pos[1]);
		return cli_app_get(o, "/volumes", show_list);
	}
	if (!strcmp(sub, "rm"))
		return rm(o);
	return cli_usage_error("volumes", "unknown volumes command \"%s\" (list or rm)", sub);
}
