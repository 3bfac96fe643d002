/* build_image: an image built through the engine at deploy time (see docker.h). POST /build
 * with the packed app directory as its context; the answer is a JSON-lines stream read by
 * engine_jstream (each message said as a line; an error arrives inside a 200 answer), bounded
 * by a deadline (the call's) and an output limit (ours); then the tag is inspected for the id
 * the release pins (podman stores berth/... as docker.io/berth/..., and the id in the stream
 * may be short). The engine stops a build whose connection closes (Docker at once, podman
 * after the step under way): a cancel, the deadline and the output limit all stop it that way.
 * Owns the request and the report's lines, nothing the caller gave. */
#include "driver/docker.h"
#include "engine/engine.h"
#include "util/buf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INSPECT_TIMEOUT_MS 30000
#define REPORT_HEAD 5             /* a failed build's report: its first lines, "...", its last */
#define REPORT_TAIL 20

struct docker_build {
	struct engine *en;
	struct engine_req *req;
	char *tag;
	int64_t timeout_ms, output_limit, output;
	bool too_much, js_open, by_stream_id;
	struct engine_jstream js;
	char built_id[160];           /* the id the stream named, if any */
	json_t *head, *tail;          /* the first REPORT_HEAD lines, the last REPORT_TAIL after them */
	uint64_t lines;
	docker_build_line_fn on_line;
	docker_built_fn done;
	void *arg;
};

static void build_free(struct docker_build *b)
{
	if (b->js_open)
		engine_jstream_finish(&b->js);
	json_decref(b->head);
	json_decref(b->tail);
	free(b->tag);
	free(b);
}

/* The lines for a report: all when few, else the first ones, "...", the last ones. New ref. */
static json_t *report(const struct docker_build *b)
{
	json_t *out = json_copy(b->head);
	if (b->lines > json_array_size(b->head) + json_array_size(b->tail))
		json_array_append_new(out, json_string("..."));
	json_array_extend(out, b->tail);
	return out;
}

/* done once, then b is gone (id and error may point into b: they are copied first). */
static void finish(struct docker_build *b, const char *id, const char *error)
{
	b->req = NULL;
	if (b->js_open) {
		engine_jstream_finish(&b->js);
		b->js_open = false;
	}
	json_t *lines = report(b);
	docker_built_fn done = b->done;
	void *arg = b->arg;
	char *tag = xstrdup(b->tag);
	char *id_copy = id ? xstrdup(id) : NULL, *error_copy = error ? xstrdup(error) : NULL;
	build_free(b);
	done(arg, tag, id_copy, error_copy, lines);
	json_decref(lines);
	free(tag);
	free(id_copy);
	free(error_copy);
}

/* One line of the build's output (hostile: the engine's, and the build's own text): made
 * printable and UTF-8, kept for the report, given to on_line. */
static void on_line(void *arg, const char *text)
{
	struct docker_build *b = arg;
	if (b->too_much)
		return;
	b->output += (int64_t)strlen(text) + 1;
	if (b->output_limit > 0 && b->output > b->output_limit) {
		b->too_much = true;       /* stopped once the chunk has been read (on_data) */
		return;
	}
	char *clean = xstrdup(text);
	for (char *p = clean; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			*p = '?';
	json_t *line = json_string(clean);
	free(clean);
	if (!line)
		line = json_string("(a line that is not UTF-8)");
	b->lines++;
	if (json_array_size(b->head) < REPORT_HEAD) {
		json_array_append(b->head, line);
	} else {
		json_array_append(b->tail, line);
		if (json_array_size(b->tail) > REPORT_TAIL)
			json_array_remove(b->tail, 0);
	}
	if (b->on_line)
		b->on_line(b->arg, json_string_value(line));
	json_decref(line);
}

/* The message of an error answer (the engine buffers it: engine_error_text reads it), made
 * valid UTF-8: it ends up in JSON, and the engine passes the answer's bytes through. */
static void status_text(const struct engine_resp *resp, char *out, size_t n)
{
	engine_error_text(resp, out, n);
	json_t *check = json_string(out);
	if (!check)
		for (char *p = out; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
	json_decref(check);
}

/* An image id as berth pins it: "sha256:" and hex, or at least printable ASCII (it goes into
 * JSON, messages and engine paths). */
static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 128)
		return false;
	for (size_t k = 0; k < n; k++)
		if ((unsigned char)id[k] <= 0x20 || (unsigned char)id[k] >= 0x7f || id[k] == '"' || id[k] == '\\')
			return false;
	return true;
}

static void on_inspect(void *arg, const struct engine_resp *resp)
{
	struct docker_build *b = arg;
	b->req = NULL;
	struct engine_image im;
	struct err e = ERR_INIT;
	char msg[700], text[300];
	if (resp->status == 200 && engine_parse_image(resp->body, resp->len, &im, &e) == 0) {
		char *id = xstrdup(im.id);
		engine_image_free(&im);
		if (id_ok(id))
			finish(b, id, NULL);
		else
			finish(b, NULL, "the engine gave the built image an id that is not one");
		free(id);
		return;
	}
	if (resp->status == 404 && !b->by_stream_id && b->built_id[0]) {
		/* The tag is not found under the name we gave: the id the stream named is the image. */
		b->by_stream_id = true;
		char *path = docker_image_path(b->built_id, "/json");
		struct engine_call c = {.method = "GET", .path = path, .timeout_ms = INSPECT_TIMEOUT_MS,
					.on_done = on_inspect, .arg = b};
		b->req = engine_call(b->en, &c);
		free(path);
		if (!b->req)
			finish(b, NULL, "the container engine is shutting down");
		return;
	}
	status_text(resp, text, sizeof text);
	if (resp->status == 200)
		snprintf(msg, sizeof msg, "the built image %s: %s", b->tag, e.msg);
	else
		snprintf(msg, sizeof msg, "the built image %s cannot be found: %s", b->tag, text);
	finish(b, NULL, msg);
}

static void inspect_tag(struct docker_build *b)
{
	char *path = docker_image_path(b->tag, "/json");
	struct engine_call c = {.method = "GET", .path = path, .timeout_ms = INSPECT_TIMEOUT_MS, .on_done = on_inspect,
				.arg = b};
	b->req = engine_call(b->en, &c);
	free(path);
	if (!b->req)
		finish(b, NULL, "the container engine is shutting down");
}

static void on_data(void *arg, const char *data, size_t n)
{
	struct docker_build *b = arg;
	engine_jstream_feed(&b->js, data, n);
	if (b->too_much) {
		engine_cancel(b->req);   /* the connection closes: the engine stops the build */
		char msg[200];
		if (b->output_limit >= (1 << 20))
			snprintf(msg, sizeof msg, "stopped: more than %lld MiB of output", (long long)(b->output_limit >> 20));
		else
			snprintf(msg, sizeof msg, "stopped: more than %lld bytes of output", (long long)b->output_limit);
		finish(b, NULL, msg);
	}
}

static void on_build_done(void *arg, const struct engine_resp *resp)
{
	struct docker_build *b = arg;
	b->req = NULL;
	engine_jstream_finish(&b->js);
	b->js_open = false;
	char msg[700], text[500];
	if (resp->status == 0 && resp->error && !strncmp(resp->error, "timed out", 9)) {
		snprintf(msg, sizeof msg, "timed out after %lld s and was stopped",
			 (long long)((b->timeout_ms + 500) / 1000));
		finish(b, NULL, msg);
		return;
	}
	if (resp->status == 0) {
		snprintf(msg, sizeof msg, "the container engine at %s did not answer: %s", engine_host(b->en),
			 resp->error ? resp->error : "no answer");
		finish(b, NULL, msg);
		return;
	}
	if (resp->status != 200) {
		status_text(resp, text, sizeof text);
		finish(b, NULL, text);
		return;
	}
	if (b->js.error[0]) {
		/* podman appends a dump of its parser's step to a Dockerfile's syntax error: the
		 * message before it says it all ("Build error: Unknown instruction: \"BOGUS\"") */
		char *dump = strstr(b->js.error, " &imagebuilder.");
		if (dump)
			*dump = 0;
		finish(b, NULL, b->js.error);
		return;
	}
	snprintf(b->built_id, sizeof b->built_id, "%s", b->js.image_id);
	inspect_tag(b);
}

struct docker_build *docker_build(struct driver *d, const struct docker_build_spec *s, docker_build_line_fn line,
				  docker_built_fn done, void *arg)
{
	struct docker_build *b = xcalloc(1, sizeof *b);
	b->en = driver_docker_engine(d);
	b->tag = xstrdup(s->tag);
	b->timeout_ms = s->timeout_ms;
	b->output_limit = s->output_limit;
	b->head = json_array();
	b->tail = json_array();
	b->on_line = line;
	b->done = done;
	b->arg = arg;
	engine_jstream_init(&b->js, on_line, b);
	b->js_open = true;
	char *t = docker_query_escape(s->tag), *f = docker_query_escape(s->dockerfile);
	char *path = xasprintf("/build?t=%s&dockerfile=%s&rm=1&forcerm=1%s%s", t, f, s->pull ? "&pull=1" : "",
			       s->no_cache ? "&nocache=1" : "");
	struct engine_call c = {.method = "POST", .path = path, .body_file = s->context,
				.content_type = "application/x-tar", .headers = s->headers,
				.timeout_ms = s->timeout_ms, .on_data = on_data, .on_done = on_build_done, .arg = b};
	b->req = engine_call(b->en, &c);
	free(path);
	free(t);
	free(f);
	if (!b->req) {
		build_free(b);
		return NULL;
	}
	return b;
}

void docker_build_cancel(struct docker_build *b)
{
	if (!b)
		return;
	if (b->req)
		engine_cancel(b->req);
	build_free(b);
}
