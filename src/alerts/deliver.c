/* alerts delivery: the worker thread that POSTs queued webhook payloads with a libcurl multi
 * handle, retries with exponential backoff and bounds its queue.
 *
 * The main loop only ever takes the queue mutex for a moment (sender_push) and wakes the
 * worker with curl_multi_wakeup; all network I/O, waiting and retry timing happen on the
 * worker. Waiting deliveries are kept oldest first (by sequence number, which a retry keeps),
 * so "drop the oldest" when the queue is full is dropping the head. */
#include "alerts/internal.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

struct delivery {
	struct delivery *next;
	uint64_t seq;
	enum alert_kind kind;
	char *url;
	char *payload;
	int attempts;            /* made so far */
	int64_t due_ms;          /* monotonic time of the next attempt */
	CURL *h;
	struct curl_slist *hdrs;
};

struct sender {
	struct sender_conf c;
	struct alert_counters *ctr;
	CURLM *multi;            /* the worker's; other threads only call curl_multi_wakeup */
	pthread_t thread;

	pthread_mutex_t mu;      /* guards the fields below */
	struct delivery *waiting;
	size_t nwaiting;
	uint64_t seq;
	bool stopping;
	int64_t deadline_ms;

	struct delivery *inflight;   /* worker only */
	int ninflight;
	char *noproxy;           /* loopback, plus the environment's no_proxy / NO_PROXY */
};

static void delivery_free(struct delivery *d)
{
	if (!d)
		return;
	if (d->h)
		curl_easy_cleanup(d->h);
	curl_slist_free_all(d->hdrs);
	free(d->url);
	free(d->payload);
	free(d);
}

static void log_outcome(const struct delivery *d, const char *what, const char *why)
{
	struct buf host = BUF_INIT;
	alerts_url_redact(d->url, &host);
	log_warn("alerts: %s alert to %s %s%s%s", alert_kind_name(d->kind), buf_str(&host), what,
		 why ? ": " : "", why ? why : "");
	buf_free(&host);
}

/* Insert by sequence number (mu held). */
static void waiting_insert(struct sender *s, struct delivery *d)
{
	struct delivery **pp = &s->waiting;
	while (*pp && (*pp)->seq < d->seq)
		pp = &(*pp)->next;
	d->next = *pp;
	*pp = d;
	s->nwaiting++;
}

void sender_push(struct sender *s, enum alert_kind kind, const char *url, const char *payload)
{
	struct delivery *d = xcalloc(1, sizeof *d);
	d->kind = kind;
	d->url = xstrdup(url);
	d->payload = xstrdup(payload);
	d->due_ms = time_mono_ms();
	struct delivery *dropped = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->nwaiting >= s->c.queue_max && s->waiting) {
		dropped = s->waiting;
		s->waiting = dropped->next;
		s->nwaiting--;
	}
	d->seq = ++s->seq;
	waiting_insert(s, d);
	pthread_mutex_unlock(&s->mu);
	curl_multi_wakeup(s->multi);
	if (dropped) {
		alert_count(s->ctr, dropped->kind, OUTCOME_DROPPED, 1);
		log_outcome(dropped, "dropped", "queue full");
		delivery_free(dropped);
	}
}

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

/* Start an attempt (worker, mu not held). While stopping, the attempt ends by the deadline. */
static void start(struct sender *s, struct delivery *d, int64_t now, bool stopping, int64_t deadline)
{
	int64_t timeout = s->c.timeout_ms;
	if (stopping && deadline - now < timeout)
		timeout = deadline - now > 1 ? deadline - now : 1;
	d->attempts++;
	if (d->attempts > 1)
		atomic_fetch_add_explicit(&s->ctr->retries, 1, memory_order_relaxed);
	d->h = curl_easy_init();
	if (!d->hdrs) {
		d->hdrs = curl_slist_append(d->hdrs, "Content-Type: application/json");
		d->hdrs = curl_slist_append(d->hdrs, "Expect:");
	}
	CURL *h = d->h;
	curl_easy_setopt(h, CURLOPT_URL, d->url);
	curl_easy_setopt(h, CURLOPT_PRIVATE, d);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, s->noproxy);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "berth-alerts");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, d->hdrs);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, d->payload);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(d->payload));
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
	d->next = s->inflight;
	s->inflight = d;
	s->ninflight++;
	curl_multi_add_handle(s->multi, h);
}

static void inflight_unlink(struct sender *s, struct delivery *d)
{
	for (struct delivery **pp = &s->inflight; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			s->ninflight--;
			return;
		}
}

/* A transfer ended: sent, retry later, or give up (worker, mu not held). */
static void finish(struct sender *s, struct delivery *d, CURLcode rc)
{
	long status = 0;
	if (rc == CURLE_OK)
		curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(s->multi, d->h);
	curl_easy_cleanup(d->h);
	d->h = NULL;
	inflight_unlink(s, d);

	if (rc == CURLE_OK && status >= 200 && status < 300) {
		alert_count(s->ctr, d->kind, OUTCOME_SENT, 1);
		delivery_free(d);
		return;
	}
	char why[128];
	if (rc != CURLE_OK)
		snprintf(why, sizeof why, "%s", curl_easy_strerror(rc));
	else
		snprintf(why, sizeof why, "HTTP %ld", status);
	bool retryable = rc != CURLE_OK || status >= 500 || status == 429;
	if (retryable && d->attempts < s->c.max_attempts) {
		int64_t delay = s->c.backoff_ms;
		for (int i = 1; i < d->attempts && delay < 3600000; i++)
			delay *= 2;
		d->due_ms = time_mono_ms() + delay;
		pthread_mutex_lock(&s->mu);
		waiting_insert(s, d);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	alert_count(s->ctr, d->kind, OUTCOME_FAILED, 1);
	char what[64];
	snprintf(what, sizeof what, "failed after %d attempt%s", d->attempts, d->attempts == 1 ? "" : "s");
	log_outcome(d, what, why);
	delivery_free(d);
}

/* Drop every waiting delivery due after limit (mu held); returns them as a list. */
static struct delivery *take_due_after(struct sender *s, int64_t limit)
{
	struct delivery *out = NULL, **pp = &s->waiting;
	while (*pp) {
		struct delivery *d = *pp;
		if (d->due_ms > limit) {
			*pp = d->next;
			s->nwaiting--;
			d->next = out;
			out = d;
		} else {
			pp = &d->next;
		}
	}
	return out;
}

/* Drop a list of deliveries. Shutdown drops are summed into one log line by the caller. */
static size_t drop_list(struct sender *s, struct delivery *d, const char *why)
{
	size_t n = 0;
	while (d) {
		struct delivery *next = d->next;
		alert_count(s->ctr, d->kind, OUTCOME_DROPPED, 1);
		if (why)
			log_outcome(d, "dropped", why);
		delivery_free(d);
		d = next;
		n++;
	}
	return n;
}

static void *worker(void *arg)
{
	struct sender *s = arg;
	size_t abandoned = 0;
	for (;;) {
		int64_t now = time_mono_ms();
		struct delivery *ready = NULL, *late = NULL;
		pthread_mutex_lock(&s->mu);
		bool stopping = s->stopping;
		int64_t deadline = s->deadline_ms;
		if (stopping) {
			/* Nothing can start after the deadline; what is due later is dropped now. */
			late = take_due_after(s, now >= deadline ? INT64_MIN : deadline);
			if (now >= deadline || (!s->waiting && s->ninflight == 0)) {
				pthread_mutex_unlock(&s->mu);
				abandoned += drop_list(s, late, NULL);
				break;
			}
		}
		int room = s->c.max_inflight - s->ninflight;
		struct delivery **rtail = &ready;     /* oldest first */
		for (struct delivery **pp = &s->waiting; *pp && room > 0;) {
			struct delivery *d = *pp;
			if (d->due_ms <= now) {
				*pp = d->next;
				s->nwaiting--;
				d->next = NULL;
				*rtail = d;
				rtail = &d->next;
				room--;
			} else {
				pp = &d->next;
			}
		}
		pthread_mutex_unlock(&s->mu);
		abandoned += drop_list(s, late, NULL);

		while (ready) {
			struct delivery *d = ready;
			ready = d->next;
			start(s, d, now, stopping, deadline);
		}
		int running = 0;
		curl_multi_perform(s->multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(s->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct delivery *d = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&d);
			finish(s, d, msg->data.result);
		}
		/* Sleep until a transfer makes progress (curl caps the wait at its own timers), the
		 * next retry is due, the deadline, or a push wakes us. A due delivery waiting for a
		 * free slot waits for a transfer to end rather than spinning. */
		pthread_mutex_lock(&s->mu);
		int64_t next_due = -1;
		if (s->ninflight < s->c.max_inflight)
			for (struct delivery *d = s->waiting; d; d = d->next)
				if (next_due < 0 || d->due_ms < next_due)
					next_due = d->due_ms;
		pthread_mutex_unlock(&s->mu);
		now = time_mono_ms();
		int64_t wait = 1000;
		if (next_due >= 0 && next_due - now < wait)
			wait = next_due - now;
		if (stopping && deadline - now < wait)
			wait = deadline - now;
		if (wait > 0)
			curl_multi_poll(s->multi, NULL, 0, (int)wait, NULL);
	}
	/* Deadline passed: abandon transfers still running. */
	while (s->inflight) {
		struct delivery *d = s->inflight;
		s->inflight = d->next;
		s->ninflight--;
		curl_multi_remove_handle(s->multi, d->h);
		d->next = NULL;
		abandoned += drop_list(s, d, NULL);
	}
	pthread_mutex_lock(&s->mu);
	struct delivery *rest = s->waiting;
	s->waiting = NULL;
	s->nwaiting = 0;
	pthread_mutex_unlock(&s->mu);
	abandoned += drop_list(s, rest, NULL);
	if (abandoned)
		log_warn("alerts: %zu webhook deliver%s dropped at shutdown", abandoned,
			 abandoned == 1 ? "y" : "ies");
	return NULL;
}

struct sender *sender_new(const struct sender_conf *c, struct alert_counters *ctr, struct err *e)
{
	struct sender *s = xcalloc(1, sizeof *s);
	s->c = *c;
	s->ctr = ctr;
	/* Webhooks on loopback never go through a proxy; hosts the operator listed in no_proxy
	 * do not either (setting CURLOPT_NOPROXY replaces libcurl's reading of the variable). */
	const char *np = getenv("no_proxy");
	if (!np || !*np)
		np = getenv("NO_PROXY");
	s->noproxy = np && *np ? xasprintf("localhost,127.0.0.1,::1,%s", np) : xstrdup("localhost,127.0.0.1,::1");
	s->multi = curl_multi_init();
	if (!s->multi) {
		free(s->noproxy);
		free(s);
		err_set(e, ERR_INTERNAL, "alerts: cannot start the HTTP client (curl_multi_init failed)");
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	int rc = pthread_create(&s->thread, NULL, worker, s);
	if (rc != 0) {
		pthread_mutex_destroy(&s->mu);
		curl_multi_cleanup(s->multi);
		free(s->noproxy);
		free(s);
		err_errno(e, rc, "alerts: cannot start the delivery thread");
		return NULL;
	}
	return s;
}

void sender_free(struct sender *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	s->deadline_ms = time_mono_ms() + s->c.shutdown_grace_ms;
	pthread_mutex_unlock(&s->mu);
	curl_multi_wakeup(s->multi);
	pthread_join(s->thread, NULL);
	curl_multi_cleanup(s->multi);
	pthread_mutex_destroy(&s->mu);
	free(s->noproxy);
	free(s);
}
