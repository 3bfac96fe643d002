/* fuzz_registry: libFuzzer harness for the pure half of src/registry (ref.c): the
 * WWW-Authenticate challenge parser (a remote registry's header), registry hosts as a user
 * writes them, and image references. An input starting "H\n" is a host, "R\n" a reference,
 * anything else a challenge header value.
 * Invariants checked:
 *  - an accepted challenge has NUL-terminated fields within their arrays and no control
 *    byte but tab in them;
 *  - an accepted host comes out lower-case, without '/', shorter than REGISTRY_HOST_MAX, and
 *    normalising it again gives it back (idempotent); the loopback test never crashes;
 *  - the host of an accepted reference is itself a normalised host;
 *  - every refusal says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "registry/registry.h"

static void check_field(const char *f, size_t cap)
{
	size_t n = strnlen(f, cap);
	if (n >= cap)
		abort();
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)f[i] < 0x20 && f[i] != '\t') || f[i] == 0x7f)
			abort();
}

static void check_host(const char *h)
{
	size_t n = strnlen(h, REGISTRY_HOST_MAX);
	if (n == 0 || n >= REGISTRY_HOST_MAX || strchr(h, '/'))
		abort();
	for (size_t i = 0; i < n; i++)
		if (h[i] >= 'A' && h[i] <= 'Z')
			abort();
	char again[REGISTRY_HOST_MAX];
	struct err e = ERR_INIT;
	if (registry_host_normalize(h, again, &e) != 0 || strcmp(again, h))
		abort();
	(void)registry_host_is_loopback(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	struct err e = ERR_INIT;
	char out[REGISTRY_HOST_MAX];
	if (size >= 2 && (s[0] == 'H' || s[0] == 'R') && s[1] == '\n') {
		int r = s[0] == 'H' ? registry_host_normalize(s + 2, out, &e) : registry_host_of_ref(s + 2, out, &e);
		if (r == 0)
			check_host(out);
		else if (r != -1 || !e.msg[0])
			abort();
	} else {
		struct registry_challenge c;
		int r = registry_parse_challenge(s, &c);
		if (r == 0) {
			check_field(c.realm, sizeof c.realm);
			check_field(c.service, sizeof c.service);
			check_field(c.scope, sizeof c.scope);
		} else if (r != -1) {
			abort();
		}
	}
	free(s);
	return 0;
}
