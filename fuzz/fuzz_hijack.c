/* fuzz_hijack: libFuzzer harness for the head of a hijacked engine answer (the 101/200 that
 * turns an exec start or an attach into a raw stream; src/driver/hijack.c), and for the
 * image references that become engine paths (src/driver/imageref.c).
 * Invariants: a complete head is reported with a length inside the input that ends with
 * CRLF CRLF, and a status code of three digits; the answer does not depend on bytes after the
 * head; an incomplete head is never reported as complete, and more than 8 KiB without one is
 * refused. Every escaped path or query holds only unreserved characters and %XX. */
#include "driver/docker.h"
#include "manifest/manifest.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "fuzz_hijack: %s:%d: check failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                                 \
			abort();                                                          \
		}                                                                         \
	} while (0)

static void check_escaped(const char *s, const char *allowed_extra)
{
	for (const char *p = s; *p; p++) {
		if (*p == '%') {
			CHECK(strchr("0123456789ABCDEF", p[1]) && p[1] && strchr("0123456789ABCDEF", p[2]) && p[2]);
			p += 2;
			continue;
		}
		CHECK((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("-._~", *p) || strchr(allowed_extra, *p));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t hl = 0;
	int code = hijack_parse_head((const char *)data, size, &hl);
	if (code > 0) {
		CHECK(code >= 100 && code <= 999);
		CHECK(hl >= 4 && hl <= size);
		CHECK(!memcmp(data + hl - 4, "\r\n\r\n", 4));
		size_t hl2 = 0;
		CHECK(hijack_parse_head((const char *)data, hl, &hl2) == code && hl2 == hl);
	} else if (code == 0) {
		CHECK(size <= 8192);
	}
	/* the same bytes as an image reference */
	char *ref = malloc(size + 1);
	memcpy(ref, data, size);
	ref[size] = 0;
	if (strlen(ref) == size && manifest_image_ref_valid(ref)) {
		char *pull = docker_pull_path(ref);
		CHECK(!strncmp(pull, "/images/create?fromImage=", 25));
		check_escaped(pull + 25, "&=");
		free(pull);
		char *path = docker_image_path(ref, NULL);
		CHECK(!strncmp(path, "/images/", 8));
		check_escaped(path + 8, "");
		free(path);
	}
	free(ref);
	return 0;
}
