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
char *model_registry_key(const char *host) { return xasprintf(MODEL_REGISTRY_PREFIX "%s", host); }
char *model_cron_key(const char *env, const char *app, const char *job)
{
	return xasprintf("/envs/%s/apps/%s/cron/%s", env, app, job);
}

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

bool model_code_dir_name(const char *name)
{
	return name && !strncmp(name, "code-", 5) && name[5] && !strchr(name, '/');
}

static int cmp_int_desc(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x < y) - (x > y);
}

/* The valid "dir" of release version v in releases, or NULL. */
static const char *release_dir(json_t *releases, int v)
{
	size_t k;
	json_t *r;
	json_array_foreach(releases, k, r) {
		if (model_json_int(r, "version", 0) != v)
			continue;
		const char *dir = model_json_str(r, "dir", NULL);
		return model_code_dir_name(dir) ? dir : NULL;
	}
	return NULL;
}

json_t *model_code_dirs_keep(json_t *app, json_t *releases, const int *busy, size_t nbusy, int keep)
{
	if (keep < 1 || !json_is_array(releases))
		return NULL;
	size_t n = json_array_size(releases);
	int *vs = xcalloc(n ? n : 1, sizeof *vs);
	size_t nv = 0, k;
	json_t *r;
	json_array_foreach(releases, k, r) {
		int v = model_json_int(r, "version", 0);
		if (v > 0)
			vs[nv++] = v;
	}
	qsort(vs, nv, sizeof *vs, cmp_int_desc);
	/* Referenced versions: the newest `keep`, then live, target and busy (0 = none). */
	size_t nref = (nv < (size_t)keep ? nv : (size_t)keep) + 2 + nbusy;
	int *ref = xcalloc(nref, sizeof *ref);
	size_t m = 0;
	for (size_t i = 0; i < nv && i < (size_t)keep; i++)
		ref[m++] = vs[i];
	ref[m++] = model_json_int(app, "release", 0);
	ref[m++] = model_json_int(app, "target", 0);
	for (size_t i = 0; i < nbusy; i++)
		ref[m++] = busy[i];
	json_t *out = json_object();
	for (size_t i = 0; i < m && out; i++) {
		if (ref[i] <= 0)
			continue;
		const char *dir = release_dir(releases, ref[i]);
		if (!dir) {
			json_decref(out);
			out = NULL;
		} else {
			json_object_set_new(out, dir, json_true());
		}
	}
	free(ref);
	free(vs);
	return out;
}

int model_set_field(struct store *s, const char *key, const char *field, json_t *value, bool *changed,
		    struct err *e)
{
	int r = -1;
	if (changed)
		*changed = false;
	for (int attempt = 0; attempt < 5; attempt++) {
		int64_t rev;
		json_t *doc = model_get(s, key, &rev, e);
		if (!doc)
			break;
		if (json_equal(json_object_get(doc, field), value)) {
			json_decref(doc);
			r = 0;
			break;
		}
		json_object_set(doc, field, value);
		char *text = model_dump(doc);
		json_decref(doc);
		struct store_txn *t = store_txn_new();
		store_txn_cmp_rev(t, key, rev);
		store_txn_put(t, key, text);
		free(text);
		r = store_txn_commit(s, t, NULL, e);
		store_txn_free(t);
		if (r == 0 && changed)
			*changed = true;
		if (r == 0 || e->code != ERR_CONFLICT)
			break;
	}
	json_decref(value);
	return r;
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
