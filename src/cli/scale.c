/* cli/scale: `berth scale web=3 worker=0`: set how many instances of each process run (a new
 * release with the new formation, rolled out like a deploy). Without arguments: show the
 * current formation. Arguments are checked here first, so a typo never reaches the server. */
#include "cli/cmd.h"
#include "cli/output.h"

static void show_formation(json_t *doc, const struct cli_target *t)
{
	struct buf b = BUF_INIT;
	fmt_formation(&b, json_object_get(doc, "formation"));
	printf("%s\n", buf_str(&b));
	buf_free(&b);
}

int cmd_scale(struct cli_opts *o)
{
	if (!o->npos)
		return cli_app_get(o, "", show_formation);
	json_t *formation;
	struct err e = ERR_INIT;
	if (cli_parse_scale(o->npos, o->pos, &formation, &e))
		return cli_usage_error("scale", "%s", e.msg);
	json_t *body = json_pack("{so}", "formation", formation);
	int rc = cli_app_change(o, "/scale", body);
	json_decref(body);
	return rc;
}
