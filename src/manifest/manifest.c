/* manifest: the struct's life cycle (defaults, lookup, free), the validators every manifest
 * source shares (names, env var names, health paths), and manifest_load_dir, which decides
 * between berth.yaml and Procfile. Parsing itself lives in yaml.c, procfile.c and json.c. */
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

int manifest_parse_yaml(const char *fname, const char *data, size_t n, struct manifest *m,
			struct err *e)
{
	bool has_procs;
	if (mf_yaml_parse(fname, data, n, m, &has_procs, e) < 0)
		return -1;
	if (!has_procs) {
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

int manifest_load_dir(const char *dir, struct manifest *m, struct err *e)
{
	memset(m, 0, sizeof *m);
	struct buf yb = BUF_INIT, pb = BUF_INIT;
	int rc = -1;
	int have_yaml = read_manifest_file(dir, "berth.yaml", &yb, e);
	if (have_yaml < 0)
		goto out;
	if (have_yaml) {
		bool has_procs;
		if (mf_yaml_parse("berth.yaml", buf_str(&yb), yb.len, m, &has_procs, e) < 0)
			goto out;
		if (has_procs) {
			rc = 0;
			goto out;
		}
	}
	int have_proc = read_manifest_file(dir, "Procfile", &pb, e);
	if (have_proc < 0)
		goto out;
	if (!have_proc) {
		if (have_yaml)
			err_set(e, ERR_INVALID, "berth.yaml:1:1: no processes: key and no Procfile "
				"(expected a mapping of process names to their command)");
		else
			err_set(e, ERR_INVALID, "no berth.yaml or Procfile in %s", dir);
		goto out;
	}
	if (mf_procfile_procs("Procfile", buf_str(&pb), pb.len, m, e) < 0)
		goto out;
	if (!m->source)
		m->source = xstrdup("Procfile");
	rc = 0;
out:
	if (rc == 0 && mf_check_refs(m, e) < 0)
		rc = -1;
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
