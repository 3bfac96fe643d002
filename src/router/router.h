/* router: berth's HTTP/1.1 reverse proxy (docs/router.md has the user-facing behaviour).
 *
 * router_new starts N router threads, each with its own libuv loop and its own listening
 * socket on the same address (SO_REUSEPORT: the kernel spreads connections over them).
 * Requests are routed by Host and longest path prefix through an immutable endpoints
 * snapshot (endpoints.h) to the healthy instances of a process, balanced round-robin or
 * least-connections, over a per-thread pool of keep-alive upstream connections. Bodies are
 * streamed both ways (never buffered whole), pipelined requests are answered in order,
 * `Upgrade: websocket` becomes a raw tunnel after the 101.
 *
 * Threads and ownership: the struct router lives on the main loop (the one given to
 * router_new); router_new, router_free, router_stats and router_port are main-loop calls.
 * The router registers one endpoints reader per thread; each new snapshot is handed to
 * every thread (uv_async), which adopts it and reports the version with
 * endpoints_adopted(). An endpoint's `inflight` counts requests sent to it whose answer is
 * not finished; it always returns to zero (that is what draining waits on).
 * Router threads never write files: access-log lines are batched per thread and handed to
 * the main loop, which calls config->access_log. */
#ifndef BERTH_ROUTER_H
#define BERTH_ROUTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "endpoints/endpoints.h"
#include "util/err.h"

/* Defaults (milliseconds unless said otherwise). */
#define ROUTER_CONNECT_MS 2000          /* upstream connect */
#define ROUTER_HEADER_MS 10000          /* client request head, from its first byte */
#define ROUTER_IDLE_MS 60000            /* client keep-alive idle */
#define ROUTER_RESPONSE_MS 60000        /* upstream silence while a response is awaited/read */
#define ROUTER_BODY_MS 60000            /* client silence while sending a body or not reading */
#define ROUTER_UPSTREAM_IDLE_MS 15000   /* pooled upstream connection idle */
#define ROUTER_TUNNEL_IDLE_MS 3600000   /* websocket tunnel with no traffic either way */
#define ROUTER_POOL_MAX_IDLE 64         /* idle upstream connections per endpoint per thread */
#define ROUTER_MAX_CONNS 10000          /* client connections per thread */

struct router_config {
	const char *host;            /* listen address (IPv4 or IPv6 literal); NULL: "127.0.0.1" */
	int port;                    /* 0: any free port (router_port() tells which) */
	int threads;                 /* router loops; <= 0: number of CPUs */
	/* Timeouts in ms; 0 keeps the default above. */
	uint64_t connect_ms, header_ms, idle_ms, response_ms, body_ms, upstream_idle_ms, tunnel_idle_ms;
	unsigned pool_max_idle;      /* 0: ROUTER_POOL_MAX_IDLE */
	size_t max_conns;            /* per thread; 0: ROUTER_MAX_CONNS */
	uint64_t max_body;           /* request body limit in bytes (413 above); 0: unlimited */
	/* Directory with 404.html / 502.html / 503.html / 504.html replacing the built-in pages
	 * (a route's own error_dir is looked at first). NULL: built-in pages only. */
	const char *error_dir;
	const char *proto;           /* X-Forwarded-Proto sent upstream; NULL: "http" */
	/* Called on the main loop with one or more complete access-log lines (each ends with
	 * '\n'; n bytes, not NUL-terminated). NULL: lines are dropped. */
	void (*access_log)(void *arg, const char *lines, size_t n);
	void *access_log_arg;
	/* Listening sockets a predecessor handed over (an in-place upgrade, docs/upgrade.md):
	 * one router thread per socket, host and port are then only for messages; the router
	 * owns them from here on, even when router_new fails. NULL: bind host:port. */
	const int *listen_fds;
	int nlisten_fds;
};

struct router;

/* Start the router on host:port reading endpoints from eps (which must outlive it).
 * Returns NULL with e filled ("router: listen on 127.0.0.1:8080: Address already in use");
 * like router_free, a failure leaves one handle closing on main, freed when it next runs. */
struct router *router_new(uv_loop_t *main, struct endpoints *eps, const struct router_config *cfg,
			  struct err *e);
/* Stop listening, close every connection (requests in flight are aborted and their
 * endpoints' inflight released), join the threads, hand the last access-log lines to the
 * callback, free (one handle closes on main: run the loop once more). Accepts NULL. The endpoints table keeps the readers (it has no way to
 * remove one): they stay registered as having adopted every version, so they never hold
 * up a drain, and their callbacks do nothing. */
void router_free(struct router *r);

/* The bound port (useful after asking for port 0). */
int router_port(const struct router *r);

/* In-place upgrade (server/upgrade.c). router_drain stops accepting (the kernel keeps
 * queueing connections on the listening sockets, which the router keeps open for
 * router_take_listeners) and ends every client connection softly: a request in flight, or
 * the next one a keep-alive client sends within idle_grace_ms, is answered with
 * "Connection: close"; a connection still idle after idle_grace_ms is closed; websocket
 * tunnels are closed at once; whatever is left at deadline_ms is cut. router_drained is
 * true once every connection has had its last answer flushed. Main loop. */
void router_drain(struct router *r, uint64_t idle_grace_ms, uint64_t deadline_ms);
bool router_drained(const struct router *r);
/* After router_drained: the listening sockets (close-on-exec; the caller owns them), at most
 * max of them; returns how many. */
int router_take_listeners(struct router *r, int *fds, int max);
/* The oldest snapshot version any router thread still routes with. */
uint64_t router_adopted_version(const struct router *r);

/* ---- statistics (aggregated over threads; counters only grow) ---- */

enum router_uperr {
	ROUTER_UPERR_CONNECT,          /* connect refused / failed */
	ROUTER_UPERR_CONNECT_TIMEOUT,
	ROUTER_UPERR_RESET,            /* connection closed or reset before the response ended */
	ROUTER_UPERR_TIMEOUT,          /* no response byte for response_ms */
	ROUTER_UPERR_BAD_RESPONSE,     /* unparseable or refused response head/body */
	ROUTER_UPERR__N
};
const char *router_uperr_name(enum router_uperr k);   /* "connect", "connect_timeout", ... */

/* Latency histogram (time from a request's first byte to the end of its answer): upper
 * bounds in microseconds of the finite buckets (0.5 ms ... 30 s, the same as the metrics
 * module's router buckets); one more bucket counts the rest (+Inf). Counts are per bucket
 * (not cumulative). */
#define ROUTER_LAT_BUCKETS 15
extern const uint64_t router_latency_bounds_us[ROUTER_LAT_BUCKETS];

struct router_route_stats {
	char *route;                 /* "host/path" ("example.com/careers"); "" for unrouted */
	uint64_t status[5];          /* answers by class: [0] 1xx ... [4] 5xx */
	uint64_t aborted;            /* client left before the answer began */
	uint64_t upstream_errors[ROUTER_UPERR__N];
	uint64_t latency[ROUTER_LAT_BUCKETS + 1];
	uint64_t latency_sum_us;
};

struct router_stats {
	uint64_t requests;           /* finished requests, answered or not */
	uint64_t status[5];          /* by class, over all routes */
	uint64_t aborted;
	uint64_t retries;            /* attempts on another endpoint or a fresh connection */
	uint64_t upstream_errors[ROUTER_UPERR__N];
	uint64_t latency[ROUTER_LAT_BUCKETS + 1];
	uint64_t latency_sum_us;
	uint64_t log_dropped;        /* access-log lines dropped (main loop too far behind) */
	struct router_route_stats *routes;   /* sorted by route */
	size_t nroutes;
	/* gauges */
	uint64_t client_conns, upstream_conns, upstream_idle, tunnels;
};

/* Fill st (main loop). Free with router_stats_release. */
void router_stats(struct router *r, struct router_stats *st);
void router_stats_release(struct router_stats *st);
#endif
