/* cli/ps: `berth ps`: the instances of one app, with state, pid, port, restart count, uptime
 * and how the last run ended, so a crash loop is visible at a glance. */
#include <inttypes.h>
#include <string.h>
#include "cli/cmd.h"
#include "util/timeutil.h"
#include "cli/output.h"

static void int_cell(struct buf *b, json_t *v)
{
	if (json_is_integer(v))
		buf_addf(b, "%" PRId64, (int64_t)json_integer_value(v));
	else
		buf_adds(b, "-");
}

/* A container's image as people read it: the digest's first 12 hex, else the id's. */
static void image_cell(struct buf *b, json_t *in)
{
	const char *dg = json_string_value(json_object_get(in, "image_digest"));
	const char *id = json_string_value(json_object_get(in, "image"));
	const char *at = dg ? strchr(dg, '@') : NULL;
	if (at)
		buf_addf(b, "%.19s", at + 1);
	else if (id)
		buf_addf(b, "%.19s", id);
	else
		buf_adds(b, "-");
}

static void show(json_t *instances)
{
	size_t i;
	json_t *in;
	bool images = false;
	json_array_foreach(instances, i, in)
		images |= json_object_get(in, "container") != NULL;
	static const char *const head[] = {"INSTANCE", "RELEASE", "STATE", "PID", "PORT",
					   "RESTARTS", "UPTIME", "LAST EXIT"};
	static const char *const chead[] = {"INSTANCE", "RELEASE", "STATE", "PID/CONTAINER", "PORT",
					    "RESTARTS", "UPTIME", "IMAGE", "LAST EXIT"};
	struct table *t = images ? table_new(9, chead) : table_new(8, head);
	json_array_foreach(instances, i, in) {
		struct buf rel = BUF_INIT, state = BUF_INIT, pid = BUF_INIT, port = BUF_INIT,
			   restarts = BUF_INIT, up = BUF_INIT;
		fmt_release(&rel, json_object_get(in, "release"));
		const char *st = json_string_value(json_object_get(in, "state"));
		buf_adds(&state, st ? st : "-");
		json_t *next = json_object_get(in, "next_restart_s");
		if (json_is_number(next)) {
			buf_adds(&state, " (restart in ");
			fmt_duration(&state, json_number_value(next));
			buf_adds(&state, ")");
		}
		const char *ctr = json_string_value(json_object_get(in, "container"));
		if (ctr)
			buf_addf(&pid, "%.12s", ctr);
		else
			int_cell(&pid, json_object_get(in, "pid"));
		int_cell(&port, json_object_get(in, "port"));
		int_cell(&restarts, json_object_get(in, "restarts"));
		json_t *uptime = json_object_get(in, "uptime_s");
		if (json_is_number(uptime))
			fmt_duration(&up, json_number_value(uptime));
		struct buf img = BUF_INIT;
		image_cell(&img, in);
		const char *row[] = {json_string_value(json_object_get(in, "id")), rel.p, state.p,
				     pid.p, port.p, restarts.p, up.p,
				     json_string_value(json_object_get(in, "last_exit")), NULL};
		if (images) {
			row[8] = row[7];
			row[7] = img.p;
		}
		table_add(t, row);
		buf_free(&img);
		buf_free(&rel);
		buf_free(&state);
		buf_free(&pid);
		buf_free(&port);
		buf_free(&restarts);
		buf_free(&up);
	}
	table_print(t, stdout);
	table_free(t);
}

/* One-offs running now: run/exec sessions, a build, the release phase, cron runs. */
static void show_oneoffs(json_t *oo)
{
	static const char *const head[] = {"ONE-OFF", "RELEASE", "PID", "STARTED", "COMMAND"};
	struct table *t = table_new(5, head);
	int64_t now = time_now_us();
	size_t i;
	json_t *o;
	json_array_foreach(oo, i, o) {
		struct buf rel = BUF_INIT, pid = BUF_INIT, started = BUF_INIT;
		fmt_release(&rel, json_object_get(o, "release"));
		buf_addf(&pid, "%lld", (long long)json_integer_value(json_object_get(o, "pid")));
		fmt_ago_str(&started, json_string_value(json_object_get(o, "started_at")), now);
		const char *kind = json_string_value(json_object_get(o, "kind"));
		/* A user's command line may hold secrets: show it only for berth's own kinds. */
		bool own = kind && strcmp(kind, "run") && strcmp(kind, "exec");
		const char *row[] = {json_string_value(json_object_get(o, "id")), rel.len ? rel.p : "-", pid.p, started.p,
				     own ? json_string_value(json_object_get(o, "command")) : "(berth run/exec)"};
		table_add(t, row);
		buf_free(&rel);
		buf_free(&pid);
		buf_free(&started);
	}
	printf("\n");
	table_print(t, stdout);
	table_free(t);
}

static void show_doc(json_t *doc, const struct cli_target *t)
{
	json_t *inst = json_object_get(doc, "instances");
	json_t *oo = json_object_get(doc, "oneoffs");
	if (!json_array_size(inst))
		printf("No instances of %s in %s (not deployed yet, stopped, or scaled to 0).\n",
		       t->app, t->env);
	else
		show(inst);
	if (json_array_size(oo))
		show_oneoffs(oo);
}

int cmd_ps(struct cli_opts *o)
{
	if (o->npos)
		return cli_usage_error("ps", "ps takes no arguments, got \"%s\"", o->pos[0]);
	return cli_app_get(o, "/instances", show_doc);
}
