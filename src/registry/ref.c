/* registry/ref: the pure half of the registry module: what a registry host may look like,
 * which registry an image reference names (Docker's rule), and the WWW-Authenticate
 * challenges of the login handshake. Hostile input throughout (a user's argument, a
 * manifest's image, a remote registry's header): bounded, no allocation but the base URL. */
#include "registry/registry.h"
#include <string.h>
#include <strings.h>
#include "util/buf.h"

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ":PORT" at p (up to end): 1..65535, digits only. */
static bool port_ok(const char *p, const char *end)
{
	if (p == end || *p != ':' || end - p < 2 || end - p > 6)
		return false;
	long v = 0;
	for (p++; p < end; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	return v >= 1 && v <= 65535;
}

int registry_host_normalize(const char *in, char out[REGISTRY_HOST_MAX], struct err *e)
{
	size_t n = in ? strlen(in) : 0;
	if (n == 0)
		return err_set(e, ERR_INVALID, "the registry host is empty");
	if (strstr(in, "://") || strchr(in, '/'))
		return err_set(e, ERR_INVALID, "\"%.300s\" is not a registry host: give the host and "
			       "port alone (ghcr.io, registry.example.com:5000), not a URL or a path", in);
	if (n >= REGISTRY_HOST_MAX)
		return err_set(e, ERR_INVALID, "the registry host is longer than %d bytes",
			       REGISTRY_HOST_MAX - 1);
	const char *end = in + n, *name_end;
	if (in[0] == '[') {   /* [IPv6]:port */
		const char *close = strchr(in, ']');
		if (!close || close - in < 3)
			goto bad;
		for (const char *p = in + 1; p < close; p++)
			if (!is_hex(*p) && *p != ':' && *p != '.')
				goto bad;
		name_end = close + 1;
	} else {
		name_end = strchr(in, ':');
		if (!name_end)
			name_end = end;
		if (name_end == in || name_end - in > 253)
			goto bad;
		/* Labels of letters, digits and '-', not starting or ending with '-', 1..63 bytes. */
		const char *label = in;
		for (const char *p = in; p <= name_end; p++) {
			if (p < name_end && *p != '.') {
				if (!is_alnum(*p) && *p != '-')
					goto bad;
				continue;
			}
			size_t ln = (size_t)(p - label);
			if (ln == 0 || ln > 63 || label[0] == '-' || p[-1] == '-')
				goto bad;
			label = p + 1;
		}
	}
	if (name_end != end && !port_ok(name_end, end))
		return err_set(e, ERR_INVALID, "registry host \"%s\": the port must be a number from 1 "
			       "to 65535", in);
	for (size_t i = 0; i <= n; i++)
		out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
	if (!strcmp(out, "index.docker.io") || !strcmp(out, "registry-1.docker.io"))
		memcpy(out, REGISTRY_DOCKER_HUB, sizeof REGISTRY_DOCKER_HUB);
	return 0;
bad:
	return err_set(e, ERR_INVALID, "\"%.300s\" is not a registry host: expected a DNS name or "
		       "IP address with an optional :PORT (ghcr.io, 127.0.0.1:5000, [::1]:5000)", in);
}

int registry_host_of_ref(const char *ref, char out[REGISTRY_HOST_MAX], struct err *e)
{
	if (!ref || !*ref)
		return err_set(e, ERR_INVALID, "the image reference is empty");
	const char *slash = strchr(ref, '/');
	if (!slash) {
		memcpy(out, REGISTRY_DOCKER_HUB, sizeof REGISTRY_DOCKER_HUB);
		return 0;
	}
	size_t n = (size_t)(slash - ref);
	bool domain = n == 9 && !memcmp(ref, "localhost", 9);
	for (size_t i = 0; i < n && !domain; i++)
		domain = ref[i] == '.' || ref[i] == ':' || (ref[i] >= 'A' && ref[i] <= 'Z');
	if (!domain) {
		memcpy(out, REGISTRY_DOCKER_HUB, sizeof REGISTRY_DOCKER_HUB);
		return 0;
	}
	if (n >= REGISTRY_HOST_MAX)
		return err_set(e, ERR_INVALID, "image \"%.200s\": its registry host is longer than %d "
			       "bytes", ref, REGISTRY_HOST_MAX - 1);
	char host[REGISTRY_HOST_MAX];
	memcpy(host, ref, n);
	host[n] = 0;
	if (registry_host_normalize(host, out, e) < 0)
		return err_prefix(e, "image \"%.200s\"", ref);
	return 0;
}

bool registry_host_is_loopback(const char *host)
{
	size_t n = strcspn(host, host[0] == '[' ? "]" : ":");
	if (host[0] == '[')
		return n == 4 && !memcmp(host, "[::1", 4);
	if (n == 9 && !memcmp(host, "localhost", 9))
		return true;
	/* 127.a.b.c */
	if (n < 7 || memcmp(host, "127.", 4))
		return false;
	int dots = 0, digits = 0;
	for (size_t i = 3; i < n; i++) {
		if (host[i] == '.') {
			if (i > 3 && digits == 0)
				return false;
			dots++;
			digits = 0;
		} else if (host[i] >= '0' && host[i] <= '9' && ++digits <= 3) {
			continue;
		} else {
			return false;
		}
	}
	return dots == 3 && digits > 0;
}

char *registry_base_url(const char *host, bool plain_http)
{
	if (!strcmp(host, REGISTRY_DOCKER_HUB))
		host = "registry-1.docker.io";
	return xasprintf("%s://%s", plain_http ? "http" : "https", host);
}

const char *registry_server_address(const char *host)
{
	return !strcmp(host, REGISTRY_DOCKER_HUB) ? "https://index.docker.io/v1/" : host;
}

/* ---- WWW-Authenticate (RFC 7235 section 4.1, RFC 9110 section 11.6.1) ---- */

static bool tchar(char c)
{
	return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A token or quoted-string value at *pp into out (cap bytes with the NUL); advances *pp.
 * -1 when malformed or too long. */
static int param_value(const char **pp, char *out, size_t cap)
{
	const char *p = *pp;
	size_t n = 0;
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\\')
				p++;
			if (!*p || ((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
				return -1;
			if (n + 1 >= cap)
				return -1;
			out[n++] = *p;
		}
		p++;
	} else {
		for (; tchar(*p); p++) {
			if (n + 1 >= cap)
				return -1;
			out[n++] = *p;
		}
		if (n == 0)
			return -1;
	}
	out[n] = 0;
	*pp = p;
	return 0;
}

int registry_parse_challenge(const char *value, struct registry_challenge *out)
{
	memset(out, 0, sizeof *out);
	const char *p = skip_ows(value), *s = p;
	while (tchar(*p))
		p++;
	size_t slen = (size_t)(p - s);
	if (slen == 0)
		return -1;
	out->scheme = slen == 6 && !strncasecmp(s, "bearer", 6) ? REGISTRY_AUTH_BEARER
		      : slen == 5 && !strncasecmp(s, "basic", 5) ? REGISTRY_AUTH_BASIC
								  : REGISTRY_AUTH_OTHER;
	if (*p && *p != ' ' && *p != '\t' && *p != ',')
		return -1;
	/* auth-params: name BWS "=" BWS value, separated by commas; a token that is not followed
	 * by '=' starts the next challenge, where this one ends. */
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			return 0;
		const char *name = p;
		while (tchar(*p))
			p++;
		size_t nlen = (size_t)(p - name);
		if (nlen == 0)
			return -1;
		const char *q = skip_ows(p);
		if (*q != '=')
			return 0;   /* the next challenge */
		p = skip_ows(q + 1);
		char scratch[1024];
		char *dst = scratch;
		size_t cap = sizeof scratch;
		if (nlen == 5 && !strncasecmp(name, "realm", 5) && !out->realm[0])
			dst = out->realm, cap = sizeof out->realm;
		else if (nlen == 7 && !strncasecmp(name, "service", 7) && !out->service[0])
			dst = out->service, cap = sizeof out->service;
		else if (nlen == 5 && !strncasecmp(name, "scope", 5) && !out->scope[0])
			dst = out->scope, cap = sizeof out->scope;
		if (param_value(&p, dst, cap) < 0)
			return -1;
		p = skip_ows(p);
		if (*p && *p != ',')
			return -1;
	}
}
