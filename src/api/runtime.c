/* api/runtime: what runs now and what it printed: instances, logs (tail and follow), and
 * volumes. Reads the supervisor's view through the reconciler and the log files through
 * logs/; changes nothing except `DELETE volumes/V`. */
#include "api/internal.h"
#include "logs/logs.h"
#include "oneoff/oneoff.h"
#include "model/model.h"
#include "util/fsutil.h"
#include "util/timeutil.h"
#include <dirent.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void api_instances(struct ctx *c)
{
	if (api_need_app(c) < 0)
		return;
	http_respond_json(c->req, 200, json_pack("{s:o, s:o}", "instances", reconciler_instances(c->api->rc, c->env, c->app),
						 "oneoffs", oneoffs_list(reconciler_oneoffs(c->api->rc), c->env, c->app)));
}

/* ---- logs ---- */

static void line_json(struct buf *b, const struct log_line *l)
{
	char ts[40], id[80];
	snprintf(id, sizeof id, "%s.%d", l->process, l->slot);
	json_t *j = json_object();
	json_object_set_new(j, "ts", json_string(time_format_rfc3339(l->ts_us, ts, sizeof ts)));
	json_object_set_new(j, "instance", json_string(id));
	json_object_set_new(j, "process", json_string(l->process));
	json_object_set_new(j, "slot", json_integer(l->slot));
	json_object_set_new(j, "release", json_integer(l->release));
	json_object_set_new(j, "stream", json_string(l->stream == 2 ? "err" : l->stream == LOGS_STREAM_BERTH ? "berth" : "out"));
	/* Logs are bytes; keep invalid UTF-8 visible rather than failing the line. */
	json_t *text = json_stringn(l->text, l->len);
	if (!text) {
		struct buf s = BUF_INIT;
		for (size_t k = 0; k < l->len; k++)
			buf_addc(&s, (unsigned char)l->text[k] < 0x80 ? l->text[k] : '?');
		text = json_stringn(s.p ? s.p : "", s.len);
		buf_free(&s);
	}
	json_object_set_new(j, "line", text);
	char *s = json_dumps(j, JSON_COMPACT);
	buf_adds(b, s);
	buf_addc(b, '\n');
	free(s);
	json_decref(j);
}

static void collect_line(void *arg, const struct log_line *l)
{
	line_json(arg, l);
}

struct follow {
	struct http_req *req;
	struct logs_sub *sub;
	unsigned streams;      /* LOGS_STREAM_BIT mask of the lines wanted */
};

static void follow_line(void *arg, const struct log_line *l)
{
	struct follow *f = arg;
	if (!(f->streams & LOGS_STREAM_BIT(l->stream)))
		return;
	struct buf b = BUF_INIT;
	line_json(&b, l);
	http_stream_write(f->req, b.p, b.len);
	buf_free(&b);
}

static void follow_abort(struct http_req *r, void *arg)
{
	struct follow *f = arg;
	logs_unsubscribe(f->sub);
	free(f);
}

/* Logs of one-offs go under their kind instead of a process name. */
static bool oneoff_kind(const char *proc)
{
	static const char *const kinds[] = {"build", "release", "run", "exec", NULL};
	for (size_t k = 0; kinds[k]; k++)
		if (!strcmp(proc, kinds[k]))
			return true;
	return !strncmp(proc, "cron.", 5) && name_valid(proc + 5);
}

/* ?process=P must name a process of the app (api_app_manifest) or a one-off kind: a typo
 * would otherwise show nothing, or follow nothing forever. 0, or -1 with e (ERR_INVALID). */
static int check_log_process(struct api *a, json_t *app, const char *proc, struct err *e)
{
	if (oneoff_kind(proc))
		return 0;
	const char *name = model_json_str(app, "name", "");
	json_t *m = name_valid(proc) ? api_app_manifest(a, app, e) : NULL;
	if (!m && e->code)
		return -1;
	struct buf names = BUF_INIT;
	bool found = m && api_manifest_process(m, proc, &names);
	json_decref(m);
	if (!found) {
		if (m)
			err_set(e, ERR_INVALID, "%s has no process \"%.100s\" (its processes: %s; one-offs: build, "
				"release, run, exec, cron.NAME)", name, proc, buf_str(&names));
		else
			err_set(e, ERR_INVALID, "%s has no process \"%.100s\"%s (one-offs: build, release, run, "
				"exec, cron.NAME)", name, proc, name_valid(proc) ? ": it has no release yet" : "");
	}
	buf_free(&names);
	return found ? 0 : -1;
}

void api_logs(struct ctx *c)
{
	struct err e = ERR_INIT;
	struct http_req *r = c->req;
	const char *proc = http_req_query(r, "process");
	if (proc && !*proc)
		proc = NULL;
	if (strcmp(c->env, API_SYSTEM_ENV)) {
		json_t *app = api_app_doc(c->api, c->env, c->app, NULL, &e);
		if (!app || (proc && check_log_process(c->api, app, proc, &e) < 0)) {
			json_decref(app);
			api_fail(r, &e);
			return;
		}
		json_decref(app);
	}
	int n = 100;
	const char *q = http_req_query(r, "n");
	if (q && *q) {
		char *end;
		long v = strtol(q, &end, 10);
		if (*end || v < 0 || v > 1000000) {
			http_respond_error(r, 400, "n must be a number of lines from 0 to 1000000");
			return;
		}
		n = (int)v;
	}
	int64_t since = 0;
	q = http_req_query(r, "since");
	if (q && *q) {
		int64_t ms;
		if (time_parse_rfc3339(q, &since) < 0) {
			if (time_parse_duration_ms(q, &ms) < 0) {
				http_respond_error(r, 400, "since must be a time like 2026-11-24T20:00:00Z or a duration like 10m");
				return;
			}
			since = time_now_us() - ms * 1000;
		}
	}
	if (proc && !name_valid(proc) && !oneoff_kind(proc)) {
		http_respond_error(r, 400, "process must be a process name");
		return;
	}
	/* ?source=app: the app's own output only; source=berth: only berth's lines about the
	 * instances (started, healthy, crashed ...); default both, as Heroku's --source. */
	unsigned streams = LOGS_ALL_STREAMS;
	q = http_req_query(r, "source");
	if (q && *q) {
		if (!strcmp(q, "app"))
			streams = LOGS_STREAM_BIT(1) | LOGS_STREAM_BIT(2);
		else if (!strcmp(q, "berth"))
			streams = LOGS_STREAM_BIT(LOGS_STREAM_BERTH);
		else if (strcmp(q, "all")) {
			http_respond_error(r, 400, "source must be app, berth or all");
			return;
		}
	}
	const char *fq = http_req_query(r, "follow");
	bool follow = fq && (!strcmp(fq, "1") || !strcmp(fq, "true"));
	struct buf b = BUF_INIT;
	if (n > 0 || since) {
		if (logs_read_streams(c->api->logs, c->env, c->app, proc, streams, n, since, collect_line, &b, &e) < 0) {
			buf_free(&b);
			api_fail(r, &e);
			return;
		}
	}
	if (!follow) {
		http_respond(r, 200, "application/x-ndjson", b.p ? b.p : "", b.len, NULL);
		buf_free(&b);
		return;
	}
	http_stream_start(r, 200, "application/x-ndjson");
	if (b.len)
		http_stream_write(r, b.p, b.len);
	buf_free(&b);
	struct follow *f = xcalloc(1, sizeof *f);
	f->req = r;
	f->streams = streams;
	f->sub = logs_subscribe(c->api->logs, c->env, c->app, proc, follow_line, f);
	http_req_on_abort(r, follow_abort, f);
}

/* ---- volumes ---- */

static int64_t du_total;
static int du_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_F)
		du_total += st->st_size;
	return 0;
}

void api_volumes(struct ctx *c)
{
	if (api_need_app(c) < 0)
		return;
	char *dir = xasprintf("%s/volumes/%s/%s", c->api->data_dir, c->env, c->app);
	json_t *arr = json_array();
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *path = reconciler_volume_path(c->api->rc, c->env, c->app, de->d_name);
		du_total = 0;
		nftw(path, du_one, 16, FTW_PHYS);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:b}", "name", de->d_name, "path", path, "bytes",
						     (json_int_t)du_total, "in_use",
						     reconciler_volume_in_use(c->api->rc, c->env, c->app, de->d_name)));
		free(path);
	}
	if (d)
		closedir(d);
	free(dir);
	http_respond_json(c->req, 200, json_pack("{s:o}", "volumes", arr));
}

void api_volume_delete(struct ctx *c, const char *name)
{
	struct err e = ERR_INIT;
	if (!name_valid(name)) {
		http_respond_error(c->req, 400, "volume names match [a-z0-9][a-z0-9-]*");
		return;
	}
	char *path = reconciler_volume_path(c->api->rc, c->env, c->app, name);
	if (!fs_exists(path)) {
		free(path);
		http_respond_error(c->req, 404, "no such volume");
		return;
	}
	if (reconciler_volume_in_use(c->api->rc, c->env, c->app, name)) {
		free(path);
		http_respond_error(c->req, 409, "the volume is in use by running instances; scale them to 0 or stop the app first");
		return;
	}
	int r = fs_rm_rf(path, &e);
	free(path);
	if (r < 0)
		api_fail(c->req, &e);
	else
		http_respond_json(c->req, 200, json_pack("{s:b}", "deleted", 1));
}
