/* http/parse.h: the framing layer's inside, shared by the connection code (server.c,
 * respond.c), the request helpers (req.c) and the fuzz harness. Not part of the public face:
 * other modules include http/http.h only.
 *
 * A struct http_reqx is what the framing layer builds at HTTP_EV_HEAD: the public struct
 * http_req first, then the framing facts the connection needs to answer correctly. All its
 * strings live in one arena allocation. */
#ifndef BERTH_HTTP_PARSE_H
#define BERTH_HTTP_PARSE_H
#include "http/http.h"

#define HTTP_DEFAULT_BODY_MAX (1024 * 1024)

struct http_qparam;   /* decoded query parameters, cached by http_req_query */

struct http_reqx {
	struct http_req pub;         /* first: handlers see this */
	char *arena;                 /* method, target, path, query, header names and values */
	struct http_qparam *qcache;
	uint64_t content_length;     /* when has_length */
	unsigned http_minor : 1;     /* 0: HTTP/1.0, 1: HTTP/1.1 */
	unsigned keep_alive : 1;     /* the connection may carry another request after this one */
	unsigned expect_continue : 1;
	unsigned head_method : 1;    /* HEAD: answers carry no body */
	unsigned chunked : 1;
	unsigned has_length : 1;
	unsigned upgrade : 1;        /* Upgrade asked (answered as plain HTTP, then closed) */
};

/* Free a request and everything it owns (body buffer, body_file string: the file itself is
 * the caller's business). Accepts NULL. */
void http_req_free(struct http_req *r);

enum http_parse_phase {
	HTTP_PHASE_IDLE,    /* between requests: no byte of the next one seen */
	HTTP_PHASE_HEAD,    /* some bytes of a request head seen */
	HTTP_PHASE_BODY,    /* head delivered, body (or its end) pending */
	HTTP_PHASE_CLOSED,  /* after a non-keep-alive request, or an error */
};
enum http_parse_phase http_parse_phase(const struct http_parse *p);

/* After HTTP_EV_HEAD: take the request (the caller frees it with http_req_free). Returns
 * NULL when there is none to take. An untaken request is freed by the parser. */
struct http_req *http_parse_take_req(struct http_parse *p);
/* After HTTP_EV_HEAD and before the next feed: the body limit (default 1 MiB). A
 * Content-Length above it makes the next feed answer HTTP_EV_ERROR 413; a chunked body
 * that grows past it, too. Later calls (e.g. to discard a body) also apply. */
void http_parse_set_body_max(struct http_parse *p, uint64_t max);
/* After HTTP_EV_BODY: the body bytes, pointing into the data given to that feed. */
void http_parse_body(const struct http_parse *p, const char **data, size_t *n);
/* Body bytes received so far for the current request. */
uint64_t http_parse_body_seen(const struct http_parse *p);

/* req.c: split the request target found at arena->p + target_off (len bytes) into a
 * percent-decoded path and a raw query, both appended NUL-terminated to the arena.
 * Returns 0 with their offsets, or the status to refuse with (400). */
int http_target_split(struct buf *arena, size_t target_off, size_t len, size_t *path_off,
		      size_t *query_off);
/* Header fields of a head, kept as offsets into an arena of NUL-terminated names and values.
 * Shared by the request parser (here) and the router's response parser. */
struct http_hoff {
	size_t name, value;
};
/* The value that started at value_off in arena is complete: trim trailing blanks (llhttp
 * already dropped leading ones), NUL-terminate it and record (name_off, value_off). */
void http_hoff_push(struct buf *arena, struct http_hoff **v, size_t *n, size_t *cap, size_t name_off,
		    size_t value_off);
/* A Content-Length value: one or more ASCII digits and nothing else. */
int http_digits_only(const char *s);

#endif
