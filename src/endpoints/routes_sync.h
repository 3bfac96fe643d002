/* routes_sync: keeps what the router serves equal to what the store says:
 *  - the endpoints table's routes equal to the routes in the store (/routes/<host><path> ->
 *    {"host","path","env","app","process","strip_prefix","balance","error_pages"};
 *    "error_pages" is an absolute directory on the server or null, and becomes the route's
 *    error_dir in the table);
 *  - the table's apps in maintenance mode equal to the app documents (/envs/E/apps/A) whose
 *    "maintenance" is true (an absent field, or a deleted app, is off).
 * Loads both at start (before the router reads a snapshot, so maintenance mode survives a
 * restart) and follows every change through store watches. */
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
