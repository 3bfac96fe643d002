/* server: `berth server`. Start-up order matters for crash safety:
 *   lock the data dir -> load config -> cgroups -> sweep instances a dead server left ->
 *   open the store -> admin token -> logs, driver, reconciler (fails half-done rollouts) -> API.
 * Then the one libuv loop runs everything until SIGTERM/SIGINT, which stops the API,
 * stops every instance with its grace period, and exits. SIGUSR2 re-executes the binary in
 * place (server/upgrade.c); the successor starts in the same order, with what its
 * predecessor handed over: the lock, the listening sockets, the running instances (adopted
 * before the router and DNS start, so that they serve from the first request). */
#include "server/server.h"
#include "server/internal.h"
#include "api/api.h"
#include "driver/driver.h"
#include "logs/logs.h"
#include "manifest/manifest.h"
#include "reconcile/reconcile.h"
#include "endpoints/endpoints.h"
#include "endpoints/routes_sync.h"
#include "metrics/metrics.h"
#include "alerts/alerts.h"
#include "alerts/sync.h"
#include "dns/dns.h"
#include "router/router.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/timeutil.h"
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <uv.h>

/* Every flag `berth server` takes. The parser (parse_flags) and the help (`berth help server`,
 * `berth server --help`) both read this table, so they cannot drift apart. */
enum server_flag_id {
	SF_DATA, SF_API, SF_ROUTER, SF_DNS, SF_CONFIG, SF_DOCKER_HOST, SF_QUIET, SF_UPGRADE, SF_HANDOVER_VERSION,
	SF_HELP
};
static const struct server_flag {
	enum server_flag_id id;
	const char *name;         /* "--data" */
	const char *value;        /* what it takes ("DIR"); NULL: nothing */
	const char *help;         /* what it does and its default; '\n' starts a new line */
} server_flags[] = {
	{SF_DATA, "--data", "DIR", "state, logs, releases and volumes (default ./.berth); one server\n"
	 "per DIR (DIR/server.lock)"},
	{SF_API, "--api", "HOST:PORT", "where the API listens (default 127.0.0.1:7070; :PORT is every\n"
	 "address)"},
	{SF_ROUTER, "--router", "HOST:PORT", "where the HTTP router listens (default 127.0.0.1:8080, left\n"
	 "off with a warning when taken; off: no router)"},
	{SF_DNS, "--dns", "HOST:PORT", "DNS service discovery, UDP and TCP (default 127.0.0.1:8600, left\n"
	 "off with a warning when taken; off: no DNS)"},
	{SF_CONFIG, "--config", "FILE", "server config: resource profiles, limits, router:, alerts:,\n"
	 "builds: (default DIR/server.yaml; none: built-in defaults)"},
	{SF_DOCKER_HOST, "--docker-host", "URL", "the container engine: unix:///PATH of its socket (Docker\n"
	 "Engine API; default $DOCKER_HOST; none: no container processes)"},
	{SF_QUIET, "--quiet", NULL, "log only warnings and errors"},
	{SF_UPGRADE, "--upgrade", NULL, "do not start a server: have the one running on DIR re-execute\n"
	 "its binary in place (SIGUSR2), keeping its instances and\n"
	 "listeners, and wait until it serves again (docs/upgrade.md)"},
	{SF_HANDOVER_VERSION, "--handover-version", NULL, NULL},   /* asked by a server before it upgrades */
	{SF_HELP, "--help", NULL, "show this help (also -h)"},
};
#define NSERVER_FLAGS (sizeof server_flags / sizeof server_flags[0])

void server_print_flags(FILE *f)
{
	for (size_t k = 0; k < NSERVER_FLAGS; k++) {
		const struct server_flag *sf = &server_flags[k];
		if (!sf->help)
			continue;   /* berth's own */
		char head[40];
		snprintf(head, sizeof head, "%s%s%s", sf->name, sf->value ? " " : "", sf->value ? sf->value : "");
		fprintf(f, "  %-19s ", head);
		for (const char *p = sf->help; *p; p++) {
			fputc(*p, f);
			if (*p == '\n')
				fprintf(f, "%22s", "");
		}
		fputc('\n', f);
	}
}

static const struct server_flag *server_flag_find(const char *arg)
{
	if (!strcmp(arg, "-h"))
		arg = "--help";
	for (size_t k = 0; k < NSERVER_FLAGS; k++)
		if (!strcmp(server_flags[k].name, arg))
			return &server_flags[k];
	return NULL;
}

bool server_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const struct server_flag *sf = server_flag_find(argv[i]);
		if (!sf)
			return false;         /* a usage error, which the parser reports */
		if (sf->id == SF_HELP)
			return true;
		if (sf->value)
			i++;
	}
	return false;
}

static void usage(FILE *f)
{
	fputs("usage: berth server [FLAGS]\n\nFlags:\n", f);
	server_print_flags(f);
}

static int parse_hostport(const char *s, char **host, int *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon)
		return -1;
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || p < 0 || p > 65535 || colon[1] == 0)
		return -1;
	*host = colon == s ? xstrdup("0.0.0.0") : xstrndup(s, (size_t)(colon - s));
	*port = (int)p;
	return 0;
}

/* The owner tag names this data dir in cgroup names and instance environments. */
static void owner_tag(const char *data, char out[13])
{
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(d, (const unsigned char *)data, strlen(data));
	char hex[65];
	sodium_bin2hex(hex, sizeof hex, d, sizeof d);
	memcpy(out, hex, 12);
	out[12] = 0;
}

static int lock_data(struct server *s, struct err *e)
{
	char *path = xasprintf("%s/server.lock", s->data);
	/* After an in-place upgrade the lock is held already, by the descriptor handed over:
	 * locking it again through that open file succeeds. */
	s->lock_fd = handover_lock_fd(s);
	if (s->lock_fd < 0)
		s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		err_errno(e, errno, "open %s", path);
		free(path);
		return -1;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		char pid[32] = "";
		ssize_t n = pread(s->lock_fd, pid, sizeof pid - 1, 0);
		if (n > 0)
			pid[n] = 0;
		pid[strcspn(pid, "\n")] = 0;
		err_set(e, ERR_CONFLICT, "another berth server%s%s%s is using %s", pid[0] ? " (pid " : "",
			pid[0] ? pid : "", pid[0] ? ")" : "", s->data);
		free(path);
		return -1;
	}
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	if (ftruncate(s->lock_fd, 0) == 0 && pwrite(s->lock_fd, pid, (size_t)n, 0) < 0)
		log_warn("cannot record pid in %s", path);
	free(path);
	return 0;
}

/* The admin token: created on first start (DATA/admin.token, 0600). If the file exists but
 * the store lost it, its digest is registered again; if the file is gone, a new one is made. */
static int ensure_admin_token(struct server *s, struct err *e)
{
	char *path = xasprintf("%s/admin.token", s->data);
	struct buf tok = BUF_INIT;
	int r = 0;
	struct err fe = ERR_INIT;
	if (fs_read_file(path, &tok, 4096, &fe) == 0 && tok.len > 0) {
		while (tok.len && (tok.p[tok.len - 1] == '\n' || tok.p[tok.len - 1] == ' '))
			tok.p[--tok.len] = 0;
		unsigned char d[crypto_hash_sha256_BYTES];
		crypto_hash_sha256(d, (const unsigned char *)tok.p, tok.len);
		char hex[65];
		sodium_bin2hex(hex, sizeof hex, d, sizeof d);
		struct store_kv kv;
		int g = store_get(s->st, "/auth/tokens/admin", &kv, e);
		bool match = false;
		if (g == 0) {
			json_t *doc = json_loads(kv.value, 0, NULL);
			json_t *h = json_object_get(doc, "hash");
			match = json_is_string(h) && sodium_memcmp(json_string_value(h), hex, 64) == 0;
			json_decref(doc);
			store_kv_free(&kv);
		} else if (g < 0) {
			r = -1;
		}
		if (r == 0 && !match) {
			json_t *doc = json_pack("{s:s, s:s, s:s}", "name", "admin", "role", "admin", "hash", hex);
			char *v = json_dumps(doc, JSON_COMPACT);
			r = store_put(s->st, "/auth/tokens/admin", v, e);
			free(v);
			json_decref(doc);
		}
		sodium_memzero(tok.p, tok.len);
		buf_free(&tok);
		if (r == 0)
			log_info("admin token: %s", path);
		free(path);
		return r;
	}
	buf_free(&tok);
	store_del(s->st, "/auth/tokens/admin", NULL);
	char *t = api_token_create(s->st, "admin", "admin", e);
	if (!t) {
		free(path);
		return -1;
	}
	struct buf line = BUF_INIT;
	buf_addf(&line, "%s\n", t);
	r = fs_write_atomic(path, line.p, line.len, 0600, e);
	sodium_memzero(line.p, line.len);
	sodium_memzero(t, strlen(t));
	buf_free(&line);
	free(t);
	if (r == 0)
		log_info("created the admin API token; it is in %s (mode 0600)", path);
	free(path);
	return r;
}

/* Uploads being received and code being unpacked when a previous server died. Finished
 * code directories are renamed into place atomically, so these are always safe to drop. */
static void collect_log_lines(void *arg, struct metrics_emitter *em)
{
	metrics_emit(em, NULL, (double)logs_lines_total(arg));
}

/* Metrics registry and alerts, handed to the reconciler (and the API for /metrics). The
 * alerts object always exists, because an env may get webhooks through the API at any time;
 * its delivery thread and libcurl start only when an alert first has a webhook to go to. */
static int start_observers(struct server *s, struct err *e)
{
	s->metrics = metrics_new();
	if (metrics_default_families(s->metrics, &s->fams, e) < 0)
		return -1;
	metrics_family_set_collect(s->fams.log_lines, collect_log_lines, s->logs);
	struct alerts_conf ac = {
		.server = s->conf.alert_name,
		.urls = (const char *const *)s->conf.alert_webhooks,
		.nurls = s->conf.nalert_webhooks,
		.rate_limit_ms = s->conf.alert_rate_limit_ms > 0 ? s->conf.alert_rate_limit_ms : -1,
	};
	s->alerts = alerts_new(s->loop, &ac, e);
	if (!s->alerts)
		return err_prefix(e, "alerts");
	s->alerts_sync = alerts_sync_start(s->alerts, s->st, &s->conf, e);
	if (!s->alerts_sync)
		return err_prefix(e, "alerts");
	alerts_set_metrics(s->alerts, s->fams.alerts);
	reconciler_observe(s->rc, &s->fams, s->alerts);
	size_t nstored = alerts_sync_store_envs(s->alerts_sync);
	if (s->conf.nalert_webhooks || s->conf.nalert_envs || nstored)
		log_info("alerts: %zu server-wide webhook%s; %zu env%s with their own in server.yaml, %zu set "
			 "through the API", s->conf.nalert_webhooks, s->conf.nalert_webhooks == 1 ? "" : "s",
			 s->conf.nalert_envs, s->conf.nalert_envs == 1 ? "" : "s", nstored);
	return 0;
}

static void collect_dns(void *arg, struct metrics_emitter *em)
{
	const struct dns_stats *st = dns_stats(arg);
	for (int q = 0; q < DNS_STAT_NQTYPE; q++)
		for (int r = 0; r < DNS_STAT_NRCODE; r++)
			if (st->queries[q][r]) {
				const char *labels[] = {dns_stat_qtype_name(q), dns_stat_rcode_name(r)};
				metrics_emit(em, labels, (double)st->queries[q][r]);
			}
}

/* DNS service discovery. A default address that is taken only disables DNS (with a
 * warning); an address asked for with --dns must work. */
static int start_dns(struct server *s, struct err *e)
{
	int udp, tcp;
	bool inherited = handover_dns_fds(s, &udp, &tcp) == 0;
	if (!s->dns_host) {
		if (inherited) {
			close(udp);
			close(tcp);
		}
		return 0;
	}
	struct dns_opts o;
	dns_opts_default(&o);
	if (inherited)
		s->dns = dns_server_new_fds(s->loop, s->eps, udp, tcp, &o, e);
	else
		s->dns = dns_server_new(s->loop, s->eps, s->dns_host, s->dns_port, &o, e);
	if (!s->dns) {
		if (s->dns_explicit)
			return err_prefix(e, "DNS on %s:%d", s->dns_host, s->dns_port);
		log_warn("DNS disabled: %s (pass --dns HOST:PORT)", e->msg);
		err_clear(e);
		return 0;
	}
	metrics_family_set_collect(s->fams.dns_queries, collect_dns, s->dns);
	log_info("DNS on %s:%d (udp+tcp): try dig @%s -p %d web.APP.service.production.consul", s->dns_host,
		 dns_server_port(s->dns), s->dns_host, dns_server_port(s->dns));
	return 0;
}

static void on_access_log(void *arg, const char *lines, size_t n)
{
	struct server *s = arg;
	logs_sink_write(s->access_log, 1, lines, n);
}

static const char *const status_class[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

static void collect_router(void *arg, struct metrics_emitter *em)
{
	struct server *s = arg;
	struct router_stats st;
	router_stats(s->router, &st);
	for (size_t k = 0; k < st.nroutes; k++)
		for (int c = 0; c < 5; c++)
			if (st.routes[k].status[c]) {
				const char *labels[] = {st.routes[k].route[0] ? st.routes[k].route : "unmatched", status_class[c]};
				metrics_emit(em, labels, (double)st.routes[k].status[c]);
			}
	router_stats_release(&st);
}

static void collect_router_errors(void *arg, struct metrics_emitter *em)
{
	struct server *s = arg;
	struct router_stats st;
	router_stats(s->router, &st);
	for (size_t r = 0; r < st.nroutes; r++)
		for (int k = 0; k < ROUTER_UPERR__N; k++)
			if (st.routes[r].upstream_errors[k]) {
				const char *labels[] = {st.routes[r].route[0] ? st.routes[r].route : "unmatched",
							router_uperr_name((enum router_uperr)k)};
				metrics_emit(em, labels, (double)st.routes[r].upstream_errors[k]);
			}
	router_stats_release(&st);
}

static void collect_router_latency(void *arg, struct metrics_emitter *em)
{
	struct server *s = arg;
	struct router_stats st;
	router_stats(s->router, &st);
	for (size_t r = 0; r < st.nroutes; r++) {
		const char *labels[] = {st.routes[r].route[0] ? st.routes[r].route : "unmatched"};
		metrics_emit_histogram(em, labels, st.routes[r].latency, ROUTER_LAT_BUCKETS + 1,
				       (double)st.routes[r].latency_sum_us / 1e6);
	}
	router_stats_release(&st);
}

static void collect_router_totals(void *arg, struct metrics_emitter *em, int which)
{
	struct server *s = arg;
	struct router_stats st;
	router_stats(s->router, &st);
	if (which == 0) {
		metrics_emit(em, NULL, (double)st.retries);
	} else if (which == 1) {
		metrics_emit(em, NULL, (double)st.aborted);
	} else if (which == 2) {
		metrics_emit(em, NULL, (double)st.log_dropped);
	} else {
		static const char *const kinds[] = {"client", "upstream", "upstream_idle", "tunnel"};
		const double v[] = {(double)st.client_conns, (double)st.upstream_conns, (double)st.upstream_idle,
				    (double)st.tunnels};
		for (int k = 0; k < 4; k++) {
			const char *labels[] = {kinds[k]};
			metrics_emit(em, labels, v[k]);
		}
	}
	router_stats_release(&st);
}

static void collect_router_retries(void *arg, struct metrics_emitter *em) { collect_router_totals(arg, em, 0); }
static void collect_router_aborts(void *arg, struct metrics_emitter *em) { collect_router_totals(arg, em, 1); }
static void collect_router_dropped(void *arg, struct metrics_emitter *em) { collect_router_totals(arg, em, 2); }
static void collect_router_conns(void *arg, struct metrics_emitter *em) { collect_router_totals(arg, em, 3); }

/* The HTTP router; like DNS, a taken default address only disables it. Its access log goes
 * to the logs module as DATA/logs/_system/router/access.1.log (`berth logs --router`).
 * Its settings come from server.yaml's router: section (0 / NULL: the router's defaults). */
static int start_router(struct server *s, struct err *e)
{
	int fds[64];
	int nfds = handover_router_fds(s, fds, 64);
	if (!s->router_host) {
		for (int k = 0; k < nfds; k++)
			close(fds[k]);
		return 0;
	}
	s->access_log = logs_sink_open(s->logs, "_system", "router", "access", 1, 0, e);
	if (!s->access_log) {
		for (int k = 0; k < nfds; k++)
			close(fds[k]);
		return -1;
	}
	const struct server_router_conf *cf = &s->conf.router;
	struct router_config rc = {
		.host = s->router_host,
		.port = s->router_port,
		.threads = cf->threads,
		.connect_ms = (uint64_t)cf->connect_ms,
		.header_ms = (uint64_t)cf->header_ms,
		.idle_ms = (uint64_t)cf->idle_ms,
		.response_ms = (uint64_t)cf->response_ms,
		.body_ms = (uint64_t)cf->body_ms,
		.upstream_idle_ms = (uint64_t)cf->upstream_idle_ms,
		.tunnel_idle_ms = (uint64_t)cf->tunnel_idle_ms,
		.pool_max_idle = (unsigned)cf->pool_max_idle,
		.max_body = (uint64_t)cf->max_body,
		.error_dir = cf->error_pages,
		.proto = cf->forwarded_proto,
		.access_log = on_access_log,
		.access_log_arg = s,
		.listen_fds = nfds ? fds : NULL,
		.nlisten_fds = nfds,
	};
	s->router = router_new(s->loop, s->eps, &rc, e);
	if (!s->router) {
		if (s->router_explicit)
			return err_prefix(e, "router on %s:%d", s->router_host, s->router_port);
		log_warn("router disabled: %s (pass --router HOST:PORT)", e->msg);
		err_clear(e);
		return 0;
	}
	metrics_family_set_collect(s->fams.router_requests, collect_router, s);
	metrics_family_set_collect(s->fams.router_upstream_errors, collect_router_errors, s);
	metrics_family_set_collect(s->fams.router_duration, collect_router_latency, s);
	metrics_family_set_collect(s->fams.router_retries, collect_router_retries, s);
	metrics_family_set_collect(s->fams.router_aborts, collect_router_aborts, s);
	metrics_family_set_collect(s->fams.router_log_dropped, collect_router_dropped, s);
	metrics_family_set_collect(s->fams.router_connections, collect_router_conns, s);
	log_info("router on http://%s:%d (try http://APP.localhost:%d/)", s->router_host, router_port(s->router),
		 router_port(s->router));
	if (cf->error_pages)
		log_info("router: error pages from %s", cf->error_pages);
	return 0;
}

static void clean_tmp(struct server *s)
{
	char *tmp = xasprintf("%s/tmp", s->data);
	fs_rm_rf(tmp, NULL);
	free(tmp);
	char *pattern = xasprintf("%s/releases/*/*/.unpack-*", s->data);
	glob_t g;
	if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0) {
		for (size_t k = 0; k < g.gl_pathc; k++)
			fs_rm_rf(g.gl_pathv[k], NULL);
		globfree(&g);
	}
	free(pattern);
}

void server_router_free(struct server *s)
{
	if (!s->router)
		return;
	metrics_family_set_collect(s->fams.router_requests, NULL, NULL);
	metrics_family_set_collect(s->fams.router_upstream_errors, NULL, NULL);
	metrics_family_set_collect(s->fams.router_duration, NULL, NULL);
	metrics_family_set_collect(s->fams.router_retries, NULL, NULL);
	metrics_family_set_collect(s->fams.router_aborts, NULL, NULL);
	metrics_family_set_collect(s->fams.router_log_dropped, NULL, NULL);
	metrics_family_set_collect(s->fams.router_connections, NULL, NULL);
	router_free(s->router);
	s->router = NULL;
}

static void on_stopped(void *arg)
{
	struct server *s = arg;
	/* The router served until every instance had drained; now it goes. */
	server_router_free(s);
	log_info("all instances stopped; bye");
	uv_stop(s->loop);
}

static void on_signal(uv_signal_t *h, int sig)
{
	struct server *s = h->data;
	if (s->stopping) {
		log_warn("second signal: exiting now");
		exit(1);
	}
	log_info("received %s: stopping instances", sig == SIGINT ? "SIGINT" : "SIGTERM");
	if (upgrade_on_stop(s))
		return;
	server_stop(s);
}

static void on_sigusr2(uv_signal_t *h, int sig)
{
	struct server *s = h->data;
	if (s->started)
		upgrade_request(s);
	else if (!s->upgrade_pending) {
		s->upgrade_pending = true;
		log_info("upgrade: asked for during start-up; it begins once the server runs");
	}
}

/* The signals, first of all: one that came during an upgrade's exec waits (blocked) until
 * this image can handle it. */
static void signals_start(struct server *s)
{
	uv_signal_init(s->loop, &s->sigterm);
	uv_signal_init(s->loop, &s->sigint);
	uv_signal_init(s->loop, &s->sigusr2);
	s->sigterm.data = s->sigint.data = s->sigusr2.data = s;
	s->signals = true;
	uv_signal_start(&s->sigterm, on_signal, SIGTERM);
	uv_signal_start(&s->sigint, on_signal, SIGINT);
	uv_signal_start(&s->sigusr2, on_sigusr2, SIGUSR2);
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGUSR2);
	sigprocmask(SIG_UNBLOCK, &ss, NULL);
}

void server_stop(struct server *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	/* The reconciler first: it ends every progress stream with a "done" event saying the
	 * server is shutting down, written while the API's connections are still open; closing
	 * the API first would cut them and the clients would believe the change goes on. */
	struct api *api = s->api;
	s->api = NULL;
	if (s->dns) {
		metrics_family_set_collect(s->fams.dns_queries, NULL, NULL);
		dns_server_close(s->dns, NULL, NULL);
		s->dns = NULL;
	}
	reconciler_shutdown(s->rc, on_stopped, s);
	api_free(api);
}

static int server_run(struct server *s, struct err *e)
{
	if (fs_mkdir_p(s->data, 0700, e) < 0)
		return -1;
	char real[PATH_MAX];
	if (!realpath(s->data, real))
		return err_errno(e, errno, "resolve %s", s->data);
	free(s->data);
	s->data = xstrdup(real);
	s->loop = uv_default_loop();
	signals_start(s);
	if (handover_load(s, e) < 0 || lock_data(s, e) < 0)
		return -1;
	if (!s->conf_path)
		s->conf_path = xasprintf("%s/server.yaml", s->data);
	if (server_conf_load(s->conf_path, &s->conf, e) < 0)
		return -1;
	char tag[13];
	owner_tag(s->data, tag);
	/* The drivers first: the process driver stops what a crashed predecessor left running
	 * before anything else starts (sparing what an upgrading one handed over); the docker
	 * driver's leftovers are adopted later, by the reconciler, once the store says what
	 * should run. */
	s->drivers = drivers_new();
	drivers_add(s->drivers, driver_process_new(s->loop, tag));
	struct driver *pd = drivers_get(s->drivers, "process");
	driver_process_inherit(pd, handover_process(s));
	if (s->docker_host) {
		struct driver *dd = driver_docker_new(s->loop, s->docker_host, s->data, e);
		if (!dd)
			return -1;
		drivers_add(s->drivers, dd);
	}
	struct err se = ERR_INIT;
	if (pd->adopt(pd, tag, NULL, NULL, &se) < 0)
		log_warn("%s", se.msg);
	clean_tmp(s);
	char *dbpath = xasprintf("%s/state.db", s->data);
	s->st = store_open(dbpath, e);
	free(dbpath);
	if (!s->st)
		return -1;
	if (ensure_admin_token(s, e) < 0)
		return -1;
	char *logdir = xasprintf("%s/logs", s->data);
	s->logs = logs_new(logdir, s->conf.log_rotate_bytes, s->conf.log_keep, e);
	free(logdir);
	if (!s->logs)
		return -1;
	s->eps = endpoints_new(s->loop);
	s->routes = routes_sync_start(s->st, s->eps, e);
	if (!s->routes)
		return -1;
	s->rc = reconciler_new(s->loop, s->st, s->drivers, s->logs, s->eps, &s->conf, s->data, tag);
	reconciler_predecessor(s->rc, handover_notes(s));
	if (start_observers(s, e) < 0)
		return -1;
	if (s->ho) {
		/* The instances first: adopted as serving, they are in the endpoints table before the
		 * router and DNS take the connections and queries queued during the exec. */
		if (reconciler_start(s->rc, e) < 0 || start_dns(s, e) < 0 || start_router(s, e) < 0)
			return -1;
	} else {
		if (start_dns(s, e) < 0 || start_router(s, e) < 0 || reconciler_start(s->rc, e) < 0)
			return -1;
	}
	int api_fd = handover_api_fd(s);
	struct api_config ac = {.host = s->api_host, .port = s->api_port, .data_dir = s->data, .endpoints = s->eps,
				.metrics = s->metrics, .listen_fd = api_fd >= 0 ? &api_fd : NULL,
				.started_us = s->started_us};
	s->api = api_new(s->loop, &ac, s->st, s->rc, s->logs, &s->conf, e);
	if (!s->api)
		return -1;
	log_info("berth server: API on http://%s:%d, data in %s", s->api_host, s->api_port, s->data);
	handover_finish(s);
	s->started = true;
	if (s->upgrade_pending)
		upgrade_request(s);
	fflush(stderr);
	uv_run(s->loop, UV_RUN_DEFAULT);
	return 0;
}

/* Orderly teardown after the loop stopped (instances are already stopped). */
static void server_free(struct server *s)
{
	api_free(s->api);
	if (s->rc)
		reconciler_free(s->rc);
	if (s->loop) {
		if (s->signals) {
			uv_close((uv_handle_t *)&s->sigterm, NULL);
			uv_close((uv_handle_t *)&s->sigint, NULL);
			uv_close((uv_handle_t *)&s->sigusr2, NULL);
		}
		/* Let every closing handle run its close callback (they free memory). */
		for (int k = 0; k < 10 && uv_run(s->loop, UV_RUN_NOWAIT); k++)
			;
	}
	if (s->dns)
		dns_server_close(s->dns, NULL, NULL);
	router_free(s->router);
	logs_sink_close(s->access_log);
	alerts_sync_free(s->alerts_sync);
	alerts_free(s->alerts);
	if (s->loop)
		for (int k = 0; k < 10 && uv_run(s->loop, UV_RUN_NOWAIT); k++)
			;
	free(s->rc);
	routes_sync_free(s->routes);
	metrics_free(s->metrics);
	drivers_free(s->drivers);
	endpoints_free(s->eps);
	logs_free(s->logs);
	store_close(s->st);
	server_conf_free(&s->conf);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->data);
	free(s->api_host);
	free(s->dns_host);
	free(s->router_host);
	free(s->conf_path);
	free(s->docker_host);
	free(s->self_bin);
	handover_free(s);
}

/* Flags into s (the table server_flags). -1 to go on and run, else the exit status: 0 after
 * --help, 2 after a usage error (printed). */
static int parse_flags(struct server *s, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const struct server_flag *sf = server_flag_find(argv[i]);
		const char *v = sf && sf->value && i + 1 < argc ? argv[++i] : NULL;
		if (!sf) {
			fprintf(stderr, "berth server: unknown flag %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
		if (sf->value && !v) {
			fprintf(stderr, "berth server: %s wants %s\n", sf->name, sf->value);
			return 2;
		}
		switch (sf->id) {
		case SF_HELP:
			usage(stdout);
			return 0;
		case SF_QUIET:
			log_set_quiet(1);
			break;
		case SF_UPGRADE:
			s->upgrade_client = true;
			break;
		case SF_HANDOVER_VERSION:
			fputs(HANDOVER_BANNER, stdout);
			return 0;
		case SF_DATA:
			free(s->data);
			s->data = xstrdup(v);
			break;
		case SF_CONFIG:
			free(s->conf_path);
			s->conf_path = xstrdup(v);
			break;
		case SF_DOCKER_HOST:
			free(s->docker_host);
			s->docker_host = strcmp(v, "none") ? xstrdup(v) : NULL;
			if (s->docker_host && strncmp(v, "unix://", 7)) {
				fprintf(stderr, "berth server: --docker-host wants unix:///PATH (or none), got \"%s\"\n", v);
				return 2;
			}
			break;
		case SF_ROUTER:
			free(s->router_host);
			s->router_host = NULL;
			s->router_explicit = true;
			if (strcmp(v, "off") && parse_hostport(v, &s->router_host, &s->router_port) < 0) {
				fprintf(stderr, "berth server: --router wants HOST:PORT or off, got \"%s\"\n", v);
				return 2;
			}
			break;
		case SF_DNS:
			free(s->dns_host);
			s->dns_host = NULL;
			s->dns_explicit = true;
			if (strcmp(v, "off") && parse_hostport(v, &s->dns_host, &s->dns_port) < 0) {
				fprintf(stderr, "berth server: --dns wants HOST:PORT or off, got \"%s\"\n", v);
				return 2;
			}
			break;
		case SF_API:
			free(s->api_host);
			s->api_host = NULL;
			if (parse_hostport(v, &s->api_host, &s->api_port) < 0) {
				fprintf(stderr, "berth server: --api wants HOST:PORT, got \"%s\"\n", v);
				return 2;
			}
			break;
		}
	}
	return -1;
}

int server_main(int argc, char **argv)
{
	struct server s = {0};
	s.data = xstrdup("./.berth");
	s.api_host = xstrdup("127.0.0.1");
	s.api_port = 7070;
	s.router_host = xstrdup("127.0.0.1");
	s.router_port = 8080;
	s.dns_host = xstrdup("127.0.0.1");
	s.dns_port = DNS_PORT_DEFAULT;
	s.lock_fd = -1;
	const char *dh = getenv("DOCKER_HOST");
	if (dh && *dh && !strncmp(dh, "unix://", 7))
		s.docker_host = xstrdup(dh);
	s.argc = argc;
	s.argv = argv;
	s.started_us = time_now_us();
	int rc = parse_flags(&s, argc, argv);
	if (rc < 0 && s.upgrade_client)
		rc = upgrade_client(s.data);
	if (rc >= 0) {
		server_free(&s);
		return rc;
	}
	s.self_bin = upgrade_self_path();
	if (sodium_init() < 0) {
		fprintf(stderr, "berth server: libsodium failed to initialise\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	struct err e = ERR_INIT;
	int r = server_run(&s, &e);
	if (r < 0)
		fprintf(stderr, "berth server: %s\n", e.msg);
	server_free(&s);
	return r < 0 ? 1 : 0;
}
