/* api/gc: garbage collection of release code directories (DATA/releases/<env>/<app>/code-*).
 * After a release is committed, an app's code directories that no kept release needs go:
 * kept are the newest release_keep releases (server.yaml), the live release, the rollout
 * target and every release that still has instances (model_code_dirs_keep). The decision is
 * taken on the loop from one read of the store; the file-system work runs on libuv's work
 * queue. Removal is crash-safe: code-X is first renamed to .gc-code-X-<random> (atomic, so a
 * code directory that exists is always whole), then the tree is removed; leftovers of a crash
 * are removed at the next start (api_gc_init).
 * Races: a deploy may reuse an existing code directory, so a prune of an app never runs at
 * the same time as a deploy of that app: a prune waits until no deploy of the app is in
 * flight, and a deploy that arrives while a prune runs is queued after it. A rollback checks
 * api_gc_code_gone, which counts the directories a running prune is removing as gone.
 * Never blocks the loop; never removes anything when the store could not be read. */
#include "api/internal.h"
#include "driver/docker.h"
#include "engine/engine.h"
#include "model/model.h"
#include "manifest/manifest.h"
#include <unistd.h>
#include "util/fsutil.h"
#include "util/log.h"
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A deploy held back until the app's prune ends. */
struct gc_wait {
	struct gc_wait *next;
	uv_work_t *w;
	uv_work_cb work;
	uv_after_work_cb after;
};

/* Per-app state; exists while something is in flight or wanted for the app. */
struct gc_app {
	struct gc_app *next;
	char env[64], app[64];
	int deploys;              /* deploys in flight: from upload to commit or failure */
	bool wanted;              /* a prune was asked for while it could not run */
	struct gc_job *job;       /* the prune running now, or NULL */
	struct gc_wait *waiting;  /* deploys to queue when job ends, in arrival order */
};

/* One prune (or, with ga == NULL, the start-up removal of leftovers). paths and keep are
 * written on the loop before queueing and only read afterwards, by both threads. */
struct gc_job {
	uv_work_t work;
	struct api *api;
	struct gc_app *ga;
	char *app_dir;            /* DATA/releases/<env>/<app> */
	char *cache_dir;          /* DATA/cache/<env>/<app> */
	size_t cache_removed;
	char **keep;              /* sorted dir names to keep */
	size_t nkeep;
	char **paths;             /* start-up: leftover .gc-* paths to remove */
	size_t npaths;
	/* results, written by the work thread */
	size_t removed;
	size_t failed;
	char error[300];          /* the first failure */
};

static struct gc_app *app_find(struct api *a, const char *env, const char *app, bool create)
{
	for (struct gc_app *g = a->gc_apps; g; g = g->next)
		if (!strcmp(g->env, env) && !strcmp(g->app, app))
			return g;
	if (!create)
		return NULL;
	struct gc_app *g = xcalloc(1, sizeof *g);
	snprintf(g->env, sizeof g->env, "%s", env);
	snprintf(g->app, sizeof g->app, "%s", app);
	g->next = a->gc_apps;
	a->gc_apps = g;
	return g;
}

/* Drop the record of an app with nothing in flight. */
static void app_forget_idle(struct api *a, struct gc_app *g)
{
	if (g->deploys || g->job || g->wanted || g->waiting)
		return;
	for (struct gc_app **pp = &a->gc_apps; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			free(g);
			return;
		}
	}
}

static void job_free(struct gc_job *j)
{
	for (size_t k = 0; k < j->nkeep; k++)
		free(j->keep[k]);
	free(j->keep);
	for (size_t k = 0; k < j->npaths; k++)
		free(j->paths[k]);
	free(j->paths);
	free(j->app_dir);
	free(j->cache_dir);
	free(j);
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static bool job_keeps(const struct gc_job *j, const char *dir)
{
	return bsearch(&dir, j->keep, j->nkeep, sizeof *j->keep, cmp_str) != NULL;
}

static void job_error(struct gc_job *j, const struct err *e)
{
	j->failed++;
	if (!j->error[0])
		snprintf(j->error, sizeof j->error, "%s", e->msg);
}

/* Work thread: the dependency caches (DATA/cache/<env>/<app>/<builder>/<hash>) that no kept
 * code directory links to any more go too (a build links .berth/venv or node_modules into
 * them; prunes never run while a deploy of the app is in flight, so a cache directory being
 * built is never taken for unused). */
static void prune_cache(struct gc_job *j)
{
	static const char *const links[] = {".berth/venv", "node_modules", ".berth/bundle"};
	static const char *const builders[] = {"python", "node", "ruby"};
	char **used = NULL;
	size_t nused = 0;
	for (size_t k = 0; k < j->nkeep; k++) {
		for (size_t l = 0; l < 3; l++) {
			char *p = xasprintf("%s/%s/%s", j->app_dir, j->keep[k], links[l]);
			char target[4096];
			ssize_t n = readlink(p, target, sizeof target - 1);
			free(p);
			if (n <= 0)
				continue;
			target[n] = 0;
			char *slash = strrchr(target, '/');   /* .../<hash>/venv -> .../<hash> */
			if (!slash)
				continue;
			*slash = 0;
			used = xrealloc(used, (nused + 1) * sizeof *used);
			used[nused++] = xstrdup(target);
		}
	}
	for (size_t b = 0; b < 3; b++) {
		char *dir = xasprintf("%s/%s", j->cache_dir, builders[b]);
		DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char *p = xasprintf("%s/%s", dir, de->d_name);
			/* <hash16> is a link to the current install <hash16>-<stamp> (build.h): a link
			 * stays while what it points at is used. */
			char target[4096], *real = NULL;
			ssize_t tn = readlink(p, target, sizeof target - 1);
			if (tn > 0) {
				target[tn] = 0;
				real = target[0] == '/' ? xstrdup(target) : xasprintf("%s/%s", dir, target);
			}
			bool in_use = false;
			for (size_t u = 0; u < nused && !in_use; u++)
				in_use = !strcmp(used[u], real ? real : p);
			free(real);
			if (!in_use && tn > 0) {
				if (unlink(p) == 0)
					j->cache_removed++;
			} else if (!in_use) {
				char *to = xasprintf("%s/.gc-%s-%08x", dir, de->d_name, randombytes_random());
				struct err e = ERR_INIT;
				if (rename(p, to) == 0 && fs_rm_rf(to, &e) == 0)
					j->cache_removed++;
				else if (e.msg[0])
					job_error(j, &e);
				free(to);
			}
			free(p);
		}
		if (d)
			closedir(d);
		free(dir);
	}
	for (size_t u = 0; u < nused; u++)
		free(used[u]);
	free(used);
}

/* Work thread: rename every unkept code-* to .gc-code-*-<random>, then remove those trees. */
static void prune_work(uv_work_t *w)
{
	struct gc_job *j = w->data;
	struct err e = ERR_INIT;
	DIR *d = opendir(j->app_dir);
	if (!d) {
		if (errno != ENOENT) {
			err_errno(&e, errno, "open %s", j->app_dir);
			job_error(j, &e);
		}
		return;
	}
	/* Names first: renaming while reading the directory could show readdir an entry twice. */
	size_t n = 0, cap = 0;
	char **doomed = NULL;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!model_code_dir_name(de->d_name) || job_keeps(j, de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			doomed = xrealloc(doomed, cap * sizeof *doomed);
		}
		doomed[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	size_t moved = 0;
	for (size_t k = 0; k < n; k++) {
		unsigned char rnd[4];
		randombytes_buf(rnd, sizeof rnd);
		char hex[9];
		sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
		char *from = xasprintf("%s/%s", j->app_dir, doomed[k]);
		char *to = xasprintf("%s/.gc-%s-%s", j->app_dir, doomed[k], hex);
		free(doomed[k]);
		if (rename(from, to) < 0) {
			err_errno(&e, errno, "rename %s to %s", from, to);
			job_error(j, &e);
			free(to);
		} else {
			doomed[moved++] = to;
		}
		free(from);
	}
	n = moved;
	if (n)
		fs_fsync_dir(j->app_dir);   /* the renames are durable before any tree goes */
	for (size_t k = 0; k < n; k++) {
		struct err re = ERR_INIT;
		if (fs_rm_rf(doomed[k], &re) < 0)
			job_error(j, &re);    /* what is left is removed at the next start */
		else
			j->removed++;
		free(doomed[k]);
	}
	free(doomed);
	prune_cache(j);
}

static void gc_start(struct api *a, struct gc_app *g);

static void prune_after(uv_work_t *w, int status)
{
	struct gc_job *j = w->data;
	struct api *a = j->api;
	struct gc_app *g = j->ga;
	if (j->removed)
		log_info("%s/%s: removed %zu old release code director%s (release_keep %d)", g->env, g->app,
			 j->removed, j->removed == 1 ? "y" : "ies", a->conf->release_keep);
	if (j->cache_removed)
		log_info("%s/%s: removed %zu unused dependency cache director%s", g->env, g->app, j->cache_removed,
			 j->cache_removed == 1 ? "y" : "ies");
	if (j->failed)
		log_warn("%s/%s: removing old release code: %zu failure%s, first: %s", g->env, g->app, j->failed,
			 j->failed == 1 ? "" : "s", j->error);
	g->job = NULL;
	job_free(j);
	struct gc_wait *q = g->waiting;
	g->waiting = NULL;
	while (q) {
		struct gc_wait *next = q->next;
		uv_queue_work(a->loop, q->w, q->work, q->after);
		free(q);
		q = next;
	}
	if (g->wanted && !g->deploys && !a->closing) {
		g->wanted = false;
		gc_start(a, g);
	}
	app_forget_idle(a, g);
	api_job_done(a);
}

/* The release documents of env/app as a JSON array, or NULL with e. */
static json_t *read_releases(struct api *a, const char *env, const char *app, struct err *e)
{
	char *prefix = model_releases_prefix(env, app);
	struct store_list l;
	int r = store_list(a->st, prefix, &l, e);
	free(prefix);
	if (r < 0)
		return NULL;
	json_t *arr = json_array();
	for (size_t k = 0; k < l.n && arr; k++) {
		json_t *doc = json_loads(l.items[k].value, 0, NULL);
		if (!json_is_object(doc)) {
			err_set(e, ERR_INTERNAL, "store value at %s is not a JSON object", l.items[k].key);
			json_decref(doc);
			json_decref(arr);
			arr = NULL;
		} else {
			json_array_append_new(arr, doc);
		}
	}
	store_list_free(&l);
	return arr;
}

/* Release versions that still have instances (any state but stopped). */
static int *busy_versions(struct api *a, const char *env, const char *app, size_t *n)
{
	*n = 0;
	if (!a->rc)
		return NULL;
	json_t *insts = reconciler_instances(a->rc, env, app);
	int *v = xcalloc(json_array_size(insts) + 1, sizeof *v);
	size_t k;
	json_t *i;
	json_array_foreach(insts, k, i)
		v[(*n)++] = model_json_int(i, "release", 0);
	json_decref(insts);
	return v;
}

/* ---- images ---- */

/* The image ids the releases in rels pin (the "images" map), those whose code directory is
 * in keep (or all when keep is NULL) into kept, the others into gone. */
static void image_ids(json_t *rels, json_t *keep, json_t *kept, json_t *gone)
{
	size_t k;
	json_t *r;
	json_array_foreach(rels, k, r) {
		const char *dir = json_string_value(json_object_get(r, "dir"));
		bool keeps = !keep || (dir && json_object_get(keep, dir));
		const char *p;
		json_t *im;
		json_object_foreach(json_object_get(r, "images"), p, im) {
			const char *id = json_string_value(json_object_get(im, "id"));
			if (id)
				json_object_set_new(keeps ? kept : gone, id, json_true());
		}
	}
}

static void on_image_removed(void *arg, const struct engine_resp *r)
{
	char *id = arg;
	if (r->status == 200)
		log_info("removed image %.19s: no kept release uses it", id);
	else if (r->status != 404 && r->status != 409)   /* 409: a container still uses it */
		log_warn("could not remove image %.19s: status %ld%s%s", id, r->status, r->error ? ": " : "",
			 r->error ? r->error : "");
	free(id);
}

/* Images that releases of env/app no longer kept pinned, and that no kept release (of any
 * app) pins, are removed from the engine (server.yaml images.gc; a running container keeps
 * its image: the engine refuses, and the next prune tries again). */
static void prune_images(struct api *a, const char *env, const char *app, json_t *rels, json_t *keep)
{
	struct driver *dk = a->rc && a->conf->image_gc ? reconciler_driver(a->rc, "docker") : NULL;
	if (!dk)
		return;
	json_t *kept = json_object(), *gone = json_object();
	image_ids(rels, keep, kept, gone);
	if (!json_object_size(gone)) {
		json_decref(kept);
		json_decref(gone);
		return;
	}
	/* what every other app's releases pin counts as kept */
	struct store_list l;
	struct err e = ERR_INIT;
	if (store_list(a->st, "/envs/", &l, &e) < 0) {
		json_decref(kept);
		json_decref(gone);
		return;
	}
	char *mine = model_releases_prefix(env, app);
	for (size_t k = 0; k < l.n; k++) {
		if (!strstr(l.items[k].key, "/releases/") || !strncmp(l.items[k].key, mine, strlen(mine)))
			continue;
		json_t *doc = json_loads(l.items[k].value, 0, NULL);
		json_t *one = json_array();
		json_array_append_new(one, doc ? doc : json_object());
		image_ids(one, NULL, kept, kept);
		json_decref(one);
	}
	free(mine);
	store_list_free(&l);
	const char *id;
	json_t *v;
	json_object_foreach(gone, id, v) {
		if (json_object_get(kept, id) || strncmp(id, "sha256:", 7) || strlen(id) != 71)
			continue;
		char *path = docker_image_path(id, "?noprune=0");
		struct engine_call c = {.method = "DELETE", .path = path, .timeout_ms = 60000, .on_done = on_image_removed,
					.arg = xstrdup(id)};
		engine_call(driver_docker_engine(dk), &c);
		free(path);
	}
	json_decref(kept);
	json_decref(gone);
}

/* Decide on the loop from one consistent read of the store, then queue the removal. */
static void gc_start(struct api *a, struct gc_app *g)
{
	struct err e = ERR_INIT;
	int64_t rev = store_rev(a->st);
	char *akey = model_app_key(g->env, g->app);
	json_t *app = model_get(a->st, akey, NULL, &e);
	free(akey);
	if (!app) {
		if (e.code != ERR_NOTFOUND)
			log_warn("%s/%s: not removing old release code: %s", g->env, g->app, e.msg);
		return;
	}
	json_t *rels = read_releases(a, g->env, g->app, &e);
	if (!rels) {
		log_warn("%s/%s: not removing old release code: %s", g->env, g->app, e.msg);
		json_decref(app);
		return;
	}
	size_t nbusy;
	int *busy = busy_versions(a, g->env, g->app, &nbusy);
	/* The loop is the store's only writer, so nothing can commit between the reads above;
	 * should that ever change, this refuses to act on a torn view. */
	json_t *keep = store_rev(a->st) == rev
			       ? model_code_dirs_keep(app, rels, busy, nbusy, a->conf->release_keep)
			       : NULL;
	free(busy);
	if (keep)
		prune_images(a, g->env, g->app, rels, keep);
	json_decref(rels);
	json_decref(app);
	if (!keep) {
		log_warn("%s/%s: not removing old release code: a release the app needs has no code "
			 "directory on record", g->env, g->app);
		return;
	}
	struct gc_job *j = xcalloc(1, sizeof *j);
	j->api = a;
	j->ga = g;
	j->app_dir = xasprintf("%s/releases/%s/%s", a->data_dir, g->env, g->app);
	j->cache_dir = xasprintf("%s/cache/%s/%s", a->data_dir, g->env, g->app);
	j->keep = xcalloc(json_object_size(keep) + 1, sizeof *j->keep);
	const char *dir;
	json_t *v;
	json_object_foreach(keep, dir, v)
		j->keep[j->nkeep++] = xstrdup(dir);
	json_decref(keep);
	qsort(j->keep, j->nkeep, sizeof *j->keep, cmp_str);
	j->work.data = j;
	g->job = j;
	a->jobs++;
	uv_queue_work(a->loop, &j->work, prune_work, prune_after);
}

void api_gc_request(struct api *a, const char *env, const char *app)
{
	if (a->closing)
		return;
	struct gc_app *g = app_find(a, env, app, true);
	if (g->deploys || g->job) {
		g->wanted = true;     /* runs when the last deploy or the running prune ends */
		return;
	}
	g->wanted = false;
	gc_start(a, g);
	app_forget_idle(a, g);
}

void api_gc_deploy_begin(struct api *a, const char *env, const char *app, uv_work_t *w, uv_work_cb work,
			 uv_after_work_cb after)
{
	struct gc_app *g = app_find(a, env, app, true);
	g->deploys++;
	a->jobs++;
	if (!g->job) {
		uv_queue_work(a->loop, w, work, after);
		return;
	}
	struct gc_wait *q = xcalloc(1, sizeof *q);
	q->w = w;
	q->work = work;
	q->after = after;
	struct gc_wait **pp = &g->waiting;
	while (*pp)
		pp = &(*pp)->next;
	*pp = q;
}

void api_gc_deploy_end(struct api *a, const char *env, const char *app)
{
	struct gc_app *g = app_find(a, env, app, false);
	if (g) {
		g->deploys--;
		if (!g->deploys && g->wanted && !g->job && !a->closing) {
			g->wanted = false;
			gc_start(a, g);
		}
		app_forget_idle(a, g);
	}
	api_job_done(a);
}

bool api_gc_code_gone(struct api *a, const char *env, const char *app, const char *dir)
{
	if (!model_code_dir_name(dir))
		return true;
	struct gc_app *g = app_find(a, env, app, false);
	if (g && g->job && !job_keeps(g->job, dir))
		return true;          /* being removed right now */
	char *path = xasprintf("%s/releases/%s/%s/%s", a->data_dir, env, app, dir);
	bool gone = !fs_exists(path);
	free(path);
	return gone;
}

static void sweep_work(uv_work_t *w)
{
	struct gc_job *j = w->data;
	for (size_t k = 0; k < j->npaths; k++) {
		struct err e = ERR_INIT;
		if (fs_rm_rf(j->paths[k], &e) < 0)
			job_error(j, &e);
		else
			j->removed++;
	}
}

static void sweep_after(uv_work_t *w, int status)
{
	struct gc_job *j = w->data;
	struct api *a = j->api;
	if (j->removed)
		log_info("removed %zu release code or cache director%s left behind by a previous server",
			 j->removed, j->removed == 1 ? "y" : "ies");
	if (j->failed)
		log_warn("removing leftover release code: %zu failure%s, first: %s", j->failed,
			 j->failed == 1 ? "" : "s", j->error);
	job_free(j);
	api_job_done(a);
}

/* Add the matches of DATA/<pattern> to j's paths; with orphans_only, only app directories
 * (DATA/x/<env>/<app>) whose app the store does not have. */
static void add_paths(struct api *a, struct gc_job *j, const char *pattern, bool orphans_only)
{
	char *full = xasprintf("%s/%s", a->data_dir, pattern);
	glob_t gl;
	int r = glob(full, GLOB_NOSORT | GLOB_ONLYDIR, NULL, &gl);
	free(full);
	if (r != 0)
		return;
	for (size_t k = 0; k < gl.gl_pathc; k++) {
		if (orphans_only) {
			const char *app = strrchr(gl.gl_pathv[k], '/') + 1;
			const char *env_end = app - 1, *env = env_end;
			while (env > gl.gl_pathv[k] && env[-1] != '/')
				env--;
			char envn[64], appn[64];
			snprintf(envn, sizeof envn, "%.*s", (int)(env_end - env), env);
			snprintf(appn, sizeof appn, "%s", app);
			if (!name_valid(envn) || !name_valid(appn))
				continue;
			struct err e = ERR_INIT;
			char *key = model_app_key(envn, appn);
			json_t *doc = model_get(a->st, key, NULL, &e);
			free(key);
			json_decref(doc);
			if (doc || e.code != ERR_NOTFOUND)
				continue;     /* the app exists (or the store could not say): keep */
			log_info("removing the files of %s/%s, an app that no longer exists (%s)", envn, appn,
				 gl.gl_pathv[k]);
		}
		j->paths = xrealloc(j->paths, (j->npaths + 1) * sizeof *j->paths);
		j->paths[j->npaths++] = xstrdup(gl.gl_pathv[k]);
	}
	globfree(&gl);
}

void api_gc_init(struct api *a)
{
	/* Listed now, before any prune of this server can make new ones: half-removed trees
	 * (.gc-*), half-unpacked uploads, and the code and caches of apps that were destroyed
	 * (or deleted by an older server) while their files stayed. */
	struct gc_job *j = xcalloc(1, sizeof *j);
	j->api = a;
	static const char *const leftovers[] = {"releases/*/*/.gc-*", "releases/*/.gc-*", "releases/*/*/.unpack-*",
						"cache/*/.gc-*", "cache/*/*/*/.gc-*", "volumes/*/.gc-*"};
	for (size_t k = 0; k < sizeof leftovers / sizeof leftovers[0]; k++)
		add_paths(a, j, leftovers[k], false);
	add_paths(a, j, "releases/*/*", true);
	add_paths(a, j, "cache/*/*", true);
	if (!j->npaths) {
		job_free(j);
		return;
	}
	j->work.data = j;
	a->jobs++;
	uv_queue_work(a->loop, &j->work, sweep_work, sweep_after);
}

void api_gc_free(struct api *a)
{
	while (a->gc_apps) {
		struct gc_app *g = a->gc_apps;
		a->gc_apps = g->next;
		while (g->waiting) {
			struct gc_wait *q = g->waiting;
			g->waiting = q->next;
			free(q);
		}
		free(g);
	}
}
