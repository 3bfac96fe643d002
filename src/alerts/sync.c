/* alerts/sync: server.yaml's and the store's per-env webhooks -> the alerts object (see
 * sync.h). It remembers the list each env last got from the store, so a write to an env
 * document that does not touch its webhooks (an env being created) changes nothing. */
#include "alerts/sync.h"
#include "manifest/manifest.h"
#include "model/model.h"
#include "util/buf.h"
#include "util/log.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* An env whose webhooks come from the store, with the list it got. */
struct stored_env {
	struct stored_env *next;
	char *env;
	json_t *hooks;
};

struct alerts_sync {
	struct alerts *a;
	struct store *st;
	const struct server_conf *conf;
	struct stored_env *envs;
	int watch;
};

static const struct alert_env *conf_env(const struct server_conf *c, const char *env)
{
	for (size_t k = 0; k < c->nalert_envs; k++)
		if (!strcmp(c->alert_envs[k].env, env))
			return &c->alert_envs[k];
	return NULL;
}

static struct stored_env **stored_find(struct alerts_sync *s, const char *env)
{
	struct stored_env **pp = &s->envs;
	while (*pp && strcmp((*pp)->env, env))
		pp = &(*pp)->next;
	return pp;
}

/* Give env the store's list hooks (an array of strings). 0, or -1 with e when it is not
 * usable (nothing changed then). */
static int apply_stored(struct alerts_sync *s, const char *env, json_t *hooks, struct err *e)
{
	size_t n = json_array_size(hooks);
	const char **urls = xcalloc(n, sizeof *urls);
	int r = 0;
	for (size_t k = 0; k < n && r == 0; k++) {
		urls[k] = json_string_value(json_array_get(hooks, k));
		if (!urls[k])
			r = err_set(e, ERR_INVALID, "webhooks[%zu] is not a string", k);
	}
	if (r == 0)
		r = alerts_set_env_webhooks(s->a, env, urls, n, e);
	free(urls);
	return r;
}

/* Give env server.yaml's list, or none. */
static void apply_conf(struct alerts_sync *s, const char *env)
{
	const struct alert_env *ce = conf_env(s->conf, env);
	struct err e = ERR_INIT;
	if (alerts_set_env_webhooks(s->a, env, ce ? (const char *const *)ce->webhooks : NULL, ce ? ce->nwebhooks : 0,
				    &e) < 0)
		log_warn("alerts.envs.%s: %s", env, e.msg);   /* checked at start: not expected */
}

/* env's document is now doc (NULL: deleted or unreadable). at_start: say nothing per env. */
static void env_changed(struct alerts_sync *s, const char *env, json_t *doc, bool at_start)
{
	json_t *hooks = model_env_webhooks(doc);
	struct stored_env **pp = stored_find(s, env);
	struct stored_env *se = *pp;
	if (se && hooks && json_equal(se->hooks, hooks))
		return;
	if (!se && !hooks)
		return;
	struct err e = ERR_INIT;
	if (hooks && apply_stored(s, env, hooks, &e) == 0) {
		if (!se) {
			se = xcalloc(1, sizeof *se);
			se->env = xstrdup(env);
			*pp = se;
		}
		json_decref(se->hooks);
		se->hooks = json_deep_copy(hooks);
		if (!at_start)
			log_info("alerts: env %s now sends its alerts to its own %zu webhook%s (set through the API)", env,
				 json_array_size(hooks), json_array_size(hooks) == 1 ? "" : "s");
		return;
	}
	if (hooks)
		log_warn("alerts: env %s: the webhooks stored for it cannot be used (%s); ignoring them", env, e.msg);
	if (se) {
		*pp = se->next;
		json_decref(se->hooks);
		free(se->env);
		free(se);
	}
	apply_conf(s, env);
	if (!at_start) {
		const struct alert_env *ce = conf_env(s->conf, env);
		if (ce)
			log_info("alerts: env %s: its own webhooks were cleared; server.yaml's %zu webhook%s for it "
				 "appl%s again", env, ce->nwebhooks, ce->nwebhooks == 1 ? "" : "s",
				 ce->nwebhooks == 1 ? "ies" : "y");
		else
			log_info("alerts: env %s: its own webhooks were cleared", env);
	}
}

static void on_change(void *arg, const char *key, const char *value, int64_t rev)
{
	struct alerts_sync *s = arg;
	char env[64];
	if (model_parse_env_key(key, env) < 0)
		return;
	json_t *doc = value ? json_loads(value, 0, NULL) : NULL;
	env_changed(s, env, doc, false);
	json_decref(doc);
}

struct alerts_sync *alerts_sync_start(struct alerts *a, struct store *st, const struct server_conf *conf,
				      struct err *e)
{
	for (size_t k = 0; k < conf->nalert_envs; k++) {
		const struct alert_env *ae = &conf->alert_envs[k];
		if (alerts_set_env_webhooks(a, ae->env, (const char *const *)ae->webhooks, ae->nwebhooks, e) < 0) {
			err_prefix(e, "alerts.envs.%s", ae->env);
			return NULL;
		}
	}
	struct store_list l;
	if (store_list(st, "/envs/", &l, e) < 0)
		return NULL;
	struct alerts_sync *s = xcalloc(1, sizeof *s);
	s->a = a;
	s->st = st;
	s->conf = conf;
	for (size_t k = 0; k < l.n; k++) {
		char env[64];
		if (model_parse_env_key(l.items[k].key, env) < 0)
			continue;
		json_t *doc = json_loads(l.items[k].value, 0, NULL);
		env_changed(s, env, doc, true);
		json_decref(doc);
	}
	store_list_free(&l);
	s->watch = store_watch(st, "/envs/", on_change, s);
	return s;
}

size_t alerts_sync_store_envs(const struct alerts_sync *s)
{
	size_t n = 0;
	for (const struct stored_env *se = s ? s->envs : NULL; se; se = se->next)
		n++;
	return n;
}

void alerts_sync_free(struct alerts_sync *s)
{
	if (!s)
		return;
	store_unwatch(s->st, s->watch);
	while (s->envs) {
		struct stored_env *se = s->envs;
		s->envs = se->next;
		json_decref(se->hooks);
		free(se->env);
		free(se);
	}
	free(s);
}
