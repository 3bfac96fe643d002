/* router/resp.h: framing of upstream responses, without I/O (llhttp in response mode,
 * strict, plus berth's own limits and refusals). The router feeds it what an upstream
 * connection reads; fuzz/fuzz_http_resp.c drives it directly.
 *
 * Refused (RESP_EV_ERROR): a head over RESP_MAX_HEAD bytes or with more than
 * HTTP_MAX_HEADERS fields, control bytes in a header value or reason phrase, both
 * Content-Length and Transfer-Encoding, a Transfer-Encoding other than exactly "chunked",
 * a malformed or duplicate Content-Length, a bad chunk, and whatever llhttp refuses. */
#ifndef BERTH_ROUTER_RESP_H
#define BERTH_ROUTER_RESP_H
#include <stddef.h>
#include <stdint.h>
#include "http/http.h"

#define RESP_MAX_HEAD (64 * 1024)

struct resp_head {
	int status;                  /* 100..999 */
	int minor;                   /* HTTP/1.minor */
	const char *reason;          /* reason phrase as sent ("" if none) */
	struct http_header *headers; /* name as received, value trimmed */
	size_t nheaders;
	uint64_t content_length;     /* when has_length */
	unsigned has_length : 1;
	unsigned chunked : 1;
	unsigned no_body : 1;        /* HEAD answer, 1xx, 204, 304 */
	unsigned upgrade : 1;        /* 101: the connection is raw bytes after the head */
};

enum resp_event { RESP_EV_NONE, RESP_EV_HEAD, RESP_EV_BODY, RESP_EV_DONE, RESP_EV_ERROR };

struct resp_parse;

struct resp_parse *resp_parse_new(void);
void resp_parse_free(struct resp_parse *p);
/* Get ready for the answer to a request (head_request: the request was HEAD, so the answer
 * has no body whatever it says). Interim answers (100, 102, 103) come as RESP_EV_HEAD +
 * RESP_EV_DONE and parsing goes on with the next answer without a new start. */
void resp_parse_start(struct resp_parse *p, int head_request);
/* Feed bytes; returns how many were consumed, stopping after each event (as
 * http_parse_feed). After RESP_EV_HEAD feed again (even with no bytes) to go on; a 101
 * head stops the parser: the bytes after it are the tunnel's. After RESP_EV_DONE the
 * bytes left over belong to no answer. Errors stick. */
size_t resp_parse_feed(struct resp_parse *p, const char *data, size_t n, enum resp_event *ev);
/* The upstream closed its side: RESP_EV_DONE when that ends a close-delimited body (or
 * after RESP_EV_DONE already), RESP_EV_ERROR otherwise. */
enum resp_event resp_parse_eof(struct resp_parse *p);
/* After RESP_EV_HEAD, until the next resp_parse_start: the head. */
const struct resp_head *resp_parse_head(const struct resp_parse *p);
/* After RESP_EV_BODY: the body bytes (pointing into the data given to that feed). */
void resp_parse_body(const struct resp_parse *p, const char **data, size_t *n);
/* After RESP_EV_DONE: may the connection carry another request? */
int resp_parse_keep_alive(const struct resp_parse *p);
/* Bytes of the answer's head and body seen so far (from resp_parse_start on). */
uint64_t resp_parse_seen(const struct resp_parse *p);
/* After RESP_EV_ERROR: what was wrong, for the log ("invalid chunk size"). */
const char *resp_parse_error(const struct resp_parse *p);
#endif
