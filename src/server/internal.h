/* server/internal.h: what the server's files share (private to src/server).
 *
 *   server.c    `berth server`: flags, start-up order, signals, orderly shutdown
 *   upgrade.c   the in-place upgrade (docs/upgrade.md): SIGUSR2 -> check the new binary ->
 *               wait until nothing would be interrupted -> drain the listeners -> hand the
 *               instances over -> exec; the successor's side (reading the hand-over); and
 *               `berth server --upgrade`, the client that asks for one and waits for it
 *
 * The struct server is the daemon's state; only these two files see it. */
#ifndef BERTH_SERVER_INTERNAL_H
#define BERTH_SERVER_INTERNAL_H
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include <jansson.h>
#include "manifest/manifest.h"
#include "metrics/metrics.h"
#include "util/err.h"

struct upgrade;
struct handover;

struct server {
	uv_loop_t *loop;
	char *data;
	char *api_host;
	int api_port;
	char *dns_host;
	int dns_port;
	bool dns_explicit;
	struct dns_server *dns;
	char *router_host;
	int router_port;
	bool router_explicit;
	struct router *router;
	struct log_sink *access_log;
	char *conf_path;
	struct server_conf conf;
	struct store *st;
	struct logs *logs;
	struct drivers *drivers;
	char *docker_host;       /* --docker-host or DOCKER_HOST; NULL: no container engine */
	struct reconciler *rc;
	struct endpoints *eps;
	struct routes_sync *routes;
	struct metrics *metrics;
	struct metrics_families fams;
	struct alerts *alerts;
	struct alerts_sync *alerts_sync;   /* per-env webhooks: server.yaml + store */
	struct api *api;
	uv_signal_t sigterm, sigint, sigusr2;
	bool signals;            /* the three watchers above are initialised */
	bool stopping;
	int lock_fd;
	/* in-place upgrade */
	int argc;                /* the server's own command line ("server", its flags), for */
	char **argv;             /* the re-exec (borrowed from main) */
	char *self_bin;          /* the binary to run then: the path it was started as */
	int64_t started_us;      /* when this process image started (GET /healthz) */
	bool started;            /* start-up is over: an upgrade may begin */
	bool upgrade_pending;    /* SIGUSR2 came during start-up */
	bool upgrade_client;     /* --upgrade: ask the running server, do not be one */
	struct upgrade *up;      /* an upgrade under way (upgrade.c) */
	struct handover *ho;     /* the predecessor's hand-over, during start-up (upgrade.c) */
};

/* server.c: stop everything (SIGTERM's work); the loop ends when it is done. */
void server_stop(struct server *s);
/* server.c: unhook the router from the metrics and free it (after a stop or a drain). */
void server_router_free(struct server *s);

/* ---- upgrade.c: the predecessor's side ---- */
/* SIGUSR2: start an upgrade (ignored, with a log line, while one is under way). */
void upgrade_request(struct server *s);
/* A SIGTERM/SIGINT came. Returns true when the upgrade takes it over (the instances are being
 * handed over: the successor stops as soon as it runs); false after abandoning an upgrade
 * that had not got that far (the server then stops as usual). */
bool upgrade_on_stop(struct server *s);

/* ---- upgrade.c: the successor's side ---- */
/* At start-up: read the hand-over a predecessor left for this process (BERTH_HANDOVER) into
 * s->ho, or remove a stale one. -1 with e when it cannot be used. */
int handover_load(struct server *s, struct err *e);
/* What the predecessor handed over (-1 / NULL: nothing; each is taken once and owned by the
 * caller from then on). */
int handover_lock_fd(struct server *s);
int handover_api_fd(struct server *s);
int handover_router_fds(struct server *s, int *fds, int max);
int handover_dns_fds(struct server *s, int *udp_fd, int *tcp_fd);
json_t *handover_process(struct server *s);
json_t *handover_notes(struct server *s);
/* Start-up is over: report the upgrade as done (DATA/upgrade.result, the log), close what
 * nobody took, stop at once if a SIGTERM reached the predecessor during the hand-over. */
void handover_finish(struct server *s);
void handover_free(struct server *s);

/* ---- upgrade.c: `berth server --upgrade --data DIR` ---- */
int upgrade_client(const char *data);
/* The binary an upgrade re-executes: argv[0] as this process was started, made absolute
 * (caller frees). */
char *upgrade_self_path(void);
/* `berth server --handover-version`: the versions of the hand-over this binary can take (a
 * predecessor checks that its own is one of them before it execs this binary). */
#define HANDOVER_VERSION 1
#define HANDOVER_BANNER "berth-handover 1\n"
#endif
