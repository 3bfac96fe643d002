/* cli/releases: `berth releases`: an app's releases, newest first, with what changed in each
 * (code, config keys, formation) and, for a failed one, why. A CODE column appears when some
 * release's code directory was removed (release_keep in server.yaml): those cannot be rolled
 * back to. */
#include "cli/cmd.h"
#include "cli/output.h"
#include "util/timeutil.h"

/* Did the server say some release's code is gone? (Older servers send no "code_kept".) */
static bool some_code_removed(json_t *releases)
{
	size_t i;
	json_t *r;
	json_array_foreach(releases, i, r)
		if (json_is_false(json_object_get(r, "code_kept")))
			return true;
	return false;
}

static void show(json_t *releases)
{
	static const char *const head[] = {"VERSION", "STATUS", "CREATED", "DESCRIPTION", "CHANGES"};
	static const char *const head_code[] = {"VERSION", "STATUS", "CODE", "CREATED", "DESCRIPTION", "CHANGES"};
	bool with_code = some_code_removed(releases);
	struct table *t = with_code ? table_new(6, head_code) : table_new(5, head);
	int64_t now = time_now_us();
	size_t i;
	json_t *r;
	json_array_foreach(releases, i, r) {
		struct buf ver = BUF_INIT, created = BUF_INIT, desc = BUF_INIT, changes = BUF_INIT;
		fmt_release(&ver, json_object_get(r, "version"));
		fmt_ago_str(&created, json_string_value(json_object_get(r, "created_at")), now);
		const char *d = json_string_value(json_object_get(r, "description"));
		buf_adds(&desc, d ? d : "");
		json_t *rb = json_object_get(r, "rollback_of");
		if (json_is_integer(rb) && !desc.len)
			buf_addf(&desc, "Rollback to v%lld", (long long)json_integer_value(rb));
		const char *reason = json_string_value(json_object_get(r, "reason"));
		if (reason && *reason)
			buf_addf(&desc, "%s(failed: %s)", desc.len ? " " : "", reason);
		size_t k;
		json_t *ch;
		json_array_foreach(json_object_get(r, "changes"), k, ch) {
			const char *s = json_string_value(ch);
			if (s)
				buf_addf(&changes, "%s%s", changes.len ? ", " : "", s);
		}
		const char *status = json_string_value(json_object_get(r, "status"));
		const char *code = json_is_false(json_object_get(r, "code_kept")) ? "removed" : "kept";
		const char *row[] = {ver.p, status, created.p, desc.len ? desc.p : "-", changes.len ? changes.p : "-"};
		const char *row_code[] = {ver.p, status, code, created.p, desc.len ? desc.p : "-",
					  changes.len ? changes.p : "-"};
		table_add(t, with_code ? row_code : row);
		buf_free(&ver);
		buf_free(&created);
		buf_free(&desc);
		buf_free(&changes);
	}
	table_print(t, stdout);
	table_free(t);
}

static void show_doc(json_t *doc, const struct cli_target *t)
{
	json_t *rels = json_object_get(doc, "releases");
	if (!json_array_size(rels))
		printf("No releases of %s in %s yet.\n", t->app, t->env);
	else
		show(rels);
}

int cmd_releases(struct cli_opts *o)
{
	if (o->npos)
		return cli_usage_error("releases", "releases takes no arguments, got \"%s\"", o->pos[0]);
	return cli_app_get(o, "/releases", show_doc);
}
