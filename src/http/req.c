/* http/req: what a handler asks of a parsed request (headers, query parameters) and the
 * request target's split into a decoded path and a raw query. Hostile-input code: every
 * escape is checked, nothing is trusted to be NUL-free or well-formed. */
#include "http/parse.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct http_qparam {
	struct http_qparam *next;
	char *name;
	char *value;     /* NULL: the parameter is absent (cached too) */
};

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int http_target_split(struct buf *arena, size_t target_off, size_t len, size_t *path_off,
		      size_t *query_off)
{
	/* Room for everything appended below, so t stays valid while we append. */
	buf_grow(arena, 2 * len + 4);
	const char *t = arena->p + target_off;
	size_t pstart;
	if (memchr(t, '#', len))
		return 400;
	if (len && t[0] == '/') {
		pstart = 0;                                   /* origin-form */
	} else {
		size_t a;                                     /* absolute-form */
		if (len >= 7 && !strncasecmp(t, "http://", 7))
			a = 7;
		else if (len >= 8 && !strncasecmp(t, "https://", 8))
			a = 8;
		else
			return 400;                           /* "*", authority-form, junk */
		size_t host = a;
		while (a < len && t[a] != '/' && t[a] != '?')
			a++;
		if (a == host)
			return 400;
		pstart = a;
	}
	const char *q = memchr(t + pstart, '?', len - pstart);
	size_t pend = q ? (size_t)(q - t) : len;

	*path_off = arena->len;
	if (pstart == pend)
		buf_addc(arena, '/');                         /* "http://h" or "http://h?q" */
	for (size_t i = pstart; i < pend;) {
		const char *pct = memchr(t + i, '%', pend - i);
		size_t run = pct ? (size_t)(pct - t) - i : pend - i;
		buf_add(arena, t + i, run);
		i += run;
		if (i == pend)
			break;
		if (i + 2 >= pend)
			return 400;
		int hi = hexval((unsigned char)t[i + 1]), lo = hexval((unsigned char)t[i + 2]);
		if (hi < 0 || lo < 0)
			return 400;
		unsigned char c = (unsigned char)(hi * 16 + lo);
		if (c < 0x20 || c == 0x7f)                         /* %00, CR, LF, ...: never a path */
			return 400;
		buf_addc(arena, (char)c);
		i += 3;
	}
	buf_addc(arena, 0);
	*query_off = arena->len;
	if (q)
		buf_add(arena, q + 1, len - pend - 1);
	buf_addc(arena, 0);
	return 0;
}

const char *http_req_header(const struct http_req *r, const char *name)
{
	if (!r || !name)
		return NULL;
	for (size_t i = 0; i < r->nheaders; i++)
		if (!strcasecmp(r->headers[i].name, name))
			return r->headers[i].value;
	return NULL;
}

/* Decode a query component ('+' is a space, %XX a byte) into out. -1 on a malformed
 * escape or %00 (a C string cannot carry it). */
static int qdecode(const char *s, size_t n, struct buf *out)
{
	buf_grow(out, n);
	out->len = 0;
	out->p[0] = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+')
			c = ' ';
		else if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		}
		buf_addc(out, (char)c);
	}
	return 0;
}

/* The first well-formed "name=value" (or bare "name") pair whose decoded name matches;
 * pairs with malformed escapes are skipped. */
static char *query_find(const char *q, const char *name)
{
	struct buf key = BUF_INIT, val = BUF_INIT;
	char *found = NULL;
	while (*q && !found) {
		const char *amp = strchr(q, '&');
		size_t plen = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', plen);
		size_t klen = eq ? (size_t)(eq - q) : plen;
		if (plen && qdecode(q, klen, &key) == 0 && !strcmp(buf_str(&key), name)) {
			if (!eq)
				found = xstrdup("");
			else if (qdecode(eq + 1, plen - klen - 1, &val) == 0)
				found = xstrdup(buf_str(&val));
		}
		q += plen;
		if (*q == '&')
			q++;
	}
	buf_free(&key);
	buf_free(&val);
	return found;
}

const char *http_req_query(struct http_req *r, const char *name)
{
	if (!r || !name)
		return NULL;
	struct http_reqx *rx = (struct http_reqx *)r;
	for (struct http_qparam *qp = rx->qcache; qp; qp = qp->next)
		if (!strcmp(qp->name, name))
			return qp->value;
	struct http_qparam *qp = xcalloc(1, sizeof *qp);
	qp->name = xstrdup(name);
	qp->value = query_find(r->query ? r->query : "", name);
	qp->next = rx->qcache;
	rx->qcache = qp;
	return qp->value;
}

void http_req_free(struct http_req *r)
{
	if (!r)
		return;
	struct http_reqx *rx = (struct http_reqx *)r;
	while (rx->qcache) {
		struct http_qparam *qp = rx->qcache;
		rx->qcache = qp->next;
		free(qp->name);
		free(qp->value);
		free(qp);
	}
	free(r->headers);
	buf_free(&r->body);
	free(r->body_file);
	free(rx->arena);
	free(rx);
}
