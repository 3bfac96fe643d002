/* model: where berth's desired state lives in the store, and the JSON documents there.
 *   /envs/<env>                              {"name","created_at"[,"alerts"]}: "alerts" is
 *                                            {"webhooks":[URL...],"updated_at"}, the env's
 *                                            own alert webhooks (absent: none set; secrets)
 *   /envs/<env>/apps/<app>                   app document (below)
 *   /envs/<env>/apps/<app>/releases/<%010d>  release document (docs/API.md "release", plus
 *                                            "manifest" and "dir")
 *   /envs/<env>/apps/<app>/cron/<job>        a cron job's last runs: {"last_scheduled" (unix s of
 *                                            the last schedule slot handled), "schedule" (the
 *                                            schedule it was handled for), "last_start",
 *                                            "last_duration_ms", "last_result", "last_ok"}
 *   /auth/tokens/<name>                      {"name","role","hash","created_at"}
 *   /registries/<host>                       {"host","username","sealed_password"
 *                                            (util/secret.h, context "registry:<host>"),
 *                                            "added_at","added_by"}
 * App document: {"env","name","created_at","release":N (live, 0 = none),"target":M (rolling
 * out, 0 = none),"state":"running"|"stopped","formation":{P:n},"gens":{P:g},"next_version":K}.
 * Both the API (writes) and the reconciler (reads, and records rollout outcomes) use this;
 * nothing else knows key shapes. */
#ifndef BERTH_MODEL_H
#define BERTH_MODEL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "store/store.h"
#include "util/err.h"

char *model_env_key(const char *env);                                  /* caller frees */
char *model_app_key(const char *env, const char *app);
char *model_releases_prefix(const char *env, const char *app);
char *model_release_key(const char *env, const char *app, int version);
char *model_token_key(const char *name);
char *model_registry_key(const char *host);                           /* MODEL_REGISTRY_PREFIX + host */
#define MODEL_REGISTRY_PREFIX "/registries/"
char *model_cron_key(const char *env, const char *app, const char *job);

/* Read key as a JSON object: the document (new reference) and its mod_rev, NULL when the key
 * is missing (e->code = ERR_NOTFOUND) or on error. */
json_t *model_get(struct store *s, const char *key, int64_t *rev, struct err *e);
/* Compact JSON text of j (caller frees). */
char *model_dump(json_t *j);
/* Parse "/envs/E/apps/A..." into env and app (64-byte buffers); 0 on match. */
int model_parse_app_key(const char *key, char *env, char *app);

/* Parse "/envs/E" (exactly: no deeper key) into env (64-byte buffer); 0 on match. */
int model_parse_env_key(const char *key, char *env);
/* The env document's own alert webhooks: its "alerts"."webhooks" array (borrowed), or NULL
 * when it has none (absent, not an array, or empty). */
json_t *model_env_webhooks(json_t *envdoc);

/* What changed from release prev (NULL: none) to next, as short phrases (new reference). */
json_t *model_release_changes(json_t *prev, json_t *next);

/* Release code directories (DATA/releases/<env>/<app>/code-<hex>), garbage-collected by the
 * API (release_keep in server.yaml). Is name one of them: "code-" and at least one more
 * character, no '/', not "." or ".."? */
bool model_code_dir_name(const char *name);
/* The code directories an app must keep: the "dir" of its newest `keep` releases (by
 * version), of its live "release" and rollout "target" (app document), and of every version
 * in busy[] (releases that still have instances). releases: array of release documents in
 * any order (borrowed). Returns a new object {dir: true}, or NULL when the documents
 * disagree (a referenced version has no release document or no valid "dir") or keep < 1:
 * then nothing may be removed. */
json_t *model_code_dirs_keep(json_t *app, json_t *releases, const int *busy, size_t nbusy, int keep);

/* Set one field of the document at key (value stolen) with compare-and-swap, retried while
 * others write it: 0 (*changed, may be NULL: whether it differed), or -1 with e (ERR_NOTFOUND:
 * no document; ERR_CONFLICT: it kept changing). */
int model_set_field(struct store *s, const char *key, const char *field, json_t *value, bool *changed,
		    struct err *e);

int model_json_int(json_t *obj, const char *field, int dflt);
const char *model_json_str(json_t *obj, const char *field, const char *dflt);
#endif
