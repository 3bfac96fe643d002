/* alerts/sync: where each env's alert webhooks come from. Two places may set them:
 * server.yaml's alerts.envs (read once at start) and the env's own document in the store
 * (/envs/E "alerts", set through PUT /v1/envs/E/alerts, see model.h). For an env with a
 * non-empty list in the store, that list is used and server.yaml's list for it is not;
 * otherwise server.yaml's (or none). The sync applies both at start and then follows every
 * change of an env document through a store watch, so a change takes effect at once.
 * Main loop only. It never logs a webhook URL, only how many an env has. */
#ifndef BERTH_ALERTS_SYNC_H
#define BERTH_ALERTS_SYNC_H
#include "alerts/alerts.h"
#include "store/store.h"
#include "util/err.h"

struct alerts_sync;
struct server_conf;

/* Apply conf's alerts.envs, then the store's env lists, to a, and start watching. a, st and
 * conf must outlive the sync. NULL with e on a bad URL in conf (prefixed "alerts.envs.E") or
 * a store error; a bad list in the store is logged and skipped (server.yaml's applies). */
struct alerts_sync *alerts_sync_start(struct alerts *a, struct store *st, const struct server_conf *conf,
				      struct err *e);
/* Envs whose webhooks currently come from the store. */
size_t alerts_sync_store_envs(const struct alerts_sync *s);
/* Stop watching and free (before store_close and alerts_free). Accepts NULL. */
void alerts_sync_free(struct alerts_sync *s);
#endif
