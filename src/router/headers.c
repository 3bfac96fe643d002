/* router/headers: pure helpers for rewriting heads, on hostile input (a client's headers,
 * an upstream's): hop-by-hop names and Connection lists, request ids, the Accept
 * preference between HTML and JSON, Host validation and the target sent upstream.
 * No I/O, no allocation except into the caller's buf. */
#include "router/internal.h"
#include <string.h>
#include <strings.h>

bool hdr_is_hop(const char *name)
{
	static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "te",
					  "trailer", "transfer-encoding", "upgrade"};
	for (size_t i = 0; i < sizeof hop / sizeof *hop; i++)
		if (!strcasecmp(name, hop[i]))
			return true;
	return false;
}

bool hdr_list_has(const char *list, const char *token)
{
	size_t tl = strlen(token);
	const char *s = list;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		const char *b = s;
		while (*s && *s != ',')
			s++;
		const char *e = s;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - b) == tl && tl && !strncasecmp(b, token, tl))
			return true;
	}
	return false;
}

bool hdr_connection_lists(const struct http_header *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(h[i].name, "connection") && hdr_list_has(h[i].value, name))
			return true;
	return false;
}

/* 1..128 bytes of letters, digits and "-_.:+/=": UUIDs, hex, base64, ULIDs. */
bool reqid_ok(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("-_.:+/=", c)) || n >= RT_REQID_MAX)
			return false;
	}
	return n > 0;
}

/* q-value of one media range's parameters (";q=0.5"); 1000 = 1.0. */
static int qvalue(const char *p, const char *end)
{
	while (p < end) {
		while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
			p++;
		if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			p += 2;
			int v = 0, scale = 1000, seen = 0;
			if (p < end && (*p == '0' || *p == '1')) {
				v = (*p - '0') * 1000;
				p++;
				seen = 1;
			}
			if (p < end && *p == '.') {
				p++;
				for (int k = 0; k < 3 && p < end && *p >= '0' && *p <= '9'; k++, p++) {
					scale /= 10;
					v += (*p - '0') * scale;
				}
			}
			if (!seen || v > 1000)
				return 1000;
			return v;
		}
		while (p < end && *p != ';')
			p++;
	}
	return 1000;
}

/* For one wanted type ("application/json"), the q of the most specific matching range. */
static void consider(const char *range, size_t rl, int q, const char *type, int *best_spec, int *best_q)
{
	const char *slash = memchr(range, '/', rl);
	if (!slash)
		return;
	size_t tl = strlen(type);
	const char *tslash = strchr(type, '/');
	int spec;
	if (rl == 3 && !memcmp(range, "*/*", 3))
		spec = 1;
	else if ((size_t)(slash - range) == (size_t)(tslash - type) &&
		 !strncasecmp(range, type, (size_t)(slash - range)) && rl == (size_t)(slash - range) + 2 &&
		 slash[1] == '*')
		spec = 2;
	else if (rl == tl && !strncasecmp(range, type, tl))
		spec = 3;
	else
		return;
	if (spec > *best_spec) {
		*best_spec = spec;
		*best_q = q;
	}
}

bool accept_prefers_json(const char *accept)
{
	if (!accept)
		return false;
	int js = 0, jq = 0, hs = 0, hq = 0;
	const char *s = accept;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		const char *b = s;
		while (*s && *s != ',')
			s++;
		const char *semi = memchr(b, ';', (size_t)(s - b));
		const char *re = semi ? semi : s;
		while (re > b && (re[-1] == ' ' || re[-1] == '\t'))
			re--;
		if (re == b)
			continue;
		int q = qvalue(semi ? semi : s, s);
		consider(b, (size_t)(re - b), q, "application/json", &js, &jq);
		consider(b, (size_t)(re - b), q, "text/html", &hs, &hq);
	}
	return js && jq > 0 && jq > (hs ? hq : 0);
}

/* reg-name, IPv4 or a bracketed IPv6 literal, with an optional port. */
bool host_ok(const char *h, size_t n)
{
	if (n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("-._:[]", c)))
			return false;
	}
	return true;
}

int target_rewrite(const char *t, size_t strip, struct buf *out, const char **auth, size_t *alen)
{
	size_t len = strlen(t);
	size_t start = 0;
	*auth = NULL;
	*alen = 0;
	if (len && t[0] != '/') {
		size_t a;
		if (len >= 7 && !strncasecmp(t, "http://", 7))
			a = 7;
		else if (len >= 8 && !strncasecmp(t, "https://", 8))
			a = 8;
		else
			return -1;
		size_t e = a;
		while (e < len && t[e] != '/' && t[e] != '?')
			e++;
		if (e == a || memchr(t + a, '@', e - a))
			return -1;      /* no userinfo in what we forward */
		*auth = t + a;
		*alen = e - a;
		start = e;
	} else if (!len) {
		return -1;
	}
	/* The path and query from start on; skip `strip` decoded path bytes. */
	size_t i = start, dec = 0;
	while (dec < strip && i < len && t[i] != '?') {
		i += (t[i] == '%' && i + 2 < len) ? 3 : 1;
		dec++;
	}
	if (dec < strip)
		return -1;      /* cannot happen for a matched route; refuse rather than guess */
	if (i >= len || t[i] != '/')
		buf_addc(out, '/');
	buf_add(out, t + i, len - i);
	return 0;
}
