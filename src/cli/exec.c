/* cli/exec: `berth exec INSTANCE [-t|-T] [--] CMD [ARGS...]`: run a command beside a running
 * instance (web.1): in its directory, with its environment, in its cgroup; attached
 * (cli/attach.c) until it ends, with its exit status. */
#include <stdlib.h>
#include <string.h>
#include "cli/attach.h"
#include "cli/cmd.h"
#include "manifest/manifest.h"

/* PROCESS.N, as `berth ps` shows it. */
static bool instance_valid(const char *s)
{
	const char *dot = strrchr(s, '.');
	if (!dot || !dot[1] || strspn(dot + 1, "0123456789") != strlen(dot + 1) ||
	    strlen(dot + 1) > 9)
		return false;
	char *proc = xstrndup(s, (size_t)(dot - s));
	bool ok = name_valid(proc);
	free(proc);
	return ok;
}

int cmd_exec(struct cli_opts *o)
{
	if (!o->npos)
		return cli_usage_error("exec", "no instance given: which one? e.g. "
				       "`berth exec web.1 -- sh` (`berth ps` lists them)");
	const char *inst = o->pos[0];
	if (!instance_valid(inst))
		return cli_usage_error("exec", "\"%s\" is not an instance: expected PROCESS.N as "
				       "`berth ps` shows them, e.g. web.1", inst);
	if (o->npos < 2)
		return cli_usage_error("exec", "no command given: what should run beside %s? e.g. "
				       "`berth exec %s -- sh`", inst, inst);
	bool tty;
	if (attach_want_tty(o, "exec", &tty))
		return EXIT_USAGE;
	struct err e = ERR_INIT;
	json_t *argv = attach_argv(o->npos - 1, o->pos + 1, &e);
	if (!argv)
		return cli_usage_error("exec", "%s", e.msg);
	json_t *body = json_object();
	json_object_set_new(body, "argv", argv);

	struct cli_target t;
	struct client c;
	struct buf path = BUF_INIT;
	int rc = cli_target(o, &t);
	if (rc)
		goto out;
	if ((rc = cli_connect(o, &c)))
		goto out_target;
	cli_app_path(&path, &t, "/instances/");
	client_escape(&path, inst);
	buf_adds(&path, "/exec");
	rc = attach_run(&c, path.p, body, tty);
	client_close(&c);
out_target:
	cli_target_free(&t);
out:
	buf_free(&path);
	json_decref(body);
	return rc;
}
