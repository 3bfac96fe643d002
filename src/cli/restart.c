/* cli/restart: `berth restart [PROCESS]`: replace every instance (or those of one process)
 * with a fresh one of the same release, one at a time, each gated by its health check. */
#include "cli/cmd.h"
#include "manifest/manifest.h"

int cmd_restart(struct cli_opts *o)
{
	if (o->npos > 1)
		return cli_usage_error("restart", "restart takes at most one process name, got %zu "
				       "arguments", o->npos);
	json_t *body = json_object();
	if (o->npos) {
		if (!name_valid(o->pos[0])) {
			json_decref(body);
			return cli_usage_error("restart", "\"%s\" is not a process name", o->pos[0]);
		}
		json_object_set_new(body, "process", json_string(o->pos[0]));
	}
	int rc = cli_app_change(o, "/restart", body);
	json_decref(body);
	return rc;
}
