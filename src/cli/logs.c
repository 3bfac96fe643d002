/* cli/logs: `berth logs [-f] [-n N] [--process P] [--since T]`: an app's console output,
 * merged across instances in time order by the server, one line each as
 * "2026-11-24T20:19:13.123Z web.1 v3 | text" (stderr lines "... web.1 v3 err| text").
 * With -f the stream stays open and new lines appear as they are written, until Ctrl-C.
 * `berth logs --router` reads the HTTP router's access log the same way, one request per
 * line as "2026-11-24T20:19:13.130Z router | <access-log line>". */
#include <inttypes.h>
#include <string.h>
#include "cli/cmd.h"
#include "cli/output.h"
#include "manifest/manifest.h"
#include "util/timeutil.h"

#define DEFAULT_LINES 100
#define MAX_LINES 1000000

struct logview {
	bool json;
	bool router;   /* access-log lines: "<ts> router | <line>" */
	bool failed;   /* the server reported an error inside the stream */
};

static int on_line(const char *line, size_t len, void *ud)
{
	struct logview *lv = ud;
	json_t *j = json_loadb(line, len, 0, NULL);
	const char *error = json_string_value(json_object_get(j, "error"));
	if (error) {
		fflush(stdout);
		fprintf(stderr, "berth: %s\n", error);
		lv->failed = true;
		json_decref(j);
		return 1;
	}
	if (lv->json) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
	} else if (!json_is_object(j)) {
		fprintf(stdout, "%.*s\n", (int)len, line);
	} else {
		struct buf b = BUF_INIT;
		fmt_ts_ms(&b, json_string_value(json_object_get(j, "ts")));
		if (lv->router) {
			buf_adds(&b, " router | ");
		} else {
			const char *inst = json_string_value(json_object_get(j, "instance"));
			buf_addf(&b, " %s ", inst ? inst : "-");
			fmt_release(&b, json_object_get(j, "release"));
			const char *stream = json_string_value(json_object_get(j, "stream"));
			buf_adds(&b, stream && !strcmp(stream, "err") ? " err| " :
				     stream && !strcmp(stream, "berth") ? " berth| " : " | ");
		}
		json_t *text = json_object_get(j, "line");
		if (json_is_string(text))
			buf_add(&b, json_string_value(text), json_string_length(text));
		buf_addc(&b, '\n');
		fwrite(b.p, 1, b.len, stdout);
		buf_free(&b);
	}
	json_decref(j);
	return cli_flush() ? 2 : 0;
}

/* Stream path to stdout; the verb's exit status. */
static int stream(const struct cli_opts *o, struct client *c, const char *path)
{
	struct logview lv = {.json = o->json, .router = o->router};
	struct err e = ERR_INIT;
	int src = client_stream(c, "GET", path, NULL, NULL, 0, on_line, &lv, &e);
	if (src < 0)
		return cli_fail(&e);
	if (lv.failed || src == 2)
		return EXIT_FAIL;
	if (o->follow) {
		err_set(&e, ERR_UNAVAILABLE, "the server ended the log stream");
		return cli_fail(&e);
	}
	return EXIT_OK;
}

/* "?n=N[&follow=1][&process=P][&since=T]" */
static void add_query(struct buf *path, const struct cli_opts *o, int64_t n)
{
	buf_addf(path, "?n=%" PRId64, n);
	if (o->follow)
		buf_adds(path, "&follow=1");
	if (o->process) {
		buf_adds(path, "&process=");
		client_escape(path, o->process);
	}
	if (o->since) {
		buf_adds(path, "&since=");
		client_escape(path, o->since);
	}
	if (o->source) {
		buf_adds(path, "&source=");
		client_escape(path, o->source);
	}
}

int cmd_logs(struct cli_opts *o)
{
	if (o->source && strcmp(o->source, "app") && strcmp(o->source, "berth") && strcmp(o->source, "all"))
		return cli_usage_error("logs", "--source is app, berth or all, got \"%s\"", o->source);
	if (o->npos)
		return cli_usage_error("logs", "logs takes no arguments, got \"%s\" (use --process "
				       "to pick a process)", o->pos[0]);
	int64_t n = DEFAULT_LINES, us, ms;
	if (o->lines && cli_parse_count(o->lines, MAX_LINES, &n))
		return cli_usage_error("logs", "-n wants a number of lines from 0 to %d, got \"%s\"",
				       MAX_LINES, o->lines);
	if (o->since && time_parse_rfc3339(o->since, &us) && time_parse_duration_ms(o->since, &ms))
		return cli_usage_error("logs", "--since wants a time like 2026-11-24T20:00:00Z or a "
				       "duration like 10m or 2h, got \"%s\"", o->since);
	if (o->process && !name_valid(o->process) &&
	    !(!strncmp(o->process, "cron.", 5) && name_valid(o->process + 5)))
		return cli_usage_error("logs", "\"%s\" is not a process name (nor cron.JOB)", o->process);
	if (o->router && (o->set & (F_APP | F_ENV | F_PROCESS)))
		return cli_usage_error("logs", "--router shows the router's access log: it takes no "
				       "--%s", cli_flag_name(o->set & F_APP ? F_APP :
							     o->set & F_ENV ? F_ENV : F_PROCESS));

	struct cli_target t = {0};
	struct client c;
	struct buf path = BUF_INIT;
	int rc;
	if (!o->router && (rc = cli_target(o, &t)))
		return rc;
	if ((rc = cli_connect(o, &c))) {
		cli_target_free(&t);
		return rc;
	}
	if (o->router)
		buf_adds(&path, "/v1/router/logs");
	else
		cli_app_path(&path, &t, "/logs");
	add_query(&path, o, n);
	rc = stream(o, &c, path.p);
	buf_free(&path);
	client_close(&c);
	cli_target_free(&t);
	return rc;
}
