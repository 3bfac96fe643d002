/* api/registries: container registry credentials, admin only (the route checks the role).
 *   GET    /v1/registries        {"registries":[{"host","username","added_at","added_by"}]}
 *   POST   /v1/registries        {"host","username","password"}: checked against the registry
 *                                first (registry_verify, on the work queue: it is network I/O
 *                                of up to a minute), stored sealed only when it accepts them
 *   DELETE /v1/registries/HOST   {"deleted":true}
 * The password is in this process only while a login is checked: the request body and every
 * copy are wiped once read, and no answer or log line carries it. */
#include "api/internal.h"
#include <curl/curl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include "registry/registry.h"
#include "util/log.h"
#include "util/secret.h"

struct login {
	struct api *api;
	struct ctx *c;                    /* NULL once the client went away */
	uv_work_t work;
	char host[REGISTRY_HOST_MAX];
	char *username;
	char *password;                   /* wiped when freed */
	bool plain_http;
	char who[80];
	int result;                       /* registry_verify's, with e and open */
	bool open;
	struct err e;
};

/* Is host to be spoken to over plain HTTP: a loopback host, or one server.yaml lists under
 * registries.insecure (as "host:port", or as "host" for every port of it)? */
static bool plain_http(const struct server_conf *conf, const char *host)
{
	if (registry_host_is_loopback(host))
		return true;
	size_t name_len = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":");
	for (size_t i = 0; i < conf->nregistry_insecure; i++) {
		const char *h = conf->registry_insecure[i];
		if (!strcmp(h, host) || (strlen(h) == name_len && !strncmp(h, host, name_len)))
			return true;
	}
	return false;
}

static void login_free(struct login *l)
{
	free(l->username);
	secret_str_wipe(l->password);
	free(l);
}

static void login_abort(struct http_req *r, void *arg)
{
	struct login *l = arg;
	l->c = NULL;
}

static void login_work(uv_work_t *w)
{
	struct login *l = w->data;
	l->result = registry_verify(l->host, l->username, l->password, l->plain_http, &l->open, &l->e);
}

/* On the loop again: store the credentials the registry accepted and answer. */
static void login_after(uv_work_t *w, int status)
{
	struct login *l = w->data;
	struct api *a = l->api;
	curl_global_cleanup();
	if (!l->c || a->closing) {
		log_info("registry %s: login of user %s by %s abandoned (%s); nothing stored", l->host,
			 l->username, l->who, a->closing ? "the server is stopping" : "the client went away");
	} else if (l->result < 0) {
		http_req_on_abort(l->c->req, NULL, NULL);
		log_info("registry %s: login of user %s by %s failed: %s", l->host, l->username, l->who,
			 l->e.msg);
		size_t n = strlen(l->e.msg);
		snprintf(l->e.msg + n, sizeof l->e.msg - n, "; nothing was stored");
		http_respond_error(l->c->req, api_status_of(&l->e), l->e.msg);   /* logged above */
	} else {
		http_req_on_abort(l->c->req, NULL, NULL);
		struct err e = ERR_INIT;
		bool replaced = false;
		json_t *pub = registry_creds_put(a->st, a->data_dir, l->host, l->username, l->password, l->who,
						 &replaced, &e);
		if (!pub) {
			api_fail(l->c->req, &e);
		} else {
			char msg[512];
			snprintf(msg, sizeof msg, "logged in to %s as %s: the credentials are stored encrypted%s",
				 l->host, l->username, replaced ? " (they replace the ones stored before)" : "");
			json_object_set_new(pub, "message", json_string(msg));
			json_object_set_new(pub, "replaced", json_boolean(replaced));
			if (l->open)
				json_object_set_new(pub, "warning", json_string("the registry asks for no "
					"credentials at all, so berth could not check them"));
			log_info("registry %s: credentials of user %s stored by %s%s", l->host, l->username, l->who,
				 l->open ? " (the registry asks for none: unchecked)" : "");
			http_respond_json(l->c->req, replaced ? 200 : 201, pub);
		}
	}
	login_free(l);
	api_job_done(a);   /* last: it may free a closing api */
}

/* A string field of the login body: present, a string without NUL bytes, 1..max bytes.
 * NULL with e otherwise. */
static const char *field(json_t *body, const char *name, size_t max, struct err *e)
{
	json_t *v = json_object_get(body, name);
	size_t n = json_string_length(v);
	if (!v)
		err_set(e, ERR_INVALID, "%s is required", name);
	else if (!json_is_string(v))
		err_set(e, ERR_INVALID, "%s must be a string", name);
	else if (n == 0)
		err_set(e, ERR_INVALID, "%s is empty", name);
	else if (n > max)
		err_set(e, ERR_INVALID, "%s is longer than %zu bytes", name, max);
	else if (strlen(json_string_value(v)) != n)
		err_set(e, ERR_INVALID, "%s contains a NUL byte", name);
	else
		return json_string_value(v);
	return NULL;
}

static int check_body(json_t *body, char host[REGISTRY_HOST_MAX], const char **user, const char **pass,
		      struct err *e)
{
	const char *k;
	json_t *v;
	json_object_foreach(body, k, v) {
		if (strcmp(k, "host") && strcmp(k, "username") && strcmp(k, "password"))
			return err_set(e, ERR_INVALID, "unknown field \"%.64s\" (expected host, username, "
				       "password)", k);
	}
	const char *h = field(body, "host", REGISTRY_HOST_MAX - 1, e);
	if (!h || registry_host_normalize(h, host, e) < 0)
		return -1;
	if (!(*user = field(body, "username", REGISTRY_USERNAME_MAX, e)))
		return -1;
	for (const char *p = *user; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ':')
			return err_set(e, ERR_INVALID, "the username may not contain ':' or control characters");
	if (!(*pass = field(body, "password", REGISTRY_PASSWORD_MAX, e)))
		return -1;
	return 0;
}

/* Zero the password wherever the request left it: the raw body and jansson's copy. */
static void wipe_request(struct http_req *r, json_t *body)
{
	if (r->body.p)
		sodium_memzero(r->body.p, r->body.cap);
	json_t *pw = json_object_get(body, "password");
	if (json_is_string(pw))
		sodium_memzero((char *)json_string_value(pw), json_string_length(pw));
}

void api_registry_login(struct ctx *c)
{
	/* Not api_body_json: jansson's error text quotes the input near the error, which may
	 * be the password. */
	struct http_req *r = c->req;
	struct err e = ERR_INIT;
	json_error_t je;
	json_t *body = json_loadb(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!body || !json_is_object(body)) {
		if (body)
			err_set(&e, ERR_INVALID, "the JSON body must be an object {\"host\",\"username\",\"password\"}");
		else
			err_set(&e, ERR_INVALID, "malformed JSON body at line %d column %d", je.line, je.column);
		json_decref(body);
		wipe_request(r, NULL);
		api_fail(r, &e);
		return;
	}
	char host[REGISTRY_HOST_MAX];
	const char *user = NULL, *pass = NULL;
	if (check_body(body, host, &user, &pass, &e) < 0) {
		wipe_request(c->req, body);
		json_decref(body);
		api_fail(c->req, &e);
		return;
	}
	struct login *l = xcalloc(1, sizeof *l);
	l->api = c->api;
	l->c = c;
	memcpy(l->host, host, sizeof l->host);
	l->username = xstrdup(user);
	l->password = xstrdup(pass);
	l->plain_http = plain_http(c->api->conf, host);
	snprintf(l->who, sizeof l->who, "%s", c->who[0] ? c->who : "an admin");
	wipe_request(c->req, body);
	json_decref(body);
	curl_global_init(CURL_GLOBAL_DEFAULT);   /* reference-counted; undone in login_after */
	c->api->jobs++;
	l->work.data = l;
	http_req_on_abort(c->req, login_abort, l);
	uv_queue_work(c->api->loop, &l->work, login_work, login_after);
}

void api_registries(struct ctx *c)
{
	struct err e = ERR_INIT;
	json_t *doc = registry_creds_list(c->api->st, &e);
	if (!doc)
		api_fail(c->req, &e);
	else
		http_respond_json(c->req, 200, doc);
}

void api_registry_logout(struct ctx *c, const char *host_in)
{
	struct err e = ERR_INIT;
	char host[REGISTRY_HOST_MAX];
	if (registry_host_normalize(host_in, host, &e) < 0 || registry_creds_delete(c->api->st, host, &e) < 0) {
		api_fail(c->req, &e);
		return;
	}
	log_info("registry %s: credentials removed by %s", host, c->who[0] ? c->who : "an admin");
	char msg[400];
	snprintf(msg, sizeof msg, "the credentials for registry %s are removed", host);
	http_respond_json(c->req, 200, json_pack("{s:b, s:s, s:s}", "deleted", 1, "host", host, "message", msg));
}
