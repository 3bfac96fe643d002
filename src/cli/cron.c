/* cli/cron: `berth cron` lists the cron jobs of an app's live release with their last run
 * (start, duration, result) and next run; `berth cron run NAME` starts one now. */
#include <string.h>
#include "cli/cmd.h"
#include "cli/output.h"
#include "util/timeutil.h"

static void show(json_t *doc, const struct cli_target *t)
{
	json_t *jobs = json_object_get(doc, "jobs");
	if (!json_array_size(jobs)) {
		printf("%s (%s) has no cron jobs: add them under cron: in berth.yaml (docs/oneoffs.md).\n", t->app, t->env);
		return;
	}
	static const char *const head[] = {"JOB", "SCHEDULE", "LAST RUN", "DURATION", "RESULT", "NEXT RUN"};
	struct table *tb = table_new(6, head);
	int64_t now = time_now_us();
	size_t i;
	json_t *j;
	json_array_foreach(jobs, i, j) {
		struct buf sched = BUF_INIT, last = BUF_INIT, dur = BUF_INIT, res = BUF_INIT, next = BUF_INIT;
		buf_addf(&sched, "%s (%s)", json_string_value(json_object_get(j, "schedule")),
			 json_string_value(json_object_get(j, "timezone")));
		const char *ls = json_string_value(json_object_get(j, "last_start"));
		if (ls)
			fmt_ago_str(&last, ls, now);
		json_t *d = json_object_get(j, "last_duration_ms");
		if (json_is_integer(d))
			fmt_duration(&dur, (double)json_integer_value(d) / 1000.0);
		int running = (int)json_integer_value(json_object_get(j, "running"));
		const char *r = json_string_value(json_object_get(j, "last_result"));
		if (running)
			buf_addf(&res, "running (%d)", running);
		else if (r)
			buf_adds(&res, r);
		const char *nx = json_string_value(json_object_get(j, "next_run"));
		if (nx)
			buf_adds(&next, nx);
		const char *row[] = {json_string_value(json_object_get(j, "name")), sched.p, last.len ? last.p : "never",
				     dur.p, res.p, next.p};
		table_add(tb, row);
		buf_free(&sched);
		buf_free(&last);
		buf_free(&dur);
		buf_free(&res);
		buf_free(&next);
	}
	table_print(tb, stdout);
	table_free(tb);
}

static int cron_run(struct cli_opts *o, const char *job)
{
	struct buf suffix = BUF_INIT;
	buf_adds(&suffix, "/cron/");
	client_escape(&suffix, job);
	buf_adds(&suffix, "/run");
	int rc = cli_app_call(o, "POST", suffix.p, NULL);
	buf_free(&suffix);
	return rc;
}

int cmd_cron(struct cli_opts *o)
{
	if (o->npos == 0 || (o->npos == 1 && !strcmp(o->pos[0], "list")))
		return cli_app_get(o, "/cron", show);
	if (!strcmp(o->pos[0], "run")) {
		if (o->npos != 2)
			return cli_usage_error("cron", "cron run takes one job name");
		return cron_run(o, o->pos[1]);
	}
	return cli_usage_error("cron", "unknown cron command \"%s\" (list or run NAME)", o->pos[0]);
}
