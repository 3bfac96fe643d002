/* imageref: image references made into engine paths (see docker.h). References are checked
 * by manifest_image_ref_valid before they get here; these still escape every byte that is
 * not plainly safe, so nothing in a reference can change the request's shape. */
#include "driver/docker.h"
#include "util/buf.h"
#include <stdlib.h>
#include <string.h>

char *docker_query_escape(const char *s)
{
	struct buf b = BUF_INIT;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~", *p))
			buf_addc(&b, (char)*p);
		else
			buf_addf(&b, "%%%02X", *p);
	}
	return buf_detach(&b);
}

char *docker_pull_path(const char *ref)
{
	/* name@sha256:..., name:tag, or name (the engine would pull every tag without one) */
	char *name = xstrdup(ref);
	const char *tag = "latest";
	char *at = strchr(name, '@');
	char *slash = strrchr(name, '/');
	char *colon = strrchr(name, ':');
	if (at) {
		*at = 0;
		tag = at + 1;
	} else if (colon && (!slash || colon > slash)) {
		*colon = 0;
		tag = colon + 1;
	}
	char *n = docker_query_escape(name), *t = docker_query_escape(tag);
	char *path = xasprintf("/images/create?fromImage=%s&tag=%s", n, t);
	free(n);
	free(t);
	free(name);
	return path;
}

char *docker_image_path(const char *ref, const char *suffix)
{
	char *e = docker_query_escape(ref);
	char *path = xasprintf("/images/%s%s", e, suffix ? suffix : "");
	free(e);
	return path;
}
