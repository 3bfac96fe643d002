/* resolve: an image made sure of at deploy time (see docker.h): inspect, pull when the
 * policy says so (its JSON progress stream read by engine_jstream: an error arrives inside a
 * 200 answer), inspect again; the id and repo digest pin the release. */
#include "driver/docker.h"
#include "engine/engine.h"
#include "util/buf.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESOLVE_TIMEOUT_MS 30000
#define PULL_TIMEOUT_MS (30 * 60000)

struct docker_resolve {
	struct driver *d;
	struct engine *en;
	struct engine_req *req;
	char *ref, *pull;
	bool pulled, js_open;
	struct engine_jstream js;
	void (*progress)(void *arg, const char *text);
	docker_resolved_fn done;
	void *arg;
};

static void inspect(struct docker_resolve *r);

static void finish(struct docker_resolve *r, const char *id, const char *digest, const char *error)
{
	r->req = NULL;
	if (r->js_open) {
		engine_jstream_finish(&r->js);
		r->js_open = false;
	}
	docker_resolved_fn done = r->done;
	void *arg = r->arg;
	if (error)
		utf8_fix((char *)error);   /* the callers' own buffers; it may quote the engine */
	free(r->ref);
	free(r->pull);
	free(r);
	done(arg, id, digest, error);
}

static void on_pull_data(void *arg, const char *data, size_t n)
{
	struct docker_resolve *r = arg;
	engine_jstream_feed(&r->js, data, n);
}

static void on_pull_done(void *arg, const struct engine_resp *resp)
{
	struct docker_resolve *r = arg;
	r->req = NULL;
	engine_jstream_finish(&r->js);
	r->js_open = false;
	char msg[700], text[300];
	if (resp->status != 200 || r->js.error[0]) {
		if (resp->status == 200)
			snprintf(msg, sizeof msg, "could not pull %s: %s", r->ref, r->js.error);
		else if (resp->error)
			snprintf(msg, sizeof msg, "could not pull %s: the container engine at %s did not answer: %s", r->ref,
				 engine_host(r->en), resp->error);
		else
			snprintf(msg, sizeof msg, "could not pull %s: %s", r->ref, engine_error_text(resp, text, sizeof text));
		finish(r, NULL, NULL, msg);
		return;
	}
	r->pulled = true;
	inspect(r);
}

static void on_progress(void *arg, const char *text)
{
	struct docker_resolve *r = arg;
	if (r->progress)
		r->progress(r->arg, text);
}

static void pull(struct docker_resolve *r)
{
	char *path = docker_pull_path(r->ref);
	char *auth = docker_auth_header(r->d, r->ref);
	const char *hdrs[2] = {auth, NULL};
	engine_jstream_init(&r->js, on_progress, r);
	r->js_open = true;
	struct engine_call c = {.method = "POST", .path = path, .headers = auth ? hdrs : NULL,
				.timeout_ms = PULL_TIMEOUT_MS, .on_data = on_pull_data, .on_done = on_pull_done, .arg = r};
	r->req = engine_call(r->en, &c);
	if (auth) {
		sodium_memzero(auth, strlen(auth));
		free(auth);
	}
	free(path);
}

static void on_inspect(void *arg, const struct engine_resp *resp)
{
	struct docker_resolve *r = arg;
	r->req = NULL;
	char msg[700], text[300];
	if (resp->status == 404 && !r->pulled) {
		if (!strcmp(r->pull, "never")) {
			snprintf(msg, sizeof msg, "image %s is not on this host, and pulling is off (--pull never)", r->ref);
			finish(r, NULL, NULL, msg);
			return;
		}
		pull(r);
		return;
	}
	struct engine_image im;
	struct err e = ERR_INIT;
	if (resp->status != 200 || engine_parse_image(resp->body, resp->len, &im, &e) < 0) {
		if (resp->error)
			snprintf(msg, sizeof msg, "image %s: the container engine at %s did not answer: %s", r->ref,
				 engine_host(r->en), resp->error);
		else if (resp->status == 200)
			snprintf(msg, sizeof msg, "image %s: %s", r->ref, e.msg);
		else
			snprintf(msg, sizeof msg, "image %s: %s", r->ref, engine_error_text(resp, text, sizeof text));
		finish(r, NULL, NULL, msg);
		return;
	}
	if (!strcmp(r->pull, "always") && !r->pulled && strncmp(r->ref, "sha256:", 7)) {
		engine_image_free(&im);
		pull(r);
		return;
	}
	char *id = xstrdup(im.id), *digest = im.repo_digest ? xstrdup(im.repo_digest) : NULL;
	engine_image_free(&im);
	finish(r, id, digest, NULL);
	free(id);
	free(digest);
}

static void inspect(struct docker_resolve *r)
{
	char *path = docker_image_path(r->ref, "/json");
	struct engine_call c = {.method = "GET", .path = path, .timeout_ms = RESOLVE_TIMEOUT_MS, .on_done = on_inspect,
				.arg = r};
	r->req = engine_call(r->en, &c);
	free(path);
}

struct docker_resolve *docker_resolve(struct driver *d, const char *ref, const char *pull,
				      void (*progress)(void *arg, const char *text), docker_resolved_fn done,
				      void *arg)
{
	struct docker_resolve *r = xcalloc(1, sizeof *r);
	r->d = d;
	r->en = driver_docker_engine(d);
	r->ref = xstrdup(ref);
	r->pull = xstrdup(pull && *pull ? pull : "missing");
	r->progress = progress;
	r->done = done;
	r->arg = arg;
	inspect(r);
	return r;
}

void docker_resolve_cancel(struct docker_resolve *r)
{
	if (!r)
		return;
	if (r->req)
		engine_cancel(r->req);
	if (r->js_open)
		engine_jstream_finish(&r->js);
	free(r->ref);
	free(r->pull);
	free(r);
}
