/* fuzz_manifest: libFuzzer harness for the manifest parsers. Each input is read as a
 * berth.yaml and as a Procfile; whatever parses must also survive a JSON round trip, and
 * must come back equal (the store relies on it). Any crash, leak or sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "manifest/manifest.h"

static void roundtrip(const struct manifest *m)
{
	json_t *j = manifest_to_json(m);
	struct manifest back;
	struct err e = ERR_INIT;
	if (manifest_from_json(j, &back, &e) < 0)
		abort();                /* what a parser accepted, from_json must accept too */
	json_t *j2 = manifest_to_json(&back);
	if (!json_equal(j, j2))
		abort();
	json_decref(j2);
	json_decref(j);
	manifest_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest m;
	struct err e = ERR_INIT;
	if (manifest_parse_yaml("berth.yaml", (const char *)data, size, &m, &e) == 0) {
		roundtrip(&m);
		manifest_free(&m);
	} else if (!e.msg[0]) {
		abort();                /* every failure must say why */
	}
	e = (struct err)ERR_INIT;
	if (manifest_parse_procfile("Procfile", (const char *)data, size, &m, &e) == 0) {
		roundtrip(&m);
		manifest_free(&m);
	} else if (!e.msg[0]) {
		abort();
	}
	int64_t n;
	char *s = strndup((const char *)data, size < 64 ? size : 64);
	if (s) {
		parse_size(s, &n);
		free(s);
	}
	return 0;
}
