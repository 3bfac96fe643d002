/* procfile: the Heroku-style Procfile, one "name: command" per line. Blank lines and lines
 * starting with '#' are skipped, CRLF and a UTF-8 BOM are tolerated, spaces around ':' are
 * allowed; the text must be UTF-8 (commands end up in JSON). Every process gets the
 * defaults of manifest.h (TCP health for a port process). Hostile input: bounded size and
 * process count; errors say "Procfile:line:col: ...". */
#include "manifest/internal.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct pline {
	const char *fname;
	int line;
	struct err *e;
};

static int pfail(const struct pline *l, size_t col0, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int pfail(const struct pline *l, size_t col0, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s:%d:%zu: ", l->fname, l->line, col0 + 1);
	va_list ap;
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	err_set(l->e, ERR_INVALID, "%s", buf_str(&b));
	buf_free(&b);
	return -1;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Parse one non-blank, non-comment line s[0..len) into a new process of m. */
static int parse_line(const struct pline *l, const char *s, size_t len, struct manifest *m,
		      int *lines, int *release_line)
{
	size_t i = 0;
	while (i < len && blank(s[i]))
		i++;
	size_t ns = i;
	while (i < len && s[i] != ':' && !blank(s[i]))
		i++;
	size_t ne = i;
	struct buf q = BUF_INIT;
	mf_quote(&q, s + ns, ne - ns);
	int rc = -1;
	if (ne == ns) {
		pfail(l, ns, "expected a process name before ':'");
		goto out;
	}
	while (i < len && blank(s[i]))
		i++;
	if (i == len || s[i] != ':') {
		pfail(l, ne, "expected ':' after process name %s", buf_str(&q));
		goto out;
	}
	i++;
	while (i < len && blank(s[i]))
		i++;
	size_t cs = i, ce = len;
	while (ce > cs && blank(s[ce - 1]))
		ce--;
	char *name = xstrndup(s + ns, ne - ns);
	bool ok = name_valid(name);
	free(name);
	if (!ok) {
		pfail(l, ns, "invalid process name %s (expected [a-z0-9][a-z0-9-]*, at most 63 "
		      "characters)", buf_str(&q));
		goto out;
	}
	if (ce == cs) {
		pfail(l, cs, "empty command for process %s", buf_str(&q));
		goto out;
	}
	if (ne - ns == 7 && !memcmp(s + ns, "release", 7)) {
		/* Heroku's release phase: run once per release before it rolls out. berth.yaml's
		 * release: (read first) wins over it. */
		if (*release_line) {
			pfail(l, ns, "duplicate release line (first on line %d)", *release_line);
			goto out;
		}
		if (!m->release)
			m->release = xstrndup(s + cs, ce - cs);
		*release_line = l->line;
		rc = 0;
		goto out;
	}
	for (size_t p = 0; p < m->nprocs; p++) {
		if (strlen(m->procs[p].name) == ne - ns && !memcmp(m->procs[p].name, s + ns, ne - ns)) {
			pfail(l, ns, "duplicate process %s (first defined on line %d)", buf_str(&q),
			      lines[p]);
			goto out;
		}
	}
	if (m->nprocs == MF_MAX_PROCS) {
		pfail(l, ns, "too many processes (at most %d)", MF_MAX_PROCS);
		goto out;
	}
	struct process_spec *p = &m->procs[m->nprocs];
	char *pname = xstrndup(s + ns, ne - ns);
	mf_process_init(p, pname);
	free(pname);
	p->command = xstrndup(s + cs, ce - cs);
	p->health.kind = p->port ? HEALTH_TCP : HEALTH_NONE;
	lines[m->nprocs++] = l->line;
	rc = 0;
out:
	buf_free(&q);
	return rc;
}

int mf_procfile_procs(const char *fname, const char *data, size_t n, struct manifest *m,
		      struct err *e)
{
	if (n > MF_MAX_FILE_BYTES)
		return err_set(e, ERR_TOOBIG, "%s: file is larger than %d bytes", fname,
			       MF_MAX_FILE_BYTES);
	m->procs = xcalloc(MF_MAX_PROCS, sizeof *m->procs);
	m->nprocs = 0;
	int lines[MF_MAX_PROCS], release_line = 0;
	struct pline l = {fname, 0, e};
	size_t pos = 0;
	if (n >= 3 && !memcmp(data, "\xef\xbb\xbf", 3))
		pos = 3;
	while (pos < n) {
		l.line++;
		const char *s = data + pos;
		const char *nl = memchr(s, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - s) : n - pos;
		pos += len + (nl ? 1 : 0);
		if (len && s[len - 1] == '\r')
			len--;
		const char *nul = memchr(s, 0, len);
		if (nul)
			return pfail(&l, (size_t)(nul - s), "unexpected NUL byte");
		size_t good = mf_utf8_valid_prefix(s, len);
		if (good < len)
			return pfail(&l, good, "invalid UTF-8 (byte 0x%02x)",
				     (unsigned)(unsigned char)s[good]);
		size_t i = 0;
		while (i < len && blank(s[i]))
			i++;
		if (i == len || s[i] == '#')
			continue;
		if (parse_line(&l, s, len, m, lines, &release_line) < 0)
			return -1;
	}
	if (m->nprocs == 0)
		return err_set(e, ERR_INVALID, "%s:1:1: no processes (expected lines like "
			       "\"web: ./server\")", fname);
	m->procs = xrealloc(m->procs, m->nprocs * sizeof *m->procs);
	return 0;
}
