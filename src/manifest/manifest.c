/* manifest: the struct's life cycle (defaults, lookup, free), the validators every manifest
 * source shares (names, env var names, health paths, dockerfile paths), and manifest_load_dir,
 * which decides between berth.yaml, Procfile and a Dockerfile, and checks that the file an
 * image is built from is there. Parsing itself lives in yaml.c, procfile.c and json.c. */
#include "manifest/internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool name_valid(const char *s)
{
	if (!s || !*s)
		return false;
	size_t i = 0;
	for (; s[i]; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
		if (!ok || i >= 63)
			return false;
	}
	return true;
}

bool mf_env_name_valid(const char *s)
{
	if (!s || !*s || (s[0] >= '0' && s[0] <= '9'))
		return false;
	size_t i = 0;
	for (; s[i]; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_') || i >= MF_MAX_ENV_NAME)
			return false;
	}
	return true;
}

bool mf_http_path_valid(const char *s)
{
	if (!s || s[0] != '/')
		return false;
	for (size_t i = 0; s[i]; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f ||
		    i >= MF_MAX_HTTP_PATH)
			return false;
	return true;
}

char *mf_volume_default_env(const char *volume)
{
	struct buf b = BUF_INIT;
	buf_adds(&b, "BERTH_VOLUME_");
	for (const char *p = volume; *p; p++) {
		char c = *p;
		if (c == '-')
			c = '_';
		else if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		buf_addc(&b, c);
	}
	return buf_detach(&b);
}

void mf_quote(struct buf *b, const char *s, size_t n)
{
	size_t shown = n > 60 ? 57 : n;
	buf_addc(b, '"');
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			buf_addf(b, "\\%c", c);
		else if (c == '\n')
			buf_adds(b, "\\n");
		else if (c == '\r')
			buf_adds(b, "\\r");
		else if (c == '\t')
			buf_adds(b, "\\t");
		else if (c < 0x20 || c >= 0x7f)
			buf_addf(b, "\\x%02x", c);    /* keeps messages valid UTF-8 for JSON */
		else
			buf_addc(b, (char)c);
	}
	if (shown < n)
		buf_adds(b, "...");
	buf_addc(b, '"');
}

size_t mf_utf8_valid_prefix(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned c = u[i];
		size_t len;
		unsigned lo = 0x80, hi = 0xbf;   /* allowed range of the second byte */
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			if (c == 0xe0)
				lo = 0xa0;           /* overlong */
			else if (c == 0xed)
				hi = 0x9f;           /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;           /* past U+10FFFF */
		} else {
			return i;
		}
		if (n - i < len || u[i + 1] < lo || u[i + 1] > hi)
			return i;
		for (size_t k = 2; k < len; k++)
			if ((u[i + k] & 0xc0) != 0x80)
				return i;
		i += len;
	}
	return n;
}

const char *mf_health_kind_name(enum health_kind k)
{
	switch (k) {
	case HEALTH_HTTP: return "http";
	case HEALTH_TCP: return "tcp";
	case HEALTH_EXEC: return "exec";
	default: return "none";
	}
}

void mf_process_init(struct process_spec *p, const char *name)
{
	memset(p, 0, sizeof *p);
	p->name = xstrdup(name);
	p->instances = 1;
	p->port = !strcmp(name, "web");
	p->health.kind = HEALTH_NONE;
	p->health.interval_ms = MF_DEF_INTERVAL_MS;
	p->health.timeout_ms = MF_DEF_TIMEOUT_MS;
	p->health.retries = MF_DEF_RETRIES;
	p->health.deadline_ms = MF_DEF_DEADLINE_MS;
	p->health.startup_ms = MF_DEF_STARTUP_MS;
	p->stop_grace_ms = MF_DEF_STOP_GRACE_MS;
}

void mf_process_free(struct process_spec *p)
{
	free(p->name);
	free(p->command);
	free(p->image);
	free(p->health.path);
	free(p->health.command);
	free(p->profile);
	for (size_t i = 0; i < p->nvolumes; i++) {
		free(p->volumes[i].name);
		free(p->volumes[i].env_var);
	}
	free(p->volumes);
	memset(p, 0, sizeof *p);
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nprocs; i++)
		mf_process_free(&m->procs[i]);
	free(m->procs);
	for (size_t i = 0; i < m->nvars; i++) {
		free(m->vars[i].name);
		free(m->vars[i].value);
	}
	free(m->vars);
	for (size_t i = 0; i < m->ncron; i++) {
		struct cron_job *j = &m->cron[i];
		free(j->name);
		free(j->schedule);
		free(j->command);
		free(j->timezone);
		free(j->process);
	}
	free(m->cron);
	free(m->build);
	free(m->dockerfile);
	free(m->release);
	free(m->source);
	free(m->app);
	free(m->env);
	memset(m, 0, sizeof *m);
}

const struct process_spec *manifest_process(const struct manifest *m, const char *name)
{
	for (size_t i = 0; m && name && i < m->nprocs; i++)
		if (!strcmp(m->procs[i].name, name))
			return &m->procs[i];
	return NULL;
}

bool manifest_process_built(const struct manifest *m, const struct process_spec *p)
{
	return m && p && m->dockerfile && !p->image;
}

bool manifest_dockerfile_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > MF_MAX_DOCKERFILE_PATH || s[0] == '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '\\')
			return false;
	/* every part between slashes: not empty, not "." or ".." */
	for (const char *p = s; *p;) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!end)
			break;
		p = end + 1;
		if (!*p)
			return false;     /* a trailing slash names a directory */
	}
	return true;
}

void mf_add_built_web(struct manifest *m)
{
	m->procs = xcalloc(1, sizeof *m->procs);
	m->nprocs = 1;
	mf_process_init(&m->procs[0], "web");
	m->procs[0].health.kind = HEALTH_TCP;
}

int manifest_parse_yaml(const char *fname, const char *data, size_t n, struct manifest *m,
			struct err *e)
{
	struct mf_yaml_seen seen;
	if (mf_yaml_parse(fname, data, n, m, &seen, e) < 0)
		return -1;
	if (!seen.has_procs && m->dockerfile) {
		mf_add_built_web(m);
		return 0;
	}
	if (!seen.has_procs) {
		manifest_free(m);
		return err_set(e, ERR_INVALID, "%s:1:1: no processes: key (expected a mapping of "
			       "process names to their command)", fname);
	}
	return 0;
}

int manifest_parse_procfile(const char *fname, const char *data, size_t n, struct manifest *m,
			    struct err *e)
{
	memset(m, 0, sizeof *m);
	if (mf_procfile_procs(fname, data, n, m, e) < 0) {
		manifest_free(m);
		return -1;
	}
	m->source = xstrdup("Procfile");
	return 0;
}

/* Read DIR/NAME into out: 1 read, 0 absent, -1 error. Refuses symlinks and anything that
 * is not a regular file (an uploaded tree is hostile too) and files over the size bound. */
static int read_manifest_file(const char *dir, const char *name, struct buf *out, struct err *e)
{
	char *path = xasprintf("%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	int rc = -1;
	if (fd < 0) {
		if (errno == ENOENT)
			rc = 0;
		else if (errno == ELOOP)
			err_set(e, ERR_INVALID, "%s: is a symbolic link, expected a regular file", name);
		else
			err_errno(e, errno, "open %s", path);
		free(path);
		return rc;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		err_errno(e, errno, "stat %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(e, ERR_INVALID, "%s: expected a regular file", name);
		goto out;
	}
	char chunk[16384];
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err_errno(e, errno, "read %s", path);
			goto out;
		}
		if (r == 0)
			break;
		if (out->len + (size_t)r > MF_MAX_FILE_BYTES) {
			err_set(e, ERR_TOOBIG, "%s: file is larger than %d bytes", name,
				MF_MAX_FILE_BYTES);
			goto out;
		}
		buf_add(out, chunk, (size_t)r);
	}
	rc = 1;
out:
	close(fd);
	free(path);
	return rc;
}

/* What only the whole manifest can tell (processes may come from the Procfile): a cron job's
 * process must exist; one-off kinds are not process names. */
int mf_check_refs(const struct manifest *m, struct err *e)
{
	static const char *const reserved[] = {"build", "release", "run", "exec", NULL};
	for (size_t k = 0; k < m->nprocs; k++)
		for (const char *const *r = reserved; *r; r++)
			if (!strcmp(m->procs[k].name, *r))
				return err_set(e, ERR_INVALID, "%s: process \"%s\": the name is berth's own (its one-offs' "
					       "logs go by it: build, release, run, exec); call it something else",
					       m->source ? m->source : "manifest", *r);
	for (size_t k = 0; k < m->ncron; k++) {
		const char *p = m->cron[k].process;
		if (p && !manifest_process(m, p))
			return err_set(e, ERR_INVALID, "berth.yaml: cron.%s.process: there is no process \"%s\"",
				       m->cron[k].name, p);
	}
	return 0;
}

/* Where rel (a valid dockerfile path) leads under dir, without following a symbolic link on
 * the way or at the end (the engine sees the packed tree, where a link is a link):
 * 1 a regular file, 0 nothing there, -1 something else, with *why saying what. */
static int dockerfile_stat(const char *dir, const char *rel, const char **why)
{
	int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		*why = "cannot be read (the app directory cannot be opened)";
		return -1;
	}
	char *path = xstrdup(rel);
	int rc = -1;
	char *part = path;
	for (;;) {
		char *slash = strchr(part, '/');
		if (slash)
			*slash = 0;
		struct stat st;
		if (fstatat(fd, part, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = errno == ENOENT || errno == ENOTDIR ? 0 : -1;
			*why = "cannot be read";
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			*why = slash ? "has a symbolic link on its way" : "is a symbolic link";
			break;
		}
		if (!slash) {
			rc = S_ISREG(st.st_mode) ? 1 : -1;
			*why = S_ISDIR(st.st_mode) ? "is a directory" : "is a special file";
			break;
		}
		if (!S_ISDIR(st.st_mode)) {
			rc = 0;
			break;
		}
		int sub = openat(fd, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			*why = "cannot be read";
			break;
		}
		close(fd);
		fd = sub;
		part = slash + 1;
	}
	close(fd);
	free(path);
	return rc;
}

/* Without berth.yaml: the Dockerfile (or else Containerfile) at the top, if there is one.
 * 1 found (*name is it), 0 none, -1 one that is not a regular file. */
static int find_dockerfile(const char *dir, const char **name, struct err *e)
{
	static const char *const names[] = {"Dockerfile", "Containerfile", NULL};
	for (const char *const *n = names; *n; n++) {
		const char *why = NULL;
		int r = dockerfile_stat(dir, *n, &why);
		if (r < 0)
			return err_set(e, ERR_INVALID, "%s: %s, expected a regular file", *n, why);
		if (r == 1) {
			*name = *n;
			return 1;
		}
	}
	return 0;
}

int manifest_load_dir(const char *dir, struct manifest *m, struct err *e)
{
	memset(m, 0, sizeof *m);
	struct buf yb = BUF_INIT, pb = BUF_INIT;
	struct mf_yaml_seen seen = {0};
	int rc = -1;
	int have_yaml = read_manifest_file(dir, "berth.yaml", &yb, e);
	if (have_yaml < 0)
		goto out;
	if (have_yaml) {
		if (mf_yaml_parse("berth.yaml", buf_str(&yb), yb.len, m, &seen, e) < 0)
			goto out;
		if (seen.has_procs) {
			rc = 0;
			goto out;
		}
	}
	int have_proc = read_manifest_file(dir, "Procfile", &pb, e);
	if (have_proc < 0)
		goto out;
	/* Only berth.yaml's dockerfile: builds when there is a berth.yaml; without one, a
	 * Dockerfile at the top does. */
	const char *found = NULL;
	if (!have_yaml && find_dockerfile(dir, &found, e) < 0)
		goto out;
	if (!have_proc) {
		if (have_yaml && m->dockerfile) {
			mf_add_built_web(m);
		} else if (!have_yaml && found) {
			m->source = xstrdup(found);
			m->dockerfile = xstrdup(found);
			mf_add_built_web(m);
		} else if (have_yaml) {
			err_set(e, ERR_INVALID, "berth.yaml:1:1: no processes: key and no Procfile "
				"(expected a mapping of process names to their command)");
			goto out;
		} else {
			err_set(e, ERR_INVALID, "no berth.yaml or Procfile in %s, and no Dockerfile or "
				"Containerfile to build an image from", dir);
			goto out;
		}
		rc = 0;
		goto out;
	}
	if (mf_procfile_procs("Procfile", buf_str(&pb), pb.len, m, e) < 0)
		goto out;
	if (!m->source)
		m->source = xstrdup("Procfile");
	if (found)
		m->dockerfile = xstrdup(found);
	rc = 0;
out:
	if (rc == 0 && mf_check_refs(m, e) < 0)
		rc = -1;
	if (rc == 0 && m->dockerfile && seen.dockerfile_line) {
		const char *why = NULL;
		int r = dockerfile_stat(dir, m->dockerfile, &why);
		if (r == 0)
			rc = err_set(e, ERR_INVALID, "berth.yaml:%d:%d: dockerfile: there is no file \"%s\" in the app "
				     "directory", seen.dockerfile_line, seen.dockerfile_col, m->dockerfile);
		else if (r < 0)
			rc = err_set(e, ERR_INVALID, "berth.yaml:%d:%d: dockerfile: \"%s\" %s, expected a regular "
				     "file", seen.dockerfile_line, seen.dockerfile_col, m->dockerfile, why);
	}
	if (rc < 0)
		manifest_free(m);
	buf_free(&yb);
	buf_free(&pb);
	return rc;
}

bool manifest_image_ref_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 255)
		return false;
	if (!strncmp(s, "sha256:", 7)) {
		if (n != 71)
			return false;
		for (size_t k = 7; k < n; k++)
			if (!strchr("0123456789abcdef", s[k]))
				return false;
		return true;
	}
	/* path components of [a-z0-9._-], a host part may hold upper case and a port, a tag of
	 * [A-Za-z0-9_.-], a digest sha256:64hex */
	const char *at = strchr(s, '@');
	if (at) {
		if (strlen(at + 1) != 71 || strncmp(at + 1, "sha256:", 7))
			return false;
		for (const char *p = at + 8; *p; p++)
			if (!strchr("0123456789abcdef", *p))
				return false;
		n = (size_t)(at - s);
	}
	if (n == 0 || s[0] == '/' || s[0] == ':' || s[0] == '-' || s[0] == '.')
		return false;
	for (size_t k = 0; k < n; k++) {
		char ch = s[k];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-' || ch == '/' || ch == ':'))
			return false;
		if (ch == '/' && (k + 1 == n || s[k + 1] == '/'))
			return false;
	}
	return s[n - 1] != ':' && s[n - 1] != '/';
}

int manifest_for_image(struct manifest *m, const char *process, const char *image, struct err *e)
{
	memset(m, 0, sizeof *m);
	if (!manifest_image_ref_valid(image))
		return err_set(e, ERR_INVALID, "\"%.100s\" is not an image reference (name[:tag] or name@sha256:...)", image);
	if (!name_valid(process))
		return err_set(e, ERR_INVALID, "\"%.64s\" is not a process name", process);
	m->source = xstrdup("--image");
	m->build_timeout_ms = MF_DEF_BUILD_TIMEOUT_MS;
	m->release_timeout_ms = MF_DEF_RELEASE_TIMEOUT_MS;
	m->procs = xcalloc(1, sizeof *m->procs);
	m->nprocs = 1;
	mf_process_init(&m->procs[0], process);
	m->procs[0].image = xstrdup(image);
	if (m->procs[0].port)
		m->procs[0].health.kind = HEALTH_TCP;
	return 0;
}
