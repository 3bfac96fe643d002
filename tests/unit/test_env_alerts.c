/* test_env_alerts: per-env alert webhooks set through the API: the URL check (length, control
 * characters, scheme, a host as written), the PUT body check (shape, count, duplicates, the
 * bad item named, no URL quoted), the redacted form, the env-document helpers of model/,
 * the lazily started delivery thread, and alerts/sync (server.yaml's lists, the store's
 * winning over them, following changes, a bad stored list skipped, nothing secret logged). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "alerts/alerts.h"
#include "alerts/sync.h"
#include "api/internal.h"
#include "manifest/manifest.h"
#include "model/model.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/fsutil.h"

#define SECRET "T0P-SECRET-PATH"

/* ---- alerts_url_check ---- */

static void url_ok(const char *url)
{
	struct err e = ERR_INIT;
	if (alerts_url_check(url, &e) != 0)
		fail_msg("refused %s: %s", url, e.msg);
}

/* Refused with a message holding want and never the secret part. */
static void url_bad(const char *url, const char *want)
{
	struct err e = ERR_INIT;
	if (alerts_url_check(url, &e) != -1)
		fail_msg("accepted %s", url ? url : "(null)");
	assert_int_equal(e.code, ERR_INVALID);
	if (!strstr(e.msg, want))
		fail_msg("%s: message \"%s\" lacks \"%s\"", url ? url : "(null)", e.msg, want);
	assert_null(strstr(e.msg, SECRET));
}

static void test_url_check(void **state)
{
	url_ok("https://hooks.slack.com/services/T000/B000/XXXXXXXX");
	url_ok("http://127.0.0.1:9000/hook");
	url_ok("HTTPS://Hooks.Example.com/x?a=b#c");
	url_ok("https://user:pw@example.com/x");
	url_ok("http://[::1]:8080/x");
	url_ok("https://example.com");
	url_ok("https://example.com/\xc3\xa9t\xc3\xa9");          /* UTF-8 in the path */

	const char *not_url = "is not an http:// or https:// URL with a host";
	url_bad(NULL, "empty");
	url_bad("", "empty");
	url_bad("hooks.example.com/" SECRET, not_url);
	url_bad("https://", not_url);
	url_bad("https:///" SECRET, not_url);       /* libcurl would take SECRET as the host */
	url_bad("https:/" SECRET, not_url);
	url_bad("https:\\\\" SECRET "/x", not_url);
	url_bad("javascript:alert('" SECRET "')", not_url);
	url_bad("ftp:///" SECRET, not_url);
	url_bad("ftp://files.example.com/" SECRET, "ftp://files.example.com: only http and https");
	url_bad("file:///etc/" SECRET, not_url);
	url_bad("http://example.com:99999/" SECRET, not_url);
	url_bad("https://example.com/a " SECRET, "space or a control character");
	url_bad("https://example.com/" SECRET "\n", "space or a control character");
	url_bad("https://example.com/\t" SECRET, "space or a control character");
	url_bad("https://example.com/\x7f" SECRET, "space or a control character");

	/* Length: 2048 bytes is fine, 2049 is not. */
	struct buf b = BUF_INIT;
	buf_adds(&b, "https://example.com/");
	while (b.len < ALERTS_URL_MAX)
		buf_addc(&b, 'a');
	url_ok(buf_str(&b));
	buf_adds(&b, SECRET);
	url_bad(buf_str(&b), "longer than 2048 bytes");
	buf_free(&b);
}

/* ---- the PUT body ---- */

/* Parse text as JSON and run the body check; returns its result with e filled. */
static int parse_body(const char *text, json_t **out, struct err *e)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (!j)
		fail_msg("test JSON %s: %s", text, je.text);
	err_clear(e);
	int r = api_webhooks_parse(j, out, e);
	json_decref(j);
	return r;
}

static void body_bad(const char *text, const char *want)
{
	json_t *out = NULL;
	struct err e = ERR_INIT;
	if (parse_body(text, &out, &e) != -1)
		fail_msg("accepted %s", text);
	assert_null(out);
	assert_int_equal(e.code, ERR_INVALID);
	if (!strstr(e.msg, want))
		fail_msg("%s: message \"%s\" lacks \"%s\"", text, e.msg, want);
	assert_null(strstr(e.msg, SECRET));
}

static void test_body(void **state)
{
	json_t *out = NULL;
	struct err e = ERR_INIT;
	assert_int_equal(parse_body("{\"webhooks\": [\"https://a.example.com/1\", \"http://b.example.com:81/2\"]}",
				    &out, &e), 0);
	assert_int_equal(json_array_size(out), 2);
	assert_string_equal(json_string_value(json_array_get(out, 1)), "http://b.example.com:81/2");
	json_decref(out);
	assert_int_equal(parse_body("{\"webhooks\": []}", &out, &e), 0);    /* clears */
	assert_int_equal(json_array_size(out), 0);
	json_decref(out);

	body_bad("[]", "must be a JSON object");
	body_bad("\"https://x.example.com/" SECRET "\"", "must be a JSON object");
	body_bad("{}", "needs \"webhooks\"");
	body_bad("{\"webhook\": []}", "unknown field \"webhook\"");
	body_bad("{\"webhooks\": [], \"extra\": 1}", "unknown field \"extra\"");
	body_bad("{\"webhooks\": \"https://x.example.com/" SECRET "\"}", "must be a list");
	body_bad("{\"webhooks\": null}", "must be a list");
	body_bad("{\"webhooks\": [\"https://a.example.com/x\", 1]}", "webhooks[1] must be a string");
	body_bad("{\"webhooks\": [{\"url\": \"https://a.example.com/" SECRET "\"}]}", "webhooks[0] must be a string");
	body_bad("{\"webhooks\": [\"https://a.example.com/x\", \"ftp://f.example.com/" SECRET "\"]}",
		 "webhooks[1]: ftp://f.example.com: only http and https");
	body_bad("{\"webhooks\": [\"https:///" SECRET "\"]}", "webhooks[0]: the webhook URL is not");
	body_bad("{\"webhooks\": [\"https://a.example.com/\\u0000" SECRET "\"]}", "webhooks[0]: the webhook URL holds a NUL");
	body_bad("{\"webhooks\": [\"https://a.example.com/" SECRET "\\r\\n\"]}", "webhooks[0]: the webhook URL holds a space");
	body_bad("{\"webhooks\": [\"https://a.example.com/" SECRET "\", \"https://b.example.com/x\", "
		 "\"https://a.example.com/" SECRET "\"]}", "webhooks[2] repeats webhooks[0]");

	/* At most 16. */
	struct buf b = BUF_INIT;
	buf_adds(&b, "{\"webhooks\": [");
	for (int i = 0; i < ALERTS_MAX_WEBHOOKS; i++)
		buf_addf(&b, "%s\"https://h%d.example.com/x\"", i ? ", " : "", i);
	buf_adds(&b, "]}");
	assert_int_equal(parse_body(buf_str(&b), &out, &e), 0);
	assert_int_equal(json_array_size(out), ALERTS_MAX_WEBHOOKS);
	json_decref(out);
	b.len -= 2;
	b.p[b.len] = 0;
	buf_adds(&b, ", \"https://one-more.example.com/x\"]}");
	body_bad(buf_str(&b), "has 17 URLs; at most 16");
	buf_free(&b);
}

static void test_redact_and_model(void **state)
{
	struct buf b = BUF_INIT;
	api_webhook_redact("https://user:pw@hooks.slack.com/services/" SECRET "?t=" SECRET, &b);
	assert_string_equal(buf_str(&b), "https://hooks.slack.com/\xe2\x80\xa6");
	buf_reset(&b);
	api_webhook_redact("http://127.0.0.1:9000/" SECRET, &b);
	assert_string_equal(buf_str(&b), "http://127.0.0.1:9000/\xe2\x80\xa6");
	buf_free(&b);

	char env[64];
	assert_int_equal(model_parse_env_key("/envs/staging", env), 0);
	assert_string_equal(env, "staging");
	assert_int_equal(model_parse_env_key("/envs/staging/apps/web", env), -1);
	assert_int_equal(model_parse_env_key("/envs/", env), -1);
	assert_int_equal(model_parse_env_key("/routes/x", env), -1);
	char *key = model_env_key("staging");
	assert_string_equal(key, "/envs/staging");
	free(key);

	json_t *doc = json_loads("{\"name\":\"s\",\"alerts\":{\"webhooks\":[\"https://a.example.com/x\"]}}", 0, NULL);
	assert_int_equal(json_array_size(model_env_webhooks(doc)), 1);
	json_decref(doc);
	doc = json_loads("{\"name\":\"s\",\"alerts\":{\"webhooks\":[]}}", 0, NULL);
	assert_null(model_env_webhooks(doc));
	json_decref(doc);
	doc = json_loads("{\"name\":\"s\",\"alerts\":{\"webhooks\":\"https://a.example.com\"}}", 0, NULL);
	assert_null(model_env_webhooks(doc));
	json_decref(doc);
	doc = json_loads("{\"name\":\"s\"}", 0, NULL);
	assert_null(model_env_webhooks(doc));
	json_decref(doc);
	assert_null(model_env_webhooks(NULL));
}

/* ---- the delivery thread starts on first need ---- */

static int threads_now(void)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	assert_int_equal(fs_read_file("/proc/self/status", &b, 1 << 16, &e), 0);
	const char *t = strstr(buf_str(&b), "\nThreads:");
	assert_non_null(t);
	int n = atoi(t + 9);
	buf_free(&b);
	return n;
}

static void test_lazy_worker(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	int before = threads_now();
	struct alerts_conf c = {.server = "t", .rate_limit_ms = -1, .shutdown_grace_ms = 50};
	struct err e = ERR_INIT;
	struct alerts *a = alerts_new(&loop, &c, &e);
	assert_non_null(a);
	assert_int_equal(threads_now(), before);                 /* no webhook: no thread */
	alerts_emit(a, ALERT_CRASH_LOOP, "production", "shop", "web", "web.1", "x");
	assert_int_equal(threads_now(), before);                 /* nowhere to go: still none */
	const char *urls[] = {"http://127.0.0.1:1/hook"};        /* nothing listens there */
	assert_int_equal(alerts_set_env_webhooks(a, "staging", urls, 1, &e), 0);
	alerts_emit(a, ALERT_CRASH_LOOP, "production", "shop", "web", "web.1", "x");
	assert_int_equal(threads_now(), before);                 /* another env's webhook */
	alerts_emit(a, ALERT_CRASH_LOOP, "staging", "shop", "web", "web.1", "x");
	assert_int_equal(threads_now(), before + 1);             /* started for staging's */
	alerts_emit(a, ALERT_CRASH_LOOP, "staging", "shop", "worker", "worker.1", "x");
	assert_int_equal(threads_now(), before + 1);             /* once */
	alerts_free(a);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(threads_now(), before);
}

/* ---- alerts/sync ---- */

struct sync_fx {
	char dir[64];
	struct store *st;
	uv_loop_t loop;
	struct alerts *a;
	struct server_conf conf;
};

static void put_env(struct store *st, const char *env, const char *alerts_json)
{
	char *key = model_env_key(env);
	char *doc = alerts_json ? xasprintf("{\"name\":\"%s\",\"alerts\":%s}", env, alerts_json)
				: xasprintf("{\"name\":\"%s\"}", env);
	struct err e = ERR_INIT;
	if (store_put(st, key, doc, &e) < 0)
		fail_msg("%s", e.msg);
	free(key);
	free(doc);
}

static void conf_add_env(struct server_conf *c, const char *env, const char *url)
{
	c->alert_envs = xrealloc(c->alert_envs, (c->nalert_envs + 1) * sizeof *c->alert_envs);
	struct alert_env *ae = &c->alert_envs[c->nalert_envs++];
	ae->env = xstrdup(env);
	ae->webhooks = xcalloc(1, sizeof *ae->webhooks);
	ae->webhooks[0] = xstrdup(url);
	ae->nwebhooks = 1;
}

static void sync_fx_open(struct sync_fx *f)
{
	snprintf(f->dir, sizeof f->dir, "/tmp/berth-test-envalerts-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char *path = xasprintf("%s/state.db", f->dir);
	struct err e = ERR_INIT;
	f->st = store_open(path, &e);
	free(path);
	if (!f->st)
		fail_msg("%s", e.msg);
	uv_loop_init(&f->loop);
	struct alerts_conf c = {.server = "t", .rate_limit_ms = -1, .shutdown_grace_ms = 50};
	f->a = alerts_new(&f->loop, &c, &e);
	assert_non_null(f->a);
}

static void sync_fx_close(struct sync_fx *f)
{
	alerts_free(f->a);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	store_close(f->st);
	fs_rm_rf(f->dir, NULL);
	for (size_t k = 0; k < f->conf.nalert_envs; k++) {
		free(f->conf.alert_envs[k].env);
		free(f->conf.alert_envs[k].webhooks[0]);
		free(f->conf.alert_envs[k].webhooks);
	}
	free(f->conf.alert_envs);
}

static void test_sync(void **state)
{
	struct sync_fx f = {0};
	sync_fx_open(&f);
	conf_add_env(&f.conf, "staging", "https://yaml.example.com/staging");
	conf_add_env(&f.conf, "qa", "https://yaml.example.com/qa");
	put_env(f.st, "staging", "{\"webhooks\":[\"https://api.example.com/" SECRET "\"]}");
	put_env(f.st, "production", NULL);

	char logpath[] = "/tmp/berth-envalerts-log-XXXXXX";
	int logfd = mkstemp(logpath);
	fflush(stderr);
	int saved = dup(2);
	dup2(logfd, 2);

	struct err e = ERR_INIT;
	struct alerts_sync *s = alerts_sync_start(f.a, f.st, &f.conf, &e);
	assert_non_null(s);
	assert_int_equal(alerts_sync_store_envs(s), 1);           /* staging's, over server.yaml's */
	put_env(f.st, "qa", "{\"webhooks\":[\"https://api.example.com/qa-" SECRET "\"]}");
	assert_int_equal(alerts_sync_store_envs(s), 2);
	put_env(f.st, "qa", "{\"webhooks\":[\"https://api.example.com/qa-" SECRET "\"]}");   /* same */
	assert_int_equal(alerts_sync_store_envs(s), 2);
	put_env(f.st, "staging", NULL);                            /* cleared: server.yaml's again */
	assert_int_equal(alerts_sync_store_envs(s), 1);
	put_env(f.st, "staging", "{\"webhooks\":[\"ftp://files.example.com/" SECRET "\"]}");  /* unusable */
	assert_int_equal(alerts_sync_store_envs(s), 1);
	put_env(f.st, "staging", "{\"webhooks\":[42]}");
	assert_int_equal(alerts_sync_store_envs(s), 1);
	/* Writes below an env (apps, releases) are not env documents. */
	struct err pe = ERR_INIT;
	assert_int_equal(store_put(f.st, "/envs/production/apps/web", "{\"alerts\":{\"webhooks\":[\"https://x.example.com\"]}}",
				   &pe), 0);
	assert_int_equal(alerts_sync_store_envs(s), 1);
	assert_int_equal(store_del(f.st, "/envs/qa", &pe), 0);    /* env gone: its list too */
	assert_int_equal(alerts_sync_store_envs(s), 0);
	alerts_sync_free(s);
	/* After free, changes are no longer followed (and nothing touches freed memory). */
	put_env(f.st, "qa", "{\"webhooks\":[\"https://api.example.com/qa\"]}");

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	struct buf log = BUF_INIT;
	assert_int_equal(fs_read_file(logpath, &log, 1 << 20, &e), 0);
	close(logfd);
	unlink(logpath);
	assert_non_null(strstr(buf_str(&log), "alerts: env qa now sends its alerts to its own 1 webhook"));
	assert_non_null(strstr(buf_str(&log), "env staging: its own webhooks were cleared; server.yaml's 1 webhook"));
	assert_non_null(strstr(buf_str(&log), "env staging: the webhooks stored for it cannot be used"));
	if (strstr(buf_str(&log), SECRET))
		fail_msg("the log holds a webhook's secret:\n%s", buf_str(&log));
	buf_free(&log);

	/* A bad URL in server.yaml's list stops the start, naming the env. */
	struct server_conf bad = {0};
	conf_add_env(&bad, "qa", "ftp://files.example.com/" SECRET);
	assert_null(alerts_sync_start(f.a, f.st, &bad, &e));
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "alerts.envs.qa"));
	assert_null(strstr(e.msg, SECRET));
	free(bad.alert_envs[0].env);
	free(bad.alert_envs[0].webhooks[0]);
	free(bad.alert_envs[0].webhooks);
	free(bad.alert_envs);
	sync_fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_check),
		cmocka_unit_test(test_body),
		cmocka_unit_test(test_redact_and_model),
		cmocka_unit_test(test_lazy_worker),
		cmocka_unit_test(test_sync),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
