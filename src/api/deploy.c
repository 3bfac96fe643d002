/* api/deploy: POST .../deploys: upload -> build -> release -> rollout. The upload (a tar.gz,
 * spooled to DATA/tmp by the http layer) is hashed, unpacked safely, its manifest parsed and
 * its build planned (src/build) on libuv's work queue, off the loop. When there is something
 * to build, the build runs in the unpacked temp dir as a one-off (src/oneoff: the build
 * profile, build_timeout, an output bound) while its output streams into the deploy's
 * progress and into the logs as process `build`; a failed build ends the deploy with its last
 * lines and nothing else changes. Code lives in DATA/releases/<env>/<app>/code-<id>: built in
 * a temp dir and renamed into place, so a directory that exists is always complete; the same
 * upload (and, when built, the same build inputs) twice shares it. Then one transaction
 * records release vN and makes it the rollout target; a deploy that finds another rollout of
 * the app in progress waits for it and says so. Old code directories are pruned afterwards
 * (gc.c; a deploy in flight holds that off). The client may leave at any point: the deploy
 * goes on. An app with a dockerfile (berth.yaml's, or a Dockerfile beside no berth.yaml) is
 * built by the container engine instead (driver/build_image.c): the code directory, packed
 * again, is the build's context, the image is tagged berth/ENV/APP:vN and every process that
 * names no image of its own runs it, pinned by id. */
#include "api/internal.h"
#include "archive/archive.h"
#include "build/build.h"
#include "driver/docker.h"
#include "registry/registry.h"
#include "util/secret.h"
#include "logs/logs.h"
#include "model/model.h"
#include "oneoff/oneoff.h"
#include "util/timeutil.h"
#include "util/envp.h"
#include "util/fsutil.h"
#include "util/log.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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
	char dir[32];           /* "code-<16 hex>", built: "code-<16 hex>-<8 hex>" */
	struct manifest m;
	bool have_manifest;
	uint64_t bytes;
	struct err e;
	bool done;
	/* build */
	json_t *config;         /* the app's config when the deploy began (the build's environment) */
	char *cache_root;       /* DATA/cache/<env>/<app> */
	bool no_cache;
	struct build_plan plan;
	bool build;             /* a build runs in tmp_dir before the rename */
	bool reused_build;      /* final existed: an identical build was reused */
	struct oneoff *job;
	int64_t build_ms;
	int64_t streamed;       /* bytes of build output sent to the client */
	bool cancelled;
	bool app_existed;       /* the app had a document when the deploy began */
	struct rc_waiter *waiter;   /* waiting for another rollout of the app */
	int waited_for;
	char who[80];           /* who asked (ctx->who) */
	struct deploy *next_build;  /* api->builds: one build per app at a time, in arrival order */
	bool in_builds;
	/* an image deploy (?image=REF) */
	char *image, *pull, *process;
	struct docker_resolve *resolve;
	json_t *images;         /* the release's pinned images: {process: {"ref","id","digest"}} */
	size_t pin_next;        /* the next process whose image pin_images resolves */
	int64_t pull_lines;
	/* an image built from the manifest's dockerfile */
	char *context;          /* the code directory packed (tar.gz in DATA/tmp), owned, removed */
	struct docker_build *ibuild;
	struct log_sink *build_log; /* its output in the logs, as process `build` */
	char *built_tag, *built_id;
	int64_t build_started_us;
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
/* The directory name of a built release: the upload and every input of its build. */
static void built_dir_name(struct deploy *d)
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	char *cfg = json_dumps(d->config, JSON_COMPACT | JSON_SORT_KEYS);
	char nonce[16] = "";
	if (d->no_cache)     /* built again from scratch: a directory of its own */
		snprintf(nonce, sizeof nonce, "%08x", randombytes_random());
	const char *parts[] = {d->sha, d->plan.builder, d->plan.deps_hash, d->plan.script ? d->plan.script : "",
			       d->plan.deps_dir ? d->plan.deps_dir : "", cfg ? cfg : "{}", nonce};
	for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++)
		crypto_hash_sha256_update(&st, (const unsigned char *)parts[k], strlen(parts[k]) + 1);
	free(cfg);
	unsigned char h[32];
	char hex[65];
	crypto_hash_sha256_final(&st, h);
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	snprintf(d->dir, sizeof d->dir, "code-%.16s-%.8s", d->sha, hex);
}

/* Work queue: the code directory packed again (its ignore rules as the CLI applies them) as
 * the engine build's context, a file in DATA/tmp (which the server empties at start). */
static void pack_context(struct deploy *d, const char *dir)
{
	struct buf tgz = BUF_INIT;
	if (archive_pack_dir(dir, &tgz, d->api->conf->upload_limit_bytes * 8, NULL, &d->e) < 0) {
		err_prefix(&d->e, "packing the uploaded directory as the build's context");
		buf_free(&tgz);
		return;
	}
	d->context = xasprintf("%s/context-%.16s-%08x.tar.gz", d->api->tmp_dir, d->sha, randombytes_random());
	if (fs_write_atomic(d->context, tgz.p ? tgz.p : "", tgz.len, 0600, &d->e) < 0) {
		free(d->context);
		d->context = NULL;
	}
	buf_free(&tgz);
}

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
		/* Same code as an earlier release that needed no build: complete (renamed into place). */
		d->e.code = 0;
		if (manifest_load_dir(final, &d->m, &d->e) == 0) {
			d->have_manifest = true;
			if (d->m.dockerfile)
				pack_context(d, final);
		}
		free(final);
		return;
	}
	d->tmp_dir = xasprintf("%s/.unpack-%s-%d-%08x", d->app_dir, d->dir, (int)getpid(), randombytes_random());
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
	/* An image build needs no builder: the Dockerfile's steps are the build. */
	if (!d->m.dockerfile &&
	    build_plan_make(d->tmp_dir, &d->m, d->cache_root, d->no_cache, &d->plan, &d->e) < 0) {
		if (!d->e.code || d->e.code == ERR_INTERNAL)
			d->e.code = ERR_INVALID;
		d->have_manifest = false;
		fs_rm_rf(d->tmp_dir, NULL);
		free(final);
		return;
	}
	if (d->plan.builder[0]) {
		built_dir_name(d);
		free(final);
		final = xasprintf("%s/%s", d->app_dir, d->dir);
		if (!d->no_cache && fs_exists(final)) {
			d->reused_build = true;       /* the same upload built with the same inputs */
			fs_rm_rf(d->tmp_dir, NULL);
		} else {
			d->build = true;              /* built on the loop, renamed after */
		}
		free(final);
		return;
	}
	bool moved = true;
	if (rename(d->tmp_dir, final) < 0) {
		if (errno == ENOTEMPTY || errno == EEXIST) {
			fs_rm_rf(d->tmp_dir, NULL);   /* a concurrent identical upload won */
		} else {
			err_errno(&d->e, errno, "move release code into %s", final);
			moved = false;
		}
	} else {
		fs_fsync_dir(d->app_dir);
	}
	if (moved && d->m.dockerfile)
		pack_context(d, final);
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
static void builds_unlink(struct deploy *d)
{
	if (!d->in_builds)
		return;
	for (struct deploy **pp = &d->api->builds; *pp; pp = &(*pp)->next_build)
		if (*pp == d) {
			*pp = d->next_build;
			break;
		}
	d->in_builds = false;
}

static int start_build(struct deploy *d, struct err *e);
static void deploy_fail(struct deploy *d, struct err *e, json_t *logs);

/* The app's next waiting build, if the one that ended was holding it back. */
static void builds_next(struct api *a, const char *env, const char *app)
{
	for (struct deploy *q = a->builds; q; q = q->next_build) {
		if (strcmp(q->env, env) || strcmp(q->app, app))
			continue;
		if (q->job || q->ibuild)
			return;        /* one is running */
		struct err e = ERR_INIT;
		if (start_build(q, &e) < 0)
			deploy_fail(q, &e, NULL);
		return;
	}
}

static void deploy_free(struct deploy *d)
{
	struct api *a = d->api;
	if (d->in_builds) {
		builds_unlink(d);
		builds_next(a, d->env, d->app);
	}
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
	free(d->cache_root);
	manifest_free(&d->m);
	build_plan_free(&d->plan);
	docker_resolve_cancel(d->resolve);
	docker_build_cancel(d->ibuild);
	logs_sink_close(d->build_log);
	if (d->context) {
		unlink(d->context);
		free(d->context);
	}
	free(d->built_tag);
	free(d->built_id);
	free(d->image);
	free(d->pull);
	free(d->process);
	json_decref(d->images);
	json_decref(d->config);
	reconciler_unwait(d->waiter);
	free(d);
	api_gc_deploy_end(a, env, app);
}

/* The client went away: the deploy goes on (a build finishes, the release is made and rolled
 * out), only nobody is told. */
static void deploy_abort(struct http_req *r, void *arg)
{
	struct deploy *d = arg;
	d->c = NULL;
	if (d->done && !d->job && !d->ibuild && !d->waiter && !d->in_builds && !d->resolve)
		deploy_free(d);
}

/* An event to the client, if it is still there (stolen). */
static void deploy_event(struct deploy *d, json_t *ev)
{
	if (!ev)
		return;         /* json_pack refused text that was not UTF-8: nothing to say */
	if (d->c)
		api_stream_event(d->c, ev);
	else
		json_decref(ev);
}

/* End the deploy with an error: an answer, or a done event once the stream has started. */
static void deploy_fail(struct deploy *d, struct err *e, json_t *logs)
{
	if (d->c) {
		http_req_on_abort(d->c->req, NULL, NULL);
		if (!d->c->streaming) {
			api_fail(d->c->req, e);
		} else {
			json_t *done = json_pack("{s:s, s:b, s:s}", "event", "done", "ok", 0, "error", e->msg);
			if (logs)
				json_object_set(done, "logs", logs);
			api_stream_finish(d->c, done);
		}
		d->c = NULL;
	}
	log_warn("%s/%s: deploy failed: %s", d->env, d->app, e->msg);
	deploy_free(d);
}

static void commit_release(struct deploy *d);
static void pin_images(struct deploy *d);

static void on_rollout_done(void *arg, json_t *event, bool done)
{
	struct deploy *d = arg;
	if (!done)
		return;
	d->waiter = NULL;
	commit_release(d);
}

/* Record release vN and hand the stream to the rollout's waiter. */
static void commit_release(struct deploy *d)
{
	struct err e = ERR_INIT;
	struct api *a = d->api;
	const char *desc = d->c ? http_req_query(d->c->req, "description") : NULL;
	char dflt[300];
	if (d->image)
		snprintf(dflt, sizeof dflt, "Deploy image %.255s", d->image);
	else
		snprintf(dflt, sizeof dflt, "Deploy %.8s", d->sha);
	json_t *f = json_object();
	json_object_set_new(f, "description", json_string(desc && *desc ? desc : dflt));
	json_object_set_new(f, "code", json_string(d->sha));
	json_object_set_new(f, "dir", json_string(d->dir));
	json_object_set_new(f, "manifest", manifest_to_json(&d->m));
	if (d->who[0])
		json_object_set_new(f, "by", json_string(d->who));
	if (d->images)
		json_object_set(f, "images", d->images);
	if (d->plan.builder[0]) {
		json_t *b = json_pack("{s:s, s:O, s:O, s:b}", "builder", d->plan.builder, "path", d->plan.path, "env",
				      d->plan.env, "reused", d->reused_build);
		if (d->plan.deps_hash[0]) {
			json_object_set_new(b, "deps_hash", json_string(d->plan.deps_hash));
			json_object_set_new(b, "lockfile", json_string(d->plan.lockfile));
			json_object_set_new(b, "deps_cached", json_boolean(d->plan.deps_cached || d->reused_build));
		}
		json_object_set_new(b, "duration_ms", json_integer(d->build_ms));
		json_object_set_new(f, "build", b);
	} else if (d->built_id) {
		json_object_set_new(f, "build", json_pack("{s:s, s:s, s:s, s:s, s:I}", "builder", "dockerfile", "dockerfile",
							 d->m.dockerfile, "image", d->built_tag, "id", d->built_id,
							 "duration_ms", (json_int_t)d->build_ms));
	}
	int v = api_release_create(a, d->env, d->app, f, &e);
	json_decref(f);
	if (v < 0 && e.code == ERR_CONFLICT) {
		/* Another rollout of the app is in progress: wait for it, then try again. */
		json_t *doc = api_app_doc(a, d->env, d->app, NULL, &e);
		int target = model_json_int(doc, "target", 0);
		json_decref(doc);
		if (target && target != d->waited_for) {
			char msg[200];
			snprintf(msg, sizeof msg, "waiting for the rollout of v%d in progress to finish (the deploy goes on "
				 "after it)", target);
			deploy_event(d, json_pack("{s:s, s:s}", "event", "info", "message", msg));
			d->waited_for = target;
			d->waiter = reconciler_wait(a->rc, d->env, d->app, RC_WAIT_ROLLOUT, target, on_rollout_done, d);
			return;
		}
		if (target)
			err_set(&e, ERR_CONFLICT, "a rollout of v%d is in progress for %s/%s; wait for it to finish", target,
				d->env, d->app);
	}
	if (v < 0) {
		deploy_fail(d, &e, NULL);
		return;
	}
	if (d->image)
		log_info("%s/%s: release v%d created from image %s (%.19s)", d->env, d->app, v, d->image,
			 json_string_value(json_object_get(json_object_get(d->images, d->process), "id")));
	else
		log_info("%s/%s: release v%d created from upload %.12s (%llu bytes)", d->env, d->app, v, d->sha,
			 (unsigned long long)d->bytes);
	api_gc_request(a, d->env, d->app);   /* runs once this deploy has ended */
	char msg[200];
	snprintf(msg, sizeof msg, "created release v%d", v);
	json_t *first = json_array();
	json_array_append_new(first, json_pack("{s:s, s:i, s:s}", "event", "release", "release", v, "message", msg));
	if (d->c) {
		http_req_on_abort(d->c->req, NULL, NULL);
		api_stream_wait(d->c, RC_WAIT_ROLLOUT, v, first);
		d->c = NULL;
	} else {
		json_decref(first);
	}
	deploy_free(d);
}

/* ---- the build ---- */

#define STREAM_MAX (1 << 20)

/* One line of the build's output: to the client, while it has not had STREAM_MAX bytes (a
 * build printing gigabytes must not bury the deploy's own progress; all of it is in the logs). */
static void on_build_line(void *arg, int stream, const char *text)
{
	struct deploy *d = arg;
	if (!d->c || d->streamed > STREAM_MAX)
		return;
	d->streamed += (int64_t)strlen(text);
	if (d->streamed > STREAM_MAX) {
		deploy_event(d, json_pack("{s:s, s:s}", "event", "info", "message",
					  "the build prints a lot: the rest of its output is only in the logs "
					  "(berth logs --process build)"));
		return;
	}
	char *msg = xasprintf("build | %s", text);
	deploy_event(d, json_pack("{s:s, s:s, s:s, s:s}", "event", "output", "process", "build", "line", text,
				  "message", msg));
	free(msg);
}

/* What a failed build leaves running, for its message: "; v3 keeps running", or why nothing. */
static void live_note(struct deploy *d, char *after, size_t n)
{
	struct err ae = ERR_INIT;
	json_t *app = api_app_doc(d->api, d->env, d->app, NULL, &ae);
	int live = model_json_int(app, "release", 0);
	json_decref(app);
	if (!app && d->app_existed)
		snprintf(after, n, "; the app was deleted meanwhile");
	else if (live)
		snprintf(after, n, "; v%d keeps running", live);
	else
		snprintf(after, n, " (the app has no release yet)");
}

static void on_build_exit(void *arg, const struct oneoff_result *r)
{
	struct deploy *d = arg;
	d->job = NULL;
	if (d->in_builds) {
		builds_unlink(d);
		builds_next(d->api, d->env, d->app);
	}
	d->build_ms = r->duration_ms;
	bool ok = !r->signal && r->status == 0 && !r->timed_out && !r->too_much_output && !d->cancelled;
	if (!ok) {
		struct err e = ERR_INIT;
		char after[120];
		live_note(d, after, sizeof after);
		if (d->cancelled)
			err_set(&e, ERR_CONFLICT, "the deploy was cancelled during its build%s", after);
		else
			err_set(&e, ERR_INVALID, "build failed (%s%s): %s%s", d->plan.builder,
				strcmp(d->plan.builder, "command") ? " builder" : ": build: in berth.yaml", r->summary, after);
		/* Its first lines too when the output was long: the cause is often at the top. */
		deploy_fail(d, &e, r->output);
		return;
	}
	char *final = xasprintf("%s/%s", d->app_dir, d->dir);
	struct err e = ERR_INIT;
	if (rename(d->tmp_dir, final) < 0) {
		if (errno == ENOTEMPTY || errno == EEXIST) {
			fs_rm_rf(d->tmp_dir, NULL);   /* an identical concurrent build won */
		} else {
			err_errno(&e, errno, "move the built release into place");
			free(final);
			deploy_fail(d, &e, NULL);
			return;
		}
	} else {
		fs_fsync_dir(d->app_dir);
	}
	free(final);
	char msg[200];
	snprintf(msg, sizeof msg, "built in %lld ms (%s)", (long long)d->build_ms, d->plan.builder);
	deploy_event(d, json_pack("{s:s, s:s}", "event", "build", "message", msg));
	pin_images(d);
}

/* The build's environment: the app's config (berth.yaml defaults under it), what server.yaml
 * builds.env gives, and the daemon's own package-manager settings (PIP_*, npm_config_*, GO*,
 * BUNDLE_*, proxies), since a server may reach its registries only through them. */
static char **build_env(struct deploy *d)
{
	struct envp env = {0};
	extern char **environ;
	static const char *const pass[] = {"PIP_", "npm_config_", "NPM_CONFIG_", "GO", "BUNDLE_", "http_proxy",
					   "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", NULL};
	for (char **v = environ; v && *v; v++)
		for (const char *const *p = pass; *p; p++)
			if (!strncmp(*v, *p, strlen(*p))) {
				env.v = xrealloc(env.v, (env.n + 2) * sizeof *env.v);
				env.v[env.n++] = xstrdup(*v);
				env.v[env.n] = NULL;
				break;
			}
	struct envp out = {0};
	envp_put_all(&out, env.v);
	envp_free(&env);
	envp_put_all(&out, d->api->conf->builds.env);
	for (size_t k = 0; k < d->m.nvars; k++)
		envp_put(&out, d->m.vars[k].name, d->m.vars[k].value);
	const char *key;
	json_t *val;
	json_object_foreach(d->config, key, val)
		if (json_is_string(val))
			envp_put(&out, key, json_string_value(val));
	envp_put(&out, "BERTH_APP", d->app);
	envp_put(&out, "BERTH_ENV", d->env);
	envp_put(&out, "BERTH_BUILD", "1");
	if (!out.v)
		out.v = xcalloc(1, sizeof *out.v);
	return envp_detach(&out);
}

static int start_image_build(struct deploy *d, struct err *e);

static int start_build(struct deploy *d, struct err *e)
{
	if (!d->in_builds) {
		/* One build per app at a time: builds share the app's dependency cache. */
		struct deploy **pp = &d->api->builds;
		bool busy = false;
		for (; *pp; pp = &(*pp)->next_build)
			busy |= !strcmp((*pp)->env, d->env) && !strcmp((*pp)->app, d->app);
		*pp = d;
		d->in_builds = true;
		if (busy) {
			deploy_event(d, json_pack("{s:s, s:s}", "event", "info", "message",
						  "waiting for the build of the deploy in progress to finish (this deploy goes "
						  "on after it)"));
			return 0;
		}
	}
	if (d->m.dockerfile)
		return start_image_build(d, e);
	const struct server_build_conf *bc = &d->api->conf->builds;
	const char *pname = bc->profile ? bc->profile : "large";
	const struct profile *prof = *pname ? server_conf_profile(d->api->conf, pname) : NULL;
	if (*pname && !prof)
		return err_set(e, ERR_UNAVAILABLE, "server.yaml builds.profile names a profile the server does not have (%s)",
			       pname);
	char msg[300];
	if (!strcmp(d->plan.builder, "command"))
		snprintf(msg, sizeof msg, "building with build: from %s", d->m.source ? d->m.source : "berth.yaml");
	else
		snprintf(msg, sizeof msg, "building with the %s builder (%s%s)", d->plan.builder, d->plan.lockfile,
			 d->plan.deps_cached ? ", dependencies unchanged" : "");
	deploy_event(d, json_pack("{s:s, s:s, s:s}", "event", "build", "message", msg, "builder", d->plan.builder));
	char **vars = build_env(d);
	struct oneoff_spec spec = {
		.env = d->env, .app = d->app, .kind = "build", .command = d->plan.script, .cwd = d->tmp_dir,
		.env_vars = vars, .profile = prof, .profile_optional = !bc->profile,
		.timeout_ms = d->m.build_timeout_ms > 0 ? d->m.build_timeout_ms : 600000,
		.log = true, .output_limit = bc->output_limit,
	};
	struct oneoff_events ev = {.on_line = on_build_line, .on_exit = on_build_exit, .arg = d};
	d->job = oneoff_start(reconciler_oneoffs(d->api->rc), &spec, &ev, e);
	envp_free_array(vars);
	return d->job ? 0 : -1;
}

static void deploy_after(uv_work_t *w, int status)
{
	struct deploy *d = w->data;
	d->done = true;
	struct ctx *c = d->c;
	struct err e = ERR_INIT;
	if (d->e.msg[0] || !d->have_manifest) {
		hide_path(&d->e, d->tmp_dir, "the uploaded directory");
		hide_path(&d->e, d->upload, "the upload");
		hide_path(&d->e, d->app_dir, "the release directory");
		if (!c) {
			deploy_free(d);
			return;
		}
		deploy_fail(d, &d->e, NULL);
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
			deploy_fail(d, &e, NULL);
			return;
		}
	}
	char msg[200];
	snprintf(msg, sizeof msg, "received %llu bytes (sha256 %.12s)", (unsigned long long)d->bytes, d->sha);
	deploy_event(d, json_pack("{s:s, s:s}", "event", "upload", "message", msg));
	if (d->reused_build) {
		snprintf(msg, sizeof msg, "build: reusing the build of an identical upload (%s)", d->plan.builder);
		deploy_event(d, json_pack("{s:s, s:s}", "event", "build", "message", msg));
	}
	if (d->build || d->m.dockerfile) {
		if (start_build(d, &e) < 0) {
			hide_path(&e, d->tmp_dir, "the uploaded directory");
			deploy_fail(d, &e, NULL);
		}
		return;
	}
	pin_images(d);
}

/* ---- an image built from a dockerfile ---- */

static void build_log_line(struct deploy *d, int stream, const char *text)
{
	if (!d->build_log)
		return;
	char *line = xasprintf("%s\n", text);
	logs_sink_write(d->build_log, stream, line, strlen(line));
	free(line);
}

static void on_image_line(void *arg, const char *text)
{
	struct deploy *d = arg;
	build_log_line(d, 1, text);
	on_build_line(d, 1, text);
}

/* The build ended without an image (error NULL: cancelled): the deploy fails, nothing else
 * changes. Frees d. */
static void image_build_failed(struct deploy *d, const char *error, json_t *lines)
{
	d->ibuild = NULL;
	if (d->in_builds) {
		builds_unlink(d);
		builds_next(d->api, d->env, d->app);
	}
	char after[120];
	live_note(d, after, sizeof after);
	struct err e = ERR_INIT;
	if (d->cancelled || !error)
		err_set(&e, ERR_CONFLICT, "the deploy was cancelled during its build%s", after);
	else
		err_set(&e, ERR_INVALID, "build failed (%s): %s%s", d->m.dockerfile, error, after);
	hide_path(&e, d->context, "the build's context");
	char *sys = xasprintf("berth: build ended: %s", e.msg);
	build_log_line(d, LOGS_STREAM_BERTH, sys);
	free(sys);
	deploy_fail(d, &e, lines);
}

static void on_image_built(void *arg, const char *tag, const char *id, const char *error, json_t *lines)
{
	struct deploy *d = arg;
	d->ibuild = NULL;
	d->build_ms = (time_now_us() - d->build_started_us) / 1000;
	if (!id) {
		image_build_failed(d, error ? error : "the engine named no image", lines);
		return;
	}
	if (d->in_builds) {
		builds_unlink(d);
		builds_next(d->api, d->env, d->app);
	}
	d->built_id = xstrdup(id);
	char msg[400];
	snprintf(msg, sizeof msg, "built %s (%.19s) in %lld ms", tag, id, (long long)d->build_ms);
	build_log_line(d, LOGS_STREAM_BERTH, msg);
	logs_sink_close(d->build_log);
	d->build_log = NULL;
	deploy_event(d, json_pack("{s:s, s:s, s:s}", "event", "build", "message", msg, "image", id));
	/* Every process that names no image runs this one; pin_images resolves the others. */
	if (!d->images)
		d->images = json_object();
	for (size_t k = 0; k < d->m.nprocs; k++)
		if (manifest_process_built(&d->m, &d->m.procs[k]))
			json_object_set_new(d->images, d->m.procs[k].name, json_pack("{s:s, s:s}", "ref", tag, "id", id));
	pin_images(d);
}

/* Build the image of the manifest's dockerfile through the engine, tagged berth/ENV/APP:vN
 * with N the version the release will most likely get (a label: the release pins the id). */
static int start_image_build(struct deploy *d, struct err *e)
{
	struct driver *dk = reconciler_driver(d->api->rc, "docker");
	if (!dk && d->m.source && !strcmp(d->m.source, "berth.yaml"))
		return err_set(e, ERR_CONFLICT, "berth.yaml: dockerfile: %s: this server has no container engine to "
			       "build it: start it with --docker-host unix:///PATH (or DOCKER_HOST)", d->m.dockerfile);
	if (!dk)
		return err_set(e, ERR_CONFLICT, "%s: without a berth.yaml an app with a %s is built into an image, and "
			       "this server has no container engine: start it with --docker-host unix:///PATH (or "
			       "DOCKER_HOST), or add a berth.yaml (without dockerfile:) to run the processes on the host",
			       d->m.dockerfile, d->m.dockerfile);
	if (!d->context)
		return err_set(e, ERR_INTERNAL, "the build's context was not packed");
	struct err ae = ERR_INIT;
	json_t *app = api_app_doc(d->api, d->env, d->app, NULL, &ae);
	int next = model_json_int(app, "next_version", 1);
	json_decref(app);
	free(d->built_tag);
	d->built_tag = xasprintf("berth/%s/%s:v%d", d->env, d->app, next);
	char msg[400];
	snprintf(msg, sizeof msg, "building %s from %s with the container engine%s", d->built_tag, d->m.dockerfile,
		 d->no_cache ? " (--no-cache)" : "");
	deploy_event(d, json_pack("{s:s, s:s, s:s}", "event", "build", "message", msg, "builder", "dockerfile"));
	struct err le = ERR_INIT;
	logs_sink_close(d->build_log);
	d->build_log = logs_sink_open(d->api->logs, d->env, d->app, "build", 1, 0, &le);
	if (!d->build_log)
		log_warn("%s/%s: the build's output is not kept in the logs: %s", d->env, d->app, le.msg);
	char *sys = xasprintf("berth: %s", msg);
	build_log_line(d, LOGS_STREAM_BERTH, sys);
	free(sys);
	const struct server_build_conf *bc = &d->api->conf->builds;
	struct docker_build_spec spec = {
		.context = d->context, .dockerfile = d->m.dockerfile, .tag = d->built_tag,
		.pull = d->pull && !strcmp(d->pull, "always"), .no_cache = d->no_cache,
		.timeout_ms = d->m.build_timeout_ms > 0 ? d->m.build_timeout_ms : 600000,
		.output_limit = bc->output_limit,
	};
	/* the FROM images may come from any registry berth has credentials for */
	char *cfg = NULL, *hdr = NULL;
	struct err ce = ERR_INIT;
	if (registry_build_config(d->api->st, d->api->data_dir, &cfg, &ce) < 0)
		log_warn("%s/%s: building without registry credentials: %s", d->env, d->app, ce.msg);
	const char *hdrs[2] = {NULL, NULL};
	if (cfg) {
		hdr = xasprintf("X-Registry-Config: %s", cfg);
		hdrs[0] = hdr;
		spec.headers = hdrs;
		secret_str_wipe(cfg);
	}
	d->build_started_us = time_now_us();
	d->ibuild = docker_build(dk, &spec, on_image_line, on_image_built, d);
	if (hdr)
		secret_str_wipe(hdr);     /* the engine call copied it */
	if (!d->ibuild)
		return err_set(e, ERR_UNAVAILABLE, "the container engine is shutting down");
	return 0;
}

int api_deploy_cancel(struct api *a, const char *env, const char *app)
{
	int n = 0;
	for (struct deploy *d = a->builds, *next; d; d = next) {
		next = d->next_build;
		if (strcmp(d->env, env) || strcmp(d->app, app) || d->cancelled)
			continue;
		n++;
		d->cancelled = true;
		if (d->job) {
			oneoff_stop(d->job, 0);          /* on_build_exit reports it */
		} else if (d->ibuild) {
			docker_build_cancel(d->ibuild);  /* the engine stops the build */
			d->ibuild = NULL;
			image_build_failed(d, NULL, NULL);
			next = a->builds;                /* the list changed under us: look again */
		} else {
			struct err e = ERR_INIT;
			err_set(&e, ERR_CONFLICT, "the deploy was cancelled before its build started");
			deploy_fail(d, &e, NULL);
			next = a->builds;                /* the list changed under us: look again */
		}
	}
	return n;
}

bool api_deploy_building(struct api *a, const char *env, const char *app)
{
	for (struct deploy *d = a->builds; d; d = d->next_build)
		if (!strcmp(d->env, env) && !strcmp(d->app, app))
			return true;
	return false;
}

/* ---- images ---- */

/* Pin the image of every container process of the manifest (berth.yaml `image:`) before the
 * release is made, one after another: a tag that moves later changes nothing until the next
 * deploy. */

static void on_pull_progress(void *arg, const char *text)
{
	struct deploy *d = arg;
	if (++d->pull_lines > 2000)
		return;         /* a pull of many layers: the first lines say enough */
	char msg[400];
	snprintf(msg, sizeof msg, "pull | %s", text);
	utf8_fix(msg);      /* cut anywhere */
	deploy_event(d, json_pack("{s:s, s:s}", "event", "pull", "message", msg));
}

static void on_pinned(void *arg, const char *id, const char *digest, const char *error)
{
	struct deploy *d = arg;
	d->resolve = NULL;
	const struct process_spec *p = &d->m.procs[d->pin_next];
	if (error) {
		struct err e = ERR_INIT;
		err_set(&e, ERR_INVALID, "process %s: %s", p->name, error);
		deploy_fail(d, &e, NULL);
		return;
	}
	json_t *one = json_pack("{s:s, s:s}", "ref", p->image, "id", id);
	if (digest)
		json_object_set_new(one, "digest", json_string(digest));
	json_object_set_new(d->images, p->name, one);
	char msg[400];
	snprintf(msg, sizeof msg, "%s: image %s is %.19s%s%.80s", p->name, p->image, id, digest ? ", " : "",
		 digest ? digest : "");
	deploy_event(d, json_pack("{s:s, s:s}", "event", "image", "message", msg));
	d->pin_next++;
	pin_images(d);
}

static void pin_images(struct deploy *d)
{
	if (!d->images)
		d->images = json_object();
	while (d->pin_next < d->m.nprocs && !d->m.procs[d->pin_next].image)
		d->pin_next++;
	if (d->pin_next >= d->m.nprocs) {
		if (!json_object_size(d->images)) {
			json_decref(d->images);
			d->images = NULL;
		}
		commit_release(d);
		return;
	}
	struct driver *dk = reconciler_driver(d->api->rc, "docker");
	if (!dk) {
		struct err e = ERR_INIT;
		err_set(&e, ERR_CONFLICT, "process %s runs an image, and this server has no container engine: start it "
			"with --docker-host unix:///PATH (or DOCKER_HOST)", d->m.procs[d->pin_next].name);
		deploy_fail(d, &e, NULL);
		return;
	}
	d->resolve = docker_resolve(dk, d->m.procs[d->pin_next].image, d->pull ? d->pull : "missing", on_pull_progress,
				    on_pinned, d);
}

/* ---- starting a deploy ---- */

/* A deploy of c's app: who asked, the app's config when it began, where its code goes. */
static struct deploy *deploy_new(struct ctx *c)
{
	struct err e = ERR_INIT;
	json_t *app = api_app_doc(c->api, c->env, c->app, NULL, &e);
	struct deploy *d = xcalloc(1, sizeof *d);
	d->c = c;
	d->api = c->api;
	json_t *cfg = json_object_get(app, "config");
	d->config = json_is_object(cfg) ? json_deep_copy(cfg) : json_object();
	d->app_existed = app != NULL;
	json_decref(app);
	snprintf(d->env, sizeof d->env, "%s", c->env);
	snprintf(d->app, sizeof d->app, "%s", c->app);
	snprintf(d->who, sizeof d->who, "%s", c->who);
	d->app_dir = xasprintf("%s/releases/%s/%s", c->api->data_dir, c->env, c->app);
	d->cache_root = xasprintf("%s/cache/%s/%s", c->api->data_dir, c->env, c->app);
	d->work.data = d;
	return d;
}

/* Its work queued (after the app's prune, if one runs); the client may leave from now on. */
static void deploy_begin(struct deploy *d, uv_work_cb work, uv_after_work_cb after)
{
	http_req_on_abort(d->c->req, deploy_abort, d);
	api_gc_deploy_begin(d->api, d->env, d->app, &d->work, work, after);
}

/* ---- an image deploy ---- */

static void on_image_resolved(void *arg, const char *id, const char *digest, const char *error)
{
	struct deploy *d = arg;
	d->resolve = NULL;
	struct err e = ERR_INIT;
	if (error) {
		err_set(&e, ERR_INVALID, "%s", error);
		deploy_fail(d, &e, NULL);
		return;
	}
	const char *hex = !strncmp(id, "sha256:", 7) ? id + 7 : id;
	snprintf(d->sha, sizeof d->sha, "%.64s", hex);
	/* An image release has no code of its own; an empty directory keeps the rule that every
	 * release names its code directory (garbage collection counts them). */
	snprintf(d->dir, sizeof d->dir, "code-%.16s", hex);
	char *dir = xasprintf("%s/%s", d->app_dir, d->dir);
	int r = fs_mkdir_p(dir, 0750, &e);
	free(dir);
	if (r < 0 || manifest_for_image(&d->m, d->process, d->image, &e) < 0) {
		deploy_fail(d, &e, NULL);
		return;
	}
	d->have_manifest = true;
	json_t *one = json_pack("{s:s, s:s}", "ref", d->image, "id", id);
	if (digest)
		json_object_set_new(one, "digest", json_string(digest));
	d->images = json_object();
	json_object_set_new(d->images, d->process, one);
	char msg[400];
	snprintf(msg, sizeof msg, "image %s is %.19s%s%.80s", d->image, id, digest ? ", " : "", digest ? digest : "");
	deploy_event(d, json_pack("{s:s, s:s}", "event", "image", "message", msg));
	commit_release(d);
}

static void image_work(uv_work_t *w)
{
}

static void image_after(uv_work_t *w, int status)
{
	struct deploy *d = w->data;
	d->done = true;
	struct driver *dk = reconciler_driver(d->api->rc, "docker");
	if (!dk) {
		struct err e = ERR_INIT;
		err_set(&e, ERR_CONFLICT, "this server has no container engine: start it with --docker-host unix:///PATH "
			"(or DOCKER_HOST) to deploy images");
		deploy_fail(d, &e, NULL);
		return;
	}
	char msg[400];
	snprintf(msg, sizeof msg, "image %s (pull %s)", d->image, d->pull);
	deploy_event(d, json_pack("{s:s, s:s}", "event", "upload", "message", msg));
	d->resolve = docker_resolve(dk, d->image, d->pull, on_pull_progress, on_image_resolved, d);
}

static void api_deploy_image(struct ctx *c, const char *image)
{
	struct http_req *r = c->req;
	const char *pull = http_req_query(r, "pull");
	const char *process = http_req_query(r, "process");
	if (!pull || !*pull)
		pull = "missing";
	if (!process || !*process)
		process = "web";
	if (!manifest_image_ref_valid(image)) {
		http_respond_error(r, 400, "image: expected an image reference (name[:tag] or name@sha256:...)");
		return;
	}
	if (strcmp(pull, "missing") && strcmp(pull, "always") && strcmp(pull, "never")) {
		http_respond_error(r, 400, "pull: expected missing, always or never");
		return;
	}
	if (!name_valid(process)) {
		http_respond_error(r, 400, "process: expected a process name ([a-z0-9][a-z0-9-]*)");
		return;
	}
	struct deploy *d = deploy_new(c);
	d->image = xstrdup(image);
	d->pull = xstrdup(pull);
	d->process = xstrdup(process);
	deploy_begin(d, image_work, image_after);
}

void api_deploy(struct ctx *c)
{
	struct http_req *r = c->req;
	const char *image = http_req_query(r, "image");
	if (image && *image) {
		api_deploy_image(c, image);
		return;
	}
	if (!r->body_file || r->body_len == 0) {
		http_respond_error(r, 400, "the deploy body must be a tar.gz of the app directory");
		return;
	}
	const char *pull = http_req_query(r, "pull");
	if (pull && *pull && strcmp(pull, "missing") && strcmp(pull, "always") && strcmp(pull, "never")) {
		http_respond_error(r, 400, "pull: expected missing, always or never");
		return;
	}
	struct deploy *d = deploy_new(c);
	d->upload = r->body_file;
	r->body_file = NULL;          /* ours now */
	d->bytes = r->body_len;
	const char *nc = http_req_query(r, "no_cache");
	d->no_cache = nc && !strcmp(nc, "1");
	if (pull && *pull)
		d->pull = xstrdup(pull);
	deploy_begin(d, deploy_work, deploy_after);
}
