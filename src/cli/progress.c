/* cli/progress: running a change (deploy, rollback, config, scale, restart, stop, start) and
 * showing its NDJSON progress stream as it happens: steps as "-----> text", instance events
 * indented under them, and the final done event deciding the exit status. With --json the
 * events are printed as they came, one per line. The server keeps going if we disconnect,
 * so a broken stream says so instead of claiming the change failed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cmd.h"
#include "cli/output.h"

#define INDENT "       "

struct progress {
	bool json;
	size_t events;      /* lines received */
	bool done, ok;
};

static bool is_step(const char *ev)
{
	static const char *const steps[] = {"release", "upload", "unpack", "rollback", "info", "build"};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
		if (!strcmp(ev, steps[i]))
			return true;
	return false;
}

/* The event's own text, or one made from its fields when it has none. */
static void event_text(json_t *ev, const char *event, struct buf *b)
{
	const char *msg = json_string_value(json_object_get(ev, "message"));
	if (msg && *msg) {
		buf_adds(b, msg);
		return;
	}
	const char *inst = json_string_value(json_object_get(ev, "instance"));
	json_t *rel = json_object_get(ev, "release");
	if (inst)
		buf_addf(b, "%s ", inst);
	if (json_is_integer(rel))
		buf_addf(b, "v%lld ", (long long)json_integer_value(rel));
	buf_adds(b, event);
}

/* Print one line of text (possibly from the server) with control bytes made visible. */
static void put_line(FILE *f, const char *prefix, const char *text)
{
	fputs(prefix, f);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		fputc(*p < 0x20 && *p != '\t' ? '?' : *p, f);
	fputc('\n', f);
}

static void render_done(json_t *ev, struct progress *pg)
{
	const char *msg = json_string_value(json_object_get(ev, "message"));
	if (pg->ok) {
		if (!pg->json)
			put_line(stdout, "-----> ", msg && *msg ? msg : "done");
		return;
	}
	fflush(stdout);
	const char *error = json_string_value(json_object_get(ev, "error"));
	put_line(stderr, "berth: ", error && *error ? error : msg && *msg ? msg : "the change failed");
	if (pg->json)
		return;
	json_t *logs = json_object_get(ev, "logs");
	size_t i;
	json_t *l;
	if (json_array_size(logs))
		fputs(INDENT "last log lines:\n", stderr);
	json_array_foreach(logs, i, l) {
		const char *text = json_string_value(l);
		if (!text)
			text = json_string_value(json_object_get(l, "line"));
		put_line(stderr, INDENT "| ", text ? text : "");
	}
	if (msg && *msg && (!error || strcmp(msg, error)))
		put_line(stderr, INDENT, msg);
}

static int on_event(const char *line, size_t len, void *ud)
{
	struct progress *pg = ud;
	pg->events++;
	if (pg->json) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
	}
	json_t *ev = json_loadb(line, len, 0, NULL);
	const char *event = json_string_value(json_object_get(ev, "event"));
	if (!event) {
		/* Not an event we understand: show it rather than hide it. */
		if (!pg->json) {
			char *text = xstrndup(line, len > 500 ? 500 : len);
			put_line(stdout, INDENT, text);
			free(text);
		}
	} else if (!strcmp(event, "done")) {
		pg->done = true;
		pg->ok = json_is_true(json_object_get(ev, "ok"));
		render_done(ev, pg);
	} else if (!pg->json) {
		struct buf b = BUF_INIT;
		event_text(ev, event, &b);
		put_line(stdout, is_step(event) ? "-----> " : INDENT, buf_str(&b));
		buf_free(&b);
	}
	json_decref(ev);
	if (cli_flush())
		return 1;   /* stdout is gone: nobody is watching any more */
	return pg->done ? 2 : 0;
}

/* Ctrl-C while a change is under way: the server goes on with it, so say that and how to
 * follow or stop it (written from the signal handler: one prepared message, write(2)). */
static char interrupt_msg[600];
static size_t interrupt_len;

static void on_interrupt(int sig)
{
	ssize_t w = write(2, interrupt_msg, interrupt_len);
	(void)w;
	_exit(128 + sig);
}

/* "/v1/envs/E/apps/A/..." -> the flags that name the app. */
static void prepare_interrupt(const char *path)
{
	char env[80] = "", app[80] = "";
	if (sscanf(path, "/v1/envs/%79[^/]/apps/%79[^/?]", env, app) != 2)
		return;
	int n = snprintf(interrupt_msg, sizeof interrupt_msg,
			 "\nberth: interrupted: the change goes on on the server. Follow it with `berth ps --app %s "
			 "--env %s` and `berth logs -f --app %s --env %s`; stop a rollout with `berth deploy --cancel "
			 "--app %s --env %s`.\n", app, env, app, env, app, env);
	interrupt_len = n > 0 && (size_t)n < sizeof interrupt_msg ? (size_t)n : 0;
	if (!interrupt_len)
		return;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_interrupt;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cli_progress(struct client *c, const char *path, const char *ctype, const void *body,
		 size_t n, bool json)
{
	struct progress pg = {.json = json};
	struct err e = ERR_INIT;
	prepare_interrupt(path);
	int rc = client_stream(c, "POST", path, ctype, body, n, on_event, &pg, &e);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (rc < 0) {
		if (pg.events)
			err_prefix(&e, "lost the progress stream (the change goes on on the server; see "
				       "`berth ps`)");
		return cli_fail(&e);
	}
	if (rc == 1)
		return EXIT_FAIL;
	if (!pg.done) {
		err_set(&e, ERR_UNAVAILABLE, "the server ended the progress stream before the change "
			"finished (it may still be going on; see `berth ps`)");
		return cli_fail(&e);
	}
	return pg.ok ? EXIT_OK : EXIT_FAIL;
}

int cli_progress_json(struct client *c, const char *path, json_t *body, bool json)
{
	char *data = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int rc = cli_progress(c, path, data ? "application/json" : NULL, data,
			      data ? strlen(data) : 0, json);
	free(data);
	return rc;
}
