/* health: one health probe of one instance, on the daemon's loop, never blocking it.
 * HTTP: GET path on host:port, healthy on 2xx/3xx. TCP: connect succeeds. EXEC: the command
 * (/bin/sh -c, in cwd, with env) exits 0. Every probe ends within the spec's timeout.
 * Scheduling (when to probe, fast at first then backing off) is the supervisor's job. */
#ifndef BERTH_HEALTH_H
#define BERTH_HEALTH_H
#include <uv.h>
#include "manifest/manifest.h"

struct health_probe;
/* ok = 1 healthy, 0 not; detail says why ("GET /healthz: 500", "connect: connection refused",
 * "timed out after 1000 ms", "exit status 3"). Called exactly once unless cancelled. */
typedef void (*health_done_fn)(void *arg, int ok, const char *detail);

/* Start a probe. For EXEC, env is a NULL-terminated "K=V" array (copied). NULL when the
 * spec kind is NONE. */
struct health_probe *health_probe_start(uv_loop_t *loop, const struct health_spec *spec,
					const char *host, int port, const char *cwd,
					char *const *env, health_done_fn fn, void *arg);
/* Cancel a probe in flight: fn will not be called; memory is released asynchronously. */
void health_probe_cancel(struct health_probe *p);
#endif
