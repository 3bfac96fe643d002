/* err: an error that carries context up, once.
 * A function that can fail takes `struct err *` and returns -1 (or NULL) after filling it;
 * callers add context with err_prefix; the edge (CLI, API response, daemon log) prints it once.
 * Messages say what failed and why, never a bare errno. */
#ifndef BERTH_ERR_H
#define BERTH_ERR_H

struct err {
	int code;        /* category: ERR_* below, for mapping to HTTP status and exit codes */
	char msg[1024];
};

enum {
	ERR_NONE = 0,
	ERR_INTERNAL,    /* 500 */
	ERR_INVALID,     /* 400: bad input from the user */
	ERR_NOTFOUND,    /* 404 */
	ERR_CONFLICT,    /* 409: compare-and-swap lost, or a state that forbids the action */
	ERR_TOOBIG,      /* 413 */
	ERR_AUTH,        /* 401 */
	ERR_FORBIDDEN,   /* 403 */
	ERR_UNAVAILABLE, /* 503 */
};

#define ERR_INIT {0, {0}}

/* Set the message (replaces any earlier one). Returns -1 so callers can `return err_set(...)`. */
int err_set(struct err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Put "context: " in front of the current message. Returns -1. */
int err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* err_set with ": strerror(errnum)" appended. */
int err_errno(struct err *e, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void err_clear(struct err *e);

/* Make s valid UTF-8 in place: a byte that does not start a whole, valid sequence becomes
 * '?' (err_set and err_prefix do this to every message). */
void utf8_fix(char *s);
#endif
