/* api/internal: what the API's files share: the api struct, the request context, and
 * helpers for JSON answers and progress streams. Not used outside src/api. */
#ifndef BERTH_API_INTERNAL_H
#define BERTH_API_INTERNAL_H
#include "api/api.h"
#include "http/http.h"
#include "manifest/manifest.h"
#include "reconcile/reconcile.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include <jansson.h>
#include <stdbool.h>

struct endpoints;
struct metrics;
struct gc_app;

/* Logs of berth's own components (the router's access log) live under this env name,
 * which no user env can have (names start with [a-z0-9]). */
#define API_SYSTEM_ENV "_system"

enum role { ROLE_VIEWER = 1, ROLE_DEPLOYER = 2, ROLE_ADMIN = 3 };

struct api {
	uv_loop_t *loop;
	struct http_server *http;
	struct store *st;
	struct reconciler *rc;
	struct logs *logs;
	const struct server_conf *conf;
	char *data_dir;
	char *tmp_dir;
	struct endpoints *eps;       /* may be NULL (no router) */
	struct metrics *metrics;     /* may be NULL */
	struct gc_app *gc_apps;      /* per-app deploy/prune state (gc.c) */
	struct deploy *builds;       /* deploys building or waiting to build (deploy.c) */
	int jobs;                    /* work-queue jobs in flight (deploys, prunes) */
	int64_t started_us;          /* the server's start (GET /healthz) */
	bool closing;                /* api_free was called; freed when jobs reaches 0 */
};

/* Per-request context, in r->user. */
struct ctx {
	struct api *api;
	struct http_req *req;
	enum role role;
	char *seg[8];          /* path segments after /v1 */
	int nseg;
	char env[64], app[64];
	bool is_metrics;       /* GET /metrics */
	bool streaming;        /* an NDJSON progress answer has started */
	char who[80];          /* "token NAME": who asked (for release records and logs) */
};

/* Answer r with e mapped to a status (ERR_INVALID -> 400, ...). */
void api_fail(struct http_req *r, const struct err *e);
int api_status_of(const struct err *e);
/* Parse the JSON object body; NULL after answering 400. Empty body gives {}. */
json_t *api_body_json(struct http_req *r);

/* Progress streams: answer with NDJSON events from a reconciler waiter. `first` (may be NULL,
 * stolen) are events written before waiting. */
void api_stream_wait(struct ctx *c, enum rc_wait kind, int version, json_t *first);
/* The same stream driven by the API itself before (or instead of) a waiter: start it (once),
 * write one event (stolen; "ts" added when missing), or end it with a done event (stolen). */
void api_stream_begin(struct ctx *c);
void api_stream_event(struct ctx *c, json_t *ev);
void api_stream_finish(struct ctx *c, json_t *done);

/* Handlers (one file each). */
void api_envs(struct ctx *c);
void api_apps(struct ctx *c);
void api_app_get(struct ctx *c);
void api_app_delete(struct ctx *c);
void api_app_create(struct ctx *c);
void api_run(struct ctx *c);                     /* run.c */
void api_exec(struct ctx *c, const char *id);
void api_cancel(struct ctx *c);
/* Deploys of env/app in their build stage (running or waiting for the app's build slot):
 * cancel them all (returns how many), or ask whether there is one. */
int api_deploy_cancel(struct api *a, const char *env, const char *app);
bool api_deploy_building(struct api *a, const char *env, const char *app);
void api_cron_list(struct ctx *c);               /* cron.c */
void api_cron_run(struct ctx *c, const char *job);
void api_debug_clock(struct ctx *c);
void api_deploy(struct ctx *c);
void api_releases(struct ctx *c);
void api_release_get(struct ctx *c, const char *num);
void api_rollback(struct ctx *c);
void api_config_get(struct ctx *c);
void api_config_set(struct ctx *c);
void api_scale(struct ctx *c);
void api_restart(struct ctx *c);
void api_stopstart(struct ctx *c, bool stop);
void api_instances(struct ctx *c);
void api_logs(struct ctx *c);
void api_volumes(struct ctx *c);
void api_volume_delete(struct ctx *c, const char *name);
void api_routes(struct ctx *c);
void api_route_add(struct ctx *c);
void api_route_delete(struct ctx *c);
void api_maintenance(struct ctx *c);     /* GET/POST .../maintenance (maintenance.c) */
void api_env_alerts(struct ctx *c);     /* GET/PUT /v1/envs/E/alerts */
void api_tokens(struct ctx *c);
void api_token_new(struct ctx *c);
void api_token_delete(struct ctx *c, const char *name);
void api_registries(struct ctx *c);                 /* registries.c (admin) */
void api_registry_login(struct ctx *c);
void api_registry_logout(struct ctx *c, const char *host);

/* Token check: the role of the bearer token in r, or 0 when missing/unknown; who (may be
 * NULL) gets "token NAME" for records of who did what. */
enum role api_auth(struct api *a, struct http_req *r, char *who, size_t wlen);

/* Env alert webhooks (env_alerts.c). Check a PUT body {"webhooks": [URL, ...]}: an object
 * with only that field, a list of at most ALERTS_MAX_WEBHOOKS distinct strings, each passing
 * alerts_url_check. 0 and *out = a copy of the list (new reference; [] clears), or -1 with e
 * (ERR_INVALID) naming the bad item as webhooks[i] and never quoting a URL whole. */
int api_webhooks_parse(json_t *body, json_t **out, struct err *e);
/* How an answer shows a webhook URL: scheme://host[:port]/… (appended to out). */
void api_webhook_redact(const char *url, struct buf *out);

/* The formation in effect for an app document (apps.c). */
json_t *api_formation(struct api *a, json_t *doc);
/* The processes an app has (formation.c). api_app_manifest: the manifest of the app
 * document's live release, else of the one rolling out, else of its newest (a failed first
 * deploy); new reference, NULL when the app has no release (e untouched) or it cannot be read
 * (e set). api_manifest_process: the process of that name in it (borrowed) or NULL; every
 * process name is appended to names ("web, worker"; names may be NULL). */
json_t *api_app_manifest(struct api *a, json_t *doc, struct err *e);
json_t *api_manifest_process(json_t *manifest, const char *name, struct buf *names);

/* Releases (releases.c): create a new release for env/app and make it the rollout target.
 * fields: "description", "code", "dir", "manifest", optional "config" (else the app's
 * current config), "rollback_of". Returns the version, or -1 with e. */
int api_release_create(struct api *a, const char *env, const char *app, json_t *fields, struct err *e);
/* A work-queue job of the api ended (called last, from its after-callback): once the api is
 * closing and this was the last job, the api is freed. */
void api_job_done(struct api *a);

/* Release code garbage collection (gc.c; see its top comment).
 * api_gc_init: at start, remove .gc-* leftovers of a crash (on the work queue).
 * api_gc_request: prune env/app's unneeded code directories now, or as soon as no deploy of
 *   the app is in flight and no prune of it runs. Call after committing a release.
 * api_gc_deploy_begin/end: bracket a deploy of env/app. begin queues the deploy's work (w,
 *   work, after) now, or after the app's running prune; end is called when the deploy's
 *   release is committed or the deploy failed (it may free a closing api: call it last).
 * api_gc_code_gone: is the code directory dir of env/app missing or being removed? */
void api_gc_init(struct api *a);
void api_gc_request(struct api *a, const char *env, const char *app);
void api_gc_deploy_begin(struct api *a, const char *env, const char *app, uv_work_t *w, uv_work_cb work,
			 uv_after_work_cb after);
void api_gc_deploy_end(struct api *a, const char *env, const char *app);
bool api_gc_code_gone(struct api *a, const char *env, const char *app, const char *dir);
void api_gc_free(struct api *a);

/* Does c's app exist? 0, or -1 after answering (404 naming it, or the store's error). */
int api_need_app(struct ctx *c);
/* The app document and its revision; NULL with ERR_NOTFOUND when there is no such app. */
json_t *api_app_doc(struct api *a, const char *env, const char *app, int64_t *rev, struct err *e);
#endif
