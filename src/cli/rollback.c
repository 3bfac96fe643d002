/* cli/rollback: `berth rollback [vN]`: make a new release from an earlier one's code, config
 * and formation (default: the release before the live one) and roll it out. */
#include "cli/cmd.h"

int cmd_rollback(struct cli_opts *o)
{
	if (o->npos > 1)
		return cli_usage_error("rollback", "rollback takes at most one release, got %zu "
				       "arguments", o->npos);
	json_t *body = json_object();
	if (o->npos) {
		int64_t v;
		struct err e = ERR_INIT;
		if (cli_parse_version(o->pos[0], &v, &e)) {
			json_decref(body);
			return cli_usage_error("rollback", "%s", e.msg);
		}
		json_object_set_new(body, "version", json_integer(v));
	}
	if (o->run_release)
		json_object_set_new(body, "run_release", json_true());
	int rc = cli_app_change(o, "/rollback", body);
	json_decref(body);
	return rc;
}
