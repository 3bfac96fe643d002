/* util/envp: building the environment a child process gets: a NULL-terminated "K=V" array
 * where a later put of the same key replaces the earlier one. The base is berth's clean
 * environment for instances and one-offs: only PATH, LANG, LC_ALL, TZ and HOME of the
 * daemon's own (which may hold BERTH_TOKEN) are passed on. */
#ifndef BERTH_UTIL_ENVP_H
#define BERTH_UTIL_ENVP_H
#include <stddef.h>

struct envp {
	char **v;      /* NULL-terminated; owned */
	size_t n;
};

/* The clean base (PATH defaults to /usr/local/bin:/usr/bin:/bin when the daemon has none). */
void envp_base(struct envp *e);
void envp_put(struct envp *e, const char *key, const char *val);
/* Each "K=V" of vars (NULL-terminated; entries without '=' are skipped). */
void envp_put_all(struct envp *e, char *const *vars);
const char *envp_get(const struct envp *e, const char *key);
/* Give the array away (caller frees each string and the array with envp_free_array). */
char **envp_detach(struct envp *e);
void envp_free_array(char **v);
void envp_free(struct envp *e);
#endif
