/* cli/deploy: `berth deploy [DIR]`: validate DIR's manifest here (so a typo fails before any
 * upload, with file:line:col), pack DIR into a tar.gz in memory, POST it as a new release and
 * show the rollout as it happens. Exit 0 iff every new instance came up healthy. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "archive/archive.h"
#include "cli/cmd.h"
#include "cli/output.h"
#include "manifest/manifest.h"

/* Bigger than any sane app directory; the server's own limit (default 256 MiB) is lower. */
#define PACK_LIMIT (1024LL * 1024 * 1024)

/* `berth deploy --cancel`: stop the build or rollout in progress; the live release stays. */
static int deploy_cancel(struct cli_opts *o)
{
	if (o->npos)
		return cli_usage_error("deploy", "deploy --cancel takes no directory");
	return cli_app_call(o, "POST", "/cancel", NULL);
}

/* `berth deploy --image REF`: the server pulls (per --pull) and pins the image by digest. */
static int deploy_image(struct cli_opts *o)
{
	if (o->npos)
		return cli_usage_error("deploy", "deploy --image takes no directory");
	if (!manifest_image_ref_valid(o->image))
		return cli_usage_error("deploy", "--image: \"%s\" is not an image reference (name[:tag] or name@sha256:...)",
				       o->image);
	const char *pull = o->pull ? o->pull : "missing";
	if (strcmp(pull, "missing") && strcmp(pull, "always") && strcmp(pull, "never"))
		return cli_usage_error("deploy", "--pull wants missing, always or never, got \"%s\"", pull);
	if (o->process && !name_valid(o->process))
		return cli_usage_error("deploy", "--process: \"%s\" is not a process name", o->process);
	struct cli_target t;
	int rc = cli_target(o, &t);
	if (rc)
		return rc;
	struct client c;
	struct buf path = BUF_INIT;
	if ((rc = cli_connect(o, &c)))
		goto out;
	cli_app_path(&path, &t, "/deploys?image=");
	client_escape(&path, o->image);
	buf_addf(&path, "&pull=%s", pull);
	if (o->process) {
		buf_adds(&path, "&process=");
		client_escape(&path, o->process);
	}
	if (o->message) {
		buf_adds(&path, "&description=");
		client_escape(&path, o->message);
	}
	if (!o->json) {
		printf("-----> Deploying image %s to %s/%s\n", o->image, t.env, t.app);
		cli_flush();
	}
	rc = cli_progress(&c, path.p, "application/json", "", 0, o->json);
	client_close(&c);
out:
	buf_free(&path);
	cli_target_free(&t);
	return rc;
}

int cmd_deploy(struct cli_opts *o)
{
	if (o->cancel)
		return deploy_cancel(o);
	if (o->image)
		return deploy_image(o);
	if (o->process)
		return cli_usage_error("deploy", "--process goes with --image");
	if (o->pull && strcmp(o->pull, "missing") && strcmp(o->pull, "always") && strcmp(o->pull, "never"))
		return cli_usage_error("deploy", "--pull wants missing, always or never, got \"%s\"", o->pull);
	if (o->npos > 1)
		return cli_usage_error("deploy", "deploy takes one directory, got %zu arguments",
				       o->npos);
	const char *dir = o->npos ? o->pos[0] : ".";
	struct stat st;
	if (stat(dir, &st) || !S_ISDIR(st.st_mode))
		return cli_usage_error("deploy", "%s is not a directory", dir);

	struct err e = ERR_INIT;
	struct manifest m;
	if (manifest_load_dir(dir, &m, &e)) {
		if (strcmp(dir, "."))
			err_prefix(&e, "%s", dir);
		return cli_fail(&e);
	}
	struct cli_target t;
	int rc = cli_target_with(o, m.app, m.env, "berth.yaml", &t);
	manifest_free(&m);
	if (rc)
		return rc;

	struct buf tgz = BUF_INIT, path = BUF_INIT;
	struct client c;
	struct pack_stats ps;
	if (archive_pack_dir(dir, &tgz, PACK_LIMIT, &ps, &e)) {
		err_prefix(&e, "packing %s", dir);
		rc = cli_fail(&e);
		goto out;
	}
	struct buf psize = BUF_INIT;
	fmt_bytes(&psize, ps.bytes);
	fprintf(o->json ? stderr : stdout, "-----> Packed %zu file%s (%s); left out %zu file%s and %zu director%s (%s)\n",
		ps.files_packed, ps.files_packed == 1 ? "" : "s", buf_str(&psize), ps.files_ignored,
		ps.files_ignored == 1 ? "" : "s", ps.dirs_ignored, ps.dirs_ignored == 1 ? "y" : "ies",
		ps.source);
	buf_free(&psize);
	if ((rc = cli_connect(o, &c)))
		goto out;
	cli_app_path(&path, &t, "/deploys");
	buf_adds(&path, o->no_cache ? "?no_cache=1" : "?no_cache=0");
	if (o->pull)
		buf_addf(&path, "&pull=%s", o->pull);
	if (o->message) {
		buf_adds(&path, "&description=");
		client_escape(&path, o->message);
	}
	if (!o->json) {
		struct buf size = BUF_INIT;
		fmt_bytes(&size, (int64_t)tgz.len);
		printf("-----> Deploying %s to %s: uploading %s (%s)\n", t.app, t.env, dir, buf_str(&size));
		buf_free(&size);
		cli_flush();
	}
	rc = cli_progress(&c, path.p, "application/gzip", tgz.p, tgz.len, o->json);
	client_close(&c);
out:
	buf_free(&tgz);
	buf_free(&path);
	cli_target_free(&t);
	return rc;
}
