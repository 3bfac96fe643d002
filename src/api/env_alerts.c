/* api/env_alerts: an env's own alert webhooks, GET and PUT /v1/envs/E/alerts (docs/API.md).
 * The list lives in the env's document (/envs/E "alerts", model.h), written in one
 * compare-and-swap transaction; the server's alerts/sync picks every change up through its
 * store watch, so it takes effect at once and survives restarts.
 * Webhook URLs are secrets (a Slack URL is a bearer token): every answer shows them redacted
 * to scheme://host[:port]/…, whatever the role, and no error or log line quotes one. */
#include "api/internal.h"
#include "alerts/alerts.h"
#include "model/model.h"
#include "util/timeutil.h"
#include <stdlib.h>
#include <string.h>

void api_webhook_redact(const char *url, struct buf *out)
{
	alerts_url_redact(url, out);
	buf_adds(out, "/\xe2\x80\xa6");   /* "/…": the path, query and user info are hidden */
}

int api_webhooks_parse(json_t *body, json_t **out, struct err *e)
{
	*out = NULL;
	if (!json_is_object(body))
		return err_set(e, ERR_INVALID, "the body must be a JSON object: {\"webhooks\": [URL, ...]}");
	const char *k;
	json_t *v;
	json_object_foreach(body, k, v)
		if (strcmp(k, "webhooks"))
			return err_set(e, ERR_INVALID, "unknown field \"%.64s\": the body is {\"webhooks\": [URL, ...]}", k);
	json_t *list = json_object_get(body, "webhooks");
	if (!list)
		return err_set(e, ERR_INVALID, "the body needs \"webhooks\": a list of URLs ([] clears it)");
	if (!json_is_array(list))
		return err_set(e, ERR_INVALID, "\"webhooks\" must be a list of URLs ([] clears it)");
	size_t n = json_array_size(list);
	if (n > ALERTS_MAX_WEBHOOKS)
		return err_set(e, ERR_INVALID, "\"webhooks\" has %zu URLs; at most %d", n, ALERTS_MAX_WEBHOOKS);
	for (size_t i = 0; i < n; i++) {
		json_t *u = json_array_get(list, i);
		if (!json_is_string(u))
			return err_set(e, ERR_INVALID, "webhooks[%zu] must be a string (a URL)", i);
		const char *url = json_string_value(u);
		if (strlen(url) != json_string_length(u))
			return err_set(e, ERR_INVALID, "webhooks[%zu]: the webhook URL holds a NUL byte", i);
		if (alerts_url_check(url, e) < 0)
			return err_prefix(e, "webhooks[%zu]", i);
		for (size_t j = 0; j < i; j++)
			if (json_equal(json_array_get(list, j), u))
				return err_set(e, ERR_INVALID, "webhooks[%zu] repeats webhooks[%zu]", i, j);
	}
	*out = json_deep_copy(list);
	return 0;
}

/* The env's document and its revision; NULL with ERR_NOTFOUND when there is no such env. */
static json_t *env_doc(struct api *a, const char *env, int64_t *rev, struct err *e)
{
	char *key = model_env_key(env);
	json_t *doc = model_get(a->st, key, rev, e);
	free(key);
	if (!doc && e->code == ERR_NOTFOUND)
		err_set(e, ERR_NOTFOUND, "no env \"%s\" (an env comes into being with its first deploy)", env);
	return doc;
}

/* {"env", "webhooks": [redacted], "source"}: the webhooks this env's alerts go to besides the
 * server-wide ones, and where they come from ("api", "server.yaml" or "none"). */
static json_t *answer(struct api *a, const char *env, json_t *doc)
{
	json_t *hooks = model_env_webhooks(doc);
	json_t *arr = json_array();
	const char *source = "none";
	if (hooks) {
		source = "api";
		size_t k;
		json_t *u;
		json_array_foreach(hooks, k, u) {
			struct buf b = BUF_INIT;
			api_webhook_redact(json_string_value(u), &b);
			json_array_append_new(arr, json_string(buf_str(&b)));
			buf_free(&b);
		}
	} else {
		for (size_t k = 0; k < a->conf->nalert_envs; k++) {
			const struct alert_env *ae = &a->conf->alert_envs[k];
			if (strcmp(ae->env, env) || !ae->nwebhooks)
				continue;
			source = "server.yaml";
			for (size_t j = 0; j < ae->nwebhooks; j++) {
				struct buf b = BUF_INIT;
				api_webhook_redact(ae->webhooks[j], &b);
				json_array_append_new(arr, json_string(buf_str(&b)));
				buf_free(&b);
			}
		}
	}
	return json_pack("{s:s, s:o, s:s}", "env", env, "webhooks", arr, "source", source);
}

static void get_alerts(struct ctx *c)
{
	struct err e = ERR_INIT;
	json_t *doc = env_doc(c->api, c->env, NULL, &e);
	if (!doc) {
		api_fail(c->req, &e);
		return;
	}
	http_respond_json(c->req, 200, answer(c->api, c->env, doc));
	json_decref(doc);
}

/* Replace the env's list (an empty one removes it) in one compare-and-swap transaction,
 * retried when another writer changed the env document in between. */
static void put_alerts(struct ctx *c)
{
	/* Not api_body_json: jansson's error text quotes the token it choked on, which could be a
	 * piece of a webhook URL. */
	struct buf *rb = &c->req->body;
	json_error_t je;
	json_t *body = rb->len ? json_loadb(rb->p, rb->len, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (!body) {
		char msg[160];
		if (rb->len)
			snprintf(msg, sizeof msg, "malformed JSON body at line %d column %d", je.line, je.column);
		else
			snprintf(msg, sizeof msg, "the body must be a JSON object: {\"webhooks\": [URL, ...]}");
		http_respond_error(c->req, 400, msg);
		return;
	}
	struct err e = ERR_INIT;
	json_t *hooks = NULL;
	int r = api_webhooks_parse(body, &hooks, &e);
	json_decref(body);
	if (r < 0) {
		api_fail(c->req, &e);
		return;
	}
	char *key = model_env_key(c->env);
	char ts[40];
	time_format_rfc3339(time_now_us(), ts, sizeof ts);
	json_t *doc = NULL;
	r = -1;
	for (int attempt = 0; attempt < 5; attempt++) {
		int64_t rev = 0;
		json_decref(doc);
		doc = env_doc(c->api, c->env, &rev, &e);
		if (!doc)
			break;
		if (json_array_size(hooks))
			json_object_set_new(doc, "alerts", json_pack("{s:O, s:s}", "webhooks", hooks, "updated_at", ts));
		else
			json_object_del(doc, "alerts");
		char *val = model_dump(doc);
		struct store_txn *t = store_txn_new();
		store_txn_cmp_rev(t, key, rev);
		store_txn_put(t, key, val);
		r = store_txn_commit(c->api->st, t, NULL, &e);
		store_txn_free(t);
		free(val);
		if (r == 0 || e.code != ERR_CONFLICT)
			break;
		err_clear(&e);
	}
	free(key);
	json_decref(hooks);
	if (r < 0) {
		json_decref(doc);
		api_fail(c->req, &e);
		return;
	}
	http_respond_json(c->req, 200, answer(c->api, c->env, doc));
	json_decref(doc);
}

void api_env_alerts(struct ctx *c)
{
	struct http_req *r = c->req;
	if (!name_valid(c->seg[1])) {
		http_respond_error(r, 400, "env names must match [a-z0-9][a-z0-9-]* (at most 63 characters)");
		return;
	}
	snprintf(c->env, sizeof c->env, "%s", c->seg[1]);
	if (!strcmp(r->method, "GET")) {
		get_alerts(c);
	} else if (!strcmp(r->method, "PUT") || !strcmp(r->method, "POST")) {
		if (c->role < ROLE_ADMIN)
			http_respond_error(r, 403, "this needs an admin token (webhook URLs are secrets)");
		else
			put_alerts(c);
	} else {
		http_respond_error(r, 405, "method not allowed here");
	}
}
