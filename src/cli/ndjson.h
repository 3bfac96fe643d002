/* cli/ndjson: splitting a byte stream (as it arrives from the network, in arbitrary chunks)
 * into NDJSON lines. Bounded: a line longer than max_line is an error, not a reason to
 * buffer without limit. Lines come out without their "\n" (and a "\r" before it); blank
 * lines are skipped. Lines are passed as (pointer, length), not NUL-terminated. */
#ifndef BERTH_CLI_NDJSON_H
#define BERTH_CLI_NDJSON_H
#include <stddef.h>
#include "util/buf.h"
#include "util/err.h"

/* Called once per line; return 0 to go on, anything else to stop (that value is returned
 * by ndjson_feed/ndjson_finish). */
typedef int (*ndjson_line_fn)(const char *line, size_t len, void *ud);

struct ndjson {
	struct buf pending;   /* the start of a line whose '\n' has not arrived yet */
	size_t max_line;
};

void ndjson_init(struct ndjson *s, size_t max_line);
/* Feed n bytes. Returns 0, the callback's non-zero value, or -1 with e set (ERR_TOOBIG)
 * when a line passes max_line. */
int ndjson_feed(struct ndjson *s, const char *data, size_t n, ndjson_line_fn fn, void *ud,
		struct err *e);
/* End of stream: a last line without '\n' is still a line. Same returns as ndjson_feed. */
int ndjson_finish(struct ndjson *s, ndjson_line_fn fn, void *ud);
void ndjson_free(struct ndjson *s);

#endif
