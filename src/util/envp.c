/* util/envp: child environments (see envp.h). */
#include "util/envp.h"
#include "util/buf.h"
#include <stdlib.h>
#include <string.h>

void envp_put(struct envp *e, const char *k, const char *val)
{
	size_t kl = strlen(k);
	for (size_t j = 0; j < e->n; j++) {
		if (!strncmp(e->v[j], k, kl) && e->v[j][kl] == '=') {
			free(e->v[j]);
			e->v[j] = xasprintf("%s=%s", k, val);
			return;
		}
	}
	e->v = xrealloc(e->v, (e->n + 2) * sizeof *e->v);
	e->v[e->n++] = xasprintf("%s=%s", k, val);
	e->v[e->n] = NULL;
}

void envp_base(struct envp *e)
{
	static const char *keep[] = {"PATH", "LANG", "LC_ALL", "TZ", "HOME", NULL};
	for (const char **k = keep; *k; k++) {
		const char *v = getenv(*k);
		if (v)
			envp_put(e, *k, v);
	}
	if (!getenv("PATH"))
		envp_put(e, "PATH", "/usr/local/bin:/usr/bin:/bin");
	if (!e->v) {
		e->v = xcalloc(1, sizeof *e->v);
		e->n = 0;
	}
}

void envp_put_all(struct envp *e, char *const *vars)
{
	for (char *const *v = vars; v && *v; v++) {
		const char *eq = strchr(*v, '=');
		if (!eq)
			continue;
		char *k = xstrndup(*v, (size_t)(eq - *v));
		envp_put(e, k, eq + 1);
		free(k);
	}
}

const char *envp_get(const struct envp *e, const char *key)
{
	size_t kl = strlen(key);
	for (size_t j = 0; j < e->n; j++)
		if (!strncmp(e->v[j], key, kl) && e->v[j][kl] == '=')
			return e->v[j] + kl + 1;
	return NULL;
}

char **envp_detach(struct envp *e)
{
	char **v = e->v ? e->v : xcalloc(1, sizeof *v);
	e->v = NULL;
	e->n = 0;
	return v;
}

void envp_free_array(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

void envp_free(struct envp *e)
{
	envp_free_array(e->v);
	e->v = NULL;
	e->n = 0;
}
