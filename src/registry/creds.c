/* registry/creds: registry credentials in the store (/registries/<host>, model.h): stored
 * with the password sealed (util/secret), listed without it, removed, and opened again only
 * to hand the Docker engine its X-Registry-Auth header. Loop thread only (the store). */
#include "registry/registry.h"
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include "model/model.h"
#include "util/secret.h"
#include "util/timeutil.h"

static char *seal_context(const char *host)
{
	return xasprintf("registry:%s", host);
}

/* What anyone may see of a stored record: a new object, or NULL for a record that is not one. */
static json_t *public_record(json_t *doc)
{
	const char *host = json_string_value(json_object_get(doc, "host"));
	const char *user = json_string_value(json_object_get(doc, "username"));
	if (!host || !user)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:s}", "host", host, "username", user, "added_at",
			 model_json_str(doc, "added_at", ""), "added_by", model_json_str(doc, "added_by", ""));
}

/* Zero a jansson string's bytes in place before its object is freed (jansson does not). */
static void wipe_json_string(json_t *s)
{
	if (json_is_string(s))
		sodium_memzero((char *)json_string_value(s), json_string_length(s));
}

json_t *registry_creds_put(struct store *st, const char *data_dir, const char *host, const char *username,
			   const char *password, const char *by, bool *replaced, struct err *e)
{
	struct secret_key key;
	if (secret_key_load(data_dir, &key, e) < 0)
		return NULL;
	char *ctx = seal_context(host);
	char *sealed = secret_seal(&key, ctx, password, strlen(password));
	secret_key_wipe(&key);
	free(ctx);
	if (!sealed) {
		err_set(e, ERR_INTERNAL, "cannot seal the password for registry %s", host);
		return NULL;
	}
	char ts[40];
	json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "host", host, "username", username,
				"sealed_password", sealed, "added_at",
				time_format_rfc3339(time_now_us(), ts, sizeof ts), "added_by", by ? by : "");
	free(sealed);
	if (!doc) {
		err_set(e, ERR_INVALID, "the username is not valid UTF-8");
		return NULL;
	}
	char *key_path = model_registry_key(host);
	struct store_kv kv;
	int r = store_get(st, key_path, &kv, e);
	json_t *pub = NULL;
	if (r >= 0) {
		char *val = model_dump(doc);
		struct store_txn *t = store_txn_new();
		store_txn_cmp_rev(t, key_path, r == 0 ? kv.mod_rev : 0);
		store_txn_put(t, key_path, val);
		if (store_txn_commit(st, t, NULL, e) == 0) {
			pub = public_record(doc);
			if (replaced)
				*replaced = r == 0;
		} else if (e->code == ERR_CONFLICT) {
			err_set(e, ERR_CONFLICT, "the credentials for registry %s changed meanwhile; try again",
				host);
		}
		store_txn_free(t);
		free(val);
		if (r == 0)
			store_kv_free(&kv);
	}
	free(key_path);
	json_decref(doc);
	return pub;
}

json_t *registry_creds_list(struct store *st, struct err *e)
{
	struct store_list l;
	if (store_list(st, MODEL_REGISTRY_PREFIX, &l, e) < 0)
		return NULL;
	json_t *arr = json_array();
	for (size_t k = 0; k < l.n; k++) {
		json_t *doc = json_loads(l.items[k].value, 0, NULL);
		json_t *pub = public_record(doc);
		if (pub)
			json_array_append_new(arr, pub);
		json_decref(doc);
	}
	store_list_free(&l);
	return json_pack("{s:o}", "registries", arr);
}

int registry_creds_delete(struct store *st, const char *host, struct err *e)
{
	char *key = model_registry_key(host);
	struct store_kv kv;
	int r = store_get(st, key, &kv, e);
	if (r == 1) {
		r = err_set(e, ERR_NOTFOUND, "no credentials for registry %s are stored (berth registry list "
			    "shows those that are)", host);
	} else if (r == 0) {
		store_kv_free(&kv);
		r = store_del(st, key, e);
	}
	free(key);
	return r < 0 ? -1 : 0;
}

/* The stored credentials of host (its store document doc) opened: {"username","password",
 * "serveraddress"}, or NULL with e. Wipe with wipe_auth. */
static json_t *open_auth(const char *data_dir, const char *host, json_t *doc, struct err *e)
{
	const char *user = json_string_value(json_object_get(doc, "username"));
	const char *sealed = json_string_value(json_object_get(doc, "sealed_password"));
	if (!user || !sealed) {
		err_set(e, ERR_INTERNAL, "the stored credentials for registry %s are damaged: `berth registry login %s` again",
			host, host);
		return NULL;
	}
	struct secret_key key;
	struct buf pass = BUF_INIT;
	int r = secret_key_load(data_dir, &key, e);
	if (r == 0) {
		char *ctx = seal_context(host);
		r = secret_open(&key, ctx, sealed, &pass, e);
		free(ctx);
		secret_key_wipe(&key);
		if (r < 0)
			err_prefix(e, "the credentials for registry %s", host);
	}
	json_t *auth = NULL;
	if (r == 0) {
		json_t *pw = json_stringn_nocheck(pass.p, pass.len);
		auth = json_pack("{s:s, s:o, s:s}", "username", user, "password", pw, "serveraddress",
				 registry_server_address(host));
		if (!auth)
			err_set(e, ERR_INTERNAL, "cannot encode the credentials for registry %s", host);
	}
	secret_buf_wipe(&pass);
	return auth;
}

static void wipe_auth(json_t *auth)
{
	wipe_json_string(json_object_get(auth, "password"));
	json_decref(auth);
}

/* base64url of doc's compact JSON text (which is wiped), or NULL. */
static char *encode_wiped(json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	if (!text)
		return NULL;
	size_t n = strlen(text);
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE);
	char *out = xmalloc(cap);
	sodium_bin2base64(out, cap, (const unsigned char *)text, n, sodium_base64_VARIANT_URLSAFE);
	secret_str_wipe(text);
	return out;
}

int registry_build_config(struct store *st, const char *data_dir, char **header_value, struct err *e)
{
	*header_value = NULL;
	struct store_list l;
	if (store_list(st, MODEL_REGISTRY_PREFIX, &l, e) < 0)
		return -1;
	json_t *all = json_object();
	int r = 0;
	for (size_t k = 0; k < l.n && r == 0; k++) {
		json_t *doc = json_loads(l.items[k].value, 0, NULL);
		const char *host = json_string_value(json_object_get(doc, "host"));
		json_t *auth = host ? open_auth(data_dir, host, doc, e) : NULL;
		if (auth)
			json_object_set_new(all, !strcmp(host, "docker.io") ? "https://index.docker.io/v1/" : host, auth);
		else if (host)
			r = -1;
		json_decref(doc);
	}
	store_list_free(&l);
	if (r == 0 && json_object_size(all)) {
		*header_value = encode_wiped(all);
		if (!*header_value)
			r = err_set(e, ERR_INTERNAL, "cannot encode the registry credentials");
	}
	const char *h;
	json_t *v;
	json_object_foreach(all, h, v)
		wipe_json_string(json_object_get(v, "password"));
	json_decref(all);
	return r;
}

int registry_auth_for(struct store *st, const char *data_dir, const char *image_ref, char **header_value,
		      struct err *e)
{
	*header_value = NULL;
	char host[REGISTRY_HOST_MAX];
	if (registry_host_of_ref(image_ref, host, e) < 0)
		return -1;
	char *key_path = model_registry_key(host);
	json_t *doc = model_get(st, key_path, NULL, e);
	free(key_path);
	if (!doc) {
		if (e->code != ERR_NOTFOUND)
			return -1;
		err_clear(e);
		return 0;   /* nothing stored: pull anonymously */
	}
	json_t *auth = open_auth(data_dir, host, doc, e);
	json_decref(doc);
	if (!auth)
		return -1;
	*header_value = encode_wiped(auth);
	wipe_auth(auth);
	if (!*header_value)
		return err_set(e, ERR_INTERNAL, "cannot encode the credentials for registry %s", host);
	return 0;
}
