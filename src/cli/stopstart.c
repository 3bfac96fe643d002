/* cli/stopstart: `berth stop` and `berth start`: take every instance of an app down (the
 * release and formation are kept) and bring them back. */
#include "cli/cmd.h"

static int run(struct cli_opts *o, const char *verb, const char *suffix)
{
	if (o->npos)
		return cli_usage_error(verb, "%s takes no arguments, got \"%s\"", verb, o->pos[0]);
	return cli_app_change(o, suffix, NULL);
}

int cmd_stop(struct cli_opts *o)
{
	return run(o, "stop", "/stop");
}

int cmd_start(struct cli_opts *o)
{
	return run(o, "start", "/start");
}
