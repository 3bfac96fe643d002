/* yaml: the berth.yaml schema (app, env, config, processes with health, profile, volumes,
 * build, an image built from a dockerfile, release phase, cron jobs),
 * walked over the located tree of ytree.c. Strict: unknown keys, wrong types, out-of-range
 * numbers and bad names are errors naming file:line:col, the dotted path and what was
 * expected. Defaults come from mf_process_init. See docs/manifest.md for the format. */
#include "manifest/internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const top_keys[] = {"app", "env", "config", "processes", "build", "build_timeout",
				       "dockerfile", "release", "release_timeout", "cron", NULL};
enum { K_APP, K_ENV, K_CONFIG, K_PROCESSES, K_BUILD, K_BUILD_TIMEOUT, K_DOCKERFILE, K_RELEASE, K_RELEASE_TIMEOUT,
       K_CRON };

static const char *const cron_keys[] = {"schedule", "command", "timeout", "concurrency", "timezone",
					"process", NULL};
enum { C_SCHEDULE, C_COMMAND, C_TIMEOUT, C_CONCURRENCY, C_TIMEZONE, C_PROCESS };

static const char *const proc_keys[] = {"command", "instances", "port", "health", "profile",
					"volumes", "stop_grace", "image", NULL};
enum { P_COMMAND, P_INSTANCES, P_PORT, P_HEALTH, P_PROFILE, P_VOLUMES, P_STOP_GRACE, P_IMAGE };

static const char *const health_keys[] = {"http", "tcp", "exec", "interval", "timeout",
					  "retries", "deadline", "startup", NULL};
enum { H_HTTP, H_TCP, H_EXEC, H_INTERVAL, H_TIMEOUT, H_RETRIES, H_DEADLINE, H_STARTUP };

#define ENV_RULE "[A-Za-z_][A-Za-z0-9_]*, at most 255 characters"

/* Where a health check kind was chosen: its key node, for the port: false error. */
struct health_seen {
	const struct ynode *check;
	bool kind_set;
};

static int parse_health(const struct yctx *c, const struct ynode *v, const char *path,
			struct health_spec *h, struct health_seen *seen)
{
	if (y_is_null(v))
		return 0;
	if (v->type == YN_SCALAR && v->plain && !strcmp(v->str, "none")) {
		h->kind = HEALTH_NONE;
		seen->kind_set = true;
		return 0;
	}
	if (v->type != YN_MAP)
		return y_expected(c, v, path, "a mapping (http:, tcp: or exec:, and timings) or none");
	char sub[384];
	for (size_t i = 0; i < y_map_len(v); i++) {
		int k = y_key_index(c, v, i, path, health_keys);
		if (k < 0)
			return -1;
		const struct ynode *key = v->kids[2 * i], *val = v->kids[2 * i + 1];
		snprintf(sub, sizeof sub, "%s.%s", path, health_keys[k]);
		if ((k == H_HTTP || k == H_TCP || k == H_EXEC) && seen->check)
			return y_fail(c, key, "%s: only one of http, tcp or exec may be given "
				      "(%s is on line %d)", path, seen->check->str, seen->check->line);
		int64_t v64;
		bool b;
		switch (k) {
		case H_HTTP:
			if (y_string(c, val, sub, "a request path starting with '/'", false,
				     &h->path) < 0)
				return -1;
			if (!mf_http_path_valid(h->path))
				return y_expected(c, val, sub, "a request path starting with '/' "
						  "(printable ASCII, no spaces, at most 1024 bytes)");
			h->kind = HEALTH_HTTP;
			break;
		case H_TCP:
			if (y_bool(c, val, sub, &b) < 0)
				return -1;
			if (!b)
				return y_expected(c, val, sub,
						  "true (write \"health: none\" to turn checks off)");
			h->kind = HEALTH_TCP;
			break;
		case H_EXEC:
			if (y_string(c, val, sub, "a non-empty command", false, &h->command) < 0)
				return -1;
			h->kind = HEALTH_EXEC;
			break;
		case H_INTERVAL:
			if (y_duration(c, val, sub, 1, &h->interval_ms) < 0)
				return -1;
			break;
		case H_TIMEOUT:
			if (y_duration(c, val, sub, 1, &h->timeout_ms) < 0)
				return -1;
			break;
		case H_RETRIES:
			if (y_int(c, val, sub, 1, MF_MAX_RETRIES, &v64) < 0)
				return -1;
			h->retries = (int)v64;
			break;
		case H_DEADLINE:
			if (y_duration(c, val, sub, 1, &h->deadline_ms) < 0)
				return -1;
			break;
		case H_STARTUP:
			if (y_duration(c, val, sub, 0, &h->startup_ms) < 0)
				return -1;
			break;
		}
		if (k == H_HTTP || k == H_TCP || k == H_EXEC) {
			seen->check = key;
			seen->kind_set = true;
		}
	}
	return 0;
}

static void add_volume(struct process_spec *p, char *name, char *env)
{
	struct volume_spec *vs = &p->volumes[p->nvolumes++];
	vs->name = name;
	vs->env_var = env ? env : mf_volume_default_env(name);
}

/* A volume name must be new; its env var (from the mapping form) too. */
static int volume_unique(const struct yctx *c, const struct ynode *at, const char *path,
			 const struct process_spec *p, const char *name, const char *env)
{
	for (size_t j = 0; j < p->nvolumes; j++) {
		if (!strcmp(p->volumes[j].name, name))
			return y_fail(c, at, "%s: duplicate volume \"%s\"", path, name);
		if (env && !strcmp(p->volumes[j].env_var, env))
			return y_fail(c, at, "%s: env var \"%s\" is already used by volume \"%s\"",
				      path, env, p->volumes[j].name);
	}
	return 0;
}

static int parse_volumes(const struct yctx *c, const struct ynode *v, const char *path,
			 struct process_spec *p)
{
	if (y_is_null(v))
		return 0;
	if (v->type == YN_SEQ) {
		size_t cap = v->nkids < MF_MAX_VOLUMES ? v->nkids : MF_MAX_VOLUMES;
		p->volumes = xcalloc(cap ? cap : 1, sizeof *p->volumes);
		for (size_t i = 0; i < v->nkids; i++) {
			const struct ynode *it = v->kids[i];
			if (i == MF_MAX_VOLUMES)
				return y_fail(c, it, "%s: too many volumes (at most %d)", path,
					      MF_MAX_VOLUMES);
			char *name;
			if (y_name(c, it, path, "a volume name", &name) < 0)
				return -1;
			if (volume_unique(c, it, path, p, name, NULL) < 0) {
				free(name);
				return -1;
			}
			add_volume(p, name, NULL);
		}
		return 0;
	}
	if (v->type != YN_MAP)
		return y_expected(c, v, path, "a list of volume names or a mapping of volume name "
				  "to env var");
	if (y_check_map(c, v, path, MF_MAX_VOLUMES) < 0)
		return -1;
	p->volumes = xcalloc(y_map_len(v) ? y_map_len(v) : 1, sizeof *p->volumes);
	char sub[384];
	for (size_t i = 0; i < y_map_len(v); i++) {
		const struct ynode *key = v->kids[2 * i], *val = v->kids[2 * i + 1];
		char *name, *env = NULL;
		if (y_name(c, key, path, "a volume name", &name) < 0)
			return -1;
		snprintf(sub, sizeof sub, "%s.%s", path, name);
		int bad = 0;
		if (!y_is_null(val)) {
			bad = y_string(c, val, sub, "an env var name (" ENV_RULE ")", false, &env);
			if (!bad && !mf_env_name_valid(env))
				bad = y_expected(c, val, sub, "an env var name (" ENV_RULE ")");
		}
		if (bad || volume_unique(c, env ? val : key, path, p, name, env) < 0) {
			free(name);
			free(env);
			return -1;
		}
		add_volume(p, name, env);
	}
	return 0;
}

static int parse_process(const struct yctx *c, const struct ynode *keyn, const struct ynode *v,
			 struct process_spec *p)
{
	char path[128], sub[256];
	snprintf(path, sizeof path, "processes.%s", p->name);
	/* Empty (null) is all defaults: the built image's own CMD beside dockerfile: (check_whole
	 * refuses it without one). */
	bool empty = v && y_is_null(v);
	if (!v || (v->type != YN_MAP && !empty))
		return y_expected(c, v ? v : keyn, path, "a mapping with at least command: or image:");
	struct health_seen seen = {NULL, false};
	for (size_t i = 0; !empty && i < y_map_len(v); i++) {
		int k = y_key_index(c, v, i, path, proc_keys);
		if (k < 0)
			return -1;
		const struct ynode *val = v->kids[2 * i + 1];
		snprintf(sub, sizeof sub, "%s.%s", path, proc_keys[k]);
		int64_t v64;
		int r = 0;
		switch (k) {
		case P_COMMAND:
			r = y_string(c, val, sub, "a non-empty command", false, &p->command);
			break;
		case P_INSTANCES:
			r = y_int(c, val, sub, 0, MF_MAX_INSTANCES, &v64);
			if (r == 0)
				p->instances = (int)v64;
			break;
		case P_PORT:
			r = y_bool(c, val, sub, &p->port);
			break;
		case P_HEALTH:
			r = parse_health(c, val, sub, &p->health, &seen);
			break;
		case P_PROFILE:
			r = y_name(c, val, sub, "a profile name", &p->profile);
			break;
		case P_VOLUMES:
			r = parse_volumes(c, val, sub, p);
			break;
		case P_STOP_GRACE:
			r = y_duration(c, val, sub, 0, &p->stop_grace_ms);
			break;
		case P_IMAGE:
			r = y_string(c, val, sub, "an image reference (name[:tag] or name@sha256:...)", false, &p->image);
			if (r == 0 && !manifest_image_ref_valid(p->image))
				r = y_fail(c, val, "%s: \"%s\" is not an image reference (name[:tag] or name@sha256:...)", sub,
					   p->image);
			break;
		}
		if (r < 0)
			return -1;
	}
	if (!seen.kind_set)
		p->health.kind = p->port ? HEALTH_TCP : HEALTH_NONE;
	else if ((p->health.kind == HEALTH_TCP || p->health.kind == HEALTH_HTTP) && !p->port)
		return y_fail(c, seen.check, "%s.health.%s: %s health check needs port: true "
			      "(this process gets no $PORT)", path, seen.check->str,
			      p->health.kind == HEALTH_TCP ? "a TCP" : "an HTTP");
	return 0;
}

static int parse_processes(const struct yctx *c, const struct ynode *v, struct manifest *m)
{
	if (y_check_map(c, v, "processes", MF_MAX_PROCS) < 0)
		return -1;
	if (y_map_len(v) == 0)
		return y_fail(c, v, "processes: expected at least one process");
	m->procs = xcalloc(y_map_len(v), sizeof *m->procs);
	for (size_t i = 0; i < y_map_len(v); i++) {
		const struct ynode *key = v->kids[2 * i];
		char *name;
		if (y_name(c, key, "processes", "a process name", &name) < 0)
			return -1;
		struct process_spec *p = &m->procs[m->nprocs++];
		mf_process_init(p, name);
		free(name);
		if (parse_process(c, key, v->kids[2 * i + 1], p) < 0)
			return -1;
	}
	return 0;
}

static int parse_config(const struct yctx *c, const struct ynode *v, struct manifest *m)
{
	if (y_is_null(v))
		return 0;
	if (y_check_map(c, v, "config", MF_MAX_VARS) < 0)
		return -1;
	m->vars = xcalloc(y_map_len(v) ? y_map_len(v) : 1, sizeof *m->vars);
	char sub[384];
	for (size_t i = 0; i < y_map_len(v); i++) {
		const struct ynode *key = v->kids[2 * i], *val = v->kids[2 * i + 1];
		char *name;
		if (y_string(c, key, "config", "a variable name (" ENV_RULE ")", false, &name) < 0)
			return -1;
		if (!mf_env_name_valid(name)) {
			free(name);
			return y_expected(c, key, "config", "a variable name (" ENV_RULE ")");
		}
		struct env_var *ev = &m->vars[m->nvars++];
		ev->name = name;
		snprintf(sub, sizeof sub, "config.%s", name);
		if (y_string(c, val, sub, "a string value (write \"\" for an empty one)", true,
			     &ev->value) < 0)
			return -1;
	}
	return 0;
}

static int parse_cron_job(const struct yctx *c, const struct ynode *keyn, const struct ynode *v,
			  struct cron_job *j)
{
	char path[128], sub[256];
	snprintf(path, sizeof path, "cron.%s", j->name);
	if (!v || v->type != YN_MAP)
		return y_expected(c, v ? v : keyn, path, "a mapping with schedule: and command:");
	const struct ynode *sched = NULL;
	for (size_t i = 0; i < y_map_len(v); i++) {
		int k = y_key_index(c, v, i, path, cron_keys);
		if (k < 0)
			return -1;
		const struct ynode *val = v->kids[2 * i + 1];
		snprintf(sub, sizeof sub, "%s.%s", path, cron_keys[k]);
		int r = 0;
		char *conc = NULL;
		switch (k) {
		case C_SCHEDULE:
			r = y_string(c, val, sub, "a five-field schedule like \"*/5 * * * *\"", false, &j->schedule);
			sched = val;
			break;
		case C_COMMAND:
			r = y_string(c, val, sub, "a non-empty command", false, &j->command);
			break;
		case C_TIMEOUT:
			r = y_duration(c, val, sub, 1, &j->timeout_ms);
			break;
		case C_CONCURRENCY:
			r = y_string(c, val, sub, "forbid or allow", false, &conc);
			if (r == 0 && strcmp(conc, "forbid") && strcmp(conc, "allow"))
				r = y_expected(c, val, sub, "forbid (a run still going skips the next) or allow");
			if (r == 0)
				j->allow_overlap = !strcmp(conc, "allow");
			free(conc);
			break;
		case C_TIMEZONE:
			r = y_string(c, val, sub, "a time zone name like UTC or Europe/Berlin", false, &j->timezone);
			if (r == 0 && !mf_cron_tz_ok(j->timezone))
				r = y_expected(c, val, sub, "a time zone name this server knows (UTC, Europe/Berlin, "
					       "... from /usr/share/zoneinfo)");
			break;
		case C_PROCESS:
			r = y_name(c, val, sub, "a process name", &j->process);
			break;
		}
		if (r < 0)
			return -1;
	}
	if (!j->schedule)
		return y_fail(c, keyn, "%s: missing required key \"schedule\"", path);
	if (!j->command)
		return y_fail(c, keyn, "%s: missing required key \"command\"", path);
	char msg[200];
	size_t off = 0;
	if (mf_cron_check(j->schedule, msg, sizeof msg, &off) < 0) {
		/* Point at the offending field: a plain or quoted one-line scalar starts at its column
		 * (+1 for the opening quote). */
		struct ynode at = *sched;
		if (at.line > 0)
			at.col += (int)off + (at.plain ? 0 : 1);
		snprintf(sub, sizeof sub, "%s.schedule", path);
		return y_fail(c, &at, "%s: %s", sub, msg);
	}
	return 0;
}

static int parse_cron(const struct yctx *c, const struct ynode *v, struct manifest *m)
{
	if (y_is_null(v))
		return 0;
	if (y_check_map(c, v, "cron", MF_MAX_CRON) < 0)
		return -1;
	m->cron = xcalloc(y_map_len(v) ? y_map_len(v) : 1, sizeof *m->cron);
	for (size_t i = 0; i < y_map_len(v); i++) {
		const struct ynode *key = v->kids[2 * i];
		char *name;
		if (y_name(c, key, "cron", "a job name", &name) < 0)
			return -1;
		struct cron_job *j = &m->cron[m->ncron++];
		j->name = name;
		j->timeout_ms = MF_DEF_CRON_TIMEOUT_MS;
		if (parse_cron_job(c, key, v->kids[2 * i + 1], j) < 0)
			return -1;
	}
	return 0;
}

/* What only the whole file can tell, the keys being in any order: without dockerfile: every
 * process needs a command: or an image:; dockerfile: and build: exclude each other. */
static int check_whole(const struct yctx *c, const struct ynode *procs, const struct ynode *build,
		       const struct ynode *dockerfile, struct manifest *m)
{
	if (build && dockerfile) {
		const struct ynode *later = build->line > dockerfile->line ? build : dockerfile;
		const struct ynode *other = later == build ? dockerfile : build;
		return y_fail(c, later, "%s: cannot be used with %s: (the Dockerfile's RUN steps are the build; "
			      "%s: is on line %d)", later->str, other->str, other->str, other->line);
	}
	for (size_t i = 0; procs && !m->dockerfile && i < m->nprocs; i++) {
		const struct process_spec *p = &m->procs[i];
		if (!p->command && !p->image)
			return y_fail(c, procs->kids[2 * i], "processes.%s: missing required key \"command\" (or "
				      "\"image\", or a top-level dockerfile: to run the image built from it)", p->name);
	}
	return 0;
}

int mf_yaml_parse(const char *fname, const char *data, size_t n, struct manifest *m,
		  struct mf_yaml_seen *seen, struct err *e)
{
	memset(m, 0, sizeof *m);
	memset(seen, 0, sizeof *seen);
	const struct ynode *procs = NULL, *build = NULL, *dockerfile = NULL;
	struct ynode *root;
	if (ytree_parse(fname, data, n, &root, e) < 0)
		return -1;
	struct yctx c = {fname, e};
	int rc = -1;
	m->source = xstrdup("berth.yaml");
	m->build_timeout_ms = MF_DEF_BUILD_TIMEOUT_MS;
	m->release_timeout_ms = MF_DEF_RELEASE_TIMEOUT_MS;
	if (!y_is_null(root)) {
		if (root->type != YN_MAP) {
			y_expected(&c, root, "top level", "a mapping (app:, env:, config:, processes:)");
			goto out;
		}
		for (size_t i = 0; i < y_map_len(root); i++) {
			int k = y_key_index(&c, root, i, NULL, top_keys);
			if (k < 0)
				goto out;
			const struct ynode *val = root->kids[2 * i + 1];
			int r = 0;
			switch (k) {
			case K_APP:
				r = y_name(&c, val, "app", "an app name", &m->app);
				break;
			case K_ENV:
				if (val->type == YN_MAP)
					r = y_fail(&c, val, "env: expected an environment name; default "
						   "config vars go under config:");
				else
					r = y_name(&c, val, "env", "an environment name",
						   &m->env);
				break;
			case K_CONFIG:
				r = parse_config(&c, val, m);
				break;
			case K_PROCESSES:
				r = parse_processes(&c, val, m);
				seen->has_procs = true;
				procs = val;
				break;
			case K_BUILD:
				r = y_string(&c, val, "build", "a build command run in the release directory", false,
					     &m->build);
				build = root->kids[2 * i];
				break;
			case K_DOCKERFILE:
				r = y_string(&c, val, "dockerfile", "a path inside the app directory", false,
					     &m->dockerfile);
				if (r == 0 && !manifest_dockerfile_valid(m->dockerfile))
					r = y_expected(&c, val, "dockerfile", "a relative path inside the app directory "
						       "(no \"..\", \".\" or empty parts, no spaces, at most 1024 bytes)");
				dockerfile = root->kids[2 * i];
				seen->dockerfile_line = val->line;
				seen->dockerfile_col = val->col;
				break;
			case K_BUILD_TIMEOUT:
				r = y_duration(&c, val, "build_timeout", 1000, &m->build_timeout_ms);
				break;
			case K_RELEASE:
				r = y_string(&c, val, "release", "a command run once per release before it rolls out",
					     false, &m->release);
				break;
			case K_RELEASE_TIMEOUT:
				r = y_duration(&c, val, "release_timeout", 1000, &m->release_timeout_ms);
				break;
			case K_CRON:
				r = parse_cron(&c, val, m);
				break;
			}
			if (r < 0)
				goto out;
		}
		if (check_whole(&c, procs, build, dockerfile, m) < 0)
			goto out;
	}
	rc = 0;
out:
	ynode_free(root);
	if (rc < 0)
		manifest_free(m);
	return rc;
}
