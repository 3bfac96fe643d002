/* cli/client: libcurl requests to the berth API, JSON in and out, NDJSON streams, and the
 * one place where transport and HTTP failures become readable messages (see client.h). */
#include "cli/client.h"
#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/ndjson.h"
#include "cli/version.h"
#include "util/fsutil.h"

#define MAX_JSON_BODY (64u << 20)   /* a JSON answer larger than this is refused */
#define MAX_ERROR_BODY (64u << 10)  /* bytes of a non-2xx answer kept for its message */
#define MAX_LINE (4u << 20)         /* one NDJSON line */

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

char *client_base_url(const char *api, struct err *e)
{
	struct buf b = BUF_INIT;
	const char *sep = strstr(api, "://");
	if (sep) {
		size_t sl = (size_t)(sep - api);
		if (!((sl == 4 && !strncasecmp(api, "http", 4)) ||
		      (sl == 5 && !strncasecmp(api, "https", 5)))) {
			err_set(e, ERR_INVALID, "API address \"%s\": only http:// and https:// are supported",
				api);
			return NULL;
		}
		buf_adds(&b, api);
	} else {
		buf_addf(&b, "http://%s", api);
	}
	size_t host = (size_t)(strstr(b.p, "://") - b.p) + 3;
	while (b.len > host && b.p[b.len - 1] == '/')
		b.p[--b.len] = 0;
	if (b.len == host) {
		buf_free(&b);
		err_set(e, ERR_INVALID, "API address \"%s\" has no host", api);
		return NULL;
	}
	return buf_detach(&b);
}

/* Read DIR/admin.token into c->token. */
static int token_from_dir(struct client *c, const char *dir, struct err *e)
{
	struct buf b = BUF_INIT;
	char *path = xasprintf("%s/admin.token", dir);
	if (fs_read_file(path, &b, 4096, e)) {
		err_prefix(e, "reading the admin token (is %s the server's --data directory?)", dir);
		free(path);
		buf_free(&b);
		return -1;
	}
	size_t s = 0, n = b.len;
	while (s < n && strchr(" \t\r\n", b.p[s]))
		s++;
	while (n > s && strchr(" \t\r\n", b.p[n - 1]))
		n--;
	if (n == s) {
		err_set(e, ERR_INVALID, "%s is empty", path);
		free(path);
		buf_free(&b);
		return -1;
	}
	c->token = xstrndup(b.p + s, n - s);
	c->token_from = path;
	buf_free(&b);
	return 0;
}

int client_open(struct client *c, const char *api, const char *token, const char *data,
		struct err *e)
{
	memset(c, 0, sizeof *c);
	if (!api)
		api = env_nonempty("BERTH_API");
	c->base = client_base_url(api ? api : CLIENT_DEFAULT_API, e);
	if (!c->base)
		return -1;
	if (token) {
		c->token = xstrdup(token);
		c->token_from = xstrdup("--token");
	} else if (data) {
		if (token_from_dir(c, data, e))
			goto fail;
	} else if ((token = env_nonempty("BERTH_TOKEN"))) {
		c->token = xstrdup(token);
		c->token_from = xstrdup("BERTH_TOKEN");
	} else if ((data = env_nonempty("BERTH_DATA"))) {
		if (token_from_dir(c, data, e)) {
			err_prefix(e, "BERTH_DATA");
			goto fail;
		}
	} else if (access(".berth/admin.token", R_OK) == 0) {
		struct err ignored = ERR_INIT;
		token_from_dir(c, ".berth", &ignored);   /* no token is still a valid state */
	}
	static bool inited;
	if (!inited) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		inited = true;
	}
	c->curl = curl_easy_init();
	if (!c->curl) {
		err_set(e, ERR_INTERNAL, "cannot start the HTTP client (curl_easy_init failed)");
		goto fail;
	}
	return 0;
fail:
	client_close(c);
	return -1;
}

void client_close(struct client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->base);
	free(c->token);
	free(c->token_from);
	memset(c, 0, sizeof *c);
}

void client_escape(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			buf_addc(b, (char)*p);
		} else {
			buf_addc(b, '%');
			buf_addc(b, hex[*p >> 4]);
			buf_addc(b, hex[*p & 15]);
		}
	}
}

/* One request in flight. */
struct xfer {
	CURL *h;
	long status;            /* 0 until the first body byte */
	bool stream;            /* deliver 2xx bodies line by line */
	struct buf body;        /* non-stream 2xx answers; any non-2xx answer (its start) */
	bool toobig;            /* a 2xx JSON body passed MAX_JSON_BODY */
	struct ndjson nd;
	client_line_fn fn;
	void *ud;
	int stopped;            /* the callback's positive value */
	bool line_err;          /* ndjson refused a line; e is set */
	struct err *e;
};

static bool is_2xx(long s)
{
	return s >= 200 && s < 300;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;
	if (!x->status)
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->stream && is_2xx(x->status)) {
		int rc = ndjson_feed(&x->nd, data, n, x->fn, x->ud, x->e);
		if (rc < 0) {
			x->line_err = true;
			return 0;
		}
		if (rc > 0) {
			x->stopped = rc;
			return 0;
		}
		return n;
	}
	size_t limit = is_2xx(x->status) ? MAX_JSON_BODY : MAX_ERROR_BODY;
	if (x->body.len + n > limit) {
		if (is_2xx(x->status)) {
			x->toobig = true;
			return 0;
		}
		/* Only the start of an error body is needed for its message. */
		buf_add(&x->body, data, limit - x->body.len);
		return n;
	}
	buf_add(&x->body, data, n);
	return n;
}

static int status_code(long s)
{
	switch (s) {
	case 400: return ERR_INVALID;
	case 401: return ERR_AUTH;
	case 403: return ERR_FORBIDDEN;
	case 404: return ERR_NOTFOUND;
	case 409: return ERR_CONFLICT;
	case 413: return ERR_TOOBIG;
	case 503: return ERR_UNAVAILABLE;
	default: return ERR_INTERNAL;
	}
}

/* A non-2xx answer: its {"error"} message, or the status and the start of the body. */
static int http_error(struct client *c, struct xfer *x, struct err *e)
{
	struct buf msg = BUF_INIT;
	json_t *j = json_loadb(buf_str(&x->body), x->body.len, 0, NULL);
	const char *text = json_string_value(json_object_get(j, "error"));
	if (text && *text) {
		buf_adds(&msg, text);
	} else {
		buf_addf(&msg, "the server at %s answered HTTP %ld", c->base, x->status);
		size_t n = 0;
		while (n < x->body.len && n < 200 && x->body.p[n] != '\n' && x->body.p[n] != '\r')
			n++;
		if (n) {
			buf_adds(&msg, ": ");
			for (size_t i = 0; i < n; i++) {
				unsigned char ch = (unsigned char)x->body.p[i];
				buf_addc(&msg, ch < 0x20 || ch == 0x7f ? '?' : (char)ch);
			}
		}
	}
	json_decref(j);
	if (x->status == 401) {
		if (!c->token)
			buf_adds(&msg, " (no API token found: set BERTH_TOKEN, pass --token TOKEN, or on "
				       "the server's machine pass --data DIR to use DIR/admin.token)");
		else
			buf_addf(&msg, " (the token from %s was not accepted: check it, or ask an admin "
				       "for one with `berth tokens create`)", c->token_from);
	}
	err_set(e, status_code(x->status), "%s", msg.p);
	buf_free(&msg);
	return -1;
}

/* A transport failure: name the URL and, for the common cases, what to do. */
static int curl_error(struct client *c, CURLcode rc, const char *errbuf, struct err *e)
{
	const char *why = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);
	long os = 0;
	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os);
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		if (os == ECONNREFUSED)
			return err_set(e, ERR_UNAVAILABLE,
				       "cannot reach the berth server at %s: connection refused (is "
				       "`berth server` running?)", c->base);
		return err_set(e, ERR_UNAVAILABLE, "cannot reach the berth server at %s: %s "
			       "(is `berth server` running?)", c->base, why);
	case CURLE_COULDNT_RESOLVE_HOST:
		return err_set(e, ERR_UNAVAILABLE, "cannot reach the berth server at %s: %s",
			       c->base, why);
	case CURLE_OPERATION_TIMEDOUT:
		return err_set(e, ERR_UNAVAILABLE, "the berth server at %s did not answer in time: %s",
			       c->base, why);
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return err_set(e, ERR_UNAVAILABLE, "the connection to the berth server at %s broke: %s",
			       c->base, why);
	default:
		return err_set(e, ERR_UNAVAILABLE, "request to the berth server at %s failed: %s",
			       c->base, why);
	}
}

/* Send one request; x says what to do with the answer. Returns 0 when the exchange finished
 * (any HTTP status: x->status), x->stopped when the line callback stopped it, -1 on error. */
static int perform(struct client *c, struct xfer *x, const char *method, const char *path,
		   const char *ctype, const void *body, size_t n, bool stream, struct err *e)
{
	CURL *h = c->curl;
	char errbuf[CURL_ERROR_SIZE] = "";
	struct buf url = BUF_INIT, hdr = BUF_INIT;
	struct curl_slist *hl = NULL;

	curl_easy_reset(h);
	buf_addf(&url, "%s%s", c->base, path);
	curl_easy_setopt(h, CURLOPT_URL, url.p);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);   /* leave SIGPIPE alone: `berth logs | head` */
	curl_easy_setopt(h, CURLOPT_USERAGENT, "berth/" BERTH_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (!stream)
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
	if (c->token) {
		buf_addf(&hdr, "Authorization: Bearer %s", c->token);
		hl = curl_slist_append(hl, hdr.p);
	}
	hl = curl_slist_append(hl, stream ? "Accept: application/x-ndjson, application/json"
					  : "Accept: application/json");
	hl = curl_slist_append(hl, "Expect:");   /* no 100-continue round trip for uploads */
	if (!strcmp(method, "POST") || (body && strcmp(method, "GET"))) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		if (strcmp(method, "POST"))
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);   /* PUT/PATCH with a body */
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? n : 0));
		if (ctype) {
			buf_reset(&hdr);
			buf_addf(&hdr, "Content-Type: %s", ctype);
			hl = curl_slist_append(hl, hdr.p);
		} else {
			hl = curl_slist_append(hl, "Content-Type:");
		}
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	x->h = h;
	x->e = e;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);

	CURLcode rc = curl_easy_perform(h);
	/* The token was in this buffer: do not leave it lying in freed memory. */
	if (hdr.p)
		memset(hdr.p, 0, hdr.cap);
	curl_slist_free_all(hl);
	buf_free(&hdr);
	buf_free(&url);
	if (!x->status)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->line_err)
		return -1;
	if (x->stopped)
		return x->stopped;
	if (x->toobig)
		return err_set(e, ERR_TOOBIG, "the server's answer is larger than %u MiB",
			       MAX_JSON_BODY >> 20);
	if (rc != CURLE_OK)
		return curl_error(c, rc, errbuf, e);
	return 0;
}

int client_json(struct client *c, const char *method, const char *path, json_t *body,
		json_t **out, struct err *e)
{
	struct xfer x = {0};
	char *data = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int rc = perform(c, &x, method, path, body ? "application/json" : NULL, data,
			 data ? strlen(data) : 0, false, e);
	free(data);
	if (rc == 0 && !is_2xx(x.status))
		rc = http_error(c, &x, e);
	if (rc == 0) {
		json_error_t je;
		json_t *j = json_loadb(buf_str(&x.body), x.body.len, 0, &je);
		if (!j || !json_is_object(j)) {
			json_decref(j);
			rc = err_set(e, ERR_INTERNAL, "the server at %s sent an answer that is not a JSON "
				     "object (%s)", c->base, j ? "another JSON value" : je.text);
		} else {
			*out = j;
		}
	}
	buf_free(&x.body);
	return rc;
}

int client_stream(struct client *c, const char *method, const char *path, const char *ctype,
		  const void *body, size_t n, client_line_fn fn, void *ud, struct err *e)
{
	struct xfer x = {0};
	x.stream = true;
	x.fn = fn;
	x.ud = ud;
	ndjson_init(&x.nd, MAX_LINE);
	int rc = perform(c, &x, method, path, ctype, body, n, true, e);
	if (rc == 0 && !is_2xx(x.status))
		rc = http_error(c, &x, e);
	if (rc == 0)
		rc = ndjson_finish(&x.nd, fn, ud);
	ndjson_free(&x.nd);
	buf_free(&x.body);
	return rc;
}
