/* json: a manifest as JSON, the form a release keeps in the store (with the dockerfile an
 * image was built from, so a release says how it was built). Every field round-trips
 * (durations as integer milliseconds). manifest_from_json reads data that crossed a process
 * boundary, so it validates like the YAML parser: types, ranges, names, uniqueness. Missing
 * optional fields take their defaults; unknown fields are ignored (newer writers may add). */
#include "manifest/internal.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *manifest_to_json(const struct manifest *m)
{
	json_t *j = json_object();
	json_object_set_new(j, "source", json_string(m->source ? m->source : "berth.yaml"));
	if (m->app)
		json_object_set_new(j, "app", json_string(m->app));
	if (m->env)
		json_object_set_new(j, "env", json_string(m->env));
	json_t *cfg = json_object();
	for (size_t i = 0; i < m->nvars; i++)
		json_object_set_new(cfg, m->vars[i].name, json_string(m->vars[i].value));
	json_object_set_new(j, "config", cfg);
	json_t *procs = json_array();
	for (size_t i = 0; i < m->nprocs; i++) {
		const struct process_spec *p = &m->procs[i];
		const struct health_spec *h = &p->health;
		json_t *hj = json_pack("{s:s, s:I, s:I, s:i, s:I, s:I}",
				       "kind", mf_health_kind_name(h->kind),
				       "interval_ms", (json_int_t)h->interval_ms,
				       "timeout_ms", (json_int_t)h->timeout_ms,
				       "retries", h->retries,
				       "deadline_ms", (json_int_t)h->deadline_ms,
				       "startup_ms", (json_int_t)h->startup_ms);
		if (h->kind == HEALTH_HTTP && h->path)
			json_object_set_new(hj, "path", json_string(h->path));
		if (h->kind == HEALTH_EXEC && h->command)
			json_object_set_new(hj, "command", json_string(h->command));
		json_t *vols = json_array();
		for (size_t v = 0; v < p->nvolumes; v++)
			json_array_append_new(vols, json_pack("{s:s?, s:s?}", "name", p->volumes[v].name,
							      "env_var", p->volumes[v].env_var));
		json_t *pj = json_pack("{s:s?, s:s?, s:i, s:b, s:o, s:o, s:I}",
				       "name", p->name, "command", p->command,
				       "instances", p->instances, "port", p->port, "health", hj,
				       "volumes", vols, "stop_grace_ms", (json_int_t)p->stop_grace_ms);
		if (p->profile)
			json_object_set_new(pj, "profile", json_string(p->profile));
		if (p->image)
			json_object_set_new(pj, "image", json_string(p->image));
		json_array_append_new(procs, pj);
	}
	json_object_set_new(j, "processes", procs);
	if (m->build)
		json_object_set_new(j, "build", json_string(m->build));
	if (m->build_timeout_ms)
		json_object_set_new(j, "build_timeout_ms", json_integer(m->build_timeout_ms));
	if (m->dockerfile)
		json_object_set_new(j, "dockerfile", json_string(m->dockerfile));
	if (m->release)
		json_object_set_new(j, "release", json_string(m->release));
	if (m->release_timeout_ms)
		json_object_set_new(j, "release_timeout_ms", json_integer(m->release_timeout_ms));
	if (m->ncron) {
		json_t *cron = json_array();
		for (size_t i = 0; i < m->ncron; i++) {
			const struct cron_job *cj = &m->cron[i];
			json_array_append_new(cron, json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:I, s:s}", "name", cj->name,
							      "schedule", cj->schedule, "command", cj->command,
							      "timezone", cj->timezone, "process", cj->process,
							      "timeout_ms", (json_int_t)cj->timeout_ms, "concurrency",
							      cj->allow_overlap ? "allow" : "forbid"));
		}
		json_object_set_new(j, "cron", cron);
	}
	return j;
}

static int jfail(struct err *e, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The build, release and cron fields (all optional). */
static int extras_from_json(json_t *j, struct manifest *m, struct err *e)
{
	json_t *v;
	if ((v = json_object_get(j, "build")) && json_is_string(v))
		m->build = xstrdup(json_string_value(v));
	if ((v = json_object_get(j, "release")) && json_is_string(v))
		m->release = xstrdup(json_string_value(v));
	if ((v = json_object_get(j, "build_timeout_ms")) && json_is_integer(v) && json_integer_value(v) > 0)
		m->build_timeout_ms = json_integer_value(v);
	if ((v = json_object_get(j, "release_timeout_ms")) && json_is_integer(v) && json_integer_value(v) > 0)
		m->release_timeout_ms = json_integer_value(v);
	json_t *cron = json_object_get(j, "cron");
	if (!cron)
		return 0;
	if (!json_is_array(cron) || json_array_size(cron) > MF_MAX_CRON)
		return jfail(e, "cron", "expected an array of at most %d jobs", MF_MAX_CRON);
	m->cron = xcalloc(json_array_size(cron) ? json_array_size(cron) : 1, sizeof *m->cron);
	size_t i;
	json_array_foreach(cron, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *sched = json_string_value(json_object_get(v, "schedule"));
		const char *cmd = json_string_value(json_object_get(v, "command"));
		if (!name || !name_valid(name) || !sched || !cmd || !*cmd)
			return jfail(e, "cron", "job %zu needs a valid name, schedule and command", i);
		char msg[200];
		size_t off;
		if (mf_cron_check(sched, msg, sizeof msg, &off) < 0)
			return jfail(e, "cron", "job %s: %s", name, msg);
		struct cron_job *cj = &m->cron[m->ncron++];
		cj->name = xstrdup(name);
		cj->schedule = xstrdup(sched);
		cj->command = xstrdup(cmd);
		const char *tz = json_string_value(json_object_get(v, "timezone"));
		const char *proc = json_string_value(json_object_get(v, "process"));
		cj->timezone = tz ? xstrdup(tz) : NULL;
		cj->process = proc ? xstrdup(proc) : NULL;
		json_t *t = json_object_get(v, "timeout_ms");
		cj->timeout_ms = json_is_integer(t) && json_integer_value(t) > 0 ? json_integer_value(t)
										  : MF_DEF_CRON_TIMEOUT_MS;
		cj->allow_overlap = !strcmp((json_string_value(json_object_get(v, "concurrency")) ? json_string_value(json_object_get(v, "concurrency")) : ""), "allow");
	}
	return 0;
}

static int jfail(struct err *e, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int jfail(struct err *e, const char *path, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "manifest JSON: %s: ", path);
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	err_set(e, ERR_INVALID, "%s", buf_str(&b));
	buf_free(&b);
	return -1;
}

/* o[key] as a string: 1 found (*out owned by caller), 0 missing or null, -1 error. */
static int jstr(json_t *o, const char *key, const char *path, bool allow_empty, char **out,
		struct err *e)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
	    (!allow_empty && json_string_length(v) == 0))
		return jfail(e, path, "expected a %sstring without NUL bytes",
			     allow_empty ? "" : "non-empty ");
	*out = xstrdup(json_string_value(v));
	return 1;
}

static int jname(json_t *o, const char *key, const char *path, char **out, struct err *e)
{
	int r = jstr(o, key, path, false, out, e);
	if (r == 1 && !name_valid(*out)) {
		free(*out);
		*out = NULL;
		return jfail(e, path, "expected a name ([a-z0-9][a-z0-9-]*, at most 63 characters)");
	}
	return r;
}

/* o[key] as an integer in [min, max]; *out unchanged when missing. */
static int jint(json_t *o, const char *key, const char *path, int64_t min, int64_t max,
		int64_t *out, struct err *e)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return jfail(e, path, "expected an integer from %lld to %lld", (long long)min,
			     (long long)max);
	*out = json_integer_value(v);
	return 1;
}

static int jbool(json_t *o, const char *key, const char *path, bool *out, struct err *e)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return jfail(e, path, "expected true or false");
	*out = json_is_true(v);
	return 1;
}

static int health_from_json(json_t *hj, const char *path, struct process_spec *p, struct err *e)
{
	struct health_spec *h = &p->health;
	h->kind = p->port ? HEALTH_TCP : HEALTH_NONE;
	if (!hj || json_is_null(hj))
		return 0;
	if (!json_is_object(hj))
		return jfail(e, path, "expected an object");
	char sub[384];
	char *kind = NULL;
	snprintf(sub, sizeof sub, "%s.kind", path);
	if (jstr(hj, "kind", sub, false, &kind, e) < 0)
		return -1;
	if (kind) {
		static const enum health_kind kinds[] = {HEALTH_NONE, HEALTH_HTTP, HEALTH_TCP,
							 HEALTH_EXEC};
		bool found = false;
		for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
			if (!strcmp(kind, mf_health_kind_name(kinds[i]))) {
				h->kind = kinds[i];
				found = true;
			}
		}
		free(kind);
		if (!found)
			return jfail(e, sub, "expected one of none, http, tcp, exec");
	}
	if ((h->kind == HEALTH_HTTP || h->kind == HEALTH_TCP) && !p->port)
		return jfail(e, sub, "%s health check needs port: true",
			     h->kind == HEALTH_TCP ? "a TCP" : "an HTTP");
	if (h->kind == HEALTH_HTTP) {
		snprintf(sub, sizeof sub, "%s.path", path);
		if (jstr(hj, "path", sub, false, &h->path, e) < 0)
			return -1;
		if (!mf_http_path_valid(h->path))
			return jfail(e, sub, "expected a request path starting with '/'");
	}
	if (h->kind == HEALTH_EXEC) {
		snprintf(sub, sizeof sub, "%s.command", path);
		if (jstr(hj, "command", sub, false, &h->command, e) < 0)
			return -1;
		if (!h->command)
			return jfail(e, sub, "expected a non-empty command");
	}
	static const struct {
		const char *key;
		int64_t min;
		size_t off;
	} durs[] = {
		{"interval_ms", 1, offsetof(struct health_spec, interval_ms)},
		{"timeout_ms", 1, offsetof(struct health_spec, timeout_ms)},
		{"deadline_ms", 1, offsetof(struct health_spec, deadline_ms)},
		{"startup_ms", 0, offsetof(struct health_spec, startup_ms)},
	};
	for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++) {
		snprintf(sub, sizeof sub, "%s.%s", path, durs[i].key);
		if (jint(hj, durs[i].key, sub, durs[i].min, MF_MAX_DURATION_MS,
			 (int64_t *)((char *)h + durs[i].off), e) < 0)
			return -1;
	}
	int64_t retries = h->retries;
	snprintf(sub, sizeof sub, "%s.retries", path);
	if (jint(hj, "retries", sub, 1, MF_MAX_RETRIES, &retries, e) < 0)
		return -1;
	h->retries = (int)retries;
	return 0;
}

static int volumes_from_json(json_t *vj, const char *path, struct process_spec *p, struct err *e)
{
	if (!vj || json_is_null(vj))
		return 0;
	if (!json_is_array(vj) || json_array_size(vj) > MF_MAX_VOLUMES)
		return jfail(e, path, "expected an array of at most %d volumes", MF_MAX_VOLUMES);
	p->volumes = xcalloc(json_array_size(vj) ? json_array_size(vj) : 1, sizeof *p->volumes);
	char sub[384];
	for (size_t i = 0; i < json_array_size(vj); i++) {
		json_t *o = json_array_get(vj, i);
		snprintf(sub, sizeof sub, "%s[%zu]", path, i);
		if (!json_is_object(o))
			return jfail(e, sub, "expected an object");
		struct volume_spec *vs = &p->volumes[p->nvolumes++];
		snprintf(sub, sizeof sub, "%s[%zu].name", path, i);
		if (jname(o, "name", sub, &vs->name, e) < 0)
			return -1;
		if (!vs->name)
			return jfail(e, sub, "missing");
		snprintf(sub, sizeof sub, "%s[%zu].env_var", path, i);
		if (jstr(o, "env_var", sub, false, &vs->env_var, e) < 0)
			return -1;
		if (!vs->env_var)
			vs->env_var = mf_volume_default_env(vs->name);
		else if (!mf_env_name_valid(vs->env_var))
			return jfail(e, sub, "expected an env var name ([A-Za-z_][A-Za-z0-9_]*)");
		for (size_t j = 0; j + 1 < p->nvolumes; j++)
			if (!strcmp(p->volumes[j].name, vs->name) ||
			    !strcmp(p->volumes[j].env_var, vs->env_var))
				return jfail(e, sub, "volume \"%s\" or its env var appears twice",
					     vs->name);
	}
	return 0;
}

static int process_from_json(json_t *pj, size_t idx, struct manifest *m, struct err *e)
{
	char path[128], sub[256];
	snprintf(path, sizeof path, "processes[%zu]", idx);
	if (!json_is_object(pj))
		return jfail(e, path, "expected an object");
	char *name = NULL;
	snprintf(sub, sizeof sub, "%s.name", path);
	if (jname(pj, "name", sub, &name, e) < 0)
		return -1;
	if (!name)
		return jfail(e, sub, "missing");
	if (manifest_process(m, name)) {
		jfail(e, sub, "duplicate process \"%s\"", name);
		free(name);
		return -1;
	}
	struct process_spec *p = &m->procs[m->nprocs++];
	mf_process_init(p, name);
	free(name);
	snprintf(path, sizeof path, "processes.%s", p->name);
	snprintf(sub, sizeof sub, "%s.command", path);
	if (jstr(pj, "command", sub, false, &p->command, e) < 0)
		return -1;
	snprintf(sub, sizeof sub, "%s.image", path);
	if (jstr(pj, "image", sub, false, &p->image, e) < 0)
		return -1;
	if (p->image && !manifest_image_ref_valid(p->image))
		return jfail(e, sub, "not an image reference");
	if (!p->command && !p->image && !m->dockerfile) {
		snprintf(sub, sizeof sub, "%s.command", path);
		return jfail(e, sub, "missing");
	}
	int64_t n = p->instances;
	snprintf(sub, sizeof sub, "%s.instances", path);
	if (jint(pj, "instances", sub, 0, MF_MAX_INSTANCES, &n, e) < 0)
		return -1;
	p->instances = (int)n;
	snprintf(sub, sizeof sub, "%s.port", path);
	if (jbool(pj, "port", sub, &p->port, e) < 0)
		return -1;
	snprintf(sub, sizeof sub, "%s.health", path);
	if (health_from_json(json_object_get(pj, "health"), sub, p, e) < 0)
		return -1;
	snprintf(sub, sizeof sub, "%s.profile", path);
	if (jname(pj, "profile", sub, &p->profile, e) < 0)
		return -1;
	snprintf(sub, sizeof sub, "%s.volumes", path);
	if (volumes_from_json(json_object_get(pj, "volumes"), sub, p, e) < 0)
		return -1;
	snprintf(sub, sizeof sub, "%s.stop_grace_ms", path);
	if (jint(pj, "stop_grace_ms", sub, 0, MF_MAX_DURATION_MS, &p->stop_grace_ms, e) < 0)
		return -1;
	return 0;
}

static int config_from_json(json_t *cj, struct manifest *m, struct err *e)
{
	if (!cj || json_is_null(cj))
		return 0;
	if (!json_is_object(cj) || json_object_size(cj) > MF_MAX_VARS)
		return jfail(e, "config", "expected an object of at most %d variables", MF_MAX_VARS);
	m->vars = xcalloc(json_object_size(cj) ? json_object_size(cj) : 1, sizeof *m->vars);
	const char *k;
	json_t *v;
	char sub[384];
	json_object_foreach(cj, k, v) {
		if (!mf_env_name_valid(k))
			return jfail(e, "config", "invalid variable name (expected "
				     "[A-Za-z_][A-Za-z0-9_]*, at most 255 characters)");
		snprintf(sub, sizeof sub, "config.%s", k);
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
			return jfail(e, sub, "expected a string without NUL bytes");
		for (size_t i = 0; i < m->nvars; i++)      /* keys with a NUL can collide */
			if (!strcmp(m->vars[i].name, k))
				return jfail(e, sub, "appears twice");
		struct env_var *ev = &m->vars[m->nvars++];
		ev->name = xstrdup(k);
		ev->value = xstrdup(json_string_value(v));
	}
	return 0;
}

int manifest_from_json(json_t *j, struct manifest *m, struct err *e)
{
	memset(m, 0, sizeof *m);
	if (!json_is_object(j))
		return err_set(e, ERR_INVALID, "manifest JSON: expected an object");
	int rc = -1;
	if (jstr(j, "source", "source", false, &m->source, e) < 0 ||
	    jname(j, "app", "app", &m->app, e) < 0 || jname(j, "env", "env", &m->env, e) < 0 ||
	    config_from_json(json_object_get(j, "config"), m, e) < 0)
		goto out;
	if (!m->source)
		m->source = xstrdup("berth.yaml");
	if (extras_from_json(j, m, e) < 0 || jstr(j, "dockerfile", "dockerfile", false, &m->dockerfile, e) < 0)
		goto out;
	if (m->dockerfile && !manifest_dockerfile_valid(m->dockerfile)) {
		jfail(e, "dockerfile", "expected a relative path inside the app directory");
		goto out;
	}
	json_t *pa = json_object_get(j, "processes");
	if (!json_is_array(pa) || json_array_size(pa) == 0 ||
	    json_array_size(pa) > MF_MAX_PROCS) {
		jfail(e, "processes", "expected an array of 1 to %d processes", MF_MAX_PROCS);
		goto out;
	}
	m->procs = xcalloc(json_array_size(pa), sizeof *m->procs);
	for (size_t i = 0; i < json_array_size(pa); i++)
		if (process_from_json(json_array_get(pa, i), i, m, e) < 0)
			goto out;
	rc = 0;
out:
	if (rc < 0)
		manifest_free(m);
	return rc;
}
