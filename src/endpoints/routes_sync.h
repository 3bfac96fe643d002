/* routes_sync: keeps the endpoints table's routes equal to the routes in the store
 * (/routes/<host><path> -> {"host","path","env","app","process","strip_prefix","balance",
 * "error_pages"}; "error_pages" is an absolute directory on the server or null, and becomes
 * the route's error_dir in the table). Loads them at start and follows every change through
 * a store watch. */
#ifndef BERTH_ROUTES_SYNC_H
#define BERTH_ROUTES_SYNC_H
#include "endpoints/endpoints.h"
#include "store/store.h"
#include "util/err.h"
#include <jansson.h>

struct routes_sync;
/* NULL with e on failure. */
struct routes_sync *routes_sync_start(struct store *st, struct endpoints *eps, struct err *e);
void routes_sync_free(struct routes_sync *s);   /* stops watching; accepts NULL */
/* Key of a route (caller frees). path must start with '/'. */
char *routes_key(const char *host, const char *path);
/* Validate and normalise a route document (host lower-cased, path without trailing '/',
 * process default "web", balance "round-robin"|"least-conn"). 0 or -1 with ERR_INVALID. */
int routes_validate(json_t *doc, struct err *e);
#endif
