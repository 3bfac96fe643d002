/* api/auth: bearer tokens. A token is "berth_" + 43 base64url chars (256 random bits); the
 * store keeps only its SHA-256, and a presented token is checked against every stored digest
 * with a constant-time compare (sodium_memcmp), so neither timing nor the store leaks it. */
#include "api/internal.h"
#include "model/model.h"
#include "util/timeutil.h"
#include <sodium.h>
#include <strings.h>
#include <string.h>
#include <stdlib.h>

static void digest(const char *token, size_t n, unsigned char out[crypto_hash_sha256_BYTES])
{
	crypto_hash_sha256(out, (const unsigned char *)token, n);
}

static enum role role_of(const char *s)
{
	if (!s)
		return 0;
	if (!strcmp(s, "admin"))
		return ROLE_ADMIN;
	if (!strcmp(s, "deployer"))
		return ROLE_DEPLOYER;
	if (!strcmp(s, "viewer"))
		return ROLE_VIEWER;
	return 0;
}

enum role api_auth(struct api *a, struct http_req *r, char *who, size_t wlen)
{
	if (who && wlen)
		who[0] = 0;
	const char *h = http_req_header(r, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7))
		return 0;
	const char *tok = h + 7;
	while (*tok == ' ')
		tok++;
	size_t n = strlen(tok);
	while (n && tok[n - 1] == ' ')
		n--;
	if (n == 0 || n > 256)
		return 0;
	unsigned char want[crypto_hash_sha256_BYTES];
	digest(tok, n, want);
	struct store_list l;
	struct err e = ERR_INIT;
	if (store_list(a->st, "/auth/tokens/", &l, &e) < 0)
		return 0;
	enum role found = 0;
	for (size_t k = 0; k < l.n; k++) {
		json_t *doc = json_loads(l.items[k].value, 0, NULL);
		const char *hex = model_json_str(doc, "hash", "");
		unsigned char have[crypto_hash_sha256_BYTES];
		size_t len = 0;
		if (sodium_hex2bin(have, sizeof have, hex, strlen(hex), NULL, &len, NULL) == 0 && len == sizeof have &&
		    sodium_memcmp(have, want, sizeof want) == 0) {
			found = role_of(model_json_str(doc, "role", NULL));
			if (who && wlen)
				snprintf(who, wlen, "token %s", l.items[k].key + strlen("/auth/tokens/"));
		}
		json_decref(doc);
	}
	store_list_free(&l);
	return found;
}

char *api_token_create(struct store *st, const char *name, const char *role, struct err *e)
{
	if (!name_valid(name)) {
		err_set(e, ERR_INVALID, "token name \"%s\" must match [a-z0-9][a-z0-9-]* (at most 63 characters)", name);
		return NULL;
	}
	if (!role_of(role)) {
		err_set(e, ERR_INVALID, "unknown role \"%s\" (expected admin, deployer or viewer)", role ? role : "");
		return NULL;
	}
	unsigned char raw[32];
	randombytes_buf(raw, sizeof raw);
	char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *token = xasprintf("berth_%s", b64);
	unsigned char d[crypto_hash_sha256_BYTES];
	digest(token, strlen(token), d);
	char hex[2 * sizeof d + 1];
	sodium_bin2hex(hex, sizeof hex, d, sizeof d);
	char ts[40];
	json_t *doc = json_pack("{s:s, s:s, s:s, s:s}", "name", name, "role", role, "hash", hex, "created_at",
				time_format_rfc3339(time_now_us(), ts, sizeof ts));
	char *val = model_dump(doc);
	json_decref(doc);
	char *key = model_token_key(name);
	struct store_txn *t = store_txn_new();
	store_txn_cmp_rev(t, key, 0);
	store_txn_put(t, key, val);
	int r = store_txn_commit(st, t, NULL, e);
	store_txn_free(t);
	free(key);
	free(val);
	sodium_memzero(raw, sizeof raw);
	if (r < 0) {
		if (e->code == ERR_CONFLICT)
			err_set(e, ERR_CONFLICT, "a token named \"%s\" already exists", name);
		sodium_memzero(token, strlen(token));
		free(token);
		return NULL;
	}
	return token;
}

void api_tokens(struct ctx *c)
{
	struct store_list l;
	struct err e = ERR_INIT;
	if (store_list(c->api->st, "/auth/tokens/", &l, &e) < 0) {
		api_fail(c->req, &e);
		return;
	}
	json_t *arr = json_array();
	for (size_t k = 0; k < l.n; k++) {
		json_t *doc = json_loads(l.items[k].value, 0, NULL);
		if (!doc)
			continue;
		json_object_del(doc, "hash");
		json_array_append_new(arr, doc);
	}
	store_list_free(&l);
	http_respond_json(c->req, 200, json_pack("{s:o}", "tokens", arr));
}

void api_token_new(struct ctx *c)
{
	json_t *body = api_body_json(c->req);
	if (!body)
		return;
	struct err e = ERR_INIT;
	const char *name = model_json_str(body, "name", "");
	const char *role = model_json_str(body, "role", "deployer");
	char *tok = api_token_create(c->api->st, name, role, &e);
	if (!tok) {
		api_fail(c->req, &e);
		json_decref(body);
		return;
	}
	http_respond_json(c->req, 201, json_pack("{s:s, s:s, s:s}", "name", name, "role", role, "token", tok));
	sodium_memzero(tok, strlen(tok));
	free(tok);
	json_decref(body);
}

void api_token_delete(struct ctx *c, const char *name)
{
	struct err e = ERR_INIT;
	char *key = model_token_key(name);
	struct store_kv kv;
	int r = store_get(c->api->st, key, &kv, &e);
	if (r == 1) {
		http_respond_error(c->req, 404, "no such token");
	} else if (r < 0) {
		api_fail(c->req, &e);
	} else {
		store_kv_free(&kv);
		if (store_del(c->api->st, key, &e) < 0)
			api_fail(c->req, &e);
		else
			http_respond_json(c->req, 200, json_pack("{s:b}", "deleted", 1));
	}
	free(key);
}
