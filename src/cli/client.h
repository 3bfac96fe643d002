/* cli/client: the CLI's HTTP client for the berth API (docs/API.md), on libcurl.
 * It finds the server (--api, BERTH_API, default http://127.0.0.1:7070) and the token
 * (--token, --data DIR -> DIR/admin.token, BERTH_TOKEN, BERTH_DATA -> its admin.token, then
 * ./.berth/admin.token when readable), sends JSON or a raw body, and returns either a parsed
 * JSON object or, for progress and log streams, one NDJSON line at a time.
 * Every failure comes back as one struct err whose message is ready to print after
 * "berth: ": the server's {"error"} text, a connection problem naming the URL, or a 401 with
 * a hint about where the token came from. The token is never put in a message. */
#ifndef BERTH_CLI_CLIENT_H
#define BERTH_CLI_CLIENT_H
#include <stddef.h>
#include <jansson.h>
#include "util/buf.h"
#include "util/err.h"

#define CLIENT_DEFAULT_API "http://127.0.0.1:7070"

struct client {
	char *base;         /* "http://127.0.0.1:7070": no trailing '/' */
	char *token;        /* NULL when none was found; never printed */
	char *token_from;   /* where the token came from, for hints ("BERTH_TOKEN", a path) */
	void *curl;         /* CURL *, reused across requests */
};

/* api, token, data: the flags (NULL when not given); environment variables fill the rest.
 * Fails (ERR_INVALID) on an API URL that is not http(s), or when --data/BERTH_DATA names
 * a directory whose admin.token cannot be read. Close with client_close. */
int client_open(struct client *c, const char *api, const char *token, const char *data,
		struct err *e);
void client_close(struct client *c);   /* accepts a zeroed client */

/* Append s percent-encoded for use as one path segment or query value. */
void client_escape(struct buf *b, const char *s);
/* Normalise an API address: "127.0.0.1:7070" -> "http://127.0.0.1:7070", trailing '/'
 * dropped. Returns an owned string, or NULL (e set) for another scheme or an empty one. */
char *client_base_url(const char *api, struct err *e);

/* method "GET"/"POST"/"DELETE"; path starts with "/v1/..." (already escaped); body NULL for
 * none. On a 2xx answer *out is the JSON object (new reference). */
int client_json(struct client *c, const char *method, const char *path, json_t *body,
		json_t **out, struct err *e);

/* Called per NDJSON line (not NUL-terminated). Return 0 to go on, a positive value to stop. */
typedef int (*client_line_fn)(const char *line, size_t len, void *ud);

/* Send a request whose 2xx answer is NDJSON and deliver it line by line as it arrives.
 * ctype/body/n: the request body (NULL/0 for none). Returns 0 when the server ended the
 * stream, the callback's positive value when it stopped it, -1 with e set on any error
 * (a non-2xx answer is read whole and turned into its {"error"} message). */
int client_stream(struct client *c, const char *method, const char *path, const char *ctype,
		  const void *body, size_t n, client_line_fn fn, void *ud, struct err *e);

#endif
