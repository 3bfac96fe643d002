/* engine client: HTTP over the engine's unix socket with libcurl (see engine.h).
 *
 * Threads. The loop thread owns the API: engine_call, engine_cancel, engine_free and every
 * callback run there. One engine thread per struct engine drives a curl multi handle; it is
 * the only thread that touches a request's easy handle. They meet under en->mu in three
 * places: the submit queue (loop -> engine, with curl_multi_wakeup), the event queue (engine
 * -> loop: a streamed chunk or a call's end, with uv_async_send), and a request's shared
 * flags (cancelled, paused/resume, the queued byte count, and who still holds it).
 *
 * A request is held by both sides until each lets go: the loop after on_done returns or at
 * engine_cancel; the engine thread once its transfer is removed from the multi handle. The
 * side that lets go last frees it. engine_cancel marks the request and drops its queued
 * events under the lock, so nothing of it is delivered afterwards, and pokes the engine
 * thread, which removes the transfer. A stream whose chunks pile up (STREAM_QUEUE_MAX bytes
 * the loop has not taken) is paused and resumed once the loop has caught up.
 *
 * engine_call_sync and engine_ping_sync run one easy handle on the calling thread, for
 * start-up and tests; they share the option setup and error wording with the async path. */
#include "engine/engine.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util/buf.h"

#define STREAM_QUEUE_MAX (1u << 20)   /* streamed bytes waiting for the loop before a pause */
#define DELIVER_MAX 256                /* events delivered in one turn of the loop */
#define CONNECT_TIMEOUT_MS 10000
#define API_MIN_MINOR 24              /* 1.24: the oldest API berth will talk to */

struct ev {
	struct ev *next;
	struct engine_req *r;
	bool done;                    /* the call's end, else a chunk of n bytes */
	size_t n;
	char data[];
};

struct engine {
	uv_loop_t *loop;
	char *host;                   /* as given, "unix:///PATH" */
	char *sock;                   /* PATH */
	char version[16];             /* API version used in URLs */
	uv_async_t *async;            /* NULL for a sync-only engine */
	CURLM *multi;
	pthread_t thread;

	/* loop thread */
	bool closing;
	struct engine_req *reqs;      /* every request the loop still holds */
	struct engine_req *delivering;   /* whose callback runs now */

	pthread_mutex_t mu;           /* guards the fields below */
	struct engine_req *submit, **submit_tail;
	struct ev *evs, **evs_tail;
	unsigned pokes;               /* cancels and resumes the engine thread has to look at */
	bool stopping;

	/* engine thread */
	struct engine_req *active;    /* transfers in the multi handle */
};

struct engine_req {
	struct engine *en;
	/* the call, copied; fixed after engine_call */
	char *method, *url, *body, *file;
	size_t body_len;
	struct curl_slist *hdrs;
	int64_t timeout_ms;
	engine_data_fn on_data;
	engine_done_fn on_done;
	void *arg;

	/* loop thread */
	struct engine_req *lprev, *lnext;
	bool cancel_deferred;         /* cancelled inside its own callback */

	/* engine thread (and the sync path) */
	struct engine_req *aprev, *anext;
	CURL *h;
	FILE *fp;
	curl_off_t file_size;
	struct buf resp;              /* the buffered body */
	bool too_big;
	bool checked_status, stream_error;   /* a streamed call answered with an error status */
	int read_errno;               /* reading the body file failed */
	bool x_cancel, x_resume;      /* taken from the shared flags under mu */
	char errbuf[CURL_ERROR_SIZE];
	char apiver[32];              /* the Api-Version answer header (ping) */
	bool want_apiver;

	/* under en->mu */
	struct engine_req *snext;
	bool cancelled, paused, resume;
	bool loop_holds, engine_holds;
	size_t queued;
	/* the result: written by the engine thread before it queues the end event */
	long status;
	char *error;
};

/* ---- transfers (engine thread, or the caller's thread for _sync) --------------------------- */

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct engine_req *r = arg;
	size_t n = size * nmemb;
	if (r->on_data && !r->checked_status) {
		/* an error answer to a streamed call is the engine's message: keep it for on_done */
		long status = 0;
		curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
		r->stream_error = status < 200 || status > 299;
		r->checked_status = true;
	}
	if (!r->on_data || r->stream_error) {
		if (r->resp.len + n > ENGINE_BODY_MAX) {
			r->too_big = true;
			return 0;
		}
		buf_add(&r->resp, p, n);
		return n;
	}
	if (!n)
		return 0;
	struct engine *en = r->en;
	struct ev *ev = xmalloc(sizeof *ev + n);
	ev->next = NULL;
	ev->r = r;
	ev->done = false;
	ev->n = n;
	memcpy(ev->data, p, n);
	pthread_mutex_lock(&en->mu);
	if (r->cancelled || r->queued >= STREAM_QUEUE_MAX) {
		bool cancelled = r->cancelled;
		if (!cancelled)
			r->paused = true;
		pthread_mutex_unlock(&en->mu);
		free(ev);
		return cancelled ? 0 : CURL_WRITEFUNC_PAUSE;
	}
	r->queued += n;
	*en->evs_tail = ev;
	en->evs_tail = &ev->next;
	pthread_mutex_unlock(&en->mu);
	uv_async_send(en->async);
	return n;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
	struct engine_req *r = arg;
	size_t n = fread(p, 1, size * nmemb, r->fp);
	if (n == 0 && ferror(r->fp)) {
		r->read_errno = errno ? errno : EIO;
		return CURL_READFUNC_ABORT;
	}
	return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct engine_req *r = arg;
	size_t n = size * nmemb;
	static const char name[] = "Api-Version:";
	if (n > sizeof name - 1 && !strncasecmp(p, name, sizeof name - 1)) {
		const char *v = p + sizeof name - 1, *end = p + n;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
			end--;
		size_t k = (size_t)(end - v) < sizeof r->apiver - 1 ? (size_t)(end - v) : sizeof r->apiver - 1;
		memcpy(r->apiver, v, k);
		r->apiver[k] = 0;
	}
	return n;
}

/* Options common to both paths; r->url, method, body or fp, hdrs and timeout are set. */
static void setup_easy(struct engine *en, struct engine_req *r)
{
	CURL *h = r->h;
	curl_easy_setopt(h, CURLOPT_URL, r->url);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, en->sock);
	curl_easy_setopt(h, CURLOPT_PRIVATE, r);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(h, CURLOPT_PROXY, "");    /* never a proxy from the environment */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "berth");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	if (r->want_apiver) {
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	}
	if (r->hdrs)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hdrs);
	long conn = CONNECT_TIMEOUT_MS;
	if (r->timeout_ms > 0) {
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
		if (r->timeout_ms < conn)
			conn = (long)r->timeout_ms;
	}
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, conn);

	const char *m = r->method;
	if (r->fp) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, r->file_size);
	} else if (r->body || !strcmp(m, "POST") || !strcmp(m, "PUT")) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
	} else if (!strcmp(m, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	if (strcmp(m, "GET") && strcmp(m, "POST") && strcmp(m, "HEAD"))
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
}

/* The text of a failed transfer (owned). */
static char *transfer_error(struct engine *en, struct engine_req *r, CURLcode rc)
{
	char eb[128];
	const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
	if (r->too_big)
		return xasprintf("the engine's answer is larger than %u MiB", ENGINE_BODY_MAX >> 20);
	if (r->read_errno)
		return xasprintf("cannot read the request body %s: %s", r->file,
				 strerror_r(r->read_errno, eb, sizeof eb));
	switch (rc) {
	case CURLE_COULDNT_CONNECT: {
		long oserr = 0;
		if (r->h)
			curl_easy_getinfo(r->h, CURLINFO_OS_ERRNO, &oserr);
		return xasprintf("cannot connect to the engine at %s: %s", en->sock,
				 oserr ? strerror_r((int)oserr, eb, sizeof eb) : detail);
	}
	case CURLE_OPERATION_TIMEDOUT:
		return xasprintf("timed out after %lld ms",
				 (long long)(r->timeout_ms > 0 ? r->timeout_ms : CONNECT_TIMEOUT_MS));
	case CURLE_GOT_NOTHING:
		return xasprintf("the engine at %s closed the connection without an answer", en->sock);
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_SEND_ERROR:
		return xasprintf("the engine at %s broke off the connection: %s", en->sock, detail);
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:   /* "Received HTTP/0.9 when not allowed" */
		return xasprintf("the engine at %s answered something that is not HTTP: %s", en->sock, detail);
	default:
		return xasprintf("the engine at %s: %s", en->sock, detail);
	}
}

/* "Expect:" (no 100-continue round trip), the body's type (or none: curl would add a form
 * type to a POST), and the caller's extra lines. */
static struct curl_slist *make_headers(const char *method, bool body, bool file, const char *ctype,
				       const char *const *extra)
{
	struct curl_slist *l = curl_slist_append(NULL, "Expect:");
	char line[256];
	if (body || file) {
		snprintf(line, sizeof line, "Content-Type: %s",
			 ctype && *ctype ? ctype : file ? "application/x-tar" : "application/json");
		l = curl_slist_append(l, line);
	} else if (!strcmp(method, "POST") || !strcmp(method, "PUT")) {
		l = curl_slist_append(l, "Content-Type:");
	}
	for (size_t i = 0; extra && extra[i]; i++)
		l = curl_slist_append(l, extra[i]);
	return l;
}

static void req_free(struct engine_req *r)
{
	if (r->h)
		curl_easy_cleanup(r->h);
	if (r->fp)
		fclose(r->fp);
	curl_slist_free_all(r->hdrs);
	buf_free(&r->resp);
	free(r->method);
	free(r->url);
	free(r->body);
	free(r->file);
	free(r->error);
	free(r);
}

/* ---- the engine thread --------------------------------------------------------------------- */

static void active_unlink(struct engine *en, struct engine_req *r)
{
	if (r->aprev)
		r->aprev->anext = r->anext;
	else
		en->active = r->anext;
	if (r->anext)
		r->anext->aprev = r->aprev;
	r->aprev = r->anext = NULL;
}

/* The engine thread lets go of r (its transfer is over or abandoned). When error or status
 * says how it ended and the call was not cancelled, the loop gets its end event. */
static void engine_release(struct engine *en, struct engine_req *r, long status, char *error, bool report)
{
	if (r->h) {
		curl_multi_remove_handle(en->multi, r->h);
		curl_easy_cleanup(r->h);
		r->h = NULL;
	}
	if (r->fp) {
		fclose(r->fp);
		r->fp = NULL;
	}
	struct ev *ev = NULL;
	pthread_mutex_lock(&en->mu);
	if (report && !r->cancelled) {
		r->status = status;
		r->error = error;
		error = NULL;
		ev = xcalloc(1, sizeof *ev);
		ev->r = r;
		ev->done = true;
		*en->evs_tail = ev;
		en->evs_tail = &ev->next;
	}
	r->engine_holds = false;
	bool dead = !r->loop_holds;
	pthread_mutex_unlock(&en->mu);
	free(error);
	if (ev)
		uv_async_send(en->async);
	if (dead)
		req_free(r);
}

static void start(struct engine *en, struct engine_req *r)
{
	if (r->file) {
		char eb[128];
		const char *why = NULL;
		struct stat st;
		r->fp = fopen(r->file, "rb");
		if (!r->fp || fstat(fileno(r->fp), &st))
			why = strerror_r(errno, eb, sizeof eb);
		else if (!S_ISREG(st.st_mode))
			why = "not a regular file";
		if (why) {
			engine_release(en, r, 0, xasprintf("cannot read the request body %s: %s", r->file, why), true);
			return;
		}
		r->file_size = (curl_off_t)st.st_size;
	}
	r->h = curl_easy_init();
	if (!r->h) {
		engine_release(en, r, 0, xstrdup("cannot start an HTTP transfer (curl_easy_init failed)"), true);
		return;
	}
	setup_easy(en, r);
	r->anext = en->active;
	if (en->active)
		en->active->aprev = r;
	en->active = r;
	CURLMcode mc = curl_multi_add_handle(en->multi, r->h);
	if (mc != CURLM_OK) {
		active_unlink(en, r);
		engine_release(en, r, 0, xasprintf("cannot start an HTTP transfer: %s", curl_multi_strerror(mc)), true);
	}
}

static void finish(struct engine *en, struct engine_req *r, CURLcode rc)
{
	long status = 0;
	char *error = NULL;
	if (rc == CURLE_OK && !r->too_big)
		curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
	else
		error = transfer_error(en, r, rc);
	active_unlink(en, r);
	engine_release(en, r, status, error, true);
}

static void *engine_main(void *arg)
{
	struct engine *en = arg;
	for (;;) {
		pthread_mutex_lock(&en->mu);
		bool stopping = en->stopping;
		struct engine_req *sub = en->submit;
		en->submit = NULL;
		en->submit_tail = &en->submit;
		if (en->pokes || stopping) {
			for (struct engine_req *r = en->active; r; r = r->anext) {
				r->x_cancel = r->cancelled || stopping;
				r->x_resume = r->resume;
				r->resume = false;
			}
			en->pokes = 0;
		}
		for (struct engine_req *r = sub; r; r = r->snext)
			r->x_cancel = r->cancelled || stopping;
		pthread_mutex_unlock(&en->mu);

		for (struct engine_req *r = en->active, *next; r; r = next) {
			next = r->anext;
			if (r->x_cancel) {
				active_unlink(en, r);
				engine_release(en, r, 0, NULL, false);
			} else if (r->x_resume) {
				r->x_resume = false;
				curl_easy_pause(r->h, CURLPAUSE_CONT);
			}
		}
		for (struct engine_req *r = sub, *next; r; r = next) {
			next = r->snext;
			if (r->x_cancel)
				engine_release(en, r, 0, NULL, false);
			else
				start(en, r);
		}
		if (stopping)
			break;

		int running = 0;
		curl_multi_perform(en->multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(en->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct engine_req *r = NULL;
			CURLcode rc = msg->data.result;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
			finish(en, r, rc);
		}
		/* curl caps the wait at its own timers; engine_call and engine_cancel wake it. */
		curl_multi_poll(en->multi, NULL, 0, 1000, NULL);
	}
	return NULL;
}

/* ---- the loop thread ------------------------------------------------------------------------ */

/* The loop lets go of r (its end was delivered, or it was cancelled). */
static void loop_release(struct engine *en, struct engine_req *r)
{
	if (r->lprev)
		r->lprev->lnext = r->lnext;
	else
		en->reqs = r->lnext;
	if (r->lnext)
		r->lnext->lprev = r->lprev;
	if (!en->reqs && !en->closing)
		uv_unref((uv_handle_t *)en->async);   /* nothing in flight: do not keep the loop alive */
	pthread_mutex_lock(&en->mu);
	r->loop_holds = false;
	bool dead = !r->engine_holds;
	pthread_mutex_unlock(&en->mu);
	if (dead)
		req_free(r);
}

/* Deliver queued events one at a time: a callback may cancel any request (its events leave
 * the queue at once) or free the engine (delivery stops). A busy stream does not hold the
 * loop: after DELIVER_MAX events the rest waits for the loop's next turn. */
static void on_async(uv_async_t *a)
{
	struct engine *en = a->data;
	for (int delivered = 0; !en->closing; delivered++) {
		bool poke = false;
		pthread_mutex_lock(&en->mu);
		struct ev *ev = en->evs;
		if (ev && delivered == DELIVER_MAX) {
			pthread_mutex_unlock(&en->mu);
			uv_async_send(a);
			break;
		}
		if (!ev) {
			pthread_mutex_unlock(&en->mu);
			break;
		}
		en->evs = ev->next;
		if (!en->evs)
			en->evs_tail = &en->evs;
		struct engine_req *r = ev->r;
		if (!ev->done) {
			r->queued -= ev->n;
			if (r->paused && r->queued <= STREAM_QUEUE_MAX / 2) {
				r->paused = false;
				r->resume = true;
				en->pokes++;
				poke = true;
			}
		}
		pthread_mutex_unlock(&en->mu);
		if (poke)
			curl_multi_wakeup(en->multi);

		en->delivering = r;
		if (!ev->done) {
			r->on_data(r->arg, ev->data, ev->n);
		} else if (r->on_done) {
			struct engine_resp resp = {r->status, buf_str(&r->resp), r->resp.len, r->error};
			r->on_done(r->arg, &resp);
		}
		en->delivering = NULL;
		if (ev->done || r->cancel_deferred)
			loop_release(en, r);
		free(ev);
	}
}

struct engine_req *engine_call(struct engine *en, const struct engine_call *c)
{
	if (!en || !en->async || en->closing || !c || !c->method || !c->path)
		return NULL;
	struct engine_req *r = xcalloc(1, sizeof *r);
	r->en = en;
	r->method = xstrdup(c->method);
	r->url = xasprintf("http://d/v%s%s", en->version, c->path);
	if (c->body) {
		r->body = xmalloc(c->body_len + 1);
		memcpy(r->body, c->body, c->body_len);
		r->body[c->body_len] = 0;
		r->body_len = c->body_len;
	}
	if (c->body_file)
		r->file = xstrdup(c->body_file);
	r->hdrs = make_headers(c->method, c->body != NULL, c->body_file != NULL, c->content_type, c->headers);
	r->timeout_ms = c->timeout_ms;
	r->on_data = c->on_data;
	r->on_done = c->on_done;
	r->arg = c->arg;
	r->loop_holds = r->engine_holds = true;
	r->lnext = en->reqs;
	if (en->reqs)
		en->reqs->lprev = r;
	en->reqs = r;
	uv_ref((uv_handle_t *)en->async);
	pthread_mutex_lock(&en->mu);
	*en->submit_tail = r;
	en->submit_tail = &r->snext;
	pthread_mutex_unlock(&en->mu);
	curl_multi_wakeup(en->multi);
	return r;
}

void engine_cancel(struct engine_req *r)
{
	if (!r || r->cancel_deferred)
		return;
	struct engine *en = r->en;
	struct ev *dropped = NULL;
	bool poke = false;
	pthread_mutex_lock(&en->mu);
	r->cancelled = true;
	for (struct ev **pp = &en->evs; *pp;) {
		struct ev *ev = *pp;
		if (ev->r == r) {
			*pp = ev->next;
			ev->next = dropped;
			dropped = ev;
		} else {
			pp = &ev->next;
		}
	}
	en->evs_tail = &en->evs;
	while (*en->evs_tail)
		en->evs_tail = &(*en->evs_tail)->next;
	if (r->engine_holds) {
		en->pokes++;
		poke = true;
	}
	pthread_mutex_unlock(&en->mu);
	while (dropped) {
		struct ev *next = dropped->next;
		free(dropped);
		dropped = next;
	}
	if (poke)
		curl_multi_wakeup(en->multi);
	if (en->delivering == r) {
		r->cancel_deferred = true;   /* on_async lets go once the callback returns */
		return;
	}
	loop_release(en, r);
}

/* ---- the engine ----------------------------------------------------------------------------- */

static void free_handle(uv_handle_t *h)
{
	free(h);
}

struct engine *engine_new(uv_loop_t *loop, const char *host, struct err *e)
{
	static const char scheme[] = "unix://";
	if (!host || strncmp(host, scheme, sizeof scheme - 1)) {
		err_set(e, ERR_INVALID, "docker host '%s': only unix:///PATH (a unix socket) is supported",
			host ? host : "");
		return NULL;
	}
	const char *path = host + sizeof scheme - 1;
	if (path[0] != '/' || !path[1]) {
		err_set(e, ERR_INVALID, "docker host '%s': the socket must be an absolute path (unix:///PATH)", host);
		return NULL;
	}
	if (strlen(path) > 107) {
		err_set(e, ERR_INVALID, "docker host '%s': the socket path is longer than 107 bytes", host);
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		err_set(e, ERR_INTERNAL, "cannot start the HTTP client (curl_global_init failed)");
		return NULL;
	}
	struct engine *en = xcalloc(1, sizeof *en);
	en->loop = loop;
	en->host = xstrdup(host);
	en->sock = xstrdup(path);
	snprintf(en->version, sizeof en->version, "%s", ENGINE_API_VERSION);
	pthread_mutex_init(&en->mu, NULL);
	en->submit_tail = &en->submit;
	en->evs_tail = &en->evs;
	if (!loop)
		return en;

	en->multi = curl_multi_init();
	if (!en->multi) {
		err_set(e, ERR_INTERNAL, "cannot start the HTTP client (curl_multi_init failed)");
		goto fail;
	}
	en->async = xmalloc(sizeof *en->async);
	if (uv_async_init(loop, en->async, on_async)) {
		free(en->async);
		en->async = NULL;
		err_set(e, ERR_INTERNAL, "cannot start the engine client (uv_async_init failed)");
		goto fail;
	}
	en->async->data = en;
	uv_unref((uv_handle_t *)en->async);
	int rc = pthread_create(&en->thread, NULL, engine_main, en);
	if (rc) {
		err_errno(e, rc, "cannot start the engine client's thread");
		uv_close((uv_handle_t *)en->async, free_handle);
		en->async = NULL;
		goto fail;
	}
	return en;
fail:
	if (en->multi)
		curl_multi_cleanup(en->multi);
	pthread_mutex_destroy(&en->mu);
	free(en->host);
	free(en->sock);
	free(en);
	curl_global_cleanup();
	return NULL;
}

static void destroy(struct engine *en)
{
	pthread_mutex_destroy(&en->mu);
	free(en->host);
	free(en->sock);
	free(en);
	curl_global_cleanup();
}

static void on_closed(uv_handle_t *h)
{
	struct engine *en = h->data;
	free(h);
	destroy(en);
}

void engine_free(struct engine *en)
{
	if (!en || en->closing)
		return;
	en->closing = true;
	if (!en->async) {
		destroy(en);
		return;
	}
	for (struct engine_req *r = en->reqs, *next; r; r = next) {
		next = r->lnext;
		engine_cancel(r);
	}
	pthread_mutex_lock(&en->mu);
	en->stopping = true;
	pthread_mutex_unlock(&en->mu);
	curl_multi_wakeup(en->multi);
	pthread_join(en->thread, NULL);
	curl_multi_cleanup(en->multi);
	en->multi = NULL;
	/* Every request was cancelled, so the engine thread queued nothing more (the queue is
	 * empty; emptied again all the same); a request whose callback is running now (engine_free
	 * from inside it) is let go when it returns. */
	while (en->evs) {
		struct ev *ev = en->evs;
		en->evs = ev->next;
		free(ev);
	}
	en->evs_tail = &en->evs;
	uv_close((uv_handle_t *)en->async, on_closed);
}

const char *engine_host(const struct engine *en)
{
	return en->host;
}

const char *engine_api_version(const struct engine *en)
{
	return en->version;
}

/* ---- blocking calls ------------------------------------------------------------------------- */

/* One transfer on this thread. 0 with the status and body in r, or -1 with the transfer's
 * error text (owned) in *why. */
static int transfer_sync(struct engine *en, struct engine_req *r, char **why)
{
	r->en = en;
	r->h = curl_easy_init();
	if (!r->h) {
		*why = xstrdup("cannot start an HTTP transfer (curl_easy_init failed)");
		return -1;
	}
	setup_easy(en, r);
	CURLcode rc = curl_easy_perform(r->h);
	if (rc != CURLE_OK || r->too_big) {
		*why = transfer_error(en, r, rc);
		return -1;
	}
	curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
	return 0;
}

static void sync_done(struct engine_req *r)
{
	if (r->h)
		curl_easy_cleanup(r->h);
	curl_slist_free_all(r->hdrs);
	buf_free(&r->resp);
	free(r->url);
}

int engine_call_sync(struct engine *en, const char *method, const char *path, const char *body,
		     int64_t timeout_ms, long *status, char **out, size_t *outlen, struct err *e)
{
	struct engine_req r;
	memset(&r, 0, sizeof r);
	r.method = (char *)method;
	r.body = (char *)body;
	r.body_len = body ? strlen(body) : 0;
	r.url = xasprintf("http://d/v%s%s", en->version, path);
	r.hdrs = make_headers(method, body != NULL, false, NULL, NULL);
	r.timeout_ms = timeout_ms;
	char *why = NULL;
	int rc = transfer_sync(en, &r, &why);
	if (rc) {
		err_set(e, ERR_UNAVAILABLE, "%s %s: %s", method, path, why);
		free(why);
	} else {
		if (status)
			*status = r.status;
		if (outlen)
			*outlen = r.resp.len;
		if (out) {
			buf_adds(&r.resp, "");
			*out = buf_detach(&r.resp);
		}
	}
	sync_done(&r);
	return rc;
}

/* "1.41" -> 41 (the minor; berth knows only major 1). -1 when not N.N. */
static int api_minor(const char *v)
{
	if (strncmp(v, "1.", 2) || !v[2])
		return -1;
	int minor = 0;
	for (const char *p = v + 2; *p; p++) {
		if (*p < '0' || *p > '9' || minor > 1000)
			return -1;
		minor = minor * 10 + (*p - '0');
	}
	return minor;
}

int engine_ping_sync(struct engine *en, int64_t timeout_ms, struct err *e)
{
	struct engine_req r;
	memset(&r, 0, sizeof r);
	r.method = "GET";
	r.url = xstrdup("http://d/_ping");
	r.timeout_ms = timeout_ms;
	r.want_apiver = true;
	char *why = NULL;
	int rc = -1;
	if (transfer_sync(en, &r, &why)) {
		if (!strncmp(why, "timed out", 9))
			err_set(e, ERR_UNAVAILABLE, "the engine at %s did not answer /_ping: %s", en->sock, why);
		else
			err_set(e, ERR_UNAVAILABLE, "%s", why);
		free(why);
		goto out;
	}
	const char *body = buf_str(&r.resp);
	if (r.status != 200 || strcmp(body, "OK")) {
		char shown[64];
		size_t k = 0;
		for (const char *p = body; *p && k < sizeof shown - 1 && k < 40; p++)
			shown[k++] = (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f ? '?' : *p;
		shown[k] = 0;
		err_set(e, ERR_UNAVAILABLE,
			"%s does not look like a Docker Engine API socket: GET /_ping answered %ld '%s', not 200 'OK'",
			en->sock, r.status, shown);
		goto out;
	}
	char version[sizeof en->version];
	snprintf(version, sizeof version, "%s", ENGINE_API_VERSION);
	if (r.apiver[0]) {   /* an engine that does not say speaks the newest we know */
		int minor = api_minor(r.apiver);
		if (minor < 0) {
			err_set(e, ERR_UNAVAILABLE, "the engine at %s reports a malformed API version '%s'", en->sock,
				r.apiver);
			goto out;
		}
		if (minor < API_MIN_MINOR) {
			err_set(e, ERR_UNAVAILABLE, "the engine at %s speaks API %s; berth needs 1.%d or newer", en->sock,
				r.apiver, API_MIN_MINOR);
			goto out;
		}
		if (minor < api_minor(ENGINE_API_VERSION))
			snprintf(version, sizeof version, "1.%d", minor);
	}
	memcpy(en->version, version, sizeof version);
	rc = 0;
out:
	sync_done(&r);
	return rc;
}

/* ---- error answers -------------------------------------------------------------------------- */

static const char *reason(long status)
{
	switch (status) {
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return NULL;
	}
}

/* status ": " text into buf, the text on one line, control bytes shown as '?', trimmed. */
static const char *put_text(char *buf, size_t n, long status, const char *s, size_t len)
{
	while (len && (unsigned char)s[len - 1] <= ' ')
		len--;
	while (len && (unsigned char)*s <= ' ') {
		s++;
		len--;
	}
	int k = snprintf(buf, n, "%ld: ", status);
	size_t o = k > 0 && (size_t)k < n ? (size_t)k : 0;
	for (size_t i = 0; i < len && o + 1 < n; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[o++] = c == '\n' || c == '\t' || c == '\r' ? ' ' : c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (n)
		buf[o < n ? o : n - 1] = 0;
	return buf;
}

const char *engine_error_text(const struct engine_resp *r, char *buf, size_t n)
{
	if (!n)
		return buf;
	if (r->error) {
		snprintf(buf, n, "%s", r->error);
		return buf;
	}
	if (r->status == 0) {
		snprintf(buf, n, "no answer from the engine");
		return buf;
	}
	const char *body = r->body ? r->body : "";
	size_t len = r->body ? r->len : 0;
	size_t i = 0;
	while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
		i++;
	if (i < len && body[i] == '{') {
		json_t *doc = json_loadb(body, len, 0, NULL);
		json_t *m = json_object_get(doc, "message");
		if (json_is_string(m) && json_string_length(m)) {
			put_text(buf, n, r->status, json_string_value(m), json_string_length(m));
			json_decref(doc);
			return buf;
		}
		json_decref(doc);
	} else if (i < len && len - i <= 200 && !memchr(body + i, '\n', len - i - (body[len - 1] == '\n'))) {
		return put_text(buf, n, r->status, body + i, len - i);   /* a one-line plain text answer */
	}
	const char *why = reason(r->status);
	if (why)
		snprintf(buf, n, "%ld: %s", r->status, why);
	else
		snprintf(buf, n, "HTTP %ld", r->status);
	return buf;
}
