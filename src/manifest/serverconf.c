/* serverconf: the operator's server.yaml (resource profiles, upload and log limits, how many
 * releases keep their code, alerts, the HTTP router's settings, insecure registries) on top
 * of built-in defaults, and parse_size for the "512M"-style sizes it and the CLI use.
 * A profile written in the file replaces the built-in of the same name as a whole (fields it
 * leaves out mean "no limit", cpu_weight 100); new names are added. router.error_pages is
 * checked against the file system when the file is read (it must be an existing directory).
 * Errors: file:line:col. */
#include "manifest/internal.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "util/fsutil.h"

#define MIB (1024LL * 1024)
#define MAX_PIDS 4194304       /* the kernel's PID_MAX_LIMIT */

static const struct profile builtin_profiles[] = {
	{"small", 0.5, 50, 256 * MIB, 256},
	{"medium", 1.0, 100, 512 * MIB, 512},
	{"large", 2.0, 100, 2048 * MIB, 2048},
};

static const char *const top_keys[] = {"profiles", "upload_limit", "log_rotate", "log_keep",
				       "release_keep", "alerts", "router", "builds", "registries", "images", NULL};
enum { S_PROFILES, S_UPLOAD_LIMIT, S_LOG_ROTATE, S_LOG_KEEP, S_RELEASE_KEEP, S_ALERTS, S_ROUTER, S_BUILDS,
       S_REGISTRIES, S_IMAGES };

static const char *const builds_keys[] = {"profile", "output_limit", "env", "pip_find_links", "pip_index_url",
					  "npm_registry", NULL};
enum { B_PROFILE, B_OUTPUT_LIMIT, B_ENV, B_PIP_FIND_LINKS, B_PIP_INDEX_URL, B_NPM_REGISTRY };

static const char *const router_keys[] = {"error_pages", "threads", "timeouts", "pool_max_idle",
					  "max_body", "forwarded_proto", NULL};
enum { R_ERROR_PAGES, R_THREADS, R_TIMEOUTS, R_POOL_MAX_IDLE, R_MAX_BODY, R_FORWARDED_PROTO };
static const char *const timeout_keys[] = {"connect", "header", "idle", "response", "body",
					   "upstream_idle", "tunnel_idle", NULL};

#define MAX_ROUTER_THREADS 64
#define MAX_POOL_IDLE 4096
#define MAX_DIR_BYTES 4096
#define MAX_RELEASE_KEEP 1000

static const char *const alert_keys[] = {"name", "webhooks", "rate_limit", "envs", NULL};
enum { A_NAME, A_WEBHOOKS, A_RATE_LIMIT, A_ENVS };
static const char *const alert_env_keys[] = {"webhooks", NULL};

#define MAX_WEBHOOKS 16

static const char *const profile_keys[] = {"cpus", "memory", "pids", "cpu_weight", NULL};
enum { F_CPUS, F_MEMORY, F_PIDS, F_CPU_WEIGHT };

int parse_size(const char *s, int64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	const char *p = s;
	uint64_t ip = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (ip > ((uint64_t)INT64_MAX - d) / 10)
			return -1;
		ip = ip * 10 + d;
	}
	/* Up to six fraction digits are kept: frac < 2^20, so frac * (1 << 40) fits. */
	uint64_t frac = 0, fscale = 1;
	bool has_frac = false;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (fscale < 1000000) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				fscale *= 10;
			}
		}
		has_frac = true;
	}
	const char *sp = p;
	while (*p == ' ')
		p++;
	if (p != sp && !*p)
		return -1;             /* trailing spaces */
	uint64_t mul = 1;
	switch (*p) {
	case 0: break;
	case 'b': case 'B': p++; break;
	case 'k': case 'K': mul = 1ULL << 10; break;
	case 'm': case 'M': mul = 1ULL << 20; break;
	case 'g': case 'G': mul = 1ULL << 30; break;
	case 't': case 'T': mul = 1ULL << 40; break;
	default: return -1;
	}
	if (mul > 1) {
		p++;
		if (*p == 'i') {
			p++;
			if (*p != 'B' && *p != 'b')
				return -1;
			p++;
		} else if (*p == 'B' || *p == 'b') {
			p++;
		}
	}
	if (*p || (mul == 1 && has_frac))
		return -1;
	if (ip > (uint64_t)INT64_MAX / mul)
		return -1;
	uint64_t v = ip * mul + frac * mul / fscale;
	if (v > (uint64_t)INT64_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

void server_conf_free(struct server_conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nprofiles; i++)
		free(c->profiles[i].name);
	free(c->profiles);
	free(c->alert_name);
	for (size_t i = 0; i < c->nalert_webhooks; i++)
		free(c->alert_webhooks[i]);
	free(c->alert_webhooks);
	for (size_t i = 0; i < c->nalert_envs; i++) {
		free(c->alert_envs[i].env);
		for (size_t j = 0; j < c->alert_envs[i].nwebhooks; j++)
			free(c->alert_envs[i].webhooks[j]);
		free(c->alert_envs[i].webhooks);
	}
	free(c->alert_envs);
	free(c->router.error_pages);
	free(c->router.forwarded_proto);
	free(c->builds.profile);
	for (size_t i = 0; i < c->builds.nenv; i++)
		free(c->builds.env[i]);
	free(c->builds.env);
	for (size_t i = 0; i < c->nregistry_insecure; i++)
		free(c->registry_insecure[i]);
	free(c->registry_insecure);
	memset(c, 0, sizeof *c);
}

const struct profile *server_conf_profile(const struct server_conf *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->nprofiles; i++)
		if (!strcmp(c->profiles[i].name, name))
			return &c->profiles[i];
	return NULL;
}

static void set_defaults(struct server_conf *c)
{
	size_t n = sizeof builtin_profiles / sizeof builtin_profiles[0];
	c->profiles = xcalloc(n, sizeof *c->profiles);
	for (size_t i = 0; i < n; i++) {
		c->profiles[i] = builtin_profiles[i];
		c->profiles[i].name = xstrdup(builtin_profiles[i].name);
	}
	c->nprofiles = n;
	c->upload_limit_bytes = 256 * MIB;
	c->log_rotate_bytes = 10 * MIB;
	c->log_keep = 5;
	c->release_keep = 10;
	c->image_gc = true;
	c->builds.output_limit = 64LL << 20;
	c->alert_rate_limit_ms = 60000;
}

static int parse_profile(const struct yctx *yc, const struct ynode *v, const char *path,
			 struct profile *p)
{
	if (!v || v->type != YN_MAP)
		return y_expected(yc, v, path, "a mapping of cpus, memory, pids, cpu_weight");
	char sub[384];
	for (size_t i = 0; i < y_map_len(v); i++) {
		int k = y_key_index(yc, v, i, path, profile_keys);
		if (k < 0)
			return -1;
		const struct ynode *val = v->kids[2 * i + 1];
		snprintf(sub, sizeof sub, "%s.%s", path, profile_keys[k]);
		int64_t n;
		int r = 0;
		switch (k) {
		case F_CPUS:
			r = y_number(yc, val, sub, 0, MF_MAX_CPUS, &p->cpus);
			break;
		case F_MEMORY:
			r = y_size(yc, val, sub, &p->memory_bytes);
			break;
		case F_PIDS:
			r = y_int(yc, val, sub, 0, MAX_PIDS, &p->pids);
			break;
		case F_CPU_WEIGHT:
			r = y_int(yc, val, sub, 1, 10000, &n);
			if (r == 0)
				p->cpu_weight = (int)n;
			break;
		}
		if (r < 0)
			return -1;
	}
	return 0;
}

static int parse_profiles(const struct yctx *yc, const struct ynode *v, struct server_conf *c)
{
	if (y_is_null(v))
		return 0;
	if (y_check_map(yc, v, "profiles", MF_MAX_PROFILES) < 0)
		return -1;
	c->profiles = xrealloc(c->profiles, (c->nprofiles + y_map_len(v)) * sizeof *c->profiles);
	char path[128];
	for (size_t i = 0; i < y_map_len(v); i++) {
		char *name;
		if (y_name(yc, v->kids[2 * i], "profiles", "a profile name", &name) < 0)
			return -1;
		snprintf(path, sizeof path, "profiles.%s", name);
		struct profile np = {name, 0, 100, 0, 0};
		if (parse_profile(yc, v->kids[2 * i + 1], path, &np) < 0) {
			free(name);
			return -1;
		}
		struct profile *old = (struct profile *)server_conf_profile(c, name);
		if (old) {
			free(old->name);
			*old = np;
		} else {
			c->profiles[c->nprofiles++] = np;
		}
	}
	return 0;
}

static int positive_size(const struct yctx *yc, const struct ynode *v, const char *path,
			 int64_t *out)
{
	int64_t n;
	if (y_size(yc, v, path, &n) < 0)
		return -1;
	if (n <= 0)
		return y_expected(yc, v, path, "a size greater than 0");
	*out = n;
	return 0;
}

/* webhooks: [URL, ...]: http(s) URLs only. */
static int parse_webhooks(const struct yctx *yc, const struct ynode *v, const char *path, char ***out,
			  size_t *n)
{
	if (v->type != YN_SEQ || v->nkids > MAX_WEBHOOKS)
		return y_expected(yc, v, path, "a list of at most 16 webhook URLs");
	for (size_t i = 0; i < v->nkids; i++) {
		char *url;
		if (y_string(yc, v->kids[i], path, "a webhook URL", false, &url) < 0)
			return -1;
		/* The value is never echoed: a webhook URL's path is a bearer secret (Slack). */
		const char *rest = !strncmp(url, "http://", 7) ? url + 7 : !strncmp(url, "https://", 8) ? url + 8 : NULL;
		bool bad = !rest || !*rest || *rest == '/' || *rest == '?' || *rest == '#';
		for (const char *p = url; !bad && *p; p++)
			bad = (unsigned char)*p <= 0x20 || *p == 0x7f;
		if (bad) {
			free(url);
			return y_fail(yc, v->kids[i], "%s: expected an http:// or https:// URL with a host (the "
				      "value is not shown: webhook URLs are secrets)", path);
		}
		*out = xrealloc(*out, (*n + 1) * sizeof **out);
		(*out)[(*n)++] = url;
	}
	return 0;
}

static int parse_alerts(const struct yctx *yc, const struct ynode *v, struct server_conf *c)
{
	if (v->type != YN_MAP)
		return y_expected(yc, v, "alerts", "a mapping (name:, webhooks:, rate_limit:, envs:)");
	for (size_t i = 0; i < y_map_len(v); i++) {
		int k = y_key_index(yc, v, i, "alerts", alert_keys);
		if (k < 0)
			return -1;
		const struct ynode *val = v->kids[2 * i + 1];
		int r = 0;
		switch (k) {
		case A_NAME:
			free(c->alert_name);
			c->alert_name = NULL;
			r = y_string(yc, val, "alerts.name", "a server name", false, &c->alert_name);
			break;
		case A_WEBHOOKS:
			r = parse_webhooks(yc, val, "alerts.webhooks", &c->alert_webhooks, &c->nalert_webhooks);
			break;
		case A_RATE_LIMIT:
			r = y_duration(yc, val, "alerts.rate_limit", 0, &c->alert_rate_limit_ms);
			break;
		case A_ENVS:
			if (y_check_map(yc, val, "alerts.envs", 256) < 0)
				return -1;
			for (size_t j = 0; j < y_map_len(val) && r == 0; j++) {
				char *env;
				if (y_name(yc, val->kids[2 * j], "alerts.envs", "an env name", &env) < 0)
					return -1;
				c->alert_envs = xrealloc(c->alert_envs, (c->nalert_envs + 1) * sizeof *c->alert_envs);
				struct alert_env *ae = &c->alert_envs[c->nalert_envs++];
				memset(ae, 0, sizeof *ae);
				ae->env = env;
				const struct ynode *ev = val->kids[2 * j + 1];
				char path[128];
				snprintf(path, sizeof path, "alerts.envs.%s", env);
				if (ev->type != YN_MAP)
					return y_expected(yc, ev, path, "a mapping (webhooks:)");
				for (size_t q = 0; q < y_map_len(ev) && r == 0; q++) {
					if (y_key_index(yc, ev, q, path, alert_env_keys) < 0)
						return -1;
					r = parse_webhooks(yc, ev->kids[2 * q + 1], path, &ae->webhooks, &ae->nwebhooks);
				}
			}
			break;
		}
		if (r < 0)
			return -1;
	}
	return 0;
}

/* router.error_pages: an absolute path (no NUL, at most 4096 bytes, no ".." component) of a
 * directory that exists now; kept without trailing '/'. */
static int parse_error_pages(const struct yctx *yc, const struct ynode *v, const char *path,
			     char **out)
{
	static const char what[] = "an absolute path of a directory (404.html, 502.html, 503.html, "
				   "504.html)";
	char *dir;
	if (y_string(yc, v, path, what, false, &dir) < 0)    /* null, NUL bytes, not a scalar */
		return -1;
	int r = 0;
	if (v->len > MAX_DIR_BYTES || dir[0] != '/')
		r = y_expected(yc, v, path, what);
	for (const char *p = dir; r == 0 && (p = strstr(p, "..")); p += 2)
		if (p[-1] == '/' && (p[2] == '/' || !p[2]))   /* p > dir: dir[0] is '/' */
			r = y_expected(yc, v, path, "a path without \"..\" components");
	struct buf q = BUF_INIT;
	mf_quote(&q, v->str, v->len);
	struct stat st;
	if (r == 0 && stat(dir, &st) < 0)
		r = errno == ENOENT || errno == ENOTDIR
			    ? y_fail(yc, v, "%s: %s does not exist", path, buf_str(&q))
			    : y_fail(yc, v, "%s: %s: %s", path, buf_str(&q), strerror(errno));
	else if (r == 0 && !S_ISDIR(st.st_mode))
		r = y_fail(yc, v, "%s: %s is not a directory", path, buf_str(&q));
	else if (r == 0 && access(dir, R_OK | X_OK) < 0)
		r = y_fail(yc, v, "%s: %s cannot be read by the server: %s", path, buf_str(&q),
			   strerror(errno));
	buf_free(&q);
	if (r < 0) {
		free(dir);
		return -1;
	}
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = 0;
	free(*out);
	*out = dir;
	return 0;
}

static int parse_timeouts(const struct yctx *yc, const struct ynode *v, struct server_router_conf *rc)
{
	if (y_is_null(v))
		return 0;
	if (v->type != YN_MAP)
		return y_expected(yc, v, "router.timeouts", "a mapping of connect, header, idle, "
				  "response, body, upstream_idle, tunnel_idle");
	int64_t *slot[] = {&rc->connect_ms, &rc->header_ms, &rc->idle_ms, &rc->response_ms,
			   &rc->body_ms, &rc->upstream_idle_ms, &rc->tunnel_idle_ms};
	char sub[64];
	for (size_t i = 0; i < y_map_len(v); i++) {
		int k = y_key_index(yc, v, i, "router.timeouts", timeout_keys);
		if (k < 0)
			return -1;
		snprintf(sub, sizeof sub, "router.timeouts.%s", timeout_keys[k]);
		if (y_duration(yc, v->kids[2 * i + 1], sub, 1, slot[k]) < 0)
			return -1;
	}
	return 0;
}

static int parse_router(const struct yctx *yc, const struct ynode *v, struct server_router_conf *rc)
{
	if (y_is_null(v))
		return 0;
	if (v->type != YN_MAP)
		return y_expected(yc, v, "router", "a mapping (error_pages:, threads:, timeouts:, "
				  "pool_max_idle:, max_body:, forwarded_proto:)");
	for (size_t i = 0; i < y_map_len(v); i++) {
		int k = y_key_index(yc, v, i, "router", router_keys);
		if (k < 0)
			return -1;
		const struct ynode *val = v->kids[2 * i + 1];
		int64_t n;
		int r = 0;
		char *s;
		switch (k) {
		case R_ERROR_PAGES:
			r = parse_error_pages(yc, val, "router.error_pages", &rc->error_pages);
			break;
		case R_THREADS:
			r = y_int(yc, val, "router.threads", 1, MAX_ROUTER_THREADS, &n);
			if (r == 0)
				rc->threads = (int)n;
			break;
		case R_TIMEOUTS:
			r = parse_timeouts(yc, val, rc);
			break;
		case R_POOL_MAX_IDLE:
			r = y_int(yc, val, "router.pool_max_idle", 1, MAX_POOL_IDLE, &n);
			if (r == 0)
				rc->pool_max_idle = (int)n;
			break;
		case R_MAX_BODY:
			r = positive_size(yc, val, "router.max_body", &rc->max_body);
			break;
		case R_FORWARDED_PROTO:
			if (y_string(yc, val, "router.forwarded_proto", "http or https", false, &s) < 0)
				return -1;
			if (strcmp(s, "http") && strcmp(s, "https")) {
				free(s);
				return y_expected(yc, val, "router.forwarded_proto", "http or https");
			}
			free(rc->forwarded_proto);
			rc->forwarded_proto = s;
			break;
		}
		if (r < 0)
			return -1;
	}
	return 0;
}

static void build_env_put(struct server_build_conf *b, const char *k, const char *v)
{
	b->env = xrealloc(b->env, (b->nenv + 2) * sizeof *b->env);
	b->env[b->nenv++] = xasprintf("%s=%s", k, v);
	b->env[b->nenv] = NULL;
}

static int parse_builds(const struct yctx *yc, const struct ynode *v, struct server_build_conf *b)
{
	if (y_is_null(v))
		return 0;
	if (v->type != YN_MAP)
		return y_expected(yc, v, "builds", "a mapping (profile:, output_limit:, env:, pip_find_links:, "
				  "pip_index_url:, npm_registry:)");
	char sub[300];
	for (size_t i = 0; i < y_map_len(v); i++) {
		int k = y_key_index(yc, v, i, "builds", builds_keys);
		if (k < 0)
			return -1;
		const struct ynode *val = v->kids[2 * i + 1];
		snprintf(sub, sizeof sub, "builds.%s", builds_keys[k]);
		char *str = NULL;
		int r = 0;
		switch (k) {
		case B_PROFILE:
			free(b->profile);
			b->profile = NULL;
			r = y_name(yc, val, sub, "a profile name, or none", &b->profile);
			break;
		case B_OUTPUT_LIMIT:
			r = positive_size(yc, val, sub, &b->output_limit);
			break;
		case B_ENV:
			if (y_check_map(yc, val, sub, MF_MAX_VARS) < 0)
				return -1;
			for (size_t j = 0; j < y_map_len(val); j++) {
				char *key = NULL, *value = NULL;
				if (y_string(yc, val->kids[2 * j], sub, "a variable name", false, &key) < 0)
					return -1;
				if (!mf_env_name_valid(key)) {
					free(key);
					return y_expected(yc, val->kids[2 * j], sub, "a variable name ([A-Za-z_][A-Za-z0-9_]*)");
				}
				if (y_string(yc, val->kids[2 * j + 1], sub, "a string value", true, &value) < 0) {
					free(key);
					return -1;
				}
				build_env_put(b, key, value);
				free(key);
				free(value);
			}
			break;
		case B_PIP_FIND_LINKS:
		case B_PIP_INDEX_URL:
		case B_NPM_REGISTRY:
			r = y_string(yc, val, sub, "a URL or a directory", false, &str);
			if (r == 0)
				build_env_put(b, k == B_PIP_FIND_LINKS ? "PIP_FIND_LINKS" : k == B_PIP_INDEX_URL ? "PIP_INDEX_URL"
													: "npm_config_registry", str);
			free(str);
			break;
		}
		if (r < 0)
			return -1;
	}
	if (b->profile && !strcmp(b->profile, "none")) {
		free(b->profile);
		b->profile = xstrdup("");
	}
	return 0;
}

/* registries: {insecure: [HOST[:PORT], ...]}: at most 64 hosts of letters, digits, '.', '-',
 * ':' and brackets (the full check of a host is the registry module's; a host that is not
 * valid simply never matches), kept lower-cased. */
static int parse_registries(const struct yctx *yc, const struct ynode *v, struct server_conf *c)
{
	static const char *const keys[] = {"insecure", NULL};
	static const char what[] = "a list of registry hosts (reg.lan:5000)";
	if (y_is_null(v))
		return 0;
	if (v->type != YN_MAP)
		return y_expected(yc, v, "registries", "a mapping (insecure:)");
	for (size_t i = 0; i < y_map_len(v); i++) {
		if (y_key_index(yc, v, i, "registries", keys) < 0)
			return -1;
		const struct ynode *list = v->kids[2 * i + 1];
		if (y_is_null(list))
			continue;
		if (list->type != YN_SEQ || list->nkids > 64)
			return y_expected(yc, list, "registries.insecure", "a list of at most 64 registry hosts");
		for (size_t j = 0; j < list->nkids; j++) {
			char *h;
			if (y_string(yc, list->kids[j], "registries.insecure", what, false, &h) < 0)
				return -1;
			bool bad = strlen(h) > 261;
			for (char *p = h; !bad && *p; p++) {
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
				bad = !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
					strchr(".-:[]", *p));
			}
			if (bad) {
				free(h);
				return y_expected(yc, list->kids[j], "registries.insecure", what);
			}
			c->registry_insecure = xrealloc(c->registry_insecure,
							(c->nregistry_insecure + 1) * sizeof *c->registry_insecure);
			c->registry_insecure[c->nregistry_insecure++] = h;
		}
	}
	return 0;
}

/* images: {gc: BOOL}: remove the images no kept release pins (default true). */
static int parse_images(const struct yctx *yc, const struct ynode *v, struct server_conf *c)
{
	static const char *const keys[] = {"gc", NULL};
	if (y_is_null(v))
		return 0;
	if (v->type != YN_MAP)
		return y_expected(yc, v, "images", "a mapping (gc:)");
	for (size_t i = 0; i < y_map_len(v); i++) {
		if (y_key_index(yc, v, i, "images", keys) < 0)
			return -1;
		if (y_bool(yc, v->kids[2 * i + 1], "images.gc", &c->image_gc) < 0)
			return -1;
	}
	return 0;
}

static int parse_conf(const char *fname, const char *data, size_t n, struct server_conf *c,
		      struct err *e)
{
	struct ynode *root;
	if (ytree_parse(fname, data, n, &root, e) < 0)
		return -1;
	struct yctx yc = {fname, e};
	int rc = -1;
	if (!y_is_null(root)) {
		if (root->type != YN_MAP) {
			y_expected(&yc, root, "top level", "a mapping (profiles:, upload_limit:, "
				   "log_rotate:, log_keep:, release_keep:, alerts:, router:, builds:, "
				   "registries:, images:)");
			goto out;
		}
		for (size_t i = 0; i < y_map_len(root); i++) {
			int k = y_key_index(&yc, root, i, NULL, top_keys);
			if (k < 0)
				goto out;
			const struct ynode *val = root->kids[2 * i + 1];
			int64_t v;
			int r = 0;
			switch (k) {
			case S_PROFILES:
				r = parse_profiles(&yc, val, c);
				break;
			case S_UPLOAD_LIMIT:
				r = positive_size(&yc, val, "upload_limit", &c->upload_limit_bytes);
				break;
			case S_LOG_ROTATE:
				r = positive_size(&yc, val, "log_rotate", &c->log_rotate_bytes);
				break;
			case S_ALERTS:
				r = parse_alerts(&yc, val, c);
				break;
			case S_ROUTER:
				r = parse_router(&yc, val, &c->router);
				break;
			case S_BUILDS:
				r = parse_builds(&yc, val, &c->builds);
				break;
			case S_REGISTRIES:
				r = parse_registries(&yc, val, c);
				break;
			case S_IMAGES:
				r = parse_images(&yc, val, c);
				break;
			case S_LOG_KEEP:
				r = y_int(&yc, val, "log_keep", 0, MF_MAX_LOG_KEEP, &v);
				if (r == 0)
					c->log_keep = (int)v;
				break;
			case S_RELEASE_KEEP:
				r = y_int(&yc, val, "release_keep", 1, MAX_RELEASE_KEEP, &v);
				if (r == 0)
					c->release_keep = (int)v;
				break;
			}
			if (r < 0)
				goto out;
		}
	}
	rc = 0;
out:
	ynode_free(root);
	return rc;
}

int server_conf_load(const char *path, struct server_conf *c, struct err *e)
{
	memset(c, 0, sizeof *c);
	set_defaults(c);
	if (!path)
		return 0;
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		server_conf_free(c);
		return err_errno(e, errno, "stat %s", path);
	}
	struct buf b = BUF_INIT;
	int rc = fs_read_file(path, &b, MF_MAX_FILE_BYTES, e);
	if (rc == 0)
		rc = parse_conf(path, buf_str(&b), b.len, c, e);
	buf_free(&b);
	if (rc < 0)
		server_conf_free(c);
	return rc;
}
