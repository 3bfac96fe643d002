/* cli/run: `berth run [--process P] [--size PROFILE] [-d] [-t|-T] [--] CMD [ARGS...]`: run a
 * command in a new temporary instance of the live release (the env, config, volumes and
 * profile of process P; no port, no route) and stay attached to it (cli/attach.c) until it
 * ends, with its exit status; or, with -d, leave it running and print its id. */
#include <string.h>
#include "cli/attach.h"
#include "cli/cmd.h"
#include "manifest/manifest.h"

/* -d: a plain POST; the answer is {"id","message"}. The id alone goes to stdout. */
static int detached(struct client *c, const char *path, json_t *body)
{
	struct err e = ERR_INIT;
	json_t *doc = NULL;
	if (client_json(c, "POST", path, body, &doc, &e))
		return cli_fail(&e);
	const char *id = json_string_value(json_object_get(doc, "id"));
	const char *msg = json_string_value(json_object_get(doc, "message"));
	int rc;
	if (!id) {
		err_set(&e, ERR_INTERNAL, "the server's answer has no id");
		rc = cli_fail(&e);
	} else {
		if (msg && *msg)
			fprintf(stderr, "%s\n", msg);
		printf("%s\n", id);
		rc = cli_flush() ? EXIT_FAIL : EXIT_OK;
	}
	json_decref(doc);
	return rc;
}

int cmd_run(struct cli_opts *o)
{
	if (!o->npos)
		return cli_usage_error("run", "no command given: what should run? e.g. "
				       "`berth run -- sh -c 'echo hi'`");
	if (o->process && !name_valid(o->process))
		return cli_usage_error("run", "\"%s\" is not a process name (lowercase letters, digits "
				       "and '-', at most 63)", o->process);
	if (o->detach && (o->tty || o->no_tty))
		return cli_usage_error("run", "-d runs the command in the background: it has no "
				       "terminal to choose (-t/-T)");
	bool tty = false;
	if (!o->detach && attach_want_tty(o, "run", &tty))
		return EXIT_USAGE;
	struct err e = ERR_INIT;
	json_t *argv = attach_argv(o->npos, o->pos, &e);
	if (!argv)
		return cli_usage_error("run", "%s", e.msg);

	json_t *body = json_object();
	json_object_set_new(body, "argv", argv);
	if (o->process)
		json_object_set_new(body, "process", json_string(o->process));
	if (o->size) {
		json_t *size = json_string(o->size);
		if (!size) {
			json_decref(body);
			return cli_usage_error("run", "the --size value is not valid UTF-8");
		}
		json_object_set_new(body, "size", size);
	}
	json_object_set_new(body, "detach", json_boolean(o->detach));

	struct cli_target t;
	struct client c;
	struct buf path = BUF_INIT;
	int rc = cli_target(o, &t);
	if (rc)
		goto out;
	if ((rc = cli_connect(o, &c)))
		goto out_target;
	cli_app_path(&path, &t, "/run");
	rc = o->detach ? detached(&c, path.p, body) : attach_run(&c, path.p, body, tty);
	client_close(&c);
out_target:
	cli_target_free(&t);
out:
	buf_free(&path);
	json_decref(body);
	return rc;
}
