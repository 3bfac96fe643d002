/* cli/releases: `berth releases`: an app's releases, newest first, with what changed in each
 * (code, config keys, formation) and, for a failed one, why. A CODE column appears when some
 * release's code directory was removed (release_keep in server.yaml): those cannot be rolled
 * back to. */
#include "cli/cmd.h"
#include "cli/output.h"
#include "util/timeutil.h"
#include <stdio.h>
#include <string.h>

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

/* "python 9.8s deps 1a2b3c4d (unchanged)" for a built release; "" otherwise. */
static void fmt_build(struct buf *b, json_t *build)
{
	const char *builder = json_string_value(json_object_get(build, "builder"));
	if (!builder)
		return;
	buf_adds(b, builder);
	json_t *d = json_object_get(build, "duration_ms");
	if (json_is_integer(d) && json_integer_value(d) > 0) {
		buf_addc(b, ' ');
		fmt_duration(b, (double)json_integer_value(d) / 1000.0);
	}
	const char *h = json_string_value(json_object_get(build, "deps_hash"));
	if (h)
		buf_addf(b, " deps %.8s%s", h, json_is_true(json_object_get(build, "deps_cached")) ? " (unchanged)" : "");
	if (json_is_true(json_object_get(build, "reused")))
		buf_adds(b, " (reused)");
}

/* The images a release runs, pinned: "web sha256:3f2a9c1b0d4e" per container process. */
static void fmt_images(struct buf *b, json_t *images)
{
	const char *p;
	json_t *im;
	json_object_foreach(images, p, im) {
		const char *dg = json_string_value(json_object_get(im, "digest"));
		const char *at = dg ? strchr(dg, '@') : NULL;
		const char *id = json_string_value(json_object_get(im, "id"));
		buf_addf(b, "%s%s %.19s", b->len ? ", " : "", p, at ? at + 1 : id ? id : "?");
	}
}

/* Columns: VERSION STATUS [CODE] CREATED [BUILD] [IMAGE] DESCRIPTION CHANGES; CODE only when
 * some release's code was removed, BUILD only when some release was built, IMAGE only when
 * some release runs containers. */
static void show(json_t *releases)
{
	bool with_code = some_code_removed(releases), with_build = false, with_image = false;
	size_t i;
	json_t *r;
	json_array_foreach(releases, i, r) {
		with_build |= json_is_object(json_object_get(r, "build"));
		with_image |= json_object_size(json_object_get(r, "images")) > 0;
	}
	const char *head[8];
	size_t nc = 0;
	head[nc++] = "VERSION";
	head[nc++] = "STATUS";
	if (with_code)
		head[nc++] = "CODE";
	head[nc++] = "CREATED";
	if (with_build)
		head[nc++] = "BUILD";
	if (with_image)
		head[nc++] = "IMAGE";
	head[nc++] = "DESCRIPTION";
	head[nc++] = "CHANGES";
	struct table *t = table_new(nc, head);
	int64_t now = time_now_us();
	json_array_foreach(releases, i, r) {
		struct buf ver = BUF_INIT, created = BUF_INIT, desc = BUF_INIT, changes = BUF_INIT, build = BUF_INIT,
			   image = BUF_INIT;
		fmt_images(&image, json_object_get(r, "images"));
		fmt_build(&build, json_object_get(r, "build"));
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
		const char *row[8];
		size_t n = 0;
		row[n++] = ver.p;
		row[n++] = json_string_value(json_object_get(r, "status"));
		if (with_code)
			row[n++] = json_is_false(json_object_get(r, "code_kept")) ? "removed" : "kept";
		row[n++] = created.p;
		if (with_build)
			row[n++] = build.p;
		if (with_image)
			row[n++] = image.len ? image.p : "-";
		row[n++] = desc.len ? desc.p : "-";
		row[n++] = changes.len ? changes.p : "-";
		table_add(t, row);
		buf_free(&ver);
		buf_free(&created);
		buf_free(&desc);
		buf_free(&changes);
		buf_free(&build);
		buf_free(&image);
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

static bool reveal;

static void show_info(json_t *r, const struct cli_target *t)
{
	int64_t now = time_now_us();
	struct buf b = BUF_INIT;
	fmt_release(&b, json_object_get(r, "version"));
	printf("=== %s (%s) %s: %s\n", t->app, t->env, b.p, json_string_value(json_object_get(r, "status")));
	buf_free(&b);
	const char *desc = json_string_value(json_object_get(r, "description"));
	printf("Description: %s\n", desc ? desc : "-");
	fmt_ago_str(&b, json_string_value(json_object_get(r, "created_at")), now);
	const char *by = json_string_value(json_object_get(r, "by"));
	printf("Created:     %s (%s)%s%s\n", json_string_value(json_object_get(r, "created_at")), b.p, by ? " by " : "",
	       by ? by : "");
	buf_free(&b);
	const char *reason = json_string_value(json_object_get(r, "reason"));
	if (reason)
		printf("Failed:      %s\n", reason);
	const char *code = json_string_value(json_object_get(r, "code"));
	printf("Code:        sha256 %.12s%s\n", code ? code : "-",
	       json_is_false(json_object_get(r, "code_kept")) ? " (removed: release_keep)" : "");
	fmt_build(&b, json_object_get(r, "build"));
	printf("Build:       %s\n", b.len ? b.p : "none (nothing to build)");
	buf_free(&b);
	const char *pn;
	json_t *im;
	json_object_foreach(json_object_get(r, "images"), pn, im) {
		const char *dg = json_string_value(json_object_get(im, "digest"));
		printf("Image:       %s: %s = %s%s%s\n", pn, json_string_value(json_object_get(im, "ref")),
		       json_string_value(json_object_get(im, "id")), dg ? ", " : "", dg ? dg : "");
	}
	const char *rel = json_string_value(json_object_get(r, "release_command"));
	if (rel)
		printf("Release:     %s (%s)\n", rel, json_string_value(json_object_get(r, "release_phase")) ?
		       json_string_value(json_object_get(r, "release_phase")) : "not run");
	printf("Processes:\n");
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(r, "process_details"), i, p) {
		const char *image = json_string_value(json_object_get(p, "image"));
		const char *cmd = json_string_value(json_object_get(p, "command"));
		printf("  %s=%lld%s%s  ", json_string_value(json_object_get(p, "name")),
		       (long long)json_integer_value(json_object_get(p, "instances")),
		       json_string_value(json_object_get(p, "profile")) ? " profile " : "",
		       json_string_value(json_object_get(p, "profile")) ? json_string_value(json_object_get(p, "profile")) : "");
		if (image)
			printf("image %s%s%s\n", image, cmd && *cmd ? ", command: " : "", cmd && *cmd ? cmd : "");
		else
			printf("%s\n", cmd ? cmd : "");
	}
	json_t *cfg = json_object_get(r, "config");
	printf("Config:%s\n", json_object_size(cfg) ? "" : "      none");
	const char *k;
	json_t *v;
	json_object_foreach(cfg, k, v)
		printf("  %s=%s\n", k, reveal ? json_string_value(v) : "*****");
	if (json_object_size(cfg) && !reveal)
		printf("  (values masked: --reveal shows them)\n");
	json_array_foreach(json_object_get(r, "cron"), i, p)
		printf("%s  cron.%s  %s  %s\n", i ? "" : "Cron:\n", json_string_value(json_object_get(p, "name")),
		       json_string_value(json_object_get(p, "schedule")), json_string_value(json_object_get(p, "command")));
	json_t *ch = json_object_get(r, "changes");
	if (json_array_size(ch)) {
		printf("Changes:    ");
		json_array_foreach(ch, i, p)
			printf("%s%s", i ? ", " : " ", json_string_value(p));
		printf("\n");
	}
}

int cmd_releases(struct cli_opts *o)
{
	if (o->npos && !strcmp(o->pos[0], "info")) {
		if (o->npos != 2)
			return cli_usage_error("releases", "releases info takes one release, like v3");
		int64_t v;
		struct err e = ERR_INIT;
		if (cli_parse_version(o->pos[1], &v, &e))
			return cli_usage_error("releases", "%s", e.msg);
		char suffix[64];
		snprintf(suffix, sizeof suffix, "/releases/%lld", (long long)v);
		reveal = o->reveal;
		return cli_app_get(o, suffix, show_info);
	}
	if (o->npos)
		return cli_usage_error("releases", "releases takes no arguments or info vN, got \"%s\"", o->pos[0]);
	return cli_app_get(o, "/releases", show_doc);
}
