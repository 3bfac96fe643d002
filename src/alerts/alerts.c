/* alerts: the main-loop side of webhook notifications: configuration, URL checks, per-env
 * webhooks, the per-(kind, env, app, process) rate limit with its end-of-window flush timer,
 * and the JSON payload. Deliveries go to the worker in deliver.c, which is started by the
 * first alert that has a webhook to go to (see alerts.h for the contract). */
#include "alerts/internal.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "metrics/metrics.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

struct env_hooks {
	struct env_hooks *next;
	char *env;
	char **urls;
	size_t n;
};

/* Rate-limit state of one (kind, env, app, process). The last alert held back in the window
 * is kept whole so it can be sent when the window closes. */
struct rl_entry {
	struct rl_entry *next;
	enum alert_kind kind;
	char *env, *app, *process;      /* process "" when none */
	int64_t window_end_ms;
	uint64_t held;                  /* alerts held back in this window */
	char *instance, *message;       /* the latest held one (instance may be NULL) */
	int64_t ts_us;
};

struct alerts {
	uv_loop_t *loop;
	uv_timer_t timer;               /* fires when the earliest window with held alerts ends */
	char *server;
	char **urls;
	size_t nurls;
	int64_t rate_limit_ms;
	struct env_hooks *envs;
	struct rl_entry *rl;
	struct alert_counters ctr;
	struct sender_conf sc;
	struct sender *sender;          /* started by the first alert with a webhook to go to */
};

static const char *const KIND_NAMES[ALERT_KIND_COUNT] = {
	"crash_loop", "health_failing", "deploy_failed", "deploy_rolled_back", "recovered",
};
static const char *const KIND_TITLES[ALERT_KIND_COUNT] = {
	"crash loop", "health check failing", "deploy failed", "deploy rolled back", "recovered",
};
static const char *const OUTCOME_NAMES[4] = {"sent", "failed", "dropped", "suppressed"};

const char *alert_kind_name(enum alert_kind k)
{
	return (unsigned)k < ALERT_KIND_COUNT ? KIND_NAMES[k] : "unknown";
}

void alert_count(struct alert_counters *c, enum alert_kind kind, enum alert_outcome o, uint64_t n)
{
	if (!n)
		return;
	atomic_fetch_add_explicit(&c->outcome[o], n, memory_order_relaxed);
	struct metric_family *f = atomic_load_explicit(&c->family, memory_order_acquire);
	if (f)
		metrics_add(f, (const char *[]){alert_kind_name(kind), OUTCOME_NAMES[o]}, n);
}

/* ---- URLs ---- */

void alerts_url_redact(const char *url, struct buf *out)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	if (u && url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		buf_addf(out, "%s://%s", scheme, host);
		if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
			buf_addf(out, ":%s", port);
	} else {
		buf_adds(out, "(invalid URL)");
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

/* Whether url starts with "scheme://" and a host as written, not "scheme:///x" or
 * "scheme:/x", which libcurl forgives by taking x as the host: the redacted form would then
 * show what the user meant as a secret path. */
static bool authority_as_written(const char *url, const char *scheme)
{
	size_t n = strlen(scheme);
	return strncasecmp(url, scheme, n) == 0 && strncmp(url + n, "://", 3) == 0 && url[n + 3] != '/' &&
	       url[n + 3] != '\\';
}

int alerts_url_check(const char *url, struct err *e)
{
	if (!url || !*url)
		return err_set(e, ERR_INVALID, "the webhook URL is empty");
	size_t n = strnlen(url, ALERTS_URL_MAX + 1);
	if (n > ALERTS_URL_MAX)
		return err_set(e, ERR_INVALID, "the webhook URL is longer than %d bytes", ALERTS_URL_MAX);
	for (const unsigned char *p = (const unsigned char *)url; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return err_set(e, ERR_INVALID, "the webhook URL holds a space or a control character");
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int rc = 0;
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host ||
	    !authority_as_written(url, scheme)) {
		rc = err_set(e, ERR_INVALID, "the webhook URL is not an http:// or https:// URL with a host");
	} else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		struct buf r = BUF_INIT;
		alerts_url_redact(url, &r);
		rc = err_set(e, ERR_INVALID, "%s: only http and https webhooks are supported", buf_str(&r));
		buf_free(&r);
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

static char **copy_urls(const char *const *urls, size_t n)
{
	char **out = xcalloc(n ? n : 1, sizeof *out);
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(urls[i]);
	return out;
}

static void free_urls(char **urls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
}

/* ---- payload ---- */

/* Slack reads &, < and > in "text" as markup; escape them as its docs ask. */
static void add_slack_escaped(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '&')
			buf_adds(b, "&amp;");
		else if (*s == '<')
			buf_adds(b, "&lt;");
		else if (*s == '>')
			buf_adds(b, "&gt;");
		else
			buf_addc(b, *s);
	}
}

static json_t *str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

/* The JSON body, or NULL when a string is not valid UTF-8 after all. Caller frees. */
static char *build_payload(struct alerts *a, enum alert_kind kind, const char *env, const char *app,
			   const char *process, const char *instance, const char *message, int64_t ts_us,
			   uint64_t suppressed)
{
	struct buf text = BUF_INIT;
	buf_addf(&text, "[berth@%s] %s: ", a->server, KIND_TITLES[kind]);
	struct buf target = BUF_INIT;
	buf_addf(&target, "%s/%s", env, app);
	if (instance && *instance)
		buf_addf(&target, " %s", instance);
	else if (process && *process)
		buf_addf(&target, " %s", process);
	add_slack_escaped(&text, buf_str(&target));
	if (message && *message) {
		buf_adds(&text, ": ");
		add_slack_escaped(&text, message);
	}
	if (suppressed)
		buf_addf(&text, " (%llu suppressed)", (unsigned long long)suppressed);
	buf_free(&target);

	char ts[40];
	time_format_rfc3339(ts_us, ts, sizeof ts);
	json_t *j = json_object();
	json_object_set_new(j, "text", json_string(buf_str(&text)));
	json_object_set_new(j, "kind", json_string(KIND_NAMES[kind]));
	json_object_set_new(j, "env", str_or_null(env));
	json_object_set_new(j, "app", str_or_null(app));
	json_object_set_new(j, "process", str_or_null(process));
	json_object_set_new(j, "instance", str_or_null(instance));
	json_object_set_new(j, "message", json_string(message ? message : ""));
	json_object_set_new(j, "ts", json_string(ts));
	json_object_set_new(j, "server", json_string(a->server));
	json_object_set_new(j, "suppressed", json_integer((json_int_t)suppressed));
	buf_free(&text);
	/* json_string() refuses invalid UTF-8 and set_new then leaves the key out. */
	char *out = json_object_size(j) == 10 ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return out;
}

/* Replace bytes that are not valid UTF-8 so the payload always builds. Caller frees. */
static char *utf8_clean(const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *out = xmalloc(n + 1);
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0;
	while (i < n) {
		unsigned c = p[i];
		size_t len = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3
			: (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
		bool ok = len > 0 && i + len <= n;
		unsigned cp = len > 1 ? c & (0x7f >> len) : c;
		for (size_t k = 1; ok && k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				ok = false;
			else
				cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (ok && len > 1) {
			static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
			if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
				ok = false;
		}
		if (!ok) {
			out[o++] = '?';
			i++;
			continue;
		}
		memcpy(out + o, p + i, len);
		o += len;
		i += len;
	}
	out[o] = 0;
	return out;
}

/* The delivery worker, started on first need: a server without webhooks never starts the
 * thread nor initialises libcurl. NULL (logged; the caller drops the deliveries) when it
 * cannot be started now; the next alert tries again. Main loop. */
static struct sender *start_sender(struct alerts *a)
{
	if (a->sender)
		return a->sender;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct err e = ERR_INIT;
	a->sender = sender_new(&a->sc, &a->ctr, &e);
	if (!a->sender) {
		curl_global_cleanup();
		log_warn("%s; this alert's deliveries are dropped", e.msg);
		return NULL;
	}
	log_info("alerts: delivery worker started");
	return a->sender;
}

/* Queue the alert for every webhook of the server and of its env. */
static void send_alert(struct alerts *a, enum alert_kind kind, const char *env, const char *app,
		       const char *process, const char *instance, const char *message, int64_t ts_us,
		       uint64_t suppressed)
{
	char *cenv = utf8_clean(env), *capp = utf8_clean(app), *cproc = utf8_clean(process);
	char *cinst = utf8_clean(instance), *cmsg = utf8_clean(message);
	char *payload = build_payload(a, kind, cenv, capp, cproc, cinst, cmsg, ts_us, suppressed);
	free(cenv);
	free(capp);
	free(cproc);
	free(cinst);
	free(cmsg);
	if (!payload) {
		log_warn("alerts: could not build the %s alert for %s/%s", alert_kind_name(kind), env, app);
		return;
	}
	atomic_fetch_add_explicit(&a->ctr.emitted, 1, memory_order_relaxed);
	struct env_hooks *eh = a->envs;
	while (eh && strcmp(eh->env, env) != 0)
		eh = eh->next;
	size_t n = a->nurls + (eh ? eh->n : 0);
	if (n && !start_sender(a)) {
		alert_count(&a->ctr, kind, OUTCOME_DROPPED, n);
		free(payload);
		return;
	}
	for (size_t i = 0; i < a->nurls; i++)
		sender_push(a->sender, kind, a->urls[i], payload);
	for (size_t i = 0; eh && i < eh->n; i++)
		sender_push(a->sender, kind, eh->urls[i], payload);
	free(payload);
}

/* ---- rate limit ---- */

static void rl_free(struct rl_entry *r)
{
	free(r->env);
	free(r->app);
	free(r->process);
	free(r->instance);
	free(r->message);
	free(r);
}

static void rl_hold(struct rl_entry *r, const char *instance, const char *message, int64_t ts_us)
{
	free(r->instance);
	free(r->message);
	r->instance = instance ? xstrdup(instance) : NULL;
	r->message = xstrdup(message ? message : "");
	r->ts_us = ts_us;
	r->held++;
}

static void arm_timer(struct alerts *a);

/* Send the latest held alert of every window that has ended; re-arm for the next one. */
static void on_timer(uv_timer_t *t)
{
	struct alerts *a = t->data;
	int64_t now = time_mono_ms();
	for (struct rl_entry *r = a->rl; r; r = r->next) {
		if (!r->held || now < r->window_end_ms)
			continue;
		uint64_t others = r->held - 1;
		alert_count(&a->ctr, r->kind, OUTCOME_SUPPRESSED, others);
		r->held = 0;
		r->window_end_ms = now + a->rate_limit_ms;   /* sending opens a new window */
		send_alert(a, r->kind, r->env, r->app, r->process, r->instance, r->message, r->ts_us, others);
	}
	arm_timer(a);
}

static void arm_timer(struct alerts *a)
{
	int64_t next = -1;
	for (struct rl_entry *r = a->rl; r; r = r->next)
		if (r->held && (next < 0 || r->window_end_ms < next))
			next = r->window_end_ms;
	if (next < 0) {
		uv_timer_stop(&a->timer);
		return;
	}
	int64_t delay = next - time_mono_ms();
	uv_timer_start(&a->timer, on_timer, delay > 0 ? (uint64_t)delay : 0, 0);
}

/* Forget windows that ended with nothing held, so the table only holds recent keys. */
static void rl_prune(struct alerts *a, int64_t now)
{
	for (struct rl_entry **pp = &a->rl; *pp;) {
		struct rl_entry *r = *pp;
		if (!r->held && now >= r->window_end_ms) {
			*pp = r->next;
			rl_free(r);
		} else {
			pp = &r->next;
		}
	}
}

static struct rl_entry *rl_find(struct alerts *a, enum alert_kind kind, const char *env, const char *app,
				const char *process)
{
	for (struct rl_entry *r = a->rl; r; r = r->next)
		if (r->kind == kind && strcmp(r->env, env) == 0 && strcmp(r->app, app) == 0 &&
		    strcmp(r->process, process) == 0)
			return r;
	return NULL;
}

/* A recovery makes the failure alerts held for the same process stale: drop them (they count
 * as suppressed) and report how many on the recovery itself. */
static uint64_t rl_cancel_failures(struct alerts *a, const char *env, const char *app, const char *process)
{
	uint64_t n = 0;
	for (struct rl_entry *r = a->rl; r; r = r->next) {
		if ((r->kind != ALERT_CRASH_LOOP && r->kind != ALERT_HEALTH_FAILING) || !r->held ||
		    strcmp(r->env, env) != 0 || strcmp(r->app, app) != 0 || strcmp(r->process, process) != 0)
			continue;
		alert_count(&a->ctr, r->kind, OUTCOME_SUPPRESSED, r->held);
		n += r->held;
		r->held = 0;
	}
	return n;
}

void alerts_emit(struct alerts *a, enum alert_kind kind, const char *env, const char *app,
		 const char *process, const char *instance, const char *message)
{
	if (!a || (unsigned)kind >= ALERT_KIND_COUNT)
		return;
	env = env ? env : "";
	app = app ? app : "";
	const char *proc = process ? process : "";
	int64_t now = time_mono_ms(), ts = time_now_us();
	uint64_t note = 0;
	if (kind == ALERT_RECOVERED) {
		note = rl_cancel_failures(a, env, app, proc);
		if (note)
			arm_timer(a);
	}
	if (a->rate_limit_ms > 0) {
		rl_prune(a, now);
		struct rl_entry *r = rl_find(a, kind, env, app, proc);
		if (r && now < r->window_end_ms) {
			rl_hold(r, instance, message, ts);
			arm_timer(a);
			return;
		}
		if (!r) {
			r = xcalloc(1, sizeof *r);
			r->kind = kind;
			r->env = xstrdup(env);
			r->app = xstrdup(app);
			r->process = xstrdup(proc);
			r->next = a->rl;
			a->rl = r;
		}
		r->window_end_ms = now + a->rate_limit_ms;
	}
	send_alert(a, kind, env, app, process, instance, message, ts, note);
}

void alerts_emitf(struct alerts *a, enum alert_kind kind, const char *env, const char *app,
		  const char *process, const char *instance, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	alerts_emit(a, kind, env, app, process, instance, buf_str(&b));
	buf_free(&b);
}

/* ---- life cycle ---- */

int alerts_set_env_webhooks(struct alerts *a, const char *env, const char *const *urls, size_t n,
			    struct err *e)
{
	for (size_t i = 0; i < n; i++)
		if (alerts_url_check(urls[i], e) < 0)
			return err_prefix(e, "env %s", env);
	struct env_hooks **pp = &a->envs;
	while (*pp && strcmp((*pp)->env, env) != 0)
		pp = &(*pp)->next;
	struct env_hooks *h = *pp;
	if (h) {
		free_urls(h->urls, h->n);
	} else {
		h = xcalloc(1, sizeof *h);
		h->env = xstrdup(env);
		*pp = h;
	}
	if (n == 0) {
		*pp = h->next;
		free(h->env);
		free(h);
		return 0;
	}
	h->urls = copy_urls(urls, n);
	h->n = n;
	return 0;
}

void alerts_set_metrics(struct alerts *a, struct metric_family *f)
{
	atomic_store_explicit(&a->ctr.family, f, memory_order_release);
}

void alerts_stats(struct alerts *a, struct alerts_stats *out)
{
	out->emitted = atomic_load_explicit(&a->ctr.emitted, memory_order_relaxed);
	out->retries = atomic_load_explicit(&a->ctr.retries, memory_order_relaxed);
	out->sent = atomic_load_explicit(&a->ctr.outcome[OUTCOME_SENT], memory_order_relaxed);
	out->failed = atomic_load_explicit(&a->ctr.outcome[OUTCOME_FAILED], memory_order_relaxed);
	out->dropped = atomic_load_explicit(&a->ctr.outcome[OUTCOME_DROPPED], memory_order_relaxed);
	out->suppressed = atomic_load_explicit(&a->ctr.outcome[OUTCOME_SUPPRESSED], memory_order_relaxed);
}

struct alerts *alerts_new(uv_loop_t *loop, const struct alerts_conf *c, struct err *e)
{
	for (size_t i = 0; i < c->nurls; i++)
		if (alerts_url_check(c->urls[i], e) < 0)
			return NULL;
	struct alerts *a = xcalloc(1, sizeof *a);
	a->loop = loop;
	if (c->server && *c->server) {
		a->server = utf8_clean(c->server);
	} else {
		char host[256] = "";
		if (gethostname(host, sizeof host - 1) != 0 || !host[0])
			snprintf(host, sizeof host, "localhost");
		a->server = utf8_clean(host);
	}
	a->urls = copy_urls(c->urls, c->nurls);
	a->nurls = c->nurls;
	a->rate_limit_ms = c->rate_limit_ms ? c->rate_limit_ms : 60000;
	for (int i = 0; i < 4; i++)
		atomic_init(&a->ctr.outcome[i], 0);
	atomic_init(&a->ctr.emitted, 0);
	atomic_init(&a->ctr.retries, 0);
	atomic_init(&a->ctr.family, NULL);
	a->sc = (struct sender_conf){
		.max_attempts = c->max_attempts > 0 ? c->max_attempts : 5,
		.backoff_ms = c->backoff_ms > 0 ? c->backoff_ms : 1000,
		.timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 10000,
		.shutdown_grace_ms = c->shutdown_grace_ms > 0 ? c->shutdown_grace_ms : 1000,
		.queue_max = c->queue_max > 0 ? c->queue_max : 256,
		.max_inflight = c->max_inflight > 0 ? c->max_inflight : 4,
	};
	uv_timer_init(loop, &a->timer);
	a->timer.data = a;
	return a;
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

void alerts_free(struct alerts *a)
{
	if (!a)
		return;
	if (a->sender) {
		sender_free(a->sender);
		a->sender = NULL;
		curl_global_cleanup();
	}
	while (a->rl) {
		struct rl_entry *r = a->rl;
		a->rl = r->next;
		alert_count(&a->ctr, r->kind, OUTCOME_SUPPRESSED, r->held);
		rl_free(r);
	}
	while (a->envs) {
		struct env_hooks *h = a->envs;
		a->envs = h->next;
		free_urls(h->urls, h->n);
		free(h->env);
		free(h);
	}
	free_urls(a->urls, a->nurls);
	free(a->server);
	uv_close((uv_handle_t *)&a->timer, on_closed);
}
