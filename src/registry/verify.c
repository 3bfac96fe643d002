/* registry/verify: does a registry accept these credentials? The handshake of `docker
 * login` (the distribution spec's /v2/ check and token authentication), on libcurl easy
 * handles. Blocking by design: it runs on a work-queue thread (api/registries.c) and
 * touches nothing shared. Credentials go to curl as CURLOPT_USERNAME/PASSWORD, never into
 * a URL, so no error text (curl's included) can carry them. */
#include "registry/registry.h"
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "util/buf.h"

#define CONNECT_TIMEOUT_S 10L
#define TOTAL_TIMEOUT_S 20L
#define BODY_MAX (256 * 1024)       /* a token answer; /v2/'s body is not needed */
#define HEADER_MAX 4096

struct answer {
	long status;
	struct buf body;
	bool keep_body;
	bool toobig;
	bool have_bearer, have_basic;
	struct registry_challenge bearer, basic;
};

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct answer *a = ud;
	size_t n = size * nmemb;
	static const char name[] = "www-authenticate:";
	if (n <= sizeof name - 1 || n > HEADER_MAX || strncasecmp(data, name, sizeof name - 1))
		return n;
	char value[HEADER_MAX + 1];
	size_t vn = n - (sizeof name - 1);
	memcpy(value, data + sizeof name - 1, vn);
	while (vn && (value[vn - 1] == '\r' || value[vn - 1] == '\n'))
		vn--;
	value[vn] = 0;
	if (memchr(value, 0, vn))
		return n;
	struct registry_challenge ch;
	if (registry_parse_challenge(value, &ch) < 0)
		return n;
	if (ch.scheme == REGISTRY_AUTH_BEARER && !a->have_bearer) {
		a->bearer = ch;
		a->have_bearer = true;
	} else if (ch.scheme == REGISTRY_AUTH_BASIC && !a->have_basic) {
		a->basic = ch;
		a->have_basic = true;
	}
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct answer *a = ud;
	size_t n = size * nmemb;
	if (!a->keep_body)
		return n;
	if (a->body.len + n > BODY_MAX) {
		a->toobig = true;
		return 0;
	}
	buf_add(&a->body, data, n);
	return n;
}

/* loopback, plus the environment's no_proxy (setting CURLOPT_NOPROXY replaces libcurl's
 * own reading of it); caller frees. */
static char *noproxy(void)
{
	const char *np = getenv("no_proxy");
	if (!np || !*np)
		np = getenv("NO_PROXY");
	return np && *np ? xasprintf("localhost,127.0.0.1,::1,%s", np) : xstrdup("localhost,127.0.0.1,::1");
}

/* One GET of url, with Basic credentials when user is non-NULL. 0 with *a filled (any HTTP
 * status), or -1 with e (ERR_UNAVAILABLE) when no answer came. */
static int get(const char *host, const char *url, const char *user, const char *pass, bool plain_http,
	       struct answer *a, struct err *e)
{
	CURL *h = curl_easy_init();
	if (!h)
		return err_set(e, ERR_INTERNAL, "cannot start the HTTP client (curl_easy_init failed)");
	char errbuf[CURL_ERROR_SIZE] = "";
	char *np = noproxy();
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "berth (registry login)");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, TOTAL_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_NOPROXY, np);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, plain_http ? "http,https" : "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
	if (user) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, pass);
	}
	CURLcode rc = curl_easy_perform(h);
	int r = 0;
	if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && a->toobig)) {
		const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
		bool tls = rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION ||
			   rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM;
		r = err_set(e, ERR_UNAVAILABLE, "cannot reach registry %s at %s: %s%s", host, url, why,
			    tls && !plain_http ? " (a registry that speaks plain HTTP must be listed under "
						 "registries.insecure in server.yaml)" : "");
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
	}
	curl_easy_cleanup(h);
	free(np);
	return r;
}

static void answer_reset(struct answer *a, bool keep_body)
{
	buf_free(&a->body);
	memset(a, 0, sizeof *a);
	a->keep_body = keep_body;
}

static int refused(const char *host, const char *user, long status, const char *url, struct err *e)
{
	return err_set(e, ERR_INVALID, "registry %s refused the credentials of user %s (HTTP %ld from %s)",
		       host, user, status, url);
}

/* Any answer but the ones the handshake expects. */
static int unexpected(const char *host, long status, const char *url, struct err *e)
{
	if (status >= 500)
		return err_set(e, ERR_UNAVAILABLE, "registry %s failed: HTTP %ld from %s", host, status, url);
	return err_set(e, ERR_INVALID, "%s answered HTTP %ld: is %s a container registry (Docker "
		       "registry API v2)?", url, status, host);
}

/* The Bearer step: GET realm?service=..&scope=..&account=USER with Basic auth; a 2xx with a
 * "token" (or "access_token") means the credentials are good. */
static int bearer(const char *host, const struct registry_challenge *ch, const char *user, const char *pass,
		  bool plain_http, struct err *e)
{
	const char *realm = ch->realm;
	bool https = !strncasecmp(realm, "https://", 8), http = !strncasecmp(realm, "http://", 7);
	if (!https && !(http && plain_http))
		return err_set(e, ERR_INVALID, "registry %s sends logins to \"%.200s\", which is not an "
			       "https:// URL: the credentials were not sent", host, realm);
	CURL *esc = curl_easy_init();
	if (!esc)
		return err_set(e, ERR_INTERNAL, "cannot start the HTTP client (curl_easy_init failed)");
	struct buf url = BUF_INIT;
	buf_adds(&url, realm);
	char sep = strchr(realm, '?') ? '&' : '?';
	const char *names[] = {"service", "scope", "account"};
	const char *values[] = {ch->service, ch->scope, user};
	for (int i = 0; i < 3; i++) {
		if (!values[i][0])
			continue;
		char *v = curl_easy_escape(esc, values[i], 0);
		buf_addf(&url, "%c%s=%s", sep, names[i], v ? v : "");
		curl_free(v);
		sep = '&';
	}
	curl_easy_cleanup(esc);
	struct answer a;
	memset(&a, 0, sizeof a);
	a.keep_body = true;
	int r = get(host, url.p, user, pass, plain_http, &a, e);
	if (r == 0) {
		if (a.status == 401 || a.status == 403) {
			r = refused(host, user, a.status, url.p, e);
		} else if (a.status < 200 || a.status > 299) {
			r = unexpected(host, a.status, url.p, e);
		} else {
			json_t *j = a.toobig ? NULL : json_loadb(buf_str(&a.body), a.body.len, 0, NULL);
			const char *tok = json_string_value(json_object_get(j, "token"));
			if (!tok || !*tok)
				tok = json_string_value(json_object_get(j, "access_token"));
			if (!tok || !*tok)
				r = err_set(e, ERR_INVALID, "the token service of registry %s (%s) answered "
					    "without a token", host, realm);
			json_decref(j);
		}
	}
	/* The answer holds a token made from the credentials: wipe it. */
	if (a.body.p)
		memset(a.body.p, 0, a.body.cap);
	buf_free(&a.body);
	buf_free(&url);
	return r;
}

int registry_verify(const char *host, const char *username, const char *password, bool plain_http,
		    bool *open, struct err *e)
{
	*open = false;
	char *base = registry_base_url(host, plain_http);
	char *url = xasprintf("%s/v2/", base);
	free(base);
	struct answer a;
	memset(&a, 0, sizeof a);
	int r = get(host, url, NULL, NULL, plain_http, &a, e);
	if (r < 0)
		goto out;
	if (a.status >= 200 && a.status <= 299) {
		*open = true;   /* `docker login` accepts such a registry too */
		goto out;
	}
	if (a.status != 401) {
		r = unexpected(host, a.status, url, e);
		goto out;
	}
	if (a.have_bearer) {
		r = bearer(host, &a.bearer, username, password, plain_http, e);
		goto out;
	}
	if (!a.have_basic) {
		r = err_set(e, ERR_INVALID, "registry %s answered %s with 401 but without a Basic or Bearer "
			    "challenge (WWW-Authenticate): berth cannot log in to it", host, url);
		goto out;
	}
	answer_reset(&a, false);
	if ((r = get(host, url, username, password, plain_http, &a, e)) < 0)
		goto out;
	if (a.status == 401 || a.status == 403)
		r = refused(host, username, a.status, url, e);
	else if (a.status < 200 || a.status > 299)
		r = unexpected(host, a.status, url, e);
out:
	buf_free(&a.body);
	free(url);
	return r;
}
