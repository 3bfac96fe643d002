/* cli/cmd: what the verb files (deploy.c, ps.c, ...) share: the verb entry points, exit
 * codes, finding the (env, app) a verb acts on, connecting, printing errors once, and
 * running a progress stream. Internal to src/cli; the public face is cli.h. */
#ifndef BERTH_CLI_CMD_H
#define BERTH_CLI_CMD_H
#include <stdbool.h>
#include <stdio.h>
#include <jansson.h>
#include "cli/args.h"
#include "cli/client.h"
#include "util/buf.h"
#include "util/err.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define DEFAULT_ENV "production"

/* Verbs: each gets the parsed command line (positional args after the verb) and returns
 * the exit status, having printed everything itself. */
int cmd_deploy(struct cli_opts *o);
int cmd_apps(struct cli_opts *o);
int cmd_envs(struct cli_opts *o);
int cmd_ps(struct cli_opts *o);
int cmd_scale(struct cli_opts *o);
int cmd_logs(struct cli_opts *o);
int cmd_releases(struct cli_opts *o);
int cmd_rollback(struct cli_opts *o);
int cmd_config(struct cli_opts *o);
int cmd_restart(struct cli_opts *o);
int cmd_stop(struct cli_opts *o);
int cmd_start(struct cli_opts *o);
int cmd_volumes(struct cli_opts *o);
int cmd_tokens(struct cli_opts *o);
int cmd_registry(struct cli_opts *o);
int cmd_routes(struct cli_opts *o);
int cmd_maintenance(struct cli_opts *o);
int cmd_cron(struct cli_opts *o);
int cmd_run(struct cli_opts *o);
int cmd_exec(struct cli_opts *o);

/* The app a verb acts on. Owned strings; free with cli_target_free. */
struct cli_target {
	char *app;
	char *env;
};

/* --app/--env, else app:/env: of ./berth.yaml, env defaulting to "production". Prints the
 * problem and returns its exit status (2: no app / bad name, 1: unreadable berth.yaml), or 0. */
int cli_target(const struct cli_opts *o, struct cli_target *t);
/* Same with the defaults already read (deploy reads them from DIR's manifest); from names
 * the file they came from, for messages. */
int cli_target_with(const struct cli_opts *o, const char *yaml_app, const char *yaml_env,
		    const char *from, struct cli_target *t);
void cli_target_free(struct cli_target *t);
/* Read the top-level app: and env: keys of a berth.yaml (and nothing else, so a file that is
 * mid-edit elsewhere does not stop `berth logs`). Absent file: 0 with both NULL. Owned
 * strings out; -1 with e naming file:line:col on a syntax error or a non-string value. */
int cli_yaml_defaults(const char *path, char **app, char **env, struct err *e);

/* "/v1/envs/E/apps/A" + suffix into b, names escaped. */
void cli_app_path(struct buf *b, const struct cli_target *t, const char *suffix);

/* Open the client from the connection flags; prints and returns EXIT_FAIL, or 0. */
int cli_connect(const struct cli_opts *o, struct client *c);

/* Print "berth: MSG" once on stderr. Returns EXIT_FAIL. */
int cli_fail(const struct err *e);
/* A usage error: "berth: MSG" and the verb's usage line on stderr. Returns EXIT_USAGE. */
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The verb's usage lines (from the verb table in cli.c). */
void cli_print_usage(FILE *f, const char *verb);

/* A listing verb: GET path; with --json the document, else show(doc[key]) or, when that
 * array is empty, the line `empty`. Returns the exit status. */
int cli_list(const struct cli_opts *o, struct client *c, const char *path, const char *key, const char *empty,
	     void (*show)(json_t *items));
/* A removing verb: DELETE path; with --json the answer, else `done` (a line, printed as is).
 * Returns the exit status. */
int cli_delete(const struct cli_opts *o, struct client *c, const char *path, const char *done);
/* --json output of a GET: the server's document on stdout. Returns the exit status. */
int cli_print_json(json_t *doc);
/* Write and flush stdout; 0 or -1 when stdout is gone. */
int cli_flush(void);

/* POST a change and render its progress stream (see progress.c). body/n with ctype; json:
 * print the raw NDJSON events instead. Returns 0 iff the done event says ok. */
int cli_progress(struct client *c, const char *path, const char *ctype, const void *body,
		 size_t n, bool json);
/* Same for a JSON body (may be NULL: an empty request body). */
int cli_progress_json(struct client *c, const char *path, json_t *body, bool json);

/* The app a verb acts on (cli_target) and a client connected for it; prints the problem and
 * returns its exit status, or 0 (then close both with cli_app_close). */
int cli_app_open(const struct cli_opts *o, struct cli_target *t, struct client *c);
void cli_app_close(struct cli_target *t, struct client *c);

/* Shared one-liners of the GET verbs: fetch path as JSON, printing any error. Returns the
 * object or NULL. */
json_t *cli_get(struct client *c, const char *path);

/* The whole of a GET verb on one app: find the app, connect, GET its resource at suffix
 * ("/instances"), then print the document (--json) or call show. Returns the exit status. */
typedef void (*cli_show_fn)(json_t *doc, const struct cli_target *t);
int cli_app_get(const struct cli_opts *o, const char *suffix, cli_show_fn show);
/* The whole of a change verb on one app: find the app, connect, POST body (NULL: empty)
 * to suffix ("/scale") and render the progress stream. Returns the exit status. */
int cli_app_change(const struct cli_opts *o, const char *suffix, json_t *body);
/* A JSON call on one app whose answer carries a "message": find the app, connect, METHOD
 * suffix (path and query, escaped) with body (may be NULL), then print the document (--json)
 * or "-----> message" (and its "warning" on stderr). Returns the exit status. */
int cli_app_call(const struct cli_opts *o, const char *method, const char *suffix, json_t *body);

#endif
