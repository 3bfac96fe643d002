/* cli/maintenance: `berth maintenance [on|off]`: an app's maintenance mode. While it is on,
 * the router answers every request for the app's hosts with a 503 maintenance page; the
 * instances keep running, and deploys go on. Without an argument, shows the state. The
 * server answers once the router routes with the new state (see api/maintenance.c). */
#include <string.h>
#include "cli/cmd.h"

/* The server's message, then the hosts that answer with the page while it is on. */
static void show(json_t *doc)
{
	const char *msg = json_string_value(json_object_get(doc, "message"));
	printf("%s.\n", msg ? msg : "?");
	json_t *hosts = json_object_get(doc, "hosts");
	if (!json_is_true(json_object_get(doc, "maintenance")) || !json_array_size(hosts))
		return;
	printf("Hosts: ");
	size_t i;
	json_t *h;
	json_array_foreach(hosts, i, h)
		printf("%s%s", i ? ", " : "", json_string_value(h) ? json_string_value(h) : "?");
	printf("\n");
}

int cmd_maintenance(struct cli_opts *o)
{
	if (o->npos > 1)
		return cli_usage_error("maintenance", "maintenance takes at most one argument (on or off), got %zu",
				       o->npos);
	const char *sub = o->npos ? o->pos[0] : NULL;
	if (sub && strcmp(sub, "on") && strcmp(sub, "off"))
		return cli_usage_error("maintenance", "maintenance takes on or off, got \"%s\"", sub);
	struct cli_target t;
	struct client c;
	int rc = cli_app_open(o, &t, &c);
	if (rc)
		return rc;
	struct buf path = BUF_INIT;
	cli_app_path(&path, &t, "/maintenance");
	json_t *body = sub ? json_pack("{s:b}", "on", !strcmp(sub, "on")) : NULL;
	json_t *doc = NULL;
	struct err e = ERR_INIT;
	if (client_json(&c, sub ? "POST" : "GET", path.p, body, &doc, &e)) {
		rc = cli_fail(&e);
	} else if (o->json) {
		rc = cli_print_json(doc);
	} else {
		show(doc);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	json_decref(body);
	buf_free(&path);
	cli_app_close(&t, &c);
	return rc;
}
