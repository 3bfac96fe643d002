/* reconcile/env: what a process of a release gets (see internal.h): the variables of an
 * instance (manifest defaults, the build's PATH and variables, config, BERTH_*) and the whole
 * environment of a one-off (variables, volume paths, directory, profile). Builds arrays the
 * caller frees and creates volume directories; never starts a process, writes the store or
 * tells waiters anything. */
#include "reconcile/internal.h"
#include "model/model.h"
#include "util/buf.h"
#include "util/fsutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void add_var(char ***v, size_t *n, const char *k, const char *val)
{
	*v = xrealloc(*v, (*n + 2) * sizeof **v);
	(*v)[(*n)++] = xasprintf("%s=%s", k, val);
	(*v)[*n] = NULL;
}

/* What every process of release r gets from its build: the build's PATH entries (absolute,
 * before the server's PATH) and variables, under the app's config. */
static void add_build_vars(struct rel *r, char ***vars, size_t *nv)
{
	json_t *path = json_object_get(r->build, "path");
	if (json_array_size(path)) {
		struct buf b = BUF_INIT;
		size_t i;
		json_t *p;
		json_array_foreach(path, i, p)
			if (json_is_string(p))
				buf_addf(&b, "%s/%s:", r->dir, json_string_value(p));
		const char *host = getenv("PATH");
		buf_adds(&b, host ? host : "/usr/local/bin:/usr/bin:/bin");
		add_var(vars, nv, "PATH", buf_str(&b));
		buf_free(&b);
		const char *venv = NULL;
		json_array_foreach(path, i, p)
			if (json_is_string(p) && !strcmp(json_string_value(p), ".berth/venv/bin"))
				venv = ".berth/venv";
		if (venv) {
			char *vdir = xasprintf("%s/%s", r->dir, venv);
			add_var(vars, nv, "VIRTUAL_ENV", vdir);
			free(vdir);
		}
	}
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(r->build, "env"), k, v) {
		if (!json_is_string(v) || json_object_get(r->config, k))
			continue;
		const char *val = json_string_value(v);
		if (!strncmp(val, "$RELEASE/", 9)) {      /* a path inside the release directory */
			char *abs = xasprintf("%s/%s", r->dir, val + 9);
			add_var(vars, nv, k, abs);
			free(abs);
		} else {
			add_var(vars, nv, k, val);
		}
	}
}

char **release_vars(struct app_rt *rt, struct rel *r, const char *process, size_t *count)
{
	char **vars = xcalloc(1, sizeof *vars);
	size_t nv = 0;
	for (size_t k = 0; k < r->m.nvars; k++)
		if (!json_object_get(r->config, r->m.vars[k].name))
			add_var(&vars, &nv, r->m.vars[k].name, r->m.vars[k].value);
	add_build_vars(r, &vars, &nv);
	const char *k;
	json_t *v;
	json_object_foreach(r->config, k, v)
		if (json_is_string(v))
			add_var(&vars, &nv, k, json_string_value(v));
	char num[16];
	snprintf(num, sizeof num, "%d", r->version);
	add_var(&vars, &nv, "BERTH_APP", rt->app);
	add_var(&vars, &nv, "BERTH_ENV", rt->env);
	if (process)
		add_var(&vars, &nv, "BERTH_PROCESS", process);
	add_var(&vars, &nv, "BERTH_RELEASE", num);
	*count = nv;
	return vars;
}

int rel_oneoff_env(struct reconciler *rc, struct app_rt *rt, struct rel *r, const char *process,
			  struct rc_oneoff *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	const struct process_spec *p = NULL;
	if (process) {
		p = manifest_process(&r->m, process);
		if (!p) {
			struct buf names = BUF_INIT;
			for (size_t k = 0; k < r->m.nprocs; k++)
				buf_addf(&names, "%s%s", k ? ", " : "", r->m.procs[k].name);
			err_set(e, ERR_INVALID, "v%d of %s/%s has no process \"%s\" (it has: %s)", r->version, rt->env,
				rt->app, process, buf_str(&names));
			buf_free(&names);
			return -1;
		}
	} else {
		p = manifest_process(&r->m, "web");
		if (!p)
			p = &r->m.procs[0];
	}
	size_t nv = 0;
	char **vars = release_vars(rt, r, p->name, &nv);
	if (proc_volumes(rc, rt, r, p, &vars, &nv, &out->volumes, &out->nvolumes, e) < 0) {
		for (size_t k = 0; k < nv; k++)
			free(vars[k]);
		free(vars);
		volumes_free(out->volumes, out->nvolumes);
		out->volumes = NULL;
		out->nvolumes = 0;
		return -1;
	}
	const char *image = rel_image(r, p);
	out->image = image ? xstrdup(image) : NULL;
	out->vars = vars;
	out->cwd = xstrdup(r->dir);
	out->release = r->version;
	out->process = xstrdup(p->name);
	out->profile = p->profile ? server_conf_profile(rc->conf, p->profile) : NULL;
	return 0;
}

int reconciler_oneoff_env(struct reconciler *rc, const char *env, const char *app, const char *process,
			  struct rc_oneoff *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	struct app_rt *rt = rt_find(rc, env, app, false);
	int live = rt ? model_json_int(rt->doc, "release", 0) : 0;
	if (!live)
		return err_set(e, ERR_CONFLICT, "%s/%s has no live release: deploy it first", env, app);
	struct rel *r = rel_get(rc, rt, live, e);
	if (!r)
		return -1;
	return rel_oneoff_env(rc, rt, r, process, out, e);
}

void rc_oneoff_free(struct rc_oneoff *o)
{
	for (char **v = o->vars; v && *v; v++)
		free(*v);
	free(o->vars);
	free(o->cwd);
	free(o->process);
	free(o->image);
	volumes_free(o->volumes, o->nvolumes);
	memset(o, 0, sizeof *o);
}

/* ---- container processes ---- */

#define CONTAINER_VOLUMES "/berth/volumes"

const char *rel_image(const struct rel *r, const struct process_spec *p)
{
	json_t *im = json_object_get(r->images, p->name);
	const char *id = json_string_value(json_object_get(im, "id"));
	if (id && *id)
		return id;
	return p->image;
}

int proc_volumes(struct reconciler *rc, struct app_rt *rt, const struct rel *r, const struct process_spec *p,
		 char ***vars, size_t *nv, struct driver_volume **vols, size_t *nvols, struct err *e)
{
	bool container = rel_image(r, p) != NULL;
	*vols = NULL;
	*nvols = 0;
	if (container && p->nvolumes)
		*vols = xcalloc(p->nvolumes, sizeof **vols);
	for (size_t j = 0; j < p->nvolumes; j++) {
		char *path = reconciler_volume_path(rc, rt->env, rt->app, p->volumes[j].name);
		if (fs_mkdir_p(path, 0750, e) < 0) {
			free(path);
			return -1;
		}
		if (container) {
			char *target = xasprintf("%s/%s", CONTAINER_VOLUMES, p->volumes[j].name);
			add_var(vars, nv, p->volumes[j].env_var, target);
			(*vols)[*nvols].source = path;
			(*vols)[*nvols].target = target;
			(*nvols)++;
		} else {
			add_var(vars, nv, p->volumes[j].env_var, path);
			free(path);
		}
	}
	return 0;
}

void volumes_free(struct driver_volume *v, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		free((char *)v[k].source);
		free((char *)v[k].target);
	}
	free(v);
}
