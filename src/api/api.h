/* api: berth's HTTP+JSON API (docs/API.md) on the http connection layer. It authenticates
 * every /v1 call (bearer token, constant-time compare of SHA-256 digests, role check),
 * validates input, writes desired state to the store through model/, and reports progress
 * of changes by waiting on the reconciler. It never starts or stops instances itself. */
#ifndef BERTH_API_H
#define BERTH_API_H
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "util/err.h"

struct api;
struct store;
struct reconciler;
struct logs;
struct server_conf;
struct endpoints;
struct metrics;

struct api_config {
	const char *host;
	int port;
	const char *data_dir;
	struct endpoints *endpoints;  /* routes and healthy instances (NULL: no router) */
	struct metrics *metrics;      /* GET /metrics (NULL: 404) */
	const int *listen_fd;         /* a listening socket handed over by a predecessor (an
	                               * in-place upgrade), owned by the API from here on; NULL:
	                               * bind host:port */
	int64_t started_us;           /* when this server started (GET /healthz says it) */
};

struct api *api_new(uv_loop_t *loop, const struct api_config *cfg, struct store *st,
		    struct reconciler *rc, struct logs *logs, const struct server_conf *conf,
		    struct err *e);
/* Close the listener. The memory goes now, or when the last deploy or release-code prune
 * running on the work queue ends (accepts NULL). */
void api_free(struct api *a);

/* In-place upgrade (docs/upgrade.md). busy: a deploy is uploading, unpacking or building
 * (or a prune runs), with what in why. drain: stop accepting (the socket stays open for
 * api_take_listener) and end the connections: idle ones, streams and `run`/`exec` sessions
 * at once, requests in flight after their answer (bounded by deadline_ms); drained: none is
 * left. take_listener: the listening socket (close-on-exec, the caller's), -1 if none. */
bool api_busy(struct api *a, char *why, size_t n);
void api_drain(struct api *a, uint64_t deadline_ms);
bool api_drained(struct api *a);
int api_take_listener(struct api *a);

/* Tokens (also used by the server at first start). Create a token with a role; the clear
 * token is returned once (caller frees) and only its digest is stored. */
char *api_token_create(struct store *st, const char *name, const char *role, struct err *e);
#endif
