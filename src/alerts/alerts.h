/* alerts: webhook notifications for things an operator must hear about (an instance in a crash
 * loop, failing health checks, a failed or rolled-back deploy, and recoveries).
 *
 * alerts_emit runs on the main loop and never blocks it: it applies the rate limit, builds
 * the JSON payload and queues one delivery per webhook URL for a dedicated worker thread,
 * which POSTs them with libcurl (a multi handle, several transfers at once). Delivery is
 * retried with exponential backoff on connection errors, timeouts, 429 and 5xx; other answers
 * are final. The queue of waiting deliveries is bounded: when full, the oldest waiting one is
 * dropped and counted.
 *
 * Rate limit: per (kind, env, app, process), at most one alert per rate_limit_ms. Alerts
 * inside the window are suppressed; when the window closes, the latest suppressed one is sent
 * with a "(N more suppressed)" note (N = the others), so the last word always arrives.
 *
 * Secrets: a webhook URL's path, query and user info are treated as secret (Slack's URLs are
 * bearer tokens); logs and errors show only scheme://host[:port] (alerts_url_redact).
 *
 * Cost: the worker thread and libcurl start only when the first alert has a webhook to go
 * to, so an alerts object on a server with no webhook (yet) is a few bytes and an idle timer.
 *
 * Payload (Content-Type: application/json), see docs/metrics.md:
 *   {"text": "...", "kind": "crash_loop", "env", "app", "process", "instance", "message",
 *    "ts": RFC 3339, "server": name, "suppressed": N}
 * with null for a missing process or instance. */
#ifndef BERTH_ALERTS_H
#define BERTH_ALERTS_H
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "util/buf.h"
#include "util/err.h"

struct alerts;
struct metric_family;

enum alert_kind {
	ALERT_CRASH_LOOP,         /* "crash_loop": an instance keeps exiting */
	ALERT_HEALTH_FAILING,     /* "health_failing": a healthy instance's checks now fail */
	ALERT_DEPLOY_FAILED,      /* "deploy_failed": a rollout failed */
	ALERT_DEPLOY_ROLLED_BACK, /* "deploy_rolled_back": a failed rollout was rolled back */
	ALERT_RECOVERED,          /* "recovered": healthy again after a crash loop or failing checks */
};
#define ALERT_KIND_COUNT 5

/* Settings; zero fields take the defaults in brackets. Strings are copied by alerts_new. */
struct alerts_conf {
	const char *server;           /* "server" field and text prefix [gethostname()] */
	const char *const *urls;      /* server-wide webhooks: every alert goes to each */
	size_t nurls;
	int64_t rate_limit_ms;        /* per (kind, env, app, process) [60000]; < 0: no limit */
	int max_attempts;             /* per delivery, including the first [5] */
	int64_t backoff_ms;           /* delay before the 2nd attempt, doubling after [1000] */
	int64_t timeout_ms;           /* per attempt, connect included [10000] */
	size_t queue_max;             /* waiting deliveries (not counting in-flight) [256] */
	int max_inflight;             /* concurrent transfers [4] */
	int64_t shutdown_grace_ms;    /* alerts_free keeps delivering at most this long [1000] */
};

/* Webhook lists (server-wide, or one env's) hold at most this many URLs of at most
 * ALERTS_URL_MAX bytes each; server.yaml and the API enforce it. */
#define ALERTS_MAX_WEBHOOKS 16
#define ALERTS_URL_MAX 2048

/* Set up alerts. loop: the main loop (for the rate-limit timer). Every URL must pass
 * alerts_url_check, else NULL with e set. The delivery worker is started on first need (the
 * first alert with somewhere to go); if it cannot be started then, that alert's deliveries
 * are dropped (logged, counted) and the next alert tries again. */
struct alerts *alerts_new(uv_loop_t *loop, const struct alerts_conf *c, struct err *e);
/* Stop: deliveries already queued get up to shutdown_grace_ms, then the worker is stopped and
 * the rest dropped (logged). Blocks the calling thread at most about that long. The memory is
 * released once the loop has run the timer's close callback. Accepts NULL. */
void alerts_free(struct alerts *a);

/* Webhooks of one environment, used in addition to the server-wide ones (replaces the env's
 * previous list; n = 0 clears it). Main loop. -1 with e set on a bad URL (nothing changed). */
int alerts_set_env_webhooks(struct alerts *a, const char *env, const char *const *urls, size_t n,
			    struct err *e);

/* Count deliveries in a counter family with labels {kind, outcome}; outcome is one of sent,
 * failed (gave up or answered 4xx), dropped (queue full, or shutdown), suppressed (rate limit).
 * Main loop, before emitting; NULL stops counting. */
void alerts_set_metrics(struct alerts *a, struct metric_family *f);

/* Raise an alert (main loop). env and app are required; process and instance may be NULL.
 * message says what happened in a sentence ("exited 5 times in 60 s: exit status 1"). */
void alerts_emit(struct alerts *a, enum alert_kind kind, const char *env, const char *app,
		 const char *process, const char *instance, const char *message);
void alerts_emitf(struct alerts *a, enum alert_kind kind, const char *env, const char *app,
		  const char *process, const char *instance, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

/* Totals since alerts_new (any thread). Each counts deliveries (one per URL), except
 * emitted and suppressed, which count alerts. */
struct alerts_stats {
	uint64_t emitted;     /* alerts_emit calls that were not suppressed */
	uint64_t suppressed;  /* alerts held back by the rate limit */
	uint64_t sent;        /* deliveries answered 2xx */
	uint64_t failed;      /* deliveries given up (attempts exhausted or a final answer) */
	uint64_t retries;     /* attempts after the first */
	uint64_t dropped;     /* deliveries dropped: queue full or shutdown */
};
void alerts_stats(struct alerts *a, struct alerts_stats *out);

/* Check one webhook URL: at most ALERTS_URL_MAX bytes, no spaces or control characters,
 * http:// or https:// with a host. 0, or -1 with e (ERR_INVALID) saying what is wrong; the
 * message quotes at most the URL's scheme://host[:port], never its secret parts. */
int alerts_url_check(const char *url, struct err *e);

/* "crash_loop", ... */
const char *alert_kind_name(enum alert_kind k);
/* scheme://host[:port] of url, for logs ("(invalid URL)" when it does not parse). */
void alerts_url_redact(const char *url, struct buf *out);
#endif
