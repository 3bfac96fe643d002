/* api/deploy: POST .../deploys. The upload (a tar.gz, spooled to DATA/tmp by the http layer)
 * is hashed, unpacked safely and its manifest parsed on libuv's work queue, off the loop.
 * Code lives in DATA/releases/<env>/<app>/code-<sha256 prefix>: unpacked to a temp dir and
 * renamed into place, so a directory that exists is always complete, and the same upload
 * twice shares it. Then one transaction records release vN and makes it the rollout target,
 * and the app's old code directories are pruned (gc.c; a deploy in flight holds that off, so
 * a directory it shares cannot be removed under it). */
#include "api/internal.h"
#include "archive/archive.h"
#include "model/model.h"
#include "util/fsutil.h"
#include "util/log.h"
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct deploy {
	uv_work_t work;
	struct ctx *c;          /* NULL once the client went away */
	struct api *api;
	char env[64], app[64];  /* for api_gc_deploy_end: c may be gone */
	char *upload;           /* spooled body file, owned here */
	char *app_dir;          /* DATA/releases/<env>/<app> */
	char *tmp_dir;
	char sha[65];
	char dir[32];           /* "code-<16 hex>" */
	struct manifest m;
	bool have_manifest;
	uint64_t bytes;
	struct err e;
	bool done;
};

static int hash_file(const char *path, char out[65], struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(e, errno, "open upload");
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	unsigned char chunk[65536];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		crypto_hash_sha256_update(&st, chunk, (unsigned long long)n);
	close(fd);
	if (n < 0)
		return err_errno(e, errno, "read upload");
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&st, d);
	sodium_bin2hex(out, 65, d, sizeof d);
	return 0;
}

/* Runs on a work-queue thread: no loop, no store. */
static void deploy_work(uv_work_t *w)
{
	struct deploy *d = w->data;
	if (hash_file(d->upload, d->sha, &d->e) < 0)
		return;
	snprintf(d->dir, sizeof d->dir, "code-%.16s", d->sha);
	if (fs_mkdir_p(d->app_dir, 0750, &d->e) < 0)
		return;
	char *final = xasprintf("%s/%s", d->app_dir, d->dir);
	if (fs_exists(final)) {
		/* Same code as an earlier release: its directory is complete (renamed into place). */
		d->e.code = 0;
		if (manifest_load_dir(final, &d->m, &d->e) == 0)
			d->have_manifest = true;
		free(final);
		return;
	}
	d->tmp_dir = xasprintf("%s/.unpack-%s-%d", d->app_dir, d->dir, (int)getpid());
	fs_rm_rf(d->tmp_dir, NULL);
	struct unpack_limits lim = {.max_total_bytes = d->api->conf->upload_limit_bytes * 8, .max_entries = 0};
	if (archive_unpack_safe(d->upload, d->tmp_dir, &lim, &d->e) < 0) {
		err_prefix(&d->e, "unpacking the upload");
		if (!d->e.code || d->e.code == ERR_INTERNAL)
			d->e.code = ERR_INVALID;
		free(final);
		return;
	}
	if (manifest_load_dir(d->tmp_dir, &d->m, &d->e) < 0) {
		fs_rm_rf(d->tmp_dir, NULL);
		free(final);
		return;
	}
	d->have_manifest = true;
	if (rename(d->tmp_dir, final) < 0) {
		if (errno == ENOTEMPTY || errno == EEXIST)
			fs_rm_rf(d->tmp_dir, NULL);   /* a concurrent identical upload won */
		else
			err_errno(&d->e, errno, "move release code into %s", final);
	} else {
		fs_fsync_dir(d->app_dir);
	}
	free(final);
}

/* Error messages name server-side temp paths; a user knows them as "the upload". */
static void hide_path(struct err *e, const char *path, const char *as)
{
	if (!path || !*path)
		return;
	char *hit;
	size_t pl = strlen(path), al = strlen(as);
	while ((hit = strstr(e->msg, path))) {
		size_t tail = strlen(hit + pl);
		if (al > pl && (size_t)(hit - e->msg) + al + tail >= sizeof e->msg)
			break;
		memmove(hit + al, hit + pl, tail + 1);
		memcpy(hit, as, al);
	}
}

/* Frees d and ends the deploy for the gc (which may free a closing api: nothing after it). */
static void deploy_free(struct deploy *d)
{
	struct api *a = d->api;
	char env[64], app[64];
	snprintf(env, sizeof env, "%s", d->env);
	snprintf(app, sizeof app, "%s", d->app);
	if (d->upload) {
		unlink(d->upload);
		free(d->upload);
	}
	if (d->tmp_dir && fs_exists(d->tmp_dir))
		fs_rm_rf(d->tmp_dir, NULL);
	free(d->tmp_dir);
	free(d->app_dir);
	manifest_free(&d->m);
	free(d);
	api_gc_deploy_end(a, env, app);
}

static void deploy_abort(struct http_req *r, void *arg)
{
	struct deploy *d = arg;
	d->c = NULL;      /* the work finishes and cleans up on its own */
	if (d->done)
		deploy_free(d);
}

static void deploy_after(uv_work_t *w, int status)
{
	struct deploy *d = w->data;
	d->done = true;
	struct ctx *c = d->c;
	if (!c) {
		deploy_free(d);
		return;
	}
	http_req_on_abort(c->req, NULL, NULL);
	struct err e = ERR_INIT;
	if (d->e.msg[0] || !d->have_manifest) {
		hide_path(&d->e, d->tmp_dir, "the uploaded directory");
		hide_path(&d->e, d->upload, "the upload");
		hide_path(&d->e, d->app_dir, "the release directory");
		api_fail(c->req, &d->e);
		deploy_free(d);
		return;
	}
	for (size_t k = 0; k < d->m.nprocs; k++) {
		const char *prof = d->m.procs[k].profile;
		if (prof && !server_conf_profile(d->api->conf, prof)) {
			struct buf names = BUF_INIT;
			for (size_t j = 0; j < d->api->conf->nprofiles; j++)
				buf_addf(&names, "%s%s", j ? ", " : "", d->api->conf->profiles[j].name);
			err_set(&e, ERR_INVALID, "%s: process %s: unknown resource profile \"%s\" (the server has: %s)",
				d->m.source ? d->m.source : "manifest", d->m.procs[k].name, prof, buf_str(&names));
			buf_free(&names);
			api_fail(c->req, &e);
			deploy_free(d);
			return;
		}
	}
	const char *desc = http_req_query(c->req, "description");
	char dflt[64];
	snprintf(dflt, sizeof dflt, "Deploy %.8s", d->sha);
	json_t *f = json_object();
	json_object_set_new(f, "description", json_string(desc && *desc ? desc : dflt));
	json_object_set_new(f, "code", json_string(d->sha));
	json_object_set_new(f, "dir", json_string(d->dir));
	json_object_set_new(f, "manifest", manifest_to_json(&d->m));
	int v = api_release_create(d->api, c->env, c->app, f, &e);
	json_decref(f);
	if (v < 0) {
		api_fail(c->req, &e);
		deploy_free(d);
		return;
	}
	log_info("%s/%s: release v%d created from upload %.12s (%llu bytes)", c->env, c->app, v, d->sha,
		 (unsigned long long)d->bytes);
	api_gc_request(d->api, c->env, c->app);   /* runs once this deploy has ended */
	json_t *first = json_array();
	char msg[200];
	snprintf(msg, sizeof msg, "received %llu bytes (sha256 %.12s)", (unsigned long long)d->bytes, d->sha);
	json_array_append_new(first, json_pack("{s:s, s:s}", "event", "upload", "message", msg));
	snprintf(msg, sizeof msg, "created release v%d", v);
	json_array_append_new(first, json_pack("{s:s, s:i, s:s}", "event", "release", "release", v, "message", msg));
	api_stream_wait(c, RC_WAIT_ROLLOUT, v, first);
	deploy_free(d);
}

void api_deploy(struct ctx *c)
{
	struct http_req *r = c->req;
	if (!r->body_file || r->body_len == 0) {
		http_respond_error(r, 400, "the deploy body must be a tar.gz of the app directory");
		return;
	}
	/* Refuse early when a rollout is already running (checked again at commit). */
	struct err e = ERR_INIT;
	json_t *app = api_app_doc(c->api, c->env, c->app, NULL, &e);
	if (app && model_json_int(app, "target", 0)) {
		char msg[200];
		snprintf(msg, sizeof msg, "a rollout of v%d is in progress for %s/%s; wait for it to finish",
			 model_json_int(app, "target", 0), c->env, c->app);
		json_decref(app);
		http_respond_error(r, 409, msg);
		return;
	}
	json_decref(app);
	struct deploy *d = xcalloc(1, sizeof *d);
	d->c = c;
	d->api = c->api;
	d->upload = r->body_file;
	r->body_file = NULL;          /* ours now */
	d->bytes = r->body_len;
	snprintf(d->env, sizeof d->env, "%s", c->env);
	snprintf(d->app, sizeof d->app, "%s", c->app);
	d->app_dir = xasprintf("%s/releases/%s/%s", c->api->data_dir, c->env, c->app);
	d->work.data = d;
	http_req_on_abort(r, deploy_abort, d);
	api_gc_deploy_begin(c->api, c->env, c->app, &d->work, deploy_work, deploy_after);
}
