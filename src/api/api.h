/* api: berth's HTTP+JSON API (docs/API.md) on the http connection layer. It authenticates
 * every /v1 call (bearer token, constant-time compare of SHA-256 digests, role check),
 * validates input, writes desired state to the store through model/, and reports progress
 * of changes by waiting on the reconciler. It never starts or stops instances itself. */
#ifndef BERTH_API_H
#define BERTH_API_H
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
};

struct api *api_new(uv_loop_t *loop, const struct api_config *cfg, struct store *st,
		    struct reconciler *rc, struct logs *logs, const struct server_conf *conf,
		    struct err *e);
/* Close the listener. The memory goes now, or when the last deploy or release-code prune
 * running on the work queue ends (accepts NULL). */
void api_free(struct api *a);

/* Tokens (also used by the server at first start). Create a token with a role; the clear
 * token is returned once (caller frees) and only its digest is stored. */
char *api_token_create(struct store *st, const char *name, const char *role, struct err *e);
#endif
