/* cli/restart: `berth restart [PROCESS | PROCESS.N]`: replace every instance (or those of one
 * process) with a fresh one of the same release, one at a time, each gated by its health
 * check; or only the instance PROCESS.N (as `berth ps` names it): with a port, its replacement
 * is healthy before it stops; without, it stops and then starts again. */
#include <stdlib.h>
#include <string.h>
#include "cli/cmd.h"
#include "manifest/manifest.h"

/* "web" or "web.2" into the request body; a usage error (printed) otherwise. */
static int restart_body(const char *arg, json_t *body)
{
	const char *dot = strrchr(arg, '.');
	char proc[64];
	int64_t slot = 0;
	size_t n = dot ? (size_t)(dot - arg) : strlen(arg);
	if (n >= sizeof proc)
		n = sizeof proc - 1;
	snprintf(proc, sizeof proc, "%.*s", (int)n, arg);
	if (!name_valid(proc) || (dot && (cli_parse_count(dot + 1, 10000, &slot) || slot < 1)))
		return cli_usage_error("restart", "\"%s\" is neither a process (web) nor an instance "
				       "(web.2)", arg);
	json_object_set_new(body, "process", json_string(proc));
	if (dot)
		json_object_set_new(body, "slot", json_integer(slot));
	return 0;
}

int cmd_restart(struct cli_opts *o)
{
	if (o->npos > 1)
		return cli_usage_error("restart", "restart takes at most one process or instance, got "
				       "%zu arguments", o->npos);
	json_t *body = json_object();
	int rc = o->npos ? restart_body(o->pos[0], body) : 0;
	if (!rc)
		rc = cli_app_change(o, "/restart", body);
	json_decref(body);
	return rc;
}
