/* metrics families: berth's own metric families (names, labels, buckets and limits exactly as
 * docs/metrics.md lists them) and the berth_process_* collectors that read /proc/self at
 * scrape time. Collectors for instances and log lines belong to the modules that know them;
 * the server sets them with metrics_family_set_collect. */
#include "metrics/internal.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/fsutil.h"

/* ---- process collectors ---- */

enum proc_metric {
	PROC_RSS, PROC_VSIZE, PROC_FDS, PROC_MAX_FDS, PROC_START, PROC_CPU, PROC_THREADS,
};

/* Field n (1-based, as in proc(5)) of /proc/self/stat, or -1. The command name in field 2
 * may hold spaces and parentheses, so fields are counted from the last ')'. */
static long long stat_field(int n)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	long long v = -1;
	if (fs_read_file("/proc/self/stat", &b, 4096, &e) == 0 && b.len) {
		const char *p = strrchr(b.p, ')');
		int field = 2;
		while (p && *p && field < n) {
			p = strchr(p, ' ');
			if (p)
				p++;
			field++;
		}
		if (p && *p) {
			char *end;
			long long x = strtoll(p, &end, 10);
			if (end != p)
				v = x;
		}
	}
	buf_free(&b);
	return v;
}

static long long boot_time(void)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	long long v = -1;
	if (fs_read_file("/proc/stat", &b, 1 << 20, &e) == 0 && b.len) {
		const char *p = strstr(b.p, "\nbtime ");
		if (p)
			v = strtoll(p + 7, NULL, 10);
	}
	buf_free(&b);
	return v;
}

static double open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	double n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;   /* the directory stream's own descriptor */
}

static void process_collect(void *arg, struct metrics_emitter *em)
{
	double v = -1;
	switch ((enum proc_metric)(intptr_t)arg) {
	case PROC_RSS: {
		long long pages = stat_field(24);
		if (pages >= 0)
			v = (double)pages * (double)sysconf(_SC_PAGESIZE);
		break;
	}
	case PROC_VSIZE:
		v = (double)stat_field(23);
		break;
	case PROC_FDS:
		v = open_fds();
		break;
	case PROC_MAX_FDS: {
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
			v = rl.rlim_cur == RLIM_INFINITY ? 1e18 : (double)rl.rlim_cur;
		break;
	}
	case PROC_START: {
		long long ticks = stat_field(22), btime = boot_time();
		long hz = sysconf(_SC_CLK_TCK);
		if (ticks >= 0 && btime >= 0 && hz > 0)
			v = (double)btime + (double)ticks / (double)hz;
		break;
	}
	case PROC_CPU: {
		struct rusage ru;
		if (getrusage(RUSAGE_SELF, &ru) == 0)
			v = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		break;
	}
	case PROC_THREADS:
		v = (double)stat_field(20);
		break;
	}
	if (v >= 0)
		metrics_emit(em, NULL, v);
}

/* ---- the families ---- */

static const char *const L_EAP[] = {"env", "app", "process"};
static const char *const L_EAPS[] = {"env", "app", "process", "state"};
static const char *const L_EAO[] = {"env", "app", "outcome"};
static const char *const L_EA[] = {"env", "app"};
static const char *const L_ROUTE_STATUS[] = {"route", "status"};
static const char *const L_ROUTE[] = {"route"};
static const char *const L_ROUTE_KIND[] = {"route", "kind"};
static const char *const L_DNS[] = {"qtype", "rcode"};
static const char *const L_KIND[] = {"kind"};
static const char *const L_ALERTS[] = {"kind", "outcome"};

/* Deploys aim well under a second for a small app and may wait minutes on health deadlines. */
static const double DEPLOY_BUCKETS[] = {0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600};
/* Proxied requests: sub-millisecond on loopback up to slow upstreams near the timeouts. */
static const double ROUTER_BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					0.25, 0.5, 1, 2.5, 5, 10, 30};

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct fam_def {
	size_t offset;     /* into struct metrics_families, or SIZE_MAX for a process metric */
	struct metric_desc d;
	enum proc_metric proc;
};

static const struct fam_def DEFS[] = {
	{offsetof(struct metrics_families, instances),
	 {"berth_instances", "Instances by state (starting, running, unhealthy, backoff, stopping).",
	  METRIC_GAUGE, L_EAPS, 4, NULL, 0, 5000}, 0},
	{offsetof(struct metrics_families, instance_restarts),
	 {"berth_instance_restarts_total", "Instance restarts after an unexpected exit.",
	  METRIC_COUNTER, L_EAP, 3, NULL, 0, 2000}, 0},
	{offsetof(struct metrics_families, health_failures),
	 {"berth_health_check_failures_total", "Failed health checks of instances.",
	  METRIC_COUNTER, L_EAP, 3, NULL, 0, 2000}, 0},
	{offsetof(struct metrics_families, deploys),
	 {"berth_deploys_total", "Finished rollouts by outcome (succeeded, failed, rolled_back).",
	  METRIC_COUNTER, L_EAO, 3, NULL, 0, 3000}, 0},
	{offsetof(struct metrics_families, deploy_duration),
	 {"berth_deploy_duration_seconds", "Time from a rollout's start to its outcome.",
	  METRIC_HISTOGRAM, L_EA, 2, DEPLOY_BUCKETS, N(DEPLOY_BUCKETS), 1000}, 0},
	{offsetof(struct metrics_families, router_requests),
	 {"berth_router_requests_total", "HTTP requests answered by the router, by route and status class.",
	  METRIC_COUNTER, L_ROUTE_STATUS, 2, NULL, 0, 6000}, 0},
	{offsetof(struct metrics_families, router_duration),
	 {"berth_router_request_duration_seconds",
	  "Time from a request's first byte to the end of its response, by route.",
	  METRIC_HISTOGRAM, L_ROUTE, 1, ROUTER_BUCKETS, N(ROUTER_BUCKETS), 1000}, 0},
	{offsetof(struct metrics_families, router_upstream_errors),
	 {"berth_router_upstream_errors_total", "Failures talking to upstream instances, by route and kind.",
	  METRIC_COUNTER, L_ROUTE_KIND, 2, NULL, 0, 6000}, 0},
	{offsetof(struct metrics_families, router_retries),
	 {"berth_router_retries_total", "Requests sent again to another instance after a failed connect.",
	  METRIC_COUNTER, NULL, 0, NULL, 0, 0}, 0},
	{offsetof(struct metrics_families, router_aborts),
	 {"berth_router_client_aborts_total",
	  "Requests whose client went away before the answer began (logged with status 499).",
	  METRIC_COUNTER, NULL, 0, NULL, 0, 0}, 0},
	{offsetof(struct metrics_families, router_connections),
	 {"berth_router_connections",
	  "Open router connections by kind (client, upstream, upstream_idle, tunnel).",
	  METRIC_GAUGE, L_KIND, 1, NULL, 0, 8}, 0},
	{offsetof(struct metrics_families, router_log_dropped),
	 {"berth_router_access_log_dropped_total",
	  "Access-log lines dropped because the log writer fell more than 4 MiB behind.",
	  METRIC_COUNTER, NULL, 0, NULL, 0, 0}, 0},
	{offsetof(struct metrics_families, dns_queries),
	 {"berth_dns_queries_total", "DNS queries answered, by query type and response code.",
	  METRIC_COUNTER, L_DNS, 2, NULL, 0, 200}, 0},
	{offsetof(struct metrics_families, log_lines),
	 {"berth_log_lines_total", "Console log lines captured from instances.",
	  METRIC_COUNTER, NULL, 0, NULL, 0, 0}, 0},
	{offsetof(struct metrics_families, alerts),
	 {"berth_alerts_total", "Alert webhook deliveries by kind and outcome (sent, failed, dropped, suppressed).",
	  METRIC_COUNTER, L_ALERTS, 2, NULL, 0, 100}, 0},
	{SIZE_MAX, {"berth_process_resident_memory_bytes", "Resident memory of the berth daemon in bytes.",
		    METRIC_GAUGE, NULL, 0, NULL, 0, 0}, PROC_RSS},
	{SIZE_MAX, {"berth_process_virtual_memory_bytes", "Virtual memory of the berth daemon in bytes.",
		    METRIC_GAUGE, NULL, 0, NULL, 0, 0}, PROC_VSIZE},
	{SIZE_MAX, {"berth_process_open_fds", "Open file descriptors of the berth daemon.",
		    METRIC_GAUGE, NULL, 0, NULL, 0, 0}, PROC_FDS},
	{SIZE_MAX, {"berth_process_max_fds", "File descriptor limit (RLIMIT_NOFILE soft limit).",
		    METRIC_GAUGE, NULL, 0, NULL, 0, 0}, PROC_MAX_FDS},
	{SIZE_MAX, {"berth_process_start_time_seconds", "Start time of the berth daemon since the Unix epoch in seconds.",
		    METRIC_GAUGE, NULL, 0, NULL, 0, 0}, PROC_START},
	{SIZE_MAX, {"berth_process_cpu_seconds_total", "User and system CPU time of the berth daemon in seconds.",
		    METRIC_COUNTER, NULL, 0, NULL, 0, 0}, PROC_CPU},
	{SIZE_MAX, {"berth_process_threads", "Threads of the berth daemon.",
		    METRIC_GAUGE, NULL, 0, NULL, 0, 0}, PROC_THREADS},
};

int metrics_default_families(struct metrics *m, struct metrics_families *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	for (size_t i = 0; i < N(DEFS); i++) {
		struct metric_family *f = metrics_register(m, &DEFS[i].d, e);
		if (!f)
			return err_prefix(e, "registering berth's metrics");
		if (DEFS[i].offset == SIZE_MAX)
			metrics_family_set_collect(f, process_collect, (void *)(intptr_t)DEFS[i].proc);
		else
			memcpy((char *)out + DEFS[i].offset, &f, sizeof f);
	}
	return 0;
}
