/* model: store key layout and document helpers (see model.h). */
#include "model/model.h"
#include "util/buf.h"
#include <stdlib.h>
#include <string.h>

char *model_env_key(const char *env) { return xasprintf("/envs/%s", env); }
char *model_app_key(const char *env, const char *app) { return xasprintf("/envs/%s/apps/%s", env, app); }
char *model_releases_prefix(const char *env, const char *app)
{
	return xasprintf("/envs/%s/apps/%s/releases/", env, app);
}
char *model_release_key(const char *env, const char *app, int version)
{
	return xasprintf("/envs/%s/apps/%s/releases/%010d", env, app, version);
}
char *model_token_key(const char *name) { return xasprintf("/auth/tokens/%s", name); }

json_t *model_get(struct store *s, const char *key, int64_t *rev, struct err *e)
{
	struct store_kv kv;
	int r = store_get(s, key, &kv, e);
	if (r < 0)
		return NULL;
	if (r == 1) {
		err_set(e, ERR_NOTFOUND, "%s not found", key);
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loads(kv.value, 0, &je);
	if (rev)
		*rev = kv.mod_rev;
	store_kv_free(&kv);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		err_set(e, ERR_INTERNAL, "store value at %s is not a JSON object", key);
		return NULL;
	}
	return j;
}

char *model_dump(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	if (!s)
		return xstrdup("null");
	return s;
}

int model_parse_app_key(const char *key, char *env, char *app)
{
	const char *p = key;
	if (strncmp(p, "/envs/", 6))
		return -1;
	p += 6;
	const char *sl = strchr(p, '/');
	if (!sl || sl - p >= 64 || strncmp(sl, "/apps/", 6))
		return -1;
	memcpy(env, p, (size_t)(sl - p));
	env[sl - p] = 0;
	p = sl + 6;
	size_t n = strcspn(p, "/");
	if (!n || n >= 64)
		return -1;
	memcpy(app, p, n);
	app[n] = 0;
	return 0;
}

int model_parse_env_key(const char *key, char *env)
{
	if (strncmp(key, "/envs/", 6))
		return -1;
	const char *p = key + 6;
	size_t n = strlen(p);
	if (!n || n >= 64 || strchr(p, '/'))
		return -1;
	memcpy(env, p, n + 1);
	return 0;
}

json_t *model_env_webhooks(json_t *envdoc)
{
	json_t *w = json_object_get(json_object_get(envdoc, "alerts"), "webhooks");
	return json_is_array(w) && json_array_size(w) ? w : NULL;
}

int model_json_int(json_t *obj, const char *field, int dflt)
{
	json_t *v = json_object_get(obj, field);
	return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

const char *model_json_str(json_t *obj, const char *field, const char *dflt)
{
	json_t *v = json_object_get(obj, field);
	return json_is_string(v) ? json_string_value(v) : dflt;
}
